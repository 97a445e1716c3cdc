//! RFC 4475 torture messages: the valid ones parse with the facts the RFC
//! points at, the ones malformed in framing or numbers are rejected either
//! by `Message::parse` or by the accessor of the broken header.

use std::fs;
use std::path::Path;

use sip_message::sdp::SessionDescription;
use sip_message::{ContactList, ErrorKind, Message, Method, Scheme};

fn bytes(name: &str) -> Vec<u8> {
    fs::read(
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/corpus/rfc4475")
            .join(name),
    )
    .expect("corpus file")
}

fn parse(name: &str) -> Message {
    Message::parse(&bytes(name)).unwrap_or_else(|e| panic!("{name}: {e}"))
}

fn contacts(message: &Message) -> Vec<sip_message::NameAddr> {
    match message.headers().contacts().unwrap() {
        ContactList::Addresses(list) => list,
        ContactList::Star => panic!("unexpected Contact: *"),
    }
}

const VALID: &[&str] = &[
    "wsinv.dat",
    "intmeth.dat",
    "esc01.dat",
    "escnull.dat",
    "esc02.dat",
    "lwsdisp.dat",
    "longreq.dat",
    "dblreq.dat",
    "semiuri.dat",
    "transports.dat",
    "mpart01.dat",
    "unreason.dat",
    "noreason.dat",
    "unkscm.dat",
    "novelsc.dat",
    "unksm2.dat",
    "bext01.dat",
    "invut.dat",
    "regaut01.dat",
    "bcast.dat",
    "zeromf.dat",
    "cparam01.dat",
    "cparam02.dat",
    "regescrt.dat",
    "sdp01.dat",
    "inv2543.dat",
];

#[test]
fn valid_messages_parse_and_round_trip() {
    for name in VALID {
        let message = parse(name);
        let again =
            Message::parse(&message.to_bytes()).unwrap_or_else(|e| panic!("{name}: reparse {e}"));
        assert_eq!(again.body(), message.body(), "{name}: body");
        let count = |m: &Message| {
            m.headers()
                .iter()
                .filter(|h| h.name() != "Content-Length")
                .count()
        };
        assert_eq!(count(&again), count(&message), "{name}: header count");
        message
            .headers()
            .vias()
            .unwrap_or_else(|e| panic!("{name}: Via {e}"));
    }
}

#[test]
fn wsinv_folding_and_unknown_headers() {
    let message = parse("wsinv.dat");
    let headers = message.headers();
    assert_eq!(
        headers.get("UnknownHeaderWithUnusualValue"),
        Some(";;,,;;,;")
    );
    assert_eq!(
        headers.get("NewFangledHeader"),
        Some("newfangled value continued newfangled value")
    );
    assert_eq!(headers.max_forwards().unwrap(), Some(68));
    assert_eq!(headers.cseq().unwrap().seq, 9);
    assert_eq!(headers.cseq().unwrap().method, Method::Invite);
    assert_eq!(headers.to().unwrap().tag(), Some("1918181833n"));
    let from = headers.from().unwrap();
    assert_eq!(from.display_name.as_deref(), Some("J Rosenberg \\\""));
    assert_eq!(from.tag(), Some("98asjd8"));
    let vias = headers.vias().unwrap();
    assert_eq!(vias.len(), 3);
    assert_eq!(vias[1].transport, "TCP");
    assert_eq!(vias[2].branch(), Some("z9hG4bK30239"));
    assert_eq!(headers.get("Subject"), Some(""));
    let contact = &contacts(&message)[0];
    assert_eq!(contact.display_name.as_deref(), Some("Quoted string \"\""));
    assert_eq!(contact.params.value("newparam"), Some("newvalue"));
    assert_eq!(contact.params.value("q"), Some("0.33"));
    assert_eq!(message.body().len(), 150);
    let reparsed = Message::parse(&message.to_bytes()).unwrap();
    assert_eq!(
        reparsed.headers().get("UnknownHeaderWithUnusualValue"),
        Some(";;,,;;,;")
    );
}

