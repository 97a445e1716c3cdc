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
        serialize(&start_line, &self.headers, &self.body)
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
        let start_line = format!("SIP/2.0 {:03} {}", self.status, self.reason);
        serialize(&start_line, &self.headers, &self.body)
    }
}

fn serialize(start_line: &str, headers: &Headers, body: &Bytes) -> Bytes {
    let mut out = BytesMut::with_capacity(512 + body.len());
    out.put_slice(start_line.as_bytes());
    out.put_slice(b"\r\n");
    for header in headers.iter().filter(|h| h.name() != "Content-Length") {
        out.put_slice(header.name().as_bytes());
        out.put_slice(b": ");
        out.put_slice(header.value().as_bytes());
        out.put_slice(b"\r\n");
    }
    out.put_slice(format!("Content-Length: {}\r\n\r\n", body.len()).as_bytes());
    out.put_slice(body);
    out.freeze()
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
