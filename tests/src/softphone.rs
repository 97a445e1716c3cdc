//! What the interop tests with baresip and linphone share: the transport a
//! phone registers over, a test certificate authority for TLS, and a child
//! process that runs under a deadline and is stopped by PID.

use std::fs;
use std::io::Write;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::fixtures::SAMPLE_RATE;
use crate::pbx::Pbx;
use crate::{tone, wav};

const POLL_INTERVAL: Duration = Duration::from_millis(100);
/// Time a softphone gets to unregister and exit after SIGTERM.
const STOP_GRACE: Duration = Duration::from_secs(5);
/// Share of a channel's 100 ms frames that must carry its side's tone. The
/// audio starts a moment after the answer and ends at the BYE, which in a
/// 6 s call leaves about 85 %; 0.6 allows for a slow start.
const MIN_TONE_SHARE: f64 = 0.6;
/// Share of frames allowed to carry the other side's tone.
const MAX_CROSS_SHARE: f64 = 0.05;
/// Allowed difference between `talk_seconds` and the time the test let
/// the call run, for signalling and polling delays.
const TALK_TOLERANCE_SECS: f64 = 1.5;

/// A SIP transport the phones register and take calls over.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Transport {
    Udp,
    Tcp,
    Tls,
}

impl Transport {
    /// Returns the `transport` URI parameter value.
    pub fn as_str(self) -> &'static str {
        match self {
            Transport::Udp => "udp",
            Transport::Tcp => "tcp",
            Transport::Tls => "tls",
        }
    }
}

/// A certificate authority made for one test and the PBX's certificate
/// for 127.0.0.1 and `localhost` that it signed.
#[derive(Clone, Debug)]
pub struct TestCa {
    /// The authority's certificate, for the phones to trust.
    pub ca_path: PathBuf,
    /// The PBX's certificate chain: leaf, then the authority.
    pub chain_path: PathBuf,
    pub key_path: PathBuf,
}

impl TestCa {
    /// Generates the authority and the PBX's certificate into `dir`.
    pub fn generate(dir: &Path) -> TestCa {
        let mut ca_params =
            rcgen::CertificateParams::new(Vec::<String>::new()).expect("authority parameters");
        ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        ca_params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "pbx interop test CA");
        ca_params.key_usages = vec![
            rcgen::KeyUsagePurpose::KeyCertSign,
            rcgen::KeyUsagePurpose::CrlSign,
        ];
        let ca_key = rcgen::KeyPair::generate().expect("authority key");
        let ca = rcgen::CertifiedIssuer::self_signed(ca_params, ca_key).expect("authority");

        let names = vec!["127.0.0.1".to_owned(), "localhost".to_owned()];
        let mut leaf_params = rcgen::CertificateParams::new(names).expect("leaf parameters");
        // linphone 5.1.65 checks the name with mbedTLS 2, which compares the
        // host only with DNS names, so 127.0.0.1 is listed as one too, next
        // to the IP address entry that rustls and OpenSSL use.
        let ip_as_dns_name = "127.0.0.1".try_into().expect("IA5 string");
        leaf_params
            .subject_alt_names
            .push(rcgen::SanType::DnsName(ip_as_dns_name));
        leaf_params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "127.0.0.1");
        leaf_params.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ServerAuth];
        let leaf_key = rcgen::KeyPair::generate().expect("leaf key");
        let issuer: &rcgen::Issuer<'_, rcgen::KeyPair> = &ca;
        let leaf = leaf_params.signed_by(&leaf_key, issuer).expect("leaf");

        let ca_path = dir.join("test-ca.pem");
        let chain_path = dir.join("pbx-chain.pem");
        let key_path = dir.join("pbx-key.pem");
        write(&ca_path, &ca.pem());
        write(&chain_path, &format!("{}{}", leaf.pem(), ca.pem()));
        write(&key_path, &leaf_key.serialize_pem());
        TestCa {
            ca_path,
            chain_path,
            key_path,
        }
    }

    /// Returns the `[sip]` lines that put the PBX's TLS listener on `listen`
    /// with this certificate.
    pub fn pbx_sip_lines(&self, listen: SocketAddr) -> String {
        format!(
            "tls_listen = \"{listen}\"\ntls_certificate = {:?}\ntls_private_key = {:?}\n",
            self.chain_path.display().to_string(),
            self.key_path.display().to_string()
        )
    }
}

fn write(path: &Path, text: &str) {
    fs::write(path, text)
        .unwrap_or_else(|error| panic!("failed to write {}: {error}", path.display()));
}

/// A softphone process whose output goes to a log file. It is killed by
/// PID when dropped, and its log is printed when the test is failing.
pub struct PhoneProcess {
    name: String,
    child: Child,
    stdin: Option<ChildStdin>,
    log_path: PathBuf,
}

impl PhoneProcess {
    /// Starts `command` with its standard output and error in `log_path`.
    /// With `piped_stdin` the test writes commands to the process;
    /// otherwise its input is empty.
    pub fn spawn(name: &str, mut command: Command, log_path: &Path, piped_stdin: bool) -> Self {
        let log = fs::File::create(log_path)
            .unwrap_or_else(|error| panic!("failed to create {}: {error}", log_path.display()));
        let log_err = log.try_clone().expect("duplicate log handle");
        command.stdout(log).stderr(log_err).stdin(if piped_stdin {
            Stdio::piped()
        } else {
            Stdio::null()
        });
        let mut child = command
            .spawn()
            .unwrap_or_else(|error| panic!("failed to start {name} ({command:?}): {error}"));
        let stdin = child.stdin.take();
        PhoneProcess {
            name: name.to_owned(),
            child,
            stdin,
            log_path: log_path.to_path_buf(),
        }
    }

