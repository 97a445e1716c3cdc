//! Relay worker processes: the relay's threads in child processes, for a
//! PBX whose open files limit is too low for its calls. Each call keeps
//! four sockets open. Under a hard limit of 20,000 descriptors, which an
//! unprivileged process cannot raise, one process relays at most about
//! 4,700 calls, and every worker has a limit of its own.
//!
//! The PBX keeps the port allocator and picks each leg's ports. The worker
//! binds them, relays and records, and replies over one `SOCK_SEQPACKET`
//! socket, its standard input ([`wire`] has the messages). Opening a
//! session waits for the worker's reply, so a port that another program
//! has bound is skipped as in the PBX's own threads. Reception figures and delay
//! counts come back once a second and with each session's end, so
//! [`crate::MediaSession::stats`] lags by up to a second here.
//!
//! A worker ends its sessions, finalizing their recordings, when the link
//! closes: when the PBX stops, is killed or crashes. When a worker dies,
//! the PBX ends its sessions with [`MediaError::Worker`] and starts a new
//! worker for the next call.

pub(crate) mod wire;

use std::collections::HashMap;
use std::ffi::OsString;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::os::fd::OwnedFd;
use std::os::unix::net::UnixDatagram;
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, Weak};
use std::time::{Duration, Instant};

use mio::net::UdpSocket;
use recordings::{Recorder, RecorderOptions};
use tokio::sync::{mpsc, oneshot};

use crate::delay::SharedDelays;
use crate::ports::PortLease;
use crate::session::{Control, LegCounters, LegSockets, PlayerStart};
use crate::shard::{NewSession, Outcome, RelayThreads, ThreadSender};
use crate::state::RelayState;
use crate::{Leg, LegStats, MediaError, MediaEvent, RelayDelays};
use wire::{FromWorker, ToWorker};

/// Largest datagram either end sends. Prompt chunks and stats batches stay
/// under it, and [`wire`] shortens texts that could pass it; a longer
/// datagram is read as a broken link.
const MAX_MESSAGE: usize = 64 * 1024;
/// How often a worker reports the figures that changed.
const REPORT_INTERVAL: Duration = Duration::from_secs(1);
/// How long an open waits for the worker's reply before the PBX stops the
/// worker as hung and fails the call's media.
const OPEN_TIMEOUT: Duration = Duration::from_secs(5);
/// How long a slot whose worker could not start waits before the next try,
/// so that a broken program does not cost a process start per call.
const RESPAWN_BACKOFF: Duration = Duration::from_secs(1);

/// Settings of the workers that [`crate::Relay::with_processes`] starts.
#[derive(Clone, Debug)]
pub struct RelayProcesses {
    /// Worker processes; a new session goes to the one with the fewest.
    pub count: usize,
    /// A program that calls [`serve_worker`] with its standard input, such
    /// as the PBX's own binary with the arguments below.
    pub program: PathBuf,
    pub args: Vec<OsString>,
    /// The name the workers get as `argv[0]`, which `ps` and `pidof` show;
    /// `None` keeps `program`.
    pub arg0: Option<OsString>,
}

/// The worker processes of one relay.
pub(crate) struct Workers {
    processes: RelayProcesses,
    hello: ToWorker,
    slots: Vec<Mutex<Slot>>,
    next_id: AtomicU64,
    next_prompt: Arc<AtomicU64>,
    /// Workers that exited or were stopped while the relay ran.
    exits: Arc<AtomicU64>,
    /// Delay counts of workers that exited, so the relay's totals never
    /// go back.
    retired: Mutex<(Vec<u64>, Duration)>,
}

/// A worker's place in [`Workers`].
struct Slot {
    link: Arc<Link>,
    /// When starting a replacement last failed.
    failed_at: Option<Instant>,
}

/// One worker process and the sessions it relays.
pub(crate) struct Link {
    pid: u32,
    /// The PBX's end of the link, for [`Link::abandon`].
    socket: UnixDatagram,
    /// Set when the PBX gives up on a worker that did not reply; the
    /// reader then kills the process.
    abandoned: AtomicBool,
    /// Shared with [`Workers::exits`].
    exits: Arc<AtomicU64>,
    /// Taken when the relay is dropped, which lets the writer thread finish
    /// and close the link.
    outbox: Mutex<Option<std::sync::mpsc::Sender<Vec<u8>>>>,
    alive: AtomicBool,
    open: AtomicUsize,
    next_prompt: Arc<AtomicU64>,
    state: Mutex<LinkState>,
}

#[derive(Default)]
struct LinkState {
    /// Opens waiting for the worker's reply.
    pending: HashMap<u64, oneshot::Sender<OpenReply>>,
    sessions: HashMap<u64, RemoteEntry>,
    delays: (Vec<u64>, Duration),
    /// Prompts the worker keeps, by the address of their samples.
    prompts: HashMap<usize, (Weak<[i16]>, u64)>,
}

