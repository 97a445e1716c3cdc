//! Checks the raw file and converts it into [`Config`], collecting every
//! problem with its key path and location.

use sip_server::auth::Algorithm;
use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::ops::{Range, RangeInclusive};
use std::path::PathBuf;
use std::time::Duration;

use toml::Spanned;

use super::error::{ConfigError, ConfigErrorKind, ConfigErrors, Location, RtpPortsProblem};
use super::raw::{RawAgent, RawConfig, RawDid, RawQueue, Value};
use super::routing;
use super::{
    AgentConfig, Config, DidConfig, DnsConfig, HttpConfig, MediaConfig, MusicOnHold,
    OverloadConfig, Overrides, QueueConfig, RecordingConfig, RegistrarConfig, SipConfig,
};

// Defaults of keys the file leaves out; configs/pbx.toml documents the same values.
const VOICEMAIL_MAX_SECS: u64 = 120;
const VOICEMAIL_MAX_LIMIT_SECS: u64 = 3600;
const DATA_DIR: &str = "data";
const SIP_LISTEN: &str = "0.0.0.0:5060";
const SIP_DOMAIN: &str = "pbx.local";
const HTTP_LISTEN: &str = "127.0.0.1:8080";
const MEDIA_ADDRESS: &str = "0.0.0.0";
const RTP_PORTS: &str = "20000-20999";
const MIN_EXPIRES_SECS: u32 = 60;
const MAX_EXPIRES_SECS: u32 = 3600;
const DEFAULT_EXPIRES_SECS: u32 = 600;
const MAX_CONTACTS: u32 = 5;
const QUALIFY_INTERVAL_SECS: u32 = 30;
const RTP_TIMEOUT_SECS: u32 = 60;
/// More relay threads than this gain nothing on any machine the PBX runs on.
const MAX_RELAY_THREADS: u32 = 64;
const MAX_RELAY_PROCESSES: u32 = 64;
/// A relay thread that polls longer than this between datagrams burns a
/// core for nothing: 20 ms is one packet interval of a single call.
const MAX_RELAY_SPIN_US: u32 = 20_000;
/// The highest SCHED_FIFO priority Linux accepts.
const MAX_RELAY_REALTIME_PRIORITY: u32 = 99;
/// A window past 1 ms would by itself break the relay's delay target.
const MAX_RELAY_COALESCE_US: u32 = 1_000;
const QUALIFY_TIMEOUT_SECS: u32 = 5;
/// A century: longer is surely a typo, and keeps the cutoff date in range.
const MAX_RETENTION_DAYS: u32 = 36_500;
/// Keys with which an agent pauses and resumes the recording of its call.
const DEFAULT_PAUSE_CODE: &str = "*1";
const RING_TIMEOUT_SECS: u64 = 15;
const MAX_WAIT_SECS: u64 = 120;
const RETRY_DELAY_SECS: u64 = 5;
const WRAP_UP_SECS: u64 = 0;
/// A day: an agent's own wrap-up beyond it is surely a typo.
const MAX_AGENT_WRAP_UP_SECS: u64 = 86_400;

/// Flags that override file values, as named in errors.
const FLAG_DATA_DIR: &str = "--data-dir";
const FLAG_SIP_LISTEN: &str = "--sip-listen";
const FLAG_HTTP_LISTEN: &str = "--http-listen";
const FLAG_RTP_PORTS: &str = "--rtp-ports";

/// Runs the serde pass. A syntax error, a wrong type, a missing key or an
/// unknown key stops here, because nothing after it can be trusted.
pub(super) fn deserialize(text: &str, origin: &str) -> Result<RawConfig, ConfigErrors> {
    let toml_error = |key: String, error: toml::de::Error| {
        ConfigErrors::single(ConfigError {
            origin: origin.to_owned(),
            key,
            location: error
                .span()
                .map(|span| Location::from_offset(text, span.start)),
            kind: ConfigErrorKind::Toml(error.message().trim_end().to_owned()),
        })
    };
    let deserializer = toml::Deserializer::parse(text).map_err(|e| toml_error(String::new(), e))?;
    serde_path_to_error::deserialize(deserializer).map_err(|error| {
        let key = key_path(error.path());
        toml_error(key, error.into_inner())
    })
}

/// Formats a serde path as `queues[0].agents[1]`, leaving out the
/// internal field names through which `toml::Spanned` deserializes.
fn key_path(path: &serde_path_to_error::Path) -> String {
    use serde_path_to_error::Segment;

    let mut key = String::new();
    for segment in path.iter() {
        match segment {
            Segment::Seq { index } => key.push_str(&format!("[{index}]")),
            Segment::Map { key: name } | Segment::Enum { variant: name } => {
                if name.starts_with("$__serde_spanned") {
                    continue;
                }
                if !key.is_empty() {
                    key.push('.');
                }
                key.push_str(name);
            }
            Segment::Unknown => {}
        }
    }
    key
}

