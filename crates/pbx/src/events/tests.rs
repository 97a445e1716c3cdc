//! The stored form of events and the writer's commit-then-reply order.

use std::time::{Duration, Instant, SystemTime};

use acd::{AgentState, QueueEvent};
use cdr::test_database::TestDatabase;
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

fn feed() -> EventFeed {
    EventFeed::new(16)
}

async fn store(database: &TestDatabase) -> (tempfile::TempDir, EventStore) {
    let dir = tempfile::tempdir().unwrap();
    let cdr = cdr::CdrStore::open_at(dir.path(), &database.url(dir.path()))
        .await
        .unwrap();
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

#[test]
fn take_group_joins_backlog_up_to_bound() {
    let (batches, mut queue) = mpsc::unbounded_channel();
    // Far more batches than the 256 a commit took before: all of them
    // join, in order, while the group is under its bound.
    let batch = |index: usize| {
        let mut batch = EventBatch::default();
        batch.push(&[state_change(), answered()], vec![format!("line {index}")]);
        batch
    };
    for index in 1..1000 {
        batches.send(batch(index)).unwrap();
    }
    let group = take_group(batch(0), &mut queue, 10_000);
    assert_eq!(group.events.len(), 2000);
    assert_eq!(group.lines.first().unwrap(), "line 0");
    assert_eq!(group.lines.last().unwrap(), "line 999");
    assert!(queue.is_empty());

    // Past the bound the rest waits for the next commit; a batch is never
    // split between two.
    for index in 0..10 {
        batches.send(batch(index)).unwrap();
    }
    let group = take_group(batch(100), &mut queue, 5);
    assert_eq!(group.events.len(), 6);
    assert_eq!(group.lines, ["line 100", "line 0", "line 1"]);
    assert_eq!(queue.len(), 8);
}

async fn stored_rows_keep_order_and_numbers(database: TestDatabase) {
    let (_dir, store) = store(&database).await;
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
    let at: String = sqlx::query_scalar("SELECT at FROM queue_events WHERE seq = $1")
        .bind(rows[1].seq)
        .fetch_one(&store.pool)
        .await
        .unwrap();
    assert_eq!(at, "2027-01-15T08:00:00.25Z");
}

async fn the_reply_comes_after_the_commit_and_the_queue_log_follows(database: TestDatabase) {
    let (dir, store) = store(&database).await;
    let path = dir.path().join("queue_log");
    let (batches, queue) = mpsc::unbounded_channel();
    let writer = tokio::spawn(write_events(store.clone(), path.clone(), queue, feed()));

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

async fn a_failed_commit_answers_not_durable(database: TestDatabase) {
    let (dir, store) = store(&database).await;
    sqlx::query("DROP TABLE queue_events")
        .execute(&store.pool)
        .await
        .unwrap();
    let (batches, queue) = mpsc::unbounded_channel();
    let feed = feed();
    let mut subscriber = feed.subscribe();
    let path = dir.path().join("queue_log");
    let writer = tokio::spawn(write_events(store, path.clone(), queue, feed));
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
    // The stream must not show what the table does not hold.
    assert!(matches!(
        subscriber.try_recv(),
        Err(tokio::sync::broadcast::error::TryRecvError::Closed)
    ));
    // The file only gets the lines of stored events.
    assert_eq!(std::fs::read_to_string(&path).unwrap(), "");
}

async fn a_reply_without_events_still_waits_for_earlier_batches(database: TestDatabase) {
    let (dir, store) = store(&database).await;
    let (batches, queue) = mpsc::unbounded_channel();
    let writer = tokio::spawn(write_events(
        store.clone(),
        dir.path().join("queue_log"),
        queue,
        feed(),
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

async fn queued_batches_share_one_commit_and_keep_their_order(database: TestDatabase) {
    let (dir, store) = store(&database).await;
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
    let writer = tokio::spawn(write_events(store.clone(), path.clone(), queue, feed()));
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

async fn committed_events_reach_the_feed_with_their_numbers(database: TestDatabase) {
    let (dir, store) = store(&database).await;
    let (batches, queue) = mpsc::unbounded_channel();
    let feed = feed();
    let mut subscriber = feed.subscribe();
    let writer = tokio::spawn(write_events(
        store.clone(),
        dir.path().join("queue_log"),
        queue,
        feed,
    ));
    let mut batch = EventBatch::default();
    batch.push(&[state_change(), answered()], Vec::new());
    batches.send(batch).unwrap();
    let first = subscriber.recv().await.unwrap();
    let second = subscriber.recv().await.unwrap();
    let rows = store.all().await.unwrap();
    assert_eq!(*first, rows[0]);
    assert_eq!(*second, rows[1]);
    assert_eq!(
        first.to_json(),
        json!({"seq": rows[0].seq, "at": "2027-01-15T08:00:00.25Z", "kind": "agent_state_changed",
               "call": null, "queue": null, "agent": "1001",
               "data": {"from": "ringing", "to": "on_call"}})
    );
    drop(batches);
    writer.await.unwrap();
}

/// Commits `count` state changes of `agent` through the store alone.
async fn commit_changes(store: &EventStore, agent: &str, count: usize) -> Vec<StoredEvent> {
    let mut event = NewEvent::from_stamped(&state_change());
    event.agent = Some(agent.to_owned());
    store.append(&vec![event; count]).await.unwrap()
}

async fn next_seq(subscription: &mut Subscription) -> i64 {
    match subscription.next().await.unwrap() {
        Some(StreamItem::Event(event)) => event.seq,
        other => panic!("expected an event, got {other:?}"),
    }
}

async fn a_subscription_catches_up_from_the_table_then_goes_live(database: TestDatabase) {
    let (_dir, store) = store(&database).await;
    let feed = feed();
    let stored = commit_changes(&store, "1001", 3).await;
    let mut subscription = Subscription::start(store.clone(), &feed, None, Some(stored[0].seq))
        .await
        .unwrap();
    let live = commit_changes(&store, "1001", 1).await;
    feed.publish(live.clone());
    assert_eq!(next_seq(&mut subscription).await, stored[1].seq);
    assert_eq!(next_seq(&mut subscription).await, stored[2].seq);
    // Stored after the subscription began, so read from the table during
    // catch-up and then dropped when it comes through the feed.
    assert_eq!(next_seq(&mut subscription).await, live[0].seq);
    let later = commit_changes(&store, "1001", 1).await;
    feed.publish(later.clone());
    assert_eq!(next_seq(&mut subscription).await, later[0].seq);
}

async fn a_subscriber_that_lags_is_told_and_reads_the_table(database: TestDatabase) {
    let (_dir, store) = store(&database).await;
    let feed = EventFeed::new(2);
    let mut subscription = Subscription::start(store.clone(), &feed, None, None)
        .await
        .unwrap();
    // Catch-up finds nothing yet; then five events overflow a ring of two.
    let mut seen = Vec::new();
    let stored = commit_changes(&store, "1001", 1).await;
    feed.publish(stored.clone());
    seen.push(next_seq(&mut subscription).await);
    let burst = commit_changes(&store, "1001", 5).await;
    feed.publish(burst.clone());
    match subscription.next().await.unwrap() {
        Some(StreamItem::Lagged {
            skipped,
            resume_after,
        }) => {
            // The ring still held the first event, unread by the receiver.
            assert_eq!(skipped, 4);
            assert_eq!(resume_after, stored[0].seq);
        }
        other => panic!("expected the lag notice, got {other:?}"),
    }
    for _ in 0..5 {
        seen.push(next_seq(&mut subscription).await);
    }
    let expected: Vec<i64> = stored.iter().chain(&burst).map(|event| event.seq).collect();
    assert_eq!(seen, expected, "each event once, in order");
}

async fn an_agent_subscription_sees_only_its_events(database: TestDatabase) {
    let (_dir, store) = store(&database).await;
    let feed = feed();
    commit_changes(&store, "1002", 2).await;
    let own = commit_changes(&store, "1001", 1).await;
    let mut subscription = Subscription::start(store.clone(), &feed, Some("1001".into()), Some(0))
        .await
        .unwrap();
    assert_eq!(next_seq(&mut subscription).await, own[0].seq);
    let other = commit_changes(&store, "1002", 1).await;
    feed.publish(other);
    let mine = commit_changes(&store, "1001", 1).await;
    feed.publish(mine.clone());
    assert_eq!(next_seq(&mut subscription).await, mine[0].seq);
}

async fn a_start_beyond_the_newest_event_waits_for_new_ones(database: TestDatabase) {
    let (_dir, store) = store(&database).await;
    let feed = feed();
    commit_changes(&store, "1001", 2).await;
    let mut subscription = Subscription::start(store.clone(), &feed, None, Some(1_000))
        .await
        .unwrap();
    let next = commit_changes(&store, "1001", 1).await;
    feed.publish(next.clone());
    assert_eq!(next_seq(&mut subscription).await, next[0].seq);
}

async fn sequence_numbers_returned_are_those_stored(database: TestDatabase) {
    let (_dir, store) = store(&database).await;
    let event = |i: usize| NewEvent {
        at_ms: 1_800_000_000_000 + i64::try_from(i).unwrap(),
        kind: "offer_answered",
        call: Some(format!("call-{i}")),
        queue: Some("general".to_owned()),
        agent: Some("1001".to_owned()),
        data: json!({ "n": i }),
    };
    // More than one statement's worth, then a second batch after it.
    let first: Vec<NewEvent> = (0..EVENTS_PER_STATEMENT + 3).map(event).collect();
    let second: Vec<NewEvent> = (0..5).map(|i| event(10_000 + i)).collect();
    let mut returned = store.append(&first).await.unwrap();
    returned.extend(store.append(&second).await.unwrap());
    let in_table = store.events_after(0, None, 10_000).await.unwrap();
    assert_eq!(returned, in_table);
    assert!(
        returned
            .windows(2)
            .all(|pair| pair[1].seq == pair[0].seq + 1)
    );
}

cdr::storage_tests!(
    stored_rows_keep_order_and_numbers,
    the_reply_comes_after_the_commit_and_the_queue_log_follows,
    a_failed_commit_answers_not_durable,
    a_reply_without_events_still_waits_for_earlier_batches,
    queued_batches_share_one_commit_and_keep_their_order,
    committed_events_reach_the_feed_with_their_numbers,
    a_subscription_catches_up_from_the_table_then_goes_live,
    a_subscriber_that_lags_is_told_and_reads_the_table,
    an_agent_subscription_sees_only_its_events,
    a_start_beyond_the_newest_event_waits_for_new_ones,
    sequence_numbers_returned_are_those_stored,
);
