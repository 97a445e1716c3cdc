//! User and API token administration, and the audit log.

use accounts::{ApiToken, AuditEntry, NewAuditEntry, NewUser, Role, User, UserChanges};
use axum::Json;
use axum::extract::rejection::{PathRejection, QueryRejection};
use axum::extract::{Path as UrlPath, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Deserializer, Serialize};
use time::OffsetDateTime;

use super::auth::Authenticated;
use super::{ApiState, JsonBody, Problem, parse_limit, parse_parameter};

const ADMINISTRATOR: [Role; 1] = [Role::Administrator];
const AUDIT_READERS: [Role; 2] = [Role::Administrator, Role::Supervisor];
const DEFAULT_AUDIT_LIMIT: u32 = 100;

/// Body of `POST /api/users`. An unknown field is rejected, because an
/// ignored one, such as `disabled`, would create a user other than the one
/// requested.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct CreateUserRequest {
    username: String,
    password: String,
    role: Role,
    #[serde(default)]
    agent_id: Option<String>,
}

/// Body of `PATCH /api/users/{id}`; absent fields stay as they are.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct UpdateUserRequest {
    #[serde(default)]
    role: Option<Role>,
    /// Absent keeps the agent id, `null` removes it.
    #[serde(default, deserialize_with = "present")]
    agent_id: Option<Option<String>>,
    #[serde(default)]
    disabled: Option<bool>,
}

/// Body of `PUT /api/users/{id}/password`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct PasswordRequest {
    password: String,
}

/// Body of `POST /api/tokens`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct CreateTokenRequest {
    user_id: i64,
    name: String,
}

/// Reply to `POST /api/tokens`: the only time the secret is shown.
#[derive(Serialize)]
struct CreatedToken {
    token: String,
    #[serde(flatten)]
    info: ApiToken,
}

#[derive(Deserialize)]
pub(crate) struct AuditQuery {
    limit: Option<String>,
    offset: Option<String>,
}

/// Marks a field that is present in the JSON, `null` included, as `Some`.
fn present<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<Option<String>>, D::Error> {
    Option::<String>::deserialize(deserializer).map(Some)
}

/// Checks that `agent_id` names an agent in force in the engine, which
/// includes the agents added through the administration API.
async fn check_agent_exists(state: &ApiState, agent_id: &str) -> Result<(), Problem> {
    let live = state
        .calls
        .live
        .as_ref()
        .ok_or_else(super::live::engine_problem)?;
    let agents = live
        .agents()
        .await
        .map_err(|_| super::live::engine_problem())?;
    if agents.iter().any(|agent| agent.id == agent_id) {
        return Ok(());
    }
    Err(Problem::bad_request(format!(
        "agent_id {agent_id:?} is not a configured agent; GET /api/agents lists them"
    )))
}

fn path_id(id: Result<UrlPath<i64>, PathRejection>) -> Result<i64, Problem> {
    id.map(|UrlPath(id)| id)
        .map_err(|rejection| Problem::bad_request(rejection.body_text()))
}

pub(super) async fn audit(
    state: &ApiState,
    user: &Authenticated,
    action: &str,
    target: String,
    now: OffsetDateTime,
) -> Result<(), Problem> {
    let remote = user.remote_address();
    let entry = NewAuditEntry {
        user: &user.caller.user,
        action,
        target: Some(&target),
        remote_address: remote.as_deref(),
    };
    state
        .accounts
        .append_audit(entry, now)
        .await
        .map(drop)
        .map_err(Problem::accounts)
}

pub(crate) async fn list_users(
    State(state): State<ApiState>,
    user: Authenticated,
) -> Result<Json<Vec<User>>, Problem> {
    user.require(&ADMINISTRATOR, "list users")?;
    let users = state
        .accounts
        .list_users()
        .await
        .map_err(Problem::accounts)?;
    Ok(Json(users))
}

pub(crate) async fn create_user(
    State(state): State<ApiState>,
    user: Authenticated,
    body: Result<JsonBody<CreateUserRequest>, Problem>,
) -> Result<Response, Problem> {
    user.require(&ADMINISTRATOR, "create users")?;
    let JsonBody(request) = body?;
    // Other roles with an agent_id get the store's error instead.
    if request.role == Role::Agent
        && let Some(agent_id) = &request.agent_id
    {
        check_agent_exists(&state, agent_id).await?;
    }
    let new = NewUser {
        username: request.username,
        password: request.password,
        role: request.role,
        agent_id: request.agent_id,
    };
    let now = state.now();
    let created = state
        .accounts
        .create_user(&new, now)
        .await
        .map_err(Problem::accounts)?;
    audit(
        &state,
        &user,
        "user.create",
        format!("user:{}", created.id),
        now,
    )
    .await?;
    Ok((StatusCode::CREATED, Json(created)).into_response())
}

