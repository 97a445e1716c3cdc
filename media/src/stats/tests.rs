use std::time::Duration;

use super::*;

const RATE: u32 = 8000;

fn at(start: Instant, millis: u64) -> Instant {
    start + Duration::from_millis(millis)
}

#[test]
fn steady_stream_has_no_loss_or_jitter() {
    let start = Instant::now();
    let mut stats = ReceptionStatistics::default();
    for index in 0..50u16 {
        let timestamp = u32::from(index) * 160;
        stats.record(
            7,
            1000 + index,
            timestamp,
            RATE,
            at(start, 20 * u64::from(index)),
        );
    }
    let snapshot = stats.snapshot();
    assert_eq!(snapshot.received, 50);
    assert_eq!(snapshot.expected, 50);
    assert!(snapshot.jitter_seconds.abs() < 1e-9);
}

#[test]
fn gaps_count_as_loss_across_wrap() {
    let start = Instant::now();
    let mut stats = ReceptionStatistics::default();
    // 65530..=65535 then 0..=9, with 65533 and 2 missing.
    let sequences = (65530u16..=65535)
        .chain(0..10)
        .filter(|s| *s != 65533 && *s != 2);
    for (index, sequence) in sequences.enumerate() {
        stats.record(
            7,
            sequence,
            index as u32 * 160,
            RATE,
            at(start, 20 * index as u64),
        );
    }
    let snapshot = stats.snapshot();
    assert_eq!(snapshot.expected, 16);
    assert_eq!(snapshot.received, 14);
}

#[test]
fn duplicates_count_as_received() {
    let start = Instant::now();
    let mut stats = ReceptionStatistics::default();
    for sequence in [1u16, 2, 2, 3] {
        stats.record(7, sequence, u32::from(sequence) * 160, RATE, start);
    }
    let snapshot = stats.snapshot();
    assert_eq!(snapshot.expected, 3);
    assert_eq!(snapshot.received, 4, "RFC 3550 loss may go negative");
}

/// Packets sent every 20 ms arrive alternately 0 and 10 ms late, so each
/// transit change D is 80 timestamp units. J converges to 80, which is 10 ms.
#[test]
fn alternating_delay_converges_to_reference_jitter() {
    let start = Instant::now();
    let mut stats = ReceptionStatistics::default();
    for index in 0..400u64 {
        let late = if index % 2 == 1 { 10 } else { 0 };
        stats.record(
            7,
            index as u16,
            index as u32 * 160,
            RATE,
            at(start, 20 * index + late),
        );
    }
    let jitter_ms = stats.snapshot().jitter_seconds * 1000.0;
    assert!((jitter_ms - 10.0).abs() < 0.01, "jitter {jitter_ms} ms");
}

#[test]
fn first_jitter_step_is_one_sixteenth() {
    let start = Instant::now();
    let mut stats = ReceptionStatistics::default();
    stats.record(7, 1, 0, RATE, start);
    stats.record(7, 2, 160, RATE, at(start, 36));
    // D = 16 ms = 128 units, J = 128 / 16 = 8 units = 1 ms.
    let jitter_ms = stats.snapshot().jitter_seconds * 1000.0;
    assert!((jitter_ms - 1.0).abs() < 1e-6, "jitter {jitter_ms} ms");
}

#[test]
fn new_ssrc_keeps_totals_without_false_loss() {
    let start = Instant::now();
    let mut stats = ReceptionStatistics::default();
    for sequence in 0..10u16 {
        stats.record(1, sequence, u32::from(sequence) * 160, RATE, start);
    }
    for sequence in 40_000..40_005u16 {
        stats.record(2, sequence, u32::from(sequence) * 160, RATE, start);
    }
    let snapshot = stats.snapshot();
    assert_eq!(snapshot.expected, 15);
    assert_eq!(snapshot.received, 15);
}

#[test]
fn single_jump_is_ignored_and_repeated_jump_restarts() {
    let start = Instant::now();
    let mut stats = ReceptionStatistics::default();
    for sequence in 0..5u16 {
        stats.record(1, sequence, 0, RATE, start);
    }
    stats.record(1, 30_000, 0, RATE, start);
    assert_eq!(stats.snapshot().received, 5, "stray packet not counted");
    stats.record(1, 5, 0, RATE, start);
    stats.record(1, 20_000, 0, RATE, start);
    stats.record(1, 20_001, 0, RATE, start);
    let snapshot = stats.snapshot();
    assert_eq!(snapshot.expected, 1);
    assert_eq!(snapshot.received, 1);
}

#[test]
fn mos_reference_points() {
    let perfect = estimate_mos(0.0, 0.0);
    // R = 93.2 - 0.72 = 92.48 gives MOS 4.40.
    assert!((perfect - 4.40).abs() < 0.01, "MOS {perfect}");
    let lossy = estimate_mos(0.05, 0.0);
    // Ie,eff = 95 * 5 / 30.1 = 15.78, R = 76.70, MOS 3.90.
    assert!((lossy - 3.90).abs() < 0.01, "MOS {lossy}");
    let jittery = estimate_mos(0.0, 100.0);
    // d = 230 ms, Id = 5.52 + 5.80 = 11.32, R = 81.88, MOS 4.09.
    assert!((jittery - 4.09).abs() < 0.01, "MOS {jittery}");
    assert_eq!(estimate_mos(1.0, 1000.0), 1.0);
}

#[test]
fn mos_decreases_with_loss_and_jitter() {
    let mut previous = f64::MAX;
    for percent in 0..=20 {
        let mos = estimate_mos(f64::from(percent) / 100.0, 20.0);
        assert!(mos < previous, "MOS did not fall at {percent} % loss");
        previous = mos;
    }
}
