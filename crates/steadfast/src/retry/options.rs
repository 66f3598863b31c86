use std::time::Duration;

use crate::backoff::{BackoffKind, BackoffOptions, DelayArgs, Jitter};
use crate::config::{ConfigError, Problems, fmt_duration};

/// Default number of attempts, the first included: 3.
pub const DEFAULT_MAX_ATTEMPTS: u32 = 3;
/// Default longest server-given delay (`Retry-After`, pushback) the policy waits: 5 minutes
/// (Envoy's default for rate-limited retry back-off). A longer request stops retrying.
pub const DEFAULT_MAX_SERVER_DELAY: Duration = Duration::from_secs(300);

/// A retry policy as plain data, and its builder.
///
/// Every setter takes and returns `self`; [`build`](Self::build) validates all fields at once
/// and compiles a [`Retry`]. Give `max_attempts` (attempts in total, the first included) or
/// `max_retries` (retries after the first; negative means unbounded, bounded only by
/// `total_timeout` or the caller), never both.
///
/// # Defaults
/// | field | default |
/// |---|---|
/// | `max_attempts` | [`DEFAULT_MAX_ATTEMPTS`] (3) |
/// | `backoff` | exponential, 100 ms base, ×2, 10 s max, full jitter ([`BackoffOptions`]) |
/// | `attempt_timeout` | none |
/// | `total_timeout` | none |
/// | `max_server_delay` | [`DEFAULT_MAX_SERVER_DELAY`] (5 min) |
/// | `retry_on_timeout` | `true` (an attempt that timed out is retried) |
/// | `seed` | none (random jitter) |
///
/// # Example
/// ```
/// use std::time::Duration;
/// use steadfast::{Jitter, Retry};
///
/// let retry = Retry::exponential(Duration::from_millis(100))
///     .max_attempts(5)
///     .max_delay(Duration::from_secs(10))
///     .jitter(Jitter::Full)
///     .attempt_timeout(Duration::from_secs(2))
///     .total_timeout(Duration::from_secs(30))
///     .build()?;
/// assert_eq!(retry.max_attempts(), Some(5));
///
/// let err = Retry::exponential(Duration::ZERO)
///     .max_delay(Duration::from_millis(1))
///     .max_attempts(3)
///     .max_retries(2)
///     .build()
///     .unwrap_err();
/// assert_eq!(
///     err.to_string(),
///     "retry.max_retries: cannot be given together with max_attempts; retry.base: must be > 0, got 0ms"
/// );
/// # Ok::<(), steadfast::ConfigError>(())
/// ```
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct RetryOptions {
    /// Attempts in total, the first included (≥ 1).
    pub max_attempts: Option<u32>,
    /// Retries after the first attempt; negative means unbounded.
    pub max_retries: Option<i64>,
    /// The delay schedule.
    pub backoff: BackoffOptions,
    /// Time limit of each attempt.
    pub attempt_timeout: Option<Duration>,
    /// Time limit of the whole call, every attempt and sleep included.
    pub total_timeout: Option<Duration>,
    /// The longest server-given delay to wait; a longer one stops retrying (or, with
    /// `cap_server_delay`, is waited for only this long).
    pub max_server_delay: Duration,
    /// Whether a server delay over `max_server_delay` is cut to it (`true`) or ends the call
    /// with [`Stop::ServerDelayTooLong`](crate::Stop::ServerDelayTooLong) (`false`, the
    /// default: a server that asks for an hour is not called back sooner).
    pub cap_server_delay: bool,
    /// Whether an attempt that timed out may be retried.
    pub retry_on_timeout: bool,
    /// Seed for the jitter's random source (tests, simulations): a run is then reproducible,
    /// and each call of the policy still draws its own stream.
    pub seed: Option<u64>,
}

impl Default for RetryOptions {
    fn default() -> Self {
        RetryOptions::from_backoff(BackoffOptions::DEFAULT)
    }
}

