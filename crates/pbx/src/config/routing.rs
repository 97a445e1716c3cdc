//! The ACD part of the file: strategies, skills, skill expansion steps,
//! empty-queue conditions and destinations, converted into the acd crate's
//! types. Skill text goes through the acd crate's own parsers, so the
//! syntax is defined in one place.

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use acd::{
    CallerOrder, CategoryLevel, Destination, EmptyConditions, RoutingStep, SkillRequirement,
    Skills, StepRule, Strategy,
};
use toml::Spanned;

use super::error::ConfigErrorKind;
use super::raw::{RawQueue, RawStep, Value};
use super::validate::{Checker, Source, Sourced, from_file, spanned};

/// Strategy names as written in `queues.strategy`.
pub(super) const STRATEGIES: [(&str, Strategy); 9] = [
    ("longest-idle", Strategy::LongestIdle),
    ("fewest-calls", Strategy::FewestCalls),
    ("least-talk-time", Strategy::LeastTalkTime),
    ("round-robin", Strategy::RoundRobin),
    ("ring-all", Strategy::RingAll),
    ("linear", Strategy::Linear),
    ("random", Strategy::Random),
    ("weighted-random", Strategy::WeightedRandom),
    ("best-proficiency", Strategy::BestProficiency),
];

/// Caller order names as written in `acd.caller_order`.
pub(super) const CALLER_ORDERS: [(&str, CallerOrder); 2] = [
    ("longest-waiting", CallerOrder::LongestWaiting),
    ("queue-weight", CallerOrder::QueueWeight),
];

/// Default seconds a declining or busy phone is left alone by every queue.
const REJECT_DELAY_SECS: u64 = 10;
const BUSY_DELAY_SECS: u64 = 10;

/// Returns the agent states that a condition name counts as absent.
fn named_conditions(name: &str) -> Option<EmptyConditions> {
    let none = EmptyConditions::default();
    let conditions = match name {
        "strict" => EmptyConditions::strict(),
        "loose" => EmptyConditions::loose(),
        "not-ready" => EmptyConditions {
            not_ready: true,
            ..none
        },
        "unreachable" => EmptyConditions {
            unreachable: true,
            ..none
        },
        "ringing" => EmptyConditions {
            ringing: true,
            ..none
        },
        "on-call" => EmptyConditions {
            on_call: true,
            ..none
        },
        "wrap-up" => EmptyConditions {
            wrap_up: true,
            ..none
        },
        "unskilled" => EmptyConditions {
            unskilled: true,
            ..none
        },
        _ => return None,
    };
    Some(conditions)
}

/// DTMF keys a caller can press, and so the only valid exit keys.
const DTMF_KEYS: &str = "0123456789*#";

fn lookup<T: Copy>(table: &[(&str, T)], name: &str) -> Option<T> {
    table
        .iter()
        .find(|(known, _)| *known == name)
        .map(|(_, value)| *value)
}

pub(super) fn caller_order(checker: &mut Checker<'_>, raw: &Value<String>) -> CallerOrder {
    let Some(raw) = raw else {
        return CallerOrder::default();
    };
    lookup(&CALLER_ORDERS, raw.get_ref()).unwrap_or_else(|| {
        let kind = ConfigErrorKind::UnknownCallerOrder {
            value: raw.get_ref().clone(),
        };
        checker.report("acd.caller_order", &Source::File(raw.span()), kind);
        CallerOrder::default()
    })
}

/// Converts an agent's `skills` list into skill name to proficiency level.
pub(super) fn agent_skills(
    checker: &mut Checker<'_>,
    key: &str,
    raw: &[Spanned<String>],
) -> Skills {
    requirements(checker, key, raw)
        .into_iter()
        .map(|skill| (skill.skill, skill.min_level))
        .collect()
}

