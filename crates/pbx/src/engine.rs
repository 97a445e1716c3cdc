//! The engine task: owns the sans-IO [`Core`], feeds it messages, media
//! results and the clock, and carries out what it asks for (sending SIP,
//! opening and closing relay sessions, writing CDRs).
//!
//! One task owns the core, so call state needs no locks; slow work (binding
//! ports, finalizing a WAV, writing a CDR) runs in spawned tasks that report
//! back through the input channel.

use futures_util::FutureExt;
use std::collections::HashMap;
use std::path::PathBuf;
use std::time::{Duration, Instant, SystemTime};

use sip_server::b2bua::{Command, Core, HeldResponse, MediaNotice, MediaPorts, Side};
use sip_server::registrar::StoredBinding;

use crate::catalogue::RecordingKind;
use crate::catalogue::RecordingStatus::{Complete, Interrupted};
use crate::events::{Ack, EventBatch, NotDurable};
use crate::journal::{JournalEntry, JournalProgress};
use crate::live::{Durable, LiveRequest};
use sip_server::transaction::{Target, Transmit};
use tokio::sync::mpsc;
use tokio::task::JoinSet;

use crate::transport::{Sender, UdpRead, UdpReader};
use stall::Activity;
pub(crate) use stall::StallWatch;

/// What the engine reacts to besides its own timer.
pub(crate) enum Input {
    Sip(sip_message::Message, Target),
    /// A stream connection closed; its transactions can no longer answer.
    ConnectionClosed(u64),
    MediaOpened {
        call: String,
        result: Result<media::MediaSession, media::MediaError>,
    },
    /// A key or the end of a prompt on a call's relay.
    Media {
        call: String,
        notice: MediaNotice,
    },
    /// A call's relay session ended without a close (its relay worker
    /// exited).
    MediaLost {
        call: String,
    },
    /// A connection the PBX opened to `addr` failed to open, or closed;
    /// requests still waiting on it fail.
    TransportFailed {
        transport: sip_server::transaction::TransportKind,
        addr: std::net::SocketAddr,
    },
    /// The servers of a trunk's outbound host name, resolved again.
    TrunkLocated {
        trunk: String,
        purpose: crate::dns::LookupPurpose,
        destinations: Vec<sip_server::locate::Destination>,
    },
}

pub(crate) struct Engine {
    pub(crate) core: Core,
    /// Changes to the open-call journal, applied in order by one task.
    pub(crate) journal: mpsc::UnboundedSender<JournalEntry>,
    /// SIP messages waiting for the journal to commit their call.
    pub(crate) journal_gate: JournalGate,
    /// Bindings to persist, in order, by one writer task.
    pub(crate) registrations: mpsc::UnboundedSender<(String, Vec<StoredBinding>)>,
    pub(crate) sender: Sender,
    pub(crate) relay: media::Relay,
    pub(crate) cdr: cdr::CdrStore,
    /// The recording catalogue, on the CDR store's database.
    pub(crate) catalogue: crate::catalogue::Catalogue,
    pub(crate) data_dir: PathBuf,
    pub(crate) inputs: mpsc::Sender<Input>,
    /// Silence on both legs after which an answered call is ended.
    pub(crate) rtp_timeout: Option<Duration>,
    pub(crate) sip_counters: crate::metrics::SipCounters,
    /// Queue events and their queue_log lines, committed in order by one
    /// writer task.
    pub(crate) events: mpsc::UnboundedSender<EventBatch>,
    /// Events caused by the API request being handled, collected so that
    /// they go to the writer as one batch with the request's reply.
    pub(crate) request_batch: Option<EventBatch>,
    /// Channel on which the event writer reports that a batch with held SIP
    /// responses is committed. `run` takes the receiving end.
    pub(crate) stored: mpsc::UnboundedSender<Stored>,
    /// Decoded music on hold and announcement prompts.
    pub(crate) prompts: crate::sounds::PromptCache,
    /// Resolver of the trunks' outbound host names.
    pub(crate) resolver: crate::dns::TrunkResolver,
    /// The look-up tasks of the current trunks, replaced at a reload.
    pub(crate) trunk_lookups: Vec<tokio::task::AbortHandle>,
    /// Iterations of the run loop long enough to delay SIP over UDP.
    pub(crate) stalls: StallWatch,
    /// UDP datagrams of the current pass of the run loop, handed to the
    /// send thread together at its end.
    pub(crate) udp_batch: UdpBatch,
    /// Recorded audio that came too late for its recording, over every call
    /// that ended since the start.
    pub(crate) late_audio: std::sync::Arc<LateAudio>,
    /// Nice value of the threads that run the engine ([`crate::priority`]).
    pub(crate) nice: i8,
    /// How long recorded audio waits for late packets before it is written
    /// (`[recording] jitter_window_ms`).
    pub(crate) recording_jitter_window: Duration,
}

/// Milliseconds of audio, caller and agent side, that reached the relay
/// after the recording's jitter window had closed on it.
#[derive(Debug, Default)]
pub(crate) struct LateAudio([std::sync::atomic::AtomicU64; 2]);

impl LateAudio {
    fn add(&self, late_ms: [u64; 2]) {
        for (total, late) in self.0.iter().zip(late_ms) {
            total.fetch_add(late, std::sync::atomic::Ordering::Relaxed);
        }
    }

    pub(crate) fn milliseconds(&self) -> [u64; 2] {
        self.0
            .each_ref()
            .map(|total| total.load(std::sync::atomic::Ordering::Relaxed))
    }
}

