//! Callers the PBX answers to wait with music and announcements: the
//! local answer, the timers, keys, hang-ups and the agent's answer.

use std::path::PathBuf;

use super::*;

const MUSIC: &str = "/sounds/music.wav";
const BACKUP_MUSIC: &str = "/sounds/backup.wav";

pub(super) fn waiting_config() -> CoreConfig {
    let mut config = config();
    config.queues[0]
        .exit_keys
        .insert('0', acd::Destination::Queue("backup".into()));
    config.queues.push(acd::QueueConfig {
        name: "backup".into(),
        ring_timeout: Duration::from_secs(10),
        max_wait: Duration::from_secs(60),
        ..acd::QueueConfig::default()
    });
    config
        .queue_agents
        .insert("general".into(), vec!["1001".into()]);
    config
        .queue_agents
        .insert("backup".into(), vec!["1002".into()]);
    config.queue_media.insert(
        "general".into(),
        QueueMedia {
            music_on_hold: Some(MUSIC.into()),
            announce_every: Some(Duration::from_secs(30)),
            announce_position: true,
            announce_wait: true,
        },
    );
    config.queue_media.insert(
        "backup".into(),
        QueueMedia {
            music_on_hold: Some(BACKUP_MUSIC.into()),
            ..QueueMedia::default()
        },
    );
    config
}

/// Plays and playback stops issued so far, as (prompts, looped); a stop
/// is an empty list.
pub(super) fn take_playback(h: &mut Harness) -> Vec<(Vec<PathBuf>, bool)> {
    let mut played = Vec::new();
    h.commands.retain(|command| match command {
        Command::Play {
            prompts, looped, ..
        } => {
            played.push((prompts.clone(), *looped));
            false
        }
        Command::StopPlayback { .. } => {
            played.push((Vec::new(), false));
            false
        }
        _ => true,
    });
    played
}

pub(super) fn prompt(name: &str) -> PathBuf {
    PathBuf::from(format!("/prompts/{name}.wav"))
}

fn ack_caller(h: &mut Harness, to_tag: &str, cseq: u32) {
    let ack = format!(
        "ACK sip:pbx@127.0.0.1:5060 SIP/2.0\r\nVia: SIP/2.0/UDP {CALLER};branch=z9hG4bK-ack{cseq}\r\n\
         Max-Forwards: 70\r\nFrom: \"Citizen\" <sip:+15550100@carrier.test>;tag=c1\r\n\
         To: <sip:5000@pbx.test>;tag={to_tag}\r\nCall-ID: caller-1@carrier.test\r\nCSeq: {cseq} ACK\r\n\
         Content-Length: 0\r\n\r\n"
    );
    h.receive(&ack, CALLER);
}

/// An in-dialog request from the waiting caller with `body` of
/// `content_type`.
fn caller_request(tag: &str, method: &str, cseq: u32, content_type: &str, body: &str) -> String {
    format!(
        "{method} sip:pbx@127.0.0.1:5060 SIP/2.0\r\nVia: SIP/2.0/UDP {CALLER};branch=z9hG4bK-{method}{cseq}\r\n\
         Max-Forwards: 70\r\nFrom: \"Citizen\" <sip:+15550100@carrier.test>;tag=c1\r\n\
         To: <sip:5000@pbx.test>;tag={tag}\r\nCall-ID: caller-1@carrier.test\r\nCSeq: {cseq} {method}\r\n\
         Contact: <sip:+15550100@{CALLER}>\r\nContent-Type: {content_type}\r\n\
         Content-Length: {}\r\n\r\n{body}",
        body.len()
    )
}

/// A caller in "general" with no agent registered, answered and ACKed.
pub(super) fn waiting_caller(h: &mut Harness) -> (String, Response) {
    h.caller_invite("5000", CALLER);
    let call = h.open_media();
    let responses = h.responses_to(CALLER);
    assert!(
        responses.iter().all(|r| r.status != 180),
        "an answered caller gets no ringback"
    );
    let ok = responses
        .into_iter()
        .find(|r| r.status == 200)
        .expect("the PBX answers the waiting caller");
    let tag = caller_tag(h, &call);
    ack_caller(h, &tag, 1);
    (call, ok)
}

