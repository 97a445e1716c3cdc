//! A citizen's INVITE: admission (trunk or extension), routing by DID,
//! relay ports, queueing, and the caller-side outcomes before an answer.

use std::time::Instant;

use sip_message::{Request, Response};

use super::call::{Call, CallerLeg, MediaPorts, NewCall, Phase, Side};
use super::{Command, Core};
use crate::auth::{AuthError, Credentials};
use crate::dialog::random_token;
use crate::transaction::{Target, TransactionKey};

/// Who placed the call.
enum Origin {
    Trunk(String),
    Extension(String),
}

impl Core {
    pub(super) fn handle_new_invite(
        &mut self,
        key: TransactionKey,
        request: Request,
        source: Target,
        now: Instant,
    ) {
        let sip_call_id = request.headers.call_id().unwrap_or_default().to_owned();
        if self.by_sip_call_id.contains_key(&sip_call_id) {
            // Same Call-ID with a new branch: a merged request (section 8.2.2.2).
            self.reply(&key, &request, 482, None, now);
            return;
        }
        if matches!(request.headers.max_forwards(), Ok(Some(0))) {
            self.reply(&key, &request, 483, None, now);
            return;
        }
        if let Some(reason) = self.overload_reason() {
            // Refused before digest work or relay ports, so the calls in
            // progress keep what the PBX has left (RFC 3261 section 21.5.4).
            self.note_overload_rejection(&sip_call_id, reason, now);
            let mut response = Response::for_request(&request, 503, Some("Overloaded"));
            response.headers.push(
                "Retry-After",
                self.config.overload.retry_after.as_secs().to_string(),
            );
            super::add_to_tag(&mut response, &random_token());
            self.transactions.send_response(&key, response, now);
            return;
        }
        let origin = match self.admit(&key, &request, source, now) {
            Some(origin) => origin,
            None => return,
        };
        if let Some(mut too_small) = self.check_session_interval(&request) {
            tracing::info!(
                call_id = sip_call_id,
                "new call rejected: session interval too small"
            );
            super::add_to_tag(&mut too_small, &random_token());
            self.transactions.send_response(&key, too_small, now);
            return;
        }
        let trunk_name = match &origin {
            Origin::Trunk(name) => Some(name.as_str()),
            Origin::Extension(_) => None,
        };
        let dialed = self.dialed_number(&request, trunk_name);
        if let (Origin::Extension(agent), Some(feature)) =
            (&origin, super::feature::feature_for(&dialed))
        {
            let agent = agent.clone();
            self.run_feature(key, request, source, &agent, feature, now);
            return;
        }
        let (caller_number, diverted_from) = self.caller_identity(&request, &origin);
        let called_agent = match &origin {
            Origin::Extension(_) => self.extension_dialed(&dialed),
            Origin::Trunk(_) => None,
        };
        let direction = match called_agent {
            Some(_) => cdr::CallDirection::Internal,
            None => cdr::CallDirection::Inbound,
        };
        let route = match called_agent {
            // A call between extensions waits in no queue.
            Some(_) => super::DidRoute::default(),
            None => match self.route_for(&dialed, diverted_from.as_deref(), &origin) {
                Some(route) => route,
                None => {
                    tracing::info!(call_id = sip_call_id, "no route for dialed number");
                    self.reply(&key, &request, 404, Some("No Route For Number"), now);
                    self.record_refused(&request, &origin, None, direction, 404, now);
                    return;
                }
            },
        };
        // An INVITE without SDP gets the PBX's offer in the 2xx (offerless.rs).
        let offerless = request.body.is_empty();
        let offer = match crate::sdp::narrow_offer(&request.body) {
            _ if offerless => crate::sdp::local_g711_offer(self.config.media_address),
            Ok(offer) => offer,
            Err(error) => {
                tracing::info!(call_id = sip_call_id, %error, "offer rejected");
                let mut response = Response::for_request(&request, 488, Some(&error.to_string()));
                response
                    .headers
                    .push("Warning", "305 pbx \"Incompatible media format\"");
                super::add_to_tag(&mut response, &random_token());
                self.transactions.send_response(&key, response, now);
                let route = called_agent.is_none().then_some(&route);
                self.record_refused(&request, &origin, route, direction, 488, now);
                return;
            }
        };

        let id = self.new_call_id(now);
        if let (Origin::Extension(caller), Some(called)) = (&origin, &called_agent)
            && let Err(refusal) = self.reserve_extensions(&id, caller, called, now)
        {
            tracing::info!(call_id = sip_call_id, called, %refusal, "call between extensions rejected");
            let (status, reason) = refusal.status();
            self.reply(&key, &request, status, Some(reason), now);
            self.record_refused(&request, &origin, None, direction, status, now);
            self.process(now);
            return;
        }
        let span = tracing::info_span!("call", call = %id, call_id = %sip_call_id);
        let (trunk, source_extension) = match origin {
            Origin::Trunk(name) => (Some(name), None),
            Origin::Extension(agent) => (None, Some(agent)),
        };
        span.in_scope(|| {
            tracing::info!(
                queue = route.queue,
                dialed,
                trunk = trunk.as_deref(),
                "call arrived"
            );
        });
        let call = Call::new(
            NewCall {
                id: id.clone(),
                span,
                caller: CallerLeg {
                    invite_key: Some(key.clone()),
                    provisionals: super::reliable::CallerProvisionals::new(
                        super::reliable::CallerReliability::of(&request),
                    ),
                    invite: request,
                    source,
                    local_tag: random_token(),
                    dialog: None,
                    ringing_sent: false,
                    answer: None,
                    offerless,
                    answer_in_ack: false,
                },
                offer,
                caller_number,
                dialed,
                trunk,
                source_extension,
                route,
                diverted_from,
                callback: None,
                called_agent,
            },
            now,
        );
        self.index_sip_call_id(sip_call_id.clone(), &id);
        self.calls.insert(id.clone(), call);
        self.respond_caller(&id, 100, None, None, now);
        self.checkpoint(&id, now);
        self.commands.push_back(Command::OpenMedia {
            call: id,
            sip_call_id,
        });
    }

