//! INVITEs without SDP from a trunk: the PBX offers in its 200 and takes
//! the answer from the ACK, for a caller connected to an agent and for a
//! caller answered to wait with music.

use super::waiting::waiting_config;
use super::*;

fn offerless_invite(h: &mut Harness) {
    let text = format!(
        "INVITE sip:5000@pbx.test SIP/2.0\r\nVia: SIP/2.0/UDP {CALLER};branch=z9hG4bK-inv1\r\n\
         Max-Forwards: 70\r\nFrom: \"Citizen\" <sip:+15550100@carrier.test>;tag=c1\r\n\
         To: <sip:5000@pbx.test>\r\nCall-ID: caller-1@carrier.test\r\nCSeq: 1 INVITE\r\n\
         Contact: <sip:+15550100@{CALLER}>\r\nContent-Length: 0\r\n\r\n"
    );
    h.receive(&text, CALLER);
}

/// Sends the caller's ACK to the 200 with `to_tag`, carrying `sdp` when given.
fn ack_with(h: &mut Harness, to_tag: &str, sdp: Option<&str>) {
    let (content_type, body) = match sdp {
        Some(sdp) => ("Content-Type: application/sdp\r\n", sdp),
        None => ("", ""),
    };
    let ack = format!(
        "ACK sip:pbx@127.0.0.1:5060 SIP/2.0\r\nVia: SIP/2.0/UDP {CALLER};branch=z9hG4bK-ack1\r\n\
         Max-Forwards: 70\r\nFrom: \"Citizen\" <sip:+15550100@carrier.test>;tag=c1\r\n\
         To: <sip:5000@pbx.test>;tag={to_tag}\r\nCall-ID: caller-1@carrier.test\r\nCSeq: 1 ACK\r\n\
         {content_type}Content-Length: {}\r\n\r\n{body}",
        body.len()
    );
    h.receive(&ack, CALLER);
}

const CALLER_ANSWER: &str = "v=0\r\no=- 5 5 IN IP4 192.0.2.10\r\ns=-\r\nc=IN IP4 192.0.2.10\r\n\
                             t=0 0\r\nm=audio 41000 RTP/AVP 8 101\r\n\
                             a=rtpmap:101 telephone-event/8000\r\n";

/// Takes the codec and remote-address commands for the caller's side.
fn caller_media_commands(h: &mut Harness) -> Vec<Command> {
    let (caller, rest) = std::mem::take(&mut h.commands)
        .into_iter()
        .partition(|command| {
            matches!(
                command,
                Command::SetCodecs {
                    side: Side::Caller,
                    ..
                } | Command::SetRemote {
                    side: Side::Caller,
                    ..
                }
            )
        });
    h.commands = rest;
    caller
}

/// Runs an offerless call up to the agent's 200. Returns the call id and
/// the 200 the caller got.
fn offerless_call_answered(h: &mut Harness) -> (String, Response) {
    assert_eq!(h.register("1001", "pw-one", AGENT_1).status, 200);
    offerless_invite(h);
    let call = h.open_media();
    let invite = h
        .requests_to(AGENT_1)
        .into_iter()
        .find(|r| r.method == Method::Invite)
        .expect("agent gets an INVITE");
    let offer = String::from_utf8(invite.body.to_vec()).unwrap();
    assert!(offer.contains("m=audio 20002 RTP/AVP 0 8 101"), "{offer}");
    h.receive(
        &agent_response(&invite, 200, AGENT_1, Some(AGENT_SDP)),
        AGENT_1,
    );
    let ok = h
        .responses_to(CALLER)
        .into_iter()
        .find(|r| r.status == 200)
        .expect("caller gets 200");
    (call, ok)
}

