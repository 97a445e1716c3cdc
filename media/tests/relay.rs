//! Relay over real UDP sockets on 127.0.0.1. Each test uses its own port
//! range so tests can run in parallel; every wait is bounded by a timeout.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant};

use media::{Leg, MediaError, MediaSession, Relay, RelayConfig};
use rtp::{PT_PCMU, RtpPacket, g711};
use tokio::net::UdpSocket;
use tokio::time::timeout;

const LOCALHOST: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);
const WAIT: Duration = Duration::from_secs(2);

fn relay(first_port: u16, port_count: u16) -> Relay {
    let ports = first_port..=first_port + port_count - 1;
    Relay::new(RelayConfig {
        bind_address: LOCALHOST,
        ports,
        threads: 1,
        // Spinning, unlike the default, so that these tests cover both.
        spin: Duration::from_micros(50),
        realtime_priority: 0,
        coalesce: std::time::Duration::ZERO,
    })
    .expect("valid relay config")
}

async fn endpoint() -> UdpSocket {
    UdpSocket::bind((LOCALHOST, 0))
        .await
        .expect("bind endpoint")
}

fn rtp_datagram(ssrc: u32, sequence: u16, code: u8) -> Vec<u8> {
    let payload = [code; 160];
    let packet = RtpPacket {
        payload_type: PT_PCMU,
        marker: false,
        sequence,
        timestamp: u32::from(sequence) * 160,
        ssrc,
        payload: &payload,
    };
    let mut out = Vec::new();
    packet.write(&mut out);
    out
}

async fn receive(socket: &UdpSocket) -> (Vec<u8>, SocketAddr) {
    let mut buffer = [0u8; 2048];
    let (length, source) = timeout(WAIT, socket.recv_from(&mut buffer))
        .await
        .expect("datagram within the timeout")
        .expect("receive");
    (buffer[..length].to_vec(), source)
}

