//! The JSON-lines journal and the database table behind [`CdrStore`].

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use sqlx::any::AnyRow;
use sqlx::{AnyConnection, AnyPool, Row};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;
use tokio::sync::{mpsc, oneshot};

use crate::database::{self, Backend, DatabaseUrl, OptionalF64};
use crate::{
    CallDirection, CallFilter, CallRecord, CdrError, Disposition, HangupSide, RecordingAction,
    RecordingEvent, RecordingEventSource, SurveyStatus, Transfer,
};

/// Largest page [`CdrStore::list`] returns; larger limits are lowered to it.
pub const MAX_LIST_LIMIT: u32 = 1000;

const DATABASE_FILE: &str = "pbx.sqlite";
const JOURNAL_FILE: &str = "cdr.jsonl";

const SELECT_COLUMNS: &str = "id, caller_call_id, agent_call_id, caller, dialed, trunk, \
     source_extension, queue, agent, arrived_at, queued_at, answered_at, ended_at, \
     wait_seconds, talk_seconds, disposition, sip_status, hangup_side, recording_path, \
     recording_seconds, interrupted, caller_answered_at, voicemail_box, forwarded_to, \
     callback_of, media_quality, diverted_from, rebuilt, hold_count, hold_seconds, survey, \
     csat_score, transfers, request_type, direction";

/// Durable store of call records: an fsynced JSON-lines journal plus a
/// database table for queries. Cloning shares the pool and the writer task.
#[derive(Clone, Debug)]
pub struct CdrStore {
    pool: AnyPool,
    /// Queue of the task that writes records in groups ([`write_groups`]).
    writes: mpsc::UnboundedSender<PendingWrite>,
}

/// A record waiting for [`write_groups`], with its journal line and the
/// caller waiting for the outcome.
#[derive(Debug)]
struct PendingWrite {
    record: CallRecord,
    line: Vec<u8>,
    done: oneshot::Sender<Result<(), CdrError>>,
    /// Whether the writer waits [`GATHER`] for more records before it
    /// writes the group.
    gather: bool,
}

/// Maximum records of one group of [`write_groups`], reached only by a
/// backlog. With 256 the writer fell behind at 3,000 calls/s, and a stop
/// then left calls whose records were still queued to the next start.
const MAX_GROUP: usize = 4096;

/// How long [`write_groups`] gathers records after a first one written with
/// [`CdrStore::write_grouped`]. Each group costs an fsync of the JSON-lines
/// journal, a hand-off to a blocking thread and a transaction. At 1,000
/// calls/s a group then contains about 20 records instead of one or two.
const GATHER: std::time::Duration = std::time::Duration::from_millis(20);

#[derive(Debug)]
struct Journal {
    path: PathBuf,
    // The mutex keeps lines from two writers apart and orders each fsync
    // after its own write.
    file: Mutex<File>,
}

impl CdrStore {
    /// Opens (creating) `<data_dir>/pbx.sqlite` and `<data_dir>/cdr.jsonl`,
    /// creating `data_dir` itself when missing, and runs the migrations.
    pub async fn open(data_dir: &Path) -> Result<CdrStore, CdrError> {
        let database = DatabaseUrl::sqlite_file(&data_dir.join(DATABASE_FILE));
        CdrStore::open_at(data_dir, &database).await
    }

    /// Opens `<data_dir>/cdr.jsonl` and the database at `database`, which
    /// the other stores then share through [`CdrStore::pool`], and runs
    /// the migrations.
    pub async fn open_at(data_dir: &Path, database: &DatabaseUrl) -> Result<CdrStore, CdrError> {
        std::fs::create_dir_all(data_dir).map_err(|source| CdrError::CreateDataDir {
            path: data_dir.to_path_buf(),
            source,
        })?;
        let journal = Arc::new(Journal::open(data_dir.join(JOURNAL_FILE))?);
        let pool = open_database(database).await?;
        let (writes, queue) = mpsc::unbounded_channel();
        // The task ends when the last clone of the store, and so the last
        // sender, is dropped.
        tokio::spawn(write_groups(pool.clone(), Arc::clone(&journal), queue));
        Ok(CdrStore { pool, writes })
    }

