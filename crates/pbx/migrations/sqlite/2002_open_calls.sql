-- Calls in progress, as last stored by the engine. A row outlives its call
-- only when the PBX stopped without ending it; the next start turns each
-- such row into an interrupted CDR.
CREATE TABLE open_calls (
    id TEXT NOT NULL PRIMARY KEY,
    record TEXT NOT NULL,
    updated_at_ms INTEGER NOT NULL
);
