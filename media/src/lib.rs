//! RTP relay between the caller leg and the agent leg of a call.
//!
//! The PBX anchors media: each leg gets its own RTP/RTCP port pair on the
//! relay, advertised in that leg's SDP. The relay's threads (one per core by
//! default) each run an event loop over their share of the sessions, which
//! receives on each session's four sockets and forwards every RTP and RTCP
//! datagram to the other leg. The peer address of a leg is the one from its SDP
//! ([`MediaSession::set_remote`]) until the leg learns its peer's source
//! from the first valid packet from that IP address (from any source when
//! the SDP address is private, as behind NAT). From then on the relay sends
//! to that source (symmetric RTP, which gets media through NAT) and drops
//! datagrams from every other source, until [`MediaSession::reset_leg`] or
//! a new SDP address. Port pairs are picked at random, datagrams over 1500
//! bytes and payload types the leg did not negotiate
//! ([`MediaSession::set_payload_types`]) are dropped.
//!
//! When recording, RTP payloads of both legs go to a
//! [`recordings::Recorder`] (caller left, agent right), which the task
//! flushes every 100 ms and finalizes when the session closes.
//!
//! [`MediaSession::set_recording_paused`] turns a span of the call into
//! silence in the recording, on both channels, without changing its length.
//!
//! The same task detects RFC 4733 digits on each leg and reports them to
//! [`MediaSession::events`] receivers, keeps a feature code's keys from the
//! other leg ([`MediaSession::set_feature_code`]), keeps RFC 3550 reception statistics
//! ([`MediaSession::stats`]), plays WAV prompts to a leg
//! ([`MediaSession::play_with`]), sends digits ([`MediaSession::send_dtmf`])
//! and transcodes between legs whose codecs differ
//! ([`MediaSession::set_codecs`]). Whatever reaches a leg is rewritten into
//! one continuous RTP stream, so a change of source (transfer, prompt, new
//! agent) shows up to the peer as a marker bit, not a new SSRC.
//!
//! The crate does no SIP and no SDP: the caller of [`Relay::open_session`]
//! puts [`MediaSession::local_rtp_addr`] into the SDP it sends and feeds
//! the peers' SDP addresses back in.

pub mod batch;
mod codec;
mod delay;
mod dtmf_tone;
mod latch;
mod outgoing;
mod player;
mod ports;
mod prompt;
mod resample;
mod session;
mod shard;
mod spare;
mod state;
mod stats;
mod worker;

use std::net::{IpAddr, SocketAddr};
use std::ops::RangeInclusive;
use std::time::Duration;

pub use codec::{Codec, LegCodecs};
pub use delay::{RELAY_DELAY_BOUNDS_US, RelayDelays};
pub use prompt::PromptError;
pub use rtp::DetectedDigit;
pub use session::{LegStats, MediaSession, PlayRequest, Relay, load_prompt};
pub use shard::{WakeBatch, batch_wakes};
pub use stats::estimate_mos;
pub use worker::{MalformedMessage, RelayProcesses, WorkerError, serve_worker};

/// Longest feature code [`MediaSession::set_feature_code`] accepts, in keys.
pub const MAX_FEATURE_CODE_KEYS: usize = 8;

/// One side of a call as the relay sees it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Leg {
    Caller,
    Agent,
}

impl Leg {
    fn index(self) -> usize {
        match self {
            Leg::Caller => 0,
            Leg::Agent => 1,
        }
    }

    fn other(self) -> Leg {
        match self {
            Leg::Caller => Leg::Agent,
            Leg::Agent => Leg::Caller,
        }
    }
}

/// What a session reports to the receivers of [`MediaSession::events`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum MediaEvent {
    /// `leg`'s peer sent a DTMF key as RFC 4733 telephone-events.
    Dtmf { leg: Leg, digit: DetectedDigit },
    /// What played to `leg` stopped.
    PlaybackEnded { leg: Leg, reason: PlaybackEnd },
    /// `leg`'s peer keyed the feature code set with
    /// [`MediaSession::set_feature_code`]; its keys did not reach the
    /// other leg.
    FeatureCode { leg: Leg, code: String },
    /// The session ended without a close: the relay worker that carried it
    /// exited, so neither leg gets media anymore.
    RelayLost { reason: String },
}

/// Why playback to a leg ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PlaybackEnd {
    /// The last prompt of a list that does not loop was played.
    Finished,
    /// [`MediaSession::stop_playback`] was called.
    Stopped,
    /// The leg's peer pressed this key and the request allowed barge-in.
    BargeIn(char),
    /// A new [`MediaSession::play_with`] or an in-band digit took over.
    Replaced,
}

