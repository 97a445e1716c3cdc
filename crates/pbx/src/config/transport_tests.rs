use std::path::Path;
use std::time::Duration;

use super::tests::{ORIGIN, assert_has, errors_of};
use super::*;

/// Writes a self-signed certificate and its key into `dir`.
fn write_pair(dir: &Path) -> (String, String) {
    let generated = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).unwrap();
    let chain = dir.join("chain.pem");
    let key = dir.join("key.pem");
    std::fs::write(&chain, generated.cert.pem()).unwrap();
    std::fs::write(&key, generated.signing_key.serialize_pem()).unwrap();
    (chain.display().to_string(), key.display().to_string())
}

#[test]
fn stream_listeners_and_limits_parse() {
    let dir = tempfile::tempdir().unwrap();
    let (chain, key) = write_pair(dir.path());
    let text = format!(
        "[sip]\ntls_listen = \"127.0.0.1:5061\"\nws_listen = \"127.0.0.1:5066\"\n\
         wss_listen = \"127.0.0.1:5067\"\ntls_certificate = {chain:?}\n\
         tls_private_key = {key:?}\nmax_message_bytes = 8192\nidle_timeout_secs = 90\n\
         message_timeout_secs = 12\n"
    );
    let config = Config::parse(&text, ORIGIN).unwrap();
    let streams = &config.sip.streams;
    assert_eq!(streams.tls_listen, Some("127.0.0.1:5061".parse().unwrap()));
    assert_eq!(streams.ws_listen, Some("127.0.0.1:5066".parse().unwrap()));
    assert_eq!(streams.wss_listen, Some("127.0.0.1:5067".parse().unwrap()));
    let files = streams.certificate.as_ref().unwrap();
    assert_eq!(files.chain, Path::new(&chain));
    assert_eq!(streams.limits.max_message_bytes, 8192);
    assert_eq!(streams.limits.idle_timeout, Duration::from_secs(90));
    assert_eq!(streams.limits.message_timeout, Duration::from_secs(12));
    assert_eq!(streams.limits.max_connections, 4096);
}

#[test]
fn stream_transports_are_off_by_default() {
    let config = Config::embedded_default();
    let streams = &config.sip.streams;
    assert_eq!(streams.tls_listen, None);
    assert_eq!(streams.ws_listen, None);
    assert_eq!(streams.wss_listen, None);
    assert_eq!(streams.certificate, None);
    assert_eq!(streams.limits, crate::transport::StreamLimits::default());
}

#[test]
fn tls_listener_needs_certificate_files() {
    let errors = errors_of("[sip]\ntls_listen = \"127.0.0.1:5061\"\n");
    assert_has(
        &errors,
        "test.toml: sip.tls_certificate: must be set because sip.tls_listen is set; \
         give the path of a PEM file",
    );
    assert_has(
        &errors,
        "test.toml: sip.tls_private_key: must be set because sip.tls_listen is set; \
         give the path of a PEM file",
    );
    let errors = errors_of("[sip]\nwss_listen = \"127.0.0.1:5067\"\n");
    assert_has(
        &errors,
        "test.toml: sip.tls_certificate: must be set because sip.wss_listen is set; \
         give the path of a PEM file",
    );
}

#[test]
fn missing_certificate_file_names_key_and_file() {
    let dir = tempfile::tempdir().unwrap();
    let (_, key) = write_pair(dir.path());
    let absent = dir.path().join("absent.pem").display().to_string();
    let text = format!(
        "[sip]\ntls_listen = \"127.0.0.1:5061\"\ntls_certificate = {absent:?}\n\
         tls_private_key = {key:?}\n"
    );
    let errors = errors_of(&text);
    assert_eq!(errors.len(), 1, "{errors:#?}");
    let expected = format!("test.toml:3:19: sip.tls_certificate: failed to read {absent:?}: ");
    assert!(errors[0].starts_with(&expected), "{errors:#?}");
}

