//! Relay latency under load: N recorded sessions on loopback, G.711 at 20 ms
//! pacing on every leg, and the delay from send to receipt through the relay.
//!
//! ```text
//! cargo run --release -p media --example relay_latency -- [SESSIONS] [SECONDS] [PORT_BASE]
//! ```
//!
//! SESSIONS defaults to 200, SECONDS (the sending time, 3 to 20) to 10, and
//! PORT_BASE (the start of the relay's port range, 8 ports per session) to a
//! value between 30000 and 50000 picked from the clock. The relay runs on
//! two threads of its own, as the PBX's relay does on a two-core machine;
//! `RELAY_SPIN_US` sets its spin window (default 0), `RELAY_RT_PRIORITY`
//! its threads' real-time priority (default 10, 0 for the normal scheduler)
//! and `RELAY_COALESCE_US` the shortest time between two busy rounds of a
//! relay thread (default 300). The load generator
//! has two threads of its own, a sender and a receiver, on the same cores.
//!
//! The phones of all sessions send from 16 sockets per side and the
//! receiver reads them with `recvmmsg`, so that the generator costs less
//! than the relay it measures. The sender paces packets in 250 us slots.
//!
//! Two delays are printed. The end-to-end delay of a packet runs from just
//! before `send_to` on one phone socket to the kernel's timestamp of its
//! arrival at the other leg's phone socket. It includes the sender's own
//! wait for a core between the clock reading and the send, so it is an
//! upper bound for the relay's share. The receiving thread's waits are
//! not in it. The relay's own delay, read from [`Relay::delays`], runs from a
//! datagram's arrival at a relay socket to the return of the send that
//! forwards it. It is printed as the histogram bucket bounds under which
//! 50 %, 99 % and 99.9 % of the datagrams fell. The first second of
//! sending is left out of both as warm-up.
//!
//! The output also gives the CPU time of the relay's and the generator's
//! threads, the packets lost, and, after the sessions close, the
//! recordings' length and how much of each channel's talk time is silent
//! where the tone should be.

use std::collections::HashMap;
use std::io;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use media::{Leg, MediaSession, Relay, RelayConfig, RelayDelays};
use nix::sys::socket::sockopt;
use tokio::io::Interest;
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
/// Phone sockets per side (callers, agents).
const PHONE_SOCKETS: usize = 16;
/// Requested receive buffer of a phone socket: about 5,000 packets, or
/// 1.5 s of what one socket receives at 1,000 sessions.
const PHONE_RECEIVE_BUFFER: usize = 4 << 20;
/// Send slots per 20 ms packet interval, unless `SEND_SLOTS` sets another count
/// (20 sends in bursts of one millisecond's packets).
const SEND_SLOTS: usize = 80;

