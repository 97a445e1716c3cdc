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
