//! SIP message model (RFC 3261 section 7 and 25): parsing, serialization,
//! URIs, typed access to the headers a proxy or B2BUA needs, and SDP
//! (RFC 4566) for media anchoring.
//!
//! The crate owns bytes-to-structures and back, nothing else: no sockets, no
//! clocks, no transaction state. Parsing is strict on framing (start line,
//! header block, Content-Length) and lazy on header values: a header is split
//! into name and value when the message is parsed, and its value is decoded
//! into a typed form only when a caller asks for it, so a malformed header
//! that nobody reads does not reject the message.
//!
//! Header names are matched case-insensitively and compact forms (`v`, `f`,
//! `t`, `i`, `m`, `l`, `c`, `k`, `s`, `e`, `o`, `r`, `b`, `u`, `x`) are
//! expanded to their long form when parsed.

mod error;
mod framing;
mod headers;
mod message;
mod method;
mod name_addr;
mod params;
mod parse;
pub mod sdp;
mod text;
mod typed;
mod uri;
mod via;

pub use error::{ErrorKind, ParseError};
pub use framing::{MAX_HEADER_BYTES, StreamFrame, frame_stream};
pub use headers::{Header, Headers};
pub use message::{Message, Request, Response, reason_phrase};
pub use method::Method;
pub use name_addr::NameAddr;
pub use params::Params;
pub use typed::{CSeq, ContactList};
pub use uri::{Host, Scheme, Uri};
pub use via::Via;
