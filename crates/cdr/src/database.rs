//! The PBX database connection, SQLite or PostgreSQL, shared by every store.
//!
//! All stores run their queries through sqlx's `Any` driver on one
//! [`AnyPool`], so each statement is written once. The SQL they use is the
//! subset both engines accept: `$1`-style parameters (SQLite reads `$N` as
//! parameter N), `ON CONFLICT` upserts, `RETURNING`, `TRUE`/`FALSE`, and
//! times as integer milliseconds or RFC 3339 text. Where the engines differ
//! (text search, booleans read back), [`Backend`] picks the variant.
//!
//! Each store keeps two migration folders, `migrations/sqlite` and
//! `migrations/postgres`, with the same version numbers; [`migrate`] runs the
//! one that matches the pool.

use std::fmt;
use std::path::Path;
use std::time::Duration;

use sqlx::any::{AnyPoolOptions, AnyRow, AnyTypeInfo};
use sqlx::encode::IsNull;
use sqlx::error::BoxDynError;
use sqlx::migrate::{MigrateError, Migrator};
use sqlx::{Any, AnyPool, Database, Encode, Executor, Row, Type};

/// Connections each pool keeps at most. SQLite serializes writers anyway;
/// for PostgreSQL this is per PBX node, so several nodes share the server's
/// `max_connections` (100 by default).
const MAX_CONNECTIONS: u32 = 4;

/// How long a SQLite statement waits for another connection's write lock
/// before failing with SQLITE_BUSY.
const SQLITE_BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// The database engine behind a pool.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

impl Backend {
    /// Returns the engine that `pool` was opened for.
    pub fn of(pool: &AnyPool) -> Backend {
        let scheme = pool.connect_options().database_url.scheme().to_owned();
        if scheme.starts_with("postgres") {
            Backend::Postgres
        } else {
            Backend::Sqlite
        }
    }
}

/// The location of the PBX database: a `sqlite://PATH` file or a
/// `postgres://USER:PASSWORD@HOST[:PORT]/DATABASE` server.
#[derive(Clone, PartialEq, Eq)]
pub struct DatabaseUrl {
    url: String,
    backend: Backend,
}

/// Errors of [`DatabaseUrl::parse`].
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum DatabaseUrlError {
    #[error("invalid database URL: {reason}")]
    Invalid { reason: String },
    #[error(
        "unsupported database URL scheme {scheme:?}: use sqlite://PATH or \
         postgres://USER:PASSWORD@HOST/DATABASE"
    )]
    UnsupportedScheme { scheme: String },
}

impl DatabaseUrl {
    /// Checks the scheme of `url`. The rest is checked when connecting.
    pub fn parse(url: &str) -> Result<DatabaseUrl, DatabaseUrlError> {
        let Some((scheme, rest)) = url.split_once(':') else {
            return Err(DatabaseUrlError::Invalid {
                reason: "missing scheme, such as sqlite:// or postgres://".to_owned(),
            });
        };
        let backend = match scheme {
            "sqlite" => Backend::Sqlite,
            "postgres" | "postgresql" => Backend::Postgres,
            _ => {
                return Err(DatabaseUrlError::UnsupportedScheme {
                    scheme: scheme.to_owned(),
                });
            }
        };
        if backend == Backend::Postgres && !rest.starts_with("//") {
            return Err(DatabaseUrlError::Invalid {
                reason: "a postgres URL starts with postgres://".to_owned(),
            });
        }
        let url = match backend {
            // Open the file read-write and create it when missing, as the
            // default database in the data directory always was.
            Backend::Sqlite if !rest.contains("mode=") => {
                let separator = if rest.contains('?') { '&' } else { '?' };
                format!("{url}{separator}mode=rwc")
            }
            _ => url.to_owned(),
        };
        Ok(DatabaseUrl { url, backend })
    }

