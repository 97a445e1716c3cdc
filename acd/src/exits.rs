//! Calls leaving a queue without an agent (exit keys, max wait, empty
//! queues, overflow steps) and callback requests.

use std::collections::{BTreeMap, HashMap};
use std::time::Instant;

use tracing::debug;

use crate::agent::AgentState as S;
use crate::call::{Call, CallData, deadline_after};
use crate::callbacks::CallbackAttempts;
use crate::config::{Destination, EmptyConditions};
use crate::engine::Acd;
use crate::error::AcdError;
use crate::output::{Action, ExitReason, QueueEvent};
use crate::skill::{SkillRequirement, StepRule, active_step, effective_requirements, qualifies};

impl Acd {
    /// Adds a callback request at the place `arrival` gives it. A request
    /// restored after a restart (`announce` false) emits no event, since its
    /// request was stored already.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn insert_callback(
        &mut self,
        call_id: &str,
        queue: &str,
        data: CallData,
        arrival: (Instant, u64),
        number: String,
        announce: bool,
        now: Instant,
    ) {
        let order = self.order_for(queue, data.priority, arrival.0, arrival.1);
        let mut call = Call {
            id: call_id.to_owned(),
            queue: queue.to_owned(),
            requirements: data.requirements.clone(),
            data,
            order,
            entered: now,
            joined_position: 0,
            max_wait_deadline: None,
            offers: BTreeMap::new(),
            retry_after: BTreeMap::new(),
            step: None,
            next_step_at: None,
            callback: Some(number.clone()),
            not_before: None,
            failed_attempts: 0,
        };
        call.joined_position = self.position_of(&call);
        let event = announce.then(|| QueueEvent::CallbackRequested {
            call: call_id.to_owned(),
            queue: queue.to_owned(),
            number,
            data: call.data.clone(),
            arrived: arrival.0,
            at: now,
        });
        self.insert_call(call);
        self.events.extend(event);
        self.advance_step(call_id, now);
    }

    /// Turns a waiting call into a callback request that keeps its place:
    /// the driver hangs up the caller, and when the request reaches an agent
    /// the ACD emits [`Action::Callback`]. `number` defaults to the caller's.
    pub fn request_callback(
        &mut self,
        call: &str,
        number: Option<&str>,
        now: Instant,
    ) -> Result<(), AcdError> {
        let unknown = || AcdError::UnknownCall {
            call: call.to_owned(),
        };
        let entry = self.calls.get(call).ok_or_else(unknown)?;
        let number = number
            .map(str::to_owned)
            .or_else(|| entry.data.caller.clone())
            .ok_or_else(unknown)?;
        self.cancel_offers(call, now);
        let Some(mut entry) = self.calls.get_mut(call) else {
            return Err(unknown());
        };
        entry.max_wait_deadline = None;
        entry.callback = Some(number.clone());
        let event = QueueEvent::CallbackRequested {
            call: call.to_owned(),
            queue: entry.queue.clone(),
            number,
            data: entry.data.clone(),
            arrived: entry.order.arrived,
            at: now,
        };
        // The guard re-files the call's deadlines when it is dropped.
        drop(entry);
        self.events.push_back(event);
        self.dispatch(now);
        Ok(())
    }

    /// Puts back a callback request stored before a restart, at the place
    /// its original `arrived` instant gives it, with the attempts it made
    /// before, without a new event.
    #[allow(clippy::too_many_arguments)]
    pub fn restore_callback(
        &mut self,
        call: &str,
        queue: &str,
        data: CallData,
        number: &str,
        arrived: Instant,
        attempts: CallbackAttempts,
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
        let arrival = (arrived.min(now), seq);
        self.insert_callback(call, queue, data, arrival, number.to_owned(), false, now);
        if let Some(mut entry) = self.calls.get_mut(call) {
            entry.failed_attempts = attempts.failed;
            entry.not_before = attempts.not_before.filter(|at| *at > now);
        }
        self.dispatch(now);
        Ok(())
    }

    /// Handles a DTMF key from a waiting caller. Returns whether the key is
    /// an exit key of the call's queue, in which case the call leaves the
    /// queue for the key's destination.
    pub fn key_pressed(&mut self, call: &str, key: char, now: Instant) -> bool {
        let destination = self
            .calls
            .get(call)
            .and_then(|c| self.queues.get(&c.queue))
            .and_then(|q| q.config.exit_keys.get(&key).cloned());
        let Some(destination) = destination else {
            return false;
        };
        self.exit_call(call, ExitReason::Key(key), Some(destination), now);
        self.dispatch(now);
        true
    }

    /// Returns whether `queue` has a member that counts as present under `conditions`.
    pub(crate) fn has_agent(
        &self,
        queue: &str,
        conditions: EmptyConditions,
        requirements: &[SkillRequirement],
    ) -> bool {
        let counts = self.agents.tally();
        let present = |state| match state {
            S::LoggedOut => false,
            S::Available => true,
            S::Unreachable => !conditions.unreachable,
            S::NotReady => !conditions.not_ready,
            S::Ringing => !conditions.ringing,
            S::OnCall => !conditions.on_call,
            S::WrapUp => !conditions.wrap_up,
        };
        let states = [
            S::Available,
            S::Unreachable,
            S::NotReady,
            S::Ringing,
            S::OnCall,
            S::WrapUp,
        ];
        let anyone = states
            .into_iter()
            .any(|state| present(state) && counts.count(queue, state) > 0);
        // Without skills to test, the counts of members by state decide.
        if !anyone || !conditions.unskilled || requirements.is_empty() {
            return anyone;
        }
        // TODO: this walks every agent until a present member qualifies.
        // Counts by queue, state and skill level would avoid the walk.
        self.agents.values().any(|agent| {
            present(agent.state()) && agent.serves(queue) && qualifies(&agent.skills, requirements)
        })
    }

    /// Brings the call's step up to date with its waiting time; a step that
    /// overflows sends the call on.
    pub(crate) fn advance_step(&mut self, call_id: &str, now: Instant) {
        let Some(call) = self.calls.get(call_id) else {
            return;
        };
        let Some(queue) = self.queues.get(&call.queue) else {
            return;
        };
        let steps = &queue.config.steps;
        let waited = now.saturating_duration_since(call.entered);
        let step = active_step(steps, waited);
        let next_step_at = steps
            .get(step.map_or(0, |i| i + 1))
            .map(|next| deadline_after(call.entered, next.after));
        let rule = step.and_then(|i| steps.get(i)).map(|s| s.rule.clone());
        let changed = step != call.step;

        // Overflow applies once, when the step is reached, and never to
        // callback requests, whose caller is no longer on the line.
        let overflow = match &rule {
            Some(StepRule::Overflow(destination)) if changed && call.callback.is_none() => {
                Some(destination.clone())
            }
            _ => None,
        };
        if let Some(destination) = overflow {
            self.exit_call(call_id, ExitReason::Step, Some(destination), now);
            return;
        }

        let Some(mut call) = self.calls.get_mut(call_id) else {
            return;
        };
        call.next_step_at = next_step_at;
        if !changed {
            return;
        }
        call.step = step;
        if !matches!(rule, Some(StepRule::Overflow(_))) {
            call.requirements = effective_requirements(&call.data.requirements, rule.as_ref());
        }
        let queue = call.queue.clone();
        drop(call);
        self.refile_waiting(call_id);
        if let Some(step) = step {
            self.events.push_back(QueueEvent::StepReached {
                call: call_id.to_owned(),
                queue,
                step,
                at: now,
            });
        }
    }

    /// Removes a call that reached max wait. An offer in progress is
    /// cancelled first so the B2BUA stops ringing before it handles the caller.
    pub(crate) fn end_max_wait(&mut self, call_id: &str, now: Instant) {
        let overflow = self
            .calls
            .get(call_id)
            .and_then(|c| self.queues.get(&c.queue))
            .and_then(|q| q.config.overflow.clone());
        if overflow.is_some() {
            self.exit_call(call_id, ExitReason::MaxWait, overflow, now);
            return;
        }
        let Some(position) = self.calls.get(call_id).map(|c| self.position_of(c)) else {
            return;
        };
        let agent = self.cancel_offers(call_id, now);
        let Some(removed) = self.remove_call(call_id) else {
            return;
        };
        if let Some(queue) = self.queues.get_mut(&removed.queue) {
            queue.stats.record_timeout();
        }
        self.actions.push_back(Action::MaxWaitReached {
            call: removed.id.clone(),
        });
        self.events.push_back(QueueEvent::CallTimedOut {
            waited: removed.waited(now),
            call: removed.id,
            queue: removed.queue,
            agent,
            position,
            joined_position: removed.joined_position,
            at: now,
        });
    }

    /// Sends a call out of its queue without an agent. Without a destination
    /// the driver gets `MaxWaitReached` and ends the call as unanswered.
    pub(crate) fn exit_call(
        &mut self,
        call_id: &str,
        reason: ExitReason,
        destination: Option<Destination>,
        now: Instant,
    ) {
        let Some(position) = self.calls.get(call_id).map(|c| self.position_of(c)) else {
            return;
        };
        self.cancel_offers(call_id, now);
        let has_caller = self
            .calls
            .get(call_id)
            .is_some_and(|c| c.data.caller.is_some());
        if destination == Some(Destination::Callback) && has_caller {
            self.actions.push_back(Action::Overflow {
                call: call_id.to_owned(),
                destination: Destination::Callback,
                reason,
            });
            // The request keeps its place, so the call stays where it is.
            let _ = self.request_callback(call_id, None, now);
            return;
        }
        let Some(removed) = self.remove_call(call_id) else {
            return;
        };
        if let Some(queue) = self.queues.get_mut(&removed.queue) {
            queue.stats.record_exit();
        }
        self.events.push_back(QueueEvent::CallExited {
            call: removed.id.clone(),
            queue: removed.queue.clone(),
            reason,
            destination: destination.clone(),
            waited: removed.waited(now),
            position,
            joined_position: removed.joined_position,
            at: now,
        });
        let call = removed.id;
        match destination {
            Some(Destination::Queue(next)) => {
                let arrival = (removed.order.arrived, removed.order.seq);
                let mut visited = vec![removed.queue];
                if let Err(error) =
                    self.join(&call, &next, removed.data, arrival, now, &mut visited)
                {
                    debug!(%error, "overflow to another queue failed");
                    self.actions.push_back(Action::MaxWaitReached { call });
                }
            }
            Some(destination @ (Destination::Voicemail(_) | Destination::Number(_))) => {
                self.actions.push_back(Action::Overflow {
                    call,
                    destination,
                    reason,
                });
            }
            Some(Destination::Callback) | None => {
                self.actions.push_back(Action::MaxWaitReached { call })
            }
        }
    }

    /// Sends waiting callers of queues with `leave_empty` to the overflow
    /// destination once no member counts as present.
    // Whether a member is present depends on the call only through its
    // requirements, and only under `unskilled`, so each queue looks for a
    // present member once and, under `unskilled`, once per set of
    // requirements. Most
    // dispatches thus cost one look for a present member per such queue,
    // not one per waiting call.
    pub(crate) fn leave_empty_queues(&mut self, now: Instant) {
        let mut leaving = Vec::new();
        for (name, queue) in &self.queues {
            let Some(conditions) = queue.config.leave_empty else {
                continue;
            };
            if queue.ranks.is_empty() {
                continue;
            }
            let anyone = self.has_agent(name, conditions, &[]);
            if anyone && !conditions.unskilled {
                continue;
            }
            let mut present: HashMap<&[SkillRequirement], bool> = HashMap::new();
            for order in self.waiting.orders_in(name) {
                let Some(call) = self.waiting.id_at(&order).and_then(|id| self.calls.get(id))
                else {
                    continue;
                };
                // Callback requests wait with the caller off the line.
                if call.callback.is_some() {
                    continue;
                }
                let skilled = anyone
                    && *present
                        .entry(call.requirements.as_slice())
                        .or_insert_with(|| self.has_agent(name, conditions, &call.requirements));
                if !skilled {
                    leaving.push((call.order, call.id.clone(), queue.config.overflow.clone()));
                }
            }
        }
        leaving.sort_by_key(|(order, _, _)| *order);
        for (_, call, destination) in leaving {
            self.exit_call(&call, ExitReason::LeaveEmpty, destination, now);
        }
    }
}
