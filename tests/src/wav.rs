//! Checks on the stereo call recordings: format, length, and which audio each
//! channel carries.
//!
//! Channel identity is found by normalized cross-correlation against the
//! reference audio each side sent. The relay and recorder delay the audio by
//! an unknown amount (signalling, jitter buffer), so the best lag is searched
//! in two steps. The 10 ms energy envelopes locate the speech coarsely, and
//! then the samples are correlated at every lag around the best candidates.

use std::path::Path;

use crate::fixtures::SAMPLE_RATE;

/// Samples per envelope frame: 10 ms at 8 kHz.
const FRAME: usize = 80;
/// Coarse candidates refined on the samples. More than one guards against an
/// envelope peak that sits a few frames off the waveform peak.
const COARSE_CANDIDATES: usize = 3;

/// A decoded stereo recording.
#[derive(Clone, Debug)]
pub struct Recording {
    pub channels: u16,
    pub sample_rate: u32,
    pub bits_per_sample: u16,
    /// Caller channel.
    pub left: Vec<i16>,
    /// Agent channel.
    pub right: Vec<i16>,
}

impl Recording {
    /// Reads a 16-bit PCM WAV file and panics with the path on any error.
    pub fn open(path: &Path) -> Recording {
        let reader = hound::WavReader::open(path)
            .unwrap_or_else(|error| panic!("failed to open recording {}: {error}", path.display()));
        let spec = reader.spec();
        assert_eq!(
            spec.sample_format,
            hound::SampleFormat::Int,
            "{}: expected integer PCM",
            path.display()
        );
        assert_eq!(
            spec.bits_per_sample,
            16,
            "{}: expected 16-bit samples",
            path.display()
        );
        let samples = reader
            .into_samples::<i16>()
            .collect::<Result<Vec<i16>, _>>()
            .unwrap_or_else(|error| panic!("failed to read recording {}: {error}", path.display()));
        let channels = usize::from(spec.channels.max(1));
        let left = samples.iter().step_by(channels).copied().collect();
        let right = samples.iter().skip(1).step_by(channels).copied().collect();
        Recording {
            channels: spec.channels,
            sample_rate: spec.sample_rate,
            bits_per_sample: spec.bits_per_sample,
            left,
            right,
        }
    }

    /// Returns the length in seconds: frames divided by the sample rate.
    pub fn duration_seconds(&self) -> f64 {
        self.left.len() as f64 / f64::from(self.sample_rate.max(1))
    }
}

/// Where a reference signal sits in a recorded channel.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Alignment {
    /// Recorded sample index minus reference sample index.
    pub lag: isize,
    /// Normalized cross-correlation at `lag`, in -1..=1.
    pub correlation: f64,
}

/// Finds the lag in `-max_lead..=max_delay` samples where `reference` best
/// matches `recorded`, and the normalized cross-correlation there.
pub fn align(recorded: &[i16], reference: &[i16], max_lead: usize, max_delay: usize) -> Alignment {
    let recorded_envelope = envelope(recorded);
    let reference_envelope = envelope(reference);
    let min_frame_lag = -((max_lead / FRAME) as isize) - 1;
    let max_frame_lag = (max_delay / FRAME) as isize + 1;

    let mut coarse: Vec<(isize, f64)> = (min_frame_lag..=max_frame_lag)
        .map(|lag| {
            (
                lag,
                correlation_at(&recorded_envelope, &reference_envelope, lag),
            )
        })
        .collect();
    coarse.sort_by(|a, b| b.1.total_cmp(&a.1));

    let lead = -(max_lead as isize);
    let delay = max_delay as isize;
    let mut best = Alignment {
        lag: 0,
        correlation: f64::NEG_INFINITY,
    };
    for &(frame_lag, _) in coarse.iter().take(COARSE_CANDIDATES) {
        let center = frame_lag * FRAME as isize;
        let window = 2 * FRAME as isize;
        let first = (center - window).max(lead);
        let last = (center + window).min(delay);
        for lag in first..=last {
            let correlation = correlation_at(recorded, reference, lag);
            if correlation > best.correlation {
                best = Alignment { lag, correlation };
            }
        }
    }
    best
}

/// Mean absolute amplitude per 10 ms frame, with the mean over all frames
/// removed so silence does not correlate with speech.
fn envelope(samples: &[i16]) -> Vec<f64> {
    let frames: Vec<f64> = samples
        .chunks(FRAME)
        .map(|frame| frame.iter().map(|&s| f64::from(s).abs()).sum::<f64>() / frame.len() as f64)
        .collect();
    let mean = frames.iter().sum::<f64>() / frames.len().max(1) as f64;
    frames.into_iter().map(|value| value - mean).collect()
}

