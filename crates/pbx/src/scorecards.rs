//! QA scorecards: a reviewer's scores of one call against the configured
//! criteria, with comments and a weighted total.
//!
//! [`grade`] checks a submission against the criteria in force and
//! computes the total without touching the database; [`ScorecardStore`]
//! keeps the result in the tables of migration 2103. A saved scorecard is
//! never changed, so an edit on the call page saves a new one and the
//! older one stays in the call's history.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};
use sqlx::any::AnyRow;
use sqlx::{AnyPool, Row};
use time::OffsetDateTime;

use crate::config::QaConfig;

/// Maximum length of the overall comments, in characters.
pub(crate) const MAX_COMMENTS_CHARS: usize = 4000;
/// Maximum length of the comment on one criterion, in characters.
pub(crate) const MAX_CRITERION_COMMENT_CHARS: usize = 1000;
/// Maximum page size of [`ScorecardStore::search`].
pub(crate) const MAX_SEARCH_LIMIT: u32 = 500;

/// A submission that does not fit the criteria in force.
#[derive(Debug, PartialEq, thiserror::Error)]
pub(crate) enum GradeError {
    #[error("no scorecard criteria are configured; add [[qa.criteria]] to the configuration")]
    NoCriteria,
    #[error("unknown criterion {criterion:?}; the criteria are {known}")]
    UnknownCriterion { criterion: String, known: String },
    #[error("criterion {criterion:?} is scored twice")]
    DuplicateCriterion { criterion: String },
    #[error("criterion {criterion:?} has no score; score every criterion")]
    MissingCriterion { criterion: String },
    #[error("score {score} of criterion {criterion:?} is above the maximum {max_score}")]
    ScoreTooHigh {
        criterion: String,
        score: u32,
        max_score: u32,
    },
    #[error("comments have {length} characters, at most {maximum} are allowed")]
    CommentsTooLong { length: usize, maximum: usize },
    #[error("{field} contains a control character; only line breaks and tabs are allowed")]
    ControlCharacter { field: String },
    #[error(
        "the comment on criterion {criterion:?} has {length} characters, at most {maximum} \
         are allowed"
    )]
    CriterionCommentTooLong {
        criterion: String,
        length: usize,
        maximum: usize,
    },
}

#[derive(Debug, thiserror::Error)]
pub(crate) enum ScorecardStoreError {
    #[error("scorecard database query failed: {0}")]
    Query(#[from] sqlx::Error),
    #[error("invalid time {at_ms} ms in scorecard {id}")]
    InvalidTime { id: i64, at_ms: i64 },
}

/// A scorecard as the reviewer submits it.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Submission {
    pub(crate) scores: Vec<SubmittedScore>,
    #[serde(default)]
    pub(crate) comments: String,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct SubmittedScore {
    pub(crate) criterion: String,
    pub(crate) score: u32,
    #[serde(default)]
    pub(crate) comment: String,
}

/// One criterion's score as stored, with the criterion as it was then.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub(crate) struct Score {
    pub(crate) criterion: String,
    pub(crate) label: String,
    pub(crate) weight: u32,
    pub(crate) score: u32,
    pub(crate) max_score: u32,
    pub(crate) comment: String,
}

/// A submission checked against the criteria, in their configured order.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Graded {
    pub(crate) scores: Vec<Score>,
    pub(crate) comments: String,
    /// Weighted mean of `score / max_score`, as a percentage rounded to
    /// two decimals.
    pub(crate) total_percent: f64,
}

/// A saved scorecard.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub(crate) struct Scorecard {
    pub(crate) id: i64,
    pub(crate) call_id: String,
    /// Agent of the call, from its CDR.
    pub(crate) agent: Option<String>,
    pub(crate) reviewer_id: i64,
    /// The reviewer's username when the scorecard was saved.
    pub(crate) reviewer: String,
    #[serde(with = "time::serde::rfc3339")]
    pub(crate) at: OffsetDateTime,
    pub(crate) comments: String,
    pub(crate) total_percent: f64,
    pub(crate) scores: Vec<Score>,
}

