//! Interval rows from a known set of calls, stored both as queue events
//! and as call records, checked against values worked out by hand and
//! against the call records themselves.

use std::time::{Duration, SystemTime};

use acd::{AgentState, QueueEvent};
use cdr::{CallRecord, CdrStore, Disposition, HangupSide};
use time::OffsetDateTime;

use super::*;
use crate::events::{EventStore, unix_millis};
use crate::kpi::tests::{FROM_SECS, Script};

/// End of the report range: 30 minutes after its start.
const RANGE_SECS: i64 = 1800;

/// The calls of the half hour from 08:00 UTC:
/// - A: dials DID 5000 (request type "passport"), enters general at 60 s,
///   rung on 1001 from 60 s, answered at 70 s (10 s wait), 120 s talk, 30 s
///   wrap-up. Its caller calls DID 5003, which has the same request type,
///   at 1200 s (call D), so A is not resolved at first contact.
/// - B: enters at 120 s and hangs up after 30 s.
/// - C: dials DID 5001 (no request type), enters at 1000 s, rung on 1002
///   from 1000 s, answered at 1025 s (25 s wait), 60 s talk, no wrap-up.
///   Its caller then calls DID 5002, also without a request type (call E),
///   which is no repeat because calls without one match by DID.
/// - D and E fail before reaching a queue, so only their call records exist.
///
/// Agent 1001 is available from before the range; 1002 logs in at 950 s
/// and out at 1500 s.
fn calls() -> (Script, Vec<CallRecord>) {
    use AgentState::{Available, LoggedOut, OnCall, Ringing, WrapUp};
    let mut s = Script::new();
    s.state(-600.0, "1001", LoggedOut, Available);
    s.enqueue(60.0, "A", "general");
    offer(&mut s, 60.0, "A", "1001");
    s.state(60.0, "1001", Available, Ringing);
    s.answer(70.0, "A", "general", "1001", 10.0);
    s.enqueue(120.0, "B", "general");
    s.left(
        150.0,
        |waited, at| QueueEvent::CallAbandoned {
            call: "B".into(),
            queue: "general".into(),
            agent: None,
            waited,
            position: 1,
            joined_position: 1,
            at,
        },
        30.0,
    );
    s.complete(190.0, "A", "general", "1001", 120.0);
    s.state(190.0, "1001", OnCall, WrapUp);
    s.state(220.0, "1001", WrapUp, Available);
    s.state(950.0, "1002", LoggedOut, Available);
    s.enqueue(1000.0, "C", "general");
    offer(&mut s, 1000.0, "C", "1002");
    s.state(1000.0, "1002", Available, Ringing);
    s.answer(1025.0, "C", "general", "1002", 25.0);
    s.complete(1085.0, "C", "general", "1002", 60.0);
    s.state(1085.0, "1002", OnCall, Available);
    s.state(1500.0, "1002", Available, LoggedOut);

    let records = vec![
        about(
            "passport",
            record("A", "+15550100", "5000", 58, Some((10.0, 120.0, "1001"))),
        ),
        about(
            "passport",
            abandoned(record("B", "+15550101", "5000", 120, None), 30.0),
        ),
        record("C", "+15550111", "5001", 998, Some((25.0, 60.0, "1002"))),
        about(
            "passport",
            failed(record("D", "+15550100", "5003", 1200, None)),
        ),
        failed(record("E", "+15550111", "5002", 1300, None)),
    ];
    (s, records)
}

fn offer(script: &mut Script, seconds: f64, call: &str, agent: &str) {
    script.at(seconds, |at| QueueEvent::OfferStarted {
        call: call.into(),
        queue: "general".into(),
        agent: agent.into(),
        at,
    });
}

fn start() -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp(FROM_SECS as i64).unwrap()
}

