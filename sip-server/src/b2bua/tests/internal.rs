//! Calls between agents' extensions: 1002's phone dials 1001, which rings
//! every contact of 1001, and the refusals before anything rings.

use super::*;

/// A second phone of agent 1001.
const AGENT_1_DESK: &str = "198.51.100.23:5062";

/// 1002's phone (at `AGENT_2`) dials `number` with digest credentials.
/// Returns every response it got.
fn dial(h: &mut Harness, number: &str, call_id: &str) -> Vec<Response> {
    let invite = authenticated_extension_invite(h, number, call_id);
    h.receive(&invite, AGENT_2);
    h.responses_to(AGENT_2)
}

fn invites_to(h: &mut Harness, to: &str) -> Vec<Request> {
    h.requests_to(to)
        .into_iter()
        .filter(|r| r.method == Method::Invite)
        .collect()
}

fn state(h: &Harness, agent: &str) -> Option<acd::AgentState> {
    h.core.acd.agent_state(agent)
}

/// A configuration whose queue has 30 s of wrap-up, which internal calls
/// must not start.
fn config_with_wrap_up() -> CoreConfig {
    let mut config = config();
    config.queues[0].wrap_up = Duration::from_secs(30);
    config
}

#[test]
fn extension_call_rings_all_contacts_and_records() {
    let mut h = Harness::with_config(config_with_wrap_up());
    assert_eq!(h.register("1001", "pw-one", AGENT_1).status, 200);
    assert_eq!(h.register("1001", "pw-one", AGENT_1_DESK).status, 200);

    let statuses: Vec<u16> = dial(&mut h, "1001", "int-1")
        .iter()
        .map(|r| r.status)
        .collect();
    assert_eq!(statuses, [100], "no relay ports yet");
    let call = h.open_media();
    let ringing: Vec<u16> = h.responses_to(AGENT_2).iter().map(|r| r.status).collect();
    assert_eq!(ringing, [180], "ringback while the contacts ring");
    assert_eq!(state(&h, "1001"), Some(acd::AgentState::OnCall));
    assert_eq!(state(&h, "1002"), Some(acd::AgentState::OnCall));

    let first = invites_to(&mut h, AGENT_1);
    let second = invites_to(&mut h, AGENT_1_DESK);
    assert_eq!(first.len(), 1, "one INVITE per contact");
    assert_eq!(second.len(), 1, "one INVITE per contact");
    assert_eq!(first[0].headers.get("X-Queue"), None);
    assert_eq!(first[0].headers.get("X-Call-ID"), Some(call.as_str()));
    let from = first[0].headers.from().unwrap();
    assert_eq!(from.uri.user.as_deref(), Some("1002"));

    // The desk phone answers first; the other contact is cancelled.
    h.receive(
        &agent_response(&second[0], 180, AGENT_1_DESK, None),
        AGENT_1_DESK,
    );
    h.receive(&agent_response(&first[0], 180, AGENT_1, None), AGENT_1);
    assert!(
        h.responses_to(AGENT_2).is_empty(),
        "the contacts' 180s are not repeated"
    );
    h.receive(
        &agent_response(&second[0], 200, AGENT_1_DESK, Some(AGENT_SDP)),
        AGENT_1_DESK,
    );
    let cancels: Vec<Request> = h
        .requests_to(AGENT_1)
        .into_iter()
        .filter(|r| r.method == Method::Cancel)
        .collect();
    assert_eq!(cancels.len(), 1, "the losing contact is cancelled");
    let answered = h
        .responses_to(AGENT_2)
        .into_iter()
        .find(|r| r.status == 200)
        .expect("the calling agent gets 200");
    let body = String::from_utf8(answered.body.to_vec()).unwrap();
    assert!(body.contains("m=audio 20000"), "{body}");
    let recording = h
        .commands
        .iter()
        .find(|c| matches!(c, Command::StartRecording { .. }));
    assert!(recording.is_some(), "the call is recorded");

    // A queue call meanwhile rings nobody: both agents are on this call.
    h.caller_invite("5000", CALLER);
    let queued = h.open_media();
    assert!(invites_to(&mut h, AGENT_1).is_empty());
    assert!(invites_to(&mut h, AGENT_1_DESK).is_empty());
    assert!(invites_to(&mut h, AGENT_2).is_empty());

    h.advance(Duration::from_secs(4));
    let to_tag = answered.headers.to().unwrap().tag().unwrap().to_owned();
    let bye = format!(
        "BYE sip:pbx@127.0.0.1:5060 SIP/2.0\r\nVia: SIP/2.0/UDP {AGENT_2};branch=z9hG4bK-intbye\r\n\
         Max-Forwards: 70\r\nFrom: <sip:1002@pbx.test>;tag=x1\r\nTo: <sip:1001@pbx.test>;tag={to_tag}\r\n\
         Call-ID: int-1\r\nCSeq: 2 BYE\r\nContent-Length: 0\r\n\r\n"
    );
    h.receive(&bye, AGENT_2);
    let byes = h
        .requests_to(AGENT_1_DESK)
        .into_iter()
        .filter(|r| r.method == Method::Bye)
        .count();
    assert_eq!(byes, 1, "the called agent is hung up");

    let record = h.finished_record();
    assert_eq!(record.id, call);
    assert_eq!(record.direction, cdr::CallDirection::Internal);
    assert_eq!(record.source_extension.as_deref(), Some("1002"));
    assert_eq!(record.agent.as_deref(), Some("1001"));
    assert_eq!(record.dialed, "1001");
    assert_eq!(record.queue, None);
    assert_eq!(record.trunk, None);
    assert_eq!(record.disposition, cdr::Disposition::Answered);
    assert_eq!(record.hangup_side, Some(cdr::HangupSide::Caller));
    assert_eq!(record.talk_seconds, 4.0);
    assert!(record.recording_path.is_some());

    // Neither agent goes to wrap-up, so the waiting queue call rings one
    // of them at once.
    assert_ne!(state(&h, "1001"), Some(acd::AgentState::WrapUp));
    assert_ne!(state(&h, "1002"), Some(acd::AgentState::WrapUp));
    let offered = h.core.calls[&queued].attempts.len();
    assert_eq!(
        offered, 1,
        "the queue call is offered after the internal call"
    );
}

