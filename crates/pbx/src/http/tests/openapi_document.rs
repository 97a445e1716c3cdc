//! The OpenAPI document against the router.

use std::collections::BTreeSet;

use super::*;

/// Every `$ref` in `value`, recursively.
fn references(value: &serde_json::Value, found: &mut Vec<String>) {
    match value {
        serde_json::Value::Object(map) => {
            if let Some(serde_json::Value::String(target)) = map.get("$ref") {
                found.push(target.clone());
            }
            map.values().for_each(|child| references(child, found));
        }
        serde_json::Value::Array(items) => items.iter().for_each(|child| references(child, found)),
        _ => {}
    }
}

#[test]
fn openapi_matches_routes() {
    let document = openapi::document();
    let paths = document["paths"].as_object().expect("paths object");
    let mut documented = BTreeSet::new();
    for (path, item) in paths {
        for method in item.as_object().expect("path item object").keys() {
            documented.insert((path.clone(), method.clone()));
        }
    }
    let routed: BTreeSet<(String, String)> = routes()
        .table
        .into_iter()
        .map(|(path, verb)| (path.to_owned(), verb.as_str().to_owned()))
        .collect();
    let undocumented: Vec<_> = routed.difference(&documented).collect();
    let unrouted: Vec<_> = documented.difference(&routed).collect();
    assert!(
        undocumented.is_empty(),
        "routes missing from the document: {undocumented:?}"
    );
    assert!(
        unrouted.is_empty(),
        "documented paths without a route: {unrouted:?}"
    );
}

#[test]
fn openapi_references_resolve() {
    let document = openapi::document();
    assert_eq!(document["openapi"], "3.1.0");
    let mut found = Vec::new();
    references(&document, &mut found);
    assert!(!found.is_empty());
    for target in found {
        let pointer = target.strip_prefix('#').expect("local reference");
        assert!(document.pointer(pointer).is_some(), "unresolved {target}");
    }
}

#[test]
fn openapi_path_parameters_declared() {
    let document = openapi::document();
    for (path, item) in document["paths"].as_object().expect("paths") {
        let names: Vec<&str> = path
            .split('/')
            .filter_map(|segment| segment.strip_prefix('{')?.strip_suffix('}'))
            .collect();
        for (method, operation) in item.as_object().expect("path item") {
            let declared: Vec<&str> = operation["parameters"]
                .as_array()
                .map(|parameters| {
                    parameters
                        .iter()
                        .filter(|p| p["in"] == "path")
                        .filter_map(|p| p["name"].as_str())
                        .collect()
                })
                .unwrap_or_default();
            assert_eq!(declared, names, "{method} {path}");
            assert!(operation["responses"].is_object(), "{method} {path}");
        }
    }
}

#[tokio::test]
async fn openapi_served_publicly() {
    let fixture = fixture().await;
    let reply = fixture
        .call(None, Method::GET, "/api/openapi.json", None)
        .await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(reply.content_type(), "application/json");
    assert_eq!(reply.json(), openapi::document());
}

/// Checks that every key of `value` is a property of the schema `name`.
fn assert_documented(name: &str, value: &serde_json::Value) {
    let document = openapi::document();
    let schema = &document["components"]["schemas"][name];
    let properties = schema["properties"].as_object().expect("properties");
    for key in value.as_object().expect("an object").keys() {
        assert!(properties.contains_key(key), "{name} lacks {key}");
    }
}

#[test]
fn openapi_lists_every_call_record_field() {
    let mut record = record("call-1", 0, None);
    record.survey = Some(cdr::SurveyStatus::Answered);
    record.csat_score = Some(4);
    let value = serde_json::to_value(&record).expect("record serializes");
    assert_documented("CallRecord", &value);
}

#[test]
fn openapi_lists_every_report_figure() {
    let kpi = serde_json::to_value(crate::kpi::QueueKpi::default()).expect("serializes");
    assert_documented("QueueKpi", &kpi);
    let required = openapi::document()["components"]["schemas"]["QueueKpi"]["required"].clone();
    for figure in ["hold_seconds", "csat_percent", "surveys_answered"] {
        assert!(
            required
                .as_array()
                .expect("required")
                .contains(&figure.into()),
            "{figure} is not required"
        );
    }
}

#[test]
fn openapi_user_bodies_reject_unknown_fields() {
    let document = openapi::document();
    let schemas = &document["components"]["schemas"];
    for name in [
        "CreateUserRequest",
        "UpdateUserRequest",
        "PasswordRequest",
        "CreateTokenRequest",
    ] {
        assert_eq!(
            schemas[name]["additionalProperties"],
            serde_json::Value::Bool(false),
            "{name}"
        );
    }
}

#[test]
fn openapi_body_errors_listed() {
    let document = openapi::document();
    let responses = &document["paths"]["/api/agents/{id}/skills"]["put"]["responses"];
    for status in ["400", "413", "415", "422"] {
        assert!(responses.get(status).is_some(), "{status} missing");
    }
}
