//! RFC 3263 look-ups of trunk host names with hickory-resolver: NAPTR,
//! then SRV, then A and AAAA, as `sip_server::locate` plans them and
//! orders the answers. A task per trunk named by host resolves it at start
//! and again when the shortest TTL of the answers runs out, and hands the
//! servers to the engine. The resolver caches answers by their TTL too.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use hickory_resolver::config::{ConnectionConfig, NameServerConfig, ResolverConfig};
use hickory_resolver::net::NetError;
use hickory_resolver::net::runtime::TokioRuntimeProvider;
use hickory_resolver::proto::rr::{RData, RecordType};
use hickory_resolver::{Resolver, TokioResolver};
use sip_server::locate::{
    Destination, NaptrRule, OutboundTarget, Plan, SrvQuery, SrvRecord, order_srv,
    srv_queries_from_naptr,
};
use sip_server::transaction::TransportKind;
use tokio::sync::mpsc;
use tokio::task::AbortHandle;

use crate::engine::Input;

/// Shortest wait before resolving again, so a TTL of 0 does not turn the
/// task into a busy loop.
const MIN_REFRESH: Duration = Duration::from_secs(5);
/// Longest wait, so a changed record is seen within the hour whatever its
/// TTL.
const MAX_REFRESH: Duration = Duration::from_secs(3600);
/// Wait after a failed look-up before the next try.
const RETRY_AFTER_FAILURE: Duration = Duration::from_secs(30);