/// A call record arriving `arrived` seconds after the range start and
/// queued 2 s later, with its wait, talk and agent when answered.
fn record(
    id: &str,
    caller: &str,
    dialed: &str,
    arrived: i64,
    answered: Option<(f64, f64, &str)>,
) -> CallRecord {
    let arrived_at = start() + time::Duration::seconds(arrived);
    let queued_at = arrived_at + time::Duration::seconds(2);
    let (wait, talk, agent) = answered.unwrap_or((0.0, 0.0, ""));
    let answered_at = queued_at + time::Duration::seconds_f64(wait);
    CallRecord {
        id: id.to_owned(),
        caller_call_id: format!("{id}@192.0.2.1"),
        agent_call_id: None,
        caller: caller.to_owned(),
        dialed: dialed.to_owned(),
        trunk: Some("carrier".to_owned()),
        source_extension: None,
        direction: cdr::CallDirection::Inbound,
        queue: Some("general".to_owned()),
        request_type: None,
        agent: answered.map(|_| agent.to_owned()),
        arrived_at,
        queued_at: Some(queued_at),
        answered_at: answered.map(|_| answered_at),
        ended_at: answered_at + time::Duration::seconds_f64(talk),
        wait_seconds: wait,
        talk_seconds: talk,
        disposition: Disposition::Answered,
        sip_status: None,
        hangup_side: Some(HangupSide::Caller),
        recording_path: None,
        recording_seconds: None,
        interrupted: false,
        caller_answered_at: None,
        voicemail_box: None,
        forwarded_to: None,
        diverted_from: None,
        callback_of: None,
        recording_events: Vec::new(),
        media_quality: None,
        rebuilt: false,
        transfers: Vec::new(),
        hold_count: 0,
        hold_seconds: 0.0,
        survey: None,
        csat_score: None,
    }
}

fn about(request_type: &str, record: CallRecord) -> CallRecord {
    CallRecord {
        request_type: Some(request_type.to_owned()),
        ..record
    }
}

fn abandoned(record: CallRecord, wait: f64) -> CallRecord {
    CallRecord {
        disposition: Disposition::Abandoned,
        wait_seconds: wait,
        ..record
    }
}

fn failed(record: CallRecord) -> CallRecord {
    CallRecord {
        disposition: Disposition::Failed,
        queue: None,
        queued_at: None,
        ..record
    }
}

struct Stored {
    _dir: tempfile::TempDir,
    events: EventStore,
    cdr: CdrStore,
    records: Vec<CallRecord>,
}

async fn stored() -> Stored {
    let (script, records) = calls();
    let dir = tempfile::tempdir().unwrap();
    let cdr = CdrStore::open(dir.path()).await.unwrap();
    let events = EventStore::open(cdr.pool().clone()).await.unwrap();
    events.append(&script.events).await.unwrap();
    for record in &records {
        cdr.write(record).await.unwrap();
    }
    Stored {
        _dir: dir,
        events,
        cdr,
        records,
    }
}

const DAY_MS: i64 = 86_400_000;

fn utc(interval: Interval) -> Calendar {
    Calendar {
        interval,
        time_zone: TimeZone::UTC,
    }
}

fn request(interval: Interval, grouping: Grouping) -> ReportRequest {
    let from_ms = unix_millis(SystemTime::UNIX_EPOCH + Duration::from_secs(FROM_SECS));
    ReportRequest {
        from_ms,
        to_ms: from_ms + RANGE_SECS * 1000,
        // Two days later, so every first-contact window has passed.
        now_ms: from_ms + 2 * DAY_MS,
        calendar: utc(interval),
        grouping,
        first_contact_window_ms: DAY_MS,
    }
}

async fn report(stored: &Stored, interval: Interval, grouping: Grouping) -> IntervalReport {
    interval_report(&stored.events, &stored.cdr, request(interval, grouping))
        .await
        .unwrap()
}

#[tokio::test]
async fn queue_rows_per_quarter_hour() {
    let stored = stored().await;
    let report = report(&stored, Interval::Minutes15, Grouping::Queue).await;
    assert!(report.agents.is_empty());
    let first = QueueRow {
        start: "2027-01-15T08:00:00Z".into(),
        end: "2027-01-15T08:15:00Z".into(),
        figures: QueueKpi {
            queue: "general".into(),
            offered: 2,
            answered: 1,
            abandoned: 1,
            abandon_percent: Some(50.0),
            average_abandon_seconds: Some(30.0),
            timed_out: 0,
            exited_by_key: 0,
            exited_other: 0,
            callbacks_not_reached: 0,
            unresolved: 0,
            average_speed_of_answer_seconds: Some(10.0),
            average_talk_seconds: Some(120.0),
            average_wrap_up_seconds: Some(30.0),
            average_handle_seconds: Some(150.0),
            // A within 20 s, of A and B.
            service_level_20_percent: Some(50.0),
            service_level_30_percent: Some(50.0),
            longest_wait_seconds: Some(30.0),
            hold_survey: HoldSurvey {
                average_hold_seconds: Some(0.0),
                ..HoldSurvey::default()
            },
        },
        // A, repeated by D about the same request type on another DID.
        first_contact: FirstContact {
            first_contact_calls: 1,
            first_contact_resolution_percent: Some(0.0),
        },
    };
    let second = QueueRow {
        start: "2027-01-15T08:15:00Z".into(),
        end: "2027-01-15T08:30:00Z".into(),
        figures: QueueKpi {
            queue: "general".into(),
            offered: 1,
            answered: 1,
            abandoned: 0,
            abandon_percent: Some(0.0),
            average_abandon_seconds: None,
            timed_out: 0,
            exited_by_key: 0,
            exited_other: 0,
            callbacks_not_reached: 0,
            unresolved: 0,
            average_speed_of_answer_seconds: Some(25.0),
            average_talk_seconds: Some(60.0),
            average_wrap_up_seconds: Some(0.0),
            average_handle_seconds: Some(60.0),
            service_level_20_percent: Some(0.0),
            service_level_30_percent: Some(100.0),
            longest_wait_seconds: Some(25.0),
            hold_survey: HoldSurvey {
                average_hold_seconds: Some(0.0),
                ..HoldSurvey::default()
            },
        },
        // C; E dialed another DID and neither has a request type.
        first_contact: FirstContact {
            first_contact_calls: 1,
            first_contact_resolution_percent: Some(100.0),
        },
    };
    assert_eq!(report.queues, vec![first, second]);
}

