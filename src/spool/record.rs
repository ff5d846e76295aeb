//! One spooled event on disk, and reading a segment back.
//!
//! A record is `magic (4) | payload length (u32 LE) | CRC32C (u32 LE) | payload`. The
//! checksum covers the length and the payload, so a damaged length is caught as surely
//! as a damaged body; the magic lets a reader find the next record after damage.
//!
//! The payload holds what SQS will be sent, exactly as chosen when the event arrived:
//! `seq u64 | spooled_at_ms u64 | group u16+bytes | dedup id u16+bytes | attribute count
//! u8 | (name u8+bytes, value u32+bytes)… | body u32+bytes`, integers little-endian.

use crate::forward::event::{ATTR_CONFLICTS_WITH, ATTR_EVENT_ID, ATTR_EVENT_TYPE};
use crate::forward::keys::{DeduplicationId, MessageGroupId};
use crate::sqs::OutgoingMessage;

const MAGIC: [u8; 4] = *b"WSB\x01";
/// Magic, length and checksum.
pub(super) const HEADER_BYTES: usize = 12;
/// Larger than any event the bridge accepts, with its keys: a length above it is damage.
const MAX_PAYLOAD_BYTES: usize = 2 * 1024 * 1024;

/// The attribute names a record may carry: the bridge's own.
const ATTRIBUTE_NAMES: [&str; 3] = [ATTR_EVENT_ID, ATTR_EVENT_TYPE, ATTR_CONFLICTS_WITH];

/// A record read back.
#[derive(Debug)]
pub(super) struct Record {
    pub seq: u64,
    pub spooled_at_ms: u64,
    pub message: OutgoingMessage,
}

/// The bytes a record of `message` takes on disk.
pub(super) fn encoded_len(message: &OutgoingMessage) -> usize {
    HEADER_BYTES
        + 8
        + 8
        + 2
        + message.group_id.as_str().len()
        + 2
        + message.deduplication_id.as_str().len()
        + 1
        + message
            .attributes
            .iter()
            .map(|(name, value)| 1 + name.len() + 4 + value.len())
            .sum::<usize>()
        + 4
        + message.body.len()
}

/// Appends the record of `message` to `out`.
pub(super) fn encode(out: &mut Vec<u8>, seq: u64, spooled_at_ms: u64, message: &OutgoingMessage) {
    let start = out.len();
    out.extend_from_slice(&MAGIC);
    out.extend_from_slice(&[0; 8]); // length and checksum, filled in below
    out.extend_from_slice(&seq.to_le_bytes());
    out.extend_from_slice(&spooled_at_ms.to_le_bytes());
    for key in [message.group_id.as_str(), message.deduplication_id.as_str()] {
        // FIFO keys are at most 128 characters (their newtypes' rule).
        out.extend_from_slice(&u16::try_from(key.len()).unwrap_or(u16::MAX).to_le_bytes());
        out.extend_from_slice(key.as_bytes());
    }
    out.push(u8::try_from(message.attributes.len()).unwrap_or(u8::MAX));
    for (name, value) in &message.attributes {
        out.push(u8::try_from(name.len()).unwrap_or(u8::MAX));
        out.extend_from_slice(name.as_bytes());
        put_u32_len(out, value.len());
        out.extend_from_slice(value.as_bytes());
    }
    put_u32_len(out, message.body.len());
    out.extend_from_slice(message.body.as_bytes());
    let payload_len = u32::try_from(out.len() - start - HEADER_BYTES).unwrap_or(u32::MAX);
    out[start + 4..start + 8].copy_from_slice(&payload_len.to_le_bytes());
    let crc = checksum(&out[start + 4..start + 8], &out[start + HEADER_BYTES..]);
    out[start + 8..start + 12].copy_from_slice(&crc.to_le_bytes());
}

fn put_u32_len(out: &mut Vec<u8>, len: usize) {
    out.extend_from_slice(&u32::try_from(len).unwrap_or(u32::MAX).to_le_bytes());
}

fn checksum(len: &[u8], payload: &[u8]) -> u32 {
    crc32c::crc32c_append(crc32c::crc32c(len), payload)
}

