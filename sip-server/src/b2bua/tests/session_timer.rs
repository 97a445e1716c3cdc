//! Session timers (RFC 4028) on each leg: 422, refreshes the PBX sends,
//! refreshes it receives, and expiry.

use super::reliable::caller_invite_with;
use super::*;

/// Answers a call whose INVITE carries `extra` headers with the agent's
/// 200 carrying `agent_extra`. Returns the call id, the caller's 200 and
/// the agent's INVITE.
pub(super) fn answered_with(
    h: &mut Harness,
    extra: &str,
    agent_extra: &str,
) -> (String, Response, Request) {
    assert_eq!(h.register("1001", "pw-one", AGENT_1).status, 200);
    caller_invite_with(h, extra);
    let call = h.open_media();
    let invite = h
        .requests_to(AGENT_1)
        .into_iter()
        .find(|r| r.method == Method::Invite)
        .expect("agent gets the INVITE");
    let answer = agent_response(&invite, 200, AGENT_1, Some(AGENT_SDP)).replacen(
        "Content-Length",
        &format!("{agent_extra}Content-Length"),
        1,
    );
    h.receive(&answer, AGENT_1);
    let ok = h
        .responses_to(CALLER)
        .into_iter()
        .find(|r| r.status == 200)
        .expect("caller gets 200");
    let tag = ok.headers.to().unwrap().tag().unwrap().to_owned();
    let ack = format!(
        "ACK sip:pbx@127.0.0.1:5060 SIP/2.0\r\nVia: SIP/2.0/UDP {CALLER};branch=z9hG4bK-ack1\r\n\
         Max-Forwards: 70\r\nFrom: \"Citizen\" <sip:+15550100@carrier.test>;tag=c1\r\n\
         To: <sip:5000@pbx.test>;tag={tag}\r\nCall-ID: caller-1@carrier.test\r\nCSeq: 1 ACK\r\n\
         Content-Length: 0\r\n\r\n"
    );
    h.receive(&ack, CALLER);
    h.requests_to(AGENT_1);
    (call, ok, invite)
}

fn caller_update(tag: &str, cseq: u32, session_expires: &str) -> String {
    format!(
        "UPDATE sip:pbx@127.0.0.1:5060 SIP/2.0\r\nVia: SIP/2.0/UDP {CALLER};branch=z9hG4bK-upd{cseq}\r\n\
         Max-Forwards: 70\r\nFrom: \"Citizen\" <sip:+15550100@carrier.test>;tag=c1\r\n\
         To: <sip:5000@pbx.test>;tag={tag}\r\nCall-ID: caller-1@carrier.test\r\nCSeq: {cseq} UPDATE\r\n\
         Session-Expires: {session_expires}\r\nSupported: timer\r\nContent-Length: 0\r\n\r\n"
    )
}

/// Responds 200 to a request the PBX sent to `to`.
fn ok_from(h: &mut Harness, request: &Request, to: &str) {
    let ok = agent_response(request, 200, to, None);
    h.receive(&ok, to);
}

fn updates(requests: &[Request]) -> Vec<&Request> {
    requests
        .iter()
        .filter(|r| r.method == Method::Update)
        .collect()
}

#[test]
fn small_session_interval_gets_422() {
    let mut h = Harness::new();
    caller_invite_with(&mut h, "Supported: timer\r\nSession-Expires: 60\r\n");
    let responses = h.responses_to(CALLER);
    let statuses: Vec<u16> = responses.iter().map(|r| r.status).collect();
    assert_eq!(statuses, [422]);
    assert_eq!(responses[0].headers.get("Min-SE"), Some("90"));
    assert!(
        !h.commands
            .iter()
            .any(|c| matches!(c, Command::OpenMedia { .. }))
    );
}

#[test]
fn pbx_refreshes_caller_before_half_interval() {
    let mut h = Harness::new();
    let extra = "Supported: timer\r\nAllow: INVITE, ACK, BYE, CANCEL, UPDATE\r\n\
                 Session-Expires: 120\r\n";
    let (call, ok, _) = answered_with(&mut h, extra, "");
    assert_eq!(ok.headers.get("Session-Expires"), Some("120;refresher=uas"));
    assert_eq!(ok.headers.get("Require"), Some("timer"));
    // The agent's 200 named no session timer and no UPDATE: the PBX
    // refreshes that leg by re-INVITE at its own interval.
    let agent_session = h.core.calls[&call].agent_session.clone().unwrap();
    assert!(agent_session.pbx_refreshes);
    assert_eq!(agent_session.interval, Duration::from_secs(1800));

    h.advance(Duration::from_millis(59_999));
    assert!(updates(&h.requests_to(CALLER)).is_empty());
    h.advance(Duration::from_millis(1));
    let sent = h.requests_to(CALLER);
    let refresh = updates(&sent);
    assert_eq!(refresh.len(), 1);
    assert_eq!(
        refresh[0].headers.get("Session-Expires"),
        Some("120;refresher=uac")
    );
    assert!(refresh[0].body.is_empty());
    let refresh = refresh[0].clone();
    ok_from(&mut h, &refresh, CALLER);

    // The 200 to the refresh starts a new interval, so the next refresh
    // comes 60 s later and the call stays up.
    h.advance(Duration::from_secs(59));
    assert!(updates(&h.requests_to(CALLER)).is_empty());
    h.advance(Duration::from_secs(1));
    assert_eq!(updates(&h.requests_to(CALLER)).len(), 1);
    assert_eq!(h.core.active_calls(), 1);
    assert!(
        h.requests_to(AGENT_1)
            .iter()
            .all(|r| r.method != Method::Bye)
    );
}

