//! Path, SIP Outbound and GRUU at the registrar, on a virtual clock with
//! literal REGISTER requests.

use std::collections::HashMap;
use std::time::{Duration, Instant, SystemTime};

use sip_message::{Message, Request, Response};

use super::*;
use crate::auth::{Algorithm, Credentials, DigestAuthenticator, expected_response};
use crate::transaction::TransportKind;

const INSTANCE: &str = "urn:uuid:00000000-0000-1000-8000-000a95a0e128";

fn registrar() -> Registrar {
    let config = RegistrarConfig {
        min_expires: 60,
        max_expires: 3600,
        default_expires: 600,
        max_contacts: 5,
        qualify_interval: None,
        qualify_timeout: Duration::from_secs(5),
        flow_timer_secs: 120,
    };
    let auth = DigestAuthenticator::new("pbx.test", &[Algorithm::Md5]);
    let passwords = HashMap::from([("1001".to_owned(), "pw-one".to_owned())]);
    Registrar::new(config, auth, passwords)
}

fn tcp(addr: &str, connection: u64) -> Target {
    Target {
        transport: TransportKind::Tcp,
        addr: addr.parse().unwrap(),
        connection: Some(connection),
    }
}

fn udp(addr: &str) -> Target {
    Target {
        transport: TransportKind::Udp,
        addr: addr.parse().unwrap(),
        connection: None,
    }
}

/// A stored UDP binding of `agent` at 198.51.100.10:5060, as a restart
/// restores it.
fn stored_binding(agent: &str, expires_at: SystemTime) -> StoredBinding {
    StoredBinding {
        contact: format!("<sip:{agent}@198.51.100.10:5060>"),
        expires_at,
        call_id: "restored@test".to_owned(),
        cseq: 1,
        transport: TransportKind::Udp,
        address: "198.51.100.10:5060".parse().unwrap(),
        path: Vec::new(),
        instance: None,
    }
}

fn parse(text: &str) -> Request {
    match Message::parse(text.as_bytes()).unwrap() {
        Message::Request(request) => request,
        Message::Response(_) => panic!("not a request"),
    }
}

/// Sends a REGISTER of agent 1001 with `headers` (Via, Contact and
/// extensions, each line ending in CRLF), and again with credentials for
/// the 401 challenge, and returns the final response.
fn register(
    registrar: &mut Registrar,
    cseq: u32,
    headers: &str,
    source: Target,
    now: Instant,
) -> Response {
    let wall = SystemTime::now();
    let text = |auth: &str| {
        format!(
            "REGISTER sip:pbx.test SIP/2.0\r\n{headers}Max-Forwards: 70\r\n\
             From: <sip:1001@pbx.test>;tag=r1\r\nTo: <sip:1001@pbx.test>\r\n\
             Call-ID: reg-{cseq}@test\r\nCSeq: {cseq} REGISTER\r\n{auth}Expires: 600\r\n\
             Content-Length: 0\r\n\r\n"
        )
    };
    let challenge = registrar.handle_register(&parse(&text("")), source, now, wall);
    assert_eq!(challenge.status, 401);
    let header = challenge.headers.get("WWW-Authenticate").unwrap();
    let nonce = header.split("nonce=\"").nth(1).unwrap().split('"').next();
    let mut credentials = Credentials {
        username: "1001".into(),
        realm: "pbx.test".into(),
        nonce: nonce.unwrap().to_owned(),
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
        "pw-one",
        "REGISTER",
    )
    .unwrap();
    let authorization = format!(
        "Authorization: Digest username=\"1001\", realm=\"pbx.test\", nonce=\"{}\", \
         uri=\"sip:pbx.test\", response=\"{}\", algorithm=MD5, qop=auth, nc=00000001, \
         cnonce=\"c1\"\r\n",
        credentials.nonce, credentials.response
    );
    registrar.handle_register(&parse(&text(&authorization)), source, now, wall)
}

fn flow_headers(via: &str, port: u16, reg_id: u32) -> String {
    format!(
        "Via: SIP/2.0/TCP {via};branch=z9hG4bK-{port}-{reg_id}\r\n\
         Supported: outbound, path\r\n\
         Contact: <sip:1001@{via};transport=tcp;ob>;reg-id={reg_id};\
         +sip.instance=\"<{INSTANCE}>\"\r\n"
    )
}