/// Checks `submission` against `config` and computes the weighted total.
/// Every configured criterion needs exactly one score.
pub(crate) fn grade(config: &QaConfig, submission: Submission) -> Result<Graded, GradeError> {
    if config.criteria.is_empty() {
        return Err(GradeError::NoCriteria);
    }
    check_text("comments", &submission.comments)?;
    let comments_length = submission.comments.chars().count();
    if comments_length > MAX_COMMENTS_CHARS {
        return Err(GradeError::CommentsTooLong {
            length: comments_length,
            maximum: MAX_COMMENTS_CHARS,
        });
    }
    let mut by_criterion: Vec<Option<SubmittedScore>> = vec![None; config.criteria.len()];
    for submitted in submission.scores {
        check_submitted(config, &submitted)?;
        let Some(index) = config
            .criteria
            .iter()
            .position(|criterion| criterion.id == submitted.criterion)
        else {
            let known: Vec<&str> = config.criteria.iter().map(|c| c.id.as_str()).collect();
            return Err(GradeError::UnknownCriterion {
                criterion: submitted.criterion,
                known: known.join(", "),
            });
        };
        if by_criterion[index].is_some() {
            return Err(GradeError::DuplicateCriterion {
                criterion: submitted.criterion,
            });
        }
        by_criterion[index] = Some(submitted);
    }
    let mut scores = Vec::with_capacity(by_criterion.len());
    for (criterion, submitted) in config.criteria.iter().zip(by_criterion) {
        let submitted = submitted.ok_or_else(|| GradeError::MissingCriterion {
            criterion: criterion.id.clone(),
        })?;
        scores.push(Score {
            criterion: criterion.id.clone(),
            label: criterion.label.clone(),
            weight: criterion.weight,
            score: submitted.score,
            max_score: config.max_score,
            comment: submitted.comment,
        });
    }
    let total_percent = total_percent(&scores);
    Ok(Graded {
        scores,
        comments: submission.comments,
        total_percent,
    })
}

fn check_submitted(config: &QaConfig, submitted: &SubmittedScore) -> Result<(), GradeError> {
    if submitted.score > config.max_score {
        return Err(GradeError::ScoreTooHigh {
            criterion: submitted.criterion.clone(),
            score: submitted.score,
            max_score: config.max_score,
        });
    }
    check_text(
        &format!("the comment on criterion {:?}", submitted.criterion),
        &submitted.comment,
    )?;
    let length = submitted.comment.chars().count();
    if length > MAX_CRITERION_COMMENT_CHARS {
        return Err(GradeError::CriterionCommentTooLong {
            criterion: submitted.criterion.clone(),
            length,
            maximum: MAX_CRITERION_COMMENT_CHARS,
        });
    }
    Ok(())
}

/// Rejects control characters other than line breaks and tabs, which a
/// reviewer never types and which would reach exports and the audit trail.
fn check_text(field: &str, text: &str) -> Result<(), GradeError> {
    if text
        .chars()
        .any(|c| c.is_control() && !matches!(c, '\n' | '\r' | '\t'))
    {
        return Err(GradeError::ControlCharacter {
            field: field.to_owned(),
        });
    }
    Ok(())
}

/// Weighted mean of each score's share of its maximum, in percent.
pub(crate) fn total_percent(scores: &[Score]) -> f64 {
    let weights: f64 = scores.iter().map(|score| f64::from(score.weight)).sum();
    if weights == 0.0 {
        return 0.0;
    }
    let weighted: f64 = scores
        .iter()
        .filter(|score| score.max_score > 0)
        .map(|score| f64::from(score.weight) * f64::from(score.score) / f64::from(score.max_score))
        .sum();
    (weighted / weights * 10_000.0).round() / 100.0
}

