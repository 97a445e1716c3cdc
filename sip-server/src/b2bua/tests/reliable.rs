//! Reliable provisional responses (RFC 3262): the PBX PRACKs the agent's
//! reliable 18x and relays it reliably to a caller that supports 100rel.

use super::*;

const EARLY_SDP: &str = "v=0\r\no=- 7 7 IN IP4 198.51.100.21\r\ns=-\r\nc=IN IP4 198.51.100.21\r\n\
                         t=0 0\r\nm=audio 42000 RTP/AVP 0\r\n";

/// Sends the caller's INVITE with `extra` header lines.
pub(super) fn caller_invite_with(h: &mut Harness, extra: &str) {
    let sdp = "v=0\r\no=- 1 1 IN IP4 192.0.2.10\r\ns=-\r\nc=IN IP4 192.0.2.10\r\nt=0 0\r\n\
               m=audio 40000 RTP/AVP 0 8\r\n";
    let text = format!(
        "INVITE sip:5000@pbx.test SIP/2.0\r\nVia: SIP/2.0/UDP {CALLER};branch=z9hG4bK-inv1\r\n\
         Max-Forwards: 70\r\nFrom: \"Citizen\" <sip:+15550100@carrier.test>;tag=c1\r\n\
         To: <sip:5000@pbx.test>\r\nCall-ID: caller-1@carrier.test\r\nCSeq: 1 INVITE\r\n\
         Contact: <sip:+15550100@{CALLER}>\r\n{extra}Content-Type: application/sdp\r\n\
         Content-Length: {}\r\n\r\n{sdp}",
        sdp.len()
    );
    h.receive(&text, CALLER);
}

/// Builds the agent's response to `invite`, sent reliably with `rseq`.
fn reliable_response(invite: &Request, status: u16, rseq: u32, sdp: Option<&str>) -> String {
    agent_response(invite, status, AGENT_1, sdp).replacen(
        "Content-Length",
        &format!("Require: 100rel\r\nRSeq: {rseq}\r\nContent-Length"),
        1,
    )
}

fn caller_prack(to_tag: &str, rack: &str, branch: &str) -> String {
    format!(
        "PRACK sip:pbx@127.0.0.1:5060 SIP/2.0\r\nVia: SIP/2.0/UDP {CALLER};branch=z9hG4bK-{branch}\r\n\
         Max-Forwards: 70\r\nFrom: \"Citizen\" <sip:+15550100@carrier.test>;tag=c1\r\n\
         To: <sip:5000@pbx.test>;tag={to_tag}\r\nCall-ID: caller-1@carrier.test\r\nCSeq: 2 PRACK\r\n\
         RAck: {rack}\r\nContent-Length: 0\r\n\r\n"
    )
}

/// Registers agent 1, places a call with `extra` headers and returns the
/// call id and the INVITE the agent got. The caller's responses so far
/// are left unread.
fn ringing_call(h: &mut Harness, extra: &str) -> (String, Request) {
    assert_eq!(h.register("1001", "pw-one", AGENT_1).status, 200);
    caller_invite_with(h, extra);
    let call = h.open_media();
    let invite = h
        .requests_to(AGENT_1)
        .into_iter()
        .find(|r| r.method == Method::Invite)
        .expect("agent gets the INVITE");
    (call, invite)
}

fn rseq_of(response: &Response) -> Option<u32> {
    response.headers.get("RSeq").and_then(|v| v.parse().ok())
}

fn statuses(responses: &[Response]) -> Vec<u16> {
    responses.iter().map(|r| r.status).collect()
}

#[test]
fn agent_invite_offers_extensions() {
    let mut h = Harness::new();
    let (_, invite) = ringing_call(&mut h, "");
    assert_eq!(invite.headers.get("Supported"), Some("100rel, timer"));
    assert_eq!(invite.headers.get("Session-Expires"), Some("1800"));
    assert_eq!(invite.headers.get("Min-SE"), Some("90"));
    assert!(
        invite
            .headers
            .get("Allow")
            .is_some_and(|allow| allow.contains("PRACK"))
    );
}

