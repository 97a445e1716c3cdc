//! `pbx cdr-check`: rebuilds the queue's part of each call's record from
//! the `queue_events` table and compares it with the CDR the PBX wrote.
//!
//! The events are durable before anything is acknowledged, so they are the
//! second, independent account of every queued call: who answered, when,
//! how it ended. A CDR that is missing can be rebuilt from them
//! (`--repair`), marked `rebuilt`. Its SIP and media fields stay empty,
//! because the events never held them.

use std::collections::HashMap;
use std::path::Path;

use cdr::{CallRecord, CdrStore, Disposition, HangupSide};
use time::OffsetDateTime;

use crate::events::{EventStore, StoredEvent};

/// Times closer than this are taken as the same moment: the CDR and the
/// events read the clock at different points of the same input.
const TOLERANCE_SECS: f64 = 1.0;

/// Outcome of a call's stay in its first queue, as far as the events tell.
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum Outcome {
    /// No terminal event: still waiting, or cut by a stop of the PBX.
    Open,
    Answered,
    Abandoned,
    /// Max wait reached with no overflow.
    TimedOut,
    /// Left by a key, overflow or step, to this destination (`None` when
    /// the driver decided, such as a full queue without overflow).
    Exited(Option<String>),
    /// The caller asked to be called back and hung up.
    Callback,
}

/// The queue's account of one call, rebuilt from its events.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct QueueCall {
    pub(crate) id: String,
    /// The queue the call entered first, which the CDR names.
    pub(crate) queue: String,
    pub(crate) caller: Option<String>,
    /// Request type that the `call_enqueued` event gives, if any.
    pub(crate) request_type: Option<String>,
    pub(crate) queued_ms: i64,
    pub(crate) outcome: Outcome,
    /// Agent and instant of the answer. For a callback request this is the
    /// citizen's answer of the call that returned it.
    pub(crate) answered: Option<(String, i64)>,
    /// End of the answered call: instant, talk seconds, side that hung up.
    pub(crate) completed: Option<(i64, f64, Option<HangupSide>)>,
    /// When the caller left the queue without an agent.
    pub(crate) left_ms: Option<i64>,
    /// Waited seconds the event of the outcome gives. For an open call,
    /// the time from its entry to the last event read, when the PBX was
    /// still running and the call still waiting.
    pub(crate) waited: f64,
    /// Time of the last event read, which ends an open call's record.
    pub(crate) last_seen_ms: i64,
    /// Holds and the post-call survey, for a rebuilt record.
    pub(crate) after_answer: AfterAnswer,
}

/// Hold and survey figures of an answered call, from its events.
#[derive(Clone, Debug, Default, PartialEq)]
pub(crate) struct AfterAnswer {
    pub(crate) hold_count: u32,
    pub(crate) hold_seconds: f64,
    pub(crate) survey: Option<cdr::SurveyStatus>,
    pub(crate) csat_score: Option<u8>,
}

