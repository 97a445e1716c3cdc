//! Every route with every role, without credentials, and the ways a
//! credential can be missing or wrong.

use serde_json::json;

use super::*;

/// One route exercised by every role: the roles in `allowed` get `success`,
/// the others 403, and a request without credentials 401 unless `allowed`
/// is `None` (a public route).
struct Case {
    verb: Verb,
    path: &'static str,
    uri: String,
    body: Option<serde_json::Value>,
    allowed: Option<&'static [Role]>,
    success: StatusCode,
}

const EVERY_ROLE: &[Role] = &Role::ALL;
const ADMINISTRATOR: &[Role] = &[Role::Administrator];
const SUPERVISE: &[Role] = &[Role::Administrator, Role::Supervisor];
const CATALOGUE_READERS: &[Role] = &[Role::Administrator, Role::Supervisor, Role::Qa];
/// Roles that may pause a recording; the agent only its own call.
const PAUSERS: &[Role] = &[Role::Administrator, Role::Supervisor, Role::Agent];

fn method(verb: Verb) -> Method {
    match verb {
        Verb::Get => Method::GET,
        Verb::Post => Method::POST,
        Verb::Put => Method::PUT,
        Verb::Patch => Method::PATCH,
        Verb::Delete => Method::DELETE,
    }
}

