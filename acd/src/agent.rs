//! Agents: presence (logged in, reachable, not ready), what they are doing,
//! and the state derived from both.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use crate::skill::Skills;
use crate::table::Indexed;

/// Agent state as the queue_log and dashboards show it.
///
/// A call-related activity (ringing, on call, wrap-up) wins over presence:
/// an agent whose registration expires mid-call is still `OnCall`, and an
/// agent set not ready during a call is `NotReady` once the call and its
/// wrap-up are over.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum AgentState {
    LoggedOut,
    /// Logged in, but no registered contact to ring.
    Unreachable,
    /// Eligible for offers from the queues the agent belongs to.
    Available,
    /// Reserved for one offered call.
    Ringing,
    OnCall,
    /// After-call work, until the agent ends it or the queue's maximum passes.
    WrapUp,
    /// Logged in but taking no calls, for the reason in [`AgentStatus`].
    NotReady,
}

/// Snapshot of one agent for dashboards and supervisors.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AgentStatus {
    pub state: AgentState,
    /// Reason code of not-ready (break, lunch, training...), also kept while
    /// a call or wrap-up defers it.
    pub not_ready_reason: Option<String>,
    /// Calls answered since the agent was added.
    pub calls_answered: u64,
    /// Talk time of those calls, from answer to `call_ended`.
    pub talk_time: Duration,
    /// Unanswered offers in a row since the last answer.
    pub consecutive_no_answer: u32,
    /// The call the agent is ringing for, talking on or wrapping up.
    pub call: Option<String>,
}

/// The agent's part in calls, independent of presence.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Activity {
    Idle,
    Reserved {
        call: String,
    },
    /// `queue` decides the wrap-up time when the call ends.
    OnCall {
        call: String,
        queue: String,
        answered: Instant,
        waited: Duration,
        joined_position: usize,
    },
    WrapUp {
        call: String,
        queue: String,
        until: Instant,
    },
    /// A call that did not come from a queue rings or is up on the agent's
    /// phone, such as a caller forwarded to the agent's extension.
    Direct {
        call: String,
    },
}

/// An agent's place in one queue.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Membership {
    /// Join order across all queues; linear and round robin go by it.
    pub(crate) position: u64,
    /// Relative chance under weighted random.
    pub(crate) weight: u32,
}

#[derive(Clone, Debug)]
pub(crate) struct Agent {
    pub(crate) id: String,
    pub(crate) queues: BTreeMap<String, Membership>,
    pub(crate) skills: Skills,
    /// After-call work of this agent, in place of each queue's `wrap_up`;
    /// `None` follows the queue.
    pub(crate) wrap_up: Option<Duration>,
    pub(crate) logged_in: bool,
    pub(crate) reachable: bool,
    pub(crate) not_ready: Option<String>,
    pub(crate) activity: Activity,
    /// Start of the current idle period: when the agent last became available
    /// after being logged out, unreachable, not ready, on a call or in
    /// wrap-up. A failed offer does not restart it. `None` until the agent
    /// is first available.
    pub(crate) idle_since: Option<Instant>,
    /// Reject, busy or no-answer delay: no offers before this instant.
    pub(crate) blocked_until: Option<Instant>,
    pub(crate) consecutive_no_answer: u32,
    pub(crate) calls_answered: u64,
    pub(crate) talk_time: Duration,
    /// Removed from the configuration while ringing, on a call or in
    /// wrap-up; the engine forgets it once it is idle.
    pub(crate) removed: bool,
}

impl Agent {
    /// Creates an agent that is logged out and unreachable.
    pub(crate) fn new(id: &str) -> Agent {
        Agent {
            id: id.to_owned(),
            queues: BTreeMap::new(),
            skills: Skills::new(),
            wrap_up: None,
            logged_in: false,
            reachable: false,
            not_ready: None,
            activity: Activity::Idle,
            idle_since: None,
            blocked_until: None,
            consecutive_no_answer: 0,
            calls_answered: 0,
            talk_time: Duration::ZERO,
            removed: false,
        }
    }

    pub(crate) fn state(&self) -> AgentState {
        match self.activity {
            Activity::Reserved { .. } => AgentState::Ringing,
            Activity::OnCall { .. } | Activity::Direct { .. } => AgentState::OnCall,
            Activity::WrapUp { .. } => AgentState::WrapUp,
            Activity::Idle if !self.logged_in => AgentState::LoggedOut,
            Activity::Idle if self.not_ready.is_some() => AgentState::NotReady,
            Activity::Idle if !self.reachable => AgentState::Unreachable,
            Activity::Idle => AgentState::Available,
        }
    }

