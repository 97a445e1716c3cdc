//! Agent states: not ready with reason codes, wrap-up codes and maximum,
//! no-answer handling and delays, on a virtual clock.

mod common;

use acd::{AcdError, AgentState, NO_ANSWER_REASON, QueueEvent};
use common::*;

#[test]
fn not_ready_agent_gets_no_offer() {
    let (mut acd, now) = with_agents(queue("q"), &["a"]);
    acd.set_not_ready("a", "lunch", now).unwrap();
    assert_eq!(acd.agent_state("a"), Some(AgentState::NotReady));
    assert_eq!(
        acd.agent_status("a").unwrap().not_ready_reason.as_deref(),
        Some("lunch")
    );
    acd.enqueue("c1", "q", now).unwrap();
    assert!(actions(&mut acd).is_empty());

    acd.set_ready("a", now + secs(30)).unwrap();
    assert_eq!(actions(&mut acd), [offer("c1", "a")]);
    let events = events(&mut acd);
    assert!(events.iter().any(|e| matches!(
        e,
        QueueEvent::AgentNotReady { reason, queues, .. } if reason == "lunch" && queues == &["q"]
    )));
    assert!(
        events
            .iter()
            .any(|e| matches!(e, QueueEvent::AgentReady { .. }))
    );
}

#[test]
fn not_ready_during_call_applies_after_it() {
    let (mut acd, now) = with_agents(queue("q"), &["a"]);
    acd.enqueue("c1", "q", now).unwrap();
    acd.offer_answered("c1", "a", now);
    acd.set_not_ready("a", "break", now + secs(5)).unwrap();
    assert_eq!(acd.agent_state("a"), Some(AgentState::OnCall));

    acd.call_ended("a", now + secs(60));
    assert_eq!(acd.agent_state("a"), Some(AgentState::NotReady));
    acd.enqueue("c2", "q", now + secs(61)).unwrap();
    assert!(actions(&mut acd).iter().all(|a| *a == offer("c1", "a")));
}

#[test]
fn unknown_agent_is_an_error() {
    let (mut acd, now) = with_agents(queue("q"), &[]);
    assert_eq!(
        acd.set_not_ready("ghost", "break", now),
        Err(AcdError::UnknownAgent {
            agent: "ghost".into()
        })
    );
}

#[test]
fn wrap_up_ends_early_or_at_maximum() {
    let mut config = queue("q");
    config.wrap_up = secs(30);
    let (mut acd, now) = with_agents(config, &["a"]);
    acd.enqueue("c1", "q", now).unwrap();
    acd.offer_answered("c1", "a", now);
    acd.call_ended("a", now + secs(10));
    assert_eq!(acd.agent_state("a"), Some(AgentState::WrapUp));
    acd.set_wrap_up_code("a", "resolved", now + secs(12))
        .unwrap();
    acd.end_wrap_up("a", now + secs(15)).unwrap();
    assert_eq!(acd.agent_state("a"), Some(AgentState::Available));
    assert!(events(&mut acd).iter().any(|e| matches!(
        e,
        QueueEvent::WrapUpCodeSet { code, call, .. } if code == "resolved" && call == "c1"
    )));
    assert_eq!(
        acd.end_wrap_up("a", now + secs(16)),
        Err(AcdError::NotInWrapUp { agent: "a".into() })
    );

    acd.enqueue("c2", "q", now + secs(20)).unwrap();
    acd.offer_answered("c2", "a", now + secs(20));
    acd.call_ended("a", now + secs(30));
    assert_eq!(acd.poll_timeout(), Some(now + secs(60)));
    acd.handle_timeout(now + secs(60));
    assert_eq!(acd.agent_state("a"), Some(AgentState::Available));
}

