//! Administration of agents, skills and queues: roles, validation errors
//! traced to the field sent, conflicts with other definitions, the audit
//! log, the configuration handed to the engine, and the stored layer that
//! a restart loads again.

use std::time::{Duration, Instant};

use serde_json::{Value, json};

use super::*;

async fn actions(fixture: &Fixture) -> Vec<(String, Option<String>)> {
    let entries = fixture.accounts.list_audit(100, 0).await.expect("audit");
    entries
        .into_iter()
        .map(|entry| (entry.action, entry.target))
        .collect()
}

fn last_applied(fixture: &Fixture) -> sip_server::b2bua::CoreConfig {
    fixture
        .applied
        .lock()
        .expect("applied lock")
        .last()
        .cloned()
        .expect("a configuration reached the engine")
}

fn new_agent() -> Value {
    json!({
        "id": "1003",
        "name": "Ana",
        "password": "pw-1003",
        "skills": ["language=ru:5"],
        "queues": ["general"],
        "wrap_up_secs": 45,
    })
}

async fn post(fixture: &Fixture, uri: &str, body: Value) -> Reply {
    fixture
        .call(Some(Role::Administrator), Method::POST, uri, Some(body))
        .await
}

/// Checks a 422 or 409 problem and returns its `errors` member.
fn field_errors(reply: &Reply, status: StatusCode) -> Vec<Value> {
    reply.problem(status);
    reply.json()["errors"]
        .as_array()
        .cloned()
        .expect("errors member")
}

#[tokio::test]
async fn each_role_reads_or_changes_as_allowed() {
    let fixture = fixture().await;
    for path in [
        "/api/admin/agents",
        "/api/admin/skills",
        "/api/admin/queues",
    ] {
        for role in [Role::Administrator, Role::Supervisor] {
            let reply = fixture.get(role, path).await;
            assert_eq!(reply.status, StatusCode::OK, "{role:?} {path}");
        }
        for role in [Role::Qa, Role::Agent] {
            let reply = fixture.get(role, path).await;
            reply.problem(StatusCode::FORBIDDEN);
        }
        let anonymous = fixture.call(None, Method::GET, path, None).await;
        anonymous.problem(StatusCode::UNAUTHORIZED);
    }
    let writes = [
        (Method::POST, "/api/admin/agents", Some(new_agent())),
        (
            Method::PUT,
            "/api/admin/agents/1001",
            Some(json!({"name": "x"})),
        ),
        (Method::DELETE, "/api/admin/agents/1001", None),
        (
            Method::POST,
            "/api/admin/skills",
            Some(json!({"name": "language=ru"})),
        ),
        (Method::DELETE, "/api/admin/queues/general", None),
    ];
    for role in [Role::Supervisor, Role::Qa, Role::Agent] {
        for (method, path, body) in &writes {
            let reply = fixture
                .call(Some(role), method.clone(), path, body.clone())
                .await;
            let detail = reply.problem(StatusCode::FORBIDDEN);
            assert!(detail.contains("allowed roles: administrator"), "{detail}");
        }
    }
    assert!(fixture.applied.lock().expect("applied lock").is_empty());
    assert!(actions(&fixture).await.is_empty());
}

