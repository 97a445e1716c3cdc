//! The OpenAPI 3.1 description of the API, served at `/api/openapi.json`.
//!
//! Written by hand with `serde_json` so the build needs no code generator.
//! The test `openapi_matches_routes` fails when a route is added, removed
//! or given another method here or in `routes()` without the other.

mod administration;
mod quality;

use axum::Json;
use serde_json::{Map, Value, json};

const SESSION_COOKIE_NOTE: &str = "Log in with POST /api/session for a session cookie \
     (console), or send an API token as `Authorization: Bearer <token>` (integrations).";

pub(crate) async fn serve() -> Json<Value> {
    Json(document())
}

/// Returns the whole document.
pub(crate) fn document() -> Value {
    json!({
        "openapi": "3.1.0",
        "info": {
            "title": "pbx HTTP API",
            "version": env!("CARGO_PKG_VERSION"),
            "description": SESSION_COOKIE_NOTE,
        },
        "security": [{ "session": [] }, { "bearer": [] }],
        "paths": paths(),
        "components": {
            "securitySchemes": {
                "session": { "type": "apiKey", "in": "cookie", "name": super::auth::SESSION_COOKIE },
                "bearer": { "type": "http", "scheme": "bearer" },
            },
            "schemas": all_schemas(),
        },
    })
}

fn paths() -> Value {
    let mut paths = api_paths();
    for more in [console_paths(), quality::paths(), administration::paths()] {
        if let (Value::Object(all), Value::Object(more)) = (&mut paths, more) {
            all.extend(more);
        }
    }
    paths
}

/// The console's pages, apart because one `json!` call with every path
/// would pass the macro's recursion limit.
fn console_paths() -> Value {
    json!({
        "/": {
            "get": public(operation(
                "The web console",
                "Public. Redirects to /console/calls, which sends a visitor without a session to \
                 /console/login.",
                json!({ "303": { "description": "To the calls page",
                                 "headers": { "Location": { "schema": { "type": "string" } } } } }),
                &[],
            )),
        },
        "/console/login": { "get": console_page("Console: log in") },
        "/console/calls": { "get": console_page("Console: search calls") },
        "/console/calls/{id}": {
            "get": with_parameters(console_page("Console: one call, its timeline and recording"),
                vec![path_parameter("id", "Product call id", "string")]),
        },
        "/console/wallboard": { "get": console_page("Console: live queues and agents") },
        "/console/reports": {
            "get": console_page("Console: reports per interval with charts and CSV export"),
        },
        "/console/admin": {
            "get": console_page("Console: agents, skills and queues; forms for administrators"),
        },
        "/console/assets/{file}": {
            "get": with_parameters(public(operation(
                "Console styles, scripts and icon",
                "Public; built into the binary. Served with the console's Content-Security-Policy.",
                json!({ "200": { "description": "The file", "content": {
                    "text/css": { "schema": { "type": "string" } },
                    "text/javascript": { "schema": { "type": "string" } },
                    "image/svg+xml": { "schema": { "type": "string" } },
                } } }),
                &[404],
            )), vec![path_parameter("file", "File name, such as console.css", "string")]),
        },
    })
}

