//! The relay's threads. Each runs one event loop over its share of the
//! sessions: a `mio` poller for the sessions' sockets, a heap of their
//! timers (recording flush, prompt and DTMF packets) and an inbox for
//! new sessions and control messages. A datagram is received, relayed and
//! sent on the thread whose poller saw it, without a task wake-up or a
//! hand-over to another thread, and the SIP side of the PBX cannot delay
//! media. A new session goes to the thread with the fewest sessions.
//!
//! After a datagram a thread keeps polling without sleeping for a short
//! window ([`RelayConfig::spin`](crate::RelayConfig)). Under load the next
//! datagram comes within it, so the thread skips a sleep and a wake-up
//! that cost more than relaying the datagram. When traffic stops, it
//! sleeps after the window.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::io;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, mpsc};
use std::time::{Duration, Instant, SystemTime};

use mio::{Events, Interest, Poll, Token, Waker};
use recordings::RecordingSummary;
use tokio::sync::oneshot;

use crate::delay::{LocalDelays, SharedDelays};
use crate::session::{Control, LegSockets};
use crate::state::RelayState;
use crate::{Leg, MediaError};

/// How often a session writes recorded audio out of the jitter window and
/// checks for DTMF digits whose final packets were lost.
const FLUSH_INTERVAL: Duration = Duration::from_millis(100);
/// Batches read from one socket per readiness event before the thread
/// turns to the other sockets; the rest waits for the next round.
const BATCHES_PER_TURN: usize = 8;
/// Readiness events taken from the poller at once.
const EVENT_CAPACITY: usize = 1024;
const WAKER: Token = Token(usize::MAX);

/// The socket, of a session's four, that a datagram came in on.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Origin {
    pub(crate) leg: Leg,
    pub(crate) rtcp: bool,
}

/// A session's result: its recording, if any, or why it failed.
pub(crate) type Outcome = Result<Option<RecordingSummary>, MediaError>;

/// A session on its way to a relay thread: its sockets are bound but not
/// yet registered with the thread's poller.
pub(crate) struct NewSession {
    pub(crate) call_id: String,
    pub(crate) span: tracing::Span,
    pub(crate) sockets: [LegSockets; 2],
    pub(crate) state: RelayState,
    pub(crate) delays: Arc<SharedDelays>,
    pub(crate) done: oneshot::Sender<Outcome>,
    /// Set once the session has ended, so that control messages fail.
    pub(crate) ended: Arc<AtomicBool>,
}

enum Message {
    Open(u64, Box<NewSession>),
    Control(u64, Control),
}

std::thread_local! {
    /// Wake-ups held back on this thread by live [`WakeBatch`] guards: their
    /// count and the wakers to wake when the last guard drops.
    static DEFERRED: std::cell::RefCell<(usize, Vec<Arc<Waker>>)> =
        const { std::cell::RefCell::new((0, Vec::new())) };
}

/// Guard that holds back the wake-ups of relay threads that this thread
/// causes until it drops, then wakes each thread once. The messages themselves are
/// queued at once. A wake-up of a real-time relay thread costs the sender a
/// system call and often a preemption, so a SIP engine that opens and closes
/// several sessions per batch of messages wakes each thread once per batch.
/// The guard cannot cross an `.await` of a `Send` future.
#[must_use = "wake-ups are held back only while the guard lives"]
pub struct WakeBatch {
    _not_send: std::marker::PhantomData<*const ()>,
}

/// Starts a [`WakeBatch`]; guards may nest, and the outermost one wakes.
pub fn batch_wakes() -> WakeBatch {
    DEFERRED.with(|deferred| deferred.borrow_mut().0 += 1);
    WakeBatch {
        _not_send: std::marker::PhantomData,
    }
}

impl Drop for WakeBatch {
    fn drop(&mut self) {
        let wakers = DEFERRED.with(|deferred| {
            let mut deferred = deferred.borrow_mut();
            deferred.0 -= 1;
            if deferred.0 == 0 {
                std::mem::take(&mut deferred.1)
            } else {
                Vec::new()
            }
        });
        for waker in wakers {
            // A thread that cannot be woken has stopped, and its sessions
            // have failed already.
            let _ = waker.wake();
        }
    }
}

