//! Answers for requests that do not parse.
//!
//! RFC 3261 section 8.2 asks a UAS to reject a malformed request with 400
//! (505 for another SIP version) when it can. A message that fails the
//! parser cannot become a `Request`, so the response is built from the raw
//! header lines it needs: Via, From, To, Call-ID and CSeq.

use bytes::Bytes;
use sip_message::{ErrorKind, ParseError};

/// Headers a response must echo, with their compact forms.
const ECHOED: [(&str, Option<&str>); 5] = [
    ("Via", Some("v")),
    ("From", Some("f")),
    ("To", Some("t")),
    ("Call-ID", Some("i")),
    ("CSeq", None),
];

/// The response to send for `datagram`, which failed to parse with
/// `error`, or None when it is a response, or lacks a header a response
/// needs, or names no SIP version (nothing would understand an answer).
pub fn response_for_unparsable(datagram: &[u8], error: &ParseError) -> Option<Bytes> {
    let head_end = find(datagram, b"\r\n\r\n").unwrap_or(datagram.len());
    let head = std::str::from_utf8(&datagram[..head_end]).ok()?;
    let mut lines = unfold(head).into_iter();
    let request_line = lines.next()?;
    if request_line.starts_with("SIP/") || !request_line.contains(" SIP/") {
        return None;
    }
    let mut echoed: Vec<Vec<String>> = vec![Vec::new(); ECHOED.len()];
    for line in lines {
        let Some((name, value)) = line.split_once(':') else {
            continue;
        };
        let name = name.trim();
        let slot = ECHOED.iter().position(|(long, compact)| {
            name.eq_ignore_ascii_case(long) || compact.is_some_and(|c| name.eq_ignore_ascii_case(c))
        });
        if let Some(slot) = slot {
            echoed[slot].push(value.trim().to_owned());
        }
    }
    if echoed.iter().any(Vec::is_empty) {
        return None;
    }
    let (status, reason) = match error.kind() {
        ErrorKind::Version => (505, "Version Not Supported"),
        _ => (400, error.reason()),
    };
    let mut text = format!("SIP/2.0 {status} {reason}\r\n");
    for ((name, _), values) in ECHOED.iter().zip(&echoed) {
        for value in values {
            if value.bytes().any(|b| b.is_ascii_control()) {
                return None;
            }
            text.push_str(&format!("{name}: {value}\r\n"));
        }
    }
    text.push_str("Content-Length: 0\r\n\r\n");
    Some(Bytes::from(text))
}

/// Header lines with continuation lines (leading SP or HTAB) joined.
fn unfold(head: &str) -> Vec<String> {
    let mut lines: Vec<String> = Vec::new();
    for line in head.split('\n') {
        let line = line.strip_suffix('\r').unwrap_or(line);
        match lines.last_mut() {
            Some(last) if line.starts_with([' ', '\t']) => {
                last.push(' ');
                last.push_str(line.trim_start());
            }
            _ => lines.push(line.to_owned()),
        }
    }
    lines
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack
        .windows(needle.len())
        .position(|window| window == needle)
}

#[cfg(test)]
mod tests {
    use super::*;
    use sip_message::Message;

    fn answer(text: &str) -> Option<String> {
        let error = Message::parse(text.as_bytes()).expect_err("message must be malformed");
        response_for_unparsable(text.as_bytes(), &error)
            .map(|b| String::from_utf8(b.to_vec()).unwrap())
    }

    const HEADERS: &str = "Via: SIP/2.0/UDP 192.0.2.1;branch=z9hG4bK1\r\nf: <sip:a@x>;tag=1\r\n\
                           To: <sip:b@y>\r\nCall-ID: bad-1\r\nCSeq: 1 INVITE\r\n";

    #[test]
    fn wrong_content_length_gets_400_with_reason() {
        let text =
            format!("INVITE sip:b@y SIP/2.0\r\n{HEADERS}Content-Length: 9999\r\n\r\nv=0\r\n");
        let response = answer(&text).expect("400");
        assert!(
            response.starts_with("SIP/2.0 400 Bad Content-Length\r\n"),
            "{response}"
        );
        assert!(response.contains("From: <sip:a@x>;tag=1\r\n"), "{response}");
        assert!(response.contains("Call-ID: bad-1\r\n"), "{response}");
        let parsed = Message::parse(response.as_bytes()).expect("response parses");
        assert!(matches!(parsed, Message::Response(r) if r.status == 400));
    }

    #[test]
    fn other_version_gets_505() {
        let text = format!("INVITE sip:b@y SIP/7.0\r\n{HEADERS}Content-Length: 0\r\n\r\n");
        let response = answer(&text).expect("505");
        assert!(
            response.starts_with("SIP/2.0 505 Version Not Supported\r\n"),
            "{response}"
        );
    }

    #[test]
    fn missing_headers_or_responses_get_nothing() {
        let text = "INVITE sip:b@y SIP/2.0\r\nCall-ID: x\r\nContent-Length: 5\r\n\r\n";
        assert_eq!(answer(text), None);
        let text = format!("SIP/2.0 200 OK\r\n{HEADERS}Content-Length: 99\r\n\r\n");
        assert_eq!(answer(&text), None);
        assert_eq!(answer("\u{1}\u{2}garbage"), None);
    }
}
