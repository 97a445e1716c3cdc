//! The B2BUA core: citizens' calls in, agents' legs out, with the ACD
//! choosing the agent.
//!
//! [`Core`] is sans-IO. The driver feeds it parsed messages
//! ([`Core::handle_message`]), the results of media commands
//! ([`Core::media_opened`]) and the clock ([`Core::handle_timeout`]); it
//! sends what [`Core::poll_transmit`] returns and carries out what
//! [`Core::poll_command`] returns (relay ports, recordings, CDRs). After any
//! of the `handle_*` calls the driver drains both queues and asks
//! [`Core::poll_timeout`] again.
//!
//! Each call has two dialogs: the caller's, where the PBX is the UAS, and
//! the agent's, where it is the UAC with its own Call-ID and tags. Nothing
//! of one leg's dialog identifiers leaks into the other.

mod announce;
mod attended;
mod call;
mod callback;
mod feature;
mod forward;
mod hold;
mod identity;
mod in_dialog;
mod internal;
mod live;
mod offer;
mod offerless;
mod reconfigure;
mod recording;
mod reliable;
mod session_refresh;
mod session_timer;
mod setup;
mod survey;
mod transfer;
mod trunk_registration;
mod voicemail;

use std::collections::{HashMap, VecDeque};
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant, SystemTime};

use sip_message::{Method, NameAddr, Request, Response, Uri};

use crate::dialog::{ListenPorts, LocalContact};
use crate::registrar::{Registrar, RegistrarConfig, RegistrarEvent};
use crate::transaction::{
    Event, Target, TimerConfig, TransactionKey, TransactionLayer, Transmit, TransportKind,
};

pub use announce::{MediaNotice, PromptSet, QueueMedia, prompt_names};
use call::{Attempt, Call};
pub use call::{MediaPorts, Side};
pub use callback::StoredCallback;
pub use identity::NumberingPlan;
pub use live::{AgentCommandError, AgentView, QueueStatsView, QueueView, Readiness};
pub use recording::{RecordingActor, RecordingCommandError};
pub use session_timer::SessionTimerConfig;
pub use survey::SurveyConfig;
pub use trunk_registration::TrunkRegistrationView;

/// A trunk: peers whose source address is in `allow` may place calls
/// without digest authentication, and so may the provider the trunk
/// registers at, when it calls the registered Contact or calls from the
/// registrar's address. Other peers that know `inbound_credentials` place
/// calls after a 407 challenge.
#[derive(Clone, Debug)]
pub struct Trunk {
    pub name: String,
    pub allow: Vec<crate::network::IpNetwork>,
    /// Registration at the provider's registrar, if the trunk has one.
    pub registration: Option<crate::trunk_registration::RegistrationConfig>,
    /// Digest credentials a peer outside `allow` authenticates with.
    pub inbound_credentials: Option<TrunkCredentials>,
    /// Target of calls to numbers (a carrier's SBC or gateway). A host
    /// name is resolved by the driver, which reports the servers with
    /// [`Core::set_trunk_destinations`].
    pub outbound: Option<crate::locate::OutboundTarget>,
    /// Numbering plan of the trunk's numbers; None keeps them as received.
    pub numbering: Option<NumberingPlan>,
    /// The caller number comes from P-Asserted-Identity when present.
    pub trust_identity: bool,
}

/// Digest username and password of a trunk's inbound calls.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TrunkCredentials {
    pub username: String,
    pub password: String,
}

impl Trunk {
    pub fn allows(&self, source: IpAddr) -> bool {
        self.allow.iter().any(|network| network.contains(source))
    }
}

/// Route of one dialed number: its queue and the data its calls carry there.
#[derive(Clone, Debug, Default)]
pub struct DidRoute {
    pub queue: String,
    pub priority: u32,
    /// Skills an agent needs for these calls, before the queue relaxes them.
    pub skills: Vec<acd::SkillRequirement>,
    /// Kind of request these calls are, shown to the agent and kept in the CDR.
    pub request_type: Option<String>,
}

#[derive(Clone, Debug)]
pub struct CoreConfig {
    /// Digest realm and the host part of AORs.
    pub domain: String,
    /// Address and port peers reach the PBX's SIP service at over UDP and
    /// TCP.
    pub sip_address: SocketAddr,
    /// Ports of the TLS, WS and WSS listeners; `udp_tcp` is ignored in
    /// favour of `sip_address`'s port.
    pub listen_ports: ListenPorts,
    /// Address put in SDP for the relay ports.
    pub media_address: IpAddr,
    pub trunks: Vec<Trunk>,
    /// DID number to its route.
    pub dids: HashMap<String, DidRoute>,
    pub queues: Vec<acd::QueueConfig>,
    /// Queue name to its agents.
    pub queue_agents: HashMap<String, Vec<String>>,
    /// Agent id to its skills and proficiency levels.
    pub agent_skills: HashMap<String, acd::Skills>,
    /// Wrap-up of the agents that have their own, in place of the queues'.
    pub agent_wrap_up: HashMap<String, Duration>,
    pub caller_order: acd::CallerOrder,
    /// When false, a call forwarded to an agent's extension makes the agent
    /// busy for the queues, and a busy agent's extension gets 486.
    pub ring_in_use: bool,
    pub registrar: RegistrarConfig,
    /// Digest algorithms offered to phones, preferred first.
    pub digest_algorithms: Vec<crate::auth::Algorithm>,
    /// Agent id to digest password.
    pub passwords: HashMap<String, String>,
    pub recording: bool,
    /// DTMF keys (such as `*1`) with which the agent on an answered call
    /// pauses its recording and resumes it; the caller never hears them.
    /// `None` leaves pausing to the API.
    pub recording_pause_code: Option<String>,
    /// Answered calls also get a mono recording that sums both legs.
    pub recording_mixed_mono: bool,
    pub timers: TimerConfig,
    /// Queue name to what its waiting callers hear; queues not listed give
    /// ringback.
    pub queue_media: HashMap<String, QueueMedia>,
    /// Prompts for announcements.
    pub prompts: PromptSet,
    /// Maximum length of a voicemail message, at which the PBX hangs up.
    pub voicemail_max: Duration,
    /// When new calls are refused to protect the calls in progress.
    pub overload: OverloadLimits,
    /// Session timer intervals (RFC 4028).
    pub session_timer: SessionTimerConfig,
    /// Queue name to its post-call survey; queues not listed have none.
    pub surveys: HashMap<String, SurveyConfig>,
}