fn api_paths() -> Value {
    json!({
        "/health": {
            "get": public(operation(
                "Health check",
                "Public.",
                ok("The process is serving", json!({ "$ref": "#/components/schemas/Health" })),
                &[],
            )),
        },
        "/api/openapi.json": {
            "get": public(operation(
                "This document",
                "Public.",
                ok("OpenAPI 3.1 document", json!({ "type": "object" })),
                &[],
            )),
        },
        "/api/session": {
            "post": public(with_body(operation(
                "Log in",
                "Public. Sets the session cookie (HttpOnly, SameSite=Strict). Five failed \
                 logins for one username from one address within 15 minutes lock that username \
                 for that address for 15 minutes, and 50 from one address lock the address for \
                 every username (429 with Retry-After). Unknown usernames behave like known ones.",
                ok("Logged in", schema_ref("LoginReply")),
                &[400, 401, 429],
            ), "LoginRequest")),
            "delete": no_content(operation(
                "Log out",
                "Any role, with the session cookie; ends the session and clears the cookie.",
                json!({}),
                &[400, 401],
            ), "Logged out"),
        },
        "/api/me": {
            "get": operation("Current user", "Any role.", ok("The caller", schema_ref("User")), &[401]),
        },
        "/api/calls": {
            "get": with_parameters(operation(
                "List call records, newest first",
                "Administrators, supervisors and QA see every call; agents see the calls \
                 their agent id answered.",
                ok("Call records", array_of("CallRecord")),
                &[400, 401, 403],
            ), {
                let mut parameters = paging(1000, 50);
                parameters.push(json!({ "name": "disposition", "in": "query",
                    "description": "Only calls with this outcome; voicemail lists the messages left in voicemail boxes, callback the calls on which a caller asked to be called back",
                    "schema": { "enum": ["answered", "abandoned", "no_agent", "failed", "voicemail", "callback"] } }));
                parameters.extend(call_search_parameters());
                parameters
            }),
        },
        "/api/calls/{id}/events": {
            "get": with_parameters(operation(
                "A call's stored queue events, oldest first",
                "Like the call itself: an agent gets 404 for a call it did not answer, and sees \
                 its own call without the offers made to other agents.",
                ok("Events", array_of("Event")),
                &[401, 403, 404, 500],
            ), vec![path_parameter("id", "Product call id", "string")]),
        },
        "/api/calls/{id}": {
            "get": with_parameters(operation(
                "One call record",
                "Like the list: an agent gets 404 for a call it did not answer.",
                ok("The call record", schema_ref("CallRecord")),
                &[401, 403, 404],
            ), vec![path_parameter("id", "Product call id", "string")]),
        },
        "/api/calls/{id}/recording": {
            "get": with_parameters(operation(
                "Replay a call's recording",
                "Supervisors and QA only. Each replay is written to the audit log \
                 (action recording.replay) before the file is sent. A recording that \
                 retention deleted gets 410, with the deletion date in the detail.",
                json!({ "200": {
                    "description": "Stereo WAV, caller left and agent right",
                    "content": { "audio/wav": { "schema": { "type": "string", "contentMediaType": "audio/wav" } } },
                }}),
                &[401, 403, 404, 410],
            ), vec![path_parameter("id", "Product call id", "string")]),
        },
        "/api/calls/{id}/recording/pause": {
            "post": with_parameters(operation(
                "Pause a call's recording",
                "Administrators and supervisors for any call in progress; an agent for the call it \
                 answered (another call is 404). From now on both channels of the recording are \
                 silent, and the file keeps the talk time's length. The event, with the user as \
                 actor, goes into the call's CDR (recording_events); audited as recording.pause. \
                 Not idempotent: pausing a paused recording changes nothing and gets 409, as does \
                 a call that is not answered or not recorded. The id is the agent's call_id in \
                 GET /api/agents.",
                ok("Paused", schema_ref("RecordingPauseState")),
                &[401, 403, 404, 409, 503],
            ), vec![path_parameter("id", "Product call id of a call in progress", "string")]),
        },
        "/api/calls/{id}/recording/resume": {
            "post": with_parameters(operation(
                "Resume a call's paused recording",
                "Same roles as pause; audited as recording.resume. Audio is recorded again from \
                 now on. 409 when the recording is not paused.",
                ok("Recording again", schema_ref("RecordingPauseState")),
                &[401, 403, 404, 409, 503],
            ), vec![path_parameter("id", "Product call id of a call in progress", "string")]),
        },
        "/api/recordings": {
            "get": with_parameters(operation(
                "List the recording catalogue, newest first",
                "Administrators, supervisors and QA. Deleted recordings stay listed with \
                 status deleted. A call recorded with a mono mix has two entries, its stereo \
                 recording first.",
                ok("Catalogue entries", array_of("RecordingEntry")),
                &[400, 401, 403],
            ), {
                let mut parameters = paging(1000, 50);
                parameters.push(json!({ "name": "status", "in": "query",
                    "description": "Only entries with this status",
                    "schema": { "enum": ["recording", "complete", "interrupted", "deleted"] } }));
                parameters
            }),
        },
        "/api/recordings/{id}": {
            "get": with_parameters(operation(
                "One call's recording catalogue entry",
                "Administrators, supervisors and QA. The entry of the stereo recording; a mono \
                 mix is listed by GET /api/recordings.",
                ok("The catalogue entry", schema_ref("RecordingEntry")),
                &[401, 403, 404],
            ), vec![path_parameter("id", "Product call id", "string")]),
        },
        "/api/users": {
            "get": operation("List users", "Administrators only.", ok("Users", array_of("User")), &[401, 403]),
            "post": with_body(operation(
                "Create a user",
                "Administrators only. A user of role agent needs agent_id, the id of a \
                 configured agent. Unknown fields get 422.",
                created("The new user", schema_ref("User")),
                &[400, 401, 403, 409],
            ), "CreateUserRequest"),
        },
        "/api/users/{id}": {
            "get": with_parameters(operation(
                "One user",
                "Administrators only.",
                ok("The user", schema_ref("User")),
                &[400, 401, 403, 404],
            ), vec![user_id()]),
            "patch": with_parameters(with_body(operation(
                "Change role, agent id or disabled flag",
                "Administrators only. Disabling ends the user's sessions and stops its tokens. \
                 The last enabled administrator cannot be disabled or demoted (409).",
                ok("The changed user", schema_ref("User")),
                &[400, 401, 403, 404, 409],
            ), "UpdateUserRequest"), vec![user_id()]),
        },
        "/api/users/{id}/password": {
            "put": with_parameters(with_body(no_content(operation(
                "Reset a password",
                "Administrators only. Ends the user's sessions and lifts a lockout.",
                json!({}),
                &[400, 401, 403, 404],
            ), "Password set"), "PasswordRequest"), vec![user_id()]),
        },
        "/api/tokens": {
            "get": operation(
                "List API tokens",
                "Administrators only. Secrets are never listed.",
                ok("Tokens", array_of("ApiToken")),
                &[401, 403],
            ),
            "post": with_body(operation(
                "Create an API token",
                "Administrators only. The token acts as user_id with that user's role. \
                 The secret is in this reply only; store it now.",
                created("The token and its secret", schema_ref("CreatedToken")),
                &[400, 401, 403, 404],
            ), "CreateTokenRequest"),
        },
        "/api/tokens/{id}": {
            "delete": with_parameters(no_content(operation(
                "Revoke an API token",
                "Administrators only.",
                json!({}),
                &[400, 401, 403, 404],
            ), "Token revoked"), vec![path_parameter("id", "Token id", "integer")]),
        },
        "/api/trunks/registrations": {
            "get": operation(
                "List the trunks' registrations at their providers",
                "Administrators and supervisors. One entry per trunk with [trunks.register], \
                 with its state, the expiry of its binding and the registrar's last status. \
                 503 when the call engine is not running.",
                ok("Trunk registrations", array_of("TrunkRegistration")),
                &[401, 403, 503],
            ),
        },
        "/api/agents": {
            "get": operation(
                "List agents with their live state",
                "Any role; an agent sees only itself. 503 when the call engine is not running.",
                ok("Agents", array_of("Agent")),
                &[401, 503],
            ),
        },
        "/api/agents/{id}/state": {
            "put": with_parameters(with_body(no_content(operation(
                "Log an agent in or out, or set it ready or not ready",
                "Administrators and supervisors for any agent; an agent for itself. An agent on a \
                 call changes readiness after the call and its wrap-up; logging out ends no call. \
                 The 204 comes once the events of the change are stored; 503 when they could not \
                 be (the change is in force but not durable) or the engine is down.",
                json!({}),
                &[400, 401, 403, 404, 409, 503],
            ), "State changed"), "AgentStateRequest"), vec![path_parameter("id", "Agent id", "string")]),
        },
        "/api/agents/{id}/wrap-up-code": {
            "put": with_parameters(with_body(no_content(operation(
                "Record the wrap-up code of an agent's last call",
                "Administrators and supervisors for any agent; an agent for itself. Writes \
                 WRAPUPCODE to the queue_log; the agent stays in wrap-up until it sets itself \
                 ready or the queue's maximum passes. 409 when the agent is not in wrap-up. The \
                 204 comes once the event is stored; 503 when it could not be or the engine is \
                 down.",
                json!({}),
                &[400, 401, 403, 404, 409, 503],
            ), "Wrap-up code recorded"), "WrapUpCodeRequest"), vec![path_parameter("id", "Agent id", "string")]),
        },
        "/api/agents/{id}/skills": {
            "put": with_parameters(with_body(no_content(operation(
                "Replace an agent's skills",
                "Administrators and supervisors; audited as agent.skills. Waiting calls the agent now \
                 qualifies for are offered to it. Lasts until a reload changes this agent's skills \
                 in the file, or a restart.",
                json!({}),
                &[400, 401, 403, 404, 503],
            ), "Skills replaced"), "AgentSkillsRequest"), vec![path_parameter("id", "Agent id", "string")]),
        },
        "/api/agents/{id}/queues/{queue}": {
            "put": with_parameters(no_content(operation(
                "Add an agent to a queue",
                "Administrators and supervisors; audited as agent.queue_add. Writes ADDMEMBER to the \
                 queue_log. Adding a member again changes nothing.",
                json!({}),
                &[401, 403, 404, 503],
            ), "The agent is a member"), membership_parameters()),
            "delete": with_parameters(no_content(operation(
                "Remove an agent from a queue",
                "Administrators and supervisors; audited as agent.queue_remove. Writes REMOVEMEMBER \
                 to the queue_log. An offer or call in progress goes on. 404 when the agent is not \
                 a member.",
                json!({}),
                &[401, 403, 404, 503],
            ), "The agent is no longer a member"), membership_parameters()),
        },
        "/api/queues": {
            "get": operation(
                "List queues with their live figures",
                "Any role. 503 when the call engine is not running.",
                ok("Queues", array_of("Queue")),
                &[401, 503],
            ),
        },
        "/api/queues/{name}/stats": {
            "get": with_parameters(operation(
                "Statistics of one queue since the start",
                "Any role. Counts since the PBX started; they survive configuration reloads.",
                ok("Queue statistics", schema_ref("QueueStats")),
                &[401, 404, 503],
            ), vec![path_parameter("name", "Queue name", "string")]),
        },
        "/api/config/reload": {
            "post": operation(
                "Reload the configuration file",
                "Administrators only; audited as config.reload. Reads the file given with --config \
                 again and applies queues, agents, skills, passwords, memberships, DIDs and trunks \
                 without touching calls in progress. 422 with every error, each naming the file \
                 and the key, when the file does not validate; nothing changes then. 409 when the \
                 PBX runs on the built-in default. SIGHUP does the same.",
                ok("Reload applied", schema_ref("ReloadReport")),
                &[401, 403, 409, 422, 503],
            ),
        },
        "/api/reports/queues": {
            "get": with_parameters(operation(
                "Queue KPIs over a time range, from the stored events",
                "Administrators, supervisors and QA. Counts the calls that entered each queue from \
                 `from` (included) to `to` (excluded), with outcomes that may fall after `to`. \
                 Rebuilt from the event store, so the figures survive restarts. 400 when a time is \
                 missing or not RFC 3339, when `to` is not later than `from`, or when the range \
                 exceeds 366 days.",
                ok("Queue report", schema_ref("QueueReport")),
                &[400, 401, 403, 500],
            ), vec![
                json!({ "name": "from", "in": "query", "required": true,
                        "description": "Start of the range, RFC 3339 (a + in an offset written as %2B)",
                        "schema": { "type": "string", "format": "date-time" } }),
                json!({ "name": "to", "in": "query", "required": true,
                        "description": "End of the range, excluded, RFC 3339",
                        "schema": { "type": "string", "format": "date-time" } }),
            ]),
        },
        "/api/events/stream": {
            "get": with_parameters(operation(
                "Live stream of committed call, queue and agent events",
                "Server-sent events (text/event-stream). Administrators, supervisors and QA get \
                 every event; an agent only the events of its own agent id. Only events committed \
                 to the database are sent. Each event's `id` is its sequence number and its `data` \
                 an Event object. With `Last-Event-ID` the stream first sends the stored events \
                 after that number, then live ones; without it, live ones only. A comment is sent \
                 every 15 seconds when idle. A client too slow for the live feed gets an event \
                 named `lagged` and then the events it missed, read from the database. The stream \
                 ends when the session or token no longer stands or the user's role changes.",
                json!({ "200": {
                    "description": "An endless event stream",
                    "content": { "text/event-stream": { "schema": { "type": "string" },
                        "x-event-schema": schema_ref("Event") } },
                }}),
                &[400, 401, 403, 500, 503],
            ), vec![json!({ "name": "Last-Event-ID", "in": "header", "required": false,
                "description": "Sequence number of the last event received; the stream resumes after it",
                "schema": { "type": "integer", "minimum": 0 } })]),
        },
        "/metrics": {
            "get": public(operation(
                "Prometheus metrics",
                "Public, like /health. Text exposition format 0.0.4: calls, registered contacts, agents by \
                 state, queue figures, SIP requests and responses, RTP packets and loss, recordings.",
                json!({ "200": { "description": "Metrics", "content": { "text/plain": { "schema": { "type": "string" } } } } }),
                &[503],
            )),
        },
        "/api/audit": {
            "get": with_parameters(operation(
                "List the audit log, newest first",
                "Administrators and supervisors. Entries cannot be changed or deleted.",
                ok("Audit entries", array_of("AuditEntry")),
                &[400, 401, 403],
            ), paging(1000, 100)),
        },
    })
}

