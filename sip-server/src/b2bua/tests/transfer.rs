//! Blind transfer by REFER: the checks before 202, the NOTIFYs, the new
//! leg, and where the caller goes when the target does not answer.

use super::*;
use crate::b2bua::call::Phase;

const AGENT_2_SDP: &str = "v=0\r\no=- 9 9 IN IP4 198.51.100.22\r\ns=-\r\nc=IN IP4 198.51.100.22\r\n\
                           t=0 0\r\nm=audio 43000 RTP/AVP 0\r\n";

/// Builds a request from agent 1001's phone inside its dialog of `invite`.
fn agent_request(invite: &Request, method: &str, cseq: u32, extra: &str) -> String {
    format!(
        "{method} sip:pbx@127.0.0.1:5060 SIP/2.0\r\nVia: SIP/2.0/UDP {AGENT_1};branch=z9hG4bK-{method}{cseq}\r\n\
         Max-Forwards: 70\r\nFrom: <sip:1001@pbx.test>;tag=agenttag\r\nTo: {}\r\nCall-ID: {}\r\n\
         CSeq: {cseq} {method}\r\nContact: <sip:agent@{AGENT_1}>\r\n{extra}Content-Length: 0\r\n\r\n",
        invite.headers.get("From").unwrap(),
        invite.headers.call_id().unwrap(),
    )
}

fn refer_to(invite: &Request, target: &str) -> String {
    agent_request(
        invite,
        "REFER",
        2,
        &format!("Refer-To: <sip:{target}@pbx.test>\r\nReferred-By: <sip:1001@pbx.test>\r\n"),
    )
}

/// Runs a call up to 5 s of talk with 1001, with 1002 registered.
fn talking_with_two_agents(h: &mut Harness) -> (String, Request) {
    let (call, invite) = answered_call(h);
    assert_eq!(h.register("1002", "pw-two", AGENT_2).status, 200);
    h.advance(Duration::from_secs(5));
    h.sent.clear();
    h.commands.clear();
    (call, invite)
}

/// Returns the sipfrag status line of each NOTIFY in `requests`, with
/// whether it ends the subscription.
fn notifies(requests: &[Request]) -> Vec<(String, bool)> {
    requests
        .iter()
        .filter(|r| r.method == Method::Notify)
        .map(|notify| {
            // The id is the CSeq of the REFER: 2 from `refer_to`, 3 from
            // `consult_and_refer`.
            let event = notify.headers.get("Event").unwrap_or_default();
            assert!(["refer;id=2", "refer;id=3"].contains(&event), "{event}");
            assert_eq!(
                notify.headers.content_type(),
                Some("message/sipfrag;version=2.0")
            );
            let state = notify.headers.get("Subscription-State").unwrap();
            let body = String::from_utf8(notify.body.to_vec()).unwrap();
            (body.trim_end().to_owned(), state.starts_with("terminated"))
        })
        .collect()
}

/// Responds 200 from agent 1001's phone to each NOTIFY in `requests`, so
/// that the PBX stops retransmitting them.
fn answer_notifies(h: &mut Harness, requests: &[Request]) {
    for notify in requests.iter().filter(|r| r.method == Method::Notify) {
        let ok = Response::for_request(notify, 200, None);
        let text = String::from_utf8(ok.to_bytes().to_vec()).unwrap();
        h.receive(&text, AGENT_1);
    }
}

fn invite_to(h: &mut Harness, to: &str) -> Request {
    h.requests_to(to)
        .into_iter()
        .find(|r| r.method == Method::Invite)
        .expect("INVITE to the transfer target")
}

fn queue_events(h: &Harness) -> Vec<acd::QueueEvent> {
    h.commands
        .iter()
        .flat_map(|command| match command {
            Command::QueueLog { events, .. } => events.iter().map(|e| e.event.clone()).collect(),
            _ => Vec::new(),
        })
        .collect()
}

