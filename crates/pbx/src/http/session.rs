//! Login, logout and the current user.

use accounts::{AccountsError, NewAuditEntry, User};
use axum::Json;
use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use super::auth::{Authenticated, RemoteAddress, SESSION_COOKIE};
use super::{ApiState, JsonBody, Problem};

/// Body of `POST /api/session`.
#[derive(Deserialize)]
pub(crate) struct LoginRequest {
    username: String,
    password: String,
}

/// Reply to a successful login; the session itself is in the cookie.
#[derive(Serialize)]
struct LoginReply {
    user: User,
    #[serde(with = "time::serde::rfc3339")]
    expires_at: OffsetDateTime,
}

pub(crate) async fn login(
    State(state): State<ApiState>,
    RemoteAddress(remote): RemoteAddress,
    body: Result<JsonBody<LoginRequest>, Problem>,
) -> Result<Response, Problem> {
    let JsonBody(request) = body?;
    let now = state.now();
    // The store counts failures per (username, IP address) and writes
    // failures and locks to the audit log itself, in the same transaction.
    let address = remote.map(|remote| remote.ip());
    let session = match state
        .accounts
        .login(&request.username, &request.password, address, now)
        .await
    {
        Ok(session) => session,
        Err(error) => return Err(rejected_login(error, &request.username, now)),
    };
    let remote = remote.map(|address| address.to_string());
    let entry = NewAuditEntry {
        user: &session.user,
        action: "session.login",
        target: None,
        remote_address: remote.as_deref(),
    };
    state
        .accounts
        .append_audit(entry, now)
        .await
        .map_err(Problem::accounts)?;
    let max_age = (session.expires_at - now).whole_seconds();
    // Path=/api keeps the cookie off other paths; HttpOnly hides it from
    // scripts; SameSite=Strict keeps other sites from sending it (RFC 6265
    // section 4.1 and RFC 6265bis). NOTE: without TLS in front of the PBX
    // the cookie travels in clear, and `Secure` is not set so that plain
    // HTTP on loopback keeps working.
    let cookie = format!(
        "{SESSION_COOKIE}={}; Path=/api; HttpOnly; SameSite=Strict; Max-Age={max_age}",
        session.token
    );
    let cookie = HeaderValue::from_str(&cookie).map_err(|_| {
        Problem::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "failed to build the session cookie",
        )
    })?;
    let reply = LoginReply {
        user: session.user,
        expires_at: session.expires_at,
    };
    Ok(([(header::SET_COOKIE, cookie)], Json(reply)).into_response())
}

/// Logs a rejected login (without the password) and maps it to a response.
/// Known and unknown usernames get the same reply.
fn rejected_login(error: AccountsError, username: &str, now: OffsetDateTime) -> Problem {
    match &error {
        AccountsError::InvalidCredentials => {
            let username = accounts::typed_username(username);
            tracing::warn!(username, "login rejected: invalid username or password");
        }
        AccountsError::Locked {
            username,
            scope,
            until,
        } => {
            // Debug, not warn: a locked login costs no password check, so a
            // client can repeat it fast, and the lock itself is audited.
            tracing::debug!(username, %scope, %until, "login rejected: locked");
            let seconds = (*until - now).whole_seconds().max(1);
            return Problem::accounts(error).with_retry_after(seconds);
        }
        _ => {}
    }
    Problem::accounts(error)
}

pub(crate) async fn logout(
    State(state): State<ApiState>,
    user: Authenticated,
) -> Result<Response, Problem> {
    let Some(secret) = &user.session_secret else {
        return Err(Problem::bad_request(
            "DELETE /api/session ends a session cookie; \
             an administrator revokes a bearer token with DELETE /api/tokens/{id}",
        ));
    };
    state
        .accounts
        .logout(secret)
        .await
        .map_err(Problem::accounts)?;
    let expired = format!("{SESSION_COOKIE}=; Path=/api; HttpOnly; SameSite=Strict; Max-Age=0");
    let cookie = HeaderValue::from_str(&expired).map_err(|_| {
        Problem::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "failed to build the session cookie",
        )
    })?;
    Ok((StatusCode::NO_CONTENT, [(header::SET_COOKIE, cookie)]).into_response())
}

pub(crate) async fn me(user: Authenticated) -> Json<User> {
    Json(user.caller.user)
}