#[test]
fn reliable_183_relayed_and_retransmitted_until_prack() {
    let mut h = Harness::new();
    let (call, invite) = ringing_call(&mut h, "Supported: 100rel\r\n");
    assert_eq!(statuses(&h.responses_to(CALLER)), [100, 180]);

    h.receive(
        &reliable_response(&invite, 183, 1, Some(EARLY_SDP)),
        AGENT_1,
    );
    let pracks = h.requests_to(AGENT_1);
    assert_eq!(pracks.len(), 1);
    let prack = &pracks[0];
    assert_eq!(prack.method, Method::Prack);
    assert_eq!(prack.headers.get("RAck"), Some("1 1 INVITE"));
    assert_eq!(prack.headers.cseq().unwrap().seq, 2);
    assert_eq!(prack.uri.to_string(), format!("sip:agent@{AGENT_1}"));
    assert_eq!(prack.headers.to().unwrap().tag(), Some("agenttag"));
    assert!(h.commands.iter().any(
        |c| matches!(c, Command::SetRemote { side: Side::Agent, addr, .. }
        if *addr == "198.51.100.21:42000".parse::<SocketAddr>().unwrap())
    ));

    let early = h.responses_to(CALLER);
    assert_eq!(statuses(&early), [183]);
    assert_eq!(early[0].headers.get("Require"), Some("100rel"));
    let rseq = rseq_of(&early[0]).expect("183 to the caller carries RSeq");
    let body = String::from_utf8(early[0].body.to_vec()).unwrap();
    assert!(body.contains("m=audio 20000 RTP/AVP 0"), "{body}");

    // Retransmitted after T1, then 2*T1 later.
    h.advance(Duration::from_millis(500));
    let again = h.responses_to(CALLER);
    assert_eq!(statuses(&again), [183]);
    assert_eq!(rseq_of(&again[0]), Some(rseq));
    h.advance(Duration::from_millis(999));
    assert!(h.responses_to(CALLER).is_empty());
    h.advance(Duration::from_millis(1));
    assert_eq!(statuses(&h.responses_to(CALLER)), [183]);

    // The agent's retransmission of the same RSeq is neither PRACKed anew
    // nor relayed.
    h.requests_to(AGENT_1);
    h.receive(
        &reliable_response(&invite, 183, 1, Some(EARLY_SDP)),
        AGENT_1,
    );
    assert!(
        h.requests_to(AGENT_1)
            .iter()
            .all(|r| r.method != Method::Prack)
    );
    assert!(h.responses_to(CALLER).is_empty());

    let tag = caller_tag(&h, &call);
    h.receive(
        &caller_prack(&tag, &format!("{rseq} 1 INVITE"), "pr1"),
        CALLER,
    );
    let ok = h.responses_to(CALLER);
    assert_eq!(statuses(&ok), [200]);
    assert_eq!(ok[0].headers.cseq().unwrap().method, Method::Prack);
    assert_eq!(ok[0].headers.to().unwrap().tag(), Some(tag.as_str()));
    h.advance(Duration::from_secs(20));
    assert!(h.responses_to(CALLER).iter().all(|r| r.status != 183));
}

#[test]
fn prack_matched_by_rack() {
    let mut h = Harness::new();
    let (call, invite) = ringing_call(&mut h, "Supported: 100rel\r\n");
    h.responses_to(CALLER);
    h.receive(
        &reliable_response(&invite, 183, 1, Some(EARLY_SDP)),
        AGENT_1,
    );
    let rseq = rseq_of(&h.responses_to(CALLER)[0]).unwrap();
    let tag = caller_tag(&h, &call);

    let wrong_rseq = format!("{} 1 INVITE", rseq.wrapping_add(5));
    h.receive(&caller_prack(&tag, &wrong_rseq, "pr1"), CALLER);
    assert_eq!(statuses(&h.responses_to(CALLER)), [481]);
    let wrong_cseq = format!("{rseq} 7 INVITE");
    h.receive(&caller_prack(&tag, &wrong_cseq, "pr2"), CALLER);
    assert_eq!(statuses(&h.responses_to(CALLER)), [481]);
    h.receive(&caller_prack(&tag, "garbage", "pr3"), CALLER);
    assert_eq!(statuses(&h.responses_to(CALLER)), [400]);
    h.receive(
        &caller_prack("othertag", &format!("{rseq} 1 INVITE"), "pr4"),
        CALLER,
    );
    assert_eq!(statuses(&h.responses_to(CALLER)), [481]);

    // Still unacknowledged, so still retransmitted.
    h.advance(Duration::from_millis(500));
    assert_eq!(statuses(&h.responses_to(CALLER)), [183]);

    h.receive(
        &caller_prack(&tag, &format!("{rseq} 1 INVITE"), "pr5"),
        CALLER,
    );
    assert_eq!(statuses(&h.responses_to(CALLER)), [200]);
    // A second PRACK for the same response matches nothing any more.
    h.receive(
        &caller_prack(&tag, &format!("{rseq} 1 INVITE"), "pr6"),
        CALLER,
    );
    assert_eq!(statuses(&h.responses_to(CALLER)), [481]);
}

