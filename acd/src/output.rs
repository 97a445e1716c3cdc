//! Engine output for the driver: actions to carry out and events to record.

use std::time::{Duration, Instant};

use crate::agent::AgentState;
use crate::call::CallData;
use crate::config::Destination;

/// Work for the driver (the B2BUA), returned by [`crate::Acd::poll_action`].
/// Queues built with `QueueConfig::default()` for every field past `wrap_up`
/// only ever produce `Offer`, `CancelOffer` and `MaxWaitReached`.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Action {
    /// Ring `agent` for `call`; the ACD reserves the agent.
    Offer { call: String, agent: String },
    /// Stop ringing `agent` for `call`: its ring timeout passed, the call
    /// left the queue, or (under ring-all) another agent answered. The ACD
    /// already counts the agent as free.
    CancelOffer { call: String, agent: String },
    /// The call waited `max_wait` without an agent answering, and its queue
    /// has no overflow destination.
    MaxWaitReached { call: String },
    /// Ring every listed agent for `call` at once (ring-all strategy). The
    /// first answer wins; the ACD then emits `CancelOffer` for the others.
    OfferAll { call: String, agents: Vec<String> },
    /// The call left the ACD for `destination`. A `Destination::Queue`
    /// never appears here because the ACD moves such calls itself.
    Overflow {
        call: String,
        destination: Destination,
        reason: ExitReason,
    },
    /// A callback request reached an agent: ring `agent`, and once it
    /// answers dial `number`. Report the outcome with `offer_answered` or
    /// `offer_rejected` as for an `Offer`.
    Callback {
        call: String,
        agent: String,
        number: String,
    },
}

/// Cause of an attempt at a callback request that did not reach the citizen.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum CallbackFailure {
    /// The citizen's line was busy or declined.
    Busy,
    /// The citizen's phone rang without an answer.
    NoAnswer,
    /// The number could not be reached (unknown, unavailable, network error).
    Unreachable,
    /// The agent hung up before the citizen answered. The attempt does not
    /// count against the limit and the request is offered again at once.
    AgentLeft,
}

impl CallbackFailure {
    /// Returns the name used in stored events and the queue_log.
    pub fn as_str(self) -> &'static str {
        match self {
            CallbackFailure::Busy => "busy",
            CallbackFailure::NoAnswer => "no_answer",
            CallbackFailure::Unreachable => "unreachable",
            CallbackFailure::AgentLeft => "agent_left",
        }
    }
}

/// Why a call left its queue without an agent.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ExitReason {
    /// The queue held `max_length` calls at enqueue.
    Full,
    /// The queue had no agent at enqueue, under its `join_empty` conditions.
    JoinEmpty,
    /// The queue lost its last agent under its `leave_empty` conditions.
    LeaveEmpty,
    /// The caller pressed this DTMF key.
    Key(char),
    /// A skill expansion step sent the call on.
    Step,
    /// The call reached `max_wait`.
    MaxWait,
}

/// Which side hung up a connected call.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Party {
    Caller,
    Agent,
}

/// Outcome of a post-call survey.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum SurveyOutcome {
    /// The caller keyed this score, 1 to 5.
    Answered(u8),
    /// No key came within the time allowed for the last try.
    TimedOut,
    /// Every try got a key other than 1 to 5.
    Invalid,
    /// The caller hung up before answering.
    HungUp,
    /// The PBX ended the call before an answer: it stopped, or the
    /// caller's session expired.
    Interrupted,
}

impl SurveyOutcome {
    /// Returns the name used in stored events and the CDR.
    pub fn as_str(self) -> &'static str {
        match self {
            SurveyOutcome::Answered(_) => "answered",
            SurveyOutcome::TimedOut => "timed_out",
            SurveyOutcome::Invalid => "invalid",
            SurveyOutcome::HungUp => "hung_up",
            SurveyOutcome::Interrupted => "interrupted",
        }
    }

    /// Returns the score of an answered survey.
    pub fn score(self) -> Option<u8> {
        match self {
            SurveyOutcome::Answered(score) => Some(score),
            _ => None,
        }
    }
}

