//! Login, session cookies and API bearer tokens.

use std::net::IpAddr;

use sqlx::Row;
use time::OffsetDateTime;

use crate::lockout::Attempt;
use crate::store::{AccountStore, USER_COLUMNS, from_millis, millis, user_from_row};
use crate::token::{self, API_TOKEN_PREFIX};
use crate::{AccountsError, ApiToken, Caller, Credential, NewApiToken, Session};

const MAX_TOKEN_NAME_LENGTH: usize = 100;

impl AccountStore {
    /// Checks `username` and `password` from client address `remote` and
    /// starts a session that expires after [`crate::Policy::session_lifetime`].
    ///
    /// Failures are counted per (username as typed, case-insensitive,
    /// client address), with every client of unknown address (`None`) in
    /// one bucket and IPv6 clients bucketed by /64. A locked pair or address
    /// gets [`AccountsError::Locked`] without the password being checked.
    /// A wrong password counts as a failure, and the failure that reaches
    /// [`crate::Policy::max_failed_logins`] for the pair, or
    /// [`crate::Policy::max_failed_logins_per_address`] for the address,
    /// inside the window locks it and returns `Locked`. An unknown username
    /// and a disabled user count and fail exactly like a wrong password, so
    /// neither the error nor the lockout reveals which usernames exist.
    /// Failures and locks are written to the audit log (see
    /// `docs/api.md`).
    pub async fn login(
        &self,
        username: &str,
        password: &str,
        remote: Option<IpAddr>,
        now: OffsetDateTime,
    ) -> Result<Session, AccountsError> {
        let attempt = Attempt::new(username, remote);
        // Held until the failure is counted, so the next login from this
        // address sees it.
        let _turn = self.login_queues().enter(&attempt.bucket).await;
        if let Some(locked) = self.active_lock(&attempt, now).await? {
            return Err(locked);
        }
        // lower() on both sides matches usernames as SQLite's NOCASE column
        // does, also in PostgreSQL. Valid usernames are ASCII, where the two
        // foldings agree.
        let row = sqlx::query(
            "SELECT id, password_hash, disabled FROM users WHERE lower(username) = lower($1)",
        )
        .bind(username)
        .fetch_optional(self.pool())
        .await
        .map_err(AccountsError::Query)?;
        let Some(row) = row else {
            self.verify_password(password, None).await?;
            return Err(self.record_failure(&attempt, now).await);
        };
        let get = |name: &str| row.try_get::<i64, _>(name).map_err(AccountsError::Query);
        let id = get("id")?;
        let stored: String = row.try_get("password_hash").map_err(AccountsError::Query)?;
        let verified = self.verify_password(password, Some(stored)).await?;
        // A disabled user with the right password counts as a failure too,
        // so its lockout behaves like any other username's.
        let disabled = cdr::database::flag(&row, "disabled").map_err(AccountsError::Query)?;
        if !verified || disabled {
            return Err(self.record_failure(&attempt, now).await);
        }
        self.start_session(id, &attempt, now).await
    }

    async fn start_session(
        &self,
        id: i64,
        attempt: &Attempt,
        now: OffsetDateTime,
    ) -> Result<Session, AccountsError> {
        let secret = token::generate();
        let expires_at = now + self.policy().session_lifetime;
        let mut transaction = self.pool().begin().await.map_err(AccountsError::Query)?;
        // Expired sessions of every user go here, so the table stays small
        // without a background task.
        sqlx::query("DELETE FROM sessions WHERE expires_at_ms <= $1")
            .bind(millis(now))
            .execute(&mut *transaction)
            .await
            .map_err(AccountsError::Query)?;
        AccountStore::clear_failures(&mut transaction, attempt)
            .await
            .map_err(AccountsError::Query)?;
        sqlx::query(
            "INSERT INTO sessions (token_hash, user_id, created_at_ms, expires_at_ms) \
             VALUES ($1, $2, $3, $4)",
        )
        .bind(token::digest(&secret))
        .bind(id)
        .bind(millis(now))
        .bind(millis(expires_at))
        .execute(&mut *transaction)
        .await
        .map_err(AccountsError::Query)?;
        transaction.commit().await.map_err(AccountsError::Query)?;
        Ok(Session {
            token: secret,
            user: self.existing_user(id).await?,
            expires_at,
        })
    }

