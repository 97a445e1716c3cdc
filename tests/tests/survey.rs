//! The agent (sipp) puts the caller on hold, resumes and hangs up first.
//! The caller hears music during the hold, then the survey question, and
//! answers 4 with an RFC 4733 telephone-event. The CDR, the call search
//! and the agent's report row give the hold and the score, and the
//! recording ends with the talk time.

use std::time::Duration;

use pbx_e2e::fixtures::AudioFixtures;
use pbx_e2e::pbx::{Pbx, PbxConfig};
use pbx_e2e::phones::AgentPhone;
use pbx_e2e::raw_caller::RawCaller;
use pbx_e2e::{tools, wav};
use serde_json::Value;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

const SIP_TIMEOUT: Duration = Duration::from_secs(10);
const CDR_TIMEOUT: Duration = Duration::from_secs(10);
/// The hold in agent_hold_hangup.xml lasts 3 s between the two
/// re-INVITEs; their relaying and answers add a few milliseconds.
const HOLD_SECONDS: f64 = 3.0;
const HOLD_TOLERANCE: f64 = 0.5;
/// The agent talks 1 s, holds 3 s and talks 1 s more before its BYE.
const TALK_SECONDS: f64 = 5.0;
const TALK_TOLERANCE: f64 = 1.0;
/// Largest difference allowed between the recording's length and the
/// talk time.
const RECORDING_TOLERANCE: f64 = 0.1;
/// Event code of the key 4.
const KEY_FOUR: u8 = 4;

#[test]
fn hold_then_survey_answered_by_rfc4733_key() {
    tools::require(&tools::ALL);
    let config = PbxConfig {
        queue_extra: "music_on_hold = \"default\"\nsurvey = true\nsurvey_timeout_secs = 10\n"
            .to_owned(),
        ..PbxConfig::default()
    };
    let from = OffsetDateTime::now_utc() - time::Duration::minutes(1);
    let pbx = Pbx::start(&config);
    let work_dir = pbx.dir.path().to_path_buf();
    let _audio = AudioFixtures::generate(&work_dir);
    let phone = AgentPhone::new(&config.agents[0]);
    let agent_run = phone.answer(&work_dir, "agent_hold_hangup.xml", Duration::ZERO);
    phone.register(&pbx, &work_dir);

    let mut caller = RawCaller::new(&pbx).expect("caller sockets");
    assert_eq!(caller.invite(SIP_TIMEOUT).expect("final response"), 200);
    let hold = caller.accept_reinvite(SIP_TIMEOUT).expect("hold re-INVITE");
    assert!(hold.contains("a=sendonly"), "hold offer: {hold}");
    let held = caller
        .exchange_audio(Duration::from_secs(2))
        .expect("caller RTP on hold");
    println!("on hold: {} packets, RMS {:.0}", held.packets, held.rms());
    assert!(held.packets > 50, "the held caller gets audio");
    assert!(held.rms() > 100.0, "the held caller hears music");
    let resume = caller
        .accept_reinvite(SIP_TIMEOUT)
        .expect("resume re-INVITE");
    assert!(resume.contains("a=sendrecv"), "resume offer: {resume}");

    let agent = agent_run.wait();
    agent.assert_success();
    // The question plays after the agent's BYE; a key counts at once.
    let question = caller
        .exchange_audio(Duration::from_secs(2))
        .expect("caller RTP during the question");
    println!(
        "question: {} packets, RMS {:.0}",
        question.packets,
        question.rms()
    );
    assert!(question.rms() > 100.0, "the caller hears the question");
    caller.press(KEY_FOUR).expect("key 4");
    caller
        .wait_for_bye(SIP_TIMEOUT)
        .expect("BYE after the thank-you");

    let record = pbx.wait_for_call(caller.call_id(), CDR_TIMEOUT);
    println!("call record: {record:#}");
    assert_eq!(record["disposition"], "answered");
    assert_eq!(record["hangup_side"], "agent");
    assert_eq!(record["survey"], "answered");
    assert_eq!(record["csat_score"], 4);
    assert_eq!(record["hold_count"], 1);
    let hold_seconds = number(&record, "hold_seconds");
    assert!(
        (hold_seconds - HOLD_SECONDS).abs() < HOLD_TOLERANCE,
        "hold_seconds {hold_seconds}"
    );
    let talk_seconds = number(&record, "talk_seconds");
    assert!(
        (talk_seconds - TALK_SECONDS).abs() < TALK_TOLERANCE,
        "talk_seconds {talk_seconds} counts the survey"
    );

    // The recording stops at the agent's BYE, so the survey's question and
    // key stay out of it and the file is as long as the talk time.
    let path = record["recording_path"].as_str().expect("recording_path");
    let file_seconds = wav::Recording::open(&pbx.data_dir.join(path)).duration_seconds();
    println!("recording {file_seconds} s, talk {talk_seconds} s");
    assert!(
        (file_seconds - talk_seconds).abs() < RECORDING_TOLERANCE,
        "recording {file_seconds} s, talk {talk_seconds} s"
    );
    let recording_seconds = number(&record, "recording_seconds");
    assert!(
        (recording_seconds - talk_seconds).abs() < RECORDING_TOLERANCE,
        "recording_seconds {recording_seconds}, talk {talk_seconds} s"
    );

    let id = record["id"].as_str().expect("id");
    let found = pbx.get("/api/calls?min_csat=4&max_csat=4").json();
    let ids: Vec<&str> = found
        .as_array()
        .expect("calls")
        .iter()
        .filter_map(|call| call["id"].as_str())
        .collect();
    assert_eq!(ids, [id]);
    let none = pbx.get("/api/calls?min_csat=5").json();
    assert_eq!(none, Value::Array(Vec::new()));

    let to = OffsetDateTime::now_utc() + time::Duration::minutes(1);
    let uri = format!(
        "/api/reports/intervals?from={}&to={}&interval=day&by=agent",
        from.format(&Rfc3339).expect("format"),
        to.format(&Rfc3339).expect("format")
    );
    let report = pbx.get(&uri);
    assert_eq!(report.status, 200);
    let report = report.json();
    println!("report: {report:#}");
    let rows = report["rows"].as_array().expect("rows");
    let row = rows
        .iter()
        .find(|row| row["agent"] == config.agents[0].id.as_str())
        .expect("the agent's row");
    assert_eq!(row["surveys_offered"], 1);
    assert_eq!(row["surveys_answered"], 1);
    assert_eq!(row["csat_percent"], 100.0);
    let reported_hold = number(row, "hold_seconds");
    assert!(
        (reported_hold - hold_seconds).abs() < 0.01,
        "report hold {reported_hold}, CDR {hold_seconds}"
    );
    let reported_talk = number(row, "average_talk_seconds");
    assert!(
        (reported_talk - (talk_seconds - hold_seconds)).abs() < 0.01,
        "report talk {reported_talk} is the CDR's talk less its hold"
    );
}

fn number(value: &Value, field: &str) -> f64 {
    value[field]
        .as_f64()
        .unwrap_or_else(|| panic!("{field} is not a number in {value}"))
}
