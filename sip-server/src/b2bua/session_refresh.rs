//! Session refreshes the PBX sends as the refresher of a leg (RFC 4028
//! section 7.4 and 8.3).
//!
//! A refresh is an UPDATE without a body when the peer's Allow listed
//! UPDATE, otherwise a re-INVITE that repeats the leg's last SDP with the
//! same `o=` version, because the session does not change (RFC 3264
//! section 8). An UPDATE answered 405 or 501 turns the leg to re-INVITE.
//!
//! A refresh never crosses another offer of the call: while a re-INVITE or
//! UPDATE of a phone is relayed, a re-INVITE after a transfer is out, or a
//! transfer rings, the refresh waits [`REFRESH_POSTPONE`] and tries again
//! (a relayed re-INVITE refreshes both legs anyway). A re-INVITE or UPDATE
//! that the other leg sends while a refresh re-INVITE is out is held and
//! relayed once the refresh has its final response. One from the refreshed
//! leg itself crosses the refresh on the same dialog and gets 491.

use std::time::{Duration, Instant};

use sip_message::{Method, Request, Response};

use super::call::Side;
use super::session_timer::{TAG_TIMER, min_se, session_expires, session_of, session_ref};
use super::{Command, Core, Purpose};
use crate::transaction::TransactionKey;

/// How long a due refresh waits when another offer of the call is in
/// progress, before it checks again.
const REFRESH_POSTPONE: Duration = Duration::from_secs(2);

/// The request the PBX refreshes a leg's session with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum RefreshMethod {
    Update,
    Invite,
}

impl RefreshMethod {
    /// Re-INVITE, which every SIP peer takes, for a peer whose Allow header
    /// leaves out UPDATE; otherwise UPDATE. A peer that sent no Allow gets
    /// UPDATE first and re-INVITE after a 405 or 501.
    pub(super) fn for_peer(headers: &sip_message::Headers) -> RefreshMethod {
        let mut allowed = headers
            .get_all("Allow")
            .flat_map(|value| value.split(','))
            .map(str::trim)
            .filter(|method| !method.is_empty())
            .peekable();
        if allowed.peek().is_none() || allowed.any(|m| m.eq_ignore_ascii_case("UPDATE")) {
            RefreshMethod::Update
        } else {
            RefreshMethod::Invite
        }
    }

    fn method(self) -> Method {
        match self {
            RefreshMethod::Update => Method::Update,
            RefreshMethod::Invite => Method::Invite,
        }
    }
}

/// A re-INVITE or UPDATE with an offer from one leg, held while the PBX's
/// refresh re-INVITE on the other leg waits for its final response.
pub(crate) struct DeferredRelay {
    pub key: TransactionKey,
    pub request: Request,
    pub origin: Side,
}

impl Core {
    /// Sends a refresh of `side`'s session, or postpones it while another
    /// offer of the call is in progress.
    pub(super) fn send_session_refresh(&mut self, call_id: &str, side: Side, now: Instant) {
        if self.offer_in_progress(call_id) {
            tracing::debug!(
                ?side,
                "session refresh postponed: another offer is in progress"
            );
            self.postpone_refresh(call_id, side, now + REFRESH_POSTPONE);
            return;
        }
        let local = self.local.clone();
        let media_address = self.config.media_address;
        let Some(call) = self.calls.get_mut(call_id) else {
            return;
        };
        let Some((interval, method)) = session_ref(call, side).map(|s| (s.interval, s.method))
        else {
            return;
        };
        let body = match (method, side) {
            (RefreshMethod::Update, _) => None,
            (RefreshMethod::Invite, Side::Caller) => call.caller_origin.repeat(media_address),
            (RefreshMethod::Invite, Side::Agent) => call.agent_leg.as_ref().map(|l| l.sdp.clone()),
        };
        let _span = call.span.clone().entered();

        if method == RefreshMethod::Invite && body.is_none() {
            // Only a leg that never got SDP from the PBX lacks one, and a
            // re-INVITE without an offer would ask the peer for a new one.
            tracing::warn!(
                ?side,
                "no SDP to repeat in a refresh; the session timer of this leg stops"
            );
            *session_of(call, side) = None;
            return;
        }

        let Some(dialog) = call.dialog_mut(side) else {
            return;
        };
        let mut request = dialog.new_request(method.method(), &local);
        let target = dialog.target;
        request.headers.push(
            "Session-Expires",
            format!("{};refresher=uac", interval.as_secs()),
        );
        request.headers.push("Supported", TAG_TIMER);
        if let Some(body) = body {
            request.headers.push("Content-Type", "application/sdp");
            request.body = body;
        }
        tracing::debug!(?side, ?method, "refreshing the session");
        let key = self.transactions.send_request(request, target, now);
        self.purposes.insert(
            key,
            Purpose::SessionRefresh {
                call: call_id.to_owned(),
                side,
                method,
            },
        );
    }

