//! Requests inside an answered call: BYE from either side, and re-INVITE,
//! UPDATE, INFO and the rest relayed to the other leg with SDP anchored.

use std::time::Instant;

use sip_message::{Method, Request, Response};

use super::call::{Phase, Side};
use super::{Command, Core, Purpose};
use crate::transaction::{TransactionKey, TransportKind};

/// Number of RTP timeouts a call on hold may stay silent before it ends.
/// A held call without music is silent by design, but one whose phones
/// vanished must still end.
pub(crate) const HOLD_TIMEOUT_FACTOR: u32 = 5;

/// How far the CSeq of a BYE after a crash jumps past the stored one.
const INTERRUPTED_CSEQ_STEP: u32 = 100;

impl Core {
    /// Finds the call and leg whose dialog `request` belongs to.
    fn dialog_of(&self, request: &Request) -> Option<(String, Side)> {
        let sip_call_id = request.headers.call_id()?;
        let call_id = self.by_sip_call_id.get(sip_call_id)?;
        let call = self.calls.get(call_id)?;
        [Side::Caller, Side::Agent]
            .into_iter()
            .find(|&side| {
                call.dialog(side)
                    .is_some_and(|d| d.matches_request(request))
            })
            .map(|side| (call_id.clone(), side))
    }

    pub(super) fn handle_in_dialog(&mut self, key: TransactionKey, request: Request, now: Instant) {
        let Some((call_id, side)) = self.dialog_of(&request) else {
            if !self.handle_referrer_request(&key, &request, now) {
                self.reply(&key, &request, 481, None, now);
            }
            return;
        };
        let span = self
            .calls
            .get(&call_id)
            .map(|c| c.span.clone())
            .unwrap_or_else(tracing::Span::none);
        let _span = span.entered();
        let seq = request.headers.cseq().map(|c| c.seq).unwrap_or_default();
        if let Some(dialog) = self
            .calls
            .get_mut(&call_id)
            .and_then(|c| c.dialog_mut(side))
        {
            if dialog.remote_cseq.is_some_and(|last| seq <= last) && request.method != Method::Ack {
                // Section 12.2.2: a lower CSeq is out of order.
                self.reply(&key, &request, 500, Some("CSeq Out of Order"), now);
                return;
            }
            dialog.remote_cseq = Some(seq);
        }
        if request.method == Method::Bye {
            let survey_agent = side == Side::Agent
                && self
                    .calls
                    .get(&call_id)
                    .is_some_and(|call| call.phase == Phase::Survey);
            if survey_agent {
                // A retransmission that outlived its transaction.
                self.reply(&key, &request, 481, None, now);
                return;
            }
            self.reply(&key, &request, 200, None, now);
            self.hang_up(&call_id, side, now);
            return;
        }
        if request.method == Method::Refer {
            self.handle_refer(&call_id, side, key, request, now);
            return;
        }
        if request.method == Method::Update && request.body.is_empty() {
            // A session refresh of this leg alone; the other leg has its
            // own session timer.
            self.answer_refresh_update(&call_id, side, &key, &request, now);
            return;
        }
        if matches!(request.method, Method::Invite | Method::Update)
            && self.refresh_reinvite_pending(&call_id) == Some(side)
        {
            // RFC 3261 section 14.2: the phone's offer crosses the PBX's
            // refresh re-INVITE on the same dialog.
            self.reply(&key, &request, 491, None, now);
            return;
        }
        if matches!(request.method, Method::Invite | Method::Update) {
            self.session_refreshed_by(&call_id, side, &request, now);
        }
        let phase = self.calls.get(&call_id).map(|call| call.phase);
        if phase == Some(Phase::Survey) && side == Side::Agent {
            // The agent's dialog ended with its BYE; the caller's goes on.
            self.reply(&key, &request, 481, None, now);
            return;
        }
        if phase == Some(Phase::Dialing) {
            // The agent of a callback while the citizen rings: there is no
            // other leg to take an offer yet.
            let status = match request.method {
                Method::Invite | Method::Update => 491,
                _ => 200,
            };
            self.reply(&key, &request, status, None, now);
            return;
        }
        if phase.is_some_and(|phase| phase != Phase::Talking) {
            self.handle_waiting_request(&call_id, key, request, now);
            return;
        }
        self.relay_request(&call_id, side, key, request, now);
    }

