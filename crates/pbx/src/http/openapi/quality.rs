//! The scorecard and interval report parts of the document, apart from
//! the rest because one `json!` call with every path would pass the
//! macro's recursion limit.

use serde_json::{Value, json};

use super::{
    array_of, created, ok, operation, paging, path_parameter, queue_kpi, schema_ref, with_body,
    with_parameters,
};

pub(super) fn paths() -> Value {
    let call_id = || vec![path_parameter("id", "Product call id", "string")];
    json!({
        "/api/calls/{id}/scorecards": {
            "get": with_parameters(operation(
                "A call's QA scorecards, oldest first",
                "Like the call itself: an agent reads the scorecards of the calls it answered and \
                 gets 404 for another agent's call.",
                ok("Scorecards", array_of("Scorecard")),
                &[401, 403, 404, 500],
            ), call_id()),
            "post": with_parameters(with_body(operation(
                "Save a QA scorecard of a call",
                "QA, supervisors and administrators; the reviewer is the logged-in user. Every \
                 configured criterion needs one whole score from 0 to max_score. The total is the \
                 weighted mean of score / max_score in percent, rounded to two decimals. A saved \
                 scorecard never changes: saving again adds one. Each save is written to the \
                 audit log as scorecard.save with the call id, before the scorecard itself. 400 \
                 for an unknown, repeated or missing criterion, a score above max_score or a \
                 comment that is too long or holds a control character; 409 when no criteria \
                 are configured or no agent answered the call.",
                created("The saved scorecard", schema_ref("Scorecard")),
                &[400, 401, 403, 404, 409, 415, 422, 500],
            ), "ScorecardSubmission"), call_id()),
        },
        "/api/scorecards": {
            "get": with_parameters(operation(
                "Search scored calls by total",
                "Any role; an agent gets the scorecards of its own calls only. Newest first.",
                ok("Scorecards", array_of("Scorecard")),
                &[400, 401, 403, 500],
            ), search_parameters()),
        },
        "/api/scorecards/criteria": {
            "get": operation(
                "The scorecard criteria in force",
                "Any role. A configuration reload replaces them; saved scorecards keep theirs.",
                ok("Criteria", schema_ref("ScorecardCriteria")),
                &[401, 503],
            ),
        },
        "/api/reports/intervals": {
            "get": with_parameters(operation(
                "Report rows per interval and per queue or agent",
                "Administrators, supervisors and QA. Intervals of 15, 30 or 60 minutes or days \
                 on the clock of the time zone tz, or of [reports] time_zone (UTC by default): a \
                 day runs from local midnight to local midnight, so a day with a clock change \
                 has 23 or 25 hours. Row times carry the zone's offset. A call counts in the \
                 interval in which it entered a queue; its outcome may come later. Queue and \
                 agent figures come from the stored events, first-contact resolution from the \
                 call records. JSON by default; CSV with format=csv or, without format, with \
                 Accept: text/csv. 400 for a bad time, interval, by, format or tz, for a range \
                 over 366 days, or for more than 2976 intervals.",
                json!({ "200": { "description": "Report rows", "content": {
                    "application/json": { "schema": schema_ref("IntervalReport") },
                    "text/csv": { "schema": { "type": "string" },
                                  "description": "one header line, then one line per row" },
                } } }),
                &[400, 401, 403, 500, 503],
            ), interval_parameters()),
        },
    })
}

fn search_parameters() -> Vec<Value> {
    let percent = |name: &str, description: &str| {
        json!({ "name": name, "in": "query", "description": description,
                "schema": { "type": "number", "minimum": 0, "maximum": 100 } })
    };
    let text = |name: &str, description: &str| json!({ "name": name, "in": "query", "description": description, "schema": { "type": "string" } });
    let mut parameters = vec![
        percent(
            "min_total",
            "Only scorecards with a total of at least this percentage",
        ),
        percent(
            "max_total",
            "Only scorecards with a total of at most this percentage",
        ),
        text("agent", "Only calls this agent answered"),
        text("reviewer", "Only scorecards saved by this username"),
    ];
    parameters.extend(paging(500, 50));
    parameters
}

