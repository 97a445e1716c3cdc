//! DTMF, playback, transcoding and statistics over real UDP sockets on
//! 127.0.0.1. Each test uses its own port range; every wait is bounded.

use std::net::{IpAddr, Ipv4Addr};
use std::path::Path;
use std::time::Duration;

use media::{Codec, Leg, MediaEvent, MediaSession, PlayRequest, PlaybackEnd, Relay, RelayConfig};
use rtp::telephone_event::TelephoneEvent;
use rtp::{PT_PCMA, PT_PCMU, RtpPacket, g711};
use tokio::net::UdpSocket;
use tokio::sync::mpsc;
use tokio::time::timeout;

const LOCALHOST: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);
const WAIT: Duration = Duration::from_secs(2);

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

fn audio(ssrc: u32, sequence: u16) -> Vec<u8> {
    datagram(
        PT_PCMU,
        ssrc,
        sequence,
        u32::from(sequence) * 160,
        &[0x90; 160],
    )
}

fn event(payload_type: u8, sequence: u16, timestamp: u32, end: bool, duration: u16) -> Vec<u8> {
    let payload = TelephoneEvent {
        event: 5,
        end,
        volume: 10,
        duration,
    }
    .to_bytes();
    datagram(payload_type, 7, sequence, timestamp, &payload)
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

async fn next_event(events: &mut mpsc::Receiver<MediaEvent>) -> MediaEvent {
    timeout(WAIT, events.recv())
        .await
        .expect("event within the timeout")
        .expect("session still open")
}

/// Header fields of a received datagram.
fn header(datagram: &[u8]) -> (u8, bool, u16, u32, u32) {
    let packet = RtpPacket::parse(datagram).expect("valid RTP");
    (
        packet.payload_type,
        packet.marker,
        packet.sequence,
        packet.timestamp,
        packet.ssrc,
    )
}

fn write_tone_wav(path: &Path, rate: u32, milliseconds: u32) {
    let spec = hound::WavSpec {
        channels: 1,
        sample_rate: rate,
        bits_per_sample: 16,
        sample_format: hound::SampleFormat::Int,
    };
    let mut writer = hound::WavWriter::create(path, spec).expect("create WAV");
    for index in 0..rate * milliseconds / 1000 {
        let phase = 2.0 * std::f64::consts::PI * 1000.0 * f64::from(index) / f64::from(rate);
        writer
            .write_sample((phase.sin() * 8000.0) as i16)
            .expect("write sample");
    }
    writer.finalize().expect("finalize WAV");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dtmf_detected_once_and_payload_type_mapped() {
    let relay = relay(41_200);
    let session = relay.open_session("dtmf").await.expect("open");
    let mut events = session.events();
    let (caller, agent) = (endpoint().await, endpoint().await);
    session.set_remote(Leg::Agent, agent.local_addr().expect("addr"));
    session.set_codecs(Leg::Caller, Codec::Pcmu, Some(101));
    session.set_codecs(Leg::Agent, Codec::Pcmu, Some(96));

    let packets = [
        event(101, 1, 800, false, 0),
        event(101, 2, 800, false, 400),
        event(101, 3, 800, true, 800),
        event(101, 4, 800, true, 800),
        event(101, 5, 800, true, 800),
    ];
    for packet in &packets {
        send(&caller, packet, &session, Leg::Caller).await;
        let relayed = receive(&agent).await;
        assert_eq!(
            header(&relayed).0,
            96,
            "telephone-event payload type rewritten"
        );
    }
    let MediaEvent::Dtmf { leg, digit } = next_event(&mut events).await else {
        panic!("expected a DTMF event");
    };
    assert_eq!(leg, Leg::Caller);
    assert_eq!(digit.digit, '5');
    assert_eq!(digit.duration, Duration::from_millis(100));
    // The repeated final packets produced no second digit.
    assert!(
        timeout(Duration::from_millis(300), events.recv())
            .await
            .is_err(),
        "one digit only"
    );
    session.close().await.expect("close");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pcmu_transcoded_to_pcma() {
    let relay = relay(41_210);
    let session = relay.open_session("transcode").await.expect("open");
    let (caller, agent) = (endpoint().await, endpoint().await);
    session.set_remote(Leg::Agent, agent.local_addr().expect("addr"));
    session.set_codecs(Leg::Caller, Codec::Pcmu, Some(101));
    session.set_codecs(Leg::Agent, Codec::Pcma, Some(101));

    send(&caller, &audio(3, 10), &session, Leg::Caller).await;
    let relayed = receive(&agent).await;
    let packet = RtpPacket::parse(&relayed).expect("valid RTP");
    assert_eq!(packet.payload_type, PT_PCMA);
    assert_eq!(packet.sequence, 10);
    let expected = g711::linear_to_alaw(g711::ulaw_to_linear(0x90));
    assert!(packet.payload.iter().all(|byte| *byte == expected));
    assert_eq!(packet.payload.len(), 160);
    session.close().await.expect("close");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prompt_plays_then_relay_resumes_continuously() {
    let folder = tempfile::tempdir().expect("temp dir");
    let prompt = folder.path().join("welcome.wav");
    write_tone_wav(&prompt, 16_000, 100);

    let relay = relay(41_220);
    let session = relay.open_session("prompt").await.expect("open");
    let mut events = session.events();
    let (caller, agent) = (endpoint().await, endpoint().await);
    session.set_remote(Leg::Caller, caller.local_addr().expect("addr"));
    session.set_remote(Leg::Agent, agent.local_addr().expect("addr"));

    send(&agent, &audio(9, 500), &session, Leg::Agent).await;
    let before = header(&receive(&caller).await);
    assert_eq!(
        before,
        (PT_PCMU, false, 500, 80_000, 9),
        "first source passes unchanged"
    );

    session
        .play(Leg::Caller, vec![prompt], false)
        .await
        .expect("play");
    let mut played = Vec::new();
    for _ in 0..5 {
        played.push(header(&receive(&caller).await));
    }
    let sequences: Vec<u16> = played.iter().map(|h| h.2).collect();
    assert_eq!(sequences, [501, 502, 503, 504, 505]);
    assert!(played[0].1, "marker on the first played packet");
    assert!(played.iter().all(|h| h.4 == 9 && h.0 == PT_PCMU));
    for pair in played.windows(2) {
        assert_eq!(pair[1].3.wrapping_sub(pair[0].3), 160);
    }
    assert!(played[0].3.wrapping_sub(80_000) >= 160);
    assert_eq!(
        next_event(&mut events).await,
        MediaEvent::PlaybackEnded {
            leg: Leg::Caller,
            reason: PlaybackEnd::Finished
        }
    );

    send(&agent, &audio(9, 501), &session, Leg::Agent).await;
    let after = header(&receive(&caller).await);
    assert_eq!(after.2, 506, "sequence continues after the prompt");
    assert_eq!(after.4, 9);
    assert!(after.1, "marker after the switch back");
    assert!(after.3.wrapping_sub(played[4].3) >= 160);
    session.close().await.expect("close");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn barge_in_stops_music_and_mutes_relay_meanwhile() {
    let folder = tempfile::tempdir().expect("temp dir");
    let music = folder.path().join("music.wav");
    write_tone_wav(&music, 48_000, 200);

    let relay = relay(41_230);
    let session = relay.open_session("barge-in").await.expect("open");
    let mut events = session.events();
    let (caller, agent) = (endpoint().await, endpoint().await);
    session.set_remote(Leg::Caller, caller.local_addr().expect("addr"));
    session.set_remote(Leg::Agent, agent.local_addr().expect("addr"));
    let request = PlayRequest {
        prompts: vec![music],
        looped: true,
        barge_in: true,
    };
    session.play_with(Leg::Caller, request).await.expect("play");
    for _ in 0..3 {
        let played = header(&receive(&caller).await);
        assert_eq!(played.0, PT_PCMU);
    }

    // The agent's audio is muted while music plays; the caller's digit
    // ends the music.
    send(&agent, &audio(4, 1), &session, Leg::Agent).await;
    for _ in 0..3 {
        let received = receive(&caller).await;
        let packet = RtpPacket::parse(&received).expect("valid RTP");
        assert_ne!(
            packet.payload, [0x90; 160],
            "agent audio reached the caller"
        );
    }
    send(
        &caller,
        &event(101, 1, 160, true, 800),
        &session,
        Leg::Caller,
    )
    .await;
    let mut saw_dtmf = false;
    let mut saw_end = false;
    for _ in 0..2 {
        match next_event(&mut events).await {
            MediaEvent::Dtmf { digit, .. } => saw_dtmf = digit.digit == '5',
            MediaEvent::PlaybackEnded { leg, reason } => {
                saw_end = leg == Leg::Caller && reason == PlaybackEnd::BargeIn('5');
            }
            other => panic!("unexpected event {other:?}"),
        }
    }
    assert!(saw_dtmf, "digit reported");
    assert!(saw_end, "music ended by barge-in");
    session.close().await.expect("close");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stats_count_loss_and_report_mos() {
    let relay = relay(41_240);
    let session = relay.open_session("stats").await.expect("open");
    let (caller, agent) = (endpoint().await, endpoint().await);
    session.set_remote(Leg::Agent, agent.local_addr().expect("addr"));
    // Ten packets sent, 3 and 7 lost on the way.
    for sequence in (1..=10).filter(|s| *s != 3 && *s != 7) {
        send(&caller, &audio(5, sequence), &session, Leg::Caller).await;
        receive(&agent).await;
    }
    let stats = session.stats(Leg::Caller);
    assert_eq!(stats.rtp_packets_received, 8);
    assert_eq!(stats.rtp_packets_expected, 10);
    assert_eq!(stats.rtp_packets_lost, 2);
    assert!((stats.loss_fraction() - 0.2).abs() < 1e-9);
    assert!(stats.mos() < 3.5, "MOS {}", stats.mos());
    assert!(stats.mos() >= 1.0);
    assert_eq!(session.stats(Leg::Agent).rtp_packets_expected, 0);
    session.close().await.expect("close");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn send_dtmf_as_events_or_in_band() {
    let relay = relay(41_250);
    let session = relay.open_session("send-dtmf").await.expect("open");
    let (caller, agent) = (endpoint().await, endpoint().await);
    session.set_remote(Leg::Caller, caller.local_addr().expect("addr"));
    session.set_remote(Leg::Agent, agent.local_addr().expect("addr"));
    session.set_codecs(Leg::Caller, Codec::Pcma, Some(101));
    session.set_codecs(Leg::Agent, Codec::Pcma, None);

    session.send_dtmf(Leg::Caller, '#').expect("valid key");
    let mut packets = Vec::new();
    for _ in 0..5 {
        packets.push(receive(&caller).await);
    }
    let parsed: Vec<TelephoneEvent> = packets
        .iter()
        .map(|p| {
            let packet = RtpPacket::parse(p).expect("valid RTP");
            assert_eq!(packet.payload_type, 101);
            TelephoneEvent::parse(packet.payload).expect("event")
        })
        .collect();
    assert!(parsed.iter().all(|event| event.event == 11));
    assert_eq!(parsed.iter().filter(|event| event.end).count(), 3);

    // The agent leg has no telephone-event: it hears the tone in A-law.
    session.send_dtmf(Leg::Agent, '1').expect("valid key");
    let tone = receive(&agent).await;
    assert_eq!(header(&tone).0, PT_PCMA);
    assert!(matches!(
        session.send_dtmf(Leg::Agent, 'x'),
        Err(media::MediaError::NotADigit { digit: 'x' })
    ));
    session.close().await.expect("close");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn g722_leg_transcoded_and_recorded_wideband() {
    let folder = tempfile::tempdir().expect("temp dir");
    let path = folder.path().join("call.wav");
    let relay = relay(41_260);
    let session = relay.open_session("g722").await.expect("open");
    let (caller, agent) = (endpoint().await, endpoint().await);
    session.set_remote(Leg::Agent, agent.local_addr().expect("addr"));
    session.set_codecs(Leg::Caller, Codec::Pcmu, Some(101));
    session.set_codecs(Leg::Agent, Codec::G722, Some(101));
    session.start_recording(path.clone()).expect("record");

    for sequence in 1..=5 {
        send(&caller, &audio(3, sequence), &session, Leg::Caller).await;
        let relayed = receive(&agent).await;
        let packet = RtpPacket::parse(&relayed).expect("valid RTP");
        assert_eq!(packet.payload_type, rtp::g722::PT_G722);
        assert_eq!(packet.payload.len(), 160);
        assert_eq!(packet.timestamp, u32::from(sequence) * 160);
    }
    let summary = session.close().await.expect("close").expect("recording");
    let reader = hound::WavReader::open(&summary.path).expect("readable WAV");
    assert_eq!(reader.spec().sample_rate, 16_000);
    assert!(summary.frames > 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn empty_prompt_list_ends_at_once() {
    let relay = relay(41_270);
    let session = relay.open_session("empty-prompts").await.expect("open");
    let mut events = session.events();
    let (caller, agent) = (endpoint().await, endpoint().await);
    session.set_remote(Leg::Caller, caller.local_addr().expect("addr"));
    session
        .play(Leg::Caller, Vec::new(), true)
        .await
        .expect("play");
    assert_eq!(
        next_event(&mut events).await,
        MediaEvent::PlaybackEnded {
            leg: Leg::Caller,
            reason: PlaybackEnd::Finished
        }
    );
    // The caller still hears the agent.
    send(&agent, &audio(6, 1), &session, Leg::Agent).await;
    assert_eq!(header(&receive(&caller).await).4, 6);

    let missing = session
        .play(Leg::Caller, vec!["/nonexistent/prompt.wav".into()], false)
        .await;
    assert!(matches!(missing, Err(media::MediaError::Prompt { .. })));
    session.close().await.expect("close");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stopped_recording_ends_before_close() {
    let folder = tempfile::tempdir().expect("temp dir");
    let path = folder.path().join("call.wav");
    let relay = relay(41_280);
    let session = relay.open_session("stopped").await.expect("open");
    let (caller, agent) = (endpoint().await, endpoint().await);
    session.set_remote(Leg::Agent, agent.local_addr().expect("addr"));
    let start = std::time::Instant::now();
    session
        .start_recording_with(path.clone(), None, start, recordings::DEFAULT_JITTER_WINDOW)
        .expect("record");
    let stop = start + Duration::from_millis(500);
    session.stop_recording(stop);
    // A second stop changes nothing.
    session.stop_recording(stop + Duration::from_millis(300));

    // The relay goes on after the stop.
    for sequence in 1..=3 {
        send(&caller, &audio(3, sequence), &session, Leg::Caller).await;
        let relayed = receive(&agent).await;
        assert_eq!(
            RtpPacket::parse(&relayed).expect("valid RTP").sequence,
            sequence
        );
    }
    tokio::time::sleep(Duration::from_millis(700)).await;
    let summary = session.close().await.expect("close").expect("recording");
    assert_eq!(summary.path, path);
    assert!(
        (summary.duration_seconds - 0.5).abs() < 0.021,
        "the file ends at the stop: {} s",
        summary.duration_seconds
    );
    let reader = hound::WavReader::open(&path).expect("readable WAV");
    assert_eq!(reader.duration(), 4000, "0.5 s at 8 kHz");
}

/// Records one caller packet, then, 500 ms later, another whose timestamp
/// puts it 200 ms before the first. Returns the caller's audio that came too
/// late for the recording, in milliseconds.
async fn late_audio_with_window(relay: &Relay, window: Duration) -> u64 {
    let folder = tempfile::tempdir().expect("temp dir");
    let session = relay.open_session("late").await.expect("open");
    let (caller, agent) = (endpoint().await, endpoint().await);
    session.set_remote(Leg::Agent, agent.local_addr().expect("addr"));
    // Sample 0 lies 1.5 s back, so the first packet lands 1.5 s into the
    // file and the late one 1.3 s into it.
    let start = std::time::Instant::now()
        .checked_sub(Duration::from_millis(1500))
        .expect("clock past 1.5 s");
    session
        .start_recording_with(folder.path().join("late.wav"), None, start, window)
        .expect("record");
    send(&caller, &audio(3, 100), &session, Leg::Caller).await;
    receive(&agent).await;
    // The relay flushes the recording every 100 ms meanwhile.
    tokio::time::sleep(Duration::from_millis(500)).await;
    send(&caller, &audio(3, 90), &session, Leg::Caller).await;
    receive(&agent).await;
    let summary = session.close().await.expect("close").expect("recording");
    summary.late_ms[0]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jitter_window_keeps_late_audio() {
    let relay = relay(41_290);
    // The whole 20 ms packet missed a 200 ms window.
    let short = late_audio_with_window(&relay, Duration::from_millis(200)).await;
    assert_eq!(short, 20);
    // With 2 s it would have to come 1.3 s later still to miss it.
    let long = late_audio_with_window(&relay, Duration::from_secs(2)).await;
    assert_eq!(long, 0);
}
