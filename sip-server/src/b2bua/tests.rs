//! Call flows through the core on a virtual clock: a trunk caller and
//! agent phones exchange literal SIP text with the B2BUA.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant, SystemTime};

use sip_message::{Message, Method, Request, Response};

use super::*;
use crate::auth::{Algorithm, Credentials, expected_response};
use crate::transaction::TransportKind;

mod agent_events;
mod callback;
mod internal;
mod offerless;
mod recording;
mod reliable;
mod request_type;
mod session_refresh;
mod session_timer;
mod survey;
mod transfer;
mod trunk_failover;
mod trunks;
mod waiting;

const CALLER: &str = "192.0.2.10:5060";
const AGENT_1: &str = "198.51.100.21:5062";
const AGENT_2: &str = "198.51.100.22:5062";
const OUTSIDER: &str = "203.0.113.9:5060";

struct Harness {
    core: Core,
    now: Instant,
    sent: Vec<(Target, Message)>,
    commands: Vec<Command>,
}

fn config() -> CoreConfig {
    let passwords: HashMap<String, String> = [("1001", "pw-one"), ("1002", "pw-two")]
        .map(|(a, p)| (a.to_owned(), p.to_owned()))
        .into();
    CoreConfig {
        domain: "pbx.test".into(),
        sip_address: "127.0.0.1:5060".parse().unwrap(),
        listen_ports: Default::default(),
        media_address: IpAddr::V4(Ipv4Addr::LOCALHOST),
        trunks: vec![Trunk {
            name: "carrier".into(),
            allow: vec!["192.0.2.0/24".parse().unwrap()],
            registration: None,
            inbound_credentials: None,
            outbound: Some(crate::locate::OutboundTarget::parse("192.0.2.99:5060").unwrap()),
            numbering: None,
            trust_identity: true,
        }],
        dids: [(
            "5000".to_owned(),
            DidRoute {
                queue: "general".to_owned(),
                ..DidRoute::default()
            },
        )]
        .into(),
        queues: vec![acd::QueueConfig {
            name: "general".into(),
            ring_timeout: Duration::from_secs(10),
            max_wait: Duration::from_secs(60),
            retry_delay: Duration::from_secs(1),
            wrap_up: Duration::ZERO,
            ..acd::QueueConfig::default()
        }],
        queue_agents: [(
            "general".to_owned(),
            vec!["1001".to_owned(), "1002".to_owned()],
        )]
        .into(),
        agent_skills: HashMap::new(),
        agent_wrap_up: HashMap::new(),
        caller_order: acd::CallerOrder::default(),
        ring_in_use: false,
        registrar: crate::registrar::RegistrarConfig {
            min_expires: 60,
            max_expires: 3600,
            default_expires: 600,
            max_contacts: 5,
            qualify_interval: None,
            qualify_timeout: Duration::from_secs(5),
            flow_timer_secs: 120,
        },
        digest_algorithms: vec![Algorithm::Sha256, Algorithm::Md5],
        passwords,
        recording: true,
        recording_pause_code: Some("*1".to_owned()),
        recording_mixed_mono: false,
        timers: default_timers(),
        queue_media: HashMap::new(),
        prompts: PromptSet::new("/prompts"),
        voicemail_max: Duration::from_secs(120),
        overload: OverloadLimits::default(),
        session_timer: SessionTimerConfig::default(),
        surveys: HashMap::new(),
    }
}

fn udp(addr: &str) -> Target {
    Target {
        transport: TransportKind::Udp,
        addr: addr.parse().unwrap(),
        connection: None,
    }
}

impl Harness {
    fn new() -> Harness {
        Harness::with_config(config())
    }

    fn with_config(config: CoreConfig) -> Harness {
        let now = Instant::now();
        let core = Core::new(config, now, SystemTime::now()).unwrap();
        Harness {
            core,
            now,
            sent: Vec::new(),
            commands: Vec::new(),
        }
    }

    fn receive(&mut self, text: &str, from: &str) {
        self.receive_over(text, udp(from));
    }

    fn receive_over(&mut self, text: &str, source: Target) {
        let message = Message::parse(text.as_bytes()).expect("test message parses");
        self.core.handle_message(message, source, self.now);
        self.collect();
    }

    fn advance(&mut self, by: Duration) {
        let end = self.now + by;
        while let Some(at) = self.core.poll_timeout().filter(|at| *at <= end) {
            self.now = at.max(self.now);
            self.core.handle_timeout(self.now);
            self.collect();
        }
        self.now = end;
    }

    fn collect(&mut self) {
        while let Some(transmit) = self.core.poll_transmit() {
            let message = Message::parse(&transmit.payload).expect("core sends parsable SIP");
            self.sent.push((transmit.target, message));
        }
        while let Some(command) = self.core.poll_command() {
            self.commands.push(command);
        }
    }

    /// Takes every message sent to `to` so far.
    fn take_to(&mut self, to: &str) -> Vec<Message> {
        let addr: SocketAddr = to.parse().unwrap();
        let (mine, rest) = std::mem::take(&mut self.sent)
            .into_iter()
            .partition(|(t, _)| t.addr == addr);
        self.sent = rest;
        mine.into_iter().map(|(_, m)| m).collect()
    }

    fn responses_to(&mut self, to: &str) -> Vec<Response> {
        self.take_to(to)
            .into_iter()
            .filter_map(|m| match m {
                Message::Response(r) => Some(r),
                Message::Request(_) => None,
            })
            .collect()
    }

    fn requests_to(&mut self, to: &str) -> Vec<Request> {
        self.take_to(to)
            .into_iter()
            .filter_map(|m| match m {
                Message::Request(r) => Some(r),
                Message::Response(_) => None,
            })
            .collect()
    }

    /// Does what the driver does once the `QueueLog` commands collected so
    /// far are committed (`stored`) or have failed: releases the responses
    /// held behind them.
    fn store_events(&mut self, stored: bool) {
        let held: Vec<HeldResponse> = self
            .commands
            .iter_mut()
            .flat_map(|command| match command {
                Command::QueueLog { held, .. } => std::mem::take(held),
                _ => Vec::new(),
            })
            .collect();
        for answer in held {
            self.core.events_stored(answer, stored, self.now);
        }
        self.collect();
    }

    /// Answers OpenMedia with relay ports 20000 (caller) and 20002 (agent).
    fn open_media(&mut self) -> String {
        let index = self
            .commands
            .iter()
            .position(|c| matches!(c, Command::OpenMedia { .. }));
        let Command::OpenMedia { call, .. } =
            self.commands.remove(index.expect("OpenMedia issued"))
        else {
            unreachable!()
        };
        let ports = MediaPorts {
            caller: "127.0.0.1:20000".parse().unwrap(),
            agent: "127.0.0.1:20002".parse().unwrap(),
        };
        assert!(self.core.media_opened(&call, ports, self.now));
        self.collect();
        call
    }

    fn finished_record(&mut self) -> cdr::CallRecord {
        let index = self
            .commands
            .iter()
            .position(|c| matches!(c, Command::Finish { .. }));
        match self.commands.remove(index.expect("call finished")) {
            Command::Finish { record, .. } => *record,
            _ => unreachable!(),
        }
    }

    fn register(&mut self, agent: &str, password: &str, from: &str) -> Response {
        self.register_over(agent, password, udp(from))
    }

    fn register_over(&mut self, agent: &str, password: &str, source: Target) -> Response {
        self.register_with_headers(agent, password, source, "", "")
    }

    /// Registers with `contact_params` after the Contact's URI (such as
    /// `;+sip.instance="<urn:uuid:...>"`) and `extra` header lines, each
    /// ending in CRLF (such as a Path or Supported).
    fn register_with_headers(
        &mut self,
        agent: &str,
        password: &str,
        source: Target,
        contact_params: &str,
        extra: &str,
    ) -> Response {
        let from = &source.addr.to_string();
        // A fresh branch per call, or a repeated registration would be
        // absorbed as a retransmission.
        static ROUNDS: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let round = ROUNDS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let register = |auth: &str, cseq: u32| {
            format!(
                "REGISTER sip:pbx.test SIP/2.0\r\nVia: SIP/2.0/UDP {from};branch=z9hG4bK-reg{cseq}{agent}-{round}\r\n\
                 Max-Forwards: 70\r\nFrom: <sip:{agent}@pbx.test>;tag=r{agent}\r\nTo: <sip:{agent}@pbx.test>\r\n\
                 Call-ID: reg-{agent}@test\r\nCSeq: {cseq} REGISTER\r\nContact: <sip:{agent}@{from}>{contact_params}\r\n\
                 {extra}{auth}Expires: 600\r\nContent-Length: 0\r\n\r\n"
            )
        };
        // CSeq grows from round to round, so registering again refreshes.
        let cseq = round * 2;
        self.receive_over(&register("", cseq + 1), source);
        let challenge = self.responses_to(from).pop().expect("challenge");
        assert_eq!(challenge.status, 401);
        let header = challenge
            .headers
            .get_all("WWW-Authenticate")
            .last()
            .unwrap()
            .to_owned();
        let nonce = header
            .split("nonce=\"")
            .nth(1)
            .unwrap()
            .split('"')
            .next()
            .unwrap()
            .to_owned();
        let mut credentials = Credentials {
            username: agent.into(),
            realm: "pbx.test".into(),
            nonce,
            uri: "sip:pbx.test".into(),
            algorithm: Some("MD5".into()),
            qop: Some("auth".into()),
            nc: Some("00000001".into()),
            cnonce: Some("c1".into()),
            ..Credentials::default()
        };
        credentials.response = expected_response(
            Algorithm::Md5,
            &credentials,
            "pbx.test",
            password,
            "REGISTER",
        )
        .unwrap();
        let authorization = format!(
            "Authorization: Digest username=\"{agent}\", realm=\"pbx.test\", nonce=\"{}\", uri=\"sip:pbx.test\", \
             response=\"{}\", algorithm=MD5, qop=auth, nc=00000001, cnonce=\"c1\"\r\n",
            credentials.nonce, credentials.response
        );
        self.receive_over(&register(&authorization, cseq + 2), source);
        self.responses_to(from)
            .pop()
            .expect("final response to REGISTER")
    }

    fn caller_invite(&mut self, dialed: &str, from: &str) {
        let sdp = "v=0\r\no=- 1 1 IN IP4 192.0.2.10\r\ns=-\r\nc=IN IP4 192.0.2.10\r\nt=0 0\r\n\
                   m=audio 40000 RTP/AVP 0 8 18 101\r\na=rtpmap:18 G729/8000\r\n\
                   a=rtpmap:101 telephone-event/8000\r\na=fmtp:101 0-16\r\n";
        let text = format!(
            "INVITE sip:{dialed}@pbx.test SIP/2.0\r\nVia: SIP/2.0/UDP {from};branch=z9hG4bK-inv1\r\n\
             Max-Forwards: 70\r\nFrom: \"Citizen\" <sip:+15550100@carrier.test>;tag=c1\r\n\
             To: <sip:{dialed}@pbx.test>\r\nCall-ID: caller-1@carrier.test\r\nCSeq: 1 INVITE\r\n\
             Contact: <sip:+15550100@{from}>\r\nContent-Type: application/sdp\r\n\
             Content-Length: {}\r\n\r\n{sdp}",
            sdp.len()
        );
        self.receive(&text, from);
    }
}

