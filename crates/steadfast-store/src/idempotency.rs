//! Idempotency keys with stored results: a duplicate request never does the work twice.
//!
//! [`Idempotency::begin`] claims a key for a request's fingerprint:
//!
//! - [`Begin::New`]: the key is new (or its holder's lock expired): run the work, then
//!   [`Guard::complete`] stores the result; [`Guard::abandon`] (or dropping the guard)
//!   releases the key so a retry may run it;
//! - [`Begin::Completed`]: a call with this key finished: its stored result;
//! - [`Begin::InFlight`]: a call with this key is running (HTTP 409);
//! - [`Begin::Mismatch`]: the key was used with another fingerprint (HTTP 422).
//!
//! A key is remembered for its `ttl` after it completed, then it is new again
//! ([`Idempotency::purge_expired`] deletes what expired). A holder that dies keeps its key
//! until the lock timeout (5 min unless set), after which the next claim takes it over; the
//! old holder's completion then stores nothing.
//!
//! [`Idempotency`] is also the executor's [`IdempotencyBackend`], for plans with an
//! `idempotency = { key = [...] }` step ([`steadfast::executor::KeyCall::idempotent`]).
//!
//! ```
//! use std::time::Duration;
//! use steadfast_store::MemoryStore;
//! use steadfast_store::idempotency::{Begin, Idempotency};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let keys = Idempotency::new(MemoryStore::new());
//! let day = Duration::from_secs(86_400);
//! let Begin::New(guard) = keys.begin("charge/o-42", "sha256:ab12", day).await? else {
//!     unreachable!("a new key")
//! };
//! guard.complete(br#"{"charge":"ch_1"}"#).await?;
//!
//! match keys.begin("charge/o-42", "sha256:ab12", day).await? {
//!     Begin::Completed(result) => assert_eq!(result, br#"{"charge":"ch_1"}"#),
//!     other => unreachable!("{other:?}"),
//! }
//! assert!(matches!(keys.begin("charge/o-42", "sha256:ffff", day).await?, Begin::Mismatch));
//! # Ok(()) }
//! ```

use std::sync::Arc;
use std::time::Duration;

use steadfast::idempotency::{
    Claim, IdempotencyBackend, IdempotencyFuture, IdempotencyHold, IdempotencyOptions,
};

use crate::StoreError;
use crate::backend::StoreFuture;
use crate::clock::to_ms;
use crate::clock::{Clock, SystemClock};

/// What a store found when a key was claimed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Claimed {
    /// Inserted (or taken over): held under this token.
    New(i64),
    /// Completed with this result.
    Completed(Vec<u8>),
    /// Held by a live call.
    InFlight,
    /// Known with another fingerprint.
    Mismatch,
}

/// Where idempotency keys live: memory, SQLite, PostgreSQL, Redis, or your own. Times are ms
/// since the Unix epoch; each method is atomic.
pub trait IdempotencyStore: Send + Sync + 'static {
    /// Claims `key` at `now_ms`: forgets it first if it expired (`expires_at_ms <= now_ms`
    /// and not held by a live lock); inserts it held until `locked_until_ms` with token 1 if
    /// absent; takes it over (token + 1) if it is held by an expired lock with the same
    /// fingerprint; else reports what it is.
    fn claim<'a>(
        &'a self,
        key: &'a str,
        fingerprint: &'a str,
        now_ms: i64,
        locked_until_ms: i64,
        expires_at_ms: i64,
    ) -> StoreFuture<'a, Claimed>;

    /// Stores `result` for `key` if it is still held under `token`, and remembers it until
    /// `expires_at_ms`; `false`: the hold was lost.
    fn complete<'a>(
        &'a self,
        key: &'a str,
        token: i64,
        result: &'a [u8],
        now_ms: i64,
        expires_at_ms: i64,
    ) -> StoreFuture<'a, bool>;

    /// Forgets `key` if it is still held (not completed) under `token`.
    fn release<'a>(&'a self, key: &'a str, token: i64) -> StoreFuture<'a, bool>;

    /// Forgets every key that expired by `now_ms` (and is not held by a live lock); how many.
    fn purge(&self, now_ms: i64) -> StoreFuture<'_, u64>;
}