struct RemoteEntry {
    call_id: String,
    /// Held until the worker has closed the ports.
    _leases: [PortLease; 2],
    done: Option<oneshot::Sender<Outcome>>,
    subscribers: Vec<mpsc::Sender<MediaEvent>>,
    stats: Arc<Mutex<[LegStats; 2]>>,
    ended: Arc<AtomicBool>,
}

/// The worker's reply to an open, as the reader hands it over.
enum OpenReply {
    Opened,
    /// A port did not bind; the leases come back for another try.
    Refused {
        failure: wire::BindFailure,
        leases: [PortLease; 2],
    },
    Failed(String),
}

/// Reason a worker did not open a session.
pub(crate) enum OpenFailure {
    /// A port of `leg` did not bind; the leases come back for another try.
    Bind {
        leg: Leg,
        error: io::Error,
        leases: [PortLease; 2],
    },
    Worker(String),
}

/// An open session in a worker, for [`crate::MediaSession`].
pub(crate) struct RemoteSession {
    pub(crate) control: WorkerSender,
    pub(crate) outcome: oneshot::Receiver<Outcome>,
    pub(crate) stats: Arc<Mutex<[LegStats; 2]>>,
}

/// Sends control messages to one session in a worker.
pub(crate) struct WorkerSender {
    link: Arc<Link>,
    id: u64,
    ended: Arc<AtomicBool>,
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Workers {
    pub(crate) fn start(
        processes: RelayProcesses,
        threads: usize,
        spin: Duration,
        realtime_priority: u8,
        coalesce: Duration,
    ) -> Result<Workers, MediaError> {
        let hello = ToWorker::Hello {
            version: wire::VERSION,
            threads: u32::try_from(threads).unwrap_or(u32::MAX),
            spin,
            realtime_priority,
            coalesce,
        };
        let next_prompt = Arc::new(AtomicU64::new(1));
        let exits = Arc::new(AtomicU64::new(0));
        let mut slots = Vec::new();
        for _ in 0..processes.count.max(1) {
            let link = Link::spawn(&processes, &hello, &next_prompt, &exits).map_err(|source| {
                MediaError::WorkerStart {
                    program: processes.program.clone(),
                    source,
                }
            })?;
            slots.push(Mutex::new(Slot {
                link,
                failed_at: None,
            }));
        }
        Ok(Workers {
            processes,
            hello,
            slots,
            next_id: AtomicU64::new(1),
            next_prompt,
            exits,
            retired: Mutex::default(),
        })
    }

    /// Returns the workers that exited or were stopped as hung while the
    /// relay ran.
    pub(crate) fn exits(&self) -> u64 {
        self.exits.load(Ordering::Relaxed)
    }

    /// Returns the number of worker slots.
    pub(crate) fn count(&self) -> usize {
        self.slots.len()
    }

    /// Process ids of the current workers.
    pub(crate) fn pids(&self) -> Vec<u32> {
        self.slots.iter().map(|slot| lock(slot).link.pid).collect()
    }

    /// Returns the live worker with the fewest sessions, after replacing
    /// those that exited.
    fn pick(&self) -> Result<Arc<Link>, String> {
        let mut best: Option<Arc<Link>> = None;
        let mut last_error = None;
        for slot in &self.slots {
            let mut slot = lock(slot);
            if !slot.link.alive.load(Ordering::Acquire) {
                if slot
                    .failed_at
                    .is_some_and(|failed| failed.elapsed() < RESPAWN_BACKOFF)
                {
                    continue;
                }
                // TODO: start replacements off the caller's task; this one
                // can be the SIP engine's, and a start takes milliseconds.
                match Link::spawn(&self.processes, &self.hello, &self.next_prompt, &self.exits) {
                    Ok(new) => {
                        tracing::warn!(old = slot.link.pid, new = new.pid, "relay worker replaced");
                        let (counts, sum) = std::mem::take(&mut lock(&slot.link.state).delays);
                        add_counts(&mut lock(&self.retired), &counts, sum);
                        slot.link = new;
                        slot.failed_at = None;
                    }
                    Err(error) => {
                        tracing::error!(program = %self.processes.program.display(), %error, "starting a relay worker failed");
                        last_error = Some(error.to_string());
                        slot.failed_at = Some(Instant::now());
                        continue;
                    }
                }
            }
            let fewer = best.as_ref().is_none_or(|best| {
                slot.link.open.load(Ordering::Relaxed) < best.open.load(Ordering::Relaxed)
            });
            if fewer {
                best = Some(Arc::clone(&slot.link));
            }
        }
        best.ok_or_else(|| {
            format!(
                "no relay worker runs: {}",
                last_error.unwrap_or_else(|| "none configured".to_owned())
            )
        })
    }

    /// Asks a worker to bind the leased ports and relay between them.
    /// Dropping the future before it returns closes the session in the
    /// worker, which then frees the ports.
    pub(crate) async fn open(
        &self,
        call_id: &str,
        address: IpAddr,
        leases: [PortLease; 2],
        ssrcs: [u32; 2],
    ) -> Result<RemoteSession, OpenFailure> {
        let link = self.pick().map_err(OpenFailure::Worker)?;
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let rtp_ports = [leases[0].rtp_port(), leases[1].rtp_port()];
        let stats = Arc::new(Mutex::new([LegStats::default(); 2]));
        let ended = Arc::new(AtomicBool::new(false));
        let (done, outcome) = oneshot::channel();
        let (answer_sender, answer) = oneshot::channel();
        {
            let mut state = lock(&link.state);
            // Checked under the lock the reader takes to fail everything,
            // so a session is never left behind by a worker that died.
            if !link.alive.load(Ordering::Acquire) {
                return Err(OpenFailure::Worker("the relay worker exited".to_owned()));
            }
            state.pending.insert(id, answer_sender);
            state.sessions.insert(
                id,
                RemoteEntry {
                    call_id: call_id.to_owned(),
                    _leases: leases,
                    done: Some(done),
                    subscribers: Vec::new(),
                    stats: Arc::clone(&stats),
                    ended: Arc::clone(&ended),
                },
            );
            link.open.fetch_add(1, Ordering::AcqRel);
            link.send(&ToWorker::Open {
                id,
                call_id: call_id.to_owned(),
                address,
                rtp_ports,
                ssrcs,
            });
        }
        let mut guard = CloseUnlessOpened {
            link: &link,
            id,
            armed: true,
        };
        let reply = tokio::time::timeout(OPEN_TIMEOUT, answer).await;
        guard.armed = false;
        match reply {
            Ok(Ok(OpenReply::Opened)) => Ok(RemoteSession {
                control: WorkerSender {
                    link: Arc::clone(&link),
                    id,
                    ended,
                },
                outcome,
                stats,
            }),
            Ok(Ok(OpenReply::Refused {
                failure: (leg, errno, message),
                leases,
            })) => {
                tracing::debug!(call_id, ?leg, message, "worker could not bind a port");
                Err(OpenFailure::Bind {
                    leg,
                    error: io::Error::from_raw_os_error(errno),
                    leases,
                })
            }
            Ok(Ok(OpenReply::Failed(message))) => Err(OpenFailure::Worker(message)),
            Ok(Err(_)) => Err(OpenFailure::Worker(
                "the relay worker exited while opening the session".to_owned(),
            )),
            Err(_) => {
                tracing::error!(
                    call_id,
                    pid = link.pid,
                    timeout = ?OPEN_TIMEOUT,
                    "relay worker did not reply to an open; stopping it"
                );
                link.abandon();
                Err(OpenFailure::Worker(format!(
                    "relay worker {} did not reply within {OPEN_TIMEOUT:?}",
                    link.pid
                )))
            }
        }
    }

    /// Returns the delay histogram over every worker, including those that
    /// exited.
    pub(crate) fn delays(&self) -> RelayDelays {
        let mut total = lock(&self.retired).clone();
        for slot in &self.slots {
            let link = Arc::clone(&lock(slot).link);
            let state = lock(&link.state);
            add_counts(&mut total, &state.delays.0, state.delays.1);
        }
        crate::delay::from_counts(&total.0, total.1)
    }
}

impl Drop for Workers {
    /// Lets each link's writer send what is queued and close the link;
    /// every session has been closed or dropped by now.
    fn drop(&mut self) {
        for slot in &self.slots {
            lock(&lock(slot).link.outbox).take();
        }
    }
}

fn add_counts(total: &mut (Vec<u64>, Duration), counts: &[u64], sum: Duration) {
    if total.0.len() < counts.len() {
        total.0.resize(counts.len(), 0);
    }
    for (total, count) in total.0.iter_mut().zip(counts) {
        *total = total.saturating_add(*count);
    }
    total.1 = total.1.saturating_add(sum);
}

/// Returns a receive buffer one byte longer than the longest message, so
/// that [`receive`] sees a datagram that was cut short.
fn message_buffer() -> Vec<u8> {
    vec![0; MAX_MESSAGE + 1]
}

/// Receives one message into `buffer` and returns its length, or `None`
/// when the other end closed the link. A message longer than
/// [`MAX_MESSAGE`] is an error, because the link cut it.
fn receive(socket: &UnixDatagram, buffer: &mut [u8]) -> io::Result<Option<usize>> {
    loop {
        match socket.recv(buffer) {
            Ok(0) => return Ok(None),
            Ok(len) if len > MAX_MESSAGE => {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!("message over {MAX_MESSAGE} bytes"),
                ));
            }
            Ok(len) => return Ok(Some(len)),
            Err(error) if error.kind() == io::ErrorKind::Interrupted => {}
            Err(error) => return Err(error),
        }
    }
}

