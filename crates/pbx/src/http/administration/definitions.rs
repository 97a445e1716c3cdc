//! Definitions as the administration API shows and takes them: the JSON
//! form of a configuration table, with the extra fields the API adds, and
//! the tracing of validation errors back to the fields of a request body.

use std::collections::BTreeMap;

use serde_json::{Map, Value};

use super::super::problem::FieldError;
use crate::config_layer::{Entry, Kind, Layer, Rejected};

/// Fields the API adds to a definition when showing it, and ignores in a
/// request body.
pub(super) const READ_ONLY: [&str; 2] = ["source", "password_set"];

/// Returns the tables of `kind` in the merged configuration text, in order.
pub(super) fn tables(text: &str, kind: Kind) -> Vec<Map<String, Value>> {
    let Ok(table) = toml::from_str::<toml::Table>(text) else {
        return Vec::new();
    };
    let Some(toml::Value::Array(items)) = table.get(kind.table()) else {
        return Vec::new();
    };
    items
        .iter()
        .filter_map(|item| match serde_json::to_value(item) {
            Ok(Value::Object(map)) => Some(map),
            _ => None,
        })
        .collect()
}

pub(super) fn key_of(kind: Kind, table: &Map<String, Value>) -> Option<&str> {
    table.get(kind.key_field()).and_then(Value::as_str)
}

/// Finds the table of `kind` with `key`.
pub(super) fn find(text: &str, kind: Kind, key: &str) -> Option<Map<String, Value>> {
    tables(text, kind)
        .into_iter()
        .find(|table| key_of(kind, table) == Some(key))
}

/// Converts a table into the definition the API shows: without a
/// password, with where it comes from, and for an agent the queues that
/// list it.
pub(super) fn with_api_fields(
    kind: Kind,
    mut table: Map<String, Value>,
    text: &str,
    layer: &Layer,
) -> Map<String, Value> {
    let key = key_of(kind, &table).unwrap_or_default().to_owned();
    let source = match layer.get(kind, &key) {
        Some(_) => "administration",
        None => "file",
    };
    if kind == Kind::Agent {
        let password = table.remove("password");
        table.insert("password_set".to_owned(), Value::Bool(password.is_some()));
        let queues: Vec<Value> = member_of(text, &key)
            .into_iter()
            .map(Value::String)
            .collect();
        table.insert("queues".to_owned(), Value::Array(queues));
    }
    table.insert("source".to_owned(), Value::String(source.to_owned()));
    table
}

/// Names of the queues that list `agent` as a member.
pub(super) fn member_of(text: &str, agent: &str) -> Vec<String> {
    tables(text, Kind::Queue)
        .iter()
        .filter(|queue| members(queue).iter().any(|member| member == agent))
        .filter_map(|queue| key_of(Kind::Queue, queue).map(str::to_owned))
        .collect()
}