fn reachability_events(registrar: &mut Registrar) -> Vec<(bool, ReachabilityCause)> {
    let mut changes = Vec::new();
    while let Some(event) = registrar.poll_event() {
        if let RegistrarEvent::Reachability {
            reachable, cause, ..
        } = event
        {
            changes.push((reachable, cause));
        }
    }
    changes
}

#[test]
fn path_is_stored_echoed_and_routed() {
    let mut registrar = registrar();
    let now = Instant::now();
    let proxy = Target {
        transport: TransportKind::Udp,
        addr: "198.51.100.5:5070".parse().unwrap(),
        connection: None,
    };
    let headers = "Via: SIP/2.0/UDP 198.51.100.5:5070;branch=z9hG4bK-p1\r\n\
                   Via: SIP/2.0/UDP 10.0.0.7:5060;branch=z9hG4bK-ua1\r\n\
                   Supported: path\r\n\
                   Path: <sip:198.51.100.5:5070;lr>\r\n\
                   Path: <sip:edge.example.net;lr>\r\n\
                   Contact: <sip:1001@10.0.0.7:5060>\r\n";
    let response = register(&mut registrar, 1, headers, proxy, now);

    assert_eq!(response.status, 200);
    let echoed: Vec<&str> = response.headers.get_all("Path").collect();
    assert_eq!(
        echoed,
        ["<sip:198.51.100.5:5070;lr>", "<sip:edge.example.net;lr>"]
    );
    let bindings = registrar.lookup("1001", now);
    assert_eq!(bindings.len(), 1);
    assert_eq!(bindings[0].path, echoed);
    // Calls go to the first proxy of the Path, not to the private Contact.
    assert_eq!(bindings[0].source.addr, proxy.addr);
}

#[test]
fn path_target_is_first_proxy() {
    let source = tcp("198.51.100.9:40000", 4);
    let path = ["<sip:192.0.2.44;lr;transport=tcp>".to_owned()];
    let target = extensions::path_target(&path, source).unwrap();
    assert_eq!(target.addr, "192.0.2.44:5060".parse().unwrap());
    assert_eq!(target.transport, TransportKind::Tcp);
    assert_eq!(target.connection, None);
    // The proxy that sent the REGISTER keeps its connection.
    let same = ["<sip:198.51.100.9:40000;lr>".to_owned()];
    assert_eq!(extensions::path_target(&same, source), Some(source));
}

#[test]
fn path_without_supported_gets_421() {
    let mut registrar = registrar();
    let now = Instant::now();
    let headers = "Via: SIP/2.0/UDP 198.51.100.5:5070;branch=z9hG4bK-p2\r\n\
                   Via: SIP/2.0/UDP 10.0.0.7:5060;branch=z9hG4bK-ua2\r\n\
                   Path: <sip:198.51.100.5:5070;lr>\r\n\
                   Contact: <sip:1001@10.0.0.7:5060>\r\n";
    let source = tcp("198.51.100.5:5070", 1);
    let response = register(&mut registrar, 1, headers, source, now);

    assert_eq!(response.status, 421);
    assert_eq!(response.headers.get("Require"), Some("path"));
    assert!(registrar.lookup("1001", now).is_empty());
}

#[test]
fn unreachable_contacts_rejected() {
    let mut registrar = registrar();
    let now = Instant::now();
    let source = tcp("198.51.100.5:5070", 1);
    let contacts = [
        "<tel:+4930555>",
        "<sip:1001@10.0.0.7:0>",
        "<sip:1001@10.0.0.7:5060;transport=sctp>",
    ];
    for (cseq, contact) in (1..).zip(contacts) {
        let headers = format!(
            "Via: SIP/2.0/TCP 198.51.100.5:5070;branch=z9hG4bK-u{cseq}\r\nContact: {contact}\r\n"
        );
        let response = register(&mut registrar, cseq, &headers, source, now);
        assert_eq!(response.status, 400, "{contact}");
        assert_eq!(response.reason, "Unsupported Contact", "{contact}");
    }
    assert!(registrar.lookup("1001", now).is_empty());
    let headers = "Via: SIP/2.0/TCP 198.51.100.5:5070;branch=z9hG4bK-u9\r\n\
                   Contact: <sip:1001@10.0.0.7:5060;transport=tcp>\r\n";
    let response = register(&mut registrar, 9, headers, source, now);
    assert_eq!(response.status, 200);
}

