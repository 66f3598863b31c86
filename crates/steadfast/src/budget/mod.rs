//! Retry budgets: retries and hedges spend from a budget shared across calls (and keys), so
//! retries never turn an outage into a retry storm.
//!
//! The first attempt of a call is never refused by a retry budget; only adaptive throttling
//! refuses first attempts too. A refused retry ends the call with the last error at once
//! ([`Stop::BudgetExhausted`](crate::error::Stop::BudgetExhausted)); a refused hedge is not
//! sent. Nothing ever waits for a budget.
//!
//! | kind | after | rule |
//! |---|---|---|
//! | [`token_bucket`](BudgetOptions::token_bucket) | gRPC `retryThrottling` | a failure costs 1 token, a success earns `token_ratio`; no retry while tokens ≤ max/2 |
//! | [`ratio`](BudgetOptions::ratio) | Finagle, tower | retries ≤ `percent_can_retry` × requests over `ttl`, plus `min_retries_per_sec` |
//! | [`quota`](BudgetOptions::quota) | AWS SDK standard mode | a retry costs 5 (10 after a timeout) from 500; a successful retry refunds it, a first-try success earns 1 |
//! | [`concurrency`](BudgetOptions::concurrency) | Envoy | retries in flight ≤ max(`min`, `percent` × calls in flight) |
//! | [`adaptive`](BudgetOptions::adaptive) | Google SRE book, client-side throttling | refuse any attempt locally with probability max(0, (requests − K·accepts) / (requests + 1)) over 2 minutes |
//!
//! # Example
//! ```
//! use std::time::Duration;
//! use steadfast::budget::BudgetOptions;
//! use steadfast::Retry;
//!
//! # #[tokio::main(flavor = "current_thread", start_paused = true)]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! // One budget for every call to the payments service: clones share it.
//! let budget = BudgetOptions::token_bucket(10.0, 0.1).build()?;
//! let retry = Retry::fixed(Duration::from_millis(10)).max_attempts(3).build()?;
//! let err = retry
//!     .call(|| async { Err::<(), _>("unavailable") })
//!     .budget(&budget)
//!     .run()
//!     .await
//!     .unwrap_err();
//! assert_eq!(err.attempts(), 3); // 10 tokens → 7: still above 5
//! # Ok(()) }
//! ```

#[cfg(feature = "serde")]
mod file;

