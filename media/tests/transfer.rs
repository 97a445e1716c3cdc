//! A transfer as the relay sees it: the agent side switches to another
//! phone while the caller keeps one RTP stream and the call keeps one
//! recording. Real UDP sockets on 127.0.0.1; every wait is bounded.

use std::net::{IpAddr, Ipv4Addr};
use std::time::Duration;

use media::{Leg, MediaSession, Relay, RelayConfig};
use rtp::{PT_PCMU, RtpPacket, g711};
use tokio::net::UdpSocket;
use tokio::time::timeout;

const LOCALHOST: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);
const WAIT: Duration = Duration::from_secs(2);

async fn endpoint() -> UdpSocket {
    UdpSocket::bind((LOCALHOST, 0))
        .await
        .expect("bind endpoint")
}

fn audio(ssrc: u32, sequence: u16, timestamp: u32, code: u8) -> Vec<u8> {
    let payload = [code; 160];
    let packet = RtpPacket {
        payload_type: PT_PCMU,
        marker: false,
        sequence,
        timestamp,
        ssrc,
        payload: &payload,
    };
    let mut out = Vec::new();
    packet.write(&mut out);
    out
}

async fn send(socket: &UdpSocket, datagram: &[u8], session: &MediaSession, leg: Leg) {
    socket
        .send_to(datagram, session.local_rtp_addr(leg))
        .await
        .expect("send");
}

