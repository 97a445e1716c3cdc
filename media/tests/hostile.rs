//! A hostile host against the relay over real UDP sockets: attackers send
//! from 127.0.0.2 to 127.0.0.9, which are loopback addresses too. Each test
//! uses its own port range; every wait is bounded by a timeout.
//!
//! To show that a datagram was dropped without sleeping, a test sends it,
//! then a valid packet from the real peer to the same port: the relay
//! handles one socket's datagrams in order, so when the valid one comes
//! out, the dropped one was handled and would have come out first.

use std::io::ErrorKind;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant};

use media::{Leg, MediaSession, Relay, RelayConfig};
use rtp::{PT_PCMA, PT_PCMU, RtpPacket};
use tokio::net::UdpSocket;
use tokio::time::timeout;

const LOCALHOST: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);
const ATTACKER: IpAddr = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 9));
const WAIT: Duration = Duration::from_secs(2);
/// An empty RTCP sender report (RFC 3550 section 6.4.1) from SSRC 66.
const SENDER_REPORT: [u8; 28] = [
    0x80, 200, 0, 6, 0, 0, 0, 66, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
];

fn relay(first_port: u16, port_count: u16) -> Relay {
    Relay::new(RelayConfig {
        bind_address: LOCALHOST,
        ports: first_port..=first_port + port_count - 1,
        threads: 1,
        spin: media::DEFAULT_SPIN,
        realtime_priority: media::DEFAULT_REALTIME_PRIORITY,
        coalesce: media::DEFAULT_COALESCE,
    })
    .expect("valid relay config")
}

async fn endpoint_on(ip: IpAddr) -> UdpSocket {
    UdpSocket::bind((ip, 0)).await.expect("bind endpoint")
}

fn address(socket: &UdpSocket) -> SocketAddr {
    socket.local_addr().expect("local address")
}

fn rtp_with(payload_type: u8, ssrc: u32, sequence: u16, payload: &[u8]) -> Vec<u8> {
    let packet = RtpPacket {
        payload_type,
        marker: false,
        sequence,
        timestamp: u32::from(sequence) * 160,
        ssrc,
        payload,
    };
    let mut out = Vec::new();
    packet.write(&mut out);
    out
}

fn pcmu(ssrc: u32, sequence: u16, code: u8) -> Vec<u8> {
    rtp_with(PT_PCMU, ssrc, sequence, &[code; 160])
}

async fn send(socket: &UdpSocket, datagram: &[u8], session: &MediaSession, leg: Leg) {
    socket
        .send_to(datagram, session.local_rtp_addr(leg))
        .await
        .expect("send");
}

async fn receive(socket: &UdpSocket) -> Vec<u8> {
    let mut buffer = vec![0u8; 65_536];
    let (length, _) = timeout(WAIT, socket.recv_from(&mut buffer))
        .await
        .expect("datagram within the timeout")
        .expect("receive");
    buffer.truncate(length);
    buffer
}

/// Payload byte of a relayed PCMU packet, which tells the senders apart.
fn code(datagram: &[u8]) -> Option<u8> {
    RtpPacket::parse(datagram)
        .ok()
        .and_then(|packet| packet.payload.first().copied())
}

/// Asserts that nothing is waiting on `socket`. Loopback delivers a
/// datagram during the send call, so anything the relay sent before the
/// test's last received datagram is already queued.
fn assert_nothing_received(socket: &UdpSocket, who: &str) {
    let mut buffer = [0u8; 2048];
    match socket.try_recv_from(&mut buffer) {
        Err(error) if error.kind() == ErrorKind::WouldBlock => {}
        other => panic!("{who} received something: {other:?}"),
    }
}

