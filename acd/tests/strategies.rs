//! Agent selection strategies on a virtual clock.

mod common;

use std::collections::BTreeSet;
use std::time::Instant;

use acd::{Acd, Action, Strategy};
use common::*;

fn with_strategy(strategy: Strategy, agents: &[&str]) -> (Acd, Instant) {
    let mut config = queue("q");
    config.strategy = strategy;
    with_agents(config, agents)
}

/// Answers and ends one call on `agent` so that its counters move.
fn handle_call(acd: &mut Acd, call: &str, agent: &str, start: Instant, talk: u64) {
    acd.enqueue(call, "q", start).unwrap();
    let offered = offered_agent(&actions(acd));
    assert_eq!(offered.as_deref(), Some(agent));
    acd.offer_answered(call, agent, start);
    acd.call_ended(agent, start + secs(talk));
    actions(acd);
}

#[test]
fn fewest_calls_prefers_least_used_agent() {
    let (mut acd, now) = with_strategy(Strategy::FewestCalls, &["a", "b"]);
    handle_call(&mut acd, "c1", "a", now, 10);
    acd.enqueue("c2", "q", now + secs(20)).unwrap();
    assert_eq!(actions(&mut acd), [offer("c2", "b")]);
}

#[test]
fn least_talk_time_prefers_shortest_talker() {
    let (mut acd, now) = with_strategy(Strategy::LeastTalkTime, &["a", "b"]);
    handle_call(&mut acd, "c1", "a", now, 100);
    handle_call(&mut acd, "c2", "b", now + secs(200), 10);
    acd.enqueue("c3", "q", now + secs(300)).unwrap();
    assert_eq!(actions(&mut acd), [offer("c3", "b")]);
}

#[test]
fn round_robin_remembers_last_agent() {
    let (mut acd, now) = with_strategy(Strategy::RoundRobin, &["a", "b", "c"]);
    let mut order = Vec::new();
    for i in 0..4 {
        let call = format!("c{i}");
        let at = now + secs(10 * i);
        acd.enqueue(&call, "q", at).unwrap();
        let agent = offered_agent(&actions(&mut acd)).unwrap();
        acd.offer_answered(&call, &agent, at);
        acd.call_ended(&agent, at + secs(1));
        order.push(agent);
    }
    assert_eq!(order, ["a", "b", "c", "a"]);
}

#[test]
fn linear_always_starts_from_top() {
    let (mut acd, now) = with_strategy(Strategy::Linear, &["a", "b", "c"]);
    for i in 0..3 {
        let call = format!("c{i}");
        let at = now + secs(10 * i);
        acd.enqueue(&call, "q", at).unwrap();
        assert_eq!(actions(&mut acd), [offer(&call, "a")]);
        acd.offer_answered(&call, "a", at);
        acd.call_ended("a", at + secs(1));
    }
}

#[test]
fn ring_all_offers_every_agent_then_cancels_losers() {
    let (mut acd, now) = with_strategy(Strategy::RingAll, &["a", "b", "c"]);
    acd.enqueue("c1", "q", now).unwrap();
    assert_eq!(
        actions(&mut acd),
        [Action::OfferAll {
            call: "c1".into(),
            agents: vec!["a".into(), "b".into(), "c".into()],
        }]
    );
    acd.offer_rejected("c1", "a", now + secs(1));
    assert!(actions(&mut acd).is_empty());

    acd.offer_answered("c1", "b", now + secs(2));
    assert_eq!(
        actions(&mut acd),
        [Action::CancelOffer {
            call: "c1".into(),
            agent: "c".into(),
        }]
    );
    assert_eq!(acd.agent_state("c"), Some(acd::AgentState::Available));
    assert_eq!(acd.agent_state("b"), Some(acd::AgentState::OnCall));
}

#[test]
fn random_spreads_over_agents() {
    let (mut acd, now) = with_strategy(Strategy::Random, &["a", "b", "c"]);
    let mut chosen = BTreeSet::new();
    for i in 0..60 {
        let call = format!("c{i}");
        acd.enqueue(&call, "q", now).unwrap();
        let agent = offered_agent(&actions(&mut acd)).unwrap();
        acd.abandon(&call, now);
        chosen.insert(agent);
    }
    assert_eq!(chosen.len(), 3, "{chosen:?}");
}

#[test]
fn weighted_random_follows_weights() {
    let (mut acd, now) = with_strategy(Strategy::WeightedRandom, &["heavy", "light", "never"]);
    acd.add_member("heavy", "q", 9, now).unwrap();
    acd.add_member("light", "q", 1, now).unwrap();
    acd.add_member("never", "q", 0, now).unwrap();
    let mut heavy = 0;
    for i in 0..400 {
        let call = format!("c{i}");
        acd.enqueue(&call, "q", now).unwrap();
        let agent = offered_agent(&actions(&mut acd)).unwrap();
        assert_ne!(agent, "never");
        heavy += usize::from(agent == "heavy");
        acd.abandon(&call, now);
    }
    // Expected 360 of 400; the bound leaves over five standard deviations.
    assert!((330..=390).contains(&heavy), "heavy chosen {heavy} times");
}

#[test]
fn best_proficiency_picks_highest_level() {
    let t0 = Instant::now();
    let mut acd = Acd::new();
    let mut config = queue("q");
    config.strategy = Strategy::BestProficiency;
    acd.add_queue(config);
    agent(
        &mut acd,
        "fair",
        "q",
        &[("language=ru", 2), ("service=tax", 2)],
        t0,
    );
    agent(
        &mut acd,
        "best",
        "q",
        &[("language=ru", 5), ("service=tax", 4)],
        t0 + secs(1),
    );
    agent(
        &mut acd,
        "good",
        "q",
        &[("language=ru", 4), ("service=tax", 4)],
        t0 + secs(2),
    );
    let data = requires(&["language=ru:1", "service=tax:1"]);
    acd.enqueue_with("c1", "q", data, t0 + secs(3)).unwrap();
    assert_eq!(actions(&mut acd), [offer("c1", "best")]);
}

#[test]
fn same_seed_repeats_random_choices() {
    let run = |seed| {
        let mut acd = Acd::with_seed(seed);
        let mut config = queue("q");
        config.strategy = Strategy::Random;
        acd.add_queue(config);
        let t0 = Instant::now();
        for id in ["a", "b", "c", "d"] {
            agent(&mut acd, id, "q", &[], t0);
        }
        (0..10)
            .map(|i| {
                let call = format!("c{i}");
                acd.enqueue(&call, "q", t0).unwrap();
                let chosen = offered_agent(&actions(&mut acd));
                acd.abandon(&call, t0);
                chosen
            })
            .collect::<Vec<_>>()
    };
    assert_eq!(run(3), run(3));
}