#[tokio::test]
async fn created_agent_reaches_the_engine_and_takes_calls() {
    let fixture = fixture().await;
    let reply = post(&fixture, "/api/admin/agents", new_agent()).await;
    assert_eq!(reply.status, StatusCode::CREATED, "{:?}", reply.json());
    let shown = reply.json();
    assert_eq!(shown["id"], "1003");
    assert_eq!(shown["queues"], json!(["general"]));
    assert_eq!(shown["password_set"], true);
    assert_eq!(shown["source"], "administration");
    assert!(shown.get("password").is_none(), "{shown}");
    assert!(actions(&fixture).await.contains(&(
        "config.agent.create".to_owned(),
        Some("agent:1003".to_owned())
    )));

    let applied = last_applied(&fixture);
    assert_eq!(applied.queue_agents["general"], ["1001", "1002", "1003"]);
    assert_eq!(applied.passwords["1003"], "pw-1003");
    assert_eq!(applied.agent_skills["1003"]["language=ru"], 5);
    assert_eq!(applied.agent_wrap_up["1003"], Duration::from_secs(45));
    assert!(
        !applied.agent_wrap_up.contains_key("1001"),
        "1001 follows the queue"
    );

    // The engine's queue, built from that configuration, offers a call
    // requiring Russian to the new agent once it logs in.
    let t0 = Instant::now();
    let mut acd = acd::Acd::new();
    for queue in &applied.queues {
        acd.add_queue(queue.clone());
    }
    for (agent, skills) in &applied.agent_skills {
        let queues: Vec<String> = applied
            .queue_agents
            .iter()
            .filter(|(_, members)| members.contains(agent))
            .map(|(queue, _)| queue.clone())
            .collect();
        acd.add_agent(agent, &queues);
        acd.set_skills(agent, skills.clone(), t0)
            .expect("skills set");
    }
    acd.set_logged_in("1003", true, t0);
    acd.set_reachable("1003", true, t0);
    let call = acd::CallData {
        requirements: vec!["language=ru:3".parse().expect("requirement")],
        ..acd::CallData::default()
    };
    acd.enqueue_with("call-1", "general", call, t0 + Duration::from_secs(1))
        .expect("enqueued");
    let offers: Vec<acd::Action> = std::iter::from_fn(|| acd.poll_action()).collect();
    assert_eq!(
        offers,
        [acd::Action::Offer {
            call: "call-1".to_owned(),
            agent: "1003".to_owned(),
        }]
    );
}

