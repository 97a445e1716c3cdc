//! Automatic call distribution (ACD): which agent rings for which queued call, and when.
//!
//! The crate owns queues, the calls waiting in them, agent availability
//! and the timers around offers: ring timeout, max wait, retry delay and
//! wrap-up. It does not touch SIP, media or the clock. The B2BUA turns
//! [`Action`]s into INVITEs and CANCELs, the registrar reports
//! reachability, and the pbx binary reads configuration and writes the
//! [`QueueEvent`]s to logs and the queue_log.
//!
//! # Driving the engine
//!
//! [`Acd`] is sans-IO: every input takes the current `Instant`, and the
//! engine never reads the clock itself. After each input, the driver:
//!
//! 1. drains [`Acd::poll_action`] and carries out each action in order;
//! 2. drains [`Acd::poll_event`];
//! 3. rearms its single timer at [`Acd::poll_timeout`] and, when it fires,
//!    calls [`Acd::handle_timeout`] and starts again at step 1.
//!
//! Each input that can free an agent or add a call (login, reachability,
//! enqueue, a rejected offer, a call end, a timeout) offers waiting calls at
//! once, so the resulting `Offer`s are ready to poll when the input returns.
//!
//! # Distribution rules
//!
//! An agent is eligible for a call when it is logged in, reachable, idle
//! (not ringing, on a call or in wrap-up) and a member of the call's queue.
//! It is not eligible for a call it rejected or missed during the retry delay
//! that follows.
//! Calls are served by priority, then arrival, across all queues; each call
//! in turn gets the eligible agent idle for the longest time, ties going to
//! the smallest agent id. An agent rings for at most one call at a time.

mod agent;
mod call;
mod engine;
mod error;
mod output;
mod strategy;

pub use agent::AgentState;
pub use call::QueueConfig;
pub use engine::Acd;
pub use error::AcdError;
pub use output::{Action, QueueEvent};
