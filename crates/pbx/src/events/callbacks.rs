//! Callback requests that were taken but not yet returned, read back from
//! the stored events at start so that a restart does not lose them.

use std::collections::{BTreeMap, HashMap};

use serde::Deserialize;
use sqlx::Row;

use super::{EventStore, EventStoreError};

/// A stored callback request with no later event that ends it.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct PendingCallback {
    pub(crate) call: String,
    pub(crate) queue: String,
    pub(crate) number: String,
    /// Unix milliseconds of the caller's arrival, which gives its place.
    pub(crate) arrived_ms: i64,
    pub(crate) data: acd::CallData,
    /// Attempts that did not reach the citizen, from the latest retry event.
    pub(crate) failed_attempts: u32,
    /// Unix milliseconds before which no agent gets the request.
    pub(crate) retry_at_ms: Option<i64>,
}

/// The JSON `data` of a `callback_retry` event, as far as the restore needs it.
#[derive(Deserialize)]
struct RetryData {
    attempts: u32,
    retry_at_ms: Option<i64>,
}

/// The JSON `data` of a `callback_requested` event. Fields are optional
/// because rows written by older versions only hold the number.
#[derive(Deserialize)]
struct RequestData {
    number: String,
    arrived_ms: Option<i64>,
    #[serde(default)]
    priority: u32,
    #[serde(default)]
    requirements: Vec<String>,
    caller: Option<String>,
    request_type: Option<String>,
    case_id: Option<String>,
    #[serde(default)]
    attributes: BTreeMap<String, String>,
}

