//! Circuit breakers: stop calling a dependency that keeps failing, then probe it.
//!
//! A breaker watches every attempt (inside the retry loop) and is in one of four
//! [`BreakerState`]s: **closed** (calls pass; outcomes are counted), **open** (calls are
//! refused with [`ErrorKind::CircuitOpen`](crate::ErrorKind::CircuitOpen) without running, until the
//! break ends), **half-open** (exactly `half_open_calls` probes are let through; their results
//! close or reopen it) and **isolated** (held open by hand until [`Breaker::reset`]).
//!
//! When it opens ([`BreakerKind`]):
//! - [`Consecutive`](BreakerKind::Consecutive): after N failures in a row (the "standard"
//!   breaker; [`BreakerOptions::default`] is 5 failures and a 30 s break);
//! - [`FailureRate`](BreakerKind::FailureRate): when the failure rate (or the slow-call rate)
//!   over the last N calls or the last T seconds reaches a threshold, once `min_calls` calls
//!   are in the window (Hystrix, resilience4j);
//! - [`Adaptive`](BreakerKind::Adaptive): after N failures in a row, N moving between a base
//!   and a max with the error rate over a window: tolerant after a healthy stretch, strict
//!   when the dependency has been failing;
//! - [`NoOp`](BreakerKind::NoOp): never.
//!
//! Which outcomes are failures comes from the classifier: by default a retryable failure, an
//! abort and a timed-out attempt count, a non-retryable one (a 404, bad input: the dependency
//! answered) does not ([`Failures`]).
//!
//! A closed breaker costs a few atomic operations per attempt: no lock, no allocation. Locks
//! are taken only on the way to another state.
//!
//! # Example
//! ```
//! use std::time::Duration;
//! use steadfast::{breaker::{Breaker, BreakerState}, ErrorKind, Retry};
//!
//! # #[tokio::main(flavor = "current_thread", start_paused = true)]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let breaker = Breaker::consecutive(3).break_duration(Duration::from_secs(5)).build()?;
//! let retry = Retry::immediate().max_attempts(5).build()?;
//!
//! // Three failures in a row open it: the fourth attempt is refused without running.
//! let mut runs = 0;
//! let err = retry.call(|| { runs += 1; async { Err::<(), _>("down") } }).breaker(&breaker).run().await.unwrap_err();
//! assert!(matches!(err.kind(), ErrorKind::CircuitOpen { attempts: 3, .. }));
//! assert_eq!((runs, breaker.state()), (3, BreakerState::Open));
//!
//! // After the break one probe goes through; its success closes the breaker.
//! tokio::time::advance(Duration::from_secs(5)).await;
//! let ok = retry.call(|| async { Ok::<_, ()>(7) }).breaker(&breaker).run().await;
//! assert_eq!((ok.unwrap(), breaker.state()), (7, BreakerState::Closed));
//! # Ok(()) }
//! ```

#[cfg(feature = "serde")]
mod file;
mod state;
mod window;

pub(crate) use state::ClosedTicket;
pub use state::{Breaker, BreakerState, Open, Permit, Transition};

use std::time::Duration;

use crate::classify::Outcome;
use crate::config::{ConfigError, NotApplied, Problems, fmt_duration};

/// The default break: how long an opened breaker refuses calls before probing.
pub const DEFAULT_BREAK: Duration = Duration::from_secs(30);
/// The default failures in a row that open a consecutive breaker.
pub const DEFAULT_THRESHOLD: u32 = 5;
/// The default time a half-open probe may take before its slot is given to another call.
pub const DEFAULT_PROBE_TIMEOUT: Duration = Duration::from_secs(60);

/// When a breaker opens.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum BreakerKind {
    /// Never: always closed.
    NoOp,
    /// After `threshold` failures in a row.
    Consecutive {
        /// Failures in a row that open it (>= 1).
        threshold: u32,
    },
    /// When the failure rate, or the slow-call rate, over the window reaches its threshold.
    FailureRate {
        /// Failure rate that opens it, in (0, 1]: 0.5 opens at 50 %.
        threshold: f64,
        /// Which calls the rate is over.
        window: Window,
        /// Calls the window must hold before the rate may open it.
        min_calls: u32,
        /// Calls slower than a duration counted apart, with their own threshold.
        slow: Option<SlowCalls>,
    },
    /// After N failures in a row, N between `base` and `max`: `max` when the error rate over
    /// `window` is 0, `base` when it is 100 %, in proportion between.
    Adaptive {
        /// The strictest threshold (>= 1).
        base: u32,
        /// The most tolerant threshold (>= base).
        max: u32,
        /// The span the error rate is measured over.
        window: Duration,
    },
}

