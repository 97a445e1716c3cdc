//! The ordered header list and its name rules (RFC 3261 section 7.3).

use std::fmt;
use std::sync::OnceLock;

use bytestring::ByteString;

use crate::text::{split_top_level, trim_lws};
use crate::{ContactList, NameAddr, ParseError};

/// Defines the table of known header names and an exact-spelling lookup
/// from one list, so the two cannot drift apart.
macro_rules! known_names {
    ($($name:literal,)*) => {
        /// Long canonical names of the headers this crate knows, in their
        /// usual spelling. A name is matched against these case-insensitively.
        const KNOWN_NAMES: &[&str] = &[$($name,)*];

        /// Returns the known name spelled exactly as `name`. A `match`
        /// compiles to a length switch and a few compares, cheaper than
        /// scanning the table for every header of every message.
        fn exact_known_name(name: &str) -> Option<&'static str> {
            match name {
                $($name => Some($name),)*
                _ => None,
            }
        }
    };
}

known_names! {
    "Accept",
    "Accept-Contact",
    "Accept-Encoding",
    "Accept-Language",
    "Alert-Info",
    "Allow",
    "Allow-Events",
    "Authentication-Info",
    "Authorization",
    "CSeq",
    "Call-ID",
    "Call-Info",
    "Contact",
    "Content-Disposition",
    "Content-Encoding",
    "Content-Language",
    "Content-Length",
    "Content-Type",
    "Date",
    "Error-Info",
    "Event",
    "Expires",
    "From",
    "Identity",
    "Identity-Info",
    "In-Reply-To",
    "MIME-Version",
    "Max-Forwards",
    "Min-Expires",
    "Min-SE",
    "Organization",
    "P-Asserted-Identity",
    "P-Preferred-Identity",
    "Path",
    "Priority",
    "Privacy",
    "Proxy-Authenticate",
    "Proxy-Authorization",
    "Proxy-Require",
    "RAck",
    "RSeq",
    "Reason",
    "Record-Route",
    "Refer-To",
    "Referred-By",
    "Reject-Contact",
    "Replaces",
    "Reply-To",
    "Request-Disposition",
    "Require",
    "Retry-After",
    "Route",
    "Server",
    "Session-Expires",
    "Subject",
    "Subscription-State",
    "Supported",
    "Timestamp",
    "To",
    "Unsupported",
    "User-Agent",
    "Via",
    "WWW-Authenticate",
    "Warning",
}

/// Compact forms (RFC 3261 section 7.3.3 and the extensions that define one).
const COMPACT_NAMES: &[(&str, &str)] = &[
    ("a", "Accept-Contact"),
    ("b", "Referred-By"),
    ("c", "Content-Type"),
    ("d", "Request-Disposition"),
    ("e", "Content-Encoding"),
    ("f", "From"),
    ("i", "Call-ID"),
    ("j", "Reject-Contact"),
    ("k", "Supported"),
    ("l", "Content-Length"),
    ("m", "Contact"),
    ("n", "Identity-Info"),
    ("o", "Event"),
    ("r", "Refer-To"),
    ("s", "Subject"),
    ("t", "To"),
    ("u", "Allow-Events"),
    ("v", "Via"),
    ("x", "Session-Expires"),
    ("y", "Identity"),
];

/// Headers whose value is a comma-separated list, so `remove_first` takes
/// one element rather than the whole line.
const LIST_HEADERS: &[&str] = &[
    "Via",
    "Route",
    "Record-Route",
    "Contact",
    "Path",
    "Allow",
    "Supported",
    "Require",
    "Proxy-Require",
    "Unsupported",
    "Accept",
    "Allow-Events",
];

/// Returns the long canonical name of a known header (compact forms
/// expanded).
pub(crate) fn known_name(name: &str) -> Option<&'static str> {
    if name.len() == 1 {
        return COMPACT_NAMES
            .iter()
            .find(|(short, _)| short.eq_ignore_ascii_case(name))
            .map(|(_, long)| *long);
    }
    // Names arrive mostly in canonical spelling.
    exact_known_name(name).or_else(|| {
        KNOWN_NAMES
            .iter()
            .find(|known| known.eq_ignore_ascii_case(name))
            .copied()
    })
}

/// The long canonical name for a known header (compact forms expanded), or
/// `name` unchanged for an unknown one.
pub(crate) fn canonical_name(name: &str) -> &str {
    known_name(name).unwrap_or(name)
}

/// Whether a stored header name (already canonical, see [`Header::new`])
/// is `requested`, given in any case or compact form. Lookups run for every
/// header of every message, so only a one-letter name, which can only be a
/// compact form, pays for a table search.
pub(crate) fn same_name(stored: &str, requested: &str) -> bool {
    if requested.len() == 1 {
        stored.eq_ignore_ascii_case(canonical_name(requested))
    } else {
        stored.eq_ignore_ascii_case(requested)
    }
}

