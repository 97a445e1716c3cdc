//! Recording pause and resume on an answered call: through the API and by
//! the agent's code, the relay commands, the live view and the CDR events.

use super::*;

fn supervisor() -> RecordingActor {
    RecordingActor {
        source: cdr::RecordingEventSource::Api,
        name: "sam".to_owned(),
        only_agent: None,
    }
}

fn pause_commands(h: &Harness) -> Vec<(bool, Instant)> {
    h.commands
        .iter()
        .filter_map(|command| match command {
            Command::PauseRecording { paused, at, .. } => Some((*paused, *at)),
            _ => None,
        })
        .collect()
}

fn hang_up_caller(h: &mut Harness, call: &str) -> cdr::CallRecord {
    let to_tag = caller_tag(h, call);
    h.receive(&caller_bye(&to_tag), CALLER);
    h.finished_record()
}

#[test]
fn api_pause_and_resume_reach_relay_and_cdr() {
    let mut h = Harness::new();
    let (call, _) = answered_call(&mut h);
    let answered = h.now;
    h.advance(Duration::from_millis(12_345));
    let paused_at = h.now;
    let pause = h
        .core
        .set_recording_paused(&call, true, &supervisor(), h.now)
        .expect("pause accepted");
    h.collect();
    assert_eq!(pause.action, cdr::RecordingAction::Pause);
    assert_eq!(pause.offset_seconds, 12.345);
    assert_eq!(pause.source, cdr::RecordingEventSource::Api);
    assert_eq!(pause.actor, "sam");
    assert_eq!(pause_commands(&h), [(true, paused_at)]);
    let view = h.core.agents_view(h.now);
    let agent = view.iter().find(|a| a.id == "1001").expect("agent 1001");
    assert_eq!(agent.call_id.as_deref(), Some(call.as_str()));
    assert!(agent.recording_paused);

    h.advance(Duration::from_secs(20));
    let resume = h
        .core
        .set_recording_paused(&call, false, &supervisor(), h.now)
        .expect("resume accepted");
    h.collect();
    assert_eq!(resume.action, cdr::RecordingAction::Resume);
    assert_eq!(resume.offset_seconds, 32.345);
    assert_eq!(
        pause_commands(&h)[1],
        (false, answered + Duration::from_millis(32_345))
    );

    h.advance(Duration::from_secs(5));
    let record = hang_up_caller(&mut h, &call);
    assert_eq!(record.recording_events, [pause, resume]);
}

#[test]
fn second_pause_and_stray_resume_are_refused() {
    let mut h = Harness::new();
    let (call, _) = answered_call(&mut h);
    assert_eq!(
        h.core
            .set_recording_paused(&call, false, &supervisor(), h.now),
        Err(RecordingCommandError::NotPaused { call: call.clone() })
    );
    h.core
        .set_recording_paused(&call, true, &supervisor(), h.now)
        .expect("first pause");
    assert_eq!(
        h.core
            .set_recording_paused(&call, true, &supervisor(), h.now),
        Err(RecordingCommandError::AlreadyPaused { call: call.clone() })
    );
    h.collect();
    assert_eq!(
        pause_commands(&h).len(),
        1,
        "a refused request sends nothing"
    );
    let record = hang_up_caller(&mut h, &call);
    assert_eq!(record.recording_events.len(), 1);
}

#[test]
fn unknown_unanswered_and_foreign_calls_are_refused() {
    let mut h = Harness::new();
    assert_eq!(
        h.core
            .set_recording_paused("nope", true, &supervisor(), h.now),
        Err(RecordingCommandError::UnknownCall {
            call: "nope".to_owned()
        })
    );
    assert_eq!(h.register("1001", "pw-one", AGENT_1).status, 200);
    h.caller_invite("5000", CALLER);
    let call = h.open_media();
    assert_eq!(
        h.core
            .set_recording_paused(&call, true, &supervisor(), h.now),
        Err(RecordingCommandError::NotRecording { call: call.clone() }),
        "the agent's phone still rings"
    );

    let mut h = Harness::new();
    let (call, _) = answered_call(&mut h);
    let other_agent = RecordingActor {
        source: cdr::RecordingEventSource::Api,
        name: "agent-two".to_owned(),
        only_agent: Some("1002".to_owned()),
    };
    assert_eq!(
        h.core
            .set_recording_paused(&call, true, &other_agent, h.now),
        Err(RecordingCommandError::UnknownCall { call: call.clone() })
    );
    let own_agent = RecordingActor {
        only_agent: Some("1001".to_owned()),
        name: "agent-one".to_owned(),
        ..other_agent
    };
    let event = h
        .core
        .set_recording_paused(&call, true, &own_agent, h.now)
        .expect("the agent on the call may pause");
    assert_eq!(event.actor, "agent-one");
}