/// The calls a failure rate is computed over.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Window {
    /// The last N calls (resilience4j's count-based window).
    Calls(u32),
    /// The calls of the last `length`, in `buckets` slices that expire one at a time
    /// (Hystrix's rolling window: 10 s in 10 buckets).
    Time {
        /// The window's span.
        length: Duration,
        /// How many slices it is counted in (>= 1).
        buckets: u32,
    },
}

impl Window {
    /// The calls of the last `length`, in 10 slices.
    pub const fn time(length: Duration) -> Window {
        Window::Time {
            length,
            buckets: 10,
        }
    }
}

/// Slow calls: an attempt that takes `duration` or longer is slow, and the breaker opens when
/// the share of slow calls in the window reaches `threshold` (resilience4j's slow-call rate).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SlowCalls {
    /// How long an attempt may take before it counts as slow.
    pub duration: Duration,
    /// Slow-call rate that opens it, in (0, 1].
    pub threshold: f64,
}

/// Which outcomes a breaker counts as failures; every other outcome is a success.
///
/// ```
/// use steadfast::{breaker::Failures, Outcome};
///
/// assert!(Failures::default().counts(&Outcome::RETRYABLE));
/// assert!(!Failures::default().counts(&Outcome::NonRetryable)); // the dependency answered
/// assert!(Failures::ALL.counts(&Outcome::NonRetryable));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Failures {
    /// Retryable failures (default true).
    pub retryable: bool,
    /// Non-retryable failures (default false).
    pub non_retryable: bool,
    /// Aborts (default true).
    pub abort: bool,
    /// Attempts that ran out of time (default true).
    pub timeout: bool,
}

impl Failures {
    /// Every failure counts.
    pub const ALL: Failures = Failures {
        retryable: true,
        non_retryable: true,
        abort: true,
        timeout: true,
    };

    /// Whether `outcome` counts as a failure.
    pub const fn counts(&self, outcome: &Outcome) -> bool {
        match outcome {
            Outcome::Success => false,
            Outcome::Retryable { .. } => self.retryable,
            Outcome::NonRetryable => self.non_retryable,
            Outcome::Abort => self.abort,
        }
    }
}

impl Default for Failures {
    fn default() -> Self {
        Failures {
            retryable: true,
            non_retryable: false,
            abort: true,
            timeout: true,
        }
    }
}

/// A breaker's options: plain data, validated by [`build`](Self::build).
///
/// # Example
/// ```
/// use std::time::Duration;
/// use steadfast::breaker::{Breaker, Window};
///
/// // resilience4j's defaults: the last 100 calls, 50 %, 60 s open, 10 probes.
/// let breaker = Breaker::failure_rate(0.5)
///     .window(Window::Calls(100))
///     .min_calls(100)
///     .break_duration(Duration::from_secs(60))
///     .half_open_calls(10)
///     .build()?;
/// # Ok::<(), steadfast::ConfigError>(())
/// ```
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct BreakerOptions {
    /// When it opens.
    pub kind: BreakerKind,
    /// How long it stays open before probing (the recovery timeout).
    pub break_duration: Duration,
    /// When set, each open in a row doubles the break, up to this; a close starts over.
    pub max_break_duration: Option<Duration>,
    /// Probes let through while half-open (>= 1).
    pub half_open_calls: u32,
    /// How long a probe may run before its slot goes to another call (a probe whose result
    /// never comes, e.g. a hung call; a dropped one frees its slot at once).
    pub probe_timeout: Duration,
    /// Which outcomes count as failures.
    pub failures: Failures,
    /// Setters called that this kind does not use.
    not_applied: NotApplied,
}

impl Default for BreakerOptions {
    fn default() -> Self {
        BreakerOptions::consecutive(DEFAULT_THRESHOLD)
    }
}

impl BreakerOptions {
    fn with_kind(kind: BreakerKind) -> Self {
        BreakerOptions {
            kind,
            break_duration: DEFAULT_BREAK,
            max_break_duration: None,
            half_open_calls: 1,
            probe_timeout: DEFAULT_PROBE_TIMEOUT,
            failures: Failures::default(),
            not_applied: NotApplied::default(),
        }
    }

    /// Opens after `threshold` failures in a row.
    pub fn consecutive(threshold: u32) -> Self {
        BreakerOptions::with_kind(BreakerKind::Consecutive { threshold })
    }