#[test]
fn waiting_caller_hears_position() {
    let mut h = Harness::with_config(waiting_config());
    let (call, ok) = waiting_caller(&mut h);
    let sdp = crate::sdp::parse(&ok.body).unwrap();
    assert_eq!(
        crate::sdp::remote_rtp(&sdp),
        Some("127.0.0.1:20000".parse().unwrap())
    );
    // PCMU first in the offer, telephone-event on the offer's number.
    assert_eq!(sdp.media[0].formats, ["0", "101"]);
    assert!(h.commands.iter().any(|c| matches!(
        c,
        Command::SetCodecs {
            side: Side::Caller,
            payload_type: 0,
            event_payload_type: Some(101),
            ..
        }
    )));
    // No agent to ring: the position first, as one list that does not loop.
    let played = take_playback(&mut h);
    assert_eq!(
        played,
        [(
            vec![
                prompt("position-before"),
                prompt("1"),
                prompt("position-after")
            ],
            false
        )]
    );
    // The announcement ends, the music starts and loops.
    h.core.media_notice(
        &call,
        MediaNotice::PlaybackFinished { side: Side::Caller },
        h.now,
    );
    h.collect();
    assert_eq!(take_playback(&mut h), [(vec![PathBuf::from(MUSIC)], true)]);
    // Thirty seconds later, the next announcement.
    h.advance(Duration::from_secs(29));
    assert!(take_playback(&mut h).is_empty());
    h.advance(Duration::from_secs(2));
    assert_eq!(take_playback(&mut h).len(), 1);
    assert_eq!(h.core.active_calls(), 1);
}

#[test]
fn agent_answer_stops_music() {
    let mut h = Harness::with_config(waiting_config());
    assert_eq!(h.register("1001", "pw-one", AGENT_1).status, 200);
    let (call, _) = waiting_caller(&mut h);
    // Ringing at once: music, no announcement.
    assert_eq!(take_playback(&mut h), [(vec![PathBuf::from(MUSIC)], true)]);
    let invite = h
        .requests_to(AGENT_1)
        .into_iter()
        .find(|r| r.method == Method::Invite)
        .expect("the free agent is offered the call");
    // The agent picks PCMA; the caller keeps PCMU and the relay transcodes.
    let pcma = "v=0\r\no=- 7 7 IN IP4 198.51.100.21\r\ns=-\r\nc=IN IP4 198.51.100.21\r\n\
                t=0 0\r\nm=audio 42000 RTP/AVP 8\r\n";
    h.receive(&agent_response(&invite, 180, AGENT_1, None), AGENT_1);
    h.receive(&agent_response(&invite, 200, AGENT_1, Some(pcma)), AGENT_1);
    assert!(
        h.responses_to(CALLER).is_empty(),
        "the caller was answered already"
    );
    assert!(h.commands.iter().any(|c| matches!(
        c,
        Command::SetCodecs {
            side: Side::Agent,
            payload_type: 8,
            ..
        }
    )));
    assert_eq!(take_playback(&mut h), [(Vec::new(), false)]);
    // No more announcements once connected.
    h.advance(Duration::from_secs(120));
    assert!(take_playback(&mut h).is_empty());
    h.receive(&caller_bye(&caller_tag(&h, &call)), CALLER);
    assert!(
        h.requests_to(AGENT_1)
            .iter()
            .any(|r| r.method == Method::Bye)
    );
    let record = h.finished_record();
    assert_eq!(record.disposition, cdr::Disposition::Answered);
    assert_eq!(record.agent.as_deref(), Some("1001"));
}

#[test]
fn waiting_hang_up_abandons() {
    let mut h = Harness::with_config(waiting_config());
    let (call, _) = waiting_caller(&mut h);
    h.advance(Duration::from_secs(12));
    h.receive(&caller_bye(&caller_tag(&h, &call)), CALLER);
    assert!(
        h.responses_to(CALLER).iter().any(|r| r.status == 200),
        "the BYE is answered"
    );
    let record = h.finished_record();
    assert_eq!(record.disposition, cdr::Disposition::Abandoned);
    assert_eq!(record.hangup_side, Some(cdr::HangupSide::Caller));
    assert!((record.wait_seconds - 12.0).abs() < 0.01);
    assert_eq!(h.core.active_calls(), 0);
    assert!(h.core.waiting_deadlines.is_empty(), "no timer left behind");
}

