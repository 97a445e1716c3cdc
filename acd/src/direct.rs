//! Calls that reach an agent's phone without a queue, such as a caller
//! forwarded to the agent's extension. With ring-in-use off, which the
//! driver decides, such a call makes the agent busy for the queues, and a
//! busy agent's extension is not rung.

use std::time::Instant;

use tracing::debug;

use crate::agent::Activity;
use crate::engine::Acd;

impl Acd {
    /// Records that the agent's phone rings for, or took, `call`, which did
    /// not come from a queue. The agent is on a call and gets no offer until
    /// [`Acd::direct_call_ended`], and a wrap-up in progress ends. Returns
    /// false, changing nothing, when the agent is ringing for or on another
    /// call, or is unknown.
    pub fn direct_call_started(&mut self, agent: &str, call: &str, now: Instant) -> bool {
        let Some(entry) = self.agents.get(agent) else {
            debug!(agent, call, "direct call for an unknown agent ignored");
            return false;
        };
        match &entry.activity {
            Activity::Idle | Activity::WrapUp { .. } => {}
            Activity::Direct { call: current } if current == call => return true,
            _ => return false,
        }
        self.change_agent(agent, now, now, |a| {
            a.activity = Activity::Direct {
                call: call.to_owned(),
            };
        });
        true
    }

    /// Moves the agent's direct call `from` to the call `to`, as when an
    /// attended transfer joins the agent who answered a consultation call
    /// to the transferred caller. The agent stays on a call throughout, so
    /// no offer can reach it in between. Returns false, changing nothing,
    /// when the agent is not on the direct call `from`.
    pub fn direct_call_moved(&mut self, agent: &str, from: &str, to: &str, now: Instant) -> bool {
        let current = self.agents.get(agent).map(|a| &a.activity);
        if !matches!(current, Some(Activity::Direct { call }) if call == from) {
            debug!(
                agent,
                from, to, "move of a direct call not in progress ignored"
            );
            return false;
        }
        self.change_agent(agent, now, now, |a| {
            a.activity = Activity::Direct {
                call: to.to_owned(),
            };
        });
        true
    }

    /// Records that `call`, started with [`Acd::direct_call_started`], has
    /// ended or was not answered: the agent is idle again, counted from now
    /// by the longest-idle strategy. Ignored for any other call.
    pub fn direct_call_ended(&mut self, agent: &str, call: &str, now: Instant) {
        let current = self.agents.get(agent).map(|a| &a.activity);
        if !matches!(current, Some(Activity::Direct { call: c }) if c == call) {
            debug!(agent, call, "end of a direct call not in progress ignored");
            return;
        }
        self.change_agent(agent, now, now, |a| a.activity = Activity::Idle);
        self.dispatch(now);
    }
}