#[test]
fn intmeth_extension_method() {
    let Message::Request(request) = parse("intmeth.dat") else {
        panic!("expected a request")
    };
    assert_eq!(
        request.method,
        Method::Extension("!interesting-Method0123456789_*+`.%indeed'~".into())
    );
    assert_eq!(request.headers.cseq().unwrap().method, request.method);
    assert!(
        request
            .headers
            .to()
            .unwrap()
            .display_name
            .unwrap()
            .contains('\u{7}')
    );
}

#[test]
fn esc01_unescapes_once() {
    let message = parse("esc01.dat");
    let Message::Request(request) = &message else {
        panic!("expected a request")
    };
    assert_eq!(
        request.uri.user_unescaped().as_deref(),
        Some("sips:user@example.com")
    );
    assert_eq!(
        message
            .headers()
            .from()
            .unwrap()
            .uri
            .user_unescaped()
            .as_deref(),
        Some("I have spaces")
    );
    let contact = &contacts(&message)[0];
    assert_eq!(contact.uri.params.value("n%61me"), Some("v%61lue%25%34%31"));
    assert_eq!(contact.uri.user_unescaped().as_deref(), Some("caller"));
}

#[test]
fn escnull_two_contacts() {
    let message = parse("escnull.dat");
    let list = contacts(&message);
    assert_eq!(list.len(), 2);
    assert_eq!(list[0].uri.user_unescaped().as_deref(), Some("\0"));
    assert_eq!(list[1].uri.user_unescaped().as_deref(), Some("\0\0"));
    assert!(message.body().is_empty());
}

#[test]
fn esc02_percent_is_not_an_escape() {
    let message = parse("esc02.dat");
    let Message::Request(request) = &message else {
        panic!("expected a request")
    };
    assert_eq!(request.method, Method::Extension("RE%47IST%45R".into()));
    assert_eq!(
        message.headers().to().unwrap().display_name.as_deref(),
        Some("%Z%45")
    );
    assert_eq!(contacts(&message).len(), 2);
    assert!(message.headers().contains("C%6Fntact"));
    assert_eq!(
        message.headers().top_via().unwrap().branch(),
        Some("z9hG4bK209%fzsnel234")
    );
}

#[test]
fn lwsdisp_display_name_before_bracket() {
    let from = parse("lwsdisp.dat").headers().from().unwrap();
    assert_eq!(from.display_name.as_deref(), Some("caller"));
    assert_eq!(from.uri.user.as_deref(), Some("caller"));
}

#[test]
fn longreq_long_values() {
    let message = parse("longreq.dat");
    assert!(message.headers().vias().unwrap().len() > 30);
    assert!(message.headers().from().unwrap().tag().unwrap().len() > 100);
}

#[test]
fn dblreq_keeps_only_the_register() {
    let Message::Request(request) = parse("dblreq.dat") else {
        panic!("expected a request")
    };
    assert_eq!(request.method, Method::Register);
    assert!(request.body.is_empty());
}

#[test]
fn semiuri_user_with_semicolon() {
    let Message::Request(request) = parse("semiuri.dat") else {
        panic!("expected a request")
    };
    assert_eq!(
        request.uri.user_unescaped().as_deref(),
        Some("user;par=u@example.net")
    );
    assert!(request.uri.params.is_empty());
}

#[test]
fn transports_in_via() {
    let vias = parse("transports.dat").headers().vias().unwrap();
    let transports: Vec<&str> = vias.iter().map(|v| v.transport.as_str()).collect();
    assert_eq!(transports, vec!["UDP", "SCTP", "TLS", "UNKNOWN", "TCP"]);
}

#[test]
fn mpart01_body_framed_by_length() {
    let message = parse("mpart01.dat");
    let declared: usize = message
        .headers()
        .get("Content-Length")
        .unwrap()
        .parse()
        .unwrap();
    assert_eq!(message.body().len(), declared);
    assert!(message.body().contains(&0));
}