fn members(queue: &Map<String, Value>) -> Vec<String> {
    queue
        .get("agents")
        .and_then(Value::as_array)
        .map(|agents| {
            agents
                .iter()
                .filter_map(|agent| agent.as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

/// Removes JSON nulls, which TOML cannot hold, so that a form may send
/// `null` for a field it leaves at its default.
pub(super) fn without_nulls(value: Value) -> Value {
    match value {
        Value::Object(map) => Value::Object(
            map.into_iter()
                .filter(|(_, value)| !value.is_null())
                .map(|(key, value)| (key, without_nulls(value)))
                .collect(),
        ),
        Value::Array(items) => Value::Array(items.into_iter().map(without_nulls).collect()),
        other => other,
    }
}

/// Builds the layer entries that make `agent` a member of exactly the
/// queues named in `requested`, one for each queue whose list changes.
pub(super) fn membership_entries(text: &str, agent: &str, requested: &[String]) -> Vec<Entry> {
    let mut entries = Vec::new();
    for mut queue in tables(text, Kind::Queue) {
        let Some(name) = key_of(Kind::Queue, &queue).map(str::to_owned) else {
            continue;
        };
        let mut list = members(&queue);
        let is_member = list.iter().any(|member| member == agent);
        let wants = requested.contains(&name);
        if is_member == wants {
            continue;
        }
        if wants {
            list.push(agent.to_owned());
        } else {
            list.retain(|member| member != agent);
        }
        let list = list.into_iter().map(Value::String).collect();
        queue.insert("agents".to_owned(), Value::Array(list));
        entries.push(Entry {
            kind: Kind::Queue,
            key: name,
            definition: Some(queue),
        });
    }
    entries
}

/// Errors of a rejected change, each traced to a field of the definition
/// that was sent (`kind`, `key`) when it lies there. The flag is true when
/// any error does, so the request itself is invalid; otherwise it
/// conflicts with other definitions or with the file.
pub(super) fn field_errors(rejected: &Rejected, kind: Kind, key: &str) -> (Vec<FieldError>, bool) {
    let mut own = false;
    let errors = rejected
        .errors
        .0
        .iter()
        .map(|error| {
            let pointer = pointer_into(&error.key, &rejected.keys, kind, key);
            own |= pointer.is_some();
            let detail = match (&pointer, describe_key(&error.key, &rejected.keys)) {
                (Some(_), _) | (None, None) => error.kind.to_string(),
                (None, Some(owner)) => format!("{owner}: {}", error.kind),
            };
            FieldError {
                detail,
                pointer,
                key: error.key.clone(),
            }
        })
        .collect();
    (errors, own)
}

/// Splits `agents[3].skills[0]` into the kind, index and rest.
fn split_key(key: &str) -> Option<(Kind, usize, &str)> {
    let (table, rest) = key.split_once('[')?;
    let kind = Kind::ALL.into_iter().find(|kind| kind.table() == table)?;
    let (index, rest) = rest.split_once(']')?;
    Some((kind, index.parse().ok()?, rest.trim_start_matches('.')))
}

/// Names the definition an error key lies in, as `queue "general"`.
fn describe_key(key: &str, keys: &BTreeMap<Kind, Vec<String>>) -> Option<String> {
    let (kind, index, _) = split_key(key)?;
    let name = keys.get(&kind)?.get(index)?;
    Some(format!("{} {name:?}", kind.noun()))
}

/// Converts an error key inside the definition `kind`/`key` into a JSON
/// Pointer such as `#/steps/1/keep/0`.
fn pointer_into(
    error_key: &str,
    keys: &BTreeMap<Kind, Vec<String>>,
    kind: Kind,
    key: &str,
) -> Option<String> {
    let (error_kind, index, rest) = split_key(error_key)?;
    let name = keys.get(&error_kind)?.get(index)?;
    if error_kind != kind || name != key {
        return None;
    }
    let mut pointer = String::from("#");
    for part in rest.split(['.', '[']).filter(|part| !part.is_empty()) {
        pointer.push('/');
        pointer.push_str(part.trim_end_matches(']').trim_matches('"'));
    }
    Some(pointer)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_keys_become_pointers() {
        let keys = BTreeMap::from([
            (Kind::Agent, vec!["1001".to_owned(), "1003".to_owned()]),
            (Kind::Queue, vec!["general".to_owned()]),
        ]);
        let pointer = |error_key| pointer_into(error_key, &keys, Kind::Agent, "1003");
        assert_eq!(
            pointer("agents[1].skills[0]").as_deref(),
            Some("#/skills/0")
        );
        assert_eq!(pointer("agents[1]").as_deref(), Some("#"));
        assert_eq!(pointer("agents[0].skills[0]"), None);
        assert_eq!(pointer("queues[0].agents[2]"), None);
        let queue = pointer_into("queues[0].exit_keys.\"0\"", &keys, Kind::Queue, "general");
        assert_eq!(queue.as_deref(), Some("#/exit_keys/0"));
        let step = pointer_into("queues[0].steps[1].keep[0]", &keys, Kind::Queue, "general");
        assert_eq!(step.as_deref(), Some("#/steps/1/keep/0"));
        assert_eq!(
            describe_key("queues[0].agents[2]", &keys).as_deref(),
            Some("queue \"general\"")
        );
    }

    #[test]
    fn membership_changes_only_the_queues_that_differ() {
        let text = "[[queues]]\nname = \"general\"\nagents = [\"1001\"]\n\
                    [[queues]]\nname = \"sales\"\nagents = [\"1001\", \"1002\"]\n\
                    [[queues]]\nname = \"night\"\n";
        let entries = membership_entries(text, "1002", &["general".to_owned(), "sales".to_owned()]);
        assert_eq!(entries.len(), 1);
        assert_eq!(entries[0].key, "general");
        let definition = entries[0].definition.as_ref().expect("definition");
        assert_eq!(definition["agents"], serde_json::json!(["1001", "1002"]));

        let entries = membership_entries(text, "1001", &[]);
        let changed: Vec<&str> = entries.iter().map(|entry| entry.key.as_str()).collect();
        assert_eq!(changed, ["general", "sales"]);
        assert_eq!(member_of(text, "1001"), ["general", "sales"]);
    }
}
