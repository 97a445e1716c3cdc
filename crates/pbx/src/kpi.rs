//! Queue KPIs over a time range, rebuilt from the stored events rather than
//! from the engine's counters, so they survive restarts and any range can
//! be asked for again later with the same result.
//!
//! A call counts in the range of the queue it entered when its
//! `call_enqueued` event falls in `[from, to)`. Its outcome comes from its
//! later events in that queue, even when they fall after `to`. A call that
//! an exit key or an overflow moves to another queue counts as offered in
//! each queue it entered.

use std::collections::{BTreeMap, HashMap};

use serde::Serialize;

use crate::events::{EventStore, EventStoreError, StoredEvent};

/// Service-level thresholds the report gives, in seconds.
const SERVICE_LEVELS: [f64; 2] = [20.0, 30.0];

/// The figures of one queue over the range.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub(crate) struct QueueKpi {
    pub(crate) queue: String,
    /// Calls that entered the queue in the range.
    pub(crate) offered: u64,
    pub(crate) answered: u64,
    /// Calls whose caller hung up before an agent answered.
    pub(crate) abandoned: u64,
    /// `abandoned` as a percentage of `offered`.
    pub(crate) abandon_percent: Option<f64>,
    /// Mean wait of the abandoned calls before the caller hung up.
    pub(crate) average_abandon_seconds: Option<f64>,
    /// Calls that reached the queue's max wait.
    pub(crate) timed_out: u64,
    /// Calls that left by a DTMF exit key.
    pub(crate) exited_by_key: u64,
    /// Calls that left another way: queue full, no agent, a skill step.
    pub(crate) exited_other: u64,
    /// Callback requests whose attempts all failed to reach the citizen.
    /// A request the citizen answered counts as answered, with its wait up
    /// to that answer.
    pub(crate) callbacks_not_reached: u64,
    /// Calls with no outcome in the store yet: still waiting, or cut by a
    /// stop of the PBX.
    pub(crate) unresolved: u64,
    /// Mean wait of the answered calls.
    pub(crate) average_speed_of_answer_seconds: Option<f64>,
    /// Mean talk time of the answered calls that have ended, without their
    /// time on hold.
    pub(crate) average_talk_seconds: Option<f64>,
    /// Mean wrap-up time after those calls whose wrap-up has ended (0 when
    /// the agent had none).
    pub(crate) average_wrap_up_seconds: Option<f64>,
    /// Mean of talk plus hold plus wrap-up over the calls whose wrap-up has
    /// ended.
    pub(crate) average_handle_seconds: Option<f64>,
    /// Percentage of the offered calls answered within 20 seconds.
    pub(crate) service_level_20_percent: Option<f64>,
    /// Percentage of the offered calls answered within 30 seconds.
    pub(crate) service_level_30_percent: Option<f64>,
    /// Longest time a call waited before it was answered or left the queue.
    pub(crate) longest_wait_seconds: Option<f64>,
    #[serde(flatten)]
    pub(crate) hold_survey: HoldSurvey,
}

/// Outcome of one visit of a call to a queue.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) enum Outcome {
    Waiting,
    Answered,
    Abandoned,
    TimedOut,
    ExitedByKey,
    ExitedOther,
    CallbackNotReached,
}

/// One call's stay in one queue.
pub(crate) struct Visit {
    queue: String,
    /// When the call entered the queue.
    entered_ms: i64,
    /// The agent who answered.
    agent: Option<String>,
    /// Agents the call was offered to, once per offer.
    offers: Vec<String>,
    outcome: Outcome,
    /// Wait until the outcome, from the event that gave it.
    waited: f64,
    /// Agent, talk time (holds included) and moment of the end of an
    /// answered call.
    completed: Option<(String, f64, i64)>,
    /// Time on hold, from the call's `call_resumed` events.
    hold_seconds: f64,
    /// The caller heard the post-call survey.
    survey_offered: bool,
    /// Score the caller keyed in the survey.
    survey_score: Option<u8>,
}

/// An agent's state change: when, from what, to what.
pub(crate) struct Change {
    at_ms: i64,
    from: String,
    to: String,
}

/// Reads what the range needs and computes the figures of every queue that
/// had calls in it, sorted by queue name.
pub(crate) async fn queue_report(
    store: &EventStore,
    from_ms: i64,
    to_ms: i64,
) -> Result<Vec<QueueKpi>, EventStoreError> {
    let events = store.report_events(from_ms, to_ms).await?;
    Ok(compute(&events, from_ms, to_ms))
}

