//! A part of the spool directory: what one process writes, under its lock.
//!
//! ```text
//! BRIDGE_SPOOL_DIR/
//!   parts/<part id>/lock             held (flock) by the process writing the part
//!                  /<n>.seg          records (see `record`), appended, never rewritten
//!                  /<n>.ack          offsets of the segment's records SQS has taken
//!   quarantine/<part id>-<n>-<offset>.<why>   bytes cut out of a segment, kept for people
//! ```
//!
//! A segment and its acknowledgement file are deleted together once every record in the
//! segment is acknowledged; a part's directory once it holds no segment. A process takes
//! the lock of a part whose process is gone (the kernel released it) to drain it.

use std::collections::HashSet;
use std::fs::{self, DirBuilder, File, OpenOptions, TryLockError};
use std::io::{self, Write as _};
use std::os::unix::fs::{DirBuilderExt as _, OpenOptionsExt as _};
use std::path::{Path, PathBuf};

use super::record::{self, Record, Scanned};
use crate::telemetry::metric;

/// One acknowledgement: the record's offset (u64 LE) and its CRC32C.
const ACK_BYTES: usize = 12;

/// A part this process holds the lock of.
#[derive(Debug)]
pub(super) struct Part {
    pub id: String,
    pub path: PathBuf,
    /// Held for as long as the part is this process's; dropping it releases the lock.
    _lock: File,
}

/// The spool directory's two folders.
pub(super) fn parts_dir(root: &Path) -> PathBuf {
    root.join("parts")
}

pub(super) fn quarantine_dir(root: &Path) -> PathBuf {
    root.join("quarantine")
}

pub(super) fn segment_path(part: &Path, number: u64) -> PathBuf {
    part.join(format!("{number:016}.seg"))
}

fn ack_path(part: &Path, number: u64) -> PathBuf {
    part.join(format!("{number:016}.ack"))
}

/// Makes a file's creation (or removal) in `dir` durable.
pub(super) fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

/// Creates `dir` and its parents, readable by the bridge's user only: the files hold
/// event bodies.
pub(super) fn create_private_dir(dir: &Path) -> io::Result<()> {
    DirBuilder::new().recursive(true).mode(0o700).create(dir)
}

/// Creates a new file readable by the bridge's user only.
pub(super) fn create_private_file(path: &Path) -> io::Result<File> {
    OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
}

impl Part {
    /// Creates this process's own part under `root`, and takes its lock.
    pub fn create(root: &Path) -> io::Result<Self> {
        let parts = parts_dir(root);
        create_private_dir(&parts)?;
        create_private_dir(&quarantine_dir(root))?;
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        let id = format!("{nanos:x}-{}", std::process::id());
        // Made under a hidden name, which scans skip, and renamed once its lock is held:
        // another process can never take a part that is being created.
        let making = parts.join(format!(".new-{id}"));
        DirBuilder::new().mode(0o700).create(&making)?;
        let lock = create_private_file(&making.join("lock"))?;
        match lock.try_lock() {
            Ok(()) => {}
            Err(TryLockError::WouldBlock) => {
                return Err(io::Error::other("the new part's lock is already held"));
            }
            Err(TryLockError::Error(e)) => return Err(e),
        }
        sync_dir(&making)?;
        let path = parts.join(&id);
        fs::rename(&making, &path)?;
        sync_dir(&parts)?;
        sync_dir(root)?;
        Ok(Self {
            id,
            path,
            _lock: lock,
        })
    }

    /// Takes the part at `path` if no live process holds it; `None` if one does, or if
    /// the part is gone (another process drained it meanwhile).
    pub fn adopt(path: &Path) -> io::Result<Option<Self>> {
        let lock = match File::options().write(true).open(path.join("lock")) {
            Ok(lock) => lock,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e),
        };
        match lock.try_lock() {
            Ok(()) => {}
            Err(TryLockError::WouldBlock) => return Ok(None),
            Err(TryLockError::Error(e)) => return Err(e),
        }
        // Drained and deleted by its last holder between our open and our lock.
        if !path.join("lock").exists() {
            return Ok(None);
        }
        let id = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        Ok(Some(Self {
            id,
            path: path.to_owned(),
            _lock: lock,
        }))
    }

    /// Deletes the part once it holds no segment: lock file last, then the folder.
    pub fn remove(self) -> io::Result<()> {
        fs::remove_file(self.path.join("lock"))?;
        fs::remove_dir(&self.path)?;
        if let Some(parent) = self.path.parent() {
            sync_dir(parent)?;
        }
        Ok(())
    }
}

