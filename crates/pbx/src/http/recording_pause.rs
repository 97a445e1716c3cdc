//! Pause and resume of a call's recording while the call goes on, for the
//! moments when a citizen gives personal data. Supervisors and
//! administrators may pause any call, an agent only the call it answered.

use accounts::Role;
use axum::Json;
use axum::extract::{Path as UrlPath, State};
use axum::http::StatusCode;
use serde::Serialize;
use sip_server::b2bua::{RecordingActor, RecordingCommandError};

use super::auth::Authenticated;
use super::{ApiState, Problem};

/// Roles that may pause recordings: agents only on their own calls.
const PAUSERS: [Role; 3] = [Role::Administrator, Role::Supervisor, Role::Agent];

/// Audit log actions of a pause and a resume.
const PAUSE_ACTION: &str = "recording.pause";
const RESUME_ACTION: &str = "recording.resume";

/// Reply of a pause or resume: the call's new state and the event that
/// its CDR will carry.
#[derive(Debug, Serialize)]
pub(crate) struct PauseState {
    call_id: String,
    paused: bool,
    event: cdr::RecordingEvent,
}

pub(crate) async fn pause(
    state: State<ApiState>,
    user: Authenticated,
    id: UrlPath<String>,
) -> Result<Json<PauseState>, Problem> {
    set_paused(state, user, id, true).await
}

pub(crate) async fn resume(
    state: State<ApiState>,
    user: Authenticated,
    id: UrlPath<String>,
) -> Result<Json<PauseState>, Problem> {
    set_paused(state, user, id, false).await
}

async fn set_paused(
    State(state): State<ApiState>,
    user: Authenticated,
    UrlPath(id): UrlPath<String>,
    paused: bool,
) -> Result<Json<PauseState>, Problem> {
    user.require(&PAUSERS, "pause or resume recordings")?;
    let caller = &user.caller.user;
    let only_agent = match caller.role {
        // The accounts store requires an agent id for role agent, so a
        // missing one means the row was edited by hand.
        Role::Agent => Some(caller.agent_id.clone().ok_or_else(|| {
            Problem::new(
                StatusCode::FORBIDDEN,
                format!("user {:?} has no agent_id", caller.username),
            )
        })?),
        Role::Administrator | Role::Supervisor | Role::Qa => None,
    };
    let actor = RecordingActor {
        source: cdr::RecordingEventSource::Api,
        name: caller.username.clone(),
        only_agent,
    };
    let live = state.calls.live.as_ref().ok_or_else(engine_problem)?;
    let event = live
        .set_recording_paused(id.clone(), paused, actor)
        .await
        .map_err(|_| engine_problem())?
        .map_err(command_problem)?;
    let action = if paused { PAUSE_ACTION } else { RESUME_ACTION };
    super::admin::audit(&state, &user, action, id.clone(), state.now()).await?;
    tracing::info!(call = %id, user = %caller.username, paused, "recording pause set through the API");
    Ok(Json(PauseState {
        call_id: id,
        paused,
        event,
    }))
}

fn engine_problem() -> Problem {
    Problem::new(
        StatusCode::SERVICE_UNAVAILABLE,
        "the call engine is not available; retry shortly",
    )
}

/// Maps a refused change to its status: 404 for a call that is not in
/// progress (or not the agent's own), 409 for one that is not recorded or
/// already in the requested state.
fn command_problem(error: RecordingCommandError) -> Problem {
    match error {
        RecordingCommandError::UnknownCall { .. } => Problem::not_found(error.to_string()),
        RecordingCommandError::NotRecording { .. }
        | RecordingCommandError::AlreadyPaused { .. }
        | RecordingCommandError::NotPaused { .. } => {
            Problem::new(StatusCode::CONFLICT, error.to_string())
        }
    }
}
