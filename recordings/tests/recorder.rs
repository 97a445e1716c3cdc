//! Recorder end to end: synthetic RTP on a virtual clock, the WAV file read
//! back with hound.

use std::time::{Duration, Instant};

use recordings::{Channel, Recorder};
use rtp::{PT_PCMU, RtpPacket, g711};

fn ms(millis: u64) -> Duration {
    Duration::from_millis(millis)
}

/// Reads the file back as (left, right) frames, checking the format.
fn read_frames(path: &std::path::Path) -> Vec<(i16, i16)> {
    let mut reader = hound::WavReader::open(path).expect("readable WAV");
    let spec = reader.spec();
    assert_eq!(spec.channels, 2);
    assert_eq!(spec.sample_rate, 8000);
    assert_eq!(spec.bits_per_sample, 16);
    let samples: Vec<i16> = reader
        .samples::<i16>()
        .map(|sample| sample.expect("valid sample"))
        .collect();
    samples
        .chunks_exact(2)
        .map(|pair| (pair[0], pair[1]))
        .collect()
}

/// Sends one second of a constant mu-law level on `channel`, 20 ms packets
/// from `from` on, with every 10th packet lost, packets 3 and 4 swapped and
/// packet 7 sent twice. Flushes every 100 ms of virtual time.
fn send_second(
    recorder: &mut Recorder,
    channel: Channel,
    start: Instant,
    from: Duration,
    code: u8,
) {
    let payload = [code; 160];
    let mut order: Vec<u32> = (0..50).filter(|index| index % 10 != 9).collect();
    order.swap(3, 4);
    order.insert(8, 7);
    for (slot, &index) in order.iter().enumerate() {
        let arrival = start + from + ms(20 * slot as u64 + 5);
        let packet = RtpPacket {
            payload_type: PT_PCMU,
            marker: false,
            sequence: index as u16,
            timestamp: 40_000 + 160 * index,
            ssrc: 0xCAFE,
            payload: &payload,
        };
        if index == 0 {
            // Anchor exactly at `from` so the expected frames are exact.
            recorder.push(channel, &packet, start + from);
        } else {
            recorder.push(channel, &packet, arrival);
        }
        if slot % 5 == 0 {
            recorder.flush(arrival).expect("flush");
        }
    }
}

#[test]
fn tone_lands_at_expected_frames() {
    let folder = tempfile::tempdir().expect("temp dir");
    let path = folder.path().join("nested/call.wav");
    let start = Instant::now();
    let mut recorder = Recorder::create(&path, start).expect("create");
    send_second(&mut recorder, Channel::Caller, start, ms(1000), 0x90);
    send_second(&mut recorder, Channel::Agent, start, ms(2500), 0x20);
    let summary = recorder.finish(start + ms(4000)).expect("finish");

    assert_eq!(summary.frames, 32_000);
    assert_eq!(summary.duration_seconds, 4.0);
    assert_eq!(summary.ignored_packets, 0);
    assert_eq!(summary.path, path);

    let frames = read_frames(&path);
    let caller = g711::ulaw_to_linear(0x90);
    let agent = g711::ulaw_to_linear(0x20);
    assert_eq!(frames.len(), 32_000);
    assert_eq!(frames[7999], (0, 0));
    assert_eq!(frames[8000], (caller, 0));
    assert_eq!(
        frames[8000 + 160 * 5],
        (caller, 0),
        "swapped packets in place"
    );
    assert_eq!(frames[8000 + 160 * 9], (0, 0), "lost packet is silence");
    assert_eq!(frames[8000 + 160 * 10], (caller, 0));
    assert_eq!(frames[15_999], (0, 0), "packet 49 was lost");
    assert_eq!(frames[15_839], (caller, 0));
    assert_eq!(frames[16_000], (0, 0));
    assert_eq!(frames[20_000], (0, agent));
    assert_eq!(frames[27_839], (0, agent));
    assert_eq!(frames[31_999], (0, 0));
}

#[test]
fn finish_cuts_samples_after_end() {
    let folder = tempfile::tempdir().expect("temp dir");
    let path = folder.path().join("cut.wav");
    let start = Instant::now();
    let mut recorder = Recorder::create(&path, start).expect("create");
    let payload = [0x90u8; 160];
    // One second of packets, none flushed before the call ends at 500 ms.
    for index in 0..50u32 {
        let packet = RtpPacket {
            payload_type: PT_PCMU,
            marker: false,
            sequence: index as u16,
            timestamp: 160 * index,
            ssrc: 1,
            payload: &payload,
        };
        recorder.push(Channel::Caller, &packet, start + ms(20 * u64::from(index)));
    }
    let summary = recorder.finish(start + ms(500)).expect("finish");
    assert_eq!(summary.frames, 4000);
    let frames = read_frames(&path);
    assert_eq!(frames.len(), 4000);
    assert_eq!(frames[3999].0, g711::ulaw_to_linear(0x90));
}

