//! Property test: every input that changes a deadline or an agent's
//! availability keeps the engine's indexes equal to a scan of its calls and
//! agents.
//!
//! The other property tests drive offers and timers on time. This one also
//! reaches the inputs they leave out (transfers, wrap-up codes, exit keys,
//! callbacks, overflow steps, membership and skill changes, agent and
//! queue removal, reloads) and a driver that runs its timer late, so that
//! deadlines pass before `handle_timeout` sees them.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use acd::{
    Acd, Action, CallData, CallerOrder, Destination, EmptyConditions, QueueConfig, RoutingStep,
    SkillRequirement, StepRule, Strategy as Distribution,
};
use proptest::prelude::*;

const AGENTS: [&str; 4] = ["a", "b", "c", "d"];
const QUEUES: [&str; 2] = ["front", "back"];
const KEYS: [char; 4] = ['1', '2', '3', '9'];

fn secs(n: u64) -> Duration {
    Duration::from_secs(n)
}

/// Returns the front desk queue: delays after every kind of missed offer,
/// wrap-up, skill steps that end by overflowing to the back office, and
/// exit keys.
fn front(variant: u8) -> QueueConfig {
    QueueConfig {
        name: "front".to_owned(),
        ring_timeout: secs(8),
        max_wait: secs(60),
        retry_delay: secs(4),
        wrap_up: secs(6 + u64::from(variant)),
        reject_delay: secs(3),
        busy_delay: secs(5),
        no_answer_delay: secs(7),
        max_no_answer: 2,
        steps: vec![
            RoutingStep::new(secs(10 + u64::from(variant) * 5), StepRule::AnyAgent),
            RoutingStep::new(
                secs(40),
                StepRule::Overflow(Destination::Queue("back".to_owned())),
            ),
        ],
        exit_keys: [
            ('1', Destination::Callback),
            ('2', Destination::Queue("back".to_owned())),
            ('3', Destination::Voicemail("100".to_owned())),
        ]
        .into(),
        ..QueueConfig::default()
    }
}

/// Returns the back office queue, which rings all its agents and sends
/// callers on to a callback at max wait and when no member is present.
fn back(variant: u8) -> QueueConfig {
    QueueConfig {
        name: "back".to_owned(),
        strategy: if variant == 0 {
            Distribution::RingAll
        } else {
            Distribution::Random
        },
        ring_timeout: secs(5),
        max_wait: secs(30),
        retry_delay: secs(2),
        wrap_up: secs(4),
        no_answer_delay: secs(3),
        overflow: Some(Destination::Callback),
        leave_empty: Some(EmptyConditions::loose()),
        weight: u32::from(variant),
        ..QueueConfig::default()
    }
}

#[derive(Clone, Debug)]
enum Command {
    Enqueue {
        queue: usize,
        caller: bool,
        level: u8,
    },
    Answer(usize),
    Reject(usize),
    Busy(usize),
    Abandon(usize),
    EndCall(usize),
    Transfer(usize),
    WrapUpCode(usize),
    EndWrapUp(usize),
    NotReady(usize),
    Ready(usize),
    LoggedIn(usize, bool),
    Reachable(usize, bool),
    Skills(usize, u8),
    Member(usize, usize, bool),
    RemoveAgent(usize),
    AddAgent(usize),
    Key(usize, usize),
    Callback(usize),
    UpdateQueue(usize, u8),
    RemoveQueue(usize),
    CallerOrder(bool),
    /// Fires each deadline at its own instant, as a driver's timer does.
    Advance(u64),
    /// Moves the clock without firing anything, as a late timer does.
    Skip(u64),
}

