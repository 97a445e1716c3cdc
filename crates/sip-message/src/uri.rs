//! SIP, SIPS and tel URIs (RFC 3261 section 19.1, RFC 3966), with other
//! schemes kept opaque.

use std::fmt;
use std::net::{Ipv4Addr, Ipv6Addr};
use std::str::FromStr;

use crate::text::percent_decode;
use crate::{ErrorKind, Params, ParseError};

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Scheme {
    Sip,
    Sips,
    Tel,
    /// Any other scheme, as written (RFC 4475 `unkscm`, `novelsc`).
    Other(String),
}

impl Scheme {
    pub fn as_str(&self) -> &str {
        match self {
            Scheme::Sip => "sip",
            Scheme::Sips => "sips",
            Scheme::Tel => "tel",
            Scheme::Other(name) => name,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Host {
    Domain(String),
    Ipv4(Ipv4Addr),
    Ipv6(Ipv6Addr),
}

impl Host {
    /// Parses a host as in a URI or Via: `[IPv6]`, dotted IPv4 or a domain.
    pub fn parse(text: &str) -> Result<Host, ParseError> {
        if let Some(inner) = text.strip_prefix('[') {
            // RFC 3261's ABNF allowed `2001:db8:::192.0.2.1`; RFC 5118 section
            // 4.10 asks to tolerate it, so three colons are read as two.
            let address = inner.strip_suffix(']').and_then(|a| {
                a.parse::<Ipv6Addr>()
                    .ok()
                    .or_else(|| a.replacen(":::", "::", 1).parse().ok())
            });
            return address.map(Host::Ipv6).ok_or_else(|| {
                ParseError::new(ErrorKind::Uri, format!("invalid IPv6 reference {text:?}"))
            });
        }
        if let Ok(address) = text.parse::<Ipv4Addr>() {
            return Ok(Host::Ipv4(address));
        }
        let valid = !text.is_empty()
            && text
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.');
        if valid {
            Ok(Host::Domain(text.to_owned()))
        } else {
            Err(ParseError::new(
                ErrorKind::Uri,
                format!("invalid host {text:?}"),
            ))
        }
    }
}

impl fmt::Display for Host {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Host::Domain(domain) => f.write_str(domain),
            Host::Ipv4(address) => write!(f, "{address}"),
            Host::Ipv6(address) => write!(f, "[{address}]"),
        }
    }
}

/// A URI. For `tel:` the number is in `user`; for other schemes everything
/// after the `:` is in `user`. Both have `Host::Domain("")`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Uri {
    pub scheme: Scheme,
    /// As on the wire (escapes kept); for tel: the number.
    pub user: Option<String>,
    pub password: Option<String>,
    pub host: Host,
    pub port: Option<u16>,
    pub params: Params,
    /// Text after `?`, without the `?`.
    pub headers: Option<String>,
}

impl Uri {
    pub fn parse(text: &str) -> Result<Uri, ParseError> {
        let invalid = |why: &str| ParseError::new(ErrorKind::Uri, format!("{why} in URI {text:?}"));
        if has_whitespace_or_control(text) {
            return Err(invalid("whitespace or control character"));
        }
        let (scheme, rest) = text
            .split_once(':')
            .ok_or_else(|| invalid("missing scheme"))?;
        let scheme_valid = scheme.starts_with(|c: char| c.is_ascii_alphabetic())
            && scheme
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "+-.".contains(c));
        if !scheme_valid {
            return Err(invalid("invalid scheme"));
        }
        let scheme = if scheme.eq_ignore_ascii_case("sip") {
            Scheme::Sip
        } else if scheme.eq_ignore_ascii_case("sips") {
            Scheme::Sips
        } else if scheme.eq_ignore_ascii_case("tel") {
            Scheme::Tel
        } else {
            Scheme::Other(scheme.to_owned())
        };
        match scheme {
            Scheme::Sip | Scheme::Sips => parse_sip(scheme, rest, text),
            Scheme::Tel => parse_tel(rest, text),
            Scheme::Other(_) if rest.is_empty() => Err(invalid("empty opaque part")),
            Scheme::Other(_) => Ok(Uri {
                user: Some(rest.to_owned()),
                ..Uri::empty(scheme)
            }),
        }
    }

    pub fn sip(user: Option<&str>, host: Host, port: Option<u16>) -> Uri {
        Uri {
            user: user.map(str::to_owned),
            host,
            port,
            ..Uri::empty(Scheme::Sip)
        }
    }

    /// User part with %HH escapes decoded once (RFC 3261 section 19.1.2).
    /// Bytes that do not form UTF-8 are replaced by U+FFFD.
    pub fn user_unescaped(&self) -> Option<String> {
        self.user_decoded().map(std::borrow::Cow::into_owned)
    }

    /// Returns the user part with escapes decoded, as
    /// [`Self::user_unescaped`] does, but borrowed when it has no escapes,
    /// which is the usual case and the one a registrar meets per REGISTER.
    pub fn user_decoded(&self) -> Option<std::borrow::Cow<'_, str>> {
        let user = self.user.as_deref()?;
        if !user.contains('%') {
            return Some(std::borrow::Cow::Borrowed(user));
        }
        let decoded = String::from_utf8_lossy(&percent_decode(user)).into_owned();
        Some(std::borrow::Cow::Owned(decoded))
    }

    fn empty(scheme: Scheme) -> Uri {
        Uri {
            scheme,
            user: None,
            password: None,
            host: Host::Domain(String::new()),
            port: None,
            params: Params::default(),
            headers: None,
        }
    }
}