#[tokio::test]
async fn invalid_fields_are_named() {
    let fixture = fixture().await;
    let cases = [
        (
            json!({"id": "1003", "password": "p", "skills": ["language=ru:300"]}),
            "#/skills/0",
        ),
        (
            json!({"id": "1003", "password": "p", "colour": "red"}),
            "#/colour",
        ),
        (json!({"id": "10 03", "password": "p"}), "#/id"),
        (
            json!({"id": "1003", "password": "p", "queues": ["nightly"]}),
            "#/queues/0",
        ),
        (json!({"id": "1003"}), "#/password"),
        (
            json!({"id": "1003", "password": "p", "wrap_up_secs": 100_000}),
            "#/wrap_up_secs",
        ),
    ];
    for (body, pointer) in cases {
        let reply = post(&fixture, "/api/admin/agents", body.clone()).await;
        let errors = field_errors(&reply, StatusCode::UNPROCESSABLE_ENTITY);
        assert_eq!(errors[0]["pointer"], pointer, "{body}: {errors:?}");
        assert!(!errors[0]["detail"].as_str().unwrap_or_default().is_empty());
    }

    let queues = [
        (
            json!({"name": "sales", "ring_timeout_secs": 0}),
            "#/ring_timeout_secs",
        ),
        (
            json!({"name": "sales", "strategy": "fastest"}),
            "#/strategy",
        ),
        (
            json!({"name": "sales", "steps": [{"after_secs": 30, "any_agent": true, "overflow": "queue:general"}]}),
            "#/steps/0",
        ),
        (
            json!({"name": "sales", "steps": [{"after_secs": 30, "keep": ["service=passport:3"]}]}),
            "#/steps/0/keep/0",
        ),
        (json!({"name": "sales", "agents": ["9999"]}), "#/agents/0"),
        (
            json!({"name": "sales", "overflow": "queue:nowhere"}),
            "#/overflow",
        ),
    ];
    for (body, pointer) in queues {
        let reply = post(&fixture, "/api/admin/queues", body.clone()).await;
        let errors = field_errors(&reply, StatusCode::UNPROCESSABLE_ENTITY);
        assert_eq!(errors[0]["pointer"], pointer, "{body}: {errors:?}");
    }

    let detail = post(
        &fixture,
        "/api/admin/queues",
        json!({"name": "sales", "ring_timeout_secs": 0}),
    )
    .await
    .problem(StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(
        detail,
        "the queue \"sales\" was not created: ring_timeout_secs: must be greater than 0"
    );
    // Nothing was stored, applied or audited.
    assert!(fixture.applied.lock().expect("applied lock").is_empty());
    assert!(actions(&fixture).await.is_empty());
    let agents = fixture
        .get(Role::Administrator, "/api/admin/agents")
        .await
        .json();
    assert_eq!(agents.as_array().map(Vec::len), Some(2));
}

#[tokio::test]
async fn conflicts_are_409() {
    let fixture = fixture().await;
    let duplicate = post(
        &fixture,
        "/api/admin/agents",
        json!({"id": "1001", "password": "p"}),
    )
    .await;
    let detail = duplicate.problem(StatusCode::CONFLICT);
    assert!(detail.contains("already exists"), "{detail}");

    // The DID 5000 routes to general, so general cannot go.
    let reply = fixture
        .call(
            Some(Role::Administrator),
            Method::DELETE,
            "/api/admin/queues/general",
            None,
        )
        .await;
    let errors = field_errors(&reply, StatusCode::CONFLICT);
    assert_eq!(errors[0]["key"], "dids[0].queue");
    assert!(errors[0].get("pointer").is_none(), "{errors:?}");

    let missing = fixture
        .call(
            Some(Role::Administrator),
            Method::DELETE,
            "/api/admin/queues/night",
            None,
        )
        .await;
    missing.problem(StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn skills_catalogue_checks_agents() {
    let fixture = fixture().await;
    let reply = post(
        &fixture,
        "/api/admin/skills",
        json!({"name": "language=ru", "description": "Speaks Russian"}),
    )
    .await;
    assert_eq!(reply.status, StatusCode::CREATED, "{:?}", reply.json());

    let unknown = json!({"id": "1003", "password": "p", "skills": ["language=en:3"]});
    let reply = post(&fixture, "/api/admin/agents", unknown).await;
    let errors = field_errors(&reply, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(errors[0]["pointer"], "#/skills/0");
    assert!(
        errors[0]["detail"]
            .as_str()
            .unwrap_or_default()
            .contains("not in the [[skills]] catalogue"),
        "{errors:?}"
    );
    let reply = post(&fixture, "/api/admin/agents", new_agent()).await;
    assert_eq!(reply.status, StatusCode::CREATED);
    let reply = post(
        &fixture,
        "/api/admin/skills",
        json!({"name": "service=passport"}),
    )
    .await;
    assert_eq!(reply.status, StatusCode::CREATED);
    // In use by 1003, so the skill stays. (Deleting the last skill would
    // be allowed, because an empty catalogue checks nothing.)
    let reply = fixture
        .call(
            Some(Role::Administrator),
            Method::DELETE,
            "/api/admin/skills/language=ru",
            None,
        )
        .await;
    let errors = field_errors(&reply, StatusCode::CONFLICT);
    assert_eq!(errors[0]["key"], "agents[2].skills[0]");
    assert!(
        errors[0]["detail"]
            .as_str()
            .unwrap_or_default()
            .starts_with("agent \"1003\": "),
        "{errors:?}"
    );
}

#[tokio::test]
async fn replace_and_delete_agent() {
    let fixture = fixture().await;
    post(&fixture, "/api/admin/agents", new_agent()).await;
    // Without a password the stored one stays; without queues the
    // membership stays.
    let reply = fixture
        .call(
            Some(Role::Administrator),
            Method::PUT,
            "/api/admin/agents/1003",
            Some(json!({"name": "Ana B.", "skills": []})),
        )
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{:?}", reply.json());
    assert_eq!(reply.json()["name"], "Ana B.");
    assert_eq!(reply.json()["queues"], json!(["general"]));
    assert_eq!(last_applied(&fixture).passwords["1003"], "pw-1003");

    let renamed = fixture
        .call(
            Some(Role::Administrator),
            Method::PUT,
            "/api/admin/agents/1003",
            Some(json!({"id": "1004"})),
        )
        .await;
    assert_eq!(
        field_errors(&renamed, StatusCode::UNPROCESSABLE_ENTITY)[0]["pointer"],
        "#/id"
    );

    // A file agent changed through the API is now the layer's.
    let reply = fixture
        .call(
            Some(Role::Administrator),
            Method::PUT,
            "/api/admin/agents/1001",
            Some(json!({"queues": []})),
        )
        .await;
    assert_eq!(reply.json()["source"], "administration");
    assert_eq!(reply.json()["queues"], json!([]));

    let reply = fixture
        .call(
            Some(Role::Administrator),
            Method::DELETE,
            "/api/admin/agents/1003",
            None,
        )
        .await;
    assert_eq!(reply.status, StatusCode::NO_CONTENT);
    let general = fixture
        .get(Role::Supervisor, "/api/admin/queues/general")
        .await
        .json();
    assert_eq!(general["agents"], json!(["1002"]));
    let audit = actions(&fixture).await;
    for action in [
        "config.agent.create",
        "config.agent.update",
        "config.agent.delete",
    ] {
        assert!(
            audit.iter().any(|(name, _)| name == action),
            "{action} missing from {audit:?}"
        );
    }
}

#[tokio::test]
async fn changes_survive_reload_and_restart() {
    let fixture = fixture().await;
    post(&fixture, "/api/admin/agents", new_agent()).await;
    let steps = json!({
        "name": "sales",
        "agents": ["1003"],
        "strategy": "best-proficiency",
        "max_wait_secs": 300,
        "steps": [
            {"after_secs": 30, "keep": ["language>=2"]},
            {"after_secs": 60, "any_agent": true},
            {"after_secs": 240, "overflow": "queue:general"},
        ],
    });
    let reply = post(&fixture, "/api/admin/queues", steps).await;
    assert_eq!(reply.status, StatusCode::CREATED, "{:?}", reply.json());
    assert_eq!(reply.json()["steps"][2]["overflow"], "queue:general");

    // The file's own reload keeps the administration changes.
    let reply = fixture
        .call(
            Some(Role::Administrator),
            Method::POST,
            "/api/config/reload",
            None,
        )
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{:?}", reply.json());
    let applied = last_applied(&fixture);
    assert_eq!(applied.queue_agents["sales"], ["1003"]);
    let sales = applied
        .queues
        .iter()
        .find(|queue| queue.name == "sales")
        .expect("sales applied");
    assert_eq!(sales.steps.len(), 3);
    assert_eq!(sales.strategy, acd::Strategy::BestProficiency);

    // A restart reads the file and the stored layer again.
    let text = std::fs::read_to_string(&fixture.config_path).expect("config");
    let origin = fixture.config_path.display().to_string();
    let file = crate::config::Config::parse(&text, &origin).expect("file valid");
    assert!(file.agents.iter().all(|agent| agent.id != "1003"));
    let source = crate::reload::ConfigSource::File {
        path: fixture.config_path.clone(),
        overrides: crate::config::Overrides::default(),
    };
    let store = crate::config_layer::LayerStore::open(fixture.store.pool().clone())
        .await
        .expect("layer store");
    let (config, layer, merged) = crate::reload::load_layer(&source, file, &store)
        .await
        .expect("layer loads");
    assert_eq!(
        layer.entries().len(),
        3,
        "agent 1003, general's members, sales"
    );
    assert!(config.agents.iter().any(|agent| agent.id == "1003"));
    assert!(config.queues.iter().any(|queue| queue.name == "sales"));
    assert!(merged.contains("1003"));
}
