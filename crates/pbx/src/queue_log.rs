//! The Asterisk-compatible queue_log rebuilt from the `queue_events` table:
//! `pbx queue-log` writes it for any time range, and the start-up repair
//! ([`repair`]) restores a file that is missing or lacks its last lines.
//!
//! A stored row is decoded back into the ACD's [`QueueEvent`] and formatted
//! by the same [`acd::queue_log_lines`] as the live writer uses, with the
//! same epoch second. The stored durations are whole milliseconds, from
//! which the formatter's whole seconds and milliseconds follow exactly, so
//! the rebuilt lines are byte-identical to the live ones.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use acd::{CallbackFailure, Destination, ExitReason, Party, QueueEvent};
use serde_json::Value;

use crate::events::{EventStore, EventStoreError, StoredEvent};

mod repair;

pub(crate) use repair::repair_at_start;

/// Rows read per query when a whole range is rebuilt.
const PAGE_ROWS: u32 = 1000;

#[derive(Debug, thiserror::Error)]
pub(crate) enum QueueLogError {
    #[error(transparent)]
    Store(#[from] EventStoreError),
    #[error(
        "stored event {seq} ({kind}) has no valid {field}, so its queue_log lines cannot be rebuilt"
    )]
    Field {
        seq: i64,
        kind: String,
        field: &'static str,
    },
    #[error("stored event {seq} has the unknown kind {kind:?}; a newer PBX may have written it")]
    UnknownKind { seq: i64, kind: String },
    #[error("cannot write {path}: {source}")]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// Returns the queue_log lines the live writer wrote for `row`: none for
/// the kinds that have no queue_log record (offers started, steps, agent
/// state, login and reachability changes).
pub(crate) fn lines_of(row: &StoredEvent) -> Result<Vec<String>, QueueLogError> {
    let Some(event) = decode(row)? else {
        return Ok(Vec::new());
    };
    // The live writer takes the whole seconds of the same wall time, and
    // gives 0 for a time before the epoch.
    let epoch = u64::try_from(row.at_ms.div_euclid(1000)).unwrap_or(0);
    Ok(acd::queue_log_lines(&event, epoch))
}

/// Writes the queue_log lines of the events stored in `[since_ms,
/// until_ms)`, in sequence order, to `out`; returns how many it wrote.
pub(crate) async fn write_range(
    store: &EventStore,
    since_ms: Option<i64>,
    until_ms: Option<i64>,
    out: &mut impl std::io::Write,
) -> Result<u64, RangeError> {
    let mut after = 0;
    let mut written = 0;
    loop {
        let rows = store
            .page(after, since_ms, until_ms, PAGE_ROWS)
            .await
            .map_err(QueueLogError::from)?;
        let Some(last) = rows.last() else {
            return Ok(written);
        };
        after = last.seq;
        for row in &rows {
            for line in lines_of(row)? {
                writeln!(out, "{line}").map_err(RangeError::Output)?;
                written += 1;
            }
        }
    }
}

