use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Duration;

use super::error::{Location, RtpPortsProblem};
use super::*;

pub(super) const ORIGIN: &str = "test.toml";

pub(super) fn errors_of(text: &str) -> Vec<String> {
    match Config::parse(text, ORIGIN) {
        Ok(config) => panic!("expected errors, parsed {config:?}"),
        Err(errors) => errors.0.iter().map(ToString::to_string).collect(),
    }
}

pub(super) fn assert_has(errors: &[String], expected: &str) {
    assert!(
        errors.iter().any(|error| error == expected),
        "missing {expected:?} in {errors:#?}"
    );
}

#[test]
fn embedded_default_validates() {
    let config = Config::embedded_default();
    assert_eq!(config.data_dir, PathBuf::from("data"));
    assert_eq!(
        config.sip.listen,
        "0.0.0.0:5060".parse::<SocketAddr>().unwrap()
    );
    assert_eq!(
        config.sip.advertised_address,
        IpAddr::V4(Ipv4Addr::LOCALHOST)
    );
    assert_eq!(config.sip.domain, "pbx.local");
    assert_eq!(
        config.http.listen,
        "127.0.0.1:8080".parse::<SocketAddr>().unwrap()
    );
    assert_eq!(
        config.media.advertised_address,
        IpAddr::V4(Ipv4Addr::LOCALHOST)
    );
    assert_eq!(config.media.rtp_ports, 20000..=20999);
    assert_eq!(
        config.registrar,
        RegistrarConfig {
            min_expires: 60,
            max_expires: 3600,
            default_expires: 600,
            max_contacts: 5,
            qualify_interval: Some(Duration::from_secs(30)),
            qualify_timeout: Duration::from_secs(5),
        }
    );
    assert!(config.recording.enabled);
    assert_eq!(config.recording.retention_days, 0);
    let ids: Vec<_> = config.agents.iter().map(|a| a.id.as_str()).collect();
    assert_eq!(ids, ["1001", "1002"]);
    assert!(config.agents.iter().all(|a| a.password.is_none()));
    assert_eq!(config.trunks.len(), 1);
    assert!(
        config.trunks[0]
            .allow
            .iter()
            .any(|n| n.contains("127.0.0.1".parse().unwrap()))
    );
    assert!(
        config.trunks[0]
            .allow
            .iter()
            .any(|n| n.contains("::1".parse().unwrap()))
    );
    assert_eq!(config.queues[0].name, "general");
    assert_eq!(config.queues[0].agents, ["1001", "1002"]);
    assert_eq!(config.queues[0].ring_timeout, Duration::from_secs(15));
    assert_eq!(config.queues[0].max_wait, Duration::from_secs(120));
    assert_eq!(config.queues[0].retry_delay, Duration::from_secs(5));
    assert_eq!(config.queues[0].wrap_up, Duration::ZERO);
    assert_eq!(
        config.queues[0].acd,
        acd::QueueConfig {
            name: "general".to_owned(),
            ring_timeout: Duration::from_secs(15),
            max_wait: Duration::from_secs(120),
            retry_delay: Duration::from_secs(5),
            wrap_up: Duration::ZERO,
            reject_delay: Duration::from_secs(10),
            busy_delay: Duration::from_secs(10),
            ..acd::QueueConfig::default()
        }
    );
    assert_eq!(config.queues[0].music_on_hold, MusicOnHold::BuiltIn);
    assert_eq!(
        config.queues[0].announce_every,
        Some(Duration::from_secs(45))
    );
    assert!(config.queues[0].announce_position && config.queues[0].announce_wait);
    assert_eq!(config.media.prompts_dir, None);
    assert!(config.agents.iter().all(|a| a.skills.is_empty()));
    assert_eq!(
        config.dids,
        [DidConfig {
            number: "5000".to_owned(),
            queue: "general".to_owned(),
            priority: 0,
            skills: Vec::new(),
            request_type: None,
        }]
    );
    assert_eq!(config.caller_order, acd::CallerOrder::LongestWaiting);
}

