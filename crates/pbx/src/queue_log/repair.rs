//! Start-up repair of `<data-dir>/queue_log` from the `queue_events` table.
//!
//! The live writer appends a batch's lines after committing its events and
//! without fsync, so a crash can leave the file without its last lines, or
//! with half of one. An operator may also delete the file. Before the
//! writer opens the file, the PBX compares its end with the lines the table
//! gives. It finds the file's last line among the lines of the table's
//! last events and appends the lines that follow it. A missing or empty
//! file gets every line the table gives. A file whose end matches none of
//! those lines, such as one edited by hand or kept from another database,
//! is left as it is.

use std::io::SeekFrom;
use std::path::Path;

use tokio::io::{AsyncReadExt, AsyncSeekExt, AsyncWriteExt};

use super::{PAGE_ROWS, QueueLogError, lines_of};
use crate::events::EventStore;

/// Bytes read from the end of the file to find its last lines.
const TAIL_BYTES: u64 = 64 * 1024;
/// Lines before the file's last line that must match the table too, so
/// that a repeated line (the same event twice in one second) does not
/// match at the wrong place.
const CONTEXT_LINES: usize = 16;
/// Events read from the end of the table at first; each further try reads
/// four times as many, up to `MAX_WINDOW`.
const FIRST_WINDOW: u32 = 256;
/// Maximum number of events searched for the file's last line. A file further behind
/// than that is left to `pbx queue-log`, so that a start never reads the
/// whole table for a file that does not match it.
const MAX_WINDOW: u32 = 262_144;

/// Outcome of the start-up repair.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Repair {
    /// The file ends with the table's last line, or both are empty.
    UpToDate,
    /// The file was missing or empty, and was written from the table.
    Rebuilt { lines: u64 },
    /// The file lacked the table's last lines, which were appended.
    Completed { lines: u64 },
    /// The file's end matches no line of the last `searched` events, so it
    /// was left as it is.
    Unmatched { searched: usize },
}

/// Brings the file at `path` up to date with `store`; see the module
/// documentation for the rules.
pub(crate) async fn repair(store: &EventStore, path: &Path) -> Result<Repair, QueueLogError> {
    let size = match tokio::fs::metadata(path).await {
        Ok(metadata) => metadata.len(),
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => 0,
        Err(source) => {
            return Err(QueueLogError::Read {
                path: path.to_path_buf(),
                source,
            });
        }
    };
    if size == 0 {
        let lines = rebuild(store, path).await?;
        return Ok(if lines == 0 {
            Repair::UpToDate
        } else {
            Repair::Rebuilt { lines }
        });
    }
    let tail = FileTail::read(path, size).await?;
    let mut window = FIRST_WINDOW;
    loop {
        let rows = store.last(window).await?;
        // Fewer rows than requested means that the window is the whole table.
        let whole = rows.len() < window as usize;
        let mut expected = Vec::new();
        for row in &rows {
            expected.extend(lines_of(row)?);
        }
        if let Some(resume) = resume_point(&expected, &tail, whole) {
            let missing = &expected[resume..];
            if missing.is_empty() {
                return Ok(Repair::UpToDate);
            }
            append(path, missing, &tail.fragment).await?;
            return Ok(Repair::Completed {
                lines: missing.len() as u64,
            });
        }
        if whole || window >= MAX_WINDOW {
            return Ok(Repair::Unmatched {
                searched: rows.len(),
            });
        }
        window = window.saturating_mul(4).min(MAX_WINDOW);
    }
}

/// Runs [`repair`] and logs what it did. A failure is logged and the PBX
/// starts anyway: the table keeps the events, and `pbx queue-log` can
/// write the file later.
pub(crate) async fn repair_at_start(store: &EventStore, path: &Path) {
    let file = path.display();
    match repair(store, path).await {
        Ok(Repair::UpToDate) => {
            tracing::debug!(path = %file, "queue_log matches the stored events")
        }
        Ok(Repair::Rebuilt { lines }) => tracing::warn!(
            path = %file,
            lines,
            "the queue_log was missing or empty; wrote it again from the stored queue events"
        ),
        Ok(Repair::Completed { lines }) => tracing::warn!(
            path = %file,
            lines,
            "the queue_log lacked the lines of the last stored queue events, lost at the last stop; appended them"
        ),
        Ok(Repair::Unmatched { searched }) => tracing::warn!(
            path = %file,
            searched,
            "the queue_log's last line is not among the lines of the last stored queue events, so the file was left unchanged; `pbx queue-log` writes the lines the database holds"
        ),
        Err(error) => tracing::error!(
            path = %file,
            %error,
            "checking the queue_log against the stored queue events failed; the file was left unchanged"
        ),
    }
}

/// The end of the file: its last complete lines and what follows the last
/// line break, which a write cut by a crash leaves behind.
#[derive(Debug)]
struct FileTail {
    lines: Vec<String>,
    fragment: Vec<u8>,
    /// The tail starts at the start of the file.
    whole_file: bool,
}

