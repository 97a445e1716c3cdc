//! The catalogue store on a temporary database, with explicit times.

use super::*;
use cdr::test_database::TestDatabase;
use time::macros::datetime;

const T0: OffsetDateTime = datetime!(2026-12-04 09:00:00 UTC);

async fn open(database: &TestDatabase) -> (tempfile::TempDir, cdr::CdrStore, Catalogue) {
    let dir = tempfile::tempdir().unwrap();
    let store = cdr::CdrStore::open_at(dir.path(), &database.url(dir.path()))
        .await
        .unwrap();
    let catalogue = Catalogue::open(store.pool().clone()).await.unwrap();
    (dir, store, catalogue)
}

fn facts(ended_at: OffsetDateTime, seconds: f64) -> FileFacts {
    FileFacts {
        ended_at,
        duration_seconds: Some(seconds),
        digest: Some(FileDigest {
            size: 1234,
            sha256: "ab".repeat(32),
        }),
    }
}

/// Writes a stereo 8 kHz WAV of `frames` silent frames; `finish` false
/// leaves its header counting none, as a killed writer does.
fn wav(path: &Path, frames: u32, finish: bool) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    let spec = hound::WavSpec {
        channels: 2,
        sample_rate: 8000,
        bits_per_sample: 16,
        sample_format: hound::SampleFormat::Int,
    };
    let mut writer = hound::WavWriter::create(path, spec).unwrap();
    writer.flush().unwrap();
    for _ in 0..frames * 2 {
        writer.write_sample(0i16).unwrap();
    }
    if finish {
        writer.finalize().unwrap();
    } else {
        std::mem::forget(writer);
    }
}

async fn a_recording_goes_from_started_to_complete(database: TestDatabase) {
    let (_dir, _store, catalogue) = open(&database).await;
    catalogue
        .started(
            "a",
            RecordingKind::Stereo,
            "recordings/2026/12/04/a.wav",
            T0,
        )
        .await
        .unwrap();
    let entry = catalogue.get("a").await.unwrap().unwrap();
    assert_eq!(entry.status, RecordingStatus::Recording);
    assert_eq!(entry.started_at, T0);
    assert_eq!(entry.sha256, None);

    let end = T0 + time::Duration::seconds(42);
    catalogue
        .finished(
            "a",
            RecordingKind::Stereo,
            "recordings/2026/12/04/a.wav",
            RecordingStatus::Complete,
            &facts(end, 41.5),
        )
        .await
        .unwrap();
    let entry = catalogue.get("a").await.unwrap().unwrap();
    assert_eq!(entry.status, RecordingStatus::Complete);
    // The start stays the one the relay reported.
    assert_eq!(entry.started_at, T0);
    assert_eq!(entry.ended_at, Some(end));
    assert_eq!(entry.duration_seconds, Some(41.5));
    assert_eq!(entry.size_bytes, Some(1234));
    assert_eq!(entry.sha256, Some("ab".repeat(32)));
    assert!(catalogue.get("b").await.unwrap().is_none());

    let json = serde_json::to_value(&entry).unwrap();
    assert_eq!(json["status"], "complete");
    assert_eq!(json["started_at"], "2026-12-04T09:00:00Z");
}

async fn a_finish_before_the_start_insert_keeps_the_finish(database: TestDatabase) {
    let (_dir, _store, catalogue) = open(&database).await;
    let end = T0 + time::Duration::seconds(10);
    catalogue
        .finished(
            "a",
            RecordingKind::Stereo,
            "recordings/a.wav",
            RecordingStatus::Complete,
            &facts(end, 4.0),
        )
        .await
        .unwrap();
    catalogue
        .started(
            "a",
            RecordingKind::Stereo,
            "recordings/a.wav",
            T0 + time::Duration::seconds(6),
        )
        .await
        .unwrap();
    let entry = catalogue.get("a").await.unwrap().unwrap();
    assert_eq!(entry.status, RecordingStatus::Complete);
    assert_eq!(entry.started_at, T0 + time::Duration::seconds(6));
}

async fn list_filters_by_status_newest_first(database: TestDatabase) {
    let (_dir, _store, catalogue) = open(&database).await;
    for (index, call) in ["a", "b", "c"].into_iter().enumerate() {
        let at = T0 + time::Duration::minutes(index as i64);
        catalogue
            .started(
                call,
                RecordingKind::Stereo,
                &format!("recordings/{call}.wav"),
                at,
            )
            .await
            .unwrap();
    }
    catalogue
        .finished(
            "b",
            RecordingKind::Stereo,
            "recordings/b.wav",
            RecordingStatus::Complete,
            &facts(T0 + time::Duration::minutes(2), 60.0),
        )
        .await
        .unwrap();
    let all: Vec<String> = catalogue
        .list(None, 10, 0)
        .await
        .unwrap()
        .into_iter()
        .map(|entry| entry.call_id)
        .collect();
    assert_eq!(all, ["c", "b", "a"]);
    let paged = catalogue.list(None, 1, 1).await.unwrap();
    assert_eq!(paged[0].call_id, "b");
    let recording = catalogue
        .list(Some(RecordingStatus::Recording), 10, 0)
        .await
        .unwrap();
    assert_eq!(recording.len(), 2);
    assert_eq!(catalogue.all().await.unwrap()[0].call_id, "a");
}

