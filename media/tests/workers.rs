//! The relay in worker processes, over real UDP sockets on 127.0.0.1. The
//! workers are this test binary started again with only
//! `relay_worker_process` selected, which serves the link on its standard
//! input. Each test uses its own port range; every wait is bounded.

use std::net::{IpAddr, Ipv4Addr};
use std::os::fd::AsFd;
use std::sync::Arc;
use std::time::{Duration, Instant};

use media::{
    Codec, Leg, MediaError, MediaEvent, MediaSession, PlaybackEnd, Relay, RelayConfig,
    RelayProcesses,
};
use rtp::telephone_event::TelephoneEvent;
use rtp::{PT_PCMU, RtpPacket};
use tokio::net::UdpSocket;
use tokio::sync::mpsc;
use tokio::time::timeout;

const LOCALHOST: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);
const WAIT: Duration = Duration::from_secs(3);

/// Not a test of its own: the body of the worker processes that the tests
/// start. Run any other way, its standard input is no socket and it
/// returns at once.
#[test]
fn relay_worker_process() {
    use nix::sys::socket::{SockType, getsockopt, sockopt};
    let Ok(stdin) = std::io::stdin().as_fd().try_clone_to_owned() else {
        return;
    };
    if getsockopt(&stdin, sockopt::SockType) != Ok(SockType::SeqPacket) {
        return;
    }
    media::serve_worker(stdin).expect("the worker serves until the link closes");
}

fn relay(first_port: u16, pairs: u16, workers: usize) -> Relay {
    let config = RelayConfig {
        bind_address: LOCALHOST,
        ports: first_port..=first_port + pairs * 2 - 1,
        threads: 1,
        spin: media::DEFAULT_SPIN,
        realtime_priority: 0,
        coalesce: media::DEFAULT_COALESCE,
    };
    let processes = RelayProcesses {
        count: workers,
        program: std::env::current_exe().expect("test binary path"),
        args: [
            "relay_worker_process",
            "--exact",
            "--quiet",
            "--test-threads=1",
        ]
        .map(Into::into)
        .to_vec(),
        arg0: None,
    };
    Relay::with_processes(config, processes).expect("workers start")
}

async fn endpoint() -> UdpSocket {
    UdpSocket::bind((LOCALHOST, 0))
        .await
        .expect("bind endpoint")
}

fn datagram(payload_type: u8, ssrc: u32, sequence: u16, timestamp: u32, payload: &[u8]) -> Vec<u8> {
    let packet = RtpPacket {
        payload_type,
        marker: false,
        sequence,
        timestamp,
        ssrc,
        payload,
    };
    let mut out = Vec::new();
    packet.write(&mut out);
    out
}

fn audio(ssrc: u32, sequence: u16, code: u8) -> Vec<u8> {
    datagram(
        PT_PCMU,
        ssrc,
        sequence,
        u32::from(sequence) * 160,
        &[code; 160],
    )
}

fn key_five(sequence: u16, end: bool, duration: u16) -> Vec<u8> {
    let payload = TelephoneEvent {
        event: 5,
        end,
        volume: 10,
        duration,
    }
    .to_bytes();
    datagram(101, 7, sequence, 8_000, &payload)
}

async fn receive(socket: &UdpSocket) -> Vec<u8> {
    let mut buffer = [0u8; 2048];
    let (length, _) = timeout(WAIT, socket.recv_from(&mut buffer))
        .await
        .expect("datagram within the timeout")
        .expect("receive");
    buffer[..length].to_vec()
}

async fn send(socket: &UdpSocket, datagram: &[u8], session: &MediaSession, leg: Leg) {
    socket
        .send_to(datagram, session.local_rtp_addr(leg))
        .await
        .expect("send");
}

/// Control messages reach a worker's relay thread through the link, two
/// thread hand-offs longer than a datagram sent now takes. Gives them time
/// before a test sends packets that depend on them.
async fn settle() {
    tokio::time::sleep(Duration::from_millis(300)).await;
}

async fn next_event(events: &mut mpsc::Receiver<MediaEvent>) -> MediaEvent {
    timeout(WAIT, events.recv())
        .await
        .expect("event within the timeout")
        .expect("session still open")
}

