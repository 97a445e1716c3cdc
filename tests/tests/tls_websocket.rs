//! SIP over TLS and over WebSocket against the real binary. An agent
//! registers over one connection, and the call routed to it arrives over
//! that same connection. Hostile handshakes and frames are closed while the
//! PBX keeps serving.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use pbx_e2e::pbx::{DID, Pbx, PbxConfig};
use pbx_e2e::ports;
use pbx_e2e::raw_caller::RawCaller;
use pbx_e2e::stream_phone::{self, StreamPhone};
use tokio_tungstenite::tungstenite::{self, Message};

const SIGNALLING_TIMEOUT: Duration = Duration::from_secs(10);
/// WebSocket messages larger than this are rejected in these tests.
const MAX_MESSAGE_BYTES: usize = 16 * 1024;

fn loopback(port: u16) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], port))
}

/// Starts the PBX with TLS on `tls` and WebSocket on `ws`, using a
/// certificate generated into a fresh directory.
fn start(tls: u16, ws: u16) -> (Pbx, std::sync::Arc<rustls::ClientConfig>, tempfile::TempDir) {
    let certificates = tempfile::tempdir().expect("certificate directory");
    let (chain, key, root) = stream_phone::write_certificate(certificates.path());
    let config = PbxConfig {
        sip_extra: format!(
            "tls_listen = \"127.0.0.1:{tls}\"\nws_listen = \"127.0.0.1:{ws}\"\n\
             tls_certificate = {chain:?}\ntls_private_key = {key:?}\n\
             max_message_bytes = {MAX_MESSAGE_BYTES}\n"
        ),
        recording: false,
        ..PbxConfig::default()
    };
    let pbx = Pbx::start(&config);
    (pbx, stream_phone::tls_client(root), certificates)
}

#[test]
fn tls_register_and_call() {
    let tls = ports::free_port();
    let (pbx, client, _certificates) = start(tls, ports::free_port());
    let agent = &PbxConfig::default().agents[0];

    let mut phone = StreamPhone::connect_tls(loopback(tls), client.clone(), &agent.id)
        .expect("TLS connection for the agent");
    let status = phone
        .register(&agent.password, SIGNALLING_TIMEOUT)
        .expect("REGISTER over TLS");
    assert_eq!(status, 200, "registration over TLS");

    // The trunk caller dials in over its own TLS connection.
    let mut caller = StreamPhone::connect_tls(loopback(tls), client, "0612345678")
        .expect("TLS connection for the caller");
    let call_id = format!("tls-call-{}", std::process::id());
    let invite_sent = std::thread::scope(|scope| {
        let caller_side = scope.spawn(|| caller.invite(DID, &call_id, Duration::from_secs(20)));
        let invite = phone
            .answer(Duration::from_secs(20))
            .expect("INVITE on the registered TLS connection");
        (invite, caller_side.join().expect("caller thread"))
    });
    let (invite, caller_result) = invite_sent;
    let (status, to) = caller_result.expect("caller's INVITE over TLS");
    assert_eq!(status, 200, "call over TLS answered");
    assert!(
        invite.contains("Via: SIP/2.0/TLS 127.0.0.1:"),
        "PBX's Via names TLS: {invite}"
    );
    let contact = format!("<sip:pbx@127.0.0.1:{tls};transport=tls>");
    assert!(
        invite.contains(&contact),
        "PBX's Contact is {contact}: {invite}"
    );
    assert!(
        stream_phone::relay_address(&invite).is_some(),
        "SDP offer: {invite}"
    );

    let status = caller
        .bye(DID, &call_id, &to, SIGNALLING_TIMEOUT)
        .expect("BYE over TLS");
    assert_eq!(status, 200, "BYE answered");
    phone
        .await_request("BYE", SIGNALLING_TIMEOUT)
        .expect("BYE reaches the agent over its TLS connection");
    let call = pbx.wait_for_call(&call_id, SIGNALLING_TIMEOUT);
    assert_eq!(call["agent"], agent.id.as_str(), "call record: {call}");
}