/// Closes a session whose open was dropped before the worker replied, so
/// that the worker frees its ports.
struct CloseUnlessOpened<'a> {
    link: &'a Link,
    id: u64,
    armed: bool,
}

impl Drop for CloseUnlessOpened<'_> {
    fn drop(&mut self) {
        if self.armed {
            self.link.send(&ToWorker::Close(self.id, Instant::now()));
        }
    }
}

impl Link {
    fn spawn(
        processes: &RelayProcesses,
        hello: &ToWorker,
        next_prompt: &Arc<AtomicU64>,
        exits: &Arc<AtomicU64>,
    ) -> io::Result<Arc<Link>> {
        use nix::sys::socket::{AddressFamily, SockFlag, SockType, socketpair};
        let (ours, theirs) = socketpair(
            AddressFamily::Unix,
            SockType::SeqPacket,
            None,
            SockFlag::SOCK_CLOEXEC,
        )
        .map_err(io::Error::from)?;
        // The worker's end becomes its standard input, which the standard
        // library duplicates without the close-on-exec flag. In a process
        // group of its own, the worker does not get the Ctrl-C meant for
        // the PBX, which then still has it finalize the recordings.
        let mut command = Command::new(&processes.program);
        command
            .args(&processes.args)
            .stdin(Stdio::from(theirs))
            .process_group(0);
        if let Some(arg0) = &processes.arg0 {
            command.arg0(arg0);
        }
        let mut child = command.spawn()?;
        let pid = child.id();
        let socket = UnixDatagram::from(ours);
        let writer = socket.try_clone()?;
        let reader = socket.try_clone()?;
        let (outbox, queue) = std::sync::mpsc::channel::<Vec<u8>>();
        let _ = outbox.send(hello.encode());
        let link = Arc::new(Link {
            pid,
            socket,
            abandoned: AtomicBool::new(false),
            exits: Arc::clone(exits),
            outbox: Mutex::new(Some(outbox)),
            alive: AtomicBool::new(true),
            open: AtomicUsize::new(0),
            next_prompt: Arc::clone(next_prompt),
            state: Mutex::default(),
        });
        std::thread::Builder::new()
            .name(format!("relay-link-{pid}"))
            .spawn(move || {
                for message in queue {
                    if let Err(error) = writer.send(&message) {
                        tracing::error!(pid, %error, "writing to the relay worker failed");
                        break;
                    }
                }
                // The worker ends its sessions and exits at the end of input.
                let _ = writer.shutdown(std::net::Shutdown::Write);
            })?;
        let reading = Arc::clone(&link);
        std::thread::Builder::new()
            .name(format!("relay-read-{pid}"))
            .spawn(move || {
                let closed_by_worker = reading.read(&reader);
                // A worker that closed the link has stopped or is
                // finalizing its recordings. After any other end it may
                // still run calls that the PBX can no longer reach.
                if !closed_by_worker || reading.abandoned.load(Ordering::Acquire) {
                    let _ = child.kill();
                }
                let status = child.wait();
                // The relay closed the link when it was dropped; any other
                // end is a worker lost with its calls.
                if lock(&reading.outbox).is_some() {
                    reading.exits.fetch_add(1, Ordering::Relaxed);
                }
                reading.fail_all();
                match status {
                    Ok(status) if status.success() => {
                        tracing::info!(pid, "relay worker stopped");
                    }
                    Ok(status) => tracing::error!(pid, %status, "relay worker exited"),
                    Err(error) => tracing::error!(pid, %error, "relay worker lost"),
                }
            })?;
        Ok(link)
    }