#[test]
fn overlong_path_rejected() {
    let mut registrar = registrar();
    let now = Instant::now();
    let values: String = (0..=extensions::MAX_PATH_VALUES)
        .map(|hop| format!("Path: <sip:198.51.100.{hop}:5070;lr>\r\n"))
        .collect();
    let headers = format!(
        "Via: SIP/2.0/UDP 198.51.100.5:5070;branch=z9hG4bK-p3\r\n\
         Supported: path\r\n{values}Contact: <sip:1001@10.0.0.7:5060>\r\n"
    );
    let source = tcp("198.51.100.5:5070", 1);
    let response = register(&mut registrar, 1, &headers, source, now);

    assert_eq!(response.status, 400);
    assert_eq!(response.reason, "Too Many Path Values");
    assert!(registrar.lookup("1001", now).is_empty());
}

#[test]
fn outbound_flow_gets_require_and_flow_timer() {
    let mut registrar = registrar();
    let now = Instant::now();
    let source = tcp("192.0.2.30:41000", 7);
    let headers = flow_headers("192.0.2.30:41000", 41000, 1);
    let response = register(&mut registrar, 1, &headers, source, now);

    assert_eq!(response.status, 200);
    assert_eq!(response.headers.get("Require"), Some("outbound"));
    assert_eq!(response.headers.get("Flow-Timer"), Some("120"));
    let contact = response.headers.get("Contact").unwrap();
    assert!(contact.contains("reg-id=1"), "{contact}");
    let bindings = registrar.lookup("1001", now);
    assert_eq!(bindings.len(), 1);
    assert_eq!(bindings[0].reg_id, Some(1));
    assert_eq!(bindings[0].instance.as_deref(), Some(INSTANCE));
    assert_eq!(bindings[0].source, source);
}

#[test]
fn same_reg_id_replaces_flow() {
    let mut registrar = registrar();
    let now = Instant::now();
    let first = tcp("192.0.2.30:41000", 7);
    register(
        &mut registrar,
        1,
        &flow_headers("192.0.2.30:41000", 41000, 1),
        first,
        now,
    );
    // The phone reconnected from another port: same instance and reg-id.
    let second = tcp("192.0.2.30:41002", 8);
    let later = now + Duration::from_secs(10);
    let headers = flow_headers("192.0.2.30:41002", 41002, 1);
    let response = register(&mut registrar, 2, &headers, second, later);

    assert_eq!(response.status, 200);
    assert_eq!(response.headers.get_all("Contact").count(), 1);
    let bindings = registrar.lookup("1001", later);
    assert_eq!(bindings.len(), 1);
    assert_eq!(bindings[0].source, second);
}

#[test]
fn newest_flow_is_offered_until_it_closes() {
    let mut registrar = registrar();
    let now = Instant::now();
    let first = tcp("192.0.2.30:41000", 7);
    let second = tcp("192.0.2.31:41000", 8);
    register(
        &mut registrar,
        1,
        &flow_headers("192.0.2.30:41000", 41000, 1),
        first,
        now,
    );
    register(
        &mut registrar,
        2,
        &flow_headers("192.0.2.31:41000", 41000, 2),
        second,
        now,
    );
    assert_eq!(registrar.live("1001", now).len(), 2);
    let offered = registrar.lookup("1001", now);
    assert_eq!(offered.len(), 1, "one flow per instance is offered");
    assert_eq!(offered[0].source, second);
    reachability_events(&mut registrar);

    registrar.connection_closed(8);
    let offered = registrar.lookup("1001", now);
    assert_eq!(offered.len(), 1);
    assert_eq!(offered[0].source, first);
    assert!(reachability_events(&mut registrar).is_empty());

    registrar.connection_closed(7);
    assert!(registrar.lookup("1001", now).is_empty());
    assert_eq!(
        reachability_events(&mut registrar),
        [(false, ReachabilityCause::ConnectionClosed)]
    );
}