#[test]
fn missed_refresh_ends_call() {
    let mut h = Harness::new();
    let extra = "Supported: timer\r\nSession-Expires: 90;refresher=uac\r\n";
    let (_, ok, _) = answered_with(&mut h, extra, "");
    assert_eq!(ok.headers.get("Session-Expires"), Some("90;refresher=uac"));

    // 90 s less a third: the call ends at 60 s.
    h.advance(Duration::from_millis(59_999));
    assert_eq!(h.core.active_calls(), 1);
    h.advance(Duration::from_millis(1));
    assert!(
        h.requests_to(CALLER)
            .iter()
            .any(|r| r.method == Method::Bye)
    );
    assert!(
        h.requests_to(AGENT_1)
            .iter()
            .any(|r| r.method == Method::Bye)
    );
    let record = h.finished_record();
    assert_eq!(record.disposition, cdr::Disposition::Answered);
    assert_eq!(record.hangup_side, Some(cdr::HangupSide::SessionExpired));
    assert_eq!(h.core.active_calls(), 0);
}

#[test]
fn update_refresh_restarts_interval() {
    let mut h = Harness::new();
    let extra = "Supported: timer\r\nSession-Expires: 90;refresher=uac\r\n";
    let (call, _, _) = answered_with(&mut h, extra, "");
    let tag = caller_tag(&h, &call);

    h.advance(Duration::from_secs(50));
    h.receive(&caller_update(&tag, 2, "90;refresher=uac"), CALLER);
    let responses = h.responses_to(CALLER);
    let ok = responses
        .iter()
        .find(|r| r.status == 200)
        .expect("200 to the UPDATE");
    assert_eq!(ok.headers.cseq().unwrap().method, Method::Update);
    assert_eq!(ok.headers.get("Session-Expires"), Some("90;refresher=uac"));
    assert_eq!(ok.headers.get("Require"), Some("timer"));
    // A refresh of the caller's leg alone is not relayed to the agent.
    assert!(updates(&h.requests_to(AGENT_1)).is_empty());

    h.advance(Duration::from_millis(59_999));
    assert_eq!(h.core.active_calls(), 1);
    h.advance(Duration::from_millis(1));
    assert_eq!(h.core.active_calls(), 0);
    let record = h.finished_record();
    assert_eq!(record.hangup_side, Some(cdr::HangupSide::SessionExpired));
}

#[test]
fn agent_leg_refreshed_from_its_2xx() {
    let mut h = Harness::new();
    let agent_extra = "Supported: timer\r\nSession-Expires: 90;refresher=uac\r\nRequire: timer\r\n";
    let (call, ok, _) = answered_with(&mut h, "", agent_extra);
    // The caller named no timer and no UPDATE: the PBX refreshes its leg
    // by re-INVITE at the configured interval.
    assert_eq!(
        ok.headers.get("Session-Expires"),
        Some("1800;refresher=uas")
    );
    assert!(h.core.calls[&call].caller_session.is_some());

    h.advance(Duration::from_millis(44_999));
    assert!(updates(&h.requests_to(AGENT_1)).is_empty());
    h.advance(Duration::from_millis(1));
    let sent = h.requests_to(AGENT_1);
    let refresh = updates(&sent);
    assert_eq!(refresh.len(), 1);
    assert_eq!(refresh[0].uri.to_string(), format!("sip:agent@{AGENT_1}"));
    assert_eq!(refresh[0].headers.cseq().unwrap().seq, 2);
    let refresh = refresh[0].clone();
    ok_from(&mut h, &refresh, AGENT_1);
    h.advance(Duration::from_secs(44));
    assert!(updates(&h.requests_to(AGENT_1)).is_empty());
    assert_eq!(h.core.active_calls(), 1);
}

#[test]
fn refresh_answered_481_ends_call() {
    let mut h = Harness::new();
    let agent_extra = "Supported: timer\r\nSession-Expires: 90\r\n";
    answered_with(&mut h, "", agent_extra);
    h.advance(Duration::from_secs(45));
    let sent = h.requests_to(AGENT_1);
    let refresh = updates(&sent)[0].clone();
    let no_dialog = agent_response(&refresh, 481, AGENT_1, None);
    h.receive(&no_dialog, AGENT_1);
    assert!(
        h.requests_to(CALLER)
            .iter()
            .any(|r| r.method == Method::Bye)
    );
    let record = h.finished_record();
    assert_eq!(record.hangup_side, Some(cdr::HangupSide::SessionExpired));
}

