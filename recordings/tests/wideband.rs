//! 16 kHz recordings of G.722 calls, on a virtual clock.

use std::f64::consts::PI;
use std::time::{Duration, Instant};

use recordings::{Channel, Recorder, RecordingError, WIDEBAND_SAMPLE_RATE};
use rtp::g722::{G722Encoder, PT_G722};
use rtp::{PT_PCMU, RtpPacket, g711};

fn tone(frequency: f64, rate: f64, count: usize) -> Vec<i16> {
    (0..count)
        .map(|n| (8000.0 * (2.0 * PI * frequency * n as f64 / rate).sin()) as i16)
        .collect()
}

/// Amplitude of one frequency by a single DFT bin.
fn amplitude_at(samples: &[i16], frequency: f64, rate: f64) -> f64 {
    let (mut real, mut imaginary) = (0.0, 0.0);
    for (n, sample) in samples.iter().enumerate() {
        let phase = 2.0 * PI * frequency * n as f64 / rate;
        real += f64::from(*sample) * phase.cos();
        imaginary += f64::from(*sample) * phase.sin();
    }
    2.0 * (real * real + imaginary * imaginary).sqrt() / samples.len() as f64
}

#[test]
fn g722_and_pcmu_recorded_at_16_khz() {
    let folder = tempfile::tempdir().expect("temp dir");
    let path = folder.path().join("wideband.wav");
    let start = Instant::now();
    let mut recorder = Recorder::with_sample_rate(
        &path,
        start,
        Duration::from_millis(200),
        WIDEBAND_SAMPLE_RATE,
    )
    .expect("create recorder");

    // One second: G.722 with a 5 kHz tone (only wideband can carry it) on
    // the caller channel, PCMU with a 1 kHz tone on the agent channel.
    let wideband = tone(5000.0, 16_000.0, 16_000);
    let narrowband = tone(1000.0, 8000.0, 8000);
    let mut encoder = G722Encoder::new();
    for index in 0..50usize {
        let arrival = start + Duration::from_millis(20 * index as u64);
        let timestamp = 160 * index as u32;
        let mut g722 = Vec::new();
        encoder.encode(&wideband[320 * index..320 * (index + 1)], &mut g722);
        let caller = RtpPacket {
            payload_type: PT_G722,
            marker: false,
            sequence: index as u16,
            timestamp,
            ssrc: 1,
            payload: &g722,
        };
        recorder.push(Channel::Caller, &caller, arrival);
        let pcmu: Vec<u8> = narrowband[160 * index..160 * (index + 1)]
            .iter()
            .map(|sample| g711::linear_to_ulaw(*sample))
            .collect();
        let agent = RtpPacket {
            payload_type: PT_PCMU,
            sequence: index as u16,
            ssrc: 2,
            payload: &pcmu,
            ..caller
        };
        recorder.push(Channel::Agent, &agent, arrival);
        recorder.flush(arrival).expect("flush");
    }
    let summary = recorder
        .finish(start + Duration::from_secs(1))
        .expect("finish");
    assert_eq!(summary.frames, 16_000);
    assert!((summary.duration_seconds - 1.0).abs() < 1e-9);

    let mut reader = hound::WavReader::open(&path).expect("readable WAV");
    assert_eq!(reader.spec().sample_rate, 16_000);
    assert_eq!(reader.spec().channels, 2);
    let samples: Vec<i16> = reader
        .samples::<i16>()
        .map(|s| s.expect("sample"))
        .collect();
    let left: Vec<i16> = samples.iter().step_by(2).copied().collect();
    let right: Vec<i16> = samples.iter().skip(1).step_by(2).copied().collect();

    let caller_tone = amplitude_at(&left[3200..], 5000.0, 16_000.0);
    assert!(
        (caller_tone / 8000.0 - 1.0).abs() < 0.1,
        "5 kHz at {caller_tone}"
    );
    let agent_tone = amplitude_at(&right[3200..], 1000.0, 16_000.0);
    assert!(
        (agent_tone / 8000.0 - 1.0).abs() < 0.1,
        "1 kHz at {agent_tone}"
    );
}

#[test]
fn rejects_other_sample_rates() {
    let folder = tempfile::tempdir().expect("temp dir");
    let path = folder.path().join("44k.wav");
    let result = Recorder::with_sample_rate(&path, Instant::now(), Duration::ZERO, 44_100);
    assert!(matches!(
        result,
        Err(RecordingError::UnsupportedSampleRate {
            sample_rate: 44_100,
            ..
        })
    ));
}
