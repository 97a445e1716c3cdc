//! Session timers (RFC 4028), negotiated on each leg of a call on its own.
//!
//! On the caller's leg the PBX is the UAS; on the agent's leg it is the
//! UAC. Each leg gets an interval and a refresher. The PBX is the
//! refresher where the peer leaves the choice open and can take UPDATE, or
//! cannot refresh because it does not support the extension. At half the
//! interval it then sends an UPDATE without a body, or a re-INVITE with the
//! leg's last SDP when the peer's Allow lacks UPDATE (`session_refresh.rs`).
//! Where the peer refreshes, a leg that receives no re-INVITE or UPDATE by
//! the interval less min(32 s, interval / 3) is expired, and the PBX ends
//! the call with BYE on both legs.

use std::time::{Duration, Instant};

use sip_message::{Headers, Request, Response};

use super::call::{Call, Phase, Side};
use super::session_refresh::RefreshMethod;
use super::{Core, Purpose};

/// The option tag of RFC 4028.
pub(super) const TAG_TIMER: &str = "timer";

/// Session interval settings.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SessionTimerConfig {
    /// Interval the PBX proposes and uses when a peer names none.
    pub interval: Duration,
    /// Smallest interval the PBX accepts (Min-SE); a smaller one gets 422.
    pub min_interval: Duration,
}

impl Default for SessionTimerConfig {
    fn default() -> SessionTimerConfig {
        SessionTimerConfig {
            interval: Duration::from_secs(1800),
            min_interval: Duration::from_secs(90),
        }
    }
}

/// The session timer of one leg.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct LegSession {
    pub interval: Duration,
    /// The PBX sends the refreshes; otherwise the peer does.
    pub pbx_refreshes: bool,
    /// The peer listed `timer` in Supported or Require.
    pub peer_supports_timer: bool,
    /// The request the PBX refreshes with when `pbx_refreshes`.
    pub method: RefreshMethod,
    /// When the PBX refreshes next, or when the leg expires without a
    /// refresh from the peer.
    pub deadline: Instant,
}

impl LegSession {
    fn new(
        interval: Duration,
        pbx_refreshes: bool,
        peer_supports_timer: bool,
        method: RefreshMethod,
        now: Instant,
    ) -> LegSession {
        let mut session = LegSession {
            interval,
            pbx_refreshes,
            peer_supports_timer,
            method,
            deadline: now,
        };
        session.restart(now);
        session
    }

    /// Starts a new interval at `now`, after a refresh.
    pub(super) fn restart(&mut self, now: Instant) {
        self.deadline = if self.pbx_refreshes {
            now + self.interval / 2
        } else {
            // RFC 4028: the side that does not refresh ends the session at
            // the interval less a third of it, or less 32 s if that is smaller.
            now + self.interval - (self.interval / 3).min(Duration::from_secs(32))
        };
    }

    /// Returns the refresher parameter (`uac` or `uas`) for a request
    /// whose UAC is the peer when `peer_is_uac`, else the PBX.
    pub(super) fn refresher_param(&self, peer_is_uac: bool) -> &'static str {
        if self.pbx_refreshes == peer_is_uac {
            "uas"
        } else {
            "uac"
        }
    }
}

/// Session-Expires: delta-seconds and the refresher parameter, if any.
#[derive(Debug, PartialEq, Eq)]
pub(super) struct SessionExpires {
    pub interval: Duration,
    /// `Some(true)` for `refresher=uac`, `Some(false)` for `uas`.
    pub refresher_uac: Option<bool>,
}

/// Parses Session-Expires (or its compact form `x`); None when absent or
/// invalid.
pub(super) fn session_expires(headers: &Headers) -> Option<SessionExpires> {
    let value = headers
        .get("Session-Expires")
        .or_else(|| headers.get("x"))?;
    let mut parts = value.split(';');
    let seconds: u64 = parts.next()?.trim().parse().ok()?;
    let mut refresher_uac = None;
    for param in parts {
        if let Some((name, value)) = param.split_once('=')
            && name.trim().eq_ignore_ascii_case("refresher")
        {
            refresher_uac = match value.trim().to_ascii_lowercase().as_str() {
                "uac" => Some(true),
                "uas" => Some(false),
                _ => None,
            };
        }
    }
    Some(SessionExpires {
        interval: Duration::from_secs(seconds),
        refresher_uac,
    })
}

/// Parses Min-SE; None when absent or invalid.
pub(super) fn min_se(headers: &Headers) -> Option<Duration> {
    let value = headers.get("Min-SE")?;
    let seconds = value.split(';').next()?.trim().parse().ok()?;
    Some(Duration::from_secs(seconds))
}

