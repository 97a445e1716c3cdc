//! Retention of recordings: files older than `recording.retention_days`
//! are deleted at start and then every hour. Each deletion is written to
//! the audit log first, so none goes unrecorded, and the catalogue keeps
//! the row as `deleted` with the time and reason; the CDR keeps its
//! `recording_path`, so the API can answer 410 Gone instead of 404.

use std::path::PathBuf;
use std::time::Duration;

use accounts::AccountStore;
use time::OffsetDateTime;

use crate::catalogue::{Catalogue, CatalogueError, is_plain_relative};

/// Audit log action of a recording deleted by retention.
pub(crate) const DELETE_ACTION: &str = "recording.delete";

/// Time between two retention sweeps.
const SWEEP_INTERVAL: Duration = Duration::from_secs(3600);

#[derive(Debug, thiserror::Error)]
pub(crate) enum RetentionError {
    #[error(transparent)]
    Catalogue(#[from] CatalogueError),
}

/// Deletes recordings older than `days` days.
pub(crate) struct Retention {
    pub(crate) catalogue: Catalogue,
    pub(crate) accounts: AccountStore,
    pub(crate) data_dir: PathBuf,
    pub(crate) days: u32,
}

/// What one sweep did.
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct Sweep {
    pub(crate) deleted: usize,
    /// Recordings left for the next sweep because the audit entry or the
    /// file removal failed.
    pub(crate) failed: usize,
}

impl Retention {
    /// The reason stored with each deletion, naming the limit.
    fn reason(&self) -> String {
        format!(
            "retention: older than {} day{}",
            self.days,
            if self.days == 1 { "" } else { "s" }
        )
    }

    /// Deletes every finished recording that started more than
    /// `days` before `now`. Does nothing when `days` is 0.
    pub(crate) async fn sweep(&self, now: OffsetDateTime) -> Result<Sweep, RetentionError> {
        let mut sweep = Sweep::default();
        if self.days == 0 {
            return Ok(sweep);
        }
        let cutoff = now - time::Duration::days(i64::from(self.days));
        let reason = self.reason();
        for entry in self.catalogue.expired(cutoff).await? {
            let call = entry.call_id.as_str();
            // Like a replay, the entry is written before the act, so a
            // deletion that cannot be logged does not happen.
            if let Err(error) = self
                .accounts
                .append_system_audit(DELETE_ACTION, Some(call), now)
                .await
            {
                tracing::error!(call, %error, "cannot log a recording deletion; the recording is kept");
                sweep.failed += 1;
                continue;
            }
            if is_plain_relative(&entry.path) {
                let file = self.data_dir.join(&entry.path);
                match tokio::fs::remove_file(&file).await {
                    Ok(()) => {}
                    Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
                        tracing::warn!(
                            call,
                            path = entry.path,
                            "expired recording was already gone"
                        );
                    }
                    Err(error) => {
                        tracing::error!(call, path = entry.path, %error, "cannot delete an expired recording");
                        sweep.failed += 1;
                        continue;
                    }
                }
            } else {
                tracing::warn!(
                    call,
                    path = entry.path,
                    "recording path is outside the data directory; not deleted"
                );
            }
            self.catalogue
                .mark_deleted(call, entry.kind, now, &reason)
                .await?;
            tracing::info!(call, path = entry.path, started_at = %entry.started_at, reason, "recording deleted by retention");
            sweep.deleted += 1;
        }
        Ok(sweep)
    }

