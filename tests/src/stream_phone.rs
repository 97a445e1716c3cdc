//! A SIP phone over TLS or WebSocket, for the transports sipp 3.6.1 as
//! packaged in Debian cannot speak (it is built without TLS and has no
//! WebSocket mode). It registers with digest authentication, and it places
//! and accepts calls. It keeps one connection for everything, so requests
//! from the PBX must come back over the connection the phone registered on.

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use md5::{Digest, Md5};
use rustls::pki_types::ServerName;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::{self, Message, WebSocket};

use crate::pbx::DOMAIN;
use crate::raw_caller::{header, sdp_address};

/// Writes a self-signed certificate for `localhost` and 127.0.0.1 and its
/// key into `dir`. Returns the chain path, the key path and the certificate
/// a client trusts.
pub fn write_certificate(
    dir: &Path,
) -> (String, String, rustls::pki_types::CertificateDer<'static>) {
    let names = vec!["localhost".to_owned(), "127.0.0.1".to_owned()];
    let generated = rcgen::generate_simple_self_signed(names).expect("generate certificate");
    let chain = dir.join("sip-chain.pem");
    let key = dir.join("sip-key.pem");
    std::fs::write(&chain, generated.cert.pem()).expect("write certificate");
    std::fs::write(&key, generated.signing_key.serialize_pem()).expect("write key");
    (
        chain.display().to_string(),
        key.display().to_string(),
        generated.cert.der().clone(),
    )
}

/// Builds a TLS client that trusts `root` alone.
pub fn tls_client(root: rustls::pki_types::CertificateDer<'static>) -> Arc<rustls::ClientConfig> {
    let mut roots = rustls::RootCertStore::empty();
    roots.add(root).expect("trust anchor");
    let provider = Arc::new(ring_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("protocol versions")
        .with_root_certificates(roots)
        .with_no_client_auth();
    Arc::new(config)
}

#[allow(
    deprecated,
    reason = "the PBX uses ring too, so the test builds no second provider"
)]
fn ring_provider() -> rustls::crypto::CryptoProvider {
    rustls::crypto::ring::default_provider()
}

/// One connection to the PBX.
enum Link {
    Tls {
        stream: Box<rustls::StreamOwned<rustls::ClientConnection, TcpStream>>,
        /// Bytes read but not yet framed into a message.
        pending: Vec<u8>,
    },
    /// A connection the PBX opened to this phone, which plays a trunk's
    /// TLS server.
    TlsServer {
        stream: Box<rustls::StreamOwned<rustls::ServerConnection, TcpStream>>,
        pending: Vec<u8>,
    },
    WebSocket(Box<WebSocket<TcpStream>>),
}

impl Link {
    fn send(&mut self, text: &str) -> io::Result<()> {
        match self {
            Link::Tls { stream, .. } => {
                stream.write_all(text.as_bytes())?;
                stream.flush()
            }
            Link::TlsServer { stream, .. } => {
                stream.write_all(text.as_bytes())?;
                stream.flush()
            }
            Link::WebSocket(socket) => socket
                .send(Message::text(text.to_owned()))
                .map_err(io::Error::other),
        }
    }

    /// Returns the next SIP message, or an error at `deadline`.
    fn receive(&mut self, deadline: Instant) -> io::Result<String> {
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(io::Error::new(io::ErrorKind::TimedOut, "no SIP message"));
            }
            match self {
                Link::Tls { stream, pending } => {
                    if let Some(message) = take_framed(pending) {
                        return Ok(message);
                    }
                    stream.sock.set_read_timeout(Some(left))?;
                    read_into(stream.as_mut(), pending)?;
                }
                Link::TlsServer { stream, pending } => {
                    if let Some(message) = take_framed(pending) {
                        return Ok(message);
                    }
                    stream.sock.set_read_timeout(Some(left))?;
                    read_into(stream.as_mut(), pending)?;
                }
                Link::WebSocket(socket) => {
                    socket.get_ref().set_read_timeout(Some(left))?;
                    match socket.read().map_err(io::Error::other)? {
                        Message::Text(text) => return Ok(text.as_str().to_owned()),
                        Message::Binary(bytes) => {
                            return Ok(String::from_utf8_lossy(&bytes).into_owned());
                        }
                        Message::Close(frame) => {
                            return Err(io::Error::other(format!("WebSocket closed: {frame:?}")));
                        }
                        _ => {}
                    }
                }
            }
        }
    }
}

