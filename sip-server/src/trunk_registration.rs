//! Registration of a trunk at its provider's registrar (RFC 3261 section
//! 10), as a client, sans-IO.
//!
//! A [`RegistrationClient`] builds each REGISTER and reads each final
//! response. The driver (the B2BUA [`Core`](crate::b2bua::Core)) sends the
//! requests from [`RegistrationClient::poll_request`] through the
//! transaction layer, which retransmits them, and feeds back the final
//! responses with [`RegistrationClient::handle_response`] or a transaction
//! timeout with [`RegistrationClient::handle_no_response`]. It calls
//! [`RegistrationClient::handle_timeout`] at
//! [`RegistrationClient::poll_timeout`]. Every call that takes `now` may
//! queue a request or move the timeout, so the driver polls both again.
//!
//! The client responds to 401 and 407 with digest credentials (MD5 or SHA-256,
//! `qop=auth` with counted nonces) and reuses the last challenge on
//! refreshes, so a registrar that accepts the next nonce count needs no new
//! challenge round. It refreshes before the granted expiry, raises its
//! expiry on 423, stops on responses that a retry cannot change (403, 404,
//! 6xx, rejected credentials), and retries anything else with a capped
//! exponential backoff or after the registrar's Retry-After.

#[cfg(test)]
mod tests;

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use sip_message::{ContactList, Method, NameAddr, Request, Response, Uri};

use crate::auth::client::Challenge;
use crate::transaction::TransportKind;

/// How long before the granted expiry a refresh is sent, at most; a
/// shorter registration is refreshed at half its interval instead.
pub const REFRESH_MARGIN: Duration = Duration::from_secs(60);

/// Longest Retry-After honoured; a larger value is taken as this.
const MAX_RETRY_AFTER: Duration = Duration::from_secs(24 * 3600);

/// Settings of one trunk's registration.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RegistrationConfig {
    /// The provider's registrar: an IP address, or a host name that the
    /// driver resolves as RFC 3263 describes, as for a trunk's `outbound`.
    pub registrar: crate::locate::OutboundTarget,
    /// Host part of the Request-URI and of the address of record.
    pub domain: String,
    /// User part of the address of record.
    pub user: String,
    /// User part of the Contact, which the provider puts in the
    /// Request-URI of the calls it sends, so the PBX admits them as this
    /// trunk's; see [`default_contact_user`].
    pub contact_user: String,
    /// Digest username; often the same as `user`.
    pub auth_user: String,
    pub password: String,
    /// Expiry asked for in each REGISTER; the registrar may grant less.
    pub expires: Duration,
    /// Delay before the first retry after a failure; each further failure
    /// doubles it up to `max_retry`.
    pub retry: Duration,
    pub max_retry: Duration,
}

impl RegistrationConfig {
    /// Returns true when `other` names the same binding at the same
    /// registrar, so that one may take over from the other without an
    /// unregistration in between.
    pub fn same_binding(&self, other: &RegistrationConfig) -> bool {
        self.registrar == other.registrar
            && self.domain == other.domain
            && self.user == other.user
            && self.contact_user == other.contact_user
    }

    /// Returns the transport the REGISTERs use before any look-up: the
    /// URI's `transport`, else TLS for `sips:`, else UDP. NAPTR records
    /// may choose another for the servers they name.
    pub fn transport(&self) -> TransportKind {
        self.registrar.default_transport()
    }

    /// Returns the address of record, `sip:user@domain`.
    pub fn aor(&self) -> Uri {
        let host = sip_message::Host::parse(&self.domain)
            .unwrap_or_else(|_| sip_message::Host::Domain(self.domain.clone()));
        Uri::sip(Some(&self.user), host, None)
    }
}

/// State of a registration.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RegistrationState {
    /// A REGISTER is on its way, or due now.
    Registering,
    /// The registrar accepted the binding.
    Registered,
    /// The last attempt failed; another follows at the next attempt time.
    Retrying,
    /// Stopped after a response that retrying cannot change; a reload
    /// that changes the trunk starts it again.
    Failed,
    /// A REGISTER with `Expires: 0` is on its way.
    Unregistering,
    /// The binding was removed, or never made, and nothing more is sent.
    Unregistered,
}

