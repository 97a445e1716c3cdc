//! Trunks outside the allow lists: a gateway that authenticates its calls
//! by digest, and a provider the PBX registers at, which sends calls to
//! the registered Contact.

use super::*;
use crate::auth::DigestAuthenticator;
use crate::auth::client::Challenge;
use crate::trunk_registration::{RegistrationConfig, RegistrationState};

const GATEWAY: &str = "203.0.113.40:5060";
const REGISTRAR: &str = "192.0.2.200:5060";
/// The provider's media gateway: neither in an allow list nor the registrar.
const PROVIDER_EDGE: &str = "203.0.113.77:5060";
const CONTACT_USER: &str = "t5ab1c0ffee";

fn gateway_config() -> CoreConfig {
    let mut config = config();
    config.trunks.push(Trunk {
        name: "gateway".into(),
        allow: Vec::new(),
        registration: None,
        inbound_credentials: Some(TrunkCredentials {
            username: "gw-in".into(),
            password: "gw-secret".into(),
        }),
        outbound: None,
        numbering: None,
        trust_identity: false,
    });
    config
}

fn registration() -> RegistrationConfig {
    RegistrationConfig {
        registrar: crate::locate::OutboundTarget::parse(REGISTRAR).unwrap(),
        domain: "provider.example".into(),
        user: "4930555".into(),
        contact_user: CONTACT_USER.into(),
        auth_user: "acct-1".into(),
        password: "reg-secret".into(),
        expires: Duration::from_secs(600),
        retry: Duration::from_secs(30),
        max_retry: Duration::from_secs(600),
    }
}

fn provider_config() -> CoreConfig {
    let mut config = config();
    config.trunks.push(Trunk {
        name: "provider".into(),
        allow: Vec::new(),
        registration: Some(registration()),
        inbound_credentials: None,
        outbound: None,
        numbering: None,
        trust_identity: true,
    });
    config
}

fn invite(request_uri: &str, to: &str, from: &str, call_id: &str, extra: &str) -> String {
    let sdp = "v=0\r\no=- 1 1 IN IP4 203.0.113.40\r\ns=-\r\nc=IN IP4 203.0.113.40\r\nt=0 0\r\n\
               m=audio 40000 RTP/AVP 0 101\r\na=rtpmap:101 telephone-event/8000\r\n";
    format!(
        "INVITE {request_uri} SIP/2.0\r\nVia: SIP/2.0/UDP {from};branch=z9hG4bK-{call_id}-{}\r\n\
         Max-Forwards: 70\r\nFrom: <sip:+15550100@carrier.test>;tag=g1\r\nTo: <{to}>\r\n\
         Call-ID: {call_id}\r\nCSeq: 1 INVITE\r\nContact: <sip:+15550100@{from}>\r\n{extra}\
         Content-Type: application/sdp\r\nContent-Length: {}\r\n\r\n{sdp}",
        extra.len(),
        sdp.len()
    )
}

fn ack_for(response: &Response, call_id: &str) -> String {
    format!(
        "ACK sip:5000@pbx.test SIP/2.0\r\nVia: {}\r\nMax-Forwards: 70\r\n\
         From: <sip:+15550100@carrier.test>;tag=g1\r\nTo: {}\r\nCall-ID: {call_id}\r\n\
         CSeq: 1 ACK\r\nContent-Length: 0\r\n\r\n",
        response.headers.get("Via").unwrap(),
        response.headers.get("To").unwrap(),
    )
}

/// Sends the gateway's INVITE without credentials, then with credentials
/// for `password`; returns the statuses of the second round.
fn gateway_call(h: &mut Harness, password: &str, call_id: &str) -> Vec<u16> {
    h.receive(
        &invite(
            "sip:5000@pbx.test",
            "sip:5000@pbx.test",
            GATEWAY,
            call_id,
            "",
        ),
        GATEWAY,
    );
    let challenge = h
        .responses_to(GATEWAY)
        .into_iter()
        .find(|r| r.status == 407)
        .expect("407 challenge");
    h.receive(&ack_for(&challenge, call_id), GATEWAY);
    let chosen = Challenge::choose(challenge.headers.get_all("Proxy-Authenticate"))
        .expect("usable challenge");
    let answer = chosen
        .authorization("gw-in", password, "INVITE", "sip:5000@pbx.test", 1, "gc1")
        .unwrap();
    h.receive(
        &invite(
            "sip:5000@pbx.test",
            "sip:5000@pbx.test",
            GATEWAY,
            call_id,
            &format!("Proxy-Authorization: {answer}\r\n"),
        ),
        GATEWAY,
    );
    h.responses_to(GATEWAY).iter().map(|r| r.status).collect()
}

#[test]
fn digest_trunk_challenged_then_admitted() {
    let mut h = Harness::with_config(gateway_config());
    assert_eq!(gateway_call(&mut h, "gw-secret", "gw-1@test"), [100]);
    let call = h.open_media();
    assert_eq!(h.core.calls[&call].trunk.as_deref(), Some("gateway"));
    assert_eq!(h.core.calls[&call].source_extension, None);
}

