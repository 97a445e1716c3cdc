//! Reliable provisional responses (RFC 3262) on both legs of a call.
//!
//! The PBX handles each leg on its own. An agent's reliable 18x gets a
//! PRACK from the PBX at once, so the phone stops retransmitting whatever
//! the caller does. Toward a caller that supports 100rel, an early response
//! the agent sent reliably goes out reliably too, with the caller leg's own
//! RSeq. A caller that requires 100rel gets every 18x reliably. The PBX
//! retransmits such a response from T1, doubling, until the caller's PRACK
//! arrives, and gives up after 64*T1.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use sip_message::{Method, Request, Response};

use super::call::{Branch, Phase, Side};
use super::{Core, Purpose};
use crate::dialog::Dialog;
use crate::transaction::TransactionKey;

/// The option tag of RFC 3262.
pub(super) const TAG_100REL: &str = "100rel";

/// Level of 100rel support the caller's INVITE declares.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) enum CallerReliability {
    /// 100rel in neither Supported nor Require.
    #[default]
    Unsupported,
    /// 100rel in Supported: reliable when the agent's 18x was.
    Supported,
    /// 100rel in Require: every 18x other than 100 goes out reliably.
    Required,
}

impl CallerReliability {
    pub(crate) fn of(invite: &Request) -> CallerReliability {
        if lists_tag(invite, "Require", TAG_100REL) {
            CallerReliability::Required
        } else if lists_tag(invite, "Supported", TAG_100REL) {
            CallerReliability::Supported
        } else {
            CallerReliability::Unsupported
        }
    }
}

/// Reliable provisional responses sent to the caller and not yet
/// acknowledged.
#[derive(Debug)]
pub(crate) struct CallerProvisionals {
    pub mode: CallerReliability,
    /// RSeq of the next reliable response, starting at a random value as
    /// RFC 3262 requires.
    next_rseq: u32,
    /// The one response sent and waiting for its PRACK. RFC 3262 allows
    /// only one unacknowledged reliable response at a time.
    pending: Option<Pending>,
    /// Reliable responses waiting for `pending` to be acknowledged, still
    /// without Require and RSeq.
    queued: VecDeque<Response>,
    /// A 2xx kept back because `pending` or a queued response carries SDP,
    /// and RFC 3262 forbids a 2xx before the PRACK of such a response.
    held_final: Option<Response>,
}

#[derive(Debug)]
struct Pending {
    rseq: u32,
    response: Response,
    carries_sdp: bool,
    interval: Duration,
    next_send: Instant,
    give_up: Instant,
}

impl CallerProvisionals {
    pub(crate) fn new(mode: CallerReliability) -> CallerProvisionals {
        CallerProvisionals {
            mode,
            next_rseq: rand::random::<u32>() % 0x7fff_0000 + 1,
            pending: None,
            queued: VecDeque::new(),
            held_final: None,
        }
    }

    /// Returns when the next retransmission or the give-up is due.
    pub(crate) fn deadline(&self) -> Option<Instant> {
        self.pending
            .as_ref()
            .map(|pending| pending.next_send.min(pending.give_up))
    }

    fn carries_sdp(&self) -> bool {
        self.pending.as_ref().is_some_and(|p| p.carries_sdp)
            || self.queued.iter().any(|r| !r.body.is_empty())
    }
}

/// Returns true when a `header` of `request` lists `tag`.
fn lists_tag(request: &Request, header: &str, tag: &str) -> bool {
    request
        .headers
        .get_all(header)
        .flat_map(|value| value.split(','))
        .any(|element| element.trim().eq_ignore_ascii_case(tag))
}

/// Returns the RSeq of a reliable provisional response, None for an
/// unreliable one or one whose RSeq is missing or invalid.
pub(super) fn reliable_rseq(response: &Response) -> Option<u32> {
    let required = response
        .headers
        .get_all("Require")
        .flat_map(|value| value.split(','))
        .any(|element| element.trim().eq_ignore_ascii_case(TAG_100REL));
    if !required || !(101..=199).contains(&response.status) {
        return None;
    }
    response.headers.get("RSeq")?.trim().parse().ok()
}

