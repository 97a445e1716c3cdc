//! Callback requests. A waiting caller who presses the queue's callback
//! key (or whose queue overflows to "callback") hears a confirmation and
//! is hung up, while the ACD keeps the request in the caller's place. When
//! the request reaches an agent, the PBX places a call of its own: it rings
//! the agent first, and once the agent answers it dials the citizen through
//! the outbound trunk (or the extension that called) and bridges the two.
//!
//! That call has its own product id, relay session, recording and CDR; its
//! CDR names the request in `callback_of`. The ACD knows it by the
//! request's id, so every ACD input goes through [`Core::acd_call_id`].

use std::time::{Duration, Instant};

use sip_message::sdp::SessionDescription;
use sip_message::{Method, NameAddr, Request, Response, Uri};

use super::call::{AgentLeg, AttemptKind, Call, Callback, CallerLeg, NewCall, Phase, Side};
use super::{Command, Core, DidRoute, Purpose};
use crate::dialog::{Dialog, random_token};

/// Maximum ring time of the citizen before the callback counts as not
/// reached and the agent is released.
pub(super) const CITIZEN_RING_LIMIT: Duration = Duration::from_secs(45);

/// A callback request read back from storage at start.
#[derive(Clone, Debug)]
pub struct StoredCallback {
    /// The request's id, which is the id of the call that asked for it.
    pub request: String,
    pub queue: String,
    pub data: acd::CallData,
    /// Number to dial.
    pub number: String,
    /// Arrival of the caller who asked, which gives the request its place.
    pub arrived: std::time::SystemTime,
    /// Attempts that did not reach the citizen.
    pub failed_attempts: u32,
    /// No agent gets the request before this time.
    pub retry_at: Option<std::time::SystemTime>,
}

/// Attribute of the ACD's call data holding the number the citizen dialed,
/// shown to the citizen as the caller when the PBX calls back.
pub(super) const DIALED_ATTRIBUTE: &str = "dialed";

impl Core {
    /// The ACD turned a waiting call into a callback request. The caller
    /// hears the confirmation and is hung up; the CDR of this call gets the
    /// disposition `callback`.
    pub(super) fn accept_callback_request(&mut self, call_id: &str, now: Instant) {
        let Some(call) = self.calls.get(call_id) else {
            return;
        };
        let span = call.span.clone();
        let _span = span.enter();
        if !is_dialable(&call.caller_number) {
            // The ACD only checks that a number exists, not that a trunk
            // can dial it; an anonymous or malformed one ends as unanswered.
            tracing::info!(
                number = call.caller_number,
                "callback refused: the caller's number cannot be dialed"
            );
            self.fail_call(
                call_id,
                480,
                "No Agent Available",
                cdr::Disposition::NoAgent,
                now,
            );
            return;
        }
        tracing::info!(number = call.caller_number, "callback requested");
        let answered_before = call.caller.answer.is_some();
        self.withdraw_offer(call_id, None, now);
        let answered = answered_before || self.answer_waiting_caller(call_id, now);
        if !answered {
            // The caller cannot hear a confirmation, so the reason phrase
            // carries it.
            self.respond_caller(call_id, 480, Some("Callback Requested"), None, now);
            self.finish(
                call_id,
                cdr::Disposition::Callback,
                Some(480),
                Some(cdr::HangupSide::System),
                now,
            );
            return;
        }
        let confirmation = self.config.prompts.callback_confirmed();
        self.dismiss_with(call_id, cdr::Disposition::Callback, confirmation, now);
    }