/// Appends what one read of a TLS stream returns to `pending`.
fn read_into(stream: &mut impl Read, pending: &mut Vec<u8>) -> io::Result<()> {
    let mut buffer = [0u8; 8192];
    let length = stream.read(&mut buffer)?;
    if length == 0 {
        return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "TLS closed"));
    }
    pending.extend_from_slice(&buffer[..length]);
    Ok(())
}

/// Takes the first whole message (framed by Content-Length) out of
/// `pending`, after any CRLF keep-alive bytes.
fn take_framed(pending: &mut Vec<u8>) -> Option<String> {
    let skip = pending
        .iter()
        .take_while(|&&byte| byte == b'\r' || byte == b'\n')
        .count();
    pending.drain(..skip);
    let text = String::from_utf8_lossy(pending).into_owned();
    let head_end = text.find("\r\n\r\n")? + 4;
    let length: usize = header(&text[..head_end], "Content-Length")
        .or_else(|| header(&text[..head_end], "l"))
        .and_then(|value| value.parse().ok())
        .unwrap_or(0);
    if pending.len() < head_end + length {
        return None;
    }
    let message: Vec<u8> = pending.drain(..head_end + length).collect();
    Some(String::from_utf8_lossy(&message).into_owned())
}

/// A phone on one TLS or WebSocket connection.
pub struct StreamPhone {
    link: Link,
    /// Via transport token: "TLS" or "WS".
    transport: &'static str,
    /// Host and port written in Via and Contact.
    local: String,
    user: String,
    next_cseq: u32,
    /// Requests the PBX sent that were answered, by method, in order.
    pub received: Vec<String>,
}

impl StreamPhone {
    /// Connects over TLS to `pbx`, checking its certificate for `localhost`.
    pub fn connect_tls(
        pbx: SocketAddr,
        client: Arc<rustls::ClientConfig>,
        user: &str,
    ) -> io::Result<StreamPhone> {
        let tcp = TcpStream::connect_timeout(&pbx, Duration::from_secs(5))?;
        let local = tcp.local_addr()?.to_string();
        let name = ServerName::try_from("localhost").map_err(io::Error::other)?;
        let connection = rustls::ClientConnection::new(client, name).map_err(io::Error::other)?;
        let stream = Box::new(rustls::StreamOwned::new(connection, tcp));
        Ok(StreamPhone::new(
            Link::Tls {
                stream,
                pending: Vec::new(),
            },
            "TLS",
            local,
            user,
        ))
    }

    /// Accepts the next connection on `listener` within `timeout` and runs
    /// the server side of its TLS handshake with `server`, as a trunk's
    /// server does when the PBX connects. A failed handshake, such as one
    /// the PBX aborts because it rejects the certificate, is the error.
    pub fn accept_tls(
        listener: &TcpListener,
        server: Arc<rustls::ServerConfig>,
        user: &str,
        timeout: Duration,
    ) -> io::Result<StreamPhone> {
        let deadline = Instant::now() + timeout;
        listener.set_nonblocking(true)?;
        let mut tcp = loop {
            match listener.accept() {
                Ok((tcp, _)) => break tcp,
                Err(error) if error.kind() == io::ErrorKind::WouldBlock => {
                    if Instant::now() >= deadline {
                        return Err(io::Error::new(io::ErrorKind::TimedOut, "no connection"));
                    }
                    std::thread::sleep(Duration::from_millis(20));
                }
                Err(error) => return Err(error),
            }
        };
        tcp.set_nonblocking(false)?;
        tcp.set_read_timeout(Some(deadline.saturating_duration_since(Instant::now())))?;
        let local = tcp.local_addr()?.to_string();
        let mut connection = rustls::ServerConnection::new(server).map_err(io::Error::other)?;
        while connection.is_handshaking() {
            connection.complete_io(&mut tcp)?;
        }
        let stream = Box::new(rustls::StreamOwned::new(connection, tcp));
        Ok(StreamPhone::new(
            Link::TlsServer {
                stream,
                pending: Vec::new(),
            },
            "TLS",
            local,
            user,
        ))
    }

