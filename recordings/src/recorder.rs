//! WAV file writer driven by a [`Timeline`].

use std::fs::File;
use std::io::BufWriter;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use hound::{SampleFormat, WavSpec, WavWriter};

use crate::timeline::{
    Channel, DEFAULT_JITTER_WINDOW, Placement, SAMPLE_RATE, Timeline, WIDEBAND_SAMPLE_RATE,
};

/// Minimum time between two WAV header rewrites while recording. Each rewrite
/// costs two seeks and a flush, and a crash loses at most this much audio
/// from the header's point of view.
const HEADER_UPDATE_INTERVAL: Duration = Duration::from_secs(1);
/// Most frames handed to the writers in one step: 300 ms at 8 kHz, 150 ms
/// at 16 kHz, more than a 100 ms flush brings. The buffers are sized for
/// it when the file is created, so flushes allocate nothing, and a long
/// span (a late flush, `finish`) is written in several steps.
const MAX_FRAMES_PER_WRITE: u64 = 2400;

#[derive(Debug, thiserror::Error)]
pub enum RecordingError {
    #[error("failed to create the recordings folder {}: {source}", path.display())]
    CreateFolder {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("failed to create recording {}: {source}", path.display())]
    Create { path: PathBuf, source: hound::Error },
    #[error("failed to write recording {}: {source}", path.display())]
    Write { path: PathBuf, source: hound::Error },
    #[error("recording {} cannot use {sample_rate} Hz, expected 8000 or 16000", path.display())]
    UnsupportedSampleRate { path: PathBuf, sample_rate: u32 },
    #[error("failed to finalize recording {}: {source}", path.display())]
    Finalize { path: PathBuf, source: hound::Error },
}

/// What [`Recorder::finish`] wrote.
#[derive(Clone, Debug, PartialEq)]
pub struct RecordingSummary {
    pub path: PathBuf,
    /// The mono file mixing both channels, when one was requested; it has
    /// as many frames as the stereo file.
    pub mixed_mono_path: Option<PathBuf>,
    pub duration_seconds: f64,
    /// Stereo frames in the file, one per 1/8000 s, or per 1/16000 s in a
    /// wideband recording.
    pub frames: u64,
    /// Packets that were neither PCMU, PCMA nor G.722, or had no payload.
    pub ignored_packets: u64,
    /// Milliseconds of audio per channel (caller, agent) that came after
    /// the jitter window had closed on it, so the file is silent there
    /// although the relay got the packets.
    pub late_ms: [u64; 2],
}

/// Settings of [`Recorder::with_options`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RecorderOptions {
    /// How long samples wait for late or reordered packets.
    pub jitter_window: Duration,
    /// Frames per second: 8000, or 16000 for a call that uses G.722.
    pub sample_rate: u32,
    /// Where to write a second, mono file whose samples are the sum of the
    /// two channels, saturated to 16 bits; `None` writes no such file.
    pub mixed_mono: Option<PathBuf>,
}

impl Default for RecorderOptions {
    fn default() -> RecorderOptions {
        RecorderOptions {
            jitter_window: DEFAULT_JITTER_WINDOW,
            sample_rate: SAMPLE_RATE,
            mixed_mono: None,
        }
    }
}

type Writer = WavWriter<BufWriter<File>>;

/// Stereo 16-bit WAV writer (8 kHz, or 16 kHz for G.722 calls) whose
/// timeline follows RTP timestamps, with an optional mono mix of both
/// channels in a second file.
///
/// Memory stays bounded by the timeline's buffer (at most 10 s per channel)
/// as long as [`Recorder::flush`] is called regularly.
pub struct Recorder {
    path: PathBuf,
    timeline: Timeline,
    writer: Writer,
    mixed: Option<(PathBuf, Writer)>,
    last_header_update: Instant,
    /// Interleaved frames on their way from the timeline to the writers,
    /// kept between flushes so that a flush allocates nothing.
    frames: Vec<i16>,
}

impl Recorder {
    /// Creates the file (and parent folders); `start` is the answer instant,
    /// sample 0 of the file.
    pub fn create(path: &Path, start: Instant) -> Result<Recorder, RecordingError> {
        Recorder::with_jitter_window(path, start, DEFAULT_JITTER_WINDOW)
    }