use std::sync::atomic::{AtomicI64, AtomicU32, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use tokio::time::Instant;

use crate::config::{ConfigError, Problems};

/// Which budget, with its settings. Build it once ([`build`](Self::build)) and share the
/// [`Budget`] (a clone is the same budget).
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum BudgetOptions {
    /// gRPC's retry throttling: tokens start at `max_tokens`; each failed attempt takes 1,
    /// each success gives back `token_ratio`; retries and hedges only while tokens > max/2.
    TokenBucket {
        /// The bucket's size (gRPC: 0 < max ≤ 1000).
        max_tokens: f64,
        /// Tokens a success earns (gRPC: 0 < ratio, three decimals kept).
        token_ratio: f64,
    },
    /// Finagle's and tower's budget: over the last `ttl`, retries may be `percent_can_retry`
    /// of the calls made, plus a reserve of `min_retries_per_sec` × `ttl`.
    Ratio {
        /// The share of calls that may be retried (0.2 = 20 %).
        percent_can_retry: f64,
        /// How long a call's deposit (and a retry's withdrawal) counts.
        ttl: Duration,
        /// Retries allowed per second however few calls there are.
        min_retries_per_sec: u32,
    },
    /// The AWS SDKs' standard retry quota: a retry costs `retry_cost` (`timeout_cost` after a
    /// timeout) out of `capacity`; a retry that succeeds refunds its cost, a call that succeeds
    /// at its first try earns 1 (up to `capacity`).
    Quota {
        /// Units at the start, and at most.
        capacity: u32,
        /// What a retry after an error costs.
        retry_cost: u32,
        /// What a retry after a timeout costs.
        timeout_cost: u32,
    },
    /// Envoy's retry budget: retries (and hedges) in flight at most max(`min`, `percent` ×
    /// calls in flight).
    Concurrency {
        /// Retries in flight always allowed.
        min: u32,
        /// The share of calls in flight that may be retries at once (0.2 = 20 %).
        percent: f64,
    },
    /// Client-side adaptive throttling (Google SRE book, "Handling Overload"): every attempt,
    /// first ones included, is refused locally with probability
    /// max(0, (requests − k × accepts) / (requests + 1)) over the last `window`.
    ///
    /// `requests` counts every attempt the caller wanted (refused ones too); `accepts` the
    /// attempts the backend accepted: successes, and failures that are not retryable (the
    /// backend did the work and said no), but not retryable failures (overload, unavailable).
    Adaptive {
        /// The multiplier (2 by default; lower throttles sooner).
        k: f64,
        /// The window counts are kept over (2 minutes by default).
        window: Duration,
        /// The seed of the random draws (`None`: a random seed).
        seed: Option<u64>,
    },
}

impl BudgetOptions {
    /// gRPC's token bucket (`maxTokens`, `tokenRatio`).
    pub fn token_bucket(max_tokens: f64, token_ratio: f64) -> Self {
        BudgetOptions::TokenBucket {
            max_tokens,
            token_ratio,
        }
    }

    /// A ratio budget: `percent_can_retry` of calls over `ttl`, plus `min_retries_per_sec`.
    pub fn ratio(percent_can_retry: f64, ttl: Duration, min_retries_per_sec: u32) -> Self {
        BudgetOptions::Ratio {
            percent_can_retry,
            ttl,
            min_retries_per_sec,
        }
    }

    /// Finagle's defaults: 20 % over 10 s, plus 10 retries a second.
    pub fn ratio_default() -> Self {
        Self::ratio(0.2, Duration::from_secs(10), 10)
    }

    /// A retry quota (AWS standard: 500, 5, 10).
    pub fn quota(capacity: u32, retry_cost: u32, timeout_cost: u32) -> Self {
        BudgetOptions::Quota {
            capacity,
            retry_cost,
            timeout_cost,
        }
    }

    /// A concurrency budget (Envoy's defaults: 3 and 20 %).
    pub fn concurrency(min: u32, percent: f64) -> Self {
        BudgetOptions::Concurrency { min, percent }
    }

    /// Adaptive throttling with multiplier `k` over 2 minutes.
    pub fn adaptive(k: f64) -> Self {
        BudgetOptions::Adaptive {
            k,
            window: Duration::from_secs(120),
            seed: None,
        }
    }

    /// The same options with the random draws seeded (adaptive throttling only; the others
    /// draw nothing).
    pub fn seed(mut self, value: u64) -> Self {
        if let BudgetOptions::Adaptive { seed, .. } = &mut self {
            *seed = Some(value);
        }
        self
    }

    /// Every problem with these options, each naming its field (`budget.max_tokens`).
    pub fn validate(&self) -> Result<(), ConfigError> {
        let mut p = Problems::new("budget");
        self.check(&mut p);
        p.finish()
    }

    /// Pushes every problem, each under its field's name.
    pub(crate) fn check(&self, p: &mut Problems<'_>) {
        let mut positive = |field: &str, v: f64| {
            if !(v.is_finite() && v > 0.0) {
                p.push(field, format!("must be > 0, got {v}"));
            }
        };
        match *self {
            BudgetOptions::TokenBucket {
                max_tokens,
                token_ratio,
            } => {
                positive("max_tokens", max_tokens);
                positive("token_ratio", token_ratio);
            }
            BudgetOptions::Ratio {
                percent_can_retry,
                ttl,
                ..
            } => {
                positive("percent_can_retry", percent_can_retry);
                positive("ttl", ttl.as_secs_f64());
            }
            BudgetOptions::Quota {
                capacity,
                retry_cost,
                timeout_cost,
            } => {
                positive("capacity", f64::from(capacity));
                positive("retry_cost", f64::from(retry_cost));
                positive("timeout_cost", f64::from(timeout_cost));
            }
            BudgetOptions::Concurrency { percent, .. } => positive("percent", percent),
            BudgetOptions::Adaptive { k, window, .. } => {
                positive("k", k);
                positive("window", window.as_secs_f64());
            }
        }
    }

    /// The budget, its state fresh.
    pub fn build(self) -> Result<Budget, ConfigError> {
        self.validate()?;
        Ok(self.build_valid())
    }

    /// The same, for options already validated (a plan's): cannot fail.
    pub(crate) fn build_valid(self) -> Budget {
        let state = match self {
            BudgetOptions::TokenBucket {
                max_tokens,
                token_ratio,
            } => {
                let max = milli(max_tokens);
                State::TokenBucket {
                    tokens: AtomicI64::new(max),
                    max,
                    ratio: milli(token_ratio),
                }
            }
            BudgetOptions::Ratio {
                percent_can_retry,
                ttl,
                min_retries_per_sec,
            } => State::Ratio {
                percent: percent_can_retry,
                reserve: f64::from(min_retries_per_sec) * ttl.as_secs_f64(),
                slots: Mutex::new(Slots::new(ttl)),
            },
            BudgetOptions::Quota {
                capacity,
                retry_cost,
                timeout_cost,
            } => State::Quota {
                left: AtomicI64::new(i64::from(capacity)),
                capacity: i64::from(capacity),
                retry_cost,
                timeout_cost,
            },
            BudgetOptions::Concurrency { min, percent } => State::Concurrency {
                min,
                percent,
                calls: AtomicU32::new(0),
                retries: AtomicU32::new(0),
            },
            BudgetOptions::Adaptive { k, window, seed } => State::Adaptive {
                k,
                slots: Mutex::new((
                    Slots::new(window),
                    seed.map_or_else(fastrand::Rng::new, fastrand::Rng::with_seed),
                )),
            },
        };
        Budget {
            inner: Arc::new(Inner {
                options: self,
                state,
            }),
        }
    }
}

/// Tokens in thousandths (gRPC keeps three decimals).
fn milli(v: f64) -> i64 {
    (v * 1000.0).round() as i64
}

/// A retry budget, shared by every clone. See the [module](self) for the kinds.
#[derive(Debug, Clone)]
pub struct Budget {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    options: BudgetOptions,
    state: State,
}

#[derive(Debug)]
enum State {
    TokenBucket {
        tokens: AtomicI64,
        max: i64,
        ratio: i64,
    },
    Ratio {
        percent: f64,
        reserve: f64,
        slots: Mutex<Slots>,
    },
    Quota {
        left: AtomicI64,
        capacity: i64,
        retry_cost: u32,
        timeout_cost: u32,
    },
    Concurrency {
        min: u32,
        percent: f64,
        calls: AtomicU32,
        retries: AtomicU32,
    },
    Adaptive {
        k: f64,
        slots: Mutex<(Slots, fastrand::Rng)>,
    },
}

/// How an attempt ended, for a budget.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Verdict {
    Success,
    /// A failure the classifier would retry.
    Retryable,
    /// A failure the backend answered for good (not retryable, or abort).
    Final,
    TimedOut,
}