/// The cases, with ids taken from a fixture prepared by [`prepared`].
fn cases(fixture: &Fixture, token_id: i64) -> Vec<Case> {
    use Verb::{Delete, Get, Patch, Post, Put};
    let agent = fixture.user(Role::Agent).id;
    let supervisor = fixture.user(Role::Supervisor).id;
    let case = |verb, path, uri: &str, body, allowed, success| Case {
        verb,
        path,
        uri: uri.to_owned(),
        body,
        allowed,
        success,
    };
    let login = json!({ "username": "sam", "password": "sam-password" });
    let new_user = json!({ "username": "new-user", "password": "new-user-password", "role": "qa" });
    let new_token = json!({ "user_id": supervisor, "name": "export" });
    let scorecard = json!({ "scores": [
        { "criterion": "greeting", "score": 5 },
        { "criterion": "resolution", "score": 3, "comment": "missed a step" },
    ], "comments": "good call" });
    let agent_user = format!("/api/users/{agent}");
    let agent_password = format!("/api/users/{agent}/password");
    vec![
        case(Get, "/health", "/health", None, None, StatusCode::OK),
        case(
            Get,
            "/api/openapi.json",
            "/api/openapi.json",
            None,
            None,
            StatusCode::OK,
        ),
        case(
            Post,
            "/api/session",
            "/api/session",
            Some(login),
            None,
            StatusCode::OK,
        ),
        case(
            Delete,
            "/api/session",
            "/api/session",
            None,
            Some(EVERY_ROLE),
            StatusCode::NO_CONTENT,
        ),
        case(
            Get,
            "/api/me",
            "/api/me",
            None,
            Some(EVERY_ROLE),
            StatusCode::OK,
        ),
        case(
            Get,
            "/api/calls",
            "/api/calls",
            None,
            Some(EVERY_ROLE),
            StatusCode::OK,
        ),
        case(
            Get,
            "/api/calls/{id}",
            "/api/calls/call-1",
            None,
            Some(EVERY_ROLE),
            StatusCode::OK,
        ),
        case(
            Get,
            "/api/calls/{id}/recording",
            "/api/calls/call-1/recording",
            None,
            Some(&[Role::Supervisor, Role::Qa]),
            StatusCode::OK,
        ),
        case(
            Post,
            "/api/calls/{id}/recording/pause",
            &format!("/api/calls/{LIVE_CALL}/recording/pause"),
            None,
            Some(PAUSERS),
            StatusCode::OK,
        ),
        // Each request meets a fresh engine double, whose recording is not
        // paused: every permitted role passes the role check and gets 409.
        case(
            Post,
            "/api/calls/{id}/recording/resume",
            &format!("/api/calls/{LIVE_CALL}/recording/resume"),
            None,
            Some(PAUSERS),
            StatusCode::CONFLICT,
        ),
        case(
            Get,
            "/api/calls/{id}/events",
            "/api/calls/call-1/events",
            None,
            Some(EVERY_ROLE),
            StatusCode::OK,
        ),
        // Every role subscribes; an agent gets only its own events.
        case(
            Get,
            "/api/events/stream",
            "/api/events/stream",
            None,
            Some(EVERY_ROLE),
            StatusCode::OK,
        ),
        case(
            Get,
            "/api/recordings",
            "/api/recordings?status=complete",
            None,
            Some(CATALOGUE_READERS),
            StatusCode::OK,
        ),
        case(
            Get,
            "/api/recordings/{id}",
            "/api/recordings/call-1",
            None,
            Some(CATALOGUE_READERS),
            StatusCode::OK,
        ),
        case(
            Get,
            "/api/users",
            "/api/users",
            None,
            Some(ADMINISTRATOR),
            StatusCode::OK,
        ),
        case(
            Post,
            "/api/users",
            "/api/users",
            Some(new_user),
            Some(ADMINISTRATOR),
            StatusCode::CREATED,
        ),
        case(
            Get,
            "/api/users/{id}",
            &agent_user,
            None,
            Some(ADMINISTRATOR),
            StatusCode::OK,
        ),
        case(
            Patch,
            "/api/users/{id}",
            &agent_user,
            Some(json!({ "agent_id": "1002" })),
            Some(ADMINISTRATOR),
            StatusCode::OK,
        ),
        case(
            Put,
            "/api/users/{id}/password",
            &agent_password,
            Some(json!({ "password": "another-password" })),
            Some(ADMINISTRATOR),
            StatusCode::NO_CONTENT,
        ),
        case(
            Get,
            "/api/tokens",
            "/api/tokens",
            None,
            Some(ADMINISTRATOR),
            StatusCode::OK,
        ),
        case(
            Post,
            "/api/tokens",
            "/api/tokens",
            Some(new_token),
            Some(ADMINISTRATOR),
            StatusCode::CREATED,
        ),
        case(
            Delete,
            "/api/tokens/{id}",
            &format!("/api/tokens/{token_id}"),
            None,
            Some(ADMINISTRATOR),
            StatusCode::NO_CONTENT,
        ),
        case(
            Get,
            "/api/audit",
            "/api/audit",
            None,
            Some(&[Role::Administrator, Role::Supervisor]),
            StatusCode::OK,
        ),
        case(
            Get,
            "/api/agents",
            "/api/agents",
            None,
            Some(EVERY_ROLE),
            StatusCode::OK,
        ),
        case(
            Get,
            "/api/queues",
            "/api/queues",
            None,
            Some(EVERY_ROLE),
            StatusCode::OK,
        ),
        case(Get, "/metrics", "/metrics", None, None, StatusCode::OK),
        case(Get, "/", "/", None, None, StatusCode::SEE_OTHER),
        case(
            Get,
            "/console/login",
            "/console/login",
            None,
            None,
            StatusCode::OK,
        ),
        case(
            Get,
            "/console/calls",
            "/console/calls",
            None,
            None,
            StatusCode::OK,
        ),
        case(
            Get,
            "/console/calls/{id}",
            "/console/calls/call-1",
            None,
            None,
            StatusCode::OK,
        ),
        case(
            Get,
            "/console/wallboard",
            "/console/wallboard",
            None,
            None,
            StatusCode::OK,
        ),
        case(
            Get,
            "/console/assets/{file}",
            "/console/assets/console.css",
            None,
            None,
            StatusCode::OK,
        ),
        case(
            Put,
            "/api/agents/{id}/skills",
            "/api/agents/1001/skills",
            Some(json!({ "skills": { "language=ru": 5 } })),
            Some(SUPERVISE),
            StatusCode::NO_CONTENT,
        ),
        case(
            Put,
            "/api/agents/{id}/queues/{queue}",
            "/api/agents/1001/queues/sales",
            None,
            Some(SUPERVISE),
            StatusCode::NO_CONTENT,
        ),
        case(
            Delete,
            "/api/agents/{id}/queues/{queue}",
            "/api/agents/1001/queues/general",
            None,
            Some(SUPERVISE),
            StatusCode::NO_CONTENT,
        ),
        case(
            Get,
            "/api/trunks/registrations",
            "/api/trunks/registrations",
            None,
            Some(SUPERVISE),
            StatusCode::OK,
        ),
        case(
            Get,
            "/api/queues/{name}/stats",
            "/api/queues/general/stats",
            None,
            Some(EVERY_ROLE),
            StatusCode::OK,
        ),
        case(
            Post,
            "/api/config/reload",
            "/api/config/reload",
            None,
            Some(ADMINISTRATOR),
            StatusCode::OK,
        ),
        case(
            Get,
            "/api/calls/{id}/scorecards",
            "/api/calls/call-1/scorecards",
            None,
            Some(EVERY_ROLE),
            StatusCode::OK,
        ),
        case(
            Post,
            "/api/calls/{id}/scorecards",
            "/api/calls/call-1/scorecards",
            Some(scorecard),
            Some(CATALOGUE_READERS),
            StatusCode::CREATED,
        ),
        case(
            Get,
            "/api/scorecards",
            "/api/scorecards?min_total=50",
            None,
            Some(EVERY_ROLE),
            StatusCode::OK,
        ),
        case(
            Get,
            "/api/scorecards/criteria",
            "/api/scorecards/criteria",
            None,
            Some(EVERY_ROLE),
            StatusCode::OK,
        ),
        case(
            Get,
            "/api/reports/intervals",
            "/api/reports/intervals?from=2026-01-01T00:00:00Z&to=2026-01-02T00:00:00Z&interval=15",
            None,
            Some(&[Role::Administrator, Role::Supervisor, Role::Qa]),
            StatusCode::OK,
        ),
        case(
            Get,
            "/console/reports",
            "/console/reports",
            None,
            None,
            StatusCode::OK,
        ),
        case(
            Get,
            "/console/admin",
            "/console/admin",
            None,
            None,
            StatusCode::OK,
        ),
        case(
            Get,
            "/api/reports/queues",
            "/api/reports/queues?from=2026-01-01T00:00:00Z&to=2026-01-02T00:00:00Z",
            None,
            Some(&[Role::Administrator, Role::Supervisor, Role::Qa]),
            StatusCode::OK,
        ),
        // Another agent's wrap-up code: supervisors and administrators only.
        case(
            Put,
            "/api/agents/{id}/wrap-up-code",
            "/api/agents/1002/wrap-up-code",
            Some(json!({ "code": "resolved" })),
            Some(&[Role::Administrator, Role::Supervisor]),
            StatusCode::NO_CONTENT,
        ),
        case(
            Get,
            "/api/admin/agents",
            "/api/admin/agents",
            None,
            Some(SUPERVISE),
            StatusCode::OK,
        ),
        case(
            Post,
            "/api/admin/agents",
            "/api/admin/agents",
            Some(json!({ "id": "1003", "password": "pw-1003", "queues": ["general"] })),
            Some(ADMINISTRATOR),
            StatusCode::CREATED,
        ),
        case(
            Get,
            "/api/admin/agents/{id}",
            "/api/admin/agents/1001",
            None,
            Some(SUPERVISE),
            StatusCode::OK,
        ),
        case(
            Put,
            "/api/admin/agents/{id}",
            "/api/admin/agents/1002",
            Some(json!({ "name": "Agent two" })),
            Some(ADMINISTRATOR),
            StatusCode::OK,
        ),
        case(
            Delete,
            "/api/admin/agents/{id}",
            "/api/admin/agents/1002",
            None,
            Some(ADMINISTRATOR),
            StatusCode::NO_CONTENT,
        ),
        case(
            Get,
            "/api/admin/skills",
            "/api/admin/skills",
            None,
            Some(SUPERVISE),
            StatusCode::OK,
        ),
        case(
            Post,
            "/api/admin/skills",
            "/api/admin/skills",
            Some(json!({ "name": "language=ru" })),
            Some(ADMINISTRATOR),
            StatusCode::CREATED,
        ),
        case(
            Get,
            "/api/admin/skills/{name}",
            "/api/admin/skills/language=ru",
            None,
            Some(SUPERVISE),
            StatusCode::NOT_FOUND,
        ),
        case(
            Put,
            "/api/admin/skills/{name}",
            "/api/admin/skills/language=ru",
            Some(json!({ "description": "Russian" })),
            Some(ADMINISTRATOR),
            StatusCode::NOT_FOUND,
        ),
        case(
            Delete,
            "/api/admin/skills/{name}",
            "/api/admin/skills/language=ru",
            None,
            Some(ADMINISTRATOR),
            StatusCode::NOT_FOUND,
        ),
        case(
            Get,
            "/api/admin/queues",
            "/api/admin/queues",
            None,
            Some(SUPERVISE),
            StatusCode::OK,
        ),
        case(
            Post,
            "/api/admin/queues",
            "/api/admin/queues",
            Some(json!({ "name": "sales", "agents": ["1001"] })),
            Some(ADMINISTRATOR),
            StatusCode::CREATED,
        ),
        case(
            Get,
            "/api/admin/queues/{name}",
            "/api/admin/queues/general",
            None,
            Some(SUPERVISE),
            StatusCode::OK,
        ),
        case(
            Put,
            "/api/admin/queues/{name}",
            "/api/admin/queues/general",
            Some(json!({ "agents": ["1001"], "strategy": "ring-all" })),
            Some(ADMINISTRATOR),
            StatusCode::OK,
        ),
        // The DID 5000 routes to general, so deleting it conflicts.
        case(
            Delete,
            "/api/admin/queues/{name}",
            "/api/admin/queues/general",
            None,
            Some(ADMINISTRATOR),
            StatusCode::CONFLICT,
        ),
        // Another agent's state: supervisors and administrators only.
        case(
            Put,
            "/api/agents/{id}/state",
            "/api/agents/1002/state",
            Some(json!({ "state": "not_ready", "reason": "break" })),
            Some(&[Role::Administrator, Role::Supervisor]),
            StatusCode::NO_CONTENT,
        ),
    ]
}

