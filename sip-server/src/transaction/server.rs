//! Server transactions: INVITE (RFC 3261 section 17.2.1 with the Accepted
//! state of RFC 6026) and non-INVITE (section 17.2.2), and where their
//! responses go (section 18.2.2 and RFC 3581).

use std::net::{IpAddr, SocketAddr};
use std::time::Instant;

use bytes::Bytes;
use sip_message::{Host, Method, Request, Response, Via};
use tracing::{debug, trace, warn};

use super::completed::Completed;
use super::timers::{Retransmit, TRYING_DELAY, TimerConfig, TimerKind, Timers};
use super::{Event, Outbox, Target, TransactionKey};

/// Port of a sent-by without one, for UDP and TCP (RFC 3261 section 18.2.2).
const DEFAULT_SIP_PORT: u16 = 5060;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum ServerState {
    /// Non-INVITE request passed up, no response sent yet.
    Trying,
    Proceeding,
    /// Final response sent: resent on request retransmissions (INVITE:
    /// Timers G and H; non-INVITE: Timer J).
    Completed,
    /// ACK for a non-2xx final response received (Timer I).
    Confirmed,
    /// 2xx to INVITE sent: retransmitted until the TU reports the ACK
    /// (Timer L).
    Accepted,
    Terminated,
}

pub(super) struct ServerTransaction {
    key: TransactionKey,
    /// The INVITE as passed to the TU, kept to build 100 Trying until the
    /// first response goes out. Other methods get no 100 from here, so a
    /// finished non-INVITE transaction, kept for Timer J, keeps no request.
    invite: Option<Request>,
    is_invite: bool,
    response_target: Target,
    state: ServerState,
    last_response: Option<Bytes>,
    ack_received: bool,
    pub(super) timers: Timers,
}

impl ServerTransaction {
    pub(super) fn new(
        key: TransactionKey,
        request: &Request,
        response_target: Target,
        now: Instant,
    ) -> ServerTransaction {
        let invite = request.method == Method::Invite;
        let timers = Timers {
            trying: invite.then_some(now + TRYING_DELAY),
            ..Timers::default()
        };
        ServerTransaction {
            key,
            invite: invite.then(|| request.clone()),
            is_invite: invite,
            response_target,
            state: if invite {
                ServerState::Proceeding
            } else {
                ServerState::Trying
            },
            last_response: None,
            ack_received: false,
            timers,
        }
    }

    pub(super) fn is_terminated(&self) -> bool {
        self.state == ServerState::Terminated
    }

    pub(super) fn response_target(&self) -> Target {
        self.response_target
    }

    fn is_invite(&self) -> bool {
        self.is_invite
    }

    /// Handles a retransmission of the request by sending the last response
    /// again. Accepted and Confirmed absorb it silently (RFC 6026 section
    /// 7.1), because in Accepted the 2xx has its own retransmission timer.
    pub(super) fn on_retransmission(&mut self, out: &mut Outbox) {
        match self.state {
            ServerState::Proceeding | ServerState::Completed => {
                if let Some(response) = &self.last_response {
                    trace!(key = %self.key, "last response sent again for a request retransmission");
                    out.transmit(self.response_target, response.clone());
                }
            }
            state => trace!(key = %self.key, ?state, "request retransmission absorbed"),
        }
    }

    /// Handles an ACK with the branch of this INVITE. Returns true when the
    /// TU must see it, which is an ACK for a 2xx that reuses the INVITE's branch.
    pub(super) fn on_ack(&mut self, config: &TimerConfig, now: Instant) -> bool {
        match self.state {
            ServerState::Completed => {
                self.timers.retransmit = None;
                self.enter(ServerState::Confirmed);
                if self.response_target.transport.is_reliable() {
                    self.terminate();
                } else {
                    // Timer I
                    self.timers.state = Some(now + config.t4);
                }
                false
            }
            ServerState::Accepted => true,
            state => {
                trace!(key = %self.key, ?state, "ACK absorbed");
                false
            }
        }
    }

    pub(super) fn send_response(
        &mut self,
        response: Response,
        config: &TimerConfig,
        now: Instant,
        out: &mut Outbox,
    ) {
        let status = response.status;
        if !(100..=699).contains(&status) {
            warn!(key = %self.key, status, "response with invalid status code dropped");
            return;
        }
        if self.is_invite() {
            self.send_invite_response(status, response.to_bytes(), config, now, out);
        } else {
            self.send_non_invite_response(status, response.to_bytes(), out);
        }
    }

