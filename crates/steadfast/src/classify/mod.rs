//! Classification: is this result a success, worth retrying, not worth retrying, or a reason to
//! stop everything?
//!
//! Every attempt's result goes through a [`Classifier`] that returns an [`Outcome`]. The default
//! ([`AnyError`]) retries every error. Errors can classify themselves by implementing
//! [`Classify`] (used through [`ByTrait`]); any `Fn(&E) -> Outcome` closure is a classifier; and
//! [`results`] classifies whole results (an HTTP response with status 503 is an `Ok` worth
//! retrying).
//!
//! Built-ins: [`std::io::Error`] by [`ErrorKind`](std::io::ErrorKind) ([`io`]), HTTP status codes
//! with `Retry-After` ([`http`]), and gRPC codes with `grpc-retry-pushback-ms` ([`grpc`]).
//!
//! # Example
//! ```
//! use std::time::Duration;
//! use steadfast::classify;
//! use steadfast::Retry;
//!
//! #[derive(Debug)]
//! struct Status(u16, Option<String>); // status code and Retry-After header
//!
//! # #[tokio::main(flavor = "current_thread", start_paused = true)]
//! # async fn main() {
//! let retry = Retry::exponential(Duration::from_millis(100)).build().unwrap();
//! let result = retry
//!     .call(|| async { Err::<(), _>(Status(404, None)) })
//!     .classify(|e: &Status| classify::http::response(e.0, e.1.as_deref()))
//!     .run()
//!     .await;
//! assert_eq!(result.unwrap_err().attempts(), 1); // 404 is never retried
//! # }
//! ```

#[cfg(feature = "serde")]
mod file;
pub mod grpc;
pub mod http;
pub mod io;
pub mod policy;

#[cfg(feature = "serde")]
pub(crate) use policy::unknown;
pub use policy::{
    BUILT_IN, ClassifyOptions, DEFAULT_HTTP_STATUSES, FromPolicy, PolicyClassifier, ReadResult,
};

use std::time::Duration;

/// How one attempt ended, as far as retrying is concerned.
///
/// # Example
/// ```
/// use std::time::Duration;
/// use steadfast::classify::Outcome;
///
/// let outcome = Outcome::retry_after(Duration::from_secs(2)); // the server said when
/// assert!(outcome.is_retryable());
/// assert_eq!(outcome.server_delay(), Some(Duration::from_secs(2)));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Outcome {
    /// The call succeeded: return the result.
    Success,
    /// A transient failure: retry, after the server-given delay if there is one (it replaces
    /// the computed backoff and is never shortened), else after the backoff's next delay.
    Retryable {
        /// A delay the server asked for (`Retry-After`, `grpc-retry-pushback-ms`).
        after: Option<Duration>,
    },
    /// A failure that retrying will not fix (a 404, invalid input): return it now.
    NonRetryable,
    /// Stop everything now, e.g. the server asked not to be retried (a negative gRPC
    /// pushback): no retry and no hedge.
    Abort,
}

impl Outcome {
    /// A retryable failure with no server-given delay.
    pub const RETRYABLE: Outcome = Outcome::Retryable { after: None };

    /// A retryable failure the server asked to retry after `delay`.
    pub const fn retry_after(delay: Duration) -> Outcome {
        Outcome::Retryable { after: Some(delay) }
    }

    /// Whether the engine may try again.
    pub const fn is_retryable(&self) -> bool {
        matches!(self, Outcome::Retryable { .. })
    }

    /// Whether this is a success.
    pub const fn is_success(&self) -> bool {
        matches!(self, Outcome::Success)
    }

    /// The server-given delay, if any.
    pub const fn server_delay(&self) -> Option<Duration> {
        match self {
            Outcome::Retryable { after } => *after,
            _ => None,
        }
    }
}

/// Decides the [`Outcome`] of each attempt's result.
///
/// Implemented for every `Fn(&E) -> Outcome` closure (an `Ok` is then always a success), and by
/// [`AnyError`], [`ByTrait`], [`results`] and [`RetryIf`].
///
/// # Example
/// ```
/// use steadfast::classify::{Classifier, Outcome};
///
/// struct OnlyTimeouts;
/// impl<T> Classifier<T, std::io::Error> for OnlyTimeouts {
///     fn classify(&self, result: &Result<T, std::io::Error>) -> Outcome {
///         match result {
///             Ok(_) => Outcome::Success,
///             Err(e) if e.kind() == std::io::ErrorKind::TimedOut => Outcome::RETRYABLE,
///             Err(_) => Outcome::NonRetryable,
///         }
///     }
/// }
/// ```
pub trait Classifier<T, E> {
    /// The outcome of one attempt.
    fn classify(&self, result: &Result<T, E>) -> Outcome;

    /// Whether the attempt just classified is the last whatever its outcome, and the reason
    /// the call then stops with: the tower layer says [`Stop::NotCloneable`](crate::Stop) for
    /// a request it cannot copy for another attempt. A failure keeps its outcome (the breaker
    /// and the budget count it as what it was); only the retry does not happen. `None` (the
    /// default): the policy decides.
    #[inline]
    fn stop_after(&self) -> Option<crate::Stop> {
        None
    }
}

