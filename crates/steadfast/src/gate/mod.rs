//! The durable retry gate's vocabulary: which target, under which options, and what the gate
//! decided.
//!
//! Some work is retried over minutes or hours, across restarts and across worker processes:
//! re-processing an entity, re-sending an event. The gate answers, per target
//! `(target_type, target_id)`, "may this be attempted now?", with the reason and when it
//! reopens. The rules, with the defaults:
//!
//! - The first attempt is always allowed. A failure opens a window (30 min) at the time of the
//!   failure; inside a window at most `base_retries` (2) retries are allowed, then the target
//!   cools down until the window ends. A retry made when no window is open opens one.
//! - An **early retry**, asked for explicitly ("retry now"), is granted once the window is
//!   `early_window` (20 min) old, even if its quota is used: one per target until the next
//!   success or reset.
//! - Retries never exceed `max_retries` (5) in total; then the target is exhausted until reset.
//! - A success clears the counters, the window and the early-retry flag.
//!
//! The gate itself, with its stores (memory, SQLite, PostgreSQL), lives in the
//! `steadfast-store` crate; this module holds what the executor and policy files need to name
//! it: [`GateOptions`], [`Target`], [`Decision`], and the [`GateBackend`] trait a store
//! implements so that [`KeyCall::gate`](crate::executor::KeyCall::gate) can go through it.
//!
//! ```
//! use std::time::Duration;
//! use steadfast::gate::GateOptions;
//!
//! let options = GateOptions::default().base_retries(3).base_window(Duration::from_secs(3600));
//! assert!(options.validate().is_ok());
//! assert_eq!(options.max_retries, 5);
//! ```

#[cfg(feature = "serde")]
mod file;
pub(crate) mod step;

pub use step::{GateStep, Gated, NoGate};

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::time::{Duration, SystemTime};

use crate::backoff::{Backoff, BackoffKind, BackoffOptions, Jitter};
use crate::config::{ConfigError, Problems};

/// What a gate keeps records for: a type and an id, e.g. `("order", "42")`.
///
/// ```
/// use steadfast::gate::Target;
///
/// let target = Target::new("order", "42");
/// assert_eq!(target.to_string(), "order/42");
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Target {
    /// The kind of thing (`order`, `invoice`, `webhook`).
    pub target_type: String,
    /// Which one.
    pub target_id: String,
}

impl Target {
    /// A target of `target_type` with `target_id`.
    pub fn new(target_type: impl Into<String>, target_id: impl Into<String>) -> Self {
        Target {
            target_type: target_type.into(),
            target_id: target_id.into(),
        }
    }
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.target_type, self.target_id)
    }
}

/// The gate's rules; see the [module docs](self).
///
/// ```
/// use std::time::Duration;
/// use steadfast::gate::GateOptions;
///
/// let options = GateOptions::default();
/// assert_eq!(options.base_retries, 2);
/// assert_eq!(options.base_window, Duration::from_secs(30 * 60));
/// assert_eq!(options.early_window, Duration::from_secs(20 * 60));
/// ```
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct GateOptions {
    /// Retries allowed inside one window.
    pub base_retries: u32,
    /// How long a window lasts, from the failure (or retry) that opens it.
    pub base_window: Duration,
    /// How old a window must be before an early retry is granted.
    pub early_window: Duration,
    /// Retries in total before the target is exhausted (until reset or success).
    pub max_retries: u32,
    /// A minimum time between attempts: retry `n` waits at least the schedule's `n`th delay
    /// (without jitter) after the previous attempt. None by default.
    pub spacing: Option<BackoffOptions>,
}

impl Default for GateOptions {
    fn default() -> Self {
        GateOptions {
            base_retries: 2,
            base_window: Duration::from_secs(30 * 60),
            early_window: Duration::from_secs(20 * 60),
            max_retries: 5,
            spacing: None,
        }
    }
}

impl GateOptions {
    /// Sets the retries allowed inside one window.
    pub fn base_retries(mut self, n: u32) -> Self {
        self.base_retries = n;
        self
    }

    /// Sets how long a window lasts.
    pub fn base_window(mut self, window: Duration) -> Self {
        self.base_window = window;
        self
    }

    /// Sets how old a window must be before an early retry is granted.
    pub fn early_window(mut self, window: Duration) -> Self {
        self.early_window = window;
        self
    }

    /// Sets the retries allowed in total.
    pub fn max_retries(mut self, n: u32) -> Self {
        self.max_retries = n;
        self
    }

    /// Sets a minimum spacing between attempts from a backoff schedule (jitter is ignored).
    pub fn spacing(mut self, backoff: BackoffOptions) -> Self {
        self.spacing = Some(backoff.jitter(Jitter::None));
        self
    }

    /// Every problem with these options, each naming its field (`gate.base_window`).
    pub fn validate(&self) -> Result<(), ConfigError> {
        let mut p = Problems::new("gate");
        self.check(&mut p);
        p.finish()
    }