/// The UDP datagrams the run loop has queued in its current pass.
#[derive(Default)]
pub(crate) struct UdpBatch {
    /// True inside the run loop. Before it and from the stop on,
    /// messages are sent at once.
    active: bool,
    datagrams: Vec<(bytes::Bytes, std::net::SocketAddr)>,
}

/// How often relay sessions are checked for silence.
const SILENCE_CHECK: Duration = Duration::from_secs(5);
/// How often the process's CPU use is sampled for overload control.
const CPU_CHECK: Duration = Duration::from_secs(1);

/// Ended calls waiting for their stores past which new calls get 503.
/// Storage that falls behind the call rate would otherwise grow this
/// backlog without bound, and with it memory and the time a stop takes.
/// Stores that keep up still have many calls on their way, because a
/// commit of a few thousand CDRs takes a second or more. At 2,900 calls/s
/// on a 2-core VM the count passed 10,000, an earlier bound, every few
/// seconds. This bound is about ten seconds of calls at that rate.
const MAX_UNSTORED_CALLS: usize = 30_000;

/// Returns whether new calls wait for the stores, given whether they did
/// after the last check and the `unstored` calls now. Calls are accepted
/// again only below half the maximum, so the state does not change at
/// every check near it.
fn storage_behind(was_behind: bool, unstored: usize) -> bool {
    if was_behind {
        unstored > MAX_UNSTORED_CALLS / 2
    } else {
        unstored > MAX_UNSTORED_CALLS
    }
}

/// Maximum wait at shutdown for the commits that held feature-code
/// responses wait on, so those phones get a response rather than a timeout.
const HELD_RESPONSES_AT_SHUTDOWN: Duration = Duration::from_secs(5);

/// Maximum wait at shutdown for the providers' responses to the trunks'
/// unregistrations, which are retransmitted over UDP meanwhile.
const UNREGISTER_AT_SHUTDOWN: Duration = Duration::from_secs(2);

/// Outcome of the commit of a batch that SIP responses were held behind.
#[derive(Debug)]
pub(crate) struct Stored {
    pub(crate) held: Vec<HeldResponse>,
    pub(crate) committed: bool,
}

/// Adds the events and lines of a `Command::QueueLog` to `batch`. When
/// responses are held behind them, the batch also carries an ack that sends
/// [`Stored`] back to the engine once the writer has committed it, so the
/// responses go out after the commit while the engine goes on with other
/// input.
pub(crate) fn add_queue_log(
    batch: &mut EventBatch,
    lines: Vec<String>,
    events: &[sip_server::b2bua::StampedEvent],
    held: Vec<HeldResponse>,
    stored: &mpsc::UnboundedSender<Stored>,
) {
    batch.push(events, lines);
    if held.is_empty() {
        return;
    }
    let stored = stored.clone();
    batch.acks.push(Box::new(move |committed| {
        // The send fails only once the engine has stopped, and then no
        // response can be sent anyway.
        let _ = stored.send(Stored {
            held,
            committed: committed.is_ok(),
        });
    }));
}

/// Holds SIP messages until the journal has committed the calls they
/// concern. A citizen who heard ringing, or an agent whose 200 was accepted, must
/// find the call in the journal after a crash, or the call would end with
/// no CDR and no BYE. Messages leave in the order the core made them: once
/// one waits, every later one waits behind it.
pub(crate) struct JournalGate {
    pub(crate) progress: std::sync::Arc<JournalProgress>,
    /// Saves handed to the journal writer.
    saves_sent: u64,
    /// Each message with the saves that must be committed before it leaves.
    held: std::collections::VecDeque<(u64, Transmit)>,
    /// Whether messages leave without waiting, set at a stop whose journal
    /// no longer commits.
    open: bool,
}

impl JournalGate {
    pub(crate) fn new(progress: std::sync::Arc<JournalProgress>) -> JournalGate {
        JournalGate {
            progress,
            saves_sent: 0,
            held: std::collections::VecDeque::new(),
            open: false,
        }
    }

    /// Returns `transmit` when it may leave now, or keeps it.
    fn admit(&mut self, transmit: Transmit) -> Option<Transmit> {
        if self.held.is_empty() && (self.open || self.saves_sent <= self.progress.saves_done()) {
            return Some(transmit);
        }
        self.held.push_back((self.saves_sent, transmit));
        None
    }

    /// Returns the oldest held message once the saves it waits for are
    /// committed.
    fn release(&mut self) -> Option<Transmit> {
        let done = self.progress.saves_done();
        if self.held.front().is_some_and(|(needed, _)| *needed <= done) {
            return self.held.pop_front().map(|(_, transmit)| transmit);
        }
        None
    }

    fn holding(&self) -> bool {
        !self.held.is_empty()
    }

    /// Lets every message go from now on, for a stop whose journal no
    /// longer commits.
    fn open(&mut self) {
        self.open = true;
        for (needed, _) in &mut self.held {
            *needed = 0;
        }
    }
}

