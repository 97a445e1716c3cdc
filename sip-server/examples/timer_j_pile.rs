//! Feeds the transaction layer the REGISTER traffic of a registrar at a
//! fixed rate on a virtual clock and reports the longest single call, which
//! is where a growing transaction table stops the engine.
//!
//! ```sh
//! cargo run --release -p sip-server --example timer_j_pile -- [RATE] [SECONDS]
//! ```
//!
//! RATE is in requests a second (default 22,000, the two REGISTERs of
//! 11,000 registrations a second) and SECONDS of virtual time (default 40,
//! past Timer J). The table is reserved for 200,000 transactions, as the
//! PBX's `Core` does by default. Times are wall-clock and so depend on the
//! machine's load; compare runs made close together.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use sip_message::{Message, Method, Request, Response, Uri};
use sip_server::transaction::{Event, Target, TimerConfig, TransactionLayer, TransportKind};

const RESERVED: usize = 200_000;

fn register(branch: u64) -> Request {
    let uri: Uri = "sip:bench.local".parse().expect("URI");
    let mut request = Request::new(Method::Register, uri);
    let user = branch % 10_000;
    let headers = &mut request.headers;
    headers.push(
        "Via",
        format!("SIP/2.0/UDP 127.0.0.1:5080;branch=z9hG4bK-{branch}"),
    );
    headers.push("Max-Forwards", "70");
    headers.push(
        "From",
        format!("<sip:u{user:06}@bench.local>;tag=f{branch}"),
    );
    headers.push("To", format!("<sip:u{user:06}@bench.local>"));
    headers.push("Call-ID", format!("{branch}@127.0.0.1"));
    headers.push("CSeq", "1 REGISTER");
    request
}

fn main() {
    let mut args = std::env::args().skip(1);
    let rate: u64 = args.next().and_then(|a| a.parse().ok()).unwrap_or(22_000);
    let seconds: u64 = args.next().and_then(|a| a.parse().ok()).unwrap_or(40);
    let source = Target {
        transport: TransportKind::Udp,
        addr: "127.0.0.1:5080".parse::<SocketAddr>().expect("address"),
        connection: None,
    };
    let mut layer = TransactionLayer::with_capacity(TimerConfig::default(), RESERVED);

    let start = Instant::now();
    let step = Duration::from_secs(1) / u32::try_from(rate).expect("rate fits u32");
    let (mut longest, mut longest_at, mut peak) = (Duration::ZERO, 0u64, 0usize);
    let mut over_5ms = 0u32;
    let wall = Instant::now();

    for n in 0..rate * seconds {
        let now = start + step * u32::try_from(n).expect("request count fits u32");
        let request = register(n);
        let began = Instant::now();
        if layer.poll_timeout().is_some_and(|at| at <= now) {
            layer.handle_timeout(now);
        }
        layer.handle_message(Message::Request(request), source, now);
        while let Some(event) = layer.poll_event() {
            if let Event::Request {
                key: Some(key),
                request,
                ..
            } = event
            {
                let response = Response::for_request(&request, 200, None);
                layer.send_response(&key, response, now);
            }
        }
        while layer.poll_transmit().is_some() {}
        let took = began.elapsed();
        if took > Duration::from_millis(5) {
            over_5ms += 1;
        }
        if took > longest {
            (longest, longest_at) = (took, n);
        }
        peak = peak.max(layer.len());
    }

    let total = wall.elapsed();
    println!(
        "rate={rate}/s virtual={seconds}s requests={} peak_transactions={peak} \
         wall={:.2}s per_request={:.2}us longest={:.1}ms at_transaction={longest_at} calls_over_5ms={over_5ms}",
        rate * seconds,
        total.as_secs_f64(),
        total.as_secs_f64() * 1e6 / (rate * seconds) as f64,
        longest.as_secs_f64() * 1e3,
    );
}
