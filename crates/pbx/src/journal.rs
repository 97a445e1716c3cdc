//! The journal of calls in progress, so a crash or `kill -9` does not lose
//! a call's CDR: each call is stored when it arrives and when it is answered, removed
//! once its CDR is written, and what is left at the next start becomes an
//! interrupted CDR.
//!
//! The journal is a SQLite file of its own in the data folder, whatever
//! database stores the CDRs. The calls in it are this node's, read only by
//! its next start, and SIP messages wait for its commits: in the shared
//! file those waited for the CDR writer's flushes to disk, and on
//! PostgreSQL they would wait for the network.

use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use cdr::{CallRecord, CdrStore};
use sip_server::dialog::StoredLegs;
use sqlx::{AnyPool, Row};
use tokio::sync::{Notify, mpsc};

#[derive(Debug, thiserror::Error)]
pub(crate) enum JournalError {
    #[error("failed to migrate the open-call journal: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error("open-call journal query failed: {0}")]
    Query(#[from] sqlx::Error),
    #[error(
        "cannot open the open-call journal {path}: {source}; move the file aside to start \
         without the calls it holds"
    )]
    Open { path: String, source: sqlx::Error },
    #[error("stored call {id} does not decode: {source}")]
    Decode {
        id: String,
        source: serde_json::Error,
    },
    #[error("writing the recovered CDR of call {id} failed: {source}")]
    Cdr { id: String, source: cdr::CdrError },
}

/// A change to the journal, applied in order by [`write_journal`].
pub(crate) enum JournalEntry {
    Save {
        record: Box<CallRecord>,
        legs: StoredLegs,
    },
    Remove(String),
}

/// Start of the statement that stores a call's row, new or updated.
const UPSERT: &str = "INSERT INTO open_calls (id, record, legs, updated_at_ms) VALUES";
const ON_CONFLICT: &str = "ON CONFLICT (id) DO UPDATE SET record = excluded.record, \
     legs = excluded.legs, updated_at_ms = excluded.updated_at_ms";

/// Most rows of one statement of [`Journal::apply_grouped`]: four values a
/// row stay far below SQLite's limit of 32,766 bound values.
const ROWS_PER_STATEMENT: usize = 500;

/// The net change of a group of journal entries to the table: for each
/// call, the last entry the engine sent for it.
struct NetChanges<'a> {
    saves: Vec<(&'a CallRecord, &'a StoredLegs)>,
    removals: Vec<&'a str>,
}

