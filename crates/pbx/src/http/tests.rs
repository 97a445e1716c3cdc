use axum::body::{Body, to_bytes};
use axum::http::Request;
use cdr::{Disposition, HangupSide};
use time::macros::datetime;
use tower::ServiceExt;

use super::*;

struct Fixture {
    _dir: tempfile::TempDir,
    data_dir: PathBuf,
    store: CdrStore,
}

async fn fixture() -> Fixture {
    let dir = tempfile::tempdir().expect("temp dir");
    let data_dir = dir.path().join("data");
    let store = CdrStore::open(&data_dir).await.expect("store opens");
    Fixture {
        _dir: dir,
        data_dir,
        store,
    }
}

fn record(id: &str, minute: u8, recording_path: Option<&str>) -> CallRecord {
    let arrived_at = datetime!(2026-12-04 09:00:00 UTC) + time::Duration::minutes(minute.into());
    CallRecord {
        id: id.to_owned(),
        caller_call_id: format!("{id}@192.0.2.1"),
        agent_call_id: Some(format!("{id}-agent@pbx.local")),
        caller: "+15550100".to_owned(),
        dialed: "5000".to_owned(),
        trunk: Some("local-carrier".to_owned()),
        source_extension: None,
        queue: Some("general".to_owned()),
        agent: Some("1001".to_owned()),
        arrived_at,
        queued_at: Some(arrived_at),
        answered_at: Some(arrived_at + time::Duration::seconds(4)),
        ended_at: arrived_at + time::Duration::seconds(64),
        wait_seconds: 4.0,
        talk_seconds: 60.0,
        disposition: Disposition::Answered,
        sip_status: None,
        hangup_side: Some(HangupSide::Caller),
        recording_path: recording_path.map(str::to_owned),
        recording_seconds: recording_path.map(|_| 60.0),
    }
}

async fn request(fixture: &Fixture, uri: &str) -> (StatusCode, String, Vec<u8>) {
    let app = router(HttpState {
        cdr: fixture.store.clone(),
        data_dir: fixture.data_dir.clone(),
    });
    let request = Request::get(uri)
        .body(Body::empty())
        .expect("valid request");
    let response = app.oneshot(request).await.expect("router is infallible");
    let status = response.status();
    let content_type = response
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    let body = to_bytes(response.into_body(), 16 << 20)
        .await
        .expect("body readable");
    (status, content_type, body.to_vec())
}

fn json(body: &[u8]) -> serde_json::Value {
    serde_json::from_slice(body).expect("JSON body")
}

/// Checks an RFC 9457 body and returns its detail.
fn problem(status: StatusCode, content_type: &str, body: &[u8]) -> String {
    assert_eq!(content_type, "application/problem+json");
    let value = json(body);
    assert_eq!(value["type"], "about:blank");
    assert_eq!(value["status"], status.as_u16());
    assert_eq!(
        value["title"],
        status.canonical_reason().expect("standard status")
    );
    value["detail"].as_str().expect("detail is text").to_owned()
}

#[tokio::test]
async fn health_reports_ok() {
    let fixture = fixture().await;
    let (status, content_type, body) = request(&fixture, "/health").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(content_type, "application/json");
    assert_eq!(json(&body), serde_json::json!({ "status": "ok" }));
}

#[tokio::test]
async fn list_newest_first_with_paging() {
    let fixture = fixture().await;
    for (id, minute) in [("b", 2), ("a", 1), ("c", 3)] {
        fixture
            .store
            .write(&record(id, minute, None))
            .await
            .expect("write");
    }
    let ids = |body: &[u8]| -> Vec<String> {
        let records: Vec<CallRecord> = serde_json::from_slice(body).expect("records");
        records.into_iter().map(|r| r.id).collect()
    };
    let (status, _, body) = request(&fixture, "/api/calls").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(ids(&body), ["c", "b", "a"]);
    let (status, _, body) = request(&fixture, "/api/calls?limit=1&offset=1").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(ids(&body), ["b"]);
    let (_, _, body) = request(&fixture, "/api/calls?limit=1000&offset=3").await;
    assert!(ids(&body).is_empty());
}

