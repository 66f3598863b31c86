//! Gate records in this process's memory (the queue and idempotency keys have their own
//! files beside this one): for tests of your own code and single-process services that need
//! no restart survival.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, PoisonError};

use steadfast::gate::Target;

use super::{Filter, GateStore, StoreFuture};
use crate::gate::record::GateRecord;

/// Gate records in memory; clones share them.
///
/// ```
/// use steadfast::gate::{GateOptions, Target};
/// use steadfast_store::{MemoryStore, RetryGate};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let gate = RetryGate::new(MemoryStore::new(), GateOptions::default())?;
/// let decision = gate.check(&Target::new("order", "42")).await?;
/// assert!(decision.allowed);
/// # Ok(()) }
/// ```
#[derive(Debug, Clone, Default)]
pub struct MemoryStore {
    records: Arc<Mutex<BTreeMap<Target, GateRecord>>>,
    /// The retry queue's messages and dead letters.
    pub(super) queue: Arc<Mutex<super::memory_queue::Messages>>,
    /// Idempotency keys.
    pub(super) keys: Arc<Mutex<super::memory_idempotency::Keys>>,
}

impl MemoryStore {
    /// An empty store.
    pub fn new() -> Self {
        MemoryStore::default()
    }

    fn with<T>(&self, f: impl FnOnce(&mut BTreeMap<Target, GateRecord>) -> T) -> T {
        // A panic while holding the lock cannot leave a record half-written: writes replace a
        // whole record.
        let mut records = self.records.lock().unwrap_or_else(PoisonError::into_inner);
        f(&mut records)
    }
}

impl GateStore for MemoryStore {
    fn load<'a>(&'a self, target: &'a Target) -> StoreFuture<'a, Option<GateRecord>> {
        let record = self.with(|r| r.get(target).cloned());
        Box::pin(async move { Ok(record) })
    }

    fn save<'a>(&'a self, record: &'a GateRecord) -> StoreFuture<'a, bool> {
        let won = self.with(|r| {
            let current = r.get(&record.target).map(|c| c.version);
            let expected = record.version.checked_sub(1).filter(|v| *v > 0);
            if current == expected {
                r.insert(record.target.clone(), record.clone());
                true
            } else {
                false
            }
        });
        Box::pin(async move { Ok(won) })
    }

    fn list<'a>(&'a self, filter: &'a Filter) -> StoreFuture<'a, Vec<GateRecord>> {
        let records = self.with(|r| {
            r.values()
                .filter(|rec| {
                    filter
                        .target_type
                        .as_ref()
                        .is_none_or(|t| *t == rec.target.target_type)
                })
                .take(filter.limit.map_or(usize::MAX, |n| n as usize))
                .cloned()
                .collect()
        });
        Box::pin(async move { Ok(records) })
    }

    fn purge_clear(&self, before_ms: i64) -> StoreFuture<'_, u64> {
        let purged = self.with(|r| {
            let before = r.len();
            r.retain(|_, rec| rec.attempts > 0 || crate::clock::to_ms(rec.updated_at) >= before_ms);
            (before - r.len()) as u64
        });
        Box::pin(async move { Ok(purged) })
    }
}