/// Opens a session whose agent leg knows its peer, and has the agent send
/// one packet so the agent leg learns it.
async fn session_with_agent(relay: &Relay, call_id: &str) -> (MediaSession, UdpSocket) {
    let session = relay.open_session(call_id).await.expect("open");
    let agent = endpoint_on(LOCALHOST).await;
    session.set_remote(Leg::Agent, address(&agent));
    (session, agent)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hijack_before_learning_is_rejected() {
    let relay = relay(42_000, 8);
    let (session, agent) = session_with_agent(&relay, "hijack-before").await;
    let caller = endpoint_on(LOCALHOST).await;
    let attacker = endpoint_on(ATTACKER).await;
    session.set_remote(Leg::Caller, address(&caller));

    // The attacker is first on the caller leg, on RTP and RTCP ports.
    send(&attacker, &pcmu(66, 1, 0xAA), &session, Leg::Caller).await;
    let mut rtcp_port = session.local_rtp_addr(Leg::Caller);
    rtcp_port.set_port(rtcp_port.port() + 1);
    attacker
        .send_to(&SENDER_REPORT, rtcp_port)
        .await
        .expect("send RTCP");
    send(&caller, &pcmu(1, 1, 0x11), &session, Leg::Caller).await;
    assert_eq!(
        code(&receive(&agent).await),
        Some(0x11),
        "caller's, not the attacker's"
    );

    send(&agent, &pcmu(2, 1, 0x22), &session, Leg::Agent).await;
    assert_eq!(code(&receive(&caller).await), Some(0x22));
    assert_nothing_received(&attacker, "the attacker");

    // The RTCP port is another socket, which the task may read after the
    // RTP port: wait for its count.
    let deadline = Instant::now() + WAIT;
    while session.stats(Leg::Caller).rejected_source < 2 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let stats = session.stats(Leg::Caller);
    assert_eq!(stats.rejected_source, 2, "{stats:?}");
    assert_eq!(
        stats.rtp_packets_received, 1,
        "only the caller's audio counts"
    );
    session.close().await.expect("close");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hijack_after_learning_is_rejected() {
    let relay = relay(42_010, 8);
    let (session, agent) = session_with_agent(&relay, "hijack-after").await;
    // No SDP address for the caller: the first source is learned.
    let caller = endpoint_on(LOCALHOST).await;
    let same_host = endpoint_on(LOCALHOST).await;
    let attackers = [
        endpoint_on(ATTACKER).await,
        endpoint_on(IpAddr::V4(Ipv4Addr::new(127, 0, 0, 2))).await,
    ];
    send(&caller, &pcmu(1, 1, 0x11), &session, Leg::Caller).await;
    assert_eq!(code(&receive(&agent).await), Some(0x11));

    // Many valid packets in a row, which used to move the latch.
    for sequence in 2..12 {
        for attacker in attackers.iter().chain([&same_host]) {
            send(attacker, &pcmu(66, sequence, 0xAA), &session, Leg::Caller).await;
        }
    }
    send(&caller, &pcmu(1, 2, 0x12), &session, Leg::Caller).await;
    assert_eq!(code(&receive(&agent).await), Some(0x12));
    send(&agent, &pcmu(2, 1, 0x22), &session, Leg::Agent).await;
    assert_eq!(code(&receive(&caller).await), Some(0x22));
    for attacker in attackers.iter().chain([&same_host]) {
        assert_nothing_received(attacker, "an attacker");
    }

    let stats = session.stats(Leg::Caller);
    assert_eq!(stats.rejected_source, 30, "{stats:?}");
    assert_eq!(stats.rtp_packets_received, 2);
    session.close().await.expect("close");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn phone_behind_nat_is_learned_from_any_source() {
    let relay = relay(42_020, 8);
    let (session, agent) = session_with_agent(&relay, "nat").await;
    // The SDP has the phone's private address; its packets come from the
    // NAT's address, here 127.0.0.1.
    session.set_remote(Leg::Caller, SocketAddr::from(([192, 168, 1, 10], 4000)));
    let caller = endpoint_on(LOCALHOST).await;
    let attacker = endpoint_on(ATTACKER).await;

    send(&caller, &pcmu(1, 1, 0x11), &session, Leg::Caller).await;
    assert_eq!(code(&receive(&agent).await), Some(0x11));
    send(&attacker, &pcmu(66, 1, 0xAA), &session, Leg::Caller).await;
    send(&agent, &pcmu(2, 1, 0x22), &session, Leg::Agent).await;
    assert_eq!(
        code(&receive(&caller).await),
        Some(0x22),
        "sent to the NAT address"
    );
    assert_nothing_received(&attacker, "the attacker");
    assert_eq!(session.stats(Leg::Caller).rejected_source, 1);
    session.close().await.expect("close");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn public_sdp_address_with_another_port_is_learned() {
    let relay = relay(42_030, 8);
    let (session, agent) = session_with_agent(&relay, "sdp-port").await;
    let caller = endpoint_on(LOCALHOST).await;
    // The SDP port is stale (a NAT rewrote it); the IP matches.
    session.set_remote(Leg::Caller, SocketAddr::from((LOCALHOST, 9)));

    send(&caller, &pcmu(1, 1, 0x11), &session, Leg::Caller).await;
    assert_eq!(code(&receive(&agent).await), Some(0x11));
    send(&agent, &pcmu(2, 1, 0x22), &session, Leg::Agent).await;
    assert_eq!(code(&receive(&caller).await), Some(0x22));
    session.close().await.expect("close");
}

/// Gives the relay task time to apply a control message. The task may be
/// in the middle of a poll that already looked at its control queue. A
/// datagram sent right after `set_remote` or `reset_leg` would then be
/// handled under the old state.
async fn settle() {
    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
}
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn new_remote_or_reset_leg_learns_again() {
    let relay = relay(42_040, 8);
    let (session, agent) = session_with_agent(&relay, "relearn").await;
    let old_phone = endpoint_on(LOCALHOST).await;
    let new_phone = endpoint_on(IpAddr::V4(Ipv4Addr::new(127, 0, 0, 3))).await;
    session.set_remote(Leg::Caller, address(&old_phone));
    send(&old_phone, &pcmu(1, 1, 0x11), &session, Leg::Caller).await;
    assert_eq!(code(&receive(&agent).await), Some(0x11));

    // A re-INVITE moves the call to another phone.
    session.set_remote(Leg::Caller, address(&new_phone));
    settle().await;
    send(&old_phone, &pcmu(1, 2, 0x12), &session, Leg::Caller).await;
    send(&new_phone, &pcmu(3, 1, 0x31), &session, Leg::Caller).await;
    assert_eq!(
        code(&receive(&agent).await),
        Some(0x31),
        "old phone refused"
    );
    send(&agent, &pcmu(2, 1, 0x22), &session, Leg::Agent).await;
    assert_eq!(code(&receive(&new_phone).await), Some(0x22));
    assert_eq!(session.stats(Leg::Caller).rejected_source, 1);

    // The same address again is a refresh: the learned source stays.
    session.set_remote(Leg::Caller, address(&new_phone));
    settle().await;
    let moved_port = endpoint_on(IpAddr::V4(Ipv4Addr::new(127, 0, 0, 3))).await;
    send(&moved_port, &pcmu(3, 2, 0x32), &session, Leg::Caller).await;
    send(&new_phone, &pcmu(3, 3, 0x33), &session, Leg::Caller).await;
    assert_eq!(code(&receive(&agent).await), Some(0x33));
    assert_eq!(session.stats(Leg::Caller).rejected_source, 2);

    // reset_leg forgets it: another port of the SDP address is learned.
    session.reset_leg(Leg::Caller);
    settle().await;
    send(&moved_port, &pcmu(3, 4, 0x34), &session, Leg::Caller).await;
    assert_eq!(code(&receive(&agent).await), Some(0x34));
    send(&agent, &pcmu(2, 2, 0x23), &session, Leg::Agent).await;
    assert_eq!(code(&receive(&moved_port).await), Some(0x23));
    // The exact address of the SDP takes over from another port of its
    // IP, as a new phone does after a transfer. The other port is then
    // refused.
    send(&new_phone, &pcmu(3, 5, 0x35), &session, Leg::Caller).await;
    assert_eq!(code(&receive(&agent).await), Some(0x35));
    send(&moved_port, &pcmu(3, 6, 0x36), &session, Leg::Caller).await;
    send(&new_phone, &pcmu(3, 7, 0x37), &session, Leg::Caller).await;
    assert_eq!(code(&receive(&agent).await), Some(0x37));
    assert_eq!(session.stats(Leg::Caller).rejected_source, 3);
    session.close().await.expect("close");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ports_are_random_even_and_freed() {
    let (first, pairs) = (42_100u16, 100u16);
    let relay = relay(first, 2 * pairs);
    let mut sessions = Vec::new();
    let mut ports = Vec::new();
    for call in 0..10 {
        let session = relay
            .open_session(&format!("random-{call}"))
            .await
            .expect("open");
        for leg in [Leg::Caller, Leg::Agent] {
            ports.push(session.local_rtp_addr(leg).port());
        }
        sessions.push(session);
    }
    assert!(ports.iter().all(|port| port % 2 == 0), "{ports:?}");
    assert!(
        ports
            .iter()
            .all(|port| (first..first + 2 * pairs).contains(port)),
        "{ports:?}"
    );
    let in_order: Vec<u16> = (0..20).map(|pair| first + 2 * pair).collect();
    assert_ne!(ports, in_order, "handed out in order");
    let mut distinct = ports.clone();
    distinct.sort_unstable();
    distinct.dedup();
    assert_eq!(distinct.len(), 20, "{ports:?}");
    // With 20 of 100 pairs taken at random, the lowest 20 are all taken
    // with a chance of about 1 in 5 * 10^20.
    assert_ne!(distinct, in_order, "only the lowest pairs used");
    // Both ports of each pair are held.
    for port in &ports {
        assert!(std::net::UdpSocket::bind((LOCALHOST, *port)).is_err());
        assert!(std::net::UdpSocket::bind((LOCALHOST, *port + 1)).is_err());
    }

    assert_eq!(relay.used_port_pairs(), 20);
    for session in sessions {
        session.close().await.expect("close");
    }
    assert_eq!(relay.used_port_pairs(), 0);
    // The relay keeps one leg bound ahead of need per 64 pairs of its
    // range, so its spare thread may have taken one of the freed pairs
    // again. Every other pair is free, both ports.
    let still_bound: Vec<u16> = ports
        .iter()
        .copied()
        .filter(|port| {
            std::net::UdpSocket::bind((LOCALHOST, *port)).is_err()
                || std::net::UdpSocket::bind((LOCALHOST, *port + 1)).is_err()
        })
        .collect();
    assert!(still_bound.len() <= 1, "not freed: {still_bound:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn payload_types_not_negotiated_are_dropped() {
    let relay = relay(42_400, 8);
    let (session, agent) = session_with_agent(&relay, "payload-types").await;
    let caller = endpoint_on(LOCALHOST).await;
    session.set_remote(Leg::Caller, address(&caller));
    let audio = [0x55; 160];

    // Until set: 0, 8, 9 and 96-127 pass, comfort noise (13) does not.
    send(&caller, &rtp_with(13, 1, 1, &[0x40]), &session, Leg::Caller).await;
    send(&caller, &rtp_with(127, 1, 2, &audio), &session, Leg::Caller).await;
    assert_eq!(
        RtpPacket::parse(&receive(&agent).await).map(|p| p.payload_type),
        Ok(127)
    );
    assert_eq!(session.stats(Leg::Caller).rejected_payload_type, 1);

    session.set_payload_types(Leg::Caller, &[PT_PCMU, 101]);
    for (sequence, payload_type) in [(3, 127), (4, PT_PCMA), (5, 96)] {
        send(
            &caller,
            &rtp_with(payload_type, 1, sequence, &audio),
            &session,
            Leg::Caller,
        )
        .await;
    }
    let event = [1, 0x0A, 0, 160];
    send(&caller, &rtp_with(101, 1, 6, &event), &session, Leg::Caller).await;
    send(
        &caller,
        &rtp_with(PT_PCMU, 1, 7, &audio),
        &session,
        Leg::Caller,
    )
    .await;
    let kinds = [receive(&agent).await, receive(&agent).await]
        .map(|datagram| RtpPacket::parse(&datagram).map(|p| p.payload_type));
    assert_eq!(kinds, [Ok(101), Ok(PT_PCMU)]);
    let stats = session.stats(Leg::Caller);
    assert_eq!(stats.rejected_payload_type, 4, "{stats:?}");
    assert_eq!(stats.rejected_source, 0);
    session.close().await.expect("close");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_datagrams_are_dropped() {
    let relay = relay(42_410, 8);
    let (session, agent) = session_with_agent(&relay, "oversized").await;
    let caller = endpoint_on(LOCALHOST).await;
    session.set_remote(Leg::Caller, address(&caller));

    // 12 bytes of header: 1488 of payload is exactly 1500 bytes.
    let largest = rtp_with(PT_PCMU, 1, 1, &[0x11; 1488]);
    assert_eq!(largest.len(), 1500);
    send(&caller, &largest, &session, Leg::Caller).await;
    assert_eq!(receive(&agent).await.len(), 1500);

    send(
        &caller,
        &rtp_with(PT_PCMU, 1, 2, &[0xAA; 1489]),
        &session,
        Leg::Caller,
    )
    .await;
    send(
        &caller,
        &rtp_with(PT_PCMU, 1, 3, &[0xAA; 60_000]),
        &session,
        Leg::Caller,
    )
    .await;
    send(&caller, &pcmu(1, 4, 0x14), &session, Leg::Caller).await;
    assert_eq!(code(&receive(&agent).await), Some(0x14));
    let stats = session.stats(Leg::Caller);
    assert_eq!(stats.oversized_packets, 2, "{stats:?}");
    assert_eq!(stats.rtp_packets_received, 2);
    session.close().await.expect("close");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn last_packet_time_follows_accepted_rtp() {
    let relay = relay(42_420, 8);
    let (session, agent) = session_with_agent(&relay, "last-packet").await;
    let caller = endpoint_on(LOCALHOST).await;
    let attacker = endpoint_on(ATTACKER).await;
    session.set_remote(Leg::Caller, address(&caller));
    assert_eq!(session.stats(Leg::Caller).last_packet_at, None);
    assert_eq!(session.stats(Leg::Agent).last_packet_at, None);

    let before = Instant::now();
    send(&caller, &pcmu(1, 1, 0x11), &session, Leg::Caller).await;
    receive(&agent).await;
    let after = Instant::now();
    let first = session
        .stats(Leg::Caller)
        .last_packet_at
        .expect("set by the caller's packet");
    assert!(before <= first && first <= after);
    assert_eq!(
        session.stats(Leg::Agent).last_packet_at,
        None,
        "agent sent nothing"
    );

    // Dropped datagrams do not count as media.
    send(&attacker, &pcmu(66, 1, 0xAA), &session, Leg::Caller).await;
    send(&caller, &rtp_with(13, 1, 2, &[0x40]), &session, Leg::Caller).await;
    // RTCP multiplexed on the RTP port is relayed but is not media either.
    send(&caller, &SENDER_REPORT, &session, Leg::Caller).await;
    assert_eq!(receive(&agent).await, SENDER_REPORT);
    let stats = session.stats(Leg::Caller);
    assert_eq!((stats.rejected_source, stats.rejected_payload_type), (1, 1));
    assert_eq!(stats.last_packet_at, Some(first));

    send(&agent, &pcmu(2, 1, 0x22), &session, Leg::Agent).await;
    receive(&caller).await;
    let agent_at = session.stats(Leg::Agent).last_packet_at;
    assert!(agent_at.is_some_and(|at| at >= first), "{agent_at:?}");

    send(&caller, &pcmu(1, 3, 0x13), &session, Leg::Caller).await;
    receive(&agent).await;
    let latest = session.stats(Leg::Caller).last_packet_at;
    assert!(
        latest.is_some_and(|at| at > first),
        "{latest:?} after {first:?}"
    );
    session.close().await.expect("close");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stun_binding_requests_dropped_quietly() {
    let relay = relay(42_430, 8);
    let (session, agent) = session_with_agent(&relay, "stun").await;
    let caller = endpoint_on(LOCALHOST).await;
    let stun_sender = endpoint_on(LOCALHOST).await;
    // The SDP port is stale, so the caller leg learns its source from the
    // first datagram it accepts.
    session.set_remote(Leg::Caller, SocketAddr::from((LOCALHOST, 9)));
    let binding_request: [u8; 20] = [
        0x00, 0x01, 0x00, 0x00, 0x21, 0x12, 0xA4, 0x42, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12,
    ];

    send(&stun_sender, &binding_request, &session, Leg::Caller).await;
    let mut rtcp_port = session.local_rtp_addr(Leg::Caller);
    rtcp_port.set_port(rtcp_port.port() + 1);
    stun_sender
        .send_to(&binding_request, rtcp_port)
        .await
        .expect("send");
    send(&caller, &pcmu(1, 1, 0x11), &session, Leg::Caller).await;

    assert_eq!(code(&receive(&agent).await), Some(0x11));
    assert_nothing_received(&agent, "the agent");
    send(&agent, &pcmu(2, 1, 0x22), &session, Leg::Agent).await;
    assert_eq!(
        code(&receive(&caller).await),
        Some(0x22),
        "the caller's source is learned from its RTP, not from STUN"
    );
    let stats = session.stats(Leg::Caller);
    assert_eq!(stats.stun_packets, 2, "{stats:?}");
    assert_eq!(stats.invalid_packets, 0, "{stats:?}");
    assert_eq!(stats.rejected_source, 0, "{stats:?}");
    session.close().await.expect("close");
}
