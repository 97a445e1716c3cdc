//! `GET /api/reports/intervals`: report rows per interval and per queue or
//! agent, as JSON or as CSV for spreadsheets.

use axum::Json;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use jiff::tz::TimeZone;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use super::auth::Authenticated;
use super::reports::{REPORTS, check_range, millis, timestamp};
use super::{ApiState, Problem};
use crate::kpi::{Calendar, Grouping, Interval, IntervalReport, ReportRequest};

/// Maximum number of intervals in one report: 31 days of 15-minute intervals.
pub(crate) const MAX_INTERVALS: i64 = 31 * 96;

/// Columns of the CSV export of queue rows, in order.
const QUEUE_COLUMNS: [&str; 26] = [
    "start",
    "end",
    "queue",
    "offered",
    "answered",
    "abandoned",
    "abandon_percent",
    "average_abandon_seconds",
    "timed_out",
    "exited_by_key",
    "exited_other",
    "unresolved",
    "average_speed_of_answer_seconds",
    "average_talk_seconds",
    "average_wrap_up_seconds",
    "average_handle_seconds",
    "service_level_20_percent",
    "service_level_30_percent",
    "longest_wait_seconds",
    "first_contact_calls",
    "first_contact_resolution_percent",
    "hold_seconds",
    "average_hold_seconds",
    "surveys_offered",
    "surveys_answered",
    "csat_percent",
];

/// Columns of the CSV export of agent rows, in order.
const AGENT_COLUMNS: [&str; 19] = [
    "start",
    "end",
    "agent",
    "offered",
    "answered",
    "average_speed_of_answer_seconds",
    "average_talk_seconds",
    "average_wrap_up_seconds",
    "average_handle_seconds",
    "first_contact_calls",
    "first_contact_resolution_percent",
    "occupancy_percent",
    "shifts",
    "calls_per_shift",
    "hold_seconds",
    "average_hold_seconds",
    "surveys_offered",
    "surveys_answered",
    "csat_percent",
];

/// Figures the report cannot give, with the reason. The API lists them so
/// that a client does not take a missing column for zero; every figure is
/// available now, and the list stays for the clients that read it.
const UNAVAILABLE: [(&str, &str); 0] = [];

#[derive(Debug, Deserialize)]
pub(crate) struct IntervalQuery {
    from: Option<String>,
    to: Option<String>,
    interval: Option<String>,
    by: Option<String>,
    format: Option<String>,
    tz: Option<String>,
}

#[derive(Debug, Serialize)]
struct Unavailable {
    figure: &'static str,
    reason: &'static str,
}

#[derive(Debug, Serialize)]
pub(crate) struct IntervalReply {
    from: String,
    to: String,
    interval: &'static str,
    by: &'static str,
    /// IANA name of the zone whose clock bounds the intervals.
    time_zone: String,
    first_contact_window_hours: u64,
    rows: Vec<Value>,
    unavailable: Vec<Unavailable>,
}

/// Returns the report rows of the requested range, as JSON or CSV.
pub(crate) async fn interval_report(
    State(state): State<ApiState>,
    user: Authenticated,
    headers: HeaderMap,
    query: Result<Query<IntervalQuery>, QueryRejection>,
) -> Result<Response, Problem> {
    user.require(&REPORTS, "read queue reports")?;
    let Query(query) = query.map_err(|rejection| Problem::bad_request(rejection.body_text()))?;
    let settings = report_settings(&state).await?;
    let time_zone = match query.tz.as_deref() {
        Some(name) => time_zone_parameter(name)?,
        None => settings.time_zone,
    };
    let from = local_or_rfc3339("from", query.from.as_deref(), &time_zone)?;
    let to = local_or_rfc3339("to", query.to.as_deref(), &time_zone)?;
    let (from, to) = check_range(from, to)?;
    let interval = interval_parameter(query.interval.as_deref())?;
    let grouping = grouping_parameter(query.by.as_deref())?;
    let csv = wants_csv(query.format.as_deref(), &headers)?;
    let calendar = Calendar {
        interval,
        time_zone,
    };
    let (from_ms, to_ms) = (millis(from), millis(to));
    let count = calendar.count(from_ms, to_ms, MAX_INTERVALS);
    if count > MAX_INTERVALS {
        return Err(Problem::bad_request(format!(
            "the range has more than {MAX_INTERVALS} intervals of {} and a report has at most \
             {MAX_INTERVALS}; ask for a longer interval or a shorter range",
            describe(interval)
        )));
    }

    let window = settings.first_contact_window;
    let request = ReportRequest {
        from_ms,
        to_ms,
        now_ms: millis(state.now()),
        calendar: calendar.clone(),
        grouping,
        first_contact_window_ms: i64::try_from(window.as_millis()).unwrap_or(i64::MAX),
    };
    let rows = read_rows(&state, request).await?;
    let (from_text, to_text) = (calendar.format(from_ms), calendar.format(to_ms));

    if csv {
        // The local date of the start, the first ten characters of RFC 3339.
        let name = format!(
            "report-{}-{}-{}.csv",
            grouping.as_str(),
            interval.as_str(),
            from_text.get(..10).unwrap_or_default()
        );
        return Ok(csv_response(&rows, grouping, &name));
    }
    let reply = IntervalReply {
        from: from_text,
        to: to_text,
        interval: interval.as_str(),
        by: grouping.as_str(),
        time_zone: time_zone_name(&calendar.time_zone),
        first_contact_window_hours: window.as_secs() / 3600,
        rows,
        unavailable: UNAVAILABLE
            .iter()
            .map(|&(figure, reason)| Unavailable { figure, reason })
            .collect(),
    };
    Ok(Json(reply).into_response())
}

