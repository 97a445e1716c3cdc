//! Sans-IO prompt and music player: 8 kHz samples in, 20 ms RTP payloads
//! out, paced by the instants the caller passes in.

use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::codec::Encoder;

/// Samples per packet: 20 ms at 8 kHz.
pub(crate) const SAMPLES_PER_PACKET: usize = 160;
pub(crate) const PACKET_INTERVAL: Duration = Duration::from_millis(20);
/// A player this far behind its schedule (the task was starved) skips
/// ahead instead of sending a burst the receiver would have to drop.
const MAX_LAG: Duration = Duration::from_millis(100);

/// One packet produced by [`Player::poll`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct PlayerPacket {
    pub(crate) sequence: u16,
    pub(crate) timestamp: u32,
    pub(crate) payload: Vec<u8>,
}

/// Plays a list of prompts once or in a loop.
#[derive(Debug)]
pub(crate) struct Player {
    prompts: Vec<Arc<[i16]>>,
    prompt: usize,
    position: usize,
    looped: bool,
    pub(crate) barge_in: bool,
    sequence: u16,
    timestamp: u32,
    next_due: Instant,
    finished: bool,
}

impl Player {
    /// Creates a player whose first packet is due at `start`. With no samples at
    /// all it is finished at once, even when looped.
    pub(crate) fn new(
        prompts: Vec<Arc<[i16]>>,
        looped: bool,
        barge_in: bool,
        start: Instant,
        (sequence, timestamp): (u16, u32),
    ) -> Player {
        let finished = prompts.iter().all(|prompt| prompt.is_empty());
        Player {
            prompts,
            prompt: 0,
            position: 0,
            looped,
            barge_in,
            sequence,
            timestamp,
            next_due: start,
            finished,
        }
    }

    pub(crate) fn is_finished(&self) -> bool {
        self.finished
    }

    /// When the next packet is due, unless the player is finished.
    pub(crate) fn next_due(&self) -> Option<Instant> {
        (!self.finished).then_some(self.next_due)
    }

    /// Returns the packets due at `now`, encoded by `encoder`. The last
    /// packet of a prompt list that is not looped is padded with silence.
    pub(crate) fn poll(&mut self, now: Instant, encoder: &mut Encoder) -> Vec<PlayerPacket> {
        if now.saturating_duration_since(self.next_due) > MAX_LAG {
            let lag = now.duration_since(self.next_due);
            let skipped = (lag.as_nanos() / PACKET_INTERVAL.as_nanos()) as u32;
            tracing::debug!(skipped, "player fell behind, skipping packets");
            // The timestamps still follow the clock, so the receiver sees a
            // gap in time but no lost sequence numbers.
            let skipped_samples = skipped.wrapping_mul(SAMPLES_PER_PACKET as u32);
            self.timestamp = self.timestamp.wrapping_add(skipped_samples);
            self.next_due += PACKET_INTERVAL * skipped;
        }
        let mut packets = Vec::new();
        while !self.finished && self.next_due <= now {
            let Some(samples) = self.next_frame() else {
                self.finished = true;
                break;
            };
            packets.push(PlayerPacket {
                sequence: self.sequence,
                timestamp: self.timestamp,
                payload: encoder.encode(&samples),
            });
            self.sequence = self.sequence.wrapping_add(1);
            self.timestamp = self.timestamp.wrapping_add(SAMPLES_PER_PACKET as u32);
            self.next_due += PACKET_INTERVAL;
            // Finished as soon as the last samples left, so the caller can
            // report the end without waiting another packet interval.
            if !self.looped && self.prompt >= self.prompts.len() {
                self.finished = true;
            }
        }
        packets
    }

    /// Takes the next 160 samples, across prompt boundaries; `None` once
    /// every prompt has been played and the list does not loop.
    fn next_frame(&mut self) -> Option<[i16; SAMPLES_PER_PACKET]> {
        let mut frame = [0i16; SAMPLES_PER_PACKET];
        let mut filled = 0;
        while filled < SAMPLES_PER_PACKET {
            let Some(prompt) = self.prompts.get(self.prompt) else {
                // `new` marked a list without samples finished, so a looped
                // list always finds a sample within one round.
                if !self.looped {
                    break;
                }
                self.prompt = 0;
                self.position = 0;
                continue;
            };
            let available = prompt.get(self.position..).unwrap_or_default();
            let count = available.len().min(SAMPLES_PER_PACKET - filled);
            frame[filled..filled + count].copy_from_slice(&available[..count]);
            filled += count;
            self.position += count;
            if self.position >= prompt.len() {
                self.prompt += 1;
                self.position = 0;
            }
        }
        (filled > 0).then_some(frame)
    }
}