#[test]
fn agent_wrap_up_replaces_queue_wrap_up() {
    let mut config = queue("q");
    config.wrap_up = secs(30);
    let (mut acd, now) = with_agents(config, &["a", "b"]);
    acd.set_wrap_up("a", Some(secs(90))).unwrap();
    acd.set_wrap_up("b", Some(secs(0))).unwrap();
    acd.enqueue("c1", "q", now).unwrap();
    acd.offer_answered("c1", "a", now);
    acd.enqueue("c2", "q", now).unwrap();
    acd.offer_answered("c2", "b", now);
    acd.call_ended("a", now + secs(10));
    acd.call_ended("b", now + secs(10));
    // b has no wrap-up at all, whatever the queue sets.
    assert_eq!(acd.agent_state("b"), Some(AgentState::Available));
    assert_eq!(acd.agent_state("a"), Some(AgentState::WrapUp));
    assert_eq!(acd.poll_timeout(), Some(now + secs(100)));
    acd.handle_timeout(now + secs(40));
    assert_eq!(
        acd.agent_state("a"),
        Some(AgentState::WrapUp),
        "the queue's 30 s do not apply"
    );
    acd.handle_timeout(now + secs(100));
    assert_eq!(acd.agent_state("a"), Some(AgentState::Available));

    // Back to the queue's wrap-up; b, idle the longest, takes the call.
    acd.set_wrap_up("b", None).unwrap();
    acd.enqueue("c3", "q", now + secs(110)).unwrap();
    acd.offer_answered("c3", "b", now + secs(110));
    acd.call_ended("b", now + secs(120));
    assert_eq!(acd.agent_state("b"), Some(AgentState::WrapUp));
    assert_eq!(acd.poll_timeout(), Some(now + secs(150)));
    assert_eq!(
        acd.set_wrap_up("ghost", None),
        Err(AcdError::UnknownAgent {
            agent: "ghost".into()
        })
    );
}

#[test]
fn max_no_answer_sets_agent_not_ready() {
    let mut config = queue("q");
    config.max_no_answer = 2;
    config.retry_delay = secs(0);
    let (mut acd, now) = with_agents(config, &["a"]);
    acd.enqueue("c1", "q", now).unwrap();
    acd.handle_timeout(now + secs(15));
    assert_eq!(acd.agent_state("a"), Some(AgentState::Ringing));
    acd.handle_timeout(now + secs(30));

    assert_eq!(acd.agent_state("a"), Some(AgentState::NotReady));
    let status = acd.agent_status("a").unwrap();
    assert_eq!(status.not_ready_reason.as_deref(), Some(NO_ANSWER_REASON));
    assert_eq!(status.consecutive_no_answer, 2);
}

#[test]
fn answer_resets_no_answer_count() {
    let mut config = queue("q");
    config.max_no_answer = 2;
    let (mut acd, now) = with_agents(config, &["a"]);
    acd.enqueue("c1", "q", now).unwrap();
    acd.offer_rejected("c1", "a", now + secs(1));
    acd.handle_timeout(now + secs(6));
    acd.offer_answered("c1", "a", now + secs(7));
    assert_eq!(acd.agent_status("a").unwrap().consecutive_no_answer, 0);
}

#[test]
fn reject_delay_blocks_all_calls() {
    let mut config = queue("q");
    config.reject_delay = secs(10);
    let (mut acd, now) = with_agents(config, &["a"]);
    acd.enqueue("c1", "q", now).unwrap();
    acd.offer_rejected("c1", "a", now);
    acd.enqueue("c2", "q", now + secs(1)).unwrap();
    assert_eq!(actions(&mut acd), [offer("c1", "a")]);
    assert_eq!(acd.poll_timeout(), Some(now + secs(5)));
    acd.handle_timeout(now + secs(5));
    assert!(actions(&mut acd).is_empty());
    assert_eq!(acd.poll_timeout(), Some(now + secs(10)));

    acd.handle_timeout(now + secs(10));
    assert_eq!(actions(&mut acd), [offer("c1", "a")]);
}