impl<S: IdempotencyStore + ?Sized> IdempotencyStore for Arc<S> {
    fn claim<'a>(
        &'a self,
        key: &'a str,
        fingerprint: &'a str,
        now_ms: i64,
        locked_until_ms: i64,
        expires_at_ms: i64,
    ) -> StoreFuture<'a, Claimed> {
        (**self).claim(key, fingerprint, now_ms, locked_until_ms, expires_at_ms)
    }
    fn complete<'a>(
        &'a self,
        key: &'a str,
        token: i64,
        result: &'a [u8],
        now_ms: i64,
        expires_at_ms: i64,
    ) -> StoreFuture<'a, bool> {
        (**self).complete(key, token, result, now_ms, expires_at_ms)
    }
    fn release<'a>(&'a self, key: &'a str, token: i64) -> StoreFuture<'a, bool> {
        (**self).release(key, token)
    }
    fn purge(&self, now_ms: i64) -> StoreFuture<'_, u64> {
        (**self).purge(now_ms)
    }
}

/// What [`Idempotency::begin`] found.
pub enum Begin<S: IdempotencyStore> {
    /// The key is this caller's: do the work, then [`Guard::complete`].
    New(Guard<S>),
    /// A call with this key completed: its stored result.
    Completed(Vec<u8>),
    /// A call with this key is running.
    InFlight,
    /// The key was used with another fingerprint.
    Mismatch,
}

impl<S: IdempotencyStore> std::fmt::Debug for Begin<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Begin::New(g) => write!(f, "New({:?})", g.key),
            Begin::Completed(r) => write!(f, "Completed({} bytes)", r.len()),
            Begin::InFlight => f.write_str("InFlight"),
            Begin::Mismatch => f.write_str("Mismatch"),
        }
    }
}

/// Idempotency keys over an [`IdempotencyStore`]; cheap to clone (shared).
///
/// See the [module docs](self).
pub struct Idempotency<S> {
    store: Arc<S>,
    clock: Arc<dyn Clock>,
    lock_timeout: Duration,
}

impl<S> Clone for Idempotency<S> {
    fn clone(&self) -> Self {
        Idempotency {
            store: self.store.clone(),
            clock: self.clock.clone(),
            lock_timeout: self.lock_timeout,
        }
    }
}

impl<S> std::fmt::Debug for Idempotency<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Idempotency")
            .field("lock_timeout", &self.lock_timeout)
            .finish_non_exhaustive()
    }
}

impl<S: IdempotencyStore> Idempotency<S> {
    /// Keys in `store`, on the system clock, with locks of 5 min.
    pub fn new(store: S) -> Self {
        Idempotency {
            store: Arc::new(store),
            clock: Arc::new(SystemClock),
            lock_timeout: Duration::from_secs(300),
        }
    }

    /// Reads the time from `clock` (tests: a [`ManualClock`](crate::ManualClock)).
    pub fn with_clock(mut self, clock: impl Clock) -> Self {
        self.clock = Arc::new(clock);
        self
    }

    /// How long a call may hold its key before another claim takes it over (longer than
    /// the work ever runs).
    pub fn lock_timeout(mut self, timeout: Duration) -> Self {
        self.lock_timeout = timeout;
        self
    }

    /// The store.
    pub fn store(&self) -> &S {
        &self.store
    }

    /// Claims `key` for a request with `fingerprint`; a completed result is kept `ttl`.
    pub async fn begin(
        &self,
        key: &str,
        fingerprint: &str,
        ttl: Duration,
    ) -> Result<Begin<S>, StoreError> {
        self.claim(key, fingerprint, ttl, self.lock_timeout).await
    }

