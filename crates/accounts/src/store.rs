//! [`AccountStore`]: the users table and the helpers the other parts share.

use std::sync::{Arc, OnceLock};

use sqlx::AnyPool;
use sqlx::Row;
use sqlx::any::AnyRow;
use time::{Duration, OffsetDateTime};

use crate::login_queue::LoginQueues;
use crate::password::{self, PasswordCost};
use crate::{AccountsError, NewUser, Role, User, UserChanges};

pub(crate) const USER_COLUMNS: &str =
    "users.id, users.username, users.role, users.agent_id, users.disabled, users.created_at_ms";

pub(crate) const MAX_NAME_LENGTH: usize = 64;
/// NIST SP 800-63B requires verifiers to accept at least 64 characters; beyond
/// 1024 a request is more likely an attempt to waste hashing time.
const MAX_PASSWORD_LENGTH: usize = 1024;

/// Limits and costs of an [`AccountStore`].
#[derive(Clone, Copy, Debug)]
pub struct Policy {
    /// How long a session cookie stays valid after login.
    pub session_lifetime: Duration,
    /// Failed logins for one username (as typed, case-insensitive) from one
    /// client address within `failure_window` that lock that username for
    /// that address.
    pub max_failed_logins: u32,
    /// Failed logins from one client address, whatever the usernames,
    /// within `failure_window` that lock that address for every username.
    /// Set well above `max_failed_logins` so that people sharing an address
    /// (an office behind NAT) rarely reach it, while it still slows password
    /// spraying across many usernames.
    pub max_failed_logins_per_address: u32,
    pub failure_window: Duration,
    /// How long a lock lasts; a locked login is refused even with the right
    /// password.
    pub lockout: Duration,
    pub password_cost: PasswordCost,
    /// Shortest password accepted when one is set; 8 is NIST SP 800-63B's
    /// minimum for passwords people choose.
    pub min_password_length: usize,
}

impl Default for Policy {
    /// 8-hour sessions (one shift); 5 failures in 15 minutes lock a
    /// username for one address for 15 minutes, and 50 failures in 15
    /// minutes lock an address for 15 minutes.
    fn default() -> Policy {
        Policy {
            session_lifetime: Duration::hours(8),
            max_failed_logins: 5,
            max_failed_logins_per_address: 50,
            failure_window: Duration::minutes(15),
            lockout: Duration::minutes(15),
            password_cost: PasswordCost::RECOMMENDED,
            min_password_length: 8,
        }
    }
}

/// Users, sessions, API tokens and the audit log in the PBX database.
/// Cloning shares the pool.
#[derive(Clone, Debug)]
pub struct AccountStore {
    pool: AnyPool,
    policy: Policy,
    /// Hash checked when a login names no user, so that the response takes
    /// as long as for a wrong password and does not reveal which names exist.
    dummy_hash: Arc<OnceLock<String>>,
    login_queues: Arc<LoginQueues>,
}

impl AccountStore {
    /// Wraps `pool` and applies the accounts migrations.
    pub async fn open(pool: AnyPool, policy: Policy) -> Result<AccountStore, AccountsError> {
        let store = AccountStore::new(pool, policy);
        store.migrate().await?;
        Ok(store)
    }

    /// Wraps `pool` without touching the database. Every query fails until
    /// [`AccountStore::migrate`] (or [`AccountStore::open`]) has run once on
    /// that database.
    pub fn new(pool: AnyPool, policy: Policy) -> AccountStore {
        AccountStore {
            pool,
            policy,
            dummy_hash: Arc::new(OnceLock::new()),
            login_queues: Arc::new(LoginQueues::default()),
        }
    }

    /// Applies the migrations that the database does not have yet.
    pub async fn migrate(&self) -> Result<(), AccountsError> {
        crate::migrate::run(&self.pool).await
    }

    pub fn pool(&self) -> &AnyPool {
        &self.pool
    }

    pub fn policy(&self) -> &Policy {
        &self.policy
    }

    pub(crate) fn login_queues(&self) -> &LoginQueues {
        &self.login_queues
    }

    /// Returns the number of users, disabled ones included.
    pub async fn user_count(&self) -> Result<i64, AccountsError> {
        sqlx::query_scalar("SELECT COUNT(*) FROM users")
            .fetch_one(&self.pool)
            .await
            .map_err(AccountsError::Query)
    }

    /// Creates a user after checking the name, password and agent id.
    pub async fn create_user(
        &self,
        new: &NewUser,
        now: OffsetDateTime,
    ) -> Result<User, AccountsError> {
        let hash = self
            .checked_hash(&new.username, &new.password, new.role, &new.agent_id)
            .await?;
        let id: i64 = sqlx::query_scalar(
            "INSERT INTO users (username, role, agent_id, password_hash, created_at_ms) \
             VALUES ($1, $2, $3, $4, $5) RETURNING id",
        )
        .bind(&new.username)
        .bind(new.role.as_str())
        .bind(&new.agent_id)
        .bind(hash)
        .bind(millis(now))
        .fetch_one(&self.pool)
        .await
        .map_err(|error| duplicate_or_query(error, &new.username))?;
        self.existing_user(id).await
    }