    /// Writes one command line to the process's standard input.
    pub fn send_line(&mut self, line: &str) {
        let stdin = self
            .stdin
            .as_mut()
            .unwrap_or_else(|| panic!("{} was started without piped stdin", self.name));
        if let Err(error) = writeln!(stdin, "{line}").and_then(|()| stdin.flush()) {
            panic!(
                "failed to write {line:?} to {}: {error}\n{}",
                self.name,
                self.output()
            );
        }
    }

    /// Waits up to `timeout` for `needle` in the output and returns
    /// whether it appeared. Fails at once when the process has exited
    /// without printing it.
    pub fn wait_for_output(&mut self, needle: &str, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        loop {
            if self.output().contains(needle) {
                return true;
            }
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!(
                    "{} exited with {status} before printing {needle:?}\n{}",
                    self.name,
                    self.output()
                );
            }
            if Instant::now() >= deadline {
                return false;
            }
            thread::sleep(POLL_INTERVAL);
        }
    }

    /// Returns whether the process has exited.
    pub fn has_exited(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(Some(_)))
    }

    /// Returns everything the process printed so far.
    pub fn output(&self) -> String {
        let text = fs::read(&self.log_path).unwrap_or_default();
        format!(
            "---- {} output ({}) ----\n{}",
            self.name,
            self.log_path.display(),
            String::from_utf8_lossy(&text)
        )
    }

    /// Sends SIGTERM, so the phone unregisters and exits, and kills it by
    /// PID when it is still running after the grace period.
    pub fn stop(&mut self) {
        if self.has_exited() {
            return;
        }
        // `Child::kill` only sends SIGKILL; kill(1) sends SIGTERM to this
        // one PID.
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let deadline = Instant::now() + STOP_GRACE;
        while Instant::now() < deadline {
            if self.has_exited() {
                return;
            }
            thread::sleep(POLL_INTERVAL);
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for PhoneProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if thread::panicking() {
            eprintln!("{}", self.output());
        }
    }
}

/// Returns the agent's entry in `GET /api/agents`.
pub fn agent_entry(pbx: &Pbx, agent: &str) -> Value {
    let agents = pbx.get("/api/agents").json();
    agents
        .as_array()
        .expect("GET /api/agents returns an array")
        .iter()
        .find(|listed| listed["id"] == agent)
        .cloned()
        .unwrap_or_else(|| panic!("agent {agent} missing from GET /api/agents: {agents}"))
}

/// Waits up to `timeout` until the API lists `agent` as available with at
/// least one registered contact, and returns that entry. Panics with the
/// phone's output and the PBX's logs otherwise.
pub fn wait_for_registration(
    pbx: &Pbx,
    agent: &str,
    phone: &mut PhoneProcess,
    timeout: Duration,
) -> Value {
    let deadline = Instant::now() + timeout;
    loop {
        let entry = agent_entry(pbx, agent);
        let contacts = entry["contacts"].as_u64().unwrap_or(0);
        if contacts >= 1 && entry["state"] == "available" {
            return entry;
        }
        assert!(
            !phone.has_exited(),
            "{agent}'s phone exited before registering\n{}",
            phone.output()
        );
        assert!(
            Instant::now() < deadline,
            "agent {agent} not registered and available within {timeout:?}: {entry}\n{}\n{}",
            phone.output(),
            pbx.logs()
        );
        thread::sleep(POLL_INTERVAL);
    }
}

/// Asserts that the call record's `talk_seconds` is close to `talk`.
pub fn assert_talk_close_to(record: &Value, talk: Duration) {
    let talk_seconds = record["talk_seconds"]
        .as_f64()
        .expect("talk_seconds is a number");
    assert!(
        (talk_seconds - talk.as_secs_f64()).abs() < TALK_TOLERANCE_SECS,
        "talk_seconds {talk_seconds} is not close to the {talk:?} the call lasted"
    );
}

/// Asserts that the call's recording carries `caller_hz` on the left
/// channel and `agent_hz` on the right, each without the other.
pub fn check_recording(pbx: &Pbx, record: &Value, caller_hz: f64, agent_hz: f64) {
    let path = record["recording_path"]
        .as_str()
        .expect("recording_path is a string");
    let recording = wav::Recording::open(&pbx.data_dir.join(path));
    assert_eq!(recording.channels, 2);
    assert_eq!(recording.sample_rate, SAMPLE_RATE);
    let channels = [
        ("left (caller)", &recording.left, caller_hz, agent_hz),
        ("right (agent)", &recording.right, agent_hz, caller_hz),
    ];
    for (name, samples, own_hz, other_hz) in channels {
        let own = tone::tone_frames(samples, own_hz, SAMPLE_RATE);
        let other = tone::tone_frames(samples, other_hz, SAMPLE_RATE);
        println!("{name}: {own_hz} Hz {own:?}, {other_hz} Hz {other:?}");
        assert!(
            own.share() >= MIN_TONE_SHARE,
            "{name}: {own_hz} Hz tone in {:.0} % of frames: {own:?}",
            own.share() * 100.0
        );
        assert!(
            other.share() <= MAX_CROSS_SHARE,
            "{name}: the other side's {other_hz} Hz tone in {:.0} % of frames: {other:?}",
            other.share() * 100.0
        );
    }
}

/// Asserts that what `phone` heard, at `rate` Hz, carries `expected_hz`
/// in most frames.
pub fn check_heard(phone: &str, samples: &[i16], rate: u32, expected_hz: f64) {
    let found = tone::tone_frames(samples, expected_hz, rate);
    println!("{phone} heard {expected_hz} Hz: {found:?}");
    assert!(
        found.share() >= MIN_TONE_SHARE,
        "{phone} heard the {expected_hz} Hz tone in {:.0} % of frames: {found:?}",
        found.share() * 100.0
    );
}
