//! The agent hangs up first: the PBX sends BYE to the caller and records the
//! agent as the side that ended the call.

use std::time::Duration;

use pbx_e2e::fixtures::AudioFixtures;
use pbx_e2e::pbx::{DID, Pbx, PbxConfig};
use pbx_e2e::phones::{self, AgentPhone};
use pbx_e2e::tools;

const TALK: Duration = Duration::from_secs(6);

#[test]
fn agent_hangup_ends_both_legs() {
    tools::require(&tools::ALL);
    let config = PbxConfig::default();
    let pbx = Pbx::start(&config);
    let work_dir = pbx.dir.path().to_path_buf();
    let _audio = AudioFixtures::generate(&work_dir);
    let phone = AgentPhone::new(&config.agents[0]);

    let agent_run = phone.answer(&work_dir, "agent_answer_hangup.xml", TALK);
    phone.register(&pbx, &work_dir);
    let caller = phones::caller(&pbx, &work_dir, "caller_wait_bye.xml", "127.0.0.1", DID).run();
    caller.assert_success();
    let agent = agent_run.wait();
    agent.assert_success();

    let caller_call_id = caller
        .call_id()
        .expect("Call-ID in the caller's message log");
    let record = pbx.wait_for_call(&caller_call_id, Duration::from_secs(10));
    println!("call record: {record:#}");

    assert_eq!(record["disposition"], "answered");
    assert_eq!(record["hangup_side"], "agent");
    assert_eq!(record["agent"], config.agents[0].id.as_str());
    assert_eq!(
        record["agent_call_id"],
        agent.call_id().expect("agent Call-ID").as_str()
    );
    let talk_seconds = record["talk_seconds"]
        .as_f64()
        .expect("talk_seconds is a number");
    assert!(
        (talk_seconds - TALK.as_secs_f64()).abs() < 1.0,
        "talk_seconds {talk_seconds} is not close to the agent's {TALK:?} before BYE"
    );
}
