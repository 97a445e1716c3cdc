//! Parse cost of the messages a PBX handles most: a phone's INVITE and a
//! REGISTER carrying digest credentials. Besides criterion's timings it
//! prints the heap allocations of one parse, counted by `stats_alloc`,
//! because allocation is what separates a copying parser from one that
//! slices the received buffer.

use std::alloc::System;
use std::hint::black_box;

use bytes::Bytes;
use criterion::{Criterion, criterion_group, criterion_main};
use sip_message::Message;
use stats_alloc::{INSTRUMENTED_SYSTEM, Region, StatsAlloc};

#[global_allocator]
static ALLOCATOR: &StatsAlloc<System> = &INSTRUMENTED_SYSTEM;

const INVITE: &[u8] = include_bytes!("../tests/corpus/endpoints/linphone-INVITE.sip");

const REGISTER: &[u8] = b"REGISTER sip:pbx.example.org SIP/2.0\r\n\
Via: SIP/2.0/UDP 127.0.0.1:5062;branch=z9hG4bK-17-2;rport\r\n\
Max-Forwards: 70\r\n\
From: <sip:1001@pbx.example.org>;tag=17-2\r\n\
To: <sip:1001@pbx.example.org>\r\n\
Call-ID: 17-2@127.0.0.1\r\n\
CSeq: 2 REGISTER\r\n\
Contact: <sip:1001@127.0.0.1:5062;transport=udp>;expires=3600\r\n\
Authorization: Digest username=\"1001\", realm=\"pbx.example.org\", nonce=\"6f1c2d3e4a5b6c7d8e9f0a1b2c3d4e5f\", uri=\"sip:pbx.example.org\", response=\"0123456789abcdef0123456789abcdef\", algorithm=MD5\r\n\
User-Agent: bench\r\n\
Content-Length: 0\r\n\
\r\n";

/// What the engine reads of nearly every request before it is routed.
fn parse_and_read(wire: &Bytes) -> usize {
    let message = Message::parse_bytes(wire.clone()).expect("bench message parses");
    let headers = message.headers();
    let branch_len = headers
        .vias()
        .ok()
        .and_then(|vias| vias.into_iter().next())
        .and_then(|via| via.branch().map(str::len))
        .unwrap_or(0);
    branch_len + headers.get("Call-ID").map_or(0, str::len)
}

fn report_allocations(name: &str, wire: &Bytes) {
    let region = Region::new(ALLOCATOR);
    black_box(Message::parse_bytes(wire.clone()).expect("bench message parses"));
    let change = region.change();
    println!(
        "{name}: {} allocations, {} bytes allocated per parse",
        change.allocations, change.bytes_allocated
    );
}

fn parse(c: &mut Criterion) {
    let invite = Bytes::from_static(INVITE);
    let register = Bytes::from_static(REGISTER);
    report_allocations("INVITE", &invite);
    report_allocations("REGISTER", &register);

    c.bench_function("parse INVITE", |b| {
        b.iter(|| Message::parse_bytes(black_box(invite.clone())))
    });
    c.bench_function("parse REGISTER", |b| {
        b.iter(|| Message::parse_bytes(black_box(register.clone())))
    });
    c.bench_function("parse INVITE and read Via and Call-ID", |b| {
        b.iter(|| parse_and_read(black_box(&invite)))
    });
}

criterion_group!(benches, parse);
criterion_main!(benches);