/// What a retry or hedge took from the budget, until its attempt ends.
#[derive(Debug)]
pub(crate) struct Spent<'a> {
    budget: &'a Budget,
    cost: u32,
}

impl Drop for Spent<'_> {
    fn drop(&mut self) {
        if let State::Concurrency { retries, .. } = &self.budget.inner.state {
            retries.fetch_sub(1, Ordering::AcqRel);
        }
    }
}

/// A call in flight, for the concurrency budget.
#[derive(Debug)]
pub(crate) struct InFlight<'a>(&'a Budget);

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        if let State::Concurrency { calls, .. } = &self.0.inner.state {
            calls.fetch_sub(1, Ordering::AcqRel);
        }
    }
}

/// A budget's state, as [`Budget::snapshot`] reads it.
#[derive(Debug, Clone, Copy, PartialEq)]
#[non_exhaustive]
pub enum BudgetSnapshot {
    /// Tokens left (token bucket).
    Tokens(f64),
    /// Retries the budget would allow now (ratio).
    Balance(f64),
    /// Units left (quota).
    Quota(i64),
    /// Calls and retries in flight (concurrency).
    InFlight {
        /// Calls in flight.
        calls: u32,
        /// Retries and hedges in flight.
        retries: u32,
    },
    /// The window's counts and the current refusal probability (adaptive).
    Adaptive {
        /// Attempts wanted.
        requests: f64,
        /// Attempts the backend accepted.
        accepts: f64,
        /// The probability an attempt is refused now.
        reject_probability: f64,
    },
}

