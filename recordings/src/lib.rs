//! Call recordings: stereo 16-bit PCM WAV files at 8 kHz, or 16 kHz for
//! calls that use G.722, caller on the left channel and agent on the right.
//!
//! The crate has two layers. [`Timeline`] is sans-IO: it places decoded
//! G.711 or G.722 samples of each channel at a frame position derived from the RTP
//! timestamp and the arrival instant, and hands back interleaved frames once
//! they are older than the jitter window. [`Recorder`] drives a `Timeline`
//! and writes its frames with `hound`, rewriting the WAV header at most once
//! a second so that a killed process still leaves a playable file.
//!
//! Callers (the media relay) call [`Recorder::push`] for each RTP packet,
//! [`Recorder::flush`] every 100 ms or so, and [`Recorder::finish`] when the
//! call ends. [`Recorder::pause`] and [`Recorder::resume`] turn a span of
//! the call into silence on both channels without changing the file's
//! length, and [`RecorderOptions::mixed_mono`] adds a mono file that sums
//! the two channels. Nothing here reads the clock: every instant is passed in.
//! Only PCMU, PCMA and G.722 payloads are decoded; other payload types
//! (comfort noise, DTMF events) are counted and leave silence.
//!
//! After a crash, [`repair`] fixes the header of a file whose recorder
//! never finished, so that it counts all the whole frames the file holds,
//! and [`inspect`] reports whether a header matches its file without
//! changing it.

mod recorder;
mod repair;
mod timeline;

pub use recorder::{Recorder, RecorderOptions, RecordingError, RecordingSummary};
pub use repair::{Inspection, RepairError, RepairOutcome, inspect, repair};
pub use timeline::{
    Channel, DEFAULT_JITTER_WINDOW, Placement, PlacementCounts, SAMPLE_RATE, Timeline,
    WIDEBAND_SAMPLE_RATE,
};
