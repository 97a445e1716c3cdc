//! The JSON request body of every API handler, so that each endpoint rejects
//! a bad body with the same status and wording:
//!
//! - 415 without `Content-Type: application/json` (or a `+json` type),
//! - 413 for a body past the size limit, and 400 when it cannot be read,
//! - 400 for a body that is not JSON,
//! - 422 for JSON that does not fit the request: a wrong type, a missing
//!   or an unknown field.

use axum::body::Bytes;
use axum::extract::{FromRequest, Request};
use axum::http::{HeaderMap, StatusCode, header};
use serde::de::DeserializeOwned;

use super::Problem;

/// A request body parsed from JSON. Handlers take `Result<JsonBody<T>,
/// Problem>` when they check the caller's role before the body.
#[derive(Debug)]
pub(crate) struct JsonBody<T>(pub(crate) T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for JsonBody<T> {
    type Rejection = Problem;

    async fn from_request(request: Request, state: &S) -> Result<Self, Problem> {
        if !is_json(request.headers()) {
            return Err(Problem::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "the request body must be JSON; send Content-Type: application/json",
            ));
        }
        // The rejection's status is 413 past the body limit.
        let bytes = Bytes::from_request(request, state)
            .await
            .map_err(|rejection| Problem::new(rejection.status(), rejection.body_text()))?;
        parse(&bytes).map(JsonBody)
    }
}

/// True for `application/json` and the `application/*+json` types, with
/// any parameters.
fn is_json(headers: &HeaderMap) -> bool {
    let Some(value) = headers
        .get(header::CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
    else {
        return false;
    };
    let essence = value.split(';').next().unwrap_or_default().trim();
    let essence = essence.to_ascii_lowercase();
    essence == "application/json"
        || essence
            .strip_prefix("application/")
            .is_some_and(|subtype| subtype.ends_with("+json"))
}

/// Parses `bytes` as a `T`. A body that is valid JSON but not a valid `T`
/// is a 422 naming the field, and anything else is a 400.
fn parse<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, Problem> {
    let mut deserializer = serde_json::Deserializer::from_slice(bytes);
    let first_error = match serde_path_to_error::deserialize(&mut deserializer) {
        Ok(value) => match deserializer.end() {
            Ok(()) => return Ok(value),
            Err(trailing) => trailing.to_string(),
        },
        Err(error) => error.to_string(),
    };
    // serde_json reports some wrong types as syntax errors, such as a
    // number for an enum ("expected value"), so the body is parsed again
    // to tell the two apart.
    let value = match serde_json::from_slice::<serde_json::Value>(bytes) {
        Ok(value) => value,
        Err(syntax) => {
            let detail = format!("the request body is not valid JSON: {syntax}");
            return Err(Problem::bad_request(detail));
        }
    };
    // Deserializing from the parsed value names the wrong type itself. A
    // duplicate field passes here, so the first error is reported then.
    let detail = match serde_path_to_error::deserialize::<_, T>(value) {
        Err(from_value) => from_value.to_string(),
        Ok(_) => first_error,
    };
    Err(Problem::new(
        StatusCode::UNPROCESSABLE_ENTITY,
        format!("invalid request body: {detail}"),
    ))
}
