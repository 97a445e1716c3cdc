-- Agents, skills and queues edited through the administration API, kept
-- as a layer over the configuration file: a row replaces the file's
-- definition with the same key, or adds one, and a row whose definition
-- is NULL removes it. `definition` is the JSON form of the TOML table.
-- `seq` keeps the order in which definitions the file lacks were added.
CREATE TABLE administration_layer (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    kind TEXT NOT NULL,
    key TEXT NOT NULL,
    definition TEXT,
    changed_at_ms INTEGER NOT NULL,
    changed_by TEXT NOT NULL,
    UNIQUE (kind, key)
);