/// Conditions of [`ScorecardStore::search`]; `None` matches everything.
#[derive(Clone, Debug, Default)]
pub(crate) struct ScorecardFilter {
    pub(crate) min_total: Option<f64>,
    pub(crate) max_total: Option<f64>,
    pub(crate) agent: Option<String>,
    pub(crate) reviewer: Option<String>,
}

/// Scorecards in the PBX database.
#[derive(Clone)]
pub(crate) struct ScorecardStore {
    pool: AnyPool,
}

impl ScorecardStore {
    /// The store on a database whose migrations ran (the event store's
    /// open runs this crate's migrations, 2103 included).
    pub(crate) fn on(pool: AnyPool) -> ScorecardStore {
        ScorecardStore { pool }
    }

    /// Saves a graded scorecard in one transaction and returns it.
    pub(crate) async fn save(
        &self,
        call_id: &str,
        agent: Option<&str>,
        reviewer: &accounts::User,
        graded: Graded,
        now: OffsetDateTime,
    ) -> Result<Scorecard, ScorecardStoreError> {
        let at_ms = millis(now);
        let mut transaction = self.pool.begin().await?;
        let id: i64 = sqlx::query_scalar(
            "INSERT INTO scorecards \
             (call_id, agent, reviewer_id, reviewer, at_ms, comments, total_percent) \
             VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING id",
        )
        .bind(call_id)
        .bind(agent)
        .bind(reviewer.id)
        .bind(&reviewer.username)
        .bind(at_ms)
        .bind(&graded.comments)
        .bind(graded.total_percent)
        .fetch_one(&mut *transaction)
        .await?;

        for (position, score) in graded.scores.iter().enumerate() {
            sqlx::query(
                "INSERT INTO scorecard_scores \
                 (scorecard_id, position, criterion, label, weight, score, max_score, comment) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
            )
            .bind(id)
            .bind(position as i64)
            .bind(&score.criterion)
            .bind(&score.label)
            .bind(i64::from(score.weight))
            .bind(i64::from(score.score))
            .bind(i64::from(score.max_score))
            .bind(&score.comment)
            .execute(&mut *transaction)
            .await?;
        }
        transaction.commit().await?;

        Ok(Scorecard {
            id,
            call_id: call_id.to_owned(),
            agent: agent.map(str::to_owned),
            reviewer_id: reviewer.id,
            reviewer: reviewer.username.clone(),
            at: from_millis(id, at_ms)?,
            comments: graded.comments,
            total_percent: graded.total_percent,
            scores: graded.scores,
        })
    }

    /// Returns the scorecards of one call, oldest first.
    pub(crate) async fn of_call(
        &self,
        call_id: &str,
    ) -> Result<Vec<Scorecard>, ScorecardStoreError> {
        let rows = sqlx::query(
            "SELECT id, call_id, agent, reviewer_id, reviewer, at_ms, comments, total_percent \
             FROM scorecards WHERE call_id = $1 ORDER BY id",
        )
        .bind(call_id)
        .fetch_all(&self.pool)
        .await?;
        self.with_scores(rows).await
    }

    /// Returns up to `limit` scorecards that match `filter`, newest first,
    /// skipping the first `offset`.
    pub(crate) async fn search(
        &self,
        filter: &ScorecardFilter,
        limit: u32,
        offset: u32,
    ) -> Result<Vec<Scorecard>, ScorecardStoreError> {
        // NULL parameters match every row, so one statement covers every
        // combination of conditions.
        let rows = sqlx::query(
            "SELECT id, call_id, agent, reviewer_id, reviewer, at_ms, comments, total_percent \
             FROM scorecards \
             WHERE ($1 IS NULL OR total_percent >= $1) AND ($2 IS NULL OR total_percent <= $2) \
             AND ($3 IS NULL OR agent = $3) AND ($4 IS NULL OR reviewer = $4) \
             ORDER BY id DESC LIMIT $5 OFFSET $6",
        )
        .bind(cdr::database::OptionalF64(filter.min_total))
        .bind(cdr::database::OptionalF64(filter.max_total))
        .bind(filter.agent.as_deref())
        .bind(filter.reviewer.as_deref())
        .bind(i64::from(limit.min(MAX_SEARCH_LIMIT)))
        .bind(i64::from(offset))
        .fetch_all(&self.pool)
        .await?;
        self.with_scores(rows).await
    }

