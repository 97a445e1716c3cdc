//! The ACD state machine: inputs from the B2BUA and the registrar, timers, and dispatch.

use std::cmp::Reverse;
use std::collections::{BTreeMap, HashMap, VecDeque};
use std::time::{Duration, Instant};

use tracing::debug;

use crate::agent::{Activity, Agent, AgentState};
use crate::call::{Call, CallOrder, Offer, Queue, QueueConfig};
use crate::error::AcdError;
use crate::output::{Action, QueueEvent};
use crate::strategy::Strategy;

/// Reason an offer ended without an answer. Both reasons block the agent for
/// the queue's retry delay.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum NoAnswer {
    Rejected,
    TimedOut,
}

/// The automatic call distributor. See the crate documentation for how to drive it.
#[derive(Default)]
pub struct Acd {
    queues: BTreeMap<String, Queue>,
    agents: BTreeMap<String, Agent>,
    /// Calls waiting for an agent or ringing one, by call id. Answered calls
    /// leave this map and live on in the agent's `Activity::OnCall`.
    calls: HashMap<String, Call>,
    /// Calls without an offer in progress, in service order across all queues.
    waiting: BTreeMap<CallOrder, String>,
    next_seq: u64,
    actions: VecDeque<Action>,
    events: VecDeque<QueueEvent>,
}

impl Acd {
    pub fn new() -> Acd {
        Acd::default()
    }

    /// Adds a queue, or replaces the timings of an existing queue with the same
    /// name. New timings apply to deadlines set from now on.
    pub fn add_queue(&mut self, config: QueueConfig) {
        match self.queues.get_mut(&config.name) {
            Some(queue) => queue.config = config,
            None => {
                let queue = Queue {
                    config,
                    strategy: Strategy::default(),
                };
                self.queues.insert(queue.config.name.clone(), queue);
            }
        }
    }

    /// Adds an agent, logged out and unreachable, or replaces the queue
    /// membership of an existing one. Queues may be added after their agents.
    // NOTE: a membership change makes no offer by itself because this input
    // has no `now`. Waiting calls reach the agent at the next input that has one.
    pub fn add_agent(&mut self, agent: &str, queues: &[String]) {
        match self.agents.get_mut(agent) {
            Some(existing) => existing.queues = queues.iter().cloned().collect(),
            None => {
                self.agents
                    .insert(agent.to_owned(), Agent::new(agent, queues));
            }
        }
    }

    /// Records an agent's login or logout. Logging out does not cancel an
    /// offer in progress or end a call: the B2BUA reports how those end.
    pub fn set_logged_in(&mut self, agent: &str, logged_in: bool, now: Instant) {
        if !self.agents.contains_key(agent) {
            debug!(
                agent,
                logged_in, "login change for an unknown agent ignored"
            );
            return;
        }
        self.change_agent(agent, now, now, |a| a.logged_in = logged_in);
        self.dispatch(now);
    }

    /// Records whether the agent has at least one registered contact.
    pub fn set_reachable(&mut self, agent: &str, reachable: bool, now: Instant) {
        if !self.agents.contains_key(agent) {
            debug!(
                agent,
                reachable, "reachability change for an unknown agent ignored"
            );
            return;
        }
        self.change_agent(agent, now, now, |a| a.reachable = reachable);
        self.dispatch(now);
    }

    /// Puts a new call at the end of its priority in `queue` and offers it at
    /// once if an agent is eligible.
    pub fn enqueue(&mut self, call: &str, queue: &str, now: Instant) -> Result<(), AcdError> {
        let Some(max_wait) = self.queues.get(queue).map(|q| q.config.max_wait) else {
            return Err(AcdError::UnknownQueue {
                call: call.to_owned(),
                queue: queue.to_owned(),
            });
        };
        if let Some(existing) = self.queue_of(call) {
            return Err(AcdError::DuplicateCall {
                call: call.to_owned(),
                queue: existing,
            });
        }

        let order = CallOrder {
            // TODO: take the priority from the caller's route once routes carry one.
            priority: Reverse(0),
            arrived: now,
            seq: self.next_seq,
        };
        self.next_seq += 1;
        self.calls.insert(
            call.to_owned(),
            Call {
                id: call.to_owned(),
                queue: queue.to_owned(),
                order,
                max_wait_deadline: deadline_after(now, max_wait),
                offer: None,
                retry_after: BTreeMap::new(),
            },
        );
        self.waiting.insert(order, call.to_owned());
        self.events.push_back(QueueEvent::CallEnqueued {
            call: call.to_owned(),
            queue: queue.to_owned(),
            at: now,
        });
        self.dispatch(now);
        Ok(())
    }

