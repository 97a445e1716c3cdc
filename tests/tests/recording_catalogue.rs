//! A recorded call's catalogue entry: complete, with the length of the CDR
//! and the SHA-256 of the file the API serves; `pbx check-recordings`
//! agrees, and notices a changed byte.

use std::process::Command;
use std::time::{Duration, Instant};

use pbx_e2e::fixtures::AudioFixtures;
use pbx_e2e::pbx::{self, DID, Pbx, PbxConfig};
use pbx_e2e::phones::{self, AgentPhone};
use pbx_e2e::tools;
use sha2::{Digest, Sha256};

const TALK: Duration = Duration::from_secs(3);
const CDR_TIMEOUT: Duration = Duration::from_secs(10);

#[test]
fn recorded_call_is_catalogued_with_its_hash() {
    tools::require(&tools::ALL);
    let config = PbxConfig::default();
    let pbx = Pbx::start(&config);
    let work_dir = pbx.dir.path().to_path_buf();
    let _audio = AudioFixtures::generate(&work_dir);
    let phone = AgentPhone::new(&config.agents[0]);

    let agent_run = phone.answer(&work_dir, "agent_answer.xml", TALK);
    phone.register(&pbx, &work_dir);
    let caller = phones::caller(&pbx, &work_dir, "caller_hangup.xml", "127.0.0.1", DID)
        .pause(TALK)
        .run();
    caller.assert_success();
    agent_run.wait().assert_success();

    let caller_call_id = caller.call_id().expect("Call-ID of the caller");
    let record = pbx.wait_for_call(&caller_call_id, CDR_TIMEOUT);
    let id = record["id"].as_str().expect("id is a string").to_owned();

    // The entry is completed before the CDR is written.
    let entry = catalogue_entry(&pbx, &id);
    println!("catalogue entry: {entry:#}");
    assert_eq!(entry["status"], "complete");
    assert_eq!(entry["path"], record["recording_path"]);
    assert_eq!(entry["duration_seconds"], record["recording_seconds"]);

    let download = pbx.get(&format!("/api/calls/{id}/recording"));
    assert_eq!(download.status, 200);
    let served = hex::encode(Sha256::digest(&download.body));
    assert_eq!(entry["sha256"], served.as_str());
    assert_eq!(entry["size_bytes"], download.body.len());

    let listed = pbx.get("/api/recordings?status=complete").json();
    assert!(
        listed
            .as_array()
            .expect("array")
            .iter()
            .any(|listed| listed["call_id"] == id.as_str()),
        "{listed:#}"
    );

    let check = check_recordings(&pbx);
    assert!(check.status.success(), "{}", describe(&check));
    let stdout = String::from_utf8_lossy(&check.stdout);
    assert!(stdout.contains("1 verified"), "{stdout}");

    // One changed byte is found, and the exit code says so.
    let file = pbx
        .data_dir
        .join(entry["path"].as_str().expect("path is a string"));
    let mut bytes = std::fs::read(&file).expect("read recording");
    let last = bytes.len() - 1;
    bytes[last] ^= 0x55;
    std::fs::write(&file, bytes).expect("write recording");
    let check = check_recordings(&pbx);
    assert_eq!(check.status.code(), Some(1), "{}", describe(&check));
    let stdout = String::from_utf8_lossy(&check.stdout);
    assert!(stdout.contains(": SHA-256 is "), "{stdout}");
}

/// Polls `GET /api/recordings/{id}` until the entry is no longer
/// `recording`, for at most 5 s.
fn catalogue_entry(pbx: &Pbx, id: &str) -> serde_json::Value {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let reply = pbx.get(&format!("/api/recordings/{id}"));
        assert_eq!(
            reply.status,
            200,
            "{}",
            String::from_utf8_lossy(&reply.body)
        );
        let entry = reply.json();
        if entry["status"] != "recording" || Instant::now() > deadline {
            return entry;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn check_recordings(pbx: &Pbx) -> std::process::Output {
    Command::new(pbx::binary())
        .arg("check-recordings")
        .arg("--data-dir")
        .arg(&pbx.data_dir)
        .output()
        .expect("run pbx check-recordings")
}

fn describe(output: &std::process::Output) -> String {
    format!(
        "exit {:?}\nstdout:\n{}\nstderr:\n{}",
        output.status.code(),
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}
