//! Call records and their recordings, filtered by the caller's role.

use std::path::{Component, Path, PathBuf};

use accounts::{NewAuditEntry, Role};
use axum::Json;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path as UrlPath, Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use cdr::{CallFilter, CallRecord, MAX_LIST_LIMIT};
use serde::Deserialize;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use super::auth::Authenticated;
use super::{ApiState, Problem, parse_limit, parse_parameter};
use crate::catalogue::RecordingStatus;

/// Page size of `GET /api/calls` when the request gives no `limit`.
const DEFAULT_LIST_LIMIT: u32 = 50;

/// Longest `request_type` search value, in characters. The value is
/// compared for equality only, so this bounds the work of a request.
// NOTE: the configuration does not limit `[[dids]] request_type`, so a
// longer configured name can be stored but not searched for.
const MAX_REQUEST_TYPE_CHARS: usize = 200;

/// Roles that see every call; an agent sees only the calls it answered.
const ALL_CALLS: [Role; 3] = [Role::Administrator, Role::Supervisor, Role::Qa];

/// Roles that may replay recordings.
const REPLAY: [Role; 2] = [Role::Supervisor, Role::Qa];

/// Audit log action of a recording served to a user.
pub(crate) const REPLAY_ACTION: &str = "recording.replay";

/// Query of `GET /api/calls`, kept as text so invalid values get a
/// problem details response that names the parameter.
#[derive(Debug, Deserialize)]
pub(crate) struct ListQuery {
    limit: Option<String>,
    offset: Option<String>,
    disposition: Option<String>,
    from: Option<String>,
    to: Option<String>,
    queue: Option<String>,
    agent: Option<String>,
    caller: Option<String>,
    request_type: Option<String>,
    min_talk_seconds: Option<String>,
    max_talk_seconds: Option<String>,
    min_csat: Option<String>,
    max_csat: Option<String>,
}

pub(crate) async fn list_calls(
    State(state): State<ApiState>,
    user: Authenticated,
    query: Result<Query<ListQuery>, QueryRejection>,
) -> Result<Json<Vec<CallRecord>>, Problem> {
    let Query(query) = query.map_err(|rejection| Problem::bad_request(rejection.body_text()))?;
    let limit = parse_limit(query.limit.as_deref(), DEFAULT_LIST_LIMIT, MAX_LIST_LIMIT)?;
    let offset = parse_parameter("offset", query.offset.as_deref(), 0)?;
    let mut filter = call_filter(&query)?;
    if let Some(own) = visible_agent(&user)? {
        // An agent asking for another agent's calls sees none of them.
        if filter.agent.as_deref().is_some_and(|asked| asked != own) {
            return Ok(Json(Vec::new()));
        }
        filter.agent = Some(own.to_owned());
    }
    state
        .calls
        .cdr
        .search(&filter, limit, offset)
        .await
        .map(Json)
        .map_err(|error| Problem::store_failure(&error))
}

/// Checks the search conditions of a `GET /api/calls` query.
fn call_filter(query: &ListQuery) -> Result<CallFilter, Problem> {
    let disposition = match query.disposition.as_deref() {
        None => None,
        Some(name) => Some(cdr::Disposition::from_name(name).ok_or_else(|| {
            Problem::bad_request(format!(
                "disposition must be answered, abandoned, no_agent, failed, voicemail or callback, got {name:?}"
            ))
        })?),
    };
    let from = time_parameter("from", query.from.as_deref())?;
    let to = time_parameter("to", query.to.as_deref())?;
    if let (Some(from), Some(to)) = (from, to)
        && to <= from
    {
        return Err(Problem::bad_request(
            "to must be later than from".to_owned(),
        ));
    }
    let min_talk_seconds =
        seconds_parameter("min_talk_seconds", query.min_talk_seconds.as_deref())?;
    let max_talk_seconds =
        seconds_parameter("max_talk_seconds", query.max_talk_seconds.as_deref())?;
    if let (Some(min), Some(max)) = (min_talk_seconds, max_talk_seconds)
        && max < min
    {
        return Err(Problem::bad_request(format!(
            "max_talk_seconds ({max}) is less than min_talk_seconds ({min})"
        )));
    }
    let min_csat = csat_parameter("min_csat", query.min_csat.as_deref())?;
    let max_csat = csat_parameter("max_csat", query.max_csat.as_deref())?;
    if let (Some(min), Some(max)) = (min_csat, max_csat)
        && max < min
    {
        return Err(Problem::bad_request(format!(
            "max_csat ({max}) is less than min_csat ({min})"
        )));
    }
    Ok(CallFilter {
        disposition,
        from,
        to,
        queue: text_parameter(query.queue.as_deref()),
        agent: text_parameter(query.agent.as_deref()),
        caller: text_parameter(query.caller.as_deref()),
        request_type: request_type_parameter(query.request_type.as_deref())?,
        min_talk_seconds,
        max_talk_seconds,
        min_csat,
        max_csat,
    })
}

