//! RFC 4733 telephone-events: the 4-byte payload, a detector that turns a
//! stream of event packets into digits, and a generator for the packets of
//! one digit.
//!
//! An event is identified by its RTP timestamp, which stays at the event's
//! start in every packet (RFC 4733 section 2.5.1.2), while the duration
//! field grows. The sender repeats the final packet, the one with the E bit,
//! three times (section 2.5.1.4), and any packet may be lost or reordered, so
//! the detector reports each event exactly once, keyed by that timestamp.

use std::time::{Duration, Instant};

use crate::RtpPacket;

/// Length of the telephone-event payload without RFC 2198 redundancy.
pub const TELEPHONE_EVENT_LEN: usize = 4;
/// Payload type most SDP offers give telephone-event; it is dynamic, so the
/// negotiated value overrides it.
pub const DEFAULT_TELEPHONE_EVENT_PT: u8 = 101;

/// Error of parsing a telephone-event payload.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum TelephoneEventError {
    #[error("telephone-event payload too short: {length} bytes, expected at least 4")]
    TooShort { length: usize },
}

/// One telephone-event payload (RFC 4733 section 2.3).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TelephoneEvent {
    /// Event code: 0-9 digits, 10 `*`, 11 `#`, 12-15 `A`-`D`, 16 flash.
    pub event: u8,
    /// E bit: this packet ends the event.
    pub end: bool,
    /// Power level in dBm0 below zero, 0 to 63 (6 bits).
    pub volume: u8,
    /// Length of the event so far, in RTP timestamp units.
    pub duration: u16,
}

impl TelephoneEvent {
    /// Parses the first 4 bytes of `payload`. Longer payloads are accepted
    /// because a sender may pack several events back to back (section 2.5.1.5);
    /// only the first one is read.
    pub fn parse(payload: &[u8]) -> Result<TelephoneEvent, TelephoneEventError> {
        let Some(&[event, flags, high, low]) = payload.first_chunk::<TELEPHONE_EVENT_LEN>() else {
            return Err(TelephoneEventError::TooShort {
                length: payload.len(),
            });
        };
        Ok(TelephoneEvent {
            event,
            end: flags & 0x80 != 0,
            volume: flags & 0x3F,
            duration: u16::from_be_bytes([high, low]),
        })
    }

    /// Encodes the payload; the reserved R bit is zero, the volume is cut to 6 bits.
    pub fn to_bytes(&self) -> [u8; TELEPHONE_EVENT_LEN] {
        let [high, low] = self.duration.to_be_bytes();
        let flags = u8::from(self.end) << 7 | (self.volume & 0x3F);
        [self.event, flags, high, low]
    }
}

/// Event code of a DTMF key (`0`-`9`, `*`, `#`, `A`-`D`, case-insensitive).
pub fn digit_to_event(digit: char) -> Option<u8> {
    match digit.to_ascii_uppercase() {
        digit @ '0'..='9' => Some(digit as u8 - b'0'),
        '*' => Some(10),
        '#' => Some(11),
        letter @ 'A'..='D' => Some(letter as u8 - b'A' + 12),
        _ => None,
    }
}

/// DTMF key of an event code 0 to 15; `None` for other events such as flash.
pub fn event_to_digit(event: u8) -> Option<char> {
    match event {
        0..=9 => Some(char::from(b'0' + event)),
        10 => Some('*'),
        11 => Some('#'),
        12..=15 => Some(char::from(b'A' + event - 12)),
        _ => None,
    }
}

/// A DTMF key press reported by [`DtmfDetector`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DetectedDigit {
    pub digit: char,
    /// Duration from the final packet, or the longest seen when no final
    /// packet arrived before the timeout.
    pub duration: Duration,
    /// RTP timestamp of the event start, the same in all its packets.
    pub timestamp: u32,
    /// False when no final packet arrived, so the digit was reported on
    /// timeout or because a newer event started.
    pub ended: bool,
}