    /// Applies the final response to a refresh the PBX sent on `side`, then
    /// relays a request that waited for it.
    pub(super) fn session_refresh_answered(
        &mut self,
        call_id: &str,
        side: Side,
        method: RefreshMethod,
        response: &Response,
        now: Instant,
    ) {
        if method == RefreshMethod::Invite && (200..300).contains(&response.status) {
            self.acknowledge_refresh(call_id, side, response);
        }
        self.apply_refresh_outcome(call_id, side, method, response, now);
        self.release_deferred_relay(call_id, now);
    }

    fn apply_refresh_outcome(
        &mut self,
        call_id: &str,
        side: Side,
        method: RefreshMethod,
        response: &Response,
        now: Instant,
    ) {
        let min_interval = self.config.session_timer.min_interval;
        let pbx_owns_call_id = self.pbx_owns_call_id(call_id, side);
        let Some(call) = self.calls.get_mut(call_id) else {
            return;
        };
        let _span = call.span.clone().entered();
        let status = response.status;
        let Some(session) = session_of(call, side).as_mut() else {
            return;
        };
        match status {
            200..=299 => {
                if let Some(answered) = session_expires(&response.headers) {
                    session.interval = answered.interval.max(min_interval);
                    session.pbx_refreshes = answered.refresher_uac != Some(false);
                }
                session.restart(now);
                let deadline = session.deadline;
                self.session_deadlines
                    .insert((deadline, call_id.to_owned()));
            }
            422 => {
                // The peer wants a longer interval; retry with it at once.
                session.interval = min_se(&response.headers)
                    .unwrap_or(session.interval * 2)
                    .max(session.interval);
                self.send_session_refresh(call_id, side, now);
            }
            491 => {
                let wait = glare_backoff(pbx_owns_call_id);
                tracing::debug!(
                    ?side,
                    wait_ms = wait.as_millis(),
                    "refresh crossed a re-INVITE (491); retrying"
                );
                self.postpone_refresh(call_id, side, now + wait);
            }
            405 | 501 if method == RefreshMethod::Update => {
                tracing::info!(
                    ?side,
                    status,
                    "peer takes no UPDATE; refreshing with re-INVITE"
                );
                session.method = RefreshMethod::Invite;
                self.send_session_refresh(call_id, side, now);
            }
            408 | 481 => {
                // RFC 5057 section 5.1: the peer's dialog is gone.
                tracing::warn!(?side, status, "session refresh failed; ending the call");
                self.end_expired_call(call_id, Some(status), now);
            }
            _ => {
                tracing::warn!(
                    ?side,
                    status,
                    "session refresh rejected; the session timer of this leg stops"
                );
                *session_of(call, side) = None;
            }
        }
    }

    /// ACKs the 2xx to a refresh re-INVITE and follows a new address in its
    /// answer.
    fn acknowledge_refresh(&mut self, call_id: &str, side: Side, response: &Response) {
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
        let remote = crate::sdp::parse(&response.body)
            .ok()
            .as_ref()
            .and_then(crate::sdp::remote_rtp);
        if let Some(addr) = remote {
            self.commands.push_back(Command::SetRemote {
                call: call_id.to_owned(),
                side,
                addr,
            });
        }
    }

    /// Moves `side`'s next refresh to `at`.
    fn postpone_refresh(&mut self, call_id: &str, side: Side, at: Instant) {
        let Some(session) = self
            .calls
            .get_mut(call_id)
            .and_then(|call| session_of(call, side).as_mut())
        else {
            return;
        };
        session.deadline = at;
        self.session_deadlines.insert((at, call_id.to_owned()));
    }

