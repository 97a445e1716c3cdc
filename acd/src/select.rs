//! Choosing the agent for one call by walking its queue's available agents
//! in the order of the queue's strategy (see `order`).

use std::time::Instant;

use crate::agent::Agent;
use crate::config::Strategy;
use crate::engine::Acd;
use crate::keys::{mask_bit, needs_of, skill_hash};
use crate::order::{Member, OrderKey, OrderKind, Ordered};
use crate::skill::{SkillRequirement, qualifies};
use crate::strategy::Selection;

impl Strategy {
    /// Returns whether the strategy picks the agent with the smallest key
    /// (or, for best proficiency, can stop at an agent that reaches the
    /// bound), so that a walk in key order finds it.
    pub(crate) fn walks_in_order(self) -> bool {
        match self {
            Strategy::LongestIdle
            | Strategy::FewestCalls
            | Strategy::LeastTalkTime
            | Strategy::RoundRobin
            | Strategy::Linear
            | Strategy::BestProficiency => true,
            Strategy::RingAll | Strategy::Random | Strategy::WeightedRandom => false,
        }
    }
}

impl Acd {
    /// Picks the agent for a call under a strategy that walks in order,
    /// among all free agents: the same agent `Strategy::select` picks from
    /// every eligible agent, found by testing agents in key order until the
    /// strategy's choice is certain.
    pub(crate) fn select_in_order(&mut self, call_id: &str, now: Instant) -> Option<Selection> {
        let call = self.calls.get(call_id)?;
        let queue = self.queues.get(&call.queue)?;
        let strategy = queue.config.strategy;
        let requirements = &call.requirements;
        let needs = needs_of(requirements);
        let need_mask = needs
            .iter()
            .fold(0, |mask, (skill, _)| mask | mask_bit(skill_hash(skill)));
        let kind = OrderKind::of(strategy);
        let order = self
            .available_agents
            .ordered(&call.queue, kind, &self.agents)?;
        // Agents that fit no call are never taken, so they gather at the
        // front of the order, and a call that no agent fits would walk them
        // all. A required level that no agent holds settles it at once.
        if !order.may_meet(requirements) {
            return None;
        }
        let agents = &self.agents;

        // The mask and the levels filed with each agent pass over most
        // agents without a lookup in the agent table. Agents reserved
        // earlier in this dispatch are still filed, so each agent that
        // fits is tested for being free.
        let fits =
            |member: &Member<'_>| need_mask & !member.mask == 0 && member.meets(requirements);
        let free = |member: &Member<'_>| -> Option<&Agent> {
            let agent = agents.get(member.id)?;
            let free = agent.is_free(now)
                && agent.serves(&call.queue)
                && qualifies(&agent.skills, requirements)
                && !call.blocks(member.id, now);
            free.then_some(agent)
        };
        let eligible = |member: Member<'_>| if fits(&member) { free(&member) } else { None };

        let chosen = match strategy {
            Strategy::RoundRobin => {
                let last = queue.last_offered.as_deref().and_then(|id| {
                    let position = agents.get(id)?.queues.get(&call.queue)?.position;
                    Some((position, id))
                });
                round_robin(&order, last, eligible)
            }
            Strategy::BestProficiency => {
                best_proficiency(&order, &call.data.requirements, fits, free)
            }
            _ => order.iter().find_map(eligible),
        };
        chosen.map(|agent| Selection::One(agent.id.clone()))
    }
}

/// Returns the first eligible agent after the one offered last (`last`,
/// with its position) in position order, or else the first from the top.
fn round_robin<'a>(
    order: &Ordered<'_>,
    last: Option<(u64, &str)>,
    eligible: impl Fn(Member<'_>) -> Option<&'a Agent>,
) -> Option<&'a Agent> {
    let after_last = last.and_then(|(position, id)| {
        let key = OrderKey {
            primary: u128::from(position),
            idle_since: None,
        };
        order.after(key, id).find_map(&eligible)
    });
    after_last.or_else(|| order.iter().find_map(&eligible))
}

/// Returns the first free agent in idle order with the highest proficiency
/// in `own`, the call's own requirements.
fn best_proficiency<'a>(
    order: &Ordered<'_>,
    own: &[SkillRequirement],
    fits: impl Fn(&Member<'_>) -> bool,
    free: impl Fn(&Member<'_>) -> Option<&'a Agent>,
) -> Option<&'a Agent> {
    let bound = order.proficiency_bound(own);
    let mut best: Option<(u32, &Agent)> = None;
    // The first agent with the highest proficiency wins, so a later one
    // must do better. An agent that reaches the bound cannot be beaten.
    for member in order.iter().filter(|m| fits(m)) {
        let level = member.proficiency(own);
        if best.is_some_and(|(highest, _)| level <= highest) {
            continue;
        }
        let Some(agent) = free(&member) else {
            continue;
        };
        best = Some((level, agent));
        if level >= bound {
            break;
        }
    }
    best.map(|(_, agent)| agent)
}
