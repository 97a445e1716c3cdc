//! Parses the corpus's linphone INVITE a given number of times (default
//! 10,000), for instruction counts under `valgrind --tool=callgrind`, which
//! stay the same whatever else the machine runs.

use std::hint::black_box;

use sip_message::Message;

const INVITE: &[u8] = include_bytes!("../tests/corpus/endpoints/linphone-INVITE.sip");

fn main() {
    let rounds: usize = std::env::args().nth(1).map_or(10_000, |text| {
        text.parse().expect("rounds must be a number")
    });
    for _ in 0..rounds {
        let message = Message::parse(black_box(INVITE)).expect("corpus INVITE parses");
        black_box(message.headers().get("Call-ID"));
    }
}
