//! G.722 wideband codec (ITU-T G.722, 64 kbit/s mode 1): 16 kHz 16-bit
//! PCM to one byte per two samples, and back.
//!
//! A quadrature mirror filter pair splits the signal into a lower band
//! (0-4 kHz) and a higher band (4-8 kHz), each at 8 kHz. The lower band is
//! coded with 6-bit ADPCM and the higher band with 2-bit ADPCM; each byte
//! carries the higher band's 2 bits above the lower band's 6. Both bands
//! use the same adaptive predictor (two poles, six zeros) and a scale
//! factor adapted in the log domain. The block names in comments (QUANTL,
//! LOGSCL, UPPOL2 and so on) are those of the recommendation.
//!
//! Arithmetic follows the recommendation's fixed-point rules (16-bit
//! saturation, arithmetic right shifts), which decoders must match
//! bit for bit. Input samples are taken as 16-bit PCM, one bit above the
//! recommendation's 15-bit internal range, as common implementations do.
//!
//! RTP carries G.722 with an 8000 Hz timestamp clock although it samples at
//! 16 kHz (RFC 3551 section 4.5.2): 20 ms is 160 timestamp units and 160 bytes.

/// Static RTP payload type of G.722 (RFC 3551 section 6).
pub const PT_G722: u8 = 9;

/// QMF coefficients h(0) to h(23), scaled by 2^13; h(i) = h(23 - i).
const QMF: [i32; 24] = [
    3, -11, -11, 53, 12, -156, 32, 362, -210, -805, 951, 3876, 3876, 951, -805, -210, 362, 32,
    -156, 12, 53, -11, -11, 3,
];

/// QUANTL decision levels, relative to the scale factor (<< 12).
const Q6: [i32; 31] = [
    0, 35, 72, 110, 150, 190, 233, 276, 323, 370, 422, 473, 530, 587, 650, 714, 786, 858, 940,
    1023, 1121, 1219, 1339, 1458, 1612, 1765, 1980, 2195, 2557, 2919, 0,
];
/// QUANTL code for quantizer interval 0 to 30, negative and positive difference.
const ILN: [i32; 31] = [
    0, 63, 62, 31, 30, 29, 28, 27, 26, 25, 24, 23, 22, 21, 20, 19, 18, 17, 16, 15, 14, 13, 12, 11,
    10, 9, 8, 7, 6, 5, 4,
];
const ILP: [i32; 31] = [
    0, 61, 60, 59, 58, 57, 56, 55, 54, 53, 52, 51, 50, 49, 48, 47, 46, 45, 44, 43, 42, 41, 40, 39,
    38, 37, 36, 35, 34, 33, 32,
];
/// INVQAL output levels for the 4-bit truncated lower-band code.
const QM4: [i32; 16] = [
    0, -20456, -12896, -8968, -6288, -4240, -2584, -1200, 20456, 12896, 8968, 6288, 4240, 2584,
    1200, 0,
];
/// INVQBL output levels for the full 6-bit lower-band code.
const QM6: [i32; 64] = [
    -136, -136, -136, -136, -24808, -21904, -19008, -16704, -14984, -13512, -12280, -11192, -10232,
    -9360, -8576, -7856, -7192, -6576, -6000, -5456, -4944, -4464, -4008, -3576, -3168, -2776,
    -2400, -2032, -1688, -1360, -1040, -728, 24808, 21904, 19008, 16704, 14984, 13512, 12280,
    11192, 10232, 9360, 8576, 7856, 7192, 6576, 6000, 5456, 4944, 4464, 4008, 3576, 3168, 2776,
    2400, 2032, 1688, 1360, 1040, 728, 432, 136, -432, -136,
];
/// LOGSCL: magnitude class of the 4-bit code, and its log scale multiplier.
const RL42: [usize; 16] = [0, 7, 6, 5, 4, 3, 2, 1, 7, 6, 5, 4, 3, 2, 1, 0];
const WL: [i32; 8] = [-60, -30, 58, 172, 334, 538, 1198, 3042];
/// SCALEL and SCALEH: 2^(i/32) scaled by 2^11, the log-to-linear table.
const ILB: [i32; 32] = [
    2048, 2093, 2139, 2186, 2233, 2282, 2332, 2383, 2435, 2489, 2543, 2599, 2656, 2714, 2774, 2834,
    2896, 2960, 3025, 3091, 3158, 3228, 3298, 3371, 3444, 3520, 3597, 3676, 3756, 3838, 3922, 4008,
];
/// QUANTH codes (negative, positive) by interval, INVQAH levels, LOGSCH.
const IHN: [i32; 3] = [0, 1, 0];
const IHP: [i32; 3] = [0, 3, 2];
const QM2: [i32; 4] = [-7408, -1616, 7408, 1616];
const RH2: [usize; 4] = [2, 1, 2, 1];
const WH: [i32; 3] = [0, -214, 798];

