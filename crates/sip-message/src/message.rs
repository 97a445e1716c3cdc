//! Requests, responses and their serialization.

use bytes::{BufMut, Bytes, BytesMut};

use crate::{Headers, Method, ParseError, Uri};

#[derive(Clone, Debug)]
pub enum Message {
    Request(Request),
    Response(Response),
}

impl Message {
    /// Parses one datagram or one framed stream message. Bytes after the body
    /// that Content-Length declares are ignored (RFC 3261 section 18.3). A
    /// Content-Length larger than the remaining bytes is an error. A missing
    /// Content-Length means "the rest of the datagram".
    pub fn parse(bytes: &[u8]) -> Result<Message, ParseError> {
        crate::parse::parse_message(Bytes::copy_from_slice(bytes))
    }

    /// Parses as [`Message::parse`] without copying: header values and the
    /// body are slices of `bytes`, which they keep alive.
    pub fn parse_bytes(bytes: Bytes) -> Result<Message, ParseError> {
        crate::parse::parse_message(bytes)
    }

    pub fn headers(&self) -> &Headers {
        match self {
            Message::Request(request) => &request.headers,
            Message::Response(response) => &response.headers,
        }
    }

    pub fn headers_mut(&mut self) -> &mut Headers {
        match self {
            Message::Request(request) => &mut request.headers,
            Message::Response(response) => &mut response.headers,
        }
    }

    pub fn body(&self) -> &Bytes {
        match self {
            Message::Request(request) => &request.body,
            Message::Response(response) => &response.body,
        }
    }

    pub fn to_bytes(&self) -> Bytes {
        match self {
            Message::Request(request) => request.to_bytes(),
            Message::Response(response) => response.to_bytes(),
        }
    }
}

#[derive(Clone, Debug)]
pub struct Request {
    pub method: Method,
    pub uri: Uri,
    pub headers: Headers,
    pub body: Bytes,
}

impl Request {
    /// A request with no headers and an empty body.
    pub fn new(method: Method, uri: Uri) -> Request {
        Request {
            method,
            uri,
            headers: Headers::default(),
            body: Bytes::new(),
        }
    }

    /// Serializes; writes Content-Length from body.len(), replacing any
    /// Content-Length header the struct holds.
    pub fn to_bytes(&self) -> Bytes {
        let start_line = format!("{} {} SIP/2.0", self.method, self.uri);
        serialize(start_line.as_bytes(), &self.headers, &self.body)
    }
}

#[derive(Clone, Debug)]
pub struct Response {
    pub status: u16,
    pub reason: String,
    pub headers: Headers,
    pub body: Bytes,
}

impl Response {
    /// A response with no headers and an empty body.
    pub fn new(status: u16, reason: &str) -> Response {
        Response {
            status,
            reason: reason.to_owned(),
            headers: Headers::default(),
            body: Bytes::new(),
        }
    }

    /// Builds a response to `request` per RFC 3261 section 8.2.6: copies all
    /// Via (in order), From, To, Call-ID and CSeq; adds nothing else. The
    /// standard reason phrase for the code is used when `reason` is None.
    pub fn for_request(request: &Request, status: u16, reason: Option<&str>) -> Response {
        let mut response = Response::new(status, reason.unwrap_or_else(|| reason_phrase(status)));
        for header in request.headers.iter() {
            if matches!(header.name(), "Via" | "From" | "To" | "Call-ID" | "CSeq") {
                response.headers.push_header(header);
            }
        }
        response
    }

    /// Serializes; writes Content-Length from body.len(), replacing any
    /// Content-Length header the struct holds.
    pub fn to_bytes(&self) -> Bytes {
        // Every response of a registration storm goes through here, so the
        // status line is put together without the formatting machinery.
        let mut start_line = Vec::with_capacity(12 + self.reason.len());
        start_line.extend_from_slice(b"SIP/2.0 ");
        start_line.extend_from_slice(decimal(u64::from(self.status), 3, &mut [0; 20]));
        start_line.push(b' ');
        start_line.extend_from_slice(self.reason.as_bytes());
        serialize(&start_line, &self.headers, &self.body)
    }
}

