//! Distribution scenarios on a virtual clock: the tests advance `Instant`s by hand.

use std::time::{Duration, Instant};

use acd::{Acd, AcdError, Action, AgentState, QueueConfig, QueueEvent};

fn secs(n: u64) -> Duration {
    Duration::from_secs(n)
}

fn queue(name: &str) -> QueueConfig {
    QueueConfig {
        name: name.to_owned(),
        ring_timeout: secs(15),
        max_wait: secs(120),
        retry_delay: secs(5),
        wrap_up: secs(0),
        ..QueueConfig::default()
    }
}

fn queues(names: &[&str]) -> Vec<String> {
    names.iter().map(|name| (*name).to_owned()).collect()
}

fn offer(call: &str, agent: &str) -> Action {
    Action::Offer {
        call: call.to_owned(),
        agent: agent.to_owned(),
    }
}

fn cancel(call: &str, agent: &str) -> Action {
    Action::CancelOffer {
        call: call.to_owned(),
        agent: agent.to_owned(),
    }
}

fn actions(acd: &mut Acd) -> Vec<Action> {
    acd.assert_indexes_match_scan();
    std::iter::from_fn(|| acd.poll_action()).collect()
}

fn events(acd: &mut Acd) -> Vec<QueueEvent> {
    acd.assert_indexes_match_scan();
    std::iter::from_fn(|| acd.poll_event()).collect()
}

/// Adds an agent to `member_of` and makes it available at `at`.
fn available_agent(acd: &mut Acd, agent: &str, member_of: &[&str], at: Instant) {
    acd.add_agent(agent, &queues(member_of));
    acd.set_logged_in(agent, true, at);
    acd.set_reachable(agent, true, at);
}

/// Builds an ACD with queue "sales" whose agents became available one second
/// apart, in the given order.
fn sales_with_agents(config: QueueConfig, agents: &[&str]) -> (Acd, Instant) {
    let t0 = Instant::now();
    let mut acd = Acd::new();
    acd.add_queue(config);
    for (i, agent) in agents.iter().enumerate() {
        available_agent(&mut acd, agent, &["sales"], t0 + secs(i as u64));
    }
    let now = t0 + secs(agents.len() as u64);
    events(&mut acd);
    (acd, now)
}

#[test]
fn longest_idle_agent_is_offered_first() {
    let (mut acd, now) = sales_with_agents(queue("sales"), &["b", "a", "c"]);

    acd.enqueue("call-1", "sales", now).unwrap();
    acd.enqueue("call-2", "sales", now).unwrap();

    assert_eq!(
        actions(&mut acd),
        [offer("call-1", "b"), offer("call-2", "a")]
    );
    assert_eq!(acd.agent_state("b"), Some(AgentState::Ringing));
    assert_eq!(acd.agent_state("c"), Some(AgentState::Available));
}

#[test]
fn equal_idle_time_is_broken_by_agent_id() {
    let t0 = Instant::now();
    let mut acd = Acd::new();
    acd.add_queue(queue("sales"));
    for agent in ["z", "m", "a"] {
        available_agent(&mut acd, agent, &["sales"], t0);
    }

    acd.enqueue("call-1", "sales", t0 + secs(1)).unwrap();

    assert_eq!(actions(&mut acd), [offer("call-1", "a")]);
}

#[test]
fn ring_timeout_cancels_then_offers_next_agent() {
    let (mut acd, now) = sales_with_agents(queue("sales"), &["a", "b"]);
    acd.enqueue("call-1", "sales", now).unwrap();
    assert_eq!(actions(&mut acd), [offer("call-1", "a")]);
    assert_eq!(acd.poll_timeout(), Some(now + secs(15)));

    acd.handle_timeout(now + secs(14));
    assert!(actions(&mut acd).is_empty());

    let deadline = now + secs(15);
    acd.handle_timeout(deadline);
    assert_eq!(
        actions(&mut acd),
        [cancel("call-1", "a"), offer("call-1", "b")]
    );
    assert!(events(&mut acd).contains(&QueueEvent::OfferTimedOut {
        call: "call-1".to_owned(),
        queue: "sales".to_owned(),
        agent: "a".to_owned(),
        ring_time: secs(15),
        at: deadline,
    }));
    assert_eq!(acd.agent_state("a"), Some(AgentState::Available));
}

