//! Inputs about calls: joining a queue, leaving it, answers, call ends and callbacks.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use tracing::debug;

use crate::agent::Activity;
use crate::call::{Call, CallData, deadline_after};
use crate::config::Destination;
use crate::engine::Acd;
use crate::error::AcdError;
use crate::output::{Action, ExitReason, Party, QueueEvent};
use crate::skill::effective_requirements;

/// Summary of the call an agent was on, returned by [`Acd::end_agent_call`].
pub(crate) struct EndedCall {
    pub(crate) call: String,
    pub(crate) queue: String,
    pub(crate) waited: Duration,
    pub(crate) talk_time: Duration,
    pub(crate) joined_position: usize,
}

impl Acd {
    /// Puts a new call without attached data at the end of priority 0 in
    /// `queue` and offers it at once if an agent is eligible.
    pub fn enqueue(&mut self, call: &str, queue: &str, now: Instant) -> Result<(), AcdError> {
        self.enqueue_with(call, queue, CallData::default(), now)
    }

    /// Puts a new call with its priority, required skills and attached data
    /// in `queue`. A full queue, or an empty one under `join_empty`, sends
    /// the call to the queue's overflow destination or returns an error.
    pub fn enqueue_with(
        &mut self,
        call: &str,
        queue: &str,
        data: CallData,
        now: Instant,
    ) -> Result<(), AcdError> {
        if self.queues.get(queue).is_none_or(|q| q.retiring) {
            return Err(AcdError::UnknownQueue {
                call: call.to_owned(),
                queue: queue.to_owned(),
            });
        }
        if let Some(existing) = self.queue_of(call) {
            return Err(AcdError::DuplicateCall {
                call: call.to_owned(),
                queue: existing,
            });
        }
        let seq = self.next_seq;
        self.next_seq += 1;
        let mut visited = Vec::new();
        self.join(call, queue, data, (now, seq), now, &mut visited)?;
        self.dispatch(now);
        Ok(())
    }

    /// Joins `queue`, or follows its overflow when it refuses the call.
    /// `arrival` (instant and sequence) keeps the call's place in service
    /// order across moves between queues.
    pub(crate) fn join(
        &mut self,
        call_id: &str,
        queue_name: &str,
        data: CallData,
        arrival: (Instant, u64),
        now: Instant,
        visited: &mut Vec<String>,
    ) -> Result<(), AcdError> {
        // A queue removed from the configuration takes no new calls, not
        // even by overflow.
        let Some(queue) = self.queues.get(queue_name).filter(|q| !q.retiring) else {
            return Err(AcdError::UnknownQueue {
                call: call_id.to_owned(),
                queue: queue_name.to_owned(),
            });
        };
        if visited.iter().any(|q| q == queue_name) {
            return Err(AcdError::OverflowLoop {
                call: call_id.to_owned(),
                queue: queue_name.to_owned(),
            });
        }
        visited.push(queue_name.to_owned());
        let config = &queue.config;
        let first_rule = config
            .steps
            .first()
            .filter(|s| s.after.is_zero())
            .map(|s| &s.rule);
        let requirements = effective_requirements(&data.requirements, first_rule);
        let length = queue.ranks.len();
        let refusal = match (config.max_length, config.join_empty) {
            (Some(max_length), _) if length >= max_length => Some(ExitReason::Full),
            (_, Some(conditions)) if !self.has_agent(queue_name, conditions, &requirements) => {
                Some(ExitReason::JoinEmpty)
            }
            _ => None,
        };
        if let Some(reason) = refusal {
            return self.refuse(call_id, queue_name, data, arrival, reason, now, visited);
        }

        let order = self.order_for(queue_name, data.priority, arrival.0, arrival.1);
        let max_wait = deadline_after(now, config.max_wait);
        let mut call = Call {
            id: call_id.to_owned(),
            queue: queue_name.to_owned(),
            data,
            order,
            entered: now,
            joined_position: 0,
            max_wait_deadline: Some(max_wait),
            offers: BTreeMap::new(),
            retry_after: BTreeMap::new(),
            step: None,
            next_step_at: None,
            requirements: Vec::new(),
            callback: None,
            not_before: None,
            failed_attempts: 0,
        };
        call.requirements = call.data.requirements.clone();
        call.joined_position = self.position_of(&call);
        self.events.push_back(QueueEvent::CallEnqueued {
            call: call_id.to_owned(),
            queue: queue_name.to_owned(),
            caller: call.data.caller.clone(),
            request_type: call.data.request_type.clone(),
            position: call.joined_position,
            at: now,
        });
        self.insert_call(call);
        if let Some(queue) = self.queues.get_mut(queue_name) {
            queue.stats.record_arrival(now);
        }
        self.advance_step(call_id, now);
        Ok(())
    }