/// A response from an agent phone to `request` with its own To tag.
fn agent_response(request: &Request, status: u16, contact: &str, sdp: Option<&str>) -> String {
    let mut response = Response::for_request(request, status, None);
    let mut to = response.headers.to().unwrap();
    to.set_tag("agenttag");
    response.headers.set("To", to.to_string());
    response
        .headers
        .push("Contact", format!("<sip:agent@{contact}>"));
    if let Some(sdp) = sdp {
        response.headers.push("Content-Type", "application/sdp");
        response.body = bytes::Bytes::copy_from_slice(sdp.as_bytes());
    }
    String::from_utf8(response.to_bytes().to_vec()).unwrap()
}

const AGENT_SDP: &str = "v=0\r\no=- 7 7 IN IP4 198.51.100.21\r\ns=-\r\nc=IN IP4 198.51.100.21\r\n\
                         t=0 0\r\nm=audio 42000 RTP/AVP 0\r\n";

/// Sends the caller's ACK to the PBX's 200 `ok`.
fn ack_ok(h: &mut Harness, ok: &Response) {
    let to_tag = ok.headers.to().unwrap().tag().unwrap().to_owned();
    let ack = format!(
        "ACK sip:pbx@127.0.0.1:5060 SIP/2.0\r\nVia: SIP/2.0/UDP {CALLER};branch=z9hG4bK-ack1\r\n\
         Max-Forwards: 70\r\nFrom: \"Citizen\" <sip:+15550100@carrier.test>;tag=c1\r\n\
         To: <sip:5000@pbx.test>;tag={to_tag}\r\nCall-ID: caller-1@carrier.test\r\nCSeq: 1 ACK\r\n\
         Content-Length: 0\r\n\r\n"
    );
    h.receive(&ack, CALLER);
}

/// Runs a call up to the agent's answer and the caller's ACK. A queue
/// with music answers the caller first, and its agent rings after the ACK.
fn answered_call(h: &mut Harness) -> (String, Request) {
    assert_eq!(h.register("1001", "pw-one", AGENT_1).status, 200);
    h.caller_invite("5000", CALLER);
    let call = h.open_media();
    let waiting_ok = h.responses_to(CALLER).into_iter().find(|r| r.status == 200);
    if let Some(ok) = &waiting_ok {
        ack_ok(h, ok);
    }
    let invite = h
        .requests_to(AGENT_1)
        .into_iter()
        .find(|r| r.method == Method::Invite)
        .unwrap();
    h.receive(&agent_response(&invite, 180, AGENT_1, None), AGENT_1);
    h.receive(
        &agent_response(&invite, 200, AGENT_1, Some(AGENT_SDP)),
        AGENT_1,
    );
    if waiting_ok.is_none() {
        let ok = h
            .responses_to(CALLER)
            .into_iter()
            .find(|r| r.status == 200)
            .expect("caller gets 200");
        ack_ok(h, &ok);
    }
    (call, invite)
}

fn caller_bye(to_tag: &str) -> String {
    format!(
        "BYE sip:pbx@127.0.0.1:5060 SIP/2.0\r\nVia: SIP/2.0/UDP {CALLER};branch=z9hG4bK-bye1\r\n\
         Max-Forwards: 70\r\nFrom: \"Citizen\" <sip:+15550100@carrier.test>;tag=c1\r\n\
         To: <sip:5000@pbx.test>;tag={to_tag}\r\nCall-ID: caller-1@carrier.test\r\nCSeq: 2 BYE\r\n\
         Content-Length: 0\r\n\r\n"
    )
}

fn caller_tag(h: &Harness, call: &str) -> String {
    h.core.calls[call].caller.local_tag.clone()
}

#[test]
fn answered_call_reaches_agent_with_anchored_media() {
    let mut h = Harness::new();
    assert_eq!(h.register("1001", "pw-one", AGENT_1).status, 200);
    h.caller_invite("5000", CALLER);
    let trying = h.responses_to(CALLER);
    assert_eq!(trying.iter().map(|r| r.status).collect::<Vec<_>>(), [100]);
    let call = h.open_media();
    assert!(h.commands.iter().any(
        |c| matches!(c, Command::SetRemote { side: Side::Caller, addr, .. }
        if *addr == "192.0.2.10:40000".parse::<SocketAddr>().unwrap())
    ));

    let ringing = h.responses_to(CALLER);
    assert_eq!(ringing.iter().map(|r| r.status).collect::<Vec<_>>(), [180]);
    let invite = h
        .requests_to(AGENT_1)
        .into_iter()
        .find(|r| r.method == Method::Invite)
        .unwrap();
    assert_eq!(invite.uri.to_string(), format!("sip:1001@{AGENT_1}"));
    assert_ne!(invite.headers.call_id(), Some("caller-1@carrier.test"));
    assert_ne!(invite.headers.from().unwrap().tag(), Some("c1"));
    let offer = String::from_utf8(invite.body.to_vec()).unwrap();
    assert!(offer.contains("c=IN IP4 127.0.0.1"), "{offer}");
    assert!(offer.contains("m=audio 20002 RTP/AVP 0 8 101"), "{offer}");
    assert!(!offer.contains("G729"), "{offer}");

    // The caller already heard 180 when the call queued; the agent's 180
    // is not sent again.
    h.receive(&agent_response(&invite, 180, AGENT_1, None), AGENT_1);
    assert!(h.responses_to(CALLER).is_empty());
    h.receive(
        &agent_response(&invite, 200, AGENT_1, Some(AGENT_SDP)),
        AGENT_1,
    );
    let acks = h.requests_to(AGENT_1);
    assert!(acks.iter().any(|r| r.method == Method::Ack && r.uri.to_string() == format!("sip:agent@{AGENT_1}")));
    let ok = h
        .responses_to(CALLER)
        .into_iter()
        .find(|r| r.status == 200)
        .unwrap();
    let answer = String::from_utf8(ok.body.to_vec()).unwrap();
    assert!(answer.contains("m=audio 20000 RTP/AVP 0"), "{answer}");
    assert!(answer.contains("c=IN IP4 127.0.0.1"), "{answer}");
    assert!(
        h.commands
            .iter()
            .any(|c| matches!(c, Command::StartRecording { .. }))
    );

    h.advance(Duration::from_secs(30));
    let tag = caller_tag(&h, &call);
    h.receive(&caller_bye(&tag), CALLER);
    assert!(h.responses_to(CALLER).iter().any(|r| r.status == 200));
    assert!(
        h.requests_to(AGENT_1)
            .iter()
            .any(|r| r.method == Method::Bye)
    );
    let record = h.finished_record();
    assert_eq!(record.disposition, cdr::Disposition::Answered);
    assert_eq!(record.hangup_side, Some(cdr::HangupSide::Caller));
    assert_eq!(record.agent.as_deref(), Some("1001"));
    assert_eq!(record.queue.as_deref(), Some("general"));
    assert_eq!(record.trunk.as_deref(), Some("carrier"));
    assert_eq!(record.caller, "+15550100");
    assert_eq!(record.dialed, "5000");
    assert_eq!(record.caller_call_id, "caller-1@carrier.test");
    assert_eq!(record.agent_call_id.as_deref(), invite.headers.call_id());
    assert!(
        (record.talk_seconds - 30.0).abs() < 0.01,
        "{}",
        record.talk_seconds
    );
    assert!(
        record
            .recording_path
            .as_deref()
            .unwrap()
            .ends_with(&format!("{call}.wav"))
    );
    // Ids lead with the arrival time (UUID version 7), so the stores'
    // indexes on them take each new call at their end.
    let id = uuid::Uuid::parse_str(&record.id).unwrap();
    assert_eq!(id.get_version_num(), 7);
    let (seconds, nanos) = id.get_timestamp().unwrap().to_unix();
    assert_eq!(
        i128::from(seconds) * 1000 + i128::from(nanos / 1_000_000),
        record.arrived_at.unix_timestamp_nanos() / 1_000_000
    );
    assert_eq!(h.core.active_calls(), 0);
}

#[test]
fn agent_hangs_up_first() {
    let mut h = Harness::new();
    let (_call, invite) = answered_call(&mut h);
    h.sent.clear();
    let bye = format!(
        "BYE sip:pbx@127.0.0.1:5060 SIP/2.0\r\nVia: SIP/2.0/UDP {AGENT_1};branch=z9hG4bK-abye\r\n\
         Max-Forwards: 70\r\nFrom: <sip:1001@pbx.test>;tag=agenttag\r\nTo: {}\r\n\
         Call-ID: {}\r\nCSeq: 1 BYE\r\nContent-Length: 0\r\n\r\n",
        invite.headers.get("From").unwrap(),
        invite.headers.call_id().unwrap()
    );
    h.receive(&bye, AGENT_1);
    assert!(h.responses_to(AGENT_1).iter().any(|r| r.status == 200));
    let to_caller = h.requests_to(CALLER);
    let caller_bye = to_caller
        .iter()
        .find(|r| r.method == Method::Bye)
        .expect("BYE to caller");
    assert_eq!(caller_bye.headers.call_id(), Some("caller-1@carrier.test"));
    assert_eq!(caller_bye.headers.to().unwrap().tag(), Some("c1"));
    let record = h.finished_record();
    assert_eq!(record.hangup_side, Some(cdr::HangupSide::Agent));
}

#[test]
fn unknown_did_is_rejected_with_404() {
    let mut h = Harness::new();
    h.caller_invite("9999", CALLER);
    let statuses: Vec<u16> = h.responses_to(CALLER).iter().map(|r| r.status).collect();
    assert_eq!(statuses, [404]);
    let record = h.finished_record();
    assert_eq!(record.disposition, cdr::Disposition::Failed);
    assert_eq!(record.sip_status, Some(404));
    assert_eq!(record.dialed, "9999");
    // The agents' start-up state changes may be there as queue events.
    assert!(
        !h.commands
            .iter()
            .any(|c| matches!(c, Command::OpenMedia { .. })),
        "no relay was opened"
    );
}

#[test]
fn unknown_source_is_rejected_with_403() {
    let mut h = Harness::new();
    h.caller_invite("5000", OUTSIDER);
    let statuses: Vec<u16> = h.responses_to(OUTSIDER).iter().map(|r| r.status).collect();
    assert_eq!(statuses, [403]);
}

#[test]
fn wrong_password_does_not_register() {
    let mut h = Harness::new();
    let response = h.register("1001", "guess", AGENT_1);
    assert_eq!(response.status, 403);
    assert!(h.core.bindings("1001", h.now).is_empty());
}

impl Harness {
    /// Takes the agents of the `SaveBindings` commands collected so far.
    fn saved_agents(&mut self) -> Vec<String> {
        let (saves, rest) = std::mem::take(&mut self.commands)
            .into_iter()
            .partition(|c| matches!(c, Command::SaveBindings { .. }));
        self.commands = rest;
        saves
            .into_iter()
            .filter_map(|c| match c {
                Command::SaveBindings { agent, .. } => Some(agent),
                _ => None,
            })
            .collect()
    }
}

