//! The `pbx` binary under test: build, configure, start, query, stop.

use std::fmt::Write as _;
use std::fs;
use std::net::{Ipv4Addr, SocketAddr};
use std::ops::RangeInclusive;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::thread;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::{http, ports};

/// SIP domain: digest realm and AOR domain.
pub const DOMAIN: &str = "pbx.local";
/// DID routed to the test queue.
pub const DID: &str = "5000";
pub const QUEUE: &str = "support";
pub const TRUNK: &str = "e2e-trunk";
/// RTP ports given to the relay: two pairs per call, two calls at a time.
const RTP_PORT_COUNT: u16 = 16;
const HEALTH_TIMEOUT: Duration = Duration::from_secs(30);
/// Graceful stop: calls end, CDRs and events are written, and the engine
/// may wait up to 5 s for held feature-code responses.
const STOP_TIMEOUT: Duration = Duration::from_secs(20);
const HTTP_TIMEOUT: Duration = Duration::from_secs(5);
const POLL_INTERVAL: Duration = Duration::from_millis(100);

/// An agent with an explicit password.
#[derive(Clone, Debug)]
pub struct Agent {
    pub id: String,
    pub password: String,
}

/// What a test changes in the generated configuration.
#[derive(Clone, Debug)]
pub struct PbxConfig {
    pub agents: Vec<Agent>,
    /// Networks the trunk accepts without digest; 127.0.0.2 stays outside.
    pub trunk_allow: Vec<String>,
    pub ring_timeout_secs: u64,
    pub max_wait_secs: u64,
    pub recording: bool,
    /// Lines added to the `[sip]` table, such as `ws_listen = "..."`.
    pub sip_extra: String,
    /// Lines added to the `[recording]` table, such as `mixed_mono = true`.
    pub recording_extra: String,
    /// Lines added to the `[media]` table, such as `relay_processes = 2`.
    pub media_extra: String,
    /// Members of the test queue; every agent when None.
    pub queue_members: Option<Vec<String>>,
    /// Lines added to the test queue's table.
    pub queue_extra: String,
    /// TOML appended to the file, such as more queues.
    pub extra: String,
    /// `outbound` address of the test trunk, for calls to numbers.
    pub trunk_outbound: Option<String>,
    /// TOML appended to the test trunk's table, such as a
    /// `[trunks.register]` sub-table.
    pub trunk_extra: String,
    /// Seconds between OPTIONS probes of agents' contacts; 0 (the default
    /// here) sends none, because an answering sipp with `-aa` counts an
    /// answered probe as its one call and then ignores the INVITE.
    pub qualify_interval_secs: u32,
}

impl Default for PbxConfig {
    fn default() -> PbxConfig {
        PbxConfig {
            agents: vec![Agent {
                id: "1001".to_owned(),
                password: "e2e-secret-1001".to_owned(),
            }],
            trunk_allow: vec!["127.0.0.1/32".to_owned()],
            ring_timeout_secs: 5,
            max_wait_secs: 30,
            recording: true,
            sip_extra: String::new(),
            recording_extra: String::new(),
            media_extra: String::new(),
            queue_members: None,
            queue_extra: String::new(),
            extra: String::new(),
            trunk_outbound: None,
            trunk_extra: String::new(),
            qualify_interval_secs: 0,
        }
    }
}

impl PbxConfig {
    /// Renders the configuration file in the format of `configs/pbx.toml`.
    pub fn to_toml(
        &self,
        data_dir: &Path,
        sip: SocketAddr,
        http: SocketAddr,
        rtp: &RangeInclusive<u16>,
    ) -> String {
        let mut text = format!(
            "data_dir = {data_dir:?}\n\n\
             [sip]\nlisten = \"{sip}\"\nadvertised_address = \"127.0.0.1\"\ndomain = \"{DOMAIN}\"\n{}\n\
             [http]\nlisten = \"{http}\"\n\n\
             [media]\naddress = \"127.0.0.1\"\nadvertised_address = \"127.0.0.1\"\nrtp_ports = \"{}-{}\"\n{}\n\
             [registrar]\nmin_expires_secs = 60\nmax_expires_secs = 3600\ndefault_expires_secs = 600\nmax_contacts = 5\n\
             qualify_interval_secs = {}\n\n\
             [recording]\nenabled = {}\n{}",
            self.sip_extra,
            rtp.start(),
            rtp.end(),
            self.media_extra,
            self.qualify_interval_secs,
            self.recording,
            self.recording_extra,
        );
        for agent in &self.agents {
            let _ = write!(
                text,
                "\n[[agents]]\nid = \"{}\"\nname = \"E2E agent {}\"\npassword = \"{}\"\n",
                agent.id, agent.id, agent.password
            );
        }
        let allow: Vec<String> = self
            .trunk_allow
            .iter()
            .map(|network| format!("\"{network}\""))
            .collect();
        let members: Vec<String> = match &self.queue_members {
            Some(members) => members.clone(),
            None => self.agents.iter().map(|agent| agent.id.clone()).collect(),
        };
        let agents: Vec<String> = members.iter().map(|id| format!("\"{id}\"")).collect();
        let _ = write!(
            text,
            "\n[[trunks]]\nname = \"{TRUNK}\"\nallow = [{}]\n{}{}\n\
             [[queues]]\nname = \"{QUEUE}\"\nagents = [{}]\nring_timeout_secs = {}\nmax_wait_secs = {}\n\
             retry_delay_secs = 1\nwrap_up_secs = 0\n{}\n\
             [[dids]]\nnumber = \"{DID}\"\nqueue = \"{QUEUE}\"\n{}",
            allow.join(", "),
            self.trunk_outbound
                .as_ref()
                .map(|address| format!("outbound = \"{address}\"\n"))
                .unwrap_or_default(),
            self.trunk_extra,
            agents.join(", "),
            self.ring_timeout_secs,
            self.max_wait_secs,
            self.queue_extra,
            self.extra,
        );
        text
    }
}

