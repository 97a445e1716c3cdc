//! Asterisk-compatible queue_log lines built from [`QueueEvent`]s.
//!
//! A line is `epoch|callid|queue|agent|EVENT|data1|data2|...`, with `NONE`
//! for a missing call id or agent, waits and talk times in whole seconds
//! and ring times in milliseconds, as Asterisk 16 and later write them.
//! Reporting tools that read Asterisk's queue_log can then rebuild CDRs and
//! KPIs from these lines.

use std::time::Duration;

use crate::output::{ExitReason, Party, QueueEvent};

/// Formats the queue_log lines for one event, given the event's time in
/// seconds since the Unix epoch (the driver maps `event.at()` to wall time).
/// Most events give one line. A pause or unpause gives one line per queue
/// of the agent, and events the queue_log has no record for give none.
pub fn queue_log_lines(event: &QueueEvent, epoch: u64) -> Vec<String> {
    let line = |call: &str, queue: &str, agent: Option<&str>, name: &str, data: &[String]| {
        let mut fields = vec![
            epoch.to_string(),
            call.to_owned(),
            queue.to_owned(),
            agent.unwrap_or("NONE").to_owned(),
            name.to_owned(),
        ];
        fields.extend(data.iter().map(|field| clean(field)));
        fields.join("|")
    };
    match event {
        QueueEvent::CallEnqueued {
            call,
            queue,
            caller,
            position,
            ..
        } => vec![line(
            call,
            queue,
            None,
            "ENTERQUEUE",
            &[
                String::new(),
                caller.clone().unwrap_or_default(),
                position.to_string(),
            ],
        )],
        QueueEvent::OfferAnswered {
            call,
            queue,
            agent,
            waited,
            ring_time,
            ..
        } => vec![line(
            call,
            queue,
            Some(agent),
            "CONNECT",
            &[secs(*waited), call.clone(), secs(*ring_time)],
        )],
        QueueEvent::OfferRejected {
            call,
            queue,
            agent,
            ring_time,
            ..
        }
        | QueueEvent::OfferTimedOut {
            call,
            queue,
            agent,
            ring_time,
            ..
        } => {
            vec![line(
                call,
                queue,
                Some(agent),
                "RINGNOANSWER",
                &[millis(*ring_time)],
            )]
        }
        QueueEvent::OfferCancelled {
            call,
            queue,
            agent,
            ring_time,
            ..
        } => {
            vec![line(
                call,
                queue,
                Some(agent),
                "RINGCANCELED",
                &[millis(*ring_time)],
            )]
        }
        QueueEvent::CallCompleted {
            call,
            queue,
            agent,
            waited,
            talk_time,
            joined_position,
            ended_by,
            ..
        } => {
            // NOTE: without `call_ended_by` the side is unknown; the line
            // then records the agent as ending the call.
            let name = match ended_by {
                Some(Party::Caller) => "COMPLETECALLER",
                Some(Party::Agent) | None => "COMPLETEAGENT",
            };
            let data = [secs(*waited), secs(*talk_time), joined_position.to_string()];
            vec![line(call, queue, Some(agent), name, &data)]
        }
        QueueEvent::CallTransferred {
            call,
            queue,
            agent,
            target,
            waited,
            talk_time,
            joined_position,
            ..
        } => {
            let data = [
                target.clone(),
                String::new(),
                secs(*waited),
                secs(*talk_time),
                joined_position.to_string(),
            ];
            vec![line(call, queue, Some(agent), "TRANSFER", &data)]
        }
        QueueEvent::CallAbandoned {
            call,
            queue,
            waited,
            position,
            joined_position,
            ..
        } => {
            let data = [
                position.to_string(),
                joined_position.to_string(),
                secs(*waited),
            ];
            vec![line(call, queue, None, "ABANDON", &data)]
        }
        QueueEvent::CallTimedOut {
            call,
            queue,
            waited,
            position,
            joined_position,
            ..
        } => {
            let data = [
                position.to_string(),
                joined_position.to_string(),
                secs(*waited),
            ];
            vec![line(call, queue, None, "EXITWITHTIMEOUT", &data)]
        }
        QueueEvent::CallExited {
            call,
            queue,
            reason,
            waited,
            position,
            joined_position,
            ..
        } => {
            let place = [
                position.to_string(),
                joined_position.to_string(),
                secs(*waited),
            ];
            vec![exit_line(&line, call, queue, *reason, &place)]
        }
        QueueEvent::CallbackRequested {
            call,
            queue,
            number,
            ..
        } => {
            vec![line(
                call,
                queue,
                None,
                "CALLBACKREQUEST",
                std::slice::from_ref(number),
            )]
        }
        QueueEvent::WrapUpCodeSet {
            call,
            queue,
            agent,
            code,
            ..
        } => {
            vec![line(
                call,
                queue,
                Some(agent),
                "WRAPUPCODE",
                std::slice::from_ref(code),
            )]
        }
        QueueEvent::MemberAdded { agent, queue, .. } => {
            vec![line(
                "NONE",
                queue,
                Some(agent),
                "ADDMEMBER",
                &[String::new()],
            )]
        }
        QueueEvent::MemberRemoved { agent, queue, .. } => {
            vec![line(
                "NONE",
                queue,
                Some(agent),
                "REMOVEMEMBER",
                &[String::new()],
            )]
        }
        QueueEvent::AgentNotReady {
            agent,
            reason,
            queues,
            ..
        } => queues
            .iter()
            .map(|queue| {
                line(
                    "NONE",
                    queue,
                    Some(agent),
                    "PAUSE",
                    std::slice::from_ref(reason),
                )
            })
            .collect(),
        QueueEvent::AgentReady {
            agent,
            reason,
            queues,
            ..
        } => queues
            .iter()
            .map(|queue| {
                line(
                    "NONE",
                    queue,
                    Some(agent),
                    "UNPAUSE",
                    std::slice::from_ref(reason),
                )
            })
            .collect(),
        // Asterisk has no callbacks; these lines follow CALLBACKREQUEST.
        // A failed attempt that will be tried again is CALLBACKRETRY, the
        // last one CALLBACKFAILED, both with the cause, the attempts that
        // count against the limit and the wait so far.
        QueueEvent::CallbackNotReached {
            call,
            queue,
            agent,
            cause,
            attempts,
            retry_at,
            waited,
            ..
        } => vec![line(
            call,
            queue,
            Some(agent),
            if retry_at.is_some() {
                "CALLBACKRETRY"
            } else {
                "CALLBACKFAILED"
            },
            &[
                cause.as_str().to_owned(),
                attempts.to_string(),
                secs(*waited),
            ],
        )],
        // Logins and reachability get no queue_log line, nor does an agent
        // taking a callback (its CONNECT comes when the citizen answers).
        // The stored events keep them.
        QueueEvent::CallbackDialing { .. }
        | QueueEvent::CallHeld { .. }
        | QueueEvent::CallResumed { .. }
        | QueueEvent::SurveyOffered { .. }
        | QueueEvent::SurveyFinished { .. }
        | QueueEvent::StepReached { .. }
        | QueueEvent::OfferStarted { .. }
        | QueueEvent::AgentStateChanged { .. }
        | QueueEvent::AgentLogin { .. }
        | QueueEvent::AgentReachability { .. } => Vec::new(),
    }
}

