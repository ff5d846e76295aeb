//! Admission: what a request may hold before and while its body is read.
//!
//! Two budgets bound memory, whatever senders do: forwarding slots
//! (`BRIDGE_MAX_IN_FLIGHT`) and body bytes (`BRIDGE_MAX_BUFFERED_BYTES`), each taken
//! before the bytes they cover and kept until the webhook is answered. Beyond either, `503
//! overloaded` at once, instead of queueing in memory during an SQS outage.
//!
//! **The unverified half.** Requests whose sender the headers can't tell (an HMAC-shaped
//! signature waiting for the body, no API key) also take from a second budget of half of
//! each (slots rounded up), until their signature is checked: whoever sends such values
//! with slow bodies can't crowd out senders the headers already authenticated (the
//! vendor's raw secret, an API key). This rule lives here; other places point to it.
//! When no sender can be known from its headers (`BRIDGE_REQUIRE_HMAC` without API keys)
//! the split would protect nobody and only halve capacity, so there is none.
//!
//! **Unverified bodies** are charged for the bytes that actually arrived, chunk by chunk
//! (a declared length costs nothing until it is sent), must keep arriving (a chunk at
//! least every [`UNVERIFIED_GAP`], at least [`MIN_UNVERIFIED_RATE`] on average after
//! the first second), and one source address holds at most a quarter of the unverified
//! slots and bytes ([`source_share`]): one address with made-up signatures can't hold
//! the whole unverified half. A `503` names the budget that refused.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix_web::HttpRequest;
use actix_web::http::header;
use actix_web::web;
use bytes::BytesMut;
use futures_util::StreamExt as _;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use super::WebhookError;
use source::{SourceCharge, SourceCharges, source_share};

mod source;

/// The part of the byte budget that unverified senders may hold: half.
#[must_use]
pub fn unverified_share(budget: usize) -> usize {
    budget / 2
}

/// The part of the slots that unverified senders may hold: half, rounded up, so one slot
/// still admits them.
fn unverified_slots(slots: u32) -> usize {
    (slots as usize).div_ceil(2)
}

/// Longest pause between two chunks of an unverified body.
pub const UNVERIFIED_GAP: Duration = Duration::from_secs(2);
/// Slowest average an unverified body may arrive at, after its first second (bytes/s):
/// far below any real sender's, far above a trickle meant to hold memory.
pub const MIN_UNVERIFIED_RATE: usize = 16 * 1024;
const UNVERIFIED_GRACE: Duration = Duration::from_secs(1);

/// The budgets, shared by every worker.
pub struct Admission {
    /// Forwards in flight.
    slots: Arc<Semaphore>,
    max_slots: u32,
    /// Slots of senders not yet known ([the unverified half](self)), rounded up.
    unverified_slots: Arc<Semaphore>,
    /// One permit per byte of body held.
    bytes: Arc<Semaphore>,
    max_bytes: usize,
    /// Body bytes of senders not yet known ([the unverified half](self)).
    unverified_bytes: Arc<Semaphore>,
    max_body_bytes: usize,
    body_read_timeout: Duration,
    /// Each source's part of the unverified half.
    sources: Arc<SourceCharges>,
}

/// Limits on one body, and whether the unverified half applies.
#[derive(Clone, Copy)]
pub struct BodyLimits {
    pub max_body_bytes: usize,
    pub read_timeout: Duration,
    /// Some senders can be known from their headers (see the module's doc).
    pub split_unverified: bool,
}

impl Admission {
    #[must_use]
    pub fn new(max_in_flight: usize, max_buffered_bytes: usize, body: BodyLimits) -> Self {
        let max_slots = u32::try_from(max_in_flight).unwrap_or(u32::MAX);
        let (unverified_slot_count, unverified_byte_count) = if body.split_unverified {
            (
                unverified_slots(max_slots),
                unverified_share(max_buffered_bytes),
            )
        } else {
            (max_slots as usize, max_buffered_bytes)
        };
        Self {
            sources: Arc::new(SourceCharges::new(
                source_share(unverified_slot_count),
                // Room for one largest body, whatever the split.
                source_share(unverified_byte_count).max(body.max_body_bytes),
            )),
            slots: Arc::new(Semaphore::new(max_slots as usize)),
            max_slots,
            unverified_slots: Arc::new(Semaphore::new(if body.split_unverified {
                unverified_slots(max_slots)
            } else {
                max_slots as usize
            })),
            bytes: Arc::new(Semaphore::new(max_buffered_bytes)),
            max_bytes: max_buffered_bytes,
            unverified_bytes: Arc::new(Semaphore::new(if body.split_unverified {
                unverified_share(max_buffered_bytes)
            } else {
                max_buffered_bytes
            })),
            max_body_bytes: body.max_body_bytes,
            body_read_timeout: body.read_timeout,
        }
    }