    /// Opens when the failure rate over the last 100 calls reaches `threshold` (0.5 = 50 %),
    /// once 100 calls are in the window; change both with [`window`](Self::window) and
    /// [`min_calls`](Self::min_calls).
    pub fn failure_rate(threshold: f64) -> Self {
        BreakerOptions::with_kind(BreakerKind::FailureRate {
            threshold,
            window: Window::Calls(100),
            min_calls: 100,
            slow: None,
        })
    }

    /// Opens after N failures in a row, N between `base` and `max` with the error rate over the
    /// last minute (see [`BreakerKind::Adaptive`]).
    pub fn adaptive(base: u32, max: u32) -> Self {
        BreakerOptions::with_kind(BreakerKind::Adaptive {
            base,
            max,
            window: Duration::from_secs(60),
        })
    }

    /// Never opens.
    pub fn no_op() -> Self {
        BreakerOptions::with_kind(BreakerKind::NoOp)
    }

    /// The window of a failure-rate breaker (of an adaptive one: its span, a
    /// [`Window::Time`]). A window on another kind, or a count window on an adaptive breaker,
    /// is a problem [`validate`](Self::validate) reports.
    ///
    /// ```
    /// use std::time::Duration;
    /// use steadfast::breaker::{BreakerOptions, Window};
    ///
    /// let err = BreakerOptions::adaptive(5, 20).window(Window::Calls(100)).validate().unwrap_err();
    /// assert_eq!(
    ///     err.to_string(),
    ///     "breaker.window_calls: does not apply here: only failure_rate breakers have it"
    /// );
    /// assert!(BreakerOptions::adaptive(5, 20).window(Window::time(Duration::from_secs(10))).validate().is_ok());
    /// ```
    pub fn window(mut self, w: Window) -> Self {
        match (&mut self.kind, w) {
            (BreakerKind::FailureRate { window, .. }, w) => *window = w,
            (BreakerKind::Adaptive { window, .. }, Window::Time { length, .. }) => *window = length,
            (BreakerKind::Adaptive { .. }, Window::Calls(_)) => {
                self.not_applied
                    .push("window_calls", "failure_rate breakers");
            }
            (_, Window::Calls(_)) => self
                .not_applied
                .push("window_calls", "failure_rate breakers"),
            (_, Window::Time { .. }) => {
                self.not_applied
                    .push("window", "failure_rate and adaptive breakers");
            }
        }
        self
    }

    /// Calls the window must hold before a failure-rate breaker may open (a problem on
    /// another kind).
    pub fn min_calls(mut self, n: u32) -> Self {
        match &mut self.kind {
            BreakerKind::FailureRate { min_calls, .. } => *min_calls = n,
            _ => self.not_applied.push("min_calls", "failure_rate breakers"),
        }
        self
    }

    /// Counts attempts of `duration` or longer as slow; a failure-rate breaker opens when the
    /// slow share reaches `threshold` too (a problem on another kind).
    pub fn slow_calls(mut self, duration: Duration, threshold: f64) -> Self {
        match &mut self.kind {
            BreakerKind::FailureRate { slow, .. } => {
                *slow = Some(SlowCalls {
                    duration,
                    threshold,
                });
            }
            _ => self
                .not_applied
                .push("slow_call_duration", "failure_rate breakers"),
        }
        self
    }

    /// How long it stays open before probing.
    pub fn break_duration(mut self, d: Duration) -> Self {
        self.break_duration = d;
        self
    }

    /// Doubles the break with each open in a row, up to `max`.
    pub fn max_break_duration(mut self, max: Duration) -> Self {
        self.max_break_duration = Some(max);
        self
    }

    /// Probes let through while half-open.
    pub fn half_open_calls(mut self, n: u32) -> Self {
        self.half_open_calls = n;
        self
    }

    /// How long a probe may run before its slot goes to another call.
    pub fn probe_timeout(mut self, d: Duration) -> Self {
        self.probe_timeout = d;
        self
    }

    /// Which outcomes count as failures.
    pub fn failures(mut self, f: Failures) -> Self {
        self.failures = f;
        self
    }

    /// Checks every field; each problem names its field (`breaker.threshold`).
    ///
    /// ```
    /// use steadfast::breaker::BreakerOptions;
    ///
    /// let err = BreakerOptions::failure_rate(1.5).half_open_calls(0).validate().unwrap_err();
    /// assert_eq!(err.to_string(), "breaker.threshold: must be in (0, 1], got 1.5; breaker.half_open_calls: must be >= 1, got 0");
    /// ```
    pub fn validate(&self) -> Result<(), ConfigError> {
        let mut p = Problems::new("breaker");
        self.check(&mut p);
        p.finish()
    }

