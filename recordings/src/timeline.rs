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

use rtp::g722::{G722Decoder, PT_G722};
use rtp::{PT_PCMA, PT_PCMU, RtpPacket, g711};

/// Sample rate of G.711 and of a recording made with [`Timeline::new`], in Hz.
pub const SAMPLE_RATE: u32 = 8000;
/// Sample rate of a recording of a G.722 call, in Hz.
pub const WIDEBAND_SAMPLE_RATE: u32 = 16_000;
/// RTP timestamp clock of G.711 and G.722 alike (RFC 3551 section 4.5.2).
const RTP_CLOCK_RATE: u32 = 8000;
/// How long samples wait for late or reordered packets before being written.
pub const DEFAULT_JITTER_WINDOW: Duration = Duration::from_millis(200);

/// A timestamp that disagrees with the arrival time by more than this many
/// seconds re-anchors the SSRC at the arrival time. This covers senders
/// that jump their timestamp and senders that stop the timestamp while on
/// hold or in silence suppression.
const MAX_TIMESTAMP_DRIFT_SECONDS: i64 = 3;
/// Bound on buffered seconds per channel, so a sender whose timestamps run
/// ahead, or a caller that stops flushing, cannot grow memory without end.
const MAX_BUFFERED_SECONDS: usize = 10;

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
    /// Neither PCMU, PCMA nor G.722, or an empty payload.
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
    /// Frames of audio per channel (caller, agent) that arrived after their
    /// place in the file was written: whole late packets and the cut-off
    /// start of packets that were partly late. The file has silence there,
    /// unless a late packet duplicated audio that came in time.
    pub late_frames: [u64; 2],
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
    /// G.722 is ADPCM: its decoder state follows one SSRC's packets.
    g722: Option<G722Decoder>,
    /// Samples from the first unwritten frame on; `None` where no packet
    /// has landed, which becomes silence.
    pending: VecDeque<Option<i16>>,
}

