//! Calls between agents' extensions: an agent's phone, admitted by digest
//! authentication, dials another agent's id. The PBX rings every
//! registered contact of that agent, bridges the first answer through the
//! relay and records it like a queue call, with the calling agent on the
//! left channel and the called agent on the right.
//!
//! Such a call waits in no queue and is no ACD offer. Unless
//! `ring_in_use` is set, the ACD holds both agents as on a direct call
//! from the INVITE to the end, so no queue call is offered to them
//! meanwhile, and they are available again afterwards without wrap-up.
//! An agent already on a call is busy (486) for a new one.
//!
//! This is also how an agent places the consultation call of an attended
//! transfer: `attended.rs` moves the answered colleague into the first
//! call.

use std::time::{Duration, Instant};

use sip_message::Uri;

use super::Command;
use super::Core;
use super::call::{AttemptKind, Phase, Side};

/// Maximum ring time of a called extension before the caller gets 480.
pub(super) const EXTENSION_RING_LIMIT: Duration = Duration::from_secs(45);

/// Reason a call between extensions is rejected before it rings.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub(super) enum ExtensionRefusal {
    #[error("an agent cannot call its own extension")]
    OwnExtension,
    #[error("the agent has no registered contact")]
    NotRegistered,
    #[error("the agent is ringing for or on another call")]
    Busy,
}

impl ExtensionRefusal {
    /// Status line of the INVITE's rejection.
    pub(super) fn status(&self) -> (u16, &'static str) {
        match self {
            ExtensionRefusal::OwnExtension => (403, "Cannot Call Own Extension"),
            ExtensionRefusal::NotRegistered => (480, "Not Registered"),
            ExtensionRefusal::Busy => (486, "Busy Here"),
        }
    }
}

impl Core {
    /// Returns the agent whose extension `dialed` is, when an agent's
    /// phone dials it. A DID of the configuration wins over an agent id.
    pub(super) fn extension_dialed(&self, dialed: &str) -> Option<String> {
        (!self.config.dids.contains_key(dialed) && self.registrar.is_agent(dialed))
            .then(|| dialed.to_owned())
    }

    /// Checks that `called` can take the call `call_id` from `caller`, and
    /// marks both agents in the ACD as on that call. The caller may already
    /// be on a call, such as the one it consults a colleague about, and
    /// then keeps it.
    pub(super) fn reserve_extensions(
        &mut self,
        call_id: &str,
        caller: &str,
        called: &str,
        now: Instant,
    ) -> Result<(), ExtensionRefusal> {
        if caller == called {
            return Err(ExtensionRefusal::OwnExtension);
        }
        if self.registrar.lookup(called, now).is_empty() {
            return Err(ExtensionRefusal::NotRegistered);
        }
        if self.config.ring_in_use {
            return Ok(());
        }
        if !self.acd.direct_call_started(called, call_id, now) {
            return Err(ExtensionRefusal::Busy);
        }
        self.acd.direct_call_started(caller, call_id, now);
        Ok(())
    }

    /// Frees, for the queues, both agents of the call between extensions
    /// `call_id`. An agent whose direct call is another one (a caller that
    /// was already on a call, or a colleague an attended transfer moved)
    /// keeps it.
    pub(super) fn release_extensions(&mut self, call_id: &str, now: Instant) {
        let Some(call) = self.calls.get(call_id) else {
            return;
        };
        let Some(called) = call.called_agent.clone() else {
            return;
        };
        let caller = call.source_extension.clone();
        for agent in std::iter::once(called).chain(caller) {
            self.acd.direct_call_ended(&agent, call_id, now);
        }
    }

    /// Rings every registered contact of the called agent, once the relay
    /// ports of `call_id` are bound.
    pub(super) fn ring_extension(&mut self, call_id: &str, now: Instant) {
        let Some(call) = self.calls.get_mut(call_id) else {
            return;
        };
        let Some(called) = call.called_agent.clone() else {
            return;
        };
        call.phase = Phase::Queued;
        let span = call.span.clone();
        let _span = span.enter();
        self.commands.push_back(Command::SetPayloadTypes {
            call: call_id.to_owned(),
            side: Side::Caller,
            payload_types: crate::sdp::payload_types(&call.offer),
        });
        if let Some(remote) = crate::sdp::remote_rtp(&call.offer) {
            self.commands.push_back(Command::SetRemote {
                call: call_id.to_owned(),
                side: Side::Caller,
                addr: remote,
            });
        }

        let targets = self.number_targets(&called, now);
        if targets.is_empty() {
            // The contacts expired while the relay ports were bound.
            tracing::info!(called, "called extension has no contact");
            self.extension_failed(call_id, 480, "Not Registered", now);
            return;
        }
        tracing::info!(called, contacts = targets.len(), "ringing extension");
        let to = Uri::sip(
            Some(&called),
            sip_message::Host::Domain(self.config.domain.clone()),
            None,
        );
        // The attempt's label is the agent id, as for an ACD offer, because
        // it names the answering leg's agent; the call has no other attempt.
        self.send_offer(
            call_id,
            &called,
            to,
            targets,
            AttemptKind::Extension(called.clone()),
            now,
        );
        // The calling phone plays ringback from the first contact on, and
        // the contacts' own 180s are not repeated to it.
        self.respond_caller(call_id, 180, None, None, now);
        if let Some(call) = self.calls.get_mut(call_id) {
            call.caller.ringing_sent = true;
        }
        self.set_deadline(call_id, now + EXTENSION_RING_LIMIT);
    }

    /// Ends a call between extensions that the called agent did not take:
    /// the caller gets the phone's final `status` (480 after a ring-out),
    /// and both agents are free again.
    pub(super) fn extension_failed(
        &mut self,
        call_id: &str,
        status: u16,
        reason: &str,
        now: Instant,
    ) {
        let ringing = self
            .calls
            .get(call_id)
            .is_some_and(|call| call.phase != Phase::Talking && call.called_agent.is_some());
        if !ringing {
            return;
        }
        // A challenge or redirect from the phone means nothing to the caller.
        let (status, reason) = match status {
            400..=699 if !matches!(status, 401 | 407) => (status, reason),
            _ => (480, "Temporarily Unavailable"),
        };
        self.cancel_deadline(call_id);
        self.withdraw_offer(call_id, None, now);
        self.fail_call(call_id, status, reason, cdr::Disposition::NoAgent, now);
    }

    /// Ends a call between extensions that rang for
    /// [`EXTENSION_RING_LIMIT`].
    pub(super) fn extension_deadline(&mut self, call_id: &str, now: Instant) {
        tracing::info!(call = call_id, "called extension rang out");
        self.extension_failed(call_id, 480, "No Answer", now);
    }
}