/// Limits past which a new INVITE gets 503 with Retry-After while
/// established calls and registrations carry on.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OverloadLimits {
    /// Live SIP transactions, the INVITE's own included.
    pub max_transactions: usize,
    /// Process CPU, in percent of all cores, that the driver compares its
    /// measurements with before calling `set_cpu_overloaded`; 0 is off.
    pub cpu_percent: u32,
    /// Value of Retry-After in the 503.
    pub retry_after: Duration,
    /// Maximum calls in progress, what the process's open files limit
    /// allows for their relay sockets and recordings. Past it a new call
    /// gets 503 before it binds any port, so the databases and logs keep
    /// the descriptors they need.
    pub max_calls: usize,
}

impl Default for OverloadLimits {
    fn default() -> OverloadLimits {
        OverloadLimits {
            max_transactions: 200_000,
            cpu_percent: 90,
            retry_after: Duration::from_secs(10),
            max_calls: usize::MAX,
        }
    }
}

/// Work for the driver that is not sending SIP.
#[derive(Debug)]
pub enum Command {
    /// Bind relay ports for `call`, then report with `media_opened` or
    /// `media_failed`.
    OpenMedia { call: String, sip_call_id: String },
    SetRemote {
        call: String,
        side: Side,
        addr: SocketAddr,
    },
    /// RTP payload types `side` may send; the relay drops others.
    SetPayloadTypes {
        call: String,
        side: Side,
        payload_types: Vec<u8>,
    },
    /// Forget the latched agent-side peer: another agent is being tried.
    ResetLeg { call: String, side: Side },
    /// The codec `side` negotiated, by static payload type, and its
    /// telephone-event payload type; the relay transcodes when the legs
    /// differ and plays prompts in this codec.
    SetCodecs {
        call: String,
        side: Side,
        payload_type: u8,
        event_payload_type: Option<u8>,
    },
    /// Play these WAV files to `side`, replacing what plays there, once or
    /// `looped`; the driver reports the end of a list that does not loop
    /// with `media_notice`.
    Play {
        call: String,
        side: Side,
        prompts: Vec<std::path::PathBuf>,
        looped: bool,
    },
    /// Close the relay of `call` without writing a CDR, for a callback call
    /// whose agent never took it.
    CloseMedia { call: String },
    /// Stop what plays to `side`; the other leg's audio reaches it again.
    StopPlayback { call: String, side: Side },
    /// Record both legs into `path`, relative to the data directory, and
    /// their mono mix into `mixed_mono_path` when it is given. Sample 0 is
    /// `at`, the answer, so that offsets from the answer (such as those of
    /// recording pauses) are offsets into the file.
    StartRecording {
        call: String,
        path: String,
        mixed_mono_path: Option<String>,
        at: Instant,
    },
    /// Write silence in the recording from `at` on (`paused` true), or
    /// audio again.
    PauseRecording {
        call: String,
        paused: bool,
        at: Instant,
    },
    /// End the recording at `at` while the relay goes on, because the
    /// agent's part of the call ended and the caller stays for the survey.
    /// `Finish` later reports this recording.
    StopRecording { call: String, at: Instant },
    /// Keep the keys of `code` that `side` sends from the other leg and
    /// report the code with `media_notice` as [`MediaNotice::FeatureCode`];
    /// `None` stops.
    SetFeatureCode {
        call: String,
        side: Side,
        code: Option<String>,
    },
    /// Store `record` as the state of a call in progress, with what a crash
    /// would leave open of its legs. It replaces the call's previous
    /// checkpoint, and `Finish` removes it.
    Checkpoint {
        record: Box<cdr::CallRecord>,
        legs: crate::dialog::StoredLegs,
    },
    /// Store `events` durably, in order, and append the Asterisk-compatible
    /// queue_log `lines` made from them. `held` lists the SIP responses
    /// that wait for these events (and every earlier one) to be stored.
    /// Once the batch is committed, or has failed, report each with
    /// [`Core::events_stored`]. `events` may be empty when `held` is not.
    QueueLog {
        lines: Vec<String>,
        events: Vec<StampedEvent>,
        held: Vec<HeldResponse>,
    },
    /// Store the bindings of `agent`, replacing what was stored for it.
    SaveBindings {
        agent: String,
        bindings: Vec<crate::registrar::StoredBinding>,
    },
    /// The call ended. Close the relay (when `media_open`), fill the
    /// recording fields of `record` from the finished recording, and write
    /// the CDR.
    Finish {
        call: String,
        record: Box<cdr::CallRecord>,
        media_open: bool,
    },
}

/// A queue or agent event with the wall-clock time it happened, for the
/// driver's event store.
#[derive(Clone, Debug, PartialEq)]
pub struct StampedEvent {
    pub event: acd::QueueEvent,
    pub wall: SystemTime,
}

/// Id of a SIP final response that the core keeps back until the driver
/// has stored the queue events the request caused, so that a phone never
/// sees a state change confirmed that a crash could still undo.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct HeldResponse(u64);

/// Role of a client transaction the core started.
enum Purpose {
    AgentInvite {
        attempt: u64,
        branch: usize,
    },
    /// A request relayed from the other leg; its final response goes back
    /// on `server_key`.
    Relay {
        call: String,
        server_key: TransactionKey,
        request: Box<Request>,
        origin: Side,
    },
    /// An OPTIONS probe of an agent's contact.
    Qualify {
        agent: String,
        contact: Uri,
    },
    /// An UPDATE or re-INVITE that refreshes the session of one leg.
    SessionRefresh {
        call: String,
        side: Side,
        method: session_refresh::RefreshMethod,
    },
    /// A re-INVITE that moves `side` of `call` to its relay after an
    /// attended transfer.
    Rebridge {
        call: String,
        side: Side,
    },
    /// A REGISTER of the trunk registration client `client`.
    TrunkRegister {
        client: u64,
    },
    /// BYE or CANCEL whose outcome changes nothing.
    FireAndForget,
}