#[test]
fn blind_transfer_connects_caller_to_extension() {
    let mut h = Harness::new();
    let (call, invite) = talking_with_two_agents(&mut h);

    h.receive(&refer_to(&invite, "1002"), AGENT_1);
    let to_agent_1 = h.take_to(AGENT_1);
    let accepted = to_agent_1.iter().find_map(|m| match m {
        Message::Response(r) => Some(r.clone()),
        Message::Request(_) => None,
    });
    let accepted = accepted.expect("response to REFER");
    assert_eq!(accepted.status, 202);
    assert_eq!(
        accepted.headers.to().unwrap().tag(),
        invite.headers.from().unwrap().tag()
    );
    let requests: Vec<Request> = to_agent_1
        .into_iter()
        .filter_map(|m| match m {
            Message::Request(r) => Some(r),
            Message::Response(_) => None,
        })
        .collect();
    assert_eq!(
        notifies(&requests),
        vec![("SIP/2.0 100 Trying".to_owned(), false)]
    );
    answer_notifies(&mut h, &requests);
    assert!(
        h.commands.iter().any(|c| matches!(
            c,
            Command::Play {
                side: Side::Caller,
                looped: true,
                ..
            }
        )),
        "the caller hears the hold prompt and music while the target rings"
    );
    let target_invite = invite_to(&mut h, AGENT_2);
    assert_eq!(target_invite.headers.get("X-Call-ID"), Some(call.as_str()));

    h.receive(&agent_response(&target_invite, 180, AGENT_2, None), AGENT_2);
    assert!(
        h.responses_to(CALLER).is_empty(),
        "the answered caller gets no 180"
    );
    h.advance(Duration::from_secs(3));
    h.receive(
        &agent_response(&target_invite, 200, AGENT_2, Some(AGENT_2_SDP)),
        AGENT_2,
    );

    let to_agent_2 = h.requests_to(AGENT_2);
    assert!(to_agent_2.iter().any(|r| r.method == Method::Ack));
    let to_agent_1 = h.requests_to(AGENT_1);
    assert_eq!(
        notifies(&to_agent_1),
        vec![("SIP/2.0 200 OK".to_owned(), true)]
    );
    assert!(
        to_agent_1.iter().any(|r| r.method == Method::Bye),
        "the first agent is released"
    );
    assert!(
        h.requests_to(CALLER).is_empty(),
        "the caller's dialog is untouched"
    );
    assert!(h.commands.iter().any(|c| matches!(
        c,
        Command::SetRemote { side: Side::Agent, addr, .. } if *addr == "198.51.100.22:43000".parse().unwrap()
    )));
    assert!(h.commands.iter().any(|c| matches!(
        c,
        Command::StopPlayback {
            side: Side::Caller,
            ..
        }
    )));
    assert!(
        !h.commands
            .iter()
            .any(|c| matches!(c, Command::StartRecording { .. })),
        "the recording continues in the same file"
    );
    let transferred = queue_events(&h).into_iter().any(|event| matches!(
        event,
        acd::QueueEvent::CallTransferred { ref agent, ref target, .. } if agent == "1001" && target == "1002"
    ));
    assert!(
        transferred,
        "the ACD ends the first agent's call as transferred"
    );
    assert_eq!(
        h.core.acd.agent_state("1002"),
        Some(acd::AgentState::OnCall)
    );

    h.advance(Duration::from_secs(4));
    h.receive(&caller_bye(&caller_tag(&h, &call)), CALLER);
    assert!(
        h.requests_to(AGENT_2)
            .iter()
            .any(|r| r.method == Method::Bye)
    );
    let record = h.finished_record();
    assert_eq!(record.agent.as_deref(), Some("1001"));
    assert_eq!(record.talk_seconds, 12.0);
    assert_eq!(record.transfers.len(), 1);
    let transfer = &record.transfers[0];
    assert_eq!(transfer.from_agent, "1001");
    assert_eq!(transfer.target, "1002");
    assert_eq!(transfer.target_kind, cdr::TransferTarget::Extension);
    assert_eq!(transfer.outcome, cdr::TransferOutcome::Connected);
    assert_eq!(transfer.from_talk_seconds, 5.0);
    assert_eq!(transfer.offset_seconds, 5.0);
    assert_eq!(transfer.answered_by.as_deref(), Some("1002"));
    let answered_at = transfer.answered_at.expect("target answer time");
    assert_eq!((answered_at - transfer.at).as_seconds_f64(), 3.0);
    assert_ne!(
        h.core.acd.agent_state("1002"),
        Some(acd::AgentState::OnCall)
    );
}