/// The rows agree with the call records of the same calls: answered and
/// abandoned counts, the mean wait of the answered ones and their talk.
#[tokio::test]
async fn queue_rows_agree_with_call_records() {
    let stored = stored().await;
    let report = report(&stored, Interval::Minutes15, Grouping::Queue).await;
    for row in &report.queues {
        let start = OffsetDateTime::parse(&row.start, &Rfc3339).unwrap();
        let end = OffsetDateTime::parse(&row.end, &Rfc3339).unwrap();
        let in_row: Vec<&CallRecord> = stored
            .records
            .iter()
            .filter(|record| record.queued_at.is_some_and(|at| at >= start && at < end))
            .collect();
        let with = |disposition| {
            in_row
                .iter()
                .filter(|record| record.disposition == disposition)
                .copied()
                .collect::<Vec<_>>()
        };
        let answered = with(Disposition::Answered);
        let abandoned = with(Disposition::Abandoned);
        assert_eq!(row.figures.offered as usize, in_row.len(), "{}", row.start);
        assert_eq!(
            row.figures.answered as usize,
            answered.len(),
            "{}",
            row.start
        );
        assert_eq!(
            row.figures.abandoned as usize,
            abandoned.len(),
            "{}",
            row.start
        );
        let waits: Vec<f64> = answered.iter().map(|record| record.wait_seconds).collect();
        assert_eq!(row.figures.average_speed_of_answer_seconds, mean(&waits));
        let talks: Vec<f64> = answered.iter().map(|record| record.talk_seconds).collect();
        assert_eq!(row.figures.average_talk_seconds, mean(&talks));
        let abandon_waits: Vec<f64> = abandoned.iter().map(|record| record.wait_seconds).collect();
        assert_eq!(row.figures.average_abandon_seconds, mean(&abandon_waits));
    }
}

#[tokio::test]
async fn agent_rows_per_quarter_hour() {
    let stored = stored().await;
    let report = report(&stored, Interval::Minutes15, Grouping::Agent).await;
    assert!(report.queues.is_empty());
    let row = |start: &str, end: &str, agent: &str| AgentRow {
        start: start.into(),
        end: end.into(),
        agent: agent.into(),
        offered: 0,
        answered: 0,
        average_speed_of_answer_seconds: None,
        average_talk_seconds: None,
        average_wrap_up_seconds: None,
        average_handle_seconds: None,
        first_contact: FirstContact::default(),
        occupancy_percent: None,
        shifts: 0,
        calls_per_shift: None,
        hold_survey: HoldSurvey {
            average_hold_seconds: None,
            ..HoldSurvey::default()
        },
    };
    let first_1001 = AgentRow {
        offered: 1,
        answered: 1,
        average_speed_of_answer_seconds: Some(10.0),
        average_talk_seconds: Some(120.0),
        average_wrap_up_seconds: Some(30.0),
        average_handle_seconds: Some(150.0),
        first_contact: FirstContact {
            first_contact_calls: 1,
            first_contact_resolution_percent: Some(0.0),
        },
        // Ringing 10 s, on the call 120 s, wrap-up 30 s of 900 s available.
        occupancy_percent: Some(17.778),
        shifts: 1,
        calls_per_shift: Some(1.0),
        hold_survey: HoldSurvey {
            average_hold_seconds: Some(0.0),
            ..HoldSurvey::default()
        },
        ..row("2027-01-15T08:00:00Z", "2027-01-15T08:15:00Z", "1001")
    };
    // Available throughout the second quarter hour without a call.
    let second_1001 = AgentRow {
        occupancy_percent: Some(0.0),
        shifts: 1,
        calls_per_shift: Some(0.0),
        ..row("2027-01-15T08:15:00Z", "2027-01-15T08:30:00Z", "1001")
    };
    let second_1002 = AgentRow {
        offered: 1,
        answered: 1,
        average_speed_of_answer_seconds: Some(25.0),
        average_talk_seconds: Some(60.0),
        average_wrap_up_seconds: Some(0.0),
        average_handle_seconds: Some(60.0),
        first_contact: FirstContact {
            first_contact_calls: 1,
            first_contact_resolution_percent: Some(100.0),
        },
        // Ringing 25 s and on the call 60 s, of 550 s logged in.
        occupancy_percent: Some(15.455),
        shifts: 1,
        calls_per_shift: Some(1.0),
        hold_survey: HoldSurvey {
            average_hold_seconds: Some(0.0),
            ..HoldSurvey::default()
        },
        ..row("2027-01-15T08:15:00Z", "2027-01-15T08:30:00Z", "1002")
    };
    // 1002 was logged out in the first quarter hour, so it has no row there.
    assert_eq!(report.agents, vec![first_1001, second_1001, second_1002]);
}

