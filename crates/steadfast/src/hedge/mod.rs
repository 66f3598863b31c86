//! Hedging: when an attempt has not answered after a delay, send another and take whichever
//! answers first (Finagle's backup requests, tower's `hedge`, "The Tail at Scale").
//!
//! Only for operations that are safe to run twice at once (idempotent): the call site opts in
//! with [`Call::hedge`](crate::retry::Call::hedge). Within a retry loop each try may hedge:
//! - after the delay with no acceptable result, another attempt starts, up to
//!   `max_hedged_attempts` more;
//! - the first success wins, and every other attempt in flight is dropped at once;
//! - a *non-fatal* failure (one the classifier would retry) starts the next hedge at once;
//! - a *fatal* one (not retryable, or abort) drops the others and ends the try;
//! - when every attempt of the try failed non-fatally, the retry policy decides what follows.
//!
//! The delay is fixed, or latency-aware: the p-th percentile of recent tries' first-attempt
//! latencies (a sliding histogram over `window`, lock-free on record), with a fallback delay
//! until `min_samples` have been seen. A first attempt a hedge beat counts with the time it
//! had run (it would have taken at least that): leaving it out would hide exactly the slow
//! attempts, and the percentile would sink, sending more hedges than it says. Each hedge spends from the call's
//! [budget](crate::budget) like a retry.
//!
//! # Example
//! ```
//! use std::time::Duration;
//! use steadfast::hedge::HedgeOptions;
//! use steadfast::Retry;
//!
//! # #[tokio::main(flavor = "current_thread", start_paused = true)]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let hedge = HedgeOptions::fixed(Duration::from_millis(50)).build()?;
//! let retry = Retry::fixed(Duration::from_millis(100)).max_attempts(2).build()?;
//! let mut sent = 0;
//! let (value, timeline) = retry
//!     .call(|| {
//!         sent += 1;
//!         // The first replica stalls; the hedge, sent at 50 ms, answers in 10 ms.
//!         let latency = if sent == 1 { 1_000 } else { 10 };
//!         async move {
//!             tokio::time::sleep(Duration::from_millis(latency)).await;
//!             Ok::<_, std::io::Error>(sent)
//!         }
//!     })
//!     .hedge(&hedge)
//!     .run_with_timeline()
//!     .await;
//! assert_eq!(value?, 2);
//! assert_eq!(timeline.duration(), Duration::from_millis(60));
//! assert!(timeline.attempts()[1].is_hedge());
//! # Ok(()) }
//! ```

#[cfg(feature = "serde")]
mod file;

pub(crate) mod race;

use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::time::Instant;

use crate::config::{ConfigError, NotApplied, Problems};

/// When a hedge is sent.
#[derive(Debug, Clone, Copy, PartialEq)]
#[non_exhaustive]
pub enum HedgeDelay {
    /// After this long without an acceptable result.
    Fixed(Duration),
    /// After the `percentile`-th percentile of recent first attempts' latencies, once
    /// `min_samples` have been recorded; `fallback` until then.
    Percentile {
        /// 0 < p < 100 (95 for p95).
        percentile: f64,
        /// Samples needed before the percentile is used.
        min_samples: u32,
        /// The delay until then.
        fallback: Duration,
    },
}

/// Hedging's settings. Build once ([`build`](Self::build)) and share the [`Hedge`]: its
/// latency history lives in it.
#[derive(Debug, Clone, PartialEq)]
pub struct HedgeOptions {
    /// When a hedge is sent.
    pub delay: HedgeDelay,
    /// Hedges per try at most, besides the try's first attempt (default 1).
    pub max_hedged_attempts: u32,
    /// How far back latencies count (default 30 s; the histogram keeps between a half and a
    /// whole window).
    pub window: Duration,
    /// Setters called that a fixed delay does not use.
    not_applied: NotApplied,
}

impl HedgeOptions {
    /// Hedge after `delay`.
    pub fn fixed(delay: Duration) -> Self {
        HedgeOptions {
            delay: HedgeDelay::Fixed(delay),
            max_hedged_attempts: 1,
            window: Duration::from_secs(30),
            not_applied: NotApplied::default(),
        }
    }

    /// Hedge at the `percentile`-th percentile of recent latencies (after 100 samples; 10 ms
    /// until then).
    pub fn percentile(percentile: f64) -> Self {
        HedgeOptions {
            delay: HedgeDelay::Percentile {
                percentile,
                min_samples: 100,
                fallback: Duration::from_millis(10),
            },
            max_hedged_attempts: 1,
            window: Duration::from_secs(30),
            not_applied: NotApplied::default(),
        }
    }

    /// At most `n` hedges per try.
    pub fn max_hedged_attempts(mut self, n: u32) -> Self {
        self.max_hedged_attempts = n;
        self
    }

