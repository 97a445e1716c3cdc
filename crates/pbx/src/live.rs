//! Requests from the HTTP API to the engine task, which alone owns the
//! call state: snapshots of agents and queues, and agent state changes.

use sip_server::b2bua::{AgentCommandError, AgentView, QueueView, Readiness};
use tokio::sync::{mpsc, oneshot};

/// A request for the engine and the channel its reply goes back on.
pub(crate) enum LiveRequest {
    Agents(oneshot::Sender<Vec<AgentView>>),
    Queues(oneshot::Sender<Vec<QueueView>>),
    Metrics(oneshot::Sender<crate::metrics::Snapshot>),
    SetReadiness {
        agent: String,
        readiness: Readiness,
        reply: oneshot::Sender<Result<(), AgentCommandError>>,
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

    pub(crate) async fn agents(&self) -> Result<Vec<AgentView>, EngineUnavailable> {
        self.ask(LiveRequest::Agents).await
    }

    pub(crate) async fn queues(&self) -> Result<Vec<QueueView>, EngineUnavailable> {
        self.ask(LiveRequest::Queues).await
    }

    pub(crate) async fn metrics(&self) -> Result<crate::metrics::Snapshot, EngineUnavailable> {
        self.ask(LiveRequest::Metrics).await
    }

    pub(crate) async fn set_readiness(
        &self,
        agent: String,
        readiness: Readiness,
    ) -> Result<Result<(), AgentCommandError>, EngineUnavailable> {
        self.ask(|reply| LiveRequest::SetReadiness {
            agent,
            readiness,
            reply,
        })
        .await
    }
}
