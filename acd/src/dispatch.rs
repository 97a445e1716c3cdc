//! Offers: choosing agents for waiting calls, their outcomes, and the timers around them.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Instant;

use tracing::debug;

use crate::agent::{Activity, AgentState};
use crate::agents::NoAnswer;
use crate::call::{CallOrder, Offer, deadline_after};
use crate::config::Strategy;
use crate::engine::Acd;
use crate::keys::needs_of;
use crate::output::{Action, QueueEvent};
use crate::skill::qualifies;
use crate::strategy::{Context, Selection};

impl Acd {
    /// Records that `agent` declined or could not take `call`. The call goes
    /// back to its place in the queue and is offered to the next eligible
    /// agent at once. Ignored unless `agent` has a current offer of `call`.
    pub fn offer_rejected(&mut self, call: &str, agent: &str, now: Instant) {
        self.offer_failed(call, agent, NoAnswer::Rejected, now);
    }

    /// Like [`Acd::offer_rejected`] for a phone that answered busy, which
    /// applies the queue's busy delay instead of its reject delay.
    pub fn offer_busy(&mut self, call: &str, agent: &str, now: Instant) {
        self.offer_failed(call, agent, NoAnswer::Busy, now);
    }

    fn offer_failed(&mut self, call: &str, agent: &str, reason: NoAnswer, now: Instant) {
        if !self.has_offer(call, agent) {
            debug!(call, agent, "rejection of an offer not in progress ignored");
            return;
        }
        self.end_offer_unanswered(call, agent, reason, now);
        self.dispatch(now);
    }

    /// Records that `agent` answered `call`: the call leaves the queue and the
    /// agent is on the call until `call_ended`. Under ring-all the other
    /// agents get `CancelOffer`. Ignored unless `agent` has a current offer
    /// of `call`, e.g. an answer that raced a `CancelOffer`.
    pub fn offer_answered(&mut self, call: &str, agent: &str, now: Instant) {
        if !self.has_offer(call, agent) {
            debug!(call, agent, "answer to an offer not in progress ignored");
            return;
        }
        let Some(mut answered) = self.remove_call(call) else {
            return;
        };
        let offer = answered.offers.remove(agent);
        let ring_time = offer
            .map(|o| now.saturating_duration_since(o.started))
            .unwrap_or_default();
        for (other, offer) in std::mem::take(&mut answered.offers) {
            self.actions.push_back(Action::CancelOffer {
                call: call.to_owned(),
                agent: other.clone(),
            });
            self.events.push_back(QueueEvent::OfferCancelled {
                call: call.to_owned(),
                queue: answered.queue.clone(),
                agent: other.clone(),
                ring_time: now.saturating_duration_since(offer.started),
                at: now,
            });
            self.release_agent(&other, now);
        }
        if answered.callback.is_some() {
            self.start_dialing(answered, agent, ring_time, now);
            self.dispatch(now);
            return;
        }
        let waited = answered.waited(now);
        let activity = Activity::OnCall {
            call: answered.id.clone(),
            queue: answered.queue.clone(),
            answered: now,
            waited,
            joined_position: answered.joined_position,
        };
        self.change_agent(agent, now, now, |a| {
            a.activity = activity;
            a.calls_answered += 1;
            a.consecutive_no_answer = 0;
        });
        self.connected.insert(answered.id.clone(), agent.to_owned());
        if let Some(queue) = self.queues.get_mut(&answered.queue) {
            let target = queue.config.service_level;
            queue.stats.record_answer(waited, target);
        }
        self.events.push_back(QueueEvent::OfferAnswered {
            waited,
            ring_time,
            joined_position: answered.joined_position,
            call: answered.id,
            queue: answered.queue,
            agent: agent.to_owned(),
            at: now,
        });
        self.dispatch(now);
    }