    /// Appends the JSON line (flushed and fsynced) and inserts the row.
    /// Timestamps are converted to UTC first, so both copies use `Z` times.
    ///
    /// The journal line is written first, so when the insert fails (for
    /// example a duplicate `id`) the record is still on disk and the insert
    /// error is returned.
    ///
    /// Records that queued up while the previous group was written go in
    /// one group. Their lines share one fsync and their rows one
    /// transaction, so a busy centre pays one disk flush per group instead
    /// of two per call.
    pub async fn write(&self, record: &CallRecord) -> Result<(), CdrError> {
        self.write_with(record, false).await
    }

    /// Writes `record` as [`CdrStore::write`] does, after letting the
    /// records of the next 20 ms join its group, so it returns 20 ms or
    /// more after it is called. Meant for the records of calls as they
    /// end, which nothing waits for. A caller that writes records one
    /// after the other, such as a repair, uses `write`.
    pub async fn write_grouped(&self, record: &CallRecord) -> Result<(), CdrError> {
        self.write_with(record, true).await
    }

    async fn write_with(&self, record: &CallRecord, gather: bool) -> Result<(), CdrError> {
        let record = in_utc(record);
        let mut line = serde_json::to_vec(&record).map_err(|source| CdrError::Encode {
            id: record.id.clone(),
            source,
        })?;
        line.push(b'\n');
        let id = record.id.clone();
        let (done, outcome) = oneshot::channel();
        let pending = PendingWrite {
            record,
            line,
            done,
            gather,
        };
        if self.writes.send(pending).is_err() {
            return Err(CdrError::WriterStopped { id });
        }
        outcome.await.unwrap_or(Err(CdrError::WriterStopped { id }))
    }

    /// Returns up to `limit` records (at most [`MAX_LIST_LIMIT`]), newest
    /// `arrived_at` first, skipping the first `offset`.
    pub async fn list(&self, limit: u32, offset: u32) -> Result<Vec<CallRecord>, CdrError> {
        self.list_with(limit, offset, None).await
    }

    /// Returns records as [`CdrStore::list`] does, only those with
    /// `disposition` when it is given (such as the voicemail messages).
    pub async fn list_with(
        &self,
        limit: u32,
        offset: u32,
        disposition: Option<Disposition>,
    ) -> Result<Vec<CallRecord>, CdrError> {
        let filter = CallFilter {
            disposition,
            ..CallFilter::default()
        };
        self.search(&filter, limit, offset).await
    }

    /// Returns the records that match every condition of `filter`, in the
    /// order and paging of [`CdrStore::list`].
    pub async fn search(
        &self,
        filter: &CallFilter,
        limit: u32,
        offset: u32,
    ) -> Result<Vec<CallRecord>, CdrError> {
        let limit = limit.min(MAX_LIST_LIMIT);
        // rowid (SQLite's implicit one, an identity column in PostgreSQL)
        // breaks ties between calls that arrived in the same millisecond,
        // so paging with offsets neither repeats nor skips records. Each
        // condition is off when its parameter is NULL, so one statement
        // serves every combination. The caller number is matched as plain
        // text, where LIKE would treat `%` and `_` as wildcards.
        let caller_matches = database::contains_text(Backend::of(&self.pool), "caller", "$6");
        let sql = format!(
            "SELECT {SELECT_COLUMNS} FROM call_records \
             WHERE ($1 IS NULL OR disposition = $1) \
             AND ($2 IS NULL OR arrived_at_ms >= $2) \
             AND ($3 IS NULL OR arrived_at_ms < $3) \
             AND ($4 IS NULL OR queue = $4) \
             AND ($5 IS NULL OR agent = $5) \
             AND ($6 IS NULL OR {caller_matches}) \
             AND ($7 IS NULL OR talk_seconds >= $7) \
             AND ($8 IS NULL OR talk_seconds <= $8) \
             AND ($9 IS NULL OR csat_score >= $9) \
             AND ($10 IS NULL OR csat_score <= $10) \
             AND ($11 IS NULL OR request_type = $11) \
             ORDER BY arrived_at_ms DESC, rowid DESC LIMIT $12 OFFSET $13"
        );
        let rows = sqlx::query(&sql)
            .bind(filter.disposition.map(Disposition::as_str))
            .bind(filter.from.map(unix_millis))
            .bind(filter.to.map(unix_millis))
            .bind(filter.queue.as_deref())
            .bind(filter.agent.as_deref())
            .bind(filter.caller.as_deref())
            .bind(OptionalF64(filter.min_talk_seconds))
            .bind(OptionalF64(filter.max_talk_seconds))
            .bind(filter.min_csat.map(i64::from))
            .bind(filter.max_csat.map(i64::from))
            .bind(filter.request_type.as_deref())
            .bind(i64::from(limit))
            .bind(i64::from(offset))
            .fetch_all(&self.pool)
            .await
            .map_err(CdrError::Query)?;
        let mut records = rows
            .iter()
            .map(record_from_row)
            .collect::<Result<Vec<_>, _>>()?;
        self.attach_recording_events(&mut records).await?;
        Ok(records)
    }

