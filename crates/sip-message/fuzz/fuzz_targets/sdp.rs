//! Any bytes given to the SDP parser: no panic, and a parsed session
//! description parses again after serialization.

#![no_main]

use libfuzzer_sys::fuzz_target;
use sip_message::sdp::SessionDescription;

fuzz_target!(|data: &[u8]| {
    let Ok(session) = SessionDescription::parse(data) else {
        return;
    };
    let _ = session.first_audio();
    let _ = session.connection_address(0);
    let bytes = session.to_bytes();
    if let Err(error) = SessionDescription::parse(&bytes) {
        panic!("serialized SDP does not parse again: {error}");
    }
});
