//! Dialog state (RFC 3261 section 12) for the B2BUA's two legs: what the PBX
//! needs to build requests inside a dialog and to recognise the requests
//! and responses that belong to it.

use sip_message::{Method, NameAddr, Request, Response, Uri};

use std::net::{IpAddr, SocketAddr};

use crate::transaction::{Target, TransactionLayer, TransportKind};

/// How the PBX names itself in Via and Contact: one address, and a port
/// that depends on the transport a message goes over.
#[derive(Clone, Debug)]
pub struct LocalContact {
    pub address: IpAddr,
    pub ports: ListenPorts,
}

/// Ports the PBX takes SIP on. UDP and TCP share `udp_tcp`; a transport
/// without a listener is `None`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ListenPorts {
    pub udp_tcp: u16,
    pub tls: Option<u16>,
    pub ws: Option<u16>,
    pub wss: Option<u16>,
}

impl ListenPorts {
    /// Port of `transport`'s listener. A transport without a listener falls
    /// back to the UDP and TCP port. That happens only for a dialog stored by
    /// an earlier run whose listener is no longer configured.
    pub fn port(&self, transport: TransportKind) -> u16 {
        let port = match transport {
            TransportKind::Udp | TransportKind::Tcp => None,
            TransportKind::Tls => self.tls,
            TransportKind::Ws => self.ws,
            TransportKind::Wss => self.wss,
        };
        port.unwrap_or(self.udp_tcp)
    }
}

impl LocalContact {
    /// Top Via value for a new request over `target`'s transport. A TLS
    /// request without a connection goes over one the PBX opens, so its
    /// Via carries `alias` (RFC 5923) to request that the server send its
    /// own requests back over that connection.
    pub fn via(&self, target: &Target) -> String {
        let sent_by = SocketAddr::new(self.address, self.ports.port(target.transport));
        let alias = if target.transport == TransportKind::Tls && target.connection.is_none() {
            ";alias"
        } else {
            ""
        };
        format!(
            "SIP/2.0/{} {sent_by};branch={};rport{alias}",
            target.transport.via_token(),
            TransactionLayer::new_branch()
        )
    }

    /// Contact URI for a message over `transport`. Over UDP and TCP it has no
    /// `transport` parameter, as before TLS and WebSocket existed, so peers
    /// that reach the PBX over UDP keep doing so. Over TLS, WS and WSS the
    /// parameter sends the peer's in-dialog requests back over that
    /// transport (RFC 3261, RFC 7118).
    pub fn contact(&self, transport: TransportKind) -> NameAddr {
        let host = match self.address {
            IpAddr::V4(v4) => sip_message::Host::Ipv4(v4),
            IpAddr::V6(v6) => sip_message::Host::Ipv6(v6),
        };
        let port = self.ports.port(transport);
        let mut uri = Uri::sip(Some("pbx"), host, Some(port));
        if !matches!(transport, TransportKind::Udp | TransportKind::Tcp) {
            let token = transport.via_token().to_ascii_lowercase();
            uri.params.set("transport", Some(&token));
        }
        NameAddr::new(uri)
    }
}

#[derive(Clone, Debug)]
pub struct Dialog {
    pub call_id: String,
    pub local_tag: String,
    pub remote_tag: String,
    /// From of our requests (without tag).
    pub local_uri: NameAddr,
    /// To of our requests (without tag).
    pub remote_uri: NameAddr,
    pub remote_target: Uri,
    pub route_set: Vec<NameAddr>,
    pub local_cseq: u32,
    pub remote_cseq: Option<u32>,
    /// Where requests of this dialog are sent: the peer's transport address
    /// as seen by the PBX, so NATed phones are reached.
    pub target: Target,
}

impl Dialog {
    /// Builds the UAS side from the dialog-creating INVITE and the local tag the
    /// PBX put in its response (section 12.1.1).
    pub fn from_uas(invite: &Request, local_tag: &str, target: Target) -> Option<Dialog> {
        let from = invite.headers.from().ok()?;
        let to = invite.headers.to().ok()?;
        let remote_target = first_contact_uri(&invite.headers).unwrap_or_else(|| from.uri.clone());
        Some(Dialog {
            call_id: invite.headers.call_id()?.to_owned(),
            local_tag: local_tag.to_owned(),
            remote_tag: from.tag().unwrap_or_default().to_owned(),
            local_uri: without_tag(to),
            remote_uri: without_tag(from),
            remote_target,
            route_set: invite.headers.record_routes().unwrap_or_default(),
            local_cseq: 1,
            remote_cseq: invite.headers.cseq().ok().map(|c| c.seq),
            target,
        })
    }

