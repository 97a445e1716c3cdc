//! Login, lockout, session expiry and logout through the API.

use serde_json::json;

use super::*;

/// Address of a second client, unlike `CLIENT`.
const OTHER_CLIENT: &str = "198.51.100.20:41000";

async fn login(fixture: &Fixture, username: &str, password: &str) -> Reply {
    login_from(fixture, CLIENT, username, password).await
}

async fn login_from(fixture: &Fixture, client: &str, username: &str, password: &str) -> Reply {
    let body = json!({ "username": username, "password": password });
    let request = Request::post("/api/session")
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from(body.to_string()))
        .expect("valid request");
    let client = client.parse().expect("valid address");
    fixture.send_from(client, request).await
}

fn retry_after(reply: &Reply) -> Option<&[u8]> {
    reply
        .headers
        .get(header::RETRY_AFTER)
        .map(|value| value.as_bytes())
}

/// Returns the `name=value` part of the Set-Cookie header and its attributes.
fn set_cookie(reply: &Reply) -> (String, Vec<String>) {
    let header = reply
        .headers
        .get(header::SET_COOKIE)
        .expect("Set-Cookie present")
        .to_str()
        .expect("ASCII cookie");
    let mut parts = header.split("; ").map(str::to_owned);
    let pair = parts.next().expect("name=value");
    (pair, parts.collect())
}

async fn me_with_cookie(fixture: &Fixture, pair: &str) -> Reply {
    let request = Request::get("/api/me")
        .header(header::COOKIE, pair)
        .body(Body::empty())
        .expect("valid request");
    fixture.send(request).await
}

#[tokio::test]
async fn login_sets_session_cookie() {
    let fixture = fixture().await;
    let reply = login(&fixture, "quinn", "quinn-password").await;
    assert_eq!(reply.status, StatusCode::OK);
    let body = reply.json();
    assert_eq!(body["user"]["username"], "quinn");
    assert_eq!(body["user"]["role"], "qa");
    assert_eq!(body["expires_at"], "2026-12-04T17:00:00Z");
    assert!(body["user"].get("password_hash").is_none());

    let (pair, attributes) = set_cookie(&reply);
    assert!(pair.starts_with("pbx_session="), "{pair}");
    assert_eq!(pair.len(), "pbx_session=".len() + 64);
    for expected in ["Path=/api", "HttpOnly", "SameSite=Strict", "Max-Age=28800"] {
        assert!(
            attributes.iter().any(|a| a == expected),
            "{expected} in {attributes:?}"
        );
    }
    let reply = me_with_cookie(&fixture, &pair).await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(reply.json()["username"], "quinn");
}

#[tokio::test]
async fn login_audited_with_address() {
    let fixture = fixture().await;
    let reply = login(&fixture, "sam", "sam-password").await;
    assert_eq!(reply.status, StatusCode::OK);
    let entries = fixture.accounts.list_audit(1, 0).await.expect("audit");
    let entry = entries.first().expect("one entry");
    assert_eq!(entry.action, "session.login");
    assert_eq!(entry.username.as_deref(), Some("sam"));
    assert_eq!(entry.remote_address.as_deref(), Some(CLIENT));
    assert_eq!(entry.at, T0);
}

#[tokio::test]
async fn wrong_login_is_401() {
    let fixture = fixture().await;
    for (username, password) in [("quinn", "wrong-password"), ("nobody", "quinn-password")] {
        let reply = login(&fixture, username, password).await;
        assert_eq!(
            reply.problem(StatusCode::UNAUTHORIZED),
            "invalid username or password",
            "{username}"
        );
        assert!(reply.headers.get(header::SET_COOKIE).is_none());
    }
}

#[tokio::test]
async fn login_body_checked() {
    let fixture = fixture().await;
    // axum rejects JSON of the wrong shape with 422 and broken JSON with 400.
    let bodies = [
        json!({ "username": "quinn" }),
        json!({ "username": 5, "password": "quinn-password" }),
    ];
    for body in bodies {
        let reply = fixture
            .call(None, Method::POST, "/api/session", Some(body.clone()))
            .await;
        reply.problem(StatusCode::UNPROCESSABLE_ENTITY);
    }
    let request = Request::post("/api/session")
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from("{\"username\": "))
        .expect("valid request");
    fixture.send(request).await.problem(StatusCode::BAD_REQUEST);
    let request = Request::post("/api/session")
        .body(Body::from("username=quinn"))
        .expect("valid request");
    let reply = fixture.send(request).await;
    reply.problem(StatusCode::UNSUPPORTED_MEDIA_TYPE);
}