/// Most transactions the `Core` reserves room for at start; a higher
/// `max_transactions` lets the table grow past this.
const RESERVED_TRANSACTIONS_MAX: usize = 200_000;

/// Minimum time between two warnings about calls rejected for overload.
const OVERLOAD_WARNING_INTERVAL: Duration = Duration::from_secs(10);

/// Spaces out warnings about an event that can repeat thousands of times a
/// second, counting the occurrences in between.
#[derive(Debug)]
struct WarningThrottle {
    interval: Duration,
    /// When the last warning was due, and the occurrences since.
    last: Option<(Instant, u64)>,
}

impl WarningThrottle {
    fn new(interval: Duration) -> Self {
        WarningThrottle {
            interval,
            last: None,
        }
    }

    /// Records one occurrence at `now`. Returns the number to report when
    /// a warning is due (this one and those since the last warning), or
    /// `None` while the last warning is more recent than the interval.
    fn note(&mut self, now: Instant) -> Option<u64> {
        let count = match self.last {
            Some((at, count)) if now.saturating_duration_since(at) < self.interval => {
                self.last = Some((at, count + 1));
                return None;
            }
            Some((_, count)) => count + 1,
            None => 1,
        };
        self.last = Some((now, 0));
        Some(count)
    }
}

pub struct Core {
    config: CoreConfig,
    local: LocalContact,
    transactions: TransactionLayer,
    registrar: Registrar,
    acd: acd::Acd,
    calls: HashMap<String, Call>,
    /// SIP Call-ID of either leg to the product call id.
    by_sip_call_id: HashMap<String, String>,
    /// The reverse of `by_sip_call_id`: each call's SIP Call-IDs, so that
    /// ending a call does not scan the index of every call. An attended
    /// transfer moves a Call-ID to another call and leaves it listed here
    /// under the first, so an entry counts only while `by_sip_call_id`
    /// still leads back to its call.
    sip_call_ids: HashMap<String, Vec<String>>,
    attempts: HashMap<u64, Attempt>,
    next_attempt: u64,
    purposes: HashMap<TransactionKey, Purpose>,
    /// 2xx to INVITE we sent, by (Call-ID, CSeq), until their ACK arrives.
    awaiting_ack: HashMap<(String, u32), TransactionKey>,
    /// Feature-code calls answered and waiting for their ACK, by (Call-ID,
    /// CSeq), to be hung up then.
    feature_dialogs: HashMap<(String, u32), crate::dialog::Dialog>,
    /// Feature-code responses waiting for their events to be stored.
    held_responses: HashMap<HeldResponse, feature::HeldFeature>,
    /// Held responses not yet attached to a `QueueLog` command. The next
    /// one carries them, with the events of the change that held them.
    unsent_holds: Vec<HeldResponse>,
    next_hold: u64,
    commands: VecDeque<Command>,
    wall_base: (Instant, SystemTime),
    /// The one timer of each call that has no agent leg: its next
    /// announcement, or the end of its apology, greeting, message or forward.
    waiting_deadlines: std::collections::BTreeSet<(Instant, String)>,
    /// Callback request (its ACD call id) to the call placed to return it.
    callback_calls: HashMap<String, String>,
    /// Retransmissions and give-ups of the callers' unacknowledged
    /// reliable provisional responses, with the call they belong to.
    reliable_deadlines: std::collections::BTreeSet<(Instant, String)>,
    /// Session refreshes and expiries, with the call they belong to. An
    /// entry whose time no longer matches the leg's deadline is stale.
    session_deadlines: std::collections::BTreeSet<(Instant, String)>,
    /// The driver measured the process's CPU above its limit.
    cpu_overloaded: bool,
    /// Whether the driver's stores lag behind the calls that ended, see
    /// [`Core::set_storage_behind`].
    storage_behind: bool,
    /// New INVITEs refused with 503 since start.
    overload_rejections: u64,
    /// An overload rejects thousands of calls a second, and a warning for
    /// each would bury the log.
    overload_warnings: WarningThrottle,
    trunk_registrations: trunk_registration::TrunkRegistrations,
    /// Servers of each trunk whose outbound target is a host name, in the
    /// order to try them, as the driver last resolved them.
    trunk_destinations: HashMap<String, Vec<crate::locate::Destination>>,
}

impl Core {
    /// `now` and `wall` are the same moment on the monotonic and the wall
    /// clock; CDR timestamps are derived from them.
    pub fn new(config: CoreConfig, now: Instant, wall: SystemTime) -> Result<Core, acd::AcdError> {
        let auth = crate::auth::DigestAuthenticator::new(&config.domain, &config.digest_algorithms);
        let registrar = Registrar::new(config.registrar.clone(), auth, config.passwords.clone());
        let mut acd = acd::Acd::new();
        acd.set_caller_order(config.caller_order);
        for queue in &config.queues {
            acd.add_queue(queue.clone());
        }
        let mut memberships: HashMap<&str, Vec<String>> = HashMap::new();
        for (queue, agents) in &config.queue_agents {
            for agent in agents {
                memberships
                    .entry(agent.as_str())
                    .or_default()
                    .push(queue.clone());
            }
        }
        for agent in config.passwords.keys() {
            let mut queues = memberships.remove(agent.as_str()).unwrap_or_default();
            queues.sort();
            acd.add_agent(agent, &queues);
            // TODO: agents log in and out through feature codes and the
            // API. Until then a configured agent is logged in and takes
            // calls whenever it is registered.
            acd.set_logged_in(agent, true, now);
            if let Some(skills) = config.agent_skills.get(agent) {
                acd.set_skills(agent, skills.clone(), now)?;
            }
            acd.set_wrap_up(agent, config.agent_wrap_up.get(agent).copied())?;
        }
        let local = LocalContact {
            address: config.sip_address.ip(),
            ports: ListenPorts {
                udp_tcp: config.sip_address.port(),
                ..config.listen_ports
            },
        };
        let mut core = Core {
            local,
            // Reserved up to the overload limit, so that the table does not
            // stall the engine by growing under a registration storm, but
            // capped, because the reservation is address space the process
            // must be allowed to map.
            transactions: TransactionLayer::with_capacity(
                config.timers.clone(),
                config
                    .overload
                    .max_transactions
                    .min(RESERVED_TRANSACTIONS_MAX),
            ),
            registrar,
            acd,
            calls: HashMap::new(),
            by_sip_call_id: HashMap::new(),
            sip_call_ids: HashMap::new(),
            attempts: HashMap::new(),
            next_attempt: 1,
            purposes: HashMap::new(),
            awaiting_ack: HashMap::new(),
            feature_dialogs: HashMap::new(),
            held_responses: HashMap::new(),
            unsent_holds: Vec::new(),
            next_hold: 1,
            commands: VecDeque::new(),
            wall_base: (now, wall),
            waiting_deadlines: std::collections::BTreeSet::new(),
            callback_calls: HashMap::new(),
            reliable_deadlines: std::collections::BTreeSet::new(),
            session_deadlines: std::collections::BTreeSet::new(),
            cpu_overloaded: false,
            storage_behind: false,
            overload_rejections: 0,
            overload_warnings: WarningThrottle::new(OVERLOAD_WARNING_INTERVAL),
            trunk_registrations: Default::default(),
            trunk_destinations: HashMap::new(),
            config,
        };
        core.start_trunk_registrations(now);
        // The agents' first states are events too; they reach the driver
        // with its first drain, not with the first message.
        core.process(now);
        Ok(core)
    }

