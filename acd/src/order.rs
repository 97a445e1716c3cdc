//! The available agents of one queue, sorted by the key its strategy
//! picks the minimum of.
//!
//! Longest idle, fewest calls, least talk time, linear and round robin each
//! choose the eligible agent with the smallest key, ties broken by agent
//! id. With the agents sorted by that key and id, the first eligible one
//! in the walk is the choice, so an arrival tests agents only until it
//! finds one, instead of testing every agent that holds its skills.
//! Best proficiency walks in idle order and stops early once an agent
//! reaches the highest proficiency the queue's available agents could
//! reach for the call. Ring all, random and weighted random need every
//! eligible agent in id order, so they do not use this order.

use std::collections::{BTreeMap, HashMap};
use std::ops::Bound;
use std::sync::Arc;
use std::time::Instant;

use crate::agent::Agent;
use crate::available::Group;
use crate::config::Strategy;
use crate::keys::Slab;
use crate::skill::SkillRequirement;

/// The agent field that sorts a queue's agents first.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) enum OrderKind {
    /// Start of the idle period: longest idle, best proficiency, and the
    /// strategies that do not walk in order.
    #[default]
    Idle,
    /// Calls answered, then start of the idle period: fewest calls.
    Calls,
    /// Talk time, then start of the idle period: least talk time.
    TalkTime,
    /// Membership position in the queue: linear and round robin.
    Position,
}

impl OrderKind {
    pub(crate) fn of(strategy: Strategy) -> OrderKind {
        match strategy {
            Strategy::FewestCalls => OrderKind::Calls,
            Strategy::LeastTalkTime => OrderKind::TalkTime,
            Strategy::Linear | Strategy::RoundRobin => OrderKind::Position,
            Strategy::LongestIdle
            | Strategy::BestProficiency
            | Strategy::RingAll
            | Strategy::Random
            | Strategy::WeightedRandom => OrderKind::Idle,
        }
    }
}

/// An agent's sort key in one queue. Agent ids break ties.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct OrderKey {
    /// Calls answered, talk time in nanoseconds or membership position,
    /// by the kind of order; zero for the idle order.
    pub(crate) primary: u128,
    /// `None` (before any instant) in the position order, whose ties go
    /// to the agent id directly.
    pub(crate) idle_since: Option<Instant>,
}

impl OrderKey {
    /// Returns the key of `agent` in `queue` under `kind`, with the same
    /// ordering as the strategy's own comparison of agents.
    pub(crate) fn of(kind: OrderKind, agent: &Agent, queue: &str) -> OrderKey {
        let idle_since = agent.idle_since;
        match kind {
            OrderKind::Idle => OrderKey {
                primary: 0,
                idle_since,
            },
            OrderKind::Calls => OrderKey {
                primary: u128::from(agent.calls_answered),
                idle_since,
            },
            OrderKind::TalkTime => OrderKey {
                primary: agent.talk_time.as_nanos(),
                idle_since,
            },
            OrderKind::Position => OrderKey {
                primary: agent
                    .queues
                    .get(queue)
                    .map_or(0, |m| u128::from(m.position)),
                idle_since: None,
            },
        }
    }
}

/// A filed agent as a queue's order stores it.
#[derive(Debug)]
pub(crate) struct OrderEntry {
    /// The 128-bit mask of the agent's skill names.
    pub(crate) mask: u128,
    /// The agent's group, which contains its skill names.
    pub(crate) group: usize,
    /// The agent's levels, in the order of its skill names.
    pub(crate) levels: Arc<[u8]>,
}

/// The available agents of one queue in the order of its strategy, with
/// counts of the levels they hold, which give the best proficiency bound
/// and rule out calls that no agent's level meets.
#[derive(Debug, Default)]
pub(crate) struct QueueOrder {
    pub(crate) kind: OrderKind,
    /// Agents by key and id.
    agents: BTreeMap<(OrderKey, Arc<str>), OrderEntry>,
    /// For each skill, how many of the agents hold it at each level.
    levels: HashMap<String, BTreeMap<u8, u32>>,
}

impl QueueOrder {
    pub(crate) fn len(&self) -> usize {
        self.agents.len()
    }

    pub(crate) fn insert(&mut self, key: OrderKey, id: Arc<str>, entry: OrderEntry) {
        self.agents.insert((key, id), entry);
    }

    pub(crate) fn remove(&mut self, key: OrderKey, id: &Arc<str>) -> Option<OrderEntry> {
        self.agents.remove(&(key, id.clone()))
    }

    pub(crate) fn get(&self, key: OrderKey, id: &Arc<str>) -> Option<&OrderEntry> {
        self.agents.get(&(key, id.clone()))
    }

    /// Removes every agent and returns their keys and entries, for sorting
    /// them again under another kind of order.
    pub(crate) fn take_all(&mut self) -> BTreeMap<(OrderKey, Arc<str>), OrderEntry> {
        std::mem::take(&mut self.agents)
    }

    /// Counts one more (`added`) or one fewer agent holding `skill` at `level`.
    pub(crate) fn count_level(&mut self, skill: &str, level: u8, added: bool) {
        if added {
            let counts = match self.levels.get_mut(skill) {
                Some(counts) => counts,
                None => self.levels.entry(skill.to_owned()).or_default(),
            };
            *counts.entry(level).or_default() += 1;
            return;
        }
        let Some(counts) = self.levels.get_mut(skill) else {
            return;
        };
        if let Some(count) = counts.get_mut(&level) {
            *count -= 1;
            if *count == 0 {
                counts.remove(&level);
            }
        }
    }