/// Event in progress: packets seen, no final packet yet.
#[derive(Clone, Copy, Debug)]
struct OpenEvent {
    ssrc: u32,
    timestamp: u32,
    event: u8,
    duration: u16,
    last_packet: Instant,
    /// A final packet arrived but the digit waits behind an older one.
    ended: bool,
}

/// Sans-IO RFC 4733 receiver: feed it every telephone-event packet of one
/// stream with its arrival instant and it returns each digit once.
///
/// A digit is reported when its first final packet arrives, with the
/// duration that packet carries. Repeated final packets and late updates of
/// an event already reported are ignored. When an event's final packets
/// are all lost, the digit is reported when a newer event starts or when
/// [`DtmfDetector::poll_timeout`] runs after the packets stopped for
/// [`DtmfDetector::END_TIMEOUT`].
#[derive(Debug)]
pub struct DtmfDetector {
    clock_rate: u32,
    open: Option<OpenEvent>,
    /// Source and start timestamp of the newest event reported.
    reported: Option<(u32, u32)>,
}

impl DtmfDetector {
    /// Silence after the last packet of an event before it counts as ended.
    /// Updates come every 50 ms in common senders, so 4 missing updates.
    pub const END_TIMEOUT: Duration = Duration::from_millis(200);

    /// `clock_rate` is the telephone-event RTP clock, 8000 for narrowband.
    pub fn new(clock_rate: u32) -> DtmfDetector {
        DtmfDetector {
            clock_rate: clock_rate.max(1),
            open: None,
            reported: None,
        }
    }

    /// Handles one packet whose payload type is telephone-event. Returns
    /// the digit it completes, or that of an unfinished older event it
    /// supersedes. Events that are not DTMF keys (flash, tones) are skipped.
    pub fn push(&mut self, packet: &RtpPacket<'_>, arrival: Instant) -> Option<DetectedDigit> {
        let payload = TelephoneEvent::parse(packet.payload).ok()?;
        let key = (packet.ssrc, packet.timestamp);
        if self.is_reported_or_older(key) || self.is_older_than_open(key) {
            return None;
        }
        event_to_digit(payload.event)?;

        let superseded = match self.open {
            Some(open) if (open.ssrc, open.timestamp) == key => None,
            Some(open) => self.report(open),
            None => None,
        };
        let open = OpenEvent {
            ssrc: packet.ssrc,
            timestamp: packet.timestamp,
            event: payload.event,
            duration: payload.duration.max(self.open_duration(key)),
            last_packet: arrival,
            ended: payload.end,
        };
        if payload.end {
            self.open = None;
            let finished = OpenEvent {
                duration: payload.duration,
                ..open
            };
            // Both an older digit and this one are complete only when this
            // event's earlier packets were all lost. The older digit goes
            // first, and this one waits for the next push or the timeout.
            if superseded.is_some() {
                self.open = Some(finished);
                return superseded;
            }
            return self.report(finished);
        }
        self.open = Some(open);
        superseded
    }

    /// Reports an event whose packets stopped for [`Self::END_TIMEOUT`]
    /// without a final packet, or one left pending by [`Self::push`].
    pub fn poll_timeout(&mut self, now: Instant) -> Option<DetectedDigit> {
        let open = self.open?;
        if now.saturating_duration_since(open.last_packet) < Self::END_TIMEOUT {
            return None;
        }
        self.open = None;
        self.report(open)
    }

    /// When [`Self::poll_timeout`] needs to run next, if an event is open.
    pub fn next_timeout(&self) -> Option<Instant> {
        self.open.map(|open| open.last_packet + Self::END_TIMEOUT)
    }

    fn open_duration(&self, key: (u32, u32)) -> u16 {
        match self.open {
            Some(open) if (open.ssrc, open.timestamp) == key => open.duration,
            _ => 0,
        }
    }

    /// True for the event already reported and, within the same source,
    /// any event that started before it (a reordered leftover).
    fn is_reported_or_older(&self, (ssrc, timestamp): (u32, u32)) -> bool {
        match self.reported {
            Some((reported_ssrc, reported_timestamp)) if reported_ssrc == ssrc => {
                // Serial-number comparison, so a wrapped timestamp is newer.
                (timestamp.wrapping_sub(reported_timestamp) as i32) <= 0
            }
            _ => false,
        }
    }