    /// Like [`Recorder::create`], holding samples for `jitter_window` before
    /// writing them.
    pub fn with_jitter_window(
        path: &Path,
        start: Instant,
        jitter_window: Duration,
    ) -> Result<Recorder, RecordingError> {
        Recorder::with_sample_rate(path, start, jitter_window, SAMPLE_RATE)
    }

    /// Like [`Recorder::with_jitter_window`], writing `sample_rate` frames
    /// per second: 8000, or 16000 for a call that uses G.722.
    pub fn with_sample_rate(
        path: &Path,
        start: Instant,
        jitter_window: Duration,
        sample_rate: u32,
    ) -> Result<Recorder, RecordingError> {
        let options = RecorderOptions {
            jitter_window,
            sample_rate,
            mixed_mono: None,
        };
        Recorder::with_options(path, start, options)
    }

    /// Creates the stereo file at `path`, and the mono mix when `options`
    /// names one, with their parent folders; `start` is sample 0 of both.
    pub fn with_options(
        path: &Path,
        start: Instant,
        options: RecorderOptions,
    ) -> Result<Recorder, RecordingError> {
        let sample_rate = options.sample_rate;
        if sample_rate != SAMPLE_RATE && sample_rate != WIDEBAND_SAMPLE_RATE {
            return Err(RecordingError::UnsupportedSampleRate {
                path: path.to_path_buf(),
                sample_rate,
            });
        }
        let writer = create_wav(path, 2, sample_rate)?;
        let mixed = match options.mixed_mono {
            Some(mixed_path) => {
                let mixed_writer = create_wav(&mixed_path, 1, sample_rate)?;
                Some((mixed_path, mixed_writer))
            }
            None => None,
        };
        Ok(Recorder {
            path: path.to_path_buf(),
            timeline: Timeline::with_sample_rate(start, options.jitter_window, sample_rate),
            writer,
            mixed,
            last_header_update: start,
            frames: Vec::with_capacity(2 * MAX_FRAMES_PER_WRITE as usize),
        })
    }

    /// Places one RTP packet (PCMU or PCMA; others are counted and ignored)
    /// received at `arrival` on the channel's timeline.
    pub fn push(&mut self, channel: Channel, packet: &rtp::RtpPacket<'_>, arrival: Instant) {
        let placement = self.timeline.push(channel, packet, arrival);
        if !matches!(placement, Placement::Placed { .. }) {
            tracing::trace!(
                ?channel,
                ?placement,
                sequence = packet.sequence,
                "RTP packet not recorded"
            );
        }
    }

    /// Writes out samples older than the jitter window and, at most once a
    /// second, rewrites the WAV header so a crash leaves a playable file.
    pub fn flush(&mut self, now: Instant) -> Result<(), RecordingError> {
        let ready = self.timeline.ready_until(now);
        self.write_until(ready)?;
        if now.saturating_duration_since(self.last_header_update) >= HEADER_UPDATE_INTERVAL {
            self.writer
                .flush()
                .map_err(|source| RecordingError::Write {
                    path: self.path.clone(),
                    source,
                })?;
            if let Some((mixed_path, mixed)) = &mut self.mixed {
                mixed.flush().map_err(|source| RecordingError::Write {
                    path: mixed_path.clone(),
                    source,
                })?;
            }
            self.last_header_update = now;
        }
        Ok(())
    }

    /// Writes silence on both channels from `at` until [`Recorder::resume`],
    /// so that the file keeps its length but holds nothing of what is said
    /// meanwhile. `at` must not be older than the jitter window, or the
    /// silence starts at the first frame not yet written. Returns false,
    /// changing nothing, when the recording is already paused.
    pub fn pause(&mut self, at: Instant) -> bool {
        self.timeline.pause(at)
    }

    /// Records audio again from `at`. Returns false, changing nothing, when
    /// the recording is not paused.
    pub fn resume(&mut self, at: Instant) -> bool {
        self.timeline.resume(at)
    }

    /// True between [`Recorder::pause`] and [`Recorder::resume`].
    pub fn is_paused(&self) -> bool {
        self.timeline.is_paused()
    }