#[test]
fn refresh_saved_late_or_at_stop() {
    let mut h = Harness::new();
    assert_eq!(h.register("1001", "pw-one", AGENT_1).status, 200);
    assert_eq!(h.saved_agents(), ["1001"]);
    h.advance(Duration::from_secs(1));
    assert_eq!(h.register("1001", "pw-one", AGENT_1).status, 200);
    assert!(h.saved_agents().is_empty());
    h.advance(crate::registrar::REFRESH_WRITE_DELAY);
    assert_eq!(h.saved_agents(), ["1001"]);

    // A stop in order saves the refresh that still waits.
    assert_eq!(h.register("1001", "pw-one", AGENT_1).status, 200);
    assert!(h.saved_agents().is_empty());
    h.core.shutdown(h.now);
    h.collect();
    assert_eq!(h.saved_agents(), ["1001"]);
}

#[test]
fn no_agent_until_max_wait_gives_480() {
    let mut h = Harness::new();
    h.caller_invite("5000", CALLER);
    h.open_media();
    h.responses_to(CALLER);
    h.advance(Duration::from_secs(61));
    let statuses: Vec<u16> = h.responses_to(CALLER).iter().map(|r| r.status).collect();
    assert!(statuses.contains(&480), "{statuses:?}");
    let record = h.finished_record();
    assert_eq!(record.disposition, cdr::Disposition::NoAgent);
    assert_eq!(record.sip_status, Some(480));
    // Max wait is 60 s; the clock passed 61 s but the call left at 60 s.
    assert!(
        (record.wait_seconds - 60.0).abs() < 0.01,
        "{}",
        record.wait_seconds
    );
}

#[test]
fn caller_cancel_while_ringing_cancels_agent() {
    let mut h = Harness::new();
    assert_eq!(h.register("1001", "pw-one", AGENT_1).status, 200);
    h.caller_invite("5000", CALLER);
    h.open_media();
    let invite = h
        .requests_to(AGENT_1)
        .into_iter()
        .find(|r| r.method == Method::Invite)
        .unwrap();
    h.receive(&agent_response(&invite, 180, AGENT_1, None), AGENT_1);
    h.responses_to(CALLER);
    let cancel = format!(
        "CANCEL sip:5000@pbx.test SIP/2.0\r\nVia: SIP/2.0/UDP {CALLER};branch=z9hG4bK-inv1\r\n\
         Max-Forwards: 70\r\nFrom: \"Citizen\" <sip:+15550100@carrier.test>;tag=c1\r\n\
         To: <sip:5000@pbx.test>\r\nCall-ID: caller-1@carrier.test\r\nCSeq: 1 CANCEL\r\n\
         Content-Length: 0\r\n\r\n"
    );
    h.receive(&cancel, CALLER);
    let statuses: Vec<u16> = h.responses_to(CALLER).iter().map(|r| r.status).collect();
    assert!(
        statuses.contains(&200) && statuses.contains(&487),
        "{statuses:?}"
    );
    assert!(
        h.requests_to(AGENT_1)
            .iter()
            .any(|r| r.method == Method::Cancel)
    );
    let record = h.finished_record();
    assert_eq!(record.disposition, cdr::Disposition::Abandoned);
    assert_eq!(record.hangup_side, Some(cdr::HangupSide::Caller));
}

#[test]
fn ring_timeout_moves_to_next_agent() {
    let mut h = Harness::new();
    assert_eq!(h.register("1001", "pw-one", AGENT_1).status, 200);
    h.advance(Duration::from_secs(1));
    assert_eq!(h.register("1002", "pw-two", AGENT_2).status, 200);
    h.caller_invite("5000", CALLER);
    h.open_media();
    // 1001 became idle first, so it is offered first.
    let first = h
        .requests_to(AGENT_1)
        .into_iter()
        .find(|r| r.method == Method::Invite)
        .expect("1001 rung");
    h.receive(&agent_response(&first, 180, AGENT_1, None), AGENT_1);
    h.advance(Duration::from_secs(11));
    assert!(
        h.requests_to(AGENT_1)
            .iter()
            .any(|r| r.method == Method::Cancel)
    );
    let second = h
        .requests_to(AGENT_2)
        .into_iter()
        .find(|r| r.method == Method::Invite);
    assert!(second.is_some(), "1002 offered after the ring timeout");
    assert!(h.commands.iter().any(|c| matches!(
        c,
        Command::ResetLeg {
            side: Side::Agent,
            ..
        }
    )));
}

#[test]
fn agent_reinvite_for_hold_is_relayed_with_anchored_sdp() {
    let mut h = Harness::new();
    let (_call, invite) = answered_call(&mut h);
    h.sent.clear();
    let hold = "v=0\r\no=- 7 8 IN IP4 198.51.100.21\r\ns=-\r\nc=IN IP4 198.51.100.21\r\nt=0 0\r\n\
                m=audio 42000 RTP/AVP 0\r\na=sendonly\r\n";
    let reinvite = format!(
        "INVITE sip:pbx@127.0.0.1:5060 SIP/2.0\r\nVia: SIP/2.0/UDP {AGENT_1};branch=z9hG4bK-reinv\r\n\
         Max-Forwards: 70\r\nFrom: <sip:1001@pbx.test>;tag=agenttag\r\nTo: {}\r\nCall-ID: {}\r\n\
         CSeq: 2 INVITE\r\nContact: <sip:agent@{AGENT_1}>\r\nContent-Type: application/sdp\r\n\
         Content-Length: {}\r\n\r\n{hold}",
        invite.headers.get("From").unwrap(),
        invite.headers.call_id().unwrap(),
        hold.len()
    );
    h.receive(&reinvite, AGENT_1);
    let relayed = h
        .requests_to(CALLER)
        .into_iter()
        .find(|r| r.method == Method::Invite)
        .expect("relayed");
    assert_eq!(relayed.headers.call_id(), Some("caller-1@carrier.test"));
    let body = String::from_utf8(relayed.body.to_vec()).unwrap();
    assert!(
        body.contains("a=sendonly") && body.contains("m=audio 20000"),
        "{body}"
    );

    let caller_sdp = "v=0\r\no=- 1 2 IN IP4 192.0.2.10\r\ns=-\r\nc=IN IP4 192.0.2.10\r\nt=0 0\r\n\
                      m=audio 40000 RTP/AVP 0\r\na=recvonly\r\n";
    let mut ok = Response::for_request(&relayed, 200, None);
    ok.headers
        .push("Contact", format!("<sip:+15550100@{CALLER}>"));
    ok.headers.push("Content-Type", "application/sdp");
    ok.body = bytes::Bytes::from_static(caller_sdp.as_bytes());
    h.receive(std::str::from_utf8(&ok.to_bytes()).unwrap(), CALLER);
    assert!(
        h.requests_to(CALLER)
            .iter()
            .any(|r| r.method == Method::Ack)
    );
    let to_agent = h.responses_to(AGENT_1);
    let relayed_ok = to_agent
        .iter()
        .find(|r| r.status == 200)
        .expect("200 relayed to agent");
    let body = String::from_utf8(relayed_ok.body.to_vec()).unwrap();
    assert!(
        body.contains("a=recvonly") && body.contains("m=audio 20002"),
        "{body}"
    );
}

#[test]
fn call_id_index_empties_at_hang_up() {
    let mut h = Harness::new();
    let (call, invite) = answered_call(&mut h);
    let agent_call_id = invite.headers.call_id().unwrap();
    assert_eq!(
        h.core.by_sip_call_id.get("caller-1@carrier.test"),
        Some(&call)
    );
    assert_eq!(h.core.by_sip_call_id.get(agent_call_id), Some(&call));
    assert_eq!(h.core.sip_call_ids[&call].len(), 2);
    let tag = caller_tag(&h, &call);
    h.receive(&caller_bye(&tag), CALLER);
    h.finished_record();
    assert!(
        h.core.by_sip_call_id.is_empty(),
        "{:?}",
        h.core.by_sip_call_id
    );
    assert!(h.core.sip_call_ids.is_empty(), "{:?}", h.core.sip_call_ids);
}

#[test]
fn transactions_drain_after_a_call() {
    let mut h = Harness::new();
    let (call, _invite) = answered_call(&mut h);
    let tag = caller_tag(&h, &call);
    h.receive(&caller_bye(&tag), CALLER);
    // The agent never answers the BYE: Timer F ends that transaction too.
    h.advance(Duration::from_secs(64));
    assert_eq!(h.core.transaction_count(), 0);
}

#[test]
fn agent_leg_decrements_max_forwards() {
    let mut h = Harness::new();
    assert_eq!(h.register("1001", "pw-one", AGENT_1).status, 200);
    h.caller_invite("5000", CALLER);
    h.open_media();
    let invite = h
        .requests_to(AGENT_1)
        .into_iter()
        .find(|r| r.method == Method::Invite)
        .unwrap();
    assert_eq!(invite.headers.max_forwards().unwrap(), Some(69));
}

/// An INVITE from agent 1002's own phone to `number`, with
/// Proxy-Authorization when `authorization` is not empty.
fn extension_invite(number: &str, call_id: &str, authorization: &str, branch: &str) -> String {
    let sdp = "v=0\r\no=- 1 1 IN IP4 198.51.100.22\r\ns=-\r\nc=IN IP4 198.51.100.22\r\nt=0 0\r\n\
               m=audio 41000 RTP/AVP 8\r\n";
    format!(
        "INVITE sip:{number}@pbx.test SIP/2.0\r\nVia: SIP/2.0/UDP {AGENT_2};branch={branch}\r\n\
         Max-Forwards: 70\r\nFrom: <sip:1002@pbx.test>;tag=x1\r\nTo: <sip:{number}@pbx.test>\r\n\
         Call-ID: {call_id}\r\nCSeq: 1 INVITE\r\nContact: <sip:1002@{AGENT_2}>\r\n{authorization}\
         Content-Type: application/sdp\r\nContent-Length: {}\r\n\r\n{sdp}",
        sdp.len()
    )
}

#[test]
fn extension_call_needs_proxy_authentication() {
    let mut h = Harness::new();
    h.receive(
        &extension_invite("5000", "ext-1@test", "", "z9hG4bK-ext1"),
        AGENT_2,
    );
    let challenge = h
        .responses_to(AGENT_2)
        .into_iter()
        .find(|r| r.status == 407)
        .expect("407 challenge");
    let header = challenge
        .headers
        .get("Proxy-Authenticate")
        .unwrap()
        .to_owned();
    let nonce = header
        .split("nonce=\"")
        .nth(1)
        .unwrap()
        .split('"')
        .next()
        .unwrap()
        .to_owned();
    let ack = format!(
        "ACK sip:5000@pbx.test SIP/2.0\r\nVia: SIP/2.0/UDP {AGENT_2};branch=z9hG4bK-ext1\r\n\
         Max-Forwards: 70\r\nFrom: <sip:1002@pbx.test>;tag=x1\r\nTo: {}\r\nCall-ID: ext-1@test\r\n\
         CSeq: 1 ACK\r\nContent-Length: 0\r\n\r\n",
        challenge.headers.get("To").unwrap()
    );
    h.receive(&ack, AGENT_2);

    let mut credentials = Credentials {
        username: "1002".into(),
        realm: "pbx.test".into(),
        nonce,
        uri: "sip:5000@pbx.test".into(),
        ..Credentials::default()
    };
    for (password, expected) in [("wrong", 403), ("pw-two", 100)] {
        credentials.response =
            expected_response(Algorithm::Md5, &credentials, "pbx.test", password, "INVITE")
                .unwrap();
        let authorization = format!(
            "Proxy-Authorization: Digest username=\"1002\", realm=\"pbx.test\", nonce=\"{}\", \
             uri=\"sip:5000@pbx.test\", response=\"{}\"\r\n",
            credentials.nonce, credentials.response
        );
        let branch = format!("z9hG4bK-ext-{password}");
        h.receive(
            &extension_invite("5000", "ext-1@test", &authorization, &branch),
            AGENT_2,
        );
        let statuses: Vec<u16> = h.responses_to(AGENT_2).iter().map(|r| r.status).collect();
        assert_eq!(statuses, [expected], "password {password}");
    }
    let call = h.open_media();
    assert_eq!(
        h.core.calls[&call].source_extension.as_deref(),
        Some("1002")
    );
    assert_eq!(h.core.calls[&call].trunk, None);
}