#[test]
fn finish_pads_silence_to_end() {
    let folder = tempfile::tempdir().expect("temp dir");
    let path = folder.path().join("quiet.wav");
    let start = Instant::now();
    let recorder = Recorder::create(&path, start).expect("create");
    let summary = recorder.finish(start + ms(1250)).expect("finish");
    assert_eq!(summary.frames, 10_000);
    assert!(read_frames(&path).iter().all(|&frame| frame == (0, 0)));
}

/// Without finish (a killed process), the file still parses and contains what
/// the last header rewrite covered.
#[test]
fn header_rewritten_while_recording() {
    let folder = tempfile::tempdir().expect("temp dir");
    let path = folder.path().join("crash.wav");
    let start = Instant::now();
    let mut recorder = Recorder::create(&path, start).expect("create");
    send_second(&mut recorder, Channel::Caller, start, ms(0), 0x90);
    recorder.flush(start + ms(1500)).expect("flush");
    // Leak the writer so no Drop code fixes the header, as after SIGKILL.
    std::mem::forget(recorder);

    let frames = read_frames(&path);
    assert_eq!(
        frames.len(),
        10_400,
        "frames up to 1.5 s minus the 200 ms jitter window"
    );
    assert_eq!(frames[100].0, g711::ulaw_to_linear(0x90));
}

#[test]
fn header_rewrite_at_most_once_a_second() {
    let folder = tempfile::tempdir().expect("temp dir");
    let path = folder.path().join("rate.wav");
    let start = Instant::now();
    let mut recorder = Recorder::create(&path, start).expect("create");
    recorder.flush(start + ms(1000)).expect("flush");
    recorder.flush(start + ms(1900)).expect("flush");
    std::mem::forget(recorder);
    // The header covers the 1000 ms flush (800 ms of frames), not the 1900 ms one.
    assert_eq!(read_frames(&path).len(), 6400);
}

#[test]
fn create_fails_on_unwritable_path() {
    let folder = tempfile::tempdir().expect("temp dir");
    let blocker = folder.path().join("file");
    std::fs::write(&blocker, b"x").expect("write");
    let error = Recorder::create(&blocker.join("call.wav"), Instant::now())
        .err()
        .expect("error");
    assert!(
        error
            .to_string()
            .contains("failed to create the recordings folder"),
        "{error}"
    );
}

/// A sender that stalls for 300 ms and then sends what it held back in one
/// burst: the recorder has written silence where the first 100 ms of the
/// burst belong, and reports that per channel.
#[test]
fn audio_after_the_jitter_window_is_reported_late() {
    let folder = tempfile::tempdir().expect("temp dir");
    let path = folder.path().join("late.wav");
    let start = Instant::now();
    let mut recorder = Recorder::create(&path, start).expect("create");
    let payload = [0x90; 160];
    let packet = |index: u32| RtpPacket {
        payload_type: PT_PCMU,
        marker: false,
        sequence: index as u16,
        timestamp: 160 * index,
        ssrc: 7,
        payload: &payload,
    };
    // Packets 0..10 on time, every 20 ms.
    for index in 0..10u32 {
        let arrival = start + ms(20 * u64::from(index));
        recorder.push(Channel::Agent, &packet(index), arrival);
        recorder.flush(arrival).expect("flush");
    }
    // Packets 10..25 belong at 200..500 ms but all arrive at 500 ms, after a
    // flush at that instant wrote everything up to 300 ms.
    let burst = start + ms(500);
    recorder.flush(burst).expect("flush");
    for index in 10..25u32 {
        recorder.push(Channel::Agent, &packet(index), burst);
    }
    let summary = recorder.finish(start + ms(600)).expect("finish");
    assert_eq!(summary.late_ms, [0, 100]);

    let frames = read_frames(&path);
    let tone = g711::ulaw_to_linear(0x90);
    assert_eq!(frames[1599].1, tone, "on time");
    assert_eq!(frames[1600].1, 0, "late, written as silence");
    assert_eq!(frames[2399].1, 0, "late, written as silence");
    assert_eq!(frames[2400].1, tone, "within the window, kept");
}
