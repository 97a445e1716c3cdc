//! Calls a queue sends to a number: an agent's extension rings that
//! agent's phones, any other number goes out through the first trunk with
//! an outbound address. The ACD no longer tracks such a call; the B2BUA
//! bridges it like an agent's answer, or ends it without an answer.

use std::time::{Duration, Instant};

use super::Core;
use super::call::{AttemptKind, Phase};
use crate::locate::Plan;
use crate::transaction::Target;

/// Maximum ring time of a forwarded call before the caller hears the
/// apology.
pub(super) const FORWARD_RING_LIMIT: Duration = Duration::from_secs(45);

impl Core {
    /// Dials `number` for `call_id`, which left its queue.
    pub(super) fn forward_to_number(&mut self, call_id: &str, number: &str, now: Instant) {
        self.withdraw_offer(call_id, None, now);
        self.cancel_deadline(call_id);
        let Some(call) = self.calls.get_mut(call_id) else {
            return;
        };
        let span = call.span.clone();
        let _span = span.enter();
        call.left_queue_at = Some(now);
        call.forwarded_to = Some(number.to_owned());

        if !self.config.ring_in_use
            && self.registrar.is_agent(number)
            && !self.acd.direct_call_started(number, call_id, now)
        {
            tracing::info!(number, "forward target is an agent on another call");
            self.fail_call(call_id, 486, "Busy Here", cdr::Disposition::NoAgent, now);
            return;
        }
        let label = format!("number:{number}");
        let mut targets = self.number_targets(number, now);
        if targets.is_empty() {
            tracing::warn!(
                number,
                "nowhere to forward the call: no contact, or no resolved server of an outbound trunk"
            );
            self.forward_failed(call_id, now);
            return;
        }
        // An agent's phones ring together; a trunk's servers are tried one
        // after the other (RFC 3263 section 4.3).
        if !self.registrar.is_agent(number)
            && let Some(call) = self.calls.get_mut(call_id)
        {
            call.forward_fallbacks = targets.drain(1..).collect();
        }

        tracing::info!(number, "forwarding the call");
        let to = targets[0].uri.clone();
        self.send_offer(
            call_id,
            &label,
            to,
            targets,
            AttemptKind::Forward(number.to_owned()),
            now,
        );
        self.set_deadline(call_id, now + FORWARD_RING_LIMIT);
    }

    /// Where `number` is dialed: an agent's extension rings its phones,
    /// any other number goes to the servers of the first trunk with an
    /// outbound target, in the order to try them. Empty when neither
    /// exists, or when the trunk's host name has no resolved server.
    pub(super) fn number_targets(
        &self,
        number: &str,
        now: Instant,
    ) -> Vec<super::offer::OfferTarget> {
        if self.registrar.is_agent(number) {
            return super::offer::contact_targets(&self.registrar.lookup(number, now));
        }
        let Some(trunk) = self
            .config
            .trunks
            .iter()
            .find(|trunk| trunk.outbound.is_some())
        else {
            return Vec::new();
        };
        let Some(outbound) = &trunk.outbound else {
            return Vec::new();
        };
        let uri = outbound.request_uri(number);
        let destinations = match outbound.plan() {
            Plan::Resolved(destination) => vec![destination],
            _ => self
                .trunk_destinations
                .get(&trunk.name)
                .cloned()
                .unwrap_or_default(),
        };
        destinations
            .into_iter()
            .map(|destination| {
                let target = Target {
                    transport: destination.transport,
                    addr: destination.addr,
                    connection: None,
                };
                super::offer::OfferTarget::direct(uri.clone(), target)
            })
            .collect()
    }

    /// Handles the failed attempt of a forwarded call. After 503, a timeout
    /// or a transport error the trunk's next server is dialed (RFC 3263
    /// section 4.3). Any other status, or no server left, ends the forward.
    pub(super) fn forward_attempt_failed(&mut self, call_id: &str, status: u16, now: Instant) {
        let next = match self.calls.get_mut(call_id) {
            Some(call) if matches!(status, 408 | 503) => call.forward_fallbacks.pop_front(),
            _ => None,
        };
        let Some(next) = next else {
            tracing::info!(status, "forwarded call not answered");
            self.forward_failed(call_id, now);
            return;
        };
        let Some(number) = self
            .calls
            .get(call_id)
            .and_then(|call| call.forwarded_to.clone())
        else {
            return;
        };
        tracing::warn!(
            status,
            next = %next.target.addr,
            transport = next.target.transport.via_token(),
            "trunk server failed; trying the next one"
        );
        let label = format!("number:{number}");
        self.send_offer(
            call_id,
            &label,
            next.uri.clone(),
            vec![next],
            AttemptKind::Forward(number),
            now,
        );
    }

    /// Ends a forwarded call that got no answer: the caller gets the
    /// apology (or 480 when it still hears ringback).
    pub(super) fn forward_failed(&mut self, call_id: &str, now: Instant) {
        let ringing = self
            .calls
            .get(call_id)
            .is_some_and(|call| call.phase == Phase::Queued && call.leaving.is_none());
        if !ringing {
            return;
        }
        self.release_extension(call_id, now);
        self.withdraw_offer(call_id, None, now);
        self.fail_call(
            call_id,
            480,
            "No Answer From Forwarded Number",
            cdr::Disposition::NoAgent,
            now,
        );
    }

    /// Frees, for the queues, the agent whose extension the call was
    /// forwarded to, if any.
    pub(super) fn release_extension(&mut self, call_id: &str, now: Instant) {
        let Some(number) = self.calls.get(call_id).and_then(|c| c.forwarded_to.clone()) else {
            return;
        };
        if self.registrar.is_agent(&number) {
            self.acd.direct_call_ended(&number, call_id, now);
        }
    }

    /// Ends a forwarded call that rang for [`FORWARD_RING_LIMIT`].
    pub(super) fn forward_deadline(&mut self, call_id: &str, now: Instant) {
        tracing::info!(call = call_id, "forwarded call rang out");
        self.forward_failed(call_id, now);
    }
}
