//! The relay, its sessions and the handle the call owner keeps.

use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hasher};
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use mio::net::UdpSocket;
use recordings::{Recorder, RecorderOptions, RecordingSummary};
use rtp::RtpPacket;
use tokio::sync::{mpsc, oneshot};

use crate::codec::{Codec, LegCodecs};
use crate::delay::{RelayDelays, SharedDelays};
use crate::ports::{Holder, PortAllocator, PortLease};
use crate::shard::{NewSession, Outcome, RelayThreads, SessionEnded, ThreadSender};
use crate::spare::SpareLegs;
use crate::state::RelayState;
use crate::stats::{ReceptionStatistics, estimate_mos};
use crate::worker::{OpenFailure, RelayProcesses, WorkerSender, Workers};
use crate::{Leg, MediaError, MediaEvent, RelayConfig};

/// Events each [`MediaSession::events`] receiver buffers before the relay
/// drops new ones for it.
pub(crate) const EVENT_CAPACITY: usize = 64;

/// Shared by all calls; cheap to clone.
#[derive(Clone)]
pub struct Relay {
    bind_address: IpAddr,
    allocator: Arc<Mutex<PortAllocator>>,
    ports: (u16, u16),
    delays: Arc<SharedDelays>,
    backend: Backend,
    /// Legs bound ahead of need, for relay threads in this process over a
    /// range large enough to spare some.
    spare: Option<Arc<SpareLegs>>,
}

/// The threads or processes that relay the sessions' packets.
#[derive(Clone)]
enum Backend {
    Threads(Arc<RelayThreads>),
    Workers(Arc<Workers>),
}

impl Relay {
    /// Validates the range (even start, >= 4 ports) and starts the relay's
    /// threads.
    pub fn new(config: RelayConfig) -> Result<Relay, MediaError> {
        let allocator = PortAllocator::new(&config.ports)?;
        let threads = match config.threads {
            0 => std::thread::available_parallelism().map_or(1, usize::from),
            count => count,
        };
        let threads = RelayThreads::start(
            threads,
            config.spin,
            config.realtime_priority,
            config.coalesce,
        )
        .map_err(|source| MediaError::Threads { source })?;
        let allocator = Arc::new(Mutex::new(allocator));
        let ports = (*config.ports.start(), *config.ports.end());
        let spare = SpareLegs::start(Arc::clone(&allocator), config.bind_address, ports)?;
        Ok(Relay {
            bind_address: config.bind_address,
            allocator,
            ports,
            delays: Arc::default(),
            backend: Backend::Threads(Arc::new(threads)),
            spare,
        })
    }

    /// Like [`Relay::new`], with the relay threads in worker processes
    /// started from `processes` (see [`crate::serve_worker`]); each runs
    /// `config.threads` of them. For a process whose open files limit is
    /// too low for its calls.
    pub fn with_processes(
        config: RelayConfig,
        processes: RelayProcesses,
    ) -> Result<Relay, MediaError> {
        let allocator = PortAllocator::new(&config.ports)?;
        let workers = Workers::start(
            processes,
            config.threads,
            config.spin,
            config.realtime_priority,
            config.coalesce,
        )?;
        Ok(Relay {
            bind_address: config.bind_address,
            allocator: Arc::new(Mutex::new(allocator)),
            ports: (*config.ports.start(), *config.ports.end()),
            delays: Arc::default(),
            backend: Backend::Workers(Arc::new(workers)),
            spare: None,
        })
    }

    /// Relay worker processes that exited or were stopped as hung since the
    /// relay started; 0 when it relays in this process.
    pub fn worker_exits(&self) -> u64 {
        match &self.backend {
            Backend::Threads(_) => 0,
            Backend::Workers(workers) => workers.exits(),
        }
    }

    /// Process ids of the relay's worker processes; empty when it relays in
    /// this process.
    pub fn worker_pids(&self) -> Vec<u32> {
        match &self.backend {
            Backend::Threads(_) => Vec::new(),
            Backend::Workers(workers) => workers.pids(),
        }
    }

    /// How long datagrams waited in the relay, over all sessions since the
    /// relay was made: from their arrival at a leg's socket to the return
    /// of the send that forwarded them. Sessions add their counts every
    /// 100 ms and when they close.
    pub fn delays(&self) -> RelayDelays {
        match &self.backend {
            Backend::Threads(_) => self.delays.snapshot(),
            Backend::Workers(workers) => workers.delays(),
        }
    }

    /// Port pairs currently held by open sessions.
    pub fn used_port_pairs(&self) -> usize {
        crate::ports::lock(&self.allocator).held_by_sessions()
    }

