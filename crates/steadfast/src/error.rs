//! The one error type callers match on.

use std::fmt;
use std::time::Duration;

use crate::config::fmt_duration;

/// Why a call failed: one word on the success path, the reason in a box.
///
/// [`kind`](Self::kind) says why: the operation's own error, a timeout, cancellation, or a
/// strategy's refusal (circuit open, bulkhead full, rate limited, a custom policy), each a
/// variant of [`ErrorKind`] to match on; [`into_kind`](Self::into_kind) takes it out. The
/// reason lives on the heap, so `Result<T, Error<E>>` is as small as `T` and a pointer and a
/// successful call returns in registers; a failed call allocates once, for its error.
///
/// `source()` is the operation's error, so error reporters that walk the chain (`anyhow`,
/// `tracing`) show it.
///
/// # Example
/// ```
/// use std::time::Duration;
/// use steadfast::{ErrorKind, Retry, Stop};
///
/// # #[tokio::main(flavor = "current_thread", start_paused = true)]
/// # async fn main() {
/// let retry = Retry::fixed(Duration::from_millis(10)).max_attempts(3).build().unwrap();
/// let err = retry.run(|| async { Err::<(), _>("refused") }).await.unwrap_err();
/// assert_eq!(err.attempts(), 3);
/// match err.into_kind() {
///     ErrorKind::Operation { source, stop, .. } => {
///         assert_eq!((source, stop), ("refused", Stop::Exhausted));
///     }
///     other => panic!("unexpected {other:?}"),
/// }
/// # }
/// ```
pub struct Error<E> {
    kind: Box<ErrorKind<E>>,
}

/// Why a call failed, each reason a variant of its own (see [`Error::kind`]).
#[derive(Debug)]
#[non_exhaustive]
pub enum ErrorKind<E> {
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
    /// ends with [`ErrorKind::Operation`](crate::ErrorKind::Operation) and [`Stop::BudgetExhausted`].)
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
    /// An error of `kind`.
    #[cold]
    #[inline(never)]
    pub fn new(kind: ErrorKind<E>) -> Self {
        Error {
            kind: Box::new(kind),
        }
    }

    /// Why the call failed.
    pub fn kind(&self) -> &ErrorKind<E> {
        &self.kind
    }

    /// Why the call failed, taken out of the error.
    pub fn into_kind(self) -> ErrorKind<E> {
        *self.kind
    }

    /// Attempts made, the first included.
    pub fn attempts(&self) -> u32 {
        match *self.kind {
            ErrorKind::Operation { attempts, .. }
            | ErrorKind::Timeout { attempts, .. }
            | ErrorKind::Cancelled { attempts }
            | ErrorKind::CircuitOpen { attempts, .. } => attempts,
            ErrorKind::InvalidKey(_)
            | ErrorKind::Rejected(_)
            | ErrorKind::BulkheadFull { .. }
            | ErrorKind::RateLimited { .. }
            | ErrorKind::GateClosed(_)
            | ErrorKind::Idempotency(_)
            | ErrorKind::Throttled { .. }
            | ErrorKind::NotReady(_) => 0,
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
            *self.kind,
            ErrorKind::Rejected(_)
                | ErrorKind::CircuitOpen { .. }
                | ErrorKind::BulkheadFull { .. }
                | ErrorKind::RateLimited { .. }
                | ErrorKind::GateClosed(_)
                | ErrorKind::Idempotency(_)
                | ErrorKind::Throttled { .. }
        )
    }

    /// When the strategy that refused the call expects to let one through.
    pub fn retry_after(&self) -> Option<Duration> {
        match &*self.kind {
            ErrorKind::CircuitOpen { retry_after, .. } => *retry_after,
            ErrorKind::RateLimited { retry_after } => Some(*retry_after),
            ErrorKind::GateClosed(d) => d.next_allowed_at.map(|at| {
                at.duration_since(std::time::SystemTime::now())
                    .unwrap_or_default()
            }),
            _ => None,
        }
    }

    /// A rate limiter's refusal (for limiters of your own that report like the built-in one).
    pub fn rate_limited(retry_after: Duration) -> Self {
        Error::new(ErrorKind::RateLimited { retry_after })
    }

    /// The operation's last error, when that is why the call failed.
    pub fn operation_error(&self) -> Option<&E> {
        match &*self.kind {
            ErrorKind::Operation { source, .. } => Some(source),
            _ => None,
        }
    }

    /// Takes the operation's last error out, when that is why the call failed.
    pub fn into_operation_error(self) -> Option<E> {
        match *self.kind {
            ErrorKind::Operation { source, .. } => Some(source),
            _ => None,
        }
    }

    /// Why retrying stopped, when the operation's error is why the call failed.
    pub fn stop(&self) -> Option<Stop> {
        match *self.kind {
            ErrorKind::Operation { stop, .. } => Some(stop),
            _ => None,
        }
    }

    /// Whether a timeout (of either scope) ended the call.
    pub fn is_timeout(&self) -> bool {
        matches!(*self.kind, ErrorKind::Timeout { .. })
    }

