//! Registrar (RFC 3261 section 10.3): bindings of agents' AORs to contacts,
//! with digest authentication and expiry on a clock passed in.
//!
//! Only configured agents have AORs. A binding remembers the transport
//! address the REGISTER came from, so a call to an agent behind NAT is sent
//! to the address its requests come from (RFC 3581) rather than to the
//! private address in its Contact.
//!
//! A REGISTER may also bring a Path (RFC 3327), ask for a flow of SIP
//! Outbound (RFC 5626) or for a public GRUU (RFC 5627); see
//! [`extensions`].

mod extensions;
#[cfg(test)]
mod flow_tests;

pub use extensions::{TAG_GRUU, TAG_OUTBOUND, TAG_PATH, instance_id, public_gruu};

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, VecDeque};
use std::net::IpAddr;
use std::time::{Duration, Instant, SystemTime};

use sip_message::{ContactList, Request, Response};

use crate::auth::{AuthError, Credentials, DigestAuthenticator};
use crate::transaction::Target;

#[derive(Clone, Debug)]
pub struct RegistrarConfig {
    pub min_expires: u32,
    pub max_expires: u32,
    pub default_expires: u32,
    pub max_contacts: usize,
    /// How often each contact is probed with OPTIONS; None disables it.
    pub qualify_interval: Option<Duration>,
    /// A probe unanswered for this long marks the contact unreachable.
    pub qualify_timeout: Duration,
    /// Seconds between keep-alives that the 200 of an outbound
    /// registration asks for in its Flow-Timer header (RFC 5626).
    pub flow_timer_secs: u32,
}

/// One contact bound to an AOR.
#[derive(Clone, Debug)]
pub struct Binding {
    /// Contact as the phone sent it, for the 200 OK and as Request-URI.
    pub contact: sip_message::NameAddr,
    pub expires_at: Instant,
    pub call_id: String,
    pub cseq: u32,
    /// Where requests to this contact are sent; see [`contact_target`].
    pub source: Target,
    /// False after a qualify probe went unanswered; calls skip the contact.
    pub reachable: bool,
    /// Path values of the REGISTER (RFC 3327), top first. Requests to the
    /// contact carry them as their Route set.
    pub path: Vec<String>,
    /// The contact's `+sip.instance`, without quotes and angle brackets.
    pub instance: Option<String>,
    /// The reg-id of a flow of SIP Outbound (RFC 5626). Set only when the
    /// registrar applied Outbound, and then the binding lives only as long
    /// as its connection.
    pub reg_id: Option<u32>,
    /// Order of registration, so the newest flow of an instance wins.
    registered: u64,
    next_probe: Instant,
    probe_sent: Option<Instant>,
}

/// A binding as it is stored between restarts.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoredBinding {
    pub contact: String,
    pub expires_at: SystemTime,
    pub call_id: String,
    pub cseq: u32,
    pub transport: crate::transaction::TransportKind,
    pub address: std::net::SocketAddr,
    /// Path values, top first; empty without a Path.
    pub path: Vec<String>,
    pub instance: Option<String>,
}

/// An OPTIONS probe the registrar wants sent (RFC 3261 section 11).
#[derive(Clone, Debug)]
pub struct Probe {
    pub agent: String,
    pub contact: sip_message::Uri,
    pub target: Target,
}

/// A change the ACD needs to know about.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RegistrarEvent {
    /// The bindings of `agent` changed (registered, refreshed, removed or
    /// expired); the driver persists them so a restart keeps them.
    BindingsChanged { agent: String },
    /// `agent` went from no reachable binding to some (`true`) or back
    /// (`false`).
    Reachability {
        agent: String,
        reachable: bool,
        cause: ReachabilityCause,
    },
}

/// Cause of a change in an agent's reachability.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReachabilityCause {
    /// A REGISTER added the first contact, or removed the last one.
    Registration,
    /// The registration of the last contact expired.
    Expiry,
    /// An OPTIONS probe was answered, or went unanswered.
    Qualify,
    /// Bindings stored before a restart were reinstated.
    Restored,
    /// A configuration reload removed the agent, and its bindings with it.
    AgentRemoved,
    /// The connection of a SIP Outbound flow, or the TLS or WebSocket
    /// connection a contact registered over, closed, and nothing else
    /// reaches that contact.
    ConnectionClosed,
}

impl ReachabilityCause {
    /// Returns the name stored with the agent's event.
    pub fn as_str(self) -> &'static str {
        match self {
            ReachabilityCause::Registration => "registration",
            ReachabilityCause::Expiry => "expiry",
            ReachabilityCause::Qualify => "qualify",
            ReachabilityCause::Restored => "restored",
            ReachabilityCause::AgentRemoved => "agent_removed",
            ReachabilityCause::ConnectionClosed => "connection_closed",
        }
    }
}

/// Failed logins from one source address.
struct Failures {
    window_start: Instant,
    count: u32,
    blocked_until: Option<Instant>,
}

/// Failed logins from one address within [`FAILURE_WINDOW`] before it is
/// locked out. Phones that lost their password retry about once a minute,
/// so only guessing reaches this.
pub const MAX_FAILURES: u32 = 10;
pub const FAILURE_WINDOW: Duration = Duration::from_secs(60);
pub const LOCKOUT: Duration = Duration::from_secs(300);
/// Source addresses remembered at most before old entries are pruned.
const MAX_TRACKED_SOURCES: usize = 10_000;
/// How long a refresh that only moves a binding's expiry later waits before
/// it is reported for storage, as a write-back registrar does. Every other
/// change is reported at once, and so is a refresh of a binding whose stored
/// expiry would pass within this time. A kill -9 within this time restores
/// the binding with its previous expiry, earlier than the real one but
/// still ahead, and a stop in order writes the refreshes first
/// ([`Registrar::report_refreshes`]).
pub const REFRESH_WRITE_DELAY: Duration = Duration::from_secs(10);