impl Budget {
    /// The options it was built from.
    pub fn options(&self) -> &BudgetOptions {
        &self.inner.options
    }

    /// Its state now.
    ///
    /// ```
    /// use steadfast::budget::{BudgetOptions, BudgetSnapshot};
    ///
    /// let budget = BudgetOptions::quota(500, 5, 10).build().unwrap();
    /// assert_eq!(budget.snapshot(), BudgetSnapshot::Quota(500));
    /// ```
    pub fn snapshot(&self) -> BudgetSnapshot {
        match &self.inner.state {
            State::TokenBucket { tokens, .. } => {
                BudgetSnapshot::Tokens(tokens.load(Ordering::Acquire) as f64 / 1000.0)
            }
            State::Ratio {
                percent,
                reserve,
                slots,
            } => BudgetSnapshot::Balance(lock(slots).balance_now(*percent, *reserve)),
            State::Quota { left, .. } => BudgetSnapshot::Quota(left.load(Ordering::Acquire)),
            State::Concurrency { calls, retries, .. } => BudgetSnapshot::InFlight {
                calls: calls.load(Ordering::Acquire),
                retries: retries.load(Ordering::Acquire),
            },
            State::Adaptive { k, slots } => {
                let mut guard = lock(slots);
                guard.0.advance(Instant::now());
                let (requests, accepts) = guard.0.sums();
                BudgetSnapshot::Adaptive {
                    requests,
                    accepts,
                    reject_probability: reject_probability(requests, accepts, *k),
                }
            }
        }
    }

    /// A call begins: counted where the budget counts calls; adaptive throttling may refuse
    /// it (`Err`: the probability it refused with).
    pub(crate) fn call_started(&self) -> Result<InFlight<'_>, f64> {
        match &self.inner.state {
            State::Ratio { slots, .. } => {
                let mut s = lock(slots);
                s.advance(Instant::now());
                s.current().0 += 1.0;
            }
            State::Concurrency { calls, .. } => {
                calls.fetch_add(1, Ordering::AcqRel);
            }
            State::Adaptive { .. } => self.throttle()?,
            _ => {}
        }
        Ok(InFlight(self))
    }

    /// Asks for a retry (or a hedge) after a failure (`after_timeout`: the failure was a
    /// timeout); `None` refuses it.
    pub(crate) fn try_spend(&self, after_timeout: bool) -> Option<Spent<'_>> {
        let cost = match &self.inner.state {
            State::TokenBucket { tokens, max, .. } => {
                if tokens.load(Ordering::Acquire) * 2 <= *max {
                    return None;
                }
                0
            }
            State::Ratio {
                percent,
                reserve,
                slots,
            } => {
                let mut s = lock(slots);
                if s.balance_now(*percent, *reserve) < 1.0 {
                    return None;
                }
                s.current().1 += 1.0;
                0
            }
            State::Quota {
                left,
                retry_cost,
                timeout_cost,
                ..
            } => {
                let cost = if after_timeout {
                    *timeout_cost
                } else {
                    *retry_cost
                };
                let c = i64::from(cost);
                left.fetch_update(Ordering::AcqRel, Ordering::Acquire, |l| {
                    (l >= c).then_some(l - c)
                })
                .ok()?;
                cost
            }
            State::Concurrency {
                min,
                percent,
                calls,
                retries,
            } => {
                let active = f64::from(calls.load(Ordering::Acquire));
                let allowed = (*min).max((percent * active).ceil() as u32);
                retries
                    .fetch_update(Ordering::AcqRel, Ordering::Acquire, |r| {
                        (r < allowed).then_some(r + 1)
                    })
                    .ok()?;
                0
            }
            State::Adaptive { .. } => {
                self.throttle().ok()?;
                0
            }
        };
        Some(Spent { budget: self, cost })
    }

    /// An attempt ended; `spent` is what its retry or hedge took (none for a first attempt).
    pub(crate) fn attempt_ended(&self, verdict: Verdict, spent: Option<Spent<'_>>) {
        match &self.inner.state {
            State::TokenBucket { tokens, max, ratio } => {
                let delta = match verdict {
                    Verdict::Success => *ratio,
                    Verdict::Retryable | Verdict::TimedOut => -1000,
                    Verdict::Final => 0,
                };
                if delta != 0 {
                    let _ = tokens.fetch_update(Ordering::AcqRel, Ordering::Acquire, |t| {
                        Some((t + delta).clamp(0, *max))
                    });
                }
            }
            State::Quota { left, capacity, .. } if verdict == Verdict::Success => {
                let earn = spent.as_ref().map_or(1, |s| i64::from(s.cost));
                let _ = left.fetch_update(Ordering::AcqRel, Ordering::Acquire, |l| {
                    Some((l + earn).min(*capacity))
                });
            }
            State::Adaptive { slots, .. }
                if matches!(verdict, Verdict::Success | Verdict::Final) =>
            {
                let mut guard = lock(slots);
                guard.0.advance(Instant::now());
                guard.0.current().1 += 1.0;
            }
            _ => {}
        }
        drop(spent);
    }

    /// Counts an attempt wanted and draws whether adaptive throttling lets it through; a
    /// refusal carries the probability it was drawn with.
    fn throttle(&self) -> Result<(), f64> {
        let State::Adaptive { k, slots } = &self.inner.state else {
            return Ok(());
        };
        let mut guard = lock(slots);
        let (window, rng) = &mut *guard;
        window.advance(Instant::now());
        window.current().0 += 1.0;
        let (requests, accepts) = window.sums();
        let p = reject_probability(requests, accepts, *k);
        if p <= 0.0 || rng.f64() >= p {
            Ok(())
        } else {
            Err(p)
        }
    }
}

