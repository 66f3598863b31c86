//! Limits on a whole call: a [`Bulkhead`] (at most N at once, M more waiting) and a
//! [`RateLimiter`] (GCRA: a steady rate with a burst). Both sit outside the retry loop: a call
//! is admitted once, and its retries run under that admission.
//!
//! # Example
//! ```
//! use std::time::Duration;
//! use steadfast::limit::{Bulkhead, RateLimiter};
//! use steadfast::{ErrorKind, Retry};
//!
//! # #[tokio::main(flavor = "current_thread", start_paused = true)]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let limiter = RateLimiter::per_second(2).burst(1).build()?;
//! let retry = Retry::default();
//! let call = || retry.call(|| async { Ok::<_, ()>(()) }).rate_limiter(&limiter).run();
//! assert!(call().await.is_ok());
//! // The next call is 500 ms away at 2/s, and the limiter refuses rather than wait.
//! let refused = call().await.unwrap_err();
//! assert!(matches!(refused.kind(), ErrorKind::RateLimited { retry_after, .. } if *retry_after == Duration::from_millis(500)));
//!
//! let bulkhead = Bulkhead::new(10).max_queue(20).queue_timeout(Duration::from_secs(1)).build()?;
//! let ok = retry.call(|| async { Ok::<_, ()>(1) }).bulkhead(&bulkhead).run().await;
//! assert_eq!(ok.unwrap(), 1);
//! # Ok(()) }
//! ```

#[cfg(feature = "serde")]
mod file;

pub(crate) mod admission;

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::time::Duration;

use tokio::sync::{Semaphore, SemaphorePermit, TryAcquireError};
use tokio::time::Instant;

use crate::config::{ConfigError, Problems, fmt_duration};

/// A bulkhead's options.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct BulkheadOptions {
    /// Calls at once (>= 1).
    pub max_concurrent: u32,
    /// Calls that may wait for a place (0: none wait, a full bulkhead refuses at once).
    pub max_queue: u32,
    /// How long a call may wait for a place; `None` waits as long as the caller does.
    pub queue_timeout: Option<Duration>,
}

impl BulkheadOptions {
    /// At most `max_concurrent` calls at once, none waiting.
    pub fn new(max_concurrent: u32) -> Self {
        BulkheadOptions {
            max_concurrent,
            max_queue: 0,
            queue_timeout: None,
        }
    }

    /// Lets `n` calls wait for a place.
    pub fn max_queue(mut self, n: u32) -> Self {
        self.max_queue = n;
        self
    }

    /// Bounds the wait for a place.
    pub fn queue_timeout(mut self, d: Duration) -> Self {
        self.queue_timeout = Some(d);
        self
    }

    /// Checks every field; problems name it (`bulkhead.max_concurrent`).
    pub fn validate(&self) -> Result<(), ConfigError> {
        let mut p = Problems::new("bulkhead");
        self.check(&mut p);
        p.finish()
    }

    pub(crate) fn check(&self, p: &mut Problems<'_>) {
        if self.max_concurrent == 0 {
            p.push("max_concurrent", "must be >= 1, got 0");
        }
        if self.max_concurrent as usize > Semaphore::MAX_PERMITS {
            p.push("max_concurrent", "is too large");
        }
        if self.queue_timeout == Some(Duration::ZERO) {
            p.push("queue_timeout", "must be > 0, got 0ms");
        }
    }

    /// Validates and makes the bulkhead.
    pub fn build(self) -> Result<Bulkhead, ConfigError> {
        Bulkhead::with_options(self)
    }
}

/// At most N calls at once; see the [module docs](self). Cheap to clone; clones share places.
#[derive(Clone)]
pub struct Bulkhead {
    shared: Arc<BulkheadShared>,
}

struct BulkheadShared {
    options: BulkheadOptions,
    places: Semaphore,
    queued: AtomicU32,
}