/// What a stretch of a segment holds.
#[derive(Debug)]
pub(super) enum Scanned {
    /// A whole, intact record at `offset`, `len` bytes in all.
    Record {
        offset: u64,
        len: u32,
        record: Record,
    },
    /// Damaged bytes with intact records after them: skipped, counted, quarantined.
    Corrupt { offset: u64, len: u64 },
    /// Damaged or incomplete bytes at the end. `torn`: they end before the record they
    /// start is complete (a write the crash interrupted, never acknowledged).
    Tail { offset: u64, len: u64, torn: bool },
}

/// Reads a segment: every intact record, and every damaged stretch, in file order.
pub(super) fn scan(bytes: &[u8]) -> Vec<Scanned> {
    let mut found = Vec::new();
    let mut pos = 0;
    while pos < bytes.len() {
        match read_at(bytes, pos) {
            Ok((record, len)) => {
                found.push(Scanned::Record {
                    offset: pos as u64,
                    len: u32::try_from(len).unwrap_or(u32::MAX),
                    record,
                });
                pos += len;
            }
            Err(damage) => match next_record(bytes, pos + 1) {
                Some(next) => {
                    found.push(Scanned::Corrupt {
                        offset: pos as u64,
                        len: (next - pos) as u64,
                    });
                    pos = next;
                }
                None => {
                    found.push(Scanned::Tail {
                        offset: pos as u64,
                        len: (bytes.len() - pos) as u64,
                        torn: damage == Damage::Incomplete,
                    });
                    break;
                }
            },
        }
    }
    found
}

/// Reads the record that starts at `offset` of a segment (the drainer's read).
pub(super) fn read_one(bytes: &[u8]) -> Option<Record> {
    read_at(bytes, 0).ok().map(|(record, _)| record)
}

#[derive(Debug, PartialEq, Eq)]
enum Damage {
    /// The bytes end before the record does.
    Incomplete,
    /// Wrong magic, impossible length, wrong checksum, or a payload that doesn't parse.
    Invalid,
}

/// The first offset at or after `from` where an intact record starts.
fn next_record(bytes: &[u8], from: usize) -> Option<usize> {
    (from..bytes.len().saturating_sub(HEADER_BYTES - 1))
        .filter(|&at| bytes[at..].starts_with(&MAGIC))
        .find(|&at| read_at(bytes, at).is_ok())
}

fn read_at(bytes: &[u8], pos: usize) -> Result<(Record, usize), Damage> {
    let rest = &bytes[pos..];
    if rest.len() < HEADER_BYTES {
        return Err(if MAGIC.starts_with(&rest[..rest.len().min(4)]) {
            Damage::Incomplete
        } else {
            Damage::Invalid
        });
    }
    if rest[..4] != MAGIC {
        return Err(Damage::Invalid);
    }
    let len = u32::from_le_bytes(rest[4..8].try_into().expect("4 bytes")) as usize;
    if len > MAX_PAYLOAD_BYTES {
        return Err(Damage::Invalid);
    }
    let Some(payload) = rest.get(HEADER_BYTES..HEADER_BYTES + len) else {
        return Err(Damage::Incomplete);
    };
    let crc = u32::from_le_bytes(rest[8..12].try_into().expect("4 bytes"));
    if checksum(&rest[4..8], payload) != crc {
        return Err(Damage::Invalid);
    }
    let record = decode(payload).ok_or(Damage::Invalid)?;
    Ok((record, HEADER_BYTES + len))
}

fn decode(payload: &[u8]) -> Option<Record> {
    let mut cursor = Cursor(payload);
    let seq = cursor.u64()?;
    let spooled_at_ms = cursor.u64()?;
    let group_len = usize::from(cursor.u16()?);
    let group_id = MessageGroupId::parse(cursor.text(group_len)?).ok()?;
    let dedup_len = usize::from(cursor.u16()?);
    let deduplication_id = DeduplicationId::parse(cursor.text(dedup_len)?).ok()?;
    let count = cursor.u8()?;
    let mut attributes = Vec::with_capacity(usize::from(count));
    for _ in 0..count {
        let name_len = usize::from(cursor.u8()?);
        let name = cursor.text(name_len)?;
        let name = ATTRIBUTE_NAMES.into_iter().find(|known| *known == name)?;
        let value_len = cursor.u32()? as usize;
        attributes.push((name, cursor.text(value_len)?.to_owned()));
    }
    let body_len = cursor.u32()? as usize;
    let body = cursor.text(body_len)?.into();
    if !cursor.0.is_empty() {
        return None;
    }
    Some(Record {
        seq,
        spooled_at_ms,
        message: OutgoingMessage {
            body,
            group_id,
            deduplication_id,
            attributes,
        },
    })
}

