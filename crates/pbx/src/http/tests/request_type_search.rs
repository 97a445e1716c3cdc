//! Searching calls by request type with `GET /api/calls?request_type=`.

use super::*;

/// Three calls of the own agent, two of them with a request type, and one
/// of agent 1002 about passports.
async fn typed_calls(fixture: &Fixture) {
    let typed = |id: &str, minute: u8, agent: &str, request_type: Option<&str>| CallRecord {
        request_type: request_type.map(str::to_owned),
        ..record_for(id, minute, None, agent)
    };
    let records = [
        typed("passport", 0, OWN_AGENT, Some("passport")),
        typed("renewal", 10, OWN_AGENT, Some("passport renewal")),
        typed("untyped", 20, OWN_AGENT, None),
        typed("other", 30, "1002", Some("passport")),
    ];
    for record in &records {
        fixture.store.write(record).await.expect("write");
    }
}

#[tokio::test]
async fn calls_are_searched_by_request_type() {
    let fixture = fixture().await;
    typed_calls(&fixture).await;
    let cases = [
        (
            "/api/calls?request_type=passport",
            vec!["other", "passport"],
        ),
        (
            "/api/calls?request_type=passport%20renewal",
            vec!["renewal"],
        ),
        // Surrounding spaces are trimmed, as in the other text conditions.
        (
            "/api/calls?request_type=%20passport%20",
            vec!["other", "passport"],
        ),
        ("/api/calls?request_type=Passport", vec![]),
        ("/api/calls?request_type=pass", vec![]),
        ("/api/calls?request_type=passport&agent=1002", vec!["other"]),
        // An empty search form field sets no condition.
        (
            "/api/calls?request_type=",
            vec!["other", "untyped", "renewal", "passport"],
        ),
    ];
    for (uri, expected) in cases {
        let reply = fixture.get(Role::Qa, uri).await;
        assert_eq!(reply.status, StatusCode::OK, "{uri}");
        assert_eq!(ids(&reply), expected, "{uri}");
    }
}

#[tokio::test]
async fn agent_finds_only_own_typed_calls() {
    let fixture = fixture().await;
    typed_calls(&fixture).await;
    let reply = fixture
        .get(Role::Agent, "/api/calls?request_type=passport")
        .await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(ids(&reply), ["passport"]);
}

#[tokio::test]
async fn call_objects_carry_the_request_type() {
    let fixture = fixture().await;
    typed_calls(&fixture).await;
    let reply = fixture.get(Role::Qa, "/api/calls").await;
    let calls = reply.json();
    let request_type = |id: &str| {
        calls
            .as_array()
            .expect("array")
            .iter()
            .find(|call| call["id"] == id)
            .map(|call| call["request_type"].clone())
            .expect("call listed")
    };
    assert_eq!(request_type("renewal"), "passport renewal");
    assert_eq!(request_type("untyped"), serde_json::Value::Null);
    let reply = fixture.get(Role::Qa, "/api/calls/passport").await;
    assert_eq!(reply.json()["request_type"], "passport");
}

#[tokio::test]
async fn invalid_request_type_is_400() {
    let fixture = fixture().await;
    let too_long = format!("/api/calls?request_type={}", "a".repeat(201));
    let longest = format!("/api/calls?request_type={}", "a".repeat(200));
    let cases = [
        (
            too_long.as_str(),
            "request_type must be at most 200 characters, got 201",
        ),
        (
            "/api/calls?request_type=pass%01port",
            "request_type must not contain control characters, got \"pass\\u{1}port\"",
        ),
        (
            "/api/calls?request_type=pass%09port",
            "request_type must not contain control characters, got \"pass\\tport\"",
        ),
    ];
    for (uri, expected) in cases {
        let reply = fixture.get(Role::Supervisor, uri).await;
        assert_eq!(reply.problem(StatusCode::BAD_REQUEST), expected, "{uri}");
    }
    // The limit counts characters, and a value at the limit is accepted.
    let reply = fixture.get(Role::Supervisor, &longest).await;
    assert_eq!(reply.status, StatusCode::OK);
    let accented = format!("/api/calls?request_type={}", "%C3%A9".repeat(200));
    let reply = fixture.get(Role::Supervisor, &accented).await;
    assert_eq!(reply.status, StatusCode::OK);
}