/// Folds the events of each call, in `seq` order, into one [`QueueCall`]
/// per call that entered a queue, in order of entry.
pub(crate) fn rebuild(events: &[StoredEvent]) -> Vec<QueueCall> {
    let mut calls: Vec<QueueCall> = Vec::new();
    let mut index: HashMap<String, usize> = HashMap::new();
    for event in events {
        let Some(id) = &event.call else {
            continue;
        };
        if event.kind == "call_enqueued" {
            if !index.contains_key(id) {
                index.insert(id.clone(), calls.len());
                calls.push(QueueCall {
                    id: id.clone(),
                    queue: event.queue.clone().unwrap_or_default(),
                    caller: event.data["caller"].as_str().map(str::to_owned),
                    request_type: event.data["request_type"].as_str().map(str::to_owned),
                    queued_ms: event.at_ms,
                    outcome: Outcome::Open,
                    answered: None,
                    completed: None,
                    left_ms: None,
                    waited: 0.0,
                    last_seen_ms: event.at_ms,
                    after_answer: AfterAnswer::default(),
                });
            }
            continue;
        }
        let Some(call) = index.get(id).map(|&i| &mut calls[i]) else {
            continue;
        };
        let waited = event.data["waited_seconds"].as_f64().unwrap_or(0.0);
        match event.kind.as_str() {
            // A call transferred back into a queue is answered again; its
            // CDR keeps the first agent and answer.
            "offer_answered" if call.answered.is_some() => {}
            "offer_answered" => {
                call.answered = Some((event.agent.clone().unwrap_or_default(), event.at_ms));
                // A callback request was answered long after its caller
                // left; the record of that caller stays a callback.
                if call.outcome != Outcome::Callback {
                    call.outcome = Outcome::Answered;
                    call.waited = waited;
                }
            }
            // The CDR's talk time runs from the first answer to the end of
            // the call, so a transfer ends only the first agent's part. A
            // transfer to an extension leaves the talk time unchecked, and a
            // later completion by another agent counts from the first answer.
            "call_transferred" => {}
            "call_completed" => {
                let side = match event.data["ended_by"].as_str() {
                    Some("caller") => Some(HangupSide::Caller),
                    Some("agent") => Some(HangupSide::Agent),
                    _ => None,
                };
                let talk = match &call.answered {
                    Some((agent, at_ms)) if event.agent.as_ref() != Some(agent) => {
                        (event.at_ms - at_ms) as f64 / 1000.0
                    }
                    _ => event.data["talk_seconds"].as_f64().unwrap_or(0.0),
                };
                call.completed = Some((event.at_ms, talk, side));
            }
            "call_held" => call.after_answer.hold_count += 1,
            "call_resumed" => {
                let held = event.data["hold_seconds"].as_f64().unwrap_or(0.0);
                call.after_answer.hold_seconds += held;
            }
            "survey_answered" | "survey_unanswered" => {
                let outcome = event.data["outcome"].as_str().unwrap_or_default();
                call.after_answer.survey = cdr::SurveyStatus::from_name(outcome);
                call.after_answer.csat_score = event.data["score"]
                    .as_u64()
                    .and_then(|score| u8::try_from(score).ok());
            }
            "call_abandoned" | "call_timed_out" | "callback_requested" | "call_exited"
                if call.outcome == Outcome::Open =>
            {
                call.outcome = match event.kind.as_str() {
                    "call_abandoned" => Outcome::Abandoned,
                    "call_timed_out" => Outcome::TimedOut,
                    "callback_requested" => Outcome::Callback,
                    _ => match event.data["destination"].as_str() {
                        // A move to another queue keeps the call waiting
                        // there; its later events carry the same id.
                        Some(destination) if destination.starts_with("queue:") => {
                            continue;
                        }
                        destination => Outcome::Exited(destination.map(str::to_owned)),
                    },
                };
                call.left_ms = Some(event.at_ms);
                call.waited = waited;
            }
            _ => {}
        }
    }
    let last_ms = events.iter().map(|event| event.at_ms).max().unwrap_or(0);
    for call in calls
        .iter_mut()
        .filter(|call| call.outcome == Outcome::Open)
    {
        call.last_seen_ms = last_ms.max(call.queued_ms);
        call.waited = (call.last_seen_ms - call.queued_ms) as f64 / 1000.0;
    }
    calls
}

/// Returns the disposition the CDR must have for `call`, where the events
/// decide it. After an exit to a number or from a full queue, the outcome
/// depends on what happened after the queue, which only the CDR records.
fn expected_disposition(call: &QueueCall) -> Option<Disposition> {
    match &call.outcome {
        Outcome::Answered => Some(Disposition::Answered),
        Outcome::Abandoned => Some(Disposition::Abandoned),
        Outcome::TimedOut => Some(Disposition::NoAgent),
        Outcome::Callback => Some(Disposition::Callback),
        Outcome::Exited(Some(destination)) if destination.starts_with("voicemail:") => {
            Some(Disposition::Voicemail)
        }
        // A caller without a number cannot be called back, so the queue
        // ends its call as unanswered.
        Outcome::Exited(Some(destination)) if destination == "callback" => {
            Some(Disposition::NoAgent)
        }
        Outcome::Exited(_) | Outcome::Open => None,
    }
}

/// One way a CDR disagrees with the events.
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum Difference {
    Missing,
    Disposition {
        cdr: Disposition,
        events: Disposition,
    },
    Queue {
        cdr: Option<String>,
        events: String,
    },
    Agent {
        cdr: Option<String>,
        events: String,
    },
    AnsweredAt {
        cdr: Option<OffsetDateTime>,
        events_ms: i64,
    },
    TalkSeconds {
        cdr: f64,
        events: f64,
    },
}

impl std::fmt::Display for Difference {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Difference::Missing => write!(f, "no CDR, though the queue events record the call"),
            Difference::Disposition { cdr, events } => write!(
                f,
                "disposition {} in the CDR, {} by the queue events",
                cdr.as_str(),
                events.as_str()
            ),
            Difference::Queue { cdr, events } => write!(
                f,
                "queue {} in the CDR, {events} by the queue events",
                cdr.as_deref().unwrap_or("(none)")
            ),
            Difference::Agent { cdr, events } => write!(
                f,
                "agent {} in the CDR, {events} by the queue events",
                cdr.as_deref().unwrap_or("(none)")
            ),
            Difference::AnsweredAt { cdr, events_ms } => write!(
                f,
                "answered at {} in the CDR, {} by the queue events",
                cdr.map_or_else(|| "(never)".to_owned(), rfc3339),
                rfc3339(from_millis(*events_ms))
            ),
            Difference::TalkSeconds { cdr, events } => write!(
                f,
                "talk {cdr:.3} s in the CDR, {events:.3} s by the queue events"
            ),
        }
    }
}