impl RegistrationState {
    pub fn as_str(self) -> &'static str {
        match self {
            RegistrationState::Registering => "registering",
            RegistrationState::Registered => "registered",
            RegistrationState::Retrying => "retrying",
            RegistrationState::Failed => "failed",
            RegistrationState::Unregistering => "unregistering",
            RegistrationState::Unregistered => "unregistered",
        }
    }
}

/// The challenge that credentials are computed from, and how many requests
/// used its nonce.
#[derive(Clone, Debug)]
struct ActiveChallenge {
    challenge: Challenge,
    /// `Proxy-Authorization` for a 407, `Authorization` for a 401.
    proxy: bool,
    nonce_count: u32,
    cnonce: String,
}

/// One trunk's registration at its provider.
#[derive(Debug)]
pub struct RegistrationClient {
    trunk: String,
    config: RegistrationConfig,
    contact: Uri,
    call_id: String,
    from_tag: String,
    /// CSeq of the last REGISTER sent. Responses to earlier ones are stale.
    cseq: u32,
    state: RegistrationState,
    /// Expiry asked for, raised by a 423's Min-Expires.
    requested: Duration,
    /// When the registrar's binding lapses, as of its last 2xx.
    expires_at: Option<Instant>,
    /// When the next REGISTER goes out; None while one is in flight or the
    /// client has stopped.
    next_attempt: Option<Instant>,
    in_flight: bool,
    challenge: Option<ActiveChallenge>,
    /// The request in flight carries credentials for a challenge that came
    /// with the previous response, so a new challenge means the password
    /// is wrong.
    fresh_credentials_in_flight: bool,
    /// Failures since the last success, for the backoff.
    failures: u32,
    last_status: Option<u16>,
    last_reason: Option<String>,
    outbox: VecDeque<Request>,
}

/// Status of a registration, for the API and metrics.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RegistrationStatus {
    pub trunk: String,
    /// The registrar as configured, such as `sips:sip.example.net`.
    pub registrar: String,
    pub aor: String,
    pub state: RegistrationState,
    pub expires_at: Option<Instant>,
    pub next_attempt: Option<Instant>,
    /// Status code of the last final response, 408 for a timeout.
    pub last_status: Option<u16>,
    pub last_reason: Option<String>,
}

impl RegistrationClient {
    /// Starts a registration whose first REGISTER is due at `now`.
    /// `contact` is the URI the provider sends calls to; `call_id` stays
    /// the same for every REGISTER of this client (RFC 3261 section
    /// 10.2.4).
    pub fn new(
        trunk: &str,
        config: RegistrationConfig,
        contact: Uri,
        call_id: String,
        now: Instant,
    ) -> RegistrationClient {
        RegistrationClient {
            trunk: trunk.to_owned(),
            requested: config.expires,
            config,
            contact,
            call_id,
            from_tag: crate::dialog::random_token(),
            cseq: 0,
            state: RegistrationState::Registering,
            expires_at: None,
            next_attempt: Some(now),
            in_flight: false,
            challenge: None,
            fresh_credentials_in_flight: false,
            failures: 0,
            last_status: None,
            last_reason: None,
            outbox: VecDeque::new(),
        }
    }

    pub fn trunk(&self) -> &str {
        &self.trunk
    }

    pub fn config(&self) -> &RegistrationConfig {
        &self.config
    }

    pub fn contact(&self) -> &Uri {
        &self.contact
    }

    pub fn state(&self) -> RegistrationState {
        self.state
    }

    /// Returns true once nothing is in flight and nothing more will be
    /// sent, so the driver may drop the client.
    pub fn is_finished(&self) -> bool {
        !self.in_flight
            && matches!(
                self.state,
                RegistrationState::Unregistered | RegistrationState::Failed
            )
    }