    async fn claim(
        &self,
        key: &str,
        fingerprint: &str,
        ttl: Duration,
        lock: Duration,
    ) -> Result<Begin<S>, StoreError> {
        let now = to_ms(self.clock.now());
        let locked_until = after(now, lock);
        // Until completed, the key lives as long as its lock (or its ttl, if longer).
        let expires = after(now, ttl.max(lock));
        Ok(
            match self
                .store
                .claim(key, fingerprint, now, locked_until, expires)
                .await?
            {
                Claimed::New(token) => Begin::New(Guard {
                    keys: self.clone(),
                    key: key.to_owned(),
                    token,
                    ttl,
                    done: false,
                }),
                Claimed::Completed(result) => Begin::Completed(result),
                Claimed::InFlight => Begin::InFlight,
                Claimed::Mismatch => Begin::Mismatch,
            },
        )
    }

    /// Forgets the keys whose time is up; how many.
    pub async fn purge_expired(&self) -> Result<u64, StoreError> {
        self.store.purge(to_ms(self.clock.now())).await
    }
}

/// A key held while its work runs: [`complete`](Self::complete) it with the result, or
/// [`abandon`](Self::abandon) it. Dropped without either, it releases the key in the
/// background (on a tokio runtime; elsewhere the lock times out).
#[must_use = "complete the key with the result, or abandon it"]
pub struct Guard<S: IdempotencyStore> {
    keys: Idempotency<S>,
    key: String,
    token: i64,
    ttl: Duration,
    done: bool,
}

impl<S: IdempotencyStore> std::fmt::Debug for Guard<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Guard")
            .field("key", &self.key)
            .field("token", &self.token)
            .finish_non_exhaustive()
    }
}

impl<S: IdempotencyStore> Guard<S> {
    /// The key held.
    pub fn key(&self) -> &str {
        &self.key
    }

    /// Stores `result`, kept for the ttl from now; `false` if the hold was lost (the lock
    /// expired and another call took the key over), in which case nothing was stored.
    pub async fn complete(mut self, result: &[u8]) -> Result<bool, StoreError> {
        self.done = true;
        let now = to_ms(self.keys.clock.now());
        self.keys
            .store
            .complete(&self.key, self.token, result, now, after(now, self.ttl))
            .await
    }

    /// Releases the key without a result: the next claim runs the work.
    pub async fn abandon(mut self) -> Result<(), StoreError> {
        self.done = true;
        self.keys
            .store
            .release(&self.key, self.token)
            .await
            .map(drop)
    }
}

impl<S: IdempotencyStore> Drop for Guard<S> {
    fn drop(&mut self) {
        if self.done {
            return;
        }
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            let (store, key, token) = (self.keys.store.clone(), self.key.clone(), self.token);
            runtime.spawn(async move {
                let _ = store.release(&key, token).await;
            });
        }
    }
}

/// `d` after `ms`, saturating.
fn after(ms: i64, d: Duration) -> i64 {
    ms.saturating_add(i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

impl<S: IdempotencyStore> IdempotencyBackend for Idempotency<S> {
    fn claim<'a>(
        &'a self,
        key: &'a str,
        fingerprint: &'a str,
        options: &'a IdempotencyOptions,
    ) -> IdempotencyFuture<'a, Result<Claim, String>> {
        Box::pin(async move {
            let claimed =
                Idempotency::claim(self, key, fingerprint, options.ttl, options.lock_timeout)
                    .await
                    .map_err(|e| e.to_string())?;
            Ok(match claimed {
                Begin::New(guard) => Claim::New(Box::new(guard)),
                Begin::Completed(result) => Claim::Completed(result),
                Begin::InFlight => Claim::InFlight,
                Begin::Mismatch => Claim::Mismatch,
            })
        })
    }
}

impl<S: IdempotencyStore> IdempotencyHold for Guard<S> {
    fn complete(
        self: Box<Self>,
        result: Vec<u8>,
    ) -> IdempotencyFuture<'static, Result<bool, String>> {
        Box::pin(async move {
            Guard::complete(*self, &result)
                .await
                .map_err(|e| e.to_string())
        })
    }

    fn abandon(self: Box<Self>) -> IdempotencyFuture<'static, ()> {
        Box::pin(async move {
            let _ = Guard::abandon(*self).await;
        })
    }
}