/// Returns true when a `header` of `headers` lists `tag`.
fn lists(headers: &Headers, header: &str, tag: &str) -> bool {
    headers
        .get_all(header)
        .flat_map(|value| value.split(','))
        .any(|element| element.trim().eq_ignore_ascii_case(tag))
}

fn supports_timer(headers: &Headers) -> bool {
    lists(headers, "Supported", TAG_TIMER) || lists(headers, "Require", TAG_TIMER)
}

/// Adds Session-Expires for `session` to a 2xx for a request of the
/// peer, with Require: timer when the peer supports it.
fn add_session_headers(response: &mut Response, session: &LegSession) {
    response.headers.push(
        "Session-Expires",
        format!(
            "{};refresher={}",
            session.interval.as_secs(),
            session.refresher_param(true)
        ),
    );
    if session.peer_supports_timer {
        response.headers.push("Require", TAG_TIMER);
    }
}

impl Core {
    /// Returns the 422 for a new INVITE whose Session-Expires is below the
    /// PBX's minimum, which RFC 4028 rejects with 422 and Min-SE.
    pub(super) fn check_session_interval(&self, request: &Request) -> Option<Response> {
        let proposed = session_expires(&request.headers)?;
        let min = self.config.session_timer.min_interval;
        if proposed.interval >= min {
            return None;
        }
        let mut response = Response::for_request(request, 422, None);
        response.headers.push("Min-SE", min.as_secs().to_string());
        Some(response)
    }

    /// Headers that offer a session timer in an INVITE the PBX sends.
    pub(super) fn session_offer_headers(&self, request: &mut Request) {
        let settings = &self.config.session_timer;
        request
            .headers
            .push("Session-Expires", settings.interval.as_secs().to_string());
        request
            .headers
            .push("Min-SE", settings.min_interval.as_secs().to_string());
    }

    /// Negotiates the caller leg's session timer as the 2xx to its INVITE
    /// goes out, and adds the headers that announce it to `response`.
    pub(super) fn start_caller_session(
        &mut self,
        call_id: &str,
        response: &mut Response,
        now: Instant,
    ) {
        let settings = self.config.session_timer.clone();
        let Some(call) = self.calls.get_mut(call_id) else {
            return;
        };
        let invite = &call.caller.invite;
        let proposed = session_expires(&invite.headers);
        let peer_supports = supports_timer(&invite.headers);
        let allows_update = lists(&invite.headers, "Allow", "UPDATE");

        let interval = match &proposed {
            Some(proposed) => proposed.interval,
            None => settings
                .interval
                .max(min_se(&invite.headers).unwrap_or_default()),
        };
        let pbx_refreshes = match proposed.as_ref().and_then(|p| p.refresher_uac) {
            Some(true) if peer_supports => false,
            Some(_) => true,
            None => allows_update || !peer_supports,
        };
        let method = RefreshMethod::for_peer(&invite.headers);
        let session = LegSession::new(interval, pbx_refreshes, peer_supports, method, now);

        response.headers.push(
            "Session-Expires",
            format!(
                "{};refresher={}",
                interval.as_secs(),
                session.refresher_param(true)
            ),
        );
        if peer_supports {
            response.headers.push("Require", TAG_TIMER);
        }
        let deadline = session.deadline;
        call.caller_session = Some(session);
        self.session_deadlines
            .insert((deadline, call_id.to_owned()));
    }

    /// Negotiates the agent leg's session timer from the 2xx that answered
    /// the PBX's INVITE.
    pub(super) fn start_agent_session(&mut self, call_id: &str, response: &Response, now: Instant) {
        let settings = self.config.session_timer.clone();
        let Some(call) = self.calls.get_mut(call_id) else {
            return;
        };
        let answered = session_expires(&response.headers);
        let peer_supports = supports_timer(&response.headers);
        let method = RefreshMethod::for_peer(&response.headers);
        let session = match answered {
            Some(answered) => {
                // The PBX is the UAC: refresher=uac or none names the PBX.
                let pbx_refreshes = answered.refresher_uac != Some(false);
                LegSession::new(answered.interval, pbx_refreshes, peer_supports, method, now)
            }
            // A phone without the extension still takes a re-INVITE or an
            // UPDATE, so the PBX refreshes and finds out when it is gone.
            None => LegSession::new(settings.interval, true, false, method, now),
        };
        let deadline = session.deadline;
        call.agent_session = Some(session);
        self.session_deadlines
            .insert((deadline, call_id.to_owned()));
    }