/// Wakes the thread of `waker` now, or when the outermost [`WakeBatch`] of
/// the calling thread drops.
fn wake(waker: &Arc<Waker>) -> io::Result<()> {
    let deferred = DEFERRED.with(|deferred| {
        let mut deferred = deferred.borrow_mut();
        if deferred.0 == 0 {
            return false;
        }
        if !deferred.1.iter().any(|held| Arc::ptr_eq(held, waker)) {
            deferred.1.push(Arc::clone(waker));
        }
        true
    });
    if deferred { Ok(()) } else { waker.wake() }
}

/// Sends control messages to one session's thread.
pub(crate) struct ThreadSender {
    id: u64,
    inbox: mpsc::Sender<Message>,
    waker: Arc<Waker>,
    ended: Arc<AtomicBool>,
}

/// The session has ended; the message was not delivered.
#[derive(Debug)]
pub(crate) struct SessionEnded;

impl ThreadSender {
    pub(crate) fn has_ended(&self) -> bool {
        self.ended.load(Ordering::Acquire)
    }

    pub(crate) fn send(&self, control: Control) -> Result<(), SessionEnded> {
        if self.ended.load(Ordering::Acquire) {
            return Err(SessionEnded);
        }
        let urgent = control.is_urgent();
        self.inbox
            .send(Message::Control(self.id, control))
            .map_err(|_| SessionEnded)?;
        if urgent {
            wake(&self.waker).map_err(|_| SessionEnded)?;
        }
        Ok(())
    }
}

struct ShardHandle {
    inbox: mpsc::Sender<Message>,
    waker: Arc<Waker>,
    sessions: Arc<AtomicUsize>,
    stop: Arc<AtomicBool>,
}

/// The threads, kept alive by the [`crate::Relay`] and every open session.
pub(crate) struct RelayThreads {
    shards: Vec<ShardHandle>,
    next_id: AtomicU64,
}

/// Moves the calling relay thread to `SCHED_FIFO` at `priority`. Without the
/// privilege (`CAP_SYS_NICE` or an `RLIMIT_RTPRIO` that allows it) the thread
/// keeps the normal scheduler and relays all the same, with a warning.
fn set_realtime(index: usize, priority: u8) {
    use thread_priority::{
        RealtimeThreadSchedulePolicy, ThreadPriority, ThreadPriorityValue, ThreadSchedulePolicy,
    };
    let result = ThreadPriorityValue::try_from(priority)
        .map_err(|reason| reason.to_owned())
        .and_then(|value| {
            thread_priority::set_thread_priority_and_policy(
                thread_priority::thread_native_id(),
                ThreadPriority::Crossplatform(value),
                ThreadSchedulePolicy::Realtime(RealtimeThreadSchedulePolicy::Fifo),
            )
            .map_err(|error| format!("{error:?}"))
        });
    match result {
        Ok(()) => tracing::debug!(
            thread = index,
            priority,
            "relay thread runs at real-time priority"
        ),
        // One warning for the relay, not one per thread.
        Err(error) if index == 0 => tracing::warn!(
            priority,
            %error,
            "relay threads keep the normal scheduler, so media may wait behind other work; \
             real-time priority needs CAP_SYS_NICE or an RLIMIT_RTPRIO this high, and \
             [media] relay_realtime_priority = 0 stops asking"
        ),
        Err(_) => {}
    }
}