#[test]
fn silent_contact_is_skipped_until_it_answers_a_probe() {
    let mut config = config();
    config.registrar.qualify_interval = Some(Duration::from_secs(30));
    let mut h = Harness::with_config(config);
    assert_eq!(h.register("1001", "pw-one", AGENT_1).status, 200);
    h.advance(Duration::from_secs(30));
    let probe = h
        .requests_to(AGENT_1)
        .into_iter()
        .find(|r| r.method == Method::Options)
        .expect("OPTIONS probe");
    assert_eq!(probe.uri.to_string(), format!("sip:1001@{AGENT_1}"));
    // No answer: after the 5 s qualify timeout the agent takes no calls.
    h.advance(Duration::from_secs(6));
    h.sent.clear();
    h.caller_invite("5000", CALLER);
    h.open_media();
    assert!(
        h.requests_to(AGENT_1)
            .iter()
            .all(|r| r.method != Method::Invite),
        "silent agent was offered a call"
    );

    // The next probe is answered, and the waiting call reaches the agent.
    h.advance(Duration::from_secs(30));
    // Retransmissions of the first probe are in the list too; the newest
    // OPTIONS belongs to the second probe.
    let probe = h
        .requests_to(AGENT_1)
        .into_iter()
        .filter(|r| r.method == Method::Options)
        .last()
        .expect("second probe");
    let ok = Response::for_request(&probe, 200, None);
    h.receive(std::str::from_utf8(&ok.to_bytes()).unwrap(), AGENT_1);
    assert!(
        h.requests_to(AGENT_1)
            .iter()
            .any(|r| r.method == Method::Invite),
        "agent offered after answering"
    );
}

#[test]
fn did_skills_route_to_the_skilled_agent() {
    let mut config = config();
    config.dids.insert(
        "5001".to_owned(),
        DidRoute {
            queue: "general".to_owned(),
            skills: vec!["language=ru:3".parse().unwrap()],
            ..DidRoute::default()
        },
    );
    config
        .agent_skills
        .insert("1002".to_owned(), [("language=ru".to_owned(), 5)].into());
    let mut h = Harness::with_config(config);
    // 1001 has been idle longer, but only 1002 speaks Russian.
    assert_eq!(h.register("1001", "pw-one", AGENT_1).status, 200);
    h.advance(Duration::from_secs(1));
    assert_eq!(h.register("1002", "pw-two", AGENT_2).status, 200);
    h.caller_invite("5001", CALLER);
    h.open_media();
    assert!(
        h.requests_to(AGENT_1)
            .iter()
            .all(|r| r.method != Method::Invite)
    );
    assert!(
        h.requests_to(AGENT_2)
            .iter()
            .any(|r| r.method == Method::Invite)
    );
}

#[test]
fn ring_all_connects_first_answer_and_cancels_the_rest() {
    let mut config = config();
    config.queues[0].strategy = acd::Strategy::RingAll;
    let mut h = Harness::with_config(config);
    assert_eq!(h.register("1001", "pw-one", AGENT_1).status, 200);
    assert_eq!(h.register("1002", "pw-two", AGENT_2).status, 200);
    h.caller_invite("5000", CALLER);
    h.open_media();
    let first = h
        .requests_to(AGENT_1)
        .into_iter()
        .find(|r| r.method == Method::Invite)
        .expect("1001 rung");
    let second = h
        .requests_to(AGENT_2)
        .into_iter()
        .find(|r| r.method == Method::Invite)
        .expect("1002 rung");
    h.receive(&agent_response(&first, 180, AGENT_1, None), AGENT_1);
    h.receive(&agent_response(&second, 180, AGENT_2, None), AGENT_2);
    h.receive(
        &agent_response(&second, 200, AGENT_2, Some(AGENT_SDP)),
        AGENT_2,
    );
    assert!(
        h.requests_to(AGENT_1)
            .iter()
            .any(|r| r.method == Method::Cancel),
        "1001 cancelled"
    );
    assert!(h.responses_to(CALLER).iter().any(|r| r.status == 200));
    let call = h.core.calls.values().next().expect("call in progress");
    assert_eq!(
        call.agent_leg.as_ref().map(|leg| leg.agent.as_str()),
        Some("1002")
    );
}

#[test]
fn unknown_aor_is_challenged_then_forbidden() {
    let mut h = Harness::new();
    // "9999" is no agent: it gets the same 401 as an agent, and 403 after
    // the credentials, never a 404 that would reveal who exists.
    let response = h.register("9999", "anything", AGENT_1);
    assert_eq!(response.status, 403);
}

#[test]
fn repeated_failures_lock_the_source_out() {
    let mut h = Harness::new();
    for _ in 0..crate::registrar::MAX_FAILURES {
        assert_eq!(h.register("1001", "guess", AGENT_1).status, 403);
    }
    // Even the right password is refused while the lockout lasts.
    let register = |h: &mut Harness| {
        let text = format!(
            "REGISTER sip:pbx.test SIP/2.0\r\nVia: SIP/2.0/UDP {AGENT_1};branch=z9hG4bK-locked{}\r\n\
             Max-Forwards: 70\r\nFrom: <sip:1001@pbx.test>;tag=l\r\nTo: <sip:1001@pbx.test>\r\n\
             Call-ID: locked@test\r\nCSeq: 1 REGISTER\r\nContact: <sip:1001@{AGENT_1}>\r\n\
             Content-Length: 0\r\n\r\n",
            h.now.elapsed().as_nanos()
        );
        h.receive(&text, AGENT_1);
        h.responses_to(AGENT_1).pop().unwrap()
    };
    let refused = register(&mut h);
    assert_eq!(refused.status, 403);
    // The phone learns when to try again.
    assert_eq!(
        refused.headers.get("Retry-After"),
        Some(crate::registrar::LOCKOUT.as_secs().to_string().as_str())
    );
    h.advance(crate::registrar::LOCKOUT / 2);
    let refused = register(&mut h);
    assert_eq!(
        refused.headers.get("Retry-After"),
        Some(
            (crate::registrar::LOCKOUT / 2)
                .as_secs()
                .to_string()
                .as_str()
        )
    );
    h.advance(crate::registrar::LOCKOUT / 2);
    assert_eq!(
        register(&mut h).status,
        401,
        "challenged again after the lockout"
    );
}

#[test]
fn offers_without_usable_audio_get_488_at_once() {
    for (offer, reason) in [
        ("m=audio 0 RTP/AVP 0\r\n", "disabled"),
        ("m=audio 40000 RTP/SAVP 0\r\n", "not plain RTP"),
        (
            "m=audio 40000 RTP/AVP 18\r\na=rtpmap:18 G729/8000\r\n",
            "none of PCMU, PCMA and G722",
        ),
    ] {
        let mut h = Harness::new();
        let sdp = format!(
            "v=0\r\no=- 1 1 IN IP4 192.0.2.10\r\ns=-\r\nc=IN IP4 192.0.2.10\r\nt=0 0\r\n{offer}"
        );
        let text = format!(
            "INVITE sip:5000@pbx.test SIP/2.0\r\nVia: SIP/2.0/UDP {CALLER};branch=z9hG4bK-bad\r\n\
             Max-Forwards: 70\r\nFrom: <sip:+15550100@carrier.test>;tag=c9\r\nTo: <sip:5000@pbx.test>\r\n\
             Call-ID: bad-offer@test\r\nCSeq: 1 INVITE\r\nContent-Type: application/sdp\r\n\
             Content-Length: {}\r\n\r\n{sdp}",
            sdp.len()
        );
        h.receive(&text, CALLER);
        let rejected = h
            .responses_to(CALLER)
            .into_iter()
            .find(|r| r.status >= 300)
            .expect("final response");
        assert_eq!(rejected.status, 488, "{reason}");
        assert!(rejected.reason.contains(reason), "{}", rejected.reason);
    }
}

#[test]
fn overlapping_reinvite_from_same_side_gets_500() {
    let mut h = Harness::new();
    let (_call, invite) = answered_call(&mut h);
    let reinvite = |cseq: u32, branch: &str| {
        format!(
            "INVITE sip:pbx@127.0.0.1:5060 SIP/2.0\r\nVia: SIP/2.0/UDP {AGENT_1};branch={branch}\r\n\
             Max-Forwards: 70\r\nFrom: <sip:1001@pbx.test>;tag=agenttag\r\nTo: {}\r\nCall-ID: {}\r\n\
             CSeq: {cseq} INVITE\r\nContact: <sip:agent@{AGENT_1}>\r\nContent-Type: application/sdp\r\n\
             Content-Length: {}\r\n\r\n{AGENT_SDP}",
            invite.headers.get("From").unwrap(),
            invite.headers.call_id().unwrap(),
            AGENT_SDP.len()
        )
    };
    h.receive(&reinvite(2, "z9hG4bK-re1"), AGENT_1);
    h.receive(&reinvite(3, "z9hG4bK-re2"), AGENT_1);
    let responses = h.responses_to(AGENT_1);
    let busy = responses
        .iter()
        .find(|r| r.status == 500)
        .expect("500 for the second re-INVITE");
    assert!(busy.headers.contains("Retry-After"));
}

