//! A waiting caller presses * to be called back: the PBX confirms and hangs
//! up. The PBX is then killed and started again, and once an agent
//! registers it rings the agent (a sipp UAS), then dials the caller's
//! number through the trunk's outbound address, where a second sipp UAS
//! plays the citizen, answers and hangs up.

use std::time::{Duration, Instant};

use pbx_e2e::fixtures::AudioFixtures;
use pbx_e2e::pbx::{Agent, Pbx, PbxConfig};
use pbx_e2e::phones::{AgentPhone, CALLER_NUMBER};
use pbx_e2e::raw_caller::RawCaller;
use pbx_e2e::{tools, wav};
use serde_json::Value;

const SIP_TIMEOUT: Duration = Duration::from_secs(5);
/// RFC 4733 event code of the * key.
const STAR: u8 = 10;

#[test]
fn star_key_gets_a_callback() {
    tools::require(&tools::ALL);
    let agent = Agent {
        id: "1001".to_owned(),
        password: "e2e-secret-1001".to_owned(),
    };
    let phone = AgentPhone::new(&agent);
    let citizen = AgentPhone::new(&Agent {
        id: "citizen".to_owned(),
        password: String::new(),
    });
    let config = PbxConfig {
        agents: vec![agent],
        max_wait_secs: 120,
        queue_extra: "music_on_hold = \"default\"\nexit_keys = { \"*\" = \"callback\" }\n"
            .to_owned(),
        trunk_outbound: Some(format!("127.0.0.1:{}", citizen.sip_port)),
        ..PbxConfig::default()
    };
    let mut pbx = Pbx::start(&config);
    let work_dir = pbx.dir.path().to_path_buf();
    AudioFixtures::generate(&work_dir);

    // No agent is registered, so the caller waits with music.
    let mut caller = RawCaller::new(&pbx).expect("caller sockets");
    assert_eq!(caller.invite(SIP_TIMEOUT).expect("final response"), 200);
    caller
        .exchange_audio(Duration::from_secs(1))
        .expect("RTP exchange");
    caller.press(STAR).expect("key sent");
    let heard = caller
        .exchange_audio(Duration::from_secs(3))
        .expect("confirmation plays");
    assert!(heard.rms() > 300.0, "the confirmation is audible");
    caller
        .wait_for_bye(Duration::from_secs(20))
        .expect("the PBX hangs up after the confirmation");
    let request = pbx.wait_for_call(caller.call_id(), Duration::from_secs(10));
    println!("request record: {request:#}");
    assert_eq!(request["disposition"], "callback");
    let request_id = request["id"].as_str().expect("id").to_owned();

    // The request is stored, so a crash does not lose it.
    pbx.restart();
    assert!(
        pbx.wait_for_log("restored callback requests", Duration::from_secs(10)),
        "{}",
        pbx.logs()
    );

    // The agent comes in and takes the request; the citizen answers and
    // hangs up after four seconds.
    let citizen_run = citizen.answer(&work_dir, "agent_answer_hangup.xml", Duration::from_secs(4));
    let agent_run = phone.answer(&work_dir, "agent_answer.xml", Duration::ZERO);
    phone.register(&pbx, &work_dir);
    citizen_run.wait().assert_success();
    agent_run.wait().assert_success();

    let record = wait_for_callback(&pbx, &request_id, Duration::from_secs(10));
    println!("callback record: {record:#}");
    assert_eq!(record["disposition"], "answered");
    assert_eq!(record["agent"], "1001");
    assert_eq!(record["caller"], CALLER_NUMBER);
    assert_eq!(record["hangup_side"], "caller");
    let talk = record["talk_seconds"].as_f64().expect("talk_seconds");
    assert!((3.0..7.0).contains(&talk), "talked {talk} s");
    let path = record["recording_path"].as_str().expect("recording_path");
    let recording = wav::Recording::open(&pbx.data_dir.join(path));
    let rms = |samples: &[i16]| {
        let sum: f64 = samples.iter().map(|&s| f64::from(s).powi(2)).sum();
        (sum / samples.len().max(1) as f64).sqrt()
    };
    assert!(rms(&recording.left) > 300.0, "citizen channel");
    assert!(rms(&recording.right) > 300.0, "agent channel");

    let queue_log = std::fs::read_to_string(pbx.data_dir.join("queue_log")).expect("queue_log");
    let lines: Vec<&str> = queue_log
        .lines()
        .filter(|line| line.contains(&request_id))
        .collect();
    for event in ["ENTERQUEUE", "CALLBACKREQUEST", "CONNECT"] {
        assert!(
            lines
                .iter()
                .any(|line| line.contains(&format!("|{event}|"))),
            "{event} missing from {lines:#?}"
        );
    }
}