impl<'a> NetChanges<'a> {
    /// Keeps the last entry of each call in `entries`. A removal of a call
    /// that is not in `stored` (no earlier commit wrote its row) is dropped,
    /// because its saves, if any, are in `entries` and are dropped with it.
    fn of(entries: &'a [JournalEntry], stored: &HashSet<String>) -> NetChanges<'a> {
        let mut last: HashMap<&str, &JournalEntry> = HashMap::with_capacity(entries.len());
        for entry in entries {
            let id = match entry {
                JournalEntry::Save { record, .. } => record.id.as_str(),
                JournalEntry::Remove(id) => id.as_str(),
            };
            last.insert(id, entry);
        }
        let mut changes = NetChanges {
            saves: Vec::new(),
            removals: Vec::new(),
        };
        for (id, entry) in last {
            match entry {
                JournalEntry::Save { record, legs } => changes.saves.push((record, legs)),
                JournalEntry::Remove(_) if stored.contains(id) => changes.removals.push(id),
                JournalEntry::Remove(_) => {}
            }
        }
        changes
    }
}

/// What [`Journal::recover`] found: how many calls it turned into CDRs,
/// and the dialogs those calls still had, to be hung up.
#[derive(Debug, Default)]
pub(crate) struct Recovered {
    pub(crate) calls: usize,
    pub(crate) legs: StoredLegs,
}

/// The journal's file in the data folder.
pub(crate) const FILE: &str = "open-calls.sqlite";

/// The journal's one table, the same as the `open_calls` table that the
/// shared database kept before the journal had a file of its own.
const SCHEMA: &str = "CREATE TABLE IF NOT EXISTS open_calls (\
     id TEXT NOT NULL PRIMARY KEY, \
     record TEXT NOT NULL, \
     updated_at_ms INTEGER NOT NULL, \
     legs TEXT)";

#[derive(Clone)]
pub(crate) struct Journal {
    /// The journal's own file.
    pool: AnyPool,
    /// The shared database: its queue events date the last run's end, and
    /// its `open_calls` table may hold calls of a release that kept the
    /// journal there.
    shared: AnyPool,
}

impl Journal {
    /// Opens (or creates) [`FILE`] in `data_dir`. Its commits are not
    /// flushed to disk: they survive a killed process but not a power cut,
    /// and a flush per commit held call setup behind the disk.
    pub(crate) async fn open(data_dir: &Path, shared: AnyPool) -> Result<Journal, JournalError> {
        let path = data_dir.join(FILE);
        let open_error = |source| JournalError::Open {
            path: path.display().to_string(),
            source,
        };
        let url = cdr::database::DatabaseUrl::sqlite_file(&path);
        // One connection first, because the pool retries a file that is
        // not a database for 30 s and then reports only its time-out.
        let mut probe = <sqlx::AnyConnection as sqlx::Connection>::connect(url.expose())
            .await
            .map_err(open_error)?;
        sqlx::query("PRAGMA schema_version")
            .execute(&mut probe)
            .await
            .map_err(open_error)?;
        let _ = sqlx::Connection::close(probe).await;
        let pool = cdr::database::connect_unflushed(&url)
            .await
            .map_err(open_error)?;
        sqlx::query(SCHEMA)
            .execute(&pool)
            .await
            .map_err(open_error)?;
        crate::storage::migrate(&shared).await?;
        Ok(Journal { pool, shared })
    }

    /// Encodes `record` and `legs` as the `record` and `legs` columns.
    fn encode(record: &CallRecord, legs: &StoredLegs) -> Result<(String, String), JournalError> {
        let encode = |source| JournalError::Decode {
            id: record.id.clone(),
            source,
        };
        let text = serde_json::to_string(record).map_err(encode)?;
        let legs = serde_json::to_string(legs).map_err(encode)?;
        Ok((text, legs))
    }

    async fn save(
        connection: &mut sqlx::AnyConnection,
        record: &CallRecord,
        legs: &StoredLegs,
    ) -> Result<(), JournalError> {
        let (text, legs) = Journal::encode(record, legs)?;
        sqlx::query(&format!("{UPSERT} ($1, $2, $3, $4) {ON_CONFLICT}"))
            .bind(&record.id)
            .bind(text)
            .bind(legs)
            .bind(unix_millis(SystemTime::now()))
            .execute(connection)
            .await?;
        Ok(())
    }

    async fn remove(connection: &mut sqlx::AnyConnection, id: &str) -> Result<(), JournalError> {
        sqlx::query("DELETE FROM open_calls WHERE id = $1")
            .bind(id)
            .execute(connection)
            .await?;
        Ok(())
    }

    /// Applies the net effect of `entries` in one transaction: the newest
    /// save of each call, or its removal. `stored` contains the calls whose row
    /// an earlier commit wrote. A call saved and removed within `entries`
    /// and absent from `stored` has no row, so it costs no statement. A
    /// failed commit is returned.
    async fn apply(
        &self,
        entries: &[JournalEntry],
        stored: &mut HashSet<String>,
    ) -> Result<(), JournalError> {
        let changes = NetChanges::of(entries, stored);
        if changes.saves.is_empty() && changes.removals.is_empty() {
            return Ok(());
        }
        if let Err(error) = self.apply_grouped(&changes).await {
            // One bad record must not cost the others their save, so the
            // entries go again one statement each.
            tracing::warn!(%error, "grouped open-call update failed, applying its entries one by one");
            self.apply_each(&changes).await?;
        }
        for (record, _) in &changes.saves {
            stored.insert(record.id.clone());
        }
        for id in &changes.removals {
            stored.remove(*id);
        }
        Ok(())
    }

