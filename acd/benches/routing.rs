//! Routing cost with 1,000 agents and 500 waiting calls, single routing
//! decisions with 5,000 agents, 50 skills and 10,000 waiting calls, and
//! timer cost with 10,000 idle agents.
//!
//! Each iteration of the first group takes a prepared engine where no
//! agent is reachable yet and 500 calls wait, then makes agents reachable
//! one at a time, answering each offer at once. Agents hold one of ten
//! language skills and a service level; calls require a language and a
//! service level, and the queue relaxes them in steps.
//!
//! The decision group builds the centre of `support/centre.rs` once and
//! times single decisions on it: an agent freed (end of wrap-up, or ready
//! after a break) or a call arriving, with the offer it makes. The arrival
//! group times arrivals in the same centre after only 1,000 calls, with
//! about 4,000 agents idle, where each arrival finds an agent. The work
//! around each decision (the call ending before, the answer after, and a
//! new call or a freed agent that keeps 10,000 calls waiting) is not
//! timed. Criterion reports the mean; `examples/decisions.rs` gives the
//! percentiles.
//!
//! The timer group mirrors the registrar load: 10,000 registered agents,
//! no call, and the server asking for the next deadline after every event.

use std::hint::black_box;
use std::time::{Duration, Instant};

use acd::{
    Acd, Action, CallData, QueueConfig, RoutingStep, SkillRequirement, Skills, StepRule, Strategy,
};
use criterion::{BatchSize, Criterion, criterion_group, criterion_main};

#[path = "support/centre.rs"]
mod centre;

use centre::{Centre, Free};

const AGENTS: usize = 1_000;
const CALLS: usize = 500;
const LANGUAGES: usize = 10;

fn config(strategy: Strategy) -> QueueConfig {
    QueueConfig {
        name: "city".to_owned(),
        ring_timeout: Duration::from_secs(15),
        max_wait: Duration::from_secs(3600),
        strategy,
        steps: vec![
            RoutingStep::new(
                Duration::from_secs(30),
                StepRule::Skills(vec!["language".parse().expect("valid level")]),
            ),
            RoutingStep::new(Duration::from_secs(60), StepRule::AnyAgent),
        ],
        ..QueueConfig::default()
    }
}

/// Builds an engine whose agents are logged in but unreachable, with `CALLS` calls waiting.
fn unreachable_centre(strategy: Strategy, t0: Instant) -> Acd {
    let mut acd = Acd::new();
    acd.add_queue(config(strategy));
    let queues = ["city".to_owned()];
    for i in 0..AGENTS {
        let id = format!("agent-{i}");
        acd.add_agent(&id, &queues);
        let skills: Skills = [
            (format!("language={}", i % LANGUAGES), (i % 5 + 1) as u8),
            ("service=passport".to_owned(), (i % 3 + 1) as u8),
        ]
        .into();
        acd.set_skills(&id, skills, t0).expect("agent exists");
        acd.set_logged_in(&id, true, t0);
    }
    for i in 0..CALLS {
        let data = CallData {
            priority: (i % 3) as u32,
            requirements: vec![
                SkillRequirement::new(&format!("language={}", i % LANGUAGES), 2),
                SkillRequirement::new("service=passport", 2),
            ],
            ..CallData::default()
        };
        acd.enqueue_with(&format!("call-{i}"), "city", data, t0)
            .expect("queue exists");
    }
    acd
}

/// Makes `count` agents reachable one input at a time, answering each offer at once.
fn free_agents(acd: &mut Acd, count: usize, now: Instant) -> usize {
    let mut offers = 0;
    for i in 0..count {
        acd.set_reachable(&format!("agent-{i}"), true, now);
        while let Some(action) = acd.poll_action() {
            if let Action::Offer { call, agent } = action {
                acd.offer_answered(&call, &agent, now);
                offers += 1;
            }
        }
        while acd.poll_event().is_some() {}
    }
    offers
}

fn routing(c: &mut Criterion) {
    let t0 = Instant::now();
    let mut group = c.benchmark_group("route_1000_agents_500_calls");
    group.sample_size(10);
    for strategy in [
        Strategy::LongestIdle,
        Strategy::BestProficiency,
        Strategy::RoundRobin,
    ] {
        let name = format!("{strategy:?}_free_50_agents");
        group.bench_function(name, |b| {
            b.iter_batched(
                || unreachable_centre(strategy, t0),
                |mut acd| black_box(free_agents(&mut acd, 50, t0 + Duration::from_secs(1))),
                BatchSize::LargeInput,
            );
        });
    }
    group.bench_function("step_expansion_timeout", |b| {
        b.iter_batched(
            || {
                let mut acd = unreachable_centre(Strategy::LongestIdle, t0);
                free_agents(&mut acd, 50, t0);
                acd
            },
            |mut acd| {
                acd.handle_timeout(t0 + Duration::from_secs(60));
                black_box(acd.poll_action())
            },
            BatchSize::LargeInput,
        );
    });
    group.finish();
}