/// Returns whether `text` contains a whitespace or control character. ASCII
/// text, the usual case, is checked byte by byte without decoding UTF-8.
fn has_whitespace_or_control(text: &str) -> bool {
    if text.is_ascii() {
        return text
            .bytes()
            .any(|b| b.is_ascii_whitespace() || b.is_ascii_control());
    }
    text.chars().any(|c| c.is_whitespace() || c.is_control())
}

fn parse_sip(scheme: Scheme, rest: &str, text: &str) -> Result<Uri, ParseError> {
    // The user part may hold ';' and '?' (RFC 4475 `semiuri`, `intmeth`)
    // but never an unescaped '@', so the first '@' ends it. Only then does
    // '?' start the URI headers.
    let (userinfo, rest) = match rest.split_once('@') {
        Some((userinfo, after)) => (Some(userinfo), after),
        None => (None, rest),
    };
    let (hostport_params, headers) = match rest.split_once('?') {
        Some((rest, headers)) => (rest, Some(headers.to_owned())),
        None => (rest, None),
    };
    let (user, password) = match userinfo.map(|u| u.split_once(':').unwrap_or((u, ""))) {
        Some(("", _)) => {
            return Err(ParseError::new(
                ErrorKind::Uri,
                format!("empty user part in URI {text:?}"),
            ));
        }
        Some((user, "")) => (Some(user.to_owned()), None),
        Some((user, password)) => (Some(user.to_owned()), Some(password.to_owned())),
        None => (None, None),
    };
    let (hostport, params) = match hostport_params.find(';') {
        Some(at) => hostport_params.split_at(at),
        None => (hostport_params, ""),
    };
    let (host, port) = parse_hostport(hostport)
        .map_err(|e| ParseError::new(ErrorKind::Uri, format!("{e} in URI {text:?}")))?;
    let params = Params::parse(params, ErrorKind::Uri)?;
    Ok(Uri {
        user,
        password,
        host,
        port,
        params,
        headers,
        ..Uri::empty(scheme)
    })
}

fn parse_tel(rest: &str, text: &str) -> Result<Uri, ParseError> {
    let (number, params) = match rest.find(';') {
        Some(at) => rest.split_at(at),
        None => (rest, ""),
    };
    if number.is_empty() {
        return Err(ParseError::new(
            ErrorKind::Uri,
            format!("empty number in URI {text:?}"),
        ));
    }
    let params = Params::parse(params, ErrorKind::Uri)?;
    Ok(Uri {
        user: Some(number.to_owned()),
        params,
        ..Uri::empty(Scheme::Tel)
    })
}

/// Splits `host[:port]`, where host may be an `[IPv6]` reference.
pub(crate) fn parse_hostport(text: &str) -> Result<(Host, Option<u16>), ParseError> {
    let (host, port) = if text.starts_with('[') {
        match text.find(']') {
            Some(end) => (&text[..=end], text[end + 1..].strip_prefix(':')),
            None => (text, None),
        }
    } else {
        match text.rsplit_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (text, None),
        }
    };
    let host = Host::parse(host)?;
    if host == Host::Domain(String::new()) {
        return Err(ParseError::new(
            ErrorKind::Uri,
            format!("missing host in {text:?}"),
        ));
    }
    let port = match port {
        Some(port) => Some(parse_port(port)?),
        None if text.starts_with('[') && !text.ends_with(']') => {
            return Err(ParseError::new(
                ErrorKind::Uri,
                format!("invalid host and port {text:?}"),
            ));
        }
        None => None,
    };
    Ok((host, port))
}