/// The commented examples in configs/pbx.toml must stay valid when a reader
/// uncomments them, so this test does that and checks what they set.
#[test]
fn embedded_examples_validate() {
    let uncommented: String = EMBEDDED_TEXT
        .lines()
        .map(|line| {
            let example = [
                "# skills = ",
                "# max_length = ",
                "# join_empty = ",
                "# leave_empty = ",
                "# exit_keys = ",
                "# request_type = ",
                "# [[queues.steps]]",
                "# after_secs = ",
                "# keep = ",
                "# any_agent = ",
                "# overflow = ",
                "# outbound = ",
                "# country_code = ",
                "# national_prefix = ",
                "# international_prefix = ",
                "# trust_identity = ",
                "# [trunks.register]",
                "# registrar = ",
                "# transport = ",
                "# domain = ",
                "# user = ",
                "# auth_user = ",
                "# password = \"provider-",
                "# contact_user = ",
                "# expires_secs = ",
                "# retry_secs = ",
                "# max_retry_secs = ",
                "# [trunks.inbound]",
                "# username = ",
                "# password = \"gateway-",
                "# nameserver = ",
            ]
            .iter()
            .any(|prefix| line.starts_with(prefix));
            let line = match line.strip_prefix("# ") {
                Some(example_line) if example => example_line,
                _ => line,
            };
            format!("{line}\n")
        })
        .collect();

    // The overflow examples name a queue "other", which the demo lacks.
    let text = format!("{uncommented}[[queues]]\nname = \"other\"\n");
    let config = Config::parse(&text, EMBEDDED_ORIGIN).expect("examples validate");

    let level = |skill: &str| config.agents[0].skills.get(skill).copied();
    assert_eq!(level("language=ru"), Some(5));
    assert_eq!(level("service=passport"), Some(3));

    let queue = &config.queues[0].acd;
    assert_eq!(queue.max_length, Some(20));
    assert_eq!(queue.join_empty, Some(acd::EmptyConditions::strict()));
    assert_eq!(queue.leave_empty, Some(acd::EmptyConditions::loose()));
    let other = acd::Destination::Queue("other".to_owned());
    assert_eq!(queue.overflow.as_ref(), Some(&other));
    assert_eq!(queue.exit_keys.len(), 3);
    assert_eq!(
        config.trunks[0].outbound,
        Some(sip_server::locate::OutboundTarget::parse("192.0.2.1:5060").unwrap())
    );
    let registration = config.trunks[0]
        .registration
        .as_ref()
        .expect("registration");
    assert_eq!(registration.user, "33123456789");
    assert_eq!(registration.contact_user, "pbx-line-1");
    let inbound = config.trunks[0]
        .inbound
        .as_ref()
        .expect("inbound credentials");
    assert_eq!(inbound.username, "carrier-gateway");
    assert!(config.unsupported_destinations().is_empty());
    let rules: Vec<_> = queue.steps.iter().map(|step| &step.rule).collect();
    assert_eq!(
        rules,
        [
            &acd::StepRule::Skills(vec![
                "service>=1".parse().unwrap(),
                "language".parse().unwrap()
            ]),
            &acd::StepRule::AnyAgent,
            &acd::StepRule::Overflow(other.clone()),
        ]
    );
    assert_eq!(config.dids[0].skills.len(), 2);
    assert_eq!(config.dids[0].request_type.as_deref(), Some("passport"));
}

#[test]
fn empty_file_uses_defaults() {
    let config = Config::parse("", ORIGIN).expect("empty file is valid");
    let mut embedded = Config::embedded_default();
    embedded.agents.clear();
    embedded.trunks.clear();
    embedded.queues.clear();
    embedded.dids.clear();
    // The embedded file gives example scorecard criteria; by default there are none.
    embedded.qa.criteria.clear();
    assert_eq!(config, embedded);
}

#[test]
fn advertised_addresses() {
    let text = "[sip]\nlisten = \"192.0.2.5:5070\"\n[media]\naddress = \"192.0.2.6\"\n";
    let config = Config::parse(text, ORIGIN).expect("valid");
    assert_eq!(
        config.sip.advertised_address,
        "192.0.2.5".parse::<IpAddr>().unwrap()
    );
    assert_eq!(
        config.media.advertised_address,
        "192.0.2.6".parse::<IpAddr>().unwrap()
    );

    let text = "[sip]\nlisten = \"[::]:5060\"\nadvertised_address = \"2001:db8::1\"\n\
                [media]\nadvertised_address = \"198.51.100.1\"\n";
    let config = Config::parse(text, ORIGIN).expect("valid");
    assert_eq!(
        config.sip.advertised_address,
        "2001:db8::1".parse::<IpAddr>().unwrap()
    );
    assert_eq!(
        config.media.advertised_address,
        "198.51.100.1".parse::<IpAddr>().unwrap()
    );
}