    /// Removes a call whose caller hung up, whether queued or ringing an agent.
    /// A ringing agent is freed at once and no `CancelOffer` is emitted,
    /// because the B2BUA cancels the agent leg itself.
    pub fn abandon(&mut self, call: &str, now: Instant) {
        let Some(removed) = self.remove_call(call) else {
            debug!(call, "abandon of a call not in any queue ignored");
            return;
        };
        let agent = removed.offer.map(|offer| offer.agent);
        if let Some(agent) = &agent {
            self.release_agent(agent, now);
        }
        self.events.push_back(QueueEvent::CallAbandoned {
            call: removed.id,
            queue: removed.queue,
            agent,
            waited: now.saturating_duration_since(removed.order.arrived),
            at: now,
        });
        self.dispatch(now);
    }

    /// Records that `agent` declined or could not take `call`. The call goes
    /// back to its place in the queue and is offered to the next eligible
    /// agent at once. Ignored unless `agent` has the current offer of `call`.
    pub fn offer_rejected(&mut self, call: &str, agent: &str, now: Instant) {
        if !self.has_offer(call, agent) {
            debug!(call, agent, "rejection of an offer not in progress ignored");
            return;
        }
        self.end_offer_unanswered(call, NoAnswer::Rejected, now);
        self.dispatch(now);
    }

    /// Records that `agent` answered `call`: the call leaves the queue and the
    /// agent is on the call until `call_ended`. Ignored unless `agent` has the
    /// current offer of `call`, e.g. an answer that raced a `CancelOffer`.
    pub fn offer_answered(&mut self, call: &str, agent: &str, now: Instant) {
        if !self.has_offer(call, agent) {
            debug!(call, agent, "answer to an offer not in progress ignored");
            return;
        }
        let Some(answered) = self.remove_call(call) else {
            return;
        };
        let activity = Activity::OnCall {
            call: answered.id.clone(),
            queue: answered.queue.clone(),
        };
        self.change_agent(agent, now, now, |a| a.activity = activity);
        self.events.push_back(QueueEvent::OfferAnswered {
            waited: answered.waited(now),
            call: answered.id,
            queue: answered.queue,
            agent: agent.to_owned(),
            at: now,
        });
    }

    /// Records that the agent's call ended. The agent spends the wrap-up time
    /// of the call's queue unavailable, then becomes available again with its
    /// idle time counted from the end of wrap-up. Ignored unless the agent is
    /// on a call.
    pub fn call_ended(&mut self, agent: &str, now: Instant) {
        let Some(Activity::OnCall { queue, .. }) = self.agents.get(agent).map(|a| &a.activity)
        else {
            debug!(agent, "call end for an agent not on a call ignored");
            return;
        };
        let wrap_up = self
            .queues
            .get(queue)
            .map(|q| q.config.wrap_up)
            .unwrap_or_default();
        let activity = if wrap_up.is_zero() {
            Activity::Idle
        } else {
            Activity::WrapUp {
                until: deadline_after(now, wrap_up),
            }
        };
        self.change_agent(agent, now, now, |a| a.activity = activity);
        self.dispatch(now);
    }

    /// Fires every deadline at or before `now`, then offers waiting calls to
    /// the agents this freed. Max waits go first, so a call that reaches both
    /// deadlines together leaves instead of ringing the next agent. Ring
    /// timeouts, wrap-up ends and retry-delay expiries follow.
    pub fn handle_timeout(&mut self, now: Instant) {
        for call in self.calls_due(|call| call.max_wait_deadline <= now) {
            self.end_max_wait(&call, now);
        }
        let ring_timeouts = self.calls_due(|call| {
            call.offer
                .as_ref()
                .is_some_and(|offer| offer.ring_deadline <= now)
        });
        for call in ring_timeouts {
            self.end_offer_unanswered(&call, NoAnswer::TimedOut, now);
        }
        self.end_wrap_ups(now);
        for call in self.calls.values_mut() {
            call.retry_after.retain(|_, until| *until > now);
        }
        self.dispatch(now);
    }

