//! linphonec against the real binary. As agent 1002 it registers with digest
//! authentication over UDP, TCP and TLS (trusting the test's certificate
//! authority) and answers by itself a call that sipp, as the trunk, puts
//! into the queue.
//!
//! linphone plays a 1250 Hz tone from a WAV file and sipp sends 440 Hz.
//! The recording's left channel must carry the caller's tone and the right
//! channel linphone's, and linphone must hear the caller's tone.

use std::net::SocketAddr;
use std::time::Duration;

use pbx_e2e::fixtures::CALLER_AUDIO;
use pbx_e2e::linphone::Linphone;
use pbx_e2e::pbx::{Agent, DID, Pbx, PbxConfig, QUEUE};
use pbx_e2e::phones::{self, CALLER_NUMBER};
use pbx_e2e::softphone::{self, TestCa, Transport};
use pbx_e2e::{ports, tone, tools};

const AGENT_TONE_HZ: f64 = 1_250.0;
const CALLER_TONE_HZ: f64 = 440.0;
/// Time between the caller's ACK and its BYE.
const TALK: Duration = Duration::from_secs(6);
const TONE_SECONDS: f64 = 30.0;
const REGISTER_TIMEOUT: Duration = Duration::from_secs(15);
const CDR_TIMEOUT: Duration = Duration::from_secs(10);
const HANGUP_TIMEOUT: Duration = Duration::from_secs(10);

#[test]
fn linphone_agent_over_udp() {
    agent_answers_queued_call(Transport::Udp);
}

#[test]
fn linphone_agent_over_tcp() {
    agent_answers_queued_call(Transport::Tcp);
}

#[test]
fn linphone_agent_over_tls() {
    agent_answers_queued_call(Transport::Tls);
}

/// Registers linphonec as agent 1002 over `transport`, lets sipp call the
/// queue, and checks registration, CDR, recording and hangup.
fn agent_answers_queued_call(transport: Transport) {
    tools::require(&[tools::SIPP]);
    let certificates = tempfile::tempdir().expect("certificate directory");
    let ca = TestCa::generate(certificates.path());
    let tls_listen = SocketAddr::from(([127, 0, 0, 1], ports::free_port()));
    let agent = Agent {
        id: "1002".to_owned(),
        password: "e2e-secret-1002".to_owned(),
    };
    let config = PbxConfig {
        agents: vec![agent.clone()],
        sip_extra: ca.pbx_sip_lines(tls_listen),
        ..PbxConfig::default()
    };
    let pbx = Pbx::start(&config);
    let work_dir = pbx.dir.path().to_path_buf();
    let agent_audio = work_dir.join("agent-tone.wav");
    tone::write_wav(&agent_audio, AGENT_TONE_HZ, TONE_SECONDS);
    tone::write_ulaw(&work_dir.join(CALLER_AUDIO), CALLER_TONE_HZ, TONE_SECONDS);

    let registrar = match transport {
        Transport::Tls => tls_listen,
        Transport::Udp | Transport::Tcp => pbx.sip,
    };
    let mut phone = Linphone::start_agent(
        &agent,
        registrar,
        transport,
        Some(&ca.ca_path),
        &work_dir.join("linphone"),
        &agent_audio,
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
        phone.process.wait_for_output("ended", HANGUP_TIMEOUT),
        "linphonec did not report the call's end after the caller's BYE\n{}",
        phone.process.output()
    );

    softphone::check_recording(&pbx, &record, CALLER_TONE_HZ, AGENT_TONE_HZ);
    // linphone sends STUN binding requests to the relay's ports; they are
    // dropped without a warning.
    assert!(
        !pbx.logs().contains("invalid datagram dropped"),
        "the relay took linphone's datagrams for invalid ones\n{}",
        pbx.logs()
    );
    // Quitting first makes sure linphone has closed the WAV file of what
    // it heard.
    phone.quit();
    let debug_log = phone.debug_log();
    let (rate, heard) = phone.heard(HANGUP_TIMEOUT).unwrap_or_else(|| {
        let file_lines: Vec<&str> = debug_log
            .lines()
            .filter(|line| line.contains("ecord") || line.contains(".wav"))
            .collect();
        panic!(
            "linphone wrote no {}; its log on files:\n{}\n{}",
            phone.heard_path.display(),
            file_lines.join("\n"),
            phone.process.output()
        )
    });
    softphone::check_heard("linphonec", &heard, rate, CALLER_TONE_HZ);
}

/// linphone checks the PBX's certificate: without the test authority among
/// its trusted roots it aborts the handshake and never registers.
#[test]
fn linphone_rejects_untrusted_certificate() {
    let certificates = tempfile::tempdir().expect("certificate directory");
    let ca = TestCa::generate(certificates.path());
    let tls_listen = SocketAddr::from(([127, 0, 0, 1], ports::free_port()));
    let agent = Agent {
        id: "1002".to_owned(),
        password: "e2e-secret-1002".to_owned(),
    };
    let config = PbxConfig {
        agents: vec![agent.clone()],
        sip_extra: ca.pbx_sip_lines(tls_listen),
        ..PbxConfig::default()
    };
    let pbx = Pbx::start(&config);
    let work_dir = pbx.dir.path().to_path_buf();
    let agent_audio = work_dir.join("agent-tone.wav");
    tone::write_wav(&agent_audio, AGENT_TONE_HZ, TONE_SECONDS);

    let mut phone = Linphone::start_agent(
        &agent,
        tls_listen,
        Transport::Tls,
        None,
        &work_dir.join("linphone"),
        &agent_audio,
    );

    assert!(
        pbx.wait_for_log("UnknownCA", REGISTER_TIMEOUT),
        "linphone did not reject the certificate of an unknown authority\n{}",
        phone.process.output()
    );
    let entry = softphone::agent_entry(&pbx, &agent.id);
    assert_eq!(
        entry["contacts"], 0,
        "agent after the rejected handshake: {entry}"
    );
    phone.quit();
}
