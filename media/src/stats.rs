//! Reception statistics of one leg as RFC 3550 defines them (appendix A.1
//! for sequence numbers and loss, A.8 for interarrival jitter), and a MOS
//! estimate from them.

use std::time::Instant;

/// A sequence number this far ahead of the highest one is a jump, not loss
/// (RFC 3550 appendix A.1 uses the same values).
const MAX_DROPOUT: u16 = 3000;
/// A sequence number at most this far behind is a late or duplicate packet.
const MAX_MISORDER: u16 = 100;

/// Sans-IO RFC 3550 receiver statistics over every source a leg sends.
///
/// When the SSRC changes (a transfer, a re-INVITE to another phone), the old
/// source's counts move into the totals and the new source starts fresh, so
/// its sequence numbers do not count as a huge loss.
#[derive(Debug, Default)]
pub(crate) struct ReceptionStatistics {
    source: Option<SourceStatistics>,
    /// Expected and received packets of sources no longer current.
    finished_expected: u64,
    finished_received: u64,
}

#[derive(Debug)]
struct SourceStatistics {
    ssrc: u32,
    clock_rate: u32,
    base_sequence: u32,
    max_sequence: u16,
    /// Sequence number wraps times 65536.
    cycles: u32,
    /// A jump seen once; the source restarts if the next packet follows it.
    bad_sequence: Option<u16>,
    received: u64,
    /// Origin of the arrival clock in timestamp units.
    epoch: Instant,
    last_transit: Option<f64>,
    /// Interarrival jitter in timestamp units.
    jitter: f64,
}

/// Snapshot of [`ReceptionStatistics`].
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub(crate) struct Reception {
    pub(crate) received: u64,
    pub(crate) expected: u64,
    pub(crate) jitter_seconds: f64,
}

impl SourceStatistics {
    fn new(ssrc: u32, sequence: u16, clock_rate: u32, arrival: Instant) -> SourceStatistics {
        SourceStatistics {
            ssrc,
            clock_rate: clock_rate.max(1),
            base_sequence: u32::from(sequence),
            max_sequence: sequence,
            cycles: 0,
            bad_sequence: None,
            received: 0,
            epoch: arrival,
            last_transit: None,
            jitter: 0.0,
        }
    }

    fn extended_max(&self) -> u64 {
        u64::from(self.cycles) + u64::from(self.max_sequence)
    }

    fn expected(&self) -> u64 {
        (self.extended_max() + 1).saturating_sub(u64::from(self.base_sequence))
    }

    /// RFC 3550 appendix A.1 `update_seq` without the probation period:
    /// returns false for a packet that starts a jump, which is not counted.
    fn update_sequence(&mut self, sequence: u16) -> bool {
        let delta = sequence.wrapping_sub(self.max_sequence);
        if delta < MAX_DROPOUT {
            if sequence < self.max_sequence {
                self.cycles += 1 << 16;
            }
            self.max_sequence = sequence;
        } else if delta <= u16::MAX - MAX_MISORDER {
            // A large jump: the sender restarted unless this is a stray
            // packet, so restart only when the next packet follows it.
            if self.bad_sequence != Some(sequence) {
                self.bad_sequence = Some(sequence.wrapping_add(1));
                return false;
            }
            self.base_sequence = u32::from(sequence);
            self.max_sequence = sequence;
            self.cycles = 0;
            self.received = 0;
        }
        // Otherwise a duplicate or reordered packet, counted as received.
        self.bad_sequence = None;
        self.received += 1;
        true
    }

