//! Rebuilt queue_log lines against the lines the live writer wrote.

use std::time::{Duration, Instant, UNIX_EPOCH};

use acd::{AgentState, Destination, ExitReason, Party, QueueEvent};
use serde_json::json;
use sip_server::b2bua::StampedEvent;
use tokio::sync::mpsc;

use super::*;
use crate::events::{EventBatch, NewEvent, write_events};

/// The queue_log events every reporting tool for Asterisk queues reads.
const ASTERISK_EVENTS: [&str; 14] = [
    "ENTERQUEUE",
    "CONNECT",
    "COMPLETECALLER",
    "COMPLETEAGENT",
    "ABANDON",
    "EXITWITHTIMEOUT",
    "EXITEMPTY",
    "EXITWITHKEY",
    "RINGNOANSWER",
    "TRANSFER",
    "ADDMEMBER",
    "REMOVEMEMBER",
    "PAUSE",
    "UNPAUSE",
];

fn ms(millis: u64) -> Duration {
    Duration::from_millis(millis)
}

/// Returns every kind of event, at wall times 777 ms apart from
/// 2027-01-15T08:00:00.250Z so that they straddle second boundaries, with
/// durations that are not whole seconds and a caller number holding the
/// field separator.
pub(super) fn mixed_events() -> Vec<StampedEvent> {
    let at = Instant::now();
    let call = |id: &str| id.to_owned();
    let general = || "general".to_owned();
    let events = vec![
        QueueEvent::CallEnqueued {
            call: call("c1"),
            queue: general(),
            caller: Some("+1555|0100".into()),
            request_type: Some("passport".into()),
            position: 1,
            at,
        },
        QueueEvent::StepReached {
            call: call("c1"),
            queue: general(),
            step: 1,
            at,
        },
        QueueEvent::OfferStarted {
            call: call("c1"),
            queue: general(),
            agent: "1002".into(),
            at,
        },
        QueueEvent::OfferTimedOut {
            call: call("c1"),
            queue: general(),
            agent: "1002".into(),
            ring_time: ms(15_001),
            at,
        },
        QueueEvent::OfferRejected {
            call: call("c1"),
            queue: general(),
            agent: "1003".into(),
            busy: true,
            ring_time: ms(1_234),
            at,
        },
        QueueEvent::OfferAnswered {
            call: call("c1"),
            queue: general(),
            agent: "1001".into(),
            waited: ms(20_999),
            ring_time: ms(3_456),
            joined_position: 1,
            at,
        },
        QueueEvent::AgentStateChanged {
            agent: "1001".into(),
            from: AgentState::Ringing,
            to: AgentState::OnCall,
            at,
        },
        QueueEvent::CallCompleted {
            call: call("c1"),
            queue: general(),
            agent: "1001".into(),
            waited: ms(20_999),
            talk_time: ms(61_500),
            joined_position: 1,
            ended_by: Some(Party::Caller),
            at,
        },
        QueueEvent::WrapUpCodeSet {
            call: call("c1"),
            queue: general(),
            agent: "1001".into(),
            code: "resolved".into(),
            at,
        },
        QueueEvent::CallEnqueued {
            call: call("c2"),
            queue: general(),
            caller: None,
            request_type: None,
            position: 2,
            at,
        },
        QueueEvent::OfferAnswered {
            call: call("c2"),
            queue: general(),
            agent: "1002".into(),
            waited: ms(999),
            ring_time: ms(1),
            joined_position: 2,
            at,
        },
        QueueEvent::CallCompleted {
            call: call("c2"),
            queue: general(),
            agent: "1002".into(),
            waited: ms(999),
            talk_time: ms(120_000),
            joined_position: 2,
            ended_by: Some(Party::Agent),
            at,
        },
        QueueEvent::CallCompleted {
            call: call("c2b"),
            queue: general(),
            agent: "1002".into(),
            waited: ms(0),
            talk_time: ms(7),
            joined_position: 1,
            ended_by: None,
            at,
        },
        QueueEvent::CallAbandoned {
            call: call("c3"),
            queue: general(),
            agent: Some("1001".into()),
            waited: ms(45_678),
            position: 1,
            joined_position: 3,
            at,
        },
        QueueEvent::CallTimedOut {
            call: call("c4"),
            queue: general(),
            agent: None,
            waited: ms(120_001),
            position: 2,
            joined_position: 2,
            at,
        },
        QueueEvent::CallExited {
            call: call("c5"),
            queue: general(),
            reason: ExitReason::LeaveEmpty,
            destination: None,
            waited: ms(3_500),
            position: 1,
            joined_position: 1,
            at,
        },
        QueueEvent::CallExited {
            call: call("c6"),
            queue: general(),
            reason: ExitReason::Key('5'),
            destination: Some(Destination::Queue("billing".into())),
            waited: ms(9_999),
            position: 3,
            joined_position: 4,
            at,
        },
        QueueEvent::CallExited {
            call: call("c7"),
            queue: general(),
            reason: ExitReason::Full,
            destination: Some(Destination::Voicemail("100".into())),
            waited: ms(0),
            position: 0,
            joined_position: 0,
            at,
        },
        QueueEvent::CallExited {
            call: call("c8"),
            queue: general(),
            reason: ExitReason::JoinEmpty,
            destination: Some(Destination::Number("+15550199".into())),
            waited: ms(0),
            position: 0,
            joined_position: 0,
            at,
        },
        QueueEvent::CallExited {
            call: call("c9"),
            queue: general(),
            reason: ExitReason::Step,
            destination: Some(Destination::Callback),
            waited: ms(60_250),
            position: 1,
            joined_position: 1,
            at,
        },
        QueueEvent::CallExited {
            call: call("c10"),
            queue: general(),
            reason: ExitReason::MaxWait,
            destination: Some(Destination::Queue("overflow".into())),
            waited: ms(180_000),
            position: 1,
            joined_position: 2,
            at,
        },
        QueueEvent::OfferCancelled {
            call: call("c11"),
            queue: general(),
            agent: "1002".into(),
            ring_time: ms(2_002),
            at,
        },
        QueueEvent::CallTransferred {
            call: call("c11"),
            queue: general(),
            agent: "1001".into(),
            target: "2000".into(),
            waited: ms(5_100),
            talk_time: ms(33_333),
            joined_position: 1,
            at,
        },
        QueueEvent::CallbackRequested {
            call: call("c12"),
            queue: general(),
            number: "+15550123".into(),
            data: acd::CallData::default(),
            arrived: at,
            at,
        },
        QueueEvent::CallbackDialing {
            call: call("c12"),
            queue: general(),
            agent: "1002".into(),
            ring_time: ms(2_400),
            at,
        },
        QueueEvent::CallbackNotReached {
            call: call("c12"),
            queue: general(),
            agent: "1002".into(),
            cause: acd::CallbackFailure::Busy,
            attempts: 1,
            retry_at: Some(at + ms(300_000)),
            waited: ms(61_900),
            at,
        },
        QueueEvent::CallbackNotReached {
            call: call("c12"),
            queue: general(),
            agent: "1001".into(),
            cause: acd::CallbackFailure::AgentLeft,
            attempts: 3,
            retry_at: None,
            waited: ms(961_900),
            at,
        },
        QueueEvent::MemberAdded {
            agent: "1003".into(),
            queue: "billing".into(),
            at,
        },
        QueueEvent::MemberRemoved {
            agent: "1003".into(),
            queue: general(),
            at,
        },
        QueueEvent::AgentNotReady {
            agent: "1001".into(),
            reason: "lunch".into(),
            queues: vec!["billing".into(), general()],
            at,
        },
        QueueEvent::AgentReady {
            agent: "1001".into(),
            reason: "lunch".into(),
            queues: vec!["billing".into(), general()],
            at,
        },
        QueueEvent::AgentNotReady {
            agent: "1002".into(),
            reason: acd::NO_ANSWER_REASON.into(),
            queues: vec![general()],
            at,
        },
        QueueEvent::AgentLogin {
            agent: "1002".into(),
            logged_in: false,
            at,
        },
        QueueEvent::AgentReachability {
            agent: "1001".into(),
            reachable: false,
            cause: Some("qualify".into()),
            at,
        },
    ];
    let base = UNIX_EPOCH + ms(1_800_000_000_250);
    events
        .into_iter()
        .zip(0u64..)
        .map(|(event, index)| StampedEvent {
            event,
            wall: base + ms(777 * index),
        })
        .collect()
}

