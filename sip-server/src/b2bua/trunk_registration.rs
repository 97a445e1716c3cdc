//! The core's side of trunk registrations: one
//! [`RegistrationClient`] per trunk with a `registration`, its REGISTERs
//! sent through the core's transaction layer, clients added, replaced and
//! removed by a reload, and calls to a registered Contact admitted as the
//! trunk's.

use std::collections::{BTreeMap, HashMap};
use std::time::{Instant, SystemTime};

use sip_message::Request;

use super::{Core, Purpose, Trunk};
use crate::locate::{Destination, Plan};
use crate::transaction::Target;
use crate::trunk_registration::{
    RegistrationClient, RegistrationConfig, RegistrationState, RegistrationStatus,
};

/// The registration clients of the core. A client whose trunk was removed
/// or replaced stays until the registrar responds to its unregistration.
#[derive(Default)]
pub(super) struct TrunkRegistrations {
    clients: HashMap<u64, RegistrationClient>,
    /// Trunk name to the id of its current client.
    current: BTreeMap<String, u64>,
    next_id: u64,
    /// Servers of each trunk's registrar named by a host name, in the
    /// order to try them, as the driver last resolved them.
    resolved: HashMap<String, Vec<Destination>>,
    /// Per client, how many times it moved on to the next server after a
    /// timeout, a 503 or a transport failure.
    failovers: HashMap<u64, usize>,
}

/// A trunk registration as the API and metrics show it, with wall-clock
/// times.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TrunkRegistrationView {
    pub trunk: String,
    /// The registrar as configured, such as `sips:sip.example.net`.
    pub registrar: String,
    pub aor: String,
    pub state: RegistrationState,
    pub expires_at: Option<SystemTime>,
    pub next_attempt_at: Option<SystemTime>,
    pub last_status: Option<u16>,
    pub last_reason: Option<String>,
}

impl Core {
    /// Starts a client for each trunk with a registration; each sends its
    /// first REGISTER at once.
    pub(super) fn start_trunk_registrations(&mut self, now: Instant) {
        let trunks = self.config.trunks.clone();
        for trunk in &trunks {
            if let Some(registration) = &trunk.registration {
                self.start_trunk_registration(&trunk.name, registration.clone(), now);
            }
        }
    }

    fn start_trunk_registration(&mut self, trunk: &str, config: RegistrationConfig, now: Instant) {
        let mut contact = self.local.contact(config.transport()).uri;
        contact.user = Some(config.contact_user.clone());
        let call_id = format!(
            "{}@{}",
            crate::dialog::random_token(),
            self.config.sip_address.ip()
        );
        let mut client = RegistrationClient::new(trunk, config, contact, call_id, now);
        client.handle_timeout(now);
        let registrations = &mut self.trunk_registrations;
        let id = registrations.next_id;
        registrations.next_id += 1;
        registrations.clients.insert(id, client);
        if let Some(old) = registrations.current.insert(trunk.to_owned(), id) {
            registrations.clients.remove(&old);
        }
    }

    /// Unregisters the current client of `trunk`, which stays until the
    /// registrar responds.
    fn retire_trunk_registration(&mut self, trunk: &str) {
        let registrations = &mut self.trunk_registrations;
        if let Some(id) = registrations.current.remove(trunk)
            && let Some(client) = registrations.clients.get_mut(&id)
        {
            client.unregister();
        }
    }

    /// Applies the registrations of a reloaded trunk list: starts the new
    /// ones, unregisters the removed ones, and restarts changed ones. A
    /// change that keeps the binding (same registrar, AOR and Contact)
    /// re-registers without unregistering first, because the removal
    /// would delete the binding the new client just made.
    pub(super) fn reconfigure_trunk_registrations(
        &mut self,
        new: &[Trunk],
        now: Instant,
        changes: &mut Vec<String>,
    ) {
        let wanted: BTreeMap<&str, &RegistrationConfig> = new
            .iter()
            .filter_map(|trunk| Some((trunk.name.as_str(), trunk.registration.as_ref()?)))
            .collect();
        let running: Vec<String> = self.trunk_registrations.current.keys().cloned().collect();
        for trunk in running {
            let Some(old) = self
                .current_registration(&trunk)
                .map(|c| c.config().clone())
            else {
                continue;
            };
            match wanted.get(trunk.as_str()) {
                None => {
                    self.retire_trunk_registration(&trunk);
                    changes.push(format!("registration of trunk {trunk} removed"));
                }
                Some(new) if **new == old => {}
                Some(new) => {
                    if !old.same_binding(new) {
                        self.retire_trunk_registration(&trunk);
                    }
                    self.start_trunk_registration(&trunk, (*new).clone(), now);
                    changes.push(format!("registration of trunk {trunk} changed"));
                }
            }
        }
        for (trunk, config) in wanted {
            if !self.trunk_registrations.current.contains_key(trunk) {
                self.start_trunk_registration(trunk, config.clone(), now);
                changes.push(format!("registration of trunk {trunk} added"));
            }
        }
    }