#[test]
fn second_reliable_response_waits_for_prack() {
    let mut h = Harness::new();
    let (call, invite) = ringing_call(&mut h, "Require: 100rel\r\n");
    // A caller that requires 100rel gets the PBX's own 180 reliably.
    let first = h.responses_to(CALLER);
    assert_eq!(statuses(&first), [100, 180]);
    assert_eq!(first[1].headers.get("Require"), Some("100rel"));
    let first_rseq = rseq_of(&first[1]).expect("180 carries RSeq");

    h.receive(
        &reliable_response(&invite, 183, 1, Some(EARLY_SDP)),
        AGENT_1,
    );
    assert!(h.responses_to(CALLER).is_empty());

    let tag = caller_tag(&h, &call);
    h.receive(
        &caller_prack(&tag, &format!("{first_rseq} 1 INVITE"), "pr1"),
        CALLER,
    );
    let after = h.responses_to(CALLER);
    assert_eq!(statuses(&after), [200, 183]);
    assert_eq!(rseq_of(&after[1]), Some(first_rseq.wrapping_add(1)));
}

#[test]
fn answer_waits_for_prack_of_early_sdp() {
    let mut h = Harness::new();
    let (call, invite) = ringing_call(&mut h, "Supported: 100rel\r\n");
    h.responses_to(CALLER);
    h.receive(
        &reliable_response(&invite, 183, 1, Some(EARLY_SDP)),
        AGENT_1,
    );
    let rseq = rseq_of(&h.responses_to(CALLER)[0]).unwrap();
    h.requests_to(AGENT_1);

    h.receive(
        &agent_response(&invite, 200, AGENT_1, Some(AGENT_SDP)),
        AGENT_1,
    );
    assert!(
        h.responses_to(CALLER).is_empty(),
        "no 2xx before the PRACK of the 183 with SDP"
    );
    let tag = caller_tag(&h, &call);
    h.receive(
        &caller_prack(&tag, &format!("{rseq} 1 INVITE"), "pr1"),
        CALLER,
    );
    assert_eq!(statuses(&h.responses_to(CALLER)), [200, 200]);

    // The agent's dialog continues after the PRACK's CSeq 2.
    h.receive(
        &caller_bye(&tag).replace("CSeq: 2 BYE", "CSeq: 3 BYE"),
        CALLER,
    );
    let bye = h
        .requests_to(AGENT_1)
        .into_iter()
        .find(|r| r.method == Method::Bye)
        .expect("agent gets BYE");
    assert_eq!(bye.headers.cseq().unwrap().seq, 3);
    let record = h.finished_record();
    assert_eq!(record.disposition, cdr::Disposition::Answered);
}

#[test]
fn unreliable_agent_183_stays_unreliable() {
    let mut h = Harness::new();
    let (_, invite) = ringing_call(&mut h, "Supported: 100rel\r\n");
    h.responses_to(CALLER);
    h.receive(
        &agent_response(&invite, 183, AGENT_1, Some(EARLY_SDP)),
        AGENT_1,
    );
    let early = h.responses_to(CALLER);
    assert_eq!(statuses(&early), [183]);
    assert_eq!(early[0].headers.get("RSeq"), None);
    assert!(
        h.requests_to(AGENT_1)
            .iter()
            .all(|r| r.method != Method::Prack)
    );
}

#[test]
fn reliable_183_to_caller_without_100rel_is_plain() {
    let mut h = Harness::new();
    let (_, invite) = ringing_call(&mut h, "");
    h.responses_to(CALLER);
    h.receive(
        &reliable_response(&invite, 183, 1, Some(EARLY_SDP)),
        AGENT_1,
    );
    // The agent still gets its PRACK.
    assert!(
        h.requests_to(AGENT_1)
            .iter()
            .any(|r| r.method == Method::Prack)
    );
    let early = h.responses_to(CALLER);
    assert_eq!(statuses(&early), [183]);
    assert_eq!(early[0].headers.get("RSeq"), None);
    assert_eq!(early[0].headers.get("Require"), None);
}

