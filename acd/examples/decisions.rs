//! Times routing decisions one by one with 5,000 agents, 50 skills and
//! 10,000 waiting calls, and prints their percentiles, then the heap each
//! waiting call adds. The routing target is a 99th percentile under 50 us
//! per decision and under 2 kB per waiting call. Criterion reports means,
//! so this records every decision.
//!
//! `cargo run --release -p acd --example decisions -- [CYCLES] [SECONDS]`
//!
//! Each cycle ends the call of the agent that has talked longest and frees
//! it (ending its wrap-up, or every other cycle making it ready after a
//! break), which is one decision, then one call arrives, another decision.
//! A decision is the input and the draining of the offer it makes. The
//! loop stops after CYCLES (default 5,000) or SECONDS of wall time
//! (default 120), whichever comes first.

use std::time::{Duration, Instant};

use stats_alloc::{INSTRUMENTED_SYSTEM, Region, StatsAlloc};

#[path = "../benches/support/centre.rs"]
mod centre;

use centre::{Centre, Free, WAITING};

#[global_allocator]
static HEAP: &StatsAlloc<std::alloc::System> = &INSTRUMENTED_SYSTEM;

/// Per-decision durations of one kind.
#[derive(Default)]
struct Timings(Vec<Duration>);

impl Timings {
    fn time<T>(&mut self, decision: impl FnOnce() -> T) -> T {
        let start = Instant::now();
        let result = decision();
        self.0.push(start.elapsed());
        result
    }

    fn print(&mut self, name: &str) {
        let samples = &mut self.0;
        if samples.is_empty() {
            println!("{name:<28} no samples");
            return;
        }
        samples.sort();
        let at = |fraction: f64| {
            let index = ((samples.len() as f64 * fraction).ceil() as usize).max(1) - 1;
            samples[index.min(samples.len() - 1)]
        };
        let total: Duration = samples.iter().sum();
        println!(
            "{name:<28} n={:<6} mean={:>10.1?} p50={:>10.1?} p90={:>10.1?} p99={:>10.1?} max={:>10.1?}",
            samples.len(),
            total / samples.len() as u32,
            at(0.50),
            at(0.90),
            at(0.99),
            samples[samples.len() - 1],
        );
    }
}

fn main() {
    let mut args = std::env::args().skip(1);
    let cycles: usize = args.next().map_or(5_000, |a| a.parse().expect("CYCLES"));
    let limit = Duration::from_secs(args.next().map_or(120, |a| a.parse().expect("SECONDS")));

    let t0 = Instant::now();
    let started = Instant::now();
    let mut centre = Centre::staffed(t0);
    // Load as `Centre::loaded` does, reporting progress, since an engine
    // that scans every waiting call per input takes long to get there.
    let mut mark = (Instant::now(), 0u64);
    // The enqueue alone, with the offer it makes, of each arrival since the mark.
    let mut enqueues: Vec<Duration> = Vec::new();
    while centre.queued < WAITING {
        centre.tick();
        let start = Instant::now();
        centre.arrive();
        enqueues.push(start.elapsed());
        centre.answer_offers();
        if centre.arrivals().is_multiple_of(1_000) {
            enqueues.sort();
            println!(
                "loading: {:>5} arrivals, {:>5} calls waiting, {} agents talking, {} idle; {:.1?} per arrival, enqueue p50 {:.1?} p99 {:.1?} max {:.1?}",
                centre.arrivals(),
                centre.queued,
                centre.talking(),
                centre.idle(),
                mark.0.elapsed() / (centre.arrivals() - mark.1) as u32,
                enqueues[enqueues.len() / 2],
                enqueues[enqueues.len() * 99 / 100],
                enqueues[enqueues.len() - 1],
            );
            enqueues.clear();
            mark = (Instant::now(), centre.arrivals());
        }
        if started.elapsed() > limit {
            println!("loading stopped after {:.1?}", started.elapsed());
            return;
        }
    }
    println!(
        "built in {:.1?}: {} calls waiting, {} agents talking, {} idle",
        started.elapsed(),
        centre.queued,
        centre.talking(),
        centre.idle()
    );

    let mut freeing = Timings::default();
    let mut arriving = Timings::default();
    let mut decisions = Timings::default();
    let mut answers = Timings::default();
    let mut hang_ups = Timings::default();
    let mut offered = 0;
    let loop_start = Instant::now();
    let mut done = 0;
    while done < cycles && loop_start.elapsed() < limit {
        let free = if done.is_multiple_of(2) {
            Free::EndWrapUp
        } else {
            Free::SetReady
        };
        centre.tick();
        let Some(agent) = hang_ups.time(|| centre.hang_up(free)) else {
            break;
        };
        let offers = freeing.time(|| {
            centre.free(&agent, free);
            centre.take_offers()
        });
        decisions.0.push(*freeing.0.last().expect("just timed"));
        offered += offers.len();
        answers.time(|| centre.answer(offers));
        let offers = arriving.time(|| {
            centre.arrive();
            centre.take_offers()
        });
        decisions.0.push(*arriving.0.last().expect("just timed"));
        offered += offers.len();
        centre.answer(offers);
        done += 1;
    }
    println!(
        "{done} cycles in {:.1?}, {offered} offers, {} calls waiting at the end",
        loop_start.elapsed(),
        centre.queued
    );
    decisions.print("decision (all)");
    freeing.print("free agent, then offer");
    arriving.print("new call, then offer");
    hang_ups.print("call end (not a decision)");
    answers.print("answer (not a decision)");

    // Heap per waiting call: the bytes the next WAITING arrivals leave
    // allocated, over the calls that are still waiting after them.
    centre.drain_events();
    let before = centre.queued;
    let rss_before = resident_bytes();
    let region = Region::new(HEAP);
    for _ in 0..WAITING {
        centre.tick();
        centre.arrive();
        centre.answer_offers();
    }
    centre.drain_events();
    let change = region.change();
    let added = centre.queued - before;
    let bytes = change.bytes_allocated as f64 - change.bytes_deallocated as f64;
    let blocks = change.allocations as f64 - change.deallocations as f64;
    println!(
        "heap: {added} more waiting calls ({} to {}) hold {:.0} bytes in {:.0} blocks: {:.0} bytes and {:.1} blocks per call",
        before,
        centre.queued,
        bytes,
        blocks,
        bytes / added as f64,
        blocks / added as f64
    );
    // The allocator's own overhead per block and its free lists show in
    // the resident size, not in the bytes asked for.
    if let (Some(rss_before), Some(rss_after)) = (rss_before, resident_bytes()) {
        let grown = rss_after.saturating_sub(rss_before) as f64;
        println!(
            "resident set grew by {grown:.0} bytes: {:.0} bytes per call",
            grown / added as f64
        );
    }
}

/// Returns the process's resident set size from /proc, on Linux.
fn resident_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|line| line.starts_with("VmRSS:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}
