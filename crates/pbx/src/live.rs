//! Requests from the HTTP API to the engine task, which alone owns the
//! call state: snapshots of agents and queues, agent state, skill and
//! membership changes, and configuration reloads.

use sip_server::b2bua::{
    AgentCommandError, AgentView, CoreConfig, QueueStatsView, QueueView, Readiness, RecordingActor,
    RecordingCommandError,
};
use tokio::sync::{mpsc, oneshot};

use crate::events::NotDurable;

/// Reply to a request that changes state: sent only once the events it
/// caused are committed, or with the reason they could not be.
pub(crate) type Durable<T> = Result<T, NotDurable>;

/// A request for the engine and the channel its reply goes back on.
pub(crate) enum LiveRequest {
    Agents(oneshot::Sender<Vec<AgentView>>),
    Queues(oneshot::Sender<Vec<QueueView>>),
    Metrics(oneshot::Sender<crate::metrics::Snapshot>),
    TrunkRegistrations(oneshot::Sender<Vec<sip_server::b2bua::TrunkRegistrationView>>),
    SetReadiness {
        agent: String,
        readiness: Readiness,
        reply: oneshot::Sender<Durable<Result<(), AgentCommandError>>>,
    },
    SetLoggedIn {
        agent: String,
        logged_in: bool,
        reply: oneshot::Sender<Durable<Result<(), AgentCommandError>>>,
    },
    SetSkills {
        agent: String,
        skills: acd::Skills,
        reply: oneshot::Sender<Durable<Result<(), AgentCommandError>>>,
    },
    SetWrapUpCode {
        agent: String,
        code: String,
        reply: oneshot::Sender<Durable<Result<(), AgentCommandError>>>,
    },
    /// Replies whether the agent was not a member before.
    AddMember {
        agent: String,
        queue: String,
        reply: oneshot::Sender<Durable<Result<bool, AgentCommandError>>>,
    },
    RemoveMember {
        agent: String,
        queue: String,
        reply: oneshot::Sender<Durable<Result<(), AgentCommandError>>>,
    },
    QueueStats {
        queue: String,
        reply: oneshot::Sender<Option<QueueStatsView>>,
    },
    /// Pauses or resumes a call's recording; replies with the event stored
    /// for the CDR. The reply does not wait for the open-call journal.
    SetRecordingPaused {
        call: String,
        paused: bool,
        actor: RecordingActor,
        reply: oneshot::Sender<Result<cdr::RecordingEvent, RecordingCommandError>>,
    },
    /// Applies a reloaded configuration; replies with the changes made.
    Reconfigure {
        config: Box<CoreConfig>,
        reply: oneshot::Sender<Durable<Vec<String>>>,
    },
}

/// Handle the HTTP API uses to reach the engine.
#[derive(Clone)]
pub(crate) struct Live {
    requests: mpsc::Sender<LiveRequest>,
}

/// The engine stopped or is too busy to take the request.
#[derive(Debug, thiserror::Error)]
#[error("the call engine is not available")]
pub(crate) struct EngineUnavailable;

/// Failure of a state change to be confirmed.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ChangeError {
    #[error(transparent)]
    Engine(#[from] EngineUnavailable),
    /// Applied in memory, but its events are not stored.
    #[error(transparent)]
    NotDurable(#[from] NotDurable),
}

impl Live {
    pub(crate) fn new(requests: mpsc::Sender<LiveRequest>) -> Live {
        Live { requests }
    }

    async fn ask<T>(
        &self,
        make: impl FnOnce(oneshot::Sender<T>) -> LiveRequest,
    ) -> Result<T, EngineUnavailable> {
        let (reply, answer) = oneshot::channel();
        self.requests
            .send(make(reply))
            .await
            .map_err(|_| EngineUnavailable)?;
        answer.await.map_err(|_| EngineUnavailable)
    }

    /// Asks for a state change and waits until its events are committed.
    async fn change<T>(
        &self,
        make: impl FnOnce(oneshot::Sender<Durable<T>>) -> LiveRequest,
    ) -> Result<T, ChangeError> {
        Ok(self.ask(make).await??)
    }

    pub(crate) async fn agents(&self) -> Result<Vec<AgentView>, EngineUnavailable> {
        self.ask(LiveRequest::Agents).await
    }

    pub(crate) async fn queues(&self) -> Result<Vec<QueueView>, EngineUnavailable> {
        self.ask(LiveRequest::Queues).await
    }

    pub(crate) async fn trunk_registrations(
        &self,
    ) -> Result<Vec<sip_server::b2bua::TrunkRegistrationView>, EngineUnavailable> {
        self.ask(LiveRequest::TrunkRegistrations).await
    }

    pub(crate) async fn metrics(&self) -> Result<crate::metrics::Snapshot, EngineUnavailable> {
        self.ask(LiveRequest::Metrics).await
    }

    pub(crate) async fn set_readiness(
        &self,
        agent: String,
        readiness: Readiness,
    ) -> Result<Result<(), AgentCommandError>, ChangeError> {
        self.change(|reply| LiveRequest::SetReadiness {
            agent,
            readiness,
            reply,
        })
        .await
    }
}

impl Live {
    pub(crate) async fn set_logged_in(
        &self,
        agent: String,
        logged_in: bool,
    ) -> Result<Result<(), AgentCommandError>, ChangeError> {
        self.change(|reply| LiveRequest::SetLoggedIn {
            agent,
            logged_in,
            reply,
        })
        .await
    }

    pub(crate) async fn set_skills(
        &self,
        agent: String,
        skills: acd::Skills,
    ) -> Result<Result<(), AgentCommandError>, ChangeError> {
        self.change(|reply| LiveRequest::SetSkills {
            agent,
            skills,
            reply,
        })
        .await
    }

    pub(crate) async fn set_wrap_up_code(
        &self,
        agent: String,
        code: String,
    ) -> Result<Result<(), AgentCommandError>, ChangeError> {
        self.change(|reply| LiveRequest::SetWrapUpCode { agent, code, reply })
            .await
    }

    pub(crate) async fn add_member(
        &self,
        agent: String,
        queue: String,
    ) -> Result<Result<bool, AgentCommandError>, ChangeError> {
        self.change(|reply| LiveRequest::AddMember {
            agent,
            queue,
            reply,
        })
        .await
    }

    pub(crate) async fn remove_member(
        &self,
        agent: String,
        queue: String,
    ) -> Result<Result<(), AgentCommandError>, ChangeError> {
        self.change(|reply| LiveRequest::RemoveMember {
            agent,
            queue,
            reply,
        })
        .await
    }

    pub(crate) async fn queue_stats(
        &self,
        queue: String,
    ) -> Result<Option<QueueStatsView>, EngineUnavailable> {
        self.ask(|reply| LiveRequest::QueueStats { queue, reply })
            .await
    }

    pub(crate) async fn set_recording_paused(
        &self,
        call: String,
        paused: bool,
        actor: RecordingActor,
    ) -> Result<Result<cdr::RecordingEvent, RecordingCommandError>, EngineUnavailable> {
        self.ask(|reply| LiveRequest::SetRecordingPaused {
            call,
            paused,
            actor,
            reply,
        })
        .await
    }

    pub(crate) async fn reconfigure(&self, config: CoreConfig) -> Result<Vec<String>, ChangeError> {
        self.change(|reply| LiveRequest::Reconfigure {
            config: Box::new(config),
            reply,
        })
        .await
    }
}
