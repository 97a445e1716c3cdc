//! The durable event store: every queue and agent event the core hands
//! over becomes one row of `queue_events`, committed by one writer task
//! before the API request that caused it gets its reply. The queue_log file
//! is written from the same batches, and reports ([`crate::kpi`]) are
//! computed from the rows.

mod feed;

use std::path::PathBuf;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use acd::{AgentState, Destination, ExitReason, Party, QueueEvent, SurveyOutcome};
use serde_json::{Value, json};
use sip_server::b2bua::StampedEvent;
use sqlx::{AnyPool, Row};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;
use tokio::sync::mpsc;

pub(crate) use feed::{EventFeed, FEED_CAPACITY, StreamItem, Subscription};

#[derive(Debug, thiserror::Error)]
pub(crate) enum EventStoreError {
    #[error("failed to migrate the event store: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error("event store query failed: {0}")]
    Query(#[from] sqlx::Error),
    #[error("stored event {seq} has invalid data: {source}")]
    Decode { seq: i64, source: serde_json::Error },
}

/// A state change was applied in memory but its events are not on disk.
#[derive(Clone, Debug, thiserror::Error)]
#[error("the change was applied but could not be stored, so it is not durable: {0}")]
pub(crate) struct NotDurable(pub(crate) String);

/// Runs once the batch it came with is committed (`Ok`) or failed to be.
pub(crate) type Ack = Box<dyn FnOnce(Result<(), NotDurable>) + Send>;

/// One event as it is stored, before it has a sequence number.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct NewEvent {
    pub(crate) at_ms: i64,
    pub(crate) kind: &'static str,
    pub(crate) call: Option<String>,
    pub(crate) queue: Option<String>,
    pub(crate) agent: Option<String>,
    pub(crate) data: Value,
}

/// One stored event, as reports read it.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct StoredEvent {
    pub(crate) seq: i64,
    pub(crate) at_ms: i64,
    pub(crate) kind: String,
    pub(crate) call: Option<String>,
    pub(crate) queue: Option<String>,
    pub(crate) agent: Option<String>,
    pub(crate) data: Value,
}

impl StoredEvent {
    /// Returns the event as the API shows it: the columns by name, the time
    /// as RFC 3339 text, and the kind's own fields under `data`.
    pub(crate) fn to_json(&self) -> Value {
        json!({
            "seq": self.seq,
            "at": rfc3339(self.at_ms),
            "kind": self.kind,
            "call": self.call,
            "queue": self.queue,
            "agent": self.agent,
            "data": self.data,
        })
    }
}

/// Unit of work of the writer: the events of one drain of the core, their
/// queue_log lines and, when an API request or a feature code caused them,
/// what to run once they are committed (the reply, or the release of a
/// held SIP answer).
#[derive(Default)]
pub(crate) struct EventBatch {
    pub(crate) events: Vec<NewEvent>,
    pub(crate) lines: Vec<String>,
    pub(crate) acks: Vec<Ack>,
}

impl EventBatch {
    pub(crate) fn push(&mut self, stamped: &[StampedEvent], lines: Vec<String>) {
        self.events
            .extend(stamped.iter().map(NewEvent::from_stamped));
        self.lines.extend(lines);
    }
}

#[derive(Clone)]
pub(crate) struct EventStore {
    pool: AnyPool,
}

impl EventStore {
    /// Uses the PBX database behind `pool`, creating the table if needed.
    pub(crate) async fn open(pool: AnyPool) -> Result<EventStore, EventStoreError> {
        crate::storage::migrate(&pool).await?;
        Ok(EventStore { pool })
    }

    /// Uses a database whose migrations already ran, as the HTTP API does
    /// once the PBX has started.
    pub(crate) fn on(pool: AnyPool) -> EventStore {
        EventStore { pool }
    }

