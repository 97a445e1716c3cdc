//! Request checks a UAS makes before acting on a request (RFC 3261 section
//! 8.2, with the verdicts of the RFC 4475 torture tests), sans-IO.
//!
//! [`check_request`] runs after the transaction layer accepted the request,
//! so Via, Call-ID, CSeq, From and To are present and parse, and the CSeq
//! method equals the request method (the layer responds 400 otherwise). The
//! checks run in the order of section 8.2, and the first failure wins:
//!
//! 1. malformed values (400): a single-valued header repeated, Max-Forwards
//!    or Expires out of range, a Contact that does not parse, a body
//!    without Content-Type;
//! 2. the Request-URI scheme (416);
//! 3. Max-Forwards 0 on a request the PBX would pass to another leg (483);
//! 4. Require with option tags other than those in [`SUPPORTED_TAGS`] (420);
//! 5. the body of INVITE, UPDATE and PRACK: Content-Type and
//!    Content-Encoding (415), and an Accept that rules out SDP (406);
//! 6. REGISTER whose To is not a SIP or SIPS URI (400).
//!
//! ACK gets no response (RFC 3261 section 17), so it is never rejected here.

use sip_message::{Method, Request, Response, Scheme};

/// Headers that RFC 3261 section 7.3 allows once per message.
const SINGLE_VALUED: [&str; 8] = [
    "Call-ID",
    "CSeq",
    "From",
    "To",
    "Max-Forwards",
    "Content-Type",
    "Content-Length",
    "Expires",
];

/// The only body type the PBX reads.
const SDP: &str = "application/sdp";

/// Agent name in the Warning header of a 406 (a `pseudonym`, RFC 3261
/// section 20.43).
const WARN_AGENT: &str = "pbx";

