//! A client layer and a server layer, each with a small TU, joined by a
//! simulated link that drops, duplicates and reorders datagrams under a
//! seeded RNG. Every call must end with the status its plan calls for and
//! both layers must end empty.

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

use bytes::Bytes;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use sip_message::{Message, Method, Request, Response};

use super::*;
use crate::transaction::TransactionKey;

/// The link drops each distinct message (retransmissions are byte for byte
/// the same) at most this often, so that 64*T1 of retransmissions always
/// get one copy through: Timer A sends an INVITE 7 times.
const MAX_DROPS_PER_MESSAGE: u32 = 3;
const LOSS: f64 = 0.25;
const DUPLICATION: f64 = 0.15;
const MAX_DELAY_MS: u64 = 150;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
enum Plan {
    /// 180 after 300 ms, then 200: the client ACKs each 2xx it receives.
    Answer,
    /// 486 after 100 ms (or after the automatic 100 Trying when later).
    Busy,
    /// 180, and the client sends CANCEL on the first provisional response it
    /// receives (a lone 180 may be lost: provisional responses are not
    /// retransmitted): 200 to the CANCEL and 487 to the INVITE.
    Cancel,
    /// OPTIONS answered 200 at once.
    Options,
}

impl Plan {
    const ALL: [Plan; 4] = [Plan::Answer, Plan::Busy, Plan::Cancel, Plan::Options];

    fn prefix(self) -> &'static str {
        match self {
            Plan::Answer => "answer",
            Plan::Busy => "busy",
            Plan::Cancel => "cancel",
            Plan::Options => "options",
        }
    }

    fn of(call_id: &str) -> Plan {
        Plan::ALL
            .into_iter()
            .find(|plan| call_id.starts_with(plan.prefix()))
            .expect("call id names its plan")
    }
}

struct Datagram {
    at: Instant,
    order: u64,
    to_server: bool,
    payload: Bytes,
}

struct Link {
    rng: StdRng,
    reliable: bool,
    in_flight: Vec<Datagram>,
    next_order: u64,
    /// Copies dropped so far of each distinct message.
    drops: HashMap<Bytes, u32>,
}

impl Link {
    fn send(&mut self, now: Instant, to_server: bool, payload: Bytes) {
        if self.reliable {
            // In order with a fixed delay, like a TCP connection.
            self.push(now + ms(10), to_server, payload);
            return;
        }
        let drops = self.drops.entry(payload.clone()).or_default();
        if *drops < MAX_DROPS_PER_MESSAGE && self.rng.random_bool(LOSS) {
            *drops += 1;
            return;
        }
        let copies = if self.rng.random_bool(DUPLICATION) {
            2
        } else {
            1
        };
        for _ in 0..copies {
            let delay = ms(self.rng.random_range(1..=MAX_DELAY_MS));
            self.push(now + delay, to_server, payload.clone());
        }
    }

    fn push(&mut self, at: Instant, to_server: bool, payload: Bytes) {
        self.in_flight.push(Datagram {
            at,
            order: self.next_order,
            to_server,
            payload,
        });
        self.next_order += 1;
    }

    fn next_at(&self) -> Option<Instant> {
        self.in_flight.iter().map(|datagram| datagram.at).min()
    }

    fn take_due(&mut self, now: Instant) -> Vec<Datagram> {
        let (mut due, rest): (Vec<_>, Vec<_>) = self
            .in_flight
            .drain(..)
            .partition(|datagram| datagram.at <= now);
        self.in_flight = rest;
        due.sort_by_key(|datagram| (datagram.at, datagram.order));
        due
    }
}

/// What the client TU saw for one call.
#[derive(Default, Debug)]
struct ClientCall {
    invite_key: Option<TransactionKey>,
    cancel_key: Option<TransactionKey>,
    finals: Vec<u16>,
    cancel_finals: Vec<u16>,
    timeouts: usize,
}

/// What the server TU saw for one call.
#[derive(Default, Debug)]
struct ServerCall {
    invite: Option<(TransactionKey, Request)>,
    new_requests: HashMap<Method, usize>,
    acks_seen: usize,
    ack_timeouts: usize,
}