/// Formats the lines of `stamped` as the core does before handing them to
/// the engine: the whole seconds of the event's wall time.
pub(super) fn live_lines(stamped: &[StampedEvent]) -> Vec<String> {
    stamped
        .iter()
        .flat_map(|stamped| {
            let epoch = stamped
                .wall
                .duration_since(UNIX_EPOCH)
                .unwrap_or_default()
                .as_secs();
            acd::queue_log_lines(&stamped.event, epoch)
        })
        .collect()
}

pub(super) async fn store() -> (tempfile::TempDir, EventStore) {
    let dir = tempfile::tempdir().unwrap();
    let cdr = cdr::CdrStore::open(dir.path()).await.unwrap();
    let store = EventStore::open(cdr.pool().clone()).await.unwrap();
    (dir, store)
}

/// Runs `stamped` through the live writer, a few events per batch, and
/// returns the queue_log it wrote.
pub(super) async fn write_live(
    store: &EventStore,
    dir: &Path,
    stamped: &[StampedEvent],
) -> Vec<u8> {
    let path = dir.join("live_queue_log");
    let (batches, queue) = mpsc::unbounded_channel();
    let writer = tokio::spawn(write_events(
        store.clone(),
        path.clone(),
        queue,
        crate::events::EventFeed::new(16),
    ));
    for chunk in stamped.chunks(3) {
        let mut batch = EventBatch::default();
        batch.push(chunk, live_lines(chunk));
        batches.send(batch).unwrap();
    }
    drop(batches);
    writer.await.unwrap();
    std::fs::read(&path).unwrap()
}