    /// Returns the record with product call id `id`, if any.
    pub async fn get(&self, id: &str) -> Result<Option<CallRecord>, CdrError> {
        let sql = format!("SELECT {SELECT_COLUMNS} FROM call_records WHERE id = $1");
        let row = sqlx::query(&sql)
            .bind(id)
            .fetch_optional(&self.pool)
            .await
            .map_err(CdrError::Query)?;
        let Some(record) = row.as_ref().map(record_from_row).transpose()? else {
            return Ok(None);
        };
        let mut records = [record];
        self.attach_recording_events(&mut records).await?;
        let [record] = records;
        Ok(Some(record))
    }

    /// Fills `recording_events` of each record from the database, with one
    /// query for all of them.
    async fn attach_recording_events(&self, records: &mut [CallRecord]) -> Result<(), CdrError> {
        if records.is_empty() {
            return Ok(());
        }
        // At most MAX_LIST_LIMIT ids, far below SQLite's limit of 32766
        // bound parameters and PostgreSQL's of 65535.
        let placeholders = (1..=records.len())
            .map(|number| format!("${number}"))
            .collect::<Vec<_>>()
            .join(", ");
        let sql = format!(
            "SELECT call_id, action, offset_seconds, at, source, actor \
             FROM call_recording_events WHERE call_id IN ({placeholders}) ORDER BY call_id, seq"
        );
        let mut query = sqlx::query(&sql);
        for record in records.iter() {
            query = query.bind(&record.id);
        }
        let rows = query.fetch_all(&self.pool).await.map_err(CdrError::Query)?;
        for row in &rows {
            let call_id: String = column(row, "call_id")?;
            let event = recording_event_from_row(row, &call_id)?;
            if let Some(record) = records.iter_mut().find(|record| record.id == call_id) {
                record.recording_events.push(event);
            }
        }
        Ok(())
    }

    /// Returns the answered record of a call placed to return the callback
    /// request made on call `request`, the earliest if several were.
    pub async fn answered_callback_of(
        &self,
        request: &str,
    ) -> Result<Option<CallRecord>, CdrError> {
        let row = sqlx::query(&format!(
            "SELECT {SELECT_COLUMNS} FROM call_records \
             WHERE callback_of = $1 AND answered_at IS NOT NULL \
             ORDER BY arrived_at_ms LIMIT 1"
        ))
        .bind(request)
        .fetch_optional(&self.pool)
        .await
        .map_err(CdrError::Query)?;
        row.as_ref().map(record_from_row).transpose()
    }

    pub fn pool(&self) -> &AnyPool {
        &self.pool
    }

    /// Inserts `record` in a transaction of its own.
    async fn insert(pool: &AnyPool, record: &CallRecord) -> Result<(), CdrError> {
        let mut transaction = pool.begin().await.map_err(|source| CdrError::Insert {
            id: record.id.clone(),
            source,
        })?;
        CdrStore::insert_many(&mut transaction, Backend::of(pool), &[record]).await?;
        transaction
            .commit()
            .await
            .map_err(|source| CdrError::InsertEvents {
                id: record.id.clone(),
                source,
            })
    }

