//! Searching calls with `GET /api/calls` and a call's events for its
//! timeline.

use super::*;
use crate::events::NewEvent;

/// Four calls ten minutes apart: two of the own agent, one of 1002 in
/// another queue, one abandoned.
async fn calls(fixture: &Fixture) {
    let short = CallRecord {
        talk_seconds: 30.0,
        caller: "+15559990000".to_owned(),
        ..record_for("short", 0, None, OWN_AGENT)
    };
    let other = CallRecord {
        queue: Some("sales".to_owned()),
        ..record_for("other", 10, None, "1002")
    };
    let long = CallRecord {
        talk_seconds: 300.0,
        ..record_for("long", 20, None, OWN_AGENT)
    };
    let abandoned = CallRecord {
        agent: None,
        answered_at: None,
        talk_seconds: 0.0,
        disposition: Disposition::Abandoned,
        ..record_for("abandoned", 30, None, OWN_AGENT)
    };
    for record in [short, other, long, abandoned] {
        fixture.store.write(&record).await.expect("write");
    }
}

#[tokio::test]
async fn calls_are_searched_by_each_condition() {
    let fixture = fixture().await;
    calls(&fixture).await;
    let cases = [
        ("/api/calls", vec!["abandoned", "long", "other", "short"]),
        (
            "/api/calls?from=2026-12-04T09:10:00Z&to=2026-12-04T09:30:00Z",
            vec!["long", "other"],
        ),
        // An offset's + written as %2B; 10:10 there is 09:10 UTC.
        (
            "/api/calls?from=2026-12-04T10:10:00%2B01:00",
            vec!["abandoned", "long", "other"],
        ),
        ("/api/calls?queue=sales", vec!["other"]),
        ("/api/calls?agent=1001", vec!["long", "short"]),
        ("/api/calls?caller=999", vec!["short"]),
        ("/api/calls?disposition=abandoned", vec!["abandoned"]),
        ("/api/calls?min_talk_seconds=60", vec!["long", "other"]),
        ("/api/calls?max_talk_seconds=30", vec!["abandoned", "short"]),
        (
            "/api/calls?agent=1001&min_talk_seconds=31&disposition=answered",
            vec!["long"],
        ),
        // Empty fields of a search form set no condition.
        (
            "/api/calls?queue=&agent=&caller=&from=&to=&min_talk_seconds=",
            vec!["abandoned", "long", "other", "short"],
        ),
        ("/api/calls?agent=1001&limit=1&offset=1", vec!["short"]),
    ];
    for (uri, expected) in cases {
        let reply = fixture.get(Role::Qa, uri).await;
        assert_eq!(reply.status, StatusCode::OK, "{uri}");
        assert_eq!(ids(&reply), expected, "{uri}");
    }
}

#[tokio::test]
async fn an_agent_searches_only_its_own_calls() {
    let fixture = fixture().await;
    calls(&fixture).await;
    let cases = [
        ("/api/calls", vec!["long", "short"]),
        ("/api/calls?agent=1001", vec!["long", "short"]),
        ("/api/calls?agent=1002", vec![]),
        ("/api/calls?queue=sales", vec![]),
        ("/api/calls?max_talk_seconds=60", vec!["short"]),
    ];
    for (uri, expected) in cases {
        let reply = fixture.get(Role::Agent, uri).await;
        assert_eq!(reply.status, StatusCode::OK, "{uri}");
        assert_eq!(ids(&reply), expected, "{uri}");
    }
}

#[tokio::test]
async fn bad_search_conditions_name_the_parameter() {
    let fixture = fixture().await;
    let cases = [
        ("/api/calls?from=yesterday", "from must be an RFC 3339 time"),
        ("/api/calls?to=2026-12-04", "to must be an RFC 3339 time"),
        (
            "/api/calls?from=2026-12-04T10:00:00+01:00",
            "from must be an RFC 3339 time such as 2027-01-15T08:00:00Z, got \"2026-12-04T10:00:00 01:00\"; write the + of an offset as %2B",
        ),
        (
            "/api/calls?from=2026-12-04T10:00:00Z&to=2026-12-04T09:00:00Z",
            "to must be later than from",
        ),
        (
            "/api/calls?min_talk_seconds=-1",
            "min_talk_seconds must be a number of seconds from 0, got \"-1\"",
        ),
        (
            "/api/calls?max_talk_seconds=NaN",
            "max_talk_seconds must be a number of seconds from 0",
        ),
        (
            "/api/calls?min_talk_seconds=60&max_talk_seconds=30",
            "max_talk_seconds (30) is less than min_talk_seconds (60)",
        ),
        (
            "/api/calls?min_csat=0",
            "min_csat must be a survey score from 1 to 5, got \"0\"",
        ),
        (
            "/api/calls?max_csat=4.5",
            "max_csat must be a survey score from 1 to 5, got \"4.5\"",
        ),
        (
            "/api/calls?min_csat=5&max_csat=4",
            "max_csat (4) is less than min_csat (5)",
        ),
    ];
    for (uri, expected) in cases {
        let reply = fixture.get(Role::Supervisor, uri).await;
        let detail = reply.problem(StatusCode::BAD_REQUEST);
        assert!(detail.starts_with(expected), "{uri}: {detail}");
    }
}