    /// The caller's number and the number it first dialed, if the call was
    /// redirected. A trunk trusted for identity gives the caller in
    /// P-Asserted-Identity (the From of a withheld number is anonymous);
    /// a trunk with a numbering plan has both turned into E.164.
    fn caller_identity(&self, request: &Request, origin: &Origin) -> (String, Option<String>) {
        let from = request
            .headers
            .from()
            .ok()
            .and_then(|from| from.uri.user_unescaped())
            .map(|user| limit_chars(&user, MAX_IDENTITY_CHARS))
            .unwrap_or_default();
        let Origin::Trunk(name) = origin else {
            return (from, None);
        };
        let Some(trunk) = self.config.trunks.iter().find(|t| t.name == *name) else {
            return (from, None);
        };
        let caller = trunk
            .trust_identity
            .then(|| super::identity::asserted_identity(request))
            .flatten()
            .unwrap_or(from);
        let diverted = super::identity::diverted_from(request);
        match &trunk.numbering {
            Some(plan) => (
                plan.to_e164(&caller),
                diverted.map(|number| plan.to_e164(&number)),
            ),
            None => (caller, diverted),
        }
    }

    /// The route of a call: its dialed number as received, then in E.164
    /// by the trunk's plan, then the number it was diverted from.
    fn route_for(
        &self,
        dialed: &str,
        diverted: Option<&str>,
        origin: &Origin,
    ) -> Option<super::DidRoute> {
        let plan = match origin {
            Origin::Trunk(name) => self
                .config
                .trunks
                .iter()
                .find(|t| t.name == *name)
                .and_then(|t| t.numbering.as_ref()),
            Origin::Extension(_) => None,
        };
        let normalized = plan.map(|plan| plan.to_e164(dialed));
        [Some(dialed), normalized.as_deref(), diverted]
            .into_iter()
            .flatten()
            .find_map(|number| self.config.dids.get(number).cloned())
    }

