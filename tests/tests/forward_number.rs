//! A queue that overflows to a number dials it through the trunk's
//! outbound address; a sipp UAS plays the carrier and answers.

use std::time::Duration;

use pbx_e2e::fixtures::AudioFixtures;
use pbx_e2e::pbx::{Agent, Pbx, PbxConfig};
use pbx_e2e::phones::AgentPhone;
use pbx_e2e::raw_caller::RawCaller;
use pbx_e2e::{tools, wav};

const SIP_TIMEOUT: Duration = Duration::from_secs(5);
const NUMBER: &str = "+15550199";

#[test]
fn overflow_forwards_to_number_through_trunk() {
    tools::require(&tools::ALL);
    // The carrier's side is a sipp UAS that answers like an agent phone.
    let carrier = AgentPhone::new(&Agent {
        id: "carrier".to_owned(),
        password: String::new(),
    });
    let config = PbxConfig {
        max_wait_secs: 2,
        queue_extra: format!("music_on_hold = \"default\"\noverflow = \"number:{NUMBER}\"\n"),
        trunk_outbound: Some(format!("127.0.0.1:{}", carrier.sip_port)),
        ..PbxConfig::default()
    };
    let pbx = Pbx::start(&config);
    let work_dir = pbx.dir.path().to_path_buf();
    AudioFixtures::generate(&work_dir);
    let carrier_run = carrier.answer(&work_dir, "agent_answer.xml", Duration::from_secs(1));

    let mut caller = RawCaller::new(&pbx).expect("caller sockets");
    assert_eq!(caller.invite(SIP_TIMEOUT).expect("final response"), 200);
    caller
        .exchange_tone(Duration::from_secs(8), 440.0)
        .expect("RTP exchange");
    assert_eq!(caller.bye(SIP_TIMEOUT).expect("BYE answered"), 200);
    let carrier_outcome = carrier_run.wait();
    carrier_outcome.assert_success();

    let record = pbx.wait_for_call(caller.call_id(), Duration::from_secs(10));
    println!("call record: {record:#}");
    assert_eq!(record["disposition"], "answered");
    assert_eq!(record["forwarded_to"], NUMBER);
    assert!(
        record["agent"].is_null(),
        "no agent took it: {}",
        record["agent"]
    );
    let talk = record["talk_seconds"].as_f64().expect("talk_seconds");
    assert!(
        (4.0..7.5).contains(&talk),
        "talked {talk} s after a 2 s wait"
    );
    // The forwarded conversation is recorded like an agent's.
    let path = record["recording_path"].as_str().expect("recording_path");
    let recording = wav::Recording::open(&pbx.data_dir.join(path));
    let rms = |samples: &[i16]| {
        let sum: f64 = samples.iter().map(|&s| f64::from(s).powi(2)).sum();
        (sum / samples.len().max(1) as f64).sqrt()
    };
    assert!(rms(&recording.left) > 3000.0, "caller channel");
    assert!(rms(&recording.right) > 300.0, "carrier channel");
}
