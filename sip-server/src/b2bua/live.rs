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
    #[error("agent {agent:?}: {reason}")]
    Rejected { agent: String, reason: String },
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
        ids.into_iter()
            .filter_map(|id| {
                let status = self.acd.agent_status(id)?;
                Some(AgentView {
                    id: id.clone(),
                    state: state_name(status.state),
                    not_ready_reason: status.not_ready_reason,
                    contacts: self.registrar.lookup(id, now).len(),
                    calls_answered: status.calls_answered,
                    talk_seconds: super::round_millis(status.talk_time.as_secs_f64()),
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

    /// Lists every configured queue, in configuration order.
    pub fn queues_view(&self, now: Instant) -> Vec<QueueView> {
        self.config
            .queues
            .iter()
            .filter_map(|queue| {
                let snapshot = self.acd.queue_snapshot(&queue.name, now)?;
                let longest_wait = self
                    .calls
                    .values()
                    .filter(|call| call.queue == queue.name && call.answered_at.is_none())
                    .filter_map(|call| call.queued_at)
                    .map(|at| now.saturating_duration_since(at).as_secs_f64())
                    .fold(0.0, f64::max);
                Some(QueueView {
                    name: queue.name.clone(),
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
                })
            })
            .collect()
    }

    /// Makes `agent` ready or not ready. An agent on a call changes state
    /// after the call and its wrap-up; ready during wrap-up ends it.
    pub fn set_agent_readiness(
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
        self.process(now);
        result.map_err(|error| AgentCommandError::Rejected {
            agent: agent.to_owned(),
            reason: error.to_string(),
        })
    }
}
