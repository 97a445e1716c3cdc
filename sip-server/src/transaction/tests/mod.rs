//! Tests on a virtual clock: `Instant` values are advanced by hand and
//! nothing sleeps.

mod client;
mod scenario;
mod server;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use sip_message::{Message, Method, Request, Response, Uri};

use super::{Event, Target, TimerConfig, TransactionLayer, Transmit, TransportKind};

pub(super) const CLIENT_ADDR: &str = "127.0.0.1:5071";
pub(super) const SERVER_ADDR: &str = "127.0.0.1:5072";

pub(super) fn ms(millis: u64) -> Duration {
    Duration::from_millis(millis)
}

pub(super) fn udp(addr: &str) -> Target {
    Target {
        transport: TransportKind::Udp,
        addr: addr.parse::<SocketAddr>().expect("test address"),
        connection: None,
    }
}

pub(super) fn tcp(addr: &str, connection: u64) -> Target {
    Target {
        transport: TransportKind::Tcp,
        addr: addr.parse::<SocketAddr>().expect("test address"),
        connection: Some(connection),
    }
}

pub(super) fn layer() -> TransactionLayer {
    TransactionLayer::new(TimerConfig::default())
}

/// Builds a request as a UA at `sent_by` would, with all mandatory headers.
pub(super) fn request(method: Method, branch: &str, sent_by: &str, call_id: &str) -> Request {
    let uri: Uri = "sip:1001@127.0.0.1:5072".parse().expect("test URI");
    let mut request = Request::new(method.clone(), uri);
    request
        .headers
        .push("Via", format!("SIP/2.0/UDP {sent_by};branch={branch}"));
    request.headers.push("Max-Forwards", "70");
    request
        .headers
        .push("From", "<sip:caller@127.0.0.1>;tag=from-tag-1");
    request.headers.push("To", "<sip:1001@127.0.0.1>");
    request.headers.push("Call-ID", call_id);
    request.headers.push("CSeq", format!("1 {method}"));
    request
}

pub(super) fn invite(branch: &str) -> Request {
    request(Method::Invite, branch, CLIENT_ADDR, "call-1@127.0.0.1")
}

pub(super) fn options(branch: &str) -> Request {
    request(Method::Options, branch, CLIENT_ADDR, "options-1@127.0.0.1")
}

/// Response from the far end, with a To tag on anything but 100.
pub(super) fn response(request: &Request, status: u16) -> Response {
    let mut response = Response::for_request(request, status, None);
    if status > 100 {
        let to = format!(
            "{};tag=to-tag-9",
            request.headers.get("To").unwrap_or_default()
        );
        response.headers.set("To", to);
    }
    response
}

/// Parses wire text written with LF line ends.
pub(super) fn wire(text: &str) -> Message {
    let crlf = text.replace('\n', "\r\n");
    Message::parse(crlf.as_bytes()).expect("test message parses")
}

pub(super) fn transmits(layer: &mut TransactionLayer) -> Vec<Transmit> {
    std::iter::from_fn(|| layer.poll_transmit()).collect()
}

pub(super) fn events(layer: &mut TransactionLayer) -> Vec<Event> {
    std::iter::from_fn(|| layer.poll_event()).collect()
}

pub(super) fn parsed(transmit: &Transmit) -> Message {
    Message::parse(&transmit.payload).expect("layer output parses")
}

pub(super) fn parsed_response(transmit: &Transmit) -> Response {
    match parsed(transmit) {
        Message::Response(response) => response,
        Message::Request(request) => panic!("expected a response, got {}", request.method),
    }
}

pub(super) fn parsed_request(transmit: &Transmit) -> Request {
    match parsed(transmit) {
        Message::Request(request) => request,
        Message::Response(response) => panic!("expected a request, got {}", response.status),
    }
}

/// Runs the layer's timers up to `end`, returning the offsets from `start`
/// at which it transmitted and the events it raised on the way.
pub(super) fn run_timers(
    layer: &mut TransactionLayer,
    start: Instant,
    end: Instant,
) -> (Vec<Duration>, Vec<(Duration, Event)>) {
    let mut sent = Vec::new();
    let mut raised = Vec::new();
    while let Some(at) = layer.poll_timeout() {
        if at > end {
            break;
        }
        layer.handle_timeout(at);
        for _ in transmits(layer) {
            sent.push(at - start);
        }
        for event in events(layer) {
            raised.push((at - start, event));
        }
    }
    (sent, raised)
}

pub(super) fn secs_f(offsets: &[Duration]) -> Vec<f64> {
    offsets.iter().map(Duration::as_secs_f64).collect()
}