impl RelayThreads {
    pub(crate) fn start(
        count: usize,
        spin: Duration,
        realtime_priority: u8,
        coalesce: Duration,
    ) -> io::Result<RelayThreads> {
        let mut shards = Vec::with_capacity(count);
        for index in 0..count.max(1) {
            let poll = Poll::new()?;
            let waker = Arc::new(Waker::new(poll.registry(), WAKER)?);
            let (inbox, messages) = mpsc::channel();
            let sessions = Arc::new(AtomicUsize::new(0));
            let stop = Arc::new(AtomicBool::new(false));
            let shard = Shard {
                poll,
                messages,
                sessions: Vec::new(),
                free: Vec::new(),
                by_id: HashMap::new(),
                timers: BinaryHeap::new(),
                backlog: Vec::new(),
                spin,
                coalesce,
                last_datagram: None,
                open_count: Arc::clone(&sessions),
                stop: Arc::clone(&stop),
            };
            std::thread::Builder::new()
                .name(format!("relay-{index}"))
                .spawn(move || {
                    if realtime_priority > 0 {
                        set_realtime(index, realtime_priority);
                    }
                    shard.run()
                })?;
            shards.push(ShardHandle {
                inbox,
                waker,
                sessions,
                stop,
            });
        }
        Ok(RelayThreads {
            shards,
            next_id: AtomicU64::new(1),
        })
    }

    /// Hands a session to the thread with the fewest sessions and returns
    /// the sender of its control messages.
    pub(crate) fn open(&self, session: NewSession) -> Result<ThreadSender, MediaError> {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let call_id = session.call_id.clone();
        let ended = Arc::clone(&session.ended);
        let shard = self
            .shards
            .iter()
            .min_by_key(|shard| shard.sessions.load(Ordering::Relaxed))
            .ok_or_else(|| MediaError::SessionEnded {
                call_id: call_id.clone(),
            })?;
        shard.sessions.fetch_add(1, Ordering::AcqRel);
        let ended_error = || MediaError::SessionEnded {
            call_id: call_id.clone(),
        };
        shard
            .inbox
            .send(Message::Open(id, Box::new(session)))
            .map_err(|_| ended_error())?;
        wake(&shard.waker).map_err(|_| ended_error())?;
        Ok(ThreadSender {
            id,
            inbox: shard.inbox.clone(),
            waker: Arc::clone(&shard.waker),
            ended,
        })
    }
}

impl Drop for RelayThreads {
    /// Tells the threads to stop once their sessions have closed. Every
    /// [`crate::MediaSession`] keeps a reference to the threads, so by now
    /// each session has been closed or dropped, and its close is in the
    /// inbox.
    fn drop(&mut self) {
        for shard in &self.shards {
            shard.stop.store(true, Ordering::Release);
            let _ = shard.waker.wake();
        }
    }
}

/// One session's state on its relay thread.
struct Entry {
    id: u64,
    call_id: String,
    span: tracing::Span,
    sockets: [LegSockets; 2],
    state: RelayState,
    delays: LocalDelays,
    shared_delays: Arc<SharedDelays>,
    done: Option<oneshot::Sender<Outcome>>,
    ended: Arc<AtomicBool>,
    next_flush: Instant,
    /// The player or DTMF packet the timers know to be due next.
    next_local: Option<Instant>,
    /// Socket drains that found datagrams, and the datagrams; `datagrams`
    /// over `drains` is how many a socket held when the thread got to it.
    drains: u64,
    datagrams: u64,
}

struct Shard {
    poll: Poll,
    messages: mpsc::Receiver<Message>,
    /// Slots of sessions; a token is the slot times four plus the socket.
    sessions: Vec<Option<Entry>>,
    free: Vec<usize>,
    by_id: HashMap<u64, usize>,
    /// Instants at which a session may have a flush or a local packet due.
    /// An entry can be stale (its session moved the instant or closed);
    /// the session's own instants decide.
    timers: BinaryHeap<Reverse<(Instant, usize)>>,
    /// Sockets left with datagrams after their turn.
    backlog: Vec<Token>,
    spin: Duration,
    /// Shortest time from the start of a round that relayed datagrams to
    /// the start of the next one.
    coalesce: Duration,
    last_datagram: Option<Instant>,
    open_count: Arc<AtomicUsize>,
    stop: Arc<AtomicBool>,
}

