//! The ACD engine: its state, configuration inputs, queries and output queues.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tracing::debug;

use crate::agent::{Agent, AgentState, AgentStatus, Membership};
use crate::available::AvailableAgents;
use crate::call::{Call, CallData, CallOrder, Queue};
use crate::config::{CallerOrder, QueueConfig};
use crate::error::AcdError;
use crate::output::{Action, Party, QueueEvent};
use crate::skill::Skills;
use crate::strategy::Rng;
use crate::table::{EntryMut, Table};
use crate::waiting::Waiting;

/// Default of `Acd::few_available`: below it, the index of available agents
/// by skills costs more than testing each available agent.
const FEW_AVAILABLE: usize = 32;

/// Seed of the random strategies unless [`Acd::with_seed`] sets one.
const DEFAULT_SEED: u64 = 0x5EED_ACD0;

/// The automatic call distributor. See the crate documentation for how to drive it.
pub struct Acd {
    pub(crate) queues: BTreeMap<String, Queue>,
    /// Agents by id, with their deadlines and the available ones indexed.
    pub(crate) agents: Table<Agent>,
    /// Calls waiting for an agent or ringing one, by call id, with their
    /// deadlines indexed. Answered calls leave this table and live on in
    /// the agent's `Activity::OnCall`.
    pub(crate) calls: Table<Call>,
    /// Calls without an offer in progress, in service order across all
    /// queues and by queue and requirements.
    pub(crate) waiting: Waiting,
    /// Agents that may be eligible for a waiting call that dispatch has not
    /// tried them with: changed since it last ran, or held back by a delay
    /// then. Every other available agent was free at the last dispatch and
    /// eligible for none of the calls waiting then.
    pub(crate) fresh: Vec<Arc<str>>,
    /// Available agents by queue and skills, up to date but for `unfiled`.
    pub(crate) available_agents: AvailableAgents,
    /// Agents changed since `available_agents` was last brought up to date.
    pub(crate) unfiled: Vec<Arc<str>>,
    /// Length of `unfiled` past which its repeats are dropped.
    pub(crate) unfiled_limit: usize,
    /// Up to this many available agents, a call is tried with each of them
    /// instead of through `available_agents`, which costs more to read.
    pub(crate) few_available: usize,
    /// Ids of the calls touched since the last dispatch, kept between
    /// dispatches only for its allocation.
    pub(crate) touched_calls: Vec<Arc<str>>,
    /// Dispatch by the full scan of waiting calls and free agents, the
    /// reference that the indexed dispatch is tested against.
    pub(crate) scan_dispatch: bool,
    /// Answered calls until `call_ended`, by call id, with their agent.
    pub(crate) connected: HashMap<String, String>,
    /// Connected calls on hold, by call id: since when and who holds.
    pub(crate) holds: HashMap<String, (Instant, Party)>,
    /// Callback requests whose agent answered while the citizen is dialed,
    /// kept whole so that a failed attempt can put them back in place.
    pub(crate) dialing: HashMap<String, crate::callbacks::Dialing>,
    pub(crate) caller_order: CallerOrder,
    pub(crate) next_seq: u64,
    pub(crate) next_member_position: u64,
    pub(crate) rng: Rng,
    pub(crate) actions: VecDeque<Action>,
    pub(crate) events: VecDeque<QueueEvent>,
}

impl Default for Acd {
    fn default() -> Acd {
        Acd::with_seed(DEFAULT_SEED)
    }
}

impl Acd {
    pub fn new() -> Acd {
        Acd::default()
    }

    /// Creates an engine whose random and weighted-random strategies draw
    /// from a generator seeded with `seed`.
    pub fn with_seed(seed: u64) -> Acd {
        Acd {
            queues: BTreeMap::new(),
            agents: Table::default(),
            calls: Table::default(),
            waiting: Waiting::default(),
            fresh: Vec::new(),
            available_agents: AvailableAgents::default(),
            few_available: FEW_AVAILABLE,
            unfiled: Vec::new(),
            unfiled_limit: 64,
            touched_calls: Vec::new(),
            scan_dispatch: false,
            connected: HashMap::new(),
            holds: HashMap::new(),
            dialing: HashMap::new(),
            caller_order: CallerOrder::default(),
            next_seq: 0,
            next_member_position: 0,
            rng: Rng::new(seed),
            actions: VecDeque::new(),
            events: VecDeque::new(),
        }
    }