    /// Returns the user of the session cookie `secret`, or `None` when the
    /// session is unknown, ended, expired at `now`, or its user is disabled.
    pub async fn session_caller(
        &self,
        secret: &str,
        now: OffsetDateTime,
    ) -> Result<Option<Caller>, AccountsError> {
        let row = sqlx::query(&format!(
            "SELECT {USER_COLUMNS} FROM sessions JOIN users ON users.id = sessions.user_id \
             WHERE sessions.token_hash = $1 AND sessions.expires_at_ms > $2 AND NOT users.disabled"
        ))
        .bind(token::digest(secret))
        .bind(millis(now))
        .fetch_optional(self.pool())
        .await
        .map_err(AccountsError::Query)?;
        let user = row.as_ref().map(user_from_row).transpose()?;
        Ok(user.map(|user| Caller {
            user,
            credential: Credential::Session,
        }))
    }

    /// Ends the session of cookie `secret`. Returns whether it existed.
    pub async fn logout(&self, secret: &str) -> Result<bool, AccountsError> {
        let result = sqlx::query("DELETE FROM sessions WHERE token_hash = $1")
            .bind(token::digest(secret))
            .execute(self.pool())
            .await
            .map_err(AccountsError::Query)?;
        Ok(result.rows_affected() > 0)
    }

    /// Creates an API bearer token that acts as user `user_id`, made by the
    /// administrator `created_by`.
    pub async fn create_api_token(
        &self,
        user_id: i64,
        name: &str,
        created_by: i64,
        now: OffsetDateTime,
    ) -> Result<NewApiToken, AccountsError> {
        let length = name.chars().count();
        if name.trim().is_empty()
            || length > MAX_TOKEN_NAME_LENGTH
            || name.chars().any(char::is_control)
        {
            return Err(AccountsError::InvalidTokenName {
                name: name.to_owned(),
            });
        }
        self.existing_user(user_id).await?;
        let secret = format!("{API_TOKEN_PREFIX}{}", token::generate());
        let id: i64 = sqlx::query_scalar(
            "INSERT INTO api_tokens (token_hash, user_id, name, created_by, created_at_ms) \
             VALUES ($1, $2, $3, $4, $5) RETURNING id",
        )
        .bind(token::digest(&secret))
        .bind(user_id)
        .bind(name)
        .bind(created_by)
        .bind(millis(now))
        .fetch_one(self.pool())
        .await
        .map_err(AccountsError::Query)?;
        Ok(NewApiToken {
            token: secret,
            info: ApiToken {
                id,
                user_id,
                name: name.to_owned(),
                created_by,
                created_at: from_millis(millis(now))?,
            },
        })
    }

    /// Returns every API token, oldest first, without the secrets.
    pub async fn list_api_tokens(&self) -> Result<Vec<ApiToken>, AccountsError> {
        let rows = sqlx::query(
            "SELECT id, user_id, name, created_by, created_at_ms FROM api_tokens ORDER BY id",
        )
        .fetch_all(self.pool())
        .await
        .map_err(AccountsError::Query)?;
        rows.iter()
            .map(|row| {
                let get = |name: &str| row.try_get::<i64, _>(name).map_err(AccountsError::Query);
                Ok(ApiToken {
                    id: get("id")?,
                    user_id: get("user_id")?,
                    name: row.try_get("name").map_err(AccountsError::Query)?,
                    created_by: get("created_by")?,
                    created_at: from_millis(get("created_at_ms")?)?,
                })
            })
            .collect()
    }

    /// Deletes API token `id`. Returns whether it existed.
    pub async fn revoke_api_token(&self, id: i64) -> Result<bool, AccountsError> {
        let result = sqlx::query("DELETE FROM api_tokens WHERE id = $1")
            .bind(id)
            .execute(self.pool())
            .await
            .map_err(AccountsError::Query)?;
        Ok(result.rows_affected() > 0)
    }

    /// Returns the user of bearer token `secret`, or `None` when the token
    /// is unknown or revoked, or its user is disabled.
    pub async fn token_caller(&self, secret: &str) -> Result<Option<Caller>, AccountsError> {
        let row = sqlx::query(&format!(
            "SELECT api_tokens.id AS token_id, {USER_COLUMNS} \
             FROM api_tokens JOIN users ON users.id = api_tokens.user_id \
             WHERE api_tokens.token_hash = $1 AND NOT users.disabled"
        ))
        .bind(token::digest(secret))
        .fetch_optional(self.pool())
        .await
        .map_err(AccountsError::Query)?;
        let Some(row) = row else {
            return Ok(None);
        };
        Ok(Some(Caller {
            user: user_from_row(&row)?,
            credential: Credential::ApiToken {
                id: row.try_get("token_id").map_err(AccountsError::Query)?,
            },
        }))
    }
}