#[test]
fn unknown_key_names_path_and_line() {
    let errors = errors_of("[sip]\nlisten = \"0.0.0.0:5060\"\nlisen = \"x\"\n");
    assert_eq!(errors.len(), 1);
    assert!(
        errors[0].starts_with("test.toml:3:1: sip.lisen: unknown field `lisen`"),
        "{errors:?}"
    );
}

#[test]
fn wrong_type_names_path() {
    let errors = errors_of("[[queues]]\nname = \"q\"\nring_timeout_secs = \"15\"\n");
    assert_eq!(errors.len(), 1);
    assert!(
        errors[0].starts_with("test.toml:3:21: queues[0].ring_timeout_secs: "),
        "{errors:?}"
    );
}

#[test]
fn syntax_error_has_line() {
    let errors = errors_of("data_dir = \"data\"\n[sip\n");
    assert_eq!(errors.len(), 1);
    assert!(errors[0].starts_with("test.toml:2:"), "{errors:?}");
}

#[test]
fn reports_all_reference_errors() {
    let text = r#"
[[agents]]
id = "1001"

[[agents]]
id = "1001"

[[queues]]
name = "sales"
agents = ["1001", "1003", "1001"]

[[queues]]
name = "sales"

[[dids]]
number = "5000"
queue = "support"

[[dids]]
number = "5000"
queue = "sales"

[[dids]]
number = "1001"
queue = "sales"
"#;
    let errors = errors_of(text);
    assert_has(
        &errors,
        "test.toml:6:6: agents[1].id: duplicate agent id \"1001\"; it is first defined at line 3",
    );
    assert_has(
        &errors,
        "test.toml:10:19: queues[0].agents[1]: unknown agent \"1003\"; \
         add an [[agents]] entry with this id",
    );
    assert_has(
        &errors,
        "test.toml:10:27: queues[0].agents[2]: duplicate queue member \"1001\"; \
         it is first defined at line 10",
    );
    assert_has(
        &errors,
        "test.toml:13:8: queues[1].name: duplicate queue name \"sales\"; \
         it is first defined at line 9",
    );
    assert_has(
        &errors,
        "test.toml:17:9: dids[0].queue: unknown queue \"support\"; \
         add a [[queues]] entry with this name",
    );
    assert_has(
        &errors,
        "test.toml:20:10: dids[1].number: duplicate DID number \"5000\"; \
         it is first defined at line 16",
    );
    assert_has(
        &errors,
        "test.toml:24:10: dids[2].number: DID \"1001\" is also an agent id; \
         calls to it would be ambiguous",
    );
    assert_eq!(errors.len(), 7, "{errors:#?}");
}

#[test]
fn reports_all_value_errors() {
    let text = r#"data_dir = ""
[sip]
listen = "0.0.0.0"
advertised_address = "pbx.example"
domain = ""
[http]
listen = "localhost:8080"
[media]
address = "0.0.0.0:1"
rtp_ports = "20001-20999"
[registrar]
min_expires_secs = 0
max_contacts = 0
[[agents]]
id = "10 01"
name = ""
password = ""
[[trunks]]
name = "carrier"
allow = ["10.0.0.1/8", "10.0.0.0/33", "nonsense"]
[[trunks]]
name = "empty"
allow = []
[[queues]]
name = ""
ring_timeout_secs = 0
max_wait_secs = 0
"#;
    let errors = errors_of(text);
    let expected = [
        "test.toml:1:12: data_dir: must not be empty",
        "test.toml:3:10: sip.listen: invalid socket address \"0.0.0.0\"; \
         expected IP:PORT such as 0.0.0.0:5060 or [::]:5060",
        "test.toml:4:22: sip.advertised_address: invalid IP address \"pbx.example\"; \
         expected an address such as 127.0.0.1 or ::1",
        "test.toml:5:10: sip.domain: must not be empty",
        "test.toml:7:10: http.listen: invalid socket address \"localhost:8080\"; \
         expected IP:PORT such as 0.0.0.0:5060 or [::]:5060",
        "test.toml:9:11: media.address: invalid IP address \"0.0.0.0:1\"; \
         expected an address such as 127.0.0.1 or ::1",
        "test.toml:10:13: media.rtp_ports: invalid RTP port range \"20001-20999\": \
         the first port 20001 is odd; RTP uses even ports and RTCP the next odd one",
        "test.toml:12:20: registrar.min_expires_secs: must be greater than 0",
        "test.toml:13:16: registrar.max_contacts: must be greater than 0",
        "test.toml:15:6: agents[0].id: \"10 01\" contains ' '; \
         use letters, digits, '-', '_' or '.'",
        "test.toml:16:8: agents[0].name: must not be empty",
        "test.toml:17:12: agents[0].password: must not be empty",
        "test.toml:20:10: trunks[0].allow[0]: invalid network \"10.0.0.1/8\": \
         host bits are set; the network address is 10.0.0.0/8",
        "test.toml:20:24: trunks[0].allow[1]: invalid network \"10.0.0.0/33\": \
         prefix length 33 is larger than 32",
        "test.toml:20:39: trunks[0].allow[2]: invalid network \"nonsense\": \
         expected ADDRESS/PREFIX such as 192.0.2.0/24 or 2001:db8::/32",
        "test.toml:23:9: trunks[1].allow: trunk \"empty\" allows no networks and has \
         neither [trunks.register] nor [trunks.inbound], so it can never match a call",
        "test.toml:25:8: queues[0].name: must not be empty",
        "test.toml:26:21: queues[0].ring_timeout_secs: must be greater than 0",
        "test.toml:27:17: queues[0].max_wait_secs: must be greater than 0",
    ];
    for line in expected {
        assert_has(&errors, line);
    }
    assert_eq!(errors.len(), expected.len(), "{errors:#?}");
}

