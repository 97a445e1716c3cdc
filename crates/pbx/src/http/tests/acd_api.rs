//! Agent skills, queue membership, login and logout, queue statistics and
//! configuration reload through the API: bad input, unknown agents and
//! queues, and the audit entries of changes. Roles are covered for every
//! route in `access`.

use serde_json::json;

use super::*;

async fn actions(fixture: &Fixture) -> Vec<(String, Option<String>)> {
    let entries = fixture.accounts.list_audit(100, 0).await.expect("audit");
    entries
        .into_iter()
        .map(|entry| (entry.action, entry.target))
        .collect()
}

#[tokio::test]
async fn skills_are_replaced_and_audited() {
    let fixture = fixture().await;
    let body = json!({ "skills": { "language=ru": 5, "service=passport": 0 } });
    let reply = fixture
        .call(
            Some(Role::Supervisor),
            Method::PUT,
            "/api/agents/1001/skills",
            Some(body),
        )
        .await;
    assert_eq!(reply.status, StatusCode::NO_CONTENT);
    assert!(
        actions(&fixture)
            .await
            .contains(&("agent.skills".to_owned(), Some("agent:1001".to_owned())))
    );
    let agents = fixture.get(Role::Supervisor, "/api/agents").await.json();
    assert_eq!(agents[0]["skills"]["language=ru"], 5);
    assert_eq!(agents[0]["queues"], json!(["general"]));
}

#[tokio::test]
async fn bad_skills_name_the_field() {
    let fixture = fixture().await;
    let many: serde_json::Map<String, serde_json::Value> =
        (0..257).map(|i| (format!("skill{i}"), json!(1))).collect();
    let cases = [
        (
            json!({ "skills": many }),
            "skills: 257 skills given, an agent holds at most 256",
        ),
        (
            json!({ "skills": { "language=ru": 300 } }),
            "skills[\"language=ru\"]: the level must be a whole number from 0 to 255, got 300",
        ),
        (
            json!({ "skills": { "language=ru": "high" } }),
            "skills[\"language=ru\"]: the level must be a whole number from 0 to 255, got \"high\"",
        ),
        (
            json!({ "skills": { "language=ru": -1 } }),
            "skills[\"language=ru\"]: the level must be",
        ),
        (
            json!({ "skills": { "language = ru": 1 } }),
            "skills[\"language = ru\"]: a skill name may not contain whitespace",
        ),
        (
            json!({ "skills": { "vip:3": 1 } }),
            "skills[\"vip:3\"]: a skill name may not contain",
        ),
        (
            json!({ "skills": { "": 1 } }),
            "skills[\"\"]: a skill name has 1 to 64 characters",
        ),
    ];
    for (body, expected) in cases {
        let reply = fixture
            .call(
                Some(Role::Administrator),
                Method::PUT,
                "/api/agents/1001/skills",
                Some(body.clone()),
            )
            .await;
        let detail = reply.problem(StatusCode::BAD_REQUEST);
        assert!(detail.starts_with(expected), "{body}: {detail}");
    }
    // JSON of the wrong shape, as on every other endpoint.
    let cases = [
        (
            json!({ "skill": {} }),
            "invalid request body: skill: unknown field `skill`",
        ),
        (
            json!({ "skills": ["vip"] }),
            "invalid request body: skills: invalid type: sequence",
        ),
    ];
    for (body, expected) in cases {
        let reply = fixture
            .call(
                Some(Role::Administrator),
                Method::PUT,
                "/api/agents/1001/skills",
                Some(body.clone()),
            )
            .await;
        let detail = reply.problem(StatusCode::UNPROCESSABLE_ENTITY);
        assert!(detail.starts_with(expected), "{body}: {detail}");
    }
    let reply = fixture
        .call(
            Some(Role::Supervisor),
            Method::PUT,
            "/api/agents/9999/skills",
            Some(json!({ "skills": {} })),
        )
        .await;
    assert_eq!(
        reply.problem(StatusCode::NOT_FOUND),
        "agent \"9999\" not found"
    );
    assert!(actions(&fixture).await.is_empty(), "nothing was changed");
}

#[tokio::test]
async fn agents_may_not_change_their_own_skills() {
    let fixture = fixture().await;
    let reply = fixture
        .call(
            Some(Role::Agent),
            Method::PUT,
            &format!("/api/agents/{OWN_AGENT}/skills"),
            Some(json!({ "skills": {} })),
        )
        .await;
    let detail = reply.problem(StatusCode::FORBIDDEN);
    assert_eq!(
        detail,
        "role agent may not change an agent's skills; allowed roles: administrator, supervisor"
    );
}