    /// Maps the operation's error, keeping everything else.
    pub fn map_err<F>(self, f: impl FnOnce(E) -> F) -> Error<F> {
        Error::new(match *self.kind {
            ErrorKind::Operation {
                source,
                attempts,
                stop,
            } => ErrorKind::Operation {
                source: f(source),
                attempts,
                stop,
            },
            ErrorKind::Timeout {
                scope,
                after,
                attempts,
            } => ErrorKind::Timeout {
                scope,
                after,
                attempts,
            },
            ErrorKind::Cancelled { attempts } => ErrorKind::Cancelled { attempts },
            ErrorKind::InvalidKey(e) => ErrorKind::InvalidKey(e),
            ErrorKind::Rejected(r) => ErrorKind::Rejected(r),
            ErrorKind::CircuitOpen {
                retry_after,
                attempts,
            } => ErrorKind::CircuitOpen {
                retry_after,
                attempts,
            },
            ErrorKind::BulkheadFull { max_concurrent } => {
                ErrorKind::BulkheadFull { max_concurrent }
            }
            ErrorKind::RateLimited { retry_after } => ErrorKind::RateLimited { retry_after },
            ErrorKind::GateClosed(d) => ErrorKind::GateClosed(d),
            ErrorKind::Idempotency(r) => ErrorKind::Idempotency(r),
            ErrorKind::Throttled { reject_probability } => {
                ErrorKind::Throttled { reject_probability }
            }
            ErrorKind::NotReady(e) => ErrorKind::NotReady(f(e)),
        })
    }
}

impl<E> From<ErrorKind<E>> for Error<E> {
    fn from(kind: ErrorKind<E>) -> Self {
        Error::new(kind)
    }
}

/// Shows the reason, as `{:?}` of the [`ErrorKind`] would.
impl<E: fmt::Debug> fmt::Debug for Error<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&*self.kind, f)
    }
}

/// A malformed key is [`ErrorKind::InvalidKey`], so `?` works on key parsing in a call's code.
impl<E> From<crate::key::KeyError> for Error<E> {
    fn from(e: crate::key::KeyError) -> Self {
        Error::new(ErrorKind::InvalidKey(e.problem()))
    }
}

fn plural(n: u32) -> &'static str {
    if n == 1 { "attempt" } else { "attempts" }
}

impl<E> fmt::Display for Error<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&*self.kind, f)
    }
}

impl<E> fmt::Display for ErrorKind<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ErrorKind::Operation { attempts, stop, .. } => write!(
                f,
                "operation failed after {attempts} {} ({stop})",
                plural(*attempts)
            ),
            ErrorKind::Timeout {
                scope: TimeoutScope::Attempt,
                after,
                attempts,
            } => write!(
                f,
                "attempt {attempts} timed out after {}",
                fmt_duration(*after)
            ),
            ErrorKind::Timeout {
                after, attempts, ..
            } => write!(
                f,
                "call timed out after {} ({attempts} {})",
                fmt_duration(*after),
                plural(*attempts)
            ),
            ErrorKind::Cancelled { attempts } => {
                write!(f, "call cancelled after {attempts} {}", plural(*attempts))
            }
            ErrorKind::InvalidKey(e) => write!(f, "invalid key: {e}"),
            ErrorKind::Rejected(r) => write!(f, "rejected: {r}"),
            ErrorKind::CircuitOpen {
                retry_after: Some(after),
                ..
            } => write!(f, "circuit open (retry in {})", fmt_duration(*after)),
            ErrorKind::CircuitOpen { .. } => f.write_str("circuit isolated"),
            ErrorKind::BulkheadFull { max_concurrent } => {
                write!(f, "bulkhead full ({max_concurrent} calls in flight)")
            }
            ErrorKind::RateLimited { retry_after } => {
                write!(f, "rate limited (retry in {})", fmt_duration(*retry_after))
            }
            ErrorKind::GateClosed(d) => write!(f, "retry gate closed: {d}"),
            ErrorKind::Idempotency(r) => write!(f, "{r}"),
            ErrorKind::Throttled { reject_probability } => write!(
                f,
                "throttled locally (adaptive throttling refuses {:.0} % of attempts)",
                reject_probability * 100.0
            ),
            ErrorKind::NotReady(_) => f.write_str("the service was not ready"),
        }
    }
}

impl<E: std::error::Error + 'static> std::error::Error for Error<E> {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match &*self.kind {
            ErrorKind::Operation { source, .. } => Some(source),
            ErrorKind::InvalidKey(e) => Some(e),
            ErrorKind::Rejected(r) => Some(r),
            ErrorKind::Idempotency(r) => Some(r),
            ErrorKind::NotReady(e) => Some(e),
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
        let op: Error<std::io::Error> = Error::new(ErrorKind::Operation {
            source: std::io::Error::other("refused"),
            attempts: 3,
            stop: Stop::Exhausted,
        });
        assert_eq!(
            op.to_string(),
            "operation failed after 3 attempts (attempts exhausted)"
        );
        assert_eq!(
            op.source().map(|s| s.to_string()).as_deref(),
            Some("refused")
        );
        let t: Error<()> = Error::new(ErrorKind::Timeout {
            scope: TimeoutScope::Total,
            after: Duration::from_secs(30),
            attempts: 1,
        });
        assert_eq!(t.to_string(), "call timed out after 30s (1 attempt)");
        let t: Error<()> = Error::new(ErrorKind::Timeout {
            scope: TimeoutScope::Attempt,
            after: Duration::from_millis(250),
            attempts: 2,
        });
        assert_eq!(t.to_string(), "attempt 2 timed out after 250ms");
        // One word, so a successful call's result returns in registers.
        assert_eq!(std::mem::size_of::<Result<u64, Error<()>>>(), 16);
        assert_eq!(
            std::mem::size_of::<Result<u64, Error<std::io::Error>>>(),
            16
        );
        let s = Stop::ServerDelayTooLong {
            requested: Duration::from_secs(3600),
        };
        assert_eq!(
            s.to_string(),
            "the server asked to wait 1h, more than max_server_delay allows"
        );
    }
}
