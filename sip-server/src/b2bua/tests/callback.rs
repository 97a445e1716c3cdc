//! Callback requests: the caller's key, its confirmation and hang-up, then
//! the call the PBX places to return the request (agent first, then the
//! citizen through the trunk) with its own CDR.

use std::path::PathBuf;

use super::waiting::{prompt, take_playback, waiting_caller, waiting_config};
use super::*;

const CARRIER: &str = "192.0.2.99:5060";

fn callback_config() -> CoreConfig {
    let mut config = waiting_config();
    config.queues[0]
        .exit_keys
        .insert('*', acd::Destination::Callback);
    config
        .dids
        .get_mut("5000")
        .expect("DID 5000 configured")
        .request_type = Some("passport".into());
    config
}

/// Makes a waiting caller press `*`, hear the confirmation and be hung up,
/// and returns the request's id, which is the first call's.
fn request_callback(h: &mut Harness) -> String {
    let (call, _) = waiting_caller(h);
    take_playback(h);
    h.core.media_notice(
        &call,
        MediaNotice::Digit {
            side: Side::Caller,
            digit: '*',
        },
        h.now,
    );
    h.collect();
    assert_eq!(
        take_playback(h),
        [(vec![prompt("callback-confirmed")], false)]
    );
    h.core.media_notice(
        &call,
        MediaNotice::PlaybackFinished { side: Side::Caller },
        h.now,
    );
    h.collect();
    assert!(
        h.requests_to(CALLER)
            .iter()
            .any(|r| r.method == Method::Bye),
        "the caller is hung up after the confirmation"
    );
    let record = h.finished_record();
    assert_eq!(record.id, call);
    assert_eq!(record.disposition, cdr::Disposition::Callback);
    assert_eq!(record.callback_of, None);
    assert_eq!(record.request_type.as_deref(), Some("passport"));
    assert_eq!(
        h.core.acd.position(&call),
        Some(1),
        "the request keeps its place"
    );
    call
}

fn invite_to(h: &mut Harness, to: &str) -> Request {
    h.requests_to(to)
        .into_iter()
        .find(|r| r.method == Method::Invite)
        .unwrap_or_else(|| panic!("INVITE sent to {to}"))
}

/// Builds a BYE from the far end of the dialog that the PBX's `invite`
/// created, whose 2xx carried the To tag `agenttag`.
fn bye_from(invite: &Request, from: &str) -> String {
    let to = invite.headers.from().unwrap();
    let mut far = invite.headers.to().unwrap();
    far.set_tag("agenttag");
    format!(
        "BYE sip:pbx@127.0.0.1:5060 SIP/2.0\r\nVia: SIP/2.0/UDP {from};branch=z9hG4bK-farbye\r\n\
         Max-Forwards: 70\r\nFrom: {far}\r\nTo: {to}\r\nCall-ID: {}\r\nCSeq: 9 BYE\r\n\
         Content-Length: 0\r\n\r\n",
        invite.headers.call_id().unwrap()
    )
}

/// Registers the agent, which takes the request at once, and answers its
/// ring; returns the callback call's id, the INVITE that rang the agent
/// and the one sent to the citizen.
fn agent_takes_callback(h: &mut Harness, request: &str) -> (String, Request, Request) {
    assert_eq!(h.register("1001", "pw-one", AGENT_1).status, 200);
    let call = h.open_media();
    assert_ne!(call, request, "the callback is a call of its own");
    let ring = invite_to(h, AGENT_1);
    assert_eq!(ring.headers.get("X-Callback"), Some("yes"));
    assert_eq!(ring.headers.get("X-Call-ID"), Some(call.as_str()));
    let shown = ring.headers.from().unwrap().uri.user_unescaped();
    assert_eq!(
        shown.as_deref(),
        Some("+15550100"),
        "the agent sees the citizen"
    );
    assert!(
        h.requests_to(CARRIER).is_empty(),
        "the citizen waits for the agent"
    );
    h.receive(
        &agent_response(&ring, 200, AGENT_1, Some(AGENT_SDP)),
        AGENT_1,
    );
    assert!(
        h.requests_to(AGENT_1)
            .iter()
            .any(|r| r.method == Method::Ack),
        "the agent's answer is acknowledged"
    );
    assert_eq!(take_playback(h), [(vec![prompt("callback-agent")], false)]);
    let dial = invite_to(h, CARRIER);
    (call, ring, dial)
}

