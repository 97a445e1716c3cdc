//! The PBX configuration: TOML parsed into serde structs, then checked and
//! converted into the typed [`Config`] the rest of the binary uses.
//!
//! `configs/pbx.toml` is the commented default and is embedded in the
//! binary. Every key has a default, so an empty file is a valid PBX with no
//! agents, trunks, queues or DIDs. Validation collects every problem instead
//! of stopping at the first, and each [`ConfigError`] names the file, the
//! key path and the line, so one `pbx check-config` run lists all fixes.

mod error;
mod quality;
mod raw;
mod routing;
mod skills;
mod survey;
mod transports;
mod trunks;
mod validate;

use std::net::{IpAddr, SocketAddr};
use std::ops::RangeInclusive;
use std::path::PathBuf;
use std::time::Duration;

pub(crate) use error::ConfigErrors;
pub(crate) use sip_server::network::IpNetwork;

/// Text of `configs/pbx.toml`, compiled in.
pub(crate) const EMBEDDED_TEXT: &str = include_str!("../../../configs/pbx.toml");
/// Origin named in errors about the embedded default.
pub(crate) const EMBEDDED_ORIGIN: &str = "<embedded configs/pbx.toml>";

impl Config {
    /// Returns the location of the PBX database: `database.url`, or by
    /// default the SQLite file `pbx.sqlite` in the data folder.
    pub(crate) fn database_url(&self) -> cdr::database::DatabaseUrl {
        match &self.database {
            Some(url) => url.clone(),
            None => cdr::database::DatabaseUrl::sqlite_file(&self.data_dir.join("pbx.sqlite")),
        }
    }
}

#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Config {
    /// Folder for the database, the CDR journal, recordings and generated
    /// passwords; relative paths are relative to the working directory.
    pub(crate) data_dir: PathBuf,
    /// `database.url`; `None` keeps the SQLite file `pbx.sqlite` in
    /// `data_dir`.
    pub(crate) database: Option<cdr::database::DatabaseUrl>,
    pub(crate) sip: SipConfig,
    /// Name server of the RFC 3263 look-ups of trunk host names.
    pub(crate) dns: DnsConfig,
    pub(crate) http: HttpConfig,
    pub(crate) media: MediaConfig,
    pub(crate) registrar: RegistrarConfig,
    pub(crate) recording: RecordingConfig,
    /// The `[[skills]]` catalogue; empty allows any skill name.
    pub(crate) skills: Vec<SkillDefinition>,
    pub(crate) agents: Vec<AgentConfig>,
    pub(crate) trunks: Vec<TrunkConfig>,
    pub(crate) queues: Vec<QueueConfig>,
    pub(crate) dids: Vec<DidConfig>,
    /// Order in which an agent of several queues takes their calls.
    pub(crate) caller_order: acd::CallerOrder,
    /// Whether an agent's extension rings, and queues offer the agent calls,
    /// while its phone is on a call that did not come from a queue.
    pub(crate) ring_in_use: bool,
    /// Longest voicemail message.
    pub(crate) voicemail_max: Duration,
    pub(crate) overload: OverloadConfig,
    pub(crate) qa: QaConfig,
    pub(crate) reports: ReportsConfig,
}

/// Scorecard criteria and scale: see `[qa]` in configs/pbx.toml.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct QaConfig {
    /// Highest score of one criterion; scores go from 0 to this.
    pub(crate) max_score: u32,
    /// In file order; empty when the file defines none, and then calls
    /// cannot be scored.
    pub(crate) criteria: Vec<Criterion>,
}

/// One line of the scorecard.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Criterion {
    /// Stable key stored with each score, so that a renamed label keeps
    /// its history.
    pub(crate) id: String,
    /// Text shown to the reviewer; the id when the file gives none.
    pub(crate) label: String,
    /// Share of the criterion in the weighted total, relative to the others.
    pub(crate) weight: u32,
}

/// Settings of the reports: see `[reports]` in configs/pbx.toml.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct ReportsConfig {
    /// A call counts as resolved at first contact when the same number
    /// does not call the same DID again within this time.
    pub(crate) first_contact_window: Duration,
    /// Zone whose local days and clock times bound the report intervals.
    pub(crate) time_zone: jiff::tz::TimeZone,
}

/// When new calls get 503: see `[overload]` in configs/pbx.toml.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct OverloadConfig {
    pub(crate) max_transactions: usize,
    /// Share of the whole machine's CPU, in percent; 0 turns the check off.
    pub(crate) cpu_percent: u32,
    pub(crate) retry_after: Duration,
}

