//! Queue limits, empty rules, exit keys, overflow and callback requests on a virtual clock.

mod common;

use std::time::Instant;

use acd::{
    Acd, AcdError, Action, AgentState, CallData, Destination, EmptyConditions, ExitReason,
    QueueEvent,
};
use common::*;

fn caller(number: &str) -> CallData {
    CallData {
        caller: Some(number.to_owned()),
        ..CallData::default()
    }
}

#[test]
fn full_queue_refuses_without_overflow() {
    let mut config = queue("q");
    config.max_length = Some(1);
    let (mut acd, now) = with_agents(config, &[]);
    acd.enqueue("c1", "q", now).unwrap();
    assert_eq!(
        acd.enqueue("c2", "q", now),
        Err(AcdError::QueueFull {
            call: "c2".into(),
            queue: "q".into(),
            max_length: 1
        })
    );
    assert_eq!(acd.queue_length("q"), Some(1));
}

#[test]
fn full_queue_overflows_to_voicemail() {
    let mut config = queue("q");
    config.max_length = Some(1);
    config.overflow = Some(Destination::Voicemail("800".into()));
    let (mut acd, now) = with_agents(config, &[]);
    acd.enqueue("c1", "q", now).unwrap();
    acd.enqueue("c2", "q", now).unwrap();
    assert_eq!(
        actions(&mut acd),
        [Action::Overflow {
            call: "c2".into(),
            destination: Destination::Voicemail("800".into()),
            reason: ExitReason::Full,
        }]
    );
    assert_eq!(acd.queue_length("q"), Some(1));
}

#[test]
fn full_queue_overflows_to_other_queue() {
    let t0 = Instant::now();
    let mut acd = Acd::new();
    let mut config = queue("q");
    config.max_length = Some(0);
    config.overflow = Some(Destination::Queue("spill".into()));
    acd.add_queue(config);
    acd.add_queue(queue("spill"));
    agent(&mut acd, "s", "spill", &[], t0);
    acd.enqueue("c1", "q", t0).unwrap();
    assert_eq!(actions(&mut acd), [offer("c1", "s")]);
}

#[test]
fn overflow_loop_is_an_error() {
    let t0 = Instant::now();
    let mut acd = Acd::new();
    for (name, next) in [("a", "b"), ("b", "a")] {
        let mut config = queue(name);
        config.max_length = Some(0);
        config.overflow = Some(Destination::Queue(next.into()));
        acd.add_queue(config);
    }
    assert_eq!(
        acd.enqueue("c1", "a", t0),
        Err(AcdError::OverflowLoop {
            call: "c1".into(),
            queue: "a".into()
        })
    );
}

#[test]
fn join_empty_counts_paused_agents_as_absent() {
    let mut config = queue("q");
    config.join_empty = Some(EmptyConditions::loose());
    let (mut acd, now) = with_agents(config, &["a"]);
    acd.set_not_ready("a", "break", now).unwrap();
    assert_eq!(
        acd.enqueue("c1", "q", now),
        Err(AcdError::QueueEmpty {
            call: "c1".into(),
            queue: "q".into()
        })
    );
    acd.set_ready("a", now).unwrap();
    acd.enqueue("c1", "q", now).unwrap();
}

#[test]
fn join_empty_strict_needs_free_agent() {
    let mut config = queue("q");
    config.join_empty = Some(EmptyConditions::strict());
    let (mut acd, now) = with_agents(config, &["a"]);
    acd.enqueue("c1", "q", now).unwrap();
    assert!(acd.enqueue("c2", "q", now).is_err());
}

#[test]
fn leave_empty_removes_waiting_callers() {
    let mut config = queue("q");
    config.leave_empty = Some(EmptyConditions::loose());
    let (mut acd, now) = with_agents(config, &["a"]);
    acd.set_not_ready("a", "break", now).unwrap();
    assert!(acd.enqueue("c1", "q", now).is_ok());
    assert_eq!(
        actions(&mut acd),
        [Action::MaxWaitReached { call: "c1".into() }]
    );
    assert!(events(&mut acd).iter().any(|e| matches!(
        e,
        QueueEvent::CallExited {
            reason: ExitReason::LeaveEmpty,
            ..
        }
    )));
    assert_eq!(acd.queue_length("q"), Some(0));
}

#[test]
fn exit_key_leaves_queue() {
    let mut config = queue("q");
    config
        .exit_keys
        .insert('0', Destination::Number("operator".into()));
    let (mut acd, now) = with_agents(config, &[]);
    acd.enqueue("c1", "q", now).unwrap();
    assert!(!acd.key_pressed("c1", '5', now));
    assert!(acd.key_pressed("c1", '0', now + secs(3)));
    assert_eq!(
        actions(&mut acd),
        [Action::Overflow {
            call: "c1".into(),
            destination: Destination::Number("operator".into()),
            reason: ExitReason::Key('0'),
        }]
    );
    assert_eq!(acd.queue_length("q"), Some(0));
}