/// Hash map of the registrar's per-agent tables. foldhash, randomly
/// seeded, costs a fraction of SipHash on agent ids, and each REGISTER looks
/// its agent up several times.
type AgentMap<V> = HashMap<String, V, foldhash::fast::RandomState>;

pub struct Registrar {
    /// Agents' deadlines (an expiry, a probe due or a probe's timeout),
    /// earliest first, so timers need no scan of every binding. Every agent
    /// with a deadline has an entry at or before it; entries that turn out
    /// early or stale are dropped by [`Self::tidy`] and `handle_timeout`.
    deadlines: BinaryHeap<Reverse<(Instant, String)>>,
    /// Whether the top entry of `deadlines` was found to be its agent's
    /// real next deadline, and neither it nor that agent changed since.
    top_current: bool,
    /// Probes that came due in `handle_timeout`, for `poll_probe`.
    due_probes: VecDeque<Probe>,
    failures: HashMap<IpAddr, Failures>,
    config: RegistrarConfig,
    auth: DigestAuthenticator,
    /// Every configured agent, and any other that still has bindings.
    agents: AgentMap<AgentEntry>,
    events: VecDeque<RegistrarEvent>,
    next_registration: u64,
    /// Agents marked [`AgentEntry::refreshed`], in marking order, then how
    /// many are still marked and when they are reported. An agent unmarked
    /// since stays listed and is skipped. Under a registration storm this
    /// turns one stored snapshot per REGISTER into one per agent and
    /// [`REFRESH_WRITE_DELAY`].
    refreshed: Vec<String>,
    refreshed_count: usize,
    refreshed_due: Option<Instant>,
}

/// Registrar state of one agent. One map entry contains it all, because a
/// REGISTER reads the password, the bindings and the timer bookkeeping.
/// Under a storm of 10,000 agents each separate map cost one to three cache
/// misses per REGISTER.
#[derive(Default)]
struct AgentEntry {
    /// None for an agent no longer configured that still has bindings.
    password: Option<String>,
    bindings: Vec<Binding>,
    /// The earliest entry of this agent in `deadlines`. A refresh that only
    /// moves the agent's deadline later adds no entry: the earlier one, when
    /// it reaches the top, is replaced by the real deadline. Without this,
    /// the heap grew by one stale entry per refresh until its time came.
    filed: Option<Instant>,
    /// Refreshed without another change since last reported for storage.
    refreshed: bool,
}

impl Registrar {
    /// `passwords` maps each agent id (the AOR user part) to its password.
    pub fn new(
        config: RegistrarConfig,
        auth: DigestAuthenticator,
        passwords: HashMap<String, String>,
    ) -> Registrar {
        Registrar {
            deadlines: BinaryHeap::new(),
            top_current: true,
            due_probes: VecDeque::new(),
            failures: HashMap::new(),
            config,
            auth,
            agents: passwords
                .into_iter()
                .map(|(agent, password)| {
                    let entry = AgentEntry {
                        password: Some(password),
                        ..AgentEntry::default()
                    };
                    (agent, entry)
                })
                .collect(),
            events: VecDeque::new(),
            next_registration: 0,
            refreshed: Vec::new(),
            refreshed_count: 0,
            refreshed_due: None,
        }
    }

    pub fn authenticator(&self) -> &DigestAuthenticator {
        &self.auth
    }

    /// Replaces the agents and their passwords, as a configuration reload
    /// does. Bindings of agents no longer present are dropped (with their
    /// `BindingsChanged` and `Reachability` events); other bindings stay,
    /// and a changed password applies from the next authentication.
    pub fn set_passwords(&mut self, passwords: HashMap<String, String>) {
        let gone: Vec<String> = self
            .agents
            .keys()
            .filter(|agent| !passwords.contains_key(*agent))
            .cloned()
            .collect();
        for agent in gone {
            let Some(entry) = self.agents.get_mut(&agent) else {
                continue;
            };
            if entry.bindings.is_empty() {
                self.agents.remove(&agent);
                continue;
            }
            entry.password = None;
            self.set_bindings(&agent, Vec::new(), ReachabilityCause::AgentRemoved);
        }
        for (agent, password) in passwords {
            self.agents.entry(agent).or_default().password = Some(password);
        }
    }

    pub fn password(&self, agent: &str) -> Option<&str> {
        self.agents.get(agent)?.password.as_deref()
    }

    pub fn is_agent(&self, agent: &str) -> bool {
        self.password(agent).is_some()
    }

    /// Returns the bindings of `agent`, expired ones included until they
    /// are handled.
    fn bindings_of(&self, agent: &str) -> &[Binding] {
        self.agents
            .get(agent)
            .map_or(&[][..], |entry| &entry.bindings)
    }

    fn filed(&self, agent: &str) -> Option<Instant> {
        self.agents.get(agent)?.filed
    }