/// A running PBX in its own temporary directory; killed by PID on drop, and
/// its output printed when the test is failing.
pub struct Pbx {
    child: Child,
    pub dir: tempfile::TempDir,
    pub data_dir: PathBuf,
    pub config_path: PathBuf,
    pub sip: SocketAddr,
    pub http: SocketAddr,
    pub rtp_ports: RangeInclusive<u16>,
    stdout_path: PathBuf,
    stderr_path: PathBuf,
    /// `Cookie` header value of a QA user's session, who may list every
    /// call and replay recordings.
    session: String,
    /// `Cookie` header value of the administrator's session.
    admin_session: String,
}

/// Password the harness gives the first administrator through
/// `PBX_ADMIN_PASSWORD`; the instance only listens on loopback.
const ADMIN_PASSWORD: &str = "e2e-admin-password";
const QA_USER: &str = "qa-e2e";
const QA_PASSWORD: &str = "e2e-qa-password";

impl Pbx {
    /// Writes the config, starts the binary and waits until `GET /health`
    /// returns 200.
    pub fn start(config: &PbxConfig) -> Pbx {
        let dir = tempfile::Builder::new()
            .prefix("pbx-e2e-")
            .tempdir()
            .expect("temporary directory");
        let data_dir = dir.path().join("data");
        let sip = SocketAddr::from((Ipv4Addr::LOCALHOST, ports::free_port()));
        let http = SocketAddr::from((Ipv4Addr::LOCALHOST, ports::free_port()));
        let rtp_ports = ports::free_udp_range(RTP_PORT_COUNT);
        let config_path = dir.path().join("pbx.toml");
        fs::write(
            &config_path,
            config.to_toml(&data_dir, sip, http, &rtp_ports),
        )
        .expect("write config");

        let stdout_path = dir.path().join("pbx-stdout.log");
        let stderr_path = dir.path().join("pbx-stderr.log");
        let child = spawn(
            &config_path,
            &data_dir,
            dir.path(),
            &stdout_path,
            &stderr_path,
        );

        let mut pbx = Pbx {
            child,
            dir,
            data_dir,
            config_path,
            sip,
            http,
            rtp_ports,
            stdout_path,
            stderr_path,
            session: String::new(),
            admin_session: String::new(),
        };
        pbx.wait_for_health();
        pbx.log_in_as_qa();
        pbx
    }

    /// Creates the QA user through the administrator and keeps its session.
    fn log_in_as_qa(&mut self) {
        let admin = self.log_in("admin", ADMIN_PASSWORD);
        self.admin_session = admin.clone();
        let user = serde_json::json!({"username": QA_USER, "password": QA_PASSWORD, "role": "qa"});
        let created = http::request(
            self.http,
            "POST",
            "/api/users",
            &[("Cookie", &admin)],
            Some(&user),
            HTTP_TIMEOUT,
        )
        .unwrap_or_else(|error| panic!("POST /api/users failed: {error}"));
        assert!(
            created.status == 201 || created.status == 409,
            "creating the QA user: {} {}",
            created.status,
            String::from_utf8_lossy(&created.body)
        );
        self.session = self.log_in(QA_USER, QA_PASSWORD);
    }

