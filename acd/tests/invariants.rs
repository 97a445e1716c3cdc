//! Random command sequences against a model of the driver's state.
//!
//! The model follows the actions and events like a driver would and checks,
//! after every command: each agent has at most one call reserved or active,
//! each call has at most one outstanding offer, no waiting call is left while
//! an agent could take it, and every call leaves exactly once by answer,
//! abandon or max wait. Callback requests wait without a max wait and leave
//! when their citizen answers or their last attempt fails; between attempts
//! no agent is offered them. After every command and every timeout it also
//! compares the engine's deadline and availability indexes with a scan of
//! all its calls and agents.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use acd::{Acd, AcdError, Action, AgentState, CallData, CallbackFailure, QueueConfig, QueueEvent};
use proptest::prelude::*;

const AGENTS: [&str; 3] = ["a", "b", "c"];
const CALLS: [&str; 5] = ["c0", "c1", "c2", "c3", "c4"];
/// "q2" is never added, so enqueueing to it must fail.
const QUEUES: [&str; 3] = ["q0", "q1", "q2"];

fn membership(agent: &str) -> &'static [&'static str] {
    match agent {
        "a" => &["q0"],
        "b" => &["q0", "q1"],
        _ => &["q1"],
    }
}

#[derive(Clone, Debug)]
enum Command {
    Enqueue {
        call: usize,
        queue: usize,
    },
    Abandon {
        call: usize,
    },
    SetLoggedIn {
        agent: usize,
        on: bool,
    },
    SetReachable {
        agent: usize,
        on: bool,
    },
    AnswerOffer {
        pick: usize,
    },
    RejectOffer {
        pick: usize,
    },
    StrayAnswer {
        call: usize,
        agent: usize,
    },
    StrayReject {
        call: usize,
        agent: usize,
    },
    EndCall {
        agent: usize,
    },
    RequestCallback {
        call: usize,
    },
    /// The citizen of the callback request the agent is on answers, or not.
    Citizen {
        agent: usize,
        answers: bool,
    },
    Advance {
        millis: u64,
    },
}

fn command() -> impl Strategy<Value = Command> {
    prop_oneof![
        3 => (0..CALLS.len(), 0..QUEUES.len())
            .prop_map(|(call, queue)| Command::Enqueue { call, queue }),
        1 => (0..CALLS.len()).prop_map(|call| Command::Abandon { call }),
        2 => (0..AGENTS.len(), any::<bool>())
            .prop_map(|(agent, on)| Command::SetLoggedIn { agent, on }),
        2 => (0..AGENTS.len(), any::<bool>())
            .prop_map(|(agent, on)| Command::SetReachable { agent, on }),
        2 => any::<usize>().prop_map(|pick| Command::AnswerOffer { pick }),
        2 => any::<usize>().prop_map(|pick| Command::RejectOffer { pick }),
        1 => (0..CALLS.len(), 0..AGENTS.len())
            .prop_map(|(call, agent)| Command::StrayAnswer { call, agent }),
        1 => (0..CALLS.len(), 0..AGENTS.len())
            .prop_map(|(call, agent)| Command::StrayReject { call, agent }),
        2 => (0..AGENTS.len()).prop_map(|agent| Command::EndCall { agent }),
        1 => (0..CALLS.len()).prop_map(|call| Command::RequestCallback { call }),
        2 => (0..AGENTS.len(), any::<bool>())
            .prop_map(|(agent, answers)| Command::Citizen { agent, answers }),
        3 => (0..30_000u64).prop_map(|millis| Command::Advance { millis }),
    ]
}

#[derive(Clone, Debug)]
struct Timings {
    ring_timeout: Duration,
    max_wait: Duration,
    retry_delay: Duration,
    wrap_up: Duration,
}

fn timings() -> impl Strategy<Value = Timings> {
    (1..20u64, 1..90u64, 0..10u64, 0..10u64).prop_map(|(ring, wait, retry, wrap)| Timings {
        ring_timeout: Duration::from_secs(ring),
        max_wait: Duration::from_secs(wait),
        retry_delay: Duration::from_secs(retry),
        wrap_up: Duration::from_secs(wrap),
    })
}

