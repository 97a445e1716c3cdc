//! Every agent state change the ACD makes reaches the driver in a
//! `QueueLog` command, which the driver stores. The cases are wrap-up with
//! its codes, not ready with a reason, the automatic not-ready after
//! unanswered offers, logins, and the registrar's results.

use acd::{AgentState, QueueEvent};

use super::*;

/// Takes the events of the `QueueLog` commands collected so far, in order.
fn stored_events(h: &mut Harness) -> Vec<QueueEvent> {
    let mut events = Vec::new();
    h.commands.retain(|command| match command {
        Command::QueueLog { events: batch, .. } => {
            events.extend(batch.iter().map(|stamped| stamped.event.clone()));
            false
        }
        _ => true,
    });
    events
}

fn changed(events: &[QueueEvent], agent: &str, from: AgentState, to: AgentState) -> bool {
    events.iter().any(|event| {
        matches!(
            event,
            QueueEvent::AgentStateChanged { agent: a, from: f, to: t, .. }
                if a == agent && *f == from && *t == to
        )
    })
}

fn reachability(events: &[QueueEvent]) -> Vec<(bool, Option<String>)> {
    events
        .iter()
        .filter_map(|event| match event {
            QueueEvent::AgentReachability {
                reachable, cause, ..
            } => Some((*reachable, cause.clone())),
            _ => None,
        })
        .collect()
}

fn wrap_up_config() -> CoreConfig {
    let mut config = config();
    config.queues[0].wrap_up = Duration::from_secs(60);
    config
}

#[test]
fn wrap_up_start_code_and_end_are_stored() {
    let mut h = Harness::with_config(wrap_up_config());
    let (call, _invite) = answered_call(&mut h);
    let early = h.core.set_agent_wrap_up_code("1001", "resolved", h.now);
    assert!(
        matches!(early, Err(AgentCommandError::Rejected { .. })),
        "a code before the wrap-up is refused"
    );
    // The message names the agent once.
    assert_eq!(
        early.unwrap_err().to_string(),
        "agent \"1001\" is not in wrap-up"
    );
    stored_events(&mut h);

    let tag = caller_tag(&h, &call);
    h.receive(&caller_bye(&tag), CALLER);
    let ended = stored_events(&mut h);
    assert!(
        changed(&ended, "1001", AgentState::OnCall, AgentState::WrapUp),
        "{ended:?}"
    );

    h.core
        .set_agent_wrap_up_code("1001", "resolved", h.now)
        .unwrap();
    h.collect();
    let coded = stored_events(&mut h);
    assert!(
        coded.iter().any(|event| matches!(
            event,
            QueueEvent::WrapUpCodeSet { agent, call: c, code, .. }
                if agent == "1001" && *c == call && code == "resolved"
        )),
        "{coded:?}"
    );

    h.core
        .set_agent_readiness("1001", Readiness::Ready, h.now)
        .unwrap();
    h.collect();
    let ended = stored_events(&mut h);
    assert!(
        changed(&ended, "1001", AgentState::WrapUp, AgentState::Available),
        "{ended:?}"
    );
}

#[test]
fn wrap_up_maximum_end_is_stored() {
    let mut h = Harness::with_config(wrap_up_config());
    let (call, _invite) = answered_call(&mut h);
    let tag = caller_tag(&h, &call);
    h.receive(&caller_bye(&tag), CALLER);
    stored_events(&mut h);

    h.advance(Duration::from_secs(60));
    let events = stored_events(&mut h);
    assert!(
        changed(&events, "1001", AgentState::WrapUp, AgentState::Available),
        "{events:?}"
    );
}

#[test]
fn not_ready_reason_is_stored() {
    let mut h = Harness::new();
    assert_eq!(h.register("1001", "pw-one", AGENT_1).status, 200);
    stored_events(&mut h);
    let not_ready = Readiness::NotReady {
        reason: "training".into(),
    };
    h.core
        .set_agent_readiness("1001", not_ready, h.now)
        .unwrap();
    h.collect();
    let events = stored_events(&mut h);
    assert!(
        changed(&events, "1001", AgentState::Available, AgentState::NotReady),
        "{events:?}"
    );
    assert!(
        events.iter().any(|event| matches!(
            event,
            QueueEvent::AgentNotReady { agent, reason, queues, .. }
                if agent == "1001" && reason == "training" && queues == &["general"]
        )),
        "{events:?}"
    );
}