    /// Binds an RTP+RTCP port pair for each leg and hands the session to a
    /// relay thread.
    pub async fn open_session(&self, call_id: &str) -> Result<MediaSession, MediaError> {
        let threads = match &self.backend {
            Backend::Threads(threads) => threads,
            Backend::Workers(workers) => return self.open_in_worker(workers, call_id).await,
        };
        let caller = self.take_leg()?;
        let agent = self.take_leg()?;
        let local = [caller.local_rtp, agent.local_rtp];
        let counters = Arc::new([LegCounters::default(), LegCounters::default()]);
        let span = tracing::info_span!("media_session", call_id = %call_id);
        span.in_scope(
            || tracing::info!(caller = %local[0], agent = %local[1], "media session opened"),
        );
        let (done, outcome) = oneshot::channel();
        let control = threads.open(NewSession {
            call_id: call_id.to_owned(),
            span,
            sockets: [caller, agent],
            state: RelayState::new(Arc::clone(&counters), [random_u32(), random_u32()]),
            delays: Arc::clone(&self.delays),
            done,
            ended: Arc::new(AtomicBool::new(false)),
        })?;
        Ok(MediaSession {
            call_id: call_id.to_owned(),
            local,
            control: ControlSender::Thread(control),
            stats: StatsSource::Counters(counters),
            recording: AtomicBool::new(false),
            wideband: [AtomicBool::new(false), AtomicBool::new(false)],
            outcome: Some(outcome),
            _backend: self.backend.clone(),
        })
    }

    /// Leases a port pair per leg and has a worker bind them, as
    /// [`Relay::bind_leg`] does here: a pair the worker could not bind
    /// stays taken and another is tried.
    async fn open_in_worker(
        &self,
        workers: &Arc<Workers>,
        call_id: &str,
    ) -> Result<MediaSession, MediaError> {
        let attempts = crate::ports::lock(&self.allocator).pair_count();
        let mut refused = Vec::new();
        let mut last_error = None;
        let mut leases: [Option<PortLease>; 2] = [None, None];
        // A worker that died or hung during the open costs the call its
        // media only when every worker failed it.
        let mut worker_tries = workers.count();
        for _ in 0..attempts {
            for lease in &mut leases {
                if lease.is_none() {
                    *lease = PortLease::take(&self.allocator, random_u32(), Holder::Session);
                }
            }
            let (Some(caller), Some(agent)) = (leases[0].take(), leases[1].take()) else {
                break;
            };
            let local = [caller.rtp_port(), agent.rtp_port()]
                .map(|port| SocketAddr::new(self.bind_address, port));
            let ssrcs = [random_u32(), random_u32()];
            match workers
                .open(call_id, self.bind_address, [caller, agent], ssrcs)
                .await
            {
                Ok(remote) => {
                    let span = tracing::info_span!("media_session", call_id = %call_id);
                    span.in_scope(|| {
                        tracing::info!(caller = %local[0], agent = %local[1], "media session opened in a worker");
                    });
                    return Ok(MediaSession {
                        call_id: call_id.to_owned(),
                        local,
                        control: ControlSender::Worker(remote.control),
                        stats: StatsSource::Reported(remote.stats),
                        recording: AtomicBool::new(false),
                        wideband: [AtomicBool::new(false), AtomicBool::new(false)],
                        outcome: Some(remote.outcome),
                        _backend: self.backend.clone(),
                    });
                }
                Err(OpenFailure::Bind {
                    leg,
                    error,
                    leases: [caller, agent],
                }) => {
                    let addr = local[leg.index()];
                    if out_of_descriptors(&error) {
                        return Err(MediaError::Bind {
                            addr,
                            attempts: refused.len() + 1,
                            source: error,
                        });
                    }
                    tracing::debug!(%addr, %error, "port not bound in a worker, trying another pair");
                    let (refused_lease, kept) = match leg {
                        Leg::Caller => (caller, [None, Some(agent)]),
                        Leg::Agent => (agent, [Some(caller), None]),
                    };
                    refused.push(refused_lease);
                    leases = kept;
                    last_error = Some((addr, error));
                }
                Err(OpenFailure::Worker(reason)) => {
                    worker_tries = worker_tries.saturating_sub(1);
                    if worker_tries == 0 {
                        return Err(MediaError::Worker {
                            call_id: call_id.to_owned(),
                            reason,
                        });
                    }
                    tracing::warn!(
                        call_id,
                        reason,
                        "relay worker failed an open; trying another"
                    );
                }
            }
        }
        Err(no_pair_bound(self.ports, last_error, refused.len()))
    }

    /// Takes a spare leg, or binds one when none is left.
    fn take_leg(&self) -> Result<LegSockets, MediaError> {
        match self.spare.as_ref().and_then(|spare| spare.take()) {
            Some(leg) => Ok(leg),
            None => bind_leg(
                &self.allocator,
                self.bind_address,
                self.ports,
                Holder::Session,
            ),
        }
    }
}

