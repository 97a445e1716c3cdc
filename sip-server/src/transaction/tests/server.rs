//! Server transactions: 100 Trying, response retransmission, ACK and CANCEL
//! matching, RFC 3581 response routing, invalid requests.

use std::time::{Duration, Instant};

use sip_message::{Message, Method, Request, Response};

use super::*;
use crate::transaction::{Side, TransactionKey};

/// Feeds `request` from `source` and returns the key and request of the
/// Event::Request it raised.
fn receive(
    layer: &mut TransactionLayer,
    request: Request,
    source: Target,
    now: Instant,
) -> (TransactionKey, Request) {
    layer.handle_message(Message::Request(request), source, now);
    match events(layer).as_slice() {
        [
            Event::Request {
                key: Some(key),
                request,
                source: from,
            },
        ] => {
            assert_eq!(*from, source);
            (key.clone(), request.clone())
        }
        other => panic!("expected one new request, got {other:?}"),
    }
}

#[test]
fn invite_gets_100_trying_after_200_ms() {
    let mut layer = layer();
    let start = Instant::now();
    let (key, request) = receive(&mut layer, invite("z9hG4bKs1"), udp(CLIENT_ADDR), start);
    assert_eq!(key.side(), Side::Server);
    assert!(transmits(&mut layer).is_empty());
    assert_eq!(layer.poll_timeout(), Some(start + ms(200)));

    layer.handle_timeout(start + ms(199));
    assert!(transmits(&mut layer).is_empty());
    layer.handle_timeout(start + ms(200));
    let sent = transmits(&mut layer);
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0].target, udp(CLIENT_ADDR));
    let trying = parsed_response(&sent[0]);
    assert_eq!(trying.status, 100);
    assert_eq!(trying.headers.call_id(), request.headers.call_id());
    assert_eq!(
        trying.headers.top_via().expect("Via").branch(),
        Some("z9hG4bKs1")
    );

    // A retransmitted INVITE gets the 100 again and is not passed up.
    layer.handle_message(
        Message::Request(invite("z9hG4bKs1")),
        udp(CLIENT_ADDR),
        start + ms(500),
    );
    assert!(events(&mut layer).is_empty());
    assert_eq!(transmits(&mut layer).len(), 1);
}

#[test]
fn early_provisional_suppresses_100_trying() {
    let mut layer = layer();
    let start = Instant::now();
    let (key, request) = receive(&mut layer, invite("z9hG4bKs2"), udp(CLIENT_ADDR), start);
    layer.send_response(
        &key,
        Response::for_request(&request, 180, None),
        start + ms(100),
    );
    assert_eq!(transmits(&mut layer).len(), 1);
    layer.handle_timeout(start + ms(300));
    assert!(transmits(&mut layer).is_empty());

    layer.handle_message(
        Message::Request(invite("z9hG4bKs2")),
        udp(CLIENT_ADDR),
        start + ms(500),
    );
    let sent = transmits(&mut layer);
    assert_eq!(sent.len(), 1);
    assert_eq!(parsed_response(&sent[0]).status, 180);
}

#[test]
fn wire_invite_gets_literal_100_trying() {
    let mut layer = layer();
    let start = Instant::now();
    let invite = wire(
        "INVITE sip:1001@127.0.0.1:5072 SIP/2.0
Via: SIP/2.0/UDP 127.0.0.1:5071;branch=z9hG4bK74bf9
Max-Forwards: 70
From: Alice <sip:alice@127.0.0.1>;tag=9fxced76sl
To: <sip:1001@127.0.0.1>
Call-ID: 3848276298220188511@127.0.0.1
CSeq: 2 INVITE
Contact: <sip:alice@127.0.0.1:5071>
Content-Length: 0

",
    );
    layer.handle_message(invite, udp(CLIENT_ADDR), start);
    assert_eq!(events(&mut layer).len(), 1);
    layer.handle_timeout(start + ms(200));
    let sent = transmits(&mut layer);
    assert_eq!(sent.len(), 1);
    let expected = "SIP/2.0 100 Trying\r
Via: SIP/2.0/UDP 127.0.0.1:5071;branch=z9hG4bK74bf9\r
From: Alice <sip:alice@127.0.0.1>;tag=9fxced76sl\r
To: <sip:1001@127.0.0.1>\r
Call-ID: 3848276298220188511@127.0.0.1\r
CSeq: 2 INVITE\r
Content-Length: 0\r
\r
";
    assert_eq!(String::from_utf8_lossy(&sent[0].payload), expected);
}