    /// Writes the CDR of an admitted call refused before it was queued
    /// (unknown number, unusable offer). Sources that were not admitted
    /// leave none, so scans cannot flood the call records.
    fn record_refused(
        &mut self,
        request: &Request,
        origin: &Origin,
        route: Option<&super::DidRoute>,
        direction: cdr::CallDirection,
        status: u16,
        now: Instant,
    ) {
        let (caller, diverted_from) = self.caller_identity(request, origin);
        let (trunk, source_extension) = match origin {
            Origin::Trunk(name) => (Some(name.clone()), None),
            Origin::Extension(agent) => (None, Some(agent.clone())),
        };
        let at = self.timestamp(now);
        let record = cdr::CallRecord {
            id: self.new_call_id(now),
            caller_call_id: request.headers.call_id().unwrap_or_default().to_owned(),
            agent_call_id: None,
            caller,
            dialed: limit_chars(
                &request.uri.user_unescaped().unwrap_or_default(),
                MAX_IDENTITY_CHARS,
            ),
            trunk,
            source_extension,
            direction,
            queue: route.map(|route| route.queue.clone()),
            request_type: route.and_then(|route| route.request_type.clone()),
            agent: None,
            arrived_at: at,
            queued_at: None,
            answered_at: None,
            ended_at: at,
            wait_seconds: 0.0,
            talk_seconds: 0.0,
            disposition: cdr::Disposition::Failed,
            sip_status: Some(status),
            hangup_side: Some(cdr::HangupSide::System),
            recording_path: None,
            recording_seconds: None,
            interrupted: false,
            caller_answered_at: None,
            voicemail_box: None,
            forwarded_to: None,
            diverted_from,
            callback_of: None,
            recording_events: Vec::new(),
            media_quality: None,
            rebuilt: false,
            transfers: Vec::new(),
            hold_count: 0,
            hold_seconds: 0.0,
            survey: None,
            csat_score: None,
        };
        self.commands.push_back(Command::Finish {
            call: record.id.clone(),
            record: Box::new(record),
            media_open: false,
        });
    }