#[test]
fn silent_media_ends_answered_calls_but_not_held_ones() {
    let timeout = Duration::from_secs(60);
    let mut h = Harness::new();
    let (call, invite) = answered_call(&mut h);
    // Silence counts from the answer, not from the arrival: a caller who
    // waited in the queue longer than the timeout keeps the call.
    let arrived = h.core.calls[&call].arrived;
    h.core.calls.get_mut(&call).unwrap().arrived =
        arrived.checked_sub(timeout * 2).unwrap_or(arrived);
    h.core.media_silent(&call, None, timeout, h.now);
    assert_eq!(h.core.active_calls(), 1, "just answered");

    // On hold (the agent sent sendonly), silence is allowed for longer.
    let hold = "v=0\r\no=- 7 8 IN IP4 198.51.100.21\r\ns=-\r\nc=IN IP4 198.51.100.21\r\nt=0 0\r\n\
                m=audio 42000 RTP/AVP 0\r\na=sendonly\r\n";
    let reinvite = format!(
        "INVITE sip:pbx@127.0.0.1:5060 SIP/2.0\r\nVia: SIP/2.0/UDP {AGENT_1};branch=z9hG4bK-hold\r\n\
         Max-Forwards: 70\r\nFrom: <sip:1001@pbx.test>;tag=agenttag\r\nTo: {}\r\nCall-ID: {}\r\n\
         CSeq: 2 INVITE\r\nContact: <sip:agent@{AGENT_1}>\r\nContent-Type: application/sdp\r\n\
         Content-Length: {}\r\n\r\n{hold}",
        invite.headers.get("From").unwrap(),
        invite.headers.call_id().unwrap(),
        hold.len()
    );
    h.receive(&reinvite, AGENT_1);
    let later = h.now + timeout * 2;
    h.core.media_silent(&call, None, timeout, later);
    assert_eq!(
        h.core.active_calls(),
        1,
        "a held call stays up past one timeout"
    );

    h.sent.clear();
    let much_later = h.now + timeout * super::in_dialog::HOLD_TIMEOUT_FACTOR;
    h.core.media_silent(&call, None, timeout, much_later);
    h.collect();
    assert_eq!(
        h.core.active_calls(),
        0,
        "a held call with vanished phones ends"
    );
    assert!(
        h.requests_to(CALLER)
            .iter()
            .any(|r| r.method == Method::Bye)
    );
    assert!(
        h.requests_to(AGENT_1)
            .iter()
            .any(|r| r.method == Method::Bye)
    );
    let record = h.finished_record();
    assert_eq!(record.hangup_side, Some(cdr::HangupSide::System));
}

#[test]
fn ready_ends_wrap_up_early() {
    let mut config = config();
    config.queues[0].wrap_up = Duration::from_secs(60);
    let mut h = Harness::with_config(config);
    let (call, _invite) = answered_call(&mut h);
    let tag = caller_tag(&h, &call);
    h.receive(&caller_bye(&tag), CALLER);
    let state = |h: &Harness| {
        h.core
            .agents_view(h.now)
            .into_iter()
            .find(|a| a.id == "1001")
            .unwrap()
            .state
    };
    assert_eq!(state(&h), "wrap_up");
    h.core
        .set_agent_readiness("1001", Readiness::Ready, h.now)
        .unwrap();
    assert_eq!(state(&h), "available");

    h.core
        .set_agent_readiness(
            "1001",
            Readiness::NotReady {
                reason: "lunch".into(),
            },
            h.now,
        )
        .unwrap();
    let view = h
        .core
        .agents_view(h.now)
        .into_iter()
        .find(|a| a.id == "1001")
        .unwrap();
    assert_eq!(view.state, "not_ready");
    assert_eq!(view.not_ready_reason.as_deref(), Some("lunch"));
    let unknown = h.core.set_agent_readiness("4242", Readiness::Ready, h.now);
    assert!(matches!(
        unknown,
        Err(AgentCommandError::UnknownAgent { .. })
    ));
}

/// An authenticated INVITE from agent 1002's phone to `number`.
fn authenticated_extension_invite(h: &mut Harness, number: &str, call_id: &str) -> String {
    h.receive(
        &extension_invite(number, call_id, "", &format!("z9hG4bK-{call_id}-1")),
        AGENT_2,
    );
    let challenge = h
        .responses_to(AGENT_2)
        .into_iter()
        .find(|r| r.status == 407)
        .expect("407");
    let header = challenge
        .headers
        .get("Proxy-Authenticate")
        .unwrap()
        .to_owned();
    let nonce = header
        .split("nonce=\"")
        .nth(1)
        .unwrap()
        .split('"')
        .next()
        .unwrap()
        .to_owned();
    let uri = format!("sip:{number}@pbx.test");
    let mut credentials = Credentials {
        username: "1002".into(),
        realm: "pbx.test".into(),
        nonce,
        uri: uri.clone(),
        ..Credentials::default()
    };
    credentials.response =
        expected_response(Algorithm::Md5, &credentials, "pbx.test", "pw-two", "INVITE").unwrap();
    let authorization = format!(
        "Proxy-Authorization: Digest username=\"1002\", realm=\"pbx.test\", nonce=\"{}\", uri=\"{uri}\", \
         response=\"{}\"\r\n",
        credentials.nonce, credentials.response
    );
    extension_invite(
        number,
        call_id,
        &authorization,
        &format!("z9hG4bK-{call_id}-2"),
    )
}

#[test]
fn feature_code_sets_agent_not_ready_and_hangs_up() {
    let mut h = Harness::new();
    assert_eq!(h.register("1002", "pw-two", AGENT_2).status, 200);
    let invite = authenticated_extension_invite(&mut h, "*22", "feature-1@test");
    h.receive(&invite, AGENT_2);
    h.store_events(true);
    let ok = h
        .responses_to(AGENT_2)
        .into_iter()
        .find(|r| r.status == 200)
        .expect("200 for the feature code");
    assert_eq!(ok.reason, "Not Ready: lunch");
    let body = String::from_utf8(ok.body.to_vec()).unwrap();
    assert!(body.contains("m=audio 0 "), "stream declined: {body}");
    let view = h
        .core
        .agents_view(h.now)
        .into_iter()
        .find(|a| a.id == "1002")
        .unwrap();
    assert_eq!(view.state, "not_ready");
    assert_eq!(view.not_ready_reason.as_deref(), Some("lunch"));
    assert!(
        h.commands
            .iter()
            .all(|c| !matches!(c, Command::OpenMedia { .. })),
        "no relay for a feature call"
    );

    let ack = format!(
        "ACK sip:pbx@127.0.0.1:5060 SIP/2.0\r\nVia: SIP/2.0/UDP {AGENT_2};branch=z9hG4bK-fack\r\n\
         Max-Forwards: 70\r\nFrom: <sip:1002@pbx.test>;tag=x1\r\nTo: {}\r\nCall-ID: feature-1@test\r\n\
         CSeq: 1 ACK\r\nContent-Length: 0\r\n\r\n",
        ok.headers.get("To").unwrap()
    );
    h.receive(&ack, AGENT_2);
    assert!(
        h.requests_to(AGENT_2)
            .iter()
            .any(|r| r.method == Method::Bye),
        "PBX hangs up after the ACK"
    );

    let invite = authenticated_extension_invite(&mut h, "*20", "feature-2@test");
    h.receive(&invite, AGENT_2);
    h.store_events(true);
    let ok = h
        .responses_to(AGENT_2)
        .into_iter()
        .find(|r| r.status == 200)
        .expect("200 for *20");
    assert_eq!(ok.reason, "Ready");
    let view = h
        .core
        .agents_view(h.now)
        .into_iter()
        .find(|a| a.id == "1002")
        .unwrap();
    assert_eq!(view.state, "available");
}

/// The `QueueLog` commands collected so far that hold an answer, with
/// their events.
fn holding_batches(h: &Harness) -> Vec<(Vec<HeldResponse>, Vec<acd::QueueEvent>)> {
    h.commands
        .iter()
        .filter_map(|command| match command {
            Command::QueueLog { held, events, .. } if !held.is_empty() => Some((
                held.clone(),
                events.iter().map(|stamped| stamped.event.clone()).collect(),
            )),
            _ => None,
        })
        .collect()
}

fn final_responses(h: &mut Harness, to: &str) -> Vec<Response> {
    h.responses_to(to)
        .into_iter()
        .filter(|response| response.status >= 200)
        .collect()
}

#[test]
fn bye_without_dialog_gets_481() {
    let mut h = Harness::new();
    let bye = "BYE sip:pbx@127.0.0.1:5060 SIP/2.0\r\nVia: SIP/2.0/UDP 192.0.2.10:5060;branch=z9hG4bK-stray\r\n\
               Max-Forwards: 70\r\nFrom: <sip:+15550100@carrier.test>;tag=s1\r\nTo: <sip:5000@pbx.test>\r\n\
               Call-ID: nobody@carrier.test\r\nCSeq: 2 BYE\r\nContent-Length: 0\r\n\r\n";
    h.receive(bye, CALLER);
    let statuses: Vec<u16> = h.responses_to(CALLER).iter().map(|r| r.status).collect();
    assert_eq!(statuses, [481]);
}

#[test]
fn feature_code_from_a_trunk_address_is_an_agent_call() {
    // The agent's phone sits in the trunk's address range.
    let mut config = config();
    config.trunks[0]
        .allow
        .push("198.51.100.0/24".parse().unwrap());
    let mut h = Harness::with_config(config);
    assert_eq!(h.register("1002", "pw-two", AGENT_2).status, 200);
    let invite = authenticated_extension_invite(&mut h, "*22", "feature-t@test");
    h.receive(&invite, AGENT_2);
    h.store_events(true);
    let ok = h
        .responses_to(AGENT_2)
        .into_iter()
        .find(|r| r.status == 200)
        .expect("200 for the feature code");
    assert_eq!(ok.reason, "Not Ready: lunch");
}

#[test]
fn feature_code_answer_waits_until_its_events_are_stored() {
    let mut h = Harness::new();
    assert_eq!(h.register("1002", "pw-two", AGENT_2).status, 200);
    h.commands.clear();
    let invite = authenticated_extension_invite(&mut h, "*22", "feature-held@test");
    h.receive(&invite, AGENT_2);

    // The change is in force at once, but the phone hears nothing final.
    let view = h.core.agents_view(h.now);
    assert_eq!(
        view.iter().find(|a| a.id == "1002").unwrap().state,
        "not_ready"
    );
    assert!(
        final_responses(&mut h, AGENT_2).is_empty(),
        "answered before the commit"
    );
    // The hold travels with the events of the change it confirms.
    let batches = holding_batches(&h);
    assert_eq!(batches.len(), 1, "{batches:?}");
    let (held, events) = &batches[0];
    assert_eq!(held.len(), 1);
    assert!(
        events.iter().any(|event| matches!(
            event,
            acd::QueueEvent::AgentNotReady { agent, reason, .. } if agent == "1002" && reason == "lunch"
        )),
        "{events:?}"
    );

    // A slow commit: the transaction says 100 Trying, still no answer.
    h.advance(Duration::from_millis(300));
    let waiting: Vec<u16> = h.responses_to(AGENT_2).iter().map(|r| r.status).collect();
    assert_eq!(waiting, [100]);

    h.core.events_stored(held[0], true, h.now);
    h.collect();
    let answers = final_responses(&mut h, AGENT_2);
    assert_eq!(answers.len(), 1);
    assert_eq!(
        (answers[0].status, answers[0].reason.as_str()),
        (200, "Not Ready: lunch")
    );
    // A second report of the same batch changes nothing.
    h.core.events_stored(held[0], true, h.now);
    h.collect();
    assert!(final_responses(&mut h, AGENT_2).is_empty());
}

#[test]
fn feature_code_without_new_events_still_waits_for_the_writer() {
    let mut h = Harness::new();
    assert_eq!(h.register("1002", "pw-two", AGENT_2).status, 200);
    let invite = authenticated_extension_invite(&mut h, "*21", "feature-a@test");
    h.receive(&invite, AGENT_2);
    h.store_events(true);
    h.take_to(AGENT_2);
    h.commands.clear();

    // Already on break: no event, but the first change may not be stored
    // yet when a phone repeats the code, so the answer waits all the same.
    let invite = authenticated_extension_invite(&mut h, "*21", "feature-b@test");
    h.receive(&invite, AGENT_2);
    assert!(final_responses(&mut h, AGENT_2).is_empty());
    let batches = holding_batches(&h);
    assert_eq!(batches.len(), 1, "{batches:?}");
    assert!(batches[0].1.is_empty(), "{batches:?}");
    h.store_events(true);
    let answers = final_responses(&mut h, AGENT_2);
    assert_eq!(answers[0].reason, "Not Ready: break");
}

