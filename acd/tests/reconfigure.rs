//! Configuration changes with calls in progress: queues updated and
//! removed, agents removed, and the statistics a queue keeps, on a
//! virtual clock.

mod common;

use acd::{
    AcdError, Action, AgentState, QueueEvent, RoutingStep, StepRule, Strategy, queue_log_lines,
};
use common::*;

fn member_events(events: &[QueueEvent]) -> Vec<String> {
    events
        .iter()
        .flat_map(|event| queue_log_lines(event, 0))
        .filter(|line| line.contains("MEMBER"))
        .collect()
}

#[test]
fn removed_queue_keeps_serving_its_waiting_calls() {
    let (mut acd, now) = with_agents(queue("q"), &["a"]);
    acd.set_not_ready("a", "break", now).unwrap();
    acd.enqueue("c1", "q", now).unwrap();
    events(&mut acd);

    acd.remove_queue("q", now + secs(1)).unwrap();
    assert!(acd.is_queue_retiring("q"));
    assert_eq!(
        acd.enqueue("c2", "q", now + secs(2)),
        Err(AcdError::UnknownQueue {
            call: "c2".into(),
            queue: "q".into()
        }),
        "a removed queue takes no new call"
    );
    assert_eq!(acd.queue_length("q"), Some(1), "the waiting call stays");

    acd.set_ready("a", now + secs(3)).unwrap();
    assert_eq!(actions(&mut acd), [offer("c1", "a")]);
    acd.offer_answered("c1", "a", now + secs(4));
    assert!(
        acd.queue_names().contains(&"q".to_owned()),
        "the queue stays while its call is connected"
    );
    events(&mut acd);

    acd.call_ended("a", now + secs(30));
    assert!(acd.queue_names().is_empty(), "the drained queue is gone");
    assert_eq!(acd.agent_queues("a"), Some(Vec::new()));
    assert_eq!(
        member_events(&events(&mut acd)),
        ["0|NONE|q|a|REMOVEMEMBER|"]
    );
}

#[test]
fn readding_a_removed_queue_keeps_it() {
    let (mut acd, now) = with_agents(queue("q"), &["a"]);
    acd.set_not_ready("a", "break", now).unwrap();
    acd.enqueue("c1", "q", now).unwrap();
    acd.remove_queue("q", now).unwrap();
    acd.update_queue(queue("q"), now + secs(1));
    assert!(!acd.is_queue_retiring("q"));
    acd.enqueue("c2", "q", now + secs(2)).unwrap();
    assert_eq!(acd.queue_length("q"), Some(2));
    assert_eq!(
        acd.remove_queue("nope", now),
        Err(AcdError::QueueNotFound {
            queue: "nope".into()
        })
    );
}

#[test]
fn updated_queue_applies_new_strategy_and_steps() {
    let (mut acd, now) = with_agents(queue("q"), &["a", "b"]);
    acd.set_skills("a", skills(&[("language=ru", 1)]), now)
        .unwrap();
    acd.set_skills("b", skills(&[("language=ru", 5)]), now)
        .unwrap();
    acd.set_not_ready("a", "break", now).unwrap();
    acd.set_not_ready("b", "break", now).unwrap();
    acd.enqueue_with("c1", "q", requires(&["language=ru:3"]), now)
        .unwrap();
    events(&mut acd);

    // From 10 s the call takes any member; a is idle longest, but the new
    // strategy picks the most proficient agent.
    let mut updated = queue("q");
    updated.strategy = Strategy::BestProficiency;
    updated.steps = vec![RoutingStep::new(secs(10), StepRule::AnyAgent)];
    acd.update_queue(updated, now + secs(1));
    assert_eq!(
        acd.queue_config("q").unwrap().strategy,
        Strategy::BestProficiency
    );
    acd.set_ready("a", now + secs(2)).unwrap();
    assert!(
        actions(&mut acd).is_empty(),
        "a lacks the level before 10 s"
    );

    acd.handle_timeout(now + secs(10));
    assert_eq!(
        actions(&mut acd),
        [offer("c1", "a")],
        "the new step applies"
    );
}

#[test]
fn updated_step_rule_applies_to_a_call_already_on_that_step() {
    let mut config = queue("q");
    config.steps = vec![RoutingStep::new(
        secs(0),
        StepRule::Skills(vec!["language".parse().unwrap()]),
    )];
    let (mut acd, now) = with_agents(config, &["a"]);
    acd.set_skills("a", skills(&[("language=ru", 1)]), now)
        .unwrap();
    acd.set_not_ready("a", "break", now).unwrap();
    acd.enqueue_with("c1", "q", requires(&["language=ru:3"]), now)
        .unwrap();
    acd.set_ready("a", now + secs(1)).unwrap();
    assert!(actions(&mut acd).is_empty());

    let mut relaxed = queue("q");
    relaxed.steps = vec![RoutingStep::new(
        secs(0),
        StepRule::Skills(vec!["language>=1".parse().unwrap()]),
    )];
    acd.update_queue(relaxed, now + secs(2));
    assert_eq!(actions(&mut acd), [offer("c1", "a")]);
}

