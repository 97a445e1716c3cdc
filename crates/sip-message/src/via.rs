//! Via header values (RFC 3261 section 20.42).

use std::fmt;

use crate::text::{is_lws, is_token, trim_lws};
use crate::uri::parse_hostport;
use crate::{ErrorKind, Host, Params, ParseError};

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Via {
    /// Transport token in upper case ("UDP", "TCP", "TLS", "WSS", ...).
    pub transport: String,
    pub host: Host,
    pub port: Option<u16>,
    pub params: Params,
}

impl Via {
    /// Parses one via-parm: `SIP/2.0/UDP host[:port];params`, with LWS
    /// allowed around `/`, `:` and `;`.
    pub fn parse(text: &str) -> Result<Via, ParseError> {
        let invalid = |why: &str| ParseError::new(ErrorKind::Via, format!("{why} in Via {text:?}"));
        let mut parts = text.splitn(3, '/');
        let (Some(name), Some(version), Some(rest)) = (parts.next(), parts.next(), parts.next())
        else {
            return Err(invalid("missing sent-protocol"));
        };
        if !trim_lws(name).eq_ignore_ascii_case("SIP") || trim_lws(version) != "2.0" {
            return Err(invalid("protocol other than SIP/2.0"));
        }
        let rest = rest.trim_start_matches(is_lws);
        let transport_end = rest.find(is_lws).unwrap_or(rest.len());
        let transport = &rest[..transport_end];
        if !is_token(transport) {
            return Err(invalid("invalid transport"));
        }
        let sent_by_and_params = trim_lws(&rest[transport_end..]);
        let (sent_by, params) = match sent_by_and_params.find(';') {
            Some(at) => sent_by_and_params.split_at(at),
            None => (sent_by_and_params, ""),
        };
        let sent_by: String = sent_by.chars().filter(|c| !is_lws(*c)).collect();
        let (host, port) = parse_hostport(&sent_by).map_err(|_| invalid("invalid sent-by"))?;
        let params = Params::parse(params, ErrorKind::Via)?;
        if let Some(Some(rport)) = params.get("rport") {
            rport.parse::<u16>().map_err(|_| invalid("invalid rport"))?;
        }
        Ok(Via {
            transport: transport.to_ascii_uppercase(),
            host,
            port,
            params,
        })
    }

    pub fn branch(&self) -> Option<&str> {
        self.params.value("branch")
    }

    pub fn received(&self) -> Option<&str> {
        self.params.value("received")
    }

    /// `Some(None)` for a bare `;rport` (RFC 3581 request), `Some(Some(port))`
    /// once filled in.
    pub fn rport(&self) -> Option<Option<u16>> {
        self.params
            .get("rport")
            .map(|value| value.and_then(|v| v.parse().ok()))
    }
}

impl fmt::Display for Via {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SIP/2.0/{} {}", self.transport, self.host)?;
        if let Some(port) = self.port {
            write!(f, ":{port}")?;
        }
        write!(f, "{}", self.params)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn folded_via_with_lws() {
        let via =
            Via::parse("SIP  /    2.0   / udp  192.168.255.111   ; branch= z9hG4bK30239").unwrap();
        assert_eq!(via.transport, "UDP");
        assert_eq!(via.host, Host::Ipv4("192.168.255.111".parse().unwrap()));
        assert_eq!(via.branch(), Some("z9hG4bK30239"));
        assert_eq!(
            via.to_string(),
            "SIP/2.0/UDP 192.168.255.111;branch=z9hG4bK30239"
        );
    }

    #[test]
    fn ipv6_sent_by_and_rport() {
        let via = Via::parse("SIP/2.0/TCP [2001:db8::1]:5060;rport;branch=z9hG4bKa").unwrap();
        assert_eq!(via.host, Host::Ipv6("2001:db8::1".parse().unwrap()));
        assert_eq!(via.port, Some(5060));
        assert_eq!(via.rport(), Some(None));
        let via =
            Via::parse("SIP/2.0/UDP h.example.com;received=[2001:db8::9:255];rport=5070").unwrap();
        assert_eq!(via.received(), Some("[2001:db8::9:255]"));
        assert_eq!(via.rport(), Some(Some(5070)));
    }

    #[test]
    fn malformed_vias() {
        for text in [
            "SIP/7.0/UDP h",
            "SIP/2.0/UDP",
            "SIP/2.0 UDP h",
            "SIP/2.0/UDP h;;",
            "SIP/2.0/UDP h;rport=x",
        ] {
            assert!(Via::parse(text).is_err(), "{text:?} should be rejected");
        }
    }
}
