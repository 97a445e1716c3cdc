//! Router tests on a temporary data directory, a virtual clock and one
//! logged-in user per role.

mod access;
mod acd_api;
mod admin_api;
mod administration_api;
mod call_search;
mod console_pages;
mod event_stream;
mod first_administrator;
mod openapi_document;
mod recording_pause_api;
mod recordings_api;
mod reports_api;
mod request_errors;
mod request_type_search;
mod scorecards_api;
mod session_api;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use accounts::{AccountStore, NewUser, PasswordCost, Policy, Role, User};
use axum::body::{Body, to_bytes};
use axum::extract::ConnectInfo;
use axum::http::{HeaderMap, Method, Request, StatusCode, header};
use cdr::{CallRecord, CdrStore, Disposition, HangupSide};
use time::OffsetDateTime;
use time::macros::datetime;
use tower::ServiceExt;

use super::*;

const T0: OffsetDateTime = datetime!(2026-12-04 09:00:00 UTC);

/// Peer address put into every request, as `ConnectInfo` would.
const CLIENT: &str = "192.0.2.10:40000";

/// Agent id linked to the agent user; `record` makes its calls answered by it.
const OWN_AGENT: &str = "1001";

struct Fixture {
    _dir: tempfile::TempDir,
    data_dir: PathBuf,
    store: CdrStore,
    accounts: AccountStore,
    now: Arc<Mutex<OffsetDateTime>>,
    users: HashMap<Role, User>,
    /// Session cookie value of each role's user.
    sessions: HashMap<Role, String>,
    /// Reloads `config_path` (see [`reload_config_text`]), with the
    /// administration layer in the fixture's database.
    reloader: Arc<crate::reload::Reloader>,
    /// Every configuration the reloader handed to the engine, in order.
    applied: Arc<Mutex<Vec<sip_server::b2bua::CoreConfig>>>,
    config_path: PathBuf,
    /// The event stream's feed, which `batches` publish into once the
    /// event writer has committed them, as in the PBX.
    feed: crate::events::EventFeed,
    batches: tokio::sync::mpsc::UnboundedSender<crate::events::EventBatch>,
    /// Engine double kept across requests once [`Fixture::keep_engine`]
    /// ran; otherwise each request gets a fresh one.
    engine: Mutex<Option<crate::live::Live>>,
}

/// Configuration file of the fixture's reloader, with `extra` appended.
fn reload_config_text(data_dir: &std::path::Path, extra: &str) -> String {
    format!(
        "data_dir = {data_dir:?}\n\
         [qa]\nmax_score = 5\n\
         [[qa.criteria]]\nid = \"greeting\"\nlabel = \"Greeting\"\nweight = 1\n\
         [[qa.criteria]]\nid = \"resolution\"\nlabel = \"Resolution\"\nweight = 3\n\
         [[agents]]\nid = \"1001\"\npassword = \"pw-1001\"\n\
         [[agents]]\nid = \"1002\"\npassword = \"pw-1002\"\n\
         [[queues]]\nname = \"general\"\nagents = [\"1001\", \"1002\"]\n\
         [[dids]]\nnumber = \"5000\"\nqueue = \"general\"\n{extra}"
    )
}

/// The password of each fixture user is its username plus this.
const PASSWORD_SUFFIX: &str = "-password";

fn username(role: Role) -> &'static str {
    match role {
        Role::Administrator => "ada",
        Role::Supervisor => "sam",
        Role::Qa => "quinn",
        Role::Agent => "alice",
    }
}