/// Header text: a known name from the static table, a slice of the
/// received message (shared, not copied), or text the program built.
#[derive(Clone)]
enum Text {
    Static(&'static str),
    Received(ByteString),
    Built(String),
}

impl Text {
    fn as_str(&self) -> &str {
        match self {
            Text::Static(text) => text,
            Text::Received(text) => text,
            Text::Built(text) => text,
        }
    }

    fn into_string(self) -> String {
        match self {
            Text::Built(text) => text,
            other => other.as_str().to_owned(),
        }
    }
}

/// One header line.
#[derive(Clone)]
pub struct Header {
    name: Text,
    value: Text,
}

impl Header {
    pub(crate) fn new(name: &str, value: String) -> Header {
        let name = match known_name(name) {
            Some(known) => Text::Static(known),
            None => Text::Built(name.to_owned()),
        };
        Header {
            name,
            value: Text::Built(value),
        }
    }

    /// Creates a header of a parsed message, whose name and value share
    /// the received buffer.
    pub(crate) fn received(name: ByteString, value: ByteString) -> Header {
        let name = match known_name(&name) {
            Some(known) => Text::Static(known),
            None => Text::Received(name),
        };
        Header {
            name,
            value: Text::Received(value),
        }
    }

    /// Long canonical form for known headers ("Call-ID", "Via", ...), the
    /// name as received for unknown ones.
    pub fn name(&self) -> &str {
        self.name.as_str()
    }

    /// Raw value, folded lines joined with one SP, outer LWS trimmed.
    pub fn value(&self) -> &str {
        self.value.as_str()
    }
}

impl PartialEq for Header {
    fn eq(&self, other: &Header) -> bool {
        self.name() == other.name() && self.value() == other.value()
    }
}

impl Eq for Header {}

impl fmt::Debug for Header {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Header")
            .field("name", &self.name())
            .field("value", &self.value())
            .finish()
    }
}

/// Ordered list of headers; lookups are case-insensitive and accept
/// compact forms.
#[derive(Default)]
pub struct Headers {
    list: Vec<Header>,
    /// From, To and Contact as decoded by their typed accessors, kept until
    /// the next change to the list. The transaction layer, the request
    /// checks and the registrar each read them, and decoding them again
    /// took about a tenth of a registration's CPU in a profile. Boxed on first use, so that a message
    /// whose headers are never decoded carries one pointer.
    pub(crate) decoded: OnceLock<Box<Decoded>>,
}

/// The cells of [`Headers::decoded`].
#[derive(Default)]
pub(crate) struct Decoded {
    pub(crate) from: OnceLock<Result<NameAddr, ParseError>>,
    pub(crate) to: OnceLock<Result<NameAddr, ParseError>>,
    pub(crate) contacts: OnceLock<Result<ContactList, ParseError>>,
}

impl Clone for Headers {
    /// Copies the list; the copy decodes again on demand.
    fn clone(&self) -> Headers {
        Headers {
            list: self.list.clone(),
            decoded: OnceLock::new(),
        }
    }
}

impl PartialEq for Headers {
    fn eq(&self, other: &Headers) -> bool {
        self.list == other.list
    }
}

impl Eq for Headers {}

impl fmt::Debug for Headers {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Headers").field("list", &self.list).finish()
    }
}

impl Headers {
    pub(crate) fn with_capacity(capacity: usize) -> Headers {
        Headers {
            list: Vec::with_capacity(capacity),
            decoded: OnceLock::new(),
        }
    }

    /// Returns the list for a change, dropping what was decoded from it.
    fn list_mut(&mut self) -> &mut Vec<Header> {
        self.decoded.take();
        &mut self.list
    }

    pub(crate) fn push_received(&mut self, name: ByteString, value: ByteString) {
        self.list_mut().push(Header::received(name, value));
    }

    /// Appends a copy of `header`; the copy shares the text of a received one.
    pub fn push_header(&mut self, header: &Header) {
        self.list_mut().push(header.clone());
    }

    pub fn iter(&self) -> impl Iterator<Item = &Header> {
        self.list.iter()
    }

    pub fn len(&self) -> usize {
        self.list.len()
    }

    pub fn is_empty(&self) -> bool {
        self.list.is_empty()
    }

