//! Live agent and queue state for supervisors and wallboards, agent state
//! changes (log in and out, ready, not ready with a reason), skills and
//! queue membership, queue statistics, and configuration reload.

use accounts::Role;
use axum::Json;
use axum::extract::{Path as UrlPath, State};
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use sip_server::b2bua::{AgentCommandError, AgentView, QueueStatsView, QueueView, Readiness};

use super::auth::Authenticated;
use super::{ApiState, JsonBody, Problem};
use crate::live::ChangeError;

/// Roles that see every agent and queue and may change any agent's state.
const SUPERVISE: [Role; 2] = [Role::Administrator, Role::Supervisor];

pub(super) fn engine_problem() -> Problem {
    Problem::new(
        StatusCode::SERVICE_UNAVAILABLE,
        "the call engine is not available; retry shortly",
    )
}

/// A change is confirmed only once its events are stored; when they could
/// not be, the client learns that the change is in force but would not
/// survive a restart, and may retry.
fn change_problem(error: ChangeError) -> Problem {
    match error {
        ChangeError::Engine(_) => engine_problem(),
        ChangeError::NotDurable(error) => {
            Problem::new(StatusCode::SERVICE_UNAVAILABLE, error.to_string())
        }
    }
}

/// An agent as `GET /api/agents` lists it: the engine's view and when the
/// agent entered its current state.
#[derive(Debug, Serialize)]
pub(crate) struct AgentEntry {
    #[serde(flatten)]
    view: AgentView,
    /// RFC 3339 time of the stored state change into the current state.
    /// It is null when the stored events do not show that change, because
    /// it is still being committed or happened before events were kept.
    state_since: Option<String>,
}

pub(crate) async fn list_agents(
    State(state): State<ApiState>,
    user: Authenticated,
) -> Result<Json<Vec<AgentEntry>>, Problem> {
    let live = state.calls.live.as_ref().ok_or_else(engine_problem)?;
    let agents = live.agents().await.map_err(|_| engine_problem())?;
    let visible: Vec<AgentView> = match user.caller.user.role {
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
    let store = crate::events::EventStore::on(state.calls.cdr.pool().clone());
    let mut entries = Vec::with_capacity(visible.len());
    for view in visible {
        let state_since = match store.last_state_change(&view.id).await {
            Ok(Some((at_ms, to))) if to == view.state => Some(crate::events::rfc3339(at_ms)),
            Ok(_) => None,
            Err(error) => {
                // The live state matters more than its start time.
                tracing::warn!(agent = %view.id, %error, "reading the last state change failed");
                None
            }
        };
        entries.push(AgentEntry { view, state_since });
    }
    Ok(Json(entries))
}

pub(crate) async fn list_queues(
    State(state): State<ApiState>,
    _user: Authenticated,
) -> Result<Json<Vec<QueueView>>, Problem> {
    let live = state.calls.live.as_ref().ok_or_else(engine_problem)?;
    live.queues().await.map(Json).map_err(|_| engine_problem())
}

/// One trunk's registration at its provider, for `GET
/// /api/trunks/registrations`.
#[derive(Debug, Serialize)]
pub(crate) struct TrunkRegistrationEntry {
    trunk: String,
    registrar: String,
    aor: String,
    /// `registering`, `registered`, `retrying`, `failed`, `unregistering`
    /// or `unregistered`.
    state: &'static str,
    /// When the provider's binding lapses unless refreshed, RFC 3339.
    expires_at: Option<String>,
    /// When the next REGISTER (refresh or retry) goes out, RFC 3339.
    next_attempt_at: Option<String>,
    /// Status code of the last final response, 408 for a timeout.
    last_status: Option<u16>,
    last_reason: Option<String>,
}

/// Lists the trunks that register at a provider, with the state of each.
/// Administrators and supervisors.
pub(crate) async fn list_trunk_registrations(
    State(state): State<ApiState>,
    user: Authenticated,
) -> Result<Json<Vec<TrunkRegistrationEntry>>, Problem> {
    user.require(&SUPERVISE, "see trunk registrations")?;
    let live = state.calls.live.as_ref().ok_or_else(engine_problem)?;
    let views = live
        .trunk_registrations()
        .await
        .map_err(|_| engine_problem())?;
    let rfc3339 = |at: std::time::SystemTime| {
        time::OffsetDateTime::from(at)
            .format(&time::format_description::well_known::Rfc3339)
            .unwrap_or_default()
    };
    let entries = views
        .into_iter()
        .map(|view| TrunkRegistrationEntry {
            trunk: view.trunk,
            registrar: view.registrar.to_string(),
            aor: view.aor,
            state: view.state.as_str(),
            expires_at: view.expires_at.map(rfc3339),
            next_attempt_at: view.next_attempt_at.map(rfc3339),
            last_status: view.last_status,
            last_reason: view.last_reason,
        })
        .collect();
    Ok(Json(entries))
}

/// Body of `PUT /api/agents/{id}/state`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct StateChange {
    /// `ready`, `not_ready`, `logged_in` or `logged_out`.
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
    body: Result<JsonBody<StateChange>, Problem>,
) -> Result<StatusCode, Problem> {
    let JsonBody(change) = body?;
    let own = user.caller.user.agent_id.as_deref() == Some(agent.as_str());
    if !own {
        user.require(&SUPERVISE, "change another agent's state")?;
    }
    let live = state.calls.live.as_ref().ok_or_else(engine_problem)?;
    let readiness = match (change.state.as_str(), change.reason) {
        ("logged_in" | "logged_out" | "ready", Some(_)) => {
            return Err(Problem::bad_request("reason is only for state not_ready"));
        }
        (login @ ("logged_in" | "logged_out"), None) => {
            let result = live
                .set_logged_in(agent, login == "logged_in")
                .await
                .map_err(change_problem)?;
            return result
                .map(|()| StatusCode::NO_CONTENT)
                .map_err(command_problem);
        }
        ("ready", None) => Readiness::Ready,
        ("not_ready", reason) => {
            let reason = reason.unwrap_or_else(|| "not-ready".to_owned());
            if !valid_code(&reason) {
                return Err(Problem::bad_request(
                    "reason must be 1 to 64 printable characters",
                ));
            }
            Readiness::NotReady { reason }
        }
        (other, _) => {
            return Err(Problem::bad_request(format!(
                "state must be \"ready\", \"not_ready\", \"logged_in\" or \"logged_out\", got {other:?}"
            )));
        }
    };
    live.set_readiness(agent, readiness)
        .await
        .map_err(change_problem)?
        .map(|()| StatusCode::NO_CONTENT)
        .map_err(command_problem)
}

