//! Offering a queued call to an agent: the agent leg INVITE, forked to
//! every contact of the agent, and what its responses do to the call.

use std::time::Instant;

use sip_message::{Method, NameAddr, Request, Response, Uri};

use super::call::{AgentLeg, Attempt, AttemptKind, Branch, Phase, Side};
use super::{Command, Core, Purpose};
use crate::dialog::{Dialog, random_token};

impl Core {
    pub(super) fn start_offer(&mut self, call_id: &str, agent: &str, now: Instant) {
        let bindings = self.registrar.lookup(agent, now);
        let Some(call) = self.calls.get(call_id) else {
            self.acd.offer_rejected(call_id, agent, now);
            return;
        };
        let _span = call.span.clone().entered();
        if call.local_port(Side::Agent).is_none() {
            self.acd.offer_rejected(call_id, agent, now);
            return;
        }
        if bindings.is_empty() {
            tracing::info!(agent, "agent has no contact; offer rejected");
            self.acd.offer_rejected(call_id, agent, now);
            return;
        }
        if self.caller_ack_pending(call_id) {
            // A caller answered for music that never acknowledges its 200
            // is gone at Timer H; its agent's phone must not ring for it.
            // NOTE: the ACD counts the agent as ringing meanwhile, so a
            // missing ACK can cost the agent a ring timeout.
            tracing::debug!(agent, "offer waits for the caller's ACK");
            if let Some(call) = self.calls.get_mut(call_id) {
                call.parked_offers.push(agent.to_owned());
            }
            return;
        }
        tracing::info!(agent, contacts = bindings.len(), "offering call to agent");
        let to = Uri::sip(
            Some(agent),
            sip_message::Host::Domain(self.config.domain.clone()),
            None,
        );
        let targets = contact_targets(&bindings);
        self.send_offer(call_id, agent, to, targets, AttemptKind::Offer, now);
    }

    /// True while the PBX's 200 to a caller it answered to wait has not
    /// been acknowledged.
    fn caller_ack_pending(&self, call_id: &str) -> bool {
        let Some(call) = self.calls.get(call_id) else {
            return false;
        };
        let invite = &call.caller.invite;
        let (Some(sip_call_id), Ok(cseq)) = (invite.headers.call_id(), invite.headers.cseq())
        else {
            return false;
        };
        call.phase != Phase::Talking
            && call.caller.answer.is_some()
            && self
                .awaiting_ack
                .contains_key(&(sip_call_id.to_owned(), cseq.seq))
    }

    /// Rings the agents whose offers of `call_id` waited for the caller's
    /// ACK, which has arrived.
    pub(super) fn ring_parked_offers(&mut self, call_id: &str, now: Instant) {
        let Some(call) = self.calls.get_mut(call_id) else {
            return;
        };
        for agent in std::mem::take(&mut call.parked_offers) {
            self.start_offer(call_id, &agent, now);
        }
    }