#[test]
fn busy_uses_busy_delay_and_is_not_counted() {
    let mut config = queue("q");
    config.busy_delay = secs(20);
    config.reject_delay = secs(2);
    config.max_no_answer = 1;
    let (mut acd, now) = with_agents(config, &["a", "b"]);
    acd.enqueue("c1", "q", now).unwrap();
    actions(&mut acd);
    acd.offer_busy("c1", "a", now);
    assert_eq!(actions(&mut acd), [offer("c1", "b")]);
    acd.offer_answered("c1", "b", now);
    assert_eq!(acd.agent_state("a"), Some(AgentState::Available));
    assert_eq!(acd.agent_status("a").unwrap().consecutive_no_answer, 0);
    acd.enqueue("c2", "q", now + secs(19)).unwrap();
    assert!(actions(&mut acd).is_empty());
    acd.handle_timeout(now + secs(20));
    assert_eq!(actions(&mut acd), [offer("c2", "a")]);
}

#[test]
fn logout_clears_not_ready() {
    let (mut acd, now) = with_agents(queue("q"), &["a"]);
    acd.set_not_ready("a", "training", now).unwrap();
    acd.set_logged_in("a", false, now + secs(1));
    assert_eq!(acd.agent_state("a"), Some(AgentState::LoggedOut));
    acd.set_logged_in("a", true, now + secs(2));
    assert_eq!(acd.agent_state("a"), Some(AgentState::Available));
}

#[test]
fn logout_during_call_is_an_event_at_once() {
    let (mut acd, now) = with_agents(queue("q"), &["a"]);
    acd.enqueue("c1", "q", now).unwrap();
    acd.offer_answered("c1", "a", now);
    events(&mut acd);

    acd.set_logged_in("a", false, now + secs(5));
    assert_eq!(acd.agent_state("a"), Some(AgentState::OnCall));
    let during = events(&mut acd);
    assert!(
        matches!(
            during.as_slice(),
            [QueueEvent::AgentLogin { agent, logged_in: false, .. }] if agent == "a"
        ),
        "{during:?}"
    );

    acd.call_ended("a", now + secs(60));
    let after = events(&mut acd);
    assert!(
        after.iter().any(|e| matches!(
            e,
            QueueEvent::AgentStateChanged {
                from: AgentState::OnCall,
                to: AgentState::LoggedOut,
                ..
            }
        )),
        "{after:?}"
    );
    // A repeated logout changes nothing and records nothing.
    acd.set_logged_in("a", false, now + secs(61));
    assert!(events(&mut acd).is_empty());
}

#[test]
fn logout_ends_pause_without_availability() {
    let (mut acd, now) = with_agents(queue("q"), &["a"]);
    acd.set_not_ready("a", "lunch", now).unwrap();
    events(&mut acd);

    acd.set_logged_in("a", false, now + secs(10));
    let events = events(&mut acd);
    assert!(
        matches!(
            events.as_slice(),
            [
                QueueEvent::AgentLogin { logged_in: false, .. },
                QueueEvent::AgentReady { reason, queues, .. },
                QueueEvent::AgentStateChanged {
                    from: AgentState::NotReady,
                    to: AgentState::LoggedOut,
                    ..
                },
            ] if reason == "lunch" && queues == &["q"]
        ),
        "{events:?}"
    );
    assert_eq!(acd.agent_status("a").unwrap().not_ready_reason, None);
}

#[test]
fn reachability_during_call_keeps_its_cause() {
    let (mut acd, now) = with_agents(queue("q"), &["a"]);
    acd.enqueue("c1", "q", now).unwrap();
    acd.offer_answered("c1", "a", now);
    events(&mut acd);

    acd.set_reachable_because("a", false, Some("qualify"), now + secs(3));
    assert_eq!(acd.agent_state("a"), Some(AgentState::OnCall));
    let events = events(&mut acd);
    assert!(
        matches!(
            events.as_slice(),
            [QueueEvent::AgentReachability { reachable: false, cause: Some(cause), .. }]
                if cause == "qualify"
        ),
        "{events:?}"
    );
}

