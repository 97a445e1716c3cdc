//! Attended transfer: a caller (sipp) waits in the queue, agent 1001
//! answers, talks, holds the caller and calls 1002's extension (the
//! consultation), 1002 (sipp) answers, and 1001 sends REFER with Replaces.
//! The PBX joins the caller and 1002. Checks the NOTIFYs 1001 gets, both
//! CDRs, and the call's one recording: its length is the talk time, 1001's
//! tone and then 1002's speech are on the right channel and the caller on
//! the left.
//!
//! 1001 is a phone written on UDP sockets ([`TransferPhone`]) because a
//! sipp scenario keeps one dialog per call and cannot put the PBX's To tag
//! of its second dialog into the REFER of its first.

use std::time::Duration;

use pbx_e2e::fixtures::AudioFixtures;
use pbx_e2e::pbx::{Agent, DID, Pbx, PbxConfig};
use pbx_e2e::phones::{self, AgentPhone};
use pbx_e2e::transfer_phone::TransferPhone;
use pbx_e2e::{tools, wav};
use serde_json::Value;

/// Time between the caller's answer and its BYE.
const CALLER_TALK: Duration = Duration::from_secs(12);
/// Time 1001 talks with the caller before it holds.
const FIRST_TALK: Duration = Duration::from_secs(3);
/// Time 1001 talks with 1002 before the REFER.
const CONSULTATION: Duration = Duration::from_secs(1);
/// Tone 1001 sends while it talks with the caller.
const TONE_HZ: f64 = 800.0;
const SIP_TIMEOUT: Duration = Duration::from_secs(10);
const CDR_TIMEOUT: Duration = Duration::from_secs(10);
/// Largest difference allowed between the recording's length and the
/// talk time.
const RECORDING_TOLERANCE: f64 = 0.1;
/// RMS above which a stretch of a channel counts as carrying audio.
const AUDIBLE_RMS: f64 = 300.0;

fn agent(id: &str) -> Agent {
    Agent {
        id: id.to_owned(),
        password: format!("e2e-secret-{id}"),
    }
}

/// Root mean square of `samples` between `from` and `to` seconds.
fn rms(samples: &[i16], from: f64, to: f64) -> f64 {
    let start = wav::samples(from).min(samples.len());
    let end = wav::samples(to).min(samples.len());
    let span = &samples[start..end];
    let sum: f64 = span.iter().map(|&s| f64::from(s).powi(2)).sum();
    (sum / span.len().max(1) as f64).sqrt()
}

fn number(value: &Value, field: &str) -> f64 {
    value[field]
        .as_f64()
        .unwrap_or_else(|| panic!("{field} is not a number in {value}"))
}

/// Status line of each NOTIFY among `requests`, with whether it ends the
/// REFER's subscription.
fn notifies(requests: &[String]) -> Vec<(String, bool)> {
    requests
        .iter()
        .filter(|request| request.starts_with("NOTIFY "))
        .map(|notify| {
            let (head, body) = notify.split_once("\r\n\r\n").unwrap_or((notify, ""));
            let terminated = head
                .lines()
                .any(|line| line.starts_with("Subscription-State: terminated"));
            (body.trim_end().to_owned(), terminated)
        })
        .collect()
}