    /// A request from a caller the PBX answered to wait in a queue, where
    /// no agent leg exists to relay it to: the PBX answers it itself.
    fn handle_waiting_request(
        &mut self,
        call_id: &str,
        key: TransactionKey,
        request: Request,
        now: Instant,
    ) {
        match request.method {
            Method::Invite | Method::Update => {
                let offer = if request.body.is_empty() {
                    None
                } else {
                    match crate::sdp::narrow_offer(&request.body) {
                        Ok(offer) => Some(offer),
                        Err(error) => {
                            self.reply(&key, &request, 488, Some(&error.to_string()), now);
                            return;
                        }
                    }
                };
                if let Some(addr) = offer.as_ref().and_then(crate::sdp::remote_rtp) {
                    self.commands.push_back(Command::SetRemote {
                        call: call_id.to_owned(),
                        side: Side::Caller,
                        addr,
                    });
                }
                // A session refresh or a new address keeps the codec and
                // the relay port of the first answer; only a hold changes
                // its direction.
                let media_address = self.config.media_address;
                let Some(call) = self.calls.get_mut(call_id) else {
                    return;
                };
                let port = call.local_port(Side::Caller).unwrap_or_default();
                let mut first = call
                    .caller
                    .answer
                    .as_ref()
                    .and_then(|body| crate::sdp::parse(body).ok());
                let codec = first.as_ref().and_then(crate::sdp::voice_payload_type);
                let offer_keeps_codec = offer.as_ref().is_none_or(|offer| {
                    crate::sdp::payload_types(offer)
                        .iter()
                        .any(|pt| Some(*pt) == codec)
                        && crate::sdp::voice_payload_type(offer).is_some()
                });
                if !offer_keeps_codec && let Some(offer) = &offer {
                    // The caller dropped the codec in use: answer with one
                    // from the new offer, which the relay then plays in.
                    match crate::sdp::local_answer(offer, media_address, port) {
                        Ok(answer) => {
                            self.commands.push_back(Command::SetCodecs {
                                call: call_id.to_owned(),
                                side: Side::Caller,
                                payload_type: answer.payload_type,
                                event_payload_type: answer.event_payload_type,
                            });
                            first = Some(answer.sdp);
                        }
                        Err(error) => {
                            self.reply(&key, &request, 488, Some(&error.to_string()), now);
                            return;
                        }
                    }
                }
                if let Some(offer) = &offer {
                    self.commands.push_back(Command::SetPayloadTypes {
                        call: call_id.to_owned(),
                        side: Side::Caller,
                        payload_types: crate::sdp::payload_types(offer),
                    });
                }
                let Some(call) = self.calls.get_mut(call_id) else {
                    return;
                };
                let body = first.map(|mut answer| {
                    if let Some(offer) = &offer {
                        crate::sdp::mirror_direction(&mut answer, offer);
                    }
                    call.caller_origin.stamp(&answer, media_address, port)
                });
                if body.is_some() {
                    call.caller.answer.clone_from(&body);
                }
                let held = offer.as_ref().is_some_and(crate::sdp::is_hold);
                let hold_changed = offer.is_some() && held != call.on_hold;
                if offer.is_some() {
                    call.on_hold = held;
                }
                let mut response = Response::for_request(&request, 200, None);
                super::add_to_tag(&mut response, &call.caller.local_tag);
                response.headers.push(
                    "Contact",
                    self.local.contact(call.caller.source.transport).to_string(),
                );
                // An UPDATE without an offer gets no answer (RFC 3311); an
                // INVITE without one gets the PBX's offer.
                let send_sdp = request.method == Method::Invite || offer.is_some();
                if let Some(body) = body.filter(|_| send_sdp) {
                    response.headers.push("Content-Type", "application/sdp");
                    response.body = body;
                }
                if hold_changed && held {
                    // The caller does not want media now: the music pauses.
                    self.commands.push_back(Command::StopPlayback {
                        call: call_id.to_owned(),
                        side: Side::Caller,
                    });
                } else if hold_changed {
                    self.play_music(call_id);
                }
                if request.method == Method::Invite
                    && let Ok(cseq) = request.headers.cseq()
                {
                    let sip_call_id = request.headers.call_id().unwrap_or_default().to_owned();
                    self.awaiting_ack
                        .insert((sip_call_id, cseq.seq), key.clone());
                }
                self.transactions.send_response(&key, response, now);
            }
            Method::Info => match info_body(&request) {
                InfoBody::Malformed => {
                    self.reply(&key, &request, 400, Some("Invalid DTMF Body"), now);
                }
                InfoBody::Unsupported => {
                    // RFC 6086 section 4.2.2: a body the PBX does not use.
                    let mut response = Response::for_request(&request, 415, None);
                    response
                        .headers
                        .push("Accept", "application/dtmf-relay, application/dtmf");
                    self.transactions.send_response(&key, response, now);
                }
                InfoBody::Empty => self.reply(&key, &request, 200, None, now),
                InfoBody::Digit(digit) => {
                    self.reply(&key, &request, 200, None, now);
                    let notice = super::MediaNotice::Digit {
                        side: Side::Caller,
                        digit,
                    };
                    self.media_notice(call_id, notice, now);
                }
            },
            Method::Options => {
                let mut response = Response::for_request(&request, 200, None);
                response.headers.push("Allow", super::ALLOW);
                response.headers.push("Accept", "application/sdp");
                self.transactions.send_response(&key, response, now);
            }
            _ => self.reply(&key, &request, 501, None, now),
        }
    }