    /// Returns the URL of the SQLite file at `path`, created when missing.
    pub fn sqlite_file(path: &Path) -> DatabaseUrl {
        // Percent-encode the characters that would end the path part of
        // the URL. sqlx decodes them again.
        let mut encoded = String::new();
        for character in path.to_string_lossy().chars() {
            match character {
                '%' => encoded.push_str("%25"),
                '?' => encoded.push_str("%3F"),
                '#' => encoded.push_str("%23"),
                other => encoded.push(other),
            }
        }
        DatabaseUrl {
            url: format!("sqlite://{encoded}?mode=rwc"),
            backend: Backend::Sqlite,
        }
    }

    /// Returns the same URL, but a SQLite file that does not exist is then
    /// an error instead of being created, for tools that only read.
    pub fn without_create(&self) -> DatabaseUrl {
        DatabaseUrl {
            url: self.url.replace("mode=rwc", "mode=rw"),
            backend: self.backend,
        }
    }

    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// Returns the full URL, password included, for connecting.
    pub fn expose(&self) -> &str {
        &self.url
    }
}

/// Shows the URL with its password replaced by `***`, for logs and errors.
impl fmt::Display for DatabaseUrl {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        let Some((scheme, rest)) = self.url.split_once("://") else {
            return formatter.write_str(&self.url);
        };
        let authority_end = rest.find('/').unwrap_or(rest.len());
        let (authority, path) = rest.split_at(authority_end);
        match authority.rsplit_once('@') {
            Some((credentials, host)) => {
                let user = credentials.split(':').next().unwrap_or("");
                if credentials.contains(':') {
                    write!(formatter, "{scheme}://{user}:***@{host}{path}")
                } else {
                    write!(formatter, "{scheme}://{user}@{host}{path}")
                }
            }
            None => formatter.write_str(&self.url),
        }
    }
}

impl fmt::Debug for DatabaseUrl {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(formatter, "DatabaseUrl({self})")
    }
}

/// Waits for the turn of one of the PBX's busy SQLite writers (the CDR
/// and queue-event writers) and returns it, held until dropped. SQLite
/// lets one transaction write at a time, and a writer that finds the file
/// locked polls with sleeps of up to 100 ms. While the event writer
/// committed large groups back to back, the CDR writer lost almost every
/// race, and one of its INSERTs waited over a second. Turns taken here go
/// in order and wake the next writer at once. PostgreSQL needs no turn.
pub async fn sqlite_write_turn(pool: &AnyPool) -> Option<tokio::sync::MutexGuard<'static, ()>> {
    static TURN: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());
    match Backend::of(pool) {
        Backend::Sqlite => Some(TURN.lock().await),
        Backend::Postgres => None,
    }
}

/// Opens a pool on `url`. SQLite connections get write-ahead logging, so
/// the HTTP API reads while a call end is written, and a busy timeout.
pub async fn connect(url: &DatabaseUrl) -> Result<AnyPool, sqlx::Error> {
    connect_with(url, MAX_CONNECTIONS, true).await
}

/// Opens a one-connection pool on `url` whose SQLite commits are not
/// flushed to disk one by one: a commit survives a killed process, since
/// the operating system still writes it, but not a power cut. For the
/// journal of calls in progress, which only a crash reads and which SIP
/// messages wait for. PostgreSQL connections are opened as by [`connect`].
pub async fn connect_unflushed(url: &DatabaseUrl) -> Result<AnyPool, sqlx::Error> {
    connect_with(url, 1, false).await
}

