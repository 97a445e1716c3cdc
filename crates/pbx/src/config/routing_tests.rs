use std::collections::BTreeMap;
use std::time::Duration;

use acd::{
    CallerOrder, CategoryLevel, Destination, EmptyConditions, RoutingStep, SkillRequirement,
    StepRule, Strategy,
};

use super::error::ConfigErrorKind;
use super::routing::{CALLER_ORDERS, STRATEGIES};
use super::tests::{ORIGIN, assert_has, errors_of};
use super::*;

const FULL_EXAMPLE: &str = r##"
[acd]
caller_order = "queue-weight"

[[agents]]
id = "1001"
skills = ["language=ru:5", "service=passport:3", "vip"]

[[agents]]
id = "1002"

[[queues]]
name = "passports"
agents = ["1001", "1002"]
ring_timeout_secs = 20
max_wait_secs = 300
retry_delay_secs = 10
wrap_up_secs = 30
strategy = "best-proficiency"
max_length = 25
weight = 10
join_empty = ["loose", "wrap-up"]
leave_empty = []
overflow = "voicemail:200"
exit_keys = { "0" = "queue:general", "#" = "number:+15550100", "*" = "callback" }
reject_delay_secs = 5
busy_delay_secs = 7
no_answer_delay_secs = 9
max_no_answer = 3
service_level_secs = 30
callback_attempts = 2
callback_retry_secs = 600

[[queues.steps]]
after_secs = 0
keep = ["service>=3", "language"]

[[queues.steps]]
after_secs = 30
keep = []

[[queues.steps]]
after_secs = 60
any_agent = true

[[queues.steps]]
after_secs = 120
overflow = "queue:general"

[[queues]]
name = "general"
agents = ["1002"]

[[dids]]
number = "5000"
queue = "passports"
priority = 2
skills = ["language=ru:3", "service=passport"]
request_type = "passport renewal"
"##;

fn category(text: &str) -> CategoryLevel {
    text.parse().expect("valid category")
}

#[test]
fn full_example_converts() {
    let config = Config::parse(FULL_EXAMPLE, ORIGIN).expect("valid");
    assert_eq!(config.caller_order, CallerOrder::QueueWeight);

    let skills = BTreeMap::from([
        ("language=ru".to_owned(), 5),
        ("service=passport".to_owned(), 3),
        ("vip".to_owned(), 0),
    ]);
    assert_eq!(config.agents[0].skills, skills);
    assert!(config.agents[1].skills.is_empty());

    let general = Destination::Queue("general".to_owned());
    let expected = acd::QueueConfig {
        name: "passports".to_owned(),
        ring_timeout: Duration::from_secs(20),
        max_wait: Duration::from_secs(300),
        retry_delay: Duration::from_secs(10),
        wrap_up: Duration::from_secs(30),
        strategy: Strategy::BestProficiency,
        max_length: Some(25),
        weight: 10,
        steps: vec![
            RoutingStep::new(
                Duration::ZERO,
                StepRule::Skills(vec![category("service>=3"), category("language")]),
            ),
            RoutingStep::new(Duration::from_secs(30), StepRule::Skills(Vec::new())),
            RoutingStep::new(Duration::from_secs(60), StepRule::AnyAgent),
            RoutingStep::new(
                Duration::from_secs(120),
                StepRule::Overflow(general.clone()),
            ),
        ],
        join_empty: Some(EmptyConditions {
            wrap_up: true,
            ..EmptyConditions::loose()
        }),
        leave_empty: Some(EmptyConditions::default()),
        overflow: Some(Destination::Voicemail("200".to_owned())),
        exit_keys: BTreeMap::from([
            ('0', general),
            ('#', Destination::Number("+15550100".to_owned())),
            ('*', Destination::Callback),
        ]),
        reject_delay: Duration::from_secs(5),
        busy_delay: Duration::from_secs(7),
        no_answer_delay: Duration::from_secs(9),
        max_no_answer: 3,
        service_level: Duration::from_secs(30),
        callback_attempts: 2,
        callback_retry_delay: Duration::from_secs(600),
    };
    let queue = &config.queues[0];
    assert_eq!(queue.acd, expected);
    // The fields server.rs already reads repeat the engine's values.
    assert_eq!(queue.name, "passports");
    assert_eq!(queue.ring_timeout, expected.ring_timeout);
    assert_eq!(queue.max_wait, expected.max_wait);
    assert_eq!(queue.retry_delay, expected.retry_delay);
    assert_eq!(queue.wrap_up, expected.wrap_up);

    assert_eq!(
        config.dids,
        [DidConfig {
            number: "5000".to_owned(),
            queue: "passports".to_owned(),
            priority: 2,
            skills: vec![
                SkillRequirement::new("language=ru", 3),
                SkillRequirement::new("service=passport", 0),
            ],
            request_type: Some("passport renewal".to_owned()),
        }]
    );
}