/// Removes a part a process began to create and never finished (a crash between its
/// creation and its rename): it holds no records. Left alone while younger than a
/// minute, or while its creator holds its lock.
pub(super) fn remove_unfinished(path: &Path) -> io::Result<()> {
    let age = fs::metadata(path)?
        .modified()?
        .elapsed()
        .unwrap_or_default();
    if age < std::time::Duration::from_mins(1) {
        return Ok(());
    }
    if let Some(part) = Part::adopt(path)? {
        part.remove()?;
    }
    Ok(())
}

/// Whether a live process holds the part at `path` (for `spool status`).
pub(super) fn is_held(path: &Path) -> bool {
    let Ok(lock) = File::options().write(true).open(path.join("lock")) else {
        return false;
    };
    match lock.try_lock() {
        Ok(()) => {
            let _ = lock.unlock();
            false
        }
        Err(_) => true,
    }
}

/// The segment numbers in a part, in order.
pub(super) fn segments(part: &Path) -> io::Result<Vec<u64>> {
    let mut numbers: Vec<u64> = fs::read_dir(part)?
        .filter_map(Result::ok)
        .filter_map(|entry| {
            let name = entry.file_name();
            let name = name.to_str()?;
            name.strip_suffix(".seg")?.parse().ok()
        })
        .collect();
    numbers.sort_unstable();
    Ok(numbers)
}

/// A record still waiting for SQS, as found on disk.
pub(super) struct Waiting {
    pub offset: u64,
    pub len: u32,
    pub record: Record,
}

/// What a segment holds that SQS has not taken yet.
pub(super) struct RecoveredSegment {
    pub number: u64,
    pub waiting: Vec<Waiting>,
}

/// Reads a segment of a part back: its records less those acknowledged. Damaged bytes
/// are copied into the quarantine folder and logged; damage before intact records is
/// also counted (a tail is where a crash leaves an unfinished write).
pub(super) fn recover_segment(
    root: &Path,
    part: &Part,
    number: u64,
) -> io::Result<RecoveredSegment> {
    let bytes = fs::read(segment_path(&part.path, number))?;
    repair_acks(&part.path, number)?;
    let acked = read_acks(&part.path, number)?;
    let mut waiting = Vec::new();
    for found in record::scan(&bytes) {
        match found {
            Scanned::Record {
                offset,
                len,
                record,
            } => {
                if !acked.contains(&offset) {
                    waiting.push(Waiting {
                        offset,
                        len,
                        record,
                    });
                }
            }
            Scanned::Corrupt { offset, len } => {
                let kept = quarantine(root, part, number, offset, &bytes, len, "corrupt")?;
                metrics::counter!(metric::SPOOL_CORRUPT_RECORDS).increment(1);
                tracing::error!(
                    part = %part.id, segment = number, offset, bytes = len, kept = %kept.display(),
                    "spool: a damaged record was skipped; its bytes are kept in quarantine"
                );
            }
            Scanned::Tail { offset, len, torn } => {
                let kept = quarantine(root, part, number, offset, &bytes, len, "tail")?;
                if torn {
                    tracing::warn!(
                        part = %part.id, segment = number, offset, bytes = len, kept = %kept.display(),
                        "spool: cut off an unfinished write at a segment's end (never acknowledged)"
                    );
                } else {
                    metrics::counter!(metric::SPOOL_CORRUPT_RECORDS).increment(1);
                    tracing::error!(
                        part = %part.id, segment = number, offset, bytes = len, kept = %kept.display(),
                        "spool: cut off a damaged record at a segment's end; its bytes are kept in quarantine"
                    );
                }
            }
        }
    }
    Ok(RecoveredSegment { number, waiting })
}

