//! Queues and the calls waiting in them.

use std::cmp::Reverse;
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use crate::strategy::Strategy;

/// Timings of one queue.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct QueueConfig {
    pub name: String,
    /// How long one agent rings before the offer is cancelled. It should be
    /// above zero, because an offer times out at the first `handle_timeout`
    /// at or after its ring deadline.
    pub ring_timeout: Duration,
    /// Maximum time from enqueue until an agent answers.
    pub max_wait: Duration,
    /// Minimum time before an agent that rejected or missed a call is offered
    /// that same call again. Other calls may be offered to it at once.
    pub retry_delay: Duration,
    /// Time after `call_ended` before the agent is available again.
    pub wrap_up: Duration,
}

pub(crate) struct Queue {
    pub(crate) config: QueueConfig,
    pub(crate) strategy: Strategy,
}

/// Service order of calls across all queues: higher priority first, then
/// earlier arrival, then enqueue order for calls that arrived at the same instant.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct CallOrder {
    pub(crate) priority: Reverse<u32>,
    pub(crate) arrived: Instant,
    pub(crate) seq: u64,
}

#[derive(Clone, Debug)]
pub(crate) struct Offer {
    pub(crate) agent: String,
    pub(crate) ring_deadline: Instant,
}

/// A call that is waiting for an agent or ringing one.
#[derive(Clone, Debug)]
pub(crate) struct Call {
    pub(crate) id: String,
    pub(crate) queue: String,
    pub(crate) order: CallOrder,
    pub(crate) max_wait_deadline: Instant,
    pub(crate) offer: Option<Offer>,
    /// Agents that rejected or missed this call, each with the instant from
    /// which it may be offered the call again.
    pub(crate) retry_after: BTreeMap<String, Instant>,
}

impl Call {
    pub(crate) fn waited(&self, now: Instant) -> Duration {
        now.saturating_duration_since(self.order.arrived)
    }

    pub(crate) fn blocks(&self, agent: &str, now: Instant) -> bool {
        self.retry_after
            .get(agent)
            .is_some_and(|until| *until > now)
    }

    /// Returns the earliest instant at which this call needs `handle_timeout`.
    pub(crate) fn next_deadline(&self) -> Instant {
        let ring = self.offer.as_ref().map(|offer| offer.ring_deadline);
        let retry = self.retry_after.values().copied().min();
        [ring, retry]
            .into_iter()
            .flatten()
            .fold(self.max_wait_deadline, Instant::min)
    }
}
