//! Holds inside connected calls and the post-call survey: facts the B2BUA
//! reports so that they are stored with the other queue events.

use std::time::Instant;

use tracing::debug;

use crate::agent::Activity;
use crate::engine::Acd;
use crate::output::{Party, QueueEvent, SurveyOutcome};

impl Acd {
    /// Records that `by` put the other party of connected call `call` on
    /// hold. Ignored when the call is not connected to an agent or is
    /// already on hold.
    pub fn call_held(&mut self, call: &str, by: Party, now: Instant) {
        let Some((agent, queue)) = self.connected_call(call) else {
            debug!(call, "hold of a call not connected to an agent ignored");
            return;
        };
        if self.holds.contains_key(call) {
            return;
        }
        self.holds.insert(call.to_owned(), (now, by));
        self.events.push_back(QueueEvent::CallHeld {
            call: call.to_owned(),
            queue,
            agent,
            by,
            at: now,
        });
    }

    /// Records that the hold of `call` ended. Ignored when it is not on hold.
    pub fn call_resumed(&mut self, call: &str, now: Instant) {
        self.end_hold(call, now);
    }

    /// Ends the hold of `call`, if any, with a `CallResumed` event. A call
    /// that ends while on hold gets it just before its `CallCompleted`.
    pub(crate) fn end_hold(&mut self, call: &str, now: Instant) {
        let Some((agent, queue)) = self.connected_call(call) else {
            self.holds.remove(call);
            return;
        };
        let Some((since, by)) = self.holds.remove(call) else {
            return;
        };
        self.events.push_back(QueueEvent::CallResumed {
            call: call.to_owned(),
            queue,
            agent,
            by,
            held: now.saturating_duration_since(since),
            at: now,
        });
    }

    /// Records that the caller of `call`, which `agent` answered in
    /// `queue`, hears the post-call survey.
    pub fn survey_offered(&mut self, call: &str, queue: &str, agent: &str, now: Instant) {
        self.events.push_back(QueueEvent::SurveyOffered {
            call: call.to_owned(),
            queue: queue.to_owned(),
            agent: agent.to_owned(),
            at: now,
        });
    }

    /// Records how the post-call survey of `call` ended.
    pub fn survey_finished(
        &mut self,
        call: &str,
        queue: &str,
        agent: &str,
        outcome: SurveyOutcome,
        now: Instant,
    ) {
        self.events.push_back(QueueEvent::SurveyFinished {
            call: call.to_owned(),
            queue: queue.to_owned(),
            agent: agent.to_owned(),
            outcome,
            at: now,
        });
    }

    /// Returns the agent and queue of a connected call.
    fn connected_call(&self, call: &str) -> Option<(String, String)> {
        let agent = self.connected.get(call)?;
        match self.agents.get(agent.as_str()).map(|a| &a.activity) {
            Some(Activity::OnCall { queue, .. }) => Some((agent.clone(), queue.clone())),
            _ => None,
        }
    }
}