#[test]
fn expires_order() {
    let errors = errors_of("[registrar]\ndefault_expires_secs = 30\n");
    assert_eq!(
        errors,
        [
            "test.toml:2:24: registrar.default_expires_secs: expires values must satisfy \
          min <= default <= max, got min 60, default 30, max 3600"
        ]
    );
    let errors = errors_of("[registrar]\nmax_expires_secs = 300\n");
    assert_eq!(errors.len(), 1);
    assert!(
        errors[0].starts_with("test.toml:2:20: registrar.max_expires_secs: "),
        "{errors:?}"
    );
    assert!(Config::parse("[registrar]\nmin_expires_secs = 600\n", ORIGIN).is_ok());
}

#[test]
fn rtp_ports_forms() {
    let parse = validate::parse_rtp_ports;
    assert_eq!(parse("10000-10003"), Ok(10000..=10003));
    assert_eq!(parse("10000 - 10003"), Ok(10000..=10003));
    assert_eq!(parse("10000"), Err(RtpPortsProblem::Syntax));
    assert_eq!(parse("a-b"), Err(RtpPortsProblem::Syntax));
    assert_eq!(parse("10000-70000"), Err(RtpPortsProblem::Syntax));
    assert_eq!(parse("0-100"), Err(RtpPortsProblem::ZeroStart));
    assert_eq!(parse("10001-10010"), Err(RtpPortsProblem::OddStart(10001)));
    assert_eq!(
        parse("10000-10000"),
        Err(RtpPortsProblem::NotAscending {
            start: 10000,
            end: 10000
        })
    );
    assert_eq!(
        parse("10000-10002"),
        Err(RtpPortsProblem::TooFew { count: 3 })
    );
}

#[test]
fn overrides_replace_file_values() {
    let overrides = Overrides {
        data_dir: Some(PathBuf::from("/var/lib/pbx")),
        sip_listen: Some("192.0.2.1:5080".to_owned()),
        http_listen: Some("127.0.0.1:9090".to_owned()),
        rtp_ports: Some("30000-30099".to_owned()),
    };
    let config = Config::parse_with_overrides(EMBEDDED_TEXT, EMBEDDED_ORIGIN, &overrides)
        .expect("valid overrides");
    assert_eq!(config.data_dir, PathBuf::from("/var/lib/pbx"));
    assert_eq!(
        config.sip.listen,
        "192.0.2.1:5080".parse::<SocketAddr>().unwrap()
    );
    // The advertised default follows the overridden listen address.
    assert_eq!(
        config.sip.advertised_address,
        "192.0.2.1".parse::<IpAddr>().unwrap()
    );
    assert_eq!(
        config.http.listen,
        "127.0.0.1:9090".parse::<SocketAddr>().unwrap()
    );
    assert_eq!(config.media.rtp_ports, 30000..=30099);
}