fn interval_parameters() -> Vec<Value> {
    let time = |name: &str, description: &str| {
        json!({ "name": name, "in": "query", "required": true, "description": description,
                "schema": { "type": "string", "format": "date-time" } })
    };
    let choice = |name: &str, description: &str, values: Value, default: &str| {
        json!({ "name": name, "in": "query", "description": description,
                "schema": { "enum": values, "default": default } })
    };
    vec![
        time(
            "from",
            "Start of the range, RFC 3339 (a + in an offset written as %2B), or a local time \
             without offset such as 2027-03-28T00:00, read on the clock of tz",
        ),
        time("to", "End of the range, excluded, written like from"),
        json!({ "name": "tz", "in": "query",
                "description": "IANA time zone of the intervals, such as Europe/Madrid; \
                                default: [reports] time_zone",
                "schema": { "type": "string" } }),
        choice(
            "interval",
            "Interval length in minutes, or a day",
            json!(["15", "30", "60", "day"]),
            "60",
        ),
        choice(
            "by",
            "Rows per queue or per agent",
            json!(["queue", "agent"]),
            "queue",
        ),
        choice("format", "Response format", json!(["json", "csv"]), "json"),
    ]
}

pub(super) fn schemas() -> Value {
    let text = json!({ "type": "string" });
    let count = json!({ "type": "integer", "minimum": 0 });
    json!({
        "ScorecardCriteria": {
            "type": "object",
            "required": ["max_score", "criteria"],
            "properties": {
                "max_score": { "type": "integer", "minimum": 1 },
                "criteria": { "type": "array", "items": {
                    "type": "object",
                    "required": ["id", "label", "weight"],
                    "properties": { "id": text, "label": text, "weight": { "type": "integer", "minimum": 1 } },
                } },
            },
        },
        "ScorecardSubmission": {
            "type": "object",
            "required": ["scores"],
            "additionalProperties": false,
            "properties": {
                "scores": { "type": "array", "items": {
                    "type": "object",
                    "required": ["criterion", "score"],
                    "additionalProperties": false,
                    "properties": {
                        "criterion": text,
                        "score": count,
                        "comment": { "type": "string", "maxLength": 1000 },
                    },
                } },
                "comments": { "type": "string", "maxLength": 4000 },
            },
        },
        "Scorecard": {
            "type": "object",
            "required": ["id", "call_id", "agent", "reviewer_id", "reviewer", "at", "comments",
                         "total_percent", "scores"],
            "properties": {
                "id": { "type": "integer" },
                "call_id": text,
                "agent": { "type": ["string", "null"], "description": "the agent who answered the call" },
                "reviewer_id": { "type": "integer" },
                "reviewer": { "type": "string", "description": "username when it was saved" },
                "at": { "type": "string", "format": "date-time" },
                "comments": text,
                "total_percent": { "type": "number", "minimum": 0, "maximum": 100 },
                "scores": { "type": "array", "items": {
                    "type": "object",
                    "required": ["criterion", "label", "weight", "score", "max_score", "comment"],
                    "description": "the criterion as it was when the scorecard was saved",
                    "properties": {
                        "criterion": text, "label": text, "weight": count, "score": count,
                        "max_score": count, "comment": text,
                    },
                } },
            },
        },
        "IntervalReport": interval_report(),
        "QueueIntervalRow": queue_row(),
        "AgentIntervalRow": agent_row(),
    })
}

fn interval_report() -> Value {
    json!({
        "type": "object",
        "required": ["from", "to", "interval", "by", "time_zone", "first_contact_window_hours", "rows", "unavailable"],
        "properties": {
            "from": { "type": "string", "format": "date-time" },
            "to": { "type": "string", "format": "date-time" },
            "time_zone": { "type": "string", "description": "IANA name of the intervals' zone" },
            "interval": { "enum": ["15", "30", "60", "day"] },
            "by": { "enum": ["queue", "agent"] },
            "first_contact_window_hours": { "type": "integer" },
            "rows": { "type": "array", "items": { "oneOf": [
                schema_ref("QueueIntervalRow"), schema_ref("AgentIntervalRow"),
            ] }, "description": "by interval start, then by name; only pairs with data" },
            "unavailable": { "type": "array", "items": {
                "type": "object",
                "required": ["figure", "reason"],
                "properties": { "figure": { "type": "string" }, "reason": { "type": "string" } },
            }, "description": "figures the stored data cannot give, with the reason" },
        },
    })
}

