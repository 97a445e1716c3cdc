//! Session refreshes by re-INVITE (RFC 4028) for peers that take no
//! UPDATE: the repeated SDP, 491 glare with the backoff of RFC 3261
//! section 14.1, 422, a refresh that fails, and refreshes that wait for a
//! hold re-INVITE or make one wait.

use super::session_timer::answered_with;
use super::*;

/// A caller that supports timers, lets the PBX refresh every 90 s and
/// allows no UPDATE.
const CALLER_WITHOUT_UPDATE: &str = "Supported: timer\r\nAllow: INVITE, ACK, BYE, CANCEL\r\n\
                                     Session-Expires: 90;refresher=uas\r\n";

const CALLER_SDP: &str = "v=0\r\no=- 1 1 IN IP4 192.0.2.10\r\ns=-\r\nc=IN IP4 192.0.2.10\r\n\
                          t=0 0\r\nm=audio 40000 RTP/AVP 0\r\n";

/// Re-INVITEs among `requests`, without the retransmissions over UDP.
fn invites(requests: &[Request]) -> Vec<Request> {
    let mut seen = std::collections::HashSet::new();
    requests
        .iter()
        .filter(|r| r.method == Method::Invite)
        .filter(|r| {
            seen.insert((
                r.headers.call_id().map(str::to_owned),
                r.headers.cseq().ok().map(|c| c.seq),
            ))
        })
        .cloned()
        .collect()
}

/// An agent that takes no UPDATE and names no session timer.
const AGENT_WITHOUT_UPDATE: &str = "Allow: INVITE, ACK, BYE, CANCEL\r\n";

/// Responds to `request` from `to` with `status`, with SDP on a 2xx.
fn respond(h: &mut Harness, request: &Request, status: u16, to: &str, extra: &str) {
    let sdp = (200..300).contains(&status).then_some(CALLER_SDP);
    let text = agent_response(request, status, to, sdp).replacen(
        "Content-Length",
        &format!("{extra}Content-Length"),
        1,
    );
    h.receive(&text, to);
}

/// Builds a hold re-INVITE from the agent of the call that `invite` set up.
fn agent_hold(invite: &Request, cseq: u32) -> String {
    let hold = "v=0\r\no=- 7 8 IN IP4 198.51.100.21\r\ns=-\r\nc=IN IP4 198.51.100.21\r\nt=0 0\r\n\
                m=audio 42000 RTP/AVP 0\r\na=sendonly\r\n";
    format!(
        "INVITE sip:pbx@127.0.0.1:5060 SIP/2.0\r\nVia: SIP/2.0/UDP {AGENT_1};branch=z9hG4bK-hold{cseq}\r\n\
         Max-Forwards: 70\r\nFrom: <sip:1001@pbx.test>;tag=agenttag\r\nTo: {}\r\nCall-ID: {}\r\n\
         CSeq: {cseq} INVITE\r\nContact: <sip:agent@{AGENT_1}>\r\nContent-Type: application/sdp\r\n\
         Content-Length: {}\r\n\r\n{hold}",
        invite.headers.get("From").unwrap(),
        invite.headers.call_id().unwrap(),
        hold.len()
    )
}

fn short_timer_config() -> CoreConfig {
    CoreConfig {
        session_timer: SessionTimerConfig {
            interval: Duration::from_secs(90),
            min_interval: Duration::from_secs(90),
        },
        ..config()
    }
}

#[test]
fn caller_refresh_repeats_its_sdp() {
    let mut h = Harness::new();
    let (call, ok, _) = answered_with(&mut h, CALLER_WITHOUT_UPDATE, "");
    assert_eq!(ok.headers.get("Session-Expires"), Some("90;refresher=uas"));

    h.advance(Duration::from_millis(44_999));
    assert!(invites(&h.requests_to(CALLER)).is_empty());
    h.advance(Duration::from_millis(1));
    let sent = h.requests_to(CALLER);
    assert!(sent.iter().all(|r| r.method != Method::Update));
    let refresh = invites(&sent);
    assert_eq!(refresh.len(), 1);
    let refresh = refresh[0].clone();
    assert_eq!(
        refresh.headers.get("Session-Expires"),
        Some("90;refresher=uac")
    );
    assert_eq!(refresh.headers.get("Content-Type"), Some("application/sdp"));
    assert_eq!(refresh.headers.cseq().unwrap().seq, 2);
    assert_eq!(refresh.headers.call_id(), Some("caller-1@carrier.test"));
    // The session did not change, so the SDP is the 200's, o= version too.
    assert_eq!(refresh.body, ok.body);

    respond(&mut h, &refresh, 200, CALLER, "");
    let acks: Vec<Request> = h
        .requests_to(CALLER)
        .into_iter()
        .filter(|r| r.method == Method::Ack)
        .collect();
    assert_eq!(acks.len(), 1);
    assert_eq!(acks[0].headers.cseq().unwrap().seq, 2);

    // The next interval starts at the 200.
    h.advance(Duration::from_millis(44_999));
    assert!(invites(&h.requests_to(CALLER)).is_empty());
    h.advance(Duration::from_millis(1));
    let second = invites(&h.requests_to(CALLER));
    assert_eq!(second.len(), 1);
    assert_eq!(second[0].headers.cseq().unwrap().seq, 3);
    assert_eq!(second[0].body, ok.body);
    assert_eq!(h.core.active_calls(), 1);
    assert!(h.core.calls[&call].caller_session.is_some());
}