    /// Stores `events` in one transaction, in order, and returns them with
    /// the sequence numbers the table gave them.
    pub(crate) async fn append(
        &self,
        events: &[NewEvent],
    ) -> Result<Vec<StoredEvent>, EventStoreError> {
        if events.is_empty() {
            return Ok(Vec::new());
        }
        let mut stored = Vec::with_capacity(events.len());
        let backend = cdr::database::Backend::of(&self.pool);
        let _turn = cdr::database::sqlite_write_turn(&self.pool).await;
        let mut transaction = self.pool.begin().await?;
        // Each statement is a round trip to the database's worker, so the
        // events go in multi-row statements. Both engines number the rows
        // of one INSERT in the order of its VALUES list, so the numbers
        // returned, sorted, belong to the events in order.
        for chunk in events.chunks(EVENTS_PER_STATEMENT) {
            let sql = format!(
                "INSERT INTO queue_events (at_ms, at, kind, call_id, queue, agent, data) \
                 VALUES {} RETURNING seq",
                cdr::database::placeholder_rows(backend, 1, chunk.len(), 7)
            );
            let mut insert = sqlx::query_scalar::<_, i64>(&sql);
            for event in chunk {
                insert = insert
                    .bind(event.at_ms)
                    .bind(rfc3339(event.at_ms))
                    .bind(event.kind)
                    .bind(&event.call)
                    .bind(&event.queue)
                    .bind(&event.agent)
                    .bind(event.data.to_string());
            }
            let mut numbers = insert.fetch_all(&mut *transaction).await?;
            numbers.sort_unstable();
            for (seq, event) in numbers.into_iter().zip(chunk) {
                stored.push(StoredEvent {
                    seq,
                    at_ms: event.at_ms,
                    kind: event.kind.to_owned(),
                    call: event.call.clone(),
                    queue: event.queue.clone(),
                    agent: event.agent.clone(),
                    data: event.data.clone(),
                });
            }
        }
        transaction.commit().await?;
        Ok(stored)
    }

    /// Sequence number of the newest stored event, 0 when there is none.
    pub(crate) async fn last_seq(&self) -> Result<i64, EventStoreError> {
        let newest: Option<i64> = sqlx::query_scalar("SELECT MAX(seq) FROM queue_events")
            .fetch_one(&self.pool)
            .await?;
        Ok(newest.unwrap_or(0))
    }

    /// Up to `limit` events after `after` in sequence order, only those of
    /// `agent` when it is given; an event stream catches up with these.
    pub(crate) async fn events_after(
        &self,
        after: i64,
        agent: Option<&str>,
        limit: u32,
    ) -> Result<Vec<StoredEvent>, EventStoreError> {
        let rows = sqlx::query(
            "SELECT seq, at_ms, kind, call_id, queue, agent, data FROM queue_events \
             WHERE seq > $1 AND ($2 IS NULL OR agent = $2) ORDER BY seq LIMIT $3",
        )
        .bind(after)
        .bind(agent)
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(decode).collect()
    }

    /// Time in Unix milliseconds and new state of `agent`'s last stored
    /// state change, if any.
    pub(crate) async fn last_state_change(
        &self,
        agent: &str,
    ) -> Result<Option<(i64, String)>, EventStoreError> {
        // The state is read from the JSON here, not with SQL, because
        // SQLite and PostgreSQL spell JSON access differently.
        let row: Option<(i64, i64, String)> = sqlx::query_as(
            "SELECT seq, at_ms, data FROM queue_events \
             WHERE agent = $1 AND kind = 'agent_state_changed' ORDER BY seq DESC LIMIT 1",
        )
        .bind(agent)
        .fetch_optional(&self.pool)
        .await?;
        let Some((seq, at_ms, data)) = row else {
            return Ok(None);
        };
        let data: serde_json::Value = serde_json::from_str(&data)
            .map_err(|source| EventStoreError::Decode { seq, source })?;
        Ok(data
            .get("to")
            .and_then(serde_json::Value::as_str)
            .map(|to| (at_ms, to.to_owned())))
    }

    /// Reads every event of call `call` in sequence order, for its timeline.
    pub(crate) async fn call_events(
        &self,
        call: &str,
    ) -> Result<Vec<StoredEvent>, EventStoreError> {
        let rows = sqlx::query(
            "SELECT seq, at_ms, kind, call_id, queue, agent, data FROM queue_events \
             WHERE call_id = $1 ORDER BY seq",
        )
        .bind(call)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(decode).collect()
    }

