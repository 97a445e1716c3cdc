//! Agents: presence (logged in, reachable), what they are doing, and the state derived from both.

use std::collections::BTreeSet;
use std::time::Instant;

/// Agent state as the queue_log and dashboards show it.
///
/// A call-related activity (ringing, on call, wrap-up) wins over presence:
/// an agent whose registration expires mid-call is still `OnCall`.
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
    WrapUp,
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
    },
    WrapUp {
        until: Instant,
    },
}

#[derive(Clone, Debug)]
pub(crate) struct Agent {
    pub(crate) id: String,
    pub(crate) queues: BTreeSet<String>,
    pub(crate) logged_in: bool,
    pub(crate) reachable: bool,
    pub(crate) activity: Activity,
    /// Start of the current idle period: when the agent last became available
    /// after being logged out, unreachable, on a call or in wrap-up. A failed
    /// offer does not restart it. `None` until the agent is first available.
    pub(crate) idle_since: Option<Instant>,
}

impl Agent {
    /// Creates an agent that is logged out and unreachable.
    pub(crate) fn new(id: &str, queues: &[String]) -> Agent {
        Agent {
            id: id.to_owned(),
            queues: queues.iter().cloned().collect(),
            logged_in: false,
            reachable: false,
            activity: Activity::Idle,
            idle_since: None,
        }
    }

    pub(crate) fn state(&self) -> AgentState {
        match self.activity {
            Activity::Reserved { .. } => AgentState::Ringing,
            Activity::OnCall { .. } => AgentState::OnCall,
            Activity::WrapUp { .. } => AgentState::WrapUp,
            Activity::Idle if !self.logged_in => AgentState::LoggedOut,
            Activity::Idle if !self.reachable => AgentState::Unreachable,
            Activity::Idle => AgentState::Available,
        }
    }

    pub(crate) fn serves(&self, queue: &str) -> bool {
        self.queues.contains(queue)
    }
}