    /// Sweeps now and then every hour, forever. Runs only when `days` is
    /// not 0.
    pub(crate) async fn run(self) {
        if self.days == 0 {
            return;
        }
        let mut interval = tokio::time::interval(SWEEP_INTERVAL);
        interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            interval.tick().await;
            match self.sweep(OffsetDateTime::now_utc()).await {
                Ok(sweep) if sweep.deleted > 0 || sweep.failed > 0 => {
                    tracing::info!(
                        deleted = sweep.deleted,
                        failed = sweep.failed,
                        "retention sweep done"
                    );
                }
                Ok(_) => {}
                Err(error) => tracing::error!(%error, "retention sweep failed"),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalogue::{FileDigest, FileFacts, RecordingStatus};
    use time::macros::datetime;

    const NOW: OffsetDateTime = datetime!(2026-12-04 09:00:00 UTC);

    async fn setup(days: u32) -> (tempfile::TempDir, Retention, cdr::CdrStore) {
        let dir = tempfile::tempdir().unwrap();
        let store = cdr::CdrStore::open(dir.path()).await.unwrap();
        let accounts = AccountStore::open(store.pool().clone(), accounts::Policy::default())
            .await
            .unwrap();
        let catalogue = Catalogue::open(store.pool().clone()).await.unwrap();
        let retention = Retention {
            catalogue,
            accounts,
            data_dir: dir.path().to_path_buf(),
            days,
        };
        (dir, retention, store)
    }

    async fn recording(retention: &Retention, call: &str, started: OffsetDateTime) -> PathBuf {
        let path = format!("recordings/{call}.wav");
        let file = retention.data_dir.join(&path);
        std::fs::create_dir_all(file.parent().unwrap()).unwrap();
        std::fs::write(&file, b"RIFF").unwrap();
        retention
            .catalogue
            .started(
                call,
                crate::catalogue::RecordingKind::Stereo,
                &path,
                started,
            )
            .await
            .unwrap();
        let facts = FileFacts {
            ended_at: started + time::Duration::seconds(10),
            duration_seconds: Some(10.0),
            digest: Some(FileDigest {
                size: 4,
                sha256: "00".to_owned(),
            }),
        };
        retention
            .catalogue
            .finished(
                call,
                crate::catalogue::RecordingKind::Stereo,
                &path,
                RecordingStatus::Complete,
                &facts,
            )
            .await
            .unwrap();
        file
    }

    #[tokio::test]
    async fn deletes_only_what_is_older_than_the_limit() {
        let (_dir, retention, _store) = setup(30).await;
        let old = recording(&retention, "old", NOW - time::Duration::days(31)).await;
        let young = recording(&retention, "young", NOW - time::Duration::days(29)).await;
        // In progress: never expired, whatever its age.
        retention
            .catalogue
            .started(
                "live",
                crate::catalogue::RecordingKind::Stereo,
                "recordings/live.wav",
                NOW - time::Duration::days(40),
            )
            .await
            .unwrap();

        let sweep = retention.sweep(NOW).await.unwrap();
        assert_eq!(
            sweep,
            Sweep {
                deleted: 1,
                failed: 0
            }
        );
        assert!(!old.exists());
        assert!(young.exists());

        let entry = retention.catalogue.get("old").await.unwrap().unwrap();
        assert_eq!(entry.status, RecordingStatus::Deleted);
        assert_eq!(entry.deleted_at, Some(NOW));
        assert_eq!(
            entry.deletion_reason.as_deref(),
            Some("retention: older than 30 days")
        );
        // The hash stays, as proof of what was deleted.
        assert_eq!(entry.sha256.as_deref(), Some("00"));
        let live = retention.catalogue.get("live").await.unwrap().unwrap();
        assert_eq!(live.status, RecordingStatus::Recording);

        let audit = retention.accounts.list_audit(10, 0).await.unwrap();
        assert_eq!(audit.len(), 1);
        assert_eq!(audit[0].action, DELETE_ACTION);
        assert_eq!(audit[0].target.as_deref(), Some("old"));
        assert_eq!(audit[0].user_id, None);
        assert_eq!(audit[0].at, NOW);

        // A day later the young one expires too; the deleted one is not
        // deleted again.
        let sweep = retention
            .sweep(NOW + time::Duration::days(2))
            .await
            .unwrap();
        assert_eq!(sweep.deleted, 1);
        assert!(!young.exists());
        assert_eq!(retention.accounts.list_audit(10, 0).await.unwrap().len(), 2);
    }

    #[tokio::test]
    async fn zero_days_keeps_everything() {
        let (_dir, retention, _store) = setup(0).await;
        let old = recording(&retention, "old", NOW - time::Duration::days(3650)).await;
        assert_eq!(retention.sweep(NOW).await.unwrap(), Sweep::default());
        assert!(old.exists());
    }

    #[tokio::test]
    async fn a_missing_file_is_still_marked_deleted() {
        let (_dir, retention, _store) = setup(1).await;
        let old = recording(&retention, "old", NOW - time::Duration::days(2)).await;
        std::fs::remove_file(&old).unwrap();
        assert_eq!(retention.sweep(NOW).await.unwrap().deleted, 1);
        let entry = retention.catalogue.get("old").await.unwrap().unwrap();
        assert_eq!(entry.status, RecordingStatus::Deleted);
        assert_eq!(
            entry.deletion_reason.as_deref(),
            Some("retention: older than 1 day")
        );
    }
}