/// Limits to the 16-bit two's complement range, as every adder of the
/// recommendation does.
fn saturate(value: i32) -> i32 {
    value.clamp(i32::from(i16::MIN), i32::from(i16::MAX))
}

/// Arithmetic sign of a 16-bit value: -1 when negative, else 0.
fn sign(value: i32) -> i32 {
    value >> 15
}

/// Adaptive predictor and scale factor of one sub-band.
#[derive(Clone, Debug)]
struct Band {
    /// Predicted signal and its pole and zero parts.
    s: i32,
    sp: i32,
    sz: i32,
    /// Reconstructed signal r and partially reconstructed signal p, newest first.
    r: [i32; 3],
    p: [i32; 3],
    /// Pole coefficients a1 and a2 (index 0 unused).
    a: [i32; 3],
    /// Quantized differences, newest first, and the zero coefficients b1 to b6.
    d: [i32; 7],
    b: [i32; 7],
    /// Log scale factor and the linear scale factor derived from it.
    nb: i32,
    det: i32,
}

impl Band {
    fn new(det: i32) -> Band {
        Band {
            s: 0,
            sp: 0,
            sz: 0,
            r: [0; 3],
            p: [0; 3],
            a: [0; 3],
            d: [0; 7],
            b: [0; 7],
            nb: 0,
            det,
        }
    }

    /// LOGSCL/LOGSCH then SCALEL/SCALEH: leaks the log scale factor by
    /// 127/128, adds the code's multiplier, and converts it to linear.
    fn adapt_scale(&mut self, multiplier: i32, max_nb: i32, shift_base: i32) {
        let leaked = (self.nb * 32512) >> 15;
        self.nb = (leaked + multiplier).clamp(0, max_nb);
        let mantissa = ILB[((self.nb >> 6) & 31) as usize];
        let shift = shift_base - (self.nb >> 11);
        let linear = if shift < 0 {
            mantissa << -shift
        } else {
            mantissa >> shift
        };
        self.det = linear << 2;
    }

    /// RECONS, PARREC, the coefficient updates UPPOL2, UPPOL1 and UPZERO,
    /// the delays, and the predictor FILTEP, FILTEZ and PREDIC, driven by
    /// the quantized difference `d` of this sample.
    fn update_predictor(&mut self, d: i32) {
        self.d[0] = d;
        self.r[0] = saturate(self.s + d);
        self.p[0] = saturate(self.sz + d);

        let a2 = self.update_a2();
        let a1 = self.update_a1(a2);
        self.update_zeros(d);

        self.d.copy_within(0..6, 1);
        self.r.copy_within(0..2, 1);
        self.p.copy_within(0..2, 1);
        self.a[1] = a1;
        self.a[2] = a2;

        let pole1 = (self.a[1] * saturate(self.r[1] + self.r[1])) >> 15;
        let pole2 = (self.a[2] * saturate(self.r[2] + self.r[2])) >> 15;
        self.sp = saturate(pole1 + pole2);
        let mut zeros = 0;
        for i in (1..=6).rev() {
            zeros += (self.b[i] * saturate(self.d[i] + self.d[i])) >> 15;
        }
        self.sz = saturate(zeros);
        self.s = saturate(self.sp + self.sz);
    }

