//! Message parser: start line, header block and body framing (RFC 3261
//! sections 7 and 18.3).

use bytes::Bytes;

use crate::text::{is_lws, is_token, parse_decimal, trim_lws};
use crate::{ErrorKind, Headers, Message, Method, ParseError, Request, Response, Uri};

/// The header block of a message: where it ends and where the body starts.
pub(crate) struct HeaderBlock<'a> {
    /// Start line and header lines, line ends removed, folding not yet undone.
    pub(crate) lines: Vec<&'a [u8]>,
    /// Offset of the first body byte, or `None` when no empty line ends the
    /// block within the input.
    pub(crate) body_start: Option<usize>,
}

/// Offset of the first byte after the leading CRLFs (or bare LFs).
pub(crate) fn skip_leading_crlf(bytes: &[u8]) -> usize {
    let mut at = 0;
    loop {
        match bytes.get(at..) {
            Some([b'\r', b'\n', ..]) => at += 2,
            Some([b'\n', ..]) => at += 1,
            _ => return at,
        }
    }
}

/// Splits the input into lines up to the first empty line. Lines end with
/// CRLF; a bare LF is accepted too, as many stacks do.
pub(crate) fn split_header_block(bytes: &[u8], start: usize) -> HeaderBlock<'_> {
    let mut lines = Vec::new();
    let mut at = start;
    while at < bytes.len() {
        let rest = &bytes[at..];
        let Some(lf) = rest.iter().position(|b| *b == b'\n') else {
            lines.push(rest);
            break;
        };
        let line = rest[..lf].strip_suffix(b"\r").unwrap_or(&rest[..lf]);
        at += lf + 1;
        if line.is_empty() {
            return HeaderBlock {
                lines,
                body_start: Some(at),
            };
        }
        lines.push(line);
    }
    HeaderBlock {
        lines,
        body_start: None,
    }
}

/// Joins folded lines (a line starting with SP or HTAB continues the one
/// before) and splits each header at its first ':'.
pub(crate) fn parse_header_lines(lines: &[&[u8]]) -> Result<Headers, ParseError> {
    let mut headers = Headers::default();
    let mut current: Option<(String, String)> = None;
    for line in lines {
        let line = std::str::from_utf8(line)
            .map_err(|_| ParseError::new(ErrorKind::Encoding, "header line is not UTF-8"))?;
        if line.starts_with([' ', '\t']) {
            let Some((_, value)) = current.as_mut() else {
                return Err(ParseError::new(
                    ErrorKind::Header,
                    format!("continuation line {line:?} without a header"),
                ));
            };
            let continued = trim_lws(line);
            if !continued.is_empty() {
                if !value.is_empty() {
                    value.push(' ');
                }
                value.push_str(continued);
            }
            continue;
        }
        if let Some((name, value)) = current.take() {
            headers.push(&name, value);
        }
        let (name, value) = line.split_once(':').ok_or_else(|| {
            ParseError::new(
                ErrorKind::Header,
                format!("header line {line:?} has no ':'"),
            )
        })?;
        let name = name.trim_end_matches(is_lws);
        if !is_token(name) {
            return Err(ParseError::new(
                ErrorKind::Header,
                format!("invalid header name {name:?}"),
            ));
        }
        current = Some((name.to_owned(), trim_lws(value).to_owned()));
    }
    if let Some((name, value)) = current {
        headers.push(&name, value);
    }
    Ok(headers)
}

/// Reads Content-Length; several headers must agree (RFC 4475 `mcl01`).
pub(crate) fn content_length(headers: &Headers) -> Result<Option<usize>, ParseError> {
    let mut length = None;
    for value in headers.get_all("Content-Length") {
        let parsed = parse_decimal(value, u32::MAX.into())
            .and_then(|v| usize::try_from(v).ok())
            .ok_or_else(|| {
                ParseError::new(
                    ErrorKind::ContentLength,
                    format!("invalid Content-Length {value:?}"),
                )
            })?;
        if length.is_some_and(|previous| previous != parsed) {
            return Err(ParseError::new(
                ErrorKind::ContentLength,
                "Content-Length headers disagree",
            ));
        }
        length = Some(parsed);
    }
    Ok(length)
}

