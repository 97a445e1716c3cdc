//! Inputs about agents: presence, not-ready reason codes, wrap-up, and no-answer handling.

use std::sync::Arc;
use std::time::Instant;

use tracing::debug;

use crate::agent::{Activity, Agent, AgentState};
use crate::call::deadline_after;
use crate::engine::Acd;
use crate::error::AcdError;
use crate::output::QueueEvent;

/// Not-ready reason code set when an agent reaches its queue's `max_no_answer`.
pub const NO_ANSWER_REASON: &str = "no-answer";

/// How an offer ended without an answer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum NoAnswer {
    Rejected,
    Busy,
    TimedOut,
}

impl Acd {
    /// Records an agent's login or logout. Logging out does not cancel an
    /// offer in progress or end a call: the B2BUA reports how those end.
    /// Logging out also clears a not-ready reason, so the next login is
    /// ready, and that ends the pause with `AgentReady`.
    pub fn set_logged_in(&mut self, agent: &str, logged_in: bool, now: Instant) {
        let Some(entry) = self.agents.get(agent) else {
            debug!(
                agent,
                logged_in, "login change for an unknown agent ignored"
            );
            return;
        };
        if entry.logged_in == logged_in {
            return;
        }
        self.events.push_back(QueueEvent::AgentLogin {
            agent: agent.to_owned(),
            logged_in,
            at: now,
        });
        if !logged_in {
            self.end_pause(agent, now);
        }
        self.change_agent(agent, now, now, |a| {
            a.logged_in = logged_in;
            if !logged_in {
                a.not_ready = None;
            }
        });
        self.dispatch(now);
    }

    /// Records whether the agent has at least one registered contact that
    /// answers (registration and qualify results).
    pub fn set_reachable(&mut self, agent: &str, reachable: bool, now: Instant) {
        self.set_reachable_because(agent, reachable, None, now);
    }

    /// Records reachability as [`Acd::set_reachable`] does, and puts the
    /// driver's `cause` (`registration`, `expiry`, `qualify`...) into the
    /// `AgentReachability` event.
    pub fn set_reachable_because(
        &mut self,
        agent: &str,
        reachable: bool,
        cause: Option<&str>,
        now: Instant,
    ) {
        let Some(entry) = self.agents.get(agent) else {
            debug!(
                agent,
                reachable, "reachability change for an unknown agent ignored"
            );
            return;
        };
        if entry.reachable == reachable {
            return;
        }
        self.events.push_back(QueueEvent::AgentReachability {
            agent: agent.to_owned(),
            reachable,
            cause: cause.map(str::to_owned),
            at: now,
        });
        self.change_agent(agent, now, now, |a| a.reachable = reachable);
        self.dispatch(now);
    }

    /// Records `AgentReady` for a not-ready agent that a logout or a removal
    /// is about to clear, so that its pause has an end in the queue_log.
    /// The caller clears the reason in the same change as the logout, so no
    /// moment of availability is recorded in between.
    pub(crate) fn end_pause(&mut self, agent: &str, now: Instant) {
        let Some(entry) = self.agents.get(agent) else {
            return;
        };
        let Some(reason) = entry.not_ready.clone() else {
            return;
        };
        let queues = entry.queues.keys().cloned().collect();
        self.events.push_back(QueueEvent::AgentReady {
            agent: agent.to_owned(),
            reason,
            queues,
            at: now,
        });
    }

    /// Sets the agent not ready with a reason code (break, lunch, training...),
    /// from the API or a SIP feature code. An agent ringing, on a call or in
    /// wrap-up finishes that first and is then not ready. Setting a new
    /// reason while not ready replaces the old one.
    pub fn set_not_ready(
        &mut self,
        agent: &str,
        reason: &str,
        now: Instant,
    ) -> Result<(), AcdError> {
        self.agent_mut(agent)?;
        self.pause(agent, reason, now);
        self.dispatch(now);
        Ok(())
    }

    /// Makes a not-ready agent ready again and offers it waiting calls. It
    /// also resets the count of unanswered offers.
    pub fn set_ready(&mut self, agent: &str, now: Instant) -> Result<(), AcdError> {
        let mut entry = self.agent_mut(agent)?;
        entry.consecutive_no_answer = 0;
        let Some(reason) = entry.not_ready.clone() else {
            return Ok(());
        };
        let queues = entry.queues.keys().cloned().collect();
        drop(entry);
        self.change_agent(agent, now, now, |a| a.not_ready = None);
        self.events.push_back(QueueEvent::AgentReady {
            agent: agent.to_owned(),
            reason,
            queues,
            at: now,
        });
        self.dispatch(now);
        Ok(())
    }

