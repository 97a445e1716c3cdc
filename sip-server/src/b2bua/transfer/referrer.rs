//! The transferring agent's leg while its transfer is pending: the
//! NOTIFYs and the BYE it gets, its requests, and the end of a pending
//! transfer.

use std::time::Instant;

use sip_message::{Method, Request, Response};

use super::super::{Core, Purpose};
use super::transfer_label;
use crate::transaction::TransactionKey;

impl Core {
    /// Ends the ACD call of the transferring agent, which goes to wrap-up,
    /// or the direct call of an extension that transferred.
    pub(in crate::b2bua) fn release_referrer(&mut self, call_id: &str, now: Instant) {
        let Some(pending) = self
            .calls
            .get(call_id)
            .and_then(|call| call.transfer.pending.as_ref())
        else {
            return;
        };
        let Some(referrer) = pending.referrer.as_ref() else {
            return;
        };
        let (agent, target, direct) = (
            referrer.agent.clone(),
            pending.record.target.clone(),
            referrer.forwarded,
        );
        if direct {
            self.acd.direct_call_ended(&agent, call_id, now);
        } else {
            self.acd.call_transferred(&agent, &target, now);
        }
    }

    /// Sends BYE to the transferring agent, whose part of the call is over.
    pub(in crate::b2bua) fn hang_up_referrer(&mut self, call_id: &str, now: Instant) {
        let Some(mut referrer) = self
            .calls
            .get_mut(call_id)
            .and_then(|call| call.transfer.pending.as_mut())
            .and_then(|pending| pending.referrer.take())
        else {
            return;
        };
        let bye = referrer.dialog.new_request(Method::Bye, &self.local);
        let key = self
            .transactions
            .send_request(bye, referrer.dialog.target, now);
        self.purposes.insert(key, Purpose::FireAndForget);
    }

    /// Sends the transferring agent a NOTIFY with the sipfrag `status`
    /// line; `last` ends the REFER's subscription.
    pub(in crate::b2bua) fn notify_referrer(
        &mut self,
        call_id: &str,
        status: u16,
        reason: &str,
        last: bool,
        now: Instant,
    ) {
        let local = self.local.clone();
        let Some(pending) = self
            .calls
            .get_mut(call_id)
            .and_then(|call| call.transfer.pending.as_mut())
        else {
            return;
        };
        let refer_cseq = pending.refer_cseq;
        let Some(referrer) = pending.referrer.as_mut() else {
            return;
        };

        let dialog = &mut referrer.dialog;
        let mut notify = dialog.new_request(Method::Notify, &local);
        notify
            .headers
            .push("Event", format!("refer;id={refer_cseq}"));
        let state = if last {
            "terminated;reason=noresource"
        } else {
            "active;expires=60"
        };
        notify.headers.push("Subscription-State", state);
        notify.headers.push(
            "Contact",
            local.contact(dialog.target.transport).to_string(),
        );
        notify
            .headers
            .push("Content-Type", "message/sipfrag;version=2.0");
        notify.body = bytes::Bytes::from(format!("SIP/2.0 {status} {reason}\r\n"));
        let target = dialog.target;
        let key = self.transactions.send_request(notify, target, now);
        self.purposes.insert(key, Purpose::FireAndForget);
    }

    /// Moves the pending transfer's record into the call's history.
    pub(in crate::b2bua) fn finish_pending_transfer(&mut self, call_id: &str) {
        if let Some(call) = self.calls.get_mut(call_id)
            && let Some(pending) = call.transfer.pending.take()
        {
            call.transfer.done.push(pending.record);
        }
    }

    /// Frees the extension a transfer rang or connected, for the queues.
    pub(in crate::b2bua) fn release_transfer_target(&mut self, call_id: &str, now: Instant) {
        let Some(call) = self.calls.get_mut(call_id) else {
            return;
        };
        let ringing = call
            .transfer
            .pending
            .as_mut()
            .and_then(|pending| pending.direct_agent.take());
        let connected = call
            .agent_leg
            .as_ref()
            .filter(|leg| leg.forwarded && call.forwarded_to.is_none())
            .map(|leg| leg.agent.clone());
        for agent in ringing.into_iter().chain(connected) {
            self.acd.direct_call_ended(&agent, call_id, now);
        }
    }

    /// Handles a request on the dialog of an agent whose transfer rings,
    /// which is no longer the call's agent leg. Returns false when
    /// `request` belongs to no such dialog.
    pub(in crate::b2bua) fn handle_referrer_request(
        &mut self,
        key: &TransactionKey,
        request: &Request,
        now: Instant,
    ) -> bool {
        let Some(call_id) = request
            .headers
            .call_id()
            .and_then(|sip_call_id| self.by_sip_call_id.get(sip_call_id))
            .cloned()
        else {
            return false;
        };
        let Some(referrer) = self
            .calls
            .get(&call_id)
            .and_then(|call| call.transfer.pending.as_ref())
            .and_then(|pending| pending.referrer.as_ref())
            .filter(|referrer| referrer.dialog.matches_request(request))
        else {
            return false;
        };
        let mut response = Response::for_request(request, 200, None);
        super::super::add_to_tag(&mut response, &referrer.dialog.local_tag);
        match request.method {
            Method::Bye => {
                tracing::info!(
                    agent = referrer.agent,
                    "transferring agent hung up while the target rings"
                );
                self.transactions.send_response(key, response, now);
                self.release_referrer(&call_id, now);
                if let Some(pending) = self
                    .calls
                    .get_mut(&call_id)
                    .and_then(|call| call.transfer.pending.as_mut())
                {
                    pending.referrer = None;
                    pending.referrer_session = None;
                }
            }
            // The agent's phone may hold or refresh its leg while it waits;
            // nothing is relayed, because the caller hears the PBX.
            Method::Invite | Method::Update => {
                let response = Response::for_request(request, 491, None);
                self.transactions.send_response(key, response, now);
            }
            _ => self.transactions.send_response(key, response, now),
        }
        true
    }

    /// Ends a transfer whose call ends while its target rings: the target
    /// stops ringing, and the transferring agent is the agent leg again so
    /// that the hang-up reaches it.
    pub(in crate::b2bua) fn abandon_pending_transfer(&mut self, call_id: &str, now: Instant) {
        let Some(pending) = self
            .calls
            .get(call_id)
            .and_then(|call| call.transfer.pending.as_ref())
        else {
            return;
        };
        let label = transfer_label(&pending.record.target);
        self.withdraw_offer(call_id, Some(&label), now);
        self.cancel_deadline(call_id);
        self.release_transfer_target(call_id, now);
        self.notify_referrer(call_id, 487, "Request Terminated", true, now);
        let Some(call) = self.calls.get_mut(call_id) else {
            return;
        };
        if let Some(pending) = call.transfer.pending.as_mut()
            && let Some(referrer) = pending.referrer.take()
        {
            call.agent_leg = Some(referrer);
        }
        self.finish_pending_transfer(call_id);
    }
}
