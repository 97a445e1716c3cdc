//! Live agent and queue state over the API, and a supervisor pausing an
//! agent so the queue stops offering it calls.

use std::time::Duration;

use pbx_e2e::fixtures::AudioFixtures;
use pbx_e2e::pbx::{DID, Pbx, PbxConfig};
use pbx_e2e::phones::{self, AgentPhone};
use pbx_e2e::tools;

#[test]
fn paused_agent_gets_no_calls() {
    tools::require(&tools::ALL);
    let config = PbxConfig {
        max_wait_secs: 3,
        ..PbxConfig::default()
    };
    let pbx = Pbx::start(&config);
    let work_dir = pbx.dir.path().to_path_buf();
    let _audio = AudioFixtures::generate(&work_dir);
    let agent_id = config.agents[0].id.as_str();
    let phone = AgentPhone::new(&config.agents[0]);
    phone.register(&pbx, &work_dir);

    let agents = pbx.get("/api/agents").json();
    let listed = agents
        .as_array()
        .expect("agents array")
        .iter()
        .find(|agent| agent["id"] == agent_id)
        .cloned()
        .expect("registered agent listed");
    assert_eq!(listed["state"], "available", "{listed}");
    assert_eq!(listed["contacts"], 1, "{listed}");
    let queues = pbx.get("/api/queues").json();
    assert_eq!(queues[0]["available_agents"], 1, "{queues}");
    let metrics = pbx.get("/metrics");
    let text = String::from_utf8_lossy(&metrics.body);
    assert_eq!(metrics.status, 200, "{text}");
    assert!(text.contains("pbx_registered_contacts 1\n"), "{text}");
    assert!(
        text.contains("pbx_agents{state=\"available\"} 1\n"),
        "{text}"
    );
    assert!(
        text.contains("pbx_sip_requests_received_total{method=\"REGISTER\"}"),
        "{text}"
    );

    let pause = serde_json::json!({ "state": "not_ready", "reason": "break" });
    let reply = pbx.admin_request(
        "PUT",
        &format!("/api/agents/{agent_id}/state"),
        Some(&pause),
    );
    assert_eq!(
        reply.status,
        204,
        "{}",
        String::from_utf8_lossy(&reply.body)
    );
    let agents = pbx.get("/api/agents").json();
    let paused = agents
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["id"] == agent_id)
        .cloned()
        .unwrap();
    assert_eq!(paused["state"], "not_ready");
    assert_eq!(paused["not_ready_reason"], "break");

    // The phone would answer, so an offer would show as an answered call.
    let agent_run = phone.answer(&work_dir, "agent_answer.xml", Duration::from_secs(1));
    let (run, status) = phones::rejected_call(&pbx, &work_dir, "127.0.0.1", DID);
    let agent = agent_run.stop();
    assert!(
        agent.messages().is_empty(),
        "the paused agent was offered the call\n{}",
        agent.report()
    );
    assert_eq!(status, 480);
    let record = pbx.wait_for_call(
        &run.call_id().expect("caller Call-ID"),
        Duration::from_secs(10),
    );
    assert_eq!(record["disposition"], "no_agent");
}