    /// Live, reachable bindings of `agent`, with one flow per instance: of
    /// several SIP Outbound flows of one phone, only the newest is offered
    /// calls (RFC 5626), and the others stand by for when its
    /// connection closes.
    pub fn lookup(&self, agent: &str, now: Instant) -> Vec<Binding> {
        let list = self.bindings_of(agent).iter();
        let live: Vec<&Binding> = list.filter(|b| b.expires_at > now && b.reachable).collect();
        let newest_flow = |instance: &str| {
            live.iter()
                .filter(|b| b.reg_id.is_some() && b.instance.as_deref() == Some(instance))
                .map(|b| b.registered)
                .max()
        };
        live.iter()
            .filter(|b| match (&b.instance, b.reg_id) {
                (Some(instance), Some(_)) => newest_flow(instance) == Some(b.registered),
                _ => true,
            })
            .map(|b| (*b).clone())
            .collect()
    }

    /// Live, reachable bindings of the phone that `gruu` names: the
    /// instance in its `gr` parameter (RFC 5627), of the agent in its user
    /// part. Empty for a URI without `gr` or an instance not registered.
    pub fn lookup_gruu(&self, gruu: &sip_message::Uri, now: Instant) -> Vec<Binding> {
        let Some(instance) = gruu.params.value("gr") else {
            return Vec::new();
        };
        let agent = gruu.user_unescaped().unwrap_or_default();
        self.lookup_instance(&agent, instance, now)
    }

    /// Live, reachable bindings of `agent` registered with `+sip.instance`
    /// `instance`.
    pub fn lookup_instance(&self, agent: &str, instance: &str, now: Instant) -> Vec<Binding> {
        let mut bindings = self.lookup(agent, now);
        bindings.retain(|b| b.instance.as_deref() == Some(instance));
        bindings
    }

    /// Unexpired bindings of `agent`, reachable or not.
    fn live(&self, agent: &str, now: Instant) -> Vec<Binding> {
        let list = self.bindings_of(agent).iter();
        list.filter(|b| b.expires_at > now).cloned().collect()
    }

    /// The next contact due for a qualify probe, if any. Probes come due
    /// in [`Self::handle_timeout`], which marks them as sent.
    pub fn poll_probe(&mut self) -> Option<Probe> {
        self.due_probes.pop_front()
    }

    /// Returns the earliest deadline of `agent`'s bindings.
    fn next_deadline(&self, agent: &str) -> Option<Instant> {
        let probing = self.config.qualify_interval.is_some();
        let timeout = self.config.qualify_timeout;
        self.bindings_of(agent)
            .iter()
            .flat_map(|b| {
                let probe = match b.probe_sent {
                    Some(sent) => Some(sent + timeout),
                    None => probing.then_some(b.next_probe),
                };
                [Some(b.expires_at), probe]
            })
            .flatten()
            .min()
    }

    /// Files `agent`'s next deadline after a change to its bindings, unless
    /// an entry at or before it is filed already.
    fn schedule(&mut self, agent: &str) {
        if let Some(at) = self.next_deadline(agent)
            && self.filed(agent).is_none_or(|filed| at < filed)
        {
            self.file(at, agent);
        }
        // The top entry can turn early or stale only when its own agent
        // changed or another entry replaced it, so most changes skip the
        // look-up of the top agent's bindings.
        let top_changed = self
            .deadlines
            .peek()
            .is_some_and(|Reverse((_, top))| top == agent);
        if top_changed || !self.top_current {
            self.tidy();
        }
    }

    fn file(&mut self, at: Instant, agent: &str) {
        self.deadlines.push(Reverse((at, agent.to_owned())));
        if let Some(entry) = self.agents.get_mut(agent) {
            entry.filed = Some(at);
        }
    }

    /// Removes the top entry of `deadlines`, and clears its agent's `filed`
    /// when it was that agent's earliest entry.
    fn pop_deadline(&mut self) -> Option<(Instant, String)> {
        let Reverse((at, agent)) = self.deadlines.pop()?;
        self.top_current = false;
        if let Some(entry) = self.agents.get_mut(&agent)
            && entry.filed == Some(at)
        {
            entry.filed = None;
        }
        Some((at, agent))
    }

    /// Drops stale entries from the top of the heap, and replaces an early
    /// one with its agent's real deadline, so the top is the true earliest
    /// deadline.
    fn tidy(&mut self) {
        while let Some(Reverse((at, agent))) = self.deadlines.peek() {
            let next = self.next_deadline(agent);
            if next == Some(*at) {
                self.top_current = true;
                return;
            }
            let Some((_, agent)) = self.pop_deadline() else {
                return;
            };
            // Every deadline has an entry at or before it, and this entry
            // was the earliest of all, so `next` is later and the loop ends.
            if let Some(next) = next
                && self.filed(&agent).is_none()
            {
                self.file(next, &agent);
            }
        }
        self.top_current = true;
    }

    /// Records the outcome of a probe of `contact`: any response counts as
    /// reachable (a phone that answers 405 is alive), silence does not.
    pub fn probe_result(&mut self, agent: &str, contact: &sip_message::Uri, answered: bool) {
        let Some(list) = self.agents.get_mut(agent).map(|entry| &mut entry.bindings) else {
            return;
        };
        let was = list.iter().any(|b| b.reachable);
        for binding in list.iter_mut().filter(|b| &b.contact.uri == contact) {
            binding.probe_sent = None;
            if binding.reachable != answered {
                tracing::info!(agent, %contact, reachable = answered, "contact reachability changed");
            }
            binding.reachable = answered;
        }
        let is = list.iter().any(|b| b.reachable);
        if was != is {
            self.events.push_back(RegistrarEvent::Reachability {
                agent: agent.to_owned(),
                reachable: is,
                cause: ReachabilityCause::Qualify,
            });
        }
        self.schedule(agent);
    }