#[test]
fn queue_defaults_follow_engine() {
    let config = Config::parse("[[queues]]\nname = \"q\"\n", ORIGIN).expect("valid");
    // Max wait is the file's own default, and the reject and busy delays
    // keep a declining or busy phone from being rung again every second.
    let expected = acd::QueueConfig {
        name: "q".to_owned(),
        max_wait: Duration::from_secs(120),
        retry_delay: Duration::from_secs(5),
        reject_delay: Duration::from_secs(10),
        busy_delay: Duration::from_secs(10),
        ..acd::QueueConfig::default()
    };
    assert_eq!(config.queues[0].acd, expected);
    assert_eq!(config.caller_order, CallerOrder::default());
}

#[test]
fn every_strategy_name_parses() {
    for (name, strategy) in STRATEGIES {
        let text = format!("[[queues]]\nname = \"q\"\nstrategy = \"{name}\"\n");
        let config = Config::parse(&text, ORIGIN).expect("valid strategy");
        assert_eq!(config.queues[0].acd.strategy, strategy, "{name}");
    }
    let message = ConfigErrorKind::UnknownStrategy {
        value: String::new(),
    }
    .to_string();
    for (name, _) in STRATEGIES {
        assert!(message.contains(name), "{message} lacks {name}");
    }
}

#[test]
fn every_caller_order_parses() {
    for (name, order) in CALLER_ORDERS {
        let text = format!("[acd]\ncaller_order = \"{name}\"\n");
        let config = Config::parse(&text, ORIGIN).expect("valid caller order");
        assert_eq!(config.caller_order, order, "{name}");
    }
}

/// Each name in the error message is accepted and sets its one condition;
/// names in one list add up.
#[test]
fn empty_conditions_add_up() {
    let message = ConfigErrorKind::UnknownEmptyCondition {
        value: String::new(),
    }
    .to_string();
    let listed = message
        .split_once("use ")
        .map(|(_, names)| names)
        .expect("message lists names");
    let names: Vec<&str> = listed
        .split([',', ' '])
        .filter(|word| !word.is_empty() && *word != "or")
        .collect();
    assert_eq!(names.len(), 8, "{names:?}");

    let conditions_of = |list: &str| {
        let text = format!("[[queues]]\nname = \"q\"\nleave_empty = {list}\n");
        let config = Config::parse(&text, ORIGIN).expect("valid conditions");
        config.queues[0].acd.leave_empty.expect("leave_empty set")
    };
    for name in names {
        assert_ne!(
            conditions_of(&format!("[\"{name}\"]")),
            EmptyConditions::default(),
            "{name}"
        );
    }
    assert_eq!(conditions_of("[\"strict\"]"), EmptyConditions::strict());
    assert_eq!(conditions_of("[\"loose\"]"), EmptyConditions::loose());
    assert_eq!(
        conditions_of("[\"not-ready\", \"unreachable\"]"),
        EmptyConditions::loose()
    );
    assert_eq!(
        conditions_of("[\"on-call\", \"unskilled\"]"),
        EmptyConditions {
            on_call: true,
            unskilled: true,
            ..EmptyConditions::default()
        }
    );
    assert_eq!(conditions_of("[]"), EmptyConditions::default());
}

