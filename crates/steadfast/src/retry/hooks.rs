use std::time::Duration;

use crate::classify::Outcome;
use crate::error::Stop;

/// What the `on_retry` hook sees: the attempt that just failed and the wait before the next.
///
/// It runs after the decision to retry and before the sleep, so it is the place to log, count,
/// or prepare context for the next attempt.
///
/// # Example
/// ```
/// use std::time::Duration;
/// use steadfast::{Jitter, Retry};
///
/// # #[tokio::main(flavor = "current_thread", start_paused = true)]
/// # async fn main() {
/// let retry = Retry::fixed(Duration::from_millis(10)).jitter(Jitter::None).max_attempts(2).build().unwrap();
/// let mut seen = Vec::new();
/// let _ = retry
///     .call(|| async { Err::<(), _>("busy") })
///     .on_retry(|r| seen.push((r.attempt(), r.delay(), r.error().copied())))
///     .run()
///     .await;
/// assert_eq!(seen, [(1, Duration::from_millis(10), Some("busy"))]);
/// # }
/// ```
#[derive(Debug)]
pub struct OnRetry<'a, T, E> {
    pub(crate) attempt: u32,
    pub(crate) last: Option<&'a Result<T, E>>,
    pub(crate) outcome: Outcome,
    pub(crate) delay: Duration,
    pub(crate) elapsed: Duration,
}

impl<'a, T, E> OnRetry<'a, T, E> {
    /// The attempt that failed: 1 for the first.
    pub fn attempt(&self) -> u32 {
        self.attempt
    }

    /// The error it failed with, if it returned one.
    pub fn error(&self) -> Option<&'a E> {
        self.last.and_then(|r| r.as_ref().err())
    }

    /// The value it returned, if a result classifier found an `Ok` worth retrying.
    pub fn value(&self) -> Option<&'a T> {
        self.last.and_then(|r| r.as_ref().ok())
    }

    /// Whether it ran out of time instead of returning.
    pub fn timed_out(&self) -> bool {
        self.last.is_none()
    }

    /// How it was classified (with the server-given delay, if any).
    pub fn outcome(&self) -> Outcome {
        self.outcome
    }

    /// The wait before the next attempt.
    pub fn delay(&self) -> Duration {
        self.delay
    }

    /// Time since the call started.
    pub fn elapsed(&self) -> Duration {
        self.elapsed
    }
}

/// What the `on_exhausted` hook sees when the policy's allowance ran out (attempts, deadline,
/// a server delay too long, the backoff's end), just before the call returns.
///
/// It may change the error ([`error_mut`](Self::error_mut)) to reframe it after repeated
/// failure. It does not run when a failure was simply not retryable.
///
/// # Example
/// ```
/// use std::time::Duration;
/// use steadfast::Retry;
///
/// # #[tokio::main(flavor = "current_thread", start_paused = true)]
/// # async fn main() {
/// let retry = Retry::fixed(Duration::from_millis(1)).max_attempts(3).build().unwrap();
/// let err = retry
///     .call(|| async { Err::<(), _>(String::from("refused")) })
///     .on_exhausted(|x| {
///         let attempts = x.attempts();
///         if let Some(e) = x.error_mut() {
///             *e = format!("payments unreachable after {attempts} tries: {e}");
///         }
///     })
///     .run()
///     .await
///     .unwrap_err();
/// assert_eq!(
///     err.operation_error().map(String::as_str),
///     Some("payments unreachable after 3 tries: refused")
/// );
/// # }
/// ```
#[derive(Debug)]
pub struct OnExhausted<'a, T, E> {
    pub(crate) attempts: u32,
    pub(crate) last: Option<&'a mut Result<T, E>>,
    pub(crate) stop: Stop,
    pub(crate) elapsed: Duration,
}

impl<T, E> OnExhausted<'_, T, E> {
    /// Attempts made, the first included.
    pub fn attempts(&self) -> u32 {
        self.attempts
    }

    /// Why retrying stopped.
    pub fn stop(&self) -> Stop {
        self.stop
    }

    /// The last error, if the last attempt returned one.
    pub fn error(&self) -> Option<&E> {
        self.last.as_deref().and_then(|r| r.as_ref().err())
    }

    /// The last error, to change it.
    pub fn error_mut(&mut self) -> Option<&mut E> {
        self.last.as_deref_mut().and_then(|r| r.as_mut().err())
    }

    /// The last result, if the last attempt returned (rather than timed out).
    pub fn result(&self) -> Option<&Result<T, E>> {
        self.last.as_deref()
    }

    /// Time since the call started.
    pub fn elapsed(&self) -> Duration {
        self.elapsed
    }
}

/// A hook run before each retry. Closures `FnMut(&OnRetry<T, E>)` become one through
/// [`Call::on_retry`](super::Call::on_retry).
pub trait RetryHook<T, E> {
    /// Whether the hook does anything (lets the engine skip reading the clock).
    const ACTIVE: bool = true;

    /// Whether the hook leaves a future for the engine to await before it sleeps
    /// ([`pending`](Self::pending)).
    const ASYNC: bool = false;

    /// Called before each retry.
    fn on_retry(&mut self, args: &OnRetry<'_, T, E>);

    /// The future [`on_retry`](Self::on_retry) left, which the engine awaits before the wait
    /// for the next attempt (an async hook's work).
    fn pending(
        &mut self,
    ) -> Option<std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>>> {
        None
    }
}

/// A hook run when the policy's allowance runs out. Closures `FnMut(&mut OnExhausted<T, E>)`
/// become one through [`Call::on_exhausted`](super::Call::on_exhausted).
pub trait ExhaustedHook<T, E> {
    /// Whether the hook does anything.
    const ACTIVE: bool = true;

    /// Called once, before the call returns.
    fn on_exhausted(&mut self, args: &mut OnExhausted<'_, T, E>);
}

/// The absent hook.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoHook;

impl<T, E> RetryHook<T, E> for NoHook {
    const ACTIVE: bool = false;

    #[inline]
    fn on_retry(&mut self, _: &OnRetry<'_, T, E>) {}
}

impl<T, E> ExhaustedHook<T, E> for NoHook {
    const ACTIVE: bool = false;

    #[inline]
    fn on_exhausted(&mut self, _: &mut OnExhausted<'_, T, E>) {}
}

/// A closure used as a [`RetryHook`].
#[derive(Debug, Clone, Copy)]
pub struct OnRetryFn<F>(pub(crate) F);

impl<T, E, F: FnMut(&OnRetry<'_, T, E>)> RetryHook<T, E> for OnRetryFn<F> {
    fn on_retry(&mut self, args: &OnRetry<'_, T, E>) {
        (self.0)(args)
    }
}

/// A closure used as an [`ExhaustedHook`].
#[derive(Debug, Clone, Copy)]
pub struct OnExhaustedFn<F>(pub(crate) F);

impl<T, E, F: FnMut(&mut OnExhausted<'_, T, E>)> ExhaustedHook<T, E> for OnExhaustedFn<F> {
    fn on_exhausted(&mut self, args: &mut OnExhausted<'_, T, E>) {
        (self.0)(args)
    }
}
