//! A recorded call whose recording the administrator pauses and resumes
//! through the API, and the agent with its `*1` code. The WAV must be
//! silent on both channels exactly in the paused spans, and the CDR must
//! list the four events. The code's keys must never reach the caller,
//! while an ordinary key does. The mixed mono file must have the stereo
//! file's length and its own catalogue entry.

use std::thread;
use std::time::{Duration, Instant};

use pbx_e2e::pbx::{Pbx, PbxConfig};
use pbx_e2e::phones::AgentPhone;
use pbx_e2e::raw_agent::RawAgent;
use pbx_e2e::raw_caller::RawCaller;
use pbx_e2e::{tools, wav};
use serde_json::Value;

const SIP_TIMEOUT: Duration = Duration::from_secs(10);
const CDR_TIMEOUT: Duration = Duration::from_secs(10);
/// How long the caller sends its tone after the answer.
const CALLER_TALK: Duration = Duration::from_millis(9_000);
const CALLER_TONE_HZ: f64 = 440.0;
const AGENT_TONE_HZ: f64 = 1_000.0;
/// When the administrator pauses and resumes, counted from the answer.
const API_PAUSE_AT: Duration = Duration::from_millis(1_500);
const API_RESUME_AT: Duration = Duration::from_millis(3_000);
/// Largest gap between an event's offset in the CDR and the edge of its
/// silent span in the file. Sample 0 of the file is the answer and the
/// offsets are rounded to milliseconds, so the gap is about 1 ms; a
/// tone's zero crossing next to an edge can add a frame or two.
const EDGE_TOLERANCE: f64 = 0.005;
/// Shortest run of silence on both channels that counts as a span. Each
/// tone crosses zero alone, and the agent's tone stops only while it keys,
/// when the caller's tone goes on.
const MIN_SILENCE: f64 = 0.010;

