//! The queue's account of calls rebuilt from stored events, compared with
//! CDRs that agree, differ or are missing.

use std::time::{Duration, Instant, SystemTime};

use acd::{Party, QueueEvent};
use sip_server::b2bua::StampedEvent;

use super::*;
use crate::events::NewEvent;

/// 2027-01-15T08:00:00Z in Unix milliseconds.
const BASE_MS: i64 = 1_800_000_000_000;

struct Script {
    base: Instant,
    events: Vec<NewEvent>,
}

impl Script {
    fn at(&mut self, seconds: u64, make: impl FnOnce(Instant) -> QueueEvent) {
        let offset = Duration::from_secs(seconds);
        let wall = SystemTime::UNIX_EPOCH + Duration::from_millis(BASE_MS as u64) + offset;
        self.events.push(NewEvent::from_stamped(&StampedEvent {
            event: make(self.base + offset),
            wall,
        }));
    }

    fn enqueue(&mut self, seconds: u64, call: &str) {
        self.at(seconds, |at| QueueEvent::CallEnqueued {
            call: call.into(),
            queue: "general".into(),
            caller: Some("+15550100".into()),
            request_type: Some("passport".into()),
            position: 1,
            at,
        });
    }

    fn answer(&mut self, seconds: u64, call: &str, waited: u64) {
        self.at(seconds, |at| QueueEvent::OfferAnswered {
            call: call.into(),
            queue: "general".into(),
            agent: "1001".into(),
            waited: Duration::from_secs(waited),
            ring_time: Duration::from_secs(2),
            joined_position: 1,
            at,
        });
    }

    fn complete(&mut self, seconds: u64, call: &str, talk: u64) {
        self.at(seconds, |at| QueueEvent::CallCompleted {
            call: call.into(),
            queue: "general".into(),
            agent: "1001".into(),
            waited: Duration::ZERO,
            talk_time: Duration::from_secs(talk),
            joined_position: 1,
            ended_by: Some(Party::Agent),
            at,
        });
    }
}

/// A answered, held 15 s, completed and scored 5 in the survey, B abandoned, C a callback request returned
/// by a call the citizen answered, D still waiting.
fn script() -> Script {
    let mut s = Script {
        base: Instant::now(),
        events: Vec::new(),
    };
    s.enqueue(0, "A");
    s.enqueue(1, "B");
    s.enqueue(2, "C");

    s.answer(10, "A", 10);
    s.at(12, |at| QueueEvent::CallAbandoned {
        call: "B".into(),
        queue: "general".into(),
        agent: None,
        waited: Duration::from_secs(11),
        position: 1,
        joined_position: 2,
        at,
    });
    s.at(15, |at| QueueEvent::CallbackRequested {
        call: "C".into(),
        queue: "general".into(),
        number: "+15550100".into(),
        data: acd::CallData::default(),
        arrived: at - Duration::from_secs(13),
        at,
    });

    s.at(20, |at| QueueEvent::CallHeld {
        call: "A".into(),
        queue: "general".into(),
        agent: "1001".into(),
        by: Party::Agent,
        at,
    });
    s.at(35, |at| QueueEvent::CallResumed {
        call: "A".into(),
        queue: "general".into(),
        agent: "1001".into(),
        by: Party::Agent,
        held: Duration::from_secs(15),
        at,
    });
    s.complete(70, "A", 60);
    s.at(78, |at| QueueEvent::SurveyFinished {
        call: "A".into(),
        queue: "general".into(),
        agent: "1001".into(),
        outcome: acd::SurveyOutcome::Answered(5),
        at,
    });
    s.answer(200, "C", 198);
    s.complete(260, "C", 60);
    s.enqueue(300, "D");
    s
}

fn at(seconds: i64) -> OffsetDateTime {
    from_millis(BASE_MS + seconds * 1000)
}

/// Builds the record the PBX writes for a call of the script.
fn record(id: &str, disposition: Disposition) -> CallRecord {
    let queue = QueueCall {
        id: id.into(),
        queue: "general".into(),
        caller: Some("+15550100".into()),
        request_type: Some("passport".into()),
        queued_ms: BASE_MS,
        outcome: Outcome::Open,
        answered: None,
        completed: None,
        left_ms: None,
        waited: 0.0,
        last_seen_ms: BASE_MS,
        after_answer: AfterAnswer::default(),
    };
    CallRecord {
        disposition,
        rebuilt: false,
        transfers: Vec::new(),
        hold_count: 0,
        hold_seconds: 0.0,
        survey: None,
        csat_score: None,
        interrupted: false,
        caller_call_id: format!("{id}@test"),
        ..rebuilt_record(&queue)
    }
}

async fn calls_of(events: &EventStore) -> Vec<QueueCall> {
    rebuild(&events.queued_call_events(i64::MIN, i64::MAX).await.unwrap())
}

