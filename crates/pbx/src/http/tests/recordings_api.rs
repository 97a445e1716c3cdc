//! The recording catalogue endpoints, and 410 Gone for a recording that
//! retention deleted.

use super::*;
use crate::catalogue::{Catalogue, digest_file};

#[tokio::test]
async fn catalogue_entry_matches_the_served_file() {
    let fixture = fixture().await;
    let bytes = recorded_call(&fixture, "call-1").await;
    let reply = fixture.get(Role::Qa, "/api/recordings/call-1").await;
    assert_eq!(reply.status, StatusCode::OK);
    let entry = reply.json();
    assert_eq!(entry["call_id"], "call-1");
    assert_eq!(entry["status"], "complete");
    assert_eq!(entry["path"], "recordings/2026/12/04/call-1.wav");
    assert_eq!(entry["duration_seconds"], 60.0);
    assert_eq!(entry["size_bytes"], bytes.len());
    assert_eq!(entry["deleted_at"], serde_json::Value::Null);

    let served = fixture.get(Role::Qa, "/api/calls/call-1/recording").await;
    let file = fixture.data_dir.join("served.wav");
    std::fs::write(&file, &served.body).expect("write served copy");
    assert_eq!(
        entry["sha256"],
        digest_file(&file).expect("digest").sha256.as_str()
    );

    let missing = fixture.get(Role::Supervisor, "/api/recordings/other").await;
    assert_eq!(
        missing.problem(StatusCode::NOT_FOUND),
        "no catalogued recording of call \"other\""
    );
}

#[tokio::test]
async fn list_filters_and_checks_parameters() {
    let fixture = fixture().await;
    recorded_call(&fixture, "call-1").await;
    recorded_call(&fixture, "call-2").await;
    Catalogue::new(fixture.store.pool().clone())
        .mark_deleted(
            "call-2",
            crate::catalogue::RecordingKind::Stereo,
            T0,
            "retention: older than 30 days",
        )
        .await
        .expect("marked");

    let all = fixture.get(Role::Supervisor, "/api/recordings").await;
    assert_eq!(all.status, StatusCode::OK);
    assert_eq!(all.json().as_array().expect("array").len(), 2);
    let deleted = fixture
        .get(Role::Supervisor, "/api/recordings?status=deleted")
        .await
        .json();
    assert_eq!(deleted.as_array().expect("array").len(), 1);
    assert_eq!(deleted[0]["call_id"], "call-2");
    assert_eq!(
        deleted[0]["deletion_reason"],
        "retention: older than 30 days"
    );
    assert_eq!(deleted[0]["deleted_at"], "2026-12-04T09:00:00Z");

    let bad = fixture.get(Role::Qa, "/api/recordings?status=lost").await;
    assert_eq!(
        bad.problem(StatusCode::BAD_REQUEST),
        "status must be one of recording, complete, interrupted, deleted, got \"lost\""
    );
    let bad = fixture.get(Role::Qa, "/api/recordings?limit=0").await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST);
    let agent = fixture.get(Role::Agent, "/api/recordings").await;
    assert_eq!(agent.status, StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn deleted_recording_is_gone_not_missing() {
    let fixture = fixture().await;
    recorded_call(&fixture, "call-1").await;
    let file = fixture.data_dir.join("recordings/2026/12/04/call-1.wav");
    std::fs::remove_file(file).expect("remove");
    let deleted_at = T0 + time::Duration::days(31);
    Catalogue::new(fixture.store.pool().clone())
        .mark_deleted(
            "call-1",
            crate::catalogue::RecordingKind::Stereo,
            deleted_at,
            "retention: older than 30 days",
        )
        .await
        .expect("marked");

    let reply = fixture.get(Role::Qa, "/api/calls/call-1/recording").await;
    assert_eq!(reply.content_type(), "application/problem+json");
    assert_eq!(
        reply.problem(StatusCode::GONE),
        "the recording of call \"call-1\" was deleted by retention on 2027-01-04"
    );
    // The CDR keeps its path.
    let record = fixture.get(Role::Qa, "/api/calls/call-1").await.json();
    assert_eq!(record["recording_path"], "recordings/2026/12/04/call-1.wav");
    // Nothing was served, so nothing was audited as a replay.
    let entries = fixture.accounts.list_audit(10, 0).await.expect("audit");
    assert!(
        entries
            .iter()
            .all(|entry| entry.action != calls::REPLAY_ACTION)
    );
}