    pub fn status(&self) -> RegistrationStatus {
        RegistrationStatus {
            trunk: self.trunk.clone(),
            registrar: self.config.registrar.to_string(),
            aor: self.config.aor().to_string(),
            state: self.state,
            expires_at: self.expires_at,
            next_attempt: self.next_attempt,
            last_status: self.last_status,
            last_reason: self.last_reason.clone(),
        }
    }

    /// Next REGISTER to send in a new client transaction. It has every
    /// header but Via, which the driver adds with the branch and sent-by of
    /// the transport it uses.
    pub fn poll_request(&mut self) -> Option<Request> {
        self.outbox.pop_front()
    }

    pub fn poll_timeout(&self) -> Option<Instant> {
        self.next_attempt
    }

    /// Sends the refresh or retry that is due.
    pub fn handle_timeout(&mut self, now: Instant) {
        if self.in_flight || self.next_attempt.is_none_or(|at| at > now) {
            return;
        }
        if self.expires_at.is_some_and(|at| at <= now) {
            // The binding lapsed while retries failed.
            self.expires_at = None;
        }
        if self.state == RegistrationState::Registered {
            self.state = RegistrationState::Registering;
        }
        self.send_register(self.requested, false);
    }

    /// Removes the binding (`Expires: 0`) when one may exist, for a clean
    /// shutdown or a trunk removed from the configuration. A client that
    /// never registered just stops.
    pub fn unregister(&mut self) {
        self.next_attempt = None;
        let bound = self.expires_at.is_some()
            || self.in_flight
                && matches!(
                    self.state,
                    RegistrationState::Registering | RegistrationState::Registered
                );
        match self.state {
            RegistrationState::Unregistering
            | RegistrationState::Unregistered
            | RegistrationState::Failed => {}
            _ if bound => {
                tracing::info!(trunk = self.trunk, "unregistering from the provider");
                self.state = RegistrationState::Unregistering;
                self.send_register(Duration::ZERO, false);
            }
            _ => self.state = RegistrationState::Unregistered,
        }
    }

    /// Takes the final response to the last REGISTER sent. Provisional
    /// responses and responses to earlier REGISTERs are ignored.
    pub fn handle_response(&mut self, response: &Response, now: Instant) {
        if response.status < 200 || !self.is_current(response) {
            return;
        }
        self.in_flight = false;
        let fresh_credentials_sent = std::mem::take(&mut self.fresh_credentials_in_flight);
        self.last_status = Some(response.status);
        self.last_reason = Some(response.reason.clone());
        if self.state == RegistrationState::Unregistering {
            let challenged = matches!(response.status, 401 | 407);
            if challenged && !fresh_credentials_sent && self.respond_to_challenge(response) {
                return;
            }
            tracing::info!(
                trunk = self.trunk,
                status = response.status,
                "provider responded to the unregistration"
            );
            self.state = RegistrationState::Unregistered;
            self.expires_at = None;
            return;
        }
        match response.status {
            200..=299 => self.registered(response, now),
            401 | 407 => self.challenged(response, fresh_credentials_sent),
            423 => self.interval_too_brief(response, now),
            403 | 404 | 600..=699 => self.stop(response.status, &response.reason),
            _ => {
                let retry_after = retry_after(response);
                self.retry(retry_after, now);
            }
        }
    }

    /// The transaction of the last REGISTER timed out or its transport
    /// failed.
    pub fn handle_no_response(&mut self, now: Instant) {
        if !self.in_flight {
            return;
        }
        self.in_flight = false;
        self.fresh_credentials_in_flight = false;
        self.last_status = Some(408);
        self.last_reason = Some("No Response".to_owned());
        if self.state == RegistrationState::Unregistering {
            self.state = RegistrationState::Unregistered;
            self.expires_at = None;
            return;
        }
        self.retry(None, now);
    }

    fn is_current(&self, response: &Response) -> bool {
        self.in_flight
            && response
                .headers
                .cseq()
                .is_ok_and(|cseq| cseq.seq == self.cseq && cseq.method == Method::Register)
    }