async fn unfinished_recordings_become_interrupted_with_the_repaired_hash(database: TestDatabase) {
    let (dir, _store, catalogue) = open(&database).await;
    let path = "recordings/2026/12/04/a.wav";
    let file = dir.path().join(path);
    wav(&file, 16_000, false);
    catalogue
        .started("a", RecordingKind::Stereo, path, T0)
        .await
        .unwrap();
    catalogue
        .started("gone", RecordingKind::Stereo, "recordings/gone.wav", T0)
        .await
        .unwrap();

    let changed = recover_unfinished(&catalogue, dir.path(), T0 + time::Duration::hours(1))
        .await
        .unwrap();
    assert_eq!(changed, 2);

    let entry = catalogue.get("a").await.unwrap().unwrap();
    assert_eq!(entry.status, RecordingStatus::Interrupted);
    let repaired = digest_file(&file).unwrap();
    assert_eq!(entry.sha256.as_deref(), Some(repaired.sha256.as_str()));
    assert_eq!(entry.size_bytes, Some(repaired.size));
    // hound buffers, so up to 2 s reached the disk before the "kill".
    let seconds = entry.duration_seconds.unwrap();
    assert!(seconds > 1.5 && seconds <= 2.0, "{seconds}");
    assert!(recordings::inspect(&file).unwrap().is_consistent());

    let gone = catalogue.get("gone").await.unwrap().unwrap();
    assert_eq!(gone.status, RecordingStatus::Interrupted);
    assert_eq!(gone.sha256, None);
    assert_eq!(gone.ended_at, Some(T0 + time::Duration::hours(1)));

    assert_eq!(
        recover_unfinished(&catalogue, dir.path(), T0)
            .await
            .unwrap(),
        0
    );
}

#[test]
fn digest_matches_a_known_value() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("abc");
    std::fs::write(&file, b"abc").unwrap();
    let digest = digest_file(&file).unwrap();
    assert_eq!(digest.size, 3);
    // FIPS 180-2 example for "abc".
    assert_eq!(
        digest.sha256,
        "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
    );
}

#[test]
fn only_plain_relative_paths_are_used() {
    assert!(is_plain_relative("recordings/2026/12/04/a.wav"));
    assert!(!is_plain_relative("/etc/passwd"));
    assert!(!is_plain_relative("recordings/../../x.wav"));
    assert!(!is_plain_relative(""));
}

async fn mixed_mono_has_its_own_entry(database: TestDatabase) {
    let (_dir, _store, catalogue) = open(&database).await;
    let stereo = "recordings/2026/12/04/a.wav";
    let mixed = "recordings/2026/12/04/a-mixed.wav";
    catalogue
        .started("a", RecordingKind::Stereo, stereo, T0)
        .await
        .unwrap();
    catalogue
        .started("a", RecordingKind::MixedMono, mixed, T0)
        .await
        .unwrap();
    let end = T0 + time::Duration::seconds(42);
    catalogue
        .finished(
            "a",
            RecordingKind::MixedMono,
            mixed,
            RecordingStatus::Complete,
            &facts(end, 42.0),
        )
        .await
        .unwrap();

    let entry = catalogue.get("a").await.unwrap().unwrap();
    assert_eq!(entry.kind, RecordingKind::Stereo);
    assert_eq!(entry.path, stereo);
    assert_eq!(entry.status, RecordingStatus::Recording, "stereo unchanged");
    let entry = catalogue
        .get_kind("a", RecordingKind::MixedMono)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(entry.path, mixed);
    assert_eq!(entry.status, RecordingStatus::Complete);
    let kinds: Vec<RecordingKind> = catalogue
        .list(None, 10, 0)
        .await
        .unwrap()
        .into_iter()
        .map(|entry| entry.kind)
        .collect();
    assert_eq!(kinds, [RecordingKind::Stereo, RecordingKind::MixedMono]);

    catalogue
        .mark_deleted("a", RecordingKind::MixedMono, end, "retention: test")
        .await
        .unwrap();
    let stereo_entry = catalogue.get("a").await.unwrap().unwrap();
    assert_eq!(stereo_entry.status, RecordingStatus::Recording);
    let mixed_entry = catalogue
        .get_kind("a", RecordingKind::MixedMono)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(mixed_entry.status, RecordingStatus::Deleted);
}

/// A catalogue written before mixed mono files existed keeps its rows as
/// stereo recordings.
async fn older_catalogue_migrates_with_its_rows(database: TestDatabase) {
    let dir = tempfile::tempdir().unwrap();
    let store = cdr::CdrStore::open_at(dir.path(), &database.url(dir.path()))
        .await
        .unwrap();
    let pool = store.pool().clone();
    let current = if database.is_postgres() {
        sqlx::migrate!("migrations/postgres")
    } else {
        sqlx::migrate!("migrations/sqlite")
    };
    let older = sqlx::migrate::Migrator {
        migrations: current
            .migrations
            .iter()
            .filter(|migration| migration.version < 2102)
            .cloned()
            .collect::<Vec<_>>()
            .into(),
        ignore_missing: true,
        ..sqlx::migrate::Migrator::DEFAULT
    };
    older.run(&pool).await.unwrap();
    sqlx::query(
        "INSERT INTO recordings (call_id, path, status, started_at_ms) \
         VALUES ('old', 'recordings/old.wav', 'recording', $1)",
    )
    .bind(millis(T0))
    .execute(&pool)
    .await
    .unwrap();

    let catalogue = Catalogue::open(pool).await.unwrap();
    let entry = catalogue.get("old").await.unwrap().unwrap();
    assert_eq!(entry.kind, RecordingKind::Stereo);
    assert_eq!(entry.path, "recordings/old.wav");
    assert_eq!(entry.started_at, T0);
}

cdr::storage_tests!(
    a_recording_goes_from_started_to_complete,
    a_finish_before_the_start_insert_keeps_the_finish,
    list_filters_by_status_newest_first,
    unfinished_recordings_become_interrupted_with_the_repaired_hash,
    mixed_mono_has_its_own_entry,
    older_catalogue_migrates_with_its_rows,
);
