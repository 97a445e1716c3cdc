//! `[trunks.register]` and `[trunks.inbound]`: defaults, password sources
//! and the errors that name their keys.

use std::time::Duration;

use sip_server::transaction::TransportKind;
use sip_server::trunk_registration::default_contact_user;

use super::tests::{ORIGIN, assert_has, errors_of};
use super::*;

#[test]
fn registration_defaults() {
    let text = r#"
[[trunks]]
name = "carrier"

[trunks.register]
registrar = "192.0.2.10:5060"
user = "4930555"
password = "reg-secret"
"#;
    let config = Config::parse(text, ORIGIN).expect("valid configuration");
    let trunk = &config.trunks[0];
    assert!(trunk.allow.is_empty());
    let registration = trunk.registration.as_ref().expect("registration");
    assert_eq!(registration.registrar.to_string(), "sip:192.0.2.10:5060");
    assert_eq!(registration.transport(), TransportKind::Udp);
    assert_eq!(registration.domain, "192.0.2.10");
    assert_eq!(registration.auth_user, "4930555");
    assert_eq!(
        registration.contact_user,
        default_contact_user("carrier", "reg-secret")
    );
    assert_eq!(registration.expires, Duration::from_secs(3600));
    assert_eq!(registration.retry, Duration::from_secs(30));
    assert_eq!(registration.max_retry, Duration::from_secs(600));
    assert_eq!(trunk.inbound, None);
}

#[test]
fn registrar_by_host_name_and_tls() {
    let text = r#"
[[trunks]]
name = "carrier"

[trunks.register]
registrar = "sips:sip.carrier.example"
user = "4930555"
password = "reg-secret"
"#;
    let config = Config::parse(text, ORIGIN).expect("valid configuration");
    let registration = config.trunks[0]
        .registration
        .as_ref()
        .expect("registration");
    assert_eq!(registration.transport(), TransportKind::Tls);
    assert_eq!(registration.domain, "sip.carrier.example");
    assert_eq!(
        registration.registrar.to_string(),
        "sips:sip.carrier.example"
    );
}

#[test]
fn registrar_transport_conflicts_named() {
    let text = r#"
[[trunks]]
name = "carrier"

[trunks.register]
registrar = "sip:sip.carrier.example;transport=tcp"
transport = "udp"
user = "4930555"
password = "reg-secret"
"#;
    let errors = errors_of(text);
    assert_has(
        &errors,
        "test.toml:7:13: trunks[0].register.transport: transport \"udp\" contradicts \
         registrar \"sip:sip.carrier.example;transport=tcp\"; remove the key or write the \
         transport in the registrar URI",
    );
    assert_eq!(errors.len(), 1, "{errors:#?}");
}

#[test]
fn registration_and_inbound_keys() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("inbound-password");
    std::fs::write(&file, "gw-secret\n").unwrap();
    let text = format!(
        r#"
[[trunks]]
name = "carrier"
allow = ["192.0.2.0/24"]

[trunks.register]
registrar = "192.0.2.10:5080"
transport = "TCP"
domain = "carrier.example"
user = "4930555"
auth_user = "acct-77"
contact_user = "pbx-line-1"
password = "reg-secret"
expires_secs = 300
retry_secs = 10
max_retry_secs = 120

[trunks.inbound]
username = "gw-in"
password_file = {file:?}
"#
    );
    let config = Config::parse(&text, ORIGIN).expect("valid configuration");
    let trunk = &config.trunks[0];
    let registration = trunk.registration.as_ref().expect("registration");
    assert_eq!(registration.transport(), TransportKind::Tcp);
    assert_eq!(registration.domain, "carrier.example");
    assert_eq!(registration.auth_user, "acct-77");
    assert_eq!(registration.contact_user, "pbx-line-1");
    assert_eq!(registration.expires, Duration::from_secs(300));
    assert_eq!(registration.retry, Duration::from_secs(10));
    assert_eq!(registration.max_retry, Duration::from_secs(120));
    let inbound = trunk.inbound.as_ref().expect("inbound credentials");
    assert_eq!(inbound.username, "gw-in");
    assert_eq!(inbound.password, "gw-secret");
}

#[test]
fn registration_errors_name_their_keys() {
    let text = r#"
[[agents]]
id = "1001"

[[trunks]]
name = "carrier"

[trunks.register]
registrar = "tel:+4930555"
transport = "sctp"
user = ""
password = "x"
expires_secs = 0
retry_secs = 60
max_retry_secs = 30

[trunks.inbound]
username = "1001"
password_file = "/nonexistent/trunk-password"

[[trunks]]
name = "no-password"

[trunks.register]
registrar = "192.0.2.10:5060"
user = "1"
"#;
    let errors = errors_of(text);
    let expected = [
        "test.toml:9:13: trunks[0].register.registrar: invalid outbound target \
         \"tel:+4930555\": scheme \"tel\" is not sip or sips",
        "test.toml:10:13: trunks[0].register.transport: unknown transport \"sctp\" for a \
         registration; use \"udp\", \"tcp\" or \"tls\"",
        "test.toml:11:8: trunks[0].register.user: must not be empty",
        "test.toml:13:16: trunks[0].register.expires_secs: must be greater than 0",
        "test.toml:15:18: trunks[0].register.max_retry_secs: max_retry_secs 30 is below \
         retry_secs 60; raise it or lower retry_secs",
        "test.toml:18:12: trunks[0].inbound.username: \"1001\" is also an agent id; give the \
         trunk a username that no agent has",
        "test.toml:19:17: trunks[0].inbound.password_file: failed to read the password file \
         \"/nonexistent/trunk-password\": No such file or directory (os error 2)",
        "test.toml:25:13: trunks[1].register.password: no password: set password or password_file, \
         or the environment variable PBX_TRUNK_NO_PASSWORD_PASSWORD",
    ];
    for line in expected {
        assert_has(&errors, line);
    }
    assert_eq!(errors.len(), expected.len(), "{errors:#?}");
}

#[test]
fn password_variable_names() {
    assert_eq!(
        trunks::password_variable("carrier-1", ""),
        "PBX_TRUNK_CARRIER_1_PASSWORD"
    );
    assert_eq!(
        trunks::password_variable("gw.east", "INBOUND_"),
        "PBX_TRUNK_GW_EAST_INBOUND_PASSWORD"
    );
}