    /// Sends the INVITE of one attempt to every target and records the
    /// attempt under `label`. Agents and
    /// forwarded numbers see the caller's identity and get the relay's
    /// agent side; a citizen called back sees the number it once dialed and
    /// gets the caller side.
    pub(super) fn send_offer(
        &mut self,
        call_id: &str,
        label: &str,
        to: Uri,
        targets: Vec<OfferTarget>,
        kind: AttemptKind,
        now: Instant,
    ) {
        let media_address = self.config.media_address;
        let Some(call) = self.calls.get_mut(call_id) else {
            return;
        };
        let side = match kind {
            AttemptKind::Citizen => Side::Caller,
            AttemptKind::Offer
            | AttemptKind::Forward(_)
            | AttemptKind::Transfer(_)
            | AttemptKind::Extension(_) => Side::Agent,
        };
        let Some(port) = call.local_port(side) else {
            return;
        };
        // The citizen's leg carries the PBX's own session from the start,
        // so later offers on it continue the same o= line.
        let sdp = if kind == AttemptKind::Citizen {
            let offer = call.offer.clone();
            call.caller_origin.stamp(&offer, media_address, port)
        } else {
            call.agent_offer(media_address)
        };
        let call = &*call;
        let (sip_call_id, from, context) = if kind == AttemptKind::Citizen {
            let invite = &call.caller.invite;
            let sip_call_id = invite.headers.call_id().unwrap_or_default().to_owned();
            let from = invite.headers.from().ok().map(|from| from.to_string());
            // Queue names and product ids stay inside the centre.
            (sip_call_id, from.unwrap_or_default(), None)
        } else {
            let caller_display = call
                .caller
                .invite
                .headers
                .from()
                .ok()
                .and_then(|f| f.display_name);
            let mut from = NameAddr::new(Uri::sip(
                Some(&call.caller_number),
                sip_message::Host::Domain(self.config.domain.clone()),
                None,
            ));
            from.display_name = caller_display
                .map(|name| super::setup::limit_chars(&name, super::setup::MAX_IDENTITY_CHARS));
            from.set_tag(&random_token());
            let sip_call_id = format!("{}@{}", random_token(), self.config.sip_address.ip());
            let context = (call.id.clone(), call.queue.clone(), call.callback.is_some());
            (sip_call_id, from.to_string(), Some(context))
        };
        let to = NameAddr::new(to);
        // The agent leg inherits the caller's hop budget, so a contact that
        // points back at the PBX ends in 483 rather than looping.
        let max_forwards = match call.caller.invite.headers.max_forwards() {
            Ok(Some(hops)) => hops.saturating_sub(1),
            _ => 70,
        };

        let attempt_id = self.next_attempt;
        self.next_attempt += 1;
        let mut branches = Vec::new();
        for (index, offer_target) in targets.into_iter().enumerate() {
            let OfferTarget { uri, target, route } = offer_target;
            let mut request = Request::new(Method::Invite, uri);
            request.headers.push("Via", self.new_target_via(&target));
            request
                .headers
                .push("Max-Forwards", max_forwards.to_string());
            for hop in route {
                request.headers.push("Route", hop);
            }
            request.headers.push("From", from.clone());
            request.headers.push("To", to.to_string());
            request.headers.push("Call-ID", sip_call_id.clone());
            request.headers.push("CSeq", "1 INVITE");
            request
                .headers
                .push("Contact", self.local.contact(target.transport).to_string());
            request.headers.push("Allow", super::ALLOW);
            request.headers.push("Supported", super::SUPPORTED);
            self.session_offer_headers(&mut request);
            // Call context for the agent's phone or CRM.
            if let Some((product_id, queue, callback)) = &context {
                request.headers.push("X-Call-ID", product_id.clone());
                // A call between extensions has no queue to name.
                if !queue.is_empty() {
                    request.headers.push("X-Queue", queue.clone());
                }
                if *callback {
                    request.headers.push("X-Callback", "yes");
                }
            }
            request.headers.push("Content-Type", "application/sdp");
            request.body = sdp.clone();
            let key = self.transactions.send_request(request.clone(), target, now);
            self.purposes.insert(
                key.clone(),
                Purpose::AgentInvite {
                    attempt: attempt_id,
                    branch: index,
                },
            );
            branches.push(Branch {
                key,
                request,
                target,
                provisional: false,
                cancel_wanted: false,
                cancel_sent: false,
                finished: false,
                early: None,
            });
        }
        self.attempts.insert(
            attempt_id,
            Attempt {
                call: call_id.to_owned(),
                agent: label.to_owned(),
                branches,
                withdrawn: false,
                answered: false,
                kind,
            },
        );
        self.index_sip_call_id(sip_call_id, call_id);
        if let Some(call) = self.calls.get_mut(call_id) {
            call.attempts.insert(label.to_owned(), attempt_id);
        }
        // A crash from now on leaves a phone ringing unless the next start
        // can CANCEL it.
        self.checkpoint(call_id, now);
    }

