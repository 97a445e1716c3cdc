//! Repair of a WAV file whose writer died before finalizing it.
//!
//! The recorder rewrites the header at most once a second, so after a crash
//! the RIFF and data sizes in the header count less audio than the file
//! holds, and the last frame may be cut in the middle. Repair walks the
//! chunks to the `data` chunk, cuts the file to whole frames and writes
//! both sizes from the file length. Only a file whose `data` chunk is the
//! last one can be repaired this way, which is how `hound` and the recorder
//! write it.

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

/// Offset of the RIFF size field.
const RIFF_SIZE_OFFSET: u64 = 4;
/// Length of a chunk header: 4-byte id and 4-byte little-endian size.
const CHUNK_HEADER_LEN: u64 = 8;
/// Bytes before the first chunk: "RIFF", its size, "WAVE".
const RIFF_HEADER_LEN: u64 = 12;

#[derive(Debug, thiserror::Error)]
pub enum RepairError {
    #[error("failed to open or write {}: {source}", path.display())]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{} is empty: its writer died before the WAV header was written", path.display())]
    Empty { path: PathBuf },
    #[error("{} is not a RIFF/WAVE file", path.display())]
    NotWave { path: PathBuf },
    #[error("{} has no fmt chunk before its data chunk", path.display())]
    MissingFormat { path: PathBuf },
    #[error("{} has no data chunk", path.display())]
    MissingData { path: PathBuf },
    #[error("{} has a frame size of 0 bytes in its fmt chunk", path.display())]
    InvalidBlockAlign { path: PathBuf },
    #[error("{} holds {bytes} bytes of audio, more than a WAV data chunk can count", path.display())]
    TooLarge { path: PathBuf, bytes: u64 },
}

/// Result of [`repair`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RepairOutcome {
    /// The header already matched the file; nothing was written.
    Intact { frames: u64 },
    /// The sizes were rewritten.
    Repaired {
        /// Whole frames now in the data chunk.
        frames: u64,
        /// Frames the old header counted.
        header_frames: u64,
        /// Bytes of a partial last frame that were cut off.
        truncated_bytes: u64,
    },
}

/// Location of the data chunk and the size its header records.
struct DataChunk {
    /// Offset of the data chunk's size field.
    size_offset: u64,
    /// Offset of the first audio byte.
    start: u64,
    header_size: u32,
    block_align: u16,
}

/// Fixes the RIFF and data sizes of the WAV at `path` to match its length,
/// cut to whole frames.
pub fn repair(path: &Path) -> Result<RepairOutcome, RepairError> {
    let io_error = |source| RepairError::Io {
        path: path.to_path_buf(),
        source,
    };
    let mut file = OpenOptions::new()
        .read(true)
        .write(true)
        .open(path)
        .map_err(io_error)?;
    let file_len = file.metadata().map_err(io_error)?.len();
    let chunk = find_data_chunk(&mut file, file_len, path)?;

    let available = file_len - chunk.start;
    let frame_len = u64::from(chunk.block_align);
    let data_len = available - available % frame_len;
    let truncated_bytes = available - data_len;
    let riff_size = chunk.start - CHUNK_HEADER_LEN + data_len;
    let (Ok(data_size), Ok(riff_size)) = (u32::try_from(data_len), u32::try_from(riff_size)) else {
        return Err(RepairError::TooLarge {
            path: path.to_path_buf(),
            bytes: data_len,
        });
    };
    let frames = data_len / frame_len;
    let riff_header_size = read_u32_at(&mut file, RIFF_SIZE_OFFSET).map_err(io_error)?;
    if truncated_bytes == 0 && chunk.header_size == data_size && riff_header_size == riff_size {
        return Ok(RepairOutcome::Intact { frames });
    }

    if truncated_bytes > 0 {
        file.set_len(chunk.start + data_len).map_err(io_error)?;
    }
    write_u32_at(&mut file, chunk.size_offset, data_size).map_err(io_error)?;
    write_u32_at(&mut file, RIFF_SIZE_OFFSET, riff_size).map_err(io_error)?;
    file.sync_all().map_err(io_error)?;
    Ok(RepairOutcome::Repaired {
        frames,
        header_frames: u64::from(chunk.header_size) / frame_len,
        truncated_bytes,
    })
}

/// What a WAV file's header counts against what the file holds, read by
/// [`inspect`] without changing the file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Inspection {
    /// Frames the data chunk's size field counts.
    pub header_frames: u64,
    /// Whole frames after the data chunk's header.
    pub file_frames: u64,
    /// Bytes of a partial frame at the end of the file.
    pub partial_frame_bytes: u64,
    /// Whether the RIFF size field equals the file length minus 8.
    pub riff_size_matches: bool,
}

