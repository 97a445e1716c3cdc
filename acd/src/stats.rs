//! Queue measurements and expected wait: Erlang C from measured handle
//! times, arrivals and staffed agents, and a per-position estimate.

use std::time::{Duration, Instant};

use crate::agent::AgentState;
use crate::call::History;
use crate::engine::Acd;

/// Handle times (talk plus wrap-up) kept per queue for the average.
const HANDLE_TIMES_KEPT: usize = 200;
/// Arrivals kept per queue to measure the arrival rate.
const ARRIVALS_KEPT: usize = 2000;
/// Arrival rate is measured over this window before `now`.
const ARRIVAL_WINDOW: Duration = Duration::from_secs(15 * 60);

#[derive(Clone, Debug, Default)]
pub(crate) struct QueueStats {
    handle_times: History<Duration>,
    arrivals: History<Instant>,
    answered: u64,
    total_answer_wait: Duration,
    answered_in_service_level: u64,
    abandoned: u64,
    timed_out: u64,
    exited: u64,
}

impl QueueStats {
    pub(crate) fn record_handle_time(&mut self, handle_time: Duration) {
        self.handle_times.push(handle_time, HANDLE_TIMES_KEPT);
    }

    pub(crate) fn record_arrival(&mut self, at: Instant) {
        self.arrivals.push(at, ARRIVALS_KEPT);
    }

    pub(crate) fn record_answer(&mut self, waited: Duration, service_level: Duration) {
        self.answered += 1;
        self.total_answer_wait += waited;
        if waited <= service_level {
            self.answered_in_service_level += 1;
        }
    }

    pub(crate) fn record_abandon(&mut self) {
        self.abandoned += 1;
    }

    pub(crate) fn record_timeout(&mut self) {
        self.timed_out += 1;
    }

    pub(crate) fn record_exit(&mut self) {
        self.exited += 1;
    }

    /// Share of the calls that left the queue which were answered within
    /// the service level target, from 0 to 1.
    fn service_level(&self) -> Option<f64> {
        let left = self.answered + self.abandoned + self.timed_out + self.exited;
        (left > 0).then(|| self.answered_in_service_level as f64 / left as f64)
    }

    fn average_handle_time(&self) -> Option<Duration> {
        let count = u32::try_from(self.handle_times.len())
            .ok()
            .filter(|n| *n > 0)?;
        Some(self.handle_times.iter().sum::<Duration>() / count)
    }

    /// Returns calls per second over the window before `now`, or over the
    /// time since the first arrival when that is shorter.
    fn arrival_rate(&self, now: Instant) -> Option<f64> {
        let recent: Vec<&Instant> = self
            .arrivals
            .iter()
            .filter(|at| now.saturating_duration_since(**at) <= ARRIVAL_WINDOW)
            .collect();
        let first = **recent.first()?;
        let span = now
            .saturating_duration_since(first)
            .max(Duration::from_secs(1));
        Some(recent.len() as f64 / span.min(ARRIVAL_WINDOW).as_secs_f64())
    }
}

/// Measurements and estimates of one queue at one instant.
#[derive(Clone, Debug, PartialEq)]
pub struct QueueSnapshot {
    /// Calls waiting or ringing.
    pub calls: usize,
    /// Members logged in and not in not-ready: available, ringing, on a
    /// call or in wrap-up.
    pub staffed: u32,
    /// Members available now.
    pub available: u32,
    /// Mean of recent handle times (talk plus wrap-up), if any call ended.
    pub average_handle_time: Option<Duration>,
    /// Calls per second over the last 15 minutes, if any arrived.
    pub arrival_rate: Option<f64>,
    /// Erlang C mean wait of a new caller; `None` without measurements or
    /// when the offered traffic reaches the staffed agents (no steady state).
    pub expected_wait: Option<Duration>,
    /// Mean wait of answered calls since the queue was added.
    pub average_answer_wait: Option<Duration>,
    /// Wait of the call that has been in the queue longest, waiting or
    /// ringing; zero when the queue holds no call.
    pub longest_wait: Duration,
    /// Calls answered by an agent since the queue was added.
    pub answered: u64,
    /// Of those, the ones answered within the queue's `service_level`.
    pub answered_in_service_level: u64,
    /// Calls whose caller hung up while waiting or ringing.
    pub abandoned: u64,
    /// Calls that reached max wait with no overflow destination.
    pub timed_out: u64,
    /// Calls that left for another reason: full, empty, exit key, step or
    /// overflow, including overflow to another queue.
    pub exited: u64,
    /// `answered_in_service_level` as a share (0 to 1) of all calls that
    /// left the queue (answered, abandoned, timed out or exited); `None`
    /// until one has.
    pub service_level: Option<f64>,
    /// The queue's service level target.
    pub service_level_target: Duration,
}

/// Returns the Erlang C probability that a call waits, with `agents`
/// servers and `traffic` Erlangs offered; 1.0 when `traffic >= agents`.
pub fn erlang_c(agents: u32, traffic: f64) -> f64 {
    let n = f64::from(agents);
    if agents == 0 || traffic >= n {
        return 1.0;
    }
    if traffic <= 0.0 {
        return 0.0;
    }
    // Erlang B by its recurrence, which stays within floating-point range
    // for any number of agents, then converted to Erlang C.
    let mut blocking = 1.0;
    for k in 1..=agents {
        blocking = traffic * blocking / (f64::from(k) + traffic * blocking);
    }
    n * blocking / (n - traffic * (1.0 - blocking))
}