#[test]
fn invalid_key_file_names_key_and_file() {
    let dir = tempfile::tempdir().unwrap();
    let (chain, _) = write_pair(dir.path());
    let garbage = dir.path().join("garbage.pem");
    std::fs::write(&garbage, "not a key\n").unwrap();
    let garbage = garbage.display().to_string();
    let text = format!(
        "[sip]\ntls_listen = \"127.0.0.1:5061\"\ntls_certificate = {chain:?}\n\
         tls_private_key = {garbage:?}\n"
    );
    let errors = errors_of(&text);
    assert_eq!(
        errors,
        [format!(
            "test.toml:4:19: sip.tls_private_key: {garbage:?} contains no PEM private key; \
             expected a PKCS#8, PKCS#1 or SEC1 key"
        )]
    );
}

#[test]
fn stream_listener_ports_may_not_overlap() {
    let errors = errors_of("[sip]\nlisten = \"0.0.0.0:5070\"\nws_listen = \"0.0.0.0:5070\"\n");
    assert_has(
        &errors,
        "test.toml:3:13: sip.ws_listen: port 5070 is also used by sip.listen; \
         give each service its own port",
    );
}

#[test]
fn stream_limits_are_bounded() {
    let errors = errors_of(
        "[sip]\nmax_connections = 0\nidle_timeout_secs = 100000\n\
         message_timeout_secs = 0\n",
    );
    assert_has(
        &errors,
        "test.toml:2:19: sip.max_connections: must be greater than 0",
    );
    assert_has(
        &errors,
        "test.toml:3:21: sip.idle_timeout_secs: must be at most 86400, got 100000",
    );
    assert_has(
        &errors,
        "test.toml:4:24: sip.message_timeout_secs: must be greater than 0",
    );
}

#[test]
fn connection_attempt_limit_parses() {
    let config = Config::embedded_default();
    assert_eq!(
        config.sip.streams.limits.max_connection_attempts_per_sec,
        20
    );
    let text = "[sip]\nmax_connection_attempts_per_address_per_sec = 0\n";
    let off = Config::parse(text, ORIGIN).unwrap();
    assert_eq!(off.sip.streams.limits.max_connection_attempts_per_sec, 0);
    let errors = errors_of("[sip]\nmax_connection_attempts_per_address_per_sec = 2000000\n");
    assert_has(
        &errors,
        "test.toml:2:47: sip.max_connection_attempts_per_address_per_sec: \
         must be at most 1000000, got 2000000",
    );
}

#[test]
fn session_timer_keys_parse() {
    let defaults = Config::embedded_default().sip.session_timer;
    assert_eq!(defaults.interval, Duration::from_secs(1800));
    assert_eq!(defaults.min_interval, Duration::from_secs(90));
    let text = "[sip]\nsession_expires_secs = 600\nmin_session_expires_secs = 120\n";
    let config = Config::parse(text, ORIGIN).unwrap();
    assert_eq!(config.sip.session_timer.interval, Duration::from_secs(600));
    assert_eq!(
        config.sip.session_timer.min_interval,
        Duration::from_secs(120)
    );
}

#[test]
fn session_timer_minimum_is_checked() {
    let errors = errors_of("[sip]\nmin_session_expires_secs = 30\n");
    assert_has(
        &errors,
        "test.toml:2:28: sip.min_session_expires_secs: session intervals must satisfy \
         90 <= min_session_expires_secs <= session_expires_secs, got min 30, interval 1800",
    );
    let errors = errors_of("[sip]\nsession_expires_secs = 100\nmin_session_expires_secs = 200\n");
    assert_has(
        &errors,
        "test.toml:3:28: sip.min_session_expires_secs: session intervals must satisfy \
         90 <= min_session_expires_secs <= session_expires_secs, got min 200, interval 100",
    );
}