    /// Inserts the rows of `records` with one statement per
    /// [`ROWS_PER_INSERT`] records, then their recording events, on
    /// `connection`, inside the caller's transaction. Each statement is a
    /// round trip to the database's worker thread, which cost more per
    /// call than the insert itself when each record had its own.
    async fn insert_many(
        connection: &mut AnyConnection,
        backend: Backend,
        records: &[&CallRecord],
    ) -> Result<(), CdrError> {
        for chunk in records.chunks(ROWS_PER_INSERT) {
            let rows = chunk
                .iter()
                .map(|record| RowValues::of(record))
                .collect::<Result<Vec<_>, _>>()?;
            let values = database::placeholder_rows(backend, 1, rows.len(), INSERT_COLUMN_COUNT);
            let sql = format!("INSERT INTO call_records ({INSERT_COLUMNS}) VALUES {values}");
            let mut insert = sqlx::query(&sql);
            for row in &rows {
                insert = row.bind(insert);
            }
            insert
                .execute(&mut *connection)
                .await
                .map_err(|source| CdrError::Insert {
                    id: chunk
                        .iter()
                        .map(|record| record.id.as_str())
                        .collect::<Vec<_>>()
                        .join(", "),
                    source,
                })?;
        }
        for record in records {
            CdrStore::insert_recording_events(connection, record).await?;
        }
        Ok(())
    }

    /// Inserts the recording events of `record`, a statement each, because
    /// few calls have any.
    async fn insert_recording_events(
        connection: &mut AnyConnection,
        record: &CallRecord,
    ) -> Result<(), CdrError> {
        let timestamp = |field, value| rfc3339(&record.id, field, value);
        let events_failed = |source| CdrError::InsertEvents {
            id: record.id.clone(),
            source,
        };
        for (seq, event) in record.recording_events.iter().enumerate() {
            sqlx::query(
                "INSERT INTO call_recording_events \
                 (call_id, seq, action, offset_seconds, at, source, actor) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7)",
            )
            .bind(&record.id)
            .bind(i64::try_from(seq).unwrap_or(i64::MAX))
            .bind(event.action.as_str())
            .bind(event.offset_seconds)
            .bind(timestamp("recording_events.at", event.at)?)
            .bind(event.source.as_str())
            .bind(&event.actor)
            .execute(&mut *connection)
            .await
            .map_err(events_failed)?;
        }
        Ok(())
    }
}

impl Journal {
    fn open(path: PathBuf) -> Result<Journal, CdrError> {
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .map_err(|source| CdrError::OpenJournal {
                path: path.clone(),
                source,
            })?;
        Ok(Journal {
            path,
            file: Mutex::new(file),
        })
    }

    /// Writes `lines` with one `write_all` on the append-mode file, then
    /// fsyncs once. For a regular local file Linux completes that in a
    /// single write(2), so a crash leaves either all the lines or none of
    /// them, apart from a torn last line after power loss mid-write.
    fn append(&self, lines: &[u8]) -> std::io::Result<()> {
        // A writer that panicked while holding the lock left at worst a
        // partial line; later lines are still whole, so the file stays usable.
        let mut file = self
            .file
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        file.write_all(lines).and_then(|()| file.sync_data())
    }
}

/// Formats `value`, the `field` of record `id`, as RFC 3339 text.
fn rfc3339(id: &str, field: &'static str, value: OffsetDateTime) -> Result<String, CdrError> {
    value
        .format(&Rfc3339)
        .map_err(|source| CdrError::FormatTimestamp {
            id: id.to_owned(),
            field,
            source,
        })
}

/// Columns of a call record's row, in the order of [`RowValues::bind`].
const INSERT_COLUMNS: &str = "id, caller_call_id, agent_call_id, caller, dialed, \
     trunk, source_extension, queue, agent, arrived_at, arrived_at_ms, queued_at, \
     answered_at, ended_at, wait_seconds, talk_seconds, disposition, sip_status, \
     hangup_side, recording_path, recording_seconds, interrupted, caller_answered_at, \
     voicemail_box, forwarded_to, callback_of, media_quality, diverted_from, rebuilt, \
     hold_count, hold_seconds, survey, csat_score, transfers, request_type, direction";
const INSERT_COLUMN_COUNT: usize = 36;

