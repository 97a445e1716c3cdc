//! Administration of agents, skills and queues: `/api/admin/agents`,
//! `/api/admin/skills` and `/api/admin/queues`, each with list, create,
//! read, replace and delete.
//!
//! A definition is the JSON form of its table in the configuration file,
//! with the same keys. A change becomes an entry of the administration
//! layer (see `config_layer`) and goes through the file's validation. It
//! is then stored, applied through the reload path without touching calls
//! in progress, and written to the audit log. Administrators change
//! definitions, and supervisors read them.

mod definitions;

use accounts::Role;
use axum::Json;
use axum::extract::rejection::PathRejection;
use axum::extract::{Path as UrlPath, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::{Map, Value};

use super::auth::Authenticated;
use super::{ApiState, JsonBody, Problem};
use crate::config_layer::{Entry, Kind};
use crate::reload::{ReloadError, Reloader};

const ADMINISTRATOR: [Role; 1] = [Role::Administrator];
const READERS: [Role; 2] = [Role::Administrator, Role::Supervisor];

/// Codes of the kinds, as const generic arguments of the handlers.
pub(super) const AGENTS: u8 = 0;
pub(super) const SKILLS: u8 = 1;
pub(super) const QUEUES: u8 = 2;

fn kind_of(code: u8) -> Kind {
    match code {
        AGENTS => Kind::Agent,
        SKILLS => Kind::Skill,
        _ => Kind::Queue,
    }
}

fn reloader(state: &ApiState) -> Result<&Reloader, Problem> {
    state.calls.reloader.as_deref().ok_or_else(|| {
        Problem::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "the configuration is not available in this process",
        )
    })
}

fn key_parameter(key: Result<UrlPath<String>, PathRejection>) -> Result<String, Problem> {
    key.map(|UrlPath(key)| key)
        .map_err(|rejection| Problem::bad_request(rejection.body_text()))
}

fn not_found(kind: Kind, key: &str) -> Problem {
    Problem::not_found(format!(
        "no {} {key:?}; GET /api/admin/{} lists them",
        kind.noun(),
        kind.table()
    ))
}

/// Lists the definitions of a kind in configuration order.
pub(crate) async fn list<const K: u8>(
    State(state): State<ApiState>,
    user: Authenticated,
) -> Result<Json<Vec<Map<String, Value>>>, Problem> {
    let kind = kind_of(K);
    user.require(&READERS, &format!("read {}", kind.table()))?;
    let (text, layer) = reloader(&state)?.definitions().await;
    let shown = definitions::tables(&text, kind)
        .into_iter()
        .map(|table| definitions::with_api_fields(kind, table, &text, &layer))
        .collect();
    Ok(Json(shown))
}

pub(crate) async fn get<const K: u8>(
    State(state): State<ApiState>,
    user: Authenticated,
    key: Result<UrlPath<String>, PathRejection>,
) -> Result<Json<Map<String, Value>>, Problem> {
    let kind = kind_of(K);
    user.require(&READERS, &format!("read {}", kind.table()))?;
    let key = key_parameter(key)?;
    let (text, layer) = reloader(&state)?.definitions().await;
    let table = definitions::find(&text, kind, &key).ok_or_else(|| not_found(kind, &key))?;
    Ok(Json(definitions::with_api_fields(
        kind, table, &text, &layer,
    )))
}

pub(crate) async fn create<const K: u8>(
    State(state): State<ApiState>,
    user: Authenticated,
    body: Result<JsonBody<Value>, Problem>,
) -> Result<Response, Problem> {
    let kind = kind_of(K);
    user.require(&ADMINISTRATOR, &format!("change {}", kind.table()))?;
    let mut body = object_body(body)?;
    let key = match body.get(kind.key_field()) {
        Some(Value::String(key)) => key.clone(),
        _ => {
            return Err(missing_key(kind));
        }
    };
    let (text, _) = reloader(&state)?.definitions().await;
    if definitions::find(&text, kind, &key).is_some() {
        return Err(Problem::new(
            StatusCode::CONFLICT,
            format!(
                "{} {key:?} already exists; change it with PUT /api/admin/{}/{key}",
                kind.noun(),
                kind.table()
            ),
        ));
    }
    if kind == Kind::Agent && !body.contains_key("password") {
        // A generated password would only reach the PBX's log.
        let detail = "password is required for a new agent; its phone registers with it";
        return Err(unprocessable(kind, detail, "#/password", "password"));
    }
    let entries = entries_for(kind, &key, &mut body, &text)?;
    save(&state, &user, kind, &key, entries, "create").await?;
    let shown = shown_after(&state, kind, &key).await?;
    Ok((StatusCode::CREATED, Json(shown)).into_response())
}