#[test]
fn invite_non_2xx_retransmits_until_timer_h() {
    let mut layer = layer();
    let start = Instant::now();
    let (key, request) = receive(&mut layer, invite("z9hG4bKs3"), udp(CLIENT_ADDR), start);
    layer.send_response(&key, Response::for_request(&request, 486, None), start);
    assert_eq!(transmits(&mut layer).len(), 1);

    let (sent, raised) = run_timers(&mut layer, start, start + Duration::from_secs(40));
    // Timer G: T1 doubling capped at T2; Timer H at 64*T1 ends it quietly.
    let expected = vec![0.5, 1.5, 3.5, 7.5, 11.5, 15.5, 19.5, 23.5, 27.5, 31.5];
    assert_eq!(secs_f(&sent), expected);
    assert!(raised.is_empty());
    assert_eq!(layer.len(), 0);
}

#[test]
fn ack_confirms_non_2xx_until_timer_i() {
    let mut layer = layer();
    let start = Instant::now();
    let (key, request) = receive(&mut layer, invite("z9hG4bKs4"), udp(CLIENT_ADDR), start);
    let busy = response(&request, 486);
    layer.send_response(&key, busy.clone(), start);
    transmits(&mut layer);
    layer.handle_timeout(start + ms(500));
    assert_eq!(transmits(&mut layer).len(), 1);

    let ack = super::super::client::build_ack(&invite("z9hG4bKs4"), &busy);
    layer.handle_message(
        Message::Request(ack.clone()),
        udp(CLIENT_ADDR),
        start + ms(700),
    );
    assert!(events(&mut layer).is_empty(), "the ACK is absorbed");
    // Confirmed: Timer G stops, Timer I = T4.
    assert_eq!(
        layer.poll_timeout(),
        Some(start + ms(700) + Duration::from_secs(5))
    );

    layer.handle_message(Message::Request(ack), udp(CLIENT_ADDR), start + ms(900));
    assert!(events(&mut layer).is_empty());
    let (sent, raised) = run_timers(&mut layer, start, start + Duration::from_secs(40));
    assert!(sent.is_empty());
    assert!(raised.is_empty());
    assert_eq!(layer.len(), 0);
}

#[test]
fn ack_over_tcp_ends_at_once() {
    let mut layer = layer();
    let start = Instant::now();
    let (key, request) = receive(&mut layer, invite("z9hG4bKs5"), tcp(CLIENT_ADDR, 4), start);
    let busy = response(&request, 404);
    layer.send_response(&key, busy.clone(), start);
    let sent = transmits(&mut layer);
    assert_eq!(sent[0].target, tcp(CLIENT_ADDR, 4));
    // No Timer G on TCP; Timer H still waits for the ACK.
    assert_eq!(layer.poll_timeout(), Some(start + Duration::from_secs(32)));
    let ack = super::super::client::build_ack(&invite("z9hG4bKs5"), &busy);
    layer.handle_message(Message::Request(ack), tcp(CLIENT_ADDR, 4), start + ms(10));
    // Timer I is zero on a reliable transport.
    assert_eq!(layer.len(), 0);
}

