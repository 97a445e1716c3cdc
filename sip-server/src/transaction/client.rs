//! Client transactions: INVITE (RFC 3261 section 17.1.1 with the Accepted
//! state of RFC 6026) and non-INVITE (section 17.1.2).

use std::time::Instant;

use bytes::Bytes;
use sip_message::{Method, Request, Response};
use tracing::{debug, trace};

use super::timers::{Retransmit, TIMER_C, TIMER_D, TimerConfig, TimerKind, Timers};
use super::{Event, Outbox, Target, TransactionKey};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum ClientState {
    /// INVITE sent, no response yet (Timers A and B).
    Calling,
    /// Non-INVITE request sent, no response yet (Timers E and F).
    Trying,
    Proceeding,
    /// Final response received: absorbs its retransmissions (Timer D or K).
    Completed,
    /// 2xx to INVITE received: passes 2xx retransmissions up (Timer M).
    Accepted,
    Terminated,
}

pub(super) struct ClientTransaction {
    key: TransactionKey,
    /// The INVITE, kept to build the ACK for a non-2xx final response.
    request: Option<Request>,
    payload: Bytes,
    target: Target,
    state: ClientState,
    /// ACK sent for the non-2xx final response, sent again for each of its
    /// retransmissions.
    ack: Option<Bytes>,
    pub(super) timers: Timers,
}

impl ClientTransaction {
    /// Sends `request` and arms the retransmission (unreliable transports
    /// only) and timeout timers.
    pub(super) fn start(
        key: TransactionKey,
        request: Request,
        target: Target,
        config: &TimerConfig,
        now: Instant,
        out: &mut Outbox,
    ) -> ClientTransaction {
        let payload = request.to_bytes();
        out.transmit(target, payload.clone());
        let invite = request.method == Method::Invite;
        let mut timers = Timers {
            state: Some(now + config.transaction_timeout()),
            ..Timers::default()
        };
        if !target.transport.is_reliable() {
            timers.retransmit = Some(Retransmit::first(now, config.t1));
        }
        ClientTransaction {
            key,
            request: invite.then_some(request),
            payload,
            target,
            state: if invite {
                ClientState::Calling
            } else {
                ClientState::Trying
            },
            ack: None,
            timers,
        }
    }

    pub(super) fn is_terminated(&self) -> bool {
        self.state == ClientState::Terminated
    }

    pub(super) fn target(&self) -> Target {
        self.target
    }

    fn is_invite(&self) -> bool {
        self.request.is_some()
    }

    pub(super) fn on_response(
        &mut self,
        response: Response,
        config: &TimerConfig,
        now: Instant,
        out: &mut Outbox,
    ) {
        if self.is_invite() {
            self.on_invite_response(response, config, now, out);
        } else {
            self.on_non_invite_response(response, config, now, out);
        }
    }

    fn on_invite_response(
        &mut self,
        response: Response,
        config: &TimerConfig,
        now: Instant,
        out: &mut Outbox,
    ) {
        use ClientState::*;
        let status = response.status;
        match (self.state, status) {
            (Calling | Proceeding, 100..=199) => {
                // Timer A stops on the first provisional response and Timer B
                // only guards the Calling state; Timer C takes over.
                self.timers.retransmit = None;
                self.timers.state = Some(now + TIMER_C);
                self.enter(Proceeding);
                self.pass_up(response, out);
            }

            (Calling | Proceeding, 200..=299) => {
                // Timer M (RFC 6026) is 64*T1 whatever the transport.
                self.timers.retransmit = None;
                self.timers.state = Some(now + config.transaction_timeout());
                self.enter(Accepted);
                self.pass_up(response, out);
            }

            (Calling | Proceeding, 300..=699) => {
                // The ACK goes out before the TU hears of the response, so a
                // TU that reacts by sending a new request does not overtake it.
                self.send_ack(&response, out);
                self.timers.retransmit = None;
                self.enter(Completed);
                if self.target.transport.is_reliable() {
                    self.terminate();
                } else {
                    self.timers.state = Some(now + TIMER_D);
                }
                self.pass_up(response, out);
            }

            // Each 2xx retransmission goes up so the TU sends its ACK again.
            (Accepted, 200..=299) => self.pass_up(response, out),

            (Completed, 300..=699) => {
                if let Some(ack) = &self.ack {
                    out.transmit(self.target, ack.clone());
                }
            }

            (state, status) => {
                trace!(key = %self.key, ?state, status, "response absorbed");
            }
        }
    }

    fn on_non_invite_response(
        &mut self,
        response: Response,
        config: &TimerConfig,
        now: Instant,
        out: &mut Outbox,
    ) {
        use ClientState::*;
        match (self.state, response.status) {
            (Trying | Proceeding, 100..=199) => {
                self.enter(Proceeding);
                self.pass_up(response, out);
            }

            (Trying | Proceeding, 200..=699) => {
                self.timers.retransmit = None;
                self.enter(Completed);
                if self.target.transport.is_reliable() {
                    self.terminate();
                } else {
                    self.timers.state = Some(now + config.t4);
                }
                self.pass_up(response, out);
            }

            (state, status) => {
                trace!(key = %self.key, ?state, status, "response absorbed");
            }
        }
    }

