use std::time::Duration;

use sip_server::b2bua::SurveyConfig;

use super::tests::{ORIGIN, assert_has, errors_of};
use super::*;

#[test]
fn survey_is_off_unless_set() {
    let config = Config::parse("[[queues]]\nname = \"general\"\n", ORIGIN).expect("valid");
    assert_eq!(config.queues[0].survey, None);
}

#[test]
fn survey_defaults_and_overrides() {
    let text = "[[queues]]\nname = \"general\"\nsurvey = true\n\
                [[queues]]\nname = \"sales\"\nsurvey = true\nsurvey_attempts = 1\n\
                survey_timeout_secs = 30\n";
    let config = Config::parse(text, ORIGIN).expect("valid");
    let defaults = SurveyConfig {
        attempts: 3,
        timeout: Duration::from_secs(10),
    };
    assert_eq!(config.queues[0].survey, Some(defaults));
    let sales = SurveyConfig {
        attempts: 1,
        timeout: Duration::from_secs(30),
    };
    assert_eq!(config.queues[1].survey, Some(sales));
}

#[test]
fn survey_limits_are_checked() {
    let text = "[[queues]]\nname = \"general\"\nsurvey = true\nsurvey_attempts = 0\n\
                survey_timeout_secs = 61\n\
                [[queues]]\nname = \"sales\"\nsurvey_attempts = 10\nsurvey_timeout_secs = 0\n";
    let errors = errors_of(text);
    assert_has(
        &errors,
        "test.toml:4:19: queues[0].survey_attempts: must be greater than 0",
    );
    assert_has(
        &errors,
        "test.toml:5:23: queues[0].survey_timeout_secs: must be at most 60, got 61",
    );
    // Checked even with the survey off, so a typo shows before it is on.
    assert_has(
        &errors,
        "test.toml:8:19: queues[1].survey_attempts: must be at most 9, got 10",
    );
    assert_has(
        &errors,
        "test.toml:9:23: queues[1].survey_timeout_secs: must be greater than 0",
    );
}