#[test]
fn callback_rings_the_agent_then_the_citizen() {
    let mut h = Harness::with_config(callback_config());
    let request = request_callback(&mut h);
    let (call, _, dial) = agent_takes_callback(&mut h, &request);
    assert_eq!(dial.uri.to_string(), "sip:+15550100@192.0.2.99:5060");
    let from = dial.headers.from().unwrap();
    assert_eq!(
        from.uri.user_unescaped().as_deref(),
        Some("5000"),
        "the citizen sees the number it dialed"
    );
    assert!(
        dial.headers.get("X-Queue").is_none(),
        "queue names stay inside"
    );
    let offer = crate::sdp::parse(&dial.body).unwrap();
    assert_eq!(
        crate::sdp::remote_rtp(&offer),
        Some("127.0.0.1:20000".parse().unwrap()),
        "the citizen gets the caller side of the relay"
    );

    h.receive(&agent_response(&dial, 180, CARRIER, None), CARRIER);
    h.receive(
        &agent_response(&dial, 200, CARRIER, Some(AGENT_SDP)),
        CARRIER,
    );
    assert!(
        h.requests_to(CARRIER)
            .iter()
            .any(|r| r.method == Method::Ack),
        "the citizen's answer is acknowledged"
    );
    assert!(
        h.commands
            .iter()
            .any(|c| matches!(c, Command::StartRecording { call: c, .. } if *c == call)),
        "the callback is recorded"
    );
    assert!(take_playback(&mut h).contains(&(Vec::new(), false)));

    h.advance(Duration::from_secs(30));
    h.receive(&bye_from(&dial, CARRIER), CARRIER);
    assert!(h.responses_to(CARRIER).iter().any(|r| r.status == 200));
    assert!(
        h.requests_to(AGENT_1)
            .iter()
            .any(|r| r.method == Method::Bye),
        "the agent is hung up with the citizen"
    );
    let record = h.finished_record();
    assert_eq!(record.id, call);
    assert_eq!(record.callback_of.as_deref(), Some(request.as_str()));
    assert_eq!(
        record.request_type.as_deref(),
        Some("passport"),
        "the returned call keeps the request's type"
    );
    assert_eq!(record.disposition, cdr::Disposition::Answered);
    assert_eq!(record.agent.as_deref(), Some("1001"));
    assert_eq!(record.caller, "+15550100");
    assert_eq!(record.queue.as_deref(), Some("general"));
    assert_eq!(record.trunk.as_deref(), Some("carrier"));
    assert_eq!(record.hangup_side, Some(cdr::HangupSide::Caller));
    assert!((record.talk_seconds - 30.0).abs() < 0.01);
    assert_eq!(h.core.acd.position(&request), None, "the request is served");
    assert_eq!(h.core.active_calls(), 0);
}