    /// Stops ringing `agent` for `call_id`, or every agent when `agent` is
    /// None.
    pub(super) fn withdraw_offer(&mut self, call_id: &str, agent: Option<&str>, now: Instant) {
        let Some(call) = self.calls.get_mut(call_id) else {
            return;
        };
        call.parked_offers
            .retain(|parked| agent.is_some_and(|agent| agent != parked));
        let withdrawn: Vec<u64> = match agent {
            Some(agent) => call.attempts.remove(agent).into_iter().collect(),
            None => call.attempts.drain().map(|(_, id)| id).collect(),
        };
        // The relay forgets the agent side only when nobody rings any more,
        // so early media of another ringing agent keeps flowing.
        if !withdrawn.is_empty() && call.attempts.is_empty() && call.media.is_some() {
            self.commands.push_back(Command::ResetLeg {
                call: call_id.to_owned(),
                side: Side::Agent,
            });
        }
        for attempt_id in withdrawn {
            if let Some(attempt) = self.attempts.get_mut(&attempt_id) {
                attempt.withdrawn = true;
            }
            self.cancel_branches(attempt_id, None, now);
        }
    }

    /// Drops the finished attempts of an ended call and the transaction
    /// purposes that kept their 2xx retransmissions answered.
    pub(super) fn forget_finished_attempts(&mut self, call_id: &str) {
        let finished: Vec<u64> = self
            .attempts
            .iter()
            .filter(|(_, attempt)| attempt.call == call_id && attempt.all_finished())
            .map(|(id, _)| *id)
            .collect();
        for attempt_id in finished {
            if let Some(attempt) = self.attempts.remove(&attempt_id) {
                for branch in attempt.branches {
                    self.purposes.remove(&branch.key);
                }
            }
        }
    }

    /// Sends CANCEL on every unfinished branch except `keep`; a branch with
    /// no provisional response yet gets it when one arrives.
    fn cancel_branches(&mut self, attempt_id: u64, keep: Option<usize>, now: Instant) {
        let Some(attempt) = self.attempts.get_mut(&attempt_id) else {
            return;
        };
        let mut cancels = Vec::new();
        for (index, branch) in attempt.branches.iter_mut().enumerate() {
            if Some(index) == keep || branch.finished || branch.cancel_sent {
                continue;
            }
            branch.cancel_wanted = true;
            if branch.provisional {
                branch.cancel_sent = true;
                cancels.push((cancel_for(&branch.request), branch.target));
            }
        }
        for (cancel, target) in cancels {
            let key = self.transactions.send_request(cancel, target, now);
            self.purposes.insert(key, Purpose::FireAndForget);
        }
    }