enum Action {
    StartCall(Plan, String),
    Respond(TransactionKey, Box<Request>, u16),
}

struct Scenario {
    now: Instant,
    reliable: bool,
    client: TransactionLayer,
    server: TransactionLayer,
    link: Link,
    actions: Vec<(Instant, Action)>,
    client_calls: HashMap<String, ClientCall>,
    server_calls: HashMap<String, ServerCall>,
    strays: usize,
}

impl Scenario {
    fn new(seed: u64, reliable: bool, start: Instant) -> Scenario {
        Scenario {
            now: start,
            reliable,
            client: layer(),
            server: layer(),
            link: Link {
                rng: StdRng::seed_from_u64(seed),
                reliable,
                in_flight: Vec::new(),
                next_order: 0,
                drops: HashMap::new(),
            },
            actions: Vec::new(),
            client_calls: HashMap::new(),
            server_calls: HashMap::new(),
            strays: 0,
        }
    }

    fn client_target(&self) -> Target {
        if self.reliable {
            tcp(CLIENT_ADDR, 1)
        } else {
            udp(CLIENT_ADDR)
        }
    }

    fn server_target(&self) -> Target {
        if self.reliable {
            tcp(SERVER_ADDR, 1)
        } else {
            udp(SERVER_ADDR)
        }
    }

    fn new_request(&self, method: Method, call_id: &str) -> Request {
        let branch = TransactionLayer::new_branch();
        let mut request = request(method, &branch, CLIENT_ADDR, call_id);
        let transport = self.client_target().transport.via_token();
        let via = format!("SIP/2.0/{transport} {CLIENT_ADDR};branch={branch};rport");
        request.headers.set("Via", via);
        request
    }

    fn start_call(&mut self, plan: Plan, call_id: String) {
        let method = if plan == Plan::Options {
            Method::Options
        } else {
            Method::Invite
        };
        let request = self.new_request(method, &call_id);
        let key = self
            .client
            .send_request(request, self.server_target(), self.now);
        let call = self.client_calls.entry(call_id).or_default();
        call.invite_key = Some(key);
    }

    /// Runs until both layers, the link and the TUs have nothing left.
    fn run(&mut self, start: Instant) {
        for _ in 0..100_000 {
            self.drain();
            let next = [
                self.link.next_at(),
                self.client.poll_timeout(),
                self.server.poll_timeout(),
                self.actions.iter().map(|(at, _)| *at).min(),
            ]
            .into_iter()
            .flatten()
            .min();
            let Some(next) = next else { return };
            assert!(
                next < start + Duration::from_secs(600),
                "scenario still running after 10 min"
            );
            self.now = self.now.max(next);
            self.step();
        }
        panic!("scenario did not settle in 100000 steps");
    }

    fn step(&mut self) {
        let now = self.now;
        for datagram in self.link.take_due(now) {
            let message = Message::parse(&datagram.payload).expect("layer output parses");
            if datagram.to_server {
                let source = self.client_target();
                self.server.handle_message(message, source, now);
            } else {
                let source = self.server_target();
                self.client.handle_message(message, source, now);
            }
            self.drain();
        }
        self.client.handle_timeout(now);
        self.server.handle_timeout(now);
        let (due, later): (Vec<_>, Vec<_>) = self.actions.drain(..).partition(|(at, _)| *at <= now);
        self.actions = later;
        for (_, action) in due {
            match action {
                Action::StartCall(plan, call_id) => self.start_call(plan, call_id),
                Action::Respond(key, request, status) => {
                    self.server
                        .send_response(&key, server_response(&request, status), now);
                }
            }
            self.drain();
        }
    }