    /// Feeds a message parsed by the transport.
    pub fn handle_message(&mut self, message: sip_message::Message, source: Target, now: Instant) {
        self.transactions.handle_message(message, source, now);
        self.process(now);
    }

    /// Returns the trunks, whose outbound host names the driver resolves.
    pub fn trunks(&self) -> &[Trunk] {
        &self.config.trunks
    }

    /// Stores the servers the driver resolved for `trunk`'s outbound host,
    /// in the order to try them (RFC 3263). An empty list makes calls to
    /// numbers through the trunk fail until the next resolution.
    pub fn set_trunk_destinations(
        &mut self,
        trunk: &str,
        destinations: Vec<crate::locate::Destination>,
    ) {
        self.trunk_destinations
            .insert(trunk.to_owned(), destinations);
    }

    /// Ends the client transactions sent to `addr` over `transport` when
    /// the driver could not connect there, or the connection it opened
    /// failed. Their TU gets 503, so a forwarded call tries the next server.
    pub fn transport_failed(&mut self, transport: TransportKind, addr: SocketAddr, now: Instant) {
        self.transactions.transport_failed(transport, addr);
        self.process(now);
    }

    /// Ends the transactions waiting on a closed stream connection now,
    /// rather than at their timers.
    pub fn connection_closed(&mut self, connection: u64, now: Instant) {
        self.transactions.connection_closed(connection);
        self.registrar.connection_closed(connection);
        // A leg reached over TLS or WebSocket has no other way back, so the
        // phone behind it is gone: end its calls as that side's hang-up,
        // instead of relaying silence until a session timer or RTP timeout.
        // TCP legs stay, because the PBX opens a new connection to them.
        let mut gone = Vec::new();
        for (id, call) in &self.calls {
            for side in [Side::Caller, Side::Agent] {
                let target = call.dialog(side).map(|dialog| dialog.target);
                let bound = target.is_some_and(|target| {
                    target.connection == Some(connection)
                        && matches!(
                            target.transport,
                            crate::transaction::TransportKind::Tls
                                | crate::transaction::TransportKind::Ws
                                | crate::transaction::TransportKind::Wss
                        )
                });
                if bound {
                    gone.push((id.clone(), side));
                    break;
                }
            }
        }
        for (call_id, side) in gone {
            if let Some(span) = self.calls.get(&call_id).map(|call| call.span.clone()) {
                let _span = span.entered();
                tracing::info!(side = ?side, connection, "connection of a leg closed");
                self.hang_up(&call_id, side, now);
            }
        }
        self.process(now);
    }

    pub fn handle_timeout(&mut self, now: Instant) {
        self.transactions.handle_timeout(now);
        self.registrar.handle_timeout(now);
        self.acd.handle_timeout(now);
        self.waiting_deadlines_due(now);
        self.reliable_deadlines_due(now);
        self.session_deadlines_due(now);
        self.trunk_registrations_due(now);
        self.process(now);
    }

    pub fn poll_timeout(&self) -> Option<Instant> {
        [
            self.transactions.poll_timeout(),
            self.registrar.poll_timeout(),
            self.acd.poll_timeout(),
            self.next_waiting_deadline(),
            self.next_reliable_deadline(),
            self.next_session_deadline(),
            self.next_trunk_registration(),
        ]
        .into_iter()
        .flatten()
        .min()
    }

    pub fn poll_transmit(&mut self) -> Option<Transmit> {
        self.transactions.poll_transmit()
    }

    pub fn poll_command(&mut self) -> Option<Command> {
        self.commands.pop_front()
    }

    /// Tells the core whether the process's CPU use is above the limit the
    /// driver measures against; while it is, new INVITEs get 503.
    pub fn set_cpu_overloaded(&mut self, overloaded: bool) {
        if overloaded != self.cpu_overloaded {
            tracing::warn!(overloaded, "CPU overload state changed");
        }
        self.cpu_overloaded = overloaded;
    }

    /// Tells the core whether so many ended calls wait for their records
    /// to be stored that new calls must wait for the stores. While they
    /// do, new INVITEs get 503.
    pub fn set_storage_behind(&mut self, behind: bool) {
        if behind != self.storage_behind {
            tracing::warn!(behind, "call record storage state changed");
        }
        self.storage_behind = behind;
    }

    /// Returns the overload limits in force, which a reload may change.
    pub fn overload_limits(&self) -> &OverloadLimits {
        &self.config.overload
    }

    /// New INVITEs refused with 503 for overload since start.
    pub fn overload_rejections(&self) -> u64 {
        self.overload_rejections
    }

    /// Counts a new call rejected for overload and logs it. The first one is
    /// logged at once, later ones in one warning per
    /// [`OVERLOAD_WARNING_INTERVAL`] at most, with the count since the last.
    fn note_overload_rejection(&mut self, sip_call_id: &str, reason: &str, now: Instant) {
        self.overload_rejections += 1;
        tracing::debug!(
            call_id = sip_call_id,
            reason,
            "new call rejected: overloaded"
        );
        if let Some(rejected) = self.overload_warnings.note(now) {
            tracing::warn!(
                call_id = sip_call_id,
                reason,
                rejected,
                total = self.overload_rejections,
                "new calls rejected with 503: overloaded"
            );
        }
    }

