//! The relay, its sessions and the per-session task.

use std::future::poll_fn;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use recordings::{Channel, Recorder, RecordingSummary};
use rtp::{RtpPacket, is_rtcp};
use tokio::io::ReadBuf;
use tokio::net::UdpSocket;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tracing::Instrument;

use crate::latch::Latch;
use crate::ports::{PortAllocator, PortLease};
use crate::{Leg, MediaError, RelayConfig};

/// How often the task writes recorded audio out of the jitter window.
const FLUSH_INTERVAL: Duration = Duration::from_millis(100);
/// Valid RTP packets in a row from a new source before the latch follows it
/// (60 ms of 20 ms packets).
const RTP_LATCH_CONFIRM: u32 = 3;
/// RTCP comes every few seconds, so a new source is followed sooner.
const RTCP_LATCH_CONFIRM: u32 = 2;
/// Receive buffer size. Larger datagrams are cut by the OS; G.711 at 20 ms
/// is 172 bytes and no audio codec the PBX offers comes near this.
const RECEIVE_BUFFER: usize = 4096;

/// Shared by all calls; cheap to clone.
#[derive(Clone)]
pub struct Relay {
    bind_address: IpAddr,
    allocator: Arc<Mutex<PortAllocator>>,
    ports: (u16, u16),
}

impl Relay {
    /// Validates the range (even start, >= 4 ports).
    pub fn new(config: RelayConfig) -> Result<Relay, MediaError> {
        let allocator = PortAllocator::new(&config.ports)?;
        Ok(Relay {
            bind_address: config.bind_address,
            allocator: Arc::new(Mutex::new(allocator)),
            ports: (*config.ports.start(), *config.ports.end()),
        })
    }

    /// Port pairs currently held by open sessions.
    pub fn used_port_pairs(&self) -> usize {
        crate::ports::lock(&self.allocator).used()
    }

    /// Binds an RTP+RTCP port pair for each leg and starts the relay task.
    pub async fn open_session(&self, call_id: &str) -> Result<MediaSession, MediaError> {
        let caller = self.bind_leg().await?;
        let agent = self.bind_leg().await?;
        let local = [caller.local_rtp, agent.local_rtp];
        let counters = Arc::new([LegCounters::default(), LegCounters::default()]);
        let (control, control_receiver) = mpsc::unbounded_channel();

        let span = tracing::info_span!("media_session", call_id = %call_id);
        span.in_scope(
            || tracing::info!(caller = %local[0], agent = %local[1], "media session opened"),
        );
        let task = SessionTask {
            call_id: call_id.to_owned(),
            sockets: [caller, agent],
            state: RelayState::new(Arc::clone(&counters)),
            control: control_receiver,
        };
        let task = tokio::spawn(task.run().instrument(span));
        Ok(MediaSession {
            call_id: call_id.to_owned(),
            local,
            control,
            counters,
            recording: AtomicBool::new(false),
            task,
        })
    }

    /// Tries free pairs until both ports of one bind, giving up after every
    /// pair of the range was tried once.
    async fn bind_leg(&self) -> Result<LegSockets, MediaError> {
        let attempts = crate::ports::lock(&self.allocator).pair_count();
        let mut last_error = None;
        for _ in 0..attempts {
            let Some(lease) = PortLease::take(&self.allocator) else {
                break;
            };
            let rtp_addr = SocketAddr::new(self.bind_address, lease.rtp_port());
            let rtcp_addr = SocketAddr::new(self.bind_address, lease.rtp_port() + 1);
            match bind_pair(rtp_addr, rtcp_addr).await {
                Ok((rtp, rtcp, local_rtp)) => {
                    return Ok(LegSockets {
                        rtp,
                        rtcp,
                        local_rtp,
                        _lease: lease,
                    });
                }
                Err((addr, error)) => {
                    tracing::debug!(%addr, %error, "port refused, trying the next pair");
                    last_error = Some((addr, error));
                }
            }
        }
        Err(match last_error {
            Some((addr, source)) => MediaError::Bind {
                addr,
                attempts,
                source,
            },
            None => MediaError::NoFreePorts {
                start: self.ports.0,
                end: self.ports.1,
            },
        })
    }
}

type BoundPair = (UdpSocket, UdpSocket, SocketAddr);

async fn bind_pair(
    rtp: SocketAddr,
    rtcp: SocketAddr,
) -> Result<BoundPair, (SocketAddr, io::Error)> {
    let rtp_socket = UdpSocket::bind(rtp).await.map_err(|error| (rtp, error))?;
    let rtcp_socket = UdpSocket::bind(rtcp).await.map_err(|error| (rtcp, error))?;
    let local_rtp = rtp_socket.local_addr().map_err(|error| (rtp, error))?;
    Ok((rtp_socket, rtcp_socket, local_rtp))
}

