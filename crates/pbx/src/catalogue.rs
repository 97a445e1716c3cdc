//! The recording catalogue: a row per call recording in the `recordings`
//! table, with its path, status, length, size and SHA-256, so QA can prove
//! a file is the one the PBX wrote, retention knows what to delete, and
//! `pbx check-recordings` has something to compare the files with.
//!
//! A call has a row for its stereo recording and, with `[recording]
//! mixed_mono`, one for the mono mix, told apart by their [`RecordingKind`].
//! A row is inserted as `recording` when the relay starts writing, becomes
//! `complete` when the session closes or `interrupted` when the next start
//! finds it unfinished, and `deleted` when retention removes the file. The
//! catalogue is secondary to the CDR: its failures are logged by the
//! caller and never stop a CDR from being written.

use std::io::Read;
use std::path::{Component, Path};

use serde::Serialize;
use sha2::{Digest, Sha256};
use sqlx::any::AnyRow;
use sqlx::{AnyPool, Row};
use time::OffsetDateTime;

/// Largest page [`Catalogue::list`] returns.
pub(crate) const MAX_CATALOGUE_PAGE: u32 = 1000;

const COLUMNS: &str = "call_id, kind, path, status, started_at_ms, ended_at_ms, duration_seconds, \
     size_bytes, sha256, deleted_at_ms, deletion_reason";

#[derive(Debug, thiserror::Error)]
pub(crate) enum CatalogueError {
    #[error("failed to migrate the recording catalogue: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error("recording catalogue query failed: {0}")]
    Query(#[from] sqlx::Error),
    #[error("catalogue row of call {call_id} is invalid: {detail}")]
    InvalidRow { call_id: String, detail: String },
}

/// Which file of a call a catalogue row describes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum RecordingKind {
    /// The recording itself: caller left, agent right.
    Stereo,
    /// The optional mono file that sums both channels.
    MixedMono,
}

impl RecordingKind {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            RecordingKind::Stereo => "stereo",
            RecordingKind::MixedMono => "mixed_mono",
        }
    }

    fn from_name(name: &str) -> Option<RecordingKind> {
        match name {
            "stereo" => Some(RecordingKind::Stereo),
            "mixed_mono" => Some(RecordingKind::MixedMono),
            _ => None,
        }
    }
}

/// Where a recording is in its life.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum RecordingStatus {
    /// The relay is writing it, or the PBX stopped before it finished and
    /// has not started since.
    Recording,
    /// The session closed and the file was finalized.
    Complete,
    /// The PBX stopped during the call; the file was repaired at the next
    /// start.
    Interrupted,
    /// Retention removed the file.
    Deleted,
}

impl RecordingStatus {
    pub(crate) const ALL: [RecordingStatus; 4] = [
        RecordingStatus::Recording,
        RecordingStatus::Complete,
        RecordingStatus::Interrupted,
        RecordingStatus::Deleted,
    ];

    pub(crate) fn as_str(self) -> &'static str {
        match self {
            RecordingStatus::Recording => "recording",
            RecordingStatus::Complete => "complete",
            RecordingStatus::Interrupted => "interrupted",
            RecordingStatus::Deleted => "deleted",
        }
    }

    pub(crate) fn from_name(name: &str) -> Option<RecordingStatus> {
        RecordingStatus::ALL
            .into_iter()
            .find(|status| status.as_str() == name)
    }
}

/// One catalogue row, as the API returns it.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub(crate) struct RecordingEntry {
    pub(crate) call_id: String,
    pub(crate) kind: RecordingKind,
    /// Relative to the data directory.
    pub(crate) path: String,
    pub(crate) status: RecordingStatus,
    #[serde(with = "time::serde::rfc3339")]
    pub(crate) started_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339::option")]
    pub(crate) ended_at: Option<OffsetDateTime>,
    pub(crate) duration_seconds: Option<f64>,
    pub(crate) size_bytes: Option<u64>,
    /// Lowercase hex SHA-256 of the file as finished or repaired.
    pub(crate) sha256: Option<String>,
    #[serde(with = "time::serde::rfc3339::option")]
    pub(crate) deleted_at: Option<OffsetDateTime>,
    pub(crate) deletion_reason: Option<String>,
}

