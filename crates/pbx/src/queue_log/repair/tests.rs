//! The start-up repair on files that are missing, short, cut mid-line,
//! rotated or foreign.

use std::time::{Duration, Instant, UNIX_EPOCH};

use acd::QueueEvent;
use sip_server::b2bua::StampedEvent;

use super::*;
use crate::queue_log::tests::{live_lines, mixed_events, store, write_live};

/// Stores the mixed events through the live writer and returns the store,
/// the path of the live file and its content.
async fn live() -> (tempfile::TempDir, EventStore, std::path::PathBuf, Vec<u8>) {
    let (dir, store) = store().await;
    let content = write_live(&store, dir.path(), &mixed_events()).await;
    let path = dir.path().join("live_queue_log");
    (dir, store, path, content)
}

/// Byte offset just after the `count`-th line from the end of `content`.
fn without_last_lines(content: &[u8], count: usize) -> usize {
    let breaks: Vec<usize> = content
        .iter()
        .enumerate()
        .filter(|(_, byte)| **byte == b'\n')
        .map(|(at, _)| at + 1)
        .collect();
    breaks[breaks.len() - 1 - count]
}

#[tokio::test]
async fn missing_file_is_rebuilt() {
    let (_dir, store, path, content) = live().await;
    std::fs::remove_file(&path).unwrap();
    let lines = content.iter().filter(|byte| **byte == b'\n').count() as u64;
    assert_eq!(
        repair(&store, &path).await.unwrap(),
        Repair::Rebuilt { lines }
    );
    assert_eq!(std::fs::read(&path).unwrap(), content);
}

#[tokio::test]
async fn empty_file_is_rebuilt() {
    let (_dir, store, path, content) = live().await;
    std::fs::write(&path, b"").unwrap();
    assert!(matches!(
        repair(&store, &path).await.unwrap(),
        Repair::Rebuilt { .. }
    ));
    assert_eq!(std::fs::read(&path).unwrap(), content);
}

#[tokio::test]
async fn complete_file_is_left_alone() {
    let (_dir, store, path, content) = live().await;
    assert_eq!(repair(&store, &path).await.unwrap(), Repair::UpToDate);
    assert_eq!(std::fs::read(&path).unwrap(), content);
}

#[tokio::test]
async fn lost_last_lines_are_appended() {
    let (_dir, store, path, content) = live().await;
    std::fs::write(&path, &content[..without_last_lines(&content, 5)]).unwrap();
    assert_eq!(
        repair(&store, &path).await.unwrap(),
        Repair::Completed { lines: 5 }
    );
    assert_eq!(std::fs::read(&path).unwrap(), content);
}

#[tokio::test]
async fn line_cut_mid_write_is_completed() {
    let (_dir, store, path, content) = live().await;
    let cut = without_last_lines(&content, 3) + 7;
    std::fs::write(&path, &content[..cut]).unwrap();
    assert_eq!(
        repair(&store, &path).await.unwrap(),
        Repair::Completed { lines: 3 }
    );
    assert_eq!(std::fs::read(&path).unwrap(), content);
}

#[tokio::test]
async fn rotated_file_gets_only_the_lost_lines() {
    let (_dir, store, path, content) = live().await;
    // What a rotation kept: some lines from the middle on, and the last
    // two lost in a crash.
    let start = without_last_lines(&content, 12);
    let end = without_last_lines(&content, 2);
    std::fs::write(&path, &content[start..end]).unwrap();
    assert_eq!(
        repair(&store, &path).await.unwrap(),
        Repair::Completed { lines: 2 }
    );
    assert_eq!(std::fs::read(&path).unwrap(), &content[start..]);
}

#[tokio::test]
async fn foreign_file_is_left_alone() {
    let (_dir, store, path, _content) = live().await;
    let foreign = b"1700000000|x|support|NONE|ENTERQUEUE||100|1\n";
    std::fs::write(&path, foreign).unwrap();
    assert_eq!(
        repair(&store, &path).await.unwrap(),
        Repair::Unmatched { searched: 34 }
    );
    assert_eq!(std::fs::read(&path).unwrap(), foreign);
}

#[tokio::test]
async fn repeated_line_matches_at_its_own_place() {
    let (dir, store) = store().await;
    // The same pause twice in one second with a call in between: the file
    // that ends after the first pause must get the call and the second.
    let pause = |index: u64| StampedEvent {
        event: QueueEvent::AgentNotReady {
            agent: "1001".into(),
            reason: "break".into(),
            queues: vec!["general".into()],
            at: Instant::now(),
        },
        wall: UNIX_EPOCH + Duration::from_millis(1_800_000_000_000 + index),
    };
    let mut events = mixed_events();
    events.truncate(1);
    events.push(pause(100));
    events.push(StampedEvent {
        wall: UNIX_EPOCH + Duration::from_millis(1_800_000_000_200),
        ..mixed_events()[0].clone()
    });
    events.push(pause(300));
    let content = write_live(&store, dir.path(), &events).await;
    let path = dir.path().join("live_queue_log");
    let lines = live_lines(&events);
    assert_eq!(lines[1], lines[3], "the two pauses give the same line");
    std::fs::write(&path, &content[..without_last_lines(&content, 2)]).unwrap();
    assert_eq!(
        repair(&store, &path).await.unwrap(),
        Repair::Completed { lines: 2 }
    );
    assert_eq!(std::fs::read(&path).unwrap(), content);
}

#[tokio::test]
async fn file_far_behind_is_found_in_a_larger_window() {
    let (dir, store) = store().await;
    // One line per event, more events than the first window holds.
    let events: Vec<StampedEvent> = (0..1000u64)
        .map(|index| StampedEvent {
            event: QueueEvent::MemberAdded {
                agent: format!("agent-{index}"),
                queue: "general".into(),
                at: Instant::now(),
            },
            wall: UNIX_EPOCH + Duration::from_millis(1_800_000_000_000 + index * 10),
        })
        .collect();
    let content = write_live(&store, dir.path(), &events).await;
    let path = dir.path().join("live_queue_log");
    // A rotated file, so that only its last line can place it.
    let start = without_last_lines(&content, 900);
    std::fs::write(&path, &content[start..without_last_lines(&content, 700)]).unwrap();
    assert_eq!(
        repair(&store, &path).await.unwrap(),
        Repair::Completed { lines: 700 }
    );
    assert_eq!(std::fs::read(&path).unwrap(), &content[start..]);
}

#[tokio::test]
async fn empty_table_leaves_a_missing_file_missing() {
    let (dir, store) = store().await;
    let path = dir.path().join("queue_log");
    assert_eq!(repair(&store, &path).await.unwrap(), Repair::UpToDate);
    assert!(!path.exists());
}