#[tokio::test]
async fn list_rejects_bad_parameters() {
    let fixture = fixture().await;
    let cases = [
        ("/api/calls?limit=abc", "limit must be a whole number"),
        ("/api/calls?limit=-1", "limit must be a whole number"),
        ("/api/calls?offset=1.5", "offset must be a whole number"),
        (
            "/api/calls?limit=1001",
            "limit must be between 1 and 1000, got 1001",
        ),
        (
            "/api/calls?limit=0",
            "limit must be between 1 and 1000, got 0",
        ),
    ];
    for (uri, expected) in cases {
        let (status, content_type, body) = request(&fixture, uri).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{uri}");
        let detail = problem(status, &content_type, &body);
        assert!(detail.starts_with(expected), "{uri}: {detail}");
    }
}

#[tokio::test]
async fn get_one_call() {
    let fixture = fixture().await;
    let stored = record("call-1", 0, None);
    fixture.store.write(&stored).await.expect("write");
    let (status, _, body) = request(&fixture, "/api/calls/call-1").await;
    assert_eq!(status, StatusCode::OK);
    let returned: CallRecord = serde_json::from_slice(&body).expect("record");
    assert_eq!(returned, stored);

    let (status, content_type, body) = request(&fixture, "/api/calls/call-2").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(
        problem(status, &content_type, &body),
        "call \"call-2\" not found"
    );
}

#[tokio::test]
async fn recording_served_as_wav() {
    let fixture = fixture().await;
    let relative = "recordings/2026/12/04/call-1.wav";
    let file = fixture.data_dir.join(relative);
    std::fs::create_dir_all(file.parent().expect("has parent")).expect("create folders");
    let bytes = b"RIFF\x24\x00\x00\x00WAVEfmt ".to_vec();
    std::fs::write(&file, &bytes).expect("write recording");
    fixture
        .store
        .write(&record("call-1", 0, Some(relative)))
        .await
        .expect("write");

    let (status, content_type, body) = request(&fixture, "/api/calls/call-1/recording").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(content_type, "audio/wav");
    assert_eq!(body, bytes);
}

#[tokio::test]
async fn recording_missing_cases() {
    let fixture = fixture().await;
    let store = &fixture.store;
    store
        .write(&record("no-recording", 0, None))
        .await
        .expect("write");
    store
        .write(&record("file-gone", 1, Some("recordings/gone.wav")))
        .await
        .expect("write");
    let cases = [
        ("/api/calls/unknown/recording", "call \"unknown\" not found"),
        (
            "/api/calls/no-recording/recording",
            "call \"no-recording\" has no recording",
        ),
        (
            "/api/calls/file-gone/recording",
            "recording of call \"file-gone\" not found",
        ),
    ];
    for (uri, expected) in cases {
        let (status, content_type, body) = request(&fixture, uri).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{uri}");
        assert_eq!(problem(status, &content_type, &body), expected, "{uri}");
    }
}

#[tokio::test]
async fn recording_path_cannot_escape() {
    let fixture = fixture().await;
    // A readable file right outside the data directory.
    let outside = fixture
        .data_dir
        .parent()
        .expect("has parent")
        .join("secret.wav");
    std::fs::write(&outside, b"outside").expect("write outside file");
    let absolute = outside.to_str().expect("UTF-8 temp path").to_owned();
    let escaping = [
        ("dotdot", "../secret.wav".to_owned()),
        ("nested-dotdot", "recordings/../../secret.wav".to_owned()),
        ("absolute", absolute),
    ];
    for (id, path) in &escaping {
        fixture
            .store
            .write(&record(id, 0, Some(path)))
            .await
            .expect("write");
    }
    #[cfg(unix)]
    {
        std::os::unix::fs::symlink(&outside, fixture.data_dir.join("link.wav")).expect("symlink");
        fixture
            .store
            .write(&record("symlink", 0, Some("link.wav")))
            .await
            .expect("write");
    }
    let mut ids: Vec<&str> = escaping.iter().map(|(id, _)| *id).collect();
    if cfg!(unix) {
        ids.push("symlink");
    }
    for id in ids {
        let uri = format!("/api/calls/{id}/recording");
        let (status, content_type, body) = request(&fixture, &uri).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{id}");
        let detail = problem(status, &content_type, &body);
        assert_eq!(detail, format!("recording of call {id:?} not found"));
    }
}
