//! Agent selection among the eligible agents of a queue.

use std::cmp::Reverse;

use crate::agent::Agent;
use crate::config::Strategy;
use crate::skill::{SkillRequirement, proficiency};

/// The agent or agents to ring for one call.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Selection {
    One(String),
    All(Vec<String>),
}

/// Inputs of a strategy besides the candidates.
pub(crate) struct Context<'a> {
    pub(crate) queue: &'a str,
    /// The call's own requirements, before relaxation by steps.
    pub(crate) requirements: &'a [SkillRequirement],
    /// Queue position of the agent offered last, for round robin.
    pub(crate) last_offered: Option<(u64, &'a str)>,
}

/// Small deterministic generator (SplitMix64) for the random strategies,
/// so that a seeded engine replays the same choices in tests.
#[derive(Clone, Debug)]
pub(crate) struct Rng {
    state: u64,
}

impl Rng {
    pub(crate) fn new(seed: u64) -> Rng {
        Rng { state: seed }
    }

    fn next(&mut self) -> u64 {
        self.state = self.state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Returns a value in `0..bound`; `bound` must be above zero. The modulo
    /// bias is below 2^-40 for the agent counts a queue has.
    fn below(&mut self, bound: u64) -> u64 {
        self.next() % bound
    }
}

impl Strategy {
    /// Picks among `candidates`, which must all be eligible for the call and
    /// sorted by agent id.
    pub(crate) fn select(
        self,
        candidates: &[&Agent],
        context: &Context<'_>,
        rng: &mut Rng,
    ) -> Option<Selection> {
        if candidates.is_empty() {
            return None;
        }
        let one = |agent: Option<&&Agent>| agent.map(|a| Selection::One(a.id.clone()));
        let idle = |a: &Agent| (a.idle_since, a.id.clone());
        let position = |a: &Agent| {
            (
                a.queues.get(context.queue).map(|m| m.position),
                a.id.clone(),
            )
        };
        match self {
            Strategy::LongestIdle => one(candidates.iter().min_by_key(|a| idle(a))),
            Strategy::FewestCalls => one(candidates
                .iter()
                .min_by_key(|a| (a.calls_answered, idle(a)))),
            Strategy::LeastTalkTime => {
                one(candidates.iter().min_by_key(|a| (a.talk_time, idle(a))))
            }
            Strategy::Linear => one(candidates.iter().min_by_key(|a| position(a))),
            Strategy::RoundRobin => {
                let after_last = |a: &&&Agent| match context.last_offered {
                    Some((last, id)) => position(a) > (Some(last), id.to_owned()),
                    None => true,
                };
                let next = candidates
                    .iter()
                    .filter(after_last)
                    .min_by_key(|a| position(a));
                one(next.or_else(|| candidates.iter().min_by_key(|a| position(a))))
            }
            Strategy::RingAll => Some(Selection::All(
                candidates.iter().map(|a| a.id.clone()).collect(),
            )),
            Strategy::Random => {
                let index = rng.below(candidates.len() as u64);
                one(candidates.get(usize::try_from(index).ok()?))
            }
            Strategy::WeightedRandom => one(weighted(candidates, context.queue, rng)),
            Strategy::BestProficiency => one(candidates.iter().min_by_key(|a| {
                (
                    Reverse(proficiency(&a.skills, context.requirements)),
                    idle(a),
                )
            })),
        }
    }
}

/// Picks an agent with probability proportional to its membership weight;
/// uniformly when every weight is zero.
fn weighted<'a, 'b>(
    candidates: &'b [&'a Agent],
    queue: &str,
    rng: &mut Rng,
) -> Option<&'b &'a Agent> {
    let weight = |a: &Agent| u64::from(a.queues.get(queue).map_or(0, |m| m.weight));
    let total: u64 = candidates.iter().map(|a| weight(a)).sum();
    if total == 0 {
        let index = rng.below(candidates.len() as u64);
        return candidates.get(usize::try_from(index).ok()?);
    }
    let mut pick = rng.below(total);
    for agent in candidates {
        let w = weight(agent);
        if pick < w {
            return Some(agent);
        }
        pick -= w;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rng_stays_below_bound() {
        let mut rng = Rng::new(7);
        for bound in 1..50 {
            assert!(rng.below(bound) < bound);
        }
    }

    #[test]
    fn rng_is_reproducible() {
        let mut first = Rng::new(42);
        let mut second = Rng::new(42);
        let a: Vec<u64> = (0..5).map(|_| first.next()).collect();
        let b: Vec<u64> = (0..5).map(|_| second.next()).collect();
        assert_eq!(a, b);
    }
}