fn operation(summary: &str, description: &str, success: Value, errors: &[u16]) -> Value {
    let mut responses = match success {
        Value::Object(map) => map,
        _ => Map::new(),
    };
    responses.extend(operation_errors(errors));
    json!({ "summary": summary, "description": description, "responses": responses })
}

/// Problem responses for `statuses`, each described by its reason phrase.
fn operation_errors(statuses: &[u16]) -> Map<String, Value> {
    let mut responses = Map::new();
    for status in statuses {
        let reason = axum::http::StatusCode::from_u16(*status)
            .ok()
            .and_then(|code| code.canonical_reason())
            .unwrap_or("Error");
        let response = json!({
            "description": reason,
            "content": { "application/problem+json": { "schema": schema_ref("Problem") } },
        });
        responses.insert(status.to_string(), response);
    }
    responses
}

/// A console page: public HTML whose script reads the API with the
/// session cookie.
fn console_page(summary: &str) -> Value {
    public(operation(
        summary,
        "Public HTML built into the binary; its script calls the API with the session cookie \
         and goes to /console/login without one. Served with a Content-Security-Policy that \
         allows no inline script.",
        json!({ "200": { "description": "The page", "content": { "text/html": { "schema": { "type": "string" } } } } }),
        &[],
    ))
}