/// Maximum records per INSERT. At 36 values a row, 500 rows bind 18,000
/// values, under the limits of the bundled SQLite 3.46 (32,766) and of
/// PostgreSQL (65,535). With 25 rows a statement, the 160 round trips of a
/// 4,000-record backlog each waited for a busy runtime, and one commit took
/// over a second at 3,000 calls/s.
const ROWS_PER_INSERT: usize = 500;

/// The values of a call record's row that need encoding first.
struct RowValues<'a> {
    record: &'a CallRecord,
    arrived_at: String,
    queued_at: Option<String>,
    answered_at: Option<String>,
    ended_at: String,
    caller_answered_at: Option<String>,
    media_quality: Option<String>,
    transfers: Option<String>,
}

impl<'a> RowValues<'a> {
    fn of(record: &'a CallRecord) -> Result<RowValues<'a>, CdrError> {
        let timestamp = |field, value| rfc3339(&record.id, field, value);
        let optional_timestamp = |field, value: Option<OffsetDateTime>| {
            value.map(|value| timestamp(field, value)).transpose()
        };
        let encode = |source| CdrError::Encode {
            id: record.id.clone(),
            source,
        };
        let media_quality = record
            .media_quality
            .as_ref()
            .map(serde_json::to_string)
            .transpose()
            .map_err(encode)?;
        // The list is one JSON text, like media_quality, because nothing
        // queries single transfers and the journal line has the same array.
        let transfers = (!record.transfers.is_empty())
            .then(|| serde_json::to_string(&record.transfers))
            .transpose()
            .map_err(encode)?;
        Ok(RowValues {
            record,
            arrived_at: timestamp("arrived_at", record.arrived_at)?,
            queued_at: optional_timestamp("queued_at", record.queued_at)?,
            answered_at: optional_timestamp("answered_at", record.answered_at)?,
            ended_at: timestamp("ended_at", record.ended_at)?,
            caller_answered_at: optional_timestamp(
                "caller_answered_at",
                record.caller_answered_at,
            )?,
            media_quality,
            transfers,
        })
    }

    /// Binds the row's [`INSERT_COLUMN_COUNT`] values to `query`.
    fn bind<'q>(
        &'q self,
        query: sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments<'q>>,
    ) -> sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments<'q>> {
        let record = self.record;
        query
            .bind(&record.id)
            .bind(&record.caller_call_id)
            .bind(&record.agent_call_id)
            .bind(&record.caller)
            .bind(&record.dialed)
            .bind(&record.trunk)
            .bind(&record.source_extension)
            .bind(&record.queue)
            .bind(&record.agent)
            .bind(&self.arrived_at)
            .bind(unix_millis(record.arrived_at))
            .bind(&self.queued_at)
            .bind(&self.answered_at)
            .bind(&self.ended_at)
            .bind(record.wait_seconds)
            .bind(record.talk_seconds)
            .bind(record.disposition.as_str())
            .bind(record.sip_status.map(i64::from))
            .bind(record.hangup_side.map(HangupSide::as_str))
            .bind(&record.recording_path)
            .bind(OptionalF64(record.recording_seconds))
            .bind(record.interrupted)
            .bind(&self.caller_answered_at)
            .bind(&record.voicemail_box)
            .bind(&record.forwarded_to)
            .bind(&record.callback_of)
            .bind(&self.media_quality)
            .bind(&record.diverted_from)
            .bind(record.rebuilt)
            .bind(i64::from(record.hold_count))
            .bind(record.hold_seconds)
            .bind(record.survey.map(SurveyStatus::as_str))
            .bind(record.csat_score.map(i64::from))
            .bind(&self.transfers)
            .bind(&record.request_type)
            .bind(record.direction.as_str())
    }
}

