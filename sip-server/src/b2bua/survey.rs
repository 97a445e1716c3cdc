//! The post-call survey. When the agent of an answered call in a queue
//! with a survey hangs up first, the caller's leg stays up and hears a
//! question. The caller keys a score from 1 to 5 (RFC 4733
//! telephone-events or SIP INFO), hears a thank-you, and the PBX hangs up.
//!
//! A try ends without an answer when no key comes within the queue's
//! timeout after the question, or when the key is not 1 to 5. After the
//! queue's number of tries the caller hears a goodbye and the survey ends
//! unanswered. The survey starts only after the ACD has completed the
//! agent's call, so its time never counts as talk time.

use std::time::{Duration, Instant};

use acd::SurveyOutcome;

use super::announce::LEAVING_LIMIT;
use super::call::{Phase, Side};
use super::{Command, Core, MediaNotice};

/// The survey of one queue.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SurveyConfig {
    /// Tries the caller gets before the survey ends unanswered, at least 1.
    pub attempts: u32,
    /// Time allowed for a key after the question has played.
    pub timeout: Duration,
}

/// Maximum time the question plays before the wait for a key starts, in
/// case the end of its playback is never reported.
const QUESTION_LIMIT: Duration = Duration::from_secs(30);

/// Step of the survey that the caller is in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Stage {
    /// The question plays; a key already counts.
    Asking,
    /// The question ended and the PBX waits for a key.
    Waiting,
    /// The thank-you or goodbye plays, then the PBX hangs up.
    Closing,
}

/// The survey state of one call.
#[derive(Debug)]
pub(crate) struct Survey {
    queue: String,
    agent: String,
    config: SurveyConfig,
    /// Tries that ended without a valid key.
    failed_tries: u32,
    stage: Stage,
    /// Set once the survey ended, with or without an answer.
    pub outcome: Option<SurveyOutcome>,
}

impl Core {
    /// Starts the survey of `call_id` when its agent hung up first and its
    /// queue has one. Returns false, leaving the call as it was, when the
    /// call gets no survey.
    pub(super) fn start_survey(&mut self, call_id: &str, now: Instant) -> bool {
        let Some(call) = self.calls.get(call_id) else {
            return false;
        };
        let Some(config) = self.config.surveys.get(&call.queue).cloned() else {
            return false;
        };
        // A callback call counts in the ACD under its request's id, and a
        // forwarded call has no agent to rate.
        let eligible =
            call.phase == Phase::Talking && call.callback.is_none() && call.caller.dialog.is_some();
        let Some(agent) = call
            .agent_leg
            .as_ref()
            .filter(|leg| !leg.forwarded && eligible)
            .map(|leg| leg.agent.clone())
        else {
            return false;
        };
        let queue = call.queue.clone();
        let _span = call.span.clone().entered();

        // The ACD completes the agent's call now, so the survey is neither
        // talk nor hold time.
        self.close_hold(call_id, now);
        self.acd.call_ended_by(&agent, acd::Party::Agent, now);

        let Some(call) = self.calls.get_mut(call_id) else {
            return false;
        };
        call.phase = Phase::Survey;
        call.agent_ended_at = Some(now);
        // The recording contains the talk between caller and agent, so it
        // ends with the talk time and the survey's prompts and keys stay out.
        if call.recording_path.is_some() {
            self.commands.push_back(Command::StopRecording {
                call: call_id.to_owned(),
                at: now,
            });
        }
        // The agent's dialog ended with its BYE, so its session timer goes.
        call.agent_session = None;
        call.survey = Some(Survey {
            queue: queue.clone(),
            agent: agent.clone(),
            config,
            failed_tries: 0,
            stage: Stage::Asking,
            outcome: None,
        });

        tracing::info!(agent, "agent hung up; the caller hears the survey");
        self.acd.survey_offered(call_id, &queue, &agent, now);
        let question = self.config.prompts.survey_question();
        self.play_survey(call_id, vec![question], Stage::Asking, now);
        self.checkpoint(call_id, now);
        true
    }

    /// Handles a key or the end of a prompt during a survey. Returns false
    /// when `call_id` has no survey.
    pub(super) fn survey_notice(
        &mut self,
        call_id: &str,
        notice: &MediaNotice,
        now: Instant,
    ) -> bool {
        let Some(stage) = self.survey_stage(call_id) else {
            return false;
        };
        match (notice, stage) {
            (MediaNotice::PlaybackFinished { side: Side::Caller }, Stage::Asking) => {
                self.wait_for_key(call_id, now);
            }
            (MediaNotice::PlaybackFinished { side: Side::Caller }, Stage::Closing) => {
                self.end_survey(call_id, now);
            }
            (
                MediaNotice::Digit {
                    side: Side::Caller,
                    digit,
                },
                Stage::Asking | Stage::Waiting,
            ) => match digit.to_digit(10) {
                Some(score @ 1..=5) => {
                    let score = u8::try_from(score).unwrap_or(5);
                    tracing::info!(score, "survey answered");
                    self.close_survey(call_id, SurveyOutcome::Answered(score), now);
                }
                _ => {
                    tracing::debug!(%digit, "survey key out of range");
                    self.failed_try(call_id, SurveyOutcome::Invalid, now);
                }
            },
            _ => {}
        }
        true
    }