    /// Reads what a report over `[from_ms, to_ms)` needs, in sequence
    /// order: every event of the calls that entered a queue in the range,
    /// whenever it happened, and every agent state change from `from_ms` on.
    pub(crate) async fn report_events(
        &self,
        from_ms: i64,
        to_ms: i64,
    ) -> Result<Vec<StoredEvent>, EventStoreError> {
        let rows = sqlx::query(
            "SELECT seq, at_ms, kind, call_id, queue, agent, data FROM queue_events \
             WHERE call_id IN (SELECT call_id FROM queue_events \
                 WHERE kind = 'call_enqueued' AND at_ms >= $1 AND at_ms < $2) \
             OR (kind = 'agent_state_changed' AND at_ms >= $1) \
             ORDER BY seq",
        )
        .bind(from_ms)
        .bind(to_ms)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(decode).collect()
    }

    /// Returns every event of the calls that entered a queue in `[from_ms,
    /// to_ms)`, in `seq` order, including their events after `to_ms`.
    pub(crate) async fn queued_call_events(
        &self,
        from_ms: i64,
        to_ms: i64,
    ) -> Result<Vec<StoredEvent>, EventStoreError> {
        let rows = sqlx::query(
            "SELECT seq, at_ms, kind, call_id, queue, agent, data FROM queue_events \
             WHERE call_id IN (SELECT call_id FROM queue_events \
                 WHERE kind = 'call_enqueued' AND at_ms >= $1 AND at_ms < $2) \
             ORDER BY seq",
        )
        .bind(from_ms)
        .bind(to_ms)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(decode).collect()
    }

    /// Reads each agent's last state change before `before_ms`, which gives
    /// the state it was in at that moment.
    // TODO: this walks every earlier state change in the table; a stored
    // snapshot per day would bound it once the table contains years of events.
    pub(crate) async fn agent_states_before(
        &self,
        before_ms: i64,
    ) -> Result<Vec<StoredEvent>, EventStoreError> {
        let rows = sqlx::query(
            "SELECT seq, at_ms, kind, call_id, queue, agent, data FROM queue_events \
             WHERE seq IN (SELECT MAX(seq) FROM queue_events \
                 WHERE kind = 'agent_state_changed' AND at_ms < $1 GROUP BY agent) \
             ORDER BY seq",
        )
        .bind(before_ms)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(decode).collect()
    }

    /// Opens the PBX database at `database` to read events without running
    /// migrations or creating anything, as tools do beside a running PBX.
    pub(crate) async fn open_existing(
        database: &cdr::database::DatabaseUrl,
    ) -> Result<EventStore, EventStoreError> {
        let pool = cdr::database::connect(&database.without_create()).await?;
        Ok(EventStore { pool })
    }

    /// Reads up to `limit` events after sequence number `after` whose time
    /// is in `[since_ms, until_ms)`, an absent bound being open, in
    /// sequence order.
    pub(crate) async fn page(
        &self,
        after: i64,
        since_ms: Option<i64>,
        until_ms: Option<i64>,
        limit: u32,
    ) -> Result<Vec<StoredEvent>, EventStoreError> {
        let rows = sqlx::query(
            "SELECT seq, at_ms, kind, call_id, queue, agent, data FROM queue_events \
             WHERE seq > $1 AND at_ms >= $2 AND at_ms < $3 ORDER BY seq LIMIT $4",
        )
        .bind(after)
        .bind(since_ms.unwrap_or(i64::MIN))
        .bind(until_ms.unwrap_or(i64::MAX))
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(decode).collect()
    }

    /// Reads the last `limit` stored events, in sequence order.
    pub(crate) async fn last(&self, limit: u32) -> Result<Vec<StoredEvent>, EventStoreError> {
        let rows = sqlx::query(
            "SELECT seq, at_ms, kind, call_id, queue, agent, data FROM queue_events \
             ORDER BY seq DESC LIMIT $1",
        )
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await?;
        let mut events = rows.iter().map(decode).collect::<Result<Vec<_>, _>>()?;
        events.reverse();
        Ok(events)
    }

    /// Every stored event in sequence order, for tests and tools.
    #[cfg(test)]
    pub(crate) async fn all(&self) -> Result<Vec<StoredEvent>, EventStoreError> {
        let rows = sqlx::query(
            "SELECT seq, at_ms, kind, call_id, queue, agent, data FROM queue_events ORDER BY seq",
        )
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(decode).collect()
    }
}

