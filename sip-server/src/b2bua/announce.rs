//! Audio for waiting callers: music on hold between announcements of the
//! queue position and the expected wait, built from prompt files.
//!
//! The core only names files; the driver loads and plays them. A prompt
//! set is a folder of WAV files named as in [`PromptSet`], one folder per
//! language, so a centre records its own voice without code changes.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use super::call::{Phase, Side};
use super::{Command, Core};

/// Audio settings for the waiting callers of one queue.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct QueueMedia {
    /// WAV file looped between announcements; None plays silence.
    pub music_on_hold: Option<PathBuf>,
    /// Time between announcements; None announces nothing.
    pub announce_every: Option<Duration>,
    /// Announce the caller's place in the queue.
    pub announce_position: bool,
    /// Announce the expected wait, when the queue has measured handle times.
    pub announce_wait: bool,
}

impl QueueMedia {
    /// True when callers of the queue hear the PBX rather than ringback,
    /// which needs the caller's call answered while it waits.
    pub fn answers_caller(&self) -> bool {
        self.music_on_hold.is_some() || self.announce_every.is_some()
    }
}

/// Folder of the prompts of one language. Files, all WAV:
/// `position-before` ("you are number"), `position-after` ("in the
/// queue"), `position-many` (over 99 callers ahead), `wait-before` ("your
/// expected waiting time is about"), `wait-under-minute`, `minute`,
/// `minutes`, `please-hold`, `sorry-no-agent`, `voicemail-greeting`, `beep`
/// (the tone before a message), `survey-question`, `survey-invalid`,
/// `survey-thanks`, `survey-goodbye`, and the numbers `0` to `19` and
/// `20`, `30`, ... `90`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PromptSet {
    dir: PathBuf,
}

/// Every file name a prompt set must hold, for checks at start-up.
pub fn prompt_names() -> Vec<String> {
    let mut names: Vec<String> = [
        "position-before",
        "position-after",
        "position-many",
        "wait-before",
        "wait-under-minute",
        "minute",
        "minutes",
        "please-hold",
        "sorry-no-agent",
        "voicemail-greeting",
        "beep",
        "callback-confirmed",
        "callback-agent",
        "survey-question",
        "survey-invalid",
        "survey-thanks",
        "survey-goodbye",
    ]
    .iter()
    .map(|name| (*name).to_owned())
    .collect();
    names.extend((0..20).map(|n| n.to_string()));
    names.extend((2..10).map(|tens| (tens * 10).to_string()));
    names
}

