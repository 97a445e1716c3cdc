//! Migrations of the tables this crate owns (registrations, open calls,
//! queue events, the recording catalogue and scorecards), in the database
//! that the CDR store opens and every store shares.
//!
//! The versions start at 2001 so they never collide with the CDR store's
//! (0001 and up) or the accounts' (1000 and up) in sqlx's one
//! `_sqlx_migrations` table. `migrations/sqlite` and `migrations/postgres`
//! list the same versions, one file per engine.

use std::path::Path;

use cdr::database::DatabaseUrl;
use sqlx::AnyPool;
use sqlx::migrate::MigrateError;

/// Applies this crate's migrations that the database does not have yet.
pub(crate) async fn migrate(pool: &AnyPool) -> Result<(), MigrateError> {
    cdr::database::migrate(
        pool,
        sqlx::migrate!("migrations/sqlite"),
        sqlx::migrate!("migrations/postgres"),
    )
    .await
}

/// Returns the database a command-line tool reads: `configured`
/// (`database.url`), else `pbx.sqlite` in `data_dir`, which must exist
/// because opening it the usual way would create an empty database in a
/// wrong folder.
pub(crate) fn existing_database(
    data_dir: &Path,
    configured: Option<&DatabaseUrl>,
) -> Result<DatabaseUrl, String> {
    if let Some(url) = configured {
        return Ok(url.clone());
    }
    let file = data_dir.join("pbx.sqlite");
    if !file.is_file() {
        return Err("no pbx.sqlite here; give the PBX's --data-dir or --config".to_owned());
    }
    Ok(DatabaseUrl::sqlite_file(&file))
}
