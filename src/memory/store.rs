//! Where the records live: the shared table, or the process ([`Records`]). Both keep the
//! same records by the same rules; the calls are the table's.

use std::sync::Arc;
use std::time::Duration;

use super::local::Records;
use super::{EventKey, Mark, MemoryError, Stored, Table};

#[derive(Debug, Clone)]
pub(super) enum Store {
    Table(Table),
    Local(Arc<Records>),
}

impl Store {
    pub(super) async fn claim(
        &self,
        key: &EventKey,
        deduplication_id: &str,
        body_sha256: &str,
        now_ms: i64,
        ttl: Duration,
    ) -> Result<Option<Stored>, MemoryError> {
        match self {
            Self::Table(table) => {
                table
                    .claim(key, deduplication_id, body_sha256, now_ms, ttl)
                    .await
            }
            Self::Local(records) => {
                Ok(records.claim(key, deduplication_id, body_sha256, now_ms, ttl))
            }
        }
    }

    pub(super) async fn take_over(
        &self,
        key: &EventKey,
        claimed_at_ms: i64,
        now_ms: i64,
        ttl: Duration,
    ) -> Result<(), MemoryError> {
        match self {
            Self::Table(table) => table.take_over(key, claimed_at_ms, now_ms, ttl).await,
            Self::Local(records) => {
                records.take_over(key, claimed_at_ms, now_ms, ttl);
                Ok(())
            }
        }
    }

    pub(super) async fn mark(
        &self,
        key: &EventKey,
        mark: Mark<'_>,
        now_ms: i64,
        ttl: Duration,
    ) -> Result<(), MemoryError> {
        match self {
            Self::Table(table) => table.mark(key, mark, now_ms, ttl).await,
            Self::Local(records) => {
                records.mark(key, mark, now_ms, ttl);
                Ok(())
            }
        }
    }

    pub(super) async fn probe(&self) -> Result<(), MemoryError> {
        match self {
            Self::Table(table) => table.probe().await,
            Self::Local(_) => Ok(()),
        }
    }
}
