//! Reports computed from the stored queue events and call records: KPIs
//! per queue over a range, and rows per interval and per queue or agent,
//! as JSON or CSV.

use accounts::Role;
use axum::Json;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use super::auth::Authenticated;
use super::{ApiState, Problem};
use crate::kpi::QueueKpi;

/// Roles that see queue reports.
pub(super) const REPORTS: [Role; 3] = [Role::Administrator, Role::Supervisor, Role::Qa];

/// Maximum range of one report, so that one request cannot make the PBX
/// read years of events at once.
const MAX_RANGE_DAYS: i64 = 366;

/// Query of `GET /api/reports/queues`, kept as text so that a bad value
/// gets a problem that names the parameter.
#[derive(Debug, Deserialize)]
pub(crate) struct RangeQuery {
    from: Option<String>,
    to: Option<String>,
}

#[derive(Debug, Serialize)]
pub(crate) struct QueueReport {
    from: String,
    to: String,
    queues: Vec<QueueKpi>,
}

/// Per-queue KPIs of the calls that entered a queue in `[from, to)`.
pub(crate) async fn queue_report(
    State(state): State<ApiState>,
    user: Authenticated,
    query: Result<Query<RangeQuery>, QueryRejection>,
) -> Result<Json<QueueReport>, Problem> {
    user.require(&REPORTS, "read queue reports")?;
    let Query(query) = query.map_err(|rejection| Problem::bad_request(rejection.body_text()))?;
    let (from, to) = range(query.from.as_deref(), query.to.as_deref())?;
    let store = crate::events::EventStore::on(state.calls.cdr.pool().clone());
    let queues = crate::kpi::queue_report(&store, millis(from), millis(to))
        .await
        .map_err(|error| {
            tracing::error!(%error, "reading queue events failed");
            Problem::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "the queue events could not be read",
            )
        })?;
    Ok(Json(QueueReport {
        from: format_utc(from),
        to: format_utc(to),
        queues,
    }))
}

/// Checks the `from` and `to` parameters of a report.
pub(super) fn range(
    from: Option<&str>,
    to: Option<&str>,
) -> Result<(OffsetDateTime, OffsetDateTime), Problem> {
    let from = timestamp("from", from)?;
    let to = timestamp("to", to)?;
    check_range(from, to)
}

/// Checks that `[from, to)` is a range a report may cover.
pub(super) fn check_range(
    from: OffsetDateTime,
    to: OffsetDateTime,
) -> Result<(OffsetDateTime, OffsetDateTime), Problem> {
    if to <= from {
        return Err(Problem::bad_request(format!(
            "to must be later than from, got from={} and to={}",
            format_utc(from),
            format_utc(to)
        )));
    }
    if to - from > time::Duration::days(MAX_RANGE_DAYS) {
        return Err(Problem::bad_request(format!(
            "a report covers at most {MAX_RANGE_DAYS} days; ask for shorter ranges"
        )));
    }
    Ok((from, to))
}

pub(super) fn timestamp(name: &str, value: Option<&str>) -> Result<OffsetDateTime, Problem> {
    let text = value.ok_or_else(|| {
        Problem::bad_request(format!(
            "{name} is required, as an RFC 3339 time such as 2027-01-15T08:00:00Z"
        ))
    })?;
    OffsetDateTime::parse(text, &Rfc3339).map_err(|error| {
        // A `+` of an offset arrives as a space unless the client encoded it.
        let hint = if text.contains(' ') {
            "; write the + of an offset as %2B"
        } else {
            ""
        };
        Problem::bad_request(format!(
            "{name} must be an RFC 3339 time such as 2027-01-15T08:00:00Z, got {text:?}: {error}{hint}"
        ))
    })
}

pub(super) fn millis(at: OffsetDateTime) -> i64 {
    i64::try_from(at.unix_timestamp_nanos() / 1_000_000).unwrap_or(i64::MAX)
}

pub(super) fn format_utc(at: OffsetDateTime) -> String {
    at.to_offset(time::UtcOffset::UTC)
        .format(&Rfc3339)
        .unwrap_or_default()
}