#[test]
fn rejected_offer_goes_to_next_agent_at_once() {
    let (mut acd, now) = sales_with_agents(queue("sales"), &["a", "b"]);
    acd.enqueue("call-1", "sales", now).unwrap();
    actions(&mut acd);

    acd.offer_rejected("call-1", "a", now + secs(1));

    assert_eq!(actions(&mut acd), [offer("call-1", "b")]);
}

#[test]
fn retry_delay_keeps_agent_from_same_call() {
    let (mut acd, now) = sales_with_agents(queue("sales"), &["a"]);
    acd.enqueue("call-1", "sales", now).unwrap();
    actions(&mut acd);

    let rejected_at = now + secs(2);
    acd.offer_rejected("call-1", "a", rejected_at);
    assert!(actions(&mut acd).is_empty());
    assert_eq!(acd.poll_timeout(), Some(rejected_at + secs(5)));

    acd.handle_timeout(rejected_at + secs(4));
    assert!(actions(&mut acd).is_empty());

    acd.handle_timeout(rejected_at + secs(5));
    assert_eq!(actions(&mut acd), [offer("call-1", "a")]);
}

#[test]
fn retry_delay_applies_after_ring_timeout() {
    let (mut acd, now) = sales_with_agents(queue("sales"), &["a"]);
    acd.enqueue("call-1", "sales", now).unwrap();
    actions(&mut acd);

    let timed_out_at = now + secs(15);
    acd.handle_timeout(timed_out_at);
    assert_eq!(actions(&mut acd), [cancel("call-1", "a")]);
    assert_eq!(acd.poll_timeout(), Some(timed_out_at + secs(5)));

    acd.handle_timeout(timed_out_at + secs(5));
    assert_eq!(actions(&mut acd), [offer("call-1", "a")]);
}

#[test]
fn agent_in_retry_delay_takes_other_call() {
    let (mut acd, now) = sales_with_agents(queue("sales"), &["a"]);
    acd.enqueue("call-1", "sales", now).unwrap();
    acd.enqueue("call-2", "sales", now).unwrap();
    assert_eq!(actions(&mut acd), [offer("call-1", "a")]);

    acd.offer_rejected("call-1", "a", now + secs(1));

    assert_eq!(actions(&mut acd), [offer("call-2", "a")]);
}

#[test]
fn unreachable_agent_is_skipped() {
    let (mut acd, now) = sales_with_agents(queue("sales"), &["a", "b"]);
    acd.set_reachable("a", false, now);
    assert_eq!(acd.agent_state("a"), Some(AgentState::Unreachable));

    acd.enqueue("call-1", "sales", now).unwrap();

    assert_eq!(actions(&mut acd), [offer("call-1", "b")]);
}

#[test]
fn logged_out_agent_is_skipped() {
    let (mut acd, now) = sales_with_agents(queue("sales"), &["a", "b"]);
    acd.set_logged_in("a", false, now);

    acd.enqueue("call-1", "sales", now).unwrap();

    assert_eq!(actions(&mut acd), [offer("call-1", "b")]);
}

#[test]
fn agent_becoming_reachable_gets_waiting_call() {
    let t0 = Instant::now();
    let mut acd = Acd::new();
    acd.add_queue(queue("sales"));
    acd.add_agent("a", &queues(&["sales"]));
    acd.set_logged_in("a", true, t0);
    acd.enqueue("call-1", "sales", t0).unwrap();
    assert!(actions(&mut acd).is_empty());

    acd.set_reachable("a", true, t0 + secs(3));

    assert_eq!(actions(&mut acd), [offer("call-1", "a")]);
}