#[test]
fn plain_tcp_contact_survives_close() {
    let mut registrar = registrar();
    let now = Instant::now();
    let source = tcp("192.0.2.30:41000", 7);
    let headers = "Via: SIP/2.0/TCP 192.0.2.30:41000;branch=z9hG4bK-t1\r\n\
                   Contact: <sip:1001@192.0.2.30:41000;transport=tcp>\r\n";
    let response = register(&mut registrar, 1, headers, source, now);
    assert_eq!(response.status, 200);
    assert_eq!(response.headers.get("Require"), None);

    registrar.connection_closed(7);
    assert_eq!(registrar.lookup("1001", now).len(), 1);
}

#[test]
fn reg_id_without_outbound_support_is_ignored() {
    let mut registrar = registrar();
    let now = Instant::now();
    let source = tcp("192.0.2.30:41000", 7);
    let headers = format!(
        "Via: SIP/2.0/TCP 192.0.2.30:41000;branch=z9hG4bK-n1\r\n\
         Contact: <sip:1001@192.0.2.30:41000;transport=tcp>;reg-id=1;\
         +sip.instance=\"<{INSTANCE}>\"\r\n"
    );
    let response = register(&mut registrar, 1, &headers, source, now);

    assert_eq!(response.status, 200);
    assert_eq!(response.headers.get("Require"), None);
    assert_eq!(response.headers.get("Flow-Timer"), None);
    assert_eq!(registrar.lookup("1001", now)[0].reg_id, None);
}

#[test]
fn proxied_flow_without_ob_gets_439() {
    let mut registrar = registrar();
    let now = Instant::now();
    let source = tcp("198.51.100.5:5070", 3);
    let headers = format!(
        "Via: SIP/2.0/TCP 198.51.100.5:5070;branch=z9hG4bK-p3\r\n\
         Via: SIP/2.0/TCP 10.0.0.7:5060;branch=z9hG4bK-ua3\r\n\
         Supported: outbound, path\r\n\
         Path: <sip:198.51.100.5:5070;lr>\r\n\
         Contact: <sip:1001@10.0.0.7:5060;transport=tcp>;reg-id=1;\
         +sip.instance=\"<{INSTANCE}>\"\r\n"
    );
    let response = register(&mut registrar, 1, &headers, source, now);
    assert_eq!(response.status, 439);

    let with_ob = headers.replace(";lr>", ";lr;ob>");
    let response = register(&mut registrar, 2, &with_ob, source, now);
    assert_eq!(response.status, 200);
    assert_eq!(response.headers.get("Require"), Some("outbound"));
}

#[test]
fn two_reg_ids_in_one_register_get_400() {
    let mut registrar = registrar();
    let now = Instant::now();
    let source = tcp("192.0.2.30:41000", 7);
    let headers = format!(
        "Via: SIP/2.0/TCP 192.0.2.30:41000;branch=z9hG4bK-d1\r\n\
         Supported: outbound\r\n\
         Contact: <sip:1001@192.0.2.30:41000>;reg-id=1;+sip.instance=\"<{INSTANCE}>\"\r\n\
         Contact: <sip:1001@192.0.2.30:41001>;reg-id=2;+sip.instance=\"<{INSTANCE}>\"\r\n"
    );
    let response = register(&mut registrar, 1, &headers, source, now);
    assert_eq!(response.status, 400);
    assert!(registrar.lookup("1001", now).is_empty());
}

