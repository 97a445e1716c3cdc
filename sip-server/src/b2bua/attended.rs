//! Attended transfer (RFC 3515 with RFC 3891 Replaces): the agent of an
//! answered call places a consultation call through the PBX, then sends
//! REFER on the first call with a Refer-To whose Replaces names its dialog
//! of the consultation call. The PBX joins the caller of the first call
//! with the party that answered the consultation call.
//!
//! The colleague's dialog moves from the consultation call to the first
//! call. The PBX re-INVITEs the colleague's phone with the first call's
//! relay port, and re-INVITEs the caller off hold when the agent had put it
//! on hold. The consultation call ends with its own CDR, and the agent gets
//! the final NOTIFY and BYE on both of its dialogs.

use std::time::Instant;

use sip_message::{Method, Response};

use super::call::{AgentLeg, Phase, Side};
use super::transfer::ReferError;
use super::{Command, Core, Purpose};

/// The dialog a Replaces header names (RFC 3891 section 6.1), as the
/// transferring agent sees it: `to_tag` is the PBX's tag and `from_tag` the
/// agent's.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Replaces {
    pub call_id: String,
    pub to_tag: String,
    pub from_tag: String,
}

impl Replaces {
    /// Parses the value of a Replaces header embedded, percent-encoded, in
    /// the headers part of a Refer-To URI.
    pub(crate) fn from_uri_headers(headers: &str) -> Option<Replaces> {
        let value = headers.split('&').find_map(|header| {
            let (name, value) = header.split_once('=')?;
            name.eq_ignore_ascii_case("Replaces").then_some(value)
        })?;
        let value = percent_decode(value)?;
        let mut parts = value.split(';');
        let call_id = parts.next()?.trim().to_owned();
        let (mut to_tag, mut from_tag) = (None, None);
        for part in parts {
            let (name, tag) = part.split_once('=')?;
            match name.trim().to_ascii_lowercase().as_str() {
                "to-tag" => to_tag = Some(tag.trim().to_owned()),
                "from-tag" => from_tag = Some(tag.trim().to_owned()),
                _ => {}
            }
        }
        (!call_id.is_empty()).then_some(())?;
        Some(Replaces {
            call_id,
            to_tag: to_tag?,
            from_tag: from_tag?,
        })
    }
}

/// Decodes `%HH` escapes; None when an escape is malformed or the result
/// is not UTF-8.
fn percent_decode(text: &str) -> Option<String> {
    let bytes = text.as_bytes();
    let mut decoded = Vec::with_capacity(bytes.len());
    let mut index = 0;
    while index < bytes.len() {
        if bytes[index] == b'%' {
            let hex = text.get(index + 1..index + 3)?;
            decoded.push(u8::from_str_radix(hex, 16).ok()?);
            index += 3;
        } else {
            decoded.push(bytes[index]);
            index += 1;
        }
    }
    String::from_utf8(decoded).ok()
}

impl Core {
    /// Finds the consultation call that `replaces` names: a call the agent
    /// of `call_id` placed from its phone, answered by another agent and
    /// not `call_id`. Returns its product id and that agent.
    pub(super) fn consultation_call(
        &self,
        call_id: &str,
        agent: &str,
        replaces: &Replaces,
    ) -> Result<(String, String), ReferError> {
        let consultation = self
            .by_sip_call_id
            .get(&replaces.call_id)
            .filter(|id| id.as_str() != call_id)
            .and_then(|id| self.calls.get(id))
            .filter(|call| {
                call.caller.dialog.as_ref().is_some_and(|dialog| {
                    dialog.call_id == replaces.call_id
                        && dialog.local_tag == replaces.to_tag
                        && dialog.remote_tag == replaces.from_tag
                })
            })
            .ok_or(ReferError::UnknownReplaces)?;
        let placed_by_agent = consultation.source_extension.as_deref() == Some(agent);
        // The colleague answered the agent's call to its extension, or an
        // offer of a queue whose DID the agent dialed.
        let colleague = consultation
            .agent_leg
            .as_ref()
            .filter(|leg| !leg.forwarded || consultation.called_agent.is_some())
            .map(|leg| leg.agent.clone());
        match colleague {
            Some(colleague) if placed_by_agent && consultation.phase == Phase::Talking => {
                Ok((consultation.id.clone(), colleague))
            }
            _ => Err(ReferError::UnknownReplaces),
        }
    }