async fn rebuilt(store: &EventStore, since_ms: Option<i64>, until_ms: Option<i64>) -> Vec<u8> {
    let mut out = Vec::new();
    write_range(store, since_ms, until_ms, &mut out)
        .await
        .expect("rebuilt");
    out
}

#[tokio::test]
async fn rebuilt_lines_equal_live_lines() {
    let (dir, store) = store().await;
    let live = write_live(&store, dir.path(), &mixed_events()).await;
    let text = String::from_utf8(live.clone()).unwrap();
    for name in ASTERISK_EVENTS {
        assert!(
            text.contains(&format!("|{name}|")),
            "no {name} line in the live queue_log:\n{text}"
        );
    }
    // The caller number's separator is cleaned on both sides.
    assert!(text.contains("|ENTERQUEUE||+1555_0100|1\n"), "{text}");

    let rebuilt = rebuilt(&store, None, None).await;
    assert_eq!(
        String::from_utf8(rebuilt).unwrap(),
        text,
        "rebuilt queue_log differs from the live one"
    );
}

#[tokio::test]
async fn range_selects_events_by_time() {
    let (dir, store) = store().await;
    let events = mixed_events();
    write_live(&store, dir.path(), &events).await;
    // [event 5, event 12): from OfferAnswered of c1 to before the third
    // CallCompleted.
    let at = |index: usize| crate::events::unix_millis(events[index].wall);
    let expected: String = live_lines(&events[5..12])
        .iter()
        .map(|line| format!("{line}\n"))
        .collect();
    let range = rebuilt(&store, Some(at(5)), Some(at(12))).await;
    assert_eq!(String::from_utf8(range).unwrap(), expected);
    assert!(rebuilt(&store, Some(at(31) + 1), None).await.is_empty());
}

#[tokio::test]
async fn kinds_without_a_line_give_none() {
    let stamped = mixed_events();
    for index in [1, 2, 6, 24, 32, 33] {
        let row = stored(&stamped[index]);
        assert_eq!(
            lines_of(&row).unwrap(),
            Vec::<String>::new(),
            "{}",
            row.kind
        );
    }
}

fn stored(stamped: &StampedEvent) -> StoredEvent {
    let new = NewEvent::from_stamped(stamped);
    StoredEvent {
        seq: 7,
        at_ms: new.at_ms,
        kind: new.kind.to_owned(),
        call: new.call,
        queue: new.queue,
        agent: new.agent,
        data: new.data,
    }
}

#[test]
fn damaged_row_names_its_sequence_number() {
    let mut row = stored(&mixed_events()[5]);
    row.data = json!({"waited_seconds": "soon"});
    let error = lines_of(&row).unwrap_err().to_string();
    assert_eq!(
        error,
        "stored event 7 (offer_answered) has no valid waited_seconds, so its queue_log lines cannot be rebuilt"
    );
    row.kind = "agent_teleported".into();
    let error = lines_of(&row).unwrap_err().to_string();
    assert!(
        error.contains("unknown kind \"agent_teleported\""),
        "{error}"
    );
}

#[test]
fn pre_epoch_times_give_epoch_zero_as_live() {
    let mut stamped = mixed_events()[0].clone();
    stamped.wall = UNIX_EPOCH - ms(1_500);
    let live = live_lines(std::slice::from_ref(&stamped));
    assert_eq!(lines_of(&stored(&stamped)).unwrap(), live);
    assert!(live[0].starts_with("0|c1|"), "{live:?}");
}

#[test]
fn times_parse_as_rfc3339_or_epoch_seconds() {
    assert_eq!(parse_time("1800000000"), Ok(1_800_000_000_000));
    assert_eq!(parse_time("2027-01-15T08:00:00.25Z"), Ok(1_800_000_000_250));
    assert_eq!(
        parse_time("2027-01-15T09:00:00+01:00"),
        Ok(1_800_000_000_000)
    );
    let error = parse_time("yesterday").unwrap_err();
    assert!(error.contains("expected an RFC 3339 time"), "{error}");
    assert!(parse_time("99999999999999999").is_err());
}

#[test]
fn command_without_database_fails() {
    let dir = tempfile::tempdir().unwrap();
    assert_eq!(run_command(dir.path(), None, None, None, None), 1);
    assert!(
        !dir.path().join("pbx.sqlite").exists(),
        "no database created"
    );
}

#[tokio::test]
async fn command_writes_the_file() {
    let (dir, store) = store().await;
    let live = write_live(&store, dir.path(), &mixed_events()).await;
    let output = dir.path().join("rebuilt");
    let data_dir = dir.path().to_path_buf();
    let target = output.clone();
    // `run_command` starts a runtime of its own, which cannot nest in this one.
    let code = std::thread::spawn(move || run_command(&data_dir, None, None, None, Some(&target)))
        .join()
        .unwrap();
    assert_eq!(code, 0);
    assert_eq!(std::fs::read(&output).unwrap(), live);
}