/// A fixture with a recorded call answered by the agent user and one API
/// token; returns the token id.
async fn prepared() -> (Fixture, i64) {
    let fixture = fixture().await;
    recorded_call(&fixture, "call-1").await;
    let token = fixture
        .accounts
        .create_api_token(
            fixture.user(Role::Supervisor).id,
            "reports",
            fixture.user(Role::Administrator).id,
            T0,
        )
        .await
        .expect("token");
    (fixture, token.info.id)
}

#[tokio::test]
async fn cases_cover_every_route() {
    let (fixture, token_id) = prepared().await;
    let mut covered: Vec<(&str, Verb)> = cases(&fixture, token_id)
        .iter()
        .map(|case| (case.path, case.verb))
        .collect();
    let mut routed = routes().table;
    covered.sort();
    routed.sort();
    assert_eq!(covered, routed);
}

#[tokio::test]
async fn every_route_checks_role() {
    let (template, token_id) = prepared().await;
    for case in cases(&template, token_id) {
        // A fresh fixture per route, so that one route's changes (a logout,
        // a new password) do not leak into the next.
        let (fixture, _) = prepared().await;
        let label = format!("{} {}", case.verb.as_str(), case.uri);
        let send = |role| fixture.call(role, method(case.verb), &case.uri, case.body.clone());

        let anonymous = send(None).await;
        match case.allowed {
            None => assert_eq!(
                anonymous.status, case.success,
                "{label} without credentials"
            ),
            Some(_) => {
                let detail = anonymous.problem(StatusCode::UNAUTHORIZED);
                assert!(
                    detail.starts_with("authentication required"),
                    "{label}: {detail}"
                );
            }
        }
        let allowed = case.allowed.unwrap_or(EVERY_ROLE);
        // Denied roles go first: an allowed change such as a password reset
        // can end another user's session.
        let (permitted, denied): (Vec<Role>, Vec<Role>) = Role::ALL
            .into_iter()
            .partition(|role| allowed.contains(role));
        for role in denied {
            let reply = send(Some(role)).await;
            let detail = reply.problem(StatusCode::FORBIDDEN);
            let prefix = format!("role {} may not", role.as_str());
            assert!(detail.starts_with(&prefix), "{label} as {role:?}: {detail}");
        }
        for role in permitted {
            let reply = send(Some(role)).await;
            assert_eq!(
                reply.status,
                case.success,
                "{label} as {role:?}: {}",
                String::from_utf8_lossy(&reply.body)
            );
        }
    }
}