    /// Handles the survey's timer: the question's limit, the wait for a
    /// key, or the limit of the closing prompt.
    pub(super) fn survey_deadline(&mut self, call_id: &str, now: Instant) {
        match self.survey_stage(call_id) {
            Some(Stage::Asking) => self.wait_for_key(call_id, now),
            Some(Stage::Waiting) => {
                tracing::debug!("no survey key in time");
                self.failed_try(call_id, SurveyOutcome::TimedOut, now);
            }
            Some(Stage::Closing) => self.end_survey(call_id, now),
            None => {}
        }
    }

    /// Ends a survey whose caller hung up; an unanswered survey is
    /// recorded as such.
    pub(super) fn survey_caller_hung_up(&mut self, call_id: &str, now: Instant) {
        self.record_outcome(call_id, SurveyOutcome::HungUp, now);
        self.cancel_deadline(call_id);
        self.finish_survey_call(call_id, now);
    }

    /// Ends a survey because the PBX stops or the caller's session expired:
    /// BYE to the caller, and the CDR.
    pub(super) fn interrupt_survey(&mut self, call_id: &str, now: Instant) {
        self.record_outcome(call_id, SurveyOutcome::Interrupted, now);
        self.cancel_deadline(call_id);
        self.send_bye(call_id, Side::Caller, now);
        self.finish_survey_call(call_id, now);
    }

    fn survey_stage(&self, call_id: &str) -> Option<Stage> {
        let call = self.calls.get(call_id)?;
        call.survey.as_ref().map(|survey| survey.stage)
    }

    fn wait_for_key(&mut self, call_id: &str, now: Instant) {
        let Some(survey) = self.calls.get_mut(call_id).and_then(|c| c.survey.as_mut()) else {
            return;
        };
        survey.stage = Stage::Waiting;
        let timeout = survey.config.timeout;
        self.set_deadline(call_id, now + timeout);
    }

    /// Counts a try without a valid key and asks again, or ends the survey
    /// with `outcome` after the last try.
    fn failed_try(&mut self, call_id: &str, outcome: SurveyOutcome, now: Instant) {
        let Some(survey) = self.calls.get_mut(call_id).and_then(|c| c.survey.as_mut()) else {
            return;
        };
        survey.failed_tries += 1;
        if survey.failed_tries >= survey.config.attempts {
            self.close_survey(call_id, outcome, now);
            return;
        }
        let mut prompts = Vec::new();
        if outcome == SurveyOutcome::Invalid {
            prompts.push(self.config.prompts.survey_invalid());
        }
        prompts.push(self.config.prompts.survey_question());
        self.play_survey(call_id, prompts, Stage::Asking, now);
    }

    /// Records `outcome` and plays the thank-you (after an answer) or the
    /// goodbye, after which the PBX hangs up.
    fn close_survey(&mut self, call_id: &str, outcome: SurveyOutcome, now: Instant) {
        self.record_outcome(call_id, outcome, now);
        let prompt = match outcome {
            SurveyOutcome::Answered(_) => self.config.prompts.survey_thanks(),
            _ => self.config.prompts.survey_goodbye(),
        };
        self.play_survey(call_id, vec![prompt], Stage::Closing, now);
    }

    /// Stores the outcome once, as a queue event.
    fn record_outcome(&mut self, call_id: &str, outcome: SurveyOutcome, now: Instant) {
        let Some(survey) = self.calls.get_mut(call_id).and_then(|c| c.survey.as_mut()) else {
            return;
        };
        if survey.outcome.is_some() {
            return;
        }
        survey.outcome = Some(outcome);
        let (queue, agent) = (survey.queue.clone(), survey.agent.clone());
        self.acd
            .survey_finished(call_id, &queue, &agent, outcome, now);
    }

    fn play_survey(
        &mut self,
        call_id: &str,
        prompts: Vec<std::path::PathBuf>,
        stage: Stage,
        now: Instant,
    ) {
        let Some(survey) = self.calls.get_mut(call_id).and_then(|c| c.survey.as_mut()) else {
            return;
        };
        survey.stage = stage;
        let limit = match stage {
            Stage::Closing => LEAVING_LIMIT,
            _ => QUESTION_LIMIT,
        };
        self.set_deadline(call_id, now + limit);
        self.commands.push_back(Command::Play {
            call: call_id.to_owned(),
            side: Side::Caller,
            prompts,
            looped: false,
        });
    }

    /// Hangs up the caller after the closing prompt.
    fn end_survey(&mut self, call_id: &str, now: Instant) {
        self.cancel_deadline(call_id);
        self.send_bye(call_id, Side::Caller, now);
        self.finish_survey_call(call_id, now);
    }

    /// Writes the CDR of a call that ended during or after its survey. The
    /// agent ended the conversation, so the agent is the hang-up side.
    fn finish_survey_call(&mut self, call_id: &str, now: Instant) {
        self.finish(
            call_id,
            cdr::Disposition::Answered,
            None,
            Some(cdr::HangupSide::Agent),
            now,
        );
    }
}

/// Returns the CDR's survey status for an outcome.
pub(super) fn survey_status(outcome: SurveyOutcome) -> cdr::SurveyStatus {
    match outcome {
        SurveyOutcome::Answered(_) => cdr::SurveyStatus::Answered,
        SurveyOutcome::TimedOut => cdr::SurveyStatus::TimedOut,
        SurveyOutcome::Invalid => cdr::SurveyStatus::Invalid,
        SurveyOutcome::HungUp => cdr::SurveyStatus::HungUp,
        SurveyOutcome::Interrupted => cdr::SurveyStatus::Interrupted,
    }
}