/// Tries free pairs of `allocator` at random until both ports of one bind
/// on `bind_address`, giving up after as many attempts as the range has
/// pairs. A pair the OS refused stays taken until the end, so it is not
/// tried twice. `ports` is the configured range, for the error. The pairs are
/// counted as used by `holder`.
pub(crate) fn bind_leg(
    allocator: &Arc<Mutex<PortAllocator>>,
    bind_address: IpAddr,
    ports: (u16, u16),
    holder: Holder,
) -> Result<LegSockets, MediaError> {
    let attempts = crate::ports::lock(allocator).pair_count();
    let mut refused = Vec::new();
    let mut last_error = None;
    for _ in 0..attempts {
        let Some(lease) = PortLease::take(allocator, random_u32(), holder) else {
            break;
        };
        let rtp_addr = SocketAddr::new(bind_address, lease.rtp_port());
        let rtcp_addr = SocketAddr::new(bind_address, lease.rtp_port() + 1);
        match bind_pair(rtp_addr, rtcp_addr) {
            Ok((rtp, rtcp, local_rtp)) => {
                return Ok(LegSockets {
                    rtp: UdpSocket::from_std(rtp),
                    rtcp: UdpSocket::from_std(rtcp),
                    local_rtp,
                    lease: Some(lease),
                });
            }
            // Out of file descriptors, every other pair fails the same
            // way. Trying them all cost a busy relay seconds of CPU
            // before the call got its 503.
            Err((addr, error)) if out_of_descriptors(&error) => {
                return Err(MediaError::Bind {
                    addr,
                    attempts: refused.len() + 1,
                    source: error,
                });
            }
            Err((addr, error)) => {
                tracing::debug!(%addr, %error, "port refused, trying another pair");
                refused.push(lease);
                last_error = Some((addr, error));
            }
        }
    }
    Err(no_pair_bound(ports, last_error, refused.len()))
}

/// Returns the error for an open that bound no pair of the range `ports`:
/// the last bind error after `attempts` refused pairs, or an empty range.
fn no_pair_bound(
    ports: (u16, u16),
    last_error: Option<(SocketAddr, io::Error)>,
    attempts: usize,
) -> MediaError {
    match last_error {
        Some((addr, source)) => MediaError::Bind {
            addr,
            attempts,
            source,
        },
        None => MediaError::NoFreePorts {
            start: ports.0,
            end: ports.1,
        },
    }
}

/// Returns whether `error` reports that the process or the system has no
/// file descriptor left (EMFILE, ENFILE), which no other port pair cures.
fn out_of_descriptors(error: &io::Error) -> bool {
    matches!(
        error.raw_os_error().map(nix::errno::Errno::from_raw),
        Some(nix::errno::Errno::EMFILE | nix::errno::Errno::ENFILE)
    )
}

type BoundPair = (std::net::UdpSocket, std::net::UdpSocket, SocketAddr);

pub(crate) fn bind_pair(
    rtp: SocketAddr,
    rtcp: SocketAddr,
) -> Result<BoundPair, (SocketAddr, io::Error)> {
    let bind = |addr: SocketAddr| {
        let socket = std::net::UdpSocket::bind(addr)?;
        socket.set_nonblocking(true)?;
        Ok::<_, io::Error>(socket)
    };
    let rtp_socket = bind(rtp).map_err(|error| (rtp, error))?;
    let rtcp_socket = bind(rtcp).map_err(|error| (rtcp, error))?;
    let local_rtp = rtp_socket.local_addr().map_err(|error| (rtp, error))?;
    for socket in [&rtp_socket, &rtcp_socket] {
        // Without timestamps the relay forwards as before but cannot
        // report its delays.
        if let Err(error) = crate::batch::enable_receive_timestamps(socket) {
            tracing::debug!(%error, "no receive timestamps on a relay socket");
        }
    }
    Ok((rtp_socket, rtcp_socket, local_rtp))
}

/// Sockets of one leg. Fields drop in order, so the ports are closed before
/// the lease hands them back to the allocator.
pub(crate) struct LegSockets {
    pub(crate) rtp: UdpSocket,
    pub(crate) rtcp: UdpSocket,
    local_rtp: SocketAddr,
    /// `None` in a relay worker, where the PBX holds the lease.
    pub(crate) lease: Option<PortLease>,
}

impl LegSockets {
    pub(crate) fn without_lease(
        rtp: UdpSocket,
        rtcp: UdpSocket,
        local_rtp: SocketAddr,
    ) -> LegSockets {
        LegSockets {
            rtp,
            rtcp,
            local_rtp,
            lease: None,
        }
    }
}