#[test]
fn busy_citizen_is_tried_again_until_the_attempts_run_out() {
    let mut config = callback_config();
    // Short enough for the agent's 600 s registration to last all attempts.
    config.queues[0].callback_retry_delay = Duration::from_secs(120);
    let mut h = Harness::with_config(config);
    let request = request_callback(&mut h);
    let (_, _, dial) = agent_takes_callback(&mut h, &request);
    h.receive(&agent_response(&dial, 486, CARRIER, None), CARRIER);
    assert!(
        h.requests_to(AGENT_1)
            .iter()
            .any(|r| r.method == Method::Bye),
        "the agent is hung up"
    );
    let record = h.finished_record();
    assert_eq!(record.disposition, cdr::Disposition::Failed);
    assert_eq!(record.sip_status, Some(486));
    assert_eq!(record.callback_of.as_deref(), Some(request.as_str()));
    assert_eq!(
        h.core.acd.agent_state("1001"),
        Some(acd::AgentState::Available),
        "no wrap-up in this queue"
    );
    assert_eq!(h.core.active_calls(), 0);
    assert_eq!(
        h.core.acd.position(&request),
        Some(1),
        "the request waits again in its place"
    );
    assert_eq!(
        callback_events(&mut h),
        ["dialing", "retry busy 1"],
        "no answer is counted"
    );

    // Nobody is rung before the retry delay has passed.
    h.advance(Duration::from_secs(119));
    assert!(
        !h.commands
            .iter()
            .any(|c| matches!(c, Command::OpenMedia { .. })),
        "no attempt before the retry delay"
    );
    h.advance(Duration::from_secs(1));
    let call = h.open_media();
    let ring = invite_to(&mut h, AGENT_1);
    assert_eq!(ring.headers.get("X-Call-ID"), Some(call.as_str()));
    h.receive(
        &agent_response(&ring, 200, AGENT_1, Some(AGENT_SDP)),
        AGENT_1,
    );
    take_playback(&mut h);
    let dial = invite_to(&mut h, CARRIER);
    // The citizen's phone rings out on the second attempt, then the third.
    h.receive(&agent_response(&dial, 180, CARRIER, None), CARRIER);
    h.advance(Duration::from_secs(45));
    assert_eq!(h.finished_record().sip_status, Some(408));
    h.advance(Duration::from_secs(120));
    h.open_media();
    let ring = invite_to(&mut h, AGENT_1);
    h.receive(
        &agent_response(&ring, 200, AGENT_1, Some(AGENT_SDP)),
        AGENT_1,
    );
    let dial = invite_to(&mut h, CARRIER);
    h.receive(&agent_response(&dial, 603, CARRIER, None), CARRIER);
    assert_eq!(h.finished_record().sip_status, Some(603));
    assert_eq!(
        callback_events(&mut h),
        [
            "dialing",
            "retry busy 1",
            "dialing",
            "retry no_answer 2",
            "dialing",
            "failed busy 3"
        ]
    );
    assert_eq!(h.core.acd.position(&request), None, "the request ended");
    h.advance(Duration::from_secs(600));
    assert!(
        !h.commands
            .iter()
            .any(|c| matches!(c, Command::OpenMedia { .. })),
        "no fourth attempt"
    );
}

#[test]
fn answered_callback_counts_when_the_citizen_answers() {
    let mut h = Harness::with_config(callback_config());
    let request = request_callback(&mut h);
    let (_, _, dial) = agent_takes_callback(&mut h, &request);
    h.advance(Duration::from_secs(7));
    h.receive(
        &agent_response(&dial, 200, CARRIER, Some(AGENT_SDP)),
        CARRIER,
    );
    let answered: Vec<Duration> = queue_events(&mut h)
        .into_iter()
        .filter_map(|event| match event {
            acd::QueueEvent::OfferAnswered { call, waited, .. } if call == request => Some(waited),
            _ => None,
        })
        .collect();
    assert_eq!(answered.len(), 1, "one answer, at the citizen's");
    assert_eq!(callback_events(&mut h), ["dialing"]);
}

/// Every queue event handed to the driver so far.
fn queue_events(h: &mut Harness) -> Vec<acd::QueueEvent> {
    h.collect();
    h.commands
        .iter()
        .flat_map(|command| match command {
            Command::QueueLog { events, .. } => events.clone(),
            _ => Vec::new(),
        })
        .map(|stamped| stamped.event)
        .collect()
}

/// The callback events handed to the driver so far, as short labels.
fn callback_events(h: &mut Harness) -> Vec<String> {
    queue_events(h)
        .into_iter()
        .filter_map(|event| match event {
            acd::QueueEvent::CallbackDialing { .. } => Some("dialing".to_owned()),
            acd::QueueEvent::CallbackNotReached {
                cause,
                attempts,
                retry_at,
                ..
            } => Some(format!(
                "{} {} {attempts}",
                if retry_at.is_some() {
                    "retry"
                } else {
                    "failed"
                },
                cause.as_str()
            )),
            _ => None,
        })
        .collect()
}

#[test]
fn agent_hanging_up_cancels_the_citizen() {
    let mut h = Harness::with_config(callback_config());
    let request = request_callback(&mut h);
    let (_, ring, dial) = agent_takes_callback(&mut h, &request);
    h.receive(&agent_response(&dial, 180, CARRIER, None), CARRIER);
    let bye = bye_from(&ring, AGENT_1);
    h.receive(&bye, AGENT_1);
    assert!(h.responses_to(AGENT_1).iter().any(|r| r.status == 200));
    assert!(
        h.requests_to(CARRIER)
            .iter()
            .any(|r| r.method == Method::Cancel),
        "the ringing citizen is cancelled"
    );
    let record = h.finished_record();
    assert_eq!(record.disposition, cdr::Disposition::Failed);
    assert_eq!(record.hangup_side, Some(cdr::HangupSide::Agent));
}

