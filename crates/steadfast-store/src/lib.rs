//! The durable parts of steadfast: state that must survive restarts and be shared by many
//! processes.
//!
//! - [`gate`]: the **retry gate**, per target `(target_type, target_id)`: "may this be
//!   attempted now?", with the reason and when it reopens, over minutes or hours (see
//!   [`steadfast::gate`] for the rules).
//! - [`queue`]: the **retry queue**, messages retried later by their topic's policy, and dead
//!   letters for what cannot succeed, which an operator can read and send back.
//! - [`idempotency`]: **idempotency keys** with stored results, so a duplicate request never
//!   does the work twice.
//!
//! Each lives in a store:
//!
//! - [`MemoryStore`]: this process only;
//! - [`SqliteStore`] (feature `sqlite`, default): a file in WAL mode, shared by the processes of
//!   one host;
//! - [`PostgresStore`] (feature `postgres`): one database for many hosts;
//! - [`RedisStore`] (feature `redis`): idempotency keys shared by many hosts.
//!
//! Each write is a compare-and-set (or one atomic script), so racing processes never both
//! spend the last retry, lease the same message or claim the same key.
//!
//! ```
//! use std::time::{Duration, UNIX_EPOCH};
//! use steadfast::gate::{GateOptions, Reason, Target};
//! use steadfast_store::{ManualClock, MemoryStore, RetryGate};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let clock = ManualClock::at(UNIX_EPOCH);
//! let gate = RetryGate::new(MemoryStore::new(), GateOptions::default())?.with_clock(clock.clone());
//! let order = Target::new("order", "42");
//!
//! for _ in 0..3 {
//!     // The first attempt and the window's two retries.
//!     gate.acquire(&order).await?.failed("upstream 503").await?;
//! }
//! let decision = gate.check(&order).await?;
//! assert_eq!(decision.reason, Reason::CoolingDown);
//! assert_eq!(decision.next_allowed_at, Some(UNIX_EPOCH + Duration::from_secs(30 * 60)));
//! # Ok(()) }
//! ```
#![forbid(unsafe_code)]
#![deny(missing_docs)]
#![warn(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod backend;
mod clock;
mod error;
pub mod gate;
pub mod idempotency;
pub mod queue;

#[cfg(feature = "postgres")]
pub use backend::PostgresStore;
#[cfg(feature = "redis")]
pub use backend::RedisStore;
#[cfg(feature = "sqlite")]
pub use backend::SqliteStore;
#[cfg(any(feature = "sqlite", feature = "postgres"))]
pub use backend::Synchronous;
pub use backend::{Filter, GateStore, MemoryStore, StoreFuture};
pub use clock::{Clock, ManualClock, SystemClock};
pub use error::StoreError;
pub use gate::{GateError, GateRecord, Permit, RetryGate, RunError};
