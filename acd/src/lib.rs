//! Automatic call distribution (ACD): which agent rings for which queued call, and when.
//!
//! The crate owns queues, the calls waiting in them, agents and their
//! states, and the timers around offers. It does not touch SIP, media or
//! the clock. The B2BUA turns [`Action`]s into INVITEs and CANCELs, the
//! registrar reports reachability, and the pbx binary reads configuration
//! and writes the [`QueueEvent`]s to logs and, through
//! [`queue_log_lines`], to an Asterisk-compatible queue_log.
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
//! Each input that can free an agent or add a call offers waiting calls at
//! once, so the resulting offers are ready to poll when the input returns.
//!
//! # Agents
//!
//! An agent's state combines presence and activity. Presence is logged in
//! or out, reachable or not (registration and qualify results), and ready
//! or not ready with a reason code (break, lunch, training...). Activity is
//! idle, ringing (reserved for one call), on a call, or wrap-up. Activity
//! wins: an agent set not ready while on a call finishes the call and its
//! wrap-up, then is [`AgentState::NotReady`]. Wrap-up lasts until the agent
//! ends it or the maximum passes (the agent's own wrap-up from
//! [`Acd::set_wrap_up`], else the queue's `wrap_up`), and may carry wrap-up
//! codes. An agent has at most one voice call, so an agent ringing or on a
//! call is never offered another. Declining, a busy phone and letting an
//! offer ring out each block the agent from all offers for the queue's
//! reject, busy or no-answer delay, and block it from that same call for
//! the retry delay. After `max_no_answer` unanswered offers in a row the
//! agent is set not ready with reason [`NO_ANSWER_REASON`].
//!
//! # Skills and steps
//!
//! Agents hold skills at proficiency levels (`language=ru` at 5); a call
//! carries required skills with minimum levels, a priority and attached
//! data ([`CallData`]). A queue's [`RoutingStep`]s relax the requirements
//! as the call waits, by skill category: for example 0-30 s `service>=3`
//! and `language`, 30-60 s `service>=1`, from 60 s any agent of the queue,
//! from 120 s overflow. Steps are re-evaluated as time passes, because
//! `poll_timeout` includes each call's next step boundary.
//!
//! # Distribution
//!
//! An agent is eligible for a call when it is available, past any delay,
//! a member of the call's queue, meets the call's requirements under the
//! step in force, and is not in the retry delay for that call. Calls are
//! served by priority, then arrival, across all queues, or by queue weight
//! first under [`CallerOrder::QueueWeight`]. Each call in turn gets an
//! agent by its queue's [`Strategy`]: longest idle, fewest calls,
//! least talk time, round robin with memory, ring all, linear, random,
//! weighted random or best proficiency.
//!
//! # Limits, overflow and callbacks
//!
//! A queue may cap its length, refuse calls while empty and remove waiting
//! callers when it becomes empty, with [`EmptyConditions`] saying which
//! agent states count as absent. A call that leaves without an agent (full,
//! empty, exit key, step, max wait) goes to the queue's [`Destination`]:
//! another queue (handled inside the ACD), a voicemail box or number
//! ([`Action::Overflow`]), or a callback request, which keeps its place and
//! later reserves an agent with [`Action::Callback`]. Expected waits come
//! from Erlang C over measured handle times and arrivals, or from the
//! call's position ([`Acd::expected_wait`]).

mod agent;
mod agents;
mod available;
mod call;
mod callbacks;
mod calls;
mod config;
mod direct;
mod dispatch;
mod engine;
mod error;
mod exits;
mod hold;
mod keys;
mod order;
mod output;
mod queue_log;
mod ranks;
mod reconfigure;
mod select;
mod skill;
mod stats;
mod strategy;
mod table;
mod waiting;

pub use agent::{AgentState, AgentStatus};
pub use agents::NO_ANSWER_REASON;
pub use call::CallData;
pub use callbacks::CallbackAttempts;
pub use config::{CallerOrder, Destination, EmptyConditions, QueueConfig, Strategy};
pub use engine::Acd;
pub use error::{AcdError, ParseError};
pub use output::{Action, CallbackFailure, ExitReason, Party, QueueEvent, SurveyOutcome};
pub use queue_log::queue_log_lines;
pub use skill::{CategoryLevel, RoutingStep, SkillRequirement, Skills, StepRule};
pub use stats::{QueueSnapshot, erlang_c, erlang_c_wait};
