//! Property test: the indexed dispatch makes the same offers, in the same
//! order, as the full scan of waiting calls and free agents it replaced.
//!
//! Three engines with the same seed get the same random inputs. One
//! dispatches by the scan (`use_scan_dispatch`). One dispatches through
//! the index of waiting calls and tests few available agents one by one,
//! its default. One always looks available agents up by skills. After
//! every input all must have emitted the same actions and events and ask
//! for the same next timeout. The inputs
//! cover what the index relies on: skills and levels, several queues per
//! agent, every strategy, steps that relax requirements, retry and
//! reject delays, timers that run late, membership and skill changes,
//! reloads, callbacks, and queues that empty while calls wait. The order
//! of available agents by strategy key also needs ties: agents freed or
//! made ready at the same instant tie on idle time, calls answered and
//! talk time, and levels 0 to 3 make equal proficiencies common. Reloads
//! change a queue's strategy while its agents are filed.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use acd::{
    Acd, Action, CallData, CallbackAttempts, CallbackFailure, CallerOrder, Destination,
    EmptyConditions, QueueConfig, QueueEvent, RoutingStep, SkillRequirement, Skills, StepRule,
    Strategy as Distribution,
};
use proptest::prelude::*;

const AGENTS: [&str; 8] = ["a", "b", "c", "d", "e", "f", "g", "h"];
const QUEUES: [&str; 3] = ["front", "back", "vip"];
const SKILLS: [&str; 4] = ["language=en", "language=fr", "service=tax", "service=visa"];
const KEYS: [char; 3] = ['1', '2', '3'];

fn secs(n: u64) -> Duration {
    Duration::from_secs(n)
}

fn strategy(variant: u8) -> Distribution {
    [
        Distribution::LongestIdle,
        Distribution::FewestCalls,
        Distribution::LeastTalkTime,
        Distribution::RoundRobin,
        Distribution::RingAll,
        Distribution::Linear,
        Distribution::Random,
        Distribution::WeightedRandom,
        Distribution::BestProficiency,
    ][usize::from(variant) % 9]
}

/// Returns queue `q` in one of its variants: strategy, step timings and
/// the empty-queue rules change with `variant`.
fn config(q: usize, variant: u8) -> QueueConfig {
    let v = u64::from(variant);
    let mut steps = vec![
        RoutingStep::new(
            secs(8 + v % 4),
            StepRule::Skills(vec!["language".parse().expect("valid level")]),
        ),
        RoutingStep::new(secs(20 + v % 3), StepRule::AnyAgent),
    ];
    if q == 0 {
        steps.push(RoutingStep::new(
            secs(45),
            StepRule::Overflow(Destination::Queue("back".to_owned())),
        ));
    }
    QueueConfig {
        name: QUEUES[q].to_owned(),
        strategy: strategy(variant.wrapping_add(q as u8 * 3)),
        ring_timeout: secs(6 + q as u64),
        max_wait: secs(70 + 10 * q as u64),
        retry_delay: secs(v % 3 * 3),
        wrap_up: secs(v % 2 * 5),
        reject_delay: secs(1 + v % 4),
        busy_delay: secs(2),
        no_answer_delay: secs(v % 3 * 2),
        max_no_answer: 3,
        callback_attempts: (v % 3 + 1) as u32,
        callback_retry_delay: secs(4 + v % 5),
        weight: u32::from(variant % 3),
        steps,
        overflow: (q == 1).then_some(Destination::Callback),
        leave_empty: match (q, variant % 3) {
            (1, 0) => Some(EmptyConditions::loose()),
            (1, 1) => Some(EmptyConditions::strict()),
            _ => None,
        },
        join_empty: (q == 2 && variant % 2 == 1).then(EmptyConditions::loose),
        exit_keys: [
            ('1', Destination::Callback),
            ('2', Destination::Queue("vip".to_owned())),
            ('3', Destination::Voicemail("100".to_owned())),
        ]
        .into(),
        ..QueueConfig::default()
    }
}