/// Reason a caller's PRACK is rejected, which picks the response status.
#[derive(Debug, PartialEq, Eq)]
enum PrackMismatch {
    /// RAck is missing or not `rseq cseq method`.
    BadRAck,
    /// RAck names no unacknowledged reliable response, which RFC 3262
    /// answers with 481.
    NoMatch,
}

impl Core {
    /// Sends a provisional response to the caller, reliably when the
    /// caller requested it. `reliable_source` is true when the agent's
    /// response that this one relays was reliable.
    pub(super) fn send_caller_provisional(
        &mut self,
        call_id: &str,
        key: &TransactionKey,
        mut response: Response,
        reliable_source: bool,
        now: Instant,
    ) {
        let t1 = self.config.timers.t1;
        let Some(call) = self.calls.get_mut(call_id) else {
            return;
        };
        let reliable = match call.caller.provisionals.mode {
            CallerReliability::Required => true,
            CallerReliability::Supported => reliable_source,
            CallerReliability::Unsupported => false,
        };
        if !reliable || response.status == 100 {
            self.transactions.send_response(key, response, now);
            return;
        }

        let provisionals = &mut call.caller.provisionals;
        if provisionals.pending.is_some() {
            provisionals.queued.push_back(response);
            return;
        }

        response.headers.push("Require", TAG_100REL);
        let rseq = provisionals.next_rseq;
        provisionals.next_rseq = rseq.wrapping_add(1);
        response.headers.push("RSeq", rseq.to_string());
        provisionals.pending = Some(Pending {
            rseq,
            carries_sdp: !response.body.is_empty(),
            response: response.clone(),
            interval: t1,
            next_send: now + t1,
            give_up: now + t1 * 64,
        });
        let deadline = provisionals.deadline();
        self.transactions.send_response(key, response, now);
        self.schedule_reliable(call_id, deadline);
    }

    /// Keeps a 2xx for the caller back while an unacknowledged reliable
    /// response carries SDP. Returns the response when it may go out now.
    pub(super) fn hold_caller_final(
        &mut self,
        call_id: &str,
        response: Response,
    ) -> Option<Response> {
        let Some(call) = self.calls.get_mut(call_id) else {
            return Some(response);
        };
        let provisionals = &mut call.caller.provisionals;
        if (200..300).contains(&response.status) && provisionals.carries_sdp() {
            tracing::debug!("answer held until the caller acknowledges the early SDP");
            provisionals.held_final = Some(response);
            return None;
        }
        // Any final response ends the provisional phase, so nothing of it
        // is sent again.
        provisionals.pending = None;
        provisionals.queued.clear();
        Some(response)
    }

    /// Responds to a PRACK from the caller and sends what waited for it.
    pub(super) fn handle_caller_prack(
        &mut self,
        key: TransactionKey,
        request: Request,
        now: Instant,
    ) {
        let call_id = request
            .headers
            .call_id()
            .and_then(|id| self.by_sip_call_id.get(id))
            .filter(|id| {
                self.calls
                    .get(*id)
                    .is_some_and(|call| prack_matches_caller(call, &request))
            })
            .cloned();
        let Some(call_id) = call_id else {
            self.reply(&key, &request, 481, None, now);
            return;
        };
        let span = self.calls.get(&call_id).map(|c| c.span.clone());
        let _span = span.map(tracing::Span::entered);
        // TODO: an SDP offer in the caller's PRACK gets a 200 without an
        // answer. It should be relayed in a PRACK to the agent's early
        // dialog, which no trunk seen so far has needed.
        match self.acknowledge(&call_id, &request) {
            Ok(()) => {
                self.reply_in_early_dialog(&call_id, &key, &request, 200, now);
                self.send_next_reliable(&call_id, now);
            }
            Err(PrackMismatch::BadRAck) => {
                tracing::warn!("PRACK without a valid RAck rejected");
                self.reply_in_early_dialog(&call_id, &key, &request, 400, now);
            }
            Err(PrackMismatch::NoMatch) => {
                tracing::debug!("PRACK for no unacknowledged response");
                self.reply_in_early_dialog(&call_id, &key, &request, 481, now);
            }
        }
    }

