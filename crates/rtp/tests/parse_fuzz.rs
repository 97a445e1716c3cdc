//! Fuzz-style checks: the parsers never panic on arbitrary bytes, and what
//! `write` produces parses back to the same packet.

use proptest::prelude::*;
use rtp::{RtpPacket, is_rtcp};

proptest! {
    #![proptest_config(ProptestConfig::with_cases(4096))]

    #[test]
    fn parse_never_panics(datagram in proptest::collection::vec(any::<u8>(), 0..128)) {
        if let Ok(packet) = RtpPacket::parse(&datagram) {
            prop_assert!(packet.payload.len() + 12 <= datagram.len());
            prop_assert!(packet.payload_type < 128);
        }
        let _ = is_rtcp(&datagram);
    }

    /// Headers that look like RTP (version 2) with random flags and counts, so
    /// the CSRC, extension and padding paths are reached often.
    #[test]
    fn parse_never_panics_on_version_two(
        first in 0x80u8..=0xBF,
        rest in proptest::collection::vec(any::<u8>(), 0..96),
    ) {
        let mut datagram = vec![first];
        datagram.extend_from_slice(&rest);
        if let Ok(packet) = RtpPacket::parse(&datagram) {
            prop_assert!(packet.payload.len() + 12 <= datagram.len());
        }
    }

    #[test]
    fn write_parse_round_trip(
        payload_type in 0u8..128,
        marker: bool,
        sequence: u16,
        timestamp: u32,
        ssrc: u32,
        payload in proptest::collection::vec(any::<u8>(), 0..200),
    ) {
        let packet = RtpPacket { payload_type, marker, sequence, timestamp, ssrc, payload: &payload };
        let mut out = Vec::new();
        packet.write(&mut out);
        prop_assert_eq!(RtpPacket::parse(&out), Ok(packet));
    }
}
