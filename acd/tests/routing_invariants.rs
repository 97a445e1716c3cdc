//! Property test: random strategies, skills, steps and agent-state commands
//! keep the routing invariants that a call centre relies on, and the
//! engine's indexes agree with a scan of its calls and agents throughout.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use acd::{
    Acd, Action, AgentState, CallData, QueueConfig, RoutingStep, SkillRequirement, Skills,
    StepRule, Strategy as Distribution,
};
use proptest::prelude::*;
use proptest::test_runner::TestCaseError;

const AGENTS: [&str; 4] = ["a", "b", "c", "d"];
const STRATEGIES: [Distribution; 9] = [
    Distribution::LongestIdle,
    Distribution::FewestCalls,
    Distribution::LeastTalkTime,
    Distribution::RoundRobin,
    Distribution::RingAll,
    Distribution::Linear,
    Distribution::Random,
    Distribution::WeightedRandom,
    Distribution::BestProficiency,
];

#[derive(Clone, Debug)]
enum Command {
    Enqueue {
        language: u8,
        level: u8,
        priority: u32,
    },
    Answer(usize),
    Reject(usize),
    Busy(usize),
    EndCall(usize),
    NotReady(usize),
    Ready(usize),
    EndWrapUp(usize),
    Abandon(usize),
    Advance(u64),
}

fn command() -> impl Strategy<Value = Command> {
    prop_oneof![
        (0..2u8, 0..4u8, 0..3u32).prop_map(|(language, level, priority)| Command::Enqueue {
            language,
            level,
            priority
        }),
        (0..8usize).prop_map(Command::Answer),
        (0..8usize).prop_map(Command::Reject),
        (0..8usize).prop_map(Command::Busy),
        (0..4usize).prop_map(Command::EndCall),
        (0..4usize).prop_map(Command::NotReady),
        (0..4usize).prop_map(Command::Ready),
        (0..4usize).prop_map(Command::EndWrapUp),
        (0..8usize).prop_map(Command::Abandon),
        (1..40u64).prop_map(Command::Advance),
    ]
}

/// Skills of agent `i`: language `i % 2` at level `i + 1`.
fn agent_skills(i: usize) -> Skills {
    [(format!("language={}", i % 2), (i + 1) as u8)].into()
}

struct Model {
    acd: Acd,
    now: Instant,
    steps: Vec<RoutingStep>,
    /// Calls in the ACD with their arrival and own requirements.
    queued: BTreeMap<String, (Instant, Vec<SkillRequirement>)>,
    /// Agent to call, for every agent ringing.
    ringing: BTreeMap<String, String>,
    next_call: usize,
}

impl Model {
    fn run(&mut self, command: &Command) {
        let now = self.now;
        let pick = |map: &BTreeMap<String, String>, i: usize| {
            map.iter()
                .nth(i % map.len().max(1))
                .map(|(a, c)| (a.clone(), c.clone()))
        };
        match command.clone() {
            Command::Enqueue {
                language,
                level,
                priority,
            } => {
                let call = format!("call-{}", self.next_call);
                self.next_call += 1;
                let requirements = vec![SkillRequirement::new(
                    &format!("language={language}"),
                    level,
                )];
                let data = CallData {
                    priority,
                    requirements: requirements.clone(),
                    ..CallData::default()
                };
                if self.acd.enqueue_with(&call, "q", data, now).is_ok() {
                    self.queued.insert(call, (now, requirements));
                }
            }
            Command::Answer(i) => {
                if let Some((agent, call)) = pick(&self.ringing, i) {
                    self.acd.offer_answered(&call, &agent, now);
                    self.queued.remove(&call);
                    // Other ring-all agents leave through `CancelOffer`.
                    self.ringing.remove(&agent);
                }
            }
            Command::Reject(i) | Command::Busy(i) => {
                if let Some((agent, call)) = pick(&self.ringing, i) {
                    if matches!(command, Command::Busy(_)) {
                        self.acd.offer_busy(&call, &agent, now);
                    } else {
                        self.acd.offer_rejected(&call, &agent, now);
                    }
                    self.ringing.remove(&agent);
                }
            }
            Command::EndCall(i) => self.acd.call_ended(AGENTS[i], now),
            Command::NotReady(i) => self.acd.set_not_ready(AGENTS[i], "break", now).unwrap(),
            Command::Ready(i) => self.acd.set_ready(AGENTS[i], now).unwrap(),
            Command::EndWrapUp(i) => {
                let _ = self.acd.end_wrap_up(AGENTS[i], now);
            }
            Command::Abandon(i) => {
                if let Some(call) = self
                    .queued
                    .keys()
                    .nth(i % self.queued.len().max(1))
                    .cloned()
                {
                    self.acd.abandon(&call, now);
                    self.queued.remove(&call);
                    self.ringing.retain(|_, c| *c != call);
                }
            }
            Command::Advance(by) => {
                let target = self.now + Duration::from_secs(by);
                while let Some(deadline) = self.acd.poll_timeout().filter(|d| *d <= target) {
                    self.now = deadline.max(self.now);
                    self.acd.handle_timeout(self.now);
                    self.acd.assert_indexes_match_scan();
                    let _ = self.drain();
                }
                self.now = target;
            }
        }
    }

