//! Call detail records: one [`CallRecord`] per finished call.
//!
//! [`CdrStore`] keeps each record twice. First it appends one JSON line to
//! `<data_dir>/cdr.jsonl` and fsyncs it, then it inserts a row into the
//! database: by default the SQLite file `<data_dir>/pbx.sqlite`, or the
//! PostgreSQL server of `database.url` (see [`database`]). The journal is
//! the durable copy
//! for billing and audits, so a record is never lost even when the insert
//! fails. The database serves queries such as the newest calls for the HTTP
//! API.
//!
//! The crate does not build records: the call logic in the `pbx` binary fills
//! a [`CallRecord`] when a call ends and passes it to [`CdrStore::write`].
//! Field meanings, units and null cases are listed in `docs/cdr.md`.

pub mod database;
mod store;
#[cfg(feature = "test-support")]
pub mod test_database;

use std::path::PathBuf;

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

pub use store::{CdrStore, MAX_LIST_LIMIT};

/// The outcome of one inbound call, written once when the call ends.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct CallRecord {
    /// Product call id, a UUID v4.
    pub id: String,
    /// SIP Call-ID of the caller leg.
    pub caller_call_id: String,
    /// SIP Call-ID of the agent leg that answered.
    pub agent_call_id: Option<String>,
    /// Caller number, the user part of the From URI.
    pub caller: String,
    /// Dialed number (DID), the user part of the Request-URI.
    pub dialed: String,
    /// Trunk name, `None` when the call came from an extension.
    pub trunk: Option<String>,
    /// Calling extension when the call did not come from a trunk.
    pub source_extension: Option<String>,
    /// Kind of call by its parties: a citizen's call to the centre, a
    /// callback the PBX placed, or a call between agents' extensions.
    #[serde(default)]
    pub direction: CallDirection,
    /// Queue the DID routed to.
    pub queue: Option<String>,
    /// Request type of the DID the caller dialed (`[[dids]] request_type`),
    /// `None` when the DID has none. A returned callback keeps the one of the
    /// call that requested it, and a call transferred to a queue's DID takes
    /// that DID's.
    #[serde(default)]
    pub request_type: Option<String>,
    /// Agent who answered.
    pub agent: Option<String>,
    /// When the INVITE arrived.
    #[serde(with = "time::serde::rfc3339")]
    pub arrived_at: OffsetDateTime,
    /// When the call entered the queue.
    #[serde(with = "time::serde::rfc3339::option")]
    pub queued_at: Option<OffsetDateTime>,
    /// When an agent answered.
    #[serde(with = "time::serde::rfc3339::option")]
    pub answered_at: Option<OffsetDateTime>,
    /// When the call ended.
    #[serde(with = "time::serde::rfc3339")]
    pub ended_at: OffsetDateTime,
    /// Seconds from `queued_at` (or `arrived_at`) to `answered_at`, or to
    /// `ended_at` when unanswered.
    pub wait_seconds: f64,
    /// Seconds from `answered_at` to `ended_at`, 0 when unanswered.
    pub talk_seconds: f64,
    /// Outcome of the call.
    pub disposition: Disposition,
    /// Final status sent to the caller when the call was not answered.
    pub sip_status: Option<u16>,
    /// Side that hung up.
    pub hangup_side: Option<HangupSide>,
    /// Recording file, relative to the data dir.
    pub recording_path: Option<String>,
    /// Length of the recording in seconds.
    pub recording_seconds: Option<f64>,
    /// The PBX stopped without ending the call (a crash or kill -9); the
    /// record was rebuilt at the next start from what was stored while the
    /// call ran, so its end time and durations are the last known ones.
    #[serde(default)]
    pub interrupted: bool,
    /// When the PBX answered the caller: the agent's answer, or earlier
    /// when the caller was answered to wait with music or to leave a
    /// message. The trunk bills from here.
    #[serde(default, with = "time::serde::rfc3339::option")]
    pub caller_answered_at: Option<OffsetDateTime>,
    /// Voicemail box the caller left a message in; the message is the
    /// recording.
    #[serde(default)]
    pub voicemail_box: Option<String>,
    /// Number or extension the queue forwarded the call to.
    #[serde(default)]
    pub forwarded_to: Option<String>,
    /// Number the citizen first dialed, when its carrier redirected the
    /// call to the centre (the SIP Diversion header).
    #[serde(default)]
    pub diverted_from: Option<String>,
    /// For a call the PBX placed to return a callback request: the id of
    /// the call on which the citizen asked for it.
    #[serde(default)]
    pub callback_of: Option<String>,
    /// Pauses and resumes of the recording, oldest first.
    #[serde(default)]
    pub recording_events: Vec<RecordingEvent>,
    /// What the relay received from each leg's phone, when it relayed any
    /// audio.
    #[serde(default)]
    pub media_quality: Option<MediaQuality>,
    /// Rebuilt by `pbx cdr-check --repair` from the queue events because
    /// the PBX's own record was missing: only the queue's part (queue,
    /// agent, times, outcome) is known, the SIP and media fields are empty.
    #[serde(default)]
    pub rebuilt: bool,
    /// Transfers of the answered call by its agents, oldest first.
    #[serde(default)]
    pub transfers: Vec<Transfer>,
    /// Times either side put the other on hold during the answered call.
    #[serde(default)]
    pub hold_count: u32,
    /// Seconds on hold in total, which are part of `talk_seconds`.
    #[serde(default)]
    pub hold_seconds: f64,
    /// Outcome of the post-call survey, `None` when the caller was not
    /// offered one.
    #[serde(default)]
    pub survey: Option<SurveyStatus>,
    /// Score the caller keyed in the survey, 1 (worst) to 5 (best).
    #[serde(default)]
    pub csat_score: Option<u8>,
}