/// Audio both ways, a recording, a key and the figures, all through a
/// worker; the figures arrive within about a second of the packets.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn relays_records_and_reports_through_a_worker() {
    let folder = tempfile::tempdir().expect("temp dir");
    let relay = relay(47_000, 8, 2);
    assert_eq!(relay.worker_pids().len(), 2);
    let session = relay.open_session("through-worker").await.expect("open");
    let mut events = session.events();
    let (caller, agent) = (endpoint().await, endpoint().await);
    session.set_remote(Leg::Caller, caller.local_addr().expect("addr"));
    session.set_remote(Leg::Agent, agent.local_addr().expect("addr"));
    session.set_codecs(Leg::Caller, Codec::Pcmu, Some(101));
    session.set_codecs(Leg::Agent, Codec::Pcmu, Some(101));
    let path = folder.path().join("call.wav");
    session
        .start_recording(path.clone())
        .expect("recording starts");
    settle().await;

    const PACKETS: u16 = 25;
    for sequence in 1..=PACKETS {
        let from_caller = audio(1, sequence, 0x90);
        send(&caller, &from_caller, &session, Leg::Caller).await;
        assert_eq!(receive(&agent).await, from_caller);
        let from_agent = audio(2, sequence, 0x10);
        send(&agent, &from_agent, &session, Leg::Agent).await;
        assert_eq!(receive(&caller).await, from_agent);
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    for (sequence, end, duration) in [(30, false, 400), (31, true, 800), (32, true, 800)] {
        send(
            &caller,
            &key_five(sequence, end, duration),
            &session,
            Leg::Caller,
        )
        .await;
        receive(&agent).await;
    }
    let MediaEvent::Dtmf { leg, digit } = next_event(&mut events).await else {
        panic!("expected a key");
    };
    assert_eq!((leg, digit.digit), (Leg::Caller, '5'));

    let deadline = Instant::now() + WAIT;
    while session.stats(Leg::Caller).rtp_packets_received < u64::from(PACKETS) {
        assert!(Instant::now() < deadline, "figures not reported");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let last = session.stats(Leg::Agent).last_packet_at.expect("a packet");
    assert!(last.elapsed() < WAIT, "last packet time carried over");
    // The relay threads add their delays every 100 ms, so the report after
    // the figures may be the first to carry them.
    while relay.delays().count == 0 {
        assert!(Instant::now() < deadline + WAIT, "delays not reported");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    let (outcome, [caller_stats, agent_stats]) = session.close_with_stats().await;
    let summary = outcome.expect("close").expect("a recording");
    assert_eq!(summary.path, path);
    assert!(summary.duration_seconds > 0.4, "{summary:?}");
    assert_eq!(caller_stats.packets_received, u64::from(PACKETS) + 3);
    assert_eq!(agent_stats.packets_received, u64::from(PACKETS));
    assert_eq!(agent_stats.packets_sent, u64::from(PACKETS) + 3);
    let reader = hound::WavReader::open(&path).expect("a complete WAV");
    assert_eq!(reader.spec().channels, 2);
    assert_eq!(u64::from(reader.duration()), summary.frames);
}

/// A prompt travels to the worker once and plays from there, twice.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn loaded_prompt_plays_from_a_worker() {
    let relay = relay(47_020, 4, 1);
    let session = relay.open_session("prompt").await.expect("open");
    let mut events = session.events();
    let caller = endpoint().await;
    session.set_remote(Leg::Caller, caller.local_addr().expect("addr"));
    settle().await;
    // 40,160 samples (5.02 s) span three chunks of the link.
    let prompt: Arc<[i16]> = (0..40_160).map(|index| (index % 200) as i16).collect();
    for _ in 0..2 {
        session
            .play_loaded(Leg::Caller, vec![Arc::clone(&prompt)], false, false)
            .expect("play");
        let first = receive(&caller).await;
        assert_eq!(RtpPacket::parse(&first).expect("RTP").payload.len(), 160);
        session.stop_playback(Leg::Caller);
        assert_eq!(
            next_event(&mut events).await,
            MediaEvent::PlaybackEnded {
                leg: Leg::Caller,
                reason: PlaybackEnd::Stopped
            }
        );
        // Packets already sent before the stop.
        while timeout(Duration::from_millis(100), caller.recv_from(&mut [0; 2048]))
            .await
            .is_ok()
        {}
    }
    session.close().await.expect("close");
}

/// A worker that dies ends its sessions with an error, and the next call
/// gets a new worker.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dead_worker_ends_its_sessions_and_is_replaced() {
    let relay = relay(47_040, 4, 1);
    let session = relay.open_session("doomed").await.expect("open");
    let [pid] = relay.worker_pids()[..] else {
        panic!("one worker");
    };
    let killed = std::process::Command::new("kill")
        .args(["-KILL", &pid.to_string()])
        .status()
        .expect("kill runs");
    assert!(killed.success());
    let outcome = timeout(WAIT, session.close()).await.expect("close returns");
    assert!(
        matches!(outcome, Err(MediaError::Worker { .. })),
        "{outcome:?}"
    );

    let session = relay
        .open_session("next")
        .await
        .expect("open after the death");
    assert_ne!(relay.worker_pids(), [pid], "a new worker");
    assert_eq!(relay.worker_exits(), 1);
    let (caller, agent) = (endpoint().await, endpoint().await);
    session.set_remote(Leg::Agent, agent.local_addr().expect("addr"));
    settle().await;
    let packet = audio(3, 1, 0x55);
    send(&caller, &packet, &session, Leg::Caller).await;
    assert_eq!(receive(&agent).await, packet);
    session.close().await.expect("close");
}