/// A fact about a queue or an agent, for logs, CDRs, KPIs and the
/// queue_log, returned by [`crate::Acd::poll_event`]. `at` is the `now` of
/// the input that caused it. Positions count from 1 in service order.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum QueueEvent {
    CallEnqueued {
        call: String,
        queue: String,
        caller: Option<String>,
        /// The call's [`crate::CallData::request_type`].
        request_type: Option<String>,
        position: usize,
        at: Instant,
    },
    /// The call now routes by step `step` of its queue (index from 0).
    StepReached {
        call: String,
        queue: String,
        step: usize,
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
        ring_time: Duration,
        joined_position: usize,
        at: Instant,
    },
    /// The agent declined the offer, or its phone was `busy`.
    OfferRejected {
        call: String,
        queue: String,
        agent: String,
        busy: bool,
        ring_time: Duration,
        at: Instant,
    },
    /// The ring timeout passed without an answer.
    OfferTimedOut {
        call: String,
        queue: String,
        agent: String,
        ring_time: Duration,
        at: Instant,
    },
    /// Another agent answered a ring-all offer first.
    OfferCancelled {
        call: String,
        queue: String,
        agent: String,
        ring_time: Duration,
        at: Instant,
    },
    /// The caller hung up; `agent` is an agent that was ringing, if any.
    CallAbandoned {
        call: String,
        queue: String,
        agent: Option<String>,
        waited: Duration,
        position: usize,
        joined_position: usize,
        at: Instant,
    },
    /// The call reached the queue's max wait. `agent` is an agent whose offer
    /// was cancelled, if any.
    CallTimedOut {
        call: String,
        queue: String,
        agent: Option<String>,
        waited: Duration,
        position: usize,
        joined_position: usize,
        at: Instant,
    },
    /// The call left the queue without an agent for another reason;
    /// `destination` is `None` when the driver decides (refused join).
    CallExited {
        call: String,
        queue: String,
        reason: ExitReason,
        destination: Option<Destination>,
        waited: Duration,
        position: usize,
        joined_position: usize,
        at: Instant,
    },
    /// The caller hung up and will be called back; the request keeps its
    /// place. `data` and `arrived` (the arrival that gives the place) let a
    /// driver that stores events restore the request after a restart.
    CallbackRequested {
        call: String,
        queue: String,
        number: String,
        data: CallData,
        arrived: Instant,
        at: Instant,
    },
    /// An agent took a callback request and the driver is dialing the
    /// citizen; the request counts as answered only at
    /// [`crate::Acd::callback_connected`].
    CallbackDialing {
        call: String,
        queue: String,
        agent: String,
        ring_time: Duration,
        at: Instant,
    },
    /// An attempt at a callback request did not reach the citizen. With
    /// `retry_at` the request waits in its place until then; without it the
    /// request has used its attempts and ends here. `attempts` counts the
    /// failed attempts so far that count against the limit.
    CallbackNotReached {
        call: String,
        queue: String,
        agent: String,
        cause: CallbackFailure,
        attempts: u32,
        retry_at: Option<Instant>,
        waited: Duration,
        at: Instant,
    },
    /// A connected call ended; `ended_by` is `None` when the driver did not say.
    CallCompleted {
        call: String,
        queue: String,
        agent: String,
        waited: Duration,
        talk_time: Duration,
        joined_position: usize,
        ended_by: Option<Party>,
        at: Instant,
    },
    /// The agent transferred a connected call to `target`.
    CallTransferred {
        call: String,
        queue: String,
        agent: String,
        target: String,
        waited: Duration,
        talk_time: Duration,
        joined_position: usize,
        at: Instant,
    },
    /// `by` put the other party of the connected call on hold.
    CallHeld {
        call: String,
        queue: String,
        agent: String,
        by: Party,
        at: Instant,
    },
    /// The hold that `by` started ended, after `held`: the holding side
    /// resumed, or the call ended while on hold.
    CallResumed {
        call: String,
        queue: String,
        agent: String,
        by: Party,
        held: Duration,
        at: Instant,
    },
    /// The agent hung up first and the caller stays on the line for the
    /// queue's post-call survey.
    SurveyOffered {
        call: String,
        queue: String,
        agent: String,
        at: Instant,
    },
    /// The post-call survey ended with an answer or without one.
    SurveyFinished {
        call: String,
        queue: String,
        agent: String,
        outcome: SurveyOutcome,
        at: Instant,
    },
    WrapUpCodeSet {
        call: String,
        queue: String,
        agent: String,
        code: String,
        at: Instant,
    },
    AgentStateChanged {
        agent: String,
        from: AgentState,
        to: AgentState,
        at: Instant,
    },
    /// The agent went not ready; `queues` are its queues at that moment.
    AgentNotReady {
        agent: String,
        reason: String,
        queues: Vec<String>,
        at: Instant,
    },
    /// The agent left not ready; `reason` is the code it had.
    AgentReady {
        agent: String,
        reason: String,
        queues: Vec<String>,
        at: Instant,
    },
    /// The agent logged in or out. It comes whatever the agent is doing,
    /// so a logout during a call is recorded when it happens, while the
    /// agent's state changes only after the call and its wrap-up.
    AgentLogin {
        agent: String,
        logged_in: bool,
        at: Instant,
    },
    /// The agent gained its first reachable contact, or lost its last one.
    /// Like `AgentLogin`, it comes during calls too. `cause` is what the
    /// driver gave as the reason, such as a registration or a qualify
    /// probe.
    AgentReachability {
        agent: String,
        reachable: bool,
        cause: Option<String>,
        at: Instant,
    },
    MemberAdded {
        agent: String,
        queue: String,
        at: Instant,
    },
    MemberRemoved {
        agent: String,
        queue: String,
        at: Instant,
    },
}

impl QueueEvent {
    /// Returns the instant the event happened.
    pub fn at(&self) -> Instant {
        match self {
            QueueEvent::CallEnqueued { at, .. }
            | QueueEvent::StepReached { at, .. }
            | QueueEvent::OfferStarted { at, .. }
            | QueueEvent::OfferAnswered { at, .. }
            | QueueEvent::OfferRejected { at, .. }
            | QueueEvent::OfferTimedOut { at, .. }
            | QueueEvent::OfferCancelled { at, .. }
            | QueueEvent::CallAbandoned { at, .. }
            | QueueEvent::CallTimedOut { at, .. }
            | QueueEvent::CallExited { at, .. }
            | QueueEvent::CallbackRequested { at, .. }
            | QueueEvent::CallbackDialing { at, .. }
            | QueueEvent::CallbackNotReached { at, .. }
            | QueueEvent::CallCompleted { at, .. }
            | QueueEvent::CallTransferred { at, .. }
            | QueueEvent::CallHeld { at, .. }
            | QueueEvent::CallResumed { at, .. }
            | QueueEvent::SurveyOffered { at, .. }
            | QueueEvent::SurveyFinished { at, .. }
            | QueueEvent::WrapUpCodeSet { at, .. }
            | QueueEvent::AgentStateChanged { at, .. }
            | QueueEvent::AgentNotReady { at, .. }
            | QueueEvent::AgentReady { at, .. }
            | QueueEvent::AgentLogin { at, .. }
            | QueueEvent::AgentReachability { at, .. }
            | QueueEvent::MemberAdded { at, .. }
            | QueueEvent::MemberRemoved { at, .. } => *at,
        }
    }
}
