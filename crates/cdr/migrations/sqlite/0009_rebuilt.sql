-- Set on a record that `pbx cdr-check --repair` rebuilt from the queue
-- events because the PBX's own record of the call was missing.
ALTER TABLE call_records ADD COLUMN rebuilt INTEGER NOT NULL DEFAULT 0;