/// Origin of a value, for locating errors about it.
#[derive(Clone, Debug)]
pub(super) enum Source {
    File(Range<usize>),
    Flag(&'static str),
    Default,
}

pub(super) struct Sourced<T> {
    pub(super) value: T,
    pub(super) source: Source,
}

pub(super) fn from_file<T: Clone>(raw: &Value<T>, default: T) -> Sourced<T> {
    match raw {
        Some(spanned) => Sourced {
            value: spanned.get_ref().clone(),
            source: Source::File(spanned.span()),
        },
        None => Sourced {
            value: default,
            source: Source::Default,
        },
    }
}

pub(super) fn spanned<T: Clone>(value: &Spanned<T>) -> Sourced<T> {
    from_file(&Some(value.clone()), value.get_ref().clone())
}

fn with_flag(
    raw: &Value<String>,
    flag: &'static str,
    value: Option<&String>,
    default: &str,
) -> Sourced<String> {
    match value {
        Some(value) => Sourced {
            value: value.clone(),
            source: Source::Flag(flag),
        },
        None => from_file(raw, default.to_owned()),
    }
}

pub(super) struct Checker<'a> {
    text: &'a str,
    origin: &'a str,
    errors: Vec<ConfigError>,
}

impl Checker<'_> {
    pub(super) fn report(
        &mut self,
        key: impl Into<String>,
        source: &Source,
        kind: ConfigErrorKind,
    ) {
        let (origin, location) = match source {
            Source::File(span) => (self.origin, Some(self.locate(span))),
            Source::Flag(flag) => (*flag, None),
            Source::Default => (self.origin, None),
        };
        self.errors.push(ConfigError {
            origin: origin.to_owned(),
            key: key.into(),
            location,
            kind,
        });
    }

    fn locate(&self, span: &Range<usize>) -> Location {
        Location::from_offset(self.text, span.start)
    }

    /// Describes where a first definition is, for duplicate errors.
    fn describe(&self, source: &Source) -> String {
        match source {
            Source::File(span) => format!("line {}", self.locate(span).line),
            Source::Flag(flag) => (*flag).to_owned(),
            Source::Default => "the default".to_owned(),
        }
    }

    pub(super) fn socket_address(&mut self, key: &str, raw: &Sourced<String>) -> SocketAddr {
        raw.value.parse().unwrap_or_else(|_| {
            let value = raw.value.clone();
            self.report(
                key,
                &raw.source,
                ConfigErrorKind::InvalidSocketAddress { value },
            );
            SocketAddr::from((Ipv4Addr::UNSPECIFIED, 0))
        })
    }

    fn ip_address(&mut self, key: &str, raw: &Sourced<String>) -> IpAddr {
        raw.value.parse().unwrap_or_else(|_| {
            let value = raw.value.clone();
            self.report(
                key,
                &raw.source,
                ConfigErrorKind::InvalidIpAddress { value },
            );
            IpAddr::V4(Ipv4Addr::UNSPECIFIED)
        })
    }

    fn rtp_ports(&mut self, key: &str, raw: &Sourced<String>) -> RangeInclusive<u16> {
        parse_rtp_ports(&raw.value).unwrap_or_else(|problem| {
            let value = raw.value.clone();
            self.report(
                key,
                &raw.source,
                ConfigErrorKind::InvalidRtpPorts { value, problem },
            );
            0..=0
        })
    }

    pub(super) fn non_zero<T: Default + PartialEq>(&mut self, key: &str, raw: &Sourced<T>) {
        if raw.value == T::default() {
            self.report(key, &raw.source, ConfigErrorKind::Zero);
        }
    }

    /// Accepts a non-empty value without whitespace or control characters.
    pub(super) fn token(&mut self, key: &str, raw: &Sourced<String>) {
        if raw.value.is_empty() {
            self.report(key, &raw.source, ConfigErrorKind::Empty);
        } else if raw
            .value
            .chars()
            .any(|c| c.is_whitespace() || c.is_control())
        {
            let value = raw.value.clone();
            self.report(
                key,
                &raw.source,
                ConfigErrorKind::InvalidCharacter { value },
            );
        }
    }

    /// Accepts an agent id: letters, digits, '-', '_' and '.', which are
    /// valid in a SIP user part and map onto an environment variable name.
    pub(super) fn identifier(&mut self, key: &str, raw: &Sourced<String>) {
        if raw.value.is_empty() {
            self.report(key, &raw.source, ConfigErrorKind::Empty);
            return;
        }
        let invalid = raw
            .value
            .chars()
            .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.')));
        if let Some(character) = invalid {
            let value = raw.value.clone();
            self.report(
                key,
                &raw.source,
                ConfigErrorKind::InvalidIdentifier { value, character },
            );
        }
    }

    pub(super) fn not_empty(&mut self, key: &str, raw: &Sourced<String>) {
        if raw.value.is_empty() {
            self.report(key, &raw.source, ConfigErrorKind::Empty);
        }
    }

    /// Records `raw` under `seen`, reporting it when already present.
    pub(super) fn unique(
        &mut self,
        key: &str,
        item: &'static str,
        raw: &Sourced<String>,
        seen: &mut HashMap<String, Source>,
    ) {
        if let Some(first) = seen.get(&raw.value) {
            let kind = ConfigErrorKind::Duplicate {
                item,
                value: raw.value.clone(),
                first: self.describe(first),
            };
            self.report(key, &raw.source, kind);
        } else {
            seen.insert(raw.value.clone(), raw.source.clone());
        }
    }
}

