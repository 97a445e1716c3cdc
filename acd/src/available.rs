//! Available agents filed by queue and by the names of the skills they hold.
//!
//! A call that joins, or whose requirements relax, is tried with every free
//! agent. With thousands of agents idle, testing each one cost an arrival
//! a quarter of a millisecond. Here each available agent is filed once per
//! queue it serves, in a group with the agents of that queue that hold the
//! same skill names. A call then reads only the groups whose skills cover
//! its needs. A 128-bit mask per group, one bit per skill hash, passes over
//! most of the others without a string comparison. Levels, delays and
//! retry delays are still tested per agent.
//!
//! Each queue also keeps its available agents sorted by its strategy's key
//! (see `order`), so the strategies that pick a minimum stop at the first
//! eligible agent instead of reading every agent that holds the skills.
//!
//! Dispatch refiles the agents changed since the index was last read just
//! before it reads it, so agents reserved during a dispatch may still be
//! filed. Every reader therefore tests that an agent is free.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;

use crate::agent::{Agent, AgentState};
use crate::keys::{GroupKey, Slab, group_hash, mask_bit, skill_hash};
use crate::order::{OrderEntry, OrderKey, OrderKind, Ordered, QueueOrder};
use crate::table::Table;

// A group left empty stays in the slab and the hash index, out of its
// queue's list, because agents keep turning available and busy and
// building the key again would allocate each time. Groups are at most one
// per agent and queue.
pub(crate) struct Group {
    pub(crate) key: GroupKey,
    mask: u128,
    agents: BTreeSet<Arc<str>>,
    /// The group's index in its queue's list, which contains it exactly
    /// while it has agents.
    listed: Option<usize>,
}

/// A group as its queue lists it, with the mask of its skills.
#[derive(Clone, Copy)]
struct GroupRef {
    mask: u128,
    group: usize,
}

/// The filing of one agent: a group and an order key per queue.
struct Filed {
    groups: Vec<(usize, OrderKey)>,
    /// The agent's levels, in the order of its skill names, as counted in
    /// each queue's order.
    levels: Arc<[u8]>,
}

/// The index of available agents.
#[derive(Default)]
pub(crate) struct AvailableAgents {
    /// The filing of each filed agent, by id.
    filed: HashMap<Arc<str>, Filed>,
    groups: Slab<Group>,
    /// Groups by `group_hash`, several where hashes collide.
    group_index: HashMap<u64, Vec<usize>>,
    /// The groups of each queue that have agents. A queue's list stays when
    /// it empties.
    by_queue: HashMap<String, Vec<GroupRef>>,
    /// The agents of each queue in the order of its strategy. A queue's
    /// order stays when it empties.
    orders: HashMap<String, QueueOrder>,
}

impl AvailableAgents {
    /// Files `agent` under its queues and skills if it is available, and
    /// takes it out of the index otherwise or when it is gone (`None`).
    pub(crate) fn refile(&mut self, id: &Arc<str>, agent: Option<&Agent>) {
        if let Some(filed) = self.filed.remove(id) {
            for (group, key) in filed.groups {
                self.unorder(id, group, key, &filed.levels);
                self.unfile(id, group);
            }
        }
        let Some(agent) = agent.filter(|a| a.state() == AgentState::Available) else {
            return;
        };
        // Skills are a sorted map, so the names come sorted.
        let skills: Vec<&str> = agent.skills.keys().map(String::as_str).collect();
        let levels: Arc<[u8]> = agent.skills.values().copied().collect();
        let mut groups = Vec::with_capacity(agent.queues.len());
        for queue in agent.queues.keys() {
            let group = self.group_for(queue, &skills);
            let Some(entry) = self.groups.get_mut(group) else {
                continue;
            };
            entry.agents.insert(id.clone());
            if entry.listed.is_none() {
                let list = self.by_queue.entry(queue.clone()).or_default();
                entry.listed = Some(list.len());
                list.push(GroupRef {
                    mask: entry.mask,
                    group,
                });
            }
            let filing = OrderEntry {
                mask: entry.mask,
                group,
                levels: levels.clone(),
            };
            let order = match self.orders.get_mut(queue) {
                Some(order) => order,
                None => self.orders.entry(queue.clone()).or_default(),
            };
            let key = OrderKey::of(order.kind, agent, queue);
            order.insert(key, id.clone(), filing);
            for (skill, level) in skills.iter().zip(levels.iter()) {
                order.count_level(skill, *level, true);
            }
            groups.push((group, key));
        }
        self.filed.insert(id.clone(), Filed { groups, levels });
    }

    /// Takes an agent out of the order of the queue of `group`.
    fn unorder(&mut self, id: &Arc<str>, group: usize, key: OrderKey, levels: &[u8]) {
        let Some(group) = self.groups.get(group) else {
            return;
        };
        let Some(order) = self.orders.get_mut(&group.key.queue) else {
            return;
        };
        order.remove(key, id);
        for (skill, level) in group.key.skills.iter().zip(levels) {
            order.count_level(skill, *level, false);
        }
    }