    /// A forwarding slot, and for a sender not yet known one of the unverified half and
    /// of its source's share of it.
    pub fn admit(&self, verified: bool, source: Option<IpAddr>) -> Result<Slot, WebhookError> {
        let held = Arc::clone(&self.slots)
            .try_acquire_owned()
            .map_err(|_| WebhookError::Overloaded)?;
        let unverified = if verified {
            None
        } else {
            Some(
                Arc::clone(&self.unverified_slots)
                    .try_acquire_owned()
                    .map_err(|_| WebhookError::UnverifiedFull)?,
            )
        };
        let mut charge = None;
        if let (false, Some(source)) = (verified, source) {
            self.sources
                .charge(&mut charge, super::access::source_key(source), 1, 0)?;
        }
        Ok(Slot {
            _held: held,
            unverified,
            bytes: BodyBytes::default(),
            source: if verified { None } else { source },
            charge,
        })
    }

    /// Forwards in flight now, and the most there can be.
    #[must_use]
    pub fn slots_in_use(&self) -> (usize, u32) {
        (
            self.max_slots as usize - self.slots.available_permits(),
            self.max_slots,
        )
    }

    /// Body bytes held now, and the most there can be.
    #[must_use]
    pub fn bytes_in_use(&self) -> (usize, usize) {
        (
            self.max_bytes
                .saturating_sub(self.bytes.available_permits()),
            self.max_bytes,
        )
    }

    /// Resolves once every slot is free: every forward has been answered (the drain).
    pub async fn all_answered(&self) {
        let _ = self.slots.acquire_many(self.max_slots).await;
    }

    /// Reads the body within `BRIDGE_BODY_READ_TIMEOUT_MS`, enforcing
    /// `BRIDGE_MAX_BODY_BYTES` while reading (a declared oversized length is refused
    /// before any byte is read; a stream that grows past it is cut off) and taking byte
    /// permits: for a known sender, for the declared length up front (or per chunk of a
    /// chunked body); for an unverified one, for each chunk as it arrives, which must
    /// keep arriving ([the module's rule](self)). The permits stay with `slot`.
    pub async fn read_body(
        &self,
        req: &HttpRequest,
        mut payload: web::Payload,
        slot: &mut Slot,
    ) -> Result<BytesMut, WebhookError> {
        let (limit, timeout) = (self.max_body_bytes, self.body_read_timeout);
        let declared = req
            .headers()
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<usize>().ok());
        if declared.is_some_and(|n| n > limit) {
            return Err(WebhookError::TooLarge(limit));
        }
        let unverified = slot.unverified.is_some();
        if !unverified {
            self.cover(slot, declared.unwrap_or(0))?;
        }
        let started = Instant::now();
        let read = async {
            // A known sender's declared length is already charged to the byte budget: its
            // buffer is allocated once, at that size (growing it would leave copies
            // behind). An unverified one starts small and grows as bytes arrive.
            let capacity = match declared {
                Some(declared) if !unverified => declared.min(limit),
                _ => 8 * 1024,
            };
            let mut body = BytesMut::with_capacity(capacity);
            loop {
                let next = if unverified {
                    tokio::time::timeout(UNVERIFIED_GAP, payload.next())
                        .await
                        .map_err(|_| WebhookError::BodyTooSlow)?
                } else {
                    payload.next().await
                };
                let Some(chunk) = next else { break };
                let chunk = chunk.map_err(|e| WebhookError::BodyRead(e.to_string()))?;
                if body.len() + chunk.len() > limit {
                    return Err(WebhookError::TooLarge(limit));
                }
                self.cover(slot, body.len() + chunk.len())?;
                body.extend_from_slice(&chunk);
                let elapsed = started.elapsed();
                if unverified
                    && elapsed > UNVERIFIED_GRACE
                    && declared.is_none_or(|d| body.len() < d)
                    && (body.len() as u128) * 1000
                        < (MIN_UNVERIFIED_RATE as u128) * elapsed.as_millis()
                {
                    return Err(WebhookError::BodyTooSlow);
                }
            }
            Ok(body)
        };
        tokio::time::timeout(timeout, read)
            .await
            .map_err(|_| WebhookError::BodyTimeout(timeout.as_millis()))?
    }

    /// Takes byte permits until `total` bytes are covered, or refuses naming the budget:
    /// the source's share, the unverified half, or the whole.
    fn cover(&self, slot: &mut Slot, total: usize) -> Result<(), WebhookError> {
        let taken = slot
            .bytes
            .held
            .as_ref()
            .map_or(0, OwnedSemaphorePermit::num_permits);
        let Some(more) = total.checked_sub(taken).filter(|n| *n > 0) else {
            return Ok(());
        };
        // Never more than the body limit (about 1 MiB), far below 4 GiB.
        let more32 = u32::try_from(more).map_err(|_| WebhookError::BufferFull)?;
        let take = |from: &Arc<Semaphore>, full: WebhookError| {
            Arc::clone(from)
                .try_acquire_many_owned(more32)
                .map_err(|_| full)
        };
        let unverified = slot
            .unverified
            .is_some()
            .then(|| take(&self.unverified_bytes, WebhookError::UnverifiedFull))
            .transpose()?;
        let held = take(&self.bytes, WebhookError::BufferFull)?;
        if let (Some(_), Some(source)) = (&unverified, slot.source) {
            self.sources
                .charge(&mut slot.charge, super::access::source_key(source), 0, more)?;
        }
        add(&mut slot.bytes.held, held);
        if let Some(permit) = unverified {
            add(&mut slot.bytes.unverified, permit);
        }
        Ok(())
    }
}