    fn send(&self, message: &ToWorker) {
        if let Some(outbox) = lock(&self.outbox).as_ref() {
            let _ = outbox.send(message.encode());
        }
    }

    /// Hands what the worker reports to the sessions, until the link
    /// closes. Returns true when it closed in order, false on an error or a
    /// message that does not decode or does not fit.
    fn read(&self, socket: &UnixDatagram) -> bool {
        let mut buffer = message_buffer();
        loop {
            let len = match receive(socket, &mut buffer) {
                Ok(Some(len)) => len,
                Ok(None) => return true,
                Err(error) => {
                    tracing::error!(pid = self.pid, %error, "reading from the relay worker failed");
                    return false;
                }
            };
            match FromWorker::decode(&buffer[..len]) {
                Ok(message) => self.dispatch(message),
                Err(error) => {
                    tracing::error!(pid = self.pid, %error, "relay worker sent a bad message");
                    return false;
                }
            }
        }
    }

    /// Gives up on a worker that stopped replying: the reader wakes, kills
    /// it and fails its sessions, and the next open starts a new one.
    fn abandon(&self) {
        self.abandoned.store(true, Ordering::Release);
        // No new session goes to it while the reader winds it down.
        self.alive.store(false, Ordering::Release);
        let _ = self.socket.shutdown(std::net::Shutdown::Both);
    }