    /// Ends a call whose caller was answered to wait and leaves before an
    /// agent answered: no agent leg to hang up, the queue loses the call.
    pub(super) fn drop_waiting_caller(
        &mut self,
        call_id: &str,
        disposition: cdr::Disposition,
        hangup: cdr::HangupSide,
        now: Instant,
    ) {
        self.cancel_deadline(call_id);
        if self.calls.get(call_id).is_some_and(|call| {
            call.queued_at.is_some() && call.leaving.is_none() && call.voicemail.is_none()
        }) {
            self.acd.abandon(call_id, now);
        }
        self.withdraw_offer(call_id, None, now);
        self.finish(call_id, disposition, None, Some(hangup), now);
    }

    /// `side` hung up: send BYE to the other leg and end the call.
    pub(super) fn hang_up(&mut self, call_id: &str, side: Side, now: Instant) {
        tracing::info!(side = ?side, "hang-up");
        if self.transfer_ringing(call_id) {
            self.abandon_pending_transfer(call_id, now);
        }
        if self
            .calls
            .get(call_id)
            .is_some_and(|call| call.phase == Phase::Dialing)
        {
            // Only the agent has a dialog while the citizen rings.
            self.callback_agent_hung_up(call_id, now);
            return;
        }
        let phase = self.calls.get(call_id).map(|call| call.phase);
        if phase == Some(Phase::Survey) {
            if side == Side::Caller {
                self.survey_caller_hung_up(call_id, now);
            }
            return;
        }
        if side == Side::Agent && self.start_survey(call_id, now) {
            return;
        }
        if let Some(call) = self.calls.get(call_id)
            && call.phase != Phase::Talking
        {
            // Only a caller answered to wait has a dialog before an agent.
            let disposition = call
                .leaving
                .or_else(|| self.voicemail_disposition(call_id))
                .unwrap_or(cdr::Disposition::Abandoned);
            self.drop_waiting_caller(call_id, disposition, cdr::HangupSide::Caller, now);
            return;
        }
        self.send_bye(call_id, side.other(), now);
        if let Some(agent) = self
            .calls
            .get(call_id)
            .and_then(|c| c.agent_leg.as_ref())
            .filter(|l| !l.forwarded)
            .map(|l| l.agent.clone())
        {
            let party = match side {
                Side::Caller => acd::Party::Caller,
                Side::Agent => acd::Party::Agent,
            };
            self.acd.call_ended_by(&agent, party, now);
        }
        let hangup = match side {
            Side::Caller => cdr::HangupSide::Caller,
            Side::Agent => cdr::HangupSide::Agent,
        };
        self.finish(call_id, cdr::Disposition::Answered, None, Some(hangup), now);
    }