    /// First value of `name`.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.list
            .iter()
            .find(|h| same_name(h.name(), name))
            .map(Header::value)
    }

    /// Every value of `name`, one per header line, in order.
    pub fn get_all<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a str> {
        self.list
            .iter()
            .filter(move |h| same_name(h.name(), name))
            .map(Header::value)
    }

    pub fn contains(&self, name: &str) -> bool {
        self.get(name).is_some()
    }

    /// Number of header lines named `name` (compact forms included). A list
    /// header with several comma-separated values on one line counts once.
    pub fn count(&self, name: &str) -> usize {
        self.list
            .iter()
            .filter(|h| same_name(h.name(), name))
            .count()
    }

    /// Appends a header after all others.
    pub fn push(&mut self, name: &str, value: impl Into<String>) {
        self.list_mut().push(Header::new(name, value.into()));
    }

    /// Inserts a header before all others, as a new top Via is.
    pub fn push_front(&mut self, name: &str, value: impl Into<String>) {
        self.list_mut().insert(0, Header::new(name, value.into()));
    }

    /// Replaces every header of `name` by one with `value`, at the position
    /// of the first, or appends it when there is none.
    pub fn set(&mut self, name: &str, value: impl Into<String>) {
        let header = Header::new(name, value.into());
        let list = self.list_mut();
        match list.iter().position(|h| same_name(h.name(), name)) {
            Some(first) => {
                list[first] = header;
                let mut index = 0;
                list.retain(|h| {
                    index += 1;
                    index - 1 == first || !same_name(h.name(), name)
                });
            }
            None => list.push(header),
        }
    }

    /// Removes every header of `name` and returns how many there were.
    pub fn remove(&mut self, name: &str) -> usize {
        let list = self.list_mut();
        let before = list.len();
        list.retain(|h| !same_name(h.name(), name));
        before - list.len()
    }

    /// Removes the first value of `name`. For a list header (Via, Route,
    /// Contact, ...) holding `a, b` on one line, only `a` is removed and the
    /// line keeps `b`.
    pub fn remove_first(&mut self, name: &str) -> Option<String> {
        let index = self.list.iter().position(|h| same_name(h.name(), name))?;
        let list = self.list_mut();
        let header = &mut list[index];
        if LIST_HEADERS.contains(&header.name()) {
            let elements = split_top_level(header.value(), ',');
            if let [first, rest @ ..] = elements.as_slice() {
                if rest.is_empty() {
                    return Some(list.remove(index).value.into_string());
                }
                let first = trim_lws(first).to_owned();
                let rest: Vec<&str> = rest.iter().map(|e| trim_lws(e)).collect();
                header.value = Text::Built(rest.join(", "));
                return Some(first);
            }
        }
        Some(list.remove(index).value.into_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_canonical_and_case_insensitive() {
        let mut headers = Headers::default();
        headers.push("cAlL-iD", "abc");
        headers.push("v", "SIP/2.0/UDP a");
        headers.push("X-Custom", "1");
        let names: Vec<&str> = headers.iter().map(Header::name).collect();
        assert_eq!(names, vec!["Call-ID", "Via", "X-Custom"]);
        assert_eq!(headers.get("i"), Some("abc"));
        assert_eq!(headers.get("VIA"), Some("SIP/2.0/UDP a"));
        assert_eq!(headers.get("x-custom"), Some("1"));
        assert!(!headers.contains("Route"));
    }

    #[test]
    fn count_includes_compact_forms() {
        let mut headers = Headers::default();
        headers.push("Call-ID", "a");
        headers.push("i", "b");
        headers.push("Via", "SIP/2.0/UDP a, SIP/2.0/UDP b");
        assert_eq!(headers.count("call-id"), 2);
        assert_eq!(headers.count("v"), 1);
        assert_eq!(headers.count("To"), 0);
    }

    #[test]
    fn set_keeps_first_position() {
        let mut headers = Headers::default();
        headers.push("X-A", "1");
        headers.push("Route", "<sip:r1>");
        headers.push("X-B", "2");
        headers.push("Route", "<sip:r2>");
        headers.set("route", "<sip:r3>");
        let lines: Vec<(&str, &str)> = headers.iter().map(|h| (h.name(), h.value())).collect();
        assert_eq!(
            lines,
            vec![("X-A", "1"), ("Route", "<sip:r3>"), ("X-B", "2")]
        );
        assert_eq!(headers.remove("Route"), 1);
        assert_eq!(headers.remove("Route"), 0);
    }

    #[test]
    fn remove_first_takes_one_list_element() {
        let mut headers = Headers::default();
        headers.push("Via", "SIP/2.0/UDP a, SIP/2.0/UDP b");
        headers.push("Via", "SIP/2.0/UDP c");
        headers.push_front("Via", "SIP/2.0/UDP top");
        assert_eq!(
            headers.remove_first("Via").as_deref(),
            Some("SIP/2.0/UDP top")
        );
        assert_eq!(headers.remove_first("v").as_deref(), Some("SIP/2.0/UDP a"));
        let rest: Vec<&str> = headers.get_all("Via").collect();
        assert_eq!(rest, vec!["SIP/2.0/UDP b", "SIP/2.0/UDP c"]);
    }

    #[test]
    fn remove_first_keeps_commas_of_other_headers() {
        let mut headers = Headers::default();
        headers.push("WWW-Authenticate", "Digest realm=\"a\", nonce=\"b\"");
        assert_eq!(
            headers.remove_first("WWW-Authenticate").as_deref(),
            Some("Digest realm=\"a\", nonce=\"b\"")
        );
        assert!(headers.is_empty());
    }
}
