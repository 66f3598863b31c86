//! The one error type callers match on.

use std::fmt;
use std::time::Duration;

use crate::config::fmt_duration;

/// Why a call failed: the operation's own error, a timeout, cancellation, or a strategy's
/// refusal (circuit open, bulkhead full, rate limited, a custom policy), each a variant of its
/// own to match on.
///
/// `source()` is the operation's error, so error reporters that walk the chain (`anyhow`,
/// `tracing`) show it.
///
/// # Example
/// ```
/// use std::time::Duration;
/// use steadfast::{Error, Retry, Stop};
///
/// # #[tokio::main(flavor = "current_thread", start_paused = true)]
/// # async fn main() {
/// let retry = Retry::fixed(Duration::from_millis(10)).max_attempts(3).build().unwrap();
/// match retry.run(|| async { Err::<(), _>("refused") }).await {
///     Err(Error::Operation { source, attempts, stop, .. }) => {
///         assert_eq!((source, attempts, stop), ("refused", 3, Stop::Exhausted));
///     }
///     other => panic!("unexpected {other:?}"),
/// }
/// # }
/// ```
#[derive(Debug)]
#[non_exhaustive]
// A word-sized tag: `Result<T, Error<E>>` then keeps its own tag in that word, written and
// read as one 8-byte value. With a 1-byte tag, a caller's move of the result read the tag
// and the bytes after it as one load that no single store had written: a store-forwarding
// stall on every call (isolated first-try, builds alternated: 9.5–12.7 ns → 6.7–8.3 ns).
#[repr(u64)]
pub enum Error<E> {
    /// The operation failed and the policy stopped retrying: `source` is its last error.
    #[non_exhaustive]
    Operation {
        /// The last attempt's error.
        source: E,
        /// Attempts made, the first included.
        attempts: u32,
        /// Why retrying stopped.
        stop: Stop,
    },
    /// The last attempt, or the whole call, ran out of time.
    #[non_exhaustive]
    Timeout {
        /// Which timeout fired.
        scope: TimeoutScope,
        /// The timeout that fired.
        after: Duration,
        /// Attempts made, the timed-out one included.
        attempts: u32,
    },
    /// The call was cancelled by its cancellation signal.
    #[non_exhaustive]
    Cancelled {
        /// Attempts started before the cancellation.
        attempts: u32,
    },
    /// The call site's key is malformed; the operation never ran.
    InvalidKey(crate::key::KeyProblem),
    /// A custom policy of the key's chain refused the call (or its result).
    Rejected(crate::chain::rejection::Rejection),
    /// The circuit breaker is open: the attempt was not made.
    #[non_exhaustive]
    CircuitOpen {
        /// When the breaker will let a call through (a probe), if known; `None` while it is
        /// isolated by hand.
        retry_after: Option<Duration>,
        /// Attempts made before it refused (0: the call's first attempt was refused).
        attempts: u32,
    },
    /// The bulkhead is full (every place taken, and no room or no time to wait): the operation
    /// never ran.
    #[non_exhaustive]
    BulkheadFull {
        /// The bulkhead's places.
        max_concurrent: u32,
    },
    /// The rate limiter refused the call: the operation never ran.
    #[non_exhaustive]
    RateLimited {
        /// When a call would be let through.
        retry_after: Duration,
    },
    /// The durable retry gate refused the target (see [`gate`](crate::gate)): the operation
    /// never ran.
    GateClosed(crate::gate::Decision),
    /// An idempotent call was refused (in flight, a mismatched request, no key, no store): the
    /// operation never ran. See [`idempotency`](crate::idempotency).
    Idempotency(crate::idempotency::Refusal),
    /// Adaptive throttling refused the call locally (see [`budget`](crate::budget)): the
    /// operation never ran. (A retry budget never refuses a first attempt; a refused retry
    /// ends with [`Error::Operation`] and [`Stop::BudgetExhausted`].)
    #[non_exhaustive]
    Throttled {
        /// The probability an attempt was being refused with.
        reject_probability: f64,
    },
    /// The service was not ready to take the call (a tower service's `poll_ready` failed):
    /// the operation never ran. Holds the service's error.
    NotReady(E),
}

/// Why the retry loop stopped on a failure.
///
/// # Example
/// ```
/// use steadfast::Stop;
///
/// assert_eq!(Stop::Exhausted.to_string(), "attempts exhausted");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Stop {
    /// The classifier said the failure is not worth retrying.
    NonRetryable,
    /// The classifier said to stop everything (e.g. a negative gRPC pushback).
    Aborted,
    /// `max_attempts` were made.
    Exhausted,
    /// The next retry would start at or after the overall deadline.
    Deadline,
    /// The server asked to wait longer than the policy's `max_server_delay` allows.
    ServerDelayTooLong {
        /// What the server asked for.
        requested: Duration,
    },
    /// A custom backoff function returned `None`.
    BackoffEnded,
    /// The request could not be cloned for another attempt (see the `tower` layer), so the
    /// failure of its only attempt is final.
    NotCloneable,
    /// The call's retry [budget](crate::budget) refused the next retry.
    BudgetExhausted,
}