/// Error setting up the resolver or running a look-up.
#[derive(Debug, thiserror::Error)]
pub(crate) enum DnsError {
    #[error("failed to read the system's resolver configuration: {0}")]
    SystemConfig(#[source] NetError),
    #[error("failed to build the DNS resolver: {0}")]
    Build(#[source] NetError),
    #[error("{record_type} look-up of {name} failed: {source}")]
    Lookup {
        name: String,
        record_type: RecordType,
        #[source]
        source: NetError,
    },
}

/// Servers found for a target and how long the answers stay valid.
#[derive(Debug)]
pub(crate) struct Located {
    pub(crate) destinations: Vec<Destination>,
    pub(crate) ttl: Duration,
}

/// The resolver, shared by the look-up tasks.
#[derive(Clone)]
pub(crate) struct TrunkResolver {
    resolver: TokioResolver,
}

impl TrunkResolver {
    /// Builds a resolver that queries `nameserver` over UDP and TCP, or the
    /// servers of /etc/resolv.conf when it is None.
    pub(crate) fn new(nameserver: Option<SocketAddr>) -> Result<TrunkResolver, DnsError> {
        let provider = TokioRuntimeProvider::default();
        let builder = match nameserver {
            Some(addr) => {
                let connections = [ConnectionConfig::udp(), ConnectionConfig::tcp()]
                    .into_iter()
                    .map(|mut connection| {
                        connection.port = addr.port();
                        connection
                    })
                    .collect();
                let server = NameServerConfig::new(addr.ip(), true, connections);
                let config = ResolverConfig::from_name_servers(vec![server]);
                Resolver::builder_with_config(config, provider)
            }
            None => Resolver::builder(provider).map_err(DnsError::SystemConfig)?,
        };
        let resolver = builder.build().map_err(DnsError::Build)?;
        Ok(TrunkResolver { resolver })
    }

    /// Finds the servers of `target` in the order to try them.
    pub(crate) async fn locate(&self, target: &OutboundTarget) -> Result<Located, DnsError> {
        let mut ttl = MAX_REFRESH;
        let destinations = match target.plan() {
            Plan::Resolved(destination) => vec![destination],
            Plan::Address {
                host,
                port,
                transport,
            } => {
                let server_name = target.server_name();
                self.addresses(&host, port, transport, &server_name, &mut ttl)
                    .await?
            }
            Plan::Srv { host, query } => {
                let found = self.servers(&[query], target, &mut ttl).await?;
                if found.is_empty() {
                    self.fallback(&host, target, &mut ttl).await?
                } else {
                    found
                }
            }
            Plan::Naptr { host } => self.naptr(&host, target, &mut ttl).await?,
        };
        Ok(Located {
            destinations,
            ttl: ttl.clamp(MIN_REFRESH, MAX_REFRESH),
        })
    }

    /// Queries NAPTR, then SRV of the chosen services, then addresses (RFC
    /// 3263 sections 4.1 and 4.2).
    async fn naptr(
        &self,
        host: &str,
        target: &OutboundTarget,
        ttl: &mut Duration,
    ) -> Result<Vec<Destination>, DnsError> {
        let rules: Vec<NaptrRule> = self
            .records(host, RecordType::NAPTR, ttl)
            .await?
            .into_iter()
            .filter_map(|data| match data {
                RData::NAPTR(naptr) => Some(NaptrRule {
                    order: naptr.order,
                    preference: naptr.preference,
                    flags: String::from_utf8_lossy(&naptr.flags).into_owned(),
                    services: String::from_utf8_lossy(&naptr.services).into_owned(),
                    replacement: naptr.replacement.to_utf8(),
                }),
                _ => None,
            })
            .collect();
        let mut queries = srv_queries_from_naptr(&rules, target.secure);
        if queries.is_empty() {
            queries = target.srv_queries_without_naptr(host);
        }
        let found = self.servers(&queries, target, ttl).await?;
        if found.is_empty() {
            return self.fallback(host, target, ttl).await;
        }
        Ok(found)
    }

    /// Returns the servers of every SRV query, in the order of the queries
    /// and, within each, the order of RFC 2782.
    async fn servers(
        &self,
        queries: &[SrvQuery],
        target: &OutboundTarget,
        ttl: &mut Duration,
    ) -> Result<Vec<Destination>, DnsError> {
        let server_name = target.server_name();
        let mut destinations = Vec::new();
        for query in queries {
            let records: Vec<SrvRecord> = self
                .records(&query.name, RecordType::SRV, ttl)
                .await?
                .into_iter()
                .filter_map(|data| match data {
                    RData::SRV(srv) => Some(SrvRecord {
                        priority: srv.priority,
                        weight: srv.weight,
                        port: srv.port,
                        target: srv.target.to_utf8(),
                    }),
                    _ => None,
                })
                .collect();
            let mut random = |total: u32| rand::random_range(0..=total);
            for record in order_srv(records, &mut random) {
                let host = record.target.trim_end_matches('.');
                let found = self
                    .addresses(host, record.port, query.transport, &server_name, ttl)
                    .await?;
                destinations.extend(found);
            }
        }
        Ok(destinations)
    }

    /// Returns the A and AAAA addresses of the host itself at the default
    /// port, for a host without SRV records (RFC 3263 section 4.2).
    async fn fallback(
        &self,
        host: &str,
        target: &OutboundTarget,
        ttl: &mut Duration,
    ) -> Result<Vec<Destination>, DnsError> {
        let (transport, port) = target.address_fallback();
        let server_name = target.server_name();
        self.addresses(host, port, transport, &server_name, ttl)
            .await
    }

    async fn addresses(
        &self,
        host: &str,
        port: u16,
        transport: TransportKind,
        server_name: &str,
        ttl: &mut Duration,
    ) -> Result<Vec<Destination>, DnsError> {
        let fqdn = absolute(host);
        let found = match self.resolver.lookup_ip(fqdn.as_str()).await {
            Ok(found) => found,
            Err(error) if error.is_no_records_found() => return Ok(Vec::new()),
            Err(source) => {
                return Err(DnsError::Lookup {
                    name: host.to_owned(),
                    record_type: RecordType::A,
                    source,
                });
            }
        };
        *ttl = (*ttl).min(remaining(found.valid_until()));
        let addresses: Vec<IpAddr> = found.iter().collect();
        Ok(addresses
            .into_iter()
            .map(|ip| Destination {
                transport,
                addr: SocketAddr::new(ip, port),
                server_name: server_name.to_owned(),
            })
            .collect())
    }

    /// Returns the data of the `record_type` records of `name`, which is
    /// empty when the name has none of that type.
    async fn records(
        &self,
        name: &str,
        record_type: RecordType,
        ttl: &mut Duration,
    ) -> Result<Vec<RData>, DnsError> {
        let fqdn = absolute(name);
        match self.resolver.lookup(fqdn.as_str(), record_type).await {
            Ok(lookup) => {
                *ttl = (*ttl).min(remaining(lookup.valid_until()));
                Ok(lookup
                    .answers()
                    .iter()
                    .filter(|record| record.record_type() == record_type)
                    .map(|record| record.data.clone())
                    .collect())
            }
            Err(error) if error.is_no_records_found() => Ok(Vec::new()),
            Err(source) => Err(DnsError::Lookup {
                name: name.to_owned(),
                record_type,
                source,
            }),
        }
    }
}

/// Makes a configured host a fully qualified name, so the search domains
/// of resolv.conf never turn `sbc.example.com` into another host.
fn absolute(name: &str) -> String {
    if name.ends_with('.') {
        name.to_owned()
    } else {
        format!("{name}.")
    }
}

fn remaining(valid_until: std::time::Instant) -> Duration {
    valid_until.saturating_duration_since(std::time::Instant::now())
}

/// Starts a look-up task for each trunk whose outbound target or
/// registrar is a host name. Each reports with [`Input::TrunkLocated`] and
/// runs until it is aborted or the engine stops; the handles let a reload
/// replace them.
pub(crate) fn start_lookups(
    resolver: &TrunkResolver,
    trunks: &[sip_server::b2bua::Trunk],
    inputs: &mpsc::Sender<Input>,
) -> Vec<AbortHandle> {
    let mut handles = Vec::new();
    for trunk in trunks {
        let outbound = trunk
            .outbound
            .clone()
            .map(|target| (target, LookupPurpose::Outbound));
        let registrar = trunk
            .registration
            .as_ref()
            .map(|registration| (registration.registrar.clone(), LookupPurpose::Registrar));
        for (target, purpose) in outbound.into_iter().chain(registrar) {
            if matches!(target.plan(), Plan::Resolved(_)) {
                continue;
            }
            let task = tokio::spawn(refresh(
                resolver.clone(),
                trunk.name.clone(),
                target,
                purpose,
                inputs.clone(),
            ));
            handles.push(task.abort_handle());
        }
    }
    handles
}

/// Reason a trunk's host name is resolved.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum LookupPurpose {
    /// The `outbound` target of calls to numbers.
    Outbound,
    /// The registrar of `[trunks.register]`.
    Registrar,
}

/// Resolves `target` now and again when its answers expire. A failed
/// look-up keeps the servers found before and is retried after
/// [`RETRY_AFTER_FAILURE`].
async fn refresh(
    resolver: TrunkResolver,
    trunk: String,
    target: OutboundTarget,
    purpose: LookupPurpose,
    inputs: mpsc::Sender<Input>,
) {
    loop {
        let wait = match resolver.locate(&target).await {
            Ok(located) => {
                if located.destinations.is_empty() {
                    tracing::warn!(trunk, host = %target.host, ?purpose, "trunk host has no SIP server in DNS");
                } else {
                    tracing::info!(
                        trunk,
                        host = %target.host,
                        ?purpose,
                        servers = located.destinations.len(),
                        ttl_secs = located.ttl.as_secs(),
                        "trunk host resolved"
                    );
                }
                let input = Input::TrunkLocated {
                    trunk: trunk.clone(),
                    purpose,
                    destinations: located.destinations,
                };
                if inputs.send(input).await.is_err() {
                    return;
                }
                located.ttl
            }
            Err(error) => {
                tracing::warn!(trunk, ?purpose, %error, "resolving the trunk host failed; retrying");
                RETRY_AFTER_FAILURE
            }
        };
        tokio::time::sleep(wait).await;
    }
}
