//! Calls that overflow to a number through a trunk over TLS, whose host
//! name the PBX resolves by RFC 3263 from a DNS server on loopback. The
//! carrier is a TLS server written on rustls, because sipp 3.6.1 as
//! packaged in Debian is built without TLS; it demands the PBX's client
//! certificate. The PBX has no TLS listener, so every message from the
//! carrier comes back over the connection the PBX opened.

use std::net::{Ipv4Addr, TcpListener};
use std::thread;
use std::time::Duration;

use hickory_proto::rr::RecordType;
use pbx_e2e::dns_server::{self, DnsServer};
use pbx_e2e::pbx::{Pbx, PbxConfig};
use pbx_e2e::ports;
use pbx_e2e::raw_caller::RawCaller;
use pbx_e2e::stream_phone::StreamPhone;
use pbx_e2e::test_ca::{Issued, TestCa};

const NUMBER: &str = "+15550199";
const CARRIER: &str = "carrier.test";
const SIGNALLING_TIMEOUT: Duration = Duration::from_secs(20);

/// Starts the PBX with the trunk's outbound target `outbound`, trusting
/// `ca`, presenting `client` and resolving through `dns`.
fn start_pbx(outbound: &str, dns: &DnsServer, ca: &TestCa, client: &Issued) -> Pbx {
    let config = PbxConfig {
        max_wait_secs: 2,
        recording: false,
        queue_extra: format!("overflow = \"number:{NUMBER}\"\n"),
        trunk_outbound: Some(outbound.to_owned()),
        sip_extra: format!(
            "tls_ca_file = {:?}\ntls_client_certificate = {:?}\ntls_client_private_key = {:?}\n",
            ca.path, client.certificate_path, client.key_path,
        ),
        extra: format!("\n[dns]\nnameserver = \"{}\"\n", dns.addr),
        ..PbxConfig::default()
    };
    let pbx = Pbx::start(&config);
    assert!(
        pbx.wait_for_log("trunk host resolved", Duration::from_secs(10)),
        "the trunk host was not resolved:\n{}",
        pbx.logs()
    );
    pbx
}

fn listener() -> (TcpListener, u16) {
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).expect("carrier listener");
    let port = listener.local_addr().expect("carrier address").port();
    (listener, port)
}

#[test]
fn overflow_reaches_tls_carrier_found_by_naptr() {
    let certificates = tempfile::tempdir().expect("certificate directory");
    let ca = TestCa::new(certificates.path());
    let carrier_certificate = ca.issue(certificates.path(), "carrier", &[CARRIER]);
    let client = ca.issue(certificates.path(), "pbx-client", &["pbx.local"]);
    let (listener, port) = listener();
    let dns = DnsServer::start(vec![
        dns_server::naptr(CARRIER, 10, 10, "SIPS+D2T", "_sips._tcp.carrier.test"),
        dns_server::naptr(CARRIER, 20, 10, "SIP+D2U", "_sip._udp.carrier.test"),
        dns_server::srv("_sips._tcp.carrier.test", 10, 10, port, "sbc1.carrier.test"),
        dns_server::a("sbc1.carrier.test", Ipv4Addr::LOCALHOST),
    ]);
    let pbx = start_pbx(&format!("sip:{CARRIER}"), &dns, &ca, &client);

    let server = ca.server_config(&carrier_certificate);
    let carrier = thread::spawn(move || {
        let mut phone = StreamPhone::accept_tls(&listener, server, "carrier", SIGNALLING_TIMEOUT)?;
        let invite = phone.answer(SIGNALLING_TIMEOUT)?;
        thread::sleep(Duration::from_secs(1));
        let status = phone.hang_up(&invite, SIGNALLING_TIMEOUT)?;
        std::io::Result::Ok((invite, status))
    });
    let mut caller = RawCaller::new(&pbx).expect("caller sockets");
    let status = caller.invite(SIGNALLING_TIMEOUT).expect("final response");
    assert_eq!(status, 200, "the carrier answered:\n{}", pbx.logs());
    caller
        .wait_for_bye(SIGNALLING_TIMEOUT)
        .expect("the carrier's BYE reaches the caller");
    let (invite, bye_status) = carrier
        .join()
        .expect("carrier thread")
        .expect("carrier over TLS");

    assert!(
        invite.starts_with(&format!("INVITE sip:{NUMBER}@{CARRIER} SIP/2.0\r\n")),
        "Request-URI: {invite}"
    );
    let via = invite
        .lines()
        .find(|line| line.starts_with("Via:"))
        .unwrap_or_default();
    assert!(via.contains("SIP/2.0/TLS "), "Via transport: {via}");
    assert!(via.ends_with(";alias"), "Via asks for reuse: {via}");
    assert_eq!(bye_status, 200, "the PBX answered the carrier's BYE");

    let questions = dns.questions();
    let expected = [
        (CARRIER.to_owned(), RecordType::NAPTR),
        ("_sips._tcp.carrier.test".to_owned(), RecordType::SRV),
        ("sbc1.carrier.test".to_owned(), RecordType::A),
    ];
    for question in &expected {
        assert!(
            questions.contains(question),
            "{question:?} in {questions:?}"
        );
    }
    let position = |question: &(String, RecordType)| questions.iter().position(|q| q == question);
    assert!(
        position(&expected[0]) < position(&expected[1])
            && position(&expected[1]) < position(&expected[2]),
        "NAPTR, then SRV, then A: {questions:?}"
    );
    // The UDP rule comes later in NAPTR order, so its servers are asked
    // for after the TLS ones, as fallbacks.
    let udp = ("_sip._udp.carrier.test".to_owned(), RecordType::SRV);
    assert!(
        position(&udp).is_some_and(|udp| Some(udp) > position(&expected[1])),
        "the UDP rule after the TLS one: {questions:?}"
    );

    let record = pbx.wait_for_call(caller.call_id(), Duration::from_secs(10));
    assert_eq!(record["disposition"], "answered", "{record:#}");
    assert_eq!(record["forwarded_to"], NUMBER, "{record:#}");
}

