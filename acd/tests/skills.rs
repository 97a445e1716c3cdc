//! Skills, levels, attached data and time-based skill expansion on a virtual clock.

mod common;

use std::time::Instant;

use acd::{Acd, Action, Destination, ExitReason, QueueEvent, RoutingStep, StepRule};
use common::*;

/// Builds the expansion steps of the queue "passport": 0-30 s service>=3 and language,
/// 30-60 s service>=1, from 60 s any agent, from 120 s voicemail.
fn passport_steps() -> Vec<RoutingStep> {
    vec![
        RoutingStep::new(
            secs(0),
            StepRule::Skills(vec![
                "service>=3".parse().unwrap(),
                "language".parse().unwrap(),
            ]),
        ),
        RoutingStep::new(
            secs(30),
            StepRule::Skills(vec!["service>=1".parse().unwrap()]),
        ),
        RoutingStep::new(secs(60), StepRule::AnyAgent),
        RoutingStep::new(
            secs(120),
            StepRule::Overflow(Destination::Voicemail("700".into())),
        ),
    ]
}

fn passport_acd(_t0: Instant) -> Acd {
    let mut acd = Acd::new();
    let mut config = queue("passport");
    config.steps = passport_steps();
    acd.add_queue(config);
    acd
}

const CALL_SKILLS: &[&str] = &["service=passport:4", "language=ru:2"];

#[test]
fn agent_without_skill_is_skipped() {
    let t0 = Instant::now();
    let mut acd = Acd::new();
    acd.add_queue(queue("q"));
    agent(&mut acd, "plain", "q", &[], t0);
    agent(
        &mut acd,
        "russian",
        "q",
        &[("language=ru", 3)],
        t0 + secs(1),
    );
    acd.enqueue_with("call-1", "q", requires(&["language=ru:1"]), t0 + secs(2))
        .unwrap();
    assert_eq!(actions(&mut acd), [offer("call-1", "russian")]);
}

#[test]
fn minimum_level_is_enforced() {
    let t0 = Instant::now();
    let mut acd = Acd::new();
    acd.add_queue(queue("q"));
    agent(&mut acd, "junior", "q", &[("service=passport", 2)], t0);
    acd.enqueue_with("call-1", "q", requires(&["service=passport:3"]), t0)
        .unwrap();
    assert!(actions(&mut acd).is_empty());

    acd.set_skills("junior", skills(&[("service=passport", 3)]), t0 + secs(1))
        .unwrap();
    assert_eq!(actions(&mut acd), [offer("call-1", "junior")]);
}

#[test]
fn first_step_applies_its_levels() {
    let t0 = Instant::now();
    let mut acd = passport_acd(t0);
    agent(
        &mut acd,
        "expert",
        "passport",
        &[("service=passport", 3), ("language=ru", 1)],
        t0,
    );
    acd.enqueue_with("call-1", "passport", requires(CALL_SKILLS), t0)
        .unwrap();
    // The step requires service>=3 (not the call's 4) and keeps language at the call's 2.
    assert!(actions(&mut acd).is_empty());
    acd.set_skills(
        "expert",
        skills(&[("service=passport", 3), ("language=ru", 2)]),
        t0,
    )
    .unwrap();
    assert_eq!(actions(&mut acd), [offer("call-1", "expert")]);
}

#[test]
fn steps_relax_requirements_as_call_waits() {
    let t0 = Instant::now();
    let mut acd = passport_acd(t0);
    agent(
        &mut acd,
        "novice",
        "passport",
        &[("service=passport", 1)],
        t0,
    );
    agent(&mut acd, "stranger", "passport", &[], t0);
    acd.enqueue_with("call-1", "passport", requires(CALL_SKILLS), t0)
        .unwrap();
    assert!(actions(&mut acd).is_empty());
    assert_eq!(acd.poll_timeout(), Some(t0 + secs(30)));

    acd.handle_timeout(t0 + secs(29));
    assert!(actions(&mut acd).is_empty());

    acd.handle_timeout(t0 + secs(30));
    assert_eq!(actions(&mut acd), [offer("call-1", "novice")]);
    assert!(
        events(&mut acd)
            .iter()
            .any(|e| matches!(e, QueueEvent::StepReached { step: 1, .. }))
    );
}