/// Packet and byte counts of one leg, RTP and RTCP together, and the RTP
/// reception statistics of RFC 3550 for what the leg's peer sends.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct LegStats {
    /// Datagrams received from the leg's peer.
    pub packets_received: u64,
    pub bytes_received: u64,
    /// Datagrams sent to the leg's peer.
    pub packets_sent: u64,
    pub bytes_sent: u64,
    /// Datagrams dropped as neither valid RTP nor RTCP nor STUN.
    pub invalid_packets: u64,
    /// STUN messages dropped. The relay sends no STUN responses, because
    /// it does no ICE.
    pub stun_packets: u64,
    /// Datagrams dropped because they came from another source than the
    /// leg's peer: not from the SDP address's IP before a source was
    /// learned, or not from the learned source after.
    pub rejected_source: u64,
    /// RTP packets dropped because their payload type is not one the leg
    /// negotiated ([`MediaSession::set_payload_types`]).
    pub rejected_payload_type: u64,
    /// Datagrams dropped as longer than 1500 bytes.
    pub oversized_packets: u64,
    /// Datagrams from this leg dropped because the other leg had no address yet.
    pub unroutable_packets: u64,
    /// Audio RTP packets received, duplicates included (telephone-events
    /// and RTCP are not counted).
    pub rtp_packets_received: u64,
    /// Audio RTP packets expected from the extended sequence numbers (highest
    /// minus first plus one), summed over every SSRC the peer used
    /// (RFC 3550 appendix A.3).
    pub rtp_packets_expected: u64,
    /// Cumulative packets lost: expected minus received. Negative when
    /// duplicates outnumber losses, as RFC 3550 section 6.4.1 allows.
    pub rtp_packets_lost: i64,
    /// Interarrival jitter of the current SSRC (RFC 3550 appendix A.8), in
    /// microseconds.
    pub jitter_micros: u64,
    /// When the last RTP packet (audio or telephone-event) from the leg's
    /// peer was accepted, `None` before the first. Dropped datagrams and
    /// RTCP do not count, so a call whose phones stopped sending media can
    /// be ended after a timeout.
    pub last_packet_at: Option<Instant>,
}

impl LegStats {
    /// Interarrival jitter in milliseconds.
    pub fn jitter_ms(&self) -> f64 {
        self.jitter_micros as f64 / 1000.0
    }

    /// Lost packets as a fraction of expected ones, 0.0 to 1.0.
    pub fn loss_fraction(&self) -> f64 {
        if self.rtp_packets_expected == 0 {
            return 0.0;
        }
        (self.rtp_packets_lost.max(0) as f64 / self.rtp_packets_expected as f64).min(1.0)
    }

    /// Estimated MOS (1.0 to 4.5) from loss and jitter; see [`estimate_mos`]
    /// for the formula and its limits.
    pub fn mos(&self) -> f64 {
        estimate_mos(self.loss_fraction(), self.jitter_ms())
    }

    /// Datagrams from the leg's peer that the relay dropped, for any of the
    /// reasons counted apart above.
    pub fn dropped_packets(&self) -> u64 {
        self.invalid_packets
            + self.stun_packets
            + self.rejected_source
            + self.rejected_payload_type
            + self.oversized_packets
            + self.unroutable_packets
    }
}

#[derive(Debug, Default)]
pub(crate) struct LegCounters {
    pub(crate) packets_received: AtomicU64,
    pub(crate) bytes_received: AtomicU64,
    pub(crate) packets_sent: AtomicU64,
    pub(crate) bytes_sent: AtomicU64,
    pub(crate) invalid_packets: AtomicU64,
    pub(crate) stun_packets: AtomicU64,
    pub(crate) unroutable_packets: AtomicU64,
    pub(crate) rejected_source: AtomicU64,
    pub(crate) rejected_payload_type: AtomicU64,
    pub(crate) oversized_packets: AtomicU64,
    last_packet_at: Mutex<Option<Instant>>,
    reception: Mutex<ReceptionStatistics>,
}

impl LegCounters {
    pub(crate) fn record_reception(&self, packet: &RtpPacket<'_>, clock_rate: u32, now: Instant) {
        let mut reception = self
            .reception
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        reception.record(
            packet.ssrc,
            packet.sequence,
            packet.timestamp,
            clock_rate,
            now,
        );
    }

    /// Notes that an RTP packet from the leg's peer was accepted at `now`.
    pub(crate) fn rtp_arrived(&self, now: Instant) {
        *self
            .last_packet_at
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = Some(now);
    }

