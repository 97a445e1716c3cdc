//! Merging the layer into a file, validation of the merged text, and the
//! stored rows.

use serde_json::json;

use super::*;

const FILE: &str = "\
# The operator's comment.
[[agents]]
id = \"1001\"
name = \"One\"

[[agents]]
id = \"1002\"

[[queues]]
name = \"general\"
agents = [\"1001\", \"1002\"]
";

fn entry(kind: Kind, key: &str, definition: Option<Value>) -> Entry {
    Entry {
        kind,
        key: key.to_owned(),
        definition: definition.map(|value| match value {
            Value::Object(map) => map,
            other => panic!("not an object: {other}"),
        }),
    }
}

fn merged(layer: &Layer) -> Merged {
    let base: toml::Table = toml::from_str(FILE).expect("valid TOML");
    layer.merge(base).expect("merges")
}

#[test]
fn replaced_table_keeps_its_place() {
    let layer = Layer::new(vec![
        entry(Kind::Agent, "1003", Some(json!({"id": "1003"}))),
        entry(
            Kind::Agent,
            "1001",
            Some(json!({"id": "1001", "name": "Renamed"})),
        ),
    ]);
    let merged = merged(&layer);
    assert_eq!(merged.keys[&Kind::Agent], ["1001", "1002", "1003"]);
    let table: toml::Table = toml::from_str(&merged.text).expect("merged TOML");
    let agents = table["agents"].as_array().expect("agents");
    assert_eq!(agents[0]["name"].as_str(), Some("Renamed"));
    assert_eq!(agents[1]["id"].as_str(), Some("1002"));
    assert_eq!(merged.keys[&Kind::Queue], ["general"]);
    assert!(merged.keys[&Kind::Skill].is_empty());
}

#[test]
fn removal_drops_the_file_table() {
    let layer = Layer::new(vec![entry(Kind::Agent, "1002", None)]);
    let merged = merged(&layer);
    assert_eq!(merged.keys[&Kind::Agent], ["1001"]);
    // A removal of a key the file lacks adds nothing.
    let layer = Layer::new(vec![entry(Kind::Queue, "night", None)]);
    assert_eq!(self::merged(&layer).keys[&Kind::Queue], ["general"]);
}

#[test]
fn set_replaces_in_place() {
    let mut layer = Layer::default();
    layer.set(entry(
        Kind::Skill,
        "language=ru",
        Some(json!({"name": "language=ru"})),
    ));
    layer.set(entry(Kind::Agent, "1003", Some(json!({"id": "1003"}))));
    layer.set(entry(Kind::Skill, "language=ru", None));
    assert_eq!(layer.entries().len(), 2);
    assert_eq!(layer.entries()[0].definition, None);
    assert!(layer.get(Kind::Agent, "1003").is_some());
    assert!(layer.get(Kind::Queue, "1003").is_none());
}

#[test]
fn table_of_wrong_shape_is_an_error() {
    let base: toml::Table = toml::from_str("agents = \"1001\"").expect("valid TOML");
    let layer = Layer::new(vec![entry(
        Kind::Agent,
        "1003",
        Some(json!({"id": "1003"})),
    )]);
    let error = layer.merge(base).expect_err("agents is a string");
    assert_eq!(
        error.to_string(),
        "agents is not an array of tables in the configuration file"
    );
}

#[test]
fn merged_errors_name_keys_without_lines() {
    let layer = Layer::new(vec![entry(
        Kind::Queue,
        "sales",
        Some(json!({"name": "sales", "agents": ["9999"]})),
    )]);
    let rejected = parse_with_layer(FILE, "pbx.toml", &Overrides::default(), &layer)
        .expect_err("unknown member");
    assert_eq!(
        rejected.errors.to_string(),
        "pbx.toml with administration changes: queues[1].agents[0]: unknown agent \"9999\"; \
         add an [[agents]] entry with this id"
    );
    assert_eq!(rejected.keys[&Kind::Queue], ["general", "sales"]);
}

#[test]
fn errors_of_the_file_keep_their_lines() {
    let broken = FILE.replace(
        "name = \"general\"",
        "name = \"general\"\nring_timeout_secs = 0",
    );
    let layer = Layer::new(vec![entry(
        Kind::Agent,
        "1003",
        Some(json!({"id": "1003"})),
    )]);
    let rejected = parse_with_layer(&broken, "pbx.toml", &Overrides::default(), &layer)
        .expect_err("zero timeout");
    assert_eq!(
        rejected.errors.to_string(),
        "pbx.toml:11:21: queues[0].ring_timeout_secs: must be greater than 0"
    );
    assert!(rejected.keys.is_empty());
}

#[test]
fn empty_layer_returns_the_file_text() {
    let (config, merged) =
        parse_with_layer(FILE, "pbx.toml", &Overrides::default(), &Layer::default())
            .expect("valid file");
    assert_eq!(merged.text, FILE);
    assert_eq!(config.agents.len(), 2);
    assert_eq!(merged.keys[&Kind::Agent], ["1001", "1002"]);
}

#[tokio::test]
async fn store_keeps_order_and_replaces_rows() {
    let dir = tempfile::tempdir().expect("temp dir");
    let cdr = cdr::CdrStore::open(dir.path()).await.expect("store opens");
    let store = LayerStore::open(cdr.pool().clone())
        .await
        .expect("layer opens");
    let first = entry(
        Kind::Agent,
        "1003",
        Some(json!({"id": "1003", "name": "A"})),
    );
    let second = entry(Kind::Queue, "general", None);
    store.save(&first, 1, "ada").await.expect("saved");
    store.save(&second, 2, "ada").await.expect("saved");
    let renamed = entry(
        Kind::Agent,
        "1003",
        Some(json!({"id": "1003", "name": "B"})),
    );
    store.save(&renamed, 3, "ada").await.expect("saved");
    let loaded = store.load().await.expect("loads");
    assert_eq!(loaded.entries(), [renamed, second]);

    store.forget(Kind::Agent, "1003").await.expect("forgotten");
    let loaded = store.load().await.expect("loads");
    assert_eq!(loaded.entries().len(), 1);
    assert_eq!(loaded.entries()[0].key, "general");
}