impl Shard {
    fn run(mut self) {
        let mut events = Events::with_capacity(EVENT_CAPACITY);
        // Start of the last round that relayed datagrams.
        let mut busy_round: Option<Instant> = None;
        loop {
            if let Some(started) = busy_round.take() {
                // Sockets that become ready during the wait come back from a
                // single poll, so a busy thread wakes once per window rather
                // than once per datagram.
                let wait = (started + self.coalesce).saturating_duration_since(Instant::now());
                if !wait.is_zero() {
                    std::thread::sleep(wait);
                }
            }
            let now = Instant::now();
            let timeout = self.timeout(now);
            if let Err(error) = self.poll.poll(&mut events, timeout) {
                if error.kind() != io::ErrorKind::Interrupted {
                    tracing::error!(%error, "relay poller failed; the thread stops");
                    self.close_all();
                    return;
                }
                continue;
            }
            let now = Instant::now();
            // Control messages come first, whatever order the poller reports,
            // because a change sent before a datagram must apply to it.
            self.read_inbox(now);
            let mut relayed = 0;
            for token in std::mem::take(&mut self.backlog) {
                relayed += self.drain(token, now);
            }
            for event in events.iter() {
                if event.token() != WAKER {
                    relayed += self.drain(event.token(), now);
                }
            }
            if relayed > 0 {
                self.last_datagram = Some(now);
                if !self.coalesce.is_zero() {
                    busy_round = Some(now);
                }
            }
            self.fire_timers(Instant::now());
            if self.stop.load(Ordering::Acquire) {
                // Closes queued before the stop are in the inbox.
                self.read_inbox(Instant::now());
                self.close_all();
                return;
            }
        }
    }

    /// Zero while datagrams came within the spin window or sockets wait in
    /// the backlog, else until the next timer.
    fn timeout(&mut self, now: Instant) -> Option<Duration> {
        let spinning = self
            .last_datagram
            .is_some_and(|last| now.saturating_duration_since(last) < self.spin);
        if spinning || !self.backlog.is_empty() {
            return Some(Duration::ZERO);
        }
        self.timers
            .peek()
            .map(|Reverse((due, _))| due.saturating_duration_since(now))
    }

    fn read_inbox(&mut self, now: Instant) {
        while let Ok(message) = self.messages.try_recv() {
            match message {
                Message::Open(id, session) => self.add(id, *session, now),
                Message::Control(id, control) => {
                    let Some(&slot) = self.by_id.get(&id) else {
                        continue;
                    };
                    match control {
                        Control::Close(at) => self.finish(slot, at),
                        control => {
                            if let Some(entry) = self.sessions[slot].as_mut() {
                                let _entered = entry.span.clone().entered();
                                entry.state.apply(control, now);
                            }
                            self.schedule_local(slot);
                        }
                    }
                }
            }
        }
    }

    fn add(&mut self, id: u64, session: NewSession, now: Instant) {
        let NewSession {
            call_id,
            span,
            mut sockets,
            state,
            delays,
            done,
            ended,
        } = session;
        let slot = self.free.pop().unwrap_or_else(|| {
            self.sessions.push(None);
            self.sessions.len() - 1
        });
        if let Err(source) = self.register(slot, &mut sockets) {
            span.in_scope(|| tracing::error!(%source, "relay sockets not polled"));
            for socket in sockets.iter_mut() {
                let _ = self.poll.registry().deregister(&mut socket.rtp);
                let _ = self.poll.registry().deregister(&mut socket.rtcp);
            }
            self.free.push(slot);
            self.open_count.fetch_sub(1, Ordering::AcqRel);
            ended.store(true, Ordering::Release);
            let _ = done.send(Err(MediaError::Register { call_id, source }));
            return;
        }
        self.by_id.insert(id, slot);
        self.sessions[slot] = Some(Entry {
            id,
            call_id,
            span,
            sockets,
            state,
            delays: LocalDelays::default(),
            shared_delays: delays,
            done: Some(done),
            ended,
            next_flush: now + FLUSH_INTERVAL,
            next_local: None,
            drains: 0,
            datagrams: 0,
        });
        self.timers.push(Reverse((now + FLUSH_INTERVAL, slot)));
    }

