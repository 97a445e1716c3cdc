//! queue_log lines built from the events of driven scenarios.

mod common;

use acd::{Destination, Party, QueueEvent, queue_log_lines};
use common::*;

/// Formats every event with the epoch `1_700_000_000 + seconds since start`.
fn log_lines(acd: &mut acd::Acd, start: std::time::Instant) -> Vec<String> {
    events(acd)
        .iter()
        .flat_map(|event| {
            let epoch = 1_700_000_000 + event.at().duration_since(start).as_secs();
            queue_log_lines(event, epoch)
        })
        .collect()
}

#[test]
fn answered_call_lines() {
    let (mut acd, t0) = with_agents(queue("q"), &["a", "b"]);
    let data = acd::CallData {
        caller: Some("+77010000000".into()),
        ..acd::CallData::default()
    };
    acd.enqueue_with("c1", "q", data, t0).unwrap();
    acd.handle_timeout(t0 + secs(15));
    acd.offer_answered("c1", "b", t0 + secs(18));
    acd.call_ended_by("b", Party::Caller, t0 + secs(78));
    assert_eq!(
        log_lines(&mut acd, t0),
        [
            "1700000000|c1|q|NONE|ENTERQUEUE||+77010000000|1",
            "1700000015|c1|q|a|RINGNOANSWER|15000",
            "1700000018|c1|q|b|CONNECT|18|c1|3",
            "1700000078|c1|q|b|COMPLETECALLER|18|60|1",
        ]
    );
}

#[test]
fn abandon_and_timeout_lines() {
    let mut config = queue("q");
    config.max_wait = secs(30);
    let (mut acd, t0) = with_agents(config, &[]);
    acd.enqueue("c1", "q", t0).unwrap();
    acd.enqueue("c2", "q", t0).unwrap();
    acd.abandon("c2", t0 + secs(4));
    acd.handle_timeout(t0 + secs(30));
    let lines = log_lines(&mut acd, t0);
    assert_eq!(lines[2], "1700000004|c2|q|NONE|ABANDON|2|2|4");
    assert_eq!(lines[3], "1700000030|c1|q|NONE|EXITWITHTIMEOUT|1|1|30");
}

#[test]
fn exit_key_line() {
    let mut config = queue("q");
    config
        .exit_keys
        .insert('9', Destination::Voicemail("100".into()));
    let (mut acd, t0) = with_agents(config, &[]);
    acd.enqueue("c1", "q", t0).unwrap();
    acd.key_pressed("c1", '9', t0 + secs(12));
    let lines = log_lines(&mut acd, t0);
    assert_eq!(lines[1], "1700000012|c1|q|NONE|EXITWITHKEY|9|1|1|12");
}

#[test]
fn pause_lines_per_queue() {
    let (mut acd, t0) = with_agents(queue("q"), &[]);
    acd.add_queue(queue("r"));
    acd.add_agent("a", &["q".to_owned()]);
    acd.add_member("a", "r", 1, t0).unwrap();
    acd.set_logged_in("a", true, t0);
    acd.set_not_ready("a", "lunch", t0 + secs(1)).unwrap();
    acd.set_ready("a", t0 + secs(2)).unwrap();
    acd.remove_member("a", "r", t0 + secs(3)).unwrap();
    assert_eq!(
        log_lines(&mut acd, t0),
        [
            "1700000000|NONE|r|a|ADDMEMBER|",
            "1700000001|NONE|q|a|PAUSE|lunch",
            "1700000001|NONE|r|a|PAUSE|lunch",
            "1700000002|NONE|q|a|UNPAUSE|lunch",
            "1700000002|NONE|r|a|UNPAUSE|lunch",
            "1700000003|NONE|r|a|REMOVEMEMBER|",
        ]
    );
}

#[test]
fn transfer_line_and_separator_escaped() {
    let (mut acd, t0) = with_agents(queue("q"), &["a"]);
    acd.enqueue("c1", "q", t0).unwrap();
    acd.offer_answered("c1", "a", t0 + secs(2));
    acd.call_transferred("a", "2000|x", t0 + secs(32));
    let lines = log_lines(&mut acd, t0);
    assert_eq!(
        lines.last().unwrap(),
        "1700000032|c1|q|a|TRANSFER|2000_x||2|30|1"
    );
}

#[test]
fn state_changes_have_no_line() {
    let (mut acd, t0) = with_agents(queue("q"), &[]);
    acd.add_agent("a", &["q".to_owned()]);
    acd.set_logged_in("a", true, t0);
    acd.set_reachable_because("a", true, Some("registration"), t0);
    let events = events(&mut acd);
    assert!(matches!(events[0], QueueEvent::AgentLogin { .. }));
    assert!(matches!(events[1], QueueEvent::AgentStateChanged { .. }));
    assert!(matches!(events[2], QueueEvent::AgentReachability { .. }));
    for event in &events {
        assert!(queue_log_lines(event, 0).is_empty(), "{event:?}");
    }
}