#[test]
fn invalid_override_names_flag() {
    let overrides = Overrides {
        sip_listen: Some("nowhere".to_owned()),
        rtp_ports: Some("5-9".to_owned()),
        ..Overrides::default()
    };
    let errors = Config::parse_with_overrides(EMBEDDED_TEXT, EMBEDDED_ORIGIN, &overrides)
        .expect_err("invalid overrides");
    let lines: Vec<String> = errors.0.iter().map(ToString::to_string).collect();
    assert_eq!(
        lines,
        [
            "--sip-listen: sip.listen: invalid socket address \"nowhere\"; \
             expected IP:PORT such as 0.0.0.0:5060 or [::]:5060",
            "--rtp-ports: media.rtp_ports: invalid RTP port range \"5-9\": \
             the first port 5 is odd; RTP uses even ports and RTCP the next odd one",
        ]
    );
}

#[test]
fn location_counts_characters() {
    let text = "a = 1\né = \"x\"\n";
    assert_eq!(
        Location::from_offset(text, 0),
        Location { line: 1, column: 1 }
    );
    let offset = text.find('x').expect("x present");
    assert_eq!(
        Location::from_offset(text, offset),
        Location { line: 2, column: 6 }
    );
    assert_eq!(
        Location::from_offset(text, 999),
        Location { line: 3, column: 1 }
    );
}

#[test]
fn digest_algorithms_keep_their_order() {
    use sip_server::auth::Algorithm;
    let config = Config::parse(
        "[sip]\ndigest_algorithms = [\"SHA-256\", \"MD5\"]\n",
        ORIGIN,
    )
    .unwrap();
    assert_eq!(
        config.sip.digest_algorithms,
        [Algorithm::Sha256, Algorithm::Md5]
    );
    let default = Config::parse("", ORIGIN).unwrap();
    assert_eq!(default.sip.digest_algorithms, [Algorithm::Md5]);
}

#[test]
fn digest_algorithms_reject_unknown_and_empty() {
    let errors = errors_of("[sip]\ndigest_algorithms = [\"SHA-512\", \"MD5\", \"MD5\"]\n");
    assert_has(
        &errors,
        "test.toml:2:22: sip.digest_algorithms[0]: unknown digest algorithm \"SHA-512\"; use \"SHA-256\" or \"MD5\"",
    );
    assert!(
        errors
            .iter()
            .any(|e| e.contains("sip.digest_algorithms[2]: duplicate")),
        "{errors:#?}"
    );
    let errors = errors_of("[sip]\ndigest_algorithms = []\n");
    assert!(
        errors
            .iter()
            .any(|e| e.contains("sip.digest_algorithms: must not be empty")),
        "{errors:#?}"
    );
}

#[test]
fn ports_may_not_overlap() {
    let errors = errors_of(
        "[sip]\nlisten = \"127.0.0.1:8080\"\n[http]\nlisten = \"127.0.0.1:8080\"\n\
         [media]\nrtp_ports = \"8000-8099\"\n",
    );
    assert_has(
        &errors,
        "test.toml:4:10: http.listen: port 8080 is also used by sip.listen; \
         give each service its own port",
    );
    // The range comes last in the file, so the conflicts point at it.
    assert_has(
        &errors,
        "test.toml:6:13: media.rtp_ports: port 8080 is also used by sip.listen; \
         give each service its own port",
    );
    assert_has(
        &errors,
        "test.toml:6:13: media.rtp_ports: port 8080 is also used by http.listen; \
         give each service its own port",
    );
    assert_eq!(errors.len(), 3, "{errors:#?}");
}

#[test]
fn port_conflict_points_at_the_value_in_the_file() {
    // Both in the file: the later one is named, at its value.
    let errors =
        errors_of("[sip]\nlisten = \"127.0.0.1:8080\"\n[http]\nlisten = \"127.0.0.1:8080\"\n");
    assert_eq!(
        errors,
        [
            "test.toml:4:10: http.listen: port 8080 is also used by sip.listen; give each service its own port"
        ]
    );
    // Only sip.listen is in the file; http.listen keeps its default.
    let errors = errors_of("[sip]\nlisten = \"127.0.0.1:8080\"\n");
    assert_eq!(
        errors,
        [
            "test.toml:2:10: sip.listen: port 8080 is also used by http.listen; give each service its own port"
        ]
    );
    // A range in [media] that covers the default SIP port.
    let errors = errors_of("[media]\nrtp_ports = \"5000-5099\"\n");
    assert_eq!(
        errors,
        [
            "test.toml:2:13: media.rtp_ports: port 5060 is also used by sip.listen; give each service its own port"
        ]
    );
}

