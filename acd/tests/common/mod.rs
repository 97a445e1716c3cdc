//! Helpers shared by the scenario tests: a virtual clock and output draining.

#![allow(dead_code)] // Each test file uses a different subset.

use std::time::{Duration, Instant};

use acd::{Acd, Action, CallData, QueueConfig, QueueEvent, SkillRequirement, Skills};

pub(crate) fn secs(n: u64) -> Duration {
    Duration::from_secs(n)
}

pub(crate) fn queue(name: &str) -> QueueConfig {
    QueueConfig {
        name: name.to_owned(),
        ring_timeout: secs(15),
        max_wait: secs(600),
        retry_delay: secs(5),
        wrap_up: secs(0),
        ..QueueConfig::default()
    }
}

pub(crate) fn offer(call: &str, agent: &str) -> Action {
    Action::Offer {
        call: call.to_owned(),
        agent: agent.to_owned(),
    }
}

/// Drains the actions. Every scenario drains after its inputs, so this is
/// also where the engine's indexes are compared with a full scan.
pub(crate) fn actions(acd: &mut Acd) -> Vec<Action> {
    acd.assert_indexes_match_scan();
    std::iter::from_fn(|| acd.poll_action()).collect()
}

/// Drains the events, after comparing the indexes with a full scan.
pub(crate) fn events(acd: &mut Acd) -> Vec<QueueEvent> {
    acd.assert_indexes_match_scan();
    std::iter::from_fn(|| acd.poll_event()).collect()
}

pub(crate) fn skills(list: &[(&str, u8)]) -> Skills {
    list.iter()
        .map(|(skill, level)| ((*skill).to_owned(), *level))
        .collect()
}

pub(crate) fn requires(list: &[&str]) -> CallData {
    CallData {
        requirements: list
            .iter()
            .map(|text| text.parse::<SkillRequirement>().unwrap())
            .collect(),
        ..CallData::default()
    }
}

/// Adds an agent to `queue` with `skills` and makes it available at `at`.
pub(crate) fn agent(acd: &mut Acd, id: &str, queue: &str, skill_list: &[(&str, u8)], at: Instant) {
    acd.add_agent(id, &[queue.to_owned()]);
    acd.set_skills(id, skills(skill_list), at).unwrap();
    acd.set_logged_in(id, true, at);
    acd.set_reachable(id, true, at);
}

/// Builds an ACD with `config` and agents without skills that became
/// available one second apart, in the given order; returns the next instant.
pub(crate) fn with_agents(config: QueueConfig, agents: &[&str]) -> (Acd, Instant) {
    let t0 = Instant::now();
    let mut acd = Acd::new();
    let name = config.name.clone();
    acd.add_queue(config);
    for (i, id) in agents.iter().enumerate() {
        agent(&mut acd, id, &name, &[], t0 + secs(i as u64));
    }
    let now = t0 + secs(agents.len() as u64);
    events(&mut acd);
    (acd, now)
}

/// Returns the agent of the single `Offer` among `actions`.
pub(crate) fn offered_agent(actions: &[Action]) -> Option<String> {
    let mut offers = actions.iter().filter_map(|action| match action {
        Action::Offer { agent, .. } => Some(agent.clone()),
        _ => None,
    });
    let first = offers.next();
    assert!(
        offers.next().is_none(),
        "more than one offer in {actions:?}"
    );
    first
}
