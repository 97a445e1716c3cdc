//! User and token administration and the audit log through the API.

use serde_json::json;

use super::*;

async fn as_admin(
    fixture: &Fixture,
    method: Method,
    uri: &str,
    body: Option<serde_json::Value>,
) -> Reply {
    fixture
        .call(Some(Role::Administrator), method, uri, body)
        .await
}

#[tokio::test]
async fn users_created_and_listed() {
    let fixture = fixture().await;
    let body = json!({ "username": "bob", "password": "bob-password", "role": "agent", "agent_id": "1002" });
    let reply = as_admin(&fixture, Method::POST, "/api/users", Some(body)).await;
    assert_eq!(reply.status, StatusCode::CREATED);
    let created = reply.json();
    assert_eq!(created["username"], "bob");
    assert_eq!(created["role"], "agent");
    assert_eq!(created["agent_id"], "1002");
    assert_eq!(created["disabled"], false);
    assert!(created.get("password").is_none());

    let reply = as_admin(&fixture, Method::GET, "/api/users", None).await;
    assert_eq!(reply.status, StatusCode::OK);
    let names: Vec<String> = reply
        .json()
        .as_array()
        .expect("array")
        .iter()
        .map(|user| user["username"].as_str().expect("username").to_owned())
        .collect();
    assert_eq!(names, ["ada", "sam", "quinn", "alice", "bob"]);

    let uri = format!("/api/users/{}", created["id"]);
    let reply = as_admin(&fixture, Method::GET, &uri, None).await;
    assert_eq!(reply.json(), created);

    // The new user can log in and sees its own calls only.
    let login = json!({ "username": "bob", "password": "bob-password" });
    let reply = fixture
        .call(None, Method::POST, "/api/session", Some(login))
        .await;
    assert_eq!(reply.status, StatusCode::OK);
}

#[tokio::test]
async fn user_errors_reported() {
    let fixture = fixture().await;
    let cases = [
        (
            json!({ "username": "sam", "password": "long-enough", "role": "qa" }),
            StatusCode::CONFLICT,
            "username \"sam\" is already taken",
        ),
        (
            json!({ "username": "x y", "password": "long-enough", "role": "qa" }),
            StatusCode::BAD_REQUEST,
            "invalid username \"x y\"",
        ),
        (
            json!({ "username": "bob", "password": "short", "role": "qa" }),
            StatusCode::BAD_REQUEST,
            "password is too short: 5 characters",
        ),
        (
            json!({ "username": "bob", "password": "long-enough", "role": "agent" }),
            StatusCode::BAD_REQUEST,
            "a user of role agent needs an agent_id",
        ),
        (
            json!({ "username": "bob", "password": "long-enough", "role": "root" }),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid request body: role: unknown variant `root`",
        ),
    ];
    for (body, status, expected) in cases {
        let reply = as_admin(&fixture, Method::POST, "/api/users", Some(body.clone())).await;
        let detail = reply.problem(status);
        assert!(detail.starts_with(expected), "{body}: {detail}");
    }
    let reply = as_admin(&fixture, Method::GET, "/api/users/999", None).await;
    assert_eq!(reply.problem(StatusCode::NOT_FOUND), "user 999 not found");
    let reply = as_admin(&fixture, Method::GET, "/api/users/abc", None).await;
    reply.problem(StatusCode::BAD_REQUEST);
    let reply = as_admin(
        &fixture,
        Method::PATCH,
        "/api/users/999",
        Some(json!({ "role": "qa" })),
    )
    .await;
    assert_eq!(reply.problem(StatusCode::NOT_FOUND), "user 999 not found");
    let uri = format!("/api/users/{}", fixture.user(Role::Qa).id);
    let reply = as_admin(&fixture, Method::PATCH, &uri, Some(json!({ "rol": "qa" }))).await;
    reply.problem(StatusCode::UNPROCESSABLE_ENTITY);
}