    fn is_older_than_open(&self, (ssrc, timestamp): (u32, u32)) -> bool {
        match self.open {
            Some(open) if open.ssrc == ssrc => (timestamp.wrapping_sub(open.timestamp) as i32) < 0,
            _ => false,
        }
    }

    fn report(&mut self, event: OpenEvent) -> Option<DetectedDigit> {
        self.reported = Some((event.ssrc, event.timestamp));
        let nanos = u64::from(event.duration) * 1_000_000_000 / u64::from(self.clock_rate);
        Some(DetectedDigit {
            digit: event_to_digit(event.event)?,
            duration: Duration::from_nanos(nanos),
            timestamp: event.timestamp,
            ended: event.ended,
        })
    }
}

/// One packet of a generated digit; `offset` is when to send it, counted
/// from the start of the digit.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct GeneratedEventPacket {
    pub offset: Duration,
    pub marker: bool,
    pub sequence: u16,
    pub timestamp: u32,
    pub event: TelephoneEvent,
}

/// Settings for [`generate_digit`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DigitTiming {
    /// Tone length; RFC 4733 and most phones use 100 ms or more.
    pub duration: Duration,
    /// Time between packets of the same event.
    pub update_interval: Duration,
    /// Telephone-event clock rate in Hz.
    pub clock_rate: u32,
    /// Power level in dBm0 below zero.
    pub volume: u8,
}

impl Default for DigitTiming {
    fn default() -> DigitTiming {
        DigitTiming {
            duration: Duration::from_millis(100),
            update_interval: Duration::from_millis(50),
            clock_rate: 8000,
            volume: 10,
        }
    }
}

/// Error of [`generate_digit`].
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum GenerateError {
    #[error("{digit:?} is not a DTMF key, expected 0-9, *, #, or A-D")]
    NotADigit { digit: char },
    #[error("update interval {interval:?} must be at least 1 ms")]
    IntervalTooShort { interval: Duration },
}

/// Builds the packets of one digit: a start packet with the marker bit at
/// offset 0, an update every `update_interval` carrying the duration so
/// far, and the final packet (E bit) sent three times, all with
/// `timestamp`. Sequence numbers start at `first_sequence` and wrap.
///
/// Durations longer than the 16-bit field allows (about 8.2 s at 8 kHz) are
/// cut to 65535 timestamp units.
pub fn generate_digit(
    digit: char,
    first_sequence: u16,
    timestamp: u32,
    timing: DigitTiming,
) -> Result<Vec<GeneratedEventPacket>, GenerateError> {
    let event = digit_to_event(digit).ok_or(GenerateError::NotADigit { digit })?;
    let interval = timing.update_interval;
    if interval < Duration::from_millis(1) {
        return Err(GenerateError::IntervalTooShort { interval });
    }
    let units = |elapsed: Duration| -> u16 {
        let units = elapsed.as_nanos() * u128::from(timing.clock_rate) / 1_000_000_000;
        u16::try_from(units).unwrap_or(u16::MAX)
    };
    let mut packets = Vec::new();
    let mut push = |offset: Duration, elapsed: Duration, end: bool| {
        let sequence = first_sequence.wrapping_add(packets.len() as u16);
        packets.push(GeneratedEventPacket {
            offset,
            marker: packets.is_empty(),
            sequence,
            timestamp,
            event: TelephoneEvent {
                event,
                end,
                volume: timing.volume,
                duration: units(elapsed),
            },
        });
    };

    let mut offset = Duration::ZERO;
    while offset < timing.duration {
        push(offset, offset, false);
        offset += interval;
    }
    // The final packet reports the whole tone; it goes out when the tone
    // ends and twice more at the update interval (section 2.5.1.4).
    for repeat in 0..3 {
        push(timing.duration + interval * repeat, timing.duration, true);
    }
    Ok(packets)
}

#[cfg(test)]
mod tests;