pub(crate) async fn replace<const K: u8>(
    State(state): State<ApiState>,
    user: Authenticated,
    key: Result<UrlPath<String>, PathRejection>,
    body: Result<JsonBody<Value>, Problem>,
) -> Result<Json<Map<String, Value>>, Problem> {
    let kind = kind_of(K);
    user.require(&ADMINISTRATOR, &format!("change {}", kind.table()))?;
    let key = key_parameter(key)?;
    let mut body = object_body(body)?;

    match body.get(kind.key_field()) {
        None => {
            body.insert(kind.key_field().to_owned(), Value::String(key.clone()));
        }
        Some(Value::String(sent)) if *sent == key => {}
        Some(_) => {
            let field = kind.key_field();
            let detail = format!(
                "{field} must be {key:?} as in the path; to rename, create the {} anew and \
                 delete this one",
                kind.noun()
            );
            return Err(unprocessable(kind, &detail, &format!("#/{field}"), field));
        }
    }

    let (text, _) = reloader(&state)?.definitions().await;
    let existing = definitions::find(&text, kind, &key).ok_or_else(|| not_found(kind, &key))?;
    // The password is never shown, so a form that sends none keeps it.
    if kind == Kind::Agent
        && !body.contains_key("password")
        && let Some(password) = existing.get("password")
    {
        body.insert("password".to_owned(), password.clone());
    }
    let entries = entries_for(kind, &key, &mut body, &text)?;
    save(&state, &user, kind, &key, entries, "update").await?;
    Ok(Json(shown_after(&state, kind, &key).await?))
}

pub(crate) async fn delete<const K: u8>(
    State(state): State<ApiState>,
    user: Authenticated,
    key: Result<UrlPath<String>, PathRejection>,
) -> Result<StatusCode, Problem> {
    let kind = kind_of(K);
    user.require(&ADMINISTRATOR, &format!("change {}", kind.table()))?;
    let key = key_parameter(key)?;
    let (text, _) = reloader(&state)?.definitions().await;
    if definitions::find(&text, kind, &key).is_none() {
        return Err(not_found(kind, &key));
    }
    let mut entries = Vec::new();
    if kind == Kind::Agent {
        // Queues drop the agent with it, as they would have to by hand.
        entries.extend(definitions::membership_entries(&text, &key, &[]));
    }
    entries.push(Entry {
        kind,
        key: key.clone(),
        definition: None,
    });
    save(&state, &user, kind, &key, entries, "delete").await?;
    Ok(StatusCode::NO_CONTENT)
}

fn object_body(body: Result<JsonBody<Value>, Problem>) -> Result<Map<String, Value>, Problem> {
    let JsonBody(value) = body?;
    match definitions::without_nulls(value) {
        Value::Object(mut map) => {
            for field in definitions::READ_ONLY {
                map.remove(field);
            }
            Ok(map)
        }
        _ => Err(Problem::bad_request("the body must be a JSON object")),
    }
}

fn missing_key(kind: Kind) -> Problem {
    let field = kind.key_field();
    let detail = format!("{field} is required, as a string");
    unprocessable(kind, &detail, &format!("#/{field}"), field)
}

fn unprocessable(kind: Kind, detail: &str, pointer: &str, field: &str) -> Problem {
    Problem::new(
        StatusCode::UNPROCESSABLE_ENTITY,
        format!("the {} was not saved: {detail}", kind.noun()),
    )
    .with_errors(vec![super::problem::FieldError {
        detail: detail.to_owned(),
        pointer: Some(pointer.to_owned()),
        key: field.to_owned(),
    }])
}

