//! Holds inside an answered call and the post-call survey, on the
//! virtual clock.

use std::path::PathBuf;

use super::waiting::{prompt, take_playback};
use super::*;

const MUSIC: &str = "/sounds/music.wav";

/// Returns the base configuration with music on hold in "general" and, when
/// `survey` is given, a survey with that many tries and a 5 s timeout.
fn survey_config(attempts: Option<u32>) -> CoreConfig {
    let mut config = config();
    config.queue_media.insert(
        "general".into(),
        QueueMedia {
            music_on_hold: Some(MUSIC.into()),
            ..QueueMedia::default()
        },
    );
    if let Some(attempts) = attempts {
        config.surveys.insert(
            "general".into(),
            SurveyConfig {
                attempts,
                timeout: Duration::from_secs(5),
            },
        );
    }
    config
}

/// Takes the queue events the core handed to the driver so far.
fn take_events(h: &mut Harness) -> Vec<acd::QueueEvent> {
    let mut events = Vec::new();
    h.commands.retain_mut(|command| match command {
        Command::QueueLog { events: batch, .. } => {
            events.extend(batch.drain(..).map(|stamped| stamped.event));
            false
        }
        _ => true,
    });
    events
}

/// Builds a request from the agent's phone inside the call of `invite`.
fn agent_request(invite: &Request, method: &str, cseq: u32, sdp: Option<&str>) -> String {
    let (content_type, body) = match sdp {
        Some(sdp) => ("Content-Type: application/sdp\r\n", sdp),
        None => ("", ""),
    };
    format!(
        "{method} sip:pbx@127.0.0.1:5060 SIP/2.0\r\nVia: SIP/2.0/UDP {AGENT_1};branch=z9hG4bK-a{method}{cseq}\r\n\
         Max-Forwards: 70\r\nFrom: <sip:1001@pbx.test>;tag=agenttag\r\nTo: {}\r\nCall-ID: {}\r\n\
         CSeq: {cseq} {method}\r\nContact: <sip:agent@{AGENT_1}>\r\n{content_type}\
         Content-Length: {}\r\n\r\n{body}",
        invite.headers.get("From").unwrap(),
        invite.headers.call_id().unwrap(),
        body.len()
    )
}

/// Sends a re-INVITE with `direction` from the agent, and accepts the
/// relayed offer with 200 from the caller's phone.
fn agent_reinvite(h: &mut Harness, invite: &Request, cseq: u32, direction: &str) {
    let sdp = format!(
        "v=0\r\no=- 7 {cseq} IN IP4 198.51.100.21\r\ns=-\r\nc=IN IP4 198.51.100.21\r\nt=0 0\r\n\
         m=audio 42000 RTP/AVP 0\r\na={direction}\r\n"
    );
    h.receive(&agent_request(invite, "INVITE", cseq, Some(&sdp)), AGENT_1);
    let relayed = h
        .requests_to(CALLER)
        .into_iter()
        .find(|r| r.method == Method::Invite)
        .expect("re-INVITE relayed to the caller");
    let answer = "v=0\r\no=- 1 2 IN IP4 192.0.2.10\r\ns=-\r\nc=IN IP4 192.0.2.10\r\nt=0 0\r\n\
                  m=audio 40000 RTP/AVP 0\r\n";
    let mut ok = Response::for_request(&relayed, 200, None);
    ok.headers
        .push("Contact", format!("<sip:+15550100@{CALLER}>"));
    ok.headers.push("Content-Type", "application/sdp");
    ok.body = bytes::Bytes::copy_from_slice(answer.as_bytes());
    h.receive(std::str::from_utf8(&ok.to_bytes()).unwrap(), CALLER);
    assert!(
        h.responses_to(AGENT_1).iter().any(|r| r.status == 200),
        "the agent gets the caller's 200"
    );
}

fn agent_bye(h: &mut Harness, invite: &Request, cseq: u32) {
    h.receive(&agent_request(invite, "BYE", cseq, None), AGENT_1);
    assert!(h.responses_to(AGENT_1).iter().any(|r| r.status == 200));
}

fn caller_hangs_up(h: &mut Harness, call: &str) {
    let tag = caller_tag(h, call);
    h.receive(&caller_bye(&tag), CALLER);
    assert!(h.responses_to(CALLER).iter().any(|r| r.status == 200));
}

fn key(h: &mut Harness, call: &str, digit: char) {
    let notice = MediaNotice::Digit {
        side: Side::Caller,
        digit,
    };
    let now = h.now;
    h.core.media_notice(call, notice, now);
    h.collect();
}

fn prompt_ended(h: &mut Harness, call: &str) {
    let notice = MediaNotice::PlaybackFinished { side: Side::Caller };
    let now = h.now;
    h.core.media_notice(call, notice, now);
    h.collect();
}