#[test]
fn agent_refresh_repeats_its_offer() {
    let mut h = Harness::with_config(short_timer_config());
    let (call, _, invite) = answered_with(&mut h, "", AGENT_WITHOUT_UPDATE);
    let session = h.core.calls[&call]
        .agent_session
        .clone()
        .expect("agent leg timer");
    assert!(session.pbx_refreshes);
    assert_eq!(session.interval, Duration::from_secs(90));

    h.advance(Duration::from_secs(45));
    let refresh = invites(&h.requests_to(AGENT_1));
    assert_eq!(refresh.len(), 1);
    assert_eq!(refresh[0].headers.call_id(), invite.headers.call_id());
    assert_eq!(refresh[0].headers.cseq().unwrap().seq, 2);
    assert_eq!(refresh[0].body, invite.body);
    assert_eq!(
        refresh[0].headers.get("Session-Expires"),
        Some("90;refresher=uac")
    );
}

#[test]
fn update_405_turns_to_reinvite() {
    let mut h = Harness::new();
    let extra = "Supported: timer\r\nAllow: INVITE, ACK, BYE, UPDATE\r\n\
                 Session-Expires: 90;refresher=uas\r\n";
    answered_with(&mut h, extra, "");
    h.advance(Duration::from_secs(45));
    let sent = h.requests_to(CALLER);
    let update = sent
        .iter()
        .find(|r| r.method == Method::Update)
        .expect("UPDATE refresh")
        .clone();
    respond(&mut h, &update, 405, CALLER, "Allow: INVITE, ACK, BYE\r\n");
    let refresh = invites(&h.requests_to(CALLER));
    assert_eq!(refresh.len(), 1, "re-INVITE at once after the 405");
    assert!(!refresh[0].body.is_empty());
    respond(&mut h, &refresh[0], 200, CALLER, "");

    // Later refreshes skip the UPDATE.
    h.advance(Duration::from_secs(45));
    let sent = h.requests_to(CALLER);
    assert!(sent.iter().all(|r| r.method != Method::Update));
    assert_eq!(invites(&sent).len(), 1);
}

#[test]
fn glare_backoff_follows_call_id_owner() {
    // The caller generated its Call-ID: the PBX waits 0 to 2 s.
    let mut h = Harness::new();
    answered_with(&mut h, CALLER_WITHOUT_UPDATE, "");
    h.advance(Duration::from_secs(45));
    let refresh = invites(&h.requests_to(CALLER));
    respond(&mut h, &refresh[0], 491, CALLER, "");
    let sent = h.requests_to(CALLER);
    assert!(sent.iter().any(|r| r.method == Method::Ack), "491 is ACKed");
    h.advance(Duration::from_secs(2));
    let retry = invites(&h.requests_to(CALLER));
    assert_eq!(retry.len(), 1);
    assert_eq!(retry[0].headers.cseq().unwrap().seq, 3);

    // The PBX generated the agent leg's Call-ID: it waits 2.1 to 4 s.
    let mut h = Harness::with_config(short_timer_config());
    answered_with(&mut h, "", AGENT_WITHOUT_UPDATE);
    h.advance(Duration::from_secs(45));
    let refresh = invites(&h.requests_to(AGENT_1));
    respond(&mut h, &refresh[0], 491, AGENT_1, "");
    h.advance(Duration::from_millis(2_099));
    assert!(invites(&h.requests_to(AGENT_1)).is_empty());
    h.advance(Duration::from_millis(1_901));
    assert_eq!(invites(&h.requests_to(AGENT_1)).len(), 1);
    assert_eq!(h.core.active_calls(), 1);
}