/// One transfer of an answered call: an agent sent it to another agent's
/// extension, to a queue, or to the colleague of its consultation call. The transferring agent's talk time ends at
/// `at`, and the next party's starts at `answered_at`.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct Transfer {
    /// When the PBX accepted the agent's REFER.
    #[serde(with = "time::serde::rfc3339")]
    pub at: OffsetDateTime,
    /// Seconds from the call's `answered_at` to `at`, rounded to
    /// milliseconds; the same offset into the call's one recording.
    pub offset_seconds: f64,
    /// Agent who transferred the call.
    pub from_agent: String,
    /// Talk time of `from_agent`'s part of the call, from its answer to
    /// `at`.
    pub from_talk_seconds: f64,
    /// Agent id or queue DID that Refer-To named, or for an attended
    /// transfer the agent who answered the consultation call.
    pub target: String,
    pub target_kind: TransferTarget,
    pub outcome: TransferOutcome,
    /// Final status of the target's phone when it did not answer.
    #[serde(default)]
    pub sip_status: Option<u16>,
    /// Agent who took the call after the transfer.
    #[serde(default)]
    pub answered_by: Option<String>,
    /// When `answered_by` answered.
    #[serde(default, with = "time::serde::rfc3339::option")]
    pub answered_at: Option<OffsetDateTime>,
}

/// Kind of target that a transfer's Refer-To named.
#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum TransferTarget {
    /// Another agent's extension, rung directly.
    Extension,
    /// A queue's DID: the caller waits in that queue again.
    Queue,
    /// The party that answered the agent's consultation call (an attended
    /// transfer, Refer-To with Replaces).
    Consultation,
}

/// Outcome of a transfer.
#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum TransferOutcome {
    /// The target answered and talks with the caller.
    Connected,
    /// The caller went into a queue: the target was a queue, or the target
    /// did not answer after the transferring agent had left.
    Queued,
    /// The target did not answer and the caller is back with the
    /// transferring agent.
    Reconnected,
    /// The call ended while the target rang.
    Abandoned,
}

/// Kind of a call by who placed it and who took it.
#[derive(Clone, Copy, Debug, Default, Serialize, Deserialize, PartialEq, Eq, Hash)]
#[serde(rename_all = "snake_case")]
pub enum CallDirection {
    /// A call to the centre: from a trunk, or from an agent's phone to a
    /// DID. Records written before this field was kept read as inbound.
    #[default]
    Inbound,
    /// A call the PBX placed to a citizen to return a callback request.
    Outbound,
    /// An agent dialed another agent's extension: no queue, and the called
    /// agent is `agent`.
    Internal,
}

impl CallDirection {
    /// Returns the snake_case name used in JSON and in the database.
    pub fn as_str(self) -> &'static str {
        match self {
            CallDirection::Inbound => "inbound",
            CallDirection::Outbound => "outbound",
            CallDirection::Internal => "internal",
        }
    }

    /// Parses a name that [`CallDirection::as_str`] returns.
    pub fn from_name(name: &str) -> Option<CallDirection> {
        match name {
            "inbound" => Some(CallDirection::Inbound),
            "outbound" => Some(CallDirection::Outbound),
            "internal" => Some(CallDirection::Internal),
            _ => None,
        }
    }
}

/// Outcome of a post-call survey.
#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq, Eq, Hash)]
#[serde(rename_all = "snake_case")]
pub enum SurveyStatus {
    /// The caller keyed a score.
    Answered,
    /// No key came in time on the last try.
    TimedOut,
    /// Every try got a key other than 1 to 5.
    Invalid,
    /// The caller hung up before keying a score.
    HungUp,
    /// The PBX ended the call before an answer: it stopped, or the
    /// caller's session expired.
    Interrupted,
}