    pub(crate) fn snapshot(&self) -> LegStats {
        let reception = self
            .reception
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .snapshot();
        LegStats {
            rtp_packets_received: reception.received,
            rtp_packets_expected: reception.expected,
            rtp_packets_lost: reception.expected as i64 - reception.received as i64,
            jitter_micros: (reception.jitter_seconds * 1e6).round() as u64,
            packets_received: self.packets_received.load(Ordering::Relaxed),
            bytes_received: self.bytes_received.load(Ordering::Relaxed),
            packets_sent: self.packets_sent.load(Ordering::Relaxed),
            bytes_sent: self.bytes_sent.load(Ordering::Relaxed),
            invalid_packets: self.invalid_packets.load(Ordering::Relaxed),
            stun_packets: self.stun_packets.load(Ordering::Relaxed),
            unroutable_packets: self.unroutable_packets.load(Ordering::Relaxed),
            rejected_source: self.rejected_source.load(Ordering::Relaxed),
            rejected_payload_type: self.rejected_payload_type.load(Ordering::Relaxed),
            oversized_packets: self.oversized_packets.load(Ordering::Relaxed),
            last_packet_at: *self
                .last_packet_at
                .lock()
                .unwrap_or_else(PoisonError::into_inner),
        }
    }
}

pub(crate) fn add(counter: &AtomicU64, value: usize) -> u64 {
    counter.fetch_add(value as u64, Ordering::Relaxed) + value as u64
}

/// Returns a random 32-bit value for SSRCs. It comes from the standard
/// library's randomly keyed hasher, so the crate needs no RNG of its own.
fn random_u32() -> u32 {
    let mut hasher = RandomState::new().build_hasher();
    let since_epoch = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    hasher.write_u128(since_epoch.as_nanos());
    hasher.finish() as u32
}

/// Prompts decoded to 8 kHz, ready for the task's player.
pub(crate) struct PlayerStart {
    pub(crate) prompts: Vec<Arc<[i16]>>,
    pub(crate) looped: bool,
    pub(crate) barge_in: bool,
}

pub(crate) enum Control {
    SetRemote(Leg, SocketAddr),
    ResetLeg(Leg),
    StartRecording(Box<Recorder>),
    /// A relay worker could not open the recording files; the session's
    /// outcome reports it.
    FailRecording(recordings::RecordingError),
    PauseRecording(Instant),
    ResumeRecording(Instant),
    StopRecording(Instant),
    SetFeatureCode(Leg, Option<Vec<char>>),
    Subscribe(mpsc::Sender<MediaEvent>),
    SetCodecs(Leg, LegCodecs),
    SetPayloadTypes(Leg, Vec<u8>),
    Play(Leg, Box<PlayerStart>),
    StopPlayback(Leg),
    SendDigit(Leg, char),
    Close(Instant),
}

impl Control {
    /// Returns whether the relay thread must wake for this message. Other
    /// messages wait in the inbox until a datagram or the session's
    /// recording flush (every 100 ms) wakes the thread. The inbox is read
    /// before datagrams, so a change still applies to the next datagram.
    /// Each wake-up preempted the SIP side at real-time priority, 5 to 6
    /// times per call.
    pub(crate) fn is_urgent(&self) -> bool {
        match self {
            // Ends the session, which the caller of close waits for.
            Control::Close(_)
            // Start or stop packets that the thread sends on its own.
            | Control::Play(..)
            | Control::StopPlayback(_)
            | Control::SendDigit(..) => true,
            Control::SetRemote(..)
            | Control::ResetLeg(_)
            | Control::StartRecording(_)
            | Control::FailRecording(_)
            | Control::PauseRecording(_)
            | Control::ResumeRecording(_)
            | Control::StopRecording(_)
            | Control::SetFeatureCode(..)
            | Control::Subscribe(_)
            | Control::SetCodecs(..)
            | Control::SetPayloadTypes(..) => false,
        }
    }
}

/// Prompts and options for [`MediaSession::play_with`].
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PlayRequest {
    /// 16-bit PCM WAV files, mono or stereo, 8 to 192 kHz, played in order.
    pub prompts: Vec<PathBuf>,
    /// Start over after the last prompt until stopped (music on hold).
    pub looped: bool,
    /// Stop at the first DTMF digit the leg's peer sends.
    pub barge_in: bool,
}

/// Handle of one call's media; dropping it without [`MediaSession::close`]
/// also ends the task, finalizing any recording at the drop instant.
pub struct MediaSession {
    call_id: String,
    local: [SocketAddr; 2],
    control: ControlSender,
    stats: StatsSource,
    recording: AtomicBool,
    /// Whether each leg negotiated G.722, which makes recordings 16 kHz.
    wideband: [AtomicBool; 2],
    /// The receiver of the session's outcome, sent by the relay thread when
    /// the session ends and taken by [`MediaSession::close`].
    outcome: Option<oneshot::Receiver<Outcome>>,
    /// Keeps the relay's threads or workers running until the session is
    /// done.
    _backend: Backend,
}

/// The channel of a session's control messages.
pub(crate) enum ControlSender {
    Thread(ThreadSender),
    Worker(WorkerSender),
}

impl ControlSender {
    fn send(&self, control: Control) -> Result<(), SessionEnded> {
        match self {
            ControlSender::Thread(sender) => sender.send(control),
            ControlSender::Worker(sender) => sender.send(control),
        }
    }
}