/// Parses "A-B" into an inclusive range with an even, non-zero start and at
/// least four ports, so each of the two legs gets an RTP+RTCP pair.
pub(super) fn parse_rtp_ports(text: &str) -> Result<RangeInclusive<u16>, RtpPortsProblem> {
    let (start, end) = text.split_once('-').ok_or(RtpPortsProblem::Syntax)?;
    let start: u16 = start.trim().parse().map_err(|_| RtpPortsProblem::Syntax)?;
    let end: u16 = end.trim().parse().map_err(|_| RtpPortsProblem::Syntax)?;
    if start == 0 {
        return Err(RtpPortsProblem::ZeroStart);
    }
    if start & 1 == 1 {
        return Err(RtpPortsProblem::OddStart(start));
    }
    if start >= end {
        return Err(RtpPortsProblem::NotAscending { start, end });
    }
    let count = u32::from(end) - u32::from(start) + 1;
    if count < 4 {
        return Err(RtpPortsProblem::TooFew { count });
    }
    Ok(start..=end)
}

/// The address peers should use: `configured`, else `bound` unless it is
/// the unspecified address, else loopback.
fn advertised(configured: Option<IpAddr>, bound: IpAddr) -> IpAddr {
    match configured {
        Some(address) => address,
        None if bound.is_unspecified() => IpAddr::V4(Ipv4Addr::LOCALHOST),
        None => bound,
    }
}

pub(super) fn convert(
    raw: &RawConfig,
    text: &str,
    origin: &str,
    overrides: &Overrides,
) -> Result<Config, ConfigErrors> {
    let mut checker = Checker {
        text,
        origin,
        errors: Vec::new(),
    };
    let data_dir = match &overrides.data_dir {
        Some(path) => Sourced {
            value: path.clone(),
            source: Source::Flag(FLAG_DATA_DIR),
        },
        None => {
            let raw = from_file(&raw.data_dir, DATA_DIR.to_owned());
            Sourced {
                value: PathBuf::from(raw.value),
                source: raw.source,
            }
        }
    };
    if data_dir.value.as_os_str().is_empty() {
        checker.report("data_dir", &data_dir.source, ConfigErrorKind::Empty);
    }
    let database = convert_database(&mut checker, raw);
    let sip = convert_sip(&mut checker, raw, overrides);
    let http = HttpConfig {
        listen: checker.socket_address(
            "http.listen",
            &with_flag(
                &raw.http.listen,
                FLAG_HTTP_LISTEN,
                overrides.http_listen.as_ref(),
                HTTP_LISTEN,
            ),
        ),
    };
    let media = convert_media(&mut checker, raw, overrides);
    let sources = ListenSources {
        sip: with_flag(
            &raw.sip.listen,
            FLAG_SIP_LISTEN,
            overrides.sip_listen.as_ref(),
            SIP_LISTEN,
        )
        .source,
        http: with_flag(
            &raw.http.listen,
            FLAG_HTTP_LISTEN,
            overrides.http_listen.as_ref(),
            HTTP_LISTEN,
        )
        .source,
        rtp_ports: with_flag(
            &raw.media.rtp_ports,
            FLAG_RTP_PORTS,
            overrides.rtp_ports.as_ref(),
            RTP_PORTS,
        )
        .source,
    };
    check_port_overlap(&mut checker, &sources, &sip, &http, &media);
    let registrar = convert_registrar(&mut checker, raw);
    let recording = convert_recording(&mut checker, raw);
    let skills = super::skills::convert_skills(&mut checker, &raw.skills);
    super::skills::check_references(&mut checker, &skills, raw);
    let agents = convert_agents(&mut checker, &raw.agents);
    let trunks = super::trunks::convert_trunks(&mut checker, &raw.trunks, &raw.agents);
    let queues = convert_queues(&mut checker, &raw.queues, &raw.agents);
    let dids = convert_dids(&mut checker, &raw.dids, &raw.queues, &raw.agents);
    let caller_order = routing::caller_order(&mut checker, &raw.acd.caller_order);
    let max_message = from_file(&raw.voicemail.max_message_secs, VOICEMAIL_MAX_SECS);
    checker.non_zero("voicemail.max_message_secs", &max_message);
    if max_message.value > VOICEMAIL_MAX_LIMIT_SECS {
        // A caller who never hangs up must not fill the disk.
        checker.report(
            "voicemail.max_message_secs",
            &max_message.source,
            ConfigErrorKind::TooLarge {
                value: max_message.value,
                max: VOICEMAIL_MAX_LIMIT_SECS,
            },
        );
    }

    let overload = convert_overload(&mut checker, raw);
    let qa = super::quality::convert_qa(&mut checker, &raw.qa);
    let reports = super::quality::convert_reports(&mut checker, &raw.reports);
    let dns = DnsConfig {
        nameserver: raw
            .dns
            .nameserver
            .as_ref()
            .map(|address| checker.socket_address("dns.nameserver", &spanned(address))),
    };

    if !checker.errors.is_empty() {
        return Err(ConfigErrors(checker.errors));
    }
    Ok(Config {
        data_dir: data_dir.value,
        database,
        sip,
        dns,
        http,
        media,
        registrar,
        recording,
        skills,
        agents,
        trunks,
        queues,
        dids,
        caller_order,
        ring_in_use: from_file(&raw.acd.ring_in_use, false).value,
        voicemail_max: Duration::from_secs(max_message.value),
        overload,
        qa,
        reports,
    })
}

