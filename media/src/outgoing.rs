//! RTP header rewriting for what the relay sends to one leg.
//!
//! A leg's peer receives a single RTP stream even when its source changes: the
//! other leg's phone is replaced (transfer, a new agent), the player starts
//! or stops a prompt. The first source passes through untouched, so a call
//! without switches is relayed byte for byte. At each switch the new source
//! is shifted so its sequence numbers follow the last one sent and its
//! timestamps advance by the wall-clock time since the last packet, and the
//! first packet carries the marker bit so the receiver resynchronizes its
//! jitter buffer (RFC 3551 section 4.1). The output SSRC never changes.

use std::time::Instant;

/// Origin of a packet sent to the leg.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum StreamSource {
    /// Relayed from the other leg's peer, which sends with this SSRC.
    Relayed(u32),
    /// The relay's own player or DTMF generator; each prompt list or
    /// digit gets a new identifier because each numbers its packets from 0.
    Local(u32),
}

/// Header fields of one packet as it leaves the relay.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Rewritten {
    pub(crate) ssrc: u32,
    pub(crate) sequence: u16,
    pub(crate) timestamp: u32,
    /// True on the first packet after a source switch.
    pub(crate) marker: bool,
}

#[derive(Clone, Copy, Debug)]
struct LastSent {
    sequence: u16,
    timestamp: u32,
    at: Instant,
}

/// Sans-IO mapping from source headers to the leg's single output stream.
#[derive(Debug)]
pub(crate) struct OutgoingStream {
    /// SSRC used when the first source is local.
    local_ssrc: u32,
    output_ssrc: Option<u32>,
    source: Option<StreamSource>,
    sequence_offset: u16,
    timestamp_offset: u32,
    last: Option<LastSent>,
    clock_rate: u32,
}

impl OutgoingStream {
    pub(crate) fn new(local_ssrc: u32, clock_rate: u32) -> OutgoingStream {
        OutgoingStream {
            local_ssrc,
            output_ssrc: None,
            source: None,
            sequence_offset: 0,
            timestamp_offset: 0,
            last: None,
            clock_rate,
        }
    }

    /// Maps one packet's header; `now` is when it is sent.
    pub(crate) fn rewrite(
        &mut self,
        source: StreamSource,
        sequence: u16,
        timestamp: u32,
        now: Instant,
    ) -> Rewritten {
        let switched = self.source != Some(source);
        if switched {
            self.switch_to(source, sequence, timestamp, now);
        }
        let output = Rewritten {
            ssrc: self.output_ssrc.unwrap_or(self.local_ssrc),
            sequence: sequence.wrapping_add(self.sequence_offset),
            timestamp: timestamp.wrapping_add(self.timestamp_offset),
            marker: switched && self.last.is_some(),
        };
        self.remember(output, now);
        output
    }

    /// Keeps the newest sequence number, and the newest timestamp with the
    /// instant it was first sent. Serial-number comparisons make reordered
    /// packets keep the newest values. The instant stays at the first packet
    /// of a timestamp because an RFC 4733 event repeats its start timestamp
    /// for its whole length, and the next source must start after it.
    fn remember(&mut self, output: Rewritten, now: Instant) {
        let Some(last) = self.last.as_mut() else {
            self.last = Some(LastSent {
                sequence: output.sequence,
                timestamp: output.timestamp,
                at: now,
            });
            return;
        };
        if (output.sequence.wrapping_sub(last.sequence) as i16) > 0 {
            last.sequence = output.sequence;
        }
        if (output.timestamp.wrapping_sub(last.timestamp) as i32) > 0 {
            last.timestamp = output.timestamp;
            last.at = now;
        }
    }

