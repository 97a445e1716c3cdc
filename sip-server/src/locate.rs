//! Locating the SIP server of an outbound target (RFC 3263), sans-IO.
//!
//! An [`OutboundTarget`] is what a trunk's `outbound` key names: a SIP or
//! SIPS URI, a host, or the older `IP:PORT`. [`OutboundTarget::plan`]
//! returns the DNS look-ups it needs. A numeric IP address or an explicit
//! port skips NAPTR and SRV (RFC 3263 section 4). The driver runs the
//! queries and hands the records to [`srv_queries_from_naptr`] and
//! [`order_srv`], which choose the transports and the order of the servers.
//! The resulting [`Destination`] list is tried in order: the B2BUA moves to
//! the next one when a request to the current one fails with a transport
//! error, a timeout or 503.

use std::net::{IpAddr, SocketAddr};

use sip_message::{Host, Scheme, Uri};

use crate::transaction::TransportKind;

/// Default port of SIP over UDP and TCP (RFC 3261 section 19.1.2).
pub const SIP_PORT: u16 = 5060;
/// Default port of SIP over TLS.
pub const SIPS_PORT: u16 = 5061;

/// Target of calls to numbers, as a trunk's `outbound` key names it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OutboundTarget {
    /// A `sips:` URI: every hop must use TLS.
    pub secure: bool,
    pub host: Host,
    pub port: Option<u16>,
    /// The URI's `transport` parameter.
    pub transport: Option<TransportKind>,
}

/// An `outbound` value that names no usable SIP server.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum TargetError {
    #[error("invalid SIP URI or host {0:?}; expected sip:HOST, sips:HOST, HOST:PORT or IP:PORT")]
    Invalid(String),
    #[error("scheme {0:?} is not sip or sips")]
    Scheme(String),
    #[error("transport {0:?} is not udp, tcp or tls")]
    Transport(String),
    #[error("a sips URI needs TLS, but it names transport {0}")]
    InsecureTransport(&'static str),
    #[error("the URI has a user part; the PBX puts the dialed number there")]
    UserPart,
}

/// One server to try: the transport, its address, and the name its TLS
/// certificate must carry.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Destination {
    pub transport: TransportKind,
    pub addr: SocketAddr,
    /// The host of the configured URI, not the SRV target, because RFC
    /// 5922 section 4 checks the certificate against the domain the user
    /// asked for. An IP address for a numeric target.
    pub server_name: String,
}

/// The DNS look-ups a target needs before it can be dialed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Plan {
    /// A numeric IP address: no look-up at all.
    Resolved(Destination),
    /// An explicit port: the host's A and AAAA records only.
    Address {
        host: String,
        port: u16,
        transport: TransportKind,
    },
    /// A transport but no port: the SRV records of that transport, then
    /// A and AAAA at its default port when there are none.
    Srv { host: String, query: SrvQuery },
    /// Neither: NAPTR, then SRV, then A and AAAA.
    Naptr { host: String },
}

/// An SRV name to query and the transport its servers take.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SrvQuery {
    pub transport: TransportKind,
    /// Such as `_sips._tcp.example.com`.
    pub name: String,
}

/// The fields of a NAPTR record that RFC 3263 uses.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NaptrRule {
    pub order: u16,
    pub preference: u16,
    pub flags: String,
    /// Such as `SIPS+D2T`.
    pub services: String,
    /// The SRV name to query next.
    pub replacement: String,
}

/// The fields of an SRV record (RFC 2782).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SrvRecord {
    pub priority: u16,
    pub weight: u16,
    pub port: u16,
    /// Host name of the server; `.` means the service is not offered.
    pub target: String,
}

impl std::fmt::Display for OutboundTarget {
    /// Writes the target as a URI, `sips:host:port;transport=tcp`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let scheme = if self.secure { "sips" } else { "sip" };
        write!(f, "{scheme}:{}", self.host)?;
        if let Some(port) = self.port {
            write!(f, ":{port}")?;
        }
        if let Some(transport) = self.transport {
            write!(
                f,
                ";transport={}",
                transport.via_token().to_ascii_lowercase()
            )?;
        }
        Ok(())
    }
}