async fn fixture() -> Fixture {
    let dir = tempfile::tempdir().expect("temp dir");
    let data_dir = dir.path().join("data");
    let store = CdrStore::open(&data_dir).await.expect("store opens");
    let policy = Policy {
        password_cost: PasswordCost::MINIMUM,
        ..Policy::default()
    };
    let accounts = AccountStore::open(store.pool().clone(), policy)
        .await
        .expect("accounts open");
    let event_store = crate::events::EventStore::open(store.pool().clone())
        .await
        .expect("event store opens");
    let feed = crate::events::EventFeed::new(crate::events::FEED_CAPACITY);
    let (batches, queue) = tokio::sync::mpsc::unbounded_channel();
    tokio::spawn(crate::events::write_events(
        event_store,
        data_dir.join("queue_log"),
        queue,
        feed.clone(),
    ));
    crate::catalogue::Catalogue::open(store.pool().clone())
        .await
        .expect("catalogue opens");
    let mut users = HashMap::new();
    let mut sessions = HashMap::new();
    for role in Role::ALL {
        let name = username(role);
        let new = NewUser {
            username: name.to_owned(),
            password: format!("{name}{PASSWORD_SUFFIX}"),
            role,
            agent_id: (role == Role::Agent).then(|| OWN_AGENT.to_owned()),
        };
        let user = accounts.create_user(&new, T0).await.expect("user created");
        let session = accounts
            .login(name, &new.password, None, T0)
            .await
            .expect("login");
        users.insert(role, user);
        sessions.insert(role, session.token);
    }
    let config_path = dir.path().join("pbx.toml");
    let text = reload_config_text(&data_dir, "");
    std::fs::write(&config_path, &text).expect("write config");
    let running = crate::config::Config::parse(&text, &config_path.display().to_string())
        .expect("fixture configuration is valid");
    let layer_store = crate::config_layer::LayerStore::open(store.pool().clone())
        .await
        .expect("layer store opens");
    let applied = Arc::new(Mutex::new(Vec::new()));
    let reloader = Arc::new(
        crate::reload::Reloader::new(
            crate::reload::ConfigSource::File {
                path: config_path.clone(),
                overrides: crate::config::Overrides::default(),
            },
            running,
            crate::transport::Bound::udp_tcp_only("127.0.0.1:5060".parse().expect("address")),
            reconfigure_double(Arc::clone(&applied)),
        )
        .with_layer(layer_store, crate::config_layer::Layer::default(), text),
    );
    Fixture {
        reloader,
        applied,
        config_path,
        feed,
        batches,
        _dir: dir,
        data_dir,
        store,
        accounts,
        now: Arc::new(Mutex::new(T0)),
        users,
        sessions,
        engine: Mutex::new(None),
    }
}

/// A response, read whole.
struct Reply {
    status: StatusCode,
    headers: HeaderMap,
    body: Vec<u8>,
}

impl Reply {
    fn content_type(&self) -> &str {
        self.headers
            .get(header::CONTENT_TYPE)
            .and_then(|value| value.to_str().ok())
            .unwrap_or_default()
    }

    fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).expect("JSON body")
    }

    /// Checks an RFC 9457 body with the expected status and returns its detail.
    fn problem(&self, status: StatusCode) -> String {
        assert_eq!(
            self.status,
            status,
            "{}",
            String::from_utf8_lossy(&self.body)
        );
        assert_eq!(self.content_type(), "application/problem+json");
        let value = self.json();
        assert_eq!(value["type"], "about:blank");
        assert_eq!(value["status"], status.as_u16());
        assert_eq!(
            value["title"],
            status.canonical_reason().expect("standard status")
        );
        value["detail"].as_str().expect("detail is text").to_owned()
    }
}

/// Product id of the answered call agent 1001 is on in [`engine_double`].
const LIVE_CALL: &str = "live-call-1";

