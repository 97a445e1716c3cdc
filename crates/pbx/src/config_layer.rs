//! Agents, skills and queues edited through the administration API, kept
//! in the database as a layer over the configuration file.
//!
//! The file stays the operator's: the PBX never writes it, so comments,
//! order and version control of the file are untouched, and the built-in
//! default (no `--config`) can be administered too. A layer entry replaces
//! the file's `[[agents]]`, `[[skills]]` or `[[queues]]` table with the
//! same key, adds one the file lacks, or removes one. Every other table
//! and every definition the administrators never touched follows the file,
//! so a reload still applies the operator's edits to them.
//!
//! The merged text goes through [`Config::parse_with_overrides`] like any
//! file, so the API and the file share one validation. [`Layer`] is plain
//! data; [`LayerStore`] reads and writes it.

use std::collections::BTreeMap;

use serde_json::{Map, Value};
use sqlx::AnyPool;

use crate::config::{Config, ConfigErrors, Overrides};

/// A kind of definition the administration API edits.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) enum Kind {
    Agent,
    Skill,
    Queue,
}

impl Kind {
    pub(crate) const ALL: [Kind; 3] = [Kind::Agent, Kind::Skill, Kind::Queue];

    /// Name of the array of tables in the file, and of the stored kind.
    pub(crate) fn table(self) -> &'static str {
        match self {
            Kind::Agent => "agents",
            Kind::Skill => "skills",
            Kind::Queue => "queues",
        }
    }

    /// Field of a table that identifies it.
    pub(crate) fn key_field(self) -> &'static str {
        match self {
            Kind::Agent => "id",
            Kind::Skill | Kind::Queue => "name",
        }
    }

    /// Word for one definition, for messages.
    pub(crate) fn noun(self) -> &'static str {
        match self {
            Kind::Agent => "agent",
            Kind::Skill => "skill",
            Kind::Queue => "queue",
        }
    }

    fn from_table(name: &str) -> Option<Kind> {
        Kind::ALL.into_iter().find(|kind| kind.table() == name)
    }
}

/// One administrator's definition: a whole table, or `None` to remove the
/// file's table with this key.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Entry {
    pub(crate) kind: Kind,
    pub(crate) key: String,
    pub(crate) definition: Option<Map<String, Value>>,
}

/// The stored changes, in the order they were first made.
#[derive(Clone, Debug, Default, PartialEq)]
pub(crate) struct Layer {
    entries: Vec<Entry>,
}

/// The file and the layer merged into one TOML text.
#[derive(Debug)]
pub(crate) struct Merged {
    pub(crate) text: String,
    /// Keys of each kind in the order of the merged arrays, so that an
    /// error at `agents[3]` can be traced to its agent.
    pub(crate) keys: BTreeMap<Kind, Vec<String>>,
}