#[test]
fn declined_callback_is_offered_again() {
    let mut h = Harness::with_config(callback_config());
    let request = request_callback(&mut h);
    assert_eq!(h.register("1001", "pw-one", AGENT_1).status, 200);
    let first = h.open_media();
    let ring = invite_to(&mut h, AGENT_1);
    h.receive(&agent_response(&ring, 603, AGENT_1, None), AGENT_1);
    assert!(
        h.commands
            .iter()
            .any(|c| matches!(c, Command::CloseMedia { call } if *call == first)),
        "the unused relay is closed"
    );
    assert!(
        !h.commands
            .iter()
            .any(|c| matches!(c, Command::Finish { .. })),
        "nothing reached the citizen, so no CDR"
    );
    assert_eq!(h.core.acd.position(&request), Some(1));
    // After the retry delay the same agent gets the request again.
    h.advance(Duration::from_secs(2));
    let second = h.open_media();
    assert_ne!(first, second);
    let again = invite_to(&mut h, AGENT_1);
    assert_eq!(again.headers.get("X-Callback"), Some("yes"));
    assert!(h.requests_to(CARRIER).is_empty());
    // Its ring times out: that call is dropped as well.
    h.receive(&agent_response(&again, 180, AGENT_1, None), AGENT_1);
    h.advance(Duration::from_secs(10));
    assert!(
        h.commands
            .iter()
            .any(|c| matches!(c, Command::CloseMedia { call } if *call == second))
    );
    assert!(
        h.requests_to(AGENT_1)
            .iter()
            .any(|r| r.method == Method::Cancel)
    );
}

#[test]
fn confirmation_needs_no_music_queue() {
    // A caller still hearing ringback is answered to hear the confirmation.
    let mut config = callback_config();
    config.queue_media.clear();
    config.queues[0].overflow = Some(acd::Destination::Callback);
    let mut h = Harness::with_config(config);
    h.caller_invite("5000", CALLER);
    let call = h.open_media();
    assert!(h.responses_to(CALLER).iter().any(|r| r.status == 180));
    h.advance(Duration::from_secs(61));
    assert!(
        h.responses_to(CALLER).iter().any(|r| r.status == 200),
        "answered for the confirmation"
    );
    assert_eq!(
        take_playback(&mut h).last(),
        Some(&(
            vec![PathBuf::from("/prompts/callback-confirmed.wav")],
            false
        ))
    );
    assert_eq!(h.core.acd.position(&call), Some(1));
}

#[test]
fn anonymous_caller_cannot_ask_for_a_callback() {
    let mut h = Harness::with_config(callback_config());
    let sdp = "v=0\r\no=- 1 1 IN IP4 192.0.2.10\r\ns=-\r\nc=IN IP4 192.0.2.10\r\nt=0 0\r\n\
               m=audio 40000 RTP/AVP 0 101\r\na=rtpmap:101 telephone-event/8000\r\n";
    let text = format!(
        "INVITE sip:5000@pbx.test SIP/2.0\r\nVia: SIP/2.0/UDP {CALLER};branch=z9hG4bK-anon\r\n\
         Max-Forwards: 70\r\nFrom: <sip:anonymous@anonymous.invalid>;tag=anon\r\n\
         To: <sip:5000@pbx.test>\r\nCall-ID: anon@test\r\nCSeq: 1 INVITE\r\n\
         Content-Type: application/sdp\r\nContent-Length: {}\r\n\r\n{sdp}",
        sdp.len()
    );
    h.receive(&text, CALLER);
    let call = h.open_media();
    h.core.media_notice(
        &call,
        MediaNotice::Digit {
            side: Side::Caller,
            digit: '*',
        },
        h.now,
    );
    h.collect();
    assert_eq!(h.core.acd.position(&call), None, "no request is kept");
    let lines: Vec<String> = h
        .commands
        .iter()
        .flat_map(|command| match command {
            Command::QueueLog { lines, .. } => lines.clone(),
            _ => Vec::new(),
        })
        .collect();
    assert!(
        lines.iter().any(|line| line.contains("|EXITWITHKEY|")),
        "{lines:?}"
    );
    assert!(
        !lines.iter().any(|line| line.contains("|ABANDON|")),
        "{lines:?}"
    );
}
