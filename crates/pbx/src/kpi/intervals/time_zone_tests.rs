//! Report intervals in Europe/Madrid across both clock changes of 2027,
//! checked against boundaries worked out by hand from the zone's rules.
//! The clocks go from 02:00 CET to 03:00 CEST at 2027-03-28T01:00Z. They
//! go from 03:00 CEST back to 02:00 CET at 2027-10-31T01:00Z.

use super::*;
use crate::kpi::tests::{FROM_SECS, Script, stored};

const HOUR_MS: i64 = 3_600_000;

fn madrid(interval: Interval) -> Calendar {
    Calendar {
        interval,
        time_zone: TimeZone::get("Europe/Madrid").expect("zone in the bundled database"),
    }
}

/// Unix milliseconds of an RFC 3339 time.
fn at(text: &str) -> i64 {
    text.parse::<Timestamp>()
        .expect("RFC 3339 time")
        .as_millisecond()
}

/// Seconds from the script's start (`FROM_SECS`) to `text`.
fn script_seconds(text: &str) -> f64 {
    let from_ms = i64::try_from(FROM_SECS).expect("fits") * 1000;
    (at(text) - from_ms) as f64 / 1000.0
}

/// Queue rows of calls that entered `general` at each of `entered`.
async fn queue_rows_of(
    entered: &[&str],
    from: &str,
    to: &str,
    calendar: Calendar,
) -> Vec<QueueRow> {
    let mut script = Script::new();
    for (index, time) in entered.iter().enumerate() {
        script.enqueue(script_seconds(time), &format!("call-{index}"), "general");
    }
    let (dir, events) = stored(&script).await;
    let cdr = cdr::CdrStore::open(dir.path()).await.expect("store opens");
    let request = ReportRequest {
        from_ms: at(from),
        to_ms: at(to),
        now_ms: at(to),
        calendar,
        grouping: Grouping::Queue,
        first_contact_window_ms: HOUR_MS,
    };
    interval_report(&events, &cdr, request)
        .await
        .expect("report")
        .queues
}

fn spans(rows: &[QueueRow]) -> Vec<(&str, &str, u64)> {
    rows.iter()
        .map(|row| (row.start.as_str(), row.end.as_str(), row.figures.offered))
        .collect()
}

#[test]
fn spring_day_has_23_hours() {
    let day = madrid(Interval::Day);
    let start = day.start_of(at("2027-03-28T12:00:00Z"));
    assert_eq!(start, at("2027-03-27T23:00:00Z"));
    assert_eq!(day.next(start), at("2027-03-28T22:00:00Z"));
    let hours = madrid(Interval::Minutes60);
    assert_eq!(hours.count(start, day.next(start), 100), 23);
    // 01:59:59 CET is followed by 03:00 CEST.
    assert_eq!(
        hours.format(hours.start_of(at("2027-03-28T01:30:00Z"))),
        "2027-03-28T03:00:00+02:00"
    );
    assert_eq!(
        hours.format(hours.start_of(at("2027-03-28T00:30:00Z"))),
        "2027-03-28T01:00:00+01:00"
    );
}

#[test]
fn autumn_day_has_25_hours() {
    let day = madrid(Interval::Day);
    let start = day.start_of(at("2027-10-31T12:00:00Z"));
    assert_eq!(start, at("2027-10-30T22:00:00Z"));
    assert_eq!(day.next(start), at("2027-10-31T23:00:00Z"));
    let hours = madrid(Interval::Minutes60);
    assert_eq!(hours.count(start, day.next(start), 100), 25);
    let quarters = madrid(Interval::Minutes15);
    assert_eq!(quarters.count(start, day.next(start), 1000), 100);
}

#[test]
fn half_hour_offset_aligns_on_local_clock() {
    let kolkata = |interval| Calendar {
        interval,
        time_zone: TimeZone::get("Asia/Kolkata").expect("zone in the bundled database"),
    };
    // 08:10Z is 13:40 in India (+05:30).
    let moment = at("2027-01-15T08:10:00Z");
    let quarter = kolkata(Interval::Minutes15).start_of(moment);
    assert_eq!(quarter, at("2027-01-15T08:00:00Z"));
    let hour = kolkata(Interval::Minutes60).start_of(moment);
    assert_eq!(
        kolkata(Interval::Minutes60).format(hour),
        "2027-01-15T13:00:00+05:30"
    );
    assert_eq!(hour, at("2027-01-15T07:30:00Z"));
}