/// Sockets of one leg. Fields drop in order, so the ports are closed before
/// the lease hands them back to the allocator.
struct LegSockets {
    rtp: UdpSocket,
    rtcp: UdpSocket,
    local_rtp: SocketAddr,
    _lease: PortLease,
}

/// Packet and byte counts of one leg, RTP and RTCP together.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct LegStats {
    /// Datagrams received from the leg's peer.
    pub packets_received: u64,
    pub bytes_received: u64,
    /// Datagrams sent to the leg's peer.
    pub packets_sent: u64,
    pub bytes_sent: u64,
    /// Datagrams dropped as neither valid RTP nor RTCP.
    pub invalid_packets: u64,
    /// Datagrams from this leg dropped because the other leg had no address yet.
    pub unroutable_packets: u64,
}

#[derive(Debug, Default)]
struct LegCounters {
    packets_received: AtomicU64,
    bytes_received: AtomicU64,
    packets_sent: AtomicU64,
    bytes_sent: AtomicU64,
    invalid_packets: AtomicU64,
    unroutable_packets: AtomicU64,
}

impl LegCounters {
    fn snapshot(&self) -> LegStats {
        LegStats {
            packets_received: self.packets_received.load(Ordering::Relaxed),
            bytes_received: self.bytes_received.load(Ordering::Relaxed),
            packets_sent: self.packets_sent.load(Ordering::Relaxed),
            bytes_sent: self.bytes_sent.load(Ordering::Relaxed),
            invalid_packets: self.invalid_packets.load(Ordering::Relaxed),
            unroutable_packets: self.unroutable_packets.load(Ordering::Relaxed),
        }
    }
}

fn add(counter: &AtomicU64, value: usize) -> u64 {
    counter.fetch_add(value as u64, Ordering::Relaxed) + value as u64
}

enum Control {
    SetRemote(Leg, SocketAddr),
    ResetLeg(Leg),
    StartRecording(Box<Recorder>),
    Close(Instant),
}

/// Handle of one call's media; dropping it without [`MediaSession::close`]
/// also ends the task, finalizing any recording at the drop instant.
pub struct MediaSession {
    call_id: String,
    local: [SocketAddr; 2],
    control: mpsc::UnboundedSender<Control>,
    counters: Arc<[LegCounters; 2]>,
    recording: AtomicBool,
    task: JoinHandle<Result<Option<RecordingSummary>, MediaError>>,
}

impl MediaSession {
    /// RTP address the PBX advertises to `leg`'s peer in SDP.
    pub fn local_rtp_addr(&self, leg: Leg) -> SocketAddr {
        self.local[leg.index()]
    }

    /// Peer address from that peer's SDP; the first packet received on the
    /// leg (symmetric RTP latching) replaces it.
    pub fn set_remote(&self, leg: Leg, rtp: SocketAddr) {
        // A send fails only after the task ended, when there is nothing to steer.
        let _ = self.control.send(Control::SetRemote(leg, rtp));
    }

    /// Forgets the latched peer of `leg` (a new agent is tried). The address
    /// from [`MediaSession::set_remote`] stays until set again.
    pub fn reset_leg(&self, leg: Leg) {
        let _ = self.control.send(Control::ResetLeg(leg));
    }

