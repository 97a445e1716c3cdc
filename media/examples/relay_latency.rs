//! Relay latency under load: N recorded sessions on loopback, G.711 at 20 ms
//! pacing on every leg, and the delay from send to receipt through the relay.
//!
//! ```text
//! cargo run --release -p media --example relay_latency -- [SESSIONS] [SECONDS] [PORT_BASE]
//! ```
//!
//! SESSIONS defaults to 200, SECONDS (the sending time, 3 to 20) to 10, and
//! PORT_BASE (the start of the relay's port range, 8 ports per session) to a
//! value between 30000 and 50000 picked from the clock. The relay runs on a
//! two-thread tokio runtime, as the PBX's runtime has on a two-core machine.
//! The load generator runs on one thread of its own, so it shares the CPU
//! with the relay.
//!
//! The delay of a packet is the time from just before `send_to` on one
//! phone socket to the return of `recv_from` on the other leg's phone
//! socket. It therefore includes the generator's own wait to be scheduled,
//! which makes it an upper bound for the relay's share. The first second
//! of sending is left out as warm-up.
//!
//! The output also gives the CPU time of the relay's threads per session,
//! the packets lost, and, after the sessions close, the recordings' length
//! and how much of each channel's talk time is silent where the tone
//! should be.

use std::io;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use media::{Leg, MediaSession, Relay, RelayConfig};
use tokio::net::UdpSocket;

const PACKET_INTERVAL: Duration = Duration::from_millis(20);
/// Samples per 20 ms G.711 packet, and the RTP timestamp step.
const SAMPLES_PER_PACKET: usize = 160;
const WARM_UP: Duration = Duration::from_secs(1);
/// Send instants kept per leg, indexed by sequence number. Packets more
/// than this many intervals (5 s) late are counted as lost.
const SEND_RING: usize = 256;
/// Time after the last send for packets still in flight.
const DRAIN: Duration = Duration::from_millis(300);
const LOCALHOST: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);

struct Options {
    sessions: usize,
    sending: Duration,
    port_base: u16,
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let options = parse_options()?;
    let recordings = tempfile::tempdir()?;
    let relay_runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name("relay")
        .enable_all()
        .build()?;
    let port_count = (options.sessions * 8).min(usize::from(u16::MAX - options.port_base));
    let port_end = options.port_base + port_count as u16 - 1;
    let relay = Relay::new(RelayConfig {
        bind_address: LOCALHOST,
        ports: options.port_base..=port_end,
    })?;
    let phones = bind_phones(options.sessions)?;
    let sessions = relay_runtime.block_on(open_sessions(
        &relay,
        &phones,
        recordings.path().to_path_buf(),
    ))?;
    println!(
        "sessions={} sending_s={} ports={}-{} load_before={}",
        options.sessions,
        options.sending.as_secs(),
        options.port_base,
        port_end,
        load_average()
    );

    let start = Instant::now() + Duration::from_millis(200);
    let generator = spawn_generator(&sessions, phones, start, options.sending)?;
    std::thread::sleep((start + WARM_UP).saturating_duration_since(Instant::now()));
    let cpu_before = thread_cpu()?;
    let measured_from = Instant::now();
    std::thread::sleep((start + options.sending).saturating_duration_since(Instant::now()));
    let cpu_after = thread_cpu()?;
    let measured = measured_from.elapsed();
    let load_during = load_average();
    let report = generator
        .join()
        .map_err(|_| io::Error::other("load generator panicked"))??;

    let closed = relay_runtime.block_on(close_sessions(sessions));
    report.print(options.sessions);
    print_cpu(&cpu_before, &cpu_after, measured, options.sessions);
    println!("load_during={load_during}");
    let talk_end = start + options.sending - 2 * PACKET_INTERVAL;
    check_recordings(&closed, start + WARM_UP, talk_end)?;
    Ok(())
}

fn parse_options() -> Result<Options, String> {
    let mut args = std::env::args().skip(1);
    let sessions = match args.next() {
        Some(text) => text
            .parse()
            .map_err(|_| format!("invalid session count {text:?}, expected a number"))?,
        None => 200,
    };
    let seconds: u64 = match args.next() {
        Some(text) => text
            .parse()
            .map_err(|_| format!("invalid duration {text:?}, expected seconds"))?,
        None => 10,
    };
    if !(3..=20).contains(&seconds) {
        return Err(format!(
            "duration {seconds} s is out of range, expected 3 to 20"
        ));
    }
    let port_base = match args.next() {
        Some(text) => text
            .parse()
            .map_err(|_| format!("invalid port base {text:?}, expected a port number"))?,
        None => clock_port_base(),
    };
    if !(1..=8000).contains(&sessions) || usize::from(port_base) + 8 * sessions > 65_536 {
        return Err(format!(
            "{sessions} sessions do not fit above port {port_base}, expected 1 to 8000 sessions with 8 ports each"
        ));
    }
    Ok(Options {
        sessions,
        sending: Duration::from_secs(seconds),
        port_base: port_base & !1,
    })
}

