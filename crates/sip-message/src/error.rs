//! The parse error shared by every parser of the crate.

/// The part of the input that was malformed; it selects the reason phrase
/// of the 400 (or 505) response a UAS sends back.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ErrorKind {
    StartLine,
    /// A SIP version other than 2.0 (answered with 505).
    Version,
    Method,
    Status,
    Header,
    ContentLength,
    CSeq,
    Uri,
    NameAddr,
    Via,
    MaxForwards,
    Expires,
    MissingHeader,
    /// Header bytes that are not UTF-8.
    Encoding,
    Sdp,
}

/// A parse failure: its kind, a description quoting the offending value,
/// and the byte offset in the input when one is known.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{what}{}", position.map(|p| format!(" at byte {p}")).unwrap_or_default())]
pub struct ParseError {
    kind: ErrorKind,
    what: String,
    position: Option<usize>,
}

impl ParseError {
    pub fn new(kind: ErrorKind, what: impl Into<String>) -> ParseError {
        ParseError {
            kind,
            what: what.into(),
            position: None,
        }
    }

    pub(crate) fn at(mut self, position: usize) -> ParseError {
        self.position = Some(position);
        self
    }

    pub fn kind(&self) -> ErrorKind {
        self.kind
    }

    /// Byte offset in the parsed input, when known.
    pub fn position(&self) -> Option<usize> {
        self.position
    }

    /// Short text fit for a SIP reason phrase, e.g. "Bad CSeq".
    pub fn reason(&self) -> &str {
        match self.kind {
            ErrorKind::StartLine => "Bad Request Line",
            ErrorKind::Version => "Version Not Supported",
            ErrorKind::Method => "Bad Method",
            ErrorKind::Status => "Bad Status Line",
            ErrorKind::Header => "Bad Header",
            ErrorKind::ContentLength => "Bad Content-Length",
            ErrorKind::CSeq => "Bad CSeq",
            ErrorKind::Uri => "Bad URI",
            ErrorKind::NameAddr => "Bad Address",
            ErrorKind::Via => "Bad Via",
            ErrorKind::MaxForwards => "Bad Max-Forwards",
            ErrorKind::Expires => "Bad Expires",
            ErrorKind::MissingHeader => "Missing Header",
            ErrorKind::Encoding => "Bad Header Encoding",
            ErrorKind::Sdp => "Bad Session Description",
        }
    }
}