    /// Clears the pending response that `prack`'s RAck names.
    fn acknowledge(&mut self, call_id: &str, prack: &Request) -> Result<(), PrackMismatch> {
        let call = self.calls.get_mut(call_id).ok_or(PrackMismatch::NoMatch)?;
        let (rseq, cseq, method) = parse_rack(prack).ok_or(PrackMismatch::BadRAck)?;
        let invite_cseq = call.caller.invite.headers.cseq().ok().map(|c| c.seq);
        let provisionals = &mut call.caller.provisionals;
        let matches = provisionals
            .pending
            .as_ref()
            .is_some_and(|pending| pending.rseq == rseq);
        if !matches || Some(cseq) != invite_cseq || method != Method::Invite {
            return Err(PrackMismatch::NoMatch);
        }
        provisionals.pending = None;
        Ok(())
    }

    /// Sends the next queued reliable response, or the held 2xx once no
    /// reliable response is left.
    fn send_next_reliable(&mut self, call_id: &str, now: Instant) {
        let Some(call) = self.calls.get_mut(call_id) else {
            return;
        };
        let Some(key) = call.caller.invite_key.clone() else {
            return;
        };
        let provisionals = &mut call.caller.provisionals;
        if let Some(next) = provisionals.queued.pop_front() {
            self.send_caller_provisional(call_id, &key, next, true, now);
            return;
        }
        if let Some(answer) = provisionals.held_final.take() {
            self.transactions.send_response(&key, answer, now);
        }
    }

    /// Responds to a request of the caller's early dialog with our To tag.
    fn reply_in_early_dialog(
        &mut self,
        call_id: &str,
        key: &TransactionKey,
        request: &Request,
        status: u16,
        now: Instant,
    ) {
        let Some(call) = self.calls.get(call_id) else {
            return;
        };
        let mut response = Response::for_request(request, status, None);
        super::add_to_tag(&mut response, &call.caller.local_tag);
        self.transactions.send_response(key, response, now);
    }

    fn schedule_reliable(&mut self, call_id: &str, at: Option<Instant>) {
        if let Some(at) = at {
            self.reliable_deadlines.insert((at, call_id.to_owned()));
        }
    }

    pub(super) fn next_reliable_deadline(&self) -> Option<Instant> {
        self.reliable_deadlines.first().map(|(at, _)| *at)
    }

    /// Retransmits the caller's unacknowledged reliable responses that are
    /// due, and ends calls whose caller never acknowledged one.
    pub(super) fn reliable_deadlines_due(&mut self, now: Instant) {
        while let Some((at, call_id)) = self.reliable_deadlines.first().cloned() {
            if at > now {
                return;
            }
            self.reliable_deadlines.pop_first();
            let Some(call) = self.calls.get_mut(&call_id) else {
                continue;
            };
            let Some(key) = call.caller.invite_key.clone() else {
                continue;
            };
            let Some(pending) = call.caller.provisionals.pending.as_mut() else {
                continue;
            };
            if pending.give_up <= now {
                self.reliable_timed_out(&call_id, now);
                continue;
            }
            if pending.next_send > now {
                // A stale entry: a newer response replaced the one it was for.
                continue;
            }
            pending.interval *= 2;
            pending.next_send = now + pending.interval;
            let response = pending.response.clone();
            let deadline = call.caller.provisionals.deadline();
            self.transactions.send_response(&key, response, now);
            self.schedule_reliable(&call_id, deadline);
        }
    }

    /// Ends a call whose caller sent no PRACK within 64*T1. RFC 3262 recommends
    /// a 5xx on the INVITE; an agent that already answered is hung up.
    fn reliable_timed_out(&mut self, call_id: &str, now: Instant) {
        let Some(call) = self.calls.get_mut(call_id) else {
            return;
        };
        let _span = call.span.clone().entered();
        tracing::warn!("caller sent no PRACK for a reliable provisional response; ending the call");
        call.caller.provisionals.pending = None;
        call.caller.provisionals.queued.clear();
        let answered = call.caller.provisionals.held_final.take().is_some();
        if !answered || call.phase != Phase::Talking {
            self.fail_call(
                call_id,
                504,
                "No PRACK Received",
                cdr::Disposition::Failed,
                now,
            );
            return;
        }
        self.send_bye(call_id, Side::Agent, now);
        if let Some(agent) = call_agent(self, call_id) {
            self.acd.call_ended(&agent, now);
        }
        self.respond_caller(call_id, 504, Some("No PRACK Received"), None, now);
        self.finish(
            call_id,
            cdr::Disposition::Failed,
            Some(504),
            Some(cdr::HangupSide::System),
            now,
        );
    }

