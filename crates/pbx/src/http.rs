//! HTTP API: health check, call records and their recordings.
//!
//! Errors are RFC 9457 problem details (`application/problem+json` with
//! `type`, `title`, `status` and `detail`). The API has no authentication,
//! which is why the default configuration listens on loopback only.

use std::path::{Component, Path, PathBuf};

use axum::Json;
use axum::Router;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path as UrlPath, Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use cdr::{CallRecord, CdrStore, MAX_LIST_LIMIT};
use serde::{Deserialize, Serialize};

/// Page size of `GET /api/calls` when the request gives no `limit`.
const DEFAULT_LIST_LIMIT: u32 = 50;

#[derive(Clone)]
pub(crate) struct HttpState {
    pub(crate) cdr: CdrStore,
    /// Folder that `CallRecord::recording_path` is relative to.
    pub(crate) data_dir: PathBuf,
}

pub(crate) fn router(state: HttpState) -> Router {
    Router::new()
        .route("/health", get(health))
        .route("/api/calls", get(list_calls))
        .route("/api/calls/{id}", get(get_call))
        .route("/api/calls/{id}/recording", get(get_recording))
        .with_state(state)
}

/// An RFC 9457 problem details body.
#[derive(Debug, Serialize)]
struct Problem {
    /// `about:blank`, because the status code carries all a client can act on.
    #[serde(rename = "type")]
    kind: &'static str,
    title: &'static str,
    status: u16,
    detail: String,
}

impl Problem {
    fn new(status: StatusCode, detail: impl Into<String>) -> Problem {
        Problem {
            kind: "about:blank",
            // RFC 9457 section 4.2.1: with about:blank the title is the
            // status code's reason phrase.
            title: status.canonical_reason().unwrap_or("Error"),
            status: status.as_u16(),
            detail: detail.into(),
        }
    }

    fn store_failure(error: &cdr::CdrError) -> Problem {
        tracing::error!(%error, "call record query failed");
        Problem::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "failed to read call records",
        )
    }
}

impl IntoResponse for Problem {
    fn into_response(self) -> Response {
        let status = StatusCode::from_u16(self.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let body = serde_json::to_vec(&self).unwrap_or_default();
        (
            status,
            [(header::CONTENT_TYPE, "application/problem+json")],
            body,
        )
            .into_response()
    }
}

async fn health() -> Json<serde_json::Value> {
    Json(serde_json::json!({ "status": "ok" }))
}

/// Query of `GET /api/calls`, kept as text so invalid numbers get a
/// problem details response that names the parameter.
#[derive(Debug, Deserialize)]
struct ListQuery {
    limit: Option<String>,
    offset: Option<String>,
}

async fn list_calls(
    State(state): State<HttpState>,
    query: Result<Query<ListQuery>, QueryRejection>,
) -> Result<Json<Vec<CallRecord>>, Problem> {
    let Query(query) =
        query.map_err(|rejection| Problem::new(StatusCode::BAD_REQUEST, rejection.body_text()))?;
    let limit = parse_parameter("limit", query.limit.as_deref(), DEFAULT_LIST_LIMIT)?;
    if !(1..=MAX_LIST_LIMIT).contains(&limit) {
        let detail = format!("limit must be between 1 and {MAX_LIST_LIMIT}, got {limit}");
        return Err(Problem::new(StatusCode::BAD_REQUEST, detail));
    }
    let offset = parse_parameter("offset", query.offset.as_deref(), 0)?;
    let records = state
        .cdr
        .list(limit, offset)
        .await
        .map_err(|error| Problem::store_failure(&error))?;
    Ok(Json(records))
}

fn parse_parameter(name: &str, value: Option<&str>, default: u32) -> Result<u32, Problem> {
    match value {
        None => Ok(default),
        Some(text) => text.parse().map_err(|_| {
            let detail = format!(
                "{name} must be a whole number from 0 to {}, got {text:?}",
                u32::MAX
            );
            Problem::new(StatusCode::BAD_REQUEST, detail)
        }),
    }
}

async fn get_call(
    State(state): State<HttpState>,
    UrlPath(id): UrlPath<String>,
) -> Result<Json<CallRecord>, Problem> {
    find_call(&state, &id).await.map(Json)
}

async fn find_call(state: &HttpState, id: &str) -> Result<CallRecord, Problem> {
    match state.cdr.get(id).await {
        Ok(Some(record)) => Ok(record),
        Ok(None) => Err(Problem::new(
            StatusCode::NOT_FOUND,
            format!("call {id:?} not found"),
        )),
        Err(error) => Err(Problem::store_failure(&error)),
    }
}

async fn get_recording(
    State(state): State<HttpState>,
    UrlPath(id): UrlPath<String>,
) -> Result<Response, Problem> {
    let record = find_call(&state, &id).await?;
    let not_found = |detail: String| Problem::new(StatusCode::NOT_FOUND, detail);
    let Some(relative) = record.recording_path.as_deref() else {
        return Err(not_found(format!("call {id:?} has no recording")));
    };
    let Some(path) = resolve_inside(&state.data_dir, relative).await else {
        tracing::warn!(call = %id, path = relative, "recording path is outside the data directory");
        return Err(not_found(format!("recording of call {id:?} not found")));
    };
    match tokio::fs::read(&path).await {
        Ok(bytes) => Ok(([(header::CONTENT_TYPE, "audio/wav")], bytes).into_response()),
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
            Err(not_found(format!("recording of call {id:?} not found")))
        }
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

#[cfg(test)]
mod tests;