/// Polls `GET /api/calls` for the record of the call that returned `request`.
fn wait_for_callback(pbx: &Pbx, request: &str, timeout: Duration) -> Value {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(record) = pbx
            .calls()
            .into_iter()
            .find(|call| call["callback_of"] == request)
        {
            return record;
        }
        assert!(
            Instant::now() < deadline,
            "no callback record for {request}: {:?}\n{}",
            pbx.calls(),
            pbx.logs()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// A kill -9 while the citizen's phone rings: the restarted PBX cancels
/// that INVITE, hangs up the agent, records the cut call as interrupted
/// and puts the request back in the queue.
#[test]
fn crash_while_the_citizen_rings_keeps_the_request() {
    // The citizen's phone only rings: a bare UDP socket that answers 180.
    let (mut pbx, phone, citizen, request_id) = request_with_raw_citizen("");
    let work_dir = pbx.dir.path().to_path_buf();

    let agent_run = phone.answer(&work_dir, "agent_answer.xml", Duration::ZERO);
    phone.register(&pbx, &work_dir);
    let invite = receive(&citizen, "INVITE ", Duration::from_secs(15));
    let ringing = response_to(&invite, "180 Ringing");
    citizen
        .send_to(ringing.as_bytes(), pbx.sip)
        .expect("send 180");

    pbx.restart();
    let cancel = receive(&citizen, "CANCEL ", Duration::from_secs(10));
    assert_eq!(header(&cancel, "Call-ID"), header(&invite, "Call-ID"));
    let agent = agent_run.wait();
    agent.assert_success();

    let deadline = Instant::now() + Duration::from_secs(10);
    let cut = loop {
        if let Some(record) = pbx
            .calls()
            .into_iter()
            .find(|call| call["callback_of"] == request_id.as_str())
        {
            break record;
        }
        assert!(Instant::now() < deadline, "no record of the cut callback");
        std::thread::sleep(Duration::from_millis(100));
    };
    assert_eq!(cut["interrupted"], true);
    assert!(cut["answered_at"].is_null());
    assert!(
        pbx.wait_for_log("restored callback requests", Duration::from_secs(10)),
        "the request is back in the queue\n{}",
        pbx.logs()
    );
}

/// The citizen's line is busy at both attempts the queue allows: the PBX
/// rings the agent and dials the citizen twice, `callback_retry_secs`
/// apart, then gives the request up. The queue_log and the queue report
/// count no answer.
#[test]
fn busy_citizen_is_tried_again_then_given_up() {
    let from = time::OffsetDateTime::now_utc() - time::Duration::minutes(1);
    // The citizen's line: a bare UDP socket that answers 486 Busy Here.
    let (pbx, phone, citizen, request_id) =
        request_with_raw_citizen("callback_attempts = 2\ncallback_retry_secs = 3\n");
    let work_dir = pbx.dir.path().to_path_buf();

    let mut dialed = Vec::new();
    let mut busy_at: Option<Instant> = None;
    for attempt in 1..=2 {
        // The agent's sipp answers one call, so each attempt gets its own.
        let agent_run = phone.answer(&work_dir, "agent_answer.xml", Duration::ZERO);
        if attempt == 1 {
            phone.register(&pbx, &work_dir);
        }
        let invite = loop {
            let invite = receive(&citizen, "INVITE ", Duration::from_secs(15));
            // Skip retransmissions of an INVITE already answered.
            if !dialed.contains(&header(&invite, "Call-ID").map(str::to_owned)) {
                break invite;
            }
        };
        if let Some(busy_at) = busy_at {
            let gap = Instant::now().duration_since(busy_at);
            println!("attempt {attempt} dialed {gap:?} after the busy line");
            // The PBX starts the delay when it reads the 486, after this
            // side sent it, so the gap cannot be shorter than the delay.
            assert!(gap >= Duration::from_millis(2900), "retried after {gap:?}");
        }
        dialed.push(header(&invite, "Call-ID").map(str::to_owned));
        citizen
            .send_to(response_to(&invite, "486 Busy Here").as_bytes(), pbx.sip)
            .expect("send 486");
        busy_at = Some(Instant::now());
        agent_run.wait().assert_success();
    }
    assert_eq!(dialed.len(), 2);

    let deadline = Instant::now() + Duration::from_secs(10);
    let lines = loop {
        let queue_log = std::fs::read_to_string(pbx.data_dir.join("queue_log")).expect("queue_log");
        let lines: Vec<String> = queue_log
            .lines()
            .filter(|line| line.contains(&request_id))
            .map(str::to_owned)
            .collect();
        if lines.iter().any(|line| line.contains("|CALLBACKFAILED|")) {
            break lines;
        }
        assert!(Instant::now() < deadline, "no CALLBACKFAILED in {lines:#?}");
        std::thread::sleep(Duration::from_millis(100));
    };
    println!("{lines:#?}");
    let events: Vec<&str> = lines
        .iter()
        .filter_map(|line| line.split('|').nth(4))
        .collect();
    assert_eq!(
        events,
        [
            "ENTERQUEUE",
            "CALLBACKREQUEST",
            "CALLBACKRETRY",
            "CALLBACKFAILED"
        ]
    );
    assert!(
        lines[2].contains("|1001|CALLBACKRETRY|busy|1|"),
        "{}",
        lines[2]
    );
    assert!(
        lines[3].contains("|1001|CALLBACKFAILED|busy|2|"),
        "{}",
        lines[3]
    );

    // Both attempts left a CDR of their own, each failed with 486.
    let attempts: Vec<Value> = pbx
        .calls()
        .into_iter()
        .filter(|call| call["callback_of"] == request_id.as_str())
        .collect();
    assert_eq!(attempts.len(), 2, "{attempts:#?}");
    for record in &attempts {
        assert_eq!(record["disposition"], "failed");
        assert_eq!(record["sip_status"], 486);
    }

    let to = time::OffsetDateTime::now_utc() + time::Duration::minutes(1);
    let format = time::format_description::well_known::Rfc3339;
    let reply = pbx.get(&format!(
        "/api/reports/queues?from={}&to={}",
        from.format(&format).expect("format"),
        to.format(&format).expect("format")
    ));
    assert_eq!(reply.status, 200);
    let report: Value = serde_json::from_slice(&reply.body).expect("report is JSON");
    println!("report: {report:#}");
    let kpi = &report["queues"][0];
    assert_eq!(kpi["offered"], 1);
    assert_eq!(kpi["answered"], 0);
    assert_eq!(kpi["callbacks_not_reached"], 1);
    assert_eq!(kpi["unresolved"], 0);
}

/// Starts a PBX whose trunk dials a bare UDP socket, the citizen's line,
/// with `queue_extra` added to the queue, and has a waiting caller press *
/// for a callback. Returns the PBX, the agent's phone (not registered yet),
/// the citizen's socket and the request's id.
fn request_with_raw_citizen(queue_extra: &str) -> (Pbx, AgentPhone, std::net::UdpSocket, String) {
    tools::require(&tools::ALL);
    let agent = Agent {
        id: "1001".to_owned(),
        password: "e2e-secret-1001".to_owned(),
    };
    let phone = AgentPhone::new(&agent);
    let citizen = std::net::UdpSocket::bind("127.0.0.1:0").expect("citizen socket");
    let citizen_port = citizen.local_addr().expect("address").port();
    let config = PbxConfig {
        agents: vec![agent],
        max_wait_secs: 120,
        queue_extra: format!(
            "music_on_hold = \"default\"\nexit_keys = {{ \"*\" = \"callback\" }}\n{queue_extra}"
        ),
        trunk_outbound: Some(format!("127.0.0.1:{citizen_port}")),
        ..PbxConfig::default()
    };
    let pbx = Pbx::start(&config);
    AudioFixtures::generate(pbx.dir.path());

    let mut caller = RawCaller::new(&pbx).expect("caller sockets");
    assert_eq!(caller.invite(SIP_TIMEOUT).expect("final response"), 200);
    caller
        .exchange_audio(Duration::from_secs(1))
        .expect("RTP exchange");
    caller.press(STAR).expect("key sent");
    caller
        .wait_for_bye(Duration::from_secs(20))
        .expect("the PBX hangs up after the confirmation");
    let request = pbx.wait_for_call(caller.call_id(), Duration::from_secs(10));
    let request_id = request["id"].as_str().expect("id").to_owned();
    (pbx, phone, citizen, request_id)
}

/// Waits for a SIP request starting with `start` on `socket`.
fn receive(socket: &std::net::UdpSocket, start: &str, timeout: Duration) -> String {
    let deadline = Instant::now() + timeout;
    let mut buffer = [0u8; 8192];
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        assert!(!left.is_zero(), "no {start}within {timeout:?}");
        socket.set_read_timeout(Some(left)).expect("timeout");
        let Ok((len, _)) = socket.recv_from(&mut buffer) else {
            continue;
        };
        let text = String::from_utf8_lossy(&buffer[..len]).into_owned();
        if text.starts_with(start) {
            return text;
        }
    }
}

fn header<'a>(text: &'a str, name: &str) -> Option<&'a str> {
    text.split("\r\n").find_map(|line| {
        let (key, value) = line.split_once(':')?;
        key.trim().eq_ignore_ascii_case(name).then(|| value.trim())
    })
}

/// Builds a response to `request` with its dialog and transaction headers
/// copied and a To tag added.
fn response_to(request: &str, status: &str) -> String {
    let mut lines = vec![format!("SIP/2.0 {status}")];
    for line in request.split("\r\n").skip(1) {
        let name = line.split(':').next().unwrap_or_default().trim();
        if name.eq_ignore_ascii_case("To") {
            lines.push(format!("{line};tag=citizen"));
        } else if ["Via", "From", "Call-ID", "CSeq"]
            .iter()
            .any(|wanted| name.eq_ignore_ascii_case(wanted))
        {
            lines.push(line.to_owned());
        }
    }
    lines.push("Content-Length: 0".to_owned());
    format!("{}\r\n\r\n", lines.join("\r\n"))
}