fn call_event(kind: &'static str, agent: Option<&str>, at_ms: i64) -> NewEvent {
    NewEvent {
        at_ms,
        kind,
        call: Some("call-1".to_owned()),
        queue: Some("general".to_owned()),
        agent: agent.map(str::to_owned),
        data: serde_json::json!({}),
    }
}

#[tokio::test]
async fn a_call_lists_its_events_for_the_timeline() {
    let fixture = fixture().await;
    fixture
        .store
        .write(&record("call-1", 0, None))
        .await
        .expect("write");
    let start = 1_796_374_800_000;
    fixture
        .commit(vec![
            call_event("call_enqueued", None, start),
            call_event("offer_started", Some("1002"), start + 100),
            call_event("offer_timed_out", Some("1002"), start + 15_100),
            call_event("offer_started", Some(OWN_AGENT), start + 15_200),
            call_event("offer_answered", Some(OWN_AGENT), start + 19_000),
            NewEvent {
                call: Some("call-2".to_owned()),
                ..call_event("call_enqueued", None, start + 20_000)
            },
        ])
        .await;
    let kinds = |reply: &Reply| -> Vec<String> {
        reply
            .json()
            .as_array()
            .expect("array")
            .iter()
            .map(|event| event["kind"].as_str().expect("kind").to_owned())
            .collect()
    };
    let reply = fixture.get(Role::Qa, "/api/calls/call-1/events").await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(
        kinds(&reply),
        [
            "call_enqueued",
            "offer_started",
            "offer_timed_out",
            "offer_started",
            "offer_answered"
        ]
    );
    assert_eq!(reply.json()[1]["at"], "2026-12-04T09:00:00.1Z");
    // The agent who answered sees its call without the other agent's offer.
    let reply = fixture.get(Role::Agent, "/api/calls/call-1/events").await;
    assert_eq!(
        kinds(&reply),
        ["call_enqueued", "offer_started", "offer_answered"]
    );
    let reply = fixture.get(Role::Qa, "/api/calls/unknown/events").await;
    reply.problem(StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn an_agent_gets_404_for_another_agents_call_events() {
    let fixture = fixture().await;
    let other = record_for("other", 0, None, "1002");
    fixture.store.write(&other).await.expect("write");
    let reply = fixture.get(Role::Agent, "/api/calls/other/events").await;
    assert_eq!(
        reply.problem(StatusCode::NOT_FOUND),
        "call \"other\" not found"
    );
}

#[tokio::test]
async fn calls_are_searched_by_survey_score() {
    let fixture = fixture().await;
    let scored = |id: &str, minute: u8, score: Option<u8>| CallRecord {
        hold_count: 1,
        hold_seconds: 12.5,
        survey: Some(match score {
            Some(_) => cdr::SurveyStatus::Answered,
            None => cdr::SurveyStatus::TimedOut,
        }),
        csat_score: score,
        ..record_for(id, minute, None, OWN_AGENT)
    };
    let records = [
        scored("poor", 0, Some(2)),
        scored("good", 10, Some(4)),
        scored("best", 20, Some(5)),
        scored("silent", 30, None),
        record_for("none", 40, None, OWN_AGENT),
    ];
    for record in &records {
        fixture.store.write(record).await.expect("write");
    }
    let cases = [
        ("/api/calls?min_csat=4", vec!["best", "good"]),
        ("/api/calls?max_csat=3", vec!["poor"]),
        ("/api/calls?min_csat=4&max_csat=4", vec!["good"]),
        (
            "/api/calls?min_csat=",
            vec!["none", "silent", "best", "good", "poor"],
        ),
    ];
    for (uri, expected) in cases {
        let reply = fixture.get(Role::Qa, uri).await;
        assert_eq!(reply.status, StatusCode::OK, "{uri}");
        assert_eq!(ids(&reply), expected, "{uri}");
    }
    let reply = fixture.get(Role::Qa, "/api/calls/good").await;
    let call = reply.json();
    assert_eq!(call["csat_score"], 4);
    assert_eq!(call["survey"], "answered");
    assert_eq!(call["hold_count"], 1);
    assert_eq!(call["hold_seconds"], 12.5);
    let reply = fixture.get(Role::Qa, "/api/calls/silent").await;
    assert_eq!(reply.json()["survey"], "timed_out");
    assert_eq!(reply.json()["csat_score"], serde_json::Value::Null);
}