    /// Applies `changes` in one transaction of a few multi-row statements,
    /// because each statement is a round trip to the database's worker
    /// thread. A record that does not encode is logged and skipped.
    async fn apply_grouped(&self, changes: &NetChanges<'_>) -> Result<(), JournalError> {
        let backend = cdr::database::Backend::of(&self.pool);
        let now = unix_millis(SystemTime::now());
        let mut rows = Vec::with_capacity(changes.saves.len());
        for (record, legs) in &changes.saves {
            match Journal::encode(record, legs) {
                Ok((text, legs)) => rows.push((record.id.as_str(), text, legs)),
                Err(error) => {
                    tracing::error!(call = record.id, %error, "updating the open-call journal failed");
                }
            }
        }
        let mut transaction = self.pool.begin().await?;
        for chunk in rows.chunks(ROWS_PER_STATEMENT) {
            let values = cdr::database::placeholder_rows(backend, 1, chunk.len(), 4);
            let sql = format!("{UPSERT} {values} {ON_CONFLICT}");
            let mut upsert = sqlx::query(&sql);
            for (id, text, legs) in chunk {
                upsert = upsert.bind(*id).bind(text).bind(legs).bind(now);
            }
            upsert.execute(&mut *transaction).await?;
        }
        for chunk in changes.removals.chunks(ROWS_PER_STATEMENT) {
            let ids = cdr::database::placeholder_rows(backend, 1, 1, chunk.len());
            let sql = format!("DELETE FROM open_calls WHERE id IN {ids}");
            let mut delete = sqlx::query(&sql);
            for id in chunk {
                delete = delete.bind(*id);
            }
            delete.execute(&mut *transaction).await?;
        }
        transaction.commit().await?;
        Ok(())
    }

    /// Applies `changes` in one transaction, a statement each. An entry
    /// that fails is logged and skipped, and a failed commit is returned.
    async fn apply_each(&self, changes: &NetChanges<'_>) -> Result<(), JournalError> {
        let mut transaction = self.pool.begin().await?;
        for (record, legs) in &changes.saves {
            if let Err(error) = Journal::save(&mut transaction, record, legs).await {
                tracing::error!(call = record.id, %error, "updating the open-call journal failed");
            }
        }
        for id in &changes.removals {
            if let Err(error) = Journal::remove(&mut transaction, id).await {
                tracing::error!(call = id, %error, "updating the open-call journal failed");
            }
        }
        transaction.commit().await?;
        Ok(())
    }

    /// Turns every call left open by an earlier run into an interrupted
    /// CDR, repairing its recording first, and returns their count with
    /// the dialogs they still had.
    pub(crate) async fn recover(
        &self,
        store: &CdrStore,
        data_dir: &Path,
    ) -> Result<Recovered, JournalError> {
        // The last event the earlier run stored shows it still ran then,
        // often long after a waiting call's only checkpoint at its arrival.
        let last_event_ms: Option<i64> = sqlx::query_scalar("SELECT MAX(at_ms) FROM queue_events")
            .fetch_one(&self.shared)
            .await?;
        let mut recovered = Recovered::default();
        for pool in [&self.pool, &self.shared] {
            self.recover_from(pool, last_event_ms, store, data_dir, &mut recovered)
                .await?;
        }
        Ok(recovered)
    }

