//! Feature codes an agent dials from its own phone to change its state,
//! as call-centre agents do on desk phones without a screen.
//!
//! | code | effect |
//! |---|---|
//! | `*11` | log in: the agent takes calls again |
//! | `*12` | log out: the agent takes no calls until it logs in |
//! | `*21` | not ready, reason `break` |
//! | `*22` | not ready, reason `lunch` |
//! | `*23` | not ready, reason `training` |
//! | `*20` | ready again (also ends wrap-up) |
//!
//! The PBX answers the call with the audio stream declined (port 0, RFC
//! 3264 section 6), so the phone shows a connected call that ends at once,
//! and hangs up as soon as the ACK arrives. A phone sees the outcome in the
//! 200's reason phrase (`200 Logged In`, `200 Not Ready: lunch`...).
//!
//! The change takes effect at once, but the final response is held until
//! the driver reports that the queue events it caused are stored
//! ([`Core::events_stored`]), as the HTTP API waits for the commit before
//! replying. Other calls go on meanwhile. The INVITE transaction sends its
//! own 100 Trying when the commit takes longer than 200 ms.

use std::time::Instant;

use sip_message::{Method, Request, Response};

use super::{Core, HeldResponse, Purpose, Readiness};
use crate::dialog::{Dialog, random_token};
use crate::transaction::{Target, TransactionKey};

/// What a feature code does.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) enum Feature {
    LogIn,
    LogOut,
    Readiness(Readiness),
}

/// Returns the feature dialed as `number`, if it is a feature code.
pub(super) fn feature_for(number: &str) -> Option<Feature> {
    let not_ready = |reason: &str| {
        Feature::Readiness(Readiness::NotReady {
            reason: reason.to_owned(),
        })
    };
    Some(match number {
        "*11" => Feature::LogIn,
        "*12" => Feature::LogOut,
        "*20" => Feature::Readiness(Readiness::Ready),
        "*21" => not_ready("break"),
        "*22" => not_ready("lunch"),
        "*23" => not_ready("training"),
        _ => return None,
    })
}

/// A feature-code call whose change is made and whose final response
/// waits for the events to be stored.
pub(super) struct HeldFeature {
    key: TransactionKey,
    request: Request,
    source: Target,
    /// Reason phrase of the 200, naming the outcome.
    outcome: String,
}

impl Core {
    /// Applies `feature` for `agent` and keeps its final response back until
    /// the events of the change are stored.
    pub(super) fn run_feature(
        &mut self,
        key: TransactionKey,
        request: Request,
        source: Target,
        agent: &str,
        feature: Feature,
        now: Instant,
    ) {
        let outcome = match &feature {
            Feature::LogIn => {
                self.acd.set_logged_in(agent, true, now);
                Ok("Logged In".to_owned())
            }
            Feature::LogOut => {
                self.acd.set_logged_in(agent, false, now);
                Ok("Logged Out".to_owned())
            }
            // Not `set_agent_readiness`: its drain would send the events
            // out before the response is held behind them.
            Feature::Readiness(readiness) => self
                .apply_readiness(agent, readiness.clone(), now)
                .map(|()| match readiness {
                    Readiness::Ready => "Ready".to_owned(),
                    Readiness::NotReady { reason } => format!("Not Ready: {reason}"),
                }),
        };
        tracing::info!(agent, ?feature, ?outcome, "feature code");
        let outcome = match outcome {
            Ok(outcome) => outcome,
            Err(error) => {
                // Nothing changed, so there is nothing to wait for.
                let reason = error.to_string();
                self.reply(&key, &request, 403, Some(&reason), now);
                return;
            }
        };
        // The change's events are still in the ACD; the drain that follows
        // this request puts them in the same `QueueLog` command as the hold.
        let held = HeldResponse(self.next_hold);
        self.next_hold += 1;
        self.unsent_holds.push(held);
        self.held_responses.insert(
            held,
            HeldFeature {
                key,
                request,
                source,
                outcome,
            },
        );
    }

    /// Sends the response `held` once the `QueueLog` command that carried
    /// it is committed (`stored`). When the commit failed it sends 500,
    /// because the change is in force but would not survive a restart, and
    /// dialling the code again stores it.
    pub fn events_stored(&mut self, held: HeldResponse, stored: bool, now: Instant) {
        let Some(feature) = self.held_responses.remove(&held) else {
            return;
        };
        if !self.transactions.contains(&feature.key) {
            // The phone's connection closed while the commit ran.
            return;
        }
        if stored {
            self.answer_feature(feature, now);
        } else {
            let reason = format!("{}, Not Stored", feature.outcome);
            self.reply(&feature.key, &feature.request, 500, Some(&reason), now);
        }
        self.process(now);
    }

    /// Counts the feature-code responses still waiting for their events to
    /// be stored.
    pub fn held_responses(&self) -> usize {
        self.held_responses.len()
    }

    /// Sends the 200 of a feature call, with every stream declined, and
    /// waits for its ACK to hang up.
    fn answer_feature(&mut self, feature: HeldFeature, now: Instant) {
        let HeldFeature {
            key,
            request,
            source,
            outcome,
        } = feature;
        let tag = random_token();
        let mut response = Response::for_request(&request, 200, Some(&outcome));
        super::add_to_tag(&mut response, &tag);
        response
            .headers
            .push("Contact", self.local.contact(source.transport).to_string());
        if let Ok(mut answer) = crate::sdp::parse(&request.body) {
            // Every stream declined: the call carries no media.
            for media in &mut answer.media {
                media.port = 0;
            }
            answer.set_connection_address(self.config.media_address);
            response.headers.push("Content-Type", "application/sdp");
            response.body = answer.to_bytes();
        }
        self.transactions.send_response(&key, response, now);
        let (Some(dialog), Ok(cseq)) = (
            Dialog::from_uas(&request, &tag, source),
            request.headers.cseq(),
        ) else {
            return;
        };
        let sip_call_id = dialog.call_id.clone();
        self.awaiting_ack
            .insert((sip_call_id.clone(), cseq.seq), key);
        self.feature_dialogs.insert((sip_call_id, cseq.seq), dialog);
    }

    /// Hangs up a feature call once the ACK of its 200 arrived, or never
    /// will.
    pub(super) fn end_feature_call(&mut self, sip_call_id: &str, seq: u32, now: Instant) {
        let Some(mut dialog) = self.feature_dialogs.remove(&(sip_call_id.to_owned(), seq)) else {
            return;
        };
        let bye = dialog.new_request(Method::Bye, &self.local);
        let key = self.transactions.send_request(bye, dialog.target, now);
        self.purposes.insert(key, Purpose::FireAndForget);
    }
}