#[test]
fn invite_2xx_retransmits_until_ack_reported() {
    let mut layer = layer();
    let start = Instant::now();
    let (key, request) = receive(&mut layer, invite("z9hG4bKs6"), udp(CLIENT_ADDR), start);
    layer.send_response(&key, response(&request, 200), start);
    assert_eq!(transmits(&mut layer).len(), 1);

    let (sent, _) = run_timers(&mut layer, start, start + Duration::from_secs(2));
    assert_eq!(secs_f(&sent), vec![0.5, 1.5]);

    // The ACK for a 2xx has its own branch, so it goes to the TU.
    let mut ack = request.clone();
    ack.method = Method::Ack;
    ack.headers
        .set("Via", "SIP/2.0/UDP 127.0.0.1:5071;branch=z9hG4bKack6");
    ack.headers.set("CSeq", "1 ACK");
    layer.handle_message(Message::Request(ack), udp(CLIENT_ADDR), start + ms(2100));
    let raised = events(&mut layer);
    assert!(
        matches!(&raised[..], [Event::Request { key: None, request, .. }] if request.method == Method::Ack)
    );
    layer.ack_received(&key);

    // Accepted absorbs INVITE retransmissions until Timer L.
    layer.handle_message(
        Message::Request(invite("z9hG4bKs6")),
        udp(CLIENT_ADDR),
        start + ms(2200),
    );
    assert!(events(&mut layer).is_empty());
    assert!(transmits(&mut layer).is_empty());
    let (sent, raised) = run_timers(&mut layer, start, start + Duration::from_secs(40));
    assert!(sent.is_empty());
    assert!(raised.is_empty());
    assert_eq!(layer.len(), 0);
}

#[test]
fn unacknowledged_2xx_raises_ack_timeout() {
    let mut layer = layer();
    let start = Instant::now();
    let (key, request) = receive(&mut layer, invite("z9hG4bKs7"), udp(CLIENT_ADDR), start);
    layer.send_response(&key, response(&request, 200), start);
    transmits(&mut layer);

    let (sent, raised) = run_timers(&mut layer, start, start + Duration::from_secs(40));
    let expected = vec![0.5, 1.5, 3.5, 7.5, 11.5, 15.5, 19.5, 23.5, 27.5, 31.5];
    assert_eq!(secs_f(&sent), expected);
    assert_eq!(raised.len(), 1);
    assert_eq!(raised[0].0, Duration::from_secs(32));
    assert!(matches!(&raised[0].1, Event::AckTimeout { key: k } if *k == key));
    assert_eq!(layer.len(), 0);
}

#[test]
fn non_invite_absorbs_retransmissions_until_timer_j() {
    let mut layer = layer();
    let start = Instant::now();
    let (key, request) = receive(&mut layer, options("z9hG4bKs8"), udp(CLIENT_ADDR), start);
    // No automatic 100 for non-INVITE, and nothing to resend yet.
    assert_eq!(layer.poll_timeout(), None);
    layer.handle_message(
        Message::Request(options("z9hG4bKs8")),
        udp(CLIENT_ADDR),
        start + ms(500),
    );
    assert!(events(&mut layer).is_empty());
    assert!(transmits(&mut layer).is_empty());

    layer.send_response(&key, response(&request, 200), start + ms(600));
    assert_eq!(transmits(&mut layer).len(), 1);
    layer.handle_message(
        Message::Request(options("z9hG4bKs8")),
        udp(CLIENT_ADDR),
        start + ms(1500),
    );
    let sent = transmits(&mut layer);
    assert_eq!(sent.len(), 1);
    assert_eq!(parsed_response(&sent[0]).status, 200);
    assert!(events(&mut layer).is_empty());

    // Timer J = 64*T1 from the final response.
    assert_eq!(
        layer.poll_timeout(),
        Some(start + ms(600) + Duration::from_secs(32))
    );
    run_timers(&mut layer, start, start + Duration::from_secs(40));
    assert_eq!(layer.len(), 0);
}

#[test]
fn non_invite_over_tcp_ends_on_final_response() {
    let mut layer = layer();
    let start = Instant::now();
    let (key, request) = receive(&mut layer, options("z9hG4bKs9"), tcp(CLIENT_ADDR, 2), start);
    layer.send_response(&key, response(&request, 200), start);
    assert_eq!(transmits(&mut layer)[0].target, tcp(CLIENT_ADDR, 2));
    assert_eq!(layer.len(), 0);
}

