//! QA scorecards through the API: saving, reading by role, the audit
//! entry, invalid submissions, the search by total and reloaded criteria.
//! `access` covers the allowed and denied roles of every route.

use serde_json::json;

use super::*;

/// Greeting 5 of 5 (weight 1) and resolution 3 of 5 (weight 3):
/// (1 * 1 + 3 * 0.6) / 4 = 70 %.
fn submission() -> serde_json::Value {
    json!({ "scores": [
        { "criterion": "resolution", "score": 3, "comment": "missed a step" },
        { "criterion": "greeting", "score": 5 },
    ], "comments": "polite, but no follow-up" })
}

/// Greeting 1 of 5 and resolution 1 of 5: 20 %.
fn poor_submission() -> serde_json::Value {
    json!({ "scores": [
        { "criterion": "greeting", "score": 1 },
        { "criterion": "resolution", "score": 1 },
    ] })
}

async fn with_calls() -> Fixture {
    let fixture = fixture().await;
    for record in [
        record_for("own", 0, None, OWN_AGENT),
        record_for("other", 5, None, "1002"),
    ] {
        fixture.store.write(&record).await.expect("write");
    }
    fixture
}

async fn save(fixture: &Fixture, role: Role, call: &str, body: serde_json::Value) -> Reply {
    let uri = format!("/api/calls/{call}/scorecards");
    fixture
        .call(Some(role), Method::POST, &uri, Some(body))
        .await
}

#[tokio::test]
async fn qa_saves_a_scorecard_with_total_and_reviewer() {
    let fixture = with_calls().await;
    let reply = save(&fixture, Role::Qa, "own", submission()).await;
    assert_eq!(reply.status, StatusCode::CREATED, "{:?}", reply.json());
    let saved = reply.json();
    assert_eq!(saved["call_id"], "own");
    assert_eq!(saved["agent"], OWN_AGENT);
    assert_eq!(saved["reviewer"], "quinn");
    assert_eq!(saved["reviewer_id"], fixture.user(Role::Qa).id);
    assert_eq!(saved["at"], "2026-12-04T09:00:00Z");
    assert_eq!(saved["total_percent"], 70.0);
    assert_eq!(saved["comments"], "polite, but no follow-up");
    // Scores come back in the configured order with the criterion's label.
    assert_eq!(
        saved["scores"],
        json!([
            { "criterion": "greeting", "label": "Greeting", "weight": 1, "score": 5,
              "max_score": 5, "comment": "" },
            { "criterion": "resolution", "label": "Resolution", "weight": 3, "score": 3,
              "max_score": 5, "comment": "missed a step" },
        ])
    );

    let listed = fixture
        .get(Role::Supervisor, "/api/calls/own/scorecards")
        .await;
    assert_eq!(listed.status, StatusCode::OK);
    assert_eq!(listed.json(), json!([saved]));

    let audit = fixture.accounts.list_audit(10, 0).await.expect("audit");
    let entry = audit
        .iter()
        .find(|entry| entry.action == "scorecard.save")
        .expect("a scorecard.save entry");
    assert_eq!(entry.target.as_deref(), Some("own"));
    assert_eq!(entry.username.as_deref(), Some("quinn"));
    assert_eq!(entry.remote_address.as_deref(), Some(CLIENT));
}

#[tokio::test]
async fn second_save_keeps_first_scorecard() {
    let fixture = with_calls().await;
    save(&fixture, Role::Qa, "own", submission()).await;
    fixture.advance(time::Duration::minutes(5));
    let second = save(&fixture, Role::Supervisor, "own", poor_submission()).await;
    assert_eq!(second.status, StatusCode::CREATED);
    let listed = fixture
        .get(Role::Qa, "/api/calls/own/scorecards")
        .await
        .json();
    let totals: Vec<f64> = listed
        .as_array()
        .expect("array")
        .iter()
        .map(|card| card["total_percent"].as_f64().expect("total"))
        .collect();
    assert_eq!(totals, [70.0, 20.0]);
    assert_eq!(listed[1]["reviewer"], "sam");
    assert_eq!(listed[1]["comments"], "");
}

#[tokio::test]
async fn agent_reads_own_scorecards_only() {
    let fixture = with_calls().await;
    save(&fixture, Role::Qa, "own", submission()).await;
    save(&fixture, Role::Qa, "other", poor_submission()).await;

    let own = fixture.get(Role::Agent, "/api/calls/own/scorecards").await;
    assert_eq!(own.status, StatusCode::OK);
    assert_eq!(own.json().as_array().map(Vec::len), Some(1));
    let other = fixture
        .get(Role::Agent, "/api/calls/other/scorecards")
        .await;
    other.problem(StatusCode::NOT_FOUND);

    let found = fixture.get(Role::Agent, "/api/scorecards").await.json();
    let calls: Vec<&str> = found
        .as_array()
        .expect("array")
        .iter()
        .map(|card| card["call_id"].as_str().expect("call id"))
        .collect();
    assert_eq!(calls, ["own"]);
    let asked = fixture.get(Role::Agent, "/api/scorecards?agent=1002").await;
    assert_eq!(asked.json(), json!([]));

    let denied = save(&fixture, Role::Agent, "own", submission()).await;
    let detail = denied.problem(StatusCode::FORBIDDEN);
    assert!(
        detail.starts_with("role agent may not score calls"),
        "{detail}"
    );
}