impl fmt::Debug for Bulkhead {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Bulkhead")
            .field("options", &self.shared.options)
            .field("in_flight", &self.in_flight())
            .finish()
    }
}

/// A bulkhead refused the call: every place taken and the queue full (or the wait too long).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Full;

/// A place in a bulkhead, given back when dropped.
#[derive(Debug)]
pub struct BulkheadPermit<'a> {
    _permit: SemaphorePermit<'a>,
}

impl Bulkhead {
    /// Options for a bulkhead of `max_concurrent` places.
    #[allow(clippy::new_ret_no_self)]
    pub fn new(max_concurrent: u32) -> BulkheadOptions {
        BulkheadOptions::new(max_concurrent)
    }

    /// A bulkhead with `options`, validated.
    pub fn with_options(options: BulkheadOptions) -> Result<Bulkhead, ConfigError> {
        options.validate()?;
        Ok(Self::from_valid(options))
    }

    /// The same, for options already validated (a plan's): cannot fail.
    pub(crate) fn from_valid(options: BulkheadOptions) -> Bulkhead {
        Bulkhead {
            shared: Arc::new(BulkheadShared {
                places: Semaphore::new(options.max_concurrent as usize),
                options,
                queued: AtomicU32::new(0),
            }),
        }
    }

    /// The options it was made with.
    pub fn options(&self) -> &BulkheadOptions {
        &self.shared.options
    }

    /// Whether `other` is this very bulkhead.
    pub fn same(&self, other: &Bulkhead) -> bool {
        Arc::ptr_eq(&self.shared, &other.shared)
    }

    /// Calls holding a place now.
    pub fn in_flight(&self) -> u32 {
        let free = self.shared.places.available_permits() as u32;
        self.shared.options.max_concurrent.saturating_sub(free)
    }

    /// Calls waiting for a place now.
    pub fn queued(&self) -> u32 {
        self.shared.queued.load(Ordering::Acquire)
    }

    /// Takes a place if one is free now.
    pub fn try_acquire(&self) -> Option<BulkheadPermit<'_>> {
        self.shared
            .places
            .try_acquire()
            .ok()
            .map(|permit| BulkheadPermit { _permit: permit })
    }

    /// Takes a place, waiting in the queue if there is room in it.
    pub async fn acquire(&self) -> Result<BulkheadPermit<'_>, Full> {
        let s = &*self.shared;
        match s.places.try_acquire() {
            Ok(permit) => return Ok(BulkheadPermit { _permit: permit }),
            Err(TryAcquireError::Closed) => return Err(Full),
            Err(TryAcquireError::NoPermits) => {}
        }
        let _slot = QueueSlot::take(&s.queued, s.options.max_queue).ok_or(Full)?;
        let waited = match s.options.queue_timeout {
            Some(t) => tokio::time::timeout(t, s.places.acquire())
                .await
                .ok()
                .and_then(Result::ok),
            None => s.places.acquire().await.ok(),
        };
        waited
            .map(|permit| BulkheadPermit { _permit: permit })
            .ok_or(Full)
    }
}

/// A place in a bulkhead's queue, given back when the wait ends or is dropped.
struct QueueSlot<'a>(&'a AtomicU32);

impl<'a> QueueSlot<'a> {
    fn take(queued: &'a AtomicU32, max: u32) -> Option<Self> {
        queued
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < max).then_some(n + 1)
            })
            .ok()
            .map(|_| QueueSlot(queued))
    }
}

impl Drop for QueueSlot<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

/// A rate limiter's options: `rate` calls per `per`, bursts of up to `burst`, and either a
/// refusal or a bounded wait when over.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct RateLimitOptions {
    /// Calls per `per` (>= 1).
    pub rate: u32,
    /// The period `rate` is over.
    pub per: Duration,
    /// Calls that may come at once after a quiet spell (>= 1; default `rate`).
    pub burst: u32,
    /// `None`: refuse a call over the rate. `Some(d)`: make it wait, if it can go within `d`.
    pub max_wait: Option<Duration>,
}