    /// Recovers the calls of the `open_calls` table in `pool` into
    /// `recovered`, and removes them.
    async fn recover_from(
        &self,
        pool: &AnyPool,
        last_event_ms: Option<i64>,
        store: &CdrStore,
        data_dir: &Path,
        recovered: &mut Recovered,
    ) -> Result<(), JournalError> {
        let rows = sqlx::query("SELECT id, record, legs, updated_at_ms FROM open_calls")
            .fetch_all(pool)
            .await?;
        for row in rows {
            let id: String = row.try_get("id")?;
            let text: String = row.try_get("record")?;
            let updated_ms: i64 = row.try_get("updated_at_ms")?;
            let legs: Option<String> = row.try_get("legs")?;
            // A crash between writing the CDR and removing the row leaves
            // both. The CDR already written wins, and that call's phones
            // were hung up before it was written.
            if store.get(&id).await.ok().flatten().is_none() {
                // A leg list that does not decode only costs its BYEs.
                match legs.as_deref().map(serde_json::from_str::<StoredLegs>) {
                    Some(Ok(legs)) => {
                        recovered.legs.dialogs.extend(legs.dialogs);
                        recovered.legs.ringing.extend(legs.ringing);
                    }
                    Some(Err(error)) => {
                        tracing::warn!(call = id, %error, "stored dialogs do not decode");
                    }
                    None => {}
                }
                let stored: CallRecord =
                    serde_json::from_str(&text).map_err(|source| JournalError::Decode {
                        id: id.clone(),
                        source,
                    })?;
                let last_seen_ms = updated_ms.max(last_event_ms.unwrap_or(0));
                let last_seen =
                    UNIX_EPOCH + Duration::from_millis(u64::try_from(last_seen_ms).unwrap_or(0));
                let record = interrupted_record(stored, last_seen, data_dir);
                tracing::warn!(call = id, disposition = ?record.disposition, "call was interrupted by a stop; CDR recovered");
                store
                    .write(&record)
                    .await
                    .map_err(|source| JournalError::Cdr {
                        id: id.clone(),
                        source,
                    })?;
                recovered.calls += 1;
            }
            let mut connection = pool.acquire().await?;
            Journal::remove(&mut connection, &id).await?;
        }
        Ok(())
    }
}

/// The final CDR of a call whose process died: its recording is repaired
/// and gives the talk time when there is one; otherwise the call is taken
/// to have ended at `last_seen`, when the run was last known to be alive,
/// and a call still waiting for an agent waited until then.
fn interrupted_record(
    mut record: CallRecord,
    last_seen: SystemTime,
    data_dir: &Path,
) -> CallRecord {
    record.interrupted = true;
    record.hangup_side = Some(cdr::HangupSide::System);
    let recording = record
        .recording_path
        .as_deref()
        .and_then(|path| repaired_length(&data_dir.join(path)));
    match (record.answered_at, recording) {
        (Some(answered), Some(seconds)) => {
            record.ended_at = answered + Duration::from_secs_f64(seconds);
            record.talk_seconds = round_millis(seconds);
            record.recording_seconds = Some(round_millis(seconds));
        }
        (None, Some(seconds)) => {
            // A voicemail message: no agent answered, but the message is
            // on disk and QA must still find and replay it.
            record.ended_at = time::OffsetDateTime::from(last_seen).max(record.arrived_at);
            record.recording_seconds = Some(round_millis(seconds));
        }
        _ => {
            record.ended_at = time::OffsetDateTime::from(last_seen).max(record.arrived_at);
            record.recording_path = None;
            if let Some(answered) = record.answered_at {
                record.talk_seconds =
                    round_millis((record.ended_at - answered).as_seconds_f64().max(0.0));
            }
            // The checkpoint's wait ends at the checkpoint. NOTE: a caller
            // hearing the apology after its maximum wait also counts as
            // waiting until the stop.
            if let (None, Some(queued), cdr::Disposition::Failed) =
                (record.answered_at, record.queued_at, record.disposition)
            {
                let waited = (record.ended_at - queued).as_seconds_f64().max(0.0);
                record.wait_seconds = round_millis(waited.max(record.wait_seconds));
            }
        }
    }
    record
}

/// Repairs the WAV at `path` and returns its length in seconds.
pub(crate) fn repaired_length(path: &Path) -> Option<f64> {
    match recordings::repair(path) {
        Ok(outcome) => {
            tracing::info!(path = %path.display(), ?outcome, "recording checked after a stop")
        }
        Err(error) => {
            tracing::warn!(path = %path.display(), %error, "recording could not be repaired");
            return None;
        }
    }
    let reader = hound::WavReader::open(path).ok()?;
    let rate = reader.spec().sample_rate;
    (rate > 0).then(|| f64::from(reader.duration()) / f64::from(rate))
}

fn round_millis(seconds: f64) -> f64 {
    (seconds * 1000.0).round() / 1000.0
}

fn unix_millis(at: SystemTime) -> i64 {
    let millis = at
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_millis();
    i64::try_from(millis).unwrap_or(i64::MAX)
}

/// Progress of [`write_journal`]: the count of saves it has committed, in
/// the order the engine sent them, and a wake-up for the engine, which
/// keeps a call's SIP messages back until its save is committed.
#[derive(Debug, Default)]
pub(crate) struct JournalProgress {
    saves_done: AtomicU64,
    done: Notify,
}

impl JournalProgress {
    /// Returns the count of saves committed so far, failed commits included.
    pub(crate) fn saves_done(&self) -> u64 {
        self.saves_done.load(Ordering::Acquire)
    }