async fn report_settings(state: &ApiState) -> Result<crate::config::ReportsConfig, Problem> {
    match &state.calls.reloader {
        Some(reloader) => Ok(reloader.reports().await),
        None => Err(Problem::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "the configuration is not available in this process",
        )),
    }
}

/// Parses `from` or `to`: an RFC 3339 time, or a local time without an
/// offset such as `2027-03-28T00:00`, read on the clock of `zone`. A local
/// time that the clocks skip or repeat takes the offset before the change.
fn local_or_rfc3339(
    name: &str,
    value: Option<&str>,
    zone: &TimeZone,
) -> Result<OffsetDateTime, Problem> {
    let Some(text) = value else {
        return timestamp(name, value);
    };
    // RFC 3339 first, because the civil parser would drop an offset.
    if let Ok(at) = OffsetDateTime::parse(text, &Rfc3339) {
        return Ok(at);
    }
    let Ok(local) = text.parse::<jiff::civil::DateTime>() else {
        return timestamp(name, value);
    };
    let zoned = zone
        .to_ambiguous_zoned(local)
        .compatible()
        .map_err(|_| Problem::bad_request(format!("{name} is out of range, got {text:?}")))?;
    OffsetDateTime::from_unix_timestamp_nanos(zoned.timestamp().as_nanosecond())
        .map_err(|_| Problem::bad_request(format!("{name} is out of range, got {text:?}")))
}

/// Parses the `tz` parameter, an IANA time zone name.
fn time_zone_parameter(name: &str) -> Result<TimeZone, Problem> {
    TimeZone::get(name).map_err(|_| {
        Problem::bad_request(format!(
            "tz must be an IANA time zone name such as Europe/Madrid or UTC, got {name:?}"
        ))
    })
}

/// Returns the IANA name of a zone from the database; every zone the
/// configuration and the `tz` parameter accept has one.
fn time_zone_name(zone: &TimeZone) -> String {
    zone.iana_name().unwrap_or("UTC").to_owned()
}

async fn read_rows(state: &ApiState, request: ReportRequest) -> Result<Vec<Value>, Problem> {
    let events = crate::events::EventStore::on(state.calls.cdr.pool().clone());
    let (from_ms, to_ms, grouping) = (request.from_ms, request.to_ms, request.grouping);
    let report = crate::kpi::interval_report(&events, &state.calls.cdr, request)
        .await
        .map_err(|error| {
            tracing::error!(
                %error,
                from_ms,
                to_ms,
                "reading the report's events or call records failed"
            );
            Problem::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "the queue events or call records could not be read",
            )
        })?;
    Ok(rows(&report, grouping))
}

fn grouping_parameter(value: Option<&str>) -> Result<Grouping, Problem> {
    let name = value.unwrap_or("queue");
    Grouping::from_name(name)
        .ok_or_else(|| Problem::bad_request(format!("by must be queue or agent, got {name:?}")))
}

fn interval_parameter(value: Option<&str>) -> Result<Interval, Problem> {
    let name = value.unwrap_or("60");
    Interval::from_name(name).ok_or_else(|| {
        Problem::bad_request(format!("interval must be 15, 30, 60 or day, got {name:?}"))
    })
}

fn describe(interval: Interval) -> String {
    match interval {
        Interval::Day => "a day".to_owned(),
        other => format!("{} minutes", other.as_str()),
    }
}

/// CSV when `format=csv`, or without `format` when the `Accept` header
/// names `text/csv`.
fn wants_csv(format: Option<&str>, headers: &HeaderMap) -> Result<bool, Problem> {
    match format {
        Some("csv") => Ok(true),
        Some("json") => Ok(false),
        Some(other) => Err(Problem::bad_request(format!(
            "format must be json or csv, got {other:?}"
        ))),
        None => Ok(headers
            .get_all(header::ACCEPT)
            .iter()
            .filter_map(|value| value.to_str().ok())
            .flat_map(|line| line.split(','))
            .any(|item| {
                let media = item.split(';').next().unwrap_or_default().trim();
                media.eq_ignore_ascii_case("text/csv")
            })),
    }
}

fn rows(report: &IntervalReport, grouping: Grouping) -> Vec<Value> {
    let values = match grouping {
        Grouping::Queue => report
            .queues
            .iter()
            .map(serde_json::to_value)
            .collect::<Result<Vec<_>, _>>(),
        Grouping::Agent => report
            .agents
            .iter()
            .map(serde_json::to_value)
            .collect::<Result<Vec<_>, _>>(),
    };
    // The rows hold strings and numbers only, which always serialize.
    values.unwrap_or_default()
}

fn csv_response(rows: &[Value], grouping: Grouping, name: &str) -> Response {
    let columns: &[&str] = match grouping {
        Grouping::Queue => &QUEUE_COLUMNS,
        Grouping::Agent => &AGENT_COLUMNS,
    };
    let mut text = columns.join(",");
    text.push_str("\r\n");
    for row in rows {
        let fields: Vec<String> = columns
            .iter()
            .map(|column| csv_field(&row[*column]))
            .collect();
        text.push_str(&fields.join(","));
        text.push_str("\r\n");
    }
    let mut response = text.into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/csv; charset=utf-8"),
    );
    if let Ok(value) = HeaderValue::from_str(&format!("attachment; filename=\"{name}\"")) {
        headers.insert(header::CONTENT_DISPOSITION, value);
    }
    response
}

/// Formats one value as an RFC 4180 field: null as empty, text quoted
/// when it contains a comma, a quote or a line break.
fn csv_field(value: &Value) -> String {
    let text = match value {
        Value::Null => return String::new(),
        Value::String(text) => text.clone(),
        other => other.to_string(),
    };
    if text.contains([',', '"', '\r', '\n']) {
        format!("\"{}\"", text.replace('"', "\"\""))
    } else {
        text
    }
}