    /// Processes a REGISTER and returns the final response to send.
    pub fn handle_register(
        &mut self,
        request: &Request,
        source: Target,
        now: Instant,
        wall: SystemTime,
    ) -> Response {
        let _span = tracing::debug_span!("register", call_id = request.headers.call_id()).entered();
        match self.try_register(request, source, now, wall) {
            Ok(response) => response,
            Err(rejection) => rejection.into_response(request, &self.auth, wall),
        }
    }

    fn try_register(
        &mut self,
        request: &Request,
        source: Target,
        now: Instant,
        wall: SystemTime,
    ) -> Result<Response, Rejection> {
        let to = request
            .headers
            .to_ref()
            .map_err(|_| Rejection::Bad("Bad To header"))?;
        let agent = to.uri.user_decoded().unwrap_or_default();
        let agent: &str = &agent;
        // Unknown AORs are challenged like known ones and refused only
        // after the credentials fail, so a scan cannot list the agents.
        if let Some(left) = self.lockout_left(source.addr.ip(), now) {
            return Err(Rejection::LockedOut(left));
        }
        if let Err(rejection) = self.authenticate(request, agent, wall) {
            if let Rejection::Forbidden(reason) = &rejection {
                self.record_failure(source.addr.ip(), now);
                tracing::warn!(agent, source = %source.addr, %reason, "registration rejected");
            }
            return Err(rejection);
        }

        let call_id = request
            .headers
            .call_id()
            .ok_or(Rejection::Bad("Missing Call-ID"))?;
        let cseq = request
            .headers
            .cseq()
            .map_err(|_| Rejection::Bad("Bad CSeq"))?
            .seq;
        let header_expires = request
            .headers
            .expires()
            .map_err(|_| Rejection::Bad("Bad Expires"))?;
        let contacts = request
            .headers
            .contacts()
            .map_err(|_| Rejection::Bad("Bad Contact"))?;
        let extensions = extensions::Extensions::read(request)?;
        let mut flows_used = false;

        match contacts {
            ContactList::Star => {
                // Section 10.3 step 6: `*` is only valid alone with Expires: 0.
                if header_expires != Some(0) {
                    return Err(Rejection::Bad("Contact * requires Expires: 0"));
                }
                self.check_order(agent, call_id, cseq)?;
                self.set_bindings(agent, Vec::new(), ReachabilityCause::Registration);
            }
            ContactList::Addresses(list) => {
                // One REGISTER registers one flow (RFC 5626).
                if list.iter().filter(|c| c.params.contains("reg-id")).count() > 1 {
                    return Err(Rejection::Bad("More Than One reg-id"));
                }
                let mut bindings = self.live(agent, now);
                for contact in list {
                    let instance = instance_id(&contact);
                    let reg_id = extensions.flow_reg_id(&contact, instance.as_deref())?;
                    flows_used |= reg_id.is_some();
                    let expires = match contact.params.value("expires") {
                        Some(text) => text
                            .parse::<u64>()
                            .map_err(|_| Rejection::Bad("Bad expires"))?,
                        None => u64::from(header_expires.unwrap_or(self.config.default_expires)),
                    };
                    // A flow replaces the flow with the same instance and
                    // reg-id, whatever its Contact URI (RFC 5626).
                    let existing = bindings.iter().position(|b| match reg_id {
                        Some(_) => b.reg_id == reg_id && b.instance == instance,
                        None => b.reg_id.is_none() && b.contact.uri == contact.uri,
                    });
                    if let Some(index) = existing {
                        let binding = &bindings[index];
                        if binding.call_id == call_id && cseq <= binding.cseq {
                            return Err(Rejection::Status(500, "Out of Order REGISTER"));
                        }
                    }
                    if expires == 0 {
                        if let Some(index) = existing {
                            bindings.remove(index);
                        }
                        continue;
                    }
                    // Calls would be offered to a binding the PBX cannot
                    // send to, and its qualify probes would fail forever.
                    if !reachable_contact(&contact.uri) {
                        return Err(Rejection::Bad("Unsupported Contact"));
                    }
                    if expires < u64::from(self.config.min_expires) {
                        return Err(Rejection::TooBrief(self.config.min_expires));
                    }
                    let seconds = expires.min(u64::from(self.config.max_expires));
                    let mut stored = contact.clone();
                    stored.params.remove("expires");
                    let target = extensions::path_target(&extensions.path, source)
                        .unwrap_or_else(|| contact_target(&contact.uri, source));
                    self.next_registration += 1;
                    let binding = Binding {
                        contact: stored,
                        expires_at: now + Duration::from_secs(seconds),
                        call_id: call_id.to_owned(),
                        cseq,
                        source: target,
                        // It just reached us, so it is reachable until a
                        // probe says otherwise.
                        reachable: true,
                        path: extensions.path.clone(),
                        instance,
                        reg_id,
                        registered: self.next_registration,
                        next_probe: now + self.config.qualify_interval.unwrap_or_default(),
                        probe_sent: None,
                    };
                    match existing {
                        Some(index) => bindings[index] = binding,
                        None => bindings.push(binding),
                    }
                }
                if bindings.len() > self.config.max_contacts {
                    return Err(Rejection::Status(403, "Too Many Contacts"));
                }
                self.set_bindings_at(agent, bindings, ReachabilityCause::Registration, Some(now));
            }
        }

        let mut response = Response::for_request(request, 200, None);
        let live = self.bindings_of(agent).iter();
        for binding in live.filter(|b| b.expires_at > now) {
            let remaining = binding.expires_at.saturating_duration_since(now).as_secs();
            if extensions.gruu_supported
                && let Some(instance) = &binding.instance
            {
                let mut contact = binding.contact.clone();
                contact.params.set("expires", Some(&remaining.to_string()));
                let gruu = public_gruu(&to.uri, instance);
                contact.params.set("pub-gruu", Some(&format!("\"{gruu}\"")));
                response.headers.push("Contact", contact.to_string());
            } else {
                // The stored contact has no expires parameter, so it goes
                // last, as `set` would put it, without a copy of the contact.
                use std::fmt::Write;
                let mut contact = String::with_capacity(80);
                let _ = write!(contact, "{};expires={remaining}", binding.contact);
                response.headers.push("Contact", contact);
            }
        }
        self.add_extension_headers(&mut response, &extensions, flows_used);
        tracing::info!(
            agent,
            bindings = self.bindings_of(agent).len(),
            "registered"
        );
        Ok(response)
    }