#[test]
fn recording_paused_by_api_and_dtmf() {
    tools::require(&tools::ALL);
    let config = PbxConfig {
        recording_extra: "pause_code = \"*1\"\nmixed_mono = true\n".to_owned(),
        ..PbxConfig::default()
    };
    let pbx = Pbx::start(&config);
    let work_dir = pbx.dir.path().to_path_buf();
    let phone = AgentPhone::new(&config.agents[0]);
    let mut agent = RawAgent::bind(&phone.agent.id, phone.sip_port).expect("agent sockets");
    phone.register(&pbx, &work_dir);

    let agent_thread = thread::spawn(move || {
        agent.answer(SIP_TIMEOUT).expect("agent answers");
        let mut agent_received = Vec::new();
        let mut talk = |agent: &mut RawAgent, millis| {
            let received = agent
                .exchange_tone(Duration::from_millis(millis), AGENT_TONE_HZ)
                .expect("agent RTP");
            agent_received.push(received);
        };
        // The administrator pauses and resumes during the first 4.5 s.
        talk(&mut agent, 4_500);
        for key in ['*', '1'] {
            agent.press(key).expect("agent key");
        }
        talk(&mut agent, 1_500);
        for key in ['*', '1'] {
            agent.press(key).expect("agent key");
        }
        talk(&mut agent, 500);
        agent.press('5').expect("agent key");
        talk(&mut agent, 1_000);
        agent.await_bye(SIP_TIMEOUT).expect("BYE from the PBX");
        agent_received
    });

    let mut caller = RawCaller::new(&pbx).expect("caller sockets");
    let status = caller.invite(SIP_TIMEOUT).expect("final response");
    assert_eq!(status, 200, "the agent answered");
    let answered = Instant::now();
    let caller_call_id = caller.call_id().to_owned();
    let caller_thread = thread::spawn(move || {
        let received = caller
            .exchange_tone(CALLER_TALK, CALLER_TONE_HZ)
            .expect("caller RTP");
        let bye = caller.bye(SIP_TIMEOUT).expect("answer to BYE");
        (received, bye)
    });

    let call_id = live_call_id(&pbx);
    sleep_until(answered + API_PAUSE_AT);
    let paused = pbx.admin_request(
        "POST",
        &format!("/api/calls/{call_id}/recording/pause"),
        None,
    );
    assert_eq!(
        paused.status,
        200,
        "{}",
        String::from_utf8_lossy(&paused.body)
    );
    assert_eq!(paused.json()["paused"], true);
    let again = pbx.admin_request(
        "POST",
        &format!("/api/calls/{call_id}/recording/pause"),
        None,
    );
    assert_eq!(again.status, 409, "a second pause changes nothing");
    let agents = pbx.admin_request("GET", "/api/agents", None).json();
    assert_eq!(agents[0]["recording_paused"], true, "{agents}");
    sleep_until(answered + API_RESUME_AT);
    let resumed = pbx.admin_request(
        "POST",
        &format!("/api/calls/{call_id}/recording/resume"),
        None,
    );
    assert_eq!(
        resumed.status,
        200,
        "{}",
        String::from_utf8_lossy(&resumed.body)
    );

    let (caller_heard, bye_status) = caller_thread.join().expect("caller thread");
    assert_eq!(bye_status, 200);
    let agent_heard = agent_thread.join().expect("agent thread");
    println!(
        "caller heard events {:?}, agent heard {} packets",
        caller_heard.events,
        agent_heard.iter().map(|r| r.packets).sum::<usize>()
    );
    assert_eq!(
        caller_heard.events,
        [5],
        "the caller gets the agent's 5 but no key of the code"
    );

    let record = pbx.wait_for_call(&caller_call_id, CDR_TIMEOUT);
    println!("call record: {record:#}");
    assert_eq!(record["id"], call_id.as_str());
    let by_id = pbx.get(&format!("/api/calls/{call_id}"));
    assert_eq!(by_id.status, 200);
    assert_eq!(
        by_id.json(),
        record,
        "GET /api/calls/{{id}} shows the same events"
    );
    let events = recording_events(&record);
    let expected = [
        ("pause", "api", "admin"),
        ("resume", "api", "admin"),
        ("pause", "dtmf", "1001"),
        ("resume", "dtmf", "1001"),
    ];
    let found: Vec<(&str, &str, &str)> = events
        .iter()
        .map(|(action, source, actor, _)| (action.as_str(), source.as_str(), actor.as_str()))
        .collect();
    assert_eq!(found, expected);
    let offsets: Vec<f64> = events.iter().map(|event| event.3).collect();
    assert!(
        (offsets[0] - API_PAUSE_AT.as_secs_f64()).abs() < 0.5,
        "API pause at {} s",
        offsets[0]
    );
    assert!(
        offsets.windows(2).all(|pair| pair[0] < pair[1]),
        "{offsets:?}"
    );

    let path = record["recording_path"].as_str().expect("recording_path");
    let recording = wav::Recording::open(&pbx.data_dir.join(path));
    let talk_seconds = record["talk_seconds"].as_f64().expect("talk_seconds");
    let duration = recording.duration_seconds();
    assert!(
        (duration - talk_seconds).abs() <= 0.1,
        "recording lasts {duration} s, talk_seconds is {talk_seconds}"
    );

    // The silent spans of the file, away from its first and last 300 ms,
    // where one side may not have sent yet or any more.
    let rate = f64::from(recording.sample_rate);
    let spans: Vec<(f64, f64)> = silent_spans(&recording.left, &recording.right, rate)
        .into_iter()
        .filter(|(start, end)| *start > 0.3 && *end < duration - 0.3)
        .collect();
    println!("silent spans {spans:?}, pause offsets {offsets:?}");
    let expected_spans = [(offsets[0], offsets[1]), (offsets[2], offsets[3])];
    assert_eq!(spans.len(), 2, "spans {spans:?}, pauses {expected_spans:?}");
    for ((start, end), (paused_at, resumed_at)) in spans.iter().zip(expected_spans) {
        assert!(
            (start - paused_at).abs() <= EDGE_TOLERANCE,
            "silence starts at {start} s, pause at {paused_at} s"
        );
        assert!(
            (end - resumed_at).abs() <= EDGE_TOLERANCE,
            "silence ends at {end} s, resume at {resumed_at} s"
        );
    }

    check_mixed_mono(&pbx, &call_id, &recording);
}