#[tokio::test]
async fn day_interval_is_cut_to_the_range() {
    let stored = stored().await;
    let report = report(&stored, Interval::Day, Grouping::Queue).await;
    assert_eq!(report.queues.len(), 1);
    let row = &report.queues[0];
    assert_eq!(row.start, "2027-01-15T08:00:00Z");
    assert_eq!(row.end, "2027-01-15T08:30:00Z");
    assert_eq!(row.figures.offered, 3);
    assert_eq!(row.figures.answered, 2);
    assert_eq!(row.first_contact.first_contact_calls, 2);
    assert_eq!(
        row.first_contact.first_contact_resolution_percent,
        Some(50.0)
    );
}

#[tokio::test]
async fn open_first_contact_window_is_left_out() {
    let stored = stored().await;
    let mut request = request(Interval::Minutes60, Grouping::Queue);
    // Twelve hours after the range: no call's 24-hour window has passed.
    request.now_ms = request.to_ms + 12 * 3_600_000;
    let report = interval_report(&stored.events, &stored.cdr, request)
        .await
        .unwrap();
    assert_eq!(report.queues[0].first_contact, FirstContact::default());
}

#[tokio::test]
async fn agent_states_end_at_now() {
    let stored = stored().await;
    let mut request = request(Interval::Minutes15, Grouping::Agent);
    // The present is 08:10: 1001's time counts up to there only.
    request.now_ms = request.from_ms + 600_000;
    let report = interval_report(&stored.events, &stored.cdr, request)
        .await
        .unwrap();
    let first = &report.agents[0];
    assert_eq!(first.agent, "1001");
    // 160 s busy of 600 s.
    assert_eq!(first.occupancy_percent, Some(26.667));
}

#[tokio::test]
async fn future_range_has_no_agent_time() {
    let stored = stored().await;
    let mut request = request(Interval::Minutes15, Grouping::Agent);
    request.now_ms = request.from_ms - 1;
    let report = interval_report(&stored.events, &stored.cdr, request)
        .await
        .unwrap();
    // The offers and answers still count; states and shifts do not.
    for row in &report.agents {
        assert_eq!(row.occupancy_percent, None, "{row:?}");
        assert_eq!(row.shifts, 0, "{row:?}");
    }
    assert_eq!(report.agents.len(), 2, "{:?}", report.agents);
}

#[test]
fn interval_counts_and_names() {
    let hour = 3_600_000;
    let quarters = utc(Interval::Minutes15);
    assert_eq!(quarters.count(0, hour, 100), 4);
    // 00:05 to 00:20 touches two quarter hours.
    assert_eq!(quarters.count(300_000, 1_200_000, 100), 2);
    assert_eq!(utc(Interval::Day).count(0, DAY_MS + 1, 100), 2);
    // Counting stops one past the limit.
    assert_eq!(quarters.count(0, 10 * hour, 5), 6);
    for name in ["15", "30", "60", "day"] {
        assert_eq!(Interval::from_name(name).map(Interval::as_str), Some(name));
    }
    assert_eq!(Interval::from_name("45"), None);
    assert_eq!(Grouping::from_name("team"), None);
}
