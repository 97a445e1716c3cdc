//! The `[sip]` keys of the TLS and WebSocket listeners, the certificate
//! files and the limits of stream connections.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use super::error::ConfigErrorKind;
use super::raw::{RawSip, Value};
use super::validate::{Checker, Source, Sourced, from_file, spanned};
use super::{CertificateFiles, OutboundTlsConfig, StreamConfig};
use crate::transport::StreamLimits;

/// Upper bounds of the limit keys, above which a value is taken as a typo.
const MAX_MESSAGE_BYTES_LIMIT: u64 = 16 * 1024 * 1024;
const MAX_CONNECTIONS_LIMIT: u64 = 1_000_000;
const IDLE_TIMEOUT_LIMIT_SECS: u64 = 86_400;
const MESSAGE_TIMEOUT_LIMIT_SECS: u64 = 3600;
const CONNECTION_ATTEMPTS_LIMIT: u64 = 1_000_000;
const KEEPALIVE_INTERVAL_LIMIT_SECS: u64 = 3600;

pub(super) fn convert(
    checker: &mut Checker<'_>,
    raw: &RawSip,
    sip_listen: SocketAddr,
) -> StreamConfig {
    let mut listen = |key: &str, value: &Value<String>| {
        value
            .as_ref()
            .map(|address| checker.socket_address(key, &spanned(address)))
    };
    let tls_listen = listen("sip.tls_listen", &raw.tls_listen);
    let ws_listen = listen("sip.ws_listen", &raw.ws_listen);
    let wss_listen = listen("sip.wss_listen", &raw.wss_listen);
    check_ports(
        checker,
        raw,
        [
            ("sip.listen", Some(sip_listen)),
            ("sip.tls_listen", tls_listen),
            ("sip.ws_listen", ws_listen),
            ("sip.wss_listen", wss_listen),
        ],
    );
    let needed_by = match (tls_listen, wss_listen) {
        (Some(_), _) => Some("sip.tls_listen"),
        (None, Some(_)) => Some("sip.wss_listen"),
        (None, None) => None,
    };
    StreamConfig {
        tls_listen,
        ws_listen,
        wss_listen,
        certificate: certificate(checker, raw, needed_by),
        outbound_tls: outbound_tls(checker, raw),
        limits: limits(checker, raw),
    }
}

/// Checks the files of the TLS client side: the CA file, and the client
/// certificate and key, which go together. Like the server files, they
/// are loaded here so that `pbx check-config` finds a bad one.
fn outbound_tls(checker: &mut Checker<'_>, raw: &RawSip) -> OutboundTlsConfig {
    let ca_file = raw.tls_ca_file.as_ref().map(spanned);
    let chain = raw.tls_client_certificate.as_ref().map(spanned);
    let key = raw.tls_client_private_key.as_ref().map(spanned);
    let client = match (chain, key) {
        (Some(chain), Some(key)) => Some((chain, key)),
        (None, None) => None,
        (chain, _) => {
            let (missing, needed_by) = if chain.is_none() {
                ("sip.tls_client_certificate", "sip.tls_client_private_key")
            } else {
                ("sip.tls_client_private_key", "sip.tls_client_certificate")
            };
            let kind = ConfigErrorKind::MissingTlsFile { needed_by };
            checker.report(missing, &Source::Default, kind);
            None
        }
    };
    let config = OutboundTlsConfig {
        ca_file: ca_file.as_ref().map(|file| PathBuf::from(&file.value)),
        client_certificate: client.as_ref().map(|(chain, key)| CertificateFiles {
            chain: PathBuf::from(&chain.value),
            private_key: PathBuf::from(&key.value),
        }),
    };
    if config.ca_file.is_none() && config.client_certificate.is_none() {
        return config;
    }
    let files = config
        .client_certificate
        .as_ref()
        .map(|files| (files.chain.as_path(), files.private_key.as_path()));
    if let Err(error) = crate::tls::client_config(config.ca_file.as_deref(), files) {
        let path = error.path().to_owned();
        let (name, source) = if Some(&path) == config.ca_file.as_ref() {
            ("sip.tls_ca_file", ca_file.map(|file| file.source))
        } else if client
            .as_ref()
            .is_some_and(|(chain, _)| path == std::path::Path::new(&chain.value))
        {
            (
                "sip.tls_client_certificate",
                client.map(|(chain, _)| chain.source),
            )
        } else {
            (
                "sip.tls_client_private_key",
                client.map(|(_, key)| key.source),
            )
        };
        checker.report(
            name,
            &source.unwrap_or(Source::Default),
            ConfigErrorKind::Tls(error),
        );
    }
    config
}