/// Answers live requests as an engine with agents 1001 and 1002, one queue
/// and one recorded call of agent 1001 ([`LIVE_CALL`]) would; the real
/// engine is exercised by the end-to-end tests.
fn engine_double() -> crate::live::Live {
    use crate::live::LiveRequest;
    use sip_server::b2bua::{AgentCommandError, AgentView, QueueView};
    let (requests, mut queue) = tokio::sync::mpsc::channel(8);
    tokio::spawn(async move {
        let mut recording_paused = false;
        while let Some(request) = queue.recv().await {
            match request {
                LiveRequest::SetRecordingPaused {
                    call,
                    paused,
                    actor,
                    reply,
                } => {
                    let result =
                        recording_pause_double(&call, paused, &actor, &mut recording_paused);
                    let _ = reply.send(result);
                }
                LiveRequest::Agents(reply) => {
                    let agent = |id: &str| AgentView {
                        id: id.to_owned(),
                        state: "available",
                        not_ready_reason: None,
                        contacts: 1,
                        calls_answered: 0,
                        talk_seconds: 0.0,
                        skills: [("language=ru".to_owned(), 5)].into(),
                        queues: vec!["general".to_owned()],
                        call_id: (id == OWN_AGENT).then(|| LIVE_CALL.to_owned()),
                        recording_paused: false,
                    };
                    let _ = reply.send(vec![agent("1001"), agent("1002")]);
                }
                LiveRequest::Queues(reply) => {
                    let _ = reply.send(vec![QueueView {
                        name: "general".to_owned(),
                        calls: 0,
                        longest_wait_seconds: 0.0,
                        staffed_agents: 2,
                        available_agents: 2,
                        expected_wait_seconds: None,
                        average_handle_seconds: None,
                        removed: false,
                    }]);
                }
                LiveRequest::Metrics(reply) => {
                    let _ = reply.send(crate::metrics::Snapshot::default());
                }
                LiveRequest::TrunkRegistrations(reply) => {
                    let _ = reply.send(vec![trunk_registration_double()]);
                }
                LiveRequest::SetReadiness { agent, reply, .. }
                | LiveRequest::SetLoggedIn { agent, reply, .. }
                | LiveRequest::SetSkills { agent, reply, .. } => {
                    let _ = reply.send(Ok(known_agent(agent)));
                }
                // Agent 1002 is in wrap-up, 1001 is not.
                LiveRequest::SetWrapUpCode { agent, reply, .. } => {
                    let result = known_agent(agent.clone()).and_then(|()| {
                        if agent == "1002" {
                            Ok(())
                        } else {
                            Err(AgentCommandError::Rejected {
                                agent: agent.clone(),
                                error: acd::AcdError::NotInWrapUp { agent },
                            })
                        }
                    });
                    let _ = reply.send(Ok(result));
                }
                // Every agent is a member of "general" and none of "sales".
                LiveRequest::AddMember {
                    agent,
                    queue,
                    reply,
                } => {
                    let result = known_agent(agent).and_then(|()| known_queue(&queue));
                    let _ = reply.send(Ok(result.map(|()| queue == "sales")));
                }
                LiveRequest::RemoveMember {
                    agent,
                    queue,
                    reply,
                } => {
                    let result = known_agent(agent.clone())
                        .and_then(|()| known_queue(&queue))
                        .and_then(|()| {
                            if queue == "general" {
                                Ok(())
                            } else {
                                Err(AgentCommandError::NotMember { agent, queue })
                            }
                        });
                    let _ = reply.send(Ok(result));
                }
                LiveRequest::QueueStats { queue, reply } => {
                    let _ = reply.send((queue == "general").then(|| queue_stats_double(&queue)));
                }
                // Replies with the queue names, so tests see what was applied.
                LiveRequest::Reconfigure { config, reply } => {
                    let names: Vec<String> = config.queues.iter().map(|q| q.name.clone()).collect();
                    let _ = reply.send(Ok(vec![format!("queues: {}", names.join(", "))]));
                }
            }
        }
    });
    crate::live::Live::new(requests)
}

/// Takes configurations as the engine would, keeping each in `applied`,
/// and reports the queue names as the applied change.
fn reconfigure_double(
    applied: Arc<Mutex<Vec<sip_server::b2bua::CoreConfig>>>,
) -> crate::live::Live {
    use crate::live::LiveRequest;
    let (requests, mut queue) = tokio::sync::mpsc::channel(8);
    tokio::spawn(async move {
        while let Some(request) = queue.recv().await {
            if let LiveRequest::Reconfigure { config, reply } = request {
                let names: Vec<String> = config.queues.iter().map(|q| q.name.clone()).collect();
                applied.lock().expect("applied lock").push(*config);
                let _ = reply.send(Ok(vec![format!("queues: {}", names.join(", "))]));
            }
        }
    });
    crate::live::Live::new(requests)
}

/// Pauses or resumes the recording of [`LIVE_CALL`] as the core would,
/// with the event 1.5 s after the answer.
fn recording_pause_double(
    call: &str,
    paused: bool,
    actor: &sip_server::b2bua::RecordingActor,
    current: &mut bool,
) -> Result<cdr::RecordingEvent, sip_server::b2bua::RecordingCommandError> {
    use sip_server::b2bua::RecordingCommandError;
    let foreign = actor
        .only_agent
        .as_deref()
        .is_some_and(|agent| agent != OWN_AGENT);
    if call != LIVE_CALL || foreign {
        return Err(RecordingCommandError::UnknownCall {
            call: call.to_owned(),
        });
    }
    match (paused, *current) {
        (true, true) => Err(RecordingCommandError::AlreadyPaused {
            call: call.to_owned(),
        }),
        (false, false) => Err(RecordingCommandError::NotPaused {
            call: call.to_owned(),
        }),
        _ => {
            *current = paused;
            Ok(cdr::RecordingEvent {
                action: if paused {
                    cdr::RecordingAction::Pause
                } else {
                    cdr::RecordingAction::Resume
                },
                offset_seconds: 1.5,
                at: T0,
                source: actor.source,
                actor: actor.name.clone(),
            })
        }
    }
}