#[test]
fn busy_target_reconnects_caller_to_agent() {
    let mut h = Harness::new();
    let (call, invite) = talking_with_two_agents(&mut h);
    h.receive(&refer_to(&invite, "1002"), AGENT_1);
    let target_invite = invite_to(&mut h, AGENT_2);
    h.sent.clear();
    h.commands.clear();

    h.receive(&agent_response(&target_invite, 486, AGENT_2, None), AGENT_2);
    let to_agent_1 = h.requests_to(AGENT_1);
    assert_eq!(
        notifies(&to_agent_1),
        vec![("SIP/2.0 486 Busy Here".to_owned(), true)]
    );
    assert!(
        !to_agent_1.iter().any(|r| r.method == Method::Bye),
        "the agent stays on the call"
    );
    assert!(h.commands.iter().any(|c| matches!(
        c,
        Command::StopPlayback {
            side: Side::Caller,
            ..
        }
    )));
    assert_eq!(
        h.core.acd.agent_state("1001"),
        Some(acd::AgentState::OnCall)
    );

    h.receive(&caller_bye(&caller_tag(&h, &call)), CALLER);
    assert!(
        h.requests_to(AGENT_1)
            .iter()
            .any(|r| r.method == Method::Bye)
    );
    let record = h.finished_record();
    assert_eq!(record.agent.as_deref(), Some("1001"));
    assert_eq!(record.transfers.len(), 1);
    assert_eq!(
        record.transfers[0].outcome,
        cdr::TransferOutcome::Reconnected
    );
    assert_eq!(record.transfers[0].sip_status, Some(486));
    assert_eq!(record.transfers[0].answered_by, None);
}

#[test]
fn target_on_a_call_fails_at_once() {
    let mut h = Harness::new();
    let (_call, invite) = talking_with_two_agents(&mut h);
    // 1002 takes a call that did not come from a queue.
    assert!(h.core.acd.direct_call_started("1002", "other-call", h.now));
    h.receive(&refer_to(&invite, "1002"), AGENT_1);
    let to_agent_1 = h.take_to(AGENT_1);
    let statuses: Vec<u16> = to_agent_1
        .iter()
        .filter_map(|m| match m {
            Message::Response(r) => Some(r.status),
            Message::Request(_) => None,
        })
        .collect();
    assert_eq!(statuses, vec![202]);
    let requests: Vec<Request> = to_agent_1
        .into_iter()
        .filter_map(|m| match m {
            Message::Request(r) => Some(r),
            Message::Response(_) => None,
        })
        .collect();
    assert_eq!(
        notifies(&requests),
        vec![
            ("SIP/2.0 100 Trying".to_owned(), false),
            ("SIP/2.0 486 Busy Here".to_owned(), true)
        ]
    );
    assert!(
        h.requests_to(AGENT_2).is_empty(),
        "a busy extension does not ring"
    );
}

#[test]
fn refer_from_caller_gets_403() {
    let mut h = Harness::new();
    let (call, _invite) = talking_with_two_agents(&mut h);
    let refer = format!(
        "REFER sip:pbx@127.0.0.1:5060 SIP/2.0\r\nVia: SIP/2.0/UDP {CALLER};branch=z9hG4bK-cref\r\n\
         Max-Forwards: 70\r\nFrom: \"Citizen\" <sip:+15550100@carrier.test>;tag=c1\r\n\
         To: <sip:5000@pbx.test>;tag={}\r\nCall-ID: caller-1@carrier.test\r\nCSeq: 2 REFER\r\n\
         Contact: <sip:+15550100@{CALLER}>\r\nRefer-To: <sip:1002@pbx.test>\r\n\
         Content-Length: 0\r\n\r\n",
        caller_tag(&h, &call)
    );
    h.receive(&refer, CALLER);
    let responses = h.responses_to(CALLER);
    assert_eq!(responses.len(), 1);
    assert_eq!(responses[0].status, 403);
    assert!(h.requests_to(AGENT_2).is_empty());
    assert!(
        h.requests_to(AGENT_1).is_empty(),
        "the REFER is not relayed"
    );
}

#[test]
fn refer_outside_a_dialog_gets_481() {
    let mut h = Harness::new();
    let (_call, invite) = talking_with_two_agents(&mut h);
    let stray = refer_to(&invite, "1002")
        .replace(invite.headers.call_id().unwrap(), "unknown@198.51.100.21");
    h.receive(&stray, AGENT_1);
    let without_tag = format!(
        "REFER sip:1002@pbx.test SIP/2.0\r\nVia: SIP/2.0/UDP {AGENT_1};branch=z9hG4bK-oref\r\n\
         Max-Forwards: 70\r\nFrom: <sip:1001@pbx.test>;tag=o1\r\nTo: <sip:1002@pbx.test>\r\n\
         Call-ID: out-of-dialog@test\r\nCSeq: 1 REFER\r\nContact: <sip:agent@{AGENT_1}>\r\n\
         Refer-To: <sip:5000@pbx.test>\r\nContent-Length: 0\r\n\r\n"
    );
    h.receive(&without_tag, AGENT_1);
    let statuses: Vec<u16> = h.responses_to(AGENT_1).iter().map(|r| r.status).collect();
    assert_eq!(statuses, vec![481, 481]);
    assert!(h.requests_to(AGENT_2).is_empty());
}