struct Options {
    sessions: usize,
    sending: Duration,
    port_base: u16,
    spin: Duration,
    realtime_priority: u8,
    coalesce: Duration,
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let options = parse_options()?;
    let recordings = tempfile::tempdir()?;
    // Opens and closes the sessions; the relay runs on threads of its own.
    let setup_runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let port_count = (options.sessions * 8).min(usize::from(u16::MAX - options.port_base));
    let port_end = options.port_base + port_count as u16 - 1;
    let relay = Relay::new(RelayConfig {
        bind_address: LOCALHOST,
        ports: options.port_base..=port_end,
        threads: 2,
        spin: options.spin,
        realtime_priority: options.realtime_priority,
        coalesce: options.coalesce,
    })?;
    let phones = bind_phones(options.sessions)?;
    let sessions = setup_runtime.block_on(open_sessions(
        &relay,
        &phones,
        options.sessions,
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
    let delays_before = relay.delays();
    let measured_from = Instant::now();
    std::thread::sleep((start + options.sending).saturating_duration_since(Instant::now()));
    let cpu_after = thread_cpu()?;
    let measured = measured_from.elapsed();
    // Sessions add their delays to the relay's every 100 ms.
    std::thread::sleep(Duration::from_millis(150));
    let relay_delays = relay.delays().since(&delays_before);
    let load_during = load_average();
    let report = generator
        .join()
        .map_err(|_| io::Error::other("load generator panicked"))??;

    let closed = setup_runtime.block_on(close_sessions(sessions));
    report.print(options.sessions);
    print_relay_delays(&relay_delays);
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
    let spin = match std::env::var("RELAY_SPIN_US") {
        Ok(text) => Duration::from_micros(
            text.parse()
                .map_err(|_| format!("invalid RELAY_SPIN_US {text:?}, expected microseconds"))?,
        ),
        Err(_) => media::DEFAULT_SPIN,
    };
    let realtime_priority = match std::env::var("RELAY_RT_PRIORITY") {
        Ok(text) => text
            .parse()
            .map_err(|_| format!("invalid RELAY_RT_PRIORITY {text:?}, expected 0 to 99"))?,
        Err(_) => media::DEFAULT_REALTIME_PRIORITY,
    };
    let coalesce =
        match std::env::var("RELAY_COALESCE_US") {
            Ok(text) => Duration::from_micros(text.parse().map_err(|_| {
                format!("invalid RELAY_COALESCE_US {text:?}, expected microseconds")
            })?),
            Err(_) => media::DEFAULT_COALESCE,
        };
    Ok(Options {
        sessions,
        sending: Duration::from_secs(seconds),
        port_base: port_base & !1,
        spin,
        realtime_priority,
        coalesce,
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

/// The phones' sockets, callers' first. Every caller leg sends from one of
/// the callers' sockets and every agent leg from one of the agents', so
/// the generator reads many legs with one batched call. The relay latches
/// each leg to its socket's address as it would to a phone's.
type PhoneSockets = [Vec<std::net::UdpSocket>; 2];

/// Binds up to [`PHONE_SOCKETS`] sockets per side, each with a large
/// receive buffer and kernel receive timestamps.
fn bind_phones(sessions: usize) -> io::Result<PhoneSockets> {
    let bind = || {
        let socket = std::net::UdpSocket::bind((LOCALHOST, 0))?;
        socket.set_nonblocking(true)?;
        // Past `net.core.rmem_max` only with CAP_NET_ADMIN (as root); the
        // plain request is capped at it.
        if nix::sys::socket::setsockopt(&socket, sockopt::RcvBufForce, &PHONE_RECEIVE_BUFFER)
            .is_err()
        {
            socket2::SockRef::from(&socket).set_recv_buffer_size(PHONE_RECEIVE_BUFFER)?;
        }
        media::batch::enable_receive_timestamps(&socket)?;
        Ok::<_, io::Error>(socket)
    };
    let count = PHONE_SOCKETS.min(sessions);
    Ok([
        (0..count).map(|_| bind()).collect::<io::Result<_>>()?,
        (0..count).map(|_| bind()).collect::<io::Result<_>>()?,
    ])
}

/// Returns the phone socket of leg `index` (callers even, agents odd).
fn phone_of(phones: &PhoneSockets, index: usize) -> &std::net::UdpSocket {
    let side = &phones[index % 2];
    &side[(index / 2) % side.len()]
}

/// Opens one recorded session per phone pair, each paired with the instant
/// its recording starts (sample 0 of its file).
async fn open_sessions(
    relay: &Relay,
    phones: &PhoneSockets,
    count: usize,
    folder: PathBuf,
) -> Result<Vec<(MediaSession, Instant)>, Box<dyn std::error::Error>> {
    let mut sessions = Vec::with_capacity(count);
    for index in 0..count {
        let session = relay.open_session(&format!("latency-{index}")).await?;
        session.set_remote(Leg::Caller, phone_of(phones, 2 * index).local_addr()?);
        session.set_remote(Leg::Agent, phone_of(phones, 2 * index + 1).local_addr()?);
        let path = folder.join(format!("{index}.wav"));
        let recording_start = Instant::now();
        session.start_recording_with(
            path,
            None,
            recording_start,
            recordings::DEFAULT_JITTER_WINDOW,
        )?;
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

/// Send instants of one leg's packets in nanoseconds since the Unix epoch,
/// indexed by sequence number modulo [`SEND_RING`].
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

/// Counts and delays measured by the generator.
#[derive(Default)]
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

/// Prints the relay's own delays over the measured period, as the bucket
/// bounds under which half, 99 % and 99.9 % of the datagrams fell.
fn print_relay_delays(period: &RelayDelays) {
    let bound = |fraction: f64| {
        period
            .quantile_bound_us(fraction)
            .map_or_else(|| "over_100000".to_owned(), |micros| micros.to_string())
    };
    let mean = period.sum.as_nanos() as f64 / period.count.max(1) as f64 / 1000.0;
    println!(
        "relay_delay: counted={} mean_us={mean:.0} p50_under_us={} p99_under_us={} p999_under_us={}",
        period.count,
        bound(0.50),
        bound(0.99),
        bound(0.999),
    );
}

/// The plan and the records the generator's threads share.
struct Plan {
    phones: PhoneSockets,
    /// The relay port each leg sends to, by leg index.
    relay_ports: Vec<SocketAddr>,
    /// By leg index.
    sent: Vec<SendTimes>,
    /// The leg that sent what arrives from a relay port: the caller's
    /// packets leave the relay from the agent leg's port.
    sender_of: HashMap<SocketAddr, usize>,
    start: Instant,
    sending: Duration,
    /// Packets sent before this wall-clock instant (nanoseconds since the
    /// epoch) are warm-up and not measured.
    measured_from_nanos: u64,
    /// When the sender sent its last packet. Sharing the cores with a
    /// real-time relay, it can finish later than planned.
    sender_finished: std::sync::OnceLock<Instant>,
}

/// Starts the sender and the receiver, two threads named `load-gen` whose
/// CPU time is reported together.
fn spawn_generator(
    sessions: &[(MediaSession, Instant)],
    phones: PhoneSockets,
    start: Instant,
    sending: Duration,
) -> io::Result<std::thread::JoinHandle<io::Result<Report>>> {
    let mut relay_ports = Vec::with_capacity(2 * sessions.len());
    let mut sender_of = HashMap::with_capacity(2 * sessions.len());
    for (index, (session, _)) in sessions.iter().enumerate() {
        let caller_port = session.local_rtp_addr(Leg::Caller);
        let agent_port = session.local_rtp_addr(Leg::Agent);
        relay_ports.extend([caller_port, agent_port]);
        sender_of.insert(agent_port, 2 * index);
        sender_of.insert(caller_port, 2 * index + 1);
    }
    let measured_from = start + WARM_UP;
    let measured_from_nanos = wall_nanos().saturating_add(
        measured_from
            .saturating_duration_since(Instant::now())
            .as_nanos() as u64,
    );
    let plan = Arc::new(Plan {
        phones,
        sent: (0..relay_ports.len()).map(|_| SendTimes::new()).collect(),
        relay_ports,
        sender_of,
        start,
        sending,
        measured_from_nanos,
        sender_finished: std::sync::OnceLock::new(),
    });
    let receiver_plan = Arc::clone(&plan);
    let receiver = std::thread::Builder::new()
        .name("load-gen".to_owned())
        .spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?;
            runtime.block_on(receive_all(receiver_plan))
        })?;
    std::thread::Builder::new()
        .name("load-gen".to_owned())
        .spawn(move || {
            let sent = send(&plan);
            let _ = plan.sender_finished.set(Instant::now());
            let sent = sent?;
            let mut report = receiver
                .join()
                .map_err(|_| io::Error::other("receiver panicked"))??;
            report.sent = sent;
            Ok(report)
        })
}

/// Sends one packet per leg every 20 ms, paced in [`SEND_SLOTS`] slots of
/// 250 us. The caller of session `s` sends in slot `s % SEND_SLOTS` and its
/// agent half an interval later, so the load is spread evenly rather than
/// sent in one burst per interval.
fn send(plan: &Plan) -> io::Result<u64> {
    let slots = std::env::var("SEND_SLOTS")
        .ok()
        .and_then(|text| text.parse::<usize>().ok())
        .filter(|slots| (2..=400).contains(slots) && slots % 2 == 0)
        .unwrap_or(SEND_SLOTS);
    let slot_length = PACKET_INTERVAL / slots as u32;
    let mut by_slot = vec![Vec::new(); slots];
    for leg in 0..plan.relay_ports.len() {
        by_slot[(leg / 2 + (leg % 2) * slots / 2) % slots].push(leg);
    }
    let mut packet = [0u8; 12 + SAMPLES_PER_PACKET];
    packet[0] = 0x80;
    // A 4 kHz square wave in mu-law, of which no sample decodes to zero, so
    // a zero sample in a recording is missing audio.
    for pair in packet[12..].chunks_exact_mut(2) {
        pair.copy_from_slice(&[0xA0, 0x20]);
    }
    let ticks = (plan.sending.as_nanos() / slot_length.as_nanos()) as u64;
    let mut sent = 0;
    for tick in 0..ticks {
        let due = plan.start + slot_length * tick as u32;
        std::thread::sleep(due.saturating_duration_since(Instant::now()));
        let round = tick / slots as u64;
        let sequence = round as u16;
        let timestamp = (round as u32).wrapping_mul(SAMPLES_PER_PACKET as u32);
        for &leg in &by_slot[tick as usize % slots] {
            packet[2..4].copy_from_slice(&sequence.to_be_bytes());
            packet[4..8].copy_from_slice(&timestamp.to_be_bytes());
            packet[8..12].copy_from_slice(&(leg as u32 + 1).to_be_bytes());
            plan.sent[leg].store(sequence, wall_nanos());
            match phone_of(&plan.phones, leg).send_to(&packet, plan.relay_ports[leg]) {
                Ok(_) => sent += 1,
                // A full socket buffer is a lost packet, which the report shows.
                Err(error) if error.kind() == io::ErrorKind::WouldBlock => {}
                Err(error) => return Err(error),
            }
        }
    }
    Ok(sent)
}

/// Receives on every phone socket until the sending time and [`DRAIN`]
/// are over.
async fn receive_all(plan: Arc<Plan>) -> io::Result<Report> {
    let stop = plan.start + plan.sending + DRAIN;
    let mut tasks = Vec::new();
    for side in 0..2 {
        for index in 0..plan.phones[side].len() {
            tasks.push(tokio::spawn(receive(Arc::clone(&plan), side, index, stop)));
        }
    }
    let mut report = Report::default();
    for task in tasks {
        let (received, delays) = task.await.map_err(io::Error::other)??;
        report.received += received;
        report.delays.extend(delays);
    }
    Ok(report)
}

/// Receives what the relay forwards to one phone socket until `stop`, and
/// returns the packet count and the delays of packets sent after the
/// warm-up. A delay runs from the sender's clock reading just before its
/// `send_to` to the kernel's timestamp of the packet's arrival at the phone
/// socket, so the receiving thread's own wait for a core is not in it.
async fn receive(
    plan: Arc<Plan>,
    side: usize,
    index: usize,
    stop: Instant,
) -> io::Result<(u64, Vec<u64>)> {
    let socket = UdpSocket::from_std(plan.phones[side][index].try_clone()?)?;
    let mut received = 0;
    let mut delays = Vec::new();
    let mut stop = stop;
    // Bounds the wait for a sender that fell behind.
    let give_up = stop + Duration::from_secs(10);
    let mut on_datagram = |source: SocketAddr, datagram: &[u8], arrived: Option<Duration>| {
        if datagram.len() < 12 {
            return;
        }
        received += 1;
        let Some(&leg) = plan.sender_of.get(&source) else {
            return;
        };
        let sequence = u16::from_be_bytes([datagram[2], datagram[3]]);
        let sent = plan.sent[leg].load(sequence);
        let arrived = arrived.map_or_else(wall_nanos, |at| at.as_nanos() as u64);
        if sent >= plan.measured_from_nanos && arrived >= sent {
            delays.push(arrived - sent);
        }
    };
    loop {
        let Ok(ready) = tokio::time::timeout_at(stop.into(), socket.readable()).await else {
            // Packets sent late still get their DRAIN after the last send.
            let now = Instant::now();
            match plan.sender_finished.get() {
                Some(&finished) if finished + DRAIN > now => {
                    stop = finished + DRAIN;
                    continue;
                }
                None if now < give_up => {
                    stop = now + DRAIN;
                    continue;
                }
                _ => {}
            }
            // This thread can fall behind the real-time relay, so datagrams
            // may still wait in the socket. Their kernel timestamps keep
            // their delays exact, so they are read rather than counted lost.
            loop {
                match media::batch::receive(&socket, &mut on_datagram) {
                    Ok(0) => break,
                    Ok(_) => {}
                    Err(error) if error.kind() == io::ErrorKind::WouldBlock => break,
                    Err(error) => return Err(error),
                }
            }
            return Ok((received, delays));
        };
        ready?;
        let batch = socket.try_io(Interest::READABLE, || {
            media::batch::receive(&socket, &mut on_datagram)
        });
        match batch {
            Ok(_) => {}
            Err(error) if error.kind() == io::ErrorKind::WouldBlock => {}
            Err(error) => return Err(error),
        }
    }
}

fn wall_nanos() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |since| since.as_nanos() as u64)
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
                .filter(|(known, _)| known.starts_with(name))
                .map(|(_, nanos)| *nanos)
                .sum::<u64>()
        };
        find(after).saturating_sub(find(before)) as f64 / wall.as_nanos() as f64
    };
    let relay = used("relay-");
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
