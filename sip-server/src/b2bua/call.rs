//! The state one citizen's call carries through the B2BUA.

use std::time::Instant;

use sip_message::Request;
use sip_message::sdp::SessionDescription;

use crate::dialog::Dialog;
use crate::transaction::{Target, TransactionKey};

/// Which side of the B2BUA a leg faces.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Side {
    Caller,
    Agent,
}

impl Side {
    pub fn other(self) -> Side {
        match self {
            Side::Caller => Side::Agent,
            Side::Agent => Side::Caller,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Phase {
    /// The relay ports are being bound.
    OpeningMedia,
    /// In the ACD queue, possibly ringing an agent.
    Queued,
    /// A callback request's agent answered; the citizen's phone rings.
    Dialing,
    /// Answered by an agent.
    Talking,
    /// The agent hung up and the caller answers the post-call survey.
    Survey,
}

/// The caller's INVITE server transaction and, once answered, its dialog.
/// On a callback the PBX dials the citizen instead: `invite_key` is None,
/// `invite` is the INVITE sent to the citizen and `local_tag` its From tag.
pub(crate) struct CallerLeg {
    pub invite_key: Option<TransactionKey>,
    pub invite: Request,
    pub source: Target,
    /// Our To tag, used in every response on this leg.
    pub local_tag: String,
    pub dialog: Option<Dialog>,
    /// A 180 without SDP went out; agents' 180s are not repeated to the
    /// caller.
    pub ringing_sent: bool,
    /// The PBX's own SDP answer, when it answered the caller to play music
    /// and announcements while the call waits; repeated to refreshes.
    pub answer: Option<bytes::Bytes>,
    /// Reliable provisional responses (RFC 3262) sent on this leg.
    pub provisionals: super::reliable::CallerProvisionals,
    /// The INVITE had no SDP, so the PBX's 2xx makes the offer.
    pub offerless: bool,
    /// The PBX's 2xx carried its offer and the ACK with the answer has not
    /// arrived yet.
    pub answer_in_ack: bool,
}

/// The agent's leg once it answered, or the leg of the number a
/// forwarded call was dialed to.
#[derive(Clone)]
pub(crate) struct AgentLeg {
    pub agent: String,
    pub dialog: Dialog,
    /// The leg answers a forward, not an ACD offer.
    pub forwarded: bool,
    /// The last SDP the PBX sent on this leg, which a session refresh by
    /// re-INVITE repeats unchanged.
    pub sdp: bytes::Bytes,
}

/// Local relay addresses for the two legs.
#[derive(Clone, Copy, Debug)]
pub struct MediaPorts {
    pub caller: std::net::SocketAddr,
    pub agent: std::net::SocketAddr,
}

pub(crate) struct Call {
    pub id: String,
    pub span: tracing::Span,
    pub phase: Phase,
    pub caller: CallerLeg,
    pub offer: SessionDescription,
    pub media: Option<MediaPorts>,
    /// Offer attempts ringing now, by agent: one normally, several when the
    /// queue rings all agents at once.
    pub attempts: std::collections::HashMap<String, u64>,
    pub agent_leg: Option<AgentLeg>,
    pub caller_number: String,
    pub dialed: String,
    pub trunk: Option<String>,
    pub source_extension: Option<String>,
    pub queue: String,
    pub route: super::DidRoute,
    pub arrived: Instant,
    pub queued_at: Option<Instant>,
    pub answered_at: Option<Instant>,
    pub recording_path: Option<String>,
    /// The recording writes silence until resumed.
    pub recording_paused: bool,
    /// Pauses and resumes of the recording, for the CDR.
    pub recording_events: Vec<cdr::RecordingEvent>,
    /// The last offer inside the call put a leg on hold, so silence on the
    /// media is expected.
    pub on_hold: bool,
    /// The `o=` line of every SDP sent to the caller.
    pub caller_origin: crate::sdp::LegOrigin,
    /// Time of the call's entry in `Core::waiting_deadlines`: the next
    /// announcement, or the end of its apology, greeting, message or forward.
    pub deadline: Option<Instant>,
    /// The call ends without an agent once the apology played; the CDR
    /// gets this disposition.
    pub leaving: Option<cdr::Disposition>,
    /// Music the waiting caller hears between announcements.
    pub music: Option<std::path::PathBuf>,
    /// When the PBX answered the caller (at the agent's answer, or earlier
    /// to play music or take a message).
    pub caller_answered_at: Option<Instant>,
    /// When the call left its queue without an agent (the end of its wait).
    pub left_queue_at: Option<Instant>,
    /// The caller is leaving a message.
    pub voicemail: Option<Voicemail>,
    /// Number the call was forwarded to after leaving its queue.
    pub forwarded_to: Option<String>,
    /// Trunk servers still to try for the forward, in order, should the
    /// current one fail with a transport error, a timeout or 503.
    pub forward_fallbacks: std::collections::VecDeque<super::offer::OfferTarget>,
    /// Number the citizen first dialed, when a carrier redirected the call
    /// to the centre (Diversion).
    pub diverted_from: Option<String>,
    /// Set on a call the PBX places to return a callback request.
    pub callback: Option<Callback>,
    /// Session timer of the caller's leg, once it is answered.
    pub caller_session: Option<super::session_timer::LegSession>,
    /// Session timer of the agent's leg, once it answered.
    pub agent_session: Option<super::session_timer::LegSession>,
    /// Agents the ACD offered the call to while the caller's 200 waited for
    /// its ACK. Each rings once the ACK arrives.
    pub parked_offers: Vec<String>,
    /// A re-INVITE or UPDATE waiting for the PBX's refresh re-INVITE on the
    /// other leg to be answered.
    pub deferred_relay: Option<super::session_refresh::DeferredRelay>,
    /// Transfers by the call's agents.
    pub transfer: super::transfer::Transfers,
    /// Holds during the answered call.
    pub holds: super::hold::HoldTimes,
    /// When the agent hung up, for a caller kept for the survey: talk
    /// time ends here.
    pub agent_ended_at: Option<Instant>,
    /// The post-call survey, once the caller hears it.
    pub survey: Option<super::survey::Survey>,
    /// On a call between agents' extensions, the agent dialed. The caller
    /// is the agent in `source_extension`, and the call has no queue.
    pub called_agent: Option<String>,
}

/// The link of a call placed for a callback request to that request: its
/// id in the ACD, which is also the id of the call the citizen made, and
/// the agent the ACD reserved.
pub(crate) struct Callback {
    pub request: String,
    /// The agent the ACD reserved for the request.
    pub agent: String,
}

/// A caller sent to a voicemail box.
pub(crate) struct Voicemail {
    pub mailbox: String,
    /// When the message recording started, after the greeting and beep.
    pub recording_since: Option<Instant>,
}

/// The fields that differ between the calls [`Call::new`] builds: from a
/// citizen's INVITE, or placed by the PBX to return a callback request.
pub(crate) struct NewCall {
    pub id: String,
    pub span: tracing::Span,
    pub caller: CallerLeg,
    pub offer: SessionDescription,
    pub caller_number: String,
    pub dialed: String,
    pub trunk: Option<String>,
    pub source_extension: Option<String>,
    pub route: super::DidRoute,
    pub diverted_from: Option<String>,
    pub callback: Option<Callback>,
    pub called_agent: Option<String>,
}

impl Call {
    /// Builds a call that waits for its relay ports, with nothing answered,
    /// recorded or played yet.
    pub(crate) fn new(new: NewCall, now: Instant) -> Call {
        Call {
            id: new.id,
            span: new.span,
            phase: Phase::OpeningMedia,
            caller: new.caller,
            offer: new.offer,
            media: None,
            attempts: std::collections::HashMap::new(),
            agent_leg: None,
            caller_number: new.caller_number,
            dialed: new.dialed,
            trunk: new.trunk,
            source_extension: new.source_extension,
            queue: new.route.queue.clone(),
            route: new.route,
            arrived: now,
            queued_at: None,
            answered_at: None,
            recording_path: None,
            recording_paused: false,
            recording_events: Vec::new(),
            on_hold: false,
            caller_origin: crate::sdp::LegOrigin::new(rand::random::<u32>().into()),
            deadline: None,
            leaving: None,
            music: None,
            caller_answered_at: None,
            left_queue_at: None,
            voicemail: None,
            forwarded_to: None,
            forward_fallbacks: std::collections::VecDeque::new(),
            diverted_from: new.diverted_from,
            callback: new.callback,
            caller_session: None,
            agent_session: None,
            parked_offers: Vec::new(),
            deferred_relay: None,
            transfer: super::transfer::Transfers::default(),
            holds: super::hold::HoldTimes::default(),
            agent_ended_at: None,
            survey: None,
            called_agent: new.called_agent,
        }
    }

    pub(crate) fn dialog(&self, side: Side) -> Option<&Dialog> {
        match side {
            Side::Caller => self.caller.dialog.as_ref(),
            Side::Agent => self.agent_leg.as_ref().map(|leg| &leg.dialog),
        }
    }

    pub(crate) fn dialog_mut(&mut self, side: Side) -> Option<&mut Dialog> {
        match side {
            Side::Caller => self.caller.dialog.as_mut(),
            Side::Agent => self.agent_leg.as_mut().map(|leg| &mut leg.dialog),
        }
    }

    /// Builds the offer every agent-side INVITE of this call carries: the caller's
    /// offer with G.711 added, anchored at the relay's agent port.
    pub(crate) fn agent_offer(&self, media_address: std::net::IpAddr) -> bytes::Bytes {
        let port = self.local_port(Side::Agent).unwrap_or_default();
        crate::sdp::anchored(&crate::sdp::with_g711(&self.offer), media_address, port)
    }

    pub(crate) fn local_port(&self, side: Side) -> Option<u16> {
        self.media.map(|ports| match side {
            Side::Caller => ports.caller.port(),
            Side::Agent => ports.agent.port(),
        })
    }
}

/// One branch of an offer: the INVITE sent to one contact of the agent.
pub(crate) struct Branch {
    pub key: TransactionKey,
    pub request: Request,
    pub target: Target,
    /// A provisional response arrived, so CANCEL may be sent (section 9.1).
    pub provisional: bool,
    pub cancel_wanted: bool,
    pub cancel_sent: bool,
    pub finished: bool,
    /// The early dialog of the branch's last reliable provisional response.
    pub early: Option<EarlyDialog>,
}

/// An early dialog with an agent's phone, kept for its PRACKs; the dialog
/// of the 2xx continues its CSeq.
pub(crate) struct EarlyDialog {
    pub dialog: Dialog,
    /// RSeq of the last reliable response acknowledged.
    pub last_rseq: u32,
}

/// The agent leg INVITEs of one offer, forked to every contact of the agent.
pub(crate) struct Attempt {
    pub call: String,
    pub agent: String,
    pub branches: Vec<Branch>,
    /// The ACD withdrew the offer or the call ended; a late 2xx is hung up.
    pub withdrawn: bool,
    pub answered: bool,
    pub kind: AttemptKind,
}

/// The purpose of an attempt's INVITEs. Only `Offer` attempts are ACD
/// offers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum AttemptKind {
    /// An agent rings for a queued call or a callback request.
    Offer,
    /// A call that left its queue is dialed to this number.
    Forward(String),
    /// The citizen of a callback request is dialed, after its agent answered.
    Citizen,
    /// An agent's blind transfer rings this agent's extension.
    Transfer(String),
    /// An agent dialed this agent's extension.
    Extension(String),
}

impl Attempt {
    pub(crate) fn all_finished(&self) -> bool {
        self.branches.iter().all(|b| b.finished)
    }
}