impl ChannelTimeline {
    /// Returns the frame of the packet's first sample and whether it needed
    /// a new anchor.
    /// `frames_per_tick` is the timeline's frames per RTP timestamp unit,
    /// and `max_drift` the re-anchoring threshold in frames.
    fn locate(
        &mut self,
        (ssrc, timestamp): (u32, u32),
        arrival_frame: i64,
        frames_per_tick: i64,
        max_drift: i64,
    ) -> (i64, bool) {
        if let Some(anchor) = self.anchor.as_mut().filter(|anchor| anchor.ssrc == ssrc) {
            // Reading the difference as i32 makes a wrapped timestamp just
            // after 2^32 - 1 come out as a small step forward.
            let offset = i64::from(timestamp.wrapping_sub(anchor.timestamp) as i32);
            let frame = anchor.frame + offset * frames_per_tick;
            if (frame - arrival_frame).abs() <= max_drift {
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

    /// Also returns how many of the samples came too late to be stored.
    fn store(
        &mut self,
        first_frame: i64,
        written: u64,
        samples: impl ExactSizeIterator<Item = i16>,
        max_buffered: usize,
    ) -> (Placement, u64) {
        let written = written as i64;
        let count = samples.len() as i64;
        if first_frame + count <= written {
            return (Placement::Late, count as u64);
        }
        // Samples before the written frames are cut, the rest still fits.
        let skip = (written - first_frame).max(0);
        let start_index = (first_frame + skip - written) as usize;
        let end_index = (first_frame + count - written) as usize;
        if end_index > max_buffered {
            return (Placement::TooFarAhead, 0);
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
            // A copy of stored audio: its cut-off start most likely copies
            // written audio too, so nothing counts as late.
            return (Placement::Duplicate, 0);
        }
        let placed = Placement::Placed {
            frame: (first_frame + skip) as u64,
            samples: stored,
        };
        (placed, skip as u64)
    }
}

/// Places RTP audio of two channels on one timeline starting at `start`.
#[derive(Debug)]
pub struct Timeline {
    start: Instant,
    sample_rate: u32,
    jitter_frames: u64,
    channels: [ChannelTimeline; 2],
    /// Frames already handed out by [`Timeline::drain_until`].
    written: u64,
    counts: PlacementCounts,
    /// Paused spans still to write, oldest first: frames from `start` up
    /// to `end` (exclusive, `None` while the pause lasts) leave as silence.
    pauses: VecDeque<PausedSpan>,
    /// Decoded samples of the packet being placed, kept between packets so
    /// that placing one allocates nothing once the call is under way.
    decoded: Vec<i16>,
}

/// Frames that a recording pause turns into silence on both channels.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct PausedSpan {
    start: u64,
    end: Option<u64>,
}

impl Timeline {
    /// Creates an empty 8 kHz timeline whose frame 0 is `start`.
    pub fn new(start: Instant, jitter_window: Duration) -> Timeline {
        Timeline::with_sample_rate(start, jitter_window, SAMPLE_RATE)
    }

    /// Creates an empty timeline at [`SAMPLE_RATE`] or
    /// [`WIDEBAND_SAMPLE_RATE`]; any other rate is taken as 8 kHz.
    pub fn with_sample_rate(start: Instant, jitter_window: Duration, sample_rate: u32) -> Timeline {
        let sample_rate = if sample_rate == WIDEBAND_SAMPLE_RATE {
            WIDEBAND_SAMPLE_RATE
        } else {
            SAMPLE_RATE
        };
        Timeline {
            start,
            sample_rate,
            jitter_frames: frames_in(jitter_window, sample_rate),
            channels: Default::default(),
            written: 0,
            counts: PlacementCounts::default(),
            pauses: VecDeque::new(),
            decoded: Vec::new(),
        }
    }

    /// Decodes a PCMU, PCMA or G.722 packet received at `arrival` and
    /// stores its samples on `channel`, converted to the timeline's rate. Samples already stored are kept, so the first
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
        let payload_type = packet.payload_type;
        if !matches!(payload_type, PT_PCMU | PT_PCMA | PT_G722) || packet.payload.is_empty() {
            return Placement::Ignored { payload_type };
        }
        let rate = i64::from(self.sample_rate);
        let arrival_frame = self.frame_at(arrival) as i64;
        let frames_per_tick = rate / i64::from(RTP_CLOCK_RATE);
        let max_drift = MAX_TIMESTAMP_DRIFT_SECONDS * rate;
        let timeline = &mut self.channels[channel.index()];
        let key = (packet.ssrc, packet.timestamp);
        let (frame, anchored) = timeline.locate(key, arrival_frame, frames_per_tick, max_drift);
        if anchored {
            self.counts.anchors += 1;
            timeline.g722 = None;
        }
        decode(
            payload_type,
            packet.payload,
            self.sample_rate,
            &mut timeline.g722,
            &mut self.decoded,
        );
        let max_buffered = MAX_BUFFERED_SECONDS * self.sample_rate as usize;
        let samples = self.decoded.iter().copied();
        let (placement, late) = timeline.store(frame, self.written, samples, max_buffered);
        self.counts.late_frames[channel.index()] += late;
        placement
    }

    /// Sample rate of the frames, in Hz.
    pub fn sample_rate(&self) -> u32 {
        self.sample_rate
    }

    /// Frame that `instant` falls on, counted from `start`; 0 before it.
    pub fn frame_at(&self, instant: Instant) -> u64 {
        frames_in(
            instant.saturating_duration_since(self.start),
            self.sample_rate,
        )
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

    /// Starts writing silence on both channels from the frame of `at`, or
    /// from the first unwritten frame when `at` lies before it (a pause
    /// cannot reach back into frames already handed out). Audio placed in
    /// the paused frames is dropped when they are drained. Returns false,
    /// changing nothing, when the timeline is already paused.
    pub fn pause(&mut self, at: Instant) -> bool {
        if self.is_paused() {
            return false;
        }
        let start = self.frame_at(at).max(self.written);
        self.pauses.push_back(PausedSpan { start, end: None });
        true
    }

    /// Ends the current pause at the frame of `at`: frames from there on
    /// carry audio again. A resume at or before the pause's first frame
    /// leaves an empty span. Returns false, changing nothing, when the
    /// timeline is not paused.
    pub fn resume(&mut self, at: Instant) -> bool {
        let frame = self.frame_at(at);
        match self.pauses.back_mut() {
            Some(span) if span.end.is_none() => {
                span.end = Some(frame.max(span.start));
                true
            }
            _ => false,
        }
    }

    /// True between [`Timeline::pause`] and [`Timeline::resume`].
    pub fn is_paused(&self) -> bool {
        self.pauses.back().is_some_and(|span| span.end.is_none())
    }

    /// Whether frame `frame`, the next one to hand out, falls in a paused
    /// span. Forgets the spans that end at or before it, so each frame
    /// costs one comparison or two.
    fn silenced(&mut self, frame: u64) -> bool {
        while let Some(span) = self.pauses.front() {
            match span.end {
                Some(end) if end <= frame => {
                    self.pauses.pop_front();
                }
                _ => return span.start <= frame,
            }
        }
        false
    }

    /// Hands frames from [`Timeline::written`] up to `end` (exclusive) to
    /// `sink` as (caller, agent) pairs, with silence where no packet landed
    /// and in paused spans. Stops at the first error from `sink`; the
    /// frames before it count as written.
    pub fn drain_until<E>(
        &mut self,
        end: u64,
        mut sink: impl FnMut(i16, i16) -> Result<(), E>,
    ) -> Result<(), E> {
        while self.written < end {
            let silenced = self.silenced(self.written);
            let [caller, agent] = &mut self.channels;
            let left = caller.pending.pop_front().flatten().unwrap_or(0);
            let right = agent.pending.pop_front().flatten().unwrap_or(0);
            self.written += 1;
            if silenced {
                sink(0, 0)?;
            } else {
                sink(left, right)?;
            }
        }
        Ok(())
    }

    /// Appends the frames from [`Timeline::written`] up to `end` (exclusive)
    /// to `out` as interleaved samples, caller first, with silence where no
    /// packet landed and in paused spans. Writes the same frames as
    /// [`Timeline::drain_until`], a channel at a time rather than a call
    /// per frame.
    pub fn drain_into(&mut self, end: u64, out: &mut Vec<i16>) {
        let Some(count) = end.checked_sub(self.written).filter(|&count| count > 0) else {
            return;
        };

        let count = count as usize;
        let base = out.len();
        out.resize(base + 2 * count, 0);
        let frames = &mut out[base..];
        for (offset, channel) in self.channels.iter_mut().enumerate() {
            let available = channel.pending.len().min(count);
            for (index, sample) in channel.pending.drain(..available).enumerate() {
                frames[2 * index + offset] = sample.unwrap_or(0);
            }
        }

        let first = self.written;
        let mut frame = first;
        // Only the oldest unfinished span counts at each frame, as in
        // `silenced`, so spans whose instants came out of order give the
        // same file either way.
        while frame < end {
            while self
                .pauses
                .front()
                .is_some_and(|span| span.end.is_some_and(|span_end| span_end <= frame))
            {
                self.pauses.pop_front();
            }
            let Some(span) = self.pauses.front() else {
                break;
            };
            let silent_from = span.start.max(frame);
            if silent_from >= end {
                break;
            }
            let silent_until = span.end.map_or(end, |span_end| span_end.min(end));
            let range = 2 * (silent_from - first) as usize..2 * (silent_until - first) as usize;
            frames[range].fill(0);
            frame = silent_until;
        }

        self.written = end;
    }
}

/// Decodes one payload into `out` (cleared first) as samples at
/// `sample_rate`. G.711 at 16 kHz is interpolated linearly between samples,
/// and G.722 at 8 kHz keeps the mean of each pair of samples.
///
/// NOTE: both are crude filters that leave images (G.711 at 16 kHz) or
/// aliases (G.722 at 8 kHz) near 4 kHz. They only run in a call whose
/// legs use different rates, which the relay's transcoding makes rare.
fn decode(
    payload_type: u8,
    payload: &[u8],
    sample_rate: u32,
    g722: &mut Option<G722Decoder>,
    out: &mut Vec<i16>,
) {
    out.clear();
    match payload_type {
        PT_PCMU => decode_g711(payload, sample_rate, out, g711::ulaw_to_linear),
        PT_PCMA => decode_g711(payload, sample_rate, out, g711::alaw_to_linear),
        _ => {
            g722.get_or_insert_with(G722Decoder::new)
                .decode(payload, out);
            if sample_rate != WIDEBAND_SAMPLE_RATE {
                // Averaging in place works because pair `i` sits at or
                // after index `i`.
                let pairs = out.len() / 2;
                for index in 0..pairs {
                    let sum = i32::from(out[2 * index]) + i32::from(out[2 * index + 1]);
                    out[index] = (sum / 2) as i16;
                }
                out.truncate(pairs);
            }
        }
    }
}

/// Appends G.711 samples decoded by `law`, interpolated to 16 kHz for a
/// wideband timeline. Generic over `law` so that it is inlined.
fn decode_g711(payload: &[u8], sample_rate: u32, out: &mut Vec<i16>, law: impl Fn(u8) -> i16) {
    if sample_rate != WIDEBAND_SAMPLE_RATE {
        out.extend(payload.iter().map(|&byte| law(byte)));
        return;
    }
    for (index, &byte) in payload.iter().enumerate() {
        let sample = law(byte);
        let next = payload.get(index + 1).map_or(sample, |&next| law(next));
        out.push(sample);
        out.push(((i32::from(sample) + i32::from(next)) / 2) as i16);
    }
}

/// Whole samples at `sample_rate` in `duration`, rounded down.
fn frames_in(duration: Duration, sample_rate: u32) -> u64 {
    let rate = u64::from(sample_rate);
    duration.as_secs() * rate + u64::from(duration.subsec_nanos()) * rate / 1_000_000_000
}
