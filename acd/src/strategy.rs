//! Agent selection among the eligible agents of a queue.

use crate::agent::Agent;

/// Agent selection rule of a queue.
// TODO: add round-robin, fewest-calls and skills-based rules once queues
// carry a strategy in their configuration; every queue uses LongestIdle now.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) enum Strategy {
    /// The agent idle for the longest time; ties go to the smallest agent id
    /// so that the choice does not depend on map order.
    #[default]
    LongestIdle,
}

impl Strategy {
    /// Picks one of `candidates`, which must all be eligible for the call.
    pub(crate) fn select<'a>(
        self,
        candidates: impl Iterator<Item = &'a Agent>,
    ) -> Option<&'a Agent> {
        match self {
            Strategy::LongestIdle => candidates.min_by(|a, b| {
                a.idle_since
                    .cmp(&b.idle_since)
                    .then_with(|| a.id.cmp(&b.id))
            }),
        }
    }
}