fn known_agent(agent: String) -> Result<(), sip_server::b2bua::AgentCommandError> {
    if agent == "1001" || agent == "1002" {
        Ok(())
    } else {
        Err(sip_server::b2bua::AgentCommandError::UnknownAgent { agent })
    }
}

fn known_queue(queue: &str) -> Result<(), sip_server::b2bua::AgentCommandError> {
    if queue == "general" || queue == "sales" {
        Ok(())
    } else {
        Err(sip_server::b2bua::AgentCommandError::UnknownQueue {
            queue: queue.to_owned(),
        })
    }
}

fn queue_stats_double(queue: &str) -> sip_server::b2bua::QueueStatsView {
    sip_server::b2bua::QueueStatsView {
        name: queue.to_owned(),
        calls: 1,
        longest_wait_seconds: 12.5,
        staffed_agents: 2,
        available_agents: 0,
        expected_wait_seconds: Some(30.0),
        average_handle_seconds: Some(180.0),
        average_answer_wait_seconds: Some(8.0),
        arrivals_per_hour: Some(40.0),
        answered: 9,
        answered_in_service_level: 6,
        abandoned: 1,
        timed_out: 0,
        exited: 0,
        service_level_percent: Some(60.0),
        service_level_seconds: 20.0,
        removed: false,
    }
}

impl Fixture {
    fn app(&self) -> Router {
        let now = Arc::clone(&self.now);
        router_with(ApiState {
            calls: HttpState {
                cdr: self.store.clone(),
                data_dir: self.data_dir.clone(),
                live: Some(self.engine()),
                reloader: Some(Arc::clone(&self.reloader)),
                events: Some(self.feed.clone()),
            },
            accounts: self.accounts.clone(),
            clock: Arc::new(move || *now.lock().expect("clock lock")),
        })
    }

    /// Commits `events` through the event writer, which publishes them to
    /// the stream, and returns their sequence numbers.
    async fn commit(&self, events: Vec<crate::events::NewEvent>) -> Vec<i64> {
        let store = crate::events::EventStore::on(self.store.pool().clone());
        let before = store.last_seq().await.expect("newest event");
        let count = events.len();
        let (reply, committed) = tokio::sync::oneshot::channel();
        let batch = crate::events::EventBatch {
            events,
            lines: Vec::new(),
            acks: vec![Box::new(move |result| {
                let _ = reply.send(result);
            })],
        };
        self.batches.send(batch).expect("event writer runs");
        committed.await.expect("writer replies").expect("committed");
        let stored = store
            .events_after(before, None, 1000)
            .await
            .expect("events readable");
        assert_eq!(stored.len(), count);
        stored.into_iter().map(|event| event.seq).collect()
    }

    /// Makes every later request reach one engine double, so that state
    /// such as a recording pause lasts from one request to the next.
    fn keep_engine(&self) {
        *self.engine.lock().expect("engine lock") = Some(engine_double());
    }

    fn engine(&self) -> crate::live::Live {
        let kept = self.engine.lock().expect("engine lock").clone();
        kept.unwrap_or_else(engine_double)
    }

    fn advance(&self, by: time::Duration) {
        *self.now.lock().expect("clock lock") += by;
    }

    fn user(&self, role: Role) -> &User {
        &self.users[&role]
    }

    async fn send(&self, request: Request<Body>) -> Reply {
        let client: SocketAddr = CLIENT.parse().expect("valid address");
        self.send_from(client, request).await
    }

