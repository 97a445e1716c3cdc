//! An agent phone written directly on UDP sockets, for what a sipp
//! scenario cannot do: send RFC 4733 keys from the agent's side at a
//! chosen moment while audio flows. sipp registers it (digest), then this
//! phone answers the PBX's INVITE on the registered contact port.

use std::io;
use std::net::{SocketAddr, UdpSocket};
use std::time::{Duration, Instant};

use crate::raw_caller::{header, sdp_address};
use crate::rtp_stream::{EVENT_PAYLOAD_TYPE, Received, RtpStream};

pub struct RawAgent {
    sip: UdpSocket,
    rtp: RtpStream,
    agent: String,
    /// The PBX's relay address from its INVITE's SDP offer.
    pub remote_rtp: Option<SocketAddr>,
}

impl RawAgent {
    /// Binds the SIP socket on 127.0.0.1:`sip_port`, the contact port the
    /// agent registers, and an RTP socket.
    pub fn bind(agent: &str, sip_port: u16) -> io::Result<RawAgent> {
        Ok(RawAgent {
            sip: UdpSocket::bind(("127.0.0.1", sip_port))?,
            rtp: RtpStream::bind(0xA6E7_1001)?,
            agent: agent.to_owned(),
            remote_rtp: None,
        })
    }

    /// Waits up to `timeout` for an INVITE, answers it 200 with PCMU and
    /// telephone-event, and waits for the ACK. Other requests (such as
    /// OPTIONS) get 200 meanwhile.
    pub fn answer(&mut self, timeout: Duration) -> io::Result<()> {
        let deadline = Instant::now() + timeout;
        let mut answer = None;
        loop {
            let (text, source) = self.receive(deadline)?;
            let method = text.split(' ').next().unwrap_or_default().to_owned();
            match method.as_str() {
                "INVITE" => {
                    // A retransmitted INVITE gets the same answer again.
                    let response = match &answer {
                        Some(response) => response,
                        None => {
                            self.remote_rtp = sdp_address(&text);
                            answer.insert(self.ok_with_sdp(&text)?)
                        }
                    };
                    self.sip.send_to(response.as_bytes(), source)?;
                }
                "ACK" if answer.is_some() => return Ok(()),
                "ACK" => {}
                _ if text.starts_with("SIP/2.0") => {}
                _ => self.respond(&text, source, 200)?,
            }
        }
    }

    /// Sends a tone of `frequency` Hz for `duration`; returns what the
    /// caller's side sent meanwhile.
    pub fn exchange_tone(&mut self, duration: Duration, frequency: f64) -> io::Result<Received> {
        let remote = self.remote()?;
        self.rtp.exchange(remote, duration, Some(frequency))
    }

    /// Keys `key` (`0`-`9`, `*` or `#`) as RFC 4733 events, 120 ms.
    pub fn press(&mut self, key: char) -> io::Result<()> {
        let event = match key {
            '*' => 10,
            '#' => 11,
            digit => digit
                .to_digit(10)
                .and_then(|value| u8::try_from(value).ok())
                .ok_or_else(|| io::Error::other(format!("{key:?} is not a DTMF key")))?,
        };
        let remote = self.remote()?;
        self.rtp.press(remote, event)
    }

    /// Waits up to `timeout` for the PBX's BYE and answers it 200.
    pub fn await_bye(&mut self, timeout: Duration) -> io::Result<()> {
        let deadline = Instant::now() + timeout;
        loop {
            let (text, source) = self.receive(deadline)?;
            if text.starts_with("SIP/2.0") || text.starts_with("ACK ") {
                continue;
            }
            self.respond(&text, source, 200)?;
            if text.starts_with("BYE ") {
                return Ok(());
            }
        }
    }

    fn remote(&self) -> io::Result<SocketAddr> {
        self.remote_rtp
            .ok_or_else(|| io::Error::other("no SDP offer from the PBX"))
    }

    fn receive(&self, deadline: Instant) -> io::Result<(String, SocketAddr)> {
        let mut buffer = [0u8; 8192];
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(io::Error::new(io::ErrorKind::TimedOut, "no SIP request"));
        }
        self.sip.set_read_timeout(Some(left))?;
        let (length, source) = self.sip.recv_from(&mut buffer)?;
        Ok((
            String::from_utf8_lossy(&buffer[..length]).into_owned(),
            source,
        ))
    }

    /// Builds the 200 to `invite`, with the agent's SDP answer.
    fn ok_with_sdp(&self, invite: &str) -> io::Result<String> {
        let rtp = self.rtp.local_addr()?;
        let sdp = format!(
            "v=0\r\no=agent 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n\
             m=audio {} RTP/AVP 0 {EVENT_PAYLOAD_TYPE}\r\na=rtpmap:0 PCMU/8000\r\n\
             a=rtpmap:{EVENT_PAYLOAD_TYPE} telephone-event/8000\r\na=fmtp:{EVENT_PAYLOAD_TYPE} 0-16\r\n",
            rtp.port()
        );
        Ok(format!(
            "{}Content-Type: application/sdp\r\nContent-Length: {}\r\n\r\n{sdp}",
            self.response_head(invite, 200)?,
            sdp.len()
        ))
    }

    fn respond(&self, request: &str, to: SocketAddr, status: u16) -> io::Result<()> {
        let response = format!(
            "{}Content-Length: 0\r\n\r\n",
            self.response_head(request, status)?
        );
        self.sip.send_to(response.as_bytes(), to).map(|_| ())
    }

    /// Status line and headers of a response to `request`: its Vias, From,
    /// Call-ID and CSeq, its To with this phone's tag, and a Contact.
    fn response_head(&self, request: &str, status: u16) -> io::Result<String> {
        let local = self.sip.local_addr()?;
        let reason = if status == 200 { "OK" } else { "Error" };
        let mut head = format!("SIP/2.0 {status} {reason}\r\n");
        for line in request.split("\r\n").take_while(|line| !line.is_empty()) {
            let name = line.split(':').next().unwrap_or_default().trim();
            if name.eq_ignore_ascii_case("Via") || name.eq_ignore_ascii_case("v") {
                head.push_str(line);
                head.push_str("\r\n");
            }
        }
        for name in ["From", "Call-ID", "CSeq"] {
            let value = header(request, name)
                .ok_or_else(|| io::Error::other(format!("request without {name}")))?;
            head.push_str(&format!("{name}: {value}\r\n"));
        }
        let to = header(request, "To").ok_or_else(|| io::Error::other("request without To"))?;
        if to.contains(";tag=") {
            head.push_str(&format!("To: {to}\r\n"));
        } else {
            head.push_str(&format!("To: {to};tag=rawagent\r\n"));
        }
        head.push_str(&format!("Contact: <sip:{}@{local}>\r\n", self.agent));
        Ok(head)
    }
}