impl SurveyStatus {
    /// Returns the snake_case name used in JSON and in the database.
    pub fn as_str(self) -> &'static str {
        match self {
            SurveyStatus::Answered => "answered",
            SurveyStatus::TimedOut => "timed_out",
            SurveyStatus::Invalid => "invalid",
            SurveyStatus::HungUp => "hung_up",
            SurveyStatus::Interrupted => "interrupted",
        }
    }

    /// Parses a name that [`SurveyStatus::as_str`] returns.
    pub fn from_name(name: &str) -> Option<SurveyStatus> {
        match name {
            "answered" => Some(SurveyStatus::Answered),
            "timed_out" => Some(SurveyStatus::TimedOut),
            "invalid" => Some(SurveyStatus::Invalid),
            "hung_up" => Some(SurveyStatus::HungUp),
            "interrupted" => Some(SurveyStatus::Interrupted),
            _ => None,
        }
    }
}

/// Reception figures of both legs of a call, measured by the relay.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct MediaQuality {
    /// From the citizen's phone or trunk.
    pub caller: LegQuality,
    /// From the agent's phone (or the number a call was forwarded to).
    pub agent: LegQuality,
}

/// RTP reception of one leg over the whole call (RFC 3550 appendix A).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct LegQuality {
    /// Audio RTP packets received.
    pub packets_received: u64,
    /// Audio RTP packets the sequence numbers called for.
    pub packets_expected: u64,
    /// Expected minus received; negative when duplicates outnumber losses.
    pub packets_lost: i64,
    /// Lost packets in percent of expected ones, 0 to 100.
    pub loss_percent: f64,
    /// Interarrival jitter at the end of the call, in milliseconds.
    pub jitter_ms: f64,
    /// Mean opinion score estimated from loss and jitter, 1.0 to 4.5.
    pub mos: f64,
    /// Milliseconds of this leg's audio that reached the relay too late for
    /// the recording's jitter window, so the file is silent there. Absent
    /// when the call was not recorded, and in records written before the
    /// field existed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recording_late_ms: Option<u64>,
}

/// A pause or resume of a call's recording. While paused, both channels of
/// the file are silent; the file keeps the length of the talk time.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct RecordingEvent {
    pub action: RecordingAction,
    /// Seconds from `answered_at` to the event, rounded to milliseconds;
    /// the same offset into the recording, whose sample 0 is the answer.
    pub offset_seconds: f64,
    /// When it happened.
    #[serde(with = "time::serde::rfc3339")]
    pub at: OffsetDateTime,
    pub source: RecordingEventSource,
    /// API user name for [`RecordingEventSource::Api`], agent id for
    /// [`RecordingEventSource::Dtmf`].
    pub actor: String,
}

/// What happened to the recording.
#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq, Eq, Hash)]
#[serde(rename_all = "snake_case")]
pub enum RecordingAction {
    Pause,
    Resume,
}

/// How a pause or resume was requested.
#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq, Eq, Hash)]
#[serde(rename_all = "snake_case")]
pub enum RecordingEventSource {
    /// Through the HTTP API.
    Api,
    /// By the agent keying the recording code on the phone.
    Dtmf,
}

impl RecordingAction {
    /// Returns the snake_case name used in JSON and in the database.
    pub fn as_str(self) -> &'static str {
        match self {
            RecordingAction::Pause => "pause",
            RecordingAction::Resume => "resume",
        }
    }

    pub(crate) fn from_name(name: &str) -> Option<RecordingAction> {
        match name {
            "pause" => Some(RecordingAction::Pause),
            "resume" => Some(RecordingAction::Resume),
            _ => None,
        }
    }
}

impl RecordingEventSource {
    /// Returns the snake_case name used in JSON and in the database.
    pub fn as_str(self) -> &'static str {
        match self {
            RecordingEventSource::Api => "api",
            RecordingEventSource::Dtmf => "dtmf",
        }
    }

    pub(crate) fn from_name(name: &str) -> Option<RecordingEventSource> {
        match name {
            "api" => Some(RecordingEventSource::Api),
            "dtmf" => Some(RecordingEventSource::Dtmf),
            _ => None,
        }
    }
}

/// Conditions on the records [`CdrStore::search`] returns; each field
/// left `None` matches every record.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct CallFilter {
    /// Only calls with this outcome.
    pub disposition: Option<Disposition>,
    /// Only calls that arrived at or after this time.
    pub from: Option<OffsetDateTime>,
    /// Only calls that arrived before this time.
    pub to: Option<OffsetDateTime>,
    /// Only calls the DID routed to this queue.
    pub queue: Option<String>,
    /// Only calls this agent answered.
    pub agent: Option<String>,
    /// Only calls whose caller number contains this text.
    pub caller: Option<String>,
    /// Only calls with exactly this request type.
    pub request_type: Option<String>,
    /// Only calls that talked at least this many seconds.
    pub min_talk_seconds: Option<f64>,
    /// Only calls that talked at most this many seconds.
    pub max_talk_seconds: Option<f64>,
    /// Only calls whose survey score is at least this (1 to 5).
    pub min_csat: Option<u8>,
    /// Only calls whose survey score is at most this (1 to 5).
    pub max_csat: Option<u8>,
}