/// The driver's view: what it was asked to do and what it reported back.
struct Model {
    acd: Acd,
    now: Instant,
    retry_delay: Duration,
    /// Calls between a successful enqueue and their leaving event.
    queued: BTreeMap<String, String>,
    /// Offers the driver is ringing: call to agent.
    ringing: BTreeMap<String, String>,
    /// Answered calls: agent to call.
    connected: BTreeMap<String, String>,
    /// When each agent last failed to answer each call.
    no_answer: BTreeMap<(String, String), Instant>,
    /// Calls that became callback requests.
    callbacks: BTreeSet<String>,
    /// Callback requests whose citizen is being dialed.
    dialing: BTreeSet<String>,
    /// Callback requests held back after a failed attempt, until when.
    held: BTreeMap<String, Instant>,
    entered: usize,
    left: usize,
}

impl Model {
    fn new(timings: &Timings) -> Model {
        let mut acd = Acd::new();
        for name in &QUEUES[..2] {
            acd.add_queue(QueueConfig {
                name: (*name).to_owned(),
                ring_timeout: timings.ring_timeout,
                max_wait: timings.max_wait,
                retry_delay: timings.retry_delay,
                wrap_up: timings.wrap_up,
                callback_attempts: 2,
                callback_retry_delay: Duration::from_secs(5),
                ..QueueConfig::default()
            });
        }
        for agent in AGENTS {
            let queues: Vec<String> = membership(agent).iter().map(|q| (*q).to_owned()).collect();
            acd.add_agent(agent, &queues);
        }
        Model {
            acd,
            now: Instant::now(),
            retry_delay: timings.retry_delay,
            queued: BTreeMap::new(),
            ringing: BTreeMap::new(),
            connected: BTreeMap::new(),
            no_answer: BTreeMap::new(),
            callbacks: BTreeSet::new(),
            dialing: BTreeSet::new(),
            held: BTreeMap::new(),
            entered: 0,
            left: 0,
        }
    }

    fn run(&mut self, command: &Command) -> Result<(), TestCaseError> {
        match *command {
            Command::Enqueue { call, queue } => self.enqueue(CALLS[call], QUEUES[queue])?,
            Command::Abandon { call } => {
                self.ringing.remove(CALLS[call]);
                self.acd.abandon(CALLS[call], self.now);
            }
            Command::SetLoggedIn { agent, on } => {
                self.acd.set_logged_in(AGENTS[agent], on, self.now)
            }
            Command::SetReachable { agent, on } => {
                self.acd.set_reachable(AGENTS[agent], on, self.now)
            }
            Command::AnswerOffer { pick } => self.answer_offer(pick),
            Command::RejectOffer { pick } => self.reject_offer(pick),
            Command::StrayAnswer { call, agent } => self.stray(CALLS[call], AGENTS[agent], true)?,
            Command::StrayReject { call, agent } => {
                self.stray(CALLS[call], AGENTS[agent], false)?
            }
            Command::EndCall { agent } => {
                // Ending a callback's call before the citizen answered is a
                // failed attempt, which the events report.
                if let Some(call) = self.connected.remove(AGENTS[agent]) {
                    self.dialing.remove(&call);
                }
                self.acd.call_ended(AGENTS[agent], self.now);
            }
            Command::RequestCallback { call } => self.request_callback(CALLS[call])?,
            Command::Citizen { agent, answers } => {
                let Some(call) = self.connected.get(AGENTS[agent]).cloned() else {
                    return self.check();
                };
                if !self.dialing.remove(&call) {
                    return self.check();
                }
                if answers {
                    self.acd.callback_connected(&call, self.now);
                } else {
                    self.connected.remove(AGENTS[agent]);
                    self.acd
                        .callback_not_reached(&call, CallbackFailure::Busy, self.now);
                }
            }
            Command::Advance { millis } => self.advance(Duration::from_millis(millis))?,
        }
        self.drain()?;
        self.check()
    }

    fn enqueue(&mut self, call: &str, queue: &str) -> Result<(), TestCaseError> {
        let data = CallData {
            caller: Some("+15550100".to_owned()),
            ..CallData::default()
        };
        let result = self.acd.enqueue_with(call, queue, data, self.now);
        let busy = self.queued.contains_key(call) || self.connected.values().any(|c| c == call);
        match result {
            Ok(()) => {
                prop_assert!(queue != "q2", "enqueue to an unknown queue succeeded");
                prop_assert!(!busy, "enqueue of duplicate call {} succeeded", call);
                self.queued.insert(call.to_owned(), queue.to_owned());
                self.no_answer.retain(|(c, _), _| c != call);
                self.callbacks.remove(call);
                self.held.remove(call);
                self.entered += 1;
            }
            Err(AcdError::UnknownQueue { .. }) => prop_assert_eq!(queue, "q2"),
            Err(AcdError::DuplicateCall { .. }) => prop_assert!(busy && queue != "q2"),
            Err(other) => prop_assert!(false, "unexpected error: {}", other),
        }
        Ok(())
    }

