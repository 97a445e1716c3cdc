//! Recording pause and resume through the API against the engine double:
//! replies, the 409 of a repeated request, the agent's own call, the
//! audit log, and the events in a stored CDR. Roles are covered for every
//! route in `access`.

use super::*;

fn pause_uri(call: &str) -> String {
    format!("/api/calls/{call}/recording/pause")
}

fn resume_uri(call: &str) -> String {
    format!("/api/calls/{call}/recording/resume")
}

async fn post(fixture: &Fixture, role: Role, uri: &str) -> Reply {
    fixture.call(Some(role), Method::POST, uri, None).await
}

#[tokio::test]
async fn supervisor_pauses_then_resumes() {
    let fixture = fixture().await;
    fixture.keep_engine();

    let reply = post(&fixture, Role::Supervisor, &pause_uri(LIVE_CALL)).await;
    assert_eq!(reply.status, StatusCode::OK);
    let body = reply.json();
    assert_eq!(body["call_id"], LIVE_CALL);
    assert_eq!(body["paused"], true);
    assert_eq!(body["event"]["action"], "pause");
    assert_eq!(body["event"]["source"], "api");
    assert_eq!(body["event"]["actor"], "sam");
    assert_eq!(body["event"]["offset_seconds"], 1.5);

    let again = post(&fixture, Role::Supervisor, &pause_uri(LIVE_CALL)).await;
    let detail = again.problem(StatusCode::CONFLICT);
    assert_eq!(
        detail,
        format!("the recording of call {LIVE_CALL:?} is already paused")
    );

    let reply = post(&fixture, Role::Administrator, &resume_uri(LIVE_CALL)).await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(reply.json()["paused"], false);
    assert_eq!(reply.json()["event"]["actor"], "ada");
    let again = post(&fixture, Role::Administrator, &resume_uri(LIVE_CALL)).await;
    let detail = again.problem(StatusCode::CONFLICT);
    assert_eq!(
        detail,
        format!("the recording of call {LIVE_CALL:?} is not paused")
    );

    let audit = fixture.accounts.list_audit(100, 0).await.expect("audit");
    let actions: Vec<(&str, Option<&str>, &str)> = audit
        .iter()
        .map(|entry| {
            let username = entry.username.as_deref().unwrap_or_default();
            (entry.action.as_str(), entry.target.as_deref(), username)
        })
        .collect();
    assert_eq!(
        actions,
        [
            ("recording.resume", Some(LIVE_CALL), "ada"),
            ("recording.pause", Some(LIVE_CALL), "sam"),
        ],
        "one entry per change, newest first, none for the refused requests"
    );
}

#[tokio::test]
async fn agent_pauses_only_own_call() {
    let fixture = fixture().await;
    fixture.keep_engine();
    let own = post(&fixture, Role::Agent, &pause_uri(LIVE_CALL)).await;
    assert_eq!(own.status, StatusCode::OK);
    assert_eq!(own.json()["event"]["actor"], "alice");

    let other = post(&fixture, Role::Agent, &pause_uri("call-of-1002")).await;
    let detail = other.problem(StatusCode::NOT_FOUND);
    assert_eq!(
        detail,
        "call \"call-of-1002\" not found among the calls in progress"
    );
}

#[tokio::test]
async fn unknown_call_is_not_found() {
    let fixture = fixture().await;
    let reply = post(&fixture, Role::Supervisor, &pause_uri("ended-call")).await;
    reply.problem(StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn live_agent_view_names_call() {
    let fixture = fixture().await;
    let agents = fixture.get(Role::Supervisor, "/api/agents").await.json();
    assert_eq!(agents[0]["id"], OWN_AGENT);
    assert_eq!(agents[0]["call_id"], LIVE_CALL);
    assert_eq!(agents[0]["recording_paused"], false);
    assert_eq!(agents[1]["call_id"], serde_json::Value::Null);
}

#[tokio::test]
async fn call_record_lists_recording_events() {
    let fixture = fixture().await;
    let mut call = record("paused-call", 3, Some("recordings/paused-call.wav"));
    let answered_at = call.answered_at.expect("answered");
    call.recording_events = vec![
        cdr::RecordingEvent {
            action: cdr::RecordingAction::Pause,
            offset_seconds: 10.25,
            at: answered_at + time::Duration::milliseconds(10_250),
            source: cdr::RecordingEventSource::Api,
            actor: "sam".to_owned(),
        },
        cdr::RecordingEvent {
            action: cdr::RecordingAction::Resume,
            offset_seconds: 30.0,
            at: answered_at + time::Duration::seconds(30),
            source: cdr::RecordingEventSource::Dtmf,
            actor: OWN_AGENT.to_owned(),
        },
    ];
    fixture.store.write(&call).await.expect("CDR written");

    for role in [Role::Qa, Role::Agent] {
        let reply = fixture.get(role, "/api/calls/paused-call").await;
        assert_eq!(reply.status, StatusCode::OK, "{role:?}");
        let events = &reply.json()["recording_events"];
        assert_eq!(events[0]["action"], "pause", "{role:?}");
        assert_eq!(events[0]["offset_seconds"], 10.25);
        assert_eq!(events[0]["at"], "2026-12-04T09:03:14.25Z");
        assert_eq!(events[1]["action"], "resume");
        assert_eq!(events[1]["source"], "dtmf");
        assert_eq!(events[1]["actor"], OWN_AGENT);
    }
    let listed = fixture.get(Role::Supervisor, "/api/calls").await.json();
    assert_eq!(listed[0]["recording_events"][1]["offset_seconds"], 30.0);
}