    /// Adds the Path echo (RFC 3327) and, when a flow was registered,
    /// `Require: outbound` and the Flow-Timer (RFC 5626) to the 200 of a
    /// REGISTER.
    fn add_extension_headers(
        &self,
        response: &mut Response,
        extensions: &extensions::Extensions,
        flows_used: bool,
    ) {
        if extensions.path_supported {
            for value in &extensions.path {
                response.headers.push("Path", value.clone());
            }
        }
        if flows_used {
            response.headers.push("Require", TAG_OUTBOUND);
            response
                .headers
                .push("Flow-Timer", self.config.flow_timer_secs.to_string());
        }
        response
            .headers
            .push("Supported", [TAG_PATH, TAG_OUTBOUND, TAG_GRUU].join(", "));
    }

    fn authenticate(
        &mut self,
        request: &Request,
        agent: &str,
        wall: SystemTime,
    ) -> Result<(), Rejection> {
        let Some(header) = request.headers.get("Authorization") else {
            return Err(Rejection::Challenge { stale: false });
        };
        let credentials = match Credentials::parse(header) {
            Ok(credentials) => credentials,
            // Credentials in a scheme the registrar does not offer count as
            // none (RFC 4475 regaut01): the phone gets a Digest challenge.
            Err(AuthError::UnsupportedScheme { .. }) => {
                return Err(Rejection::Challenge { stale: false });
            }
            Err(_) => return Err(Rejection::Bad("Bad Authorization")),
        };
        if credentials.username != agent {
            let reason = format!(
                "digest username {:?} differs from the To user",
                credentials.username
            );
            return Err(Rejection::Forbidden(reason));
        }
        match self.verify_credentials(&credentials, request, wall) {
            Ok(_) => Ok(()),
            Err(AuthError::StaleNonce) => Err(Rejection::Challenge { stale: true }),
            Err(AuthError::InvalidNonce | AuthError::Missing { .. }) => {
                Err(Rejection::Challenge { stale: false })
            }
            Err(AuthError::UriMismatch { .. }) => Err(Rejection::Bad("Digest URI Mismatch")),
            Err(error) => Err(Rejection::Forbidden(error.to_string())),
        }
    }

    /// Checks digest credentials for `request` against the agents'
    /// passwords; returns the authenticated agent id.
    pub fn verify_credentials(
        &mut self,
        credentials: &Credentials,
        request: &Request,
        wall: SystemTime,
    ) -> Result<String, AuthError> {
        let agents = &self.agents;
        self.auth
            .verify(credentials, request, wall, |user| {
                agents.get(user)?.password.as_deref()
            })
            .map(str::to_owned)
    }

    /// Checks `credentials` against `password` rather than an agent's, for
    /// a trunk that authenticates its calls, with the nonces and replay
    /// checks of the agents' logins.
    pub fn verify_with_password(
        &mut self,
        credentials: &Credentials,
        request: &Request,
        wall: SystemTime,
        password: &str,
    ) -> Result<(), AuthError> {
        self.auth
            .verify(credentials, request, wall, |_| Some(password))
            .map(|_| ())
    }

    /// The time left of the lockout of `source`, if it is locked out.
    pub fn lockout_left(&self, source: IpAddr, now: Instant) -> Option<Duration> {
        self.failures
            .get(&source)
            .and_then(|f| f.blocked_until)
            .filter(|until| now < *until)
            .map(|until| until - now)
    }

    /// True while `source` is locked out after repeated failed logins.
    pub fn is_blocked(&self, source: IpAddr, now: Instant) -> bool {
        self.failures
            .get(&source)
            .and_then(|f| f.blocked_until)
            .is_some_and(|until| now < until)
    }

    /// Counts a failed login from `source`; [`MAX_FAILURES`] within
    /// [`FAILURE_WINDOW`] lock it out for [`LOCKOUT`].
    pub fn record_failure(&mut self, source: IpAddr, now: Instant) {
        if self.failures.len() > MAX_TRACKED_SOURCES {
            self.failures.retain(|_, f| {
                f.blocked_until.is_some_and(|until| now < until)
                    || now < f.window_start + FAILURE_WINDOW
            });
        }
        let entry = self.failures.entry(source).or_insert(Failures {
            window_start: now,
            count: 0,
            blocked_until: None,
        });
        if now >= entry.window_start + FAILURE_WINDOW {
            entry.window_start = now;
            entry.count = 0;
        }
        entry.count += 1;
        if entry.count >= MAX_FAILURES {
            entry.blocked_until = Some(now + LOCKOUT);
            entry.count = 0;
            tracing::warn!(%source, lockout_secs = LOCKOUT.as_secs(), "too many failed logins; source locked out");
        }
    }

