//! Statuses and messages of bad request bodies and query parameters, which
//! every endpoint shares.

use serde_json::json;

use super::*;

/// Sends `body` as is with `content_type`, as the administrator.
async fn send_raw(
    fixture: &Fixture,
    method: Method,
    uri: &str,
    content_type: Option<&str>,
    body: Vec<u8>,
) -> Reply {
    let cookie = format!(
        "{}={}",
        auth::SESSION_COOKIE,
        fixture.sessions[&Role::Administrator]
    );
    let mut builder = Request::builder()
        .method(method)
        .uri(uri)
        .header(header::COOKIE, cookie);
    if let Some(content_type) = content_type {
        builder = builder.header(header::CONTENT_TYPE, content_type);
    }
    let request = builder.body(Body::from(body)).expect("valid request");
    fixture.send(request).await
}

#[tokio::test]
async fn wrong_type_is_422_everywhere() {
    let fixture = fixture().await;
    let cases = [
        (
            Method::PUT,
            "/api/agents/1001/state",
            json!({ "state": 5 }),
            "invalid request body: state: invalid type: integer `5`, expected a string",
        ),
        (
            Method::POST,
            "/api/users",
            json!({ "username": "u1", "password": "long-enough", "role": 3 }),
            "invalid request body: role: invalid type: integer `3`",
        ),
        (
            Method::PUT,
            "/api/agents/1001/skills",
            json!({ "skills": 7 }),
            "invalid request body: skills: invalid type: integer `7`",
        ),
        (
            Method::PUT,
            "/api/agents/1001/wrap-up-code",
            json!({ "code": false }),
            "invalid request body: code: invalid type: boolean `false`",
        ),
        (
            Method::POST,
            "/api/session",
            json!({ "username": 5, "password": "x" }),
            "invalid request body: username: invalid type: integer `5`",
        ),
        (
            Method::POST,
            "/api/tokens",
            json!({ "user_id": "1", "name": "t" }),
            "invalid request body: user_id: invalid type: string \"1\"",
        ),
    ];
    for (method, uri, body, expected) in cases {
        let bytes = body.to_string().into_bytes();
        let reply = send_raw(&fixture, method, uri, Some("application/json"), bytes).await;
        let detail = reply.problem(StatusCode::UNPROCESSABLE_ENTITY);
        assert!(detail.starts_with(expected), "{uri} {body}: {detail}");
        assert!(!detail.contains("parse"), "{uri} {body}: {detail}");
    }
}

#[tokio::test]
async fn invalid_json_is_400() {
    let fixture = fixture().await;
    let cases: [&[u8]; 4] = [
        b"{",
        b"",
        b"{\"state\": \"ready\"} x",
        b"{\"state\": \"\xff\"}",
    ];
    for body in cases {
        let reply = send_raw(
            &fixture,
            Method::PUT,
            "/api/agents/1001/state",
            Some("application/json"),
            body.to_vec(),
        )
        .await;
        let detail = reply.problem(StatusCode::BAD_REQUEST);
        assert!(
            detail.starts_with("the request body is not valid JSON: "),
            "{body:?}: {detail}"
        );
    }
}

#[tokio::test]
async fn oversized_body_is_413_everywhere() {
    let fixture = fixture().await;
    // Past axum's default limit of 2 MiB, and valid JSON.
    let mut body = b"{\"skills\": {\"a\": 1}, \"pad\": \"".to_vec();
    body.resize(3 << 20, b'x');
    body.extend_from_slice(b"\"}");
    let uris = [
        (Method::PUT, "/api/agents/1001/skills"),
        (Method::PUT, "/api/agents/1001/state"),
        (Method::POST, "/api/session"),
        (Method::POST, "/api/users"),
        (Method::POST, "/api/admin/queues"),
    ];
    for (method, uri) in uris {
        let reply = send_raw(
            &fixture,
            method,
            uri,
            Some("application/json"),
            body.clone(),
        )
        .await;
        reply.problem(StatusCode::PAYLOAD_TOO_LARGE);
    }
}

#[tokio::test]
async fn missing_json_content_type_is_415() {
    let fixture = fixture().await;
    let body = json!({ "skills": {} }).to_string().into_bytes();
    for content_type in [
        None,
        Some("text/plain"),
        Some("application/x-www-form-urlencoded"),
    ] {
        let reply = send_raw(
            &fixture,
            Method::PUT,
            "/api/agents/1001/skills",
            content_type,
            body.clone(),
        )
        .await;
        assert_eq!(
            reply.problem(StatusCode::UNSUPPORTED_MEDIA_TYPE),
            "the request body must be JSON; send Content-Type: application/json",
            "{content_type:?}"
        );
    }
    for content_type in [
        "application/json; charset=utf-8",
        "application/merge-patch+json",
    ] {
        let reply = send_raw(
            &fixture,
            Method::PUT,
            "/api/agents/1001/skills",
            Some(content_type),
            body.clone(),
        )
        .await;
        assert_eq!(reply.status, StatusCode::NO_CONTENT, "{content_type}");
    }
}

#[tokio::test]
async fn limit_message_gives_accepted_range() {
    let fixture = fixture().await;
    let maximum = accounts::MAX_AUDIT_PAGE;
    let cases = [
        ("/api/calls?limit=abc", 1000, "abc"),
        ("/api/calls?limit=0", 1000, "0"),
        ("/api/recordings?limit=-5", 1000, "-5"),
        ("/api/audit?limit=abc", maximum, "abc"),
        ("/api/scorecards?limit=99999", 500, "99999"),
    ];
    for (uri, max, given) in cases {
        let reply = fixture.get(Role::Administrator, uri).await;
        assert_eq!(
            reply.problem(StatusCode::BAD_REQUEST),
            format!("limit must be a whole number from 1 to {max}, got {given:?}"),
            "{uri}"
        );
    }
}