    /// Joins the caller of `call_id` with the party that answered
    /// `consultation`, after the REFER was answered 202.
    pub(super) fn join_consultation(&mut self, call_id: &str, consultation: &str, now: Instant) {
        let Some(second) = self.calls.get_mut(consultation) else {
            return;
        };
        // The consultation's CDR names the colleague, so the leg is copied
        // before the call is finished.
        let Some(colleague) = second.agent_leg.clone() else {
            return;
        };
        let session = second.agent_session.take();
        let extension_call = second.called_agent.is_some();
        let colleague_call_id = colleague.dialog.call_id.clone();
        tracing::info!(
            colleague = colleague.agent,
            consultation,
            "attended transfer joins the consultation"
        );

        // The consultation call ends for the transferring agent only: its
        // colleague stays on the line and the ACD keeps it on a call. A
        // colleague reached by extension is on a direct call, which moves
        // to this call before the consultation's end could free it.
        if extension_call {
            self.acd
                .direct_call_moved(&colleague.agent, consultation, call_id, now);
        }
        self.send_bye(consultation, Side::Caller, now);
        self.finish(
            consultation,
            cdr::Disposition::Answered,
            None,
            Some(cdr::HangupSide::Agent),
            now,
        );

        let wall = time::OffsetDateTime::from(self.wall(now));
        self.release_referrer(call_id, now);
        let Some(call) = self.calls.get_mut(call_id) else {
            return;
        };
        if let Some(pending) = call.transfer.pending.as_mut() {
            pending.record.outcome = cdr::TransferOutcome::Connected;
            pending.record.answered_by = Some(colleague.agent.clone());
            pending.record.answered_at = Some(wall);
        }
        call.transfer.segment_start = Some(now);
        call.agent_leg = Some(AgentLeg {
            agent: colleague.agent.clone(),
            dialog: colleague.dialog,
            // A leg that is no ACD offer ends through
            // `release_transfer_target`, like a blind transfer's.
            forwarded: extension_call,
            sdp: colleague.sdp,
        });
        if let Some(session) = &session {
            self.session_deadlines
                .insert((session.deadline, call_id.to_owned()));
        }
        call.agent_session = session;
        self.index_sip_call_id(colleague_call_id, call_id);
        self.notify_referrer(call_id, 200, "OK", true, now);
        self.hang_up_referrer(call_id, now);
        self.finish_pending_transfer(call_id);
        self.reinvite_to_relay(call_id, Side::Agent, now);
        self.checkpoint(call_id, now);
    }

    /// Sends `side` of `call_id` a re-INVITE with the relay's address for
    /// that side: the colleague's phone moves to this call's relay, and a
    /// caller on hold is taken off it.
    fn reinvite_to_relay(&mut self, call_id: &str, side: Side, now: Instant) {
        let local = self.local.clone();
        let media_address = self.config.media_address;
        let Some(call) = self.calls.get_mut(call_id) else {
            return;
        };
        let Some(port) = call.local_port(side) else {
            return;
        };
        let body = match side {
            Side::Agent => {
                let body = call.agent_offer(media_address);
                if let Some(leg) = call.agent_leg.as_mut() {
                    leg.sdp = body.clone();
                }
                body
            }
            Side::Caller => match crate::sdp::local_answer(&call.offer, media_address, port) {
                Ok(answer) => call.caller_origin.stamp(&answer.sdp, media_address, port),
                Err(error) => {
                    tracing::warn!(%error, "failed to build the SDP that takes the caller off hold");
                    return;
                }
            },
        };

        let Some(dialog) = call.dialog_mut(side) else {
            return;
        };
        let mut invite = dialog.new_request(Method::Invite, &local);
        invite.headers.push("Content-Type", "application/sdp");
        invite.body = body;
        let target = dialog.target;
        let key = self.transactions.send_request(invite, target, now);
        self.purposes.insert(
            key,
            Purpose::Rebridge {
                call: call_id.to_owned(),
                side,
            },
        );
    }

    /// Handles the final response to a re-INVITE of [`Core::reinvite_to_relay`].
    pub(super) fn rebridge_answered(
        &mut self,
        call_id: &str,
        side: Side,
        response: &Response,
        now: Instant,
    ) {
        if response.status >= 300 {
            tracing::warn!(
                ?side,
                status = response.status,
                "re-INVITE after an attended transfer failed; ending the call"
            );
            self.hang_up(call_id, side, now);
            return;
        }
        let Some(dialog) = self.calls.get(call_id).and_then(|call| call.dialog(side)) else {
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
        let Ok(answer) = crate::sdp::parse(&response.body) else {
            tracing::warn!(
                ?side,
                "re-INVITE answered without usable SDP; the relay keeps the old address"
            );
            return;
        };
        if side == Side::Agent {
            self.bridge_new_agent_phone(call_id, &answer);
            if self.calls.get(call_id).is_some_and(|call| call.on_hold) {
                self.reinvite_to_relay(call_id, Side::Caller, now);
            }
            return;
        }
        if let Some(call) = self.calls.get_mut(call_id) {
            call.on_hold = false;
        }
        if let Some(addr) = crate::sdp::remote_rtp(&answer) {
            self.commands.push_back(Command::SetRemote {
                call: call_id.to_owned(),
                side: Side::Caller,
                addr,
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replaces_from_escaped_uri_headers() {
        let replaces =
            Replaces::from_uri_headers("Replaces=abc%40host%3Bto-tag%3Dpbx1%3Bfrom-tag%3Dagent1");
        assert_eq!(
            replaces,
            Some(Replaces {
                call_id: "abc@host".to_owned(),
                to_tag: "pbx1".to_owned(),
                from_tag: "agent1".to_owned(),
            })
        );
    }

    #[test]
    fn replaces_without_tags_is_invalid() {
        assert_eq!(Replaces::from_uri_headers("Replaces=abc%40host"), None);
        assert_eq!(
            Replaces::from_uri_headers("Replaces=abc%3Bto-tag%3Dx"),
            None
        );
        assert_eq!(Replaces::from_uri_headers("Replaces=%4"), None);
        assert_eq!(Replaces::from_uri_headers("Other=1"), None);
    }
}