#[tokio::test]
async fn role_and_agent_id_changed() {
    let fixture = fixture().await;
    let uri = format!("/api/users/{}", fixture.user(Role::Agent).id);
    let reply = as_admin(
        &fixture,
        Method::PATCH,
        &uri,
        Some(json!({ "agent_id": "1002" })),
    )
    .await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(reply.json()["agent_id"], "1002");
    // The changed agent id applies to the running session at once.
    fixture
        .store
        .write(&record_for("for-1002", 1, None, "1002"))
        .await
        .expect("write");
    fixture
        .store
        .write(&record("for-1001", 2, None))
        .await
        .expect("write");
    let reply = fixture.get(Role::Agent, "/api/calls").await;
    assert_eq!(ids(&reply), ["for-1002"]);

    let reply = as_admin(
        &fixture,
        Method::PATCH,
        &uri,
        Some(json!({ "role": "supervisor" })),
    )
    .await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(reply.json()["role"], "supervisor");
    assert_eq!(reply.json()["agent_id"], serde_json::Value::Null);
    let reply = fixture.get(Role::Agent, "/api/calls").await;
    assert_eq!(ids(&reply), ["for-1001", "for-1002"], "now a supervisor");

    let reply = as_admin(
        &fixture,
        Method::PATCH,
        &uri,
        Some(json!({ "agent_id": "1003" })),
    )
    .await;
    let detail = reply.problem(StatusCode::BAD_REQUEST);
    assert_eq!(
        detail,
        "only users of role agent have an agent_id, not role supervisor"
    );
}

#[tokio::test]
async fn last_administrator_kept() {
    let fixture = fixture().await;
    let uri = format!("/api/users/{}", fixture.user(Role::Administrator).id);
    for body in [json!({ "disabled": true }), json!({ "role": "qa" })] {
        let reply = as_admin(&fixture, Method::PATCH, &uri, Some(body.clone())).await;
        let detail = reply.problem(StatusCode::CONFLICT);
        assert!(
            detail.contains("last enabled administrator"),
            "{body}: {detail}"
        );
    }
}

