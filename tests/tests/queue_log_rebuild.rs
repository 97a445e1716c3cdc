//! The queue_log comes back from the stored events: `pbx queue-log` writes
//! the same bytes as the live file, and a start after the file was deleted
//! or cut mid-line restores it.

use std::fs;
use std::path::Path;
use std::process::Command;
use std::thread;
use std::time::{Duration, Instant};

use pbx_e2e::fixtures::AudioFixtures;
use pbx_e2e::pbx::{self, DID, Pbx, PbxConfig, QUEUE};
use pbx_e2e::phones;
use pbx_e2e::tools;

const FILE_TIMEOUT: Duration = Duration::from_secs(10);

#[test]
fn queue_log_is_restored_from_stored_events() {
    tools::require(&tools::ALL);
    let config = PbxConfig::default();
    let mut pbx = Pbx::start(&config);
    let work_dir = pbx.dir.path().to_path_buf();
    let _audio = AudioFixtures::generate(&work_dir);
    let agent = config.agents[0].id.as_str();
    let queue_log = pbx.data_dir.join("queue_log");

    // No agent is registered, so the caller waits and hangs up: ENTERQUEUE
    // and ABANDON. A supervisor's pause and unpause add PAUSE and UNPAUSE.
    let abandoned = phones::caller(&pbx, &work_dir, "caller_cancel.xml", "127.0.0.1", DID).run();
    abandoned.assert_success();
    for state in [
        serde_json::json!({"state": "not_ready", "reason": "lunch"}),
        serde_json::json!({"state": "ready"}),
    ] {
        let reply = pbx.admin_request("PUT", &format!("/api/agents/{agent}/state"), Some(&state));
        assert_eq!(
            reply.status,
            204,
            "{}",
            String::from_utf8_lossy(&reply.body)
        );
    }
    let unpause = format!("|{QUEUE}|{agent}|UNPAUSE|lunch\n");
    let live = wait_for_line(&queue_log, &unpause);
    for event in ["ENTERQUEUE", "ABANDON", "PAUSE"] {
        assert!(live.contains(&format!("|{event}|")), "no {event}:\n{live}");
    }
    pbx.stop();
    let live = fs::read(&queue_log).expect("read queue_log");

    // The command rebuilds the very same bytes from the database.
    let output = pbx.dir.path().join("rebuilt_queue_log");
    let status = Command::new(pbx::binary())
        .arg("queue-log")
        .arg("--data-dir")
        .arg(&pbx.data_dir)
        .arg("--output")
        .arg(&output)
        .status()
        .expect("run pbx queue-log");
    assert!(status.success(), "pbx queue-log failed: {status}");
    assert_eq!(
        String::from_utf8_lossy(&fs::read(&output).expect("read output")),
        String::from_utf8_lossy(&live),
        "pbx queue-log differs from the live file"
    );

    // An operator deletes the file while the PBX is stopped.
    fs::remove_file(&queue_log).expect("delete queue_log");
    pbx.start_again();
    let restored = fs::read(&queue_log).expect("queue_log written at start");
    assert!(
        restored.starts_with(&live),
        "restored file:\n{}\nlive file:\n{}",
        String::from_utf8_lossy(&restored),
        String::from_utf8_lossy(&live)
    );
    assert!(
        pbx.wait_for_log(
            "the queue_log was missing or empty",
            Duration::from_secs(10)
        ),
        "the repair is logged\n{}",
        pbx.logs()
    );

    // A crash cut the last line in the middle of its write.
    pbx.stop();
    let whole = fs::read(&queue_log).expect("read queue_log");
    fs::write(&queue_log, &whole[..whole.len() - 5]).expect("cut queue_log");
    pbx.start_again();
    let completed = fs::read(&queue_log).expect("read queue_log");
    assert!(
        completed.starts_with(&whole),
        "completed file:\n{}\nbefore the cut:\n{}",
        String::from_utf8_lossy(&completed),
        String::from_utf8_lossy(&whole)
    );
    assert!(
        pbx.wait_for_log("the queue_log lacked the lines", Duration::from_secs(10)),
        "the repair is logged\n{}",
        pbx.logs()
    );
}

/// Waits until the file at `path` contains `line`; returns its content.
fn wait_for_line(path: &Path, line: &str) -> String {
    let deadline = Instant::now() + FILE_TIMEOUT;
    loop {
        let text = fs::read_to_string(path).unwrap_or_default();
        if text.contains(line) {
            return text;
        }
        assert!(
            Instant::now() < deadline,
            "{} has no line ending in {line:?} within {FILE_TIMEOUT:?}:\n{text}",
            path.display()
        );
        thread::sleep(Duration::from_millis(100));
    }
}
