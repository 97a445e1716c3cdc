//! The web console: pages, styles and scripts compiled into the binary, so
//! the PBX serves them with no build step or other server at run time.
//!
//! The pages are static. Their scripts read everything through the API
//! with the session cookie, and a page whose script gets 401 goes to the
//! login page. Every response carries a Content-Security-Policy that
//! allows scripts, styles and connections from the PBX itself only and no
//! inline script, so an injected `<script>` or `onclick` would not run.

use axum::extract::Path as UrlPath;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

use super::Problem;

/// Policy of every console response. `media-src blob:` lets the audio
/// element play the recording the call page fetched once (and the audit
/// log recorded once) instead of fetching it again.
pub(crate) const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; \
     style-src 'self'; img-src 'self'; media-src 'self' blob:; connect-src 'self'; \
     form-action 'self'; base-uri 'none'; frame-ancestors 'none'";

const HTML: &str = "text/html; charset=utf-8";
const CSS: &str = "text/css; charset=utf-8";
const JAVASCRIPT: &str = "text/javascript; charset=utf-8";

const LOGIN: &str = include_str!("../../console/login.html");
const CALLS: &str = include_str!("../../console/calls.html");
const CALL: &str = include_str!("../../console/call.html");
const WALLBOARD: &str = include_str!("../../console/wallboard.html");
const REPORTS: &str = include_str!("../../console/reports.html");
const ADMINISTRATION: &str = include_str!("../../console/admin.html");

/// Files under `/console/assets/`, by name.
const ASSETS: [(&str, &str, &str); 11] = [
    (
        "console.css",
        CSS,
        include_str!("../../console/console.css"),
    ),
    (
        "common.js",
        JAVASCRIPT,
        include_str!("../../console/common.js"),
    ),
    (
        "login.js",
        JAVASCRIPT,
        include_str!("../../console/login.js"),
    ),
    (
        "calls.js",
        JAVASCRIPT,
        include_str!("../../console/calls.js"),
    ),
    ("call.js", JAVASCRIPT, include_str!("../../console/call.js")),
    (
        "wallboard.js",
        JAVASCRIPT,
        include_str!("../../console/wallboard.js"),
    ),
    (
        "wallboard_chart.js",
        JAVASCRIPT,
        include_str!("../../console/wallboard_chart.js"),
    ),
    (
        "reports.js",
        JAVASCRIPT,
        include_str!("../../console/reports.js"),
    ),
    (
        "admin.js",
        JAVASCRIPT,
        include_str!("../../console/admin.js"),
    ),
    (
        "scorecard.js",
        JAVASCRIPT,
        include_str!("../../console/scorecard.js"),
    ),
    (
        "favicon.svg",
        "image/svg+xml",
        include_str!("../../console/favicon.svg"),
    ),
];

/// `/`: the calls page, whose script sends a visitor who is not logged in
/// on to the login page. The session cookie is scoped to `/api`, so the
/// server cannot tell here.
pub(crate) async fn root() -> Response {
    (
        StatusCode::SEE_OTHER,
        [(header::LOCATION, "/console/calls")],
    )
        .into_response()
}

pub(crate) async fn login_page() -> Response {
    serve(HTML, LOGIN)
}

pub(crate) async fn calls_page() -> Response {
    serve(HTML, CALLS)
}

/// Serves one page for every call. Its script reads the id from the address.
pub(crate) async fn call_page(UrlPath(_id): UrlPath<String>) -> Response {
    serve(HTML, CALL)
}

pub(crate) async fn wallboard_page() -> Response {
    serve(HTML, WALLBOARD)
}

pub(crate) async fn reports_page() -> Response {
    serve(HTML, REPORTS)
}

pub(crate) async fn administration_page() -> Response {
    serve(HTML, ADMINISTRATION)
}

pub(crate) async fn asset(UrlPath(name): UrlPath<String>) -> Result<Response, Problem> {
    ASSETS
        .iter()
        .find(|(file, _, _)| *file == name)
        .map(|(_, content_type, body)| serve(content_type, body))
        .ok_or_else(|| Problem::not_found(format!("no console file {name:?}")))
}

fn serve(content_type: &'static str, body: &'static str) -> Response {
    let mut response = body.into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CONTENT_SECURITY_POLICY),
    );
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    // A new binary brings new files under the same names.
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    response
}

/// Names of the files under `/console/assets/`, for tests.
#[cfg(test)]
pub(crate) fn asset_names() -> impl Iterator<Item = (&'static str, &'static str)> {
    ASSETS
        .iter()
        .map(|(name, content_type, _)| (*name, *content_type))
}