    fn dispatch(&self, message: FromWorker) {
        let mut state = lock(&self.state);
        match message {
            FromWorker::Opened { id, failure } => {
                let answer = state.pending.remove(&id);
                let reply = match failure {
                    None => OpenReply::Opened,
                    Some(failure) => {
                        // The session never started, so its entry goes now.
                        // Its leases go too if the open was dropped.
                        let Some(entry) = state.sessions.remove(&id) else {
                            return;
                        };
                        self.open.fetch_sub(1, Ordering::AcqRel);
                        if failure.1 == 0 {
                            OpenReply::Failed(failure.2)
                        } else {
                            OpenReply::Refused {
                                failure,
                                leases: entry._leases,
                            }
                        }
                    }
                };
                if let Some(answer) = answer {
                    let _ = answer.send(reply);
                }
            }
            FromWorker::Event(id, event) => {
                if let Some(entry) = state.sessions.get_mut(&id) {
                    // As in the PBX's own threads, a receiver that lags
                    // misses events rather than holding up the others.
                    entry.subscribers.retain(|subscriber| {
                        !matches!(
                            subscriber.try_send(event.clone()),
                            Err(mpsc::error::TrySendError::Closed(_))
                        )
                    });
                }
            }
            FromWorker::Stats(sessions) => {
                for (id, stats) in sessions {
                    if let Some(entry) = state.sessions.get(&id) {
                        *lock(&entry.stats) = stats;
                    }
                }
            }
            FromWorker::Delays { counts, sum } => state.delays = (counts, sum),
            FromWorker::Done { id, stats, outcome } => {
                if let Some(mut entry) = state.sessions.remove(&id) {
                    *lock(&entry.stats) = *stats;
                    entry.ended.store(true, Ordering::Release);
                    self.open.fetch_sub(1, Ordering::AcqRel);
                    let call_id = entry.call_id.clone();
                    if let Some(done) = entry.done.take() {
                        let outcome =
                            outcome.map_err(|reason| MediaError::Worker { call_id, reason });
                        // The entry, and with it the port leases, goes
                        // first: the worker closed the ports before saying
                        // it was done.
                        drop(entry);
                        let _ = done.send(outcome);
                    }
                }
            }
        }
    }

    /// Ends every session of a worker that is gone.
    fn fail_all(&self) {
        let mut state = lock(&self.state);
        self.alive.store(false, Ordering::Release);
        state.pending.clear();
        let reason = format!("relay worker {} exited", self.pid);
        for (_, mut entry) in state.sessions.drain() {
            entry.ended.store(true, Ordering::Release);
            // The call's owner learns it at once, not at the close, so
            // that no caller stays on a line without media.
            for subscriber in &entry.subscribers {
                let lost = MediaEvent::RelayLost {
                    reason: reason.clone(),
                };
                if subscriber.try_send(lost).is_err() {
                    tracing::warn!(
                        call_id = entry.call_id,
                        "media loss not delivered: event queue full"
                    );
                }
            }
            if let Some(done) = entry.done.take() {
                let _ = done.send(Err(MediaError::Worker {
                    call_id: entry.call_id.clone(),
                    reason: reason.clone(),
                }));
            }
        }
        self.open.store(0, Ordering::Release);
    }

    /// Sends the prompts the worker lacks and returns the ids of all of
    /// them. Prompts no longer used in the PBX are forgotten on both ends.
    /// Runs under the state lock, so a prompt's chunks always precede the
    /// first message that plays it.
    fn prompt_ids(&self, state: &mut LinkState, prompts: &[Arc<[i16]>]) -> Vec<u64> {
        state.prompts.retain(|_, (held, id)| {
            let alive = held.strong_count() > 0;
            if !alive {
                self.send(&ToWorker::ForgetPrompt(*id));
            }
            alive
        });
        let mut ids = Vec::with_capacity(prompts.len());
        for prompt in prompts {
            let key = prompt.as_ptr() as usize;
            if let Some((_, id)) = state.prompts.get(&key) {
                ids.push(*id);
                continue;
            }
            let id = self.next_prompt.fetch_add(1, Ordering::Relaxed);
            let mut chunks = prompt.chunks(wire::PROMPT_CHUNK).peekable();
            if chunks.peek().is_none() {
                self.send(&ToWorker::PromptChunk {
                    prompt: id,
                    last: true,
                    samples: Vec::new(),
                });
            }
            while let Some(chunk) = chunks.next() {
                self.send(&ToWorker::PromptChunk {
                    prompt: id,
                    last: chunks.peek().is_none(),
                    samples: chunk.to_vec(),
                });
            }
            state.prompts.insert(key, (Arc::downgrade(prompt), id));
            ids.push(id);
        }
        ids
    }
}

impl WorkerSender {
    pub(crate) fn send(&self, control: Control) -> Result<(), crate::shard::SessionEnded> {
        if self.ended.load(Ordering::Acquire) || !self.link.alive.load(Ordering::Acquire) {
            return Err(crate::shard::SessionEnded);
        }
        let id = self.id;
        let message = match control {
            Control::SetRemote(leg, addr) => ToWorker::SetRemote(id, leg, addr),
            Control::ResetLeg(leg) => ToWorker::ResetLeg(id, leg),
            Control::PauseRecording(at) => ToWorker::PauseRecording(id, at),
            Control::ResumeRecording(at) => ToWorker::ResumeRecording(id, at),
            Control::StopRecording(at) => ToWorker::StopRecording(id, at),
            Control::SetFeatureCode(leg, code) => ToWorker::SetFeatureCode(id, leg, code),
            Control::SetCodecs(leg, codecs) => ToWorker::SetCodecs(id, leg, codecs),
            Control::SetPayloadTypes(leg, types) => ToWorker::SetPayloadTypes(id, leg, types),
            Control::StopPlayback(leg) => ToWorker::StopPlayback(id, leg),
            Control::SendDigit(leg, digit) => ToWorker::SendDigit(id, leg, digit),
            Control::Close(at) => ToWorker::Close(id, at),
            Control::Subscribe(subscriber) => {
                let mut state = lock(&self.link.state);
                let entry = state
                    .sessions
                    .get_mut(&id)
                    .ok_or(crate::shard::SessionEnded)?;
                entry.subscribers.push(subscriber);
                return Ok(());
            }
            Control::Play(leg, start) => {
                let mut state = lock(&self.link.state);
                let prompts = self.link.prompt_ids(&mut state, &start.prompts);
                self.link.send(&ToWorker::Play {
                    id,
                    leg,
                    prompts,
                    looped: start.looped,
                    barge_in: start.barge_in,
                });
                return Ok(());
            }
            // The PBX side never builds these for a worker's session: the
            // recorder is opened in the worker (see `start_recording`).
            Control::StartRecording(_) | Control::FailRecording(_) => {
                return Err(crate::shard::SessionEnded);
            }
        };
        self.link.send(&message);
        Ok(())
    }