/// Marker, sequence, timestamp and SSRC of the next datagram `socket`
/// receives.
async fn next_header(socket: &UdpSocket) -> (bool, u16, u32, u32) {
    let mut buffer = [0u8; 2048];
    let (length, _) = timeout(WAIT, socket.recv_from(&mut buffer))
        .await
        .expect("datagram within the timeout")
        .expect("receive");
    let packet = RtpPacket::parse(&buffer[..length]).expect("valid RTP");
    (
        packet.marker,
        packet.sequence,
        packet.timestamp,
        packet.ssrc,
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn new_agent_phone_continues_caller_stream() {
    let folder = tempfile::tempdir().expect("temp dir");
    let path = folder.path().join("transferred.wav");
    let relay = Relay::new(RelayConfig {
        bind_address: LOCALHOST,
        ports: 42_500..=42_507,
        threads: 1,
        spin: media::DEFAULT_SPIN,
        realtime_priority: media::DEFAULT_REALTIME_PRIORITY,
        coalesce: media::DEFAULT_COALESCE,
    })
    .expect("valid relay config");
    let session = relay.open_session("transfer").await.expect("open");
    let (caller, first_agent, second_agent) =
        (endpoint().await, endpoint().await, endpoint().await);
    session.set_remote(Leg::Caller, caller.local_addr().expect("addr"));
    session.set_remote(Leg::Agent, first_agent.local_addr().expect("addr"));
    session
        .start_recording(path.clone())
        .expect("start recording");

    // The first agent talks: SSRC 9, sequence 100 on, 20 ms apart.
    let mut pacing = tokio::time::interval(Duration::from_millis(20));
    for index in 0..10u16 {
        pacing.tick().await;
        let datagram = audio(9, 100 + index, 16_000 + u32::from(index) * 160, 0x20);
        send(&first_agent, &datagram, &session, Leg::Agent).await;
    }
    let mut before = Vec::new();
    for _ in 0..10 {
        before.push(next_header(&caller).await);
    }
    assert_eq!(
        before[0],
        (false, 100, 16_000, 9),
        "first source passes unchanged"
    );
    let last_before = before[9];
    assert_eq!(last_before.1, 109);

    // The transfer: the B2BUA resets the agent side and points it at the
    // new phone, which numbers its packets its own way.
    session.reset_leg(Leg::Agent);
    session.set_remote(Leg::Agent, second_agent.local_addr().expect("addr"));
    tokio::time::sleep(Duration::from_millis(100)).await;
    // A new interval, so the missed ticks of the pause do not come as a
    // burst that the recorder would place past the end of the call.
    let mut pacing = tokio::time::interval(Duration::from_millis(20));
    for index in 0..10u16 {
        pacing.tick().await;
        let datagram = audio(77, 5_000 + index, 900_000 + u32::from(index) * 160, 0x30);
        send(&second_agent, &datagram, &session, Leg::Agent).await;
    }
    let mut after = Vec::new();
    for _ in 0..10 {
        after.push(next_header(&caller).await);
    }
    let first_after = after[0];
    assert_eq!(first_after.3, 9, "the caller keeps the first SSRC");
    assert_eq!(first_after.1, 110, "sequence numbers go on without a gap");
    assert!(
        first_after.0,
        "marker bit on the first packet of the new phone"
    );
    let advance = first_after.2.wrapping_sub(last_before.2);
    // At least the 100 ms pause (800 units) passed; well under a second.
    assert!(
        (800..8_000).contains(&advance),
        "timestamp advanced by {advance}"
    );
    for pair in after.windows(2) {
        assert_eq!(pair[1].1, pair[0].1.wrapping_add(1));
        assert_eq!(pair[1].2.wrapping_sub(pair[0].2), 160);
        assert_eq!(pair[1].3, 9);
        assert!(!pair[1].0);
    }

    // The first phone, still sending from its old port, is not heard.
    send(
        &first_agent,
        &audio(9, 110, 17_600, 0x20),
        &session,
        Leg::Agent,
    )
    .await;
    send(
        &second_agent,
        &audio(77, 5_010, 901_600, 0x30),
        &session,
        Leg::Agent,
    )
    .await;
    let next = next_header(&caller).await;
    assert_eq!(
        next.1, 120,
        "only the new phone's packet reaches the caller"
    );

    // The recording ends at the close, so the last packet's 20 ms must
    // have passed by then.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let summary = session.close().await.expect("close").expect("a recording");
    let mut reader = hound::WavReader::open(&path).expect("readable WAV");
    assert_eq!(u64::from(reader.duration()), summary.frames);
    let right: Vec<i16> = reader
        .samples::<i16>()
        .map(|sample| sample.expect("sample"))
        .skip(1)
        .step_by(2)
        .collect();
    let first_level = g711::ulaw_to_linear(0x20);
    let second_level = g711::ulaw_to_linear(0x30);
    let first_at = right.iter().position(|&s| s == first_level);
    let second_at = right.iter().position(|&s| s == second_level);
    let last_first = right.iter().rposition(|&s| s == first_level);
    assert!(first_at.is_some(), "the first agent is in the recording");
    assert!(
        second_at.is_some(),
        "the second agent is in the same recording"
    );
    assert!(
        last_first < second_at,
        "the agents follow each other in order"
    );
    assert_eq!(
        right.iter().filter(|&&s| s == second_level).count(),
        11 * 160,
        "every packet of the new phone is recorded"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn new_phone_on_same_host_takes_over() {
    let relay = Relay::new(RelayConfig {
        bind_address: LOCALHOST,
        ports: 42_510..=42_517,
        threads: 1,
        spin: media::DEFAULT_SPIN,
        realtime_priority: media::DEFAULT_REALTIME_PRIORITY,
        coalesce: media::DEFAULT_COALESCE,
    })
    .expect("valid relay config");
    let session = relay.open_session("transfer-race").await.expect("open");
    let (caller, first_agent, second_agent) =
        (endpoint().await, endpoint().await, endpoint().await);
    session.set_remote(Leg::Caller, caller.local_addr().expect("addr"));
    session.set_remote(Leg::Agent, first_agent.local_addr().expect("addr"));
    send(
        &first_agent,
        &audio(9, 100, 16_000, 0x20),
        &session,
        Leg::Agent,
    )
    .await;
    assert_eq!(next_header(&caller).await.1, 100);

    session.reset_leg(Leg::Agent);
    session.set_remote(Leg::Agent, second_agent.local_addr().expect("addr"));
    tokio::time::sleep(Duration::from_millis(50)).await;
    // A packet of the old phone was still in flight and comes first: it is
    // from the SDP's IP address, so the relay learns it.
    send(
        &first_agent,
        &audio(9, 101, 16_160, 0x20),
        &session,
        Leg::Agent,
    )
    .await;
    assert_eq!(next_header(&caller).await.1, 101);

    // The new phone sends from the exact address its SDP names and takes
    // the leg over; the old phone is dropped from then on.
    send(
        &second_agent,
        &audio(77, 5_000, 900_000, 0x30),
        &session,
        Leg::Agent,
    )
    .await;
    let switched = next_header(&caller).await;
    assert_eq!((switched.1, switched.3), (102, 9));
    assert!(switched.0, "marker on the new phone's first packet");
    send(
        &first_agent,
        &audio(9, 102, 16_320, 0x20),
        &session,
        Leg::Agent,
    )
    .await;
    send(
        &second_agent,
        &audio(77, 5_001, 900_160, 0x30),
        &session,
        Leg::Agent,
    )
    .await;
    let next = next_header(&caller).await;
    assert_eq!(next.1, 103, "the old phone's packet was dropped");
    assert!(!next.0);
    let stats = session.stats(Leg::Agent);
    assert_eq!(stats.rejected_source, 1, "{stats:?}");
    session.close().await.expect("close");
}
