//! The `request_type` of call records: stored in the journal and the
//! database, read back, and searched for by exact match, on SQLite and on
//! PostgreSQL when `PBX_TEST_POSTGRES_URL` is set.

use cdr::test_database::TestDatabase;
use cdr::{CallFilter, CallRecord, CdrStore, Disposition, HangupSide};
use time::macros::datetime;
use time::{Duration, OffsetDateTime};

fn record(id: &str, arrived_at: OffsetDateTime, request_type: Option<&str>) -> CallRecord {
    CallRecord {
        id: id.to_owned(),
        caller_call_id: format!("{id}@192.0.2.10"),
        agent_call_id: None,
        caller: "+33123456789".to_owned(),
        dialed: "5000".to_owned(),
        trunk: Some("local-carrier".to_owned()),
        source_extension: None,
        direction: cdr::CallDirection::Inbound,
        queue: Some("general".to_owned()),
        request_type: request_type.map(str::to_owned),
        agent: None,
        arrived_at,
        queued_at: Some(arrived_at),
        answered_at: None,
        ended_at: arrived_at + Duration::seconds(20),
        wait_seconds: 20.0,
        talk_seconds: 0.0,
        disposition: Disposition::Abandoned,
        sip_status: None,
        hangup_side: Some(HangupSide::Caller),
        recording_path: None,
        recording_seconds: None,
        interrupted: false,
        caller_answered_at: None,
        voicemail_box: None,
        forwarded_to: None,
        diverted_from: None,
        callback_of: None,
        recording_events: Vec::new(),
        media_quality: None,
        rebuilt: false,
        transfers: Vec::new(),
        hold_count: 0,
        hold_seconds: 0.0,
        survey: None,
        csat_score: None,
    }
}

async fn open(dir: &std::path::Path, database: &TestDatabase) -> CdrStore {
    CdrStore::open_at(dir, &database.url(dir))
        .await
        .expect("store opens")
}

async fn request_type_round_trip(database: TestDatabase) {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = open(dir.path(), &database).await;
    let at = datetime!(2026-12-04 09:00:00 UTC);
    let typed = record("typed", at, Some("passport renewal"));
    let untyped = record("untyped", at + Duration::minutes(1), None);
    store.write(&typed).await.expect("write succeeds");
    store.write(&untyped).await.expect("write succeeds");

    let stored = store.get("typed").await.expect("get").expect("stored");
    assert_eq!(stored, typed);
    let stored = store.get("untyped").await.expect("get").expect("stored");
    assert_eq!(stored.request_type, None);

    let journal = std::fs::read_to_string(dir.path().join("cdr.jsonl")).expect("journal");
    let lines: Vec<serde_json::Value> = journal
        .lines()
        .map(|line| serde_json::from_str(line).expect("valid JSON"))
        .collect();
    assert_eq!(lines[0]["request_type"], "passport renewal");
    assert_eq!(lines[1]["request_type"], serde_json::Value::Null);
}

async fn search_matches_request_type_exactly(database: TestDatabase) {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = open(dir.path(), &database).await;
    let at = datetime!(2026-12-04 09:00:00 UTC);
    let records = [
        record("passport", at, Some("passport")),
        record(
            "renewal",
            at + Duration::minutes(1),
            Some("passport renewal"),
        ),
        record("upper", at + Duration::minutes(2), Some("Passport")),
        record("none", at + Duration::minutes(3), None),
        CallRecord {
            queue: Some("sales".to_owned()),
            ..record("sales", at + Duration::minutes(4), Some("passport"))
        },
    ];
    for record in &records {
        store.write(record).await.expect("write succeeds");
    }

    let search = |filter: CallFilter| {
        let store = store.clone();
        async move {
            let found = store.search(&filter, 10, 0).await.expect("search succeeds");
            found
                .into_iter()
                .map(|record| record.id)
                .collect::<Vec<_>>()
        }
    };
    let passport = CallFilter {
        request_type: Some("passport".to_owned()),
        ..CallFilter::default()
    };
    // Neither a longer name, another case nor a call without one matches.
    assert_eq!(search(passport).await, ["sales", "passport"]);

    let in_queue = CallFilter {
        request_type: Some("passport".to_owned()),
        queue: Some("general".to_owned()),
        ..CallFilter::default()
    };
    assert_eq!(search(in_queue).await, ["passport"]);
    let wildcard = CallFilter {
        request_type: Some("passport%".to_owned()),
        ..CallFilter::default()
    };
    assert!(search(wildcard).await.is_empty());
}

cdr::storage_tests!(request_type_round_trip, search_matches_request_type_exactly);