    /// Acknowledges a reliable provisional response of an agent branch with
    /// a PRACK in the early dialog it creates. Returns false for a
    /// retransmission, which must not be relayed again.
    pub(super) fn prack_agent_branch(
        &mut self,
        attempt_id: u64,
        branch_index: usize,
        response: &Response,
        now: Instant,
    ) -> bool {
        let Some(rseq) = reliable_rseq(response) else {
            return true;
        };
        let local = self.local.clone();
        let Some(branch) = self
            .attempts
            .get_mut(&attempt_id)
            .and_then(|attempt| attempt.branches.get_mut(branch_index))
        else {
            return false;
        };
        let Some(prack) = early_prack(branch, response, rseq, &local) else {
            return false;
        };
        let target = branch.target;
        let key = self.transactions.send_request(prack, target, now);
        self.purposes.insert(key, Purpose::FireAndForget);
        true
    }
}

/// Builds the PRACK for reliable response `rseq` on `branch`, or None when
/// it is a retransmission or creates no usable early dialog.
fn early_prack(
    branch: &mut Branch,
    response: &Response,
    rseq: u32,
    local: &crate::dialog::LocalContact,
) -> Option<Request> {
    let remote_tag = response.headers.to().ok()?.tag()?.to_owned();
    let same_dialog = branch
        .early
        .as_ref()
        .is_some_and(|early| early.dialog.remote_tag == remote_tag);
    if same_dialog {
        let early = branch.early.as_mut()?;
        // RSeq grows by one per new response (RFC 3262), so an RSeq
        // already seen is a retransmission, and the PRACK transaction
        // already sent retransmits itself.
        if rseq <= early.last_rseq {
            return None;
        }
        early.last_rseq = rseq;
    } else {
        let dialog = Dialog::from_uac(&branch.request, response, branch.target)?;
        branch.early = Some(super::call::EarlyDialog {
            dialog,
            last_rseq: rseq,
        });
    }
    let early = branch.early.as_mut()?;
    let invite_cseq = branch.request.headers.cseq().ok()?.seq;
    let mut prack = early.dialog.new_request(Method::Prack, local);
    prack
        .headers
        .push("RAck", format!("{rseq} {invite_cseq} INVITE"));
    Some(prack)
}

/// Returns true when `prack` is in the caller's early dialog: the caller's
/// Call-ID and From tag, and our To tag.
fn prack_matches_caller(call: &super::call::Call, prack: &Request) -> bool {
    let invite = &call.caller.invite;
    let from_tag = |request: &Request| {
        request
            .headers
            .from()
            .ok()
            .and_then(|from| from.tag().map(str::to_owned))
    };
    let to_tag = prack
        .headers
        .to()
        .ok()
        .and_then(|to| to.tag().map(str::to_owned));
    call.caller.invite_key.is_some()
        && from_tag(prack) == from_tag(invite)
        && to_tag.as_deref() == Some(call.caller.local_tag.as_str())
}

/// Parses RAck: `response-num CSeq-num Method`.
fn parse_rack(prack: &Request) -> Option<(u32, u32, Method)> {
    let value = prack.headers.get("RAck")?;
    let mut parts = value.split_whitespace();
    let rseq = parts.next()?.parse().ok()?;
    let cseq = parts.next()?.parse().ok()?;
    let method: Method = parts.next()?.parse().ok()?;
    parts.next().is_none().then_some((rseq, cseq, method))
}

fn call_agent(core: &Core, call_id: &str) -> Option<String> {
    core.calls
        .get(call_id)
        .and_then(|call| call.agent_leg.as_ref())
        .filter(|leg| !leg.forwarded)
        .map(|leg| leg.agent.clone())
}
