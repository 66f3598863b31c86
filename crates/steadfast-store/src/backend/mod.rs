//! Where the durable state lives: gate records, queue messages and idempotency keys, each
//! behind a small trait of compare-and-set writes, so every store (and every process sharing
//! one) runs the same rules.

#[cfg(any(feature = "sqlite", feature = "postgres"))]
mod idempotency_sql;
mod memory;
mod memory_idempotency;
mod memory_queue;
#[cfg(feature = "postgres")]
mod postgres;
#[cfg(any(feature = "sqlite", feature = "postgres"))]
mod queue_sql;
#[cfg(feature = "redis")]
mod redis;
#[cfg(any(feature = "sqlite", feature = "postgres"))]
mod sql;
#[cfg(feature = "sqlite")]
mod sqlite;
#[cfg(feature = "sqlite")]
mod sqlite_file;

use std::future::Future;
use std::pin::Pin;

pub use memory::MemoryStore;
#[cfg(feature = "postgres")]
pub use postgres::PostgresStore;
#[cfg(feature = "redis")]
pub use redis::RedisStore;
#[cfg(any(feature = "sqlite", feature = "postgres"))]
pub use sql::Synchronous;
#[cfg(feature = "sqlite")]
pub use sqlite::SqliteStore;

use crate::StoreError;
use crate::gate::record::GateRecord;
use steadfast::gate::Target;

/// A boxed future of a store's result.
pub type StoreFuture<'a, T> = Pin<Box<dyn Future<Output = Result<T, StoreError>> + Send + 'a>>;

/// Which records [`GateStore::list`] returns.
///
/// ```
/// use steadfast_store::Filter;
///
/// let filter = Filter::all().target_type("order").limit(50);
/// assert_eq!(filter.limit, Some(50));
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Filter {
    /// Only targets of this type.
    pub target_type: Option<String>,
    /// At most this many, in order of type then id.
    pub limit: Option<u32>,
}

impl Filter {
    /// Every record.
    pub fn all() -> Self {
        Filter::default()
    }

    /// Only targets of `target_type`.
    pub fn target_type(mut self, target_type: impl Into<String>) -> Self {
        self.target_type = Some(target_type.into());
        self
    }

    /// At most `n` records.
    pub fn limit(mut self, n: u32) -> Self {
        self.limit = Some(n);
        self
    }
}

/// A place for gate records: memory, SQLite, PostgreSQL, or your own.
///
/// The gate reads a record, decides, and writes it back with [`save`](Self::save) over the
/// version it read; a store only has to make that write conditional. Two processes racing
/// for one target both read version 7, both try to write 8, and one of them re-reads.
pub trait GateStore: Send + Sync + 'static {
    /// The record of `target`, if it has one.
    fn load<'a>(&'a self, target: &'a Target) -> StoreFuture<'a, Option<GateRecord>>;

    /// Writes `record` (whose `version` is the new one) if the stored record's version is
    /// still `record.version - 1`, or, for version 1, if there is no record yet. `false`: another
    /// writer came first.
    fn save<'a>(&'a self, record: &'a GateRecord) -> StoreFuture<'a, bool>;

    /// Writes `record` as [`save`](Self::save) does, where `record.policy` is the policy of
    /// the version it replaces: a store may leave the stored policy as it is (the gate's
    /// attempts and failures; a success or reset may change it). The default saves the whole
    /// record.
    fn save_same_policy<'a>(&'a self, record: &'a GateRecord) -> StoreFuture<'a, bool> {
        self.save(record)
    }

    /// The records `filter` picks, by target type then id.
    fn list<'a>(&'a self, filter: &'a Filter) -> StoreFuture<'a, Vec<GateRecord>>;

    /// Deletes the records that are clear (no attempt since a success or reset) and were last
    /// written before `before_ms` (ms since the Unix epoch); how many.
    fn purge_clear(&self, before_ms: i64) -> StoreFuture<'_, u64>;
}

/// A store shared by several gates (or kept by the caller for its own reads).
impl<S: GateStore + ?Sized> GateStore for std::sync::Arc<S> {
    fn load<'a>(&'a self, target: &'a Target) -> StoreFuture<'a, Option<GateRecord>> {
        (**self).load(target)
    }

    fn save<'a>(&'a self, record: &'a GateRecord) -> StoreFuture<'a, bool> {
        (**self).save(record)
    }

    fn save_same_policy<'a>(&'a self, record: &'a GateRecord) -> StoreFuture<'a, bool> {
        (**self).save_same_policy(record)
    }

    fn list<'a>(&'a self, filter: &'a Filter) -> StoreFuture<'a, Vec<GateRecord>> {
        (**self).list(filter)
    }

    fn purge_clear(&self, before_ms: i64) -> StoreFuture<'_, u64> {
        (**self).purge_clear(before_ms)
    }
}