fn serialize(start_line: &[u8], headers: &Headers, body: &Bytes) -> Bytes {
    let written = || headers.iter().filter(|h| h.name() != "Content-Length");
    // Sized in advance, so the buffer is never moved while it fills.
    let header_bytes: usize = written()
        .map(|h| h.name().len() + h.value().len() + 4)
        .sum();
    let length_line = b"Content-Length: ".len() + 20 + 4;
    let mut out =
        BytesMut::with_capacity(start_line.len() + 2 + header_bytes + length_line + body.len());
    out.put_slice(start_line);
    out.put_slice(b"\r\n");
    for header in written() {
        out.put_slice(header.name().as_bytes());
        out.put_slice(b": ");
        out.put_slice(header.value().as_bytes());
        out.put_slice(b"\r\n");
    }
    out.put_slice(b"Content-Length: ");
    out.put_slice(decimal(body.len() as u64, 1, &mut [0; 20]));
    out.put_slice(b"\r\n\r\n");
    out.put_slice(body);
    out.freeze()
}

/// Writes `value` in decimal at the end of `digits`, padded with zeros to
/// at least `width` digits (at most 20), and returns the digits written.
fn decimal(value: u64, width: usize, digits: &mut [u8; 20]) -> &[u8] {
    let mut start = digits.len();
    let mut rest = value;
    loop {
        start -= 1;
        digits[start] = b'0' + (rest % 10) as u8;
        rest /= 10;
        if rest == 0 {
            break;
        }
    }
    while digits.len() - start < width.min(digits.len()) {
        start -= 1;
        digits[start] = b'0';
    }
    &digits[start..]
}

