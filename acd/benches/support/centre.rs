//! A call centre at the size the routing target is set for: 5,000 agents,
//! 50 skills and 10,000 waiting calls, shared by the criterion benchmark
//! and the `decisions` example.
//!
//! Skills come in four categories: 10 languages, 25 services, 10 regions
//! and 5 channels. Each agent speaks one or two languages, handles one to
//! three services and sometimes one region or channel (2 to 6 skills, levels
//! 1 to 5), and belongs to the queues of its services. Each call needs a
//! language, usually a service and sometimes a region (1 to 3 skills at low
//! minimum levels). Languages and services are drawn with a skew, as in a
//! city where most callers speak one language and ask about a few services.
//! The four queues use different strategies, and two of them check for
//! empty queues on join and while calls wait.

#![allow(dead_code)] // The benchmark and the example each use a part.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use acd::{
    Acd, Action, CallData, EmptyConditions, QueueConfig, RoutingStep, SkillRequirement, Skills,
    StepRule, Strategy,
};

pub(crate) const AGENTS: usize = 5_000;
pub(crate) const WAITING: usize = 10_000;

const LANGUAGES: [&str; 10] = ["ru", "en", "tt", "uk", "de", "zh", "ar", "fr", "es", "tr"];
const SERVICES: [&str; 25] = [
    "passport",
    "visa",
    "tax",
    "pension",
    "benefits",
    "licence",
    "permit",
    "registration",
    "housing",
    "health",
    "parking",
    "school",
    "transport",
    "utilities",
    "waste",
    "marriage",
    "birth",
    "death",
    "business",
    "land",
    "court",
    "police",
    "library",
    "sports",
    "complaints",
];
const REGIONS: [&str; 10] = [
    "north", "south", "east", "west", "centre", "river", "hills", "port", "airport", "suburbs",
];
const CHANNELS: [&str; 5] = ["phone", "video", "relay", "sign", "callback"];
const QUEUES: [&str; 4] = ["documents", "money", "city", "general"];

/// SplitMix64, so every run builds the same centre.
pub(crate) struct Draw(u64);

impl Draw {
    pub(crate) fn new(seed: u64) -> Draw {
        Draw(seed)
    }

    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn below(&mut self, bound: usize) -> usize {
        (self.next() % bound as u64) as usize
    }

    fn chance(&mut self, percent: usize) -> bool {
        self.below(100) < percent
    }

    /// Returns an index below `bound`, index `i` about twice as likely as `i + 3`.
    fn skewed(&mut self, bound: usize) -> usize {
        loop {
            let pick = self.below(bound);
            // Accept with probability 2^(-pick/3).
            if self.below(1 << 20) < (1 << 20) >> (pick / 3) {
                return pick;
            }
        }
    }
}

fn queue_of_service(service: usize) -> &'static str {
    QUEUES[service % QUEUES.len()]
}

fn config(index: usize) -> QueueConfig {
    let strategy = [
        Strategy::LongestIdle,
        Strategy::BestProficiency,
        Strategy::RoundRobin,
        Strategy::FewestCalls,
    ][index];
    let secs = Duration::from_secs;
    QueueConfig {
        name: QUEUES[index].to_owned(),
        ring_timeout: secs(15),
        max_wait: secs(1800),
        retry_delay: secs(5),
        wrap_up: secs(30),
        strategy,
        steps: vec![
            RoutingStep::new(
                secs(30),
                StepRule::Skills(vec![
                    "language".parse().expect("valid level"),
                    "service>=1".parse().expect("valid level"),
                ]),
            ),
            RoutingStep::new(
                secs(60),
                StepRule::Skills(vec!["language".parse().expect("valid level")]),
            ),
            RoutingStep::new(secs(120), StepRule::AnyAgent),
        ],
        join_empty: (index == 2).then(EmptyConditions::loose),
        leave_empty: (index == 3).then(EmptyConditions::loose),
        no_answer_delay: secs(10),
        reject_delay: secs(5),
        ..QueueConfig::default()
    }
}

