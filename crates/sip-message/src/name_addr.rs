//! name-addr and addr-spec with header parameters (RFC 3261 section 20.10).

use std::fmt;

use crate::text::{is_lws, is_token_char, quote, read_quoted, trim_lws};
use crate::{ErrorKind, Params, ParseError, Uri};

/// name-addr or addr-spec with header parameters (From, To, Contact, Route).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NameAddr {
    /// Display name with quotes removed and quoted-pairs resolved.
    pub display_name: Option<String>,
    pub uri: Uri,
    pub params: Params,
}

impl NameAddr {
    pub fn new(uri: Uri) -> NameAddr {
        NameAddr {
            display_name: None,
            uri,
            params: Params::default(),
        }
    }

    pub fn parse(text: &str) -> Result<NameAddr, ParseError> {
        let text = trim_lws(text);
        if text.starts_with('"') {
            let (display_name, rest) = read_quoted(text, ErrorKind::NameAddr)?;
            let rest = trim_lws(rest);
            if !rest.starts_with('<') {
                return Err(invalid("expected '<' after the display name", text));
            }
            return parse_bracketed(Some(display_name), rest, text);
        }
        match text.find('<') {
            Some(at) => {
                let display_name = parse_token_display_name(&text[..at], text)?;
                parse_bracketed(display_name, &text[at..], text)
            }
            None => parse_addr_spec(text),
        }
    }

    pub fn tag(&self) -> Option<&str> {
        self.params.value("tag")
    }

    /// Returns the `tag` parameter of a From or To value without decoding
    /// its URI or copying anything. For a value that [`NameAddr::parse`]
    /// accepts it is the same as `parse(text)?.tag()`; a malformed value
    /// may give a tag where `parse` gives an error.
    pub fn tag_of(text: &str) -> Option<&str> {
        let params = header_params(text)?;
        split_unquoted(params, ';').find_map(|param| {
            let (name, value) = param.split_once('=')?;
            trim_lws(name)
                .eq_ignore_ascii_case("tag")
                .then(|| trim_lws(value))
        })
    }

    pub fn set_tag(&mut self, tag: &str) {
        self.params.set("tag", Some(tag));
    }
}

/// Returns the header parameters of a name-addr or addr-spec value, the
/// text after `>` or, without brackets, from the first `;`.
fn header_params(text: &str) -> Option<&str> {
    let text = trim_lws(text);
    let rest = match text.strip_prefix('"') {
        Some(quoted) => &quoted[closing_quote(quoted)? + 1..],
        None => text,
    };
    match rest.find('<') {
        Some(at) => {
            let bracketed = &rest[at..];
            Some(&bracketed[bracketed.find('>')? + 1..])
        }
        None => Some(rest.find(';').map_or("", |at| &rest[at..])),
    }
}

/// Byte offset of the `"` that closes a quoted string whose opening quote
/// is just before `text`.
fn closing_quote(text: &str) -> Option<usize> {
    let mut escaped = false;
    for (at, c) in text.char_indices() {
        match c {
            _ if escaped => escaped = false,
            '\\' => escaped = true,
            '"' => return Some(at),
            _ => {}
        }
    }
    None
}

/// Splits `text` at each `separator` outside quoted strings.
fn split_unquoted(text: &str, separator: char) -> impl Iterator<Item = &str> {
    let mut rest = Some(text);
    std::iter::from_fn(move || {
        let current = rest?;
        let mut in_quotes = false;
        let mut escaped = false;
        for (at, c) in current.char_indices() {
            match c {
                _ if escaped => escaped = false,
                '\\' if in_quotes => escaped = true,
                '"' => in_quotes = !in_quotes,
                _ if c == separator && !in_quotes => {
                    rest = Some(&current[at + c.len_utf8()..]);
                    return Some(&current[..at]);
                }
                _ => {}
            }
        }
        rest = None;
        Some(current)
    })
}

fn invalid(why: &str, text: &str) -> ParseError {
    ParseError::new(ErrorKind::NameAddr, format!("{why} in {text:?}"))
}

/// An unquoted display name is a sequence of tokens separated by LWS; RFC
/// 4475 `lwsdisp` has no space before `<`, which is allowed.
fn parse_token_display_name(text: &str, whole: &str) -> Result<Option<String>, ParseError> {
    let name = trim_lws(text);
    if name.is_empty() {
        return Ok(None);
    }
    if !name.chars().all(|c| is_token_char(c) || is_lws(c)) {
        return Err(invalid("display name that needs quotes", whole));
    }
    Ok(Some(
        name.split(is_lws)
            .filter(|w| !w.is_empty())
            .collect::<Vec<_>>()
            .join(" "),
    ))
}