/// Checks `database.url`. Left out, the PBX uses SQLite in the data folder.
fn convert_database(
    checker: &mut Checker<'_>,
    raw: &RawConfig,
) -> Option<cdr::database::DatabaseUrl> {
    let spanned = raw.database.url.as_ref()?;
    match cdr::database::DatabaseUrl::parse(spanned.get_ref()) {
        Ok(url) => Some(url),
        Err(problem) => {
            let source = Source::File(spanned.span());
            checker.report(
                "database.url",
                &source,
                ConfigErrorKind::InvalidDatabaseUrl { problem },
            );
            None
        }
    }
}

/// SIP, HTTP and RTP must not want the same port, or the PBX fails to start
/// (or, for RTP, a call fails when its port pair is the SIP one).
/// Sources of the three port settings that must not overlap.
struct ListenSources {
    sip: Source,
    http: Source,
    rtp_ports: Source,
}

fn check_port_overlap(
    checker: &mut Checker<'_>,
    sources: &ListenSources,
    sip: &SipConfig,
    http: &HttpConfig,
    media: &MediaConfig,
) {
    let sip_listen = ("sip.listen", &sources.sip);
    let http_listen = ("http.listen", &sources.http);
    let rtp_ports = ("media.rtp_ports", &sources.rtp_ports);
    let sip_port = sip.listen.port();
    if sip_port != 0 && sip_port == http.listen.port() {
        report_conflict(checker, sip_port, http_listen, sip_listen);
    }
    for (setting, port) in [(sip_listen, sip_port), (http_listen, http.listen.port())] {
        if port != 0 && media.rtp_ports.contains(&port) {
            report_conflict(checker, port, rtp_ports, setting);
        }
    }
}