fn agent_skills(draw: &mut Draw) -> (Skills, Vec<String>) {
    let mut skills = Skills::new();
    let mut queues = Vec::new();
    let level = |draw: &mut Draw| 1 + draw.below(5) as u8;
    let languages = 1 + usize::from(draw.chance(40));
    while skills.len() < languages {
        let language = LANGUAGES[draw.skewed(LANGUAGES.len())];
        let at = level(draw);
        skills.insert(format!("language={language}"), at);
    }
    let services = 1 + draw.below(3);
    let mut held = 0;
    while held < services {
        let service = draw.skewed(SERVICES.len());
        let name = format!("service={}", SERVICES[service]);
        if skills.contains_key(&name) {
            continue;
        }
        let at = level(draw);
        skills.insert(name, at);
        held += 1;
        let queue = queue_of_service(service).to_owned();
        if !queues.contains(&queue) {
            queues.push(queue);
        }
    }
    if draw.chance(40) {
        let extra = if draw.chance(70) {
            format!("region={}", REGIONS[draw.below(REGIONS.len())])
        } else {
            format!("channel={}", CHANNELS[draw.below(CHANNELS.len())])
        };
        let at = level(draw);
        skills.insert(extra, at);
    }
    (skills, queues)
}

/// Returns a queue and the data of a new call.
fn call(draw: &mut Draw, number: u64) -> (&'static str, CallData) {
    let language = LANGUAGES[draw.skewed(LANGUAGES.len())];
    let service = draw.skewed(SERVICES.len());
    let mut requirements = vec![SkillRequirement::new(
        &format!("language={language}"),
        [1, 1, 2, 2, 3][draw.below(5)],
    )];
    if draw.chance(90) {
        requirements.push(SkillRequirement::new(
            &format!("service={}", SERVICES[service]),
            [1, 1, 2, 2, 3, 4][draw.below(6)],
        ));
    }
    if draw.chance(20) {
        requirements.push(SkillRequirement::new(
            &format!("region={}", REGIONS[draw.below(REGIONS.len())]),
            1 + draw.below(2) as u8,
        ));
    }
    let priority = match draw.below(100) {
        0..2 => 2,
        2..12 => 1,
        _ => 0,
    };
    let data = CallData {
        priority,
        requirements,
        caller: Some(format!("+7843{:07}", number % 10_000_000)),
        request_type: Some(SERVICES[service].to_owned()),
        case_id: draw.chance(30).then(|| format!("case-{number:08}")),
        ..CallData::default()
    };
    (queue_of_service(service), data)
}

/// The input by which a benchmark cycle frees its agent.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Free {
    /// The agent ends its wrap-up early.
    EndWrapUp,
    /// The agent went not ready during wrap-up and comes back.
    SetReady,
}

/// The engine, its virtual clock and the driver's view of it.
pub(crate) struct Centre {
    pub(crate) acd: Acd,
    pub(crate) now: Instant,
    draw: Draw,
    /// Agents on a call, the longest-talking first.
    on_call: VecDeque<String>,
    next_call: u64,
    /// Calls waiting or ringing, as the driver counts them.
    pub(crate) queued: usize,
}

impl Centre {
    /// Adds the queues and the agents, logged in and reachable, with no call yet.
    pub(crate) fn staffed(t0: Instant) -> Centre {
        let mut acd = Acd::new();
        for index in 0..QUEUES.len() {
            acd.add_queue(config(index));
        }
        let mut draw = Draw::new(0xACD5_CA1E);
        for i in 0..AGENTS {
            let id = format!("agent-{i:04}");
            let (skills, queues) = agent_skills(&mut draw);
            acd.add_agent(&id, &queues);
            acd.set_skills(&id, skills, t0).expect("agent exists");
            acd.set_logged_in(&id, true, t0);
            acd.set_reachable(&id, true, t0);
        }
        while acd.poll_event().is_some() {}
        Centre {
            acd,
            now: t0,
            draw,
            on_call: VecDeque::new(),
            next_call: 0,
            queued: 0,
        }
    }

    /// Builds the full centre: agents take calls as they arrive, 1 ms
    /// apart, until `WAITING` calls wait with the agents that qualify busy.
    pub(crate) fn loaded(t0: Instant) -> Centre {
        let mut centre = Centre::staffed(t0);
        while centre.queued < WAITING {
            centre.tick();
            centre.arrive();
            centre.answer_offers();
        }
        centre
    }

