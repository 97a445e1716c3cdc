//! Call transfer by REFER (RFC 3515). In a blind transfer the agent of an
//! answered call names another agent's extension or a queue's DID, and the
//! PBX moves the caller there. A Refer-To with Replaces is an attended
//! transfer, which `attended.rs` completes.
//!
//! The REFER is authorised like a call the agent would place: an agent may
//! dial other agents' extensions and the DIDs of the configuration, so those
//! are the only targets. The PBX answers 202 and reports progress to the
//! agent with NOTIFY (a `message/sipfrag` body with `100 Trying`, then the
//! target's final status). While an extension rings, the caller hears the
//! please-hold prompt and music and the agent stays on the call: when the
//! target does not answer, the caller goes back to the agent, or into the
//! call's queue when the agent has hung up meanwhile. A queue target puts the
//! caller into that queue as a new arrival, with music, at once.
//!
//! The call keeps its product id, its caller dialog and its one recording:
//! the relay's agent side switches to the new phone, and the outgoing
//! stream rewriting in the `media` crate keeps the caller's stream
//! continuous. Each transfer is a [`cdr::Transfer`] in the call's record.

use std::time::{Duration, Instant};

use sip_message::{Method, NameAddr, Request, Response, Scheme, Uri};

mod referrer;

use super::attended::Replaces;
use super::call::{AgentLeg, AttemptKind, Phase, Side};
use super::session_timer::LegSession;
use super::{Command, Core, Purpose};
use crate::dialog::Dialog;
use crate::transaction::TransactionKey;

/// Maximum ring time of a transfer target before the transfer fails.
pub(super) const TRANSFER_RING_LIMIT: Duration = Duration::from_secs(30);

/// Transfers of one call: the one in progress and those done.
#[derive(Default)]
pub(crate) struct Transfers {
    pub pending: Option<PendingTransfer>,
    /// Done transfers for the CDR, oldest first.
    pub done: Vec<cdr::Transfer>,
    /// When the current agent leg answered; the start of its talk time.
    pub segment_start: Option<Instant>,
}

/// A transfer whose target rings, or whose queue has not answered yet.
pub(crate) struct PendingTransfer {
    pub record: cdr::Transfer,
    /// CSeq of the REFER, the `id` of its implicit subscription.
    pub refer_cseq: u32,
    /// The transferring agent's leg while the target rings, kept so that
    /// the caller can go back to it. None once it hung up, or once the
    /// caller went into a queue.
    pub referrer: Option<AgentLeg>,
    pub referrer_session: Option<LegSession>,
    /// The target was an agent's extension that the ACD marked busy.
    pub direct_agent: Option<String>,
}

/// Reason a REFER is rejected before anything changes.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub(crate) enum ReferError {
    #[error("only the agent of the call may transfer it")]
    NotAgent,
    #[error("a call that returns a callback request cannot be transferred")]
    CallbackCall,
    #[error("the call is not answered or a transfer is in progress")]
    NotTransferable,
    #[error("Refer-To is missing, repeated or not a SIP or tel URI with a user")]
    InvalidReferTo,
    #[error("Refer-To names no agent extension and no DID: {target}")]
    UnknownTarget { target: String },
    #[error("Refer-To names the transferring agent itself: {target}")]
    SelfTarget { target: String },
    #[error("the Replaces of Refer-To is invalid")]
    InvalidReplaces,
    #[error("the Replaces of Refer-To names no consultation call of the agent")]
    UnknownReplaces,
}

impl ReferError {
    /// Status line of the REFER's rejection.
    fn status(&self) -> (u16, &'static str) {
        match self {
            ReferError::NotAgent => (403, "Only The Agent May Transfer"),
            ReferError::CallbackCall => (403, "Callback Calls Cannot Be Transferred"),
            ReferError::NotTransferable => (491, "Request Pending"),
            ReferError::InvalidReferTo => (400, "Invalid Refer-To"),
            ReferError::UnknownTarget { .. } => (404, "Transfer Target Not Found"),
            ReferError::SelfTarget { .. } => (403, "Cannot Transfer To Self"),
            ReferError::InvalidReplaces => (400, "Invalid Replaces"),
            ReferError::UnknownReplaces => (481, "Replaced Dialog Not Found"),
        }
    }
}

