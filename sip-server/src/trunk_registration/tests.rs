//! The registration client on a virtual clock, driven through the real
//! transaction layer (so Timer E retransmits and Timer F times out) against
//! a registrar played by the test, which checks the digest answers with
//! this crate's server-side authenticator.

use std::collections::VecDeque;
use std::time::{Duration, Instant, SystemTime};

use sip_message::{Message, Request, Response};

use super::*;
use crate::auth::{Algorithm, Credentials, DigestAuthenticator};
use crate::transaction::{Event, Target, TimerConfig, TransactionLayer};

const REGISTRAR: &str = "192.0.2.10:5060";
const PASSWORD: &str = "provider-secret";

fn config() -> RegistrationConfig {
    RegistrationConfig {
        registrar: crate::locate::OutboundTarget::parse(REGISTRAR).unwrap(),
        domain: "carrier.example".to_owned(),
        user: "4930555".to_owned(),
        contact_user: "t0123456789abcdef".to_owned(),
        auth_user: "acct-77".to_owned(),
        password: PASSWORD.to_owned(),
        expires: Duration::from_secs(3600),
        retry: Duration::from_secs(30),
        max_retry: Duration::from_secs(300),
    }
}

/// The client, the transaction layer between it and the wire, and the
/// REGISTERs that reached the wire, retransmissions included.
struct Harness {
    client: RegistrationClient,
    layer: TransactionLayer,
    start: Instant,
    now: Instant,
    wire: VecDeque<Request>,
    /// Registrar side of the digest exchange.
    server: DigestAuthenticator,
}

impl Harness {
    fn new(config: RegistrationConfig) -> Harness {
        let start = Instant::now();
        let contact: Uri = "sip:t0123456789abcdef@198.51.100.7:5060".parse().unwrap();
        let client = RegistrationClient::new(
            "carrier",
            config,
            contact,
            "reg-1@198.51.100.7".to_owned(),
            start,
        );
        let mut harness = Harness {
            client,
            layer: TransactionLayer::new(TimerConfig::default()),
            start,
            now: start,
            wire: VecDeque::new(),
            server: DigestAuthenticator::new("carrier.example", &[Algorithm::Sha256]),
        };
        harness.client.handle_timeout(start);
        harness.pump();
        harness
    }

    fn target() -> Target {
        Target {
            transport: TransportKind::Udp,
            addr: REGISTRAR.parse().unwrap(),
            connection: None,
        }
    }

    fn elapsed(&self) -> Duration {
        self.now - self.start
    }

    /// Moves requests from the client into the layer, transmissions onto
    /// the wire and the layer's events back into the client, until quiet.
    fn pump(&mut self) {
        loop {
            let mut progressed = false;
            while let Some(mut request) = self.client.poll_request() {
                progressed = true;
                let via = format!(
                    "SIP/2.0/UDP 198.51.100.7:5060;branch={};rport",
                    TransactionLayer::new_branch()
                );
                request.headers.push_front("Via", via);
                self.layer.send_request(request, Self::target(), self.now);
            }
            while let Some(transmit) = self.layer.poll_transmit() {
                progressed = true;
                match Message::parse(&transmit.payload) {
                    Ok(Message::Request(request)) => self.wire.push_back(request),
                    other => panic!("unexpected transmission {other:?}"),
                }
            }
            while let Some(event) = self.layer.poll_event() {
                progressed = true;
                match event {
                    Event::Response { response, .. } => {
                        self.client.handle_response(&response, self.now)
                    }
                    Event::Timeout { .. } => self.client.handle_no_response(self.now),
                    other => panic!("unexpected event {other:?}"),
                }
            }
            if !progressed {
                return;
            }
        }
    }

    /// Runs every timer of the layer and the client up to `until`.
    fn advance(&mut self, until: Instant) {
        for _ in 0..10_000 {
            let next = [self.layer.poll_timeout(), self.client.poll_timeout()]
                .into_iter()
                .flatten()
                .min();
            match next {
                Some(at) if at <= until => {
                    self.now = at.max(self.now);
                    self.layer.handle_timeout(self.now);
                    self.client.handle_timeout(self.now);
                    self.pump();
                }
                _ => break,
            }
        }
        self.now = until;
    }

    fn advance_by(&mut self, by: Duration) {
        self.advance(self.now + by);
    }

    /// The next REGISTER on the wire; panics when there is none.
    fn next_register(&mut self) -> Request {
        self.wire.pop_front().expect("a REGISTER on the wire")
    }

    /// Responds to `request` with `status` and extra headers.
    fn respond(&mut self, request: &Request, status: u16, headers: &[(&str, &str)]) {
        let mut response = Response::for_request(request, status, None);
        for (name, value) in headers {
            response.headers.push(name, *value);
        }
        self.layer
            .handle_message(Message::Response(response), Self::target(), self.now);
        self.pump();
    }

    fn challenge(&mut self, request: &Request) {
        let challenges = self.server.challenges(SystemTime::now(), false);
        let headers: Vec<(&str, &str)> = challenges
            .iter()
            .map(|value| ("WWW-Authenticate", value.as_str()))
            .collect();
        self.respond(request, 401, &headers);
    }