    pub(super) fn send_bye(&mut self, call_id: &str, side: Side, now: Instant) {
        let local = self.local.clone();
        let Some(dialog) = self.calls.get_mut(call_id).and_then(|c| c.dialog_mut(side)) else {
            return;
        };
        let bye = dialog.new_request(Method::Bye, &local);
        let target = dialog.target;
        let key = self.transactions.send_request(bye, target, now);
        self.purposes.insert(key, Purpose::FireAndForget);
    }

    pub(super) fn relay_request(
        &mut self,
        call_id: &str,
        origin: Side,
        key: TransactionKey,
        request: Request,
        now: Instant,
    ) {
        if request.method == Method::Invite
            && let Some(pending) = self.pending_reinvite(call_id)
        {
            // RFC 3261 section 14.2: an INVITE while the same side's
            // earlier one is unanswered gets 500 with Retry-After; one from
            // the other side crosses ours (glare) and gets 491.
            let status = if pending == origin { 500 } else { 491 };
            let mut response = Response::for_request(&request, status, None);
            if status == 500 {
                response
                    .headers
                    .push("Retry-After", rand::random_range(0..=10u32).to_string());
            }
            let tag = self
                .calls
                .get(call_id)
                .and_then(|c| c.dialog(origin))
                .map(|d| d.local_tag.clone());
            super::add_to_tag(&mut response, &tag.unwrap_or_default());
            self.transactions.send_response(&key, response, now);
            return;
        }
        if matches!(request.method, Method::Invite | Method::Update)
            && self.refresh_reinvite_pending(call_id) == Some(origin.other())
        {
            self.defer_relay(call_id, origin, key, request, now);
            return;
        }
        let local = self.local.clone();
        let media_address = self.config.media_address;
        let Some(call) = self.calls.get_mut(call_id) else {
            return;
        };
        let target_port = call.local_port(origin.other()).unwrap_or_default();
        let Some(dialog) = call.dialog_mut(origin.other()) else {
            self.reply(&key, &request, 491, None, now);
            return;
        };
        let mut relayed = dialog.new_request(request.method.clone(), &local);
        let target = dialog.target;
        let mut remote = None;
        let mut hold = None;
        if !request.body.is_empty() {
            let is_sdp = request
                .headers
                .content_type()
                .is_some_and(|t| t.eq_ignore_ascii_case("application/sdp"));
            if is_sdp {
                let checked = if matches!(request.method, Method::Invite | Method::Update) {
                    crate::sdp::narrow_reoffer(&request.body)
                } else {
                    crate::sdp::parse(&request.body).and_then(crate::sdp::check_transport)
                };
                match checked {
                    Ok(sdp) => {
                        remote = crate::sdp::remote_rtp(&sdp);
                        hold = Some(crate::sdp::is_hold(&sdp));
                        relayed.body = match origin.other() {
                            Side::Caller => {
                                call.caller_origin.stamp(&sdp, media_address, target_port)
                            }
                            Side::Agent => crate::sdp::anchored(&sdp, media_address, target_port),
                        };
                        if let (Side::Agent, Some(leg)) = (origin.other(), call.agent_leg.as_mut())
                        {
                            leg.sdp = relayed.body.clone();
                        }
                    }
                    Err(error) => {
                        self.reply(&key, &request, 488, Some(&error.to_string()), now);
                        return;
                    }
                }
            } else {
                relayed.body = request.body.clone();
            }
            if let Some(content_type) = request.headers.content_type() {
                relayed
                    .headers
                    .push("Content-Type", content_type.to_owned());
            }
        }
        if let (Some(hold), Some(call)) = (hold, self.calls.get_mut(call_id)) {
            call.on_hold = hold;
        }
        if let Some(addr) = remote {
            self.commands.push_back(Command::SetRemote {
                call: call_id.to_owned(),
                side: origin,
                addr,
            });
        }
        tracing::debug!(method = %request.method, from = ?origin, "relaying in-dialog request");
        let client_key = self.transactions.send_request(relayed, target, now);
        self.purposes.insert(
            client_key,
            Purpose::Relay {
                call: call_id.to_owned(),
                server_key: key,
                request: Box::new(request),
                origin,
            },
        );
    }