#[test]
fn missing_sound_files_are_named_with_their_key() {
    let prompts = tempfile::tempdir().unwrap();
    std::fs::write(prompts.path().join("please-hold.wav"), b"RIFF").unwrap();
    let text = format!(
        "[media]\nprompts_dir = \"{}\"\n[[queues]]\nname = \"general\"\n\
         music_on_hold = \"/nonexistent/music.wav\"\n",
        prompts.path().display()
    );
    let errors = errors_of(&text);
    assert_has(
        &errors,
        "test.toml:5:17: queues[0].music_on_hold: file \"/nonexistent/music.wav\" does not \
         exist or is not a file; give the path of a WAV file",
    );
    assert_has(
        &errors,
        &format!(
            "test.toml:2:15: media.prompts_dir: folder \"{}\" lacks the prompt \
             \"position-before.wav\"; record it or leave prompts_dir out",
            prompts.path().display()
        ),
    );
}

#[test]
fn queues_give_ringback_unless_told_otherwise() {
    let config = Config::parse("[[queues]]\nname = \"general\"\n", ORIGIN).unwrap();
    assert_eq!(config.queues[0].music_on_hold, MusicOnHold::None);
    assert_eq!(config.queues[0].announce_every, None);
}

#[test]
fn voicemail_box_names_stay_inside_the_data_dir() {
    let errors = errors_of("[[queues]]\nname = \"general\"\noverflow = \"voicemail:../etc\"\n");
    assert_has(
        &errors,
        "test.toml:3:12: queues[0].overflow: invalid destination \"voicemail:../etc\"; use \
         \"queue:NAME\", \"voicemail:BOX\" (BOX of letters, digits, '-' and '_'), \
         \"number:NUMBER\" or \"callback\"",
    );
    let config = Config::parse(
        "[voicemail]\nmax_message_secs = 30\n[[queues]]\nname = \"general\"\n\
         overflow = \"voicemail:general-1\"\n",
        ORIGIN,
    )
    .unwrap();
    assert_eq!(
        config.queues[0].acd.overflow,
        Some(acd::Destination::Voicemail("general-1".to_owned()))
    );
    assert_eq!(config.voicemail_max, Duration::from_secs(30));
    let errors = errors_of("[voicemail]\nmax_message_secs = 99999999\n");
    assert_has(
        &errors,
        "test.toml:2:20: voicemail.max_message_secs: must be at most 3600, got 99999999",
    );
    assert!(config.unsupported_destinations().is_empty());
}

#[test]
fn recording_pause_code_and_mixed_mono() {
    let config = Config::parse("", ORIGIN).unwrap();
    assert_eq!(config.recording.pause_code.as_deref(), Some("*1"));
    assert!(!config.recording.mixed_mono);
    let text = "[recording]\npause_code = \"#9A\"\nmixed_mono = true\n";
    let config = Config::parse(text, ORIGIN).unwrap();
    assert_eq!(config.recording.pause_code.as_deref(), Some("#9A"));
    assert!(config.recording.mixed_mono);
    let config = Config::parse("[recording]\npause_code = \"\"\n", ORIGIN).unwrap();
    assert_eq!(
        config.recording.pause_code, None,
        "empty turns the code off"
    );
    for bad in ["*x", "*1 ", "123456789", "a1"] {
        let errors = errors_of(&format!("[recording]\npause_code = {bad:?}\n"));
        assert!(
            errors[0].starts_with("test.toml:2:14: recording.pause_code: invalid DTMF code"),
            "{bad:?}: {errors:?}"
        );
    }
}

#[test]
fn retention_days_is_bounded() {
    let config = Config::parse("[recording]\nretention_days = 90\n", ORIGIN).unwrap();
    assert_eq!(config.recording.retention_days, 90);
    let errors = errors_of("[recording]\nretention_days = 36501\n");
    assert_has(
        &errors,
        "test.toml:2:18: recording.retention_days: must be at most 36500, got 36501",
    );
    let errors = errors_of("[recording]\nretention_days = -1\n");
    assert!(errors[0].contains("recording.retention_days"), "{errors:?}");
}

