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
    /// The queue holds `max_length` calls and has no overflow destination.
    #[error("cannot enqueue call {call:?}: queue {queue:?} is full at {max_length} calls")]
    QueueFull {
        call: String,
        queue: String,
        max_length: usize,
    },
    /// The queue refuses calls while empty and has no overflow destination.
    #[error("cannot enqueue call {call:?}: queue {queue:?} has no agent to join")]
    QueueEmpty { call: String, queue: String },
    /// An overflow chain of queues led back to a queue already tried.
    #[error("cannot enqueue call {call:?}: overflow from queue {queue:?} loops back")]
    OverflowLoop { call: String, queue: String },
    /// An agent input named an agent that `add_agent` never created.
    #[error("agent {agent:?} not found; add it with add_agent first")]
    UnknownAgent { agent: String },
    /// A queue input named a queue that `add_queue` never created.
    #[error("queue {queue:?} not found")]
    QueueNotFound { queue: String },
    /// A call input named a call that is not waiting in any queue.
    #[error("call {call:?} is not waiting in any queue")]
    UnknownCall { call: String },
    /// `end_wrap_up` or `set_wrap_up_code` for an agent not in wrap-up.
    #[error("agent {agent:?} is not in wrap-up")]
    NotInWrapUp { agent: String },
}

/// Invalid text for a skill requirement or a step level.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    #[error("invalid skill {text:?}: the skill name is empty")]
    EmptySkill { text: String },
    #[error("invalid skill {text:?}: the level must be a whole number from 0 to 255")]
    InvalidLevel { text: String },
}
