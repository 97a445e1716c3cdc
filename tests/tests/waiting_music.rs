//! A caller waits with music and announcements: the PBX answers it when it
//! joins the queue and streams audio to it; an RFC 4733 key moves it to
//! another queue, whose agent answers.

use std::time::Duration;

use pbx_e2e::fixtures::AudioFixtures;
use pbx_e2e::pbx::{Agent, Pbx, PbxConfig, QUEUE};
use pbx_e2e::phones::AgentPhone;
use pbx_e2e::raw_caller::RawCaller;
use pbx_e2e::tools;

const SIP_TIMEOUT: Duration = Duration::from_secs(5);
/// Far above the relay's silence (0) and below the built-in prompts' level
/// (about 2,000 for speech, 1,800 for the music).
const AUDIBLE_RMS: f64 = 300.0;

#[test]
fn waiting_music_and_exit_key() {
    tools::require(&tools::ALL);
    let agents = vec![
        Agent {
            id: "1001".to_owned(),
            password: "e2e-secret-1001".to_owned(),
        },
        Agent {
            id: "1002".to_owned(),
            password: "e2e-secret-1002".to_owned(),
        },
    ];
    // 1001 never registers, so the call waits in the test queue until the
    // caller presses 0 and moves to "backup", where 1002 answers.
    let config = PbxConfig {
        agents: agents.clone(),
        queue_members: Some(vec!["1001".to_owned()]),
        queue_extra: "music_on_hold = \"default\"\nannounce_every_secs = 4\n\
                      exit_keys = { \"0\" = \"queue:backup\" }\n"
            .to_owned(),
        extra: "\n[[queues]]\nname = \"backup\"\nagents = [\"1002\"]\nring_timeout_secs = 5\n\
                max_wait_secs = 30\nmusic_on_hold = \"default\"\n"
            .to_owned(),
        ..PbxConfig::default()
    };
    let pbx = Pbx::start(&config);
    let work_dir = pbx.dir.path().to_path_buf();
    AudioFixtures::generate(&work_dir);
    let phone = AgentPhone::new(&agents[1]);
    let agent_run = phone.answer(&work_dir, "agent_answer.xml", Duration::from_secs(1));
    phone.register(&pbx, &work_dir);

    let mut caller = RawCaller::new(&pbx).expect("caller sockets");
    let status = caller.invite(SIP_TIMEOUT).expect("final response");
    assert_eq!(status, 200, "the PBX answers a caller it plays music to");
    assert!(
        !caller.statuses.contains(&180),
        "no ringback before the answer: {:?}",
        caller.statuses
    );
    let waiting = caller
        .exchange_audio(Duration::from_secs(3))
        .expect("RTP exchange");
    println!(
        "while waiting: {} packets, payload types {:?}, RMS {:.0}",
        waiting.packets,
        waiting.payload_types,
        waiting.rms()
    );
    // 50 packets a second of PCMU, as answered, with audible content.
    assert!(waiting.packets >= 100, "{} packets in 3 s", waiting.packets);
    assert_eq!(waiting.payload_types, [0]);
    assert!(
        waiting.rms() > AUDIBLE_RMS,
        "the caller hears silence: RMS {:.0}",
        waiting.rms()
    );

    caller.press(0).expect("send the key");
    let talking = caller
        .exchange_audio(Duration::from_secs(4))
        .expect("RTP exchange");
    assert!(talking.rms() > AUDIBLE_RMS, "RMS {:.0}", talking.rms());
    assert_eq!(caller.bye(SIP_TIMEOUT).expect("BYE answered"), 200);
    agent_run.wait().assert_success();

    let record = pbx.wait_for_call(caller.call_id(), Duration::from_secs(10));
    println!("call record: {record:#}");
    assert_eq!(record["disposition"], "answered");
    assert_eq!(record["queue"], "backup");
    assert_eq!(record["agent"], "1002");
    let wait = record["wait_seconds"].as_f64().expect("wait_seconds");
    assert!(wait >= 3.0, "waited {wait} s before the key");

    let queue_log = std::fs::read_to_string(pbx.data_dir.join("queue_log")).expect("queue_log");
    assert!(
        queue_log
            .lines()
            .any(|line| line.contains(&format!("|{QUEUE}|NONE|EXITWITHKEY|0|"))),
        "no EXITWITHKEY line in:\n{queue_log}"
    );
    assert!(
        queue_log
            .lines()
            .any(|line| line.contains("|backup|1002|CONNECT|")),
        "no CONNECT in backup in:\n{queue_log}"
    );
}