/// Parses `SKILL:LEVEL` entries, reporting bad syntax and repeated skills.
pub(super) fn requirements(
    checker: &mut Checker<'_>,
    key: &str,
    raw: &[Spanned<String>],
) -> Vec<SkillRequirement> {
    let mut seen = HashMap::new();
    let mut parsed = Vec::with_capacity(raw.len());
    for (position, entry) in raw.iter().enumerate() {
        let key = format!("{key}[{position}]");
        let source = Source::File(entry.span());
        let requirement = match entry.get_ref().parse::<SkillRequirement>() {
            Ok(requirement) => requirement,
            Err(error) => {
                checker.report(key, &source, ConfigErrorKind::InvalidSkill(error));
                continue;
            }
        };
        // The parser keeps inner spaces, so "language = ru" would be a skill
        // that matches neither "language=ru" nor its category "language".
        let name = Sourced {
            value: requirement.skill.clone(),
            source,
        };
        checker.token(&key, &name);
        checker.unique(&key, "skill", &name, &mut seen);
        parsed.push(requirement);
    }
    parsed
}

/// Builds the engine's queue configuration on top of `timings`, which
/// carries the name and the four timings that validate.rs checks.
pub(super) fn engine_queue(
    checker: &mut Checker<'_>,
    key: &str,
    queue: &RawQueue,
    queues: &[RawQueue],
    timings: acd::QueueConfig,
) -> acd::QueueConfig {
    let defaults = acd::QueueConfig::default();
    let targets = Targets {
        own: queue.name.get_ref(),
        queues,
    };
    let max_length = from_file(&queue.max_length, 0).value;
    if let Some(raw) = &queue.callback_attempts {
        checker.non_zero(&format!("{key}.callback_attempts"), &spanned(raw));
    }
    if let Some(raw) = &queue.max_length {
        checker.non_zero(&format!("{key}.max_length"), &spanned(raw));
    }
    let secs = |raw: &Value<u64>, default: Duration| {
        raw.as_ref()
            .map_or(default, |secs| Duration::from_secs(*secs.get_ref()))
    };
    acd::QueueConfig {
        strategy: strategy(checker, &format!("{key}.strategy"), &queue.strategy),
        // u64 to usize saturates only on 32-bit targets, where no queue
        // contains that many calls anyway.
        max_length: (max_length > 0).then(|| usize::try_from(max_length).unwrap_or(usize::MAX)),
        weight: from_file(&queue.weight, defaults.weight).value,
        steps: steps(checker, key, &queue.steps, timings.max_wait, &targets),
        join_empty: empty_conditions(checker, &format!("{key}.join_empty"), &queue.join_empty),
        leave_empty: empty_conditions(checker, &format!("{key}.leave_empty"), &queue.leave_empty),
        overflow: queue.overflow.as_ref().and_then(|raw| {
            targets.destination(checker, &format!("{key}.overflow"), &spanned(raw))
        }),
        exit_keys: exit_keys(checker, key, &queue.exit_keys, &targets),
        // A phone that declines or is busy (do not disturb, another call)
        // would otherwise be rung again at once by every queue.
        reject_delay: secs(
            &queue.reject_delay_secs,
            Duration::from_secs(REJECT_DELAY_SECS),
        ),
        busy_delay: secs(&queue.busy_delay_secs, Duration::from_secs(BUSY_DELAY_SECS)),
        no_answer_delay: secs(&queue.no_answer_delay_secs, defaults.no_answer_delay),
        max_no_answer: from_file(&queue.max_no_answer, defaults.max_no_answer).value,
        service_level: secs(&queue.service_level_secs, defaults.service_level),
        callback_attempts: from_file(&queue.callback_attempts, defaults.callback_attempts).value,
        callback_retry_delay: secs(&queue.callback_retry_secs, defaults.callback_retry_delay),
        ..timings
    }
}

fn strategy(checker: &mut Checker<'_>, key: &str, raw: &Value<String>) -> Strategy {
    let Some(raw) = raw else {
        return Strategy::default();
    };
    lookup(&STRATEGIES, raw.get_ref()).unwrap_or_else(|| {
        let kind = ConfigErrorKind::UnknownStrategy {
            value: raw.get_ref().clone(),
        };
        checker.report(key, &Source::File(raw.span()), kind);
        Strategy::default()
    })
}