/// Polls the live agents until agent 1001 is on a call; returns its id.
fn live_call_id(pbx: &Pbx) -> String {
    let deadline = Instant::now() + SIP_TIMEOUT;
    loop {
        let agents = pbx.admin_request("GET", "/api/agents", None).json();
        if let Some(call) = agents[0]["call_id"].as_str() {
            return call.to_owned();
        }
        assert!(Instant::now() < deadline, "no live call in {agents}");
        thread::sleep(Duration::from_millis(20));
    }
}

fn sleep_until(at: Instant) {
    thread::sleep(at.saturating_duration_since(Instant::now()));
}

/// (action, source, actor, offset_seconds) of each recording event.
fn recording_events(record: &Value) -> Vec<(String, String, String, f64)> {
    record["recording_events"]
        .as_array()
        .expect("recording_events is an array")
        .iter()
        .map(|event| {
            let text = |key: &str| event[key].as_str().unwrap_or_default().to_owned();
            let offset = event["offset_seconds"].as_f64().expect("offset_seconds");
            (text("action"), text("source"), text("actor"), offset)
        })
        .collect()
}

/// Start and end, in seconds, of every run of frames silent on both
/// channels that lasts at least [`MIN_SILENCE`].
fn silent_spans(left: &[i16], right: &[i16], rate: f64) -> Vec<(f64, f64)> {
    let mut spans = Vec::new();
    let mut start = None;
    for (frame, (&l, &r)) in left.iter().zip(right).enumerate() {
        match (l == 0 && r == 0, start) {
            (true, None) => start = Some(frame),
            (false, Some(first)) => {
                if (frame - first) as f64 >= MIN_SILENCE * rate {
                    spans.push((first as f64 / rate, frame as f64 / rate));
                }
                start = None;
            }
            _ => {}
        }
    }
    if let Some(first) = start {
        spans.push((first as f64 / rate, left.len() as f64 / rate));
    }
    spans
}

/// Checks that the mono mix has the stereo file's length and sums its
/// channels, and that the catalogue lists both files.
fn check_mixed_mono(pbx: &Pbx, call_id: &str, stereo: &wav::Recording) {
    let entries = pbx.get("/api/recordings").json();
    let entries: Vec<&Value> = entries
        .as_array()
        .expect("catalogue array")
        .iter()
        .filter(|entry| entry["call_id"] == call_id)
        .collect();
    let kinds: Vec<&str> = entries
        .iter()
        .filter_map(|entry| entry["kind"].as_str())
        .collect();
    assert_eq!(kinds, ["stereo", "mixed_mono"], "{entries:?}");
    let mixed_entry = entries[1];
    assert_eq!(mixed_entry["status"], "complete");
    let path = mixed_entry["path"].as_str().expect("mixed path");
    let bytes = std::fs::read(pbx.data_dir.join(path)).expect("mixed file");
    let size = mixed_entry["size_bytes"].as_u64().expect("size");
    assert_eq!(bytes.len() as u64, size);

    let mut reader = hound::WavReader::new(bytes.as_slice()).expect("mixed WAV");
    assert_eq!(reader.spec().channels, 1);
    assert_eq!(reader.spec().sample_rate, stereo.sample_rate);
    let mono: Vec<i16> = reader
        .samples::<i16>()
        .map(|sample| sample.expect("sample"))
        .collect();
    assert_eq!(
        mono.len(),
        stereo.left.len(),
        "same length as the stereo file"
    );
    let mismatches = mono
        .iter()
        .zip(stereo.left.iter().zip(&stereo.right))
        .filter(|(mixed, (left, right))| **mixed != left.saturating_add(**right))
        .count();
    assert_eq!(mismatches, 0, "mono frames that are not the channels' sum");
}