fn set(mut operation: Value, key: &str, value: Value) -> Value {
    if let Value::Object(map) = &mut operation {
        map.insert(key.to_owned(), value);
    }
    operation
}

/// Marks an operation as needing no credentials.
fn public(operation: Value) -> Value {
    set(operation, "security", json!([]))
}

/// Adds a JSON request body and the errors that every JSON body can get.
/// These are 400 for a body that is not JSON, 413 past the size limit, 415
/// without a JSON content type and 422 for JSON that does not fit `schema`.
fn with_body(mut operation: Value, schema: &str) -> Value {
    if let Some(Value::Object(responses)) = operation.get_mut("responses") {
        let errors = operation_errors(&[400, 413, 415, 422]);
        for (status, response) in errors {
            responses.entry(status).or_insert(response);
        }
    }
    let body = json!({
        "required": true,
        "content": { "application/json": { "schema": schema_ref(schema) } },
    });
    set(operation, "requestBody", body)
}

fn with_parameters(operation: Value, parameters: Vec<Value>) -> Value {
    set(operation, "parameters", Value::Array(parameters))
}

fn no_content(mut operation: Value, description: &str) -> Value {
    if let Some(Value::Object(responses)) = operation.get_mut("responses") {
        responses.insert("204".to_owned(), json!({ "description": description }));
    }
    operation
}

fn ok(description: &str, schema: Value) -> Value {
    json!({ "200": { "description": description, "content": { "application/json": { "schema": schema } } } })
}

fn created(description: &str, schema: Value) -> Value {
    json!({ "201": { "description": description, "content": { "application/json": { "schema": schema } } } })
}

fn schema_ref(name: &str) -> Value {
    json!({ "$ref": format!("#/components/schemas/{name}") })
}

fn array_of(name: &str) -> Value {
    json!({ "type": "array", "items": schema_ref(name) })
}

fn path_parameter(name: &str, description: &str, kind: &str) -> Value {
    json!({ "name": name, "in": "path", "required": true, "description": description, "schema": { "type": kind } })
}

/// Search conditions of `GET /api/calls`; an empty value sets none.
fn call_search_parameters() -> Vec<Value> {
    let time = |name: &str, description: &str| {
        json!({ "name": name, "in": "query", "description": description,
                "schema": { "type": "string", "format": "date-time" } })
    };
    let text = |name: &str, description: &str| json!({ "name": name, "in": "query", "description": description, "schema": { "type": "string" } });
    let seconds = |name: &str, description: &str| {
        json!({ "name": name, "in": "query", "description": description,
                "schema": { "type": "number", "minimum": 0 } })
    };
    let score = |name: &str, description: &str| {
        json!({ "name": name, "in": "query", "description": description,
                "schema": { "type": "integer", "minimum": 1, "maximum": 5 } })
    };
    vec![
        time(
            "from",
            "Only calls that arrived at or after this RFC 3339 time (a + in an offset written as %2B)",
        ),
        time(
            "to",
            "Only calls that arrived before this RFC 3339 time; later than from",
        ),
        text("queue", "Only calls routed to this queue"),
        text(
            "agent",
            "Only calls this agent answered; an agent asking for another agent gets none",
        ),
        text(
            "caller",
            "Only calls whose caller number contains this text",
        ),
        json!({ "name": "request_type", "in": "query",
                "description": "Only calls with exactly this request type, compared case-sensitively \
                                after trimming surrounding spaces; no control characters",
                "schema": { "type": "string", "maxLength": 200 } }),
        seconds(
            "min_talk_seconds",
            "Only calls that talked at least this long",
        ),
        seconds(
            "max_talk_seconds",
            "Only calls that talked at most this long; not less than min_talk_seconds",
        ),
        score(
            "min_csat",
            "Only calls whose post-call survey score is at least this",
        ),
        score(
            "max_csat",
            "Only calls whose post-call survey score is at most this; not less than min_csat",
        ),
    ]
}

