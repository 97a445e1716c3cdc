//! A trunk that allows no UPDATE and leaves the refreshing to the PBX:
//! the PBX refreshes the caller's leg with a re-INVITE at half the
//! negotiated interval and the call goes on. The interval is 90 s, the
//! smallest one the configuration accepts (RFC 4028), so this test runs for
//! about 47 s. The other refresh cases run on virtual time in sip-server.

use std::time::Duration;

use pbx_e2e::fixtures::AudioFixtures;
use pbx_e2e::pbx::{DID, Pbx, PbxConfig};
use pbx_e2e::phones::{self, AgentPhone};
use pbx_e2e::tools;

/// Returns the o= line of the SDP body in a traced message.
fn origin_line(text: &str) -> Option<&str> {
    text.lines()
        .map(str::trim)
        .find(|line| line.starts_with("o="))
}

#[test]
fn pbx_refreshes_trunk_by_reinvite() {
    tools::require(&tools::ALL);
    let config = PbxConfig {
        sip_extra: "session_expires_secs = 90\nmin_session_expires_secs = 90\n".to_owned(),
        ..PbxConfig::default()
    };
    let pbx = Pbx::start(&config);
    let work_dir = pbx.dir.path().to_path_buf();
    let _audio = AudioFixtures::generate(&work_dir);
    let phone = AgentPhone::new(&config.agents[0]);
    phone.register(&pbx, &work_dir);

    let agent_run = phone.answer(
        &work_dir,
        "agent_answer_long.xml",
        Duration::from_millis(500),
    );
    let caller = phones::caller(
        &pbx,
        &work_dir,
        "caller_reinvite_refresh.xml",
        "127.0.0.1",
        DID,
    )
    .pause(Duration::from_secs(1))
    .run();
    caller.assert_success();
    let agent = agent_run.wait();
    agent.assert_success();

    // The refresh came at half the interval, not before it.
    assert!(
        caller.elapsed >= Duration::from_secs(45),
        "caller ran {:?}",
        caller.elapsed
    );
    let messages = caller.messages();
    let answer = messages
        .iter()
        .find(|m| m.received && m.status() == Some(200) && m.header("CSeq") == Some("1 INVITE"))
        .expect("caller got the 200 to its INVITE");
    let refresh = messages
        .iter()
        .find(|m| m.received && m.start_line().starts_with("INVITE "))
        .expect("caller got the refresh re-INVITE");
    assert!(refresh.header("Content-Type") == Some("application/sdp"));
    // The session did not change, so the o= line and its version repeat.
    assert_eq!(origin_line(&refresh.text), origin_line(&answer.text));
    assert!(origin_line(&refresh.text).is_some());
    let updates = messages
        .iter()
        .filter(|m| m.received && m.start_line().starts_with("UPDATE "))
        .count();
    assert_eq!(updates, 0, "the trunk's Allow has no UPDATE");
    // The agent's 200 named no Allow, so its leg is refreshed with UPDATE.
    let agent_updates = agent
        .messages()
        .iter()
        .filter(|m| m.received && m.start_line().starts_with("UPDATE "))
        .count();
    assert_eq!(agent_updates, 1);

    let record = pbx.wait_for_call(
        &caller.call_id().expect("caller Call-ID"),
        Duration::from_secs(10),
    );
    println!("call record: {record:#}");
    assert_eq!(record["disposition"], "answered");
    assert_eq!(record["hangup_side"], "caller");
    assert!(record["talk_seconds"].as_f64().unwrap() >= 45.0);
}