    /// Returns the earliest instant at which `handle_timeout` must run: a ring
    /// timeout, max wait, wrap-up end or retry-delay expiry. Any input may
    /// change it, so poll again after each one.
    pub fn poll_timeout(&self) -> Option<Instant> {
        let calls = self.calls.values().map(Call::next_deadline);
        let wrap_ups = self
            .agents
            .values()
            .filter_map(|agent| match agent.activity {
                Activity::WrapUp { until } => Some(until),
                _ => None,
            });
        calls.chain(wrap_ups).min()
    }

    /// Returns the next action for the B2BUA. Any input may queue actions, so
    /// drain this after each one.
    pub fn poll_action(&mut self) -> Option<Action> {
        self.actions.pop_front()
    }

    /// Returns the next event for logs and the queue_log, in the order they happened.
    pub fn poll_event(&mut self) -> Option<QueueEvent> {
        self.events.pop_front()
    }

    /// Returns the agent's state, or `None` for an agent never added.
    pub fn agent_state(&self, agent: &str) -> Option<AgentState> {
        self.agents.get(agent).map(Agent::state)
    }

    /// Returns how many calls wait in `queue` or ring one of its agents, or
    /// `None` for an unknown queue.
    pub fn queue_length(&self, queue: &str) -> Option<usize> {
        self.queues.get(queue)?;
        Some(self.calls.values().filter(|c| c.queue == queue).count())
    }

    /// Offers waiting calls, in service order, to eligible agents until either
    /// runs out. Serving calls in order means an agent in several queues gets
    /// the call that has waited longest among those it may take.
    fn dispatch(&mut self, now: Instant) {
        let waiting: Vec<String> = self.waiting.values().cloned().collect();
        for call in waiting {
            if !self
                .agents
                .values()
                .any(|a| a.state() == AgentState::Available)
            {
                return;
            }
            if let Some(agent) = self.select_agent(&call, now) {
                self.start_offer(&call, &agent, now);
            }
        }
    }

    fn select_agent(&self, call_id: &str, now: Instant) -> Option<String> {
        let call = self.calls.get(call_id)?;
        let queue = self.queues.get(&call.queue)?;
        let eligible = self.agents.values().filter(|agent| {
            agent.state() == AgentState::Available
                && agent.serves(&call.queue)
                && !call.blocks(&agent.id, now)
        });
        queue
            .strategy
            .select(eligible)
            .map(|agent| agent.id.clone())
    }

    fn start_offer(&mut self, call_id: &str, agent: &str, now: Instant) {
        let Some(call) = self.calls.get_mut(call_id) else {
            return;
        };
        let Some(queue) = self.queues.get(&call.queue) else {
            return;
        };
        call.offer = Some(Offer {
            agent: agent.to_owned(),
            ring_deadline: deadline_after(now, queue.config.ring_timeout),
        });
        self.waiting.remove(&call.order);
        let queue = call.queue.clone();
        let activity = Activity::Reserved {
            call: call_id.to_owned(),
        };
        self.change_agent(agent, now, now, |a| a.activity = activity);
        self.actions.push_back(Action::Offer {
            call: call_id.to_owned(),
            agent: agent.to_owned(),
        });
        self.events.push_back(QueueEvent::OfferStarted {
            call: call_id.to_owned(),
            queue,
            agent: agent.to_owned(),
            at: now,
        });
    }

    /// Ends the current offer of a call that stays queued: blocks the agent
    /// for the retry delay, frees it and puts the call back in its place.
    fn end_offer_unanswered(&mut self, call_id: &str, reason: NoAnswer, now: Instant) {
        let Some(call) = self.calls.get_mut(call_id) else {
            return;
        };
        let Some(offer) = call.offer.take() else {
            return;
        };
        let retry_delay = self
            .queues
            .get(&call.queue)
            .map(|q| q.config.retry_delay)
            .unwrap_or_default();
        if !retry_delay.is_zero() {
            call.retry_after
                .insert(offer.agent.clone(), deadline_after(now, retry_delay));
        }
        self.waiting.insert(call.order, call.id.clone());

        let (call, queue, agent) = (call.id.clone(), call.queue.clone(), offer.agent);
        let event = match reason {
            NoAnswer::Rejected => QueueEvent::OfferRejected {
                call,
                queue,
                agent: agent.clone(),
                at: now,
            },
            NoAnswer::TimedOut => {
                self.actions.push_back(Action::CancelOffer {
                    call: call.clone(),
                    agent: agent.clone(),
                });
                QueueEvent::OfferTimedOut {
                    call,
                    queue,
                    agent: agent.clone(),
                    at: now,
                }
            }
        };
        self.events.push_back(event);
        self.release_agent(&agent, now);
    }