#[test]
fn cancel_has_own_transaction_and_finds_invite() {
    let mut layer = layer();
    let start = Instant::now();
    let (invite_key, _) = receive(&mut layer, invite("z9hG4bKc1"), udp(CLIENT_ADDR), start);
    let mut cancel = invite("z9hG4bKc1");
    cancel.method = Method::Cancel;
    cancel.headers.set("CSeq", "1 CANCEL");
    let (cancel_key, delivered) =
        receive(&mut layer, cancel.clone(), udp(CLIENT_ADDR), start + ms(50));
    assert_ne!(cancel_key, invite_key);
    assert_eq!(cancel_key.method(), &Method::Cancel);
    assert_eq!(layer.len(), 2);
    assert_eq!(layer.invite_for_cancel(&cancel), Some(invite_key.clone()));
    assert_eq!(layer.invite_for_cancel(&delivered), Some(invite_key));

    let mut unrelated = cancel;
    unrelated
        .headers
        .set("Via", "SIP/2.0/UDP 127.0.0.1:5071;branch=z9hG4bKc2");
    assert_eq!(layer.invite_for_cancel(&unrelated), None);
}

#[test]
fn same_branch_other_sent_by_is_other_transaction() {
    let mut layer = layer();
    let start = Instant::now();
    receive(&mut layer, invite("z9hG4bKd1"), udp(CLIENT_ADDR), start);
    let other = request(
        Method::Invite,
        "z9hG4bKd1",
        "127.0.0.1:5090",
        "call-2@127.0.0.1",
    );
    receive(&mut layer, other, udp("127.0.0.1:5090"), start);
    assert_eq!(layer.len(), 2);
}

#[test]
fn bare_rport_gets_received_and_port() {
    let mut layer = layer();
    let start = Instant::now();
    let mut invite = invite("z9hG4bKr1");
    invite
        .headers
        .set("Via", "SIP/2.0/UDP 10.0.0.5:5060;branch=z9hG4bKr1;rport");
    let source = udp("127.0.0.9:40000");
    let (key, delivered) = receive(&mut layer, invite, source, start);
    let via = delivered.headers.top_via().expect("Via");
    assert_eq!(via.received(), Some("127.0.0.9"));
    assert_eq!(via.rport(), Some(Some(40000)));

    layer.send_response(&key, Response::for_request(&delivered, 180, None), start);
    let sent = transmits(&mut layer);
    assert_eq!(sent[0].target, udp("127.0.0.9:40000"));
    let echoed = parsed_response(&sent[0]).headers.top_via().expect("Via");
    assert_eq!(echoed.received(), Some("127.0.0.9"));
    assert_eq!(echoed.rport(), Some(Some(40000)));
}

#[test]
fn rport_received_even_when_host_matches() {
    let mut layer = layer();
    let mut invite = invite("z9hG4bKr2");
    invite
        .headers
        .set("Via", "SIP/2.0/UDP 127.0.0.9:5060;rport;branch=z9hG4bKr2");
    let (_, delivered) = receive(&mut layer, invite, udp("127.0.0.9:40001"), Instant::now());
    let via = delivered.headers.top_via().expect("Via");
    assert_eq!(via.received(), Some("127.0.0.9"));
    assert_eq!(via.rport(), Some(Some(40001)));
}

#[test]
fn other_host_gets_received_and_sent_by_port() {
    let mut layer = layer();
    let start = Instant::now();
    let mut invite = invite("z9hG4bKr3");
    invite
        .headers
        .set("Via", "SIP/2.0/UDP pc33.example.com;branch=z9hG4bKr3");
    let (key, delivered) = receive(&mut layer, invite, udp("127.0.0.9:40002"), start);
    let via = delivered.headers.top_via().expect("Via");
    assert_eq!(via.received(), Some("127.0.0.9"));
    assert_eq!(via.rport(), None);
    layer.send_response(&key, Response::for_request(&delivered, 180, None), start);
    // No rport: the sent-by port, here the default 5060, at the received address.
    assert_eq!(transmits(&mut layer)[0].target, udp("127.0.0.9:5060"));
}

#[test]
fn matching_host_is_left_alone() {
    let mut layer = layer();
    let start = Instant::now();
    let mut invite = invite("z9hG4bKr4");
    invite
        .headers
        .set("Via", "SIP/2.0/UDP 127.0.0.9:5080;branch=z9hG4bKr4");
    let (key, delivered) = receive(&mut layer, invite, udp("127.0.0.9:40003"), start);
    let via = delivered.headers.top_via().expect("Via");
    assert_eq!(via.received(), None);
    layer.send_response(&key, Response::for_request(&delivered, 180, None), start);
    assert_eq!(transmits(&mut layer)[0].target, udp("127.0.0.9:5080"));
}

