//! Any bytes given to the message parser and the stream framer: no panic,
//! and a parsed message parses again after serialization.

#![no_main]

use libfuzzer_sys::fuzz_target;
use sip_message::{Message, frame_stream};

fuzz_target!(|data: &[u8]| {
    let _ = frame_stream(data);
    let Ok(message) = Message::parse(data) else {
        return;
    };
    let headers = message.headers();
    let _ = headers.vias();
    let _ = headers.cseq();
    let _ = headers.from();
    let _ = headers.to();
    let _ = headers.contacts();
    let _ = headers.routes();
    let _ = headers.max_forwards();
    let _ = headers.expires();
    let bytes = message.to_bytes();
    if let Err(error) = Message::parse(&bytes) {
        panic!("serialized message does not parse again: {error}");
    }
});