    /// Fires every deadline at or before `now`, then offers waiting calls to
    /// the agents this freed. Max waits go first, so a call that reaches both
    /// deadlines together leaves instead of ringing the next agent. Skill
    /// expansion steps, ring timeouts, wrap-up ends and delay expiries follow.
    // Each pass reads the calls or agents due from the deadline index again,
    // because the passes before it change deadlines. Entries not due are
    // never visited.
    pub fn handle_timeout(&mut self, now: Instant) {
        let expired = self.calls_due(now, |call| call.max_wait_deadline.is_some_and(|d| d <= now));
        for call in expired {
            self.end_max_wait(&call, now);
        }
        for call in self.calls_due(now, |call| call.next_step_at.is_some_and(|at| at <= now)) {
            self.advance_step(&call, now);
        }
        let mut ring_timeouts = Vec::new();
        for call in self.calls_due(now, |_| true) {
            if let Some(entry) = self.calls.get(&call) {
                let due = entry.offers.iter().filter(|(_, o)| o.ring_deadline <= now);
                ring_timeouts.extend(due.map(|(agent, _)| (call.clone(), agent.clone())));
            }
        }
        for (call, agent) in ring_timeouts {
            self.end_offer_unanswered(&call, &agent, NoAnswer::TimedOut, now);
        }
        self.end_wrap_ups(now);
        for call in self.calls.due(now) {
            if let Some(mut entry) = self.calls.get_mut(&call) {
                entry.retry_after.retain(|_, until| *until > now);
                entry.not_before = entry.not_before.filter(|until| *until > now);
            }
        }
        for agent in self.agents.due(now) {
            if let Some(mut entry) = self.agents.get_mut(&agent) {
                entry.blocked_until = entry.blocked_until.filter(|until| *until > now);
            }
        }
        self.dispatch(now);
    }

    /// Returns the earliest instant at which `handle_timeout` must run: a ring
    /// timeout, max wait, step change, wrap-up end or delay expiry. Any input
    /// may change it, so poll again after each one.
    pub fn poll_timeout(&self) -> Option<Instant> {
        let calls = self.calls.next_deadline();
        let agents = self.agents.next_deadline();
        calls.into_iter().chain(agents).min()
    }

    /// Panics with the first difference between the indexes and a full scan
    /// of agents and calls: the deadline `poll_timeout` computed by walking
    /// every call and agent before the index existed, the agents that are
    /// available, and the staffing and longest wait of each queue. It also compares the waiting calls by queue and
    /// requirements, the available agents by skills, and the order keys
    /// that give positions. Only for tests, which call it after every input; it
    /// costs a walk over the whole state.
    #[doc(hidden)]
    pub fn assert_indexes_match_scan(&self) {
        if let Err(difference) = self.agents.check() {
            panic!("agent index out of date: {difference}");
        }
        if let Err(difference) = self.calls.check() {
            panic!("call index out of date: {difference}");
        }
        if let Err(difference) = self.check_statistics() {
            panic!("queue statistics out of date: {difference}");
        }
        if let Err(difference) = self.waiting.check(&self.calls) {
            panic!("index of waiting calls out of date: {difference}");
        }
        let touched = self.agents.touched();
        let pending = |id: &Arc<str>| touched.contains(id) || self.unfiled.contains(id);
        if let Err(difference) = self.available_agents.check(self.agents.entries(), pending) {
            panic!("index of available agents out of date: {difference}");
        }
        for (name, queue) in &self.queues {
            let mut orders: Vec<CallOrder> = self
                .calls
                .values()
                .filter(|call| call.queue == *name)
                .map(|call| call.order)
                .collect();
            orders.sort();
            assert!(
                queue.ranks.iter().eq(orders.iter()),
                "positions of queue {name} differ from a scan of its calls"
            );
        }
        let queued = self.queues.values().map(|q| q.ranks.len()).sum::<usize>();
        assert_eq!(queued, self.calls.values().count(), "calls outside a queue");
        let calls = self.calls.values().filter_map(|call| call.next_deadline());
        let agents = self
            .agents
            .values()
            .filter_map(|agent| match agent.activity {
                Activity::WrapUp { until, .. } => Some(until),
                _ => agent.blocked_until,
            });
        let scanned = calls.chain(agents).min();
        assert_eq!(
            self.poll_timeout(),
            scanned,
            "poll_timeout differs from a scan of every call and agent"
        );
        let available: Vec<&str> = self
            .agents
            .values()
            .filter(|agent| agent.state() == AgentState::Available)
            .map(|agent| agent.id.as_str())
            .collect();
        let indexed: Vec<&str> = self
            .agents
            .available()
            .map(|agent| agent.id.as_str())
            .collect();
        assert_eq!(indexed, available, "available agents differ from a scan");
    }