    /// Requirements of `call` under the step in force now.
    fn requirements_now(&self, call: &str) -> Vec<SkillRequirement> {
        let (arrived, own) = &self.queued[call];
        let waited = self.now.duration_since(*arrived);
        match self
            .steps
            .iter()
            .rev()
            .find(|s| s.after <= waited)
            .map(|s| &s.rule)
        {
            Some(StepRule::AnyAgent) => Vec::new(),
            _ => own.clone(),
        }
    }

    fn offer(&mut self, call: String, agent: String) -> Result<(), TestCaseError> {
        prop_assert!(
            self.queued.contains_key(&call),
            "offer of unknown call {}",
            call
        );
        prop_assert!(!self.ringing.contains_key(&agent), "{} rings twice", agent);
        let skills = agent_skills(AGENTS.iter().position(|a| *a == agent).unwrap());
        for requirement in self.requirements_now(&call) {
            let level = skills.get(&requirement.skill).copied();
            prop_assert!(
                level.is_some_and(|l| l >= requirement.min_level),
                "{} lacks {} for {}",
                agent,
                requirement,
                call
            );
        }
        self.ringing.insert(agent, call);
        Ok(())
    }

    fn drain(&mut self) -> Result<(), TestCaseError> {
        while let Some(action) = self.acd.poll_action() {
            match action {
                Action::Offer { call, agent } => self.offer(call, agent)?,
                Action::OfferAll { call, agents } => {
                    prop_assert!(!agents.is_empty());
                    for agent in agents {
                        self.offer(call.clone(), agent)?;
                    }
                }
                Action::CancelOffer { call, agent } => {
                    prop_assert_eq!(self.ringing.remove(&agent), Some(call));
                }
                Action::MaxWaitReached { call } => {
                    prop_assert!(self.queued.remove(&call).is_some());
                }
                other => prop_assert!(false, "unexpected action {:?}", other),
            }
        }
        while self.acd.poll_event().is_some() {}
        Ok(())
    }

    fn check(&self) -> Result<(), TestCaseError> {
        self.acd.assert_indexes_match_scan();
        for agent in AGENTS {
            let state = self.acd.agent_state(agent).unwrap();
            let ringing = self.ringing.get(agent);
            prop_assert_eq!(
                state == AgentState::Ringing,
                ringing.is_some(),
                "agent {}",
                agent
            );
        }
        if let Some(deadline) = self.acd.poll_timeout() {
            prop_assert!(deadline >= self.now, "timeout in the past");
        }
        Ok(())
    }
}

proptest! {
    #[test]
    fn routing_keeps_invariants(
        strategy in 0..STRATEGIES.len(),
        seed in any::<u64>(),
        commands in proptest::collection::vec(command(), 1..80),
    ) {
        let steps = vec![
            RoutingStep::new(Duration::from_secs(20), StepRule::Skills(vec!["language".parse().unwrap()])),
            RoutingStep::new(Duration::from_secs(50), StepRule::AnyAgent),
        ];
        let mut acd = Acd::with_seed(seed);
        acd.add_queue(QueueConfig {
            name: "q".into(),
            ring_timeout: Duration::from_secs(10),
            max_wait: Duration::from_secs(90),
            wrap_up: Duration::from_secs(15),
            strategy: STRATEGIES[strategy],
            steps: steps.clone(),
            reject_delay: Duration::from_secs(3),
            busy_delay: Duration::from_secs(7),
            max_no_answer: 3,
            ..QueueConfig::default()
        });
        let now = Instant::now();
        for (i, agent) in AGENTS.iter().enumerate() {
            acd.add_agent(agent, &["q".to_owned()]);
            acd.set_skills(agent, agent_skills(i), now).unwrap();
            acd.set_logged_in(agent, true, now);
            acd.set_reachable(agent, true, now);
        }
        let mut model = Model { acd, now, steps, queued: BTreeMap::new(), ringing: BTreeMap::new(), next_call: 0 };
        model.drain()?;
        for command in &commands {
            model.run(command);
            model.drain()?;
            model.check()?;
        }
    }
}
