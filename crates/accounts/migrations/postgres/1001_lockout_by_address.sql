-- Lockout keyed by (username as typed, source address) instead of by user,
-- so that nobody can lock another person's account from elsewhere, and audit
-- entries without a user, for failed logins of unknown usernames.

-- Failures and locks move to the tables below. Counts and locks in force at
-- the upgrade are dropped: they were per user, and no address is known for
-- them.
DROP TABLE login_failures;
ALTER TABLE users DROP COLUMN locked_until_ms;

-- Failed logins per (username, address) inside the lockout window; cleared
-- on a successful login of that pair and when the pair gets locked.
-- `username` is the name as typed with ASCII letters lowercased (the crate
-- folds it), so unknown names count like known ones. `address` is the
-- lockout bucket of the client: an IPv4 address, an IPv6 /64 prefix or
-- 'unknown'.
CREATE TABLE login_failures (
    username TEXT    NOT NULL,
    address  TEXT    NOT NULL,
    at_ms    BIGINT  NOT NULL,
    -- TRUE when this failure was written to the audit log.
    audited  BOOLEAN NOT NULL DEFAULT FALSE
);
CREATE INDEX login_failures_pair ON login_failures (username, address, at_ms);
CREATE INDEX login_failures_at ON login_failures (at_ms);

-- Failed logins per address, whatever the username, for the limit on
-- password spraying. Kept apart from login_failures because a pair's lock
-- or success must not lower the address's count.
CREATE TABLE address_login_failures (
    address TEXT   NOT NULL,
    at_ms   BIGINT NOT NULL
);
CREATE INDEX address_login_failures_address ON address_login_failures (address, at_ms);
CREATE INDEX address_login_failures_at ON address_login_failures (at_ms);

-- A (username, address) pair that may not log in before locked_until_ms.
CREATE TABLE login_locks (
    username        TEXT   NOT NULL,
    address         TEXT   NOT NULL,
    locked_until_ms BIGINT NOT NULL,
    PRIMARY KEY (username, address)
);

-- An address that may not log in as anybody before locked_until_ms.
CREATE TABLE address_locks (
    address         TEXT   NOT NULL PRIMARY KEY,
    locked_until_ms BIGINT NOT NULL
);

-- user_id and username become nullable, for actions of someone not logged
-- in. PostgreSQL changes the columns in place, so the triggers stay.
ALTER TABLE audit_log ALTER COLUMN user_id DROP NOT NULL;
ALTER TABLE audit_log ALTER COLUMN username DROP NOT NULL;
ALTER TABLE audit_log ADD CHECK ((user_id IS NULL) = (username IS NULL));