    /// Checks the request's Authorization with the registrar's password.
    fn verify(&mut self, request: &Request) -> Result<(), crate::auth::AuthError> {
        let header = request
            .headers
            .get("Authorization")
            .expect("Authorization header");
        let credentials = Credentials::parse(header)?;
        self.server
            .verify(&credentials, request, SystemTime::now(), |user| {
                (user == "acct-77").then_some(PASSWORD)
            })
            .map(|_| ())
    }
}

fn expires_of(request: &Request) -> Option<u32> {
    request.headers.expires().unwrap()
}

fn nonce_count(request: &Request) -> Option<String> {
    let header = request.headers.get("Authorization")?;
    Credentials::parse(header).ok()?.nc
}

#[test]
fn challenge_then_registered() {
    let mut harness = Harness::new(config());
    let first = harness.next_register();
    assert_eq!(first.uri.to_string(), "sip:carrier.example");
    assert_eq!(
        first.headers.to().unwrap().uri.to_string(),
        "sip:4930555@carrier.example"
    );
    assert!(first.headers.get("Authorization").is_none());
    assert_eq!(expires_of(&first), Some(3600));
    assert_eq!(harness.client.state(), RegistrationState::Registering);

    harness.challenge(&first);
    let second = harness.next_register();
    assert_eq!(harness.verify(&second), Ok(()));
    assert_eq!(nonce_count(&second).as_deref(), Some("00000001"));
    assert_eq!(second.headers.call_id(), first.headers.call_id());
    assert_eq!(second.headers.cseq().unwrap().seq, 2);

    harness.respond(
        &second,
        200,
        &[(
            "Contact",
            "<sip:t0123456789abcdef@198.51.100.7:5060>;expires=1800, <sip:other@192.0.2.99>;expires=60",
        )]);
    let status = harness.client.status();
    assert_eq!(status.state, RegistrationState::Registered);
    assert_eq!(status.last_status, Some(200));
    assert_eq!(
        status.expires_at,
        Some(harness.now + Duration::from_secs(1800))
    );
    assert!(harness.wire.is_empty());
}

#[test]
fn refresh_before_expiry_reuses_nonce() {
    let mut harness = Harness::new(config());
    let first = harness.next_register();
    harness.challenge(&first);
    let second = harness.next_register();
    // Expires header only: the Contact carries no expires parameter.
    harness.respond(&second, 200, &[("Expires", "4")]);
    let granted_at = harness.elapsed();

    harness.advance_by(Duration::from_millis(1_999));
    assert!(harness.wire.is_empty(), "refresh before half the interval");
    harness.advance_by(Duration::from_millis(1));
    let refresh = harness.next_register();
    assert_eq!(harness.elapsed() - granted_at, Duration::from_secs(2));
    assert_eq!(nonce_count(&refresh).as_deref(), Some("00000002"));
    assert_eq!(harness.verify(&refresh), Ok(()));
    harness.respond(&refresh, 200, &[("Expires", "4")]);
    assert_eq!(harness.client.state(), RegistrationState::Registered);

    // A long registration is refreshed REFRESH_MARGIN before it expires.
    harness.advance_by(Duration::from_secs(2));
    let long = harness.next_register();
    harness.respond(&long, 200, &[("Expires", "3600")]);
    harness.advance_by(Duration::from_secs(3539));
    assert!(harness.wire.is_empty());
    harness.advance_by(Duration::from_secs(1));
    assert!(harness.wire.pop_front().is_some());
}

#[test]
fn stale_challenge_answered_again() {
    let mut harness = Harness::new(config());
    let first = harness.next_register();
    harness.challenge(&first);
    let second = harness.next_register();
    harness.respond(&second, 200, &[("Expires", "600")]);
    harness.advance_by(Duration::from_secs(540));
    let refresh = harness.next_register();
    // The registrar forgot the nonce: a fresh challenge is answered once.
    harness.challenge(&refresh);
    let answered = harness.next_register();
    assert_eq!(nonce_count(&answered).as_deref(), Some("00000001"));
    assert_eq!(harness.verify(&answered), Ok(()));
    harness.respond(&answered, 200, &[("Expires", "600")]);
    assert_eq!(harness.client.state(), RegistrationState::Registered);
}

#[test]
fn wrong_password_stops() {
    let mut harness = Harness::new(RegistrationConfig {
        password: "wrong".to_owned(),
        ..config()
    });
    let first = harness.next_register();
    harness.challenge(&first);
    let second = harness.next_register();
    assert!(harness.verify(&second).is_err());
    harness.challenge(&second);
    assert!(harness.wire.is_empty(), "no third REGISTER");
    let status = harness.client.status();
    assert_eq!(status.state, RegistrationState::Failed);
    assert_eq!(status.last_reason.as_deref(), Some("credentials rejected"));
    assert_eq!(harness.client.poll_timeout(), None);
}