impl PromptSet {
    pub fn new(dir: impl Into<PathBuf>) -> PromptSet {
        PromptSet { dir: dir.into() }
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn file(&self, name: &str) -> PathBuf {
        self.dir.join(format!("{name}.wav"))
    }

    /// Prompts that say `n` (0 to 99) as English-style numbers: "twenty"
    /// then "three" for 23.
    fn number(&self, n: u64) -> Vec<PathBuf> {
        match n {
            0..=19 => vec![self.file(&n.to_string())],
            _ => {
                let mut files = vec![self.file(&(n / 10 * 10).to_string())];
                if !n.is_multiple_of(10) {
                    files.push(self.file(&(n % 10).to_string()));
                }
                files
            }
        }
    }

    /// Returns the announcement for a caller at `position` (from 1) whose
    /// expected wait is `wait`, each part only when configured and known.
    pub fn announcement(
        &self,
        position: Option<usize>,
        wait: Option<Duration>,
        media: &QueueMedia,
    ) -> Vec<PathBuf> {
        let mut files = Vec::new();
        if media.announce_position
            && let Some(position) = position
        {
            match u64::try_from(position) {
                Ok(n @ 1..=99) => {
                    files.push(self.file("position-before"));
                    files.extend(self.number(n));
                    files.push(self.file("position-after"));
                }
                _ => files.push(self.file("position-many")),
            }
        }
        if media.announce_wait
            && let Some(wait) = wait
        {
            // Rounded up: a caller promised two minutes who waits three is
            // more annoyed than one promised three who waits two.
            let minutes = wait.as_secs().div_ceil(60);
            match minutes {
                0 | 1 if wait < Duration::from_secs(60) => {
                    files.push(self.file("wait-under-minute"));
                }
                1 => {
                    files.push(self.file("wait-before"));
                    files.extend(self.number(1));
                    files.push(self.file("minute"));
                }
                _ => {
                    files.push(self.file("wait-before"));
                    files.extend(self.number(minutes.min(99)));
                    files.push(self.file("minutes"));
                }
            }
        }
        if files.is_empty() {
            files.push(self.file("please-hold"));
        }
        files
    }

    pub fn sorry_no_agent(&self) -> PathBuf {
        self.file("sorry-no-agent")
    }

    pub fn voicemail_greeting(&self) -> PathBuf {
        self.file("voicemail-greeting")
    }

    pub fn beep(&self) -> PathBuf {
        self.file("beep")
    }

    /// Returns the prompt that asks the caller to hold, played before music
    /// while a transfer rings.
    pub fn please_hold(&self) -> PathBuf {
        self.file("please-hold")
    }

    /// Tells a caller that the callback request is taken.
    pub fn callback_confirmed(&self) -> PathBuf {
        self.file("callback-confirmed")
    }

    /// Tells the agent that answered a callback that the citizen is dialed.
    pub fn callback_agent(&self) -> PathBuf {
        self.file("callback-agent")
    }

    /// Asks the caller for a score from 1 to 5 after the agent hung up.
    pub fn survey_question(&self) -> PathBuf {
        self.file("survey-question")
    }

    /// Tells the caller that the key was not a score from 1 to 5.
    pub fn survey_invalid(&self) -> PathBuf {
        self.file("survey-invalid")
    }

    /// Thanks the caller for the score before the PBX hangs up.
    pub fn survey_thanks(&self) -> PathBuf {
        self.file("survey-thanks")
    }

    /// Ends a survey without a score.
    pub fn survey_goodbye(&self) -> PathBuf {
        self.file("survey-goodbye")
    }
}

/// Media events the driver passes back to the core.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum MediaNotice {
    /// `side`'s peer pressed a DTMF key (RFC 4733 or SIP INFO).
    Digit { side: Side, digit: char },
    /// A play list that does not loop ended on `side`.
    PlaybackFinished { side: Side },
    /// `side`'s peer keyed a code set with [`Command::SetFeatureCode`].
    FeatureCode { side: Side, code: String },
}

impl Core {
    pub(super) fn queue_media(&self, queue: &str) -> Option<&QueueMedia> {
        self.config
            .queue_media
            .get(queue)
            .filter(|media| media.answers_caller())
    }

    /// Answers a queued caller with the relay's SDP so it hears music and
    /// announcements instead of ringback. Returns false when the offer
    /// cannot be answered, so the caller gets ringback after all.
    pub(super) fn answer_waiting_caller(&mut self, call_id: &str, now: Instant) -> bool {
        let media_address = self.config.media_address;
        let Some(call) = self.calls.get_mut(call_id) else {
            return false;
        };
        let Some(port) = call.local_port(Side::Caller) else {
            return false;
        };
        let offerless = call.caller.offerless;
        let answer = match crate::sdp::local_answer(&call.offer, media_address, port) {
            Ok(answer) => answer,
            Err(error) => {
                tracing::warn!(%error, "failed to answer the caller for music on hold; it keeps ringback");
                return false;
            }
        };
        let body = if offerless {
            // The offer goes in this 200 and the answer comes in the ACK.
            let offer = call.offer.clone();
            call.caller.answer_in_ack = true;
            call.caller_origin.stamp(&offer, media_address, port)
        } else {
            call.caller_origin.stamp(&answer.sdp, media_address, port)
        };
        let Some(invite_key) = call.caller.invite_key.clone() else {
            return false;
        };
        let Some(dialog) = crate::dialog::Dialog::from_uas(
            &call.caller.invite,
            &call.caller.local_tag,
            call.caller.source,
        ) else {
            return false;
        };
        call.caller.dialog = Some(dialog);
        call.caller.answer = Some(body.clone());
        call.caller_answered_at = Some(now);
        let ack_id = (
            call.caller
                .invite
                .headers
                .call_id()
                .unwrap_or_default()
                .to_owned(),
            call.caller
                .invite
                .headers
                .cseq()
                .map(|c| c.seq)
                .unwrap_or_default(),
        );

        // An offerless caller's codec comes with its ACK.
        if !offerless {
            self.commands.push_back(Command::SetCodecs {
                call: call_id.to_owned(),
                side: Side::Caller,
                payload_type: answer.payload_type,
                event_payload_type: answer.event_payload_type,
            });
        }
        tracing::info!("caller answered to wait with music and announcements");
        self.respond_caller(call_id, 200, None, Some(body), now);
        self.awaiting_ack.insert(ack_id, invite_key);
        // The caller's dialog is stored, so a crash still ends it with BYE.
        self.checkpoint(call_id, now);
        true
    }