#[test]
fn skill_errors() {
    let text = r#"[[agents]]
id = "1001"
skills = ["language=ru:high", "language = ru:2", "vip:1", "vip:2", ":3"]
[[queues]]
name = "q"
[[dids]]
number = "5000"
queue = "q"
skills = ["service=passport:256", "service=passport:1", "service=passport"]
request_type = ""
"#;
    let errors = errors_of(text);
    let expected = [
        "test.toml:3:11: agents[0].skills[0]: invalid skill \"language=ru:high\": \
         the level must be a whole number from 0 to 255; write SKILL:LEVEL such as \
         \"language=ru:5\"",
        "test.toml:3:31: agents[0].skills[1]: \"language = ru\" contains whitespace \
         or a control character",
        "test.toml:3:59: agents[0].skills[3]: duplicate skill \"vip\"; \
         it is first defined at line 3",
        "test.toml:3:68: agents[0].skills[4]: invalid skill \":3\": the skill name is empty; \
         write SKILL:LEVEL such as \"language=ru:5\"",
        "test.toml:9:11: dids[0].skills[0]: invalid skill \"service=passport:256\": \
         the level must be a whole number from 0 to 255; write SKILL:LEVEL such as \
         \"language=ru:5\"",
        "test.toml:9:57: dids[0].skills[2]: duplicate skill \"service=passport\"; \
         it is first defined at line 9",
        "test.toml:10:16: dids[0].request_type: must not be empty",
    ];
    for line in expected {
        assert_has(&errors, line);
    }
    assert_eq!(errors.len(), expected.len(), "{errors:#?}");
}

#[test]
fn name_errors() {
    let text = r#"[acd]
caller_order = "fifo"
[[queues]]
name = "q"
strategy = "least-recent"
join_empty = ["paused", "strict"]
leave_empty = ["loose", "busy"]
max_length = 0
"#;
    let errors = errors_of(text);
    let expected = [
        "test.toml:2:16: acd.caller_order: unknown caller order \"fifo\"; \
         use \"longest-waiting\" or \"queue-weight\"",
        "test.toml:5:12: queues[0].strategy: unknown strategy \"least-recent\"; \
         use longest-idle, fewest-calls, least-talk-time, round-robin, ring-all, \
         linear, random, weighted-random or best-proficiency",
        "test.toml:6:15: queues[0].join_empty[0]: unknown condition \"paused\"; \
         use strict, loose, not-ready, unreachable, ringing, on-call, wrap-up or unskilled",
        "test.toml:7:25: queues[0].leave_empty[1]: unknown condition \"busy\"; \
         use strict, loose, not-ready, unreachable, ringing, on-call, wrap-up or unskilled",
        "test.toml:8:14: queues[0].max_length: must be greater than 0",
    ];
    for line in expected {
        assert_has(&errors, line);
    }
    assert_eq!(errors.len(), expected.len(), "{errors:#?}");
}

#[test]
fn negative_value_names_path() {
    let errors = errors_of("[[queues]]\nname = \"q\"\nreject_delay_secs = -5\n");
    assert_eq!(errors.len(), 1, "{errors:#?}");
    assert!(
        errors[0].starts_with("test.toml:3:21: queues[0].reject_delay_secs: "),
        "{errors:?}"
    );
    let errors = errors_of("[[dids]]\nnumber = \"1\"\nqueue = \"q\"\npriority = -1\n");
    assert!(
        errors[0].starts_with("test.toml:4:12: dids[0].priority: "),
        "{errors:?}"
    );
}

#[test]
fn destination_errors() {
    let text = r##"[[queues]]
name = "sales"
overflow = "queue:sales"
exit_keys = { "1" = "queue:nowhere", "12" = "callback", "a" = "voicemail:", "#" = "fax:1" }
[[queues]]
name = "support"
overflow = "callback:now"
exit_keys = { "*" = "number:1 2", "0" = "queue:sales" }
"##;
    let errors = errors_of(text);
    let expected = [
        "test.toml:3:12: queues[0].overflow: queue \"sales\" cannot send calls to itself; \
         name another queue",
        "test.toml:4:83: queues[0].exit_keys.\"#\": invalid destination \"fax:1\"; \
         use \"queue:NAME\", \"voicemail:BOX\" (BOX of letters, digits, '-' and '_'), \
         \"number:NUMBER\" or \"callback\"",
        "test.toml:4:21: queues[0].exit_keys.\"1\": unknown queue \"nowhere\"; \
         add a [[queues]] entry with this name",
        "test.toml:4:38: queues[0].exit_keys.\"12\": invalid exit key \"12\"; \
         use one DTMF key: 0-9, * or #",
        "test.toml:4:57: queues[0].exit_keys.\"a\": invalid exit key \"a\"; \
         use one DTMF key: 0-9, * or #",
        "test.toml:4:63: queues[0].exit_keys.\"a\": invalid destination \"voicemail:\"; \
         use \"queue:NAME\", \"voicemail:BOX\" (BOX of letters, digits, '-' and '_'), \
         \"number:NUMBER\" or \"callback\"",
        "test.toml:7:12: queues[1].overflow: invalid destination \"callback:now\"; \
         use \"queue:NAME\", \"voicemail:BOX\" (BOX of letters, digits, '-' and '_'), \
         \"number:NUMBER\" or \"callback\"",
        "test.toml:8:21: queues[1].exit_keys.\"*\": invalid destination \"number:1 2\"; \
         use \"queue:NAME\", \"voicemail:BOX\" (BOX of letters, digits, '-' and '_'), \
         \"number:NUMBER\" or \"callback\"",
    ];
    for line in expected {
        assert_has(&errors, line);
    }
    assert_eq!(errors.len(), expected.len(), "{errors:#?}");
}

