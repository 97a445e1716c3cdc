//! Figures from a day of events with known timing, checked against values
//! worked out by hand.

use std::time::{Duration, Instant, SystemTime};

use acd::{AgentState, Destination, ExitReason, Party, QueueEvent};
use sip_server::b2bua::StampedEvent;

use super::*;
use crate::events::{EventStore, NewEvent, unix_millis};

/// Start of the report range: 2027-01-15T08:00:00Z.
pub(crate) const FROM_SECS: u64 = 1_800_000_000;

pub(crate) struct Script {
    base: Instant,
    wall: SystemTime,
    pub(crate) events: Vec<NewEvent>,
}

impl Script {
    pub(crate) fn new() -> Script {
        Script {
            base: Instant::now(),
            wall: SystemTime::UNIX_EPOCH + Duration::from_secs(FROM_SECS),
            events: Vec::new(),
        }
    }

    /// Records `make(at)` as happening `seconds` after the range start.
    pub(crate) fn at(&mut self, seconds: f64, make: impl FnOnce(Instant) -> QueueEvent) {
        let offset = Duration::from_secs_f64(seconds.abs());
        let (at, wall) = if seconds >= 0.0 {
            (self.base + offset, self.wall + offset)
        } else {
            (self.base, self.wall - offset)
        };
        self.events.push(NewEvent::from_stamped(&StampedEvent {
            event: make(at),
            wall,
        }));
    }

    pub(crate) fn enqueue(&mut self, seconds: f64, call: &str, queue: &str) {
        self.at(seconds, |at| QueueEvent::CallEnqueued {
            call: call.into(),
            queue: queue.into(),
            caller: Some("+15550100".into()),
            request_type: None,
            position: 1,
            at,
        });
    }

    pub(crate) fn answer(
        &mut self,
        seconds: f64,
        call: &str,
        queue: &str,
        agent: &str,
        waited: f64,
    ) {
        self.state(seconds, agent, AgentState::Ringing, AgentState::OnCall);
        self.at(seconds, |at| QueueEvent::OfferAnswered {
            call: call.into(),
            queue: queue.into(),
            agent: agent.into(),
            waited: Duration::from_secs_f64(waited),
            ring_time: Duration::from_secs(2),
            joined_position: 1,
            at,
        });
    }

    pub(crate) fn complete(
        &mut self,
        seconds: f64,
        call: &str,
        queue: &str,
        agent: &str,
        talk: f64,
    ) {
        self.at(seconds, |at| QueueEvent::CallCompleted {
            call: call.into(),
            queue: queue.into(),
            agent: agent.into(),
            waited: Duration::ZERO,
            talk_time: Duration::from_secs_f64(talk),
            joined_position: 1,
            ended_by: Some(Party::Caller),
            at,
        });
    }

    pub(crate) fn state(&mut self, seconds: f64, agent: &str, from: AgentState, to: AgentState) {
        self.at(seconds, |at| QueueEvent::AgentStateChanged {
            agent: agent.into(),
            from,
            to,
            at,
        });
    }

    pub(crate) fn left(
        &mut self,
        seconds: f64,
        make: impl FnOnce(Duration, Instant) -> QueueEvent,
        waited: f64,
    ) {
        self.at(seconds, |at| make(Duration::from_secs_f64(waited), at));
    }
}