    /// A callback request reached `agent`: sets up the call that returns it.
    /// The agent rings once the relay ports are bound.
    pub(super) fn start_callback(
        &mut self,
        request: &str,
        agent: &str,
        number: &str,
        now: Instant,
    ) {
        if let Some(previous) = self.callback_calls.get(request).cloned() {
            // An earlier agent's offer for this request never ended here;
            // it cannot be answered any more.
            self.discard_unanswered_callback(&previous);
        }
        let (Some(data), Some(queue)) = (
            self.acd.call_data(request).cloned(),
            self.acd.queue_of(request),
        ) else {
            tracing::warn!(
                request,
                agent,
                "callback for a request the ACD does not hold"
            );
            return;
        };
        let targets = self.number_targets(number, now);
        let Some(super::offer::OfferTarget { uri, target, .. }) = targets.first().cloned() else {
            // Configuration guarantees an outbound trunk, so only an
            // extension without a phone lands here. Keeping a request that
            // cannot be carried out would ring agents forever.
            tracing::warn!(
                request,
                number,
                "callback dropped: nowhere to dial the number"
            );
            self.acd.abandon(request, now);
            return;
        };
        let id = self.new_call_id(now);
        let sip_call_id = format!("{}@{}", random_token(), self.config.sip_address.ip());
        let span =
            tracing::info_span!("call", call = %id, call_id = %sip_call_id, callback_of = %request);
        span.in_scope(|| tracing::info!(agent, number, queue, "returning a callback request"));

        // The citizen's phone shows the number it once dialed.
        let centre = data
            .attributes
            .get(DIALED_ATTRIBUTE)
            .cloned()
            .unwrap_or_else(|| "pbx".to_owned());
        let local_tag = random_token();
        let mut from = NameAddr::new(Uri::sip(
            Some(&centre),
            sip_message::Host::Domain(self.config.domain.clone()),
            None,
        ));
        from.set_tag(&local_tag);
        let mut invite = Request::new(Method::Invite, uri.clone());
        invite.headers.push("Max-Forwards", "70");
        invite.headers.push("From", from.to_string());
        invite.headers.push("To", NameAddr::new(uri).to_string());
        invite.headers.push("Call-ID", sip_call_id.clone());
        invite.headers.push("CSeq", "1 INVITE");
        let trunk = (!self.registrar.is_agent(number))
            .then(|| {
                self.config
                    .trunks
                    .iter()
                    .find(|trunk| trunk.outbound.is_some())
                    .map(|trunk| trunk.name.clone())
            })
            .flatten();

        let call = Call::new(
            NewCall {
                id: id.clone(),
                span,
                caller: CallerLeg {
                    invite_key: None,
                    invite,
                    source: target,
                    local_tag,
                    dialog: None,
                    ringing_sent: false,
                    answer: None,
                    offerless: false,
                    answer_in_ack: false,
                    // The PBX is the UAC here and sends no provisional responses.
                    provisionals: super::reliable::CallerProvisionals::new(
                        super::reliable::CallerReliability::Unsupported,
                    ),
                },
                offer: crate::sdp::local_offer(self.config.media_address),
                caller_number: number.to_owned(),
                dialed: number.to_owned(),
                source_extension: trunk.is_none().then(|| number.to_owned()),
                trunk,
                route: DidRoute {
                    queue,
                    priority: data.priority,
                    skills: data.requirements.clone(),
                    request_type: data.request_type.clone(),
                },
                diverted_from: None,
                callback: Some(Callback {
                    request: request.to_owned(),
                    agent: agent.to_owned(),
                }),
                called_agent: None,
            },
            now,
        );
        self.callback_calls.insert(request.to_owned(), id.clone());
        self.index_sip_call_id(sip_call_id.clone(), &id);
        self.calls.insert(id.clone(), call);
        self.commands.push_back(Command::OpenMedia {
            call: id,
            sip_call_id,
        });
    }

    /// Puts back a callback request stored before a restart, at the place
    /// its caller's arrival gives it among the calls waiting now, with the
    /// attempts it made before.
    pub fn restore_callback(
        &mut self,
        stored: StoredCallback,
        now: Instant,
    ) -> Result<(), acd::AcdError> {
        let age = self
            .wall(now)
            .duration_since(stored.arrived)
            .unwrap_or_default();
        // An arrival before the monotonic clock's origin sorts as the
        // earliest instant it can express: still ahead of today's callers.
        let arrived = now.checked_sub(age).unwrap_or(self.wall_base.0.min(now));
        let not_before = stored.retry_at.and_then(|retry| {
            let ahead = retry.duration_since(self.wall(now)).ok()?;
            now.checked_add(ahead)
        });
        self.acd.restore_callback(
            &stored.request,
            &stored.queue,
            stored.data,
            &stored.number,
            arrived,
            acd::CallbackAttempts {
                failed: stored.failed_attempts,
                not_before,
            },
            now,
        )?;
        self.process(now);
        Ok(())
    }

