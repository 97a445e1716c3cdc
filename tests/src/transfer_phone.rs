//! An agent phone on UDP sockets that does an attended transfer, which a
//! sipp scenario cannot: it keeps two dialogs at once, and its REFER names
//! the PBX's To tag of the second dialog in Replaces. sipp registers its
//! contact port first; then this phone answers the PBX's INVITE on that
//! port, talks with a tone, holds the caller, calls a colleague's extension
//! (answering the 407 challenge), and sends REFER with Replaces.

use std::io;
use std::net::{SocketAddr, UdpSocket};
use std::time::{Duration, Instant};

use crate::pbx::DOMAIN;
use crate::raw_caller::{header, sdp_address};
use crate::rtp_stream::RtpStream;
use crate::stream_phone::{md5_hex, parameter};

/// This phone's own tag in both of its dialogs.
const LOCAL_TAG: &str = "xferagent";

/// One dialog of the phone: enough to send requests inside it.
#[derive(Clone, Debug)]
pub struct PhoneDialog {
    pub call_id: String,
    /// The PBX's tag.
    pub remote_tag: String,
    /// From (as this phone sends it) and To headers, with tags.
    local: String,
    remote: String,
    /// Where in-dialog requests go: the PBX's Contact.
    target: String,
    next_cseq: u32,
}

pub struct TransferPhone {
    sip: UdpSocket,
    rtp: RtpStream,
    agent: String,
    password: String,
    pbx: SocketAddr,
    branch: u32,
    /// The PBX's relay address of the first call, from its INVITE.
    remote_rtp: Option<SocketAddr>,
    /// Requests the PBX sent on either dialog, as received, in order.
    pub requests: Vec<String>,
}

impl TransferPhone {
    /// Binds the SIP socket on 127.0.0.1:`sip_port`, the contact port the
    /// agent registered, and an RTP socket.
    pub fn bind(
        agent: &str,
        password: &str,
        sip_port: u16,
        pbx: SocketAddr,
    ) -> io::Result<TransferPhone> {
        Ok(TransferPhone {
            sip: UdpSocket::bind(("127.0.0.1", sip_port))?,
            rtp: RtpStream::bind(0x7EA5_1001)?,
            agent: agent.to_owned(),
            password: password.to_owned(),
            pbx,
            branch: 0,
            remote_rtp: None,
            requests: Vec::new(),
        })
    }

    /// Waits up to `timeout` for the PBX's INVITE, answers it 200 with
    /// PCMU and waits for the ACK. Returns the dialog.
    pub fn answer(&mut self, timeout: Duration) -> io::Result<PhoneDialog> {
        let deadline = Instant::now() + timeout;
        let mut answered: Option<(String, PhoneDialog)> = None;
        loop {
            let (text, source) = self.receive(deadline)?;
            if text.starts_with("INVITE ") {
                // A retransmitted INVITE gets the same answer again.
                let (response, _) = match &answered {
                    Some(answer) => answer,
                    None => {
                        self.remote_rtp = sdp_address(&text);
                        let dialog = uas_dialog(&text)?;
                        let response = self.response(&text, 200, Some(&self.sdp("sendrecv")?))?;
                        answered.insert((response, dialog))
                    }
                };
                self.sip.send_to(response.as_bytes(), source)?;
            } else if text.starts_with("ACK ") {
                if let Some((_, dialog)) = answered {
                    return Ok(dialog);
                }
            } else if !text.starts_with("SIP/2.0") {
                self.respond(&text, source, 200)?;
            }
        }
    }

    /// Sends a PCMU tone of `frequency` Hz to the first call's relay for
    /// `duration`.
    pub fn talk(&mut self, duration: Duration, frequency: f64) -> io::Result<()> {
        let remote = self
            .remote_rtp
            .ok_or_else(|| io::Error::other("no SDP offer from the PBX"))?;
        self.rtp
            .exchange(remote, duration, Some(frequency))
            .map(|_| ())
    }

    /// Puts the other party of `dialog` on hold with a sendonly re-INVITE
    /// and returns the final status.
    pub fn hold(&mut self, dialog: &mut PhoneDialog, timeout: Duration) -> io::Result<u16> {
        let sdp = self.sdp("sendonly")?;
        let (status, _) = self.transaction(dialog, "INVITE", Some(&sdp), "", timeout)?;
        Ok(status)
    }

