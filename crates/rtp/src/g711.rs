//! G.711 companding (ITU-T G.711) between 8-bit code words and 16-bit
//! linear PCM.
//!
//! Both laws split the magnitude into 8 segments (an exponent) and a 4-bit
//! step inside the segment (the mantissa). Decoding returns the middle of the
//! step, scaled to 16 bits: mu-law covers -32124..=32124, A-law
//! -32256..=32256. Encoding truncates towards the lower step edge, so
//! `encode(decode(code))` gives `code` back for every code except the mu-law
//! negative zero 0x7F, which encodes as 0xFF.

/// Offset that mu-law adds before finding the segment, so segments start at
/// powers of two (132 in the 16-bit domain, 33 in the 14-bit domain of G.711).
const ULAW_BIAS: i32 = 0x84;
/// Largest magnitude mu-law can carry once the bias is added without
/// overflowing the top segment.
const ULAW_CLIP: i32 = 32635;

/// Decodes one mu-law code word. 0xFF and 0x7F are zero, 0x00 is -32124.
#[inline]
pub fn ulaw_to_linear(byte: u8) -> i16 {
    // Code words are sent inverted so that silence has many one bits.
    let code = !byte;
    let exponent = (code >> 4) & 0x07;
    let mantissa = i32::from(code & 0x0F);
    let magnitude = (((mantissa << 3) + ULAW_BIAS) << exponent) - ULAW_BIAS;
    let value = if code & 0x80 != 0 {
        -magnitude
    } else {
        magnitude
    };
    value as i16
}

/// Encodes one sample as mu-law, clipping magnitudes above 32635.
#[inline]
pub fn linear_to_ulaw(sample: i16) -> u8 {
    let sign: u8 = if sample < 0 { 0x80 } else { 0 };
    let magnitude = i32::from(sample).abs().min(ULAW_CLIP) + ULAW_BIAS;
    // The biased magnitude lies in 132..=32767, so its top bit is bit 7 to 14.
    let exponent = (31 - magnitude.leading_zeros()) as u8 - 7;
    let mantissa = ((magnitude >> (exponent + 3)) & 0x0F) as u8;
    !(sign | exponent << 4 | mantissa)
}

/// Decodes one A-law code word. 0xD5 is 8, 0x55 is -8.
#[inline]
pub fn alaw_to_linear(byte: u8) -> i16 {
    // Even bits are sent inverted (XOR 0x55); a set sign bit means positive.
    let code = byte ^ 0x55;
    let exponent = (code >> 4) & 0x07;
    let mantissa = i32::from(code & 0x0F);
    let magnitude = if exponent == 0 {
        (mantissa << 4) + 8
    } else {
        ((mantissa << 4) + 0x108) << (exponent - 1)
    };
    let value = if code & 0x80 != 0 {
        magnitude
    } else {
        -magnitude
    };
    value as i16
}

