-- Registrar bindings, so agents stay reachable across a restart.
-- Versions of this crate's migrations start at 2001: the database is shared
-- with the CDR store (0001...) and accounts (1000...).
CREATE TABLE registrations (
    agent TEXT NOT NULL,
    contact TEXT NOT NULL,
    expires_at_ms BIGINT NOT NULL,
    call_id TEXT NOT NULL,
    cseq BIGINT NOT NULL CHECK (cseq >= 0),
    transport TEXT NOT NULL CHECK (transport IN ('udp', 'tcp')),
    address TEXT NOT NULL
);

CREATE INDEX registrations_agent ON registrations (agent);