#[test]
fn max_wait_apologises_then_hangs_up() {
    let mut h = Harness::with_config(waiting_config());
    let (call, _) = waiting_caller(&mut h);
    take_playback(&mut h);
    h.advance(Duration::from_secs(61));
    let played = take_playback(&mut h);
    assert_eq!(
        played.last(),
        Some(&(vec![prompt("sorry-no-agent")], false))
    );
    assert!(
        h.requests_to(CALLER).is_empty(),
        "no BYE before the apology ends"
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
            .any(|r| r.method == Method::Bye)
    );
    let record = h.finished_record();
    assert_eq!(record.disposition, cdr::Disposition::NoAgent);
    assert_eq!(record.hangup_side, Some(cdr::HangupSide::System));
}

#[test]
fn endless_apology_still_hangs_up() {
    let mut h = Harness::with_config(waiting_config());
    waiting_caller(&mut h);
    h.advance(Duration::from_secs(61));
    assert!(h.requests_to(CALLER).is_empty());
    h.advance(super::super::announce::LEAVING_LIMIT);
    assert!(
        h.requests_to(CALLER)
            .iter()
            .any(|r| r.method == Method::Bye)
    );
    assert_eq!(h.finished_record().disposition, cdr::Disposition::NoAgent);
}

#[test]
fn exit_key_moves_queue() {
    let mut h = Harness::with_config(waiting_config());
    // Only in the backup queue.
    assert_eq!(h.register("1002", "pw-two", AGENT_2).status, 200);
    let (call, _) = waiting_caller(&mut h);
    take_playback(&mut h);
    h.core.media_notice(
        &call,
        MediaNotice::Digit {
            side: Side::Caller,
            digit: '5',
        },
        h.now,
    );
    h.collect();
    assert_eq!(h.core.calls[&call].queue, "general", "5 is no exit key");
    h.core.media_notice(
        &call,
        MediaNotice::Digit {
            side: Side::Caller,
            digit: '0',
        },
        h.now,
    );
    h.collect();
    assert_eq!(h.core.calls[&call].queue, "backup");
    assert_eq!(
        take_playback(&mut h),
        [(vec![PathBuf::from(BACKUP_MUSIC)], true)]
    );
    // The backup queue's agent takes it; the CDR names the backup queue.
    let invite = h
        .requests_to(AGENT_2)
        .into_iter()
        .find(|r| r.method == Method::Invite)
        .expect("the backup agent is offered the call");
    h.receive(
        &agent_response(&invite, 200, AGENT_2, Some(AGENT_SDP)),
        AGENT_2,
    );
    h.receive(&caller_bye(&caller_tag(&h, &call)), CALLER);
    let record = h.finished_record();
    assert_eq!(record.queue.as_deref(), Some("backup"));
    assert_eq!(record.agent.as_deref(), Some("1002"));
}

#[test]
fn sip_info_digits_are_keys() {
    let mut h = Harness::with_config(waiting_config());
    let (call, _) = waiting_caller(&mut h);
    let body = "Signal=0\r\nDuration=160\r\n";
    let tag = caller_tag(&h, &call);
    let info = caller_request(&tag, "INFO", 2, "application/dtmf-relay", body);
    h.receive(&info, CALLER);
    assert!(h.responses_to(CALLER).iter().any(|r| r.status == 200));
    assert_eq!(h.core.calls[&call].queue, "backup");
}

#[test]
fn waiting_refresh_gets_same_answer() {
    let mut h = Harness::with_config(waiting_config());
    let (call, ok) = waiting_caller(&mut h);
    let sdp = "v=0\r\no=- 1 2 IN IP4 192.0.2.10\r\ns=-\r\nc=IN IP4 192.0.2.10\r\nt=0 0\r\n\
               m=audio 40000 RTP/AVP 0 101\r\na=rtpmap:101 telephone-event/8000\r\n";
    let tag = caller_tag(&h, &call);
    let reinvite = caller_request(&tag, "INVITE", 3, "application/sdp", sdp);
    h.receive(&reinvite, CALLER);
    let refreshed = h
        .responses_to(CALLER)
        .into_iter()
        .find(|r| r.status == 200)
        .expect("the refresh is answered");
    assert_eq!(refreshed.body, ok.body, "same session, same version");
    let tag = caller_tag(&h, &call);
    ack_caller(&mut h, &tag, 3);
    assert_eq!(h.core.active_calls(), 1);
}