fn day() -> Script {
    use AgentState::{Available, NotReady, OnCall, WrapUp};
    let mut s = Script::new();
    // F entered before the range: left out even though it ends inside.
    s.enqueue(-5.0, "F", "general");
    s.answer(3.0, "F", "general", "1009", 8.0);
    s.complete(30.0, "F", "general", "1009", 27.0);
    // A: answered after 12 s, talks 60 s, wraps up 10 s.
    s.enqueue(0.0, "A", "general");
    s.answer(12.0, "A", "general", "1001", 12.0);
    // B: answered after 25 s, talks 90 s, no wrap-up.
    s.enqueue(10.0, "B", "general");
    // C: hangs up after 8 s.
    s.enqueue(20.0, "C", "general");
    s.left(
        28.0,
        |waited, at| QueueEvent::CallAbandoned {
            call: "C".into(),
            queue: "general".into(),
            agent: None,
            waited,
            position: 2,
            joined_position: 3,
            at,
        },
        8.0,
    );
    // D: reaches the max wait after 300 s.
    s.enqueue(30.0, "D", "general");
    s.answer(35.0, "B", "general", "1002", 25.0);
    // E: presses 1 after 5 s, moves to ru, answered there after 10 s in
    // all; its agent's wrap-up never ends within the events.
    s.enqueue(40.0, "E", "general");
    s.left(
        45.0,
        |waited, at| QueueEvent::CallExited {
            call: "E".into(),
            queue: "general".into(),
            reason: ExitReason::Key('1'),
            destination: Some(Destination::Queue("ru".into())),
            waited,
            position: 2,
            joined_position: 3,
            at,
        },
        5.0,
    );
    s.enqueue(45.0, "E", "ru");
    s.answer(50.0, "E", "ru", "1003", 10.0);
    // I: answered after exactly 20 s, talks 30 s, wraps up 15 s then
    // goes not ready.
    s.enqueue(50.0, "I", "general");
    s.answer(70.0, "I", "general", "1004", 20.0);
    s.complete(72.0, "A", "general", "1001", 60.0);
    s.state(72.0, "1001", OnCall, WrapUp);
    s.state(82.0, "1001", WrapUp, Available);
    s.complete(100.0, "I", "general", "1004", 30.0);
    s.state(100.0, "1004", OnCall, WrapUp);
    s.state(115.0, "1004", WrapUp, NotReady);
    s.complete(110.0, "E", "ru", "1003", 60.0);
    s.state(110.0, "1003", OnCall, WrapUp);
    s.complete(125.0, "B", "general", "1002", 90.0);
    s.state(125.0, "1002", OnCall, Available);
    s.left(
        330.0,
        |waited, at| QueueEvent::CallTimedOut {
            call: "D".into(),
            queue: "general".into(),
            agent: None,
            waited,
            position: 1,
            joined_position: 4,
            at,
        },
        300.0,
    );
    // G is still waiting at the end; H enters exactly at the range end.
    s.enqueue(3590.0, "G", "general");
    s.enqueue(3600.0, "H", "general");
    s
}

pub(crate) async fn stored(script: &Script) -> (tempfile::TempDir, EventStore) {
    let dir = tempfile::tempdir().unwrap();
    let cdr = cdr::CdrStore::open(dir.path()).await.unwrap();
    let store = EventStore::open(cdr.pool().clone()).await.unwrap();
    // Two batches, as the writer would commit them.
    let (first, second) = script.events.split_at(script.events.len() / 2);
    store.append(first).await.unwrap();
    store.append(second).await.unwrap();
    (dir, store)
}

pub(crate) fn range() -> (i64, i64) {
    let from = unix_millis(SystemTime::UNIX_EPOCH + Duration::from_secs(FROM_SECS));
    (from, from + 3_600_000)
}

#[tokio::test]
async fn figures_match_hand_computed_values() {
    let script = day();
    let (_dir, store) = stored(&script).await;
    let (from, to) = range();
    let report = queue_report(&store, from, to).await.unwrap();

    let general = QueueKpi {
        queue: "general".into(),
        // A, B, C, D, E, I and G; not F (before) nor H (at the end).
        offered: 7,
        answered: 3,
        abandoned: 1,
        // 1 of 7.
        abandon_percent: Some(14.286),
        // C.
        average_abandon_seconds: Some(8.0),
        timed_out: 1,
        exited_by_key: 1,
        exited_other: 0,
        callbacks_not_reached: 0,
        unresolved: 1,
        // (12 + 25 + 20) / 3.
        average_speed_of_answer_seconds: Some(19.0),
        // (60 + 90 + 30) / 3.
        average_talk_seconds: Some(60.0),
        // (10 + 0 + 15) / 3.
        average_wrap_up_seconds: Some(8.333),
        // (70 + 90 + 45) / 3.
        average_handle_seconds: Some(68.333),
        // A (12 s) and I (20 s) of 7 offered.
        service_level_20_percent: Some(28.571),
        // A, B (25 s) and I of 7.
        service_level_30_percent: Some(42.857),
        // D.
        longest_wait_seconds: Some(300.0),
        hold_survey: HoldSurvey {
            average_hold_seconds: Some(0.0),
            ..HoldSurvey::default()
        },
    };
    let ru = QueueKpi {
        queue: "ru".into(),
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
        average_speed_of_answer_seconds: Some(10.0),
        average_talk_seconds: Some(60.0),
        // The wrap-up after E has not ended, so no handle time yet.
        average_wrap_up_seconds: None,
        average_handle_seconds: None,
        service_level_20_percent: Some(100.0),
        service_level_30_percent: Some(100.0),
        longest_wait_seconds: Some(10.0),
        hold_survey: HoldSurvey {
            average_hold_seconds: Some(0.0),
            ..HoldSurvey::default()
        },
    };
    assert_eq!(report, vec![general, ru]);
}