/// Computes the figures from `events` in sequence order.
pub(crate) fn compute(events: &[StoredEvent], from_ms: i64, to_ms: i64) -> Vec<QueueKpi> {
    let (visits, changes) = visits(events, from_ms, to_ms);
    let mut by_queue: BTreeMap<String, Figures> = BTreeMap::new();
    for visit in &visits {
        let figures = by_queue.entry(visit.queue.clone()).or_default();
        figures.add(visit, &changes);
    }
    by_queue
        .into_iter()
        .map(|(queue, figures)| figures.kpi(queue))
        .collect()
}

/// Rebuilds the visits of the calls that entered a queue in the range,
/// and every agent's state changes, from `events` in sequence order.
pub(crate) fn visits(
    events: &[StoredEvent],
    from_ms: i64,
    to_ms: i64,
) -> (Vec<Visit>, HashMap<String, Vec<Change>>) {
    let mut visits: Vec<Visit> = Vec::new();
    // The current visit of each (call, queue); a visit that started before
    // the range is absent, so its later events are ignored.
    let mut current: HashMap<(String, String), usize> = HashMap::new();
    let mut changes: HashMap<String, Vec<Change>> = HashMap::new();
    for event in events {
        let text = |name: &str| event.data[name].as_str().unwrap_or_default().to_owned();
        let number = |name: &str| event.data[name].as_f64().unwrap_or(0.0);
        if event.kind == "agent_state_changed" {
            if let Some(agent) = &event.agent {
                changes.entry(agent.clone()).or_default().push(Change {
                    at_ms: event.at_ms,
                    from: text("from"),
                    to: text("to"),
                });
            }
            continue;
        }
        let (Some(call), Some(queue)) = (&event.call, &event.queue) else {
            continue;
        };
        let key = (call.clone(), queue.clone());
        if event.kind == "call_enqueued" {
            if (from_ms..to_ms).contains(&event.at_ms) {
                current.insert(key, visits.len());
                visits.push(Visit {
                    queue: queue.clone(),
                    entered_ms: event.at_ms,
                    agent: None,
                    offers: Vec::new(),
                    outcome: Outcome::Waiting,
                    waited: 0.0,
                    completed: None,
                    hold_seconds: 0.0,
                    survey_offered: false,
                    survey_score: None,
                });
            } else {
                current.remove(&key);
            }
            continue;
        }
        let Some(visit) = current.get(&key).map(|&index| &mut visits[index]) else {
            continue;
        };
        let outcome = match event.kind.as_str() {
            "offer_started" => {
                visit.offers.extend(event.agent.clone());
                continue;
            }
            "offer_answered" => {
                if visit.outcome == Outcome::Waiting {
                    visit.agent = event.agent.clone();
                }
                Outcome::Answered
            }
            "call_abandoned" => Outcome::Abandoned,
            "call_timed_out" => Outcome::TimedOut,
            "call_exited" => match text("reason").as_str() {
                "key" => Outcome::ExitedByKey,
                "max_wait" => Outcome::TimedOut,
                _ => Outcome::ExitedOther,
            },
            "callback_failed" => Outcome::CallbackNotReached,
            "call_resumed" => {
                visit.hold_seconds += number("hold_seconds");
                continue;
            }
            "survey_offered" => {
                visit.survey_offered = true;
                continue;
            }
            "survey_answered" => {
                visit.survey_score = event.data["score"]
                    .as_u64()
                    .and_then(|score| u8::try_from(score).ok())
                    .filter(|score| (1..=5).contains(score));
                continue;
            }
            "call_completed" | "call_transferred" => {
                let agent = event.agent.clone().unwrap_or_default();
                visit.completed = Some((agent, number("talk_seconds"), event.at_ms));
                continue;
            }
            _ => continue,
        };
        // The first outcome counts, because a later one would be a stray event.
        if visit.outcome == Outcome::Waiting {
            visit.outcome = outcome;
            visit.waited = number("waited_seconds");
        }
    }
    (visits, changes)
}

/// Sums over the visits of one queue.
#[derive(Default)]
pub(crate) struct Figures {
    offered: u64,
    counts: HashMap<&'static str, u64>,
    abandon_waits: Vec<f64>,
    answer_waits: Vec<f64>,
    talks: Vec<f64>,
    wrap_ups: Vec<f64>,
    handles: Vec<f64>,
    within: [u64; 2],
    longest_wait: Option<f64>,
    hold_survey: HoldSurveySums,
}

