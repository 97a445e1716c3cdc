//! Audio codecs a leg can negotiate, and conversion between them.

use rtp::g722::{G722Decoder, G722Encoder, PT_G722};
use rtp::{PT_PCMA, PT_PCMU, g711};

use crate::resample::{Downsampler, Upsampler};

/// Audio codec of a leg's RTP stream.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Codec {
    /// G.711 mu-law, static payload type 0.
    Pcmu,
    /// G.711 A-law, static payload type 8.
    Pcma,
    /// G.722 at 64 kbit/s, static payload type 9, sampled at 16 kHz.
    G722,
}

impl Codec {
    /// Static payload type (RFC 3551 section 6).
    pub fn payload_type(self) -> u8 {
        match self {
            Codec::Pcmu => PT_PCMU,
            Codec::Pcma => PT_PCMA,
            Codec::G722 => PT_G722,
        }
    }

    /// Codec of a static payload type, if it is one the relay handles.
    pub fn from_payload_type(payload_type: u8) -> Option<Codec> {
        match payload_type {
            PT_PCMU => Some(Codec::Pcmu),
            PT_PCMA => Some(Codec::Pcma),
            PT_G722 => Some(Codec::G722),
            _ => None,
        }
    }

    /// RTP clock rate in Hz: 8000 for all three, G.722 included
    /// (RFC 3551 section 4.5.2).
    pub fn clock_rate(self) -> u32 {
        8000
    }

    /// Audio sample rate in Hz.
    pub fn sample_rate(self) -> u32 {
        match self {
            Codec::Pcmu | Codec::Pcma => 8000,
            Codec::G722 => 16_000,
        }
    }
}

/// Codecs a leg negotiated in SDP: its audio codec and the payload type of
/// telephone-event, if it offered RFC 4733.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LegCodecs {
    pub codec: Codec,
    pub event_payload_type: Option<u8>,
}

/// Stateful decoder of one stream to 8 kHz samples. G.722 is ADPCM, so
/// its state must follow the stream packet after packet.
#[derive(Debug)]
struct Decoder {
    codec: Codec,
    g722: G722Decoder,
    downsampler: Downsampler,
}

impl Decoder {
    fn new(codec: Codec) -> Decoder {
        Decoder {
            codec,
            g722: G722Decoder::new(),
            downsampler: Downsampler::new(),
        }
    }

    /// Replaces the contents of `out` with the payload's 8 kHz samples.
    fn decode_into(&mut self, payload: &[u8], out: &mut Vec<i16>) {
        out.clear();
        match self.codec {
            Codec::Pcmu => out.extend(payload.iter().map(|b| g711::ulaw_to_linear(*b))),
            Codec::Pcma => out.extend(payload.iter().map(|b| g711::alaw_to_linear(*b))),
            Codec::G722 => {
                // TODO: the G.722 path still allocates for each packet (here
                // and in the resamplers); only G.711 transcoding reuses buffers.
                let mut wideband = Vec::with_capacity(2 * payload.len());
                self.g722.decode(payload, &mut wideband);
                out.extend_from_slice(&self.downsampler.process(&wideband));
            }
        }
    }
}

/// Stateful encoder of 8 kHz samples into one codec.
#[derive(Debug)]
pub(crate) struct Encoder {
    codec: Codec,
    g722: G722Encoder,
    upsampler: Upsampler,
}

impl Encoder {
    pub(crate) fn new(codec: Codec) -> Encoder {
        Encoder {
            codec,
            g722: G722Encoder::new(),
            upsampler: Upsampler::new(),
        }
    }

    pub(crate) fn codec(&self) -> Codec {
        self.codec
    }

    /// Encodes 8 kHz samples; one byte per sample for every codec, since
    /// G.722 codes the doubled sample count at 4 bits per sample.
    pub(crate) fn encode(&mut self, samples: &[i16]) -> Vec<u8> {
        let mut out = Vec::with_capacity(samples.len());
        self.encode_into(samples, &mut out);
        out
    }

    /// Appends the encoded samples to `out`, as [`Encoder::encode`] returns them.
    fn encode_into(&mut self, samples: &[i16], out: &mut Vec<u8>) {
        match self.codec {
            Codec::Pcmu => out.extend(samples.iter().map(|s| g711::linear_to_ulaw(*s))),
            Codec::Pcma => out.extend(samples.iter().map(|s| g711::linear_to_alaw(*s))),
            Codec::G722 => {
                let wideband = self.upsampler.process(samples);
                self.g722.encode(&wideband, out);
            }
        }
    }
}