    /// Sends `request` as if it came from `client`.
    async fn send_from(&self, client: SocketAddr, mut request: Request<Body>) -> Reply {
        request.extensions_mut().insert(ConnectInfo(client));
        let response = self
            .app()
            .oneshot(request)
            .await
            .expect("router is infallible");
        let status = response.status();
        let headers = response.headers().clone();
        // An event stream never ends; its tests read it frame by frame.
        let streaming = headers
            .get(header::CONTENT_TYPE)
            .is_some_and(|value| value == "text/event-stream");
        if streaming {
            return Reply {
                status,
                headers,
                body: Vec::new(),
            };
        }
        let body = to_bytes(response.into_body(), 16 << 20)
            .await
            .expect("body readable");
        Reply {
            status,
            headers,
            body: body.to_vec(),
        }
    }

    /// Sends `method uri` with the session cookie of `role` (none for
    /// `None`) and `body` as JSON when given.
    async fn call(
        &self,
        role: Option<Role>,
        method: Method,
        uri: &str,
        body: Option<serde_json::Value>,
    ) -> Reply {
        let mut builder = Request::builder().method(method).uri(uri);
        if let Some(role) = role {
            let cookie = format!("{}={}", auth::SESSION_COOKIE, self.sessions[&role]);
            builder = builder.header(header::COOKIE, cookie);
        }
        let body = match body {
            Some(value) => {
                builder = builder.header(header::CONTENT_TYPE, "application/json");
                Body::from(value.to_string())
            }
            None => Body::empty(),
        };
        self.send(builder.body(body).expect("valid request")).await
    }

    async fn get(&self, role: Role, uri: &str) -> Reply {
        self.call(Some(role), Method::GET, uri, None).await
    }
}

fn record(id: &str, minute: u8, recording_path: Option<&str>) -> CallRecord {
    record_for(id, minute, recording_path, OWN_AGENT)
}

fn record_for(id: &str, minute: u8, recording_path: Option<&str>, agent: &str) -> CallRecord {
    let arrived_at = T0 + time::Duration::minutes(minute.into());
    CallRecord {
        id: id.to_owned(),
        caller_call_id: format!("{id}@192.0.2.1"),
        agent_call_id: Some(format!("{id}-agent@pbx.local")),
        caller: "+15550100".to_owned(),
        dialed: "5000".to_owned(),
        trunk: Some("local-carrier".to_owned()),
        source_extension: None,
        direction: cdr::CallDirection::Inbound,
        queue: Some("general".to_owned()),
        request_type: None,
        agent: Some(agent.to_owned()),
        arrived_at,
        queued_at: Some(arrived_at),
        answered_at: Some(arrived_at + time::Duration::seconds(4)),
        ended_at: arrived_at + time::Duration::seconds(64),
        wait_seconds: 4.0,
        talk_seconds: 60.0,
        disposition: Disposition::Answered,
        sip_status: None,
        hangup_side: Some(HangupSide::Caller),
        recording_path: recording_path.map(str::to_owned),
        recording_seconds: recording_path.map(|_| 60.0),
        interrupted: false,
        caller_answered_at: None,
        voicemail_box: None,
        forwarded_to: None,
        diverted_from: None,
        callback_of: None,
        recording_events: Vec::new(),
        media_quality: None,
        rebuilt: false,
        transfers: Vec::new(),
        hold_count: 0,
        hold_seconds: 0.0,
        survey: None,
        csat_score: None,
    }
}

/// Writes a recording file and the record pointing at it; returns the bytes.
async fn recorded_call(fixture: &Fixture, id: &str) -> Vec<u8> {
    let relative = format!("recordings/2026/12/04/{id}.wav");
    let file = fixture.data_dir.join(&relative);
    std::fs::create_dir_all(file.parent().expect("has parent")).expect("create folders");
    let bytes = format!("RIFF\x24\x00\x00\x00WAVEfmt {id}").into_bytes();
    std::fs::write(&file, &bytes).expect("write recording");
    let facts = crate::catalogue::FileFacts {
        ended_at: T0 + time::Duration::seconds(64),
        duration_seconds: Some(60.0),
        digest: crate::catalogue::digest_file(&file).ok(),
    };
    crate::catalogue::Catalogue::new(fixture.store.pool().clone())
        .finished(
            id,
            crate::catalogue::RecordingKind::Stereo,
            &relative,
            crate::catalogue::RecordingStatus::Complete,
            &facts,
        )
        .await
        .expect("catalogued");
    fixture
        .store
        .write(&record(id, 0, Some(&relative)))
        .await
        .expect("write");
    bytes
}

