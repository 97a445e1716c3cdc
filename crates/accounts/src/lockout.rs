//! Login lockout keyed by the username as typed and the client's address.
//!
//! Keying by the pair, not by the account, means nobody can lock another
//! person out from elsewhere, and counting unknown usernames exactly like
//! known ones means a lock does not reveal that a username exists. A coarser
//! limit per address slows password spraying across many usernames.

use std::fmt;
use std::net::{IpAddr, Ipv6Addr};

use serde::{Deserialize, Serialize};
use sqlx::AnyConnection;
use sqlx::Row;
use time::{Duration, OffsetDateTime};

use crate::AccountsError;
use crate::audit::{AuditActor, insert_audit};
use crate::store::{AccountStore, MAX_NAME_LENGTH, from_millis, millis};

/// At most one `session.login_failed` audit entry per (username, address)
/// in this interval, so a client cannot grow the audit log faster than
/// that. Every failure still counts toward the lockout.
const FAILED_LOGIN_AUDIT_INTERVAL: Duration = Duration::minutes(1);

/// What an [`AccountsError::Locked`] login is locked for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LockScope {
    /// The username as typed, from the client's address only.
    Username,
    /// Every username from the client's address.
    Address,
}

impl LockScope {
    /// Names what is locked, for the error message.
    pub(crate) fn describe(self, username: &str) -> String {
        match self {
            LockScope::Username => format!("login as {username:?} from this address"),
            LockScope::Address => "login from this address".to_owned(),
        }
    }
}

impl fmt::Display for LockScope {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str(match self {
            LockScope::Username => "username",
            LockScope::Address => "address",
        })
    }
}

/// One login request, as the lockout sees it.
#[derive(Debug)]
pub(crate) struct Attempt {
    /// The username as typed, bounded by [`typed_username`].
    pub(crate) username: String,
    /// The username as the lockout tables store it, from [`lockout_key`].
    pub(crate) key: String,
    /// The lockout bucket of the client, from [`address_bucket`].
    pub(crate) bucket: String,
    /// The client's IP address as text, for the audit log.
    pub(crate) remote: Option<String>,
}

impl Attempt {
    pub(crate) fn new(username: &str, remote: Option<IpAddr>) -> Attempt {
        let username = typed_username(username);
        Attempt {
            key: lockout_key(&username),
            username,
            bucket: address_bucket(remote),
            remote: remote.map(|address| address.to_canonical().to_string()),
        }
    }
}

/// Returns the username as typed, cut after 65 characters and with control
/// characters escaped, so a hostile request cannot store megabytes or forge
/// lines in the tables, the audit log or a log line. A cut or escaped name is never a
/// valid username (at most 64 characters, no backslash), so it never shares
/// a lockout key with a real user.
pub fn typed_username(username: &str) -> String {
    let mut typed = String::new();
    for character in username.chars().take(MAX_NAME_LENGTH + 1) {
        if character.is_control() {
            typed.extend(character.escape_default());
        } else {
            typed.push(character);
        }
    }
    typed
}

/// Returns the username as the lockout tables store and compare it: ASCII
/// letters lowercased, so "Admin" and "admin" share one count and lock on
/// both engines. This is the folding of SQLite's NOCASE collation, which the
/// SQLite tables also declare, so rows stored before keep matching.
fn lockout_key(username: &str) -> String {
    username.to_ascii_lowercase()
}

/// Returns the lockout bucket of a client: an IPv4 address on its own (an
/// IPv4-mapped IPv6 address too), the /64 prefix of an IPv6 address, or
/// `unknown` when the server did not get the address. IPv6 goes by /64
/// because one host or network is commonly given a whole /64 and could
/// otherwise use a fresh address for every few attempts.
pub(crate) fn address_bucket(remote: Option<IpAddr>) -> String {
    match remote.map(|address| address.to_canonical()) {
        None => "unknown".to_owned(),
        Some(IpAddr::V4(address)) => address.to_string(),
        Some(IpAddr::V6(address)) => {
            let [a, b, c, d, ..] = address.segments();
            format!("{}/64", Ipv6Addr::new(a, b, c, d, 0, 0, 0, 0))
        }
    }
}