    /// Returns why a new call would be rejected now, if it would.
    fn overload_reason(&self) -> Option<&'static str> {
        if self.cpu_overloaded {
            return Some("CPU above its limit");
        }
        if self.storage_behind {
            return Some("call records waiting to be stored");
        }
        if self.calls.len() >= self.config.overload.max_calls {
            return Some("as many calls as the open files limit holds");
        }
        (self.transactions.len() > self.config.overload.max_transactions)
            .then_some("too many SIP transactions")
    }

    /// Calls in progress.
    pub fn active_calls(&self) -> usize {
        self.calls.len()
    }

    /// Live transactions, for leak checks.
    pub fn transaction_count(&self) -> usize {
        self.transactions.len()
    }

    /// Reinstates bindings stored before a restart.
    pub fn restore_bindings(
        &mut self,
        agent: &str,
        stored: &[crate::registrar::StoredBinding],
        now: Instant,
    ) {
        let wall = self.wall(now);
        self.registrar.restore(agent, stored, now, wall);
        self.process(now);
    }

    /// Live bindings of `agent`.
    pub fn bindings(&self, agent: &str, now: Instant) -> Vec<crate::registrar::Binding> {
        self.registrar.lookup(agent, now)
    }

    fn wall(&self, at: Instant) -> SystemTime {
        let (base, wall) = self.wall_base;
        match at.checked_duration_since(base) {
            Some(elapsed) => wall + elapsed,
            None => wall - base.duration_since(at),
        }
    }

    /// Drains the layers below until nothing is left to react to: SIP
    /// events can trigger ACD actions and the reverse.
    fn process(&mut self, now: Instant) {
        loop {
            let mut progressed = false;
            while let Some(event) = self.transactions.poll_event() {
                progressed = true;
                self.handle_event(event, now);
            }
            while let Some(probe) = self.registrar.poll_probe() {
                progressed = true;
                self.send_probe(probe, now);
            }
            while let Some(event) = self.registrar.poll_event() {
                progressed = true;
                match event {
                    RegistrarEvent::Reachability {
                        agent,
                        reachable,
                        cause,
                    } => {
                        self.acd.set_reachable_because(
                            &agent,
                            reachable,
                            Some(cause.as_str()),
                            now,
                        );
                    }
                    RegistrarEvent::BindingsChanged { agent } => {
                        let bindings = self.registrar.snapshot(&agent, now, self.wall(now));
                        self.commands
                            .push_back(Command::SaveBindings { agent, bindings });
                    }
                }
            }
            progressed |= self.send_trunk_registers(now);
            while let Some(action) = self.acd.poll_action() {
                progressed = true;
                self.handle_acd_action(action, now);
            }
            let mut queue_log = Vec::new();
            let mut events = Vec::new();
            let mut moved = Vec::new();
            while let Some(event) = self.acd.poll_event() {
                tracing::debug!(?event, "queue event");
                if let acd::QueueEvent::CallEnqueued { call, queue, .. } = &event
                    && let Some(entry) = self.calls.get_mut(call)
                    && entry.queue != *queue
                {
                    // An exit key or an overflow moved the call: its CDR
                    // names the queue that answers it, and its music and
                    // announcements are that queue's.
                    entry.queue = queue.clone();
                    moved.push(call.clone());
                }
                let wall = self.wall(event.at());
                let epoch = wall
                    .duration_since(std::time::UNIX_EPOCH)
                    .unwrap_or_default()
                    .as_secs();
                queue_log.extend(acd::queue_log_lines(&event, epoch));
                events.push(StampedEvent { event, wall });
            }
            // Some events (offers, agent states) have no queue_log line but
            // are still stored, so the batch goes out whenever events do. A
            // held response goes out even without events, because a change
            // that was already in force may still wait in the writer's queue.
            if !events.is_empty() || !self.unsent_holds.is_empty() {
                self.commands.push_back(Command::QueueLog {
                    lines: queue_log,
                    events,
                    held: std::mem::take(&mut self.unsent_holds),
                });
            }
            for call in moved {
                if self
                    .calls
                    .get(&call)
                    .is_some_and(|c| c.caller.answer.is_some())
                {
                    self.play_music(&call);
                    self.schedule_announcement(&call, now);
                }
            }
            if !progressed {
                return;
            }
        }
    }

    fn handle_event(&mut self, event: Event, now: Instant) {
        match event {
            Event::Request {
                key: Some(key),
                request,
                source,
            } => self.handle_request(key, request, source, now),
            Event::Request {
                key: None, request, ..
            } => self.handle_ack(request, now),
            Event::Response { key, response } => self.handle_response(key, response, now),
            Event::Timeout { key } => {
                // No headers: handlers tell a local timeout from a real 408.
                self.handle_response(key, Response::new(408, "Request Timeout"), now)
            }
            Event::TransportError { key } => {
                let unavailable = Response::new(503, "Service Unavailable");
                self.handle_response(key, unavailable, now)
            }
            Event::AckTimeout { key } => self.handle_ack_timeout(key, now),
            Event::StrayResponse { response, source } => {
                tracing::debug!(status = response.status, %source.addr, "stray response dropped")
            }
        }
    }

    fn handle_request(
        &mut self,
        key: TransactionKey,
        request: Request,
        source: Target,
        now: Instant,
    ) {
        if let Some(rejection) = crate::policy::check_request(&request) {
            tracing::debug!(status = rejection.status, violation = %rejection.violation, "request rejected");
            let mut response = rejection.response(&request);
            add_to_tag(&mut response, &crate::dialog::random_token());
            self.transactions.send_response(&key, response, now);
            return;
        }
        // The transaction layer has checked that To parses, so the tag can
        // be read without decoding the URI again.
        let has_to_tag = request
            .headers
            .get("To")
            .and_then(sip_message::NameAddr::tag_of)
            .is_some();
        match request.method {
            Method::Register if self.contact_is_self(&request) => {
                // Every offer to such a contact would loop back to the PBX.
                self.reply(&key, &request, 403, Some("Contact Points At This PBX"), now);
            }
            Method::Register => {
                let mut response =
                    self.registrar
                        .handle_register(&request, source, now, self.wall(now));
                add_to_tag(&mut response, &crate::dialog::random_token());
                if response.status == 401 {
                    // A retransmission gets a fresh challenge, as good as
                    // the first, so the transaction need not wait for one.
                    self.transactions
                        .send_response_statelessly(&key, response, now);
                } else {
                    self.transactions.send_response(&key, response, now);
                }
            }
            Method::Cancel => self.handle_cancel(key, request, now),
            Method::Invite if !has_to_tag => self.handle_new_invite(key, request, source, now),
            Method::Options if !has_to_tag => {
                let mut response = Response::for_request(&request, 200, None);
                add_to_tag(&mut response, &crate::dialog::random_token());
                response.headers.push("Allow", ALLOW);
                response.headers.push("Accept", "application/sdp");
                response.headers.push("Supported", SUPPORTED);
                self.transactions.send_response(&key, response, now);
            }
            Method::Ack => {}
            Method::Prack if has_to_tag => self.handle_caller_prack(key, request, now),
            // A BYE only ever ends a dialog, so without a To tag it either
            // matches one through its Call-ID (an RFC 2543 peer) or gets the
            // 481 of section 15.1.2, not the 405 of other methods.
            Method::Bye => self.handle_in_dialog(key, request, now),
            // The PBX takes REFER only inside a call, from its agent.
            Method::Refer if !has_to_tag => {
                self.reply(&key, &request, 481, None, now);
            }
            _ if has_to_tag => self.handle_in_dialog(key, request, now),
            Method::Extension(_) => self.reply(&key, &request, 501, None, now),
            _ => {
                let mut response = Response::for_request(&request, 405, None);
                response.headers.push("Allow", ALLOW);
                self.transactions.send_response(&key, response, now);
            }
        }
    }

    /// Sends a response with a To tag to the request of server transaction
    /// `key`.
    fn reply(
        &mut self,
        key: &TransactionKey,
        request: &Request,
        status: u16,
        reason: Option<&str>,
        now: Instant,
    ) {
        let mut response = Response::for_request(request, status, reason);
        if status > 100 {
            add_to_tag(&mut response, &crate::dialog::random_token());
        }
        self.transactions.send_response(key, response, now);
    }

    fn handle_response(&mut self, key: TransactionKey, response: Response, now: Instant) {
        let is_final = response.status >= 200;
        let Some(purpose) = self.purposes.get(&key) else {
            return;
        };
        match purpose {
            Purpose::AgentInvite { attempt, branch } => {
                let (attempt, branch) = (*attempt, *branch);
                self.handle_agent_response(attempt, branch, response, now);
            }
            Purpose::Relay { .. } => {
                if is_final
                    && let Some(Purpose::Relay {
                        call,
                        server_key,
                        request,
                        origin,
                    }) = self.purposes.remove(&key)
                {
                    self.relay_response(&call, &server_key, &request, origin, response, now);
                }
                return;
            }
            Purpose::Qualify { agent, contact } => {
                if is_final {
                    // Timer F surfaces as a synthesized 408 without headers.
                    let answered = !response.headers.is_empty();
                    let (agent, contact) = (agent.clone(), contact.clone());
                    self.registrar.probe_result(&agent, &contact, answered);
                }
            }
            Purpose::SessionRefresh { .. } => {
                // Removed first, so that the refresh no longer counts as in
                // progress while its outcome is applied.
                if is_final
                    && let Some(Purpose::SessionRefresh { call, side, method }) =
                        self.purposes.remove(&key)
                {
                    self.session_refresh_answered(&call, side, method, &response, now);
                }
                return;
            }
            Purpose::Rebridge { call, side } => {
                if is_final {
                    let (call, side) = (call.clone(), *side);
                    self.rebridge_answered(&call, side, &response, now);
                }
            }
            Purpose::TrunkRegister { client } => {
                if is_final {
                    let client = *client;
                    self.trunk_register_answered(client, &response, now);
                }
            }
            Purpose::FireAndForget => {}
        }
        // INVITE client transactions pass 2xx retransmissions up too, so
        // the purpose stays while the transaction may still deliver them.
        if is_final && !matches!(self.purposes.get(&key), Some(Purpose::AgentInvite { .. })) {
            self.purposes.remove(&key);
        }
    }

    fn handle_acd_action(&mut self, action: acd::Action, now: Instant) {
        match action {
            acd::Action::Offer { call, agent } => self.start_offer(&call, &agent, now),
            acd::Action::OfferAll { call, agents } => {
                for agent in agents {
                    self.start_offer(&call, &agent, now);
                }
            }
            acd::Action::CancelOffer { call, agent } => {
                let call = self.call_for_acd(&call);
                self.withdraw_offer(&call, Some(&agent), now);
                self.discard_unanswered_callback(&call);
            }
            acd::Action::MaxWaitReached { call } => {
                self.withdraw_offer(&call, None, now);
                self.fail_call(
                    &call,
                    480,
                    "No Agent Available",
                    cdr::Disposition::NoAgent,
                    now,
                );
            }
            acd::Action::Overflow {
                call,
                destination: acd::Destination::Voicemail(mailbox),
                ..
            } => self.start_voicemail(&call, &mailbox, now),
            acd::Action::Overflow {
                call,
                destination: acd::Destination::Number(number),
                ..
            } => self.forward_to_number(&call, &number, now),
            acd::Action::Overflow {
                call,
                destination: acd::Destination::Callback,
                ..
            } => self.accept_callback_request(&call, now),
            acd::Action::Overflow {
                call,
                destination,
                reason,
            } => {
                // The binary refuses to start with such destinations, so this
                // arm only keeps a caller from waiting forever.
                tracing::error!(
                    call,
                    ?destination,
                    ?reason,
                    "overflow destination not supported"
                );
                self.withdraw_offer(&call, None, now);
                self.fail_call(
                    &call,
                    480,
                    "No Agent Available",
                    cdr::Disposition::NoAgent,
                    now,
                );
            }
            acd::Action::Callback {
                call,
                agent,
                number,
            } => self.start_callback(&call, &agent, &number, now),
            other => tracing::error!(?other, "ACD action not handled"),
        }
    }

    /// True when a Contact of `request` names the PBX's own SIP address.
    fn contact_is_self(&self, request: &Request) -> bool {
        let Ok(sip_message::ContactList::Addresses(contacts)) = request.headers.contacts() else {
            return false;
        };
        let own = self.config.sip_address;
        contacts.iter().any(|contact| {
            let ip = match &contact.uri.host {
                sip_message::Host::Ipv4(v4) => IpAddr::V4(*v4),
                sip_message::Host::Ipv6(v6) => IpAddr::V6(*v6),
                sip_message::Host::Domain(_) => return false,
            };
            contact.uri.port.unwrap_or(5060) == own.port()
                && (ip == own.ip() || ip.is_loopback() && own.ip().is_loopback())
        })
    }

    /// Sends an out-of-dialog OPTIONS to a registered contact.
    fn send_probe(&mut self, probe: crate::registrar::Probe, now: Instant) {
        let mut request = Request::new(Method::Options, probe.contact.clone());
        let aor = Uri::sip(
            Some(&probe.agent),
            sip_message::Host::Domain(self.config.domain.clone()),
            None,
        );
        let mut from = NameAddr::new(Uri::sip(
            Some("pbx"),
            sip_message::Host::Domain(self.config.domain.clone()),
            None,
        ));
        from.set_tag(&crate::dialog::random_token());
        request
            .headers
            .push("Via", self.new_target_via(&probe.target));
        request.headers.push("Max-Forwards", "70");
        request.headers.push("From", from.to_string());
        request.headers.push("To", NameAddr::new(aor).to_string());
        request.headers.push(
            "Call-ID",
            format!(
                "{}@{}",
                crate::dialog::random_token(),
                self.config.sip_address.ip()
            ),
        );
        request.headers.push("CSeq", "1 OPTIONS");
        request.headers.push("Accept", "application/sdp");
        let key = self.transactions.send_request(request, probe.target, now);
        self.purposes.insert(
            key,
            Purpose::Qualify {
                agent: probe.agent,
                contact: probe.contact,
            },
        );
    }

    fn new_target_via(&self, target: &Target) -> String {
        self.local.via(target)
    }

    fn timestamp(&self, at: Instant) -> time::OffsetDateTime {
        time::OffsetDateTime::from(self.wall(at))
    }

    /// Returns a new call's record id: a UUID whose leading bits are the
    /// time of `at` (version 7). The stores index calls by this id. Ids
    /// that grow with time land at the end of those indexes, while random
    /// ones would change a different page of each index per call.
    fn new_call_id(&self, at: Instant) -> String {
        let since_epoch = self
            .wall(at)
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default();
        let timestamp = uuid::Timestamp::from_unix(
            uuid::NoContext,
            since_epoch.as_secs(),
            since_epoch.subsec_nanos(),
        );
        uuid::Uuid::new_v7(timestamp).to_string()
    }

    /// Builds the CDR of `call` as if it ended at `now` with these outcomes.
    fn call_record(
        &self,
        call: &Call,
        disposition: cdr::Disposition,
        sip_status: Option<u16>,
        hangup: Option<cdr::HangupSide>,
        now: Instant,
    ) -> cdr::CallRecord {
        let waited_from = call.queued_at.unwrap_or(call.arrived);
        let answered = call.answered_at;
        // A call that left the queue for an apology or a voicemail box
        // stopped waiting then.
        let wait_seconds = answered
            .or(call.left_queue_at)
            .unwrap_or(now)
            .saturating_duration_since(waited_from)
            .as_secs_f64();
        // A caller kept for the survey talked only until the agent hung up.
        let talk_end = call.agent_ended_at.unwrap_or(now);
        let talk_seconds = answered.map_or(0.0, |at| {
            talk_end.saturating_duration_since(at).as_secs_f64()
        });
        let survey = call.survey.as_ref().map(|survey| survey.outcome);
        cdr::CallRecord {
            id: call.id.clone(),
            caller_call_id: call
                .caller
                .invite
                .headers
                .call_id()
                .unwrap_or_default()
                .to_owned(),
            agent_call_id: call
                .agent_leg
                .as_ref()
                .map(|leg| leg.dialog.call_id.clone()),
            caller: call.caller_number.clone(),
            dialed: call.dialed.clone(),
            trunk: call.trunk.clone(),
            source_extension: call.source_extension.clone(),
            direction: if call.called_agent.is_some() {
                cdr::CallDirection::Internal
            } else if call.callback.is_some() {
                cdr::CallDirection::Outbound
            } else {
                cdr::CallDirection::Inbound
            },
            // A call between extensions has no queue, unless a transfer
            // put it into one.
            queue: (!call.queue.is_empty()).then(|| call.queue.clone()),
            // A call transferred to a queue's DID carries that DID's route.
            request_type: call.route.request_type.clone(),
            // After a transfer, the agent who answered first; `transfers`
            // names the others.
            agent: call.transfer.done.first().map_or_else(
                || {
                    call.agent_leg
                        .as_ref()
                        .filter(|leg| !leg.forwarded || call.called_agent.is_some())
                        .map(|leg| leg.agent.clone())
                },
                |first| Some(first.from_agent.clone()),
            ),
            arrived_at: self.timestamp(call.arrived),
            queued_at: call.queued_at.map(|at| self.timestamp(at)),
            answered_at: answered.map(|at| self.timestamp(at)),
            ended_at: self.timestamp(now),
            wait_seconds: round_millis(wait_seconds),
            talk_seconds: round_millis(talk_seconds),
            disposition,
            sip_status,
            hangup_side: hangup,
            recording_path: call.recording_path.clone(),
            recording_seconds: None,
            interrupted: false,
            caller_answered_at: call.caller_answered_at.map(|at| self.timestamp(at)),
            voicemail_box: call.voicemail.as_ref().map(|v| v.mailbox.clone()),
            forwarded_to: call.forwarded_to.clone(),
            diverted_from: call.diverted_from.clone(),
            callback_of: call.callback.as_ref().map(|c| c.request.clone()),
            recording_events: call.recording_events.clone(),
            media_quality: None,
            rebuilt: false,
            transfers: call
                .transfer
                .done
                .iter()
                .chain(
                    call.transfer
                        .pending
                        .as_ref()
                        .map(|pending| &pending.record),
                )
                .cloned()
                .collect(),
            hold_count: call.holds.count,
            hold_seconds: round_millis(call.holds.seconds_until(talk_end)),
            survey: survey.map(|outcome| {
                // A survey still running when the record is made (a
                // checkpoint) has no outcome yet.
                outcome.map_or(cdr::SurveyStatus::Interrupted, survey::survey_status)
            }),
            csat_score: survey.flatten().and_then(acd::SurveyOutcome::score),
        }
    }

    /// Asks the driver to store what is known of `call_id` so far, so a
    /// crash before its end still leaves a CDR (written at the next start).
    pub(super) fn checkpoint(&mut self, call_id: &str, now: Instant) {
        let Some(call) = self.calls.get(call_id) else {
            return;
        };
        let disposition = if call.answered_at.is_some() {
            cdr::Disposition::Answered
        } else if self.voicemail_disposition(call_id) == Some(cdr::Disposition::Voicemail) {
            // A stop during the message leaves a voicemail CDR, so the
            // repaired message stays listed and playable.
            cdr::Disposition::Voicemail
        } else {
            cdr::Disposition::Failed
        };
        let record = self.call_record(call, disposition, None, Some(cdr::HangupSide::System), now);
        // The agent that transferred waits outside `agent_leg` while the
        // target rings, and a crash must hang it up too.
        let referrer = call
            .transfer
            .pending
            .as_ref()
            .and_then(|pending| pending.referrer.as_ref())
            .map(|leg| &leg.dialog);
        let dialogs = [Side::Caller, Side::Agent]
            .into_iter()
            .filter_map(|side| call.dialog(side))
            .chain(referrer)
            .map(crate::dialog::Dialog::to_stored)
            .collect();
        let ringing = call
            .attempts
            .values()
            .filter_map(|attempt| self.attempts.get(attempt))
            .flat_map(|attempt| attempt.branches.iter())
            .filter(|branch| !branch.finished)
            .map(|branch| {
                let cancel = offer::cancel_for(&branch.request);
                crate::dialog::StoredCancel::new(&cancel, branch.target)
            })
            .collect();
        let legs = crate::dialog::StoredLegs { dialogs, ringing };
        self.commands.push_back(Command::Checkpoint {
            record: Box::new(record),
            legs,
        });
    }

    /// Files `sip_call_id`, the Call-ID of a leg, under the product call
    /// `call_id`, replacing the call it led to before.
    pub(super) fn index_sip_call_id(&mut self, sip_call_id: String, call_id: &str) {
        self.sip_call_ids
            .entry(call_id.to_owned())
            .or_default()
            .push(sip_call_id.clone());
        self.by_sip_call_id.insert(sip_call_id, call_id.to_owned());
    }

    /// Forgets the Call-IDs that lead to `call_id`.
    pub(super) fn unindex_sip_call_ids(&mut self, call_id: &str) {
        for sip_call_id in self.sip_call_ids.remove(call_id).unwrap_or_default() {
            if self.by_sip_call_id.get(&sip_call_id).map(String::as_str) == Some(call_id) {
                self.by_sip_call_id.remove(&sip_call_id);
            }
        }
    }

    /// Ends `call`: emits its CDR and frees every index that points at it.
    fn finish(
        &mut self,
        call_id: &str,
        disposition: cdr::Disposition,
        sip_status: Option<u16>,
        hangup: Option<cdr::HangupSide>,
        now: Instant,
    ) {
        self.release_extension(call_id, now);
        self.release_extensions(call_id, now);
        self.release_transfer_target(call_id, now);
        let Some(call) = self.calls.remove(call_id) else {
            return;
        };
        let _span = call.span.clone().entered();
        self.unindex_sip_call_ids(call_id);
        if let Some(callback) = &call.callback
            && self
                .callback_calls
                .get(&callback.request)
                .map(String::as_str)
                == Some(call_id)
        {
            self.callback_calls.remove(&callback.request);
        }
        for attempt_id in call.attempts.values() {
            if let Some(attempt) = self.attempts.get_mut(attempt_id) {
                attempt.withdrawn = true;
            }
        }
        self.forget_finished_attempts(call_id);
        if let Some(deferred) = &call.deferred_relay {
            // The request waited for a refresh and now has no dialog to go to.
            self.reply(&deferred.key, &deferred.request, 481, None, now);
        }
        let record = self.call_record(&call, disposition, sip_status, hangup, now);
        tracing::info!(disposition = ?record.disposition, talk_seconds = record.talk_seconds, "call ended");
        self.commands.push_back(Command::Finish {
            call: call.id.clone(),
            record: Box::new(record),
            media_open: call.media.is_some(),
        });
    }
}