    /// Resolves after the next commit, or at once when one came since the
    /// last call.
    pub(crate) async fn committed(&self) {
        self.done.notified().await;
    }

    fn advance(&self, saves: u64) {
        if saves > 0 {
            self.saves_done.fetch_add(saves, Ordering::Release);
            self.done.notify_one();
        }
    }
}

/// Starts [`write_journal`] on a thread of its own, with a runtime of its
/// own, so the engine's work never delays its commits. The receiver
/// resolves once the writer has applied every entry the engine sent.
pub(crate) fn spawn_writer(
    journal: Journal,
    queue: mpsc::UnboundedReceiver<JournalEntry>,
    progress: Arc<JournalProgress>,
) -> std::io::Result<tokio::sync::oneshot::Receiver<()>> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let (done, finished) = tokio::sync::oneshot::channel();
    let span = tracing::Span::current();
    std::thread::Builder::new()
        .name("journal".to_owned())
        .spawn(move || {
            let _span = span.entered();
            runtime.block_on(write_journal(journal, queue, progress));
            let _ = done.send(());
        })?;
    Ok(finished)
}

/// Applies journal changes in the order the engine made them, so a removal
/// never overtakes the save it undoes.
pub(crate) async fn write_journal(
    journal: Journal,
    mut queue: mpsc::UnboundedReceiver<JournalEntry>,
    progress: Arc<JournalProgress>,
) {
    let mut stored = HashSet::new();
    while let Some(first) = queue.recv().await {
        // Group commit: the entries of the next GATHER share one commit.
        // The engine keeps a call's SIP messages back until its save is
        // committed, so the wait is short. Only the last entry of each call
        // counts, so a removal still never overtakes its save.
        tokio::time::sleep(GATHER).await;
        let entries = crate::events::with_queued(first, &mut queue, MAX_GROUP);
        if let Err(error) = journal.apply(&entries, &mut stored).await {
            tracing::error!(entries = entries.len(), %error, "committing the open-call journal failed");
        }
        // A failed commit is logged and the calls go on, so their messages
        // are released as well.
        let saves = entries
            .iter()
            .filter(|entry| matches!(entry, JournalEntry::Save { .. }))
            .count();
        progress.advance(u64::try_from(saves).unwrap_or(u64::MAX));
    }
}

/// Most entries one commit of [`write_journal`] takes.
const MAX_GROUP: usize = 256;

/// How long [`write_journal`] gathers entries after the first before it
/// commits them. Call setup waits this much longer at each checkpoint,
/// and a commit per save cost 10 to 20 % more CPU per call at 1,500
/// calls/s (docs/benchmarks.md).
const GATHER: Duration = Duration::from_millis(2);

#[cfg(test)]
mod tests {
    use super::*;
    use cdr::test_database::TestDatabase;

    fn open_record(id: &str, answered: bool, recording: Option<&str>) -> CallRecord {
        let arrived = time::OffsetDateTime::now_utc() - Duration::from_secs(60);
        CallRecord {
            id: id.to_owned(),
            caller_call_id: format!("{id}@caller"),
            agent_call_id: None,
            caller: "+15550100".to_owned(),
            dialed: "5000".to_owned(),
            trunk: Some("carrier".to_owned()),
            source_extension: None,
            direction: cdr::CallDirection::Inbound,
            queue: Some("general".to_owned()),
            request_type: None,
            agent: answered.then(|| "1001".to_owned()),
            arrived_at: arrived,
            queued_at: Some(arrived),
            answered_at: answered.then(|| arrived + Duration::from_secs(5)),
            ended_at: arrived,
            wait_seconds: 5.0,
            talk_seconds: 0.0,
            disposition: if answered {
                cdr::Disposition::Answered
            } else {
                cdr::Disposition::Failed
            },
            sip_status: None,
            hangup_side: Some(cdr::HangupSide::System),
            recording_path: recording.map(str::to_owned),
            recording_seconds: None,
            interrupted: false,
            caller_answered_at: None,
            voicemail_box: None,
            forwarded_to: None,
            diverted_from: None,
            callback_of: None,
            recording_events: Vec::new(),
            media_quality: None,
            rebuilt: false,
            transfers: Vec::new(),
            hold_count: 0,
            hold_seconds: 0.0,
            survey: None,
            csat_score: None,
        }
    }

