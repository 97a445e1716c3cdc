//! Queues and the calls waiting in them.

use std::cmp::Reverse;
use std::collections::{BTreeMap, VecDeque};
use std::time::{Duration, Instant};

use crate::config::QueueConfig;
use crate::skill::SkillRequirement;
use crate::table::Indexed;

/// Data attached to a call when it joins a queue: routing needs and what
/// the agent's screen shows.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CallData {
    /// Higher is served first.
    pub priority: u32,
    /// Skills an agent needs, before any relaxation by the queue's steps.
    pub requirements: Vec<SkillRequirement>,
    /// The caller's number, also the number a callback dials.
    pub caller: Option<String>,
    /// Request type chosen in the IVR.
    pub request_type: Option<String>,
    /// Case or ticket id the caller entered.
    pub case_id: Option<String>,
    /// Any other attached data, by name.
    pub attributes: BTreeMap<String, String>,
}

pub(crate) struct Queue {
    pub(crate) config: QueueConfig,
    /// Agent offered last, where round robin resumes.
    pub(crate) last_offered: Option<String>,
    pub(crate) stats: crate::stats::QueueStats,
    /// Removed from the configuration: takes no new calls, and disappears
    /// with its memberships once its last call has left.
    pub(crate) retiring: bool,
    /// Order keys of the calls waiting or ringing in the queue, for positions.
    pub(crate) ranks: crate::ranks::Ranks,
}

impl Queue {
    pub(crate) fn new(config: QueueConfig) -> Queue {
        Queue {
            config,
            last_offered: None,
            stats: crate::stats::QueueStats::default(),
            retiring: false,
            ranks: crate::ranks::Ranks::default(),
        }
    }
}

/// Service order of calls across all queues: queue weight (zero for all
/// unless weights are in force), higher priority, earlier arrival, then
/// enqueue order for calls that arrived at the same instant.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct CallOrder {
    pub(crate) queue_weight: Reverse<u32>,
    pub(crate) priority: Reverse<u32>,
    pub(crate) arrived: Instant,
    pub(crate) seq: u64,
}

#[derive(Clone, Debug)]
pub(crate) struct Offer {
    pub(crate) started: Instant,
    pub(crate) ring_deadline: Instant,
}

/// A call that is waiting for an agent or ringing one or more.
#[derive(Clone, Debug)]
pub(crate) struct Call {
    pub(crate) id: String,
    pub(crate) queue: String,
    pub(crate) data: CallData,
    pub(crate) order: CallOrder,
    /// When the call joined its current queue; max wait and steps count from here.
    pub(crate) entered: Instant,
    /// Position (from 1) when the call joined its current queue.
    pub(crate) joined_position: usize,
    /// `None` for callback requests, which wait until served.
    pub(crate) max_wait_deadline: Option<Instant>,
    /// Agents ringing for this call; several only under ring-all.
    pub(crate) offers: BTreeMap<String, Offer>,
    /// Agents that rejected or missed this call, each with the instant from
    /// which it may be offered the call again.
    pub(crate) retry_after: BTreeMap<String, Instant>,
    /// Index of the queue step in force, `None` before the first.
    pub(crate) step: Option<usize>,
    /// The next instant at which a later step takes over.
    pub(crate) next_step_at: Option<Instant>,
    /// Requirements under the step in force.
    pub(crate) requirements: Vec<SkillRequirement>,
    /// Number to dial when this is a callback request.
    pub(crate) callback: Option<String>,
    /// A callback request whose citizen was not reached waits until this
    /// instant before any agent is offered it again.
    pub(crate) not_before: Option<Instant>,
    /// Attempts of a callback request that did not reach the citizen.
    pub(crate) failed_attempts: u32,
}

impl Call {
    pub(crate) fn waited(&self, now: Instant) -> Duration {
        now.saturating_duration_since(self.order.arrived)
    }

    pub(crate) fn blocks(&self, agent: &str, now: Instant) -> bool {
        self.not_before.is_some_and(|until| until > now)
            || self
                .retry_after
                .get(agent)
                .is_some_and(|until| *until > now)
    }

    /// Returns the earliest instant at which this call needs `handle_timeout`.
    pub(crate) fn next_deadline(&self) -> Option<Instant> {
        let rings = self.offers.values().map(|offer| offer.ring_deadline);
        let retries = self.retry_after.values().copied();
        let own = [self.max_wait_deadline, self.next_step_at, self.not_before];
        rings.chain(retries).chain(own.into_iter().flatten()).min()
    }
}

/// The entry times of each queue's calls, counted, kept by the call table
/// so that the longest wait needs no walk over the calls.
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct EntryTimes {
    /// A queue without calls has no entry, so that times kept up to date
    /// equal times rebuilt.
    by_queue: BTreeMap<String, BTreeMap<Instant, u32>>,
}

impl EntryTimes {
    /// Returns when the call that entered `queue` first did so.
    pub(crate) fn earliest(&self, queue: &str) -> Option<Instant> {
        let times = self.by_queue.get(queue)?;
        times.first_key_value().map(|(entered, _)| *entered)
    }
}

impl Indexed for Call {
    type Summary = (String, Instant);
    type Tally = EntryTimes;

    fn deadline(&self) -> Option<Instant> {
        self.next_deadline()
    }

    fn summary(&self) -> (String, Instant) {
        (self.queue.clone(), self.entered)
    }

    fn refresh_summary(&self, summary: &mut (String, Instant)) {
        if self.queue != summary.0 {
            summary.0.clone_from(&self.queue);
        }
        summary.1 = self.entered;
    }

    fn has_summary(&self, (queue, entered): &(String, Instant)) -> bool {
        self.queue == *queue && self.entered == *entered
    }

    fn count(tally: &mut EntryTimes, (queue, entered): &(String, Instant), added: bool) {
        if added {
            let times = tally.by_queue.entry(queue.clone()).or_default();
            *times.entry(*entered).or_default() += 1;
            return;
        }
        let Some(times) = tally.by_queue.get_mut(queue) else {
            return;
        };
        if let Some(count) = times.get_mut(entered) {
            *count -= 1;
            if *count == 0 {
                times.remove(entered);
            }
        }
        if times.is_empty() {
            tally.by_queue.remove(queue);
        }
    }
}

/// Returns `now + duration`, or a later instant short of it when the sum
/// overflows, so a huge configured duration means "practically never"
/// instead of a panic.
pub(crate) fn deadline_after(now: Instant, duration: Duration) -> Instant {
    let mut remaining = duration;
    loop {
        if let Some(deadline) = now.checked_add(remaining) {
            return deadline;
        }
        // Halving reaches zero, which always fits, so the loop ends.
        remaining /= 2;
    }
}

/// Bounded history of recent values, oldest first.
#[derive(Clone, Debug)]
pub(crate) struct History<T> {
    values: VecDeque<T>,
}

impl<T> Default for History<T> {
    fn default() -> History<T> {
        History {
            values: VecDeque::new(),
        }
    }
}

impl<T> History<T> {
    pub(crate) fn push(&mut self, value: T, capacity: usize) {
        if self.values.len() == capacity {
            self.values.pop_front();
        }
        self.values.push_back(value);
    }

    pub(crate) fn iter(&self) -> impl Iterator<Item = &T> {
        self.values.iter()
    }

    pub(crate) fn len(&self) -> usize {
        self.values.len()
    }
}