/// Destination of an accepted REFER.
enum Destination {
    /// An agent's extension. With the instance of a GRUU (RFC 5627) in
    /// the Refer-To, only that phone of the agent rings.
    Extension {
        agent: String,
        instance: Option<String>,
    },
    /// The party of the agent's consultation call: that call's product id
    /// and the agent who answered it.
    Consultation {
        call: String,
        agent: String,
    },
    Queue {
        did: String,
        route: super::DidRoute,
    },
}

/// Returns the user part of the one Refer-To of `request`, and the
/// Replaces header it carries for an attended transfer.
fn refer_to_user(request: &Request) -> Result<(String, Option<Replaces>), ReferError> {
    let mut values = request.headers.get_all("Refer-To");
    let (Some(value), None) = (values.next(), values.next()) else {
        return Err(ReferError::InvalidReferTo);
    };
    let name_addr = NameAddr::parse(value).map_err(|_| ReferError::InvalidReferTo)?;
    let uri: &Uri = &name_addr.uri;
    if !matches!(uri.scheme, Scheme::Sip | Scheme::Sips | Scheme::Tel) {
        return Err(ReferError::InvalidReferTo);
    }
    let user = uri
        .user_unescaped()
        .filter(|user| !user.is_empty())
        .ok_or(ReferError::InvalidReferTo)?;
    let headers = uri.headers.as_deref().unwrap_or_default();
    let named = headers.split('&').any(|header| {
        header
            .split_once('=')
            .is_some_and(|(name, _)| name.eq_ignore_ascii_case("Replaces"))
    });
    if !named {
        return Ok((user, None));
    }
    let replaces = Replaces::from_uri_headers(headers).ok_or(ReferError::InvalidReplaces)?;
    Ok((user, Some(replaces)))
}

/// Returns the `gr` parameter of the Refer-To URI of `request`: the
/// instance of a GRUU.
fn refer_to_instance(request: &Request) -> Option<String> {
    let value = request.headers.get("Refer-To")?;
    let name_addr = NameAddr::parse(value).ok()?;
    name_addr.uri.params.value("gr").map(str::to_owned)
}

impl Core {
    /// Handles a REFER inside the dialog of `side` of `call_id`: checks it,
    /// answers 202 and starts the transfer it asks for.
    pub(super) fn handle_refer(
        &mut self,
        call_id: &str,
        side: Side,
        key: TransactionKey,
        request: Request,
        now: Instant,
    ) {
        let destination = match self.check_refer(call_id, side, &request) {
            Ok(destination) => destination,
            Err(error) => {
                tracing::info!(%error, "REFER rejected");
                self.reply_in_dialog(call_id, side, &key, &request, error.status(), now);
                return;
            }
        };
        self.reply_in_dialog(call_id, side, &key, &request, (202, "Accepted"), now);

        let refer_cseq = request.headers.cseq().map(|c| c.seq).unwrap_or_default();
        let wall = time::OffsetDateTime::from(self.wall(now));
        let Some(call) = self.calls.get_mut(call_id) else {
            return;
        };
        let Some(leg) = call.agent_leg.as_ref() else {
            return;
        };
        let answered = call.answered_at.unwrap_or(now);
        let segment_start = call.transfer.segment_start.unwrap_or(answered);
        let (target, target_kind) = match &destination {
            Destination::Extension { agent, .. } => (agent.clone(), cdr::TransferTarget::Extension),
            Destination::Consultation { agent, .. } => {
                (agent.clone(), cdr::TransferTarget::Consultation)
            }
            Destination::Queue { did, .. } => (did.clone(), cdr::TransferTarget::Queue),
        };
        let record = cdr::Transfer {
            at: wall,
            offset_seconds: super::round_millis(
                now.saturating_duration_since(answered).as_secs_f64(),
            ),
            from_agent: leg.agent.clone(),
            from_talk_seconds: super::round_millis(
                now.saturating_duration_since(segment_start).as_secs_f64(),
            ),
            target,
            target_kind,
            outcome: cdr::TransferOutcome::Abandoned,
            sip_status: None,
            answered_by: None,
            answered_at: None,
        };
        tracing::info!(from = leg.agent, target = record.target, kind = ?target_kind, "blind transfer accepted");

        // The agent leg leaves `agent_leg`, so that the new leg's answer is
        // bridged like any agent's; the referrer waits here meanwhile.
        let referrer = call.agent_leg.take();
        let referrer_session = call.agent_session.take();
        call.transfer.pending = Some(PendingTransfer {
            record,
            refer_cseq,
            referrer,
            referrer_session,
            direct_agent: None,
        });

        self.notify_referrer(call_id, 100, "Trying", false, now);
        match destination {
            Destination::Extension { agent, instance } => {
                self.ring_transfer_target(call_id, &agent, instance.as_deref(), now)
            }
            Destination::Consultation { call, .. } => {
                self.join_consultation(call_id, &call, now);
            }
            Destination::Queue { route, .. } => {
                self.release_referrer(call_id, now);
                self.requeue_transferred(call_id, route, now);
                self.notify_referrer(call_id, 200, "OK", true, now);
                self.hang_up_referrer(call_id, now);
                self.finish_pending_transfer(call_id);
            }
        }
        self.checkpoint(call_id, now);
    }