#[test]
fn disabled_recording_cannot_pause() {
    let mut h = Harness::with_config(CoreConfig {
        recording: false,
        ..config()
    });
    let (call, _) = answered_call(&mut h);
    assert_eq!(
        h.core
            .set_recording_paused(&call, true, &supervisor(), h.now),
        Err(RecordingCommandError::NotRecording { call: call.clone() })
    );
    assert!(
        !h.commands
            .iter()
            .any(|c| matches!(c, Command::SetFeatureCode { .. })),
        "no code is watched without a recording"
    );
}

#[test]
fn agent_code_toggles_pause() {
    let mut h = Harness::new();
    let (call, _) = answered_call(&mut h);
    assert!(h.commands.iter().any(|c| matches!(
        c,
        Command::SetFeatureCode { side: Side::Agent, code: Some(code), .. } if code == "*1"
    )));
    let code = |side| MediaNotice::FeatureCode {
        side,
        code: "*1".to_owned(),
    };

    h.advance(Duration::from_secs(3));
    h.core.media_notice(&call, code(Side::Agent), h.now);
    h.collect();
    h.advance(Duration::from_secs(4));
    h.core.media_notice(&call, code(Side::Agent), h.now);
    h.collect();
    // The caller cannot pause the recording by keying the code.
    h.core.media_notice(&call, code(Side::Caller), h.now);
    h.collect();
    // Nor does another code toggle it.
    let other = MediaNotice::FeatureCode {
        side: Side::Agent,
        code: "*2".to_owned(),
    };
    h.core.media_notice(&call, other, h.now);
    h.collect();

    let toggles: Vec<bool> = pause_commands(&h)
        .iter()
        .map(|(paused, _)| *paused)
        .collect();
    assert_eq!(toggles, [true, false]);
    let record = hang_up_caller(&mut h, &call);
    let events: Vec<(cdr::RecordingAction, f64, &str)> = record
        .recording_events
        .iter()
        .map(|e| (e.action, e.offset_seconds, e.actor.as_str()))
        .collect();
    assert_eq!(
        events,
        [
            (cdr::RecordingAction::Pause, 3.0, "1001"),
            (cdr::RecordingAction::Resume, 7.0, "1001"),
        ]
    );
    assert!(
        record
            .recording_events
            .iter()
            .all(|e| e.source == cdr::RecordingEventSource::Dtmf)
    );
}

#[test]
fn pause_is_checkpointed() {
    let mut h = Harness::new();
    let (call, _) = answered_call(&mut h);
    h.commands.clear();
    h.core
        .set_recording_paused(&call, true, &supervisor(), h.now)
        .expect("pause");
    h.collect();
    let checkpoint = h.commands.iter().find_map(|c| match c {
        Command::Checkpoint { record, .. } => Some(record),
        _ => None,
    });
    let record = checkpoint.expect("checkpoint after the pause");
    assert_eq!(record.recording_events.len(), 1);
}

#[test]
fn mixed_mono_recording_named_next_to_stereo() {
    let start_recording = |mixed: bool| {
        let mut h = Harness::with_config(CoreConfig {
            recording_mixed_mono: mixed,
            ..config()
        });
        answered_call(&mut h);
        h.commands.iter().find_map(|command| match command {
            Command::StartRecording {
                path,
                mixed_mono_path,
                ..
            } => Some((path.clone(), mixed_mono_path.clone())),
            _ => None,
        })
    };
    let (path, mixed) = start_recording(true).expect("recording started");
    let stem = path.strip_suffix(".wav").expect("WAV path");
    assert_eq!(mixed, Some(format!("{stem}-mixed.wav")));
    let (_, mixed) = start_recording(false).expect("recording started");
    assert_eq!(mixed, None, "off by default");
}
