//! Sine tones as test audio, and their detection in recordings.
//!
//! The softphone tests give each side its own frequency. A phone plays its
//! tone from a WAV file, and sipp streams its tone as raw mu-law. Each
//! channel of the recording is then cut into frames, and the Goertzel
//! algorithm measures how much of each frame's power sits at each side's
//! frequency. A channel that carries a side's audio has that side's tone in
//! most frames and the other side's tone in almost none.

use std::f64::consts::PI;
use std::path::Path;

use crate::fixtures::SAMPLE_RATE;

/// Frame length of the detection: 100 ms at 8 kHz.
const FRAME: usize = 800;
/// A frame is silent below this RMS; G.711 idle noise stays far under it.
const SILENCE_RMS: f64 = 300.0;
/// Share of a frame's power that must sit at the frequency for the frame to
/// count as that tone. A clean tone through G.711 keeps over 0.9.
const TONE_POWER_SHARE: f64 = 0.5;
/// Peak amplitude of generated tones: -6 dBFS, well clear of clipping.
const AMPLITUDE: f64 = 16_384.0;

/// Returns `seconds` of a sine at `frequency` Hz, 8 kHz 16-bit samples.
pub fn sine(frequency: f64, seconds: f64) -> Vec<i16> {
    let count = (seconds * f64::from(SAMPLE_RATE)).round() as usize;
    (0..count)
        .map(|index| {
            let t = index as f64 / f64::from(SAMPLE_RATE);
            (AMPLITUDE * (2.0 * PI * frequency * t).sin()).round() as i16
        })
        .collect()
}

/// Writes a sine as an 8 kHz mono 16-bit WAV file, what baresip's aufile
/// source and linphone's file player read.
pub fn write_wav(path: &Path, frequency: f64, seconds: f64) {
    let spec = hound::WavSpec {
        channels: 1,
        sample_rate: SAMPLE_RATE,
        bits_per_sample: 16,
        sample_format: hound::SampleFormat::Int,
    };
    let mut writer = hound::WavWriter::create(path, spec)
        .unwrap_or_else(|error| panic!("failed to create {}: {error}", path.display()));
    for sample in sine(frequency, seconds) {
        writer
            .write_sample(sample)
            .unwrap_or_else(|error| panic!("failed to write {}: {error}", path.display()));
    }
    writer
        .finalize()
        .unwrap_or_else(|error| panic!("failed to finish {}: {error}", path.display()));
}

/// Writes a sine as headerless mu-law, the format sipp's `rtp_stream` sends.
pub fn write_ulaw(path: &Path, frequency: f64, seconds: f64) {
    let bytes: Vec<u8> = sine(frequency, seconds)
        .into_iter()
        .map(rtp::g711::linear_to_ulaw)
        .collect();
    std::fs::write(path, bytes)
        .unwrap_or_else(|error| panic!("failed to write {}: {error}", path.display()));
}

/// Computes the power at `frequency` by the Goertzel algorithm, scaled so
/// that it compares with the mean square of the samples: a pure sine at
/// `frequency` returns its own mean square.
pub fn goertzel_power(samples: &[i16], frequency: f64, rate: u32) -> f64 {
    if samples.is_empty() {
        return 0.0;
    }
    let coefficient = 2.0 * (2.0 * PI * frequency / f64::from(rate)).cos();
    let (mut previous, mut before_previous) = (0.0, 0.0);
    for &sample in samples {
        let current = f64::from(sample) + coefficient * previous - before_previous;
        before_previous = previous;
        previous = current;
    }
    let power = previous * previous + before_previous * before_previous
        - coefficient * previous * before_previous;
    let count = samples.len() as f64;
    2.0 * power / (count * count)
}

/// Frame counts of one channel.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ToneFrames {
    /// 100 ms frames in the channel.
    pub frames: usize,
    /// Frames above the silence threshold.
    pub audible: usize,
    /// Frames whose power sits mostly at the frequency asked for.
    pub tone: usize,
}

impl ToneFrames {
    /// Returns the share of all frames that carry the tone, 0 to 1.
    pub fn share(&self) -> f64 {
        self.tone as f64 / self.frames.max(1) as f64
    }
}

/// Counts the 100 ms frames of `samples` that carry a tone at `frequency`.
pub fn tone_frames(samples: &[i16], frequency: f64, rate: u32) -> ToneFrames {
    let mut counts = ToneFrames {
        frames: 0,
        audible: 0,
        tone: 0,
    };
    for frame in samples.chunks_exact(FRAME) {
        counts.frames += 1;
        let mean_square =
            frame.iter().map(|&s| f64::from(s).powi(2)).sum::<f64>() / frame.len() as f64;
        if mean_square.sqrt() < SILENCE_RMS {
            continue;
        }
        counts.audible += 1;
        if goertzel_power(frame, frequency, rate) > TONE_POWER_SHARE * mean_square {
            counts.tone += 1;
        }
    }
    counts
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn goertzel_measures_own_frequency() {
        let tone = sine(1_250.0, 0.1);
        let mean_square =
            tone.iter().map(|&s| f64::from(s).powi(2)).sum::<f64>() / tone.len() as f64;

        let own = goertzel_power(&tone, 1_250.0, SAMPLE_RATE);
        let other = goertzel_power(&tone, 440.0, SAMPLE_RATE);

        assert!((own / mean_square - 1.0).abs() < 0.02, "own {own}");
        assert!(other < 0.01 * mean_square, "other {other}");
    }

    #[test]
    fn tone_frames_separate_two_tones() {
        let mut samples = vec![0_i16; FRAME * 5];
        samples.extend(sine(440.0, 1.0));
        samples.extend(sine(1_250.0, 0.5));

        let low = tone_frames(&samples, 440.0, SAMPLE_RATE);
        let high = tone_frames(&samples, 1_250.0, SAMPLE_RATE);

        assert_eq!(low.frames, 20);
        assert_eq!(low.audible, 15);
        assert_eq!(low.tone, 10);
        assert_eq!(high.tone, 5);
        assert!((low.share() - 0.5).abs() < 1e-9);
    }

    #[test]
    fn tone_survives_ulaw() {
        let dir = tempfile::tempdir().expect("temporary directory");
        let path = dir.path().join("tone.ulaw");
        write_ulaw(&path, 440.0, 1.0);
        let decoded: Vec<i16> = std::fs::read(&path)
            .expect("read tone")
            .into_iter()
            .map(rtp::g711::ulaw_to_linear)
            .collect();

        let found = tone_frames(&decoded, 440.0, SAMPLE_RATE);

        assert_eq!(found.tone, 10, "{found:?}");
    }
}