#[test]
fn interval_too_brief_raises_expiry() {
    let mut harness = Harness::new(RegistrationConfig {
        expires: Duration::from_secs(60),
        ..config()
    });
    let first = harness.next_register();
    assert_eq!(expires_of(&first), Some(60));
    harness.respond(&first, 423, &[("Min-Expires", "600")]);
    let second = harness.next_register();
    assert_eq!(expires_of(&second), Some(600));
    harness.respond(&second, 200, &[]);
    let status = harness.client.status();
    assert_eq!(status.state, RegistrationState::Registered);
    // No Contact and no Expires in the 2xx: the expiry asked for holds.
    assert_eq!(
        status.expires_at,
        Some(harness.now + Duration::from_secs(600))
    );
}

#[test]
fn interval_too_brief_without_raise_retries() {
    let mut harness = Harness::new(config());
    let first = harness.next_register();
    harness.respond(&first, 423, &[("Min-Expires", "60")]);
    assert!(harness.wire.is_empty());
    assert_eq!(harness.client.state(), RegistrationState::Retrying);
}

#[test]
fn forbidden_stops() {
    for status in [403, 404, 603] {
        let mut harness = Harness::new(config());
        let first = harness.next_register();
        harness.respond(&first, status, &[]);
        assert_eq!(
            harness.client.state(),
            RegistrationState::Failed,
            "{status}"
        );
        assert_eq!(harness.client.status().last_status, Some(status));
        harness.advance_by(Duration::from_secs(7200));
        assert!(harness.wire.is_empty(), "{status}: nothing sent after stop");
    }
}

#[test]
fn timeout_retries_with_capped_backoff() {
    let mut harness = Harness::new(config());
    let mut attempts = Vec::new();
    let mut retransmissions = 0;
    // Never answer: Timer E retransmits over UDP, Timer F ends each
    // transaction after 32 s, and the client backs off 30, 60, 120 and
    // 240 s, then 300 s (the cap) each time.
    harness.advance_by(Duration::from_secs(1800));
    let mut last_call_seq = 0;
    while let Some(request) = harness.wire.pop_front() {
        let seq = request.headers.cseq().unwrap().seq;
        if seq == last_call_seq {
            retransmissions += 1;
        } else {
            attempts.push(seq);
            last_call_seq = seq;
        }
    }
    assert!(retransmissions > 0, "the layer retransmitted");
    // REGISTERs left at 0, 62, 154, 306, 578, 910, 1242 and 1574 s: each
    // waits 32 s for Timer F, then the backoff.
    assert_eq!(attempts, vec![1, 2, 3, 4, 5, 6, 7, 8]);
    let status = harness.client.status();
    assert_eq!(status.state, RegistrationState::Retrying);
    assert_eq!(status.last_status, Some(408));
    assert_eq!(
        harness.client.poll_timeout(),
        Some(harness.start + Duration::from_secs(1574 + 32 + 300))
    );
}

#[test]
fn server_error_honours_retry_after() {
    let mut harness = Harness::new(config());
    let first = harness.next_register();
    harness.respond(&first, 503, &[("Retry-After", "17 (maintenance)")]);
    assert_eq!(harness.client.state(), RegistrationState::Retrying);
    assert_eq!(
        harness.client.poll_timeout(),
        Some(harness.now + Duration::from_secs(17))
    );
    harness.advance_by(Duration::from_secs(17));
    let second = harness.next_register();
    harness.respond(&second, 500, &[]);
    // Without Retry-After: the second failure waits twice the first delay.
    assert_eq!(
        harness.client.poll_timeout(),
        Some(harness.now + Duration::from_secs(60))
    );
}

#[test]
fn shutdown_unregisters() {
    let mut harness = Harness::new(config());
    let first = harness.next_register();
    harness.challenge(&first);
    let second = harness.next_register();
    harness.respond(&second, 200, &[("Expires", "3600")]);

    harness.client.unregister();
    harness.pump();
    let last = harness.next_register();
    assert_eq!(expires_of(&last), Some(0));
    assert_eq!(nonce_count(&last).as_deref(), Some("00000002"));
    assert_eq!(harness.verify(&last), Ok(()));
    assert!(!harness.client.is_finished());
    harness.respond(&last, 200, &[]);
    assert_eq!(harness.client.state(), RegistrationState::Unregistered);
    assert!(harness.client.is_finished());
    assert_eq!(harness.client.status().expires_at, None);
}

#[test]
fn unregister_before_any_binding_sends_nothing() {
    let mut harness = Harness::new(config());
    let first = harness.next_register();
    harness.respond(&first, 503, &[]);
    harness.client.unregister();
    harness.pump();
    assert!(harness.wire.is_empty());
    assert!(harness.client.is_finished());
}

#[test]
fn stale_response_ignored() {
    let mut harness = Harness::new(config());
    let first = harness.next_register();
    harness.challenge(&first);
    let second = harness.next_register();
    // A late answer to the first REGISTER names an old CSeq.
    let mut late = Response::for_request(&first, 200, None);
    late.headers.push("Expires", "60");
    harness.client.handle_response(&late, harness.now);
    assert_eq!(harness.client.state(), RegistrationState::Registering);
    harness.respond(&second, 200, &[]);
    assert_eq!(harness.client.state(), RegistrationState::Registered);
}
