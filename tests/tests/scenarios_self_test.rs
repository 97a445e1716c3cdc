//! The sipp scenarios against each other and the stand-in peers in
//! `scenarios/peers/`, without the PBX. A failure here points at the
//! scenarios or the tools, not at the PBX.

use std::fs;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::Path;
use std::time::Duration;

use pbx_e2e::fixtures::AudioFixtures;
use pbx_e2e::ports;
use pbx_e2e::sipp::{Sipp, SippOutcome, scenario_path};
use pbx_e2e::tools;

const AGENT: &str = "1001";
const PASSWORD: &str = "right-password";

fn loopback(port: u16) -> SocketAddr {
    SocketAddr::from((Ipv4Addr::LOCALHOST, port))
}

/// Runs `client` against a stand-in registrar and returns both outcomes.
fn register(
    work_dir: &Path,
    client: &str,
    password: &str,
    expires: &str,
) -> (SippOutcome, SippOutcome) {
    let registrar_port = ports::free_udp_port();
    let registrar = Sipp::new("registrar", "peers/registrar.xml", work_dir)
        .local("127.0.0.1", registrar_port)
        .key("agent", AGENT)
        .key("password", PASSWORD)
        .key("expires", expires)
        .spawn();
    let client = Sipp::new("register", client, work_dir)
        .local("127.0.0.1", ports::free_udp_port())
        .credentials(AGENT, password)
        .key("agent", AGENT)
        .key("domain", "pbx.local")
        .key("contact_port", "5999")
        .key("expires", expires)
        .remote(loopback(registrar_port))
        .run();
    (client, registrar.wait())
}

#[test]
fn register_and_unregister_with_digest() {
    tools::require(&[tools::SIPP]);
    let dir = tempfile::tempdir().expect("temporary directory");

    for expires in ["600", "0"] {
        let (client, registrar) = register(dir.path(), "agent_register.xml", PASSWORD, expires);
        client.assert_success();
        registrar.assert_success();
        let authorization = client.messages().into_iter().filter(|m| !m.received).nth(1);
        let header = authorization
            .as_ref()
            .and_then(|m| m.header("Authorization"))
            .unwrap_or_default();
        assert!(
            header.starts_with("Digest username=\"1001\""),
            "Authorization: {header:?}"
        );
    }
}

#[test]
fn register_rejected_scenario_needs_rejection() {
    tools::require(&[tools::SIPP]);
    let dir = tempfile::tempdir().expect("temporary directory");

    let (wrong, _) = register(
        dir.path(),
        "agent_register_rejected.xml",
        "wrong-password",
        "600",
    );
    wrong.assert_success();
    assert_eq!(wrong.final_status(), Some(403));

    let (right, _) = register(dir.path(), "agent_register_rejected.xml", PASSWORD, "600");
    right.assert_failure();
}

/// Calls `agent_scenario` directly from `caller_scenario`, both streaming.
/// The directory holding the logs comes back with the outcomes.
fn direct_call(
    agent_scenario: &str,
    caller_scenario: &str,
) -> (SippOutcome, SippOutcome, tempfile::TempDir) {
    let dir = tempfile::tempdir().expect("temporary directory");
    let _audio = AudioFixtures::generate(dir.path());
    let agent_port = ports::free_udp_port();
    let agent = Sipp::new("agent", agent_scenario, dir.path())
        .local("127.0.0.1", agent_port)
        .media("127.0.0.1", ports::free_sipp_media_port())
        .pause(Duration::from_secs(2))
        .spawn();
    let caller = Sipp::new("caller", caller_scenario, dir.path())
        .local("127.0.0.1", ports::free_udp_port())
        .media("127.0.0.1", ports::free_sipp_media_port())
        .service("5000")
        .key("caller", "0612345678")
        .pause(Duration::from_secs(2))
        .remote(loopback(agent_port))
        .run();
    (caller, agent.wait(), dir)
}

#[test]
fn caller_hangs_up_direct_call() {
    tools::require(&tools::ALL);
    let (caller, agent, _dir) = direct_call("agent_answer.xml", "caller_hangup.xml");

    caller.assert_success();
    agent.assert_success();
    assert_eq!(caller.call_id(), agent.call_id());
}

#[test]
fn agent_hangs_up_direct_call() {
    tools::require(&tools::ALL);
    let (caller, agent, _dir) = direct_call("agent_answer_hangup.xml", "caller_wait_bye.xml");

    caller.assert_success();
    agent.assert_success();
    let bye = agent
        .messages()
        .into_iter()
        .find(|m| !m.received && m.start_line().starts_with("BYE "));
    assert!(bye.is_some(), "agent sent no BYE\n{}", agent.report());
}

#[test]
fn caller_cancels_while_ringing() {
    tools::require(&tools::ALL);
    let dir = tempfile::tempdir().expect("temporary directory");
    let _audio = AudioFixtures::generate(dir.path());
    let peer_port = ports::free_udp_port();
    let peer = Sipp::new("peer", "peers/ring_cancel.xml", dir.path())
        .local("127.0.0.1", peer_port)
        .spawn();

    let caller = Sipp::new("caller", "caller_cancel.xml", dir.path())
        .local("127.0.0.1", ports::free_udp_port())
        .media("127.0.0.1", ports::free_sipp_media_port())
        .service("5000")
        .key("caller", "0612345678")
        .remote(loopback(peer_port))
        .run();

    caller.assert_success();
    peer.wait().assert_success();
    assert_eq!(caller.final_status(), Some(487));
    let invite_via = caller
        .messages()
        .first()
        .and_then(|m| m.header("Via").map(str::to_owned));
    let cancel = caller
        .messages()
        .into_iter()
        .find(|m| m.start_line().starts_with("CANCEL "));
    let cancel_via = cancel.as_ref().and_then(|m| m.header("Via"));
    assert_eq!(
        cancel_via,
        invite_via.as_deref(),
        "CANCEL must reuse the INVITE's Via branch"
    );
    assert!(
        caller.elapsed >= Duration::from_secs(3),
        "cancelled after {:?}",
        caller.elapsed
    );
}

#[test]
fn caller_rejected_reports_status() {
    tools::require(&tools::ALL);
    let dir = tempfile::tempdir().expect("temporary directory");
    let _audio = AudioFixtures::generate(dir.path());
    let template =
        fs::read_to_string(scenario_path("peers/reject.xml")).expect("read peers/reject.xml");

    for status in [403_u16, 404, 408, 480, 486, 503] {
        let peer_file = dir.path().join(format!("reject-{status}.xml"));
        fs::write(
            &peer_file,
            template.replace("@STATUS@", &status.to_string()),
        )
        .expect("write peer");
        let peer_port = ports::free_udp_port();
        let peer = Sipp::with_scenario_file("peer", &peer_file, dir.path())
            .local("127.0.0.1", peer_port)
            .spawn();

        let caller = Sipp::new("caller", "caller_rejected.xml", dir.path())
            .local("127.0.0.1", ports::free_udp_port())
            .media("127.0.0.1", ports::free_sipp_media_port())
            .service("9999")
            .key("caller", "0612345678")
            .remote(loopback(peer_port))
            .run();

        caller.assert_success();
        peer.wait().assert_success();
        assert_eq!(caller.final_status(), Some(status));
    }
}