    /// The relay ports of a callback call are bound: ring its agent.
    pub(super) fn callback_media_opened(&mut self, call_id: &str, now: Instant) {
        let Some(call) = self.calls.get_mut(call_id) else {
            return;
        };
        call.phase = Phase::Queued;
        let Some(agent) = call.callback.as_ref().map(|c| c.agent.clone()) else {
            return;
        };
        let _span = call.span.clone().entered();
        let bindings = self.registrar.lookup(&agent, now);
        if bindings.is_empty() {
            tracing::info!(agent, "agent has no contact; callback offer rejected");
            let request = self.acd_call_id(call_id);
            self.acd.offer_rejected(&request, &agent, now);
            self.discard_unanswered_callback(call_id);
            return;
        }
        let to = Uri::sip(
            Some(&agent),
            sip_message::Host::Domain(self.config.domain.clone()),
            None,
        );
        let targets = super::offer::contact_targets(&bindings);
        self.send_offer(call_id, &agent, to, targets, AttemptKind::Offer, now);
    }

    /// The agent answered a callback: it hears a short notice while the
    /// citizen is dialed.
    pub(super) fn callback_agent_answered(
        &mut self,
        call_id: &str,
        agent: &str,
        dialog: Dialog,
        answer: &SessionDescription,
        now: Instant,
    ) {
        let request = self.acd_call_id(call_id);
        let notice = self.config.prompts.callback_agent();
        let Some(call) = self.calls.get_mut(call_id) else {
            return;
        };
        call.phase = Phase::Dialing;
        call.agent_leg = Some(AgentLeg {
            agent: agent.to_owned(),
            dialog,
            forwarded: false,
            sdp: call.agent_offer(self.config.media_address),
        });
        let number = call.dialed.clone();
        self.commands.push_back(Command::SetPayloadTypes {
            call: call_id.to_owned(),
            side: Side::Agent,
            payload_types: crate::sdp::payload_types(answer),
        });
        if let Some(remote) = crate::sdp::remote_rtp(answer) {
            self.commands.push_back(Command::SetRemote {
                call: call_id.to_owned(),
                side: Side::Agent,
                addr: remote,
            });
        }
        // The two legs negotiate with the PBX separately, so the relay
        // learns each leg's codec and transcodes when they differ.
        if let Some(payload_type) = crate::sdp::voice_payload_type(answer) {
            self.commands.push_back(Command::SetCodecs {
                call: call_id.to_owned(),
                side: Side::Agent,
                payload_type,
                event_payload_type: crate::sdp::event_payload_type(answer),
            });
        }
        self.commands.push_back(Command::Play {
            call: call_id.to_owned(),
            side: Side::Agent,
            prompts: vec![notice],
            looped: false,
        });
        self.acd.offer_answered(&request, agent, now);
        tracing::info!(agent, "agent answered the callback; dialing the citizen");

        let mut targets = self.number_targets(&number, now);
        if !self.registrar.is_agent(&number) {
            // TODO: try the trunk's other servers on 503 or a timeout, as
            // forwarded calls do; a callback now dials the first one only.
            targets.truncate(1);
        }
        let Some(to) = targets.first().map(|first| first.uri.clone()) else {
            tracing::warn!(number, "nowhere to dial the citizen");
            self.citizen_failed(call_id, 404, now);
            return;
        };
        let label = format!("citizen:{number}");
        self.send_offer(call_id, &label, to, targets, AttemptKind::Citizen, now);
        self.set_deadline(call_id, now + CITIZEN_RING_LIMIT);
    }