/// Outcome of a call.
#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq, Eq, Hash)]
#[serde(rename_all = "snake_case")]
pub enum Disposition {
    /// An agent answered.
    Answered,
    /// The caller hung up before an agent answered.
    Abandoned,
    /// No agent answered before the queue's maximum wait, or none was eligible.
    NoAgent,
    /// The call failed for another reason (routing, media, internal error).
    Failed,
    /// No agent answered and the queue sent the caller to a voicemail box.
    Voicemail,
    /// The caller asked to be called back and hung up; the request kept
    /// its place in the queue. The call that returns it has its own record.
    Callback,
}

/// The side whose hangup ended the call.
#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq, Eq, Hash)]
#[serde(rename_all = "snake_case")]
pub enum HangupSide {
    Caller,
    Agent,
    /// The PBX ended the call (maximum wait, error, shutdown).
    System,
    /// The PBX ended the call because a leg's session timer (RFC 4028)
    /// expired without a refresh, or a refresh found the dialog gone.
    SessionExpired,
}

impl Disposition {
    /// Returns the snake_case name used in JSON and in the database.
    pub fn as_str(self) -> &'static str {
        match self {
            Disposition::Answered => "answered",
            Disposition::Abandoned => "abandoned",
            Disposition::NoAgent => "no_agent",
            Disposition::Failed => "failed",
            Disposition::Voicemail => "voicemail",
            Disposition::Callback => "callback",
        }
    }

    /// Returns the disposition with the snake_case `name`.
    pub fn from_name(name: &str) -> Option<Disposition> {
        match name {
            "answered" => Some(Disposition::Answered),
            "abandoned" => Some(Disposition::Abandoned),
            "no_agent" => Some(Disposition::NoAgent),
            "failed" => Some(Disposition::Failed),
            "voicemail" => Some(Disposition::Voicemail),
            "callback" => Some(Disposition::Callback),
            _ => None,
        }
    }
}

impl HangupSide {
    /// Returns the snake_case name used in JSON and in the database.
    pub fn as_str(self) -> &'static str {
        match self {
            HangupSide::Caller => "caller",
            HangupSide::Agent => "agent",
            HangupSide::System => "system",
            HangupSide::SessionExpired => "session_expired",
        }
    }

    fn from_name(name: &str) -> Option<HangupSide> {
        match name {
            "caller" => Some(HangupSide::Caller),
            "agent" => Some(HangupSide::Agent),
            "system" => Some(HangupSide::System),
            "session_expired" => Some(HangupSide::SessionExpired),
            _ => None,
        }
    }
}

/// Errors of the CDR store; each names the file or the record involved.
#[derive(Debug, thiserror::Error)]
pub enum CdrError {
    #[error("failed to create data directory {path}: {source}")]
    CreateDataDir {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("failed to open CDR journal {path}: {source}")]
    OpenJournal {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("failed to append call {id} to CDR journal {path}: {source}")]
    AppendJournal {
        id: String,
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("failed to open CDR database {database}: {source}")]
    OpenDatabase {
        /// The database URL, password hidden.
        database: String,
        source: sqlx::Error,
    },
    #[error("failed to migrate CDR database {database}: {source}")]
    Migrate {
        /// The database URL, password hidden.
        database: String,
        source: sqlx::migrate::MigrateError,
    },
    #[error("failed to encode call {id} as JSON: {source}")]
    Encode {
        id: String,
        source: serde_json::Error,
    },
    #[error("invalid timestamp in call {id}, field {field}: {source}")]
    FormatTimestamp {
        id: String,
        field: &'static str,
        source: time::error::Format,
    },
    #[error("failed to insert call {id} into the CDR database (it is in the journal): {source}")]
    Insert { id: String, source: sqlx::Error },
    #[error(
        "failed to insert the recording events of call {id} (the call is in the journal): {source}"
    )]
    InsertEvents { id: String, source: sqlx::Error },
    #[error("CDR database query failed: {0}")]
    Query(#[source] sqlx::Error),
    #[error("invalid value {value:?} in CDR database, call {id}, column {column}")]
    InvalidRow {
        id: String,
        column: &'static str,
        value: String,
    },
    #[error("CDR writer stopped before call {id} was written")]
    WriterStopped { id: String },
}