/// Failure of `write_range`: a row that cannot be rebuilt, or output that
/// cannot be written.
#[derive(Debug, thiserror::Error)]
pub(crate) enum RangeError {
    #[error(transparent)]
    Rebuild(#[from] QueueLogError),
    #[error("{0}")]
    Output(std::io::Error),
}

/// Decodes a stored row into the event it was made from, or `None` for a
/// kind that has no queue_log line. `at` is not stored and not needed for
/// the lines, so it is the current instant.
fn decode(row: &StoredEvent) -> Result<Option<QueueEvent>, QueueLogError> {
    let fields = Fields { row };
    let at = Instant::now();
    let event = match row.kind.as_str() {
        "step_reached"
        | "offer_started"
        | "callback_dialing"
        | "call_held"
        | "call_resumed"
        | "survey_offered"
        | "survey_answered"
        | "survey_unanswered"
        | "agent_state_changed"
        | "agent_logged_in"
        | "agent_logged_out"
        | "agent_reachable"
        | "agent_unreachable"
        | "other" => {
            return Ok(None);
        }
        "call_enqueued" => QueueEvent::CallEnqueued {
            call: fields.call()?,
            queue: fields.queue()?,
            caller: fields.optional_text("caller")?,
            request_type: fields.optional_text("request_type")?,
            position: fields.count("position")?,
            at,
        },
        "offer_answered" => QueueEvent::OfferAnswered {
            call: fields.call()?,
            queue: fields.queue()?,
            agent: fields.agent()?,
            waited: fields.duration("waited_seconds")?,
            ring_time: fields.duration("ring_seconds")?,
            joined_position: fields.count("joined_position")?,
            at,
        },
        "offer_rejected" => QueueEvent::OfferRejected {
            call: fields.call()?,
            queue: fields.queue()?,
            agent: fields.agent()?,
            busy: fields.flag("busy")?,
            ring_time: fields.duration("ring_seconds")?,
            at,
        },
        "offer_timed_out" => QueueEvent::OfferTimedOut {
            call: fields.call()?,
            queue: fields.queue()?,
            agent: fields.agent()?,
            ring_time: fields.duration("ring_seconds")?,
            at,
        },
        "offer_cancelled" => QueueEvent::OfferCancelled {
            call: fields.call()?,
            queue: fields.queue()?,
            agent: fields.agent()?,
            ring_time: fields.duration("ring_seconds")?,
            at,
        },
        "call_abandoned" => QueueEvent::CallAbandoned {
            call: fields.call()?,
            queue: fields.queue()?,
            agent: row.agent.clone(),
            waited: fields.duration("waited_seconds")?,
            position: fields.count("position")?,
            joined_position: fields.count("joined_position")?,
            at,
        },
        "call_timed_out" => QueueEvent::CallTimedOut {
            call: fields.call()?,
            queue: fields.queue()?,
            agent: row.agent.clone(),
            waited: fields.duration("waited_seconds")?,
            position: fields.count("position")?,
            joined_position: fields.count("joined_position")?,
            at,
        },
        "call_exited" => QueueEvent::CallExited {
            call: fields.call()?,
            queue: fields.queue()?,
            reason: fields.exit_reason()?,
            destination: fields.destination()?,
            waited: fields.duration("waited_seconds")?,
            position: fields.count("position")?,
            joined_position: fields.count("joined_position")?,
            at,
        },
        "callback_requested" => QueueEvent::CallbackRequested {
            call: fields.call()?,
            queue: fields.queue()?,
            number: fields.text("number")?,
            // The queue_log line needs neither; the restore at start reads
            // them from the row itself (events/callbacks.rs).
            data: acd::CallData::default(),
            arrived: at,
            at,
        },
        "callback_retry" | "callback_failed" => QueueEvent::CallbackNotReached {
            call: fields.call()?,
            queue: fields.queue()?,
            agent: fields.agent()?,
            cause: match fields.text("cause")?.as_str() {
                "busy" => CallbackFailure::Busy,
                "no_answer" => CallbackFailure::NoAnswer,
                "unreachable" => CallbackFailure::Unreachable,
                "agent_left" => CallbackFailure::AgentLeft,
                _ => return Err(fields.invalid("cause")),
            },
            attempts: u32::try_from(fields.count("attempts")?)
                .map_err(|_| fields.invalid("attempts"))?,
            // Only whether there is a retry shows in the line.
            retry_at: (row.kind == "callback_retry").then_some(at),
            waited: fields.duration("waited_seconds")?,
            at,
        },
        "call_completed" => QueueEvent::CallCompleted {
            call: fields.call()?,
            queue: fields.queue()?,
            agent: fields.agent()?,
            waited: fields.duration("waited_seconds")?,
            talk_time: fields.duration("talk_seconds")?,
            joined_position: fields.count("joined_position")?,
            ended_by: match fields.optional_text("ended_by")?.as_deref() {
                None => None,
                Some("caller") => Some(Party::Caller),
                Some("agent") => Some(Party::Agent),
                Some(_) => return Err(fields.invalid("ended_by")),
            },
            at,
        },
        "call_transferred" => QueueEvent::CallTransferred {
            call: fields.call()?,
            queue: fields.queue()?,
            agent: fields.agent()?,
            target: fields.text("target")?,
            waited: fields.duration("waited_seconds")?,
            talk_time: fields.duration("talk_seconds")?,
            joined_position: fields.count("joined_position")?,
            at,
        },
        "wrap_up_code_set" => QueueEvent::WrapUpCodeSet {
            call: fields.call()?,
            queue: fields.queue()?,
            agent: fields.agent()?,
            code: fields.text("code")?,
            at,
        },
        "agent_not_ready" => QueueEvent::AgentNotReady {
            agent: fields.agent()?,
            reason: fields.text("reason")?,
            queues: fields.texts("queues")?,
            at,
        },
        "agent_ready" => QueueEvent::AgentReady {
            agent: fields.agent()?,
            reason: fields.text("reason")?,
            queues: fields.texts("queues")?,
            at,
        },
        "member_added" => QueueEvent::MemberAdded {
            agent: fields.agent()?,
            queue: fields.queue()?,
            at,
        },
        "member_removed" => QueueEvent::MemberRemoved {
            agent: fields.agent()?,
            queue: fields.queue()?,
            at,
        },
        other => {
            return Err(QueueLogError::UnknownKind {
                seq: row.seq,
                kind: other.to_owned(),
            });
        }
    };
    Ok(Some(event))
}

/// Typed access to a row's columns and JSON data, with errors that name
/// the row and the field.
struct Fields<'a> {
    row: &'a StoredEvent,
}

