//! Client transactions: retransmission schedules, timeouts, ACK for non-2xx,
//! response matching.

use std::time::{Duration, Instant};

use sip_message::{Message, Method};

use super::*;
use crate::transaction::Side;

#[test]
fn invite_over_udp_retransmits_until_timer_b() {
    let mut layer = layer();
    let start = Instant::now();
    let key = layer.send_request(invite("z9hG4bKa1"), udp(SERVER_ADDR), start);
    assert_eq!(transmits(&mut layer).len(), 1);
    assert_eq!(key.side(), Side::Client);
    assert_eq!(key.method(), &Method::Invite);

    let (sent, raised) = run_timers(&mut layer, start, start + Duration::from_secs(40));

    // Timer A: T1 doubling without a cap, until Timer B at 64*T1.
    assert_eq!(secs_f(&sent), vec![0.5, 1.5, 3.5, 7.5, 15.5, 31.5]);
    assert_eq!(raised.len(), 1);
    assert_eq!(raised[0].0, Duration::from_secs(32));
    assert!(matches!(&raised[0].1, Event::Timeout { key: k } if *k == key));
    assert_eq!(layer.len(), 0);
}

#[test]
fn invite_over_tcp_never_retransmits() {
    let mut layer = layer();
    let start = Instant::now();
    layer.send_request(invite("z9hG4bKa2"), tcp(SERVER_ADDR, 7), start);
    let first = transmits(&mut layer);
    assert_eq!(first.len(), 1);
    assert_eq!(first[0].target.connection, Some(7));

    let (sent, raised) = run_timers(&mut layer, start, start + Duration::from_secs(40));
    assert!(sent.is_empty());
    assert_eq!(raised.len(), 1);
    assert_eq!(raised[0].0, Duration::from_secs(32));
    assert!(matches!(raised[0].1, Event::Timeout { .. }));
    assert_eq!(layer.len(), 0);
}

#[test]
fn non_invite_retransmissions_capped_at_t2() {
    let mut layer = layer();
    let start = Instant::now();
    layer.send_request(options("z9hG4bKb1"), udp(SERVER_ADDR), start);
    transmits(&mut layer);

    let (sent, raised) = run_timers(&mut layer, start, start + Duration::from_secs(40));

    // Timer E: 0.5, 1, 2, then T2 = 4 s; Timer F at 32 s.
    let expected = vec![0.5, 1.5, 3.5, 7.5, 11.5, 15.5, 19.5, 23.5, 27.5, 31.5];
    assert_eq!(secs_f(&sent), expected);
    assert_eq!(raised.len(), 1);
    assert_eq!(raised[0].0, Duration::from_secs(32));
    assert!(matches!(raised[0].1, Event::Timeout { .. }));
    assert_eq!(layer.len(), 0);
}

#[test]
fn non_invite_proceeding_retransmits_every_t2() {
    let mut layer = layer();
    let start = Instant::now();
    let request = options("z9hG4bKb2");
    let key = layer.send_request(request.clone(), udp(SERVER_ADDR), start);
    transmits(&mut layer);

    let trying = response(&request, 100);
    layer.handle_message(Message::Response(trying), udp(SERVER_ADDR), start + ms(100));
    let raised = events(&mut layer);
    assert!(
        matches!(&raised[..], [Event::Response { key: k, response }] if *k == key && response.status == 100)
    );

    let (sent, raised) = run_timers(&mut layer, start, start + Duration::from_secs(40));
    // Timer E was armed for 0.5 s before the 100 came; from then on it is T2.
    let expected = vec![0.5, 4.5, 8.5, 12.5, 16.5, 20.5, 24.5, 28.5];
    assert_eq!(secs_f(&sent), expected);
    assert_eq!(raised.len(), 1);
    assert!(matches!(raised[0].1, Event::Timeout { .. }));
    assert_eq!(layer.len(), 0);
}