    pub(super) fn handle_agent_response(
        &mut self,
        attempt_id: u64,
        branch_index: usize,
        response: Response,
        now: Instant,
    ) {
        let Some(attempt) = self.attempts.get_mut(&attempt_id) else {
            return;
        };
        let Some(branch) = attempt.branches.get_mut(branch_index) else {
            return;
        };
        let status = response.status;
        let call_id = attempt.call.clone();
        let agent = attempt.agent.clone();
        let span = self
            .calls
            .get(&call_id)
            .map(|c| c.span.clone())
            .unwrap_or_else(tracing::Span::none);
        let _span = span.entered();

        if status < 200 {
            branch.provisional = true;
            let cancel = (branch.cancel_wanted && !branch.cancel_sent)
                .then(|| (cancel_for(&branch.request), branch.target));
            let relay = !attempt.withdrawn && status > 100;
            let citizen = attempt.kind == AttemptKind::Citizen;
            // A withdrawn branch still gets its PRACK, so that the phone
            // does not retransmit its 18x until the CANCEL lands.
            let fresh = self.prack_agent_branch(attempt_id, branch_index, &response, now);
            if let Some((cancel, target)) = cancel {
                if let Some(branch) = self
                    .attempts
                    .get_mut(&attempt_id)
                    .and_then(|attempt| attempt.branches.get_mut(branch_index))
                {
                    branch.cancel_sent = true;
                }
                let key = self.transactions.send_request(cancel, target, now);
                self.purposes.insert(key, Purpose::FireAndForget);
                return;
            }
            if relay && fresh {
                tracing::debug!(agent, status, "agent is ringing");
                if citizen {
                    self.citizen_early(&call_id, &response);
                } else {
                    self.relay_early(&call_id, &response, now);
                }
            }
            return;
        }

        if status == 422 && self.retry_with_min_se(attempt_id, branch_index, &response, now) {
            return;
        }
        let Some(attempt) = self.attempts.get_mut(&attempt_id) else {
            return;
        };
        let Some(branch) = attempt.branches.get_mut(branch_index) else {
            return;
        };
        if status >= 300 {
            branch.finished = true;
            let key = branch.key.clone();
            self.purposes.remove(&key);
            let all_finished = attempt.all_finished();
            let still_current = !attempt.withdrawn && !attempt.answered;
            let kind = attempt.kind.clone();
            if all_finished {
                self.attempts.remove(&attempt_id);
            }
            if still_current && all_finished {
                tracing::info!(agent, status, "agent did not take the call");
                if let Some(call) = self.calls.get_mut(&call_id) {
                    call.attempts.remove(&agent);
                    if call.attempts.is_empty()
                        && call.media.is_some()
                        && kind != AttemptKind::Citizen
                    {
                        self.commands.push_back(Command::ResetLeg {
                            call: call_id.clone(),
                            side: Side::Agent,
                        });
                    }
                }
                // Busy Here and Busy Everywhere mean the phone is in use;
                // anything else counts as the agent not taking the call.
                let request = self.acd_call_id(&call_id);
                match kind {
                    AttemptKind::Forward(_) => self.forward_attempt_failed(&call_id, status, now),
                    AttemptKind::Citizen => self.citizen_failed(&call_id, status, now),
                    AttemptKind::Transfer(_) => {
                        let reason = response.reason.clone();
                        self.transfer_failed(&call_id, status, &reason, now);
                    }
                    AttemptKind::Extension(_) => {
                        let reason = response.reason.clone();
                        self.extension_failed(&call_id, status, &reason, now);
                    }
                    AttemptKind::Offer if matches!(status, 486 | 600) => {
                        self.acd.offer_busy(&request, &agent, now);
                    }
                    AttemptKind::Offer => self.acd.offer_rejected(&request, &agent, now),
                }
                self.discard_unanswered_callback(&call_id);
            }
            return;
        }

        // 2xx: every one is ACKed, including retransmissions and answers
        // from branches that lost the race; only the first one wins.
        let request = branch.request.clone();
        let target = branch.target;
        let first_answer = !branch.finished;
        branch.finished = true;
        let early_cseq = branch
            .early
            .as_ref()
            .filter(|early| {
                let tag = response
                    .headers
                    .to()
                    .ok()
                    .and_then(|to| to.tag().map(str::to_owned));
                tag.as_deref() == Some(early.dialog.remote_tag.as_str())
            })
            .map(|early| early.dialog.local_cseq);
        let Some(mut dialog) = Dialog::from_uac(&request, &response, target) else {
            tracing::warn!(agent, "2xx from agent without usable To tag or Contact");
            return;
        };
        let seq = dialog.local_cseq;
        let ack = dialog.ack(seq, &self.local);
        // PRACKs in the early dialog used CSeq numbers after the INVITE's;
        // the confirmed dialog goes on from there.
        if let Some(early_cseq) = early_cseq {
            dialog.local_cseq = dialog.local_cseq.max(early_cseq);
        }
        self.transactions
            .send_stateless(sip_message::Message::Request(ack), target);
        if !first_answer {
            return;
        }
        let talking = self
            .calls
            .get(&call_id)
            .is_some_and(|c| c.phase == Phase::Talking);
        let Some(attempt) = self.attempts.get_mut(&attempt_id) else {
            return;
        };
        // A transfer target answers a call that is already talking.
        let transfer = match &attempt.kind {
            AttemptKind::Transfer(target) => Some(target.clone()),
            _ => None,
        };
        let wins = !attempt.withdrawn && !attempt.answered && (!talking || transfer.is_some());
        let citizen = attempt.kind == AttemptKind::Citizen;
        if !wins {
            tracing::info!(
                agent,
                "late answer from agent after the offer ended; hanging up"
            );
            let bye = dialog.new_request(Method::Bye, &self.local);
            let key = self.transactions.send_request(bye, target, now);
            self.purposes.insert(key, Purpose::FireAndForget);
            return;
        }
        attempt.answered = true;
        // Neither leg is an ACD offer, so the ACD hears nothing of its end.
        let forwarded = matches!(
            attempt.kind,
            AttemptKind::Forward(_) | AttemptKind::Extension(_)
        );
        self.cancel_branches(attempt_id, Some(branch_index), now);
        if let Some(target) = transfer {
            self.transfer_answered(&call_id, &target, dialog, &response, now);
        } else if citizen {
            self.citizen_answered(&call_id, dialog, &response, now);
        } else {
            self.connect(&call_id, &agent, forwarded, dialog, &response, now);
        }
    }