#[derive(Clone, Debug, PartialEq)]
pub(crate) struct SipConfig {
    /// UDP and TCP listen address.
    pub(crate) listen: SocketAddr,
    /// Address put in Via, Contact and Record-Route: the configured one, else
    /// the listen IP, else 127.0.0.1 when the listen IP is unspecified.
    pub(crate) advertised_address: IpAddr,
    /// Digest realm and the domain of agent AORs.
    pub(crate) domain: String,
    /// Digest algorithms offered in challenges, preferred first.
    pub(crate) digest_algorithms: Vec<sip_server::auth::Algorithm>,
    /// TLS and WebSocket listeners and the limits of every stream transport.
    pub(crate) streams: StreamConfig,
    /// Session timer intervals (RFC 4028) of every call leg.
    pub(crate) session_timer: sip_server::b2bua::SessionTimerConfig,
    /// SIP requests per second one source address may send over UDP before
    /// the rest are dropped; 0 turns the limit off. Trunks are exempt.
    pub(crate) max_requests_per_source: u32,
    /// Receive buffer of the UDP socket in bytes, which keeps the datagrams
    /// that arrive while the engine is busy. 0 keeps the system's default.
    pub(crate) udp_receive_buffer: usize,
    /// Worker threads of the async runtime; 0 is one per core.
    pub(crate) runtime_threads: usize,
    /// Nice value of the threads that run the SIP engine; 0 leaves them be.
    pub(crate) engine_nice: i8,
}

/// Stream transports beyond TCP, and limits shared with TCP.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct StreamConfig {
    pub(crate) tls_listen: Option<SocketAddr>,
    pub(crate) ws_listen: Option<SocketAddr>,
    pub(crate) wss_listen: Option<SocketAddr>,
    /// Set whenever TLS or WSS listens. Validation loads the files once to
    /// check them.
    pub(crate) certificate: Option<CertificateFiles>,
    /// The client side of TLS connections the PBX opens to trunks.
    pub(crate) outbound_tls: OutboundTlsConfig,
    pub(crate) limits: crate::transport::StreamLimits,
}

/// PEM files of the TLS server certificate.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct CertificateFiles {
    /// Certificate chain, leaf first.
    pub(crate) chain: PathBuf,
    pub(crate) private_key: PathBuf,
}

/// Trust and identity of the PBX as a TLS client of trunks.
#[derive(Clone, Debug, Default, PartialEq)]
pub(crate) struct OutboundTlsConfig {
    /// PEM trust anchors a trunk's certificate must chain to; None uses
    /// the operating system's.
    pub(crate) ca_file: Option<PathBuf>,
    /// Certificate and key the PBX presents for mutual TLS.
    pub(crate) client_certificate: Option<CertificateFiles>,
}

/// The resolver of trunk host names.
#[derive(Clone, Debug, Default, PartialEq)]
pub(crate) struct DnsConfig {
    /// Address and port of the one name server to ask; None reads
    /// /etc/resolv.conf.
    pub(crate) nameserver: Option<SocketAddr>,
}

#[derive(Clone, Debug, PartialEq)]
pub(crate) struct HttpConfig {
    pub(crate) listen: SocketAddr,
}

#[derive(Clone, Debug, PartialEq)]
pub(crate) struct MediaConfig {
    /// Bind address of the relay sockets.
    pub(crate) address: IpAddr,
    /// Address put in SDP `c=`, defaulted like the SIP one.
    pub(crate) advertised_address: IpAddr,
    /// Even start, inclusive, at least 4 ports.
    pub(crate) rtp_ports: RangeInclusive<u16>,
    /// An answered call in which neither leg sent RTP for this long is
    /// ended; None never ends calls for silence.
    pub(crate) rtp_timeout: Option<Duration>,
    /// Folder of announcement prompts; None uses the built-in English ones.
    pub(crate) prompts_dir: Option<PathBuf>,
    /// Relay threads; 0 is one per core.
    pub(crate) relay_threads: usize,
    /// How long a relay thread polls on after a datagram before it sleeps.
    pub(crate) relay_spin: Duration,
    /// SCHED_FIFO priority of the relay threads; 0 is the normal scheduler.
    pub(crate) relay_realtime_priority: u8,
    /// Shortest time between two busy rounds of a relay thread.
    pub(crate) relay_coalesce: Duration,
    /// Relay worker processes; 0 relays in the PBX's own threads.
    pub(crate) relay_processes: usize,
}

