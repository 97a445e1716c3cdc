//! SIPVicious (the PyPI package `sipvicious`) attacks the PBX on loopback:
//! a scan with svmap, extension enumeration with svwar and password
//! guessing with svcrack. After each attack the process still runs, responds
//! 200 to OPTIONS and completes a queue call.

use std::net::{SocketAddr, UdpSocket};
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use pbx_e2e::fixtures::AudioFixtures;
use pbx_e2e::pbx::{Agent, DID, DOMAIN, Pbx, PbxConfig};
use pbx_e2e::phones::{self, AgentPhone};
use pbx_e2e::sipp::{Sipp, SippOutcome};
use pbx_e2e::{ports, tools};

/// Wall-clock limit of one svmap or svwar run, far above the second or two
/// they take against loopback.
const SCAN_LIMIT: Duration = Duration::from_secs(40);
/// svcrack 0.3.8 never stops on its own once the source is locked out: it
/// resends an unauthenticated REGISTER for every 403 it gets. This limit
/// ends it.
const CRACK_LIMIT: Duration = Duration::from_secs(10);
const OPTIONS_TIMEOUT: Duration = Duration::from_secs(5);
const CALL_TIMEOUT: Duration = Duration::from_secs(10);
/// Failed REGISTERs from one address that lock it out (`MAX_FAILURES` in the
/// registrar).
const MAX_FAILURES: usize = 10;
/// Guesses for svcrack, none of them the agent's password.
const WORDLIST: &[&str] = &[
    "1001", "1234", "12345", "0000", "1111", "password", "secret", "admin", "qwerty", "letmein",
    "welcome", "changeme", "sip", "voip", "pbx",
];
/// The agent's phone after svcrack locked out 127.0.0.1.
const OTHER_SOURCE: &str = "127.0.0.2";

#[test]
fn sipvicious_attacks_leave_pbx_serving() {
    tools::require(&tools::ALL);
    require_sipvicious();
    let config = PbxConfig {
        agents: vec![agent("1001"), agent("1002")],
        recording: false,
        ..PbxConfig::default()
    };
    let mut pbx = Pbx::start(&config);
    let work_dir = pbx.dir.path().to_path_buf();
    let _audio = AudioFixtures::generate(&work_dir);

    scan_finds_no_banner(&pbx, &work_dir);
    assert_still_serving(&mut pbx, &config.agents[0], "127.0.0.1");

    for method in ["REGISTER", "INVITE", "OPTIONS"] {
        enumeration_finds_nothing(&pbx, &work_dir, method);
    }
    assert_still_serving(&mut pbx, &config.agents[0], "127.0.0.1");

    crack_is_locked_out(&pbx, &work_dir, &config.agents[0]);
    assert_still_serving(&mut pbx, &config.agents[0], OTHER_SOURCE);
}

fn agent(id: &str) -> Agent {
    Agent {
        id: id.to_owned(),
        password: format!("e2e-secret-{id}"),
    }
}

/// svmap finds a SIP device but no product name, and the PBX's own OPTIONS
/// response carries neither `Server` nor `User-Agent`.
fn scan_finds_no_banner(pbx: &Pbx, work_dir: &Path) {
    let output = sipvicious(
        "sipvicious_svmap",
        &["-p", &pbx.sip.port().to_string(), "127.0.0.1"],
        SCAN_LIMIT,
        work_dir,
    );
    let device = format!("{} ", pbx.sip);
    let row = output
        .lines()
        .find(|line| line.contains(&device))
        .unwrap_or_else(|| panic!("svmap did not list {}:\n{output}", pbx.sip));
    println!("svmap: {row}");
    assert!(
        row.contains("| unknown"),
        "svmap found a User-Agent in: {row}"
    );

    let response = options(pbx.sip);
    for header in ["server:", "user-agent:"] {
        assert!(
            !response.to_ascii_lowercase().contains(header),
            "OPTIONS response carries {header}\n{response}"
        );
    }
}