#[test]
fn trunk_outbound_takes_uri_forms() {
    let cases = [
        ("192.0.2.1:5060", false, None),
        ("sips:sbc.carrier.example", true, None),
        (
            "sip:sbc.carrier.example;transport=tcp",
            false,
            Some(sip_server::transaction::TransportKind::Tcp),
        ),
        ("sbc.carrier.example", false, None),
    ];
    for (outbound, secure, transport) in cases {
        let text = format!(
            "[[trunks]]\nname = \"carrier\"\nallow = [\"192.0.2.0/24\"]\noutbound = {outbound:?}\n"
        );
        let config = Config::parse(&text, ORIGIN).unwrap();
        let target = config.trunks[0].outbound.clone().unwrap();
        assert_eq!(target.secure, secure, "{outbound}");
        assert_eq!(target.transport, transport, "{outbound}");
    }
}

#[test]
fn invalid_trunk_outbound_names_the_key() {
    let errors = errors_of(
        "[[trunks]]\nname = \"carrier\"\nallow = [\"192.0.2.0/24\"]\n\
         outbound = \"sips:sbc.example;transport=udp\"\n",
    );
    assert_has(
        &errors,
        "test.toml:4:12: trunks[0].outbound: invalid outbound target \
         \"sips:sbc.example;transport=udp\": a sips URI needs TLS, but it names transport UDP",
    );
}

#[test]
fn dns_nameserver_parses_and_is_checked() {
    let config = Config::parse("[dns]\nnameserver = \"127.0.0.1:5353\"\n", ORIGIN).unwrap();
    assert_eq!(
        config.dns.nameserver,
        Some("127.0.0.1:5353".parse().unwrap())
    );
    assert_eq!(Config::embedded_default().dns.nameserver, None);
    let errors = errors_of("[dns]\nnameserver = \"resolver.example\"\n");
    assert!(
        errors.iter().any(
            |error| error.starts_with("test.toml:2:14: dns.nameserver: invalid socket address")
        ),
        "{errors:#?}"
    );
}

#[test]
fn outbound_tls_files_are_loaded() {
    let dir = tempfile::tempdir().unwrap();
    let (chain, key) = write_pair(dir.path());
    let text = format!(
        "[sip]\ntls_ca_file = {chain:?}\ntls_client_certificate = {chain:?}\n\
         tls_client_private_key = {key:?}\nkeepalive_interval_secs = 30\n"
    );
    let config = Config::parse(&text, ORIGIN).unwrap();
    let outbound = &config.sip.streams.outbound_tls;
    assert_eq!(outbound.ca_file.as_deref(), Some(Path::new(&chain)));
    let client = outbound.client_certificate.as_ref().unwrap();
    assert_eq!(client.private_key, Path::new(&key));
    assert_eq!(
        config.sip.streams.limits.keepalive_interval,
        Duration::from_secs(30)
    );
}

#[test]
fn outbound_tls_file_errors_name_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let (chain, _) = write_pair(dir.path());
    let errors = errors_of(&format!("[sip]\ntls_client_certificate = {chain:?}\n"));
    assert_has(
        &errors,
        "test.toml: sip.tls_client_private_key: must be set because \
         sip.tls_client_certificate is set; give the path of a PEM file",
    );
    let missing = dir.path().join("absent.pem").display().to_string();
    let errors = errors_of(&format!("[sip]\ntls_ca_file = {missing:?}\n"));
    assert!(
        errors
            .iter()
            .any(|error| error.contains("sip.tls_ca_file: failed to read")
                && error.contains("absent.pem")),
        "{errors:#?}"
    );
}

#[test]
fn udp_receive_buffer_defaults_and_bounds() {
    let config = Config::embedded_default();
    assert_eq!(config.sip.udp_receive_buffer, 4 * 1024 * 1024);

    let config = Config::parse("[sip]\nudp_receive_buffer_bytes = 0\n", ORIGIN).unwrap();
    assert_eq!(
        config.sip.udp_receive_buffer, 0,
        "0 keeps the system default"
    );

    let errors = errors_of("[sip]\nudp_receive_buffer_bytes = 2000000000\n");
    assert_has(
        &errors,
        "test.toml:2:28: sip.udp_receive_buffer_bytes: must be at most 1073741824, \
         got 2000000000",
    );
}