/// Returns a skill set from a number: each of the four skills present or
/// not, at a level from the number.
fn skill_set(pattern: u8, levels: u8) -> Skills {
    SKILLS
        .iter()
        .enumerate()
        .filter(|(i, _)| pattern >> i & 1 == 1)
        .map(|(i, skill)| ((*skill).to_owned(), (levels >> i) % 4))
        .collect()
}

#[derive(Clone, Debug)]
enum Command {
    Enqueue {
        queue: usize,
        caller: bool,
        priority: u32,
        needs: Vec<(usize, u8)>,
    },
    Answer(usize),
    Reject(usize),
    Busy(usize),
    Abandon(usize),
    EndCall(usize),
    Transfer(usize),
    EndWrapUp(usize),
    /// Every agent's call and wrap-up ends at the same instant.
    FreeAll,
    /// Every agent not ready is made ready at the same instant.
    ReadyAll,
    NotReady(usize),
    Ready(usize),
    LoggedIn(usize, bool),
    Reachable(usize, bool),
    Skills(usize, u8, u8),
    Member(usize, usize, bool, u32),
    RemoveAgent(usize),
    AddAgent(usize),
    Key(usize, usize),
    Callback(usize),
    CallbackOutcome(usize, u8),
    Direct(usize, bool),
    Restore(usize, u64),
    UpdateQueue(usize, u8),
    RemoveQueue(usize),
    CallerOrder(bool),
    Advance(u64),
    Skip(u64),
}

fn command() -> impl Strategy<Value = Command> {
    let agent = 0..AGENTS.len();
    let queue = 0..QUEUES.len();
    let need = (0..SKILLS.len(), 0..4u8);
    prop_oneof![
        6 => (queue.clone(), any::<bool>(), 0..3u32, prop::collection::vec(need, 0..3))
            .prop_map(|(queue, caller, priority, needs)| Command::Enqueue {
                queue,
                caller,
                priority,
                needs,
            }),
        4 => any::<usize>().prop_map(Command::Answer),
        2 => any::<usize>().prop_map(Command::Reject),
        1 => any::<usize>().prop_map(Command::Busy),
        1 => any::<usize>().prop_map(Command::Abandon),
        3 => agent.clone().prop_map(Command::EndCall),
        1 => agent.clone().prop_map(Command::Transfer),
        2 => agent.clone().prop_map(Command::EndWrapUp),
        1 => Just(Command::FreeAll),
        1 => Just(Command::ReadyAll),
        1 => agent.clone().prop_map(Command::NotReady),
        2 => agent.clone().prop_map(Command::Ready),
        1 => (agent.clone(), any::<bool>()).prop_map(|(a, on)| Command::LoggedIn(a, on)),
        1 => (agent.clone(), any::<bool>()).prop_map(|(a, on)| Command::Reachable(a, on)),
        2 => (agent.clone(), 0..16u8, any::<u8>()).prop_map(|(a, p, l)| Command::Skills(a, p, l)),
        1 => (agent.clone(), queue.clone(), any::<bool>(), 0..4u32)
            .prop_map(|(a, q, on, w)| Command::Member(a, q, on, w)),
        1 => agent.clone().prop_map(Command::RemoveAgent),
        1 => agent.prop_map(Command::AddAgent),
        1 => (any::<usize>(), 0..KEYS.len()).prop_map(|(c, k)| Command::Key(c, k)),
        1 => any::<usize>().prop_map(Command::Callback),
        2 => (any::<usize>(), 0..5u8).prop_map(|(c, o)| Command::CallbackOutcome(c, o)),
        1 => (0..AGENTS.len(), any::<bool>()).prop_map(|(a, on)| Command::Direct(a, on)),
        1 => (queue.clone(), 0..30_000u64).prop_map(|(q, ago)| Command::Restore(q, ago)),
        1 => (queue.clone(), 0..9u8).prop_map(|(q, v)| Command::UpdateQueue(q, v)),
        1 => queue.prop_map(Command::RemoveQueue),
        1 => any::<bool>().prop_map(Command::CallerOrder),
        5 => (1..12_000u64).prop_map(Command::Advance),
        2 => (1..12_000u64).prop_map(Command::Skip),
    ]
}