fn first_contact_properties() -> Value {
    json!({
        "first_contact_calls": { "type": "integer",
            "description": "answered calls with a caller number whose first-contact window has passed" },
        "first_contact_resolution_percent": { "type": ["number", "null"],
            "description": "share of those calls with no later call from the same number to the same DID within the window" },
    })
}

fn queue_row() -> Value {
    let mut row = queue_kpi();
    if let Some(Value::Object(properties)) = row.get_mut("properties") {
        properties.insert(
            "start".into(),
            json!({ "type": "string", "format": "date-time" }),
        );
        properties.insert(
            "end".into(),
            json!({ "type": "string", "format": "date-time" }),
        );
        if let Value::Object(more) = first_contact_properties() {
            properties.extend(more);
        }
    }
    if let Some(Value::Array(required)) = row.get_mut("required") {
        for name in [
            "start",
            "end",
            "first_contact_calls",
            "first_contact_resolution_percent",
        ] {
            required.push(json!(name));
        }
    }
    row
}

fn agent_row() -> Value {
    let number =
        |description: &str| json!({ "type": ["number", "null"], "description": description });
    let mut row = json!({
        "type": "object",
        "required": ["start", "end", "agent", "offered", "answered", "average_speed_of_answer_seconds",
                     "average_talk_seconds", "average_wrap_up_seconds", "average_handle_seconds",
                     "first_contact_calls", "first_contact_resolution_percent", "occupancy_percent",
                     "shifts", "calls_per_shift"],
        "properties": {
            "start": { "type": "string", "format": "date-time" },
            "end": { "type": "string", "format": "date-time" },
            "agent": { "type": "string" },
            "offered": { "type": "integer", "description": "offers to the agent; a call rung twice counts twice" },
            "answered": { "type": "integer" },
            "average_speed_of_answer_seconds": number("mean wait of the calls the agent answered"),
            "average_talk_seconds": number("mean talk time of those calls that ended, without their hold time"),
            "average_wrap_up_seconds": number("mean wrap-up after them, where it has ended"),
            "average_handle_seconds": number("mean talk plus hold plus wrap-up"),
            "occupancy_percent": number("time ringing, on a call or in wrap-up over that time plus time available"),
            "shifts": { "type": "integer", "description": "login spans that overlap the interval" },
            "calls_per_shift": number("answered divided by shifts"),
        },
    });
    if let (Some(Value::Object(properties)), Value::Object(more)) =
        (row.get_mut("properties"), first_contact_properties())
    {
        properties.extend(more);
    }
    add_hold_survey(&mut row);
    row
}

/// Adds the hold and survey figures to the schema of a report row.
pub(super) fn add_hold_survey(row: &mut Value) {
    let more = json!({
        "hold_seconds": { "type": "number",
            "description": "time on hold of the answered calls that ended, summed" },
        "average_hold_seconds": { "type": ["number", "null"],
            "description": "mean time on hold of those calls" },
        "surveys_offered": { "type": "integer",
            "description": "answered calls whose caller heard the post-call survey" },
        "surveys_answered": { "type": "integer", "description": "surveys with a score" },
        "csat_percent": { "type": ["number", "null"],
            "description": "share of the answered surveys scored 4 or 5" },
    });
    let Value::Object(more) = more else { return };
    if let Some(Value::Array(required)) = row.get_mut("required") {
        required.extend(more.keys().map(|name| json!(name)));
    }
    if let Some(Value::Object(properties)) = row.get_mut("properties") {
        properties.extend(more);
    }
}