impl<T, E, F> Classifier<T, E> for F
where
    F: Fn(&E) -> Outcome,
{
    #[inline]
    fn classify(&self, result: &Result<T, E>) -> Outcome {
        match result {
            Ok(_) => Outcome::Success,
            Err(e) => self(e),
        }
    }
}

/// The default classifier: every `Ok` is a success and every error is retryable.
///
/// # Example
/// ```
/// use steadfast::classify::{AnyError, Classifier, Outcome};
///
/// assert_eq!(AnyError.classify(&Err::<(), _>("boom")), Outcome::RETRYABLE);
/// ```
#[derive(Debug, Clone, Copy, Default)]
pub struct AnyError;

impl<T, E> Classifier<T, E> for AnyError {
    #[inline]
    fn classify(&self, result: &Result<T, E>) -> Outcome {
        match result {
            Ok(_) => Outcome::Success,
            Err(_) => Outcome::RETRYABLE,
        }
    }
}

/// An error type that knows whether it is worth retrying.
///
/// Implemented for [`std::io::Error`] and [`std::io::ErrorKind`] (see [`io`]); use it through
/// [`ByTrait`].
///
/// # Example
/// ```
/// use steadfast::classify::{Classify, Outcome};
///
/// #[derive(Debug)]
/// enum DbError { Deadlock, UniqueViolation }
///
/// impl Classify for DbError {
///     fn classify(&self) -> Outcome {
///         match self {
///             DbError::Deadlock => Outcome::RETRYABLE,
///             DbError::UniqueViolation => Outcome::NonRetryable,
///         }
///     }
/// }
/// ```
pub trait Classify {
    /// The outcome of an attempt that failed with this error.
    fn classify(&self) -> Outcome;
}

/// Classifies errors by their own [`Classify`] implementation.
///
/// # Example
/// ```
/// use std::io;
/// use steadfast::classify::{ByTrait, Classifier, Outcome};
///
/// let refused = io::Error::from(io::ErrorKind::ConnectionRefused);
/// assert_eq!(ByTrait.classify(&Err::<(), _>(refused)), Outcome::RETRYABLE);
/// ```
#[derive(Debug, Clone, Copy, Default)]
pub struct ByTrait;

impl<T, E: Classify> Classifier<T, E> for ByTrait {
    #[inline]
    fn classify(&self, result: &Result<T, E>) -> Outcome {
        match result {
            Ok(_) => Outcome::Success,
            Err(e) => e.classify(),
        }
    }
}

/// Retries the errors a predicate accepts; every other error is returned at once.
///
/// Made by [`Call::retry_if`](crate::retry::Call::retry_if) and
/// [`BlockingCall::retry_if`](crate::retry::BlockingCall::retry_if).
///
/// # Example
/// ```
/// use steadfast::classify::{Classifier, Outcome, RetryIf};
///
/// let c = RetryIf::new(|e: &&str| *e == "busy");
/// assert_eq!(c.classify(&Err::<(), _>("busy")), Outcome::RETRYABLE);
/// assert_eq!(c.classify(&Err::<(), _>("bad input")), Outcome::NonRetryable);
/// ```
#[derive(Debug, Clone, Copy)]
pub struct RetryIf<P>(P);

impl<P> RetryIf<P> {
    /// Wraps a predicate.
    pub fn new(predicate: P) -> Self {
        RetryIf(predicate)
    }
}

impl<T, E, P: Fn(&E) -> bool> Classifier<T, E> for RetryIf<P> {
    #[inline]
    fn classify(&self, result: &Result<T, E>) -> Outcome {
        match result {
            Ok(_) => Outcome::Success,
            Err(e) if (self.0)(e) => Outcome::RETRYABLE,
            Err(_) => Outcome::NonRetryable,
        }
    }
}

/// A classifier of whole results, for when an `Ok` may still be worth retrying.
///
/// When retries stop on a retryable `Ok`, the call returns that last `Ok` as it is.
///
/// # Example
/// ```
/// use steadfast::classify::{self, Classifier, Outcome};
///
/// struct Response { status: u16 }
/// let c = classify::results(|r: &Result<Response, std::io::Error>| match r {
///     Ok(resp) => classify::http::status(resp.status),
///     Err(_) => Outcome::RETRYABLE,
/// });
/// assert_eq!(c.classify(&Ok(Response { status: 503 })), Outcome::RETRYABLE);
/// ```
pub fn results<T, E, F: Fn(&Result<T, E>) -> Outcome>(f: F) -> Results<F> {
    Results(f)
}

/// See [`results`].
#[derive(Debug, Clone, Copy)]
pub struct Results<F>(F);

impl<T, E, F: Fn(&Result<T, E>) -> Outcome> Classifier<T, E> for Results<F> {
    #[inline]
    fn classify(&self, result: &Result<T, E>) -> Outcome {
        (self.0)(result)
    }
}