impl Stop {
    /// The name metrics label it with: `non_retryable`, `aborted`, `exhausted`, `deadline`,
    /// `server_delay_too_long`, `backoff_ended`, `not_cloneable`, `budget_exhausted`.
    ///
    /// # Example
    /// ```
    /// assert_eq!(steadfast::Stop::Exhausted.as_str(), "exhausted");
    /// ```
    pub const fn as_str(&self) -> &'static str {
        match self {
            Stop::NonRetryable => "non_retryable",
            Stop::Aborted => "aborted",
            Stop::Exhausted => "exhausted",
            Stop::Deadline => "deadline",
            Stop::ServerDelayTooLong { .. } => "server_delay_too_long",
            Stop::BackoffEnded => "backoff_ended",
            Stop::NotCloneable => "not_cloneable",
            Stop::BudgetExhausted => "budget_exhausted",
        }
    }

    /// Whether the policy's allowance ran out (as opposed to the classifier refusing).
    pub const fn is_exhaustion(&self) -> bool {
        !matches!(self, Stop::NonRetryable | Stop::Aborted)
    }
}

impl fmt::Display for Stop {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Stop::NonRetryable => f.write_str("not retryable"),
            Stop::Aborted => f.write_str("aborted"),
            Stop::Exhausted => f.write_str("attempts exhausted"),
            Stop::Deadline => f.write_str("the next retry would pass the deadline"),
            Stop::ServerDelayTooLong { requested } => write!(
                f,
                "the server asked to wait {}, more than max_server_delay allows",
                fmt_duration(*requested)
            ),
            Stop::BackoffEnded => f.write_str("the backoff schedule ended"),
            Stop::NotCloneable => f.write_str("the request could not be cloned for a retry"),
            Stop::BudgetExhausted => f.write_str("the retry budget is exhausted"),
        }
    }
}

/// Which timeout fired.
///
/// # Example
/// ```
/// use steadfast::TimeoutScope;
///
/// assert_ne!(TimeoutScope::Attempt, TimeoutScope::Total);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum TimeoutScope {
    /// One attempt's timeout (`attempt_timeout`).
    Attempt,
    /// The whole call's deadline (`total_timeout`).
    Total,
}

impl<E> Error<E> {
    /// Attempts made, the first included.
    pub fn attempts(&self) -> u32 {
        match self {
            Error::Operation { attempts, .. }
            | Error::Timeout { attempts, .. }
            | Error::Cancelled { attempts }
            | Error::CircuitOpen { attempts, .. } => *attempts,
            Error::InvalidKey(_)
            | Error::Rejected(_)
            | Error::BulkheadFull { .. }
            | Error::RateLimited { .. }
            | Error::GateClosed(_)
            | Error::Idempotency(_)
            | Error::Throttled { .. }
            | Error::NotReady(_) => 0,
        }
    }

    /// Whether a strategy refused the call or an attempt of it (breaker, bulkhead, rate
    /// limiter, a custom policy) rather than the operation failing.
    ///
    /// ```
    /// use std::time::Duration;
    /// use steadfast::Error;
    ///
    /// let e = Error::<()>::rate_limited(Duration::from_millis(10));
    /// assert!(e.is_rejection());
    /// assert_eq!(e.retry_after(), Some(Duration::from_millis(10)));
    /// ```
    pub fn is_rejection(&self) -> bool {
        matches!(
            self,
            Error::Rejected(_)
                | Error::CircuitOpen { .. }
                | Error::BulkheadFull { .. }
                | Error::RateLimited { .. }
                | Error::GateClosed(_)
                | Error::Idempotency(_)
                | Error::Throttled { .. }
        )
    }