    pub(crate) fn check(&self, p: &mut Problems<'_>) {
        let rate = |p: &mut Problems<'_>, field: &str, r: f64| {
            if !(r > 0.0 && r <= 1.0) {
                p.push(field, format!("must be in (0, 1], got {r}"));
            }
        };
        let positive = |p: &mut Problems<'_>, field: &str, d: Duration| {
            if d.is_zero() {
                p.push(field, format!("must be > 0, got {}", fmt_duration(d)));
            }
        };
        match &self.kind {
            BreakerKind::NoOp => {}
            BreakerKind::Consecutive { threshold } => {
                if *threshold == 0 {
                    p.push("failure_threshold", "must be >= 1, got 0");
                }
            }
            BreakerKind::FailureRate {
                threshold,
                window,
                slow,
                ..
            } => {
                rate(p, "threshold", *threshold);
                match *window {
                    Window::Calls(0) => p.push("window_calls", "must be >= 1, got 0"),
                    Window::Calls(n) if n > MAX_WINDOW_CALLS => p.push(
                        "window_calls",
                        format!("must hold at most {MAX_WINDOW_CALLS} calls, got {n}"),
                    ),
                    Window::Calls(_) => {}
                    Window::Time { length, buckets } => {
                        positive(p, "window", length);
                        if buckets == 0 || buckets > MAX_BUCKETS {
                            p.push(
                                "buckets",
                                format!("must be in 1..={MAX_BUCKETS}, got {buckets}"),
                            );
                        } else if length.as_nanos() < u128::from(buckets) {
                            p.push("buckets", "a bucket must span at least 1ns");
                        }
                    }
                }
                if let Some(s) = slow {
                    positive(p, "slow_call_duration", s.duration);
                    rate(p, "slow_call_threshold", s.threshold);
                }
            }
            BreakerKind::Adaptive { base, max, window } => {
                if *base == 0 {
                    p.push("base", "must be >= 1, got 0");
                }
                if max < base {
                    p.push("max", format!("must be >= base ({base}), got {max}"));
                }
                positive(p, "window", *window);
            }
        }
        positive(p, "break", self.break_duration);
        if let Some(max) = self.max_break_duration
            && max < self.break_duration
        {
            p.push(
                "max_break",
                format!(
                    "must be >= break ({}), got {}",
                    fmt_duration(self.break_duration),
                    fmt_duration(max)
                ),
            );
        }
        if self.half_open_calls == 0 {
            p.push("half_open_calls", "must be >= 1, got 0");
        }
        positive(p, "probe_timeout", self.probe_timeout);
        self.not_applied.check(p);
    }

    /// Validates the options and makes a breaker.
    pub fn build(self) -> Result<Breaker, ConfigError> {
        Breaker::new(self)
    }

    /// The break after `opens` opens in a row (1 for the first).
    pub(crate) fn break_after(&self, opens: u32) -> Duration {
        match self.max_break_duration {
            None => self.break_duration,
            Some(max) => {
                let doublings = opens.saturating_sub(1).min(63);
                self.break_duration
                    .checked_mul(1u32 << doublings.min(31))
                    .map_or(max, |d| d.min(max))
            }
        }
    }
}

/// The most calls a count window may hold.
pub const MAX_WINDOW_CALLS: u32 = 1_000_000;
/// The most buckets a time window may have.
pub const MAX_BUCKETS: u32 = 1_000;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn break_doubles_up_to_its_max() {
        let o = BreakerOptions::consecutive(1)
            .break_duration(Duration::from_secs(5))
            .max_break_duration(Duration::from_secs(60));
        let breaks: Vec<u64> = (1..=6).map(|n| o.break_after(n).as_secs()).collect();
        assert_eq!(breaks, [5, 10, 20, 40, 60, 60]);
        assert_eq!(o.break_after(10_000).as_secs(), 60);
        let fixed = BreakerOptions::consecutive(1);
        assert_eq!(fixed.break_after(7), DEFAULT_BREAK);
    }

    #[test]
    fn every_bad_field_is_named() {
        let err = BreakerOptions::adaptive(0, 0)
            .break_duration(Duration::ZERO)
            .validate()
            .unwrap_err();
        let fields: Vec<&str> = err.errors().iter().map(|e| e.field()).collect();
        assert_eq!(fields, ["breaker.base", "breaker.break"]);
    }
}