    fn request_callback(&mut self, call: &str) -> Result<(), TestCaseError> {
        let result = self.acd.request_callback(call, None, self.now);
        let waiting = self.queued.contains_key(call) && !self.dialing.contains(call);
        let answered = self.connected.values().any(|c| c == call);
        match result {
            Ok(()) => prop_assert!(waiting && !answered, "callback for {} accepted", call),
            Err(AcdError::UnknownCall { .. }) => {
                prop_assert!(!waiting || answered, "callback for {} refused", call)
            }
            Err(other) => prop_assert!(false, "unexpected error: {}", other),
        }
        // The offer of the caller ends because the call changed, not
        // because the agent missed it, so no retry delay applies.
        while let Some(action) = self.acd.poll_action() {
            match action {
                Action::CancelOffer {
                    call: cancelled, ..
                } if cancelled == call => {
                    self.ringing.remove(call);
                }
                other => self.apply_action(other)?,
            }
        }
        Ok(())
    }

    fn answer_offer(&mut self, pick: usize) {
        let Some((call, agent)) = self.pick_offer(pick) else {
            return;
        };
        self.ringing.remove(&call);
        if self.callbacks.contains(&call) {
            self.dialing.insert(call.clone());
        }
        self.connected.insert(agent.clone(), call.clone());
        self.acd.offer_answered(&call, &agent, self.now);
    }

    fn reject_offer(&mut self, pick: usize) {
        let Some((call, agent)) = self.pick_offer(pick) else {
            return;
        };
        self.ringing.remove(&call);
        self.no_answer
            .insert((call.clone(), agent.clone()), self.now);
        self.acd.offer_rejected(&call, &agent, self.now);
    }

    fn pick_offer(&self, pick: usize) -> Option<(String, String)> {
        let count = self.ringing.len();
        if count == 0 {
            return None;
        }
        let (call, agent) = self.ringing.iter().nth(pick % count)?;
        Some((call.clone(), agent.clone()))
    }

    /// Reports an answer or rejection for an offer that is not ringing; the
    /// engine must ignore it entirely.
    fn stray(&mut self, call: &str, agent: &str, answered: bool) -> Result<(), TestCaseError> {
        if self.ringing.get(call).is_some_and(|a| a == agent) {
            return Ok(());
        }
        if answered {
            self.acd.offer_answered(call, agent, self.now);
        } else {
            self.acd.offer_rejected(call, agent, self.now);
        }
        prop_assert_eq!(self.acd.poll_event(), None);
        prop_assert_eq!(self.acd.poll_action(), None);
        Ok(())
    }

    /// Moves the clock like a driver's timer would: fire each deadline at its
    /// own instant, draining outputs after each, until `by` has passed.
    fn advance(&mut self, by: Duration) -> Result<(), TestCaseError> {
        let target = self.now + by;
        for _ in 0..1_000 {
            match self.acd.poll_timeout() {
                Some(deadline) if deadline <= target => {
                    self.now = self.now.max(deadline);
                    self.acd.handle_timeout(self.now);
                    self.acd.assert_indexes_match_scan();
                    self.drain()?;
                    let next = self.acd.poll_timeout();
                    prop_assert!(
                        next.is_none_or(|n| n > self.now),
                        "handle_timeout left a deadline at or before now"
                    );
                }
                _ => {
                    self.now = target;
                    return Ok(());
                }
            }
        }
        Err(TestCaseError::fail(
            "more than 1000 timeouts in one advance",
        ))
    }

    fn drain(&mut self) -> Result<(), TestCaseError> {
        while let Some(action) = self.acd.poll_action() {
            self.apply_action(action)?;
        }
        while let Some(event) = self.acd.poll_event() {
            prop_assert!(event.at() <= self.now, "event from the future: {:?}", event);
            self.apply_event(event)?;
        }
        Ok(())
    }

