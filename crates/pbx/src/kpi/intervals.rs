//! Report rows per interval (15, 30 or 60 minutes, or a day) and per
//! queue or per agent, from the stored events and the call records.
//!
//! Intervals follow the clock of the report's time zone. A 15-minute
//! interval starts at :00, :15, :30 or :45 local time, and a day at local
//! midnight. So the day on which the clocks change lasts 23 or 25 hours
//! and has as many hourly rows. The first and last rows are cut to the
//! asked range. A call counts in the interval in which it entered its
//! queue, as in the queue report. Agent rows count the offers of those
//! calls and the ones the agent took, and the agent's states within the
//! interval itself.
//! Only pairs of an interval and a queue or agent with data get a row.

use std::collections::{BTreeMap, HashMap};

use cdr::{CallRecord, Disposition};
use jiff::Timestamp;
use jiff::tz::TimeZone;
use serde::Serialize;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use super::{
    Change, Figures, HoldSurvey, HoldSurveySums, Outcome, QueueKpi, Visit, mean, round_millis,
    wrap_up_after,
};
use crate::events::{EventStore, EventStoreError, StoredEvent};

/// Length of the report's intervals.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Interval {
    Minutes15,
    Minutes30,
    Minutes60,
    /// A calendar day in the report's time zone.
    Day,
}

impl Interval {
    /// Parses the `interval` parameter: `15`, `30`, `60` or `day`.
    pub(crate) fn from_name(name: &str) -> Option<Interval> {
        match name {
            "15" => Some(Interval::Minutes15),
            "30" => Some(Interval::Minutes30),
            "60" => Some(Interval::Minutes60),
            "day" => Some(Interval::Day),
            _ => None,
        }
    }

    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Interval::Minutes15 => "15",
            Interval::Minutes30 => "30",
            Interval::Minutes60 => "60",
            Interval::Day => "day",
        }
    }

    /// Length of a clock interval; None for a day, whose length depends
    /// on the time zone and the date.
    fn minutes_ms(self) -> Option<i64> {
        match self {
            Interval::Minutes15 => Some(15 * 60_000),
            Interval::Minutes30 => Some(30 * 60_000),
            Interval::Minutes60 => Some(60 * 60_000),
            Interval::Day => None,
        }
    }
}

/// Interval boundaries in one time zone.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Calendar {
    pub(crate) interval: Interval,
    pub(crate) time_zone: TimeZone,
}

impl Calendar {
    /// Start of the interval that contains `at_ms`.
    pub(crate) fn start_of(&self, at_ms: i64) -> i64 {
        let Ok(at) = Timestamp::from_millisecond(at_ms) else {
            return at_ms;
        };
        match self.interval.minutes_ms() {
            Some(length) => {
                // The offset in force at `at_ms` puts the boundaries on the
                // local clock. A change by whole hours keeps both sides on
                // one grid of 15, 30 or 60 minutes.
                // NOTE: a zone whose offset changes by 30 minutes (Lord Howe
                // Island) gets two overlapping hourly rows at its change.
                let offset_ms = i64::from(self.time_zone.to_offset(at).seconds()) * 1000;
                at_ms - (at_ms + offset_ms).rem_euclid(length)
            }
            None => at
                .to_zoned(self.time_zone.clone())
                .start_of_day()
                .map_or(at_ms, |start| start.timestamp().as_millisecond()),
        }
    }

    /// Start of the interval after the one that starts at `start_ms`.
    pub(crate) fn next(&self, start_ms: i64) -> i64 {
        if let Some(length) = self.interval.minutes_ms() {
            return start_ms + length;
        }
        Timestamp::from_millisecond(start_ms)
            .and_then(|start| start.to_zoned(self.time_zone.clone()).tomorrow())
            .and_then(|tomorrow| tomorrow.start_of_day())
            // Past jiff's range of years; no report reaches that far.
            .map_or(start_ms + 86_400_000, |next| {
                next.timestamp().as_millisecond()
            })
    }

    /// Number of intervals that `[from_ms, to_ms)` touches, counting no
    /// further than `limit + 1`.
    pub(crate) fn count(&self, from_ms: i64, to_ms: i64, limit: i64) -> i64 {
        let mut count = 0;
        let mut start = self.start_of(from_ms);
        while start < to_ms && count <= limit {
            count += 1;
            start = self.next(start);
        }
        count
    }