    /// Removes waiting calls of queues left empty, then offers waiting calls,
    /// in service order, to eligible agents until either runs out. Serving
    /// calls in order means an agent in several queues gets the first call,
    /// by priority and wait, among those it may take.
    // The result is that of `dispatch_by_scan`, which walks every waiting
    // call and tries it with every free agent, but this visits only the
    // calls that can get an offer. After a dispatch, every free agent is
    // eligible for none of the waiting calls (else the scan would have
    // offered one). That stays true for an agent and a call until either
    // changes, which the tables note as touched, or until a retry delay of
    // the call passes, which makes the call due. So only touched or due
    // calls ("changed") need every free agent, and only touched agents that
    // are free ("scouts") need the waiting calls, which the index of
    // waiting calls finds for them in service order.
    pub(crate) fn dispatch(&mut self, now: Instant) {
        self.drop_drained_queues(now);
        self.leave_empty_queues(now);
        let start = self.fresh.len();
        self.agents.take_touched(&mut self.fresh);
        // The same agents keep changing while no call reads the index
        // (registrations flapping), so an agent listed last is not listed
        // again, and other repeats are dropped whenever the list doubles.
        for id in &self.fresh[start..] {
            if !self
                .unfiled
                .last()
                .is_some_and(|last| Arc::ptr_eq(last, id))
            {
                self.unfiled.push(id.clone());
            }
        }
        if self.unfiled.len() > self.unfiled_limit {
            self.unfiled.sort_unstable();
            self.unfiled.dedup();
            self.unfiled_limit = (2 * self.unfiled.len()).max(64);
        }
        let mut touched_calls = std::mem::take(&mut self.touched_calls);
        self.calls.take_touched(&mut touched_calls);
        if self.scan_dispatch {
            self.fresh.clear();
            touched_calls.clear();
            self.touched_calls = touched_calls;
            self.dispatch_by_scan(now);
            return;
        }
        self.fresh.sort_unstable();
        self.fresh.dedup();
        // Most inputs find no call waiting (registrations, agents coming
        // back from a call into an empty queue), so they need no agent list.
        if self.waiting.is_empty() {
            // Free agents are eligible for no call now. Those held back by
            // a delay have to be tried once it has passed.
            let agents = &self.agents;
            self.fresh
                .retain(|id| agents.get(id).is_some_and(|a| a.held_back(now)));
            touched_calls.clear();
            self.touched_calls = touched_calls;
            return;
        }
        let due = self.calls.due(now);
        let mut changed: BTreeSet<CallOrder> = touched_calls
            .drain(..)
            .chain(due)
            .filter_map(|id| self.calls.get(&id))
            .filter(|call| call.offers.is_empty())
            .map(|call| call.order)
            .collect();
        self.touched_calls = touched_calls;
        let mut scouts: BTreeSet<(CallOrder, Arc<str>)> = BTreeSet::new();
        let (agents, waiting, calls) = (&self.agents, &self.waiting, &self.calls);
        self.fresh.retain(|id| {
            let Some(agent) = agents.get(id) else {
                return false;
            };
            if agent.held_back(now) {
                return true;
            }
            if agent.is_free(now)
                && let Some(order) = waiting.first_for(agent, None, now, calls)
            {
                scouts.insert((order, id.clone()));
            }
            false
        });
        loop {
            let next_scout = scouts.first().map(|(order, _)| *order);
            let order = match (next_scout, changed.first().copied()) {
                (Some(scout), Some(call)) => scout.min(call),
                (Some(order), None) | (None, Some(order)) => order,
                (None, None) => break,
            };
            let is_changed = changed.remove(&order);
            // The scouts whose first eligible call this is, in id order.
            let mut here = Vec::new();
            while scouts.first().is_some_and(|(first, _)| *first == order) {
                here.extend(scouts.pop_first().map(|(_, id)| id));
            }
            let Some(call) = self.waiting.id_at(&order).map(str::to_owned) else {
                // Calls leave the waiting list here only when visited, so
                // this does not happen; the scouts still look further.
                self.search_on(here, &order, now, &mut scouts);
                continue;
            };
            let selection = if is_changed {
                self.select_agents(&call, None, now)
            } else {
                // No other free agent is eligible: each was free at the
                // last dispatch and eligible for no waiting call then, and
                // this call has not changed since.
                self.select_agents(&call, Some(&here), now)
            };
            let chosen: Vec<String> = match &selection {
                Some(Selection::One(agent)) => vec![agent.clone()],
                Some(Selection::All(agents)) => agents.clone(),
                None => Vec::new(),
            };
            let is_chosen = |id: &str| chosen.iter().any(|agent| agent == id);
            if let Some(selection) = selection {
                self.start_offer(&call, selection, now);
            }
            let left: Vec<Arc<str>> = here.into_iter().filter(|id| !is_chosen(id)).collect();
            self.search_on(left, &order, now, &mut scouts);
        }
    }

