//! Any text given to the URI and name-addr parsers: no panic, and a parsed
//! URI parses again from its own serialization.

#![no_main]

use libfuzzer_sys::fuzz_target;
use sip_message::{NameAddr, Uri};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let _ = NameAddr::parse(text);
    let Ok(uri) = Uri::parse(text) else {
        return;
    };
    let _ = uri.user_unescaped();
    let written = uri.to_string();
    if let Err(error) = Uri::parse(&written) {
        panic!("URI {text:?} serialized as {written:?} does not parse again: {error}");
    }
});
