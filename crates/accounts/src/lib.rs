//! Console accounts: users and their roles, password login with lockout,
//! session cookies, API bearer tokens and the append-only audit log.
//!
//! [`AccountStore`] keeps everything in the PBX's database (SQLite or
//! PostgreSQL), on the pool that `cdr::CdrStore::pool()` opens, in tables
//! of its own. Their migrations are in `migrations/sqlite` and
//! `migrations/postgres`, with versions 1000 and up so they never collide
//! with another store's in sqlx's shared `_sqlx_migrations` table.
//!
//! Secrets are never stored in clear. Passwords are Argon2id hashes in PHC
//! string format; session and API tokens are 256-bit random values of which
//! only the SHA-256 digest is kept, so a copy of the database lets nobody log
//! in. A plaintext token exists only in the value returned when it is made.
//!
//! The audit log is append-only for every SQL client: triggers make UPDATE
//! and DELETE on `audit_log` fail (and TRUNCATE in PostgreSQL). Someone with
//! write access to the database file, or the table's owner in PostgreSQL,
//! can still drop the triggers, so those rights are what protects the log
//! from the database's administrators.
//!
//! Failed logins lock the username as typed for the client's address only,
//! and many failures from one address lock that address for every username
//! (see [`Policy`]); unknown usernames are counted and locked like known
//! ones, so replies do not reveal which usernames exist.
//!
//! The crate does not read the clock: every call that depends on time takes
//! `now`, so lockout and expiry are tested by moving a value forward. It does
//! not decide what a role may do either; the HTTP layer in the `pbx` binary
//! does, with [`Role`] and [`User::agent_id`].

mod audit;
mod lockout;
mod login;
mod login_queue;
mod migrate;
mod password;
mod store;
mod token;

#[cfg(test)]
mod tests;

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

pub use audit::{AuditEntry, MAX_AUDIT_PAGE, NewAuditEntry};
pub use lockout::{LockScope, typed_username};
pub use password::{PasswordCost, generate_password};
pub use store::{AccountStore, Policy};

/// Permission level of a user in the console and the API.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// Manages users and API tokens and reads the audit log.
    Administrator,
    /// Sees all calls, replays recordings and reads the audit log.
    Supervisor,
    /// Quality assurance: sees all calls and replays recordings.
    Qa,
    /// Sees the calls that the linked SIP agent answered.
    Agent,
}

impl Role {
    /// Every role, in the order the API documents them.
    pub const ALL: [Role; 4] = [Role::Administrator, Role::Supervisor, Role::Qa, Role::Agent];

    /// Returns the snake_case name used in JSON and in the database.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Administrator => "administrator",
            Role::Supervisor => "supervisor",
            Role::Qa => "qa",
            Role::Agent => "agent",
        }
    }

    /// Parses a name returned by [`Role::as_str`].
    pub fn from_name(name: &str) -> Option<Role> {
        Role::ALL.into_iter().find(|role| role.as_str() == name)
    }
}

/// A console user, without its password hash.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct User {
    pub id: i64,
    pub username: String,
    pub role: Role,
    /// SIP agent id of a user of role agent; `None` for the other roles.
    pub agent_id: Option<String>,
    /// A disabled user cannot log in, and its sessions and tokens stop working.
    pub disabled: bool,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
}

/// Fields of a user to create.
#[derive(Clone, Debug)]
pub struct NewUser {
    pub username: String,
    pub password: String,
    pub role: Role,
    /// Required for [`Role::Agent`], rejected for the other roles.
    pub agent_id: Option<String>,
}

/// Changes to a user; `None` leaves a field as it is.
#[derive(Clone, Debug, Default)]
pub struct UserChanges {
    pub role: Option<Role>,
    /// `Some(None)` removes the agent id.
    pub agent_id: Option<Option<String>>,
    pub disabled: Option<bool>,
}

/// A console session made by [`AccountStore::login`].
#[derive(Clone, Debug)]
pub struct Session {
    /// The cookie value. Only its digest is stored, so this is the only copy.
    pub token: String,
    pub user: User,
    pub expires_at: OffsetDateTime,
}

/// An API bearer token as listed; the secret itself is never stored.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApiToken {
    pub id: i64,
    /// The user the token acts as: requests carry that user's role.
    pub user_id: i64,
    /// What the token is for, such as the integration's name.
    pub name: String,
    /// The administrator who created it.
    pub created_by: i64,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
}

/// A token just made by [`AccountStore::create_api_token`].
#[derive(Clone, Debug)]
pub struct NewApiToken {
    /// The bearer secret. Only its digest is stored, so this is the only copy.
    pub token: String,
    pub info: ApiToken,
}

/// How a request proved who it comes from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Credential {
    /// A session cookie from [`AccountStore::login`].
    Session,
    /// An API bearer token, by its id.
    ApiToken { id: i64 },
}

/// The user behind a request and the credential it used.
#[derive(Clone, Debug)]
pub struct Caller {
    pub user: User,
    pub credential: Credential,
}

/// Errors of the account store; each names the user, value or table involved.
#[derive(Debug, thiserror::Error)]
pub enum AccountsError {
    #[error("accounts database query failed: {0}")]
    Query(#[source] sqlx::Error),
    #[error("failed to migrate the accounts tables: {0}")]
    Migrate(#[source] sqlx::migrate::MigrateError),
    #[error("invalid value {value:?} in accounts database, table {table}, column {column}")]
    InvalidRow {
        table: &'static str,
        column: &'static str,
        value: String,
    },
    #[error("invalid username {username:?}: use 1 to 64 letters, digits, '.', '_' or '-'")]
    InvalidUsername { username: String },
    #[error("username {username:?} is already taken")]
    DuplicateUsername { username: String },
    #[error("password is too short: {length} characters, at least {minimum} required")]
    PasswordTooShort { length: usize, minimum: usize },
    #[error("password is too long: {length} characters, at most {maximum} allowed")]
    PasswordTooLong { length: usize, maximum: usize },
    #[error("a user of role agent needs an agent_id, the SIP agent whose calls it sees")]
    AgentIdRequired,
    #[error("only users of role agent have an agent_id, not role {role}")]
    AgentIdNotAllowed { role: &'static str },
    #[error("invalid agent_id {agent_id:?}: use 1 to 64 letters, digits, '.', '_' or '-'")]
    InvalidAgentId { agent_id: String },
    #[error("invalid token name {name:?}: use 1 to 100 characters")]
    InvalidTokenName { name: String },
    #[error(
        "user {username:?} is the last enabled administrator; \
         make another user administrator first"
    )]
    LastAdministrator { username: String },
    #[error("user {id} not found")]
    UserNotFound { id: i64 },
    #[error("invalid username or password")]
    InvalidCredentials,
    /// Returned alike for known and unknown usernames, so it does not
    /// reveal which usernames exist.
    #[error(
        "{} is locked after repeated failed logins until {until}",
        scope.describe(username)
    )]
    Locked {
        /// The username as typed in the login request.
        username: String,
        scope: LockScope,
        until: OffsetDateTime,
    },
    #[error("invalid password cost: {0}")]
    PasswordCost(#[source] argon2::Error),
    #[error("failed to hash or check a password: {0}")]
    PasswordHash(#[source] argon2::password_hash::Error),
    #[error("password hashing task failed: {0}")]
    HashTask(#[source] tokio::task::JoinError),
    #[error("time {at_ms} ms since 1970 is out of range")]
    TimeOutOfRange { at_ms: i64 },
}
