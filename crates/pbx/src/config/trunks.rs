//! `[[trunks]]`: source networks, the outbound address, the numbering
//! plan, and the two ways a trunk outside the allow list is recognised:
//! digest credentials for its calls (`[trunks.inbound]`) and a
//! registration at its provider (`[trunks.register]`).

use std::collections::HashMap;
use std::time::Duration;

use sip_server::b2bua::TrunkCredentials;
use sip_server::locate::OutboundTarget;
use sip_server::transaction::TransportKind;
use sip_server::trunk_registration::{RegistrationConfig, default_contact_user};

use super::error::ConfigErrorKind;
use super::raw::{RawAgent, RawTrunk, RawTrunkInbound, RawTrunkRegistration, Value};
use super::validate::{Checker, Source, Sourced, from_file, spanned};
use super::{IpNetwork, TrunkConfig};

const REGISTER_EXPIRES_SECS: u64 = 3600;
/// A day: a longer registration is surely a typo, and registrars cap it
/// far lower.
const MAX_REGISTER_EXPIRES_SECS: u64 = 86_400;
const REGISTER_RETRY_SECS: u64 = 30;
const REGISTER_MAX_RETRY_SECS: u64 = 600;

pub(super) fn convert_trunks(
    checker: &mut Checker<'_>,
    raw: &[RawTrunk],
    agents: &[RawAgent],
) -> Vec<TrunkConfig> {
    let mut seen = HashMap::new();
    let mut trunks = Vec::with_capacity(raw.len());
    for (index, trunk) in raw.iter().enumerate() {
        let key = format!("trunks[{index}]");
        let name = spanned(&trunk.name);
        checker.token(&format!("{key}.name"), &name);
        checker.unique(&format!("{key}.name"), "trunk name", &name, &mut seen);
        let networks = trunk
            .allow
            .as_ref()
            .map_or(&[][..], |allow| allow.get_ref());
        let recognised_otherwise = trunk.register.is_some() || trunk.inbound.is_some();
        if networks.is_empty() && !recognised_otherwise {
            let kind = ConfigErrorKind::NoNetworks {
                trunk: name.value.clone(),
            };
            let source = match &trunk.allow {
                Some(allow) => Source::File(allow.span()),
                None => name.source.clone(),
            };
            checker.report(format!("{key}.allow"), &source, kind);
        }
        let mut allow = Vec::new();
        for (position, network) in networks.iter().enumerate() {
            match network.get_ref().parse::<IpNetwork>() {
                Ok(network) => allow.push(network),
                Err(problem) => {
                    let kind = ConfigErrorKind::InvalidNetwork {
                        value: network.get_ref().clone(),
                        problem,
                    };
                    let key = format!("{key}.allow[{position}]");
                    checker.report(key, &Source::File(network.span()), kind);
                }
            }
        }
        let outbound = trunk.outbound.as_ref().and_then(|raw| {
            sip_server::locate::OutboundTarget::parse(raw.get_ref())
                .map_err(|problem| {
                    let kind = ConfigErrorKind::InvalidOutbound {
                        value: raw.get_ref().clone(),
                        problem,
                    };
                    checker.report(format!("{key}.outbound"), &Source::File(raw.span()), kind);
                })
                .ok()
        });
        let numbering = convert_numbering(checker, &key, trunk);
        let registration = trunk.register.as_ref().map(|register| {
            convert_registration(checker, &format!("{key}.register"), &name.value, register)
        });
        let inbound = trunk.inbound.as_ref().map(|inbound| {
            convert_inbound(
                checker,
                &format!("{key}.inbound"),
                &name.value,
                inbound,
                agents,
            )
        });
        trunks.push(TrunkConfig {
            name: name.value,
            allow,
            outbound,
            numbering,
            trust_identity: trunk.trust_identity.as_ref().is_none_or(|t| *t.get_ref()),
            registration,
            inbound,
        });
    }
    trunks
}