impl Engine {
    /// Runs until `shutdown` resolves, then ends every call and waits for
    /// their recordings and CDRs to be written.
    pub(crate) async fn run(
        mut self,
        mut receiver: mpsc::Receiver<Input>,
        mut udp: UdpReader,
        mut live: mpsc::Receiver<LiveRequest>,
        mut stored: mpsc::UnboundedReceiver<Stored>,
        shutdown: impl std::future::Future<Output = ()>,
    ) {
        let mut sessions: HashMap<String, media::MediaSession> = HashMap::new();
        let mut background = JoinSet::new();
        let mut silence_check = tokio::time::interval(SILENCE_CHECK);
        silence_check.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut cpu_check = tokio::time::interval(CPU_CHECK);
        cpu_check.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut cpu_meter = crate::overload::CpuMeter::new();
        let trunks = self.core.trunks().to_vec();
        self.restart_trunk_lookups(&trunks);
        tokio::pin!(shutdown);
        let mut busy: Option<(Instant, Activity)> = None;
        let mut behind = false;
        let journal = std::sync::Arc::clone(&self.journal_gate.progress);
        self.udp_batch.active = true;
        loop {
            crate::priority::engine_thread(self.nice);
            {
                let _wakes = media::batch_wakes();
                self.drain(&mut sessions, &mut background);
            }
            // Every arm of the `select!` below ends here, so the messages
            // of each pass leave together before the engine waits again.
            self.hand_over_udp();
            let wake = self.core.poll_timeout().map(tokio::time::Instant::from_std);
            if let Some((started, activity)) = busy.take() {
                self.stalls.check(started.elapsed(), activity);
            }
            tokio::select! {
                input = receiver.recv() => {
                    // An arm may open and close relay sessions, so each
                    // arm wakes their relay threads once, at its end.
                    let _wakes = media::batch_wakes();
                    let started = Instant::now();
                    let Some(input) = input else { break };
                    let mut activity = Activity::of(&input);
                    self.handle_input(input, &mut sessions);
                    // Inputs that queued up meanwhile are taken now, so a
                    // burst costs one pass through `select!` and one
                    // deadline look-up instead of one per message. Each
                    // one's responses are queued before the next is read,
                    // and over UDP they leave with the rest of the pass.
                    for _ in 1..INPUT_BATCH {
                        let Ok(input) = receiver.try_recv() else { break };
                        activity.add(&input);
                        self.drain(&mut sessions, &mut background);
                        self.handle_input(input, &mut sessions);
                    }
                    busy = Some((started, activity));
                }
                () = udp.readable() => {
                    let _wakes = media::batch_wakes();
                    let started = Instant::now();
                    let mut activity = Activity::default_inputs();
                    // Like the batch above: each datagram's responses are
                    // queued before the next one is read.
                    for _ in 0..INPUT_BATCH {
                        match udp.try_read() {
                            UdpRead::Message(input) => {
                                activity.add(&input);
                                self.handle_input(input, &mut sessions);
                                self.drain(&mut sessions, &mut background);
                            }
                            UdpRead::Handled => {}
                            UdpRead::Empty => break,
                        }
                    }
                    busy = Some((started, activity));
                }
                () = sleep_until(wake) => {
                    let _wakes = media::batch_wakes();
                    let started = Instant::now();
                    self.core.handle_timeout(started);
                    busy = Some((started, Activity::Timers));
                }
                Some(request) = live.recv() => {
                    let _wakes = media::batch_wakes();
                    let started = Instant::now();
                    self.request_batch = Some(EventBatch::default());
                    let ack = self.answer_live(request, &sessions);
                    // Everything the core queued now was caused by the
                    // request, so its events travel with the reply.
                    self.drain(&mut sessions, &mut background);
                    let mut batch = self.request_batch.take().unwrap_or_default();
                    batch.acks.extend(ack);
                    self.store_events(batch);
                    busy = Some((started, Activity::ApiRequest));
                }
                Some(notice) = stored.recv() => {
                    let _wakes = media::batch_wakes();
                    let started = Instant::now();
                    self.release_held(notice);
                    busy = Some((started, Activity::HeldResponses));
                }
                () = journal.committed(), if self.journal_gate.holding() => {
                    let _wakes = media::batch_wakes();
                    let started = Instant::now();
                    self.release_committed();
                    busy = Some((started, Activity::HeldResponses));
                }
                _ = silence_check.tick(), if self.rtp_timeout.is_some() => {
                    let _wakes = media::batch_wakes();
                    let started = Instant::now();
                    self.check_silence(&sessions);
                    busy = Some((started, Activity::SilenceCheck));
                }
                _ = cpu_check.tick() => {
                    if let Some(share) = cpu_meter.sample(Instant::now()) {
                        let limit = self.core.overload_limits().cpu_percent;
                        self.core.set_cpu_overloaded(limit > 0 && share > f64::from(limit));
                    }
                    // Mostly ended calls whose CDR and journal rows are on
                    // their way to the stores.
                    behind = storage_behind(behind, background.len());
                    self.core.set_storage_behind(behind);
                }
                () = &mut shutdown => break,
                Some(_) = background.join_next(), if !background.is_empty() => {}
            }
        }
        // From here messages are sent at once, after those already queued.
        self.hand_over_udp();
        self.udp_batch.active = false;
        self.sender.flush_udp().await;
        tracing::info!(calls = self.core.active_calls(), "shutting down");
        self.core.shutdown(Instant::now());
        self.drain(&mut sessions, &mut background);
        let deadline = tokio::time::Instant::now() + HELD_RESPONSES_AT_SHUTDOWN;
        loop {
            self.release_committed();
            if !self.journal_gate.holding() {
                break;
            }
            if tokio::time::timeout_at(deadline, journal.committed())
                .await
                .is_err()
            {
                tracing::warn!("the open-call journal did not commit at the stop; sending anyway");
                self.journal_gate.open();
            }
        }
        // The calls are ended, and trunk unregistrations must not wait.
        self.journal_gate.open();
        let deadline = tokio::time::Instant::now() + HELD_RESPONSES_AT_SHUTDOWN;
        while self.core.held_responses() > 0 {
            match tokio::time::timeout_at(deadline, stored.recv()).await {
                Ok(Some(notice)) => {
                    self.release_held(notice);
                    self.drain(&mut sessions, &mut background);
                }
                _ => break,
            }
        }
        self.wait_for_unregistrations(&mut receiver, &mut udp, &mut sessions, &mut background)
            .await;
        // Sessions still binding ports when the calls ended are closed too.
        for (_, session) in sessions.drain() {
            let _ = session.close().await;
        }
        while background.join_next().await.is_some() {}
    }

