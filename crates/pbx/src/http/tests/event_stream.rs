//! `GET /api/events/stream`: who may subscribe, what each role sees, and
//! reconnection with `Last-Event-ID`.

use std::time::Duration;

use axum::body::BodyDataStream;
use futures_util::StreamExt;

use super::*;
use crate::events::NewEvent;

/// Longest wait for an expected frame; frames come at once, so only a
/// failing test waits this long.
const FRAME_TIMEOUT: Duration = Duration::from_secs(5);

/// Time in which an unexpected frame would have shown up.
const QUIET: Duration = Duration::from_millis(300);

/// One server-sent event as the wire carries it.
#[derive(Debug, Default)]
struct Frame {
    id: Option<String>,
    event: Option<String>,
    data: String,
    comments: Vec<String>,
}

impl Frame {
    fn parse(text: &str) -> Frame {
        let mut frame = Frame::default();
        for line in text.lines() {
            if let Some(comment) = line.strip_prefix(':') {
                frame.comments.push(comment.trim().to_owned());
                continue;
            }
            let (field, value) = line.split_once(':').unwrap_or((line, ""));
            let value = value.strip_prefix(' ').unwrap_or(value);
            match field {
                "id" => frame.id = Some(value.to_owned()),
                "event" => frame.event = Some(value.to_owned()),
                "data" => {
                    if !frame.data.is_empty() {
                        frame.data.push('\n');
                    }
                    frame.data.push_str(value);
                }
                _ => {}
            }
        }
        frame
    }

    fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.data).expect("data is JSON")
    }

    fn seq(&self) -> i64 {
        self.id
            .as_deref()
            .expect("event has an id")
            .parse()
            .expect("id is a number")
    }
}

/// Reads frames off an event stream response.
struct Subscriber {
    body: BodyDataStream,
    buffer: String,
}

impl Subscriber {
    /// The next frame, `None` when the response ended.
    async fn frame(&mut self, wait: Duration) -> Option<Frame> {
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            if let Some(end) = self.buffer.find("\n\n") {
                let text: String = self.buffer.drain(..end + 2).collect();
                return Some(Frame::parse(&text));
            }
            let chunk = tokio::time::timeout_at(deadline, self.body.next())
                .await
                .unwrap_or_else(|_| panic!("no frame within {wait:?}; buffered {:?}", self.buffer));
            match chunk {
                Some(bytes) => self
                    .buffer
                    .push_str(std::str::from_utf8(&bytes.expect("body chunk")).expect("UTF-8")),
                None => return None,
            }
        }
    }

    /// The next frame that is not a keep-alive comment.
    async fn event(&mut self) -> Frame {
        loop {
            let frame = self.frame(FRAME_TIMEOUT).await.expect("the stream goes on");
            if frame.id.is_some() || frame.event.is_some() {
                return frame;
            }
        }
    }

    /// Panics when an event arrives within [`QUIET`].
    async fn expect_quiet(&mut self) {
        let deadline = tokio::time::Instant::now() + QUIET;
        loop {
            if let Some(end) = self.buffer.find("\n\n") {
                let text: String = self.buffer.drain(..end + 2).collect();
                let frame = Frame::parse(&text);
                assert!(
                    frame.id.is_none() && frame.event.is_none(),
                    "unexpected event {frame:?}"
                );
                continue;
            }
            match tokio::time::timeout_at(deadline, self.body.next()).await {
                Err(_) => return,
                Ok(Some(bytes)) => self
                    .buffer
                    .push_str(std::str::from_utf8(&bytes.expect("body chunk")).expect("UTF-8")),
                Ok(None) => panic!("the stream ended"),
            }
        }
    }
}

impl Fixture {
    /// Opens the stream as `role`, with `Last-Event-ID` when given.
    async fn subscribe(&self, role: Role, last_event_id: Option<&str>) -> Subscriber {
        let response = self.open_stream(Some(role), last_event_id).await;
        assert_eq!(response.status(), StatusCode::OK);
        let content_type = response
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|value| value.to_str().ok());
        assert_eq!(content_type, Some("text/event-stream"));
        Subscriber {
            body: response.into_body().into_data_stream(),
            buffer: String::new(),
        }
    }

    async fn open_stream(
        &self,
        role: Option<Role>,
        last_event_id: Option<&str>,
    ) -> axum::response::Response {
        let mut request = Request::get("/api/events/stream");
        if let Some(role) = role {
            let cookie = format!("{}={}", auth::SESSION_COOKIE, self.sessions[&role]);
            request = request.header(header::COOKIE, cookie);
        }
        if let Some(id) = last_event_id {
            request = request.header("Last-Event-ID", id);
        }
        let mut request = request.body(Body::empty()).expect("valid request");
        let client: SocketAddr = CLIENT.parse().expect("valid address");
        request.extensions_mut().insert(ConnectInfo(client));
        self.app()
            .oneshot(request)
            .await
            .expect("router is infallible")
    }
}

fn state_change(agent: &str, to: &str) -> NewEvent {
    NewEvent {
        at_ms: 1_796_374_800_000,
        kind: "agent_state_changed",
        call: None,
        queue: None,
        agent: Some(agent.to_owned()),
        data: serde_json::json!({"from": "logged_out", "to": to}),
    }
}

fn enqueued(call: &str) -> NewEvent {
    NewEvent {
        at_ms: 1_796_374_800_500,
        kind: "call_enqueued",
        call: Some(call.to_owned()),
        queue: Some("general".to_owned()),
        agent: None,
        data: serde_json::json!({"caller": "+15550100", "position": 1}),
    }
}

