//! The administration part of the document: agents, skills and queues,
//! each a table of the configuration file in JSON form.

use serde_json::{Value, json};

use super::{
    array_of, created, no_content, ok, operation, path_parameter, schema_ref, with_body,
    with_parameters,
};

const CHANGE_NOTE: &str = "Administrators only. The definition is merged into the running \
     configuration as an administration change over the file, checked by the same validation \
     as the file, stored in the database and applied like a reload, without touching calls in \
     progress; it is audited as config.KIND.create, .update or .delete with target KIND:KEY. \
     422 with an errors member, each error with a JSON Pointer into the body, when the \
     definition is invalid; 409 when it is valid but conflicts with other definitions (a DID \
     or an overflow still names a deleted queue, an agent still holds a deleted skill) or \
     already exists. Nothing changes then.";

/// Paths of one kind: `table` as in the file, `key` the path parameter.
fn kind_paths(table: &str, noun: &str, key: &str, schema: &str) -> (String, Value, String, Value) {
    let parameter = || {
        vec![path_parameter(
            key,
            &format!("The {noun}'s {key}"),
            "string",
        )]
    };
    let list = json!({
        "get": operation(
            &format!("List {table}, file and administration changes merged"),
            "Administrators and supervisors. In configuration order: the file's, with the \
             administration changes in their place, then those added through the API.",
            ok(&format!("The {table}"), array_of(schema)),
            &[401, 403, 503],
        ),
        "post": with_body(operation(
            &format!("Create a {noun}"),
            CHANGE_NOTE,
            created(&format!("The new {noun}"), schema_ref(schema)),
            &[400, 401, 403, 409, 415, 422, 503],
        ), schema),
    });
    let item = json!({
        "get": with_parameters(operation(
            &format!("One {noun}"),
            "Administrators and supervisors.",
            ok(&format!("The {noun}"), schema_ref(schema)),
            &[401, 403, 404, 503],
        ), parameter()),
        "put": with_parameters(with_body(operation(
            &format!("Replace a {noun}"),
            &format!("{CHANGE_NOTE} Keys left out take their defaults, as in the file; the \
                      {key} in the body, when given, must match the path."),
            ok(&format!("The {noun} as stored"), schema_ref(schema)),
            &[400, 401, 403, 404, 409, 415, 422, 503],
        ), schema), parameter()),
        "delete": with_parameters(no_content(operation(
            &format!("Delete a {noun}"),
            CHANGE_NOTE,
            json!({}),
            &[401, 403, 404, 409, 422, 503],
        ), "Deleted"), parameter()),
    });
    (
        format!("/api/admin/{table}"),
        list,
        format!("/api/admin/{table}/{{{key}}}"),
        item,
    )
}

pub(super) fn paths() -> Value {
    let mut paths = serde_json::Map::new();
    for (table, noun, key, schema) in [
        ("agents", "agent", "id", "AgentDefinition"),
        ("skills", "skill", "name", "SkillDefinition"),
        ("queues", "queue", "name", "QueueDefinition"),
    ] {
        let (list_path, list, item_path, item) = kind_paths(table, noun, key, schema);
        paths.insert(list_path, list);
        paths.insert(item_path, item);
    }
    Value::Object(paths)
}

pub(super) fn schemas() -> Value {
    json!({
        "AgentDefinition": agent(),
        "SkillDefinition": {
            "description": "A [[skills]] table. While no skill is defined any skill name goes; \
                            once one is, agents, DIDs and queue steps may use defined skills only.",
            "type": "object",
            "required": ["name"],
            "properties": {
                "name": { "type": "string", "description": "skill without a level, as language=ru" },
                "description": { "type": "string" },
                "source": source(),
            },
        },
        "QueueDefinition": queue(),
        "QueueStep": {
            "description": "A [[queues.steps]] table: from after_secs on, exactly one of keep, \
                            any_agent or overflow applies.",
            "type": "object",
            "required": ["after_secs"],
            "properties": {
                "after_secs": { "type": "integer", "minimum": 0 },
                "keep": { "type": "array", "items": { "type": "string" },
                          "description": "categories kept, as language or service>=3" },
                "any_agent": { "const": true },
                "overflow": { "type": "string", "description": "destination, as queue:NAME" },
            },
        },
    })
}

fn source() -> Value {
    json!({ "enum": ["file", "administration"], "readOnly": true,
            "description": "where the definition in force comes from" })
}

fn agent() -> Value {
    json!({
        "description": "An [[agents]] table, plus its queues.",
        "type": "object",
        "required": ["id"],
        "properties": {
            "id": { "type": "string", "description": "extension and SIP username" },
            "name": { "type": "string" },
            "password": { "type": "string", "writeOnly": true,
                          "description": "SIP digest password; required to create, kept when a \
                                          replacement leaves it out" },
            "skills": { "type": "array", "items": { "type": "string" },
                        "description": "SKILL:LEVEL, as language=ru:5" },
            "wrap_up_secs": { "type": "integer", "minimum": 0, "maximum": 86_400,
                              "description": "after-call work in place of the queues' wrap-up" },
            "queues": { "type": "array", "items": { "type": "string" },
                        "description": "queues that list the agent; when sent, the member lists \
                                        of the queues change to match" },
            "password_set": { "type": "boolean", "readOnly": true },
            "source": source(),
        },
    })
}

fn queue() -> Value {
    let seconds = json!({ "type": "integer", "minimum": 0 });
    let names = json!({ "type": "array", "items": { "type": "string" } });
    json!({
        "description": "A [[queues]] table; configs/pbx.toml documents each key and its default.",
        "type": "object",
        "required": ["name"],
        "properties": {
            "name": { "type": "string" },
            "agents": names,
            "ring_timeout_secs": seconds, "max_wait_secs": seconds,
            "retry_delay_secs": seconds, "wrap_up_secs": seconds,
            "strategy": { "enum": ["longest-idle", "fewest-calls", "least-talk-time",
                                   "round-robin", "ring-all", "linear", "random",
                                   "weighted-random", "best-proficiency"] },
            "max_length": { "type": "integer", "minimum": 1 },
            "weight": { "type": "integer", "minimum": 0 },
            "steps": array_of("QueueStep"),
            "join_empty": names, "leave_empty": names,
            "overflow": { "type": "string" },
            "exit_keys": { "type": "object", "additionalProperties": { "type": "string" } },
            "reject_delay_secs": seconds, "busy_delay_secs": seconds,
            "no_answer_delay_secs": seconds,
            "max_no_answer": { "type": "integer", "minimum": 0 },
            "music_on_hold": { "type": "string" },
            "announce_every_secs": seconds,
            "announce_position": { "type": "boolean" }, "announce_wait": { "type": "boolean" },
            "service_level_secs": seconds,
            "callback_attempts": { "type": "integer", "minimum": 1 },
            "callback_retry_secs": seconds,
            "source": source(),
        },
    })
}