fn convert_numbering(
    checker: &mut Checker<'_>,
    key: &str,
    trunk: &RawTrunk,
) -> Option<sip_server::b2bua::NumberingPlan> {
    let mut digits = |field: &str, value: &Value<String>, default: &str| -> String {
        let Some(raw) = value.as_ref() else {
            return default.to_owned();
        };
        let text = raw.get_ref();
        if text.len() > 6 || !text.bytes().all(|b| b.is_ascii_digit()) {
            checker.report(
                format!("{key}.{field}"),
                &Source::File(raw.span()),
                ConfigErrorKind::InvalidPrefix {
                    value: text.clone(),
                },
            );
        }
        text.clone()
    };
    trunk.country_code.as_ref()?;
    let country_code = digits("country_code", &trunk.country_code, "");
    let national_prefix = digits("national_prefix", &trunk.national_prefix, "0");
    let international_prefix = digits("international_prefix", &trunk.international_prefix, "00");
    Some(sip_server::b2bua::NumberingPlan {
        country_code,
        national_prefix,
        international_prefix,
    })
}

/// Reads `registrar` (the forms of a trunk's `outbound`) and the older
/// `transport` key, which must not contradict the URI.
fn convert_registrar(
    checker: &mut Checker<'_>,
    key: &str,
    raw: &RawTrunkRegistration,
) -> OutboundTarget {
    let text = spanned(&raw.registrar);
    let mut registrar = match OutboundTarget::parse(&text.value) {
        Ok(target) => target,
        Err(problem) => {
            let kind = ConfigErrorKind::InvalidOutbound {
                value: text.value.clone(),
                problem,
            };
            checker.report(format!("{key}.registrar"), &text.source, kind);
            // Never used: the errors end the parse.
            OutboundTarget::parse("0.0.0.0:5060").expect("a literal address parses")
        }
    };
    let Some(raw_transport) = &raw.transport else {
        return registrar;
    };
    let transport = spanned(raw_transport);
    let kind = match transport.value.to_ascii_lowercase().as_str() {
        "udp" => TransportKind::Udp,
        "tcp" => TransportKind::Tcp,
        "tls" => TransportKind::Tls,
        _ => {
            let kind = ConfigErrorKind::UnknownRegisterTransport {
                value: transport.value.clone(),
            };
            checker.report(format!("{key}.transport"), &transport.source, kind);
            return registrar;
        }
    };
    let conflict = registrar.transport.is_some_and(|written| written != kind)
        || (registrar.secure && kind == TransportKind::Udp);
    if conflict {
        let kind = ConfigErrorKind::RegisterTransportConflict {
            value: transport.value.clone(),
            registrar: registrar.to_string(),
        };
        checker.report(format!("{key}.transport"), &transport.source, kind);
    }
    registrar.transport = Some(kind);
    registrar
}

fn convert_registration(
    checker: &mut Checker<'_>,
    key: &str,
    trunk: &str,
    raw: &RawTrunkRegistration,
) -> RegistrationConfig {
    let registrar = convert_registrar(checker, key, raw);
    let domain = from_file(&raw.domain, registrar.server_name());
    checker.token(&format!("{key}.domain"), &domain);
    let user = spanned(&raw.user);
    checker.token(&format!("{key}.user"), &user);
    let auth_user = from_file(&raw.auth_user, user.value.clone());
    if raw.auth_user.is_some() {
        checker.token(&format!("{key}.auth_user"), &auth_user);
    }
    let variable = password_variable(trunk, "");
    let password = resolve_password(
        checker,
        key,
        (&raw.password, &raw.password_file),
        &variable,
        &Source::File(raw.registrar.span()),
    );
    let contact_user = match &raw.contact_user {
        Some(raw) => {
            let contact_user = spanned(raw);
            checker.identifier(&format!("{key}.contact_user"), &contact_user);
            contact_user.value
        }
        None => default_contact_user(trunk, &password),
    };
    let expires = from_file(&raw.expires_secs, REGISTER_EXPIRES_SECS);
    checker.non_zero(&format!("{key}.expires_secs"), &expires);
    at_most(
        checker,
        &format!("{key}.expires_secs"),
        &expires,
        MAX_REGISTER_EXPIRES_SECS,
    );
    let retry = from_file(&raw.retry_secs, REGISTER_RETRY_SECS);
    checker.non_zero(&format!("{key}.retry_secs"), &retry);
    let max_retry = from_file(
        &raw.max_retry_secs,
        REGISTER_MAX_RETRY_SECS.max(retry.value),
    );
    if max_retry.value < retry.value {
        checker.report(
            format!("{key}.max_retry_secs"),
            &max_retry.source,
            ConfigErrorKind::RetryOrder {
                retry: retry.value,
                max_retry: max_retry.value,
            },
        );
    }
    RegistrationConfig {
        registrar,
        domain: domain.value,
        user: user.value,
        contact_user,
        auth_user: auth_user.value,
        password,
        expires: Duration::from_secs(expires.value),
        retry: Duration::from_secs(retry.value),
        max_retry: Duration::from_secs(max_retry.value),
    }
}