impl RetryOptions {
    pub(crate) const fn from_backoff(backoff: BackoffOptions) -> Self {
        RetryOptions {
            max_attempts: None,
            max_retries: None,
            backoff,
            attempt_timeout: None,
            total_timeout: None,
            max_server_delay: DEFAULT_MAX_SERVER_DELAY,
            cap_server_delay: false,
            retry_on_timeout: true,
            seed: None,
        }
    }

    /// Attempts in total, the first included.
    pub fn max_attempts(mut self, n: u32) -> Self {
        self.max_attempts = Some(n);
        self
    }

    /// Retries after the first attempt; negative means unbounded.
    pub fn max_retries(mut self, n: i64) -> Self {
        self.max_retries = Some(n);
        self
    }

    /// No limit on attempts: retry until `total_timeout`, a non-retryable failure, or the
    /// caller drops the call. The same as `max_retries(-1)`.
    pub fn unbounded(self) -> Self {
        self.max_retries(-1)
    }

    /// The first delay.
    pub fn base(mut self, base: Duration) -> Self {
        self.backoff.base = base;
        self
    }

    /// The cap on every computed delay.
    pub fn max_delay(mut self, max: Duration) -> Self {
        self.backoff.max = max;
        self
    }

    /// The growth factor (makes the backoff exponential).
    pub fn factor(mut self, factor: f64) -> Self {
        self.backoff.kind = BackoffKind::Exponential { factor };
        self
    }

    /// The jitter mode.
    pub fn jitter(mut self, jitter: Jitter) -> Self {
        self.backoff.jitter = jitter;
        self
    }

    /// Replaces the whole backoff schedule.
    pub fn backoff(mut self, backoff: BackoffOptions) -> Self {
        self.backoff = backoff;
        self
    }

    /// Time limit of each attempt.
    pub fn attempt_timeout(mut self, timeout: Duration) -> Self {
        self.attempt_timeout = Some(timeout);
        self
    }

    /// Time limit of the whole call (the overall deadline).
    pub fn total_timeout(mut self, timeout: Duration) -> Self {
        self.total_timeout = Some(timeout);
        self
    }

    /// The longest server-given delay to wait for.
    pub fn max_server_delay(mut self, max: Duration) -> Self {
        self.max_server_delay = max;
        self
    }

    /// Whether a server delay over [`max_server_delay`](Self::max_server_delay) is cut to it
    /// rather than ending the call (the default ends it). Either way the events say so:
    /// [`RetryReason::ServerDelayCapped`](crate::observe::RetryReason::ServerDelayCapped) or a
    /// call finished with [`Stop::ServerDelayTooLong`](crate::Stop::ServerDelayTooLong).
    pub fn cap_server_delay(mut self, cap: bool) -> Self {
        self.cap_server_delay = cap;
        self
    }

    /// Whether an attempt that timed out may be retried.
    pub fn retry_on_timeout(mut self, on: bool) -> Self {
        self.retry_on_timeout = on;
        self
    }

    /// Pins the jitter's random source.
    pub fn seed(mut self, seed: u64) -> Self {
        self.seed = Some(seed);
        self
    }

    /// Checks every field, reporting each problem with its path (`retry.base`).
    pub fn validate(&self) -> Result<(), ConfigError> {
        let mut problems = Problems::new("retry");
        if self.max_attempts == Some(0) {
            problems.push("max_attempts", "must be >= 1, got 0");
        }
        if self.max_attempts.is_some() && self.max_retries.is_some() {
            problems.push("max_retries", "cannot be given together with max_attempts");
        }
        self.backoff.check(&mut problems);
        for (field, value) in [
            ("attempt_timeout", self.attempt_timeout),
            ("total_timeout", self.total_timeout),
        ] {
            if value == Some(Duration::ZERO) {
                problems.push(
                    field,
                    format!("must be > 0, got {}", fmt_duration(Duration::ZERO)),
                );
            }
        }
        problems.finish()
    }

    /// Validates and compiles the policy.
    pub fn build(self) -> Result<Retry, ConfigError> {
        Retry::new(self)
    }
}