#[test]
fn public_gruu_in_200_reaches_instance() {
    let mut registrar = registrar();
    let now = Instant::now();
    let source = tcp("192.0.2.30:41000", 7);
    let headers = format!(
        "Via: SIP/2.0/TCP 192.0.2.30:41000;branch=z9hG4bK-g1\r\n\
         Supported: gruu\r\n\
         Contact: <sip:1001@192.0.2.30:41000;transport=tcp>;+sip.instance=\"<{INSTANCE}>\"\r\n"
    );
    let response = register(&mut registrar, 1, &headers, source, now);
    let other = "Via: SIP/2.0/UDP 192.0.2.40:5060;branch=z9hG4bK-g2\r\n\
                 Contact: <sip:1001@192.0.2.40:5060>\r\n";
    let udp = Target {
        transport: TransportKind::Udp,
        addr: "192.0.2.40:5060".parse().unwrap(),
        connection: None,
    };
    register(&mut registrar, 2, other, udp, now);

    assert_eq!(response.status, 200);
    let contact = response.headers.get("Contact").unwrap();
    let expected = format!("pub-gruu=\"sip:1001@pbx.test;gr={INSTANCE}\"");
    assert!(contact.contains(&expected), "{contact}");
    assert_eq!(registrar.lookup("1001", now).len(), 2);
    let gruu: sip_message::Uri = format!("sip:1001@pbx.test;gr={INSTANCE}").parse().unwrap();
    let reached = registrar.lookup_gruu(&gruu, now);
    assert_eq!(reached.len(), 1);
    assert_eq!(reached[0].source, source);
    let unknown: sip_message::Uri = "sip:1001@pbx.test;gr=urn:uuid:1".parse().unwrap();
    assert!(registrar.lookup_gruu(&unknown, now).is_empty());
}

#[test]
fn snapshot_keeps_path_and_drops_flows() {
    let mut registrar = registrar();
    let now = Instant::now();
    let wall = SystemTime::now();
    let flow = tcp("192.0.2.30:41000", 7);
    register(
        &mut registrar,
        1,
        &flow_headers("192.0.2.30:41000", 41000, 1),
        flow,
        now,
    );
    let proxy = Target {
        transport: TransportKind::Udp,
        addr: "198.51.100.5:5070".parse().unwrap(),
        connection: None,
    };
    let headers = format!(
        "Via: SIP/2.0/UDP 198.51.100.5:5070;branch=z9hG4bK-s1\r\n\
         Via: SIP/2.0/UDP 10.0.0.7:5060;branch=z9hG4bK-s2\r\n\
         Supported: path\r\nPath: <sip:198.51.100.5:5070;lr>\r\n\
         Contact: <sip:1001@10.0.0.7:5060>;+sip.instance=\"<{INSTANCE}>\"\r\n"
    );
    register(&mut registrar, 2, &headers, proxy, now);

    let stored = registrar.snapshot("1001", now, wall);
    assert_eq!(stored.len(), 1, "the flow is not stored");
    assert_eq!(stored[0].path, ["<sip:198.51.100.5:5070;lr>"]);
    assert_eq!(stored[0].instance.as_deref(), Some(INSTANCE));

    let mut restarted = registrar_restored(&stored, now, wall);
    let bindings = restarted.lookup("1001", now);
    assert_eq!(bindings.len(), 1);
    assert_eq!(bindings[0].path, stored[0].path);
    assert_eq!(bindings[0].instance.as_deref(), Some(INSTANCE));
    reachability_events(&mut restarted);
}

fn registrar_restored(stored: &[StoredBinding], now: Instant, wall: SystemTime) -> Registrar {
    let mut registrar = registrar();
    registrar.restore("1001", stored, now, wall);
    registrar
}

#[test]
fn refreshes_file_one_deadline() {
    let mut registrar = registrar();
    registrar.set_passwords(HashMap::from([
        ("1001".to_owned(), "pw-one".to_owned()),
        ("1002".to_owned(), "pw-two".to_owned()),
    ]));
    let start = Instant::now();
    let wall = SystemTime::now();
    // Agent 1002's binding expires first, so its deadline stays on top of
    // the heap while 1001 refreshes.
    let early = stored_binding("1002", wall + Duration::from_secs(300));
    registrar.restore("1002", &[early], start, wall);
    assert_eq!(
        registrar.poll_timeout(),
        Some(start + Duration::from_secs(300))
    );

    let phone = udp("198.51.100.9:5060");
    let headers = "Via: SIP/2.0/UDP 198.51.100.9:5060;branch=z9hG4bK-rf\r\n\
                   Contact: <sip:1001@198.51.100.9:5060>\r\n";
    let mut now = start;
    for cseq in 1..=200 {
        now = start + Duration::from_secs(u64::from(cseq));
        let response = register(&mut registrar, cseq, headers, phone, now);
        assert_eq!(response.status, 200);
    }
    // One entry per agent: each refresh of 1001 only moved its deadline
    // later, which files nothing.
    assert_eq!(registrar.deadlines.len(), 2);
    // The refreshes wait for storage from the first one, at 2 s.
    let write = start + Duration::from_secs(2) + REFRESH_WRITE_DELAY;
    assert_eq!(registrar.poll_timeout(), Some(write));
    registrar.handle_timeout(write);

    // 1002 expires first; 1001's early entry then gives way to its real
    // deadline, 600 s after the last refresh.
    let early_expiry = start + Duration::from_secs(300);
    assert_eq!(registrar.poll_timeout(), Some(early_expiry));
    registrar.handle_timeout(early_expiry);
    assert!(registrar.lookup("1002", early_expiry).is_empty());
    assert_eq!(registrar.lookup("1001", early_expiry).len(), 1);
    let expiry = now + Duration::from_secs(600);
    assert_eq!(registrar.poll_timeout(), Some(expiry));
    registrar.handle_timeout(expiry);
    assert!(registrar.lookup("1001", expiry).is_empty());
    assert_eq!(registrar.poll_timeout(), None);
}

