//! Calls without an offer in progress: in service order across all queues,
//! and filed by queue and required skills.
//!
//! A freed agent may take only calls of its queues whose requirements it
//! meets. Looking through every waiting call for those cost a dispatch as
//! much as the queues are long (10,000 calls in the target load). So each
//! waiting call is also filed in a class: its queue and its requirements
//! under the step in force, skills sorted and each at its highest level.
//! Calls of a class are alike for every agent except for retry delays, so
//! an agent's first eligible call is among the first calls of the classes
//! it qualifies for. Classes that need the same skills at other levels
//! form a group, matched against the agent's skills once. Each group
//! carries a 128-bit mask of its skills, from a hash of each name, so the
//! groups that need a skill the agent lacks are mostly passed over
//! without a string comparison.

use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap, HashMap, VecDeque};
use std::sync::Arc;
use std::time::Instant;

use crate::agent::Agent;
use crate::call::{Call, CallOrder};
use crate::keys::{GroupKey, Slab, group_hash, mask_bit, needs_of, skill_hash};
use crate::table::Table;

/// The classes of one queue that need the same skills, at different
/// levels. An agent's skills are matched against the group once, and its
/// levels against each class.
struct Group {
    key: GroupKey,
    /// `group_hash` of the key.
    hash: u64,
    /// Hashes of `key.skills`, in the same order.
    hashes: Vec<u64>,
    classes: Vec<usize>,
}

/// Waiting calls with the same queue, skills and levels, in service order.
struct Class {
    group: usize,
    /// Minimum level per skill of the group, in the group's order.
    levels: Vec<u8>,
    /// Sorted. Most classes hold a few calls, for which a B-tree set took a
    /// whole node. Calls mostly join at the back and leave at the front.
    calls: VecDeque<CallOrder>,
}

impl Class {
    fn insert(&mut self, order: CallOrder) {
        let at = self.calls.partition_point(|o| *o < order);
        if self.calls.get(at) != Some(&order) {
            self.calls.insert(at, order);
        }
    }

    fn remove(&mut self, order: &CallOrder) {
        if let Ok(at) = self.calls.binary_search(order) {
            self.calls.remove(at);
        }
    }

    fn contains(&self, order: &CallOrder) -> bool {
        self.calls.binary_search(order).is_ok()
    }

    /// Returns the first call after `after`, or the first for `None`.
    fn first_after(&self, after: Option<&CallOrder>) -> Option<&CallOrder> {
        let at = after.map_or(0, |after| self.calls.partition_point(|o| o <= after));
        self.calls.get(at)
    }
}

/// A group as a queue lists it: one bit per skill (from its hash) next to
/// its index, so the scan over a queue's groups reads one array and passes
/// over most groups that need a skill the agent lacks without reading them.
#[derive(Clone, Copy)]
struct GroupRef {
    mask: u128,
    group: usize,
}

struct Filed {
    id: Arc<str>,
    class: usize,
}

/// Waiting calls in service order, with the index by queue and skills.
#[derive(Default)]
pub(crate) struct Waiting {
    by_order: BTreeMap<CallOrder, Filed>,
    classes: Slab<Class>,
    groups: Slab<Group>,
    /// Groups by `group_hash`, several where hashes collide.
    group_index: HashMap<u64, Vec<usize>>,
    /// The groups of each queue that hold at least one call.
    by_queue: HashMap<String, Vec<GroupRef>>,
}

impl Waiting {
    pub(crate) fn is_empty(&self) -> bool {
        self.by_order.is_empty()
    }

    /// Returns the ids of the waiting calls in service order.
    pub(crate) fn ids(&self) -> impl Iterator<Item = &Arc<str>> {
        self.by_order.values().map(|filed| &filed.id)
    }

    /// Returns the id of the waiting call with this order key.
    pub(crate) fn id_at(&self, order: &CallOrder) -> Option<&str> {
        self.by_order.get(order).map(|filed| &*filed.id)
    }