    fn apply_action(&mut self, action: Action) -> Result<(), TestCaseError> {
        match action {
            Action::Offer { call, agent } | Action::Callback { call, agent, .. } => {
                prop_assert!(
                    self.held.get(&call).is_none_or(|until| *until <= self.now),
                    "{} offered during its retry delay",
                    call
                );
                prop_assert!(
                    self.queued.contains_key(&call),
                    "offer of unknown call {}",
                    call
                );
                prop_assert!(
                    !self.ringing.contains_key(&call),
                    "second offer of {}",
                    call
                );
                prop_assert!(
                    !self.ringing.values().any(|a| *a == agent),
                    "{} rings twice",
                    agent
                );
                prop_assert!(
                    !self.connected.contains_key(&agent),
                    "{} offered while on call",
                    agent
                );
                prop_assert!(
                    !self.in_retry_delay(&call, &agent),
                    "{} offered {} too soon",
                    agent,
                    call
                );
                self.ringing.insert(call, agent);
            }
            Action::CancelOffer { call, agent } => {
                prop_assert_eq!(self.ringing.remove(&call), Some(agent.clone()));
                self.no_answer.insert((call, agent), self.now);
            }
            Action::MaxWaitReached { call } => {
                prop_assert!(!self.ringing.contains_key(&call), "max wait before cancel");
                prop_assert!(!self.callbacks.contains(&call), "max wait of a callback");
                prop_assert!(
                    self.queued.contains_key(&call),
                    "max wait of unknown call {}",
                    call
                );
            }
            other => prop_assert!(false, "unexpected action {:?}", other),
        }
        Ok(())
    }

    fn apply_event(&mut self, event: QueueEvent) -> Result<(), TestCaseError> {
        match event {
            QueueEvent::OfferAnswered { call, .. }
            | QueueEvent::CallAbandoned { call, .. }
            | QueueEvent::CallTimedOut { call, .. }
            | QueueEvent::CallbackNotReached {
                call,
                retry_at: None,
                ..
            } => {
                prop_assert!(self.queued.remove(&call).is_some(), "{} left twice", call);
                self.held.remove(&call);
                self.left += 1;
            }
            QueueEvent::CallbackNotReached {
                call,
                retry_at: Some(until),
                ..
            } => {
                prop_assert!(self.queued.contains_key(&call), "retry of unknown {}", call);
                self.held.insert(call, until);
            }
            QueueEvent::CallbackRequested { call, .. } => {
                self.callbacks.insert(call);
            }
            _ => {}
        }
        Ok(())
    }

    fn check(&self) -> Result<(), TestCaseError> {
        self.acd.assert_indexes_match_scan();
        for agent in AGENTS {
            let state = self.acd.agent_state(agent);
            let ringing = self.ringing.values().any(|a| a == agent);
            prop_assert_eq!(
                state == Some(AgentState::Ringing),
                ringing,
                "agent {}",
                agent
            );
            let connected = self.connected.contains_key(agent);
            prop_assert_eq!(
                state == Some(AgentState::OnCall),
                connected,
                "agent {}",
                agent
            );
        }
        for (call, queue) in &self.queued {
            let held = self.held.get(call).is_some_and(|until| *until > self.now);
            if self.ringing.contains_key(call) || self.dialing.contains(call) || held {
                continue;
            }
            for agent in AGENTS {
                let could_take = membership(agent).contains(&queue.as_str())
                    && self.acd.agent_state(agent) == Some(AgentState::Available)
                    && !self.in_retry_delay(call, agent);
                prop_assert!(!could_take, "{} waits while {} is available", call, agent);
            }
        }
        for queue in &QUEUES[..2] {
            let expected = self
                .queued
                .iter()
                .filter(|(call, q)| q == queue && !self.dialing.contains(*call))
                .count();
            prop_assert_eq!(self.acd.queue_length(queue), Some(expected));
        }
        Ok(())
    }

    fn in_retry_delay(&self, call: &str, agent: &str) -> bool {
        self.no_answer
            .get(&(call.to_owned(), agent.to_owned()))
            .is_some_and(|at| *at + self.retry_delay > self.now)
    }
}

proptest! {
    #[test]
    fn random_commands_keep_invariants(
        timings in timings(),
        commands in prop::collection::vec(command(), 1..80),
    ) {
        let mut model = Model::new(&timings);
        for command in &commands {
            model.run(command)?;
        }

        // With no agent answering, every call must leave by max wait at the
        // latest, except callback requests, which wait until served.
        model.run(&Command::Advance { millis: timings.max_wait.as_millis() as u64 + 1 })?;
        let pending: Vec<&String> = model
            .queued
            .keys()
            .filter(|call| !model.callbacks.contains(*call))
            .collect();
        prop_assert!(pending.is_empty(), "calls still queued: {:?}", pending);
        prop_assert!(model
            .ringing
            .keys()
            .all(|call| model.callbacks.contains(call)));
        prop_assert_eq!(model.entered, model.left + model.queued.len());
    }
}