    /// Formats `at_ms` as RFC 3339 with the zone's offset at that time,
    /// and with `Z` in UTC.
    pub(crate) fn format(&self, at_ms: i64) -> String {
        let utc_names = ["UTC", "Etc/UTC", "Etc/UCT", "UCT", "Zulu", "Etc/Zulu"];
        let is_utc = self.time_zone == TimeZone::UTC
            || self
                .time_zone
                .iana_name()
                .is_some_and(|name| utc_names.contains(&name));
        if is_utc {
            return rfc3339(at_ms);
        }
        match Timestamp::from_millisecond(at_ms) {
            Ok(at) => at
                .display_with_offset(self.time_zone.to_offset(at))
                .to_string(),
            Err(_) => rfc3339(at_ms),
        }
    }
}

/// Dimension of the rows: one per queue or one per agent.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Grouping {
    Queue,
    Agent,
}

impl Grouping {
    pub(crate) fn from_name(name: &str) -> Option<Grouping> {
        match name {
            "queue" => Some(Grouping::Queue),
            "agent" => Some(Grouping::Agent),
            _ => None,
        }
    }

    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Grouping::Queue => "queue",
            Grouping::Agent => "agent",
        }
    }
}

/// The range and shape of one report.
#[derive(Clone, Debug)]
pub(crate) struct ReportRequest {
    pub(crate) from_ms: i64,
    pub(crate) to_ms: i64,
    /// The present: agent states last until here at most, and a call
    /// whose first-contact window has not passed yet is left out of that
    /// figure.
    pub(crate) now_ms: i64,
    pub(crate) calendar: Calendar,
    pub(crate) grouping: Grouping,
    pub(crate) first_contact_window_ms: i64,
}

/// The rows of a report, by interval start and then by name.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub(crate) struct IntervalReport {
    pub(crate) queues: Vec<QueueRow>,
    pub(crate) agents: Vec<AgentRow>,
}

/// First-contact resolution over the answered calls whose outcome is known.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub(crate) struct FirstContact {
    /// Answered calls with a caller number whose window has passed.
    pub(crate) first_contact_calls: u64,
    /// Share of those calls with no repeat call within the window.
    pub(crate) first_contact_resolution_percent: Option<f64>,
}

/// One queue in one interval.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub(crate) struct QueueRow {
    pub(crate) start: String,
    pub(crate) end: String,
    #[serde(flatten)]
    pub(crate) figures: QueueKpi,
    #[serde(flatten)]
    pub(crate) first_contact: FirstContact,
}

/// One agent in one interval.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub(crate) struct AgentRow {
    pub(crate) start: String,
    pub(crate) end: String,
    pub(crate) agent: String,
    /// Offers of calls to this agent. A call rung twice counts twice.
    pub(crate) offered: u64,
    pub(crate) answered: u64,
    pub(crate) average_speed_of_answer_seconds: Option<f64>,
    pub(crate) average_talk_seconds: Option<f64>,
    pub(crate) average_wrap_up_seconds: Option<f64>,
    pub(crate) average_handle_seconds: Option<f64>,
    #[serde(flatten)]
    pub(crate) first_contact: FirstContact,
    /// Time ringing, on a call or in wrap-up, as a percentage of that time
    /// plus the time available.
    pub(crate) occupancy_percent: Option<f64>,
    /// Login spans (from leaving logged-out to returning to it) that
    /// overlap the interval.
    pub(crate) shifts: u64,
    /// `answered` divided by `shifts`.
    pub(crate) calls_per_shift: Option<f64>,
    #[serde(flatten)]
    pub(crate) hold_survey: HoldSurvey,
}

/// Reads the events and call records the range needs and computes the rows.
pub(crate) async fn interval_report(
    events: &EventStore,
    cdr: &cdr::CdrStore,
    request: ReportRequest,
) -> Result<IntervalReport, IntervalReportError> {
    let before = events.agent_states_before(request.from_ms).await?;
    let stored = events.report_events(request.from_ms, request.to_ms).await?;
    let records = call_records(cdr, &request).await?;
    Ok(compute_intervals(&before, &stored, &records, &request))
}