impl OutboundTarget {
    /// Parses `sip:HOST[:PORT][;transport=T]`, `sips:HOST[:PORT]`,
    /// `HOST[:PORT]` or `IP:PORT`. The last form, the only one before
    /// TLS to trunks existed, still means UDP.
    pub fn parse(text: &str) -> Result<OutboundTarget, TargetError> {
        let text = text.trim();
        if let Ok(addr) = text.parse::<SocketAddr>() {
            return Ok(OutboundTarget {
                secure: false,
                host: host_of(addr.ip()),
                port: Some(addr.port()),
                transport: None,
            });
        }
        // `HOST:PORT` has digits after its colon; anything else with a
        // colon is a URI, so `tel:...` gets a clear error about its scheme.
        let has_scheme = text.split_once(':').is_some_and(|(scheme, rest)| {
            scheme.eq_ignore_ascii_case("sip")
                || scheme.eq_ignore_ascii_case("sips")
                || !rest.starts_with(|c: char| c.is_ascii_digit())
        });
        let written = if has_scheme {
            text.to_owned()
        } else {
            format!("sip:{text}")
        };
        let uri = Uri::parse(&written).map_err(|_| TargetError::Invalid(text.to_owned()))?;
        Self::from_uri(&uri, text)
    }

    fn from_uri(uri: &Uri, text: &str) -> Result<OutboundTarget, TargetError> {
        let secure = match &uri.scheme {
            Scheme::Sip => false,
            Scheme::Sips => true,
            other => return Err(TargetError::Scheme(other.as_str().to_owned())),
        };
        if uri.user.is_some() {
            return Err(TargetError::UserPart);
        }
        if matches!(&uri.host, Host::Domain(domain) if domain.is_empty()) {
            return Err(TargetError::Invalid(text.to_owned()));
        }
        let transport = match uri.params.get("transport") {
            None => None,
            Some(value) => {
                let value = value.unwrap_or_default();
                let kind = TransportKind::from_token(value)
                    .filter(|kind| {
                        matches!(
                            kind,
                            TransportKind::Udp | TransportKind::Tcp | TransportKind::Tls
                        )
                    })
                    .ok_or_else(|| TargetError::Transport(value.to_owned()))?;
                Some(kind)
            }
        };
        // A sips URI runs TLS over TCP, written transport=tcp or the
        // deprecated transport=tls (RFC 3261 section 26.2.2); UDP cannot
        // carry it.
        if secure && transport == Some(TransportKind::Udp) {
            return Err(TargetError::InsecureTransport("UDP"));
        }
        Ok(OutboundTarget {
            secure,
            host: uri.host.clone(),
            port: uri.port,
            transport,
        })
    }

    /// Returns the transport chosen without NAPTR: the explicit one, TLS
    /// for sips, UDP otherwise (RFC 3263 section 4.1). A sips URI with
    /// transport=tcp means TLS over TCP.
    pub fn default_transport(&self) -> TransportKind {
        if self.secure {
            return TransportKind::Tls;
        }
        self.transport.unwrap_or(TransportKind::Udp)
    }

    /// Decides the look-ups following RFC 3263 section 4.
    pub fn plan(&self) -> Plan {
        let transport = self.default_transport();
        let port = self.port.unwrap_or(default_port(transport));
        let domain = match &self.host {
            Host::Ipv4(address) => return self.resolved(IpAddr::V4(*address), port, transport),
            Host::Ipv6(address) => return self.resolved(IpAddr::V6(*address), port, transport),
            Host::Domain(domain) => domain.clone(),
        };
        if self.port.is_some() {
            return Plan::Address {
                host: domain,
                port,
                transport,
            };
        }
        if self.transport.is_some() || self.secure {
            let query = srv_query(&domain, transport, self.secure);
            return Plan::Srv {
                host: domain,
                query,
            };
        }
        Plan::Naptr { host: domain }
    }

    fn resolved(&self, ip: IpAddr, port: u16, transport: TransportKind) -> Plan {
        Plan::Resolved(Destination {
            transport,
            addr: SocketAddr::new(ip, port),
            server_name: ip.to_string(),
        })
    }

    /// The name a server certificate must carry: the host as configured.
    pub fn server_name(&self) -> String {
        match &self.host {
            Host::Domain(domain) => domain.clone(),
            Host::Ipv4(address) => address.to_string(),
            Host::Ipv6(address) => address.to_string(),
        }
    }

    /// Returns the Request-URI of a call to `number`: the configured URI
    /// with the number as user part.
    pub fn request_uri(&self, number: &str) -> Uri {
        let mut uri = Uri::sip(Some(number), self.host.clone(), self.port);
        if self.secure {
            uri.scheme = Scheme::Sips;
        }
        if let Some(transport) = self.transport {
            let token = transport.via_token().to_ascii_lowercase();
            uri.params.set("transport", Some(&token));
        }
        uri
    }