#[test]
fn invalid_refer_targets_are_rejected() {
    let cases = [
        ("", 400),
        ("Refer-To: <sip:pbx.test>\r\n", 400),
        ("Refer-To: not a uri\r\n", 400),
        (
            "Refer-To: <sip:1002@pbx.test>\r\nRefer-To: <sip:5000@pbx.test>\r\n",
            400,
        ),
        ("Refer-To: <sip:7777@pbx.test>\r\n", 404),
        ("Refer-To: <sip:1001@pbx.test>\r\n", 403),
        (
            "Refer-To: <sip:1002@pbx.test?Replaces=c%40h%3Bto-tag%3D1%3Bfrom-tag%3D2>\r\n",
            481,
        ),
        ("Refer-To: <sip:1002@pbx.test?Replaces=c%40h>\r\n", 400),
    ];
    for (index, (header, status)) in cases.into_iter().enumerate() {
        let mut h = Harness::new();
        let (_call, invite) = talking_with_two_agents(&mut h);
        let cseq = 2 + u32::try_from(index).unwrap();
        h.receive(&agent_request(&invite, "REFER", cseq, header), AGENT_1);
        let responses = h.responses_to(AGENT_1);
        assert_eq!(responses.len(), 1, "{header:?}");
        assert_eq!(responses[0].status, status, "{header:?}");
        assert!(h.requests_to(AGENT_2).is_empty(), "{header:?}");
        assert!(h.requests_to(CALLER).is_empty(), "{header:?}");
    }
}

#[test]
fn refer_to_queue_did_requeues_caller() {
    let mut h = Harness::new();
    let (call, invite) = talking_with_two_agents(&mut h);
    h.receive(&refer_to(&invite, "5000"), AGENT_1);
    let to_agent_1 = h.take_to(AGENT_1);
    let requests: Vec<Request> = to_agent_1
        .iter()
        .filter_map(|m| match m {
            Message::Request(r) => Some(r.clone()),
            Message::Response(_) => None,
        })
        .collect();
    assert_eq!(
        notifies(&requests),
        vec![
            ("SIP/2.0 100 Trying".to_owned(), false),
            ("SIP/2.0 200 OK".to_owned(), true)
        ]
    );
    assert!(requests.iter().any(|r| r.method == Method::Bye));
    assert_eq!(h.core.calls[&call].phase, Phase::Queued);

    // Wrap-up is zero, so 1002 (idle longer) is offered the call.
    let offer = invite_to(&mut h, AGENT_2);
    h.advance(Duration::from_secs(2));
    h.receive(
        &agent_response(&offer, 200, AGENT_2, Some(AGENT_2_SDP)),
        AGENT_2,
    );
    assert!(
        h.responses_to(CALLER).is_empty(),
        "the caller was answered before"
    );
    assert!(
        !h.commands
            .iter()
            .any(|c| matches!(c, Command::StartRecording { .. }))
    );
    assert_eq!(
        h.core.acd.agent_state("1002"),
        Some(acd::AgentState::OnCall)
    );

    h.advance(Duration::from_secs(3));
    h.receive(&caller_bye(&caller_tag(&h, &call)), CALLER);
    assert!(
        h.requests_to(AGENT_2)
            .iter()
            .any(|r| r.method == Method::Bye)
    );
    let record = h.finished_record();
    assert_eq!(record.disposition, cdr::Disposition::Answered);
    assert_eq!(record.agent.as_deref(), Some("1001"));
    assert_eq!(record.talk_seconds, 10.0);
    let transfer = &record.transfers[0];
    assert_eq!(transfer.target_kind, cdr::TransferTarget::Queue);
    assert_eq!(transfer.outcome, cdr::TransferOutcome::Queued);
    assert_eq!(transfer.answered_by.as_deref(), Some("1002"));
}

#[test]
fn target_rings_out_after_agent_left_requeues_caller() {
    let mut h = Harness::new();
    let (call, invite) = talking_with_two_agents(&mut h);
    h.receive(&refer_to(&invite, "1002"), AGENT_1);
    let target_invite = invite_to(&mut h, AGENT_2);
    h.receive(&agent_response(&target_invite, 180, AGENT_2, None), AGENT_2);
    // Some phones hang up right after the 202.
    h.receive(&agent_request(&invite, "BYE", 3, ""), AGENT_1);
    assert!(h.responses_to(AGENT_1).iter().any(|r| r.status == 200));
    assert!(h.requests_to(CALLER).is_empty(), "the caller stays");
    h.sent.clear();

    h.advance(TRANSFER_RING);
    assert!(
        h.requests_to(AGENT_2)
            .iter()
            .any(|r| r.method == Method::Cancel),
        "the target stops ringing at the ring limit"
    );
    assert_eq!(h.core.calls[&call].phase, Phase::Queued);
    // 1001 has been idle longest, so the queue offers the call to it.
    let offer = invite_to(&mut h, AGENT_1);
    assert_eq!(offer.headers.get("X-Call-ID"), Some(call.as_str()));

    h.receive(&caller_bye(&caller_tag(&h, &call)), CALLER);
    let record = h.finished_record();
    assert_eq!(record.transfers[0].outcome, cdr::TransferOutcome::Queued);
    assert_eq!(record.transfers[0].sip_status, Some(408));
    assert_eq!(record.agent.as_deref(), Some("1001"));
}