    /// Trunk by source address or registration, else a trunk or an
    /// agent's extension by digest (Proxy-Authorization), else 403. Sends
    /// the rejection itself.
    fn admit(
        &mut self,
        key: &TransactionKey,
        request: &Request,
        source: Target,
        now: Instant,
    ) -> Option<Origin> {
        let from_user = request
            .headers
            .from()
            .ok()
            .and_then(|f| f.uri.user_unescaped());
        // A feature code from an agent is never a trunk call, even when the
        // phone shares an address with a trunk (a test on loopback, or a
        // site behind the carrier's NAT), so it goes to the digest check.
        let dialed = request.uri.user_unescaped().unwrap_or_default();
        let from_agent = from_user
            .as_deref()
            .is_some_and(|user| self.registrar.is_agent(user));
        // An extension call from a trunk's address counts as an agent's
        // only when it comes from where that agent's phone registered.
        // Otherwise anyone at a trunk address could tell agent ids from
        // other numbers by the 407 they get (user enumeration).
        let from_agent_phone = || {
            from_user.as_deref().is_some_and(|user| {
                self.registrar
                    .lookup(user, now)
                    .iter()
                    .any(|binding| binding.source.addr == source.addr)
            })
        };
        let agent_feature = from_agent
            && (super::feature::feature_for(&dialed).is_some()
                || (self.extension_dialed(&dialed).is_some() && from_agent_phone()));
        if !agent_feature {
            if let Some(trunk) = self
                .config
                .trunks
                .iter()
                .find(|t| t.allows(source.addr.ip()))
            {
                return Some(Origin::Trunk(trunk.name.clone()));
            }
            if let Some(trunk) = self.trunk_by_registration(request, source) {
                return Some(Origin::Trunk(trunk));
            }
        }
        let agent = from_user.filter(|user| self.registrar.is_agent(user));
        let digest_trunks = self
            .config
            .trunks
            .iter()
            .any(|trunk| trunk.inbound_credentials.is_some());
        if agent.is_none() && !digest_trunks {
            tracing::info!(source = %source.addr, "INVITE from a source that is no trunk and no agent");
            self.reply(key, request, 403, Some("Source Not Allowed"), now);
            return None;
        }
        let wall = self.wall(now);
        if let Some(left) = self.registrar.lockout_left(source.addr.ip(), now) {
            let mut response = crate::registrar::locked_out(request, left);
            super::add_to_tag(&mut response, &random_token());
            self.transactions.send_response(key, response, now);
            return None;
        }
        let verdict = match request.headers.get("Proxy-Authorization") {
            None => Err(AuthError::Missing {
                realm: self.config.domain.clone(),
            }),
            Some(header) => Credentials::parse(header).and_then(|credentials| {
                self.verify_caller(&credentials, agent.as_deref(), request, wall)
            }),
        };
        match verdict {
            Ok(origin) => Some(origin),
            Err(
                error @ (AuthError::Missing { .. }
                | AuthError::StaleNonce
                | AuthError::InvalidNonce),
            ) => {
                let stale = error == AuthError::StaleNonce;
                let mut response = Response::for_request(request, 407, None);
                super::add_to_tag(&mut response, &random_token());
                for challenge in self.registrar.authenticator().challenges(wall, stale) {
                    response.headers.push("Proxy-Authenticate", challenge);
                }
                self.transactions.send_response(key, response, now);
                None
            }
            Err(error) => {
                self.registrar.record_failure(source.addr.ip(), now);
                tracing::warn!(agent = agent.as_deref(), source = %source.addr, %error, "call rejected: bad credentials");
                self.reply(key, request, 403, Some("Bad Credentials"), now);
                None
            }
        }
    }

    /// Checks digest `credentials` as a trunk's, when their username is a
    /// trunk's inbound username, else as those of the agent `agent` that
    /// the From header names.
    fn verify_caller(
        &mut self,
        credentials: &Credentials,
        agent: Option<&str>,
        request: &Request,
        wall: std::time::SystemTime,
    ) -> Result<Origin, AuthError> {
        let trunk = self.config.trunks.iter().find(|trunk| {
            trunk
                .inbound_credentials
                .as_ref()
                .is_some_and(|inbound| inbound.username == credentials.username)
        });
        if let Some(trunk) = trunk
            && let Some(inbound) = &trunk.inbound_credentials
        {
            let (name, password) = (trunk.name.clone(), inbound.password.clone());
            self.registrar
                .verify_with_password(credentials, request, wall, &password)?;
            return Ok(Origin::Trunk(name));
        }
        match agent {
            Some(agent) if credentials.username == agent => {
                self.registrar
                    .verify_credentials(credentials, request, wall)?;
                Ok(Origin::Extension(agent.to_owned()))
            }
            _ => Err(AuthError::WrongResponse {
                username: credentials.username.clone(),
            }),
        }
    }

