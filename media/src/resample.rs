//! Sample-rate conversion with a windowed-sinc low-pass filter.
//!
//! Each output sample is the input convolved with a Blackman-windowed sinc
//! whose cutoff sits below both Nyquist frequencies, evaluated at the
//! output instant. Cutting at the lower Nyquist frequency before decimating
//! is what keeps tones above 4 kHz in a 44.1 or 48 kHz file from folding
//! back into the telephone band.

use std::f64::consts::PI;

/// Cutoff as a fraction of the lower of the two sample rates: 3.5 kHz for
/// 8 kHz output, which keeps the telephone band (300-3400 Hz) flat.
const CUTOFF_RATIO: f64 = 0.4375;
/// Sinc zero crossings on each side of the kernel centre. More narrows the
/// transition band and costs proportionally more per output sample.
const ZERO_CROSSINGS: f64 = 12.0;
/// Kernel table entries per input sample, interpolated linearly between.
const TABLE_STEPS: f64 = 128.0;

/// Converts `input` sampled at `input_rate` Hz to `output_rate` Hz.
/// Returns a copy when both rates are equal, and nothing when either is zero.
pub(crate) fn resample(input: &[f32], input_rate: u32, output_rate: u32) -> Vec<f32> {
    if input_rate == 0 || output_rate == 0 {
        return Vec::new();
    }
    if input_rate == output_rate {
        return input.to_vec();
    }
    let kernel = Kernel::new(input_rate, output_rate);
    let step = f64::from(input_rate) / f64::from(output_rate);
    let output_len = (input.len() as u64 * u64::from(output_rate) / u64::from(input_rate)) as usize;
    (0..output_len)
        .map(|index| kernel.sample_at(input, index as f64 * step))
        .collect()
}

/// Half of the low-pass kernel, tabulated over input-sample distances.
struct Kernel {
    half_width: f64,
    table: Vec<f64>,
}

impl Kernel {
    fn new(input_rate: u32, output_rate: u32) -> Kernel {
        // Cutoff in cycles per input sample.
        let cutoff = CUTOFF_RATIO * f64::from(input_rate.min(output_rate)) / f64::from(input_rate);
        let half_width = ZERO_CROSSINGS / (2.0 * cutoff);
        let entries = (half_width * TABLE_STEPS).ceil() as usize + 2;
        let table = (0..entries)
            .map(|entry| {
                let distance = entry as f64 / TABLE_STEPS;
                windowed_sinc(distance, cutoff, half_width)
            })
            .collect();
        Kernel { half_width, table }
    }

    fn weight(&self, distance: f64) -> f64 {
        let position = distance.abs() * TABLE_STEPS;
        let index = position.floor() as usize;
        let fraction = position - position.floor();
        match (self.table.get(index), self.table.get(index + 1)) {
            (Some(low), Some(high)) => low + (high - low) * fraction,
            _ => 0.0,
        }
    }

    fn sample_at(&self, input: &[f32], position: f64) -> f32 {
        let first = (position - self.half_width).ceil().max(0.0) as usize;
        let last =
            ((position + self.half_width).floor() as usize).min(input.len().saturating_sub(1));
        let mut sum = 0.0;
        for (offset, sample) in input
            .get(first..=last)
            .unwrap_or_default()
            .iter()
            .enumerate()
        {
            let distance = (first + offset) as f64 - position;
            sum += f64::from(*sample) * self.weight(distance);
        }
        sum as f32
    }
}

/// Low-pass impulse response 2c·sinc(2c·x) under a Blackman window that
/// reaches zero at `half_width`.
fn windowed_sinc(distance: f64, cutoff: f64, half_width: f64) -> f64 {
    if distance.abs() >= half_width {
        return 0.0;
    }
    let argument = 2.0 * cutoff * distance;
    let sinc = if argument == 0.0 {
        1.0
    } else {
        (PI * argument).sin() / (PI * argument)
    };
    let phase = PI * distance / half_width;
    let window = 0.42 + 0.5 * phase.cos() + 0.08 * (2.0 * phase).cos();
    2.0 * cutoff * sinc * window
}

/// Taps of the half-band filters: 48 taps span 3 ms at 16 kHz, enough for
/// about 50 dB of stopband with a Blackman window.
const HALF_BAND_TAPS: usize = 48;

