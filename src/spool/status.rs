//! `webhook-sqs-bridge spool status`: what a spool directory holds, read without taking
//! any lock or changing a file, so it works on a running bridge's spool and on one a
//! stopped process left.

use std::collections::BTreeMap;
use std::io;
use std::path::Path;

use super::part;
use super::record::{self, Scanned};

/// One part of the directory.
#[derive(Debug, serde::Serialize)]
pub struct PartStatus {
    pub id: String,
    /// A live process holds its lock.
    pub live: bool,
    pub events: u64,
    pub bytes: u64,
    pub oldest_spooled_at_ms: Option<u64>,
    /// Damaged stretches found (they are quarantined when the part is next recovered).
    pub damaged: u64,
}

/// The whole directory.
#[derive(Debug, serde::Serialize)]
pub struct SpoolStatus {
    pub parts: Vec<PartStatus>,
    pub events: u64,
    pub bytes: u64,
    pub oldest_event_age_seconds: Option<f64>,
    /// Waiting events per message group.
    pub groups: BTreeMap<String, u64>,
    pub quarantined_files: u64,
}

/// Reads the spool at `root`.
pub fn read(root: &Path) -> io::Result<SpoolStatus> {
    let mut parts = Vec::new();
    let mut groups = BTreeMap::new();
    let parts_dir = part::parts_dir(root);
    let entries = match std::fs::read_dir(&parts_dir) {
        Ok(entries) => entries.filter_map(Result::ok).collect(),
        // A directory no bridge has used yet.
        Err(e) if e.kind() == io::ErrorKind::NotFound && root.is_dir() => Vec::new(),
        Err(e) => return Err(e),
    };
    let mut dirs: Vec<_> = entries
        .into_iter()
        .map(|e| e.path())
        // `.new-…`: a part being created, holding nothing yet.
        .filter(|p| {
            p.is_dir()
                && !p
                    .file_name()
                    .is_some_and(|n| n.to_string_lossy().starts_with('.'))
        })
        .collect();
    dirs.sort();
    for dir in dirs {
        let mut status = PartStatus {
            id: dir
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default(),
            live: part::is_held(&dir),
            events: 0,
            bytes: 0,
            oldest_spooled_at_ms: None,
            damaged: 0,
        };
        for number in part::segments(&dir)? {
            let bytes = match std::fs::read(part::segment_path(&dir, number)) {
                Ok(bytes) => bytes,
                // Drained and deleted while we looked.
                Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                Err(e) => return Err(e),
            };
            let acked = part::read_acks(&dir, number)?;
            for found in record::scan(&bytes) {
                match found {
                    Scanned::Record {
                        offset,
                        len,
                        record,
                    } if !acked.contains(&offset) => {
                        status.events += 1;
                        status.bytes += u64::from(len);
                        status.oldest_spooled_at_ms = Some(
                            status
                                .oldest_spooled_at_ms
                                .map_or(record.spooled_at_ms, |o| o.min(record.spooled_at_ms)),
                        );
                        *groups
                            .entry(record.message.group_id.as_str().to_owned())
                            .or_insert(0) += 1;
                    }
                    Scanned::Corrupt { .. } | Scanned::Tail { torn: false, .. } => {
                        status.damaged += 1;
                    }
                    // Acknowledged, or an unfinished write (never acknowledged).
                    Scanned::Record { .. } | Scanned::Tail { torn: true, .. } => {}
                }
            }
        }
        parts.push(status);
    }
    let quarantined_files = std::fs::read_dir(part::quarantine_dir(root))
        .map_or(0, |d| d.filter_map(Result::ok).count() as u64);
    let oldest = parts.iter().filter_map(|p| p.oldest_spooled_at_ms).min();
    #[allow(clippy::cast_precision_loss)] // ages far below 2^52 ms
    Ok(SpoolStatus {
        events: parts.iter().map(|p| p.events).sum(),
        bytes: parts.iter().map(|p| p.bytes).sum(),
        oldest_event_age_seconds: oldest
            .map(|at| super::now_ms().saturating_sub(at) as f64 / 1000.0),
        parts,
        groups,
        quarantined_files,
    })
}

impl std::fmt::Display for SpoolStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} events waiting, {} bytes", self.events, self.bytes)?;
        match self.oldest_event_age_seconds {
            Some(age) => writeln!(f, ", oldest spooled {age:.1} s ago")?,
            None => writeln!(f)?,
        }
        for part in &self.parts {
            writeln!(
                f,
                "part {} ({}): {} events, {} bytes{}",
                part.id,
                if part.live {
                    "held by a running process"
                } else {
                    "no process: the next bridge to start or scan adopts it"
                },
                part.events,
                part.bytes,
                if part.damaged > 0 {
                    format!(", {} damaged stretches", part.damaged)
                } else {
                    String::new()
                },
            )?;
        }
        for (group, events) in &self.groups {
            writeln!(f, "group {group}: {events} events")?;
        }
        if self.quarantined_files > 0 {
            writeln!(f, "quarantine: {} files", self.quarantined_files)?;
        }
        Ok(())
    }
}