impl Inspection {
    /// Whether the header counts exactly the audio the file holds, as a
    /// finished recording's does.
    pub fn is_consistent(&self) -> bool {
        self.header_frames == self.file_frames
            && self.partial_frame_bytes == 0
            && self.riff_size_matches
    }
}

/// Reads the RIFF and data sizes of the WAV at `path` and compares them with
/// its length, as [`repair`] does, but writes nothing.
pub fn inspect(path: &Path) -> Result<Inspection, RepairError> {
    let io_error = |source| RepairError::Io {
        path: path.to_path_buf(),
        source,
    };
    let mut file = File::open(path).map_err(io_error)?;
    let file_len = file.metadata().map_err(io_error)?.len();
    let chunk = find_data_chunk(&mut file, file_len, path)?;
    let frame_len = u64::from(chunk.block_align);
    let available = file_len - chunk.start;
    let riff_header_size = read_u32_at(&mut file, RIFF_SIZE_OFFSET).map_err(io_error)?;
    Ok(Inspection {
        header_frames: u64::from(chunk.header_size) / frame_len,
        file_frames: available / frame_len,
        partial_frame_bytes: available % frame_len,
        riff_size_matches: u64::from(riff_header_size) + CHUNK_HEADER_LEN == file_len,
    })
}

/// Walks the chunks after the RIFF header. The data chunk's size is not
/// trusted: everything after its header counts as audio.
fn find_data_chunk(file: &mut File, file_len: u64, path: &Path) -> Result<DataChunk, RepairError> {
    let io_error = |source| RepairError::Io {
        path: path.to_path_buf(),
        source,
    };
    let mut riff = [0u8; RIFF_HEADER_LEN as usize];
    if file_len == 0 {
        return Err(RepairError::Empty {
            path: path.to_path_buf(),
        });
    }
    if file_len < RIFF_HEADER_LEN {
        return Err(RepairError::NotWave {
            path: path.to_path_buf(),
        });
    }
    file.seek(SeekFrom::Start(0)).map_err(io_error)?;
    file.read_exact(&mut riff).map_err(io_error)?;
    if &riff[..4] != b"RIFF" || &riff[8..] != b"WAVE" {
        return Err(RepairError::NotWave {
            path: path.to_path_buf(),
        });
    }

    let mut block_align = None;
    let mut offset = RIFF_HEADER_LEN;
    while offset + CHUNK_HEADER_LEN <= file_len {
        let mut header = [0u8; CHUNK_HEADER_LEN as usize];
        file.seek(SeekFrom::Start(offset)).map_err(io_error)?;
        file.read_exact(&mut header).map_err(io_error)?;
        let size = u32::from_le_bytes([header[4], header[5], header[6], header[7]]);
        let body = offset + CHUNK_HEADER_LEN;
        match &header[..4] {
            b"fmt " => block_align = Some(read_block_align(file, body, path)?),
            b"data" => {
                let block_align = block_align.ok_or_else(|| RepairError::MissingFormat {
                    path: path.to_path_buf(),
                })?;
                return Ok(DataChunk {
                    size_offset: offset + 4,
                    start: body,
                    header_size: size,
                    block_align,
                });
            }
            _ => {}
        }
        // Chunks are padded to an even length (RIFF rule).
        offset = body + u64::from(size) + u64::from(size % 2);
    }
    Err(RepairError::MissingData {
        path: path.to_path_buf(),
    })
}

/// Reads nBlockAlign, the bytes per frame, at offset 12 of the fmt body.
fn read_block_align(file: &mut File, body: u64, path: &Path) -> Result<u16, RepairError> {
    let mut bytes = [0u8; 2];
    file.seek(SeekFrom::Start(body + 12))
        .and_then(|_| file.read_exact(&mut bytes))
        .map_err(|source| RepairError::Io {
            path: path.to_path_buf(),
            source,
        })?;
    match u16::from_le_bytes(bytes) {
        0 => Err(RepairError::InvalidBlockAlign {
            path: path.to_path_buf(),
        }),
        block_align => Ok(block_align),
    }
}

fn read_u32_at(file: &mut File, offset: u64) -> std::io::Result<u32> {
    let mut bytes = [0u8; 4];
    file.seek(SeekFrom::Start(offset))?;
    file.read_exact(&mut bytes)?;
    Ok(u32::from_le_bytes(bytes))
}

fn write_u32_at(file: &mut File, offset: u64, value: u32) -> std::io::Result<()> {
    file.seek(SeekFrom::Start(offset))?;
    file.write_all(&value.to_le_bytes())
}