/// What one request holds: its slot and its body's bytes. Dropping it gives them back;
/// the handler keeps it until the webhook is answered (the body stays in memory until
/// SQS has it).
pub struct Slot {
    _held: OwnedSemaphorePermit,
    unverified: Option<OwnedSemaphorePermit>,
    bytes: BodyBytes,
    /// The client's address, while its sender is not yet known.
    source: Option<IpAddr>,
    /// What it holds of its source's share of the unverified half.
    charge: Option<SourceCharge>,
}

impl Slot {
    /// The sender is known now: it no longer counts against the unverified half.
    pub fn verified(&mut self) {
        self.unverified = None;
        self.bytes.unverified = None;
        self.source = None;
        self.charge = None;
    }
}

/// The permits for one body's bytes: of the whole budget, and of the unverified half
/// while its sender is not yet known.
#[derive(Default)]
struct BodyBytes {
    held: Option<OwnedSemaphorePermit>,
    unverified: Option<OwnedSemaphorePermit>,
}

/// Adds `permit` to what `slot` holds (permits of one semaphore).
fn add(slot: &mut Option<OwnedSemaphorePermit>, permit: OwnedSemaphorePermit) {
    match slot {
        Some(held) => held.merge(permit),
        None => *slot = Some(permit),
    }
}

/// No `Content-Type` is taken as JSON; a declared one must be JSON (and UTF-8, if it says).
pub fn check_content_type(req: &HttpRequest) -> Result<(), WebhookError> {
    let Some(value) = req.headers().get(header::CONTENT_TYPE) else {
        return Ok(());
    };
    let text = value.to_str().unwrap_or("(not text)");
    let mut parts = text.split(';').map(str::trim);
    let essence = parts.next().unwrap_or_default().to_ascii_lowercase();
    let json = essence == "application/json"
        || essence == "text/json"
        || (essence.starts_with("application/") && essence.ends_with("+json"));
    let utf8 = parts.all(|p| {
        p.split_once('=').is_none_or(|(k, v)| {
            !k.trim().eq_ignore_ascii_case("charset")
                || matches!(
                    v.trim().trim_matches('"').to_ascii_lowercase().as_str(),
                    "utf-8" | "utf8"
                )
        })
    });
    if json && utf8 {
        Ok(())
    } else {
        Err(WebhookError::UnsupportedMediaType(
            text.chars().take(100).collect(),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn admission(split_unverified: bool) -> Admission {
        Admission::new(
            4,
            1 << 20,
            BodyLimits {
                max_body_bytes: 1024,
                read_timeout: Duration::from_secs(1),
                split_unverified,
            },
        )
    }

    #[test]
    fn unverified_senders_hold_half_the_slots_unless_no_sender_can_be_known() {
        let split = admission(true);
        let _held: Vec<Slot> = (0..2).map(|_| split.admit(false, None).unwrap()).collect();
        assert!(matches!(
            split.admit(false, None),
            Err(WebhookError::UnverifiedFull)
        ));
        assert!(
            split.admit(true, None).is_ok(),
            "the other half stays for known senders"
        );

        let whole = admission(false);
        let _held: Vec<Slot> = (0..4).map(|_| whole.admit(false, None).unwrap()).collect();
        assert!(matches!(
            whole.admit(false, None),
            Err(WebhookError::Overloaded)
        ));
    }

    #[test]
    fn one_source_holds_at_most_a_quarter_of_the_unverified_half() {
        let admission = Admission::new(
            16,
            1 << 20,
            BodyLimits {
                max_body_bytes: 1024,
                read_timeout: Duration::from_secs(1),
                split_unverified: true,
            },
        );
        let a: IpAddr = "192.0.2.1".parse().unwrap();
        let b: IpAddr = "192.0.2.2".parse().unwrap();
        // 16 slots: 8 unverified, 2 of them per source.
        let mut held: Vec<Slot> = (0..2)
            .map(|_| admission.admit(false, Some(a)).unwrap())
            .collect();
        assert!(matches!(
            admission.admit(false, Some(a)),
            Err(WebhookError::SourceShareFull)
        ));
        assert!(admission.admit(false, Some(b)).is_ok());
        assert!(
            admission.admit(true, Some(a)).is_ok(),
            "a known sender is not charged"
        );
        // Verified, a request no longer counts against its source.
        held[0].verified();
        assert!(admission.admit(false, Some(a)).is_ok());
        // Bytes: a quarter of the unverified half (128 KiB of 512 KiB).
        let mut slot = admission.admit(false, Some(b)).unwrap();
        assert!(admission.cover(&mut slot, 128 * 1024).is_ok());
        assert!(matches!(
            admission.cover(&mut slot, 128 * 1024 + 1),
            Err(WebhookError::SourceShareFull)
        ));
    }
}
