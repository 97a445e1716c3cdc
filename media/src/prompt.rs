//! WAV prompts and music on hold, loaded and converted to 8 kHz mono.

use std::path::{Path, PathBuf};

use hound::{SampleFormat, WavReader};

use crate::resample::resample;

/// Sample rate of the audio the player sends (G.711).
pub(crate) const PLAYBACK_RATE: u32 = 8000;

/// Error of loading a prompt file.
#[derive(Debug, thiserror::Error)]
pub enum PromptError {
    #[error("failed to read prompt {}: {source}", path.display())]
    Read { path: PathBuf, source: hound::Error },
    #[error(
        "prompt {} is {bits}-bit {format:?}, expected 16-bit integer PCM",
        path.display()
    )]
    UnsupportedFormat {
        path: PathBuf,
        bits: u16,
        format: SampleFormat,
    },
    #[error("prompt {} has {channels} channels, expected 1 or 2", path.display())]
    UnsupportedChannels { path: PathBuf, channels: u16 },
    #[error("prompt {} has sample rate {rate} Hz, expected 8000 to 192000", path.display())]
    UnsupportedRate { path: PathBuf, rate: u32 },
}

/// Reads a 16-bit PCM WAV, mono or stereo at any rate from 8 to 192 kHz,
/// and returns it as 8 kHz mono. Stereo is mixed down by averaging.
pub(crate) fn load_prompt(path: &Path) -> Result<Vec<i16>, PromptError> {
    let read_error = |source| PromptError::Read {
        path: path.to_path_buf(),
        source,
    };
    let reader = WavReader::open(path).map_err(read_error)?;
    let spec = reader.spec();
    if spec.bits_per_sample != 16 || spec.sample_format != SampleFormat::Int {
        return Err(PromptError::UnsupportedFormat {
            path: path.to_path_buf(),
            bits: spec.bits_per_sample,
            format: spec.sample_format,
        });
    }
    if !(1..=2).contains(&spec.channels) {
        return Err(PromptError::UnsupportedChannels {
            path: path.to_path_buf(),
            channels: spec.channels,
        });
    }
    if !(8000..=192_000).contains(&spec.sample_rate) {
        return Err(PromptError::UnsupportedRate {
            path: path.to_path_buf(),
            rate: spec.sample_rate,
        });
    }

    let samples = reader
        .into_samples::<i16>()
        .collect::<Result<Vec<i16>, _>>()
        .map_err(read_error)?;
    let channels = usize::from(spec.channels);
    let mono: Vec<f32> = samples
        .chunks_exact(channels)
        .map(|frame| frame.iter().map(|s| f32::from(*s)).sum::<f32>() / channels as f32)
        .collect();
    let converted = resample(&mono, spec.sample_rate, PLAYBACK_RATE);
    Ok(converted
        .into_iter()
        .map(|sample| {
            sample
                .round()
                .clamp(f32::from(i16::MIN), f32::from(i16::MAX)) as i16
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use hound::{WavSpec, WavWriter};

    use super::*;

    fn write_wav(path: &Path, rate: u32, channels: u16, frames: &[i16]) {
        let spec = WavSpec {
            channels,
            sample_rate: rate,
            bits_per_sample: 16,
            sample_format: SampleFormat::Int,
        };
        let mut writer = WavWriter::create(path, spec).expect("create WAV");
        for sample in frames {
            for _ in 0..channels {
                writer.write_sample(*sample).expect("write sample");
            }
        }
        writer.finalize().expect("finalize WAV");
    }

    #[test]
    fn stereo_48k_becomes_8k_mono() {
        let folder = tempfile::tempdir().expect("temp dir");
        let path = folder.path().join("prompt.wav");
        let frames: Vec<i16> = (0..48_000)
            .map(|i| {
                ((i as f64 * 2.0 * std::f64::consts::PI * 440.0 / 48_000.0).sin() * 8000.0) as i16
            })
            .collect();
        write_wav(&path, 48_000, 2, &frames);
        let samples = load_prompt(&path).expect("load");
        assert_eq!(samples.len(), 8000);
        let peak = samples[2000..6000].iter().map(|s| s.unsigned_abs()).max();
        let peak = peak.expect("samples");
        assert!((7800..=8200).contains(&peak), "peak {peak}");
    }

    #[test]
    fn mono_8k_is_unchanged() {
        let folder = tempfile::tempdir().expect("temp dir");
        let path = folder.path().join("prompt.wav");
        write_wav(&path, 8000, 1, &[1, -2, 300, i16::MIN]);
        assert_eq!(load_prompt(&path).expect("load"), [1, -2, 300, i16::MIN]);
    }

    #[test]
    fn rejects_missing_file_and_8_bit() {
        let folder = tempfile::tempdir().expect("temp dir");
        let missing = folder.path().join("missing.wav");
        assert!(matches!(
            load_prompt(&missing),
            Err(PromptError::Read { .. })
        ));

        let path = folder.path().join("8bit.wav");
        let spec = WavSpec {
            channels: 1,
            sample_rate: 8000,
            bits_per_sample: 8,
            sample_format: SampleFormat::Int,
        };
        let mut writer = WavWriter::create(&path, spec).expect("create WAV");
        writer.write_sample(1i8).expect("write sample");
        writer.finalize().expect("finalize WAV");
        assert!(matches!(
            load_prompt(&path),
            Err(PromptError::UnsupportedFormat { bits: 8, .. })
        ));
    }
}
