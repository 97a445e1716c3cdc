//! Real endpoint messages and the RFC 5118 IPv6 torture messages: each one
//! parses, round-trips, and its SDP can be re-anchored.

use std::fs;
use std::net::IpAddr;
use std::path::{Path, PathBuf};

use sip_message::sdp::SessionDescription;
use sip_message::{ContactList, Host, Message};

fn corpus(folder: &str, extension: &str) -> Vec<(String, Vec<u8>)> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/corpus")
        .join(folder);
    let mut files: Vec<PathBuf> = fs::read_dir(&dir)
        .expect("corpus folder")
        .map(|entry| entry.expect("corpus entry").path())
        .filter(|path| path.extension().is_some_and(|e| e == extension))
        .collect();
    files.sort();
    assert!(
        !files.is_empty(),
        "no .{extension} files in {}",
        dir.display()
    );
    files
        .into_iter()
        .map(|path| {
            (
                path.file_name().unwrap().to_string_lossy().into_owned(),
                fs::read(&path).unwrap(),
            )
        })
        .collect()
}

fn read(folder: &str, name: &str) -> Message {
    let bytes = fs::read(
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/corpus")
            .join(folder)
            .join(name),
    )
    .expect("corpus file");
    Message::parse(&bytes).unwrap_or_else(|e| panic!("{name}: {e}"))
}

fn assert_same(name: &str, a: &Message, b: &Message) {
    let values = |m: &Message| -> Vec<(String, String)> {
        m.headers()
            .iter()
            .filter(|h| h.name() != "Content-Length")
            .map(|h| (h.name().into(), h.value().into()))
            .collect()
    };
    assert_eq!(values(a), values(b), "{name}: headers");
    assert_eq!(a.body(), b.body(), "{name}: body");
    match (a, b) {
        (Message::Request(x), Message::Request(y)) => {
            assert_eq!(x.method, y.method, "{name}: method");
            assert_eq!(x.uri, y.uri, "{name}: uri");
        }
        (Message::Response(x), Message::Response(y)) => {
            assert_eq!(x.status, y.status, "{name}: status");
            assert_eq!(x.reason, y.reason, "{name}: reason");
        }
        _ => panic!("{name}: kind changed in the round trip"),
    }
}

#[test]
fn endpoint_messages_parse_and_round_trip() {
    for (name, bytes) in corpus("endpoints", "sip") {
        let message = Message::parse(&bytes).unwrap_or_else(|e| panic!("{name}: {e}"));
        let headers = message.headers();
        assert!(headers.call_id().is_some(), "{name}: Call-ID");
        headers
            .cseq()
            .unwrap_or_else(|e| panic!("{name}: CSeq {e}"));
        headers
            .from()
            .unwrap_or_else(|e| panic!("{name}: From {e}"));
        headers.to().unwrap_or_else(|e| panic!("{name}: To {e}"));
        let vias = headers.vias().unwrap_or_else(|e| panic!("{name}: Via {e}"));
        assert!(!vias.is_empty(), "{name}: no Via");
        headers
            .contacts()
            .unwrap_or_else(|e| panic!("{name}: Contact {e}"));
        headers
            .routes()
            .unwrap_or_else(|e| panic!("{name}: Route {e}"));
        headers
            .record_routes()
            .unwrap_or_else(|e| panic!("{name}: Record-Route {e}"));
        headers
            .max_forwards()
            .unwrap_or_else(|e| panic!("{name}: Max-Forwards {e}"));
        headers
            .expires()
            .unwrap_or_else(|e| panic!("{name}: Expires {e}"));
        if let Some(length) = headers.get("Content-Length") {
            assert_eq!(
                length.parse::<usize>().unwrap(),
                message.body().len(),
                "{name}: body length"
            );
        }
        let again =
            Message::parse(&message.to_bytes()).unwrap_or_else(|e| panic!("{name}: reparse {e}"));
        assert_same(&name, &message, &again);
    }
}