/// The scan engine, two indexed engines, and the driver's view.
struct Pair {
    scan: Acd,
    indexed: Acd,
    by_skills: Acd,
    now: Instant,
    ringing: BTreeSet<(String, String)>,
    calls: Vec<String>,
}

impl Pair {
    fn new() -> Pair {
        let now = Instant::now();
        let mut scan = Acd::with_seed(11);
        scan.use_scan_dispatch();
        let mut by_skills = Acd::with_seed(11);
        by_skills.set_few_available(0);
        let mut pair = Pair {
            scan,
            indexed: Acd::with_seed(11),
            by_skills,
            now,
            ringing: BTreeSet::new(),
            calls: Vec::new(),
        };
        pair.both(|acd, now| {
            for q in 0..QUEUES.len() {
                acd.add_queue(config(q, q as u8 + 1));
            }
            for (i, agent) in AGENTS.iter().enumerate() {
                add_agent(acd, i, now);
                acd.set_logged_in(agent, true, now);
                acd.set_reachable(agent, true, now);
            }
        });
        pair
    }

    fn both(&mut self, input: impl Fn(&mut Acd, Instant)) {
        input(&mut self.scan, self.now);
        input(&mut self.indexed, self.now);
        input(&mut self.by_skills, self.now);
    }

    fn pick_offer(&self, i: usize) -> Option<(String, String)> {
        let count = self.ringing.len();
        self.ringing.iter().nth(i % count.max(1)).cloned()
    }

    fn pick_call(&self, i: usize) -> Option<String> {
        let count = self.calls.len();
        self.calls.get(i % count.max(1)).cloned()
    }