#[test]
fn max_wait_overflows_when_destination_set() {
    let mut config = queue("q");
    config.max_wait = secs(60);
    config.overflow = Some(Destination::Voicemail("900".into()));
    let (mut acd, now) = with_agents(config, &[]);
    acd.enqueue("c1", "q", now).unwrap();
    acd.handle_timeout(now + secs(60));
    assert_eq!(
        actions(&mut acd),
        [Action::Overflow {
            call: "c1".into(),
            destination: Destination::Voicemail("900".into()),
            reason: ExitReason::MaxWait,
        }]
    );
}

#[test]
fn callback_keeps_place_and_reserves_agent() {
    let (mut acd, now) = with_agents(queue("q"), &[]);
    acd.enqueue_with("first", "q", caller("+7 700 111"), now)
        .unwrap();
    acd.enqueue_with("second", "q", caller("+7 700 222"), now + secs(1))
        .unwrap();
    acd.request_callback("first", None, now + secs(5)).unwrap();
    assert_eq!(acd.position("first"), Some(1));
    // A callback request has no max wait.
    assert_eq!(acd.poll_timeout(), Some(now + secs(601)));

    acd.handle_timeout(now + secs(601));
    assert_eq!(
        actions(&mut acd),
        [Action::MaxWaitReached {
            call: "second".into()
        }]
    );
    assert_eq!(acd.poll_timeout(), None);

    agent(&mut acd, "a", "q", &[], now + secs(700));
    assert_eq!(
        actions(&mut acd),
        [Action::Callback {
            call: "first".into(),
            agent: "a".into(),
            number: "+7 700 111".into(),
        }]
    );
    assert_eq!(acd.agent_state("a"), Some(AgentState::Ringing));
    acd.offer_answered("first", "a", now + secs(710));
    assert_eq!(acd.agent_state("a"), Some(AgentState::OnCall));
}

/// Events of the given kinds, in order, as short labels.
fn callback_trace(acd: &mut Acd) -> Vec<String> {
    events(acd)
        .into_iter()
        .filter_map(|event| match event {
            QueueEvent::CallbackDialing { call, agent, .. } => {
                Some(format!("dialing {call} {agent}"))
            }
            QueueEvent::CallbackNotReached {
                call,
                agent,
                cause,
                attempts,
                retry_at,
                ..
            } => Some(format!(
                "not reached {call} {agent} {} {attempts} {}",
                cause.as_str(),
                if retry_at.is_some() { "retry" } else { "final" }
            )),
            QueueEvent::OfferAnswered {
                call,
                agent,
                waited,
                ..
            } => Some(format!("answered {call} {agent} {}", waited.as_secs())),
            _ => None,
        })
        .collect()
}

fn callback_config() -> acd::QueueConfig {
    let mut config = queue("q");
    config.callback_attempts = 2;
    config.callback_retry_delay = secs(60);
    config.wrap_up = secs(10);
    config
}

#[test]
fn callback_counts_as_answered_when_the_citizen_answers() {
    let (mut acd, now) = with_agents(callback_config(), &[]);
    acd.enqueue_with("r", "q", caller("+7 700 111"), now)
        .unwrap();
    acd.request_callback("r", None, now + secs(5)).unwrap();
    agent(&mut acd, "a", "q", &[], now + secs(20));
    actions(&mut acd);
    events(&mut acd);
    acd.offer_answered("r", "a", now + secs(22));
    assert_eq!(callback_trace(&mut acd), ["dialing r a"]);
    assert_eq!(acd.agent_state("a"), Some(AgentState::OnCall));
    // The request stays known while its citizen is dialed.
    assert_eq!(acd.queue_of("r").as_deref(), Some("q"));
    assert!(acd.call_data("r").is_some());

    acd.callback_connected("r", now + secs(40));
    assert_eq!(callback_trace(&mut acd), ["answered r a 40"]);
    acd.call_ended("a", now + secs(100));
    let completed = events(&mut acd);
    assert!(
        completed.iter().any(|event| matches!(
            event,
            QueueEvent::CallCompleted { call, talk_time, .. }
                if call == "r" && *talk_time == secs(60)
        )),
        "{completed:?}"
    );
}

