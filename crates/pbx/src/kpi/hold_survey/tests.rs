//! Hold, handle time and CSAT figures of three answered calls, checked
//! against values worked out by hand.

use std::time::Duration;

use acd::{AgentState, Party, QueueEvent, SurveyOutcome};

use super::super::intervals::{Calendar, Grouping, Interval, ReportRequest, compute_intervals};
use super::super::tests::{Script, range, stored};
use super::super::{QueueKpi, compute};
use super::HoldSurvey;

fn held(s: &mut Script, seconds: f64, call: &str, agent: &str, by: Party) {
    s.at(seconds, |at| QueueEvent::CallHeld {
        call: call.into(),
        queue: "general".into(),
        agent: agent.into(),
        by,
        at,
    });
}

fn resumed(s: &mut Script, seconds: f64, call: &str, agent: &str, by: Party, held: f64) {
    s.at(seconds, |at| QueueEvent::CallResumed {
        call: call.into(),
        queue: "general".into(),
        agent: agent.into(),
        by,
        held: Duration::from_secs_f64(held),
        at,
    });
}

fn survey(
    s: &mut Script,
    offered: f64,
    ended: f64,
    call: &str,
    agent: &str,
    outcome: SurveyOutcome,
) {
    s.at(offered, |at| QueueEvent::SurveyOffered {
        call: call.into(),
        queue: "general".into(),
        agent: agent.into(),
        at,
    });
    s.at(ended, |at| QueueEvent::SurveyFinished {
        call: call.into(),
        queue: "general".into(),
        agent: agent.into(),
        outcome,
        at,
    });
}

/// H: 1001 holds 20 s of a 100 s call, wraps up 10 s, survey 5.
/// J: 1002 talks 60 s without hold or wrap-up, survey 3.
/// K: the caller holds the last 30 s of 1001's 38 s call, which ends on
/// hold; the survey times out.
fn script() -> Script {
    use AgentState::{Available, OnCall, WrapUp};
    let mut s = Script::new();
    s.enqueue(0.0, "H", "general");
    s.answer(10.0, "H", "general", "1001", 10.0);
    held(&mut s, 30.0, "H", "1001", Party::Agent);
    resumed(&mut s, 50.0, "H", "1001", Party::Agent, 20.0);
    s.complete(110.0, "H", "general", "1001", 100.0);
    s.state(110.0, "1001", OnCall, WrapUp);
    s.state(120.0, "1001", WrapUp, Available);
    survey(
        &mut s,
        110.0,
        118.0,
        "H",
        "1001",
        SurveyOutcome::Answered(5),
    );

    s.enqueue(200.0, "J", "general");
    s.answer(205.0, "J", "general", "1002", 5.0);
    s.complete(265.0, "J", "general", "1002", 60.0);
    s.state(265.0, "1002", OnCall, Available);
    survey(
        &mut s,
        265.0,
        270.0,
        "J",
        "1002",
        SurveyOutcome::Answered(3),
    );

    s.enqueue(300.0, "K", "general");
    s.answer(302.0, "K", "general", "1001", 2.0);
    held(&mut s, 310.0, "K", "1001", Party::Caller);
    resumed(&mut s, 340.0, "K", "1001", Party::Caller, 30.0);
    s.complete(340.0, "K", "general", "1001", 38.0);
    s.state(340.0, "1001", OnCall, Available);
    survey(&mut s, 340.0, 360.0, "K", "1001", SurveyOutcome::TimedOut);
    s
}

#[tokio::test]
async fn queue_figures_split_hold_from_talk() {
    let (_dir, store) = stored(&script()).await;
    let (from, to) = range();
    let events = store.report_events(from, to).await.unwrap();
    let report = compute(&events, from, to);
    let expected = QueueKpi {
        queue: "general".into(),
        offered: 3,
        answered: 3,
        abandon_percent: Some(0.0),
        average_speed_of_answer_seconds: Some(5.667),
        // Talk less hold: 80, 60 and 8 s.
        average_talk_seconds: Some(49.333),
        average_wrap_up_seconds: Some(3.333),
        // Talk plus hold plus wrap-up: 110, 60 and 38 s.
        average_handle_seconds: Some(69.333),
        service_level_20_percent: Some(100.0),
        service_level_30_percent: Some(100.0),
        longest_wait_seconds: Some(10.0),
        hold_survey: HoldSurvey {
            hold_seconds: 50.0,
            average_hold_seconds: Some(16.667),
            surveys_offered: 3,
            surveys_answered: 2,
            // One of the two answers (5 and 3) is 4 or 5.
            csat_percent: Some(50.0),
        },
        ..QueueKpi::default()
    };
    assert_eq!(report, vec![expected]);
}

#[tokio::test]
async fn agent_rows_give_hold_and_csat() {
    let (_dir, store) = stored(&script()).await;
    let (from, to) = range();
    let events = store.report_events(from, to).await.unwrap();
    let request = ReportRequest {
        from_ms: from,
        to_ms: to,
        now_ms: to,
        calendar: Calendar {
            interval: Interval::Minutes60,
            time_zone: jiff::tz::TimeZone::UTC,
        },
        grouping: Grouping::Agent,
        first_contact_window_ms: 0,
    };
    let report = compute_intervals(&[], &events, &[], &request);
    let agents: Vec<(&str, &HoldSurvey)> = report
        .agents
        .iter()
        .map(|row| (row.agent.as_str(), &row.hold_survey))
        .collect();
    let agent_1001 = HoldSurvey {
        hold_seconds: 50.0,
        average_hold_seconds: Some(25.0),
        surveys_offered: 2,
        surveys_answered: 1,
        csat_percent: Some(100.0),
    };
    let agent_1002 = HoldSurvey {
        hold_seconds: 0.0,
        average_hold_seconds: Some(0.0),
        surveys_offered: 1,
        surveys_answered: 1,
        csat_percent: Some(0.0),
    };
    assert_eq!(agents, vec![("1001", &agent_1001), ("1002", &agent_1002)]);
    let talk_1001 = report.agents[0].average_talk_seconds;
    assert_eq!(talk_1001, Some(44.0), "80 and 8 s of talk without hold");
}