impl RateLimitOptions {
    /// `rate` calls per `per`, bursts of `rate`, refusing calls over it.
    pub fn new(rate: u32, per: Duration) -> Self {
        RateLimitOptions {
            rate,
            per,
            burst: rate,
            max_wait: None,
        }
    }

    /// Calls that may come at once.
    pub fn burst(mut self, n: u32) -> Self {
        self.burst = n;
        self
    }

    /// Makes calls over the rate wait (up to `d`) instead of being refused.
    pub fn max_wait(mut self, d: Duration) -> Self {
        self.max_wait = Some(d);
        self
    }

    /// Checks every field; problems name it (`rate_limit.rate`).
    pub fn validate(&self) -> Result<(), ConfigError> {
        let mut p = Problems::new("rate_limit");
        self.check(&mut p);
        p.finish()
    }

    pub(crate) fn check(&self, p: &mut Problems<'_>) {
        if self.rate == 0 {
            p.push("rate", "must be >= 1, got 0");
        }
        if self.per.is_zero() {
            p.push(
                "per",
                format!("must be > 0, got {}", fmt_duration(self.per)),
            );
        } else if self.rate > 0 && self.per.as_nanos() < u128::from(self.rate) {
            p.push("rate", "is more than one call per nanosecond");
        }
        if self.burst == 0 {
            p.push("burst", "must be >= 1, got 0");
        }
    }

    /// Validates and makes the limiter.
    pub fn build(self) -> Result<RateLimiter, ConfigError> {
        RateLimiter::with_options(self)
    }

    fn interval(&self) -> u64 {
        let nanos = self.per.as_nanos() / u128::from(self.rate.max(1));
        u64::try_from(nanos).unwrap_or(u64::MAX).max(1)
    }
}

/// A GCRA rate limiter (the "generic cell rate algorithm": one atomic timestamp, no refill
/// task). Cheap to clone; clones share the rate. Time is tokio's clock, so tests run it on a
/// paused clock.
#[derive(Clone)]
pub struct RateLimiter {
    shared: Arc<LimiterShared>,
}

struct LimiterShared {
    options: RateLimitOptions,
    origin: Instant,
    /// Emission interval, nanoseconds.
    interval: u64,
    /// How far ahead of now the theoretical arrival time may run (`interval × (burst − 1)`).
    tolerance: u64,
    /// Theoretical arrival time of the next call, nanoseconds since `origin`.
    tat: AtomicU64,
}

impl fmt::Debug for RateLimiter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RateLimiter")
            .field("options", &self.shared.options)
            .finish()
    }
}

/// A rate limiter refused the call: the next one may go after `retry_after`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limited {
    /// When a call would be let through.
    pub retry_after: Duration,
}

impl RateLimiter {
    /// Options for `n` calls a second.
    pub fn per_second(n: u32) -> RateLimitOptions {
        RateLimitOptions::new(n, Duration::from_secs(1))
    }

    /// Options for `rate` calls per `per`.
    #[allow(clippy::new_ret_no_self)]
    pub fn new(rate: u32, per: Duration) -> RateLimitOptions {
        RateLimitOptions::new(rate, per)
    }

    /// A limiter with `options`, validated.
    pub fn with_options(options: RateLimitOptions) -> Result<RateLimiter, ConfigError> {
        options.validate()?;
        Ok(Self::from_valid(options))
    }

    /// The same, for options already validated (a plan's): cannot fail.
    pub(crate) fn from_valid(options: RateLimitOptions) -> RateLimiter {
        let interval = options.interval();
        let tolerance = interval.saturating_mul(u64::from(options.burst - 1));
        RateLimiter {
            shared: Arc::new(LimiterShared {
                options,
                origin: Instant::now(),
                interval,
                tolerance,
                tat: AtomicU64::new(0),
            }),
        }
    }

    /// The options it was made with.
    pub fn options(&self) -> &RateLimitOptions {
        &self.shared.options
    }

