//! The caller hangs up (CANCEL) while queued: 487 to the caller and an
//! abandoned call record.

use std::time::Duration;

use pbx_e2e::pbx::{DID, Pbx, PbxConfig};
use pbx_e2e::{phones, tools};

#[test]
fn caller_cancel_while_queued_abandons() {
    tools::require(&tools::ALL);
    // No agent registers, and the max wait outlasts caller_cancel.xml's
    // 3 seconds of queueing, so only the CANCEL can end the call.
    let config = PbxConfig {
        max_wait_secs: 30,
        ..PbxConfig::default()
    };
    let pbx = Pbx::start(&config);
    let work_dir = pbx.dir.path().to_path_buf();

    let run = phones::caller(&pbx, &work_dir, "caller_cancel.xml", "127.0.0.1", DID).run();
    run.assert_success();
    assert_eq!(run.final_status(), Some(487), "{}", run.report());

    let caller_call_id = run.call_id().expect("Call-ID in the caller's message log");
    let record = pbx.wait_for_call(&caller_call_id, Duration::from_secs(10));
    println!("call record: {record:#}");
    assert_eq!(record["disposition"], "abandoned");
    assert_eq!(record["hangup_side"], "caller");
    assert!(record["agent"].is_null(), "agent: {}", record["agent"]);
    assert_eq!(record["talk_seconds"], 0.0);
    let wait_seconds = record["wait_seconds"]
        .as_f64()
        .expect("wait_seconds is a number");
    assert!(
        wait_seconds >= 2.5,
        "wait_seconds {wait_seconds}: the caller queued for about 3 s"
    );
}
