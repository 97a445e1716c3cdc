//! HTTP API: health check, login, call records and their recordings,
//! recording pause and resume during a call, the recording catalogue, user
//! and token administration, the audit log, live agents and queues,
//! configuration reload, QA scorecards, queue and agent reports from the
//! stored events and call records, the live event stream, and the web
//! console's pages.
//!
//! Errors are RFC 9457 problem details (`application/problem+json` with
//! `type`, `title`, `status` and `detail`). Every `/api/` route except login
//! and the OpenAPI document needs a session cookie or a bearer token (see
//! `auth`), and each handler checks the caller's role. `openapi` describes
//! the routes; a test keeps it equal to [`routes`].

mod admin;
mod administration;
mod auth;
mod bootstrap;
mod calls;
mod console;
mod interval_reports;
mod json_body;
mod live;
mod openapi;
mod problem;
mod recording_pause;
mod recordings;
mod reports;
mod scorecards;
mod session;
mod stream;

use std::path::PathBuf;
use std::sync::Arc;

use accounts::{AccountStore, Policy};
use axum::Json;
use axum::Router;
use axum::handler::Handler;
use axum::http::StatusCode;
use axum::routing::MethodFilter;
use cdr::CdrStore;
use time::OffsetDateTime;

pub(crate) use bootstrap::{BootstrapError, bootstrap_accounts};
use json_body::JsonBody;
use problem::Problem;

#[derive(Clone)]
pub(crate) struct HttpState {
    pub(crate) cdr: CdrStore,
    /// Folder that `CallRecord::recording_path` is relative to.
    pub(crate) data_dir: PathBuf,
    /// The engine, for live agent and queue state; None where no engine
    /// runs (the API answers those routes with 503).
    pub(crate) live: Option<crate::live::Live>,
    /// Re-reads the configuration file; None where no engine runs.
    pub(crate) reloader: Option<Arc<crate::reload::Reloader>>,
    /// Committed queue events for `GET /api/events/stream`; None where no
    /// event writer runs (the stream answers 503).
    pub(crate) events: Option<crate::events::EventFeed>,
}

/// Source of the current time, replaced by a virtual clock in tests.
pub(crate) type Clock = Arc<dyn Fn() -> OffsetDateTime + Send + Sync>;

/// State shared by the handlers: the call records, the accounts on the same
/// database, and the clock for sessions, lockouts and audit entries.
#[derive(Clone)]
pub(crate) struct ApiState {
    pub(crate) calls: HttpState,
    pub(crate) accounts: AccountStore,
    pub(crate) clock: Clock,
}

impl ApiState {
    pub(crate) fn now(&self) -> OffsetDateTime {
        (self.clock)()
    }
}

/// Returns the API router on the CDR store's database, with the default
/// account [`Policy`] and the system clock. The account tables must exist:
/// [`bootstrap_accounts`] creates them at start.
pub(crate) fn router(state: HttpState) -> Router {
    let accounts = AccountStore::new(state.cdr.pool().clone(), Policy::default());
    router_with(ApiState {
        calls: state,
        accounts,
        clock: Arc::new(OffsetDateTime::now_utc),
    })
}

pub(crate) fn router_with(state: ApiState) -> Router {
    routes()
        .router
        .fallback(unknown_route)
        .method_not_allowed_fallback(method_not_allowed)
        .with_state(state)
}

/// HTTP methods the API uses, named as OpenAPI path item keys.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Verb {
    Get,
    Post,
    Put,
    Patch,
    Delete,
}

impl Verb {
    /// Returns the OpenAPI path item key; the document test compares them.
    #[cfg(test)]
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Verb::Get => "get",
            Verb::Post => "post",
            Verb::Put => "put",
            Verb::Patch => "patch",
            Verb::Delete => "delete",
        }
    }

    fn filter(self) -> MethodFilter {
        match self {
            Verb::Get => MethodFilter::GET,
            Verb::Post => MethodFilter::POST,
            Verb::Put => MethodFilter::PUT,
            Verb::Patch => MethodFilter::PATCH,
            Verb::Delete => MethodFilter::DELETE,
        }
    }
}