#[test]
fn queues_without_music_keep_ringback() {
    let mut h = Harness::new();
    h.caller_invite("5000", CALLER);
    h.open_media();
    let statuses: Vec<u16> = h.responses_to(CALLER).iter().map(|r| r.status).collect();
    assert_eq!(statuses, [100, 180]);
    assert!(take_playback(&mut h).is_empty());
}

#[test]
fn announcement_wait_in_minutes() {
    let prompts = PromptSet::new("/prompts");
    let media = QueueMedia {
        announce_position: true,
        announce_wait: true,
        announce_every: Some(Duration::from_secs(30)),
        ..QueueMedia::default()
    };
    assert_eq!(
        prompts.announcement(Some(23), Some(Duration::from_secs(130)), &media),
        [
            prompt("position-before"),
            prompt("20"),
            prompt("3"),
            prompt("position-after"),
            prompt("wait-before"),
            prompt("3"),
            prompt("minutes"),
        ]
    );
    assert_eq!(
        prompts.announcement(Some(150), Some(Duration::from_secs(40)), &media),
        [prompt("position-many"), prompt("wait-under-minute")]
    );
    assert_eq!(
        prompts.announcement(None, Some(Duration::from_secs(60)), &media),
        [prompt("wait-before"), prompt("1"), prompt("minute")]
    );
    let silent = QueueMedia {
        announce_position: false,
        announce_wait: false,
        ..media
    };
    assert_eq!(
        prompts.announcement(Some(2), None, &silent),
        [prompt("please-hold")]
    );
}

#[test]
fn move_to_silent_queue_keeps_music() {
    let mut config = waiting_config();
    config.queue_media.remove("backup");
    let mut h = Harness::with_config(config);
    let (call, _) = waiting_caller(&mut h);
    take_playback(&mut h);
    h.core.media_notice(
        &call,
        MediaNotice::Digit {
            side: Side::Caller,
            digit: '0',
        },
        h.now,
    );
    h.collect();
    assert_eq!(h.core.calls[&call].queue, "backup");
    assert_eq!(take_playback(&mut h), [(vec![PathBuf::from(MUSIC)], true)]);
}

#[test]
fn waiting_hold_gets_mirrored_direction() {
    let mut h = Harness::with_config(waiting_config());
    let (call, ok) = waiting_caller(&mut h);
    let reinvite = |h: &Harness, cseq: u32, direction: &str| {
        let sdp = format!(
            "v=0\r\no=- 1 {cseq} IN IP4 192.0.2.10\r\ns=-\r\nc=IN IP4 192.0.2.10\r\nt=0 0\r\n\
             m=audio 40000 RTP/AVP 0\r\na={direction}\r\n"
        );
        caller_request(
            &caller_tag(h, &call),
            "INVITE",
            cseq,
            "application/sdp",
            &sdp,
        )
    };
    let text = reinvite(&h, 3, "sendonly");
    h.receive(&text, CALLER);
    let held = h
        .responses_to(CALLER)
        .into_iter()
        .find(|r| r.status == 200)
        .expect("the hold is answered");
    let held_sdp = crate::sdp::parse(&held.body).unwrap();
    assert_eq!(
        held_sdp.media[0].direction(),
        sip_message::sdp::Direction::RecvOnly
    );
    let version = |sdp: &sip_message::sdp::SessionDescription| {
        sdp.session
            .iter()
            .find(|l| l.kind == 'o')
            .map(|l| l.value.split(' ').nth(2).unwrap().to_owned())
    };
    let first = crate::sdp::parse(&ok.body).unwrap();
    assert_ne!(
        version(&held_sdp),
        version(&first),
        "a changed SDP gets a new version"
    );
    let tag = caller_tag(&h, &call);
    ack_caller(&mut h, &tag, 3);
    let text = reinvite(&h, 4, "sendrecv");
    h.receive(&text, CALLER);
    let resumed = h
        .responses_to(CALLER)
        .into_iter()
        .find(|r| r.status == 200)
        .expect("the resume is answered");
    let resumed_sdp = crate::sdp::parse(&resumed.body).unwrap();
    assert_eq!(
        resumed_sdp.media[0].direction(),
        sip_message::sdp::Direction::SendRecv
    );
    // The music paused during the hold and came back with the resume.
    let played = take_playback(&mut h);
    assert!(played.contains(&(Vec::new(), false)), "{played:?}");
    assert_eq!(played.last(), Some(&(vec![PathBuf::from(MUSIC)], true)));
}

