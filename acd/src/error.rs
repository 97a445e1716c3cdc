//! Errors returned by the ACD engine.

/// An input that the engine rejects without changing any state.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum AcdError {
    /// `enqueue` named a queue that `add_queue` never created.
    #[error("cannot enqueue call {call:?}: queue {queue:?} not found; add it with add_queue first")]
    UnknownQueue { call: String, queue: String },
    /// `enqueue` reused the id of a call that is still queued, ringing an
    /// agent or connected to an agent (until `call_ended`).
    #[error("cannot enqueue call {call:?}: it is already in queue {queue:?}")]
    DuplicateCall { call: String, queue: String },
}