/// Compares `call` with its CDR, which for the answer of a callback request
/// is `returned`, the record of the call that returned it.
pub(crate) fn compare(
    call: &QueueCall,
    record: Option<&CallRecord>,
    returned: Option<&CallRecord>,
) -> Vec<Difference> {
    let Some(record) = record else {
        return vec![Difference::Missing];
    };

    let mut differences = Vec::new();
    // A caller leg that failed while waiting (its answer never
    // acknowledged, a transport error) leaves the queue as abandoned, and
    // its CDR says failed.
    let failed_caller =
        call.outcome == Outcome::Abandoned && record.disposition == Disposition::Failed;
    if let Some(expected) = expected_disposition(call)
        && record.disposition != expected
        && !failed_caller
    {
        differences.push(Difference::Disposition {
            cdr: record.disposition,
            events: expected,
        });
    }

    if record.queue.as_deref() != Some(call.queue.as_str()) {
        differences.push(Difference::Queue {
            cdr: record.queue.clone(),
            events: call.queue.clone(),
        });
    }

    // The answer of a callback request belongs to the returning call.
    let answered_record = match call.outcome {
        Outcome::Callback => returned,
        _ => Some(record),
    };
    if let (Some((agent, at_ms)), Some(answered_record)) = (&call.answered, answered_record) {
        if answered_record.agent.as_deref() != Some(agent.as_str()) {
            differences.push(Difference::Agent {
                cdr: answered_record.agent.clone(),
                events: agent.clone(),
            });
        }

        let close = answered_record
            .answered_at
            .is_some_and(|at| seconds_between(at, *at_ms) <= TOLERANCE_SECS);
        if !close {
            differences.push(Difference::AnsweredAt {
                cdr: answered_record.answered_at,
                events_ms: *at_ms,
            });
        }

        // A record cut by a crash has the talk time of the repaired
        // recording, not of the call.
        if let Some((_, talk, _)) = call.completed
            && !answered_record.interrupted
            && (answered_record.talk_seconds - talk).abs() > TOLERANCE_SECS
        {
            differences.push(Difference::TalkSeconds {
                cdr: answered_record.talk_seconds,
                events: talk,
            });
        }
    }
    differences
}

/// Builds the record of a call whose CDR is missing from what the events
/// tell. Fields the events do not hold (SIP ids, dialed number, trunk,
/// recording, media) stay empty.
pub(crate) fn rebuilt_record(call: &QueueCall) -> CallRecord {
    let queued = from_millis(call.queued_ms);
    let answered_ms = match call.outcome {
        Outcome::Callback => None,
        _ => call.answered.as_ref().map(|(_, at)| *at),
    };
    let ended_ms = call
        .completed
        .map(|(at, _, _)| at)
        .or(call.left_ms)
        .or(answered_ms)
        .unwrap_or(call.last_seen_ms);
    let talk_seconds = match (answered_ms, call.completed) {
        (Some(_), Some((_, talk, _))) => talk,
        _ => 0.0,
    };
    let hangup_side = match call.outcome {
        Outcome::Abandoned | Outcome::Callback => Some(HangupSide::Caller),
        Outcome::TimedOut | Outcome::Exited(_) => Some(HangupSide::System),
        Outcome::Answered => call.completed.and_then(|(_, _, side)| side),
        Outcome::Open => None,
    };
    CallRecord {
        id: call.id.clone(),
        caller_call_id: String::new(),
        agent_call_id: None,
        caller: call.caller.clone().unwrap_or_default(),
        dialed: String::new(),
        trunk: None,
        source_extension: None,
        direction: cdr::CallDirection::Inbound,
        queue: Some(call.queue.clone()),
        request_type: call.request_type.clone(),
        agent: match call.outcome {
            Outcome::Callback => None,
            _ => call.answered.as_ref().map(|(agent, _)| agent.clone()),
        },
        arrived_at: queued,
        queued_at: Some(queued),
        answered_at: answered_ms.map(from_millis),
        ended_at: from_millis(ended_ms),
        wait_seconds: call.waited,
        talk_seconds,
        // A call with no outcome in the events was cut by a stop.
        disposition: expected_disposition(call).unwrap_or(Disposition::Failed),
        sip_status: None,
        hangup_side,
        recording_path: None,
        recording_seconds: None,
        interrupted: call.outcome == Outcome::Open,
        caller_answered_at: None,
        voicemail_box: None,
        forwarded_to: None,
        diverted_from: None,
        callback_of: None,
        recording_events: Vec::new(),
        media_quality: None,
        rebuilt: true,
        transfers: Vec::new(),
        hold_count: call.after_answer.hold_count,
        hold_seconds: call.after_answer.hold_seconds,
        survey: call.after_answer.survey,
        csat_score: call.after_answer.csat_score,
    }
}