#[test]
fn max_wait_without_offer_removes_call() {
    let t0 = Instant::now();
    let mut acd = Acd::new();
    acd.add_queue(queue("sales"));
    acd.enqueue("call-1", "sales", t0).unwrap();
    assert_eq!(acd.poll_timeout(), Some(t0 + secs(120)));

    acd.handle_timeout(t0 + secs(120));

    assert_eq!(
        actions(&mut acd),
        [Action::MaxWaitReached {
            call: "call-1".to_owned()
        }]
    );
    assert!(events(&mut acd).contains(&QueueEvent::CallTimedOut {
        call: "call-1".to_owned(),
        queue: "sales".to_owned(),
        agent: None,
        waited: secs(120),
        position: 1,
        joined_position: 1,
        at: t0 + secs(120),
    }));
    assert_eq!(acd.queue_length("sales"), Some(0));
    assert_eq!(acd.poll_timeout(), None);
}

#[test]
fn max_wait_during_offer_cancels_it_first() {
    let mut config = queue("sales");
    config.max_wait = secs(10);
    let (mut acd, now) = sales_with_agents(config, &["a"]);
    acd.enqueue("call-1", "sales", now).unwrap();
    actions(&mut acd);

    acd.handle_timeout(now + secs(10));

    assert_eq!(
        actions(&mut acd),
        [
            cancel("call-1", "a"),
            Action::MaxWaitReached {
                call: "call-1".to_owned()
            }
        ]
    );
    assert_eq!(acd.agent_state("a"), Some(AgentState::Available));
    assert_eq!(acd.queue_length("sales"), Some(0));
}

#[test]
fn max_wait_frees_agent_for_next_call() {
    let mut config = queue("sales");
    config.max_wait = secs(10);
    let (mut acd, now) = sales_with_agents(config, &["a"]);
    acd.enqueue("call-1", "sales", now).unwrap();
    acd.enqueue("call-2", "sales", now + secs(1)).unwrap();
    actions(&mut acd);

    acd.handle_timeout(now + secs(10));

    assert_eq!(
        actions(&mut acd),
        [
            cancel("call-1", "a"),
            Action::MaxWaitReached {
                call: "call-1".to_owned()
            },
            offer("call-2", "a"),
        ]
    );
}

#[test]
fn abandon_while_queued_removes_call() {
    let t0 = Instant::now();
    let mut acd = Acd::new();
    acd.add_queue(queue("sales"));
    acd.enqueue("call-1", "sales", t0).unwrap();
    events(&mut acd);

    acd.abandon("call-1", t0 + secs(7));

    assert_eq!(
        events(&mut acd),
        [QueueEvent::CallAbandoned {
            call: "call-1".to_owned(),
            queue: "sales".to_owned(),
            agent: None,
            waited: secs(7),
            position: 1,
            joined_position: 1,
            at: t0 + secs(7),
        }]
    );
    assert!(actions(&mut acd).is_empty());
    assert_eq!(acd.queue_length("sales"), Some(0));
    assert_eq!(acd.poll_timeout(), None);

    available_agent(&mut acd, "a", &["sales"], t0 + secs(8));
    assert!(actions(&mut acd).is_empty());
}

#[test]
fn abandon_while_ringing_frees_agent_without_cancel() {
    let (mut acd, now) = sales_with_agents(queue("sales"), &["a"]);
    acd.enqueue("call-1", "sales", now).unwrap();
    actions(&mut acd);

    acd.abandon("call-1", now + secs(3));

    assert!(actions(&mut acd).is_empty());
    assert_eq!(acd.agent_state("a"), Some(AgentState::Available));
    assert_eq!(acd.poll_timeout(), None);

    acd.enqueue("call-2", "sales", now + secs(4)).unwrap();
    assert_eq!(actions(&mut acd), [offer("call-2", "a")]);
}

#[test]
fn answer_after_abandon_is_ignored() {
    let (mut acd, now) = sales_with_agents(queue("sales"), &["a"]);
    acd.enqueue("call-1", "sales", now).unwrap();
    acd.abandon("call-1", now + secs(1));

    acd.offer_answered("call-1", "a", now + secs(2));

    assert_eq!(acd.agent_state("a"), Some(AgentState::Available));
}