    /// Upgrades a TCP connection to `pbx` to a WebSocket with the `sip`
    /// subprotocol. The phone names itself by an `.invalid` host, as
    /// browsers do.
    pub fn connect_websocket(pbx: SocketAddr, user: &str) -> io::Result<StreamPhone> {
        let socket = open_websocket(pbx, Some("sip")).map_err(io::Error::other)?;
        let local = format!("{user}-browser.invalid");
        Ok(StreamPhone::new(
            Link::WebSocket(Box::new(socket)),
            "WS",
            local,
            user,
        ))
    }

    fn new(link: Link, transport: &'static str, local: String, user: &str) -> StreamPhone {
        StreamPhone {
            link,
            transport,
            local,
            user: user.to_owned(),
            next_cseq: 1,
            received: Vec::new(),
        }
    }

    fn contact(&self) -> String {
        let transport = self.transport.to_ascii_lowercase();
        format!("<sip:{}@{};transport={transport}>", self.user, self.local)
    }

    fn via(&self, branch: &str) -> String {
        format!(
            "Via: SIP/2.0/{} {};branch=z9hG4bK{branch}\r\n",
            self.transport, self.local
        )
    }

    /// Registers `user` with `password`, answering the digest challenge.
    /// Returns the final status.
    pub fn register(&mut self, password: &str, timeout: Duration) -> io::Result<u16> {
        let deadline = Instant::now() + timeout;
        let call_id = format!("reg-{}-{}", self.user, std::process::id());
        let mut authorization = String::new();
        for attempt in 0..2 {
            let cseq = self.cseq();
            let request = format!(
                "REGISTER sip:{DOMAIN} SIP/2.0\r\n{}Max-Forwards: 70\r\n\
                 From: <sip:{user}@{DOMAIN}>;tag=reg{attempt}\r\nTo: <sip:{user}@{DOMAIN}>\r\n\
                 Call-ID: {call_id}\r\nCSeq: {cseq} REGISTER\r\nContact: {}\r\nExpires: 600\r\n\
                 {authorization}Content-Length: 0\r\n\r\n",
                self.via(&format!("reg{cseq}")),
                self.contact(),
                user = self.user,
            );
            self.link.send(&request)?;
            let response = self.final_response("REGISTER", deadline)?;
            let status = status_of(&response).unwrap_or_default();
            if status != 401 || attempt == 1 {
                return Ok(status);
            }
            let challenge = header(&response, "WWW-Authenticate")
                .ok_or_else(|| io::Error::other("401 without WWW-Authenticate"))?;
            authorization = self.authorization(challenge, password, "REGISTER");
        }
        unreachable!("the loop returns on its second attempt")
    }

    /// Builds an Authorization header answering `challenge` (MD5, qop=auth).
    fn authorization(&self, challenge: &str, password: &str, method: &str) -> String {
        let realm = parameter(challenge, "realm").unwrap_or(DOMAIN.to_owned());
        let nonce = parameter(challenge, "nonce").unwrap_or_default();
        let uri = format!("sip:{DOMAIN}");
        let ha1 = md5_hex(&format!("{}:{realm}:{password}", self.user));
        let ha2 = md5_hex(&format!("{method}:{uri}"));
        let cnonce = "e2e0cnonce";
        let response = md5_hex(&format!("{ha1}:{nonce}:00000001:{cnonce}:auth:{ha2}"));
        format!(
            "Authorization: Digest username=\"{}\", realm=\"{realm}\", nonce=\"{nonce}\", \
             uri=\"{uri}\", response=\"{response}\", algorithm=MD5, qop=auth, nc=00000001, \
             cnonce=\"{cnonce}\"\r\n",
            self.user
        )
    }

    /// Waits for the final response to `method`, skipping provisional ones
    /// and answering requests that arrive meanwhile.
    fn final_response(&mut self, method: &str, deadline: Instant) -> io::Result<String> {
        loop {
            let message = self.link.receive(deadline)?;
            let Some(status) = status_of(&message) else {
                self.respond(&message, 200, None)?;
                continue;
            };
            let cseq = header(&message, "CSeq").unwrap_or_default();
            if status >= 200 && cseq.ends_with(method) {
                return Ok(message);
            }
        }
    }

