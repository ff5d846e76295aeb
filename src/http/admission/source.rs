//! One source address's part of the unverified half ([the module's rule](super)): what
//! each source holds of the unverified slots and bytes, charged per request and given
//! back when the request ends or its sender is verified.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};

use crate::http::WebhookError;

/// The part of the unverified slots or bytes one source address may hold: a quarter,
/// rounded up.
pub(super) fn source_share(unverified: usize) -> usize {
    unverified.div_ceil(4).max(1)
}

/// What each source holds of the unverified budgets: slots and bytes.
pub(super) struct SourceCharges {
    held: Mutex<HashMap<IpAddr, (usize, usize)>>,
    max_slots: usize,
    max_bytes: usize,
}

/// One request's charge to its source; given back when dropped.
pub(super) struct SourceCharge {
    charges: Arc<SourceCharges>,
    source: IpAddr,
    slots: usize,
    bytes: usize,
}

impl SourceCharges {
    pub(super) fn new(max_slots: usize, max_bytes: usize) -> Self {
        Self {
            held: Mutex::new(HashMap::new()),
            max_slots,
            max_bytes,
        }
    }

    pub(super) fn charge(
        self: &Arc<Self>,
        charge: &mut Option<SourceCharge>,
        source: IpAddr,
        slots: usize,
        bytes: usize,
    ) -> Result<(), WebhookError> {
        let mut held = self.held.lock().expect("source charges");
        let entry = held.entry(source).or_insert((0, 0));
        if entry.0 + slots > self.max_slots || entry.1 + bytes > self.max_bytes {
            if *entry == (0, 0) {
                held.remove(&source);
            }
            return Err(WebhookError::SourceShareFull);
        }
        entry.0 += slots;
        entry.1 += bytes;
        let charge = charge.get_or_insert_with(|| SourceCharge {
            charges: Arc::clone(self),
            source,
            slots: 0,
            bytes: 0,
        });
        charge.slots += slots;
        charge.bytes += bytes;
        Ok(())
    }
}

impl Drop for SourceCharge {
    fn drop(&mut self) {
        let mut held = self.charges.held.lock().expect("source charges");
        if let Some(entry) = held.get_mut(&self.source) {
            entry.0 -= self.slots;
            entry.1 -= self.bytes;
            if *entry == (0, 0) {
                held.remove(&self.source);
            }
        }
    }
}
