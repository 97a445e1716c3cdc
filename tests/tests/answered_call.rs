//! A call through the queue answered by a registered agent: signalling, the
//! call record in the API and in cdr.jsonl, and the stereo recording; once
//! with the relay in the PBX's process and once in worker processes.

use std::time::Duration;

use pbx_e2e::fixtures::{AudioFixtures, SAMPLE_RATE};
use pbx_e2e::pbx::{DID, Pbx, PbxConfig, QUEUE, TRUNK};
use pbx_e2e::phones::{self, AgentPhone, CALLER_NUMBER};
use pbx_e2e::{tools, wav};

/// Time between the caller's ACK and its BYE; longer than either sentence.
const TALK: Duration = Duration::from_secs(7);
const CDR_TIMEOUT: Duration = Duration::from_secs(10);

#[test]
fn answered_call_recorded_and_logged() {
    tools::require(&tools::ALL);
    let config = PbxConfig::default();
    let pbx = Pbx::start(&config);
    answered_call(&config, &pbx);
    engine_thread_is_reniced(&pbx);
}

/// Checks that the runtime worker that ran the engine took `sip.engine_nice`
/// (-10 by default) where the PBX may lower a nice value, or that the PBX
/// warned where it may not.
fn engine_thread_is_reniced(pbx: &Pbx) {
    // CAP_SYS_NICE is bit 23 of the effective capabilities; the PBX is a
    // child of this process and inherits them.
    let status = std::fs::read_to_string("/proc/self/status").expect("read status");
    let may_renice = status
        .lines()
        .find_map(|line| line.strip_prefix("CapEff:"))
        .and_then(|caps| u64::from_str_radix(caps.trim(), 16).ok())
        .is_some_and(|caps| caps & (1 << 23) != 0);
    let mut workers = Vec::new();
    let tasks = std::fs::read_dir(format!("/proc/{}/task", pbx.pid())).expect("list threads");
    for task in tasks.flatten() {
        let name = std::fs::read_to_string(task.path().join("comm")).unwrap_or_default();
        if name.trim() != "tokio-rt-worker" {
            continue;
        }
        let stat = std::fs::read_to_string(task.path().join("stat")).unwrap_or_default();
        let after_name = stat.rsplit_once(')').map_or("", |(_, rest)| rest);
        // Field 19 of stat; field 3 (the state) comes first after the name.
        let nice: i32 = after_name
            .split_whitespace()
            .nth(19 - 3)
            .and_then(|nice| nice.parse().ok())
            .expect("nice field");
        workers.push(nice);
    }
    if may_renice {
        assert!(workers.contains(&-10), "worker nice values: {workers:?}");
    } else {
        assert!(
            pbx.logs().contains("SIP engine keeps the normal share"),
            "no warning without CAP_SYS_NICE: {workers:?}"
        );
    }
}