#[tokio::test]
async fn roles_that_see_every_event_get_each_committed_event() {
    let fixture = fixture().await;
    let mut subscribers = Vec::new();
    for role in [Role::Administrator, Role::Supervisor, Role::Qa] {
        subscribers.push((role, fixture.subscribe(role, None).await));
    }
    let seqs = fixture
        .commit(vec![enqueued("call-1"), state_change("1002", "available")])
        .await;
    for (role, subscriber) in &mut subscribers {
        let first = subscriber.event().await;
        assert_eq!(first.seq(), seqs[0], "{role:?}");
        assert_eq!(first.event, None, "plain message events");
        let json = first.json();
        assert_eq!(json["seq"], seqs[0]);
        assert_eq!(json["kind"], "call_enqueued");
        assert_eq!(json["call"], "call-1");
        assert_eq!(json["queue"], "general");
        assert_eq!(json["at"], "2026-12-04T09:00:00.5Z");
        assert_eq!(json["data"]["caller"], "+15550100");
        let second = subscriber.event().await;
        assert_eq!(second.seq(), seqs[1], "{role:?}");
        assert_eq!(second.json()["agent"], "1002");
    }
}

#[tokio::test]
async fn an_agent_sees_only_its_own_events() {
    let fixture = fixture().await;
    let stored = fixture
        .commit(vec![
            state_change(OWN_AGENT, "available"),
            state_change("1002", "available"),
            enqueued("call-1"),
        ])
        .await;
    // Catching up from the table filters as the live feed does.
    let mut agent = fixture.subscribe(Role::Agent, Some("0")).await;
    assert_eq!(agent.event().await.seq(), stored[0]);
    let live = fixture
        .commit(vec![
            state_change("1002", "not_ready"),
            state_change(OWN_AGENT, "on_call"),
        ])
        .await;
    let event = agent.event().await;
    assert_eq!(event.seq(), live[1]);
    assert_eq!(event.json()["agent"], OWN_AGENT);
    agent.expect_quiet().await;
}

#[tokio::test]
async fn a_stream_needs_credentials() {
    let fixture = fixture().await;
    let response = fixture.open_stream(None, None).await;
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn reconnecting_with_last_event_id_sends_the_missed_events_once() {
    let fixture = fixture().await;
    let mut first = fixture.subscribe(Role::Supervisor, None).await;
    let seqs = fixture
        .commit(vec![
            enqueued("call-1"),
            enqueued("call-2"),
            enqueued("call-3"),
        ])
        .await;
    assert_eq!(first.event().await.seq(), seqs[0]);
    // The connection drops after the first event; two more are stored
    // while the client is away.
    drop(first);
    let missed = fixture
        .commit(vec![state_change("1002", "available")])
        .await;
    let last_seen = seqs[0].to_string();
    let mut again = fixture.subscribe(Role::Supervisor, Some(&last_seen)).await;
    let replayed = [
        again.event().await.seq(),
        again.event().await.seq(),
        again.event().await.seq(),
    ];
    assert_eq!(replayed, [seqs[1], seqs[2], missed[0]]);
    let live = fixture.commit(vec![enqueued("call-4")]).await;
    let event = again.event().await;
    assert_eq!(event.seq(), live[0]);
    assert_eq!(event.json()["call"], "call-4");
    again.expect_quiet().await;
}

#[tokio::test]
async fn without_last_event_id_only_new_events_come() {
    let fixture = fixture().await;
    fixture.commit(vec![enqueued("old")]).await;
    let mut subscriber = fixture.subscribe(Role::Qa, None).await;
    subscriber.expect_quiet().await;
    let seqs = fixture.commit(vec![enqueued("new")]).await;
    assert_eq!(subscriber.event().await.seq(), seqs[0]);
}

#[tokio::test]
async fn an_invalid_last_event_id_is_refused() {
    let fixture = fixture().await;
    for id in ["abc", "-1", "1.5", "é"] {
        let response = fixture.open_stream(Some(Role::Supervisor), Some(id)).await;
        assert_eq!(response.status(), StatusCode::BAD_REQUEST, "{id}");
    }
    // An empty value is what a client sends before it has seen an event.
    fixture.subscribe(Role::Supervisor, Some("")).await;
}

#[tokio::test]
async fn logging_out_ends_the_stream() {
    let fixture = fixture().await;
    let mut subscriber = fixture.subscribe(Role::Supervisor, None).await;
    let reply = fixture
        .call(Some(Role::Supervisor), Method::DELETE, "/api/session", None)
        .await;
    assert_eq!(reply.status, StatusCode::NO_CONTENT);
    loop {
        match subscriber.frame(FRAME_TIMEOUT).await {
            None => break,
            Some(frame) => assert!(frame.id.is_none(), "no event after logout: {frame:?}"),
        }
    }
}

#[tokio::test]
async fn agents_list_when_they_entered_their_state() {
    let fixture = fixture().await;
    // The engine double shows both agents available; only 1001 has a
    // stored change into that state.
    fixture
        .commit(vec![
            state_change(OWN_AGENT, "available"),
            state_change("1002", "not_ready"),
        ])
        .await;
    let reply = fixture.get(Role::Supervisor, "/api/agents").await;
    assert_eq!(reply.status, StatusCode::OK);
    let agents = reply.json();
    assert_eq!(agents[0]["id"], OWN_AGENT);
    assert_eq!(agents[0]["state_since"], "2026-12-04T09:00:00Z");
    assert_eq!(agents[1]["id"], "1002");
    assert_eq!(agents[1]["state_since"], serde_json::Value::Null);
}