fn ids(reply: &Reply) -> Vec<String> {
    let records: Vec<CallRecord> = serde_json::from_slice(&reply.body).expect("records");
    records.into_iter().map(|r| r.id).collect()
}

#[tokio::test]
async fn health_reports_ok() {
    let fixture = fixture().await;
    let reply = fixture.call(None, Method::GET, "/health", None).await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(reply.content_type(), "application/json");
    assert_eq!(reply.json(), serde_json::json!({ "status": "ok" }));
}

#[tokio::test]
async fn list_newest_first_with_paging() {
    let fixture = fixture().await;
    for (id, minute) in [("b", 2), ("a", 1), ("c", 3)] {
        fixture
            .store
            .write(&record(id, minute, None))
            .await
            .expect("write");
    }
    let reply = fixture.get(Role::Supervisor, "/api/calls").await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(ids(&reply), ["c", "b", "a"]);
    let reply = fixture
        .get(Role::Supervisor, "/api/calls?limit=1&offset=1")
        .await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(ids(&reply), ["b"]);
    let reply = fixture
        .get(Role::Supervisor, "/api/calls?limit=1000&offset=3")
        .await;
    assert!(ids(&reply).is_empty());
}

#[tokio::test]
async fn list_rejects_bad_parameters() {
    let fixture = fixture().await;
    let cases = [
        (
            "/api/calls?limit=abc",
            "limit must be a whole number from 1 to 1000, got \"abc\"",
        ),
        (
            "/api/calls?limit=-1",
            "limit must be a whole number from 1 to 1000, got \"-1\"",
        ),
        ("/api/calls?offset=1.5", "offset must be a whole number"),
        (
            "/api/calls?limit=1001",
            "limit must be a whole number from 1 to 1000, got \"1001\"",
        ),
        (
            "/api/calls?limit=0",
            "limit must be a whole number from 1 to 1000, got \"0\"",
        ),
        (
            "/api/calls?disposition=lost",
            "disposition must be answered, abandoned, no_agent, failed, voicemail or callback, got \"lost\"",
        ),
    ];
    for (uri, expected) in cases {
        let reply = fixture.get(Role::Qa, uri).await;
        let detail = reply.problem(StatusCode::BAD_REQUEST);
        assert!(detail.starts_with(expected), "{uri}: {detail}");
    }
}

#[tokio::test]
async fn list_filters_voicemail_messages() {
    let fixture = fixture().await;
    let answered = record_for("answered", 1, None, OWN_AGENT);
    fixture.store.write(&answered).await.expect("write");
    let message = CallRecord {
        agent: None,
        disposition: cdr::Disposition::Voicemail,
        voicemail_box: Some("general".to_owned()),
        ..record_for("message", 2, None, OWN_AGENT)
    };
    fixture.store.write(&message).await.expect("write");
    let reply = fixture
        .get(Role::Qa, "/api/calls?disposition=voicemail")
        .await;
    assert_eq!(ids(&reply), ["message"]);
    let reply = fixture.get(Role::Qa, "/api/calls").await;
    assert_eq!(ids(&reply), ["message", "answered"]);
}

#[tokio::test]
async fn agent_sees_only_own_calls() {
    let fixture = fixture().await;
    let calls = [
        ("own-1", 1, OWN_AGENT),
        ("other", 2, "1002"),
        ("own-2", 3, OWN_AGENT),
    ];
    for (id, minute, agent) in calls {
        let call = record_for(id, minute, None, agent);
        fixture.store.write(&call).await.expect("write");
    }
    let unanswered = CallRecord {
        agent: None,
        ..record_for("unanswered", 4, None, OWN_AGENT)
    };
    fixture.store.write(&unanswered).await.expect("write");

    let reply = fixture.get(Role::Agent, "/api/calls").await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(ids(&reply), ["own-2", "own-1"]);
    let reply = fixture
        .get(Role::Agent, "/api/calls?limit=1&offset=1")
        .await;
    assert_eq!(ids(&reply), ["own-1"]);
    for role in [Role::Administrator, Role::Supervisor, Role::Qa] {
        let reply = fixture.get(role, "/api/calls").await;
        assert_eq!(
            ids(&reply),
            ["unanswered", "own-2", "other", "own-1"],
            "{role:?}"
        );
    }

    let reply = fixture.get(Role::Agent, "/api/calls/own-1").await;
    assert_eq!(reply.status, StatusCode::OK);
    let reply = fixture.get(Role::Agent, "/api/calls/other").await;
    let detail = reply.problem(StatusCode::NOT_FOUND);
    assert_eq!(
        detail, "call \"other\" not found",
        "same answer as a missing call"
    );
    let reply = fixture.get(Role::Supervisor, "/api/calls/other").await;
    assert_eq!(reply.status, StatusCode::OK);
}