#[test]
fn any_agent_step_takes_unskilled_member() {
    let t0 = Instant::now();
    let mut acd = passport_acd(t0);
    agent(&mut acd, "stranger", "passport", &[], t0);
    acd.enqueue_with("call-1", "passport", requires(CALL_SKILLS), t0)
        .unwrap();
    acd.handle_timeout(t0 + secs(30));
    assert!(actions(&mut acd).is_empty());
    assert_eq!(acd.poll_timeout(), Some(t0 + secs(60)));

    acd.handle_timeout(t0 + secs(60));
    assert_eq!(actions(&mut acd), [offer("call-1", "stranger")]);
}

#[test]
fn overflow_step_sends_call_to_voicemail() {
    let t0 = Instant::now();
    let mut acd = passport_acd(t0);
    acd.enqueue_with("call-1", "passport", requires(CALL_SKILLS), t0)
        .unwrap();
    for step in [30, 60] {
        acd.handle_timeout(t0 + secs(step));
    }
    assert!(actions(&mut acd).is_empty());

    acd.handle_timeout(t0 + secs(120));
    assert_eq!(
        actions(&mut acd),
        [Action::Overflow {
            call: "call-1".into(),
            destination: Destination::Voicemail("700".into()),
            reason: ExitReason::Step,
        }]
    );
    assert_eq!(acd.queue_length("passport"), Some(0));
    assert_eq!(acd.poll_timeout(), None);
}

#[test]
fn late_timeout_skips_to_current_step() {
    let t0 = Instant::now();
    let mut acd = passport_acd(t0);
    agent(&mut acd, "stranger", "passport", &[], t0);
    acd.enqueue_with("call-1", "passport", requires(CALL_SKILLS), t0)
        .unwrap();
    acd.handle_timeout(t0 + secs(75));
    assert_eq!(actions(&mut acd), [offer("call-1", "stranger")]);
}

#[test]
fn overflow_to_queue_moves_call() {
    let t0 = Instant::now();
    let mut acd = Acd::new();
    let mut first = queue("first");
    first.steps = vec![RoutingStep::new(
        secs(20),
        StepRule::Overflow(Destination::Queue("backup".into())),
    )];
    acd.add_queue(first);
    acd.add_queue(queue("backup"));
    agent(&mut acd, "b", "backup", &[], t0);
    acd.enqueue("call-1", "first", t0).unwrap();
    assert!(actions(&mut acd).is_empty());

    acd.handle_timeout(t0 + secs(20));
    assert_eq!(actions(&mut acd), [offer("call-1", "b")]);
    assert_eq!(acd.queue_length("first"), Some(0));
    assert_eq!(acd.queue_length("backup"), Some(1));
    assert!(events(&mut acd).iter().any(|e| matches!(
        e,
        QueueEvent::CallEnqueued { queue, .. } if queue == "backup"
    )));
}

#[test]
fn attached_data_is_kept_with_call() {
    let t0 = Instant::now();
    let mut acd = Acd::new();
    acd.add_queue(queue("q"));
    let mut data = requires(&["language=kk:1"]);
    data.caller = Some("+77010000000".into());
    data.request_type = Some("passport".into());
    data.case_id = Some("C-42".into());
    acd.enqueue_with("call-1", "q", data.clone(), t0).unwrap();
    assert_eq!(acd.call_data("call-1"), Some(&data));
}

#[test]
fn priority_goes_before_waiting_time() {
    let t0 = Instant::now();
    let mut acd = Acd::new();
    acd.add_queue(queue("q"));
    acd.enqueue("normal", "q", t0).unwrap();
    let mut urgent = requires(&[]);
    urgent.priority = 5;
    acd.enqueue_with("urgent", "q", urgent, t0 + secs(10))
        .unwrap();
    assert_eq!(acd.position("urgent"), Some(1));
    assert_eq!(acd.position("normal"), Some(2));

    agent(&mut acd, "a", "q", &[], t0 + secs(11));
    assert_eq!(actions(&mut acd), [offer("urgent", "a")]);
}
