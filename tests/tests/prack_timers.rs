//! A trunk caller that requires 100rel and runs a session timer, and an
//! agent phone that sends its early media reliably: both legs PRACK and
//! negotiate their session timers on their own.

use std::time::Duration;

use pbx_e2e::fixtures::AudioFixtures;
use pbx_e2e::pbx::{DID, Pbx, PbxConfig};
use pbx_e2e::phones::{self, AgentPhone};
use pbx_e2e::tools;

#[test]
fn reliable_early_media_and_session_refresh() {
    tools::require(&tools::ALL);
    let config = PbxConfig::default();
    let pbx = Pbx::start(&config);
    let work_dir = pbx.dir.path().to_path_buf();
    let _audio = AudioFixtures::generate(&work_dir);
    let phone = AgentPhone::new(&config.agents[0]);
    phone.register(&pbx, &work_dir);

    let agent_run = phone.answer(
        &work_dir,
        "agent_reliable_answer.xml",
        Duration::from_millis(500),
    );
    let caller = phones::caller(&pbx, &work_dir, "caller_100rel_timer.xml", "127.0.0.1", DID)
        .pause(Duration::from_secs(1))
        .run();
    caller.assert_success();
    let agent = agent_run.wait();
    agent.assert_success();

    // The PBX responded to the caller's refresh on the caller's leg and
    // did not relay it to the agent.
    let agent_updates = agent
        .messages()
        .iter()
        .filter(|message| message.received && message.start_line().starts_with("UPDATE "))
        .count();
    assert_eq!(agent_updates, 0);
    let early = caller
        .messages()
        .into_iter()
        .find(|message| message.received && message.status() == Some(183))
        .expect("caller got a 183");
    assert_eq!(early.header("Require"), Some("100rel"));

    let record = pbx.wait_for_call(
        &caller.call_id().expect("caller Call-ID"),
        Duration::from_secs(10),
    );
    println!("call record: {record:#}");
    assert_eq!(record["disposition"], "answered");
    assert_eq!(record["hangup_side"], "caller");
    assert_eq!(record["agent"], config.agents[0].id.as_str());
}