/// Reason a request is rejected, with the offending values for logs.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Violation {
    #[error("{count} {header} headers where one is allowed")]
    RepeatedHeader { header: &'static str, count: usize },
    #[error("invalid {header} value {value:?}")]
    InvalidNumber { header: &'static str, value: String },
    #[error("invalid Contact: {reason}")]
    InvalidContact { reason: String },
    #[error("body of {length} bytes without Content-Type")]
    MissingContentType { length: usize },
    #[error("unsupported Request-URI scheme {scheme:?}")]
    UnsupportedScheme { scheme: String },
    #[error("Max-Forwards 0 on a request that would be forwarded")]
    TooManyHops,
    #[error("unsupported extensions {tags:?} in Require")]
    UnsupportedExtensions { tags: Vec<String> },
    #[error("unsupported Content-Type {content_type:?}")]
    UnsupportedMediaType { content_type: String },
    #[error("unsupported Content-Encoding {encodings:?}")]
    UnsupportedEncoding { encodings: Vec<String> },
    #[error("Accept {accept:?} excludes application/sdp")]
    NotAcceptable { accept: String },
    #[error("REGISTER To URI scheme {scheme:?} is not sip or sips")]
    InvalidAddressOfRecord { scheme: String },
}

/// Rejection of a request: status, reason phrase, and the headers RFC 3261
/// requires with that status (Unsupported, Accept, ...).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rejection {
    pub status: u16,
    pub reason: &'static str,
    pub headers: Vec<(&'static str, String)>,
    pub violation: Violation,
}

impl Rejection {
    fn new(status: u16, reason: &'static str, violation: Violation) -> Rejection {
        Rejection {
            status,
            reason,
            headers: Vec::new(),
            violation,
        }
    }

    fn with_header(mut self, name: &'static str, value: impl Into<String>) -> Rejection {
        self.headers.push((name, value.into()));
        self
    }

    /// Builds the response to `request` (RFC 3261 section 8.2.6) with the
    /// extra headers. The caller adds the To tag.
    pub fn response(&self, request: &Request) -> Response {
        let mut response = Response::for_request(request, self.status, Some(self.reason));
        for (name, value) in &self.headers {
            response.headers.push(name, value.as_str());
        }
        response
    }
}

/// Returns the rejection for `request`, or None when the PBX may act on it.
pub fn check_request(request: &Request) -> Option<Rejection> {
    if request.method == Method::Ack {
        return None;
    }
    check_syntax(request)
        .or_else(|| check_scheme(request))
        .or_else(|| check_hops(request))
        .or_else(|| check_require(request))
        .or_else(|| check_body(request))
        .or_else(|| check_accept(request))
        .or_else(|| check_address_of_record(request))
}

fn check_syntax(request: &Request) -> Option<Rejection> {
    let headers = &request.headers;
    // One pass over the headers rather than one per name, because every
    // request comes through here.
    let mut counts = [0usize; SINGLE_VALUED.len()];
    for header in headers.iter() {
        let name = header.name();
        if let Some(index) = SINGLE_VALUED
            .iter()
            .position(|single| single.len() == name.len() && single.eq_ignore_ascii_case(name))
        {
            counts[index] += 1;
        }
    }
    if let Some((header, &count)) = SINGLE_VALUED.iter().zip(&counts).find(|(_, c)| **c > 1) {
        let violation = Violation::RepeatedHeader { header, count };
        return Some(Rejection::new(400, "Repeated Header", violation));
    }
    if headers.max_forwards().is_err() {
        return Some(invalid_number("Max-Forwards", request));
    }
    if headers.expires().is_err() {
        return Some(invalid_number("Expires", request));
    }
    if let Err(error) = headers.contacts_ref() {
        let violation = Violation::InvalidContact {
            reason: error.to_string(),
        };
        return Some(Rejection::new(400, "Bad Contact", violation));
    }
    if !request.body.is_empty() && !headers.contains("Content-Type") {
        let length = request.body.len();
        let violation = Violation::MissingContentType { length };
        return Some(Rejection::new(400, "Missing Content-Type", violation));
    }
    None
}

fn invalid_number(header: &'static str, request: &Request) -> Rejection {
    let value = request.headers.get(header).unwrap_or_default().to_owned();
    let reason = match header {
        "Max-Forwards" => "Bad Max-Forwards",
        _ => "Bad Expires",
    };
    Rejection::new(400, reason, Violation::InvalidNumber { header, value })
}

/// Rejects any scheme but sip, sips and tel with 416. A tel URI carries the
/// dialed number as its user part, which is all the B2BUA routes on.
fn check_scheme(request: &Request) -> Option<Rejection> {
    let Scheme::Other(scheme) = &request.uri.scheme else {
        return None;
    };
    let violation = Violation::UnsupportedScheme {
        scheme: scheme.clone(),
    };
    Some(Rejection::new(416, "Unsupported URI Scheme", violation))
}

/// Rejects with 483 a request that would leave on another leg with no hop
/// left. A B2BUA that gives the requests it sends a fresh Max-Forwards can
/// keep a routing loop going forever (RFC 7332), so the PBX counts hops like
/// a proxy (RFC 3261 section 16.3). Requests the PBX responds to itself
/// (REGISTER, out-of-dialog OPTIONS, BYE, CANCEL) are handled normally.
fn check_hops(request: &Request) -> Option<Rejection> {
    if request.headers.max_forwards().ok().flatten() != Some(0) || !is_forwarded(request) {
        return None;
    }
    Some(Rejection::new(483, "Too Many Hops", Violation::TooManyHops))
}

/// Returns true when the B2BUA sends a request to another leg for
/// `request`: a new INVITE rings agents, and in-dialog requests other than
/// BYE are relayed.
fn is_forwarded(request: &Request) -> bool {
    match request.method {
        Method::Invite => true,
        Method::Bye | Method::Cancel | Method::Ack => false,
        _ => has_to_tag(request),
    }
}

fn has_to_tag(request: &Request) -> bool {
    request
        .headers
        .to_ref()
        .ok()
        .is_some_and(|to| to.tag().is_some())
}

/// Option tags of SIP extensions the PBX implements: reliable provisional
/// responses (RFC 3262) and session timers (RFC 4028).
pub const SUPPORTED_TAGS: [&str; 2] = ["100rel", "timer"];

/// Rejects with 420, listing every tag of Require that is not in
/// [`SUPPORTED_TAGS`]. CANCEL must not carry Require (RFC 3261 section
/// 8.2.2.3), so it is not checked.
fn check_require(request: &Request) -> Option<Rejection> {
    if request.method == Method::Cancel {
        return None;
    }
    let mut tags: Vec<String> = Vec::new();
    for tag in list_elements(&request.headers, "Require") {
        let supported = SUPPORTED_TAGS
            .iter()
            .any(|known| known.eq_ignore_ascii_case(tag));
        if !supported && !tags.iter().any(|known| known.eq_ignore_ascii_case(tag)) {
            tags.push(tag.to_owned());
        }
    }
    if tags.is_empty() {
        return None;
    }
    let unsupported = tags.join(", ");
    let violation = Violation::UnsupportedExtensions { tags };
    Some(Rejection::new(420, "Bad Extension", violation).with_header("Unsupported", unsupported))
}

/// Methods whose body the B2BUA parses: it anchors the SDP offer or answer.
fn reads_body(request: &Request) -> bool {
    matches!(
        request.method,
        Method::Invite | Method::Update | Method::Prack
    )
}

/// Rejects with 415 a body the PBX cannot read (RFC 3261 section 8.2.3):
/// any type but application/sdp, multipart included, or an encoding other
/// than identity.
fn check_body(request: &Request) -> Option<Rejection> {
    if !reads_body(request) || request.body.is_empty() {
        return None;
    }
    let content_type = request.headers.content_type().unwrap_or_default();
    if !media_type(content_type).eq_ignore_ascii_case(SDP) {
        let violation = Violation::UnsupportedMediaType {
            content_type: content_type.to_owned(),
        };
        let rejection = Rejection::new(415, "Unsupported Media Type", violation);
        return Some(rejection.with_header("Accept", SDP));
    }
    let encodings: Vec<String> = list_elements(&request.headers, "Content-Encoding")
        .filter(|coding| !coding.eq_ignore_ascii_case("identity"))
        .map(str::to_owned)
        .collect();
    if encodings.is_empty() {
        return None;
    }
    let violation = Violation::UnsupportedEncoding { encodings };
    let rejection = Rejection::new(415, "Unsupported Media Type", violation);
    Some(rejection.with_header("Accept-Encoding", "identity"))
}

/// Rejects with 406 when Accept rules out SDP for the response body of an INVITE,
/// or of an UPDATE carrying an offer. An empty Accept means no format is
/// acceptable (RFC 3261 section 20.1); RFC 4475 section 3.3.15 prefers 406
/// with a Warning over 400 here.
fn check_accept(request: &Request) -> Option<Rejection> {
    let answers_with_sdp = match request.method {
        Method::Invite => true,
        Method::Update => !request.body.is_empty(),
        _ => false,
    };
    if !answers_with_sdp || !request.headers.contains("Accept") {
        return None;
    }
    if list_elements(&request.headers, "Accept").any(accepts_sdp) {
        return None;
    }
    let accept: Vec<&str> = request.headers.get_all("Accept").collect();
    let violation = Violation::NotAcceptable {
        accept: accept.join(", "),
    };
    let warning = format!("399 {WARN_AGENT} \"Only {SDP} bodies are available\"");
    Some(Rejection::new(406, "Not Acceptable", violation).with_header("Warning", warning))
}

/// Returns true when one Accept element (`type/subtype;q=...`) covers
/// application/sdp with a non-zero quality.
fn accepts_sdp(range: &str) -> bool {
    let mut parts = range.split(';');
    let media = parts.next().unwrap_or_default().trim();
    let covers = ["*/*", "application/*", SDP]
        .iter()
        .any(|candidate| media.eq_ignore_ascii_case(candidate));
    let zero_quality = parts.any(|param| {
        param.split_once('=').is_some_and(|(name, value)| {
            name.trim().eq_ignore_ascii_case("q")
                && value.trim().parse::<f32>().is_ok_and(|q| q <= 0.0)
        })
    });
    covers && !zero_quality
}

/// Rejects with 400 a REGISTER whose address-of-record is not a SIP or SIPS
/// URI, as RFC 4475 section 3.3.4 expects of a registrar.
fn check_address_of_record(request: &Request) -> Option<Rejection> {
    if request.method != Method::Register {
        return None;
    }
    let to = request.headers.to_ref().ok()?;
    if matches!(to.uri.scheme, Scheme::Sip | Scheme::Sips) {
        return None;
    }
    let violation = Violation::InvalidAddressOfRecord {
        scheme: to.uri.scheme.as_str().to_owned(),
    };
    Some(Rejection::new(400, "Invalid Address-of-Record", violation))
}

/// Returns the `type/subtype` of a Content-Type value, without parameters.
fn media_type(content_type: &str) -> &str {
    content_type.split(';').next().unwrap_or_default().trim()
}

/// Non-empty comma-separated elements of every `name` header, trimmed.
fn list_elements<'a>(
    headers: &'a sip_message::Headers,
    name: &'a str,
) -> impl Iterator<Item = &'a str> {
    headers
        .get_all(name)
        .flat_map(|value| value.split(','))
        .map(str::trim)
        .filter(|element| !element.is_empty())
}