    /// Runs the SIP timers and passes SIP responses to the core until every
    /// trunk's unregistration has its response or [`UNREGISTER_AT_SHUTDOWN`]
    /// passes. New requests are dropped, because the PBX is stopping.
    async fn wait_for_unregistrations(
        &mut self,
        receiver: &mut mpsc::Receiver<Input>,
        udp: &mut UdpReader,
        sessions: &mut HashMap<String, media::MediaSession>,
        background: &mut JoinSet<()>,
    ) {
        let deadline = tokio::time::Instant::now() + UNREGISTER_AT_SHUTDOWN;
        while self.core.trunk_unregistrations_pending() {
            let wake = self.core.poll_timeout().map(tokio::time::Instant::from_std);
            tokio::select! {
                input = receiver.recv() => match input {
                    Some(Input::Sip(message @ sip_message::Message::Response(_), source)) => {
                        self.core.handle_message(message, source, Instant::now());
                    }
                    Some(_) => {}
                    None => break,
                },
                () = udp.readable() => {
                    for _ in 0..INPUT_BATCH {
                        match udp.try_read() {
                            UdpRead::Message(Input::Sip(
                                message @ sip_message::Message::Response(_),
                                source,
                            )) => self.core.handle_message(message, source, Instant::now()),
                            UdpRead::Empty => break,
                            UdpRead::Message(_) | UdpRead::Handled => {}
                        }
                    }
                }
                () = sleep_until(wake) => self.core.handle_timeout(Instant::now()),
                () = tokio::time::sleep_until(deadline) => {
                    tracing::warn!("unregistration of a trunk timed out at the stop");
                    break;
                }
            }
            self.drain(sessions, background);
        }
    }

    fn handle_input(&mut self, input: Input, sessions: &mut HashMap<String, media::MediaSession>) {
        let now = Instant::now();
        match input {
            Input::Sip(message, source) => {
                self.sip_counters.count_received(&message);
                self.core.handle_message(message, source, now)
            }
            Input::ConnectionClosed(id) => self.core.connection_closed(id, now),
            Input::MediaOpened { call, result } => self.media_opened(call, result, sessions, now),
            Input::Media { call, notice } => self.core.media_notice(&call, notice, now),
            Input::MediaLost { call } => self.core.media_lost(&call, now),
            Input::TransportFailed { transport, addr } => {
                self.core.transport_failed(transport, addr, now)
            }
            Input::TrunkLocated {
                trunk,
                purpose,
                destinations,
            } => {
                self.sender.expect_server_names(&destinations);
                match purpose {
                    crate::dns::LookupPurpose::Outbound => {
                        self.core.set_trunk_destinations(&trunk, destinations);
                    }
                    crate::dns::LookupPurpose::Registrar => {
                        self.core.set_registrar_destinations(&trunk, destinations);
                    }
                }
            }
        }
    }

    /// Replaces the look-up tasks of the trunks' host names with those of
    /// `trunks`, which resolve at once.
    fn restart_trunk_lookups(&mut self, trunks: &[sip_server::b2bua::Trunk]) {
        for lookup in self.trunk_lookups.drain(..) {
            lookup.abort();
        }
        self.trunk_lookups = crate::dns::start_lookups(&self.resolver, trunks, &self.inputs);
    }

    /// Lets the core send the SIP responses held behind a batch that the
    /// writer has now committed, or failed to commit.
    fn release_held(&mut self, notice: Stored) {
        let now = Instant::now();
        for held in notice.held {
            self.core.events_stored(held, notice.committed, now);
        }
    }

    /// Answers the HTTP API from the core's state. Reads are answered at
    /// once; a change returns its reply as an [`Ack`] that the event writer
    /// runs after committing the events the change caused. A dropped reply
    /// channel means the client went away, which is fine.
    fn answer_live(
        &mut self,
        request: LiveRequest,
        sessions: &HashMap<String, media::MediaSession>,
    ) -> Option<Ack> {
        let now = Instant::now();
        match request {
            LiveRequest::Metrics(reply) => {
                let _ = reply.send(self.metrics(sessions, now));
            }
            LiveRequest::TrunkRegistrations(reply) => {
                let _ = reply.send(self.core.trunk_registrations());
            }
            LiveRequest::Agents(reply) => {
                let _ = reply.send(self.core.agents_view(now));
            }
            LiveRequest::Queues(reply) => {
                let _ = reply.send(self.core.queues_view(now));
            }
            LiveRequest::QueueStats { queue, reply } => {
                let _ = reply.send(self.core.queue_stats(&queue, now));
            }
            LiveRequest::SetReadiness {
                agent,
                readiness,
                reply,
            } => {
                let result = self.core.set_agent_readiness(&agent, readiness, now);
                return Some(after_commit(reply, result));
            }
            LiveRequest::SetLoggedIn {
                agent,
                logged_in,
                reply,
            } => {
                let result = self.core.set_agent_logged_in(&agent, logged_in, now);
                return Some(after_commit(reply, result));
            }
            LiveRequest::SetSkills {
                agent,
                skills,
                reply,
            } => {
                let result = self.core.set_agent_skills(&agent, skills, now);
                return Some(after_commit(reply, result));
            }
            LiveRequest::SetWrapUpCode { agent, code, reply } => {
                let result = self.core.set_agent_wrap_up_code(&agent, &code, now);
                return Some(after_commit(reply, result));
            }
            LiveRequest::AddMember {
                agent,
                queue,
                reply,
            } => {
                let result = self.core.add_agent_to_queue(&agent, &queue, now);
                return Some(after_commit(reply, result));
            }
            LiveRequest::RemoveMember {
                agent,
                queue,
                reply,
            } => {
                let result = self.core.remove_agent_from_queue(&agent, &queue, now);
                return Some(after_commit(reply, result));
            }
            LiveRequest::SetRecordingPaused {
                call,
                paused,
                actor,
                reply,
            } => {
                let result = self.core.set_recording_paused(&call, paused, &actor, now);
                let _ = reply.send(result);
            }
            LiveRequest::Reconfigure { config, reply } => {
                self.restart_trunk_lookups(&config.trunks);
                let applied = self.core.reconfigure(*config, now);
                return Some(after_commit(reply, applied));
            }
        }
        None
    }