/// A port held by another program makes the worker refuse that pair, and
/// the relay tries another one, as in its own threads.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn port_in_use_is_skipped_by_a_worker() {
    let first = 47_060;
    let _squatter = std::net::UdpSocket::bind((LOCALHOST, first)).expect("hold a port");
    let relay = relay(first, 3, 1);
    for round in 0..4 {
        let session = relay.open_session("skip").await.expect("open");
        for leg in [Leg::Caller, Leg::Agent] {
            assert_ne!(session.local_rtp_addr(leg).port(), first, "round {round}");
        }
        session.close().await.expect("close");
    }
    // Both free pairs are in use now, so a second session finds none.
    let session = relay.open_session("skip").await.expect("open");
    let second = relay.open_session("none left").await;
    assert!(second.is_err(), "only two pairs can bind");
    session.close().await.expect("close");
}

/// An open dropped before the worker replied closes its session there, so
/// the ports come back; in the PBX's own threads an open never waits.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropped_open_frees_its_ports() {
    use std::future::Future;
    // Room for one session only.
    let relay = relay(47_080, 2, 1);
    let mut opening = Box::pin(relay.open_session("dropped"));
    let waker = std::task::Waker::noop();
    let first_poll = opening
        .as_mut()
        .poll(&mut std::task::Context::from_waker(waker));
    assert!(
        first_poll.is_pending(),
        "a worker's open waits for its reply"
    );
    drop(opening);

    let deadline = Instant::now() + WAIT;
    let session = loop {
        match relay.open_session("after").await {
            Ok(session) => break session,
            Err(error) => {
                assert!(Instant::now() < deadline, "ports not freed: {error}");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    };
    session.close().await.expect("close");
}

/// A recording that cannot be created fails where it starts, as in the
/// PBX's own threads, and a later start may try again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unwritable_recording_fails_at_start() {
    let folder = tempfile::tempdir().expect("temp dir");
    let blocker = folder.path().join("file");
    std::fs::write(&blocker, b"not a folder").expect("write file");
    let relay = relay(47_090, 4, 1);
    let session = relay.open_session("unwritable").await.expect("open");
    let refused = session.start_recording(blocker.join("call.wav"));
    assert!(
        matches!(&refused, Err(MediaError::Recording { call_id, .. }) if call_id == "unwritable"),
        "{refused:?}"
    );
    session
        .start_recording(folder.path().join("call.wav"))
        .expect("a writable path records");
    let summary = session.close().await.expect("close");
    assert!(summary.is_some(), "the second start recorded");
}

/// A worker that stops replying costs the open 5 s, not the call: the
/// relay stops it and opens the session in the other worker.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hung_worker_is_stopped_and_the_open_retried() {
    let relay = relay(47_100, 8, 2);
    let pids = relay.worker_pids();
    // Both are idle, so the first is picked first.
    let stopped = std::process::Command::new("kill")
        .args(["-STOP", &pids[0].to_string()])
        .status()
        .expect("kill runs");
    assert!(stopped.success());
    let session = timeout(Duration::from_secs(10), relay.open_session("retried"))
        .await
        .expect("the open returns")
        .expect("opened in the other worker");
    let (caller, agent) = (endpoint().await, endpoint().await);
    session.set_remote(Leg::Agent, agent.local_addr().expect("addr"));
    settle().await;
    // RTP is a stream, so the packet is sent again until it arrives. A
    // session that relays nothing still fails after WAIT.
    // TODO: find why one CI run on a loaded host got nothing within 3 s
    // of a single send, with the binary done in 3.5 s (no 5 s retry).
    let packet = audio(4, 1, 0x33);
    let deadline = Instant::now() + WAIT;
    let relayed = loop {
        send(&caller, &packet, &session, Leg::Caller).await;
        let mut buffer = [0u8; 2048];
        if let Ok(received) =
            timeout(Duration::from_millis(200), agent.recv_from(&mut buffer)).await
        {
            let (length, _) = received.expect("receive");
            break buffer[..length].to_vec();
        }
        assert!(
            Instant::now() < deadline,
            "no datagram relayed within {WAIT:?}"
        );
    };
    assert_eq!(relayed, packet);
    session.close().await.expect("close");
    let deadline = Instant::now() + WAIT;
    while std::path::Path::new(&format!("/proc/{}", pids[0])).exists() {
        assert!(Instant::now() < deadline, "the hung worker still runs");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