    fn registered(&mut self, response: &Response, now: Instant) {
        let granted = self.granted_expiry(response);
        if granted.is_zero() {
            tracing::warn!(
                trunk = self.trunk,
                "registrar responded 2xx with an expiry of 0 for the contact"
            );
            self.retry(None, now);
            return;
        }
        if self.state != RegistrationState::Registered || self.failures > 0 {
            tracing::info!(
                trunk = self.trunk,
                expires_secs = granted.as_secs(),
                "registered at the provider"
            );
        }
        self.state = RegistrationState::Registered;
        self.failures = 0;
        self.expires_at = Some(now + granted);
        self.next_attempt = Some(now + refresh_delay(granted));
    }

    /// Reads the expiry of our contact in a 2xx: its `expires` parameter, else
    /// the Expires header, else what was asked for (RFC 3261 section
    /// 10.2.4).
    fn granted_expiry(&self, response: &Response) -> Duration {
        let contacts = match response.headers.contacts() {
            Ok(ContactList::Addresses(contacts)) => contacts,
            _ => Vec::new(),
        };
        let ours = contacts
            .iter()
            .find(|contact| same_contact(&contact.uri, &self.contact))
            .or(if contacts.len() == 1 {
                contacts.first()
            } else {
                None
            });
        let from_contact = ours
            .and_then(|contact| contact.params.value("expires"))
            .and_then(|value| value.trim().parse::<u64>().ok());
        let from_header = response.headers.expires().ok().flatten().map(u64::from);
        from_contact
            .or(from_header)
            .map(Duration::from_secs)
            .unwrap_or(self.requested)
    }

    fn challenged(&mut self, response: &Response, fresh_credentials_sent: bool) {
        if fresh_credentials_sent
            && !Challenge::choose(challenge_values(response)).is_some_and(|c| c.stale)
        {
            self.stop(response.status, "credentials rejected");
            return;
        }
        if !self.respond_to_challenge(response) {
            self.stop(response.status, "no usable digest challenge");
        }
    }

    /// Sends the last REGISTER again with credentials for the challenge in
    /// `response`. Returns false when `response` has no challenge this
    /// client supports.
    fn respond_to_challenge(&mut self, response: &Response) -> bool {
        let Some(challenge) = Challenge::choose(challenge_values(response)) else {
            return false;
        };
        self.challenge = Some(ActiveChallenge {
            challenge,
            proxy: response.status == 407,
            nonce_count: 0,
            cnonce: crate::dialog::random_token(),
        });
        let expires = match self.state {
            RegistrationState::Unregistering => Duration::ZERO,
            _ => self.requested,
        };
        self.send_register(expires, true);
        true
    }

    /// 423 Interval Too Brief: ask again with the registrar's Min-Expires.
    fn interval_too_brief(&mut self, response: &Response, now: Instant) {
        let minimum = response
            .headers
            .get("Min-Expires")
            .and_then(|value| value.trim().parse::<u64>().ok())
            .map(Duration::from_secs);
        match minimum {
            Some(minimum) if minimum > self.requested => {
                tracing::info!(
                    trunk = self.trunk,
                    min_expires_secs = minimum.as_secs(),
                    "registrar asks for a longer expiry"
                );
                self.requested = minimum;
                self.send_register(minimum, false);
            }
            _ => {
                tracing::warn!(
                    trunk = self.trunk,
                    "423 without a Min-Expires above the expiry asked for"
                );
                self.retry(None, now);
            }
        }
    }

    fn stop(&mut self, status: u16, reason: &str) {
        tracing::error!(
            trunk = self.trunk,
            status,
            reason,
            "registration at the provider failed; not retrying until the trunk changes"
        );
        self.state = RegistrationState::Failed;
        self.next_attempt = None;
        self.last_reason = Some(reason.to_owned());
    }