    /// Hands `batch` to the event writer. Should the writer be gone, the
    /// request waiting on the batch learns that its change is not durable.
    fn store_events(&self, batch: EventBatch) {
        if batch.events.is_empty() && batch.lines.is_empty() && batch.acks.is_empty() {
            return;
        }
        if let Err(mpsc::error::SendError(batch)) = self.events.send(batch) {
            for ack in batch.acks {
                ack(Err(NotDurable("the event writer has stopped".to_owned())));
            }
        }
    }

    fn metrics(
        &self,
        sessions: &HashMap<String, media::MediaSession>,
        now: Instant,
    ) -> crate::metrics::Snapshot {
        let mut media = crate::metrics::MediaTotals {
            sessions: sessions.len(),
            relay_delays: self.relay.delays(),
            worker_exits: self.relay.worker_exits(),
            recording_late_ms: self.late_audio.milliseconds(),
            ..Default::default()
        };
        for session in sessions.values() {
            for leg in [media::Leg::Caller, media::Leg::Agent] {
                let stats = session.stats(leg);
                media.packets_received += stats.packets_received;
                media.packets_sent += stats.packets_sent;
                media.packets_lost += stats.rtp_packets_lost;
                media.packets_rejected +=
                    stats.rejected_source + stats.rejected_payload_type + stats.oversized_packets;
            }
        }
        media.recording = self.core.recordings_in_progress();
        let agents = self.core.agents_view(now);
        crate::metrics::Snapshot {
            active_calls: self.core.active_calls(),
            overload_rejections: self.core.overload_rejections(),
            engine_stalls: self.stalls.stalls(),
            registered_contacts: agents.iter().map(|agent| agent.contacts).sum(),
            agents,
            queues: self.core.queues_view(now),
            trunk_registrations: self.core.trunk_registrations(),
            sip: self.sip_counters.clone(),
            media,
        }
    }

    /// Gives the core each call's last RTP packet time, so it ends the
    /// answered calls that stayed silent for the RTP timeout.
    fn check_silence(&mut self, sessions: &HashMap<String, media::MediaSession>) {
        let Some(timeout) = self.rtp_timeout else {
            return;
        };
        let now = Instant::now();
        let last_packets: Vec<(String, Option<Instant>)> = sessions
            .iter()
            .map(|(call, session)| {
                let last = [media::Leg::Caller, media::Leg::Agent]
                    .into_iter()
                    .filter_map(|leg| session.stats(leg).last_packet_at)
                    .max();
                (call.clone(), last)
            })
            .collect();
        // The core holds each call's answer time and hold state, so it
        // decides. This only supplies the last packet times.
        for (call, last) in last_packets {
            self.core.media_silent(&call, last, timeout, now);
        }
    }

    /// Hands the outcome of opening `call`'s relay session to the core.
    fn media_opened(
        &mut self,
        call: String,
        result: Result<media::MediaSession, media::MediaError>,
        sessions: &mut HashMap<String, media::MediaSession>,
        now: Instant,
    ) {
        match result {
            Ok(session) => {
                let ports = MediaPorts {
                    caller: session.local_rtp_addr(media::Leg::Caller),
                    agent: session.local_rtp_addr(media::Leg::Agent),
                };
                if self.core.media_opened(&call, ports, now) {
                    forward_media_events(&call, &session, self.inputs.clone());
                    sessions.insert(call, session);
                } else {
                    tokio::spawn(async move {
                        let _ = session.close().await;
                    });
                }
            }
            Err(error) => {
                tracing::error!(call, %error, "opening the media relay failed");
                self.core.media_failed(&call, now);
            }
        }
    }

    /// Sends what the core queued and starts the work its commands ask for.
    /// Commands go first, so that a checkpoint of the call is on its way
    /// to the journal before the messages of the same step are sent.
    fn drain(
        &mut self,
        sessions: &mut HashMap<String, media::MediaSession>,
        background: &mut JoinSet<()>,
    ) {
        loop {
            let mut progressed = false;
            while let Some(command) = self.core.poll_command() {
                progressed = true;
                self.execute(command, sessions, background);
            }
            while let Some(transmit) = self.core.poll_transmit() {
                progressed = true;
                if let Some(transmit) = self.journal_gate.admit(transmit) {
                    self.transmit(transmit);
                }
            }
            if !progressed {
                return;
            }
        }
    }

    fn transmit(&mut self, transmit: Transmit) {
        self.sip_counters.count_sent(&transmit.payload);
        if self.udp_batch.active
            && transmit.target.transport == sip_server::transaction::TransportKind::Udp
        {
            self.udp_batch
                .datagrams
                .push((transmit.payload, transmit.target.addr));
        } else {
            self.sender.send(transmit.target, transmit.payload);
        }
    }

    /// Gives the datagrams queued in this pass of the run loop to the send
    /// thread.
    fn hand_over_udp(&mut self) {
        let datagrams = std::mem::take(&mut self.udp_batch.datagrams);
        self.sender.send_udp(datagrams);
    }