/// The source of a session's figures: the relay thread's own counters, or
/// the last report of the worker that relays it.
enum StatsSource {
    Counters(Arc<[LegCounters; 2]>),
    Reported(Arc<Mutex<[LegStats; 2]>>),
}

impl MediaSession {
    /// RTP address the PBX advertises to `leg`'s peer in SDP.
    pub fn local_rtp_addr(&self, leg: Leg) -> SocketAddr {
        self.local[leg.index()]
    }

    /// Peer address from that peer's SDP. Media goes there until the leg
    /// learns its peer's source from the first valid packet that comes from
    /// this IP address (any port), or from any source when the address is
    /// private or unspecified (a phone behind NAT); packets from other
    /// sources are dropped. A different address than the previous one
    /// forgets the learned source, so a new peer can be learned.
    pub fn set_remote(&self, leg: Leg, rtp: SocketAddr) {
        // A send fails only after the task ended, when there is nothing to steer.
        let _ = self.control.send(Control::SetRemote(leg, rtp));
    }

    /// Forgets the learned source of `leg` (a new agent is tried), so the
    /// next acceptable packet is learned. The address from
    /// [`MediaSession::set_remote`] stays until set again.
    pub fn reset_leg(&self, leg: Leg) {
        let _ = self.control.send(Control::ResetLeg(leg));
    }

    /// Starts recording both directions into `path`; sample 0 is now. The
    /// file is 16 kHz when [`MediaSession::set_codecs`] gave either leg
    /// G.722 before this call, else 8 kHz.
    pub fn start_recording(&self, path: PathBuf) -> Result<(), MediaError> {
        self.start_recording_with(
            path,
            None,
            Instant::now(),
            recordings::DEFAULT_JITTER_WINDOW,
        )
    }

    /// Like [`MediaSession::start_recording`] with `start` as sample 0, such
    /// as the moment the call was answered, so that offsets into the file
    /// are offsets from that moment; the time from `start` to now is
    /// written as silence. Also writes a mono file at `mixed_mono`, when
    /// given, whose samples are the sum of both legs. Audio waits
    /// `jitter_window` for late and reordered packets before it is
    /// written. Audio that arrives later is missing from the file and
    /// counted as late.
    pub fn start_recording_with(
        &self,
        path: PathBuf,
        mixed_mono: Option<PathBuf>,
        start: Instant,
        jitter_window: Duration,
    ) -> Result<(), MediaError> {
        if self.recording.swap(true, Ordering::SeqCst) {
            return Err(MediaError::AlreadyRecording {
                call_id: self.call_id.clone(),
            });
        }
        let wideband = self.wideband.iter().any(|leg| leg.load(Ordering::SeqCst));
        let sample_rate = if wideband {
            recordings::WIDEBAND_SAMPLE_RATE
        } else {
            recordings::SAMPLE_RATE
        };
        let options = RecorderOptions {
            jitter_window,
            sample_rate,
            mixed_mono,
        };
        if let ControlSender::Worker(sender) = &self.control {
            // The worker opens the files; creating them here first reports
            // a bad folder or permission now, as in the PBX's own threads.
            let created = std::iter::once(&path)
                .chain(options.mixed_mono.as_ref())
                .try_for_each(|file| precreate_recording(file));
            let sent = created.and_then(|()| {
                sender
                    .start_recording(path, start, options)
                    .map_err(|_| MediaError::SessionEnded {
                        call_id: self.call_id.clone(),
                    })
            });
            return sent.map_err(|error| {
                self.recording.store(false, Ordering::SeqCst);
                match error {
                    MediaError::Recording { source, .. } => MediaError::Recording {
                        call_id: self.call_id.clone(),
                        source,
                    },
                    other => other,
                }
            });
        }
        let recorder = Recorder::with_options(&path, start, options);
        let recorder = recorder.map_err(|source| {
            self.recording.store(false, Ordering::SeqCst);
            MediaError::Recording {
                call_id: self.call_id.clone(),
                source,
            }
        })?;
        self.control
            .send(Control::StartRecording(Box::new(recorder)))
            .map_err(|_| MediaError::SessionEnded {
                call_id: self.call_id.clone(),
            })
    }

    /// Pauses (`paused` true) or resumes the recording at `at`: from there
    /// on both channels are written as silence, or carry audio again. `at`
    /// should lie within the recording's jitter window before now; an
    /// older one takes effect at the first frame not yet written. Pausing a paused recording, resuming one that is not
    /// paused, or either without a recording changes nothing.
    pub fn set_recording_paused(&self, paused: bool, at: Instant) {
        let control = if paused {
            Control::PauseRecording(at)
        } else {
            Control::ResumeRecording(at)
        };
        let _ = self.control.send(control);
    }

