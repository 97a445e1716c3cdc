//! A caller that offers only G.722 waits with music encoded in G.722, then
//! an agent phone answering PCMU takes the call: the relay transcodes both
//! ways and the recording is 16 kHz because the caller's leg is wideband.

use std::time::Duration;

use pbx_e2e::fixtures::AudioFixtures;
use pbx_e2e::pbx::{Agent, Pbx, PbxConfig};
use pbx_e2e::phones::AgentPhone;
use pbx_e2e::raw_caller::RawCaller;
use pbx_e2e::{tools, wav};

const SIP_TIMEOUT: Duration = Duration::from_secs(5);
/// Far above silence, below the built-in music's level.
const AUDIBLE_RMS: f64 = 300.0;

#[test]
fn g722_caller_is_transcoded_to_a_pcmu_agent() {
    tools::require(&tools::ALL);
    let agent = Agent {
        id: "1001".to_owned(),
        password: "e2e-secret-1001".to_owned(),
    };
    let config = PbxConfig {
        agents: vec![agent.clone()],
        queue_extra: "music_on_hold = \"default\"\n".to_owned(),
        ..PbxConfig::default()
    };
    let pbx = Pbx::start(&config);
    let work_dir = pbx.dir.path().to_path_buf();
    AudioFixtures::generate(&work_dir);

    let mut caller = RawCaller::new(&pbx).expect("caller sockets").g722();
    assert_eq!(caller.invite(SIP_TIMEOUT).expect("final response"), 200);
    let waiting = caller
        .exchange_audio(Duration::from_secs(3))
        .expect("RTP exchange");
    println!(
        "waiting: {} packets, payload types {:?}, RMS {:.0}",
        waiting.packets,
        waiting.payload_types,
        waiting.rms()
    );
    assert_eq!(waiting.payload_types, [9], "music comes in G.722");
    assert!(waiting.rms() > AUDIBLE_RMS, "RMS {:.0}", waiting.rms());

    // The agent's phone (sipp, PCMU) answers; the caller keeps G.722.
    let phone = AgentPhone::new(&agent);
    let agent_run = phone.answer(&work_dir, "agent_answer.xml", Duration::ZERO);
    phone.register(&pbx, &work_dir);
    let talking = caller
        .exchange_tone(Duration::from_secs(6), 440.0)
        .expect("RTP exchange");
    println!(
        "talking: {} packets, payload types {:?}, RMS {:.0}",
        talking.packets,
        talking.payload_types,
        talking.rms()
    );
    assert_eq!(talking.payload_types, [9], "the caller never gets PCMU");
    assert!(
        talking.rms() > AUDIBLE_RMS,
        "the agent's audio reaches the caller"
    );
    assert_eq!(caller.bye(SIP_TIMEOUT).expect("BYE answered"), 200);
    agent_run.wait().assert_success();

    let record = pbx.wait_for_call(caller.call_id(), Duration::from_secs(10));
    assert_eq!(record["disposition"], "answered");
    let path = record["recording_path"].as_str().expect("recording_path");
    let recording = wav::Recording::open(&pbx.data_dir.join(path));
    assert_eq!(recording.sample_rate, 16_000);
    let rms = |samples: &[i16]| {
        let sum: f64 = samples.iter().map(|&s| f64::from(s).powi(2)).sum();
        (sum / samples.len().max(1) as f64).sqrt()
    };
    assert!(
        rms(&recording.left) > 3000.0,
        "caller's tone: {:.0}",
        rms(&recording.left)
    );
    assert!(rms(&recording.right) > AUDIBLE_RMS, "agent channel");
    let talk = record["talk_seconds"].as_f64().expect("talk_seconds");
    assert!(
        (recording.duration_seconds() - talk).abs() < 0.1,
        "recording {} s for {talk} s of talk",
        recording.duration_seconds()
    );
}