    fn send_invite_response(
        &mut self,
        status: u16,
        payload: Bytes,
        config: &TimerConfig,
        now: Instant,
        out: &mut Outbox,
    ) {
        match (self.state, status) {
            (ServerState::Proceeding, 100..=199) => {
                self.timers.trying = None;
                self.send(payload, out);
            }

            (ServerState::Proceeding, 200..=299) => {
                // RFC 3261 section 13.3.1.4: the 2xx is retransmitted from T1
                // doubling up to T2 until the ACK, on every transport, and
                // Timer L keeps the transaction for 64*T1 either way.
                self.timers.trying = None;
                self.send(payload, out);
                self.timers.retransmit = Some(Retransmit::first(now, config.t1));
                self.timers.state = Some(now + config.transaction_timeout());
                self.enter(ServerState::Accepted);
            }

            (ServerState::Proceeding, _) => {
                self.timers.trying = None;
                self.send(payload, out);
                if !self.response_target.transport.is_reliable() {
                    // Timer G
                    self.timers.retransmit = Some(Retransmit::first(now, config.t1));
                }
                // Timer H
                self.timers.state = Some(now + config.transaction_timeout());
                self.enter(ServerState::Completed);
            }

            // The TU may pass 2xx retransmissions of its own (RFC 6026).
            (ServerState::Accepted, 200..=299) => {
                out.transmit(self.response_target, payload);
            }

            (state, status) => {
                warn!(key = %self.key, ?state, status, "response after the final one dropped");
            }
        }
    }

    fn send_non_invite_response(&mut self, status: u16, payload: Bytes, out: &mut Outbox) {
        match (self.state, status) {
            (ServerState::Trying | ServerState::Proceeding, 100..=199) => {
                self.send(payload, out);
                self.enter(ServerState::Proceeding);
            }

            (ServerState::Trying | ServerState::Proceeding, _) => {
                self.send(payload, out);
                self.enter(ServerState::Completed);
                // Over UDP, the layer moves the transaction to its store of
                // completed ones, which runs Timer J (see `completed_response`).
                if self.response_target.transport.is_reliable() {
                    self.terminate();
                }
            }

            (state, status) => {
                warn!(key = %self.key, ?state, status, "response after the final one dropped");
            }
        }
    }

    /// Returns what a non-INVITE transaction over UDP must send again during
    /// Timer J, once it has sent its final response, and `None` otherwise.
    pub(super) fn completed_response(&self) -> Option<Completed> {
        if self.is_invite || self.state != ServerState::Completed {
            return None;
        }
        Some(Completed {
            target: self.response_target,
            response: self.last_response.clone()?,
        })
    }

    /// Stops the 2xx retransmissions once the TU has matched an ACK to them.
    pub(super) fn on_ack_reported(&mut self) {
        if self.state == ServerState::Accepted {
            self.ack_received = true;
            self.timers.retransmit = None;
        }
    }

    pub(super) fn on_timer(&mut self, kind: TimerKind, config: &TimerConfig, out: &mut Outbox) {
        match kind {
            TimerKind::Retransmit => self.on_retransmit_timer(config, out),
            TimerKind::State => self.on_state_timer(out),
            TimerKind::Trying => self.on_trying_timer(out),
        }
    }

    fn on_retransmit_timer(&mut self, config: &TimerConfig, out: &mut Outbox) {
        let Some(retransmit) = self.timers.retransmit else {
            return;
        };
        let due = match self.state {
            ServerState::Completed => true,
            ServerState::Accepted => !self.ack_received,
            _ => false,
        };
        match (&self.last_response, due) {
            (Some(response), true) => {
                trace!(key = %self.key, "response retransmitted");
                out.transmit(self.response_target, response.clone());
                self.timers.retransmit = Some(retransmit.next(Some(config.t2)));
            }
            _ => self.timers.retransmit = None,
        }
    }