    /// Finalizes the recording with `at` as its end, while the relay
    /// carries on: for a caller who stays on the line after the agent's
    /// part of the call (a post-call survey). [`MediaSession::close`] then
    /// returns that recording's summary. Without a recording, or after an
    /// earlier stop, nothing changes.
    pub fn stop_recording(&self, at: Instant) {
        let _ = self.control.send(Control::StopRecording(at));
    }

    /// Watches `leg` for `code`, a sequence of DTMF keys such as `*1` sent
    /// as RFC 4733 telephone-events: its keys are held back from the other
    /// leg, and the receivers of [`MediaSession::events`] get
    /// [`MediaEvent::FeatureCode`] when it is complete. Keys that turn out
    /// not to be the code, or that no key follows within 2 s, are sent on
    /// late. `None` stops watching. Keys sent as in-band tones or SIP INFO
    /// are not seen here.
    pub fn set_feature_code(&self, leg: Leg, code: Option<&str>) -> Result<(), MediaError> {
        let keys = match code {
            Some(code) => Some(parse_feature_code(code)?),
            None => None,
        };
        self.control
            .send(Control::SetFeatureCode(leg, keys))
            .map_err(|_| MediaError::SessionEnded {
                call_id: self.call_id.clone(),
            })
    }

    /// Packets/bytes received and sent, and RTP reception statistics.
    pub fn stats(&self, leg: Leg) -> LegStats {
        match &self.stats {
            StatsSource::Counters(counters) => counters[leg.index()].snapshot(),
            StatsSource::Reported(reported) => {
                reported.lock().unwrap_or_else(PoisonError::into_inner)[leg.index()]
            }
        }
    }

    /// Subscribes to the DTMF digits and playback ends of both legs. The
    /// receiver gets every event from now on, but misses new ones while 64
    /// are unread. Dropping it unsubscribes.
    pub fn events(&self) -> mpsc::Receiver<MediaEvent> {
        let (sender, receiver) = mpsc::channel(EVENT_CAPACITY);
        let _ = self.control.send(Control::Subscribe(sender));
        receiver
    }

    /// Sets the codecs `leg` negotiated. The relay transcodes when the legs'
    /// codecs differ and rewrites the telephone-event payload type. With
    /// `event_payload_type` `None`, digits reach that leg as in-band tones.
    /// Until this is called, a leg's packets pass unchanged and its
    /// telephone-events are expected on payload type 101.
    pub fn set_codecs(&self, leg: Leg, codec: Codec, event_payload_type: Option<u8>) {
        self.wideband[leg.index()].store(codec == Codec::G722, Ordering::SeqCst);
        let codecs = LegCodecs {
            codec,
            event_payload_type,
        };
        let _ = self.control.send(Control::SetCodecs(leg, codecs));
    }

    /// Sets the RTP payload types `leg`'s peer negotiated, telephone-event
    /// and comfort noise included; RTP with any other type from that peer is
    /// dropped. Until this is called, 0, 8, 9 and 96 to 127 are accepted.
    pub fn set_payload_types(&self, leg: Leg, payload_types: &[u8]) {
        let types = payload_types.iter().map(|pt| pt & 0x7F).collect();
        let _ = self.control.send(Control::SetPayloadTypes(leg, types));
    }

    /// Plays `prompts` to `leg` in its codec, once or `looped`, muting what
    /// the other leg sends to it meanwhile; see [`MediaSession::play_with`].
    pub async fn play(
        &self,
        leg: Leg,
        prompts: Vec<PathBuf>,
        looped: bool,
    ) -> Result<(), MediaError> {
        let request = PlayRequest {
            prompts,
            looped,
            barge_in: false,
        };
        self.play_with(leg, request).await
    }

    /// Loads the request's WAV files on a blocking thread, resamples them to
    /// 8 kHz and starts playing them to `leg`, replacing what was playing.
    /// Returns once playback started; [`MediaEvent::PlaybackEnded`] reports
    /// the end. Fails without touching playback when a file cannot be read.
    pub async fn play_with(&self, leg: Leg, request: PlayRequest) -> Result<(), MediaError> {
        let paths = request.prompts;
        let loaded = tokio::task::spawn_blocking(move || {
            paths
                .iter()
                .map(|path| crate::prompt::load_prompt(path).map(Arc::from))
                .collect::<Result<Vec<Arc<[i16]>>, _>>()
        })
        .await
        .map_err(|source| MediaError::TaskFailed {
            call_id: self.call_id.clone(),
            source,
        })?;
        let prompts = loaded.map_err(|source| MediaError::Prompt {
            call_id: self.call_id.clone(),
            source,
        })?;
        let start = PlayerStart {
            prompts,
            looped: request.looped,
            barge_in: request.barge_in,
        };
        self.control
            .send(Control::Play(leg, Box::new(start)))
            .map_err(|_| MediaError::SessionEnded {
                call_id: self.call_id.clone(),
            })
    }