/// A compiled retry policy: cheap to clone, shareable, and run with [`run`](Retry::run),
/// [`call`](Retry::call) or their blocking mirrors.
///
/// Build one with the constructors ([`exponential`](Retry::exponential),
/// [`fixed`](Retry::fixed), …), which return [`RetryOptions`] to refine and `build()`.
///
/// # Example
/// ```
/// use std::sync::atomic::{AtomicU32, Ordering};
/// use std::time::Duration;
/// use steadfast::Retry;
///
/// # #[tokio::main(flavor = "current_thread", start_paused = true)]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let retry = Retry::exponential(Duration::from_millis(100)).max_attempts(4).build()?;
/// let calls = AtomicU32::new(0);
/// let value = retry
///     .run(|| async {
///         match calls.fetch_add(1, Ordering::Relaxed) {
///             0 | 1 => Err(std::io::Error::from(std::io::ErrorKind::ConnectionRefused)),
///             _ => Ok(42),
///         }
///     })
///     .await?;
/// assert_eq!((value, calls.load(Ordering::Relaxed)), (42, 3));
/// # Ok(()) }
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct Retry {
    pub(crate) max_attempts: Option<u32>,
    pub(crate) backoff: BackoffOptions,
    pub(crate) attempt_timeout: Option<Duration>,
    pub(crate) total_timeout: Option<Duration>,
    pub(crate) max_server_delay: Duration,
    pub(crate) cap_server_delay: bool,
    pub(crate) retry_on_timeout: bool,
    pub(crate) seed: Option<Seeded>,
    /// Neither timeout is set: the first attempt may run outside the engine (one byte read
    /// on every call, where the two options are two compares).
    pub(crate) untimed: bool,
    /// How many attempts a plain call may make before the engine: all of them when the
    /// backoff is immediate and the call untimed (a retry is then another attempt at once),
    /// else 1.
    pub(crate) at_once: u32,
    /// What each step of the backoff reads, worked out once.
    pub(crate) steps: crate::backoff::Steps,
}

/// A seed and the count of calls that drew from it: call `n` of a policy draws its own stream,
/// derived from the seed and `n`, so a run is reproducible and calls do not jitter in lockstep.
#[derive(Debug, Clone)]
pub(crate) struct Seeded {
    seed: u64,
    calls: std::sync::Arc<std::sync::atomic::AtomicU64>,
}

impl PartialEq for Seeded {
    fn eq(&self, other: &Self) -> bool {
        self.seed == other.seed
    }
}

impl Seeded {
    /// The random source of the next call.
    pub(crate) fn next_rng(&self) -> fastrand::Rng {
        let n = self
            .calls
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        fastrand::Rng::with_seed(crate::backoff::call_seed(self.seed, n))
    }
}

impl Default for Retry {
    fn default() -> Self {
        Retry::DEFAULT
    }
}

impl Retry {
    /// The default policy: 3 attempts, exponential backoff from 100 ms to 10 s, full jitter.
    pub const DEFAULT: Retry = Retry {
        max_attempts: Some(DEFAULT_MAX_ATTEMPTS),
        backoff: BackoffOptions::DEFAULT,
        attempt_timeout: None,
        total_timeout: None,
        max_server_delay: DEFAULT_MAX_SERVER_DELAY,
        cap_server_delay: false,
        retry_on_timeout: true,
        seed: None,
        untimed: true,
        at_once: 1,
        steps: crate::backoff::Steps::of(&BackoffOptions::DEFAULT),
    };

