//! baresip against the real binary. As agent 1001 it registers with digest
//! authentication over UDP, TCP and TLS (trusting the test's certificate
//! authority) and answers by itself a call that sipp, as the trunk, puts
//! into the queue. As a caller it dials the queue's DID over UDP.
//!
//! Each side sends a tone of its own: the agent's phone 1250 Hz, the
//! caller 440 Hz. The recording's left channel must carry the caller's
//! tone and the right channel the agent's, and each phone must hear the
//! other's tone.

use std::net::SocketAddr;
use std::time::Duration;

use pbx_e2e::baresip::{Baresip, Role};
use pbx_e2e::fixtures::{AGENT_AUDIO, CALLER_AUDIO, SAMPLE_RATE};
use pbx_e2e::pbx::{DID, Pbx, PbxConfig, QUEUE};
use pbx_e2e::phones::{self, AgentPhone, CALLER_NUMBER};
use pbx_e2e::softphone::{self, TestCa, Transport};
use pbx_e2e::{ports, tone, tools};
use serde_json::Value;

const AGENT_TONE_HZ: f64 = 1_250.0;
const CALLER_TONE_HZ: f64 = 440.0;
/// Time between the caller's ACK and its BYE.
const TALK: Duration = Duration::from_secs(6);
/// Length of the tone files; longer than any call, because baresip's
/// aufile source stops sending when its file ends.
const TONE_SECONDS: f64 = 30.0;
/// baresip quits by itself after this; the tests stop it well before.
const BARESIP_LIMIT: Duration = Duration::from_secs(60);
const REGISTER_TIMEOUT: Duration = Duration::from_secs(15);
const CDR_TIMEOUT: Duration = Duration::from_secs(10);
const HANGUP_TIMEOUT: Duration = Duration::from_secs(10);

#[test]
fn baresip_agent_over_udp() {
    agent_answers_queued_call(Transport::Udp);
}

#[test]
fn baresip_agent_over_tcp() {
    agent_answers_queued_call(Transport::Tcp);
}

#[test]
fn baresip_agent_over_tls() {
    agent_answers_queued_call(Transport::Tls);
}

/// Registers baresip as agent 1001 over `transport`, lets sipp call the
/// queue, and checks registration, CDR, recording and hangup.
fn agent_answers_queued_call(transport: Transport) {
    tools::require(&[tools::SIPP]);
    let certificates = tempfile::tempdir().expect("certificate directory");
    let ca = TestCa::generate(certificates.path());
    let tls_listen = SocketAddr::from(([127, 0, 0, 1], ports::free_port()));
    let config = PbxConfig {
        sip_extra: ca.pbx_sip_lines(tls_listen),
        ..PbxConfig::default()
    };
    let pbx = Pbx::start(&config);
    let agent = config.agents[0].clone();
    let work_dir = pbx.dir.path().to_path_buf();
    tone::write_wav(
        &work_dir.join("agent-tone.wav"),
        AGENT_TONE_HZ,
        TONE_SECONDS,
    );
    tone::write_ulaw(&work_dir.join(CALLER_AUDIO), CALLER_TONE_HZ, TONE_SECONDS);

    let registrar = match transport {
        Transport::Tls => tls_listen,
        Transport::Udp | Transport::Tcp => pbx.sip,
    };
    let role = Role::Agent {
        agent: agent.clone(),
        registrar,
        transport,
        ca_file: Some(ca.ca_path.clone()),
    };
    let mut phone = Baresip::start(
        &role,
        &work_dir.join("baresip"),
        &work_dir.join("agent-tone.wav"),
        BARESIP_LIMIT,
    );
    let entry =
        softphone::wait_for_registration(&pbx, &agent.id, &mut phone.process, REGISTER_TIMEOUT);
    println!("agent after registering over {transport:?}: {entry}");

    let caller = phones::caller(&pbx, &work_dir, "caller_hangup.xml", "127.0.0.1", DID)
        .pause(TALK)
        .run();
    if !caller.succeeded() {
        panic!(
            "sipp caller failed\n{}\n{}",
            caller.report(),
            phone.process.output()
        );
    }
    let caller_call_id = caller.call_id().expect("Call-ID in the caller's log");
    let record = pbx.wait_for_call(&caller_call_id, CDR_TIMEOUT);
    println!("call record: {record:#}");

    assert_eq!(record["disposition"], "answered");
    assert_eq!(record["queue"], QUEUE);
    assert_eq!(record["agent"], agent.id.as_str());
    assert_eq!(record["caller"], CALLER_NUMBER);
    assert_eq!(record["hangup_side"], "caller");
    softphone::assert_talk_close_to(&record, TALK);
    assert!(
        phone.process.wait_for_output("terminated", HANGUP_TIMEOUT),
        "baresip did not report the call's end after the caller's BYE\n{}",
        phone.process.output()
    );

    softphone::check_recording(&pbx, &record, CALLER_TONE_HZ, AGENT_TONE_HZ);
    check_heard(&phone, CALLER_TONE_HZ);
    phone.process.stop();
}