#[tokio::test]
async fn get_one_call() {
    let fixture = fixture().await;
    let stored = record("call-1", 0, None);
    fixture.store.write(&stored).await.expect("write");
    let reply = fixture.get(Role::Qa, "/api/calls/call-1").await;
    assert_eq!(reply.status, StatusCode::OK);
    let returned: CallRecord = serde_json::from_slice(&reply.body).expect("record");
    assert_eq!(returned, stored);

    let reply = fixture.get(Role::Qa, "/api/calls/call-2").await;
    assert_eq!(
        reply.problem(StatusCode::NOT_FOUND),
        "call \"call-2\" not found"
    );
}

#[tokio::test]
async fn recording_served_as_wav() {
    let fixture = fixture().await;
    let bytes = recorded_call(&fixture, "call-1").await;
    for role in [Role::Supervisor, Role::Qa] {
        let reply = fixture.get(role, "/api/calls/call-1/recording").await;
        assert_eq!(reply.status, StatusCode::OK, "{role:?}");
        assert_eq!(reply.content_type(), "audio/wav");
        assert_eq!(reply.body, bytes);
    }
}

#[tokio::test]
async fn recording_denied_to_other_roles() {
    let fixture = fixture().await;
    recorded_call(&fixture, "call-1").await;
    for role in [Role::Administrator, Role::Agent] {
        let reply = fixture.get(role, "/api/calls/call-1/recording").await;
        let detail = reply.problem(StatusCode::FORBIDDEN);
        assert_eq!(
            detail,
            format!(
                "role {} may not replay recordings; allowed roles: supervisor, qa",
                role.as_str()
            )
        );
    }
    let entries = fixture.accounts.list_audit(10, 0).await.expect("audit");
    assert!(
        entries
            .iter()
            .all(|entry| entry.action != calls::REPLAY_ACTION),
        "a denied replay is not logged as one"
    );
}

#[tokio::test]
async fn recording_missing_cases() {
    let fixture = fixture().await;
    let store = &fixture.store;
    store
        .write(&record("no-recording", 0, None))
        .await
        .expect("write");
    store
        .write(&record("file-gone", 1, Some("recordings/gone.wav")))
        .await
        .expect("write");
    let cases = [
        ("/api/calls/unknown/recording", "call \"unknown\" not found"),
        (
            "/api/calls/no-recording/recording",
            "call \"no-recording\" has no recording",
        ),
        (
            "/api/calls/file-gone/recording",
            "recording of call \"file-gone\" not found",
        ),
    ];
    for (uri, expected) in cases {
        let reply = fixture.get(Role::Qa, uri).await;
        assert_eq!(reply.problem(StatusCode::NOT_FOUND), expected, "{uri}");
    }
    let entries = fixture.accounts.list_audit(10, 0).await.expect("audit");
    assert!(
        entries
            .iter()
            .all(|entry| entry.action != calls::REPLAY_ACTION),
        "nothing was replayed"
    );
}

#[tokio::test]
async fn recording_path_cannot_escape() {
    let fixture = fixture().await;
    // A readable file right outside the data directory.
    let outside = fixture
        .data_dir
        .parent()
        .expect("has parent")
        .join("secret.wav");
    std::fs::write(&outside, b"outside").expect("write outside file");
    let absolute = outside.to_str().expect("UTF-8 temp path").to_owned();
    let escaping = [
        ("dotdot", "../secret.wav".to_owned()),
        ("nested-dotdot", "recordings/../../secret.wav".to_owned()),
        ("absolute", absolute),
    ];
    for (id, path) in &escaping {
        fixture
            .store
            .write(&record(id, 0, Some(path)))
            .await
            .expect("write");
    }
    #[cfg(unix)]
    {
        std::os::unix::fs::symlink(&outside, fixture.data_dir.join("link.wav")).expect("symlink");
        fixture
            .store
            .write(&record("symlink", 0, Some("link.wav")))
            .await
            .expect("write");
    }
    let mut ids: Vec<&str> = escaping.iter().map(|(id, _)| *id).collect();
    if cfg!(unix) {
        ids.push("symlink");
    }
    for id in ids {
        let uri = format!("/api/calls/{id}/recording");
        let reply = fixture.get(Role::Supervisor, &uri).await;
        let detail = reply.problem(StatusCode::NOT_FOUND);
        assert_eq!(detail, format!("recording of call {id:?} not found"));
    }
}