#[tokio::test]
async fn invalid_submissions_are_rejected() {
    let fixture = with_calls().await;
    let cases = [
        (
            json!({ "scores": [{ "criterion": "greeting", "score": 5 }] }),
            "criterion \"resolution\" has no score; score every criterion",
        ),
        (
            json!({ "scores": [{ "criterion": "greeting", "score": 6 },
                               { "criterion": "resolution", "score": 1 }] }),
            "score 6 of criterion \"greeting\" is above the maximum 5",
        ),
        (
            json!({ "scores": [{ "criterion": "tone", "score": 1 }] }),
            "unknown criterion \"tone\"; the criteria are greeting, resolution",
        ),
    ];
    for (body, expected) in cases {
        let reply = save(&fixture, Role::Qa, "own", body).await;
        assert_eq!(reply.problem(StatusCode::BAD_REQUEST), expected);
    }
    let unknown_field = json!({ "scores": [], "total": 100 });
    let reply = save(&fixture, Role::Qa, "own", unknown_field).await;
    reply.problem(StatusCode::UNPROCESSABLE_ENTITY);
    let missing_call = save(&fixture, Role::Qa, "nope", submission()).await;
    missing_call.problem(StatusCode::NOT_FOUND);
    // Nothing was saved, and nothing was audited.
    let listed = fixture.get(Role::Qa, "/api/calls/own/scorecards").await;
    assert_eq!(listed.json(), json!([]));
    let audit = fixture.accounts.list_audit(10, 0).await.expect("audit");
    assert!(audit.iter().all(|entry| entry.action != "scorecard.save"));
}

#[tokio::test]
async fn search_by_total() {
    let fixture = with_calls().await;
    save(&fixture, Role::Qa, "own", submission()).await;
    save(&fixture, Role::Qa, "other", poor_submission()).await;
    let calls = |reply: Reply| -> Vec<String> {
        assert_eq!(reply.status, StatusCode::OK);
        reply
            .json()
            .as_array()
            .expect("array")
            .iter()
            .map(|card| card["call_id"].as_str().expect("call id").to_owned())
            .collect()
    };
    let high = fixture.get(Role::Qa, "/api/scorecards?min_total=50").await;
    assert_eq!(calls(high), ["own"]);
    let low = fixture.get(Role::Qa, "/api/scorecards?max_total=20").await;
    assert_eq!(calls(low), ["other"]);
    let all = fixture.get(Role::Supervisor, "/api/scorecards").await;
    assert_eq!(calls(all), ["other", "own"]);
    let by_agent = fixture.get(Role::Qa, "/api/scorecards?agent=1002").await;
    assert_eq!(calls(by_agent), ["other"]);

    let bad = fixture.get(Role::Qa, "/api/scorecards?min_total=101").await;
    assert_eq!(
        bad.problem(StatusCode::BAD_REQUEST),
        "min_total must be a percentage from 0 to 100, got \"101\""
    );
    let reversed = fixture
        .get(Role::Qa, "/api/scorecards?min_total=60&max_total=40")
        .await;
    assert_eq!(
        reversed.problem(StatusCode::BAD_REQUEST),
        "max_total (40) is less than min_total (60)"
    );
}

#[tokio::test]
async fn reloaded_criteria_apply_to_later_scorecards() {
    let fixture = with_calls().await;
    save(&fixture, Role::Qa, "own", submission()).await;
    let text = reload_config_text(&fixture.data_dir, "").replace(
        "id = \"greeting\"\nlabel = \"Greeting\"",
        "id = \"empathy\"\nlabel = \"Empathy\"",
    );
    std::fs::write(&fixture.config_path, text).expect("write config");
    let report = fixture.reloader.reload().await.expect("reloaded");
    assert!(
        report
            .applied
            .contains(&"scorecard criteria changed".to_owned()),
        "{:?}",
        report.applied
    );

    let criteria = fixture.get(Role::Agent, "/api/scorecards/criteria").await;
    assert_eq!(
        criteria.json(),
        json!({ "max_score": 5, "criteria": [
            { "id": "empathy", "label": "Empathy", "weight": 1 },
            { "id": "resolution", "label": "Resolution", "weight": 3 },
        ] })
    );
    let old_form = save(&fixture, Role::Qa, "own", submission()).await;
    assert_eq!(
        old_form.problem(StatusCode::BAD_REQUEST),
        "unknown criterion \"greeting\"; the criteria are empathy, resolution"
    );
    // The scorecard saved before keeps its criterion.
    let listed = fixture
        .get(Role::Qa, "/api/calls/own/scorecards")
        .await
        .json();
    assert_eq!(listed[0]["scores"][0]["criterion"], "greeting");
}

#[tokio::test]
async fn no_criteria_is_a_conflict() {
    let fixture = with_calls().await;
    let text = reload_config_text(&fixture.data_dir, "");
    let start = text.find("[qa]").expect("qa section");
    let end = text.find("[[agents]]").expect("agents");
    let without = format!("{}{}", &text[..start], &text[end..]);
    std::fs::write(&fixture.config_path, without).expect("write config");
    fixture.reloader.reload().await.expect("reloaded");
    let reply = save(&fixture, Role::Qa, "own", submission()).await;
    assert_eq!(
        reply.problem(StatusCode::CONFLICT),
        "no scorecard criteria are configured; add [[qa.criteria]] to the configuration"
    );
}

#[tokio::test]
async fn call_without_agent_cannot_be_scored() {
    let fixture = with_calls().await;
    let mut unanswered = record_for("unanswered", 9, None, OWN_AGENT);
    unanswered.agent = None;
    unanswered.answered_at = None;
    unanswered.disposition = cdr::Disposition::Abandoned;
    fixture.store.write(&unanswered).await.expect("write");
    let reply = save(&fixture, Role::Qa, "unanswered", submission()).await;
    assert_eq!(
        reply.problem(StatusCode::CONFLICT),
        "call unanswered was not answered by an agent, so it has nothing to score"
    );
}