/// svwar over 1000 to 1010 with `method` lists no extension, because agents
/// 1001 and 1002 get the same response as the numbers that are not agents.
fn enumeration_finds_nothing(pbx: &Pbx, work_dir: &Path, method: &str) {
    let output = sipvicious(
        "sipvicious_svwar",
        &[
            "-p",
            &pbx.sip.port().to_string(),
            "-e",
            "1000-1010",
            "-m",
            method,
            "127.0.0.1",
        ],
        SCAN_LIMIT,
        work_dir,
    );
    println!("svwar -m {method}:\n{output}");
    for extension in ["1001", "1002"] {
        assert!(
            !output.contains(&format!("| {extension}")),
            "svwar -m {method} listed extension {extension}:\n{output}"
        );
    }
    // svwar compares status lines only, so check the challenge too: its
    // header set must not differ between an agent and a made-up number.
    if method == "REGISTER" {
        let known = challenge_headers(pbx.sip, "1001");
        let unknown = challenge_headers(pbx.sip, "1009");
        assert_eq!(known, unknown, "REGISTER challenge for 1001 and 1009");
    }
    // A REGISTER scan stops at once because an invented extension is
    // challenged like a real one. The other methods end with "found
    // nothing".
    let stopped = output.contains("authentication request for an unknown extension");
    assert!(
        stopped || output.contains("found nothing"),
        "svwar -m {method} ended otherwise:\n{output}"
    );
}

/// svcrack guesses the agent's password from a list without it: the PBX
/// locks 127.0.0.1 out after `MAX_FAILURES` rejected REGISTERs, so the
/// guesses after that are rejected before any digest check and nothing is
/// cracked.
fn crack_is_locked_out(pbx: &Pbx, work_dir: &Path, agent: &Agent) {
    let wordlist = work_dir.join("wordlist.txt");
    std::fs::write(&wordlist, WORDLIST.join("\n") + "\n").expect("write wordlist");
    let wordlist = wordlist.to_string_lossy().into_owned();
    let output = sipvicious(
        "sipvicious_svcrack",
        &[
            "-vv",
            "-p",
            &pbx.sip.port().to_string(),
            "-u",
            &agent.id,
            "-d",
            &wordlist,
            "127.0.0.1",
        ],
        CRACK_LIMIT,
        work_dir,
    );
    let tail: Vec<&str> = output.lines().rev().take(5).collect();
    println!("svcrack, last lines: {tail:?}");
    assert!(
        !output.contains(&agent.password),
        "svcrack printed the password:\n{output}"
    );
    assert!(
        !output.contains("| Password"),
        "svcrack reported a password:\n{output}"
    );

    let logs = pbx.logs();
    let rejected = logs.matches("registration rejected").count();
    assert!(
        logs.contains("source locked out source=127.0.0.1"),
        "127.0.0.1 was not locked out after {rejected} rejected REGISTERs\n{logs}"
    );
    assert_eq!(
        rejected,
        MAX_FAILURES,
        "digest checks before the lockout (the wordlist has {} words)",
        WORDLIST.len()
    );
    assert!(
        output.contains("403 Too Many Failed Attempts"),
        "svcrack was not refused with the lockout response:\n{output}"
    );
}

/// Checks that the process runs, responds 200 to OPTIONS and connects a
/// caller from the trunk to `agent`, whose phone registers from `phone_ip`.
fn assert_still_serving(pbx: &mut Pbx, agent: &Agent, phone_ip: &str) {
    if let Some(status) = pbx.exit_status() {
        panic!("pbx exited with {status}\n{}", pbx.logs());
    }
    let response = options(pbx.sip);
    assert!(
        response.starts_with("SIP/2.0 200 "),
        "OPTIONS response:\n{response}"
    );

    let work_dir = pbx.dir.path().to_path_buf();
    let phone = AgentPhone::new(agent);
    let agent_run = Sipp::new(
        &format!("agent-{}", agent.id),
        "agent_answer.xml",
        &work_dir,
    )
    .local(phone_ip, phone.sip_port)
    .media(phone_ip, phone.media_port)
    .pause(Duration::from_secs(1))
    .arg("-aa")
    .spawn();
    register(pbx, &work_dir, &phone, phone_ip, 600).assert_success();
    let caller = phones::caller(pbx, &work_dir, "caller_hangup.xml", "127.0.0.1", DID)
        .pause(Duration::from_secs(1))
        .run();
    caller.assert_success();
    agent_run.wait().assert_success();
    let record = pbx.wait_for_call(&caller.call_id().expect("caller Call-ID"), CALL_TIMEOUT);
    assert_eq!(record["disposition"], "answered");
    assert_eq!(record["agent"], agent.id.as_str());

    // The next check starts a phone on new ports, so this binding goes and
    // cannot be rung in its place.
    register(pbx, &work_dir, &phone, phone_ip, 0).assert_success();
}