/// Encodes one sample as A-law.
#[inline]
pub fn linear_to_alaw(sample: i16) -> u8 {
    // A-law has no negative zero: -1 maps to the first negative step, so
    // negative samples use the one's complement magnitude.
    let (sign, magnitude): (u8, i32) = if sample >= 0 {
        (0x80, i32::from(sample))
    } else {
        (0, i32::from(!sample))
    };
    let (exponent, mantissa) = if magnitude < 256 {
        (0, (magnitude >> 4) as u8)
    } else {
        // Segment e (1..=7) spans 256 << (e - 1) up to 512 << (e - 1).
        let exponent = (31 - magnitude.leading_zeros()) as u8 - 7;
        (exponent, ((magnitude >> (exponent + 3)) & 0x0F) as u8)
    };
    (sign | exponent << 4 | mantissa) ^ 0x55
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ulaw_reference_values() {
        assert_eq!(ulaw_to_linear(0xFF), 0);
        assert_eq!(ulaw_to_linear(0x7F), 0);
        assert_eq!(ulaw_to_linear(0x00), -32124);
        assert_eq!(ulaw_to_linear(0x80), 32124);
        assert_eq!(ulaw_to_linear(0xFE), 8);
        assert_eq!(ulaw_to_linear(0x7E), -8);
        assert_eq!(ulaw_to_linear(0xF0), 120);
        assert_eq!(ulaw_to_linear(0xEF), 132);
        assert_eq!(ulaw_to_linear(0xDF), 396);
    }

    #[test]
    fn ulaw_encodes_reference_samples() {
        assert_eq!(linear_to_ulaw(0), 0xFF);
        assert_eq!(linear_to_ulaw(-1), 0x7F);
        assert_eq!(linear_to_ulaw(i16::MAX), 0x80);
        assert_eq!(linear_to_ulaw(i16::MIN), 0x00);
        assert_eq!(linear_to_ulaw(-32124), 0x00);
        assert_eq!(linear_to_ulaw(8), 0xFE);
    }

    #[test]
    fn alaw_reference_values() {
        assert_eq!(alaw_to_linear(0xD5), 8);
        assert_eq!(alaw_to_linear(0x55), -8);
        assert_eq!(alaw_to_linear(0xAA), 32256);
        assert_eq!(alaw_to_linear(0x2A), -32256);
        assert_eq!(alaw_to_linear(0xD4), 24);
        assert_eq!(alaw_to_linear(0xC5), 264);
    }

    #[test]
    fn alaw_encodes_reference_samples() {
        assert_eq!(linear_to_alaw(0), 0xD5);
        assert_eq!(linear_to_alaw(-1), 0x55);
        assert_eq!(linear_to_alaw(i16::MAX), 0xAA);
        assert_eq!(linear_to_alaw(i16::MIN), 0x2A);
        assert_eq!(linear_to_alaw(256), 0xC5);
    }

    #[test]
    fn ulaw_code_round_trip() {
        for byte in 0..=u8::MAX {
            let expected = if byte == 0x7F { 0xFF } else { byte };
            assert_eq!(
                linear_to_ulaw(ulaw_to_linear(byte)),
                expected,
                "code {byte:#04x}"
            );
        }
    }

    #[test]
    fn alaw_code_round_trip() {
        for byte in 0..=u8::MAX {
            assert_eq!(
                linear_to_alaw(alaw_to_linear(byte)),
                byte,
                "code {byte:#04x}"
            );
        }
    }

    #[test]
    fn decoders_are_odd_symmetric() {
        for byte in 0..0x80u8 {
            assert_eq!(
                ulaw_to_linear(byte),
                -ulaw_to_linear(byte | 0x80),
                "mu-law {byte:#04x}"
            );
            assert_eq!(
                alaw_to_linear(byte),
                -alaw_to_linear(byte | 0x80),
                "A-law {byte:#04x}"
            );
        }
    }

    /// Walks every 16-bit sample: the decoded value never decreases as the
    /// input grows, and stays within one quantization step of the input.
    #[test]
    fn encode_decode_monotonic_and_close() {
        let mut previous_ulaw = i16::MIN;
        let mut previous_alaw = i16::MIN;
        for sample in i16::MIN..=i16::MAX {
            let ulaw = ulaw_to_linear(linear_to_ulaw(sample));
            let alaw = alaw_to_linear(linear_to_alaw(sample));
            assert!(ulaw >= previous_ulaw, "mu-law not monotonic at {sample}");
            assert!(alaw >= previous_alaw, "A-law not monotonic at {sample}");
            previous_ulaw = ulaw;
            previous_alaw = alaw;

            // A step is at most 1/16 of the segment's lower edge, with 16 as
            // the floor near zero. Above the mu-law clip level (32124) the
            // error is the distance to that level.
            let tolerance = (i32::from(sample).abs() / 16).max(16);
            let clip_error = (i32::from(sample).abs() - 32124).max(0);
            let ulaw_error = (i32::from(ulaw) - i32::from(sample)).abs();
            let alaw_error = (i32::from(alaw) - i32::from(sample)).abs();
            assert!(
                ulaw_error <= tolerance.max(clip_error),
                "mu-law error at {sample}"
            );
            assert!(alaw_error <= tolerance, "A-law error at {sample}");
        }
    }
}