impl Fields<'_> {
    fn invalid(&self, field: &'static str) -> QueueLogError {
        QueueLogError::Field {
            seq: self.row.seq,
            kind: self.row.kind.clone(),
            field,
        }
    }

    fn column(&self, value: &Option<String>, field: &'static str) -> Result<String, QueueLogError> {
        value.clone().ok_or_else(|| self.invalid(field))
    }

    fn call(&self) -> Result<String, QueueLogError> {
        self.column(&self.row.call, "call_id")
    }

    fn queue(&self) -> Result<String, QueueLogError> {
        self.column(&self.row.queue, "queue")
    }

    fn agent(&self) -> Result<String, QueueLogError> {
        self.column(&self.row.agent, "agent")
    }

    fn data(&self, field: &'static str) -> &Value {
        &self.row.data[field]
    }

    fn text(&self, field: &'static str) -> Result<String, QueueLogError> {
        self.data(field)
            .as_str()
            .map(str::to_owned)
            .ok_or_else(|| self.invalid(field))
    }

    fn optional_text(&self, field: &'static str) -> Result<Option<String>, QueueLogError> {
        match self.data(field) {
            Value::Null => Ok(None),
            Value::String(text) => Ok(Some(text.clone())),
            _ => Err(self.invalid(field)),
        }
    }

    fn texts(&self, field: &'static str) -> Result<Vec<String>, QueueLogError> {
        let items = self
            .data(field)
            .as_array()
            .ok_or_else(|| self.invalid(field))?;
        items
            .iter()
            .map(|item| {
                item.as_str()
                    .map(str::to_owned)
                    .ok_or_else(|| self.invalid(field))
            })
            .collect()
    }

    fn count(&self, field: &'static str) -> Result<usize, QueueLogError> {
        self.data(field)
            .as_u64()
            .and_then(|count| usize::try_from(count).ok())
            .ok_or_else(|| self.invalid(field))
    }

    fn flag(&self, field: &'static str) -> Result<bool, QueueLogError> {
        self.data(field)
            .as_bool()
            .ok_or_else(|| self.invalid(field))
    }

    /// Reads seconds stored with millisecond precision back into the whole
    /// milliseconds they were made from.
    fn duration(&self, field: &'static str) -> Result<Duration, QueueLogError> {
        let seconds = self
            .data(field)
            .as_f64()
            .ok_or_else(|| self.invalid(field))?;
        if !(0.0..=1e12).contains(&seconds) {
            return Err(self.invalid(field));
        }
        Ok(Duration::from_millis((seconds * 1000.0).round() as u64))
    }

    fn exit_reason(&self) -> Result<ExitReason, QueueLogError> {
        Ok(match self.text("reason")?.as_str() {
            "full" => ExitReason::Full,
            "join_empty" => ExitReason::JoinEmpty,
            "leave_empty" => ExitReason::LeaveEmpty,
            "step" => ExitReason::Step,
            "max_wait" => ExitReason::MaxWait,
            "key" => {
                let key = self.text("key")?;
                let mut chars = key.chars();
                match (chars.next(), chars.next()) {
                    (Some(key), None) => ExitReason::Key(key),
                    _ => return Err(self.invalid("key")),
                }
            }
            _ => return Err(self.invalid("reason")),
        })
    }

    fn destination(&self) -> Result<Option<Destination>, QueueLogError> {
        let Some(text) = self.optional_text("destination")? else {
            return Ok(None);
        };
        let destination = match text.split_once(':') {
            Some(("queue", queue)) => Destination::Queue(queue.to_owned()),
            Some(("voicemail", mailbox)) => Destination::Voicemail(mailbox.to_owned()),
            Some(("number", number)) => Destination::Number(number.to_owned()),
            None if text == "callback" => Destination::Callback,
            _ => return Err(self.invalid("destination")),
        };
        Ok(Some(destination))
    }
}