    /// Logs in and returns the `name=value` of the session cookie.
    fn log_in(&self, username: &str, password: &str) -> String {
        let body = serde_json::json!({"username": username, "password": password});
        let response = http::request(
            self.http,
            "POST",
            "/api/session",
            &[],
            Some(&body),
            HTTP_TIMEOUT,
        )
        .unwrap_or_else(|error| panic!("POST /api/session failed: {error}"));
        assert_eq!(
            response.status,
            200,
            "login as {username}: {}\n{}",
            String::from_utf8_lossy(&response.body),
            self.logs()
        );
        let cookie = response.header("Set-Cookie").expect("session cookie");
        cookie.split(';').next().unwrap_or_default().to_owned()
    }

    /// Kills the process without warning (SIGKILL, as a crash or power loss
    /// would) and starts it again on the same configuration and data.
    pub fn restart(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        self.start_again();
    }

    /// Stops the process as an operator does, with SIGTERM, and waits up to
    /// `STOP_TIMEOUT` for it to exit; kills it after that and fails.
    pub fn stop(&mut self) {
        let status = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .expect("run kill");
        assert!(status.success(), "kill -TERM failed: {status}");
        let deadline = Instant::now() + STOP_TIMEOUT;
        while Instant::now() < deadline {
            if let Ok(Some(status)) = self.child.try_wait() {
                assert!(
                    status.success(),
                    "pbx exited with {status}\n{}",
                    self.logs()
                );
                return;
            }
            thread::sleep(POLL_INTERVAL);
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        panic!(
            "pbx did not exit within {STOP_TIMEOUT:?} of SIGTERM\n{}",
            self.logs()
        );
    }

    /// Starts the binary again on the same configuration and data after
    /// [`Pbx::stop`] or a kill, and waits for `GET /health`.
    pub fn start_again(&mut self) {
        self.child = spawn(
            &self.config_path,
            &self.data_dir,
            self.dir.path(),
            &self.stdout_path,
            &self.stderr_path,
        );
        self.wait_for_health();
        self.log_in_as_qa();
    }

    fn wait_for_health(&mut self) {
        let deadline = Instant::now() + HEALTH_TIMEOUT;
        let mut last_error = String::new();
        while Instant::now() < deadline {
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!("pbx exited during startup with {status}\n{}", self.logs());
            }
            match http::get(self.http, "/health", HTTP_TIMEOUT) {
                Ok(response) if response.status == 200 => return,
                Ok(response) => last_error = format!("status {}", response.status),
                Err(error) => last_error = error.to_string(),
            }
            thread::sleep(POLL_INTERVAL);
        }
        panic!(
            "GET http://{}/health did not return 200 within {HEALTH_TIMEOUT:?} (last: {last_error})\n{}",
            self.http,
            self.logs()
        );
    }

    /// Call records from `GET /api/calls`, newest first. Accepts a bare array
    /// or an object with a `calls` array.
    pub fn calls(&self) -> Vec<Value> {
        let response = self.get("/api/calls");
        assert_eq!(
            response.status,
            200,
            "GET /api/calls: {}",
            String::from_utf8_lossy(&response.body)
        );
        match response.json() {
            Value::Array(calls) => calls,
            Value::Object(mut object) => match object.remove("calls") {
                Some(Value::Array(calls)) => calls,
                other => panic!("GET /api/calls: expected a `calls` array, got {other:?}"),
            },
            other => panic!("GET /api/calls: expected an array, got {other}"),
        }
    }

    /// Waits up to `timeout` for the call record whose `caller_call_id` is
    /// `call_id` in `GET /api/calls`.
    pub fn wait_for_call(&self, call_id: &str, timeout: Duration) -> Value {
        let deadline = Instant::now() + timeout;
        loop {
            let found = self
                .calls()
                .into_iter()
                .find(|call| call["caller_call_id"] == call_id);
            if let Some(call) = found {
                return call;
            }
            assert!(
                Instant::now() < deadline,
                "no call record with caller_call_id {call_id} within {timeout:?}; records: {:?}\n{}",
                self.calls(),
                self.logs()
            );
            thread::sleep(POLL_INTERVAL);
        }
    }

    /// Records in `<data_dir>/cdr.jsonl`, oldest first.
    pub fn cdr_lines(&self) -> Vec<Value> {
        let path = self.data_dir.join("cdr.jsonl");
        let text = fs::read_to_string(&path)
            .unwrap_or_else(|error| panic!("failed to read {}: {error}", path.display()));
        text.lines()
            .filter(|line| !line.trim().is_empty())
            .map(|line| {
                serde_json::from_str(line)
                    .unwrap_or_else(|error| panic!("invalid CDR line {line:?}: {error}"))
            })
            .collect()
    }