/// REGISTER expiry limits in seconds (RFC 3261 section 10.2.8).
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct RegistrarConfig {
    pub(crate) min_expires: u32,
    pub(crate) max_expires: u32,
    pub(crate) default_expires: u32,
    pub(crate) max_contacts: usize,
    /// Interval between OPTIONS probes of each contact; None disables them.
    pub(crate) qualify_interval: Option<Duration>,
    pub(crate) qualify_timeout: Duration,
}

#[derive(Clone, Debug, PartialEq)]
pub(crate) struct RecordingConfig {
    pub(crate) enabled: bool,
    /// Recordings older than this many days are deleted; 0 keeps them.
    pub(crate) retention_days: u32,
    /// DTMF keys with which the agent on a call pauses and resumes its
    /// recording; `None` when the file sets it to "".
    pub(crate) pause_code: Option<String>,
    /// Each call recording also gets a mono file that sums both channels.
    pub(crate) mixed_mono: bool,
    /// How long recorded audio waits for late and reordered packets.
    pub(crate) jitter_window: Duration,
}

/// One entry of the `[[skills]]` catalogue.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct SkillDefinition {
    /// Skill name as agents hold it, such as `language=ru`.
    pub(crate) name: String,
    /// Text for the people who assign skills; empty when the file gives none.
    pub(crate) description: String,
}

#[derive(Clone, Debug, PartialEq)]
pub(crate) struct AgentConfig {
    /// Extension and digest username; the AOR is `sip:<id>@<domain>`.
    pub(crate) id: String,
    /// Display name; the id when the file gives none.
    pub(crate) name: String,
    /// Configured digest password; `None` leaves it to `secrets`.
    pub(crate) password: Option<String>,
    /// Skill name to proficiency level, for `acd::Acd::set_skills`.
    pub(crate) skills: acd::Skills,
    /// After-call work after every queue call, in place of the queues'
    /// `wrap_up`; `None` follows each queue.
    pub(crate) wrap_up: Option<Duration>,
}

#[derive(Clone, Debug, PartialEq)]
pub(crate) struct TrunkConfig {
    pub(crate) name: String,
    /// Source networks whose requests are accepted without digest auth.
    pub(crate) allow: Vec<IpNetwork>,
    /// Where calls to numbers are sent: a SIP URI, a host or IP:PORT.
    pub(crate) outbound: Option<sip_server::locate::OutboundTarget>,
    /// Numbering plan that turns the trunk's numbers into E.164.
    pub(crate) numbering: Option<sip_server::b2bua::NumberingPlan>,
    /// Caller number from P-Asserted-Identity.
    pub(crate) trust_identity: bool,
    /// Registration at the provider's registrar (`[trunks.register]`).
    pub(crate) registration: Option<sip_server::trunk_registration::RegistrationConfig>,
    /// Digest credentials of the trunk's calls from outside `allow`
    /// (`[trunks.inbound]`).
    pub(crate) inbound: Option<sip_server::b2bua::TrunkCredentials>,
}

#[derive(Clone, Debug, PartialEq)]
pub(crate) struct QueueConfig {
    pub(crate) name: String,
    /// Agent ids, each defined in `agents`.
    pub(crate) agents: Vec<String>,
    pub(crate) ring_timeout: Duration,
    pub(crate) max_wait: Duration,
    pub(crate) retry_delay: Duration,
    pub(crate) wrap_up: Duration,
    /// The complete engine configuration for `acd::Acd::add_queue`, with
    /// the name and the four timings above repeated, steps sorted by time,
    /// and every `Destination::Queue` naming a queue defined in `queues`.
    pub(crate) acd: acd::QueueConfig,
    pub(crate) music_on_hold: MusicOnHold,
    /// Time between position and wait announcements; None for none.
    pub(crate) announce_every: Option<Duration>,
    pub(crate) announce_position: bool,
    pub(crate) announce_wait: bool,
    /// Post-call survey for callers whose agent hangs up first; None for none.
    pub(crate) survey: Option<sip_server::b2bua::SurveyConfig>,
}

/// What waiting callers of a queue hear between announcements.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum MusicOnHold {
    /// Ringback from their own phone, unless announcements are on (then
    /// silence between them).
    None,
    /// The music built into the binary.
    BuiltIn,
    File(PathBuf),
}