    /// Queues `call` once its relay ports are bound. Returns false when the
    /// call ended meanwhile, so the driver closes the session.
    pub fn media_opened(&mut self, call_id: &str, ports: MediaPorts, now: Instant) -> bool {
        let Some(call) = self.calls.get_mut(call_id) else {
            return false;
        };
        call.media = Some(ports);
        if call.callback.is_some() {
            self.callback_media_opened(call_id, now);
            self.process(now);
            return true;
        }
        if call.called_agent.is_some() {
            self.ring_extension(call_id, now);
            self.process(now);
            return true;
        }
        call.phase = Phase::Queued;
        call.queued_at = Some(now);
        self.commands.push_back(Command::SetPayloadTypes {
            call: call_id.to_owned(),
            side: Side::Caller,
            payload_types: crate::sdp::payload_types(&call.offer),
        });
        // The PBX's own offer names no remote address; the ACK's answer will.
        if let Some(remote) = crate::sdp::remote_rtp(&call.offer).filter(|_| !call.caller.offerless)
        {
            self.commands.push_back(Command::SetRemote {
                call: call_id.to_owned(),
                side: Side::Caller,
                addr: remote,
            });
        }
        let queue = call.queue.clone();
        let data = acd::CallData {
            priority: call.route.priority,
            requirements: call.route.skills.clone(),
            // Only a number a trunk can dial may become a callback request;
            // an anonymous caller's exit to "callback" ends as unanswered.
            caller: super::callback::is_dialable(&call.caller_number)
                .then(|| call.caller_number.clone()),
            request_type: call.route.request_type.clone(),
            attributes: [(
                super::callback::DIALED_ATTRIBUTE.to_owned(),
                call.dialed.clone(),
            )]
            .into(),
            ..acd::CallData::default()
        };
        let _span = call.span.clone().entered();
        if let Err(error) = self.acd.enqueue_with(call_id, &queue, data, now) {
            tracing::info!(%error, "call not queued");
            let (status, reason, disposition) = match error {
                acd::AcdError::QueueFull { .. } => (486, "Queue Full", cdr::Disposition::NoAgent),
                acd::AcdError::QueueEmpty { .. } => {
                    (480, "No Agents Logged In", cdr::Disposition::NoAgent)
                }
                _ => (500, "Queue Error", cdr::Disposition::Failed),
            };
            self.fail_call(call_id, status, reason, disposition, now);
            return true;
        }
        tracing::info!(queue, "call queued");
        let answered =
            self.queue_media(&queue).is_some() && self.answer_waiting_caller(call_id, now);
        if !answered {
            // The caller's phone plays ringback while the call waits.
            self.respond_caller(call_id, 180, None, None, now);
            if let Some(call) = self.calls.get_mut(call_id) {
                call.caller.ringing_sent = true;
            }
        }
        self.process(now);
        if answered {
            self.start_waiting_media(call_id, now);
        }
        true
    }

    pub fn media_failed(&mut self, call_id: &str, now: Instant) {
        if let Some(callback) = self.calls.get(call_id).and_then(|c| c.callback.as_ref()) {
            tracing::error!(
                call = call_id,
                "no relay ports for a callback; offer rejected"
            );
            let (request, agent) = (callback.request.clone(), callback.agent.clone());
            self.acd.offer_rejected(&request, &agent, now);
            self.discard_unanswered_callback(call_id);
            self.process(now);
            return;
        }
        // Running out of relay ports is overload as much as a full
        // transaction table is, so it counts with those rejections.
        self.overload_rejections += 1;
        self.fail_call(
            call_id,
            503,
            "Media Relay Unavailable",
            cdr::Disposition::Failed,
            now,
        );
        self.process(now);
    }

    /// Sends a response on the caller's INVITE transaction. Responses
    /// other than 100 carry our To tag and, for 1xx and 2xx, our Contact.
    pub(super) fn respond_caller(
        &mut self,
        call_id: &str,
        status: u16,
        reason: Option<&str>,
        sdp: Option<bytes::Bytes>,
        now: Instant,
    ) {
        self.respond_caller_early(call_id, status, reason, sdp, false, now);
    }

