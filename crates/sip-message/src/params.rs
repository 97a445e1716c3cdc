//! `;name[=value]` parameter lists of URIs and header values.

use std::fmt;

use crate::text::{is_lws, split_top_level, trim_lws};
use crate::{ErrorKind, ParseError};

/// Parameters in order; names compare case-insensitively.
///
/// Values are stored as written, so a quoted value keeps its quotes and
/// serializes unchanged.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Params(Vec<(String, Option<String>)>);

impl Params {
    /// Parses `;a=b;c` (the leading `;` included), allowing LWS around `;`
    /// and `=`. An empty parameter (`;;`) is an error, as RFC 4475 section
    /// 3.1.2.1 requires.
    pub(crate) fn parse(text: &str, kind: ErrorKind) -> Result<Params, ParseError> {
        let text = trim_lws(text);
        if text.is_empty() {
            return Ok(Params::default());
        }
        let Some(list) = text.strip_prefix(';') else {
            return Err(ParseError::new(
                kind,
                format!("expected ';' before parameters {text:?}"),
            ));
        };
        let mut params = Vec::new();
        for item in split_top_level(list, ';') {
            params.push(parse_one(item, kind)?);
        }
        Ok(Params(params))
    }

    pub fn get(&self, name: &str) -> Option<Option<&str>> {
        self.0
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_deref())
    }

    pub fn value(&self, name: &str) -> Option<&str> {
        self.get(name).flatten()
    }

    pub fn contains(&self, name: &str) -> bool {
        self.get(name).is_some()
    }

    /// Replaces the value of `name` in place, or appends it.
    pub fn set(&mut self, name: &str, value: Option<&str>) {
        let value = value.map(str::to_owned);
        match self
            .0
            .iter_mut()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
        {
            Some(entry) => entry.1 = value,
            None => self.0.push((name.to_owned(), value)),
        }
    }

    pub fn remove(&mut self, name: &str) {
        self.0.retain(|(n, _)| !n.eq_ignore_ascii_case(name));
    }

    pub fn iter(&self) -> impl Iterator<Item = (&str, Option<&str>)> {
        self.0.iter().map(|(n, v)| (n.as_str(), v.as_deref()))
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

fn parse_one(item: &str, kind: ErrorKind) -> Result<(String, Option<String>), ParseError> {
    let (name, value) = match item.split_once('=') {
        Some((name, value)) => (trim_lws(name), Some(trim_lws(value))),
        None => (trim_lws(item), None),
    };
    let valid_name = !name.is_empty() && !name.contains(is_lws) && !name.contains(['"', '<', '>']);
    if !valid_name {
        return Err(ParseError::new(kind, format!("invalid parameter {item:?}")));
    }
    if let Some(value) = value {
        let quoted = value.len() >= 2 && value.starts_with('"') && value.ends_with('"');
        if value.is_empty() || (!quoted && (value.contains(is_lws) || value.contains('"'))) {
            return Err(ParseError::new(
                kind,
                format!("invalid value of parameter {item:?}"),
            ));
        }
    }
    Ok((name.to_owned(), value.map(str::to_owned)))
}

impl fmt::Display for Params {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (name, value) in &self.0 {
            match value {
                Some(value) => write!(f, ";{name}={value}")?,
                None => write!(f, ";{name}")?,
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn params_with_lws_and_flags() {
        let params = Params::parse(" ;  tag    = 1918 ; lr ;Q=0.33", ErrorKind::NameAddr).unwrap();
        assert_eq!(params.value("TAG"), Some("1918"));
        assert_eq!(params.get("lr"), Some(None));
        assert_eq!(params.value("q"), Some("0.33"));
        assert_eq!(params.to_string(), ";tag=1918;lr;Q=0.33");
    }

    #[test]
    fn empty_parameter_is_an_error() {
        assert!(Params::parse(";;a", ErrorKind::Via).is_err());
        assert!(Params::parse(";a=", ErrorKind::Via).is_err());
    }

    #[test]
    fn set_replaces_in_place() {
        let mut params = Params::parse(";a=1;b", ErrorKind::Via).unwrap();
        params.set("A", Some("2"));
        params.set("c", None);
        params.remove("b");
        assert_eq!(params.to_string(), ";a=2;c");
    }
}
