//! Timeline placement on a virtual clock: loss, reorder, duplicates, SSRC
//! changes, timestamp jumps and wrap-around.

use std::convert::Infallible;
use std::time::{Duration, Instant};

use recordings::{Channel, Placement, Timeline};
use rtp::{PT_PCMA, PT_PCMU, RtpPacket, g711};

const JITTER: Duration = Duration::from_millis(200);
/// 20 ms of G.711 at 8 kHz.
const PACKET_SAMPLES: usize = 160;

fn ms(millis: u64) -> Duration {
    Duration::from_millis(millis)
}

fn packet(ssrc: u32, timestamp: u32, payload: &[u8]) -> RtpPacket<'_> {
    RtpPacket {
        payload_type: PT_PCMU,
        marker: false,
        sequence: 0,
        timestamp,
        ssrc,
        payload,
    }
}

fn drain(timeline: &mut Timeline, end: u64) -> Vec<(i16, i16)> {
    let mut frames = Vec::new();
    timeline
        .drain_until(end, |left, right| {
            frames.push((left, right));
            Ok::<(), Infallible>(())
        })
        .expect("the sink never fails");
    frames
}

/// A mu-law code word for each packet so packets can be told apart.
fn level(code: u8) -> [u8; PACKET_SAMPLES] {
    [code; PACKET_SAMPLES]
}

#[test]
fn first_packet_anchored_at_arrival() {
    let start = Instant::now();
    let mut timeline = Timeline::new(start, JITTER);
    let payload = level(0x90);
    let placement = timeline.push(
        Channel::Caller,
        &packet(1, 5000, &payload),
        start + ms(1000),
    );
    assert_eq!(
        placement,
        Placement::Placed {
            frame: 8000,
            samples: 160
        }
    );
}

#[test]
fn later_packets_follow_timestamp_not_arrival() {
    let start = Instant::now();
    let mut timeline = Timeline::new(start, JITTER);
    let payload = level(0x90);
    timeline.push(Channel::Caller, &packet(1, 5000, &payload), start + ms(100));
    // Arrives 70 ms late, but its timestamp says 20 ms after the first.
    let placement = timeline.push(Channel::Caller, &packet(1, 5160, &payload), start + ms(190));
    assert_eq!(
        placement,
        Placement::Placed {
            frame: 960,
            samples: 160
        }
    );
}

#[test]
fn loss_becomes_silence() {
    let start = Instant::now();
    let mut timeline = Timeline::new(start, JITTER);
    let payload = level(0x90);
    timeline.push(Channel::Caller, &packet(1, 0, &payload), start);
    // The packet at timestamp 160 is lost.
    timeline.push(Channel::Caller, &packet(1, 320, &payload), start + ms(40));
    let frames = drain(&mut timeline, 480);
    let value = g711::ulaw_to_linear(0x90);
    assert!(frames[..160].iter().all(|&frame| frame == (value, 0)));
    assert!(frames[160..320].iter().all(|&frame| frame == (0, 0)));
    assert!(frames[320..].iter().all(|&frame| frame == (value, 0)));
}

#[test]
fn reordered_packets_land_in_place() {
    let start = Instant::now();
    let mut timeline = Timeline::new(start, JITTER);
    let (first, second, third) = (level(0x90), level(0xA0), level(0xB0));
    timeline.push(Channel::Agent, &packet(9, 1000, &first), start);
    timeline.push(Channel::Agent, &packet(9, 1320, &third), start + ms(40));
    let placement = timeline.push(Channel::Agent, &packet(9, 1160, &second), start + ms(45));
    assert_eq!(
        placement,
        Placement::Placed {
            frame: 160,
            samples: 160
        }
    );

    let frames = drain(&mut timeline, 480);
    assert_eq!(frames[0], (0, g711::ulaw_to_linear(0x90)));
    assert_eq!(frames[160], (0, g711::ulaw_to_linear(0xA0)));
    assert_eq!(frames[479], (0, g711::ulaw_to_linear(0xB0)));
}

