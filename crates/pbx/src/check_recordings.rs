//! `pbx check-recordings`: compares every recording file with its
//! catalogue entry (existence, size, SHA-256, WAV header, length) and lists
//! the WAV files under `recordings/` and `voicemail/` that the catalogue
//! does not know.

use std::collections::HashSet;
use std::path::{Component, Path};

use crate::catalogue::{self, Catalogue, RecordingEntry, RecordingStatus};

/// Largest difference between the WAV header's length and the catalogue's
/// that still counts as equal: the catalogue rounds to milliseconds.
const DURATION_TOLERANCE_SECONDS: f64 = 0.0015;

/// Folders under the data directory that hold call recordings and
/// voicemail messages.
const RECORDING_DIRS: [&str; 2] = ["recordings", "voicemail"];

/// What the check found.
#[derive(Debug, Default)]
pub(crate) struct Report {
    /// One line per problem, `PATH: message`.
    pub(crate) problems: Vec<String>,
    pub(crate) entries: usize,
    pub(crate) verified: usize,
    pub(crate) in_progress: usize,
    pub(crate) deleted: usize,
    pub(crate) orphans: usize,
}

impl Report {
    pub(crate) fn is_clean(&self) -> bool {
        self.problems.is_empty()
    }

    pub(crate) fn summary(&self) -> String {
        let problems = self.problems.len() - self.orphans;
        let files = if self.orphans == 1 { "file" } else { "files" };
        format!(
            "{} catalogued recordings: {} verified, {} in progress, {} deleted; \
             {} problems, {} {files} without a catalogue entry",
            self.entries, self.verified, self.in_progress, self.deleted, problems, self.orphans
        )
    }
}

/// Opens the database in `data_dir`, checks, prints each problem and the
/// summary, and returns the exit code: 0 when all is well, 1 otherwise.
pub(crate) fn run(data_dir: &Path, database: Option<&cdr::database::DatabaseUrl>) -> i32 {
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("cannot start the async runtime: {error}");
            return 1;
        }
    };
    match runtime.block_on(check_data_dir(data_dir, database)) {
        Ok(report) => {
            for line in &report.problems {
                println!("{line}");
            }
            println!("{}", report.summary());
            i32::from(!report.is_clean())
        }
        Err(message) => {
            eprintln!("{}: {message}", data_dir.display());
            1
        }
    }
}

async fn check_data_dir(
    data_dir: &Path,
    database: Option<&cdr::database::DatabaseUrl>,
) -> Result<Report, String> {
    let database = crate::storage::existing_database(data_dir, database)?;
    let store = cdr::CdrStore::open_at(data_dir, &database)
        .await
        .map_err(|error| error.to_string())?;
    let catalogue = Catalogue::open(store.pool().clone())
        .await
        .map_err(|error| error.to_string())?;
    let entries = catalogue.all().await.map_err(|error| error.to_string())?;
    let data_dir = data_dir.to_path_buf();
    tokio::task::spawn_blocking(move || check(&data_dir, &entries))
        .await
        .map_err(|error| error.to_string())
}

/// Checks `entries` against the files under `data_dir`. Blocking: it reads
/// every file.
pub(crate) fn check(data_dir: &Path, entries: &[RecordingEntry]) -> Report {
    let mut report = Report {
        entries: entries.len(),
        ..Report::default()
    };
    for entry in entries {
        let problems = check_entry(data_dir, entry);
        if problems.is_empty() {
            match entry.status {
                RecordingStatus::Recording => report.in_progress += 1,
                RecordingStatus::Deleted => report.deleted += 1,
                RecordingStatus::Complete | RecordingStatus::Interrupted => report.verified += 1,
            }
        }
        report.problems.extend(
            problems
                .into_iter()
                .map(|problem| format!("{}: {problem}", entry.path)),
        );
    }
    let known: HashSet<&str> = entries.iter().map(|entry| entry.path.as_str()).collect();
    let mut files = Vec::new();
    for dir in RECORDING_DIRS {
        collect_wav_files(data_dir, &data_dir.join(dir), &mut files);
    }
    files.sort();
    for file in files {
        if !known.contains(file.as_str()) {
            report.orphans += 1;
            report.problems.push(format!("{file}: no catalogue entry"));
        }
    }
    report
}