/// Writes the records queued on `queue` in groups: those that queued up
/// while the last group was written go together. Each record's caller gets
/// its own outcome.
async fn write_groups(
    pool: AnyPool,
    journal: Arc<Journal>,
    mut queue: mpsc::UnboundedReceiver<PendingWrite>,
) {
    while let Some(first) = queue.recv().await {
        if first.gather {
            tokio::time::sleep(GATHER).await;
        }
        let mut group = vec![first];
        while group.len() < MAX_GROUP {
            match queue.try_recv() {
                Ok(pending) => group.push(pending),
                Err(_) => break,
            }
        }
        let lines: Vec<u8> = group.iter().flat_map(|p| p.line.iter().copied()).collect();
        let appending = Arc::clone(&journal);
        let appended = tokio::task::spawn_blocking(move || appending.append(&lines)).await;
        let failure = match appended {
            Ok(Ok(())) => None,
            Ok(Err(error)) => Some((error.kind(), error.to_string())),
            Err(join) => Some((std::io::ErrorKind::Other, join.to_string())),
        };
        if let Some((kind, message)) = failure {
            for pending in group {
                let error = CdrError::AppendJournal {
                    id: pending.record.id.clone(),
                    path: journal.path.clone(),
                    source: std::io::Error::new(kind, message.clone()),
                };
                let _ = pending.done.send(Err(error));
            }
            continue;
        }
        if insert_group(&pool, &group).await.is_ok() {
            for pending in group {
                let _ = pending.done.send(Ok(()));
            }
            continue;
        }
        // One bad record (a duplicate id, say) must not cost the others
        // their rows, and each caller needs its own error: insert them one
        // by one.
        for pending in group {
            let outcome = CdrStore::insert(&pool, &pending.record).await;
            let _ = pending.done.send(outcome);
        }
    }
}

/// Inserts every record of `group` in one transaction, which is rolled
/// back when any of them fails.
async fn insert_group(pool: &AnyPool, group: &[PendingWrite]) -> Result<(), CdrError> {
    let _turn = database::sqlite_write_turn(pool).await;
    let mut transaction = pool.begin().await.map_err(CdrError::Query)?;
    let records: Vec<&CallRecord> = group.iter().map(|pending| &pending.record).collect();
    CdrStore::insert_many(&mut transaction, Backend::of(pool), &records).await?;
    transaction.commit().await.map_err(CdrError::Query)
}

async fn open_database(database: &DatabaseUrl) -> Result<AnyPool, CdrError> {
    let pool = database::connect(database)
        .await
        .map_err(|source| CdrError::OpenDatabase {
            database: database.to_string(),
            source,
        })?;
    database::migrate(
        &pool,
        sqlx::migrate!("migrations/sqlite"),
        sqlx::migrate!("migrations/postgres"),
    )
    .await
    .map_err(|source| CdrError::Migrate {
        database: database.to_string(),
        source,
    })?;
    Ok(pool)
}

fn in_utc(record: &CallRecord) -> CallRecord {
    let utc = |at: OffsetDateTime| at.to_offset(time::UtcOffset::UTC);
    CallRecord {
        arrived_at: utc(record.arrived_at),
        queued_at: record.queued_at.map(utc),
        answered_at: record.answered_at.map(utc),
        ended_at: utc(record.ended_at),
        caller_answered_at: record.caller_answered_at.map(utc),
        recording_events: record
            .recording_events
            .iter()
            .map(|event| RecordingEvent {
                at: utc(event.at),
                ..event.clone()
            })
            .collect(),
        transfers: record
            .transfers
            .iter()
            .map(|transfer| Transfer {
                at: utc(transfer.at),
                answered_at: transfer.answered_at.map(utc),
                ..transfer.clone()
            })
            .collect(),
        ..record.clone()
    }
}

fn unix_millis(at: OffsetDateTime) -> i64 {
    // i64 milliseconds cover about 292 million years, far beyond the years
    // (0 to 9999) that RFC 3339 text can hold, so the cast cannot truncate.
    (at.unix_timestamp_nanos() / 1_000_000) as i64
}

