//! RFC 9457 problem details, the body of every error response.

use accounts::AccountsError;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;

/// The `WWW-Authenticate` challenge sent with 401 responses (RFC 9110
/// section 11.6.1 requires one). Bearer is the only scheme a client can
/// send, because the session cookie comes from `POST /api/session` instead.
const CHALLENGE: &str = "Bearer realm=\"pbx\"";

/// An RFC 9457 problem details body.
#[derive(Debug, Serialize)]
pub(crate) struct Problem {
    /// `about:blank`, because the status code carries all a client can act on.
    #[serde(rename = "type")]
    kind: &'static str,
    title: &'static str,
    status: u16,
    detail: String,
    /// Seconds for a `Retry-After` header, sent with 429.
    #[serde(skip)]
    retry_after: Option<i64>,
    /// One entry per invalid field, as the `errors` extension member that
    /// RFC 9457 section 3 shows.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    errors: Vec<FieldError>,
}

/// One invalid value of a request body.
#[derive(Debug, Serialize)]
pub(crate) struct FieldError {
    pub(crate) detail: String,
    /// JSON Pointer into the request body, as `#/skills/0`; absent when the
    /// problem lies in another definition than the one sent.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) pointer: Option<String>,
    /// Key path in the configuration, as `queues[1].agents[0]`.
    pub(crate) key: String,
}

impl Problem {
    pub(crate) fn new(status: StatusCode, detail: impl Into<String>) -> Problem {
        Problem {
            kind: "about:blank",
            // RFC 9457 section 4.2.1: with about:blank the title is the
            // status code's reason phrase.
            title: status.canonical_reason().unwrap_or("Error"),
            status: status.as_u16(),
            detail: detail.into(),
            retry_after: None,
            errors: Vec::new(),
        }
    }

    /// Lists the invalid fields with the problem.
    pub(crate) fn with_errors(self, errors: Vec<FieldError>) -> Problem {
        Problem { errors, ..self }
    }

    pub(crate) fn bad_request(detail: impl Into<String>) -> Problem {
        Problem::new(StatusCode::BAD_REQUEST, detail)
    }

    pub(crate) fn unauthorized(detail: impl Into<String>) -> Problem {
        Problem::new(StatusCode::UNAUTHORIZED, detail)
    }

    pub(crate) fn not_found(detail: impl Into<String>) -> Problem {
        Problem::new(StatusCode::NOT_FOUND, detail)
    }

    /// Sets the `Retry-After` header to `seconds`.
    pub(crate) fn with_retry_after(self, seconds: i64) -> Problem {
        Problem {
            retry_after: Some(seconds),
            ..self
        }
    }

    pub(crate) fn store_failure(error: &cdr::CdrError) -> Problem {
        tracing::error!(%error, "call record query failed");
        Problem::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "failed to read call records",
        )
    }

    /// Maps an account store error: the caller's mistakes keep their
    /// message, and failures of the store itself are logged and hidden.
    pub(crate) fn accounts(error: AccountsError) -> Problem {
        use AccountsError as E;
        match error {
            E::InvalidUsername { .. }
            | E::PasswordTooShort { .. }
            | E::PasswordTooLong { .. }
            | E::AgentIdRequired
            | E::AgentIdNotAllowed { .. }
            | E::InvalidAgentId { .. }
            | E::InvalidTokenName { .. } => Problem::bad_request(error.to_string()),
            E::DuplicateUsername { .. } | E::LastAdministrator { .. } => {
                Problem::new(StatusCode::CONFLICT, error.to_string())
            }
            E::UserNotFound { .. } => Problem::not_found(error.to_string()),
            E::InvalidCredentials => Problem::unauthorized(error.to_string()),
            // The login handler adds Retry-After, because it has the clock.
            E::Locked { .. } => Problem::new(StatusCode::TOO_MANY_REQUESTS, error.to_string()),
            E::Query(_)
            | E::Migrate(_)
            | E::InvalidRow { .. }
            | E::PasswordCost(_)
            | E::PasswordHash(_)
            | E::HashTask(_)
            | E::TimeOutOfRange { .. } => {
                tracing::error!(%error, "account store failed");
                Problem::new(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "failed to read or update accounts",
                )
            }
        }
    }
}

impl IntoResponse for Problem {
    fn into_response(self) -> Response {
        let status = StatusCode::from_u16(self.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let body = serde_json::to_vec(&self).unwrap_or_default();
        let mut response = (
            status,
            [(header::CONTENT_TYPE, "application/problem+json")],
            body,
        )
            .into_response();
        let headers = response.headers_mut();
        if status == StatusCode::UNAUTHORIZED {
            headers.insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static(CHALLENGE),
            );
        }
        if let Some(seconds) = self.retry_after {
            headers.insert(header::RETRY_AFTER, HeaderValue::from(seconds));
        }
        response
    }
}
