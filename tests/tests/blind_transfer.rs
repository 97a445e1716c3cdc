//! Blind transfer: agent 1001 answers a queued call and sends REFER to
//! 1002's extension, 1002 answers, and the caller talks to it until it
//! hangs up. Checks the NOTIFYs (in the REFER scenario), the CDR's transfer
//! entry, the queue_log line and the one recording with both agents.

use std::time::{Duration, Instant};

use pbx_e2e::fixtures::AudioFixtures;
use pbx_e2e::pbx::{Agent, DID, DOMAIN, Pbx, PbxConfig};
use pbx_e2e::phones::{self, AgentPhone};
use pbx_e2e::sipp::Sipp;
use pbx_e2e::{tools, wav};

/// Time between the caller's ACK and its BYE.
const TALK: Duration = Duration::from_secs(12);
/// Time 1001 talks before it sends REFER.
const BEFORE_REFER: Duration = Duration::from_secs(4);
const CDR_TIMEOUT: Duration = Duration::from_secs(10);

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

#[test]
fn blind_transfer_to_second_agent() {
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

    let first_run = Sipp::new("agent-1001", "agent_answer_refer.xml", &work_dir)
        .local("127.0.0.1", first.sip_port)
        .media("127.0.0.1", first.media_port)
        .pause(BEFORE_REFER)
        .key("target", "1002")
        .key("domain", DOMAIN)
        .spawn();
    let second_run = second.answer(&work_dir, "agent_answer.xml", TALK);
    first.register(&pbx, &work_dir);
    second.register(&pbx, &work_dir);

    let started = Instant::now();
    let caller = phones::caller(&pbx, &work_dir, "caller_hangup.xml", "127.0.0.1", DID)
        .pause(TALK)
        .run();
    caller.assert_success();
    let first_outcome = first_run.wait();
    first_outcome.assert_success();
    let second_outcome = second_run.wait();
    second_outcome.assert_success();
    println!("call took {:?}", started.elapsed());

    let caller_call_id = caller.call_id().expect("caller's Call-ID");
    let second_call_id = second_outcome.call_id().expect("second agent's Call-ID");
    let record = pbx.wait_for_call(&caller_call_id, CDR_TIMEOUT);
    println!("call record: {record:#}");
    assert_eq!(record["disposition"], "answered");
    assert_eq!(record["agent"], "1001", "the agent who answered first");
    assert_eq!(record["agent_call_id"], second_call_id.as_str());
    assert_eq!(record["hangup_side"], "caller");
    let talk = record["talk_seconds"].as_f64().expect("talk_seconds");
    assert!((talk - TALK.as_secs_f64()).abs() < 1.0, "talk {talk} s");

    let transfers = record["transfers"].as_array().expect("transfers array");
    assert_eq!(transfers.len(), 1, "{transfers:?}");
    let transfer = &transfers[0];
    assert_eq!(transfer["from_agent"], "1001");
    assert_eq!(transfer["target"], "1002");
    assert_eq!(transfer["target_kind"], "extension");
    assert_eq!(transfer["outcome"], "connected");
    assert_eq!(transfer["answered_by"], "1002");
    let offset = transfer["offset_seconds"].as_f64().expect("offset_seconds");
    let refer_after = BEFORE_REFER.as_secs_f64();
    assert!(
        (offset - refer_after).abs() < 1.0,
        "REFER at {offset} s, sent after {refer_after} s"
    );
    let first_talk = transfer["from_talk_seconds"].as_f64().expect("from_talk");
    assert!(
        (first_talk - offset).abs() < 0.01,
        "first agent talked {first_talk} s"
    );
    let at = time::OffsetDateTime::parse(
        transfer["at"].as_str().expect("at"),
        &time::format_description::well_known::Rfc3339,
    )
    .expect("at is RFC 3339");
    let answered_at = time::OffsetDateTime::parse(
        transfer["answered_at"].as_str().expect("answered_at"),
        &time::format_description::well_known::Rfc3339,
    )
    .expect("answered_at is RFC 3339");
    let ring = (answered_at - at).as_seconds_f64();
    assert!((0.0..1.0).contains(&ring), "1002 answered after {ring} s");

    // The queue_log ends 1001's part as a transfer.
    let queue_log =
        std::fs::read_to_string(pbx.data_dir.join("queue_log")).expect("queue_log written");
    let id = record["id"].as_str().expect("id");
    assert!(
        queue_log
            .lines()
            .any(|line| line.contains(id) && line.contains("|1001|TRANSFER|1002|")),
        "{queue_log}"
    );

    // One recording contains the whole call: 1001 on the agent channel before
    // the transfer, 1002 after it, each speaking from its own answer.
    let path = record["recording_path"].as_str().expect("recording_path");
    let recording = wav::Recording::open(&pbx.data_dir.join(path));
    let duration = recording.duration_seconds();
    assert!(
        (duration - talk).abs() <= 0.3,
        "recording {duration} s, talk {talk} s"
    );
    let second_from = offset + ring;
    let first_part = rms(&recording.right, 0.5, offset - 0.5);
    let second_part = rms(&recording.right, second_from + 0.5, second_from + 3.5);
    println!("agent channel RMS: first {first_part:.0}, second {second_part:.0}");
    assert!(first_part > 300.0, "1001 is heard before the transfer");
    assert!(second_part > 300.0, "1002 is heard after the transfer");
    assert!(
        rms(&recording.left, 0.5, duration - 0.5) > 300.0,
        "caller channel"
    );
    let listed = pbx.get(&format!("/api/recordings/{id}"));
    assert_eq!(listed.status, 200, "the call has one catalogue entry");
}