#[test]
fn duplicate_packet_dropped() {
    let start = Instant::now();
    let mut timeline = Timeline::new(start, JITTER);
    let payload = level(0x90);
    let other = level(0xA0);
    timeline.push(Channel::Caller, &packet(1, 0, &payload), start);
    let placement = timeline.push(Channel::Caller, &packet(1, 0, &other), start + ms(5));
    assert_eq!(placement, Placement::Duplicate);
    assert_eq!(drain(&mut timeline, 1)[0], (g711::ulaw_to_linear(0x90), 0));
    assert_eq!(timeline.counts().duplicate, 1);
}

#[test]
fn packet_before_written_frames_is_late() {
    let start = Instant::now();
    let mut timeline = Timeline::new(start, JITTER);
    let payload = level(0x90);
    timeline.push(Channel::Caller, &packet(1, 1600, &payload), start + ms(200));
    drain(&mut timeline, 2000);
    // Timestamp 1440 maps to frames 1440..1600, all written already.
    let placement = timeline.push(Channel::Caller, &packet(1, 1440, &payload), start + ms(260));
    assert_eq!(placement, Placement::Late);
    assert_eq!(timeline.counts().late, 1);
    // The whole packet is missing audio, on the caller's channel only.
    assert_eq!(timeline.counts().late_frames, [160, 0]);
}

#[test]
fn packet_straddling_written_frames_is_cut() {
    let start = Instant::now();
    let mut timeline = Timeline::new(start, JITTER);
    let payload = level(0x90);
    timeline.push(Channel::Caller, &packet(1, 0, &payload), start);
    drain(&mut timeline, 200);
    let placement = timeline.push(Channel::Caller, &packet(1, 160, &payload), start + ms(30));
    assert_eq!(
        placement,
        Placement::Placed {
            frame: 200,
            samples: 120
        }
    );
    // Frames 160..200 were written as silence before this packet came.
    assert_eq!(timeline.counts().late_frames, [40, 0]);
}

#[test]
fn late_duplicate_is_not_late_audio() {
    let start = Instant::now();
    let mut timeline = Timeline::new(start, JITTER);
    let payload = level(0x90);
    timeline.push(Channel::Agent, &packet(1, 0, &payload), start);
    timeline.push(Channel::Agent, &packet(1, 160, &payload), start + ms(20));
    drain(&mut timeline, 200);
    // A copy of the second packet: its first 40 frames are written, the
    // rest is stored, so nothing of it is new.
    let placement = timeline.push(Channel::Agent, &packet(1, 160, &payload), start + ms(40));
    assert_eq!(placement, Placement::Duplicate);
    assert_eq!(timeline.counts().late_frames, [0, 0]);
}

#[test]
fn new_ssrc_reanchors_at_arrival() {
    let start = Instant::now();
    let mut timeline = Timeline::new(start, JITTER);
    let payload = level(0x90);
    timeline.push(Channel::Caller, &packet(1, 0, &payload), start);
    let placement = timeline.push(
        Channel::Caller,
        &packet(2, 777_777, &payload),
        start + ms(500),
    );
    assert_eq!(
        placement,
        Placement::Placed {
            frame: 4000,
            samples: 160
        }
    );
    // The new SSRC's later packets follow its own timestamps.
    let next = timeline.push(
        Channel::Caller,
        &packet(2, 777_937, &payload),
        start + ms(530),
    );
    assert_eq!(
        next,
        Placement::Placed {
            frame: 4160,
            samples: 160
        }
    );
    assert_eq!(timeline.counts().anchors, 2);
}

#[test]
fn timestamp_jump_reanchors_at_arrival() {
    let start = Instant::now();
    let mut timeline = Timeline::new(start, JITTER);
    let payload = level(0x90);
    timeline.push(Channel::Caller, &packet(1, 0, &payload), start);
    // 10 s forward in timestamp, 20 ms later in time.
    let placement = timeline.push(
        Channel::Caller,
        &packet(1, 80_160, &payload),
        start + ms(20),
    );
    assert_eq!(
        placement,
        Placement::Placed {
            frame: 160,
            samples: 160
        }
    );
    let next = timeline.push(
        Channel::Caller,
        &packet(1, 80_320, &payload),
        start + ms(40),
    );
    assert_eq!(
        next,
        Placement::Placed {
            frame: 320,
            samples: 160
        }
    );
}

