//! SIP Outbound (RFC 5626) over TCP against the real binary, with sipp as
//! the phone. A call reaches an agent over the connection it registered
//! on, and closing that connection makes the agent unavailable. A
//! connection flood from one address is cut while another address still
//! registers.

use std::io::Read;
use std::net::TcpStream;
use std::time::{Duration, Instant};

use pbx_e2e::fixtures::AudioFixtures;
use pbx_e2e::pbx::{Agent, DID, DOMAIN, Pbx, PbxConfig};
use pbx_e2e::phones::{self, AgentPhone};
use pbx_e2e::sipp::{Sipp, SippRun, scenario_path};
use pbx_e2e::{ports, tools};

const TALK: Duration = Duration::from_secs(3);
const CDR_TIMEOUT: Duration = Duration::from_secs(10);
const REGISTRATION_TIMEOUT: Duration = Duration::from_secs(10);

fn two_agents() -> Vec<Agent> {
    ["1001", "1002"]
        .map(|id| Agent {
            id: id.to_owned(),
            password: format!("e2e-secret-{id}"),
        })
        .to_vec()
}

/// Starts a sipp phone that registers `agent` as an outbound flow over one
/// TCP connection, accepts the call that comes over it, and keeps the
/// connection for `hold`.
fn outbound_phone(pbx: &Pbx, work_dir: &std::path::Path, agent: &Agent, hold: Duration) -> SippRun {
    let instance = format!("00000000-0000-1000-8000-00000000{}", agent.id);
    Sipp::new(
        &format!("outbound-{}", agent.id),
        "agent_outbound_register.xml",
        work_dir,
    )
    .local("127.0.0.1", ports::free_port())
    .media("127.0.0.1", ports::free_sipp_media_port())
    .credentials(&agent.id, &agent.password)
    .key("agent", &agent.id)
    .key("domain", DOMAIN)
    .key("instance", &instance)
    .arg("-t")
    .arg("t1")
    .arg("-oocsf")
    .arg(scenario_path("agent_outbound_answer.xml"))
    .pause(hold)
    .remote(pbx.sip)
    .spawn()
}

/// Number of registered contacts of `agent` in `GET /api/agents`.
fn contacts_of(pbx: &Pbx, agent: &str) -> u64 {
    let agents = pbx.get("/api/agents").json();
    let listed = agents
        .as_array()
        .expect("agents array")
        .iter()
        .find(|listed| listed["id"] == agent)
        .cloned()
        .expect("agent listed");
    listed["contacts"].as_u64().expect("contacts count")
}