/// Takes the agents reported for storage since the last call.
fn stored_agents(registrar: &mut Registrar) -> Vec<String> {
    let mut agents = Vec::new();
    while let Some(event) = registrar.poll_event() {
        if let RegistrarEvent::BindingsChanged { agent } = event {
            agents.push(agent);
        }
    }
    agents
}

#[test]
fn refresh_waits_for_storage() {
    let mut registrar = registrar();
    let phone = udp("198.51.100.9:5060");
    // A phone behind NAT: requests go to the address its REGISTER came
    // from.
    let headers = "Via: SIP/2.0/UDP 10.0.0.5:5060;branch=z9hG4bK-wb\r\n\
                   Contact: <sip:1001@10.0.0.5:5060>\r\n";
    let start = Instant::now();
    assert_eq!(
        register(&mut registrar, 1, headers, phone, start).status,
        200
    );
    assert_eq!(stored_agents(&mut registrar), ["1001"]);

    // A refresh only moves the expiry later: stored after the delay, with
    // the expiry of the last refresh.
    let refreshed = start + Duration::from_secs(1);
    register(&mut registrar, 2, headers, phone, refreshed);
    let later = start + Duration::from_secs(3);
    register(&mut registrar, 3, headers, phone, later);
    assert!(stored_agents(&mut registrar).is_empty());
    let due = refreshed + REFRESH_WRITE_DELAY;
    assert_eq!(registrar.poll_timeout(), Some(due));
    registrar.handle_timeout(due - Duration::from_millis(1));
    assert!(stored_agents(&mut registrar).is_empty());
    registrar.handle_timeout(due);
    assert_eq!(stored_agents(&mut registrar), ["1001"]);
    let wall = SystemTime::now();
    let stored = registrar.snapshot("1001", due, wall);
    assert_eq!(stored.len(), 1);
    assert_eq!(stored[0].cseq, 3);
    assert_eq!(stored[0].call_id, "reg-3@test");
    assert_eq!(
        stored[0].expires_at,
        wall + (later + Duration::from_secs(600) - due)
    );
    assert_eq!(
        registrar.poll_timeout(),
        Some(later + Duration::from_secs(600))
    );

    // A refresh through another NAT binding, or one that shortens the expiry, is
    // stored at once and takes a waiting refresh with it.
    register(&mut registrar, 4, headers, phone, due);
    let moved = udp("198.51.100.9:5070");
    register(&mut registrar, 5, headers, moved, due);
    assert_eq!(stored_agents(&mut registrar), ["1001"]);
    assert_eq!(
        registrar.poll_timeout(),
        Some(due + Duration::from_secs(600))
    );
    let shorter = "Via: SIP/2.0/UDP 10.0.0.5:5060;branch=z9hG4bK-wb\r\n\
                   Contact: <sip:1001@10.0.0.5:5060>;expires=120\r\n";
    register(&mut registrar, 6, shorter, moved, due);
    assert_eq!(stored_agents(&mut registrar), ["1001"]);

    // A stop in order reports what still waits.
    register(
        &mut registrar,
        7,
        shorter,
        moved,
        due + Duration::from_secs(1),
    );
    assert!(stored_agents(&mut registrar).is_empty());
    registrar.report_refreshes();
    assert_eq!(stored_agents(&mut registrar), ["1001"]);
    assert_eq!(
        registrar.poll_timeout(),
        Some(due + Duration::from_secs(121))
    );

    // A refresh less than the delay before the stored expiry is stored at
    // once, because a restart in between would find that expiry past.
    let late = due + Duration::from_secs(115);
    register(&mut registrar, 8, shorter, moved, late);
    assert_eq!(stored_agents(&mut registrar), ["1001"]);
}

