//! Holds of connected calls and the survey events, on a virtual clock.

use std::time::{Duration, Instant};

use acd::{Acd, Party, QueueConfig, QueueEvent, SurveyOutcome};

fn secs(n: u64) -> Duration {
    Duration::from_secs(n)
}

/// An ACD whose agent 1001 answered call-1 of queue "sales" at the
/// returned instant, with the events so far drained.
fn connected() -> (Acd, Instant) {
    let t0 = Instant::now();
    let mut acd = Acd::new();
    acd.add_queue(QueueConfig {
        name: "sales".to_owned(),
        ring_timeout: secs(15),
        max_wait: secs(120),
        ..QueueConfig::default()
    });
    acd.add_agent("1001", &["sales".to_owned()]);
    acd.set_logged_in("1001", true, t0);
    acd.set_reachable("1001", true, t0);
    acd.enqueue("call-1", "sales", t0).unwrap();
    while acd.poll_action().is_some() {}
    acd.offer_answered("call-1", "1001", t0 + secs(2));
    while acd.poll_event().is_some() {}
    (acd, t0 + secs(2))
}

fn events(acd: &mut Acd) -> Vec<QueueEvent> {
    std::iter::from_fn(|| acd.poll_event()).collect()
}

#[test]
fn hold_and_resume_give_duration() {
    let (mut acd, answered) = connected();
    acd.call_held("call-1", Party::Agent, answered + secs(10));
    // A second hold offer while on hold starts nothing.
    acd.call_held("call-1", Party::Caller, answered + secs(12));
    acd.call_resumed("call-1", answered + secs(25));
    let expected = vec![
        QueueEvent::CallHeld {
            call: "call-1".into(),
            queue: "sales".into(),
            agent: "1001".into(),
            by: Party::Agent,
            at: answered + secs(10),
        },
        QueueEvent::CallResumed {
            call: "call-1".into(),
            queue: "sales".into(),
            agent: "1001".into(),
            by: Party::Agent,
            held: secs(15),
            at: answered + secs(25),
        },
    ];
    assert_eq!(events(&mut acd), expected);
    acd.call_resumed("call-1", answered + secs(30));
    assert_eq!(events(&mut acd), vec![], "a resume without hold is ignored");
}

#[test]
fn open_hold_ends_before_completion() {
    let (mut acd, answered) = connected();
    acd.call_held("call-1", Party::Caller, answered + secs(5));
    events(&mut acd);
    acd.call_ended_by("1001", Party::Agent, answered + secs(8));
    let events = events(&mut acd);
    assert!(
        matches!(
            events.first(),
            Some(QueueEvent::CallResumed { held, by: Party::Caller, .. }) if *held == secs(3)
        ),
        "{events:?}"
    );
    let completed = events.iter().find_map(|event| match event {
        QueueEvent::CallCompleted { talk_time, .. } => Some(*talk_time),
        _ => None,
    });
    assert_eq!(
        completed,
        Some(secs(8)),
        "talk time still includes the hold"
    );
}

#[test]
fn hold_of_unconnected_call_is_ignored() {
    let (mut acd, answered) = connected();
    acd.call_held("call-9", Party::Agent, answered);
    assert_eq!(events(&mut acd), vec![]);
}

#[test]
fn survey_events_name_call_queue_agent() {
    let (mut acd, answered) = connected();
    acd.call_ended_by("1001", Party::Agent, answered + secs(30));
    events(&mut acd);
    acd.survey_offered("call-1", "sales", "1001", answered + secs(30));
    let outcome = SurveyOutcome::Answered(4);
    acd.survey_finished("call-1", "sales", "1001", outcome, answered + secs(36));
    let expected = vec![
        QueueEvent::SurveyOffered {
            call: "call-1".into(),
            queue: "sales".into(),
            agent: "1001".into(),
            at: answered + secs(30),
        },
        QueueEvent::SurveyFinished {
            call: "call-1".into(),
            queue: "sales".into(),
            agent: "1001".into(),
            outcome,
            at: answered + secs(36),
        },
    ];
    assert_eq!(events(&mut acd), expected);
    assert_eq!(outcome.score(), Some(4));
    assert_eq!(SurveyOutcome::TimedOut.score(), None);
    assert_eq!(SurveyOutcome::Invalid.as_str(), "invalid");
}