#[test]
fn responses_with_odd_reasons() {
    let Message::Response(unreason) = parse("unreason.dat") else {
        panic!("expected a response")
    };
    assert_eq!(unreason.status, 200);
    assert!(unreason.reason.contains('\u{441}'));
    let Message::Response(noreason) = parse("noreason.dat") else {
        panic!("expected a response")
    };
    assert_eq!(noreason.status, 100);
    assert_eq!(noreason.reason, "");
}

#[test]
fn application_level_cases_parse() {
    let Message::Request(unkscm) = parse("unkscm.dat") else {
        panic!("expected a request")
    };
    assert!(matches!(unkscm.uri.scheme, Scheme::Other(_)));
    let unksm2 = parse("unksm2.dat");
    assert!(matches!(
        unksm2.headers().to().unwrap().uri.scheme,
        Scheme::Other(_)
    ));
    assert_eq!(
        parse("zeromf.dat").headers().max_forwards().unwrap(),
        Some(0)
    );
    let inv2543 = parse("inv2543.dat");
    assert!(!inv2543.headers().contains("Content-Length"));
    assert!(!inv2543.body().is_empty());
    SessionDescription::parse(inv2543.body()).unwrap();
}

#[test]
fn contact_params_inside_and_outside_brackets() {
    let outside = &contacts(&parse("cparam01.dat"))[0];
    assert!(outside.params.contains("unknownparam"));
    assert!(!outside.uri.params.contains("unknownparam"));
    let inside = &contacts(&parse("cparam02.dat"))[0];
    assert!(inside.uri.params.contains("unknownparam"));
    let escaped = &contacts(&parse("regescrt.dat"))[0];
    assert_eq!(
        escaped.uri.headers.as_deref(),
        Some("Route=%3Csip:sip.example.com%3E")
    );
}

#[test]
fn framing_and_start_line_errors() {
    for (name, kind) in [
        ("clerr.dat", ErrorKind::ContentLength),
        ("ncl.dat", ErrorKind::ContentLength),
        ("mcl01.dat", ErrorKind::ContentLength),
        ("badvers.dat", ErrorKind::Version),
        ("bigcode.dat", ErrorKind::Status),
        ("ltgtruri.dat", ErrorKind::Uri),
        ("escruri.dat", ErrorKind::Uri),
    ] {
        let error = Message::parse(&bytes(name)).expect_err(name);
        assert_eq!(error.kind(), kind, "{name}: {error}");
    }
    for name in ["lwsruri.dat", "lwsstart.dat", "trws.dat"] {
        assert!(
            Message::parse(&bytes(name)).is_err(),
            "{name} should be rejected"
        );
    }
}

#[test]
fn broken_headers_fail_their_accessor() {
    assert_eq!(
        parse("scalar02.dat").headers().cseq().unwrap_err().kind(),
        ErrorKind::CSeq
    );
    assert_eq!(
        parse("scalar02.dat")
            .headers()
            .max_forwards()
            .unwrap_err()
            .kind(),
        ErrorKind::MaxForwards
    );
    assert_eq!(
        parse("scalar02.dat")
            .headers()
            .expires()
            .unwrap_err()
            .kind(),
        ErrorKind::Expires
    );
    assert_eq!(
        parse("scalarlg.dat").headers().cseq().unwrap_err().kind(),
        ErrorKind::CSeq
    );
    assert!(parse("badinv01.dat").headers().vias().is_err());
    assert!(parse("badinv01.dat").headers().contacts().is_err());
    assert!(parse("quotbal.dat").headers().to().is_err());
    assert!(parse("regbadct.dat").headers().contacts().is_err());
    assert!(parse("badaspec.dat").headers().to().is_err());
    let baddn = parse("baddn.dat");
    assert!(baddn.body().is_empty());
    assert!(baddn.headers().from().is_err());
    let multi = parse("multi01.dat");
    assert!(multi.headers().cseq().is_err());
    assert!(multi.headers().to().is_err());
    assert!(multi.headers().from().is_err());
    assert!(multi.headers().max_forwards().is_err());
    let insuf = parse("insuf.dat");
    assert_eq!(insuf.headers().call_id(), None);
    assert_eq!(
        insuf.headers().from().unwrap_err().kind(),
        ErrorKind::MissingHeader
    );
}