#[test]
fn step_errors() {
    let text = r#"[[queues]]
name = "q"
[[queues.steps]]
after_secs = 60
any_agent = false
[[queues.steps]]
after_secs = 30
keep = ["service=passport:3", "language>=x", "language", "language>=2"]
[[queues.steps]]
after_secs = 90
[[queues.steps]]
after_secs = 100
any_agent = true
overflow = "callback"
[[queues.steps]]
after_secs = 110
overflow = "queue:elsewhere"
[[queues.steps]]
after_secs = 121
overflow = "callback"
"#;
    let errors = errors_of(text);
    let expected = [
        "test.toml:5:13: queues[0].steps[0].any_agent: must be true; \
         leave the key out instead of setting it to false",
        "test.toml:7:14: queues[0].steps[1].after_secs: steps must be in increasing \
         time order; 30 s does not come after the previous step's 60 s",
        "test.toml:8:9: queues[0].steps[1].keep[0]: \"service=passport:3\" is not a \
         skill category; a step keeps categories such as \"language\" or \"service>=3\", \
         not skills such as \"service=passport:3\"",
        "test.toml:8:31: queues[0].steps[1].keep[1]: invalid skill \"language>=x\": \
         the level must be a whole number from 0 to 255; write CATEGORY>=LEVEL such as \
         \"service>=3\", or CATEGORY alone",
        "test.toml:8:58: queues[0].steps[1].keep[3]: duplicate step category \"language\"; \
         it is first defined at line 8",
        "test.toml:10:14: queues[0].steps[2]: a step needs exactly one of keep, \
         any_agent or overflow, found 0",
        "test.toml:12:14: queues[0].steps[3]: a step needs exactly one of keep, \
         any_agent or overflow, found 2",
        "test.toml:17:12: queues[0].steps[4].overflow: unknown queue \"elsewhere\"; \
         add a [[queues]] entry with this name",
        "test.toml:19:14: queues[0].steps[5].after_secs: this overflow step at 121 s \
         never applies, because calls leave the queue at max_wait_secs 120 first",
    ];
    for line in expected {
        assert_has(&errors, line);
    }
    assert_eq!(errors.len(), expected.len(), "{errors:#?}");
}

#[test]
fn equal_step_times_rejected() {
    let text = "[[queues]]\nname = \"q\"\n\
                [[queues.steps]]\nafter_secs = 30\nany_agent = true\n\
                [[queues.steps]]\nafter_secs = 30\nkeep = []\n";
    let errors = errors_of(text);
    assert_eq!(
        errors,
        [
            "test.toml:7:14: queues[0].steps[1].after_secs: steps must be in increasing \
          time order; 30 s does not come after the previous step's 30 s"
        ]
    );
}

#[test]
fn unknown_step_key_rejected() {
    let errors =
        errors_of("[[queues]]\nname = \"q\"\n[[queues.steps]]\nafter_secs = 1\nany = true\n");
    assert_eq!(errors.len(), 1, "{errors:#?}");
    assert!(
        errors[0].starts_with("test.toml:5:1: queues[0].steps[0].any: unknown field `any`"),
        "{errors:?}"
    );
}
