//! A second PBX started on a data folder that a running PBX uses must stop
//! at once. Otherwise it would take the running calls in the journal for
//! calls of a crashed run, write interrupted CDRs for them and hang both
//! phones up.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use pbx_e2e::pbx::{self, Pbx, PbxConfig};
use pbx_e2e::ports;

#[test]
fn second_pbx_on_a_used_data_dir_stops() {
    let mut first = Pbx::start(&PbxConfig::default());
    let rtp = ports::free_udp_range(20);
    let mut second = Command::new(pbx::binary())
        .arg("--data-dir")
        .arg(&first.data_dir)
        .arg("--sip-listen")
        .arg(format!("127.0.0.1:{}", ports::free_port()))
        .arg("--http-listen")
        .arg(format!("127.0.0.1:{}", ports::free_port()))
        .arg("--rtp-ports")
        .arg(format!("{}-{}", rtp.start(), rtp.end()))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run a second pbx");
    // A second PBX that starts would run on: it gets 30 s to stop.
    let deadline = Instant::now() + Duration::from_secs(30);
    while second.try_wait().expect("second pbx status").is_none() {
        if Instant::now() > deadline {
            let _ = second.kill();
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let second = second.wait_with_output().expect("second pbx output");
    let output = format!(
        "{}{}",
        String::from_utf8_lossy(&second.stdout),
        String::from_utf8_lossy(&second.stderr)
    );
    assert!(!second.status.success(), "the second PBX started: {output}");
    let expected = format!("is in use by another PBX (PID {})", first.pid());
    assert!(output.contains(&expected), "no lock error: {output}");
    assert!(first.exit_status().is_none(), "the first PBX stopped");

    // The kernel drops the lock with the process, so a restart after a
    // stop (or a crash) gets the folder back.
    first.restart();
    assert!(first.exit_status().is_none(), "the restart failed");
}