#[tokio::test]
async fn lockout_after_five_failures() {
    let fixture = fixture().await;
    for attempt in 1..=4 {
        let reply = login(&fixture, "quinn", "wrong-password").await;
        assert_eq!(reply.status, StatusCode::UNAUTHORIZED, "attempt {attempt}");
        fixture.advance(time::Duration::minutes(1));
    }
    let reply = login(&fixture, "quinn", "wrong-password").await;
    let detail = reply.problem(StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(
        detail,
        "login as \"quinn\" from this address is locked after repeated failed logins \
         until 2026-12-04 9:19:00.0 +00:00:00"
    );
    assert_eq!(retry_after(&reply), Some(&b"900"[..]));

    fixture.advance(time::Duration::minutes(10));
    let reply = login(&fixture, "quinn", "quinn-password").await;
    reply.problem(StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(retry_after(&reply), Some(&b"300"[..]));
    fixture.advance(time::Duration::minutes(5));
    let reply = login(&fixture, "quinn", "quinn-password").await;
    assert_eq!(reply.status, StatusCode::OK);
}

#[tokio::test]
async fn session_expires_after_lifetime() {
    let fixture = fixture().await;
    let reply = fixture.get(Role::Supervisor, "/api/me").await;
    assert_eq!(reply.status, StatusCode::OK);
    fixture.advance(time::Duration::hours(8) - time::Duration::seconds(1));
    let reply = fixture.get(Role::Supervisor, "/api/me").await;
    assert_eq!(reply.status, StatusCode::OK, "valid just before expiry");
    fixture.advance(time::Duration::seconds(1));
    let reply = fixture.get(Role::Supervisor, "/api/me").await;
    assert_eq!(
        reply.problem(StatusCode::UNAUTHORIZED),
        "session expired or ended; log in again"
    );
}

#[tokio::test]
async fn logout_ends_session() {
    let fixture = fixture().await;
    let reply = fixture
        .call(Some(Role::Agent), Method::DELETE, "/api/session", None)
        .await;
    assert_eq!(reply.status, StatusCode::NO_CONTENT);
    let (pair, attributes) = set_cookie(&reply);
    assert_eq!(pair, "pbx_session=");
    assert!(
        attributes.iter().any(|a| a == "Max-Age=0"),
        "{attributes:?}"
    );
    let reply = fixture.get(Role::Agent, "/api/me").await;
    reply.problem(StatusCode::UNAUTHORIZED);
    // Other users' sessions are untouched.
    let reply = fixture.get(Role::Qa, "/api/me").await;
    assert_eq!(reply.status, StatusCode::OK);
}

#[tokio::test]
async fn logout_with_bearer_rejected() {
    let fixture = fixture().await;
    let created = fixture
        .accounts
        .create_api_token(
            fixture.user(Role::Qa).id,
            "tool",
            fixture.user(Role::Administrator).id,
            T0,
        )
        .await
        .expect("token");
    let request = Request::delete("/api/session")
        .header(header::AUTHORIZATION, format!("Bearer {}", created.token))
        .body(Body::empty())
        .expect("valid request");
    let reply = fixture.send(request).await;
    let detail = reply.problem(StatusCode::BAD_REQUEST);
    assert!(detail.contains("DELETE /api/tokens/{id}"), "{detail}");
    let still_valid = fixture
        .accounts
        .token_caller(&created.token)
        .await
        .expect("query");
    assert!(still_valid.is_some());
}

#[tokio::test]
async fn disabled_user_session_ends() {
    let fixture = fixture().await;
    let uri = format!("/api/users/{}", fixture.user(Role::Qa).id);
    let reply = fixture
        .call(
            Some(Role::Administrator),
            Method::PATCH,
            &uri,
            Some(json!({ "disabled": true })),
        )
        .await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(reply.json()["disabled"], true);
    let reply = fixture.get(Role::Qa, "/api/me").await;
    reply.problem(StatusCode::UNAUTHORIZED);
    let reply = login(&fixture, "quinn", "quinn-password").await;
    reply.problem(StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn lock_spares_other_address() {
    let fixture = fixture().await;
    for _ in 0..5 {
        login(&fixture, "quinn", "wrong-password").await;
    }
    let reply = login(&fixture, "quinn", "quinn-password").await;
    reply.problem(StatusCode::TOO_MANY_REQUESTS);
    let reply = login_from(&fixture, OTHER_CLIENT, "quinn", "quinn-password").await;
    assert_eq!(reply.status, StatusCode::OK, "another address logs in");
    // The same address with another port is the same client.
    let reply = login_from(&fixture, "192.0.2.10:50000", "QUINN", "quinn-password").await;
    reply.problem(StatusCode::TOO_MANY_REQUESTS);
}

#[tokio::test]
async fn unknown_user_replies_match_known() {
    let fixture = fixture().await;
    for attempt in 1..=6 {
        let known = login(&fixture, "quinn", "wrong-password").await;
        let unknown = login(&fixture, "nobody", "wrong-password").await;
        let status = if attempt < 5 {
            StatusCode::UNAUTHORIZED
        } else {
            StatusCode::TOO_MANY_REQUESTS
        };
        let known_detail = known.problem(status).replace("\"quinn\"", "NAME");
        let unknown_detail = unknown.problem(status).replace("\"nobody\"", "NAME");
        assert_eq!(known_detail, unknown_detail, "attempt {attempt}");
        assert_eq!(
            retry_after(&known),
            retry_after(&unknown),
            "attempt {attempt}"
        );
        assert_eq!(
            known.headers.len(),
            unknown.headers.len(),
            "attempt {attempt}"
        );
    }
}

#[tokio::test]
async fn spraying_locks_address() {
    let fixture = fixture().await;
    let limit = fixture.accounts.policy().max_failed_logins_per_address;
    for index in 1..limit {
        let reply = login(&fixture, &format!("guess{index}"), "wrong-password").await;
        assert_eq!(reply.status, StatusCode::UNAUTHORIZED, "failure {index}");
    }
    let reply = login(&fixture, "quinn", "wrong-password").await;
    let detail = reply.problem(StatusCode::TOO_MANY_REQUESTS);
    assert!(
        detail.starts_with("login from this address is locked"),
        "{detail}"
    );
    assert_eq!(retry_after(&reply), Some(&b"900"[..]));
    let reply = login(&fixture, "sam", "sam-password").await;
    reply.problem(StatusCode::TOO_MANY_REQUESTS);
    let reply = login_from(&fixture, OTHER_CLIENT, "sam", "sam-password").await;
    assert_eq!(reply.status, StatusCode::OK, "other addresses unaffected");
}

#[tokio::test]
async fn failed_logins_audited() {
    let fixture = fixture().await;
    for _ in 0..5 {
        login(&fixture, "nobody", "wrong-password").await;
        fixture.advance(time::Duration::seconds(20));
    }
    let reply = fixture.get(Role::Supervisor, "/api/audit?limit=10").await;
    assert_eq!(reply.status, StatusCode::OK);
    let entries = reply.json();
    let entries = entries.as_array().expect("array");
    let actions: Vec<&str> = entries
        .iter()
        .map(|entry| entry["action"].as_str().expect("action"))
        .collect();
    // Newest first: one failure entry per minute at most, then the lock.
    assert_eq!(
        actions,
        [
            "session.locked",
            "session.login_failed",
            "session.login_failed"
        ]
    );
    for entry in entries {
        assert_eq!(entry["user_id"], serde_json::Value::Null, "{entry}");
        assert_eq!(entry["username"], serde_json::Value::Null, "{entry}");
        assert_eq!(entry["target"], "nobody", "{entry}");
        assert_eq!(entry["remote_address"], "192.0.2.10", "{entry}");
    }
    assert_eq!(entries[0]["at"], "2026-12-04T09:01:20Z");
    assert_eq!(entries[1]["at"], "2026-12-04T09:01:00Z");
}

#[tokio::test]
async fn password_reset_lifts_locks() {
    let fixture = fixture().await;
    for client in [CLIENT, OTHER_CLIENT] {
        for _ in 0..5 {
            login_from(&fixture, client, "quinn", "wrong-password").await;
        }
    }
    let uri = format!("/api/users/{}/password", fixture.user(Role::Qa).id);
    let body = json!({ "password": "a-new-password" });
    let reply = fixture
        .call(Some(Role::Administrator), Method::PUT, &uri, Some(body))
        .await;
    assert_eq!(reply.status, StatusCode::NO_CONTENT);
    for client in [CLIENT, OTHER_CLIENT] {
        let reply = login_from(&fixture, client, "quinn", "a-new-password").await;
        assert_eq!(reply.status, StatusCode::OK, "{client}");
    }
}