    /// Calls `number` through the PBX, answering its 407 challenge with
    /// digest credentials, and waits for the answer. Returns the final
    /// status and, when answered, the dialog.
    pub fn call(
        &mut self,
        number: &str,
        call_id: &str,
        timeout: Duration,
    ) -> io::Result<(u16, Option<PhoneDialog>)> {
        let deadline = Instant::now() + timeout;
        let uri = format!("sip:{number}@{DOMAIN}");
        let sdp = self.sdp("sendrecv")?;
        let mut authorization = String::new();
        for cseq in 1..=2 {
            let branch = self.next_branch();
            let local = self.sip.local_addr()?;
            let invite = format!(
                "INVITE {uri} SIP/2.0\r\nVia: SIP/2.0/UDP {local};branch={branch};rport\r\n\
                 Max-Forwards: 70\r\nFrom: <sip:{agent}@{DOMAIN}>;tag={LOCAL_TAG}\r\n\
                 To: <{uri}>\r\nCall-ID: {call_id}\r\nCSeq: {cseq} INVITE\r\n\
                 Contact: <sip:{agent}@{local}>\r\n{authorization}\
                 Content-Type: application/sdp\r\nContent-Length: {}\r\n\r\n{sdp}",
                sdp.len(),
                agent = self.agent,
            );
            self.sip.send_to(invite.as_bytes(), self.pbx)?;
            let response = self.final_response(call_id, "INVITE", deadline)?;
            let status = status_of(&response).unwrap_or_default();
            let to = header(&response, "To").unwrap_or_default().to_owned();
            // Every final response to an INVITE is acknowledged; a 2xx by a
            // new transaction in the dialog, the others in the INVITE's.
            let ack_uri = match status {
                200..=299 => contact_uri(&response).unwrap_or_else(|| uri.clone()),
                _ => uri.clone(),
            };
            let ack_branch = if (200..300).contains(&status) {
                self.next_branch()
            } else {
                branch
            };
            let ack = format!(
                "ACK {ack_uri} SIP/2.0\r\nVia: SIP/2.0/UDP {local};branch={ack_branch};rport\r\n\
                 Max-Forwards: 70\r\nFrom: <sip:{agent}@{DOMAIN}>;tag={LOCAL_TAG}\r\nTo: {to}\r\n\
                 Call-ID: {call_id}\r\nCSeq: {cseq} ACK\r\nContent-Length: 0\r\n\r\n",
                agent = self.agent,
            );
            self.sip.send_to(ack.as_bytes(), self.pbx)?;
            if status == 407 && cseq == 1 {
                let challenge = header(&response, "Proxy-Authenticate")
                    .ok_or_else(|| io::Error::other("407 without Proxy-Authenticate"))?;
                authorization = self.authorization(challenge, &uri);
                continue;
            }
            if !(200..300).contains(&status) {
                return Ok((status, None));
            }
            let remote_tag = tag_of(&to).ok_or_else(|| io::Error::other("2xx without To tag"))?;
            let dialog = PhoneDialog {
                call_id: call_id.to_owned(),
                remote_tag,
                local: format!("<sip:{}@{DOMAIN}>;tag={LOCAL_TAG}", self.agent),
                remote: to,
                target: ack_uri,
                next_cseq: 3,
            };
            return Ok((status, Some(dialog)));
        }
        Err(io::Error::other("the PBX challenged the credentials twice"))
    }

    /// Sends REFER on `dialog` naming `consultation` in Replaces, the
    /// request that the PBX join the other party of `dialog` with the
    /// party of `consultation`. Returns the REFER's final status.
    pub fn refer_replacing(
        &mut self,
        dialog: &mut PhoneDialog,
        target: &str,
        consultation: &PhoneDialog,
        timeout: Duration,
    ) -> io::Result<u16> {
        let replaces = format!(
            "{}%3Bto-tag%3D{}%3Bfrom-tag%3D{LOCAL_TAG}",
            consultation.call_id.replace('@', "%40"),
            consultation.remote_tag
        );
        let extra = format!(
            "Refer-To: <sip:{target}@{DOMAIN}?Replaces={replaces}>\r\n\
             Referred-By: <sip:{}@{DOMAIN}>\r\n",
            self.agent
        );
        let (status, _) = self.transaction(dialog, "REFER", None, &extra, timeout)?;
        Ok(status)
    }