impl FileTail {
    async fn read(path: &Path, size: u64) -> Result<FileTail, QueueLogError> {
        let failed = |source| QueueLogError::Read {
            path: path.to_path_buf(),
            source,
        };
        let mut file = tokio::fs::File::open(path).await.map_err(failed)?;
        let start = size.saturating_sub(TAIL_BYTES);
        file.seek(SeekFrom::Start(start)).await.map_err(failed)?;
        let mut bytes = Vec::new();
        file.read_to_end(&mut bytes).await.map_err(failed)?;
        Ok(FileTail::parse(&bytes, start == 0))
    }

    fn parse(bytes: &[u8], whole_file: bool) -> FileTail {
        let mut pieces: Vec<&[u8]> = bytes.split(|byte| *byte == b'\n').collect();
        // `split` always yields at least one piece; the last is what follows
        // the last line break, empty when the file ends with one.
        let fragment = pieces.pop().unwrap_or_default().to_vec();
        if !whole_file && !pieces.is_empty() {
            // The read began inside a line.
            pieces.remove(0);
        }
        FileTail {
            lines: pieces
                .iter()
                .map(|line| String::from_utf8_lossy(line).into_owned())
                .collect(),
            fragment,
            whole_file,
        }
    }
}

/// Returns the index in `expected` of the first line the file lacks, or
/// `None` when the file's end matches no place in `expected`. `whole` is
/// true when `expected` contains the lines of every stored event, so that
/// nothing precedes it.
fn resume_point(expected: &[String], tail: &FileTail, whole: bool) -> Option<usize> {
    // A file read from its start that is the beginning of the table lost
    // only its end. That is the usual case after a crash, and the reading
    // to prefer when a repeated line would also match further on.
    let read_whole = whole && tail.whole_file;
    if read_whole
        && expected.starts_with(&tail.lines)
        && fragment_continues(expected, tail.lines.len(), &tail.fragment)
    {
        return Some(tail.lines.len());
    }
    let last = tail.lines.last()?;
    // Otherwise the latest match wins, as for a rotated file, whose start
    // is somewhere in the table.
    (1..=expected.len()).rev().find(|&resume| {
        let at = resume - 1;
        expected[at] == *last
            && fragment_continues(expected, resume, &tail.fragment)
            && context_matches(expected, at, tail, whole)
    })
}

/// Checks that the file's unfinished last line, if any, is the start of
/// `expected[resume]`.
fn fragment_continues(expected: &[String], resume: usize, fragment: &[u8]) -> bool {
    match expected.get(resume) {
        Some(next) => next.as_bytes().starts_with(fragment),
        None => fragment.is_empty(),
    }
}

/// Checks that the lines before the file's last line equal those before
/// `expected[at]`, up to `CONTEXT_LINES` of them.
fn context_matches(expected: &[String], at: usize, tail: &FileTail, whole: bool) -> bool {
    let before = tail.lines.len() - 1;
    for back in 1..=before.min(CONTEXT_LINES) {
        let Some(index) = at.checked_sub(back) else {
            // The file goes back further than `expected`. That is fine when
            // `expected` starts at the first event, and otherwise a larger
            // window must decide.
            return whole;
        };
        if expected[index] != tail.lines[before - back] {
            return false;
        }
    }
    true
}

/// Completes the file's unfinished line, if any, and appends the missing
/// lines, then syncs the file.
async fn append(path: &Path, missing: &[String], fragment: &[u8]) -> Result<(), QueueLogError> {
    let mut text = Vec::new();
    for (index, line) in missing.iter().enumerate() {
        let bytes = line.as_bytes();
        // `resume_point` checked that the first missing line starts with
        // the fragment.
        let rest = if index == 0 {
            &bytes[fragment.len()..]
        } else {
            bytes
        };
        text.extend_from_slice(rest);
        text.push(b'\n');
    }
    let failed = |source| QueueLogError::Write {
        path: path.to_path_buf(),
        source,
    };
    let mut file = tokio::fs::OpenOptions::new()
        .append(true)
        .open(path)
        .await
        .map_err(failed)?;
    file.write_all(&text).await.map_err(failed)?;
    file.sync_all().await.map_err(failed)
}

/// Writes every line the table gives into the file, replacing its content,
/// and returns how many lines it wrote.
async fn rebuild(store: &EventStore, path: &Path) -> Result<u64, QueueLogError> {
    let failed = |source| QueueLogError::Write {
        path: path.to_path_buf(),
        source,
    };
    let mut file: Option<tokio::io::BufWriter<tokio::fs::File>> = None;
    let mut written = 0;
    let mut after = 0;
    loop {
        let rows = store.page(after, None, None, PAGE_ROWS).await?;
        let Some(last) = rows.last() else { break };
        after = last.seq;
        let mut text = String::new();
        for row in &rows {
            for line in lines_of(row)? {
                text.push_str(&line);
                text.push('\n');
                written += 1;
            }
        }
        if text.is_empty() {
            continue;
        }
        // Created on the first line, so a missing file stays missing when
        // the table gives none; the writer creates it then.
        let out = match &mut file {
            Some(out) => out,
            None => {
                let created = tokio::fs::File::create(path).await.map_err(failed)?;
                file.insert(tokio::io::BufWriter::new(created))
            }
        };
        out.write_all(text.as_bytes()).await.map_err(failed)?;
    }
    if let Some(mut out) = file {
        out.flush().await.map_err(failed)?;
        out.get_ref().sync_all().await.map_err(failed)?;
    }
    Ok(written)
}

#[cfg(test)]
mod tests;
