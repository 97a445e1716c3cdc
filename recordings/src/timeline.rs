//! Sans-IO placement of RTP audio on a per-call sample timeline.
//!
//! Frame 0 is the `start` instant. On each channel the first packet of an
//! SSRC is anchored at its arrival offset; later packets of that SSRC are
//! placed by their RTP timestamp distance from the newest packet seen, which
//! handles 32-bit wrap-around as long as consecutive packets are less than
//! 2^31 samples (about 3 days at 8 kHz) apart. Samples stay buffered until
//! they are older than the jitter window, so reordered packets can still
//! land in place, and then leave as interleaved stereo frames.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use rtp::{PT_PCMA, PT_PCMU, RtpPacket, g711};

/// Sample rate of G.711 and of the recording, in Hz.
pub const SAMPLE_RATE: u32 = 8000;
/// How long samples wait for late or reordered packets before being written.
pub const DEFAULT_JITTER_WINDOW: Duration = Duration::from_millis(200);

/// A timestamp that disagrees with the arrival time by more than this many
/// samples (3 s) re-anchors the SSRC at the arrival time. This covers senders
/// that jump their timestamp and senders that stop the timestamp while on
/// hold or in silence suppression.
const MAX_TIMESTAMP_DRIFT: i64 = 3 * SAMPLE_RATE as i64;
/// Bound on buffered frames per channel (10 s), so a sender whose timestamps
/// run ahead, or a caller that stops flushing, cannot grow memory without end.
const MAX_BUFFERED_FRAMES: usize = 10 * SAMPLE_RATE as usize;

/// Side of the conversation, and the WAV channel that carries it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Channel {
    /// Left channel.
    Caller,
    /// Right channel.
    Agent,
}

impl Channel {
    fn index(self) -> usize {
        match self {
            Channel::Caller => 0,
            Channel::Agent => 1,
        }
    }
}

/// Outcome of [`Timeline::push`] for one packet.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Placement {
    /// `samples` new samples were stored starting at frame `frame`.
    Placed { frame: u64, samples: usize },
    /// Every sample the packet covers was already stored.
    Duplicate,
    /// The packet lies entirely before the frames already written out.
    Late,
    /// The packet ends more than 10 s past the oldest unwritten frame.
    TooFarAhead,
    /// Neither PCMU nor PCMA, or an empty payload.
    Ignored { payload_type: u8 },
}

/// Running totals of [`Placement`] outcomes over both channels.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PlacementCounts {
    pub placed: u64,
    pub duplicate: u64,
    pub late: u64,
    pub too_far_ahead: u64,
    pub ignored: u64,
    /// Anchors set at an arrival time: new SSRCs and timestamp jumps.
    pub anchors: u64,
}

/// Link between an SSRC's RTP timestamps and timeline frames.
#[derive(Clone, Copy, Debug)]
struct Anchor {
    ssrc: u32,
    timestamp: u32,
    frame: i64,
}

#[derive(Debug, Default)]
struct ChannelTimeline {
    anchor: Option<Anchor>,
    /// Samples from the first unwritten frame on; `None` where no packet
    /// has landed, which becomes silence.
    pending: VecDeque<Option<i16>>,
}

impl ChannelTimeline {
    /// Returns the frame of the packet's first sample and whether it needed
    /// a new anchor.
    fn locate(&mut self, ssrc: u32, timestamp: u32, arrival_frame: i64) -> (i64, bool) {
        if let Some(anchor) = self.anchor.as_mut().filter(|anchor| anchor.ssrc == ssrc) {
            // Reading the difference as i32 makes a wrapped timestamp just
            // after 2^32 - 1 come out as a small step forward.
            let offset = i64::from(timestamp.wrapping_sub(anchor.timestamp) as i32);
            let frame = anchor.frame + offset;
            if (frame - arrival_frame).abs() <= MAX_TIMESTAMP_DRIFT {
                // Keep the newest packet as the reference so the offsets stay
                // small however long the call runs.
                if offset > 0 {
                    *anchor = Anchor {
                        ssrc,
                        timestamp,
                        frame,
                    };
                }
                return (frame, false);
            }
        }
        self.anchor = Some(Anchor {
            ssrc,
            timestamp,
            frame: arrival_frame,
        });
        (arrival_frame, true)
    }

