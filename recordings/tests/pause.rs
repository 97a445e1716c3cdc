//! Recording pause and the mixed mono file: synthetic RTP on a virtual
//! clock, the WAV files read back with hound.

use std::path::Path;
use std::time::{Duration, Instant};

use recordings::{Channel, Recorder, RecorderOptions, Timeline};
use rtp::{PT_PCMU, RtpPacket, g711};

fn ms(millis: u64) -> Duration {
    Duration::from_millis(millis)
}

/// Mu-law code of the caller's constant level, and of the agent's.
const CALLER_CODE: u8 = 0x90;
const AGENT_CODE: u8 = 0x20;

fn read_samples(path: &Path, channels: u16) -> Vec<i16> {
    let mut reader = hound::WavReader::open(path).expect("readable WAV");
    let spec = reader.spec();
    assert_eq!(spec.channels, channels);
    assert_eq!(spec.sample_rate, 8000);
    assert_eq!(spec.bits_per_sample, 16);
    reader
        .samples::<i16>()
        .map(|sample| sample.expect("valid sample"))
        .collect()
}

fn read_frames(path: &Path) -> Vec<(i16, i16)> {
    read_samples(path, 2)
        .chunks_exact(2)
        .map(|pair| (pair[0], pair[1]))
        .collect()
}

fn packet(payload: &[u8], index: u32) -> RtpPacket<'_> {
    RtpPacket {
        payload_type: PT_PCMU,
        marker: false,
        sequence: index as u16,
        timestamp: 160 * index,
        ssrc: 0xCAFE,
        payload,
    }
}

/// Sends `seconds` of 20 ms packets of a constant level on both channels
/// from `start`, each arriving exactly on time, and calls `at_packet`
/// before each packet index so a test can pause or resume in between.
/// Flushes every 100 ms of virtual time.
fn talk(
    recorder: &mut Recorder,
    start: Instant,
    seconds: u32,
    mut at_packet: impl FnMut(&mut Recorder, u32, Instant),
) {
    let caller = [CALLER_CODE; 160];
    let agent = [AGENT_CODE; 160];
    for index in 0..seconds * 50 {
        let arrival = start + ms(20 * u64::from(index));
        at_packet(recorder, index, arrival);
        recorder.push(Channel::Caller, &packet(&caller, index), arrival);
        recorder.push(Channel::Agent, &packet(&agent, index), arrival);
        if index % 5 == 0 {
            recorder.flush(arrival).expect("flush");
        }
    }
}

#[test]
fn pause_writes_silence_on_both_channels() {
    let folder = tempfile::tempdir().expect("temp dir");
    let path = folder.path().join("paused.wav");
    let start = Instant::now();
    let mut recorder = Recorder::create(&path, start).expect("create");
    // Pause at 1.000 s and resume at 2.5 s, both between packets.
    talk(
        &mut recorder,
        start,
        4,
        |recorder, index, now| match index {
            50 => assert!(recorder.pause(now), "first pause is accepted"),
            125 => assert!(recorder.resume(now), "resume after pause is accepted"),
            _ => {}
        },
    );
    let summary = recorder.finish(start + ms(4000)).expect("finish");

    assert_eq!(summary.frames, 32_000, "pausing keeps the file's length");
    let frames = read_frames(&path);
    assert_eq!(frames.len(), 32_000);
    let audio = (
        g711::ulaw_to_linear(CALLER_CODE),
        g711::ulaw_to_linear(AGENT_CODE),
    );
    for (frame, &samples) in frames.iter().enumerate() {
        let expected = if (8_000..20_000).contains(&frame) {
            (0, 0)
        } else {
            audio
        };
        assert_eq!(samples, expected, "frame {frame}");
    }
}

#[test]
fn pause_reaches_reordered_audio_of_paused_span() {
    let folder = tempfile::tempdir().expect("temp dir");
    let path = folder.path().join("late.wav");
    let start = Instant::now();
    let mut recorder = Recorder::create(&path, start).expect("create");
    let caller = [CALLER_CODE; 160];
    // Packets 0 to 99 (two seconds), arriving 100 ms late, so the packets
    // of the paused span (1.0 to 1.5 s) arrive after the resume command.
    recorder.pause(start + ms(1000));
    recorder.resume(start + ms(1500));
    for index in 0..100u32 {
        let arrival = start + ms(20 * u64::from(index) + 100);
        let anchor = if index == 0 { start } else { arrival };
        recorder.push(Channel::Caller, &packet(&caller, index), anchor);
        recorder.flush(arrival).expect("flush");
    }
    recorder.finish(start + ms(2000)).expect("finish");

    let frames = read_frames(&path);
    let level = g711::ulaw_to_linear(CALLER_CODE);
    assert_eq!(frames[7_999].0, level, "last frame before the pause");
    assert!(
        frames[8_000..12_000].iter().all(|&frame| frame == (0, 0)),
        "paused span is silent whenever its packets arrive"
    );
    assert_eq!(frames[12_000].0, level, "first frame after the resume");
}

#[test]
fn pause_twice_is_refused() {
    let folder = tempfile::tempdir().expect("temp dir");
    let path = folder.path().join("twice.wav");
    let start = Instant::now();
    let mut recorder = Recorder::create(&path, start).expect("create");

    assert!(!recorder.is_paused());
    assert!(!recorder.resume(start + ms(100)), "resume while recording");
    assert!(recorder.pause(start + ms(200)));
    assert!(recorder.is_paused());
    assert!(!recorder.pause(start + ms(300)), "pause while paused");
    assert!(recorder.resume(start + ms(400)));
    assert!(!recorder.is_paused());
    assert!(!recorder.resume(start + ms(500)), "second resume");
}