#[test]
fn answer_from_other_agent_is_ignored() {
    let (mut acd, now) = sales_with_agents(queue("sales"), &["a", "b"]);
    acd.enqueue("call-1", "sales", now).unwrap();

    acd.offer_answered("call-1", "b", now + secs(1));

    assert_eq!(acd.agent_state("b"), Some(AgentState::Available));
    assert_eq!(acd.agent_state("a"), Some(AgentState::Ringing));
    assert_eq!(acd.queue_length("sales"), Some(1));
}

#[test]
fn wrap_up_delays_next_offer() {
    let mut config = queue("sales");
    config.wrap_up = secs(30);
    let (mut acd, now) = sales_with_agents(config, &["a"]);
    acd.enqueue("call-1", "sales", now).unwrap();
    acd.offer_answered("call-1", "a", now + secs(2));
    acd.enqueue("call-2", "sales", now + secs(3)).unwrap();
    actions(&mut acd);

    let ended_at = now + secs(60);
    acd.call_ended("a", ended_at);
    assert_eq!(acd.agent_state("a"), Some(AgentState::WrapUp));
    assert!(actions(&mut acd).is_empty());
    assert_eq!(acd.poll_timeout(), Some(ended_at + secs(30)));

    acd.handle_timeout(ended_at + secs(29));
    assert_eq!(acd.agent_state("a"), Some(AgentState::WrapUp));
    assert!(actions(&mut acd).is_empty());

    acd.handle_timeout(ended_at + secs(30));
    assert_eq!(actions(&mut acd), [offer("call-2", "a")]);
}

#[test]
fn idle_time_counts_from_end_of_wrap_up() {
    let mut config = queue("sales");
    config.wrap_up = secs(10);
    let (mut acd, now) = sales_with_agents(config, &["a", "b"]);
    acd.enqueue("call-1", "sales", now).unwrap();
    acd.offer_answered("call-1", "a", now);
    acd.call_ended("a", now + secs(5));
    // The wrap-up timer is handled late; "a" still counts as idle since the scheduled end.
    acd.handle_timeout(now + secs(40));
    actions(&mut acd);

    acd.enqueue("call-2", "sales", now + secs(40)).unwrap();
    acd.enqueue("call-3", "sales", now + secs(40)).unwrap();

    assert_eq!(
        actions(&mut acd),
        [offer("call-2", "b"), offer("call-3", "a")]
    );
}

#[test]
fn call_ended_restores_availability() {
    let (mut acd, now) = sales_with_agents(queue("sales"), &["a"]);
    acd.enqueue("call-1", "sales", now).unwrap();
    acd.offer_answered("call-1", "a", now + secs(1));
    acd.enqueue("call-2", "sales", now + secs(2)).unwrap();
    assert_eq!(acd.agent_state("a"), Some(AgentState::OnCall));
    assert_eq!(actions(&mut acd), [offer("call-1", "a")]);

    acd.call_ended("a", now + secs(50));

    assert_eq!(acd.agent_state("a"), Some(AgentState::Ringing));
    assert_eq!(actions(&mut acd), [offer("call-2", "a")]);
    let changes: Vec<(AgentState, AgentState)> = events(&mut acd)
        .into_iter()
        .filter_map(|event| match event {
            QueueEvent::AgentStateChanged { from, to, .. } => Some((from, to)),
            _ => None,
        })
        .collect();
    assert_eq!(
        changes,
        [
            (AgentState::Available, AgentState::Ringing),
            (AgentState::Ringing, AgentState::OnCall),
            (AgentState::OnCall, AgentState::Available),
            (AgentState::Available, AgentState::Ringing),
        ]
    );
}

#[test]
fn agent_in_two_queues_takes_longest_waiting_call() {
    let t0 = Instant::now();
    let mut acd = Acd::new();
    acd.add_queue(queue("sales"));
    acd.add_queue(queue("support"));
    acd.enqueue("support-1", "support", t0).unwrap();
    acd.enqueue("sales-1", "sales", t0 + secs(1)).unwrap();
    acd.enqueue("support-2", "support", t0 + secs(2)).unwrap();

    available_agent(&mut acd, "a", &["sales", "support"], t0 + secs(3));
    assert_eq!(actions(&mut acd), [offer("support-1", "a")]);

    acd.offer_answered("support-1", "a", t0 + secs(4));
    acd.call_ended("a", t0 + secs(5));
    assert_eq!(actions(&mut acd), [offer("sales-1", "a")]);
}