    pub(crate) fn check(&self, p: &mut Problems<'_>) {
        if self.base_retries == 0 {
            p.push(
                "base_retries",
                "must be >= 1, got 0 (a window with no retries never reopens; \
                 `max_retries = 0` allows none at all)",
            );
        }
        if self.base_window.is_zero() {
            p.push("base_window", "must be > 0, got 0ms");
        }
        if self.early_window > self.base_window {
            p.push(
                "early_window",
                format!(
                    "must not be longer than base_window ({:?}), got {:?}",
                    self.base_window, self.early_window
                ),
            );
        }
        if let Some(spacing) = &self.spacing {
            if matches!(spacing.kind, BackoffKind::Custom(_)) {
                p.push(
                    "spacing",
                    "a custom delay function cannot be stored with a gate record",
                );
            } else if let Err(e) = spacing.validate() {
                for field in e.errors() {
                    let name = field
                        .field()
                        .strip_prefix("retry.")
                        .unwrap_or(field.field());
                    p.push(&format!("spacing.{name}"), field.message());
                }
            }
        }
    }

    /// The least time retry `retry` (1-based) must wait after the previous attempt: the
    /// spacing schedule's `retry`th delay without jitter, or zero without spacing.
    ///
    /// ```
    /// use std::time::Duration;
    /// use steadfast::{BackoffOptions, gate::GateOptions};
    ///
    /// let hour = Duration::from_secs(3600);
    /// let options = GateOptions::default().spacing(BackoffOptions::exponential(Duration::from_secs(60)).max(hour));
    /// assert_eq!(options.spacing_before(1), Duration::from_secs(60));
    /// assert_eq!(options.spacing_before(3), Duration::from_secs(240));
    /// ```
    pub fn spacing_before(&self, retry: u32) -> Duration {
        let Some(spacing) = &self.spacing else {
            return Duration::ZERO;
        };
        let Ok(schedule) = Backoff::new(spacing.clone().jitter(Jitter::None)) else {
            return Duration::ZERO;
        };
        // Saturating schedules reach `max` quickly; the walk is bounded by `max_retries`.
        schedule
            .with_seed(0)
            .take(retry.max(1) as usize)
            .last()
            .unwrap_or(Duration::ZERO)
    }
}

/// Why the gate decided as it did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Reason {
    /// No attempt since the last success or reset: always allowed.
    FirstAttempt,
    /// A retry inside the window's quota (or the one that opens a new window).
    WithinQuota,
    /// The early retry, asked for and granted.
    EarlyRetryGranted,
    /// The window's quota is used (or spacing applies): wait until `next_allowed_at`.
    CoolingDown,
    /// An early retry was asked for, but this target has had its one.
    EarlyAlreadyUsed,
    /// `max_retries` are used: nothing more until a reset.
    Exhausted,
    /// The gate's store could not be reached, or no store is configured (the call fails
    /// closed).
    Unavailable,
}

impl Reason {
    /// The reason as a word, as the CLI and JSON show it (`cooling_down`).
    pub fn as_str(self) -> &'static str {
        match self {
            Reason::FirstAttempt => "first_attempt",
            Reason::WithinQuota => "within_quota",
            Reason::EarlyRetryGranted => "early_retry_granted",
            Reason::CoolingDown => "cooling_down",
            Reason::EarlyAlreadyUsed => "early_already_used",
            Reason::Exhausted => "exhausted",
            Reason::Unavailable => "unavailable",
        }
    }
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The gate's answer for one target at one moment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    /// Whether an attempt may be made now.
    pub allowed: bool,
    /// Why.
    pub reason: Reason,
    /// When a denied target may be attempted again (`None`: now, or never before a reset).
    pub next_allowed_at: Option<SystemTime>,
    /// Attempts made since the last success or reset (an allowed attempt included once
    /// it is acquired).
    pub attempts: u32,
    /// Retries still allowed before the target is exhausted.
    pub retries_left: u32,
}

impl Decision {
    /// The refusal of a gate that cannot decide: its store is unreachable, or none is
    /// configured (calls fail closed).
    ///
    /// ```
    /// use steadfast::gate::{Decision, Reason};
    ///
    /// let d = Decision::unavailable();
    /// assert!(!d.allowed);
    /// assert_eq!(d.reason, Reason::Unavailable);
    /// ```
    pub fn unavailable() -> Self {
        Decision {
            allowed: false,
            reason: Reason::Unavailable,
            next_allowed_at: None,
            attempts: 0,
            retries_left: 0,
        }
    }
}

impl fmt::Display for Decision {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let verdict = if self.allowed { "allowed" } else { "denied" };
        write!(f, "{verdict} ({})", self.reason)?;
        if let Some(at) = self.next_allowed_at {
            write!(f, " until {}", httpdate::fmt_http_date(at))?;
        }
        write!(
            f,
            ", {} attempts, {} retries left",
            self.attempts, self.retries_left
        )
    }
}

/// A boxed future, as [`GateBackend`] returns them.
pub type GateFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// A gate with its store, as the executor uses it: implemented by `steadfast-store`'s
/// `RetryGate` (or by your own).
pub trait GateBackend: Send + Sync + 'static {
    /// Reserves an attempt at `target` under `options` (the options apply to records created
    /// now; an existing record keeps the options it was created with), or says why not.
    fn acquire_attempt<'a>(
        &'a self,
        target: &'a Target,
        options: &'a GateOptions,
    ) -> GateFuture<'a, Result<Box<dyn GateAttempt>, Decision>>;
}

/// An attempt reserved by a [`GateBackend`]; report how it ended.
pub trait GateAttempt: Send {
    /// The attempt succeeded: the target's counters are cleared.
    fn success(self: Box<Self>) -> GateFuture<'static, ()>;
    /// The attempt failed with `error` (kept as the record's `last_error`).
    fn failure(self: Box<Self>, error: String) -> GateFuture<'static, ()>;
}