fn membership_parameters() -> Vec<Value> {
    vec![
        path_parameter("id", "Agent id", "string"),
        path_parameter("queue", "Queue name", "string"),
    ]
}

fn user_id() -> Value {
    path_parameter("id", "User id", "integer")
}

fn paging(maximum: u32, default: u32) -> Vec<Value> {
    vec![
        json!({ "name": "limit", "in": "query", "description": "Page size",
                "schema": { "type": "integer", "minimum": 1, "maximum": maximum, "default": default } }),
        json!({ "name": "offset", "in": "query", "description": "Entries to skip",
                "schema": { "type": "integer", "minimum": 0, "default": 0 } }),
    ]
}

fn all_schemas() -> Value {
    let mut schemas = schemas();
    for more in [quality::schemas(), administration::schemas()] {
        if let (Value::Object(all), Value::Object(more)) = (&mut schemas, more) {
            all.extend(more);
        }
    }
    schemas
}

fn schemas() -> Value {
    let timestamp = json!({ "type": "string", "format": "date-time" });
    let text = json!({ "type": "string" });
    let nullable_text = json!({ "type": ["string", "null"] });
    let number = json!({ "type": "number" });
    let nullable_number = json!({ "type": ["number", "null"] });
    let skill_levels = json!({
        "type": "object",
        "description": "skill name (CATEGORY=VALUE, e.g. language=ru) to proficiency level",
        "additionalProperties": { "type": "integer", "minimum": 0, "maximum": 255 },
    });
    let removed =
        json!({ "type": "boolean", "description": "removed by a reload, still serving its calls" });
    let role = json!({ "$ref": "#/components/schemas/Role" });
    json!({
        "Health": {
            "type": "object",
            "required": ["status"],
            "properties": { "status": { "const": "ok" } },
        },
        "Problem": {
            "description": "RFC 9457 problem details",
            "type": "object",
            "required": ["type", "title", "status", "detail"],
            "properties": {
                "type": text, "title": text, "status": { "type": "integer" }, "detail": text,
                "errors": {
                    "description": "invalid fields of an administration change, one each",
                    "type": "array",
                    "items": {
                        "type": "object",
                        "required": ["detail", "key"],
                        "properties": {
                            "detail": text,
                            "pointer": { "type": "string",
                                         "description": "JSON Pointer into the body sent, as #/skills/0; absent when the problem lies in another definition" },
                            "key": { "type": "string",
                                     "description": "key path in the configuration, as queues[1].agents[0]" },
                        },
                    },
                },
            },
        },
        "Role": { "enum": ["administrator", "supervisor", "qa", "agent"] },
        "User": {
            "type": "object",
            "required": ["id", "username", "role", "agent_id", "disabled", "created_at"],
            "properties": {
                "id": { "type": "integer" },
                "username": text,
                "role": role,
                "agent_id": nullable_text,
                "disabled": { "type": "boolean" },
                "created_at": timestamp,
            },
        },
        "LoginRequest": {
            "type": "object",
            "required": ["username", "password"],
            "properties": { "username": text, "password": text },
        },
        "LoginReply": {
            "type": "object",
            "required": ["user", "expires_at"],
            "properties": { "user": schema_ref("User"), "expires_at": timestamp },
        },
        "CreateUserRequest": {
            "type": "object",
            "additionalProperties": false,
            "required": ["username", "password", "role"],
            "properties": {
                "username": { "type": "string", "pattern": "^[A-Za-z0-9._-]{1,64}$" },
                "password": { "type": "string", "minLength": 8, "maxLength": 1024 },
                "role": role,
                "agent_id": nullable_text,
            },
        },
        "UpdateUserRequest": {
            "type": "object",
            "additionalProperties": false,
            "properties": {
                "role": role,
                "agent_id": nullable_text,
                "disabled": { "type": "boolean" },
            },
        },
        "PasswordRequest": {
            "type": "object",
            "additionalProperties": false,
            "required": ["password"],
            "properties": { "password": { "type": "string", "minLength": 8, "maxLength": 1024 } },
        },
        "CreateTokenRequest": {
            "type": "object",
            "additionalProperties": false,
            "required": ["user_id", "name"],
            "properties": { "user_id": { "type": "integer" }, "name": text },
        },
        "ApiToken": {
            "type": "object",
            "required": ["id", "user_id", "name", "created_by", "created_at"],
            "properties": {
                "id": { "type": "integer" },
                "user_id": { "type": "integer" },
                "name": text,
                "created_by": { "type": "integer" },
                "created_at": timestamp,
            },
        },
        "CreatedToken": {
            "allOf": [
                schema_ref("ApiToken"),
                { "type": "object", "required": ["token"], "properties": { "token": text } },
            ],
        },
        "AuditEntry": {
            "type": "object",
            "required": ["id", "at", "user_id", "username", "action", "target", "remote_address"],
            "properties": {
                "id": { "type": "integer" },
                "at": timestamp,
                "user_id": { "type": ["integer", "null"], "description": "null for failed logins" },
                "username": { "type": ["string", "null"], "description": "null for failed logins" },
                "action": {
                    "type": "string",
                    "examples": ["recording.replay", "user.create", "session.login_failed", "session.locked"],
                },
                "target": nullable_text,
                "remote_address": nullable_text,
            },
        },
        "CallRecord": call_record(),
        "RecordingEvent": recording_event(),
        "Transfer": transfer(),
        "RecordingPauseState": recording_pause_state(),
        "RecordingEntry": recording_entry(),
        "Agent": {
            "type": "object",
            "required": ["id", "state", "not_ready_reason", "contacts", "calls_answered", "talk_seconds",
                         "skills", "queues", "state_since", "call_id", "recording_paused"],
            "properties": {
                "id": text,
                "state": { "enum": ["logged_out", "unreachable", "available", "ringing", "on_call", "wrap_up", "not_ready"] },
                "not_ready_reason": nullable_text,
                "contacts": { "type": "integer", "description": "registered contacts that answer qualify probes" },
                "calls_answered": { "type": "integer" },
                "talk_seconds": number,
                "skills": skill_levels,
                "queues": { "type": "array", "items": text, "description": "queues the agent is a member of" },
                "state_since": { "type": ["string", "null"], "format": "date-time",
                                 "description": "when the agent entered its state, from the stored events; null when they do not show it" },
                "call_id": { "type": ["string", "null"],
                             "description": "product id of the answered call the agent is on" },
                "recording_paused": { "type": "boolean", "description": "that call's recording is paused" },
            },
        },
        "TrunkRegistration": {
            "type": "object",
            "required": ["trunk", "registrar", "aor", "state", "expires_at", "next_attempt_at",
                         "last_status", "last_reason"],
            "properties": {
                "trunk": text,
                "registrar": { "type": "string", "description": "registrar address, IP:PORT" },
                "aor": { "type": "string", "description": "address of record registered" },
                "state": { "enum": ["registering", "registered", "retrying", "failed", "unregistering", "unregistered"] },
                "expires_at": { "type": ["string", "null"], "format": "date-time",
                                "description": "when the binding lapses unless refreshed; null without a binding" },
                "next_attempt_at": { "type": ["string", "null"], "format": "date-time",
                                     "description": "when the next REGISTER goes out; null while one is in flight or after failed" },
                "last_status": { "type": ["integer", "null"],
                                 "description": "status of the registrar's last final response, 408 for a timeout" },
                "last_reason": nullable_text,
            },
        },
        "AgentSkillsRequest": {
            "type": "object",
            "required": ["skills"],
            "properties": { "skills": skill_levels },
        },
        "AgentStateRequest": {
            "type": "object",
            "required": ["state"],
            "properties": {
                "state": { "enum": ["ready", "not_ready", "logged_in", "logged_out"] },
                "reason": { "type": "string", "description": "reason code for not_ready, 1 to 64 characters" },
            },
        },
        "WrapUpCodeRequest": {
            "type": "object",
            "required": ["code"],
            "properties": {
                "code": { "type": "string", "description": "outcome of the call, 1 to 64 characters, e.g. resolved" },
            },
        },
        "Queue": {
            "type": "object",
            "required": ["name", "calls", "longest_wait_seconds", "staffed_agents", "available_agents",
                         "expected_wait_seconds", "average_handle_seconds", "removed"],
            "properties": {
                "name": text,
                "calls": { "type": "integer", "description": "calls waiting or ringing an agent" },
                "longest_wait_seconds": number,
                "staffed_agents": { "type": "integer" },
                "available_agents": { "type": "integer" },
                "expected_wait_seconds": nullable_number,
                "average_handle_seconds": nullable_number,
                "removed": removed,
            },
        },
        "QueueStats": queue_stats(),
        "Event": event_schema(),
        "QueueReport": queue_report(),
        "QueueKpi": queue_kpi(),
        "ReloadReport": {
            "type": "object",
            "required": ["file", "applied", "restart_needed"],
            "properties": {
                "file": text,
                "applied": { "type": "array", "items": text, "description": "one line per change made" },
                "restart_needed": { "type": "array", "items": text,
                                    "description": "keys whose new value waits for a restart" },
            },
        },
    })
}

