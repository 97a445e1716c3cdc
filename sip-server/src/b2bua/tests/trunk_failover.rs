//! Calls forwarded to a number through a trunk named by host: the servers
//! the driver resolved are tried in order, moving on after a transport
//! error, a timeout or 503 (RFC 3263 section 4.3).

use super::waiting::{take_playback, waiting_caller, waiting_config};
use super::*;
use crate::locate::{Destination, OutboundTarget};

const PRIMARY: &str = "192.0.2.51:5061";
const SECONDARY: &str = "192.0.2.52:5061";

fn destination(addr: &str) -> Destination {
    Destination {
        transport: TransportKind::Tls,
        addr: addr.parse().unwrap(),
        server_name: "carrier.example".to_owned(),
    }
}

/// Builds a harness whose trunk is `sips:carrier.example`, resolved to
/// PRIMARY then SECONDARY, with a waiting caller that overflows to a number.
fn resolved_harness() -> (Harness, String) {
    let mut config = waiting_config();
    config.queues[0].overflow = Some(acd::Destination::Number("+15550199".into()));
    config.trunks[0].outbound = Some(OutboundTarget::parse("sips:carrier.example").unwrap());
    let mut h = Harness::with_config(config);
    h.core.set_trunk_destinations(
        "carrier",
        vec![destination(PRIMARY), destination(SECONDARY)],
    );
    let (call, _) = waiting_caller(&mut h);
    take_playback(&mut h);
    (h, call)
}

fn invite_to(h: &mut Harness, to: &str) -> Option<(Target, Request)> {
    let addr: SocketAddr = to.parse().unwrap();
    let index = h.sent.iter().position(|(target, message)| {
        target.addr == addr && matches!(message, Message::Request(r) if r.method == Method::Invite)
    })?;
    match h.sent.remove(index) {
        (target, Message::Request(request)) => Some((target, request)),
        _ => unreachable!(),
    }
}

#[test]
fn first_server_gets_tls_invite_with_alias() {
    let (mut h, _) = resolved_harness();
    h.advance(Duration::from_secs(61));
    let (target, invite) = invite_to(&mut h, PRIMARY).expect("primary dialed");
    assert_eq!(target.transport, TransportKind::Tls);
    assert_eq!(target.connection, None);
    assert_eq!(invite.uri.to_string(), "sips:+15550199@carrier.example");
    let via = invite.headers.get("Via").unwrap().to_owned();
    assert!(via.starts_with("SIP/2.0/TLS "), "{via}");
    assert!(via.ends_with(";alias"), "{via}");
    assert!(
        invite_to(&mut h, SECONDARY).is_none(),
        "servers are tried one at a time"
    );
}

#[test]
fn unavailable_server_fails_over_to_next() {
    let (mut h, call) = resolved_harness();
    h.advance(Duration::from_secs(61));
    let (_, first) = invite_to(&mut h, PRIMARY).expect("primary dialed");
    h.receive(&agent_response(&first, 503, PRIMARY, None), PRIMARY);
    let (_, second) = invite_to(&mut h, SECONDARY).expect("secondary dialed after 503");
    assert_eq!(second.uri, first.uri);
    h.receive(
        &agent_response(&second, 200, SECONDARY, Some(AGENT_SDP)),
        SECONDARY,
    );
    h.advance(Duration::from_secs(10));
    h.receive(&caller_bye(&caller_tag(&h, &call)), CALLER);
    let record = h.finished_record();
    assert_eq!(record.disposition, cdr::Disposition::Answered);
    assert_eq!(record.forwarded_to.as_deref(), Some("+15550199"));
}

#[test]
fn transport_error_fails_over_to_next() {
    let (mut h, _) = resolved_harness();
    h.advance(Duration::from_secs(61));
    invite_to(&mut h, PRIMARY).expect("primary dialed");
    let primary: SocketAddr = PRIMARY.parse().unwrap();
    h.core.transport_failed(TransportKind::Tls, primary, h.now);
    h.collect();
    assert!(
        invite_to(&mut h, SECONDARY).is_some(),
        "secondary dialed after the connection failed"
    );
}

