//! A trunk caller written directly on UDP sockets, for what a sipp
//! scenario cannot check: the audio the PBX sends while the call waits,
//! and RFC 4733 keys sent at a chosen moment.

use std::io;
use std::net::{SocketAddr, UdpSocket};
use std::time::{Duration, Instant};

use crate::pbx::{DOMAIN, Pbx};
use crate::phones::CALLER_NUMBER;

/// RTP payload type of telephone-event this caller offers.
pub const EVENT_PAYLOAD_TYPE: u8 = 101;

pub struct RawCaller {
    sip: UdpSocket,
    rtp: UdpSocket,
    pbx: SocketAddr,
    call_id: String,
    to_tag: Option<String>,
    /// The PBX's relay address from its SDP answer.
    pub remote_rtp: Option<SocketAddr>,
    /// Status codes received on the INVITE, in order.
    pub statuses: Vec<u16>,
    cseq: u32,
    sequence: u16,
    timestamp: u32,
    /// Offers only G.722 and speaks it, when set by [`RawCaller::g722`].
    wideband: Option<Wideband>,
}

struct Wideband {
    encoder: rtp::g722::G722Encoder,
    decoder: rtp::g722::G722Decoder,
}

/// Audio received on the RTP socket.
#[derive(Debug, Default)]
pub struct Received {
    pub packets: usize,
    /// Payload types seen.
    pub payload_types: Vec<u8>,
    /// Decoded PCMU (8 kHz) or G.722 (16 kHz) samples, in arrival order.
    pub samples: Vec<i16>,
}

impl Received {
    pub fn rms(&self) -> f64 {
        if self.samples.is_empty() {
            return 0.0;
        }
        let sum: f64 = self.samples.iter().map(|&s| f64::from(s).powi(2)).sum();
        (sum / self.samples.len() as f64).sqrt()
    }
}

impl RawCaller {
    pub fn new(pbx: &Pbx) -> io::Result<RawCaller> {
        let sip = UdpSocket::bind("127.0.0.1:0")?;
        let rtp = UdpSocket::bind("127.0.0.1:0")?;
        Ok(RawCaller {
            sip,
            rtp,
            pbx: pbx.sip,
            call_id: format!("raw-caller-{}@127.0.0.1", std::process::id()),
            to_tag: None,
            remote_rtp: None,
            statuses: Vec::new(),
            cseq: 1,
            sequence: 1,
            timestamp: 0,
            wideband: None,
        })
    }

    /// Makes this caller offer only G.722 (and telephone-event), then send
    /// and decode G.722 audio.
    pub fn g722(mut self) -> RawCaller {
        self.wideband = Some(Wideband {
            encoder: rtp::g722::G722Encoder::new(),
            decoder: rtp::g722::G722Decoder::new(),
        });
        self
    }

    pub fn call_id(&self) -> &str {
        &self.call_id
    }

    fn headers(&self, method: &str, cseq: u32, branch: &str) -> String {
        let local = self.sip.local_addr().expect("bound socket");
        let to_tag = self
            .to_tag
            .as_ref()
            .map(|tag| format!(";tag={tag}"))
            .unwrap_or_default();
        format!(
            "Via: SIP/2.0/UDP {local};branch=z9hG4bK{branch}\r\nMax-Forwards: 70\r\n\
             From: <sip:{CALLER_NUMBER}@127.0.0.1>;tag=rawcaller\r\n\
             To: <sip:{number}@{DOMAIN}>{to_tag}\r\nCall-ID: {}\r\nCSeq: {cseq} {method}\r\n\
             Contact: <sip:{CALLER_NUMBER}@{local}>\r\n",
            self.call_id,
            number = crate::pbx::DID,
        )
    }

