//! The append-only audit log: who did what, when and from where.

use serde::{Deserialize, Serialize};
use sqlx::AnyConnection;
use sqlx::Row;
use sqlx::any::AnyRow;
use time::OffsetDateTime;

use crate::store::{AccountStore, from_millis, millis};
use crate::{AccountsError, User};

/// Largest page [`AccountStore::list_audit`] returns.
pub const MAX_AUDIT_PAGE: u32 = 1000;

/// One audit log row.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditEntry {
    pub id: i64,
    #[serde(with = "time::serde::rfc3339")]
    pub at: OffsetDateTime,
    /// The logged-in user who acted; `None` for actions of someone not
    /// logged in, such as a failed login.
    pub user_id: Option<i64>,
    /// The username at the time of the action; `None` with `user_id`.
    pub username: Option<String>,
    /// Dotted name such as `recording.replay` or `user.create`.
    pub action: String,
    /// Object of the action, such as a call id, `user:<id>`, or the username
    /// as typed in a failed login.
    pub target: Option<String>,
    /// The client's IP address and port, when the server has it; the
    /// address alone for the login failure and lockout entries.
    pub remote_address: Option<String>,
}

/// Who an audit entry is about.
#[derive(Clone, Copy, Debug)]
pub(crate) enum AuditActor<'a> {
    User(&'a User),
    /// Nobody logged in.
    Anonymous,
}

/// An action to record with [`AccountStore::append_audit`].
#[derive(Clone, Copy, Debug)]
pub struct NewAuditEntry<'a> {
    pub user: &'a User,
    pub action: &'a str,
    pub target: Option<&'a str>,
    pub remote_address: Option<&'a str>,
}

impl AccountStore {
    /// Appends one entry at `now` and returns it. Entries cannot be changed
    /// or removed afterwards: triggers make UPDATE and DELETE on the table
    /// fail.
    pub async fn append_audit(
        &self,
        entry: NewAuditEntry<'_>,
        now: OffsetDateTime,
    ) -> Result<AuditEntry, AccountsError> {
        let at_ms = millis(now);
        let mut connection = self.pool().acquire().await.map_err(AccountsError::Query)?;
        let actor = AuditActor::User(entry.user);
        let id = insert_audit(
            &mut connection,
            at_ms,
            actor,
            entry.action,
            entry.target,
            entry.remote_address,
        )
        .await
        .map_err(AccountsError::Query)?;
        Ok(AuditEntry {
            id,
            at: from_millis(at_ms)?,
            user_id: Some(entry.user.id),
            username: Some(entry.user.username.clone()),
            action: entry.action.to_owned(),
            target: entry.target.map(str::to_owned),
            remote_address: entry.remote_address.map(str::to_owned),
        })
    }

    /// Appends an entry for an action the PBX took by itself, such as
    /// deleting a recording by retention. Like a failed login it has no
    /// user and no address; its action names what happened.
    pub async fn append_system_audit(
        &self,
        action: &str,
        target: Option<&str>,
        now: OffsetDateTime,
    ) -> Result<AuditEntry, AccountsError> {
        let at_ms = millis(now);
        let mut connection = self.pool().acquire().await.map_err(AccountsError::Query)?;
        let id = insert_audit(
            &mut connection,
            at_ms,
            AuditActor::Anonymous,
            action,
            target,
            None,
        )
        .await
        .map_err(AccountsError::Query)?;
        Ok(AuditEntry {
            id,
            at: from_millis(at_ms)?,
            user_id: None,
            username: None,
            action: action.to_owned(),
            target: target.map(str::to_owned),
            remote_address: None,
        })
    }

    /// Returns up to `limit` entries (at most [`MAX_AUDIT_PAGE`]), newest
    /// first, skipping the first `offset`.
    pub async fn list_audit(
        &self,
        limit: u32,
        offset: u32,
    ) -> Result<Vec<AuditEntry>, AccountsError> {
        let rows = sqlx::query(
            "SELECT id, at_ms, user_id, username, action, target, remote_address \
             FROM audit_log ORDER BY id DESC LIMIT $1 OFFSET $2",
        )
        .bind(i64::from(limit.min(MAX_AUDIT_PAGE)))
        .bind(i64::from(offset))
        .fetch_all(self.pool())
        .await
        .map_err(AccountsError::Query)?;
        rows.iter().map(entry_from_row).collect()
    }
}

/// Inserts one audit row on `connection`, which may be inside a
/// transaction, and returns its id.
pub(crate) async fn insert_audit(
    connection: &mut AnyConnection,
    at_ms: i64,
    actor: AuditActor<'_>,
    action: &str,
    target: Option<&str>,
    remote_address: Option<&str>,
) -> Result<i64, sqlx::Error> {
    let (user_id, username) = match actor {
        AuditActor::User(user) => (Some(user.id), Some(user.username.as_str())),
        AuditActor::Anonymous => (None, None),
    };
    sqlx::query_scalar(
        "INSERT INTO audit_log (at_ms, user_id, username, action, target, remote_address) \
         VALUES ($1, $2, $3, $4, $5, $6) RETURNING id",
    )
    .bind(at_ms)
    .bind(user_id)
    .bind(username)
    .bind(action)
    .bind(target)
    .bind(remote_address)
    .fetch_one(connection)
    .await
}

fn entry_from_row(row: &AnyRow) -> Result<AuditEntry, AccountsError> {
    let get = |name: &str| row.try_get(name).map_err(AccountsError::Query);
    Ok(AuditEntry {
        id: get("id")?,
        at: from_millis(get("at_ms")?)?,
        user_id: row.try_get("user_id").map_err(AccountsError::Query)?,
        username: row.try_get("username").map_err(AccountsError::Query)?,
        action: row.try_get("action").map_err(AccountsError::Query)?,
        target: row.try_get("target").map_err(AccountsError::Query)?,
        remote_address: row
            .try_get("remote_address")
            .map_err(AccountsError::Query)?,
    })
}
