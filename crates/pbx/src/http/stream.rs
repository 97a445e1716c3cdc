//! `GET /api/events/stream`: committed queue, call and agent events as
//! server-sent events (the WHATWG HTML "server-sent events" format).
//!
//! Each event's `id:` is its sequence number in `queue_events`, so a client
//! that reconnects with `Last-Event-ID` (browsers send it by themselves)
//! first gets what it missed from the table, then live events. Only events
//! the event writer has committed are sent.

use std::convert::Infallible;
use std::time::Duration;

use accounts::Role;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use serde_json::json;

use super::auth::{Authenticated, Proof};
use super::{ApiState, Problem};
use crate::events::{EventStore, StreamItem, Subscription};

/// Interval of the keep-alive comments, short enough for proxies that
/// close idle connections after a minute.
const KEEP_ALIVE: Duration = Duration::from_secs(15);

/// Interval at which a stream checks that its session or token is still
/// valid, so that logging out, expiry, revocation or disabling the user
/// ends it.
const RECHECK: Duration = if cfg!(test) {
    Duration::from_millis(200)
} else {
    Duration::from_secs(30)
};

/// Name of the request header that carries the last id a client saw.
const LAST_EVENT_ID: &str = "last-event-id";

pub(crate) async fn stream_events(
    State(state): State<ApiState>,
    user: Authenticated,
    headers: HeaderMap,
) -> Result<Response, Problem> {
    let agent = visible_agent(&user)?;
    let after = last_event_id(&headers)?;
    let feed = state.calls.events.as_ref().ok_or_else(|| {
        Problem::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "the event stream is not available; retry shortly",
        )
    })?;
    let store = EventStore::on(state.calls.cdr.pool().clone());
    let subscription = Subscription::start(store, feed, agent, after)
        .await
        .map_err(|error| {
            tracing::error!(%error, "starting an event stream failed");
            Problem::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "the queue events could not be read",
            )
        })?;
    let identity = identity(&user);
    let mut recheck = tokio::time::interval_at(tokio::time::Instant::now() + RECHECK, RECHECK);
    recheck.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let open = OpenStream {
        subscription,
        state,
        proof: user.proof,
        identity,
        recheck,
    };
    let stream = futures_util::stream::unfold(Some(open), |open| async move {
        let mut open = open?;
        let event = open.next().await?;
        Some((Ok::<Event, Infallible>(event), Some(open)))
    });
    let keep_alive = KeepAlive::new().interval(KEEP_ALIVE).text("keep-alive");
    Ok(Sse::new(stream).keep_alive(keep_alive).into_response())
}

/// Returns the agent whose events the caller may see, `None` for all.
fn visible_agent(user: &Authenticated) -> Result<Option<String>, Problem> {
    let caller = &user.caller.user;
    match caller.role {
        Role::Administrator | Role::Supervisor | Role::Qa => Ok(None),
        // The accounts store requires an agent id for this role, so a
        // missing one means a row edited by hand: refuse rather than show
        // every agent's events.
        Role::Agent => caller.agent_id.clone().map(Some).ok_or_else(|| {
            Problem::new(
                StatusCode::FORBIDDEN,
                format!("user {:?} has no agent_id", caller.username),
            )
        }),
    }
}

/// Returns the role and agent id that select a caller's events. A change
/// of either ends the stream.
fn identity(user: &Authenticated) -> (Role, Option<String>) {
    (user.caller.user.role, user.caller.user.agent_id.clone())
}

/// Reads `Last-Event-ID`: absent or empty means "from now on".
fn last_event_id(headers: &HeaderMap) -> Result<Option<i64>, Problem> {
    let Some(value) = headers.get(LAST_EVENT_ID) else {
        return Ok(None);
    };
    let invalid = |text: &str| {
        Problem::bad_request(format!(
            "Last-Event-ID must be an event sequence number (a whole number from 0), got {text:?}"
        ))
    };
    let text = value
        .to_str()
        .map_err(|_| invalid(&String::from_utf8_lossy(value.as_bytes())))?
        .trim();
    if text.is_empty() {
        return Ok(None);
    }
    match text.parse::<i64>() {
        Ok(seq) if seq >= 0 => Ok(Some(seq)),
        _ => Err(invalid(text)),
    }
}

/// A stream being served.
struct OpenStream {
    subscription: Subscription,
    state: ApiState,
    proof: Proof,
    identity: (Role, Option<String>),
    recheck: tokio::time::Interval,
}

impl OpenStream {
    /// Waits for the next SSE event. `None` ends the response.
    async fn next(&mut self) -> Option<Event> {
        loop {
            // Both branches can be dropped mid-way: the subscription keeps
            // its place until an item is handed out.
            tokio::select! {
                item = self.subscription.next() => return self.event(item),
                _ = self.recheck.tick() => {
                    if !self.still_allowed().await {
                        return None;
                    }
                }
            }
        }
    }

    fn event(
        &self,
        item: Result<Option<StreamItem>, crate::events::EventStoreError>,
    ) -> Option<Event> {
        match item {
            Ok(Some(StreamItem::Event(event))) => Some(
                Event::default()
                    .id(event.seq.to_string())
                    .data(event.to_json().to_string()),
            ),
            Ok(Some(StreamItem::Lagged {
                skipped,
                resume_after,
            })) => {
                tracing::debug!(skipped, resume_after, "event stream client fell behind");
                Some(
                    Event::default().event("lagged").data(
                        json!({"skipped": skipped, "resume_after": resume_after}).to_string(),
                    ),
                )
            }
            Ok(None) => None,
            Err(error) => {
                // Ending the response makes the client reconnect with its
                // Last-Event-ID and read from the table again.
                tracing::error!(%error, last_seq = self.subscription.last_seq(), "event stream stopped: reading events failed");
                None
            }
        }
    }

    async fn still_allowed(&self) -> bool {
        match self.proof.caller(&self.state).await {
            Ok(Some(caller)) => (caller.user.role, caller.user.agent_id.clone()) == self.identity,
            Ok(None) => false,
            Err(_) => {
                // The database is unreachable for a moment; the stream
                // reads the same database and fails on its own if it stays so.
                true
            }
        }
    }
}