#[test]
fn agent_serves_only_its_queues() {
    let t0 = Instant::now();
    let mut acd = Acd::new();
    acd.add_queue(queue("sales"));
    acd.add_queue(queue("support"));
    available_agent(&mut acd, "a", &["sales"], t0);
    available_agent(&mut acd, "b", &["sales", "support"], t0 + secs(1));

    acd.enqueue("support-1", "support", t0 + secs(2)).unwrap();
    acd.enqueue("sales-1", "sales", t0 + secs(2)).unwrap();

    assert_eq!(
        actions(&mut acd),
        [offer("support-1", "b"), offer("sales-1", "a")]
    );
}

#[test]
fn enqueue_rejects_unknown_queue() {
    let mut acd = Acd::new();

    let result = acd.enqueue("call-1", "nowhere", Instant::now());

    assert_eq!(
        result,
        Err(AcdError::UnknownQueue {
            call: "call-1".to_owned(),
            queue: "nowhere".to_owned()
        })
    );
    assert!(events(&mut acd).is_empty());
}

#[test]
fn enqueue_rejects_duplicate_call() {
    let (mut acd, now) = sales_with_agents(queue("sales"), &["a"]);
    acd.add_queue(queue("support"));
    acd.enqueue("call-1", "sales", now).unwrap();
    let duplicate = Err(AcdError::DuplicateCall {
        call: "call-1".to_owned(),
        queue: "sales".to_owned(),
    });

    assert_eq!(acd.enqueue("call-1", "support", now), duplicate);
    acd.offer_answered("call-1", "a", now);
    assert_eq!(acd.enqueue("call-1", "support", now), duplicate);
    acd.call_ended("a", now);
    assert_eq!(acd.enqueue("call-1", "support", now), Ok(()));
}

#[test]
fn events_record_call_lifecycle() {
    let (mut acd, now) = sales_with_agents(queue("sales"), &["a"]);
    acd.enqueue("call-1", "sales", now).unwrap();
    acd.offer_answered("call-1", "a", now + secs(4));

    let lifecycle: Vec<QueueEvent> = events(&mut acd)
        .into_iter()
        .filter(|event| !matches!(event, QueueEvent::AgentStateChanged { .. }))
        .collect();
    assert_eq!(
        lifecycle,
        [
            QueueEvent::CallEnqueued {
                call: "call-1".to_owned(),
                queue: "sales".to_owned(),
                caller: None,
                request_type: None,
                position: 1,
                at: now
            },
            QueueEvent::OfferStarted {
                call: "call-1".to_owned(),
                queue: "sales".to_owned(),
                agent: "a".to_owned(),
                at: now
            },
            QueueEvent::OfferAnswered {
                call: "call-1".to_owned(),
                queue: "sales".to_owned(),
                agent: "a".to_owned(),
                waited: secs(4),
                ring_time: secs(4),
                joined_position: 1,
                at: now + secs(4)
            },
        ]
    );
}

#[test]
fn huge_timings_do_not_overflow() {
    let config = QueueConfig {
        name: "sales".to_owned(),
        ring_timeout: Duration::MAX,
        max_wait: Duration::MAX,
        retry_delay: Duration::MAX,
        wrap_up: Duration::MAX,
        ..QueueConfig::default()
    };
    let (mut acd, now) = sales_with_agents(config, &["a"]);

    acd.enqueue("call-1", "sales", now).unwrap();
    acd.offer_rejected("call-1", "a", now);
    acd.abandon("call-1", now);
    acd.enqueue("call-2", "sales", now).unwrap();
    acd.offer_answered("call-2", "a", now);
    acd.call_ended("a", now);

    assert_eq!(acd.agent_state("a"), Some(AgentState::WrapUp));
    assert!(acd.poll_timeout().is_some_and(|deadline| deadline > now));
}