#[cfg(test)]
mod tests {
    use sip_message::Message;

    use super::*;

    /// Builds an INVITE from a trunk with `extra` header lines and `body`,
    /// and the Content-Length of that body.
    fn invite(extra: &str, body: &str) -> String {
        request("INVITE sip:5000@pbx.local", "INVITE", extra, body)
    }

    fn request(start: &str, method: &str, extra: &str, body: &str) -> String {
        format!(
            "{start} SIP/2.0\r\n\
             Via: SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bKpolicy1\r\n\
             Max-Forwards: 70\r\n\
             From: <sip:0612345678@192.0.2.1>;tag=a1\r\n\
             To: <sip:5000@pbx.local>\r\n\
             Call-ID: policy-1@192.0.2.1\r\n\
             CSeq: 1 {method}\r\n\
             {extra}Content-Length: {}\r\n\r\n{body}",
            body.len()
        )
    }

    const OFFER: &str = "v=0\r\no=- 1 1 IN IP4 192.0.2.1\r\ns=-\r\nc=IN IP4 192.0.2.1\r\n\
                         t=0 0\r\nm=audio 4000 RTP/AVP 0\r\n";

    fn check(wire: &str) -> Option<Rejection> {
        let Message::Request(request) = Message::parse(wire.as_bytes()).expect("message parses")
        else {
            panic!("expected a request: {wire}")
        };
        check_request(&request)
    }

