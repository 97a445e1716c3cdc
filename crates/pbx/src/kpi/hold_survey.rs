//! Hold time and post-call survey figures of answered calls, shared by the
//! queue report and the interval rows of queues and agents.
//!
//! A call's `talk_seconds` in its `call_completed` event runs from the
//! answer to the agent's hang-up, holds included. The reports split it:
//! talk is that time less the call's hold time, so that handle time (talk
//! plus hold plus wrap-up) counts each second once.

use serde::Serialize;

use super::{Visit, mean, round_millis};

/// The hold and survey columns of one report row.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub(crate) struct HoldSurvey {
    /// Time on hold of the answered calls that have ended, summed.
    pub(crate) hold_seconds: f64,
    /// Mean time on hold of those calls, 0 for a call never held.
    pub(crate) average_hold_seconds: Option<f64>,
    /// Answered calls whose caller heard the post-call survey.
    pub(crate) surveys_offered: u64,
    /// Surveys in which the caller keyed a score.
    pub(crate) surveys_answered: u64,
    /// Share of the answered surveys scored 4 or 5, in percent.
    pub(crate) csat_percent: Option<f64>,
}

/// Sums behind [`HoldSurvey`].
#[derive(Default)]
pub(crate) struct HoldSurveySums {
    hold_times: Vec<f64>,
    offered: u64,
    scores: Vec<u8>,
}

impl HoldSurveySums {
    /// Adds an answered visit. `ended` says whether its call has ended,
    /// which is when its hold time is final.
    pub(crate) fn add(&mut self, visit: &Visit, ended: bool) {
        if ended {
            self.hold_times.push(visit.hold_seconds);
        }
        if visit.survey_offered {
            self.offered += 1;
        }
        self.scores.extend(visit.survey_score);
    }

    pub(crate) fn kpi(&self) -> HoldSurvey {
        let satisfied = self.scores.iter().filter(|&&score| score >= 4).count();
        let answered = self.scores.len();
        HoldSurvey {
            // Folded from +0.0, because `sum` of no f64 values is -0.0.
            hold_seconds: round_millis(self.hold_times.iter().fold(0.0, |sum, hold| sum + hold)),
            average_hold_seconds: mean(&self.hold_times),
            surveys_offered: self.offered,
            surveys_answered: answered as u64,
            csat_percent: (answered > 0)
                .then(|| round_millis(satisfied as f64 * 100.0 / answered as f64)),
        }
    }
}

#[cfg(test)]
mod tests;