/// Returns an even port between 30000 and 50000 taken from the clock's
/// nanoseconds, so that two runs side by side rarely share a range.
fn clock_port_base() -> u16 {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default()
        .subsec_nanos();
    (30_000 + (nanos / 1000) % 20_000) as u16 & !1
}

/// Binds the two phone sockets of each session: caller, then agent.
fn bind_phones(sessions: usize) -> io::Result<Vec<[std::net::UdpSocket; 2]>> {
    (0..sessions)
        .map(|_| {
            let bind = || {
                let socket = std::net::UdpSocket::bind((LOCALHOST, 0))?;
                socket.set_nonblocking(true)?;
                Ok::<_, io::Error>(socket)
            };
            Ok([bind()?, bind()?])
        })
        .collect()
}

/// Opens one recorded session per phone pair, each paired with the instant
/// its recording starts (sample 0 of its file).
async fn open_sessions(
    relay: &Relay,
    phones: &[[std::net::UdpSocket; 2]],
    folder: PathBuf,
) -> Result<Vec<(MediaSession, Instant)>, Box<dyn std::error::Error>> {
    let mut sessions = Vec::with_capacity(phones.len());
    for (index, [caller, agent]) in phones.iter().enumerate() {
        let session = relay.open_session(&format!("latency-{index}")).await?;
        session.set_remote(Leg::Caller, caller.local_addr()?);
        session.set_remote(Leg::Agent, agent.local_addr()?);
        let path = folder.join(format!("{index}.wav"));
        let recording_start = Instant::now();
        session.start_recording_with(path, None, recording_start)?;
        sessions.push((session, recording_start));
    }
    Ok(sessions)
}

/// A closed session's recording and the instant of its sample 0, or why
/// there is none.
type Closed = Result<(PathBuf, Instant), String>;

async fn close_sessions(sessions: Vec<(MediaSession, Instant)>) -> Vec<Closed> {
    let mut closed = Vec::with_capacity(sessions.len());
    for (session, recording_start) in sessions {
        let result = match session.close().await {
            Ok(Some(summary)) => Ok((summary.path, recording_start)),
            Ok(None) => Err("no recording".to_owned()),
            Err(error) => Err(error.to_string()),
        };
        closed.push(result);
    }
    closed
}

/// Send instants of one leg's packets in nanoseconds since the generator's
/// start, indexed by sequence number modulo [`SEND_RING`].
struct SendTimes {
    slots: Vec<AtomicU64>,
}

impl SendTimes {
    fn new() -> SendTimes {
        SendTimes {
            slots: (0..SEND_RING).map(|_| AtomicU64::new(0)).collect(),
        }
    }

    fn store(&self, sequence: u16, nanos: u64) {
        self.slots[usize::from(sequence) % SEND_RING].store(nanos, Ordering::Relaxed);
    }

    fn load(&self, sequence: u16) -> u64 {
        self.slots[usize::from(sequence) % SEND_RING].load(Ordering::Relaxed)
    }
}

/// One leg of one session on the generator's side: its phone socket, the
/// relay port it sends to, and the send times of its packets.
struct PhoneLeg {
    socket: UdpSocket,
    relay: SocketAddr,
    sent: SendTimes,
}

/// Counts and delays measured by the generator.
struct Report {
    sent: u64,
    received: u64,
    /// Delays of the packets sent after the warm-up, in nanoseconds.
    delays: Vec<u64>,
}

impl Report {
    fn print(&self, sessions: usize) {
        let mut delays = self.delays.clone();
        delays.sort_unstable();
        let percentile = |fraction: f64| {
            let index = ((delays.len() as f64 - 1.0) * fraction).round() as usize;
            delays
                .get(index)
                .map_or(f64::NAN, |&nanos| nanos as f64 / 1000.0)
        };
        println!(
            "sessions={sessions} packets_sent={} packets_received={} lost={} measured={} p50_us={:.0} p99_us={:.0} p999_us={:.0} max_us={:.0}",
            self.sent,
            self.received,
            self.sent.saturating_sub(self.received),
            delays.len(),
            percentile(0.50),
            percentile(0.99),
            percentile(0.999),
            percentile(1.0),
        );
    }
}