    /// Relays 180 and 183 from the agent to the caller. A 183 with SDP
    /// carries the relay's caller-side address, as the final answer will.
    fn relay_early(&mut self, call_id: &str, response: &Response, now: Instant) {
        let Some(call) = self.calls.get(call_id) else {
            return;
        };
        if call.phase == Phase::Talking || call.caller.answer.is_some() {
            // A caller the PBX answered hears its music, not the agent's
            // ringback; the agent side is learned from the final answer.
            return;
        }
        let answer = crate::sdp::parse(&response.body).ok();
        // SDP in a provisional response to an offerless caller would be an
        // offer; the PBX makes it in the 200 only.
        let body = answer
            .as_ref()
            .zip(call.local_port(Side::Caller))
            .filter(|_| !call.caller.offerless)
            .map(|(sdp, port)| crate::sdp::anchored(sdp, self.config.media_address, port));
        if let Some(remote) = answer.as_ref().and_then(crate::sdp::remote_rtp) {
            self.commands.push_back(Command::SetRemote {
                call: call_id.to_owned(),
                side: Side::Agent,
                addr: remote,
            });
        }
        if body.is_none() && call.caller.ringing_sent {
            return;
        }
        let status = if body.is_some() { 183 } else { 180 };
        let reliable = super::reliable::reliable_rseq(response).is_some();
        self.respond_caller_early(call_id, status, None, body, reliable, now);
    }