/// Standard reason phrase ("OK", "Ringing", "Request Terminated", ...), or "Unknown".
pub fn reason_phrase(status: u16) -> &'static str {
    match status {
        100 => "Trying",
        180 => "Ringing",
        181 => "Call Is Being Forwarded",
        182 => "Queued",
        183 => "Session Progress",
        199 => "Early Dialog Terminated",
        200 => "OK",
        202 => "Accepted",
        204 => "No Notification",
        300 => "Multiple Choices",
        301 => "Moved Permanently",
        302 => "Moved Temporarily",
        305 => "Use Proxy",
        380 => "Alternative Service",
        400 => "Bad Request",
        401 => "Unauthorized",
        402 => "Payment Required",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        406 => "Not Acceptable",
        407 => "Proxy Authentication Required",
        408 => "Request Timeout",
        410 => "Gone",
        412 => "Conditional Request Failed",
        413 => "Request Entity Too Large",
        414 => "Request-URI Too Long",
        415 => "Unsupported Media Type",
        416 => "Unsupported URI Scheme",
        420 => "Bad Extension",
        421 => "Extension Required",
        422 => "Session Interval Too Small",
        423 => "Interval Too Brief",
        480 => "Temporarily Unavailable",
        481 => "Call/Transaction Does Not Exist",
        482 => "Loop Detected",
        483 => "Too Many Hops",
        484 => "Address Incomplete",
        485 => "Ambiguous",
        486 => "Busy Here",
        487 => "Request Terminated",
        488 => "Not Acceptable Here",
        489 => "Bad Event",
        491 => "Request Pending",
        493 => "Undecipherable",
        500 => "Server Internal Error",
        501 => "Not Implemented",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        504 => "Server Time-out",
        505 => "Version Not Supported",
        513 => "Message Too Large",
        580 => "Precondition Failure",
        600 => "Busy Everywhere",
        603 => "Decline",
        604 => "Does Not Exist Anywhere",
        606 => "Not Acceptable",
        _ => "Unknown",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Host;

    #[test]
    fn request_serializes_content_length_from_body() {
        let mut request = Request::new(
            Method::Options,
            Uri::sip(Some("a"), Host::Domain("b".into()), None),
        );
        request.headers.push("Call-ID", "x");
        request.headers.push("Content-Length", "99");
        request.body = Bytes::from_static(b"hi");
        let expected = b"OPTIONS sip:a@b SIP/2.0\r\nCall-ID: x\r\nContent-Length: 2\r\n\r\nhi";
        assert_eq!(&request.to_bytes()[..], &expected[..]);
    }

    #[test]
    fn response_status_line_and_length() {
        let mut response = Response::new(7, "Odd");
        response.headers.push("Call-ID", "x");
        response.body = Bytes::from(vec![b'a'; 1234]);
        let bytes = response.to_bytes();
        let head = b"SIP/2.0 007 Odd\r\nCall-ID: x\r\nContent-Length: 1234\r\n\r\n";
        assert_eq!(&bytes[..head.len()], &head[..]);
        assert_eq!(bytes.len(), head.len() + 1234);
        assert_eq!(decimal(u64::MAX, 25, &mut [0; 20]), b"18446744073709551615");
        assert_eq!(decimal(0, 3, &mut [0; 20]), b"000");
        assert_eq!(decimal(200, 3, &mut [0; 20]), b"200");
    }

    #[test]
    fn response_copies_dialog_headers_only() {
        let wire = b"INVITE sip:a@b SIP/2.0\r\nVia: SIP/2.0/UDP h1;branch=z9hG4bK1\r\n\
            Max-Forwards: 70\r\nVia: SIP/2.0/UDP h2\r\nTo: <sip:a@b>\r\nf: <sip:c@d>;tag=1\r\n\
            i: id1\r\nCSeq: 1 INVITE\r\nContact: <sip:c@h1>\r\n\r\n";
        let Message::Request(request) = Message::parse(wire).unwrap() else {
            panic!("expected a request")
        };
        let response = Response::for_request(&request, 487, None);
        let expected = "SIP/2.0 487 Request Terminated\r\nVia: SIP/2.0/UDP h1;branch=z9hG4bK1\r\n\
            Via: SIP/2.0/UDP h2\r\nTo: <sip:a@b>\r\nFrom: <sip:c@d>;tag=1\r\nCall-ID: id1\r\n\
            CSeq: 1 INVITE\r\nContent-Length: 0\r\n\r\n";
        assert_eq!(std::str::from_utf8(&response.to_bytes()).unwrap(), expected);
    }

    /// Whether `text` lies inside `buffer`'s memory.
    fn points_into(text: &[u8], buffer: &Bytes) -> bool {
        let range = buffer.as_ptr_range();
        range.contains(&text.as_ptr()) && text.len() <= buffer.len()
    }

    #[test]
    fn parse_bytes_shares_the_buffer() {
        let wire = Bytes::from_static(
            b"MESSAGE sip:a@b SIP/2.0\r\nVia: SIP/2.0/UDP h1;branch=z9hG4bK1\r\n\
            X-Custom: one\r\nSubject: first\r\n second\r\nContent-Length: 5\r\n\r\nhello",
        );
        let message = Message::parse_bytes(wire.clone()).unwrap();
        let headers = message.headers();
        let via = headers.get("Via").unwrap();
        assert!(points_into(via.as_bytes(), &wire), "Via value was copied");
        let custom = headers.iter().find(|h| h.name() == "X-Custom").unwrap();
        assert!(
            points_into(custom.name().as_bytes(), &wire),
            "unknown name was copied"
        );
        assert!(points_into(message.body(), &wire), "body was copied");
        assert_eq!(&message.body()[..], b"hello");
        // Folding joins two lines, so only that value is new text.
        assert_eq!(headers.get("Subject"), Some("first second"));
        assert!(!points_into(
            headers.get("Subject").unwrap().as_bytes(),
            &wire
        ));
    }

    #[test]
    fn datagram_without_empty_line_keeps_last_header() {
        let wire = b"OPTIONS sip:a@b SIP/2.0\r\nCall-ID: x\r\nCSeq: 1 OPTIONS\r\n";
        let message = Message::parse(wire).unwrap();
        assert_eq!(message.headers().len(), 2);
        assert_eq!(message.headers().get("CSeq"), Some("1 OPTIONS"));
        assert!(message.body().is_empty());
    }

    #[test]
    fn reason_phrases() {
        assert_eq!(reason_phrase(180), "Ringing");
        assert_eq!(reason_phrase(487), "Request Terminated");
        assert_eq!(reason_phrase(299), "Unknown");
    }
}