    /// Sends the held messages whose calls the journal has committed.
    fn release_committed(&mut self) {
        while let Some(transmit) = self.journal_gate.release() {
            self.transmit(transmit);
        }
    }

    fn execute(
        &mut self,
        command: Command,
        sessions: &mut HashMap<String, media::MediaSession>,
        background: &mut JoinSet<()>,
    ) {
        match command {
            Command::OpenMedia { call, sip_call_id } => {
                let relay = self.relay.clone();
                let mut opening = Box::pin(async move { relay.open_session(&sip_call_id).await });
                // Binding the ports does not wait today, so the session
                // opens here. A task of its own and a trip through the
                // input queue cost two thread wake-ups per call. Should
                // opening ever wait, it finishes in a task as before.
                match (&mut opening).now_or_never() {
                    Some(result) => self.media_opened(call, result, sessions, Instant::now()),
                    None => {
                        let inputs = self.inputs.clone();
                        tokio::spawn(async move {
                            let result = opening.await;
                            let _ = inputs.send(Input::MediaOpened { call, result }).await;
                        });
                    }
                }
            }
            Command::SetRemote { call, side, addr } => {
                if let Some(session) = sessions.get(&call) {
                    session.set_remote(leg(side), addr);
                }
            }
            Command::SetPayloadTypes {
                call,
                side,
                payload_types,
            } => {
                if let Some(session) = sessions.get(&call) {
                    session.set_payload_types(leg(side), &payload_types);
                }
            }
            Command::SetCodecs {
                call,
                side,
                payload_type,
                event_payload_type,
            } => {
                let codec = media::Codec::from_payload_type(payload_type);
                if let (Some(session), Some(codec)) = (sessions.get(&call), codec) {
                    session.set_codecs(leg(side), codec, event_payload_type);
                }
            }
            Command::Play {
                call,
                side,
                prompts,
                looped,
            } => {
                let Some(session) = sessions.get(&call) else {
                    return;
                };
                let loaded: Result<Vec<_>, _> =
                    prompts.iter().map(|path| self.prompts.get(path)).collect();
                let played = match loaded {
                    Ok(samples) => session
                        .play_loaded(leg(side), samples, looped, false)
                        .map_err(|error| error.to_string()),
                    Err(error) => Err(error.to_string()),
                };
                if let Err(error) = played {
                    // The caller keeps hearing what played before (or
                    // silence); the call itself goes on.
                    tracing::error!(call, %error, "playing a prompt failed");
                }
            }
            Command::CloseMedia { call } => {
                if let Some(session) = sessions.remove(&call) {
                    background.spawn(async move {
                        if let Err(error) = session.close().await {
                            tracing::warn!(call, %error, "closing an unused relay failed");
                        }
                    });
                }
            }
            Command::StopPlayback { call, side } => {
                if let Some(session) = sessions.get(&call) {
                    session.stop_playback(leg(side));
                }
            }
            Command::ResetLeg { call, side } => {
                if let Some(session) = sessions.get(&call) {
                    session.reset_leg(leg(side));
                }
            }
            Command::StartRecording {
                call,
                path,
                mixed_mono_path,
                at,
            } => {
                let Some(session) = sessions.get(&call) else {
                    return;
                };
                let mixed_file = mixed_mono_path
                    .as_ref()
                    .map(|path| self.data_dir.join(path));
                match session.start_recording_with(
                    self.data_dir.join(&path),
                    mixed_file,
                    at,
                    self.recording_jitter_window,
                ) {
                    Ok(()) => {
                        let catalogue = self.catalogue.clone();
                        let started = time::OffsetDateTime::now_utc();
                        tokio::spawn(async move {
                            let files = std::iter::once((RecordingKind::Stereo, path)).chain(
                                mixed_mono_path.map(|path| (RecordingKind::MixedMono, path)),
                            );
                            for (kind, path) in files {
                                if let Err(error) =
                                    catalogue.started(&call, kind, &path, started).await
                                {
                                    tracing::error!(call, %error, "cataloguing the recording failed");
                                }
                            }
                        });
                    }
                    Err(error) => tracing::error!(call, %error, "recording could not start"),
                }
            }
            Command::PauseRecording { call, paused, at } => {
                if let Some(session) = sessions.get(&call) {
                    session.set_recording_paused(paused, at);
                }
            }
            Command::StopRecording { call, at } => {
                if let Some(session) = sessions.get(&call) {
                    session.stop_recording(at);
                }
            }
            Command::SetFeatureCode { call, side, code } => {
                if let Some(session) = sessions.get(&call)
                    && let Err(error) = session.set_feature_code(leg(side), code.as_deref())
                {
                    tracing::error!(call, %error, "watching for the feature code failed");
                }
            }
            Command::QueueLog {
                lines,
                events,
                held,
            } => match &mut self.request_batch {
                Some(batch) => add_queue_log(batch, lines, &events, held, &self.stored),
                None => {
                    let mut batch = EventBatch::default();
                    add_queue_log(&mut batch, lines, &events, held, &self.stored);
                    self.store_events(batch);
                }
            },
            Command::Checkpoint { record, legs } => {
                if self
                    .journal
                    .send(JournalEntry::Save { record, legs })
                    .is_ok()
                {
                    self.journal_gate.saves_sent += 1;
                }
            }
            Command::SaveBindings { agent, bindings } => {
                let _ = self.registrations.send((agent, bindings));
            }
            Command::Finish {
                call,
                record,
                media_open,
            } => {
                let session = if media_open {
                    sessions.remove(&call)
                } else {
                    None
                };
                // The close goes out now, inside the caller's batch of
                // relay wake-ups, and the task waits for its outcome.
                let closing = session.map(media::MediaSession::close_with_stats);
                let stores = FinishStores {
                    cdr: self.cdr.clone(),
                    journal: self.journal.clone(),
                    catalogue: self.catalogue.clone(),
                    data_dir: self.data_dir.clone(),
                    late_audio: self.late_audio.clone(),
                };
                background.spawn(finish_call(closing, *record, stores));
            }
        }
    }
}

