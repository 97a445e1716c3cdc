//! Bounded sipp runs with their logs kept for failure reports.
//!
//! Every run gets `-m 1` (one call, then exit), a global `-timeout` with
//! `-timeout_error` so reaching it fails the run, a default `-recv_timeout`,
//! and a wall-clock limit after which the harness kills the process by PID.

use std::ffi::OsString;
use std::fs;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use crate::tools;

/// sipp's own global timeout; no scenario here needs half of it.
const SIPP_TIMEOUT_SECS: u64 = 60;
/// Default wait for each expected message, in milliseconds.
const RECV_TIMEOUT_MS: u64 = 30_000;
/// The harness kills sipp after this, in case sipp's own timeouts fail.
const WALL_CLOCK_LIMIT: Duration = Duration::from_secs(SIPP_TIMEOUT_SECS + 15);
const POLL_INTERVAL: Duration = Duration::from_millis(50);

/// Path of a scenario file in `tests/scenarios/`.
pub fn scenario_path(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("scenarios")
        .join(name)
}

/// A sipp command line being built.
#[derive(Clone, Debug)]
pub struct Sipp {
    label: String,
    scenario: PathBuf,
    work_dir: PathBuf,
    args: Vec<OsString>,
    remote: Option<SocketAddr>,
}

impl Sipp {
    /// Prepares a run of `tests/scenarios/<scenario>` in `work_dir`, where
    /// `rtp_stream` finds its audio files and the logs go. `label` names the logs.
    pub fn new(label: &str, scenario: &str, work_dir: &Path) -> Sipp {
        Sipp::with_scenario_file(label, &scenario_path(scenario), work_dir)
    }

    /// As [`Sipp::new`] with a scenario file anywhere.
    pub fn with_scenario_file(label: &str, scenario: &Path, work_dir: &Path) -> Sipp {
        Sipp {
            label: label.to_owned(),
            scenario: scenario.to_path_buf(),
            work_dir: work_dir.to_path_buf(),
            args: Vec::new(),
            remote: None,
        }
    }

    /// Sets the local signalling address (`-i`, `-p`). The socket binds to it
    /// (`-bind_local`), so it is also the source address of the requests.
    pub fn local(self, ip: &str, port: u16) -> Sipp {
        self.arg("-i")
            .arg(ip)
            .arg("-bind_local")
            .arg("-p")
            .arg(port.to_string())
    }

    /// Sets the media address and port (`-mi`, `-mp`) put in the SDP and used
    /// to send RTP.
    pub fn media(self, ip: &str, port: u16) -> Sipp {
        self.arg("-mi").arg(ip).arg("-mp").arg(port.to_string())
    }

    /// Sets a `[name]` keyword of the scenario.
    pub fn key(self, name: &str, value: &str) -> Sipp {
        self.arg("-key").arg(name).arg(value)
    }

    /// Length of each `<pause/>` in the scenario (`-d`).
    pub fn pause(self, duration: Duration) -> Sipp {
        self.arg("-d").arg(duration.as_millis().to_string())
    }

    /// Service part of the Request-URI (`-s`), the dialed number.
    pub fn service(self, number: &str) -> Sipp {
        self.arg("-s").arg(number)
    }

    /// Digest credentials for the `[authentication]` keyword.
    pub fn credentials(self, username: &str, password: &str) -> Sipp {
        self.arg("-au").arg(username).arg("-ap").arg(password)
    }

    /// Sets the peer that receives the first request. UAS runs have none.
    pub fn remote(mut self, addr: SocketAddr) -> Sipp {
        self.remote = Some(addr);
        self
    }

    pub fn arg(mut self, arg: impl Into<OsString>) -> Sipp {
        self.args.push(arg.into());
        self
    }