    /// Sends an INVITE to `number` and waits for the final response,
    /// acknowledging a 2xx. Returns the final status and the dialog's
    /// To tag.
    pub fn invite(
        &mut self,
        number: &str,
        call_id: &str,
        timeout: Duration,
    ) -> io::Result<(u16, String)> {
        let deadline = Instant::now() + timeout;
        let sdp = offer_sdp();
        let cseq = self.cseq();
        let request = format!(
            "INVITE sip:{number}@{DOMAIN} SIP/2.0\r\n{}Max-Forwards: 70\r\n\
             From: <sip:{user}@127.0.0.1>;tag=caller\r\nTo: <sip:{number}@{DOMAIN}>\r\n\
             Call-ID: {call_id}\r\nCSeq: {cseq} INVITE\r\nContact: {}\r\n\
             Content-Type: application/sdp\r\nContent-Length: {}\r\n\r\n{sdp}",
            self.via("invite1"),
            self.contact(),
            sdp.len(),
            user = self.user,
        );
        self.link.send(&request)?;
        let response = self.final_response("INVITE", deadline)?;
        let status = status_of(&response).unwrap_or_default();
        let to = header(&response, "To").unwrap_or_default().to_owned();
        if (200..300).contains(&status) {
            let ack = format!(
                "ACK sip:pbx@{DOMAIN} SIP/2.0\r\n{}Max-Forwards: 70\r\n\
                 From: <sip:{user}@127.0.0.1>;tag=caller\r\nTo: {to}\r\nCall-ID: {call_id}\r\n\
                 CSeq: {cseq} ACK\r\nContent-Length: 0\r\n\r\n",
                self.via("ack1"),
                user = self.user,
            );
            self.link.send(&ack)?;
        }
        Ok((status, to))
    }

    /// Sends BYE in the dialog that `invite` created and returns its status.
    pub fn bye(
        &mut self,
        number: &str,
        call_id: &str,
        to: &str,
        timeout: Duration,
    ) -> io::Result<u16> {
        let deadline = Instant::now() + timeout;
        let cseq = self.cseq();
        let request = format!(
            "BYE sip:pbx@{DOMAIN} SIP/2.0\r\n{}Max-Forwards: 70\r\n\
             From: <sip:{user}@127.0.0.1>;tag=caller\r\nTo: {to}\r\nCall-ID: {call_id}\r\n\
             CSeq: {cseq} BYE\r\nContent-Length: 0\r\n\r\n",
            self.via(&format!("bye{number}")),
            user = self.user,
        );
        self.link.send(&request)?;
        let response = self.final_response("BYE", deadline)?;
        Ok(status_of(&response).unwrap_or_default())
    }

    /// Waits for an INVITE, answers it 200 with SDP and waits for the ACK.
    /// Returns the INVITE as received.
    pub fn answer(&mut self, timeout: Duration) -> io::Result<String> {
        let deadline = Instant::now() + timeout;
        let mut invite = None;
        loop {
            let message = self.link.receive(deadline)?;
            if message.starts_with("SIP/2.0") {
                continue;
            }
            if message.starts_with("INVITE ") {
                let sdp = offer_sdp();
                self.respond(&message, 200, Some(&sdp))?;
                invite = Some(message);
            } else if message.starts_with("ACK ") {
                if let Some(invite) = invite {
                    return Ok(invite);
                }
            } else {
                self.respond(&message, 200, None)?;
            }
        }
    }

    /// Sends BYE in the dialog of `invite`, a call this phone answered as
    /// its UAS, and returns the final status.
    pub fn hang_up(&mut self, invite: &str, timeout: Duration) -> io::Result<u16> {
        let deadline = Instant::now() + timeout;
        let contact = header(invite, "Contact").unwrap_or_default();
        let target = contact
            .trim()
            .trim_start_matches('<')
            .split('>')
            .next()
            .unwrap_or_default()
            .to_owned();
        let cseq = self.cseq();
        let request = format!(
            "BYE {target} SIP/2.0\r\n{}Max-Forwards: 70\r\n\
             From: {};tag=streamphone\r\nTo: {}\r\nCall-ID: {}\r\n\
             CSeq: {cseq} BYE\r\nContent-Length: 0\r\n\r\n",
            self.via(&format!("hangup{cseq}")),
            header(invite, "To").unwrap_or_default(),
            header(invite, "From").unwrap_or_default(),
            header(invite, "Call-ID").unwrap_or_default(),
        );
        self.link.send(&request)?;
        let response = self.final_response("BYE", deadline)?;
        Ok(status_of(&response).unwrap_or_default())
    }