    /// Files a call that has no offer in progress, under its current order
    /// key, queue and requirements. `id` is the call's id as its table
    /// keeps it. A call filed already is refiled.
    pub(crate) fn insert(&mut self, id: &Arc<str>, call: &Call) {
        let needs = needs_of(&call.requirements);
        let hash = group_hash(&call.queue, needs.iter().map(|(skill, _)| *skill));
        let found = self.group_index.get(&hash).and_then(|groups| {
            let mut groups = groups.iter().copied();
            groups.find(|g| {
                self.groups
                    .get(*g)
                    .is_some_and(|g| g.key.matches(&call.queue, &needs))
            })
        });
        let group = match found {
            Some(group) => group,
            None => self.add_group(hash, &call.queue, &needs),
        };
        let levels = || needs.iter().map(|(_, level)| *level);
        let existing = self.groups.get(group).and_then(|g| {
            let mut classes = g.classes.iter().copied();
            classes.find(|c| {
                self.classes
                    .get(*c)
                    .is_some_and(|c| c.levels.iter().copied().eq(levels()))
            })
        });
        let class = match existing {
            Some(class) => class,
            None => {
                let class = self.classes.add(Class {
                    group,
                    levels: levels().collect(),
                    calls: VecDeque::new(),
                });
                if let Some(g) = self.groups.get_mut(group) {
                    g.classes.push(class);
                }
                class
            }
        };
        // A call refiled after its step changed keeps its place in service
        // order and only moves between classes.
        let previous = self.by_order.get(&call.order).map(|filed| filed.class);
        if previous == Some(class) {
            return;
        }
        if let Some(previous) = previous {
            self.leave_class(&call.order, previous);
        }
        if let Some(entry) = self.classes.get_mut(class) {
            entry.insert(call.order);
        }
        let filed = Filed {
            id: id.clone(),
            class,
        };
        self.by_order.insert(call.order, filed);
    }

    fn add_group(&mut self, hash: u64, queue: &str, needs: &[(&str, u8)]) -> usize {
        let key = GroupKey {
            queue: queue.to_owned(),
            skills: needs.iter().map(|(skill, _)| (*skill).to_owned()).collect(),
        };
        let hashes: Vec<u64> = key.skills.iter().map(|s| skill_hash(s)).collect();
        let mask = hashes.iter().fold(0, |mask, hash| mask | mask_bit(*hash));
        let group = self.groups.add(Group {
            key,
            hash,
            hashes,
            classes: Vec::new(),
        });
        let list = self.by_queue.entry(queue.to_owned()).or_default();
        list.push(GroupRef { mask, group });
        self.group_index.entry(hash).or_default().push(group);
        group
    }

    /// Removes the waiting call with this order key and returns its id.
    pub(crate) fn remove(&mut self, order: &CallOrder) -> Option<Arc<str>> {
        let filed = self.by_order.remove(order)?;
        self.leave_class(order, filed.class);
        Some(filed.id)
    }

    /// Takes a call out of a class, and drops the class, and its group,
    /// when they are left empty.
    fn leave_class(&mut self, order: &CallOrder, index: usize) {
        let Some(class) = self.classes.get_mut(index) else {
            return;
        };
        class.remove(order);
        if !class.calls.is_empty() {
            return;
        }
        let group_index = class.group;
        self.classes.take(index);
        let Some(group) = self.groups.get_mut(group_index) else {
            return;
        };
        group.classes.retain(|c| *c != index);
        if group.classes.is_empty()
            && let Some(group) = self.groups.take(group_index)
        {
            if let Some(groups) = self.group_index.get_mut(&group.hash) {
                groups.retain(|g| *g != group_index);
                if groups.is_empty() {
                    self.group_index.remove(&group.hash);
                }
            }
            if let Some(list) = self.by_queue.get_mut(&group.key.queue) {
                list.retain(|r| r.group != group_index);
                if list.is_empty() {
                    self.by_queue.remove(&group.key.queue);
                }
            }
        }
    }

    /// Returns the order keys of the waiting calls of `queue`, in service order.
    pub(crate) fn orders_in(&self, queue: &str) -> Vec<CallOrder> {
        let groups = self.by_queue.get(queue).into_iter().flatten();
        let classes = groups
            .filter_map(|r| self.groups.get(r.group))
            .flat_map(|group| group.classes.iter())
            .filter_map(|c| self.classes.get(*c));
        let mut orders: Vec<CallOrder> = classes.flat_map(|c| c.calls.iter().copied()).collect();
        orders.sort();
        orders
    }