fn reject_probability(requests: f64, accepts: f64, k: f64) -> f64 {
    ((requests - k * accepts) / (requests + 1.0)).max(0.0)
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Two counts over a sliding window, in [`SLOTS`] slots: the window slides a slot at a time.
#[derive(Debug)]
struct Slots {
    slot: Duration,
    /// When the current slot began.
    since: Option<Instant>,
    /// The current slot is `counts[at]`.
    at: usize,
    counts: [(f64, f64); SLOTS],
}

/// Slots per window.
const SLOTS: usize = 20;

impl Slots {
    fn new(window: Duration) -> Self {
        Slots {
            slot: (window / SLOTS as u32).max(Duration::from_millis(1)),
            since: None,
            at: 0,
            counts: [(0.0, 0.0); SLOTS],
        }
    }

    /// Moves the window to `now`, clearing the slots that fell out of it.
    fn advance(&mut self, now: Instant) {
        let Some(since) = self.since else {
            self.since = Some(now);
            return;
        };
        let passed = (now.saturating_duration_since(since).as_nanos() / self.slot.as_nanos())
            .min(SLOTS as u128) as usize;
        for _ in 0..passed {
            self.at = (self.at + 1) % SLOTS;
            self.counts[self.at] = (0.0, 0.0);
        }
        if passed == SLOTS {
            self.since = Some(now);
        } else {
            self.since = Some(since + self.slot * passed as u32);
        }
    }

    fn current(&mut self) -> &mut (f64, f64) {
        &mut self.counts[self.at]
    }

    fn sums(&self) -> (f64, f64) {
        self.counts
            .iter()
            .fold((0.0, 0.0), |(a, b), (x, y)| (a + x, b + y))
    }

    /// Ratio budget, as of now: the reserve plus `percent` of the calls deposited, less the
    /// retries withdrawn.
    fn balance_now(&mut self, percent: f64, reserve: f64) -> f64 {
        self.advance(Instant::now());
        let (calls, retries) = self.sums();
        reserve + percent * calls - retries
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_bucket_refuses_at_half_and_refills_with_successes() {
        let b = BudgetOptions::token_bucket(10.0, 0.1).build().unwrap();
        for _ in 0..4 {
            b.attempt_ended(Verdict::Retryable, None);
        }
        assert!(b.try_spend(false).is_some(), "6 > 5");
        b.attempt_ended(Verdict::Retryable, None);
        assert!(b.try_spend(false).is_none(), "5 ≤ 5");
        for _ in 0..10 {
            b.attempt_ended(Verdict::Success, None);
        }
        assert_eq!(b.snapshot(), BudgetSnapshot::Tokens(6.0));
        assert!(b.try_spend(false).is_some());
    }

    #[test]
    fn quota_charges_timeouts_more_and_refunds_a_successful_retry() {
        let b = BudgetOptions::quota(12, 5, 10).build().unwrap();
        let s = b.try_spend(true).unwrap();
        assert_eq!(b.snapshot(), BudgetSnapshot::Quota(2));
        assert!(b.try_spend(false).is_none());
        b.attempt_ended(Verdict::Success, Some(s));
        assert_eq!(b.snapshot(), BudgetSnapshot::Quota(12));
    }

    #[tokio::test(start_paused = true)]
    async fn ratio_allows_its_share_of_calls_plus_the_reserve_then_forgets_after_ttl() {
        let b = BudgetOptions::ratio(0.2, Duration::from_secs(10), 1)
            .build()
            .unwrap();
        for _ in 0..100 {
            let _ = b.call_started();
        }
        let granted = (0..100).filter_map(|_| b.try_spend(false)).count();
        assert_eq!(granted, 30, "20 % of 100 calls plus 1/s × 10 s");
        tokio::time::advance(Duration::from_secs(11)).await;
        let granted = (0..100).filter_map(|_| b.try_spend(false)).count();
        assert_eq!(granted, 10, "the reserve alone");
    }

    #[test]
    fn concurrency_counts_retries_in_flight_against_calls_in_flight() {
        let b = BudgetOptions::concurrency(1, 0.2).build().unwrap();
        let calls: Vec<_> = (0..10).map(|_| b.call_started().unwrap()).collect();
        let a = b.try_spend(false).unwrap();
        let c = b.try_spend(false).unwrap();
        assert!(b.try_spend(false).is_none(), "2 of 10 in flight");
        drop(a);
        assert!(b.try_spend(false).is_some());
        drop((c, calls));
    }

    #[tokio::test(start_paused = true)]
    async fn adaptive_refuses_the_share_the_backend_does_not_accept() {
        let b = BudgetOptions::adaptive(2.0).seed(7).build().unwrap();
        let (mut sent, mut accepted) = (0u32, 0u32);
        // The expectation: call n is sent with probability 1 − p(n), p = (n − 2·accepts)/(n + 1),
        // and accepted when it is sent and n is a multiple of 5.
        let (mut expected_sent, mut expected_accepts) = (0.0, 0.0);
        for i in 0..10_000 {
            let p = reject_probability(f64::from(i + 1), expected_accepts, 2.0);
            expected_sent += 1.0 - p;
            if i % 5 == 0 {
                expected_accepts += 1.0 - p;
            }
            if b.call_started().is_ok() {
                sent += 1;
                // The backend accepts one attempt in five of those wanted.
                let verdict = if i % 5 == 0 {
                    accepted += 1;
                    Verdict::Success
                } else {
                    Verdict::Retryable
                };
                b.attempt_ended(verdict, None);
            }
        }
        let BudgetSnapshot::Adaptive {
            requests,
            accepts,
            reject_probability: p,
        } = b.snapshot()
        else {
            unreachable!()
        };
        // Every call is a request, accepted or not; the probability is the SRE book's.
        assert_eq!((requests, accepts), (10_000.0, f64::from(accepted)));
        assert_eq!(p, (10_000.0 - 2.0 * accepts) / 10_001.0);
        // About 97 sent (19 accepted): refusing grows as accepts fall behind requests.
        assert!((96.0..98.0).contains(&expected_sent), "{expected_sent}");
        let sd = expected_sent.sqrt();
        assert!(
            (f64::from(sent) - expected_sent).abs() < 3.0 * sd,
            "sent {sent}, expected {expected_sent:.1} ± {sd:.1}"
        );
        assert!(p > 0.99, "{p}");
    }

    #[test]
    fn bad_options_name_their_field() {
        let err = BudgetOptions::token_bucket(0.0, 0.1).build().unwrap_err();
        assert_eq!(err.to_string(), "budget.max_tokens: must be > 0, got 0");
        let err = BudgetOptions::ratio(0.2, Duration::ZERO, 10)
            .build()
            .unwrap_err();
        assert_eq!(err.errors()[0].field(), "budget.ttl");
    }
}
