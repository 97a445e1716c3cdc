-- Calls that were still in progress when the PBX stopped without ending
-- them (a crash or kill -9); their record is written at the next start.
ALTER TABLE call_records ADD COLUMN interrupted INTEGER NOT NULL DEFAULT 0
    CHECK (interrupted IN (0, 1));