    /// Sets how agents in several queues choose among their calls. Calls
    /// already waiting are reordered.
    pub fn set_caller_order(&mut self, order: CallerOrder) {
        self.caller_order = order;
        self.reorder_waiting();
    }

    /// Adds a queue, or replaces the configuration of an existing queue with
    /// the same name. New timings apply to deadlines set from now on.
    pub fn add_queue(&mut self, mut config: QueueConfig) {
        config.steps.sort_by_key(|step| step.after);
        match self.queues.get_mut(&config.name) {
            Some(queue) => queue.config = config,
            None => {
                let queue = Queue::new(config);
                self.queues.insert(queue.config.name.clone(), queue);
            }
        }
        self.reorder_waiting();
    }

    /// Adds an agent, logged out and unreachable, or replaces the queue
    /// membership of an existing one, each membership with weight 1.
    /// Queues may be added after their agents.
    // NOTE: a membership change makes no offer by itself because this input
    // has no `now`. Waiting calls reach the agent at the next input that has
    // one; `add_member` offers at once.
    pub fn add_agent(&mut self, agent: &str, queues: &[String]) {
        let mut position = self.next_member_position;
        if !self.agents.contains_key(agent) {
            self.agents.insert(agent.to_owned(), Agent::new(agent));
        }
        let Some(mut entry) = self.agents.get_mut(agent) else {
            return;
        };
        entry.removed = false;
        entry.queues.retain(|queue, _| queues.contains(queue));
        for queue in queues {
            entry.queues.entry(queue.clone()).or_insert_with(|| {
                position += 1;
                Membership {
                    position,
                    weight: 1,
                }
            });
        }
        drop(entry);
        self.next_member_position = position;
    }

    /// Adds `agent` to `queue` with a weight for weighted random, or updates
    /// the weight of an existing membership, and offers waiting calls.
    pub fn add_member(
        &mut self,
        agent: &str,
        queue: &str,
        weight: u32,
        now: Instant,
    ) -> Result<(), AcdError> {
        let position = self.next_member_position + 1;
        let mut entry = self.agent_mut(agent)?;
        let added = !entry.serves(queue);
        let membership = entry
            .queues
            .entry(queue.to_owned())
            .or_insert(Membership { position, weight });
        membership.weight = weight;
        drop(entry);
        if added {
            self.next_member_position = position;
            self.events.push_back(QueueEvent::MemberAdded {
                agent: agent.to_owned(),
                queue: queue.to_owned(),
                at: now,
            });
        }
        self.dispatch(now);
        Ok(())
    }

    /// Removes `agent` from `queue`. An offer or call in progress goes on.
    pub fn remove_member(
        &mut self,
        agent: &str,
        queue: &str,
        now: Instant,
    ) -> Result<(), AcdError> {
        if self.agent_mut(agent)?.queues.remove(queue).is_some() {
            self.events.push_back(QueueEvent::MemberRemoved {
                agent: agent.to_owned(),
                queue: queue.to_owned(),
                at: now,
            });
        }
        self.dispatch(now);
        Ok(())
    }

    /// Replaces the agent's skills and offers waiting calls it now qualifies for.
    pub fn set_skills(
        &mut self,
        agent: &str,
        skills: Skills,
        now: Instant,
    ) -> Result<(), AcdError> {
        self.agent_mut(agent)?.skills = skills;
        self.dispatch(now);
        Ok(())
    }