impl EventStore {
    /// Callback requests that no later event ended, oldest first, with the
    /// attempts of their latest `callback_retry`. The citizen's answer
    /// (`offer_answered`) ends a request, as does `callback_failed`. Rows
    /// written before the answer moved to the citizen's pick-up have
    /// `offer_answered` at the agent's answer; for those, a call cut by a
    /// crash before the citizen picked up (its recovered CDR is interrupted
    /// with no answer time) leaves the request waiting again.
    pub(crate) async fn pending_callbacks(&self) -> Result<Vec<PendingCallback>, EventStoreError> {
        let rows = sqlx::query(
            "SELECT r.seq, r.at_ms, r.call_id, r.queue, r.data FROM queue_events r \
             WHERE r.kind = 'callback_requested' AND r.call_id IS NOT NULL \
             AND r.queue IS NOT NULL AND NOT EXISTS ( \
                 SELECT 1 FROM queue_events later \
                 WHERE later.call_id = r.call_id AND later.seq > r.seq \
                 AND later.kind IN ('call_abandoned', 'call_timed_out', 'call_exited', \
                                    'call_completed', 'callback_failed')) \
             AND NOT EXISTS ( \
                 SELECT 1 FROM queue_events taken \
                 WHERE taken.call_id = r.call_id AND taken.seq > r.seq \
                 AND taken.kind = 'offer_answered' AND NOT EXISTS ( \
                     SELECT 1 FROM call_records cut WHERE cut.callback_of = r.call_id \
                     AND cut.interrupted AND cut.answered_at IS NULL)) \
             ORDER BY r.seq",
        )
        .fetch_all(&self.pool)
        .await?;
        let retries = sqlx::query(
            "SELECT seq, call_id, data FROM queue_events WHERE kind = 'callback_retry' \
             AND call_id IS NOT NULL ORDER BY seq",
        )
        .fetch_all(&self.pool)
        .await?;
        // The latest retry of each request wins.
        let mut latest: HashMap<String, RetryData> = HashMap::new();
        for row in retries {
            let seq: i64 = row.try_get("seq")?;
            let text: String = row.try_get("data")?;
            let retry: RetryData = serde_json::from_str(&text)
                .map_err(|source| EventStoreError::Decode { seq, source })?;
            latest.insert(row.try_get("call_id")?, retry);
        }
        let mut pending = Vec::with_capacity(rows.len());
        for row in rows {
            let seq: i64 = row.try_get("seq")?;
            let text: String = row.try_get("data")?;
            let data: RequestData = serde_json::from_str(&text)
                .map_err(|source| EventStoreError::Decode { seq, source })?;
            let requirements = data
                .requirements
                .iter()
                .filter_map(|text| match text.parse() {
                    Ok(requirement) => Some(requirement),
                    Err(error) => {
                        tracing::warn!(seq, text, %error, "stored skill requirement ignored");
                        None
                    }
                })
                .collect();
            let call: String = row.try_get("call_id")?;
            let retry = latest.get(&call);
            pending.push(PendingCallback {
                failed_attempts: retry.map_or(0, |r| r.attempts),
                retry_at_ms: retry.and_then(|r| r.retry_at_ms),
                call,
                queue: row.try_get("queue")?,
                arrived_ms: data.arrived_ms.unwrap_or(row.try_get("at_ms")?),
                data: acd::CallData {
                    priority: data.priority,
                    requirements,
                    caller: data.caller.or_else(|| Some(data.number.clone())),
                    request_type: data.request_type,
                    case_id: data.case_id,
                    attributes: data.attributes,
                },
                number: data.number,
            });
        }
        Ok(pending)
    }
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, Instant, SystemTime};

    use acd::QueueEvent;
    use sip_server::b2bua::StampedEvent;

    use super::super::{EventStore, NewEvent};
    use super::PendingCallback;
    use cdr::test_database::TestDatabase;

    fn stamped(event: QueueEvent, wall_ms: u64) -> NewEvent {
        NewEvent::from_stamped(&StampedEvent {
            event,
            wall: SystemTime::UNIX_EPOCH + Duration::from_millis(wall_ms),
        })
    }

    fn requested(call: &str, now: Instant, data: acd::CallData) -> QueueEvent {
        QueueEvent::CallbackRequested {
            call: call.into(),
            queue: "general".into(),
            number: "+15550100".into(),
            data,
            arrived: now - Duration::from_secs(90),
            at: now,
        }
    }

    /// Builds a failed attempt at `call`, stamped 300 s before its retry if any.
    fn not_reached(call: &str, now: Instant, attempts: u32, retry: bool) -> QueueEvent {
        QueueEvent::CallbackNotReached {
            call: call.into(),
            queue: "general".into(),
            agent: "1001".into(),
            cause: acd::CallbackFailure::NoAnswer,
            attempts,
            retry_at: retry.then_some(now + Duration::from_secs(300)),
            waited: Duration::from_secs(200),
            at: now,
        }
    }

    async fn pending_callbacks_include_cut_and_retried_requests(database: TestDatabase) {
        let dir = tempfile::tempdir().unwrap();
        let cdr = cdr::CdrStore::open_at(dir.path(), &database.url(dir.path()))
            .await
            .unwrap();
        let store = EventStore::open(cdr.pool().clone()).await.unwrap();
        let now = Instant::now();
        let data = acd::CallData {
            priority: 3,
            requirements: vec!["language=ru:2".parse().unwrap()],
            caller: Some("+15550100".into()),
            request_type: Some("passport".into()),
            attributes: [("dialed".to_owned(), "5000".to_owned())].into(),
            ..acd::CallData::default()
        };
        let served = QueueEvent::OfferAnswered {
            call: "served".into(),
            queue: "general".into(),
            agent: "1001".into(),
            waited: Duration::from_secs(100),
            ring_time: Duration::from_secs(2),
            joined_position: 1,
            at: now,
        };
        let cut_short = QueueEvent::OfferAnswered {
            call: "cut".into(),
            queue: "general".into(),
            agent: "1001".into(),
            waited: Duration::from_secs(100),
            ring_time: Duration::from_secs(2),
            joined_position: 1,
            at: now,
        };
        store
            .append(&[
                stamped(requested("waiting", now, data.clone()), 1_800_000_090_000),
                stamped(requested("served", now, data.clone()), 1_800_000_090_000),
                stamped(served, 1_800_000_100_000),
                stamped(requested("cut", now, data.clone()), 1_800_000_090_000),
                stamped(cut_short, 1_800_000_100_000),
                stamped(requested("retried", now, data.clone()), 1_800_000_090_000),
                stamped(not_reached("retried", now, 1, true), 1_800_000_100_000),
                stamped(not_reached("retried", now, 2, true), 1_800_000_200_000),
                stamped(requested("given up", now, data.clone()), 1_800_000_090_000),
                stamped(not_reached("given up", now, 3, false), 1_800_000_300_000),
            ])
            .await
            .unwrap();
        // The call placed for "cut" died with the PBX before the citizen
        // answered; its record came back interrupted.
        let at = time::macros::datetime!(2027-01-15 08:01:40 UTC);
        let record = cdr::CallRecord {
            id: "cut-callback".into(),
            caller_call_id: "x@test".into(),
            agent_call_id: None,
            caller: "+15550100".into(),
            dialed: "+15550100".into(),
            trunk: None,
            source_extension: None,
            direction: cdr::CallDirection::Outbound,
            queue: Some("general".into()),
            request_type: None,
            agent: Some("1001".into()),
            arrived_at: at,
            queued_at: None,
            answered_at: None,
            ended_at: at,
            wait_seconds: 0.0,
            talk_seconds: 0.0,
            disposition: cdr::Disposition::Failed,
            sip_status: None,
            hangup_side: Some(cdr::HangupSide::System),
            recording_path: None,
            recording_seconds: None,
            interrupted: true,
            caller_answered_at: None,
            voicemail_box: None,
            forwarded_to: None,
            diverted_from: None,
            callback_of: Some("cut".into()),
            recording_events: Vec::new(),
            media_quality: None,
            rebuilt: false,
            transfers: Vec::new(),
            hold_count: 0,
            hold_seconds: 0.0,
            survey: None,
            csat_score: None,
        };
        cdr.write(&record).await.unwrap();
        let pending = store.pending_callbacks().await.unwrap();
        let waiting = PendingCallback {
            call: "waiting".into(),
            queue: "general".into(),
            number: "+15550100".into(),
            arrived_ms: 1_800_000_000_000,
            data,
            failed_attempts: 0,
            retry_at_ms: None,
        };
        let cut = PendingCallback {
            call: "cut".into(),
            ..waiting.clone()
        };
        // The latest retry gives the attempts and when the next may start.
        let retried = PendingCallback {
            call: "retried".into(),
            failed_attempts: 2,
            retry_at_ms: Some(1_800_000_500_000),
            ..waiting.clone()
        };
        assert_eq!(pending, [waiting, cut, retried]);
    }

    cdr::storage_tests!(pending_callbacks_include_cut_and_retried_requests,);
}
