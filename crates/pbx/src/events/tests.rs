//! The stored form of events and the writer's commit-then-reply order.

use std::time::{Duration, Instant, SystemTime};

use acd::{AgentState, QueueEvent};
use sip_server::b2bua::StampedEvent;
use tokio::sync::oneshot;

use super::*;

/// 2027-01-15T08:00:00.250Z.
fn wall() -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_millis(1_800_000_000_250)
}

fn answered() -> StampedEvent {
    StampedEvent {
        event: QueueEvent::OfferAnswered {
            call: "call-1".into(),
            queue: "general".into(),
            agent: "1001".into(),
            waited: Duration::from_millis(12_345),
            ring_time: Duration::from_millis(2_500),
            joined_position: 2,
            at: Instant::now(),
        },
        wall: wall(),
    }
}

fn state_change() -> StampedEvent {
    StampedEvent {
        event: QueueEvent::AgentStateChanged {
            agent: "1001".into(),
            from: AgentState::Ringing,
            to: AgentState::OnCall,
            at: Instant::now(),
        },
        wall: wall(),
    }
}

async fn store() -> (tempfile::TempDir, EventStore) {
    let dir = tempfile::tempdir().unwrap();
    let cdr = cdr::CdrStore::open(dir.path()).await.unwrap();
    let store = EventStore::open(cdr.pool().clone()).await.unwrap();
    (dir, store)
}

#[test]
fn an_event_becomes_columns_and_json() {
    let stored = NewEvent::from_stamped(&answered());
    assert_eq!(stored.at_ms, 1_800_000_000_250);
    assert_eq!(stored.kind, "offer_answered");
    assert_eq!(stored.call.as_deref(), Some("call-1"));
    assert_eq!(stored.queue.as_deref(), Some("general"));
    assert_eq!(stored.agent.as_deref(), Some("1001"));
    assert_eq!(
        stored.data,
        json!({"waited_seconds": 12.345, "ring_seconds": 2.5, "joined_position": 2})
    );
    let change = NewEvent::from_stamped(&state_change());
    assert_eq!(change.kind, "agent_state_changed");
    assert_eq!(change.call, None);
    assert_eq!(change.data, json!({"from": "ringing", "to": "on_call"}));
}

#[test]
fn logins_and_reachability_become_rows() {
    let stamped = |event| StampedEvent {
        event,
        wall: wall(),
    };
    let logout = NewEvent::from_stamped(&stamped(QueueEvent::AgentLogin {
        agent: "1001".into(),
        logged_in: false,
        at: Instant::now(),
    }));
    assert_eq!(logout.kind, "agent_logged_out");
    assert_eq!(logout.agent.as_deref(), Some("1001"));
    let login = NewEvent::from_stamped(&stamped(QueueEvent::AgentLogin {
        agent: "1001".into(),
        logged_in: true,
        at: Instant::now(),
    }));
    assert_eq!(login.kind, "agent_logged_in");
    let unreachable = NewEvent::from_stamped(&stamped(QueueEvent::AgentReachability {
        agent: "1001".into(),
        reachable: false,
        cause: Some("qualify".into()),
        at: Instant::now(),
    }));
    assert_eq!(unreachable.kind, "agent_unreachable");
    assert_eq!(unreachable.data, json!({"cause": "qualify"}));
    let reachable = NewEvent::from_stamped(&stamped(QueueEvent::AgentReachability {
        agent: "1001".into(),
        reachable: true,
        cause: None,
        at: Instant::now(),
    }));
    assert_eq!(reachable.kind, "agent_reachable");
    assert_eq!(reachable.data, json!({"cause": null}));
}

#[test]
fn times_are_rfc3339_with_milliseconds() {
    assert_eq!(rfc3339(1_800_000_000_250), "2027-01-15T08:00:00.25Z");
    assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
}

#[tokio::test]
async fn stored_rows_keep_order_and_numbers() {
    let (_dir, store) = store().await;
    let first = vec![NewEvent::from_stamped(&state_change())];
    let second = vec![NewEvent::from_stamped(&answered())];
    store.append(&first).await.unwrap();
    store.append(&second).await.unwrap();
    let rows = store.all().await.unwrap();
    assert_eq!(rows.len(), 2);
    assert!(rows[0].seq < rows[1].seq);
    assert_eq!(rows[0].kind, "agent_state_changed");
    assert_eq!(rows[1].kind, "offer_answered");
    assert_eq!(rows[1].data["waited_seconds"], 12.345);
    let at: String = sqlx::query_scalar("SELECT at FROM queue_events WHERE seq = ?")
        .bind(rows[1].seq)
        .fetch_one(&store.pool)
        .await
        .unwrap();
    assert_eq!(at, "2027-01-15T08:00:00.25Z");
}