    /// Restarts `side`'s interval because its peer sent a re-INVITE or an
    /// UPDATE. Returns the leg's session for the 2xx headers.
    pub(super) fn session_refreshed_by(
        &mut self,
        call_id: &str,
        side: Side,
        request: &Request,
        now: Instant,
    ) -> Option<LegSession> {
        let call = self.calls.get_mut(call_id)?;
        let session = session_of(call, side).as_mut()?;
        if let Some(proposed) = session_expires(&request.headers)
            && proposed.interval >= self.config.session_timer.min_interval
        {
            session.interval = proposed.interval;
            if let Some(uac) = proposed.refresher_uac {
                session.pbx_refreshes = !uac;
            }
        }
        session.restart(now);
        let session = session.clone();
        self.session_deadlines
            .insert((session.deadline, call_id.to_owned()));
        Some(session)
    }

    /// Starts a new interval on `side` after a refresh the PBX relayed
    /// there succeeded.
    pub(super) fn restart_session(&mut self, call_id: &str, side: Side, now: Instant) {
        let Some(session) = self
            .calls
            .get_mut(call_id)
            .and_then(|call| session_of(call, side).as_mut())
        else {
            return;
        };
        session.restart(now);
        let deadline = session.deadline;
        self.session_deadlines
            .insert((deadline, call_id.to_owned()));
    }

    /// Responds 200 to an UPDATE without a body, which only refreshes the
    /// session of its leg and so is not relayed.
    pub(super) fn answer_refresh_update(
        &mut self,
        call_id: &str,
        side: Side,
        key: &crate::transaction::TransactionKey,
        request: &Request,
        now: Instant,
    ) {
        let session = self.session_refreshed_by(call_id, side, request, now);
        let Some(call) = self.calls.get(call_id) else {
            return;
        };
        let mut response = Response::for_request(request, 200, None);
        let tag = call.dialog(side).map(|d| d.local_tag.clone());
        super::add_to_tag(&mut response, &tag.unwrap_or_default());
        if let Some(session) = &session {
            add_session_headers(&mut response, session);
        }
        self.transactions.send_response(key, response, now);
    }

    /// Adds the leg's Session-Expires to a 2xx relayed back to `side` for
    /// its re-INVITE or UPDATE.
    pub(super) fn add_refresh_headers(&self, call_id: &str, side: Side, response: &mut Response) {
        if let Some(session) = self
            .calls
            .get(call_id)
            .and_then(|call| session_ref(call, side))
        {
            add_session_headers(response, session);
        }
    }

    /// Sends a branch's INVITE again with the interval a 422 asked for in
    /// Min-SE. Returns false, leaving the 422 to end the branch, when the
    /// 422 names no larger interval than the INVITE had.
    pub(super) fn retry_with_min_se(
        &mut self,
        attempt_id: u64,
        branch_index: usize,
        response: &Response,
        now: Instant,
    ) -> bool {
        let Some(requested) = min_se(&response.headers) else {
            return false;
        };
        let Some(branch) = self
            .attempts
            .get(&attempt_id)
            .and_then(|attempt| attempt.branches.get(branch_index))
        else {
            return false;
        };
        let offered = session_expires(&branch.request.headers).map(|se| se.interval);
        if offered.is_some_and(|offered| requested <= offered) {
            return false;
        }
        let Ok(cseq) = branch.request.headers.cseq() else {
            return false;
        };
        // A new transaction: a new Via branch and the next CSeq (RFC 3261
        // section 8.1.3.5), in the same Call-ID and From tag.
        let mut retry = branch.request.clone();
        let target = branch.target;
        retry.headers.set("Via", self.new_target_via(&target));
        retry
            .headers
            .set("CSeq", format!("{} INVITE", cseq.seq + 1));
        let seconds = requested.as_secs().to_string();
        retry.headers.set("Session-Expires", seconds.clone());
        retry.headers.set("Min-SE", seconds);
        tracing::info!(
            interval = requested.as_secs(),
            "INVITE retried with the interval of a 422"
        );

        let key = self.transactions.send_request(retry.clone(), target, now);
        let Some(branch) = self
            .attempts
            .get_mut(&attempt_id)
            .and_then(|attempt| attempt.branches.get_mut(branch_index))
        else {
            return false;
        };
        let old_key = std::mem::replace(&mut branch.key, key.clone());
        branch.request = retry;
        self.purposes.remove(&old_key);
        self.purposes.insert(
            key,
            Purpose::AgentInvite {
                attempt: attempt_id,
                branch: branch_index,
            },
        );
        true
    }

