//! Configuration reload with a call in progress: SIGHUP applies a new
//! agent, queue and DID while a connected call keeps talking, a setting
//! bound at start is reported as needing a restart, and a broken file sent
//! through the API is refused without changing anything.

use std::fs;
use std::process::Command;
use std::thread;
use std::time::{Duration, Instant};

use pbx_e2e::fixtures::AudioFixtures;
use pbx_e2e::pbx::{DID, Pbx, PbxConfig, QUEUE};
use pbx_e2e::phones::{self, AgentPhone};
use pbx_e2e::tools;
use serde_json::Value;

const TALK: Duration = Duration::from_secs(8);
const WAIT: Duration = Duration::from_secs(10);

/// Polls `GET path` until `check` accepts the JSON body; panics after `WAIT`.
fn wait_for(pbx: &Pbx, path: &str, what: &str, check: impl Fn(&Value) -> bool) -> Value {
    let deadline = Instant::now() + WAIT;
    loop {
        let body = pbx.get(path).json();
        if check(&body) {
            return body;
        }
        assert!(
            Instant::now() < deadline,
            "{what}: GET {path} still gives {body:#}\n{}",
            pbx.logs()
        );
        thread::sleep(Duration::from_millis(100));
    }
}

fn agent<'a>(agents: &'a Value, id: &str) -> Option<&'a Value> {
    agents.as_array()?.iter().find(|agent| agent["id"] == id)
}

#[test]
fn reload_applies_changes_and_keeps_the_call() {
    tools::require(&tools::ALL);
    let config = PbxConfig::default();
    let pbx = Pbx::start(&config);
    let work_dir = pbx.dir.path().to_path_buf();
    let _audio = AudioFixtures::generate(&work_dir);
    let phone = AgentPhone::new(&config.agents[0]);
    let agent_run = phone.answer(&work_dir, "agent_answer_hangup.xml", TALK);
    phone.register(&pbx, &work_dir);
    let caller_run =
        phones::caller(&pbx, &work_dir, "caller_wait_bye.xml", "127.0.0.1", DID).spawn();
    wait_for(&pbx, "/api/agents", "agent 1001 on the call", |agents| {
        agent(agents, "1001").is_some_and(|a| a["state"] == "on_call")
    });

    // A new agent with skills, a new queue with both agents, a DID for it,
    // and an HTTP address that only a restart can apply.
    let original = fs::read_to_string(&pbx.config_path).expect("read config");
    let http_line = format!("listen = \"{}\"", pbx.http);
    assert!(original.contains(&http_line), "{original}");
    let changed = original.replace(&http_line, "listen = \"127.0.0.1:1\"")
        + "\n[[agents]]\nid = \"1002\"\npassword = \"e2e-secret-1002\"\n\
           skills = [\"language=ru:5\"]\n\n\
           [[queues]]\nname = \"sales\"\nagents = [\"1001\", \"1002\"]\n\n\
           [[dids]]\nnumber = \"5001\"\nqueue = \"sales\"\n";
    fs::write(&pbx.config_path, &changed).expect("write config");
    let status = Command::new("kill")
        .args(["-HUP", &pbx.pid().to_string()])
        .status()
        .expect("run kill");
    assert!(status.success(), "kill -HUP failed: {status}");

    let agents = wait_for(&pbx, "/api/agents", "agent 1002 added", |agents| {
        agent(agents, "1002").is_some()
    });
    let added = agent(&agents, "1002").expect("1002 listed");
    assert_eq!(added["skills"]["language=ru"], 5, "{added}");
    assert_eq!(added["queues"], serde_json::json!(["sales"]), "{added}");
    let first = agent(&agents, "1001").expect("1001 listed");
    assert_eq!(first["state"], "on_call", "the call goes on: {first}");
    assert_eq!(
        first["queues"],
        serde_json::json!(["sales", QUEUE]),
        "{first}"
    );
    let queues = pbx.get("/api/queues").json();
    let names: Vec<&str> = queues
        .as_array()
        .expect("queues array")
        .iter()
        .filter_map(|queue| queue["name"].as_str())
        .collect();
    assert_eq!(names, [QUEUE, "sales"]);
    let stats = pbx.get("/api/queues/sales/stats");
    assert_eq!(
        stats.status,
        200,
        "{}",
        String::from_utf8_lossy(&stats.body)
    );
    assert_eq!(stats.json()["staffed_agents"], 1, "1001 is on a call");
    assert!(
        pbx.wait_for_log("http.listen", Duration::from_secs(5)),
        "the restart-only change is logged\n{}",
        pbx.logs()
    );

    // A broken file through the API: refused, naming the file and the key.
    let broken = changed.replace(
        "name = \"sales\"",
        "name = \"sales\"\nring_timeout_secs = 0",
    );
    fs::write(&pbx.config_path, broken).expect("write config");
    let reply = pbx.admin_request("POST", "/api/config/reload", None);
    let detail = String::from_utf8_lossy(&reply.body).into_owned();
    assert_eq!(reply.status, 422, "{detail}");
    let problem: Value = serde_json::from_str(&detail).expect("problem JSON");
    let text = problem["detail"].as_str().expect("detail");
    assert!(
        text.contains(&pbx.config_path.display().to_string())
            && text.contains("queues[1].ring_timeout_secs"),
        "{text}"
    );

    // The valid file again through the API: nothing left to apply, and the
    // HTTP address still waits for a restart.
    fs::write(&pbx.config_path, &changed).expect("write config");
    let reply = pbx.admin_request("POST", "/api/config/reload", None);
    assert_eq!(
        reply.status,
        200,
        "{}",
        String::from_utf8_lossy(&reply.body)
    );
    let report = reply.json();
    assert_eq!(report["applied"], serde_json::json!([]), "{report}");
    assert_eq!(
        report["restart_needed"],
        serde_json::json!(["http.listen"]),
        "{report}"
    );

    let caller = caller_run.wait();
    caller.assert_success();
    agent_run.wait().assert_success();
    let record = pbx.wait_for_call(
        &caller.call_id().expect("caller Call-ID"),
        Duration::from_secs(10),
    );
    assert_eq!(record["disposition"], "answered", "{record}");
    let talk = record["talk_seconds"].as_f64().expect("talk_seconds");
    assert!(
        (talk - TALK.as_secs_f64()).abs() < 1.0,
        "the call kept talking through the reload: {talk} s"
    );
    let queue_log = fs::read_to_string(pbx.data_dir.join("queue_log")).expect("queue_log");
    for member in ["1001", "1002"] {
        let line = format!("|sales|{member}|ADDMEMBER|");
        assert!(queue_log.contains(&line), "{line} missing:\n{queue_log}");
    }
}