/// Reports two settings that claim `port` at the one the operator wrote
/// last, because the keys may sit in different tables and one of them
/// may be a default that appears nowhere in the file. `first` is named
/// when both are equally placed.
fn report_conflict(
    checker: &mut Checker<'_>,
    port: u16,
    first: (&'static str, &Source),
    second: (&'static str, &Source),
) {
    // A flag overrides the file, and a value in the file a default; between
    // two values in the file, the later one.
    let rank = |source: &Source| match source {
        Source::Default => (0, 0),
        Source::File(span) => (1, span.start),
        Source::Flag(_) => (2, 0),
    };
    let (at, other) = if rank(second.1) > rank(first.1) {
        (second, first)
    } else {
        (first, second)
    };
    let kind = ConfigErrorKind::PortConflict {
        port,
        other: other.0,
    };
    checker.report(at.0, at.1, kind);
}

fn convert_sip(checker: &mut Checker<'_>, raw: &RawConfig, overrides: &Overrides) -> SipConfig {
    let listen = with_flag(
        &raw.sip.listen,
        FLAG_SIP_LISTEN,
        overrides.sip_listen.as_ref(),
        SIP_LISTEN,
    );
    let listen = checker.socket_address("sip.listen", &listen);
    let configured = raw
        .sip
        .advertised_address
        .as_ref()
        .map(|address| checker.ip_address("sip.advertised_address", &spanned(address)));
    let domain = from_file(&raw.sip.domain, SIP_DOMAIN.to_owned());
    checker.token("sip.domain", &domain);
    SipConfig {
        listen,
        advertised_address: advertised(configured, listen.ip()),
        domain: domain.value,
        digest_algorithms: convert_digest_algorithms(checker, raw),
        streams: super::transports::convert(checker, &raw.sip, listen),
        session_timer: convert_session_timer(checker, raw),
        max_requests_per_source: from_file(&raw.sip.max_requests_per_source_per_sec, 200).value,
        udp_receive_buffer: udp_receive_buffer(checker, raw),
        runtime_threads: runtime_threads(checker, raw),
        engine_nice: engine_nice(checker, raw),
    }
}

/// Default `sip.engine_nice`: a share of a contended core about nine
/// times a default thread's (kernel weights 9,548 against 1,024).
const ENGINE_NICE_DEFAULT: i32 = -10;

fn engine_nice(checker: &mut Checker<'_>, raw: &RawConfig) -> i8 {
    let nice = from_file(&raw.sip.engine_nice, ENGINE_NICE_DEFAULT);
    if !(-20..=19).contains(&nice.value) {
        let kind = ConfigErrorKind::OutOfRange {
            value: i64::from(nice.value),
            min: -20,
            max: 19,
        };
        checker.report("sip.engine_nice", &nice.source, kind);
    }
    nice.value.clamp(-20, 19) as i8
}

/// Default receive buffer of the SIP UDP socket. Linux grants twice the
/// size asked and counts about 1,280 bytes for a 550-byte datagram, so
/// 4 MiB has room for a stall of the engine of about 0.65 s at 10,000
/// datagrams a second, and its usual default of 212,992 bytes for 17 ms.
pub(crate) const UDP_RECEIVE_BUFFER_DEFAULT: u64 = 4 * 1024 * 1024;
/// Largest `sip.udp_receive_buffer_bytes` accepted, above which a value is
/// taken as a typo.
const UDP_RECEIVE_BUFFER_LIMIT: u64 = 1024 * 1024 * 1024;

fn udp_receive_buffer(checker: &mut Checker<'_>, raw: &RawConfig) -> usize {
    let bytes = from_file(
        &raw.sip.udp_receive_buffer_bytes,
        UDP_RECEIVE_BUFFER_DEFAULT,
    );
    if bytes.value > UDP_RECEIVE_BUFFER_LIMIT {
        let kind = ConfigErrorKind::TooLarge {
            value: bytes.value,
            max: UDP_RECEIVE_BUFFER_LIMIT,
        };
        checker.report("sip.udp_receive_buffer_bytes", &bytes.source, kind);
    }
    usize::try_from(bytes.value.min(UDP_RECEIVE_BUFFER_LIMIT)).unwrap_or(usize::MAX)
}

/// Default `sip.runtime_threads`. The SIP engine is one task, so a second
/// worker adds no SIP capacity but adds a thread hand-off to most inputs.
/// Through the queue, one worker set up 1,856 calls a second on the 2-core
/// machine of docs/benchmarks.md, and two workers 1,348 at the same CPU.
const RUNTIME_THREADS_DEFAULT: u32 = 1;
const RUNTIME_THREADS_LIMIT: u32 = 64;

fn runtime_threads(checker: &mut Checker<'_>, raw: &RawConfig) -> usize {
    let threads = from_file(&raw.sip.runtime_threads, RUNTIME_THREADS_DEFAULT);
    if threads.value > RUNTIME_THREADS_LIMIT {
        let kind = ConfigErrorKind::TooLarge {
            value: u64::from(threads.value),
            max: u64::from(RUNTIME_THREADS_LIMIT),
        };
        checker.report("sip.runtime_threads", &threads.source, kind);
    }
    threads.value.min(RUNTIME_THREADS_LIMIT) as usize
}

/// RFC 4028 sets 90 seconds as the smallest Min-SE.
const MIN_SESSION_EXPIRES_FLOOR: u32 = 90;

fn convert_session_timer(
    checker: &mut Checker<'_>,
    raw: &RawConfig,
) -> sip_server::b2bua::SessionTimerConfig {
    let defaults = sip_server::b2bua::SessionTimerConfig::default();
    let as_secs = |duration: Duration| u32::try_from(duration.as_secs()).unwrap_or(u32::MAX);
    let interval = from_file(&raw.sip.session_expires_secs, as_secs(defaults.interval));
    let min = from_file(
        &raw.sip.min_session_expires_secs,
        as_secs(defaults.min_interval),
    );
    if min.value < MIN_SESSION_EXPIRES_FLOOR || min.value > interval.value {
        let (key, source) = match min.source {
            Source::File(_) => ("sip.min_session_expires_secs", &min.source),
            _ => ("sip.session_expires_secs", &interval.source),
        };
        let kind = ConfigErrorKind::SessionExpiresOrder {
            min: min.value,
            interval: interval.value,
        };
        checker.report(key, source, kind);
    }
    sip_server::b2bua::SessionTimerConfig {
        interval: Duration::from_secs(u64::from(interval.value)),
        min_interval: Duration::from_secs(u64::from(min.value)),
    }
}

/// MD5 alone by default: baresip 1.0 fails on a 401 that carries a SHA-256
/// challenge beside the MD5 one, and sipp 3.6 and many older phones take
/// the first challenge and know only MD5. Operators with RFC 8760 phones
/// list SHA-256.
fn convert_digest_algorithms(checker: &mut Checker<'_>, raw: &RawConfig) -> Vec<Algorithm> {
    let Some(list) = &raw.sip.digest_algorithms else {
        return vec![Algorithm::Md5];
    };
    if list.get_ref().is_empty() {
        checker.report(
            "sip.digest_algorithms",
            &Source::File(list.span()),
            ConfigErrorKind::Empty,
        );
    }
    let mut algorithms = Vec::new();
    for (position, entry) in list.get_ref().iter().enumerate() {
        let key = format!("sip.digest_algorithms[{position}]");
        match Algorithm::from_token(entry.get_ref()) {
            Some(algorithm) if !algorithms.contains(&algorithm) => algorithms.push(algorithm),
            Some(_) => checker.report(
                key,
                &Source::File(entry.span()),
                ConfigErrorKind::Duplicate {
                    item: "digest algorithm",
                    value: entry.get_ref().clone(),
                    first: "an earlier entry".to_owned(),
                },
            ),
            None => checker.report(
                key,
                &Source::File(entry.span()),
                ConfigErrorKind::UnknownDigestAlgorithm {
                    value: entry.get_ref().clone(),
                },
            ),
        }
    }
    algorithms
}

fn convert_media(checker: &mut Checker<'_>, raw: &RawConfig, overrides: &Overrides) -> MediaConfig {
    let address = from_file(&raw.media.address, MEDIA_ADDRESS.to_owned());
    let address = checker.ip_address("media.address", &address);
    let configured = raw
        .media
        .advertised_address
        .as_ref()
        .map(|advertised| checker.ip_address("media.advertised_address", &spanned(advertised)));
    let ports = with_flag(
        &raw.media.rtp_ports,
        FLAG_RTP_PORTS,
        overrides.rtp_ports.as_ref(),
        RTP_PORTS,
    );
    let timeout = from_file(&raw.media.rtp_timeout_secs, RTP_TIMEOUT_SECS);
    let relay_threads = from_file(&raw.media.relay_threads, 0);
    let default_spin = u32::try_from(media::DEFAULT_SPIN.as_micros()).unwrap_or(u32::MAX);
    let relay_spin_us = from_file(&raw.media.relay_spin_us, default_spin);
    let relay_realtime_priority = from_file(
        &raw.media.relay_realtime_priority,
        u32::from(media::DEFAULT_REALTIME_PRIORITY),
    );
    let default_coalesce = u32::try_from(media::DEFAULT_COALESCE.as_micros()).unwrap_or(u32::MAX);
    let relay_coalesce_us = from_file(&raw.media.relay_coalesce_us, default_coalesce);
    let relay_processes = from_file(&raw.media.relay_processes, 0);
    for (key, value, max) in [
        ("media.relay_threads", &relay_threads, MAX_RELAY_THREADS),
        (
            "media.relay_processes",
            &relay_processes,
            MAX_RELAY_PROCESSES,
        ),
        (
            "media.relay_coalesce_us",
            &relay_coalesce_us,
            MAX_RELAY_COALESCE_US,
        ),
        ("media.relay_spin_us", &relay_spin_us, MAX_RELAY_SPIN_US),
        (
            "media.relay_realtime_priority",
            &relay_realtime_priority,
            MAX_RELAY_REALTIME_PRIORITY,
        ),
    ] {
        if value.value > max {
            let kind = ConfigErrorKind::TooLarge {
                value: u64::from(value.value),
                max: u64::from(max),
            };
            checker.report(key, &value.source, kind);
        }
    }
    MediaConfig {
        relay_threads: relay_threads.value as usize,
        relay_spin: Duration::from_micros(u64::from(relay_spin_us.value)),
        // Checked against 99 above.
        relay_realtime_priority: u8::try_from(relay_realtime_priority.value).unwrap_or(0),
        relay_coalesce: Duration::from_micros(u64::from(relay_coalesce_us.value)),
        relay_processes: relay_processes.value as usize,
        address,
        advertised_address: advertised(configured, address),
        rtp_ports: checker.rtp_ports("media.rtp_ports", &ports),
        rtp_timeout: (timeout.value > 0).then(|| Duration::from_secs(u64::from(timeout.value))),
        prompts_dir: raw.media.prompts_dir.as_ref().map(|dir| {
            let path = PathBuf::from(dir.get_ref());
            let missing = sip_server::b2bua::prompt_names()
                .into_iter()
                .find(|name| !path.join(format!("{name}.wav")).is_file());
            if let Some(missing) = missing {
                let kind = ConfigErrorKind::MissingPrompt {
                    path: dir.get_ref().clone(),
                    missing: format!("{missing}.wav"),
                };
                checker.report("media.prompts_dir", &Source::File(dir.span()), kind);
            }
            path
        }),
    }
}

/// `music_on_hold`: "none", "default" (built in) or the path of a WAV file.
fn music_on_hold(checker: &mut Checker<'_>, key: &str, raw: &Value<String>) -> MusicOnHold {
    let Some(raw) = raw else {
        return MusicOnHold::None;
    };
    match raw.get_ref().as_str() {
        "none" => MusicOnHold::None,
        "default" => MusicOnHold::BuiltIn,
        path => {
            if !std::path::Path::new(path).is_file() {
                let kind = ConfigErrorKind::MissingFile {
                    path: path.to_owned(),
                };
                checker.report(key, &Source::File(raw.span()), kind);
            }
            MusicOnHold::File(PathBuf::from(path))
        }
    }
}

fn convert_registrar(checker: &mut Checker<'_>, raw: &RawConfig) -> RegistrarConfig {
    let section = &raw.registrar;
    let min = from_file(&section.min_expires_secs, MIN_EXPIRES_SECS);
    let max = from_file(&section.max_expires_secs, MAX_EXPIRES_SECS);
    let default = from_file(&section.default_expires_secs, DEFAULT_EXPIRES_SECS);
    let max_contacts = from_file(&section.max_contacts, MAX_CONTACTS);
    let qualify_interval = from_file(&section.qualify_interval_secs, QUALIFY_INTERVAL_SECS);
    let qualify_timeout = from_file(&section.qualify_timeout_secs, QUALIFY_TIMEOUT_SECS);
    checker.non_zero("registrar.qualify_timeout_secs", &qualify_timeout);
    checker.non_zero("registrar.min_expires_secs", &min);
    checker.non_zero("registrar.max_contacts", &max_contacts);
    if !(min.value <= default.value && default.value <= max.value) {
        // Point at the first of the three values that the file sets, since a
        // built-in default has no line to show.
        let written = [
            ("registrar.default_expires_secs", &default.source),
            ("registrar.min_expires_secs", &min.source),
            ("registrar.max_expires_secs", &max.source),
        ];
        let (key, source) = written
            .into_iter()
            .find(|(_, source)| matches!(source, Source::File(_)))
            .unwrap_or(("registrar.default_expires_secs", &Source::Default));
        let kind = ConfigErrorKind::ExpiresOrder {
            min: min.value,
            default: default.value,
            max: max.value,
        };
        checker.report(key, source, kind);
    }
    RegistrarConfig {
        min_expires: min.value,
        max_expires: max.value,
        default_expires: default.value,
        // u32 to usize is lossless on the 32- and 64-bit targets Rust std supports.
        max_contacts: usize::try_from(max_contacts.value).unwrap_or(usize::MAX),
        qualify_interval: (qualify_interval.value > 0)
            .then(|| Duration::from_secs(u64::from(qualify_interval.value))),
        qualify_timeout: Duration::from_secs(u64::from(qualify_timeout.value)),
    }
}

fn convert_agents(checker: &mut Checker<'_>, raw: &[RawAgent]) -> Vec<AgentConfig> {
    let mut seen = HashMap::new();
    let mut agents = Vec::with_capacity(raw.len());
    for (index, agent) in raw.iter().enumerate() {
        let key = format!("agents[{index}]");
        let id = spanned(&agent.id);
        checker.identifier(&format!("{key}.id"), &id);
        checker.unique(&format!("{key}.id"), "agent id", &id, &mut seen);
        let name = agent.name.as_ref().map(spanned);
        if let Some(name) = &name {
            checker.not_empty(&format!("{key}.name"), name);
        }
        let password = agent.password.as_ref().map(spanned);
        if let Some(password) = &password {
            checker.not_empty(&format!("{key}.password"), password);
        }
        let skills = routing::agent_skills(checker, &format!("{key}.skills"), &agent.skills);
        let wrap_up = agent.wrap_up_secs.as_ref().map(|secs| {
            let secs = spanned(secs);
            if secs.value > MAX_AGENT_WRAP_UP_SECS {
                let kind = ConfigErrorKind::TooLarge {
                    value: secs.value,
                    max: MAX_AGENT_WRAP_UP_SECS,
                };
                checker.report(format!("{key}.wrap_up_secs"), &secs.source, kind);
            }
            Duration::from_secs(secs.value)
        });
        agents.push(AgentConfig {
            name: name.map_or_else(|| id.value.clone(), |name| name.value),
            id: id.value,
            password: password.map(|password| password.value),
            skills,
            wrap_up,
        });
    }
    agents
}

fn convert_queues(
    checker: &mut Checker<'_>,
    raw: &[RawQueue],
    raw_agents: &[RawAgent],
) -> Vec<QueueConfig> {
    let mut seen = HashMap::new();
    let mut queues = Vec::with_capacity(raw.len());
    for (index, queue) in raw.iter().enumerate() {
        let key = format!("queues[{index}]");
        let name = spanned(&queue.name);
        checker.token(&format!("{key}.name"), &name);
        checker.unique(&format!("{key}.name"), "queue name", &name, &mut seen);
        let mut members = HashMap::new();
        for (position, agent) in queue.agents.iter().enumerate() {
            let member_key = format!("{key}.agents[{position}]");
            let agent = spanned(agent);
            if !raw_agents
                .iter()
                .any(|known| *known.id.get_ref() == agent.value)
            {
                let kind = ConfigErrorKind::UnknownAgent {
                    agent: agent.value.clone(),
                };
                checker.report(&member_key, &agent.source, kind);
            }
            checker.unique(&member_key, "queue member", &agent, &mut members);
        }
        let ring_timeout = from_file(&queue.ring_timeout_secs, RING_TIMEOUT_SECS);
        let max_wait = from_file(&queue.max_wait_secs, MAX_WAIT_SECS);
        checker.non_zero(&format!("{key}.ring_timeout_secs"), &ring_timeout);
        checker.non_zero(&format!("{key}.max_wait_secs"), &max_wait);
        let retry_delay = from_file(&queue.retry_delay_secs, RETRY_DELAY_SECS);
        let wrap_up = from_file(&queue.wrap_up_secs, WRAP_UP_SECS);
        let timings = acd::QueueConfig {
            name: name.value.clone(),
            ring_timeout: Duration::from_secs(ring_timeout.value),
            max_wait: Duration::from_secs(max_wait.value),
            retry_delay: Duration::from_secs(retry_delay.value),
            wrap_up: Duration::from_secs(wrap_up.value),
            ..acd::QueueConfig::default()
        };
        let engine = routing::engine_queue(checker, &key, queue, raw, timings);
        let announce_every = from_file(&queue.announce_every_secs, 0);
        queues.push(QueueConfig {
            music_on_hold: music_on_hold(
                checker,
                &format!("{key}.music_on_hold"),
                &queue.music_on_hold,
            ),
            announce_every: (announce_every.value > 0)
                .then(|| Duration::from_secs(announce_every.value)),
            announce_position: from_file(&queue.announce_position, true).value,
            announce_wait: from_file(&queue.announce_wait, true).value,
            survey: super::survey::convert_survey(checker, &key, queue),
            name: name.value,
            agents: queue.agents.iter().map(|a| a.get_ref().clone()).collect(),
            ring_timeout: engine.ring_timeout,
            max_wait: engine.max_wait,
            retry_delay: engine.retry_delay,
            wrap_up: engine.wrap_up,
            acd: engine,
        });
    }
    queues
}

fn convert_dids(
    checker: &mut Checker<'_>,
    raw: &[RawDid],
    raw_queues: &[RawQueue],
    raw_agents: &[RawAgent],
) -> Vec<DidConfig> {
    let mut seen = HashMap::new();
    let mut dids = Vec::with_capacity(raw.len());
    for (index, did) in raw.iter().enumerate() {
        let key = format!("dids[{index}]");
        let number = spanned(&did.number);
        checker.token(&format!("{key}.number"), &number);
        checker.unique(&format!("{key}.number"), "DID number", &number, &mut seen);
        if raw_agents
            .iter()
            .any(|agent| *agent.id.get_ref() == number.value)
        {
            let kind = ConfigErrorKind::DidIsAgent {
                number: number.value.clone(),
            };
            checker.report(format!("{key}.number"), &number.source, kind);
        }
        let queue = spanned(&did.queue);
        if !raw_queues
            .iter()
            .any(|known| *known.name.get_ref() == queue.value)
        {
            let kind = ConfigErrorKind::UnknownQueue {
                queue: queue.value.clone(),
            };
            checker.report(format!("{key}.queue"), &queue.source, kind);
        }
        let request_type = did.request_type.as_ref().map(spanned);
        if let Some(request_type) = &request_type {
            checker.not_empty(&format!("{key}.request_type"), request_type);
        }
        dids.push(DidConfig {
            number: number.value,
            queue: queue.value,
            priority: did.priority.as_ref().map_or(0, |p| *p.get_ref()),
            skills: routing::requirements(checker, &format!("{key}.skills"), &did.skills),
            request_type: request_type.map(|r| r.value),
        });
    }
    dids
}

fn convert_overload(checker: &mut Checker<'_>, raw: &RawConfig) -> OverloadConfig {
    let max_transactions = from_file(&raw.overload.max_transactions, 200_000);
    let cpu_percent = from_file(&raw.overload.cpu_percent, 90);
    let retry_after = from_file(&raw.overload.retry_after_secs, 10);
    checker.non_zero("overload.max_transactions", &max_transactions);
    checker.non_zero("overload.retry_after_secs", &retry_after);
    let limits = [
        ("overload.max_transactions", &max_transactions, 10_000_000),
        ("overload.retry_after_secs", &retry_after, 3_600),
    ];
    for (key, value, max) in limits {
        if value.value > max {
            checker.report(
                key,
                &value.source,
                ConfigErrorKind::TooLarge {
                    value: value.value,
                    max,
                },
            );
        }
    }
    if cpu_percent.value > 100 {
        checker.report(
            "overload.cpu_percent",
            &cpu_percent.source,
            ConfigErrorKind::TooLarge {
                value: u64::from(cpu_percent.value),
                max: 100,
            },
        );
    }
    OverloadConfig {
        max_transactions: usize::try_from(max_transactions.value).unwrap_or(usize::MAX),
        cpu_percent: cpu_percent.value,
        retry_after: Duration::from_secs(retry_after.value),
    }
}

/// Default `recording.jitter_window_ms`. With 200 ms, 1,000 recorded calls
/// on a loaded 2-core host lost 0.03 to 14 % of their audio, because the
/// senders' packets came in bursts after waiting for a core. With 1 s the
/// same runs lost none, and the PBX used about 85 KiB more memory per
/// recorded call (docs/benchmarks.md).
const RECORDING_JITTER_WINDOW_DEFAULT_MS: u32 = 1000;
/// Lowest and highest `recording.jitter_window_ms`: from one 20 ms packet
/// to half of the 10 s that the recorder buffers ahead of the written audio.
const RECORDING_JITTER_WINDOW_MS: (u32, u32) = (20, 5000);

fn convert_recording(checker: &mut Checker<'_>, raw: &RawConfig) -> RecordingConfig {
    let retention_days = from_file(&raw.recording.retention_days, 0);
    if retention_days.value > MAX_RETENTION_DAYS {
        checker.report(
            "recording.retention_days",
            &retention_days.source,
            ConfigErrorKind::TooLarge {
                value: u64::from(retention_days.value),
                max: u64::from(MAX_RETENTION_DAYS),
            },
        );
    }
    let pause_code = from_file(&raw.recording.pause_code, DEFAULT_PAUSE_CODE.to_owned());
    let valid_code = pause_code.value.chars().count() <= media::MAX_FEATURE_CODE_KEYS
        && pause_code
            .value
            .chars()
            .all(|key| matches!(key, '0'..='9' | '*' | '#' | 'A'..='D'));
    if !valid_code {
        checker.report(
            "recording.pause_code",
            &pause_code.source,
            ConfigErrorKind::InvalidDtmfCode {
                value: pause_code.value.clone(),
            },
        );
    }
    let jitter_window_ms = from_file(
        &raw.recording.jitter_window_ms,
        RECORDING_JITTER_WINDOW_DEFAULT_MS,
    );
    let (min_window, max_window) = RECORDING_JITTER_WINDOW_MS;
    if !(min_window..=max_window).contains(&jitter_window_ms.value) {
        checker.report(
            "recording.jitter_window_ms",
            &jitter_window_ms.source,
            ConfigErrorKind::OutOfRange {
                value: i64::from(jitter_window_ms.value),
                min: i64::from(min_window),
                max: i64::from(max_window),
            },
        );
    }
    let jitter_window_ms = jitter_window_ms.value.clamp(min_window, max_window);
    RecordingConfig {
        jitter_window: Duration::from_millis(u64::from(jitter_window_ms)),
        enabled: raw.recording.enabled.as_ref().is_none_or(|e| *e.get_ref()),
        retention_days: retention_days.value,
        pause_code: Some(pause_code.value).filter(|code| !code.is_empty()),
        mixed_mono: raw
            .recording
            .mixed_mono
            .as_ref()
            .is_some_and(|m| *m.get_ref()),
    }
}