/// Returns the schema of a CDR, kept apart like [`queue_stats`].
fn call_record() -> Value {
    let timestamp = json!({ "type": "string", "format": "date-time" });
    let nullable_timestamp = json!({ "type": ["string", "null"], "format": "date-time" });
    let text = json!({ "type": "string" });
    let nullable_text = json!({ "type": ["string", "null"] });
    let number = json!({ "type": "number" });
    let nullable_number = json!({ "type": ["number", "null"] });
    json!({
        "description": "Call detail record; docs/cdr.md describes each field",
        "type": "object",
        "properties": {
            "id": text, "caller_call_id": text, "agent_call_id": nullable_text,
            "caller": text, "dialed": text, "trunk": nullable_text,
            "source_extension": nullable_text, "queue": nullable_text, "agent": nullable_text,
            "direction": { "enum": ["inbound", "outbound", "internal"] },
            "arrived_at": timestamp, "queued_at": nullable_timestamp,
            "answered_at": nullable_timestamp, "ended_at": timestamp,
            "wait_seconds": number, "talk_seconds": number,
            "disposition": { "enum": ["answered", "abandoned", "no_agent", "failed", "voicemail", "callback"] },
            "sip_status": { "type": ["integer", "null"] },
            "hangup_side": { "enum": ["caller", "agent", "system", "session_expired", null] },
            "recording_path": nullable_text, "recording_seconds": nullable_number,
            "interrupted": { "type": "boolean" },
            "caller_answered_at": nullable_timestamp,
            "voicemail_box": nullable_text,
            "forwarded_to": nullable_text,
            "callback_of": nullable_text,
            "diverted_from": nullable_text,
            "rebuilt": { "type": "boolean" },
            "request_type": { "type": ["string", "null"],
                              "description": "request type of the dialed DID; null when it has none" },
            "hold_count": { "type": "integer", "description": "holds by either side during the answered call" },
            "hold_seconds": { "type": "number", "description": "time on hold, part of talk_seconds" },
            "survey": { "enum": ["answered", "timed_out", "invalid", "hung_up", "interrupted", null],
                        "description": "how the post-call survey ended; null when none was offered" },
            "csat_score": { "type": ["integer", "null"], "minimum": 1, "maximum": 5,
                            "description": "score keyed in the post-call survey" },
            "recording_events": { "type": "array", "items": schema_ref("RecordingEvent"),
                                  "description": "pauses and resumes of the recording, oldest first" },
            "media_quality": {
                "type": ["object", "null"],
                "description": "what the relay received from each leg; null when no audio was relayed",
                "properties": { "caller": leg_quality(), "agent": leg_quality() },
            },
            "transfers": { "type": "array", "items": schema_ref("Transfer"),
                           "description": "transfers by the call's agents, oldest first" },
        },
    })
}

