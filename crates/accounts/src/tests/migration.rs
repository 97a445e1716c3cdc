//! Upgrading a database made by migration 1000 alone.

use std::path::Path;

use sqlx::AnyPool;
use sqlx::migrate::Migrator;

use super::*;

/// Applies only `migrations/sqlite/1000_accounts.sql` to `pool`, as a PBX built
/// before migration 1001 did. The file is copied unchanged, so sqlx records
/// the same checksum as the embedded migrator expects.
async fn migrate_to_1000(pool: &AnyPool, scratch: &Path) {
    let source = Path::new(env!("CARGO_MANIFEST_DIR")).join("migrations/sqlite/1000_accounts.sql");
    let directory = scratch.join("migrations-1000");
    std::fs::create_dir_all(&directory).expect("scratch directory");
    std::fs::copy(&source, directory.join("1000_accounts.sql")).expect("migration copied");
    let mut migrator = Migrator::new(directory.as_path())
        .await
        .expect("migration 1000 read");
    migrator.set_ignore_missing(true);
    migrator.run(pool).await.expect("migration 1000 applied");
}

async fn execute(pool: &AnyPool, statement: &str) {
    sqlx::query(statement)
        .execute(pool)
        .await
        .unwrap_or_else(|error| panic!("{statement}: {error}"));
}

#[tokio::test]
async fn version_1000_database_upgrades() {
    let dir = tempfile::tempdir().expect("temp dir");
    let data_dir = dir.path().join("data");
    let cdr = cdr::CdrStore::open(&data_dir)
        .await
        .expect("CDR store opens");
    let pool = cdr.pool().clone();
    migrate_to_1000(&pool, dir.path()).await;
    // Rows as version 1000 wrote them: a locked user with failures, a
    // session, a token and two audit entries.
    let hash = crate::password::hash("sam-password", PasswordCost::MINIMUM).expect("hash");
    let statements = [
        format!(
            "INSERT INTO users (id, username, role, password_hash, created_at_ms, locked_until_ms) \
             VALUES (1, 'admin', 'administrator', '{hash}', 1000, NULL), \
                    (2, 'sam', 'supervisor', '{hash}', 2000, 9999999999999)"
        ),
        "INSERT INTO login_failures (user_id, at_ms) VALUES (2, 5000)".to_owned(),
        format!(
            "INSERT INTO sessions (token_hash, user_id, created_at_ms, expires_at_ms) \
             VALUES ('{}', 2, 1000, 9999999999999)",
            token::digest("old-session")
        ),
        "INSERT INTO api_tokens (id, token_hash, user_id, name, created_by, created_at_ms) \
         VALUES (7, 'digest', 2, 'reports', 1, 3000)"
            .to_owned(),
        "INSERT INTO audit_log (id, at_ms, user_id, username, action, target, remote_address) \
         VALUES (1, 4000, 1, 'admin', 'user.create', 'user:2', '192.0.2.1:4000'), \
                (2, 5000, 2, 'sam', 'recording.replay', 'call-1', NULL)"
            .to_owned(),
    ];
    for statement in &statements {
        execute(&pool, statement).await;
    }
    pool.close().await;

    let store = open_on(&data_dir, &TestDatabase::Sqlite).await;
    let users = store.list_users().await.expect("users");
    let names: Vec<&str> = users.iter().map(|user| user.username.as_str()).collect();
    assert_eq!(names, ["admin", "sam"]);
    let caller = store
        .session_caller("old-session", T0)
        .await
        .expect("query");
    assert_eq!(caller.map(|caller| caller.user.id), Some(2), "session kept");
    let tokens = store.list_api_tokens().await.expect("tokens");
    assert_eq!(tokens.len(), 1);
    assert_eq!(tokens[0].id, 7);

    let entries = store.list_audit(10, 0).await.expect("audit");
    assert_eq!(entries.len(), 2);
    assert_eq!(entries[1].id, 1);
    assert_eq!(entries[1].user_id, Some(1));
    assert_eq!(entries[1].username.as_deref(), Some("admin"));
    assert_eq!(entries[1].target.as_deref(), Some("user:2"));
    assert_eq!(entries[1].remote_address.as_deref(), Some("192.0.2.1:4000"));
    assert_eq!(entries[0].action, "recording.replay");

    // The per-user lock of version 1000 is dropped with its column.
    store
        .login("sam", "sam-password", HOME, T0)
        .await
        .expect("login after the upgrade");
    let entries = store.list_audit(10, 0).await.expect("audit");
    let newest = entries.first().expect("entries");
    let fresh = store
        .append_audit(
            NewAuditEntry {
                user: &users[1],
                action: "recording.replay",
                target: Some("call-2"),
                remote_address: None,
            },
            T0,
        )
        .await
        .expect("appended");
    assert!(
        fresh.id > newest.id,
        "ids keep growing: {} then {}",
        newest.id,
        fresh.id
    );
    for statement in ["UPDATE audit_log SET target = 'x'", "DELETE FROM audit_log"] {
        let error = sqlx::query(statement)
            .execute(store.pool())
            .await
            .expect_err(statement);
        assert!(
            error.to_string().contains("audit_log is append-only"),
            "{statement}: {error}"
        );
    }
}