/// What was measured of a finished file.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct FileFacts {
    pub(crate) ended_at: OffsetDateTime,
    pub(crate) duration_seconds: Option<f64>,
    /// Size and SHA-256; `None` when the file could not be read.
    pub(crate) digest: Option<FileDigest>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct FileDigest {
    pub(crate) size: u64,
    pub(crate) sha256: String,
}

#[derive(Clone, Debug)]
pub(crate) struct Catalogue {
    pool: AnyPool,
}

impl Catalogue {
    /// Runs this crate's migrations (the table is in versions 2100 and 2102) and
    /// returns the catalogue on `pool`.
    pub(crate) async fn open(pool: AnyPool) -> Result<Catalogue, CatalogueError> {
        crate::storage::migrate(&pool).await?;
        Ok(Catalogue { pool })
    }

    /// The catalogue on a database whose migrations already ran.
    pub(crate) fn new(pool: AnyPool) -> Catalogue {
        Catalogue { pool }
    }

    /// Records that the relay started writing `path`, the `kind` file of
    /// `call_id`. A row that already exists is kept: the session may have
    /// closed first.
    pub(crate) async fn started(
        &self,
        call_id: &str,
        kind: RecordingKind,
        path: &str,
        at: OffsetDateTime,
    ) -> Result<(), CatalogueError> {
        sqlx::query(
            "INSERT INTO recordings (call_id, kind, path, status, started_at_ms) \
             VALUES ($1, $2, $3, 'recording', $4) ON CONFLICT (call_id, kind) DO NOTHING",
        )
        .bind(call_id)
        .bind(kind.as_str())
        .bind(path)
        .bind(millis(at))
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Stores a finished file as `complete` or `interrupted`. The insert
    /// of [`Catalogue::started`] runs in a task of its own, so a very short
    /// call can get here first; the row is then created, with the start
    /// time taken from the length.
    pub(crate) async fn finished(
        &self,
        call_id: &str,
        kind: RecordingKind,
        path: &str,
        status: RecordingStatus,
        facts: &FileFacts,
    ) -> Result<(), CatalogueError> {
        let length = time::Duration::seconds_f64(facts.duration_seconds.unwrap_or(0.0));
        let (size, sha256) = match &facts.digest {
            Some(digest) => (
                Some(i64::try_from(digest.size).unwrap_or(i64::MAX)),
                Some(digest.sha256.as_str()),
            ),
            None => (None, None),
        };
        sqlx::query(
            "INSERT INTO recordings (call_id, kind, path, status, started_at_ms, ended_at_ms, \
             duration_seconds, size_bytes, sha256) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) \
             ON CONFLICT (call_id, kind) DO UPDATE SET status = excluded.status, \
             ended_at_ms = excluded.ended_at_ms, duration_seconds = excluded.duration_seconds, \
             size_bytes = excluded.size_bytes, sha256 = excluded.sha256",
        )
        .bind(call_id)
        .bind(kind.as_str())
        .bind(path)
        .bind(status.as_str())
        .bind(millis(facts.ended_at - length))
        .bind(millis(facts.ended_at))
        .bind(cdr::database::OptionalF64(facts.duration_seconds))
        .bind(size)
        .bind(sha256)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Marks the `kind` recording of `call_id` deleted at `at` for `reason`.
    pub(crate) async fn mark_deleted(
        &self,
        call_id: &str,
        kind: RecordingKind,
        at: OffsetDateTime,
        reason: &str,
    ) -> Result<(), CatalogueError> {
        sqlx::query(
            "UPDATE recordings SET status = 'deleted', deleted_at_ms = $1, deletion_reason = $2 \
             WHERE call_id = $3 AND kind = $4",
        )
        .bind(millis(at))
        .bind(reason)
        .bind(call_id)
        .bind(kind.as_str())
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Returns the stereo recording's entry of `call_id`.
    pub(crate) async fn get(
        &self,
        call_id: &str,
    ) -> Result<Option<RecordingEntry>, CatalogueError> {
        self.get_kind(call_id, RecordingKind::Stereo).await
    }

    pub(crate) async fn get_kind(
        &self,
        call_id: &str,
        kind: RecordingKind,
    ) -> Result<Option<RecordingEntry>, CatalogueError> {
        let row = sqlx::query(&format!(
            "SELECT {COLUMNS} FROM recordings WHERE call_id = $1 AND kind = $2"
        ))
        .bind(call_id)
        .bind(kind.as_str())
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(entry_from_row).transpose()
    }

    /// Returns up to `limit` entries (at most [`MAX_CATALOGUE_PAGE`]) with
    /// `status` when given, newest first, after skipping `offset`.
    pub(crate) async fn list(
        &self,
        status: Option<RecordingStatus>,
        limit: u32,
        offset: u32,
    ) -> Result<Vec<RecordingEntry>, CatalogueError> {
        let rows = sqlx::query(&format!(
            "SELECT {COLUMNS} FROM recordings WHERE $1 IS NULL OR status = $1 \
             ORDER BY started_at_ms DESC, call_id DESC, kind DESC LIMIT $2 OFFSET $3"
        ))
        .bind(status.map(RecordingStatus::as_str))
        .bind(i64::from(limit.min(MAX_CATALOGUE_PAGE)))
        .bind(i64::from(offset))
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(entry_from_row).collect()
    }

    /// Every entry, oldest first, for the check command.
    pub(crate) async fn all(&self) -> Result<Vec<RecordingEntry>, CatalogueError> {
        let rows = sqlx::query(&format!(
            "SELECT {COLUMNS} FROM recordings ORDER BY started_at_ms, call_id, kind"
        ))
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(entry_from_row).collect()
    }

    /// Entries still `recording`: at start, those whose PBX stopped first.
    pub(crate) async fn unfinished(&self) -> Result<Vec<RecordingEntry>, CatalogueError> {
        let rows = sqlx::query(&format!(
            "SELECT {COLUMNS} FROM recordings WHERE status = 'recording' ORDER BY started_at_ms"
        ))
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(entry_from_row).collect()
    }

    /// Finished recordings that started before `cutoff`, oldest first.
    /// Recordings in progress are never expired.
    pub(crate) async fn expired(
        &self,
        cutoff: OffsetDateTime,
    ) -> Result<Vec<RecordingEntry>, CatalogueError> {
        let rows = sqlx::query(&format!(
            "SELECT {COLUMNS} FROM recordings \
             WHERE status IN ('complete', 'interrupted') AND started_at_ms < $1 \
             ORDER BY started_at_ms, call_id, kind"
        ))
        .bind(millis(cutoff))
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(entry_from_row).collect()
    }
}

fn entry_from_row(row: &AnyRow) -> Result<RecordingEntry, CatalogueError> {
    let call_id: String = row.try_get("call_id")?;
    let invalid = |detail: String| CatalogueError::InvalidRow {
        call_id: call_id.clone(),
        detail,
    };
    let kind: String = row.try_get("kind")?;
    let kind =
        RecordingKind::from_name(&kind).ok_or_else(|| invalid(format!("unknown kind {kind:?}")))?;
    let status: String = row.try_get("status")?;
    let status = RecordingStatus::from_name(&status)
        .ok_or_else(|| invalid(format!("unknown status {status:?}")))?;
    let time = |name: &str| -> Result<Option<OffsetDateTime>, CatalogueError> {
        let value: Option<i64> = row.try_get(name)?;
        value
            .map(|ms| from_millis(ms).ok_or_else(|| invalid(format!("{name} {ms} out of range"))))
            .transpose()
    };
    let started_at = time("started_at_ms")?.ok_or_else(|| invalid("no start".to_owned()))?;
    let size: Option<i64> = row.try_get("size_bytes")?;
    Ok(RecordingEntry {
        path: row.try_get("path")?,
        status,
        started_at,
        ended_at: time("ended_at_ms")?,
        duration_seconds: row.try_get("duration_seconds")?,
        size_bytes: size.map(|size| u64::try_from(size).unwrap_or(0)),
        sha256: row.try_get("sha256")?,
        deleted_at: time("deleted_at_ms")?,
        deletion_reason: row.try_get("deletion_reason")?,
        call_id,
        kind,
    })
}

fn millis(at: OffsetDateTime) -> i64 {
    i64::try_from(at.unix_timestamp_nanos() / 1_000_000).unwrap_or(i64::MAX)
}

fn from_millis(ms: i64) -> Option<OffsetDateTime> {
    OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000).ok()
}

/// Reads the file at `path` once for its size and SHA-256. Blocking: run
/// it on a blocking thread.
pub(crate) fn digest_file(path: &Path) -> std::io::Result<FileDigest> {
    let mut file = std::fs::File::open(path)?;
    let mut hasher = Sha256::new();
    let mut buffer = vec![0u8; 64 * 1024];
    let mut size = 0u64;
    loop {
        let read = file.read(&mut buffer)?;
        if read == 0 {
            break;
        }
        hasher.update(&buffer[..read]);
        size += read as u64;
    }
    Ok(FileDigest {
        size,
        sha256: hex::encode(hasher.finalize()),
    })
}

/// [`digest_file`] on a blocking thread; `None`, logged, when the file
/// cannot be read.
pub(crate) async fn digest(path: std::path::PathBuf) -> Option<FileDigest> {
    let shown = path.display().to_string();
    match tokio::task::spawn_blocking(move || digest_file(&path)).await {
        Ok(Ok(digest)) => Some(digest),
        Ok(Err(error)) => {
            tracing::error!(path = shown, %error, "cannot hash the recording");
            None
        }
        Err(error) => {
            tracing::error!(path = shown, %error, "hashing the recording failed");
            None
        }
    }
}

/// Whether `relative` is a plain relative path (no root, no `..`), as the
/// core writes them; anything else is never opened or deleted.
pub(crate) fn is_plain_relative(relative: &str) -> bool {
    let path = Path::new(relative);
    !relative.is_empty()
        && path
            .components()
            .all(|component| matches!(component, Component::Normal(_) | Component::CurDir))
}

/// Turns every entry left `recording` by a stop into `interrupted`, with
/// the length, size and SHA-256 of its file as repaired. Runs at start,
/// after the open-call journal's recovery has repaired the files of the
/// calls it knew; a file is repaired here too when it was not. Returns how
/// many entries changed.
pub(crate) async fn recover_unfinished(
    catalogue: &Catalogue,
    data_dir: &Path,
    now: OffsetDateTime,
) -> Result<usize, CatalogueError> {
    let entries = catalogue.unfinished().await?;
    for entry in &entries {
        let file = is_plain_relative(&entry.path).then(|| data_dir.join(&entry.path));
        let measured = match file {
            Some(file) => tokio::task::spawn_blocking(move || measure_repaired(&file))
                .await
                .unwrap_or_default(),
            None => (None, None),
        };
        let (duration_seconds, digest) = measured;
        let length = time::Duration::seconds_f64(duration_seconds.unwrap_or(0.0));
        // The journal does not keep when the file stopped growing; the
        // start plus its length is the best estimate.
        let ended_at = if duration_seconds.is_some() {
            entry.started_at + length
        } else {
            now
        };
        let facts = FileFacts {
            ended_at,
            duration_seconds,
            digest,
        };
        catalogue
            .finished(
                &entry.call_id,
                entry.kind,
                &entry.path,
                RecordingStatus::Interrupted,
                &facts,
            )
            .await?;
        tracing::warn!(call = entry.call_id, path = entry.path, sha256 = ?facts.digest.map(|d| d.sha256), "recording marked interrupted");
    }
    Ok(entries.len())
}

/// Repairs the WAV at `file` (a no-op for one already repaired) and
/// returns its length and digest.
fn measure_repaired(file: &Path) -> (Option<f64>, Option<FileDigest>) {
    if let Err(error) = recordings::repair(file) {
        tracing::warn!(path = %file.display(), %error, "recording could not be repaired");
    }
    let duration = wav_seconds(file);
    let digest = digest_file(file)
        .map_err(|error| {
            tracing::warn!(path = %file.display(), %error, "cannot hash the recording");
        })
        .ok();
    (duration, digest)
}

/// Length of the WAV at `path` from its header, in seconds rounded to
/// milliseconds as the CDR has it.
pub(crate) fn wav_seconds(path: &Path) -> Option<f64> {
    let reader = hound::WavReader::open(path).ok()?;
    let rate = reader.spec().sample_rate;
    (rate > 0).then(|| {
        let seconds = f64::from(reader.duration()) / f64::from(rate);
        (seconds * 1000.0).round() / 1000.0
    })
}

#[cfg(test)]
mod tests;