    fn check_order(&self, agent: &str, call_id: &str, cseq: u32) -> Result<(), Rejection> {
        let stale = self
            .bindings_of(agent)
            .iter()
            .any(|b| b.call_id == call_id && cseq <= b.cseq);
        if stale {
            Err(Rejection::Status(500, "Out of Order REGISTER"))
        } else {
            Ok(())
        }
    }

    /// Returns the bindings of `agent` for storage, with wall-clock expiry computed
    /// from `now`/`wall`, the same moment on both clocks. Flows of SIP
    /// Outbound are left out, because a restart closes their connections
    /// and a flow that is gone must not be used (RFC 5626).
    pub fn snapshot(&self, agent: &str, now: Instant, wall: SystemTime) -> Vec<StoredBinding> {
        // Runs for every change that is stored, so it copies only the stored
        // fields instead of whole bindings.
        let list = self.bindings_of(agent).iter();
        list.filter(|binding| binding.expires_at > now && binding.reg_id.is_none())
            .map(|binding| StoredBinding {
                contact: binding.contact.to_string(),
                expires_at: wall + binding.expires_at.saturating_duration_since(now),
                call_id: binding.call_id.clone(),
                cseq: binding.cseq,
                transport: binding.source.transport,
                address: binding.source.addr,
                path: binding.path.clone(),
                instance: binding.instance.clone(),
            })
            .collect()
    }

    /// Reinstates stored bindings at startup. Expired entries, unknown
    /// agents and contacts that no longer parse are skipped. A restored
    /// stream binding has lost its connection, so requests to it open a new
    /// one.
    pub fn restore(
        &mut self,
        agent: &str,
        stored: &[StoredBinding],
        now: Instant,
        wall: SystemTime,
    ) {
        if !self.is_agent(agent) {
            return;
        }
        let mut bindings = Vec::new();
        for entry in stored {
            let Ok(remaining) = entry.expires_at.duration_since(wall) else {
                continue;
            };
            let Ok(contact) = sip_message::NameAddr::parse(&entry.contact) else {
                continue;
            };
            bindings.push(Binding {
                contact,
                expires_at: now + remaining,
                call_id: entry.call_id.clone(),
                cseq: entry.cseq,
                source: Target {
                    transport: entry.transport,
                    addr: entry.address,
                    connection: None,
                },
                reachable: true,
                path: entry.path.clone(),
                instance: entry.instance.clone(),
                reg_id: None,
                registered: 0,
                next_probe: now,
                probe_sent: None,
            });
        }
        bindings.truncate(self.config.max_contacts);
        self.set_bindings(agent, bindings, ReachabilityCause::Restored);
    }

    fn set_bindings(&mut self, agent: &str, bindings: Vec<Binding>, cause: ReachabilityCause) {
        self.set_bindings_at(agent, bindings, cause, None);
    }

    /// Replaces `agent`'s bindings. With `refresh_at`, a change that only
    /// moves expiries later (and renews Call-ID and CSeq) is reported for
    /// storage [`REFRESH_WRITE_DELAY`] after that time instead of at once.
    fn set_bindings_at(
        &mut self,
        agent: &str,
        bindings: Vec<Binding>,
        cause: ReachabilityCause,
        refresh_at: Option<Instant>,
    ) {
        let entry = match self.agents.get_mut(agent) {
            Some(entry) => entry,
            None => self.agents.entry(agent.to_owned()).or_default(),
        };
        let old = &entry.bindings;
        let refresh =
            refresh_at.filter(|&now| !old.is_empty() && only_refreshed(old, &bindings, now));
        let was = old.iter().any(|b| b.reachable);
        let is = bindings.iter().any(|b| b.reachable);
        entry.bindings = bindings;
        let marked = std::mem::replace(&mut entry.refreshed, refresh.is_some());
        let forget = entry.password.is_none() && entry.bindings.is_empty();
        match (refresh, marked) {
            (Some(now), false) => {
                self.refreshed.push(agent.to_owned());
                self.refreshed_count += 1;
                self.refreshed_due.get_or_insert(now + REFRESH_WRITE_DELAY);
            }
            (Some(_), true) => {}
            (None, marked) => {
                // The snapshot taken for this event includes any refresh
                // still waiting.
                if marked {
                    self.refreshed_count -= 1;
                    if self.refreshed_count == 0 {
                        self.refreshed.clear();
                        self.refreshed_due = None;
                    }
                }
                self.events.push_back(RegistrarEvent::BindingsChanged {
                    agent: agent.to_owned(),
                });
            }
        }
        if forget {
            self.agents.remove(agent);
        }
        if was != is {
            self.events.push_back(RegistrarEvent::Reachability {
                agent: agent.to_owned(),
                reachable: is,
                cause,
            });
        }
        self.schedule(agent);
    }