/// A failed attempt at callback request `call`, the last one when `last`.
fn not_reached(s: &mut Script, seconds: f64, call: &str, attempts: u32, last: bool) {
    s.at(seconds, |at| QueueEvent::CallbackNotReached {
        call: call.into(),
        queue: "callbacks".into(),
        agent: "1001".into(),
        cause: acd::CallbackFailure::Busy,
        attempts,
        retry_at: (!last).then_some(at + Duration::from_secs(300)),
        waited: Duration::from_secs_f64(seconds),
        at,
    });
}

#[tokio::test]
async fn callbacks_count_as_answered_only_when_the_citizen_answers() {
    let mut s = Script::new();
    for call in ["J", "K"] {
        s.enqueue(0.0, call, "callbacks");
        s.at(10.0, |at| QueueEvent::CallbackRequested {
            call: call.into(),
            queue: "callbacks".into(),
            number: "+15550100".into(),
            data: acd::CallData::default(),
            arrived: at - Duration::from_secs(10),
            at,
        });
    }
    // J: busy once, then the citizen answers 400 s after calling.
    s.at(60.0, |at| QueueEvent::CallbackDialing {
        call: "J".into(),
        queue: "callbacks".into(),
        agent: "1001".into(),
        ring_time: Duration::from_secs(2),
        at,
    });
    not_reached(&mut s, 70.0, "J", 1, false);
    s.answer(400.0, "J", "callbacks", "1001", 400.0);
    // K: busy on both attempts, so the request ends unanswered.
    not_reached(&mut s, 90.0, "K", 1, false);
    not_reached(&mut s, 500.0, "K", 2, true);
    let (_dir, store) = stored(&s).await;
    let (from, to) = range();
    let report = queue_report(&store, from, to).await.unwrap();
    assert_eq!(report.len(), 1);
    let kpi = &report[0];
    assert_eq!(
        (
            kpi.offered,
            kpi.answered,
            kpi.callbacks_not_reached,
            kpi.abandoned,
            kpi.unresolved
        ),
        (2, 1, 1, 0, 0)
    );
    assert_eq!(kpi.average_speed_of_answer_seconds, Some(400.0));
    assert_eq!(kpi.longest_wait_seconds, Some(500.0));
}

#[tokio::test]
async fn an_empty_range_has_no_queues() {
    let script = day();
    let (_dir, store) = stored(&script).await;
    let (from, _) = range();
    let report = queue_report(&store, from - 60_000, from - 10_000)
        .await
        .unwrap();
    assert!(report.is_empty(), "{report:?}");
}

#[tokio::test]
async fn a_later_range_leaves_earlier_calls_out() {
    let script = day();
    let (_dir, store) = stored(&script).await;
    let (from, to) = range();
    // From 3500 s on only G entered (H at the old end now counts too).
    let report = queue_report(&store, from + 3_500_000, to + 1)
        .await
        .unwrap();
    assert_eq!(report.len(), 1);
    assert_eq!(report[0].offered, 2);
    assert_eq!(report[0].unresolved, 2);
    assert_eq!(report[0].service_level_20_percent, Some(0.0));
    assert_eq!(report[0].average_speed_of_answer_seconds, None);
    assert_eq!(report[0].longest_wait_seconds, None);
}