    /// Creates the administrator `username` only when there is no user at
    /// all, in one statement so two starts cannot both create one. Returns
    /// `None` when users already exist, or when another start created the
    /// same administrator at the same moment. In PostgreSQL the NOT EXISTS
    /// check does not see the other start's uncommitted insert, so this
    /// insert fails on the unique username instead.
    pub async fn create_first_administrator(
        &self,
        username: &str,
        password: &str,
        now: OffsetDateTime,
    ) -> Result<Option<User>, AccountsError> {
        let hash = self
            .checked_hash(username, password, Role::Administrator, &None)
            .await?;
        let id: Result<Option<i64>, sqlx::Error> = sqlx::query_scalar(
            "INSERT INTO users (username, role, password_hash, created_at_ms) \
             SELECT $1, 'administrator', $2, $3 WHERE NOT EXISTS (SELECT 1 FROM users) \
             RETURNING id",
        )
        .bind(username)
        .bind(hash)
        .bind(millis(now))
        .fetch_optional(&self.pool)
        .await;
        match id {
            Ok(Some(id)) => self.existing_user(id).await.map(Some),
            Ok(None) => Ok(None),
            Err(sqlx::Error::Database(error)) if error.is_unique_violation() => Ok(None),
            Err(error) => Err(AccountsError::Query(error)),
        }
    }

    /// Returns every user, oldest first.
    pub async fn list_users(&self) -> Result<Vec<User>, AccountsError> {
        let rows = sqlx::query(&format!("SELECT {USER_COLUMNS} FROM users ORDER BY id"))
            .fetch_all(&self.pool)
            .await
            .map_err(AccountsError::Query)?;
        rows.iter().map(user_from_row).collect()
    }

    /// Returns the user with `id`, if any.
    pub async fn user(&self, id: i64) -> Result<Option<User>, AccountsError> {
        let row = sqlx::query(&format!("SELECT {USER_COLUMNS} FROM users WHERE id = $1"))
            .bind(id)
            .fetch_optional(&self.pool)
            .await
            .map_err(AccountsError::Query)?;
        row.as_ref().map(user_from_row).transpose()
    }

    /// Applies `changes` to user `id` and returns the result. A role other
    /// than agent drops the agent id unless the changes set one, which is
    /// then rejected. Disabling a user ends its sessions. The last enabled
    /// administrator can be neither disabled nor given another role, so the
    /// console always has someone who manages users.
    pub async fn update_user(&self, id: i64, changes: &UserChanges) -> Result<User, AccountsError> {
        let current = self.existing_user(id).await?;
        let role = changes.role.unwrap_or(current.role);
        let agent_id = match (&changes.agent_id, role) {
            (Some(agent_id), _) => agent_id.clone(),
            (None, Role::Agent) => current.agent_id.clone(),
            (None, _) => None,
        };
        check_agent_id(role, &agent_id)?;
        let disabled = changes.disabled.unwrap_or(current.disabled);
        let stays_administrator = role == Role::Administrator && !disabled;
        if current.role == Role::Administrator && !current.disabled && !stays_administrator {
            self.check_other_administrator(&current).await?;
        }

        let mut transaction = self.pool.begin().await.map_err(AccountsError::Query)?;
        sqlx::query("UPDATE users SET role = $1, agent_id = $2, disabled = $3 WHERE id = $4")
            .bind(role.as_str())
            .bind(&agent_id)
            .bind(disabled)
            .bind(id)
            .execute(&mut *transaction)
            .await
            .map_err(AccountsError::Query)?;
        if disabled {
            sqlx::query("DELETE FROM sessions WHERE user_id = $1")
                .bind(id)
                .execute(&mut *transaction)
                .await
                .map_err(AccountsError::Query)?;
        }
        transaction.commit().await.map_err(AccountsError::Query)?;
        self.existing_user(id).await
    }

    /// Sets a new password for user `id`, ends its sessions, and lifts the
    /// locks of its username from every address.
    pub async fn set_password(&self, id: i64, password: &str) -> Result<(), AccountsError> {
        let user = self.existing_user(id).await?;
        let hash = self
            .checked_hash(&user.username, password, user.role, &user.agent_id)
            .await?;
        let mut transaction = self.pool.begin().await.map_err(AccountsError::Query)?;
        sqlx::query("UPDATE users SET password_hash = $1 WHERE id = $2")
            .bind(hash)
            .bind(id)
            .execute(&mut *transaction)
            .await
            .map_err(AccountsError::Query)?;
        sqlx::query("DELETE FROM sessions WHERE user_id = $1")
            .bind(id)
            .execute(&mut *transaction)
            .await
            .map_err(AccountsError::Query)?;
        AccountStore::unlock_username(&mut transaction, &user.username)
            .await
            .map_err(AccountsError::Query)?;
        transaction.commit().await.map_err(AccountsError::Query)
    }

    pub(crate) async fn existing_user(&self, id: i64) -> Result<User, AccountsError> {
        self.user(id)
            .await?
            .ok_or(AccountsError::UserNotFound { id })
    }

