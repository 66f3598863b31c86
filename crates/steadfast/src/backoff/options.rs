use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use crate::classify::Outcome;
use crate::config::{ConfigError, Problems, fmt_duration};

/// Default first delay: 100 ms.
pub const DEFAULT_BASE: Duration = Duration::from_millis(100);
/// Default cap on any delay: 10 s.
pub const DEFAULT_MAX: Duration = Duration::from_secs(10);
/// Default growth factor of exponential backoff: 2.
pub const DEFAULT_FACTOR: f64 = 2.0;
/// Default jitter: full (`uniform(0, d)`), the AWS Architecture Blog's recommendation.
pub const DEFAULT_JITTER: Jitter = Jitter::Full;

/// How the delay grows from one retry to the next.
///
/// See the [module docs](crate::backoff) for the formulas and a table of values.
///
/// # Example
/// ```
/// use steadfast::backoff::BackoffKind;
///
/// let kind = BackoffKind::Exponential { factor: 1.6 }; // gRPC's connection backoff
/// assert_ne!(kind, BackoffKind::Fibonacci);
/// ```
#[derive(Clone, PartialEq)]
#[non_exhaustive]
pub enum BackoffKind {
    /// No wait at all between attempts (`base` is ignored): for retries that must follow at
    /// once, like a transparent retry of a request the server never saw.
    Immediate,
    /// The same delay every time: `base`.
    Fixed,
    /// `base × n` for the n-th retry.
    Linear,
    /// `base × factor^(n−1)`; `factor` must be > 1.
    Exponential {
        /// Growth factor per retry.
        factor: f64,
    },
    /// `base × fib(n)` with fib = 1, 1, 2, 3, 5, 8…
    Fibonacci,
    /// AWS "decorrelated jitter": `min(max, uniform(base, prev × 3))`, prev starting at `base`.
    /// Already randomized, so its default jitter is none.
    Decorrelated,
    /// A function of the attempt and the last outcome; `None` stops retrying.
    Custom(DelayFn),
}

impl fmt::Debug for BackoffKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BackoffKind::Immediate => f.write_str("Immediate"),
            BackoffKind::Fixed => f.write_str("Fixed"),
            BackoffKind::Linear => f.write_str("Linear"),
            BackoffKind::Exponential { factor } => write!(f, "Exponential {{ factor: {factor} }}"),
            BackoffKind::Fibonacci => f.write_str("Fibonacci"),
            BackoffKind::Decorrelated => f.write_str("Decorrelated"),
            BackoffKind::Custom(_) => f.write_str("Custom(..)"),
        }
    }
}

/// Randomness added to each delay, so that clients that failed together do not retry together.
///
/// # Example
/// ```
/// use steadfast::backoff::Jitter;
///
/// let grpc = Jitter::Proportional(0.2); // d × uniform(0.8, 1.2), as in gRPC A6 since 2024
/// assert_ne!(grpc, Jitter::Full);
/// ```
#[derive(Debug, Clone, Copy, PartialEq)]
#[non_exhaustive]
pub enum Jitter {
    /// Exactly the computed delay.
    None,
    /// `uniform(0, d)`.
    Full,
    /// `d/2 + uniform(0, d/2)`.
    Equal,
    /// `d × uniform(1 − r, 1 + r)` with `r` in (0, 1], capped at `max`.
    Proportional(f64),
}

/// What a [custom delay function](BackoffKind::Custom) sees.
///
/// # Example
/// ```
/// use std::time::Duration;
/// use steadfast::backoff::{BackoffOptions, DelayArgs};
///
/// // Wait 1 s after a server-given delay was refused, otherwise 50 ms per retry; stop after 4.
/// let options = BackoffOptions::custom(|args: &DelayArgs<'_>| {
///     (args.retry() <= 4).then(|| Duration::from_millis(50) * args.retry())
/// });
/// # let _ = options;
/// ```
#[derive(Debug, Clone, Copy)]
pub struct DelayArgs<'a> {
    pub(crate) retry: u32,
    pub(crate) outcome: Option<&'a Outcome>,
    pub(crate) previous: Option<Duration>,
}

impl<'a> DelayArgs<'a> {
    /// Which retry this delay precedes: 1 for the first retry.
    pub fn retry(&self) -> u32 {
        self.retry
    }

    /// How the last attempt was classified, when the delay is asked for by a retry loop
    /// (`None` from [`Backoff::next`](crate::backoff::Backoff::next)).
    pub fn outcome(&self) -> Option<&'a Outcome> {
        self.outcome
    }

    /// The delay returned last time, if any.
    pub fn previous(&self) -> Option<Duration> {
        self.previous
    }
}