/// The same call with `media.relay_processes = 2`: the workers relay and
/// record it, and they end with the PBX.
#[test]
fn answered_call_through_relay_workers() {
    tools::require(&tools::ALL);
    let config = PbxConfig {
        media_extra: "relay_processes = 2\n".to_owned(),
        ..PbxConfig::default()
    };
    let mut pbx = Pbx::start(&config);
    let workers = children_of(pbx.pid());
    assert_eq!(workers.len(), 2, "two relay workers: {workers:?}");
    for worker in &workers {
        let command = std::fs::read(format!("/proc/{worker}/cmdline")).unwrap_or_default();
        let command = String::from_utf8_lossy(&command).replace('\0', " ");
        assert!(
            command.contains("relay-worker"),
            "worker {worker}: {command}"
        );
    }
    answered_call(&config, &pbx);
    pbx.stop();
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while workers
        .iter()
        .any(|worker| std::path::Path::new(&format!("/proc/{worker}")).exists())
    {
        assert!(
            std::time::Instant::now() < deadline,
            "relay workers outlived the PBX"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A relay worker killed during an answered call: the PBX hangs up both
/// legs at once rather than leaving them without media, and the CDR keeps
/// the part of the recording written before the kill.
#[test]
fn killed_relay_worker_ends_its_call() {
    tools::require(&tools::ALL);
    let config = PbxConfig {
        media_extra: "relay_processes = 1\n".to_owned(),
        ..PbxConfig::default()
    };
    let pbx = Pbx::start(&config);
    let work_dir = pbx.dir.path().to_path_buf();
    let _audio = AudioFixtures::generate(&work_dir);
    let phone = AgentPhone::new(&config.agents[0]);
    let agent_run = phone.answer(&work_dir, "agent_answer.xml", TALK);
    phone.register(&pbx, &work_dir);
    let caller_run =
        phones::caller(&pbx, &work_dir, "caller_wait_bye.xml", "127.0.0.1", DID).spawn();
    let deadline = std::time::Instant::now() + CDR_TIMEOUT;
    while pbx.get("/api/agents").json()[0]["state"] != "on_call" {
        assert!(
            std::time::Instant::now() < deadline,
            "agent never on the call"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    // Two seconds of audio reach the file first. The last second stays
    // in the worker's memory (the recording's jitter window) and dies
    // with it.
    std::thread::sleep(Duration::from_secs(3));
    let [worker] = children_of(pbx.pid())[..] else {
        panic!("one relay worker");
    };
    let killed = std::process::Command::new("kill")
        .args(["-KILL", &worker.to_string()])
        .status()
        .expect("kill runs");
    assert!(killed.success());

    // Both phones wait for the PBX's BYE, so they end only if it came.
    let caller = caller_run.wait();
    caller.assert_success();
    agent_run.wait().assert_success();
    let caller_call_id = caller.call_id().expect("caller Call-ID");
    let record = pbx.wait_for_call(&caller_call_id, CDR_TIMEOUT);
    println!("call record: {record:#}");
    assert_eq!(record["disposition"], "answered");
    assert_eq!(record["hangup_side"], "system");
    let talk_seconds = record["talk_seconds"].as_f64().expect("talk_seconds");
    assert!(
        talk_seconds < 5.0,
        "ended at the kill, not later: {talk_seconds} s"
    );
    let path = record["recording_path"].as_str().expect("recording kept");
    let recording = wav::Recording::open(&pbx.data_dir.join(path));
    let recorded = recording.duration_seconds();
    assert!(recorded > 1.0, "audio before the kill kept: {recorded} s");
    let seconds = record["recording_seconds"]
        .as_f64()
        .expect("recording_seconds");
    assert!(
        (recorded - seconds).abs() <= 0.05,
        "{recorded} s on disk, {seconds} s in the CDR"
    );
    assert!(pbx.logs().contains("media relay lost"), "{}", pbx.logs());
    let metrics = String::from_utf8(pbx.get("/metrics").body).expect("UTF-8 metrics");
    assert!(
        metrics.contains("pbx_relay_worker_exits_total 1\n"),
        "{metrics}"
    );
}

/// Process ids whose parent is `parent`.
fn children_of(parent: u32) -> Vec<u32> {
    let mut children = Vec::new();
    for entry in std::fs::read_dir("/proc").expect("read /proc").flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let stat = std::fs::read_to_string(entry.path().join("stat")).unwrap_or_default();
        // The parent follows the command name in parentheses and the state.
        let after_name = stat.rsplit_once(')').map_or("", |(_, rest)| rest);
        if after_name.split_whitespace().nth(1) == Some(&parent.to_string()) {
            children.push(pid);
        }
    }
    children
}

fn answered_call(config: &PbxConfig, pbx: &Pbx) {
    let work_dir = pbx.dir.path().to_path_buf();
    let audio = AudioFixtures::generate(&work_dir);
    let phone = AgentPhone::new(&config.agents[0]);

    let agent_run = phone.answer(&work_dir, "agent_answer.xml", TALK);
    phone.register(pbx, &work_dir);
    let caller = phones::caller(pbx, &work_dir, "caller_hangup.xml", "127.0.0.1", DID)
        .pause(TALK)
        .run();
    caller.assert_success();
    let agent = agent_run.wait();
    agent.assert_success();

    let caller_call_id = caller
        .call_id()
        .expect("Call-ID in the caller's message log");
    let agent_call_id = agent.call_id().expect("Call-ID in the agent's message log");
    let record = pbx.wait_for_call(&caller_call_id, CDR_TIMEOUT);
    println!("call record: {record:#}");

    assert_eq!(record["disposition"], "answered");
    assert_eq!(record["queue"], QUEUE);
    assert_eq!(record["agent"], config.agents[0].id.as_str());
    assert_eq!(record["caller"], CALLER_NUMBER);
    assert_eq!(record["dialed"], DID);
    assert_eq!(record["trunk"], TRUNK);
    assert_eq!(record["caller_call_id"], caller_call_id.as_str());
    assert_eq!(record["agent_call_id"], agent_call_id.as_str());
    assert_ne!(
        record["caller_call_id"], record["agent_call_id"],
        "a B2BUA uses a new Call-ID per leg"
    );
    assert_eq!(record["hangup_side"], "caller");
    assert!(
        record["answered_at"].is_string(),
        "answered_at: {}",
        record["answered_at"]
    );
    let talk_seconds = record["talk_seconds"]
        .as_f64()
        .expect("talk_seconds is a number");
    assert!(
        (talk_seconds - TALK.as_secs_f64()).abs() < 1.0,
        "talk_seconds {talk_seconds} is not close to the caller's {TALK:?} between ACK and BYE"
    );

    // Both phones streamed a clean pcap over loopback: nothing lost, so
    // the estimate sits near the G.711 ceiling.
    for leg in ["caller", "agent"] {
        let quality = &record["media_quality"][leg];
        let received = quality["packets_received"].as_u64().unwrap_or(0);
        assert!(received > 100, "{leg} packets received: {quality}");
        assert_eq!(quality["packets_lost"], 0, "{leg}: {quality}");
        let mos = quality["mos"].as_f64().unwrap_or(0.0);
        assert!(mos > 4.0, "{leg} MOS {mos}: {quality}");
        // The call is recorded, so each leg reports how much of its audio
        // missed the recording. A busy CI host may delay a packet or two.
        let late = quality["recording_late_ms"].as_u64();
        assert!(late.is_some_and(|ms| ms < 1000), "{leg}: {quality}");
    }

    let id = record["id"].as_str().expect("id is a string");
    let line = pbx.cdr_lines().into_iter().find(|line| line["id"] == id);
    assert_eq!(
        line.as_ref(),
        Some(&record),
        "cdr.jsonl line differs from GET /api/calls"
    );

    let recording_path = record["recording_path"]
        .as_str()
        .expect("recording_path is a string");
    let recording_seconds = record["recording_seconds"]
        .as_f64()
        .expect("recording_seconds is a number");
    let file = pbx.data_dir.join(recording_path);
    let recording = wav::Recording::open(&file);
    assert_eq!(recording.channels, 2);
    assert_eq!(recording.sample_rate, SAMPLE_RATE);
    assert_eq!(recording.bits_per_sample, 16);
    let duration = recording.duration_seconds();
    assert!(
        (duration - talk_seconds).abs() <= 0.2,
        "recording lasts {duration} s, talk_seconds is {talk_seconds}"
    );
    assert!(
        (duration - recording_seconds).abs() <= 0.05,
        "recording lasts {duration} s, recording_seconds is {recording_seconds}"
    );

    let download = pbx.get(&format!("/api/calls/{id}/recording"));
    assert_eq!(download.status, 200);
    let on_disk = std::fs::read(&file).expect("read recording");
    assert_eq!(
        download.body.len(),
        on_disk.len(),
        "downloaded recording size"
    );
    assert!(
        download.body == on_disk,
        "downloaded recording differs from {}",
        file.display()
    );

    check_channel(
        "left (caller)",
        &recording.left,
        &audio.caller.reference,
        &audio.agent.reference,
    );
    check_channel(
        "right (agent)",
        &recording.right,
        &audio.agent.reference,
        &audio.caller.reference,
    );

    // The queue_log has the call's life in Asterisk's format.
    let queue_log =
        std::fs::read_to_string(pbx.data_dir.join("queue_log")).expect("queue_log written");
    let events: Vec<&str> = queue_log
        .lines()
        .filter(|line| line.split('|').nth(1) == Some(id))
        .filter_map(|line| line.split('|').nth(4))
        .collect();
    println!("queue_log events of the call: {events:?}");
    for expected in ["ENTERQUEUE", "CONNECT", "COMPLETECALLER"] {
        assert!(
            events.contains(&expected),
            "{expected} missing from the queue_log:\n{queue_log}"
        );
    }
}

/// Asserts that `channel` carries `own` and not `other`.
fn check_channel(name: &str, channel: &[i16], own: &[i16], other: &[i16]) {
    // The audio starts after the answer, so it lags; a small lead allows for
    // a recording started a little after the first packet.
    let (lead, delay) = (wav::samples(0.5), wav::samples(3.0));
    let own_match = wav::align(channel, own, lead, delay);
    let other_match = wav::align(channel, other, lead, delay);
    println!("{name}: own {own_match:?}, other {other_match:?}");

    assert!(
        own_match.correlation > 0.5,
        "{name}: correlation with its own audio {own_match:?}"
    );
    assert!(
        other_match.correlation < own_match.correlation - 0.3,
        "{name}: the other side's audio correlates too well: {other_match:?} vs own {own_match:?}"
    );
}