#[test]
fn removed_paused_agent_ends_its_pause_first() {
    let (mut acd, now) = with_agents(queue("q"), &["a"]);
    acd.set_not_ready("a", "training", now).unwrap();
    events(&mut acd);

    acd.remove_agent("a", now + secs(1)).unwrap();
    let events = events(&mut acd);
    let kinds: Vec<&str> = events
        .iter()
        .map(|event| match event {
            QueueEvent::AgentReady { .. } => "ready",
            QueueEvent::MemberRemoved { .. } => "member_removed",
            QueueEvent::AgentLogin {
                logged_in: false, ..
            } => "logged_out",
            QueueEvent::AgentStateChanged {
                to: AgentState::LoggedOut,
                ..
            } => "state",
            _ => "other",
        })
        .collect();
    assert_eq!(kinds, ["ready", "member_removed", "logged_out", "state"]);
}

#[test]
fn direct_call_keeps_agent_from_queues() {
    let mut config = queue("q");
    config.wrap_up = secs(30);
    let (mut acd, now) = with_agents(config, &["a", "b"]);
    assert!(acd.direct_call_started("a", "fwd-1", now));
    assert_eq!(acd.agent_state("a"), Some(AgentState::OnCall));
    assert_eq!(
        acd.agent_status("a").unwrap().call.as_deref(),
        Some("fwd-1")
    );

    // "a" has been idle longest but is busy, so "b" rings.
    acd.enqueue("c1", "q", now + secs(1)).unwrap();
    assert_eq!(actions(&mut acd), [offer("c1", "b")]);
    // A ringing agent's extension is busy for a second direct call.
    assert!(!acd.direct_call_started("b", "fwd-2", now + secs(2)));
    assert_eq!(acd.agent_state("b"), Some(AgentState::Ringing));

    // The end of another call changes nothing; the right one frees "a".
    acd.enqueue("c2", "q", now + secs(3)).unwrap();
    acd.direct_call_ended("a", "fwd-9", now + secs(4));
    assert_eq!(acd.agent_state("a"), Some(AgentState::OnCall));
    assert_eq!(actions(&mut acd), []);
    acd.direct_call_ended("a", "fwd-1", now + secs(5));
    assert_eq!(actions(&mut acd), [offer("c2", "a")]);

    // A direct call ends the wrap-up of a queue call.
    acd.offer_answered("c1", "b", now + secs(6));
    acd.call_ended("b", now + secs(10));
    assert_eq!(acd.agent_state("b"), Some(AgentState::WrapUp));
    assert!(acd.direct_call_started("b", "fwd-3", now + secs(11)));
    assert_eq!(acd.agent_state("b"), Some(AgentState::OnCall));
    // The next deadline is c2 ringing out at 5 + 15 s, not the wrap-up end.
    assert_eq!(acd.poll_timeout(), Some(now + secs(20)));
    acd.direct_call_ended("b", "fwd-3", now + secs(12));
    assert_eq!(acd.agent_state("b"), Some(AgentState::Available));
}

#[test]
fn direct_call_moved_keeps_agent_busy() {
    let (mut acd, now) = with_agents(queue("q"), &["a"]);
    assert!(acd.direct_call_started("a", "consultation", now));
    acd.enqueue("c1", "q", now + secs(1)).unwrap();
    assert_eq!(actions(&mut acd), []);

    // Only the direct call in progress moves.
    assert!(!acd.direct_call_moved("a", "other", "first", now + secs(2)));
    assert!(acd.direct_call_moved("a", "consultation", "first", now + secs(2)));
    assert_eq!(acd.agent_state("a"), Some(AgentState::OnCall));
    assert_eq!(
        acd.agent_status("a").unwrap().call.as_deref(),
        Some("first")
    );
    assert_eq!(actions(&mut acd), [], "no offer while the call moves");

    // The end of the old call no longer frees the agent; the new one does.
    acd.direct_call_ended("a", "consultation", now + secs(3));
    assert_eq!(acd.agent_state("a"), Some(AgentState::OnCall));
    acd.direct_call_ended("a", "first", now + secs(4));
    assert_eq!(actions(&mut acd), [offer("c1", "a")]);
}