#[derive(Debug, thiserror::Error)]
pub(crate) enum MergeError {
    #[error("{table} is not an array of tables in the configuration file")]
    NotTables { table: &'static str },
    /// A stored definition that TOML cannot hold (a JSON null, for one).
    #[error("the stored {noun} {key:?} cannot be written as TOML: {source}")]
    Definition {
        noun: &'static str,
        key: String,
        #[source]
        source: toml::ser::Error,
    },
    #[error("the merged configuration cannot be written as TOML: {0}")]
    Serialize(#[from] toml::ser::Error),
}

impl Layer {
    pub(crate) fn new(entries: Vec<Entry>) -> Layer {
        Layer { entries }
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    pub(crate) fn entries(&self) -> &[Entry] {
        &self.entries
    }

    pub(crate) fn get(&self, kind: Kind, key: &str) -> Option<&Entry> {
        self.entries
            .iter()
            .find(|entry| entry.kind == kind && entry.key == key)
    }

    /// Replaces the entry with the same kind and key, or appends `entry`.
    pub(crate) fn set(&mut self, entry: Entry) {
        match self
            .entries
            .iter_mut()
            .find(|known| known.kind == entry.kind && known.key == entry.key)
        {
            Some(known) => *known = entry,
            None => self.entries.push(entry),
        }
    }

    /// Merges the layer into the file's tables: replaced tables keep the
    /// file's place, added ones follow the file's, in the order they were
    /// first added.
    pub(crate) fn merge(&self, base: toml::Table) -> Result<Merged, MergeError> {
        let mut merged = base;
        let mut keys = BTreeMap::new();
        for kind in Kind::ALL {
            let (tables, order) = self.merge_kind(kind, merged.remove(kind.table()))?;
            keys.insert(kind, order);
            if !tables.is_empty() {
                merged.insert(kind.table().to_owned(), toml::Value::Array(tables));
            }
        }
        Ok(Merged {
            text: toml::to_string(&merged)?,
            keys,
        })
    }

    fn merge_kind(
        &self,
        kind: Kind,
        file: Option<toml::Value>,
    ) -> Result<(Vec<toml::Value>, Vec<String>), MergeError> {
        let file_tables = match file {
            None => Vec::new(),
            Some(toml::Value::Array(tables)) => tables,
            Some(_) => {
                return Err(MergeError::NotTables {
                    table: kind.table(),
                });
            }
        };
        let mut tables = Vec::new();
        let mut order = Vec::new();
        let mut from_file = Vec::new();
        for table in file_tables {
            let key = table
                .get(kind.key_field())
                .and_then(toml::Value::as_str)
                .map(str::to_owned);
            // A table without its key is left for validation to report.
            let Some(key) = key else {
                tables.push(table);
                order.push(String::new());
                continue;
            };
            from_file.push(key.clone());
            match self.get(kind, &key) {
                None => tables.push(table),
                Some(Entry {
                    definition: None, ..
                }) => continue,
                Some(entry) => tables.push(to_toml(entry)?),
            }
            order.push(key);
        }
        for entry in self.entries.iter().filter(|entry| entry.kind == kind) {
            if entry.definition.is_some() && !from_file.contains(&entry.key) {
                tables.push(to_toml(entry)?);
                order.push(entry.key.clone());
            }
        }
        Ok((tables, order))
    }
}

fn to_toml(entry: &Entry) -> Result<toml::Value, MergeError> {
    toml::Value::try_from(&entry.definition).map_err(|source| MergeError::Definition {
        noun: entry.kind.noun(),
        key: entry.key.clone(),
        source,
    })
}

/// Suffix of the origin named in errors about a merged configuration.
pub(crate) const LAYER_ORIGIN_SUFFIX: &str = " with administration changes";

/// A merged configuration that did not validate.
#[derive(Debug)]
pub(crate) struct Rejected {
    pub(crate) errors: ConfigErrors,
    /// Keys of the merged arrays, to trace `agents[3]` to its agent;
    /// empty when the file itself failed.
    pub(crate) keys: BTreeMap<Kind, Vec<String>>,
}

impl From<ConfigErrors> for Rejected {
    fn from(errors: ConfigErrors) -> Rejected {
        Rejected {
            errors,
            keys: BTreeMap::new(),
        }
    }
}

/// Parses `text` from `origin` with `layer` merged in, and validates the
/// result. The file alone must validate first, so errors in it keep their
/// line numbers. With an empty layer that is all; with changes, errors in
/// the merged text name the key path and no line.
pub(crate) fn parse_with_layer(
    text: &str,
    origin: &str,
    overrides: &Overrides,
    layer: &Layer,
) -> Result<(Config, Merged), Rejected> {
    let file = Config::parse_with_overrides(text, origin, overrides)?;
    if layer.is_empty() {
        let keys = Kind::ALL
            .into_iter()
            .map(|kind| (kind, file_keys(&file, kind)))
            .collect();
        let merged = Merged {
            text: text.to_owned(),
            keys,
        };
        return Ok((file, merged));
    }
    let origin = format!("{origin}{LAYER_ORIGIN_SUFFIX}");
    // The file parsed above, so it is a valid TOML table.
    let base: toml::Table = toml::from_str(text)
        .map_err(|error| ConfigErrors::message(&origin, "", error.message()))?;
    let merged = layer
        .merge(base)
        .map_err(|error| ConfigErrors::message(&origin, "", &error.to_string()))?;
    match Config::parse_with_overrides(&merged.text, &origin, overrides) {
        Ok(config) => Ok((config, merged)),
        Err(errors) => Err(Rejected {
            errors: errors.without_locations(),
            keys: merged.keys,
        }),
    }
}

fn file_keys(config: &Config, kind: Kind) -> Vec<String> {
    match kind {
        Kind::Agent => config.agents.iter().map(|a| a.id.clone()).collect(),
        Kind::Skill => config.skills.iter().map(|s| s.name.clone()).collect(),
        Kind::Queue => config.queues.iter().map(|q| q.name.clone()).collect(),
    }
}

#[derive(Debug, thiserror::Error)]
pub(crate) enum LayerStoreError {
    #[error("failed to migrate the administration layer: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error("failed to read or write the administration layer: {0}")]
    Query(#[from] sqlx::Error),
    #[error("the stored {kind} {key:?} is not a JSON object: {source}")]
    InvalidRow {
        kind: String,
        key: String,
        #[source]
        source: serde_json::Error,
    },
}

/// The layer's rows in the PBX database.
#[derive(Clone, Debug)]
pub(crate) struct LayerStore {
    pool: AnyPool,
}

impl LayerStore {
    /// Uses the PBX database behind `pool`, creating the table if needed.
    pub(crate) async fn open(pool: AnyPool) -> Result<LayerStore, LayerStoreError> {
        crate::storage::migrate(&pool).await?;
        Ok(LayerStore { pool })
    }

    pub(crate) async fn load(&self) -> Result<Layer, LayerStoreError> {
        let rows: Vec<(String, String, Option<String>)> =
            sqlx::query_as("SELECT kind, key, definition FROM administration_layer ORDER BY seq")
                .fetch_all(&self.pool)
                .await?;
        let mut entries = Vec::with_capacity(rows.len());
        for (kind_name, key, definition) in rows {
            let Some(kind) = Kind::from_table(&kind_name) else {
                tracing::warn!(
                    kind = kind_name,
                    key,
                    "skipping a layer row of unknown kind"
                );
                continue;
            };
            let definition = match definition {
                None => None,
                Some(text) => Some(serde_json::from_str(&text).map_err(|source| {
                    LayerStoreError::InvalidRow {
                        kind: kind_name.clone(),
                        key: key.clone(),
                        source,
                    }
                })?),
            };
            entries.push(Entry {
                kind,
                key,
                definition,
            });
        }
        Ok(Layer::new(entries))
    }

    /// Stores `entry`, replacing the row with its kind and key, which keeps
    /// that row's place in the order.
    pub(crate) async fn save(
        &self,
        entry: &Entry,
        at_ms: i64,
        user: &str,
    ) -> Result<(), LayerStoreError> {
        self.save_all(std::slice::from_ref(entry), at_ms, user)
            .await
    }

    /// Stores `entries` in one transaction, so that a change touching
    /// several definitions (an agent and its queues) is kept whole or not
    /// at all.
    pub(crate) async fn save_all(
        &self,
        entries: &[Entry],
        at_ms: i64,
        user: &str,
    ) -> Result<(), LayerStoreError> {
        let mut transaction = self.pool.begin().await?;
        for entry in entries {
            let definition = entry
                .definition
                .as_ref()
                .map(|definition| Value::Object(definition.clone()).to_string());
            sqlx::query(
                "INSERT INTO administration_layer \
                 (kind, key, definition, changed_at_ms, changed_by) \
                 VALUES ($1, $2, $3, $4, $5) \
                 ON CONFLICT (kind, key) DO UPDATE SET definition = excluded.definition, \
                 changed_at_ms = excluded.changed_at_ms, changed_by = excluded.changed_by",
            )
            .bind(entry.kind.table())
            .bind(&entry.key)
            .bind(definition)
            .bind(at_ms)
            .bind(user)
            .execute(&mut *transaction)
            .await?;
        }
        transaction.commit().await?;
        Ok(())
    }

    /// Removes the row of `kind` and `key`, so the file's table applies
    /// again; used to undo a change the engine did not take.
    pub(crate) async fn forget(&self, kind: Kind, key: &str) -> Result<(), LayerStoreError> {
        sqlx::query("DELETE FROM administration_layer WHERE kind = $1 AND key = $2")
            .bind(kind.table())
            .bind(key)
            .execute(&self.pool)
            .await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests;
