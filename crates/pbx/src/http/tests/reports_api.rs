//! `GET /api/reports/queues`: figures from stored events and the problems
//! for bad ranges. Roles are covered in `access`, the figures themselves in
//! `kpi::tests`.

use std::time::{Duration, Instant, SystemTime};

use acd::QueueEvent;
use sip_server::b2bua::StampedEvent;

use super::*;
use crate::events::{EventStore, NewEvent};

/// One call answered after 15 s at 2026-12-04T09:00:00Z.
async fn store_answered_call(fixture: &Fixture) {
    let start = SystemTime::UNIX_EPOCH + Duration::from_secs(T0.unix_timestamp() as u64);
    let now = Instant::now();
    let events = [
        StampedEvent {
            event: QueueEvent::CallEnqueued {
                call: "call-1".into(),
                queue: "general".into(),
                caller: None,
                request_type: None,
                position: 1,
                at: now,
            },
            wall: start,
        },
        StampedEvent {
            event: QueueEvent::OfferAnswered {
                call: "call-1".into(),
                queue: "general".into(),
                agent: "1001".into(),
                waited: Duration::from_secs(15),
                ring_time: Duration::from_secs(3),
                joined_position: 1,
                at: now,
            },
            wall: start + Duration::from_secs(15),
        },
        StampedEvent {
            event: QueueEvent::SurveyOffered {
                call: "call-1".into(),
                queue: "general".into(),
                agent: "1001".into(),
                at: now,
            },
            wall: start + Duration::from_secs(75),
        },
        StampedEvent {
            event: QueueEvent::SurveyFinished {
                call: "call-1".into(),
                queue: "general".into(),
                agent: "1001".into(),
                outcome: acd::SurveyOutcome::Answered(4),
                at: now,
            },
            wall: start + Duration::from_secs(80),
        },
    ];
    let rows: Vec<NewEvent> = events.iter().map(NewEvent::from_stamped).collect();
    EventStore::on(fixture.store.pool().clone())
        .append(&rows)
        .await
        .expect("events stored");
}

#[tokio::test]
async fn report_gives_the_figures_of_the_range() {
    let fixture = fixture().await;
    store_answered_call(&fixture).await;
    let reply = fixture
        .get(
            Role::Qa,
            "/api/reports/queues?from=2026-12-04T10:00:00%2B01:00&to=2026-12-04T10:00:00Z",
        )
        .await;
    assert_eq!(reply.status, StatusCode::OK);
    let report = reply.json();
    assert_eq!(report["from"], "2026-12-04T09:00:00Z");
    assert_eq!(report["to"], "2026-12-04T10:00:00Z");
    let general = &report["queues"][0];
    assert_eq!(general["queue"], "general");
    assert_eq!(general["offered"], 1);
    assert_eq!(general["answered"], 1);
    assert_eq!(general["average_speed_of_answer_seconds"], 15.0);
    assert_eq!(general["service_level_20_percent"], 100.0);
    assert_eq!(general["service_level_30_percent"], 100.0);
    assert_eq!(general["average_handle_seconds"], serde_json::Value::Null);

    // The call entered at 09:00:00, so a range that starts a second later
    // leaves it out.
    let later = fixture
        .get(
            Role::Supervisor,
            "/api/reports/queues?from=2026-12-04T09:00:01Z&to=2026-12-04T10:00:00Z",
        )
        .await;
    assert_eq!(later.json()["queues"], serde_json::json!([]));
}

#[tokio::test]
async fn bad_ranges_are_problems() {
    let fixture = fixture().await;
    let cases = [
        (
            "/api/reports/queues?to=2026-12-04T10:00:00Z",
            "from is required",
        ),
        (
            "/api/reports/queues?from=yesterday&to=2026-12-04T10:00:00Z",
            "from must be an RFC 3339 time",
        ),
        (
            "/api/reports/queues?from=2026-12-04T10:00:00+01:00&to=2026-12-04T12:00:00Z",
            "write the + of an offset as %2B",
        ),
        (
            "/api/reports/queues?from=2026-12-04T10:00:00Z&to=2026-12-04T10:00:00Z",
            "to must be later than from",
        ),
        (
            "/api/reports/queues?from=2025-01-01T00:00:00Z&to=2026-12-04T10:00:00Z",
            "at most 366 days",
        ),
    ];
    for (uri, expected) in cases {
        let reply = fixture.get(Role::Supervisor, uri).await;
        let detail = reply.problem(StatusCode::BAD_REQUEST);
        assert!(detail.contains(expected), "{uri}: {detail}");
    }
}

