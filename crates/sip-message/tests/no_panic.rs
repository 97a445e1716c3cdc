//! Property tests: no input makes a parser panic, and a parsed message
//! survives serialization unchanged.

use std::fs;
use std::path::Path;

use proptest::prelude::*;
use sip_message::sdp::SessionDescription;
use sip_message::{Message, NameAddr, Uri, frame_stream};

fn seeds() -> Vec<Vec<u8>> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/corpus");
    let mut messages = Vec::new();
    for folder in ["endpoints", "rfc4475", "rfc5118"] {
        for entry in fs::read_dir(root.join(folder)).expect("corpus folder") {
            let path = entry.expect("corpus entry").path();
            if path.extension().is_some_and(|e| e == "sip" || e == "dat") {
                messages.push(fs::read(path).expect("corpus file"));
            }
        }
    }
    messages
}

/// A corpus message with some bytes overwritten, inserted or cut.
fn mutated_message() -> impl Strategy<Value = Vec<u8>> {
    let seeds = seeds();
    (
        0..seeds.len(),
        prop::collection::vec((any::<u16>(), any::<u8>(), 0u8..3), 1..8),
    )
        .prop_map(move |(index, edits)| {
            let mut bytes = seeds[index].clone();
            for (position, byte, operation) in edits {
                let at = usize::from(position) % (bytes.len() + 1);
                match operation {
                    0 if at < bytes.len() => bytes[at] = byte,
                    1 => bytes.insert(at, byte),
                    _ => bytes.truncate(at),
                }
            }
            bytes
        })
}

fn exercise(bytes: &[u8]) {
    let _ = frame_stream(bytes);
    let _ = SessionDescription::parse(bytes);
    let text = String::from_utf8_lossy(bytes);
    let _ = Uri::parse(&text);
    let _ = NameAddr::parse(&text);
    if let Ok(message) = Message::parse(bytes) {
        let headers = message.headers();
        let _ = (
            headers.cseq(),
            headers.from(),
            headers.to(),
            headers.vias(),
            headers.contacts(),
        );
        let _ = (
            headers.routes(),
            headers.record_routes(),
            headers.max_forwards(),
            headers.expires(),
        );
        let _ = SessionDescription::parse(message.body());
    }
}

fn header_values(message: &Message) -> Vec<(String, String)> {
    let lines = message
        .headers()
        .iter()
        .filter(|h| h.name() != "Content-Length");
    lines
        .map(|h| (h.name().to_owned(), h.value().to_owned()))
        .collect()
}

proptest! {
    #[test]
    fn arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..512)) {
        exercise(&bytes);
    }

    #[test]
    fn mutated_messages_never_panic(bytes in mutated_message()) {
        exercise(&bytes);
    }

    #[test]
    fn parsed_messages_round_trip(bytes in mutated_message()) {
        let Ok(message) = Message::parse(&bytes) else { return Ok(()) };
        let again = Message::parse(&message.to_bytes()).expect("serialized message parses");
        prop_assert_eq!(header_values(&again), header_values(&message));
        prop_assert_eq!(again.body(), message.body());
        match (&message, &again) {
            (Message::Request(a), Message::Request(b)) => {
                prop_assert_eq!(&a.method, &b.method);
                prop_assert_eq!(&a.uri, &b.uri);
            }
            (Message::Response(a), Message::Response(b)) => {
                prop_assert_eq!(a.status, b.status);
                prop_assert_eq!(&a.reason, &b.reason);
            }
            _ => prop_assert!(false, "message kind changed"),
        }
    }
}