    /// Builds the centre as `loaded` does but stops after `arrivals` calls,
    /// while many agents are still idle: about 4,000 after 1,000 arrivals.
    pub(crate) fn after_arrivals(t0: Instant, arrivals: u64) -> Centre {
        let mut centre = Centre::staffed(t0);
        while centre.arrivals() < arrivals {
            centre.tick();
            centre.arrive();
            centre.answer_offers();
        }
        centre
    }

    /// Moves the virtual clock on by a millisecond, firing any timer due.
    pub(crate) fn tick(&mut self) {
        self.now += Duration::from_millis(1);
        if self.acd.poll_timeout().is_some_and(|at| at <= self.now) {
            self.acd.handle_timeout(self.now);
        }
    }

    /// Enqueues one new call. Its offer, if any, waits in the actions.
    pub(crate) fn arrive(&mut self) {
        let (queue, data) = call(&mut self.draw, self.next_call);
        let id = format!("call-{:07}", self.next_call);
        self.next_call += 1;
        if self.acd.enqueue_with(&id, queue, data, self.now).is_ok() {
            self.queued += 1;
        }
    }

    /// Ends the call of the agent that has talked longest, leaving it in
    /// wrap-up, or for `Free::SetReady` not ready after wrap-up. Returns the
    /// agent, or `None` when no agent is on a call.
    pub(crate) fn hang_up(&mut self, free: Free) -> Option<String> {
        let agent = self.on_call.pop_front()?;
        self.acd.call_ended(&agent, self.now);
        if free == Free::SetReady {
            self.acd
                .set_not_ready(&agent, "break", self.now)
                .expect("agent exists");
            self.acd.end_wrap_up(&agent, self.now).expect("in wrap-up");
        }
        self.answer_offers();
        Some(agent)
    }

    /// The decision that frees `agent`; the offer it makes waits in the actions.
    pub(crate) fn free(&mut self, agent: &str, free: Free) {
        let result = match free {
            Free::EndWrapUp => self.acd.end_wrap_up(agent, self.now),
            Free::SetReady => self.acd.set_ready(agent, self.now),
        };
        result.expect("agent exists");
    }

    /// Returns the offers among the pending actions, dropping the others.
    pub(crate) fn take_offers(&mut self) -> Vec<(String, String)> {
        let mut offers = Vec::new();
        while let Some(action) = self.acd.poll_action() {
            match action {
                Action::Offer { call, agent } | Action::Callback { call, agent, .. } => {
                    offers.push((call, agent));
                }
                Action::OfferAll { call, agents } => {
                    // Ring-all: the first agent answers, the engine cancels the rest.
                    offers.extend(agents.into_iter().next().map(|agent| (call, agent)));
                }
                _ => {}
            }
        }
        offers
    }

    /// Answers `offers` at once, as agents picking up, and any offer that
    /// follows.
    pub(crate) fn answer(&mut self, mut offers: Vec<(String, String)>) {
        while !offers.is_empty() {
            for (call, agent) in offers {
                self.acd.offer_answered(&call, &agent, self.now);
                self.queued -= 1;
                self.on_call.push_back(agent);
            }
            offers = self.take_offers();
        }
        self.drain_events();
    }

    pub(crate) fn answer_offers(&mut self) {
        let offers = self.take_offers();
        self.answer(offers);
    }

    /// One untimed cycle that keeps the load level: an agent is freed and
    /// answers the call offered to it, and a new call arrives.
    pub(crate) fn cycle(&mut self, free: Free) {
        self.tick();
        if let Some(agent) = self.hang_up(free) {
            self.free(&agent, free);
            self.answer_offers();
        }
        self.arrive();
        self.answer_offers();
    }

    pub(crate) fn drain_events(&mut self) {
        while self.acd.poll_event().is_some() {}
    }

    /// Returns how many agents are available: those no waiting call suits.
    pub(crate) fn idle(&self) -> usize {
        (0..AGENTS)
            .filter(|i| {
                let state = self.acd.agent_state(&format!("agent-{i:04}"));
                state == Some(acd::AgentState::Available)
            })
            .count()
    }

    /// Returns how many calls have arrived so far.
    pub(crate) fn arrivals(&self) -> u64 {
        self.next_call
    }

    /// Returns how many agents are on a call.
    pub(crate) fn talking(&self) -> usize {
        self.on_call.len()
    }
}