/// Low-pass at 3.5 kHz for a 16 kHz stream, shared by both converters.
fn half_band_kernel() -> [f64; HALF_BAND_TAPS] {
    let cutoff = CUTOFF_RATIO * 8000.0 / 16_000.0;
    let centre = (HALF_BAND_TAPS - 1) as f64 / 2.0;
    let half_width = centre + 1.0;
    let mut kernel = [0.0; HALF_BAND_TAPS];
    for (index, tap) in kernel.iter_mut().enumerate() {
        *tap = windowed_sinc(index as f64 - centre, cutoff, half_width);
    }
    let sum: f64 = kernel.iter().sum();
    kernel.iter_mut().for_each(|tap| *tap /= sum);
    kernel
}

/// Stateful 16 kHz to 8 kHz converter for a stream cut into packets: the
/// filter history carries from one call to the next.
#[derive(Clone, Debug)]
pub(crate) struct Downsampler {
    kernel: [f64; HALF_BAND_TAPS],
    history: [f64; HALF_BAND_TAPS],
    /// Whether the next input sample produces an output sample.
    odd: bool,
}

impl Downsampler {
    pub(crate) fn new() -> Downsampler {
        Downsampler {
            kernel: half_band_kernel(),
            history: [0.0; HALF_BAND_TAPS],
            odd: false,
        }
    }

    /// Filters `input` and keeps every second sample.
    pub(crate) fn process(&mut self, input: &[i16]) -> Vec<i16> {
        let mut output = Vec::with_capacity(input.len() / 2 + 1);
        for &sample in input {
            self.history.copy_within(1.., 0);
            self.history[HALF_BAND_TAPS - 1] = f64::from(sample);
            self.odd = !self.odd;
            if self.odd {
                let value: f64 = self
                    .kernel
                    .iter()
                    .zip(&self.history)
                    .map(|(k, x)| k * x)
                    .sum();
                output.push(to_i16(value));
            }
        }
        output
    }
}

/// Stateful 8 kHz to 16 kHz converter: zero stuffing, then the low-pass
/// with a gain of 2 to restore the level.
#[derive(Clone, Debug)]
pub(crate) struct Upsampler {
    kernel: [f64; HALF_BAND_TAPS],
    history: [f64; HALF_BAND_TAPS],
}

impl Upsampler {
    pub(crate) fn new() -> Upsampler {
        Upsampler {
            kernel: half_band_kernel(),
            history: [0.0; HALF_BAND_TAPS],
        }
    }

    pub(crate) fn process(&mut self, input: &[i16]) -> Vec<i16> {
        let mut output = Vec::with_capacity(input.len() * 2);
        for &sample in input {
            for stuffed in [f64::from(sample), 0.0] {
                self.history.copy_within(1.., 0);
                self.history[HALF_BAND_TAPS - 1] = stuffed;
                let value: f64 = self
                    .kernel
                    .iter()
                    .zip(&self.history)
                    .map(|(k, x)| k * x)
                    .sum();
                output.push(to_i16(2.0 * value));
            }
        }
        output
    }
}