    async fn check_other_administrator(&self, user: &User) -> Result<(), AccountsError> {
        let others: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM users \
             WHERE role = 'administrator' AND NOT disabled AND id <> $1",
        )
        .bind(user.id)
        .fetch_one(&self.pool)
        .await
        .map_err(AccountsError::Query)?;
        if others == 0 {
            return Err(AccountsError::LastAdministrator {
                username: user.username.clone(),
            });
        }
        Ok(())
    }

    /// Checks a user's fields and returns the hash of `password`.
    async fn checked_hash(
        &self,
        username: &str,
        password: &str,
        role: Role,
        agent_id: &Option<String>,
    ) -> Result<String, AccountsError> {
        if !is_valid_name(username) {
            return Err(AccountsError::InvalidUsername {
                username: username.to_owned(),
            });
        }
        check_agent_id(role, agent_id)?;
        let length = password.chars().count();
        if length < self.policy.min_password_length {
            return Err(AccountsError::PasswordTooShort {
                length,
                minimum: self.policy.min_password_length,
            });
        }
        if length > MAX_PASSWORD_LENGTH {
            return Err(AccountsError::PasswordTooLong {
                length,
                maximum: MAX_PASSWORD_LENGTH,
            });
        }
        let password = password.to_owned();
        let cost = self.policy.password_cost;
        // Hashing takes tens of milliseconds of CPU on purpose; it runs off
        // the async worker threads.
        tokio::task::spawn_blocking(move || password::hash(&password, cost))
            .await
            .map_err(AccountsError::HashTask)?
    }

    /// Checks `password` against `stored`, or against a throwaway hash of
    /// the same cost when there is no user, off the async worker threads.
    pub(crate) async fn verify_password(
        &self,
        password: &str,
        stored: Option<String>,
    ) -> Result<bool, AccountsError> {
        let password = password.to_owned();
        let dummy = Arc::clone(&self.dummy_hash);
        let cost = self.policy.password_cost;
        tokio::task::spawn_blocking(move || match stored {
            Some(stored) => password::verify(&password, &stored),
            None => {
                // An empty string if hashing fails: the check below then
                // fails fast, which only costs the timing equality.
                let dummy = dummy.get_or_init(|| password::hash("", cost).unwrap_or_default());
                // A missing user never matches, whatever the check returns.
                let _ = password::verify(&password, dummy);
                Ok(false)
            }
        })
        .await
        .map_err(AccountsError::HashTask)?
    }
}

fn check_agent_id(role: Role, agent_id: &Option<String>) -> Result<(), AccountsError> {
    match (role, agent_id) {
        (Role::Agent, None) => Err(AccountsError::AgentIdRequired),
        (Role::Agent, Some(agent_id)) if !is_valid_name(agent_id) => {
            Err(AccountsError::InvalidAgentId {
                agent_id: agent_id.clone(),
            })
        }
        (Role::Agent, Some(_)) | (_, None) => Ok(()),
        (role, Some(_)) => Err(AccountsError::AgentIdNotAllowed {
            role: role.as_str(),
        }),
    }
}

/// Usernames and agent ids: 1 to 64 ASCII letters, digits, '.', '_' or '-',
/// so they are safe in URLs, logs and SIP user parts alike.
fn is_valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= MAX_NAME_LENGTH
        && name
            .bytes()
            .all(|byte| byte.is_ascii_alphanumeric() || matches!(byte, b'.' | b'_' | b'-'))
}

fn duplicate_or_query(error: sqlx::Error, username: &str) -> AccountsError {
    match &error {
        sqlx::Error::Database(database) if database.is_unique_violation() => {
            AccountsError::DuplicateUsername {
                username: username.to_owned(),
            }
        }
        _ => AccountsError::Query(error),
    }
}

pub(crate) fn user_from_row(row: &AnyRow) -> Result<User, AccountsError> {
    let role: String = row.try_get("role").map_err(AccountsError::Query)?;
    let role = Role::from_name(&role).ok_or(AccountsError::InvalidRow {
        table: "users",
        column: "role",
        value: role,
    })?;
    Ok(User {
        id: row.try_get("id").map_err(AccountsError::Query)?,
        username: row.try_get("username").map_err(AccountsError::Query)?,
        role,
        agent_id: row.try_get("agent_id").map_err(AccountsError::Query)?,
        disabled: cdr::database::flag(row, "disabled").map_err(AccountsError::Query)?,
        created_at: from_millis(row.try_get("created_at_ms").map_err(AccountsError::Query)?)?,
    })
}

/// Unix milliseconds of `at`. Years 0 to 9999, all that RFC 3339 text can
/// hold, fit in i64 milliseconds many times over, so the cast cannot wrap.
pub(crate) fn millis(at: OffsetDateTime) -> i64 {
    (at.unix_timestamp_nanos() / 1_000_000) as i64
}

pub(crate) fn from_millis(at_ms: i64) -> Result<OffsetDateTime, AccountsError> {
    OffsetDateTime::from_unix_timestamp_nanos(i128::from(at_ms) * 1_000_000)
        .map_err(|_| AccountsError::TimeOutOfRange { at_ms })
}