    /// Files each scout in `ids` under its first eligible call after
    /// `after`, if it has one. A scout left over at a call may be eligible
    /// for a later call only.
    fn search_on(
        &self,
        ids: Vec<Arc<str>>,
        after: &CallOrder,
        now: Instant,
        scouts: &mut BTreeSet<(CallOrder, Arc<str>)>,
    ) {
        for id in ids {
            let next = self
                .agents
                .get(&id)
                .and_then(|agent| self.waiting.first_for(agent, Some(after), now, &self.calls));
            if let Some(next) = next {
                scouts.insert((next, id));
            }
        }
    }

    /// Offers waiting calls by walking all of them in service order and
    /// trying each with every free agent: what `dispatch` did before it
    /// had the index of waiting calls, kept as the reference it is tested
    /// against.
    fn dispatch_by_scan(&mut self, now: Instant) {
        if self.waiting.is_empty() {
            return;
        }
        let mut free: Vec<Arc<str>> = self
            .agents
            .available_entries()
            .filter(|(_, a)| a.is_free(now))
            .map(|(id, _)| id.clone())
            .collect();
        let waiting: Vec<Arc<str>> = self.waiting.ids().cloned().collect();
        for call in waiting {
            if free.is_empty() {
                return;
            }
            let Some(selection) = self.select_agents(&call, Some(&free), now) else {
                continue;
            };
            let chosen = match &selection {
                Selection::One(agent) => std::slice::from_ref(agent),
                Selection::All(agents) => agents.as_slice(),
            };
            free.retain(|agent| !chosen.iter().any(|id| **id == **agent));
            self.start_offer(&call, selection, now);
        }
    }

    /// Sets up to how many available agents a call is tried with each of
    /// them instead of through the index of available agents by skills.
    /// Only for tests, which set 0 to exercise the index with few agents.
    #[doc(hidden)]
    pub fn set_few_available(&mut self, count: usize) {
        self.few_available = count;
    }

    /// Brings the index of available agents up to date with the agents
    /// changed since it was last read. Registrations and calls that meet no
    /// waiting call change agents all the time, so the index is refiled
    /// only when a dispatch reads it.
    fn file_available_agents(&mut self) {
        if self.unfiled.is_empty() {
            return;
        }
        self.unfiled.sort_unstable();
        self.unfiled.dedup();
        for id in self.unfiled.drain(..) {
            self.available_agents.refile(&id, self.agents.get(&id));
        }
        self.unfiled_limit = 64;
    }