    /// Returns the first waiting call after `after` (from the start for
    /// `None`) in service order that `agent` is eligible for at `now`: of
    /// one of its queues, meeting the call's requirements, and not in the
    /// retry delay of that call.
    pub(crate) fn first_for(
        &self,
        agent: &Agent,
        after: Option<&CallOrder>,
        now: Instant,
        calls: &Table<Call>,
    ) -> Option<CallOrder> {
        let held: Vec<(u64, &str, u8)> = agent
            .skills
            .iter()
            .map(|(skill, level)| (skill_hash(skill), skill.as_str(), *level))
            .collect();
        let mask = held
            .iter()
            .fold(0, |mask, (hash, _, _)| mask | mask_bit(*hash));
        // The first call of every class the agent qualifies for, earliest
        // on top; a call the agent may not retry yet gives way to the next
        // of its class.
        let mut heads = BinaryHeap::new();
        let mut levels = Vec::new();
        for queue in agent.queues.keys() {
            let Some(list) = self.by_queue.get(queue) else {
                continue;
            };
            for r in list.iter().filter(|r| r.mask & !mask == 0) {
                let Some(group) = self.groups.get(r.group) else {
                    continue;
                };
                // The agent's level in each skill of the group, if it
                // holds them all.
                levels.clear();
                for (hash, skill) in group.hashes.iter().zip(&group.key.skills) {
                    let found = held.iter().find(|(h, name, _)| h == hash && name == skill);
                    match found {
                        Some((_, _, level)) => levels.push(*level),
                        None => break,
                    }
                }
                if levels.len() < group.hashes.len() {
                    continue;
                }
                for class in group.classes.iter().copied() {
                    let Some(entry) = self.classes.get(class) else {
                        continue;
                    };
                    if !levels
                        .iter()
                        .zip(&entry.levels)
                        .all(|(held, min)| held >= min)
                    {
                        continue;
                    }
                    if let Some(first) = entry.first_after(after) {
                        heads.push(Reverse((*first, class)));
                    }
                }
            }
        }
        while let Some(Reverse((order, class))) = heads.pop() {
            let blocked = self
                .by_order
                .get(&order)
                .and_then(|filed| calls.get(&filed.id))
                .is_some_and(|call| call.blocks(&agent.id, now));
            if !blocked {
                return Some(order);
            }
            if let Some(entry) = self.classes.get(class)
                && let Some(next) = entry.first_after(Some(&order))
            {
                heads.push(Reverse((*next, class)));
            }
        }
        None
    }

    /// Compares the index with the calls that have no offer in progress
    /// and describes the first difference.
    pub(crate) fn check(&self, calls: &Table<Call>) -> Result<(), String> {
        let mut expected = 0;
        for call in calls.values().filter(|call| call.offers.is_empty()) {
            expected += 1;
            let Some(filed) = self.by_order.get(&call.order) else {
                return Err(format!("{}: waiting but not filed", call.id));
            };
            if *filed.id != *call.id {
                return Err(format!("{}: filed as {}", call.id, filed.id));
            }
            let needs = needs_of(&call.requirements);
            let class = self.classes.get(filed.class);
            let group = class.and_then(|c| self.groups.get(c.group));
            let matches = class.zip(group).is_some_and(|(class, group)| {
                group.key.matches(&call.queue, &needs)
                    && class.levels.iter().copied().eq(needs.iter().map(|n| n.1))
                    && class.contains(&call.order)
            });
            if !matches {
                return Err(format!("{}: filed under another class", call.id));
            }
        }
        if self.by_order.len() != expected {
            return Err(format!(
                "{} calls filed as waiting, {expected} without an offer",
                self.by_order.len()
            ));
        }
        let in_classes: usize = self.classes.iter().map(|(_, c)| c.calls.len()).sum();
        if in_classes != expected {
            return Err(format!("{in_classes} calls in classes, {expected} waiting"));
        }
        for (index, class) in self.classes.iter() {
            let listed = self
                .groups
                .get(class.group)
                .is_some_and(|g| g.classes.iter().filter(|c| **c == index).count() == 1);
            if class.calls.is_empty() || !listed {
                return Err(format!("class {index} empty or not in its group once"));
            }
            let sorted = class.calls.iter().zip(class.calls.iter().skip(1));
            if !sorted.clone().all(|(a, b)| a < b) {
                return Err(format!("class {index} out of order"));
            }
        }
        for (index, group) in self.groups.iter() {
            let listed = self
                .by_queue
                .get(&group.key.queue)
                .is_some_and(|list| list.iter().filter(|r| r.group == index).count() == 1);
            let hash = group_hash(
                &group.key.queue,
                group.key.skills.iter().map(String::as_str),
            );
            let indexed = self
                .group_index
                .get(&hash)
                .is_some_and(|groups| groups.contains(&index));
            if group.classes.is_empty() || group.hash != hash || !indexed {
                return Err(format!("group {:?} empty or not indexed", group.key));
            }
            if !listed {
                return Err(format!("group {:?} not listed once", group.key));
            }
        }
        Ok(())
    }
}