#[cfg(test)]
mod tests {
    use rtp::g711;

    use super::*;
    use crate::codec::Codec;

    fn pcmu() -> Encoder {
        Encoder::new(Codec::Pcmu)
    }

    fn ramp(length: usize) -> Arc<[i16]> {
        (0..length).map(|i| (i % 10_000) as i16 + 1).collect()
    }

    fn decode(payload: &[u8]) -> Vec<i16> {
        payload
            .iter()
            .map(|byte| g711::ulaw_to_linear(*byte))
            .collect()
    }

    /// A sample as it comes back from mu-law.
    fn companded(sample: i16) -> i16 {
        g711::ulaw_to_linear(g711::linear_to_ulaw(sample))
    }

    #[test]
    fn paces_one_packet_per_20_ms() {
        let start = Instant::now();
        let mut player = Player::new(vec![ramp(800)], false, false, start, (10, 1000));
        assert_eq!(player.poll(start, &mut pcmu()).len(), 1);
        assert!(
            player
                .poll(start + Duration::from_millis(19), &mut pcmu())
                .is_empty()
        );
        let packets = player.poll(start + Duration::from_millis(60), &mut pcmu());
        let headers: Vec<(u16, u32)> = packets.iter().map(|p| (p.sequence, p.timestamp)).collect();
        assert_eq!(headers, [(11, 1160), (12, 1320), (13, 1480)]);
        assert_eq!(player.next_due(), Some(start + Duration::from_millis(80)));
    }

    #[test]
    fn prompts_join_and_last_packet_is_padded() {
        let start = Instant::now();
        let mut player = Player::new(vec![ramp(100), ramp(100)], false, false, start, (0, 0));
        let packets = player.poll(start + PACKET_INTERVAL, &mut pcmu());
        assert_eq!(packets.len(), 2);
        let first = decode(&packets[0].payload);
        assert_eq!(first[99], companded(100));
        assert_eq!(first[100], companded(1));
        let second = decode(&packets[1].payload);
        assert!(second[40..].iter().all(|sample| *sample == 0));
        assert!(player.is_finished());
        assert_eq!(player.next_due(), None);
    }

    #[test]
    fn looped_player_restarts() {
        let start = Instant::now();
        let mut player = Player::new(vec![ramp(200)], true, false, start, (0, 0));
        let mut packets = Vec::new();
        for step in 0..5u64 {
            packets.extend(player.poll(start + PACKET_INTERVAL * step as u32, &mut pcmu()));
        }
        assert_eq!(packets.len(), 5);
        assert!(!player.is_finished());
        // Packet 1 contains samples 160..200 then 0..120 of the next round.
        let second = decode(&packets[1].payload);
        assert_eq!(second[40], companded(1));
    }

    #[test]
    fn empty_prompts_finish_at_once() {
        let start = Instant::now();
        let player = Player::new(vec![ramp(0)], true, false, start, (0, 0));
        assert!(player.is_finished());
        let player = Player::new(Vec::new(), true, false, start, (0, 0));
        assert!(player.is_finished());
    }

    #[test]
    fn starved_player_skips_ahead() {
        let start = Instant::now();
        let mut player = Player::new(vec![ramp(80_000)], false, false, start, (0, 0));
        let packets = player.poll(start + Duration::from_secs(1), &mut pcmu());
        assert_eq!(packets.len(), 1, "no burst after a stall");
        assert_eq!(packets[0].sequence, 0);
        assert_eq!(
            packets[0].timestamp,
            50 * 160,
            "timestamp follows the clock"
        );
        assert_eq!(
            player.next_due(),
            Some(start + Duration::from_secs(1) + PACKET_INTERVAL)
        );
    }
}