/// Most inputs the engine handles before it sends what they caused and
/// looks at its timers again.
const INPUT_BATCH: usize = 64;

/// Most snapshots one commit of [`write_registrations`] takes.
const REGISTRATION_BATCH: usize = 2048;

/// How long [`write_registrations`] gathers changes before it commits them.
/// A kill -9 loses at most this much of the registrar's changes, which the
/// phones repeat at their next refresh anyway; in exchange a registration
/// storm costs a few commits a second instead of one per REGISTER.
const REGISTRATION_FLUSH: Duration = Duration::from_millis(250);

/// Writes bindings in the order the registrar changed them, so an older
/// snapshot never overwrites a newer one. Changes gathered over
/// [`REGISTRATION_FLUSH`] go into one transaction, and of several for the
/// same agent only the newest is written. The task sleeps while it gathers
/// rather than waking for each change, so a REGISTER costs no wake-up of
/// this task.
pub(crate) async fn write_registrations(
    store: crate::registrations::RegistrationStore,
    mut queue: mpsc::UnboundedReceiver<(String, Vec<StoredBinding>)>,
) {
    let mut batch: Vec<(String, Vec<StoredBinding>)> = Vec::new();
    let mut slot: HashMap<String, usize> = HashMap::new();
    let mut open = true;
    while open {
        let Some(first) = queue.recv().await else {
            break;
        };
        gather(&mut batch, &mut slot, first);
        // The engine stopping ends this wait late by at most the flush
        // interval, and what it sent last is still written.
        tokio::time::sleep(REGISTRATION_FLUSH).await;
        while batch.len() < REGISTRATION_BATCH {
            match queue.try_recv() {
                Ok(change) => gather(&mut batch, &mut slot, change),
                Err(mpsc::error::TryRecvError::Empty) => break,
                Err(mpsc::error::TryRecvError::Disconnected) => {
                    open = false;
                    break;
                }
            }
        }
        if let Err(error) = store.save_all(&batch).await {
            tracing::error!(agents = batch.len(), %error, "storing registrations failed");
        }
        batch.clear();
        slot.clear();
    }
}

/// Adds an agent's bindings to `batch`, replacing an older snapshot of the
/// same agent, whose index `slot` keeps.
fn gather(
    batch: &mut Vec<(String, Vec<StoredBinding>)>,
    slot: &mut HashMap<String, usize>,
    (agent, bindings): (String, Vec<StoredBinding>),
) {
    match slot.get(&agent) {
        Some(&index) => batch[index].1 = bindings,
        None => {
            slot.insert(agent.clone(), batch.len());
            batch.push((agent, bindings));
        }
    }
}

/// Stores and folders that [`finish_call`] writes a finished call's CDR and
/// catalogue entries to.
struct FinishStores {
    cdr: cdr::CdrStore,
    journal: mpsc::UnboundedSender<JournalEntry>,
    catalogue: crate::catalogue::Catalogue,
    /// Folder the catalogue's paths are relative to.
    data_dir: PathBuf,
    late_audio: std::sync::Arc<LateAudio>,
}

/// Closes the relay, completes the CDR with the recording's outcome and
/// writes it, after the recordings' catalogue entries.
/// The outcome of closing a relay session: its recording, if any.
type MediaOutcome = Result<Option<recordings::RecordingSummary>, media::MediaError>;

async fn finish_call(
    closing: Option<impl Future<Output = (MediaOutcome, [media::LegStats; 2])>>,
    mut record: cdr::CallRecord,
    stores: FinishStores,
) {
    let FinishStores {
        cdr: store,
        journal,
        catalogue,
        data_dir,
        late_audio,
    } = stores;
    // The figures after the close count every packet, also in a relay
    // worker, which otherwise reports them once a second.
    let summary = match closing {
        Some(closing) => {
            let (summary, stats) = closing.await;
            record.media_quality = media_quality(&stats);
            summary
        }
        None => Ok(None),
    };
    match summary {
        Ok(Some(summary)) => {
            record.recording_seconds = Some(summary.duration_seconds);
            late_audio.add(summary.late_ms);
            if let Some(quality) = &mut record.media_quality {
                quality.caller.recording_late_ms = Some(summary.late_ms[0]);
                quality.agent.recording_late_ms = Some(summary.late_ms[1]);
            }
            if summary.late_ms != [0, 0] {
                // Per call at debug: under load this comes with many calls
                // at once; the CDR and the metric keep the figures.
                tracing::debug!(
                    call = record.id,
                    caller_ms = summary.late_ms[0],
                    agent_ms = summary.late_ms[1],
                    "audio came too late for the recording"
                );
            }
            if let Some(path) = &record.recording_path {
                let stereo = (RecordingKind::Stereo, summary.path.clone());
                let length = Some(summary.duration_seconds);
                catalogue_finished(&catalogue, &record.id, path, stereo, length, Complete).await;
            }
            let mixed = summary.mixed_mono_path.clone().and_then(|file| {
                let relative = file.strip_prefix(&data_dir).ok()?.to_str()?.to_owned();
                Some((relative, file))
            });
            if let Some((relative, file)) = mixed {
                let mixed = (RecordingKind::MixedMono, file);
                let length = Some(summary.duration_seconds);
                catalogue_finished(&catalogue, &record.id, &relative, mixed, length, Complete)
                    .await;
            }
        }
        Ok(None) => record.recording_path = None,
        Err(error) => {
            tracing::error!(call = record.id, %error, "closing the media relay failed");
            let lost_worker = matches!(error, media::MediaError::Worker { .. });
            match record.recording_path.clone().filter(|_| lost_worker) {
                // The worker died as a crash would: what it wrote stays,
                // repaired as after a restart.
                Some(path) => {
                    let file = data_dir.join(&path);
                    let repairing = file.clone();
                    let length = tokio::task::spawn_blocking(move || {
                        crate::journal::repaired_length(&repairing)
                    })
                    .await
                    .ok()
                    .flatten();
                    record.recording_seconds = length;
                    let stereo = (RecordingKind::Stereo, file);
                    catalogue_finished(&catalogue, &record.id, &path, stereo, length, Interrupted)
                        .await;
                }
                None => record.recording_path = None,
            }
        }
    }
    match store.write_grouped(&record).await {
        Ok(()) => {
            let _ = journal.send(JournalEntry::Remove(record.id));
        }
        // The journal keeps the call, so the next start retries its CDR.
        Err(error) => tracing::error!(call = record.id, %error, "writing the CDR failed"),
    }
}