    fn current_registration(&self, trunk: &str) -> Option<&RegistrationClient> {
        let id = self.trunk_registrations.current.get(trunk)?;
        self.trunk_registrations.clients.get(id)
    }

    /// Records the servers the driver resolved for the registrar of
    /// `trunk`, in the order to try them.
    pub fn set_registrar_destinations(&mut self, trunk: &str, destinations: Vec<Destination>) {
        self.trunk_registrations
            .resolved
            .insert(trunk.to_owned(), destinations);
    }

    /// Returns the servers of a trunk's registrar in the order to try
    /// them: the address itself when the configuration names an IP,
    /// otherwise what the driver resolved (nothing before its first
    /// look-up completes).
    fn registrar_servers(&self, trunk: &str, config: &RegistrationConfig) -> Vec<Destination> {
        match config.registrar.plan() {
            Plan::Resolved(destination) => vec![destination],
            _ => self
                .trunk_registrations
                .resolved
                .get(trunk)
                .cloned()
                .unwrap_or_default(),
        }
    }

    /// Sends the REGISTERs the clients queued and drops the clients that
    /// are done. Returns true when anything was sent or dropped.
    pub(super) fn send_trunk_registers(&mut self, now: Instant) -> bool {
        let mut queued = Vec::new();
        for (id, client) in &mut self.trunk_registrations.clients {
            while let Some(request) = client.poll_request() {
                queued.push((
                    *id,
                    client.trunk().to_owned(),
                    client.config().clone(),
                    request,
                ));
            }
        }
        let mut outgoing = Vec::new();
        let mut unresolved = Vec::new();
        for (id, trunk, config, request) in queued {
            let servers = self.registrar_servers(&trunk, &config);
            if servers.is_empty() {
                unresolved.push((id, request));
                continue;
            }
            // After a failure the next REGISTER goes to the next server
            // (RFC 3263 section 4.3), wrapping round to the first.
            let failovers = self
                .trunk_registrations
                .failovers
                .get(&id)
                .copied()
                .unwrap_or(0);
            let server = &servers[failovers % servers.len()];
            // TODO: keep the TCP connection of the last REGISTER (RFC
            // 5626 flows); without one the driver opens a new one.
            let target = Target {
                transport: server.transport,
                addr: server.addr,
                connection: None,
            };
            outgoing.push((id, request, target));
        }
        // A host name with no server resolved yet fails like an
        // unreachable registrar, so the client retries after its backoff.
        for (id, request) in &unresolved {
            tracing::warn!(
                client = id,
                "trunk registrar has no resolved server yet; retrying later"
            );
            let response =
                sip_message::Response::for_request(request, 503, Some("Registrar Not Resolved"));
            if let Some(client) = self.trunk_registrations.clients.get_mut(id) {
                client.handle_response(&response, now);
            }
        }
        let registrations = &mut self.trunk_registrations;
        let before = registrations.clients.len();
        let current: Vec<u64> = registrations.current.values().copied().collect();
        registrations
            .clients
            .retain(|id, client| current.contains(id) || !client.is_finished());
        let dropped = registrations.clients.len() != before;
        registrations
            .failovers
            .retain(|id, _| registrations.clients.contains_key(id));
        let sent = !outgoing.is_empty() || !unresolved.is_empty();
        for (id, mut request, target) in outgoing {
            request.headers.push_front("Via", self.local.via(&target));
            let key = self.transactions.send_request(request, target, now);
            self.purposes
                .insert(key, Purpose::TrunkRegister { client: id });
        }
        sent || dropped
    }