    /// Answers every request the PBX sends until each Call-ID in `call_ids`
    /// got a BYE, or `timeout` passes. The requests are kept in
    /// [`TransferPhone::requests`].
    pub fn await_byes(&mut self, call_ids: &[&str], timeout: Duration) -> io::Result<()> {
        let deadline = Instant::now() + timeout;
        let mut left: Vec<&str> = call_ids.to_vec();
        while !left.is_empty() {
            let (text, source) = self.receive(deadline)?;
            if text.starts_with("SIP/2.0") || text.starts_with("ACK ") {
                continue;
            }
            self.respond(&text, source, 200)?;
            let call_id = header(&text, "Call-ID").unwrap_or_default();
            if text.starts_with("BYE ") {
                left.retain(|id| *id != call_id);
            }
            self.requests.push(text);
        }
        Ok(())
    }

    /// Sends `method` in `dialog` and waits for its final response,
    /// answering the PBX's requests meanwhile. A 2xx to INVITE is ACKed.
    fn transaction(
        &mut self,
        dialog: &mut PhoneDialog,
        method: &str,
        sdp: Option<&str>,
        extra: &str,
        timeout: Duration,
    ) -> io::Result<(u16, String)> {
        let deadline = Instant::now() + timeout;
        let cseq = dialog.next_cseq;
        dialog.next_cseq += 1;
        let local = self.sip.local_addr()?;
        let branch = self.next_branch();

        let body = match sdp {
            Some(sdp) => format!(
                "Content-Type: application/sdp\r\nContent-Length: {}\r\n\r\n{sdp}",
                sdp.len()
            ),
            None => "Content-Length: 0\r\n\r\n".to_owned(),
        };
        let request = format!(
            "{method} {} SIP/2.0\r\nVia: SIP/2.0/UDP {local};branch={branch};rport\r\n\
             Max-Forwards: 70\r\nFrom: {}\r\nTo: {}\r\nCall-ID: {}\r\nCSeq: {cseq} {method}\r\n\
             Contact: <sip:{}@{local}>\r\n{extra}{body}",
            dialog.target, dialog.local, dialog.remote, dialog.call_id, self.agent,
        );
        self.sip.send_to(request.as_bytes(), self.pbx)?;

        let response = self.final_response(&dialog.call_id, method, deadline)?;
        let status = status_of(&response).unwrap_or_default();
        if method == "INVITE" && (200..300).contains(&status) {
            let ack = format!(
                "ACK {} SIP/2.0\r\nVia: SIP/2.0/UDP {local};branch={};rport\r\n\
                 Max-Forwards: 70\r\nFrom: {}\r\nTo: {}\r\nCall-ID: {}\r\nCSeq: {cseq} ACK\r\n\
                 Content-Length: 0\r\n\r\n",
                dialog.target,
                self.next_branch(),
                dialog.local,
                dialog.remote,
                dialog.call_id,
            );
            self.sip.send_to(ack.as_bytes(), self.pbx)?;
        }
        Ok((status, response))
    }

    /// Waits for the final response to `method` on `call_id`, answering
    /// and keeping the requests that arrive meanwhile.
    fn final_response(
        &mut self,
        call_id: &str,
        method: &str,
        deadline: Instant,
    ) -> io::Result<String> {
        loop {
            let (text, source) = self.receive(deadline)?;
            let Some(status) = status_of(&text) else {
                if !text.starts_with("ACK ") {
                    self.respond(&text, source, 200)?;
                    self.requests.push(text);
                }
                continue;
            };
            let cseq = header(&text, "CSeq").unwrap_or_default();
            let same_call = header(&text, "Call-ID") == Some(call_id);
            if status >= 200 && same_call && cseq.ends_with(method) {
                return Ok(text);
            }
        }
    }

