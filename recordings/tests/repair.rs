//! Repair of recordings whose writer died: the recorder is leaked with
//! `std::mem::forget`, which leaves the file as a killed process would.

use std::fs::OpenOptions;
use std::io::Write;
use std::path::Path;
use std::time::{Duration, Instant};

use recordings::{Channel, Recorder, RepairError, RepairOutcome, repair};
use rtp::{PT_PCMU, RtpPacket};

/// Records `packets` 20 ms packets on the caller channel, flushing every
/// 100 ms of virtual time, and leaks the recorder without finishing it.
fn record_and_crash(path: &Path, packets: u32) {
    let start = Instant::now();
    let mut recorder =
        Recorder::with_jitter_window(path, start, Duration::ZERO).expect("create recorder");
    let payload = [0x90u8; 160];
    for index in 0..packets {
        let arrival = start + Duration::from_millis(20 * u64::from(index));
        let packet = RtpPacket {
            payload_type: PT_PCMU,
            marker: false,
            sequence: index as u16,
            timestamp: 160 * index,
            ssrc: 1,
            payload: &payload,
        };
        recorder.push(Channel::Caller, &packet, arrival);
        if index % 5 == 4 {
            recorder.flush(arrival).expect("flush");
        }
    }
    std::mem::forget(recorder);
}

fn header_sizes(path: &Path) -> (u32, u32) {
    let bytes = std::fs::read(path).expect("read file");
    let riff = u32::from_le_bytes([bytes[4], bytes[5], bytes[6], bytes[7]]);
    let data = u32::from_le_bytes([bytes[40], bytes[41], bytes[42], bytes[43]]);
    (riff, data)
}

#[test]
fn crashed_recording_is_repaired() {
    let folder = tempfile::tempdir().expect("temp dir");
    let path = folder.path().join("crashed.wav");
    record_and_crash(&path, 150);

    let file_len = std::fs::metadata(&path).expect("metadata").len();
    let (_, stale_data) = header_sizes(&path);
    assert!(
        u64::from(stale_data) < file_len - 44,
        "the header lags the data before repair"
    );

    let outcome = repair(&path).expect("repair");
    let RepairOutcome::Repaired {
        frames,
        header_frames,
        truncated_bytes,
    } = outcome
    else {
        panic!("expected a repair, got {outcome:?}");
    };
    assert_eq!(frames, (file_len - 44) / 4);
    assert_eq!(header_frames, u64::from(stale_data) / 4);
    assert_eq!(truncated_bytes, 0);
    assert_eq!(
        header_sizes(&path),
        (36 + frames as u32 * 4, frames as u32 * 4)
    );

    let reader = hound::WavReader::open(&path).expect("readable WAV");
    assert_eq!(u64::from(reader.duration()), frames);
    assert_eq!(
        repair(&path).expect("second repair"),
        RepairOutcome::Intact { frames }
    );
}

#[test]
fn partial_frame_is_cut() {
    let folder = tempfile::tempdir().expect("temp dir");
    let path = folder.path().join("partial.wav");
    record_and_crash(&path, 60);
    let file_len = std::fs::metadata(&path).expect("metadata").len();
    let mut file = OpenOptions::new().append(true).open(&path).expect("open");
    file.write_all(&[1, 2, 3]).expect("append a partial frame");
    drop(file);

    let outcome = repair(&path).expect("repair");
    assert!(
        matches!(
            outcome,
            RepairOutcome::Repaired {
                truncated_bytes: 3,
                ..
            }
        ),
        "{outcome:?}"
    );
    assert_eq!(std::fs::metadata(&path).expect("metadata").len(), file_len);
    let mut reader = hound::WavReader::open(&path).expect("readable WAV");
    let samples: Result<Vec<i16>, _> = reader.samples::<i16>().collect();
    assert_eq!(
        samples.expect("every sample reads").len() as u64,
        (file_len - 44) / 2
    );
}

#[test]
fn finished_recording_is_intact() {
    let folder = tempfile::tempdir().expect("temp dir");
    let path = folder.path().join("finished.wav");
    let start = Instant::now();
    let recorder = Recorder::create(&path, start).expect("create recorder");
    let summary = recorder
        .finish(start + Duration::from_secs(1))
        .expect("finish");
    assert_eq!(
        repair(&path).expect("repair"),
        RepairOutcome::Intact {
            frames: summary.frames
        }
    );
}

#[test]
fn header_only_file_has_zero_frames() {
    let folder = tempfile::tempdir().expect("temp dir");
    let path = folder.path().join("empty.wav");
    record_and_crash(&path, 0);
    let outcome = repair(&path).expect("repair");
    assert!(
        matches!(
            outcome,
            RepairOutcome::Intact { frames: 0 } | RepairOutcome::Repaired { frames: 0, .. }
        ),
        "{outcome:?}"
    );
}

#[test]
fn rejects_files_that_are_not_wav() {
    let folder = tempfile::tempdir().expect("temp dir");
    let text = folder.path().join("notes.wav");
    std::fs::write(&text, b"not a wave file at all").expect("write");
    assert!(matches!(repair(&text), Err(RepairError::NotWave { .. })));

    let short = folder.path().join("short.wav");
    std::fs::write(&short, b"RIFF").expect("write");
    assert!(matches!(repair(&short), Err(RepairError::NotWave { .. })));

    let no_data = folder.path().join("no-data.wav");
    let mut bytes = b"RIFF\x04\x00\x00\x00WAVE".to_vec();
    bytes.extend_from_slice(b"LIST\x03\x00\x00\x00abc\x00");
    std::fs::write(&no_data, &bytes).expect("write");
    assert!(matches!(
        repair(&no_data),
        Err(RepairError::MissingData { .. })
    ));

    let empty = folder.path().join("empty.wav");
    std::fs::write(&empty, b"").expect("write");
    assert!(matches!(repair(&empty), Err(RepairError::Empty { .. })));

    let missing = folder.path().join("missing.wav");
    assert!(matches!(repair(&missing), Err(RepairError::Io { .. })));
}

#[test]
fn inspect_reports_a_stale_header_without_writing() {
    let folder = tempfile::tempdir().expect("temp dir");
    let path = folder.path().join("call.wav");
    record_and_crash(&path, 100);
    let before = std::fs::read(&path).expect("read file");
    let stale = recordings::inspect(&path).expect("inspect");
    assert!(!stale.is_consistent(), "{stale:?}");
    assert!(stale.file_frames > stale.header_frames, "{stale:?}");
    assert_eq!(std::fs::read(&path).expect("read file"), before);

    repair(&path).expect("repair");
    let repaired = recordings::inspect(&path).expect("inspect");
    assert!(repaired.is_consistent(), "{repaired:?}");
    assert_eq!(repaired.header_frames, stale.file_frames);
}