#[test]
fn peer_written_received_is_replaced() {
    let mut layer = layer();
    let mut invite = invite("z9hG4bKr5");
    invite.headers.set(
        "Via",
        "SIP/2.0/UDP 127.0.0.9:5080;received=127.0.0.66;branch=z9hG4bKr5",
    );
    let (_, delivered) = receive(&mut layer, invite, udp("127.0.0.9:5080"), Instant::now());
    assert_eq!(
        delivered.headers.top_via().expect("Via").received(),
        Some("127.0.0.9")
    );
}

#[test]
fn tcp_responses_use_the_connection() {
    let mut layer = layer();
    let start = Instant::now();
    let mut invite = invite("z9hG4bKr6");
    invite
        .headers
        .set("Via", "SIP/2.0/TCP 10.0.0.5:5060;branch=z9hG4bKr6;rport");
    let (key, delivered) = receive(&mut layer, invite, tcp("127.0.0.9:40004", 21), start);
    layer.send_response(&key, Response::for_request(&delivered, 180, None), start);
    assert_eq!(transmits(&mut layer)[0].target, tcp("127.0.0.9:40004", 21));
}

#[test]
fn missing_header_gets_stateless_400() {
    let mut layer = layer();
    let mut request = options("z9hG4bKv1");
    request.headers.remove("Call-ID");
    layer.handle_message(Message::Request(request), udp(CLIENT_ADDR), Instant::now());
    assert!(events(&mut layer).is_empty());
    assert_eq!(layer.len(), 0);
    let sent = transmits(&mut layer);
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0].target, udp(CLIENT_ADDR));
    let response = parsed_response(&sent[0]);
    assert_eq!(response.status, 400);
    assert_eq!(response.reason, "Missing Call-ID");
}

#[test]
fn cseq_method_mismatch_gets_400() {
    let mut layer = layer();
    let mut request = options("z9hG4bKv2");
    request.headers.set("CSeq", "1 INVITE");
    layer.handle_message(Message::Request(request), udp(CLIENT_ADDR), Instant::now());
    let sent = transmits(&mut layer);
    assert_eq!(sent.len(), 1);
    assert_eq!(parsed_response(&sent[0]).status, 400);
    assert_eq!(layer.len(), 0);
}

#[test]
fn invalid_request_without_via_is_dropped() {
    let mut layer = layer();
    for header in ["Via", "From", "To", "CSeq"] {
        let mut request = options("z9hG4bKv3");
        request.headers.remove(header);
        request.headers.remove("Via");
        layer.handle_message(Message::Request(request), udp(CLIENT_ADDR), Instant::now());
    }
    let mut ack = options("z9hG4bKv4");
    ack.method = Method::Ack;
    ack.headers.remove("From");
    layer.handle_message(Message::Request(ack), udp(CLIENT_ADDR), Instant::now());
    assert!(transmits(&mut layer).is_empty());
    assert!(events(&mut layer).is_empty());
    assert_eq!(layer.len(), 0);
}

#[test]
fn wire_request_missing_to_gets_400() {
    let mut layer = layer();
    let options = wire(
        "OPTIONS sip:1001@127.0.0.1 SIP/2.0
Via: SIP/2.0/UDP 127.0.0.1:5071;branch=z9hG4bKw1
From: <sip:alice@127.0.0.1>;tag=1
Call-ID: w1@127.0.0.1
CSeq: 1 OPTIONS
Content-Length: 0

",
    );
    layer.handle_message(options, udp(CLIENT_ADDR), Instant::now());
    let sent = transmits(&mut layer);
    assert_eq!(sent.len(), 1);
    let text = String::from_utf8_lossy(&sent[0].payload).into_owned();
    assert!(text.starts_with("SIP/2.0 400 Missing To\r\n"), "{text}");
}