#[test]
fn non_invite_final_absorbs_retransmissions_until_timer_k() {
    let mut layer = layer();
    let start = Instant::now();
    let request = options("z9hG4bKb3");
    let key = layer.send_request(request.clone(), udp(SERVER_ADDR), start);
    transmits(&mut layer);

    let ok = response(&request, 200);
    layer.handle_message(
        Message::Response(ok.clone()),
        udp(SERVER_ADDR),
        start + ms(50),
    );
    let raised = events(&mut layer);
    assert!(
        matches!(&raised[..], [Event::Response { key: k, response }] if *k == key && response.status == 200)
    );

    layer.handle_message(Message::Response(ok), udp(SERVER_ADDR), start + ms(60));
    assert!(events(&mut layer).is_empty());
    assert!(transmits(&mut layer).is_empty());
    assert_eq!(layer.len(), 1);

    // Timer K = T4 from the final response, no retransmissions in between.
    assert_eq!(
        layer.poll_timeout(),
        Some(start + ms(50) + Duration::from_secs(5))
    );
    let (sent, raised) = run_timers(&mut layer, start, start + Duration::from_secs(40));
    assert!(sent.is_empty());
    assert!(raised.is_empty());
    assert_eq!(layer.len(), 0);
}

#[test]
fn non_invite_over_tcp_ends_on_final_response() {
    let mut layer = layer();
    let start = Instant::now();
    let request = options("z9hG4bKb4");
    layer.send_request(request.clone(), tcp(SERVER_ADDR, 1), start);
    layer.handle_message(
        Message::Response(response(&request, 200)),
        tcp(SERVER_ADDR, 1),
        start,
    );
    assert_eq!(events(&mut layer).len(), 1);
    // Timer K is zero on a reliable transport.
    assert_eq!(layer.len(), 0);
}

#[test]
fn invite_provisional_starts_timer_c() {
    let mut layer = layer();
    let start = Instant::now();
    let request = invite("z9hG4bKa3");
    let key = layer.send_request(request.clone(), udp(SERVER_ADDR), start);
    transmits(&mut layer);

    let ringing = response(&request, 180);
    layer.handle_message(
        Message::Response(ringing),
        udp(SERVER_ADDR),
        start + ms(200),
    );
    assert_eq!(events(&mut layer).len(), 1);

    // Timer B does not apply in Proceeding, so the 32 s mark passes quietly.
    let (sent, raised) = run_timers(&mut layer, start, start + Duration::from_secs(100));
    assert!(sent.is_empty());
    assert!(raised.is_empty());
    assert_eq!(layer.len(), 1);

    let (_, raised) = run_timers(&mut layer, start, start + Duration::from_secs(400));
    assert_eq!(raised.len(), 1);
    assert_eq!(raised[0].0, ms(200) + Duration::from_secs(181));
    assert!(matches!(&raised[0].1, Event::Timeout { key: k } if *k == key));
    assert_eq!(layer.len(), 0);
}

