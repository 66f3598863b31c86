//! Fallback: a value in place of a failure, for the failures you choose.
//!
//! A [`Fallback`] wraps a whole call (it is the outermost strategy): when the call ends in an
//! error it [handles](When), its action turns the error into a value. Choose the failures with
//! [`On`] (rejections, exhaustion, timeouts, any failure) or a closure over the [`Error`] (a
//! specific error of the operation); give a value or a function of the error.
//!
//! # Example
//! ```
//! use steadfast::fallback::{Fallback, On};
//! use steadfast::limit::RateLimiter;
//! use steadfast::Retry;
//!
//! # #[tokio::main(flavor = "current_thread", start_paused = true)]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let retry = Retry::immediate().max_attempts(2).build()?;
//! let limiter = RateLimiter::per_second(1).burst(1).build()?;
//! let price = || retry.call(|| async { Ok::<u32, &str>(42) }).rate_limiter(&limiter).run();
//!
//! let cached = 40;
//! assert_eq!(Fallback::on(On::REJECTED).value(cached).run(price()).await.unwrap(), 42);
//! // Over the rate: the cached price instead of an error.
//! assert_eq!(Fallback::on(On::REJECTED).value(cached).run(price()).await.unwrap(), 40);
//!
//! // A function of the error, for the operation's own errors only.
//! let down = retry.call(|| async { Err::<u32, _>("down") }).run();
//! let v = Fallback::on(On::FAILED).with(|e: steadfast::Error<&str>| e.attempts()).run(down).await;
//! assert_eq!(v.unwrap(), 2);
//! # Ok(()) }
//! ```

use crate::ErrorKind;
use std::future::Future;
use std::ops::BitOr;

use crate::error::Error;

/// Which failures a fallback handles; combine with `|`.
///
/// ```
/// use steadfast::fallback::{On, When};
/// use steadfast::Error;
///
/// let on = On::REJECTED | On::TIMEOUT;
/// assert!(When::<()>::handles(&on, &Error::<()>::rate_limited(std::time::Duration::ZERO)));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct On(u8);

impl On {
    /// A strategy refused the call: circuit open, bulkhead full, rate limited, or a custom
    /// policy's rejection.
    pub const REJECTED: On = On(1);
    /// The operation failed and the policy stopped retrying (attempts, deadline or backoff
    /// used up): [`ErrorKind::Operation`] with an exhaustion [`Stop`](crate::Stop).
    pub const EXHAUSTED: On = On(2);
    /// A timeout (an attempt's or the call's).
    pub const TIMEOUT: On = On(4);
    /// Any error of the operation ([`ErrorKind::Operation`], retryable or not).
    pub const FAILED: On = On(8);
    /// The call was cancelled.
    pub const CANCELLED: On = On(16);
    /// Every error.
    pub const ANY: On = On(u8::MAX);
}

impl BitOr for On {
    type Output = On;
    fn bitor(self, other: On) -> On {
        On(self.0 | other.0)
    }
}

/// Decides whether a fallback handles an error: [`On`], or any `Fn(&Error<E>) -> bool`.
pub trait When<E> {
    /// Whether `error` is replaced by the fallback's value.
    fn handles(&self, error: &Error<E>) -> bool;
}

impl<E> When<E> for On {
    fn handles(&self, error: &Error<E>) -> bool {
        let has = |flag: On| self.0 & flag.0 != 0;
        match error.kind() {
            _ if error.is_rejection() => has(On::REJECTED),
            ErrorKind::Operation { stop, .. } => {
                has(On::FAILED) || (has(On::EXHAUSTED) && stop.is_exhaustion())
            }
            ErrorKind::Timeout { .. } => has(On::TIMEOUT) || has(On::EXHAUSTED),
            ErrorKind::Cancelled { .. } => has(On::CANCELLED),
            _ => *self == On::ANY,
        }
    }
}

impl<E, F: Fn(&Error<E>) -> bool> When<E> for F {
    fn handles(&self, error: &Error<E>) -> bool {
        self(error)
    }
}

/// Turns a handled error into the call's value: [`Fallback::value`] or a function of the error.
pub trait Action<T, E> {
    /// The value in place of `error`.
    fn act(self, error: Error<E>) -> T;
}

/// A fixed value (see [`Fallback::value`]).
#[derive(Debug, Clone)]
pub struct Value<T>(T);

impl<T, E> Action<T, E> for Value<T> {
    fn act(self, _: Error<E>) -> T {
        self.0
    }
}

impl<T, E, F: FnOnce(Error<E>) -> T> Action<T, E> for F {
    fn act(self, error: Error<E>) -> T {
        self(error)
    }
}

/// A fallback: which failures, and what in their place. See the [module docs](self).
#[derive(Debug, Clone)]
#[must_use = "a fallback does nothing until `.run(call)`"]
pub struct Fallback<W, A = ()> {
    when: W,
    action: A,
}

impl<W> Fallback<W> {
    /// A fallback for the failures `when` handles ([`On`] or a closure).
    pub fn on(when: W) -> Self {
        Fallback { when, action: () }
    }

    /// Returns `value` in place of a handled failure.
    pub fn value<T>(self, value: T) -> Fallback<W, Value<T>> {
        Fallback {
            when: self.when,
            action: Value(value),
        }
    }

    /// Returns `f(error)` in place of a handled failure.
    pub fn with<F>(self, f: F) -> Fallback<W, F> {
        Fallback {
            when: self.when,
            action: f,
        }
    }
}

impl<W, A> Fallback<W, A> {
    /// Applies the fallback to a call's result: a handled error becomes the action's value,
    /// everything else stays as it is. Returns, too, whether the fallback was used.
    pub fn apply<T, E>(self, result: Result<T, Error<E>>) -> (Result<T, Error<E>>, bool)
    where
        W: When<E>,
        A: Action<T, E>,
    {
        match result {
            Err(e) if self.when.handles(&e) => (Ok(self.action.act(e)), true),
            other => (other, false),
        }
    }

    /// Runs `call` (any steadfast call's future) and applies the fallback to its result.
    pub async fn run<T, E, Fut>(self, call: Fut) -> Result<T, Error<E>>
    where
        Fut: Future<Output = Result<T, Error<E>>>,
        W: When<E>,
        A: Action<T, E>,
    {
        self.apply(call.await).0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Stop;
    use std::time::Duration;

    fn op(stop: Stop) -> Error<&'static str> {
        Error::new(ErrorKind::Operation {
            source: "down",
            attempts: 3,
            stop,
        })
    }

    #[test]
    fn on_sorts_errors_as_documented() {
        let limited = Error::<&str>::rate_limited(Duration::ZERO);
        assert!(On::REJECTED.handles(&limited));
        assert!(!On::EXHAUSTED.handles(&limited));
        assert!(On::EXHAUSTED.handles(&op(Stop::Exhausted)));
        assert!(On::EXHAUSTED.handles(&op(Stop::Deadline)));
        assert!(!On::EXHAUSTED.handles(&op(Stop::NonRetryable)));
        assert!(On::FAILED.handles(&op(Stop::NonRetryable)));
        assert!(!On::REJECTED.handles(&op(Stop::Exhausted)));
        assert!(On::ANY.handles(&Error::<&str>::new(ErrorKind::Cancelled { attempts: 1 })));
        assert!(!On::FAILED.handles(&Error::<&str>::new(ErrorKind::Cancelled { attempts: 1 })));
    }
}
