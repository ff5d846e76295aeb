//! The one thread that appends to this process's part: group commit for the disk.
//!
//! Appends that arrive while a sync is running are written together and made durable by
//! one `fdatasync` (and a sync of the folder when a segment file is created); only then
//! is each event answered. A failed write or sync answers every event of that round with
//! an error (never `200` without a durable copy), cuts the file back to where the round
//! began and moves on to a new segment: after a failed sync the file's state is unknown.

use std::fs::File;
use std::io::{self, Write as _};
use std::path::PathBuf;
use std::sync::mpsc::Receiver;
use std::sync::{Arc, Mutex};

use super::SpoolError;
use super::part::{remove_segment, segment_path, sync_dir};
use super::record;
use super::state::{Append, Entry, Key, State};
use crate::telemetry::metric;

/// A segment is closed once it holds this much; a new one starts.
const SEGMENT_BYTES: u64 = 16 * 1024 * 1024;
/// At most this much is written per sync (the rest waits for the next round).
const ROUND_BYTES: u64 = 8 * 1024 * 1024;

/// The segment being written.
struct Active {
    number: u64,
    file: File,
    len: u64,
}

pub(super) struct Writer {
    part: PathBuf,
    /// Index of this process's part in `State::parts`.
    part_index: u32,
    state: Arc<Mutex<State>>,
    wake_drainer: Arc<tokio::sync::Notify>,
    active: Option<Active>,
    next_number: u64,
    next_seq: u64,
    last_ms: u64,
}

impl Writer {
    pub fn new(
        part: PathBuf,
        part_index: u32,
        state: Arc<Mutex<State>>,
        wake_drainer: Arc<tokio::sync::Notify>,
    ) -> Self {
        Self {
            part,
            part_index,
            state,
            wake_drainer,
            active: None,
            next_number: 1,
            next_seq: 0,
            last_ms: 0,
        }
    }

    /// Runs until every sender is gone.
    pub fn run(mut self, appends: &Receiver<Append>) {
        while let Ok(first) = appends.recv() {
            let mut bytes = first.len;
            let mut round = vec![first];
            while bytes < ROUND_BYTES {
                match appends.try_recv() {
                    Ok(append) => {
                        bytes += append.len;
                        round.push(append);
                    }
                    Err(_) => break,
                }
            }
            self.commit(round);
        }
    }

    fn commit(&mut self, round: Vec<Append>) {
        let written = self.write(&round);
        let mut state = self.state.lock().expect("spool state");
        let mut answers = Vec::with_capacity(round.len());
        match written {
            Ok(entries) => {
                for (append, entry) in round.into_iter().zip(entries) {
                    state.appended(&append.group, entry);
                    answers.push((append.reply, Ok(())));
                }
                metrics::counter!(metric::SPOOLED_EVENTS).increment(answers.len() as u64);
            }
            Err(e) => {
                tracing::error!(error = %e, events = round.len(), "spool: can't write to BRIDGE_SPOOL_DIR; these events are answered 503");
                for append in round {
                    state.append_failed(&append.group, append.len, &e.to_string());
                    answers.push((append.reply, Err(SpoolError::Disk(e.to_string()))));
                }
            }
        }
        drop(state);
        for (reply, answer) in answers {
            let _ = reply.send(answer);
        }
        self.wake_drainer.notify_one();
    }

    /// Writes and syncs the round; the entries it made, in order.
    fn write(&mut self, round: &[Append]) -> io::Result<Vec<Entry>> {
        let round_bytes: u64 = round.iter().map(|a| a.len).sum();
        let roll = match &self.active {
            None => true,
            Some(active) => {
                active.len > 0
                    && (active.len + round_bytes > SEGMENT_BYTES || self.drained(active.number))
            }
        };
        if roll {
            self.roll()?;
        }
        let active = self.active.as_mut().expect("a segment is open");
        let start = active.len;
        let mut buffer = Vec::with_capacity(usize::try_from(round_bytes).unwrap_or(0));
        let mut entries = Vec::with_capacity(round.len());
        let now = super::now_ms().max(self.last_ms);
        self.last_ms = now;
        for append in round {
            let offset = start + buffer.len() as u64;
            record::encode(&mut buffer, self.next_seq, now, &append.message);
            entries.push(Entry {
                key: Key {
                    at_ms: now,
                    part: self.part_index,
                    seq: self.next_seq,
                },
                segment: active.number,
                offset,
                len: u32::try_from(start + buffer.len() as u64 - offset).unwrap_or(u32::MAX),
                size: u32::try_from(append.message.size()).unwrap_or(u32::MAX),
            });
            self.next_seq += 1;
        }
        let written = active
            .file
            .write_all(&buffer)
            .and_then(|()| active.file.sync_data());
        match written {
            Ok(()) => {
                active.len += buffer.len() as u64;
                Ok(entries)
            }
            Err(e) => {
                // Unknown state after a failed write or sync: cut back what this round
                // may have left, and write the next round to a new file.
                let _ = active.file.set_len(start);
                let _ = active.file.sync_data();
                let number = active.number;
                self.active = None;
                self.release(number);
                Err(e)
            }
        }
    }

    /// Whether every record of the segment has left the spool.
    fn drained(&self, number: u64) -> bool {
        let state = self.state.lock().expect("spool state");
        state.parts[self.part_index as usize]
            .segments
            .get(&number)
            .is_none_or(|s| s.waiting == 0)
    }

    /// Starts a new segment file, durably, and lets the old one be deleted.
    fn roll(&mut self) -> io::Result<()> {
        let number = self.next_number;
        let path = segment_path(&self.part, number);
        let file = super::part::create_private_file(&path)?;
        if let Err(e) = sync_dir(&self.part) {
            let _ = std::fs::remove_file(&path);
            return Err(e);
        }
        self.next_number += 1;
        self.state.lock().expect("spool state").parts[self.part_index as usize]
            .segments
            .entry(number)
            .or_default()
            .writing = true;
        if let Some(old) = self.active.replace(Active {
            number,
            file,
            len: 0,
        }) {
            self.release(old.number);
        }
        Ok(())
    }

    /// The writer is done with a segment: delete it now if it is drained, else the
    /// drainer will once it is.
    fn release(&self, number: u64) {
        let drained = {
            let mut state = self.state.lock().expect("spool state");
            let segments = &mut state.parts[self.part_index as usize].segments;
            match segments.get_mut(&number) {
                Some(segment) if segment.waiting > 0 => {
                    segment.writing = false;
                    false
                }
                _ => {
                    segments.remove(&number);
                    true
                }
            }
        };
        if drained && let Err(e) = remove_segment(&self.part, number) {
            tracing::warn!(error = %e, segment = number, "spool: can't delete a drained segment");
        }
    }
}