    #[allow(clippy::too_many_arguments)] // The arguments of `join`, plus the reason.
    fn refuse(
        &mut self,
        call_id: &str,
        queue_name: &str,
        data: CallData,
        arrival: (Instant, u64),
        reason: ExitReason,
        now: Instant,
        visited: &mut Vec<String>,
    ) -> Result<(), AcdError> {
        let overflow = self
            .queues
            .get(queue_name)
            .and_then(|q| q.config.overflow.clone());
        if let Some(queue) = self.queues.get_mut(queue_name) {
            queue.stats.record_exit();
        }
        self.events.push_back(QueueEvent::CallExited {
            call: call_id.to_owned(),
            queue: queue_name.to_owned(),
            reason,
            destination: overflow.clone(),
            waited: now.saturating_duration_since(arrival.0),
            position: 0,
            joined_position: 0,
            at: now,
        });
        match overflow {
            Some(Destination::Queue(next)) => {
                self.join(call_id, &next, data, arrival, now, visited)
            }
            Some(Destination::Callback) if data.caller.is_some() => {
                // A callback request waits with the caller off the line, so
                // it joins in spite of the limit that refused the call.
                let number = data.caller.clone().unwrap_or_default();
                self.insert_callback(call_id, queue_name, data, arrival, number, true, now);
                self.actions.push_back(Action::Overflow {
                    call: call_id.to_owned(),
                    destination: Destination::Callback,
                    reason,
                });
                Ok(())
            }
            Some(destination @ (Destination::Voicemail(_) | Destination::Number(_))) => {
                self.actions.push_back(Action::Overflow {
                    call: call_id.to_owned(),
                    destination,
                    reason,
                });
                Ok(())
            }
            Some(Destination::Callback) | None => Err(match reason {
                ExitReason::Full => AcdError::QueueFull {
                    call: call_id.to_owned(),
                    queue: queue_name.to_owned(),
                    max_length: self
                        .queues
                        .get(queue_name)
                        .and_then(|q| q.config.max_length)
                        .unwrap_or_default(),
                },
                _ => AcdError::QueueEmpty {
                    call: call_id.to_owned(),
                    queue: queue_name.to_owned(),
                },
            }),
        }
    }

    /// Removes a call whose caller hung up, whether queued or ringing an agent.
    /// A ringing agent is freed at once and no `CancelOffer` is emitted,
    /// because the B2BUA cancels the agent leg itself.
    pub fn abandon(&mut self, call: &str, now: Instant) {
        let Some(position) = self.calls.get(call).map(|c| self.position_of(c)) else {
            debug!(call, "abandon of a call not in any queue ignored");
            return;
        };
        let Some(removed) = self.remove_call(call) else {
            return;
        };
        let agents: Vec<String> = removed.offers.keys().cloned().collect();
        for agent in &agents {
            self.release_agent(agent, now);
        }
        if let Some(queue) = self.queues.get_mut(&removed.queue) {
            queue.stats.record_abandon();
        }
        self.events.push_back(QueueEvent::CallAbandoned {
            waited: removed.waited(now),
            call: removed.id,
            queue: removed.queue,
            agent: agents.into_iter().next(),
            position,
            joined_position: removed.joined_position,
            at: now,
        });
        self.dispatch(now);
    }

    /// Records that the agent's call ended. The agent spends at most the
    /// wrap-up time of the call's queue in wrap-up, then becomes available
    /// again with its idle time counted from the end of wrap-up. Ignored
    /// unless the agent is on a call.
    pub fn call_ended(&mut self, agent: &str, now: Instant) {
        self.finish_call(agent, None, None, now);
    }

    /// Like [`Acd::call_ended`], naming the side that hung up for the queue_log.
    pub fn call_ended_by(&mut self, agent: &str, party: Party, now: Instant) {
        self.finish_call(agent, Some(party), None, now);
    }

    /// Records that the agent transferred its call to `target`; the agent
    /// goes to wrap-up as after `call_ended`.
    pub fn call_transferred(&mut self, agent: &str, target: &str, now: Instant) {
        self.finish_call(agent, None, Some(target), now);
    }

