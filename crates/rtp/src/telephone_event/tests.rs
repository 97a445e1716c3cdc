use super::*;

const EVENT_PT: u8 = 101;

/// RFC 4733 section 2.3 layout: digit 5, E bit set, volume 10, duration 800.
const END_OF_FIVE: [u8; 4] = [0x05, 0x8A, 0x03, 0x20];

fn packet(payload: &[u8; 4], sequence: u16, timestamp: u32, marker: bool) -> RtpPacket<'_> {
    RtpPacket {
        payload_type: EVENT_PT,
        marker,
        sequence,
        timestamp,
        ssrc: 0x1234,
        payload,
    }
}

fn payload(event: u8, end: bool, duration: u16) -> [u8; 4] {
    TelephoneEvent {
        event,
        end,
        volume: 10,
        duration,
    }
    .to_bytes()
}

#[test]
fn parse_reference_payload() {
    let event = TelephoneEvent::parse(&END_OF_FIVE).expect("valid payload");
    assert_eq!(event.event, 5);
    assert!(event.end);
    assert_eq!(event.volume, 10);
    assert_eq!(event.duration, 800);
}

#[test]
fn write_reference_payload() {
    let event = TelephoneEvent {
        event: 5,
        end: true,
        volume: 10,
        duration: 800,
    };
    assert_eq!(event.to_bytes(), END_OF_FIVE);
}

#[test]
fn parse_ignores_reserved_bit() {
    let event = TelephoneEvent::parse(&[11, 0x40 | 7, 0, 160]).expect("valid payload");
    assert!(!event.end);
    assert_eq!(event.volume, 7);
    assert_eq!(event.duration, 160);
}

#[test]
fn parse_rejects_short_payload() {
    assert_eq!(
        TelephoneEvent::parse(&[1, 2, 3]),
        Err(TelephoneEventError::TooShort { length: 3 })
    );
}

#[test]
fn digit_codes_round_trip() {
    for (digit, code) in [
        ('0', 0),
        ('9', 9),
        ('*', 10),
        ('#', 11),
        ('A', 12),
        ('D', 15),
    ] {
        assert_eq!(digit_to_event(digit), Some(code), "digit {digit}");
        assert_eq!(event_to_digit(code), Some(digit), "code {code}");
    }
    assert_eq!(digit_to_event('b'), Some(13));
    assert_eq!(digit_to_event('E'), None);
    assert_eq!(event_to_digit(16), None);
}

/// Builds a sender's stream for one digit: start with marker, updates every 50 ms,
/// then the final packet three times; all share the timestamp.
fn digit_stream(event: u8, first_sequence: u16) -> Vec<([u8; 4], u16, bool)> {
    let mut stream = vec![
        (payload(event, false, 0), first_sequence, true),
        (payload(event, false, 400), first_sequence + 1, false),
        (payload(event, false, 800), first_sequence + 2, false),
    ];
    for repeat in 0..3 {
        stream.push((
            payload(event, true, 960),
            first_sequence + 3 + repeat,
            false,
        ));
    }
    stream
}

#[test]
fn detector_reports_each_digit_once() {
    let start = Instant::now();
    let mut detector = DtmfDetector::new(8000);
    let mut digits = Vec::new();
    for (index, (event, timestamp)) in [(1u8, 8000u32), (1, 16000), (11, 24000)]
        .into_iter()
        .enumerate()
    {
        let first_sequence = 10 * index as u16;
        for (offset, (bytes, sequence, marker)) in
            digit_stream(event, first_sequence).iter().enumerate()
        {
            let arrival = start + Duration::from_millis(50 * (10 * index + offset) as u64);
            let rtp = packet(bytes, *sequence, timestamp, *marker);
            digits.extend(detector.push(&rtp, arrival));
        }
    }
    let keys: Vec<char> = digits.iter().map(|digit| digit.digit).collect();
    assert_eq!(keys, ['1', '1', '#']);
    assert!(digits.iter().all(|digit| digit.ended));
    assert_eq!(digits[0].duration, Duration::from_millis(120));
    assert_eq!(digits[2].timestamp, 24000);
    assert_eq!(detector.next_timeout(), None);
}

#[test]
fn detector_ignores_late_update_after_end() {
    let start = Instant::now();
    let mut detector = DtmfDetector::new(8000);
    let end = payload(4, true, 800);
    let update = payload(4, false, 400);
    assert!(detector.push(&packet(&end, 3, 500, false), start).is_some());
    assert_eq!(detector.push(&packet(&update, 2, 500, false), start), None);
    assert_eq!(detector.poll_timeout(start + Duration::from_secs(1)), None);
}

#[test]
fn detector_reports_end_only_event() {
    let mut detector = DtmfDetector::new(8000);
    let end = payload(0, true, 1600);
    let digit = detector
        .push(&packet(&end, 9, 70, false), Instant::now())
        .expect("digit from the final packet alone");
    assert_eq!(digit.digit, '0');
    assert_eq!(digit.duration, Duration::from_millis(200));
}