    /// UPPOL2: second pole coefficient, limited to +-0.75 (12288).
    fn update_a2(&self) -> i32 {
        let signs = [sign(self.p[0]), sign(self.p[1]), sign(self.p[2])];
        let scaled_a1 = saturate(self.a[1] << 2);
        let gradient = if signs[0] == signs[1] {
            -scaled_a1
        } else {
            scaled_a1
        };
        let gradient = gradient.min(32767);
        let step = if signs[0] == signs[2] { 128 } else { -128 };
        let a2 = (gradient >> 7) + step + ((self.a[2] * 32512) >> 15);
        a2.clamp(-12288, 12288)
    }

    /// UPPOL1: first pole coefficient, limited so that the poles stay
    /// stable: |a1| <= 1 - 2^-4 - a2 (15360 - a2).
    fn update_a1(&self, a2: i32) -> i32 {
        let step = if sign(self.p[0]) == sign(self.p[1]) {
            192
        } else {
            -192
        };
        let a1 = saturate(step + ((self.a[1] * 32640) >> 15));
        let limit = saturate(15360 - a2);
        a1.clamp(-limit, limit)
    }

    /// UPZERO: sign-sign update of the six zero coefficients with leakage
    /// 255/256; no step when the difference is zero.
    fn update_zeros(&mut self, d: i32) {
        let step = if d == 0 { 0 } else { 128 };
        let sign_d = sign(d);
        for i in 1..=6 {
            let direction = if sign(self.d[i]) == sign_d {
                step
            } else {
                -step
            };
            self.b[i] = saturate(direction + ((self.b[i] * 32640) >> 15));
        }
    }
}

/// Lower band: QUANTL output levels scaled by the lower band's det.
fn lower_band_difference(band: &Band, code: i32) -> i32 {
    (band.det * QM4[(code >> 2) as usize]) >> 15
}

/// Adapts the lower band after `code` (6 bits): scale factor from the
/// 4-bit truncated code (LOGSCL, SCALEL), predictor from its difference.
fn adapt_lower(band: &mut Band, code: i32) {
    let difference = lower_band_difference(band, code);
    band.adapt_scale(WL[RL42[(code >> 2) as usize]], 18432, 8);
    band.update_predictor(difference);
}

/// Adapts the higher band after `code` (2 bits), returning its difference.
fn adapt_higher(band: &mut Band, code: i32) -> i32 {
    let difference = (band.det * QM2[code as usize]) >> 15;
    band.adapt_scale(WH[RH2[code as usize]], 22528, 10);
    band.update_predictor(difference);
    difference
}

/// Sans-IO G.722 encoder for one stream; its state carries across calls.
#[derive(Clone, Debug)]
pub struct G722Encoder {
    /// Input history for the analysis QMF, newest first.
    history: [i32; 24],
    lower: Band,
    higher: Band,
    /// A sample left over from an odd-length call.
    pending: Option<i16>,
}

impl Default for G722Encoder {
    fn default() -> G722Encoder {
        G722Encoder::new()
    }
}

impl G722Encoder {
    pub fn new() -> G722Encoder {
        G722Encoder {
            history: [0; 24],
            lower: Band::new(32),
            higher: Band::new(8),
            pending: None,
        }
    }

    /// Encodes 16 kHz samples, appending one byte per two samples to `out`.
    /// An odd sample waits for the next call.
    pub fn encode(&mut self, samples: &[i16], out: &mut Vec<u8>) {
        for &sample in samples {
            match self.pending.take() {
                None => self.pending = Some(sample),
                Some(first) => out.push(self.encode_pair(first, sample)),
            }
        }
    }