fn leg_quality() -> Value {
    let count = json!({ "type": "integer" });
    let number = json!({ "type": "number" });
    json!({
        "type": "object",
        "properties": {
            "packets_received": count, "packets_expected": count, "packets_lost": count,
            "loss_percent": number, "jitter_ms": number,
            "mos": { "type": "number", "description": "estimated from loss and jitter, 1.0 to 4.5" },
            "recording_late_ms": {
                "type": "integer",
                "description": "audio of this leg that came too late for the recording, which is silent there; absent when the call was not recorded",
            },
        },
    })
}

/// Returns the schema of a catalogue row, kept apart like [`queue_stats`].
fn recording_entry() -> Value {
    let text = json!({ "type": "string" });
    let timestamp = json!({ "type": "string", "format": "date-time" });
    let nullable_timestamp = json!({ "type": ["string", "null"], "format": "date-time" });
    let nullable_text = json!({ "type": ["string", "null"] });
    let nullable_number = json!({ "type": ["number", "null"] });
    json!({
        "description": "A call recording in the catalogue; docs/media.md describes the statuses",
        "type": "object",
        "required": ["call_id", "kind", "path", "status", "started_at", "ended_at",
                     "duration_seconds", "size_bytes", "sha256", "deleted_at", "deletion_reason"],
        "properties": {
            "call_id": text,
            "kind": { "enum": ["stereo", "mixed_mono"],
                      "description": "the stereo recording, or its mono mix ([recording] mixed_mono)" },
            "path": { "type": "string", "description": "relative to the data directory" },
            "status": { "enum": ["recording", "complete", "interrupted", "deleted"] },
            "started_at": timestamp, "ended_at": nullable_timestamp,
            "duration_seconds": nullable_number,
            "size_bytes": { "type": ["integer", "null"] },
            "sha256": { "type": ["string", "null"], "description": "lowercase hex SHA-256 of the finished or repaired file" },
            "deleted_at": nullable_timestamp, "deletion_reason": nullable_text,
        },
    })
}

/// Returns the schema of one pause or resume in a CDR.
fn recording_event() -> Value {
    json!({
        "type": "object",
        "required": ["action", "offset_seconds", "at", "source", "actor"],
        "properties": {
            "action": { "enum": ["pause", "resume"] },
            "offset_seconds": { "type": "number",
                                "description": "seconds from answered_at, which is also the offset into the recording" },
            "at": { "type": "string", "format": "date-time" },
            "source": { "enum": ["api", "dtmf"] },
            "actor": { "type": "string", "description": "API user name, or the agent id that keyed the code" },
        },
    })
}

/// Schema of one entry of a CDR's `transfers`.
fn transfer() -> Value {
    let nullable_text = json!({ "type": ["string", "null"] });
    json!({
        "type": "object",
        "required": ["at", "offset_seconds", "from_agent", "from_talk_seconds", "target",
                     "target_kind", "outcome"],
        "properties": {
            "at": { "type": "string", "format": "date-time",
                    "description": "when the PBX accepted the agent's REFER" },
            "offset_seconds": { "type": "number",
                                "description": "seconds from answered_at, which is also the offset into the recording" },
            "from_agent": { "type": "string" },
            "from_talk_seconds": { "type": "number",
                                   "description": "talk time of from_agent, from its answer to at" },
            "target": { "type": "string", "description": "agent id or DID named in Refer-To" },
            "target_kind": { "enum": ["extension", "queue", "consultation"] },
            "outcome": { "enum": ["connected", "queued", "reconnected", "abandoned"] },
            "sip_status": { "type": ["integer", "null"],
                            "description": "final status of the target when it did not answer" },
            "answered_by": nullable_text,
            "answered_at": { "type": ["string", "null"], "format": "date-time" },
        },
    })
}

/// Reply of the recording pause and resume routes.
fn recording_pause_state() -> Value {
    json!({
        "type": "object",
        "required": ["call_id", "paused", "event"],
        "properties": {
            "call_id": { "type": "string" },
            "paused": { "type": "boolean" },
            "event": schema_ref("RecordingEvent"),
        },
    })
}

