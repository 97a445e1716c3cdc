//! Callback requests between the agent's answer and the citizen's. The
//! request counts as answered only when the citizen picks up. An attempt
//! that does not reach the citizen puts the request back in its place,
//! where it waits for the queue's retry delay, until its attempts run out.

use std::time::{Duration, Instant};

use tracing::debug;

use crate::agent::Activity;
use crate::call::{Call, deadline_after};
use crate::engine::Acd;
use crate::output::{CallbackFailure, QueueEvent};

/// A callback request whose agent answered while the citizen is dialed.
pub(crate) struct Dialing {
    pub(crate) call: Call,
    pub(crate) agent: String,
    /// How long the agent rang, for the answer event once the citizen picks up.
    pub(crate) ring_time: Duration,
}

/// Earlier attempts of a callback request restored after a restart.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CallbackAttempts {
    /// Attempts that did not reach the citizen and count against the limit.
    pub failed: u32,
    /// No agent is offered the request before this instant.
    pub not_before: Option<Instant>,
}

impl Acd {
    /// Puts the agent that answered a callback request's offer on the
    /// request while the driver dials the citizen.
    pub(crate) fn start_dialing(
        &mut self,
        call: Call,
        agent: &str,
        ring_time: Duration,
        now: Instant,
    ) {
        let activity = Activity::OnCall {
            call: call.id.clone(),
            queue: call.queue.clone(),
            answered: now,
            waited: call.waited(now),
            joined_position: call.joined_position,
        };
        self.change_agent(agent, now, now, |a| {
            a.activity = activity;
            a.consecutive_no_answer = 0;
        });
        self.connected.insert(call.id.clone(), agent.to_owned());
        self.events.push_back(QueueEvent::CallbackDialing {
            call: call.id.clone(),
            queue: call.queue.clone(),
            agent: agent.to_owned(),
            ring_time,
            at: now,
        });
        self.dialing.insert(
            call.id.clone(),
            Dialing {
                call,
                agent: agent.to_owned(),
                ring_time,
            },
        );
    }

    /// Records that the citizen of a callback request answered. The request
    /// counts as answered now, and the agent's talk time starts. Ignored
    /// unless the request's citizen is being dialed.
    pub fn callback_connected(&mut self, call: &str, now: Instant) {
        let Some(dialing) = self.dialing.remove(call) else {
            debug!(
                call,
                "callback answer for a request not being dialed ignored"
            );
            return;
        };
        let Dialing {
            call: request,
            agent,
            ring_time,
        } = dialing;
        let waited = request.waited(now);
        self.change_agent(&agent, now, now, |a| {
            if let Activity::OnCall {
                answered,
                waited: on_call_waited,
                ..
            } = &mut a.activity
            {
                *answered = now;
                *on_call_waited = waited;
            }
            a.calls_answered += 1;
        });
        if let Some(queue) = self.queues.get_mut(&request.queue) {
            let target = queue.config.service_level;
            queue.stats.record_answer(waited, target);
        }
        self.events.push_back(QueueEvent::OfferAnswered {
            waited,
            ring_time,
            joined_position: request.joined_position,
            call: request.id,
            queue: request.queue,
            agent,
            at: now,
        });
    }

    /// Records that an attempt at a callback request did not reach the
    /// citizen. The agent goes to wrap-up as after a call. The request goes
    /// back to its place, offered again after the queue's retry delay,
    /// unless it has used its attempts. An attempt the agent cut short does
    /// not count, and only that agent waits the queue's retry delay before
    /// it is offered the request again. Ignored unless the request's
    /// citizen is being dialed.
    pub fn callback_not_reached(&mut self, call: &str, cause: CallbackFailure, now: Instant) {
        let Some(Dialing {
            call: mut request,
            agent,
            ..
        }) = self.dialing.remove(call)
        else {
            debug!(
                call,
                "failed callback attempt for a request not being dialed ignored"
            );
            return;
        };
        self.end_agent_call(&agent, false, now);
        let Some(config) = self.queues.get(&request.queue).map(|q| q.config.clone()) else {
            // The queue is gone with its configuration: nothing to retry in.
            self.end_callback(request, &agent, cause, now);
            return;
        };
        let counted = cause != CallbackFailure::AgentLeft;
        if counted {
            request.failed_attempts += 1;
        }
        if request.failed_attempts >= config.callback_attempts.max(1) {
            self.end_callback(request, &agent, cause, now);
            return;
        }
        let retry_at = if counted {
            let at = deadline_after(now, config.callback_retry_delay);
            request.not_before = Some(at);
            at
        } else {
            let at = deadline_after(now, config.retry_delay);
            request.retry_after.insert(agent.clone(), at);
            now
        };
        request.offers.clear();
        self.events.push_back(QueueEvent::CallbackNotReached {
            call: request.id.clone(),
            queue: request.queue.clone(),
            agent,
            cause,
            attempts: request.failed_attempts,
            retry_at: Some(retry_at),
            waited: request.waited(now),
            at: now,
        });
        self.insert_call(request);
        self.dispatch(now);
    }

    /// Ends a callback request whose last attempt failed.
    fn end_callback(&mut self, request: Call, agent: &str, cause: CallbackFailure, now: Instant) {
        self.events.push_back(QueueEvent::CallbackNotReached {
            waited: request.waited(now),
            call: request.id,
            queue: request.queue,
            agent: agent.to_owned(),
            cause,
            attempts: request.failed_attempts,
            retry_at: None,
            at: now,
        });
        self.dispatch(now);
    }
}