    /// Whether `other` is this very limiter.
    pub fn same(&self, other: &RateLimiter) -> bool {
        Arc::ptr_eq(&self.shared, &other.shared)
    }

    /// Takes one call's place now, or says when one is free.
    pub fn try_acquire(&self) -> Result<(), Limited> {
        self.reserve(0).map(|_| ())
    }

    /// Takes one call's place: now, after a wait of at most `max_wait` (the options'), or
    /// refuses.
    pub async fn acquire(&self) -> Result<(), Limited> {
        let max = self.shared.options.max_wait.map_or(0, nanos);
        let wait = self.reserve(max)?;
        if wait > 0 {
            tokio::time::sleep(Duration::from_nanos(wait)).await;
        }
        Ok(())
    }

    /// [`acquire`](Self::acquire) on this thread: a wait is a `thread::sleep`.
    pub fn acquire_blocking(&self) -> Result<(), Limited> {
        let max = self.shared.options.max_wait.map_or(0, nanos);
        let wait = self.reserve(max)?;
        if wait > 0 {
            std::thread::sleep(Duration::from_nanos(wait));
        }
        Ok(())
    }

    /// Calls that could go at once now (from `burst` after a quiet spell down to 0).
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() {
    /// let limiter = steadfast::limit::RateLimitOptions::new(10, std::time::Duration::from_secs(1))
    ///     .build()
    ///     .unwrap();
    /// assert_eq!(limiter.available(), 10);
    /// limiter.try_acquire().unwrap();
    /// assert_eq!(limiter.available(), 9);
    /// # }
    /// ```
    pub fn available(&self) -> u32 {
        let s = &*self.shared;
        let now = nanos(Instant::now().saturating_duration_since(s.origin));
        let ahead = s.tat.load(Ordering::Acquire).saturating_sub(now);
        let used = ahead.div_ceil(s.interval.max(1));
        u64::from(s.options.burst)
            .saturating_sub(used)
            .try_into()
            .unwrap_or(0)
    }

    /// Reserves the next place if it is at most `max_wait` nanoseconds away; returns the wait.
    fn reserve(&self, max_wait: u64) -> Result<u64, Limited> {
        let s = &*self.shared;
        let now = nanos(Instant::now().saturating_duration_since(s.origin));
        let mut tat = s.tat.load(Ordering::Acquire);
        loop {
            let start = tat.max(now);
            // How long until this call fits within the burst.
            let wait = (start - now).saturating_sub(s.tolerance);
            if wait > max_wait {
                return Err(Limited {
                    retry_after: Duration::from_nanos(wait),
                });
            }
            match s.tat.compare_exchange_weak(
                tat,
                start.saturating_add(s.interval),
                Ordering::AcqRel,
                Ordering::Acquire,
            ) {
                Ok(_) => return Ok(wait),
                Err(seen) => tat = seen,
            }
        }
    }
}

fn nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn gcra_lets_a_burst_through_then_the_rate() {
        let l = RateLimiter::per_second(10).burst(3).build().unwrap();
        for _ in 0..3 {
            assert!(l.try_acquire().is_ok());
        }
        let refused = l.try_acquire().unwrap_err();
        assert_eq!(refused.retry_after, Duration::from_millis(100));
        tokio::time::advance(Duration::from_millis(100)).await;
        assert!(l.try_acquire().is_ok());
        assert!(l.try_acquire().is_err());
        // A quiet second refills the burst, no more.
        tokio::time::advance(Duration::from_secs(1)).await;
        for _ in 0..3 {
            assert!(l.try_acquire().is_ok());
        }
        assert!(l.try_acquire().is_err());
    }

    #[test]
    fn bad_options_name_their_field() {
        let err = RateLimiter::new(0, Duration::ZERO)
            .burst(0)
            .validate()
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            "rate_limit.rate: must be >= 1, got 0; rate_limit.per: must be > 0, got 0ms; rate_limit.burst: must be >= 1, got 0"
        );
    }
}