fn decode(row: &sqlx::any::AnyRow) -> Result<StoredEvent, EventStoreError> {
    let seq: i64 = row.try_get("seq")?;
    let text: String = row.try_get("data")?;
    Ok(StoredEvent {
        seq,
        at_ms: row.try_get("at_ms")?,
        kind: row.try_get("kind")?,
        call: row.try_get("call_id")?,
        queue: row.try_get("queue")?,
        agent: row.try_get("agent")?,
        data: serde_json::from_str(&text)
            .map_err(|source| EventStoreError::Decode { seq, source })?,
    })
}

/// Returns `first` followed by the items already waiting in `queue`, at
/// most `max` in all, for a writer that commits them as one group.
pub(crate) fn with_queued<T>(
    first: T,
    queue: &mut mpsc::UnboundedReceiver<T>,
    max: usize,
) -> Vec<T> {
    let mut group = vec![first];
    while group.len() < max {
        match queue.try_recv() {
            Ok(item) => group.push(item),
            Err(_) => break,
        }
    }
    group
}

/// Joins `first` and the batches queued behind it into one, in order,
/// until the joined batch contains `max_events` events or the queue is empty.
pub(crate) fn take_group(
    first: EventBatch,
    queue: &mut mpsc::UnboundedReceiver<EventBatch>,
    max_events: usize,
) -> EventBatch {
    let mut group = first;
    while group.events.len() < max_events {
        let Ok(batch) = queue.try_recv() else { break };
        group.events.extend(batch.events);
        group.lines.extend(batch.lines);
        group.acks.extend(batch.acks);
    }
    group
}

/// Commits each batch in one transaction, then hands the committed events
/// to `feed` for the live event stream, replies to the request that caused
/// them and appends their lines to the queue_log file. Batches are taken in
/// the order the engine sent them, so a reply never precedes the commit of
/// an earlier event, and the stream carries only events that are stored.
/// The lines of a batch whose commit failed are not written, because the
/// file must match what [`crate::queue_log`] rebuilds from the table.
pub(crate) async fn write_events(
    store: EventStore,
    queue_log: PathBuf,
    mut batches: mpsc::UnboundedReceiver<EventBatch>,
    feed: EventFeed,
) {
    let mut file = QueueLogFile::open(queue_log).await;
    while let Some(first) = batches.recv().await {
        // Group commit: the batches that queued up while the last commit
        // ran share one transaction, so one fsync covers them all under
        // load instead of one per batch. A batch nothing waits for (the
        // events of calls) also waits GATHER for the next ones.
        if first.acks.is_empty() {
            tokio::time::sleep(GATHER).await;
        }
        let EventBatch {
            events,
            lines,
            acks,
        } = take_group(first, &mut batches, MAX_GROUP_EVENTS);
        let committed = match store.append(&events).await {
            Ok(stored) => {
                // Never waits: a subscriber that falls behind loses its
                // place in the feed and reads the table instead.
                feed.publish(stored);
                Ok(())
            }
            Err(error) => {
                tracing::error!(%error, events = events.len(), "storing queue events failed");
                Err(error.to_string())
            }
        };
        for ack in acks {
            ack(committed.clone().map_err(NotDurable));
        }
        // The file holds the lines of committed events only, so that it can
        // always be rebuilt from the table.
        if committed.is_ok() {
            file.append(&lines).await;
        } else if !lines.is_empty() {
            tracing::error!(
                lines = lines.len(),
                "queue_log lines of the events that could not be stored are not written"
            );
        }
    }
}

/// Maximum events of one [`write_events`] transaction, reached only by a
/// backlog. The bound counts events, not batches. With a bound of 256
/// batches (about 600 events) the writer fell behind at 2,400 calls/s of
/// seven events each, and a stop lost the queued events.
const MAX_GROUP_EVENTS: usize = 20_000;

/// How long [`write_events`] gathers after a batch that no request waits
/// for. At 1,000 calls/s one commit then covers the events of about 20
/// calls, and a request's batch that arrives meanwhile waits at most this
/// long for its reply.
const GATHER: std::time::Duration = std::time::Duration::from_millis(20);

/// Rows per INSERT of [`EventStore::append`]: at seven values a row this
/// stays far below SQLite's limit of 32,766 bound values per statement.
const EVENTS_PER_STATEMENT: usize = 500;

/// The Asterisk-compatible queue_log, appended one write per batch so a
/// reader tailing it sees whole lines.
struct QueueLogFile {
    path: PathBuf,
    file: Option<tokio::fs::File>,
}

