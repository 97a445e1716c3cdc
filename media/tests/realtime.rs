//! The relay threads' scheduling policy, read back from /proc.

use std::net::{IpAddr, Ipv4Addr};
use std::time::{Duration, Instant};

use media::{Relay, RelayConfig};
use thread_priority::{
    RealtimeThreadSchedulePolicy, ThreadPriority, ThreadPriorityValue, ThreadSchedulePolicy,
};

const SCHED_OTHER: u32 = 0;
const SCHED_FIFO: u32 = 1;

/// Policy and real-time priority of every thread of this process whose name
/// starts with `prefix`, from fields 41 and 40 of /proc/self/task/TID/stat.
fn policies(prefix: &str) -> Vec<(String, u32, u32)> {
    let mut found = Vec::new();
    for task in std::fs::read_dir("/proc/self/task").expect("list threads") {
        let path = task.expect("thread entry").path();
        let Ok(name) = std::fs::read_to_string(path.join("comm")) else {
            continue;
        };
        let name = name.trim().to_owned();
        if !name.starts_with(prefix) {
            continue;
        }
        let stat = std::fs::read_to_string(path.join("stat")).expect("read stat");
        // The name in parentheses may contain spaces, but the fields after it do not.
        let fields: Vec<&str> = stat[stat.rfind(')').expect("stat has a name") + 2..]
            .split(' ')
            .collect();
        // Field 3 (state) is fields[0], so field N is fields[N - 3].
        let priority = fields[40 - 3].parse().expect("rt_priority");
        let policy = fields[41 - 3].parse().expect("policy");
        found.push((name, policy, priority));
    }
    found.sort();
    found
}

/// Tries real-time scheduling on a short-lived thread and returns whether
/// this process may use it.
fn may_use_fifo() -> bool {
    std::thread::spawn(|| {
        thread_priority::set_thread_priority_and_policy(
            thread_priority::thread_native_id(),
            ThreadPriority::Crossplatform(ThreadPriorityValue::try_from(1).expect("1 is valid")),
            ThreadSchedulePolicy::Realtime(RealtimeThreadSchedulePolicy::Fifo),
        )
        .is_ok()
    })
    .join()
    .expect("probe thread")
}

/// Waits up to 5 s until `ready` accepts the relay's threads, which name
/// themselves as they start, and returns them as last read.
fn relay_threads(ready: impl Fn(&[(String, u32, u32)]) -> bool) -> Vec<(String, u32, u32)> {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let found = policies("relay-");
        if ready(&found) || Instant::now() > deadline {
            return found;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

#[test]
fn relay_threads_take_configured_priority() {
    let relay = Relay::new(RelayConfig {
        bind_address: IpAddr::V4(Ipv4Addr::LOCALHOST),
        ports: 41_400..=41_499,
        threads: 2,
        spin: Duration::ZERO,
        realtime_priority: 7,
        coalesce: std::time::Duration::ZERO,
    })
    .expect("valid relay config");
    let may_use_fifo = may_use_fifo();
    // A thread names itself before it sets its policy, so wait for both.
    let threads = relay_threads(|found| {
        found.len() == 2
            && (!may_use_fifo || found.iter().all(|&(_, policy, _)| policy == SCHED_FIFO))
    });
    assert_eq!(threads.len(), 2, "relay threads: {threads:?}");
    if may_use_fifo {
        for (name, policy, priority) in &threads {
            assert_eq!(*policy, SCHED_FIFO, "{name} is not SCHED_FIFO");
            assert_eq!(*priority, 7, "{name} has the wrong real-time priority");
        }
    } else {
        for (name, policy, _) in &threads {
            assert_eq!(
                *policy, SCHED_OTHER,
                "{name} changed policy without the right"
            );
        }
    }
    drop(relay);
}