#[test]
fn attended_transfer_joins_caller_and_colleague() {
    tools::require(&tools::ALL);
    let config = PbxConfig {
        agents: vec![agent("1001"), agent("1002")],
        // Only 1001 takes the queue's calls; 1002 is reached by extension.
        queue_members: Some(vec!["1001".to_owned()]),
        ..PbxConfig::default()
    };
    let pbx = Pbx::start(&config);
    let work_dir = pbx.dir.path().to_path_buf();
    AudioFixtures::generate(&work_dir);
    let first = AgentPhone::new(&config.agents[0]);
    let second = AgentPhone::new(&config.agents[1]);
    let second_run = second.answer(&work_dir, "agent_answer_moved.xml", Duration::ZERO);
    first.register(&pbx, &work_dir);
    second.register(&pbx, &work_dir);
    let mut phone =
        TransferPhone::bind("1001", &config.agents[0].password, first.sip_port, pbx.sip)
            .expect("1001's sockets");

    let caller_run = phones::caller(
        &pbx,
        &work_dir,
        "caller_held_transferred.xml",
        "127.0.0.1",
        DID,
    )
    .pause(CALLER_TALK)
    .spawn();
    let mut first_call = match phone.answer(SIP_TIMEOUT) {
        Ok(dialog) => dialog,
        Err(error) => {
            let caller = caller_run.stop();
            panic!("1001 got no call: {error}\n{}", caller.report());
        }
    };
    phone.talk(FIRST_TALK, TONE_HZ).expect("1001 talks");
    assert_eq!(phone.hold(&mut first_call, SIP_TIMEOUT).expect("hold"), 200);

    let consultation_id = format!("consult-{}@127.0.0.1", std::process::id());
    let (status, consultation) = phone
        .call("1002", &consultation_id, SIP_TIMEOUT)
        .expect("consultation call");
    assert_eq!(status, 200, "1002 answers the consultation");
    let consultation = consultation.expect("consultation dialog");
    std::thread::sleep(CONSULTATION);

    let refer = phone
        .refer_replacing(&mut first_call, "1002", &consultation, SIP_TIMEOUT)
        .expect("REFER");
    assert_eq!(refer, 202);
    phone
        .await_byes(&[&first_call.call_id, &consultation.call_id], SIP_TIMEOUT)
        .expect("1001 leaves both calls");
    assert_eq!(
        notifies(&phone.requests),
        [
            ("SIP/2.0 100 Trying".to_owned(), false),
            ("SIP/2.0 200 OK".to_owned(), true)
        ]
    );

    let caller = caller_run.wait();
    caller.assert_success();
    let second_outcome = second_run.wait();
    second_outcome.assert_success();

    // The consultation is a call between extensions with its own record.
    let consultation_record = pbx.wait_for_call(&consultation_id, CDR_TIMEOUT);
    println!("consultation record: {consultation_record:#}");
    assert_eq!(consultation_record["direction"], "internal");
    assert_eq!(consultation_record["source_extension"], "1001");
    assert_eq!(consultation_record["dialed"], "1002");
    assert_eq!(consultation_record["agent"], "1002");
    assert_eq!(consultation_record["queue"], Value::Null);
    assert_eq!(consultation_record["disposition"], "answered");

    let caller_call_id = caller.call_id().expect("caller's Call-ID");
    let second_call_id = second_outcome.call_id().expect("1002's Call-ID");
    let record = pbx.wait_for_call(&caller_call_id, CDR_TIMEOUT);
    println!("call record: {record:#}");
    assert_eq!(record["direction"], "inbound");
    assert_eq!(record["disposition"], "answered");
    assert_eq!(record["agent"], "1001", "the agent who answered first");
    assert_eq!(record["agent_call_id"], second_call_id.as_str());
    assert_eq!(record["hangup_side"], "caller");
    let transfers = record["transfers"].as_array().expect("transfers array");
    assert_eq!(transfers.len(), 1, "{transfers:?}");
    let transfer = &transfers[0];
    assert_eq!(transfer["from_agent"], "1001");
    assert_eq!(transfer["target"], "1002");
    assert_eq!(transfer["target_kind"], "consultation");
    assert_eq!(transfer["outcome"], "connected");
    assert_eq!(transfer["answered_by"], "1002");
    let offset = number(transfer, "offset_seconds");
    assert!(
        offset > (FIRST_TALK + CONSULTATION).as_secs_f64(),
        "REFER at {offset} s"
    );
    assert_eq!(record["hold_count"], 1);

    // One recording for the call, as long as its talk time: 1001's tone on
    // the agent channel before the hold, 1002 after the transfer, and the
    // caller throughout on the left.
    let talk = number(&record, "talk_seconds");
    let path = record["recording_path"].as_str().expect("recording_path");
    let recording = wav::Recording::open(&pbx.data_dir.join(path));
    let duration = recording.duration_seconds();
    println!("recording {duration} s, talk {talk} s, transfer at {offset} s");
    assert!(
        (duration - talk).abs() < RECORDING_TOLERANCE,
        "recording {duration} s, talk {talk} s"
    );
    let first_part = rms(&recording.right, 0.5, FIRST_TALK.as_secs_f64() - 0.5);
    let second_part = rms(&recording.right, offset + 1.0, duration - 0.5);
    let caller_part = rms(&recording.left, 0.5, duration - 0.5);
    println!("RMS: 1001 {first_part:.0}, 1002 {second_part:.0}, caller {caller_part:.0}");
    assert!(first_part > AUDIBLE_RMS, "1001 is heard before the hold");
    assert!(
        second_part > AUDIBLE_RMS,
        "1002 is heard after the transfer"
    );
    assert!(caller_part > AUDIBLE_RMS, "the caller is heard on the left");

    let id = record["id"].as_str().expect("id");
    let listed = pbx.get(&format!("/api/recordings/{id}"));
    assert_eq!(listed.status, 200, "the call has one catalogue entry");

    // Neither agent is left on a call in the ACD.
    let agents = pbx.get("/api/agents").json();
    println!("agents: {agents:#}");
    for agent in agents.as_array().expect("agents") {
        assert_ne!(agent["state"], "on_call", "{agent}");
    }
}
