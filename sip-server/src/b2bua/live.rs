//! Live state of agents and queues for supervisors and wallboards, and the
//! agent state changes the API makes.

use std::time::Instant;

use serde::Serialize;

use super::Core;

/// One agent as a supervisor sees it now.
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct AgentView {
    pub id: String,
    /// `logged_out`, `unreachable`, `available`, `ringing`, `on_call`,
    /// `wrap_up` or `not_ready`.
    pub state: &'static str,
    pub not_ready_reason: Option<String>,
    /// Registered contacts that answer qualify probes.
    pub contacts: usize,
    pub calls_answered: u64,
    pub talk_seconds: f64,
    /// Skill name to proficiency level.
    pub skills: std::collections::BTreeMap<String, u8>,
    /// Queues the agent is a member of, by name.
    pub queues: Vec<String>,
    /// Product id of the answered call the agent is talking on, which
    /// the API's recording pause and resume take.
    pub call_id: Option<String>,
    /// The recording of that call is paused.
    pub recording_paused: bool,
}

/// One queue as a wallboard shows it now.
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct QueueView {
    pub name: String,
    /// Calls waiting or ringing an agent.
    pub calls: usize,
    /// Seconds the longest-waiting call has waited.
    pub longest_wait_seconds: f64,
    pub staffed_agents: u32,
    pub available_agents: u32,
    /// Erlang C estimate of a new caller's wait, when the queue has enough
    /// history to compute one.
    pub expected_wait_seconds: Option<f64>,
    pub average_handle_seconds: Option<f64>,
    /// The queue was removed by a configuration reload and still contains
    /// calls, which it serves until they leave; it takes no new calls.
    pub removed: bool,
}

/// Statistics of one queue since the PBX started, for reports and
/// supervisors. Counts survive configuration reloads.
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct QueueStatsView {
    pub name: String,
    /// Calls waiting or ringing an agent now.
    pub calls: usize,
    pub longest_wait_seconds: f64,
    /// Members logged in and not paused: available, ringing, talking or in wrap-up.
    pub staffed_agents: u32,
    pub available_agents: u32,
    /// Erlang C estimate of a new caller's wait.
    pub expected_wait_seconds: Option<f64>,
    /// Mean of recent handle times (talk plus wrap-up).
    pub average_handle_seconds: Option<f64>,
    /// Mean wait of the answered calls.
    pub average_answer_wait_seconds: Option<f64>,
    /// Calls that arrived per hour, measured over the last 15 minutes.
    pub arrivals_per_hour: Option<f64>,
    pub answered: u64,
    pub answered_in_service_level: u64,
    pub abandoned: u64,
    /// Calls that reached the queue's max wait.
    pub timed_out: u64,
    /// Calls that left for another reason (full, no agent, overflow).
    pub exited: u64,
    /// Percentage of the calls that left the queue which were answered
    /// within `service_level_seconds`; `None` until a call has left.
    pub service_level_percent: Option<f64>,
    pub service_level_seconds: f64,
    /// See [`QueueView::removed`].
    pub removed: bool,
}

/// Whether an agent takes calls, as a supervisor or the agent sets it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Readiness {
    Ready,
    /// Taking no calls, with a reason code such as break, lunch or training.
    NotReady {
        reason: String,
    },
}

/// Why an agent state change was not made.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum AgentCommandError {
    #[error("agent {agent:?} not found")]
    UnknownAgent { agent: String },
    /// The ACD refused the change; its error names the agent already.
    #[error("{error}")]
    Rejected { agent: String, error: acd::AcdError },
    #[error("queue {queue:?} not found")]
    UnknownQueue { queue: String },
    #[error("agent {agent:?} is not a member of queue {queue:?}")]
    NotMember { agent: String, queue: String },
}

fn state_name(state: acd::AgentState) -> &'static str {
    match state {
        acd::AgentState::LoggedOut => "logged_out",
        acd::AgentState::Unreachable => "unreachable",
        acd::AgentState::Available => "available",
        acd::AgentState::Ringing => "ringing",
        acd::AgentState::OnCall => "on_call",
        acd::AgentState::WrapUp => "wrap_up",
        acd::AgentState::NotReady => "not_ready",
    }
}