#[test]
fn feature_code_not_stored_gets_500() {
    let mut h = Harness::new();
    assert_eq!(h.register("1002", "pw-two", AGENT_2).status, 200);
    let invite = authenticated_extension_invite(&mut h, "*12", "feature-lost@test");
    h.receive(&invite, AGENT_2);
    h.store_events(false);
    let answers = final_responses(&mut h, AGENT_2);
    assert_eq!(answers.len(), 1);
    assert_eq!(answers[0].status, 500);
    assert_eq!(answers[0].reason, "Logged Out, Not Stored");
    // The change itself stays in force, as with the API's 503.
    let view = h.core.agents_view(h.now);
    assert_eq!(
        view.iter().find(|a| a.id == "1002").unwrap().state,
        "logged_out"
    );
}

/// A re-INVITE from the caller of `call` carrying `sdp`.
fn caller_reinvite(h: &Harness, call: &str, branch: &str, sdp: &str) -> String {
    let tag = caller_tag(h, call);
    format!(
        "INVITE sip:pbx@127.0.0.1:5060 SIP/2.0\r\nVia: SIP/2.0/UDP {CALLER};branch=z9hG4bK-{branch}\r\n\
         Max-Forwards: 70\r\nFrom: \"Citizen\" <sip:+15550100@carrier.test>;tag=c1\r\n\
         To: <sip:5000@pbx.test>;tag={tag}\r\nCall-ID: caller-1@carrier.test\r\nCSeq: 2 INVITE\r\n\
         Contact: <sip:+15550100@{CALLER}>\r\nContent-Type: application/sdp\r\n\
         Content-Length: {}\r\n\r\n{sdp}",
        sdp.len()
    )
}

#[test]
fn reinvite_without_common_codec_gets_488() {
    let mut h = Harness::new();
    let (call, _invite) = answered_call(&mut h);
    let sdp = "v=0\r\no=- 1 2 IN IP4 192.0.2.10\r\ns=-\r\nc=IN IP4 192.0.2.10\r\nt=0 0\r\n\
               m=audio 40000 RTP/AVP 111\r\na=rtpmap:111 opus/48000/2\r\n";
    let reinvite = caller_reinvite(&h, &call, "opus", sdp);
    h.sent.clear();
    h.receive(&reinvite, CALLER);
    let statuses: Vec<u16> = h.responses_to(CALLER).iter().map(|r| r.status).collect();
    assert!(statuses.contains(&488), "{statuses:?}");
    assert!(
        h.requests_to(AGENT_1).is_empty(),
        "an offer the relay cannot carry reached the agent"
    );
}

#[test]
fn reinvite_narrowed_to_relay_codecs() {
    let mut h = Harness::new();
    let (call, _invite) = answered_call(&mut h);
    let sdp = "v=0\r\no=- 1 2 IN IP4 192.0.2.10\r\ns=-\r\nc=IN IP4 192.0.2.10\r\nt=0 0\r\n\
               m=audio 40000 RTP/AVP 111 8\r\na=rtpmap:111 opus/48000/2\r\na=rtpmap:8 PCMA/8000\r\n";
    let reinvite = caller_reinvite(&h, &call, "mix", sdp);
    h.sent.clear();
    h.receive(&reinvite, CALLER);
    let relayed = h
        .requests_to(AGENT_1)
        .into_iter()
        .find(|r| r.method == Method::Invite)
        .expect("re-INVITE relayed to the agent");
    let body = String::from_utf8_lossy(&relayed.body).into_owned();
    assert!(body.contains("m=audio "), "{body}");
    assert!(body.contains(" RTP/AVP 8"), "{body}");
    assert!(!body.contains("opus"), "{body}");
}

#[test]
fn reinvite_with_srtp_gets_488() {
    let mut h = Harness::new();
    let (call, _invite) = answered_call(&mut h);
    let sdp = "v=0\r\no=- 1 2 IN IP4 192.0.2.10\r\ns=-\r\nc=IN IP4 192.0.2.10\r\nt=0 0\r\n\
               m=audio 40000 RTP/SAVP 0\r\n";
    let reinvite = caller_reinvite(&h, &call, "srtp", sdp);
    h.sent.clear();
    h.receive(&reinvite, CALLER);
    let statuses: Vec<u16> = h.responses_to(CALLER).iter().map(|r| r.status).collect();
    assert!(statuses.contains(&488), "{statuses:?}");
    assert!(
        h.requests_to(AGENT_1).is_empty(),
        "nothing relayed to the agent"
    );
}

#[test]
fn contact_pointing_at_the_pbx_is_refused() {
    let mut h = Harness::new();
    let register = format!(
        "REGISTER sip:pbx.test SIP/2.0\r\nVia: SIP/2.0/UDP {AGENT_1};branch=z9hG4bK-self\r\n\
         Max-Forwards: 70\r\nFrom: <sip:1001@pbx.test>;tag=s\r\nTo: <sip:1001@pbx.test>\r\n\
         Call-ID: self@test\r\nCSeq: 1 REGISTER\r\nContact: <sip:1001@127.0.0.1:5060>\r\n\
         Content-Length: 0\r\n\r\n"
    );
    h.receive(&register, AGENT_1);
    let response = h.responses_to(AGENT_1).pop().expect("response");
    assert_eq!(response.status, 403);
    assert!(h.core.bindings("1001", h.now).is_empty());
}

#[test]
fn queue_events_reach_the_driver_with_their_wall_time() {
    let wall = SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000);
    let now = Instant::now();
    let mut h = Harness {
        core: Core::new(config(), now, wall).unwrap(),
        now,
        sent: Vec::new(),
        commands: Vec::new(),
    };
    answered_call(&mut h);
    let mut kinds = Vec::new();
    let mut lines = Vec::new();
    for command in &h.commands {
        if let Command::QueueLog {
            lines: batch,
            events,
            ..
        } = command
        {
            lines.extend(batch.iter().cloned());
            for stamped in events {
                // The harness clock never moved, so every event happened at
                // the wall time the core was created with.
                assert_eq!(stamped.wall, wall, "{:?}", stamped.event);
                kinds.push(std::mem::discriminant(&stamped.event));
            }
        }
    }
    let answered = h.commands.iter().find_map(|c| match c {
        Command::QueueLog { events, .. } => events.iter().find_map(|s| match &s.event {
            acd::QueueEvent::OfferAnswered { agent, .. } => Some(agent.clone()),
            _ => None,
        }),
        _ => None,
    });
    assert_eq!(answered.as_deref(), Some("1001"));
    // Offers have no queue_log line but are still handed over as events.
    assert!(kinds.len() > lines.len(), "{kinds:?} vs {lines:?}");
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with("1800000000|") && l.contains("|CONNECT|")),
        "{lines:?}"
    );
}

#[test]
fn g722_call_tells_the_relay_before_recording() {
    let mut h = Harness::new();
    assert_eq!(h.register("1001", "pw-one", AGENT_1).status, 200);
    let sdp = "v=0\r\no=- 1 1 IN IP4 192.0.2.10\r\ns=-\r\nc=IN IP4 192.0.2.10\r\nt=0 0\r\n\
               m=audio 40000 RTP/AVP 9 0 101\r\na=rtpmap:101 telephone-event/8000\r\n";
    let text = format!(
        "INVITE sip:5000@pbx.test SIP/2.0\r\nVia: SIP/2.0/UDP {CALLER};branch=z9hG4bK-wide\r\n\
         Max-Forwards: 70\r\nFrom: <sip:+15550100@carrier.test>;tag=c1\r\nTo: <sip:5000@pbx.test>\r\n\
         Call-ID: wide@test\r\nCSeq: 1 INVITE\r\nContact: <sip:+15550100@{CALLER}>\r\n\
         Content-Type: application/sdp\r\nContent-Length: {}\r\n\r\n{sdp}",
        sdp.len()
    );
    h.receive(&text, CALLER);
    let call = h.open_media();
    let invite = h
        .requests_to(AGENT_1)
        .into_iter()
        .find(|r| r.method == Method::Invite)
        .unwrap();
    let offered = crate::sdp::parse(&invite.body).unwrap();
    assert_eq!(offered.media[0].formats, ["9", "0", "101"]);
    let answer = "v=0\r\no=- 7 7 IN IP4 198.51.100.21\r\ns=-\r\nc=IN IP4 198.51.100.21\r\n\
                  t=0 0\r\nm=audio 42000 RTP/AVP 9 101\r\na=rtpmap:101 telephone-event/8000\r\n";
    h.receive(
        &agent_response(&invite, 200, AGENT_1, Some(answer)),
        AGENT_1,
    );
    let codecs: Vec<(Side, u8)> = h
        .commands
        .iter()
        .filter_map(|command| match command {
            Command::SetCodecs {
                call: c,
                side,
                payload_type,
                ..
            } if *c == call => Some((*side, *payload_type)),
            _ => None,
        })
        .collect();
    assert_eq!(codecs, [(Side::Caller, 9), (Side::Agent, 9)]);
    let codecs_at = h
        .commands
        .iter()
        .position(|c| matches!(c, Command::SetCodecs { .. }))
        .unwrap();
    let recording_at = h
        .commands
        .iter()
        .position(|c| matches!(c, Command::StartRecording { .. }))
        .unwrap();
    assert!(
        codecs_at < recording_at,
        "the recorder must know it is wideband"
    );
}

#[test]
fn stored_legs_get_bye_after_crash() {
    let mut h = Harness::new();
    answered_call(&mut h);
    let legs = h
        .commands
        .iter()
        .rev()
        .find_map(|command| match command {
            Command::Checkpoint { legs, .. } => Some(legs.clone()),
            _ => None,
        })
        .expect("the answer is checkpointed");
    assert_eq!(legs.dialogs.len(), 2, "caller and agent dialogs: {legs:?}");
    assert!(legs.ringing.is_empty(), "nothing rings once answered");
    let json = serde_json::to_string(&legs).unwrap();
    let legs: crate::dialog::StoredLegs = serde_json::from_str(&json).unwrap();
    let stored = &legs.dialogs;

    // A new process has nothing of the call but the stored dialogs.
    let mut restarted = Harness::new();
    restarted.core.end_interrupted_dialogs(&legs, restarted.now);
    restarted.collect();
    for (peer, stored) in [(CALLER, &stored[0]), (AGENT_1, &stored[1])] {
        let bye = restarted
            .requests_to(peer)
            .into_iter()
            .find(|r| r.method == Method::Bye)
            .unwrap_or_else(|| panic!("BYE to {peer}"));
        assert_eq!(bye.headers.call_id(), Some(stored.call_id.as_str()));
        assert_eq!(
            bye.headers.from().unwrap().tag(),
            Some(stored.local_tag.as_str())
        );
        assert_eq!(
            bye.headers.to().unwrap().tag(),
            Some(stored.remote_tag.as_str())
        );
        assert!(bye.headers.cseq().unwrap().seq > stored.local_cseq + 1);
    }
}