/// Checks a not-ready reason or a wrap-up code, which the queue_log and
/// reports show as given.
fn valid_code(code: &str) -> bool {
    !code.is_empty() && code.len() <= 64 && !code.chars().any(char::is_control)
}

/// Body of `PUT /api/agents/{id}/wrap-up-code`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct WrapUpCode {
    /// Outcome of the call the agent is wrapping up, e.g. `resolved`.
    code: String,
}

/// Records the wrap-up code of the call an agent is wrapping up; the
/// queue_log gets WRAPUPCODE. Supervisors and administrators for any
/// agent, an agent for itself. 409 when the agent is not in wrap-up.
pub(crate) async fn set_wrap_up_code(
    State(state): State<ApiState>,
    user: Authenticated,
    UrlPath(agent): UrlPath<String>,
    body: Result<JsonBody<WrapUpCode>, Problem>,
) -> Result<StatusCode, Problem> {
    let JsonBody(body) = body?;
    let own = user.caller.user.agent_id.as_deref() == Some(agent.as_str());
    if !own {
        user.require(&SUPERVISE, "set another agent's wrap-up code")?;
    }
    if !valid_code(&body.code) {
        return Err(Problem::bad_request(
            "code must be 1 to 64 printable characters",
        ));
    }
    let live = state.calls.live.as_ref().ok_or_else(engine_problem)?;
    live.set_wrap_up_code(agent, body.code)
        .await
        .map_err(change_problem)?
        .map(|()| StatusCode::NO_CONTENT)
        .map_err(command_problem)
}

/// Unknown agents, queues and memberships are 404; a change the ACD
/// refused is 409.
fn command_problem(error: AgentCommandError) -> Problem {
    match error {
        AgentCommandError::UnknownAgent { .. }
        | AgentCommandError::UnknownQueue { .. }
        | AgentCommandError::NotMember { .. } => Problem::not_found(error.to_string()),
        AgentCommandError::Rejected { .. } => Problem::new(StatusCode::CONFLICT, error.to_string()),
    }
}

/// Maximum length of a skill name, in characters, as for agent ids and reason codes.
const MAX_SKILL_NAME: usize = 64;
/// Skills one agent may hold. A centre's skill set is tens of skills; the
/// bound keeps one request from filling the engine's indexes.
const MAX_AGENT_SKILLS: usize = 256;

/// Body of `PUT /api/agents/{id}/skills`: skill name to proficiency level.
/// Levels stay JSON values here so that a bad one is reported by name.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct SkillsChange {
    skills: std::collections::BTreeMap<String, serde_json::Value>,
}

/// Checks skill names and levels as the configuration file does for
/// `agents[].skills`; the error names the offending entry.
fn parse_skills(
    raw: std::collections::BTreeMap<String, serde_json::Value>,
) -> Result<acd::Skills, Problem> {
    if raw.len() > MAX_AGENT_SKILLS {
        return Err(Problem::bad_request(format!(
            "skills: {} skills given, an agent holds at most {MAX_AGENT_SKILLS}",
            raw.len()
        )));
    }
    let mut skills = acd::Skills::new();
    for (name, level) in raw {
        let field = format!("skills[{name:?}]");
        if name.is_empty() || name.chars().count() > MAX_SKILL_NAME {
            return Err(Problem::bad_request(format!(
                "{field}: a skill name has 1 to {MAX_SKILL_NAME} characters"
            )));
        }
        if name
            .chars()
            .any(|c| c.is_whitespace() || c.is_control() || c == ':')
        {
            return Err(Problem::bad_request(format!(
                "{field}: a skill name may not contain whitespace, control characters or ':'; \
                 write it as CATEGORY=VALUE, e.g. \"language=ru\""
            )));
        }
        let level = level
            .as_u64()
            .and_then(|level| u8::try_from(level).ok())
            .ok_or_else(|| {
                Problem::bad_request(format!(
                    "{field}: the level must be a whole number from 0 to 255, got {level}"
                ))
            })?;
        skills.insert(name, level);
    }
    Ok(skills)
}

