//! Grading of submissions against the criteria.

use super::*;
use crate::config::Criterion;
use cdr::test_database::TestDatabase;

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
    // With max 3: (1 * 1/3 + 3 * 1/3) / 4 = 1/3.
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
fn control_characters_in_comments_are_rejected() {
    let mut nul = submission(&[("greeting", 5), ("resolution", 5)]);
    nul.comments = "a\u{0}b".to_owned();
    assert!(matches!(
        grade(&config(), nul),
        Err(GradeError::ControlCharacter { .. })
    ));
    let mut escape = submission(&[("greeting", 5), ("resolution", 5)]);
    escape.scores[0].comment = "red\u{1b}[0m".to_owned();
    assert!(matches!(
        grade(&config(), escape),
        Err(GradeError::ControlCharacter { .. })
    ));
    let mut lines = submission(&[("greeting", 5), ("resolution", 5)]);
    lines.comments = "first\r\nsecond\tend".to_owned();
    assert!(grade(&config(), lines).is_ok());
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

async fn stores(database: &TestDatabase) -> (tempfile::TempDir, ScorecardStore, accounts::User) {
    let dir = tempfile::tempdir().unwrap();
    let cdr = cdr::CdrStore::open_at(dir.path(), &database.url(dir.path()))
        .await
        .unwrap();
    // The accounts store adds its migrations to the same database.
    accounts::AccountStore::open(cdr.pool().clone(), accounts::Policy::default())
        .await
        .unwrap();
    // Opening the event store runs this crate's migrations, 2103 included.
    crate::events::EventStore::open(cdr.pool().clone())
        .await
        .unwrap();
    let reviewer = accounts::User {
        id: 7,
        username: "quinn".to_owned(),
        role: accounts::Role::Qa,
        agent_id: None,
        disabled: false,
        created_at: OffsetDateTime::UNIX_EPOCH,
    };
    (dir, ScorecardStore::on(cdr.pool().clone()), reviewer)
}

async fn migrations_of_every_store_listed(database: TestDatabase) {
    let (_dir, store, _) = stores(&database).await;
    let versions: Vec<i64> =
        sqlx::query_scalar("SELECT version FROM _sqlx_migrations ORDER BY version")
            .fetch_all(&store.pool)
            .await
            .unwrap();
    assert_eq!(
        versions,
        [
            1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 1000, 1001, 2001, 2002, 2003, 2004, 2100,
            2101, 2102, 2103, 2104, 2105
        ],
        "CDR, accounts and pbx migrations"
    );
}

async fn saved_scorecard_reads_back(database: TestDatabase) {
    let (_dir, store, reviewer) = stores(&database).await;
    let at = OffsetDateTime::from_unix_timestamp(1_800_000_000).unwrap();
    let graded = grade(&config(), submission(&[("greeting", 5), ("resolution", 2)])).unwrap();
    let saved = store
        .save("call-1", Some("1001"), &reviewer, graded, at)
        .await
        .unwrap();
    assert_eq!(saved.reviewer, "quinn");
    assert_eq!(saved.reviewer_id, 7);
    assert_eq!(saved.at, at);
    assert_eq!(store.of_call("call-1").await.unwrap(), vec![saved.clone()]);
    assert!(store.of_call("call-2").await.unwrap().is_empty());

    let filter = |min_total, max_total, agent: Option<&str>| ScorecardFilter {
        min_total,
        max_total,
        agent: agent.map(str::to_owned),
        reviewer: None,
    };
    let found = |filter| {
        let store = store.clone();
        async move { store.search(&filter, 10, 0).await.unwrap().len() }
    };
    assert_eq!(found(filter(Some(55.0), Some(55.0), None)).await, 1);
    assert_eq!(found(filter(Some(55.01), None, None)).await, 0);
    assert_eq!(found(filter(None, Some(54.99), None)).await, 0);
    assert_eq!(found(filter(None, None, Some("1001"))).await, 1);
    assert_eq!(found(filter(None, None, Some("1002"))).await, 0);
}

cdr::storage_tests!(migrations_of_every_store_listed, saved_scorecard_reads_back,);
