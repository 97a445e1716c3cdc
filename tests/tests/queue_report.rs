//! One abandoned and one answered call: the queue report rebuilt from the
//! stored events agrees with the CDRs of the same calls, and still does
//! after a kill -9.

use std::time::Duration;

use pbx_e2e::fixtures::AudioFixtures;
use pbx_e2e::pbx::{DID, Pbx, PbxConfig, QUEUE};
use pbx_e2e::phones::{self, AgentPhone};
use pbx_e2e::tools;
use serde_json::Value;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

const TALK: Duration = Duration::from_secs(3);
const CDR_TIMEOUT: Duration = Duration::from_secs(10);
/// Durations in CDRs and events come from the same clock readings, rounded
/// to the millisecond on both sides.
const TOLERANCE: f64 = 0.01;

#[test]
fn report_from_events_matches_the_cdrs() {
    tools::require(&tools::ALL);
    let config = PbxConfig {
        max_wait_secs: 30,
        ..PbxConfig::default()
    };
    let from = OffsetDateTime::now_utc() - time::Duration::minutes(1);
    let mut pbx = Pbx::start(&config);
    let work_dir = pbx.dir.path().to_path_buf();
    let _audio = AudioFixtures::generate(&work_dir);

    // No agent has registered yet, so the caller waits and hangs up.
    let abandoned = phones::caller(&pbx, &work_dir, "caller_cancel.xml", "127.0.0.1", DID).run();
    abandoned.assert_success();
    let abandoned_id = abandoned.call_id().expect("Call-ID of the abandoned call");
    let abandoned = pbx.wait_for_call(&abandoned_id, CDR_TIMEOUT);

    let phone = AgentPhone::new(&config.agents[0]);
    let agent_run = phone.answer(&work_dir, "agent_answer.xml", TALK);
    phone.register(&pbx, &work_dir);
    let answered = phones::caller(&pbx, &work_dir, "caller_hangup.xml", "127.0.0.1", DID)
        .pause(TALK)
        .run();
    answered.assert_success();
    agent_run.wait().assert_success();
    let answered_id = answered.call_id().expect("Call-ID of the answered call");
    let answered = pbx.wait_for_call(&answered_id, CDR_TIMEOUT);
    println!("CDRs:\n{abandoned:#}\n{answered:#}");
    assert_eq!(abandoned["disposition"], "abandoned");
    assert_eq!(answered["disposition"], "answered");

    let to = OffsetDateTime::now_utc() + time::Duration::minutes(1);
    let uri = format!(
        "/api/reports/queues?from={}&to={}",
        from.format(&Rfc3339).expect("format"),
        to.format(&Rfc3339).expect("format")
    );
    let report = fetch(&pbx, &uri);
    println!("report: {report:#}");
    let queues = report["queues"].as_array().expect("queues");
    assert_eq!(queues.len(), 1, "{report:#}");
    let kpi = &queues[0];
    assert_eq!(kpi["queue"], QUEUE);

    // The figures a reader would work out from the two CDRs.
    let seconds = |record: &Value, field: &str| record[field].as_f64().expect(field);
    let answer_wait = seconds(&answered, "wait_seconds");
    let talk = seconds(&answered, "talk_seconds");
    let longest = answer_wait.max(seconds(&abandoned, "wait_seconds"));
    assert_eq!(kpi["offered"], 2);
    assert_eq!(kpi["answered"], 1);
    assert_eq!(kpi["abandoned"], 1);
    assert_eq!(kpi["abandon_percent"], 50.0);
    assert_eq!(kpi["timed_out"], 0);
    assert_eq!(kpi["exited_by_key"], 0);
    assert_eq!(kpi["unresolved"], 0);
    let within = |limit: f64| if answer_wait <= limit { 50.0 } else { 0.0 };
    assert_eq!(kpi["service_level_20_percent"], within(20.0));
    assert_eq!(kpi["service_level_30_percent"], within(30.0));
    close(kpi, "average_speed_of_answer_seconds", answer_wait);
    close(kpi, "average_talk_seconds", talk);
    close(kpi, "longest_wait_seconds", longest);
    // The test queue has no wrap-up, so handling is talking.
    close(kpi, "average_handle_seconds", talk);

    // The report above read every event from the database, so a kill -9
    // now must lose none of them.
    pbx.restart();
    assert_eq!(fetch(&pbx, &uri), report, "report changed across a kill -9");

    // The queue's account of both calls, rebuilt from the events, agrees
    // with the CDRs the PBX wrote.
    let check = std::process::Command::new(pbx_e2e::pbx::binary())
        .arg("cdr-check")
        .arg("--data-dir")
        .arg(&pbx.data_dir)
        .output()
        .expect("run pbx cdr-check");
    let stdout = String::from_utf8_lossy(&check.stdout);
    let stderr = String::from_utf8_lossy(&check.stderr);
    println!("cdr-check: {stdout}{stderr}");
    assert!(check.status.success(), "{stdout}{stderr}");
    assert_eq!(stdout, "");
    assert!(
        stderr.contains("checked 2 queued calls: 0 CDRs missing (0 rebuilt), 0 differing"),
        "{stderr}"
    );
}

fn fetch(pbx: &Pbx, uri: &str) -> Value {
    let reply = pbx.get(uri);
    assert_eq!(
        reply.status,
        200,
        "{}",
        String::from_utf8_lossy(&reply.body)
    );
    serde_json::from_slice(&reply.body).expect("report is JSON")
}

fn close(kpi: &Value, field: &str, expected: f64) {
    let value = kpi[field]
        .as_f64()
        .unwrap_or_else(|| panic!("{field}: {}", kpi[field]));
    assert!(
        (value - expected).abs() <= TOLERANCE,
        "{field} is {value}, the CDRs give {expected}"
    );
}