const TRANSFER_RING: Duration = super::super::transfer::TRANSFER_RING_LIMIT;

#[test]
fn checkpoint_keeps_waiting_agent_dialog() {
    let mut h = Harness::new();
    let (_call, invite) = talking_with_two_agents(&mut h);
    h.receive(&refer_to(&invite, "1002"), AGENT_1);
    let legs = h
        .commands
        .iter()
        .rev()
        .find_map(|command| match command {
            Command::Checkpoint { legs, .. } => Some(legs.clone()),
            _ => None,
        })
        .expect("checkpoint after the REFER");
    let agent_call_id = invite.headers.call_id().unwrap();
    assert!(
        legs.dialogs.iter().any(|d| d.call_id == agent_call_id),
        "a crash still hangs up the transferring agent"
    );
    assert_eq!(legs.ringing.len(), 1, "and cancels the ringing target");
}

#[test]
fn caller_hangup_while_target_rings() {
    let mut h = Harness::new();
    let (call, invite) = talking_with_two_agents(&mut h);
    h.receive(&refer_to(&invite, "1002"), AGENT_1);
    let target_invite = invite_to(&mut h, AGENT_2);
    h.receive(&agent_response(&target_invite, 180, AGENT_2, None), AGENT_2);
    h.sent.clear();

    h.receive(&caller_bye(&caller_tag(&h, &call)), CALLER);
    assert!(
        h.requests_to(AGENT_2)
            .iter()
            .any(|r| r.method == Method::Cancel)
    );
    let to_agent_1 = h.requests_to(AGENT_1);
    assert_eq!(
        notifies(&to_agent_1),
        vec![("SIP/2.0 487 Request Terminated".to_owned(), true)]
    );
    assert!(to_agent_1.iter().any(|r| r.method == Method::Bye));
    let record = h.finished_record();
    assert_eq!(record.hangup_side, Some(cdr::HangupSide::Caller));
    assert_eq!(record.transfers[0].outcome, cdr::TransferOutcome::Abandoned);
    assert_ne!(
        h.core.acd.agent_state("1002"),
        Some(acd::AgentState::OnCall)
    );
    assert_ne!(
        h.core.acd.agent_state("1001"),
        Some(acd::AgentState::OnCall)
    );
}

/// Runs a call answered by 1002 at `AGENT_2`, with 1001 registered, and
/// returns the call and the INVITE 1002's phone answered.
fn answered_by_second_agent(h: &mut Harness) -> (String, Request) {
    assert_eq!(h.register("1002", "pw-two", AGENT_2).status, 200);
    h.caller_invite("5000", CALLER);
    let call = h.open_media();
    let invite = invite_to(h, AGENT_2);
    h.receive(
        &agent_response(&invite, 200, AGENT_2, Some(AGENT_2_SDP)),
        AGENT_2,
    );
    let ok = h
        .responses_to(CALLER)
        .into_iter()
        .find(|r| r.status == 200)
        .expect("caller gets 200");
    let to_tag = ok.headers.to().unwrap().tag().unwrap().to_owned();
    let ack = format!(
        "ACK sip:pbx@127.0.0.1:5060 SIP/2.0\r\nVia: SIP/2.0/UDP {CALLER};branch=z9hG4bK-ack1\r\n\
         Max-Forwards: 70\r\nFrom: \"Citizen\" <sip:+15550100@carrier.test>;tag=c1\r\n\
         To: <sip:5000@pbx.test>;tag={to_tag}\r\nCall-ID: caller-1@carrier.test\r\nCSeq: 1 ACK\r\n\
         Content-Length: 0\r\n\r\n"
    );
    h.receive(&ack, CALLER);
    assert_eq!(h.register("1001", "pw-one", AGENT_1).status, 200);
    h.advance(Duration::from_secs(5));
    (call, invite)
}

/// Has 1002 consult 1001 through the queue's DID, then send REFER with
/// Replaces on the call of `invite`. Returns the consultation's id, the
/// INVITE that 1001's phone answered, and the messages sent to 1002.
fn consult_and_refer(h: &mut Harness, invite: &Request) -> (String, Request, Vec<Message>) {
    consult_by_dialing(h, invite, "5000")
}