#[test]
fn websocket_register_then_call_arrives() {
    let ws = ports::free_port();
    let (pbx, _client, _certificates) = start(ports::free_port(), ws);
    let agent = &PbxConfig::default().agents[0];

    let mut phone =
        StreamPhone::connect_websocket(loopback(ws), &agent.id).expect("WebSocket upgrade");
    let status = phone
        .register(&agent.password, SIGNALLING_TIMEOUT)
        .expect("REGISTER over WebSocket");
    assert_eq!(status, 200, "registration over WebSocket");

    let mut caller = RawCaller::new(&pbx).expect("UDP caller");
    let call_id = caller.call_id().to_owned();
    let (invite, status) = std::thread::scope(|scope| {
        let caller_side = scope.spawn(|| caller.invite(Duration::from_secs(20)));
        let invite = phone
            .answer(Duration::from_secs(20))
            .expect("INVITE over the registering WebSocket");
        (invite, caller_side.join().expect("caller thread"))
    });
    assert_eq!(status.expect("caller's INVITE"), 200, "call answered");
    assert!(
        invite.starts_with(&format!(
            "INVITE sip:{}@{}-browser.invalid",
            agent.id, agent.id
        )),
        "INVITE goes to the registered .invalid contact: {invite}"
    );
    assert!(
        invite.contains("Via: SIP/2.0/WS "),
        "PBX's Via names WS: {invite}"
    );
    assert!(
        invite.contains(&format!("<sip:pbx@127.0.0.1:{ws};transport=ws>")),
        "PBX's Contact names its WS listener: {invite}"
    );

    assert_eq!(caller.bye(SIGNALLING_TIMEOUT).expect("caller's BYE"), 200);
    phone
        .await_request("BYE", SIGNALLING_TIMEOUT)
        .expect("BYE reaches the agent over its WebSocket");
    let call = pbx.wait_for_call(&call_id, SIGNALLING_TIMEOUT);
    assert_eq!(call["agent"], agent.id.as_str(), "call record: {call}");

    // Nothing reaches a browser's contact once its WebSocket is gone.
    assert_eq!(contacts_of(&pbx, &agent.id), 1);
    drop(phone);
    let deadline = std::time::Instant::now() + SIGNALLING_TIMEOUT;
    while contacts_of(&pbx, &agent.id) != 0 {
        assert!(
            std::time::Instant::now() < deadline,
            "contact still registered after its WebSocket closed"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Number of registered contacts of `agent` in `GET /api/agents`.
fn contacts_of(pbx: &Pbx, agent: &str) -> u64 {
    let agents = pbx.get("/api/agents").json();
    let listed = agents
        .as_array()
        .expect("agents array")
        .iter()
        .find(|listed| listed["id"] == agent)
        .cloned()
        .expect("agent listed");
    listed["contacts"].as_u64().expect("contacts count")
}

#[test]
fn hostile_connections_closed_pbx_keeps_serving() {
    let (tls, ws) = (ports::free_port(), ports::free_port());
    let (pbx, client, _certificates) = start(tls, ws);
    let agent = &PbxConfig::default().agents[0];

    // Plain SIP where a TLS ClientHello belongs: the PBX closes the
    // connection after at most a TLS alert.
    let mut garbage = TcpStream::connect(loopback(tls)).expect("TCP to the TLS port");
    garbage
        .set_read_timeout(Some(SIGNALLING_TIMEOUT))
        .expect("read timeout");
    garbage
        .write_all(b"OPTIONS sip:pbx SIP/2.0\r\nContent-Length: 0\r\n\r\n")
        .expect("write garbage");
    let mut rest = Vec::new();
    garbage
        .read_to_end(&mut rest)
        .expect("TLS port closes a connection that sends garbage");
    assert!(rest.len() < 64, "at most an alert comes back: {rest:?}");

    // A WebSocket upgrade that does not offer the sip subprotocol.
    match stream_phone::open_websocket(loopback(ws), Some("chat")) {
        Err(tungstenite::Error::Http(response)) => assert_eq!(response.status(), 400),
        other => panic!("upgrade without sip subprotocol: expected 400, got {other:?}"),
    }

    // A WebSocket message past max_message_bytes.
    let mut oversized = stream_phone::open_websocket(loopback(ws), Some("sip")).expect("upgrade");
    oversized
        .send(Message::binary(vec![b'x'; MAX_MESSAGE_BYTES * 2]))
        .expect("send oversized message");
    let close = oversized.read();
    match close {
        Ok(Message::Close(Some(frame))) => assert_eq!(u16::from(frame.code), 1009),
        other => panic!("oversized message: expected close 1009, got {other:?}"),
    }

    // Others are still served on both listeners.
    let mut phone =
        StreamPhone::connect_websocket(loopback(ws), &agent.id).expect("WebSocket upgrade");
    let status = phone.register(&agent.password, SIGNALLING_TIMEOUT);
    assert_eq!(status.expect("REGISTER over WebSocket"), 200);
    let mut phone = StreamPhone::connect_tls(loopback(tls), client, &agent.id).expect("TLS");
    let status = phone.register(&agent.password, SIGNALLING_TIMEOUT);
    assert_eq!(status.expect("REGISTER over TLS"), 200);
    assert_eq!(pbx.get("/health").status, 200);
}