    /// The agent answered: bridge the legs and answer the caller.
    fn connect(
        &mut self,
        call_id: &str,
        agent: &str,
        forwarded: bool,
        dialog: Dialog,
        response: &Response,
        now: Instant,
    ) {
        let answer = match crate::sdp::parse(&response.body) {
            Ok(answer) => answer,
            Err(error) => {
                tracing::warn!(agent, %error, "agent answered without usable SDP; hanging up the agent");
                let mut dialog = dialog;
                let bye = dialog.new_request(Method::Bye, &self.local);
                let key = self.transactions.send_request(bye, dialog.target, now);
                self.purposes.insert(key, Purpose::FireAndForget);
                if let Some(call) = self.calls.get_mut(call_id) {
                    call.attempts.remove(agent);
                }
                if self
                    .calls
                    .get(call_id)
                    .is_some_and(|c| c.called_agent.is_some())
                {
                    self.extension_failed(call_id, 488, "Not Acceptable Here", now);
                } else if forwarded {
                    self.forward_failed(call_id, now);
                } else {
                    let request = self.acd_call_id(call_id);
                    self.acd.offer_rejected(&request, agent, now);
                    self.discard_unanswered_callback(call_id);
                }
                return;
            }
        };
        if self
            .calls
            .get(call_id)
            .is_some_and(|c| c.callback.is_some())
        {
            self.callback_agent_answered(call_id, agent, dialog, &answer, now);
            return;
        }
        let Some(call) = self.calls.get_mut(call_id) else {
            return;
        };
        call.phase = Phase::Talking;
        // A caller that a transfer put back into a queue keeps its first
        // answer: the call's talk time and recording start there.
        call.answered_at.get_or_insert(now);
        let continues_recording = call.recording_path.is_some();
        call.caller_answered_at.get_or_insert(now);
        // Other agents still ringing (ring-all) stop; the winner's attempt
        // stays known until the call ends, for its 2xx retransmissions.
        let others: Vec<String> = call
            .attempts
            .keys()
            .filter(|a| a.as_str() != agent)
            .cloned()
            .collect();
        let caller_port = call.local_port(Side::Caller).unwrap_or_default();
        let caller_source = call.caller.source;
        let answered_before = call.caller.answer.is_some();
        if !answered_before {
            call.caller.dialog =
                Dialog::from_uas(&call.caller.invite, &call.caller.local_tag, caller_source);
        }
        call.agent_leg = Some(AgentLeg {
            agent: agent.to_owned(),
            dialog,
            forwarded,
            sdp: call.agent_offer(self.config.media_address),
        });
        self.start_agent_session(call_id, response, now);
        let Some(call) = self.calls.get_mut(call_id) else {
            return;
        };
        let invite_cseq = call
            .caller
            .invite
            .headers
            .cseq()
            .map(|c| c.seq)
            .unwrap_or_default();
        let caller_sip_call_id = call
            .caller
            .invite
            .headers
            .call_id()
            .unwrap_or_default()
            .to_owned();
        let Some(invite_key) = call.caller.invite_key.clone() else {
            return;
        };
        // An offerless caller gets the PBX's offer in the 200, and its codec
        // comes with the ACK; the agent's answer stays on the agent's leg.
        let offerless = !answered_before && call.caller.offerless;

        self.commands.push_back(Command::SetPayloadTypes {
            call: call_id.to_owned(),
            side: Side::Agent,
            payload_types: crate::sdp::payload_types(&answer),
        });
        if let Some(remote) = crate::sdp::remote_rtp(&answer) {
            self.commands.push_back(Command::SetRemote {
                call: call_id.to_owned(),
                side: Side::Agent,
                addr: remote,
            });
        }
        // The relay learns the codecs before recording starts, because the
        // recorder picks 16 kHz only for a leg it knows is G.722. A caller
        // answered earlier keeps its codec and the relay transcodes; one
        // answered now gets the agent's answer, so both legs match.
        let codecs = crate::sdp::voice_payload_type(&answer)
            .map(|payload_type| (payload_type, crate::sdp::event_payload_type(&answer)));
        // An agent that answered a codec the caller did not offer (G.711
        // added for a G.722 caller) cannot have its answer passed on: the
        // caller gets the relay's own answer in its first codec.
        let own_answer = match (codecs, self.calls.get(call_id)) {
            (Some((payload_type, _)), Some(call))
                if !answered_before
                    && !offerless
                    && !crate::sdp::offers_codec(&call.offer, payload_type) =>
            {
                crate::sdp::local_answer(&call.offer, self.config.media_address, caller_port).ok()
            }
            _ => None,
        };
        let sides: &[Side] = match codecs {
            Some(_) if answered_before || offerless || own_answer.is_some() => &[Side::Agent],
            Some((9, _)) => &[Side::Caller, Side::Agent],
            _ => &[],
        };
        if let Some(own) = &own_answer {
            self.commands.push_back(Command::SetCodecs {
                call: call_id.to_owned(),
                side: Side::Caller,
                payload_type: own.payload_type,
                event_payload_type: own.event_payload_type,
            });
        }
        if let Some((payload_type, event_payload_type)) = codecs {
            for side in sides {
                self.commands.push_back(Command::SetCodecs {
                    call: call_id.to_owned(),
                    side: *side,
                    payload_type,
                    event_payload_type,
                });
            }
        }
        self.transferred_call_answered(call_id, agent, now);
        if self.config.recording && !continues_recording {
            let path = recording_path(call_id, self.timestamp(now));
            if let Some(call) = self.calls.get_mut(call_id) {
                call.recording_path = Some(path.clone());
            }
            let mixed_mono_path = self
                .config
                .recording_mixed_mono
                .then(|| mixed_mono_path(&path));
            self.commands.push_back(Command::StartRecording {
                call: call_id.to_owned(),
                path,
                mixed_mono_path,
                at: now,
            });
            self.watch_recording_code(call_id);
        }
        for other in others {
            self.withdraw_offer(call_id, Some(&other), now);
        }
        self.checkpoint(call_id, now);
        if forwarded {
            self.cancel_deadline(call_id);
            tracing::info!(target = agent, "forwarded or extension call connected");
        } else {
            self.acd.offer_answered(call_id, agent, now);
            tracing::info!(agent, "agent answered");
        }
        if answered_before {
            // The caller keeps the codec it was answered with; the relay
            // transcodes when the agent chose another.
            self.cancel_deadline(call_id);
            self.commands.push_back(Command::StopPlayback {
                call: call_id.to_owned(),
                side: Side::Caller,
            });
            return;
        }
        let media_address = self.config.media_address;
        let body = if offerless {
            self.offer_to_offerless_caller(call_id)
        } else {
            let Some(call) = self.calls.get_mut(call_id) else {
                return;
            };
            let caller_answer = own_answer.as_ref().map_or(&answer, |own| &own.sdp);
            Some(
                call.caller_origin
                    .stamp(caller_answer, media_address, caller_port),
            )
        };
        self.respond_caller(call_id, 200, None, body, now);
        self.awaiting_ack
            .insert((caller_sip_call_id, invite_cseq), invite_key);
    }
}