fn bye_sent_to_caller(h: &mut Harness) -> bool {
    h.requests_to(CALLER)
        .iter()
        .any(|r| r.method == Method::Bye)
}

/// Returns the survey outcomes among `events`.
fn survey_outcomes(events: &[acd::QueueEvent]) -> Vec<acd::SurveyOutcome> {
    events
        .iter()
        .filter_map(|event| match event {
            acd::QueueEvent::SurveyFinished { outcome, .. } => Some(*outcome),
            _ => None,
        })
        .collect()
}

#[test]
fn hold_by_reinvite_sendonly_and_back() {
    let mut h = Harness::with_config(survey_config(None));
    let (call, invite) = answered_call(&mut h);
    h.advance(Duration::from_secs(10));
    take_events(&mut h);
    take_playback(&mut h);

    agent_reinvite(&mut h, &invite, 2, "sendonly");
    let events = take_events(&mut h);
    assert!(
        matches!(
            events.as_slice(),
            [acd::QueueEvent::CallHeld { agent, by: acd::Party::Agent, .. }] if agent == "1001"
        ),
        "{events:?}"
    );
    assert_eq!(
        take_playback(&mut h),
        vec![(vec![PathBuf::from(MUSIC)], true)],
        "the held caller hears the queue's music"
    );

    h.advance(Duration::from_secs(30));
    agent_reinvite(&mut h, &invite, 3, "sendrecv");
    let events = take_events(&mut h);
    match events.as_slice() {
        [acd::QueueEvent::CallResumed { held, by, .. }] => {
            assert_eq!(*held, Duration::from_secs(30));
            assert_eq!(*by, acd::Party::Agent);
        }
        other => panic!("expected one CallResumed, got {other:?}"),
    }
    assert_eq!(
        take_playback(&mut h),
        vec![(Vec::new(), false)],
        "the music stops at the resume"
    );

    h.advance(Duration::from_secs(20));
    caller_hangs_up(&mut h, &call);
    let record = h.finished_record();
    assert_eq!(record.hold_count, 1);
    assert_eq!(record.hold_seconds, 30.0);
    assert_eq!(record.talk_seconds, 60.0);
    assert_eq!(record.survey, None);
}

#[test]
fn hold_open_at_hang_up_ends_with_call() {
    let mut h = Harness::with_config(survey_config(None));
    let (call, invite) = answered_call(&mut h);
    agent_reinvite(&mut h, &invite, 2, "inactive");
    h.advance(Duration::from_secs(12));
    take_events(&mut h);
    caller_hangs_up(&mut h, &call);
    let events = take_events(&mut h);
    let resumed = events
        .iter()
        .position(|e| matches!(e, acd::QueueEvent::CallResumed { .. }));
    let completed = events
        .iter()
        .position(|e| matches!(e, acd::QueueEvent::CallCompleted { .. }));
    assert!(resumed.is_some(), "{events:?}");
    assert!(resumed < completed, "the hold ends before the completion");
    let record = h.finished_record();
    assert_eq!(record.hold_count, 1);
    assert_eq!(record.hold_seconds, 12.0);
}

#[test]
fn survey_answered_with_five() {
    let mut h = Harness::with_config(survey_config(Some(3)));
    let (call, invite) = answered_call(&mut h);
    let answered_at = h.now;
    h.advance(Duration::from_secs(40));
    take_events(&mut h);
    take_playback(&mut h);

    agent_bye(&mut h, &invite, 2);
    assert!(
        !bye_sent_to_caller(&mut h),
        "the caller stays for the survey"
    );
    // The recording ends with the agent's part, 40 s after the answer.
    let stops: Vec<Instant> = h
        .commands
        .iter()
        .filter_map(|c| match c {
            Command::StopRecording { call: c, at } if *c == call => Some(*at),
            _ => None,
        })
        .collect();
    assert_eq!(stops, [answered_at + Duration::from_secs(40)]);
    let events = take_events(&mut h);
    let completed = events.iter().find_map(|e| match e {
        acd::QueueEvent::CallCompleted { talk_time, .. } => Some(*talk_time),
        _ => None,
    });
    assert_eq!(completed, Some(Duration::from_secs(40)));
    assert!(
        events
            .iter()
            .any(|e| matches!(e, acd::QueueEvent::SurveyOffered { agent, .. } if agent == "1001")),
        "{events:?}"
    );
    assert_eq!(
        take_playback(&mut h),
        vec![(vec![prompt("survey-question")], false)]
    );

    h.advance(Duration::from_secs(4));
    key(&mut h, &call, '5');
    assert_eq!(
        take_playback(&mut h),
        vec![(vec![prompt("survey-thanks")], false)]
    );
    assert_eq!(
        survey_outcomes(&take_events(&mut h)),
        vec![acd::SurveyOutcome::Answered(5)]
    );
    assert!(!bye_sent_to_caller(&mut h), "the thank-you plays first");

    prompt_ended(&mut h, &call);
    assert!(bye_sent_to_caller(&mut h));
    let record = h.finished_record();
    assert_eq!(record.survey, Some(cdr::SurveyStatus::Answered));
    assert_eq!(record.csat_score, Some(5));
    assert_eq!(record.disposition, cdr::Disposition::Answered);
    assert_eq!(record.hangup_side, Some(cdr::HangupSide::Agent));
    assert_eq!(record.talk_seconds, 40.0, "survey time is not talk time");
    assert_eq!(h.core.active_calls(), 0);
}

