//! Grading of submissions against the criteria.

use super::*;
use crate::config::Criterion;

fn config() -> QaConfig {
    let criterion = |id: &str, weight| Criterion {
        id: id.to_owned(),
        label: format!("{id} label"),
        weight,
    };
    QaConfig {
        max_score: 5,
        criteria: vec![criterion("greeting", 1), criterion("resolution", 3)],
    }
}

fn submission(scores: &[(&str, u32)]) -> Submission {
    Submission {
        scores: scores
            .iter()
            .map(|(criterion, score)| SubmittedScore {
                criterion: (*criterion).to_owned(),
                score: *score,
                comment: String::new(),
            })
            .collect(),
        comments: "fine".to_owned(),
    }
}

#[test]
fn total_is_weighted_mean() {
    // (1 * 5/5 + 3 * 2/5) / 4 = 0.55.
    let graded = grade(&config(), submission(&[("resolution", 2), ("greeting", 5)])).unwrap();
    assert_eq!(graded.total_percent, 55.0);
    assert_eq!(graded.scores[0].criterion, "greeting");
    assert_eq!(graded.scores[0].label, "greeting label");
    assert_eq!(graded.scores[1].weight, 3);
    assert_eq!(graded.comments, "fine");
}

#[test]
fn total_rounds_to_two_decimals() {
    // (1 * 1/5 + 3 * 0) / 4 = 0.05; (1 * 0 + 3 * 1/5) / 4 = 0.15; with
    // max 3: (1 * 1/3 + 3 * 1/3) / 4 = 1/3.
    let mut config = config();
    config.max_score = 3;
    let graded = grade(&config, submission(&[("greeting", 1), ("resolution", 1)])).unwrap();
    assert_eq!(graded.total_percent, 33.33);
}

#[test]
fn submissions_that_do_not_fit_are_rejected() {
    let config = config();
    let cases = [
        (
            submission(&[("greeting", 5)]),
            GradeError::MissingCriterion {
                criterion: "resolution".into(),
            },
        ),
        (
            submission(&[("greeting", 5), ("resolution", 6)]),
            GradeError::ScoreTooHigh {
                criterion: "resolution".into(),
                score: 6,
                max_score: 5,
            },
        ),
        (
            submission(&[("greeting", 5), ("greeting", 4)]),
            GradeError::DuplicateCriterion {
                criterion: "greeting".into(),
            },
        ),
        (
            submission(&[("tone", 5)]),
            GradeError::UnknownCriterion {
                criterion: "tone".into(),
                known: "greeting, resolution".into(),
            },
        ),
    ];
    for (submission, expected) in cases {
        assert_eq!(grade(&config, submission), Err(expected));
    }
}

#[test]
fn long_comments_are_rejected() {
    let mut long = submission(&[("greeting", 5), ("resolution", 5)]);
    long.comments = "x".repeat(MAX_COMMENTS_CHARS + 1);
    assert!(matches!(
        grade(&config(), long),
        Err(GradeError::CommentsTooLong { length: 4001, .. })
    ));
    let mut long = submission(&[("greeting", 5), ("resolution", 5)]);
    long.scores[1].comment = "é".repeat(MAX_CRITERION_COMMENT_CHARS + 1);
    assert!(matches!(
        grade(&config(), long),
        Err(GradeError::CriterionCommentTooLong { length: 1001, .. })
    ));
}

#[test]
fn no_criteria_cannot_be_scored() {
    let config = QaConfig {
        max_score: 5,
        criteria: Vec::new(),
    };
    assert_eq!(grade(&config, submission(&[])), Err(GradeError::NoCriteria));
}