#[tokio::test]
async fn membership_changes_are_audited() {
    let fixture = fixture().await;
    let add = fixture
        .call(
            Some(Role::Supervisor),
            Method::PUT,
            "/api/agents/1002/queues/sales",
            None,
        )
        .await;
    assert_eq!(add.status, StatusCode::NO_CONTENT);
    // Already a member: nothing changes, nothing is audited.
    let again = fixture
        .call(
            Some(Role::Supervisor),
            Method::PUT,
            "/api/agents/1002/queues/general",
            None,
        )
        .await;
    assert_eq!(again.status, StatusCode::NO_CONTENT);
    let remove = fixture
        .call(
            Some(Role::Administrator),
            Method::DELETE,
            "/api/agents/1002/queues/general",
            None,
        )
        .await;
    assert_eq!(remove.status, StatusCode::NO_CONTENT);
    assert_eq!(
        actions(&fixture).await,
        [
            (
                "agent.queue_remove".to_owned(),
                Some("agent:1002 queue:general".to_owned())
            ),
            (
                "agent.queue_add".to_owned(),
                Some("agent:1002 queue:sales".to_owned())
            ),
        ]
    );
}

#[tokio::test]
async fn membership_of_unknown_agent_or_queue_is_404() {
    let fixture = fixture().await;
    let cases = [
        (
            Method::PUT,
            "/api/agents/9999/queues/general",
            "agent \"9999\" not found",
        ),
        (
            Method::PUT,
            "/api/agents/1001/queues/nope",
            "queue \"nope\" not found",
        ),
        (
            Method::DELETE,
            "/api/agents/1001/queues/nope",
            "queue \"nope\" not found",
        ),
        (
            Method::DELETE,
            "/api/agents/1001/queues/sales",
            "agent \"1001\" is not a member of queue \"sales\"",
        ),
    ];
    for (method, uri, expected) in cases {
        let reply = fixture
            .call(Some(Role::Supervisor), method, uri, None)
            .await;
        assert_eq!(reply.problem(StatusCode::NOT_FOUND), expected, "{uri}");
    }
    let reply = fixture
        .call(
            Some(Role::Agent),
            Method::DELETE,
            &format!("/api/agents/{OWN_AGENT}/queues/general"),
            None,
        )
        .await;
    reply.problem(StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn agents_log_in_and_out() {
    let fixture = fixture().await;
    let own = format!("/api/agents/{OWN_AGENT}/state");
    for state in ["logged_out", "logged_in"] {
        let reply = fixture
            .call(
                Some(Role::Agent),
                Method::PUT,
                &own,
                Some(json!({ "state": state })),
            )
            .await;
        assert_eq!(reply.status, StatusCode::NO_CONTENT, "{state}");
    }
    let reply = fixture
        .call(
            Some(Role::Agent),
            Method::PUT,
            "/api/agents/1002/state",
            Some(json!({ "state": "logged_out" })),
        )
        .await;
    reply.problem(StatusCode::FORBIDDEN);
    let reply = fixture
        .call(
            Some(Role::Supervisor),
            Method::PUT,
            &own,
            Some(json!({ "state": "logged_in", "reason": "x" })),
        )
        .await;
    assert_eq!(
        reply.problem(StatusCode::BAD_REQUEST),
        "reason is only for state not_ready"
    );
    let reply = fixture
        .call(
            Some(Role::Supervisor),
            Method::PUT,
            "/api/agents/9999/state",
            Some(json!({ "state": "logged_out" })),
        )
        .await;
    assert_eq!(
        reply.problem(StatusCode::NOT_FOUND),
        "agent \"9999\" not found"
    );
}

#[tokio::test]
async fn wrap_up_codes_are_checked() {
    let fixture = fixture().await;
    let reply = fixture
        .call(
            Some(Role::Supervisor),
            Method::PUT,
            "/api/agents/1002/wrap-up-code",
            Some(json!({ "code": "resolved" })),
        )
        .await;
    assert_eq!(reply.status, StatusCode::NO_CONTENT);
    // The fixture's engine has agent 1001, the agent user, out of wrap-up.
    let reply = fixture
        .call(
            Some(Role::Agent),
            Method::PUT,
            &format!("/api/agents/{OWN_AGENT}/wrap-up-code"),
            Some(json!({ "code": "resolved" })),
        )
        .await;
    assert_eq!(
        reply.problem(StatusCode::CONFLICT),
        "agent \"1001\" is not in wrap-up"
    );
    for code in ["", "a\nb"] {
        let reply = fixture
            .call(
                Some(Role::Supervisor),
                Method::PUT,
                "/api/agents/1002/wrap-up-code",
                Some(json!({ "code": code })),
            )
            .await;
        assert_eq!(
            reply.problem(StatusCode::BAD_REQUEST),
            "code must be 1 to 64 printable characters",
            "{code:?}"
        );
    }
    let reply = fixture
        .call(
            Some(Role::Supervisor),
            Method::PUT,
            "/api/agents/9999/wrap-up-code",
            Some(json!({ "code": "resolved" })),
        )
        .await;
    assert_eq!(
        reply.problem(StatusCode::NOT_FOUND),
        "agent \"9999\" not found"
    );
}

#[tokio::test]
async fn queue_stats_come_from_the_engine() {
    let fixture = fixture().await;
    let reply = fixture.get(Role::Agent, "/api/queues/general/stats").await;
    assert_eq!(reply.status, StatusCode::OK);
    let stats = reply.json();
    assert_eq!(stats["name"], "general");
    assert_eq!(stats["service_level_percent"], 60.0);
    assert_eq!(stats["answered"], 9);
    let reply = fixture
        .get(Role::Supervisor, "/api/queues/nope/stats")
        .await;
    assert_eq!(
        reply.problem(StatusCode::NOT_FOUND),
        "queue \"nope\" not found"
    );
}

#[tokio::test]
async fn reload_applies_the_changed_file() {
    let fixture = fixture().await;
    let extra = "[[queues]]\nname = \"sales\"\nagents = [\"1002\"]\n\
                 [sip]\nlisten = \"127.0.0.1:5070\"\n";
    let text = reload_config_text(&fixture.data_dir, extra);
    std::fs::write(&fixture.config_path, text).expect("write config");
    let reply = fixture
        .call(
            Some(Role::Administrator),
            Method::POST,
            "/api/config/reload",
            None,
        )
        .await;
    assert_eq!(reply.status, StatusCode::OK);
    let file = fixture.config_path.display().to_string();
    assert_eq!(
        reply.json(),
        json!({
            "file": file,
            "applied": ["queues: general, sales"],
            "restart_needed": ["sip.listen"],
        })
    );
    assert!(
        actions(&fixture)
            .await
            .contains(&("config.reload".to_owned(), Some(file)))
    );
}

#[tokio::test]
async fn invalid_file_is_refused_and_changes_nothing() {
    let fixture = fixture().await;
    let extra = "[[queues]]\nname = \"sales\"\nagents = [\"9999\"]\nring_timeout_secs = 0\n";
    std::fs::write(
        &fixture.config_path,
        reload_config_text(&fixture.data_dir, extra),
    )
    .expect("write config");
    let reply = fixture
        .call(
            Some(Role::Administrator),
            Method::POST,
            "/api/config/reload",
            None,
        )
        .await;
    let detail = reply.problem(StatusCode::UNPROCESSABLE_ENTITY);
    let file = fixture.config_path.display().to_string();
    assert!(
        detail.starts_with("the configuration was not reloaded:\n"),
        "{detail}"
    );
    assert!(
        detail.contains(&format!("{file}:")) && detail.contains("queues[1].agents[0]"),
        "{detail}"
    );
    assert!(detail.contains("queues[1].ring_timeout_secs"), "{detail}");
    assert!(actions(&fixture).await.is_empty());

    // A TOML syntax error names the file too.
    std::fs::write(&fixture.config_path, "[[queues]\n").expect("write config");
    let reply = fixture
        .call(
            Some(Role::Administrator),
            Method::POST,
            "/api/config/reload",
            None,
        )
        .await;
    let detail = reply.problem(StatusCode::UNPROCESSABLE_ENTITY);
    assert!(detail.contains(&format!("{file}:1:")), "{detail}");

    // The running configuration stayed: the original file changes nothing
    // that needs a restart.
    std::fs::write(
        &fixture.config_path,
        reload_config_text(&fixture.data_dir, ""),
    )
    .expect("write config");
    let reply = fixture
        .call(
            Some(Role::Administrator),
            Method::POST,
            "/api/config/reload",
            None,
        )
        .await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(reply.json()["restart_needed"], json!([]));
}

#[tokio::test]
async fn reload_of_the_built_in_default_is_refused() {
    let fixture = fixture().await;
    let reloader = crate::reload::Reloader::new(
        crate::reload::ConfigSource::Embedded {
            overrides: crate::config::Overrides::default(),
        },
        crate::config::Config::embedded_default(),
        crate::transport::Bound::udp_tcp_only("127.0.0.1:5060".parse().expect("address")),
        engine_double(),
    );
    let error = reloader.reload().await.expect_err("embedded");
    assert!(
        error
            .to_string()
            .starts_with("the PBX runs on the built-in default configuration"),
        "{error}"
    );
    let reply = fixture
        .call(
            Some(Role::Supervisor),
            Method::POST,
            "/api/config/reload",
            None,
        )
        .await;
    assert_eq!(
        reply.problem(StatusCode::FORBIDDEN),
        "role supervisor may not reload the configuration; allowed roles: administrator"
    );
}