#[test]
fn extension_call_refusals() {
    let mut h = Harness::new();
    assert_eq!(h.register("1002", "pw-two", AGENT_2).status, 200);

    // Without credentials the phone is challenged.
    h.receive(
        &extension_invite("1001", "int-407", "", "z9hG4bK-int407"),
        AGENT_2,
    );
    let statuses: Vec<u16> = h.responses_to(AGENT_2).iter().map(|r| r.status).collect();
    assert_eq!(statuses, [407]);

    let cases = [
        ("1999", "int-404", 404),
        ("1001", "int-480", 480),
        ("1002", "int-403", 403),
    ];
    for (number, call_id, expected) in cases {
        let statuses: Vec<u16> = dial(&mut h, number, call_id)
            .iter()
            .map(|r| r.status)
            .collect();
        assert_eq!(statuses, [expected], "dialing {number}");
        let record = h.finished_record();
        assert_eq!(record.sip_status, Some(expected), "dialing {number}");
        assert_eq!(record.source_extension.as_deref(), Some("1002"));
    }
    assert_eq!(state(&h, "1002"), Some(acd::AgentState::Available));

    // 1001 is on another call: busy.
    assert_eq!(h.register("1001", "pw-one", AGENT_1).status, 200);
    assert!(h.core.acd.direct_call_started("1001", "other-call", h.now));
    let statuses: Vec<u16> = dial(&mut h, "1001", "int-486")
        .iter()
        .map(|r| r.status)
        .collect();
    assert_eq!(statuses, [486]);
    let record = h.finished_record();
    assert_eq!(record.direction, cdr::CallDirection::Internal);
    assert_eq!(record.disposition, cdr::Disposition::Failed);
    assert!(invites_to(&mut h, AGENT_1).is_empty());
    assert_eq!(
        state(&h, "1002"),
        Some(acd::AgentState::Available),
        "a refused call leaves the caller free"
    );
}

#[test]
fn unanswered_extension_call_frees_both_agents() {
    let mut h = Harness::new();
    assert_eq!(h.register("1001", "pw-one", AGENT_1).status, 200);
    assert_eq!(h.register("1002", "pw-two", AGENT_2).status, 200);
    dial(&mut h, "1001", "int-busy");
    let call = h.open_media();
    let invite = invites_to(&mut h, AGENT_1).pop().expect("INVITE to 1001");
    h.receive(&agent_response(&invite, 486, AGENT_1, None), AGENT_1);
    let statuses: Vec<u16> = h.responses_to(AGENT_2).iter().map(|r| r.status).collect();
    assert_eq!(statuses, [180, 486], "the phone's busy reaches the caller");
    let record = h.finished_record();
    assert_eq!(record.id, call);
    assert_eq!(record.disposition, cdr::Disposition::NoAgent);
    assert_eq!(record.agent, None);
    assert_eq!(state(&h, "1001"), Some(acd::AgentState::Available));
    assert_eq!(state(&h, "1002"), Some(acd::AgentState::Available));

    // Nobody answers the next one: it rings out with 480.
    dial(&mut h, "1001", "int-ring-out");
    h.open_media();
    let invite = invites_to(&mut h, AGENT_1).pop().expect("INVITE to 1001");
    h.receive(&agent_response(&invite, 180, AGENT_1, None), AGENT_1);
    h.advance(Duration::from_secs(46));
    let statuses: Vec<u16> = h.responses_to(AGENT_2).iter().map(|r| r.status).collect();
    assert!(statuses.contains(&480), "{statuses:?}");
    assert_eq!(state(&h, "1001"), Some(acd::AgentState::Available));
    assert_eq!(state(&h, "1002"), Some(acd::AgentState::Available));
}

/// Builds an INVITE from a trunk's address to `number`, claiming to come
/// from `from`, without credentials, as a scanner sends it.
fn scan_invite(number: &str, from: &str, call_id: &str) -> String {
    format!(
        "INVITE sip:{number}@pbx.test SIP/2.0\r\nVia: SIP/2.0/UDP 192.0.2.50:5060;branch=z9hG4bK-{call_id}\r\n\
         Max-Forwards: 70\r\nFrom: <sip:{from}@pbx.test>;tag=s1\r\nTo: <sip:{number}@pbx.test>\r\n\
         Call-ID: {call_id}\r\nCSeq: 1 INVITE\r\nContact: <sip:{from}@192.0.2.50:5060>\r\n\
         Content-Length: 0\r\n\r\n"
    )
}

#[test]
fn scan_from_trunk_address_cannot_tell_agents() {
    let mut h = Harness::new();
    assert_eq!(h.register("1001", "pw-one", AGENT_1).status, 200);
    let mut statuses = Vec::new();
    for (number, call_id) in [("1001", "scan-agent"), ("1009", "scan-other")] {
        h.receive(&scan_invite(number, number, call_id), "192.0.2.50:5060");
        let final_status = h
            .responses_to("192.0.2.50:5060")
            .into_iter()
            .map(|r| r.status)
            .find(|status| *status >= 200);
        statuses.push(final_status);
    }
    assert_eq!(statuses[0], statuses[1], "an agent id answered differently");
    assert_ne!(statuses[0], Some(407));
}
