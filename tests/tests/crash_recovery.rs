//! A PBX killed with SIGKILL during an answered call: the next start writes
//! the call's CDR, marked interrupted, repairs its recording and sends BYE
//! to both phones, which would otherwise stay in a silent call. The same
//! is true when the kill comes the instant the caller receives the 200.

use std::thread;
use std::time::{Duration, Instant};

use pbx_e2e::fixtures::AudioFixtures;
use pbx_e2e::pbx::{DID, Pbx, PbxConfig};
use pbx_e2e::phones::{self, AgentPhone};
use pbx_e2e::raw_agent::RawAgent;
use pbx_e2e::raw_caller::RawCaller;
use pbx_e2e::{tools, wav};

const SIP_TIMEOUT: Duration = Duration::from_secs(10);

#[test]
fn killed_call_gets_an_interrupted_cdr() {
    tools::require(&tools::ALL);
    let config = PbxConfig::default();
    let mut pbx = Pbx::start(&config);
    let work_dir = pbx.dir.path().to_path_buf();
    let _audio = AudioFixtures::generate(&work_dir);
    let phone = AgentPhone::new(&config.agents[0]);

    let agent = phone.answer(&work_dir, "agent_answer.xml", Duration::from_secs(20));
    phone.register(&pbx, &work_dir);
    let caller = phones::caller(&pbx, &work_dir, "caller_hangup.xml", "127.0.0.1", DID)
        .pause(Duration::from_secs(20))
        .spawn();

    // Wait until the call is answered and some audio is recorded.
    let deadline = Instant::now() + Duration::from_secs(15);
    while !pbx.logs().contains("agent answered") {
        assert!(
            Instant::now() < deadline,
            "call never answered\n{}",
            pbx.logs()
        );
        thread::sleep(Duration::from_millis(100));
    }
    // The recorder keeps the last second of audio in memory (its jitter
    // window, `[recording] jitter_window_ms`), so the file a kill leaves
    // ends about 1 s before the kill.
    thread::sleep(Duration::from_secs(4));
    pbx.restart();
    // The agent's scenario ends with the BYE it receives and answers; the
    // caller's was still pausing, so it is stopped and its log read.
    let agent = agent.wait();
    agent.assert_success();
    assert!(
        agent.elapsed < Duration::from_secs(19),
        "the agent's BYE came from its own timeout, after {:?}",
        agent.elapsed
    );
    thread::sleep(Duration::from_secs(1));
    let caller = caller.stop();
    let bye_received = |outcome: &pbx_e2e::sipp::SippOutcome| {
        outcome
            .messages()
            .iter()
            .any(|message| message.received && message.start_line().starts_with("BYE "))
    };
    assert!(bye_received(&agent), "{}", agent.report());
    assert!(bye_received(&caller), "{}", caller.report());

    let record = pbx
        .calls()
        .into_iter()
        .find(|call| call["disposition"] == "answered")
        .unwrap_or_else(|| panic!("no CDR after the restart\n{}", pbx.logs()));
    println!("recovered record: {record:#}");
    assert_eq!(record["interrupted"], true);
    assert_eq!(record["agent"], config.agents[0].id.as_str());
    assert_eq!(record["hangup_side"], "system");
    let seconds = record["recording_seconds"]
        .as_f64()
        .expect("recording_seconds");
    assert!(seconds >= 2.0, "recording_seconds {seconds}");
    let talk = record["talk_seconds"].as_f64().expect("talk_seconds");
    assert!(
        (talk - seconds).abs() < 0.01,
        "talk {talk} vs recording {seconds}"
    );

    let path = pbx
        .data_dir
        .join(record["recording_path"].as_str().expect("recording_path"));
    let recording = wav::Recording::open(&path);
    assert!(
        (recording.duration_seconds() - seconds).abs() < 0.01,
        "repaired WAV is {} s, CDR says {seconds} s",
        recording.duration_seconds()
    );
}

/// The PBX sends the caller its 200 only once the call is in the journal,
/// so a kill right after that 200 arrives cannot lose the call. A kill in
/// the window before the journal write would leave no CDR and both phones
/// in a call the PBX had forgotten.
#[test]
fn kill_at_answer_keeps_cdr() {
    tools::require(&tools::ALL);
    let config = PbxConfig::default();
    let mut pbx = Pbx::start(&config);
    let work_dir = pbx.dir.path().to_path_buf();
    let phone = AgentPhone::new(&config.agents[0]);
    let mut agent = RawAgent::bind(&phone.agent.id, phone.sip_port).expect("agent sockets");
    phone.register(&pbx, &work_dir);
    // The PBX may die before it acknowledges the agent's 200, so the
    // agent's wait for the ACK can time out; only the caller is checked.
    let agent_thread = thread::spawn(move || agent.answer(SIP_TIMEOUT));

    let mut caller = RawCaller::new(&pbx).expect("caller sockets");
    let status = caller.invite(SIP_TIMEOUT).expect("final response");
    assert_eq!(status, 200, "the agent answered");
    pbx.restart();

    let record = pbx.wait_for_call(caller.call_id(), SIP_TIMEOUT);
    println!("recovered record: {record:#}");
    assert_eq!(record["disposition"], "answered");
    assert_eq!(record["interrupted"], true);
    assert_eq!(record["agent"], config.agents[0].id.as_str());
    caller
        .wait_for_bye(SIP_TIMEOUT)
        .unwrap_or_else(|error| panic!("caller: {error}\n{}", pbx.logs()));
    let _ = agent_thread.join();
}