impl QueueLogFile {
    async fn open(path: PathBuf) -> QueueLogFile {
        let file = tokio::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .await;
        let file = match file {
            Ok(file) => Some(file),
            Err(error) => {
                // The events still reach the database, which reports read.
                tracing::error!(path = %path.display(), %error, "cannot open the queue_log; queue events are only stored in the database");
                None
            }
        };
        QueueLogFile { path, file }
    }

    async fn append(&mut self, lines: &[String]) {
        use tokio::io::AsyncWriteExt;
        let Some(file) = &mut self.file else { return };
        if lines.is_empty() {
            return;
        }
        let mut text = lines.join("\n");
        text.push('\n');
        let written = file.write_all(text.as_bytes()).await;
        if let Err(error) = written.and(file.flush().await) {
            tracing::error!(path = %self.path.display(), %error, "writing the queue_log failed");
        }
    }
}

impl NewEvent {
    /// Flattens a core event into the stored columns: call, queue and agent
    /// as columns for lookups, everything else as JSON.
    pub(crate) fn from_stamped(stamped: &StampedEvent) -> NewEvent {
        let at_ms = unix_millis(stamped.wall);
        let event = |kind, call: Option<&String>, queue: Option<&String>, agent, data| NewEvent {
            at_ms,
            kind,
            call: call.cloned(),
            queue: queue.cloned(),
            agent,
            data,
        };
        match &stamped.event {
            QueueEvent::CallEnqueued {
                call,
                queue,
                caller,
                request_type,
                position,
                ..
            } => event(
                "call_enqueued",
                Some(call),
                Some(queue),
                None,
                json!({"caller": caller, "request_type": request_type, "position": position}),
            ),
            QueueEvent::StepReached {
                call, queue, step, ..
            } => event(
                "step_reached",
                Some(call),
                Some(queue),
                None,
                json!({"step": step}),
            ),
            QueueEvent::OfferStarted {
                call, queue, agent, ..
            } => event(
                "offer_started",
                Some(call),
                Some(queue),
                Some(agent.clone()),
                json!({}),
            ),
            QueueEvent::OfferAnswered {
                call,
                queue,
                agent,
                waited,
                ring_time,
                joined_position,
                ..
            } => event(
                "offer_answered",
                Some(call),
                Some(queue),
                Some(agent.clone()),
                json!({
                    "waited_seconds": seconds(*waited),
                    "ring_seconds": seconds(*ring_time),
                    "joined_position": joined_position,
                }),
            ),
            QueueEvent::OfferRejected {
                call,
                queue,
                agent,
                busy,
                ring_time,
                ..
            } => event(
                "offer_rejected",
                Some(call),
                Some(queue),
                Some(agent.clone()),
                json!({"busy": busy, "ring_seconds": seconds(*ring_time)}),
            ),
            QueueEvent::OfferTimedOut {
                call,
                queue,
                agent,
                ring_time,
                ..
            } => event(
                "offer_timed_out",
                Some(call),
                Some(queue),
                Some(agent.clone()),
                json!({"ring_seconds": seconds(*ring_time)}),
            ),
            QueueEvent::OfferCancelled {
                call,
                queue,
                agent,
                ring_time,
                ..
            } => event(
                "offer_cancelled",
                Some(call),
                Some(queue),
                Some(agent.clone()),
                json!({"ring_seconds": seconds(*ring_time)}),
            ),
            QueueEvent::CallAbandoned {
                call,
                queue,
                agent,
                waited,
                position,
                joined_position,
                ..
            } => event(
                "call_abandoned",
                Some(call),
                Some(queue),
                agent.clone(),
                json!({
                    "waited_seconds": seconds(*waited),
                    "position": position,
                    "joined_position": joined_position,
                }),
            ),
            QueueEvent::CallTimedOut {
                call,
                queue,
                agent,
                waited,
                position,
                joined_position,
                ..
            } => event(
                "call_timed_out",
                Some(call),
                Some(queue),
                agent.clone(),
                json!({
                    "waited_seconds": seconds(*waited),
                    "position": position,
                    "joined_position": joined_position,
                }),
            ),
            QueueEvent::CallExited {
                call,
                queue,
                reason,
                destination,
                waited,
                position,
                joined_position,
                ..
            } => {
                let key = match reason {
                    ExitReason::Key(key) => Some(key.to_string()),
                    _ => None,
                };
                event(
                    "call_exited",
                    Some(call),
                    Some(queue),
                    None,
                    json!({
                        "reason": exit_reason(*reason),
                        "key": key,
                        "destination": destination.as_ref().map(destination_name),
                        "waited_seconds": seconds(*waited),
                        "position": position,
                        "joined_position": joined_position,
                    }),
                )
            }
            QueueEvent::CallbackRequested {
                call,
                queue,
                number,
                data,
                arrived,
                at,
            } => {
                // What restores the request after a restart, at its place.
                let arrived_wall = stamped.wall - at.saturating_duration_since(*arrived);
                let requirements: Vec<String> =
                    data.requirements.iter().map(ToString::to_string).collect();
                event(
                    "callback_requested",
                    Some(call),
                    Some(queue),
                    None,
                    json!({
                        "number": number,
                        "arrived_ms": unix_millis(arrived_wall),
                        "priority": data.priority,
                        "requirements": requirements,
                        "caller": data.caller,
                        "request_type": data.request_type,
                        "case_id": data.case_id,
                        "attributes": data.attributes,
                    }),
                )
            }
            QueueEvent::CallbackDialing {
                call,
                queue,
                agent,
                ring_time,
                ..
            } => event(
                "callback_dialing",
                Some(call),
                Some(queue),
                Some(agent.clone()),
                json!({"ring_seconds": seconds(*ring_time)}),
            ),
            QueueEvent::CallbackNotReached {
                call,
                queue,
                agent,
                cause,
                attempts,
                retry_at,
                waited,
                at,
            } => {
                // The retry instant as wall time, so that a restart keeps
                // the request back until then.
                let retry_ms = retry_at
                    .map(|retry| unix_millis(stamped.wall + retry.saturating_duration_since(*at)));
                event(
                    if retry_at.is_some() {
                        "callback_retry"
                    } else {
                        "callback_failed"
                    },
                    Some(call),
                    Some(queue),
                    Some(agent.clone()),
                    json!({
                        "cause": cause.as_str(),
                        "attempts": attempts,
                        "retry_at_ms": retry_ms,
                        "waited_seconds": seconds(*waited),
                    }),
                )
            }
            QueueEvent::CallCompleted {
                call,
                queue,
                agent,
                waited,
                talk_time,
                joined_position,
                ended_by,
                ..
            } => event(
                "call_completed",
                Some(call),
                Some(queue),
                Some(agent.clone()),
                json!({
                    "waited_seconds": seconds(*waited),
                    "talk_seconds": seconds(*talk_time),
                    "joined_position": joined_position,
                    "ended_by": ended_by.map(party_name),
                }),
            ),
            QueueEvent::CallTransferred {
                call,
                queue,
                agent,
                target,
                waited,
                talk_time,
                joined_position,
                ..
            } => event(
                "call_transferred",
                Some(call),
                Some(queue),
                Some(agent.clone()),
                json!({
                    "target": target,
                    "waited_seconds": seconds(*waited),
                    "talk_seconds": seconds(*talk_time),
                    "joined_position": joined_position,
                }),
            ),
            QueueEvent::CallHeld {
                call,
                queue,
                agent,
                by,
                ..
            } => event(
                "call_held",
                Some(call),
                Some(queue),
                Some(agent.clone()),
                json!({"by": party_name(*by)}),
            ),
            QueueEvent::CallResumed {
                call,
                queue,
                agent,
                by,
                held,
                ..
            } => event(
                "call_resumed",
                Some(call),
                Some(queue),
                Some(agent.clone()),
                json!({"by": party_name(*by), "hold_seconds": seconds(*held)}),
            ),
            QueueEvent::SurveyOffered {
                call, queue, agent, ..
            } => event(
                "survey_offered",
                Some(call),
                Some(queue),
                Some(agent.clone()),
                json!({}),
            ),
            QueueEvent::SurveyFinished {
                call,
                queue,
                agent,
                outcome,
                ..
            } => event(
                match outcome {
                    SurveyOutcome::Answered(_) => "survey_answered",
                    _ => "survey_unanswered",
                },
                Some(call),
                Some(queue),
                Some(agent.clone()),
                json!({"outcome": outcome.as_str(), "score": outcome.score()}),
            ),
            QueueEvent::WrapUpCodeSet {
                call,
                queue,
                agent,
                code,
                ..
            } => event(
                "wrap_up_code_set",
                Some(call),
                Some(queue),
                Some(agent.clone()),
                json!({"code": code}),
            ),
            QueueEvent::AgentStateChanged {
                agent, from, to, ..
            } => event(
                "agent_state_changed",
                None,
                None,
                Some(agent.clone()),
                json!({"from": state_name(*from), "to": state_name(*to)}),
            ),
            QueueEvent::AgentNotReady {
                agent,
                reason,
                queues,
                ..
            } => event(
                "agent_not_ready",
                None,
                None,
                Some(agent.clone()),
                json!({"reason": reason, "queues": queues}),
            ),
            QueueEvent::AgentReady {
                agent,
                reason,
                queues,
                ..
            } => event(
                "agent_ready",
                None,
                None,
                Some(agent.clone()),
                json!({"reason": reason, "queues": queues}),
            ),
            QueueEvent::AgentLogin {
                agent, logged_in, ..
            } => event(
                if *logged_in {
                    "agent_logged_in"
                } else {
                    "agent_logged_out"
                },
                None,
                None,
                Some(agent.clone()),
                json!({}),
            ),
            QueueEvent::AgentReachability {
                agent,
                reachable,
                cause,
                ..
            } => event(
                if *reachable {
                    "agent_reachable"
                } else {
                    "agent_unreachable"
                },
                None,
                None,
                Some(agent.clone()),
                json!({"cause": cause}),
            ),
            QueueEvent::MemberAdded { agent, queue, .. } => event(
                "member_added",
                None,
                Some(queue),
                Some(agent.clone()),
                json!({}),
            ),
            QueueEvent::MemberRemoved { agent, queue, .. } => event(
                "member_removed",
                None,
                Some(queue),
                Some(agent.clone()),
                json!({}),
            ),
            // A kind added to the ACD later is kept, if only as text, rather
            // than lost.
            other => event(
                "other",
                None,
                None,
                None,
                json!({"debug": format!("{other:?}")}),
            ),
        }
    }
}