    /// Returns the side whose re-INVITE on `call_id` still waits for its
    /// final response, if any.
    fn pending_reinvite(&self, call_id: &str) -> Option<Side> {
        self.purposes.values().find_map(|purpose| match purpose {
            Purpose::Relay {
                call,
                request,
                origin,
                ..
            } if call == call_id && request.method == Method::Invite => Some(*origin),
            _ => None,
        })
    }

    /// Final response from the leg a request was relayed to: answer the
    /// originating leg with the same status.
    pub(super) fn relay_response(
        &mut self,
        call_id: &str,
        server_key: &TransactionKey,
        request: &Request,
        origin: Side,
        response: Response,
        now: Instant,
    ) {
        let mut reply = Response::for_request(request, response.status, Some(&response.reason));
        let Some(call) = self.calls.get(call_id) else {
            self.transactions.send_response(server_key, reply, now);
            return;
        };
        let origin_port = call.local_port(origin).unwrap_or_default();
        let local_tag = call
            .dialog(origin)
            .map(|d| d.local_tag.clone())
            .unwrap_or_default();
        super::add_to_tag(&mut reply, &local_tag);
        let success = (200..300).contains(&response.status);
        if success && matches!(request.method, Method::Invite | Method::Update) {
            self.add_refresh_headers(call_id, origin, &mut reply);
        }
        if success && request.method == Method::Invite {
            let transport = call
                .dialog(origin)
                .map_or(TransportKind::Udp, |dialog| dialog.target.transport);
            reply
                .headers
                .push("Contact", self.local.contact(transport).to_string());
            // The other leg's 2xx is ACKed at once; the originator's ACK
            // is absorbed when it arrives.
            self.ack_other_leg(call_id, origin.other(), &response);
            if let Some(seq) = request.headers.cseq().ok().map(|c| c.seq) {
                let sip_call_id = request.headers.call_id().unwrap_or_default().to_owned();
                self.awaiting_ack
                    .insert((sip_call_id, seq), server_key.clone());
            }
        }
        if !response.body.is_empty()
            && let Ok(mut sdp) = crate::sdp::parse(&response.body)
        {
            // RFC 3264 section 6: a stream the offer disabled stays disabled
            // in the answer, whatever the other leg answered.
            let offered = crate::sdp::parse(&request.body).ok();
            if offered.as_ref().is_some_and(crate::sdp::audio_disabled)
                && let Some(audio) = sdp.first_audio()
            {
                sdp.media[audio].port = 0;
            }
            if let Some(addr) = crate::sdp::remote_rtp(&sdp) {
                self.commands.push_back(Command::SetRemote {
                    call: call_id.to_owned(),
                    side: origin.other(),
                    addr,
                });
            }
            reply.headers.push("Content-Type", "application/sdp");
            let media_address = self.config.media_address;
            reply.body = match (origin, self.calls.get_mut(call_id)) {
                (Side::Caller, Some(call)) => {
                    call.caller_origin.stamp(&sdp, media_address, origin_port)
                }
                (Side::Agent, Some(call)) => {
                    let body = crate::sdp::anchored(&sdp, media_address, origin_port);
                    if let Some(leg) = call.agent_leg.as_mut() {
                        leg.sdp = body.clone();
                    }
                    body
                }
                (_, None) => crate::sdp::anchored(&sdp, media_address, origin_port),
            };
        }
        self.transactions.send_response(server_key, reply, now);
        if success && matches!(request.method, Method::Invite | Method::Update) {
            // The relayed request refreshed the other leg's session too.
            self.restart_session(call_id, origin.other(), now);
            self.offer_accepted(call_id, origin, request, now);
        }
        // RFC 5057 section 5.1: a 481, or a 408 that no response at all
        // became, means the far leg's dialog is gone, so nothing would ever
        // end the call (a held call sends no RTP to time out on).
        if matches!(response.status, 408 | 481) && request.method != Method::Bye {
            tracing::warn!(
                status = response.status,
                method = %request.method,
                "the other leg no longer has the dialog; ending the call"
            );
            self.hang_up(call_id, origin.other(), now);
        }
    }