#[derive(Debug, thiserror::Error)]
pub(crate) enum IntervalReportError {
    #[error(transparent)]
    Events(#[from] EventStoreError),
    #[error("reading the call records failed: {0}")]
    Records(#[from] cdr::CdrError),
}

/// Call records that arrived from the range start to the end of the
/// first-contact window after the range end.
async fn call_records(
    cdr: &cdr::CdrStore,
    request: &ReportRequest,
) -> Result<Vec<CallRecord>, cdr::CdrError> {
    let filter = cdr::CallFilter {
        from: Some(datetime(request.from_ms)),
        to: Some(datetime(
            request
                .to_ms
                .saturating_add(request.first_contact_window_ms),
        )),
        ..cdr::CallFilter::default()
    };
    let mut records: Vec<CallRecord> = Vec::new();
    let mut seen = std::collections::HashSet::new();
    let mut offset = 0u32;
    loop {
        let page = cdr.search(&filter, cdr::MAX_LIST_LIMIT, offset).await?;
        let full = page.len() == cdr::MAX_LIST_LIMIT as usize;
        offset = offset.saturating_add(cdr::MAX_LIST_LIMIT);
        // A record written between two pages shifts the later pages by
        // one, so a record can come twice; each call must count once.
        records.extend(
            page.into_iter()
                .filter(|record| seen.insert(record.id.clone())),
        );
        if !full {
            return Ok(records);
        }
    }
}

/// Computes the rows from the agents' states before the range (`before`),
/// the range's events in sequence order and the call records.
pub(crate) fn compute_intervals(
    before: &[StoredEvent],
    events: &[StoredEvent],
    records: &[CallRecord],
    request: &ReportRequest,
) -> IntervalReport {
    let (visits, changes) = super::visits(events, request.from_ms, request.to_ms);
    let first_contact = first_contact(records, request);
    match request.grouping {
        Grouping::Queue => IntervalReport {
            queues: queue_rows(&visits, &changes, &first_contact, request),
            agents: Vec::new(),
        },
        Grouping::Agent => IntervalReport {
            queues: Vec::new(),
            agents: agent_rows(before, &visits, &changes, &first_contact, request),
        },
    }
}

/// Resolved and known counts per (interval start, queue or agent).
type FirstContactCounts = HashMap<(i64, String), (u64, u64)>;

/// Subject of a call, for matching it with a repeat call: its request
/// type, or the dialed DID when that DID has no request type. The two kinds
/// never match each other, so a DID number that equals a request type name
/// is no repeat.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
enum Subject<'a> {
    RequestType(&'a str),
    Dialed(&'a str),
}

impl<'a> Subject<'a> {
    fn of(record: &'a CallRecord) -> Subject<'a> {
        match &record.request_type {
            Some(request_type) => Subject::RequestType(request_type),
            None => Subject::Dialed(&record.dialed),
        }
    }
}

fn first_contact(records: &[CallRecord], request: &ReportRequest) -> FirstContactCounts {
    let mut by_subject: HashMap<(&str, Subject<'_>), Vec<i64>> = HashMap::new();
    for record in records {
        by_subject
            .entry((record.caller.as_str(), Subject::of(record)))
            .or_default()
            .push(millis(record.arrived_at));
    }
    let mut counts = FirstContactCounts::new();
    for record in records {
        let entered_ms = millis(record.queued_at.unwrap_or(record.arrived_at));
        let arrived_ms = millis(record.arrived_at);
        let in_range = (request.from_ms..request.to_ms).contains(&entered_ms);
        // A withheld number cannot be matched with a later call.
        let known_caller = !record.caller.is_empty() && record.caller != "anonymous";
        let window_end = arrived_ms.saturating_add(request.first_contact_window_ms);
        let window_passed = window_end <= request.now_ms;
        if record.disposition != Disposition::Answered || !in_range || !known_caller {
            continue;
        }
        if !window_passed {
            continue;
        }
        let key = match request.grouping {
            Grouping::Queue => record.queue.clone(),
            Grouping::Agent => record.agent.clone(),
        };
        let Some(key) = key else { continue };
        let repeated = by_subject[&(record.caller.as_str(), Subject::of(record))]
            .iter()
            .any(|&other| other > arrived_ms && other <= window_end);
        let entry = counts
            .entry((request.calendar.start_of(entered_ms), key))
            .or_default();
        entry.1 += 1;
        if !repeated {
            entry.0 += 1;
        }
    }
    counts
}

fn first_contact_of(counts: &FirstContactCounts, start: i64, key: &str) -> FirstContact {
    let Some(&(resolved, known)) = counts.get(&(start, key.to_owned())) else {
        return FirstContact::default();
    };
    FirstContact {
        first_contact_calls: known,
        first_contact_resolution_percent: (known > 0)
            .then(|| round_millis(resolved as f64 * 100.0 / known as f64)),
    }
}

fn queue_rows(
    visits: &[Visit],
    changes: &HashMap<String, Vec<Change>>,
    first_contact: &FirstContactCounts,
    request: &ReportRequest,
) -> Vec<QueueRow> {
    let mut cells: BTreeMap<(i64, String), Figures> = BTreeMap::new();
    for visit in visits {
        let start = request.calendar.start_of(visit.entered_ms);
        let figures = cells.entry((start, visit.queue.clone())).or_default();
        figures.add(visit, changes);
    }
    cells
        .into_iter()
        .map(|((start, queue), figures)| {
            let (from, to) = bounds(start, request);
            QueueRow {
                start: request.calendar.format(from),
                end: request.calendar.format(to),
                first_contact: first_contact_of(first_contact, start, &queue),
                figures: figures.kpi(queue),
            }
        })
        .collect()
}

/// Sums of one agent in one interval.
#[derive(Default)]
struct AgentFigures {
    offered: u64,
    answer_waits: Vec<f64>,
    talks: Vec<f64>,
    wrap_ups: Vec<f64>,
    handles: Vec<f64>,
    busy_ms: i64,
    ready_ms: i64,
    shifts: u64,
    hold_survey: HoldSurveySums,
}

fn agent_rows(
    before: &[StoredEvent],
    visits: &[Visit],
    changes: &HashMap<String, Vec<Change>>,
    first_contact: &FirstContactCounts,
    request: &ReportRequest,
) -> Vec<AgentRow> {
    let mut cells: BTreeMap<(i64, String), AgentFigures> = BTreeMap::new();
    for visit in visits {
        let start = request.calendar.start_of(visit.entered_ms);
        for agent in &visit.offers {
            cells.entry((start, agent.clone())).or_default().offered += 1;
        }
        let (Outcome::Answered, Some(agent)) = (visit.outcome, &visit.agent) else {
            continue;
        };
        let figures = cells.entry((start, agent.clone())).or_default();
        figures.answer_waits.push(visit.waited);
        figures.hold_survey.add(visit, visit.completed.is_some());
        if let Some((_, talk, ended_ms)) = &visit.completed {
            figures.talks.push(talk - visit.hold_seconds);
            if let Some(wrap_up) = wrap_up_after(changes.get(agent), *ended_ms) {
                figures.wrap_ups.push(wrap_up);
                figures.handles.push(talk + wrap_up);
            }
        }
    }
    add_states(&mut cells, before, changes, request);
    cells
        .into_iter()
        .map(|((start, agent), figures)| {
            let (from, to) = bounds(start, request);
            let answered = figures.answer_waits.len() as u64;
            AgentRow {
                start: request.calendar.format(from),
                end: request.calendar.format(to),
                first_contact: first_contact_of(first_contact, start, &agent),
                agent,
                offered: figures.offered,
                answered,
                average_speed_of_answer_seconds: mean(&figures.answer_waits),
                average_talk_seconds: mean(&figures.talks),
                average_wrap_up_seconds: mean(&figures.wrap_ups),
                average_handle_seconds: mean(&figures.handles),
                occupancy_percent: (figures.ready_ms > 0).then(|| {
                    round_millis(figures.busy_ms as f64 * 100.0 / figures.ready_ms as f64)
                }),
                shifts: figures.shifts,
                calls_per_shift: (figures.shifts > 0)
                    .then(|| round_millis(answered as f64 / figures.shifts as f64)),
                hold_survey: figures.hold_survey.kpi(),
            }
        })
        .collect()
}

/// Adds each agent's time per state and its login spans to the cells,
/// walking its state changes from the state it was in at the range start.
fn add_states(
    cells: &mut BTreeMap<(i64, String), AgentFigures>,
    before: &[StoredEvent],
    changes: &HashMap<String, Vec<Change>>,
    request: &ReportRequest,
) {
    let end_ms = request.to_ms.min(request.now_ms);
    if end_ms <= request.from_ms {
        // A range that starts in the future has no agent time yet.
        return;
    }
    let mut initial: HashMap<&str, String> = HashMap::new();
    for event in before {
        if let Some(agent) = &event.agent {
            let state = event.data["to"].as_str().unwrap_or("logged_out");
            initial.insert(agent.as_str(), state.to_owned());
        }
    }
    let mut agents: Vec<&str> = initial.keys().copied().collect();
    agents.extend(changes.keys().map(String::as_str));
    agents.sort_unstable();
    agents.dedup();
    for agent in agents {
        let mut state = initial
            .get(agent)
            .cloned()
            .unwrap_or_else(|| "logged_out".to_owned());
        let mut since = request.from_ms;
        let mut shift_start = (state != "logged_out").then_some(since);
        let agent_changes = changes.get(agent).map(Vec::as_slice).unwrap_or_default();
        for change in agent_changes.iter().filter(|change| change.at_ms < end_ms) {
            let at = change.at_ms.max(request.from_ms);
            add_span(cells, agent, &state, since, at, request);
            if change.to == "logged_out" {
                if let Some(start) = shift_start.take() {
                    add_shift(cells, agent, start, at, request);
                }
            } else if shift_start.is_none() {
                shift_start = Some(at);
            }
            state.clone_from(&change.to);
            since = at;
        }
        add_span(cells, agent, &state, since, end_ms, request);
        if let Some(start) = shift_start {
            add_shift(cells, agent, start, end_ms, request);
        }
    }
}

/// Adds `[from_ms, to_ms)` spent in `state` to the intervals it covers.
fn add_span(
    cells: &mut BTreeMap<(i64, String), AgentFigures>,
    agent: &str,
    state: &str,
    from_ms: i64,
    to_ms: i64,
    request: &ReportRequest,
) {
    let busy = matches!(state, "ringing" | "on_call" | "wrap_up");
    if !(busy || state == "available") || to_ms <= from_ms {
        return;
    }
    let mut start = request.calendar.start_of(from_ms);
    while start < to_ms {
        let next = request.calendar.next(start);
        let overlap = to_ms.min(next) - from_ms.max(start);
        let figures = cells.entry((start, agent.to_owned())).or_default();
        figures.ready_ms += overlap;
        if busy {
            figures.busy_ms += overlap;
        }
        start = next;
    }
}

/// Counts the login span `[from_ms, to_ms]` in every interval it overlaps.
fn add_shift(
    cells: &mut BTreeMap<(i64, String), AgentFigures>,
    agent: &str,
    from_ms: i64,
    to_ms: i64,
    request: &ReportRequest,
) {
    let mut start = request.calendar.start_of(from_ms);
    // A span that ends exactly on a boundary does not reach the next one.
    let last = request.calendar.start_of((to_ms - 1).max(from_ms));
    while start <= last {
        cells.entry((start, agent.to_owned())).or_default().shifts += 1;
        start = request.calendar.next(start);
    }
}

/// Returns the interval starting at `start`, cut to the requested range.
fn bounds(start: i64, request: &ReportRequest) -> (i64, i64) {
    (
        start.max(request.from_ms),
        request.calendar.next(start).min(request.to_ms),
    )
}

fn millis(at: OffsetDateTime) -> i64 {
    i64::try_from(at.unix_timestamp_nanos() / 1_000_000).unwrap_or(i64::MAX)
}

fn datetime(at_ms: i64) -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp_nanos(i128::from(at_ms) * 1_000_000)
        .unwrap_or(OffsetDateTime::UNIX_EPOCH)
}

fn rfc3339(at_ms: i64) -> String {
    datetime(at_ms).format(&Rfc3339).unwrap_or_default()
}

#[cfg(test)]
mod tests;
#[cfg(test)]
mod time_zone_tests;