    /// Returns whether the agent may get an offer now, from any queue.
    pub(crate) fn is_free(&self, now: Instant) -> bool {
        self.state() == AgentState::Available && self.blocked_until.is_none_or(|until| until <= now)
    }

    /// Returns whether the agent is available but in a reject, busy or
    /// no-answer delay at `now`.
    pub(crate) fn held_back(&self, now: Instant) -> bool {
        self.state() == AgentState::Available && !self.is_free(now)
    }

    pub(crate) fn serves(&self, queue: &str) -> bool {
        self.queues.contains_key(queue)
    }

    pub(crate) fn current_call(&self) -> Option<&str> {
        match &self.activity {
            Activity::Idle => None,
            Activity::Reserved { call }
            | Activity::OnCall { call, .. }
            | Activity::WrapUp { call, .. }
            | Activity::Direct { call } => Some(call),
        }
    }

    /// Returns when the agent next needs `handle_timeout`: the end of its
    /// wrap-up, or else the end of its reject, busy or no-answer delay. A
    /// delay running during wrap-up is not a deadline, since only an
    /// available agent is held back by it.
    pub(crate) fn next_deadline(&self) -> Option<Instant> {
        match self.activity {
            Activity::WrapUp { until, .. } => Some(until),
            _ => self.blocked_until,
        }
    }

    pub(crate) fn status(&self) -> AgentStatus {
        AgentStatus {
            state: self.state(),
            not_ready_reason: self.not_ready.clone(),
            calls_answered: self.calls_answered,
            talk_time: self.talk_time,
            consecutive_no_answer: self.consecutive_no_answer,
            call: self.current_call().map(str::to_owned),
        }
    }
}

/// How many states [`AgentState`] has.
const STATES: usize = 7;

impl AgentState {
    fn index(self) -> usize {
        match self {
            AgentState::LoggedOut => 0,
            AgentState::Unreachable => 1,
            AgentState::Available => 2,
            AgentState::Ringing => 3,
            AgentState::OnCall => 4,
            AgentState::WrapUp => 5,
            AgentState::NotReady => 6,
        }
    }
}

/// An agent's state and queues, as [`MemberCounts`] counts it.
pub(crate) struct MemberSummary {
    state: AgentState,
    queues: Vec<String>,
}

/// The members of each queue counted by state, kept by the agent table so
/// that staffing and empty-queue checks need no walk over the agents.
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct MemberCounts {
    /// Counts indexed by `AgentState::index`. A queue without members has
    /// no entry, so that counts kept up to date equal counts rebuilt.
    by_queue: BTreeMap<String, [u32; STATES]>,
}

impl MemberCounts {
    /// Returns how many members of `queue` are in `state`.
    pub(crate) fn count(&self, queue: &str, state: AgentState) -> u32 {
        self.by_queue
            .get(queue)
            .map_or(0, |counts| counts[state.index()])
    }

    fn change(&mut self, queue: &str, state: AgentState, added: bool) {
        if added {
            let counts = match self.by_queue.get_mut(queue) {
                Some(counts) => counts,
                None => self.by_queue.entry(queue.to_owned()).or_default(),
            };
            counts[state.index()] += 1;
            return;
        }
        let Some(counts) = self.by_queue.get_mut(queue) else {
            return;
        };
        counts[state.index()] = counts[state.index()].saturating_sub(1);
        if counts.iter().all(|count| *count == 0) {
            self.by_queue.remove(queue);
        }
    }
}

impl Indexed for Agent {
    type Summary = MemberSummary;
    type Tally = MemberCounts;

    fn deadline(&self) -> Option<Instant> {
        self.next_deadline()
    }

    fn summary(&self) -> MemberSummary {
        MemberSummary {
            state: self.state(),
            queues: self.queues.keys().cloned().collect(),
        }
    }

    fn refresh_summary(&self, summary: &mut MemberSummary) {
        summary.state = self.state();
        if !self.queues.keys().eq(summary.queues.iter()) {
            summary.queues.clear();
            summary.queues.extend(self.queues.keys().cloned());
        }
    }

    fn has_summary(&self, summary: &MemberSummary) -> bool {
        self.state() == summary.state && self.queues.keys().eq(summary.queues.iter())
    }

    fn count(tally: &mut MemberCounts, summary: &MemberSummary, added: bool) {
        for queue in &summary.queues {
            tally.change(queue, summary.state, added);
        }
    }

    fn available(&self) -> bool {
        self.state() == AgentState::Available
    }
}