#[test]
fn survey_invalid_key_then_four() {
    let mut h = Harness::with_config(survey_config(Some(3)));
    let (call, invite) = answered_call(&mut h);
    agent_bye(&mut h, &invite, 2);
    take_playback(&mut h);
    prompt_ended(&mut h, &call);

    key(&mut h, &call, '9');
    assert_eq!(
        take_playback(&mut h),
        vec![(
            vec![prompt("survey-invalid"), prompt("survey-question")],
            false
        )],
        "an invalid key gets the hint and the question again"
    );
    assert!(survey_outcomes(&take_events(&mut h)).is_empty());

    key(&mut h, &call, '4');
    assert_eq!(
        survey_outcomes(&take_events(&mut h)),
        vec![acd::SurveyOutcome::Answered(4)]
    );
    prompt_ended(&mut h, &call);
    let record = h.finished_record();
    assert_eq!(record.csat_score, Some(4));
    assert_eq!(record.survey, Some(cdr::SurveyStatus::Answered));
}

#[test]
fn survey_timeout_ends_without_answer() {
    let mut h = Harness::with_config(survey_config(Some(2)));
    let (call, invite) = answered_call(&mut h);
    agent_bye(&mut h, &invite, 2);
    take_playback(&mut h);

    prompt_ended(&mut h, &call);
    h.advance(Duration::from_secs(5));
    assert_eq!(
        take_playback(&mut h),
        vec![(vec![prompt("survey-question")], false)],
        "the first timeout asks again"
    );
    prompt_ended(&mut h, &call);
    h.advance(Duration::from_millis(4999));
    assert!(take_playback(&mut h).is_empty(), "no timeout before 5 s");
    h.advance(Duration::from_millis(1));
    assert_eq!(
        take_playback(&mut h),
        vec![(vec![prompt("survey-goodbye")], false)]
    );
    assert_eq!(
        survey_outcomes(&take_events(&mut h)),
        vec![acd::SurveyOutcome::TimedOut]
    );

    // The end of the goodbye is never reported: the limit hangs up.
    h.advance(Duration::from_secs(20));
    assert!(bye_sent_to_caller(&mut h));
    let record = h.finished_record();
    assert_eq!(record.survey, Some(cdr::SurveyStatus::TimedOut));
    assert_eq!(record.csat_score, None);
}

#[test]
fn caller_hanging_up_first_gets_no_survey() {
    let mut h = Harness::with_config(survey_config(Some(3)));
    let (call, _invite) = answered_call(&mut h);
    take_events(&mut h);
    take_playback(&mut h);
    caller_hangs_up(&mut h, &call);
    assert!(
        h.requests_to(AGENT_1)
            .iter()
            .any(|r| r.method == Method::Bye),
        "the agent gets BYE"
    );
    let events = take_events(&mut h);
    assert!(
        !events
            .iter()
            .any(|e| matches!(e, acd::QueueEvent::SurveyOffered { .. })),
        "{events:?}"
    );
    assert!(take_playback(&mut h).is_empty());
    assert!(
        !h.commands
            .iter()
            .any(|c| matches!(c, Command::StopRecording { .. })),
        "the recording ends with the call"
    );
    let record = h.finished_record();
    assert_eq!(record.survey, None);
    assert_eq!(record.hangup_side, Some(cdr::HangupSide::Caller));
}

#[test]
fn caller_hanging_up_during_survey() {
    let mut h = Harness::with_config(survey_config(Some(3)));
    let (call, invite) = answered_call(&mut h);
    agent_bye(&mut h, &invite, 2);
    take_events(&mut h);
    caller_hangs_up(&mut h, &call);
    assert_eq!(
        survey_outcomes(&take_events(&mut h)),
        vec![acd::SurveyOutcome::HungUp]
    );
    let record = h.finished_record();
    assert_eq!(record.survey, Some(cdr::SurveyStatus::HungUp));
    assert_eq!(record.csat_score, None);
    assert_eq!(h.core.active_calls(), 0);
}