    /// Sends the INVITE and waits for the final response, answering a 2xx
    /// with ACK. Returns the final status.
    pub fn invite(&mut self, timeout: Duration) -> io::Result<u16> {
        let rtp = self.rtp.local_addr()?;
        let (format, rtpmap) = if self.wideband.is_some() {
            ("9", "9 G722/8000")
        } else {
            ("0", "0 PCMU/8000")
        };
        let sdp = format!(
            "v=0\r\no=raw 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n\
             m=audio {} RTP/AVP {format} {EVENT_PAYLOAD_TYPE}\r\na=rtpmap:{rtpmap}\r\n\
             a=rtpmap:{EVENT_PAYLOAD_TYPE} telephone-event/8000\r\na=fmtp:{EVENT_PAYLOAD_TYPE} 0-16\r\n",
            rtp.port()
        );
        let request = format!(
            "INVITE sip:{}@{DOMAIN} SIP/2.0\r\n{}Content-Type: application/sdp\r\nContent-Length: {}\r\n\r\n{sdp}",
            crate::pbx::DID,
            self.headers("INVITE", 1, "rawinvite"),
            sdp.len()
        );
        self.sip.send_to(request.as_bytes(), self.pbx)?;
        let deadline = Instant::now() + timeout;
        let mut buffer = [0u8; 4096];
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(io::Error::new(io::ErrorKind::TimedOut, "no final response"));
            }
            self.sip.set_read_timeout(Some(left))?;
            let (len, _) = self.sip.recv_from(&mut buffer)?;
            let text = String::from_utf8_lossy(&buffer[..len]).into_owned();
            let Some(status) = status_of(&text) else {
                continue;
            };
            if !text.contains(" INVITE\r\n") {
                continue;
            }
            self.statuses.push(status);
            if status < 200 {
                continue;
            }
            if (200..300).contains(&status) {
                self.to_tag = header(&text, "To").and_then(|to| {
                    to.split(";tag=")
                        .nth(1)
                        .map(|tag| tag.split(';').next().unwrap_or(tag).to_owned())
                });
                self.remote_rtp = sdp_address(&text);
                let ack = format!(
                    "ACK sip:pbx@{} SIP/2.0\r\n{}Content-Length: 0\r\n\r\n",
                    self.pbx,
                    self.headers("ACK", 1, "rawack")
                );
                self.sip.send_to(ack.as_bytes(), self.pbx)?;
            }
            return Ok(status);
        }
    }

    /// Sends 20 ms PCMU packets of silence for `duration` and collects what
    /// arrives meanwhile.
    pub fn exchange_audio(&mut self, duration: Duration) -> io::Result<Received> {
        self.exchange(duration, None)
    }

    /// Sends a sine tone of `frequency` Hz (amplitude 8,000) as PCMU for
    /// `duration` and collects what arrives meanwhile.
    pub fn exchange_tone(&mut self, duration: Duration, frequency: f64) -> io::Result<Received> {
        self.exchange(duration, Some(frequency))
    }

    fn exchange(&mut self, duration: Duration, tone: Option<f64>) -> io::Result<Received> {
        let remote = self
            .remote_rtp
            .ok_or_else(|| io::Error::other("no SDP answer"))?;
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
            self.rtp.set_read_timeout(Some(wait))?;
            match self.rtp.recv_from(&mut buffer) {
                Ok((len, _)) if len >= 12 => {
                    let payload_type = buffer[1] & 0x7F;
                    received.packets += 1;
                    if !received.payload_types.contains(&payload_type) {
                        received.payload_types.push(payload_type);
                    }
                    if payload_type == 0 {
                        received
                            .samples
                            .extend(buffer[12..len].iter().map(|&b| ulaw_to_linear(b)));
                    }
                    if let (9, Some(wideband)) = (payload_type, self.wideband.as_mut()) {
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

    /// Sends `digit` (0-9) as RFC 4733 events: three updates, then three
    /// end packets, 100 ms in all.
    pub fn press(&mut self, digit: u8) -> io::Result<()> {
        let remote = self
            .remote_rtp
            .ok_or_else(|| io::Error::other("no SDP answer"))?;
        let start = self.timestamp;
        for step in 1..=6u16 {
            let end = step > 3;
            let duration = (step.min(4) * 320).to_be_bytes();
            let volume = if end { 0x80 | 10 } else { 10 };
            let payload = [digit, volume, duration[0], duration[1]];
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
        packet.extend_from_slice(&0x5EED_CA11u32.to_be_bytes());
        packet.extend_from_slice(payload);
        self.sequence = self.sequence.wrapping_add(1);
        self.rtp.send_to(&packet, to).map(|_| ())
    }

    /// Hangs up with BYE and waits for its 200.
    pub fn bye(&mut self, timeout: Duration) -> io::Result<u16> {
        self.cseq += 1;
        let request = format!(
            "BYE sip:pbx@{} SIP/2.0\r\n{}Content-Length: 0\r\n\r\n",
            self.pbx,
            self.headers("BYE", self.cseq, "rawbye")
        );
        self.sip.send_to(request.as_bytes(), self.pbx)?;
        let deadline = Instant::now() + timeout;
        let mut buffer = [0u8; 4096];
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(io::Error::new(io::ErrorKind::TimedOut, "no answer to BYE"));
            }
            self.sip.set_read_timeout(Some(left))?;
            let (len, _) = self.sip.recv_from(&mut buffer)?;
            let text = String::from_utf8_lossy(&buffer[..len]).into_owned();
            if text.contains(" BYE\r\n")
                && let Some(status) = status_of(&text)
            {
                return Ok(status);
            }
        }
    }
}

impl RawCaller {
    /// Waits for the PBX to hang up: answers its BYE with 200 and returns.
    pub fn wait_for_bye(&mut self, timeout: Duration) -> io::Result<()> {
        let deadline = Instant::now() + timeout;
        let mut buffer = [0u8; 4096];
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    "no BYE from the PBX",
                ));
            }
            self.sip.set_read_timeout(Some(left))?;
            let (len, from) = self.sip.recv_from(&mut buffer)?;
            let text = String::from_utf8_lossy(&buffer[..len]).into_owned();
            if !text.starts_with("BYE ") {
                continue;
            }
            // The response copies the request's dialog and transaction headers.
            let copied: Vec<&str> = text
                .split("\r\n")
                .filter(|line| {
                    let name = line.split(':').next().unwrap_or_default().trim();
                    ["via", "v", "from", "f", "to", "t", "call-id", "i", "cseq"]
                        .iter()
                        .any(|wanted| name.eq_ignore_ascii_case(wanted))
                })
                .collect();
            let response = format!(
                "SIP/2.0 200 OK\r\n{}\r\nContent-Length: 0\r\n\r\n",
                copied.join("\r\n")
            );
            self.sip.send_to(response.as_bytes(), from)?;
            return Ok(());
        }
    }
}

fn status_of(text: &str) -> Option<u16> {
    text.strip_prefix("SIP/2.0 ")?.get(..3)?.parse().ok()
}

fn header<'a>(text: &'a str, name: &str) -> Option<&'a str> {
    text.split("\r\n").find_map(|line| {
        let (key, value) = line.split_once(':')?;
        key.trim().eq_ignore_ascii_case(name).then(|| value.trim())
    })
}

fn sdp_address(text: &str) -> Option<SocketAddr> {
    let (_, body) = text.split_once("\r\n\r\n")?;
    let ip = body
        .lines()
        .find_map(|line| line.strip_prefix("c=IN IP4 "))?
        .trim();
    let port = body
        .lines()
        .find_map(|line| line.strip_prefix("m=audio "))?
        .split(' ')
        .next()?;
    format!("{ip}:{port}").parse().ok()
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
}
