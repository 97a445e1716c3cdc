//! Pause and resume of an answered call's recording, for the moments when
//! a citizen gives personal data: through the API (supervisors,
//! administrators or the agent on the call) or by the agent keying the
//! recording code on its phone, which toggles.
//!
//! The core keeps whether each call's recording is paused and its
//! pause and resume events for the CDR; the driver carries out
//! [`Command::PauseRecording`], which makes the relay write silence on
//! both channels from that instant on. Every change is checkpointed, so a
//! call cut by a crash keeps its events in the rebuilt CDR.

use std::collections::HashMap;
use std::time::Instant;

use super::call::{Phase, Side};
use super::{Command, Core};

/// Who asked for a pause or resume.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RecordingActor {
    pub source: cdr::RecordingEventSource,
    /// API user name, or the agent id that keyed the code.
    pub name: String,
    /// Set for an API user with the agent role: the call must be one this
    /// agent answered, and any other call counts as not found.
    pub only_agent: Option<String>,
}

/// Why a recording was not paused or resumed.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum RecordingCommandError {
    #[error("call {call:?} not found among the calls in progress")]
    UnknownCall { call: String },
    #[error("call {call:?} is not being recorded: only answered calls with a recording can pause")]
    NotRecording { call: String },
    #[error("the recording of call {call:?} is already paused")]
    AlreadyPaused { call: String },
    #[error("the recording of call {call:?} is not paused")]
    NotPaused { call: String },
}

impl Core {
    /// Pauses (`paused` true) or resumes the recording of the answered call
    /// `call_id` now. Returns the event stored for the CDR, or why nothing
    /// changed: a second pause, or a resume of a recording that is not
    /// paused, is an error, so a caller can tell that its request had no
    /// effect.
    pub fn set_recording_paused(
        &mut self,
        call_id: &str,
        paused: bool,
        actor: &RecordingActor,
        now: Instant,
    ) -> Result<cdr::RecordingEvent, RecordingCommandError> {
        let call_text = || call_id.to_owned();
        let Some(call) = self.calls.get(call_id) else {
            return Err(RecordingCommandError::UnknownCall { call: call_text() });
        };
        if let Some(agent) = &actor.only_agent {
            let own = call
                .agent_leg
                .as_ref()
                .is_some_and(|leg| !leg.forwarded && leg.agent == *agent);
            if !own {
                return Err(RecordingCommandError::UnknownCall { call: call_text() });
            }
        }
        let Some(answered) = call.answered_at.filter(|_| {
            call.phase == Phase::Talking
                && call.recording_path.is_some()
                && call.voicemail.is_none()
        }) else {
            return Err(RecordingCommandError::NotRecording { call: call_text() });
        };
        match (paused, call.recording_paused) {
            (true, true) => return Err(RecordingCommandError::AlreadyPaused { call: call_text() }),
            (false, false) => return Err(RecordingCommandError::NotPaused { call: call_text() }),
            _ => {}
        }
        let event = cdr::RecordingEvent {
            action: if paused {
                cdr::RecordingAction::Pause
            } else {
                cdr::RecordingAction::Resume
            },
            offset_seconds: super::round_millis(
                now.saturating_duration_since(answered).as_secs_f64(),
            ),
            at: self.timestamp(now),
            source: actor.source,
            actor: actor.name.clone(),
        };
        let span = call.span.clone();
        let _span = span.enter();
        if let Some(call) = self.calls.get_mut(call_id) {
            call.recording_paused = paused;
            call.recording_events.push(event.clone());
        }
        tracing::info!(
            paused,
            source = event.source.as_str(),
            actor = event.actor,
            offset_seconds = event.offset_seconds,
            "recording pause changed"
        );
        self.commands.push_back(Command::PauseRecording {
            call: call_id.to_owned(),
            paused,
            at: now,
        });
        self.checkpoint(call_id, now);
        Ok(event)
    }

    /// Toggles the recording pause of `call_id` when the agent on it keyed
    /// the recording code.
    pub(super) fn recording_code_keyed(&mut self, call_id: &str, side: Side, now: Instant) {
        let Some(call) = self.calls.get(call_id) else {
            return;
        };
        let agent = call
            .agent_leg
            .as_ref()
            .filter(|leg| !leg.forwarded)
            .map(|leg| leg.agent.clone());
        let (Side::Agent, Some(agent)) = (side, agent) else {
            return;
        };
        let actor = RecordingActor {
            source: cdr::RecordingEventSource::Dtmf,
            name: agent.clone(),
            only_agent: Some(agent),
        };
        let paused = !call.recording_paused;
        if let Err(error) = self.set_recording_paused(call_id, paused, &actor, now) {
            tracing::warn!(call = call_id, %error, "recording code ignored");
        }
    }

    /// Asks the relay to watch the agent of `call_id` for the recording
    /// code, when one is configured and the call is recorded. Forwarded
    /// calls are not watched, because their far end is no agent.
    pub(super) fn watch_recording_code(&mut self, call_id: &str) {
        let Some(code) = self.config.recording_pause_code.clone() else {
            return;
        };
        let Some(call) = self.calls.get(call_id) else {
            return;
        };
        let agent = call.agent_leg.as_ref().filter(|leg| !leg.forwarded);
        if agent.is_none() || call.recording_path.is_none() {
            return;
        }
        self.commands.push_back(Command::SetFeatureCode {
            call: call_id.to_owned(),
            side: Side::Agent,
            code: Some(code),
        });
    }

    /// Maps each agent talking on a call that was not forwarded to the
    /// call's id and whether its recording is paused, for the live agent
    /// view. It makes one pass over the calls, because a scan per agent
    /// made each /metrics request cost agents times calls: about 60 ms of
    /// the engine task at 4,000 of each (estimated from a perf profile).
    pub(super) fn agents_talking(&self) -> HashMap<&str, (&str, bool)> {
        let mut talking = HashMap::new();
        for call in self.calls.values() {
            if call.phase != Phase::Talking {
                continue;
            }
            if let Some(leg) = call.agent_leg.as_ref().filter(|leg| !leg.forwarded) {
                talking
                    .entry(leg.agent.as_str())
                    .or_insert((call.id.as_str(), call.recording_paused));
            }
        }
        talking
    }
}