    /// Opens the CDR store on `database` and the journal, both in a new
    /// data folder.
    async fn open_stores(database: &TestDatabase) -> (tempfile::TempDir, CdrStore, Journal) {
        let dir = tempfile::tempdir().unwrap();
        let store = CdrStore::open_at(dir.path(), &database.url(dir.path()))
            .await
            .unwrap();
        let journal = Journal::open(dir.path(), store.pool().clone())
            .await
            .unwrap();
        (dir, store, journal)
    }

    /// Writes a WAV whose writer died during 2 s of audio, so its header
    /// still counts 0 frames.
    fn broken_wav(path: &Path) {
        let spec = hound::WavSpec {
            channels: 2,
            sample_rate: 8000,
            bits_per_sample: 16,
            sample_format: hound::SampleFormat::Int,
        };
        let mut writer = hound::WavWriter::create(path, spec).unwrap();
        writer.flush().unwrap();
        for _ in 0..16_000 * 2 {
            writer.write_sample(0i16).unwrap();
        }
        // Leaking the writer skips finalize, as a kill -9 would.
        std::mem::forget(writer);
    }

    async fn open_calls_become_interrupted_cdrs(database: TestDatabase) {
        let (dir, store, journal) = open_stores(&database).await;
        std::fs::create_dir_all(dir.path().join("recordings")).unwrap();
        broken_wav(&dir.path().join("recordings/a.wav"));

        let save = |record: CallRecord| JournalEntry::Save {
            record: Box::new(record),
            legs: StoredLegs::default(),
        };
        let mut stored = HashSet::new();
        journal
            .apply(
                &[
                    save(open_record("a", true, Some("recordings/a.wav"))),
                    save(open_record("b", false, None)),
                    save(open_record("d", false, None)),
                ],
                &mut stored,
            )
            .await
            .unwrap();
        // A save and its removal in one group commit leave nothing, and
        // the removal of a row an earlier commit wrote deletes it.
        journal
            .apply(
                &[
                    save(open_record("c", false, None)),
                    save(open_record("c", true, None)),
                    JournalEntry::Remove("c".to_owned()),
                    save(open_record("d", true, None)),
                    JournalEntry::Remove("d".to_owned()),
                ],
                &mut stored,
            )
            .await
            .unwrap();
        assert_eq!(stored.len(), 2, "stored ids: {stored:?}");

        assert_eq!(journal.recover(&store, dir.path()).await.unwrap().calls, 2);
        let answered = store
            .get("a")
            .await
            .unwrap()
            .expect("CDR of the answered call");
        assert!(answered.interrupted);
        assert_eq!(answered.disposition, cdr::Disposition::Answered);
        // The writer's buffer died with it, so up to 2 s reached the disk.
        let seconds = answered.recording_seconds.expect("recording length");
        assert!(
            seconds > 1.5 && seconds <= 2.0,
            "recording_seconds {seconds}"
        );
        assert_eq!(answered.talk_seconds, seconds);
        assert_eq!(
            answered.ended_at,
            answered.answered_at.unwrap() + Duration::from_secs_f64(seconds)
        );
        let reader = hound::WavReader::open(dir.path().join("recordings/a.wav")).unwrap();
        let header_seconds = f64::from(reader.duration()) / 8000.0;
        assert!(
            (header_seconds - seconds).abs() < 0.001,
            "header repaired: {header_seconds}"
        );

        let waiting = store
            .get("b")
            .await
            .unwrap()
            .expect("CDR of the waiting call");
        assert!(waiting.interrupted);
        assert_eq!(waiting.disposition, cdr::Disposition::Failed);
        assert!(
            store.get("c").await.unwrap().is_none(),
            "a removed call leaves nothing"
        );
        assert!(
            store.get("d").await.unwrap().is_none(),
            "a call removed after its commit leaves nothing"
        );

        // Nothing is left for a second start.
        assert_eq!(journal.recover(&store, dir.path()).await.unwrap().calls, 0);
    }