    async fn with_scores(&self, rows: Vec<AnyRow>) -> Result<Vec<Scorecard>, ScorecardStoreError> {
        let ids: Vec<i64> = rows
            .iter()
            .map(|row| row.try_get("id"))
            .collect::<Result<_, _>>()?;
        let mut scores = self.scores(&ids).await?;
        let mut scorecards = Vec::with_capacity(rows.len());
        for row in rows {
            let id: i64 = row.try_get("id")?;
            let at_ms: i64 = row.try_get("at_ms")?;
            scorecards.push(Scorecard {
                id,
                call_id: row.try_get("call_id")?,
                agent: row.try_get("agent")?,
                reviewer_id: row.try_get("reviewer_id")?,
                reviewer: row.try_get("reviewer")?,
                at: from_millis(id, at_ms)?,
                comments: row.try_get("comments")?,
                total_percent: row.try_get("total_percent")?,
                scores: scores.remove(&id).unwrap_or_default(),
            });
        }
        Ok(scorecards)
    }

    /// Reads the scores of the scorecards `ids`, grouped by scorecard, with
    /// one query per [`MAX_SEARCH_LIMIT`] ids.
    async fn scores(&self, ids: &[i64]) -> Result<HashMap<i64, Vec<Score>>, ScorecardStoreError> {
        let mut by_scorecard: HashMap<i64, Vec<Score>> = HashMap::new();
        if ids.is_empty() {
            return Ok(by_scorecard);
        }
        let mut rows = Vec::new();
        // Chunks keep each statement far below SQLite's parameter limit.
        for chunk in ids.chunks(MAX_SEARCH_LIMIT as usize) {
            let placeholders = (1..=chunk.len())
                .map(|number| format!("${number}"))
                .collect::<Vec<_>>()
                .join(", ");
            let statement = format!(
                "SELECT scorecard_id, criterion, label, weight, score, max_score, comment \
                 FROM scorecard_scores WHERE scorecard_id IN ({placeholders}) \
                 ORDER BY scorecard_id, position"
            );
            let mut query = sqlx::query(&statement);
            for id in chunk {
                query = query.bind(id);
            }
            rows.extend(query.fetch_all(&self.pool).await?);
        }
        let number = |row: &AnyRow, name: &str| -> Result<u32, sqlx::Error> {
            let value: i64 = row.try_get(name)?;
            u32::try_from(value).map_err(|error| sqlx::Error::ColumnDecode {
                index: name.to_owned(),
                source: Box::new(error),
            })
        };
        for row in &rows {
            let score = Score {
                criterion: row.try_get("criterion")?,
                label: row.try_get("label")?,
                weight: number(row, "weight")?,
                score: number(row, "score")?,
                max_score: number(row, "max_score")?,
                comment: row.try_get("comment")?,
            };
            by_scorecard
                .entry(row.try_get("scorecard_id")?)
                .or_default()
                .push(score);
        }
        Ok(by_scorecard)
    }
}

fn millis(at: OffsetDateTime) -> i64 {
    i64::try_from(at.unix_timestamp_nanos() / 1_000_000).unwrap_or(i64::MAX)
}

fn from_millis(id: i64, at_ms: i64) -> Result<OffsetDateTime, ScorecardStoreError> {
    OffsetDateTime::from_unix_timestamp_nanos(i128::from(at_ms) * 1_000_000)
        .map_err(|_| ScorecardStoreError::InvalidTime { id, at_ms })
}

#[cfg(test)]
mod tests;
