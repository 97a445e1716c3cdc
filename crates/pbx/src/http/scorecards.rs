//! QA scorecards of calls: the criteria in force, saving a scorecard,
//! the scorecards of one call and the search of scored calls by total.

use accounts::Role;
use axum::Json;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path as UrlPath, Query, State};
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};

use super::auth::Authenticated;
use super::calls::{find_call, text_parameter, visible_agent};
use super::{ApiState, JsonBody, Problem, parse_limit, parse_parameter};
use crate::scorecards::{
    GradeError, MAX_SEARCH_LIMIT, Scorecard, ScorecardFilter, ScorecardStore, ScorecardStoreError,
    Submission, grade,
};

/// Roles that score calls. Agents read the scorecards of their own calls.
const SCORERS: [Role; 3] = [Role::Administrator, Role::Supervisor, Role::Qa];

/// Audit log action of a saved scorecard, whose target is the call id.
pub(crate) const SAVE_ACTION: &str = "scorecard.save";

/// Page size of `GET /api/scorecards` when the request gives no `limit`.
const DEFAULT_SEARCH_LIMIT: u32 = 50;

/// Reply of `GET /api/scorecards/criteria`.
#[derive(Debug, Serialize)]
pub(crate) struct CriteriaReply {
    max_score: u32,
    criteria: Vec<CriterionView>,
}

#[derive(Debug, Serialize)]
struct CriterionView {
    id: String,
    label: String,
    weight: u32,
}

/// Query of `GET /api/scorecards`, kept as text so that a bad value gets a
/// problem that names the parameter.
#[derive(Debug, Deserialize)]
pub(crate) struct SearchQuery {
    min_total: Option<String>,
    max_total: Option<String>,
    agent: Option<String>,
    reviewer: Option<String>,
    limit: Option<String>,
    offset: Option<String>,
}

/// Returns the criteria that a new scorecard is checked against.
pub(crate) async fn criteria(
    State(state): State<ApiState>,
    _user: Authenticated,
) -> Result<Json<CriteriaReply>, Problem> {
    let qa = qa_config(&state).await?;
    let criteria = qa
        .criteria
        .into_iter()
        .map(|criterion| CriterionView {
            id: criterion.id,
            label: criterion.label,
            weight: criterion.weight,
        })
        .collect();
    Ok(Json(CriteriaReply {
        max_score: qa.max_score,
        criteria,
    }))
}

/// Returns the scorecards of one call, oldest first. An agent gets those
/// of its own calls only.
pub(crate) async fn list_for_call(
    State(state): State<ApiState>,
    user: Authenticated,
    UrlPath(id): UrlPath<String>,
) -> Result<Json<Vec<Scorecard>>, Problem> {
    find_call(&state, &user, &id).await?;
    store(&state)
        .of_call(&id)
        .await
        .map(Json)
        .map_err(|error| store_failure(&error, &id))
}

/// Saves a scorecard of the call with the caller as its reviewer.
pub(crate) async fn save(
    State(state): State<ApiState>,
    user: Authenticated,
    UrlPath(id): UrlPath<String>,
    body: Result<JsonBody<Submission>, Problem>,
) -> Result<(StatusCode, Json<Scorecard>), Problem> {
    user.require(&SCORERS, "score calls")?;
    let JsonBody(submission) = body?;
    let record = find_call(&state, &user, &id).await?;
    if record.agent.is_none() {
        // A scorecard rates an agent's handling of a call.
        return Err(Problem::new(
            StatusCode::CONFLICT,
            format!("call {id} was not answered by an agent, so it has nothing to score"),
        ));
    }
    let qa = qa_config(&state).await?;
    let graded = grade(&qa, submission).map_err(|error| match error {
        GradeError::NoCriteria => Problem::new(StatusCode::CONFLICT, error.to_string()),
        _ => Problem::bad_request(error.to_string()),
    })?;
    let now = state.now();
    // The entry is written first, so no saved scorecard lacks one. When the
    // audit log cannot be written, nothing is saved.
    super::admin::audit(&state, &user, SAVE_ACTION, id.clone(), now).await?;
    let reviewer = &user.caller.user;
    let scorecard = store(&state)
        .save(&id, record.agent.as_deref(), reviewer, graded, now)
        .await
        .map_err(|error| store_failure(&error, &id))?;
    tracing::info!(
        call = %id,
        reviewer = %reviewer.username,
        scorecard = scorecard.id,
        total_percent = scorecard.total_percent,
        "scorecard saved"
    );
    Ok((StatusCode::CREATED, Json(scorecard)))
}

/// Searches scorecards by total, newest first. An agent gets those of its
/// own calls only.
pub(crate) async fn search(
    State(state): State<ApiState>,
    user: Authenticated,
    query: Result<Query<SearchQuery>, QueryRejection>,
) -> Result<Json<Vec<Scorecard>>, Problem> {
    let Query(query) = query.map_err(|rejection| Problem::bad_request(rejection.body_text()))?;
    let limit = parse_limit(
        query.limit.as_deref(),
        DEFAULT_SEARCH_LIMIT,
        MAX_SEARCH_LIMIT,
    )?;
    let offset = parse_parameter("offset", query.offset.as_deref(), 0)?;
    let min_total = percent_parameter("min_total", query.min_total.as_deref())?;
    let max_total = percent_parameter("max_total", query.max_total.as_deref())?;
    if let (Some(min), Some(max)) = (min_total, max_total)
        && max < min
    {
        return Err(Problem::bad_request(format!(
            "max_total ({max}) is less than min_total ({min})"
        )));
    }
    let mut filter = ScorecardFilter {
        min_total,
        max_total,
        agent: text_parameter(query.agent.as_deref()),
        reviewer: text_parameter(query.reviewer.as_deref()),
    };
    if let Some(own) = visible_agent(&user)? {
        // An agent that requests another agent's scorecards gets none.
        if filter.agent.as_deref().is_some_and(|asked| asked != own) {
            return Ok(Json(Vec::new()));
        }
        filter.agent = Some(own.to_owned());
    }
    store(&state)
        .search(&filter, limit, offset)
        .await
        .map(Json)
        .map_err(|error| store_failure(&error, "search"))
}

fn percent_parameter(name: &str, value: Option<&str>) -> Result<Option<f64>, Problem> {
    let Some(text) = value.map(str::trim).filter(|text| !text.is_empty()) else {
        return Ok(None);
    };
    match text.parse::<f64>() {
        Ok(percent) if (0.0..=100.0).contains(&percent) => Ok(Some(percent)),
        _ => Err(Problem::bad_request(format!(
            "{name} must be a percentage from 0 to 100, got {text:?}"
        ))),
    }
}

async fn qa_config(state: &ApiState) -> Result<crate::config::QaConfig, Problem> {
    match &state.calls.reloader {
        Some(reloader) => Ok(reloader.qa().await),
        None => Err(Problem::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "the configuration is not available in this process",
        )),
    }
}

fn store(state: &ApiState) -> ScorecardStore {
    ScorecardStore::on(state.calls.cdr.pool().clone())
}

fn store_failure(error: &ScorecardStoreError, context: &str) -> Problem {
    tracing::error!(%error, context, "scorecard query failed");
    Problem::new(
        StatusCode::INTERNAL_SERVER_ERROR,
        "the scorecards could not be read or saved",
    )
}