    /// Starts recording both directions into `path`; sample 0 is now.
    pub fn start_recording(&self, path: PathBuf) -> Result<(), MediaError> {
        if self.recording.swap(true, Ordering::SeqCst) {
            return Err(MediaError::AlreadyRecording {
                call_id: self.call_id.clone(),
            });
        }
        let recorder = Recorder::create(&path, Instant::now()).map_err(|source| {
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

    /// Packets/bytes received and sent.
    pub fn stats(&self, leg: Leg) -> LegStats {
        self.counters[leg.index()].snapshot()
    }

    /// Stops the relay task, frees the ports and finalizes the recording.
    pub async fn close(self) -> Result<Option<RecordingSummary>, MediaError> {
        let _ = self.control.send(Control::Close(Instant::now()));
        match self.task.await {
            Ok(result) => result,
            Err(source) => Err(MediaError::TaskFailed {
                call_id: self.call_id,
                source,
            }),
        }
    }
}

/// Which of the four sockets a datagram came in on.
#[derive(Clone, Copy, Debug)]
struct Origin {
    leg: Leg,
    rtcp: bool,
}

enum Wake {
    Datagram {
        origin: Origin,
        source: SocketAddr,
        length: usize,
    },
    ReceiveFailed {
        origin: Origin,
        error: io::Error,
    },
    Control(Option<Control>),
    Flush,
}

struct SessionTask {
    call_id: String,
    sockets: [LegSockets; 2],
    state: RelayState,
    control: mpsc::UnboundedReceiver<Control>,
}

impl SessionTask {
    async fn run(mut self) -> Result<Option<RecordingSummary>, MediaError> {
        let mut buffer = vec![0u8; RECEIVE_BUFFER];
        let mut flush_timer = tokio::time::interval(FLUSH_INTERVAL);
        flush_timer.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut first_socket = 0;
        let end = loop {
            first_socket = (first_socket + 1) % 4;
            let wake = poll_fn(|context| {
                poll_wake(
                    context,
                    &self.sockets,
                    &mut buffer,
                    first_socket,
                    &mut self.control,
                    &mut flush_timer,
                )
            })
            .await;
            match wake {
                Wake::Datagram {
                    origin,
                    source,
                    length,
                } => {
                    let datagram = &buffer[..length];
                    self.state
                        .relay(&self.sockets, origin, source, datagram)
                        .await;
                }
                Wake::ReceiveFailed { origin, error } => {
                    // ICMP port unreachable from an earlier send shows up here
                    // on some systems; the socket itself stays usable.
                    tracing::debug!(?origin, %error, "receive failed");
                }
                Wake::Control(Some(Control::Close(at))) => break at,
                Wake::Control(None) => break Instant::now(),
                Wake::Control(Some(control)) => self.state.apply(control),
                Wake::Flush => self.state.flush_recording(Instant::now()),
            }
        };
        let result = self.state.finish_recording(end, &self.call_id);
        let caller = self.state.counters[0].snapshot();
        let agent = self.state.counters[1].snapshot();
        tracing::info!(?caller, ?agent, "media session closed");
        result
    }
}

/// Polls the control channel, the four sockets (starting at `first_socket`
/// so no socket starves the others) and the flush timer.
fn poll_wake(
    context: &mut Context<'_>,
    sockets: &[LegSockets; 2],
    buffer: &mut [u8],
    first_socket: usize,
    control: &mut mpsc::UnboundedReceiver<Control>,
    flush_timer: &mut tokio::time::Interval,
) -> Poll<Wake> {
    if let Poll::Ready(message) = control.poll_recv(context) {
        return Poll::Ready(Wake::Control(message));
    }
    for offset in 0..4 {
        let slot = (first_socket + offset) % 4;
        let leg = if slot < 2 { Leg::Caller } else { Leg::Agent };
        let origin = Origin {
            leg,
            rtcp: slot % 2 == 1,
        };
        let sockets = &sockets[leg.index()];
        let socket = if origin.rtcp {
            &sockets.rtcp
        } else {
            &sockets.rtp
        };
        let mut read = ReadBuf::new(buffer);
        match socket.poll_recv_from(context, &mut read) {
            Poll::Ready(Ok(source)) => {
                let length = read.filled().len();
                return Poll::Ready(Wake::Datagram {
                    origin,
                    source,
                    length,
                });
            }
            Poll::Ready(Err(error)) => return Poll::Ready(Wake::ReceiveFailed { origin, error }),
            Poll::Pending => {}
        }
    }
    if flush_timer.poll_tick(context).is_ready() {
        return Poll::Ready(Wake::Flush);
    }
    Poll::Pending
}

/// Latches and addresses of one leg's peer.
struct PeerAddresses {
    remote: Option<SocketAddr>,
    rtp: Latch,
    rtcp: Latch,
}

impl PeerAddresses {
    fn new() -> PeerAddresses {
        PeerAddresses {
            remote: None,
            rtp: Latch::new(RTP_LATCH_CONFIRM),
            rtcp: Latch::new(RTCP_LATCH_CONFIRM),
        }
    }

    fn rtp_destination(&self) -> Option<SocketAddr> {
        self.rtp.current().or(self.remote)
    }

    /// Latched RTCP source, else the port above the RTP address
    /// (RFC 3550 section 11).
    fn rtcp_destination(&self) -> Option<SocketAddr> {
        self.rtcp.current().or_else(|| {
            let rtp = self.rtp_destination()?;
            let port = rtp.port().checked_add(1)?;
            Some(SocketAddr::new(rtp.ip(), port))
        })
    }
}

/// Everything the task changes: addresses, counters and the recorder.
struct RelayState {
    peers: [PeerAddresses; 2],
    counters: Arc<[LegCounters; 2]>,
    recorder: Option<Box<Recorder>>,
    recording_error: Option<recordings::RecordingError>,
}

impl RelayState {
    fn new(counters: Arc<[LegCounters; 2]>) -> RelayState {
        RelayState {
            peers: [PeerAddresses::new(), PeerAddresses::new()],
            counters,
            recorder: None,
            recording_error: None,
        }
    }

    fn apply(&mut self, control: Control) {
        match control {
            Control::SetRemote(leg, addr) => {
                tracing::debug!(?leg, %addr, "remote address set");
                self.peers[leg.index()].remote = Some(addr);
            }
            Control::ResetLeg(leg) => {
                tracing::debug!(?leg, "latch reset");
                let peer = &mut self.peers[leg.index()];
                peer.rtp.reset();
                peer.rtcp.reset();
            }
            Control::StartRecording(recorder) => {
                tracing::info!(path = %recorder.path().display(), "recording started");
                self.recorder = Some(recorder);
            }
            // The task loop handles Close before it gets here.
            Control::Close(_) => {}
        }
    }

    /// Handles one datagram: validates, latches, records and forwards it.
    async fn relay(
        &mut self,
        sockets: &[LegSockets; 2],
        origin: Origin,
        source: SocketAddr,
        datagram: &[u8],
    ) {
        let counters = Arc::clone(&self.counters);
        let counters = &counters[origin.leg.index()];
        add(&counters.packets_received, 1);
        add(&counters.bytes_received, datagram.len());

        // On the RTP port, RTCP may come multiplexed (RFC 5761); it is relayed
        // and latches like RTP but is not recorded.
        let rtcp = is_rtcp(datagram);
        let valid = if origin.rtcp {
            rtcp
        } else {
            rtcp || self.record(origin.leg, datagram)
        };
        if !valid {
            let count = add(&counters.invalid_packets, 1);
            if count.is_power_of_two() {
                tracing::warn!(leg = ?origin.leg, rtcp_port = origin.rtcp, %source, count, "invalid packet dropped");
            }
            return;
        }

        let peer = &mut self.peers[origin.leg.index()];
        let latch = if origin.rtcp {
            &mut peer.rtcp
        } else {
            &mut peer.rtp
        };
        if latch.observe(source) {
            tracing::debug!(leg = ?origin.leg, rtcp_port = origin.rtcp, %source, "peer address latched");
        }
        self.forward(sockets, origin, datagram).await;
    }

    /// Feeds an RTP packet to the recorder; returns whether it parsed.
    fn record(&mut self, leg: Leg, datagram: &[u8]) -> bool {
        let Ok(packet) = RtpPacket::parse(datagram) else {
            return false;
        };
        if let Some(recorder) = self.recorder.as_mut() {
            let channel = match leg {
                Leg::Caller => Channel::Caller,
                Leg::Agent => Channel::Agent,
            };
            recorder.push(channel, &packet, Instant::now());
        }
        true
    }

    async fn forward(&self, sockets: &[LegSockets; 2], origin: Origin, datagram: &[u8]) {
        let to = origin.leg.other();
        let peer = &self.peers[to.index()];
        let (socket, destination) = if origin.rtcp {
            (&sockets[to.index()].rtcp, peer.rtcp_destination())
        } else {
            (&sockets[to.index()].rtp, peer.rtp_destination())
        };
        let Some(destination) = destination else {
            add(&self.counters[origin.leg.index()].unroutable_packets, 1);
            return;
        };
        match socket.send_to(datagram, destination).await {
            Ok(sent) => {
                let counters = &self.counters[to.index()];
                add(&counters.packets_sent, 1);
                add(&counters.bytes_sent, sent);
            }
            Err(error) => tracing::trace!(%destination, %error, "send failed"),
        }
    }

    fn flush_recording(&mut self, now: Instant) {
        let Some(recorder) = self.recorder.as_mut() else {
            return;
        };
        if let Err(error) = recorder.flush(now) {
            // Stop recording but keep relaying; close reports the error.
            tracing::error!(%error, "recording stopped");
            self.recorder = None;
            self.recording_error = Some(error);
        }
    }

    fn finish_recording(
        &mut self,
        end: Instant,
        call_id: &str,
    ) -> Result<Option<RecordingSummary>, MediaError> {
        if let Some(source) = self.recording_error.take() {
            return Err(MediaError::Recording {
                call_id: call_id.to_owned(),
                source,
            });
        }
        let Some(recorder) = self.recorder.take() else {
            return Ok(None);
        };
        match recorder.finish(end) {
            Ok(summary) => {
                tracing::info!(frames = summary.frames, path = %summary.path.display(), "recording finished");
                Ok(Some(summary))
            }
            Err(source) => {
                tracing::error!(error = %source, "recording failed");
                Err(MediaError::Recording {
                    call_id: call_id.to_owned(),
                    source,
                })
            }
        }
    }
}