#[test]
fn overload_limits_have_defaults_and_bounds() {
    let config = Config::parse("", ORIGIN).unwrap();
    assert_eq!(config.overload.max_transactions, 200_000);
    assert_eq!(config.overload.cpu_percent, 90);
    assert_eq!(config.overload.retry_after, Duration::from_secs(10));
    let config = Config::parse(
        "[overload]\ncpu_percent = 0\nmax_transactions = 50\n",
        ORIGIN,
    )
    .unwrap();
    assert_eq!(config.overload.cpu_percent, 0);
    assert_eq!(config.overload.max_transactions, 50);
    let errors = errors_of("[overload]\ncpu_percent = 101\nretry_after_secs = 0\n");
    assert_has(
        &errors,
        "test.toml:2:15: overload.cpu_percent: must be at most 100, got 101",
    );
    assert!(
        errors
            .iter()
            .any(|e| e.contains("overload.retry_after_secs")),
        "{errors:?}"
    );
}

#[test]
fn trunk_numbering_plan_needs_digit_prefixes() {
    let text = "[[trunks]]\nname = \"t\"\nallow = [\"192.0.2.0/24\"]\ncountry_code = \"33\"\n";
    let config = Config::parse(text, ORIGIN).unwrap();
    let plan = config.trunks[0].numbering.clone().expect("a plan");
    assert_eq!(plan.to_e164("0612345678"), "+33612345678");
    assert!(config.trunks[0].trust_identity);
    let errors =
        errors_of("[[trunks]]\nname = \"t\"\nallow = [\"192.0.2.0/24\"]\ncountry_code = \"+33\"\n");
    assert_has(
        &errors,
        "test.toml:4:16: trunks[0].country_code: \"+33\" is not a dialling prefix; write up to \
         6 digits such as \"33\" or \"0\"",
    );
}

#[test]
fn scorecard_criteria_parsed_in_order() {
    let text = "[qa]\nmax_score = 10\n\
                [[qa.criteria]]\nid = \"greeting\"\nlabel = \"Greeting\"\nweight = 2\n\
                [[qa.criteria]]\nid = \"resolution\"\nweight = 5\n\
                [reports]\nfirst_contact_window_hours = 24\n";
    let config = Config::parse(text, ORIGIN).expect("valid");
    assert_eq!(config.qa.max_score, 10);
    let ids: Vec<&str> = config.qa.criteria.iter().map(|c| c.id.as_str()).collect();
    assert_eq!(ids, ["greeting", "resolution"]);
    assert_eq!(config.qa.criteria[0].label, "Greeting");
    // A criterion without a label shows its id.
    assert_eq!(config.qa.criteria[1].label, "resolution");
    assert_eq!(config.qa.criteria[1].weight, 5);
    assert_eq!(
        config.reports.first_contact_window,
        Duration::from_secs(24 * 3600)
    );
}

#[test]
fn scorecard_criteria_errors_name_the_key() {
    let text = "[qa]\nmax_score = 0\n\
                [[qa.criteria]]\nid = \"tone of voice\"\nweight = 0\n\
                [[qa.criteria]]\nid = \"greeting\"\nlabel = \"\"\nweight = 1001\n\
                [[qa.criteria]]\nid = \"greeting\"\nweight = 1\n\
                [reports]\nfirst_contact_window_hours = 721\n";
    let errors = errors_of(text);
    let expected = [
        "test.toml:2:13: qa.max_score: must be greater than 0",
        "test.toml:4:6: qa.criteria[0].id: \"tone of voice\" contains ' '",
        "test.toml:5:10: qa.criteria[0].weight: must be greater than 0",
        "test.toml:8:9: qa.criteria[1].label: must not be empty",
        "test.toml:9:10: qa.criteria[1].weight: must be at most 1000, got 1001",
        "test.toml:11:6: qa.criteria[2].id: duplicate criterion \"greeting\"; it is first defined at line 7",
        "test.toml:14:30: reports.first_contact_window_hours: must be at most 720, got 721",
    ];
    assert_eq!(errors.len(), expected.len(), "{errors:#?}");
    for (error, start) in errors.iter().zip(expected) {
        assert!(
            error.starts_with(start),
            "{error} should start with {start}"
        );
    }
}

fn parse(text: &str) -> Config {
    Config::parse(text, ORIGIN).expect("valid configuration")
}