    fn status(wire: &str) -> Option<u16> {
        check(wire).map(|rejection| rejection.status)
    }

    fn header<'a>(rejection: &'a Rejection, name: &str) -> Option<&'a str> {
        rejection
            .headers
            .iter()
            .find(|(header, _)| *header == name)
            .map(|(_, value)| value.as_str())
    }

    #[test]
    fn plain_invite_with_sdp_passes() {
        let wire = invite(
            "Content-Type: application/sdp\r\nAccept: application/sdp\r\n",
            OFFER,
        );
        assert_eq!(check(&wire), None);
        let wire = invite("Content-Type: Application/SDP; charset=utf-8\r\n", OFFER);
        assert_eq!(check(&wire), None);
        assert_eq!(check(&invite("", "")), None);
    }

    #[test]
    fn repeated_single_valued_header_gets_400() {
        let wire = invite("i: policy-2@192.0.2.1\r\n", "");
        let rejection = check(&wire).expect("rejection");
        assert_eq!(rejection.status, 400);
        assert_eq!(
            rejection.violation,
            Violation::RepeatedHeader {
                header: "Call-ID",
                count: 2
            }
        );
        assert_eq!(status(&invite("Max-Forwards: 70\r\n", "")), Some(400));
        assert_eq!(
            status(&invite("Expires: 60\r\nExpires: 60\r\n", "")),
            Some(400)
        );
    }

    #[test]
    fn out_of_range_numbers_get_400() {
        let wire = request("INVITE sip:5000@pbx.local", "INVITE", "", "")
            .replace("Max-Forwards: 70", "Max-Forwards: 300");
        let rejection = check(&wire).expect("rejection");
        assert_eq!(rejection.status, 400);
        assert_eq!(rejection.reason, "Bad Max-Forwards");
        let rejection = check(&invite("Expires: 4294967296\r\n", "")).expect("rejection");
        assert_eq!(rejection.status, 400);
        assert_eq!(
            rejection.violation,
            Violation::InvalidNumber {
                header: "Expires",
                value: "4294967296".to_owned()
            }
        );
        assert_eq!(check(&invite("Expires: 4294967295\r\n", "")), None);
    }

    #[test]
    fn malformed_contact_gets_400() {
        let wire = request(
            "REGISTER sip:pbx.local",
            "REGISTER",
            "Contact: sip:1001@192.0.2.1?Route=%3Csip:sip.example.com%3E\r\n",
            "",
        );
        let rejection = check(&wire).expect("rejection");
        assert_eq!(rejection.status, 400);
        assert_eq!(rejection.reason, "Bad Contact");
        let wire = request(
            "REGISTER sip:pbx.local",
            "REGISTER",
            "Contact: <sip:1001@192.0.2.1?Route=%3Csip:sip.example.com%3E>\r\n",
            "",
        );
        assert_eq!(check(&wire), None);
    }

    #[test]
    fn body_without_content_type_gets_400() {
        let rejection = check(&invite("", OFFER)).expect("rejection");
        assert_eq!(rejection.status, 400);
        assert_eq!(rejection.reason, "Missing Content-Type");
    }

    #[test]
    fn unknown_uri_scheme_gets_416() {
        let wire = request(
            "OPTIONS nobodyKnowsThisScheme:totallyopaquecontent",
            "OPTIONS",
            "",
            "",
        );
        let rejection = check(&wire).expect("rejection");
        assert_eq!(rejection.status, 416);
        assert_eq!(rejection.reason, "Unsupported URI Scheme");
        let wire = request("INVITE tel:+15550100", "INVITE", "", "");
        assert_eq!(check(&wire), None);
        let wire = request("INVITE sips:5000@pbx.local", "INVITE", "", "");
        assert_eq!(check(&wire), None);
    }

    #[test]
    fn zero_max_forwards_on_forwarded_request_gets_483() {
        let zero = |wire: String| wire.replace("Max-Forwards: 70", "Max-Forwards: 0");
        assert_eq!(status(&zero(invite("", ""))), Some(483));
        let in_dialog = |method: &str| {
            zero(
                request("INFO sip:pbx@192.0.2.9", method, "", "")
                    .replace("INFO sip", &format!("{method} sip"))
                    .replace(
                        "To: <sip:5000@pbx.local>",
                        "To: <sip:5000@pbx.local>;tag=b2",
                    ),
            )
        };
        assert_eq!(status(&in_dialog("INFO")), Some(483));
        assert_eq!(status(&in_dialog("OPTIONS")), Some(483));
        assert_eq!(status(&in_dialog("BYE")), None);
        let options = zero(request("OPTIONS sip:pbx.local", "OPTIONS", "", ""));
        assert_eq!(status(&options), None);
        let register = zero(request("REGISTER sip:pbx.local", "REGISTER", "", ""));
        assert_eq!(status(&register), None);
        let cancel = zero(request("CANCEL sip:5000@pbx.local", "CANCEL", "", ""));
        assert_eq!(status(&cancel), None);
    }

    #[test]
    fn require_gets_420_with_unsupported() {
        let wire = invite("Require: 100rel, replaces\r\nSupported: timer\r\n", "");
        let rejection = check(&wire).expect("rejection");
        assert_eq!(rejection.status, 420);
        assert_eq!(rejection.reason, "Bad Extension");
        assert_eq!(header(&rejection, "Unsupported"), Some("replaces"));
        assert_eq!(check(&invite("Require: 100rel, timer\r\n", "")), None);

        let wire = request(
            "OPTIONS sip:pbx.local",
            "OPTIONS",
            "Require: foo, bar\r\nRequire: foo\r\nProxy-Require: baz\r\n",
            "",
        );
        let rejection = check(&wire).expect("rejection");
        assert_eq!(header(&rejection, "Unsupported"), Some("foo, bar"));
        let wire = request(
            "OPTIONS sip:pbx.local",
            "OPTIONS",
            "Proxy-Require: baz\r\n",
            "",
        );
        assert_eq!(check(&wire), None);
        let wire = request(
            "CANCEL sip:5000@pbx.local",
            "CANCEL",
            "Require: foo\r\n",
            "",
        );
        assert_eq!(check(&wire), None);
    }

    #[test]
    fn foreign_body_type_gets_415_with_accept() {
        let wire = invite("Content-Type: application/unknownformat\r\n", "<audio/>");
        let rejection = check(&wire).expect("rejection");
        assert_eq!(rejection.status, 415);
        assert_eq!(header(&rejection, "Accept"), Some("application/sdp"));
        let multipart = "Content-Type: multipart/mixed;boundary=b1\r\n";
        assert_eq!(status(&invite(multipart, "--b1--\r\n")), Some(415));
        let update = request(
            "UPDATE sip:pbx@192.0.2.9",
            "UPDATE",
            "Content-Type: text/plain\r\n",
            "hi",
        );
        assert_eq!(status(&update), Some(415));
        // The B2BUA relays INFO bodies without reading them.
        let info = request(
            "INFO sip:pbx@192.0.2.9",
            "INFO",
            "Content-Type: text/plain\r\n",
            "hi",
        );
        assert_eq!(status(&info), None);
    }

    #[test]
    fn content_encoding_gets_415_with_accept_encoding() {
        let wire = invite(
            "Content-Type: application/sdp\r\nContent-Encoding: gzip\r\n",
            OFFER,
        );
        let rejection = check(&wire).expect("rejection");
        assert_eq!(rejection.status, 415);
        assert_eq!(header(&rejection, "Accept-Encoding"), Some("identity"));
        assert_eq!(
            rejection.violation,
            Violation::UnsupportedEncoding {
                encodings: vec!["gzip".to_owned()]
            }
        );
        let identity = "Content-Type: application/sdp\r\ne: identity\r\n";
        assert_eq!(check(&invite(identity, OFFER)), None);
    }

    #[test]
    fn accept_without_sdp_gets_406() {
        let sdp = "Content-Type: application/sdp\r\n";
        let rejection = check(&invite(
            &format!("{sdp}Accept: text/nobodyKnowsThis\r\n"),
            OFFER,
        ))
        .expect("rejection");
        assert_eq!(rejection.status, 406);
        assert!(header(&rejection, "Warning").is_some_and(|w| w.starts_with("399 ")));
        assert_eq!(status(&invite("Accept: \r\n", "")), Some(406));
        let zero = format!("{sdp}Accept: application/sdp;q=0\r\n");
        assert_eq!(status(&invite(&zero, OFFER)), Some(406));
        let wildcard = format!("{sdp}Accept: text/html, application/*;q=0.5\r\n");
        assert_eq!(status(&invite(&wildcard, OFFER)), None);
        let options = request(
            "OPTIONS sip:pbx.local",
            "OPTIONS",
            "Accept: text/html\r\n",
            "",
        );
        assert_eq!(status(&options), None);
    }

    #[test]
    fn non_sip_address_of_record_gets_400() {
        let wire = request("REGISTER sip:pbx.local", "REGISTER", "", "")
            .replace("To: <sip:5000@pbx.local>", "To: isbn:2983792873");
        let rejection = check(&wire).expect("rejection");
        assert_eq!(rejection.status, 400);
        assert_eq!(
            rejection.violation,
            Violation::InvalidAddressOfRecord {
                scheme: "isbn".to_owned()
            }
        );
        assert_eq!(
            status(&request("REGISTER sip:pbx.local", "REGISTER", "", "")),
            None
        );
    }

    #[test]
    fn checks_apply_in_rfc_order() {
        // Scheme before Require, Require before the body type.
        let wire = request(
            "INVITE urn:service:sos",
            "INVITE",
            "Require: foo\r\nContent-Type: text/plain\r\n",
            "hi",
        );
        assert_eq!(status(&wire), Some(416));
        let wire = invite("Require: foo\r\nContent-Type: text/plain\r\n", "hi");
        assert_eq!(status(&wire), Some(420));
    }

    #[test]
    fn ack_is_never_rejected() {
        let wire = request(
            "ACK sip:5000@pbx.local",
            "ACK",
            "Require: foo\r\nContent-Type: text/plain\r\nCall-ID: twice\r\n",
            "hi",
        );
        assert_eq!(check(&wire), None);
    }

    #[test]
    fn response_carries_extra_headers() {
        let wire = invite("Require: replaces\r\n", "");
        let Message::Request(request) = Message::parse(wire.as_bytes()).unwrap() else {
            panic!("expected a request")
        };
        let rejection = check_request(&request).expect("rejection");
        let text = String::from_utf8(rejection.response(&request).to_bytes().to_vec()).unwrap();
        assert!(text.starts_with("SIP/2.0 420 Bad Extension\r\n"), "{text}");
        assert!(text.contains("\r\nUnsupported: replaces\r\n"), "{text}");
        assert!(
            text.contains("\r\nCall-ID: policy-1@192.0.2.1\r\n"),
            "{text}"
        );
    }
}