    pub(super) fn on_timer(&mut self, kind: TimerKind, config: &TimerConfig, out: &mut Outbox) {
        match kind {
            TimerKind::Retransmit => self.on_retransmit_timer(config, out),
            TimerKind::State => self.on_state_timer(out),
            TimerKind::Trying => self.timers.trying = None,
        }
    }

    fn on_retransmit_timer(&mut self, config: &TimerConfig, out: &mut Outbox) {
        let Some(retransmit) = self.timers.retransmit else {
            return;
        };
        let next = match self.state {
            // Timer A doubles without a cap; Timer B ends it first.
            ClientState::Calling => retransmit.next(None),
            ClientState::Trying => retransmit.next(Some(config.t2)),
            // Timer E in Proceeding is T2 flat.
            ClientState::Proceeding if !self.is_invite() => Retransmit {
                at: retransmit.at + config.t2,
                interval: config.t2,
            },
            _ => {
                self.timers.retransmit = None;
                return;
            }
        };
        trace!(key = %self.key, "request retransmitted");
        out.transmit(self.target, self.payload.clone());
        self.timers.retransmit = Some(next);
    }

    fn on_state_timer(&mut self, out: &mut Outbox) {
        match self.state {
            // Timer B (Calling), Timer C (INVITE Proceeding) or Timer F.
            ClientState::Calling | ClientState::Trying | ClientState::Proceeding => {
                debug!(key = %self.key, state = ?self.state, "client transaction timed out");
                out.events.push_back(Event::Timeout {
                    key: self.key.clone(),
                });
                self.terminate();
            }

            // Timer D, K or M.
            ClientState::Completed | ClientState::Accepted | ClientState::Terminated => {
                self.terminate();
            }
        }
    }

    /// Ends the transaction because its transport failed; the TU hears of it
    /// as a timeout unless a final response already arrived.
    pub(super) fn on_transport_failure(&mut self, out: &mut Outbox) {
        if matches!(
            self.state,
            ClientState::Calling | ClientState::Trying | ClientState::Proceeding
        ) {
            out.events.push_back(Event::Timeout {
                key: self.key.clone(),
            });
        }
        self.terminate();
    }

    /// Ends the transaction because its request could not be delivered;
    /// the TU hears of it as 503 unless a final response already arrived.
    pub(super) fn on_transport_error(&mut self, out: &mut Outbox) {
        if matches!(
            self.state,
            ClientState::Calling | ClientState::Trying | ClientState::Proceeding
        ) {
            out.events.push_back(Event::TransportError {
                key: self.key.clone(),
            });
        }
        self.terminate();
    }

    fn send_ack(&mut self, response: &Response, out: &mut Outbox) {
        let Some(invite) = &self.request else {
            return;
        };
        let ack = build_ack(invite, response).to_bytes();
        out.transmit(self.target, ack.clone());
        self.ack = Some(ack);
    }

    fn pass_up(&self, response: Response, out: &mut Outbox) {
        out.events.push_back(Event::Response {
            key: self.key.clone(),
            response,
        });
    }

    fn enter(&mut self, state: ClientState) {
        if self.state != state {
            debug!(key = %self.key, from = ?self.state, to = ?state, "client transaction state");
            self.state = state;
        }
    }

    fn terminate(&mut self) {
        self.enter(ClientState::Terminated);
        self.timers.clear();
    }
}

/// Builds the ACK for a non-2xx final response to `invite` (RFC 3261
/// section 17.1.1.3). It keeps the Request-URI, Call-ID, From and CSeq number
/// of the INVITE, takes the To (with its tag) from the response, and carries
/// only the top Via of the INVITE plus the INVITE's Route headers.
pub(super) fn build_ack(invite: &Request, response: &Response) -> Request {
    let mut ack = Request::new(Method::Ack, invite.uri.clone());
    let headers = &invite.headers;
    if let Ok(via) = headers.top_via() {
        ack.headers.push("Via", via.to_string());
    }
    for route in headers.get_all("Route") {
        ack.headers.push("Route", route.to_owned());
    }
    let max_forwards = headers.get("Max-Forwards").unwrap_or("70");
    ack.headers.push("Max-Forwards", max_forwards.to_owned());
    if let Some(from) = headers.get("From") {
        ack.headers.push("From", from.to_owned());
    }
    if let Some(to) = response.headers.get("To").or_else(|| headers.get("To")) {
        ack.headers.push("To", to.to_owned());
    }
    if let Some(call_id) = headers.call_id() {
        ack.headers.push("Call-ID", call_id.to_owned());
    }
    if let Ok(cseq) = headers.cseq() {
        ack.headers.push("CSeq", format!("{} ACK", cseq.seq));
    }
    ack
}