impl AccountStore {
    /// Returns the lock in force at `now` for `attempt`, if any: the one
    /// that ends later when both its pair and its address are locked.
    pub(crate) async fn active_lock(
        &self,
        attempt: &Attempt,
        now: OffsetDateTime,
    ) -> Result<Option<AccountsError>, AccountsError> {
        let row = sqlx::query(
            "SELECT 1 AS whole_address, locked_until_ms FROM address_locks \
             WHERE address = $1 AND locked_until_ms > $3 \
             UNION ALL \
             SELECT 0, locked_until_ms FROM login_locks \
             WHERE username = $2 AND address = $1 AND locked_until_ms > $3 \
             ORDER BY locked_until_ms DESC, whole_address DESC LIMIT 1",
        )
        .bind(&attempt.bucket)
        .bind(&attempt.key)
        .bind(millis(now))
        .fetch_optional(self.pool())
        .await
        .map_err(AccountsError::Query)?;
        let Some(row) = row else {
            return Ok(None);
        };
        let whole_address: i64 = row.try_get("whole_address").map_err(AccountsError::Query)?;
        let until_ms: i64 = row
            .try_get("locked_until_ms")
            .map_err(AccountsError::Query)?;
        let scope = if whole_address == 1 {
            LockScope::Address
        } else {
            LockScope::Username
        };
        Ok(Some(locked(attempt, scope, from_millis(until_ms)?)))
    }

    /// Counts a failed login, locks the pair or the address when a limit is
    /// reached, writes the audit entries, and returns the error to report:
    /// `Locked` when this failure locks, `InvalidCredentials` otherwise.
    pub(crate) async fn record_failure(
        &self,
        attempt: &Attempt,
        now: OffsetDateTime,
    ) -> AccountsError {
        let result = async {
            let mut transaction = self.pool().begin().await?;
            let outcome = self.count_failure(&mut transaction, attempt, now).await?;
            transaction.commit().await?;
            Ok::<_, sqlx::Error>(outcome)
        }
        .await;
        match result {
            Ok(Some(scope)) => locked(attempt, scope, now + self.policy().lockout),
            Ok(None) => AccountsError::InvalidCredentials,
            Err(error) => AccountsError::Query(error),
        }
    }

    /// The statements of [`AccountStore::record_failure`], in one
    /// transaction. Returns what this failure locked, if anything.
    async fn count_failure(
        &self,
        connection: &mut AnyConnection,
        attempt: &Attempt,
        now: OffsetDateTime,
    ) -> Result<Option<LockScope>, sqlx::Error> {
        let policy = *self.policy();
        let now_ms = millis(now);
        let until_ms = millis(now + policy.lockout);
        // Writing first takes SQLite's write lock at once, so concurrent
        // failures queue up instead of failing to upgrade a read lock.
        prune(connection, millis(now - policy.failure_window), now_ms).await?;
        // CASE gives an integer on both engines, where NOT EXISTS alone is
        // a boolean in PostgreSQL and an integer in SQLite.
        let audit_due: i64 = sqlx::query_scalar(
            "SELECT CASE WHEN EXISTS (SELECT 1 FROM login_failures \
             WHERE username = $1 AND address = $2 AND audited AND at_ms > $3) \
             THEN 0 ELSE 1 END",
        )
        .bind(&attempt.key)
        .bind(&attempt.bucket)
        .bind(millis(now - FAILED_LOGIN_AUDIT_INTERVAL))
        .fetch_one(&mut *connection)
        .await?;
        let audit_due = audit_due == 1;
        sqlx::query(
            "INSERT INTO login_failures (username, address, at_ms, audited) \
             VALUES ($1, $2, $3, $4)",
        )
        .bind(&attempt.key)
        .bind(&attempt.bucket)
        .bind(now_ms)
        .bind(audit_due)
        .execute(&mut *connection)
        .await?;
        sqlx::query("INSERT INTO address_login_failures (address, at_ms) VALUES ($1, $2)")
            .bind(&attempt.bucket)
            .bind(now_ms)
            .execute(&mut *connection)
            .await?;

        let pair_failures: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM login_failures WHERE username = $1 AND address = $2",
        )
        .bind(&attempt.key)
        .bind(&attempt.bucket)
        .fetch_one(&mut *connection)
        .await?;
        let pair_locks = pair_failures >= i64::from(policy.max_failed_logins);
        if pair_locks {
            lock_pair(connection, attempt, until_ms).await?;
            audit(connection, attempt, now_ms, "session.locked", true).await?;
        } else if audit_due {
            audit(connection, attempt, now_ms, "session.login_failed", true).await?;
        }