fn spawn_generator(
    sessions: &[(MediaSession, Instant)],
    phones: Vec<[std::net::UdpSocket; 2]>,
    start: Instant,
    sending: Duration,
) -> io::Result<std::thread::JoinHandle<io::Result<Report>>> {
    let relay_ports: Vec<[SocketAddr; 2]> = sessions
        .iter()
        .map(|(session, _)| {
            [
                session.local_rtp_addr(Leg::Caller),
                session.local_rtp_addr(Leg::Agent),
            ]
        })
        .collect();
    std::thread::Builder::new()
        .name("load-gen".to_owned())
        .spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?;
            runtime.block_on(generate(phones, relay_ports, start, sending))
        })
}

async fn generate(
    phones: Vec<[std::net::UdpSocket; 2]>,
    relay_ports: Vec<[SocketAddr; 2]>,
    start: Instant,
    sending: Duration,
) -> io::Result<Report> {
    let mut legs = Vec::with_capacity(2 * phones.len());
    for ([caller, agent], [caller_relay, agent_relay]) in phones.into_iter().zip(relay_ports) {
        for (socket, relay) in [(caller, caller_relay), (agent, agent_relay)] {
            legs.push(Arc::new(PhoneLeg {
                socket: UdpSocket::from_std(socket)?,
                relay,
                sent: SendTimes::new(),
            }));
        }
    }
    let stop = start + sending + DRAIN;
    let mut receivers = Vec::with_capacity(legs.len());
    for (index, leg) in legs.iter().enumerate() {
        // Legs come in pairs: what the caller (even index) sends arrives at
        // the agent (odd index) and the other way round.
        let peer = Arc::clone(&legs[index ^ 1]);
        receivers.push(tokio::spawn(receive(Arc::clone(leg), peer, start, stop)));
    }
    let sent = send(&legs, start, sending).await?;
    let mut report = Report {
        sent,
        received: 0,
        delays: Vec::new(),
    };
    for receiver in receivers {
        let (received, delays) = receiver.await.map_err(io::Error::other)??;
        report.received += received;
        report.delays.extend(delays);
    }
    Ok(report)
}

/// Sends one packet per leg every 20 ms. Leg `i` sends in the millisecond
/// slot `i % 20` of each interval (agents 10 ms after their caller), so the
/// load is spread evenly rather than in one burst per interval.
async fn send(legs: &[Arc<PhoneLeg>], start: Instant, sending: Duration) -> io::Result<u64> {
    let slots = PACKET_INTERVAL.as_millis() as usize;
    let mut packet = [0u8; 12 + SAMPLES_PER_PACKET];
    packet[0] = 0x80;
    // A 4 kHz square wave in mu-law, of which no sample decodes to zero, so
    // a zero sample in a recording is missing audio.
    for pair in packet[12..].chunks_exact_mut(2) {
        pair.copy_from_slice(&[0xA0, 0x20]);
    }
    let ticks = sending.as_millis() as u64;
    let mut sent = 0;
    for tick in 0..ticks {
        tokio::time::sleep_until((start + Duration::from_millis(tick)).into()).await;
        let round = tick / slots as u64;
        let sequence = round as u16;
        let timestamp = (round as u32).wrapping_mul(SAMPLES_PER_PACKET as u32);
        for (index, leg) in legs.iter().enumerate() {
            let slot = (index / 2 + (index % 2) * slots / 2) % slots;
            if slot != tick as usize % slots {
                continue;
            }
            packet[2..4].copy_from_slice(&sequence.to_be_bytes());
            packet[4..8].copy_from_slice(&timestamp.to_be_bytes());
            packet[8..12].copy_from_slice(&(index as u32 + 1).to_be_bytes());
            leg.sent.store(sequence, start.elapsed().as_nanos() as u64);
            match leg.socket.try_send_to(&packet, leg.relay) {
                Ok(_) => sent += 1,
                // A full socket buffer is a lost packet, which the report shows.
                Err(error) if error.kind() == io::ErrorKind::WouldBlock => {}
                Err(error) => return Err(error),
            }
        }
    }
    Ok(sent)
}

