//! One RTP stream of a test phone on a UDP socket: 20 ms PCMU packets of
//! silence or a tone, RFC 4733 keys, and what arrives meanwhile.

use std::io;
use std::net::{SocketAddr, UdpSocket};
use std::time::{Duration, Instant};

/// RTP payload type of telephone-event the test phones offer and answer.
pub const EVENT_PAYLOAD_TYPE: u8 = 101;

/// Audio received on the RTP socket.
#[derive(Debug, Default)]
pub struct Received {
    pub packets: usize,
    /// Payload types seen.
    pub payload_types: Vec<u8>,
    /// Decoded PCMU (8 kHz) or G.722 (16 kHz) samples, in arrival order.
    pub samples: Vec<i16>,
    /// Event codes of the telephone-events received, one per event (its
    /// start timestamp), in order of arrival: 0-9 for the digits, 10 for
    /// `*`, 11 for `#`.
    pub events: Vec<u8>,
    /// Start timestamps of the events in `events`.
    event_timestamps: Vec<u32>,
}

impl Received {
    pub fn rms(&self) -> f64 {
        if self.samples.is_empty() {
            return 0.0;
        }
        let sum: f64 = self.samples.iter().map(|&s| f64::from(s).powi(2)).sum();
        (sum / self.samples.len() as f64).sqrt()
    }

    fn record(&mut self, packet: &[u8]) {
        let payload_type = packet[1] & 0x7F;
        self.packets += 1;
        if !self.payload_types.contains(&payload_type) {
            self.payload_types.push(payload_type);
        }
        match payload_type {
            0 => self
                .samples
                .extend(packet[12..].iter().map(|&b| ulaw_to_linear(b))),
            EVENT_PAYLOAD_TYPE if packet.len() >= 16 => {
                let timestamp = u32::from_be_bytes([packet[4], packet[5], packet[6], packet[7]]);
                if !self.event_timestamps.contains(&timestamp) {
                    self.event_timestamps.push(timestamp);
                    self.events.push(packet[12]);
                }
            }
            _ => {}
        }
    }
}

/// Sender and receiver of one RTP stream with its own SSRC, sequence
/// numbers and timestamps.
pub struct RtpStream {
    socket: UdpSocket,
    ssrc: u32,
    sequence: u16,
    timestamp: u32,
    /// Speaks G.722 instead of PCMU, once [`RtpStream::use_g722`] ran.
    wideband: Option<Wideband>,
}

struct Wideband {
    encoder: rtp::g722::G722Encoder,
    decoder: rtp::g722::G722Decoder,
}

impl RtpStream {
    /// Binds a socket on 127.0.0.1 for a stream with `ssrc`.
    pub fn bind(ssrc: u32) -> io::Result<RtpStream> {
        Ok(RtpStream {
            socket: UdpSocket::bind("127.0.0.1:0")?,
            ssrc,
            sequence: 1,
            timestamp: 0,
            wideband: None,
        })
    }

    /// Sends G.722 (payload type 9) instead of PCMU from now on, and
    /// decodes the G.722 that arrives into 16 kHz samples.
    pub fn use_g722(&mut self) {
        self.wideband = Some(Wideband {
            encoder: rtp::g722::G722Encoder::new(),
            decoder: rtp::g722::G722Decoder::new(),
        });
    }