    /// SRV queries when the domain has no NAPTR records (RFC 3263 section
    /// 4.1): only `_sips._tcp` for a sips URI; for a sip URI TLS first,
    /// then TCP, then UDP, because a trunk that offers TLS should get it.
    pub fn srv_queries_without_naptr(&self, domain: &str) -> Vec<SrvQuery> {
        if self.secure {
            return vec![srv_query(domain, TransportKind::Tls, true)];
        }
        [TransportKind::Tls, TransportKind::Tcp, TransportKind::Udp]
            .into_iter()
            .map(|transport| srv_query(domain, transport, false))
            .collect()
    }

    /// Transport and port of the A and AAAA fallback when no SRV record
    /// exists (RFC 3263 section 4.2).
    pub fn address_fallback(&self) -> (TransportKind, u16) {
        let transport = self.default_transport();
        (transport, self.port.unwrap_or(default_port(transport)))
    }
}

/// Default port of `transport`: 5061 for TLS, 5060 otherwise.
pub fn default_port(transport: TransportKind) -> u16 {
    match transport {
        TransportKind::Tls | TransportKind::Wss => SIPS_PORT,
        _ => SIP_PORT,
    }
}

fn srv_query(domain: &str, transport: TransportKind, secure: bool) -> SrvQuery {
    let (service, protocol) = match transport {
        TransportKind::Udp => ("_sip", "_udp"),
        TransportKind::Tls => ("_sips", "_tcp"),
        _ if secure => ("_sips", "_tcp"),
        _ => ("_sip", "_tcp"),
    };
    SrvQuery {
        transport,
        name: format!("{service}.{protocol}.{domain}"),
    }
}

fn host_of(ip: IpAddr) -> Host {
    match ip {
        IpAddr::V4(v4) => Host::Ipv4(v4),
        IpAddr::V6(v6) => Host::Ipv6(v6),
    }
}

/// Chooses, from a domain's NAPTR records, the SRV names to query in
/// order (RFC 3263 section 4.1). Rules other than terminal `S` rules for
/// `SIP+D2U`, `SIP+D2T` and `SIPS+D2T` are dropped, and a sips target
/// keeps only `SIPS+D2T`. Rules go by order, then preference.
pub fn srv_queries_from_naptr(rules: &[NaptrRule], secure: bool) -> Vec<SrvQuery> {
    let mut usable: Vec<&NaptrRule> = rules
        .iter()
        .filter(|rule| rule.flags.eq_ignore_ascii_case("s"))
        .filter(|rule| naptr_transport(&rule.services, secure).is_some())
        .collect();
    usable.sort_by_key(|rule| (rule.order, rule.preference));
    usable
        .into_iter()
        .filter_map(|rule| {
            let transport = naptr_transport(&rule.services, secure)?;
            let name = rule.replacement.trim_end_matches('.').to_owned();
            Some(SrvQuery { transport, name })
        })
        .collect()
}

fn naptr_transport(services: &str, secure: bool) -> Option<TransportKind> {
    let transport = match services.to_ascii_uppercase().as_str() {
        "SIP+D2U" => TransportKind::Udp,
        "SIP+D2T" => TransportKind::Tcp,
        "SIPS+D2T" => TransportKind::Tls,
        _ => return None,
    };
    (!secure || transport == TransportKind::Tls).then_some(transport)
}

/// Orders SRV records as RFC 2782 asks: lowest priority first, and within
/// one priority a weighted random order. `random(total)` returns a number
/// in `0..=total`, drawn uniformly; tests pass a fixed sequence. A lone
/// record whose target is `.` says the service is not offered, so the
/// result is empty.
pub fn order_srv(records: Vec<SrvRecord>, random: &mut impl FnMut(u32) -> u32) -> Vec<SrvRecord> {
    let mut records: Vec<SrvRecord> = records
        .into_iter()
        .filter(|record| record.target != "." && !record.target.is_empty())
        .collect();
    records.sort_by_key(|record| record.priority);
    let mut ordered = Vec::with_capacity(records.len());
    while !records.is_empty() {
        let priority = records[0].priority;
        let split = records
            .iter()
            .position(|record| record.priority != priority)
            .unwrap_or(records.len());
        let mut group: Vec<SrvRecord> = records.drain(..split).collect();
        // Zero weights go first so that they have a small chance of being
        // chosen, as RFC 2782 describes.
        group.sort_by_key(|record| record.weight != 0);
        while !group.is_empty() {
            let total: u32 = group.iter().map(|record| u32::from(record.weight)).sum();
            let pick = random(total).min(total);
            let mut running = 0;
            let index = group
                .iter()
                .position(|record| {
                    running += u32::from(record.weight);
                    running >= pick
                })
                .unwrap_or(0);
            ordered.push(group.remove(index));
        }
    }
    ordered
}

#[cfg(test)]
mod tests;