    /// Builds a Proxy-Authorization header answering `challenge` for an
    /// INVITE to `uri` (MD5, with qop=auth when the PBX asks for it).
    fn authorization(&self, challenge: &str, uri: &str) -> String {
        let realm = parameter(challenge, "realm").unwrap_or(DOMAIN.to_owned());
        let nonce = parameter(challenge, "nonce").unwrap_or_default();
        let ha1 = md5_hex(&format!("{}:{realm}:{}", self.agent, self.password));
        let ha2 = md5_hex(&format!("INVITE:{uri}"));
        let cnonce = "e2e0xfer";
        let (response, qop) = match parameter(challenge, "qop") {
            Some(_) => (
                md5_hex(&format!("{ha1}:{nonce}:00000001:{cnonce}:auth:{ha2}")),
                format!(", qop=auth, nc=00000001, cnonce=\"{cnonce}\""),
            ),
            None => (md5_hex(&format!("{ha1}:{nonce}:{ha2}")), String::new()),
        };
        format!(
            "Proxy-Authorization: Digest username=\"{}\", realm=\"{realm}\", nonce=\"{nonce}\", \
             uri=\"{uri}\", response=\"{response}\", algorithm=MD5{qop}\r\n",
            self.agent
        )
    }

    fn sdp(&self, direction: &str) -> io::Result<String> {
        let rtp = self.rtp.local_addr()?;
        Ok(format!(
            "v=0\r\no=xfer 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n\
             m=audio {} RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\na={direction}\r\n",
            rtp.port()
        ))
    }

    fn next_branch(&mut self) -> String {
        self.branch += 1;
        format!("z9hG4bK-xfer-{}-{}", std::process::id(), self.branch)
    }

    fn receive(&self, deadline: Instant) -> io::Result<(String, SocketAddr)> {
        let mut buffer = [0u8; 8192];
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(io::Error::new(io::ErrorKind::TimedOut, "no SIP message"));
        }
        self.sip.set_read_timeout(Some(left))?;
        let (length, source) = self.sip.recv_from(&mut buffer)?;
        Ok((
            String::from_utf8_lossy(&buffer[..length]).into_owned(),
            source,
        ))
    }

    fn respond(&self, request: &str, to: SocketAddr, status: u16) -> io::Result<()> {
        let response = self.response(request, status, None)?;
        self.sip.send_to(response.as_bytes(), to).map(|_| ())
    }

    /// Builds a response to `request`: its Vias, From, Call-ID and CSeq,
    /// its To with this phone's tag, a Contact, and `sdp` as the body.
    fn response(&self, request: &str, status: u16, sdp: Option<&str>) -> io::Result<String> {
        let local = self.sip.local_addr()?;
        let mut head = format!("SIP/2.0 {status} OK\r\n");
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
            head.push_str(&format!("To: {to};tag={LOCAL_TAG}\r\n"));
        }
        head.push_str(&format!("Contact: <sip:{}@{local}>\r\n", self.agent));
        match sdp {
            Some(sdp) => head.push_str(&format!(
                "Content-Type: application/sdp\r\nContent-Length: {}\r\n\r\n{sdp}",
                sdp.len()
            )),
            None => head.push_str("Content-Length: 0\r\n\r\n"),
        }
        Ok(head)
    }
}

/// Builds the dialog that answering `invite` creates on the phone's side.
fn uas_dialog(invite: &str) -> io::Result<PhoneDialog> {
    let missing = |name: &str| io::Error::other(format!("INVITE without {name}"));
    let from = header(invite, "From").ok_or_else(|| missing("From"))?;
    let to = header(invite, "To").ok_or_else(|| missing("To"))?;
    let call_id = header(invite, "Call-ID").ok_or_else(|| missing("Call-ID"))?;
    let target = contact_uri(invite).ok_or_else(|| missing("Contact"))?;
    Ok(PhoneDialog {
        call_id: call_id.to_owned(),
        remote_tag: tag_of(from).ok_or_else(|| missing("From tag"))?,
        local: format!("{to};tag={LOCAL_TAG}"),
        remote: from.to_owned(),
        target,
        next_cseq: 1,
    })
}

/// Returns the URI in the Contact header of `message`.
fn contact_uri(message: &str) -> Option<String> {
    let contact = header(message, "Contact")?;
    let start = contact.find('<')? + 1;
    let end = contact[start..].find('>')? + start;
    Some(contact[start..end].to_owned())
}

fn tag_of(name_addr: &str) -> Option<String> {
    let tag = name_addr.split(";tag=").nth(1)?;
    Some(tag.split(';').next().unwrap_or(tag).to_owned())
}

fn status_of(text: &str) -> Option<u16> {
    text.strip_prefix("SIP/2.0 ")?.get(..3)?.parse().ok()
}