#[test]
fn callback_not_reached_retries_after_the_delay_then_fails() {
    let (mut acd, now) = with_agents(callback_config(), &[]);
    acd.enqueue_with("r", "q", caller("+7 700 111"), now)
        .unwrap();
    acd.request_callback("r", None, now + secs(5)).unwrap();
    agent(&mut acd, "a", "q", &[], now + secs(10));
    actions(&mut acd);
    events(&mut acd);
    acd.offer_answered("r", "a", now + secs(12));
    acd.callback_not_reached("r", acd::CallbackFailure::Busy, now + secs(20));
    assert_eq!(
        callback_trace(&mut acd),
        ["dialing r a", "not reached r a busy 1 retry"]
    );
    // Back in its place, but no agent gets it before the retry delay.
    assert_eq!(acd.position("r"), Some(1));
    assert_eq!(acd.agent_state("a"), Some(AgentState::WrapUp));
    acd.handle_timeout(now + secs(30));
    assert_eq!(acd.agent_state("a"), Some(AgentState::Available));
    assert_eq!(actions(&mut acd), []);
    assert_eq!(acd.poll_timeout(), Some(now + secs(80)));

    acd.handle_timeout(now + secs(80));
    assert_eq!(
        actions(&mut acd),
        [Action::Callback {
            call: "r".into(),
            agent: "a".into(),
            number: "+7 700 111".into(),
        }]
    );
    acd.offer_answered("r", "a", now + secs(81));
    acd.callback_not_reached("r", acd::CallbackFailure::NoAnswer, now + secs(126));
    assert_eq!(
        callback_trace(&mut acd),
        ["dialing r a", "not reached r a no_answer 2 final"]
    );
    assert_eq!(acd.position("r"), None);
    assert_eq!(acd.queue_length("q"), Some(0));
    acd.handle_timeout(now + secs(136));
    assert_eq!(actions(&mut acd), []);
    assert_eq!(acd.poll_timeout(), None);
}

#[test]
fn callback_cut_by_the_agent_goes_to_another_agent_at_once() {
    let mut config = callback_config();
    config.wrap_up = secs(0);
    let (mut acd, now) = with_agents(config, &[]);
    acd.enqueue_with("r", "q", caller("+7 700 111"), now)
        .unwrap();
    acd.request_callback("r", None, now + secs(5)).unwrap();
    agent(&mut acd, "a", "q", &[], now + secs(10));
    actions(&mut acd);
    acd.offer_answered("r", "a", now + secs(12));
    agent(&mut acd, "b", "q", &[], now + secs(13));
    events(&mut acd);
    // A hang-up by the agent reaches the ACD as the end of its call.
    acd.call_ended_by("a", acd::Party::Agent, now + secs(15));
    assert_eq!(
        callback_trace(&mut acd),
        ["not reached r a agent_left 0 retry"]
    );
    // "a" is free but held back from this request; "b" gets it.
    assert_eq!(
        actions(&mut acd),
        [Action::Callback {
            call: "r".into(),
            agent: "b".into(),
            number: "+7 700 111".into(),
        }]
    );
}

#[test]
fn callback_without_number_is_an_error() {
    let (mut acd, now) = with_agents(queue("q"), &[]);
    acd.enqueue("c1", "q", now).unwrap();
    assert!(acd.request_callback("c1", None, now).is_err());
    assert!(acd.request_callback("c1", Some("+7 700 333"), now).is_ok());
}

#[test]
fn expected_wait_uses_position_and_handle_time() {
    let (mut acd, now) = with_agents(queue("q"), &["a", "b"]);
    for (i, agent) in ["a", "b"].iter().enumerate() {
        let call = format!("warm-{i}");
        acd.enqueue(&call, "q", now).unwrap();
        acd.offer_answered(&call, agent, now);
    }
    acd.call_ended("a", now + secs(100));
    acd.call_ended("b", now + secs(100));
    actions(&mut acd);
    for i in 0..2 {
        let call = format!("busy-{i}");
        acd.enqueue(&call, "q", now + secs(101)).unwrap();
        let agent = offered_agent(&actions(&mut acd)).unwrap();
        acd.offer_answered(&call, &agent, now + secs(101));
    }
    for i in 0..3 {
        acd.enqueue(&format!("wait-{i}"), "q", now + secs(102))
            .unwrap();
    }
    // Two staffed agents, 100 s handle time: the third caller needs three
    // agents to free up, one every 50 s.
    assert_eq!(acd.expected_wait("wait-0"), Some(secs(50)));
    assert_eq!(acd.expected_wait("wait-2"), Some(secs(150)));
    let snapshot = acd.queue_snapshot("q", now + secs(102)).unwrap();
    assert_eq!(snapshot.staffed, 2);
    assert_eq!(snapshot.available, 0);
    assert_eq!(snapshot.average_handle_time, Some(secs(100)));
    assert!(snapshot.arrival_rate.is_some());
}