    fn on_state_timer(&mut self, out: &mut Outbox) {
        match self.state {
            ServerState::Completed if self.is_invite() => {
                // Timer H: the ACK never came.
                debug!(key = %self.key, "no ACK for the final response");
            }
            ServerState::Accepted if !self.ack_received => {
                debug!(key = %self.key, "no ACK for the 2xx");
                out.events.push_back(Event::AckTimeout {
                    key: self.key.clone(),
                });
            }
            _ => {}
        }
        self.terminate();
    }

    fn on_trying_timer(&mut self, out: &mut Outbox) {
        self.timers.trying = None;
        if self.state == ServerState::Proceeding
            && self.last_response.is_none()
            && let Some(request) = &self.invite
        {
            let mut trying = Response::for_request(request, 100, None);
            // RFC 3261 section 8.2.6.1: a 100 Trying echoes the Timestamp.
            if let Some(timestamp) = request.headers.get("Timestamp") {
                trying.headers.push("Timestamp", timestamp.to_owned());
            }
            self.send(trying.to_bytes(), out);
        }
    }

    /// Ends the transaction because its connection closed: nothing it sends
    /// could arrive.
    pub(super) fn on_transport_failure(&mut self) {
        self.terminate();
    }

    fn send(&mut self, payload: Bytes, out: &mut Outbox) {
        out.transmit(self.response_target, payload.clone());
        self.last_response = Some(payload);
        // With a response sent, the automatic 100 Trying is moot.
        self.invite = None;
    }

    fn enter(&mut self, state: ServerState) {
        if self.state != state {
            debug!(key = %self.key, from = ?self.state, to = ?state, "server transaction state");
            self.state = state;
        }
    }

    fn terminate(&mut self) {
        self.enter(ServerState::Terminated);
        self.timers.clear();
    }
}

/// Adds `received` to the top Via of `request` when its sent-by host is not
/// the source address (RFC 3261 section 18.2.1), and fills a bare `rport`
/// with the source port, which also requires `received` (RFC 3581 section 4).
/// Returns the top Via as it now reads.
pub(super) fn stamp_top_via(request: &mut Request, via: &Via, source: SocketAddr) -> Via {
    let source_ip = source.ip().to_canonical();
    let bare_rport = via.rport() == Some(None);
    let host_is_source = match &via.host {
        Host::Ipv4(ip) => IpAddr::V4(*ip) == source_ip,
        Host::Ipv6(ip) => IpAddr::V6(*ip).to_canonical() == source_ip,
        Host::Domain(_) => false,
    };
    // A `received` the peer wrote itself must not steer our responses, so it
    // is overwritten unless it already names the source.
    let received_is_source = via.received().and_then(parse_ip) == Some(source_ip);
    let peer_received = via.received().is_some() && !received_is_source;
    if host_is_source && !bare_rport && !peer_received {
        return via.clone();
    }
    let mut stamped = via.clone();
    stamped.params.set("received", Some(&source_ip.to_string()));
    if bare_rport {
        stamped
            .params
            .set("rport", Some(&source.port().to_string()));
    }
    request.headers.remove_first("Via");
    request.headers.push_front("Via", stamped.to_string());
    stamped
}

/// Returns the destination of responses to a request (RFC 3261 section
/// 18.2.2, RFC 3581 section 4). On a reliable transport it is the connection
/// the request came on. Otherwise it is `received` (else the sent-by host) at
/// the `rport` value (else the sent-by port, else 5060). `via` is the top Via
/// after [`stamp_top_via`].
pub(super) fn response_target(via: &Via, source: Target) -> Target {
    if source.transport.is_reliable() {
        return source;
    }
    let port = match via.rport() {
        Some(Some(port)) => port,
        _ => via.port.unwrap_or(DEFAULT_SIP_PORT),
    };
    let received = via.received().and_then(parse_ip);
    let sent_by = match &via.host {
        Host::Ipv4(ip) => Some(IpAddr::V4(*ip)),
        Host::Ipv6(ip) => Some(IpAddr::V6(*ip)),
        Host::Domain(_) => None,
    };
    match received.or(sent_by) {
        Some(ip) => Target {
            transport: source.transport,
            addr: SocketAddr::new(ip, port),
            connection: None,
        },
        // A domain sent-by always gets `received`, so this only happens
        // with an unparsable `received` from the peer: respond to the source.
        None => source,
    }
}

fn parse_ip(text: &str) -> Option<IpAddr> {
    let bare = text.trim_start_matches('[').trim_end_matches(']');
    bare.parse().ok()
}