    /// Removes the bindings reached only through stream connection
    /// `connection`, which just closed. Flows of SIP Outbound go whatever
    /// their transport (RFC 5626). So do contacts registered
    /// over TLS or WebSocket, because the PBX opens no TLS connections yet
    /// and a browser accepts none. Other TCP contacts stay, because the
    /// transport can connect to them again.
    pub fn connection_closed(&mut self, connection: u64) {
        let flow_only = |binding: &Binding| {
            binding.source.connection == Some(connection)
                && (binding.reg_id.is_some()
                    || !matches!(
                        binding.source.transport,
                        crate::transaction::TransportKind::Udp
                            | crate::transaction::TransportKind::Tcp
                    ))
        };
        let affected: Vec<String> = self
            .agents
            .iter()
            .filter(|(_, entry)| entry.bindings.iter().any(flow_only))
            .map(|(agent, _)| agent.clone())
            .collect();
        for agent in affected {
            let list = self.bindings_of(&agent);
            let remaining = list.iter().filter(|b| !flow_only(b)).cloned().collect();
            tracing::info!(agent, connection, "binding removed with its connection");
            self.set_bindings(&agent, remaining, ReachabilityCause::ConnectionClosed);
        }
        self.tidy();
    }

    /// Expires bindings, times out unanswered probes and queues the probes
    /// that came due, visiting only agents with a deadline at or before
    /// `now`.
    pub fn handle_timeout(&mut self, now: Instant) {
        if self.refreshed_due.is_some_and(|due| due <= now) {
            self.report_refreshes();
        }
        let mut due: Vec<String> = Vec::new();
        while self
            .deadlines
            .peek()
            .is_some_and(|Reverse((at, _))| *at <= now)
        {
            let Some((_, agent)) = self.pop_deadline() else {
                break;
            };
            if !due.contains(&agent) {
                due.push(agent);
            }
        }
        let timeout = self.config.qualify_timeout;
        for agent in due {
            let list = self.bindings_of(&agent);
            if list.iter().any(|b| b.expires_at <= now) {
                let live = list
                    .iter()
                    .filter(|b| b.expires_at > now)
                    .cloned()
                    .collect();
                tracing::info!(agent, "binding expired");
                self.set_bindings(&agent, live, ReachabilityCause::Expiry);
            }
            let silent: Vec<sip_message::Uri> = self
                .bindings_of(&agent)
                .iter()
                .filter(|b| b.probe_sent.is_some_and(|sent| sent + timeout <= now))
                .map(|b| b.contact.uri.clone())
                .collect();
            for contact in silent {
                self.probe_result(&agent, &contact, false);
            }
            self.queue_due_probes(&agent, now);
            self.schedule(&agent);
        }
        self.tidy();
    }

    /// Marks `agent`'s contacts whose probe is due as probed and queues
    /// their probes for [`Self::poll_probe`].
    fn queue_due_probes(&mut self, agent: &str, now: Instant) {
        let Some(interval) = self.config.qualify_interval else {
            return;
        };
        let Some(list) = self.agents.get_mut(agent).map(|entry| &mut entry.bindings) else {
            return;
        };
        for binding in list.iter_mut() {
            if binding.probe_sent.is_none() && binding.next_probe <= now && binding.expires_at > now
            {
                binding.probe_sent = Some(now);
                binding.next_probe = now + interval;
                self.due_probes.push_back(Probe {
                    agent: agent.to_owned(),
                    contact: binding.contact.uri.clone(),
                    target: binding.source,
                });
            }
        }
    }