#[test]
fn missing_prack_ends_call_with_504() {
    let mut h = Harness::new();
    ringing_call(&mut h, "Require: 100rel\r\n");
    assert_eq!(statuses(&h.responses_to(CALLER)), [100, 180]);
    h.advance(Duration::from_millis(31_999));
    // T1 doubling: 0.5, 1.5, 3.5, 7.5, 15.5 and 31.5 s after the first.
    let copies = h.responses_to(CALLER);
    assert_eq!(statuses(&copies), [180; 6]);
    h.advance(Duration::from_millis(1));
    let last = h.responses_to(CALLER);
    assert_eq!(statuses(&last), [504]);
    let record = h.finished_record();
    assert_eq!(record.disposition, cdr::Disposition::Failed);
    assert_eq!(record.sip_status, Some(504));
    // The caller's ACK of the 504 closes its transaction.
    let ack = format!(
        "ACK sip:5000@pbx.test SIP/2.0\r\nVia: SIP/2.0/UDP {CALLER};branch=z9hG4bK-inv1\r\n\
         Max-Forwards: 70\r\nFrom: \"Citizen\" <sip:+15550100@carrier.test>;tag=c1\r\n\
         To: {}\r\nCall-ID: caller-1@carrier.test\r\nCSeq: 1 ACK\r\nContent-Length: 0\r\n\r\n",
        last[0].headers.get("To").unwrap()
    );
    h.receive(&ack, CALLER);
    h.advance(Duration::from_secs(64));
    assert_eq!(h.core.active_calls(), 0);
    assert_eq!(h.core.transaction_count(), 0);
}

#[test]
fn duplicated_prack_gets_same_200() {
    let mut h = Harness::new();
    let (call, invite) = ringing_call(&mut h, "Supported: 100rel\r\n");
    h.responses_to(CALLER);
    h.receive(
        &reliable_response(&invite, 183, 1, Some(EARLY_SDP)),
        AGENT_1,
    );
    let rseq = rseq_of(&h.responses_to(CALLER)[0]).unwrap();
    let tag = caller_tag(&h, &call);
    let prack = caller_prack(&tag, &format!("{rseq} 1 INVITE"), "pr1");

    h.receive(&prack, CALLER);
    assert_eq!(statuses(&h.responses_to(CALLER)), [200]);
    // A copy the network duplicated has the same branch: the transaction
    // layer sends the 200 again instead of a 481.
    h.receive(&prack, CALLER);
    assert_eq!(statuses(&h.responses_to(CALLER)), [200]);
    h.advance(Duration::from_secs(5));
    assert!(h.responses_to(CALLER).iter().all(|r| r.status != 183));
}

#[test]
fn withdrawn_branch_gets_prack_and_cancel() {
    let mut h = Harness::new();
    let (_, invite) = ringing_call(&mut h, "Supported: 100rel\r\n");
    h.responses_to(CALLER);
    let cancel = format!(
        "CANCEL sip:5000@pbx.test SIP/2.0\r\nVia: SIP/2.0/UDP {CALLER};branch=z9hG4bK-inv1\r\n\
         Max-Forwards: 70\r\nFrom: \"Citizen\" <sip:+15550100@carrier.test>;tag=c1\r\n\
         To: <sip:5000@pbx.test>\r\nCall-ID: caller-1@carrier.test\r\nCSeq: 1 CANCEL\r\n\
         Content-Length: 0\r\n\r\n"
    );
    h.receive(&cancel, CALLER);
    // No provisional response from the agent yet, so no CANCEL either.
    assert!(h.requests_to(AGENT_1).is_empty());

    h.receive(
        &reliable_response(&invite, 183, 1, Some(EARLY_SDP)),
        AGENT_1,
    );
    let sent = h.requests_to(AGENT_1);
    let methods: Vec<&Method> = sent.iter().map(|r| &r.method).collect();
    assert_eq!(methods, [&Method::Prack, &Method::Cancel]);
    assert!(h.responses_to(CALLER).iter().all(|r| r.status != 183));
}
