-- Lockout keyed by (username as typed, source address) instead of by user,
-- so that nobody can lock another person's account from elsewhere, and audit
-- entries without a user, for failed logins of unknown usernames.

-- Failures and locks move to the tables below. Counts and locks in force at
-- the upgrade are dropped: they were per user, and no address is known for
-- them.
DROP INDEX login_failures_user;
DROP TABLE login_failures;
ALTER TABLE users DROP COLUMN locked_until_ms;

-- Failed logins per (username, address) inside the lockout window; cleared
-- on a successful login of that pair and when the pair gets locked.
-- `username` is the name as typed, so unknown names count like known ones.
-- `address` is the lockout bucket of the client: an IPv4 address, an IPv6
-- /64 prefix or 'unknown'.
CREATE TABLE login_failures (
    username TEXT    NOT NULL COLLATE NOCASE,
    address  TEXT    NOT NULL,
    at_ms    INTEGER NOT NULL,
    -- 1 when this failure was written to the audit log.
    audited  INTEGER NOT NULL DEFAULT 0 CHECK (audited IN (0, 1))
);
CREATE INDEX login_failures_pair ON login_failures (username, address, at_ms);
CREATE INDEX login_failures_at ON login_failures (at_ms);

-- Failed logins per address, whatever the username, for the limit on
-- password spraying. Kept apart from login_failures because a pair's lock
-- or success must not lower the address's count.
CREATE TABLE address_login_failures (
    address TEXT    NOT NULL,
    at_ms   INTEGER NOT NULL
);
CREATE INDEX address_login_failures_address ON address_login_failures (address, at_ms);
CREATE INDEX address_login_failures_at ON address_login_failures (at_ms);

-- A (username, address) pair that may not log in before locked_until_ms.
CREATE TABLE login_locks (
    username        TEXT    NOT NULL COLLATE NOCASE,
    address         TEXT    NOT NULL,
    locked_until_ms INTEGER NOT NULL,
    PRIMARY KEY (username, address)
);

-- An address that may not log in as anybody before locked_until_ms.
CREATE TABLE address_locks (
    address         TEXT    NOT NULL PRIMARY KEY,
    locked_until_ms INTEGER NOT NULL
);

-- The audit log is rebuilt because SQLite cannot drop NOT NULL from a
-- column: user_id and username become nullable, for actions of someone not
-- logged in. Dropping a table removes its triggers without firing them, so
-- the old rows are copied over unchanged, ids included. Rows were never
-- deleted, so the largest id copied is also AUTOINCREMENT's last value.
CREATE TABLE audit_log_new (
    id             INTEGER NOT NULL PRIMARY KEY AUTOINCREMENT,
    at_ms          INTEGER NOT NULL,
    -- NULL when nobody was logged in, as for a failed login.
    user_id        INTEGER,
    username       TEXT,
    action         TEXT    NOT NULL,
    target         TEXT,
    remote_address TEXT,
    CHECK ((user_id IS NULL) = (username IS NULL))
);
INSERT INTO audit_log_new (id, at_ms, user_id, username, action, target, remote_address)
SELECT id, at_ms, user_id, username, action, target, remote_address FROM audit_log;
DROP TRIGGER audit_log_no_update;
DROP TRIGGER audit_log_no_delete;
DROP TABLE audit_log;
ALTER TABLE audit_log_new RENAME TO audit_log;

CREATE TRIGGER audit_log_no_update BEFORE UPDATE ON audit_log
BEGIN
    SELECT RAISE(ABORT, 'audit_log is append-only');
END;

CREATE TRIGGER audit_log_no_delete BEFORE DELETE ON audit_log
BEGIN
    SELECT RAISE(ABORT, 'audit_log is append-only');
END;