fn command() -> impl Strategy<Value = Command> {
    let agent = 0..AGENTS.len();
    let queue = 0..QUEUES.len();
    prop_oneof![
        4 => (queue.clone(), any::<bool>(), 0..4u8)
            .prop_map(|(queue, caller, level)| Command::Enqueue { queue, caller, level }),
        3 => any::<usize>().prop_map(Command::Answer),
        2 => any::<usize>().prop_map(Command::Reject),
        1 => any::<usize>().prop_map(Command::Busy),
        1 => any::<usize>().prop_map(Command::Abandon),
        2 => agent.clone().prop_map(Command::EndCall),
        1 => agent.clone().prop_map(Command::Transfer),
        1 => agent.clone().prop_map(Command::WrapUpCode),
        1 => agent.clone().prop_map(Command::EndWrapUp),
        1 => agent.clone().prop_map(Command::NotReady),
        2 => agent.clone().prop_map(Command::Ready),
        1 => (agent.clone(), any::<bool>()).prop_map(|(a, on)| Command::LoggedIn(a, on)),
        1 => (agent.clone(), any::<bool>()).prop_map(|(a, on)| Command::Reachable(a, on)),
        1 => (agent.clone(), 0..4u8).prop_map(|(a, level)| Command::Skills(a, level)),
        1 => (agent.clone(), queue.clone(), any::<bool>())
            .prop_map(|(a, q, on)| Command::Member(a, q, on)),
        1 => agent.clone().prop_map(Command::RemoveAgent),
        1 => agent.prop_map(Command::AddAgent),
        1 => (any::<usize>(), 0..KEYS.len()).prop_map(|(c, k)| Command::Key(c, k)),
        1 => any::<usize>().prop_map(Command::Callback),
        1 => (queue.clone(), 0..2u8).prop_map(|(q, v)| Command::UpdateQueue(q, v)),
        1 => queue.prop_map(Command::RemoveQueue),
        1 => any::<bool>().prop_map(Command::CallerOrder),
        4 => (1..20_000u64).prop_map(Command::Advance),
        2 => (1..20_000u64).prop_map(Command::Skip),
    ]
}

struct Model {
    acd: Acd,
    now: Instant,
    /// Offers the driver believes ring: call and agent. Stale pairs only
    /// make the engine ignore an input, which it must do without harm.
    ringing: BTreeSet<(String, String)>,
    /// Every call id used so far, for abandons, keys and callbacks.
    calls: Vec<String>,
}