    /// When the strategy that refused the call expects to let one through.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            Error::CircuitOpen { retry_after, .. } => *retry_after,
            Error::RateLimited { retry_after } => Some(*retry_after),
            Error::GateClosed(d) => d.next_allowed_at.map(|at| {
                at.duration_since(std::time::SystemTime::now())
                    .unwrap_or_default()
            }),
            _ => None,
        }
    }

    /// A rate limiter's refusal (for limiters of your own that report like the built-in one).
    pub fn rate_limited(retry_after: Duration) -> Self {
        Error::RateLimited { retry_after }
    }

    /// The operation's last error, when that is why the call failed.
    pub fn operation_error(&self) -> Option<&E> {
        match self {
            Error::Operation { source, .. } => Some(source),
            _ => None,
        }
    }

    /// Takes the operation's last error out, when that is why the call failed.
    pub fn into_operation_error(self) -> Option<E> {
        match self {
            Error::Operation { source, .. } => Some(source),
            _ => None,
        }
    }

    /// Why retrying stopped, when the operation's error is why the call failed.
    pub fn stop(&self) -> Option<Stop> {
        match self {
            Error::Operation { stop, .. } => Some(*stop),
            _ => None,
        }
    }

    /// Whether a timeout (of either scope) ended the call.
    pub fn is_timeout(&self) -> bool {
        matches!(self, Error::Timeout { .. })
    }

    /// Maps the operation's error, keeping everything else.
    pub fn map_err<F>(self, f: impl FnOnce(E) -> F) -> Error<F> {
        match self {
            Error::Operation {
                source,
                attempts,
                stop,
            } => Error::Operation {
                source: f(source),
                attempts,
                stop,
            },
            Error::Timeout {
                scope,
                after,
                attempts,
            } => Error::Timeout {
                scope,
                after,
                attempts,
            },
            Error::Cancelled { attempts } => Error::Cancelled { attempts },
            Error::InvalidKey(e) => Error::InvalidKey(e),
            Error::Rejected(r) => Error::Rejected(r),
            Error::CircuitOpen {
                retry_after,
                attempts,
            } => Error::CircuitOpen {
                retry_after,
                attempts,
            },
            Error::BulkheadFull { max_concurrent } => Error::BulkheadFull { max_concurrent },
            Error::RateLimited { retry_after } => Error::RateLimited { retry_after },
            Error::GateClosed(d) => Error::GateClosed(d),
            Error::Idempotency(r) => Error::Idempotency(r),
            Error::Throttled { reject_probability } => Error::Throttled { reject_probability },
            Error::NotReady(e) => Error::NotReady(f(e)),
        }
    }
}

/// A malformed key is [`Error::InvalidKey`], so `?` works on key parsing in a call's code.
impl<E> From<crate::key::KeyError> for Error<E> {
    fn from(e: crate::key::KeyError) -> Self {
        Error::InvalidKey(e.problem())
    }
}

fn plural(n: u32) -> &'static str {
    if n == 1 { "attempt" } else { "attempts" }
}

impl<E> fmt::Display for Error<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Operation { attempts, stop, .. } => write!(
                f,
                "operation failed after {attempts} {} ({stop})",
                plural(*attempts)
            ),
            Error::Timeout {
                scope: TimeoutScope::Attempt,
                after,
                attempts,
            } => write!(
                f,
                "attempt {attempts} timed out after {}",
                fmt_duration(*after)
            ),
            Error::Timeout {
                after, attempts, ..
            } => write!(
                f,
                "call timed out after {} ({attempts} {})",
                fmt_duration(*after),
                plural(*attempts)
            ),
            Error::Cancelled { attempts } => {
                write!(f, "call cancelled after {attempts} {}", plural(*attempts))
            }
            Error::InvalidKey(e) => write!(f, "invalid key: {e}"),
            Error::Rejected(r) => write!(f, "rejected: {r}"),
            Error::CircuitOpen {
                retry_after: Some(after),
                ..
            } => write!(f, "circuit open (retry in {})", fmt_duration(*after)),
            Error::CircuitOpen { .. } => f.write_str("circuit isolated"),
            Error::BulkheadFull { max_concurrent } => {
                write!(f, "bulkhead full ({max_concurrent} calls in flight)")
            }
            Error::RateLimited { retry_after } => {
                write!(f, "rate limited (retry in {})", fmt_duration(*retry_after))
            }
            Error::GateClosed(d) => write!(f, "retry gate closed: {d}"),
            Error::Idempotency(r) => write!(f, "{r}"),
            Error::Throttled { reject_probability } => write!(
                f,
                "throttled locally (adaptive throttling refuses {:.0} % of attempts)",
                reject_probability * 100.0
            ),
            Error::NotReady(_) => f.write_str("the service was not ready"),
        }
    }
}

impl<E: std::error::Error + 'static> std::error::Error for Error<E> {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Error::Operation { source, .. } => Some(source),
            Error::InvalidKey(e) => Some(e),
            Error::Rejected(r) => Some(r),
            Error::Idempotency(r) => Some(r),
            Error::NotReady(e) => Some(e),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::error::Error as _;

    #[test]
    fn messages_are_lowercase_without_trailing_punctuation() {
        let op: Error<std::io::Error> = Error::Operation {
            source: std::io::Error::other("refused"),
            attempts: 3,
            stop: Stop::Exhausted,
        };
        assert_eq!(
            op.to_string(),
            "operation failed after 3 attempts (attempts exhausted)"
        );
        assert_eq!(
            op.source().map(|s| s.to_string()).as_deref(),
            Some("refused")
        );
        let t: Error<()> = Error::Timeout {
            scope: TimeoutScope::Total,
            after: Duration::from_secs(30),
            attempts: 1,
        };
        assert_eq!(t.to_string(), "call timed out after 30s (1 attempt)");
        let t: Error<()> = Error::Timeout {
            scope: TimeoutScope::Attempt,
            after: Duration::from_millis(250),
            attempts: 2,
        };
        assert_eq!(t.to_string(), "attempt 2 timed out after 250ms");
        let s = Stop::ServerDelayTooLong {
            requested: Duration::from_secs(3600),
        };
        assert_eq!(
            s.to_string(),
            "the server asked to wait 1h, more than max_server_delay allows"
        );
    }
}