#[test]
fn survey_key_by_sip_info() {
    let mut h = Harness::with_config(survey_config(Some(3)));
    let (call, invite) = answered_call(&mut h);
    agent_bye(&mut h, &invite, 2);
    take_events(&mut h);
    let tag = caller_tag(&h, &call);
    let info = format!(
        "INFO sip:pbx@127.0.0.1:5060 SIP/2.0\r\nVia: SIP/2.0/UDP {CALLER};branch=z9hG4bK-info3\r\n\
         Max-Forwards: 70\r\nFrom: \"Citizen\" <sip:+15550100@carrier.test>;tag=c1\r\n\
         To: <sip:5000@pbx.test>;tag={tag}\r\nCall-ID: caller-1@carrier.test\r\nCSeq: 3 INFO\r\n\
         Content-Type: application/dtmf-relay\r\nContent-Length: 10\r\n\r\nSignal=3\r\n"
    );
    h.receive(&info, CALLER);
    assert!(h.responses_to(CALLER).iter().any(|r| r.status == 200));
    assert_eq!(
        survey_outcomes(&take_events(&mut h)),
        vec![acd::SurveyOutcome::Answered(3)]
    );
}

#[test]
fn caller_update_holds_the_agent() {
    let mut h = Harness::with_config(survey_config(None));
    let (call, _invite) = answered_call(&mut h);
    take_events(&mut h);
    take_playback(&mut h);
    let tag = caller_tag(&h, &call);
    let sdp = "v=0\r\no=- 1 2 IN IP4 192.0.2.10\r\ns=-\r\nc=IN IP4 192.0.2.10\r\nt=0 0\r\n\
               m=audio 40000 RTP/AVP 0\r\na=sendonly\r\n";
    let update = format!(
        "UPDATE sip:pbx@127.0.0.1:5060 SIP/2.0\r\nVia: SIP/2.0/UDP {CALLER};branch=z9hG4bK-upd3\r\n\
         Max-Forwards: 70\r\nFrom: \"Citizen\" <sip:+15550100@carrier.test>;tag=c1\r\n\
         To: <sip:5000@pbx.test>;tag={tag}\r\nCall-ID: caller-1@carrier.test\r\nCSeq: 3 UPDATE\r\n\
         Contact: <sip:+15550100@{CALLER}>\r\nContent-Type: application/sdp\r\n\
         Content-Length: {}\r\n\r\n{sdp}",
        sdp.len()
    );
    h.receive(&update, CALLER);
    let relayed = h
        .requests_to(AGENT_1)
        .into_iter()
        .find(|r| r.method == Method::Update)
        .expect("UPDATE relayed to the agent");
    assert!(
        take_events(&mut h).is_empty(),
        "no hold before the other side accepts"
    );

    h.receive(
        &agent_response(&relayed, 200, AGENT_1, Some(AGENT_SDP)),
        AGENT_1,
    );
    assert!(h.responses_to(CALLER).iter().any(|r| r.status == 200));
    let events = take_events(&mut h);
    assert!(
        matches!(
            events.as_slice(),
            [acd::QueueEvent::CallHeld {
                by: acd::Party::Caller,
                ..
            }]
        ),
        "{events:?}"
    );
    let music = h.commands.iter().any(|command| {
        matches!(
            command,
            Command::Play {
                side: Side::Agent,
                looped: true,
                ..
            }
        )
    });
    assert!(music, "the held agent hears the music");
}

#[test]
fn rejected_hold_offer_is_no_hold() {
    let mut h = Harness::with_config(survey_config(None));
    let (call, invite) = answered_call(&mut h);
    take_events(&mut h);
    let sdp = "v=0\r\no=- 7 2 IN IP4 198.51.100.21\r\ns=-\r\nc=IN IP4 198.51.100.21\r\nt=0 0\r\n\
               m=audio 42000 RTP/AVP 0\r\na=sendonly\r\n";
    h.receive(&agent_request(&invite, "INVITE", 2, Some(sdp)), AGENT_1);
    let relayed = h
        .requests_to(CALLER)
        .into_iter()
        .find(|r| r.method == Method::Invite)
        .expect("re-INVITE relayed");
    let busy = Response::for_request(&relayed, 488, None);
    h.receive(std::str::from_utf8(&busy.to_bytes()).unwrap(), CALLER);
    assert!(h.responses_to(AGENT_1).iter().any(|r| r.status == 488));
    assert!(
        take_events(&mut h).is_empty(),
        "a rejected offer holds nothing"
    );
    caller_hangs_up(&mut h, &call);
    let record = h.finished_record();
    assert_eq!(record.hold_count, 0);
    assert_eq!(record.hold_seconds, 0.0);
}