#[tokio::test]
async fn bearer_token_authenticates() {
    let fixture = fixture().await;
    let created = fixture
        .accounts
        .create_api_token(
            fixture.user(Role::Qa).id,
            "quality tool",
            fixture.user(Role::Administrator).id,
            T0,
        )
        .await
        .expect("token");
    let bearer = |uri: &str, value: String| {
        Request::get(uri)
            .header(header::AUTHORIZATION, value)
            .body(Body::empty())
            .expect("valid request")
    };
    let reply = fixture
        .send(bearer("/api/me", format!("Bearer {}", created.token)))
        .await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(reply.json()["username"], "quinn");
    // RFC 9110: the scheme name is case-insensitive.
    let reply = fixture
        .send(bearer("/api/me", format!("bearer {}", created.token)))
        .await;
    assert_eq!(reply.status, StatusCode::OK);
    // The token carries the QA role: recordings yes, users no.
    let reply = fixture
        .send(bearer("/api/users", format!("Bearer {}", created.token)))
        .await;
    reply.problem(StatusCode::FORBIDDEN);

    fixture
        .accounts
        .revoke_api_token(created.info.id)
        .await
        .expect("revoke");
    let reply = fixture
        .send(bearer("/api/me", format!("Bearer {}", created.token)))
        .await;
    assert_eq!(
        reply.problem(StatusCode::UNAUTHORIZED),
        "invalid or revoked bearer token"
    );
    assert_eq!(
        reply
            .headers
            .get(header::WWW_AUTHENTICATE)
            .map(|v| v.as_bytes()),
        Some(&b"Bearer realm=\"pbx\""[..])
    );
}