/// Checks a request type to match exactly: at most
/// [`MAX_REQUEST_TYPE_CHARS`] characters without control characters, or
/// nothing for an empty value. Surrounding spaces are trimmed.
fn request_type_parameter(value: Option<&str>) -> Result<Option<String>, Problem> {
    let Some(text) = text_parameter(value) else {
        return Ok(None);
    };
    let length = text.chars().count();
    if length > MAX_REQUEST_TYPE_CHARS {
        return Err(Problem::bad_request(format!(
            "request_type must be at most {MAX_REQUEST_TYPE_CHARS} characters, got {length}"
        )));
    }
    if text.chars().any(char::is_control) {
        return Err(Problem::bad_request(format!(
            "request_type must not contain control characters, got {text:?}"
        )));
    }
    Ok(Some(text))
}

/// Parses a survey score bound: a whole number from 1 to 5, or nothing
/// for an empty value.
fn csat_parameter(name: &str, value: Option<&str>) -> Result<Option<u8>, Problem> {
    let Some(text) = value.map(str::trim).filter(|text| !text.is_empty()) else {
        return Ok(None);
    };
    match text.parse::<u8>() {
        Ok(score @ 1..=5) => Ok(Some(score)),
        _ => Err(Problem::bad_request(format!(
            "{name} must be a survey score from 1 to 5, got {text:?}"
        ))),
    }
}

/// Returns the trimmed text of a parameter. An empty value, as an empty
/// search form field sends it, sets no condition.
pub(super) fn text_parameter(value: Option<&str>) -> Option<String> {
    value
        .map(str::trim)
        .filter(|text| !text.is_empty())
        .map(str::to_owned)
}

fn time_parameter(name: &str, value: Option<&str>) -> Result<Option<OffsetDateTime>, Problem> {
    let Some(text) = value.map(str::trim).filter(|text| !text.is_empty()) else {
        return Ok(None);
    };
    OffsetDateTime::parse(text, &Rfc3339)
        .map(Some)
        .map_err(|_| {
            // A `+` of an offset arrives as a space unless the client encoded it.
            let hint = if text.contains(' ') {
                "; write the + of an offset as %2B"
            } else {
                ""
            };
            Problem::bad_request(format!(
                "{name} must be an RFC 3339 time such as 2027-01-15T08:00:00Z, got {text:?}{hint}"
            ))
        })
}

fn seconds_parameter(name: &str, value: Option<&str>) -> Result<Option<f64>, Problem> {
    let Some(text) = value.map(str::trim).filter(|text| !text.is_empty()) else {
        return Ok(None);
    };
    match text.parse::<f64>() {
        Ok(seconds) if seconds.is_finite() && seconds >= 0.0 => Ok(Some(seconds)),
        _ => Err(Problem::bad_request(format!(
            "{name} must be a number of seconds from 0, got {text:?}"
        ))),
    }
}

pub(crate) async fn get_call(
    State(state): State<ApiState>,
    user: Authenticated,
    UrlPath(id): UrlPath<String>,
) -> Result<Json<CallRecord>, Problem> {
    find_call(&state, &user, &id).await.map(Json)
}

/// The stored queue events of one call, oldest first, for its timeline:
/// entering the queue, steps, each offer and its outcome, the answer and
/// the end. An agent sees its own call, without other agents' offers.
pub(crate) async fn call_events(
    State(state): State<ApiState>,
    user: Authenticated,
    UrlPath(id): UrlPath<String>,
) -> Result<Json<Vec<serde_json::Value>>, Problem> {
    find_call(&state, &user, &id).await?;
    let own = visible_agent(&user)?;
    let store = crate::events::EventStore::on(state.calls.cdr.pool().clone());
    let events = store.call_events(&id).await.map_err(|error| {
        tracing::error!(call = %id, %error, "reading a call's events failed");
        Problem::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "the queue events could not be read",
        )
    })?;
    let visible = events
        .iter()
        .filter(|event| match (own, event.agent.as_deref()) {
            (Some(own), Some(agent)) => agent == own,
            _ => true,
        })
        .map(crate::events::StoredEvent::to_json)
        .collect();
    Ok(Json(visible))
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
pub(super) fn visible_agent(user: &Authenticated) -> Result<Option<&str>, Problem> {
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
pub(super) async fn find_call(
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