    /// Sets the agent's wrap-up time after every queue call, in place of the
    /// queue's `wrap_up`, or `None` to follow the queue again. A wrap-up in
    /// progress keeps its end.
    pub fn set_wrap_up(&mut self, agent: &str, wrap_up: Option<Duration>) -> Result<(), AcdError> {
        self.agent_mut(agent)?.wrap_up = wrap_up;
        Ok(())
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

    /// Returns the agent's state with its reason code and counters.
    pub fn agent_status(&self, agent: &str) -> Option<AgentStatus> {
        self.agents.get(agent).map(Agent::status)
    }

    /// Returns how many calls wait in `queue` or ring one of its agents, or
    /// `None` for an unknown queue.
    pub fn queue_length(&self, queue: &str) -> Option<usize> {
        Some(self.queues.get(queue)?.ranks.len())
    }

    /// Returns the data attached to a queued or ringing call, or to a
    /// callback request whose citizen is being dialed.
    pub fn call_data(&self, call: &str) -> Option<&CallData> {
        self.calls
            .get(call)
            .or_else(|| self.dialing.get(call).map(|d| &d.call))
            .map(|c| &c.data)
    }

    /// Returns the call's position in its queue, from 1, counting waiting
    /// and ringing calls in service order, for announcements.
    pub fn position(&self, call: &str) -> Option<usize> {
        let call = self.calls.get(call)?;
        Some(self.position_of(call))
    }

    /// Returns the position `call` has or would have in its queue, from 1.
    pub(crate) fn position_of(&self, call: &Call) -> usize {
        let ahead = self
            .queues
            .get(&call.queue)
            .map_or(0, |queue| queue.ranks.rank(&call.order));
        ahead + 1
    }

    /// Adds a call that has no offer yet: to the calls, its queue's
    /// positions and the waiting calls.
    pub(crate) fn insert_call(&mut self, call: Call) {
        if let Some(queue) = self.queues.get_mut(&call.queue) {
            queue.ranks.insert(call.order);
        }
        let id = call.id.clone();
        self.calls.insert(id.clone(), call);
        if let Some((key, call)) = self.calls.get_with_key(&id) {
            self.waiting.insert(key, call);
        }
    }

    /// Refiles a waiting call after its requirements changed.
    pub(crate) fn refile_waiting(&mut self, call_id: &str) {
        if let Some((key, call)) = self.calls.get_with_key(call_id)
            && call.offers.is_empty()
        {
            self.waiting.insert(key, call);
        }
    }

    pub(crate) fn agent_mut(&mut self, agent: &str) -> Result<EntryMut<'_, Agent>, AcdError> {
        self.agents.get_mut(agent).ok_or_else(|| {
            debug!(agent, "input for an unknown agent rejected");
            AcdError::UnknownAgent {
                agent: agent.to_owned(),
            }
        })
    }

    /// Returns the service order key of a call arriving in `queue`.
    pub(crate) fn order_for(
        &self,
        queue: &str,
        priority: u32,
        arrived: Instant,
        seq: u64,
    ) -> CallOrder {
        let weight = match self.caller_order {
            CallerOrder::LongestWaiting => 0,
            CallerOrder::QueueWeight => self.queues.get(queue).map_or(0, |q| q.config.weight),
        };
        CallOrder {
            queue_weight: std::cmp::Reverse(weight),
            priority: std::cmp::Reverse(priority),
            arrived,
            seq,
        }
    }

    /// Recomputes every call's order key after a change of queue weights or
    /// of the caller order.
    // Calls whose key stays are left alone, so that a reload that changes
    // no weight does not make dispatch look at every call again.
    fn reorder_waiting(&mut self) {
        let keys: Vec<(String, CallOrder)> = self
            .calls
            .values()
            .filter_map(|call| {
                let order = self.order_for(
                    &call.queue,
                    call.data.priority,
                    call.order.arrived,
                    call.order.seq,
                );
                (order != call.order).then(|| (call.id.clone(), order))
            })
            .collect();
        for (id, order) in keys {
            let Some(mut call) = self.calls.get_mut(&id) else {
                continue;
            };
            let old = call.order;
            call.order = order;
            let waiting = call.offers.is_empty();
            let queue = call.queue.clone();
            drop(call);
            if let Some(queue) = self.queues.get_mut(&queue) {
                queue.ranks.remove(&old);
                queue.ranks.insert(order);
            }
            if waiting {
                self.waiting.remove(&old);
                if let Some((key, call)) = self.calls.get_with_key(&id) {
                    self.waiting.insert(key, call);
                }
            }
        }
    }
}