    /// Samples needed before the percentile applies (percentile delays only: on a fixed delay
    /// it is a problem [`validate`](Self::validate) reports).
    ///
    /// ```
    /// use std::time::Duration;
    /// use steadfast::hedge::HedgeOptions;
    ///
    /// let err = HedgeOptions::fixed(Duration::from_millis(50)).min_samples(10).validate().unwrap_err();
    /// assert_eq!(err.to_string(), "hedge.min_samples: does not apply here: only percentile delays have it");
    /// ```
    pub fn min_samples(mut self, n: u32) -> Self {
        match &mut self.delay {
            HedgeDelay::Percentile { min_samples, .. } => *min_samples = n,
            HedgeDelay::Fixed(_) => self.not_applied.push("min_samples", "percentile delays"),
        }
        self
    }

    /// The delay until the percentile applies (percentile delays only, like
    /// [`min_samples`](Self::min_samples)).
    pub fn fallback(mut self, delay: Duration) -> Self {
        match &mut self.delay {
            HedgeDelay::Percentile { fallback, .. } => *fallback = delay,
            HedgeDelay::Fixed(_) => self.not_applied.push("fallback", "percentile delays"),
        }
        self
    }

    /// How far back latencies count.
    pub fn window(mut self, window: Duration) -> Self {
        self.window = window;
        self
    }

    /// Every problem with these options, each naming its field (`hedge.percentile`).
    pub fn validate(&self) -> Result<(), ConfigError> {
        let mut p = Problems::new("hedge");
        self.check(&mut p);
        p.finish()
    }

    /// Pushes every problem, each under its field's name.
    pub(crate) fn check(&self, p: &mut Problems<'_>) {
        if let HedgeDelay::Percentile { percentile, .. } = self.delay
            && !(percentile > 0.0 && percentile < 100.0)
        {
            p.push(
                "percentile",
                format!("must be between 0 and 100 (exclusive), got {percentile}"),
            );
        }
        if self.window.is_zero() {
            p.push("window", "must be > 0, got 0ms");
        }
        self.not_applied.check(p);
    }

    /// The hedge, with an empty latency history.
    pub fn build(self) -> Result<Hedge, ConfigError> {
        self.validate()?;
        Ok(self.build_valid())
    }

    /// The same, for options already validated (a plan's): cannot fail.
    pub(crate) fn build_valid(self) -> Hedge {
        Hedge {
            inner: Arc::new(Inner {
                latencies: Latencies::new(self.window),
                options: self,
            }),
        }
    }
}

/// Hedging for the calls that share it (a clone is the same hedge, with the same history).
#[derive(Debug, Clone)]
pub struct Hedge {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    options: HedgeOptions,
    latencies: Latencies,
}

impl Hedge {
    /// The options it was built from.
    pub fn options(&self) -> &HedgeOptions {
        &self.inner.options
    }

    /// The delay before the next hedge, as of now.
    ///
    /// ```
    /// use std::time::Duration;
    /// use steadfast::hedge::HedgeOptions;
    ///
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() {
    /// let hedge = HedgeOptions::percentile(90.0).min_samples(10).build().unwrap();
    /// assert_eq!(hedge.delay(), Duration::from_millis(10)); // the fallback
    /// for ms in 1..=100 {
    ///     hedge.record(Duration::from_millis(ms));
    /// }
    /// let p90 = hedge.delay().as_secs_f64() * 1000.0;
    /// assert!((86.0..=94.0).contains(&p90), "{p90}");
    /// # }
    /// ```
    pub fn delay(&self) -> Duration {
        match self.inner.options.delay {
            HedgeDelay::Fixed(d) => d,
            HedgeDelay::Percentile {
                percentile,
                min_samples,
                fallback,
            } => self
                .inner
                .latencies
                .percentile(percentile, min_samples)
                .unwrap_or(fallback),
        }
    }

    /// Records a latency (the engine does: each hedged try's first attempt).
    pub fn record(&self, latency: Duration) {
        if matches!(self.inner.options.delay, HedgeDelay::Percentile { .. }) {
            self.inner.latencies.record(latency);
        }
    }
}

/// Sub-buckets per power of two: latencies are kept to within 1/16 (6 %), interpolated.
const SUB: u64 = 16;
const SUB_BITS: u32 = 4;
/// Buckets: exact below `SUB` µs, then `SUB` per power of two up to 2^40 µs (12 days).
const BUCKETS: usize = (SUB + (40 - SUB_BITS as u64) * SUB) as usize;

/// A latency histogram in two halves of a window: records go to the current half, a
/// percentile reads both, and the older half is cleared when a new half begins.
#[derive(Debug)]
struct Latencies {
    half: Duration,
    origin: Instant,
    /// The half-window number the current half belongs to.
    epoch: AtomicU64,
    /// Which of `halves` is current.
    current: AtomicU32,
    halves: [Box<[AtomicU32]>; 2],
    /// Taken only to turn the halves over.
    turning: Mutex<()>,
}

impl Latencies {
    fn new(window: Duration) -> Self {
        let buckets = || {
            (0..BUCKETS)
                .map(|_| AtomicU32::new(0))
                .collect::<Box<[_]>>()
        };
        Latencies {
            half: (window / 2).max(Duration::from_millis(1)),
            origin: Instant::now(),
            epoch: AtomicU64::new(0),
            current: AtomicU32::new(0),
            halves: [buckets(), buckets()],
            turning: Mutex::new(()),
        }
    }

