//! Configuration errors, each located by origin, key path and line.

use std::fmt;

pub(crate) use sip_server::network::NetworkProblem;

/// One problem in the configuration.
#[derive(Debug)]
pub(crate) struct ConfigError {
    /// File name, or the command-line flag that supplied the value.
    pub(crate) origin: String,
    /// Key path such as `queues[0].agents[1]`; empty for a syntax error
    /// that belongs to no key.
    pub(crate) key: String,
    /// 1-based line and column in `origin`; `None` for values that came from
    /// a flag or a built-in default.
    pub(crate) location: Option<Location>,
    pub(crate) kind: ConfigErrorKind,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Location {
    pub(crate) line: usize,
    pub(crate) column: usize,
}

impl Location {
    /// Converts a byte offset into `text` to a 1-based line and a 1-based
    /// column counted in characters.
    pub(crate) fn from_offset(text: &str, offset: usize) -> Location {
        let before = text.get(..offset.min(text.len())).unwrap_or(text);
        let line_start = before.rfind('\n').map_or(0, |newline| newline + 1);
        Location {
            line: before.matches('\n').count() + 1,
            column: before[line_start..].chars().count() + 1,
        }
    }
}

/// Problem with a value; each message states what is expected instead.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ConfigErrorKind {
    #[error("failed to read the file: {0}")]
    Read(#[source] std::io::Error),
    /// TOML syntax, a wrong type, a missing key or an unknown key, as the
    /// `toml` crate reports it.
    #[error("{0}")]
    Toml(String),
    #[error("must not be empty")]
    Empty,
    #[error("{value:?} contains {character:?}; use letters, digits, '-', '_' or '.'")]
    InvalidIdentifier { value: String, character: char },
    #[error("{value:?} contains whitespace or a control character")]
    InvalidCharacter { value: String },
    #[error("invalid socket address {value:?}; expected IP:PORT such as 0.0.0.0:5060 or [::]:5060")]
    InvalidSocketAddress { value: String },
    #[error("invalid outbound target {value:?}: {problem}")]
    InvalidOutbound {
        value: String,
        problem: sip_server::locate::TargetError,
    },
    #[error("invalid IP address {value:?}; expected an address such as 127.0.0.1 or ::1")]
    InvalidIpAddress { value: String },
    #[error("invalid RTP port range {value:?}: {problem}")]
    InvalidRtpPorts {
        value: String,
        problem: RtpPortsProblem,
    },
    #[error("invalid network {value:?}: {problem}")]
    InvalidNetwork {
        value: String,
        problem: NetworkProblem,
    },
    #[error("{problem}")]
    InvalidDatabaseUrl {
        problem: cdr::database::DatabaseUrlError,
    },
    #[error("must be greater than 0")]
    Zero,
    #[error("must be at most {max}, got {value}")]
    TooLarge { value: u64, max: u64 },
    #[error("must be from {min} to {max}, got {value}")]
    OutOfRange { value: i64, min: i64, max: i64 },
    #[error("port {port} is also used by {other}; give each service its own port")]
    PortConflict { port: u16, other: &'static str },
    #[error("unknown digest algorithm {value:?}; use \"SHA-256\" or \"MD5\"")]
    UnknownDigestAlgorithm { value: String },
    #[error(
        "expires values must satisfy min <= default <= max, got min {min}, default {default}, max {max}"
    )]
    ExpiresOrder { min: u32, default: u32, max: u32 },
    #[error(
        "session intervals must satisfy 90 <= min_session_expires_secs <= session_expires_secs, got min {min}, interval {interval}"
    )]
    SessionExpiresOrder { min: u32, interval: u32 },
    #[error("duplicate {item} {value:?}; it is first defined at {first}")]
    Duplicate {
        item: &'static str,
        value: String,
        first: String,
    },
    #[error("unknown agent {agent:?}; add an [[agents]] entry with this id")]
    UnknownAgent { agent: String },
    #[error("unknown queue {queue:?}; add a [[queues]] entry with this name")]
    UnknownQueue { queue: String },
    #[error("DID {number:?} is also an agent id; calls to it would be ambiguous")]
    DidIsAgent { number: String },
    #[error(
        "trunk {trunk:?} allows no networks and has neither [trunks.register] nor \
         [trunks.inbound], so it can never match a call"
    )]
    NoNetworks { trunk: String },
    #[error("unknown transport {value:?} for a registration; use \"udp\", \"tcp\" or \"tls\"")]
    UnknownRegisterTransport { value: String },
    #[error(
        "transport {value:?} contradicts registrar {registrar:?}; remove the key or \
         write the transport in the registrar URI"
    )]
    RegisterTransportConflict { value: String, registrar: String },
    #[error("max_retry_secs {max_retry} is below retry_secs {retry}; raise it or lower retry_secs")]
    RetryOrder { retry: u64, max_retry: u64 },
    #[error("{username:?} is also an agent id; give the trunk a username that no agent has")]
    TrunkUserIsAgent { username: String },
    #[error("no password: set password or password_file, or the environment variable {variable}")]
    MissingTrunkPassword { variable: String },
    #[error("failed to read the password file {path:?}: {error}")]
    PasswordFile { path: String, error: String },
    #[error("password file {path:?} is empty; write the password on its first line")]
    EmptyPasswordFile { path: String },
    #[error("{value:?} is not a dialling prefix; write up to 6 digits such as \"33\" or \"0\"")]
    InvalidPrefix { value: String },
    #[error(
        "unknown strategy {value:?}; use longest-idle, fewest-calls, least-talk-time, \
         round-robin, ring-all, linear, random, weighted-random or best-proficiency"
    )]
    UnknownStrategy { value: String },
    #[error("unknown time zone {value:?}; use an IANA name such as \"Europe/Madrid\" or \"UTC\"")]
    UnknownTimeZone { value: String },
    #[error(
        "skill {skill:?} is not in the [[skills]] catalogue; add it there, or correct the name"
    )]
    UndefinedSkill { skill: String },
    #[error(
        "no skill of category {category:?} is in the [[skills]] catalogue; add one such as \
         \"{category}=NAME\", or correct the category"
    )]
    UndefinedSkillCategory { category: String },
    #[error(
        "invalid skill name {value:?}; write the name without a level, such as \"language=ru\""
    )]
    InvalidSkillName { value: String },
    #[error("unknown caller order {value:?}; use \"longest-waiting\" or \"queue-weight\"")]
    UnknownCallerOrder { value: String },
    /// A skill that the acd crate's parser rejects; its message names the text.
    #[error("{0}; write SKILL:LEVEL such as \"language=ru:5\"")]
    InvalidSkill(#[source] acd::ParseError),
    /// A step level that the acd crate's parser rejects.
    #[error("{0}; write CATEGORY>=LEVEL such as \"service>=3\", or CATEGORY alone")]
    InvalidStepLevel(#[source] acd::ParseError),
    #[error(
        "{value:?} is not a skill category; a step keeps categories such as \"language\" \
         or \"service>=3\", not skills such as \"service=passport:3\""
    )]
    InvalidStepCategory { value: String },
    #[error("a step needs exactly one of keep, any_agent or overflow, found {found}")]
    StepRuleCount { found: usize },
    #[error("must be true; leave the key out instead of setting it to false")]
    NotTrue,
    #[error(
        "invalid DTMF code {value:?}; use 1 to {max} keys from 0-9, *, #, A-D, such as \"*1\", \
         or \"\" for none",
        max = media::MAX_FEATURE_CODE_KEYS
    )]
    InvalidDtmfCode { value: String },
    #[error(
        "steps must be in increasing time order; {after} s does not come after \
         the previous step's {previous} s"
    )]
    StepOrder { after: u64, previous: u64 },
    #[error(
        "this overflow step at {after} s never applies, because calls leave the queue \
         at max_wait_secs {max_wait} first"
    )]
    StepAfterMaxWait { after: u64, max_wait: u64 },
    #[error(
        "invalid destination {value:?}; use \"queue:NAME\", \"voicemail:BOX\" (BOX of \
         letters, digits, '-' and '_'), \"number:NUMBER\" or \"callback\""
    )]
    InvalidDestination { value: String },
    #[error("queue {queue:?} cannot send calls to itself; name another queue")]
    DestinationIsSelf { queue: String },
    #[error("invalid exit key {key:?}; use one DTMF key: 0-9, * or #")]
    InvalidExitKey { key: String },
    #[error(
        "unknown condition {value:?}; use strict, loose, not-ready, unreachable, \
         ringing, on-call, wrap-up or unskilled"
    )]
    UnknownEmptyCondition { value: String },
    #[error("file {path:?} does not exist or is not a file; give the path of a WAV file")]
    MissingFile { path: String },
    #[error("must be set because {needed_by} is set; give the path of a PEM file")]
    MissingTlsFile { needed_by: &'static str },
    /// A certificate or key file that cannot be read or used; the message
    /// names the file.
    #[error("{0}")]
    Tls(#[source] crate::tls::TlsFileError),
    #[error("folder {path:?} lacks the prompt {missing:?}; record it or leave prompts_dir out")]
    MissingPrompt { path: String, missing: String },
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub(crate) enum RtpPortsProblem {
    #[error("expected two ports as \"A-B\", such as \"20000-20999\"")]
    Syntax,
    #[error("the first port {0} is odd; RTP uses even ports and RTCP the next odd one")]
    OddStart(u16),
    #[error("the first port must not be 0")]
    ZeroStart,
    #[error("the first port {start} is not below the last port {end}")]
    NotAscending { start: u16, end: u16 },
    #[error("{count} ports are too few; at least 4 are needed (two legs, RTP and RTCP each)")]
    TooFew { count: u32 },
}

/// Every problem found in one configuration, in file order where possible.
#[derive(Debug)]
pub(crate) struct ConfigErrors(pub(crate) Vec<ConfigError>);

impl ConfigErrors {
    pub(crate) fn single(error: ConfigError) -> ConfigErrors {
        ConfigErrors(vec![error])
    }

    /// Builds the error for a configuration file that could not be read.
    pub(crate) fn read(path: &std::path::Path, source: std::io::Error) -> ConfigErrors {
        ConfigErrors::single(ConfigError {
            origin: path.display().to_string(),
            key: String::new(),
            location: None,
            kind: ConfigErrorKind::Read(source),
        })
    }

    /// Builds an error with a message of its own, for configuration text
    /// that the PBX assembled itself.
    pub(crate) fn message(origin: &str, key: &str, message: &str) -> ConfigErrors {
        ConfigErrors::single(ConfigError {
            origin: origin.to_owned(),
            key: key.to_owned(),
            location: None,
            kind: ConfigErrorKind::Toml(message.trim_end().to_owned()),
        })
    }

    /// Drops the line numbers, which point into text no one can open when
    /// the PBX assembled it.
    pub(crate) fn without_locations(mut self) -> ConfigErrors {
        for error in &mut self.0 {
            error.location = None;
        }
        self
    }
}

/// Formats as `ORIGIN:LINE:COL: key: message`, leaving out the parts that
/// are not known.
impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.origin)?;
        if let Some(Location { line, column }) = self.location {
            write!(f, ":{line}:{column}")?;
        }
        if !self.key.is_empty() {
            write!(f, ": {}", self.key)?;
        }
        write!(f, ": {}", self.kind)
    }
}

impl std::error::Error for ConfigError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match &self.kind {
            ConfigErrorKind::Read(source) => Some(source),
            _ => None,
        }
    }
}

/// One error per line.
impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (index, error) in self.0.iter().enumerate() {
            if index > 0 {
                writeln!(f)?;
            }
            write!(f, "{error}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigErrors {}