    /// Checks that `side` may transfer `call_id` to the target that the
    /// Refer-To of `request` names.
    fn check_refer(
        &self,
        call_id: &str,
        side: Side,
        request: &Request,
    ) -> Result<Destination, ReferError> {
        if side != Side::Agent {
            return Err(ReferError::NotAgent);
        }
        let call = self.calls.get(call_id).ok_or(ReferError::NotTransferable)?;
        let leg = call.agent_leg.as_ref().ok_or(ReferError::NotTransferable)?;
        // A number a call was forwarded to is not an agent, and a callback
        // call's ACD entry is the request, not this call.
        // TODO: transfer of callback calls, once the ACD can move a callback
        // request's call to another agent.
        if !self.registrar.is_agent(&leg.agent) {
            return Err(ReferError::NotAgent);
        }
        if call.callback.is_some() {
            return Err(ReferError::CallbackCall);
        }
        if call.phase != Phase::Talking || call.transfer.pending.is_some() {
            return Err(ReferError::NotTransferable);
        }

        let (target, replaces) = refer_to_user(request)?;
        if let Some(replaces) = replaces {
            let (call, agent) = self.consultation_call(call_id, &leg.agent, &replaces)?;
            return Ok(Destination::Consultation { call, agent });
        }
        if target == leg.agent {
            return Err(ReferError::SelfTarget { target });
        }

        if self.registrar.is_agent(&target) {
            return Ok(Destination::Extension {
                agent: target,
                instance: refer_to_instance(request),
            });
        }
        match self.config.dids.get(&target) {
            Some(route) => Ok(Destination::Queue {
                did: target,
                route: route.clone(),
            }),
            None => Err(ReferError::UnknownTarget { target }),
        }
    }

    /// Responds with `(status, reason)` to a request of `side`'s dialog,
    /// with that dialog's tag.
    fn reply_in_dialog(
        &mut self,
        call_id: &str,
        side: Side,
        key: &TransactionKey,
        request: &Request,
        (status, reason): (u16, &str),
        now: Instant,
    ) {
        let mut response = Response::for_request(request, status, Some(reason));
        let dialog = self.calls.get(call_id).and_then(|call| call.dialog(side));
        if let Some(dialog) = dialog {
            super::add_to_tag(&mut response, &dialog.local_tag);
            if status == 202 {
                response.headers.push(
                    "Contact",
                    self.local.contact(dialog.target.transport).to_string(),
                );
            }
        }
        self.transactions.send_response(key, response, now);
    }