    /// Early media of the citizen's phone or carrier reaches the agent.
    pub(super) fn citizen_early(&mut self, call_id: &str, response: &Response) {
        let Ok(sdp) = crate::sdp::parse(&response.body) else {
            return;
        };
        self.commands.push_back(Command::SetPayloadTypes {
            call: call_id.to_owned(),
            side: Side::Caller,
            payload_types: crate::sdp::payload_types(&sdp),
        });
        if let Some(remote) = crate::sdp::remote_rtp(&sdp) {
            self.commands.push_back(Command::SetRemote {
                call: call_id.to_owned(),
                side: Side::Caller,
                addr: remote,
            });
        }
    }

    /// Bridges and records the legs once the citizen answered; talk time
    /// starts here.
    pub(super) fn citizen_answered(
        &mut self,
        call_id: &str,
        dialog: Dialog,
        response: &Response,
        now: Instant,
    ) {
        let answer = match crate::sdp::parse(&response.body) {
            Ok(answer) => answer,
            Err(error) => {
                tracing::warn!(%error, "citizen answered without usable SDP; hanging up");
                let mut dialog = dialog;
                let bye = dialog.new_request(Method::Bye, &self.local);
                let key = self.transactions.send_request(bye, dialog.target, now);
                self.purposes.insert(key, Purpose::FireAndForget);
                self.citizen_failed(call_id, 488, now);
                return;
            }
        };
        self.cancel_deadline(call_id);
        let Some(call) = self.calls.get_mut(call_id) else {
            return;
        };
        call.caller.dialog = Some(dialog);
        call.phase = Phase::Talking;
        call.answered_at = Some(now);
        call.caller_answered_at = Some(now);
        tracing::info!("citizen answered the callback");
        let request = self.acd_call_id(call_id);
        self.acd.callback_connected(&request, now);
        self.commands.push_back(Command::SetPayloadTypes {
            call: call_id.to_owned(),
            side: Side::Caller,
            payload_types: crate::sdp::payload_types(&answer),
        });
        if let Some(remote) = crate::sdp::remote_rtp(&answer) {
            self.commands.push_back(Command::SetRemote {
                call: call_id.to_owned(),
                side: Side::Caller,
                addr: remote,
            });
        }
        if let Some(payload_type) = crate::sdp::voice_payload_type(&answer) {
            self.commands.push_back(Command::SetCodecs {
                call: call_id.to_owned(),
                side: Side::Caller,
                payload_type,
                event_payload_type: crate::sdp::event_payload_type(&answer),
            });
        }
        self.commands.push_back(Command::StopPlayback {
            call: call_id.to_owned(),
            side: Side::Agent,
        });
        if self.config.recording {
            let path = super::offer::recording_path(call_id, self.timestamp(now));
            if let Some(call) = self.calls.get_mut(call_id) {
                call.recording_path = Some(path.clone());
            }
            let mixed_mono_path = self
                .config
                .recording_mixed_mono
                .then(|| super::offer::mixed_mono_path(&path));
            self.commands.push_back(Command::StartRecording {
                call: call_id.to_owned(),
                path,
                mixed_mono_path,
                at: now,
            });
            self.watch_recording_code(call_id);
        }
        self.checkpoint(call_id, now);
    }

    /// Hangs up the agent, who goes to wrap-up, when the citizen did not
    /// answer (busy, rejected, unreachable, or rang too long). The ACD puts
    /// the request back for a later attempt, or ends it once its queue's
    /// attempts are used; this call's CDR records the failed attempt.
    pub(super) fn citizen_failed(&mut self, call_id: &str, status: u16, now: Instant) {
        let Some(call) = self.calls.get(call_id) else {
            return;
        };
        if call.phase != Phase::Dialing {
            return;
        }
        let _span = call.span.clone().entered();
        tracing::info!(status, "citizen not reached; callback ends");
        let agent = call.agent_leg.as_ref().map(|leg| leg.agent.clone());
        self.cancel_deadline(call_id);
        self.withdraw_offer(call_id, None, now);
        self.send_bye(call_id, Side::Agent, now);
        if agent.is_some() {
            let request = self.acd_call_id(call_id);
            self.acd
                .callback_not_reached(&request, failure_cause(status), now);
        }
        self.finish(
            call_id,
            cdr::Disposition::Failed,
            Some(status),
            Some(cdr::HangupSide::System),
            now,
        );
    }