/// Does what [`consult_and_refer`] does, with 1002 dialing `dialed`: the
/// queue's DID or 1001's extension.
fn consult_by_dialing(
    h: &mut Harness,
    invite: &Request,
    dialed: &str,
) -> (String, Request, Vec<Message>) {
    let consult_invite = authenticated_extension_invite(h, dialed, "consult-1");
    h.receive(&consult_invite, AGENT_2);
    let consultation = h.open_media();
    let offer = invite_to(h, AGENT_1);
    h.receive(
        &agent_response(&offer, 200, AGENT_1, Some(AGENT_SDP)),
        AGENT_1,
    );
    let consult_ok = h
        .responses_to(AGENT_2)
        .into_iter()
        .find(|r| r.status == 200 && r.headers.call_id() == Some("consult-1"))
        .expect("the consultation is answered");
    let pbx_tag = consult_ok.headers.to().unwrap().tag().unwrap().to_owned();
    h.advance(Duration::from_secs(2));
    h.sent.clear();
    h.commands.clear();

    let refer = format!(
        "REFER sip:pbx@127.0.0.1:5060 SIP/2.0\r\nVia: SIP/2.0/UDP {AGENT_2};branch=z9hG4bK-aref\r\n\
         Max-Forwards: 70\r\nFrom: <sip:1002@pbx.test>;tag=agenttag\r\nTo: {}\r\nCall-ID: {}\r\n\
         CSeq: 3 REFER\r\nContact: <sip:agent@{AGENT_2}>\r\n\
         Refer-To: <sip:1001@pbx.test?Replaces=consult-1%3Bto-tag%3D{pbx_tag}%3Bfrom-tag%3Dx1>\r\n\
         Content-Length: 0\r\n\r\n",
        invite.headers.get("From").unwrap(),
        invite.headers.call_id().unwrap(),
    );
    h.receive(&refer, AGENT_2);
    let to_agent_2 = h.take_to(AGENT_2);
    (consultation, offer, to_agent_2)
}

#[test]
fn attended_transfer_joins_consultation() {
    let mut h = Harness::new();
    let (call, invite) = answered_by_second_agent(&mut h);

    let (consultation, offer, to_agent_2) = consult_and_refer(&mut h, &invite);
    let statuses: Vec<u16> = to_agent_2
        .iter()
        .filter_map(|m| match m {
            Message::Response(r) => Some(r.status),
            Message::Request(_) => None,
        })
        .collect();
    assert_eq!(statuses, vec![202]);
    let requests: Vec<Request> = to_agent_2
        .into_iter()
        .filter_map(|m| match m {
            Message::Request(r) => Some(r),
            Message::Response(_) => None,
        })
        .collect();
    assert_eq!(
        notifies(&requests),
        vec![
            ("SIP/2.0 100 Trying".to_owned(), false),
            ("SIP/2.0 200 OK".to_owned(), true)
        ]
    );
    let byes: Vec<&str> = requests
        .iter()
        .filter(|r| r.method == Method::Bye)
        .filter_map(|r| r.headers.call_id())
        .collect();
    assert!(
        byes.contains(&"consult-1"),
        "the consultation ends for 1002"
    );
    assert!(
        byes.contains(&invite.headers.call_id().unwrap()),
        "1002 leaves the first call"
    );
    let consultation_record = h.finished_record();
    assert_eq!(consultation_record.id, consultation);
    assert_eq!(consultation_record.agent.as_deref(), Some("1001"));

    // 1001's phone moves to the first call's relay.
    let reinvite = invite_to(&mut h, AGENT_1);
    assert_eq!(reinvite.headers.call_id(), offer.headers.call_id());
    let body = String::from_utf8(reinvite.body.to_vec()).unwrap();
    assert!(body.contains("m=audio 20002"), "{body}");
    let moved_sdp = AGENT_SDP.replace("42000", "42010");
    h.receive(
        &agent_response(&reinvite, 200, AGENT_1, Some(&moved_sdp)),
        AGENT_1,
    );
    assert!(
        h.requests_to(AGENT_1)
            .iter()
            .any(|r| r.method == Method::Ack)
    );
    assert!(h.commands.iter().any(|c| matches!(
        c,
        Command::SetRemote { call: c, side: Side::Agent, addr }
            if *c == call && *addr == "198.51.100.21:42010".parse().unwrap()
    )));

    h.advance(Duration::from_secs(3));
    h.receive(&caller_bye(&caller_tag(&h, &call)), CALLER);
    let bye = h
        .requests_to(AGENT_1)
        .into_iter()
        .find(|r| r.method == Method::Bye)
        .expect("BYE to the colleague");
    assert_eq!(bye.headers.call_id(), offer.headers.call_id());
    let record = h.finished_record();
    assert_eq!(record.id, call);
    assert_eq!(record.agent.as_deref(), Some("1002"));
    let transfer = &record.transfers[0];
    assert_eq!(transfer.target, "1001");
    assert_eq!(transfer.target_kind, cdr::TransferTarget::Consultation);
    assert_eq!(transfer.outcome, cdr::TransferOutcome::Connected);
    assert_eq!(transfer.answered_by.as_deref(), Some("1001"));
    assert_ne!(
        h.core.acd.agent_state("1001"),
        Some(acd::AgentState::OnCall)
    );
    assert_ne!(
        h.core.acd.agent_state("1002"),
        Some(acd::AgentState::OnCall)
    );
}