    /// Waits for a request with `method`, answering it and any other
    /// request 200. Returns the request.
    pub fn await_request(&mut self, method: &str, timeout: Duration) -> io::Result<String> {
        let deadline = Instant::now() + timeout;
        loop {
            let message = self.link.receive(deadline)?;
            if message.starts_with("SIP/2.0") || message.starts_with("ACK ") {
                continue;
            }
            self.respond(&message, 200, None)?;
            if message.starts_with(&format!("{method} ")) {
                return Ok(message);
            }
        }
    }

    fn respond(&mut self, request: &str, status: u16, sdp: Option<&str>) -> io::Result<()> {
        let mut response = format!("SIP/2.0 {status} OK\r\n");
        for line in request.split("\r\n").take_while(|line| !line.is_empty()) {
            let name = line.split(':').next().unwrap_or_default().trim();
            if name.eq_ignore_ascii_case("Via") || name.eq_ignore_ascii_case("v") {
                response.push_str(line);
                response.push_str("\r\n");
            }
        }
        for name in ["From", "Call-ID", "CSeq"] {
            let value = header(request, name).unwrap_or_default();
            response.push_str(&format!("{name}: {value}\r\n"));
        }
        let to = header(request, "To").unwrap_or_default();
        if to.contains(";tag=") {
            response.push_str(&format!("To: {to}\r\n"));
        } else {
            response.push_str(&format!("To: {to};tag=streamphone\r\n"));
        }
        response.push_str(&format!("Contact: {}\r\n", self.contact()));
        match sdp {
            Some(sdp) => response.push_str(&format!(
                "Content-Type: application/sdp\r\nContent-Length: {}\r\n\r\n{sdp}",
                sdp.len()
            )),
            None => response.push_str("Content-Length: 0\r\n\r\n"),
        }
        self.received
            .push(request.split(' ').next().unwrap_or_default().to_owned());
        self.link.send(&response)
    }

    fn cseq(&mut self) -> u32 {
        let cseq = self.next_cseq;
        self.next_cseq += 1;
        cseq
    }
}

/// Opens a WebSocket to `pbx`, offering `subprotocol` when given.
pub fn open_websocket(
    pbx: SocketAddr,
    subprotocol: Option<&str>,
) -> Result<WebSocket<TcpStream>, tungstenite::Error> {
    let mut request = format!("ws://{pbx}/").into_client_request()?;
    if let Some(offer) = subprotocol {
        let value = HeaderValue::from_str(offer).map_err(tungstenite::http::Error::from)?;
        request
            .headers_mut()
            .insert("Sec-WebSocket-Protocol", value);
    }
    let tcp = TcpStream::connect_timeout(&pbx, Duration::from_secs(5))?;
    tcp.set_read_timeout(Some(Duration::from_secs(10)))?;
    tungstenite::client::client(request, tcp)
        .map(|(socket, _)| socket)
        .map_err(|error| match error {
            tungstenite::HandshakeError::Failure(error) => error,
            tungstenite::HandshakeError::Interrupted(_) => {
                tungstenite::Error::Io(io::Error::other("WebSocket handshake interrupted"))
            }
        })
}

/// An SDP offer of PCMU on a port nobody listens on: these tests check
/// signalling, and the PBX relays without waiting for RTP.
fn offer_sdp() -> String {
    "v=0\r\no=stream 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n\
     m=audio 9 RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\n"
        .to_owned()
}

fn status_of(text: &str) -> Option<u16> {
    text.strip_prefix("SIP/2.0 ")?.get(..3)?.parse().ok()
}

/// Value of `name` in a digest challenge, without quotes.
pub(crate) fn parameter(challenge: &str, name: &str) -> Option<String> {
    challenge
        .trim_start_matches("Digest")
        .split(',')
        .filter_map(|part| part.trim().split_once('='))
        .find(|(key, _)| key.trim().eq_ignore_ascii_case(name))
        .map(|(_, value)| value.trim().trim_matches('"').to_owned())
}

pub(crate) fn md5_hex(text: &str) -> String {
    hex::encode(Md5::digest(text.as_bytes()))
}

/// Address in the SDP `c=` and `m=` lines of `message`: the PBX's relay.
pub fn relay_address(message: &str) -> Option<SocketAddr> {
    sdp_address(message)
}