/// REGISTERs `phone`'s Contact at `phone_ip` from that address.
fn register(
    pbx: &Pbx,
    work_dir: &Path,
    phone: &AgentPhone,
    phone_ip: &str,
    expires: u32,
) -> SippOutcome {
    Sipp::new(
        &format!("register-{}-{phone_ip}-{expires}", phone.agent.id),
        "agent_register.xml",
        work_dir,
    )
    .local(phone_ip, ports::free_udp_port())
    .credentials(&phone.agent.id, &phone.agent.password)
    .key("agent", &phone.agent.id)
    .key("domain", DOMAIN)
    .key("contact_port", &phone.sip_port.to_string())
    .key("expires", &expires.to_string())
    .remote(pbx.sip)
    .run()
}

/// Returns the status line and header names of the response to a REGISTER
/// without credentials for `user`.
fn challenge_headers(pbx: SocketAddr, user: &str) -> Vec<String> {
    let response = request(pbx, "REGISTER", &format!("sip:{DOMAIN}"), user);
    let mut lines = response.lines();
    let status = lines.next().unwrap_or_default().to_owned();
    assert!(
        status.starts_with("SIP/2.0 401 "),
        "REGISTER for {user} without credentials:\n{response}"
    );
    let names = lines
        .take_while(|line| !line.is_empty())
        .filter_map(|line| line.split(':').next())
        .map(str::to_ascii_lowercase);
    std::iter::once(status).chain(names).collect()
}

/// Sends one OPTIONS from 127.0.0.1 and returns the response as text.
fn options(pbx: SocketAddr) -> String {
    request(pbx, "OPTIONS", &format!("sip:{pbx}"), "probe")
}

/// Sends one `method` request without credentials, From and To `user`, from
/// 127.0.0.1 and returns the response as text.
fn request(pbx: SocketAddr, method: &str, uri: &str, user: &str) -> String {
    let socket = UdpSocket::bind("127.0.0.1:0").expect("bind UDP socket");
    socket
        .set_read_timeout(Some(OPTIONS_TIMEOUT))
        .expect("set read timeout");
    let local = socket.local_addr().expect("local address");
    let request = format!(
        "{method} {uri} SIP/2.0\r\n\
         Via: SIP/2.0/UDP {local};branch=z9hG4bK-sv-{port};rport\r\n\
         Max-Forwards: 70\r\n\
         From: <sip:{user}@{DOMAIN}>;tag=sv{port}\r\n\
         To: <sip:{user}@{DOMAIN}>\r\n\
         Call-ID: sv-{port}@127.0.0.1\r\n\
         CSeq: 1 {method}\r\n\
         Contact: <sip:{user}@{local}>\r\n\
         Content-Length: 0\r\n\r\n",
        port = local.port()
    );
    socket
        .send_to(request.as_bytes(), pbx)
        .expect("send request");
    let mut buffer = [0u8; 4096];
    let (length, _) = socket
        .recv_from(&mut buffer)
        .unwrap_or_else(|error| panic!("no response to {method} from {pbx}: {error}"));
    String::from_utf8_lossy(&buffer[..length]).into_owned()
}

/// Runs a SIPVicious tool under `timeout` and returns its standard output
/// and error. HOME points at `work_dir` because the tools save each session
/// under `~/.sipvicious`.
fn sipvicious(program: &str, args: &[&str], limit: Duration, work_dir: &Path) -> String {
    let mut command = Command::new("timeout");
    command
        .arg("--kill-after=5")
        .arg(limit.as_secs().to_string())
        .arg(program)
        .arg("-P")
        .arg(ports::free_udp_port().to_string())
        .args(args)
        .env("HOME", work_dir)
        .current_dir(work_dir);
    let output = command
        .output()
        .unwrap_or_else(|error| panic!("failed to run {command:?}: {error}"));
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    // SIPVicious 0.3.8 exits with codes of its own, such as 40 after svwar
    // found extensions. Only a crash or the time limit fails here, and the
    // callers judge the output. `timeout` exits with 124 when the limit
    // ended the tool and 137 when it had to kill it.
    assert!(
        !text.contains("Traceback"),
        "{program} crashed with {}:\n{text}",
        output.status
    );
    let timed_out = matches!(output.status.code(), Some(124 | 137));
    assert!(
        !timed_out || program == "sipvicious_svcrack",
        "{program} did not end within {limit:?}:\n{text}"
    );
    text
}

/// Fails, naming the install command, when the SIPVicious tools are missing.
fn require_sipvicious() {
    let found = Command::new("sipvicious_svmap")
        .arg("--version")
        .output()
        .is_ok();
    assert!(
        found,
        "sipvicious_svmap not found; install SIPVicious with `pip install sipvicious`, \
         or run scripts/test, which installs it"
    );
}
