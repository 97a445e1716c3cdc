//! A feature code's answer and the event writer, driven step by step: the
//! phone gets its 200 only after the writer has committed the change.

use std::collections::HashMap;
use std::path::Path;
use std::time::{Instant, SystemTime};

use sip_message::{Message, Response};
use sip_server::auth::{Algorithm, Credentials, expected_response};
use sip_server::b2bua::{Command, Core};
use sip_server::transaction::{Target, TransportKind};
use tokio::sync::mpsc;

use super::{Stored, add_queue_log};
use crate::events::{EventBatch, EventStore, write_events};

/// An agent's phone outside the default trunk's 127.0.0.0/8, so its calls
/// need digest authentication and count as the agent's own.
const PHONE: &str = "198.51.100.21:5062";
const PASSWORD: &str = "feature-test-password";

fn core(now: Instant) -> Core {
    let config =
        crate::config::Config::parse(crate::config::EMBEDDED_TEXT, "embedded").expect("config");
    let passwords: HashMap<String, String> = [("1001".to_owned(), PASSWORD.to_owned())].into();
    let sip = crate::transport::Bound::udp_tcp_only("127.0.0.1:5060".parse().unwrap());
    let core_config = crate::server::core_config(&config, sip, passwords, Path::new("/sounds"));
    Core::new(core_config, now, SystemTime::now()).expect("core")
}

fn phone() -> Target {
    Target {
        transport: TransportKind::Udp,
        addr: PHONE.parse().unwrap(),
        connection: None,
    }
}

fn invite(number: &str, cseq: u32, authorization: &str) -> Message {
    let sdp = "v=0\r\no=- 1 1 IN IP4 198.51.100.21\r\ns=-\r\nc=IN IP4 198.51.100.21\r\nt=0 0\r\n\
               m=audio 41000 RTP/AVP 0\r\n";
    let text = format!(
        "INVITE sip:{number}@pbx.local SIP/2.0\r\nVia: SIP/2.0/UDP {PHONE};branch=z9hG4bK-feature-{cseq}\r\n\
         Max-Forwards: 70\r\nFrom: <sip:1001@pbx.local>;tag=f1\r\nTo: <sip:{number}@pbx.local>\r\n\
         Call-ID: feature@engine-test\r\nCSeq: {cseq} INVITE\r\nContact: <sip:1001@{PHONE}>\r\n\
         {authorization}Content-Type: application/sdp\r\nContent-Length: {}\r\n\r\n{sdp}",
        sdp.len()
    );
    Message::parse(text.as_bytes()).expect("INVITE parses")
}

/// Final responses the core sent to the phone so far.
fn final_responses(core: &mut Core) -> Vec<Response> {
    let mut responses = Vec::new();
    while let Some(transmit) = core.poll_transmit() {
        if let Ok(Message::Response(response)) = Message::parse(&transmit.payload)
            && response.status >= 200
        {
            responses.push(response);
        }
    }
    responses
}

/// Dials `number` with digest authentication; returns the responses to
/// the authenticated INVITE.
fn dial(core: &mut Core, number: &str, now: Instant) -> Vec<Response> {
    core.handle_message(invite(number, 1, ""), phone(), now);
    let challenge = final_responses(core)
        .into_iter()
        .find(|response| response.status == 407)
        .expect("407 challenge");
    let header = challenge.headers.get("Proxy-Authenticate").unwrap();
    let nonce = header
        .split("nonce=\"")
        .nth(1)
        .unwrap()
        .split('"')
        .next()
        .unwrap();
    let realm = header
        .split("realm=\"")
        .nth(1)
        .unwrap()
        .split('"')
        .next()
        .unwrap();
    let uri = format!("sip:{number}@pbx.local");
    let mut credentials = Credentials {
        username: "1001".into(),
        realm: realm.into(),
        nonce: nonce.into(),
        uri: uri.clone(),
        ..Credentials::default()
    };
    credentials.response =
        expected_response(Algorithm::Md5, &credentials, realm, PASSWORD, "INVITE").unwrap();
    let authorization = format!(
        "Proxy-Authorization: Digest username=\"1001\", realm=\"{realm}\", nonce=\"{nonce}\", \
         uri=\"{uri}\", response=\"{}\"\r\n",
        credentials.response
    );
    core.handle_message(invite(number, 2, &authorization), phone(), now);
    final_responses(core)
}

#[tokio::test]
async fn feature_code_response_follows_the_commit() {
    let dir = tempfile::tempdir().unwrap();
    let cdr = cdr::CdrStore::open(dir.path()).await.unwrap();
    let store = EventStore::open(cdr.pool().clone()).await.unwrap();
    let now = Instant::now();
    let mut core = core(now);

    let early = dial(&mut core, "*22", now);
    assert!(early.is_empty(), "answered before any commit: {early:?}");

    // What the engine does with the core's commands, with the writer not
    // yet running, so the commit cannot have happened.
    let (batches, queue) = mpsc::unbounded_channel();
    let (stored, mut notices) = mpsc::unbounded_channel::<Stored>();
    while let Some(command) = core.poll_command() {
        if let Command::QueueLog {
            lines,
            events,
            held,
        } = command
        {
            let mut batch = EventBatch::default();
            add_queue_log(&mut batch, lines, &events, held, &stored);
            batches.send(batch).unwrap();
        }
    }
    assert!(notices.try_recv().is_err(), "released before the commit");
    assert!(store.all().await.unwrap().is_empty());
    assert!(final_responses(&mut core).is_empty());

    let path = dir.path().join("queue_log");
    let writer = tokio::spawn(write_events(
        store.clone(),
        path.clone(),
        queue,
        crate::events::EventFeed::new(16),
    ));
    let notice = notices.recv().await.expect("the writer reports the commit");
    assert!(notice.committed);
    // The notice comes from the writer after its commit: the rows are there.
    let rows = store.all().await.unwrap();
    assert!(
        rows.iter().any(|row| row.kind == "agent_not_ready"
            && row.agent.as_deref() == Some("1001")
            && row.data["reason"] == "lunch"),
        "{rows:?}"
    );

    for held in notice.held {
        core.events_stored(held, notice.committed, now);
    }
    let answers = final_responses(&mut core);
    assert_eq!(answers.len(), 1, "{answers:?}");
    assert_eq!(
        (answers[0].status, answers[0].reason.as_str()),
        (200, "Not Ready: lunch")
    );

    drop(batches);
    writer.await.unwrap();
    let text = std::fs::read_to_string(&path).unwrap();
    assert!(text.contains("|general|1001|PAUSE|lunch\n"), "{text}");
}

#[test]
fn storage_behind_has_hysteresis() {
    use super::{MAX_UNSTORED_CALLS, storage_behind};

    assert!(!storage_behind(false, MAX_UNSTORED_CALLS));
    assert!(storage_behind(false, MAX_UNSTORED_CALLS + 1));
    // Once behind, new calls wait until the backlog halves.
    assert!(storage_behind(true, MAX_UNSTORED_CALLS));
    assert!(storage_behind(true, MAX_UNSTORED_CALLS / 2 + 1));
    assert!(!storage_behind(true, MAX_UNSTORED_CALLS / 2));
}