    /// Ends a callback whose citizen rang for [`CITIZEN_RING_LIMIT`].
    pub(super) fn citizen_ring_out(&mut self, call_id: &str, now: Instant) {
        self.citizen_failed(call_id, 408, now);
    }

    /// Ends a callback whose agent hung up while the citizen's phone rang.
    pub(super) fn callback_agent_hung_up(&mut self, call_id: &str, now: Instant) {
        let Some(call) = self.calls.get(call_id) else {
            return;
        };
        let agent = call.agent_leg.as_ref().map(|leg| leg.agent.clone());
        self.cancel_deadline(call_id);
        self.withdraw_offer(call_id, None, now);
        if agent.is_some() {
            let request = self.acd_call_id(call_id);
            self.acd
                .callback_not_reached(&request, acd::CallbackFailure::AgentLeft, now);
        }
        self.finish(
            call_id,
            cdr::Disposition::Failed,
            Some(487),
            Some(cdr::HangupSide::Agent),
            now,
        );
    }

    /// Forgets a callback call whose agent did not answer: nothing reached
    /// the citizen, so it leaves no CDR; the ACD offers the request again.
    pub(super) fn discard_unanswered_callback(&mut self, call_id: &str) {
        let discard = self.calls.get(call_id).is_some_and(|call| {
            call.callback.is_some()
                && matches!(call.phase, Phase::OpeningMedia | Phase::Queued)
                && call.attempts.is_empty()
        });
        if !discard {
            return;
        }
        self.cancel_deadline(call_id);
        let Some(call) = self.calls.remove(call_id) else {
            return;
        };
        if let Some(callback) = &call.callback
            && self
                .callback_calls
                .get(&callback.request)
                .map(String::as_str)
                == Some(call_id)
        {
            self.callback_calls.remove(&callback.request);
        }
        self.unindex_sip_call_ids(call_id);
        if call.media.is_some() {
            self.commands.push_back(Command::CloseMedia {
                call: call_id.to_owned(),
            });
        }
    }

    /// Returns the id of `call_id` in the ACD: the request's for a callback
    /// call, else the same id.
    pub(super) fn acd_call_id(&self, call_id: &str) -> String {
        self.calls
            .get(call_id)
            .and_then(|call| call.callback.as_ref())
            .map_or_else(|| call_id.to_owned(), |callback| callback.request.clone())
    }

    /// The call that carries the ACD's call `acd_call`: the callback call
    /// placed for it, if any, else the call of that id.
    pub(super) fn call_for_acd(&self, acd_call: &str) -> String {
        self.callback_calls
            .get(acd_call)
            .cloned()
            .unwrap_or_else(|| acd_call.to_owned())
    }
}

/// Maps the final status of the INVITE to the citizen to the ACD's cause.
fn failure_cause(status: u16) -> acd::CallbackFailure {
    match status {
        486 | 600 | 603 => acd::CallbackFailure::Busy,
        408 | 480 | 487 => acd::CallbackFailure::NoAnswer,
        _ => acd::CallbackFailure::Unreachable,
    }
}

/// True when `number` looks like something a trunk can dial: digits with
/// an optional leading `+`, between 3 and 20 of them.
pub(super) fn is_dialable(number: &str) -> bool {
    let digits = number.strip_prefix('+').unwrap_or(number);
    (3..=20).contains(&digits.len()) && digits.bytes().all(|b| b.is_ascii_digit())
}

#[cfg(test)]
mod tests {
    use super::is_dialable;

    #[test]
    fn dialable_numbers_are_digits_with_an_optional_plus() {
        assert!(is_dialable("+15550100"));
        assert!(is_dialable("1001"));
        assert!(!is_dialable("anonymous"));
        assert!(!is_dialable("+"));
        assert!(!is_dialable("12"));
        assert!(!is_dialable("555 0100"));
        assert!(!is_dialable(&"1".repeat(21)));
    }
}