/// Converts one relayed stream from the sending leg's codec to the
/// receiving leg's. G.711 laws convert sample by sample; G.722 goes through
/// 8 kHz, so a call between two G.722 legs is never transcoded by this.
#[derive(Debug)]
pub(crate) struct Transcoder {
    decoder: Decoder,
    encoder: Encoder,
    /// Decoded samples of the current packet, reused from packet to packet.
    samples: Vec<i16>,
}

impl Transcoder {
    pub(crate) fn new(from: Codec, to: Codec) -> Transcoder {
        Transcoder {
            decoder: Decoder::new(from),
            encoder: Encoder::new(to),
            samples: Vec::new(),
        }
    }

    pub(crate) fn converts(&self, from: Codec, to: Codec) -> bool {
        self.decoder.codec == from && self.encoder.codec == to
    }

    /// Converts one payload. Every codec here has 160 bytes per 20 ms, so
    /// the RTP timestamps of the stream stay valid.
    #[cfg(test)]
    pub(crate) fn transcode(&mut self, payload: &[u8]) -> Vec<u8> {
        let mut out = Vec::with_capacity(payload.len());
        self.transcode_into(payload, &mut out);
        out
    }

    /// Appends the converted payload to `out`.
    pub(crate) fn transcode_into(&mut self, payload: &[u8], out: &mut Vec<u8>) {
        self.decoder.decode_into(payload, &mut self.samples);
        self.encoder.encode_into(&self.samples, out);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payload_types_round_trip() {
        for codec in [Codec::Pcmu, Codec::Pcma, Codec::G722] {
            assert_eq!(Codec::from_payload_type(codec.payload_type()), Some(codec));
        }
        assert_eq!(Codec::from_payload_type(18), None);
    }

    #[test]
    fn transcode_reference_codes() {
        // Silence, the loudest positive and negative codes of each law.
        let mut transcoder = Transcoder::new(Codec::Pcmu, Codec::Pcma);
        assert_eq!(
            transcoder.transcode(&[0xFF, 0x80, 0x00]),
            [0xD5, 0xAA, 0x2A]
        );
        // A-law 0xD5 is +8, which mu-law carries as 0xFE.
        let mut transcoder = Transcoder::new(Codec::Pcma, Codec::Pcmu);
        assert_eq!(transcoder.transcode(&[0xD5]), [0xFE]);
    }

    #[test]
    fn transcode_round_trip_stays_within_one_step() {
        let mut there = Transcoder::new(Codec::Pcmu, Codec::Pcma);
        let mut back = Transcoder::new(Codec::Pcma, Codec::Pcmu);
        for byte in 0..=u8::MAX {
            let returned = back.transcode(&there.transcode(&[byte]));
            let original = i32::from(g711::ulaw_to_linear(byte));
            let returned = i32::from(g711::ulaw_to_linear(returned[0]));
            let tolerance = (original.abs() / 8).max(16);
            assert!((original - returned).abs() <= tolerance, "code {byte:#04x}");
        }
    }

    /// A 1 kHz tone through PCMU, G.722 and back to PCMU keeps its level
    /// and 160 bytes per 20 ms packet in both directions.
    #[test]
    fn g722_transcoding_keeps_tone() {
        let tone: Vec<u8> = (0..8000)
            .map(|n| {
                let phase = 2.0 * std::f64::consts::PI * 1000.0 * f64::from(n) / 8000.0;
                g711::linear_to_ulaw((8000.0 * phase.sin()) as i16)
            })
            .collect();
        let mut to_g722 = Transcoder::new(Codec::Pcmu, Codec::G722);
        let mut from_g722 = Transcoder::new(Codec::G722, Codec::Pcmu);
        let mut output = Vec::new();
        for packet in tone.chunks(160) {
            let wideband = to_g722.transcode(packet);
            assert_eq!(wideband.len(), 160);
            let narrowband = from_g722.transcode(&wideband);
            assert_eq!(narrowband.len(), 160);
            output.extend(
                narrowband
                    .iter()
                    .map(|b| f64::from(g711::ulaw_to_linear(*b))),
            );
        }
        let tail = &output[1600..];
        let rms = (tail.iter().map(|s| s * s).sum::<f64>() / tail.len() as f64).sqrt();
        let expected = 8000.0 * std::f64::consts::FRAC_1_SQRT_2;
        assert!((rms / expected - 1.0).abs() < 0.1, "rms {rms}");
    }

    #[test]
    fn encoder_outputs_one_byte_per_sample() {
        for codec in [Codec::Pcmu, Codec::Pcma, Codec::G722] {
            let mut encoder = Encoder::new(codec);
            assert_eq!(encoder.encode(&[0; 160]).len(), 160, "{codec:?}");
        }
    }
}