    async fn interrupted_voicemail_keeps_its_message(database: TestDatabase) {
        let (dir, store, journal) = open_stores(&database).await;
        std::fs::create_dir_all(dir.path().join("voicemail/general")).unwrap();
        broken_wav(&dir.path().join("voicemail/general/m.wav"));
        let message = CallRecord {
            disposition: cdr::Disposition::Voicemail,
            voicemail_box: Some("general".to_owned()),
            ..open_record("m", false, Some("voicemail/general/m.wav"))
        };
        journal
            .apply(
                &[JournalEntry::Save {
                    record: Box::new(message),
                    legs: StoredLegs::default(),
                }],
                &mut HashSet::new(),
            )
            .await
            .unwrap();

        assert_eq!(journal.recover(&store, dir.path()).await.unwrap().calls, 1);
        let record = store.get("m").await.unwrap().expect("CDR of the message");
        assert!(record.interrupted);
        assert_eq!(record.disposition, cdr::Disposition::Voicemail);
        assert_eq!(
            record.recording_path.as_deref(),
            Some("voicemail/general/m.wav")
        );
        let seconds = record.recording_seconds.expect("message length");
        assert!(
            seconds > 1.5 && seconds <= 2.0,
            "recording_seconds {seconds}"
        );
        assert_eq!(record.talk_seconds, 0.0);
    }

    async fn interrupted_waiting_call_keeps_its_wait(database: TestDatabase) {
        let (dir, store, journal) = open_stores(&database).await;
        // Stored at its arrival, as the engine's checkpoint does, with no
        // wait yet.
        let waiting = CallRecord {
            wait_seconds: 0.0,
            ..open_record("w", false, None)
        };
        let queued = waiting.queued_at.unwrap();
        journal
            .apply(
                &[JournalEntry::Save {
                    record: Box::new(waiting),
                    legs: StoredLegs::default(),
                }],
                &mut HashSet::new(),
            )
            .await
            .unwrap();
        let queued_ms = (queued.unix_timestamp_nanos() / 1_000_000) as i64;
        sqlx::query("UPDATE open_calls SET updated_at_ms = $1 WHERE id = 'w'")
            .bind(queued_ms)
            .execute(&journal.pool)
            .await
            .unwrap();
        // The run was still storing events 40 s later, another agent's
        // state change, say, before it died.
        let last_event_ms = queued_ms + 40_000;
        sqlx::query(
            "INSERT INTO queue_events (at_ms, at, kind, call_id, queue, agent, data) \
             VALUES ($1, 'x', 'agent_state', NULL, NULL, '1002', '{}')",
        )
        .bind(last_event_ms)
        .execute(store.pool())
        .await
        .unwrap();

        assert_eq!(journal.recover(&store, dir.path()).await.unwrap().calls, 1);
        let record = store
            .get("w")
            .await
            .unwrap()
            .expect("CDR of the waiting call");
        assert!(record.interrupted);
        assert_eq!(record.disposition, cdr::Disposition::Failed);
        // The stored times have millisecond precision.
        assert!(
            (record.wait_seconds - 40.0).abs() <= 0.001,
            "wait_seconds {}",
            record.wait_seconds
        );
        let ended_gap = record.ended_at - (queued + Duration::from_secs(40));
        assert!(
            ended_gap.abs() <= time::Duration::milliseconds(1),
            "{ended_gap}"
        );
        assert_eq!(record.talk_seconds, 0.0);
    }