    /// Records the wrap-up code the agent chose for its last call.
    pub fn set_wrap_up_code(
        &mut self,
        agent: &str,
        code: &str,
        now: Instant,
    ) -> Result<(), AcdError> {
        let Activity::WrapUp { call, queue, .. } = self.agent_mut(agent)?.activity.clone() else {
            return Err(AcdError::NotInWrapUp {
                agent: agent.to_owned(),
            });
        };
        self.events.push_back(QueueEvent::WrapUpCodeSet {
            call,
            queue,
            agent: agent.to_owned(),
            code: code.to_owned(),
            at: now,
        });
        Ok(())
    }

    /// Ends the agent's wrap-up before its maximum duration.
    pub fn end_wrap_up(&mut self, agent: &str, now: Instant) -> Result<(), AcdError> {
        if !matches!(self.agent_mut(agent)?.activity, Activity::WrapUp { .. }) {
            return Err(AcdError::NotInWrapUp {
                agent: agent.to_owned(),
            });
        }
        self.change_agent(agent, now, now, |a| a.activity = Activity::Idle);
        self.dispatch(now);
        Ok(())
    }

    fn pause(&mut self, agent: &str, reason: &str, now: Instant) {
        let Some(entry) = self.agents.get(agent) else {
            return;
        };
        if entry.not_ready.as_deref() == Some(reason) {
            return;
        }
        let queues = entry.queues.keys().cloned().collect();
        self.change_agent(agent, now, now, |a| a.not_ready = Some(reason.to_owned()));
        self.events.push_back(QueueEvent::AgentNotReady {
            agent: agent.to_owned(),
            reason: reason.to_owned(),
            queues,
            at: now,
        });
    }

    /// Ends every wrap-up whose maximum has passed, in agent id order.
    pub(crate) fn end_wrap_ups(&mut self, now: Instant) {
        // A wrap-up end is its agent's deadline, so only due agents can have one.
        let mut ended: Vec<(Arc<str>, Instant)> = self
            .agents
            .due(now)
            .into_iter()
            .filter_map(|id| match self.agents.get(&id)?.activity {
                Activity::WrapUp { until, .. } if until <= now => Some((id, until)),
                _ => None,
            })
            .collect();
        ended.sort();
        for (agent, until) in ended {
            // Idle time counts from the scheduled end, even if this runs late.
            self.change_agent(&agent, now, until, |a| a.activity = Activity::Idle);
        }
    }

    /// Frees an agent whose offer ended for a reason that is not its own
    /// (abandon, max wait, another agent answered).
    pub(crate) fn release_agent(&mut self, agent: &str, now: Instant) {
        self.change_agent(agent, now, now, |a| a.activity = Activity::Idle);
    }

    /// Frees an agent that did not answer: applies the queue's reject, busy
    /// or no-answer delay and, at `max_no_answer` in a row, sets it not ready.
    pub(crate) fn release_unanswered(
        &mut self,
        agent: &str,
        queue: &str,
        reason: NoAnswer,
        now: Instant,
    ) {
        let Some(config) = self.queues.get(queue).map(|q| &q.config) else {
            self.release_agent(agent, now);
            return;
        };
        let delay = match reason {
            NoAnswer::Rejected => config.reject_delay,
            NoAnswer::Busy => config.busy_delay,
            NoAnswer::TimedOut => config.no_answer_delay,
        };
        let max_no_answer = config.max_no_answer;
        let counts = reason != NoAnswer::Busy;
        self.change_agent(agent, now, now, |a| {
            a.activity = Activity::Idle;
            if !delay.is_zero() {
                a.blocked_until = Some(deadline_after(now, delay));
            }
            if counts {
                a.consecutive_no_answer += 1;
            }
        });
        let missed = self
            .agents
            .get(agent)
            .map_or(0, |a| a.consecutive_no_answer);
        if max_no_answer > 0 && missed >= max_no_answer {
            self.pause(agent, NO_ANSWER_REASON, now);
        }
    }

    /// Applies `change` to an agent and records the state change, if any.
    /// `idle_from` becomes the start of the idle period when the agent turns
    /// available from anything but ringing.
    pub(crate) fn change_agent(
        &mut self,
        id: &str,
        now: Instant,
        idle_from: Instant,
        change: impl FnOnce(&mut Agent),
    ) {
        let Some(mut agent) = self.agents.get_mut(id) else {
            return;
        };
        let from = agent.state();
        change(&mut agent);
        let to = agent.state();
        if from == AgentState::WrapUp && to != AgentState::WrapUp {
            // `handle_timeout` only visits agents whose deadline is due, and
            // a delay that passed during wrap-up was not one. Dropping it
            // here keeps it from becoming a deadline in the past.
            agent.blocked_until = agent.blocked_until.filter(|until| *until > now);
        }
        if from == to {
            return;
        }
        // A missed or rejected offer keeps the agent's place in the idle order.
        if to == AgentState::Available && from != AgentState::Ringing {
            agent.idle_since = Some(idle_from);
        }
        drop(agent);
        debug!(agent = id, ?from, ?to, "agent state changed");
        self.events.push_back(QueueEvent::AgentStateChanged {
            agent: id.to_owned(),
            from,
            to,
            at: now,
        });
        self.forget_if_removed(id);
    }
}