#[test]
fn unused_info_bodies_get_415() {
    let mut h = Harness::with_config(waiting_config());
    let (call, _) = waiting_caller(&mut h);
    let tag = caller_tag(&h, &call);
    let info = |cseq: u32, content_type: &str, body: &str| {
        caller_request(&tag, "INFO", cseq, content_type, body)
    };
    let text = info(2, "text/plain", "hello");
    h.receive(&text, CALLER);
    let statuses: Vec<u16> = h.responses_to(CALLER).iter().map(|r| r.status).collect();
    assert_eq!(statuses, [415]);
    // The event number of # as some gateways send it is a key too; the
    // queue has no exit on #, so the call stays.
    let text = info(3, "application/dtmf-relay", "Signal=11\r\n");
    h.receive(&text, CALLER);
    let statuses: Vec<u16> = h.responses_to(CALLER).iter().map(|r| r.status).collect();
    assert_eq!(statuses, [200]);
    // A DTMF body without a key is malformed, not of an unknown type.
    let text = info(4, "application/dtmf-relay", "Signal=ZZZ\r\n");
    h.receive(&text, CALLER);
    let statuses: Vec<u16> = h.responses_to(CALLER).iter().map(|r| r.status).collect();
    assert_eq!(statuses, [400]);
    assert_eq!(h.core.calls[&call].queue, "general");
}

#[test]
fn waiting_reoffer_switches_law() {
    let mut h = Harness::with_config(waiting_config());
    let (call, _) = waiting_caller(&mut h);
    h.commands.clear();
    let reoffer = |h: &Harness, cseq: u32, formats: &str| {
        let sdp = format!(
            "v=0\r\no=- 1 {cseq} IN IP4 192.0.2.10\r\ns=-\r\nc=IN IP4 192.0.2.10\r\nt=0 0\r\n\
             m=audio 40000 RTP/AVP {formats}\r\na=rtpmap:18 G729/8000\r\n"
        );
        caller_request(
            &caller_tag(h, &call),
            "INVITE",
            cseq,
            "application/sdp",
            &sdp,
        )
    };
    let text = reoffer(&h, 3, "8");
    h.receive(&text, CALLER);
    let ok = h
        .responses_to(CALLER)
        .into_iter()
        .find(|r| r.status == 200)
        .expect("the PCMA offer is answered");
    let sdp = crate::sdp::parse(&ok.body).unwrap();
    assert_eq!(sdp.media[0].formats, ["8"]);
    assert!(h.commands.iter().any(|c| matches!(
        c,
        Command::SetCodecs {
            side: Side::Caller,
            payload_type: 8,
            ..
        }
    )));
    let tag = caller_tag(&h, &call);
    ack_caller(&mut h, &tag, 3);
    let text = reoffer(&h, 4, "18");
    h.receive(&text, CALLER);
    let statuses: Vec<u16> = h.responses_to(CALLER).iter().map(|r| r.status).collect();
    assert!(statuses.contains(&488), "G.729 only: {statuses:?}");
}

#[test]
fn local_answer_keeps_every_stream() {
    let offer = crate::sdp::narrow_offer(
        b"v=0\r\no=- 1 1 IN IP4 192.0.2.10\r\ns=-\r\nc=IN IP4 192.0.2.10\r\nt=0 0\r\n\
          m=video 6704 RTP/AVP 96\r\na=rtpmap:96 H264/90000\r\n\
          m=audio 40000 RTP/AVP 0\r\n",
    )
    .unwrap();
    let answer = crate::sdp::local_answer(&offer, IpAddr::V4(Ipv4Addr::LOCALHOST), 20000).unwrap();
    let streams: Vec<(&str, u16)> = answer
        .sdp
        .media
        .iter()
        .map(|m| (m.media.as_str(), m.port))
        .collect();
    assert_eq!(streams, [("video", 0), ("audio", 20000)]);
}

fn voicemail_config() -> CoreConfig {
    let mut config = waiting_config();
    config.queues[0].overflow = Some(acd::Destination::Voicemail("general".into()));
    config
}

