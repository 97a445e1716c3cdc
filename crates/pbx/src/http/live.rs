//! Live agent and queue state for supervisors and wallboards, and agent
//! state changes (ready, not ready with a reason).

use accounts::Role;
use axum::Json;
use axum::extract::rejection::JsonRejection;
use axum::extract::{Path as UrlPath, State};
use axum::http::StatusCode;
use serde::Deserialize;
use sip_server::b2bua::{AgentCommandError, AgentView, QueueView, Readiness};

use super::auth::Authenticated;
use super::{ApiState, Problem};

/// Roles that see every agent and queue and may change any agent's state.
const SUPERVISE: [Role; 2] = [Role::Administrator, Role::Supervisor];

fn engine_problem() -> Problem {
    Problem::new(
        StatusCode::SERVICE_UNAVAILABLE,
        "the call engine is not available; retry shortly",
    )
}

pub(crate) async fn list_agents(
    State(state): State<ApiState>,
    user: Authenticated,
) -> Result<Json<Vec<AgentView>>, Problem> {
    let live = state.calls.live.as_ref().ok_or_else(engine_problem)?;
    let agents = live.agents().await.map_err(|_| engine_problem())?;
    let visible = match user.caller.user.role {
        Role::Administrator | Role::Supervisor | Role::Qa => agents,
        // An agent sees itself only.
        Role::Agent => {
            let own = user.caller.user.agent_id.clone();
            agents
                .into_iter()
                .filter(|a| Some(&a.id) == own.as_ref())
                .collect()
        }
    };
    Ok(Json(visible))
}

pub(crate) async fn list_queues(
    State(state): State<ApiState>,
    _user: Authenticated,
) -> Result<Json<Vec<QueueView>>, Problem> {
    let live = state.calls.live.as_ref().ok_or_else(engine_problem)?;
    live.queues().await.map(Json).map_err(|_| engine_problem())
}

/// Body of `PUT /api/agents/{id}/state`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct StateChange {
    /// `ready` or `not_ready`.
    state: String,
    /// Reason code for `not_ready`, e.g. `break`, `lunch`, `training`.
    reason: Option<String>,
}

/// Sets an agent ready or not ready. Supervisors and administrators may
/// change any agent; an agent only itself.
pub(crate) async fn set_agent_state(
    State(state): State<ApiState>,
    user: Authenticated,
    UrlPath(agent): UrlPath<String>,
    body: Result<Json<StateChange>, JsonRejection>,
) -> Result<StatusCode, Problem> {
    let Json(change) = body.map_err(|rejection| Problem::bad_request(rejection.body_text()))?;
    let own = user.caller.user.agent_id.as_deref() == Some(agent.as_str());
    if !own {
        user.require(&SUPERVISE, "change another agent's state")?;
    }
    let readiness = match (change.state.as_str(), change.reason) {
        ("ready", None) => Readiness::Ready,
        ("ready", Some(_)) => {
            return Err(Problem::bad_request("reason is only for state not_ready"));
        }
        ("not_ready", reason) => {
            let reason = reason.unwrap_or_else(|| "not-ready".to_owned());
            if reason.is_empty() || reason.len() > 64 || reason.chars().any(char::is_control) {
                return Err(Problem::bad_request(
                    "reason must be 1 to 64 printable characters",
                ));
            }
            Readiness::NotReady { reason }
        }
        (other, _) => {
            return Err(Problem::bad_request(format!(
                "state must be \"ready\" or \"not_ready\", got {other:?}"
            )));
        }
    };
    let live = state.calls.live.as_ref().ok_or_else(engine_problem)?;
    match live
        .set_readiness(agent, readiness)
        .await
        .map_err(|_| engine_problem())?
    {
        Ok(()) => Ok(StatusCode::NO_CONTENT),
        Err(error @ AgentCommandError::UnknownAgent { .. }) => {
            Err(Problem::not_found(error.to_string()))
        }
        Err(error) => Err(Problem::new(StatusCode::CONFLICT, error.to_string())),
    }
}

/// Prometheus metrics. Public like `/health`: counts only, nothing about
/// callers or agents beyond their states.
pub(crate) async fn metrics(
    State(state): State<ApiState>,
) -> Result<impl axum::response::IntoResponse, Problem> {
    let live = state.calls.live.as_ref().ok_or_else(engine_problem)?;
    let snapshot = live.metrics().await.map_err(|_| engine_problem())?;
    let content_type = [(
        axum::http::header::CONTENT_TYPE,
        "text/plain; version=0.0.4; charset=utf-8",
    )];
    Ok((content_type, crate::metrics::render(&snapshot)))
}
