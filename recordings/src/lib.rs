//! Call recordings: stereo 8 kHz 16-bit PCM WAV files, caller on the left
//! channel and agent on the right.
//!
//! The crate has two layers. [`Timeline`] is sans-IO: it places decoded
//! G.711 samples of each channel at a frame position derived from the RTP
//! timestamp and the arrival instant, and hands back interleaved frames once
//! they are older than the jitter window. [`Recorder`] drives a `Timeline`
//! and writes its frames with `hound`, rewriting the WAV header at most once
//! a second so that a killed process still leaves a playable file.
//!
//! Callers (the media relay) call [`Recorder::push`] for each RTP packet,
//! [`Recorder::flush`] every 100 ms or so, and [`Recorder::finish`] when the
//! call ends. Nothing here reads the clock: every instant is passed in.
//! Only PCMU and PCMA payloads are decoded; other payload types (comfort
//! noise, DTMF events) are counted and leave silence.

mod recorder;
mod timeline;

pub use recorder::{Recorder, RecordingError, RecordingSummary};
pub use timeline::{
    Channel, DEFAULT_JITTER_WINDOW, Placement, PlacementCounts, SAMPLE_RATE, Timeline,
};