#[test]
fn offerless_caller_answers_in_ack() {
    let mut h = Harness::new();
    let (call, ok) = offerless_call_answered(&mut h);
    let offer = String::from_utf8(ok.body.to_vec()).unwrap();
    assert_eq!(ok.headers.get("Content-Type"), Some("application/sdp"));
    // The PBX's offer at the relay's caller port, not the agent's answer.
    assert!(offer.contains("m=audio 20000 RTP/AVP 0 8 101"), "{offer}");
    assert!(offer.contains("o=pbx "), "{offer}");
    assert!(!offer.contains("G722"), "{offer}");
    assert!(
        caller_media_commands(&mut h).is_empty(),
        "nothing is known of the caller before its ACK"
    );
    assert!(
        h.commands
            .iter()
            .any(|c| matches!(c, Command::StartRecording { .. }))
    );

    let tag = ok.headers.to().unwrap().tag().unwrap().to_owned();
    ack_with(&mut h, &tag, Some(CALLER_ANSWER));
    let commands = caller_media_commands(&mut h);
    assert!(commands.iter().any(|c| matches!(
        c,
        Command::SetRemote { side: Side::Caller, addr, .. }
            if *addr == "192.0.2.10:41000".parse::<SocketAddr>().unwrap()
    )));
    assert!(commands.iter().any(|c| matches!(
        c,
        Command::SetCodecs {
            side: Side::Caller,
            payload_type: 8,
            event_payload_type: Some(101),
            ..
        }
    )));

    h.receive(&caller_bye(&caller_tag(&h, &call)), CALLER);
    let record = h.finished_record();
    assert_eq!(record.disposition, cdr::Disposition::Answered);
    assert_eq!(record.hangup_side, Some(cdr::HangupSide::Caller));
    assert!(record.recording_path.is_some());
}

#[test]
fn offerless_ack_without_answer_ends_call() {
    let mut h = Harness::new();
    let (_, ok) = offerless_call_answered(&mut h);
    let tag = ok.headers.to().unwrap().tag().unwrap().to_owned();
    ack_with(&mut h, &tag, None);
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
    assert_eq!(record.disposition, cdr::Disposition::Failed);
    assert_eq!(record.hangup_side, Some(cdr::HangupSide::System));
    assert_eq!(h.core.active_calls(), 0);
}

#[test]
fn unoffered_codec_in_ack_ends_call() {
    let mut h = Harness::new();
    let (_, ok) = offerless_call_answered(&mut h);
    let tag = ok.headers.to().unwrap().tag().unwrap().to_owned();
    let g729 = "v=0\r\no=- 5 5 IN IP4 192.0.2.10\r\ns=-\r\nc=IN IP4 192.0.2.10\r\n\
                t=0 0\r\nm=audio 41000 RTP/AVP 18\r\n";
    ack_with(&mut h, &tag, Some(g729));
    assert!(
        h.requests_to(AGENT_1)
            .iter()
            .any(|r| r.method == Method::Bye)
    );
    assert_eq!(h.core.active_calls(), 0);
}

#[test]
fn offerless_waiting_caller_gets_offer() {
    let mut h = Harness::with_config(waiting_config());
    offerless_invite(&mut h);
    h.open_media();
    let ok = h
        .responses_to(CALLER)
        .into_iter()
        .find(|r| r.status == 200)
        .expect("caller answered for music");
    let offer = String::from_utf8(ok.body.to_vec()).unwrap();
    assert!(offer.contains("m=audio 20000 RTP/AVP 0 8 101"), "{offer}");
    assert!(caller_media_commands(&mut h).is_empty());

    let tag = ok.headers.to().unwrap().tag().unwrap().to_owned();
    ack_with(&mut h, &tag, Some(CALLER_ANSWER));
    let commands = caller_media_commands(&mut h);
    assert!(commands.iter().any(|c| matches!(
        c,
        Command::SetCodecs {
            side: Side::Caller,
            payload_type: 8,
            ..
        }
    )));
    assert_eq!(h.core.active_calls(), 1);
}

#[test]
fn offerless_183_carries_no_sdp() {
    let mut h = Harness::new();
    assert_eq!(h.register("1001", "pw-one", AGENT_1).status, 200);
    offerless_invite(&mut h);
    h.open_media();
    let invite = h
        .requests_to(AGENT_1)
        .into_iter()
        .find(|r| r.method == Method::Invite)
        .unwrap();
    h.receive(
        &agent_response(&invite, 183, AGENT_1, Some(AGENT_SDP)),
        AGENT_1,
    );
    let early: Vec<Response> = h
        .responses_to(CALLER)
        .into_iter()
        .filter(|r| (101..200).contains(&r.status))
        .collect();
    assert!(!early.is_empty());
    assert!(early.iter().all(|r| r.body.is_empty()));
}