/// Schema of `GET /api/queues/{name}/stats`, apart because one `json!`
/// call with every schema would pass the macro's recursion limit.
fn queue_stats() -> Value {
    let number = json!({ "type": "number" });
    let nullable_number = json!({ "type": ["number", "null"] });
    let count = json!({ "type": "integer" });
    json!({
        "type": "object",
        "required": ["name", "calls", "longest_wait_seconds", "staffed_agents", "available_agents",
                     "expected_wait_seconds", "average_handle_seconds", "average_answer_wait_seconds",
                     "arrivals_per_hour", "answered", "answered_in_service_level", "abandoned",
                     "timed_out", "exited", "service_level_percent", "service_level_seconds", "removed"],
        "properties": {
            "name": { "type": "string" },
            "calls": { "type": "integer", "description": "calls waiting or ringing an agent now" },
            "longest_wait_seconds": number,
            "staffed_agents": { "type": "integer", "description": "members logged in and not paused" },
            "available_agents": count,
            "expected_wait_seconds": { "type": ["number", "null"], "description": "Erlang C estimate" },
            "average_handle_seconds": { "type": ["number", "null"], "description": "talk plus wrap-up" },
            "average_answer_wait_seconds": nullable_number,
            "arrivals_per_hour": { "type": ["number", "null"], "description": "over the last 15 minutes" },
            "answered": count,
            "answered_in_service_level": count,
            "abandoned": count,
            "timed_out": { "type": "integer", "description": "calls that reached max wait" },
            "exited": { "type": "integer", "description": "calls refused or sent on (full, no agent, overflow)" },
            "service_level_percent": { "type": ["number", "null"],
                "description": "calls answered within service_level_seconds, as a percentage of all calls that left the queue" },
            "service_level_seconds": number,
            "removed": { "type": "boolean", "description": "removed by a reload, still serving its calls" },
        },
    })
}

/// A stored queue event, as the event stream and a call's timeline give it.
fn event_schema() -> Value {
    let nullable_text = json!({ "type": ["string", "null"] });
    json!({
        "type": "object",
        "required": ["seq", "at", "kind", "call", "queue", "agent", "data"],
        "properties": {
            "seq": { "type": "integer", "description": "sequence number, increasing" },
            "at": { "type": "string", "format": "date-time" },
            "kind": { "type": "string", "examples": ["call_enqueued", "offer_started", "offer_answered",
                "call_abandoned", "call_completed", "agent_state_changed", "member_added"] },
            "call": nullable_text,
            "queue": nullable_text,
            "agent": nullable_text,
            "data": { "type": "object", "description": "the fields of this kind; docs/api.md lists them" },
        },
    })
}

/// Schema of `GET /api/reports/queues`.
fn queue_report() -> Value {
    json!({
        "type": "object",
        "required": ["from", "to", "queues"],
        "properties": {
            "from": { "type": "string", "format": "date-time" },
            "to": { "type": "string", "format": "date-time" },
            "queues": { "type": "array", "items": schema_ref("QueueKpi"),
                        "description": "queues that had calls in the range, by name" },
        },
    })
}

/// One queue of a report, with the hold and survey figures.
fn queue_kpi() -> Value {
    let mut kpi = queue_kpi_base();
    quality::add_hold_survey(&mut kpi);
    kpi
}

fn queue_kpi_base() -> Value {
    let count = json!({ "type": "integer" });
    let seconds =
        |description: &str| json!({ "type": ["number", "null"], "description": description });
    json!({
        "type": "object",
        "required": ["queue", "offered", "answered", "abandoned", "abandon_percent",
                     "average_abandon_seconds", "timed_out",
                     "exited_by_key", "exited_other", "unresolved", "average_speed_of_answer_seconds",
                     "average_talk_seconds", "average_wrap_up_seconds", "average_handle_seconds",
                     "service_level_20_percent", "service_level_30_percent", "longest_wait_seconds",
                     "callbacks_not_reached"],
        "properties": {
            "queue": { "type": "string" },
            "offered": { "type": "integer", "description": "calls that entered the queue in the range" },
            "answered": count,
            "abandoned": { "type": "integer", "description": "the caller hung up before an answer" },
            "abandon_percent": seconds("abandoned as a percentage of offered"),
            "average_abandon_seconds": seconds("mean wait of the abandoned calls before the caller hung up"),
            "timed_out": { "type": "integer", "description": "calls that reached max wait" },
            "exited_by_key": { "type": "integer", "description": "calls that left by a DTMF exit key" },
            "exited_other": { "type": "integer", "description": "queue full, no agent, or a skill step" },
            "unresolved": { "type": "integer", "description": "no outcome stored yet: still waiting, or cut by a stop" },
            "average_speed_of_answer_seconds": seconds("mean wait of the answered calls"),
            "callbacks_not_reached": { "type": "integer", "description": "callback requests whose attempts all failed" },
            "average_talk_seconds": seconds("mean talk time of the answered calls that ended, without their hold time"),
            "average_wrap_up_seconds": seconds("mean wrap-up after those calls, where it has ended"),
            "average_handle_seconds": seconds("mean talk plus hold plus wrap-up, where the wrap-up has ended"),
            "service_level_20_percent": seconds("offered calls answered within 20 seconds, as a percentage"),
            "service_level_30_percent": seconds("offered calls answered within 30 seconds, as a percentage"),
            "longest_wait_seconds": seconds("longest wait before an answer or leaving the queue"),
        },
    })
}
