//! Call records and their recordings, filtered by the caller's role.

use std::path::{Component, Path, PathBuf};

use accounts::{NewAuditEntry, Role};
use axum::Json;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path as UrlPath, Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use cdr::{CallRecord, MAX_LIST_LIMIT};
use serde::Deserialize;

use super::auth::Authenticated;
use super::{ApiState, Problem, parse_parameter};
use crate::catalogue::RecordingStatus;

/// Page size of `GET /api/calls` when the request gives no `limit`.
const DEFAULT_LIST_LIMIT: u32 = 50;

/// Roles that see every call; an agent sees only the calls it answered.
const ALL_CALLS: [Role; 3] = [Role::Administrator, Role::Supervisor, Role::Qa];

/// Roles that may replay recordings.
const REPLAY: [Role; 2] = [Role::Supervisor, Role::Qa];

/// Audit log action of a recording served to a user.
pub(crate) const REPLAY_ACTION: &str = "recording.replay";

/// Query of `GET /api/calls`, kept as text so invalid numbers get a
/// problem details response that names the parameter.
#[derive(Debug, Deserialize)]
pub(crate) struct ListQuery {
    limit: Option<String>,
    offset: Option<String>,
    disposition: Option<String>,
}

pub(crate) async fn list_calls(
    State(state): State<ApiState>,
    user: Authenticated,
    query: Result<Query<ListQuery>, QueryRejection>,
) -> Result<Json<Vec<CallRecord>>, Problem> {
    let Query(query) = query.map_err(|rejection| Problem::bad_request(rejection.body_text()))?;
    let limit = parse_parameter("limit", query.limit.as_deref(), DEFAULT_LIST_LIMIT)?;
    if !(1..=MAX_LIST_LIMIT).contains(&limit) {
        let detail = format!("limit must be between 1 and {MAX_LIST_LIMIT}, got {limit}");
        return Err(Problem::bad_request(detail));
    }
    let offset = parse_parameter("offset", query.offset.as_deref(), 0)?;
    let disposition = match query.disposition.as_deref() {
        None => None,
        Some(name) => Some(cdr::Disposition::from_name(name).ok_or_else(|| {
            Problem::bad_request(format!(
                "disposition must be answered, abandoned, no_agent, failed, voicemail or callback, got {name:?}"
            ))
        })?),
    };
    let records = match visible_agent(&user)? {
        None => state.calls.cdr.list_with(limit, offset, disposition).await,
        Some(agent) => list_agent_calls(&state, agent, limit, offset, disposition).await,
    };
    records
        .map(Json)
        .map_err(|error| Problem::store_failure(&error))
}

pub(crate) async fn get_call(
    State(state): State<ApiState>,
    user: Authenticated,
    UrlPath(id): UrlPath<String>,
) -> Result<Json<CallRecord>, Problem> {
    find_call(&state, &user, &id).await.map(Json)
}

pub(crate) async fn get_recording(
    State(state): State<ApiState>,
    user: Authenticated,
    UrlPath(id): UrlPath<String>,
) -> Result<Response, Problem> {
    user.require(&REPLAY, "replay recordings")?;
    let record = find_call(&state, &user, &id).await?;
    refuse_deleted(&state, &id).await?;
    let bytes = read_recording(&state, &record).await?;
    // The entry is written before the bytes leave, so no replay goes
    // unrecorded; when the audit log cannot be written the replay fails.
    let remote = user.remote_address();
    let entry = NewAuditEntry {
        user: &user.caller.user,
        action: REPLAY_ACTION,
        target: Some(&id),
        remote_address: remote.as_deref(),
    };
    state
        .accounts
        .append_audit(entry, state.now())
        .await
        .map_err(Problem::accounts)?;
    tracing::info!(call = %id, user = %user.caller.user.username, "recording replayed");
    Ok(([(header::CONTENT_TYPE, "audio/wav")], bytes).into_response())
}

/// Answers 410 Gone for a recording that retention deleted, so a client
/// can tell it from one that is missing. The CDR keeps its path. A
/// catalogue that cannot be read does not stop the replay; the file
/// decides.
async fn refuse_deleted(state: &ApiState, id: &str) -> Result<(), Problem> {
    let entry = match super::recordings::catalogue(state).get(id).await {
        Ok(entry) => entry,
        Err(error) => {
            tracing::error!(call = %id, %error, "recording catalogue query failed");
            return Ok(());
        }
    };
    let Some(entry) = entry.filter(|entry| entry.status == RecordingStatus::Deleted) else {
        return Ok(());
    };
    let on = entry
        .deleted_at
        .map(|at| at.date().to_string())
        .unwrap_or_else(|| "an unknown date".to_owned());
    let why = match entry.deletion_reason.as_deref() {
        Some(reason) if reason.starts_with("retention") => "by retention".to_owned(),
        Some(reason) => format!("({reason})"),
        None => "by retention".to_owned(),
    };
    Err(Problem::new(
        StatusCode::GONE,
        format!("the recording of call {id:?} was deleted {why} on {on}"),
    ))
}