    fn switch_to(&mut self, source: StreamSource, sequence: u16, timestamp: u32, now: Instant) {
        self.source = Some(source);
        let Some(last) = self.last else {
            // The first source defines the stream and passes unchanged.
            self.output_ssrc = Some(match source {
                StreamSource::Relayed(ssrc) => ssrc,
                StreamSource::Local(_) => self.local_ssrc,
            });
            self.sequence_offset = 0;
            self.timestamp_offset = 0;
            return;
        };
        // At least one 20 ms packet of timestamp units, so the new first
        // packet never lands on top of the last one sent.
        let elapsed = now.saturating_duration_since(last.at).as_secs_f64();
        let advance = ((elapsed * f64::from(self.clock_rate)) as u32).max(self.clock_rate / 50);
        let target_sequence = last.sequence.wrapping_add(1);
        let target_timestamp = last.timestamp.wrapping_add(advance);
        self.sequence_offset = target_sequence.wrapping_sub(sequence);
        self.timestamp_offset = target_timestamp.wrapping_sub(timestamp);
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn first_relayed_source_passes_unchanged() {
        let now = Instant::now();
        let mut stream = OutgoingStream::new(99, 8000);
        let first = stream.rewrite(StreamSource::Relayed(7), 100, 16_000, now);
        assert_eq!(
            first,
            Rewritten {
                ssrc: 7,
                sequence: 100,
                timestamp: 16_000,
                marker: false
            }
        );
        let second = stream.rewrite(StreamSource::Relayed(7), 101, 16_160, now);
        assert_eq!((second.sequence, second.timestamp), (101, 16_160));
    }

    #[test]
    fn switch_continues_sequence_and_timestamp() {
        let start = Instant::now();
        let mut stream = OutgoingStream::new(99, 8000);
        stream.rewrite(StreamSource::Relayed(7), 65_535, u32::MAX - 100, start);

        // The player takes over 60 ms later with its own numbering.
        let later = start + Duration::from_millis(60);
        let local = stream.rewrite(StreamSource::Local(1), 1, 0, later);
        assert_eq!(local.ssrc, 7);
        assert_eq!(local.sequence, 0);
        assert_eq!(local.timestamp, (u32::MAX - 100).wrapping_add(480));
        assert!(local.marker);
        let next = stream.rewrite(StreamSource::Local(1), 2, 160, later);
        assert_eq!(next.sequence, 1);
        assert_eq!(next.timestamp, local.timestamp.wrapping_add(160));
        assert!(!next.marker);

        // A new phone on the other leg, right after the player's packet.
        let new_phone = stream.rewrite(StreamSource::Relayed(8), 5000, 123, later);
        assert_eq!(new_phone.ssrc, 7);
        assert_eq!(new_phone.sequence, 2);
        assert_eq!(new_phone.timestamp, next.timestamp.wrapping_add(160));
        assert!(new_phone.marker);
    }

    #[test]
    fn local_first_uses_local_ssrc() {
        let now = Instant::now();
        let mut stream = OutgoingStream::new(99, 8000);
        let first = stream.rewrite(StreamSource::Local(1), 10, 1000, now);
        assert_eq!(first.ssrc, 99);
        assert!(!first.marker);
        let relayed = stream.rewrite(StreamSource::Relayed(5), 300, 0, now);
        assert_eq!(relayed.ssrc, 99);
        assert_eq!(relayed.sequence, 11);
    }

    #[test]
    fn audio_after_event_starts_after_it() {
        let start = Instant::now();
        let mut stream = OutgoingStream::new(99, 8000);
        stream.rewrite(StreamSource::Relayed(7), 1, 800, start);
        // A generated digit: five packets over 200 ms with one timestamp.
        let mut event_timestamp = 0;
        for index in 0..5u16 {
            let at = start + Duration::from_millis(20 + 50 * u64::from(index));
            let event = stream.rewrite(StreamSource::Local(1), index, 0, at);
            event_timestamp = event.timestamp;
        }
        let resumed = start + Duration::from_millis(240);
        let audio = stream.rewrite(StreamSource::Relayed(7), 2, 960, resumed);
        assert_eq!(audio.sequence, 7);
        // 220 ms after the event's first packet, not 20 ms after its last.
        assert_eq!(audio.timestamp, event_timestamp.wrapping_add(1760));
    }

    #[test]
    fn reordered_packet_keeps_newest_reference() {
        let now = Instant::now();
        let mut stream = OutgoingStream::new(99, 8000);
        stream.rewrite(StreamSource::Relayed(7), 10, 1600, now);
        stream.rewrite(StreamSource::Relayed(7), 12, 1920, now);
        let late = stream.rewrite(StreamSource::Relayed(7), 11, 1760, now);
        assert_eq!(late.sequence, 11);
        let local = stream.rewrite(StreamSource::Local(1), 0, 0, now);
        assert_eq!(local.sequence, 13);
        assert_eq!(local.timestamp, 1920 + 160);
    }
}