    /// Removes a call that reached max wait. An offer in progress is
    /// cancelled first so the B2BUA stops ringing before it handles the caller.
    fn end_max_wait(&mut self, call_id: &str, now: Instant) {
        let Some(removed) = self.remove_call(call_id) else {
            return;
        };
        let agent = removed.offer.map(|offer| offer.agent);
        if let Some(agent) = &agent {
            self.actions.push_back(Action::CancelOffer {
                call: removed.id.clone(),
                agent: agent.clone(),
            });
            self.release_agent(agent, now);
        }
        self.actions.push_back(Action::MaxWaitReached {
            call: removed.id.clone(),
        });
        self.events.push_back(QueueEvent::CallTimedOut {
            call: removed.id,
            queue: removed.queue,
            agent,
            waited: now.saturating_duration_since(removed.order.arrived),
            at: now,
        });
    }

    fn end_wrap_ups(&mut self, now: Instant) {
        let ended: Vec<(String, Instant)> = self
            .agents
            .values()
            .filter_map(|agent| match agent.activity {
                Activity::WrapUp { until } if until <= now => Some((agent.id.clone(), until)),
                _ => None,
            })
            .collect();
        for (agent, until) in ended {
            // Idle time counts from the scheduled end, even if this runs late.
            self.change_agent(&agent, now, until, |a| a.activity = Activity::Idle);
        }
    }

    /// Frees an agent reserved for an offer that ended without an answer.
    fn release_agent(&mut self, agent: &str, now: Instant) {
        self.change_agent(agent, now, now, |a| a.activity = Activity::Idle);
    }

    /// Applies `change` to an agent and records the state change, if any.
    /// `idle_from` becomes the start of the idle period when the agent turns
    /// available from anything but ringing.
    fn change_agent(
        &mut self,
        id: &str,
        now: Instant,
        idle_from: Instant,
        change: impl FnOnce(&mut Agent),
    ) {
        let Some(agent) = self.agents.get_mut(id) else {
            return;
        };
        let from = agent.state();
        change(agent);
        let to = agent.state();
        if from == to {
            return;
        }
        // A missed or rejected offer keeps the agent's place in the idle order.
        if to == AgentState::Available && from != AgentState::Ringing {
            agent.idle_since = Some(idle_from);
        }
        debug!(agent = id, ?from, ?to, "agent state changed");
        self.events.push_back(QueueEvent::AgentStateChanged {
            agent: id.to_owned(),
            from,
            to,
            at: now,
        });
    }

    fn has_offer(&self, call: &str, agent: &str) -> bool {
        self.calls
            .get(call)
            .and_then(|c| c.offer.as_ref())
            .is_some_and(|offer| offer.agent == agent)
    }

    fn remove_call(&mut self, call: &str) -> Option<Call> {
        let removed = self.calls.remove(call)?;
        self.waiting.remove(&removed.order);
        Some(removed)
    }

    /// Returns the queue of a call that is queued, ringing or connected to an agent.
    fn queue_of(&self, call: &str) -> Option<String> {
        if let Some(queued) = self.calls.get(call) {
            return Some(queued.queue.clone());
        }
        self.agents
            .values()
            .find_map(|agent| match &agent.activity {
                Activity::OnCall {
                    call: active,
                    queue,
                } if active == call => Some(queue.clone()),
                _ => None,
            })
    }

    /// Returns the ids of calls matching `due`, in service order.
    fn calls_due(&self, due: impl Fn(&Call) -> bool) -> Vec<String> {
        let mut matching: Vec<&Call> = self.calls.values().filter(|call| due(call)).collect();
        matching.sort_by_key(|call| call.order);
        matching.into_iter().map(|call| call.id.clone()).collect()
    }
}

/// Returns `now + duration`, or a later instant short of it when the sum
/// overflows, so a huge configured duration means "practically never"
/// instead of a panic.
fn deadline_after(now: Instant, duration: Duration) -> Instant {
    let mut remaining = duration;
    loop {
        if let Some(deadline) = now.checked_add(remaining) {
            return deadline;
        }
        // Halving reaches zero, which always fits, so the loop ends.
        remaining /= 2;
    }
}