/// Returns the agent id whose calls the caller may see, or `None` when it
/// sees every call.
fn visible_agent(user: &Authenticated) -> Result<Option<&str>, Problem> {
    let caller = &user.caller.user;
    if ALL_CALLS.contains(&caller.role) {
        return Ok(None);
    }
    // The accounts store requires an agent id for role agent, so a missing
    // one means the row was edited by hand. Such a user gets 403, not all calls.
    caller.agent_id.as_deref().map(Some).ok_or_else(|| {
        Problem::new(
            StatusCode::FORBIDDEN,
            format!("user {:?} has no agent_id", caller.username),
        )
    })
}

/// Returns the record `id` when it exists and the caller may see it. A call
/// of another agent is reported as not found, so agents cannot probe ids.
async fn find_call(
    state: &ApiState,
    user: &Authenticated,
    id: &str,
) -> Result<CallRecord, Problem> {
    let not_found = || Problem::not_found(format!("call {id:?} not found"));
    let record = state
        .calls
        .cdr
        .get(id)
        .await
        .map_err(|error| Problem::store_failure(&error))?
        .ok_or_else(not_found)?;
    match visible_agent(user)? {
        Some(agent) if record.agent.as_deref() != Some(agent) => Err(not_found()),
        _ => Ok(record),
    }
}

/// Returns the calls that `agent` answered, newest first, in the order and
/// paging of `CdrStore::list`.
// TODO: move this query into `cdr::CdrStore` (for example `list_by_agent`)
// so the CDR schema is read in one crate only; it reads ids here and loads
// each record through the store.
async fn list_agent_calls(
    state: &ApiState,
    agent: &str,
    limit: u32,
    offset: u32,
    disposition: Option<cdr::Disposition>,
) -> Result<Vec<CallRecord>, cdr::CdrError> {
    let ids: Vec<String> = sqlx::query_scalar(
        "SELECT id FROM call_records WHERE agent = ? AND (? IS NULL OR disposition = ?) \
         ORDER BY arrived_at_ms DESC, rowid DESC LIMIT ? OFFSET ?",
    )
    .bind(agent)
    .bind(disposition.map(cdr::Disposition::as_str))
    .bind(disposition.map(cdr::Disposition::as_str))
    .bind(i64::from(limit))
    .bind(i64::from(offset))
    .fetch_all(state.calls.cdr.pool())
    .await
    .map_err(cdr::CdrError::Query)?;
    let mut records = Vec::with_capacity(ids.len());
    for id in ids {
        // A record is never deleted, so every id read above still exists.
        if let Some(record) = state.calls.cdr.get(&id).await? {
            records.push(record);
        }
    }
    Ok(records)
}

async fn read_recording(state: &ApiState, record: &CallRecord) -> Result<Vec<u8>, Problem> {
    let id = &record.id;
    let Some(relative) = record.recording_path.as_deref() else {
        return Err(Problem::not_found(format!("call {id:?} has no recording")));
    };
    let missing = || Problem::not_found(format!("recording of call {id:?} not found"));
    let Some(path) = resolve_inside(&state.calls.data_dir, relative).await else {
        tracing::warn!(call = %id, path = relative, "recording path is outside the data directory");
        return Err(missing());
    };
    match tokio::fs::read(&path).await {
        Ok(bytes) => Ok(bytes),
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => Err(missing()),
        Err(error) => {
            tracing::error!(call = %id, path = %path.display(), %error, "failed to read recording");
            let detail = format!("failed to read the recording of call {id:?}");
            Err(Problem::new(StatusCode::INTERNAL_SERVER_ERROR, detail))
        }
    }
}

/// Joins `relative` to `data_dir` when it stays inside: only plain names
/// (no `..`, root or drive prefix), and after resolving symbolic links the
/// file must still be under the resolved `data_dir`. Returns `None` for an
/// escaping path, and the joined path when the file does not exist, so
/// the caller reports it as missing.
async fn resolve_inside(data_dir: &Path, relative: &str) -> Option<PathBuf> {
    let relative = Path::new(relative);
    let plain = relative
        .components()
        .all(|component| matches!(component, Component::Normal(_) | Component::CurDir));
    if !plain || relative.as_os_str().is_empty() {
        return None;
    }
    let joined = data_dir.join(relative);
    let (Ok(root), Ok(file)) = (
        tokio::fs::canonicalize(data_dir).await,
        tokio::fs::canonicalize(&joined).await,
    ) else {
        return Some(joined);
    };
    file.starts_with(&root).then_some(file)
}