    /// Rings the transfer target's phones, or only the phone of `instance`
    /// when the Refer-To was its GRUU, with the caller on hold music.
    fn ring_transfer_target(
        &mut self,
        call_id: &str,
        agent: &str,
        instance: Option<&str>,
        now: Instant,
    ) {
        if !self.config.ring_in_use && !self.acd.direct_call_started(agent, call_id, now) {
            tracing::info!(agent, "transfer target is on another call");
            self.transfer_failed(call_id, 486, "Busy Here", now);
            return;
        }
        if let Some(pending) = self
            .calls
            .get_mut(call_id)
            .and_then(|call| call.transfer.pending.as_mut())
        {
            pending.direct_agent = (!self.config.ring_in_use).then(|| agent.to_owned());
        }
        let targets = match instance {
            Some(instance) => {
                super::offer::contact_targets(&self.registrar.lookup_instance(agent, instance, now))
            }
            None => self.number_targets(agent, now),
        };
        if targets.is_empty() {
            tracing::info!(agent, instance, "transfer target has no contact");
            self.transfer_failed(call_id, 480, "Temporarily Unavailable", now);
            return;
        }
        self.play_transfer_hold(call_id);
        let to = Uri::sip(
            Some(agent),
            sip_message::Host::Domain(self.config.domain.clone()),
            None,
        );
        let label = transfer_label(agent);
        self.send_offer(
            call_id,
            &label,
            to,
            targets,
            AttemptKind::Transfer(agent.to_owned()),
            now,
        );
        self.set_deadline(call_id, now + TRANSFER_RING_LIMIT);
    }

    /// Plays the please-hold prompt and music to the caller while a
    /// transfer target rings, looped so that the caller never hears dead
    /// air.
    fn play_transfer_hold(&mut self, call_id: &str) {
        let Some(call) = self.calls.get(call_id) else {
            return;
        };
        let music = self
            .config
            .queue_media
            .get(&call.queue)
            .and_then(|media| media.music_on_hold.clone())
            .or_else(|| call.music.clone());
        let mut prompts = vec![self.config.prompts.please_hold()];
        prompts.extend(music);
        self.commands.push_back(Command::Play {
            call: call_id.to_owned(),
            side: Side::Caller,
            prompts,
            looped: true,
        });
    }

    /// Bridges the caller to the transfer target that answered with
    /// `dialog`, which becomes the agent leg, and releases the transferring
    /// agent.
    pub(super) fn transfer_answered(
        &mut self,
        call_id: &str,
        agent: &str,
        dialog: Dialog,
        response: &Response,
        now: Instant,
    ) {
        let Ok(answer) = crate::sdp::parse(&response.body) else {
            tracing::warn!(
                agent,
                "transfer target answered without usable SDP; hanging it up"
            );
            let mut dialog = dialog;
            let bye = dialog.new_request(Method::Bye, &self.local);
            let key = self.transactions.send_request(bye, dialog.target, now);
            self.purposes.insert(key, Purpose::FireAndForget);
            self.transfer_failed(call_id, 488, "Not Acceptable Here", now);
            return;
        };
        self.cancel_deadline(call_id);
        let wall = time::OffsetDateTime::from(self.wall(now));
        let Some(call) = self.calls.get_mut(call_id) else {
            return;
        };
        call.attempts.remove(&transfer_label(agent));
        if let Some(pending) = call.transfer.pending.as_mut() {
            pending.record.outcome = cdr::TransferOutcome::Connected;
            pending.record.answered_by = Some(agent.to_owned());
            pending.record.answered_at = Some(wall);
        }
        call.transfer.segment_start = Some(now);
        tracing::info!(agent, "transfer target answered");
        self.release_referrer(call_id, now);
        self.notify_referrer(call_id, 200, "OK", true, now);
        self.hang_up_referrer(call_id, now);
        self.finish_pending_transfer(call_id);

        let Some(call) = self.calls.get_mut(call_id) else {
            return;
        };
        // The extension's leg is not an ACD offer: the ACD tracks its agent
        // as on a direct call, which `release_transfer_target` ends.
        call.agent_leg = Some(AgentLeg {
            agent: agent.to_owned(),
            dialog,
            forwarded: true,
            sdp: call.agent_offer(self.config.media_address),
        });
        self.start_agent_session(call_id, response, now);
        self.bridge_new_agent_phone(call_id, &answer);
        self.checkpoint(call_id, now);
    }