/// Formats the line of a call that left without an agent. Leaving by
/// timeout, step or overflow to another queue is `EXITWITHTIMEOUT`, as
/// Asterisk logs a call that its dialplan sends on after a timeout.
fn exit_line(
    line: &impl Fn(&str, &str, Option<&str>, &str, &[String]) -> String,
    call: &str,
    queue: &str,
    reason: ExitReason,
    place: &[String; 3],
) -> String {
    match reason {
        ExitReason::Full => line(call, queue, None, "FULL", &[]),
        ExitReason::JoinEmpty => line(call, queue, None, "JOINEMPTY", &[]),
        ExitReason::LeaveEmpty => line(call, queue, None, "EXITEMPTY", place),
        ExitReason::Key(key) => {
            let mut data = vec![key.to_string()];
            data.extend(place.iter().cloned());
            line(call, queue, None, "EXITWITHKEY", &data)
        }
        ExitReason::Step | ExitReason::MaxWait => line(call, queue, None, "EXITWITHTIMEOUT", place),
    }
}

fn secs(duration: Duration) -> String {
    duration.as_secs().to_string()
}

fn millis(duration: Duration) -> String {
    duration.as_millis().to_string()
}

/// Replaces the field separator and line breaks, which would corrupt the
/// line, in values that come from callers or agents.
fn clean(field: &str) -> String {
    field.replace(['|', '\n', '\r'], "_")
}