    fn ack_other_leg(&mut self, call_id: &str, side: Side, response: &Response) {
        let Some(dialog) = self.calls.get(call_id).and_then(|c| c.dialog(side)) else {
            return;
        };
        let seq = response
            .headers
            .cseq()
            .map(|c| c.seq)
            .unwrap_or(dialog.local_cseq);
        let ack = dialog.ack(seq, &self.local);
        let target = dialog.target;
        self.transactions
            .send_stateless(sip_message::Message::Request(ack), target);
    }

    /// Handles an ACK outside any transaction, which acknowledges a 2xx the
    /// PBX sent.
    pub(super) fn handle_ack(&mut self, request: Request, now: Instant) {
        let Some(sip_call_id) = request.headers.call_id() else {
            return;
        };
        let Ok(cseq) = request.headers.cseq() else {
            return;
        };
        if let Some(key) = self
            .awaiting_ack
            .remove(&(sip_call_id.to_owned(), cseq.seq))
        {
            self.transactions.ack_received(&key);
            self.end_feature_call(sip_call_id, cseq.seq, now);
            self.caller_answer_in_ack(sip_call_id, &request, now);
            if let Some(call_id) = self.by_sip_call_id.get(sip_call_id).cloned() {
                self.ring_parked_offers(&call_id, now);
            }
        }
    }

    /// Ends a call whose caller never acknowledged the PBX's 2xx.
    pub(super) fn handle_ack_timeout(&mut self, key: TransactionKey, now: Instant) {
        let unacknowledged: Vec<(String, u32)> = self
            .awaiting_ack
            .iter()
            .filter(|(_, waiting)| **waiting == key)
            .map(|(dialog, _)| dialog.clone())
            .collect();
        self.awaiting_ack.retain(|_, waiting| *waiting != key);
        for (sip_call_id, seq) in unacknowledged {
            self.end_feature_call(&sip_call_id, seq, now);
        }
        let call_id = self
            .calls
            .values()
            .find(|c| {
                c.caller.invite_key.as_ref() == Some(&key)
                    && (c.phase == Phase::Talking || c.caller.answer.is_some())
            })
            .map(|c| c.id.clone());
        let Some(call_id) = call_id else { return };
        if self
            .calls
            .get(&call_id)
            .is_some_and(|c| c.phase != Phase::Talking)
        {
            tracing::warn!(
                call = call_id,
                "waiting caller never acknowledged the answer; ending the call"
            );
            self.send_bye(&call_id, Side::Caller, now);
            self.drop_waiting_caller(
                &call_id,
                cdr::Disposition::Failed,
                cdr::HangupSide::System,
                now,
            );
            return;
        }
        if let Some(call) = self.calls.get(&call_id) {
            let _span = call.span.clone().entered();
            tracing::warn!("caller never acknowledged the answer; ending the call");
            // Without the ACK the call was never established for the caller.
        }
        self.send_bye(&call_id, Side::Caller, now);
        self.send_bye(&call_id, Side::Agent, now);
        if let Some(agent) = self
            .calls
            .get(&call_id)
            .and_then(|c| c.agent_leg.as_ref())
            .filter(|l| !l.forwarded)
            .map(|l| l.agent.clone())
        {
            self.acd.call_ended(&agent, now);
        }
        self.finish(
            &call_id,
            cdr::Disposition::Failed,
            None,
            Some(cdr::HangupSide::System),
            now,
        );
    }