async fn connect_with(
    url: &DatabaseUrl,
    connections: u32,
    flush_each_commit: bool,
) -> Result<AnyPool, sqlx::Error> {
    // Runs once per process; later calls return at once.
    sqlx::any::install_default_drivers();

    let backend = url.backend();
    AnyPoolOptions::new()
        .max_connections(connections)
        // sqlx 0.8 leaves a connection whose COMMIT failed (a full disk,
        // say) counted as inside its transaction. Back in the pool, its next
        // `begin` would open a savepoint inside that transaction, whose
        // commit commits nothing, and every later write on it would be lost
        // without an error. Such a connection is closed instead.
        .after_release(|connection, _| {
            let in_transaction = sqlx::Connection::is_in_transaction(connection);
            Box::pin(async move { Ok(!in_transaction) })
        })
        .after_connect(move |connection, _| {
            Box::pin(async move {
                if backend == Backend::Sqlite {
                    let timeout_ms = SQLITE_BUSY_TIMEOUT.as_millis();
                    connection
                        .execute(format!("PRAGMA busy_timeout = {timeout_ms}").as_str())
                        .await?;
                    connection.execute("PRAGMA journal_mode = WAL").await?;
                    // A multi-row INSERT inside a transaction saves the pages
                    // it changes to a statement journal first, so that a
                    // failing row can undo its statement alone. In a
                    // temporary file those saves cost a write call per page,
                    // a fifth of the writer's time under load.
                    connection.execute("PRAGMA temp_store = MEMORY").await?;
                    if !flush_each_commit {
                        // With write-ahead logging, NORMAL syncs at
                        // checkpoints only.
                        connection.execute("PRAGMA synchronous = NORMAL").await?;
                    }
                }
                Ok(())
            })
        })
        .connect(url.expose())
        .await
}

/// Runs the migrations of one store: `sqlite` or `postgres`, whichever
/// matches the pool. The stores share one `_sqlx_migrations` table, so
/// missing versions (another store's) are ignored.
pub async fn migrate(
    pool: &AnyPool,
    mut sqlite: Migrator,
    mut postgres: Migrator,
) -> Result<(), MigrateError> {
    let migrator = match Backend::of(pool) {
        Backend::Sqlite => &mut sqlite,
        Backend::Postgres => &mut postgres,
    };
    migrator.set_ignore_missing(true);
    migrator.run(pool).await
}

/// Reads a boolean column: PostgreSQL stores BOOLEAN, SQLite an INTEGER 0
/// or 1, which the Any driver will not decode as `bool`.
pub fn flag(row: &AnyRow, column: &str) -> Result<bool, sqlx::Error> {
    match row.try_get::<bool, _>(column) {
        Ok(value) => Ok(value),
        Err(sqlx::Error::ColumnDecode { .. }) => Ok(row.try_get::<i64, _>(column)? != 0),
        Err(error) => Err(error),
    }
}

/// An optional `f64` query parameter that reaches PostgreSQL as `float8`,
/// also when it is NULL. Bind every `Option<f64>` through it.
///
/// NOTE: sqlx 0.8.6's Any driver sends a NULL `Option<f64>` as `float4`
/// (its table of NULL parameter types swaps `f32` and `f64`). PostgreSQL
/// then prepares the statement with a `float4` parameter, and the cached
/// statement rejects a later non-NULL `f64` with "incorrect binary data
/// format". This type can go once sqlx types a NULL `f64` as `float8`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct OptionalF64(pub Option<f64>);

impl Type<Any> for OptionalF64 {
    fn type_info() -> AnyTypeInfo {
        <f64 as Type<Any>>::type_info()
    }
}

impl<'q> Encode<'q, Any> for OptionalF64 {
    fn encode_by_ref(
        &self,
        buffer: &mut <Any as Database>::ArgumentBuffer<'q>,
    ) -> Result<IsNull, BoxDynError> {
        match self.0 {
            Some(value) => <f64 as Encode<'q, Any>>::encode_by_ref(&value, buffer),
            // The driver turns the NULL of an `f32` into a `float8` NULL.
            None => <Option<f32> as Encode<'q, Any>>::encode_by_ref(&None, buffer),
        }
    }
}

/// Returns an SQL condition that is true when `haystack` contains the text
/// `needle` literally (no wildcards), in the dialect of `backend`.
pub fn contains_text(backend: Backend, haystack: &str, needle: &str) -> String {
    match backend {
        Backend::Sqlite => format!("instr({haystack}, {needle}) > 0"),
        Backend::Postgres => format!("strpos({haystack}, {needle}) > 0"),
    }
}