#[test]
fn invite_non_2xx_builds_ack() {
    let mut layer = layer();
    let start = Instant::now();
    let mut request = invite("z9hG4bKa4");
    request.headers.push(
        "Route",
        "<sip:proxy1.example.com;lr>, <sip:proxy2.example.com;lr>",
    );
    request
        .headers
        .push("Contact", "<sip:caller@127.0.0.1:5071>");
    layer.send_request(request.clone(), udp(SERVER_ADDR), start);
    transmits(&mut layer);

    let busy = response(&request, 486);
    layer.handle_message(
        Message::Response(busy.clone()),
        udp(SERVER_ADDR),
        start + ms(100),
    );
    let raised = events(&mut layer);
    assert!(matches!(&raised[..], [Event::Response { response, .. }] if response.status == 486));

    let sent = transmits(&mut layer);
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0].target, udp(SERVER_ADDR));
    let ack = parsed_request(&sent[0]);
    assert_eq!(ack.method, Method::Ack);
    assert_eq!(ack.uri, request.uri);
    let vias = ack.headers.vias().expect("ACK Via");
    assert_eq!(vias.len(), 1);
    assert_eq!(vias[0].branch(), Some("z9hG4bKa4"));
    let routes = ack.headers.routes().expect("ACK Route");
    assert_eq!(routes.len(), 2);
    assert_eq!(ack.headers.call_id(), Some("call-1@127.0.0.1"));
    assert_eq!(ack.headers.from().expect("From").tag(), Some("from-tag-1"));
    assert_eq!(ack.headers.to().expect("To").tag(), Some("to-tag-9"));
    let cseq = ack.headers.cseq().expect("CSeq");
    assert_eq!(cseq.seq, 1);
    assert_eq!(cseq.method, Method::Ack);
    assert!(!ack.headers.contains("Contact"));

    // A retransmitted 486 gets the same ACK again and is not passed up.
    layer.handle_message(Message::Response(busy), udp(SERVER_ADDR), start + ms(600));
    assert!(events(&mut layer).is_empty());
    let again = transmits(&mut layer);
    assert_eq!(again.len(), 1);
    assert_eq!(again[0].payload, sent[0].payload);

    // Timer D: 32 s on UDP, with no retransmission of the INVITE.
    let (sent, raised) = run_timers(&mut layer, start, start + Duration::from_secs(31));
    assert!(sent.is_empty());
    assert!(raised.is_empty());
    assert_eq!(layer.len(), 1);
    assert_eq!(
        layer.poll_timeout(),
        Some(start + ms(100) + Duration::from_secs(32))
    );
    run_timers(&mut layer, start, start + Duration::from_secs(33));
    assert_eq!(layer.len(), 0);
}

#[test]
fn invite_non_2xx_over_tcp_ends_at_once() {
    let mut layer = layer();
    let start = Instant::now();
    let request = invite("z9hG4bKa5");
    layer.send_request(request.clone(), tcp(SERVER_ADDR, 3), start);
    transmits(&mut layer);
    layer.handle_message(
        Message::Response(response(&request, 603)),
        tcp(SERVER_ADDR, 3),
        start,
    );
    let ack = transmits(&mut layer);
    assert_eq!(ack.len(), 1);
    assert_eq!(ack[0].target.connection, Some(3));
    assert_eq!(events(&mut layer).len(), 1);
    // Timer D is zero on a reliable transport.
    assert_eq!(layer.len(), 0);
}

#[test]
fn invite_2xx_retransmissions_pass_up_until_timer_m() {
    let mut layer = layer();
    let start = Instant::now();
    let request = invite("z9hG4bKa6");
    let key = layer.send_request(request.clone(), udp(SERVER_ADDR), start);
    transmits(&mut layer);

    let ok = response(&request, 200);
    for offset in [100, 600, 1600] {
        layer.handle_message(
            Message::Response(ok.clone()),
            udp(SERVER_ADDR),
            start + ms(offset),
        );
        let raised = events(&mut layer);
        assert!(
            matches!(&raised[..], [Event::Response { key: k, response }] if *k == key && response.status == 200)
        );
        // The TU sends the ACK for a 2xx, not the transaction.
        assert!(transmits(&mut layer).is_empty());
    }

    // Timer M = 64*T1 from the first 2xx.
    assert_eq!(
        layer.poll_timeout(),
        Some(start + ms(100) + Duration::from_secs(32))
    );
    let (sent, raised) = run_timers(&mut layer, start, start + Duration::from_secs(40));
    assert!(sent.is_empty());
    assert!(raised.is_empty());
    assert_eq!(layer.len(), 0);

    layer.handle_message(
        Message::Response(ok),
        udp(SERVER_ADDR),
        start + Duration::from_secs(41),
    );
    assert!(matches!(
        &events(&mut layer)[..],
        [Event::StrayResponse { .. }]
    ));
}