/// A shared custom delay function: `(args) -> Some(delay)` or `None` to stop retrying.
///
/// # Example
/// ```
/// use std::time::Duration;
/// use steadfast::backoff::DelayFn;
///
/// let f = DelayFn::new(|args| Some(Duration::from_millis(10) * args.retry()));
/// # let _ = f;
/// ```
#[derive(Clone)]
pub struct DelayFn(Arc<DelayFnInner>);

type DelayFnInner = dyn Fn(&DelayArgs<'_>) -> Option<Duration> + Send + Sync;

impl DelayFn {
    /// Wraps a function.
    pub fn new(f: impl Fn(&DelayArgs<'_>) -> Option<Duration> + Send + Sync + 'static) -> Self {
        DelayFn(Arc::new(f))
    }

    pub(crate) fn call(&self, args: &DelayArgs<'_>) -> Option<Duration> {
        (self.0)(args)
    }
}

impl PartialEq for DelayFn {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
    }
}

impl fmt::Debug for DelayFn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("DelayFn(..)")
    }
}

/// A backoff schedule as plain data: kind, first delay, cap and jitter.
///
/// # Defaults
/// | field | default |
/// |---|---|
/// | `kind` | exponential, factor [`DEFAULT_FACTOR`] (2) |
/// | `base` | [`DEFAULT_BASE`] (100 ms) |
/// | `max` | [`DEFAULT_MAX`] (10 s) |
/// | `jitter` | [`DEFAULT_JITTER`] (full); none for decorrelated and custom |
///
/// # Example
/// ```
/// use std::time::Duration;
/// use steadfast::backoff::{BackoffOptions, Jitter};
///
/// let options = BackoffOptions::fibonacci(Duration::from_millis(50))
///     .max(Duration::from_secs(5))
///     .jitter(Jitter::Equal);
/// assert!(options.validate().is_ok());
/// ```
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct BackoffOptions {
    /// How the delay grows.
    pub kind: BackoffKind,
    /// The first delay (and the lower bound of decorrelated jitter).
    pub base: Duration,
    /// The cap: no delay is ever longer.
    pub max: Duration,
    /// Randomness applied after the cap.
    pub jitter: Jitter,
}

impl Default for BackoffOptions {
    fn default() -> Self {
        BackoffOptions::DEFAULT
    }
}

impl BackoffOptions {
    pub(crate) const DEFAULT: BackoffOptions = BackoffOptions {
        kind: BackoffKind::Exponential {
            factor: DEFAULT_FACTOR,
        },
        base: DEFAULT_BASE,
        max: DEFAULT_MAX,
        jitter: DEFAULT_JITTER,
    };

    const fn with_kind(kind: BackoffKind, base: Duration, jitter: Jitter) -> Self {
        BackoffOptions {
            kind,
            base,
            max: DEFAULT_MAX,
            jitter,
        }
    }

    /// No wait between attempts.
    pub const fn immediate() -> Self {
        Self::with_kind(BackoffKind::Immediate, Duration::ZERO, Jitter::None)
    }

    /// `base` every time.
    pub const fn fixed(base: Duration) -> Self {
        Self::with_kind(BackoffKind::Fixed, base, DEFAULT_JITTER)
    }

    /// `base × n`.
    pub const fn linear(base: Duration) -> Self {
        Self::with_kind(BackoffKind::Linear, base, DEFAULT_JITTER)
    }

    /// `base × 2^(n−1)`; change the factor with [`factor`](Self::factor).
    pub const fn exponential(base: Duration) -> Self {
        Self::with_kind(
            BackoffKind::Exponential {
                factor: DEFAULT_FACTOR,
            },
            base,
            DEFAULT_JITTER,
        )
    }

    /// `base × fib(n)`.
    pub const fn fibonacci(base: Duration) -> Self {
        Self::with_kind(BackoffKind::Fibonacci, base, DEFAULT_JITTER)
    }

    /// `min(max, uniform(base, prev × 3))`, with no extra jitter.
    pub const fn decorrelated(base: Duration) -> Self {
        Self::with_kind(BackoffKind::Decorrelated, base, Jitter::None)
    }