#[derive(Clone, Debug, PartialEq)]
pub(crate) struct DidConfig {
    pub(crate) number: String,
    /// Name of a queue defined in `queues`.
    pub(crate) queue: String,
    /// `acd::CallData::priority` of calls to this number; higher is served first.
    pub(crate) priority: u32,
    /// Skills an agent needs for calls to this number, before the queue's
    /// steps relax them (`acd::CallData::requirements`).
    pub(crate) skills: Vec<acd::SkillRequirement>,
    /// Free text recorded with each call (`acd::CallData::request_type`).
    pub(crate) request_type: Option<String>,
}

/// Values from command-line flags or their environment variables, which
/// replace the file's values before validation.
#[derive(Clone, Debug, Default)]
pub(crate) struct Overrides {
    pub(crate) data_dir: Option<PathBuf>,
    pub(crate) sip_listen: Option<String>,
    pub(crate) http_listen: Option<String>,
    pub(crate) rtp_ports: Option<String>,
}

impl Config {
    /// Parses and validates; every error names the file, the key path
    /// (e.g. `queues[0].agents[1]`), and the line.
    pub(crate) fn parse(text: &str, origin: &str) -> Result<Config, ConfigErrors> {
        Config::parse_with_overrides(text, origin, &Overrides::default())
    }

    /// Parses `text`, replaces the values given in `overrides`, then
    /// validates. Errors in an override name its flag instead of a line.
    pub(crate) fn parse_with_overrides(
        text: &str,
        origin: &str,
        overrides: &Overrides,
    ) -> Result<Config, ConfigErrors> {
        let raw = validate::deserialize(text, origin)?;
        validate::convert(&raw, text, origin, overrides)
    }

    /// Returns the configuration compiled in from `configs/pbx.toml`.
    ///
    /// # Panics
    ///
    /// Panics when that file does not validate, which the test
    /// `embedded_default_validates` rules out for every build.
    #[allow(
        dead_code,
        reason = "part of the configuration interface; the binary loads through \
                  cli::load_config, which applies overrides to the same text"
    )]
    pub(crate) fn embedded_default() -> Config {
        Config::parse(EMBEDDED_TEXT, EMBEDDED_ORIGIN)
            .unwrap_or_else(|errors| panic!("the embedded configs/pbx.toml is invalid:\n{errors}"))
    }
}

#[cfg(test)]
mod routing_tests;
#[cfg(test)]
mod survey_tests;
#[cfg(test)]
mod tests;
#[cfg(test)]
mod transport_tests;
#[cfg(test)]
mod trunk_tests;

impl Config {
    /// Queue destinations this version cannot carry out, as `key: message`
    /// lines. The file is valid, but starting on it would send callers
    /// where nothing answers, so `run` and `check-config` both refuse it.
    pub(crate) fn unsupported_destinations(&self) -> Vec<String> {
        let mut problems = Vec::new();
        for (index, queue) in self.queues.iter().enumerate() {
            let acd = &queue.acd;
            let steps = acd.steps.iter().filter_map(|step| match &step.rule {
                acd::StepRule::Overflow(destination) => Some(destination),
                _ => None,
            });
            let destinations = acd
                .overflow
                .iter()
                .chain(acd.exit_keys.values())
                .chain(steps);
            let outbound = self.trunks.iter().any(|trunk| trunk.outbound.is_some());
            for destination in destinations {
                if let acd::Destination::Number(number) = destination {
                    let extension = self.agents.iter().any(|agent| agent.id == *number);
                    if !extension && !outbound {
                        problems.push(format!(
                            "queues[{index}]: queue {:?} sends calls to the number {number:?}, which \
                             is no agent's extension, and no [[trunks]] entry has an outbound \
                             address to dial it through; add outbound = \"sip:HOST\" or \"IP:PORT\" to a trunk",
                            queue.name
                        ));
                    }
                    continue;
                }
                // Citizens who called from an extension are rung there, but
                // trunk callers, the usual case, need a way out.
                if *destination == acd::Destination::Callback && !outbound {
                    problems.push(format!(
                        "queues[{index}]: queue {:?} takes callback requests, and no [[trunks]] \
                         entry has an outbound address to call citizens back through; add \
                         outbound = \"sip:HOST\" or \"IP:PORT\" to a trunk",
                        queue.name
                    ));
                }
            }
        }
        problems
    }
}
