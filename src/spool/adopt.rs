//! Adoption: the parts of spool processes that are gone (a crash, a `kill -9`, a
//! replaced task sharing the disk) are taken over, their segments recovered, and their
//! waiting records put in line for the drainer, in their groups' order.

use std::collections::BTreeMap;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use super::part::{self, Part};
use super::state::{Entry, Key, PartState, State};

/// Takes over every part under `root` whose process is gone, and puts its waiting
/// records in line.
pub(super) fn adopt_all(root: &Path, state: &Arc<Mutex<State>>) -> io::Result<()> {
    let known: Vec<PathBuf> = state
        .lock()
        .expect("spool state")
        .parts
        .iter()
        .filter_map(|p| p.part.as_ref().map(|p| p.path.clone()))
        .collect();
    for dir in std::fs::read_dir(part::parts_dir(root))? {
        let path = dir?.path();
        // A part being created is named `.new-…` until its lock is held.
        let hidden = path
            .file_name()
            .is_some_and(|n| n.to_string_lossy().starts_with('.'));
        if hidden {
            if let Err(e) = part::remove_unfinished(&path) {
                tracing::warn!(error = %e, part = %path.display(), "spool: can't remove an unfinished part");
            }
            continue;
        }
        if !path.is_dir() || known.contains(&path) {
            continue;
        }
        // A part that can't be taken or read now is left for the next scan; the others
        // are not held up by it.
        match Part::adopt(&path) {
            Ok(Some(part)) => {
                if let Err(e) = adopt(root, part, state) {
                    tracing::error!(error = %e, part = %path.display(), "spool: can't recover a part left by a process that is gone; trying again at the next scan");
                }
            }
            Ok(None) => {}
            Err(e) => {
                tracing::error!(error = %e, part = %path.display(), "spool: can't take a part left by a process that is gone; trying again at the next scan");
            }
        }
    }
    Ok(())
}

fn adopt(root: &Path, part: Part, state: &Arc<Mutex<State>>) -> io::Result<()> {
    let mut recovered = Vec::new();
    for number in part::segments(&part.path)? {
        let segment = part::recover_segment(root, &part, number)?;
        if segment.waiting.is_empty() {
            part::remove_segment(&part.path, number)?;
        } else {
            recovered.push(segment);
        }
    }
    part::remove_stray_acks(&part.path)?;
    let events: usize = recovered.iter().map(|s| s.waiting.len()).sum();
    if recovered.is_empty() {
        tracing::info!(part = %part.id, "spool: a part left by a process that is gone was empty; removed");
        return part.remove();
    }
    tracing::info!(part = %part.id, events, "spool: adopted a part left by a process that is gone; draining it");
    let mut state = state.lock().expect("spool state");
    let index = u32::try_from(state.parts.len()).unwrap_or(u32::MAX);
    state.parts.push(PartState {
        part: Some(part),
        segments: BTreeMap::new(),
    });
    for segment in recovered {
        for waiting in segment.waiting {
            let message = &waiting.record.message;
            let entry = Entry {
                key: Key {
                    at_ms: waiting.record.spooled_at_ms,
                    part: index,
                    seq: waiting.record.seq,
                },
                segment: segment.number,
                offset: waiting.offset,
                len: waiting.len,
                size: u32::try_from(message.size()).unwrap_or(u32::MAX),
            };
            state.recovered(message.group_id.as_str(), entry);
        }
    }
    Ok(())
}