#[tokio::test]
async fn malformed_credentials_rejected() {
    let fixture = fixture().await;
    let cases = [
        (
            header::AUTHORIZATION,
            "Basic YWRhOmFkYS1wYXNzd29yZA==",
            "unsupported Authorization header",
        ),
        (
            header::AUTHORIZATION,
            "Bearer",
            "unsupported Authorization header",
        ),
        (
            header::AUTHORIZATION,
            "Bearer    ",
            "unsupported Authorization header",
        ),
        (
            header::AUTHORIZATION,
            "Bearer pbx_0000",
            "invalid or revoked bearer token",
        ),
        (
            header::COOKIE,
            "pbx_session=0000",
            "session expired or ended",
        ),
        (header::COOKIE, "pbx_session=", "authentication required"),
        (header::COOKIE, "other=1", "authentication required"),
    ];
    for (name, value, expected) in cases {
        let request = Request::get("/api/me")
            .header(name.clone(), value)
            .body(Body::empty())
            .expect("valid request");
        let reply = fixture.send(request).await;
        let detail = reply.problem(StatusCode::UNAUTHORIZED);
        assert!(detail.starts_with(expected), "{name}: {value}: {detail}");
    }
}

#[tokio::test]
async fn bearer_wins_over_cookie() {
    let fixture = fixture().await;
    let created = fixture
        .accounts
        .create_api_token(
            fixture.user(Role::Qa).id,
            "quality tool",
            fixture.user(Role::Administrator).id,
            T0,
        )
        .await
        .expect("token");
    let cookie = format!(
        "{}={}",
        auth::SESSION_COOKIE,
        fixture.sessions[&Role::Administrator]
    );
    let request = Request::get("/api/me")
        .header(header::COOKIE, cookie)
        .header(header::AUTHORIZATION, format!("Bearer {}", created.token))
        .body(Body::empty())
        .expect("valid request");
    let reply = fixture.send(request).await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(reply.json()["role"], "qa");
}