#[test]
fn timeout_fails_over_to_next() {
    let (mut h, _) = resolved_harness();
    h.advance(Duration::from_secs(61));
    invite_to(&mut h, PRIMARY).expect("primary dialed");
    // Timer B: 64 * T1 without any response.
    h.advance(Duration::from_secs(33));
    assert!(
        invite_to(&mut h, SECONDARY).is_some(),
        "secondary dialed after the timeout"
    );
}

#[test]
fn busy_server_does_not_fail_over() {
    let (mut h, _) = resolved_harness();
    h.advance(Duration::from_secs(61));
    let (_, first) = invite_to(&mut h, PRIMARY).expect("primary dialed");
    h.receive(&agent_response(&first, 486, PRIMARY, None), PRIMARY);
    assert!(invite_to(&mut h, SECONDARY).is_none());
    assert_eq!(
        take_playback(&mut h).last(),
        Some(&(vec![super::waiting::prompt("sorry-no-agent")], false))
    );
}

#[test]
fn last_server_failing_plays_the_apology() {
    let (mut h, _) = resolved_harness();
    h.advance(Duration::from_secs(61));
    let primary: SocketAddr = PRIMARY.parse().unwrap();
    let secondary: SocketAddr = SECONDARY.parse().unwrap();
    invite_to(&mut h, PRIMARY).expect("primary dialed");
    h.core.transport_failed(TransportKind::Tls, primary, h.now);
    h.collect();
    invite_to(&mut h, SECONDARY).expect("secondary dialed");
    h.core
        .transport_failed(TransportKind::Tls, secondary, h.now);
    h.collect();
    assert_eq!(
        take_playback(&mut h).last(),
        Some(&(vec![super::waiting::prompt("sorry-no-agent")], false))
    );
}

#[test]
fn unresolved_host_plays_the_apology() {
    let mut config = waiting_config();
    config.queues[0].overflow = Some(acd::Destination::Number("+15550199".into()));
    config.trunks[0].outbound = Some(OutboundTarget::parse("sips:carrier.example").unwrap());
    let mut h = Harness::with_config(config);
    waiting_caller(&mut h);
    take_playback(&mut h);
    h.advance(Duration::from_secs(61));
    assert!(
        !h.sent.iter().any(|(_, message)| matches!(
            message,
            Message::Request(r) if r.method == Method::Invite
        )),
        "nothing to dial before the host is resolved"
    );
    assert_eq!(
        take_playback(&mut h).last(),
        Some(&(vec![super::waiting::prompt("sorry-no-agent")], false))
    );
}

#[test]
fn reload_with_new_host_forgets_old_servers() {
    let (mut h, _) = resolved_harness();
    let mut config = waiting_config();
    config.queues[0].overflow = Some(acd::Destination::Number("+15550199".into()));
    config.trunks[0].outbound = Some(OutboundTarget::parse("sips:other-carrier.example").unwrap());
    h.core.reconfigure(config, h.now);
    h.collect();
    h.advance(Duration::from_secs(61));
    assert!(
        invite_to(&mut h, PRIMARY).is_none(),
        "the old host's server is not dialed"
    );
}

#[test]
fn reload_with_same_host_keeps_servers() {
    let (mut h, _) = resolved_harness();
    let mut config = waiting_config();
    config.queues[0].overflow = Some(acd::Destination::Number("+15550199".into()));
    config.trunks[0].outbound = Some(OutboundTarget::parse("sips:carrier.example").unwrap());
    h.core.reconfigure(config, h.now);
    h.collect();
    h.advance(Duration::from_secs(61));
    assert!(invite_to(&mut h, PRIMARY).is_some(), "primary still dialed");
}
