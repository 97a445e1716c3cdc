//! The file as written: serde structs that reject unknown keys and keep the
//! span of every value so validation errors can point at a line.

use std::collections::BTreeMap;

use serde::Deserialize;
use toml::Spanned;

pub(super) type Value<T> = Option<Spanned<T>>;

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawConfig {
    pub(super) data_dir: Value<String>,
    #[serde(default)]
    pub(super) database: RawDatabase,
    #[serde(default)]
    pub(super) sip: RawSip,
    #[serde(default)]
    pub(super) dns: RawDns,
    #[serde(default)]
    pub(super) http: RawHttp,
    #[serde(default)]
    pub(super) media: RawMedia,
    #[serde(default)]
    pub(super) registrar: RawRegistrar,
    #[serde(default)]
    pub(super) recording: RawRecording,
    #[serde(default)]
    pub(super) acd: RawAcd,
    #[serde(default)]
    pub(super) skills: Vec<RawSkill>,
    #[serde(default)]
    pub(super) agents: Vec<RawAgent>,
    #[serde(default)]
    pub(super) trunks: Vec<RawTrunk>,
    #[serde(default)]
    pub(super) queues: Vec<RawQueue>,
    #[serde(default)]
    pub(super) dids: Vec<RawDid>,
    #[serde(default)]
    pub(super) voicemail: RawVoicemail,
    #[serde(default)]
    pub(super) overload: RawOverload,
    #[serde(default)]
    pub(super) qa: RawQa,
    #[serde(default)]
    pub(super) reports: RawReports,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawDatabase {
    pub(super) url: Value<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawQa {
    pub(super) max_score: Value<u32>,
    #[serde(default)]
    pub(super) criteria: Vec<RawCriterion>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawCriterion {
    pub(super) id: Spanned<String>,
    pub(super) label: Value<String>,
    pub(super) weight: Spanned<u32>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawReports {
    pub(super) first_contact_window_hours: Value<u32>,
    pub(super) time_zone: Value<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawOverload {
    pub(super) max_transactions: Value<u64>,
    pub(super) cpu_percent: Value<u32>,
    pub(super) retry_after_secs: Value<u64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawVoicemail {
    pub(super) max_message_secs: Value<u64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawSip {
    pub(super) listen: Value<String>,
    pub(super) advertised_address: Value<String>,
    pub(super) domain: Value<String>,
    pub(super) digest_algorithms: Value<Vec<Spanned<String>>>,
    pub(super) tls_listen: Value<String>,
    pub(super) ws_listen: Value<String>,
    pub(super) wss_listen: Value<String>,
    pub(super) tls_certificate: Value<String>,
    pub(super) tls_private_key: Value<String>,
    pub(super) tls_ca_file: Value<String>,
    pub(super) tls_client_certificate: Value<String>,
    pub(super) tls_client_private_key: Value<String>,
    pub(super) keepalive_interval_secs: Value<u64>,
    pub(super) max_message_bytes: Value<u64>,
    pub(super) max_connections: Value<u64>,
    pub(super) max_connections_per_address: Value<u64>,
    pub(super) idle_timeout_secs: Value<u64>,
    pub(super) message_timeout_secs: Value<u64>,
    pub(super) max_connection_attempts_per_address_per_sec: Value<u64>,
    pub(super) session_expires_secs: Value<u32>,
    pub(super) min_session_expires_secs: Value<u32>,
    pub(super) max_requests_per_source_per_sec: Value<u32>,
    pub(super) udp_receive_buffer_bytes: Value<u64>,
    pub(super) runtime_threads: Value<u32>,
    pub(super) engine_nice: Value<i32>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawDns {
    pub(super) nameserver: Value<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawHttp {
    pub(super) listen: Value<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawMedia {
    pub(super) address: Value<String>,
    pub(super) advertised_address: Value<String>,
    pub(super) rtp_ports: Value<String>,
    pub(super) rtp_timeout_secs: Value<u32>,
    pub(super) prompts_dir: Value<String>,
    pub(super) relay_threads: Value<u32>,
    pub(super) relay_spin_us: Value<u32>,
    pub(super) relay_realtime_priority: Value<u32>,
    pub(super) relay_coalesce_us: Value<u32>,
    pub(super) relay_processes: Value<u32>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawRegistrar {
    pub(super) min_expires_secs: Value<u32>,
    pub(super) max_expires_secs: Value<u32>,
    pub(super) default_expires_secs: Value<u32>,
    pub(super) max_contacts: Value<u32>,
    pub(super) qualify_interval_secs: Value<u32>,
    pub(super) qualify_timeout_secs: Value<u32>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawRecording {
    pub(super) enabled: Value<bool>,
    pub(super) retention_days: Value<u32>,
    pub(super) pause_code: Value<String>,
    pub(super) mixed_mono: Value<bool>,
    pub(super) jitter_window_ms: Value<u32>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawAcd {
    pub(super) caller_order: Value<String>,
    pub(super) ring_in_use: Value<bool>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawSkill {
    pub(super) name: Spanned<String>,
    pub(super) description: Value<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawAgent {
    pub(super) id: Spanned<String>,
    pub(super) name: Value<String>,
    pub(super) password: Value<String>,
    #[serde(default)]
    pub(super) skills: Vec<Spanned<String>>,
    pub(super) wrap_up_secs: Value<u64>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawTrunk {
    pub(super) name: Spanned<String>,
    pub(super) allow: Value<Vec<Spanned<String>>>,
    pub(super) outbound: Value<String>,
    pub(super) country_code: Value<String>,
    pub(super) national_prefix: Value<String>,
    pub(super) international_prefix: Value<String>,
    pub(super) trust_identity: Value<bool>,
    pub(super) register: Option<RawTrunkRegistration>,
    pub(super) inbound: Option<RawTrunkInbound>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawTrunkRegistration {
    pub(super) registrar: Spanned<String>,
    pub(super) transport: Value<String>,
    pub(super) domain: Value<String>,
    pub(super) user: Spanned<String>,
    pub(super) auth_user: Value<String>,
    pub(super) contact_user: Value<String>,
    pub(super) password: Value<String>,
    pub(super) password_file: Value<String>,
    pub(super) expires_secs: Value<u64>,
    pub(super) retry_secs: Value<u64>,
    pub(super) max_retry_secs: Value<u64>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawTrunkInbound {
    pub(super) username: Spanned<String>,
    pub(super) password: Value<String>,
    pub(super) password_file: Value<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawQueue {
    pub(super) name: Spanned<String>,
    #[serde(default)]
    pub(super) agents: Vec<Spanned<String>>,
    pub(super) ring_timeout_secs: Value<u64>,
    pub(super) max_wait_secs: Value<u64>,
    pub(super) retry_delay_secs: Value<u64>,
    pub(super) wrap_up_secs: Value<u64>,
    pub(super) strategy: Value<String>,
    pub(super) max_length: Value<u64>,
    pub(super) weight: Value<u32>,
    #[serde(default)]
    pub(super) steps: Vec<RawStep>,
    pub(super) join_empty: Value<Vec<Spanned<String>>>,
    pub(super) leave_empty: Value<Vec<Spanned<String>>>,
    pub(super) overflow: Value<String>,
    #[serde(default)]
    pub(super) exit_keys: BTreeMap<Spanned<String>, Spanned<String>>,
    pub(super) reject_delay_secs: Value<u64>,
    pub(super) busy_delay_secs: Value<u64>,
    pub(super) no_answer_delay_secs: Value<u64>,
    pub(super) max_no_answer: Value<u32>,
    pub(super) music_on_hold: Value<String>,
    pub(super) announce_every_secs: Value<u64>,
    pub(super) announce_position: Value<bool>,
    pub(super) announce_wait: Value<bool>,
    pub(super) service_level_secs: Value<u64>,
    pub(super) callback_attempts: Value<u32>,
    pub(super) callback_retry_secs: Value<u64>,
    pub(super) survey: Value<bool>,
    pub(super) survey_attempts: Value<u32>,
    pub(super) survey_timeout_secs: Value<u64>,
}

/// One `[[queues.steps]]` table; validation checks that exactly one of
/// `keep`, `any_agent` and `overflow` is present.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawStep {
    pub(super) after_secs: Spanned<u64>,
    pub(super) keep: Value<Vec<Spanned<String>>>,
    pub(super) any_agent: Value<bool>,
    pub(super) overflow: Value<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawDid {
    pub(super) number: Spanned<String>,
    pub(super) queue: Spanned<String>,
    pub(super) priority: Value<u32>,
    #[serde(default)]
    pub(super) skills: Vec<Spanned<String>>,
    pub(super) request_type: Value<String>,
}