    /// Builds the UAC side from the INVITE the PBX sent and the 2xx (or 1xx with
    /// a tag) that created the dialog (section 12.1.2).
    pub fn from_uac(invite: &Request, response: &Response, target: Target) -> Option<Dialog> {
        let from = invite.headers.from().ok()?;
        let to = response.headers.to().ok()?;
        let mut route_set = response.headers.record_routes().unwrap_or_default();
        route_set.reverse();
        Some(Dialog {
            call_id: invite.headers.call_id()?.to_owned(),
            local_tag: from.tag()?.to_owned(),
            remote_tag: to.tag()?.to_owned(),
            remote_target: first_contact_uri(&response.headers)
                .unwrap_or_else(|| invite.uri.clone()),
            local_uri: without_tag(from),
            remote_uri: without_tag(to),
            route_set,
            local_cseq: invite.headers.cseq().ok()?.seq,
            remote_cseq: None,
            target,
        })
    }

    /// Builds a request inside the dialog with the next local CSeq.
    pub fn new_request(&mut self, method: Method, local: &LocalContact) -> Request {
        self.local_cseq += 1;
        let seq = self.local_cseq;
        self.request_with_cseq(method, seq, local)
    }

    /// Builds the ACK for a 2xx to the INVITE with CSeq `seq` (section
    /// 13.2.2.4).
    pub fn ack(&self, seq: u32, local: &LocalContact) -> Request {
        self.request_with_cseq(Method::Ack, seq, local)
    }

    fn request_with_cseq(&self, method: Method, seq: u32, local: &LocalContact) -> Request {
        let mut request = Request::new(method.clone(), self.remote_target.clone());
        request.headers.push("Via", local.via(&self.target));
        request.headers.push("Max-Forwards", "70");
        for route in &self.route_set {
            request.headers.push("Route", route.to_string());
        }
        let mut from = self.local_uri.clone();
        from.set_tag(&self.local_tag);
        let mut to = self.remote_uri.clone();
        to.set_tag(&self.remote_tag);
        request.headers.push("From", from.to_string());
        request.headers.push("To", to.to_string());
        request.headers.push("Call-ID", self.call_id.clone());
        request.headers.push("CSeq", format!("{seq} {method}"));
        if matches!(method, Method::Invite | Method::Update) {
            request
                .headers
                .push("Contact", local.contact(self.target.transport).to_string());
        }
        request
    }

    /// True when `request` (received) belongs to this dialog: same Call-ID,
    /// its From tag is our remote tag and its To tag our local tag.
    pub fn matches_request(&self, request: &Request) -> bool {
        let tags = request.headers.from().ok().zip(request.headers.to().ok());
        request.headers.call_id() == Some(self.call_id.as_str())
            && tags.is_some_and(|(from, to)| {
                // An RFC 2543 peer sends no From tag; its dialog's remote tag
                // is then empty (RFC 3261 section 12.1.1).
                from.tag().unwrap_or_default() == self.remote_tag
                    && to.tag() == Some(self.local_tag.as_str())
            })
    }
}

/// A dialog as stored with a call in progress, so that after a crash the
/// next start can still send BYE on it. Addresses are kept as text; a
/// stored dialog that no longer parses is dropped.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct StoredDialog {
    pub call_id: String,
    pub local_tag: String,
    pub remote_tag: String,
    pub local_uri: String,
    pub remote_uri: String,
    pub remote_target: String,
    pub route_set: Vec<String>,
    pub local_cseq: u32,
    /// Via token of the transport: "UDP", "TCP", "TLS", "WS" or "WSS".
    pub transport: String,
    pub address: std::net::SocketAddr,
}

/// What a crash leaves to clean up of one call: its established dialogs,
/// which the next start ends with BYE, and the INVITEs still ringing a
/// phone, which it ends with CANCEL.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct StoredLegs {
    pub dialogs: Vec<StoredDialog>,
    #[serde(default)]
    pub ringing: Vec<StoredCancel>,
}

/// The CANCEL of an INVITE the PBX sent (same Request-URI, Call-ID, tags,
/// CSeq number and top Via), as text, with where it goes.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct StoredCancel {
    pub request: String,
    /// Via token of the transport: "UDP", "TCP", "TLS", "WS" or "WSS".
    pub transport: String,
    pub address: std::net::SocketAddr,
}

impl StoredCancel {
    pub fn new(cancel: &Request, target: Target) -> StoredCancel {
        StoredCancel {
            request: String::from_utf8_lossy(&cancel.to_bytes()).into_owned(),
            transport: target.transport.via_token().to_owned(),
            address: target.addr,
        }
    }

    /// The CANCEL and its target; None when the text no longer parses.
    pub fn to_request(&self) -> Option<(Request, Target)> {
        let transport = transport_of(&self.transport)?;
        let sip_message::Message::Request(request) =
            sip_message::Message::parse(self.request.as_bytes()).ok()?
        else {
            return None;
        };
        let target = Target {
            transport,
            addr: self.address,
            connection: None,
        };
        Some((request, target))
    }
}

fn transport_of(token: &str) -> Option<TransportKind> {
    TransportKind::from_token(token)
}

impl Dialog {
    pub fn to_stored(&self) -> StoredDialog {
        StoredDialog {
            call_id: self.call_id.clone(),
            local_tag: self.local_tag.clone(),
            remote_tag: self.remote_tag.clone(),
            local_uri: self.local_uri.to_string(),
            remote_uri: self.remote_uri.to_string(),
            remote_target: self.remote_target.to_string(),
            route_set: self.route_set.iter().map(ToString::to_string).collect(),
            local_cseq: self.local_cseq,
            transport: self.target.transport.via_token().to_owned(),
            address: self.target.addr,
        }
    }
}

