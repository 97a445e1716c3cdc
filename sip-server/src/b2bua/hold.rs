//! Holds inside an answered call: a re-INVITE or UPDATE whose offer is
//! `a=sendonly`, `a=inactive` or `c=0.0.0.0` puts the other leg on hold,
//! and a later offer from the same side without them resumes it.
//!
//! A hold counts from the 2xx to the holding offer, so an offer the other
//! leg rejects changes nothing. The held party hears the queue's music on
//! hold from the relay, which also keeps the holding phone's audio from it.

use std::time::{Duration, Instant};

use sip_message::Request;

use super::call::{Phase, Side};
use super::{Command, Core};

/// Hold count and times of one call, for its CDR.
#[derive(Debug, Default)]
pub(crate) struct HoldTimes {
    /// Holds started so far.
    pub count: u32,
    /// Time on hold in the holds that ended.
    pub total: Duration,
    /// Start and holding side of the hold in progress.
    pub current: Option<(Instant, Side)>,
}

impl HoldTimes {
    /// Returns the time on hold up to `end`, the hold in progress included.
    pub(crate) fn seconds_until(&self, end: Instant) -> f64 {
        let open = self.current.map_or(Duration::ZERO, |(since, _)| {
            end.saturating_duration_since(since)
        });
        (self.total + open).as_secs_f64()
    }

    /// Ends the hold in progress at `at`, returning the side that held.
    fn close(&mut self, at: Instant) -> Option<Side> {
        let (since, by) = self.current.take()?;
        self.total += at.saturating_duration_since(since);
        Some(by)
    }
}

fn party(side: Side) -> acd::Party {
    match side {
        Side::Caller => acd::Party::Caller,
        Side::Agent => acd::Party::Agent,
    }
}

impl Core {
    /// Notes the hold state that `origin`'s offer in `request` set, once
    /// the other leg accepted it with a 2xx.
    pub(super) fn offer_accepted(
        &mut self,
        call_id: &str,
        origin: Side,
        request: &Request,
        now: Instant,
    ) {
        if request.body.is_empty() {
            return;
        }
        let Ok(offer) = crate::sdp::parse(&request.body) else {
            return;
        };
        let held = crate::sdp::is_hold(&offer);
        let Some(call) = self.calls.get_mut(call_id) else {
            return;
        };
        if call.phase != Phase::Talking {
            return;
        }
        match call.holds.current {
            None if held => {
                call.holds.current = Some((now, origin));
                call.holds.count += 1;
                let _span = call.span.clone().entered();
                tracing::info!(by = ?origin, "call put on hold");
                self.acd.call_held(call_id, party(origin), now);
                self.play_hold_music(call_id, origin.other());
            }
            // Only the side that held can resume: the held phone's own
            // refresh while on hold is not a resume.
            Some((_, by)) if !held && by == origin => {
                call.holds.close(now);
                let _span = call.span.clone().entered();
                tracing::info!(by = ?origin, "call resumed from hold");
                self.acd.call_resumed(call_id, now);
                self.commands.push_back(Command::StopPlayback {
                    call: call_id.to_owned(),
                    side: origin.other(),
                });
            }
            _ => {}
        }
    }

    /// Ends the hold in progress of `call_id`, if any, when the call's
    /// conversation ends while one side is on hold.
    pub(super) fn close_hold(&mut self, call_id: &str, now: Instant) {
        let Some(call) = self.calls.get_mut(call_id) else {
            return;
        };
        if let Some(by) = call.holds.close(now) {
            self.acd.call_resumed(call_id, now);
            self.commands.push_back(Command::StopPlayback {
                call: call_id.to_owned(),
                side: by.other(),
            });
        }
    }

    /// Loops the music on hold of the call's queue to `side`. A queue
    /// configured without music leaves the held party with what the
    /// holding phone sends, which is usually silence.
    fn play_hold_music(&mut self, call_id: &str, side: Side) {
        let Some(call) = self.calls.get(call_id) else {
            return;
        };
        let music = self
            .config
            .queue_media
            .get(&call.queue)
            .and_then(|media| media.music_on_hold.clone())
            .or_else(|| call.music.clone());
        if let Some(file) = music {
            self.commands.push_back(Command::Play {
                call: call_id.to_owned(),
                side,
                prompts: vec![file],
                looped: true,
            });
        }
    }
}