#[tokio::test]
async fn password_reset_by_administrator() {
    let fixture = fixture().await;
    let uri = format!("/api/users/{}/password", fixture.user(Role::Qa).id);
    let reply = as_admin(
        &fixture,
        Method::PUT,
        &uri,
        Some(json!({ "password": "short" })),
    )
    .await;
    reply.problem(StatusCode::BAD_REQUEST);
    let reply = as_admin(
        &fixture,
        Method::PUT,
        &uri,
        Some(json!({ "password": "a-new-password" })),
    )
    .await;
    assert_eq!(reply.status, StatusCode::NO_CONTENT);
    let reply = fixture.get(Role::Qa, "/api/me").await;
    reply.problem(StatusCode::UNAUTHORIZED);
    let old = json!({ "username": "quinn", "password": "quinn-password" });
    let reply = fixture
        .call(None, Method::POST, "/api/session", Some(old))
        .await;
    reply.problem(StatusCode::UNAUTHORIZED);
    let new = json!({ "username": "quinn", "password": "a-new-password" });
    let reply = fixture
        .call(None, Method::POST, "/api/session", Some(new))
        .await;
    assert_eq!(reply.status, StatusCode::OK);
    let reply = as_admin(
        &fixture,
        Method::PUT,
        "/api/users/999/password",
        Some(json!({ "password": "a-new-password" })),
    )
    .await;
    reply.problem(StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn token_shown_once_then_listed() {
    let fixture = fixture().await;
    let supervisor = fixture.user(Role::Supervisor).id;
    let body = json!({ "user_id": supervisor, "name": "wallboard" });
    let reply = as_admin(&fixture, Method::POST, "/api/tokens", Some(body)).await;
    assert_eq!(reply.status, StatusCode::CREATED);
    let created = reply.json();
    let secret = created["token"].as_str().expect("token").to_owned();
    assert!(secret.starts_with("pbx_"), "{secret}");
    assert_eq!(created["user_id"], supervisor);
    assert_eq!(created["name"], "wallboard");
    assert_eq!(created["created_by"], fixture.user(Role::Administrator).id);

    let reply = as_admin(&fixture, Method::GET, "/api/tokens", None).await;
    let listed = reply.json();
    assert_eq!(listed.as_array().map(Vec::len), Some(1));
    assert!(listed[0].get("token").is_none(), "the secret is not listed");
    assert!(!String::from_utf8_lossy(&reply.body).contains(&secret));

    let request = |uri: &str| {
        Request::get(uri)
            .header(header::AUTHORIZATION, format!("Bearer {secret}"))
            .body(Body::empty())
            .expect("valid request")
    };
    let reply = fixture.send(request("/api/audit")).await;
    assert_eq!(
        reply.status,
        StatusCode::OK,
        "a supervisor token reads the audit log"
    );

    let uri = format!("/api/tokens/{}", created["id"]);
    let reply = as_admin(&fixture, Method::DELETE, &uri, None).await;
    assert_eq!(reply.status, StatusCode::NO_CONTENT);
    let reply = fixture.send(request("/api/audit")).await;
    reply.problem(StatusCode::UNAUTHORIZED);
    let reply = as_admin(&fixture, Method::DELETE, &uri, None).await;
    reply.problem(StatusCode::NOT_FOUND);

    let body = json!({ "user_id": 999, "name": "x" });
    let reply = as_admin(&fixture, Method::POST, "/api/tokens", Some(body)).await;
    assert_eq!(reply.problem(StatusCode::NOT_FOUND), "user 999 not found");
}

#[tokio::test]
async fn replay_writes_audit_entry() {
    let fixture = fixture().await;
    recorded_call(&fixture, "call-1").await;
    fixture.advance(time::Duration::minutes(30));
    let reply = fixture.get(Role::Qa, "/api/calls/call-1/recording").await;
    assert_eq!(reply.status, StatusCode::OK);

    let reply = fixture.get(Role::Supervisor, "/api/audit?limit=1").await;
    assert_eq!(reply.status, StatusCode::OK);
    let entries = reply.json();
    let entry = &entries[0];
    assert_eq!(entry["action"], "recording.replay");
    assert_eq!(entry["target"], "call-1");
    assert_eq!(entry["username"], "quinn");
    assert_eq!(entry["user_id"], fixture.user(Role::Qa).id);
    assert_eq!(entry["remote_address"], CLIENT);
    assert_eq!(entry["at"], "2026-12-04T09:30:00Z");
}

#[tokio::test]
async fn audit_lists_admin_actions() {
    let fixture = fixture().await;
    let body = json!({ "username": "bob", "password": "bob-password", "role": "qa" });
    let reply = as_admin(&fixture, Method::POST, "/api/users", Some(body)).await;
    let id = reply.json()["id"].clone();
    let uri = format!("/api/users/{id}");
    as_admin(
        &fixture,
        Method::PATCH,
        &uri,
        Some(json!({ "disabled": true })),
    )
    .await;

    let reply = as_admin(&fixture, Method::GET, "/api/audit?limit=2", None).await;
    let entries = reply.json();
    let actions: Vec<&str> = entries
        .as_array()
        .expect("array")
        .iter()
        .map(|entry| entry["action"].as_str().expect("action"))
        .collect();
    assert_eq!(actions, ["user.update", "user.create"]);
    assert_eq!(entries[0]["target"], format!("user:{id}"));
    assert_eq!(entries[0]["username"], "ada");

    let reply = as_admin(&fixture, Method::GET, "/api/audit?limit=0", None).await;
    reply.problem(StatusCode::BAD_REQUEST);
    let reply = as_admin(&fixture, Method::GET, "/api/audit?offset=x", None).await;
    reply.problem(StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn audit_log_cannot_be_edited() {
    let fixture = fixture().await;
    recorded_call(&fixture, "call-1").await;
    let reply = fixture
        .get(Role::Supervisor, "/api/calls/call-1/recording")
        .await;
    assert_eq!(reply.status, StatusCode::OK);
    // No route changes the log, and the database refuses it too.
    for method in [Method::PUT, Method::PATCH, Method::DELETE, Method::POST] {
        let reply = as_admin(&fixture, method.clone(), "/api/audit", Some(json!({}))).await;
        reply.problem(StatusCode::METHOD_NOT_ALLOWED);
    }
    let pool = fixture.store.pool();
    for statement in [
        "UPDATE audit_log SET target = 'call-2'",
        "DELETE FROM audit_log",
    ] {
        let error = sqlx::query(statement)
            .execute(pool)
            .await
            .expect_err(statement);
        assert!(
            error.to_string().contains("append-only"),
            "{statement}: {error}"
        );
    }
    let entries = fixture.accounts.list_audit(10, 0).await.expect("audit");
    let replay = entries
        .iter()
        .find(|e| e.action == "recording.replay")
        .expect("replay entry");
    assert_eq!(replay.target.as_deref(), Some("call-1"));
}

#[tokio::test]
async fn create_user_rejects_unknown_fields() {
    let fixture = fixture().await;
    let before = as_admin(&fixture, Method::GET, "/api/users", None).await;
    let cases = [
        (
            json!({ "username": "u7", "password": "long-enough", "role": "qa", "disabled": true }),
            "invalid request body: disabled: unknown field `disabled`",
        ),
        (
            json!({ "username": "u8", "password": "long-enough", "role": "qa", "is_root": true }),
            "invalid request body: is_root: unknown field `is_root`",
        ),
    ];
    for (body, expected) in cases {
        let reply = as_admin(&fixture, Method::POST, "/api/users", Some(body.clone())).await;
        let detail = reply.problem(StatusCode::UNPROCESSABLE_ENTITY);
        assert!(detail.starts_with(expected), "{body}: {detail}");
    }
    let after = as_admin(&fixture, Method::GET, "/api/users", None).await;
    assert_eq!(after.json(), before.json(), "a rejected user was created");
}

#[tokio::test]
async fn create_user_rejects_unknown_agent() {
    let fixture = fixture().await;
    let body =
        json!({ "username": "u9", "password": "long-enough", "role": "agent", "agent_id": "9999" });
    let reply = as_admin(&fixture, Method::POST, "/api/users", Some(body)).await;
    assert_eq!(
        reply.problem(StatusCode::BAD_REQUEST),
        "agent_id \"9999\" is not a configured agent; GET /api/agents lists them"
    );
    let users = as_admin(&fixture, Method::GET, "/api/users", None).await;
    let listed = users.json().as_array().expect("a list").clone();
    assert!(
        listed.iter().all(|user| user["username"] != "u9"),
        "the user was created: {listed:?}"
    );
}

#[tokio::test]
async fn update_user_rejects_unknown_agent() {
    let fixture = fixture().await;
    let body = json!({ "username": "bob", "password": "bob-password", "role": "agent", "agent_id": "1002" });
    let created = as_admin(&fixture, Method::POST, "/api/users", Some(body)).await;
    assert_eq!(created.status, StatusCode::CREATED);
    let agent_uri = format!("/api/users/{}", created.json()["id"]);
    let qa_uri = format!("/api/users/{}", fixture.user(Role::Qa).id);
    let cases = [
        (&agent_uri, json!({ "agent_id": "9999" })),
        (&qa_uri, json!({ "role": "agent", "agent_id": "9999" })),
    ];
    for (uri, body) in cases {
        let reply = as_admin(&fixture, Method::PATCH, uri, Some(body.clone())).await;
        assert_eq!(
            reply.problem(StatusCode::BAD_REQUEST),
            "agent_id \"9999\" is not a configured agent; GET /api/agents lists them",
            "{uri} {body}"
        );
    }
    let reply = as_admin(&fixture, Method::GET, &agent_uri, None).await;
    assert_eq!(reply.json()["agent_id"], "1002", "the agent id changed");
    let reply = as_admin(
        &fixture,
        Method::PATCH,
        &agent_uri,
        Some(json!({ "agent_id": "1001" })),
    )
    .await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(reply.json()["agent_id"], "1001");
}
