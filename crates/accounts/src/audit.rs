//! The append-only audit log: who did what, when and from where.

use serde::{Deserialize, Serialize};
use sqlx::Row;
use sqlx::sqlite::SqliteRow;
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
    pub user_id: i64,
    /// The username at the time of the action.
    pub username: String,
    /// Dotted name such as `recording.replay` or `user.create`.
    pub action: String,
    /// Object of the action, such as a call id or `user:<id>`.
    pub target: Option<String>,
    /// The client's IP address and port, when the server has it.
    pub remote_address: Option<String>,
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
        let id: i64 = sqlx::query_scalar(
            "INSERT INTO audit_log (at_ms, user_id, username, action, target, remote_address) \
             VALUES (?, ?, ?, ?, ?, ?) RETURNING id",
        )
        .bind(at_ms)
        .bind(entry.user.id)
        .bind(&entry.user.username)
        .bind(entry.action)
        .bind(entry.target)
        .bind(entry.remote_address)
        .fetch_one(self.pool())
        .await
        .map_err(AccountsError::Query)?;
        Ok(AuditEntry {
            id,
            at: from_millis(at_ms)?,
            user_id: entry.user.id,
            username: entry.user.username.clone(),
            action: entry.action.to_owned(),
            target: entry.target.map(str::to_owned),
            remote_address: entry.remote_address.map(str::to_owned),
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
             FROM audit_log ORDER BY id DESC LIMIT ? OFFSET ?",
        )
        .bind(i64::from(limit.min(MAX_AUDIT_PAGE)))
        .bind(i64::from(offset))
        .fetch_all(self.pool())
        .await
        .map_err(AccountsError::Query)?;
        rows.iter().map(entry_from_row).collect()
    }
}

fn entry_from_row(row: &SqliteRow) -> Result<AuditEntry, AccountsError> {
    let get = |name: &str| row.try_get(name).map_err(AccountsError::Query);
    Ok(AuditEntry {
        id: get("id")?,
        at: from_millis(get("at_ms")?)?,
        user_id: get("user_id")?,
        username: row.try_get("username").map_err(AccountsError::Query)?,
        action: row.try_get("action").map_err(AccountsError::Query)?,
        target: row.try_get("target").map_err(AccountsError::Query)?,
        remote_address: row
            .try_get("remote_address")
            .map_err(AccountsError::Query)?,
    })
}