    /// Starts sipp and returns without waiting, for UAS roles.
    pub fn spawn(self) -> SippRun {
        tools::require(&[tools::SIPP]);
        let logs = SippLogs::new(&self.work_dir, &self.label);
        let mut command = Command::new(tools::SIPP.program);
        command.arg("-sf").arg(&self.scenario).args(&self.args);
        command.args(["-m", "1", "-nostdin", "-timeout_error"]);
        command.arg("-timeout").arg(format!("{SIPP_TIMEOUT_SECS}s"));
        if !self.args.iter().any(|arg| arg == "-recv_timeout") {
            command
                .arg("-recv_timeout")
                .arg(RECV_TIMEOUT_MS.to_string());
        }
        command
            .arg("-trace_msg")
            .arg("-message_file")
            .arg(&logs.messages);
        command
            .arg("-trace_err")
            .arg("-error_file")
            .arg(&logs.errors);
        command
            .arg("-trace_screen")
            .arg("-screen_file")
            .arg(&logs.screen);
        if let Some(remote) = self.remote {
            command.arg(remote.to_string());
        }
        command.current_dir(&self.work_dir).stdin(Stdio::null());
        command
            .stdout(log_file(&logs.stdout))
            .stderr(log_file(&logs.stderr));

        let child = command
            .spawn()
            .unwrap_or_else(|error| panic!("failed to start sipp for {}: {error}", self.label));
        SippRun {
            label: self.label,
            command: format!("{command:?}"),
            child: Some(child),
            logs,
            started: Instant::now(),
        }
    }

    /// Runs sipp to completion (bounded) and returns the outcome.
    pub fn run(self) -> SippOutcome {
        self.spawn().wait()
    }
}

fn log_file(path: &Path) -> fs::File {
    fs::File::create(path)
        .unwrap_or_else(|error| panic!("failed to create {}: {error}", path.display()))
}

/// Files one sipp run writes.
#[derive(Clone, Debug)]
pub struct SippLogs {
    pub messages: PathBuf,
    pub errors: PathBuf,
    pub screen: PathBuf,
    pub stdout: PathBuf,
    pub stderr: PathBuf,
}

impl SippLogs {
    fn new(dir: &Path, label: &str) -> SippLogs {
        let file = |suffix: &str| dir.join(format!("sipp-{label}-{suffix}.log"));
        SippLogs {
            messages: file("messages"),
            errors: file("errors"),
            screen: file("screen"),
            stdout: file("stdout"),
            stderr: file("stderr"),
        }
    }
}

/// A sipp process that is running; killed by PID when dropped unfinished.
#[derive(Debug)]
pub struct SippRun {
    label: String,
    command: String,
    child: Option<Child>,
    logs: SippLogs,
    started: Instant,
}

impl SippRun {
    /// Waits for sipp to exit, killing it after the wall-clock limit.
    pub fn wait(mut self) -> SippOutcome {
        let mut child = self
            .child
            .take()
            .unwrap_or_else(|| unreachable!("child taken only here"));
        let status = loop {
            match child.try_wait() {
                Ok(Some(status)) => break Some(status),
                Ok(None) if self.started.elapsed() < WALL_CLOCK_LIMIT => {
                    thread::sleep(POLL_INTERVAL)
                }
                Ok(None) | Err(_) => {
                    let _ = child.kill();
                    let _ = child.wait();
                    break None;
                }
            }
        };
        SippOutcome {
            label: self.label.clone(),
            command: self.command.clone(),
            status,
            elapsed: self.started.elapsed(),
            logs: self.logs.clone(),
        }
    }
}

impl SippRun {
    /// Kills sipp by PID and returns what it logged, for a role that must
    /// not have been used.
    pub fn stop(mut self) -> SippOutcome {
        if let Some(child) = self.child.as_mut() {
            let _ = child.kill();
        }
        self.wait()
    }
}