/// The relay's reception figures of both legs, or None when neither leg
/// sent audio (a call refused or abandoned before any media).
fn media_quality([caller, agent]: &[media::LegStats; 2]) -> Option<cdr::MediaQuality> {
    let leg = |stats: &media::LegStats| cdr::LegQuality {
        packets_received: stats.rtp_packets_received,
        packets_expected: stats.rtp_packets_expected,
        packets_lost: stats.rtp_packets_lost,
        loss_percent: (stats.loss_fraction() * 100_000.0).round() / 1000.0,
        jitter_ms: (stats.jitter_ms() * 1000.0).round() / 1000.0,
        mos: (stats.mos() * 100.0).round() / 100.0,
        recording_late_ms: None,
    };
    let quality = cdr::MediaQuality {
        caller: leg(caller),
        agent: leg(agent),
    };
    let silent = quality.caller.packets_received == 0 && quality.agent.packets_received == 0;
    (!silent).then_some(quality)
}

/// Wraps `reply` so that it carries `value` once the events are committed,
/// or the reason they are not.
fn after_commit<T: Send + 'static>(
    reply: tokio::sync::oneshot::Sender<Durable<T>>,
    value: T,
) -> Ack {
    Box::new(move |committed| {
        let _ = reply.send(committed.map(|()| value));
    })
}

/// Stores a finished recording file's status, length, size and SHA-256:
/// `file` is the stereo recording or its mono mix, according to `kind`, and
/// `path` the same file relative to the data folder. The hash is taken before the CDR
/// is written so that a CDR's recording is already catalogued; a failure
/// is only logged, and the CDR is written anyway.
async fn catalogue_finished(
    catalogue: &crate::catalogue::Catalogue,
    call: &str,
    path: &str,
    (kind, file): (RecordingKind, PathBuf),
    duration_seconds: Option<f64>,
    status: crate::catalogue::RecordingStatus,
) {
    let facts = crate::catalogue::FileFacts {
        ended_at: time::OffsetDateTime::now_utc(),
        duration_seconds,
        digest: crate::catalogue::digest(file).await,
    };
    if let Err(error) = catalogue.finished(call, kind, path, status, &facts).await {
        tracing::error!(call, %error, "cataloguing the finished recording failed");
    }
}

/// Passes the keys and playback ends of a call's relay to the engine
/// until the session ends.
fn forward_media_events(call: &str, session: &media::MediaSession, inputs: mpsc::Sender<Input>) {
    let mut events = session.events();
    let call = call.to_owned();
    tokio::spawn(async move {
        while let Some(event) = events.recv().await {
            let notice = match event {
                media::MediaEvent::Dtmf { leg, digit } => MediaNotice::Digit {
                    side: side(leg),
                    digit: digit.digit,
                },
                media::MediaEvent::PlaybackEnded {
                    leg,
                    reason: media::PlaybackEnd::Finished,
                } => MediaNotice::PlaybackFinished { side: side(leg) },
                media::MediaEvent::FeatureCode { leg, code } => MediaNotice::FeatureCode {
                    side: side(leg),
                    code,
                },
                media::MediaEvent::PlaybackEnded { .. } => continue,
                media::MediaEvent::RelayLost { reason } => {
                    tracing::error!(call, reason, "call lost its media relay");
                    let _ = inputs.send(Input::MediaLost { call }).await;
                    return;
                }
            };
            let input = Input::Media {
                call: call.clone(),
                notice,
            };
            if inputs.send(input).await.is_err() {
                return;
            }
        }
    });
}

fn side(leg: media::Leg) -> Side {
    match leg {
        media::Leg::Caller => Side::Caller,
        media::Leg::Agent => Side::Agent,
    }
}

fn leg(side: Side) -> media::Leg {
    match side {
        Side::Caller => media::Leg::Caller,
        Side::Agent => media::Leg::Agent,
    }
}

async fn sleep_until(deadline: Option<tokio::time::Instant>) {
    match deadline {
        Some(deadline) => tokio::time::sleep_until(deadline).await,
        None => std::future::pending().await,
    }
}

/// Returns the wall-clock moment matching `Instant::now()`, for CDR
/// timestamps.
pub(crate) fn clock_pair() -> (Instant, SystemTime) {
    (Instant::now(), SystemTime::now())
}

mod stall;
#[cfg(test)]
mod tests;