fn to_i16(value: f64) -> i16 {
    value
        .round()
        .clamp(f64::from(i16::MIN), f64::from(i16::MAX)) as i16
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tone(frequency: f64, rate: u32, seconds: f64) -> Vec<f32> {
        let count = (f64::from(rate) * seconds) as usize;
        (0..count)
            .map(|index| (2.0 * PI * frequency * index as f64 / f64::from(rate)).sin() as f32)
            .collect()
    }

    /// RMS of the middle half, away from the edges the kernel only partly covers.
    fn middle_rms(samples: &[f32]) -> f64 {
        let middle = &samples[samples.len() / 4..samples.len() * 3 / 4];
        let power: f64 = middle.iter().map(|s| f64::from(*s).powi(2)).sum();
        (power / middle.len() as f64).sqrt()
    }

    fn gain_db(frequency: f64, input_rate: u32) -> f64 {
        let output = resample(&tone(frequency, input_rate, 0.5), input_rate, 8000);
        20.0 * (middle_rms(&output) / std::f64::consts::FRAC_1_SQRT_2).log10()
    }

    #[test]
    fn output_length_follows_ratio() {
        assert_eq!(resample(&vec![0.0; 48_000], 48_000, 8000).len(), 8000);
        assert_eq!(resample(&vec![0.0; 44_100], 44_100, 8000).len(), 8000);
        assert_eq!(resample(&vec![0.0; 16_000], 16_000, 8000).len(), 8000);
        assert_eq!(resample(&[1.0, 2.0], 8000, 8000), [1.0, 2.0]);
        assert!(resample(&[1.0], 0, 8000).is_empty());
    }

    #[test]
    fn passband_tone_keeps_level() {
        for rate in [16_000, 44_100, 48_000] {
            for frequency in [300.0, 1000.0, 3000.0] {
                let gain = gain_db(frequency, rate);
                assert!(
                    gain.abs() < 0.5,
                    "{frequency} Hz from {rate} Hz: {gain:.2} dB"
                );
            }
        }
    }

    /// Naive decimation would fold these tones to 2 kHz at full level.
    #[test]
    fn tones_above_nyquist_are_removed() {
        for rate in [16_000, 44_100, 48_000] {
            for frequency in [6000.0, 10_000.0] {
                if frequency >= f64::from(rate) / 2.0 {
                    continue;
                }
                let gain = gain_db(frequency, rate);
                assert!(gain < -50.0, "{frequency} Hz from {rate} Hz: {gain:.2} dB");
            }
        }
    }

    fn tone_i16(frequency: f64, rate: u32, count: usize) -> Vec<i16> {
        (0..count)
            .map(|n| (8000.0 * (2.0 * PI * frequency * n as f64 / f64::from(rate)).sin()) as i16)
            .collect()
    }

    /// Amplitude of one frequency by a single DFT bin.
    fn amplitude_at(samples: &[i16], frequency: f64, rate: f64) -> f64 {
        let (mut real, mut imaginary) = (0.0, 0.0);
        for (n, sample) in samples.iter().enumerate() {
            let phase = 2.0 * PI * frequency * n as f64 / rate;
            real += f64::from(*sample) * phase.cos();
            imaginary += f64::from(*sample) * phase.sin();
        }
        2.0 * (real * real + imaginary * imaginary).sqrt() / samples.len() as f64
    }

    fn rms_i16(samples: &[i16]) -> f64 {
        let power: f64 = samples.iter().map(|s| f64::from(*s).powi(2)).sum();
        (power / samples.len() as f64).sqrt()
    }

    #[test]
    fn downsampler_keeps_band_and_removes_alias() {
        let mut downsampler = Downsampler::new();
        let mut output = Vec::new();
        // Fed in 20 ms packets, as the relay does.
        for packet in tone_i16(1000.0, 16_000, 16_000).chunks(320) {
            output.extend(downsampler.process(packet));
        }
        assert_eq!(output.len(), 8000);
        let level = rms_i16(&output[400..]) / (8000.0 * std::f64::consts::FRAC_1_SQRT_2);
        assert!((level - 1.0).abs() < 0.06, "1 kHz level {level}");

        let mut downsampler = Downsampler::new();
        let alias = downsampler.process(&tone_i16(6000.0, 16_000, 16_000));
        let level = rms_i16(&alias[400..]) / (8000.0 * std::f64::consts::FRAC_1_SQRT_2);
        assert!(level < 0.01, "6 kHz leaks at {level}");
    }

    #[test]
    fn upsampler_keeps_level_without_images() {
        let mut upsampler = Upsampler::new();
        let mut output = Vec::new();
        for packet in tone_i16(1000.0, 8000, 8000).chunks(160) {
            output.extend(upsampler.process(packet));
        }
        assert_eq!(output.len(), 16_000);
        let level = rms_i16(&output[800..]) / (8000.0 * std::f64::consts::FRAC_1_SQRT_2);
        assert!((level - 1.0).abs() < 0.06, "1 kHz level {level}");
        // Zero stuffing mirrors 1 kHz to 7 kHz, which the filter removes.
        let tail = &output[800..];
        let wanted = amplitude_at(tail, 1000.0, 16_000.0);
        let image = amplitude_at(tail, 7000.0, 16_000.0);
        assert!(image < wanted / 300.0, "image {image} against {wanted}");
    }

    #[test]
    fn upsampling_keeps_level() {
        let output = resample(&tone(1000.0, 8000, 0.5), 8000, 16_000);
        assert_eq!(output.len(), 8000);
        let rms = middle_rms(&output);
        assert!(
            (rms - std::f64::consts::FRAC_1_SQRT_2).abs() < 0.01,
            "rms {rms}"
        );
    }
}