impl Model {
    fn new() -> Model {
        let now = Instant::now();
        let mut acd = Acd::with_seed(7);
        acd.add_queue(front(0));
        acd.add_queue(back(0));
        for (i, agent) in AGENTS.iter().enumerate() {
            add_agent(&mut acd, i, now);
            acd.set_logged_in(agent, true, now);
            acd.set_reachable(agent, true, now);
        }
        Model {
            acd,
            now,
            ringing: BTreeSet::new(),
            calls: Vec::new(),
        }
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
        let now = self.now;
        let acd = &mut self.acd;
        match *command {
            Command::Enqueue {
                queue,
                caller,
                level,
            } => {
                let call = format!("call-{}", self.calls.len());
                let data = CallData {
                    caller: caller.then(|| "+15550100".to_owned()),
                    requirements: vec![SkillRequirement::new("language=en", level)],
                    ..CallData::default()
                };
                let _ = acd.enqueue_with(&call, QUEUES[queue], data, now);
                self.calls.push(call);
            }
            Command::Answer(i) => {
                if let Some((call, agent)) = self.pick_offer(i) {
                    self.ringing.retain(|(c, _)| *c != call);
                    self.acd.offer_answered(&call, &agent, now);
                }
            }
            Command::Reject(i) | Command::Busy(i) => {
                if let Some((call, agent)) = self.pick_offer(i) {
                    self.ringing.remove(&(call.clone(), agent.clone()));
                    if matches!(command, Command::Busy(_)) {
                        self.acd.offer_busy(&call, &agent, now);
                    } else {
                        self.acd.offer_rejected(&call, &agent, now);
                    }
                }
            }
            Command::Abandon(i) => {
                if let Some(call) = self.pick_call(i) {
                    self.ringing.retain(|(c, _)| *c != call);
                    self.acd.abandon(&call, now);
                }
            }
            Command::EndCall(a) => acd.call_ended(AGENTS[a], now),
            Command::Transfer(a) => acd.call_transferred(AGENTS[a], "2000", now),
            Command::WrapUpCode(a) => {
                let _ = acd.set_wrap_up_code(AGENTS[a], "solved", now);
            }
            Command::EndWrapUp(a) => {
                let _ = acd.end_wrap_up(AGENTS[a], now);
            }
            Command::NotReady(a) => {
                let _ = acd.set_not_ready(AGENTS[a], "break", now);
            }
            Command::Ready(a) => {
                let _ = acd.set_ready(AGENTS[a], now);
            }
            Command::LoggedIn(a, on) => acd.set_logged_in(AGENTS[a], on, now),
            Command::Reachable(a, on) => acd.set_reachable(AGENTS[a], on, now),
            Command::Skills(a, level) => {
                let skills = [("language=en".to_owned(), level)].into();
                let _ = acd.set_skills(AGENTS[a], skills, now);
            }
            Command::Member(a, q, true) => {
                let _ = acd.add_member(AGENTS[a], QUEUES[q], 1 + a as u32, now);
            }
            Command::Member(a, q, false) => {
                let _ = acd.remove_member(AGENTS[a], QUEUES[q], now);
            }
            Command::RemoveAgent(a) => {
                let _ = acd.remove_agent(AGENTS[a], now);
            }
            Command::AddAgent(a) => add_agent(acd, a, now),
            Command::Key(c, k) => {
                if let Some(call) = self.pick_call(c) {
                    self.acd.key_pressed(&call, KEYS[k], now);
                }
            }
            Command::Callback(c) => {
                if let Some(call) = self.pick_call(c) {
                    let _ = self.acd.request_callback(&call, None, now);
                }
            }
            Command::UpdateQueue(0, variant) => acd.update_queue(front(variant), now),
            Command::UpdateQueue(_, variant) => acd.update_queue(back(variant), now),
            Command::RemoveQueue(q) => {
                let _ = acd.remove_queue(QUEUES[q], now);
            }
            Command::CallerOrder(weighted) => acd.set_caller_order(if weighted {
                CallerOrder::QueueWeight
            } else {
                CallerOrder::LongestWaiting
            }),
            Command::Advance(millis) => return self.advance(Duration::from_millis(millis)),
            Command::Skip(millis) => self.now += Duration::from_millis(millis),
        }
        self.drain();
        self.acd.assert_indexes_match_scan();
        Ok(())
    }

    fn advance(&mut self, by: Duration) -> Result<(), TestCaseError> {
        let target = self.now + by;
        for _ in 0..1_000 {
            match self.acd.poll_timeout() {
                Some(deadline) if deadline <= target => {
                    self.now = self.now.max(deadline);
                    self.acd.handle_timeout(self.now);
                    self.drain();
                    self.acd.assert_indexes_match_scan();
                    let next = self.acd.poll_timeout();
                    prop_assert!(
                        next.is_none_or(|next| next > self.now),
                        "handle_timeout left a deadline at or before now"
                    );
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

    fn drain(&mut self) {
        while let Some(action) = self.acd.poll_action() {
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
        while self.acd.poll_event().is_some() {}
    }
}

/// Adds agent `i` (again) with its memberships and a skill level.
fn add_agent(acd: &mut Acd, i: usize, now: Instant) {
    let queues: Vec<String> = match i {
        0 => vec!["front".to_owned()],
        1 => vec!["front".to_owned(), "back".to_owned()],
        _ => vec!["back".to_owned()],
    };
    acd.add_agent(AGENTS[i], &queues);
    let skills: BTreeMap<String, u8> = [("language=en".to_owned(), (i % 4) as u8)].into();
    // `add_agent` keeps an existing agent's state; only its skills reset here.
    let _ = acd.set_skills(AGENTS[i], skills, now);
}

proptest! {
    #[test]
    fn indexes_follow_every_input(commands in prop::collection::vec(command(), 1..120)) {
        let mut model = Model::new();
        model.drain();
        model.acd.assert_indexes_match_scan();
        for command in &commands {
            model.run(command)?;
        }
        // Running the timer on time again settles every deadline left over.
        model.run(&Command::Advance(200_000))?;
        let next = model.acd.poll_timeout();
        prop_assert!(next.is_none_or(|next| next > model.now));
    }
}