    fn run(&mut self, command: &Command) -> Result<(), TestCaseError> {
        match command {
            Command::Enqueue {
                queue,
                caller,
                priority,
                needs,
            } => {
                let call = format!("call-{}", self.calls.len());
                let data = CallData {
                    priority: *priority,
                    caller: caller.then(|| "+15550100".to_owned()),
                    requirements: needs
                        .iter()
                        .map(|(skill, level)| SkillRequirement::new(SKILLS[*skill], *level))
                        .collect(),
                    ..CallData::default()
                };
                self.both(|acd, now| {
                    let _ = acd.enqueue_with(&call, QUEUES[*queue], data.clone(), now);
                });
                self.calls.push(call);
            }
            Command::Answer(i) => {
                if let Some((call, agent)) = self.pick_offer(*i) {
                    self.ringing.retain(|(c, _)| *c != call);
                    self.both(|acd, now| acd.offer_answered(&call, &agent, now));
                }
            }
            Command::Reject(i) | Command::Busy(i) => {
                if let Some((call, agent)) = self.pick_offer(*i) {
                    self.ringing.remove(&(call.clone(), agent.clone()));
                    let busy = matches!(command, Command::Busy(_));
                    self.both(|acd, now| {
                        if busy {
                            acd.offer_busy(&call, &agent, now);
                        } else {
                            acd.offer_rejected(&call, &agent, now);
                        }
                    });
                }
            }
            Command::Abandon(i) => {
                if let Some(call) = self.pick_call(*i) {
                    self.ringing.retain(|(c, _)| *c != call);
                    self.both(|acd, now| acd.abandon(&call, now));
                }
            }
            Command::EndCall(a) => self.both(|acd, now| acd.call_ended(AGENTS[*a], now)),
            Command::Transfer(a) => {
                self.both(|acd, now| acd.call_transferred(AGENTS[*a], "2000", now));
            }
            Command::EndWrapUp(a) => self.both(|acd, now| {
                let _ = acd.end_wrap_up(AGENTS[*a], now);
            }),
            Command::FreeAll => self.both(|acd, now| {
                for agent in AGENTS {
                    acd.call_ended(agent, now);
                    let _ = acd.end_wrap_up(agent, now);
                }
            }),
            Command::ReadyAll => self.both(|acd, now| {
                for agent in AGENTS {
                    let _ = acd.set_ready(agent, now);
                }
            }),
            Command::NotReady(a) => self.both(|acd, now| {
                let _ = acd.set_not_ready(AGENTS[*a], "break", now);
            }),
            Command::Ready(a) => self.both(|acd, now| {
                let _ = acd.set_ready(AGENTS[*a], now);
            }),
            Command::LoggedIn(a, on) => {
                self.both(|acd, now| acd.set_logged_in(AGENTS[*a], *on, now));
            }
            Command::Reachable(a, on) => {
                self.both(|acd, now| acd.set_reachable(AGENTS[*a], *on, now));
            }
            Command::Skills(a, pattern, levels) => self.both(|acd, now| {
                let _ = acd.set_skills(AGENTS[*a], skill_set(*pattern, *levels), now);
            }),
            Command::Member(a, q, true, weight) => self.both(|acd, now| {
                let _ = acd.add_member(AGENTS[*a], QUEUES[*q], *weight, now);
            }),
            Command::Member(a, q, false, _) => self.both(|acd, now| {
                let _ = acd.remove_member(AGENTS[*a], QUEUES[*q], now);
            }),
            Command::RemoveAgent(a) => self.both(|acd, now| {
                let _ = acd.remove_agent(AGENTS[*a], now);
            }),
            Command::AddAgent(a) => self.both(|acd, now| add_agent(acd, *a, now)),
            Command::Key(c, k) => {
                if let Some(call) = self.pick_call(*c) {
                    self.both(|acd, now| {
                        acd.key_pressed(&call, KEYS[*k], now);
                    });
                }
            }
            Command::Callback(c) => {
                if let Some(call) = self.pick_call(*c) {
                    self.both(|acd, now| {
                        let _ = acd.request_callback(&call, None, now);
                    });
                }
            }
            Command::CallbackOutcome(c, outcome) => {
                // Calls whose citizen is not being dialed ignore both inputs.
                if let Some(call) = self.pick_call(*c) {
                    self.both(|acd, now| match outcome {
                        0 => acd.callback_connected(&call, now),
                        1 => acd.callback_not_reached(&call, CallbackFailure::Busy, now),
                        2 => acd.callback_not_reached(&call, CallbackFailure::NoAnswer, now),
                        3 => acd.callback_not_reached(&call, CallbackFailure::Unreachable, now),
                        _ => acd.callback_not_reached(&call, CallbackFailure::AgentLeft, now),
                    });
                }
            }
            Command::Direct(a, started) => self.both(|acd, now| {
                if *started {
                    acd.direct_call_started(AGENTS[*a], "direct", now);
                } else {
                    acd.direct_call_ended(AGENTS[*a], "direct", now);
                }
            }),
            Command::Restore(q, ago) => {
                let call = format!("call-{}", self.calls.len());
                let arrived = self
                    .now
                    .checked_sub(Duration::from_millis(*ago))
                    .unwrap_or(self.now);
                self.both(|acd, now| {
                    let data = CallData::default();
                    // Some restored requests failed twice before and wait
                    // for their retry.
                    let attempts = CallbackAttempts {
                        failed: (*ago % 3) as u32,
                        not_before: (*ago % 2 == 0).then(|| now + Duration::from_millis(*ago)),
                    };
                    let _ = acd.restore_callback(
                        &call,
                        QUEUES[*q],
                        data,
                        "+15550199",
                        arrived,
                        attempts,
                        now,
                    );
                });
                self.calls.push(call);
            }
            Command::UpdateQueue(q, variant) => {
                self.both(|acd, now| acd.update_queue(config(*q, *variant), now));
            }
            Command::RemoveQueue(q) => self.both(|acd, now| {
                let _ = acd.remove_queue(QUEUES[*q], now);
            }),
            Command::CallerOrder(weighted) => self.both(|acd, _| {
                acd.set_caller_order(if *weighted {
                    CallerOrder::QueueWeight
                } else {
                    CallerOrder::LongestWaiting
                });
            }),
            Command::Advance(millis) => return self.advance(Duration::from_millis(*millis)),
            Command::Skip(millis) => self.now += Duration::from_millis(*millis),
        }
        self.compare()
    }

