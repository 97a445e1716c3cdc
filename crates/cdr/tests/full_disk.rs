//! A commit that fails on a full disk must not leave the pool's connection
//! swallowing later commits. sqlx 0.8 kept such a connection counted as
//! inside its transaction, so the next transactions on it only opened and
//! released savepoints, reported success and committed nothing.
//!
//! The disk is a 2 MiB tmpfs, which needs root (or CAP_SYS_ADMIN). Without
//! it the test is skipped, except under CI=true, where it fails.

use std::path::{Path, PathBuf};
use std::process::Command;

use sqlx::Executor;

/// A tmpfs mounted on a temporary folder, unmounted on drop.
struct SmallDisk {
    path: PathBuf,
    _dir: tempfile::TempDir,
}

impl SmallDisk {
    fn mount() -> Option<SmallDisk> {
        let dir = tempfile::tempdir().ok()?;
        let path = dir.path().to_path_buf();
        let mounted = Command::new("mount")
            .args(["-t", "tmpfs", "-o", "size=2m", "tmpfs"])
            .arg(&path)
            .status()
            .is_ok_and(|status| status.success());
        mounted.then_some(SmallDisk { path, _dir: dir })
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        // Lazily: SQLite's threads may still hold the files for a moment.
        let _ = Command::new("umount").arg("-l").arg(&self.path).status();
    }
}

fn fill(disk: &Path) -> PathBuf {
    let filler = disk.join("filler");
    // dd stops with an error once the disk is full, which is the point.
    let _ = Command::new("dd")
        .arg("if=/dev/zero")
        .arg(format!("of={}", filler.display()))
        .arg("bs=64k")
        .output();
    filler
}

#[tokio::test]
async fn full_disk_does_not_swallow_later_commits() {
    let Some(disk) = SmallDisk::mount() else {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "cannot mount a tmpfs; run as root"
        );
        eprintln!("skipped: cannot mount a tmpfs without root");
        return;
    };
    let url = cdr::database::DatabaseUrl::sqlite_file(&disk.path.join("test.sqlite"));
    let pool = cdr::database::connect_unflushed(&url).await.unwrap();
    pool.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT)")
        .await
        .unwrap();
    let filler = fill(&disk.path);
    let big = "x".repeat(200_000);
    let mut failures = 0;
    for id in 0..5 {
        let mut transaction = pool.begin().await.unwrap();
        let inserted = sqlx::query("INSERT INTO t (id, v) VALUES ($1, $2)")
            .bind(id)
            .bind(&big)
            .execute(&mut *transaction)
            .await;
        let outcome = match inserted {
            Ok(_) => transaction.commit().await,
            Err(error) => Err(error),
        };
        failures += usize::from(outcome.is_err());
    }
    assert!(failures > 0, "the disk never filled up");

    std::fs::remove_file(&filler).unwrap();
    for id in 10..13 {
        let mut transaction = pool.begin().await.unwrap();
        sqlx::query("INSERT INTO t (id, v) VALUES ($1, 'small')")
            .bind(id)
            .execute(&mut *transaction)
            .await
            .unwrap();
        transaction.commit().await.unwrap();
    }
    // Another pool reads the file, so only committed rows count.
    let reader = cdr::database::connect_unflushed(&url).await.unwrap();
    let committed: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM t WHERE id >= 10")
        .fetch_one(&reader)
        .await
        .unwrap();
    assert_eq!(committed, 3);
}