fn empty_conditions(
    checker: &mut Checker<'_>,
    key: &str,
    raw: &Value<Vec<Spanned<String>>>,
) -> Option<EmptyConditions> {
    let list = raw.as_ref()?;
    // An empty list counts only logged-out members as absent.
    let mut conditions = EmptyConditions::default();
    for (position, entry) in list.get_ref().iter().enumerate() {
        match named_conditions(entry.get_ref()) {
            Some(named) => conditions = union(conditions, named),
            None => {
                let kind = ConfigErrorKind::UnknownEmptyCondition {
                    value: entry.get_ref().clone(),
                };
                checker.report(
                    format!("{key}[{position}]"),
                    &Source::File(entry.span()),
                    kind,
                );
            }
        }
    }
    Some(conditions)
}

fn union(a: EmptyConditions, b: EmptyConditions) -> EmptyConditions {
    EmptyConditions {
        not_ready: a.not_ready || b.not_ready,
        unreachable: a.unreachable || b.unreachable,
        ringing: a.ringing || b.ringing,
        on_call: a.on_call || b.on_call,
        wrap_up: a.wrap_up || b.wrap_up,
        unskilled: a.unskilled || b.unskilled,
    }
}

fn exit_keys(
    checker: &mut Checker<'_>,
    key: &str,
    raw: &BTreeMap<Spanned<String>, Spanned<String>>,
    targets: &Targets<'_>,
) -> BTreeMap<char, Destination> {
    let mut keys = BTreeMap::new();
    for (dtmf, destination) in raw {
        let key = format!("{key}.exit_keys.\"{}\"", dtmf.get_ref());
        let mut chars = dtmf.get_ref().chars();
        let digit = match (chars.next(), chars.next()) {
            (Some(digit), None) if DTMF_KEYS.contains(digit) => Some(digit),
            _ => None,
        };
        if digit.is_none() {
            let kind = ConfigErrorKind::InvalidExitKey {
                key: dtmf.get_ref().clone(),
            };
            checker.report(&key, &Source::File(dtmf.span()), kind);
        }
        let destination = targets.destination(checker, &key, &spanned(destination));
        if let (Some(digit), Some(destination)) = (digit, destination) {
            keys.insert(digit, destination);
        }
    }
    keys
}

/// Converts `[[queues.steps]]`, which must be in strictly increasing time
/// order. The engine would sort them, but a misordered list usually means a
/// mistyped time, and of two steps at one time only the later would apply.
fn steps(
    checker: &mut Checker<'_>,
    key: &str,
    raw: &[RawStep],
    max_wait: Duration,
    targets: &Targets<'_>,
) -> Vec<RoutingStep> {
    let mut steps = Vec::with_capacity(raw.len());
    let mut previous: Option<u64> = None;
    for (index, step) in raw.iter().enumerate() {
        let key = format!("{key}.steps[{index}]");
        let after = spanned(&step.after_secs);
        if let Some(previous) = previous.filter(|previous| after.value <= *previous) {
            let kind = ConfigErrorKind::StepOrder {
                after: after.value,
                previous,
            };
            checker.report(format!("{key}.after_secs"), &after.source, kind);
        }
        previous = Some(after.value);
        if let Some(rule) = step_rule(checker, &key, step, targets) {
            if matches!(rule, StepRule::Overflow(_)) && after.value > max_wait.as_secs() {
                let kind = ConfigErrorKind::StepAfterMaxWait {
                    after: after.value,
                    max_wait: max_wait.as_secs(),
                };
                checker.report(format!("{key}.after_secs"), &after.source, kind);
            }
            steps.push(RoutingStep::new(Duration::from_secs(after.value), rule));
        }
    }
    steps
}

