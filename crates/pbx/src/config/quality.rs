//! Checks of the `[qa]` scorecard criteria and the `[reports]` settings.

use std::collections::HashMap;
use std::time::Duration;

use super::error::ConfigErrorKind;
use super::raw::{RawQa, RawReports};
use super::validate::{Checker, Source, from_file, spanned};
use super::{Criterion, QaConfig, ReportsConfig};

/// Highest score of a criterion unless the file sets `qa.max_score`.
const MAX_SCORE: u32 = 5;
/// Maximum of `qa.max_score`. A longer scale is likely a typo, because
/// reviewers cannot tell more steps apart.
const MAX_SCORE_LIMIT: u32 = 100;
/// Largest weight of one criterion, so that the weighted sum of a long
/// scorecard stays far from overflow.
const MAX_WEIGHT: u32 = 1000;
/// Maximum number of criteria, because a longer form is not reviewed with care.
const MAX_CRITERIA: usize = 50;
const FIRST_CONTACT_WINDOW_HOURS: u32 = 72;
/// Thirty days, because a report reads the CDRs this far past its end.
const MAX_FIRST_CONTACT_WINDOW_HOURS: u32 = 720;

pub(super) fn convert_qa(checker: &mut Checker<'_>, raw: &RawQa) -> QaConfig {
    let max_score = from_file(&raw.max_score, MAX_SCORE);
    checker.non_zero("qa.max_score", &max_score);
    if max_score.value > MAX_SCORE_LIMIT {
        let kind = ConfigErrorKind::TooLarge {
            value: u64::from(max_score.value),
            max: u64::from(MAX_SCORE_LIMIT),
        };
        checker.report("qa.max_score", &max_score.source, kind);
    }
    if raw.criteria.len() > MAX_CRITERIA {
        let kind = ConfigErrorKind::TooLarge {
            value: raw.criteria.len() as u64,
            max: MAX_CRITERIA as u64,
        };
        let first = spanned(&raw.criteria[MAX_CRITERIA].id);
        checker.report("qa.criteria", &first.source, kind);
    }
    let mut seen = HashMap::new();
    let mut criteria = Vec::new();
    for (index, criterion) in raw.criteria.iter().enumerate() {
        let key = format!("qa.criteria[{index}]");
        let id = spanned(&criterion.id);
        checker.identifier(&format!("{key}.id"), &id);
        checker.unique(&format!("{key}.id"), "criterion", &id, &mut seen);
        let label = from_file(&criterion.label, id.value.clone());
        checker.not_empty(&format!("{key}.label"), &label);
        let weight = spanned(&criterion.weight);
        checker.non_zero(&format!("{key}.weight"), &weight);
        if weight.value > MAX_WEIGHT {
            let kind = ConfigErrorKind::TooLarge {
                value: u64::from(weight.value),
                max: u64::from(MAX_WEIGHT),
            };
            checker.report(format!("{key}.weight"), &weight.source, kind);
        }
        criteria.push(Criterion {
            id: id.value,
            label: label.value,
            weight: weight.value,
        });
    }
    QaConfig {
        max_score: max_score.value,
        criteria,
    }
}

pub(super) fn convert_reports(checker: &mut Checker<'_>, raw: &RawReports) -> ReportsConfig {
    let key = "reports.first_contact_window_hours";
    let hours = from_file(&raw.first_contact_window_hours, FIRST_CONTACT_WINDOW_HOURS);
    checker.non_zero(key, &hours);
    if hours.value > MAX_FIRST_CONTACT_WINDOW_HOURS {
        let kind = ConfigErrorKind::TooLarge {
            value: u64::from(hours.value),
            max: u64::from(MAX_FIRST_CONTACT_WINDOW_HOURS),
        };
        checker.report(key, &hours.source, kind);
    }
    let time_zone = match &raw.time_zone {
        None => jiff::tz::TimeZone::UTC,
        Some(name) => jiff::tz::TimeZone::get(name.get_ref()).unwrap_or_else(|_| {
            let kind = ConfigErrorKind::UnknownTimeZone {
                value: name.get_ref().clone(),
            };
            checker.report("reports.time_zone", &Source::File(name.span()), kind);
            jiff::tz::TimeZone::UTC
        }),
    };
    ReportsConfig {
        first_contact_window: Duration::from_secs(u64::from(hours.value) * 3600),
        time_zone,
    }
}