    /// Sends BYE on the dialogs of calls an earlier run left up when it
    /// died, so the citizen and the agent are not left in silence until
    /// their own timers end the call. The CSeq jumps past the stored one,
    /// because requests relayed after the last checkpoint (a hold, say)
    /// used the numbers right after it.
    pub fn end_interrupted_dialogs(&mut self, legs: &crate::dialog::StoredLegs, now: Instant) {
        for stored in &legs.ringing {
            let Some((cancel, target)) = stored.to_request() else {
                tracing::warn!("stored CANCEL does not parse; a phone may ring on");
                continue;
            };
            tracing::info!(target = %target.addr, "cancelling an INVITE left ringing by the last stop");
            let key = self.transactions.send_request(cancel, target, now);
            self.purposes.insert(key, Purpose::FireAndForget);
        }
        for stored in &legs.dialogs {
            let Some(mut dialog) = stored.to_dialog() else {
                tracing::warn!(
                    call_id = stored.call_id,
                    "stored dialog does not parse; no BYE sent"
                );
                continue;
            };
            dialog.local_cseq = dialog.local_cseq.saturating_add(INTERRUPTED_CSEQ_STEP);
            let bye = dialog.new_request(Method::Bye, &self.local);
            tracing::info!(call_id = stored.call_id, target = %dialog.target.addr, "hanging up a leg left by the last stop");
            let key = self.transactions.send_request(bye, dialog.target, now);
            self.purposes.insert(key, Purpose::FireAndForget);
        }
        self.process(now);
    }

    /// Ends every call because the PBX is stopping: answered calls get BYE
    /// on both legs, waiting callers 503, and each call its CDR. Then it
    /// unregisters every registered trunk.
    pub fn shutdown(&mut self, now: Instant) {
        // Written by the `process` below, before the store closes.
        self.registrar.report_refreshes();
        let ids: Vec<String> = self.calls.keys().cloned().collect();
        for call_id in ids {
            self.end_by_system(&call_id, "Service Shutting Down", now);
        }
        self.unregister_trunks(now);
    }

    /// Ends `call_id` because its media relay is gone (a relay worker
    /// exited): neither leg would hear the other again, so the call ends
    /// at once, as at a stop, rather than after the RTP timeout.
    pub fn media_lost(&mut self, call_id: &str, now: Instant) {
        let Some(call) = self.calls.get(call_id) else {
            return;
        };
        {
            let _span = call.span.clone().entered();
            tracing::error!("media relay lost; ending the call");
        }
        self.end_by_system(call_id, "Media Relay Failed", now);
        self.process(now);
    }

    /// Ends `call_id` on the PBX's own account: answered legs get BYE, a
    /// caller not yet answered a 503 with `reason`, and the call its CDR.
    fn end_by_system(&mut self, call_id: &str, reason: &'static str, now: Instant) {
        let call_id = call_id.to_owned();
        let callback_phase = self
            .calls
            .get(&call_id)
            .filter(|c| c.callback.is_some())
            .map(|c| c.phase);
        match callback_phase {
            Some(Phase::Dialing) => {
                self.citizen_failed(&call_id, 503, now);
                return;
            }
            Some(Phase::OpeningMedia | Phase::Queued) => {
                self.withdraw_offer(&call_id, None, now);
                self.discard_unanswered_callback(&call_id);
                return;
            }
            Some(Phase::Talking | Phase::Survey) | None => {}
        }
        if self
            .calls
            .get(&call_id)
            .is_some_and(|c| c.phase == Phase::Survey)
        {
            self.interrupt_survey(&call_id, now);
            return;
        }
        let talking = self
            .calls
            .get(&call_id)
            .is_some_and(|c| c.phase == Phase::Talking);
        let answered_waiting = self
            .calls
            .get(&call_id)
            .is_some_and(|c| !talking && c.caller.answer.is_some());
        if answered_waiting {
            self.send_bye(&call_id, Side::Caller, now);
            let disposition = self
                .calls
                .get(&call_id)
                .and_then(|c| c.leaving)
                .or_else(|| self.voicemail_disposition(&call_id))
                .unwrap_or(cdr::Disposition::Failed);
            self.drop_waiting_caller(&call_id, disposition, cdr::HangupSide::System, now);
            return;
        }
        if !talking {
            self.fail_call(&call_id, 503, reason, cdr::Disposition::Failed, now);
            return;
        }
        self.send_bye(&call_id, Side::Caller, now);
        self.send_bye(&call_id, Side::Agent, now);
        self.finish(
            &call_id,
            cdr::Disposition::Answered,
            None,
            Some(cdr::HangupSide::System),
            now,
        );
    }