fn step_rule(
    checker: &mut Checker<'_>,
    key: &str,
    step: &RawStep,
    targets: &Targets<'_>,
) -> Option<StepRule> {
    let found = [
        step.keep.is_some(),
        step.any_agent.is_some(),
        step.overflow.is_some(),
    ]
    .into_iter()
    .filter(|present| *present)
    .count();
    if found != 1 {
        let source = Source::File(step.after_secs.span());
        checker.report(key, &source, ConfigErrorKind::StepRuleCount { found });
        return None;
    }
    if let Some(keep) = &step.keep {
        return Some(StepRule::Skills(categories(checker, key, keep.get_ref())));
    }
    if let Some(any_agent) = &step.any_agent {
        if !*any_agent.get_ref() {
            let key = format!("{key}.any_agent");
            checker.report(
                key,
                &Source::File(any_agent.span()),
                ConfigErrorKind::NotTrue,
            );
        }
        return Some(StepRule::AnyAgent);
    }
    let overflow = step.overflow.as_ref()?;
    targets
        .destination(checker, &format!("{key}.overflow"), &spanned(overflow))
        .map(StepRule::Overflow)
}

/// Parses a step's `keep` list of `CATEGORY` or `CATEGORY>=LEVEL` entries.
fn categories(checker: &mut Checker<'_>, key: &str, raw: &[Spanned<String>]) -> Vec<CategoryLevel> {
    let mut seen = HashMap::new();
    let mut levels = Vec::with_capacity(raw.len());
    for (position, entry) in raw.iter().enumerate() {
        let key = format!("{key}.keep[{position}]");
        let source = Source::File(entry.span());
        let level = match entry.get_ref().parse::<CategoryLevel>() {
            Ok(level) => level,
            Err(error) => {
                checker.report(key, &source, ConfigErrorKind::InvalidStepLevel(error));
                continue;
            }
        };
        // A whole skill ("service=passport:3") parses as a category that no
        // requirement ever has, which would silently drop every requirement.
        let is_category = level
            .category
            .chars()
            .all(|c| !(c == '=' || c == ':' || c.is_whitespace() || c.is_control()));
        if !is_category {
            let kind = ConfigErrorKind::InvalidStepCategory {
                value: entry.get_ref().clone(),
            };
            checker.report(key, &source, kind);
            continue;
        }
        let category = Sourced {
            value: level.category.clone(),
            source,
        };
        checker.unique(&key, "step category", &category, &mut seen);
        levels.push(level);
    }
    levels
}

/// The queue whose destinations are being checked, and all queues.
struct Targets<'a> {
    own: &'a str,
    queues: &'a [RawQueue],
}

impl Targets<'_> {
    /// Parses `queue:NAME`, `voicemail:BOX`, `number:NUMBER` or `callback`.
    fn destination(
        &self,
        checker: &mut Checker<'_>,
        key: &str,
        raw: &Sourced<String>,
    ) -> Option<Destination> {
        let Some(destination) = parse_destination(&raw.value) else {
            let kind = ConfigErrorKind::InvalidDestination {
                value: raw.value.clone(),
            };
            checker.report(key, &raw.source, kind);
            return None;
        };
        let Destination::Queue(queue) = &destination else {
            return Some(destination);
        };
        if queue == self.own {
            let kind = ConfigErrorKind::DestinationIsSelf {
                queue: queue.clone(),
            };
            checker.report(key, &raw.source, kind);
            return None;
        }
        if !self
            .queues
            .iter()
            .any(|known| known.name.get_ref() == queue)
        {
            let kind = ConfigErrorKind::UnknownQueue {
                queue: queue.clone(),
            };
            checker.report(key, &raw.source, kind);
            return None;
        }
        Some(destination)
    }
}

fn parse_destination(text: &str) -> Option<Destination> {
    if text == "callback" {
        return Some(Destination::Callback);
    }
    let (kind, target) = text.split_once(':')?;
    let valid = !target.is_empty() && !target.chars().any(|c| c.is_whitespace() || c.is_control());
    if !valid {
        return None;
    }
    let target = target.to_owned();
    match kind {
        "queue" => Some(Destination::Queue(target)),
        // The box names a folder of the data directory.
        "voicemail" if is_mailbox(&target) => Some(Destination::Voicemail(target)),
        "number" => Some(Destination::Number(target)),
        _ => None,
    }
}

/// True for a voicemail box name: letters, digits, `-` and `_`, at most 64.
fn is_mailbox(name: &str) -> bool {
    name.len() <= 64
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
}