    /// Starts what a caller that just joined hears: an announcement when it
    /// waits for an agent, then music; only music while an agent rings.
    pub(super) fn start_waiting_media(&mut self, call_id: &str, now: Instant) {
        let Some(call) = self.calls.get(call_id) else {
            return;
        };
        let Some(media) = self.queue_media(&call.queue).cloned() else {
            return;
        };
        if let Some(call) = self.calls.get_mut(call_id) {
            call.music.clone_from(&media.music_on_hold);
        }
        let Some(call) = self.calls.get(call_id) else {
            return;
        };
        if call.attempts.is_empty()
            && call.parked_offers.is_empty()
            && media.announce_every.is_some()
        {
            self.announce(call_id, now);
        } else {
            self.play_music(call_id);
        }
        self.schedule_announcement(call_id, now);
    }

    pub(super) fn play_music(&mut self, call_id: &str) {
        let Some(call) = self.calls.get_mut(call_id) else {
            return;
        };
        // A caller moved into a queue without music keeps the music it had
        // rather than hearing dead air.
        let music = self
            .config
            .queue_media
            .get(&call.queue)
            .and_then(|media| media.music_on_hold.clone())
            .or_else(|| call.music.clone());
        call.music.clone_from(&music);
        let command = match music {
            Some(file) => Command::Play {
                call: call_id.to_owned(),
                side: Side::Caller,
                prompts: vec![file],
                looped: true,
            },
            None => Command::StopPlayback {
                call: call_id.to_owned(),
                side: Side::Caller,
            },
        };
        self.commands.push_back(command);
    }

    fn announce(&mut self, call_id: &str, _now: Instant) {
        let Some(call) = self.calls.get(call_id) else {
            return;
        };
        let Some(media) = self.config.queue_media.get(&call.queue) else {
            return;
        };
        let position = self.acd.position(call_id);
        let wait = self.acd.expected_wait(call_id);
        let prompts = self.config.prompts.announcement(position, wait, media);
        tracing::debug!(?position, ?wait, "announcing position and wait");
        self.commands.push_back(Command::Play {
            call: call_id.to_owned(),
            side: Side::Caller,
            prompts,
            looped: false,
        });
    }

    pub(super) fn schedule_announcement(&mut self, call_id: &str, now: Instant) {
        let Some(call) = self.calls.get(call_id) else {
            return;
        };
        let every = self
            .config
            .queue_media
            .get(&call.queue)
            .and_then(|media| media.announce_every);
        match every {
            Some(every) => self.set_deadline(call_id, now + every),
            None => self.cancel_deadline(call_id),
        }
    }

    /// Sets the one timer of a waiting call (its next announcement, or the
    /// end of an apology, greeting or message), replacing the previous one.
    pub(super) fn set_deadline(&mut self, call_id: &str, at: Instant) {
        let Some(call) = self.calls.get_mut(call_id) else {
            return;
        };
        if let Some(previous) = call.deadline.replace(at) {
            self.waiting_deadlines
                .remove(&(previous, call_id.to_owned()));
        }
        self.waiting_deadlines.insert((at, call_id.to_owned()));
    }

    /// Forgets the announcement timer of a call that connected or ended.
    pub(super) fn cancel_deadline(&mut self, call_id: &str) {
        if let Some(at) = self
            .calls
            .get_mut(call_id)
            .and_then(|call| call.deadline.take())
        {
            self.waiting_deadlines.remove(&(at, call_id.to_owned()));
        }
    }