#[test]
fn first_agent_states_reach_driver() {
    let mut h = Harness::new();
    h.collect();
    let changed: Vec<String> = h
        .commands
        .iter()
        .flat_map(|command| match command {
            Command::QueueLog { events, .. } => events.clone(),
            _ => Vec::new(),
        })
        .filter_map(|stamped| match stamped.event {
            acd::QueueEvent::AgentStateChanged { agent, .. } => Some(agent),
            _ => None,
        })
        .collect();
    assert_eq!(changed.len(), 2, "{changed:?}");
}

#[test]
fn no_relay_ports_gets_503_with_retry_after() {
    let mut h = Harness::new();
    h.caller_invite("5000", CALLER);
    let index = h
        .commands
        .iter()
        .position(|c| matches!(c, Command::OpenMedia { .. }))
        .expect("OpenMedia issued");
    let Command::OpenMedia { call, .. } = h.commands.remove(index) else {
        unreachable!()
    };
    h.core.media_failed(&call, h.now);
    h.collect();
    let response = h
        .responses_to(CALLER)
        .into_iter()
        .find(|r| r.status == 503)
        .expect("503");
    assert_eq!(response.headers.get("Retry-After"), Some("10"));
    assert_eq!(h.core.overload_rejections(), 1);
    assert_eq!(h.finished_record().disposition, cdr::Disposition::Failed);
}

#[test]
fn overload_rejects_only_new_calls() {
    let mut config = config();
    config.overload.max_transactions = 3;
    let mut h = Harness::with_config(config);
    let (call, _) = answered_call(&mut h);
    // Calls that ended their transactions leave room for new ones.
    h.advance(Duration::from_secs(40));
    h.core.set_cpu_overloaded(true);
    let refused = |h: &mut Harness, branch: &str, call_id: &str| {
        let text = format!(
            "INVITE sip:5000@pbx.test SIP/2.0\r\nVia: SIP/2.0/UDP {CALLER};branch=z9hG4bK-{branch}\r\n\
             Max-Forwards: 70\r\nFrom: <sip:+15550100@carrier.test>;tag={branch}\r\n\
             To: <sip:5000@pbx.test>\r\nCall-ID: {call_id}\r\nCSeq: 1 INVITE\r\n\
             Content-Length: 0\r\n\r\n"
        );
        h.receive(&text, CALLER);
        h.responses_to(CALLER)
            .into_iter()
            .find(|r| r.status >= 300)
            .expect("final response")
    };
    let response = refused(&mut h, "cpu", "cpu@test");
    assert_eq!(response.status, 503);
    assert_eq!(response.headers.get("Retry-After"), Some("10"));
    assert_eq!(h.core.active_calls(), 1);

    // Four transactions in flight pass the limit of three.
    h.core.set_cpu_overloaded(false);
    for n in 0..4 {
        let options = format!(
            "OPTIONS sip:pbx.test SIP/2.0\r\nVia: SIP/2.0/UDP {OUTSIDER};branch=z9hG4bK-opt{n}\r\n\
             Max-Forwards: 70\r\nFrom: <sip:probe@example.test>;tag=o{n}\r\nTo: <sip:pbx.test>\r\n\
             Call-ID: opt{n}@test\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n"
        );
        h.receive(&options, OUTSIDER);
    }
    assert_eq!(refused(&mut h, "busy", "busy@test").status, 503);
    assert_eq!(h.core.overload_rejections(), 2);

    // The call in progress still ends normally.
    h.receive(&caller_bye(&caller_tag(&h, &call)), CALLER);
    assert!(h.responses_to(CALLER).iter().any(|r| r.status == 200));
    assert_eq!(h.finished_record().disposition, cdr::Disposition::Answered);
}

#[test]
fn call_limit_and_storage_backlog_reject_calls() {
    let mut config = config();
    config.overload.max_calls = 1;
    let mut h = Harness::with_config(config);
    let (call, _) = answered_call(&mut h);
    let invite = |branch: &str| {
        format!(
            "INVITE sip:5000@pbx.test SIP/2.0\r\nVia: SIP/2.0/UDP {CALLER};branch=z9hG4bK-{branch}\r\n\
             Max-Forwards: 70\r\nFrom: <sip:+15550100@carrier.test>;tag={branch}\r\n\
             To: <sip:5000@pbx.test>\r\nCall-ID: {branch}@test\r\nCSeq: 1 INVITE\r\n\
             Content-Length: 0\r\n\r\n"
        )
    };
    h.receive(&invite("second"), CALLER);
    let rejected = h
        .responses_to(CALLER)
        .into_iter()
        .find(|r| r.status >= 300)
        .expect("final response");
    assert_eq!(rejected.status, 503);
    assert_eq!(rejected.headers.get("Retry-After"), Some("10"));
    assert_eq!(h.core.overload_rejections(), 1);
    // Rejected before the relay: no ports are requested for the second call.
    assert!(
        !h.commands.iter().any(
            |c| matches!(c, Command::OpenMedia { sip_call_id, .. } if sip_call_id == "second@test")
        ),
        "{:?}",
        h.commands
    );

    h.receive(&caller_bye(&caller_tag(&h, &call)), CALLER);
    h.collect();
    assert_eq!(h.core.active_calls(), 0);

    // Stores that fall behind reject new calls even below the limit.
    h.core.set_storage_behind(true);
    h.receive(&invite("stored"), CALLER);
    assert_eq!(h.core.overload_rejections(), 2);
    assert_eq!(h.core.active_calls(), 0);

    // Once they catch up, the next call is accepted.
    h.core.set_storage_behind(false);
    h.commands.clear();
    h.receive(&invite("third"), CALLER);
    h.collect();
    assert!(
        h.commands.iter().any(
            |c| matches!(c, Command::OpenMedia { sip_call_id, .. } if sip_call_id == "third@test")
        ),
        "{:?}",
        h.commands
    );
    assert_eq!(h.core.overload_rejections(), 2);
}

#[test]
fn overload_warnings_are_spaced_and_counted() {
    let mut throttle = super::WarningThrottle::new(Duration::from_secs(10));
    let start = Instant::now();
    // The first occurrence is reported at once.
    assert_eq!(throttle.note(start), Some(1));
    for ms in 1..=2_500u64 {
        assert_eq!(throttle.note(start + Duration::from_millis(ms)), None);
    }
    // Ten seconds on, the next one reports itself and the 2,500 held back.
    assert_eq!(throttle.note(start + Duration::from_secs(10)), Some(2_501));
    assert_eq!(throttle.note(start + Duration::from_secs(11)), None);
    // After a quiet spell the count covers only what came since.
    assert_eq!(throttle.note(start + Duration::from_secs(60)), Some(2));
}

#[test]
fn trunk_identity_reaches_record_in_e164() {
    let mut config = config();
    config.trunks[0].numbering = Some(NumberingPlan {
        country_code: "33".into(),
        national_prefix: "0".into(),
        international_prefix: "00".into(),
    });
    // The centre's number is known in E.164 only; the carrier sends the
    // national form and the number the citizen dialed before a redirect.
    let route = config.dids.remove("5000").unwrap();
    config.dids.insert("+33140000000".into(), route);
    let mut h = Harness::with_config(config);
    let sdp = "v=0\r\no=- 1 1 IN IP4 192.0.2.10\r\ns=-\r\nc=IN IP4 192.0.2.10\r\nt=0 0\r\n\
               m=audio 40000 RTP/AVP 0\r\n";
    let text = format!(
        "INVITE sip:0999999999@pbx.test SIP/2.0\r\nVia: SIP/2.0/UDP {CALLER};branch=z9hG4bK-pai\r\n\
         Max-Forwards: 70\r\nFrom: \"Anonymous\" <sip:anonymous@anonymous.invalid>;tag=pai\r\n\
         To: <sip:0999999999@pbx.test>\r\nCall-ID: pai@test\r\nCSeq: 1 INVITE\r\n\
         P-Asserted-Identity: <tel:0612345678>\r\nPrivacy: id\r\n\
         Diversion: <sip:0140000000@carrier.test>;reason=unconditional\r\n\
         Content-Type: application/sdp\r\nContent-Length: {}\r\n\r\n{sdp}",
        sdp.len()
    );
    h.receive(&text, CALLER);
    let call = h.open_media();
    assert_eq!(h.core.calls[&call].caller_number, "+33612345678");
    h.advance(Duration::from_secs(61));
    let record = h.finished_record();
    assert_eq!(record.caller, "+33612345678");
    assert_eq!(record.diverted_from.as_deref(), Some("+33140000000"));
    assert_eq!(
        record.dialed, "0999999999",
        "the Request-URI stays as received"
    );
    assert_eq!(record.queue.as_deref(), Some("general"));
}

#[test]
fn bye_during_an_unanswered_reinvite_ends_the_call() {
    let mut h = Harness::new();
    let (_call, invite) = answered_call(&mut h);
    h.sent.clear();
    let hold = "v=0\r\no=- 7 8 IN IP4 198.51.100.21\r\ns=-\r\nc=IN IP4 198.51.100.21\r\nt=0 0\r\n\
                m=audio 42000 RTP/AVP 0\r\na=sendonly\r\n";
    let from_agent = |method: &str, cseq: u32, body: &str| {
        format!(
            "{method} sip:pbx@127.0.0.1:5060 SIP/2.0\r\nVia: SIP/2.0/UDP {AGENT_1};branch=z9hG4bK-{method}{cseq}\r\n\
             Max-Forwards: 70\r\nFrom: <sip:1001@pbx.test>;tag=agenttag\r\nTo: {}\r\nCall-ID: {}\r\n\
             CSeq: {cseq} {method}\r\nContact: <sip:agent@{AGENT_1}>\r\nContent-Type: application/sdp\r\n\
             Content-Length: {}\r\n\r\n{body}",
            invite.headers.get("From").unwrap(),
            invite.headers.call_id().unwrap(),
            body.len()
        )
    };
    h.receive(&from_agent("INVITE", 2, hold), AGENT_1);
    assert!(
        h.requests_to(CALLER)
            .iter()
            .any(|r| r.method == Method::Invite),
        "the hold is relayed and the caller never answers it"
    );
    h.receive(&from_agent("BYE", 3, ""), AGENT_1);
    let statuses: Vec<u16> = h
        .responses_to(AGENT_1)
        .iter()
        .filter(|r| r.headers.cseq().is_ok_and(|c| c.method == Method::Bye))
        .map(|r| r.status)
        .collect();
    assert_eq!(statuses, [200]);
    assert!(
        h.requests_to(CALLER)
            .iter()
            .any(|r| r.method == Method::Bye)
    );
    assert_eq!(
        h.finished_record().hangup_side,
        Some(cdr::HangupSide::Agent)
    );
    assert_eq!(h.core.active_calls(), 0);
}

