//! An agent created through the administration API takes a queued call at
//! once, with the password and queue it was given. It is still there after
//! a restart, because the change lives in the database, not in the file.

use std::time::Duration;

use pbx_e2e::fixtures::AudioFixtures;
use pbx_e2e::pbx::{Agent, DID, Pbx, PbxConfig, QUEUE};
use pbx_e2e::phones::{self, AgentPhone};
use pbx_e2e::tools;
use serde_json::json;

const TALK: Duration = Duration::from_secs(3);
const CDR_TIMEOUT: Duration = Duration::from_secs(10);

#[test]
fn api_agent_takes_call_and_survives_restart() {
    tools::require(&tools::ALL);
    let config = PbxConfig::default();
    let mut pbx = Pbx::start(&config);
    let work_dir = pbx.dir.path().to_path_buf();
    let _audio = AudioFixtures::generate(&work_dir);
    let file_before = std::fs::read_to_string(&pbx.config_path).expect("read config");

    let added = Agent {
        id: "1002".to_owned(),
        password: "e2e-secret-1002".to_owned(),
    };
    let body = json!({
        "id": added.id, "name": "Added by API", "password": added.password,
        "skills": ["language=es:3"], "queues": [QUEUE],
    });
    let reply = pbx.admin_request("POST", "/api/admin/agents", Some(&body));
    assert_eq!(
        reply.status,
        201,
        "{}",
        String::from_utf8_lossy(&reply.body)
    );

    // Agent 1001 registers no phone, so only the new agent can answer.
    let phone = AgentPhone::new(&added);
    let agent_run = phone.answer(&work_dir, "agent_answer.xml", TALK);
    phone.register(&pbx, &work_dir);
    let caller = phones::caller(&pbx, &work_dir, "caller_hangup.xml", "127.0.0.1", DID)
        .pause(TALK)
        .run();
    caller.assert_success();
    agent_run.wait().assert_success();
    let call_id = caller.call_id().expect("caller Call-ID");
    let record = pbx.wait_for_call(&call_id, CDR_TIMEOUT);
    assert_eq!(record["disposition"], "answered", "{record}");
    assert_eq!(record["agent"], added.id.as_str(), "{record}");

    pbx.restart();
    let file_after = std::fs::read_to_string(&pbx.config_path).expect("read config");
    assert_eq!(file_before, file_after, "the PBX never writes the file");
    let stored = pbx.admin_request("GET", "/api/admin/agents/1002", None);
    assert_eq!(
        stored.status,
        200,
        "{}",
        String::from_utf8_lossy(&stored.body)
    );
    let stored = stored.json();
    assert_eq!(stored["source"], "administration", "{stored}");
    assert_eq!(stored["queues"], json!([QUEUE]), "{stored}");
    assert_eq!(stored["skills"], json!(["language=es:3"]), "{stored}");
    let live = pbx.get("/api/agents").json();
    let engine_agent = live
        .as_array()
        .expect("agents array")
        .iter()
        .find(|agent| agent["id"] == "1002")
        .cloned()
        .unwrap_or_else(|| panic!("the engine lost agent 1002 at restart: {live}"));
    assert_eq!(engine_agent["queues"], json!([QUEUE]), "{engine_agent}");
    assert_eq!(engine_agent["skills"]["language=es"], 3, "{engine_agent}");
}
