//! Configuration changes while calls are in progress: queues updated or
//! removed, agents removed, and the queries a reload compares against.
//!
//! Nothing here ends a call. A removed queue keeps serving the calls it
//! contains with its last configuration and members, and goes once the last
//! one has left; a removed agent finishes its offer, call and wrap-up.

use std::time::{Duration, Instant};

use crate::agent::Activity;
use crate::config::QueueConfig;
use crate::engine::Acd;
use crate::error::AcdError;
use crate::output::QueueEvent;
use crate::skill::{Skills, StepRule, active_step, effective_requirements};

impl Acd {
    /// Adds a queue or replaces the configuration of an existing one, like
    /// [`Acd::add_queue`], then brings the waiting calls of that queue onto
    /// the new steps and offers waiting calls. A queue being removed is
    /// kept again. Max wait and ring deadlines already set stay as they
    /// were; the new timings apply to calls and offers from now on.
    pub fn update_queue(&mut self, config: QueueConfig, now: Instant) {
        let name = config.name.clone();
        self.add_queue(config);
        if let Some(queue) = self.queues.get_mut(&name) {
            queue.retiring = false;
        }
        let mut calls: Vec<_> = self
            .calls
            .values()
            .filter(|call| call.queue == name)
            .map(|call| (call.order, call.id.clone()))
            .collect();
        calls.sort();
        for (_, call) in calls {
            self.refresh_step(&call, now);
        }
        self.dispatch(now);
    }

    /// Removes a queue without ending its calls: it takes no new call from
    /// now on, while the calls it contains keep waiting and are offered to its
    /// members as before, up to their max wait. Once no call is left in it
    /// (connected calls included, whose wrap-up it decides), its members
    /// are removed, each with a `MemberRemoved` event, and the queue goes.
    pub fn remove_queue(&mut self, queue: &str, now: Instant) -> Result<(), AcdError> {
        let entry = self
            .queues
            .get_mut(queue)
            .ok_or_else(|| AcdError::QueueNotFound {
                queue: queue.to_owned(),
            })?;
        entry.retiring = true;
        self.dispatch(now);
        Ok(())
    }

    /// Removes an agent: it leaves each of its queues (`MemberRemoved`) and
    /// is logged out. An agent ringing, on a call or in wrap-up finishes
    /// that first, and the engine deletes it once it is idle. Adding it
    /// again with [`Acd::add_agent`] before then keeps it.
    pub fn remove_agent(&mut self, agent: &str, now: Instant) -> Result<(), AcdError> {
        let was_logged_in = self.agent_mut(agent)?.logged_in;
        // The pause ends in the queues the agent still belongs to, before
        // it leaves them.
        self.end_pause(agent, now);
        let mut entry = self.agent_mut(agent)?;
        let queues: Vec<String> = std::mem::take(&mut entry.queues).into_keys().collect();
        entry.removed = true;
        drop(entry);
        for queue in queues {
            self.events.push_back(QueueEvent::MemberRemoved {
                agent: agent.to_owned(),
                queue,
                at: now,
            });
        }
        if was_logged_in {
            self.events.push_back(QueueEvent::AgentLogin {
                agent: agent.to_owned(),
                logged_in: false,
                at: now,
            });
        }
        self.change_agent(agent, now, now, |a| {
            a.logged_in = false;
            a.not_ready = None;
        });
        self.forget_if_removed(agent);
        self.dispatch(now);
        Ok(())
    }

    /// Returns the names of all queues, including those being removed.
    pub fn queue_names(&self) -> Vec<String> {
        self.queues.keys().cloned().collect()
    }

    /// Returns the configuration of a queue, or `None` for an unknown queue.
    pub fn queue_config(&self, queue: &str) -> Option<&QueueConfig> {
        self.queues.get(queue).map(|q| &q.config)
    }

    /// Returns whether `queue` was removed and still contains calls.
    pub fn is_queue_retiring(&self, queue: &str) -> bool {
        self.queues.get(queue).is_some_and(|q| q.retiring)
    }

    /// Returns the agent's skills, or `None` for an unknown agent.
    pub fn agent_skills(&self, agent: &str) -> Option<&Skills> {
        self.agents.get(agent).map(|a| &a.skills)
    }

    /// Returns the agent's own wrap-up; `None` when it follows its queues
    /// or is unknown.
    pub fn agent_wrap_up(&self, agent: &str) -> Option<Duration> {
        self.agents.get(agent).and_then(|a| a.wrap_up)
    }

    /// Returns the queues the agent is a member of, by name.
    pub fn agent_queues(&self, agent: &str) -> Option<Vec<String>> {
        self.agents
            .get(agent)
            .map(|a| a.queues.keys().cloned().collect())
    }

    /// Brings a waiting call onto the steps of its queue's new
    /// configuration. With the same step index in force, the requirements
    /// follow that step's new rule; a different index is handled as a step
    /// change, overflow included.
    fn refresh_step(&mut self, call_id: &str, now: Instant) {
        let Some(call) = self.calls.get(call_id) else {
            return;
        };
        let Some(queue) = self.queues.get(&call.queue) else {
            return;
        };
        let steps = &queue.config.steps;
        let step = active_step(steps, now.saturating_duration_since(call.entered));
        let rule = step.and_then(|i| steps.get(i)).map(|s| s.rule.clone());
        if step == call.step && !matches!(rule, Some(StepRule::Overflow(_))) {
            let requirements = effective_requirements(&call.data.requirements, rule.as_ref());
            if let Some(mut call) = self.calls.get_mut(call_id) {
                call.requirements = requirements;
            }
            self.refile_waiting(call_id);
        }
        self.advance_step(call_id, now);
    }

    /// Deletes a removed agent once it has no call activity left.
    pub(crate) fn forget_if_removed(&mut self, agent: &str) {
        if self
            .agents
            .get(agent)
            .is_some_and(|a| a.removed && a.activity == Activity::Idle)
        {
            self.agents.remove(agent);
        }
    }

    /// Drops removed queues that hold no call any more, with their members.
    pub(crate) fn drop_drained_queues(&mut self, now: Instant) {
        let drained: Vec<String> = self
            .queues
            .iter()
            .filter(|(name, queue)| queue.retiring && !self.holds_call(name))
            .map(|(name, _)| name.clone())
            .collect();
        for queue in drained {
            self.queues.remove(&queue);
            let events = &mut self.events;
            self.agents.for_each_mut(|agent| {
                if agent.queues.remove(&queue).is_some() {
                    events.push_back(QueueEvent::MemberRemoved {
                        agent: agent.id.clone(),
                        queue: queue.clone(),
                        at: now,
                    });
                }
            });
        }
    }

    /// Returns whether a call is waiting or ringing in `queue`, or is
    /// connected to an agent (or in its wrap-up) on its behalf.
    fn holds_call(&self, queue: &str) -> bool {
        self.queues.get(queue).is_some_and(|q| !q.ranks.is_empty())
            || self.agents.values().any(|agent| match &agent.activity {
                Activity::OnCall { queue: q, .. } | Activity::WrapUp { queue: q, .. } => q == queue,
                Activity::Idle | Activity::Reserved { .. } | Activity::Direct { .. } => false,
            })
    }
}