fn convert_inbound(
    checker: &mut Checker<'_>,
    key: &str,
    trunk: &str,
    raw: &RawTrunkInbound,
    agents: &[RawAgent],
) -> TrunkCredentials {
    let username = spanned(&raw.username);
    checker.token(&format!("{key}.username"), &username);
    if agents
        .iter()
        .any(|agent| *agent.id.get_ref() == username.value)
    {
        // The digest username decides between a trunk and an agent.
        checker.report(
            format!("{key}.username"),
            &username.source,
            ConfigErrorKind::TrunkUserIsAgent {
                username: username.value.clone(),
            },
        );
    }
    let variable = password_variable(trunk, "INBOUND_");
    let password = resolve_password(
        checker,
        key,
        (&raw.password, &raw.password_file),
        &variable,
        &username.source,
    );
    TrunkCredentials {
        username: username.value,
        password,
    }
}

/// Names the variable that can hold a trunk's password: `PBX_TRUNK_<NAME>_PASSWORD`
/// for its registration, `PBX_TRUNK_<NAME>_INBOUND_PASSWORD` for its calls,
/// with the name in upper case and every character other than a letter or
/// a digit turned into '_'.
pub(crate) fn password_variable(trunk: &str, kind: &str) -> String {
    let name: String = trunk
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_uppercase()
            } else {
                '_'
            }
        })
        .collect();
    format!("PBX_TRUNK_{name}_{kind}PASSWORD")
}

/// Resolves the password from, in order: the `password` key, the file that
/// `password_file` names (its first line), or `variable`. Reports a
/// missing password at `table`, the table that lacks it.
fn resolve_password(
    checker: &mut Checker<'_>,
    key: &str,
    (password, password_file): (&Value<String>, &Value<String>),
    variable: &str,
    table: &Source,
) -> String {
    if let Some(raw) = password {
        let password = spanned(raw);
        checker.not_empty(&format!("{key}.password"), &password);
        return password.value;
    }
    if let Some(raw) = password_file {
        let path = spanned(raw);
        let key = format!("{key}.password_file");
        return match std::fs::read_to_string(&path.value) {
            Ok(text) => {
                let first = text.lines().next().unwrap_or_default().trim().to_owned();
                if first.is_empty() {
                    checker.report(
                        key,
                        &path.source,
                        ConfigErrorKind::EmptyPasswordFile {
                            path: path.value.clone(),
                        },
                    );
                }
                first
            }
            Err(error) => {
                checker.report(
                    key,
                    &path.source,
                    ConfigErrorKind::PasswordFile {
                        path: path.value.clone(),
                        error: error.to_string(),
                    },
                );
                String::new()
            }
        };
    }
    match std::env::var_os(variable).map(|value| value.into_string()) {
        Some(Ok(value)) if !value.is_empty() => value,
        _ => {
            checker.report(
                format!("{key}.password"),
                table,
                ConfigErrorKind::MissingTrunkPassword {
                    variable: variable.to_owned(),
                },
            );
            String::new()
        }
    }
}

fn at_most(checker: &mut Checker<'_>, key: &str, raw: &Sourced<u64>, max: u64) {
    if raw.value > max {
        checker.report(
            key,
            &raw.source,
            ConfigErrorKind::TooLarge {
                value: raw.value,
                max,
            },
        );
    }
}