/// Replaces an agent's skills. Supervisors and administrators only; the
/// change is audited and lasts until the configuration file changes that
/// agent's skills or the PBX restarts.
pub(crate) async fn set_agent_skills(
    State(state): State<ApiState>,
    user: Authenticated,
    UrlPath(agent): UrlPath<String>,
    body: Result<JsonBody<SkillsChange>, Problem>,
) -> Result<StatusCode, Problem> {
    user.require(&SUPERVISE, "change an agent's skills")?;
    let JsonBody(change) = body?;
    let skills = parse_skills(change.skills)?;
    let live = state.calls.live.as_ref().ok_or_else(engine_problem)?;
    live.set_skills(agent.clone(), skills)
        .await
        .map_err(change_problem)?
        .map_err(command_problem)?;
    let target = format!("agent:{agent}");
    super::admin::audit(&state, &user, "agent.skills", target, state.now()).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Makes an agent a member of a queue; the queue_log gets ADDMEMBER.
pub(crate) async fn add_member(
    State(state): State<ApiState>,
    user: Authenticated,
    UrlPath((agent, queue)): UrlPath<(String, String)>,
) -> Result<StatusCode, Problem> {
    user.require(&SUPERVISE, "change queue membership")?;
    let live = state.calls.live.as_ref().ok_or_else(engine_problem)?;
    let added = live
        .add_member(agent.clone(), queue.clone())
        .await
        .map_err(change_problem)?
        .map_err(command_problem)?;
    if added {
        let target = format!("agent:{agent} queue:{queue}");
        super::admin::audit(&state, &user, "agent.queue_add", target, state.now()).await?;
    }
    Ok(StatusCode::NO_CONTENT)
}

/// Removes an agent from a queue; the queue_log gets REMOVEMEMBER.
pub(crate) async fn remove_member(
    State(state): State<ApiState>,
    user: Authenticated,
    UrlPath((agent, queue)): UrlPath<(String, String)>,
) -> Result<StatusCode, Problem> {
    user.require(&SUPERVISE, "change queue membership")?;
    let live = state.calls.live.as_ref().ok_or_else(engine_problem)?;
    live.remove_member(agent.clone(), queue.clone())
        .await
        .map_err(change_problem)?
        .map_err(command_problem)?;
    let target = format!("agent:{agent} queue:{queue}");
    super::admin::audit(&state, &user, "agent.queue_remove", target, state.now()).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Statistics of one queue since the start, computed by the engine.
pub(crate) async fn queue_stats(
    State(state): State<ApiState>,
    _user: Authenticated,
    UrlPath(queue): UrlPath<String>,
) -> Result<Json<QueueStatsView>, Problem> {
    let live = state.calls.live.as_ref().ok_or_else(engine_problem)?;
    live.queue_stats(queue.clone())
        .await
        .map_err(|_| engine_problem())?
        .map(Json)
        .ok_or_else(|| Problem::not_found(format!("queue {queue:?} not found")))
}

/// Re-reads the configuration file and applies it without dropping calls.
/// Administrators only; audited when applied.
pub(crate) async fn reload_config(
    State(state): State<ApiState>,
    user: Authenticated,
) -> Result<Json<crate::reload::ReloadReport>, Problem> {
    use crate::reload::ReloadError;
    user.require(&[Role::Administrator], "reload the configuration")?;
    let reloader = state.calls.reloader.as_ref().ok_or_else(engine_problem)?;
    let report = reloader.reload().await.map_err(|error| match error {
        ReloadError::Embedded => Problem::new(StatusCode::CONFLICT, error.to_string()),
        ReloadError::Invalid(_) | ReloadError::Unsupported { .. } | ReloadError::Secrets(_) => {
            Problem::new(StatusCode::UNPROCESSABLE_ENTITY, error.to_string())
        }
        ReloadError::Engine(_) => engine_problem(),
        ReloadError::NotDurable(_) => {
            Problem::new(StatusCode::SERVICE_UNAVAILABLE, error.to_string())
        }
        ReloadError::Layer(_) | ReloadError::NoLayerStore => {
            tracing::error!(%error, "configuration reload failed");
            Problem::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "the administration changes could not be read",
            )
        }
    })?;
    let target = report.file.clone();
    super::admin::audit(&state, &user, "config.reload", target, state.now()).await?;
    Ok(Json(report))
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
