//! Agent registration with digest authentication: a wrong password is
//! rejected and leaves the agent unreachable; the right one registers and
//! unregisters.

use std::time::Duration;

use pbx_e2e::fixtures::AudioFixtures;
use pbx_e2e::pbx::{DID, Pbx, PbxConfig};
use pbx_e2e::phones::{self, AgentPhone};
use pbx_e2e::tools;

const MAX_WAIT_SECS: u64 = 3;

#[test]
fn wrong_password_rejected_and_not_registered() {
    tools::require(&tools::ALL);
    let config = PbxConfig {
        max_wait_secs: MAX_WAIT_SECS,
        ..PbxConfig::default()
    };
    let pbx = Pbx::start(&config);
    let work_dir = pbx.dir.path().to_path_buf();
    let _audio = AudioFixtures::generate(&work_dir);
    let phone = AgentPhone::new(&config.agents[0]);

    // The phone would answer, so a call reaching it would show up as answered.
    let agent_run = phone.answer(&work_dir, "agent_answer.xml", Duration::from_secs(1));
    let registration = phone.register_with(
        &pbx,
        &work_dir,
        "agent_register_rejected.xml",
        "not-the-password",
        600,
    );
    registration.assert_success();
    println!(
        "registration rejected with {:?}",
        registration.final_status()
    );

    let (run, status) = phones::rejected_call(&pbx, &work_dir, "127.0.0.1", DID);
    let agent = agent_run.stop();
    assert!(
        agent.messages().is_empty(),
        "the unregistered agent was called\n{}",
        agent.report()
    );

    let record = pbx.wait_for_call(
        &run.call_id().expect("caller Call-ID"),
        Duration::from_secs(10),
    );
    println!("call record: {record:#}");
    assert_eq!(record["disposition"], "no_agent");
    assert_eq!(record["sip_status"], status);
    assert!(record["agent"].is_null(), "agent: {}", record["agent"]);
}

#[test]
fn register_then_unregister() {
    tools::require(&tools::ALL);
    let config = PbxConfig {
        max_wait_secs: MAX_WAIT_SECS,
        ..PbxConfig::default()
    };
    let pbx = Pbx::start(&config);
    let work_dir = pbx.dir.path().to_path_buf();
    let phone = AgentPhone::new(&config.agents[0]);

    phone.register(&pbx, &work_dir);
    phone.unregister(&pbx, &work_dir).assert_success();

    // With the binding gone the call must not reach the agent.
    let (_run, status) = phones::rejected_call(&pbx, &work_dir, "127.0.0.1", DID);
    assert!((400..700).contains(&status), "status {status}");
}

#[test]
fn registration_survives_a_crash() {
    tools::require(&tools::ALL);
    let config = PbxConfig::default();
    let mut pbx = Pbx::start(&config);
    let work_dir = pbx.dir.path().to_path_buf();
    let _audio = AudioFixtures::generate(&work_dir);
    let phone = AgentPhone::new(&config.agents[0]);
    phone.register(&pbx, &work_dir);
    // Bindings are committed in batches every 250 ms (docs/architecture.md),
    // so the kill comes after one batch has surely been written.
    std::thread::sleep(Duration::from_secs(1));

    // SIGKILL: nothing is flushed at exit, so only what was stored when the
    // agent registered can bring the binding back.
    pbx.restart();
    assert!(
        pbx.wait_for_log("restored stored registrations", Duration::from_secs(10)),
        "no registrations restored\n{}",
        pbx.logs()
    );

    let agent_run = phone.answer(&work_dir, "agent_answer.xml", Duration::from_secs(1));
    let caller = phones::caller(&pbx, &work_dir, "caller_hangup.xml", "127.0.0.1", DID)
        .pause(Duration::from_secs(1))
        .run();
    caller.assert_success();
    agent_run.wait().assert_success();
    let record = pbx.wait_for_call(
        &caller.call_id().expect("caller Call-ID"),
        Duration::from_secs(10),
    );
    assert_eq!(record["disposition"], "answered");
    assert_eq!(record["agent"], config.agents[0].id.as_str());
}