#[test]
fn pause_until_end_keeps_length() {
    let folder = tempfile::tempdir().expect("temp dir");
    let path = folder.path().join("until-end.wav");
    let start = Instant::now();
    let mut recorder = Recorder::create(&path, start).expect("create");
    talk(&mut recorder, start, 2, |recorder, index, now| {
        if index == 75 {
            recorder.pause(now);
        }
    });
    // The call ends 250 ms after the last packet, still paused.
    let summary = recorder.finish(start + ms(2250)).expect("finish");

    assert_eq!(summary.frames, 18_000);
    let frames = read_frames(&path);
    assert_eq!(frames.len(), 18_000);
    assert_ne!(frames[11_999], (0, 0), "audio before the pause");
    assert!(frames[12_000..].iter().all(|&frame| frame == (0, 0)));
}

#[test]
fn pause_cannot_reach_written_frames() {
    let start = Instant::now();
    let mut timeline = Timeline::new(start, ms(200));
    let caller = [CALLER_CODE; 160];
    for index in 0..50u32 {
        let arrival = start + ms(20 * u64::from(index));
        timeline.push(Channel::Caller, &packet(&caller, index), arrival);
    }
    let mut frames = Vec::new();
    timeline
        .drain_until(4_000, |left, right| {
            frames.push((left, right));
            Ok::<(), ()>(())
        })
        .expect("drain");
    // A pause dated before the written frames starts at the first unwritten one.
    assert!(timeline.pause(start + ms(100)));
    assert!(timeline.resume(start + ms(600)));
    timeline
        .drain_until(8_000, |left, right| {
            frames.push((left, right));
            Ok::<(), ()>(())
        })
        .expect("drain");

    let level = g711::ulaw_to_linear(CALLER_CODE);
    assert_eq!(frames.len(), 8_000);
    assert!(frames[..4_000].iter().all(|&(left, _)| left == level));
    assert!(frames[4_000..4_800].iter().all(|&frame| frame == (0, 0)));
    assert!(frames[4_800..].iter().all(|&(left, _)| left == level));
}

#[test]
fn mixed_mono_sums_both_channels() {
    let folder = tempfile::tempdir().expect("temp dir");
    let path = folder.path().join("call.wav");
    let mixed_path = folder.path().join("call-mixed.wav");
    let start = Instant::now();
    let options = RecorderOptions {
        mixed_mono: Some(mixed_path.clone()),
        ..RecorderOptions::default()
    };
    let mut recorder = Recorder::with_options(&path, start, options).expect("create");
    talk(
        &mut recorder,
        start,
        2,
        |recorder, index, now| match index {
            50 => {
                recorder.pause(now);
            }
            60 => {
                recorder.resume(now);
            }
            _ => {}
        },
    );
    let summary = recorder.finish(start + ms(2100)).expect("finish");

    assert_eq!(
        summary.mixed_mono_path.as_deref(),
        Some(mixed_path.as_path())
    );
    let stereo = read_frames(&path);
    let mono = read_samples(&mixed_path, 1);
    assert_eq!(stereo.len(), 16_800);
    assert_eq!(mono.len(), stereo.len(), "mono file has the stereo length");
    for (frame, (&(left, right), &mixed)) in stereo.iter().zip(&mono).enumerate() {
        assert_eq!(mixed, left.saturating_add(right), "frame {frame}");
    }
    assert_eq!(mono[8_000], 0, "pause is silent in the mix too");
    assert_ne!(mono[7_999], 0);
}

#[test]
fn mixed_mono_saturates() {
    let folder = tempfile::tempdir().expect("temp dir");
    let path = folder.path().join("loud.wav");
    let mixed_path = folder.path().join("loud-mixed.wav");
    let start = Instant::now();
    let options = RecorderOptions {
        mixed_mono: Some(mixed_path.clone()),
        ..RecorderOptions::default()
    };
    let mut recorder = Recorder::with_options(&path, start, options).expect("create");
    // 0x80 is the largest positive mu-law level (32124), 0x00 the largest
    // negative one.
    let positive = [0x80u8; 160];
    let negative = [0x00u8; 160];
    for index in 0..5u32 {
        let arrival = start + ms(20 * u64::from(index));
        recorder.push(Channel::Caller, &packet(&positive, index), arrival);
        recorder.push(Channel::Agent, &packet(&positive, index), arrival);
    }
    for index in 5..10u32 {
        let arrival = start + ms(20 * u64::from(index));
        recorder.push(Channel::Caller, &packet(&negative, index), arrival);
        recorder.push(Channel::Agent, &packet(&negative, index), arrival);
    }
    recorder.finish(start + ms(200)).expect("finish");

    let mono = read_samples(&mixed_path, 1);
    assert_eq!(mono.len(), 1_600);
    assert!(mono[..800].iter().all(|&sample| sample == i16::MAX));
    assert!(mono[800..].iter().all(|&sample| sample == i16::MIN));
}

/// A killed process leaves a mixed file whose header counts what the last
/// header rewrite covered, as for the stereo file.
#[test]
fn mixed_mono_header_rewritten_while_recording() {
    let folder = tempfile::tempdir().expect("temp dir");
    let path = folder.path().join("crash.wav");
    let mixed_path = folder.path().join("crash-mixed.wav");
    let start = Instant::now();
    let options = RecorderOptions {
        mixed_mono: Some(mixed_path.clone()),
        ..RecorderOptions::default()
    };
    let mut recorder = Recorder::with_options(&path, start, options).expect("create");
    talk(&mut recorder, start, 1, |_, _, _| {});
    recorder.flush(start + ms(1500)).expect("flush");
    std::mem::forget(recorder);

    assert_eq!(read_frames(&path).len(), 10_400);
    assert_eq!(read_samples(&mixed_path, 1).len(), 10_400);
}