/// Copies `len` bytes at `offset` of a segment into the quarantine folder, durably.
fn quarantine(
    root: &Path,
    part: &Part,
    number: u64,
    offset: u64,
    bytes: &[u8],
    len: u64,
    why: &str,
) -> io::Result<PathBuf> {
    let start = usize::try_from(offset)
        .unwrap_or(usize::MAX)
        .min(bytes.len());
    let end = start
        .saturating_add(usize::try_from(len).unwrap_or(usize::MAX))
        .min(bytes.len());
    quarantine_record(root, &part.id, number, offset, &bytes[start..end], why)
}

/// Keeps bytes cut out of a segment (damage found by recovery, or a record the drainer
/// can't send: refused for good by SQS, or damaged since it was written) in the
/// quarantine folder, durably, before they leave the spool.
pub(super) fn quarantine_record(
    root: &Path,
    part_id: &str,
    number: u64,
    offset: u64,
    bytes: &[u8],
    why: &str,
) -> io::Result<PathBuf> {
    let dir = quarantine_dir(root);
    create_private_dir(&dir)?;
    let path = dir.join(format!("{part_id}-{number:016}-{offset}.{why}"));
    let mut file = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&path)?;
    file.write_all(bytes)?;
    file.sync_all()?;
    sync_dir(&dir)?;
    Ok(path)
}

/// Deletes acknowledgement files whose segment is gone (a crash between the two
/// deletions of [`remove_segment`]).
pub(super) fn remove_stray_acks(part: &Path) -> io::Result<()> {
    for entry in fs::read_dir(part)? {
        let path = entry?.path();
        if path.extension().is_some_and(|e| e == "ack") && !path.with_extension("seg").exists() {
            fs::remove_file(&path)?;
        }
    }
    Ok(())
}

/// The offsets acknowledged in a segment; a torn or damaged entry (a crash mid-write)
/// is ignored, so at worst that record is sent again, under the same deduplication id.
pub(super) fn read_acks(part: &Path, number: u64) -> io::Result<HashSet<u64>> {
    let bytes = match fs::read(ack_path(part, number)) {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(HashSet::new()),
        Err(e) => return Err(e),
    };
    Ok(bytes
        .chunks_exact(ACK_BYTES)
        .filter_map(|entry| {
            let offset = &entry[..8];
            let crc = u32::from_le_bytes(entry[8..].try_into().expect("4 bytes"));
            (crc32c::crc32c(offset) == crc)
                .then(|| u64::from_le_bytes(offset.try_into().expect("8 bytes")))
        })
        .collect())
}

/// Cuts an unfinished acknowledgement (a crash mid-write) off the end of a segment's
/// acknowledgement file, so that those appended after it are read at their place.
fn repair_acks(part: &Path, number: u64) -> io::Result<()> {
    let path = ack_path(part, number);
    let file = match OpenOptions::new().write(true).open(&path) {
        Ok(file) => file,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e),
    };
    let len = file.metadata()?.len();
    let whole = len - len % ACK_BYTES as u64;
    if whole != len {
        file.set_len(whole)?;
        file.sync_all()?;
    }
    Ok(())
}

/// Records, durably, that SQS has the records at `offsets` of a segment.
pub(super) fn write_acks(part: &Path, number: u64, offsets: &[u64]) -> io::Result<()> {
    let path = ack_path(part, number);
    let created = !path.exists();
    let mut file = OpenOptions::new()
        .create(true)
        .append(true)
        .mode(0o600)
        .open(&path)?;
    let mut entries = Vec::with_capacity(offsets.len() * ACK_BYTES);
    for offset in offsets {
        let bytes = offset.to_le_bytes();
        entries.extend_from_slice(&bytes);
        entries.extend_from_slice(&crc32c::crc32c(&bytes).to_le_bytes());
    }
    file.write_all(&entries)?;
    file.sync_data()?;
    if created {
        sync_dir(part)?;
    }
    Ok(())
}

/// Deletes a segment every record of which SQS has: the records first, then the
/// acknowledgements (a crash in between leaves acknowledgements of nothing, harmless).
pub(super) fn remove_segment(part: &Path, number: u64) -> io::Result<()> {
    match fs::remove_file(segment_path(part, number)) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(e),
    }
    match fs::remove_file(ack_path(part, number)) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(e),
    }
    sync_dir(part)
}