    fn bucket(micros: u64) -> usize {
        if micros < SUB {
            return micros as usize;
        }
        let exp = 63 - micros.leading_zeros(); // ≥ SUB_BITS
        let mantissa = (micros >> (exp - SUB_BITS)) & (SUB - 1);
        let b = SUB + u64::from(exp - SUB_BITS) * SUB + mantissa;
        (b as usize).min(BUCKETS - 1)
    }

    /// The bucket's lower bound and width, in µs.
    fn bounds(bucket: usize) -> (f64, f64) {
        let b = bucket as u64;
        if b < SUB {
            return (b as f64, 1.0);
        }
        let exp = (b - SUB) / SUB + u64::from(SUB_BITS);
        let mantissa = (b - SUB) % SUB;
        let width = 1u64 << (exp - u64::from(SUB_BITS));
        (((SUB + mantissa) * width) as f64, width as f64)
    }

    /// Moves to the half `now` is in, clearing the half that fell out of the window.
    fn turn(&self) -> usize {
        let epoch = (Instant::now()
            .saturating_duration_since(self.origin)
            .as_nanos()
            / self.half.as_nanos()) as u64;
        if self.epoch.load(Ordering::Acquire) != epoch
            && let Ok(_turning) = self.turning.lock()
        {
            let seen = self.epoch.load(Ordering::Acquire);
            if seen != epoch {
                let older = 1 - self.current.load(Ordering::Acquire) as usize;
                self.halves[older]
                    .iter()
                    .for_each(|b| b.store(0, Ordering::Relaxed));
                if epoch > seen + 1 {
                    // More than a half passed: the current half is out of the window too.
                    self.halves[1 - older]
                        .iter()
                        .for_each(|b| b.store(0, Ordering::Relaxed));
                }
                self.current.store(older as u32, Ordering::Release);
                self.epoch.store(epoch, Ordering::Release);
            }
        }
        self.current.load(Ordering::Acquire) as usize
    }

    fn record(&self, latency: Duration) {
        let current = self.turn();
        let micros = u64::try_from(latency.as_micros()).unwrap_or(u64::MAX);
        self.halves[current][Self::bucket(micros)].fetch_add(1, Ordering::Relaxed);
    }

    fn percentile(&self, p: f64, min_samples: u32) -> Option<Duration> {
        self.turn();
        let count = |i: usize| {
            u64::from(self.halves[0][i].load(Ordering::Relaxed))
                + u64::from(self.halves[1][i].load(Ordering::Relaxed))
        };
        let total: u64 = (0..BUCKETS).map(count).sum();
        if total == 0 || total < u64::from(min_samples) {
            return None;
        }
        let rank = p / 100.0 * total as f64;
        let mut below = 0u64;
        for i in 0..BUCKETS {
            let n = count(i);
            if n > 0 && (below + n) as f64 >= rank {
                let (low, width) = Self::bounds(i);
                let within = ((rank - below as f64) / n as f64).clamp(0.0, 1.0);
                return Some(Duration::from_secs_f64((low + within * width) / 1e6));
            }
            below += n;
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_cover_each_value_within_a_sixteenth() {
        for micros in [0u64, 1, 15, 16, 17, 100, 1_000, 4_096, 123_456, 1 << 39] {
            let (low, width) = Latencies::bounds(Latencies::bucket(micros));
            let v = micros as f64;
            assert!(low <= v && v < low + width, "{micros}: {low} + {width}");
            assert!(width <= (v / 16.0).max(1.0), "{micros}: width {width}");
        }
    }

    #[tokio::test(start_paused = true)]
    async fn old_latencies_leave_the_window() {
        let hedge = HedgeOptions::percentile(50.0)
            .min_samples(1)
            .window(Duration::from_secs(10))
            .build()
            .unwrap();
        hedge.record(Duration::from_millis(100));
        tokio::time::advance(Duration::from_secs(6)).await;
        hedge.record(Duration::from_millis(2));
        assert!(hedge.delay() > Duration::from_millis(2), "both count");
        tokio::time::advance(Duration::from_secs(5)).await;
        hedge.record(Duration::from_millis(2));
        let d = hedge.delay();
        assert!(d <= Duration::from_millis(3), "the 100 ms is gone: {d:?}");
    }

    #[test]
    fn a_percentile_out_of_range_names_the_field() {
        let err = HedgeOptions::percentile(100.0).build().unwrap_err();
        assert_eq!(err.errors()[0].field(), "hedge.percentile");
    }
}
