//! Feature codes kept from the other leg and recording pauses, over real
//! UDP sockets on 127.0.0.1. Each test uses its own port range; every wait
//! is bounded.

use std::net::{IpAddr, Ipv4Addr};
use std::time::{Duration, Instant};

use media::{Codec, Leg, MediaEvent, MediaSession, Relay, RelayConfig};
use rtp::telephone_event::{TelephoneEvent, event_to_digit};
use rtp::{PT_PCMU, RtpPacket, g711};
use tokio::net::UdpSocket;
use tokio::sync::mpsc;
use tokio::time::timeout;

const LOCALHOST: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);
const WAIT: Duration = Duration::from_secs(2);
const EVENT_PT: u8 = 101;

fn relay(first_port: u16) -> Relay {
    Relay::new(RelayConfig {
        bind_address: LOCALHOST,
        ports: first_port..=first_port + 7,
        threads: 1,
        spin: media::DEFAULT_SPIN,
        realtime_priority: media::DEFAULT_REALTIME_PRIORITY,
        coalesce: media::DEFAULT_COALESCE,
    })
    .expect("valid relay config")
}

async fn endpoint() -> UdpSocket {
    UdpSocket::bind((LOCALHOST, 0))
        .await
        .expect("bind endpoint")
}

fn datagram(payload_type: u8, sequence: u16, timestamp: u32, payload: &[u8]) -> Vec<u8> {
    let packet = RtpPacket {
        payload_type,
        marker: false,
        sequence,
        timestamp,
        ssrc: 0xA6E7,
        payload,
    };
    let mut out = Vec::new();
    packet.write(&mut out);
    out
}

/// Opens a session with both legs on PCMU and telephone-event 101 and the
/// agent watched for `*1`.
async fn session(first_port: u16, name: &str) -> (MediaSession, UdpSocket, UdpSocket) {
    let session = relay(first_port).open_session(name).await.expect("open");
    let (caller, agent) = (endpoint().await, endpoint().await);
    session.set_remote(Leg::Caller, caller.local_addr().expect("addr"));
    session.set_remote(Leg::Agent, agent.local_addr().expect("addr"));
    session.set_codecs(Leg::Caller, Codec::Pcmu, Some(EVENT_PT));
    session.set_codecs(Leg::Agent, Codec::Pcmu, Some(EVENT_PT));
    session
        .set_feature_code(Leg::Agent, Some("*1"))
        .expect("valid code");
    (session, caller, agent)
}