    /// Sends a response as `respond_caller` does. A provisional response
    /// goes out reliably when the caller requires 100rel, or supports it
    /// and `reliable_source` tells that the agent sent it reliably.
    pub(super) fn respond_caller_early(
        &mut self,
        call_id: &str,
        status: u16,
        reason: Option<&str>,
        sdp: Option<bytes::Bytes>,
        reliable_source: bool,
        now: Instant,
    ) {
        let Some(call) = self.calls.get(call_id) else {
            return;
        };
        let mut response = Response::for_request(&call.caller.invite, status, reason);
        if status > 100 {
            super::add_to_tag(&mut response, &call.caller.local_tag);
        }
        if status > 100 && status < 300 {
            response.headers.push(
                "Contact",
                self.local.contact(call.caller.source.transport).to_string(),
            );
            response.headers.push("Allow", super::ALLOW);
        }
        if let Some(body) = sdp {
            response.headers.push("Content-Type", "application/sdp");
            response.body = body;
        }
        if status == 503 {
            // Out of relay ports or shutting down: the trunk may try again
            // later, or another node meanwhile (RFC 3261 section 21.5.4).
            response.headers.push(
                "Retry-After",
                self.config.overload.retry_after.as_secs().to_string(),
            );
        }
        // A citizen the PBX dials back has no INVITE to answer.
        let Some(key) = call.caller.invite_key.clone() else {
            return;
        };
        if status < 200 {
            self.send_caller_provisional(call_id, &key, response, reliable_source, now);
            return;
        }
        let mut response = response;
        if (200..300).contains(&status) {
            self.start_caller_session(call_id, &mut response, now);
        }
        if let Some(response) = self.hold_caller_final(call_id, response) {
            self.transactions.send_response(&key, response, now);
        }
    }

    /// Rejects the caller's INVITE with `status` and ends the call.
    pub(super) fn fail_call(
        &mut self,
        call_id: &str,
        status: u16,
        reason: &str,
        disposition: cdr::Disposition,
        now: Instant,
    ) {
        let Some(call) = self.calls.get(call_id) else {
            return;
        };
        if matches!(call.phase, Phase::Talking | Phase::Survey) || call.leaving.is_some() {
            return;
        }
        let answered = call.caller.answer.is_some();
        if call.queued_at.is_some() {
            self.acd.abandon(call_id, now);
        }
        self.withdraw_offer(call_id, None, now);
        if answered {
            // The caller heard music: it gets an apology and a BYE, not an
            // error response.
            tracing::info!(status, reason, "dismissing the waiting caller");
            self.dismiss_waiting_caller(call_id, disposition, now);
            return;
        }
        self.respond_caller(call_id, status, Some(reason), None, now);
        self.finish(
            call_id,
            disposition,
            Some(status),
            Some(cdr::HangupSide::System),
            now,
        );
    }

    pub(super) fn handle_cancel(&mut self, key: TransactionKey, request: Request, now: Instant) {
        let invite_key = self.transactions.invite_for_cancel(&request);
        self.reply(
            &key,
            &request,
            if invite_key.is_some() { 200 } else { 481 },
            None,
            now,
        );
        let Some(invite_key) = invite_key else { return };
        let call_id = self
            .calls
            .values()
            .find(|call| {
                call.caller.invite_key.as_ref() == Some(&invite_key)
                    && !matches!(call.phase, Phase::Talking | Phase::Survey)
                    && call.caller.answer.is_none()
            })
            .map(|call| call.id.clone());
        let Some(call_id) = call_id else { return };
        if let Some(call) = self.calls.get(&call_id) {
            let _span = call.span.clone().entered();
            tracing::info!("caller cancelled while waiting");
        }
        if self
            .calls
            .get(&call_id)
            .is_some_and(|c| c.queued_at.is_some())
        {
            self.acd.abandon(&call_id, now);
        }
        self.withdraw_offer(&call_id, None, now);
        self.respond_caller(&call_id, 487, None, None, now);
        self.finish(
            &call_id,
            cdr::Disposition::Abandoned,
            Some(487),
            Some(cdr::HangupSide::Caller),
            now,
        );
    }
}

/// Longest caller number or display name passed to agents and CDRs; real
/// ones are far shorter, and an oversized one breaks agents' phones.
pub(super) const MAX_IDENTITY_CHARS: usize = 64;

/// Returns the first `max` printable characters of `text`.
pub(super) fn limit_chars(text: &str, max: usize) -> String {
    text.chars().filter(|c| !c.is_control()).take(max).collect()
}