pub(crate) async fn get_user(
    State(state): State<ApiState>,
    user: Authenticated,
    id: Result<UrlPath<i64>, PathRejection>,
) -> Result<Json<User>, Problem> {
    user.require(&ADMINISTRATOR, "read users")?;
    let id = path_id(id)?;
    let found = state.accounts.user(id).await.map_err(Problem::accounts)?;
    found
        .map(Json)
        .ok_or_else(|| Problem::not_found(format!("user {id} not found")))
}

pub(crate) async fn update_user(
    State(state): State<ApiState>,
    user: Authenticated,
    id: Result<UrlPath<i64>, PathRejection>,
    body: Result<JsonBody<UpdateUserRequest>, Problem>,
) -> Result<Json<User>, Problem> {
    user.require(&ADMINISTRATOR, "change users")?;
    let id = path_id(id)?;
    let JsonBody(request) = body?;
    if let Some(Some(agent_id)) = &request.agent_id {
        let role = match request.role {
            Some(role) => Some(role),
            None => state
                .accounts
                .user(id)
                .await
                .map_err(Problem::accounts)?
                .map(|found| found.role),
        };
        // An unknown user or another role gets the store's error instead.
        if role == Some(Role::Agent) {
            check_agent_exists(&state, agent_id).await?;
        }
    }
    let changes = UserChanges {
        role: request.role,
        agent_id: request.agent_id,
        disabled: request.disabled,
    };
    let updated = state
        .accounts
        .update_user(id, &changes)
        .await
        .map_err(Problem::accounts)?;
    audit(
        &state,
        &user,
        "user.update",
        format!("user:{id}"),
        state.now(),
    )
    .await?;
    Ok(Json(updated))
}

pub(crate) async fn set_password(
    State(state): State<ApiState>,
    user: Authenticated,
    id: Result<UrlPath<i64>, PathRejection>,
    body: Result<JsonBody<PasswordRequest>, Problem>,
) -> Result<StatusCode, Problem> {
    user.require(&ADMINISTRATOR, "reset passwords")?;
    let id = path_id(id)?;
    let JsonBody(request) = body?;
    state
        .accounts
        .set_password(id, &request.password)
        .await
        .map_err(Problem::accounts)?;
    let target = format!("user:{id}");
    audit(&state, &user, "user.password_reset", target, state.now()).await?;
    Ok(StatusCode::NO_CONTENT)
}

pub(crate) async fn list_tokens(
    State(state): State<ApiState>,
    user: Authenticated,
) -> Result<Json<Vec<ApiToken>>, Problem> {
    user.require(&ADMINISTRATOR, "list API tokens")?;
    let tokens = state
        .accounts
        .list_api_tokens()
        .await
        .map_err(Problem::accounts)?;
    Ok(Json(tokens))
}

pub(crate) async fn create_token(
    State(state): State<ApiState>,
    user: Authenticated,
    body: Result<JsonBody<CreateTokenRequest>, Problem>,
) -> Result<Response, Problem> {
    user.require(&ADMINISTRATOR, "create API tokens")?;
    let JsonBody(request) = body?;
    let now = state.now();
    let created = state
        .accounts
        .create_api_token(request.user_id, &request.name, user.caller.user.id, now)
        .await
        .map_err(Problem::accounts)?;
    let target = format!("token:{}", created.info.id);
    audit(&state, &user, "token.create", target, now).await?;
    let reply = CreatedToken {
        token: created.token,
        info: created.info,
    };
    Ok((StatusCode::CREATED, Json(reply)).into_response())
}

pub(crate) async fn revoke_token(
    State(state): State<ApiState>,
    user: Authenticated,
    id: Result<UrlPath<i64>, PathRejection>,
) -> Result<StatusCode, Problem> {
    user.require(&ADMINISTRATOR, "revoke API tokens")?;
    let id = path_id(id)?;
    let existed = state
        .accounts
        .revoke_api_token(id)
        .await
        .map_err(Problem::accounts)?;
    if !existed {
        return Err(Problem::not_found(format!("API token {id} not found")));
    }
    audit(
        &state,
        &user,
        "token.revoke",
        format!("token:{id}"),
        state.now(),
    )
    .await?;
    Ok(StatusCode::NO_CONTENT)
}

pub(crate) async fn list_audit(
    State(state): State<ApiState>,
    user: Authenticated,
    query: Result<Query<AuditQuery>, QueryRejection>,
) -> Result<Json<Vec<AuditEntry>>, Problem> {
    user.require(&AUDIT_READERS, "read the audit log")?;
    let Query(query) = query.map_err(|rejection| Problem::bad_request(rejection.body_text()))?;
    let limit = parse_limit(
        query.limit.as_deref(),
        DEFAULT_AUDIT_LIMIT,
        accounts::MAX_AUDIT_PAGE,
    )?;
    let offset = parse_parameter("offset", query.offset.as_deref(), 0)?;
    let entries = state
        .accounts
        .list_audit(limit, offset)
        .await
        .map_err(Problem::accounts)?;
    Ok(Json(entries))
}