        let address_failures: i64 =
            sqlx::query_scalar("SELECT COUNT(*) FROM address_login_failures WHERE address = $1")
                .bind(&attempt.bucket)
                .fetch_one(&mut *connection)
                .await?;
        if address_failures >= i64::from(policy.max_failed_logins_per_address) {
            lock_address(connection, attempt, until_ms).await?;
            audit(connection, attempt, now_ms, "session.address_locked", false).await?;
            return Ok(Some(LockScope::Address));
        }
        Ok(pair_locks.then_some(LockScope::Username))
    }

    /// Forgets the failures and the expired lock of `attempt`'s pair after a
    /// successful login. Other addresses' failures for the same username
    /// and the address's own count stay.
    pub(crate) async fn clear_failures(
        connection: &mut AnyConnection,
        attempt: &Attempt,
    ) -> Result<(), sqlx::Error> {
        for table in ["login_failures", "login_locks"] {
            sqlx::query(&format!(
                "DELETE FROM {table} WHERE username = $1 AND address = $2"
            ))
            .bind(&attempt.key)
            .bind(&attempt.bucket)
            .execute(&mut *connection)
            .await?;
        }
        Ok(())
    }

    /// Lifts the locks and forgets the failures of `username` from every
    /// address, after an administrator set a new password. Address locks
    /// stay, because they concern the address, not the user.
    pub(crate) async fn unlock_username(
        connection: &mut AnyConnection,
        username: &str,
    ) -> Result<(), sqlx::Error> {
        for table in ["login_failures", "login_locks"] {
            sqlx::query(&format!("DELETE FROM {table} WHERE username = $1"))
                .bind(lockout_key(username))
                .execute(&mut *connection)
                .await?;
        }
        Ok(())
    }
}

fn locked(attempt: &Attempt, scope: LockScope, until: OffsetDateTime) -> AccountsError {
    AccountsError::Locked {
        username: attempt.username.clone(),
        scope,
        until,
    }
}

/// Deletes failures older than the window and locks that have ended, for
/// every user and address, so the tables stay small without a background
/// task.
async fn prune(
    connection: &mut AnyConnection,
    window_start_ms: i64,
    now_ms: i64,
) -> Result<(), sqlx::Error> {
    for table in ["login_failures", "address_login_failures"] {
        sqlx::query(&format!("DELETE FROM {table} WHERE at_ms <= $1"))
            .bind(window_start_ms)
            .execute(&mut *connection)
            .await?;
    }
    for table in ["login_locks", "address_locks"] {
        sqlx::query(&format!("DELETE FROM {table} WHERE locked_until_ms <= $1"))
            .bind(now_ms)
            .execute(&mut *connection)
            .await?;
    }
    Ok(())
}

/// Locks the pair and empties its count, so the next window starts afresh
/// once the lock ends.
async fn lock_pair(
    connection: &mut AnyConnection,
    attempt: &Attempt,
    until_ms: i64,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO login_locks (username, address, locked_until_ms) VALUES ($1, $2, $3) \
         ON CONFLICT (username, address) DO UPDATE SET locked_until_ms = excluded.locked_until_ms",
    )
    .bind(&attempt.key)
    .bind(&attempt.bucket)
    .bind(until_ms)
    .execute(&mut *connection)
    .await?;
    sqlx::query("DELETE FROM login_failures WHERE username = $1 AND address = $2")
        .bind(&attempt.key)
        .bind(&attempt.bucket)
        .execute(&mut *connection)
        .await?;
    Ok(())
}

async fn lock_address(
    connection: &mut AnyConnection,
    attempt: &Attempt,
    until_ms: i64,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO address_locks (address, locked_until_ms) VALUES ($1, $2) \
         ON CONFLICT (address) DO UPDATE SET locked_until_ms = excluded.locked_until_ms",
    )
    .bind(&attempt.bucket)
    .bind(until_ms)
    .execute(&mut *connection)
    .await?;
    sqlx::query("DELETE FROM address_login_failures WHERE address = $1")
        .bind(&attempt.bucket)
        .execute(&mut *connection)
        .await?;
    Ok(())
}

/// Appends an audit entry with no user, since nobody is logged in, and the
/// username as typed as its target when `with_target`.
async fn audit(
    connection: &mut AnyConnection,
    attempt: &Attempt,
    at_ms: i64,
    action: &str,
    with_target: bool,
) -> Result<(), sqlx::Error> {
    let target = with_target.then_some(attempt.username.as_str());
    let actor = AuditActor::Anonymous;
    insert_audit(
        connection,
        at_ms,
        actor,
        action,
        target,
        attempt.remote.as_deref(),
    )
    .await?;
    Ok(())
}