/// Runs `pbx queue-log`: writes the lines of the events in `[since_ms,
/// until_ms)` stored under `data_dir` to `output`, or to standard output.
/// Returns the exit code.
pub(crate) fn run_command(
    data_dir: &Path,
    database: Option<&cdr::database::DatabaseUrl>,
    since_ms: Option<i64>,
    until_ms: Option<i64>,
    output: Option<&Path>,
) -> i32 {
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("cannot start the async runtime: {error}");
            return 1;
        }
    };
    match runtime.block_on(command(data_dir, database, since_ms, until_ms, output)) {
        Ok(written) => {
            eprintln!("wrote {written} queue_log lines");
            0
        }
        Err(message) => {
            eprintln!("{message}");
            1
        }
    }
}

async fn command(
    data_dir: &Path,
    database: Option<&cdr::database::DatabaseUrl>,
    since_ms: Option<i64>,
    until_ms: Option<i64>,
    output: Option<&Path>,
) -> Result<u64, String> {
    let database = crate::storage::existing_database(data_dir, database)
        .map_err(|message| format!("{}: {message}", data_dir.display()))?;
    let store = EventStore::open_existing(&database)
        .await
        .map_err(|error| format!("{database}: {error}"))?;
    match output {
        None => {
            let stdout = std::io::stdout();
            let mut out = std::io::BufWriter::new(stdout.lock());
            let written = write_range(&store, since_ms, until_ms, &mut out).await;
            let written = match written {
                // A reader that stops early (`| head`) is not an error.
                Err(RangeError::Output(error))
                    if error.kind() == std::io::ErrorKind::BrokenPipe =>
                {
                    return Ok(0);
                }
                other => other.map_err(|error| match error {
                    RangeError::Rebuild(error) => format!("{database}: {error}"),
                    other => other.to_string(),
                })?,
            };
            match std::io::Write::flush(&mut out) {
                Err(error) if error.kind() != std::io::ErrorKind::BrokenPipe => {
                    Err(format!("cannot write to standard output: {error}"))
                }
                _ => Ok(written),
            }
        }
        Some(path) => {
            let file = std::fs::File::create(path)
                .map_err(|error| format!("cannot create {}: {error}", path.display()))?;
            let mut out = std::io::BufWriter::new(file);
            let written = write_range(&store, since_ms, until_ms, &mut out)
                .await
                .map_err(|error| match error {
                    RangeError::Output(error) => {
                        format!("cannot write {}: {error}", path.display())
                    }
                    RangeError::Rebuild(error) => format!("{database}: {error}"),
                })?;
            let file = out
                .into_inner()
                .map_err(|error| format!("cannot write {}: {}", path.display(), error.error()))?;
            file.sync_all()
                .map_err(|error| format!("cannot write {}: {error}", path.display()))?;
            Ok(written)
        }
    }
}

/// Parses a `--since` or `--until` time, RFC 3339 or whole seconds since
/// the Unix epoch, into Unix milliseconds.
pub(crate) fn parse_time(text: &str) -> Result<i64, String> {
    if let Ok(seconds) = text.parse::<i64>() {
        return seconds
            .checked_mul(1000)
            .ok_or_else(|| format!("{text} seconds is out of range"));
    }
    let at = time::OffsetDateTime::parse(text, &time::format_description::well_known::Rfc3339)
        .map_err(|error| {
            format!(
                "expected an RFC 3339 time such as 2027-01-15T08:00:00Z or seconds since \
                 1970-01-01T00:00:00Z, got {text:?}: {error}"
            )
        })?;
    i64::try_from(at.unix_timestamp_nanos() / 1_000_000)
        .map_err(|_| format!("{text} is out of range"))
}

#[cfg(test)]
mod tests;