    pub fn poll_timeout(&self) -> Option<Instant> {
        let binding = self.deadlines.peek().map(|Reverse((at, _))| *at);
        match (binding, self.refreshed_due) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// Reports every refresh still waiting as a `BindingsChanged` event,
    /// for a stop in order or for [`Self::handle_timeout`].
    pub fn report_refreshes(&mut self) {
        self.refreshed_due = None;
        self.refreshed_count = 0;
        for agent in std::mem::take(&mut self.refreshed) {
            if let Some(entry) = self.agents.get_mut(&agent)
                && std::mem::take(&mut entry.refreshed)
            {
                self.events
                    .push_back(RegistrarEvent::BindingsChanged { agent });
            }
        }
    }

    pub fn poll_event(&mut self) -> Option<RegistrarEvent> {
        self.events.pop_front()
    }
}

/// True when `new` differs from `old` only in what a refresh renews: later
/// expiries, Call-ID and CSeq. Those wait for storage, because a binding
/// restored with its previous expiry or CSeq is still correct, only
/// shorter-lived. An expiry moved earlier would not be, so it counts as a
/// change. So does a refresh at `now` of a binding whose old expiry comes
/// within [`REFRESH_WRITE_DELAY`]: a restart in that time would find the
/// stored expiry past and drop the binding.
fn only_refreshed(old: &[Binding], new: &[Binding], now: Instant) -> bool {
    old.len() == new.len()
        && old.iter().zip(new).all(|(old, new)| {
            new.expires_at >= old.expires_at
                && old.expires_at > now + REFRESH_WRITE_DELAY
                && new.contact == old.contact
                && new.source.transport == old.source.transport
                && new.source.addr == old.source.addr
                && new.path == old.path
                && new.instance == old.instance
                && new.reg_id == old.reg_id
        })
}

/// Builds the 403 for a locked-out source, with Retry-After in whole
/// seconds (rounded up) so that a phone stops trying until the end.
pub fn locked_out(request: &Request, left: Duration) -> Response {
    let mut response = Response::for_request(request, 403, Some("Too Many Failed Attempts"));
    let seconds = left.as_secs() + u64::from(left.subsec_nanos() > 0);
    response.headers.push("Retry-After", seconds.to_string());
    response
}

enum Rejection {
    Bad(&'static str),
    Status(u16, &'static str),
    /// 403 for credentials that fail, with the reason for the log only: a
    /// scanner must not learn which agents exist.
    Forbidden(String),
    /// The source is locked out for this long yet.
    LockedOut(Duration),
    TooBrief(u32),
    /// 421 with this option tag in Require.
    ExtensionRequired(&'static str),
    Challenge {
        stale: bool,
    },
}

impl Rejection {
    fn into_response(
        self,
        request: &Request,
        auth: &DigestAuthenticator,
        wall: SystemTime,
    ) -> Response {
        match self {
            Rejection::Bad(reason) => Response::for_request(request, 400, Some(reason)),
            Rejection::Status(status, reason) => {
                Response::for_request(request, status, Some(reason))
            }
            Rejection::Forbidden(_) => Response::for_request(request, 403, Some("Forbidden")),
            Rejection::LockedOut(left) => locked_out(request, left),
            Rejection::ExtensionRequired(tag) => {
                let mut response = Response::for_request(request, 421, None);
                response.headers.push("Require", tag);
                response
            }
            Rejection::TooBrief(min) => {
                let mut response = Response::for_request(request, 423, None);
                response.headers.push("Min-Expires", min.to_string());
                response
            }
            Rejection::Challenge { stale } => {
                let mut response = Response::for_request(request, 401, None);
                for challenge in auth.challenges(wall, stale) {
                    response.headers.push("WWW-Authenticate", challenge);
                }
                response
            }
        }
    }
}

/// Where to send requests for a contact registered from `source`.
///
/// Over a stream transport, the connection the REGISTER came on (the phone
/// may not accept connections). Over UDP, the Contact's own address when it
/// is an IP literal that the PBX can reach; but when the Contact carries a
/// private or link-local address and the REGISTER came from elsewhere, the
/// phone is behind NAT and only its public source address (the Via's
/// received/rport, RFC 3581) reaches it. Domain names in Contacts are not
/// resolved yet, so those also fall back to the source.
pub fn contact_target(contact: &sip_message::Uri, source: Target) -> Target {
    if source.transport.is_reliable() {
        return source;
    }
    let ip: std::net::IpAddr = match &contact.host {
        sip_message::Host::Ipv4(v4) => (*v4).into(),
        sip_message::Host::Ipv6(v6) => (*v6).into(),
        sip_message::Host::Domain(_) => return source,
    };
    let addr = std::net::SocketAddr::new(ip, contact.port.unwrap_or(5060));
    if addr == source.addr || (ip != source.addr.ip() && is_private(ip)) {
        return source;
    }
    Target {
        addr,
        connection: None,
        ..source
    }
}

/// Addresses that cannot be reached from outside their own network.
fn is_private(ip: std::net::IpAddr) -> bool {
    match ip {
        std::net::IpAddr::V4(v4) => {
            let [a, b, ..] = v4.octets();
            v4.is_private() || v4.is_link_local() || (a == 100 && (64..128).contains(&b))
        }
        std::net::IpAddr::V6(v6) => {
            let first = v6.segments()[0];
            (first & 0xfe00) == 0xfc00 || (first & 0xffc0) == 0xfe80
        }
    }
}

/// Returns whether the PBX can send requests to a contact: a sip or sips URI with a
/// port other than 0 and, when it names one, a transport the PBX speaks.
fn reachable_contact(uri: &sip_message::Uri) -> bool {
    let scheme = matches!(
        uri.scheme,
        sip_message::Scheme::Sip | sip_message::Scheme::Sips
    );
    let transport = uri
        .params
        .value("transport")
        .is_none_or(|token| crate::transaction::TransportKind::from_token(token).is_some());
    scheme && uri.port != Some(0) && transport
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::transaction::TransportKind;

    fn udp(addr: &str) -> Target {
        Target {
            transport: TransportKind::Udp,
            addr: addr.parse().unwrap(),
            connection: None,
        }
    }

    fn target_of(contact: &str, source: Target) -> std::net::SocketAddr {
        contact_target(&contact.parse().unwrap(), source).addr
    }

    #[test]
    fn public_contact_is_used_as_is() {
        let source = udp("198.51.100.7:5060");
        assert_eq!(
            target_of("sip:1001@198.51.100.8:5070", source),
            "198.51.100.8:5070".parse().unwrap()
        );
        assert_eq!(
            target_of("sip:1001@127.0.0.1:16011", udp("127.0.0.1:16010")),
            "127.0.0.1:16011".parse().unwrap()
        );
    }

    #[test]
    fn private_contact_behind_nat_uses_source() {
        let source = udp("203.0.113.20:40123");
        assert_eq!(target_of("sip:1001@192.168.1.20:5060", source), source.addr);
        assert_eq!(target_of("sip:1001@100.64.3.3", source), source.addr);
        assert_eq!(target_of("sip:1001@[fd00::5]:5060", source), source.addr);
    }

    #[test]
    fn private_contact_on_same_lan_is_used() {
        let source = udp("192.168.1.20:5062");
        assert_eq!(
            target_of("sip:1001@192.168.1.20:5060", source),
            "192.168.1.20:5060".parse().unwrap()
        );
    }

    #[test]
    fn domain_contact_and_tcp_use_source() {
        let source = udp("198.51.100.7:5060");
        assert_eq!(target_of("sip:1001@phone.example.com", source), source.addr);
        let tcp = Target {
            transport: TransportKind::Tcp,
            addr: "198.51.100.7:40000".parse().unwrap(),
            connection: Some(3),
        };
        assert_eq!(
            contact_target(&"sip:1001@198.51.100.7:5060".parse().unwrap(), tcp),
            tcp
        );
    }
}