    /// Points the relay's agent side at a newly answered phone. The caller
    /// keeps its codec and stream; the relay transcodes and rewrites the
    /// RTP headers toward it.
    pub(super) fn bridge_new_agent_phone(
        &mut self,
        call_id: &str,
        answer: &sip_message::sdp::SessionDescription,
    ) {
        let call = call_id.to_owned();
        self.commands.push_back(Command::ResetLeg {
            call: call.clone(),
            side: Side::Agent,
        });
        self.commands.push_back(Command::SetPayloadTypes {
            call: call.clone(),
            side: Side::Agent,
            payload_types: crate::sdp::payload_types(answer),
        });
        if let Some(addr) = crate::sdp::remote_rtp(answer) {
            self.commands.push_back(Command::SetRemote {
                call: call.clone(),
                side: Side::Agent,
                addr,
            });
        }
        if let Some(payload_type) = crate::sdp::voice_payload_type(answer) {
            self.commands.push_back(Command::SetCodecs {
                call: call.clone(),
                side: Side::Agent,
                payload_type,
                event_payload_type: crate::sdp::event_payload_type(answer),
            });
        }
        self.commands.push_back(Command::StopPlayback {
            call,
            side: Side::Caller,
        });
    }

    /// Returns the caller to the transferring agent after the target failed
    /// with `status`, or puts it into the call's queue when that agent has
    /// left.
    pub(super) fn transfer_failed(
        &mut self,
        call_id: &str,
        status: u16,
        reason: &str,
        now: Instant,
    ) {
        let Some(call) = self.calls.get_mut(call_id) else {
            return;
        };
        let Some(pending) = call.transfer.pending.as_mut() else {
            return;
        };
        tracing::info!(status, reason, "transfer target did not answer");
        pending.record.sip_status = Some(status);
        let label = transfer_label(&pending.record.target);
        self.withdraw_offer(call_id, Some(&label), now);
        self.cancel_deadline(call_id);
        self.release_transfer_target(call_id, now);
        self.notify_referrer(call_id, status, reason, true, now);

        let Some(call) = self.calls.get_mut(call_id) else {
            return;
        };
        let Some(pending) = call.transfer.pending.as_mut() else {
            return;
        };
        match pending.referrer.take() {
            Some(referrer) => {
                tracing::info!(
                    agent = referrer.agent,
                    "caller back with the transferring agent"
                );
                pending.record.outcome = cdr::TransferOutcome::Reconnected;
                call.agent_session = pending.referrer_session.take();
                call.agent_leg = Some(referrer);
                self.commands.push_back(Command::StopPlayback {
                    call: call_id.to_owned(),
                    side: Side::Caller,
                });
                if let Some(session) = self
                    .calls
                    .get(call_id)
                    .and_then(|c| c.agent_session.as_ref())
                {
                    self.session_deadlines
                        .insert((session.deadline, call_id.to_owned()));
                }
            }
            None => {
                let route = call.route.clone();
                self.requeue_transferred(call_id, route, now);
            }
        }
        self.finish_pending_transfer(call_id);
        self.checkpoint(call_id, now);
    }

    /// Puts the caller of `call_id`, whose agent left, into the queue of
    /// `route` as a new arrival, with music.
    fn requeue_transferred(&mut self, call_id: &str, route: super::DidRoute, now: Instant) {
        let media_address = self.config.media_address;
        let Some(call) = self.calls.get_mut(call_id) else {
            return;
        };
        if let Some(pending) = call.transfer.pending.as_mut() {
            pending.record.outcome = cdr::TransferOutcome::Queued;
        }
        call.phase = Phase::Queued;
        call.agent_leg = None;
        call.agent_session = None;
        call.queue.clone_from(&route.queue);
        // The PBX answers the caller's re-INVITEs itself while it waits, so
        // it needs an answer of its own in the caller's codec.
        if call.caller.answer.is_none()
            && let Some(port) = call.local_port(Side::Caller)
            && let Ok(answer) = crate::sdp::local_answer(&call.offer, media_address, port)
        {
            call.caller.answer = Some(call.caller_origin.stamp(&answer.sdp, media_address, port));
        }
        let data = acd::CallData {
            priority: route.priority,
            requirements: route.skills.clone(),
            request_type: route.request_type.clone(),
            ..acd::CallData::default()
        };
        call.route = route;
        let queue = call.queue.clone();

        self.commands.push_back(Command::ResetLeg {
            call: call_id.to_owned(),
            side: Side::Agent,
        });
        if let Err(error) = self.acd.enqueue_with(call_id, &queue, data, now) {
            tracing::warn!(%error, queue, "transferred call not queued; dismissing the caller");
            self.dismiss_waiting_caller(call_id, cdr::Disposition::Answered, now);
            return;
        }
        tracing::info!(queue, "transferred call queued");
        self.play_music(call_id);
        self.schedule_announcement(call_id, now);
    }