#[test]
fn refused_first_srv_target_fails_over() {
    let certificates = tempfile::tempdir().expect("certificate directory");
    let ca = TestCa::new(certificates.path());
    let carrier_certificate = ca.issue(certificates.path(), "carrier", &[CARRIER]);
    let client = ca.issue(certificates.path(), "pbx-client", &["pbx.local"]);
    // Nothing listens on the first server's port, so its connect is refused.
    let refusing = ports::free_port();
    let (listener, port) = listener();
    let dns = DnsServer::start(vec![
        dns_server::srv(
            "_sips._tcp.carrier.test",
            10,
            10,
            refusing,
            "sbc1.carrier.test",
        ),
        dns_server::srv("_sips._tcp.carrier.test", 20, 10, port, "sbc2.carrier.test"),
        dns_server::a("sbc1.carrier.test", Ipv4Addr::LOCALHOST),
        dns_server::a("sbc2.carrier.test", Ipv4Addr::LOCALHOST),
    ]);
    let pbx = start_pbx(&format!("sips:{CARRIER}"), &dns, &ca, &client);

    let server = ca.server_config(&carrier_certificate);
    let carrier = thread::spawn(move || {
        let mut phone = StreamPhone::accept_tls(&listener, server, "carrier", SIGNALLING_TIMEOUT)?;
        let invite = phone.answer(SIGNALLING_TIMEOUT)?;
        let bye = phone.await_request("BYE", SIGNALLING_TIMEOUT)?;
        std::io::Result::Ok((invite, bye))
    });
    let mut caller = RawCaller::new(&pbx).expect("caller sockets");
    let status = caller.invite(SIGNALLING_TIMEOUT).expect("final response");
    assert_eq!(status, 200, "the second server answered:\n{}", pbx.logs());
    thread::sleep(Duration::from_secs(1));
    assert_eq!(caller.bye(SIGNALLING_TIMEOUT).expect("BYE answered"), 200);
    let (invite, bye) = carrier
        .join()
        .expect("carrier thread")
        .expect("carrier over TLS");

    assert!(
        invite.starts_with(&format!("INVITE sips:{NUMBER}@{CARRIER} SIP/2.0\r\n")),
        "Request-URI: {invite}"
    );
    assert!(bye.starts_with("BYE "), "{bye}");
    let logs = pbx.logs();
    assert!(
        logs.contains("failed to open a connection") && logs.contains(&refusing.to_string()),
        "the refused server is logged:\n{logs}"
    );
    assert!(
        logs.contains("trying the next one"),
        "the failover is logged:\n{logs}"
    );
    let record = pbx.wait_for_call(caller.call_id(), Duration::from_secs(10));
    assert_eq!(record["disposition"], "answered", "{record:#}");
}

#[test]
fn certificate_for_another_name_fails_the_forward() {
    let certificates = tempfile::tempdir().expect("certificate directory");
    let ca = TestCa::new(certificates.path());
    // Issued by the trusted CA, but for a name the PBX did not ask for.
    let carrier_certificate = ca.issue(certificates.path(), "carrier", &["elsewhere.test"]);
    let client = ca.issue(certificates.path(), "pbx-client", &["pbx.local"]);
    let (listener, port) = listener();
    let dns = DnsServer::start(vec![dns_server::a(CARRIER, Ipv4Addr::LOCALHOST)]);
    // An explicit port skips NAPTR and SRV.
    let pbx = start_pbx(&format!("sips:{CARRIER}:{port}"), &dns, &ca, &client);

    let server = ca.server_config(&carrier_certificate);
    let carrier = thread::spawn(move || {
        StreamPhone::accept_tls(&listener, server, "carrier", SIGNALLING_TIMEOUT).map(|_| ())
    });
    let mut caller = RawCaller::new(&pbx).expect("caller sockets");
    let status = caller.invite(SIGNALLING_TIMEOUT).expect("final response");
    assert_eq!(
        status,
        480,
        "the caller is not left ringing:\n{}",
        pbx.logs()
    );
    let handshake = carrier.join().expect("carrier thread");
    assert!(handshake.is_err(), "the PBX must abort the handshake");

    let logs = pbx.logs();
    assert!(
        logs.contains("TLS handshake with carrier.test failed")
            && logs.contains("invalid peer certificate"),
        "the verification failure is logged:\n{logs}"
    );
    let questions = dns.questions();
    assert!(
        questions
            .iter()
            .all(|(_, kind)| matches!(kind, RecordType::A | RecordType::AAAA)),
        "an explicit port needs addresses only: {questions:?}"
    );
    let record = pbx.wait_for_call(caller.call_id(), Duration::from_secs(10));
    assert_eq!(record["disposition"], "no_agent", "{record:#}");
    assert_eq!(record["forwarded_to"], NUMBER, "{record:#}");
}