#[tokio::test]
async fn the_reply_comes_after_the_commit_and_the_queue_log_follows() {
    let (dir, store) = store().await;
    let path = dir.path().join("queue_log");
    let (batches, queue) = mpsc::unbounded_channel();
    let writer = tokio::spawn(write_events(store.clone(), path.clone(), queue));

    // A batch without a reply, then one that a request waits on.
    let mut background = EventBatch::default();
    background.push(&[state_change()], Vec::new());
    batches.send(background).unwrap();
    let (reply, confirmed) = oneshot::channel();
    let reader = store.clone();
    let mut batch = EventBatch::default();
    batch.push(
        &[answered()],
        vec!["1800000000|call-1|general|1001|CONNECT|12|call-1|2".into()],
    );
    batch.acks.push(Box::new(move |committed| {
        // Runs inside the writer: both batches must be readable by now.
        let _ = reply.send(committed);
    }));
    batches.send(batch).unwrap();
    confirmed.await.unwrap().expect("committed");
    assert_eq!(reader.all().await.unwrap().len(), 2);

    drop(batches);
    writer.await.unwrap();
    let text = std::fs::read_to_string(&path).unwrap();
    assert_eq!(text, "1800000000|call-1|general|1001|CONNECT|12|call-1|2\n");
}

#[tokio::test]
async fn a_failed_commit_answers_not_durable() {
    let (dir, store) = store().await;
    sqlx::query("DROP TABLE queue_events")
        .execute(&store.pool)
        .await
        .unwrap();
    let (batches, queue) = mpsc::unbounded_channel();
    let path = dir.path().join("queue_log");
    let writer = tokio::spawn(write_events(store, path.clone(), queue));
    let (reply, confirmed) = oneshot::channel();
    let mut batch = EventBatch::default();
    batch.push(
        &[answered()],
        vec!["1800000000|call-1|general|1001|CONNECT|12|call-1|2".into()],
    );
    batch.acks.push(Box::new(move |committed| {
        let _ = reply.send(committed);
    }));
    batches.send(batch).unwrap();
    let error = confirmed.await.unwrap().expect_err("nothing was stored");
    assert!(error.to_string().contains("not durable"), "{error}");
    drop(batches);
    writer.await.unwrap();
    // The file only gets the lines of stored events.
    assert_eq!(std::fs::read_to_string(&path).unwrap(), "");
}

#[tokio::test]
async fn a_reply_without_events_still_waits_for_earlier_batches() {
    let (dir, store) = store().await;
    let (batches, queue) = mpsc::unbounded_channel();
    let writer = tokio::spawn(write_events(
        store.clone(),
        dir.path().join("queue_log"),
        queue,
    ));
    let mut earlier = EventBatch::default();
    earlier.push(&[answered(), state_change()], Vec::new());
    batches.send(earlier).unwrap();
    let (reply, confirmed) = oneshot::channel();
    batches
        .send(EventBatch {
            acks: vec![Box::new(move |committed| {
                let _ = reply.send(committed);
            })],
            ..EventBatch::default()
        })
        .unwrap();
    confirmed.await.unwrap().unwrap();
    assert_eq!(store.all().await.unwrap().len(), 2);
    drop(batches);
    writer.await.unwrap();
}

#[tokio::test]
async fn queued_batches_share_one_commit_and_keep_their_order() {
    let (dir, store) = store().await;
    let path = dir.path().join("queue_log");
    let (batches, queue) = mpsc::unbounded_channel();
    // Every batch is queued before the writer starts, so they arrive as one
    // group; each reply still comes, and rows and lines keep their order.
    let mut confirmations = Vec::new();
    for index in 0..5 {
        let mut batch = EventBatch::default();
        batch.push(&[state_change()], vec![format!("line {index}")]);
        let (reply, confirmed) = oneshot::channel();
        batch.acks.push(Box::new(move |committed| {
            let _ = reply.send(committed);
        }));
        confirmations.push(confirmed);
        batches.send(batch).unwrap();
    }
    let writer = tokio::spawn(write_events(store.clone(), path.clone(), queue));
    for confirmed in confirmations {
        confirmed.await.unwrap().expect("committed");
    }
    let rows = store.all().await.unwrap();
    assert_eq!(rows.len(), 5);
    drop(batches);
    writer.await.unwrap();
    let text = std::fs::read_to_string(&path).unwrap();
    assert_eq!(text, "line 0\nline 1\nline 2\nline 3\nline 4\n");
}