#[test]
fn digest_trunk_failures_count_toward_lockout() {
    let mut h = Harness::with_config(gateway_config());
    for round in 0..crate::registrar::MAX_FAILURES {
        let call_id = format!("gw-bad-{round}@test");
        assert_eq!(gateway_call(&mut h, "guess", &call_id), [403]);
    }
    h.receive(
        &invite(
            "sip:5000@pbx.test",
            "sip:5000@pbx.test",
            GATEWAY,
            "gw-late@test",
            "",
        ),
        GATEWAY,
    );
    let refused = h.responses_to(GATEWAY).pop().unwrap();
    assert_eq!(refused.status, 403);
    assert_eq!(refused.reason, "Too Many Failed Attempts");
}

#[test]
fn unknown_source_challenged_when_digest_trunks_exist() {
    let mut h = Harness::with_config(gateway_config());
    h.receive(
        &invite(
            "sip:5000@pbx.test",
            "sip:5000@pbx.test",
            OUTSIDER,
            "out-1@test",
            "",
        ),
        OUTSIDER,
    );
    let statuses: Vec<u16> = h.responses_to(OUTSIDER).iter().map(|r| r.status).collect();
    assert_eq!(statuses, [407]);
}

/// Registers the provider trunk: 401 with a challenge from the registrar's
/// own authenticator, then 200 granting `granted` seconds.
fn register_provider(h: &mut Harness, granted: &str) -> DigestAuthenticator {
    let mut registrar = DigestAuthenticator::new("provider.example", &[Algorithm::Md5]);
    h.collect();
    let first = h.requests_to(REGISTRAR).pop().expect("REGISTER at start");
    assert_eq!(first.method, Method::Register);
    assert_eq!(first.uri.to_string(), "sip:provider.example");
    let contact = first.headers.contacts().unwrap();
    let sip_message::ContactList::Addresses(contacts) = contact else {
        panic!("no contact");
    };
    assert_eq!(
        contacts[0].uri.to_string(),
        format!("sip:{CONTACT_USER}@127.0.0.1:5060")
    );
    let mut challenge = Response::for_request(&first, 401, None);
    for value in registrar.challenges(SystemTime::now(), false) {
        challenge.headers.push("WWW-Authenticate", value);
    }
    h.receive(&String::from_utf8_lossy(&challenge.to_bytes()), REGISTRAR);
    let second = h
        .requests_to(REGISTRAR)
        .pop()
        .expect("REGISTER with credentials");
    let credentials = Credentials::parse(second.headers.get("Authorization").unwrap()).unwrap();
    let verdict = registrar.verify(&credentials, &second, SystemTime::now(), |user| {
        (user == "acct-1").then_some("reg-secret")
    });
    assert_eq!(verdict, Ok("acct-1"));
    let mut ok = Response::for_request(&second, 200, None);
    ok.headers.push("Expires", granted);
    h.receive(&String::from_utf8_lossy(&ok.to_bytes()), REGISTRAR);
    registrar
}

#[test]
fn registration_admits_calls_to_the_contact() {
    let mut h = Harness::with_config(provider_config());
    register_provider(&mut h, "120");
    let views = h.core.trunk_registrations();
    assert_eq!(views.len(), 1);
    assert_eq!(views[0].trunk, "provider");
    assert_eq!(views[0].state, RegistrationState::Registered);
    assert_eq!(views[0].last_status, Some(200));
    assert!(views[0].expires_at.is_some());

    // The provider calls the Contact from an address of no allow list;
    // the number dialed is in To.
    let request_uri = format!("sip:{CONTACT_USER}@127.0.0.1:5060");
    h.receive(
        &invite(
            &request_uri,
            "sip:5000@provider.example",
            PROVIDER_EDGE,
            "prov-1@test",
            "",
        ),
        PROVIDER_EDGE,
    );
    let statuses: Vec<u16> = h
        .responses_to(PROVIDER_EDGE)
        .iter()
        .map(|r| r.status)
        .collect();
    assert_eq!(statuses, [100]);
    let call = h.open_media();
    assert_eq!(h.core.calls[&call].trunk.as_deref(), Some("provider"));
    assert_eq!(h.core.calls[&call].dialed, "5000");
    // The queued call's 180 Ringing.
    h.responses_to(PROVIDER_EDGE);

    // The same edge without the Contact user is a stranger.
    h.receive(
        &invite(
            "sip:5000@pbx.test",
            "sip:5000@pbx.test",
            PROVIDER_EDGE,
            "prov-2@test",
            "",
        ),
        PROVIDER_EDGE,
    );
    let statuses: Vec<u16> = h
        .responses_to(PROVIDER_EDGE)
        .iter()
        .map(|r| r.status)
        .collect();
    assert_eq!(statuses, [403]);
}

