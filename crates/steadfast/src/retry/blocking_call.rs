//! [`BlockingCall`]: one blocking call under a [`Retry`] policy, the mirror of
//! [`Call`](super::Call).

use std::ops::ControlFlow;

use super::blocking;
use super::call::break_value;
use super::guards::Guards;
use super::hooks::{
    ExhaustedHook, NoHook, OnExhausted, OnExhaustedFn, OnRetry, OnRetryFn, RetryHook,
};
use super::options::Retry;
use crate::breaker::Breaker;
use crate::classify::{AnyError, Classifier, Outcome, RetryIf};
use crate::error::Error;
use crate::limit::{Bulkhead, RateLimiter};
use crate::observe::Probe;

/// One blocking call under a [`Retry`] policy; the mirror of [`Call`](super::Call), made by
/// [`Retry::call_blocking`].
///
/// # Example
/// ```
/// use std::time::Duration;
/// use steadfast::Retry;
///
/// let retry = Retry::fixed(Duration::from_millis(1)).max_attempts(3).build().unwrap();
/// let mut tries = 0;
/// let value = retry
///     .call_blocking(|| {
///         tries += 1;
///         if tries < 3 { Err("busy") } else { Ok(tries) }
///     })
///     .retry_if(|e| *e == "busy")
///     .run();
/// assert_eq!(value.unwrap(), 3);
/// ```
#[derive(Debug)]
#[must_use = "a call does nothing until `.run()`"]
pub struct BlockingCall<'p, F, C = AnyError, R = NoHook, X = NoHook> {
    policy: &'p Retry,
    op: F,
    classifier: C,
    on_retry: R,
    on_exhausted: X,
    guards: Guards<'p>,
}

impl<'p, F, T, E, C, R, X> BlockingCall<'p, F, C, R, X>
where
    F: FnMut() -> Result<T, E>,
{
    /// Uses this classifier.
    pub fn classify<C2: Classifier<T, E>>(self, classifier: C2) -> BlockingCall<'p, F, C2, R, X> {
        BlockingCall {
            policy: self.policy,
            op: self.op,
            classifier,
            on_retry: self.on_retry,
            on_exhausted: self.on_exhausted,
            guards: self.guards,
        }
    }

    /// Classifies errors with a closure.
    pub fn classify_error<G: Fn(&E) -> Outcome>(self, classify: G) -> BlockingCall<'p, F, G, R, X> {
        self.classify(classify)
    }

    /// Retries only the errors `predicate` accepts.
    pub fn retry_if<P: Fn(&E) -> bool>(
        self,
        predicate: P,
    ) -> BlockingCall<'p, F, RetryIf<P>, R, X> {
        self.classify(RetryIf::new(predicate))
    }

    /// Runs `hook` before each retry.
    pub fn on_retry<H: FnMut(&OnRetry<'_, T, E>)>(
        self,
        hook: H,
    ) -> BlockingCall<'p, F, C, OnRetryFn<H>, X> {
        BlockingCall {
            policy: self.policy,
            op: self.op,
            classifier: self.classifier,
            on_retry: OnRetryFn(hook),
            on_exhausted: self.on_exhausted,
            guards: self.guards,
        }
    }

    /// Runs `hook` once when the policy's allowance runs out.
    pub fn on_exhausted<H: FnMut(&mut OnExhausted<'_, T, E>)>(
        self,
        hook: H,
    ) -> BlockingCall<'p, F, C, R, OnExhaustedFn<H>> {
        BlockingCall {
            policy: self.policy,
            op: self.op,
            classifier: self.classifier,
            on_retry: self.on_retry,
            on_exhausted: OnExhaustedFn(hook),
            guards: self.guards,
        }
    }

    /// Runs every attempt through `breaker`, as [`Call::breaker`](super::Call::breaker) does.
    pub fn breaker(mut self, breaker: &'p Breaker) -> Self {
        self.guards.breaker = Some(breaker);
        self
    }

    /// Runs the call in a free place of `bulkhead` (a blocking call does not queue), or fails
    /// with [`ErrorKind::BulkheadFull`](crate::ErrorKind::BulkheadFull).
    pub fn bulkhead(mut self, bulkhead: &'p Bulkhead) -> Self {
        self.guards.bulkhead = Some(bulkhead);
        self
    }

    /// Admits the call through `limiter` first (a wait sleeps the thread).
    pub fn rate_limiter(mut self, limiter: &'p RateLimiter) -> Self {
        self.guards.limiter = Some(limiter);
        self
    }

    /// Both hooks at once (the executor's call).
    pub(crate) fn on_hooks<R2, X2>(
        self,
        on_retry: R2,
        on_exhausted: X2,
    ) -> BlockingCall<'p, F, C, R2, X2> {
        BlockingCall {
            policy: self.policy,
            op: self.op,
            classifier: self.classifier,
            on_retry,
            on_exhausted,
            guards: self.guards,
        }
    }

    /// Every strategy at once (the executor's plan).
    pub(crate) fn with_guards(mut self, guards: Guards<'p>) -> Self {
        self.guards = guards;
        self
    }

    /// Runs the call on this thread.
    pub fn run(self) -> Result<T, Error<E>>
    where
        C: Classifier<T, E>,
        R: RetryHook<T, E>,
        X: ExhaustedHook<T, E>,
    {
        self.run_with_probe(NoHook)
    }

    /// Runs the call on this thread, reporting its events to `probe` (the executor's
    /// observers).
    pub(crate) fn run_with_probe<P: Probe>(mut self, probe: P) -> Result<T, Error<E>>
    where
        C: Classifier<T, E>,
        R: RetryHook<T, E>,
        X: ExhaustedHook<T, E>,
    {
        blocking::execute(
            self.policy,
            self.op,
            &self.classifier,
            &mut self.on_retry,
            &mut self.on_exhausted,
            |_: &T| false,
            self.guards,
            probe,
        )
    }
}

impl<F, B, E, C, R, X> BlockingCall<'_, F, C, R, X>
where
    F: FnMut() -> Result<ControlFlow<B>, E>,
{
    /// The blocking mirror of [`Call::run_loop`](super::Call::run_loop).
    pub fn run_loop(mut self) -> Result<B, Error<E>>
    where
        C: Classifier<ControlFlow<B>, E>,
        R: RetryHook<ControlFlow<B>, E>,
        X: ExhaustedHook<ControlFlow<B>, E>,
    {
        let flow = blocking::execute(
            self.policy,
            self.op,
            &self.classifier,
            &mut self.on_retry,
            &mut self.on_exhausted,
            ControlFlow::is_continue,
            self.guards,
            NoHook,
        )?;
        Ok(break_value(flow))
    }
}

impl Retry {
    /// Starts a blocking call of `op`.
    pub fn call_blocking<F, T, E>(&self, op: F) -> BlockingCall<'_, F>
    where
        F: FnMut() -> Result<T, E>,
    {
        BlockingCall {
            policy: self,
            op,
            classifier: AnyError,
            on_retry: NoHook,
            on_exhausted: NoHook,
            guards: Guards::default(),
        }
    }

    /// Runs `op` on this thread until it succeeds or the policy stops, retrying every error.
    pub fn run_blocking<F, T, E>(&self, op: F) -> Result<T, Error<E>>
    where
        F: FnMut() -> Result<T, E>,
    {
        self.call_blocking(op).run()
    }
}