    /// A request on the HTTP API as the administrator; panics on a
    /// transport error.
    pub fn admin_request(
        &self,
        method: &str,
        path: &str,
        body: Option<&Value>,
    ) -> http::HttpResponse {
        http::request(
            self.http,
            method,
            path,
            &[("Cookie", &self.admin_session)],
            body,
            HTTP_TIMEOUT,
        )
        .unwrap_or_else(|error| panic!("{method} {path} failed: {error}\n{}", self.logs()))
    }

    /// GET on the HTTP API as the QA user; panics on a transport error.
    pub fn get(&self, path: &str) -> http::HttpResponse {
        http::request(
            self.http,
            "GET",
            path,
            &[("Cookie", &self.session)],
            None,
            HTTP_TIMEOUT,
        )
        .unwrap_or_else(|error| panic!("GET {path} failed: {error}\n{}", self.logs()))
    }

    /// Returns the exit status when the process has exited, None while it
    /// still runs.
    pub fn exit_status(&mut self) -> Option<std::process::ExitStatus> {
        self.child.try_wait().ok().flatten()
    }

    /// Process id of the running binary, for signals such as SIGHUP.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Waits up to `timeout` for `needle` to appear in the PBX's output. A
    /// line logged after the change it reports (a reload's summary, say)
    /// can come a moment after the API already shows that change.
    pub fn wait_for_log(&self, needle: &str, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        loop {
            if self.logs().contains(needle) {
                return true;
            }
            if Instant::now() >= deadline {
                return false;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Returns the config and the PBX's standard output and error so far.
    pub fn logs(&self) -> String {
        let read =
            |path: &Path| fs::read_to_string(path).unwrap_or_else(|error| format!("({error})"));
        format!(
            "---- pbx config ({}) ----\n{}\n---- pbx stdout ----\n{}\n---- pbx stderr ----\n{}",
            self.config_path.display(),
            read(&self.config_path),
            read(&self.stdout_path),
            read(&self.stderr_path)
        )
    }
}

impl Drop for Pbx {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if thread::panicking() {
            eprintln!("{}", self.logs());
        }
    }
}

/// Path of the `pbx` binary, built once per test process.
///
/// `PBX_E2E_BINARY` names a prebuilt binary. Otherwise `cargo build -p pbx`
/// runs with the same cargo, target directory and profile as this test
/// binary, which lives in `<target>/<profile>/deps/`.
pub fn binary() -> &'static Path {
    static BINARY: OnceLock<PathBuf> = OnceLock::new();
    BINARY.get_or_init(build_binary)
}

fn build_binary() -> PathBuf {
    if let Some(path) = std::env::var_os("PBX_E2E_BINARY") {
        return PathBuf::from(path);
    }
    let test_binary = std::env::current_exe().expect("path of the test binary");
    let profile_dir = test_binary
        .parent()
        .and_then(Path::parent)
        .unwrap_or_else(|| {
            panic!(
                "test binary {} is not in <target>/<profile>/deps",
                test_binary.display()
            )
        });
    let target_dir = profile_dir.parent().unwrap_or(profile_dir);
    let workspace = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());

    let mut command = Command::new(cargo);
    command.args(["build", "-p", "pbx", "--bin", "pbx", "--manifest-path"]);
    command
        .arg(workspace.join("Cargo.toml"))
        .arg("--target-dir")
        .arg(target_dir);
    if profile_dir
        .file_name()
        .is_some_and(|name| name == "release")
    {
        command.arg("--release");
    }
    let status = command
        .status()
        .unwrap_or_else(|error| panic!("failed to run {command:?}: {error}"));
    assert!(status.success(), "{command:?} failed with {status}");

    let binary = profile_dir.join("pbx");
    assert!(
        binary.is_file(),
        "{} missing after {command:?}",
        binary.display()
    );
    binary
}

/// Starts the binary; output is appended so a restart keeps earlier logs.
fn spawn(config: &Path, data_dir: &Path, work_dir: &Path, stdout: &Path, stderr: &Path) -> Child {
    let binary = binary();
    Command::new(binary)
        .arg("--config")
        .arg(config)
        .arg("--data-dir")
        .arg(data_dir)
        .env("PBX_LOG", "debug")
        .env("PBX_ADMIN_PASSWORD", ADMIN_PASSWORD)
        .current_dir(work_dir)
        .stdin(Stdio::null())
        .stdout(append(stdout))
        .stderr(append(stderr))
        .spawn()
        .unwrap_or_else(|error| panic!("failed to start {}: {error}", binary.display()))
}

fn append(path: &Path) -> fs::File {
    fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .unwrap_or_else(|error| panic!("cannot open {}: {error}", path.display()))
}