    /// Ends the answered call `call_id` when no RTP came from either leg
    /// for `timeout` since `last_packet` (or since the answer, whichever is
    /// later): a phone lost power or its network. A call on hold, where
    /// silence is expected, gets [`HOLD_TIMEOUT_FACTOR`] times as long.
    pub fn media_silent(
        &mut self,
        call_id: &str,
        last_packet: Option<Instant>,
        timeout: std::time::Duration,
        now: Instant,
    ) {
        let Some(call) = self.calls.get(call_id) else {
            return;
        };
        let Some(answered) = call.answered_at else {
            return;
        };
        let silent_since = last_packet.map_or(answered, |last| last.max(answered));
        let allowed = if call.on_hold {
            timeout * HOLD_TIMEOUT_FACTOR
        } else {
            timeout
        };
        if call.phase != Phase::Talking || now.saturating_duration_since(silent_since) < allowed {
            return;
        }
        {
            let _span = call.span.clone().entered();
            tracing::warn!("no RTP from either side; ending the call");
        }
        self.send_bye(call_id, Side::Caller, now);
        self.send_bye(call_id, Side::Agent, now);
        if let Some(agent) = self
            .calls
            .get(call_id)
            .and_then(|c| c.agent_leg.as_ref())
            .filter(|l| !l.forwarded)
            .map(|l| l.agent.clone())
        {
            self.acd.call_ended(&agent, now);
        }
        self.finish(
            call_id,
            cdr::Disposition::Answered,
            None,
            Some(cdr::HangupSide::System),
            now,
        );
        self.process(now);
    }
}

/// Content of an INFO request from a waiting caller.
enum InfoBody {
    /// A DTMF key, from `application/dtmf-relay` (`Signal=5`) or
    /// `application/dtmf` (`5`).
    Digit(char),
    /// A DTMF content type whose body names no key.
    Malformed,
    /// A body of another type.
    Unsupported,
    /// No body, as in a keepalive.
    Empty,
}

/// Classifies the body of an INFO request.
fn info_body(request: &Request) -> InfoBody {
    if request.body.is_empty() {
        return InfoBody::Empty;
    }
    let content_type = request
        .headers
        .content_type()
        .unwrap_or_default()
        .to_ascii_lowercase();
    let body = String::from_utf8_lossy(&request.body);
    let value = match content_type.split(';').next().unwrap_or_default().trim() {
        "application/dtmf-relay" => body.lines().find_map(|line| {
            let (name, value) = line.split_once('=')?;
            name.trim()
                .eq_ignore_ascii_case("signal")
                .then(|| value.trim().to_owned())
        }),
        "application/dtmf" => Some(body.trim().to_owned()),
        _ => return InfoBody::Unsupported,
    };
    value
        .as_deref()
        .and_then(dtmf_key)
        .map_or(InfoBody::Malformed, InfoBody::Digit)
}

/// Returns the DTMF key a relay body names.
fn dtmf_key(value: &str) -> Option<char> {
    // Some gateways send the RFC 4733 event number: 10 for *, 11 for #.
    match value {
        "10" => return Some('*'),
        "11" => return Some('#'),
        _ => {}
    }
    let mut chars = value.chars();
    let digit = chars.next()?.to_ascii_uppercase();
    let valid = chars.next().is_none() && matches!(digit, '0'..='9' | '*' | '#' | 'A'..='D');
    valid.then_some(digit)
}