impl Core {
    /// Lists every configured agent, sorted by id.
    pub fn agents_view(&self, now: Instant) -> Vec<AgentView> {
        let mut ids: Vec<&String> = self.config.passwords.keys().collect();
        ids.sort();
        let talking = self.agents_talking();
        ids.into_iter()
            .filter_map(|id| {
                let status = self.acd.agent_status(id)?;
                let call = talking.get(id.as_str());
                Some(AgentView {
                    id: id.clone(),
                    state: state_name(status.state),
                    not_ready_reason: status.not_ready_reason,
                    contacts: self.registrar.lookup(id, now).len(),
                    calls_answered: status.calls_answered,
                    talk_seconds: super::round_millis(status.talk_time.as_secs_f64()),
                    skills: self.acd.agent_skills(id).cloned().unwrap_or_default(),
                    queues: self.acd.agent_queues(id).unwrap_or_default(),
                    call_id: call.map(|(call_id, _)| (*call_id).to_owned()),
                    recording_paused: call.is_some_and(|(_, paused)| *paused),
                })
            })
            .collect()
    }

    /// Counts the answered calls that are being recorded.
    pub fn recordings_in_progress(&self) -> usize {
        self.calls
            .values()
            .filter(|call| call.answered_at.is_some() && call.recording_path.is_some())
            .count()
    }

    /// Names of the queues to show: configured ones in configuration
    /// order, then removed ones that still hold calls.
    fn queue_names(&self) -> Vec<String> {
        let configured = self.config.queues.iter().map(|queue| queue.name.clone());
        let removed = self
            .acd
            .queue_names()
            .into_iter()
            .filter(|name| self.acd.is_queue_retiring(name));
        configured.chain(removed).collect()
    }

    /// Lists every configured queue, in configuration order, then the
    /// removed queues that still hold calls.
    pub fn queues_view(&self, now: Instant) -> Vec<QueueView> {
        self.queue_names()
            .into_iter()
            .filter_map(|name| {
                let snapshot = self.acd.queue_snapshot(&name, now)?;
                let longest_wait = self
                    .calls
                    .values()
                    .filter(|call| call.queue == name && call.answered_at.is_none())
                    .filter_map(|call| call.queued_at)
                    .map(|at| now.saturating_duration_since(at).as_secs_f64())
                    .fold(0.0, f64::max);
                Some(QueueView {
                    calls: snapshot.calls,
                    longest_wait_seconds: super::round_millis(longest_wait),
                    staffed_agents: snapshot.staffed,
                    available_agents: snapshot.available,
                    expected_wait_seconds: snapshot
                        .expected_wait
                        .map(|d| super::round_millis(d.as_secs_f64())),
                    average_handle_seconds: snapshot
                        .average_handle_time
                        .map(|d| super::round_millis(d.as_secs_f64())),
                    removed: self.acd.is_queue_retiring(&name),
                    name,
                })
            })
            .collect()
    }

    /// Returns the statistics of `queue`, or `None` for a queue that is
    /// neither configured nor still serving calls after its removal.
    pub fn queue_stats(&self, queue: &str, now: Instant) -> Option<QueueStatsView> {
        let snapshot = self.acd.queue_snapshot(queue, now)?;
        let seconds = |d: std::time::Duration| super::round_millis(d.as_secs_f64());
        Some(QueueStatsView {
            name: queue.to_owned(),
            calls: snapshot.calls,
            longest_wait_seconds: seconds(snapshot.longest_wait),
            staffed_agents: snapshot.staffed,
            available_agents: snapshot.available,
            expected_wait_seconds: snapshot.expected_wait.map(seconds),
            average_handle_seconds: snapshot.average_handle_time.map(seconds),
            average_answer_wait_seconds: snapshot.average_answer_wait.map(seconds),
            arrivals_per_hour: snapshot
                .arrival_rate
                .map(|rate| super::round_millis(rate * 3600.0)),
            answered: snapshot.answered,
            answered_in_service_level: snapshot.answered_in_service_level,
            abandoned: snapshot.abandoned,
            timed_out: snapshot.timed_out,
            exited: snapshot.exited,
            service_level_percent: snapshot
                .service_level
                .map(|share| super::round_millis(share * 100.0)),
            service_level_seconds: seconds(snapshot.service_level_target),
            removed: self.acd.is_queue_retiring(queue),
        })
    }

    /// Replaces the skills of `agent`; waiting calls it now qualifies for
    /// are offered to it at once.
    pub fn set_agent_skills(
        &mut self,
        agent: &str,
        skills: acd::Skills,
        now: Instant,
    ) -> Result<(), AgentCommandError> {
        self.known_agent(agent)?;
        let result = self.acd.set_skills(agent, skills.clone(), now);
        tracing::info!(agent, ?skills, "agent skills set");
        self.process(now);
        result.map_err(|error| rejected(agent, &error))
    }