/// Waits until `agent` has `expected` contacts, or panics after `limit`.
fn wait_for_contacts(pbx: &Pbx, agent: &str, expected: u64, limit: Duration) {
    let deadline = Instant::now() + limit;
    loop {
        let contacts = contacts_of(pbx, agent);
        if contacts == expected {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "agent {agent} has {contacts} contacts, expected {expected}\n{}",
            pbx.logs()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn call_reaches_agent_over_its_flow() {
    tools::require(&tools::ALL);
    let config = PbxConfig {
        recording: false,
        ..PbxConfig::default()
    };
    let pbx = Pbx::start(&config);
    let work_dir = pbx.dir.path().to_path_buf();
    let _audio = AudioFixtures::generate(&work_dir);
    let agent = &config.agents[0];

    let phone = outbound_phone(&pbx, &work_dir, agent, Duration::from_secs(15));
    wait_for_contacts(&pbx, &agent.id, 1, REGISTRATION_TIMEOUT);
    let caller = phones::caller(&pbx, &work_dir, "caller_hangup.xml", "127.0.0.1", DID)
        .pause(TALK)
        .run();
    caller.assert_success();
    let phone = phone.wait();
    // The registering call checked Require: outbound, Flow-Timer and the
    // public GRUU of the 200, so a success covers those too.
    phone.assert_success();

    let record = pbx.wait_for_call(&caller.call_id().expect("caller Call-ID"), CDR_TIMEOUT);
    println!("call record: {record:#}");
    assert_eq!(record["disposition"], "answered");
    assert_eq!(record["agent"], agent.id.as_str());
    // The Contact host ends in .invalid and sipp listens on no UDP port
    // with -t t1, so the INVITE can only have come over the flow.
    let invites = phone
        .messages()
        .iter()
        .filter(|message| message.start_line().starts_with("INVITE "))
        .count();
    assert_eq!(invites, 1, "{}", phone.report());
}

#[test]
fn closed_flow_makes_agent_unavailable() {
    tools::require(&tools::ALL);
    let config = PbxConfig {
        agents: two_agents(),
        recording: false,
        ..PbxConfig::default()
    };
    let pbx = Pbx::start(&config);
    let work_dir = pbx.dir.path().to_path_buf();
    let _audio = AudioFixtures::generate(&work_dir);
    let (flow_agent, udp_agent) = (&config.agents[0], &config.agents[1]);

    let flow_phone = outbound_phone(&pbx, &work_dir, flow_agent, Duration::from_secs(30));
    wait_for_contacts(&pbx, &flow_agent.id, 1, REGISTRATION_TIMEOUT);
    let udp_phone = AgentPhone::new(udp_agent);
    let udp_run = udp_phone.answer(&work_dir, "agent_answer.xml", TALK);
    udp_phone.register(&pbx, &work_dir);

    // Killing sipp closes its TCP connection, which ends the flow.
    let flow_outcome = flow_phone.stop();
    wait_for_contacts(&pbx, &flow_agent.id, 0, REGISTRATION_TIMEOUT);
    assert!(
        pbx.wait_for_log(
            "binding removed with its connection",
            Duration::from_secs(5)
        ),
        "{}",
        pbx.logs()
    );
    let agents = pbx.get("/api/agents").json();
    let listed = agents
        .as_array()
        .expect("agents array")
        .iter()
        .find(|listed| listed["id"] == flow_agent.id.as_str())
        .cloned()
        .expect("agent listed");
    assert_ne!(listed["state"], "available", "{listed}");

    let caller = phones::caller(&pbx, &work_dir, "caller_hangup.xml", "127.0.0.1", DID)
        .pause(TALK)
        .run();
    caller.assert_success();
    udp_run.wait().assert_success();
    let record = pbx.wait_for_call(&caller.call_id().expect("caller Call-ID"), CDR_TIMEOUT);
    println!("call record: {record:#}");
    assert_eq!(record["disposition"], "answered");
    assert_eq!(record["agent"], udp_agent.id.as_str());
    assert!(
        flow_outcome
            .messages()
            .iter()
            .all(|message| !message.start_line().starts_with("INVITE ")),
        "the closed flow was offered a call\n{}",
        flow_outcome.report()
    );
}

/// True when the PBX closed `stream` (end of stream or reset) within
/// `limit`; false when it stays open and silent.
fn closed_within(stream: &mut TcpStream, limit: Duration) -> bool {
    stream.set_read_timeout(Some(limit)).expect("read timeout");
    let mut byte = [0u8; 1];
    match stream.read(&mut byte) {
        Ok(0) => true,
        Ok(_) => false,
        Err(error) => !matches!(
            error.kind(),
            std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
        ),
    }
}

#[test]
fn connection_flood_capped_other_source_registers() {
    tools::require(&tools::ALL);
    const PER_ADDRESS: usize = 5;
    const ATTEMPTS: usize = 60;
    // The trunk lies elsewhere, so 127.0.0.1 gets the per-address limits.
    let config = PbxConfig {
        recording: false,
        trunk_allow: vec!["192.0.2.0/24".to_owned()],
        sip_extra: format!(
            "max_connections_per_address = {PER_ADDRESS}\n\
             max_connection_attempts_per_address_per_sec = 2\n"
        ),
        ..PbxConfig::default()
    };
    let pbx = Pbx::start(&config);
    let work_dir = pbx.dir.path().to_path_buf();
    let agent = &config.agents[0];

    let mut flood = Vec::new();
    for _ in 0..ATTEMPTS {
        if let Ok(stream) = TcpStream::connect_timeout(&pbx.sip, Duration::from_secs(2)) {
            flood.push(stream);
        }
    }
    let mut open = 0;
    for stream in &mut flood {
        if !closed_within(stream, Duration::from_millis(100)) {
            open += 1;
        }
    }
    assert!(
        (1..=PER_ADDRESS).contains(&open),
        "{open} of {ATTEMPTS} flooding connections stayed open\n{}",
        pbx.logs()
    );
    assert!(
        pbx.wait_for_log(
            "too many new connections from one source",
            Duration::from_secs(5)
        ),
        "{}",
        pbx.logs()
    );

    // Meanwhile another address registers over TCP.
    let registration = Sipp::new("register-tcp", "agent_register.xml", &work_dir)
        .local("127.0.0.3", ports::free_port())
        .credentials(&agent.id, &agent.password)
        .key("agent", &agent.id)
        .key("domain", DOMAIN)
        .key("contact_port", &ports::free_port().to_string())
        .key("expires", "600")
        .arg("-t")
        .arg("t1")
        .remote(pbx.sip)
        .run();
    registration.assert_success();
    assert_eq!(contacts_of(&pbx, &agent.id), 1);
    // The PBX keeps serving HTTP meanwhile.
    assert_eq!(pbx.get("/health").status, 200);
    drop(flood);
}
