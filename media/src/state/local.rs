//! Packets the relay itself sends to a leg: prompts and music from the
//! player, and generated DTMF digits.

use std::sync::Arc;
use std::time::{Duration, Instant};

use rtp::telephone_event::{DigitTiming, generate_digit};

use super::{CLOCK_RATE, RelayState, ScheduledEvent, build_packet};
use crate::codec::Encoder;
use crate::player::Player;
use crate::session::{LegSockets, PlayerStart};
use crate::{Leg, MediaEvent, PlaybackEnd};

impl RelayState {
    pub(super) fn start_player(&mut self, leg: Leg, request: PlayerStart, now: Instant) {
        if self.media[leg.index()].player.is_some() {
            self.end_player(leg, PlaybackEnd::Replaced);
        }
        let player = Player::new(
            request.prompts,
            request.looped,
            request.barge_in,
            now,
            (0, 0),
        );
        if player.is_finished() {
            // Nothing to play: report the end now, because a stored finished
            // player would never be polled and would mute the leg for good.
            self.emit(MediaEvent::PlaybackEnded {
                leg,
                reason: PlaybackEnd::Finished,
            });
            return;
        }
        tracing::debug!(?leg, looped = request.looped, "playback started");
        let media = &mut self.media[leg.index()];
        media.player_source = media.next_local_source();
        media.player = Some(player);
    }

    pub(super) fn end_player(&mut self, leg: Leg, reason: PlaybackEnd) {
        if self.media[leg.index()].player.take().is_some() {
            tracing::debug!(?leg, ?reason, "playback ended");
            self.emit(MediaEvent::PlaybackEnded { leg, reason });
        }
    }

    /// Queues a DTMF key to `leg`: RFC 4733 events when the leg negotiated
    /// them, else an in-band tone through the player.
    pub(super) fn send_digit(&mut self, leg: Leg, digit: char, now: Instant) {
        let media = &mut self.media[leg.index()];
        let Some(payload_type) = media.event_payload_type() else {
            let tone = crate::dtmf_tone::dtmf_tone(digit, Duration::from_millis(100), CLOCK_RATE);
            if let Some(tone) = tone {
                let request = PlayerStart {
                    prompts: vec![tone.into()],
                    looped: false,
                    barge_in: false,
                };
                self.start_player(leg, request, now);
            }
            return;
        };
        let Ok(packets) = generate_digit(digit, 0, 0, DigitTiming::default()) else {
            tracing::debug!(?leg, %digit, "not a DTMF key, nothing sent");
            return;
        };
        // Events queued behind earlier ones start after them.
        let start = media.events.back().map_or(now, |last| last.due.max(now));
        let source = media.next_local_source();
        for packet in packets {
            media.events.push_back(ScheduledEvent {
                due: start + packet.offset,
                marker: packet.marker,
                sequence: packet.sequence,
                timestamp: packet.timestamp,
                payload: packet.event.to_bytes(),
                payload_type,
                source,
            });
        }
    }

    /// Queues `keys` to `leg` in order, as [`RelayState::send_digit`] does.
    /// Without telephone-events the tones (each followed by 50 ms of
    /// silence) play as one prompt list, because each new player replaces
    /// the last.
    pub(super) fn send_digits(&mut self, leg: Leg, keys: &[char], now: Instant) {
        if keys.is_empty() {
            return;
        }
        if self.media[leg.index()].event_payload_type().is_some() {
            for &key in keys {
                self.send_digit(leg, key, now);
            }
            return;
        }
        let prompts: Vec<Arc<[i16]>> = keys
            .iter()
            .filter_map(|&key| {
                crate::dtmf_tone::dtmf_tone(key, Duration::from_millis(100), CLOCK_RATE)
            })
            .map(Arc::from)
            .collect();
        let request = PlayerStart {
            prompts,
            looped: false,
            barge_in: false,
        };
        self.start_player(leg, request, now);
    }

    /// When the next local packet (player or DTMF) is due on either leg.
    pub(crate) fn next_local_due(&self) -> Option<Instant> {
        let [caller, agent] = &self.media;
        match (caller.next_due(), agent.next_due()) {
            (Some(caller), Some(agent)) => Some(caller.min(agent)),
            (caller, agent) => caller.or(agent),
        }
    }

    /// Sends the player and DTMF packets due at `now` on both legs.
    pub(crate) fn send_local(&mut self, sockets: &[LegSockets; 2], now: Instant) {
        for leg in [Leg::Caller, Leg::Agent] {
            self.send_player_packets(sockets, leg, now);
            self.send_event_packets(sockets, leg, now);
        }
    }

    fn send_player_packets(&mut self, sockets: &[LegSockets; 2], leg: Leg, now: Instant) {
        let media = &mut self.media[leg.index()];
        let codec = media.codec();
        let source = media.player_source;
        let Some(player) = media.player.as_mut() else {
            return;
        };
        let encoder = match &mut media.encoder {
            Some(encoder) if encoder.codec() == codec => encoder,
            slot => slot.insert(Encoder::new(codec)),
        };
        let packets = player.poll(now, encoder);
        let finished = player.is_finished();
        let destination = self.peers[leg.index()].rtp_destination();
        for packet in packets {
            let rewritten = self.media[leg.index()].outgoing.rewrite(
                source,
                packet.sequence,
                packet.timestamp,
                now,
            );
            let datagram = build_packet(codec.payload_type(), false, rewritten, &packet.payload);
            if let Some(destination) = destination {
                self.send(sockets, leg, destination, &datagram);
            }
        }
        if finished {
            self.end_player(leg, PlaybackEnd::Finished);
        }
    }

    fn send_event_packets(&mut self, sockets: &[LegSockets; 2], leg: Leg, now: Instant) {
        let destination = self.peers[leg.index()].rtp_destination();
        while let Some(event) = self.media[leg.index()].events.front() {
            if event.due > now {
                break;
            }
            let media = &mut self.media[leg.index()];
            let Some(event) = media.events.pop_front() else {
                break;
            };
            let rewritten =
                media
                    .outgoing
                    .rewrite(event.source, event.sequence, event.timestamp, now);
            let datagram =
                build_packet(event.payload_type, event.marker, rewritten, &event.payload);
            if let Some(destination) = destination {
                self.send(sockets, leg, destination, &datagram);
            }
        }
    }
}