    fn drain(&mut self) {
        loop {
            let mut progressed = false;
            while let Some(transmit) = self.client.poll_transmit() {
                assert_eq!(transmit.target, self.server_target());
                self.link.send(self.now, true, transmit.payload);
                progressed = true;
            }
            while let Some(transmit) = self.server.poll_transmit() {
                assert_eq!(transmit.target, self.client_target());
                self.link.send(self.now, false, transmit.payload);
                progressed = true;
            }
            while let Some(event) = self.client.poll_event() {
                self.client_tu(event);
                progressed = true;
            }
            while let Some(event) = self.server.poll_event() {
                self.server_tu(event);
                progressed = true;
            }
            if !progressed {
                return;
            }
        }
    }

    fn client_tu(&mut self, event: Event) {
        match event {
            Event::Response { key, response } => self.client_response(key, response),
            Event::Timeout { key } => {
                let call = self
                    .client_calls
                    .values_mut()
                    .find(|call| {
                        call.invite_key.as_ref() == Some(&key)
                            || call.cancel_key.as_ref() == Some(&key)
                    })
                    .expect("timeout for a known transaction");
                call.timeouts += 1;
            }
            Event::StrayResponse { .. } => self.strays += 1,
            other => panic!("client TU got {other:?}"),
        }
    }

    fn client_response(&mut self, key: TransactionKey, response: Response) {
        let call_id = response.headers.call_id().expect("Call-ID").to_owned();
        let status = response.status;
        let call = self.client_calls.get_mut(&call_id).expect("known call");
        if call.cancel_key.as_ref() == Some(&key) {
            if status >= 200 {
                call.cancel_finals.push(status);
            }
            return;
        }
        assert_eq!(call.invite_key.as_ref(), Some(&key));
        if status >= 200 {
            call.finals.push(status);
        }
        let plan = Plan::of(&call_id);
        let cancel_now = status < 200 && plan == Plan::Cancel && call.cancel_key.is_none();
        let invite_key = call.invite_key.clone().expect("INVITE key");
        if (200..300).contains(&status) && plan == Plan::Answer {
            // ACK for 2xx: a new branch, sent statelessly on every 2xx.
            let mut ack = self.new_request(Method::Ack, &call_id);
            ack.headers.set("CSeq", "1 ACK");
            ack.headers.set(
                "To",
                response.headers.get("To").unwrap_or_default().to_owned(),
            );
            let target = self.server_target();
            self.client.send_stateless(Message::Request(ack), target);
        }
        if cancel_now {
            let mut cancel = self.new_request(Method::Cancel, &call_id);
            let via = format!(
                "SIP/2.0/{} {CLIENT_ADDR};branch={};rport",
                self.client_target().transport.via_token(),
                invite_key.branch()
            );
            cancel.headers.set("Via", via);
            let key = self
                .client
                .send_request(cancel, self.server_target(), self.now);
            if let Some(call) = self.client_calls.get_mut(&call_id) {
                call.cancel_key = Some(key);
            }
        }
    }

    fn server_tu(&mut self, event: Event) {
        let now = self.now;
        match event {
            Event::Request {
                key: Some(key),
                request,
                ..
            } => {
                let call_id = request.headers.call_id().expect("Call-ID").to_owned();
                let call = self.server_calls.entry(call_id.clone()).or_default();
                *call.new_requests.entry(request.method.clone()).or_default() += 1;
                match (request.method.clone(), Plan::of(&call_id)) {
                    (Method::Invite, plan) => {
                        call.invite = Some((key.clone(), request.clone()));
                        let steps: &[(u64, u16)] = match plan {
                            Plan::Answer => &[(300, 180), (800, 200)],
                            Plan::Busy => &[(100, 486)],
                            _ => &[(100, 180)],
                        };
                        for &(delay, status) in steps {
                            let action =
                                Action::Respond(key.clone(), Box::new(request.clone()), status);
                            self.actions.push((now + ms(delay), action));
                        }
                    }
                    (Method::Cancel, _) => {
                        let invite = self.server.invite_for_cancel(&request);
                        let status = if invite.is_some() { 200 } else { 481 };
                        self.server
                            .send_response(&key, server_response(&request, status), now);
                        if let (Some(invite_key), Some((_, invite))) = (invite, &call.invite) {
                            let terminated = server_response(invite, 487);
                            self.server.send_response(&invite_key, terminated, now);
                        }
                    }
                    _ => self
                        .server
                        .send_response(&key, server_response(&request, 200), now),
                }
            }
            Event::Request {
                key: None, request, ..
            } => {
                assert_eq!(request.method, Method::Ack);
                let call_id = request.headers.call_id().expect("Call-ID").to_owned();
                let call = self.server_calls.entry(call_id).or_default();
                call.acks_seen += 1;
                if let Some((key, _)) = &call.invite {
                    self.server.ack_received(key);
                }
            }
            Event::AckTimeout { key } => {
                let call = self
                    .server_calls
                    .values_mut()
                    .find(|call| call.invite.as_ref().is_some_and(|(k, _)| *k == key))
                    .expect("AckTimeout for a known INVITE");
                call.ack_timeouts += 1;
            }
            other => panic!("server TU got {other:?}"),
        }
    }