    /// A function of the retry number and the last outcome; `None` stops retrying.
    /// Its result is still capped at `max` (default 10 s); jitter defaults to none.
    pub fn custom(f: impl Fn(&DelayArgs<'_>) -> Option<Duration> + Send + Sync + 'static) -> Self {
        Self::with_kind(
            BackoffKind::Custom(DelayFn::new(f)),
            DEFAULT_BASE,
            Jitter::None,
        )
    }

    /// Sets the cap on every delay.
    pub fn max(mut self, max: Duration) -> Self {
        self.max = max;
        self
    }

    /// Sets the first delay.
    pub fn base(mut self, base: Duration) -> Self {
        self.base = base;
        self
    }

    /// Sets the jitter mode.
    pub fn jitter(mut self, jitter: Jitter) -> Self {
        self.jitter = jitter;
        self
    }

    /// Sets the growth factor; makes the backoff exponential if it was not.
    pub fn factor(mut self, factor: f64) -> Self {
        self.kind = BackoffKind::Exponential { factor };
        self
    }

    /// Checks every field; the error lists each problem with its field name.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let mut problems = Problems::new("");
        self.check(&mut problems);
        problems.finish()
    }

    pub(crate) fn check(&self, problems: &mut Problems<'_>) {
        if self.is_valid() {
            return;
        }
        let computed = self.computed();
        if computed && self.base.is_zero() {
            problems.push(
                "base",
                format!("must be > 0, got {}", fmt_duration(self.base)),
            );
        }
        if self.max < self.base && computed {
            problems.push(
                "max",
                format!(
                    "must be >= base ({}), got {}",
                    fmt_duration(self.base),
                    fmt_duration(self.max)
                ),
            );
        }
        if let BackoffKind::Exponential { factor } = self.kind
            && !self.factor_is_valid()
        {
            problems.push(
                "factor",
                format!("must be > 1 for exponential backoff, got {factor}"),
            );
        }
        if let Jitter::Proportional(r) = self.jitter
            && !self.jitter_is_valid()
        {
            problems.push(
                "jitter",
                format!("proportional jitter must be in (0, 1], got {r}"),
            );
        }
    }

    /// Whether [`check`](Self::check) finds nothing, decided without building a report.
    #[inline]
    pub(crate) fn is_valid(&self) -> bool {
        (!self.computed() || (!self.base.is_zero() && self.max >= self.base))
            && self.factor_is_valid()
            && self.jitter_is_valid()
    }

    /// A kind whose delays come from `base` (and so need a base and a cap above it).
    fn computed(&self) -> bool {
        !matches!(self.kind, BackoffKind::Custom(_) | BackoffKind::Immediate)
    }

    fn factor_is_valid(&self) -> bool {
        match self.kind {
            BackoffKind::Exponential { factor } => factor > 1.0 && factor.is_finite(),
            _ => true,
        }
    }

    fn jitter_is_valid(&self) -> bool {
        match self.jitter {
            Jitter::Proportional(r) => r > 0.0 && r <= 1.0,
            _ => true,
        }
    }
}

/// In policy files a jitter is `"none"`, `"full"`, `"equal"`, or a number `r` in (0, 1] for
/// proportional jitter (`jitter = 0.2` is gRPC's ±20 %).
#[cfg(feature = "serde")]
impl serde::Serialize for Jitter {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Jitter::None => s.serialize_str("none"),
            Jitter::Full => s.serialize_str("full"),
            Jitter::Equal => s.serialize_str("equal"),
            Jitter::Proportional(r) => s.serialize_f64(*r),
        }
    }
}

#[cfg(feature = "serde")]
impl<'de> serde::Deserialize<'de> for Jitter {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl serde::de::Visitor<'_> for V {
            type Value = Jitter;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(
                    r#""none", "full", "equal", or a ratio in (0, 1] for proportional jitter"#,
                )
            }

            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Jitter, E> {
                match v {
                    "none" => Ok(Jitter::None),
                    "full" => Ok(Jitter::Full),
                    "equal" => Ok(Jitter::Equal),
                    _ => Err(E::custom(format_args!(
                        "unknown variant `{v}`, expected one of `none`, `full`, `equal` \
                         (or a ratio in (0, 1] for proportional jitter)"
                    ))),
                }
            }

            fn visit_f64<E: serde::de::Error>(self, v: f64) -> Result<Jitter, E> {
                Ok(Jitter::Proportional(v))
            }

            fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<Jitter, E> {
                Ok(Jitter::Proportional(v as f64))
            }

            fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<Jitter, E> {
                Ok(Jitter::Proportional(v as f64))
            }
        }
        d.deserialize_any(V)
    }
}

#[cfg(feature = "schema")]
impl schemars::JsonSchema for Jitter {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "Jitter".into()
    }

    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({
            "description": "Randomness added to each delay: \"none\", \"full\" (uniform(0, d)), \"equal\" (d/2 + uniform(0, d/2)), or a ratio r in (0, 1] for proportional jitter d × uniform(1 − r, 1 + r).",
            "oneOf": [
                { "type": "string", "enum": ["none", "full", "equal"] },
                { "type": "number", "exclusiveMinimum": 0, "maximum": 1 }
            ]
        })
    }
}