#[test]
fn endpoint_sdp_bodies_re_anchor() {
    let anchor: IpAddr = "198.51.100.200".parse().unwrap();
    let mut checked = 0;
    for (name, bytes) in corpus("endpoints", "sip") {
        let message = Message::parse(&bytes).unwrap();
        if message.headers().content_type() != Some("application/sdp") {
            continue;
        }
        let mut sdp =
            SessionDescription::parse(message.body()).unwrap_or_else(|e| panic!("{name}: {e}"));
        let audio = sdp
            .first_audio()
            .unwrap_or_else(|| panic!("{name}: no audio"));
        assert!(
            sdp.connection_address(audio).is_some(),
            "{name}: no c= for audio"
        );
        assert_eq!(
            SessionDescription::parse(&sdp.to_bytes()).unwrap(),
            sdp,
            "{name}: SDP round trip"
        );

        sdp.set_connection_address(anchor);
        let rewritten = SessionDescription::parse(&sdp.to_bytes()).unwrap();
        for index in 0..rewritten.media.len() {
            assert_eq!(
                rewritten.connection_address(index),
                Some(anchor),
                "{name}: c= of media {index}"
            );
        }
        let origin = rewritten.session.iter().find(|l| l.kind == 'o').unwrap();
        assert!(
            origin.value.ends_with(" IN IP4 198.51.100.200"),
            "{name}: o= is {:?}",
            origin.value
        );
        assert_eq!(
            rewritten.media.len(),
            sdp.media.len(),
            "{name}: media count"
        );
        checked += 1;
    }
    assert!(checked >= 8, "only {checked} SDP bodies found");
}

#[test]
fn compact_freeswitch_401() {
    let message = read("endpoints", "freeswitch-401-REGISTER-compact.sip");
    let Message::Response(response) = &message else {
        panic!("expected a response")
    };
    assert_eq!(response.status, 401);
    assert!(response.headers.get("WWW-Authenticate").is_some());
    assert!(response.headers.iter().any(|h| h.name() == "Call-ID"));
    assert!(response.headers.to().unwrap().tag().is_some());
}

#[test]
fn rfc5118_valid_messages_parse() {
    for (name, bytes) in corpus("rfc5118", "dat") {
        let result = Message::parse(&bytes);
        if name == "ipv6-bad.dat" {
            assert!(
                result.is_err(),
                "{name}: an unbracketed IPv6 R-URI must be rejected"
            );
            continue;
        }
        let message = result.unwrap_or_else(|e| panic!("{name}: {e}"));
        message
            .headers()
            .vias()
            .unwrap_or_else(|e| panic!("{name}: Via {e}"));
        message
            .headers()
            .to()
            .unwrap_or_else(|e| panic!("{name}: To {e}"));
        message
            .headers()
            .contacts()
            .unwrap_or_else(|e| panic!("{name}: Contact {e}"));
        if message.headers().content_type() == Some("application/sdp") {
            SessionDescription::parse(message.body()).unwrap_or_else(|e| panic!("{name}: SDP {e}"));
        }
    }
}

#[test]
fn rfc5118_ipv6_hosts_and_ports() {
    let Message::Request(good) = read("rfc5118", "port-unambiguous.dat") else {
        panic!("expected a request")
    };
    assert_eq!(good.uri.host, Host::Ipv6("2001:db8::10".parse().unwrap()));
    assert_eq!(good.uri.port, Some(5070));
    let Message::Request(ambiguous) = read("rfc5118", "port-ambiguous.dat") else {
        panic!("expected a request")
    };
    assert_eq!(
        ambiguous.uri.host,
        Host::Ipv6("2001:db8::10:5070".parse().unwrap())
    );
    assert_eq!(ambiguous.uri.port, None);
    let Message::Request(three) = read("rfc5118", "ipv6-bug-abnf-3-colons.dat") else {
        panic!("expected a request")
    };
    assert_eq!(
        three.uri.host,
        Host::Ipv6("2001:db8::192.0.2.1".parse().unwrap())
    );

    let vias = read("rfc5118", "via-received-param-no-delim.dat")
        .headers()
        .vias()
        .unwrap();
    assert_eq!(vias[0].received(), Some("2001:db8::9:255"));
    let vias = read("rfc5118", "via-received-param-with-delim.dat")
        .headers()
        .vias()
        .unwrap();
    assert_eq!(vias[0].received(), Some("[2001:db8::9:255]"));
    let vias = read("rfc5118", "mult-ip-in-header.dat")
        .headers()
        .vias()
        .unwrap();
    assert_eq!(vias.len(), 3);
    assert!(matches!(vias[0].host, Host::Ipv6(_)));
}

#[test]
fn rfc5118_sdp_per_media_connection() {
    let message = read("rfc5118", "mult-ip-in-sdp.dat");
    let sdp = SessionDescription::parse(message.body()).unwrap();
    assert!(sdp.connection_address(0).unwrap().is_ipv4());
    assert!(sdp.connection_address(1).unwrap().is_ipv6());
    let message = read("rfc5118", "ipv4-mapped-ipv6.dat");
    let ContactList::Addresses(contacts) = message.headers().contacts().unwrap() else {
        panic!("expected contacts")
    };
    assert_eq!(
        contacts[0].uri.host,
        Host::Ipv6("::ffff:192.0.2.2".parse().unwrap())
    );
}