    fn check(&self, seed: u64) {
        assert_eq!(
            self.client.len(),
            0,
            "seed {seed}: client transactions left"
        );
        assert_eq!(
            self.server.len(),
            0,
            "seed {seed}: server transactions left"
        );
        assert_eq!(self.strays, 0, "seed {seed}: stray responses");
        for (call_id, call) in &self.client_calls {
            let plan = Plan::of(call_id);
            assert_eq!(call.timeouts, 0, "seed {seed} {call_id}: timed out");
            match plan {
                Plan::Answer => {
                    assert!(!call.finals.is_empty(), "seed {seed} {call_id}: no 200");
                    assert!(
                        call.finals.iter().all(|status| *status == 200),
                        "seed {seed} {call_id}: {:?}",
                        call.finals
                    );
                }
                Plan::Busy => assert_eq!(call.finals, vec![486], "seed {seed} {call_id}"),
                Plan::Cancel => {
                    assert_eq!(call.finals, vec![487], "seed {seed} {call_id}");
                    assert_eq!(call.cancel_finals, vec![200], "seed {seed} {call_id}");
                }
                Plan::Options => assert_eq!(call.finals, vec![200], "seed {seed} {call_id}"),
            }
            let server = self.server_calls.get(call_id).expect("server saw the call");
            let method = if plan == Plan::Options {
                Method::Options
            } else {
                Method::Invite
            };
            assert_eq!(
                server.new_requests.get(&method),
                Some(&1),
                "seed {seed} {call_id}: passed up twice"
            );
            assert_eq!(server.ack_timeouts, 0, "seed {seed} {call_id}: ACK timeout");
            if plan == Plan::Answer {
                assert!(
                    server.acks_seen > 0,
                    "seed {seed} {call_id}: no ACK reached the TU"
                );
            } else {
                assert_eq!(
                    server.acks_seen, 0,
                    "seed {seed} {call_id}: ACK for non-2xx passed up"
                );
            }
        }
    }
}

/// Builds a UAS response, with a To tag on everything but 100.
fn server_response(request: &Request, status: u16) -> Response {
    response(request, status)
}

fn run_scenario(seed: u64, reliable: bool) {
    let start = Instant::now();
    let mut scenario = Scenario::new(seed, reliable, start);
    for (index, plan) in Plan::ALL.into_iter().cycle().take(8).enumerate() {
        let call_id = format!("{}-{index}@127.0.0.1", plan.prefix());
        let at = start + ms(index as u64 * 70);
        scenario
            .actions
            .push((at, Action::StartCall(plan, call_id)));
    }
    scenario.run(start);
    scenario.check(seed);
    let plans: HashSet<Plan> = scenario
        .client_calls
        .keys()
        .map(|id| Plan::of(id))
        .collect();
    assert_eq!(plans.len(), Plan::ALL.len());
}

#[test]
fn lossy_udp_link_every_call_completes() {
    for seed in 0..200 {
        run_scenario(seed, false);
    }
}

#[test]
fn tcp_link_every_call_completes() {
    run_scenario(0, true);
}