/// The interval report of the stored call, as JSON and as CSV.
#[tokio::test]
async fn interval_report_as_json_and_csv() {
    let fixture = fixture().await;
    store_answered_call(&fixture).await;
    let uri = "/api/reports/intervals?from=2026-12-04T09:00:00Z&to=2026-12-04T10:00:00Z\
               &interval=30&by=queue";
    let reply = fixture.get(Role::Qa, uri).await;
    assert_eq!(reply.status, StatusCode::OK);
    let report = reply.json();
    assert_eq!(report["interval"], "30");
    assert_eq!(report["by"], "queue");
    assert_eq!(report["first_contact_window_hours"], 72);
    let rows = report["rows"].as_array().expect("rows");
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0]["start"], "2026-12-04T09:00:00Z");
    assert_eq!(rows[0]["end"], "2026-12-04T09:30:00Z");
    assert_eq!(rows[0]["queue"], "general");
    assert_eq!(rows[0]["answered"], 1);
    assert_eq!(rows[0]["average_speed_of_answer_seconds"], 15.0);
    let unavailable: Vec<&str> = report["unavailable"]
        .as_array()
        .expect("unavailable")
        .iter()
        .map(|item| item["figure"].as_str().expect("figure"))
        .collect();
    assert!(unavailable.is_empty(), "{unavailable:?}");
    assert_eq!(rows[0]["surveys_offered"], 1);
    assert_eq!(rows[0]["surveys_answered"], 1);
    assert_eq!(rows[0]["csat_percent"], 100.0);

    let csv = fixture.get(Role::Qa, &format!("{uri}&format=csv")).await;
    assert_eq!(csv.status, StatusCode::OK);
    assert_eq!(csv.content_type(), "text/csv; charset=utf-8");
    assert_eq!(
        csv.headers[header::CONTENT_DISPOSITION],
        "attachment; filename=\"report-queue-30-2026-12-04.csv\""
    );
    let text = String::from_utf8(csv.body.clone()).expect("UTF-8");
    let lines: Vec<&str> = text.split("\r\n").collect();
    assert_eq!(lines.len(), 3, "{text}");
    assert!(lines[0].starts_with("start,end,queue,offered,answered,abandoned,"));
    assert!(
        lines[1].starts_with(
            "2026-12-04T09:00:00Z,2026-12-04T09:30:00Z,general,1,1,0,0.0,,0,0,0,0,15.0,"
        ),
        "{}",
        lines[1]
    );
    assert_eq!(lines[2], "");

    // Accept: text/csv gives the same file without the parameter.
    let request = Request::builder()
        .uri(uri)
        .header(
            header::COOKIE,
            format!(
                "{}={}",
                auth::SESSION_COOKIE,
                fixture.sessions[&Role::Supervisor]
            ),
        )
        .header(header::ACCEPT, "application/json;q=0.5, text/csv")
        .body(Body::empty())
        .expect("request");
    let accepted = fixture.send(request).await;
    assert_eq!(accepted.content_type(), "text/csv; charset=utf-8");
    assert_eq!(accepted.body, csv.body);
}

#[tokio::test]
async fn agent_interval_rows_as_csv() {
    let fixture = fixture().await;
    store_answered_call(&fixture).await;
    let uri = "/api/reports/intervals?from=2026-12-04T09:00:00Z&to=2026-12-04T10:00:00Z\
               &interval=15&by=agent&format=csv";
    let reply = fixture.get(Role::Administrator, uri).await;
    let text = String::from_utf8(reply.body.clone()).expect("UTF-8");
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(
        lines[0],
        "start,end,agent,offered,answered,average_speed_of_answer_seconds,average_talk_seconds,\
         average_wrap_up_seconds,average_handle_seconds,first_contact_calls,\
         first_contact_resolution_percent,occupancy_percent,shifts,calls_per_shift,hold_seconds,\
         average_hold_seconds,surveys_offered,surveys_answered,csat_percent"
    );
    // No offer was stored, so 1001 answered without an offer; no state
    // change was stored either, so occupancy and shifts are unknown.
    assert_eq!(
        lines[1],
        "2026-12-04T09:00:00Z,2026-12-04T09:15:00Z,1001,0,1,15.0,,,,0,,,0,,0.0,,1,1,100.0"
    );
    assert_eq!(lines.len(), 2);
}