    fn encode_pair(&mut self, first: i16, second: i16) -> u8 {
        // Analysis QMF: xA sums the even taps, xB the odd ones, over the
        // history whose newest sample is `second`.
        self.history.copy_within(0..22, 2);
        self.history[1] = i32::from(first);
        self.history[0] = i32::from(second);
        let (mut even, mut odd) = (0, 0);
        for i in 0..12 {
            even += QMF[2 * i] * self.history[2 * i];
            odd += QMF[2 * i + 1] * self.history[2 * i + 1];
        }
        let lower_input = (even + odd) >> 14;
        let higher_input = (even - odd) >> 14;

        let lower_code = self.quantize_lower(lower_input);
        adapt_lower(&mut self.lower, lower_code);
        let higher_code = self.quantize_higher(higher_input);
        adapt_higher(&mut self.higher, higher_code);
        ((higher_code << 6) | lower_code) as u8
    }

    /// QUANTL: 6-bit code of the lower band's prediction error.
    fn quantize_lower(&self, input: i32) -> i32 {
        let error = saturate(input - self.lower.s);
        let magnitude = if error >= 0 { error } else { -(error + 1) };
        let interval = (1..30)
            .find(|&i| magnitude < (Q6[i] * self.lower.det) >> 12)
            .unwrap_or(30);
        if error < 0 {
            ILN[interval]
        } else {
            ILP[interval]
        }
    }

    /// QUANTH: 2-bit code of the higher band's prediction error.
    fn quantize_higher(&self, input: i32) -> i32 {
        let error = saturate(input - self.higher.s);
        let magnitude = if error >= 0 { error } else { -(error + 1) };
        let interval = if magnitude >= (564 * self.higher.det) >> 12 {
            2
        } else {
            1
        };
        if error < 0 {
            IHN[interval]
        } else {
            IHP[interval]
        }
    }
}

/// Sans-IO G.722 decoder for one stream; its state carries across calls.
#[derive(Clone, Debug)]
pub struct G722Decoder {
    /// Sum (rL + rH) and difference (rL - rH) histories for the synthesis
    /// QMF, newest first.
    sums: [i32; 12],
    differences: [i32; 12],
    lower: Band,
    higher: Band,
}

impl Default for G722Decoder {
    fn default() -> G722Decoder {
        G722Decoder::new()
    }
}

impl G722Decoder {
    pub fn new() -> G722Decoder {
        G722Decoder {
            sums: [0; 12],
            differences: [0; 12],
            lower: Band::new(32),
            higher: Band::new(8),
        }
    }

    /// Decodes G.722 bytes, appending two 16 kHz samples per byte to `out`.
    pub fn decode(&mut self, payload: &[u8], out: &mut Vec<i16>) {
        out.reserve(2 * payload.len());
        for &byte in payload {
            let [first, second] = self.decode_byte(byte);
            out.push(first);
            out.push(second);
        }
    }

    fn decode_byte(&mut self, byte: u8) -> [i16; 2] {
        let lower_code = i32::from(byte & 0x3F);
        let higher_code = i32::from(byte >> 6);

        // INVQBL: the output uses all 6 bits, the adaptation only 4.
        let lower_difference = (self.lower.det * QM6[lower_code as usize]) >> 15;
        let lower = saturate(self.lower.s + lower_difference).clamp(-16384, 16383);
        adapt_lower(&mut self.lower, lower_code);

        let predicted_higher = self.higher.s;
        let higher_difference = adapt_higher(&mut self.higher, higher_code);
        let higher = saturate(predicted_higher + higher_difference).clamp(-16384, 16383);

        // Synthesis QMF: the first output sample takes the even taps over
        // the differences, the second the odd taps over the sums.
        self.sums.copy_within(0..11, 1);
        self.differences.copy_within(0..11, 1);
        self.sums[0] = lower + higher;
        self.differences[0] = lower - higher;
        let (mut first, mut second) = (0, 0);
        for i in 0..12 {
            first += QMF[2 * i] * self.differences[i];
            second += QMF[2 * i + 1] * self.sums[i];
        }
        [saturate(first >> 11) as i16, saturate(second >> 11) as i16]
    }
}

#[cfg(test)]
mod tests;