/// Returns the Erlang C mean wait (M/M/N) for calls arriving at
/// `arrival_rate` per second with mean `handle_time`, or `None` when the
/// traffic reaches the number of agents.
pub fn erlang_c_wait(agents: u32, arrival_rate: f64, handle_time: Duration) -> Option<Duration> {
    let traffic = arrival_rate * handle_time.as_secs_f64();
    let n = f64::from(agents);
    if traffic >= n {
        return None;
    }
    let wait = erlang_c(agents, traffic) * handle_time.as_secs_f64() / (n - traffic);
    Duration::try_from_secs_f64(wait).ok()
}

impl Acd {
    /// Returns measurements and the Erlang C expected wait of `queue`.
    pub fn queue_snapshot(&self, queue: &str, now: Instant) -> Option<QueueSnapshot> {
        let entry = self.queues.get(queue)?;
        let stats = &entry.stats;
        let (staffed, available) = self.staffing(queue);
        let average_handle_time = stats.average_handle_time();
        let arrival_rate = stats.arrival_rate(now);
        let expected_wait = match (average_handle_time, arrival_rate) {
            (Some(handle), Some(rate)) => erlang_c_wait(staffed, rate, handle),
            _ => None,
        };
        let answered = u32::try_from(stats.answered).ok().filter(|n| *n > 0);
        Some(QueueSnapshot {
            calls: self.queue_length(queue)?,
            staffed,
            available,
            average_handle_time,
            arrival_rate,
            expected_wait,
            average_answer_wait: answered.map(|n| stats.total_answer_wait / n),
            longest_wait: self
                .calls
                .tally()
                .earliest(queue)
                .map(|entered| now.saturating_duration_since(entered))
                .unwrap_or_default(),
            answered: stats.answered,
            answered_in_service_level: stats.answered_in_service_level,
            abandoned: stats.abandoned,
            timed_out: stats.timed_out,
            exited: stats.exited,
            service_level: stats.service_level(),
            service_level_target: entry.config.service_level,
        })
    }

    /// Returns the expected wait of a queued call from its position. With
    /// every staffed agent busy, an agent frees up on average every
    /// `handle time / staffed`. The call needs one agent more than the calls
    /// ahead of it, less the agents available now. Returns `None` without a
    /// measured handle time or a staffed agent.
    pub fn expected_wait(&self, call: &str) -> Option<Duration> {
        let entry = self.calls.get(call)?;
        let stats = &self.queues.get(&entry.queue)?.stats;
        let handle_time = stats.average_handle_time()?;
        let (staffed, available) = self.staffing(&entry.queue);
        if staffed == 0 {
            return None;
        }
        let position = u32::try_from(self.position_of(entry)).unwrap_or(u32::MAX);
        let needed = position.saturating_sub(available);
        Some(handle_time.saturating_mul(needed) / staffed)
    }

    /// Compares the staffing and longest wait of every queue with a walk
    /// over all agents and calls, and describes the first difference.
    pub(crate) fn check_statistics(&self) -> Result<(), String> {
        for queue in self.queues.keys() {
            let members = self.agents.values().filter(|a| a.serves(queue));
            let (mut staffed, mut available) = (0, 0);
            for agent in members {
                match agent.state() {
                    AgentState::Available => {
                        staffed += 1;
                        available += 1;
                    }
                    AgentState::Ringing | AgentState::OnCall | AgentState::WrapUp => staffed += 1,
                    AgentState::LoggedOut | AgentState::Unreachable | AgentState::NotReady => {}
                }
            }
            if self.staffing(queue) != (staffed, available) {
                return Err(format!(
                    "{queue}: staffing {:?}, a walk counts {:?}",
                    self.staffing(queue),
                    (staffed, available)
                ));
            }
            let calls = self.calls.values().filter(|call| call.queue == *queue);
            let earliest = calls.map(|call| call.entered).min();
            if self.calls.tally().earliest(queue) != earliest {
                return Err(format!("{queue}: earliest entry differs from a walk"));
            }
        }
        Ok(())
    }

    /// Returns the members of `queue` that are staffed (available, ringing,
    /// on a call or in wrap-up) and those of them that are available.
    fn staffing(&self, queue: &str) -> (u32, u32) {
        let counts = self.agents.tally();
        let count = |state| counts.count(queue, state);
        let available = count(AgentState::Available);
        let busy =
            count(AgentState::Ringing) + count(AgentState::OnCall) + count(AgentState::WrapUp);
        (available + busy, available)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn erlang_c_matches_textbook_value() {
        // 10 agents, 8 Erlangs: the commonly tabulated value is 0.4092.
        let probability = erlang_c(10, 8.0);
        assert!((probability - 0.4092).abs() < 0.0005, "{probability}");
    }

    #[test]
    fn erlang_c_saturates_at_full_load() {
        assert_eq!(erlang_c(5, 5.0), 1.0);
        assert_eq!(erlang_c(0, 1.0), 1.0);
        assert_eq!(erlang_c(5, 0.0), 0.0);
    }

    #[test]
    fn erlang_c_wait_for_known_load() {
        // 10 agents, 8 Erlangs, 180 s handle time: 0.4092 * 180 / 2 = 36.8 s.
        let wait = erlang_c_wait(10, 8.0 / 180.0, Duration::from_secs(180)).unwrap();
        assert!((wait.as_secs_f64() - 36.8).abs() < 0.1, "{wait:?}");
        assert_eq!(erlang_c_wait(2, 1.0, Duration::from_secs(3)), None);
    }

    #[test]
    fn erlang_c_handles_large_agent_counts() {
        let probability = erlang_c(2000, 1900.0);
        assert!(probability.is_finite());
        assert!((0.0..=1.0).contains(&probability));
    }
}