impl StoredDialog {
    /// Rebuilds the dialog; None when a stored address does not parse. A
    /// stream connection of the earlier run is gone, so the target has none.
    pub fn to_dialog(&self) -> Option<Dialog> {
        let transport = transport_of(&self.transport)?;
        let route_set = self
            .route_set
            .iter()
            .map(|route| NameAddr::parse(route).ok())
            .collect::<Option<Vec<_>>>()?;
        Some(Dialog {
            call_id: self.call_id.clone(),
            local_tag: self.local_tag.clone(),
            remote_tag: self.remote_tag.clone(),
            local_uri: NameAddr::parse(&self.local_uri).ok()?,
            remote_uri: NameAddr::parse(&self.remote_uri).ok()?,
            remote_target: Uri::parse(&self.remote_target).ok()?,
            route_set,
            local_cseq: self.local_cseq,
            remote_cseq: None,
            target: Target {
                transport,
                addr: self.address,
                connection: None,
            },
        })
    }
}

fn first_contact_uri(headers: &sip_message::Headers) -> Option<Uri> {
    match headers.contacts().ok()? {
        sip_message::ContactList::Addresses(list) => list.into_iter().next().map(|c| c.uri),
        sip_message::ContactList::Star => None,
    }
}

fn without_tag(mut address: NameAddr) -> NameAddr {
    address.params.remove("tag");
    address
}

/// Returns a fresh random tag or Call-ID component.
pub fn random_token() -> String {
    use rand::Rng;
    const ALPHABET: &[u8; 32] = b"abcdefghijkmnpqrstuvwxyz23456789";
    // 16 characters of 5 bits each from one draw, instead of a draw per
    // character, because every response that creates a dialog or a tag
    // takes a token.
    let mut bits: u128 = rand::rng().random();
    let mut token = String::with_capacity(16);
    for _ in 0..16 {
        token.push(char::from(ALPHABET[(bits & 31) as usize]));
        bits >>= 5;
    }
    token
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn random_tokens_cover_alphabet() {
        let tokens: Vec<String> = (0..2000).map(|_| random_token()).collect();
        let distinct: std::collections::HashSet<&String> = tokens.iter().collect();
        assert_eq!(distinct.len(), tokens.len());
        for position in [0, 7, 15] {
            let seen: std::collections::HashSet<u8> =
                tokens.iter().map(|t| t.as_bytes()[position]).collect();
            // Each of the 32 characters misses 2,000 draws with odds of
            // about 1 in 10^27.
            assert_eq!(seen.len(), 32, "position {position}");
        }
        assert!(tokens.iter().all(|t| t.len() == 16));
    }

    fn local() -> LocalContact {
        LocalContact {
            address: "192.0.2.10".parse().unwrap(),
            ports: ListenPorts {
                udp_tcp: 5060,
                tls: Some(5061),
                ws: Some(5066),
                wss: None,
            },
        }
    }

    fn target(transport: TransportKind) -> Target {
        Target {
            transport,
            addr: "192.0.2.20:40000".parse().unwrap(),
            connection: Some(7),
        }
    }

    #[test]
    fn contact_names_transport_and_port() {
        let cases = [
            (TransportKind::Udp, "<sip:pbx@192.0.2.10:5060>"),
            (TransportKind::Tcp, "<sip:pbx@192.0.2.10:5060>"),
            (
                TransportKind::Tls,
                "<sip:pbx@192.0.2.10:5061;transport=tls>",
            ),
            (TransportKind::Ws, "<sip:pbx@192.0.2.10:5066;transport=ws>"),
            // Without a WSS listener, the UDP and TCP port is used.
            (
                TransportKind::Wss,
                "<sip:pbx@192.0.2.10:5060;transport=wss>",
            ),
        ];
        for (transport, expected) in cases {
            assert_eq!(
                local().contact(transport).to_string(),
                expected,
                "{transport:?}"
            );
        }
    }

    #[test]
    fn via_names_transport_and_port() {
        let via = local().via(&target(TransportKind::Tls));
        assert!(
            via.starts_with("SIP/2.0/TLS 192.0.2.10:5061;branch=z9hG4bK"),
            "{via}"
        );
        let via = local().via(&target(TransportKind::Ws));
        assert!(
            via.starts_with("SIP/2.0/WS 192.0.2.10:5066;branch="),
            "{via}"
        );
    }

    #[test]
    fn transport_tokens_round_trip() {
        for token in ["UDP", "TCP", "TLS", "WS", "WSS"] {
            let kind = TransportKind::from_token(token).unwrap();
            assert_eq!(kind.via_token(), token);
        }
        assert_eq!(TransportKind::from_token("tls"), Some(TransportKind::Tls));
        assert_eq!(TransportKind::from_token("SCTP"), None);
    }
}