#[tokio::test]
async fn unknown_route_is_problem() {
    let fixture = fixture().await;
    let reply = fixture.get(Role::Supervisor, "/api/nothing-here").await;
    let detail = reply.problem(StatusCode::NOT_FOUND);
    assert!(detail.starts_with("no such route"), "{detail}");
    let reply = fixture
        .call(Some(Role::Supervisor), Method::POST, "/api/calls", None)
        .await;
    reply.problem(StatusCode::METHOD_NOT_ALLOWED);
}

/// A trunk registered until 2026-01-01T00:10:00Z whose last REGISTER got
/// 200.
fn trunk_registration_double() -> sip_server::b2bua::TrunkRegistrationView {
    let at = |secs: u64| std::time::UNIX_EPOCH + std::time::Duration::from_secs(secs);
    sip_server::b2bua::TrunkRegistrationView {
        trunk: "carrier".to_owned(),
        registrar: "192.0.2.10:5060".parse().unwrap(),
        aor: "sip:4930555@carrier.example".to_owned(),
        state: sip_server::trunk_registration::RegistrationState::Registered,
        expires_at: Some(at(1_767_226_200)),
        next_attempt_at: Some(at(1_767_225_900)),
        last_status: Some(200),
        last_reason: Some("OK".to_owned()),
    }
}

#[tokio::test]
async fn trunk_registrations_for_supervisors() {
    let fixture = fixture().await;
    let reply = fixture
        .call(
            Some(Role::Agent),
            Method::GET,
            "/api/trunks/registrations",
            None,
        )
        .await;
    reply.problem(StatusCode::FORBIDDEN);
    let reply = fixture
        .call(
            Some(Role::Supervisor),
            Method::GET,
            "/api/trunks/registrations",
            None,
        )
        .await;
    assert_eq!(reply.status, StatusCode::OK);
    let body = reply.json();
    let entry = &body[0];
    assert_eq!(entry["trunk"], "carrier");
    assert_eq!(entry["registrar"], "192.0.2.10:5060");
    assert_eq!(entry["state"], "registered");
    assert_eq!(entry["expires_at"], "2026-01-01T00:10:00Z");
    assert_eq!(entry["next_attempt_at"], "2026-01-01T00:05:00Z");
    assert_eq!(entry["last_status"], 200);
    assert_eq!(entry["last_reason"], "OK");
}

#[tokio::test]
async fn agents_see_only_themselves_and_set_own_state() {
    let fixture = fixture().await;
    let agents = fixture
        .call(Some(Role::Agent), Method::GET, "/api/agents", None)
        .await;
    assert_eq!(agents.status, StatusCode::OK);
    let ids: Vec<String> = agents
        .json()
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["id"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(ids, [OWN_AGENT]);

    let pause = serde_json::json!({ "state": "not_ready", "reason": "lunch" });
    let own = format!("/api/agents/{OWN_AGENT}/state");
    let reply = fixture
        .call(Some(Role::Agent), Method::PUT, &own, Some(pause))
        .await;
    assert_eq!(reply.status, StatusCode::NO_CONTENT);

    let bad = serde_json::json!({ "state": "asleep" });
    let reply = fixture
        .call(Some(Role::Supervisor), Method::PUT, &own, Some(bad))
        .await;
    assert!(reply.problem(StatusCode::BAD_REQUEST).contains("ready"));
    let unknown = serde_json::json!({ "state": "ready" });
    let reply = fixture
        .call(
            Some(Role::Supervisor),
            Method::PUT,
            "/api/agents/9999/state",
            Some(unknown),
        )
        .await;
    reply.problem(StatusCode::NOT_FOUND);
}