async fn stores(script: &Script) -> (tempfile::TempDir, EventStore, CdrStore) {
    let dir = tempfile::tempdir().unwrap();
    let cdr = CdrStore::open(dir.path()).await.unwrap();
    let events = EventStore::open(cdr.pool().clone()).await.unwrap();
    events.append(&script.events).await.unwrap();
    (dir, events, cdr)
}

#[tokio::test]
async fn rebuild_folds_each_call() {
    let (_dir, events, _cdr) = stores(&script()).await;
    let calls = rebuild(&events.queued_call_events(i64::MIN, i64::MAX).await.unwrap());
    let ids: Vec<&str> = calls.iter().map(|call| call.id.as_str()).collect();
    assert_eq!(ids, ["A", "B", "C", "D"]);
    assert_eq!(calls[0].outcome, Outcome::Answered);
    assert_eq!(calls[0].request_type.as_deref(), Some("passport"));
    assert_eq!(calls[0].answered, Some(("1001".into(), BASE_MS + 10_000)));
    assert_eq!(
        calls[0].completed,
        Some((BASE_MS + 70_000, 60.0, Some(HangupSide::Agent)))
    );
    assert_eq!(calls[1].outcome, Outcome::Abandoned);
    assert_eq!(calls[1].left_ms, Some(BASE_MS + 12_000));
    assert_eq!(calls[2].outcome, Outcome::Callback);
    assert_eq!(calls[2].answered, Some(("1001".into(), BASE_MS + 200_000)));
    assert_eq!(calls[3].outcome, Outcome::Open);
}

#[tokio::test]
async fn agreeing_records_give_no_lines() {
    let (_dir, events, cdr) = stores(&script()).await;
    let mut a = record("A", Disposition::Answered);
    a.agent = Some("1001".into());
    a.answered_at = Some(at(10) + time::Duration::milliseconds(300));
    a.talk_seconds = 60.4;
    cdr.write(&a).await.unwrap();
    cdr.write(&record("B", Disposition::Abandoned))
        .await
        .unwrap();
    cdr.write(&record("C", Disposition::Callback))
        .await
        .unwrap();
    let mut returned = record("C-back", Disposition::Answered);
    returned.callback_of = Some("C".into());
    returned.agent = Some("1001".into());
    returned.answered_at = Some(at(200));
    returned.talk_seconds = 60.0;
    cdr.write(&returned).await.unwrap();

    // D waits still: its record is written when it ends.
    let mut out = Vec::new();
    let summary = check(&events, &cdr, BASE_MS, BASE_MS + 200_000, false, &mut out)
        .await
        .unwrap();
    assert_eq!(String::from_utf8(out).unwrap(), "");
    assert_eq!(
        summary,
        Summary {
            calls: 3,
            ..Summary::default()
        }
    );
}

#[tokio::test]
async fn differing_and_missing_records_are_listed() {
    let (_dir, events, cdr) = stores(&script()).await;
    // A caller whose leg failed while waiting is abandoned for the queue.
    assert!(
        compare(
            &calls_of(&events).await[1],
            Some(&record("B", Disposition::Failed)),
            None
        )
        .is_empty()
    );
    // A's record names another agent and a talk time 5 s short.
    let mut a = record("A", Disposition::Answered);
    a.agent = Some("1002".into());
    a.answered_at = Some(at(10));
    a.talk_seconds = 55.0;
    cdr.write(&a).await.unwrap();
    cdr.write(&record("B", Disposition::Answered))
        .await
        .unwrap();
    let mut out = Vec::new();
    let summary = check(&events, &cdr, BASE_MS, BASE_MS + 200_000, false, &mut out)
        .await
        .unwrap();
    let text = String::from_utf8(out).unwrap();
    assert_eq!(
        text.lines().collect::<Vec<_>>(),
        [
            "A: agent 1002 in the CDR, 1001 by the queue events",
            "A: talk 55.000 s in the CDR, 60.000 s by the queue events",
            "B: disposition answered in the CDR, abandoned by the queue events",
            "C: no CDR, though the queue events record the call",
        ]
    );
    assert_eq!(
        summary,
        Summary {
            calls: 3,
            missing: 1,
            repaired: 0,
            differing: 2,
        }
    );
}

