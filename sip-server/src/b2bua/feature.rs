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

use std::time::Instant;

use sip_message::{Method, Request, Response};

use super::{Core, Purpose, Readiness};
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

impl Core {
    /// Applies `feature` for `agent` and answers its INVITE.
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
            Feature::Readiness(readiness) => self
                .set_agent_readiness(agent, readiness.clone(), now)
                .map(|()| match readiness {
                    Readiness::Ready => "Ready".to_owned(),
                    Readiness::NotReady { reason } => format!("Not Ready: {reason}"),
                }),
        };
        tracing::info!(agent, ?feature, ?outcome, "feature code");
        let reason = match outcome {
            Ok(reason) => reason,
            Err(error) => {
                let reason = error.to_string();
                self.reply(&key, &request, 403, Some(&reason), now);
                return;
            }
        };

        let tag = random_token();
        let mut response = Response::for_request(&request, 200, Some(&reason));
        super::add_to_tag(&mut response, &tag);
        response
            .headers
            .push("Contact", self.local.contact.to_string());
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