    /// Returns the available agents of `queue` sorted for `kind`, sorting
    /// them again first if the queue's strategy changed since they were filed.
    pub(crate) fn ordered(
        &mut self,
        queue: &str,
        kind: OrderKind,
        agents: &Table<Agent>,
    ) -> Option<Ordered<'_>> {
        let order = self.orders.get_mut(queue)?;
        if order.kind != kind {
            order.kind = kind;
            for ((old, id), entry) in order.take_all() {
                let key = agents
                    .get(&id)
                    .map_or(old, |agent| OrderKey::of(kind, agent, queue));
                order.insert(key, id.clone(), entry);
                let Some(filed) = self.filed.get_mut(&id) else {
                    continue;
                };
                let groups = &self.groups;
                let in_queue =
                    |group: usize| groups.get(group).is_some_and(|g| g.key.queue == queue);
                for entry in filed.groups.iter_mut().filter(|(g, _)| in_queue(*g)) {
                    entry.1 = key;
                }
            }
        }
        Some(Ordered {
            order: &*order,
            groups: &self.groups,
        })
    }

    fn unfile(&mut self, id: &str, index: usize) {
        let Some(group) = self.groups.get_mut(index) else {
            return;
        };
        group.agents.remove(id);
        if !group.agents.is_empty() {
            return;
        }
        // Readers sort what they collect from the list, so its order is
        // free and a removal swaps the last group into the gap.
        let Some(at) = group.listed.take() else {
            return;
        };
        let Some(list) = self.by_queue.get_mut(&group.key.queue) else {
            return;
        };
        if at >= list.len() {
            return;
        }
        list.swap_remove(at);
        let moved = list.get(at).map(|r| r.group);
        if let Some(moved) = moved.and_then(|g| self.groups.get_mut(g)) {
            moved.listed = Some(at);
        }
    }

    /// Returns the group of `queue` and `skills`, added if missing.
    fn group_for(&mut self, queue: &str, skills: &[&str]) -> usize {
        let hash = group_hash(queue, skills.iter().copied());
        let matches = |key: &GroupKey| {
            key.queue == queue
                && key
                    .skills
                    .iter()
                    .map(String::as_str)
                    .eq(skills.iter().copied())
        };
        let found = self.group_index.get(&hash).and_then(|groups| {
            let mut groups = groups.iter().copied();
            groups.find(|g| self.groups.get(*g).is_some_and(|g| matches(&g.key)))
        });
        if let Some(group) = found {
            return group;
        }
        let mask = skills
            .iter()
            .fold(0, |mask, skill| mask | mask_bit(skill_hash(skill)));
        let key = GroupKey {
            queue: queue.to_owned(),
            skills: skills.iter().map(|s| (*s).to_owned()).collect(),
        };
        let group = self.groups.add(Group {
            key,
            mask,
            agents: BTreeSet::new(),
            listed: None,
        });
        self.group_index.entry(hash).or_default().push(group);
        group
    }

    /// Returns, in id order, the filed agents of `queue` that hold every
    /// skill of `needs` (at any level), and no others of the queue.
    pub(crate) fn holding(&self, queue: &str, needs: &[(&str, u8)]) -> Vec<Arc<str>> {
        let Some(list) = self.by_queue.get(queue) else {
            return Vec::new();
        };
        let need_mask = needs
            .iter()
            .fold(0, |mask, (skill, _)| mask | mask_bit(skill_hash(skill)));
        let mut agents: Vec<Arc<str>> = Vec::new();
        for r in list.iter().filter(|r| need_mask & !r.mask == 0) {
            let Some(group) = self.groups.get(r.group) else {
                continue;
            };
            let held = needs
                .iter()
                .all(|(skill, _)| group.key.skills.iter().any(|s| s == skill));
            if held {
                agents.extend(group.agents.iter().cloned());
            }
        }
        // An agent is in one group per queue, so there are no repeats.
        agents.sort_unstable();
        agents
    }

    /// Compares the index with the agents, skipping those for which
    /// `pending` returns true (changed since they were last refiled), and
    /// describes the first difference.
    pub(crate) fn check<'a>(
        &self,
        agents: impl Iterator<Item = (&'a Arc<str>, &'a Agent)>,
        pending: impl Fn(&Arc<str>) -> bool,
    ) -> Result<(), String> {
        let mut seen = 0;
        for (id, agent) in agents {
            if pending(id) {
                continue;
            }
            let filed = self.filed.get(id).map_or(&[][..], |f| f.groups.as_slice());
            if agent.state() != AgentState::Available {
                if !filed.is_empty() {
                    return Err(format!("{id}: filed as available"));
                }
                continue;
            }
            seen += 1;
            let skills: Vec<&str> = agent.skills.keys().map(String::as_str).collect();
            let mut queues: Vec<&str> = Vec::new();
            for (index, key) in filed {
                let Some(group) = self.groups.get(*index) else {
                    return Err(format!("{id}: filed in a missing group"));
                };
                self.check_order(id, agent, &group.key.queue, *key, *index)?;
                let same = group
                    .key
                    .skills
                    .iter()
                    .map(String::as_str)
                    .eq(skills.iter().copied());
                if !same || !group.agents.contains(id) {
                    return Err(format!("{id}: filed under other skills"));
                }
                queues.push(&group.key.queue);
            }
            if !queues
                .iter()
                .copied()
                .eq(agent.queues.keys().map(String::as_str))
            {
                return Err(format!("{id}: filed under queues {queues:?}"));
            }
        }
        let stale = self.filed.keys().filter(|id| !pending(id)).count();
        if stale != seen {
            return Err(format!("{stale} agents filed, {seen} available"));
        }
        for (index, group) in self.groups.iter() {
            let filed = group.agents.iter().all(|id| {
                let filed = self.filed.get(id);
                filed.is_some_and(|f| f.groups.iter().any(|(g, _)| *g == index))
            });
            let list = self.by_queue.get(&group.key.queue);
            let listings = list.map_or(0, |l| l.iter().filter(|r| r.group == index).count());
            let at = group.listed.and_then(|at| list?.get(at));
            let stale = group.listed.is_some() && group.agents.is_empty();
            let expected = usize::from(!group.agents.is_empty());
            let listed_here = at.is_some_and(|r| r.group == index);
            if !filed || stale || listings != expected || listed_here != (expected == 1) {
                return Err(format!("group {:?} listed {listings} times", group.key));
            }
            let hash = group_hash(
                &group.key.queue,
                group.key.skills.iter().map(String::as_str),
            );
            if !self
                .group_index
                .get(&hash)
                .is_some_and(|g| g.contains(&index))
            {
                return Err(format!("group {:?} not indexed", group.key));
            }
        }
        self.check_order_totals()
    }

    /// Checks that an available agent is in the order of `queue` under the
    /// key that its current fields give.
    fn check_order(
        &self,
        id: &Arc<str>,
        agent: &Agent,
        queue: &str,
        key: OrderKey,
        group: usize,
    ) -> Result<(), String> {
        let mask = self.groups.get(group).map_or(0, |g| g.mask);
        let Some(order) = self.orders.get(queue) else {
            return Err(format!("{id}: queue {queue} has no order"));
        };
        let expected = OrderKey::of(order.kind, agent, queue);
        if key != expected {
            return Err(format!(
                "{id}: ordered in {queue} as {key:?}, not {expected:?}"
            ));
        }
        let levels: Vec<u8> = agent.skills.values().copied().collect();
        let entry = order.get(key, id);
        if entry.is_none_or(|e| e.mask != mask || e.group != group || *e.levels != *levels) {
            return Err(format!("{id}: missing from the order of {queue}"));
        }
        if self.filed.get(id).is_none_or(|f| *f.levels != *levels) {
            return Err(format!("{id}: filed with other levels"));
        }
        Ok(())
    }

    /// Compares the length and level counts of each queue's order with the
    /// filed agents, pending ones included, since those stay in the order.
    fn check_order_totals(&self) -> Result<(), String> {
        let mut lengths: HashMap<&str, usize> = HashMap::new();
        let mut levels: HashMap<(&str, &str, u8), u32> = HashMap::new();
        for filed in self.filed.values() {
            for (group, _) in &filed.groups {
                let Some(group) = self.groups.get(*group) else {
                    continue;
                };
                let queue = group.key.queue.as_str();
                *lengths.entry(queue).or_default() += 1;
                for (skill, level) in group.key.skills.iter().zip(filed.levels.iter()) {
                    *levels.entry((queue, skill, *level)).or_default() += 1;
                }
            }
        }
        for (queue, order) in &self.orders {
            let filed = lengths.get(queue.as_str()).copied().unwrap_or(0);
            if order.len() != filed {
                return Err(format!(
                    "order of {queue} has {} agents, {filed} filed",
                    order.len()
                ));
            }
            for (skill, level, count) in order.level_counts() {
                let filed = levels.get(&(queue.as_str(), skill, level)).copied();
                if filed != Some(count) {
                    return Err(format!(
                        "{queue}: {count} agents at {skill}:{level}, {filed:?} filed"
                    ));
                }
            }
        }
        let counted: usize = self.orders.values().map(|o| o.level_counts().count()).sum();
        if counted != levels.len() {
            return Err(format!("{} levels filed, {counted} counted", levels.len()));
        }
        Ok(())
    }
}