fn record_from_row(row: &AnyRow) -> Result<CallRecord, CdrError> {
    let id: String = column(row, "id")?;
    let invalid = |column: &'static str, value: String| CdrError::InvalidRow {
        id: id.clone(),
        column,
        value,
    };
    let timestamp = |name: &'static str, text: String| {
        OffsetDateTime::parse(&text, &Rfc3339).map_err(|_| invalid(name, text))
    };
    let optional_timestamp = |name: &'static str| -> Result<Option<OffsetDateTime>, CdrError> {
        column::<Option<String>>(row, name)?
            .map(|text| timestamp(name, text))
            .transpose()
    };

    let disposition: String = column(row, "disposition")?;
    let disposition =
        Disposition::from_name(&disposition).ok_or_else(|| invalid("disposition", disposition))?;
    let hangup_side = column::<Option<String>>(row, "hangup_side")?
        .map(|name| HangupSide::from_name(&name).ok_or_else(|| invalid("hangup_side", name)))
        .transpose()?;
    let sip_status = column::<Option<i64>>(row, "sip_status")?
        .map(|code| u16::try_from(code).map_err(|_| invalid("sip_status", code.to_string())))
        .transpose()?;

    let direction: String = column(row, "direction")?;
    let direction =
        CallDirection::from_name(&direction).ok_or_else(|| invalid("direction", direction))?;

    Ok(CallRecord {
        caller_call_id: column(row, "caller_call_id")?,
        agent_call_id: column(row, "agent_call_id")?,
        caller: column(row, "caller")?,
        dialed: column(row, "dialed")?,
        trunk: column(row, "trunk")?,
        source_extension: column(row, "source_extension")?,
        direction,
        queue: column(row, "queue")?,
        request_type: column(row, "request_type")?,
        agent: column(row, "agent")?,
        arrived_at: timestamp("arrived_at", column(row, "arrived_at")?)?,
        queued_at: optional_timestamp("queued_at")?,
        answered_at: optional_timestamp("answered_at")?,
        ended_at: timestamp("ended_at", column(row, "ended_at")?)?,
        wait_seconds: column(row, "wait_seconds")?,
        talk_seconds: column(row, "talk_seconds")?,
        disposition,
        sip_status,
        hangup_side,
        recording_path: column(row, "recording_path")?,
        recording_seconds: column(row, "recording_seconds")?,
        interrupted: flag(row, "interrupted")?,
        caller_answered_at: optional_timestamp("caller_answered_at")?,
        voicemail_box: column(row, "voicemail_box")?,
        forwarded_to: column(row, "forwarded_to")?,
        callback_of: column(row, "callback_of")?,
        diverted_from: column(row, "diverted_from")?,
        rebuilt: flag(row, "rebuilt")?,
        hold_count: u32::try_from(column::<i64>(row, "hold_count")?).unwrap_or(0),
        hold_seconds: column(row, "hold_seconds")?,
        survey: column::<Option<String>>(row, "survey")?
            .map(|name| SurveyStatus::from_name(&name).ok_or_else(|| invalid("survey", name)))
            .transpose()?,
        csat_score: column::<Option<i64>>(row, "csat_score")?
            .map(|score| u8::try_from(score).map_err(|_| invalid("csat_score", score.to_string())))
            .transpose()?,
        recording_events: Vec::new(),
        media_quality: column::<Option<String>>(row, "media_quality")?
            .map(|text| serde_json::from_str(&text).map_err(|_| invalid("media_quality", text)))
            .transpose()?,
        transfers: column::<Option<String>>(row, "transfers")?
            .map(|text| serde_json::from_str(&text).map_err(|_| invalid("transfers", text)))
            .transpose()?
            .unwrap_or_default(),
        id,
    })
}

fn recording_event_from_row(row: &AnyRow, call_id: &str) -> Result<RecordingEvent, CdrError> {
    let invalid = |column: &'static str, value: String| CdrError::InvalidRow {
        id: call_id.to_owned(),
        column,
        value,
    };
    let action: String = column(row, "action")?;
    let action = RecordingAction::from_name(&action).ok_or_else(|| invalid("action", action))?;
    let source: String = column(row, "source")?;
    let source =
        RecordingEventSource::from_name(&source).ok_or_else(|| invalid("source", source))?;
    let at: String = column(row, "at")?;
    let at = OffsetDateTime::parse(&at, &Rfc3339).map_err(|_| invalid("at", at))?;
    Ok(RecordingEvent {
        action,
        offset_seconds: column(row, "offset_seconds")?,
        at,
        source,
        actor: column(row, "actor")?,
    })
}

fn column<'r, T>(row: &'r AnyRow, name: &str) -> Result<T, CdrError>
where
    T: sqlx::Decode<'r, sqlx::Any> + sqlx::Type<sqlx::Any>,
{
    row.try_get(name).map_err(CdrError::Query)
}

fn flag(row: &AnyRow, name: &str) -> Result<bool, CdrError> {
    database::flag(row, name).map_err(CdrError::Query)
}