    /// True while a transfer of `call_id` rings its target.
    pub(super) fn transfer_ringing(&self, call_id: &str) -> bool {
        self.calls
            .get(call_id)
            .is_some_and(|call| call.transfer.pending.is_some())
    }

    /// Notes that an agent answered a call that a transfer put in a queue.
    pub(super) fn transferred_call_answered(&mut self, call_id: &str, agent: &str, now: Instant) {
        let wall = time::OffsetDateTime::from(self.wall(now));
        let Some(call) = self.calls.get_mut(call_id) else {
            return;
        };
        call.transfer.segment_start = Some(now);
        if let Some(last) = call.transfer.done.last_mut()
            && last.outcome == cdr::TransferOutcome::Queued
            && last.answered_by.is_none()
        {
            last.answered_by = Some(agent.to_owned());
            last.answered_at = Some(wall);
        }
    }
}

/// Key of a transfer's attempt in `Call::attempts`, apart from the ACD's
/// agent ids.
fn transfer_label(agent: &str) -> String {
    format!("transfer:{agent}")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refer(refer_to: &[&str]) -> Request {
        let mut text = String::from(
            "REFER sip:pbx@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP 198.51.100.21:5062;branch=z9hG4bK-r\r\n\
             From: <sip:1001@pbx.test>;tag=a\r\nTo: <sip:+1555@pbx.test>;tag=b\r\n\
             Call-ID: x\r\nCSeq: 2 REFER\r\n",
        );
        for value in refer_to {
            text.push_str(&format!("Refer-To: {value}\r\n"));
        }
        text.push_str("Content-Length: 0\r\n\r\n");
        match sip_message::Message::parse(text.as_bytes()).unwrap() {
            sip_message::Message::Request(request) => request,
            sip_message::Message::Response(_) => unreachable!(),
        }
    }

    #[test]
    fn refer_to_user_of_name_addr() {
        let request = refer(&["<sip:1002@pbx.test>"]);
        assert_eq!(refer_to_user(&request), Ok(("1002".to_owned(), None)));
    }

    #[test]
    fn refer_to_with_replaces_is_attended() {
        let request = refer(&["<sip:1002@pbx.test?Replaces=abc%3Bto-tag%3D1%3Bfrom-tag%3D2>"]);
        let replaces = Replaces {
            call_id: "abc".to_owned(),
            to_tag: "1".to_owned(),
            from_tag: "2".to_owned(),
        };
        assert_eq!(
            refer_to_user(&request),
            Ok(("1002".to_owned(), Some(replaces)))
        );
        let broken = refer(&["<sip:1002@pbx.test?Replaces=abc>"]);
        assert_eq!(refer_to_user(&broken), Err(ReferError::InvalidReplaces));
    }

    #[test]
    fn refer_to_invalid_cases() {
        for values in [
            &[][..],
            &["<sip:1002@pbx.test>", "<sip:1003@pbx.test>"][..],
            &["<sip:pbx.test>"][..],
            &["<mailto:someone@example.com>"][..],
            &["not a uri"][..],
        ] {
            let request = refer(values);
            assert_eq!(
                refer_to_user(&request),
                Err(ReferError::InvalidReferTo),
                "{values:?}"
            );
        }
    }
}
