//! Checks of a queue's post-call survey keys: `survey`, `survey_attempts`
//! and `survey_timeout_secs`.

use std::time::Duration;

use sip_server::b2bua::SurveyConfig;

use super::error::ConfigErrorKind;
use super::raw::RawQueue;
use super::validate::{Checker, Sourced, from_file};

/// Tries a caller gets unless the queue sets `survey_attempts`.
const ATTEMPTS: u32 = 3;
/// More tries than this only keep a caller who cannot answer on the line.
const MAX_ATTEMPTS: u32 = 9;
/// Seconds allowed for a key unless the queue sets `survey_timeout_secs`.
const TIMEOUT_SECS: u64 = 10;
/// A longer wait keeps a silent caller's line, and its relay ports, busy.
const MAX_TIMEOUT_SECS: u64 = 60;

/// Returns the survey of the queue at `key`, or `None` unless `survey =
/// true`. The other keys are checked even when the survey is off, so a
/// typo shows before the survey is turned on.
pub(super) fn convert_survey(
    checker: &mut Checker<'_>,
    key: &str,
    queue: &RawQueue,
) -> Option<SurveyConfig> {
    let enabled = from_file(&queue.survey, false).value;
    let attempts = from_file(&queue.survey_attempts, ATTEMPTS);
    let attempts_key = format!("{key}.survey_attempts");
    checker.non_zero(&attempts_key, &attempts);
    at_most(checker, &attempts_key, &attempts, MAX_ATTEMPTS);
    let timeout = from_file(&queue.survey_timeout_secs, TIMEOUT_SECS);
    let timeout_key = format!("{key}.survey_timeout_secs");
    checker.non_zero(&timeout_key, &timeout);
    at_most(checker, &timeout_key, &timeout, MAX_TIMEOUT_SECS);
    enabled.then(|| SurveyConfig {
        attempts: attempts.value,
        timeout: Duration::from_secs(timeout.value),
    })
}

fn at_most<T: Copy + Into<u64>>(checker: &mut Checker<'_>, key: &str, raw: &Sourced<T>, max: T) {
    let (value, max) = (raw.value.into(), max.into());
    if value > max {
        checker.report(key, &raw.source, ConfigErrorKind::TooLarge { value, max });
    }
}