/// Waits out the max wait and the greeting; returns the message path.
fn leave_message(h: &mut Harness, call: &str) -> String {
    take_playback(h);
    h.advance(Duration::from_secs(61));
    assert_eq!(
        take_playback(h).last(),
        Some(&(vec![prompt("voicemail-greeting"), prompt("beep")], false))
    );
    h.core.media_notice(
        call,
        MediaNotice::PlaybackFinished { side: Side::Caller },
        h.now,
    );
    h.collect();
    let path = h.commands.iter().find_map(|c| match c {
        Command::StartRecording { path, .. } => Some(path.clone()),
        _ => None,
    });
    path.expect("the message is recorded")
}

#[test]
fn max_wait_overflow_takes_a_message() {
    let mut h = Harness::with_config(voicemail_config());
    let (call, _) = waiting_caller(&mut h);
    let path = leave_message(&mut h, &call);
    assert!(path.starts_with("voicemail/general/"), "{path}");
    assert!(path.ends_with(&format!("{call}.wav")), "{path}");
    h.advance(Duration::from_secs(20));
    h.receive(&caller_bye(&caller_tag(&h, &call)), CALLER);
    let record = h.finished_record();
    assert_eq!(record.disposition, cdr::Disposition::Voicemail);
    assert_eq!(record.voicemail_box.as_deref(), Some("general"));
    assert_eq!(record.recording_path.as_deref(), Some(path.as_str()));
    assert_eq!(record.hangup_side, Some(cdr::HangupSide::Caller));
    // The wait ends at the max wait, when the call leaves the queue.
    assert!(
        (record.wait_seconds - 60.0).abs() < 0.01,
        "{}",
        record.wait_seconds
    );
    assert!(record.caller_answered_at.is_some());
    assert_eq!(h.core.active_calls(), 0);
}

#[test]
fn message_ends_at_limit_or_hash() {
    let mut h = Harness::with_config(voicemail_config());
    let (call, _) = waiting_caller(&mut h);
    leave_message(&mut h, &call);
    h.advance(Duration::from_secs(119));
    assert!(h.requests_to(CALLER).is_empty());
    h.advance(Duration::from_secs(2));
    assert!(
        h.requests_to(CALLER)
            .iter()
            .any(|r| r.method == Method::Bye)
    );
    let record = h.finished_record();
    assert_eq!(record.disposition, cdr::Disposition::Voicemail);
    assert_eq!(record.hangup_side, Some(cdr::HangupSide::System));

    let mut h = Harness::with_config(voicemail_config());
    let (call, _) = waiting_caller(&mut h);
    leave_message(&mut h, &call);
    h.core.media_notice(
        &call,
        MediaNotice::Digit {
            side: Side::Caller,
            digit: '#',
        },
        h.now,
    );
    h.collect();
    assert!(
        h.requests_to(CALLER)
            .iter()
            .any(|r| r.method == Method::Bye)
    );
    assert_eq!(
        h.finished_record().hangup_side,
        Some(cdr::HangupSide::Caller)
    );
}

#[test]
fn ringback_caller_is_answered_for_voicemail() {
    let mut config = voicemail_config();
    config.queue_media.clear();
    let mut h = Harness::with_config(config);
    h.caller_invite("5000", CALLER);
    h.open_media();
    let statuses: Vec<u16> = h.responses_to(CALLER).iter().map(|r| r.status).collect();
    assert_eq!(statuses, [100, 180]);
    h.advance(Duration::from_secs(61));
    let ok = h.responses_to(CALLER);
    assert!(
        ok.iter().any(|r| r.status == 200),
        "answered for the message"
    );
    assert_eq!(
        take_playback(&mut h),
        [(vec![prompt("voicemail-greeting"), prompt("beep")], false)]
    );
}

#[test]
fn hang_up_during_greeting_is_abandoned() {
    let mut h = Harness::with_config(voicemail_config());
    let (call, _) = waiting_caller(&mut h);
    h.advance(Duration::from_secs(62));
    h.receive(&caller_bye(&caller_tag(&h, &call)), CALLER);
    let record = h.finished_record();
    assert_eq!(record.disposition, cdr::Disposition::Abandoned);
    assert_eq!(record.recording_path, None);
}

const CARRIER: &str = "192.0.2.99:5060";

fn forward_config(number: &str) -> CoreConfig {
    let mut config = waiting_config();
    config.queues[0].overflow = Some(acd::Destination::Number(number.into()));
    config
}