fn check_entry(data_dir: &Path, entry: &RecordingEntry) -> Vec<String> {
    if !catalogue::is_plain_relative(&entry.path) {
        return vec!["the path leaves the data directory".to_owned()];
    }
    let file = data_dir.join(&entry.path);
    let exists = file.is_file();
    match entry.status {
        RecordingStatus::Deleted => {
            let on = entry.deleted_at.map(|at| at.date().to_string());
            return if exists {
                vec![format!(
                    "catalogued as deleted on {} but the file is still there",
                    on.as_deref().unwrap_or("an unknown date")
                )]
            } else {
                Vec::new()
            };
        }
        // Still being written, or cut by a stop the PBX has not recovered
        // from yet: only its existence can be checked.
        RecordingStatus::Recording => {
            return if exists {
                Vec::new()
            } else {
                vec!["missing (catalogued as recording)".to_owned()]
            };
        }
        RecordingStatus::Complete | RecordingStatus::Interrupted => {}
    }
    let status = entry.status.as_str();
    if !exists {
        return vec![format!("missing (catalogued as {status})")];
    }
    let mut problems = Vec::new();
    match catalogue::digest_file(&file) {
        Ok(digest) => {
            match entry.size_bytes {
                Some(size) if size != digest.size => problems.push(format!(
                    "size is {} bytes, the catalogue says {size}",
                    digest.size
                )),
                Some(_) => {}
                None => problems.push("the catalogue has no size".to_owned()),
            }
            match entry.sha256.as_deref() {
                Some(sha256) if sha256 != digest.sha256 => problems.push(format!(
                    "SHA-256 is {}, the catalogue says {sha256}",
                    digest.sha256
                )),
                Some(_) => {}
                None => problems.push("the catalogue has no SHA-256".to_owned()),
            }
        }
        Err(error) => problems.push(format!("cannot read the file: {error}")),
    }
    problems.extend(check_wav(&file, entry.duration_seconds));
    problems
}

/// Checks that the header is a WAV header that counts exactly the audio
/// the file holds, and that its length is the catalogue's.
fn check_wav(file: &Path, catalogued_seconds: Option<f64>) -> Vec<String> {
    let mut problems = Vec::new();
    match recordings::inspect(file) {
        Ok(inspection) if inspection.is_consistent() => {}
        Ok(inspection) => problems.push(format!(
            "WAV header does not match the file: it counts {} frames, the file holds {} \
             and {} bytes more{}",
            inspection.header_frames,
            inspection.file_frames,
            inspection.partial_frame_bytes,
            if inspection.riff_size_matches {
                ""
            } else {
                ", and the RIFF size is wrong"
            }
        )),
        Err(error) => {
            problems.push(format!("invalid WAV header: {error}"));
            return problems;
        }
    }
    match (catalogue::wav_seconds(file), catalogued_seconds) {
        (None, _) => problems.push("the WAV format cannot be read".to_owned()),
        (Some(_), None) => problems.push("the catalogue has no duration".to_owned()),
        (Some(header), Some(catalogued))
            if (header - catalogued).abs() > DURATION_TOLERANCE_SECONDS =>
        {
            problems.push(format!(
                "WAV header lasts {header:.3} s, the catalogue says {catalogued:.3} s"
            ));
        }
        (Some(_), Some(_)) => {}
    }
    problems
}

/// Adds every `.wav` file under `dir` to `files`, as a path relative to
/// `data_dir` with `/` separators, as the catalogue stores it. Unreadable
/// folders are skipped: the catalogue entries of their files are reported
/// as missing anyway.
fn collect_wav_files(data_dir: &Path, dir: &Path, files: &mut Vec<String>) {
    let Ok(reader) = std::fs::read_dir(dir) else {
        return;
    };
    for item in reader.flatten() {
        let path = item.path();
        let Ok(kind) = item.file_type() else {
            continue;
        };
        if kind.is_dir() {
            collect_wav_files(data_dir, &path, files);
        } else if kind.is_file()
            && path
                .extension()
                .is_some_and(|ext| ext.eq_ignore_ascii_case("wav"))
            && let Ok(relative) = path.strip_prefix(data_dir)
        {
            let parts: Vec<String> = relative
                .components()
                .filter_map(|component| match component {
                    Component::Normal(part) => Some(part.to_string_lossy().into_owned()),
                    _ => None,
                })
                .collect();
            files.push(parts.join("/"));
        }
    }
}

#[cfg(test)]
mod tests;
