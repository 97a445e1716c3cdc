//! CdrStore against a real database (a SQLite file, and PostgreSQL when
//! `PBX_TEST_POSTGRES_URL` is set) and a journal in a temporary directory.

use cdr::test_database::TestDatabase;
use cdr::{
    CallFilter, CallRecord, CdrError, CdrStore, Disposition, HangupSide, MAX_LIST_LIMIT,
    RecordingAction, RecordingEvent, RecordingEventSource, Transfer, TransferOutcome,
    TransferTarget,
};
use time::macros::datetime;
use time::{Duration, OffsetDateTime};

fn answered(id: &str, arrived_at: OffsetDateTime) -> CallRecord {
    let queued_at = arrived_at + Duration::milliseconds(120);
    let answered_at = queued_at + Duration::milliseconds(7_500);
    let ended_at = answered_at + Duration::seconds(95);
    CallRecord {
        id: id.to_owned(),
        caller_call_id: format!("{id}-caller@192.0.2.10"),
        agent_call_id: Some(format!("{id}-agent@pbx.local")),
        caller: "+33123456789".to_owned(),
        dialed: "5000".to_owned(),
        trunk: Some("local-carrier".to_owned()),
        source_extension: None,
        direction: cdr::CallDirection::Inbound,
        queue: Some("general".to_owned()),
        request_type: None,
        agent: Some("1001".to_owned()),
        arrived_at,
        queued_at: Some(queued_at),
        answered_at: Some(answered_at),
        ended_at,
        wait_seconds: 7.5,
        talk_seconds: 95.0,
        disposition: Disposition::Answered,
        sip_status: None,
        hangup_side: Some(HangupSide::Agent),
        recording_path: Some(format!("recordings/2026/12/04/{id}.wav")),
        recording_seconds: Some(94.98),
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

fn unanswered(id: &str, arrived_at: OffsetDateTime, disposition: Disposition) -> CallRecord {
    let ended_at = arrived_at + Duration::seconds(12);
    CallRecord {
        agent_call_id: None,
        trunk: None,
        source_extension: Some("1002".to_owned()),
        direction: cdr::CallDirection::Inbound,
        agent: None,
        answered_at: None,
        ended_at,
        wait_seconds: 11.875,
        talk_seconds: 0.0,
        disposition,
        sip_status: match disposition {
            Disposition::Abandoned => Some(487),
            Disposition::NoAgent => Some(480),
            Disposition::Failed => Some(503),
            Disposition::Answered | Disposition::Voicemail | Disposition::Callback => None,
        },
        hangup_side: match disposition {
            Disposition::Abandoned => Some(HangupSide::Caller),
            _ => Some(HangupSide::System),
        },
        recording_path: None,
        recording_seconds: None,
        interrupted: false,
        caller_answered_at: None,
        voicemail_box: None,
        forwarded_to: None,
        diverted_from: None,
        callback_of: None,
        ..answered(id, arrived_at)
    }
}

fn journal_lines(dir: &std::path::Path) -> Vec<String> {
    let text = std::fs::read_to_string(dir.join("cdr.jsonl")).expect("journal readable");
    text.lines().map(str::to_owned).collect()
}

async fn round_trip_each_disposition(database: TestDatabase) {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = CdrStore::open_at(dir.path(), &database.url(dir.path()))
        .await
        .expect("store opens");
    let arrived_at = datetime!(2026-12-04 09:15:02.123456789 UTC);
    let records = [
        answered("a1", arrived_at),
        unanswered("a2", arrived_at, Disposition::Abandoned),
        unanswered("a3", arrived_at, Disposition::NoAgent),
        unanswered("a4", arrived_at, Disposition::Failed),
        voicemail("a5", arrived_at),
        unanswered("a6", arrived_at, Disposition::Callback),
        CallRecord {
            callback_of: Some("a6".to_owned()),
            media_quality: Some(cdr::MediaQuality {
                caller: cdr::LegQuality {
                    packets_received: 1498,
                    packets_expected: 1500,
                    packets_lost: 2,
                    loss_percent: 0.133,
                    jitter_ms: 1.25,
                    mos: 4.38,
                    recording_late_ms: Some(60),
                },
                agent: cdr::LegQuality {
                    packets_received: 1500,
                    packets_expected: 1500,
                    packets_lost: 0,
                    loss_percent: 0.0,
                    jitter_ms: 0.5,
                    mos: 4.41,
                    recording_late_ms: None,
                },
            }),
            ..answered("a7", arrived_at)
        },
        CallRecord {
            hold_count: 2,
            hold_seconds: 41.25,
            survey: Some(cdr::SurveyStatus::Answered),
            csat_score: Some(5),
            ..answered("a8", arrived_at)
        },
        CallRecord {
            survey: Some(cdr::SurveyStatus::HungUp),
            ..answered("a9", arrived_at)
        },
    ];
    for record in &records {
        store.write(record).await.expect("write succeeds");
    }
    for record in &records {
        let stored = store.get(&record.id).await.expect("get succeeds");
        assert_eq!(stored.as_ref(), Some(record), "record {}", record.id);
    }
    assert_eq!(store.get("missing").await.expect("get succeeds"), None);
    let messages = store
        .list_with(10, 0, Some(Disposition::Voicemail))
        .await
        .expect("filtered list succeeds");
    assert_eq!(messages, [records[4].clone()]);
    let requests = store
        .list_with(10, 0, Some(Disposition::Callback))
        .await
        .expect("filtered list succeeds");
    assert_eq!(requests, [records[5].clone()]);
}

fn voicemail(id: &str, arrived_at: OffsetDateTime) -> CallRecord {
    CallRecord {
        caller_answered_at: Some(arrived_at + Duration::seconds(12)),
        voicemail_box: Some("general".to_owned()),
        recording_path: Some(format!("voicemail/general/2026/12/04/{id}.wav")),
        recording_seconds: Some(14.5),
        ..unanswered(id, arrived_at, Disposition::Voicemail)
    }
}

async fn journal_has_one_line_per_record(database: TestDatabase) {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = CdrStore::open_at(dir.path(), &database.url(dir.path()))
        .await
        .expect("store opens");
    let first = answered("j1", datetime!(2026-12-04 10:00:00 UTC));
    let second = unanswered(
        "j2",
        datetime!(2026-12-04 10:01:00 UTC),
        Disposition::Abandoned,
    );
    store.write(&first).await.expect("first write");
    store.write(&second).await.expect("second write");

    let lines = journal_lines(dir.path());
    assert_eq!(lines.len(), 2);
    let parsed: CallRecord = serde_json::from_str(&lines[0]).expect("line 1 is a record");
    assert_eq!(parsed, first);
    let parsed: CallRecord = serde_json::from_str(&lines[1]).expect("line 2 is a record");
    assert_eq!(parsed, second);
}

async fn journal_json_uses_rfc3339_and_snake_case(database: TestDatabase) {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = CdrStore::open_at(dir.path(), &database.url(dir.path()))
        .await
        .expect("store opens");
    let record = unanswered(
        "n1",
        datetime!(2026-12-04 10:00:00.5 UTC),
        Disposition::NoAgent,
    );
    store.write(&record).await.expect("write succeeds");

    let lines = journal_lines(dir.path());
    let value: serde_json::Value = serde_json::from_str(&lines[0]).expect("valid JSON");
    assert_eq!(value["arrived_at"], "2026-12-04T10:00:00.5Z");
    assert_eq!(value["ended_at"], "2026-12-04T10:00:12.5Z");
    assert_eq!(value["answered_at"], serde_json::Value::Null);
    assert_eq!(value["disposition"], "no_agent");
    assert_eq!(value["hangup_side"], "system");
    assert_eq!(value["sip_status"], 480);
}

async fn failed_insert_keeps_journal_line(database: TestDatabase) {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = CdrStore::open_at(dir.path(), &database.url(dir.path()))
        .await
        .expect("store opens");
    let record = answered("dup", datetime!(2026-12-04 11:00:00 UTC));
    store.write(&record).await.expect("first write");

    let again = store.write(&record).await;
    assert!(
        matches!(&again, Err(CdrError::Insert { id, .. }) if id == "dup"),
        "second write of the same id: {again:?}"
    );
    assert_eq!(journal_lines(dir.path()).len(), 2);
}

async fn concurrent_writes_group_and_one_duplicate_fails_alone(database: TestDatabase) {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = CdrStore::open_at(dir.path(), &database.url(dir.path()))
        .await
        .expect("store opens");
    let base = datetime!(2026-12-04 12:00:00 UTC);
    store
        .write(&answered("c-7", base))
        .await
        .expect("first write of c-7");
    // Written at once, so they share groups; c-7 is a duplicate inside one.
    let writes: Vec<_> = (0..40)
        .map(|i| {
            let store = store.clone();
            let record = answered(&format!("c-{i}"), base + Duration::seconds(i));
            tokio::spawn(async move { store.write(&record).await })
        })
        .collect();
    for (i, write) in writes.into_iter().enumerate() {
        let outcome = write.await.expect("write task");
        if i == 7 {
            assert!(
                matches!(&outcome, Err(CdrError::Insert { id, .. }) if id == "c-7"),
                "duplicate: {outcome:?}"
            );
        } else {
            outcome.unwrap_or_else(|error| panic!("write of c-{i}: {error}"));
        }
    }
    for i in 0..40 {
        assert!(
            store.get(&format!("c-{i}")).await.expect("get").is_some(),
            "c-{i} missing"
        );
    }
    assert_eq!(journal_lines(dir.path()).len(), 41);
}

async fn grouped_writes_store_every_record(database: TestDatabase) {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = CdrStore::open_at(dir.path(), &database.url(dir.path()))
        .await
        .expect("store opens");
    let base = datetime!(2026-12-04 13:00:00 UTC);
    store
        .write(&answered("g-3", base))
        .await
        .expect("first write of g-3");
    // The first grouped write keeps its group open for the others. g-3 is
    // a duplicate inside it and must fail alone.
    let writes: Vec<_> = (0..10)
        .map(|i| {
            let store = store.clone();
            let record = answered(&format!("g-{i}"), base + Duration::seconds(i));
            tokio::spawn(async move { store.write_grouped(&record).await })
        })
        .collect();
    for (i, write) in writes.into_iter().enumerate() {
        let outcome = write.await.expect("write task");
        if i == 3 {
            assert!(
                matches!(&outcome, Err(CdrError::Insert { id, .. }) if id == "g-3"),
                "duplicate: {outcome:?}"
            );
        } else {
            outcome.unwrap_or_else(|error| panic!("write of g-{i}: {error}"));
        }
    }
    for i in 0..10 {
        assert!(
            store.get(&format!("g-{i}")).await.expect("get").is_some(),
            "g-{i} missing"
        );
    }
    assert_eq!(journal_lines(dir.path()).len(), 11);
}

/// Grouped writes fill more than two multi-row INSERTs of 500 rows. Each
/// record of every kind comes back as written, so no value moved to a
/// neighbour's column or row.
async fn grouped_writes_round_trip_many_rows(database: TestDatabase) {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = CdrStore::open_at(dir.path(), &database.url(dir.path()))
        .await
        .expect("store opens");
    let base = datetime!(2026-12-04 14:00:00.5 UTC);
    let records: Vec<CallRecord> = (0..1_100)
        .map(|i| {
            let id = format!("m-{i}");
            let arrived_at = base + Duration::seconds(i);
            match i % 4 {
                0 => answered(&id, arrived_at),
                1 => unanswered(&id, arrived_at, Disposition::Abandoned),
                2 => voicemail(&id, arrived_at),
                _ => CallRecord {
                    hold_count: u32::try_from(i).expect("small"),
                    hold_seconds: i as f64 / 4.0,
                    csat_score: Some(4),
                    survey: Some(cdr::SurveyStatus::Answered),
                    ..answered(&id, arrived_at)
                },
            }
        })
        .collect();
    let writes: Vec<_> = records
        .iter()
        .cloned()
        .map(|record| {
            let store = store.clone();
            tokio::spawn(async move { store.write_grouped(&record).await })
        })
        .collect();
    for write in writes {
        write.await.expect("write task").expect("grouped write");
    }
    for record in &records {
        let stored = store.get(&record.id).await.expect("get succeeds");
        assert_eq!(stored.as_ref(), Some(record), "record {}", record.id);
    }
}

async fn list_is_newest_first_and_pages(database: TestDatabase) {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = CdrStore::open_at(dir.path(), &database.url(dir.path()))
        .await
        .expect("store opens");
    let base = datetime!(2026-12-04 08:00:00 UTC);
    // Written out of order, and with a non-UTC offset, so ordering must come
    // from the instant and not from insertion order or text.
    let order = [3i64, 0, 4, 1, 2];
    for minutes in order {
        let arrived_at = base + Duration::minutes(minutes);
        let record = answered(&format!("c{minutes}"), arrived_at);
        store.write(&record).await.expect("write succeeds");
    }
    let shifted = answered(
        "c5",
        (base + Duration::minutes(5)).to_offset(time::macros::offset!(+02:00)),
    );
    store.write(&shifted).await.expect("write succeeds");

    let stored = store
        .get("c5")
        .await
        .expect("get succeeds")
        .expect("c5 stored");
    assert_eq!(stored.arrived_at.offset(), time::UtcOffset::UTC);
    assert_eq!(stored.arrived_at, shifted.arrived_at);
    let last_line = journal_lines(dir.path()).pop().expect("journal has lines");
    assert!(
        last_line.contains(r#""arrived_at":"2026-12-04T08:05:00Z""#),
        "{last_line}"
    );

    let ids = |records: Vec<CallRecord>| records.into_iter().map(|r| r.id).collect::<Vec<_>>();
    let all = store.list(10, 0).await.expect("list succeeds");
    assert_eq!(ids(all), ["c5", "c4", "c3", "c2", "c1", "c0"]);
    let page = store.list(2, 2).await.expect("list succeeds");
    assert_eq!(ids(page), ["c3", "c2"]);
    let past_end = store.list(10, 6).await.expect("list succeeds");
    assert!(past_end.is_empty());
    let none = store.list(0, 0).await.expect("list succeeds");
    assert!(none.is_empty());
}

async fn list_caps_limit(database: TestDatabase) {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = CdrStore::open_at(dir.path(), &database.url(dir.path()))
        .await
        .expect("store opens");
    let base = datetime!(2026-12-04 00:00:00 UTC);
    let count = MAX_LIST_LIMIT + 3;
    let mut transaction = store.pool().begin().await.expect("begin");
    // Rows go in directly so the test does not fsync a thousand journal lines.
    for n in 0..count {
        let at = base + Duration::seconds(i64::from(n));
        sqlx::query(
            "INSERT INTO call_records (id, caller_call_id, caller, dialed, arrived_at, \
             arrived_at_ms, ended_at, wait_seconds, talk_seconds, disposition) \
             VALUES ($1, $2, '1', '5000', $3, $4, $5, 0, 0, 'abandoned')",
        )
        .bind(format!("bulk{n}"))
        .bind(format!("bulk{n}@test"))
        .bind(
            at.format(&time::format_description::well_known::Rfc3339)
                .expect("format"),
        )
        .bind((at.unix_timestamp_nanos() / 1_000_000) as i64)
        .bind(
            at.format(&time::format_description::well_known::Rfc3339)
                .expect("format"),
        )
        .execute(&mut *transaction)
        .await
        .expect("insert");
    }
    transaction.commit().await.expect("commit");

    let listed = store.list(u32::MAX, 0).await.expect("list succeeds");
    assert_eq!(listed.len(), MAX_LIST_LIMIT as usize);
    assert_eq!(listed[0].id, format!("bulk{}", count - 1));
}

async fn reopen_keeps_records(database: TestDatabase) {
    let dir = tempfile::tempdir().expect("temp dir");
    let record = answered(&uuid::Uuid::new_v4().to_string(), OffsetDateTime::now_utc());
    {
        let store = CdrStore::open_at(dir.path(), &database.url(dir.path()))
            .await
            .expect("store opens");
        store.write(&record).await.expect("write succeeds");
        store.pool().close().await;
    }
    let store = CdrStore::open_at(dir.path(), &database.url(dir.path()))
        .await
        .expect("store reopens");
    let stored = store.get(&record.id).await.expect("get succeeds");
    assert_eq!(stored, Some(record.clone()));
    let second = unanswered("after-reopen", record.arrived_at, Disposition::Failed);
    store.write(&second).await.expect("write after reopen");
    assert_eq!(journal_lines(dir.path()).len(), 2);
}

#[tokio::test]
async fn open_creates_missing_data_dir() {
    let dir = tempfile::tempdir().expect("temp dir");
    let nested = dir.path().join("var").join("pbx");
    let store = CdrStore::open(&nested).await.expect("store opens");
    assert!(nested.join("pbx.sqlite").is_file());
    assert!(nested.join("cdr.jsonl").is_file());
    let mode: String = sqlx::query_scalar("PRAGMA journal_mode")
        .fetch_one(store.pool())
        .await
        .expect("pragma");
    assert_eq!(mode, "wal");
}

/// A database written before the voicemail disposition existed keeps its
/// rows when the store opens it; `caller_answered_at` takes `answered_at`.
async fn older_database_migrates_with_its_rows(database: TestDatabase) {
    let dir = tempfile::tempdir().expect("temp dir");
    let pool = cdr::database::connect(&database.url(dir.path()))
        .await
        .expect("database opens");
    let current = if database.is_postgres() {
        sqlx::migrate!("./migrations/postgres")
    } else {
        sqlx::migrate!("./migrations/sqlite")
    };
    let older = sqlx::migrate::Migrator {
        migrations: current.migrations[..2].to_vec().into(),
        ..sqlx::migrate::Migrator::DEFAULT
    };
    older.run(&pool).await.expect("older migrations run");
    sqlx::query(
        "INSERT INTO call_records (id, caller_call_id, caller, dialed, arrived_at, arrived_at_ms, \
         answered_at, ended_at, wait_seconds, talk_seconds, disposition) VALUES \
         ('old', 'c@x', '+1', '5000', '2026-12-01T10:00:00Z', 1764583200000, \
         '2026-12-01T10:00:05Z', '2026-12-01T10:01:00Z', 5.0, 55.0, 'answered')",
    )
    .execute(&pool)
    .await
    .expect("row of the older schema");
    pool.close().await;

    let store = CdrStore::open_at(dir.path(), &database.url(dir.path()))
        .await
        .expect("store migrates");
    let record = store.get("old").await.expect("get").expect("row kept");
    assert_eq!(record.disposition, Disposition::Answered);
    assert_eq!(
        record.caller_answered_at,
        Some(datetime!(2026-12-01 10:00:05 UTC))
    );
    assert_eq!(record.voicemail_box, None);
    assert_eq!(record.request_type, None);
    store
        .write(&voicemail("new", datetime!(2026-12-02 10:00:00 UTC)))
        .await
        .expect("the new disposition is accepted");
}

async fn search_combines_every_condition(database: TestDatabase) {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = CdrStore::open_at(dir.path(), &database.url(dir.path()))
        .await
        .expect("store opens");
    let t0 = datetime!(2026-12-04 09:00:00 UTC);
    let short = CallRecord {
        talk_seconds: 30.0,
        caller: "+33199990000".to_owned(),
        ..answered("short", t0)
    };
    let other_agent = CallRecord {
        agent: Some("1002".to_owned()),
        queue: Some("sales".to_owned()),
        ..answered("other-agent", t0 + Duration::minutes(10))
    };
    let long = answered("long", t0 + Duration::minutes(20));
    let abandoned = unanswered(
        "abandoned",
        t0 + Duration::minutes(30),
        Disposition::Abandoned,
    );
    for record in [&short, &other_agent, &long, &abandoned] {
        store.write(record).await.expect("write succeeds");
    }
    let ids = |records: Vec<CallRecord>| -> Vec<String> {
        records.into_iter().map(|record| record.id).collect()
    };
    let search = |filter: CallFilter| {
        let store = store.clone();
        async move { ids(store.search(&filter, 10, 0).await.expect("search succeeds")) }
    };
    assert_eq!(
        search(CallFilter::default()).await,
        ["abandoned", "long", "other-agent", "short"]
    );
    // `from` is included, `to` is not.
    let range = CallFilter {
        from: Some(t0 + Duration::minutes(10)),
        to: Some(t0 + Duration::minutes(30)),
        ..CallFilter::default()
    };
    assert_eq!(search(range).await, ["long", "other-agent"]);
    let queue = CallFilter {
        queue: Some("sales".to_owned()),
        ..CallFilter::default()
    };
    assert_eq!(search(queue).await, ["other-agent"]);
    let agent = CallFilter {
        agent: Some("1001".to_owned()),
        ..CallFilter::default()
    };
    assert_eq!(search(agent).await, ["long", "short"]);
    // Part of the number matches, and `%` is no wildcard.
    let caller = CallFilter {
        caller: Some("9999".to_owned()),
        ..CallFilter::default()
    };
    assert_eq!(search(caller).await, ["short"]);
    let wildcard = CallFilter {
        caller: Some("%".to_owned()),
        ..CallFilter::default()
    };
    assert!(search(wildcard).await.is_empty());
    let talk = CallFilter {
        min_talk_seconds: Some(30.0),
        max_talk_seconds: Some(60.0),
        ..CallFilter::default()
    };
    assert_eq!(search(talk).await, ["short"]);
    let combined = CallFilter {
        disposition: Some(Disposition::Answered),
        agent: Some("1001".to_owned()),
        min_talk_seconds: Some(60.0),
        ..CallFilter::default()
    };
    assert_eq!(search(combined).await, ["long"]);
    let paged = store
        .search(&CallFilter::default(), 2, 1)
        .await
        .expect("search succeeds");
    assert_eq!(ids(paged), ["long", "other-agent"]);
}

/// A call whose recording was paused by a supervisor and resumed by the
/// agent's code.
fn paused(id: &str, arrived_at: OffsetDateTime) -> CallRecord {
    let record = answered(id, arrived_at);
    let answered_at = record.answered_at.expect("answered");
    let event = |action, offset_ms: i64, source, actor: &str| RecordingEvent {
        action,
        offset_seconds: offset_ms as f64 / 1000.0,
        at: answered_at + Duration::milliseconds(offset_ms),
        source,
        actor: actor.to_owned(),
    };
    CallRecord {
        recording_events: vec![
            event(
                RecordingAction::Pause,
                12_345,
                RecordingEventSource::Api,
                "sam",
            ),
            event(
                RecordingAction::Resume,
                40_001,
                RecordingEventSource::Dtmf,
                "1001",
            ),
        ],
        ..record
    }
}

async fn recording_events_round_trip(database: TestDatabase) {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = CdrStore::open_at(dir.path(), &database.url(dir.path()))
        .await
        .expect("store opens");
    let base = datetime!(2026-12-04 09:00:00 UTC);
    let first = paused("p1", base);
    let plain = answered("p2", base + Duration::minutes(1));
    let third = paused("p3", base + Duration::minutes(2));
    for record in [&first, &plain, &third] {
        store.write(record).await.expect("write succeeds");
    }

    let stored = store.get("p1").await.expect("get").expect("p1 stored");
    assert_eq!(stored, first);
    let listed = store.list(10, 0).await.expect("list");
    assert_eq!(listed, [third.clone(), plain, first.clone()]);

    let line = journal_lines(dir.path()).remove(0);
    let value: serde_json::Value = serde_json::from_str(&line).expect("valid JSON");
    let events = &value["recording_events"];
    assert_eq!(events[0]["action"], "pause");
    assert_eq!(events[0]["offset_seconds"], 12.345);
    assert_eq!(events[0]["source"], "api");
    assert_eq!(events[0]["actor"], "sam");
    assert_eq!(events[1]["action"], "resume");
    assert_eq!(events[1]["source"], "dtmf");
    assert_eq!(events[1]["at"], "2026-12-04T09:00:47.621Z");
}

/// Journal lines written before recording events existed still parse.
#[test]
fn line_without_recording_events_parses() {
    let mut value = serde_json::to_value(answered("old", datetime!(2026-12-04 09:00:00 UTC)))
        .expect("record as JSON");
    value
        .as_object_mut()
        .expect("object")
        .remove("recording_events");
    let record: CallRecord = serde_json::from_value(value).expect("older line parses");
    assert!(record.recording_events.is_empty());
}

/// Binds a NULL float and then a value to one statement on one connection.
/// PostgreSQL rejects the value when the NULL was typed `float4` and the
/// prepared statement is reused.
async fn optional_floats_reuse_statement(database: TestDatabase) {
    use sqlx::Connection;
    let dir = tempfile::tempdir().expect("temp dir");
    sqlx::any::install_default_drivers();
    let mut connection = sqlx::AnyConnection::connect(database.url(dir.path()).expose())
        .await
        .expect("connects");
    for value in [None, Some(1.5), None, Some(-2.25)] {
        let read: Option<f64> = sqlx::query_scalar("SELECT $1")
            .bind(cdr::database::OptionalF64(value))
            .fetch_one(&mut connection)
            .await
            .unwrap_or_else(|error| panic!("binding {value:?}: {error}"));
        assert_eq!(read, value);
    }
}

/// Builds a call that agent 1001 transferred to 1002's extension after 30 s.
fn transferred(id: &str, arrived_at: OffsetDateTime) -> CallRecord {
    let record = answered(id, arrived_at);
    let answered_at = record.answered_at.expect("answered");
    let at = answered_at + Duration::seconds(30);
    CallRecord {
        transfers: vec![Transfer {
            at,
            offset_seconds: 30.0,
            from_agent: "1001".to_owned(),
            from_talk_seconds: 30.0,
            target: "1002".to_owned(),
            target_kind: TransferTarget::Extension,
            outcome: TransferOutcome::Connected,
            sip_status: None,
            answered_by: Some("1002".to_owned()),
            answered_at: Some(at + Duration::milliseconds(4_250)),
        }],
        ..record
    }
}

async fn transfers_round_trip(database: TestDatabase) {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = CdrStore::open_at(dir.path(), &database.url(dir.path()))
        .await
        .expect("store opens");
    let base = datetime!(2026-12-04 09:00:00 UTC);
    let record = transferred("t1", base);
    let plain = answered("t2", base + Duration::minutes(1));
    store.write(&record).await.expect("write succeeds");
    store.write(&plain).await.expect("write succeeds");

    let stored = store.get("t1").await.expect("get").expect("t1 stored");
    assert_eq!(stored, record);
    let stored_plain = store.get("t2").await.expect("get").expect("t2 stored");
    assert!(stored_plain.transfers.is_empty());

    let line = journal_lines(dir.path()).remove(0);
    let value: serde_json::Value = serde_json::from_str(&line).expect("valid JSON");
    let transfer = &value["transfers"][0];
    assert_eq!(transfer["from_agent"], "1001");
    assert_eq!(transfer["target_kind"], "extension");
    assert_eq!(transfer["outcome"], "connected");
    assert_eq!(transfer["offset_seconds"], 30.0);
    assert_eq!(transfer["sip_status"], serde_json::Value::Null);
}

cdr::storage_tests!(
    optional_floats_reuse_statement,
    round_trip_each_disposition,
    journal_has_one_line_per_record,
    journal_json_uses_rfc3339_and_snake_case,
    failed_insert_keeps_journal_line,
    concurrent_writes_group_and_one_duplicate_fails_alone,
    grouped_writes_store_every_record,
    grouped_writes_round_trip_many_rows,
    transfers_round_trip,
    list_is_newest_first_and_pages,
    list_caps_limit,
    reopen_keeps_records,
    older_database_migrates_with_its_rows,
    search_combines_every_condition,
    recording_events_round_trip,
);
