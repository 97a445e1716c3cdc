-- Console users, their credentials and the audit log. Times are Unix
-- milliseconds (UTC); the crate converts them to RFC 3339 for the API.
CREATE TABLE users (
    id              INTEGER NOT NULL PRIMARY KEY,
    -- NOCASE so "Admin" and "admin" cannot be two users.
    username        TEXT    NOT NULL UNIQUE COLLATE NOCASE,
    role            TEXT    NOT NULL
        CHECK (role IN ('administrator', 'supervisor', 'qa', 'agent')),
    -- The SIP agent id whose calls a user of role agent may see.
    agent_id        TEXT,
    -- Argon2id hash in PHC string format, salt and parameters included.
    password_hash   TEXT    NOT NULL,
    disabled        INTEGER NOT NULL DEFAULT 0 CHECK (disabled IN (0, 1)),
    created_at_ms   INTEGER NOT NULL,
    locked_until_ms INTEGER,
    CHECK (role <> 'agent' OR agent_id IS NOT NULL)
);

-- Failed logins inside the lockout window; cleared on success and on lock.
CREATE TABLE login_failures (
    user_id INTEGER NOT NULL REFERENCES users (id),
    at_ms   INTEGER NOT NULL
);
CREATE INDEX login_failures_user ON login_failures (user_id, at_ms);

-- Console sessions. Only the SHA-256 of the cookie value is stored.
CREATE TABLE sessions (
    token_hash    TEXT    NOT NULL PRIMARY KEY,
    user_id       INTEGER NOT NULL REFERENCES users (id),
    created_at_ms INTEGER NOT NULL,
    expires_at_ms INTEGER NOT NULL
);
CREATE INDEX sessions_user ON sessions (user_id);

-- Bearer tokens for integrations. Only the SHA-256 of the token is stored.
CREATE TABLE api_tokens (
    id            INTEGER NOT NULL PRIMARY KEY,
    token_hash    TEXT    NOT NULL UNIQUE,
    user_id       INTEGER NOT NULL REFERENCES users (id),
    name          TEXT    NOT NULL,
    created_by    INTEGER NOT NULL REFERENCES users (id),
    created_at_ms INTEGER NOT NULL
);

-- Who did what, when and from where. Rows are only ever inserted: the
-- triggers below make UPDATE and DELETE fail for every connection.
CREATE TABLE audit_log (
    id             INTEGER NOT NULL PRIMARY KEY AUTOINCREMENT,
    at_ms          INTEGER NOT NULL,
    user_id        INTEGER NOT NULL,
    username       TEXT    NOT NULL,
    action         TEXT    NOT NULL,
    target         TEXT,
    remote_address TEXT
);

CREATE TRIGGER audit_log_no_update BEFORE UPDATE ON audit_log
BEGIN
    SELECT RAISE(ABORT, 'audit_log is append-only');
END;

CREATE TRIGGER audit_log_no_delete BEFORE DELETE ON audit_log
BEGIN
    SELECT RAISE(ABORT, 'audit_log is append-only');
END;
