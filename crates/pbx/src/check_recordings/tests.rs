//! The check on a temporary data folder: a good file, a truncated one, one
//! with a changed byte, one deleted by retention and an orphan.

use super::*;
use crate::catalogue::{FileFacts, digest_file};
use time::OffsetDateTime;
use time::macros::datetime;

const T0: OffsetDateTime = datetime!(2026-12-04 09:00:00 UTC);

/// Writes a finished stereo 8 kHz WAV of `frames` frames of a ramp.
fn wav(path: &Path, frames: u32) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    let spec = hound::WavSpec {
        channels: 2,
        sample_rate: 8000,
        bits_per_sample: 16,
        sample_format: hound::SampleFormat::Int,
    };
    let mut writer = hound::WavWriter::create(path, spec).unwrap();
    for index in 0..frames * 2 {
        writer.write_sample((index % 1000) as i16).unwrap();
    }
    writer.finalize().unwrap();
}

/// Records a finished recording of 2 s for `call` as the engine would.
async fn catalogued(catalogue: &Catalogue, data_dir: &Path, call: &str) -> std::path::PathBuf {
    let path = format!("recordings/2026/12/04/{call}.wav");
    let file = data_dir.join(&path);
    wav(&file, 16_000);
    catalogue
        .started(call, crate::catalogue::RecordingKind::Stereo, &path, T0)
        .await
        .unwrap();
    let facts = FileFacts {
        ended_at: T0 + time::Duration::seconds(2),
        duration_seconds: Some(2.0),
        digest: Some(digest_file(&file).unwrap()),
    };
    catalogue
        .finished(
            call,
            crate::catalogue::RecordingKind::Stereo,
            &path,
            RecordingStatus::Complete,
            &facts,
        )
        .await
        .unwrap();
    file
}

/// [`run`] starts a runtime of its own, so it runs on a blocking thread.
async fn run_outside(data_dir: &Path) -> i32 {
    let data_dir = data_dir.to_path_buf();
    tokio::task::spawn_blocking(move || run(&data_dir, None))
        .await
        .unwrap()
}

#[tokio::test]
async fn reports_each_damaged_file_and_orphan() {
    let dir = tempfile::tempdir().unwrap();
    let data_dir = dir.path();
    let store = cdr::CdrStore::open(data_dir).await.unwrap();
    let catalogue = Catalogue::open(store.pool().clone()).await.unwrap();

    catalogued(&catalogue, data_dir, "good").await;
    let good_only = check(data_dir, &catalogue.all().await.unwrap());
    assert!(good_only.is_clean(), "{:?}", good_only.problems);
    assert_eq!(good_only.verified, 1);
    assert_eq!(run_outside(data_dir).await, 0);

    let truncated = catalogued(&catalogue, data_dir, "truncated").await;
    let length = std::fs::metadata(&truncated).unwrap().len();
    std::fs::OpenOptions::new()
        .write(true)
        .open(&truncated)
        .unwrap()
        .set_len(length - 1001)
        .unwrap();

    let changed = catalogued(&catalogue, data_dir, "changed").await;
    let mut bytes = std::fs::read(&changed).unwrap();
    bytes[1000] ^= 0x01;
    std::fs::write(&changed, bytes).unwrap();

    let deleted = catalogued(&catalogue, data_dir, "deleted").await;
    std::fs::remove_file(deleted).unwrap();
    catalogue
        .mark_deleted(
            "deleted",
            crate::catalogue::RecordingKind::Stereo,
            T0,
            "retention: older than 30 days",
        )
        .await
        .unwrap();

    wav(&data_dir.join("recordings/2026/12/03/orphan.wav"), 800);
    std::fs::write(data_dir.join("recordings/notes.txt"), "not audio").unwrap();

    let report = check(data_dir, &catalogue.all().await.unwrap());
    println!("{:#?}", report.problems);
    let about = |call: &str| -> Vec<&String> {
        report
            .problems
            .iter()
            .filter(|line| line.contains(&format!("/{call}.wav: ")))
            .collect()
    };
    assert!(about("good").is_empty());
    assert!(about("deleted").is_empty());

    let truncated = about("truncated");
    assert!(
        truncated.iter().any(|line| line.contains("size is")),
        "{truncated:?}"
    );
    assert!(truncated.iter().any(|line| line.contains("SHA-256 is")));
    assert!(
        truncated
            .iter()
            .any(|line| line.contains("WAV header does not match the file")),
        "{truncated:?}"
    );

    let changed = about("changed");
    assert_eq!(changed.len(), 1, "{changed:?}");
    assert!(changed[0].starts_with("recordings/2026/12/04/changed.wav: SHA-256 is "));

    assert_eq!(
        about("orphan"),
        ["recordings/2026/12/03/orphan.wav: no catalogue entry"]
    );
    assert_eq!(report.orphans, 1);
    assert_eq!(report.verified, 1);
    assert_eq!(report.deleted, 1);
    assert!(!report.is_clean());
    assert_eq!(
        report.summary(),
        format!(
            "4 catalogued recordings: 1 verified, 0 in progress, 1 deleted; \
             {} problems, 1 file without a catalogue entry",
            report.problems.len() - 1
        )
    );
    assert_eq!(run_outside(data_dir).await, 1);
}

#[tokio::test]
async fn a_deleted_file_that_is_still_there_is_a_problem() {
    let dir = tempfile::tempdir().unwrap();
    let store = cdr::CdrStore::open(dir.path()).await.unwrap();
    let catalogue = Catalogue::open(store.pool().clone()).await.unwrap();
    catalogued(&catalogue, dir.path(), "kept").await;
    catalogue
        .mark_deleted(
            "kept",
            crate::catalogue::RecordingKind::Stereo,
            T0,
            "retention: older than 1 day",
        )
        .await
        .unwrap();
    let report = check(dir.path(), &catalogue.all().await.unwrap());
    assert_eq!(
        report.problems,
        [
            "recordings/2026/12/04/kept.wav: catalogued as deleted on 2026-12-04 but the file is still there"
        ]
    );
}