#[test]
fn reinvite_refreshes_caller_session() {
    let mut h = Harness::new();
    let extra = "Supported: timer\r\nSession-Expires: 90;refresher=uac\r\n";
    let (call, _, _) = answered_with(&mut h, extra, "");
    let tag = caller_tag(&h, &call);

    h.advance(Duration::from_secs(50));
    let sdp = "v=0\r\no=- 1 2 IN IP4 192.0.2.10\r\ns=-\r\nc=IN IP4 192.0.2.10\r\nt=0 0\r\n\
               m=audio 40000 RTP/AVP 0\r\na=sendonly\r\n";
    let reinvite = format!(
        "INVITE sip:pbx@127.0.0.1:5060 SIP/2.0\r\nVia: SIP/2.0/UDP {CALLER};branch=z9hG4bK-reinv\r\n\
         Max-Forwards: 70\r\nFrom: \"Citizen\" <sip:+15550100@carrier.test>;tag=c1\r\n\
         To: <sip:5000@pbx.test>;tag={tag}\r\nCall-ID: caller-1@carrier.test\r\nCSeq: 2 INVITE\r\n\
         Contact: <sip:+15550100@{CALLER}>\r\nSession-Expires: 90;refresher=uac\r\n\
         Supported: timer\r\nContent-Type: application/sdp\r\nContent-Length: {}\r\n\r\n{sdp}",
        sdp.len()
    );
    h.receive(&reinvite, CALLER);
    let relayed = h
        .requests_to(AGENT_1)
        .into_iter()
        .find(|r| r.method == Method::Invite)
        .expect("re-INVITE relayed to the agent");
    // The caller leg's session headers stay on the caller's leg.
    assert_eq!(relayed.headers.get("Session-Expires"), None);
    let answer = agent_response(&relayed, 200, AGENT_1, Some(AGENT_SDP));
    h.receive(&answer, AGENT_1);
    let responses = h.responses_to(CALLER);
    let ok = responses
        .iter()
        .find(|r| r.status == 200 && r.headers.cseq().unwrap().method == Method::Invite)
        .expect("200 to the re-INVITE");
    assert_eq!(ok.headers.get("Session-Expires"), Some("90;refresher=uac"));
    assert_eq!(ok.headers.get("Require"), Some("timer"));

    // The re-INVITE at 50 s moved the expiry from 60 s to 110 s.
    h.advance(Duration::from_millis(59_999));
    assert_eq!(h.core.active_calls(), 1);
    h.advance(Duration::from_millis(1));
    assert_eq!(h.core.active_calls(), 0);
}

#[test]
fn agent_422_retried_with_min_se() {
    let mut h = Harness::new();
    assert_eq!(h.register("1001", "pw-one", AGENT_1).status, 200);
    caller_invite_with(&mut h, "");
    h.open_media();
    let invite = h
        .requests_to(AGENT_1)
        .into_iter()
        .find(|r| r.method == Method::Invite)
        .expect("agent gets the INVITE");
    let too_small = agent_response(&invite, 422, AGENT_1, None).replacen(
        "Content-Length",
        "Min-SE: 3600\r\nContent-Length",
        1,
    );
    h.receive(&too_small, AGENT_1);

    let sent = h.requests_to(AGENT_1);
    let retries: Vec<&Request> = sent.iter().filter(|r| r.method == Method::Invite).collect();
    assert_eq!(retries.len(), 1);
    let retry = retries[0];
    assert_eq!(retry.headers.get("Session-Expires"), Some("3600"));
    assert_eq!(retry.headers.get("Min-SE"), Some("3600"));
    assert_eq!(retry.headers.cseq().unwrap().seq, 2);
    assert_eq!(retry.headers.call_id(), invite.headers.call_id());
    assert_ne!(retry.headers.get("Via"), invite.headers.get("Via"));
    assert!(
        sent.iter().any(|r| r.method == Method::Ack),
        "the 422 is acknowledged"
    );

    // The retried INVITE is the branch now: its answer connects the call.
    let answer = agent_response(retry, 200, AGENT_1, Some(AGENT_SDP));
    h.receive(&answer, AGENT_1);
    assert!(h.responses_to(CALLER).iter().any(|r| r.status == 200));

    // A second 422 that asks for no more than the retry had ends the branch.
    let mut h = Harness::new();
    assert_eq!(h.register("1001", "pw-one", AGENT_1).status, 200);
    caller_invite_with(&mut h, "");
    h.open_media();
    let invite = h
        .requests_to(AGENT_1)
        .into_iter()
        .find(|r| r.method == Method::Invite)
        .unwrap();
    let same = agent_response(&invite, 422, AGENT_1, None).replacen(
        "Content-Length",
        "Min-SE: 1800\r\nContent-Length",
        1,
    );
    h.receive(&same, AGENT_1);
    assert!(
        h.requests_to(AGENT_1)
            .iter()
            .all(|r| r.method != Method::Invite)
    );
}