#[test]
fn automatic_not_ready_after_no_answer_is_stored() {
    let mut config = config();
    config.queues[0].max_no_answer = 1;
    config
        .queue_agents
        .insert("general".into(), vec!["1001".into()]);
    let mut h = Harness::with_config(config);
    assert_eq!(h.register("1001", "pw-one", AGENT_1).status, 200);
    h.caller_invite("5000", CALLER);
    h.open_media();
    stored_events(&mut h);

    // The offer rings out after the queue's 10 s ring timeout.
    h.advance(Duration::from_secs(10));
    let events = stored_events(&mut h);
    assert!(
        events.iter().any(
            |event| matches!(event, QueueEvent::OfferTimedOut { agent, .. } if agent == "1001")
        ),
        "{events:?}"
    );
    assert!(
        changed(&events, "1001", AgentState::Available, AgentState::NotReady),
        "{events:?}"
    );
    assert!(
        events.iter().any(|event| matches!(
            event,
            QueueEvent::AgentNotReady { agent, reason, .. }
                if agent == "1001" && reason == acd::NO_ANSWER_REASON
        )),
        "{events:?}"
    );
}

#[test]
fn logout_during_call_is_stored_at_once() {
    let mut h = Harness::new();
    answered_call(&mut h);
    stored_events(&mut h);
    h.core.set_agent_logged_in("1001", false, h.now).unwrap();
    h.collect();
    let events = stored_events(&mut h);
    assert!(
        matches!(
            events.as_slice(),
            [QueueEvent::AgentLogin { agent, logged_in: false, .. }] if agent == "1001"
        ),
        "{events:?}"
    );
}

#[test]
fn registration_and_qualify_are_stored_with_cause() {
    let mut config = config();
    config.registrar.qualify_interval = Some(Duration::from_secs(30));
    let mut h = Harness::with_config(config);
    stored_events(&mut h);

    assert_eq!(h.register("1001", "pw-one", AGENT_1).status, 200);
    let registered = stored_events(&mut h);
    assert_eq!(
        reachability(&registered),
        [(true, Some("registration".to_owned()))]
    );
    assert!(
        changed(
            &registered,
            "1001",
            AgentState::Unreachable,
            AgentState::Available
        ),
        "{registered:?}"
    );

    // The probe at 30 s goes unanswered for the 5 s qualify timeout.
    h.advance(Duration::from_secs(36));
    let silent = stored_events(&mut h);
    assert_eq!(reachability(&silent), [(false, Some("qualify".to_owned()))]);
    assert!(
        changed(
            &silent,
            "1001",
            AgentState::Available,
            AgentState::Unreachable
        ),
        "{silent:?}"
    );

    // The next probe is answered.
    h.advance(Duration::from_secs(30));
    let probe = h
        .requests_to(AGENT_1)
        .into_iter()
        .filter(|r| r.method == Method::Options)
        .last()
        .expect("second probe");
    let ok = Response::for_request(&probe, 200, None);
    h.receive(std::str::from_utf8(&ok.to_bytes()).unwrap(), AGENT_1);
    let answered = stored_events(&mut h);
    assert_eq!(
        reachability(&answered),
        [(true, Some("qualify".to_owned()))]
    );
}

#[test]
fn registration_expiry_is_stored_with_cause() {
    let mut h = Harness::new();
    assert_eq!(h.register("1001", "pw-one", AGENT_1).status, 200);
    stored_events(&mut h);
    // The harness registers for 600 s and never refreshes.
    h.advance(Duration::from_secs(600));
    let expired = stored_events(&mut h);
    assert_eq!(reachability(&expired), [(false, Some("expiry".to_owned()))]);
    assert!(
        changed(
            &expired,
            "1001",
            AgentState::Available,
            AgentState::Unreachable
        ),
        "{expired:?}"
    );
}