    /// Makes `dispatch` walk every waiting call and free agent, as it did
    /// before the index of waiting calls. Only for tests, which compare the
    /// two. It is slow with many calls.
    #[doc(hidden)]
    pub fn use_scan_dispatch(&mut self) {
        self.scan_dispatch = true;
    }

    /// Picks the agent or agents to offer a call to by its queue's
    /// strategy, among the agents of `pool` (free ones, in id order) that
    /// are eligible for it, or among all free agents for `None`.
    fn select_agents(
        &mut self,
        call_id: &str,
        pool: Option<&[Arc<str>]>,
        now: Instant,
    ) -> Option<Selection> {
        // A few available agents are cheaper to test one by one than to
        // look up by skills.
        let by_skills = pool.is_none() && self.agents.available_len() > self.few_available;
        if by_skills {
            self.file_available_agents();
            let strategy = self
                .calls
                .get(call_id)
                .and_then(|call| self.queues.get(&call.queue))
                .map(|queue| queue.config.strategy);
            if strategy.is_some_and(Strategy::walks_in_order) {
                return self.select_in_order(call_id, now);
            }
        }
        let call = self.calls.get(call_id)?;
        let queue = self.queues.get(&call.queue)?;
        let eligible = |agent: &&crate::agent::Agent| {
            agent.serves(&call.queue)
                && qualifies(&agent.skills, &call.requirements)
                && !call.blocks(&agent.id, now)
        };
        // Agents chosen earlier in the same dispatch are reserved, so they
        // are no longer available.
        let candidates: Vec<&crate::agent::Agent> = match pool {
            Some(ids) => ids
                .iter()
                .filter_map(|id| self.agents.get(id))
                .filter(eligible)
                .collect(),
            None if !by_skills => self
                .agents
                .available()
                .filter(|agent| agent.is_free(now))
                .filter(eligible)
                .collect(),
            // TODO: ring all, random and weighted random still test every
            // available agent that holds the call's skills, because their
            // draws need the exact list of eligible agents in id order.
            None => self
                .available_agents
                .holding(&call.queue, &needs_of(&call.requirements))
                .iter()
                .filter_map(|id| self.agents.get(id))
                .filter(|agent| agent.is_free(now))
                .filter(eligible)
                .collect(),
        };
        let last_offered = queue.last_offered.as_deref().and_then(|id| {
            let position = self.agents.get(id)?.queues.get(&call.queue)?.position;
            Some((position, id))
        });
        let context = Context {
            queue: &call.queue,
            requirements: &call.data.requirements,
            last_offered,
        };
        let selection = queue
            .config
            .strategy
            .select(&candidates, &context, &mut self.rng);
        // A callback request reserves one agent, whatever the strategy.
        match (selection, call.callback.is_some()) {
            (Some(Selection::All(agents)), true) => agents.into_iter().next().map(Selection::One),
            (selection, _) => selection,
        }
    }

    fn start_offer(&mut self, call_id: &str, selection: Selection, now: Instant) {
        let Some(mut call) = self.calls.get_mut(call_id) else {
            return;
        };
        let Some(queue) = self.queues.get_mut(&call.queue) else {
            return;
        };
        let agents = match &selection {
            Selection::One(agent) => vec![agent.clone()],
            Selection::All(agents) => agents.clone(),
        };
        let ring_deadline = deadline_after(now, queue.config.ring_timeout);
        for agent in &agents {
            call.offers.insert(
                agent.clone(),
                Offer {
                    started: now,
                    ring_deadline,
                },
            );
        }
        queue.last_offered = agents.last().cloned();
        self.waiting.remove(&call.order);
        let queue = call.queue.clone();
        let action = match (selection, &call.callback) {
            (Selection::One(agent), Some(number)) => Action::Callback {
                call: call_id.to_owned(),
                agent,
                number: number.clone(),
            },
            (Selection::One(agent), None) => Action::Offer {
                call: call_id.to_owned(),
                agent,
            },
            (Selection::All(agents), _) => Action::OfferAll {
                call: call_id.to_owned(),
                agents,
            },
        };
        drop(call);
        for agent in &agents {
            let activity = Activity::Reserved {
                call: call_id.to_owned(),
            };
            self.change_agent(agent, now, now, |a| a.activity = activity);
        }
        self.actions.push_back(action);
        for agent in agents {
            self.events.push_back(QueueEvent::OfferStarted {
                call: call_id.to_owned(),
                queue: queue.clone(),
                agent,
                at: now,
            });
        }
    }