fn from_millis(ms: i64) -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
        .unwrap_or(OffsetDateTime::UNIX_EPOCH)
}

fn seconds_between(at: OffsetDateTime, ms: i64) -> f64 {
    (at - from_millis(ms)).as_seconds_f64().abs()
}

fn rfc3339(at: OffsetDateTime) -> String {
    at.format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_else(|_| at.to_string())
}

/// Totals of one check, for the summary line and the exit code.
#[derive(Debug, Default, PartialEq)]
pub(crate) struct Summary {
    pub(crate) calls: usize,
    pub(crate) missing: usize,
    pub(crate) repaired: usize,
    pub(crate) differing: usize,
}

/// Checks the calls that entered a queue in `[since_ms, until_ms)` and
/// writes one line per difference to `out`. With `repair`, writes the
/// rebuilt record of each missing CDR.
pub(crate) async fn check(
    events: &EventStore,
    cdr: &CdrStore,
    since_ms: i64,
    until_ms: i64,
    repair: bool,
    out: &mut impl std::io::Write,
) -> Result<Summary, String> {
    let stored = events
        .queued_call_events(since_ms, until_ms)
        .await
        .map_err(|error| format!("cannot read the queue events: {error}"))?;
    let calls = rebuild(&stored);
    let mut summary = Summary {
        calls: calls.len(),
        ..Summary::default()
    };
    for call in &calls {
        let record = cdr
            .get(&call.id)
            .await
            .map_err(|error| format!("cannot read the CDR of {}: {error}", call.id))?;
        let returned = match (&call.outcome, &call.answered) {
            (Outcome::Callback, Some(_)) => cdr
                .answered_callback_of(&call.id)
                .await
                .map_err(|error| format!("cannot read the callbacks of {}: {error}", call.id))?,
            _ => None,
        };
        let differences = compare(call, record.as_ref(), returned.as_ref());
        if differences.is_empty() {
            continue;
        }
        let write_failed = |error: std::io::Error| format!("cannot write the report: {error}");
        if differences == [Difference::Missing] {
            summary.missing += 1;
            if repair {
                cdr.write(&rebuilt_record(call))
                    .await
                    .map_err(|error| format!("cannot write the CDR of {}: {error}", call.id))?;
                summary.repaired += 1;
                writeln!(
                    out,
                    "{}: CDR missing; rebuilt from the queue events",
                    call.id
                )
                .map_err(write_failed)?;
                continue;
            }
        } else {
            summary.differing += 1;
        }
        for difference in differences {
            writeln!(out, "{}: {difference}", call.id).map_err(write_failed)?;
        }
    }
    Ok(summary)
}

/// Runs `pbx cdr-check` on the database under `data_dir`; returns the exit
/// code: 0 when every record agrees (or every missing one was rebuilt), 1
/// otherwise or on an error.
pub(crate) fn run_command(
    data_dir: &Path,
    database: Option<&cdr::database::DatabaseUrl>,
    since_ms: Option<i64>,
    until_ms: Option<i64>,
    repair: bool,
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
    let result = runtime.block_on(async {
        let database = crate::storage::existing_database(data_dir, database)
            .map_err(|message| format!("{}: {message}", data_dir.display()))?;
        let cdr = CdrStore::open_at(data_dir, &database)
            .await
            .map_err(|error| format!("{database}: {error}"))?;
        let events = EventStore::open_existing(&database)
            .await
            .map_err(|error| format!("{database}: {error}"))?;
        let stdout = std::io::stdout();
        let mut out = stdout.lock();
        check(
            &events,
            &cdr,
            since_ms.unwrap_or(i64::MIN),
            until_ms.unwrap_or(i64::MAX),
            repair,
            &mut out,
        )
        .await
    });
    match result {
        Ok(summary) => {
            eprintln!(
                "checked {} queued calls: {} CDRs missing ({} rebuilt), {} differing",
                summary.calls, summary.missing, summary.repaired, summary.differing
            );
            let clean = summary.differing == 0 && summary.missing == summary.repaired;
            i32::from(!clean)
        }
        Err(message) => {
            eprintln!("{message}");
            1
        }
    }
}

#[cfg(test)]
mod tests;