#[test]
fn baresip_caller_reaches_sipp_agent() {
    tools::require(&[tools::SIPP]);
    let config = PbxConfig::default();
    let pbx = Pbx::start(&config);
    let work_dir = pbx.dir.path().to_path_buf();
    tone::write_wav(
        &work_dir.join("caller-tone.wav"),
        CALLER_TONE_HZ,
        TONE_SECONDS,
    );
    tone::write_ulaw(&work_dir.join(AGENT_AUDIO), AGENT_TONE_HZ, TONE_SECONDS);
    let sipp_agent = AgentPhone::new(&config.agents[0]);
    let agent_run = sipp_agent.answer(&work_dir, "agent_answer_hangup.xml", TALK);
    sipp_agent.register(&pbx, &work_dir);

    // 127.0.0.1 is in the trunk's allow list, so baresip calls as the trunk.
    let role = Role::Caller {
        user: CALLER_NUMBER.to_owned(),
        uri: format!("sip:{DID}@{}", pbx.sip),
    };
    let mut phone = Baresip::start(
        &role,
        &work_dir.join("baresip"),
        &work_dir.join("caller-tone.wav"),
        BARESIP_LIMIT,
    );
    let agent = agent_run.wait();
    if !agent.succeeded() {
        panic!(
            "sipp agent failed\n{}\n{}",
            agent.report(),
            phone.process.output()
        );
    }
    let agent_call_id = agent.call_id().expect("Call-ID in the agent's log");
    assert!(
        phone.process.wait_for_output("terminated", HANGUP_TIMEOUT),
        "baresip did not report the call's end after the agent's BYE\n{}",
        phone.process.output()
    );
    let record = wait_for_agent_call(&pbx, &agent_call_id);
    println!("call record: {record:#}");

    assert_eq!(record["disposition"], "answered");
    assert_eq!(record["caller"], CALLER_NUMBER);
    assert_eq!(record["dialed"], DID);
    assert_eq!(record["hangup_side"], "agent");
    softphone::assert_talk_close_to(&record, TALK);

    softphone::check_recording(&pbx, &record, CALLER_TONE_HZ, AGENT_TONE_HZ);
    check_heard(&phone, AGENT_TONE_HZ);
    phone.process.stop();
}

/// Finds the record of the call whose agent leg had `agent_call_id`.
fn wait_for_agent_call(pbx: &Pbx, agent_call_id: &str) -> Value {
    let deadline = std::time::Instant::now() + CDR_TIMEOUT;
    loop {
        let found = pbx
            .calls()
            .into_iter()
            .find(|call| call["agent_call_id"] == agent_call_id);
        if let Some(call) = found {
            return call;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no call record with agent_call_id {agent_call_id}: {:?}",
            pbx.calls()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Asserts that baresip decoded the other side's tone.
fn check_heard(phone: &Baresip, expected_hz: f64) {
    let heard = phone.heard().unwrap_or_else(|| {
        panic!(
            "no sndfile dump in {}\n{}",
            phone.dir.display(),
            phone.process.output()
        )
    });
    softphone::check_heard("baresip", &heard, SAMPLE_RATE, expected_hz);
}