#[test]
fn registrar_address_admitted_as_trunk() {
    let mut h = Harness::with_config(provider_config());
    register_provider(&mut h, "120");
    h.receive(
        &invite(
            "sip:5000@pbx.test",
            "sip:5000@pbx.test",
            REGISTRAR,
            "prov-3@test",
            "",
        ),
        REGISTRAR,
    );
    let statuses: Vec<u16> = h.responses_to(REGISTRAR).iter().map(|r| r.status).collect();
    assert_eq!(statuses, [100]);
}

#[test]
fn registration_refreshed_before_expiry() {
    let mut h = Harness::with_config(provider_config());
    register_provider(&mut h, "120");
    h.advance(Duration::from_secs(59));
    assert!(h.requests_to(REGISTRAR).is_empty());
    h.advance(Duration::from_secs(1));
    let refresh = h.requests_to(REGISTRAR);
    assert_eq!(refresh.len(), 1);
    assert!(refresh[0].headers.get("Authorization").is_some());
}

#[test]
fn shutdown_unregisters_the_trunk() {
    let mut h = Harness::with_config(provider_config());
    register_provider(&mut h, "600");
    h.core.shutdown(h.now);
    h.collect();
    let last = h.requests_to(REGISTRAR).pop().expect("unregistration");
    assert_eq!(last.headers.expires().unwrap(), Some(0));
    assert!(h.core.trunk_unregistrations_pending());
    let ok = Response::for_request(&last, 200, None);
    h.receive(&String::from_utf8_lossy(&ok.to_bytes()), REGISTRAR);
    assert!(!h.core.trunk_unregistrations_pending());
}

#[test]
fn reload_adds_changes_and_removes_registrations() {
    let mut h = Harness::with_config(provider_config());
    register_provider(&mut h, "600");

    // A new password with the same binding re-registers at once, without
    // an unregistration that would delete the binding.
    let mut changed = provider_config();
    changed.trunks[1].registration.as_mut().unwrap().password = "new-secret".into();
    let changes = h.core.reconfigure(changed.clone(), h.now);
    assert!(changes.contains(&"registration of trunk provider changed".to_owned()));
    h.collect();
    let sent = h.requests_to(REGISTRAR);
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0].headers.expires().unwrap(), Some(600));

    let mut removed = changed;
    removed.trunks[1].registration = None;
    let changes = h.core.reconfigure(removed, h.now);
    assert!(changes.contains(&"registration of trunk provider removed".to_owned()));
    h.collect();
    assert!(h.core.trunk_registrations().is_empty());
}

const PRIMARY_REGISTRAR: &str = "192.0.2.201:5060";
const SECONDARY_REGISTRAR: &str = "192.0.2.202:5060";

fn registrar_server(addr: &str) -> crate::locate::Destination {
    crate::locate::Destination {
        transport: TransportKind::Udp,
        addr: addr.parse().unwrap(),
        server_name: "sip.provider.example".into(),
    }
}

/// Drops UDP retransmissions: one request per CSeq.
fn distinct_cseqs(mut requests: Vec<Request>) -> Vec<Request> {
    requests.dedup_by_key(|request| request.headers.get("CSeq").map(str::to_owned));
    requests
}

#[test]
fn named_registrar_waits_for_resolution_then_fails_over() {
    let mut config = provider_config();
    let registration = config.trunks[1].registration.as_mut().unwrap();
    registration.registrar =
        crate::locate::OutboundTarget::parse("sip:sip.provider.example").unwrap();
    let mut h = Harness::with_config(config);
    h.collect();
    let unresolved = h.core.trunk_registrations();
    assert_eq!(unresolved[0].registrar, "sip:sip.provider.example");
    assert_eq!(unresolved[0].last_status, Some(503));
    assert!(h.requests_to(PRIMARY_REGISTRAR).is_empty());

    h.core.set_registrar_destinations(
        "provider",
        vec![
            registrar_server(PRIMARY_REGISTRAR),
            registrar_server(SECONDARY_REGISTRAR),
        ],
    );
    h.advance(Duration::from_secs(31));
    let first = distinct_cseqs(h.requests_to(PRIMARY_REGISTRAR));
    assert_eq!(first.len(), 1, "the retry goes to the first server");
    let unavailable = Response::for_request(&first[0], 503, None);
    h.receive(
        &String::from_utf8_lossy(&unavailable.to_bytes()),
        PRIMARY_REGISTRAR,
    );

    h.advance(Duration::from_secs(61));
    let second = distinct_cseqs(h.requests_to(SECONDARY_REGISTRAR));
    assert_eq!(second.len(), 1, "after a 503 the next server is tried");
    assert!(h.requests_to(PRIMARY_REGISTRAR).is_empty());
    // A call from the second server is the trunk's, as from the first.
    h.receive(
        &invite(
            "sip:5000@pbx.test",
            "sip:5000@pbx.test",
            SECONDARY_REGISTRAR,
            "named-1@test",
            "",
        ),
        SECONDARY_REGISTRAR,
    );
    let statuses: Vec<u16> = h
        .responses_to(SECONDARY_REGISTRAR)
        .iter()
        .map(|r| r.status)
        .collect();
    assert_eq!(statuses, [100]);
}
