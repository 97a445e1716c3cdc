//! A caller no agent takes within the queue's max wait overflows to a
//! voicemail box: greeting, tone, then its message is recorded and listed
//! with the disposition voicemail.

use std::time::Duration;

use pbx_e2e::pbx::{Pbx, PbxConfig};
use pbx_e2e::raw_caller::RawCaller;
use pbx_e2e::{tools, wav};

const SIP_TIMEOUT: Duration = Duration::from_secs(5);

#[test]
fn overflow_to_voicemail_records_the_message() {
    tools::require(&tools::ALL);
    // No agent registers, so the call overflows after 3 s.
    let config = PbxConfig {
        max_wait_secs: 3,
        queue_extra: "music_on_hold = \"default\"\noverflow = \"voicemail:general\"\n".to_owned(),
        ..PbxConfig::default()
    };
    let pbx = Pbx::start(&config);
    let mut caller = RawCaller::new(&pbx).expect("caller sockets");
    assert_eq!(caller.invite(SIP_TIMEOUT).expect("final response"), 200);
    // 3 s of waiting, about 8.5 s of greeting and tone, then the message:
    // a 440 Hz tone throughout, of which the last 5 s or so are recorded.
    let heard = caller
        .exchange_tone(Duration::from_secs(17), 440.0)
        .expect("RTP exchange");
    assert!(
        heard.rms() > 300.0,
        "music and greeting: RMS {:.0}",
        heard.rms()
    );
    assert_eq!(caller.bye(SIP_TIMEOUT).expect("BYE answered"), 200);

    let record = pbx.wait_for_call(caller.call_id(), Duration::from_secs(10));
    println!("call record: {record:#}");
    assert_eq!(record["disposition"], "voicemail");
    assert_eq!(record["voicemail_box"], "general");
    assert_eq!(record["hangup_side"], "caller");
    assert!(record["agent"].is_null());
    assert!(record["caller_answered_at"].is_string());
    let wait = record["wait_seconds"].as_f64().expect("wait_seconds");
    assert!(
        (2.5..4.0).contains(&wait),
        "waited {wait} s for a 3 s max wait"
    );
    let path = record["recording_path"].as_str().expect("recording_path");
    assert!(path.starts_with("voicemail/general/"), "{path}");
    let seconds = record["recording_seconds"]
        .as_f64()
        .expect("recording_seconds");
    assert!((3.0..7.0).contains(&seconds), "message of {seconds} s");

    let recording = wav::Recording::open(&pbx.data_dir.join(path));
    let rms = |samples: &[i16]| {
        let sum: f64 = samples.iter().map(|&s| f64::from(s).powi(2)).sum();
        (sum / samples.len().max(1) as f64).sqrt()
    };
    println!(
        "message: {:.2} s, caller RMS {:.0}, agent RMS {:.0}",
        recording.duration_seconds(),
        rms(&recording.left),
        rms(&recording.right)
    );
    // The tone's RMS is 8,000 / sqrt(2), about 5,700.
    assert!(
        rms(&recording.left) > 3000.0,
        "the caller's message is missing"
    );
    assert!(
        rms(&recording.right) < 50.0,
        "nobody spoke on the agent side"
    );
    assert!((recording.duration_seconds() - seconds).abs() < 0.2);

    let listed = pbx.get("/api/calls?disposition=voicemail").json();
    let ids: Vec<&str> = listed
        .as_array()
        .expect("a list")
        .iter()
        .filter_map(|call| call["id"].as_str())
        .collect();
    assert_eq!(ids, [record["id"].as_str().expect("id")]);
}
