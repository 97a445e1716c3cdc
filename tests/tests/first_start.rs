//! A first start that fails on a busy SIP port must not create the first
//! administrator: its generated password is printed once, and an operator
//! who read the output as a plain failure could never log in. The next
//! start that succeeds prints it.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use pbx_e2e::{pbx, ports};

const PRINTED: &str = "Generated password for user admin";

#[test]
fn failed_first_start_keeps_the_admin_password_for_the_next() {
    let dir = tempfile::tempdir().expect("temporary folder");
    let data_dir = dir.path().join("data");
    let busy = std::net::UdpSocket::bind("127.0.0.1:0").expect("busy socket");
    let busy_port = busy.local_addr().expect("address").port();
    let rtp = ports::free_udp_range(20);
    let rtp = format!("{}-{}", rtp.start(), rtp.end());
    let command = |sip_port: u16| {
        let mut command = Command::new(pbx::binary());
        command
            .arg("--data-dir")
            .arg(&data_dir)
            .arg("--sip-listen")
            .arg(format!("127.0.0.1:{sip_port}"))
            .arg("--http-listen")
            .arg(format!("127.0.0.1:{}", ports::free_port()))
            .arg("--rtp-ports")
            .arg(&rtp)
            .env_remove("PBX_ADMIN_PASSWORD")
            .stdin(Stdio::null());
        command
    };

    let failed = command(busy_port).output().expect("run pbx");
    let stdout = String::from_utf8_lossy(&failed.stdout);
    let stderr = String::from_utf8_lossy(&failed.stderr);
    assert!(!failed.status.success(), "{stdout}{stderr}");
    assert!(
        format!("{stdout}{stderr}").contains("Address already in use"),
        "{stdout}{stderr}"
    );
    assert!(!stdout.contains(PRINTED), "{stdout}");

    // The SIP listener binds UDP and TCP, and a port found free can be taken
    // by another test's connection before the PBX binds it: a start that
    // fails on a busy port is tried again on a new one.
    let mut seen = Vec::new();
    let mut printed = false;
    for _ in 0..3 {
        let mut child = command(ports::free_port())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("start pbx");
        let stdout = child.stdout.take().expect("stdout");
        let (lines, received) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if lines.send(line).is_err() {
                    break;
                }
            }
        });
        let deadline = Instant::now() + Duration::from_secs(60);
        seen.clear();
        printed = loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match received.recv_timeout(left) {
                Ok(line) if line.contains(PRINTED) => break true,
                Ok(line) => seen.push(line),
                Err(_) => break false,
            }
        };
        let _ = child.kill();
        let _ = child.wait();
        let port_taken = seen
            .iter()
            .any(|line| line.contains("Address already in use"));
        if printed || !port_taken {
            break;
        }
        eprintln!("a port was taken before the PBX bound it; starting again");
    }
    drop(busy);
    assert!(
        printed,
        "the second start did not print it:\n{}",
        seen.join("\n")
    );
}