#[test]
fn jump_within_drift_limit_keeps_timestamps() {
    let start = Instant::now();
    let mut timeline = Timeline::new(start, JITTER);
    let payload = level(0x90);
    timeline.push(Channel::Caller, &packet(1, 0, &payload), start);
    // Silence suppression: 2 s without packets, timestamp advanced the same.
    let placement = timeline.push(
        Channel::Caller,
        &packet(1, 16_000, &payload),
        start + ms(2010),
    );
    assert_eq!(
        placement,
        Placement::Placed {
            frame: 16_000,
            samples: 160
        }
    );
    assert_eq!(timeline.counts().anchors, 1);
}

#[test]
fn paused_timestamp_after_hold_reanchors() {
    let start = Instant::now();
    let mut timeline = Timeline::new(start, JITTER);
    let payload = level(0x90);
    timeline.push(Channel::Caller, &packet(1, 0, &payload), start);
    drain(&mut timeline, 160);
    // The sender stopped its clock while on hold for 5 s.
    let placement = timeline.push(Channel::Caller, &packet(1, 160, &payload), start + ms(5000));
    assert_eq!(
        placement,
        Placement::Placed {
            frame: 40_000,
            samples: 160
        }
    );
}

#[test]
fn timestamp_wrap_around_is_continuous() {
    let start = Instant::now();
    let mut timeline = Timeline::new(start, JITTER);
    let payload = level(0x90);
    let mut timestamp = u32::MAX - 200;
    for index in 0..5u64 {
        let arrival = start + ms(20 * index);
        let placement = timeline.push(Channel::Agent, &packet(3, timestamp, &payload), arrival);
        let frame = 160 * index;
        assert_eq!(
            placement,
            Placement::Placed {
                frame,
                samples: 160
            },
            "packet {index}"
        );
        timestamp = timestamp.wrapping_add(160);
    }
    assert_eq!(timeline.counts().anchors, 1);
}

#[test]
fn reordered_across_wrap_around() {
    let start = Instant::now();
    let mut timeline = Timeline::new(start, JITTER);
    let payload = level(0x90);
    timeline.push(Channel::Agent, &packet(3, u32::MAX - 159, &payload), start);
    timeline.push(Channel::Agent, &packet(3, 160, &payload), start + ms(40));
    let placement = timeline.push(Channel::Agent, &packet(3, 0, &payload), start + ms(41));
    assert_eq!(
        placement,
        Placement::Placed {
            frame: 160,
            samples: 160
        }
    );
}

#[test]
fn channels_are_independent() {
    let start = Instant::now();
    let mut timeline = Timeline::new(start, JITTER);
    let (caller, agent) = (level(0x90), level(0x10));
    timeline.push(Channel::Caller, &packet(1, 0, &caller), start);
    timeline.push(Channel::Agent, &packet(1, 99_999, &agent), start + ms(10));
    let frames = drain(&mut timeline, 240);
    assert_eq!(frames[0], (g711::ulaw_to_linear(0x90), 0));
    assert_eq!(
        frames[80],
        (g711::ulaw_to_linear(0x90), g711::ulaw_to_linear(0x10))
    );
    assert_eq!(frames[200], (0, g711::ulaw_to_linear(0x10)));
}

#[test]
fn pcma_decoded_and_other_payloads_ignored() {
    let start = Instant::now();
    let mut timeline = Timeline::new(start, JITTER);
    let payload = [0xD5u8; 160];
    let mut alaw = packet(1, 0, &payload);
    alaw.payload_type = PT_PCMA;
    timeline.push(Channel::Caller, &alaw, start);

    let mut comfort_noise = packet(1, 160, &payload);
    comfort_noise.payload_type = 13;
    let placement = timeline.push(Channel::Caller, &comfort_noise, start + ms(20));
    assert_eq!(placement, Placement::Ignored { payload_type: 13 });
    let empty = timeline.push(Channel::Caller, &packet(1, 320, &[]), start + ms(40));
    assert_eq!(
        empty,
        Placement::Ignored {
            payload_type: PT_PCMU
        }
    );

    let frames = drain(&mut timeline, 320);
    assert_eq!(frames[0], (8, 0));
    assert_eq!(frames[200], (0, 0));
    assert_eq!(timeline.counts().ignored, 2);
}

