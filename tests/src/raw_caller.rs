//! A trunk caller written directly on UDP sockets, for what a sipp
//! scenario cannot check: the audio the PBX sends while the call waits,
//! and RFC 4733 keys sent at a chosen moment.

use std::io;
use std::net::{SocketAddr, UdpSocket};
use std::time::{Duration, Instant};

use crate::pbx::{DOMAIN, Pbx};
use crate::phones::CALLER_NUMBER;

use crate::rtp_stream::RtpStream;
pub use crate::rtp_stream::{EVENT_PAYLOAD_TYPE, Received};

pub struct RawCaller {
    sip: UdpSocket,
    rtp: RtpStream,
    pbx: SocketAddr,
    call_id: String,
    to_tag: Option<String>,
    /// The PBX's relay address from its SDP answer.
    pub remote_rtp: Option<SocketAddr>,
    /// Status codes received on the INVITE, in order.
    pub statuses: Vec<u16>,
    cseq: u32,
}

impl RawCaller {
    pub fn new(pbx: &Pbx) -> io::Result<RawCaller> {
        let sip = UdpSocket::bind("127.0.0.1:0")?;
        let rtp = RtpStream::bind(0x5EED_CA11)?;
        Ok(RawCaller {
            sip,
            rtp,
            pbx: pbx.sip,
            call_id: format!("raw-caller-{}@127.0.0.1", std::process::id()),
            to_tag: None,
            remote_rtp: None,
            statuses: Vec::new(),
            cseq: 1,
        })
    }

    /// Makes this caller offer only G.722 (and telephone-event), then send
    /// and decode G.722 audio.
    pub fn g722(mut self) -> RawCaller {
        self.rtp.use_g722();
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
        let (format, rtpmap) = if self.rtp.is_wideband() {
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
        let remote = self.remote()?;
        self.rtp.exchange(remote, duration, None)
    }

    /// Sends a sine tone of `frequency` Hz (amplitude 8,000) as PCMU for
    /// `duration` and collects what arrives meanwhile.
    pub fn exchange_tone(&mut self, duration: Duration, frequency: f64) -> io::Result<Received> {
        let remote = self.remote()?;
        self.rtp.exchange(remote, duration, Some(frequency))
    }

    /// Sends `digit` (0-9) as RFC 4733 events: three updates, then three
    /// end packets, 120 ms in all.
    pub fn press(&mut self, digit: u8) -> io::Result<()> {
        let remote = self.remote()?;
        self.rtp.press(remote, digit)
    }

    fn remote(&self) -> io::Result<SocketAddr> {
        self.remote_rtp
            .ok_or_else(|| io::Error::other("no SDP answer"))
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
    /// Waits for a re-INVITE from the PBX, answers it with 200 and this
    /// caller's SDP (`a=recvonly` to a hold, else `a=sendrecv`), and
    /// returns the offer's body. The PBX's ACK is skipped by later reads.
    pub fn accept_reinvite(&mut self, timeout: Duration) -> io::Result<String> {
        let deadline = Instant::now() + timeout;
        let mut buffer = [0u8; 4096];
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    "no re-INVITE from the PBX",
                ));
            }
            self.sip.set_read_timeout(Some(left))?;
            let (len, from) = self.sip.recv_from(&mut buffer)?;
            let text = String::from_utf8_lossy(&buffer[..len]).into_owned();
            if !text.starts_with("INVITE ") {
                continue;
            }
            let offer = text
                .split_once("\r\n\r\n")
                .map(|(_, body)| body.to_owned())
                .unwrap_or_default();
            let direction = if offer.contains("a=sendonly") || offer.contains("a=inactive") {
                "recvonly"
            } else {
                "sendrecv"
            };
            let rtp = self.rtp.local_addr()?;
            let sdp = format!(
                "v=0\r\no=raw 1 2 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n\
                 m=audio {} RTP/AVP 0 {EVENT_PAYLOAD_TYPE}\r\na=rtpmap:0 PCMU/8000\r\n\
                 a=rtpmap:{EVENT_PAYLOAD_TYPE} telephone-event/8000\r\na={direction}\r\n",
                rtp.port()
            );
            let local = self.sip.local_addr()?;
            let response = format!(
                "SIP/2.0 200 OK\r\n{}\r\nContact: <sip:{CALLER_NUMBER}@{local}>\r\n\
                 Content-Type: application/sdp\r\nContent-Length: {}\r\n\r\n{sdp}",
                dialog_headers(&text).join("\r\n"),
                sdp.len()
            );
            self.sip.send_to(response.as_bytes(), from)?;
            return Ok(offer);
        }
    }

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
            let response = format!(
                "SIP/2.0 200 OK\r\n{}\r\nContent-Length: 0\r\n\r\n",
                dialog_headers(&text).join("\r\n")
            );
            self.sip.send_to(response.as_bytes(), from)?;
            return Ok(());
        }
    }
}

/// Returns the dialog and transaction headers of a request, which its
/// response copies.
fn dialog_headers(request: &str) -> Vec<&str> {
    request
        .split("\r\n")
        .filter(|line| {
            let name = line.split(':').next().unwrap_or_default().trim();
            ["via", "v", "from", "f", "to", "t", "call-id", "i", "cseq"]
                .iter()
                .any(|wanted| name.eq_ignore_ascii_case(wanted))
        })
        .collect()
}

fn status_of(text: &str) -> Option<u16> {
    text.strip_prefix("SIP/2.0 ")?.get(..3)?.parse().ok()
}

pub(crate) fn header<'a>(text: &'a str, name: &str) -> Option<&'a str> {
    text.split("\r\n").find_map(|line| {
        let (key, value) = line.split_once(':')?;
        key.trim().eq_ignore_ascii_case(name).then(|| value.trim())
    })
}

pub(crate) fn sdp_address(text: &str) -> Option<SocketAddr> {
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
