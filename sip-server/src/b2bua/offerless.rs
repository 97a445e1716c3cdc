//! A caller's INVITE without SDP (RFC 3261 section 13.2.1): the PBX makes
//! the offer in its 200 and takes the caller's answer from the ACK.
//!
//! The call carries [`crate::sdp::local_g711_offer`] as its offer, so the
//! agent's INVITE offers the same formats, and the relay learns the caller's
//! address and codec only at the ACK. Provisional responses to such a
//! caller carry no SDP, because an offer there would have to go out
//! reliably and be answered in a PRACK.
//!
//! An ACK without a usable answer leaves no media to relay, so the PBX ends
//! the call with BYE on both legs.

use std::time::Instant;

use sip_message::Request;

use super::call::{Phase, Side};
use super::{Command, Core};

impl Core {
    /// Returns the SDP of the PBX's 2xx to an offerless caller: the call's
    /// own offer at the relay's caller port, and notes that the ACK must
    /// carry the answer.
    pub(super) fn offer_to_offerless_caller(&mut self, call_id: &str) -> Option<bytes::Bytes> {
        let media_address = self.config.media_address;
        let call = self.calls.get_mut(call_id)?;
        let port = call.local_port(Side::Caller)?;
        let offer = call.offer.clone();
        call.caller.answer_in_ack = true;
        Some(call.caller_origin.stamp(&offer, media_address, port))
    }

    /// Applies the answer in the caller's ACK when the PBX's 2xx made the
    /// offer; ends the call when the ACK has no usable answer.
    pub(super) fn caller_answer_in_ack(&mut self, sip_call_id: &str, ack: &Request, now: Instant) {
        let Some(call_id) = self.by_sip_call_id.get(sip_call_id).cloned() else {
            return;
        };
        let Some(call) = self.calls.get_mut(&call_id) else {
            return;
        };
        let invite_seq = call.caller.invite.headers.cseq().map(|c| c.seq).ok();
        let ack_seq = ack.headers.cseq().map(|c| c.seq).ok();
        if !call.caller.answer_in_ack || invite_seq != ack_seq {
            return;
        }
        call.caller.answer_in_ack = false;
        let span = call.span.clone();
        let _span = span.enter();
        let answer = crate::sdp::parse(&ack.body)
            .and_then(crate::sdp::check_transport)
            .ok()
            .filter(|answer| {
                crate::sdp::voice_payload_type(answer)
                    .is_some_and(|codec| crate::sdp::offers_codec(&call.offer, codec))
            });
        let Some(answer) = answer else {
            tracing::warn!(
                "the caller's ACK carries no usable answer to the PBX's offer; ending the call"
            );
            self.end_without_answer(&call_id, now);
            return;
        };
        let commands = [
            crate::sdp::remote_rtp(&answer).map(|addr| Command::SetRemote {
                call: call_id.clone(),
                side: Side::Caller,
                addr,
            }),
            Some(Command::SetPayloadTypes {
                call: call_id.clone(),
                side: Side::Caller,
                payload_types: crate::sdp::payload_types(&answer),
            }),
            crate::sdp::voice_payload_type(&answer).map(|payload_type| Command::SetCodecs {
                call: call_id.clone(),
                side: Side::Caller,
                payload_type,
                event_payload_type: crate::sdp::event_payload_type(&answer),
            }),
        ];
        self.commands.extend(commands.into_iter().flatten());
        tracing::debug!("caller's answer taken from its ACK");
    }

    /// Hangs up a call whose caller acknowledged the 2xx without an answer.
    fn end_without_answer(&mut self, call_id: &str, now: Instant) {
        let Some(call) = self.calls.get(call_id) else {
            return;
        };
        if call.phase != Phase::Talking {
            self.send_bye(call_id, Side::Caller, now);
            self.drop_waiting_caller(
                call_id,
                cdr::Disposition::Failed,
                cdr::HangupSide::System,
                now,
            );
            return;
        }
        let agent = call
            .agent_leg
            .as_ref()
            .filter(|leg| !leg.forwarded)
            .map(|leg| leg.agent.clone());
        self.send_bye(call_id, Side::Caller, now);
        self.send_bye(call_id, Side::Agent, now);
        if let Some(agent) = agent {
            self.acd.call_ended(&agent, now);
        }
        self.finish(
            call_id,
            cdr::Disposition::Failed,
            None,
            Some(cdr::HangupSide::System),
            now,
        );
    }
}
