//! Account tables and the first administrator, prepared at start.

use std::ffi::OsString;

use accounts::{AccountStore, AccountsError, Policy};
use cdr::CdrStore;
use time::OffsetDateTime;

/// Username of the administrator created when there is no user.
pub(crate) const FIRST_ADMINISTRATOR: &str = "admin";

/// Variable that sets the first administrator's password instead of a
/// generated one. It is read only while the database has no user.
pub(crate) const ADMIN_PASSWORD_VARIABLE: &str = "PBX_ADMIN_PASSWORD";

/// Why the accounts could not be prepared at start.
#[derive(Debug, thiserror::Error)]
pub(crate) enum BootstrapError {
    #[error("cannot prepare the accounts database: {0}")]
    Accounts(#[from] AccountsError),
    #[error("environment variable {variable} is set but empty; unset it or give a password")]
    EmptyVariable { variable: &'static str },
    #[error("environment variable {variable} is not valid UTF-8")]
    NonUnicodeVariable { variable: &'static str },
}

/// Creates or updates the account tables on the CDR store's database and,
/// when there is no user yet, creates the administrator `admin` with the
/// password from `PBX_ADMIN_PASSWORD` or a generated one, printed once to
/// standard output and stored only as a hash.
pub(crate) async fn bootstrap_accounts(cdr: &CdrStore) -> Result<(), BootstrapError> {
    let accounts = AccountStore::open(cdr.pool().clone(), Policy::default()).await?;
    let generated = create_first_administrator(&accounts, OffsetDateTime::now_utc(), |name| {
        std::env::var_os(name)
    })
    .await?;
    if let Some(password) = generated {
        println!(
            "Generated password for user {FIRST_ADMINISTRATOR}: {password} \
             (shown only now; log in and change it with PUT /api/users/{{id}}/password)"
        );
    }
    Ok(())
}

/// Does the work of [`bootstrap_accounts`] with `lookup` in place of the
/// process environment. Returns the password when it was generated.
pub(crate) async fn create_first_administrator(
    accounts: &AccountStore,
    now: OffsetDateTime,
    lookup: impl Fn(&str) -> Option<OsString>,
) -> Result<Option<String>, BootstrapError> {
    if accounts.user_count().await? > 0 {
        return Ok(None);
    }
    let variable = ADMIN_PASSWORD_VARIABLE;
    let (password, generated) = match lookup(variable) {
        Some(value) => {
            let value = value
                .into_string()
                .map_err(|_| BootstrapError::NonUnicodeVariable { variable })?;
            if value.is_empty() {
                return Err(BootstrapError::EmptyVariable { variable });
            }
            (value, false)
        }
        None => (accounts::generate_password(), true),
    };
    let created = accounts
        .create_first_administrator(FIRST_ADMINISTRATOR, &password, now)
        .await?;
    let Some(user) = created else {
        // Another process created a user between the count and the insert.
        return Ok(None);
    };
    tracing::info!(username = %user.username, id = user.id, "created the first administrator");
    Ok(generated.then_some(password))
}