    /// Checks that recovery keeps the CDR of a call that ended normally
    /// before the crash removed its row, and sends its phones no second BYE.
    async fn ended_call_left_in_the_journal_is_not_hung_up_again(database: TestDatabase) {
        let (dir, store, journal) = open_stores(&database).await;
        let dialog = |call_id: &str| sip_server::dialog::StoredDialog {
            call_id: call_id.to_owned(),
            local_tag: "local".to_owned(),
            remote_tag: "remote".to_owned(),
            local_uri: "sip:5000@pbx.example.org".to_owned(),
            remote_uri: "sip:5551234@127.0.0.1".to_owned(),
            remote_target: "sip:5551234@127.0.0.1:5070".to_owned(),
            route_set: Vec::new(),
            local_cseq: 1,
            transport: "UDP".to_owned(),
            address: "127.0.0.1:5070".parse().unwrap(),
        };
        let save = |record: CallRecord, call_id: &str| JournalEntry::Save {
            record: Box::new(record),
            legs: StoredLegs {
                dialogs: vec![dialog(call_id)],
                ..StoredLegs::default()
            },
        };
        let mut stored = HashSet::new();
        journal
            .apply(
                &[
                    save(open_record("ended", true, None), "sip-ended"),
                    save(open_record("open", true, None), "sip-open"),
                ],
                &mut stored,
            )
            .await
            .unwrap();
        let mut ended = open_record("ended", true, None);
        ended.hangup_side = Some(cdr::HangupSide::Caller);
        store.write(&ended).await.unwrap();

        let recovered = journal.recover(&store, dir.path()).await.unwrap();
        assert_eq!(recovered.calls, 1);
        let hung_up: Vec<&str> = recovered
            .legs
            .dialogs
            .iter()
            .map(|dialog| dialog.call_id.as_str())
            .collect();
        assert_eq!(hung_up, ["sip-open"]);
        let kept = store
            .get("ended")
            .await
            .unwrap()
            .expect("CDR of the ended call");
        assert!(!kept.interrupted);
        assert_eq!(kept.hangup_side, Some(cdr::HangupSide::Caller));
    }

    /// Checks that a start recovers the calls a release that kept the
    /// journal in the shared database left there, and that new saves go to
    /// the journal's own file.
    async fn shared_table_calls_are_recovered(database: TestDatabase) {
        let (dir, store, journal) = open_stores(&database).await;
        let record = open_record("old", true, None);
        let mut connection = store.pool().acquire().await.unwrap();
        Journal::save(&mut connection, &record, &StoredLegs::default())
            .await
            .unwrap();
        drop(connection);
        let mut stored = HashSet::new();
        let entry = JournalEntry::Save {
            record: Box::new(open_record("new", false, None)),
            legs: StoredLegs::default(),
        };
        journal
            .apply(std::slice::from_ref(&entry), &mut stored)
            .await
            .unwrap();
        let shared_rows: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM open_calls")
            .fetch_one(store.pool())
            .await
            .unwrap();
        assert_eq!(
            shared_rows, 1,
            "the new save must not reach the shared table"
        );
        assert!(dir.path().join(FILE).is_file());

        assert_eq!(journal.recover(&store, dir.path()).await.unwrap().calls, 2);
        for id in ["old", "new"] {
            let record = store.get(id).await.unwrap().expect("recovered CDR");
            assert!(record.interrupted, "{id}");
        }
        for pool in [&journal.pool, store.pool()] {
            let left: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM open_calls")
                .fetch_one(pool)
                .await
                .unwrap();
            assert_eq!(left, 0);
        }
    }

    #[tokio::test]
    async fn damaged_journal_file_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let store = CdrStore::open(dir.path()).await.unwrap();
        std::fs::write(dir.path().join(FILE), [0x5a_u8; 8192]).unwrap();
        let error = match Journal::open(dir.path(), store.pool().clone()).await {
            Ok(_) => panic!("a journal that is not a database opened"),
            Err(error) => error.to_string(),
        };
        assert!(error.contains(FILE), "{error}");
        assert!(error.contains("not a database"), "{error}");
    }

    cdr::storage_tests!(
        shared_table_calls_are_recovered,
        open_calls_become_interrupted_cdrs,
        ended_call_left_in_the_journal_is_not_hung_up_again,
        interrupted_voicemail_keeps_its_message,
        interrupted_waiting_call_keeps_its_wait,
    );
}