    fn advance(&mut self, by: Duration) -> Result<(), TestCaseError> {
        let target = self.now + by;
        for _ in 0..1_000 {
            match self.indexed.poll_timeout() {
                Some(deadline) if deadline <= target => {
                    self.now = self.now.max(deadline);
                    self.both(|acd, now| acd.handle_timeout(now));
                    self.compare()?;
                }
                _ => {
                    self.now = target;
                    return Ok(());
                }
            }
        }
        Err(TestCaseError::fail(
            "more than 1000 timeouts in one advance",
        ))
    }

    /// Drains the engines and fails on the first difference from the scan.
    fn compare(&mut self) -> Result<(), TestCaseError> {
        let expected: Vec<Action> = std::iter::from_fn(|| self.scan.poll_action()).collect();
        let expected_events: Vec<QueueEvent> =
            std::iter::from_fn(|| self.scan.poll_event()).collect();
        self.scan.assert_indexes_match_scan();
        for acd in [&mut self.indexed, &mut self.by_skills] {
            let actions: Vec<Action> = std::iter::from_fn(|| acd.poll_action()).collect();
            prop_assert_eq!(&actions, &expected, "actions differ from the scan");
            let events: Vec<QueueEvent> = std::iter::from_fn(|| acd.poll_event()).collect();
            prop_assert_eq!(&events, &expected_events, "events differ from the scan");
            prop_assert_eq!(acd.poll_timeout(), self.scan.poll_timeout());
            acd.assert_indexes_match_scan();
            for call in &self.calls {
                prop_assert_eq!(acd.position(call), self.scan.position(call));
            }
        }
        let actions = expected;
        for action in actions {
            match action {
                Action::Offer { call, agent } | Action::Callback { call, agent, .. } => {
                    self.ringing.insert((call, agent));
                }
                Action::OfferAll { call, agents } => {
                    for agent in agents {
                        self.ringing.insert((call.clone(), agent));
                    }
                }
                Action::CancelOffer { call, agent } => {
                    self.ringing.remove(&(call, agent));
                }
                _ => {}
            }
        }
        Ok(())
    }
}

/// Adds agent `i` (again) with its memberships and skills.
fn add_agent(acd: &mut Acd, i: usize, now: Instant) {
    let queues: Vec<String> = match i % 3 {
        0 => vec!["front".to_owned(), "vip".to_owned()],
        1 => vec!["front".to_owned(), "back".to_owned()],
        _ => vec!["back".to_owned(), "vip".to_owned()],
    };
    acd.add_agent(AGENTS[i], &queues);
    let _ = acd.set_skills(
        AGENTS[i],
        skill_set(i as u8 + 5, (i as u8).wrapping_mul(37)),
        now,
    );
}

// PROPTEST_CASES=5000 runs a deeper search than the default 256 cases.
proptest! {
    #[test]
    fn indexed_dispatch_matches_the_scan(commands in prop::collection::vec(command(), 1..150)) {
        let mut pair = Pair::new();
        pair.compare()?;
        for command in &commands {
            pair.run(command)?;
        }
        // Running the timer on time again settles every deadline left over.
        pair.run(&Command::Advance(300_000))?;
    }
}