/// Computes the normalized cross-correlation of `recorded[i + lag]` with
/// `reference[i]` over their overlap, or 0 without overlap or energy.
fn correlation_at<T: Copy + Into<f64>>(recorded: &[T], reference: &[T], lag: isize) -> f64 {
    let first = if lag < 0 { lag.unsigned_abs() } else { 0 };
    let mut dot = 0.0;
    let mut recorded_energy = 0.0;
    let mut reference_energy = 0.0;
    for (index, &x) in reference.iter().enumerate().skip(first) {
        let Some(&y) = index
            .checked_add_signed(lag)
            .and_then(|at| recorded.get(at))
        else {
            break;
        };
        let (x, y): (f64, f64) = (x.into(), y.into());
        dot += x * y;
        recorded_energy += y * y;
        reference_energy += x * x;
    }
    let norm = (recorded_energy * reference_energy).sqrt();
    if norm > 0.0 { dot / norm } else { 0.0 }
}

/// Converts seconds to samples at the G.711 rate, for lag windows.
pub fn samples(seconds: f64) -> usize {
    (seconds * f64::from(SAMPLE_RATE)).round() as usize
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fixtures::AudioFixtures;

    /// Places `signal` at `delay` samples into `length` samples of low noise.
    fn delayed(signal: &[i16], delay: usize, length: usize) -> Vec<i16> {
        let mut state: u32 = 12_345;
        let mut out: Vec<i16> = (0..length)
            .map(|_| {
                state = state.wrapping_mul(1_103_515_245).wrapping_add(12_345);
                ((state >> 16) % 64) as i16 - 32
            })
            .collect();
        for (slot, &sample) in out.iter_mut().skip(delay).zip(signal) {
            *slot = slot.saturating_add(sample);
        }
        out
    }

    #[test]
    fn align_finds_delay_and_source() {
        let dir = tempfile::tempdir().expect("temporary directory");
        let audio = AudioFixtures::generate(dir.path());
        let delay = 1_234;
        let length = audio.caller.reference.len() + samples(2.0);
        let recorded = delayed(&audio.caller.reference, delay, length);

        let own = align(
            &recorded,
            &audio.caller.reference,
            samples(0.5),
            samples(3.0),
        );
        let other = align(
            &recorded,
            &audio.agent.reference,
            samples(0.5),
            samples(3.0),
        );
        println!("own {own:?}, other {other:?}");

        assert_eq!(own.lag, delay as isize);
        assert!(own.correlation > 0.95, "own correlation {own:?}");
        assert!(
            other.correlation < 0.3,
            "other sentence correlation {other:?}"
        );
    }

    #[test]
    fn align_finds_lead() {
        let dir = tempfile::tempdir().expect("temporary directory");
        let audio = AudioFixtures::generate(dir.path());
        // The recording starts 300 samples into the agent's audio.
        let recorded = audio.agent.reference[300..].to_vec();

        let found = align(
            &recorded,
            &audio.agent.reference,
            samples(0.5),
            samples(3.0),
        );

        assert_eq!(found.lag, -300);
        assert!(found.correlation > 0.99, "{found:?}");
    }

    #[test]
    fn recording_open_splits_channels() {
        let dir = tempfile::tempdir().expect("temporary directory");
        let path = dir.path().join("stereo.wav");
        let spec = hound::WavSpec {
            channels: 2,
            sample_rate: SAMPLE_RATE,
            bits_per_sample: 16,
            sample_format: hound::SampleFormat::Int,
        };
        let mut writer = hound::WavWriter::create(&path, spec).expect("create wav");
        for index in 0..8_000_i16 {
            writer.write_sample(index).expect("write left");
            writer.write_sample(-index).expect("write right");
        }
        writer.finalize().expect("finalize wav");

        let recording = Recording::open(&path);

        assert_eq!(recording.channels, 2);
        assert_eq!(recording.sample_rate, SAMPLE_RATE);
        assert_eq!(recording.bits_per_sample, 16);
        assert_eq!(recording.left.len(), 8_000);
        assert_eq!(recording.right[10], -10);
        assert!((recording.duration_seconds() - 1.0).abs() < 1e-9);
    }
}
