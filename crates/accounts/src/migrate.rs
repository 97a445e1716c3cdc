//! Applies `migrations/sqlite` or `migrations/postgres`, whichever matches
//! the pool, with sqlx's migrator.
//!
//! The PBX database is shared by several stores, each with its own
//! migrations, and sqlx records them all in one `_sqlx_migrations` table.
//! Versions here start at 1000 so they never collide with another store's,
//! and `ignore_missing` lets this migrator run although that table lists
//! versions it does not embed (the CDR store's migrator does the same).

use sqlx::AnyPool;

use crate::AccountsError;

pub(crate) async fn run(pool: &AnyPool) -> Result<(), AccountsError> {
    cdr::database::migrate(
        pool,
        sqlx::migrate!("migrations/sqlite"),
        sqlx::migrate!("migrations/postgres"),
    )
    .await
    .map_err(AccountsError::Migrate)
}
