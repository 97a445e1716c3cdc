//! Caller authentication: the [`Authenticated`] extractor and role checks.
//!
//! A request proves its user with either the session cookie set by
//! `POST /api/session` or an `Authorization: Bearer` API token (RFC 6750
//! section 2.1). When both are present the bearer token decides, so an
//! integration running in a browser tab is not mistaken for the person
//! logged in there.

use std::net::SocketAddr;

use accounts::{Caller, Role};
use axum::extract::{ConnectInfo, FromRequestParts};
use axum::http::request::Parts;
use axum::http::{HeaderMap, StatusCode, header};

use super::{ApiState, Problem};

/// Name of the session cookie.
pub(crate) const SESSION_COOKIE: &str = "pbx_session";

/// The authenticated user of a request and where the request came from.
pub(crate) struct Authenticated {
    pub(crate) caller: Caller,
    /// The session cookie's value, when that is the credential used.
    pub(crate) session_secret: Option<String>,
    /// The peer address, known when the server was started with
    /// `into_make_service_with_connect_info::<SocketAddr>()`.
    pub(crate) remote: Option<SocketAddr>,
    /// The secret the request carried, so that a long response (the event
    /// stream) can check later that it is still valid.
    pub(crate) proof: Proof,
}

/// A credential's secret as the request carried it.
#[derive(Clone)]
pub(crate) enum Proof {
    Session(String),
    Bearer(String),
}

impl Proof {
    /// Looks up the user of the secret now. Returns `None` once the session
    /// ended or expired, the token was revoked, or the user was disabled.
    pub(crate) async fn caller(&self, state: &ApiState) -> Result<Option<Caller>, Problem> {
        let caller = match self {
            Proof::Session(secret) => state.accounts.session_caller(secret, state.now()).await,
            Proof::Bearer(secret) => state.accounts.token_caller(secret).await,
        };
        caller.map_err(Problem::accounts)
    }
}

impl Authenticated {
    /// Rejects the request with 403 unless the caller's role is in `allowed`.
    pub(crate) fn require(&self, allowed: &[Role], action: &str) -> Result<(), Problem> {
        let role = self.caller.user.role;
        if allowed.contains(&role) {
            return Ok(());
        }
        let allowed: Vec<&str> = allowed.iter().map(|role| role.as_str()).collect();
        let detail = format!(
            "role {} may not {action}; allowed roles: {}",
            role.as_str(),
            allowed.join(", ")
        );
        Err(Problem::new(StatusCode::FORBIDDEN, detail))
    }

    /// Returns the remote address as text for the audit log.
    pub(crate) fn remote_address(&self) -> Option<String> {
        self.remote.map(|address| address.to_string())
    }
}

impl FromRequestParts<ApiState> for Authenticated {
    type Rejection = Problem;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &ApiState,
    ) -> Result<Authenticated, Problem> {
        let remote = remote_address(parts);
        if let Some(secret) = bearer_token(&parts.headers)? {
            let proof = Proof::Bearer(secret.to_owned());
            let caller = proof
                .caller(state)
                .await?
                .ok_or_else(|| Problem::unauthorized("invalid or revoked bearer token"))?;
            return Ok(Authenticated {
                caller,
                session_secret: None,
                remote,
                proof,
            });
        }
        let Some(secret) = session_cookie(&parts.headers) else {
            return Err(Problem::unauthorized(
                "authentication required: log in with POST /api/session \
                 or send Authorization: Bearer <token>",
            ));
        };
        let proof = Proof::Session(secret.to_owned());
        let caller = proof
            .caller(state)
            .await?
            .ok_or_else(|| Problem::unauthorized("session expired or ended; log in again"))?;
        Ok(Authenticated {
            caller,
            session_secret: Some(secret.to_owned()),
            remote,
            proof,
        })
    }
}

/// The peer address of a request, `None` when the server was started
/// without connect info (as in tests that call the router directly).
pub(crate) struct RemoteAddress(pub(crate) Option<SocketAddr>);

impl<S: Send + Sync> FromRequestParts<S> for RemoteAddress {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(
        parts: &mut Parts,
        _state: &S,
    ) -> Result<RemoteAddress, Self::Rejection> {
        Ok(RemoteAddress(remote_address(parts)))
    }
}

fn remote_address(parts: &Parts) -> Option<SocketAddr> {
    parts
        .extensions
        .get::<ConnectInfo<SocketAddr>>()
        .map(|ConnectInfo(address)| *address)
}

/// Returns the token of an `Authorization: Bearer` header, `None` without
/// the header, and 401 for another scheme or an unreadable value.
fn bearer_token(headers: &HeaderMap) -> Result<Option<&str>, Problem> {
    let Some(value) = headers.get(header::AUTHORIZATION) else {
        return Ok(None);
    };
    let unsupported =
        || Problem::unauthorized("unsupported Authorization header: use Bearer <token>");
    let text = value.to_str().map_err(|_| unsupported())?;
    let (scheme, token) = text.split_once(' ').ok_or_else(unsupported)?;
    // RFC 9110 section 11.1: the scheme name is case-insensitive.
    if !scheme.eq_ignore_ascii_case("bearer") {
        return Err(unsupported());
    }
    let token = token.trim();
    if token.is_empty() {
        return Err(unsupported());
    }
    Ok(Some(token))
}

/// Returns the value of the session cookie from the `Cookie` headers
/// (RFC 6265 section 5.4: `name=value` pairs joined by "; ").
pub(crate) fn session_cookie(headers: &HeaderMap) -> Option<&str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|line| line.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == SESSION_COOKIE)
        .map(|(_, value)| value)
        .filter(|value| !value.is_empty())
}