async fn send(socket: &UdpSocket, datagram: &[u8], session: &MediaSession, leg: Leg) {
    socket
        .send_to(datagram, session.local_rtp_addr(leg))
        .await
        .expect("send");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn relays_both_directions() {
    let relay = relay(41_000, 8);
    let session = relay.open_session("both-directions").await.expect("open");
    let (caller, agent) = (endpoint().await, endpoint().await);
    session.set_remote(Leg::Agent, agent.local_addr().expect("addr"));

    let from_caller = rtp_datagram(1, 1, 0x90);
    send(&caller, &from_caller, &session, Leg::Caller).await;
    let (received, source) = receive(&agent).await;
    assert_eq!(received, from_caller);
    assert_eq!(
        source,
        session.local_rtp_addr(Leg::Agent),
        "sent from the agent leg's port"
    );

    // The caller leg latched the caller's source without any set_remote.
    let from_agent = rtp_datagram(2, 1, 0x10);
    send(&agent, &from_agent, &session, Leg::Agent).await;
    let (received, source) = receive(&caller).await;
    assert_eq!(received, from_agent);
    assert_eq!(source, session.local_rtp_addr(Leg::Caller));

    let caller_stats = session.stats(Leg::Caller);
    assert_eq!(caller_stats.packets_received, 1);
    assert_eq!(caller_stats.packets_sent, 1);
    assert_eq!(caller_stats.bytes_received, from_caller.len() as u64);
    let agent_stats = session.stats(Leg::Agent);
    assert_eq!(agent_stats.packets_sent, 1);
    assert_eq!(agent_stats.bytes_sent, from_caller.len() as u64);
    assert_eq!(
        session
            .close()
            .await
            .expect("close")
            .map(|summary| summary.frames),
        None
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn learned_source_holds_until_reset() {
    let relay = relay(41_020, 8);
    let session = relay.open_session("latching").await.expect("open");
    let (caller, agent, moved_caller) = (endpoint().await, endpoint().await, endpoint().await);
    // A stale SDP port: the source learned from the same IP overrides it.
    session.set_remote(Leg::Caller, SocketAddr::from((LOCALHOST, 9)));
    session.set_remote(Leg::Agent, agent.local_addr().expect("addr"));

    send(&caller, &rtp_datagram(1, 1, 0x90), &session, Leg::Caller).await;
    receive(&agent).await;
    send(&agent, &rtp_datagram(2, 1, 0x10), &session, Leg::Agent).await;
    receive(&caller).await;

    // Another port, even of the same host, does not take the stream over.
    for sequence in 2..5 {
        send(
            &moved_caller,
            &rtp_datagram(1, sequence, 0x90),
            &session,
            Leg::Caller,
        )
        .await;
    }
    send(&caller, &rtp_datagram(1, 5, 0x91), &session, Leg::Caller).await;
    assert_eq!(receive(&agent).await.0, rtp_datagram(1, 5, 0x91));
    let from_agent = rtp_datagram(2, 2, 0x10);
    send(&agent, &from_agent, &session, Leg::Agent).await;
    assert_eq!(receive(&caller).await.0, from_agent);
    assert_eq!(session.stats(Leg::Caller).rejected_source, 3);

    // After reset_leg the next packet from the SDP address's IP is learned.
    session.reset_leg(Leg::Caller);
    send(
        &moved_caller,
        &rtp_datagram(1, 6, 0x90),
        &session,
        Leg::Caller,
    )
    .await;
    receive(&agent).await;
    send(&agent, &rtp_datagram(2, 3, 0x10), &session, Leg::Agent).await;
    let (received, _) = receive(&moved_caller).await;
    assert_eq!(received, rtp_datagram(2, 3, 0x10));
    session.close().await.expect("close");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_dropped_and_rtcp_forwarded() {
    let relay = relay(41_040, 8);
    let session = relay.open_session("rtcp").await.expect("open");
    let (caller, agent_rtp, agent_rtcp) = (endpoint().await, endpoint().await, endpoint().await);
    let agent_addr = agent_rtp.local_addr().expect("addr");
    session.set_remote(Leg::Agent, agent_addr);

    send(&caller, b"not RTP", &session, Leg::Caller).await;
    let mut rtcp_port = session.local_rtp_addr(Leg::Caller);
    rtcp_port.set_port(rtcp_port.port() + 1);
    caller
        .send_to(&rtp_datagram(1, 1, 0x90), rtcp_port)
        .await
        .expect("send");
    // An empty receiver report.
    let receiver_report = [0x80, 201, 0, 1, 0, 0, 0, 7];
    caller
        .send_to(&receiver_report, rtcp_port)
        .await
        .expect("send");

    let deadline = Instant::now() + WAIT;
    while session.stats(Leg::Caller).packets_received < 3 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let stats = session.stats(Leg::Caller);
    assert_eq!(stats.packets_received, 3);
    assert_eq!(
        stats.invalid_packets, 2,
        "non-RTP on the RTP port and RTP on the RTCP port"
    );

    // The caller's receiver report went out towards the agent's RTP port + 1.
    let mut agent_relay_rtcp = session.local_rtp_addr(Leg::Agent);
    agent_relay_rtcp.set_port(agent_relay_rtcp.port() + 1);
    assert_eq!(session.stats(Leg::Agent).packets_sent, 1);

    // The agent's RTCP comes back to the caller's latched RTCP source.
    agent_rtcp
        .send_to(&receiver_report, agent_relay_rtcp)
        .await
        .expect("send");
    let (received, source) = receive(&caller).await;
    assert_eq!(received, receiver_report);
    assert_eq!(source, rtcp_port);
    session.close().await.expect("close");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn recording_holds_both_channels() {
    let folder = tempfile::tempdir().expect("temp dir");
    let path = folder.path().join("calls/recorded.wav");
    let relay = relay(41_060, 8);
    let session = relay.open_session("recorded").await.expect("open");
    let (caller, agent) = (endpoint().await, endpoint().await);
    session.set_remote(Leg::Caller, caller.local_addr().expect("addr"));
    session.set_remote(Leg::Agent, agent.local_addr().expect("addr"));

    let before_start = Instant::now();
    session
        .start_recording(path.clone())
        .expect("start recording");
    let after_start = Instant::now();
    assert!(matches!(
        session.start_recording(path.clone()),
        Err(MediaError::AlreadyRecording { .. })
    ));

    // 50 packets each way at the real 20 ms pace: one second of talk.
    let mut pacing = tokio::time::interval(Duration::from_millis(20));
    for sequence in 0..50u16 {
        pacing.tick().await;
        send(
            &caller,
            &rtp_datagram(11, sequence, 0x90),
            &session,
            Leg::Caller,
        )
        .await;
        send(
            &agent,
            &rtp_datagram(22, sequence, 0x20),
            &session,
            Leg::Agent,
        )
        .await;
    }
    tokio::time::sleep(Duration::from_millis(100)).await;
    let before_close = Instant::now();
    let summary = session.close().await.expect("close").expect("a recording");
    let after_close = Instant::now();

    let shortest = before_close.duration_since(after_start).as_secs_f64() - 0.020;
    let longest = after_close.duration_since(before_start).as_secs_f64() + 0.020;
    assert!(
        summary.duration_seconds >= shortest,
        "{} < {shortest}",
        summary.duration_seconds
    );
    assert!(
        summary.duration_seconds <= longest,
        "{} > {longest}",
        summary.duration_seconds
    );

    let mut reader = hound::WavReader::open(&path).expect("readable WAV");
    assert_eq!(reader.spec().channels, 2);
    assert_eq!(reader.spec().sample_rate, 8000);
    assert_eq!(u64::from(reader.duration()), summary.frames);
    let samples: Vec<i16> = reader
        .samples::<i16>()
        .map(|sample| sample.expect("sample"))
        .collect();
    let left: Vec<i16> = samples.iter().step_by(2).copied().collect();
    let right: Vec<i16> = samples.iter().skip(1).step_by(2).copied().collect();

    let caller_level = g711::ulaw_to_linear(0x90);
    let agent_level = g711::ulaw_to_linear(0x20);
    assert!(
        left.iter()
            .all(|&sample| sample == 0 || sample == caller_level),
        "left holds only the caller"
    );
    assert!(
        right
            .iter()
            .all(|&sample| sample == 0 || sample == agent_level),
        "right holds only the agent"
    );
    let caller_samples = left
        .iter()
        .filter(|&&sample| sample == caller_level)
        .count();
    let agent_samples = right
        .iter()
        .filter(|&&sample| sample == agent_level)
        .count();
    assert_eq!(caller_samples, 8000, "all 50 caller packets recorded");
    assert_eq!(agent_samples, 8000, "all 50 agent packets recorded");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ports_freed_after_close() {
    // 8 ports: two port pairs per session, so two sessions at a time.
    let relay = relay(41_080, 8);
    for round in 0..20 {
        let first = relay.open_session("first").await.expect("open first");
        let second = relay.open_session("second").await.expect("open second");
        let third = relay.open_session("third").await;
        assert!(
            matches!(
                third,
                Err(MediaError::NoFreePorts {
                    start: 41_080,
                    end: 41_087
                })
            ),
            "round {round}"
        );
        assert_eq!(relay.used_port_pairs(), 4);
        let port = first.local_rtp_addr(Leg::Caller).port();
        assert_eq!(port % 2, 0, "RTP on an even port");
        first.close().await.expect("close first");
        second.close().await.expect("close second");
        assert_eq!(relay.used_port_pairs(), 0, "round {round}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ports_refused_by_os_skipped() {
    let relay = relay(41_100, 12);
    let blocker = std::net::UdpSocket::bind((LOCALHOST, 41_101)).expect("bind blocker");
    let session = relay.open_session("skip").await.expect("open");
    let ports = [
        session.local_rtp_addr(Leg::Caller).port(),
        session.local_rtp_addr(Leg::Agent).port(),
    ];
    assert!(
        !ports.contains(&41_100),
        "pair with its RTCP port taken is skipped: {ports:?}"
    );
    session.close().await.expect("close");
    drop(blocker);
}

#[test]
fn invalid_port_range_rejected() {
    let config = RelayConfig {
        bind_address: LOCALHOST,
        ports: 20_001..=20_010,
        threads: 1,
        spin: media::DEFAULT_SPIN,
        realtime_priority: media::DEFAULT_REALTIME_PRIORITY,
        coalesce: media::DEFAULT_COALESCE,
    };
    assert!(matches!(
        Relay::new(config),
        Err(MediaError::InvalidPortRange { start: 20_001, .. })
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropped_sessions_finish_recordings() {
    let relay = Relay::new(RelayConfig {
        bind_address: LOCALHOST,
        ports: 41_120..=41_135,
        threads: 2,
        spin: std::time::Duration::ZERO,
        realtime_priority: 0,
        coalesce: std::time::Duration::ZERO,
    })
    .expect("valid relay config");
    let folder = tempfile::tempdir().expect("temp dir");
    let (caller, agent) = (endpoint().await, endpoint().await);
    let mut paths = Vec::new();
    let mut sessions = Vec::new();
    for index in 0..2 {
        let session = relay
            .open_session(&format!("dropped-{index}"))
            .await
            .expect("open");
        session.set_remote(Leg::Agent, agent.local_addr().expect("addr"));
        let path = folder.path().join(format!("{index}.wav"));
        session
            .start_recording(path.clone())
            .expect("start recording");
        for sequence in 0..5 {
            send(
                &caller,
                &rtp_datagram(7, sequence, 0x90),
                &session,
                Leg::Caller,
            )
            .await;
            receive(&agent).await;
        }
        paths.push(path);
        sessions.push(session);
    }
    // Neither the sessions nor the relay are closed: dropping them must
    // still end each recording with a header that matches its data.
    drop(sessions);
    drop(relay);
    for path in paths {
        let deadline = Instant::now() + WAIT;
        let finalized = loop {
            let size = std::fs::metadata(&path).map(|meta| meta.len()).unwrap_or(0);
            let header_frames = hound::WavReader::open(&path)
                .map(|reader| u64::from(reader.duration()))
                .unwrap_or(0);
            // 44 header bytes, then 4 bytes per stereo 16-bit frame.
            if header_frames > 0 && 44 + 4 * header_frames == size {
                break true;
            }
            if Instant::now() > deadline {
                break false;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        };
        assert!(finalized, "{} was not finalized", path.display());
    }
}
