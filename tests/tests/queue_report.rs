//! One abandoned and one answered call: the queue report and the interval
//! report rebuilt from the stored events agree with the CDRs of the same
//! calls, and still do after a kill -9.

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
    close(
        kpi,
        "average_abandon_seconds",
        seconds(&abandoned, "wait_seconds"),
    );

    let range = format!(
        "from={}&to={}",
        from.format(&Rfc3339).expect("format"),
        to.format(&Rfc3339).expect("format")
    );
    check_interval_rows(&pbx, &range, &answered, &abandoned);
    let intervals_uri = format!("/api/reports/intervals?{range}&interval=60&by=queue");
    let intervals = fetch(&pbx, &intervals_uri);

    // The report above read every event from the database, so a kill -9
    // now must lose none of them.
    pbx.restart();
    assert_eq!(fetch(&pbx, &uri), report, "report changed across a kill -9");
    assert_eq!(
        fetch(&pbx, &intervals_uri),
        intervals,
        "interval report changed across a kill -9"
    );

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

/// Checks the hourly queue rows and the agent rows against the two CDRs.
/// The range may cross an hour, so the counts are summed over the rows.
fn check_interval_rows(pbx: &Pbx, range: &str, answered: &Value, abandoned: &Value) {
    let report = fetch(pbx, &format!("/api/reports/intervals?{range}&interval=60"));
    println!("interval report: {report:#}");
    let rows = report["rows"].as_array().expect("rows");
    let total = |field: &str| -> u64 {
        rows.iter()
            .map(|row| row[field].as_u64().expect(field))
            .sum()
    };
    assert_eq!(total("offered"), 2);
    assert_eq!(total("answered"), 1);
    assert_eq!(total("abandoned"), 1);
    let seconds = |record: &Value, field: &str| record[field].as_f64().expect(field);
    let answered_row = rows
        .iter()
        .find(|row| row["answered"] == 1)
        .expect("the answered call's row");
    close(
        answered_row,
        "average_speed_of_answer_seconds",
        seconds(answered, "wait_seconds"),
    );
    close(
        answered_row,
        "average_talk_seconds",
        seconds(answered, "talk_seconds"),
    );
    // Its 72-hour first-contact window is still open.
    assert_eq!(answered_row["first_contact_calls"], 0);
    assert!(answered_row["first_contact_resolution_percent"].is_null());
    let abandoned_row = rows
        .iter()
        .find(|row| row["abandoned"] == 1)
        .expect("the abandoned call's row");
    close(
        abandoned_row,
        "average_abandon_seconds",
        seconds(abandoned, "wait_seconds"),
    );

    let agents = fetch(
        pbx,
        &format!("/api/reports/intervals?{range}&interval=day&by=agent"),
    );
    let agent_rows: Vec<&Value> = agents["rows"]
        .as_array()
        .expect("rows")
        .iter()
        .filter(|row| row["answered"] == 1)
        .collect();
    assert_eq!(agent_rows.len(), 1, "{agents:#}");
    assert_eq!(agent_rows[0]["agent"], answered["agent"]);
    close(
        agent_rows[0],
        "average_talk_seconds",
        seconds(answered, "talk_seconds"),
    );

    let csv = pbx.get(&format!(
        "/api/reports/intervals?{range}&interval=60&format=csv"
    ));
    assert_eq!(csv.status, 200);
    let text = String::from_utf8_lossy(&csv.body).into_owned();
    assert_eq!(text.lines().count(), rows.len() + 1, "{text}");
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