/// Returns the `VALUES` rows of a multi-row statement for `backend`,
/// `($1, $2), ($3, $4)` on PostgreSQL for two rows of two columns numbered
/// from `$first`, and `(?, ?), (?, ?)` on SQLite, whose values then bind in
/// order. SQLite looks up a named parameter such as `$7` by walking the
/// statement's parameter list, so binding N of them costs N² steps: 30 % of
/// the PBX's samples for a 3,500-value INSERT. sqlx's `QueryBuilder` cannot
/// serve here: on the `Any` driver it writes `?` for both engines, which
/// PostgreSQL rejects.
pub fn placeholder_rows(backend: Backend, first: usize, rows: usize, columns: usize) -> String {
    let mut text = String::new();
    for row in 0..rows {
        if row > 0 {
            text.push_str(", ");
        }
        text.push('(');
        for column in 0..columns {
            if column > 0 {
                text.push_str(", ");
            }
            match backend {
                Backend::Sqlite => text.push('?'),
                Backend::Postgres => {
                    text.push('$');
                    text.push_str(&(first + row * columns + column).to_string());
                }
            }
        }
        text.push(')');
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn sqlite_write_turns_go_one_at_a_time() {
        let dir = tempfile::tempdir().unwrap();
        let url = DatabaseUrl::sqlite_file(&dir.path().join("turns.sqlite"));
        let pool = connect(&url).await.unwrap();
        let first = sqlite_write_turn(&pool).await;
        assert!(first.is_some());

        // A second writer waits until the first turn is dropped.
        let waiting = pool.clone();
        let second = tokio::spawn(async move { sqlite_write_turn(&waiting).await.is_some() });
        // The test's runtime has one thread: each yield lets the second
        // writer run until it waits.
        for _ in 0..10 {
            tokio::task::yield_now().await;
        }
        assert!(!second.is_finished());
        drop(first);
        assert!(second.await.unwrap());
    }

    #[test]
    fn url_schemes() {
        let sqlite = DatabaseUrl::parse("sqlite:///var/lib/pbx/pbx.sqlite").unwrap();
        assert_eq!(sqlite.backend(), Backend::Sqlite);
        assert_eq!(sqlite.expose(), "sqlite:///var/lib/pbx/pbx.sqlite?mode=rwc");
        let postgres = DatabaseUrl::parse("postgres://pbx:secret@db.example/pbx").unwrap();
        assert_eq!(postgres.backend(), Backend::Postgres);
        assert_eq!(
            DatabaseUrl::parse("postgresql://db/pbx").unwrap().backend(),
            Backend::Postgres
        );
        assert_eq!(
            DatabaseUrl::parse("mysql://db/pbx"),
            Err(DatabaseUrlError::UnsupportedScheme {
                scheme: "mysql".to_owned()
            })
        );
        assert!(DatabaseUrl::parse("pbx.sqlite").is_err());
        assert!(DatabaseUrl::parse("postgres:db").is_err());
    }

    #[test]
    fn display_hides_password() {
        let url = DatabaseUrl::parse("postgres://pbx:s3cret@db.example:5433/pbx").unwrap();
        assert_eq!(url.to_string(), "postgres://pbx:***@db.example:5433/pbx");
        assert!(!format!("{url:?}").contains("s3cret"));
        let no_password = DatabaseUrl::parse("postgres://pbx@db.example/pbx").unwrap();
        assert_eq!(no_password.to_string(), "postgres://pbx@db.example/pbx");
    }

    #[test]
    fn sqlite_file_encodes_path() {
        let url = DatabaseUrl::sqlite_file(Path::new("/data/a?b#c%d/pbx.sqlite"));
        assert_eq!(
            url.expose(),
            "sqlite:///data/a%3Fb%23c%25d/pbx.sqlite?mode=rwc"
        );
    }

    #[test]
    fn placeholder_rows_number_every_value() {
        let postgres = Backend::Postgres;
        assert_eq!(
            placeholder_rows(postgres, 1, 2, 3),
            "($1, $2, $3), ($4, $5, $6)"
        );
        assert_eq!(placeholder_rows(postgres, 4, 1, 2), "($4, $5)");
        assert_eq!(placeholder_rows(postgres, 1, 0, 2), "");
        assert_eq!(placeholder_rows(Backend::Sqlite, 4, 2, 2), "(?, ?), (?, ?)");
    }
}