#[test]
fn refresh_422_retries_with_min_se() {
    let mut h = Harness::new();
    answered_with(&mut h, CALLER_WITHOUT_UPDATE, "");
    h.advance(Duration::from_secs(45));
    let refresh = invites(&h.requests_to(CALLER));
    respond(&mut h, &refresh[0], 422, CALLER, "Min-SE: 180\r\n");
    let retry = invites(&h.requests_to(CALLER));
    assert_eq!(retry.len(), 1);
    assert_eq!(
        retry[0].headers.get("Session-Expires"),
        Some("180;refresher=uac")
    );
    respond(&mut h, &retry[0], 200, CALLER, "");
    h.advance(Duration::from_millis(89_999));
    assert!(invites(&h.requests_to(CALLER)).is_empty());
    h.advance(Duration::from_millis(1));
    assert_eq!(invites(&h.requests_to(CALLER)).len(), 1);
}

#[test]
fn failed_refresh_ends_both_legs() {
    for status in [408, 481] {
        let mut h = Harness::new();
        answered_with(&mut h, CALLER_WITHOUT_UPDATE, "");
        h.advance(Duration::from_secs(45));
        let refresh = invites(&h.requests_to(CALLER));
        respond(&mut h, &refresh[0], status, CALLER, "");
        assert!(
            h.requests_to(AGENT_1)
                .iter()
                .any(|r| r.method == Method::Bye),
            "agent gets BYE after {status}"
        );
        assert!(
            h.requests_to(CALLER)
                .iter()
                .any(|r| r.method == Method::Bye),
            "caller gets BYE after {status}"
        );
        let record = h.finished_record();
        assert_eq!(record.disposition, cdr::Disposition::Answered);
        assert_eq!(record.hangup_side, Some(cdr::HangupSide::SessionExpired));
        assert_eq!(record.sip_status, Some(status));
        assert_eq!(h.core.active_calls(), 0);
    }
}

#[test]
fn unanswered_refresh_ends_at_timer_b() {
    let mut h = Harness::new();
    answered_with(&mut h, CALLER_WITHOUT_UPDATE, "");
    h.advance(Duration::from_secs(45));
    assert_eq!(invites(&h.requests_to(CALLER)).len(), 1);
    // Timer B is 64 T1, 32 s.
    h.advance(Duration::from_secs(32));
    assert!(
        h.requests_to(AGENT_1)
            .iter()
            .any(|r| r.method == Method::Bye)
    );
    let record = h.finished_record();
    assert_eq!(record.hangup_side, Some(cdr::HangupSide::SessionExpired));
    assert_eq!(record.sip_status, Some(408));
}

#[test]
fn hold_in_progress_postpones_refresh() {
    let mut h = Harness::new();
    let (_, _, invite) = answered_with(&mut h, CALLER_WITHOUT_UPDATE, "");
    h.advance(Duration::from_secs(44));
    h.receive(&agent_hold(&invite, 2), AGENT_1);
    let relayed = invites(&h.requests_to(CALLER));
    assert_eq!(relayed.len(), 1);
    assert!(String::from_utf8_lossy(&relayed[0].body).contains("a=sendonly"));

    // The refresh falls due while the caller has not answered the hold;
    // only the hold's retransmissions go out.
    h.advance(Duration::from_secs(3));
    let hold_seq = relayed[0].headers.cseq().unwrap().seq;
    assert!(
        invites(&h.requests_to(CALLER))
            .iter()
            .all(|r| r.headers.cseq().unwrap().seq == hold_seq)
    );
    respond(&mut h, &relayed[0], 200, CALLER, "");
    assert!(h.responses_to(AGENT_1).iter().any(|r| r.status == 200));

    // The hold refreshed the caller's leg at 47 s: next refresh at 92 s.
    h.advance(Duration::from_millis(44_999));
    assert!(invites(&h.requests_to(CALLER)).is_empty());
    h.advance(Duration::from_millis(1));
    let refresh = invites(&h.requests_to(CALLER));
    assert_eq!(refresh.len(), 1);
    // The refresh repeats the hold the caller last accepted.
    assert!(String::from_utf8_lossy(&refresh[0].body).contains("a=sendonly"));
    assert_eq!(h.core.active_calls(), 1);
}

