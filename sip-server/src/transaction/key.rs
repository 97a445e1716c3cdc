//! Transaction identity and request validation (RFC 3261 sections 17.1.3 and 17.2.3).

use std::fmt;
use std::sync::Arc;

use sip_message::{Headers, Method, ParseError, Request, Response, Via};

/// Prefix of every branch made by an RFC 3261 element. A branch without it
/// comes from an RFC 2543 element and cannot be trusted to be unique.
pub(super) const MAGIC_COOKIE: &str = "z9hG4bK";

/// End of the transaction that this layer plays.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Side {
    Client,
    Server,
}

/// Identity of one transaction: branch, method and side, plus the top Via
/// sent-by on the server side (RFC 3261 section 17.2.3). ACK maps to the
/// INVITE it acknowledges; CANCEL keeps its own method and so its own key.
///
/// The text is shared, because the layer and the TU clone a key several
/// times per request and a clone should not allocate.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct TransactionKey {
    branch: Arc<str>,
    method: Method,
    sent_by: Option<Arc<str>>,
    side: Side,
}

impl TransactionKey {
    /// Branch of the top Via. For requests from RFC 2543 elements, a branch
    /// made up by this layer from the fields that identify the transaction.
    pub fn branch(&self) -> &str {
        &self.branch
    }

    /// Method of the request that created the transaction.
    pub fn method(&self) -> &Method {
        &self.method
    }

    pub fn side(&self) -> Side {
        self.side
    }

    pub(super) fn client(branch: String, method: Method) -> TransactionKey {
        TransactionKey {
            branch: branch.into(),
            method,
            sent_by: None,
            side: Side::Client,
        }
    }

    /// Key of the server transaction that `request` belongs to; `via` is its
    /// top Via as received, before `received`/`rport` are stamped.
    ///
    /// Requests whose branch lacks the magic cookie get a branch built from
    /// Call-ID, CSeq number, From tag, Request-URI and the top Via sent-by and
    /// branch. That is RFC 2543 matching without the To tag, which an ACK
    /// for a non-2xx response carries and the INVITE did not.
    pub(super) fn for_request(request: &Request, via: &Via) -> TransactionKey {
        let method = match request.method {
            Method::Ack => Method::Invite,
            ref other => other.clone(),
        };
        let sent_by = sent_by(via);
        let branch: Arc<str> = match via.branch() {
            Some(branch) if branch.starts_with(MAGIC_COOKIE) => Arc::from(branch),
            other => rfc2543_branch(request, &sent_by, other.unwrap_or("")).into(),
        };
        TransactionKey {
            branch,
            method,
            sent_by: Some(sent_by.into()),
            side: Side::Server,
        }
    }

    /// Key of the client transaction a response matches: top Via branch and
    /// CSeq method (RFC 3261 section 17.1.3).
    pub(super) fn for_response(response: &Response) -> Result<TransactionKey, MessageError> {
        let via = typed(&response.headers, "Via", Headers::top_via)?;
        let cseq = typed(&response.headers, "CSeq", Headers::cseq)?;
        let branch = via.branch().ok_or(MessageError::MissingBranch)?;
        Ok(TransactionKey::client(branch.to_owned(), cseq.method))
    }

    /// The same transaction seen with another method: the INVITE a CANCEL
    /// refers to.
    pub(super) fn with_method(&self, method: Method) -> TransactionKey {
        TransactionKey {
            method,
            ..self.clone()
        }
    }
}

impl fmt::Display for TransactionKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let side = match self.side {
            Side::Client => "client",
            Side::Server => "server",
        };
        write!(f, "{} {} {}", side, self.method, self.branch)
    }
}

fn sent_by(via: &Via) -> String {
    use std::fmt::Write;
    // One string for host and port, because this runs for every request
    // received.
    let mut text = String::with_capacity(48);
    let _ = write!(text, "{}", via.host);
    text.make_ascii_lowercase();
    if let Some(port) = via.port {
        let _ = write!(text, ":{port}");
    }
    text
}

fn rfc2543_branch(request: &Request, sent_by: &str, via_branch: &str) -> String {
    let headers = &request.headers;
    let call_id = headers.call_id().unwrap_or_default();
    let seq = headers.cseq().map(|cseq| cseq.seq).unwrap_or_default();
    let from = headers.from_ref().ok();
    let from_tag = from
        .as_ref()
        .and_then(|from| from.tag())
        .unwrap_or_default();
    format!(
        "rfc2543;{call_id};{seq};{from_tag};{};{sent_by};{via_branch}",
        request.uri
    )
}

/// Reason a message cannot enter the transaction layer.
#[derive(Debug, thiserror::Error)]
pub(super) enum MessageError {
    #[error("missing {0} header")]
    Missing(&'static str),
    #[error("invalid {header} header: {source}")]
    Invalid {
        header: &'static str,
        #[source]
        source: ParseError,
    },
    #[error("top Via has no branch parameter")]
    MissingBranch,
    #[error("CSeq method {cseq} does not match request method {method}")]
    CSeqMethodMismatch { cseq: Method, method: Method },
}

impl MessageError {
    /// Reason phrase for the 400 response that rejects the request.
    pub(super) fn reason_phrase(&self) -> String {
        match self {
            MessageError::Missing(header) => format!("Missing {header}"),
            MessageError::Invalid { source, .. } => source.reason().to_owned(),
            MessageError::MissingBranch => "Missing Via branch".to_owned(),
            MessageError::CSeqMethodMismatch { .. } => "CSeq Method Mismatch".to_owned(),
        }
    }
}

/// Checks the headers every request needs before a transaction can hold it
/// (RFC 3261 section 8.1.1) and returns its top Via.
pub(super) fn validate_request(request: &Request) -> Result<Via, MessageError> {
    let headers = &request.headers;
    let via = typed(headers, "Via", Headers::top_via)?;
    if headers
        .call_id()
        .is_none_or(|call_id| call_id.trim().is_empty())
    {
        return Err(MessageError::Missing("Call-ID"));
    }
    let cseq = typed(headers, "CSeq", Headers::cseq)?;
    typed(headers, "From", |headers| headers.from_ref().map(drop))?;
    typed(headers, "To", |headers| headers.to_ref().map(drop))?;
    if cseq.method != request.method {
        return Err(MessageError::CSeqMethodMismatch {
            cseq: cseq.method,
            method: request.method.clone(),
        });
    }
    Ok(via)
}

/// Reads a typed header, telling a missing header from a malformed one.
fn typed<T>(
    headers: &Headers,
    header: &'static str,
    read: impl Fn(&Headers) -> Result<T, ParseError>,
) -> Result<T, MessageError> {
    if !headers.contains(header) {
        return Err(MessageError::Missing(header));
    }
    read(headers).map_err(|source| MessageError::Invalid { header, source })
}