fn party_name(party: Party) -> &'static str {
    match party {
        Party::Caller => "caller",
        Party::Agent => "agent",
    }
}

pub(crate) fn state_name(state: AgentState) -> &'static str {
    match state {
        AgentState::LoggedOut => "logged_out",
        AgentState::Unreachable => "unreachable",
        AgentState::Available => "available",
        AgentState::Ringing => "ringing",
        AgentState::OnCall => "on_call",
        AgentState::WrapUp => "wrap_up",
        AgentState::NotReady => "not_ready",
    }
}

fn exit_reason(reason: ExitReason) -> &'static str {
    match reason {
        ExitReason::Full => "full",
        ExitReason::JoinEmpty => "join_empty",
        ExitReason::LeaveEmpty => "leave_empty",
        ExitReason::Key(_) => "key",
        ExitReason::Step => "step",
        ExitReason::MaxWait => "max_wait",
    }
}

fn destination_name(destination: &Destination) -> String {
    match destination {
        Destination::Queue(queue) => format!("queue:{queue}"),
        Destination::Voicemail(mailbox) => format!("voicemail:{mailbox}"),
        Destination::Number(number) => format!("number:{number}"),
        Destination::Callback => "callback".to_owned(),
    }
}

/// Seconds with millisecond precision, as CDRs give durations.
fn seconds(duration: Duration) -> f64 {
    duration.as_millis() as f64 / 1000.0
}

pub(crate) fn unix_millis(at: SystemTime) -> i64 {
    match at.duration_since(UNIX_EPOCH) {
        Ok(after) => i64::try_from(after.as_millis()).unwrap_or(i64::MAX),
        Err(before) => -i64::try_from(before.duration().as_millis()).unwrap_or(i64::MAX),
    }
}

/// RFC 3339 text in UTC, with milliseconds, of a Unix time in milliseconds.
pub(crate) fn rfc3339(at_ms: i64) -> String {
    let at = OffsetDateTime::from_unix_timestamp_nanos(i128::from(at_ms) * 1_000_000)
        .unwrap_or(OffsetDateTime::UNIX_EPOCH);
    at.format(&Rfc3339).unwrap_or_default()
}

mod callbacks;
#[cfg(test)]
mod tests;