    /// Validates and compiles options.
    pub fn new(options: RetryOptions) -> Result<Retry, ConfigError> {
        options.validate()?;
        let max_attempts = match (options.max_attempts, options.max_retries) {
            (Some(n), _) => Some(n),
            (None, Some(r)) if r < 0 => None,
            (None, Some(r)) => Some(u32::try_from(r).unwrap_or(u32::MAX).saturating_add(1)),
            (None, None) => Some(DEFAULT_MAX_ATTEMPTS),
        };
        let untimed = options.attempt_timeout.is_none() && options.total_timeout.is_none();
        let immediate = matches!(options.backoff.kind, crate::backoff::BackoffKind::Immediate);
        let at_once = match max_attempts {
            Some(n) if untimed && immediate => n.max(1),
            _ => 1,
        };
        Ok(Retry {
            max_attempts,
            attempt_timeout: options.attempt_timeout,
            total_timeout: options.total_timeout,
            max_server_delay: options.max_server_delay,
            cap_server_delay: options.cap_server_delay,
            retry_on_timeout: options.retry_on_timeout,
            seed: options.seed.map(|seed| Seeded {
                seed,
                calls: Default::default(),
            }),
            untimed,
            at_once,
            steps: crate::backoff::Steps::of(&options.backoff),
            backoff: options.backoff,
        })
    }

    /// Options starting from the defaults.
    pub fn builder() -> RetryOptions {
        RetryOptions::default()
    }

    /// No wait between attempts (a zero `base` is a configuration error for every other kind).
    ///
    /// ```
    /// use steadfast::Retry;
    ///
    /// let retry = Retry::immediate().max_attempts(2).build()?;
    /// let err = retry.run_blocking(|| Err::<(), _>("busy")).unwrap_err();
    /// assert_eq!(err.attempts(), 2);
    /// # Ok::<(), steadfast::ConfigError>(())
    /// ```
    pub fn immediate() -> RetryOptions {
        RetryOptions::from_backoff(BackoffOptions::immediate())
    }

    /// Fixed delay: `delay` before every retry.
    pub fn fixed(delay: Duration) -> RetryOptions {
        RetryOptions::from_backoff(BackoffOptions::fixed(delay))
    }

    /// Linear backoff: `base × n`.
    pub fn linear(base: Duration) -> RetryOptions {
        RetryOptions::from_backoff(BackoffOptions::linear(base))
    }

    /// Exponential backoff: `base × 2^(n−1)` (see [`RetryOptions::factor`]).
    pub fn exponential(base: Duration) -> RetryOptions {
        RetryOptions::from_backoff(BackoffOptions::exponential(base))
    }

    /// Fibonacci backoff: `base × fib(n)`.
    pub fn fibonacci(base: Duration) -> RetryOptions {
        RetryOptions::from_backoff(BackoffOptions::fibonacci(base))
    }

    /// Decorrelated jitter: `min(max, uniform(base, prev × 3))`.
    pub fn decorrelated(base: Duration) -> RetryOptions {
        RetryOptions::from_backoff(BackoffOptions::decorrelated(base))
    }

    /// A custom delay function of the retry number and the last outcome; `None` stops.
    ///
    /// ```
    /// use std::time::Duration;
    /// use steadfast::Retry;
    ///
    /// // Retry quickly while the server says it is busy, slowly otherwise.
    /// let retry = Retry::custom(|args| match args.outcome() {
    ///     Some(o) if o.server_delay().is_some() => o.server_delay(),
    ///     _ => Some(Duration::from_millis(250) * args.retry()),
    /// })
    /// .max_attempts(6)
    /// .build()?;
    /// # Ok::<(), steadfast::ConfigError>(())
    /// ```
    pub fn custom(
        f: impl Fn(&DelayArgs<'_>) -> Option<Duration> + Send + Sync + 'static,
    ) -> RetryOptions {
        RetryOptions::from_backoff(BackoffOptions::custom(f))
    }

    /// Attempts in total, or `None` when unbounded.
    pub fn max_attempts(&self) -> Option<u32> {
        self.max_attempts
    }

    /// The delay schedule.
    pub fn backoff(&self) -> &BackoffOptions {
        &self.backoff
    }

    /// Time limit of each attempt.
    pub fn attempt_timeout(&self) -> Option<Duration> {
        self.attempt_timeout
    }

    /// Time limit of the whole call.
    pub fn total_timeout(&self) -> Option<Duration> {
        self.total_timeout
    }

    /// The deadline of a call starting now, if the policy has a total timeout.
    pub(crate) fn deadline_from_now(&self) -> Option<tokio::time::Instant> {
        self.total_timeout.map(|t| tokio::time::Instant::now() + t)
    }
}