    fn finish_call(
        &mut self,
        agent: &str,
        party: Option<Party>,
        transfer: Option<&str>,
        now: Instant,
    ) {
        let dialing = match self.agents.get(agent).map(|a| &a.activity) {
            Some(Activity::OnCall { call, .. }) if self.dialing.contains_key(call) => {
                Some(call.clone())
            }
            _ => None,
        };
        if let Some(request) = dialing {
            // The citizen of a callback never answered, so there is no call
            // to complete: the attempt failed.
            let cause = match party {
                Some(Party::Agent) => crate::CallbackFailure::AgentLeft,
                _ => crate::CallbackFailure::Unreachable,
            };
            self.callback_not_reached(&request, cause, now);
            return;
        }
        let on_call = match self.agents.get(agent).map(|a| &a.activity) {
            Some(Activity::OnCall { call, .. }) => Some(call.clone()),
            _ => None,
        };
        if let Some(call) = on_call {
            // A hold still open ends with the call, before its completion.
            self.end_hold(&call, now);
        }
        let Some(ended) = self.end_agent_call(agent, true, now) else {
            debug!(agent, "call end for an agent not on a call ignored");
            return;
        };
        let event = match transfer {
            Some(target) => QueueEvent::CallTransferred {
                call: ended.call,
                queue: ended.queue,
                agent: agent.to_owned(),
                target: target.to_owned(),
                waited: ended.waited,
                talk_time: ended.talk_time,
                joined_position: ended.joined_position,
                at: now,
            },
            None => QueueEvent::CallCompleted {
                call: ended.call,
                queue: ended.queue,
                agent: agent.to_owned(),
                waited: ended.waited,
                talk_time: ended.talk_time,
                joined_position: ended.joined_position,
                ended_by: party,
                at: now,
            },
        };
        self.events.push_back(event);
        self.dispatch(now);
    }

    /// Ends the agent's part in its call: the agent spends the queue's
    /// wrap-up time in wrap-up (or is idle at once without one) and its talk
    /// time grows. `handle_time` says whether the call counts in the
    /// queue's handle times, which model the expected wait.
    pub(crate) fn end_agent_call(
        &mut self,
        agent: &str,
        handle_time: bool,
        now: Instant,
    ) -> Option<EndedCall> {
        let Some(Activity::OnCall {
            call,
            queue,
            answered,
            waited,
            joined_position,
        }) = self.agents.get(agent).map(|a| a.activity.clone())
        else {
            return None;
        };
        let talk_time = now.saturating_duration_since(answered);
        let own_wrap_up = self.agents.get(agent).and_then(|a| a.wrap_up);
        let wrap_up = own_wrap_up.unwrap_or_else(|| {
            self.queues
                .get(&queue)
                .map(|q| q.config.wrap_up)
                .unwrap_or_default()
        });
        // NOTE: the handle time counts the maximum wrap-up, not the
        // part the agent used, so it overstates handle times when agents end
        // wrap-up early.
        if handle_time && let Some(q) = self.queues.get_mut(&queue) {
            q.stats.record_handle_time(talk_time + wrap_up);
        }
        self.connected.remove(&call);
        let ended = EndedCall {
            call: call.clone(),
            queue: queue.clone(),
            waited,
            talk_time,
            joined_position,
        };
        let activity = if wrap_up.is_zero() {
            Activity::Idle
        } else {
            Activity::WrapUp {
                call,
                queue,
                until: deadline_after(now, wrap_up),
            }
        };
        self.change_agent(agent, now, now, |a| {
            a.activity = activity;
            a.talk_time += talk_time;
        });
        Some(ended)
    }

    /// Returns the queue of a call that is queued, ringing or connected to an agent.
    pub fn queue_of(&self, call: &str) -> Option<String> {
        if let Some(queued) = self.calls.get(call) {
            return Some(queued.queue.clone());
        }
        let agent = self.agents.get(self.connected.get(call)?)?;
        match &agent.activity {
            Activity::OnCall { queue, .. } => Some(queue.clone()),
            _ => None,
        }
    }

    pub(crate) fn remove_call(&mut self, call: &str) -> Option<Call> {
        let removed = self.calls.remove(call)?;
        if let Some(queue) = self.queues.get_mut(&removed.queue) {
            queue.ranks.remove(&removed.order);
        }
        self.waiting.remove(&removed.order);
        Some(removed)
    }
}
