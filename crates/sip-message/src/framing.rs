//! Message framing on stream transports (RFC 3261 section 18.3).

use std::borrow::Cow;

use crate::headers::same_name;
use crate::parse::{
    content_length_of, lines_as_text, skip_leading_crlf, split_header_block, visit_fields,
};
use crate::{ErrorKind, ParseError};

/// Longest header block accepted on a stream before the empty line; a peer
/// that sends more without ending its headers is treated as broken rather
/// than buffered without bound.
pub const MAX_HEADER_BYTES: usize = 64 * 1024;

/// Framing for stream transports (TCP, TLS): how many bytes make the first
/// message of `buf`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StreamFrame {
    /// Leading CRLFs (keep-alive pings, RFC 5626) to discard: this many bytes.
    KeepAlive(usize),
    /// A whole message of this many bytes starts at offset 0.
    Message(usize),
    /// More bytes are needed.
    Incomplete,
}

/// A missing Content-Length on a stream is an error (RFC 3261 section 18.3),
/// and so is a header block longer than [`MAX_HEADER_BYTES`].
pub fn frame_stream(buf: &[u8]) -> Result<StreamFrame, ParseError> {
    let keep_alive = skip_leading_crlf(buf);
    if keep_alive > 0 {
        return Ok(StreamFrame::KeepAlive(keep_alive));
    }
    if buf == b"\r" {
        return Ok(StreamFrame::Incomplete);
    }
    let block = split_header_block(buf, 0);
    let Some(body_start) = block.body_start else {
        if buf.len() > MAX_HEADER_BYTES {
            return Err(ParseError::new(
                ErrorKind::Header,
                format!("header block longer than {MAX_HEADER_BYTES} bytes"),
            ));
        }
        return Ok(StreamFrame::Incomplete);
    };
    let header_lines = lines_as_text(block.lines.get(1..).unwrap_or_default())?;
    // Every header line is checked as the parser will check it, but only
    // Content-Length is kept.
    let mut lengths: Vec<Cow<'_, str>> = Vec::new();
    visit_fields(header_lines.into_iter(), |name, value| {
        if same_name(crate::headers::canonical_name(name), "Content-Length") {
            lengths.push(value);
        }
    })?;
    let length =
        content_length_of(lengths.iter().map(|value| value.as_ref()))?.ok_or_else(|| {
            ParseError::new(
                ErrorKind::ContentLength,
                "missing Content-Length on a stream",
            )
        })?;
    let total = body_start.saturating_add(length);
    if buf.len() < total {
        Ok(StreamFrame::Incomplete)
    } else {
        Ok(StreamFrame::Message(total))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const OPTIONS: &[u8] = b"OPTIONS sip:a@b SIP/2.0\r\nl: 4\r\n\r\nbody";

    #[test]
    fn keep_alive_then_message() {
        assert_eq!(
            frame_stream(b"\r\n\r\nOPTIONS").unwrap(),
            StreamFrame::KeepAlive(4)
        );
        assert_eq!(
            frame_stream(OPTIONS).unwrap(),
            StreamFrame::Message(OPTIONS.len())
        );
        let mut two = OPTIONS.to_vec();
        two.extend_from_slice(OPTIONS);
        assert_eq!(
            frame_stream(&two).unwrap(),
            StreamFrame::Message(OPTIONS.len())
        );
    }

    #[test]
    fn partial_input_needs_more() {
        for end in 0..OPTIONS.len() {
            assert_eq!(
                frame_stream(&OPTIONS[..end]).unwrap(),
                StreamFrame::Incomplete,
                "prefix of {end} bytes"
            );
        }
    }

    #[test]
    fn framing_errors() {
        assert!(frame_stream(b"OPTIONS sip:a@b SIP/2.0\r\nCall-ID: x\r\n\r\n").is_err());
        assert!(frame_stream(b"OPTIONS sip:a@b SIP/2.0\r\nContent-Length: -999\r\n\r\n").is_err());
        assert!(frame_stream(&vec![b'a'; MAX_HEADER_BYTES + 1]).is_err());
    }
}