#[test]
fn number_overflow_dials_through_trunk() {
    let mut h = Harness::with_config(forward_config("+15550199"));
    let (call, _) = waiting_caller(&mut h);
    take_playback(&mut h);
    h.advance(Duration::from_secs(61));
    let invite = h
        .requests_to(CARRIER)
        .into_iter()
        .find(|r| r.method == Method::Invite)
        .expect("the number is dialed through the trunk");
    assert_eq!(invite.uri.to_string(), "sip:+15550199@192.0.2.99:5060");
    h.receive(&agent_response(&invite, 180, CARRIER, None), CARRIER);
    h.receive(
        &agent_response(&invite, 200, CARRIER, Some(AGENT_SDP)),
        CARRIER,
    );
    // The caller was answered already: the music stops, no second answer.
    assert!(h.responses_to(CALLER).is_empty());
    assert!(take_playback(&mut h).contains(&(Vec::new(), false)));
    h.advance(Duration::from_secs(30));
    h.receive(&caller_bye(&caller_tag(&h, &call)), CALLER);
    assert!(
        h.requests_to(CARRIER)
            .iter()
            .any(|r| r.method == Method::Bye)
    );
    let record = h.finished_record();
    assert_eq!(record.disposition, cdr::Disposition::Answered);
    assert_eq!(record.agent, None);
    assert_eq!(record.forwarded_to.as_deref(), Some("+15550199"));
    assert!((record.talk_seconds - 30.0).abs() < 0.01);
}

#[test]
fn unanswered_forward_ends_with_the_apology() {
    let mut h = Harness::with_config(forward_config("+15550199"));
    let (call, _) = waiting_caller(&mut h);
    h.advance(Duration::from_secs(61));
    let invite = h
        .requests_to(CARRIER)
        .into_iter()
        .find(|r| r.method == Method::Invite)
        .expect("dialed");
    h.receive(&agent_response(&invite, 486, CARRIER, None), CARRIER);
    assert_eq!(
        take_playback(&mut h).last(),
        Some(&(vec![prompt("sorry-no-agent")], false))
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
            .any(|r| r.method == Method::Bye)
    );
    let record = h.finished_record();
    assert_eq!(record.disposition, cdr::Disposition::NoAgent);
    assert_eq!(record.forwarded_to.as_deref(), Some("+15550199"));
}

#[test]
fn forward_that_rings_out_is_cancelled() {
    let mut h = Harness::with_config(forward_config("+15550199"));
    waiting_caller(&mut h);
    h.advance(Duration::from_secs(61));
    let invite = h
        .requests_to(CARRIER)
        .into_iter()
        .find(|r| r.method == Method::Invite)
        .expect("dialed");
    h.receive(&agent_response(&invite, 180, CARRIER, None), CARRIER);
    h.advance(super::super::forward::FORWARD_RING_LIMIT);
    assert!(
        h.requests_to(CARRIER)
            .iter()
            .any(|r| r.method == Method::Cancel),
        "the ringing number is cancelled"
    );
    assert_eq!(
        take_playback(&mut h).last(),
        Some(&(vec![prompt("sorry-no-agent")], false))
    );
}

#[test]
fn forward_to_an_extension_rings_the_agent() {
    let mut h = Harness::with_config(forward_config("1002"));
    assert_eq!(h.register("1002", "pw-two", AGENT_2).status, 200);
    let (call, _) = waiting_caller(&mut h);
    h.advance(Duration::from_secs(61));
    let invite = h
        .requests_to(AGENT_2)
        .into_iter()
        .find(|r| r.method == Method::Invite)
        .expect("the extension rings");
    // With ring-in-use off the agent is busy for the queues while its
    // extension rings and talks.
    assert_eq!(
        h.core.acd.agent_state("1002"),
        Some(acd::AgentState::OnCall)
    );
    h.receive(
        &agent_response(&invite, 200, AGENT_2, Some(AGENT_SDP)),
        AGENT_2,
    );
    h.receive(&caller_bye(&caller_tag(&h, &call)), CALLER);
    let record = h.finished_record();
    assert_eq!(record.disposition, cdr::Disposition::Answered);
    assert_eq!(record.forwarded_to.as_deref(), Some("1002"));
    // The agent took no ACD offer, so its counters are untouched, and it is
    // available again once the forwarded call ends.
    assert_eq!(
        h.core.acd.agent_state("1002"),
        Some(acd::AgentState::Available)
    );
    assert_eq!(h.core.acd.agent_status("1002").unwrap().calls_answered, 0);
}