impl Drop for SippRun {
    fn drop(&mut self) {
        if let Some(child) = self.child.as_mut() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// How a sipp run ended.
#[derive(Clone, Debug)]
pub struct SippOutcome {
    pub label: String,
    pub command: String,
    /// None when the harness killed sipp at the wall-clock limit.
    pub status: Option<ExitStatus>,
    pub elapsed: Duration,
    pub logs: SippLogs,
}

impl SippOutcome {
    pub fn succeeded(&self) -> bool {
        self.status.is_some_and(|status| status.success())
    }

    /// Panics with the logs unless sipp exited with status 0 (every call
    /// successful).
    pub fn assert_success(&self) {
        assert!(
            self.succeeded(),
            "sipp {} failed\n{}",
            self.label,
            self.report()
        );
    }

    /// Panics with the logs if sipp exited with status 0.
    pub fn assert_failure(&self) {
        assert!(
            !self.succeeded(),
            "sipp {} succeeded but should have failed\n{}",
            self.label,
            self.report()
        );
    }

    /// Command, exit status and every log, for failure messages.
    pub fn report(&self) -> String {
        let mut report = format!(
            "command: {}\nexit: {:?} after {:.1} s\n",
            self.command,
            self.status,
            self.elapsed.as_secs_f64()
        );
        let logs = [
            ("errors", &self.logs.errors),
            ("messages", &self.logs.messages),
            ("stderr", &self.logs.stderr),
            ("screen", &self.logs.screen),
        ];
        for (name, path) in logs {
            let text = fs::read_to_string(path).unwrap_or_else(|error| format!("({error})"));
            report.push_str(&format!(
                "---- sipp {} {name} ({}) ----\n{text}\n",
                self.label,
                path.display()
            ));
        }
        report
    }

    /// Messages sipp sent or received, in order.
    pub fn messages(&self) -> Vec<TracedMessage> {
        let text = fs::read_to_string(&self.logs.messages).unwrap_or_default();
        parse_message_log(&text)
    }

    /// Status code of the last final response (>= 200) sipp received.
    pub fn final_status(&self) -> Option<u16> {
        self.messages()
            .iter()
            .rev()
            .filter(|message| message.received)
            .find_map(|message| message.status().filter(|status| *status >= 200))
    }

    /// Call-ID of the first message in the log: the dialog this run handled.
    pub fn call_id(&self) -> Option<String> {
        self.messages()
            .iter()
            .find_map(|message| message.header("Call-ID").map(str::to_owned))
    }
}

/// One SIP message from sipp's `-trace_msg` log.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TracedMessage {
    pub received: bool,
    pub text: String,
}

impl TracedMessage {
    pub fn start_line(&self) -> &str {
        self.text.lines().next().unwrap_or_default()
    }

    /// Response status code, None for a request.
    pub fn status(&self) -> Option<u16> {
        let rest = self.start_line().strip_prefix("SIP/2.0 ")?;
        rest.get(..3)?.parse().ok()
    }

    /// First value of header `name` (long form, case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.text
            .lines()
            .skip(1)
            .take_while(|line| !line.trim().is_empty())
            .find_map(|line| {
                let (key, value) = line.split_once(':')?;
                key.trim().eq_ignore_ascii_case(name).then(|| value.trim())
            })
    }
}

/// Splits a sipp 3.6 message log. Each message follows a line such as
/// `UDP message received [523] bytes :` or `UDP message sent (523 bytes):`
/// and a blank line; a dashed line with a timestamp starts the next entry.
fn parse_message_log(text: &str) -> Vec<TracedMessage> {
    let mut messages: Vec<TracedMessage> = Vec::new();
    let mut current: Option<TracedMessage> = None;
    for line in text.lines() {
        if line.starts_with("-----------------------------------------------") {
            messages.extend(current.take());
            continue;
        }
        let lower = line.to_ascii_lowercase();
        if current.is_none()
            && lower.contains(" message ")
            && (lower.contains("received") || lower.contains("sent"))
        {
            current = Some(TracedMessage {
                received: lower.contains("received"),
                text: String::new(),
            });
            continue;
        }
        if let Some(message) = current.as_mut() {
            if message.text.is_empty() && line.trim().is_empty() {
                continue;
            }
            message.text.push_str(line);
            message.text.push('\n');
        }
    }
    messages.extend(current);
    messages
}

#[cfg(test)]
mod tests {
    use super::*;

    const LOG: &str = "----------------------------------------------- 2026-12-04 16:30:52.510467
UDP message sent (401 bytes):

INVITE sip:9999@127.0.0.1:5390 SIP/2.0
Via: SIP/2.0/UDP 127.0.0.1:5370;branch=z9hG4bK-1-1-0;rport
Call-ID: 1-29645@127.0.0.1
CSeq: 1 INVITE

v=0

----------------------------------------------- 2026-12-04 16:30:52.511000
UDP message received [250] bytes :

SIP/2.0 100 Trying
Call-ID: 1-29645@127.0.0.1

----------------------------------------------- 2026-12-04 16:30:52.512000
UDP message received [250] bytes :

SIP/2.0 404 Not Found
Call-ID: 1-29645@127.0.0.1

";

    #[test]
    fn message_log_parsed() {
        let messages = parse_message_log(LOG);

        assert_eq!(messages.len(), 3);
        assert!(!messages[0].received);
        assert_eq!(
            messages[0].start_line(),
            "INVITE sip:9999@127.0.0.1:5390 SIP/2.0"
        );
        assert_eq!(messages[0].header("call-id"), Some("1-29645@127.0.0.1"));
        assert_eq!(messages[0].status(), None);
        assert_eq!(messages[2].status(), Some(404));
    }
}