    /// Pads both channels to `end - start`, writes everything and finalizes the header.
    ///
    /// Samples placed after `end` are dropped. The file can only be longer
    /// than `end - start` when an earlier [`Recorder::flush`] was given a
    /// `now` later than `end + jitter window`.
    pub fn finish(mut self, end: Instant) -> Result<RecordingSummary, RecordingError> {
        let end_frame = self.timeline.frame_at(end);
        self.write_until(end_frame)?;
        let frames = u64::from(self.writer.duration());
        let sample_rate = self.timeline.sample_rate();
        let counts = self.timeline.counts();
        let ignored_packets = counts.ignored;
        let late_ms = counts
            .late_frames
            .map(|late| late * 1000 / u64::from(sample_rate));
        let path = self.path;
        self.writer
            .finalize()
            .map_err(|source| RecordingError::Finalize {
                path: path.clone(),
                source,
            })?;
        let mixed_mono_path = match self.mixed {
            Some((mixed_path, mixed)) => {
                mixed
                    .finalize()
                    .map_err(|source| RecordingError::Finalize {
                        path: mixed_path.clone(),
                        source,
                    })?;
                Some(mixed_path)
            }
            None => None,
        };
        Ok(RecordingSummary {
            path,
            mixed_mono_path,
            duration_seconds: frames as f64 / f64::from(sample_rate),
            frames,
            ignored_packets,
            late_ms,
        })
    }

    /// Timeline statistics: packets placed, dropped as duplicate or late.
    pub fn timeline(&self) -> &Timeline {
        &self.timeline
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    fn write_until(&mut self, end: u64) -> Result<(), RecordingError> {
        while self.timeline.written() < end {
            let step_end = end.min(self.timeline.written() + MAX_FRAMES_PER_WRITE);
            self.frames.clear();
            self.timeline.drain_into(step_end, &mut self.frames);
            write_samples(&mut self.writer, &self.frames).map_err(|source| {
                RecordingError::Write {
                    path: self.path.clone(),
                    source,
                }
            })?;
            if let Some((mixed_path, mixed)) = &mut self.mixed {
                let sums = self
                    .frames
                    .chunks_exact(2)
                    .map(|frame| frame[0].saturating_add(frame[1]));
                write_samples_from(mixed, sums).map_err(|source| RecordingError::Write {
                    path: mixed_path.clone(),
                    source,
                })?;
            }
        }
        Ok(())
    }
}

fn write_samples(writer: &mut Writer, samples: &[i16]) -> Result<(), hound::Error> {
    write_samples_from(writer, samples.iter().copied())
}

/// Writes the samples through hound's 16-bit batch writer, which copies
/// them into the file's buffer in one go instead of one call per sample.
fn write_samples_from(
    writer: &mut Writer,
    samples: impl ExactSizeIterator<Item = i16>,
) -> Result<(), hound::Error> {
    // A step has at most MAX_FRAMES_PER_WRITE frames, far below u32::MAX.
    let mut batch = writer.get_i16_writer(samples.len() as u32);
    for sample in samples {
        batch.write_sample(sample);
    }
    batch.flush()
}

/// Creates a 16-bit PCM WAV file with its parent folders and puts its
/// header on disk at once, so that a crash before the first header
/// rewrite leaves a file that `repair` can fix.
fn create_wav(path: &Path, channels: u16, sample_rate: u32) -> Result<Writer, RecordingError> {
    if let Some(parent) = path
        .parent()
        .filter(|parent| !parent.as_os_str().is_empty())
    {
        std::fs::create_dir_all(parent).map_err(|source| RecordingError::CreateFolder {
            path: parent.to_path_buf(),
            source,
        })?;
    }
    let spec = WavSpec {
        channels,
        sample_rate,
        bits_per_sample: 16,
        sample_format: SampleFormat::Int,
    };
    let mut writer = WavWriter::create(path, spec).map_err(|source| RecordingError::Create {
        path: path.to_path_buf(),
        source,
    })?;
    writer.flush().map_err(|source| RecordingError::Create {
        path: path.to_path_buf(),
        source,
    })?;
    // hound keeps the batch writer's buffer for later batches of at most
    // this size. Dropping a batch writer without flushing it writes nothing.
    let largest_batch = u32::from(channels) * MAX_FRAMES_PER_WRITE as u32;
    let _ = writer.get_i16_writer(largest_batch);
    Ok(writer)
}
