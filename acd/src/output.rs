//! Engine output for the driver: actions to carry out and events to record.

use std::time::{Duration, Instant};

use crate::agent::AgentState;

/// Work for the driver (the B2BUA), returned by [`crate::Acd::poll_action`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Action {
    /// Ring `agent` for `call`; the ACD reserves the agent.
    Offer { call: String, agent: String },
    /// The ring timeout passed: cancel the offer; the ACD already counts it as no answer.
    CancelOffer { call: String, agent: String },
    /// The call waited `max_wait` without an agent answering.
    MaxWaitReached { call: String },
}

/// A fact about a queue or an agent, for logs and the queue_log, returned by
/// [`crate::Acd::poll_event`]. `at` is the `now` of the input that caused it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum QueueEvent {
    CallEnqueued {
        call: String,
        queue: String,
        at: Instant,
    },
    OfferStarted {
        call: String,
        queue: String,
        agent: String,
        at: Instant,
    },
    /// The call left the queue, connected to `agent`; `waited` runs from enqueue.
    OfferAnswered {
        call: String,
        queue: String,
        agent: String,
        waited: Duration,
        at: Instant,
    },
    OfferRejected {
        call: String,
        queue: String,
        agent: String,
        at: Instant,
    },
    /// The ring timeout passed without an answer.
    OfferTimedOut {
        call: String,
        queue: String,
        agent: String,
        at: Instant,
    },
    /// The caller hung up; `agent` is the agent that was ringing, if any.
    CallAbandoned {
        call: String,
        queue: String,
        agent: Option<String>,
        waited: Duration,
        at: Instant,
    },
    /// The call reached the queue's max wait. `agent` is the agent whose offer
    /// was cancelled, if any.
    CallTimedOut {
        call: String,
        queue: String,
        agent: Option<String>,
        waited: Duration,
        at: Instant,
    },
    AgentStateChanged {
        agent: String,
        from: AgentState,
        to: AgentState,
        at: Instant,
    },
}

impl QueueEvent {
    /// Returns the instant the event happened.
    pub fn at(&self) -> Instant {
        match self {
            QueueEvent::CallEnqueued { at, .. }
            | QueueEvent::OfferStarted { at, .. }
            | QueueEvent::OfferAnswered { at, .. }
            | QueueEvent::OfferRejected { at, .. }
            | QueueEvent::OfferTimedOut { at, .. }
            | QueueEvent::CallAbandoned { at, .. }
            | QueueEvent::CallTimedOut { at, .. }
            | QueueEvent::AgentStateChanged { at, .. } => *at,
        }
    }
}