#[test]
fn reinvite_that_times_out_ends_the_call() {
    let mut h = Harness::new();
    let (_call, invite) = answered_call(&mut h);
    h.sent.clear();
    let hold = "v=0\r\no=- 7 8 IN IP4 198.51.100.21\r\ns=-\r\nc=IN IP4 198.51.100.21\r\nt=0 0\r\n\
                m=audio 42000 RTP/AVP 0\r\na=sendonly\r\n";
    let reinvite = format!(
        "INVITE sip:pbx@127.0.0.1:5060 SIP/2.0\r\nVia: SIP/2.0/UDP {AGENT_1};branch=z9hG4bK-stale\r\n\
         Max-Forwards: 70\r\nFrom: <sip:1001@pbx.test>;tag=agenttag\r\nTo: {}\r\nCall-ID: {}\r\n\
         CSeq: 2 INVITE\r\nContact: <sip:agent@{AGENT_1}>\r\nContent-Type: application/sdp\r\n\
         Content-Length: {}\r\n\r\n{hold}",
        invite.headers.get("From").unwrap(),
        invite.headers.call_id().unwrap(),
        hold.len()
    );
    h.receive(&reinvite, AGENT_1);
    // The caller's side never answers: Timer B gives 408 after 64*T1.
    h.advance(Duration::from_secs(33));
    let to_agent = h.take_to(AGENT_1);
    assert!(
        to_agent
            .iter()
            .any(|m| matches!(m, Message::Response(r) if r.status == 408)),
        "the agent learns its re-INVITE failed"
    );
    assert!(
        to_agent
            .iter()
            .any(|m| matches!(m, Message::Request(r) if r.method == Method::Bye)),
        "and the call it can no longer change ends"
    );
    let record = h.finished_record();
    assert_eq!(record.disposition, cdr::Disposition::Answered);
    assert_eq!(record.hangup_side, Some(cdr::HangupSide::Caller));
    assert_eq!(h.core.active_calls(), 0);
}

#[test]
fn a_ringing_agent_gets_cancel_after_a_crash() {
    let mut h = Harness::new();
    assert_eq!(h.register("1001", "pw-one", AGENT_1).status, 200);
    h.caller_invite("5000", CALLER);
    h.open_media();
    let invite = h
        .requests_to(AGENT_1)
        .into_iter()
        .find(|r| r.method == Method::Invite)
        .expect("the agent rings");
    let legs = h
        .commands
        .iter()
        .rev()
        .find_map(|command| match command {
            Command::Checkpoint { legs, .. } => Some(legs.clone()),
            _ => None,
        })
        .expect("the offer is checkpointed");
    assert_eq!(legs.ringing.len(), 1);

    let mut restarted = Harness::new();
    restarted.core.end_interrupted_dialogs(&legs, restarted.now);
    restarted.collect();
    let cancel = restarted
        .requests_to(AGENT_1)
        .into_iter()
        .find(|r| r.method == Method::Cancel)
        .expect("CANCEL to the ringing phone");
    assert_eq!(cancel.headers.call_id(), invite.headers.call_id());
    assert_eq!(
        cancel.headers.top_via().unwrap().branch(),
        invite.headers.top_via().unwrap().branch()
    );
    assert_eq!(cancel.headers.cseq().unwrap().seq, 1);
}

#[test]
fn g722_only_caller_reaches_a_g711_agent_through_transcoding() {
    let mut h = Harness::new();
    assert_eq!(h.register("1001", "pw-one", AGENT_1).status, 200);
    let sdp = "v=0\r\no=- 1 1 IN IP4 192.0.2.10\r\ns=-\r\nc=IN IP4 192.0.2.10\r\nt=0 0\r\n\
               m=audio 40000 RTP/AVP 9 101\r\na=rtpmap:9 G722/8000\r\n\
               a=rtpmap:101 telephone-event/8000\r\n";
    let text = format!(
        "INVITE sip:5000@pbx.test SIP/2.0\r\nVia: SIP/2.0/UDP {CALLER};branch=z9hG4bK-g722\r\n\
         Max-Forwards: 70\r\nFrom: <sip:+15550100@carrier.test>;tag=c1\r\nTo: <sip:5000@pbx.test>\r\n\
         Call-ID: g722@test\r\nCSeq: 1 INVITE\r\nContact: <sip:+15550100@{CALLER}>\r\n\
         Content-Type: application/sdp\r\nContent-Length: {}\r\n\r\n{sdp}",
        sdp.len()
    );
    h.receive(&text, CALLER);
    let call = h.open_media();
    let invite = h
        .requests_to(AGENT_1)
        .into_iter()
        .find(|r| r.method == Method::Invite)
        .unwrap();
    let offered = crate::sdp::parse(&invite.body).unwrap();
    assert_eq!(offered.media[0].formats, ["9", "0", "8", "101"]);
    h.receive(
        &agent_response(&invite, 200, AGENT_1, Some(AGENT_SDP)),
        AGENT_1,
    );
    let ok = h
        .responses_to(CALLER)
        .into_iter()
        .find(|r| r.status == 200)
        .expect("the caller is answered");
    let answer = crate::sdp::parse(&ok.body).unwrap();
    assert_eq!(
        crate::sdp::voice_payload_type(&answer),
        Some(9),
        "in its own codec"
    );
    let codecs: Vec<(Side, u8)> = h
        .commands
        .iter()
        .filter_map(|command| match command {
            Command::SetCodecs {
                call: c,
                side,
                payload_type,
                ..
            } if *c == call => Some((*side, *payload_type)),
            _ => None,
        })
        .collect();
    assert_eq!(codecs, [(Side::Caller, 9), (Side::Agent, 0)]);
}

#[test]
fn caller_without_from_tag_can_hang_up() {
    // RFC 2543 callers send no From tag; their BYE must still match.
    let mut h = Harness::new();
    assert_eq!(h.register("1001", "pw-one", AGENT_1).status, 200);
    let sdp = "v=0\r\no=- 1 1 IN IP4 192.0.2.10\r\ns=-\r\nc=IN IP4 192.0.2.10\r\nt=0 0\r\n\
               m=audio 40000 RTP/AVP 0\r\n";
    let headers = |method: &str, cseq: u32, to_tag: &str| {
        format!(
            "{method} sip:5000@pbx.test SIP/2.0\r\nVia: SIP/2.0/UDP {CALLER};branch=z9hG4bK-2543{cseq}\r\n\
             Max-Forwards: 70\r\nFrom: <sip:+15550100@carrier.test>\r\nTo: <sip:5000@pbx.test>{to_tag}\r\n\
             Call-ID: rfc2543@test\r\nCSeq: {cseq} {method}\r\n"
        )
    };
    let invite = format!(
        "{}Content-Type: application/sdp\r\nContent-Length: {}\r\n\r\n{sdp}",
        headers("INVITE", 1, ""),
        sdp.len()
    );
    h.receive(&invite, CALLER);
    let call = h.open_media();
    let ring = h
        .requests_to(AGENT_1)
        .into_iter()
        .find(|r| r.method == Method::Invite)
        .unwrap();
    h.receive(
        &agent_response(&ring, 200, AGENT_1, Some(AGENT_SDP)),
        AGENT_1,
    );
    let tag = format!(";tag={}", caller_tag(&h, &call));
    h.receive(
        &format!("{}Content-Length: 0\r\n\r\n", headers("ACK", 1, &tag)),
        CALLER,
    );
    h.receive(
        &format!("{}Content-Length: 0\r\n\r\n", headers("BYE", 2, &tag)),
        CALLER,
    );
    assert!(
        h.responses_to(CALLER)
            .iter()
            .any(|r| r.status == 200 && r.headers.cseq().is_ok_and(|c| c.method == Method::Bye))
    );
    assert_eq!(
        h.finished_record().hangup_side,
        Some(cdr::HangupSide::Caller)
    );
}

#[test]
fn websocket_binding_leaves_with_its_connection() {
    let mut h = Harness::new();
    let flow = |transport, connection| Target {
        transport,
        addr: "192.0.2.30:50000".parse().unwrap(),
        connection: Some(connection),
    };
    let response = h.register_over("1001", "pw-one", flow(TransportKind::Ws, 9));
    assert_eq!(response.status, 200);
    let response = h.register_over("1002", "pw-two", flow(TransportKind::Tcp, 10));
    assert_eq!(response.status, 200);

    // Another connection closing changes nothing.
    h.core.connection_closed(8, h.now);
    assert_eq!(h.core.bindings("1001", h.now).len(), 1);

    h.core.connection_closed(9, h.now);
    assert!(h.core.bindings("1001", h.now).is_empty());
    // A TCP contact can be connected to again, so it stays.
    h.core.connection_closed(10, h.now);
    assert_eq!(h.core.bindings("1002", h.now).len(), 1);
}

#[test]
fn closed_websocket_ends_the_agents_call() {
    let mut h = Harness::new();
    let phone = "192.0.2.30:50000";
    let flow = Target {
        transport: TransportKind::Ws,
        addr: phone.parse().unwrap(),
        connection: Some(9),
    };
    assert_eq!(h.register_over("1001", "pw-one", flow).status, 200);
    h.caller_invite("5000", CALLER);
    let call = h.open_media();
    let ring = h
        .requests_to(phone)
        .into_iter()
        .find(|r| r.method == Method::Invite)
        .expect("the WebSocket phone rings");
    h.receive_over(&agent_response(&ring, 200, phone, Some(AGENT_SDP)), flow);
    let tag = caller_tag(&h, &call);
    let ack = format!(
        "ACK sip:pbx@127.0.0.1:5060 SIP/2.0\r\nVia: SIP/2.0/UDP {CALLER};branch=z9hG4bK-wsack\r\n\
         Max-Forwards: 70\r\nFrom: \"Citizen\" <sip:+15550100@carrier.test>;tag=c1\r\n\
         To: <sip:5000@pbx.test>;tag={tag}\r\nCall-ID: caller-1@carrier.test\r\nCSeq: 1 ACK\r\n\
         Content-Length: 0\r\n\r\n"
    );
    h.receive(&ack, CALLER);
    h.advance(Duration::from_secs(20));

    // The browser tab closes: its connection goes with the call.
    h.core.connection_closed(9, h.now);
    h.collect();
    assert!(
        h.requests_to(CALLER)
            .iter()
            .any(|r| r.method == Method::Bye),
        "the caller is hung up"
    );
    let record = h.finished_record();
    assert_eq!(record.hangup_side, Some(cdr::HangupSide::Agent));
    assert!((record.talk_seconds - 20.0).abs() < 0.01);
    assert_eq!(h.core.active_calls(), 0);
}

#[test]
fn offer_routes_through_registered_path() {
    let mut h = Harness::new();
    let proxy = udp("198.51.100.5:5070");
    let path = "Supported: path\r\nPath: <sip:198.51.100.5:5070;lr>\r\n";
    let response = h.register_with_headers("1001", "pw-one", proxy, "", path);
    assert_eq!(response.status, 200);
    assert_eq!(
        response.headers.get("Path"),
        Some("<sip:198.51.100.5:5070;lr>")
    );

    h.caller_invite("5000", CALLER);
    h.open_media();
    let invite = h
        .requests_to("198.51.100.5:5070")
        .into_iter()
        .find(|r| r.method == Method::Invite)
        .expect("INVITE sent to the proxy of the Path");
    let routes: Vec<&str> = invite.headers.get_all("Route").collect();
    assert_eq!(routes, ["<sip:198.51.100.5:5070;lr>"]);
    assert_eq!(invite.uri.to_string(), "sip:1001@198.51.100.5:5070");
}
