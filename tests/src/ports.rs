//! Free loopback ports for one test.
//!
//! A port found free here can be taken by another process before the PBX or
//! sipp binds it. Ports are picked below the kernel's ephemeral range, so the
//! outgoing connections of other tests (HTTP clients, PostgreSQL) cannot take
//! them. Only another test binary picking the same port can, which random
//! bases make rare. A clash shows up as a bind error in the logs, not as a hang.

use std::net::{Ipv4Addr, SocketAddrV4, TcpListener, UdpSocket};
use std::ops::RangeInclusive;
use std::sync::atomic::{AtomicU16, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

const LOOPBACK: Ipv4Addr = Ipv4Addr::LOCALHOST;
/// Ports handed out by this process count up from a per-process random base,
/// so tests in one binary never pick the same port and concurrent test
/// binaries rarely do.
static NEXT_PORT: AtomicU16 = AtomicU16::new(0);
const FIRST_PORT: u16 = 20_000;
/// Linux's default first ephemeral port, used when `/proc` cannot tell.
const EPHEMERAL_LOW: u16 = 32_768;
/// Room left above the highest start port for the largest range a test
/// requests.
const RANGE_ROOM: u16 = 1_000;
const MAX_ATTEMPTS: usize = 2_000;

/// Returns the next even port from the process-wide counter.
fn next_candidate(step: u16) -> u16 {
    let last = ephemeral_low() - RANGE_ROOM;
    let _ = NEXT_PORT.compare_exchange(0, random_base(last), Ordering::SeqCst, Ordering::SeqCst);
    let port = NEXT_PORT.fetch_add(step, Ordering::SeqCst);
    if port > last {
        NEXT_PORT.store(FIRST_PORT, Ordering::SeqCst);
        return next_candidate(step);
    }
    port
}

/// Returns the first port the kernel gives outgoing connections, or the
/// Linux default when that leaves fewer than 4,000 test ports below it.
fn ephemeral_low() -> u16 {
    std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|range| range.split_whitespace().next()?.parse::<u16>().ok())
        .filter(|low| *low >= FIRST_PORT + 4 * RANGE_ROOM)
        .unwrap_or(EPHEMERAL_LOW)
}

fn random_base(last: u16) -> u16 {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|elapsed| elapsed.subsec_nanos())
        .unwrap_or_default();
    let mixed = nanos ^ std::process::id().wrapping_mul(2_654_435_761);
    let span = u32::from(last - FIRST_PORT);
    FIRST_PORT + (mixed % span) as u16 / 2 * 2
}

/// Checks whether UDP (and TCP when `tcp`) can bind 127.0.0.1:`port` now.
fn is_free(port: u16, tcp: bool) -> bool {
    let addr = SocketAddrV4::new(LOOPBACK, port);
    let udp_free = UdpSocket::bind(addr).is_ok();
    udp_free && (!tcp || TcpListener::bind(addr).is_ok())
}

/// Finds a port free for both UDP and TCP, as SIP and HTTP listeners need.
pub fn free_port() -> u16 {
    *free_range(1, true).start()
}

/// Finds a port free for UDP, for sipp's signalling socket.
pub fn free_udp_port() -> u16 {
    *free_range(1, false).start()
}

/// Finds a media port for sipp (`-mp`). sipp binds it and the port two above
/// it (audio and video RTP), so the four ports from it are checked and reserved.
pub fn free_sipp_media_port() -> u16 {
    *free_range(4, false).start()
}

/// Finds `count` consecutive free UDP ports starting at an even port.
pub fn free_udp_range(count: u16) -> RangeInclusive<u16> {
    free_range(count, false)
}

fn free_range(count: u16, tcp: bool) -> RangeInclusive<u16> {
    for _ in 0..MAX_ATTEMPTS {
        let start = next_candidate(count.max(2));
        let Some(end) = start.checked_add(count - 1) else {
            continue;
        };
        if (start..=end).all(|port| is_free(port, tcp)) {
            return start..=end;
        }
    }
    panic!("found no {count} free consecutive loopback ports in {MAX_ATTEMPTS} attempts");
}