impl Figures {
    pub(crate) fn add(&mut self, visit: &Visit, changes: &HashMap<String, Vec<Change>>) {
        self.offered += 1;
        let name = match visit.outcome {
            Outcome::Waiting => "unresolved",
            Outcome::Answered => "answered",
            Outcome::Abandoned => "abandoned",
            Outcome::TimedOut => "timed_out",
            Outcome::ExitedByKey => "exited_by_key",
            Outcome::ExitedOther => "exited_other",
            Outcome::CallbackNotReached => "callbacks_not_reached",
        };
        *self.counts.entry(name).or_default() += 1;
        if visit.outcome == Outcome::Waiting {
            return;
        }
        self.longest_wait = Some(self.longest_wait.unwrap_or(0.0).max(visit.waited));
        if visit.outcome == Outcome::Abandoned {
            self.abandon_waits.push(visit.waited);
        }
        if visit.outcome != Outcome::Answered {
            return;
        }
        self.answer_waits.push(visit.waited);
        for (count, threshold) in self.within.iter_mut().zip(SERVICE_LEVELS) {
            if visit.waited <= threshold {
                *count += 1;
            }
        }
        self.hold_survey.add(visit, visit.completed.is_some());
        if let Some((agent, talk, ended_ms)) = &visit.completed {
            // Talk time in the event includes the holds; the report gives
            // them apart, and handle time adds them back once.
            self.talks.push(talk - visit.hold_seconds);
            if let Some(wrap_up) = wrap_up_after(changes.get(agent), *ended_ms) {
                self.wrap_ups.push(wrap_up);
                self.handles.push(talk + wrap_up);
            }
        }
    }

    pub(crate) fn kpi(&self, queue: String) -> QueueKpi {
        let count = |name| self.counts.get(name).copied().unwrap_or(0);
        let share = |part: u64| {
            (self.offered > 0).then(|| round_millis(part as f64 * 100.0 / self.offered as f64))
        };
        QueueKpi {
            queue,
            offered: self.offered,
            answered: count("answered"),
            abandoned: count("abandoned"),
            abandon_percent: share(count("abandoned")),
            average_abandon_seconds: mean(&self.abandon_waits),
            timed_out: count("timed_out"),
            exited_by_key: count("exited_by_key"),
            exited_other: count("exited_other"),
            callbacks_not_reached: count("callbacks_not_reached"),
            unresolved: count("unresolved"),
            average_speed_of_answer_seconds: mean(&self.answer_waits),
            average_talk_seconds: mean(&self.talks),
            average_wrap_up_seconds: mean(&self.wrap_ups),
            average_handle_seconds: mean(&self.handles),
            service_level_20_percent: share(self.within[0]),
            service_level_30_percent: share(self.within[1]),
            longest_wait_seconds: self.longest_wait.map(round_millis),
            hold_survey: self.hold_survey.kpi(),
        }
    }
}

/// Wrap-up of the agent after the call it ended at `ended_ms`, in seconds:
/// from entering wrap-up to leaving it, 0 when the agent went straight to
/// another state, `None` while the wrap-up has not ended (or its events are
/// missing).
pub(crate) fn wrap_up_after(changes: Option<&Vec<Change>>, ended_ms: i64) -> Option<f64> {
    let changes = changes?;
    let left_call = changes
        .iter()
        .position(|change| change.at_ms >= ended_ms && change.from == "on_call")?;
    if changes[left_call].to != "wrap_up" {
        return Some(0.0);
    }
    let started = changes[left_call].at_ms;
    let ended = changes[left_call + 1..]
        .iter()
        .find(|change| change.from == "wrap_up")?;
    Some((ended.at_ms - started) as f64 / 1000.0)
}

pub(crate) fn mean(values: &[f64]) -> Option<f64> {
    (!values.is_empty()).then(|| round_millis(values.iter().sum::<f64>() / values.len() as f64))
}

pub(crate) fn round_millis(value: f64) -> f64 {
    (value * 1000.0).round() / 1000.0
}

mod hold_survey;
mod intervals;

use hold_survey::{HoldSurvey, HoldSurveySums};

pub(crate) use intervals::{
    Calendar, Grouping, Interval, IntervalReport, ReportRequest, interval_report,
};

#[cfg(test)]
mod tests;