    /// True while an offer or a transfer of `call_id` is in progress, which
    /// a refresh re-INVITE would cross.
    fn offer_in_progress(&self, call_id: &str) -> bool {
        let Some(call) = self.calls.get(call_id) else {
            return false;
        };
        if call.transfer.pending.is_some() || call.deferred_relay.is_some() {
            return true;
        }
        let awaiting_ack = [Side::Caller, Side::Agent]
            .into_iter()
            .filter_map(|side| call.dialog(side))
            .any(|dialog| {
                self.awaiting_ack
                    .keys()
                    .any(|(sip_call_id, _)| *sip_call_id == dialog.call_id)
            });
        awaiting_ack
            || self.purposes.values().any(|purpose| match purpose {
                Purpose::Relay { call, request, .. } => {
                    call == call_id && matches!(request.method, Method::Invite | Method::Update)
                }
                Purpose::Rebridge { call, .. } => call == call_id,
                _ => false,
            })
    }

    /// Returns the leg whose refresh re-INVITE still waits for its final
    /// response, if any.
    pub(super) fn refresh_reinvite_pending(&self, call_id: &str) -> Option<Side> {
        self.purposes.values().find_map(|purpose| match purpose {
            Purpose::SessionRefresh {
                call,
                side,
                method: RefreshMethod::Invite,
            } if call == call_id => Some(*side),
            _ => None,
        })
    }

    /// Holds a request of `origin` until the refresh re-INVITE on the other
    /// leg is answered, or rejects it with 491 when another one is held.
    pub(super) fn defer_relay(
        &mut self,
        call_id: &str,
        origin: Side,
        key: TransactionKey,
        request: Request,
        now: Instant,
    ) {
        let Some(call) = self.calls.get_mut(call_id) else {
            return;
        };
        if call.deferred_relay.is_some() {
            // A second offer before the first was relayed: RFC 3261
            // section 14.2 lets the phone retry after a 491.
            let tag = call.dialog(origin).map(|d| d.local_tag.clone());
            let mut response = Response::for_request(&request, 491, None);
            super::add_to_tag(&mut response, &tag.unwrap_or_default());
            self.transactions.send_response(&key, response, now);
            return;
        }
        tracing::debug!(?origin, method = %request.method, "held until the session refresh is answered");
        call.deferred_relay = Some(DeferredRelay {
            key,
            request,
            origin,
        });
    }

    /// Relays the request held behind a refresh, now that it is answered.
    fn release_deferred_relay(&mut self, call_id: &str, now: Instant) {
        let Some(deferred) = self
            .calls
            .get_mut(call_id)
            .and_then(|call| call.deferred_relay.take())
        else {
            return;
        };
        self.relay_request(
            call_id,
            deferred.origin,
            deferred.key,
            deferred.request,
            now,
        );
    }

    /// True when the PBX generated the Call-ID of `side`'s dialog: always on
    /// the agent's leg, and on the caller's leg of a callback.
    fn pbx_owns_call_id(&self, call_id: &str, side: Side) -> bool {
        match side {
            Side::Agent => true,
            Side::Caller => self
                .calls
                .get(call_id)
                .is_some_and(|call| call.caller.invite_key.is_none()),
        }
    }
}

/// Returns the wait before a re-INVITE that got 491 is sent again (RFC 3261
/// section 14.1): 2.1 to 4 s for the owner of the dialog's Call-ID, 0 to
/// 2 s for the other side, in steps of 10 ms.
pub(super) fn glare_backoff(pbx_owns_call_id: bool) -> Duration {
    let steps = if pbx_owns_call_id {
        rand::random_range(210..=400u64)
    } else {
        rand::random_range(0..=200u64)
    };
    Duration::from_millis(steps * 10)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn glare_backoff_ranges() {
        for _ in 0..200 {
            let owner = glare_backoff(true);
            assert!(owner >= Duration::from_millis(2100), "{owner:?}");
            assert!(owner <= Duration::from_secs(4), "{owner:?}");
            assert_eq!(owner.as_millis() % 10, 0);
            let other = glare_backoff(false);
            assert!(other <= Duration::from_secs(2), "{other:?}");
            assert_eq!(other.as_millis() % 10, 0);
        }
    }
}