    /// RFC 3550 appendix A.8: J += (|D| - J) / 16, where D is the change in
    /// transit time (arrival minus RTP timestamp) between two packets.
    fn update_jitter(&mut self, timestamp: u32, arrival: Instant) {
        let arrival_units = arrival.saturating_duration_since(self.epoch).as_secs_f64()
            * f64::from(self.clock_rate);
        // Timestamps wrap after 2^32; reading it as an offset from the
        // previous transit keeps the difference small.
        let transit = arrival_units - f64::from(timestamp);
        if let Some(last) = self.last_transit {
            let mut difference = (transit - last).abs();
            let wrap = f64::from(u32::MAX) + 1.0;
            if difference > wrap / 2.0 {
                difference = (difference - wrap).abs();
            }
            self.jitter += (difference - self.jitter) / 16.0;
        }
        self.last_transit = Some(transit);
    }
}

impl ReceptionStatistics {
    /// Counts one audio packet received at `arrival`. `clock_rate` is the
    /// RTP clock of its payload type. Telephone-events must not be fed here
    /// because their timestamp stays at the event start.
    pub(crate) fn record(
        &mut self,
        ssrc: u32,
        sequence: u16,
        timestamp: u32,
        clock_rate: u32,
        arrival: Instant,
    ) {
        let same_source = self.source.as_ref().is_some_and(|s| s.ssrc == ssrc);
        if !same_source {
            if let Some(old) = self.source.take() {
                self.finished_expected += old.expected();
                self.finished_received += old.received;
            }
            // The first packet counts: base = its sequence, received = 1.
            let mut source = SourceStatistics::new(ssrc, sequence, clock_rate, arrival);
            source.received = 1;
            source.update_jitter(timestamp, arrival);
            self.source = Some(source);
            return;
        }
        if let Some(source) = self.source.as_mut()
            && source.update_sequence(sequence)
        {
            source.update_jitter(timestamp, arrival);
        }
    }

    pub(crate) fn snapshot(&self) -> Reception {
        let (expected, received, jitter_seconds) = match &self.source {
            Some(source) => (
                source.expected(),
                source.received,
                source.jitter / f64::from(source.clock_rate),
            ),
            None => (0, 0, 0.0),
        };
        Reception {
            received: self.finished_received + received,
            expected: self.finished_expected + expected,
            jitter_seconds,
        }
    }
}

/// Estimates the MOS (1.0 to 4.5) of G.711 audio from the packet loss
/// fraction (0.0 to 1.0) and the interarrival jitter in milliseconds, with
/// a reduced ITU-T G.107 E-model:
///
/// - R = 93.2 - Id - Ie,eff: 93.2 is Ro - Is with every G.107 default.
/// - Id = 0.024 d + 0.11 (d - 177.3) H(d - 177.3), the usual linear fit of
///   the G.107 delay impairment (Cole and Rosenbluth, "Voice over IP
///   performance monitoring", ACM CCR 2001). The one-way delay d is taken as
///   twice the jitter (what a receiver's jitter buffer adds) plus 30 ms of
///   packetization and network delay, an assumption: the relay measures no
///   round trip.
/// - Ie,eff = Ie + (95 - Ie) Ppl / (Ppl + Bpl) (G.107 section 7.5, random
///   loss) with Ie = 0 and Bpl = 25.1 for G.711 with packet loss
///   concealment (ITU-T G.113 Appendix I).
/// - MOS = 1 + 0.035 R + 7e-6 R (R - 60) (100 - R) (G.107 Annex B).
pub fn estimate_mos(loss_fraction: f64, jitter_ms: f64) -> f64 {
    let loss_percent = (loss_fraction * 100.0).clamp(0.0, 100.0);
    let delay = 2.0 * jitter_ms.max(0.0) + 30.0;
    let mut delay_impairment = 0.024 * delay;
    if delay > 177.3 {
        delay_impairment += 0.11 * (delay - 177.3);
    }
    let equipment_impairment = 95.0 * loss_percent / (loss_percent + 25.1);
    let rating = 93.2 - delay_impairment - equipment_impairment;
    if rating <= 0.0 {
        return 1.0;
    }
    if rating >= 100.0 {
        return 4.5;
    }
    1.0 + 0.035 * rating + 7e-6 * rating * (rating - 60.0) * (100.0 - rating)
}

#[cfg(test)]
mod tests;