#[tokio::test]
async fn repair_writes_rebuilt_records() {
    let (_dir, events, cdr) = stores(&script()).await;
    let mut out = Vec::new();
    let summary = check(&events, &cdr, BASE_MS, i64::MAX, true, &mut out)
        .await
        .unwrap();
    assert_eq!(summary.missing, 4);
    assert_eq!(summary.repaired, 4);

    let a = cdr.get("A").await.unwrap().expect("A rebuilt");
    assert!(a.rebuilt);
    assert_eq!(a.disposition, Disposition::Answered);
    assert_eq!(a.agent.as_deref(), Some("1001"));
    assert_eq!(a.queue.as_deref(), Some("general"));
    assert_eq!(a.caller, "+15550100");
    assert_eq!(a.request_type.as_deref(), Some("passport"));
    assert_eq!(a.queued_at, Some(at(0)));
    assert_eq!(a.answered_at, Some(at(10)));
    assert_eq!(a.ended_at, at(70));
    assert_eq!(a.talk_seconds, 60.0);
    assert_eq!(a.wait_seconds, 10.0);
    assert_eq!(a.hangup_side, Some(HangupSide::Agent));
    assert_eq!(a.hold_count, 1);
    assert_eq!(a.hold_seconds, 15.0);
    assert_eq!(a.survey, Some(cdr::SurveyStatus::Answered));
    assert_eq!(a.csat_score, Some(5));

    let b = cdr.get("B").await.unwrap().expect("B rebuilt");
    assert_eq!(b.disposition, Disposition::Abandoned);
    assert_eq!(b.ended_at, at(12));
    assert_eq!(b.wait_seconds, 11.0);
    assert_eq!(b.agent, None);

    // The callback's own record has no agent: the returning call had one.
    let c = cdr.get("C").await.unwrap().expect("C rebuilt");
    assert_eq!(c.disposition, Disposition::Callback);
    assert_eq!(c.agent, None);
    assert_eq!(c.answered_at, None);

    // A call with no outcome was cut by a stop.
    let d = cdr.get("D").await.unwrap().expect("D rebuilt");
    assert!(d.interrupted);
    assert_eq!(d.disposition, Disposition::Failed);

    // A second pass finds the rebuilt records in agreement.
    let mut again = Vec::new();
    let summary = check(&events, &cdr, BASE_MS, i64::MAX, false, &mut again)
        .await
        .unwrap();
    assert_eq!(String::from_utf8(again).unwrap(), "");
    assert_eq!(summary.missing + summary.differing, 0);
}

/// Call T: 1001 answers at 10 s and transfers it into the queue at 40 s,
/// 1002 answers at 50 s and the caller hangs up at 80 s.
fn transferred_script() -> Script {
    let mut s = Script {
        base: Instant::now(),
        events: Vec::new(),
    };
    s.enqueue(0, "T");
    s.answer(10, "T", 10);
    s.at(40, |at| QueueEvent::CallTransferred {
        call: "T".into(),
        queue: "general".into(),
        agent: "1001".into(),
        target: "5000".into(),
        waited: Duration::from_secs(10),
        talk_time: Duration::from_secs(30),
        joined_position: 1,
        at,
    });
    s.enqueue(40, "T");
    s.at(50, |at| QueueEvent::OfferAnswered {
        call: "T".into(),
        queue: "general".into(),
        agent: "1002".into(),
        waited: Duration::from_secs(10),
        ring_time: Duration::from_secs(2),
        joined_position: 1,
        at,
    });
    s.at(80, |at| QueueEvent::CallCompleted {
        call: "T".into(),
        queue: "general".into(),
        agent: "1002".into(),
        waited: Duration::from_secs(10),
        talk_time: Duration::from_secs(30),
        joined_position: 1,
        ended_by: Some(Party::Caller),
        at,
    });
    s
}

#[tokio::test]
async fn transferred_call_keeps_first_answer() {
    let (_dir, events, cdr) = stores(&transferred_script()).await;
    let calls = calls_of(&events).await;
    assert_eq!(calls.len(), 1);
    assert_eq!(calls[0].answered, Some(("1001".into(), BASE_MS + 10_000)));
    assert_eq!(
        calls[0].completed,
        Some((BASE_MS + 80_000, 70.0, Some(HangupSide::Caller)))
    );

    // The PBX's record names the first agent and the talk time of the
    // whole call.
    let mut t = record("T", Disposition::Answered);
    t.agent = Some("1001".into());
    t.answered_at = Some(at(10));
    t.talk_seconds = 70.0;
    cdr.write(&t).await.unwrap();
    let mut out = Vec::new();
    let summary = check(&events, &cdr, BASE_MS, BASE_MS + 100_000, false, &mut out)
        .await
        .unwrap();
    assert_eq!(String::from_utf8(out).unwrap(), "");
    assert_eq!(summary.calls, 1);
}

#[tokio::test]
async fn open_call_waited_until_the_last_event() {
    let mut events = script();
    // Another caller arrives 40 s after D, so the run still stored events
    // then and D was still waiting.
    events.enqueue(340, "E");
    let (_dir, events, cdr) = stores(&events).await;
    let mut out = Vec::new();
    check(&events, &cdr, BASE_MS, i64::MAX, true, &mut out)
        .await
        .unwrap();
    let d = cdr.get("D").await.unwrap().expect("D rebuilt");
    assert!(d.interrupted);
    assert_eq!(d.queued_at, Some(at(300)));
    assert_eq!(d.ended_at, at(340));
    assert_eq!(d.wait_seconds, 40.0);
    let e = cdr.get("E").await.unwrap().expect("E rebuilt");
    assert_eq!(e.wait_seconds, 0.0);
}
