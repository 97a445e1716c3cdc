//! Message parser: start line, header block and body framing (RFC 3261
//! sections 7 and 18.3).

use std::borrow::Cow;

use bytes::Bytes;
use bytestring::ByteString;

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

/// Walks the header lines of a block (start line excluded), joins folded
/// lines (a line starting with SP or HTAB continues the one before) and
/// calls `field` with each header's name and value. A value borrows from
/// the lines unless folding had to join several of them.
pub(crate) fn visit_fields<'a>(
    lines: impl Iterator<Item = &'a str>,
    mut field: impl FnMut(&'a str, Cow<'a, str>),
) -> Result<(), ParseError> {
    let mut current: Option<(&'a str, Cow<'a, str>)> = None;
    for line in lines {
        if line.starts_with([' ', '\t']) {
            let Some((_, value)) = current.as_mut() else {
                return Err(ParseError::new(
                    ErrorKind::Header,
                    format!("continuation line {line:?} without a header"),
                ));
            };
            let continued = trim_lws(line);
            if !continued.is_empty() {
                let joined = value.to_mut();
                if !joined.is_empty() {
                    joined.push(' ');
                }
                joined.push_str(continued);
            }
            continue;
        }
        if let Some((name, value)) = current.take() {
            field(name, value);
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
        current = Some((name, Cow::Borrowed(trim_lws(value))));
    }
    if let Some((name, value)) = current {
        field(name, value);
    }
    Ok(())
}

/// Header lines as text; the first that is not UTF-8 is an error.
pub(crate) fn lines_as_text<'a>(lines: &[&'a [u8]]) -> Result<Vec<&'a str>, ParseError> {
    lines
        .iter()
        .map(|line| {
            std::str::from_utf8(line)
                .map_err(|_| ParseError::new(ErrorKind::Encoding, "header line is not UTF-8"))
        })
        .collect()
}

/// Lines of a validated header block, line ends (CRLF or a bare LF) removed.
fn text_lines(block: &str) -> impl Iterator<Item = &str> {
    block
        .split('\n')
        .map(|line| line.strip_suffix('\r').unwrap_or(line))
}

/// The header block of `bytes` from `start`: its end (excluding the empty
/// line) and the offset of the first body byte, `None` when no empty line
/// closes the block.
fn find_header_end(bytes: &[u8], start: usize) -> (usize, Option<usize>) {
    let mut at = start;
    while let Some(lf) = bytes[at..].iter().position(|b| *b == b'\n') {
        let line = &bytes[at..at + lf];
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if line.is_empty() {
            // The block ends with the line end before the empty line.
            return (at.saturating_sub(1).max(start), Some(at + lf + 1));
        }
        at += lf + 1;
    }
    // A datagram whose last header line ends with a line end but has no
    // empty line after it: that line end is not the start of another line.
    let end = if at == bytes.len() && at > start {
        at - 1
    } else {
        bytes.len()
    };
    (end, None)
}

/// Reads Content-Length; several headers must agree (RFC 4475 `mcl01`).
pub(crate) fn content_length(headers: &Headers) -> Result<Option<usize>, ParseError> {
    content_length_of(headers.get_all("Content-Length"))
}

/// Reads Content-Length from the values of its header lines.
pub(crate) fn content_length_of<'a>(
    values: impl Iterator<Item = &'a str>,
) -> Result<Option<usize>, ParseError> {
    let mut length = None;
    for value in values {
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

pub(crate) fn parse_message(bytes: Bytes) -> Result<Message, ParseError> {
    let start = skip_leading_crlf(&bytes);
    let (header_end, body_start) = find_header_end(&bytes, start);
    // The header block is validated once; every header name and value is
    // then a slice of it, so parsing copies no header text.
    let block = ByteString::try_from(bytes.slice(start..header_end))
        .map_err(|_| encoding_error(&bytes[start..header_end], start))?;
    let mut lines = text_lines(&block);
    let start_line = match lines.next() {
        Some(line) if !line.is_empty() => line,
        _ => return Err(ParseError::new(ErrorKind::StartLine, "empty message")),
    };
    let line_count = block.bytes().filter(|b| *b == b'\n').count();
    let mut headers = Headers::with_capacity(line_count);
    visit_fields(lines, |name, value| {
        let value = match value {
            Cow::Borrowed(value) => block.slice_ref(value),
            Cow::Owned(joined) => ByteString::from(joined),
        };
        headers.push_received(block.slice_ref(name), value);
    })?;

    // A datagram whose header block is not closed by an empty line (RFC
    // 4475 `baddn`) is taken to have an empty body.
    let available = body_start.map_or(bytes.len()..bytes.len(), |body| body..bytes.len());
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
        Some(length) => bytes.slice(available.start..available.start + length),
        None => bytes.slice(available),
    };

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

/// The error for a header block that is not UTF-8, naming the start line
/// when that is where the invalid bytes are.
fn encoding_error(block: &[u8], offset: usize) -> ParseError {
    let start_line = block.split(|b| *b == b'\n').next().unwrap_or_default();
    if std::str::from_utf8(start_line).is_err() {
        ParseError::new(ErrorKind::Encoding, "start line is not UTF-8").at(offset)
    } else {
        ParseError::new(ErrorKind::Encoding, "header line is not UTF-8")
    }
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