#[test]
fn buffer_bounded_without_drain() {
    let start = Instant::now();
    let mut timeline = Timeline::new(start, JITTER);
    let payload = level(0x90);
    let placement = timeline.push(Channel::Caller, &packet(1, 0, &payload), start + ms(12_000));
    assert_eq!(placement, Placement::TooFarAhead);
    drain(&mut timeline, 90_000);
    let retry = timeline.push(Channel::Caller, &packet(1, 0, &payload), start + ms(12_000));
    assert_eq!(
        retry,
        Placement::Placed {
            frame: 96_000,
            samples: 160
        }
    );
}

#[test]
fn ready_until_lags_by_jitter_window() {
    let start = Instant::now();
    let timeline = Timeline::new(start, JITTER);
    assert_eq!(timeline.ready_until(start + ms(100)), 0);
    assert_eq!(timeline.ready_until(start + ms(1200)), 8000);
    assert_eq!(
        timeline.frame_at(start + Duration::from_micros(1_000_125)),
        8001
    );
}

/// Builds a timeline with gaps on both channels and with pauses whose
/// instants overlap and come out of order.
fn timeline_with_gaps_and_pauses(start: Instant) -> Timeline {
    let mut timeline = Timeline::new(start, JITTER);
    for index in 0..100u32 {
        let arrival = start + ms(20 * u64::from(index));
        if index % 7 != 3 {
            let payload = level(0x10 + (index % 50) as u8);
            let caller = packet(1, 160 * index, &payload);
            timeline.push(Channel::Caller, &caller, arrival);
        }
        if index % 5 != 1 && index < 90 {
            let payload = level(0xA0 + (index % 30) as u8);
            let agent = packet(2, 160 * index, &payload);
            timeline.push(Channel::Agent, &agent, arrival);
        }
    }
    assert!(timeline.pause(start + ms(300)));
    assert!(timeline.resume(start + ms(450)));
    assert!(timeline.pause(start + ms(420)));
    assert!(timeline.resume(start + ms(700)));
    assert!(timeline.pause(start + ms(1500)));
    timeline
}

#[test]
fn drain_into_matches_drain_until() {
    let start = Instant::now();
    let mut by_frame = timeline_with_gaps_and_pauses(start);
    let mut in_bulk = timeline_with_gaps_and_pauses(start);
    // Uneven steps, so spans and gaps start and end inside a step.
    for end in [0, 1, 333, 333, 2_400, 5_000, 9_999, 12_000, 16_500, 17_000] {
        let expected = drain(&mut by_frame, end);
        let mut samples = Vec::new();
        in_bulk.drain_into(end, &mut samples);
        let actual: Vec<(i16, i16)> = samples
            .chunks_exact(2)
            .map(|frame| (frame[0], frame[1]))
            .collect();
        assert_eq!(actual.len(), expected.len(), "frames up to {end}");
        assert_eq!(actual, expected, "samples up to {end}");
        assert_eq!(in_bulk.written(), by_frame.written());
    }
    assert_eq!(in_bulk.written(), 17_000);
}

#[test]
fn drain_into_appends_to_output() {
    let start = Instant::now();
    let mut timeline = Timeline::new(start, JITTER);
    let payload = level(0x90);
    timeline.push(Channel::Caller, &packet(1, 0, &payload), start);
    let mut samples = vec![7, 7];
    timeline.drain_into(PACKET_SAMPLES as u64, &mut samples);
    assert_eq!(samples.len(), 2 + 2 * PACKET_SAMPLES);
    assert_eq!(samples[..2], [7, 7]);
    assert_eq!(samples[2], g711::ulaw_to_linear(0x90));
    assert_eq!(samples[3], 0, "the agent sent nothing");
    timeline.drain_into(PACKET_SAMPLES as u64, &mut samples);
    assert_eq!(
        samples.len(),
        2 + 2 * PACKET_SAMPLES,
        "nothing left to drain"
    );
}