#[test]
fn database_url_defaults_to_sqlite_in_data_dir() {
    let config = parse("data_dir = \"/var/lib/pbx\"\n");
    assert_eq!(config.database, None);
    assert_eq!(
        config.database_url().expose(),
        "sqlite:///var/lib/pbx/pbx.sqlite?mode=rwc"
    );
}

#[test]
fn report_time_zone_is_checked() {
    let config = Config::parse("[reports]\ntime_zone = \"Europe/Madrid\"\n", "zone.toml")
        .expect("valid zone");
    assert_eq!(config.reports.time_zone.iana_name(), Some("Europe/Madrid"));
    let default = Config::parse("", "empty.toml").expect("empty file");
    assert_eq!(default.reports.time_zone, jiff::tz::TimeZone::UTC);
    let errors = Config::parse("[reports]\ntime_zone = \"Europe/Madird\"\n", "zone.toml")
        .expect_err("misspelt zone");
    assert_eq!(
        errors.to_string(),
        "zone.toml:2:13: reports.time_zone: unknown time zone \"Europe/Madird\"; use an IANA \
         name such as \"Europe/Madrid\" or \"UTC\""
    );
}

#[test]
fn database_url_accepts_sqlite_and_postgres() {
    let config = parse("[database]\nurl = \"postgres://pbx:secret@db.example/pbx\"\n");
    let url = config.database.expect("database.url is set");
    assert_eq!(url.backend(), cdr::database::Backend::Postgres);
    assert_eq!(url.to_string(), "postgres://pbx:***@db.example/pbx");
    let config = parse("[database]\nurl = \"sqlite:///srv/pbx.sqlite\"\n");
    assert_eq!(
        config.database.map(|url| url.backend()),
        Some(cdr::database::Backend::Sqlite)
    );
}

#[test]
fn database_url_with_bad_scheme_is_an_error() {
    let errors = errors_of("[database]\nurl = \"mysql://pbx@db/pbx\"\n");
    assert_eq!(
        errors,
        [
            "test.toml:2:7: database.url: unsupported database URL scheme \"mysql\": \
          use sqlite://PATH or postgres://USER:PASSWORD@HOST/DATABASE"
        ]
    );
}

#[test]
fn agent_wrap_up_is_checked() {
    let config = Config::parse(
        "[[agents]]\nid = \"1001\"\nwrap_up_secs = 45\n",
        "agents.toml",
    )
    .expect("valid wrap-up");
    assert_eq!(config.agents[0].wrap_up, Some(Duration::from_secs(45)));
    let errors = Config::parse(
        "[[agents]]\nid = \"1001\"\nwrap_up_secs = 90000\n",
        "agents.toml",
    )
    .expect_err("over a day");
    assert_eq!(
        errors.to_string(),
        "agents.toml:3:16: agents[0].wrap_up_secs: must be at most 86400, got 90000"
    );
}

#[test]
fn recording_jitter_window_default_and_bounds() {
    let config = Config::parse("", ORIGIN).unwrap();
    assert_eq!(config.recording.jitter_window, Duration::from_secs(1));
    for milliseconds in [20, 5000] {
        let text = format!("[recording]\njitter_window_ms = {milliseconds}\n");
        let config = Config::parse(&text, ORIGIN).unwrap();
        assert_eq!(
            config.recording.jitter_window,
            Duration::from_millis(milliseconds)
        );
    }
    for milliseconds in [19, 5001] {
        let errors = errors_of(&format!("[recording]\njitter_window_ms = {milliseconds}\n"));
        assert_has(
            &errors,
            &format!(
                "test.toml:2:20: recording.jitter_window_ms: must be from 20 to 5000, got {milliseconds}"
            ),
        );
    }
}

#[test]
fn engine_nice_has_default_and_bounds() {
    let config = Config::parse("", ORIGIN).unwrap();
    assert_eq!(config.sip.engine_nice, -10);
    let config = Config::parse("[sip]\nengine_nice = 0\n", ORIGIN).unwrap();
    assert_eq!(config.sip.engine_nice, 0);
    let errors = errors_of("[sip]\nengine_nice = -21\n");
    assert_has(
        &errors,
        "test.toml:2:15: sip.engine_nice: must be from -20 to 19, got -21",
    );
    let errors = errors_of("[sip]\nengine_nice = 20\n");
    assert_has(
        &errors,
        "test.toml:2:15: sip.engine_nice: must be from -20 to 19, got 20",
    );
}