    /// Asks the worker to open the recording files and start recording.
    /// Failing to open them is reported when the session closes.
    pub(crate) fn start_recording(
        &self,
        path: PathBuf,
        start: Instant,
        options: RecorderOptions,
    ) -> Result<(), crate::shard::SessionEnded> {
        if self.ended.load(Ordering::Acquire) || !self.link.alive.load(Ordering::Acquire) {
            return Err(crate::shard::SessionEnded);
        }
        self.link.send(&ToWorker::StartRecording {
            id: self.id,
            path,
            mixed_mono: options.mixed_mono,
            start,
            sample_rate: options.sample_rate,
            jitter_window: options.jitter_window,
        });
        Ok(())
    }
}

/// Errors that end a worker before it serves.
#[derive(Debug, thiserror::Error)]
pub enum WorkerError {
    #[error("relay worker link failed: {0}")]
    Link(#[from] io::Error),
    #[error("relay worker got {0} before its settings")]
    NoHello(&'static str),
    #[error(
        "relay worker speaks version {worker} of the link, the PBX {pbx}; both must be the same program"
    )]
    Version { worker: u32, pbx: u32 },
    #[error(transparent)]
    Malformed(#[from] MalformedMessage),
}

/// A message from the PBX that does not decode.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct MalformedMessage(String);

/// Runs a relay worker on `link`, the socket [`crate::Relay::with_processes`]
/// gave the process as its standard input, until the PBX closes it. Then
/// ends every session, finalizing recordings, and returns.
pub fn serve_worker(link: OwnedFd) -> Result<(), WorkerError> {
    let socket = UnixDatagram::from(link);
    let mut buffer = message_buffer();
    let len = receive(&socket, &mut buffer)?.unwrap_or(0);
    let hello =
        ToWorker::decode(&buffer[..len]).map_err(|error| MalformedMessage(error.to_string()))?;
    let ToWorker::Hello {
        version,
        threads,
        spin,
        realtime_priority,
        coalesce,
    } = hello
    else {
        return Err(WorkerError::NoHello("another message"));
    };
    if version != wire::VERSION {
        return Err(WorkerError::Version {
            worker: wire::VERSION,
            pbx: version,
        });
    }
    let threads = match threads {
        0 => std::thread::available_parallelism().map_or(1, usize::from),
        count => count as usize,
    };
    let threads = RelayThreads::start(threads, spin, realtime_priority, coalesce)?;
    let (out, queue) = std::sync::mpsc::channel::<Vec<u8>>();
    let writer = socket.try_clone()?;
    let writing = std::thread::Builder::new()
        .name("worker-write".to_owned())
        .spawn(move || {
            for message in queue {
                if writer.send(&message).is_err() {
                    // The PBX is gone. The sessions end once the reader
                    // finds the link closed.
                    return;
                }
            }
        })?;
    let (inbox, messages) = mpsc::unbounded_channel();
    std::thread::Builder::new()
        .name("worker-read".to_owned())
        .spawn(move || {
            loop {
                let len = match receive(&socket, &mut buffer) {
                    Ok(Some(len)) => len,
                    Ok(None) => return,
                    Err(error) => {
                        tracing::error!(%error, "reading from the PBX failed; stopping");
                        return;
                    }
                };
                match ToWorker::decode(&buffer[..len]) {
                    Ok(message) => {
                        if inbox.send(message).is_err() {
                            return;
                        }
                    }
                    Err(error) => {
                        tracing::error!(%error, "the PBX sent a bad message; stopping");
                        return;
                    }
                }
            }
        })?;
    // Input and output for the signal handlers, time for the reports.
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .enable_time()
        .build()?;
    runtime.block_on(Worker::new(threads, out).run(messages));
    drop(runtime);
    let _ = writing.join();
    Ok(())
}

/// A worker's sessions, on its single runtime thread.
struct Worker {
    threads: RelayThreads,
    delays: Arc<SharedDelays>,
    out: std::sync::mpsc::Sender<Vec<u8>>,
    sessions: HashMap<u64, WorkerSession>,
    prompts: HashMap<u64, Arc<[i16]>>,
    partial_prompts: HashMap<u64, Vec<i16>>,
    forwarders: tokio::task::JoinSet<()>,
    reported_delays: u64,
}

struct WorkerSession {
    call_id: String,
    control: ThreadSender,
    counters: Arc<[LegCounters; 2]>,
    reported: [LegStats; 2],
}

/// Keeps SIGTERM, SIGINT and SIGHUP from ending the worker: a service
/// manager or terminal that signals the whole group would otherwise cut
/// its recordings short. The worker stops when the PBX closes the link.
fn ignore_stop_signals() {
    use tokio::signal::unix::{SignalKind, signal};
    for kind in [
        SignalKind::terminate(),
        SignalKind::interrupt(),
        SignalKind::hangup(),
    ] {
        match signal(kind) {
            Ok(mut signals) => {
                tokio::spawn(async move {
                    while signals.recv().await.is_some() {
                        tracing::info!(
                            signal = kind.as_raw_value(),
                            "signal ignored; the relay worker stops when the PBX closes its link"
                        );
                    }
                });
            }
            Err(error) => tracing::warn!(%error, "relay worker cannot catch a stop signal"),
        }
    }
}

fn send(out: &std::sync::mpsc::Sender<Vec<u8>>, message: &FromWorker) {
    let _ = out.send(message.encode());
}

impl Worker {
    fn new(threads: RelayThreads, out: std::sync::mpsc::Sender<Vec<u8>>) -> Worker {
        Worker {
            threads,
            delays: Arc::default(),
            out,
            sessions: HashMap::new(),
            prompts: HashMap::new(),
            partial_prompts: HashMap::new(),
            forwarders: tokio::task::JoinSet::new(),
            reported_delays: 0,
        }
    }

