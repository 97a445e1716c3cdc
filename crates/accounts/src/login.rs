//! Login with lockout, session cookies and API bearer tokens.

use sqlx::Row;
use time::OffsetDateTime;

use crate::store::{AccountStore, USER_COLUMNS, from_millis, millis, user_from_row};
use crate::token::{self, API_TOKEN_PREFIX};
use crate::{AccountsError, ApiToken, Caller, Credential, NewApiToken, Session};

const MAX_TOKEN_NAME_LENGTH: usize = 100;

impl AccountStore {
    /// Checks `username` and `password` and starts a session that expires
    /// after [`crate::Policy::session_lifetime`].
    ///
    /// A locked user gets [`AccountsError::Locked`] without the password
    /// being checked. A wrong password counts as a failure, and the failure
    /// that reaches [`crate::Policy::max_failed_logins`] inside the window
    /// locks the user and returns `Locked`. An unknown username and a
    /// disabled user get [`AccountsError::InvalidCredentials`] like a wrong
    /// password, so the error does not reveal which usernames exist.
    pub async fn login(
        &self,
        username: &str,
        password: &str,
        now: OffsetDateTime,
    ) -> Result<Session, AccountsError> {
        let row = sqlx::query(
            "SELECT id, username, password_hash, disabled, locked_until_ms \
             FROM users WHERE username = ?",
        )
        .bind(username)
        .fetch_optional(self.pool())
        .await
        .map_err(AccountsError::Query)?;
        let Some(row) = row else {
            self.verify_password(password, None).await?;
            return Err(AccountsError::InvalidCredentials);
        };
        let get = |name: &str| row.try_get::<i64, _>(name).map_err(AccountsError::Query);
        let id = get("id")?;
        let stored_name: String = row.try_get("username").map_err(AccountsError::Query)?;
        let locked_until: Option<i64> = row
            .try_get("locked_until_ms")
            .map_err(AccountsError::Query)?;
        if let Some(until_ms) = locked_until.filter(|&until_ms| until_ms > millis(now)) {
            return Err(AccountsError::Locked {
                username: stored_name,
                until: from_millis(until_ms)?,
            });
        }
        let stored: String = row.try_get("password_hash").map_err(AccountsError::Query)?;
        if !self.verify_password(password, Some(stored)).await? {
            return Err(self.record_failure(id, stored_name, now).await);
        }
        if get("disabled")? != 0 {
            return Err(AccountsError::InvalidCredentials);
        }
        self.start_session(id, now).await
    }

    /// Counts a failed login for user `id` and returns the error to report:
    /// `Locked` when this failure locks the user.
    async fn record_failure(
        &self,
        id: i64,
        username: String,
        now: OffsetDateTime,
    ) -> AccountsError {
        let policy = *self.policy();
        let now_ms = millis(now);
        let window_start = millis(now - policy.failure_window);
        let until = now + policy.lockout;
        let result: Result<bool, sqlx::Error> = async {
            let mut transaction = self.pool().begin().await?;
            sqlx::query("DELETE FROM login_failures WHERE user_id = ? AND at_ms <= ?")
                .bind(id)
                .bind(window_start)
                .execute(&mut *transaction)
                .await?;
            sqlx::query("INSERT INTO login_failures (user_id, at_ms) VALUES (?, ?)")
                .bind(id)
                .bind(now_ms)
                .execute(&mut *transaction)
                .await?;
            let failures: i64 =
                sqlx::query_scalar("SELECT COUNT(*) FROM login_failures WHERE user_id = ?")
                    .bind(id)
                    .fetch_one(&mut *transaction)
                    .await?;
            let locks = failures >= i64::from(policy.max_failed_logins);
            if locks {
                sqlx::query("UPDATE users SET locked_until_ms = ? WHERE id = ?")
                    .bind(millis(until))
                    .bind(id)
                    .execute(&mut *transaction)
                    .await?;
                // The next window starts empty once the lockout ends.
                sqlx::query("DELETE FROM login_failures WHERE user_id = ?")
                    .bind(id)
                    .execute(&mut *transaction)
                    .await?;
            }
            transaction.commit().await?;
            Ok(locks)
        }
        .await;
        match result {
            Ok(true) => AccountsError::Locked { username, until },
            Ok(false) => AccountsError::InvalidCredentials,
            Err(error) => AccountsError::Query(error),
        }
    }

    async fn start_session(&self, id: i64, now: OffsetDateTime) -> Result<Session, AccountsError> {
        let secret = token::generate();
        let expires_at = now + self.policy().session_lifetime;
        let mut transaction = self.pool().begin().await.map_err(AccountsError::Query)?;
        // Expired sessions of every user go here, so the table stays small
        // without a background task.
        sqlx::query("DELETE FROM sessions WHERE expires_at_ms <= ?")
            .bind(millis(now))
            .execute(&mut *transaction)
            .await
            .map_err(AccountsError::Query)?;
        sqlx::query("DELETE FROM login_failures WHERE user_id = ?")
            .bind(id)
            .execute(&mut *transaction)
            .await
            .map_err(AccountsError::Query)?;
        sqlx::query("UPDATE users SET locked_until_ms = NULL WHERE id = ?")
            .bind(id)
            .execute(&mut *transaction)
            .await
            .map_err(AccountsError::Query)?;
        sqlx::query(
            "INSERT INTO sessions (token_hash, user_id, created_at_ms, expires_at_ms) \
             VALUES (?, ?, ?, ?)",
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
             WHERE sessions.token_hash = ? AND sessions.expires_at_ms > ? AND users.disabled = 0"
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
        let result = sqlx::query("DELETE FROM sessions WHERE token_hash = ?")
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
             VALUES (?, ?, ?, ?, ?) RETURNING id",
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
        let result = sqlx::query("DELETE FROM api_tokens WHERE id = ?")
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
             WHERE api_tokens.token_hash = ? AND users.disabled = 0"
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