/// Where one INVITE of an offer goes.
#[derive(Clone, Debug)]
pub(super) struct OfferTarget {
    pub(super) uri: Uri,
    /// The next hop: the contact, or the first proxy of its Path.
    pub(super) target: crate::transaction::Target,
    /// Route header values, from the Path the contact registered with
    /// (RFC 3327).
    pub(super) route: Vec<String>,
}

impl OfferTarget {
    /// A target reached without proxies in between.
    pub(super) fn direct(uri: Uri, target: crate::transaction::Target) -> OfferTarget {
        OfferTarget {
            uri,
            target,
            route: Vec::new(),
        }
    }
}

/// Returns the Request-URI, the next hop and the Route set of each
/// binding: the contact, sent to where its registration came from or to
/// the first proxy of its Path.
pub(super) fn contact_targets(bindings: &[crate::registrar::Binding]) -> Vec<OfferTarget> {
    bindings
        .iter()
        .map(|binding| OfferTarget {
            uri: binding.contact.uri.clone(),
            target: binding.source,
            route: binding.path.clone(),
        })
        .collect()
}

/// CANCEL for an INVITE the PBX sent (section 9.1): same Request-URI,
/// Call-ID, From, To, top Via and CSeq number.
pub(super) fn cancel_for(invite: &Request) -> Request {
    let mut cancel = Request::new(Method::Cancel, invite.uri.clone());
    if let Ok(via) = invite.headers.top_via() {
        cancel.headers.push("Via", via.to_string());
    }
    cancel.headers.push("Max-Forwards", "70");
    for name in ["From", "To", "Call-ID", "Route"] {
        for value in invite.headers.get_all(name) {
            cancel.headers.push(name, value.to_owned());
        }
    }
    let seq = invite.headers.cseq().map(|c| c.seq).unwrap_or(1);
    cancel.headers.push("CSeq", format!("{seq} CANCEL"));
    cancel
}

/// The mono mix next to the stereo recording `path`: `<call id>-mixed.wav`.
pub(super) fn mixed_mono_path(path: &str) -> String {
    let stem = path.strip_suffix(".wav").unwrap_or(path);
    format!("{stem}-mixed.wav")
}

/// `recordings/YYYY/MM/DD/<call id>.wav`, relative to the data directory.
pub(super) fn recording_path(call_id: &str, at: time::OffsetDateTime) -> String {
    format!(
        "recordings/{:04}/{:02}/{:02}/{call_id}.wav",
        at.year(),
        u8::from(at.month()),
        at.day()
    )
}
