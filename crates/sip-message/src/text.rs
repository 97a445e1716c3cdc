//! Lexical helpers shared by the header value parsers (RFC 3261 section 25.1).

use crate::{ErrorKind, ParseError};

/// Characters of the `token` rule.
pub(crate) fn is_token_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || "-.!%*_+`'~".contains(c)
}

pub(crate) fn is_token(text: &str) -> bool {
    !text.is_empty() && text.chars().all(is_token_char)
}

pub(crate) fn is_lws(c: char) -> bool {
    c == ' ' || c == '\t' || c == '\r' || c == '\n'
}

pub(crate) fn trim_lws(text: &str) -> &str {
    text.trim_matches(is_lws)
}

/// Splits `text` at every `separator` that is outside a quoted string and
/// outside `<...>`, so a comma inside a display name or a URI does not split.
/// An unterminated quote or bracket runs to the end of the text: the caller's
/// parser of each piece reports it.
pub(crate) fn split_top_level(text: &str, separator: char) -> Vec<&str> {
    let mut pieces = Vec::new();
    let mut start = 0;
    let mut in_quotes = false;
    let mut in_brackets = false;
    let mut escaped = false;
    for (i, c) in text.char_indices() {
        if in_quotes {
            if escaped {
                escaped = false;
            } else if c == '\\' {
                escaped = true;
            } else if c == '"' {
                in_quotes = false;
            }
            continue;
        }
        match c {
            '"' => in_quotes = true,
            '<' => in_brackets = true,
            '>' => in_brackets = false,
            _ if c == separator && !in_brackets => {
                pieces.push(&text[start..i]);
                start = i + c.len_utf8();
            }
            _ => {}
        }
    }
    pieces.push(&text[start..]);
    pieces
}

/// Reads the quoted string at the start of `text` (which begins with `"`),
/// returning its content with quoted-pairs resolved and the text after the
/// closing quote.
pub(crate) fn read_quoted(text: &str, kind: ErrorKind) -> Result<(String, &str), ParseError> {
    let mut chars = text.char_indices();
    if chars.next().map(|(_, c)| c) != Some('"') {
        return Err(ParseError::new(
            kind,
            format!("expected a quoted string in {text:?}"),
        ));
    }
    let mut content = String::new();
    while let Some((i, c)) = chars.next() {
        match c {
            '"' => return Ok((content, &text[i + 1..])),
            '\\' => match chars.next() {
                Some((_, escaped)) => content.push(escaped),
                None => break,
            },
            _ => content.push(c),
        }
    }
    Err(ParseError::new(
        kind,
        format!("unterminated quoted string in {text:?}"),
    ))
}

/// Writes `text` as a quoted string, escaping `"` and `\`.
pub(crate) fn quote(text: &str) -> String {
    let mut quoted = String::with_capacity(text.len() + 2);
    quoted.push('"');
    for c in text.chars() {
        if c == '"' || c == '\\' {
            quoted.push('\\');
        }
        quoted.push(c);
    }
    quoted.push('"');
    quoted
}

/// Parses a decimal number that may have leading zeros (RFC 4475 uses
/// `0068`), rejecting anything that is not all digits or exceeds `max`.
pub(crate) fn parse_decimal(text: &str, max: u64) -> Option<u64> {
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let significant = text.trim_start_matches('0');
    // More than 20 digits cannot fit a u64; checking first avoids overflow.
    if significant.len() > 20 {
        return None;
    }
    let mut value: u64 = 0;
    for b in significant.bytes() {
        value = value.checked_mul(10)?.checked_add(u64::from(b - b'0'))?;
    }
    (value <= max).then_some(value)
}

/// Decodes `%HH` escapes once; an invalid escape is kept as written.
pub(crate) fn percent_decode(text: &str) -> Vec<u8> {
    let bytes = text.as_bytes();
    let mut decoded = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let escape = bytes.get(i + 1..i + 3).and_then(|hex| {
            let hex = std::str::from_utf8(hex).ok()?;
            u8::from_str_radix(hex, 16).ok()
        });
        match (bytes[i], escape) {
            (b'%', Some(byte)) => {
                decoded.push(byte);
                i += 3;
            }
            (byte, _) => {
                decoded.push(byte);
                i += 1;
            }
        }
    }
    decoded
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn split_ignores_commas_in_quotes_and_brackets() {
        let pieces = split_top_level(r#""a, \"b" <sip:x;p=1,2>, <sip:y>"#, ',');
        assert_eq!(pieces, vec![r#""a, \"b" <sip:x;p=1,2>"#, " <sip:y>"]);
    }

    #[test]
    fn decimal_with_leading_zeros_and_limits() {
        assert_eq!(parse_decimal("0068", 255), Some(68));
        assert_eq!(parse_decimal("256", 255), None);
        assert_eq!(parse_decimal("-1", 255), None);
        assert_eq!(parse_decimal("99999999999999999999999", u64::MAX), None);
        assert_eq!(parse_decimal("", 10), None);
    }

    #[test]
    fn percent_decode_once() {
        assert_eq!(percent_decode("v%61lue%25%34%31"), b"value%41");
        assert_eq!(percent_decode("%0"), b"%0");
        assert_eq!(percent_decode("%00%00"), vec![0, 0]);
    }

    #[test]
    fn quoted_pairs_are_resolved() {
        let (content, rest) = read_quoted(r#""J \"R\\" <x>"#, ErrorKind::NameAddr).unwrap();
        assert_eq!(content, r#"J "R\"#);
        assert_eq!(rest, " <x>");
        assert!(read_quoted(r#""open"#, ErrorKind::NameAddr).is_err());
    }
}