pub(crate) fn parse_message(bytes: &[u8]) -> Result<Message, ParseError> {
    let start = skip_leading_crlf(bytes);
    let block = split_header_block(bytes, start);
    let Some((start_line, header_lines)) = block.lines.split_first() else {
        return Err(ParseError::new(ErrorKind::StartLine, "empty message"));
    };
    let start_line = std::str::from_utf8(start_line)
        .map_err(|_| ParseError::new(ErrorKind::Encoding, "start line is not UTF-8").at(start))?;
    let headers = parse_header_lines(header_lines)?;

    // A datagram whose header block is not closed by an empty line (RFC
    // 4475 `baddn`) is taken to have an empty body.
    let available = block
        .body_start
        .map_or(&[][..], |body_start| &bytes[body_start..]);
    let body = match content_length(&headers)? {
        Some(length) if length > available.len() => {
            return Err(ParseError::new(
                ErrorKind::ContentLength,
                format!(
                    "Content-Length {length} exceeds the {} bytes after the headers",
                    available.len()
                ),
            ));
        }
        // Octets past the declared length are noise (RFC 3261 section 18.3).
        Some(length) => &available[..length],
        None => available,
    };
    let body = Bytes::copy_from_slice(body);

    if let Some(rest) = start_line.strip_prefix("SIP/") {
        let (status, reason) = parse_status_line(rest, start_line)?;
        return Ok(Message::Response(Response {
            status,
            reason,
            headers,
            body,
        }));
    }
    let (method, uri) = parse_request_line(start_line)?;
    Ok(Message::Request(Request {
        method,
        uri,
        headers,
        body,
    }))
}

fn check_version(version: &str) -> Result<(), ParseError> {
    if version.eq_ignore_ascii_case("SIP/2.0") {
        Ok(())
    } else {
        Err(ParseError::new(
            ErrorKind::Version,
            format!("unsupported SIP version {version:?}"),
        ))
    }
}

/// `Method SP Request-URI SP SIP/2.0`, with exactly one SP between parts.
fn parse_request_line(line: &str) -> Result<(Method, Uri), ParseError> {
    let parts: Vec<&str> = line.split(' ').collect();
    let [method, uri, version] = parts.as_slice() else {
        return Err(ParseError::new(
            ErrorKind::StartLine,
            format!("malformed request line {line:?}"),
        ));
    };
    let method: Method = method.parse()?;
    let uri = Uri::parse(uri)?;
    // Headers in a Request-URI are not allowed (RFC 3261 section 19.1.1).
    if uri.headers.is_some() {
        return Err(ParseError::new(
            ErrorKind::Uri,
            format!("Request-URI with headers in {line:?}"),
        ));
    }
    check_version(version)?;
    Ok((method, uri))
}

/// `SIP/2.0 SP 3DIGIT SP Reason-Phrase`; the reason may be empty but the SP
/// before it is required. `rest` is the line after "SIP/".
fn parse_status_line(rest: &str, line: &str) -> Result<(u16, String), ParseError> {
    let malformed =
        || ParseError::new(ErrorKind::Status, format!("malformed status line {line:?}"));
    let (version, after) = rest.split_once(' ').ok_or_else(malformed)?;
    check_version(&line[..4 + version.len()])?;
    let (code, reason) = after.split_once(' ').ok_or_else(malformed)?;
    if code.len() != 3 {
        return Err(malformed());
    }
    let status = parse_decimal(code, 699)
        .and_then(|c| u16::try_from(c).ok())
        .ok_or_else(malformed)?;
    if status < 100 {
        return Err(malformed());
    }
    if reason.chars().any(|c| c.is_control() && c != '\t') {
        return Err(malformed());
    }
    Ok((status, reason.to_owned()))
}