/// Two stream listeners on one port cannot both bind. The UDP and TCP
/// port is `sip.listen`'s, whose own key is checked elsewhere.
fn check_ports<const N: usize>(
    checker: &mut Checker<'_>,
    raw: &RawSip,
    listeners: [(&'static str, Option<SocketAddr>); N],
) {
    let source_of = |key: &str| {
        let value = match key {
            "sip.tls_listen" => &raw.tls_listen,
            "sip.ws_listen" => &raw.ws_listen,
            "sip.wss_listen" => &raw.wss_listen,
            _ => return Source::Default,
        };
        value
            .as_ref()
            .map_or(Source::Default, |spanned| Source::File(spanned.span()))
    };
    for (index, (key, addr)) in listeners.iter().enumerate() {
        let Some(addr) = addr else { continue };
        let earlier = listeners[..index]
            .iter()
            .find(|(_, other)| other.is_some_and(|other| other.port() == addr.port()));
        if let Some((other, _)) = earlier
            && addr.port() != 0
        {
            let kind = ConfigErrorKind::PortConflict {
                port: addr.port(),
                other,
            };
            checker.report(*key, &source_of(key), kind);
        }
    }
}

/// Checks the certificate files when given, and requires them when a TLS
/// or WSS listener (`needed_by`) is configured. The files are loaded here so
/// that `pbx check-config` finds a bad file, and again at start.
fn certificate(
    checker: &mut Checker<'_>,
    raw: &RawSip,
    needed_by: Option<&'static str>,
) -> Option<CertificateFiles> {
    let chain = raw.tls_certificate.as_ref().map(spanned);
    let key = raw.tls_private_key.as_ref().map(spanned);
    let (chain, key) = match (chain, key, needed_by) {
        (Some(chain), Some(key), _) => (chain, key),
        (chain, key, Some(needed_by)) => {
            for (name, value) in [
                ("sip.tls_certificate", &chain),
                ("sip.tls_private_key", &key),
            ] {
                if value.is_none() {
                    let kind = ConfigErrorKind::MissingTlsFile { needed_by };
                    checker.report(name, &Source::Default, kind);
                }
            }
            return None;
        }
        (_, _, None) => return None,
    };
    let files = CertificateFiles {
        chain: PathBuf::from(&chain.value),
        private_key: PathBuf::from(&key.value),
    };
    if let Err(error) = crate::tls::server_config(&files.chain, &files.private_key) {
        let (name, source) = if error.path() == files.chain {
            ("sip.tls_certificate", chain.source)
        } else {
            ("sip.tls_private_key", key.source)
        };
        checker.report(name, &source, ConfigErrorKind::Tls(error));
    }
    Some(files)
}

fn limits(checker: &mut Checker<'_>, raw: &RawSip) -> StreamLimits {
    let defaults = StreamLimits::default();
    let mut bounded = |key: &str, value: &Value<u64>, default: usize, max: u64| {
        let sourced: Sourced<u64> = from_file(value, default as u64);
        checker.non_zero(key, &sourced);
        if sourced.value > max {
            let kind = ConfigErrorKind::TooLarge {
                value: sourced.value,
                max,
            };
            checker.report(key, &sourced.source, kind);
        }
        usize::try_from(sourced.value.min(max)).unwrap_or(default)
    };
    let max_message_bytes = bounded(
        "sip.max_message_bytes",
        &raw.max_message_bytes,
        defaults.max_message_bytes,
        MAX_MESSAGE_BYTES_LIMIT,
    );
    let max_connections = bounded(
        "sip.max_connections",
        &raw.max_connections,
        defaults.max_connections,
        MAX_CONNECTIONS_LIMIT,
    );
    let max_connections_per_address = bounded(
        "sip.max_connections_per_address",
        &raw.max_connections_per_address,
        defaults.max_connections_per_address,
        MAX_CONNECTIONS_LIMIT,
    );
    let idle_timeout_secs = bounded(
        "sip.idle_timeout_secs",
        &raw.idle_timeout_secs,
        defaults.idle_timeout.as_secs() as usize,
        IDLE_TIMEOUT_LIMIT_SECS,
    );
    let message_timeout_secs = bounded(
        "sip.message_timeout_secs",
        &raw.message_timeout_secs,
        defaults.message_timeout.as_secs() as usize,
        MESSAGE_TIMEOUT_LIMIT_SECS,
    );
    let keepalive_interval_secs = bounded(
        "sip.keepalive_interval_secs",
        &raw.keepalive_interval_secs,
        defaults.keepalive_interval.as_secs() as usize,
        KEEPALIVE_INTERVAL_LIMIT_SECS,
    );
    // 0 is allowed here: it turns the limit off, as for requests.
    let key = "sip.max_connection_attempts_per_address_per_sec";
    let attempts: Sourced<u64> = from_file(
        &raw.max_connection_attempts_per_address_per_sec,
        u64::from(defaults.max_connection_attempts_per_sec),
    );
    if attempts.value > CONNECTION_ATTEMPTS_LIMIT {
        let kind = ConfigErrorKind::TooLarge {
            value: attempts.value,
            max: CONNECTION_ATTEMPTS_LIMIT,
        };
        checker.report(key, &attempts.source, kind);
    }
    StreamLimits {
        max_message_bytes,
        max_connections,
        max_connections_per_address,
        idle_timeout: Duration::from_secs(idle_timeout_secs as u64),
        message_timeout: Duration::from_secs(message_timeout_secs as u64),
        max_connection_attempts_per_sec: u32::try_from(
            attempts.value.min(CONNECTION_ATTEMPTS_LIMIT),
        )
        .unwrap_or(u32::MAX),
        keepalive_interval: Duration::from_secs(keepalive_interval_secs as u64),
    }
}