    /// Ends one agent's offer of a call that stays queued: blocks the agent
    /// for the retry delay, frees it and, when no other agent still rings,
    /// puts the call back in its place.
    fn end_offer_unanswered(&mut self, call_id: &str, agent: &str, reason: NoAnswer, now: Instant) {
        let Some(mut call) = self.calls.get_mut(call_id) else {
            return;
        };
        let Some(offer) = call.offers.remove(agent) else {
            return;
        };
        let retry_delay = self
            .queues
            .get(&call.queue)
            .map(|q| q.config.retry_delay)
            .unwrap_or_default();
        if !retry_delay.is_zero() {
            call.retry_after
                .insert(agent.to_owned(), deadline_after(now, retry_delay));
        }
        if call.offers.is_empty() {
            let key = call.key().clone();
            self.waiting.insert(&key, &call);
        }
        let (id, queue) = (call.id.clone(), call.queue.clone());
        drop(call);
        let call = id;
        let ring_time = now.saturating_duration_since(offer.started);
        let agent_id = agent.to_owned();
        let event = match reason {
            NoAnswer::Rejected | NoAnswer::Busy => QueueEvent::OfferRejected {
                call,
                queue: queue.clone(),
                agent: agent_id,
                busy: reason == NoAnswer::Busy,
                ring_time,
                at: now,
            },
            NoAnswer::TimedOut => {
                self.actions.push_back(Action::CancelOffer {
                    call: call.clone(),
                    agent: agent_id.clone(),
                });
                QueueEvent::OfferTimedOut {
                    call,
                    queue: queue.clone(),
                    agent: agent_id,
                    ring_time,
                    at: now,
                }
            }
        };
        self.events.push_back(event);
        self.release_unanswered(agent, &queue, reason, now);
    }

    /// Cancels every offer of a call that stays in the ACD or is about to
    /// leave it, and frees the agents. Returns the first agent that was ringing.
    pub(crate) fn cancel_offers(&mut self, call_id: &str, now: Instant) -> Option<String> {
        let mut call = self.calls.get_mut(call_id)?;
        let offers = std::mem::take(&mut call.offers);
        if !offers.is_empty() {
            let key = call.key().clone();
            self.waiting.insert(&key, &call);
        }
        drop(call);
        for agent in offers.keys() {
            self.actions.push_back(Action::CancelOffer {
                call: call_id.to_owned(),
                agent: agent.clone(),
            });
            self.release_agent(agent, now);
        }
        offers.into_keys().next()
    }

    fn has_offer(&self, call: &str, agent: &str) -> bool {
        self.calls
            .get(call)
            .is_some_and(|c| c.offers.contains_key(agent))
    }

    /// Returns the ids of calls matching `due`, in service order. `due`
    /// must only hold for calls with a deadline at or before `now`.
    fn calls_due(&self, now: Instant, due: impl Fn(&crate::call::Call) -> bool) -> Vec<String> {
        let mut matching: Vec<&crate::call::Call> = self
            .calls
            .due(now)
            .iter()
            .filter_map(|id| self.calls.get(id))
            .filter(|call| due(call))
            .collect();
        matching.sort_by_key(|call| call.order);
        matching.into_iter().map(|call| call.id.clone()).collect()
    }
}