    /// Plays prompts already loaded with [`load_prompt`] to `leg`, as
    /// [`MediaSession::play_with`] does, without touching the disk: for
    /// music on hold and announcements that many calls share.
    pub fn play_loaded(
        &self,
        leg: Leg,
        prompts: Vec<Arc<[i16]>>,
        looped: bool,
        barge_in: bool,
    ) -> Result<(), MediaError> {
        let start = PlayerStart {
            prompts,
            looped,
            barge_in,
        };
        self.control
            .send(Control::Play(leg, Box::new(start)))
            .map_err(|_| MediaError::SessionEnded {
                call_id: self.call_id.clone(),
            })
    }

    /// Stops what plays to `leg`; relaying from the other leg resumes.
    pub fn stop_playback(&self, leg: Leg) {
        let _ = self.control.send(Control::StopPlayback(leg));
    }

    /// Sends a DTMF key (`0`-`9`, `*`, `#`, `A`-`D`) to `leg` as RFC 4733
    /// events, or as an in-band tone when the leg's codecs have no
    /// telephone-event payload type; for SIP INFO digits from the other leg.
    pub fn send_dtmf(&self, leg: Leg, digit: char) -> Result<(), MediaError> {
        if rtp::telephone_event::digit_to_event(digit).is_none() {
            return Err(MediaError::NotADigit { digit });
        }
        self.control
            .send(Control::SendDigit(leg, digit))
            .map_err(|_| MediaError::SessionEnded {
                call_id: self.call_id.clone(),
            })
    }

    /// Ends the session on its relay thread, frees the ports and finalizes
    /// the recording.
    pub async fn close(self) -> Result<Option<RecordingSummary>, MediaError> {
        self.close_with_stats().await.0
    }

    /// Like [`MediaSession::close`], and returns both legs' final figures
    /// (caller first), which count every packet up to the close. The close
    /// is sent when this function is called, before the returned future is
    /// first polled, so a [`crate::WakeBatch`] of the caller covers it.
    pub fn close_with_stats(
        mut self,
    ) -> impl Future<Output = (Result<Option<RecordingSummary>, MediaError>, [LegStats; 2])>
    + Send
    + 'static {
        let _ = self.control.send(Control::Close(Instant::now()));
        async move {
            let ended = || MediaError::SessionEnded {
                call_id: self.call_id.clone(),
            };
            let outcome = match self.outcome.take() {
                // The thread drops the sender only when it stops, which it
                // does after every session has handed over its outcome.
                Some(outcome) => outcome.await.unwrap_or_else(|_| Err(ended())),
                None => Err(ended()),
            };
            (outcome, [self.stats(Leg::Caller), self.stats(Leg::Agent)])
        }
    }
}

impl Drop for MediaSession {
    /// Ends the session at the drop instant, finalizing any recording;
    /// after [`MediaSession::close`] the session has already ended and this
    /// does nothing.
    fn drop(&mut self) {
        let _ = self.control.send(Control::Close(Instant::now()));
    }
}

/// Creates the folder and an empty file at `path`, which the relay worker
/// then opens as a recording, so that a path it cannot write fails where
/// the recording starts.
fn precreate_recording(path: &std::path::Path) -> Result<(), MediaError> {
    let recording_error = |source| MediaError::Recording {
        call_id: String::new(),
        source,
    };
    if let Some(folder) = path
        .parent()
        .filter(|folder| !folder.as_os_str().is_empty())
    {
        std::fs::create_dir_all(folder).map_err(|source| {
            recording_error(recordings::RecordingError::CreateFolder {
                path: folder.to_path_buf(),
                source,
            })
        })?;
    }
    std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .open(path)
        .map(drop)
        .map_err(|source| {
            recording_error(recordings::RecordingError::Create {
                path: path.to_path_buf(),
                source: hound::Error::IoError(source),
            })
        })
}

/// Checks a feature code: 1 to [`crate::MAX_FEATURE_CODE_KEYS`] DTMF keys,
/// letters in upper case.
fn parse_feature_code(code: &str) -> Result<Vec<char>, MediaError> {
    let keys: Vec<char> = code.chars().map(|key| key.to_ascii_uppercase()).collect();
    let valid = (1..=crate::MAX_FEATURE_CODE_KEYS).contains(&keys.len())
        && keys
            .iter()
            .all(|&key| rtp::telephone_event::digit_to_event(key).is_some());
    if !valid {
        return Err(MediaError::InvalidFeatureCode {
            code: code.to_owned(),
        });
    }
    Ok(keys)
}

/// Reads a 16-bit PCM WAV prompt (mono or stereo, 8 to 192 kHz) into the
/// 8 kHz samples [`MediaSession::play_loaded`] takes.
pub fn load_prompt(path: &std::path::Path) -> Result<Arc<[i16]>, crate::PromptError> {
    crate::prompt::load_prompt(path).map(Arc::from)
}