#[test]
fn response_matches_on_cseq_method() {
    let mut layer = layer();
    let start = Instant::now();
    let request = invite("z9hG4bKa7");
    let invite_key = layer.send_request(request.clone(), udp(SERVER_ADDR), start);
    let mut cancel = request.clone();
    cancel.method = Method::Cancel;
    cancel.headers.set("CSeq", "1 CANCEL");
    let cancel_key = layer.send_request(cancel.clone(), udp(SERVER_ADDR), start + ms(10));
    assert_ne!(invite_key, cancel_key);
    assert_eq!(invite_key.branch(), cancel_key.branch());
    assert_eq!(layer.len(), 2);
    transmits(&mut layer);

    layer.handle_message(
        Message::Response(response(&cancel, 200)),
        udp(SERVER_ADDR),
        start + ms(50),
    );
    let raised = events(&mut layer);
    assert!(matches!(&raised[..], [Event::Response { key, .. }] if *key == cancel_key));

    layer.handle_message(
        Message::Response(response(&request, 487)),
        udp(SERVER_ADDR),
        start + ms(60),
    );
    let raised = events(&mut layer);
    assert!(
        matches!(&raised[..], [Event::Response { key, response }] if *key == invite_key && response.status == 487)
    );
}

#[test]
fn unknown_branch_is_stray() {
    let mut layer = layer();
    let start = Instant::now();
    layer.send_request(invite("z9hG4bKa8"), udp(SERVER_ADDR), start);
    let other = invite("z9hG4bKother");
    layer.handle_message(
        Message::Response(response(&other, 200)),
        udp(SERVER_ADDR),
        start,
    );
    let raised = events(&mut layer);
    assert!(
        matches!(&raised[..], [Event::StrayResponse { response, source }] if response.status == 200 && *source == udp(SERVER_ADDR))
    );
    assert_eq!(layer.len(), 1);
}

#[test]
fn request_without_branch_times_out_at_once() {
    let mut layer = layer();
    let mut request = options("unused");
    request.headers.set("Via", "SIP/2.0/UDP 127.0.0.1:5071");
    let key = layer.send_request(request, udp(SERVER_ADDR), Instant::now());
    assert!(transmits(&mut layer).is_empty());
    assert!(matches!(&events(&mut layer)[..], [Event::Timeout { key: k }] if *k == key));
    assert_eq!(layer.len(), 0);
}

#[test]
fn closed_connection_times_out_client() {
    let mut layer = layer();
    let start = Instant::now();
    let key = layer.send_request(invite("z9hG4bKa9"), tcp(SERVER_ADDR, 11), start);
    layer.send_request(options("z9hG4bKb9"), tcp(SERVER_ADDR, 12), start);
    layer.connection_closed(11);
    assert!(matches!(&events(&mut layer)[..], [Event::Timeout { key: k }] if *k == key));
    assert_eq!(layer.len(), 1);
}

#[test]
fn transport_failure_reports_transport_error() {
    let mut layer = layer();
    let start = Instant::now();
    let tls = |addr: &str| Target {
        transport: TransportKind::Tls,
        addr: addr.parse().unwrap(),
        connection: None,
    };
    let key = layer.send_request(invite("z9hG4bKa10"), tls(SERVER_ADDR), start);
    layer.send_request(options("z9hG4bKb10"), tls("127.0.0.1:5073"), start);
    let server: SocketAddr = SERVER_ADDR.parse().unwrap();
    layer.transport_failed(TransportKind::Tls, server);
    let reported = events(&mut layer);
    assert!(
        matches!(&reported[..], [Event::TransportError { key: k }] if *k == key),
        "{reported:?}"
    );
    assert_eq!(layer.len(), 1, "the request to the other address lives on");
}

#[test]
fn new_branch_has_magic_cookie() {
    let first = TransactionLayer::new_branch();
    let second = TransactionLayer::new_branch();
    assert!(first.starts_with("z9hG4bK"));
    assert!(first.len() > "z9hG4bK".len() + 16);
    assert_ne!(first, second);
}
