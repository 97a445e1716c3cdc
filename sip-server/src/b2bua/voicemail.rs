//! Callers a queue sends to a voicemail box: a greeting and a tone, then
//! the caller's message recorded until it hangs up, presses #, or reaches
//! the length limit. The message is the call's recording, and its CDR has
//! the disposition `voicemail` and the box.

use std::time::{Duration, Instant};

use super::call::{Side, Voicemail};
use super::{Command, Core};

/// Maximum time the greeting may take before recording starts anyway, in
/// case the end of its playback is never reported.
pub(super) const GREETING_LIMIT: Duration = Duration::from_secs(30);

/// Key that ends a message.
const END_KEY: char = '#';

impl Core {
    /// Takes `call_id` out of queueing into `mailbox`, answering the
    /// caller first when it still hears ringback.
    pub(super) fn start_voicemail(&mut self, call_id: &str, mailbox: &str, now: Instant) {
        self.withdraw_offer(call_id, None, now);
        self.cancel_deadline(call_id);
        let Some(call) = self.calls.get(call_id) else {
            return;
        };
        let _span = call.span.clone().entered();
        if call.caller.answer.is_none() && !self.answer_waiting_caller(call_id, now) {
            self.fail_call(
                call_id,
                480,
                "No Agent Available",
                cdr::Disposition::NoAgent,
                now,
            );
            return;
        }
        tracing::info!(mailbox, "caller sent to voicemail");
        let prompts = vec![
            self.config.prompts.voicemail_greeting(),
            self.config.prompts.beep(),
        ];
        let Some(call) = self.calls.get_mut(call_id) else {
            return;
        };
        call.left_queue_at = Some(now);
        call.voicemail = Some(Voicemail {
            mailbox: mailbox.to_owned(),
            recording_since: None,
        });
        self.commands.push_back(Command::Play {
            call: call_id.to_owned(),
            side: Side::Caller,
            prompts,
            looped: false,
        });
        self.set_deadline(call_id, now + GREETING_LIMIT);
        self.checkpoint(call_id, now);
    }

    /// Starts recording the message once the greeting ended.
    fn start_message(&mut self, call_id: &str, now: Instant) {
        let stamp = self.timestamp(now);
        let limit = self.config.voicemail_max;
        let Some(call) = self.calls.get_mut(call_id) else {
            return;
        };
        let Some(voicemail) = call.voicemail.as_mut() else {
            return;
        };
        if voicemail.recording_since.is_some() {
            return;
        }
        voicemail.recording_since = Some(now);
        let path = message_path(&voicemail.mailbox, call_id, stamp);
        call.recording_path = Some(path.clone());
        // A message has one voice, on the left channel, so no mix.
        self.commands.push_back(Command::StartRecording {
            call: call_id.to_owned(),
            path,
            mixed_mono_path: None,
            at: now,
        });
        self.set_deadline(call_id, now + limit);
        self.checkpoint(call_id, now);
    }

    /// Ends the message: the limit passed or the caller pressed the end key.
    fn end_message(&mut self, call_id: &str, hangup: cdr::HangupSide, now: Instant) {
        self.cancel_deadline(call_id);
        self.send_bye(call_id, Side::Caller, now);
        self.finish(
            call_id,
            cdr::Disposition::Voicemail,
            None,
            Some(hangup),
            now,
        );
    }

    /// Handles the deadline of a call in voicemail: the greeting took too
    /// long, or the message reached its maximum length.
    pub(super) fn voicemail_deadline(&mut self, call_id: &str, now: Instant) {
        let recording = self
            .calls
            .get(call_id)
            .and_then(|call| call.voicemail.as_ref())
            .map(|voicemail| voicemail.recording_since.is_some());
        match recording {
            Some(false) => self.start_message(call_id, now),
            Some(true) => {
                tracing::info!(call = call_id, "voicemail message reached its length limit");
                self.end_message(call_id, cdr::HangupSide::System, now);
            }
            None => {}
        }
    }

    /// Reacts to media events of a call in voicemail; returns false when
    /// the call is not in voicemail.
    pub(super) fn voicemail_notice(
        &mut self,
        call_id: &str,
        notice: &super::MediaNotice,
        now: Instant,
    ) -> bool {
        let Some(recording) = self
            .calls
            .get(call_id)
            .and_then(|call| call.voicemail.as_ref())
            .map(|voicemail| voicemail.recording_since.is_some())
        else {
            return false;
        };
        match notice {
            super::MediaNotice::PlaybackFinished { side: Side::Caller } if !recording => {
                self.start_message(call_id, now);
            }
            super::MediaNotice::Digit {
                side: Side::Caller,
                digit: END_KEY,
            } if recording => self.end_message(call_id, cdr::HangupSide::Caller, now),
            _ => {}
        }
        true
    }

    /// Disposition of a call in voicemail that ends now: `voicemail` once
    /// the message is being recorded, abandoned before.
    pub(super) fn voicemail_disposition(&self, call_id: &str) -> Option<cdr::Disposition> {
        let voicemail = self.calls.get(call_id)?.voicemail.as_ref()?;
        Some(if voicemail.recording_since.is_some() {
            cdr::Disposition::Voicemail
        } else {
            cdr::Disposition::Abandoned
        })
    }
}

/// `voicemail/<box>/YYYY/MM/DD/<call id>.wav`, relative to the data
/// directory; the configuration limits box names to letters, digits, `-`
/// and `_`.
fn message_path(mailbox: &str, call_id: &str, at: time::OffsetDateTime) -> String {
    format!(
        "voicemail/{mailbox}/{:04}/{:02}/{:02}/{call_id}.wav",
        at.year(),
        u8::from(at.month()),
        at.day()
    )
}