#[test]
fn forward_to_a_busy_extension_gets_busy() {
    let mut h = Harness::with_config(forward_config("1002"));
    assert_eq!(h.register("1002", "pw-two", AGENT_2).status, 200);
    // Another forwarded call holds the agent's phone.
    assert!(h.core.acd.direct_call_started("1002", "earlier", h.now));
    let (call, _) = waiting_caller(&mut h);
    take_playback(&mut h);
    h.advance(Duration::from_secs(61));
    assert!(
        !h.requests_to(AGENT_2)
            .iter()
            .any(|r| r.method == Method::Invite),
        "a busy extension is not rung"
    );
    assert_eq!(
        take_playback(&mut h).last(),
        Some(&(vec![prompt("sorry-no-agent")], false)),
        "the caller hears the apology"
    );
    h.core.media_notice(
        &call,
        MediaNotice::PlaybackFinished { side: Side::Caller },
        h.now,
    );
    h.collect();
    // The caller was answered to wait, so it gets no 486 itself.
    let record = h.finished_record();
    assert_eq!(record.disposition, cdr::Disposition::NoAgent);
    assert_eq!(record.forwarded_to.as_deref(), Some("1002"));
    // The earlier call still holds the agent.
    assert_eq!(
        h.core.acd.agent_state("1002"),
        Some(acd::AgentState::OnCall)
    );
}

#[test]
fn ring_in_use_rings_a_busy_extension() {
    let mut config = forward_config("1002");
    config.ring_in_use = true;
    let mut h = Harness::with_config(config);
    assert_eq!(h.register("1002", "pw-two", AGENT_2).status, 200);
    waiting_caller(&mut h);
    h.advance(Duration::from_secs(61));
    assert_eq!(
        h.core.acd.agent_state("1002"),
        Some(acd::AgentState::Available),
        "the queues may still offer the agent calls"
    );
}

#[test]
fn unacknowledged_waiting_caller_not_offered() {
    let mut h = Harness::with_config(waiting_config());
    h.caller_invite("5000", CALLER);
    h.open_media();
    assert!(h.responses_to(CALLER).iter().any(|r| r.status == 200));

    // The caller never sends its ACK; an agent becomes available meanwhile.
    h.advance(Duration::from_secs(1));
    assert_eq!(h.register("1001", "pw-one", AGENT_1).status, 200);
    h.advance(Duration::from_secs(5));
    assert!(
        h.requests_to(AGENT_1)
            .iter()
            .all(|r| r.method != Method::Invite),
        "a caller that never acknowledged its 200 is not offered"
    );

    // Timer H (64 T1 = 32 s) ends the call.
    h.advance(Duration::from_secs(27));
    assert!(
        h.requests_to(CALLER)
            .iter()
            .any(|r| r.method == Method::Bye)
    );
    assert!(
        h.requests_to(AGENT_1)
            .iter()
            .all(|r| r.method != Method::Invite)
    );
    let record = h.finished_record();
    assert_eq!(record.disposition, cdr::Disposition::Failed);
    assert_eq!(record.hangup_side, Some(cdr::HangupSide::System));
    // The caller got a 200, so the record carries no SIP status.
    assert_eq!(record.sip_status, None);
    assert_eq!(record.agent, None);
    assert_eq!(h.core.active_calls(), 0);
    // The agent is free again for the next call.
    assert_eq!(
        h.core.acd.agent_state("1001"),
        Some(acd::AgentState::Available)
    );
}

#[test]
fn offer_waits_for_the_callers_ack() {
    let mut h = Harness::with_config(waiting_config());
    assert_eq!(h.register("1001", "pw-one", AGENT_1).status, 200);
    h.caller_invite("5000", CALLER);
    h.open_media();
    let ok = h
        .responses_to(CALLER)
        .into_iter()
        .find(|r| r.status == 200)
        .expect("caller answered for music");
    assert!(
        h.requests_to(AGENT_1)
            .iter()
            .all(|r| r.method != Method::Invite),
        "no INVITE before the caller's ACK"
    );
    h.advance(Duration::from_millis(200));
    let tag = ok.headers.to().unwrap().tag().unwrap().to_owned();
    ack_caller(&mut h, &tag, 1);
    let invites: Vec<Request> = h
        .requests_to(AGENT_1)
        .into_iter()
        .filter(|r| r.method == Method::Invite)
        .collect();
    assert_eq!(invites.len(), 1, "the agent rings once the ACK arrived");
}
