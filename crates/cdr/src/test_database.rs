//! Runs storage tests on both database engines (feature `test-support`).
//!
//! [`storage_tests!`](crate::storage_tests) turns each listed test function
//! `async fn name(database: TestDatabase)` into two tests, `name::sqlite`
//! and `name::postgres`. The SQLite one always runs. The PostgreSQL one runs
//! on the server named by `PBX_TEST_POSTGRES_URL`, in a schema of its own
//! that is dropped afterwards, so tests run in parallel without seeing each
//! other's rows. When the variable is unset the PostgreSQL test passes
//! without running, except under `CI=true`, where it fails so that a
//! missing server cannot go unnoticed.

use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use sqlx::Executor;

use crate::database::{self, DatabaseUrl};

/// The variable that names the PostgreSQL server for tests, such as
/// `postgres://pbx:pbx@127.0.0.1:5432/pbx_test`.
pub const POSTGRES_URL_VARIABLE: &str = "PBX_TEST_POSTGRES_URL";

/// The database a storage test runs against.
#[derive(Clone, Debug)]
pub enum TestDatabase {
    /// `pbx.sqlite` in the test's data directory, as in production.
    Sqlite,
    /// A fresh schema on the test server.
    Postgres(DatabaseUrl),
}

impl TestDatabase {
    /// Returns the URL that stores of the test open, given the test's data
    /// directory (used by SQLite only). Repeated calls return the same
    /// database, so a test can reopen it as a restarted PBX would.
    pub fn url(&self, data_dir: &Path) -> DatabaseUrl {
        match self {
            TestDatabase::Sqlite => DatabaseUrl::sqlite_file(&data_dir.join("pbx.sqlite")),
            TestDatabase::Postgres(url) => url.clone(),
        }
    }

    pub fn is_postgres(&self) -> bool {
        matches!(self, TestDatabase::Postgres(_))
    }
}

/// Returns the test server's URL, or `None` when tests on PostgreSQL are
/// to be skipped.
///
/// # Panics
///
/// When the variable is unset or invalid and `CI` is `true`.
pub fn postgres_server() -> Option<DatabaseUrl> {
    let in_ci = std::env::var("CI").is_ok_and(|value| value == "true");
    match std::env::var(POSTGRES_URL_VARIABLE) {
        Ok(url) if !url.is_empty() => match DatabaseUrl::parse(&url) {
            Ok(url) => Some(url),
            Err(error) => panic!("{POSTGRES_URL_VARIABLE}: {error}"),
        },
        _ if in_ci => panic!(
            "{POSTGRES_URL_VARIABLE} is unset but CI=true: storage tests must run on \
             PostgreSQL in CI (scripts/test starts a server and sets it)"
        ),
        _ => None,
    }
}

/// Runs `test` on a new schema of the test server and drops the schema
/// afterwards, also when the test panics. Does nothing when
/// [`postgres_server`] returns `None`.
pub async fn run_on_postgres<F, Fut>(test: F)
where
    F: FnOnce(TestDatabase) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    let Some(server) = postgres_server() else {
        eprintln!("skipped: {POSTGRES_URL_VARIABLE} is unset");
        return;
    };
    let schema = unique_schema_name();
    let admin = database::connect(&server)
        .await
        .unwrap_or_else(|error| panic!("failed to connect to {server}: {error}"));
    admin
        .execute(format!("CREATE SCHEMA {schema}").as_str())
        .await
        .unwrap_or_else(|error| panic!("failed to create schema {schema} on {server}: {error}"));

    let separator = if server.expose().contains('?') {
        '&'
    } else {
        '?'
    };
    let url = format!(
        "{}{separator}options=-c%20search_path%3D{schema}",
        server.expose()
    );
    let url = DatabaseUrl::parse(&url).expect("the server URL was valid before");
    // The test runs as a task of its own so that a failing assertion comes
    // back here as an error and the schema is still dropped.
    let outcome = tokio::spawn(test(TestDatabase::Postgres(url))).await;

    let dropped = admin
        .execute(format!("DROP SCHEMA {schema} CASCADE").as_str())
        .await;
    admin.close().await;
    match outcome {
        Err(error) if error.is_panic() => std::panic::resume_unwind(error.into_panic()),
        Err(error) => panic!("test task failed: {error}"),
        Ok(()) => {
            if let Err(error) = dropped {
                panic!("failed to drop schema {schema}: {error}");
            }
        }
    }
}

/// Returns a schema name that no other test or test process uses at the same time.
fn unique_schema_name() -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |elapsed| elapsed.subsec_nanos());
    format!(
        "pbx_test_{}_{}_{nanos}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    )
}

/// Declares `name::sqlite` and `name::postgres` tests for each listed
/// `async fn name(database: TestDatabase)`; see [`crate::test_database`].
#[macro_export]
macro_rules! storage_tests {
    ($($name:ident),* $(,)?) => {
        $(
            mod $name {
                #[tokio::test]
                async fn sqlite() {
                    super::$name($crate::test_database::TestDatabase::Sqlite).await;
                }

                #[tokio::test]
                async fn postgres() {
                    $crate::test_database::run_on_postgres(super::$name).await;
                }
            }
        )*
    };
}