/// Parses `<uri>params` at the start of `text`.
fn parse_bracketed(
    display_name: Option<String>,
    text: &str,
    whole: &str,
) -> Result<NameAddr, ParseError> {
    let inner = text
        .strip_prefix('<')
        .ok_or_else(|| invalid("expected '<'", whole))?;
    let (uri, params) = inner
        .split_once('>')
        .ok_or_else(|| invalid("missing '>'", whole))?;
    let uri = Uri::parse(uri)?;
    let params = Params::parse(params, ErrorKind::NameAddr)?;
    Ok(NameAddr {
        display_name,
        uri,
        params,
    })
}

/// Without brackets every `;` parameter belongs to the header, not to the
/// URI (RFC 3261 section 20.10), and URI headers (`?`) are not allowed
/// (RFC 4475 `regbadct`).
fn parse_addr_spec(text: &str) -> Result<NameAddr, ParseError> {
    let (uri, params) = match text.find(';') {
        Some(at) => text.split_at(at),
        None => (text, ""),
    };
    let uri = trim_lws(uri);
    if uri.contains(['?', ',']) {
        return Err(invalid("URI with '?' or ',' outside '<>'", text));
    }
    let uri = Uri::parse(uri)?;
    let params = Params::parse(params, ErrorKind::NameAddr)?;
    Ok(NameAddr {
        display_name: None,
        uri,
        params,
    })
}

impl fmt::Display for NameAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(name) = &self.display_name {
            write!(f, "{} ", quote(name))?;
        }
        write!(f, "<{}>{}", self.uri, self.params)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tag_of_matches_parsed_tag() {
        for text in [
            "<sip:alice@example.com>;tag=1928301774",
            "<sip:alice@example.com>",
            "sip:alice@example.com;tag=abc",
            "sip:alice@example.com",
            "Alice <sip:alice@example.com;tag=uri-param>;foo=bar",
            r#""A; tag=x \" <" <sip:alice@example.com> ; TAG = 98asjd8 ;x"#,
            r#"<sip:a@b>;q="tag=no;tag=no";tag=yes"#,
            "<sip:a@b>;tag",
        ] {
            let parsed = NameAddr::parse(text).expect("valid name-addr");
            assert_eq!(NameAddr::tag_of(text), parsed.tag(), "{text}");
        }
    }

    #[test]
    fn quoted_display_name_with_escapes() {
        let addr =
            NameAddr::parse(r#""J Rosenberg \\\""  <sip:jdrosen@example.com> ; tag = 98asjd8"#)
                .unwrap();
        assert_eq!(addr.display_name.as_deref(), Some(r#"J Rosenberg \""#));
        assert_eq!(addr.tag(), Some("98asjd8"));
        assert_eq!(
            addr.to_string(),
            r#""J Rosenberg \\\"" <sip:jdrosen@example.com>;tag=98asjd8"#
        );
    }

    #[test]
    fn token_display_name_without_space() {
        let addr = NameAddr::parse("caller<sip:caller@example.com>;tag=323").unwrap();
        assert_eq!(addr.display_name.as_deref(), Some("caller"));
        assert_eq!(addr.uri.user.as_deref(), Some("caller"));
    }

    #[test]
    fn addr_spec_params_belong_to_header() {
        let addr = NameAddr::parse("sip:+19725552222@gw1.example.net;unknownparam").unwrap();
        assert!(addr.uri.params.is_empty());
        assert_eq!(addr.params.get("unknownparam"), Some(None));
        let addr = NameAddr::parse("<sip:+19725552222@gw1.example.net;unknownparam>").unwrap();
        assert_eq!(addr.uri.params.get("unknownparam"), Some(None));
        assert!(addr.params.is_empty());
    }

    #[test]
    fn malformed_name_addrs() {
        for text in [
            r#""Mr. J. User <sip:j.user@example.com>"#,
            "< sip:t.watson@example.org >",
            "Bell, Alexander <sip:a.g.bell@example.com>",
            "sip:user@example.com?Route=%3Csip:sip.example.com%3E",
            "<sip:a@b",
            "",
        ] {
            assert!(
                NameAddr::parse(text).is_err(),
                "{text:?} should be rejected"
            );
        }
    }

    #[test]
    fn set_tag_adds_or_replaces() {
        let mut addr = NameAddr::parse("<sip:a@b>").unwrap();
        addr.set_tag("x1");
        assert_eq!(addr.to_string(), "<sip:a@b>;tag=x1");
        addr.set_tag("x2");
        assert_eq!(addr.tag(), Some("x2"));
    }
}