#[tokio::test]
async fn bad_interval_parameters_are_problems() {
    let fixture = fixture().await;
    let range = "from=2026-12-04T09:00:00Z&to=2026-12-04T10:00:00Z";
    let cases = [
        (
            format!("/api/reports/intervals?{range}&interval=45"),
            "interval must be 15, 30, 60 or day, got \"45\"",
        ),
        (
            format!("/api/reports/intervals?{range}&by=team"),
            "by must be queue or agent, got \"team\"",
        ),
        (
            format!("/api/reports/intervals?{range}&format=xml"),
            "format must be json or csv, got \"xml\"",
        ),
        (
            "/api/reports/intervals?from=2026-01-01T00:00:00Z&to=2026-03-01T00:00:00Z&interval=15"
                .to_owned(),
            "the range has more than 2976 intervals of 15 minutes and a report has at most 2976; \
             ask for a longer interval or a shorter range",
        ),
        (
            "/api/reports/intervals?from=2026-12-04T10:00:00Z&to=2026-12-04T09:00:00Z".to_owned(),
            "to must be later than from, got from=2026-12-04T10:00:00Z and to=2026-12-04T09:00:00Z",
        ),
    ];
    for (uri, expected) in cases {
        let reply = fixture.get(Role::Supervisor, &uri).await;
        assert_eq!(reply.problem(StatusCode::BAD_REQUEST), expected, "{uri}");
    }
}

#[tokio::test]
async fn interval_report_in_a_time_zone() {
    let fixture = fixture().await;
    store_answered_call(&fixture).await;
    // 10:00 in Madrid on 4 December is 09:00Z (CET, +01:00).
    let uri = "/api/reports/intervals?from=2026-12-04T10:00&to=2026-12-04T11:00\
               &interval=30&tz=Europe/Madrid";
    let reply = fixture.get(Role::Supervisor, uri).await;
    assert_eq!(reply.status, StatusCode::OK, "{:?}", reply.json());
    let report = reply.json();
    assert_eq!(report["time_zone"], "Europe/Madrid");
    assert_eq!(report["from"], "2026-12-04T10:00:00+01:00");
    assert_eq!(report["to"], "2026-12-04T11:00:00+01:00");
    assert_eq!(report["rows"][0]["start"], "2026-12-04T10:00:00+01:00");
    assert_eq!(report["rows"][0]["end"], "2026-12-04T10:30:00+01:00");
    let csv = fixture
        .get(Role::Supervisor, &format!("{uri}&format=csv"))
        .await;
    let text = String::from_utf8(csv.body.clone()).expect("UTF-8");
    let row = text.split("\r\n").nth(1).expect("one row");
    assert!(
        row.starts_with("2026-12-04T10:00:00+01:00,2026-12-04T10:30:00+01:00,general,"),
        "{row}"
    );

    // Without tz the configured zone applies, UTC in the fixture.
    let uri = "/api/reports/intervals?from=2026-12-04T09:00&to=2026-12-04T10:00";
    let report = fixture.get(Role::Supervisor, uri).await.json();
    assert_eq!(report["time_zone"], "UTC");
    assert_eq!(report["rows"][0]["start"], "2026-12-04T09:00:00Z");

    let uri = "/api/reports/intervals?from=2026-12-04T09:00:00Z&to=2026-12-04T10:00:00Z\
               &tz=Mars/Olympus";
    let reply = fixture.get(Role::Supervisor, uri).await;
    assert_eq!(
        reply.problem(StatusCode::BAD_REQUEST),
        "tz must be an IANA time zone name such as Europe/Madrid or UTC, got \"Mars/Olympus\""
    );
}