struct Cursor<'a>(&'a [u8]);

impl<'a> Cursor<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        let (head, rest) = self.0.split_at_checked(n)?;
        self.0 = rest;
        Some(head)
    }
    fn u8(&mut self) -> Option<u8> {
        self.take(1).map(|b| b[0])
    }
    fn u16(&mut self) -> Option<u16> {
        self.take(2).map(|b| u16::from_le_bytes([b[0], b[1]]))
    }
    fn u32(&mut self) -> Option<u32> {
        self.take(4)
            .map(|b| u32::from_le_bytes(b.try_into().expect("4 bytes")))
    }
    fn u64(&mut self) -> Option<u64> {
        self.take(8)
            .map(|b| u64::from_le_bytes(b.try_into().expect("8 bytes")))
    }
    fn text(&mut self, n: usize) -> Option<&'a str> {
        std::str::from_utf8(self.take(n)?).ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message(body: &str) -> OutgoingMessage {
        OutgoingMessage {
            body: body.into(),
            group_id: MessageGroupId::parse("EventSetup_9").unwrap(),
            deduplication_id: DeduplicationId::parse("2025-02-12T14:30:45.123").unwrap(),
            attributes: vec![(ATTR_EVENT_ID, "m-1".to_owned())],
        }
    }

    fn segment(bodies: &[&str]) -> (Vec<u8>, Vec<usize>) {
        let mut bytes = Vec::new();
        let mut starts = Vec::new();
        for (seq, body) in bodies.iter().enumerate() {
            starts.push(bytes.len());
            let m = message(body);
            encode(&mut bytes, seq as u64, 7, &m);
            assert_eq!(bytes.len() - starts[seq], encoded_len(&m));
        }
        (bytes, starts)
    }

    fn bodies(scanned: &[Scanned]) -> Vec<String> {
        scanned
            .iter()
            .filter_map(|s| match s {
                Scanned::Record { record, .. } => Some(record.message.body.to_string()),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn records_read_back_exactly() {
        let (bytes, _) = segment(&[r#"{"a":1}"#, "Zoë\n", ""]);
        let scanned = scan(&bytes);
        assert_eq!(bodies(&scanned), [r#"{"a":1}"#, "Zoë\n", ""]);
        let Scanned::Record { record, .. } = &scanned[1] else {
            panic!("a record")
        };
        assert_eq!(record.seq, 1);
        assert_eq!(record.spooled_at_ms, 7);
        assert_eq!(record.message.group_id.as_str(), "EventSetup_9");
        assert_eq!(record.message.attributes, [(ATTR_EVENT_ID, "m-1".into())]);
    }

    #[test]
    fn a_torn_tail_is_reported_as_torn() {
        let (bytes, starts) = segment(&["one", "two"]);
        for cut in starts[1] + 1..bytes.len() {
            let scanned = scan(&bytes[..cut]);
            assert_eq!(bodies(&scanned), ["one"], "cut at {cut}");
            assert!(
                matches!(scanned[1], Scanned::Tail { torn: true, offset, .. } if offset == starts[1] as u64),
                "cut at {cut}: {scanned:?}"
            );
        }
    }

    #[test]
    fn a_damaged_middle_record_is_skipped_and_the_rest_kept() {
        let (bytes, starts) = segment(&["one", "two", "three"]);
        // Any single flipped byte of the middle record, its header included.
        for at in starts[1]..starts[2] {
            let mut damaged = bytes.clone();
            damaged[at] ^= 0x20;
            let scanned = scan(&damaged);
            assert_eq!(bodies(&scanned), ["one", "three"], "byte {at}");
            assert!(
                scanned
                    .iter()
                    .any(|s| matches!(s, Scanned::Corrupt { offset, len }
                    if *offset == starts[1] as u64 && *len == (starts[2] - starts[1]) as u64)),
                "byte {at}: {scanned:?}"
            );
        }
    }

    #[test]
    fn a_damaged_last_record_is_a_tail_that_is_not_torn() {
        let (mut bytes, starts) = segment(&["one", "two"]);
        let last = bytes.len() - 1;
        bytes[last] ^= 1;
        let scanned = scan(&bytes);
        assert_eq!(bodies(&scanned), ["one"]);
        assert!(
            matches!(scanned[1], Scanned::Tail { torn: false, offset, .. } if offset == starts[1] as u64)
        );
    }
}