    /// Feeds the final response (or the timeout, which comes as a 408
    /// without headers) of a REGISTER to its client.
    pub(super) fn trunk_register_answered(
        &mut self,
        client: u64,
        response: &sip_message::Response,
        now: Instant,
    ) {
        let timed_out = response.headers.is_empty();
        if timed_out || matches!(response.status, 408 | 503) {
            *self
                .trunk_registrations
                .failovers
                .entry(client)
                .or_default() += 1;
        }
        let Some(client) = self.trunk_registrations.clients.get_mut(&client) else {
            return;
        };
        if timed_out {
            client.handle_no_response(now);
        } else {
            client.handle_response(response, now);
        }
    }

    pub(super) fn trunk_registrations_due(&mut self, now: Instant) {
        for client in self.trunk_registrations.clients.values_mut() {
            client.handle_timeout(now);
        }
    }

    pub(super) fn next_trunk_registration(&self) -> Option<Instant> {
        self.trunk_registrations
            .clients
            .values()
            .filter_map(RegistrationClient::poll_timeout)
            .min()
    }

    /// Unregisters every trunk, for a clean shutdown.
    pub(super) fn unregister_trunks(&mut self, now: Instant) {
        let trunks: Vec<String> = self.trunk_registrations.current.keys().cloned().collect();
        for trunk in trunks {
            self.retire_trunk_registration(&trunk);
        }
        self.process(now);
    }

    /// Returns true while an unregistration waits for its response. The
    /// driver keeps running the core for a moment at shutdown until then.
    pub fn trunk_unregistrations_pending(&self) -> bool {
        self.trunk_registrations
            .clients
            .values()
            .any(|client| client.state() == RegistrationState::Unregistering)
    }

    /// Returns the registration of each trunk that has one, by trunk name.
    pub fn trunk_registrations(&self) -> Vec<TrunkRegistrationView> {
        self.trunk_registrations
            .current
            .values()
            .filter_map(|id| self.trunk_registrations.clients.get(id))
            .map(|client| self.registration_view(client.status()))
            .collect()
    }

    fn registration_view(&self, status: RegistrationStatus) -> TrunkRegistrationView {
        TrunkRegistrationView {
            trunk: status.trunk,
            registrar: status.registrar,
            aor: status.aor,
            state: status.state,
            expires_at: status.expires_at.map(|at| self.wall(at)),
            next_attempt_at: status.next_attempt.map(|at| self.wall(at)),
            last_status: status.last_status,
            last_reason: status.last_reason,
        }
    }

    /// Finds the trunk whose registered Contact an INVITE is sent to (its
    /// Request-URI user is the Contact user), or whose registrar's address
    /// it comes from.
    pub(super) fn trunk_by_registration(
        &self,
        request: &Request,
        source: Target,
    ) -> Option<String> {
        let user = request.uri.user_unescaped();
        self.config
            .trunks
            .iter()
            .filter_map(|trunk| Some((trunk, trunk.registration.as_ref()?)))
            .find(|(trunk, registration)| {
                user.as_deref() == Some(registration.contact_user.as_str())
                    || self
                        .registrar_servers(&trunk.name, registration)
                        .iter()
                        .any(|server| server.addr.ip() == source.addr.ip())
            })
            .map(|(trunk, _)| trunk.name.clone())
    }

    /// Returns the number a trunk's caller dialed: the Request-URI user,
    /// except for a call sent to a registered Contact. Such a call names
    /// the Contact user in its Request-URI, so the number is the To user.
    pub(super) fn dialed_number(&self, request: &Request, trunk: Option<&str>) -> String {
        let requested = request.uri.user_unescaped().unwrap_or_default();
        let contact_user = trunk
            .and_then(|name| self.config.trunks.iter().find(|t| t.name == name))
            .and_then(|trunk| trunk.registration.as_ref())
            .map(|registration| registration.contact_user.as_str());
        if contact_user != Some(requested.as_str()) {
            return requested;
        }
        request
            .headers
            .to()
            .ok()
            .and_then(|to| to.uri.user_unescaped())
            .unwrap_or(requested)
    }
}