    /// Handles the waiting deadlines that are due: announcements, the end of
    /// an apology, a voicemail greeting or message, and forward ring limits.
    pub(super) fn waiting_deadlines_due(&mut self, now: Instant) {
        while let Some((at, call_id)) = self.waiting_deadlines.first().cloned() {
            if at > now {
                return;
            }
            self.waiting_deadlines.pop_first();
            let Some(call) = self.calls.get_mut(&call_id) else {
                continue;
            };
            call.deadline = None;
            if call.transfer.pending.is_some() {
                self.transfer_failed(&call_id, 408, "Request Timeout", now);
                continue;
            }
            if call.survey.is_some() {
                self.survey_deadline(&call_id, now);
                continue;
            }
            if call.voicemail.is_some() {
                self.voicemail_deadline(&call_id, now);
                continue;
            }
            if call.phase == Phase::Dialing {
                self.citizen_ring_out(&call_id, now);
                continue;
            }
            if call.called_agent.is_some() && call.phase == Phase::Queued {
                self.extension_deadline(&call_id, now);
                continue;
            }
            if call.forwarded_to.is_some() && call.leaving.is_none() {
                self.forward_deadline(&call_id, now);
                continue;
            }
            if call.leaving.is_some() {
                self.hang_up_dismissed(&call_id, now);
                continue;
            }
            if call.phase == Phase::Queued {
                let held = call.on_hold;
                let span = self.calls.get(&call_id).map(|call| call.span.clone());
                let _span = span.map(tracing::Span::entered);
                // A caller that put the PBX on hold hears nothing until it
                // resumes; the next announcement is still scheduled.
                if !held {
                    self.announce(&call_id, now);
                }
                self.schedule_announcement(&call_id, now);
            }
        }
    }

    pub(super) fn next_waiting_deadline(&self) -> Option<Instant> {
        self.waiting_deadlines.first().map(|(at, _)| *at)
    }

    /// Reacts to a key or the end of a prompt on a call's media.
    pub fn media_notice(&mut self, call_id: &str, notice: MediaNotice, now: Instant) {
        if self.voicemail_notice(call_id, &notice, now) || self.survey_notice(call_id, &notice, now)
        {
            self.process(now);
            return;
        }
        let Some(call) = self.calls.get(call_id) else {
            return;
        };
        let span = call.span.clone();
        let _span = span.enter();
        if let MediaNotice::FeatureCode { side, code } = &notice {
            if self.config.recording_pause_code.as_ref() == Some(code) {
                self.recording_code_keyed(call_id, *side, now);
            }
            self.process(now);
            return;
        }
        let waiting = call.phase == Phase::Queued && call.caller.dialog.is_some();
        if call.leaving.is_some() {
            if notice == (MediaNotice::PlaybackFinished { side: Side::Caller }) {
                drop(_span);
                self.hang_up_dismissed(call_id, now);
                self.process(now);
            }
            return;
        }
        match notice {
            MediaNotice::PlaybackFinished { side: Side::Caller } if waiting && !call.on_hold => {
                self.play_music(call_id);
            }
            MediaNotice::Digit {
                side: Side::Caller,
                digit,
            } if waiting => {
                if self.acd.key_pressed(call_id, digit, now) {
                    tracing::info!(%digit, "caller left the queue by key");
                } else {
                    tracing::debug!(%digit, "key without meaning in this queue");
                }
            }
            _ => {}
        }
        self.process(now);
    }

    /// Ends a caller answered for waiting without an agent: plays the
    /// apology, then hangs up when it ended or after [`LEAVING_LIMIT`],
    /// whichever comes first. The CDR is written at the hang-up.
    pub(super) fn dismiss_waiting_caller(
        &mut self,
        call_id: &str,
        disposition: cdr::Disposition,
        now: Instant,
    ) {
        let sorry = self.config.prompts.sorry_no_agent();
        self.dismiss_with(call_id, disposition, sorry, now);
    }

    /// Plays `prompt` to a caller the PBX answered, then hangs up as
    /// [`Core::dismiss_waiting_caller`] does; the CDR gets `disposition`.
    pub(super) fn dismiss_with(
        &mut self,
        call_id: &str,
        disposition: cdr::Disposition,
        prompt: std::path::PathBuf,
        now: Instant,
    ) {
        self.cancel_deadline(call_id);
        let Some(call) = self.calls.get_mut(call_id) else {
            return;
        };
        call.leaving = Some(disposition);
        call.left_queue_at = Some(now);
        self.set_deadline(call_id, now + LEAVING_LIMIT);
        self.commands.push_back(Command::Play {
            call: call_id.to_owned(),
            side: Side::Caller,
            prompts: vec![prompt],
            looped: false,
        });
    }

    fn hang_up_dismissed(&mut self, call_id: &str, now: Instant) {
        let Some(disposition) = self.calls.get(call_id).and_then(|call| call.leaving) else {
            return;
        };
        self.cancel_deadline(call_id);
        self.send_bye(call_id, Side::Caller, now);
        self.finish(
            call_id,
            disposition,
            None,
            Some(cdr::HangupSide::System),
            now,
        );
    }
}

/// Maximum time a dismissed caller stays on the line for the apology, in
/// case the end of its playback is never reported.
pub(super) const LEAVING_LIMIT: Duration = Duration::from_secs(20);