fn parse_port(text: &str) -> Result<u16, ParseError> {
    crate::text::parse_decimal(text, u64::from(u16::MAX))
        .and_then(|port| u16::try_from(port).ok())
        .ok_or_else(|| ParseError::new(ErrorKind::Uri, format!("invalid port {text:?}")))
}

impl fmt::Display for Uri {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:", self.scheme.as_str())?;
        if matches!(self.scheme, Scheme::Tel | Scheme::Other(_)) {
            f.write_str(self.user.as_deref().unwrap_or_default())?;
            return write!(f, "{}", self.params);
        }
        if let Some(user) = &self.user {
            f.write_str(user)?;
            if let Some(password) = &self.password {
                write!(f, ":{password}")?;
            }
            f.write_str("@")?;
        }
        write!(f, "{}", self.host)?;
        if let Some(port) = self.port {
            write!(f, ":{port}")?;
        }
        write!(f, "{}", self.params)?;
        if let Some(headers) = &self.headers {
            write!(f, "?{headers}")?;
        }
        Ok(())
    }
}

impl FromStr for Uri {
    type Err = ParseError;

    fn from_str(text: &str) -> Result<Uri, ParseError> {
        Uri::parse(text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sip_uri_parts() {
        let uri =
            Uri::parse("sips:alice:pw@Example.COM:05061;transport=tls;lr?subject=hi").unwrap();
        assert_eq!(uri.scheme, Scheme::Sips);
        assert_eq!(uri.user.as_deref(), Some("alice"));
        assert_eq!(uri.password.as_deref(), Some("pw"));
        assert_eq!(uri.host, Host::Domain("Example.COM".into()));
        assert_eq!(uri.port, Some(5061));
        assert_eq!(uri.params.value("transport"), Some("tls"));
        assert_eq!(uri.params.get("lr"), Some(None));
        assert_eq!(uri.headers.as_deref(), Some("subject=hi"));
        assert_eq!(
            uri.to_string(),
            "sips:alice:pw@Example.COM:5061;transport=tls;lr?subject=hi"
        );
    }

    #[test]
    fn ipv6_reference_with_port() {
        let uri = Uri::parse("sip:[2001:db8::1]:5060").unwrap();
        assert_eq!(uri.host, Host::Ipv6("2001:db8::1".parse().unwrap()));
        assert_eq!(uri.port, Some(5060));
        assert_eq!(uri.to_string(), "sip:[2001:db8::1]:5060");
        assert!(Uri::parse("sip:[2001:db8::1").is_err());
        assert!(Uri::parse("sip:2001:db8::1").is_err());
        assert!(Uri::parse("sip:[2001:db8::::1]").is_err());
    }

    #[test]
    fn user_with_semicolon_and_escapes() {
        let uri = Uri::parse("sip:user;par=u%40example.net@example.com").unwrap();
        assert_eq!(uri.user.as_deref(), Some("user;par=u%40example.net"));
        assert_eq!(
            uri.user_unescaped().as_deref(),
            Some("user;par=u@example.net")
        );
        assert!(uri.params.is_empty());
        let plain = Uri::parse("sip:1001@example.com").unwrap();
        assert!(matches!(
            plain.user_decoded(),
            Some(std::borrow::Cow::Borrowed("1001"))
        ));
        assert!(matches!(
            uri.user_decoded(),
            Some(std::borrow::Cow::Owned(user)) if user == "user;par=u@example.net"
        ));
    }

    #[test]
    fn tel_and_other_schemes() {
        let tel = Uri::parse("tel:+1-201-555-0123;phone-context=example.com").unwrap();
        assert_eq!(tel.user.as_deref(), Some("+1-201-555-0123"));
        assert_eq!(
            tel.to_string(),
            "tel:+1-201-555-0123;phone-context=example.com"
        );
        let other = Uri::parse("soap.beep://192.0.2.103:3002").unwrap();
        assert_eq!(other.scheme, Scheme::Other("soap.beep".into()));
        assert_eq!(other.to_string(), "soap.beep://192.0.2.103:3002");
    }

    #[test]
    fn malformed_uris() {
        for text in [
            "",
            "sip:",
            "<sip:a@b>",
            "sip:a@b; lr",
            "sip:a@b:70000",
            "sip:@b",
            "1x:y",
        ] {
            assert!(Uri::parse(text).is_err(), "{text:?} should be rejected");
        }
    }
}