#[test]
fn hold_during_refresh_waits() {
    let mut h = Harness::new();
    let (_, _, invite) = answered_with(&mut h, CALLER_WITHOUT_UPDATE, "");
    h.advance(Duration::from_secs(45));
    let refresh = invites(&h.requests_to(CALLER));
    assert_eq!(refresh.len(), 1);

    h.receive(&agent_hold(&invite, 2), AGENT_1);
    assert!(
        invites(&h.requests_to(CALLER)).is_empty(),
        "the hold waits for the refresh"
    );
    assert!(h.responses_to(AGENT_1).iter().all(|r| r.status < 200));

    respond(&mut h, &refresh[0], 200, CALLER, "");
    let sent = h.requests_to(CALLER);
    assert!(sent.iter().any(|r| r.method == Method::Ack));
    let relayed = invites(&sent);
    assert_eq!(relayed.len(), 1, "the hold goes out after the refresh");
    assert!(String::from_utf8_lossy(&relayed[0].body).contains("a=sendonly"));
    respond(&mut h, &relayed[0], 200, CALLER, "");
    assert!(h.responses_to(AGENT_1).iter().any(|r| r.status == 200));
}

#[test]
fn crossing_caller_reinvite_gets_491() {
    let mut h = Harness::new();
    let (call, _, _) = answered_with(&mut h, CALLER_WITHOUT_UPDATE, "");
    let tag = caller_tag(&h, &call);
    h.advance(Duration::from_secs(45));
    assert_eq!(invites(&h.requests_to(CALLER)).len(), 1);
    let reinvite = format!(
        "INVITE sip:pbx@127.0.0.1:5060 SIP/2.0\r\nVia: SIP/2.0/UDP {CALLER};branch=z9hG4bK-glare\r\n\
         Max-Forwards: 70\r\nFrom: \"Citizen\" <sip:+15550100@carrier.test>;tag=c1\r\n\
         To: <sip:5000@pbx.test>;tag={tag}\r\nCall-ID: caller-1@carrier.test\r\nCSeq: 2 INVITE\r\n\
         Contact: <sip:+15550100@{CALLER}>\r\nContent-Type: application/sdp\r\n\
         Content-Length: {}\r\n\r\n{CALLER_SDP}",
        CALLER_SDP.len()
    );
    h.receive(&reinvite, CALLER);
    let statuses: Vec<u16> = h.responses_to(CALLER).iter().map(|r| r.status).collect();
    assert_eq!(statuses, [491]);
    assert!(invites(&h.requests_to(AGENT_1)).is_empty());
}

#[test]
fn ringing_transfer_postpones_refresh() {
    let mut h = Harness::new();
    let (_, _, invite) = answered_with(&mut h, CALLER_WITHOUT_UPDATE, "");
    assert_eq!(h.register("1002", "pw-two", AGENT_2).status, 200);
    h.advance(Duration::from_secs(40));
    let refer = format!(
        "REFER sip:pbx@127.0.0.1:5060 SIP/2.0\r\nVia: SIP/2.0/UDP {AGENT_1};branch=z9hG4bK-refer2\r\n\
         Max-Forwards: 70\r\nFrom: <sip:1001@pbx.test>;tag=agenttag\r\nTo: {}\r\nCall-ID: {}\r\n\
         CSeq: 2 REFER\r\nContact: <sip:agent@{AGENT_1}>\r\nRefer-To: <sip:1002@pbx.test>\r\n\
         Content-Length: 0\r\n\r\n",
        invite.headers.get("From").unwrap(),
        invite.headers.call_id().unwrap(),
    );
    h.receive(&refer, AGENT_1);
    assert!(h.responses_to(AGENT_1).iter().any(|r| r.status == 202));

    // The refresh falls due at 45 s while 1002 rings.
    h.advance(Duration::from_secs(10));
    assert!(invites(&h.requests_to(CALLER)).is_empty());
    let target = invites(&h.requests_to(AGENT_2));
    assert_eq!(target.len(), 1);
    let answer = agent_response(&target[0], 200, AGENT_2, Some(AGENT_SDP));
    h.receive(&answer, AGENT_2);

    // Once the transfer is done the postponed refresh goes out.
    h.advance(Duration::from_secs(2));
    let refresh = invites(&h.requests_to(CALLER));
    assert_eq!(refresh.len(), 1);
    assert_eq!(
        refresh[0].headers.get("Session-Expires"),
        Some("90;refresher=uac")
    );
    assert_eq!(h.core.active_calls(), 1);
}