    pub fn is_wideband(&self) -> bool {
        self.wideband.is_some()
    }

    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.socket.local_addr()
    }

    /// Sends 20 ms PCMU packets of silence, or of a sine tone of `tone` Hz
    /// (amplitude 8,000), to `remote` for `duration` and collects what
    /// arrives meanwhile.
    pub fn exchange(
        &mut self,
        remote: SocketAddr,
        duration: Duration,
        tone: Option<f64>,
    ) -> io::Result<Received> {
        let mut received = Received::default();
        let end = Instant::now() + duration;
        let mut next_send = Instant::now();
        let mut buffer = [0u8; 2048];
        while Instant::now() < end {
            if Instant::now() >= next_send {
                let (payload_type, payload) = self.voice_frame(tone);
                self.send_rtp(remote, payload_type, false, &payload)?;
                self.timestamp = self.timestamp.wrapping_add(160);
                next_send += Duration::from_millis(20);
            }
            let wait = next_send
                .saturating_duration_since(Instant::now())
                .max(Duration::from_millis(1));
            self.socket.set_read_timeout(Some(wait))?;
            match self.socket.recv_from(&mut buffer) {
                Ok((len, _)) if len >= 12 => {
                    received.record(&buffer[..len]);
                    if let (9, Some(wideband)) = (buffer[1] & 0x7F, self.wideband.as_mut()) {
                        wideband
                            .decoder
                            .decode(&buffer[12..len], &mut received.samples);
                    }
                }
                Ok(_) => {}
                Err(error)
                    if matches!(
                        error.kind(),
                        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                    ) => {}
                Err(error) => return Err(error),
            }
        }
        Ok(received)
    }

    /// One 20 ms frame of silence or of a sine tone at amplitude 8,000, in
    /// this caller's codec, with its payload type.
    fn voice_frame(&mut self, tone: Option<f64>) -> (u8, Vec<u8>) {
        // G.722 samples at 16 kHz though its RTP clock counts 8 kHz.
        let rate: u32 = if self.wideband.is_some() {
            16_000
        } else {
            8_000
        };
        let per_frame = rate / 50;
        let first = self.timestamp.wrapping_mul(rate / 8_000);
        let samples: Vec<i16> = (0..per_frame)
            .map(|index| match tone {
                Some(frequency) => {
                    let t = f64::from(first.wrapping_add(index)) / f64::from(rate);
                    (8000.0 * (2.0 * std::f64::consts::PI * frequency * t).sin()) as i16
                }
                None => 0,
            })
            .collect();
        match self.wideband.as_mut() {
            Some(wideband) => {
                let mut payload = Vec::with_capacity(160);
                wideband.encoder.encode(&samples, &mut payload);
                (9, payload)
            }
            None => (0, samples.iter().map(|&s| linear_to_ulaw(s)).collect()),
        }
    }

    /// Sends the key with event code `event` (0-9, 10 for `*`, 11 for `#`)
    /// to `remote` as RFC 4733 events: three updates, then three end
    /// packets, 120 ms in all. No audio goes out meanwhile.
    pub fn press(&mut self, remote: SocketAddr, event: u8) -> io::Result<()> {
        let start = self.timestamp;
        for step in 1..=6u16 {
            let end = step > 3;
            let duration = (step.min(4) * 320).to_be_bytes();
            let volume = if end { 0x80 | 10 } else { 10 };
            let payload = [event, volume, duration[0], duration[1]];
            let saved = self.timestamp;
            self.timestamp = start;
            self.send_rtp(remote, EVENT_PAYLOAD_TYPE, step == 1, &payload)?;
            self.timestamp = saved;
            std::thread::sleep(Duration::from_millis(20));
        }
        self.timestamp = self.timestamp.wrapping_add(4 * 320);
        Ok(())
    }

    fn send_rtp(
        &mut self,
        to: SocketAddr,
        payload_type: u8,
        marker: bool,
        payload: &[u8],
    ) -> io::Result<()> {
        let mut packet = Vec::with_capacity(12 + payload.len());
        packet.push(0x80);
        packet.push(payload_type | if marker { 0x80 } else { 0 });
        packet.extend_from_slice(&self.sequence.to_be_bytes());
        packet.extend_from_slice(&self.timestamp.to_be_bytes());
        packet.extend_from_slice(&self.ssrc.to_be_bytes());
        packet.extend_from_slice(payload);
        self.sequence = self.sequence.wrapping_add(1);
        self.socket.send_to(&packet, to).map(|_| ())
    }
}

/// G.711 mu-law to 16-bit linear (ITU-T G.711).
fn ulaw_to_linear(byte: u8) -> i16 {
    let byte = !byte;
    let sign = byte & 0x80;
    let exponent = (byte >> 4) & 0x07;
    let mantissa = byte & 0x0F;
    let magnitude = ((i32::from(mantissa) << 3) + 0x84) << exponent;
    let value = magnitude - 0x84;
    (if sign != 0 { -value } else { value }) as i16
}

/// 16-bit linear to G.711 mu-law (ITU-T G.711).
fn linear_to_ulaw(sample: i16) -> u8 {
    const BIAS: i32 = 0x84;
    const CLIP: i32 = 32_635;
    let value = i32::from(sample);
    let sign: u8 = if value < 0 { 0x80 } else { 0 };
    let magnitude = value.abs().min(CLIP) + BIAS;
    // The segment is the highest set bit among bits 7 to 14.
    let mut exponent = 7;
    while exponent > 0 && magnitude & (0x80 << exponent) == 0 {
        exponent -= 1;
    }
    let mantissa = (magnitude >> (exponent + 3)) & 0x0F;
    !(sign | ((exponent as u8) << 4) | mantissa as u8)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mu_law_round_trip_is_close() {
        for sample in [-32_000i16, -8_000, -100, 0, 100, 8_000, 32_000] {
            let back = ulaw_to_linear(linear_to_ulaw(sample));
            let error = (i32::from(back) - i32::from(sample)).abs();
            assert!(
                error <= i32::from(sample).abs() / 16 + 8,
                "{sample} came back {back}"
            );
        }
    }

    #[test]
    fn received_counts_each_event_once() {
        let mut received = Received::default();
        for (timestamp, event) in [(800u32, 10u8), (800, 10), (2400, 1), (2400, 1)] {
            let mut packet = vec![0x80, EVENT_PAYLOAD_TYPE, 0, 1];
            packet.extend_from_slice(&timestamp.to_be_bytes());
            packet.extend_from_slice(&[0; 4]);
            packet.extend_from_slice(&[event, 10, 0, 160]);
            received.record(&packet);
        }
        assert_eq!(received.events, [10, 1]);
        assert_eq!(received.payload_types, [EVENT_PAYLOAD_TYPE]);
        assert_eq!(received.packets, 4);
    }
}