    fn register(&self, slot: usize, sockets: &mut [LegSockets; 2]) -> io::Result<()> {
        for (leg, leg_sockets) in sockets.iter_mut().enumerate() {
            let tokens = [slot * 4 + leg * 2, slot * 4 + leg * 2 + 1];
            for (socket, token) in [&mut leg_sockets.rtp, &mut leg_sockets.rtcp]
                .into_iter()
                .zip(tokens)
            {
                self.poll
                    .registry()
                    .register(socket, Token(token), Interest::READABLE)?;
            }
        }
        Ok(())
    }

    /// Reads the socket behind `token` until it is empty or its turn is
    /// over, and relays what it reads. Returns the datagrams handled.
    fn drain(&mut self, token: Token, now: Instant) -> usize {
        let slot = token.0 / 4;
        let Some(Some(entry)) = self.sessions.get_mut(slot) else {
            return 0;
        };
        let leg = if token.0 % 4 < 2 {
            Leg::Caller
        } else {
            Leg::Agent
        };
        let origin = Origin {
            leg,
            rtcp: token.0 % 2 == 1,
        };
        let (handled, emptied) = {
            let Entry {
                span,
                sockets,
                state,
                delays,
                ..
            } = &mut *entry;
            let _entered = span.enter();
            let socket = if origin.rtcp {
                &sockets[leg.index()].rtcp
            } else {
                &sockets[leg.index()].rtp
            };
            let mut handled = 0;
            let mut emptied = false;
            for _ in 0..BATCHES_PER_TURN {
                let received = crate::batch::receive(socket, |source, datagram, arrived| {
                    state.relay(sockets, origin, source, datagram, now);
                    if let Some(arrived) = arrived {
                        delays.record(since_epoch().saturating_sub(arrived));
                    }
                });
                match received {
                    Ok(count) => {
                        handled += count;
                        // A short batch emptied the socket; a datagram
                        // arriving after it raises a new readiness event.
                        if count < crate::batch::BATCH {
                            emptied = true;
                            break;
                        }
                    }
                    Err(error) if error.kind() == io::ErrorKind::WouldBlock => {
                        emptied = true;
                        break;
                    }
                    // ICMP port unreachable from an earlier send shows up
                    // here on some systems; the socket stays usable.
                    Err(error) => tracing::debug!(?origin, %error, "receive failed"),
                }
            }
            (handled, emptied)
        };
        if !emptied {
            self.backlog.push(token);
        }
        if handled > 0 {
            entry.drains += 1;
            entry.datagrams += handled as u64;
            // A datagram can start a player or a digit (a barge-in, an
            // in-band tone), whose packets need a timer.
            self.schedule_local(slot);
        }
        handled
    }

    /// Makes sure the timers hold the session's next local packet.
    fn schedule_local(&mut self, slot: usize) {
        let Some(Some(entry)) = self.sessions.get_mut(slot) else {
            return;
        };
        let due = entry.state.next_local_due();
        if due != entry.next_local {
            entry.next_local = due;
            if let Some(due) = due {
                self.timers.push(Reverse((due, slot)));
            }
        }
    }

    fn fire_timers(&mut self, now: Instant) {
        while let Some(&Reverse((due, slot))) = self.timers.peek() {
            if due > now {
                return;
            }
            self.timers.pop();
            let Some(Some(entry)) = self.sessions.get_mut(slot) else {
                continue;
            };
            let _entered = entry.span.clone().entered();
            if entry.next_flush <= now {
                entry.delays.merge_into(&entry.shared_delays);
                entry.state.flush_recording(now);
                entry.state.poll_dtmf_timeouts(now);
                // A late flush moves the next one, as a delayed interval
                // would, rather than flushing twice in a row.
                entry.next_flush = now + FLUSH_INTERVAL;
                self.timers.push(Reverse((entry.next_flush, slot)));
            }
            if entry.next_local.is_some_and(|local| local <= now) {
                entry.state.send_local(&entry.sockets, now);
                entry.next_local = None;
            }
            self.schedule_local(slot);
        }
    }