/// A router together with the list of what it routes, which axum cannot
/// report itself; the OpenAPI test compares that list with the document.
pub(crate) struct Routes {
    router: Router<ApiState>,
    pub(crate) table: Vec<(&'static str, Verb)>,
}

impl Routes {
    fn add<H, T>(mut self, verb: Verb, path: &'static str, handler: H) -> Routes
    where
        H: Handler<T, ApiState>,
        T: 'static,
    {
        // axum merges method routers given for the same path.
        self.router = self
            .router
            .route(path, axum::routing::on(verb.filter(), handler));
        self.table.push((path, verb));
        self
    }
}

use administration::{AGENTS, QUEUES, SKILLS};

impl Routes {
    /// Adds list, create, read, replace and delete of one kind of
    /// definition, `K` being its code in `administration`.
    fn administration<const K: u8>(
        self,
        list_path: &'static str,
        item_path: &'static str,
    ) -> Routes {
        use Verb::{Delete, Get, Post, Put};
        self.add(Get, list_path, administration::list::<K>)
            .add(Post, list_path, administration::create::<K>)
            .add(Get, item_path, administration::get::<K>)
            .add(Put, item_path, administration::replace::<K>)
            .add(Delete, item_path, administration::delete::<K>)
    }
}

pub(crate) fn routes() -> Routes {
    use Verb::{Delete, Get, Patch, Post, Put};
    let routes = Routes {
        router: Router::new(),
        table: Vec::new(),
    };
    routes
        .add(Get, "/health", health)
        .add(Get, "/api/openapi.json", openapi::serve)
        .add(Post, "/api/session", session::login)
        .add(Delete, "/api/session", session::logout)
        .add(Get, "/api/me", session::me)
        .add(Get, "/api/calls", calls::list_calls)
        .add(Get, "/api/calls/{id}", calls::get_call)
        .add(Get, "/api/calls/{id}/recording", calls::get_recording)
        .add(Get, "/api/calls/{id}/events", calls::call_events)
        .add(
            Post,
            "/api/calls/{id}/recording/pause",
            recording_pause::pause,
        )
        .add(
            Post,
            "/api/calls/{id}/recording/resume",
            recording_pause::resume,
        )
        .add(Get, "/api/calls/{id}/scorecards", scorecards::list_for_call)
        .add(Post, "/api/calls/{id}/scorecards", scorecards::save)
        .add(Get, "/api/scorecards", scorecards::search)
        .add(Get, "/api/scorecards/criteria", scorecards::criteria)
        .add(Get, "/api/recordings", recordings::list_recordings)
        .add(Get, "/api/recordings/{id}", recordings::get_recording_entry)
        .add(Get, "/api/users", admin::list_users)
        .add(Post, "/api/users", admin::create_user)
        .add(Get, "/api/users/{id}", admin::get_user)
        .add(Patch, "/api/users/{id}", admin::update_user)
        .add(Put, "/api/users/{id}/password", admin::set_password)
        .add(Get, "/api/tokens", admin::list_tokens)
        .add(Post, "/api/tokens", admin::create_token)
        .add(Delete, "/api/tokens/{id}", admin::revoke_token)
        .add(Get, "/api/audit", admin::list_audit)
        .add(Get, "/api/agents", live::list_agents)
        .add(Put, "/api/agents/{id}/state", live::set_agent_state)
        .add(Put, "/api/agents/{id}/skills", live::set_agent_skills)
        .add(Put, "/api/agents/{id}/wrap-up-code", live::set_wrap_up_code)
        .add(Put, "/api/agents/{id}/queues/{queue}", live::add_member)
        .add(
            Delete,
            "/api/agents/{id}/queues/{queue}",
            live::remove_member,
        )
        .add(Get, "/api/queues", live::list_queues)
        .add(
            Get,
            "/api/trunks/registrations",
            live::list_trunk_registrations,
        )
        .add(Get, "/api/queues/{name}/stats", live::queue_stats)
        .add(Post, "/api/config/reload", live::reload_config)
        .administration::<AGENTS>("/api/admin/agents", "/api/admin/agents/{id}")
        .administration::<SKILLS>("/api/admin/skills", "/api/admin/skills/{name}")
        .administration::<QUEUES>("/api/admin/queues", "/api/admin/queues/{name}")
        .add(Get, "/api/reports/queues", reports::queue_report)
        .add(
            Get,
            "/api/reports/intervals",
            interval_reports::interval_report,
        )
        .add(Get, "/api/events/stream", stream::stream_events)
        .add(Get, "/metrics", live::metrics)
        .add(Get, "/", console::root)
        .add(Get, "/console/login", console::login_page)
        .add(Get, "/console/calls", console::calls_page)
        .add(Get, "/console/calls/{id}", console::call_page)
        .add(Get, "/console/wallboard", console::wallboard_page)
        .add(Get, "/console/reports", console::reports_page)
        .add(Get, "/console/admin", console::administration_page)
        .add(Get, "/console/assets/{file}", console::asset)
}

async fn health() -> Json<serde_json::Value> {
    Json(serde_json::json!({ "status": "ok" }))
}

async fn unknown_route() -> Problem {
    Problem::not_found("no such route; GET /api/openapi.json lists the API")
}

async fn method_not_allowed() -> Problem {
    Problem::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "method not allowed on this route; GET /api/openapi.json lists the API",
    )
}

fn parse_parameter(name: &str, value: Option<&str>, default: u32) -> Result<u32, Problem> {
    match value {
        None => Ok(default),
        Some(text) => text.parse().map_err(|_| {
            let detail = format!(
                "{name} must be a whole number from 0 to {}, got {text:?}",
                u32::MAX
            );
            Problem::bad_request(detail)
        }),
    }
}

/// Parses the `limit` query parameter of a list: `default` when absent,
/// otherwise a whole number from 1 to `max`.
fn parse_limit(value: Option<&str>, default: u32, max: u32) -> Result<u32, Problem> {
    let Some(text) = value else {
        return Ok(default);
    };
    match text.parse::<u32>() {
        Ok(limit) if (1..=max).contains(&limit) => Ok(limit),
        _ => Err(Problem::bad_request(format!(
            "limit must be a whole number from 1 to {max}, got {text:?}"
        ))),
    }
}

#[cfg(test)]
mod tests;
