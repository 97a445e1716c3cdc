//! In-band DTMF: the dual tone of a key as 8 kHz samples, for a leg that
//! did not negotiate telephone-events (ITU-T Q.23 frequencies).

use std::f64::consts::PI;
use std::time::Duration;

/// Each of the two tones peaks at about -10 dBFS, so their sum stays
/// below full scale.
const TONE_AMPLITUDE: f64 = 10_000.0;
/// Silence after the tone, so that repeated keys stay separate.
const PAUSE: Duration = Duration::from_millis(50);

/// Low (row) and high (column) frequency of a key, in Hz.
fn frequencies(digit: char) -> Option<(f64, f64)> {
    let (row, column) = match digit.to_ascii_uppercase() {
        '1' => (0, 0),
        '2' => (0, 1),
        '3' => (0, 2),
        'A' => (0, 3),
        '4' => (1, 0),
        '5' => (1, 1),
        '6' => (1, 2),
        'B' => (1, 3),
        '7' => (2, 0),
        '8' => (2, 1),
        '9' => (2, 2),
        'C' => (2, 3),
        '*' => (3, 0),
        '0' => (3, 1),
        '#' => (3, 2),
        'D' => (3, 3),
        _ => return None,
    };
    const ROWS: [f64; 4] = [697.0, 770.0, 852.0, 941.0];
    const COLUMNS: [f64; 4] = [1209.0, 1336.0, 1477.0, 1633.0];
    Some((ROWS[row], COLUMNS[column]))
}

/// Samples at `rate` Hz of `digit` for `duration`, then 50 ms of silence;
/// `None` for a character that is not a DTMF key.
pub(crate) fn dtmf_tone(digit: char, duration: Duration, rate: u32) -> Option<Vec<i16>> {
    let (low, high) = frequencies(digit)?;
    let rate_hz = f64::from(rate);
    let tone_samples = (duration.as_secs_f64() * rate_hz) as usize;
    let pause_samples = (PAUSE.as_secs_f64() * rate_hz) as usize;
    let mut samples: Vec<i16> = (0..tone_samples)
        .map(|index| {
            let time = index as f64 / rate_hz;
            let value = (2.0 * PI * low * time).sin() + (2.0 * PI * high * time).sin();
            (TONE_AMPLITUDE * value) as i16
        })
        .collect();
    samples.resize(tone_samples + pause_samples, 0);
    Some(samples)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Power of one frequency by the Goertzel algorithm, normalized so a
    /// full-length sine of amplitude A gives about A² / 4.
    fn goertzel(samples: &[i16], frequency: f64, rate: f64) -> f64 {
        let coefficient = 2.0 * (2.0 * PI * frequency / rate).cos();
        let (mut previous, mut before) = (0.0, 0.0);
        for sample in samples {
            let current = f64::from(*sample) + coefficient * previous - before;
            before = previous;
            previous = current;
        }
        let power = previous * previous + before * before - coefficient * previous * before;
        power / (samples.len() as f64).powi(2)
    }

    #[test]
    fn keys_carry_their_two_frequencies() {
        for (digit, low, high) in [
            ('1', 697.0, 1209.0),
            ('0', 941.0, 1336.0),
            ('D', 941.0, 1633.0),
        ] {
            let samples = dtmf_tone(digit, Duration::from_millis(100), 8000).expect("key");
            assert_eq!(samples.len(), 1200);
            let tone = &samples[..800];
            let expected = TONE_AMPLITUDE * TONE_AMPLITUDE / 4.0;
            for frequency in [low, high] {
                let power = goertzel(tone, frequency, 8000.0);
                assert!(power > expected * 0.8, "{digit}: {frequency} Hz weak");
            }
            for other in [770.0, 852.0, 1477.0] {
                if other == low || other == high {
                    continue;
                }
                let power = goertzel(tone, other, 8000.0);
                assert!(power < expected * 0.05, "{digit}: {other} Hz present");
            }
            assert!(samples[800..].iter().all(|sample| *sample == 0));
        }
    }

    #[test]
    fn rejects_non_keys() {
        assert_eq!(dtmf_tone('x', Duration::from_millis(100), 8000), None);
    }
}
