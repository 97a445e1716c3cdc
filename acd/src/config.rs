//! Queue configuration: timings, strategy, limits, skill expansion steps and overflow.

use std::collections::BTreeMap;
use std::time::Duration;

use crate::skill::RoutingStep;

/// Agent selection rule of a queue.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum Strategy {
    /// The agent idle for the longest time.
    #[default]
    LongestIdle,
    /// The agent that answered the fewest calls since it was added.
    FewestCalls,
    /// The agent with the least accumulated talk time.
    LeastTalkTime,
    /// Members in queue order, starting after the agent offered last
    /// (round robin with memory).
    RoundRobin,
    /// Every eligible agent rings at once; the first to answer takes the call.
    RingAll,
    /// Members in queue order, always starting from the first (top-down).
    Linear,
    /// A uniformly random eligible agent.
    Random,
    /// A random eligible agent, chosen with probability proportional to its
    /// membership weight.
    WeightedRandom,
    /// The agent with the highest summed proficiency in the call's required skills.
    BestProficiency,
}

/// Where a call goes when it leaves a queue without an agent.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Destination {
    /// Another queue of this ACD. The call moves there and keeps its arrival
    /// time, so its waiting time keeps counting.
    Queue(String),
    /// A voicemail box.
    Voicemail(String),
    /// A number or extension that the PBX dials.
    Number(String),
    /// The call becomes a callback request that keeps its place in the
    /// queue; the caller is told and hung up by the driver.
    Callback,
}

/// Agent states that count as "no agent" when deciding whether a queue is
/// empty. Logged-out agents and agents that are not members never count.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct EmptyConditions {
    /// Agents in not-ready (paused).
    pub not_ready: bool,
    /// Agents logged in without a reachable contact.
    pub unreachable: bool,
    /// Agents ringing for a call.
    pub ringing: bool,
    /// Agents on a call.
    pub on_call: bool,
    /// Agents in wrap-up.
    pub wrap_up: bool,
    /// Agents lacking the skills that the call requires at its first step.
    pub unskilled: bool,
}

impl EmptyConditions {
    /// Counts only agents that could take a call now (Asterisk's "strict" set).
    pub fn strict() -> EmptyConditions {
        EmptyConditions {
            not_ready: true,
            unreachable: true,
            ringing: true,
            on_call: true,
            wrap_up: true,
            unskilled: true,
        }
    }

    /// Counts every logged-in, reachable member that is not paused.
    pub fn loose() -> EmptyConditions {
        EmptyConditions {
            not_ready: true,
            unreachable: true,
            ..EmptyConditions::default()
        }
    }
}

/// Configuration of one queue. Fields past `wrap_up` default to the plain
/// behaviour: longest idle, no limits, no steps, no overflow.
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
    /// Maximum wrap-up time after `call_ended`: the agent is available again
    /// when it ends wrap-up itself or when this time has passed.
    pub wrap_up: Duration,
    pub strategy: Strategy,
    /// Maximum number of calls in the queue (waiting or ringing); `None` is unlimited.
    pub max_length: Option<usize>,
    /// Queues with a higher weight are served first by agents that belong to
    /// several queues, when [`crate::CallerOrder::QueueWeight`] is in force.
    pub weight: u32,
    /// Skill expansion steps, by time since enqueue; see [`RoutingStep`].
    pub steps: Vec<RoutingStep>,
    /// Refuse new calls while no member counts as present under these conditions.
    pub join_empty: Option<EmptyConditions>,
    /// Remove waiting calls once no member counts as present under these conditions.
    pub leave_empty: Option<EmptyConditions>,
    /// Where calls go when the queue is full or empty, or reach max wait.
    /// Without it the call is refused (full, empty at join) or the driver
    /// gets [`crate::Action::MaxWaitReached`] (max wait, empty while waiting).
    pub overflow: Option<Destination>,
    /// DTMF keys a caller may press to leave the queue, and where each leads.
    pub exit_keys: BTreeMap<char, Destination>,
    /// Time an agent that declined an offer gets no offer from any queue.
    pub reject_delay: Duration,
    /// Time an agent whose phone answered busy gets no offer from any queue.
    pub busy_delay: Duration,
    /// Time an agent that let an offer ring out gets no offer from any queue.
    pub no_answer_delay: Duration,
    /// Consecutive unanswered offers (ring timeouts and rejections) after
    /// which the agent is set not ready; zero disables it.
    pub max_no_answer: u32,
    /// Service level target: a call answered within this wait counts as
    /// answered in service level in [`crate::QueueSnapshot`].
    pub service_level: Duration,
    /// Attempts at reaching the citizen of a callback request before the
    /// request ends as failed; at least one is always made.
    pub callback_attempts: u32,
    /// Wait after an attempt that did not reach the citizen before the
    /// request is offered to an agent again.
    pub callback_retry_delay: Duration,
}

impl Default for QueueConfig {
    fn default() -> QueueConfig {
        QueueConfig {
            name: String::new(),
            ring_timeout: Duration::from_secs(15),
            max_wait: Duration::from_secs(300),
            retry_delay: Duration::from_secs(5),
            wrap_up: Duration::ZERO,
            strategy: Strategy::default(),
            max_length: None,
            weight: 0,
            steps: Vec::new(),
            join_empty: None,
            leave_empty: None,
            overflow: None,
            exit_keys: BTreeMap::new(),
            reject_delay: Duration::ZERO,
            busy_delay: Duration::ZERO,
            no_answer_delay: Duration::ZERO,
            max_no_answer: 0,
            service_level: Duration::from_secs(20),
            callback_attempts: 3,
            callback_retry_delay: Duration::from_secs(300),
        }
    }
}

/// Order in which an agent that belongs to several queues takes their calls.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum CallerOrder {
    /// The call with the highest priority, then the longest wait, whatever its queue.
    #[default]
    LongestWaiting,
    /// Calls of the queue with the highest weight first, then priority, then wait.
    QueueWeight,
}