/// Receives what the relay forwards to `leg` until `stop`, and returns the
/// packet count and the delays of packets sent after the warm-up.
async fn receive(
    leg: Arc<PhoneLeg>,
    peer: Arc<PhoneLeg>,
    start: Instant,
    stop: Instant,
) -> io::Result<(u64, Vec<u64>)> {
    let mut buffer = [0u8; 1500];
    let mut received = 0;
    let mut delays = Vec::new();
    let warm_up = WARM_UP.as_nanos() as u64;
    loop {
        let receipt = tokio::time::timeout_at(stop.into(), leg.socket.recv_from(&mut buffer));
        let Ok(result) = receipt.await else {
            return Ok((received, delays));
        };
        let (length, _) = result?;
        let arrived = start.elapsed().as_nanos() as u64;
        if length < 12 {
            continue;
        }
        received += 1;
        let sequence = u16::from_be_bytes([buffer[2], buffer[3]]);
        let sent = peer.sent.load(sequence);
        if sent >= warm_up && arrived >= sent {
            delays.push(arrived - sent);
        }
    }
}

/// Total on-CPU time of this process's threads by thread name, in
/// nanoseconds, from `/proc/self/task/*/schedstat` (Linux only).
fn thread_cpu() -> io::Result<Vec<(String, u64)>> {
    let mut totals: Vec<(String, u64)> = Vec::new();
    for entry in std::fs::read_dir("/proc/self/task")? {
        let path = entry?.path();
        // A thread that ended between the listing and the reads is skipped.
        let (Ok(name), Ok(schedstat)) = (
            std::fs::read_to_string(path.join("comm")),
            std::fs::read_to_string(path.join("schedstat")),
        ) else {
            continue;
        };
        let nanos: u64 = schedstat
            .split_whitespace()
            .next()
            .and_then(|field| field.parse().ok())
            .unwrap_or(0);
        let name = name.trim().to_owned();
        match totals.iter_mut().find(|(known, _)| *known == name) {
            Some((_, total)) => *total += nanos,
            None => totals.push((name, nanos)),
        }
    }
    Ok(totals)
}

fn print_cpu(before: &[(String, u64)], after: &[(String, u64)], wall: Duration, sessions: usize) {
    let used = |name: &str| {
        let find = |totals: &[(String, u64)]| {
            totals
                .iter()
                .find(|(known, _)| known == name)
                .map_or(0, |(_, nanos)| *nanos)
        };
        find(after).saturating_sub(find(before)) as f64 / wall.as_nanos() as f64
    };
    let relay = used("relay");
    let generator = used("load-gen");
    println!(
        "relay_cpu_pct={:.1} relay_cpu_us_per_session_s={:.1} generator_cpu_pct={:.1}",
        relay * 100.0,
        relay * 1e6 / sessions as f64,
        generator * 100.0,
    );
}

fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|text| {
            text.split_whitespace()
                .take(3)
                .collect::<Vec<_>>()
                .join("/")
        })
        .unwrap_or_else(|_| "unknown".to_owned())
}

/// Reads each recording and counts zero samples per channel between
/// `from` and `until`, where the tone played on both legs.
fn check_recordings(
    closed: &[Closed],
    from: Instant,
    until: Instant,
) -> Result<(), Box<dyn std::error::Error>> {
    let mut failed = 0;
    let mut zeros = [0u64; 2];
    let mut samples = 0u64;
    let mut shortest = u32::MAX;
    let mut longest = 0;
    for result in closed {
        let (path, recording_start) = match result {
            Ok(recorded) => recorded,
            Err(error) => {
                failed += 1;
                eprintln!("session failed: {error}");
                continue;
            }
        };
        let mut reader = hound::WavReader::open(path)?;
        let frames = reader.duration();
        shortest = shortest.min(frames);
        longest = longest.max(frames);
        let all: Vec<i16> = reader.samples::<i16>().collect::<Result<_, _>>()?;
        let frame_of = |instant: Instant| {
            let offset = instant.saturating_duration_since(*recording_start);
            (offset.as_secs_f64() * 8000.0) as usize
        };
        let last = frame_of(until).min(all.len() / 2);
        let first = frame_of(from).min(last);
        for frame in all[2 * first..2 * last].chunks_exact(2) {
            zeros[0] += u64::from(frame[0] == 0);
            zeros[1] += u64::from(frame[1] == 0);
            samples += 1;
        }
    }
    let percent = |count: u64| 100.0 * count as f64 / samples.max(1) as f64;
    println!(
        "recordings={} failed={failed} shortest_s={:.2} longest_s={:.2} silent_caller_pct={:.3} silent_agent_pct={:.3}",
        closed.len() - failed,
        f64::from(shortest) / 8000.0,
        f64::from(longest) / 8000.0,
        percent(zeros[0]),
        percent(zeros[1]),
    );
    Ok(())
}