const ALLOW: &str = "INVITE, ACK, CANCEL, BYE, OPTIONS, REGISTER, INFO, UPDATE, PRACK, REFER";

/// Option tags the PBX implements, for Supported.
const SUPPORTED: &str = "100rel, timer";

fn round_millis(seconds: f64) -> f64 {
    (seconds * 1000.0).round() / 1000.0
}

/// Adds `tag` to the To header of `response` unless it has one.
fn add_to_tag(response: &mut Response, tag: &str) {
    // The To of a response is the request's, which the transaction layer
    // has checked, so neither its URI nor the whole value is parsed again.
    if let Some(text) = response.headers.get("To")
        && sip_message::NameAddr::tag_of(text).is_none()
    {
        // Appending keeps the request's To as written, and a `;` parameter
        // at the end belongs to the header with or without `<>` (RFC 3261
        // section 20.10).
        let mut tagged = String::with_capacity(text.len() + 5 + tag.len());
        tagged.push_str(text);
        tagged.push_str(";tag=");
        tagged.push_str(tag);
        response.headers.set("To", tagged);
    }
}

/// Default T1, T2, T4 of RFC 3261 with a ring timeout shorter than Timer B.
pub fn default_timers() -> TimerConfig {
    TimerConfig {
        t1: Duration::from_millis(500),
        t2: Duration::from_secs(4),
        t4: Duration::from_secs(5),
    }
}

#[cfg(test)]
mod tests;