    fn store(
        &mut self,
        first_frame: i64,
        written: u64,
        samples: impl ExactSizeIterator<Item = i16>,
    ) -> Placement {
        let written = written as i64;
        let count = samples.len() as i64;
        if first_frame + count <= written {
            return Placement::Late;
        }
        // Samples before the written frames are cut, the rest still fits.
        let skip = (written - first_frame).max(0);
        let start_index = (first_frame + skip - written) as usize;
        let end_index = (first_frame + count - written) as usize;
        if end_index > MAX_BUFFERED_FRAMES {
            return Placement::TooFarAhead;
        }
        if self.pending.len() < end_index {
            self.pending.resize(end_index, None);
        }

        let mut stored = 0;
        let slots = self.pending.range_mut(start_index..end_index);
        for (slot, sample) in slots.zip(samples.skip(skip as usize)) {
            if slot.is_none() {
                *slot = Some(sample);
                stored += 1;
            }
        }
        if stored == 0 {
            return Placement::Duplicate;
        }
        Placement::Placed {
            frame: (first_frame + skip) as u64,
            samples: stored,
        }
    }
}

/// Places RTP audio of two channels on one timeline starting at `start`.
#[derive(Debug)]
pub struct Timeline {
    start: Instant,
    jitter_frames: u64,
    channels: [ChannelTimeline; 2],
    /// Frames already handed out by [`Timeline::drain_until`].
    written: u64,
    counts: PlacementCounts,
}

impl Timeline {
    /// Creates an empty timeline whose frame 0 is `start`.
    pub fn new(start: Instant, jitter_window: Duration) -> Timeline {
        Timeline {
            start,
            jitter_frames: frames_in(jitter_window),
            channels: Default::default(),
            written: 0,
            counts: PlacementCounts::default(),
        }
    }

    /// Decodes a PCMU or PCMA packet received at `arrival` and stores its
    /// samples on `channel`. Samples already stored are kept, so the first
    /// copy of a duplicated packet wins.
    pub fn push(
        &mut self,
        channel: Channel,
        packet: &RtpPacket<'_>,
        arrival: Instant,
    ) -> Placement {
        let placement = self.place(channel, packet, arrival);
        let counter = match placement {
            Placement::Placed { .. } => &mut self.counts.placed,
            Placement::Duplicate => &mut self.counts.duplicate,
            Placement::Late => &mut self.counts.late,
            Placement::TooFarAhead => &mut self.counts.too_far_ahead,
            Placement::Ignored { .. } => &mut self.counts.ignored,
        };
        *counter += 1;
        placement
    }

    fn place(&mut self, channel: Channel, packet: &RtpPacket<'_>, arrival: Instant) -> Placement {
        let decode: fn(u8) -> i16 = match packet.payload_type {
            PT_PCMU => g711::ulaw_to_linear,
            PT_PCMA => g711::alaw_to_linear,
            payload_type => return Placement::Ignored { payload_type },
        };
        if packet.payload.is_empty() {
            return Placement::Ignored {
                payload_type: packet.payload_type,
            };
        }
        let arrival_frame = self.frame_at(arrival) as i64;
        let timeline = &mut self.channels[channel.index()];
        let (frame, anchored) = timeline.locate(packet.ssrc, packet.timestamp, arrival_frame);
        if anchored {
            self.counts.anchors += 1;
        }
        let samples = packet.payload.iter().map(|&byte| decode(byte));
        timeline.store(frame, self.written, samples)
    }

    /// Frame that `instant` falls on, counted from `start`; 0 before it.
    pub fn frame_at(&self, instant: Instant) -> u64 {
        frames_in(instant.saturating_duration_since(self.start))
    }

    /// End of the frames that are final at `now`: later packets can no
    /// longer change anything before it, short of the jitter window.
    pub fn ready_until(&self, now: Instant) -> u64 {
        self.frame_at(now).saturating_sub(self.jitter_frames)
    }

    /// Frames handed out so far, which is the next frame to hand out.
    pub fn written(&self) -> u64 {
        self.written
    }

    pub fn counts(&self) -> PlacementCounts {
        self.counts
    }

    /// Hands frames from [`Timeline::written`] up to `end` (exclusive) to
    /// `sink` as (caller, agent) pairs, with silence where no packet landed.
    /// Stops at the first error from `sink`; the frames before it count as
    /// written.
    pub fn drain_until<E>(
        &mut self,
        end: u64,
        mut sink: impl FnMut(i16, i16) -> Result<(), E>,
    ) -> Result<(), E> {
        while self.written < end {
            let [caller, agent] = &mut self.channels;
            let left = caller.pending.pop_front().flatten().unwrap_or(0);
            let right = agent.pending.pop_front().flatten().unwrap_or(0);
            self.written += 1;
            sink(left, right)?;
        }
        Ok(())
    }
}

/// Whole samples at 8 kHz in `duration`, rounded down.
fn frames_in(duration: Duration) -> u64 {
    let rate = u64::from(SAMPLE_RATE);
    duration.as_secs() * rate + u64::from(duration.subsec_nanos()) * rate / 1_000_000_000
}
