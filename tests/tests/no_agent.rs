//! With no agent registered, a queued call fails once the queue's max wait
//! passes, and the call record has disposition no_agent and the status sent.

use std::time::Duration;

use pbx_e2e::pbx::{DID, Pbx, PbxConfig};
use pbx_e2e::{phones, tools};

const MAX_WAIT_SECS: u64 = 3;

#[test]
fn no_agent_until_max_wait() {
    tools::require(&tools::ALL);
    let config = PbxConfig {
        max_wait_secs: MAX_WAIT_SECS,
        ..PbxConfig::default()
    };
    let pbx = Pbx::start(&config);
    let work_dir = pbx.dir.path().to_path_buf();

    let (run, status) = phones::rejected_call(&pbx, &work_dir, "127.0.0.1", DID);
    println!("final status after max wait: {status}");

    assert!(
        (400..700).contains(&status),
        "status {status}\n{}",
        run.report()
    );
    assert!(
        run.elapsed >= Duration::from_secs(MAX_WAIT_SECS) - Duration::from_millis(500),
        "rejected after {:?}, before the max wait of {MAX_WAIT_SECS} s",
        run.elapsed
    );
    let caller_call_id = run.call_id().expect("Call-ID in the caller's message log");
    let record = pbx.wait_for_call(&caller_call_id, Duration::from_secs(10));
    println!("call record: {record:#}");
    assert_eq!(record["disposition"], "no_agent");
    assert_eq!(record["sip_status"], status);
    assert!(record["agent"].is_null(), "agent: {}", record["agent"]);
    assert!(
        record["answered_at"].is_null(),
        "answered_at: {}",
        record["answered_at"]
    );
    assert_eq!(record["talk_seconds"], 0.0);
    let wait_seconds = record["wait_seconds"]
        .as_f64()
        .expect("wait_seconds is a number");
    assert!(
        (wait_seconds - MAX_WAIT_SECS as f64).abs() < 1.0,
        "wait_seconds {wait_seconds}, max wait {MAX_WAIT_SECS} s"
    );
}