/// Computes the earliest deadline of any agent, or of the refreshes
/// waiting for storage, from the bindings themselves.
fn earliest_deadline(registrar: &Registrar, agents: &[&str]) -> Option<Instant> {
    let bindings = agents
        .iter()
        .filter_map(|agent| registrar.next_deadline(agent));
    bindings.chain(registrar.refreshed_due).min()
}

#[test]
fn heap_top_stays_the_earliest_deadline() {
    let mut registrar = registrar();
    let agents = ["1001", "2000", "2001", "2002", "2003", "2004", "2005"];
    let passwords = agents
        .iter()
        .map(|agent| ((*agent).to_owned(), "pw-one".to_owned()));
    registrar.set_passwords(passwords.collect());
    let phone = udp("198.51.100.9:5060");
    let headers = "Via: SIP/2.0/UDP 198.51.100.9:5060;branch=z9hG4bK-top\r\n\
                   Contact: <sip:1001@198.51.100.9:5060>\r\n";

    let start = Instant::now();
    let wall = SystemTime::now();
    let mut now = start;
    let mut cseq = 0;
    // xorshift, so every run takes the same steps.
    let mut state: u64 = 0x2545_f491_4f6c_dd1d;
    let mut draw = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };

    for step in 0..3000 {
        let r = draw();
        let wall_now = wall + (now - start);
        match r % 4 {
            // Bindings replaced with expiries earlier or later than before.
            0 | 1 => {
                let agent = agents[1 + (r >> 8) as usize % (agents.len() - 1)];
                let expires_at = wall_now + Duration::from_secs(1 + (r >> 16) % 120);
                let stored = stored_binding(agent, expires_at);
                registrar.restore(agent, &[stored], now, wall_now);
            }
            2 => {
                now += Duration::from_secs((r >> 8) % 30);
                registrar.handle_timeout(now);
            }
            _ => {
                cseq += 1;
                assert_eq!(
                    register(&mut registrar, cseq, headers, phone, now).status,
                    200
                );
            }
        }
        while registrar.poll_event().is_some() {}
        assert_eq!(
            registrar.poll_timeout(),
            earliest_deadline(&registrar, &agents),
            "step {step}"
        );
    }
}

#[test]
fn removed_agent_loses_bindings_and_password() {
    let mut registrar = registrar();
    registrar.set_passwords(HashMap::from([
        ("1001".to_owned(), "pw-one".to_owned()),
        ("1003".to_owned(), "pw-three".to_owned()),
    ]));
    let phone = udp("198.51.100.9:5060");
    let headers = "Via: SIP/2.0/UDP 198.51.100.9:5060;branch=z9hG4bK-rm\r\n\
                   Contact: <sip:1001@198.51.100.9:5060>\r\n";
    let now = Instant::now();
    assert_eq!(register(&mut registrar, 1, headers, phone, now).status, 200);
    while registrar.poll_event().is_some() {}

    // 1001 had a binding, 1003 none: only 1001's removal is reported.
    registrar.set_passwords(HashMap::from([("1002".to_owned(), "pw-two".to_owned())]));
    let mut events = Vec::new();
    while let Some(event) = registrar.poll_event() {
        events.push(event);
    }
    assert!(matches!(
        &events[..],
        [
            RegistrarEvent::BindingsChanged { agent },
            RegistrarEvent::Reachability { reachable: false, cause: ReachabilityCause::AgentRemoved, .. },
        ] if agent == "1001"
    ));
    assert!(registrar.lookup("1001", now).is_empty());
    assert!(!registrar.is_agent("1001"));
    assert!(!registrar.is_agent("1003"));
    assert_eq!(registrar.password("1002"), Some("pw-two"));
    assert!(!registrar.agents.contains_key("1001"));
    assert!(!registrar.agents.contains_key("1003"));
}
