//! The recording catalogue for QA and supervisors: status, length, size
//! and SHA-256 of each recording, including those retention deleted.

use accounts::Role;
use axum::Json;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path as UrlPath, Query, State};
use axum::http::StatusCode;
use serde::Deserialize;

use super::auth::Authenticated;
use super::{ApiState, Problem, parse_limit, parse_parameter};
use crate::catalogue::{
    Catalogue, CatalogueError, MAX_CATALOGUE_PAGE, RecordingEntry, RecordingStatus,
};

/// Roles that read the catalogue: those that see every call. Agents do
/// not; their own calls' CDRs carry the recording's path and length.
const READERS: [Role; 3] = [Role::Administrator, Role::Supervisor, Role::Qa];

const DEFAULT_PAGE: u32 = 50;

#[derive(Debug, Deserialize)]
pub(crate) struct ListQuery {
    status: Option<String>,
    limit: Option<String>,
    offset: Option<String>,
}

pub(crate) async fn list_recordings(
    State(state): State<ApiState>,
    user: Authenticated,
    query: Result<Query<ListQuery>, QueryRejection>,
) -> Result<Json<Vec<RecordingEntry>>, Problem> {
    user.require(&READERS, "read the recording catalogue")?;
    let Query(query) = query.map_err(|rejection| Problem::bad_request(rejection.body_text()))?;
    let limit = parse_limit(query.limit.as_deref(), DEFAULT_PAGE, MAX_CATALOGUE_PAGE)?;
    let offset = parse_parameter("offset", query.offset.as_deref(), 0)?;
    let status = match query.status.as_deref() {
        None => None,
        Some(name) => Some(RecordingStatus::from_name(name).ok_or_else(|| {
            Problem::bad_request(format!(
                "status must be one of recording, complete, interrupted, deleted, got {name:?}"
            ))
        })?),
    };
    catalogue(&state)
        .list(status, limit, offset)
        .await
        .map(Json)
        .map_err(catalogue_failure)
}

pub(crate) async fn get_recording_entry(
    State(state): State<ApiState>,
    user: Authenticated,
    UrlPath(id): UrlPath<String>,
) -> Result<Json<RecordingEntry>, Problem> {
    user.require(&READERS, "read the recording catalogue")?;
    catalogue(&state)
        .get(&id)
        .await
        .map_err(catalogue_failure)?
        .map(Json)
        .ok_or_else(|| Problem::not_found(format!("no catalogued recording of call {id:?}")))
}

/// The catalogue on the API's database; the PBX created its table at start.
pub(crate) fn catalogue(state: &ApiState) -> Catalogue {
    Catalogue::new(state.calls.cdr.pool().clone())
}

fn catalogue_failure(error: CatalogueError) -> Problem {
    tracing::error!(%error, "recording catalogue query failed");
    Problem::new(
        StatusCode::INTERNAL_SERVER_ERROR,
        "failed to read the recording catalogue",
    )
}