#[tokio::test]
async fn spring_change_day_rows() {
    let entered = [
        "2027-03-27T22:30:00Z", // 23:30 CET on the 27th
        "2027-03-27T23:30:00Z", // 00:30 CET on the 28th
        "2027-03-28T21:30:00Z", // 23:30 CEST on the 28th
        "2027-03-28T22:30:00Z", // 00:30 CEST on the 29th
    ];
    let (from, to) = ("2027-03-27T00:00:00Z", "2027-03-30T00:00:00Z");
    let rows = queue_rows_of(&entered, from, to, madrid(Interval::Day)).await;
    assert_eq!(
        spans(&rows),
        [
            ("2027-03-27T01:00:00+01:00", "2027-03-28T00:00:00+01:00", 1),
            ("2027-03-28T00:00:00+01:00", "2027-03-29T00:00:00+02:00", 2),
            ("2027-03-29T00:00:00+02:00", "2027-03-30T00:00:00+02:00", 1),
        ]
    );
    // The same calls by UTC day split two and two.
    let utc = Calendar {
        interval: Interval::Day,
        time_zone: TimeZone::UTC,
    };
    let rows = queue_rows_of(&entered, from, to, utc).await;
    let offered: Vec<u64> = rows.iter().map(|row| row.figures.offered).collect();
    assert_eq!(offered, [2, 2]);
}

#[tokio::test]
async fn autumn_change_day_rows() {
    let entered = [
        "2027-10-30T21:30:00Z", // 23:30 CEST on the 30th
        "2027-10-30T22:30:00Z", // 00:30 CEST on the 31st
        "2027-10-31T22:30:00Z", // 23:30 CET on the 31st
        "2027-10-31T23:30:00Z", // 00:30 CET on 1 November
    ];
    let (from, to) = ("2027-10-30T00:00:00Z", "2027-11-02T00:00:00Z");
    let rows = queue_rows_of(&entered, from, to, madrid(Interval::Day)).await;
    assert_eq!(
        spans(&rows),
        [
            ("2027-10-30T02:00:00+02:00", "2027-10-31T00:00:00+02:00", 1),
            ("2027-10-31T00:00:00+02:00", "2027-11-01T00:00:00+01:00", 2),
            ("2027-11-01T00:00:00+01:00", "2027-11-02T00:00:00+01:00", 1),
        ]
    );
}

#[tokio::test]
async fn repeated_local_hour_gets_two_rows() {
    // 02:30 CEST, then 02:30 CET an hour later.
    let entered = ["2027-10-31T00:30:00Z", "2027-10-31T01:30:00Z"];
    let (from, to) = ("2027-10-30T22:00:00Z", "2027-10-31T23:00:00Z");
    let rows = queue_rows_of(&entered, from, to, madrid(Interval::Minutes60)).await;
    assert_eq!(
        spans(&rows),
        [
            ("2027-10-31T02:00:00+02:00", "2027-10-31T02:00:00+01:00", 1),
            ("2027-10-31T02:00:00+01:00", "2027-10-31T03:00:00+01:00", 1),
        ]
    );
}

#[test]
fn utc_by_name_formats_with_z() {
    for name in ["UTC", "Etc/UTC"] {
        let calendar = Calendar {
            interval: Interval::Day,
            time_zone: TimeZone::get(name).expect("zone in the bundled database"),
        };
        let text = calendar.format(at("2027-01-15T00:00:00Z"));
        assert_eq!(text, "2027-01-15T00:00:00Z", "{name}");
    }
    // Zero offset in another zone keeps its offset written out.
    let london = Calendar {
        interval: Interval::Day,
        time_zone: TimeZone::get("Europe/London").expect("zone in the bundled database"),
    };
    assert_eq!(
        london.format(at("2027-01-15T00:00:00Z")),
        "2027-01-15T00:00:00+00:00"
    );
}