#[test]
fn detector_times_out_lost_end() {
    let start = Instant::now();
    let mut detector = DtmfDetector::new(8000);
    let update = payload(7, false, 400);
    assert_eq!(detector.push(&packet(&update, 1, 100, true), start), None);
    assert_eq!(
        detector.next_timeout(),
        Some(start + DtmfDetector::END_TIMEOUT)
    );
    assert_eq!(
        detector.poll_timeout(start + Duration::from_millis(199)),
        None
    );
    let digit = detector
        .poll_timeout(start + DtmfDetector::END_TIMEOUT)
        .expect("digit after the timeout");
    assert_eq!(digit.digit, '7');
    assert!(!digit.ended);
    assert_eq!(digit.duration, Duration::from_millis(50));
}

#[test]
fn detector_new_event_supersedes_open_one() {
    let start = Instant::now();
    let mut detector = DtmfDetector::new(8000);
    let first = payload(2, false, 400);
    let second = payload(3, false, 0);
    assert_eq!(detector.push(&packet(&first, 1, 100, true), start), None);
    let superseded = detector
        .push(&packet(&second, 2, 2000, true), start)
        .expect("open digit reported");
    assert_eq!(superseded.digit, '2');
    assert!(!superseded.ended);
    let second_end = payload(3, true, 800);
    let digit = detector
        .push(&packet(&second_end, 3, 2000, false), start)
        .expect("second digit");
    assert_eq!(digit.digit, '3');
}

#[test]
fn detector_handles_timestamp_wrap() {
    let start = Instant::now();
    let mut detector = DtmfDetector::new(8000);
    let end = payload(9, true, 800);
    assert!(
        detector
            .push(&packet(&end, 1, u32::MAX - 10, false), start)
            .is_some()
    );
    let digit = detector.push(&packet(&end, 2, 5, false), start);
    assert_eq!(digit.map(|digit| digit.digit), Some('9'));
}

#[test]
fn detector_skips_non_dtmf_events_and_short_payloads() {
    let mut detector = DtmfDetector::new(8000);
    let flash = payload(16, true, 800);
    assert_eq!(
        detector.push(&packet(&flash, 1, 100, true), Instant::now()),
        None
    );
    let short = RtpPacket {
        payload: &[1, 2],
        ..packet(&flash, 2, 200, false)
    };
    assert_eq!(detector.push(&short, Instant::now()), None);
}

#[test]
fn generator_reference_sequence() {
    let packets = generate_digit('#', 65534, 4000, DigitTiming::default()).expect("digit");
    let offsets: Vec<u64> = packets
        .iter()
        .map(|packet| packet.offset.as_millis() as u64)
        .collect();
    assert_eq!(offsets, [0, 50, 100, 150, 200]);
    let durations: Vec<u16> = packets.iter().map(|packet| packet.event.duration).collect();
    assert_eq!(durations, [0, 400, 800, 800, 800]);
    let ends: Vec<bool> = packets.iter().map(|packet| packet.event.end).collect();
    assert_eq!(ends, [false, false, true, true, true]);
    let sequences: Vec<u16> = packets.iter().map(|packet| packet.sequence).collect();
    assert_eq!(sequences, [65534, 65535, 0, 1, 2]);
    assert!(packets[0].marker);
    assert!(packets[1..].iter().all(|packet| !packet.marker));
    assert!(packets.iter().all(|packet| packet.timestamp == 4000));
    assert!(packets.iter().all(|packet| packet.event.event == 11));
}

#[test]
fn generator_output_detected_once() {
    let start = Instant::now();
    let timing = DigitTiming {
        duration: Duration::from_millis(180),
        ..DigitTiming::default()
    };
    let packets = generate_digit('6', 1, 160, timing).expect("digit");
    let mut detector = DtmfDetector::new(8000);
    let mut digits = Vec::new();
    for generated in &packets {
        let bytes = generated.event.to_bytes();
        let rtp = packet(
            &bytes,
            generated.sequence,
            generated.timestamp,
            generated.marker,
        );
        digits.extend(detector.push(&rtp, start + generated.offset));
    }
    assert_eq!(digits.len(), 1);
    assert_eq!(digits[0].digit, '6');
    assert_eq!(digits[0].duration, Duration::from_millis(180));
}

#[test]
fn generator_rejects_bad_input() {
    assert_eq!(
        generate_digit('x', 0, 0, DigitTiming::default()),
        Err(GenerateError::NotADigit { digit: 'x' })
    );
    let timing = DigitTiming {
        update_interval: Duration::ZERO,
        ..DigitTiming::default()
    };
    assert_eq!(
        generate_digit('1', 0, 0, timing),
        Err(GenerateError::IntervalTooShort {
            interval: Duration::ZERO
        })
    );
}

#[test]
fn generator_caps_long_duration() {
    let timing = DigitTiming {
        duration: Duration::from_secs(10),
        update_interval: Duration::from_secs(1),
        ..DigitTiming::default()
    };
    let packets = generate_digit('1', 0, 0, timing).expect("digit");
    let last = packets.last().expect("packets");
    assert_eq!(last.event.duration, u16::MAX);
}