    async fn run(mut self, mut messages: mpsc::UnboundedReceiver<ToWorker>) {
        ignore_stop_signals();
        let mut report = tokio::time::interval(REPORT_INTERVAL);
        report.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                message = messages.recv() => match message {
                    Some(message) => self.handle(message),
                    None => break,
                },
                _ = report.tick() => self.report(),
                // Reaps the forwarders of ended sessions.
                Some(_) = self.forwarders.join_next(), if !self.forwarders.is_empty() => {}
            }
        }
        // The PBX stopped or died: end the sessions now, so that their
        // recordings are complete files.
        let now = Instant::now();
        for session in self.sessions.values() {
            let _ = session.control.send(Control::Close(now));
        }
        while self.forwarders.join_next().await.is_some() {}
    }

    fn handle(&mut self, message: ToWorker) {
        let (id, control) = match message {
            ToWorker::Hello { .. } => {
                tracing::warn!("a second settings message ignored");
                return;
            }
            ToWorker::Open {
                id,
                call_id,
                address,
                rtp_ports,
                ssrcs,
            } => {
                self.open(id, call_id, address, rtp_ports, ssrcs);
                return;
            }
            ToWorker::PromptChunk {
                prompt,
                last,
                samples,
            } => {
                let mut gathered = self.partial_prompts.remove(&prompt).unwrap_or_default();
                gathered.extend_from_slice(&samples);
                if last {
                    self.prompts.insert(prompt, Arc::from(gathered));
                } else {
                    self.partial_prompts.insert(prompt, gathered);
                }
                return;
            }
            ToWorker::ForgetPrompt(prompt) => {
                self.prompts.remove(&prompt);
                return;
            }
            ToWorker::StartRecording {
                id,
                path,
                mixed_mono,
                start,
                sample_rate,
                jitter_window,
            } => {
                let options = RecorderOptions {
                    jitter_window,
                    sample_rate,
                    mixed_mono,
                };
                let control = match Recorder::with_options(&path, start, options) {
                    Ok(recorder) => Control::StartRecording(Box::new(recorder)),
                    Err(error) => Control::FailRecording(error),
                };
                (id, control)
            }
            ToWorker::Play {
                id,
                leg,
                prompts,
                looped,
                barge_in,
            } => {
                let Some(prompts) = prompts
                    .iter()
                    .map(|prompt| self.prompts.get(prompt).cloned())
                    .collect::<Option<Vec<_>>>()
                else {
                    let call_id = self
                        .sessions
                        .get(&id)
                        .map(|session| session.call_id.as_str());
                    tracing::error!(call_id, "play request names a prompt this worker lacks");
                    return;
                };
                let start = PlayerStart {
                    prompts,
                    looped,
                    barge_in,
                };
                (id, Control::Play(leg, Box::new(start)))
            }
            ToWorker::SetRemote(id, leg, addr) => (id, Control::SetRemote(leg, addr)),
            ToWorker::ResetLeg(id, leg) => (id, Control::ResetLeg(leg)),
            ToWorker::PauseRecording(id, at) => (id, Control::PauseRecording(at)),
            ToWorker::ResumeRecording(id, at) => (id, Control::ResumeRecording(at)),
            ToWorker::StopRecording(id, at) => (id, Control::StopRecording(at)),
            ToWorker::SetFeatureCode(id, leg, code) => (id, Control::SetFeatureCode(leg, code)),
            ToWorker::SetCodecs(id, leg, codecs) => (id, Control::SetCodecs(leg, codecs)),
            ToWorker::SetPayloadTypes(id, leg, types) => (id, Control::SetPayloadTypes(leg, types)),
            ToWorker::StopPlayback(id, leg) => (id, Control::StopPlayback(leg)),
            ToWorker::SendDigit(id, leg, digit) => (id, Control::SendDigit(leg, digit)),
            ToWorker::Close(id, at) => {
                if let Some(session) = self.sessions.remove(&id) {
                    let _ = session.control.send(Control::Close(at));
                }
                return;
            }
        };
        if let Some(session) = self.sessions.get(&id) {
            let _ = session.control.send(control);
        }
    }

    fn open(
        &mut self,
        id: u64,
        call_id: String,
        address: IpAddr,
        rtp_ports: [u16; 2],
        ssrcs: [u32; 2],
    ) {
        let mut bound = Vec::with_capacity(2);
        for (leg, port) in [Leg::Caller, Leg::Agent].into_iter().zip(rtp_ports) {
            let rtp = SocketAddr::new(address, port);
            let rtcp = SocketAddr::new(address, port.wrapping_add(1));
            match crate::session::bind_pair(rtp, rtcp) {
                Ok((rtp, rtcp, local_rtp)) => bound.push(LegSockets::without_lease(
                    UdpSocket::from_std(rtp),
                    UdpSocket::from_std(rtcp),
                    local_rtp,
                )),
                Err((addr, error)) => {
                    let errno = error.raw_os_error().unwrap_or(0);
                    self.reject_open(id, (leg, errno, format!("{addr}: {error}")));
                    return;
                }
            }
        }
        let Ok(sockets) = <[LegSockets; 2]>::try_from(bound) else {
            return;
        };
        let counters = Arc::new([LegCounters::default(), LegCounters::default()]);
        let span = tracing::info_span!("media_session", call_id = %call_id);
        let (done, outcome) = oneshot::channel();
        let opened = self.threads.open(NewSession {
            call_id: call_id.clone(),
            span,
            sockets,
            state: RelayState::new(Arc::clone(&counters), ssrcs),
            delays: Arc::clone(&self.delays),
            done,
            ended: Arc::new(AtomicBool::new(false)),
        });
        let control = match opened {
            Ok(control) => control,
            Err(error) => {
                // Error number 0 tells the PBX that no port was at fault.
                self.reject_open(id, (Leg::Caller, 0, error.to_string()));
                return;
            }
        };
        let (subscriber, mut events) = mpsc::channel(crate::session::EVENT_CAPACITY);
        let _ = control.send(Control::Subscribe(subscriber));
        send(&self.out, &FromWorker::Opened { id, failure: None });
        let out = self.out.clone();
        let final_counters = Arc::clone(&counters);
        self.forwarders.spawn(async move {
            let mut outcome = outcome;
            loop {
                tokio::select! {
                    biased;
                    Some(event) = events.recv() => send(&out, &FromWorker::Event(id, event)),
                    result = &mut outcome => {
                        while let Ok(event) = events.try_recv() {
                            send(&out, &FromWorker::Event(id, event));
                        }
                        let outcome = match result {
                            Ok(outcome) => outcome.map_err(|error| error.to_string()),
                            Err(_) => Err("the relay thread stopped".to_owned()),
                        };
                        let stats = Box::new([final_counters[0].snapshot(), final_counters[1].snapshot()]);
                        send(&out, &FromWorker::Done { id, stats, outcome });
                        return;
                    }
                }
            }
        });
        self.sessions.insert(
            id,
            WorkerSession {
                call_id,
                control,
                counters,
                reported: [LegStats::default(); 2],
            },
        );
    }

    /// Replies to open `id` that the session did not start.
    fn reject_open(&self, id: u64, failure: wire::BindFailure) {
        tracing::error!(id, reason = failure.2, "relay session not opened");
        send(
            &self.out,
            &FromWorker::Opened {
                id,
                failure: Some(failure),
            },
        );
    }

    /// Sends the figures that changed since the last report.
    fn report(&mut self) {
        self.sessions
            .retain(|_, session| !session.control.has_ended());
        let mut changed = Vec::new();
        for (id, session) in &mut self.sessions {
            let stats = [
                session.counters[0].snapshot(),
                session.counters[1].snapshot(),
            ];
            if stats != session.reported {
                session.reported = stats;
                changed.push((*id, stats));
            }
        }
        for batch in changed.chunks(wire::STATS_PER_MESSAGE) {
            send(&self.out, &FromWorker::Stats(batch.to_vec()));
        }
        let delays = self.delays.snapshot();
        if delays.count != self.reported_delays {
            self.reported_delays = delays.count;
            let (counts, sum) = crate::delay::counts_of(&delays);
            send(&self.out, &FromWorker::Delays { counts, sum });
        }
    }
}