    pub(super) fn next_session_deadline(&self) -> Option<Instant> {
        self.session_deadlines.first().map(|(at, _)| *at)
    }

    /// Sends the refreshes that are due and ends the calls whose peer
    /// missed one.
    pub(super) fn session_deadlines_due(&mut self, now: Instant) {
        while let Some((at, call_id)) = self.session_deadlines.first().cloned() {
            if at > now {
                return;
            }
            self.session_deadlines.pop_first();
            for side in [Side::Caller, Side::Agent] {
                let Some(session) = self
                    .calls
                    .get(&call_id)
                    .and_then(|call| session_ref(call, side))
                else {
                    continue;
                };
                // Entries of earlier intervals stay in the set; only the
                // leg's current deadline counts.
                if session.deadline != at {
                    continue;
                }
                if session.pbx_refreshes {
                    self.send_session_refresh(&call_id, side, now);
                } else {
                    self.session_expired(&call_id, side, now);
                    break;
                }
            }
        }
    }

    /// Ends the call because `side`'s peer did not refresh the session.
    fn session_expired(&mut self, call_id: &str, side: Side, now: Instant) {
        if let Some(call) = self.calls.get(call_id) {
            let _span = call.span.clone().entered();
            tracing::info!(?side, "session expired without a refresh; ending the call");
        }
        self.end_expired_call(call_id, None, now);
    }

    /// Sends BYE on both legs and writes a CDR whose hangup side is
    /// `session_expired`, with the status of the failed refresh, if any.
    pub(super) fn end_expired_call(
        &mut self,
        call_id: &str,
        sip_status: Option<u16>,
        now: Instant,
    ) {
        let Some(call) = self.calls.get(call_id) else {
            return;
        };
        if call.phase == Phase::Survey {
            self.interrupt_survey(call_id, now);
            return;
        }
        let talking = call.phase == Phase::Talking;
        let agent = call
            .agent_leg
            .as_ref()
            .filter(|leg| !leg.forwarded)
            .map(|leg| leg.agent.clone());
        self.send_bye(call_id, Side::Caller, now);
        if !talking {
            // A caller answered to wait in the queue: only its leg exists.
            self.drop_waiting_caller(
                call_id,
                cdr::Disposition::Abandoned,
                cdr::HangupSide::SessionExpired,
                now,
            );
            return;
        }
        self.send_bye(call_id, Side::Agent, now);
        if let Some(agent) = agent {
            self.acd.call_ended(&agent, now);
        }
        self.finish(
            call_id,
            cdr::Disposition::Answered,
            sip_status,
            Some(cdr::HangupSide::SessionExpired),
            now,
        );
    }
}

pub(super) fn session_of(call: &mut Call, side: Side) -> &mut Option<LegSession> {
    match side {
        Side::Caller => &mut call.caller_session,
        Side::Agent => &mut call.agent_session,
    }
}

pub(super) fn session_ref(call: &Call, side: Side) -> Option<&LegSession> {
    match side {
        Side::Caller => call.caller_session.as_ref(),
        Side::Agent => call.agent_session.as_ref(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(lines: &[(&str, &str)]) -> Headers {
        let mut headers = Headers::default();
        for (name, value) in lines {
            headers.push(name, *value);
        }
        headers
    }

    #[test]
    fn session_expires_parses_refresher() {
        let parsed = session_expires(&headers(&[("Session-Expires", "1800;refresher=uas")]));
        assert_eq!(
            parsed,
            Some(SessionExpires {
                interval: Duration::from_secs(1800),
                refresher_uac: Some(false),
            })
        );
        let compact = session_expires(&headers(&[("x", "90")]));
        assert_eq!(compact.map(|p| p.refresher_uac), Some(None));
        assert_eq!(
            session_expires(&headers(&[("Session-Expires", "soon")])),
            None
        );
    }

    #[test]
    fn expiry_leaves_a_third_or_32_seconds() {
        let now = Instant::now();
        let update = RefreshMethod::Update;
        let long = LegSession::new(Duration::from_secs(1800), false, true, update, now);
        assert_eq!(long.deadline, now + Duration::from_secs(1768));
        let short = LegSession::new(Duration::from_secs(90), false, true, update, now);
        assert_eq!(short.deadline, now + Duration::from_secs(60));
        let refreshing = LegSession::new(Duration::from_secs(90), true, true, update, now);
        assert_eq!(refreshing.deadline, now + Duration::from_secs(45));
    }
}