    /// Makes `agent` a member of `queue`; returns whether it was not one
    /// already. The ACD logs ADDMEMBER and offers waiting calls.
    pub fn add_agent_to_queue(
        &mut self,
        agent: &str,
        queue: &str,
        now: Instant,
    ) -> Result<bool, AgentCommandError> {
        self.known_agent(agent)?;
        self.configured_queue(queue)?;
        let added = !self
            .acd
            .agent_queues(agent)
            .is_some_and(|queues| queues.iter().any(|q| q == queue));
        let result = self.acd.add_member(agent, queue, 1, now);
        tracing::info!(agent, queue, added, "agent added to queue");
        self.process(now);
        result.map_err(|error| rejected(agent, &error))?;
        Ok(added)
    }

    /// Removes `agent` from `queue`; an offer or call in progress goes on.
    /// The ACD logs REMOVEMEMBER.
    pub fn remove_agent_from_queue(
        &mut self,
        agent: &str,
        queue: &str,
        now: Instant,
    ) -> Result<(), AgentCommandError> {
        self.known_agent(agent)?;
        self.configured_queue(queue)?;
        let member = self
            .acd
            .agent_queues(agent)
            .is_some_and(|queues| queues.iter().any(|q| q == queue));
        if !member {
            return Err(AgentCommandError::NotMember {
                agent: agent.to_owned(),
                queue: queue.to_owned(),
            });
        }
        let result = self.acd.remove_member(agent, queue, now);
        tracing::info!(agent, queue, "agent removed from queue");
        self.process(now);
        result.map_err(|error| rejected(agent, &error))
    }

    /// Logs `agent` in or out, as the feature codes `*11` and `*12` do.
    /// Logging out does not end an offer or a call in progress.
    pub fn set_agent_logged_in(
        &mut self,
        agent: &str,
        logged_in: bool,
        now: Instant,
    ) -> Result<(), AgentCommandError> {
        self.known_agent(agent)?;
        self.acd.set_logged_in(agent, logged_in, now);
        tracing::info!(agent, logged_in, "agent login set");
        self.process(now);
        Ok(())
    }

    /// Records the wrap-up code `code` for the call `agent` is wrapping up.
    /// Wrap-up goes on until the agent ends it or its maximum passes.
    pub fn set_agent_wrap_up_code(
        &mut self,
        agent: &str,
        code: &str,
        now: Instant,
    ) -> Result<(), AgentCommandError> {
        self.known_agent(agent)?;
        let result = self.acd.set_wrap_up_code(agent, code, now);
        tracing::info!(agent, code, ok = result.is_ok(), "wrap-up code set");
        self.process(now);
        result.map_err(|error| rejected(agent, &error))
    }

    fn known_agent(&self, agent: &str) -> Result<(), AgentCommandError> {
        if self.config.passwords.contains_key(agent) {
            Ok(())
        } else {
            Err(AgentCommandError::UnknownAgent {
                agent: agent.to_owned(),
            })
        }
    }

    /// Accepts a queue of the running configuration; a removed queue that
    /// still serves its calls takes no new members.
    fn configured_queue(&self, queue: &str) -> Result<(), AgentCommandError> {
        if self.config.queues.iter().any(|q| q.name == queue) {
            Ok(())
        } else {
            Err(AgentCommandError::UnknownQueue {
                queue: queue.to_owned(),
            })
        }
    }

    /// Makes `agent` ready or not ready. An agent on a call changes state
    /// after the call and its wrap-up; ready during wrap-up ends it.
    pub fn set_agent_readiness(
        &mut self,
        agent: &str,
        readiness: Readiness,
        now: Instant,
    ) -> Result<(), AgentCommandError> {
        let result = self.apply_readiness(agent, readiness, now);
        self.process(now);
        result
    }

    /// Changes readiness as [`Core::set_agent_readiness`] does but leaves
    /// the events in the ACD, so that a feature code can hold its final
    /// response behind them.
    pub(super) fn apply_readiness(
        &mut self,
        agent: &str,
        readiness: Readiness,
        now: Instant,
    ) -> Result<(), AgentCommandError> {
        if !self.config.passwords.contains_key(agent) {
            return Err(AgentCommandError::UnknownAgent {
                agent: agent.to_owned(),
            });
        }
        let result = match &readiness {
            // Ready during wrap-up means the after-call work is done.
            Readiness::Ready if self.acd.agent_state(agent) == Some(acd::AgentState::WrapUp) => {
                self.acd
                    .end_wrap_up(agent, now)
                    .and_then(|()| self.acd.set_ready(agent, now))
            }
            Readiness::Ready => self.acd.set_ready(agent, now),
            Readiness::NotReady { reason } => self.acd.set_not_ready(agent, reason, now),
        };
        tracing::info!(agent, ?readiness, "agent state set");
        result.map_err(|error| rejected(agent, &error))
    }
}

fn rejected(agent: &str, error: &acd::AcdError) -> AgentCommandError {
    AgentCommandError::Rejected {
        agent: agent.to_owned(),
        error: error.clone(),
    }
}