    /// Returns the level counts, for checks against the agents.
    pub(crate) fn level_counts(&self) -> impl Iterator<Item = (&str, u8, u32)> {
        self.levels.iter().flat_map(|(skill, counts)| {
            counts
                .iter()
                .map(move |(level, count)| (skill.as_str(), *level, *count))
        })
    }
}

/// A queue's order as dispatch reads it, with the skill names of its groups.
pub(crate) struct Ordered<'a> {
    pub(crate) order: &'a QueueOrder,
    pub(crate) groups: &'a Slab<Group>,
}

/// One agent of a queue's order, with the skills it was filed with.
pub(crate) struct Member<'a> {
    pub(crate) id: &'a Arc<str>,
    pub(crate) mask: u128,
    skills: &'a [String],
    levels: &'a [u8],
}

impl Member<'_> {
    fn level(&self, skill: &str) -> Option<u8> {
        let index = self
            .skills
            .binary_search_by(|held| held.as_str().cmp(skill))
            .ok()?;
        self.levels.get(index).copied()
    }

    /// Returns whether the filed skills meet every requirement, as
    /// `qualifies` tests an agent's skills.
    pub(crate) fn meets(&self, requirements: &[SkillRequirement]) -> bool {
        requirements.iter().all(|r| {
            self.level(&r.skill)
                .is_some_and(|level| level >= r.min_level)
        })
    }

    /// Returns the summed filed levels in `requirements`, as `proficiency`
    /// sums an agent's.
    pub(crate) fn proficiency(&self, requirements: &[SkillRequirement]) -> u32 {
        let levels = requirements.iter().filter_map(|r| self.level(&r.skill));
        levels.map(u32::from).sum()
    }
}

impl<'a> Ordered<'a> {
    fn member(&self, id: &'a Arc<str>, entry: &'a OrderEntry) -> Member<'a> {
        Member {
            id,
            mask: entry.mask,
            skills: self.groups.get(entry.group).map_or(&[], |g| &g.key.skills),
            levels: &entry.levels,
        }
    }

    /// Returns false when a requirement's minimum level is above the
    /// highest level that any of the agents has of its skill, so that none
    /// qualifies.
    pub(crate) fn may_meet(&self, requirements: &[SkillRequirement]) -> bool {
        requirements.iter().all(|r| {
            let counts = self.order.levels.get(&r.skill);
            let highest = counts
                .and_then(|c| c.last_key_value())
                .map(|(level, _)| *level);
            highest.is_some_and(|level| level >= r.min_level)
        })
    }

    /// Returns the highest proficiency any of the agents could have for
    /// `requirements`: the sum of the highest level held of each skill, as
    /// `proficiency` sums them.
    pub(crate) fn proficiency_bound(&self, requirements: &[SkillRequirement]) -> u32 {
        requirements
            .iter()
            .filter_map(|r| self.order.levels.get(&r.skill)?.last_key_value())
            .map(|(level, _)| u32::from(*level))
            .sum()
    }

    /// Returns the agents in order.
    pub(crate) fn iter(&self) -> impl Iterator<Item = Member<'a>> + '_ {
        let agents = self.order.agents.iter();
        agents.map(|((_, id), entry)| self.member(id, entry))
    }

    /// Returns the agents that sort after `key` and `id`, in order.
    pub(crate) fn after(&self, key: OrderKey, id: &str) -> impl Iterator<Item = Member<'a>> + '_ {
        let bound = (key, Arc::<str>::from(id));
        let range = self
            .order
            .agents
            .range((Bound::Excluded(bound), Bound::Unbounded));
        range.map(|((_, id), entry)| self.member(id, entry))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn level_counts_bound_and_rule_out() {
        let mut order = QueueOrder::default();
        order.count_level("language=ru", 2, true);
        order.count_level("language=ru", 5, true);
        order.count_level("service=tax", 3, true);
        // The agent at level 5 leaves, so 2 is the highest left.
        order.count_level("language=ru", 5, false);
        let groups = Slab::default();
        let ordered = Ordered {
            order: &order,
            groups: &groups,
        };
        let ru = SkillRequirement::new("language=ru", 2);
        let tax = SkillRequirement::new("service=tax", 1);
        assert_eq!(ordered.proficiency_bound(&[ru.clone(), tax.clone()]), 5);
        assert!(ordered.may_meet(&[ru.clone(), tax]));
        assert!(!ordered.may_meet(&[SkillRequirement::new("language=ru", 3)]));
        assert!(!ordered.may_meet(&[SkillRequirement::new("language=en", 0)]));
        assert!(ordered.may_meet(&[]));
        assert_eq!(order.level_counts().count(), 2);
    }

    #[test]
    fn keys_sort_as_strategies_compare() {
        let t0 = Instant::now();
        let later = t0 + std::time::Duration::from_secs(1);
        let key = |primary, idle_since| OrderKey {
            primary,
            idle_since,
        };
        // Never idle sorts first, as `None` does in the strategies' keys.
        assert!(key(0, None) < key(0, Some(t0)));
        assert!(key(0, Some(t0)) < key(0, Some(later)));
        // Fewer calls win over a longer idle time.
        assert!(key(1, Some(later)) < key(2, Some(t0)));
    }
}