/// The relay's bind address, port range and threads.
#[derive(Clone, Debug)]
pub struct RelayConfig {
    pub bind_address: IpAddr,
    /// Inclusive range; RTP takes the even ports, RTCP the odd port above.
    pub ports: RangeInclusive<u16>,
    /// Threads that relay media, each with its share of the sessions; 0
    /// starts one per core.
    pub threads: usize,
    /// How long a relay thread keeps polling after a datagram before it
    /// sleeps; zero sleeps at once. See [`DEFAULT_SPIN`].
    pub spin: Duration,
    /// `SCHED_FIFO` priority of the relay threads, 1 to 99; 0 keeps the
    /// normal scheduler. See [`DEFAULT_REALTIME_PRIORITY`].
    pub realtime_priority: u8,
    /// Shortest time from the start of a relay thread's busy round to the
    /// start of its next round. Zero starts a round at each wake-up; see
    /// [`DEFAULT_COALESCE`].
    pub coalesce: Duration,
}

/// The default [`RelayConfig::spin`]: none. On a 2-core machine shared with
/// SIP, the database and a load generator, a spinning thread took the CPU
/// they needed, which raised the relay's CPU by 40 to 80 %. Spinning pays
/// only on a machine with cores to spare.
pub const DEFAULT_SPIN: Duration = Duration::ZERO;

/// The default [`RelayConfig::realtime_priority`]. Under the normal
/// scheduler, a relay thread woken by a datagram waits until other work
/// leaves the core. On 2 cores shared with SIP, the database and other
/// programs, that wait reached tens of milliseconds. A real-time thread runs
/// as soon as its datagram arrives. The priority is low among real-time ones,
/// so the kernel's own real-time threads still come first, and the kernel
/// keeps 5 % of each core for normal threads if the relay ever takes it all.
pub const DEFAULT_REALTIME_PRIORITY: u8 = 10;

/// The default [`RelayConfig::coalesce`]. A real-time thread woken for each
/// datagram pays two context switches and a poll per datagram. With sipp
/// streaming 600 recorded calls, that nearly doubled the PBX's CPU against
/// the normal scheduler, under which datagrams queue up while the thread
/// waits for a core. Waiting out the rest of this window after a busy round
/// lets the next poll return every socket that became ready meanwhile, and
/// adds at most this much to a datagram's delay.
pub const DEFAULT_COALESCE: Duration = Duration::from_micros(300);

#[derive(Debug, thiserror::Error)]
pub enum MediaError {
    #[error("invalid RTP port range {start}-{end}: {reason}")]
    InvalidPortRange {
        start: u16,
        end: u16,
        reason: &'static str,
    },
    #[error("no free RTP port pair left in {start}-{end}; widen the range or end calls")]
    NoFreePorts { start: u16, end: u16 },
    #[error("failed to bind an RTP port pair after {attempts} attempts, last at {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        attempts: usize,
        source: std::io::Error,
    },
    #[error("call {call_id} is already recording")]
    AlreadyRecording { call_id: String },
    #[error("media session of call {call_id} has ended")]
    SessionEnded { call_id: String },
    #[error("recording of call {call_id} failed: {source}")]
    Recording {
        call_id: String,
        source: recordings::RecordingError,
    },
    #[error("cannot play to call {call_id}: {source}")]
    Prompt {
        call_id: String,
        source: PromptError,
    },
    #[error("{digit:?} is not a DTMF key, expected 0-9, *, #, or A-D")]
    NotADigit { digit: char },
    #[error("feature code {code:?} is invalid: expected 1 to {max} DTMF keys (0-9, *, #, A-D)", max = MAX_FEATURE_CODE_KEYS)]
    InvalidFeatureCode { code: String },
    #[error("task of call {call_id} failed: {source}")]
    TaskFailed {
        call_id: String,
        source: tokio::task::JoinError,
    },
    #[error("cannot start the relay's threads: {source}")]
    Threads { source: std::io::Error },
    #[error("relay worker of call {call_id}: {reason}")]
    Worker { call_id: String, reason: String },
    #[error("cannot start relay worker {program}: {source}", program = program.display())]
    WorkerStart {
        program: std::path::PathBuf,
        source: std::io::Error,
    },
    #[error("relay sockets of call {call_id} could not join the relay thread's poller: {source}")]
    Register {
        call_id: String,
        source: std::io::Error,
    },
}