    /// Ends a session: finalizes its recording, closes its ports and hands
    /// the outcome to [`crate::MediaSession::close`].
    fn finish(&mut self, slot: usize, at: Instant) {
        let Some(mut entry) = self.sessions.get_mut(slot).and_then(Option::take) else {
            return;
        };
        self.by_id.remove(&entry.id);
        self.free.push(slot);
        entry.ended.store(true, Ordering::Release);
        let _entered = entry.span.clone().entered();
        for socket in entry.sockets.iter_mut() {
            let _ = self.poll.registry().deregister(&mut socket.rtp);
            let _ = self.poll.registry().deregister(&mut socket.rtcp);
        }
        entry.delays.merge_into(&entry.shared_delays);
        let outcome = entry.state.finish_recording(at, &entry.call_id);
        let caller = entry.state.counters[0].snapshot();
        let agent = entry.state.counters[1].snapshot();
        tracing::info!(
            caller_received = caller.packets_received,
            caller_sent = caller.packets_sent,
            caller_lost = caller.rtp_packets_lost,
            caller_jitter_ms = caller.jitter_ms(),
            caller_dropped = caller.dropped_packets(),
            agent_received = agent.packets_received,
            agent_sent = agent.packets_sent,
            agent_lost = agent.rtp_packets_lost,
            agent_jitter_ms = agent.jitter_ms(),
            agent_dropped = agent.dropped_packets(),
            "media session closed"
        );
        tracing::debug!(?caller, ?agent, "media session figures");
        tracing::debug!(
            drains = entry.drains,
            datagrams = entry.datagrams,
            "socket reads"
        );
        // The ports go back to the allocator once the sockets are closed.
        drop(entry.sockets);
        self.open_count.fetch_sub(1, Ordering::AcqRel);
        if let Some(done) = entry.done.take() {
            let _ = done.send(outcome);
        }
    }

    fn close_all(&mut self) {
        let now = Instant::now();
        for slot in 0..self.sessions.len() {
            self.finish(slot, now);
        }
    }
}

/// Returns the wall-clock time, on the clock of the kernel's receive
/// timestamps.
fn since_epoch() -> Duration {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    const WOKEN: Token = Token(7);

    /// Returns how many wake-ups the poller reports without waiting.
    fn wake_events(poll: &mut Poll) -> usize {
        let mut events = Events::with_capacity(8);
        poll.poll(&mut events, Some(Duration::ZERO)).unwrap();
        events.iter().filter(|event| event.token() == WOKEN).count()
    }

    #[test]
    fn outer_guard_wakes_once() {
        let mut poll = Poll::new().unwrap();
        let waker = Arc::new(Waker::new(poll.registry(), WOKEN).unwrap());
        let outer = batch_wakes();
        wake(&waker).unwrap();
        {
            let _inner = batch_wakes();
            wake(&waker).unwrap();
        }
        assert_eq!(wake_events(&mut poll), 0, "woken inside the batch");
        drop(outer);
        assert_eq!(wake_events(&mut poll), 1);
    }

    #[test]
    fn unbatched_wake_is_immediate() {
        let mut poll = Poll::new().unwrap();
        let waker = Arc::new(Waker::new(poll.registry(), WOKEN).unwrap());
        wake(&waker).unwrap();
        assert_eq!(wake_events(&mut poll), 1);
    }

    #[test]
    fn other_threads_batch_is_ignored() {
        let mut poll = Poll::new().unwrap();
        let waker = Arc::new(Waker::new(poll.registry(), WOKEN).unwrap());
        let (held, release) = mpsc::channel::<()>();
        let (started, ready) = mpsc::channel::<()>();
        let other = std::thread::spawn(move || {
            let _batch = batch_wakes();
            started.send(()).unwrap();
            let _ = release.recv();
        });
        ready.recv().unwrap();
        wake(&waker).unwrap();
        assert_eq!(wake_events(&mut poll), 1);
        drop(held);
        other.join().unwrap();
    }
}