/// Times `iters` decisions of one kind on `centre`, each between untimed
/// steps that keep the load level.
fn time_decisions(centre: &mut Centre, iters: u64, kind: Decision) -> Duration {
    let mut total = Duration::ZERO;
    for i in 0..iters {
        centre.tick();
        let free = if kind == Decision::Ready {
            Free::SetReady
        } else {
            Free::EndWrapUp
        };
        match kind {
            Decision::Arrival => {
                let start = Instant::now();
                centre.arrive();
                let offers = black_box(centre.take_offers());
                total += start.elapsed();
                centre.answer(offers);
                // Keeps the calls waiting level: one agent frees and takes one.
                if let Some(agent) = centre.hang_up(free) {
                    centre.free(&agent, free);
                    centre.answer_offers();
                }
            }
            Decision::WrapUpEnd | Decision::Ready => {
                let Some(agent) = centre.hang_up(free) else {
                    // Every agent idle: nothing left to free.
                    centre.arrive();
                    centre.answer_offers();
                    continue;
                };
                let start = Instant::now();
                centre.free(&agent, free);
                let offers = black_box(centre.take_offers());
                total += start.elapsed();
                centre.answer(offers);
                centre.arrive();
                centre.answer_offers();
            }
        }
        black_box(i);
    }
    total
}

/// The input a decision benchmark times.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Decision {
    /// An agent ends its wrap-up.
    WrapUpEnd,
    /// An agent comes back from a break.
    Ready,
    /// A call arrives.
    Arrival,
}

fn decisions(c: &mut Criterion) {
    // Built by the first benchmark that runs, so a filter that skips the
    // group skips the seconds of loading too.
    let mut centre: Option<Centre> = None;
    let mut group = c.benchmark_group("decide_5000_agents_10000_calls");
    group.sample_size(20);
    let kinds = [
        ("wrap_up_end_then_offer", Decision::WrapUpEnd),
        ("ready_then_offer", Decision::Ready),
        ("arrival_then_offer", Decision::Arrival),
    ];
    for (name, kind) in kinds {
        group.bench_function(name, |b| {
            let centre = centre.get_or_insert_with(|| Centre::loaded(Instant::now()));
            b.iter_custom(|iters| time_decisions(centre, iters, kind));
        });
    }
    group.finish();
}

fn arrivals(c: &mut Criterion) {
    let mut centre: Option<Centre> = None;
    let mut group = c.benchmark_group("arrive_5000_agents_4000_idle");
    group.sample_size(20);
    group.bench_function("arrival_then_offer", |b| {
        let centre = centre.get_or_insert_with(|| Centre::after_arrivals(Instant::now(), 1_000));
        // Each arrival takes an idle agent, and the agent that talked
        // longest is freed after it, so about 4,000 stay idle.
        b.iter_custom(|iters| time_decisions(centre, iters, Decision::Arrival));
    });
    group.finish();
}

const IDLE_AGENTS: usize = 10_000;

/// Builds an engine with `IDLE_AGENTS` available agents and no call.
fn idle_centre(t0: Instant) -> Acd {
    let mut acd = Acd::new();
    acd.add_queue(config(Strategy::LongestIdle));
    let queues = ["city".to_owned()];
    for i in 0..IDLE_AGENTS {
        let id = format!("agent-{i}");
        acd.add_agent(&id, &queues);
        acd.set_logged_in(&id, true, t0);
        acd.set_reachable(&id, true, t0);
    }
    while acd.poll_event().is_some() {}
    acd
}

fn timers(c: &mut Criterion) {
    let t0 = Instant::now();
    let mut group = c.benchmark_group("timers_10000_idle_agents");
    group.sample_size(10);
    let mut acd = idle_centre(t0);
    group.bench_function("poll_timeout", |b| b.iter(|| black_box(acd.poll_timeout())));
    // What the server does on each of its own timer ticks: the ACD's timeout
    // with nothing due, then the next deadline.
    group.bench_function("handle_timeout_then_poll", |b| {
        b.iter(|| {
            acd.handle_timeout(t0 + Duration::from_secs(1));
            black_box(acd.poll_timeout())
        })
    });
    // A registration flapping: the agent turns unreachable and back.
    group.bench_function("reachability_change_then_poll", |b| {
        let now = t0 + Duration::from_secs(1);
        b.iter(|| {
            acd.set_reachable("agent-5000", false, now);
            acd.set_reachable("agent-5000", true, now);
            while acd.poll_event().is_some() {}
            black_box(acd.poll_timeout())
        })
    });
    group.finish();
}

criterion_group!(benches, routing, decisions, arrivals, timers);
criterion_main!(benches);