#[test]
fn removed_agent_finishes_its_call_first() {
    let (mut acd, now) = with_agents(queue("q"), &["a", "b"]);
    acd.enqueue("c1", "q", now).unwrap();
    assert_eq!(actions(&mut acd), [offer("c1", "a")]);
    acd.offer_answered("c1", "a", now + secs(1));
    events(&mut acd);

    acd.remove_agent("a", now + secs(2)).unwrap();
    assert_eq!(acd.agent_state("a"), Some(AgentState::OnCall));
    assert_eq!(acd.agent_queues("a"), Some(Vec::new()));
    assert_eq!(
        member_events(&events(&mut acd)),
        ["0|NONE|q|a|REMOVEMEMBER|"]
    );
    acd.enqueue("c2", "q", now + secs(3)).unwrap();
    assert_eq!(actions(&mut acd), [offer("c2", "b")]);

    acd.call_ended("a", now + secs(60));
    assert_eq!(acd.agent_state("a"), None, "forgotten once idle");
    let snapshot = acd.queue_snapshot("q", now + secs(60)).unwrap();
    assert_eq!(snapshot.answered, 1);
    assert_eq!(
        acd.remove_agent("a", now + secs(61)),
        Err(AcdError::UnknownAgent { agent: "a".into() })
    );
}

#[test]
fn idle_removed_agent_goes_at_once_and_can_come_back() {
    let (mut acd, now) = with_agents(queue("q"), &["a"]);
    acd.remove_agent("a", now).unwrap();
    assert_eq!(acd.agent_state("a"), None);
    acd.add_agent("a", &["q".to_owned()]);
    assert_eq!(acd.agent_state("a"), Some(AgentState::LoggedOut));
}

#[test]
fn agent_readded_during_its_call_is_kept() {
    let (mut acd, now) = with_agents(queue("q"), &["a"]);
    acd.enqueue("c1", "q", now).unwrap();
    acd.offer_answered("c1", "a", now);
    acd.remove_agent("a", now + secs(1)).unwrap();
    acd.add_agent("a", &["q".to_owned()]);
    acd.set_logged_in("a", true, now + secs(2));
    acd.call_ended("a", now + secs(10));
    assert_eq!(acd.agent_state("a"), Some(AgentState::Available));
}

#[test]
fn snapshot_counts_outcomes_and_service_level() {
    let mut config = queue("q");
    config.service_level = secs(20);
    config.max_wait = secs(100);
    let (mut acd, now) = with_agents(config, &["a"]);
    acd.set_not_ready("a", "break", now).unwrap();
    // c1 answered after 10 s (in service level), c2 after 30 s, c3
    // abandoned, c4 timed out.
    for call in ["c1", "c2", "c3", "c4"] {
        acd.enqueue(call, "q", now).unwrap();
    }
    let snapshot = acd.queue_snapshot("q", now + secs(5)).unwrap();
    assert_eq!(snapshot.longest_wait, secs(5));
    assert_eq!(snapshot.service_level, None);

    acd.set_ready("a", now + secs(10)).unwrap();
    assert_eq!(actions(&mut acd), [offer("c1", "a")]);
    acd.offer_answered("c1", "a", now + secs(10));
    acd.call_ended("a", now + secs(30));
    assert_eq!(actions(&mut acd), [offer("c2", "a")]);
    acd.offer_answered("c2", "a", now + secs(30));
    acd.abandon("c3", now + secs(40));
    acd.handle_timeout(now + secs(100));
    assert!(actions(&mut acd).contains(&Action::MaxWaitReached { call: "c4".into() }));

    let snapshot = acd.queue_snapshot("q", now + secs(100)).unwrap();
    assert_eq!(snapshot.calls, 0);
    assert_eq!(snapshot.longest_wait, secs(0));
    assert_eq!(snapshot.answered, 2);
    assert_eq!(snapshot.answered_in_service_level, 1);
    assert_eq!(snapshot.abandoned, 1);
    assert_eq!(snapshot.timed_out, 1);
    assert_eq!(snapshot.exited, 0);
    assert_eq!(snapshot.service_level, Some(0.25));
    assert_eq!(snapshot.service_level_target, secs(20));
    assert_eq!(snapshot.average_answer_wait, Some(secs(20)));
}

#[test]
fn refused_calls_count_as_exited() {
    let mut config = queue("q");
    config.max_length = Some(1);
    let (mut acd, now) = with_agents(config, &[]);
    acd.enqueue("c1", "q", now).unwrap();
    assert!(acd.enqueue("c2", "q", now).is_err());
    let snapshot = acd.queue_snapshot("q", now).unwrap();
    assert_eq!(snapshot.exited, 1);
    assert_eq!(snapshot.service_level, Some(0.0));
}