    /// Schedules the next attempt after the registrar's Retry-After, or
    /// after `retry` doubled per failure up to `max_retry`.
    fn retry(&mut self, retry_after: Option<Duration>, now: Instant) {
        self.failures += 1;
        let backoff = self
            .config
            .retry
            .saturating_mul(2u32.saturating_pow(self.failures - 1))
            .min(self.config.max_retry);
        let delay = retry_after.map_or(backoff, |after| after.min(MAX_RETRY_AFTER));
        tracing::warn!(
            trunk = self.trunk,
            status = self.last_status,
            failures = self.failures,
            retry_secs = delay.as_secs(),
            "registration at the provider failed; retrying"
        );
        self.state = RegistrationState::Retrying;
        self.next_attempt = Some(now + delay);
    }

    fn send_register(&mut self, expires: Duration, fresh_credentials: bool) {
        self.cseq += 1;
        let aor = self.config.aor();
        let mut request_uri = aor.clone();
        request_uri.user = None;
        let mut request = Request::new(Method::Register, request_uri.clone());
        let mut from = NameAddr::new(aor.clone());
        from.set_tag(&self.from_tag);
        request.headers.push("Max-Forwards", "70");
        request.headers.push("From", from.to_string());
        request.headers.push("To", NameAddr::new(aor).to_string());
        request.headers.push("Call-ID", self.call_id.clone());
        request
            .headers
            .push("CSeq", format!("{} REGISTER", self.cseq));
        request
            .headers
            .push("Contact", NameAddr::new(self.contact.clone()).to_string());
        request
            .headers
            .push("Expires", expires.as_secs().to_string());
        if let Some(active) = &mut self.challenge {
            active.nonce_count += 1;
            let authorization = active.challenge.authorization(
                &self.config.auth_user,
                &self.config.password,
                "REGISTER",
                &request_uri.to_string(),
                active.nonce_count,
                &active.cnonce,
            );
            let name = if active.proxy {
                "Proxy-Authorization"
            } else {
                "Authorization"
            };
            match authorization {
                Ok(value) => request.headers.push(name, value),
                Err(error) => {
                    tracing::warn!(trunk = self.trunk, %error, "failed to compute the digest response")
                }
            }
        }
        request.headers.push("Content-Length", "0");
        self.fresh_credentials_in_flight = fresh_credentials;
        self.in_flight = true;
        self.next_attempt = None;
        self.outbox.push_back(request);
    }
}

/// The challenge header values of a 401 (`WWW-Authenticate`) or a 407
/// (`Proxy-Authenticate`).
fn challenge_values(response: &Response) -> impl Iterator<Item = &str> {
    let header = if response.status == 407 {
        "Proxy-Authenticate"
    } else {
        "WWW-Authenticate"
    };
    response.headers.get_all(header)
}

/// Derives a Contact user for `trunk` that only a holder of its `password`
/// can predict, so a scanner cannot pass for the trunk by guessing the
/// user part of its Request-URI. It stays the same across restarts, so a
/// restart replaces the binding at the provider instead of adding one.
pub fn default_contact_user(trunk: &str, password: &str) -> String {
    use sha2::{Digest, Sha256};
    let digest = Sha256::digest(format!("pbx-trunk-contact:{trunk}:{password}").as_bytes());
    format!("t{}", hex::encode(&digest[..8]))
}

/// Time from a granted registration to its refresh.
fn refresh_delay(granted: Duration) -> Duration {
    (granted / 2).max(granted.saturating_sub(REFRESH_MARGIN))
}

/// The delta-seconds of Retry-After, ignoring a comment or parameters.
fn retry_after(response: &Response) -> Option<Duration> {
    let value = response.headers.get("Retry-After")?;
    let digits: String = value
        .trim_start()
        .chars()
        .take_while(char::is_ascii_digit)
        .collect();
    digits.parse::<u64>().ok().map(Duration::from_secs)
}

/// Contacts are the same binding when user, host and port match; a
/// registrar may add or drop parameters.
fn same_contact(a: &Uri, b: &Uri) -> bool {
    let host = |uri: &Uri| uri.host.to_string().to_ascii_lowercase();
    a.user == b.user && host(a) == host(b) && a.port.unwrap_or(5060) == b.port.unwrap_or(5060)
}
