//! Heap allocations on the relay's packet path, counted by an instrumented
//! global allocator. This binary contains one test only, so nothing else
//! allocates while it counts, and the relay task runs on the test's own
//! thread (tokio's current-thread runtime).

use std::alloc::System;
use std::net::{IpAddr, Ipv4Addr};
use std::time::Duration;

use media::{Leg, MediaSession, Relay, RelayConfig};
use rtp::{PT_PCMU, RtpPacket};
use stats_alloc::{INSTRUMENTED_SYSTEM, Region, StatsAlloc};
use tokio::net::UdpSocket;
use tokio::time::{Interval, MissedTickBehavior, interval, timeout};

#[global_allocator]
static GLOBAL: &StatsAlloc<System> = &INSTRUMENTED_SYSTEM;

const LOCALHOST: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);
const WAIT: Duration = Duration::from_secs(2);

/// Writes a 20 ms PCMU packet into `out`, which keeps its capacity.
fn write_packet(out: &mut Vec<u8>, ssrc: u32, sequence: u16) {
    let payload = [0xA0; 160];
    let packet = RtpPacket {
        payload_type: PT_PCMU,
        marker: false,
        sequence,
        timestamp: u32::from(sequence) * 160,
        ssrc,
        payload: &payload,
    };
    out.clear();
    packet.write(out);
}

/// Sends packets `sequences` from both phones at 20 ms pacing and waits
/// for each to come out of the relay at the other phone.
async fn exchange(
    session: &MediaSession,
    phones: &[UdpSocket; 2],
    sequences: std::ops::Range<u16>,
    pacing: &mut Interval,
    datagram: &mut Vec<u8>,
) {
    let mut buffer = [0u8; 1500];
    for sequence in sequences {
        pacing.tick().await;
        for (index, leg) in [Leg::Caller, Leg::Agent].into_iter().enumerate() {
            write_packet(datagram, index as u32 + 1, sequence);
            phones[index]
                .send_to(datagram, session.local_rtp_addr(leg))
                .await
                .expect("send to the relay");
        }
        for phone in phones {
            let received = timeout(WAIT, phone.recv_from(&mut buffer))
                .await
                .expect("relayed within the timeout")
                .expect("receive");
            assert_eq!(received.0, 172, "a 20 ms PCMU packet");
        }
    }
}

#[tokio::test]
async fn relaying_recorded_packets_allocates_nothing() {
    let relay = Relay::new(RelayConfig {
        bind_address: LOCALHOST,
        ports: 42_600..=42_607,
        threads: 1,
        spin: media::DEFAULT_SPIN,
        realtime_priority: media::DEFAULT_REALTIME_PRIORITY,
        coalesce: media::DEFAULT_COALESCE,
    })
    .expect("valid relay config");
    let session = relay.open_session("allocations").await.expect("open");
    let folder = tempfile::tempdir().expect("temp dir");
    let phones = [
        UdpSocket::bind((LOCALHOST, 0)).await.expect("bind caller"),
        UdpSocket::bind((LOCALHOST, 0)).await.expect("bind agent"),
    ];
    session.set_remote(Leg::Caller, phones[0].local_addr().expect("caller address"));
    session.set_remote(Leg::Agent, phones[1].local_addr().expect("agent address"));
    session
        .start_recording(folder.path().join("call.wav"))
        .expect("start recording");
    // Built before counting: the interval boxes its timer.
    let mut pacing = interval(Duration::from_millis(20));
    pacing.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let mut datagram = Vec::with_capacity(1500);

    // The first second learns the sources and grows the recorder's buffers
    // to their working size.
    exchange(&session, &phones, 0..50, &mut pacing, &mut datagram).await;
    let region = Region::new(GLOBAL);
    // Two seconds: 200 datagrams relayed, 20 recorder flushes and two WAV
    // header rewrites.
    exchange(&session, &phones, 50..150, &mut pacing, &mut datagram).await;
    let change = region.change();

    assert_eq!(change.allocations, 0, "allocations: {change:?}");
    assert_eq!(change.reallocations, 0, "reallocations: {change:?}");
    let stats = session.stats(Leg::Caller);
    assert_eq!(stats.packets_received, 150, "{stats:?}");
    assert_eq!(stats.packets_sent, 150, "{stats:?}");
    let summary = session.close().await.expect("close").expect("recording");
    assert!(summary.duration_seconds > 2.9, "{summary:?}");
}