/// Turns a body into layer entries: the definition itself and, for an
/// agent with `queues`, the queues whose member list changes.
fn entries_for(
    kind: Kind,
    key: &str,
    body: &mut Map<String, Value>,
    text: &str,
) -> Result<Vec<Entry>, Problem> {
    let mut entries = Vec::new();
    if kind == Kind::Agent
        && let Some(queues) = body.remove("queues")
    {
        let requested = queue_names(&queues, text)?;
        entries.extend(definitions::membership_entries(text, key, &requested));
    }
    entries.push(Entry {
        kind,
        key: key.to_owned(),
        definition: Some(body.clone()),
    });
    Ok(entries)
}

/// Checks an agent's `queues`: an array of names of defined queues.
fn queue_names(value: &Value, text: &str) -> Result<Vec<String>, Problem> {
    let Some(items) = value.as_array() else {
        let detail = "queues must be an array of queue names";
        return Err(unprocessable(Kind::Agent, detail, "#/queues", "queues"));
    };
    let known = definitions::tables(text, Kind::Queue);
    let mut names = Vec::with_capacity(items.len());
    for (index, item) in items.iter().enumerate() {
        let name = item.as_str().unwrap_or_default();
        if !known
            .iter()
            .any(|queue| definitions::key_of(Kind::Queue, queue) == Some(name))
        {
            let detail = format!("unknown queue {item}; create it first or correct the name");
            let pointer = format!("#/queues/{index}");
            return Err(unprocessable(Kind::Agent, &detail, &pointer, "queues"));
        }
        names.push(name.to_owned());
    }
    Ok(names)
}

async fn save(
    state: &ApiState,
    user: &Authenticated,
    kind: Kind,
    key: &str,
    entries: Vec<Entry>,
    verb: &str,
) -> Result<(), Problem> {
    let now = state.now();
    let at_ms = super::reports::millis(now);
    let username = user.caller.user.username.clone();
    reloader(state)?
        .apply_changes(entries, at_ms, &username)
        .await
        .map_err(|error| change_problem(error, kind, key, verb))?;
    let action = format!("config.{}.{verb}", kind.noun());
    let target = format!("{}:{key}", kind.noun());
    super::admin::audit(state, user, &action, target, now).await
}

async fn shown_after(
    state: &ApiState,
    kind: Kind,
    key: &str,
) -> Result<Map<String, Value>, Problem> {
    let (text, layer) = reloader(state)?.definitions().await;
    let table = definitions::find(&text, kind, key).ok_or_else(|| not_found(kind, key))?;
    Ok(definitions::with_api_fields(kind, table, &text, &layer))
}

/// Maps a rejected change: 422 when the definition sent is invalid, 409
/// when it is valid but conflicts with other definitions or the file.
fn change_problem(error: ReloadError, kind: Kind, key: &str, verb: &str) -> Problem {
    let noun = kind.noun();
    match error {
        ReloadError::Invalid(rejected) => {
            let (errors, own) = definitions::field_errors(&rejected, kind, key);
            let summary: Vec<String> = errors
                .iter()
                .map(|error| match &error.pointer {
                    Some(pointer) => {
                        let field = pointer.trim_start_matches("#/").replace('/', ".");
                        format!("{field}: {}", error.detail)
                    }
                    None => error.detail.clone(),
                })
                .collect();
            let status = if own {
                StatusCode::UNPROCESSABLE_ENTITY
            } else {
                StatusCode::CONFLICT
            };
            let detail = format!("the {noun} {key:?} was not {verb}d: {}", summary.join("; "));
            Problem::new(status, detail).with_errors(errors)
        }
        ReloadError::Unsupported { problems } => Problem::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            format!(
                "the {noun} {key:?} was not {verb}d: {}",
                problems.join("; ")
            ),
        ),
        ReloadError::Secrets(_) => {
            Problem::new(StatusCode::UNPROCESSABLE_ENTITY, error.to_string())
        }
        ReloadError::Engine(_) => Problem::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "the engine did not answer; the change was not applied, try again",
        ),
        ReloadError::NotDurable(_) => {
            Problem::new(StatusCode::SERVICE_UNAVAILABLE, error.to_string())
        }
        ReloadError::Embedded | ReloadError::Layer(_) | ReloadError::NoLayerStore => {
            tracing::error!(%error, kind = noun, key, "administration change failed");
            Problem::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "the change could not be stored; see the PBX log",
            )
        }
    }
}