/// Answers `request` from the caller with `sdp` and a Contact.
fn caller_ok(request: &Request, sdp: &str) -> String {
    let mut ok = Response::for_request(request, 200, None);
    ok.headers
        .push("Contact", format!("<sip:+15550100@{CALLER}>"));
    ok.headers.push("Content-Type", "application/sdp");
    ok.body = bytes::Bytes::copy_from_slice(sdp.as_bytes());
    String::from_utf8(ok.to_bytes().to_vec()).unwrap()
}

#[test]
fn attended_transfer_resumes_held_caller() {
    let mut h = Harness::new();
    let (call, invite) = answered_by_second_agent(&mut h);
    // 1002 puts the caller on hold before it consults.
    let hold = "v=0\r\no=- 9 10 IN IP4 198.51.100.22\r\ns=-\r\nc=IN IP4 198.51.100.22\r\nt=0 0\r\n\
                m=audio 43000 RTP/AVP 0\r\na=sendonly\r\n";
    let reinvite = format!(
        "INVITE sip:pbx@127.0.0.1:5060 SIP/2.0\r\nVia: SIP/2.0/UDP {AGENT_2};branch=z9hG4bK-hold\r\n\
         Max-Forwards: 70\r\nFrom: <sip:1002@pbx.test>;tag=agenttag\r\nTo: {}\r\nCall-ID: {}\r\n\
         CSeq: 2 INVITE\r\nContact: <sip:agent@{AGENT_2}>\r\nContent-Type: application/sdp\r\n\
         Content-Length: {}\r\n\r\n{hold}",
        invite.headers.get("From").unwrap(),
        invite.headers.call_id().unwrap(),
        hold.len()
    );
    h.receive(&reinvite, AGENT_2);
    let relayed = invite_to(&mut h, CALLER);
    let held = "v=0\r\no=- 1 2 IN IP4 192.0.2.10\r\ns=-\r\nc=IN IP4 192.0.2.10\r\nt=0 0\r\n\
                m=audio 40000 RTP/AVP 0\r\na=recvonly\r\n";
    h.receive(&caller_ok(&relayed, held), CALLER);
    assert!(h.core.calls[&call].on_hold);

    let _ = consult_and_refer(&mut h, &invite);
    let moved = invite_to(&mut h, AGENT_1);
    h.receive(
        &agent_response(&moved, 200, AGENT_1, Some(AGENT_SDP)),
        AGENT_1,
    );
    let resume = invite_to(&mut h, CALLER);
    let body = String::from_utf8(resume.body.to_vec()).unwrap();
    assert!(body.contains("m=audio 20000"), "{body}");
    assert!(!body.contains("sendonly"), "{body}");
    assert!(!body.contains("inactive"), "{body}");
    let resumed = "v=0\r\no=- 1 3 IN IP4 192.0.2.10\r\ns=-\r\nc=IN IP4 192.0.2.10\r\nt=0 0\r\n\
                   m=audio 40000 RTP/AVP 0\r\n";
    h.receive(&caller_ok(&resume, resumed), CALLER);
    assert!(
        h.requests_to(CALLER)
            .iter()
            .any(|r| r.method == Method::Ack)
    );
    assert!(!h.core.calls[&call].on_hold, "the caller is off hold");
}