#[test]
fn rfc2543_request_matches_without_cookie() {
    let mut layer = layer();
    let start = Instant::now();
    let old = |method: Method| {
        let mut request = request(method.clone(), "unused", CLIENT_ADDR, "old-1@127.0.0.1");
        request.headers.set("Via", "SIP/2.0/UDP 127.0.0.1:5071");
        request.headers.set("CSeq", format!("4 {method}"));
        request
    };
    let (key, request) = receive(&mut layer, old(Method::Invite), udp(CLIENT_ADDR), start);
    assert!(!key.branch().starts_with("z9hG4bK"));

    layer.handle_message(
        Message::Request(old(Method::Invite)),
        udp(CLIENT_ADDR),
        start + ms(500),
    );
    assert!(events(&mut layer).is_empty(), "retransmission absorbed");

    let busy = response(&request, 486);
    layer.send_response(&key, busy.clone(), start + ms(600));
    let mut ack = old(Method::Ack);
    ack.headers
        .set("To", busy.headers.get("To").unwrap_or_default().to_owned());
    layer.handle_message(Message::Request(ack), udp(CLIENT_ADDR), start + ms(700));
    assert!(events(&mut layer).is_empty(), "ACK matched the INVITE");
    assert_eq!(
        layer.poll_timeout(),
        Some(start + ms(700) + Duration::from_secs(5))
    );

    assert_eq!(layer.invite_for_cancel(&old(Method::Cancel)), Some(key));
}

#[test]
fn response_for_ended_transaction_is_dropped() {
    let mut layer = layer();
    let start = Instant::now();
    let (key, request) = receive(&mut layer, options("z9hG4bKe1"), tcp(CLIENT_ADDR, 5), start);
    layer.send_response(&key, response(&request, 200), start);
    transmits(&mut layer);
    layer.send_response(&key, response(&request, 500), start);
    assert!(transmits(&mut layer).is_empty());
}

#[test]
fn closed_connection_ends_server_transaction() {
    let mut layer = layer();
    let start = Instant::now();
    receive(&mut layer, invite("z9hG4bKe2"), tcp(CLIENT_ADDR, 8), start);
    layer.connection_closed(8);
    assert_eq!(layer.len(), 0);
    assert!(events(&mut layer).is_empty());
}

#[test]
fn stateless_response_keeps_no_state() {
    let mut layer = layer();
    let start = Instant::now();
    let register = || request(Method::Register, "z9hG4bKsl1", CLIENT_ADDR, "sl1@test");
    let (key, first) = receive(&mut layer, register(), udp(CLIENT_ADDR), start);
    layer.send_response_statelessly(&key, response(&first, 401), start);
    let sent = transmits(&mut layer);
    assert_eq!(sent.len(), 1);
    assert_eq!(parsed_response(&sent[0]).status, 401);
    assert_eq!(layer.len(), 0);
    assert_eq!(layer.poll_timeout(), None);

    // Kept for Timer J, the retransmission would get the stored 401 and
    // never reach the TU. Here the TU receives it and answers it again.
    let (again, _) = receive(&mut layer, register(), udp(CLIENT_ADDR), start + ms(500));
    assert_eq!(again, key);
    layer.send_response(&again, response(&first, 200), start + ms(500));
    assert_eq!(parsed_response(&transmits(&mut layer)[0]).status, 200);
    layer.handle_message(
        Message::Request(register()),
        udp(CLIENT_ADDR),
        start + ms(900),
    );
    assert!(events(&mut layer).is_empty());
    assert_eq!(parsed_response(&transmits(&mut layer)[0]).status, 200);
}

#[test]
fn stateless_invite_response_stays_stateful() {
    let mut layer = layer();
    let start = Instant::now();
    let (key, request) = receive(&mut layer, invite("z9hG4bKsl2"), udp(CLIENT_ADDR), start);
    layer.send_response_statelessly(&key, response(&request, 486), start);
    assert_eq!(parsed_response(&transmits(&mut layer)[0]).status, 486);
    // Timer G retransmits the 486 until the ACK, as for any INVITE.
    assert!(layer.poll_timeout().is_some());
    layer.handle_timeout(start + ms(500));
    assert_eq!(parsed_response(&transmits(&mut layer)[0]).status, 486);
}