/// Sends one key as the agent: a start packet, an update and three final
/// packets, all with the key's start `timestamp`.
async fn press(agent: &UdpSocket, session: &MediaSession, key: char, timestamp: u32, first: u16) {
    let event = rtp::telephone_event::digit_to_event(key).expect("DTMF key");
    let steps = [
        (false, 400),
        (false, 800),
        (true, 800),
        (true, 800),
        (true, 800),
    ];
    for (offset, (end, duration)) in steps.into_iter().enumerate() {
        let payload = TelephoneEvent {
            event,
            end,
            volume: 10,
            duration,
        }
        .to_bytes();
        let packet = datagram(EVENT_PT, first + offset as u16, timestamp, &payload);
        agent
            .send_to(&packet, session.local_rtp_addr(Leg::Agent))
            .await
            .expect("send");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Keys of the telephone-events that reach `socket` within `window`, one
/// entry per event (start timestamp), in order of arrival.
async fn keys_received(socket: &UdpSocket, window: Duration) -> Vec<char> {
    let mut keys: Vec<(u32, char)> = Vec::new();
    let mut buffer = [0u8; 2048];
    let end = tokio::time::Instant::now() + window;
    while let Ok(Ok((length, _))) =
        tokio::time::timeout_at(end, socket.recv_from(&mut buffer)).await
    {
        let packet = RtpPacket::parse(&buffer[..length]).expect("valid RTP");
        if packet.payload_type != EVENT_PT {
            continue;
        }
        let event = TelephoneEvent::parse(packet.payload).expect("event payload");
        let key = event_to_digit(event.event).expect("DTMF key");
        if !keys
            .iter()
            .any(|(timestamp, _)| *timestamp == packet.timestamp)
        {
            keys.push((packet.timestamp, key));
        }
    }
    keys.into_iter().map(|(_, key)| key).collect()
}

async fn next_feature_code(events: &mut mpsc::Receiver<MediaEvent>) -> Option<(Leg, String)> {
    let deadline = tokio::time::Instant::now() + WAIT;
    while let Ok(Some(event)) = tokio::time::timeout_at(deadline, events.recv()).await {
        if let MediaEvent::FeatureCode { leg, code } = event {
            return Some((leg, code));
        }
    }
    None
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn feature_code_kept_from_caller() {
    let (session, caller, agent) = session(41_300, "code").await;
    let mut events = session.events();

    press(&agent, &session, '*', 1_000, 1).await;
    press(&agent, &session, '1', 3_000, 10).await;
    assert_eq!(
        next_feature_code(&mut events).await,
        Some((Leg::Agent, "*1".to_owned()))
    );
    assert_eq!(
        keys_received(&caller, Duration::from_millis(400)).await,
        Vec::<char>::new(),
        "no key of the code reaches the caller"
    );

    press(&agent, &session, '5', 5_000, 20).await;
    assert_eq!(
        keys_received(&caller, Duration::from_millis(400)).await,
        vec!['5'],
        "an ordinary key is relayed"
    );
    session.close().await.expect("close");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn broken_code_keys_reach_caller_in_order() {
    let (session, caller, agent) = session(41_310, "broken-code").await;
    let mut events = session.events();

    press(&agent, &session, '*', 1_000, 1).await;
    press(&agent, &session, '5', 3_000, 10).await;
    assert_eq!(
        keys_received(&caller, Duration::from_millis(800)).await,
        vec!['*', '5'],
        "the held star goes on before the key that broke the code"
    );
    assert_eq!(
        timeout(Duration::from_millis(200), next_feature_code(&mut events))
            .await
            .ok()
            .flatten(),
        None
    );

    // A star alone goes on once no key followed it for 2 s.
    press(&agent, &session, '*', 6_000, 20).await;
    assert_eq!(
        keys_received(&caller, Duration::from_millis(1_500)).await,
        Vec::<char>::new(),
        "held while the code may go on"
    );
    assert_eq!(
        keys_received(&caller, Duration::from_millis(1_500)).await,
        vec!['*'],
        "released after the timeout"
    );
    session.close().await.expect("close");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_feature_code_rejected() {
    let session = relay(41_320).open_session("bad-code").await.expect("open");
    for code in ["", "*x", "123456789"] {
        assert!(
            matches!(
                session.set_feature_code(Leg::Agent, Some(code)),
                Err(media::MediaError::InvalidFeatureCode { .. })
            ),
            "{code:?}"
        );
    }
    session.close().await.expect("close");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn paused_recording_is_silent_on_both_channels() {
    let folder = tempfile::tempdir().expect("temp dir");
    let path = folder.path().join("call.wav");
    let mixed = folder.path().join("call-mixed.wav");
    let (session, caller, agent) = session(41_330, "pause").await;
    let start = Instant::now();
    session
        .start_recording_with(
            path.clone(),
            Some(mixed.clone()),
            start,
            recordings::DEFAULT_JITTER_WINDOW,
        )
        .expect("record");

    // 1.2 s of audio from both sides, paused from packet 20 to packet 40.
    let payload = [0x90u8; 160];
    let mut paused_at = None;
    let mut resumed_at = None;
    let mut next = tokio::time::Instant::now();
    for index in 0..60u16 {
        if index == 20 {
            let now = Instant::now();
            session.set_recording_paused(true, now);
            paused_at = Some(now);
        }
        if index == 40 {
            let now = Instant::now();
            session.set_recording_paused(false, now);
            resumed_at = Some(now);
        }
        let packet = datagram(PT_PCMU, index, u32::from(index) * 160, &payload);
        for (socket, leg) in [(&caller, Leg::Caller), (&agent, Leg::Agent)] {
            socket
                .send_to(&packet, session.local_rtp_addr(leg))
                .await
                .expect("send");
        }
        next += Duration::from_millis(20);
        tokio::time::sleep_until(next).await;
    }
    let summary = session.close().await.expect("close").expect("recording");
    assert_eq!(summary.mixed_mono_path.as_deref(), Some(mixed.as_path()));

    let mut reader = hound::WavReader::open(&path).expect("readable WAV");
    let samples: Vec<i16> = reader
        .samples::<i16>()
        .map(|s| s.expect("sample"))
        .collect();
    let frames: Vec<(i16, i16)> = samples.chunks_exact(2).map(|p| (p[0], p[1])).collect();
    let mono: Vec<i16> = hound::WavReader::open(&mixed)
        .expect("readable mixed WAV")
        .samples::<i16>()
        .map(|s| s.expect("sample"))
        .collect();
    assert_eq!(mono.len(), frames.len(), "both files have the same length");

    // Frame positions of the pause and resume: sample 0 is `start`.
    let frame_of =
        |at: Instant| (at.saturating_duration_since(start).as_secs_f64() * 8000.0) as usize;
    let pause_frame = frame_of(paused_at.expect("paused"));
    let resume_frame = frame_of(resumed_at.expect("resumed"));
    let level = g711::ulaw_to_linear(0x90);
    assert!(
        frames[pause_frame..resume_frame]
            .iter()
            .all(|&frame| frame == (0, 0)),
        "silence from frame {pause_frame} to {resume_frame}"
    );
    assert!(mono[pause_frame..resume_frame].iter().all(|&s| s == 0));
    // Audio flows on both sides of the pause. The 20 ms margin covers the
    // timer's lateness between the pause and the next packet.
    let margin = 160;
    let before = &frames[pause_frame - 800 - margin..pause_frame - margin];
    assert!(
        before.iter().all(|&frame| frame == (level, level)),
        "audio before the pause"
    );
    let after = &frames[resume_frame + margin..resume_frame + margin + 800];
    assert!(
        after.iter().all(|&frame| frame == (level, level)),
        "audio after the resume"
    );
}