#[test]
fn blind_transfer_to_gruu_rings_one_phone() {
    const DESK: &str = "urn:uuid:00000000-0000-1000-8000-0000000000d1";
    const SOFTPHONE: &str = "urn:uuid:00000000-0000-1000-8000-0000000000d2";
    const SOFTPHONE_ADDRESS: &str = "198.51.100.23:5062";
    let mut h = Harness::new();
    let (_call, invite) = answered_call(&mut h);
    let desk = format!(";+sip.instance=\"<{DESK}>\"");
    let response = h.register_with_headers("1002", "pw-two", udp(AGENT_2), &desk, "");
    assert_eq!(response.status, 200);
    let softphone = format!(";+sip.instance=\"<{SOFTPHONE}>\"");
    let second = udp(SOFTPHONE_ADDRESS);
    let response = h.register_with_headers("1002", "pw-two", second, &softphone, "");
    assert_eq!(response.status, 200);
    h.advance(Duration::from_secs(5));
    h.sent.clear();
    h.commands.clear();

    let gruu = format!("1002@pbx.test;gr={SOFTPHONE}");
    let refer = agent_request(
        &invite,
        "REFER",
        2,
        &format!("Refer-To: <sip:{gruu}>\r\nReferred-By: <sip:1001@pbx.test>\r\n"),
    );
    h.receive(&refer, AGENT_1);
    let accepted = h.responses_to(AGENT_1);
    assert_eq!(accepted.first().map(|r| r.status), Some(202));

    let target_invite = invite_to(&mut h, SOFTPHONE_ADDRESS);
    assert_eq!(
        target_invite.uri.to_string(),
        format!("sip:1002@{SOFTPHONE_ADDRESS}")
    );
    let to_desk = h.requests_to(AGENT_2);
    assert!(
        to_desk.iter().all(|r| r.method != Method::Invite),
        "the agent's other phone rang too"
    );
}

#[test]
fn blind_transfer_to_unknown_gruu_fails() {
    let mut h = Harness::new();
    let (_call, invite) = talking_with_two_agents(&mut h);
    let refer = agent_request(
        &invite,
        "REFER",
        2,
        "Refer-To: <sip:1002@pbx.test;gr=urn:uuid:00000000-0000-1000-8000-0000000000ff>\r\n",
    );
    h.receive(&refer, AGENT_1);

    let to_agent_1 = h.requests_to(AGENT_1);
    let outcome = notifies(&to_agent_1);
    assert_eq!(
        outcome.last(),
        Some(&("SIP/2.0 480 Temporarily Unavailable".to_owned(), true))
    );
    assert!(
        h.requests_to(AGENT_2)
            .iter()
            .all(|r| r.method != Method::Invite),
        "a GRUU of no registered phone rang the agent's other phones"
    );
}

#[test]
fn attended_transfer_through_extension_call() {
    let mut h = Harness::new();
    let (call, invite) = answered_by_second_agent(&mut h);

    let (consultation, offer, to_agent_2) = consult_by_dialing(&mut h, &invite, "1001");
    let requests: Vec<Request> = to_agent_2
        .into_iter()
        .filter_map(|m| match m {
            Message::Request(r) => Some(r),
            Message::Response(_) => None,
        })
        .collect();
    assert_eq!(
        notifies(&requests),
        vec![
            ("SIP/2.0 100 Trying".to_owned(), false),
            ("SIP/2.0 200 OK".to_owned(), true)
        ]
    );
    let consultation_record = h.finished_record();
    assert_eq!(consultation_record.id, consultation);
    assert_eq!(consultation_record.direction, cdr::CallDirection::Internal);
    assert_eq!(consultation_record.agent.as_deref(), Some("1001"));
    assert_eq!(consultation_record.queue, None);
    // 1001 stays busy for the queues: its direct call moved to the first
    // call, which it now talks on.
    assert_eq!(
        h.core.acd.agent_status("1001").unwrap().call.as_deref(),
        Some(call.as_str())
    );
    assert_eq!(
        h.core.acd.agent_state("1001"),
        Some(acd::AgentState::OnCall)
    );

    let reinvite = invite_to(&mut h, AGENT_1);
    assert_eq!(reinvite.headers.call_id(), offer.headers.call_id());
    h.receive(
        &agent_response(&reinvite, 200, AGENT_1, Some(AGENT_SDP)),
        AGENT_1,
    );
    h.advance(Duration::from_secs(3));
    h.receive(&caller_bye(&caller_tag(&h, &call)), CALLER);
    let record = h.finished_record();
    assert_eq!(record.id, call);
    assert_eq!(record.direction, cdr::CallDirection::Inbound);
    assert_eq!(record.agent.as_deref(), Some("1002"));
    let transfer = &record.transfers[0];
    assert_eq!(transfer.target_kind, cdr::TransferTarget::Consultation);
    assert_eq!(transfer.outcome, cdr::TransferOutcome::Connected);
    assert_eq!(transfer.answered_by.as_deref(), Some("1001"));
    assert_eq!(
        h.core.acd.agent_state("1001"),
        Some(acd::AgentState::Available)
    );
}
