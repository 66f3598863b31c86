//! [`Call`]: one async call under a [`Retry`] policy, and the future that runs it.

use crate::ErrorKind;
use std::future::{Future, poll_fn};
use std::ops::ControlFlow;
use std::pin::{Pin, pin};
use std::sync::atomic::{AtomicU32, Ordering};
use std::task::{Context, Poll, ready};

use super::engine::{self, Engine, OutOfLine};
use super::guards::{Guarded, Guards, NoGuards};
use super::hooks::{
    ExhaustedHook, NoHook, OnExhausted, OnExhaustedFn, OnRetry, OnRetryFn, RetryHook,
};
use super::options::Retry;
use crate::breaker::{Breaker, ClosedTicket};
use crate::budget::Budget;
use crate::classify::{AnyError, Classifier, Outcome, RetryIf};
use crate::error::Error;
use crate::hedge::Hedge;
use crate::limit::{Bulkhead, RateLimiter};
use crate::observe::{Both, Probe, Timeline};

/// One async call under a [`Retry`] policy, with its classifier and hooks; made by
/// [`Retry::call`], finished by [`run`](Self::run).
///
/// # Example
/// ```
/// use std::time::Duration;
/// use steadfast::{classify, Retry};
///
/// # async fn connect() -> std::io::Result<()> { Err(std::io::ErrorKind::ConnectionRefused.into()) }
/// # #[tokio::main(flavor = "current_thread", start_paused = true)]
/// # async fn main() {
/// let retry = Retry::exponential(Duration::from_millis(50)).max_attempts(4).build().unwrap();
/// let result = retry
///     .call(|| connect())
///     .classify(classify::ByTrait) // io::Error knows which kinds are transient
///     .on_retry(|r| eprintln!("attempt {} failed, retrying in {:?}", r.attempt(), r.delay()))
///     .run()
///     .await;
/// # let _ = result;
/// # }
/// ```
#[derive(Debug)]
#[must_use = "a call does nothing until `.run()` is awaited"]
pub struct Call<'p, F, C = AnyError, R = NoHook, X = NoHook, P = NoHook, Gs = NoGuards> {
    pub(super) policy: &'p Retry,
    pub(super) op: F,
    pub(super) classifier: C,
    pub(super) on_retry: R,
    pub(super) on_exhausted: X,
    pub(super) probe: P,
    pub(super) guards: Gs,
}

impl<'p, F, Fut, T, E, C, R, X, P, Gs> Call<'p, F, C, R, X, P, Gs>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, E>>,
{
    /// Uses this classifier (see [`classify`](crate::classify)).
    pub fn classify<C2: Classifier<T, E>>(self, classifier: C2) -> Call<'p, F, C2, R, X, P, Gs> {
        Call {
            policy: self.policy,
            op: self.op,
            classifier,
            on_retry: self.on_retry,
            on_exhausted: self.on_exhausted,
            probe: self.probe,
            guards: self.guards,
        }
    }

    /// Classifies errors with a closure (an `Ok` is a success).
    pub fn classify_error<G: Fn(&E) -> Outcome>(self, classify: G) -> Call<'p, F, G, R, X, P, Gs> {
        self.classify(classify)
    }

    /// Retries only the errors `predicate` accepts; others are returned at once.
    pub fn retry_if<Q: Fn(&E) -> bool>(self, predicate: Q) -> Call<'p, F, RetryIf<Q>, R, X, P, Gs> {
        self.classify(RetryIf::new(predicate))
    }

    /// Runs `hook` before each retry (see [`OnRetry`]).
    pub fn on_retry<H: FnMut(&OnRetry<'_, T, E>)>(
        self,
        hook: H,
    ) -> Call<'p, F, C, OnRetryFn<H>, X, P, Gs> {
        Call {
            policy: self.policy,
            op: self.op,
            classifier: self.classifier,
            on_retry: OnRetryFn(hook),
            on_exhausted: self.on_exhausted,
            probe: self.probe,
            guards: self.guards,
        }
    }

    /// Runs `hook` once when the policy's allowance runs out (see [`OnExhausted`]).
    pub fn on_exhausted<H: FnMut(&mut OnExhausted<'_, T, E>)>(
        self,
        hook: H,
    ) -> Call<'p, F, C, R, OnExhaustedFn<H>, P, Gs> {
        Call {
            policy: self.policy,
            op: self.op,
            classifier: self.classifier,
            on_retry: self.on_retry,
            on_exhausted: OnExhaustedFn(hook),
            probe: self.probe,
            guards: self.guards,
        }
    }

    /// Runs every attempt through `breaker` (see [`breaker`](crate::breaker)): an open breaker
    /// refuses the next attempt with [`ErrorKind::CircuitOpen`](crate::ErrorKind::CircuitOpen) without running it.
    pub fn breaker(self, breaker: &'p Breaker) -> Call<'p, F, C, R, X, P, Gs::WithBreaker>
    where
        Gs: Guarded<'p>,
    {
        let guards = self.guards.with_breaker(breaker);
        self.with_guards(guards)
    }

    /// Runs the call (all its attempts) in a place of `bulkhead`, or fails with
    /// [`ErrorKind::BulkheadFull`](crate::ErrorKind::BulkheadFull).
    pub fn bulkhead(self, bulkhead: &'p Bulkhead) -> Call<'p, F, C, R, X, P, Guards<'p>>
    where
        Gs: Guarded<'p>,
    {
        self.guard(|g| g.bulkhead = Some(bulkhead))
    }

    /// Admits the call through `limiter` first, or fails with [`ErrorKind::RateLimited`](crate::ErrorKind::RateLimited).
    pub fn rate_limiter(self, limiter: &'p RateLimiter) -> Call<'p, F, C, R, X, P, Guards<'p>>
    where
        Gs: Guarded<'p>,
    {
        self.guard(|g| g.limiter = Some(limiter))
    }

    /// Spends retries from `budget` (see [`budget`](crate::budget)): a refused retry ends
    /// the call with the last error and [`Stop::BudgetExhausted`](crate::Stop); adaptive
    /// throttling may refuse the call itself ([`ErrorKind::Throttled`](crate::ErrorKind::Throttled)).
    pub fn budget(self, budget: &'p Budget) -> Call<'p, F, C, R, X, P, Guards<'p>>
    where
        Gs: Guarded<'p>,
    {
        self.guard(|g| g.budget = Some(budget))
    }

    /// Hedges each try (see [`hedge`](crate::hedge)): after the hedge's delay with no
    /// acceptable result, another attempt runs beside the first, and the first acceptable
    /// result wins. Calling this marks the operation safe to run twice at once.
    pub fn hedge(self, hedge: &'p Hedge) -> Call<'p, F, C, R, X, P, Guards<'p>>
    where
        Gs: Guarded<'p>,
    {
        self.guard(|g| g.hedge = Some(hedge))
    }

    /// The guards so far, with `set` applied.
    fn guard(self, set: impl FnOnce(&mut Guards<'p>)) -> Call<'p, F, C, R, X, P, Guards<'p>>
    where
        Gs: Guarded<'p>,
    {
        let mut guards = self.guards.guards();
        set(&mut guards);
        self.with_guards(guards)
    }

    /// Both hooks at once (the executor's call).
    pub(crate) fn with_hooks<R2, X2>(
        self,
        on_retry: R2,
        on_exhausted: X2,
    ) -> Call<'p, F, C, R2, X2, P, Gs> {
        Call {
            policy: self.policy,
            op: self.op,
            classifier: self.classifier,
            on_retry,
            on_exhausted,
            probe: self.probe,
            guards: self.guards,
        }
    }

    /// All of them at once (the executor's plan).
    pub(crate) fn with_guards<G>(self, guards: G) -> Call<'p, F, C, R, X, P, G> {
        Call {
            policy: self.policy,
            op: self.op,
            classifier: self.classifier,
            on_retry: self.on_retry,
            on_exhausted: self.on_exhausted,
            probe: self.probe,
            guards,
        }
    }

    /// Runs the call. Dropping the returned future stops everything at once: the attempt in
    /// flight is dropped and no further attempt starts.
    #[inline]
    pub fn run(
        self,
    ) -> impl Future<Output = Result<T, Error<E>>> + use<'p, F, Fut, T, E, C, R, X, P, Gs>
    where
        C: Classifier<T, E>,
        R: RetryHook<T, E>,
        X: ExhaustedHook<T, E>,
        P: Probe,
        Gs: Guarded<'p>,
    {
        self.run_gated(Untimed, |_, call, first| engine_run(call, first))
    }

    /// The operation, for a call that runs under another plan.
    pub(crate) fn into_op(self) -> F {
        self.op
    }

    /// The future of [`run`](Self::run), with `gate` deciding whether the first attempt
    /// runs in it and `start` making the engine's future for the rest (a handle's call
    /// checks there that its plan is current, and finds the current one in `start`
    /// otherwise).
    #[inline]
    pub(crate) fn run_gated<G, M, S>(
        self,
        gate: G,
        start: M,
    ) -> RunCall<'p, F, Fut, C, R, X, P, Gs, G, M, S>
    where
        G: Gate,
        M: Fn(G, Self, First<T, E>) -> S,
    {
        RunCall {
            call: Some(self),
            ticket: None,
            gate,
            start,
            attempt: None,
            engine: OutOfLine::empty(),
        }
    }

    /// Runs the call and returns, with its result, the [`Timeline`] of its attempts.
    pub async fn run_with_timeline(mut self) -> (Result<T, Error<E>>, Timeline)
    where
        C: Classifier<T, E>,
        R: RetryHook<T, E>,
        X: ExhaustedHook<T, E>,
        P: Probe,
        Gs: Guarded<'p>,
    {
        let mut timeline = Timeline::default();
        let result = engine::execute(Engine {
            policy: self.policy,
            op: self.op,
            classifier: &self.classifier,
            on_retry: &mut self.on_retry,
            on_exhausted: &mut self.on_exhausted,
            restart: |_: &T| false,
            progress: None,
            first: None,
            probe: Both(self.probe, &mut timeline),
            guards: self.guards.guards(),
        })
        .await;
        (result, timeline)
    }

    /// Reports the call's events to `probe` too.
    pub(crate) fn with_probe<P2: Probe>(self, probe: P2) -> Call<'p, F, C, R, X, P2, Gs> {
        Call {
            policy: self.policy,
            op: self.op,
            classifier: self.classifier,
            on_retry: self.on_retry,
            on_exhausted: self.on_exhausted,
            probe,
            guards: self.guards,
        }
    }

    /// Runs the call until `cancel` completes, then stops it and returns
    /// [`ErrorKind::Cancelled`](crate::ErrorKind::Cancelled).
    ///
    /// ```
    /// use std::time::Duration;
    /// use steadfast::{ErrorKind, Jitter, Retry};
    ///
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() {
    /// let retry = Retry::fixed(Duration::from_secs(1)).jitter(Jitter::None).unbounded().build().unwrap();
    /// let shutdown = tokio::time::sleep(Duration::from_millis(2500));
    /// let err = retry.call(|| async { Err::<(), _>("down") }).run_until(shutdown).await.unwrap_err();
    /// assert!(matches!(err.kind(), ErrorKind::Cancelled { attempts: 3, .. }));
    /// # }
    /// ```
    pub async fn run_until<S: Future<Output = ()>>(mut self, cancel: S) -> Result<T, Error<E>>
    where
        C: Classifier<T, E>,
        R: RetryHook<T, E>,
        X: ExhaustedHook<T, E>,
        P: Probe,
        Gs: Guarded<'p>,
    {
        let progress = AtomicU32::new(0);
        let mut engine = pin!(engine::execute(Engine {
            policy: self.policy,
            op: self.op,
            classifier: &self.classifier,
            on_retry: &mut self.on_retry,
            on_exhausted: &mut self.on_exhausted,
            restart: |_: &T| false,
            progress: Some(&progress),
            first: None,
            probe: self.probe,
            guards: self.guards.guards(),
        }));
        let mut cancel = pin!(cancel);
        poll_fn(|cx| {
            if cancel.as_mut().poll(cx).is_ready() {
                return Poll::Ready(Err(Error::new(ErrorKind::Cancelled {
                    attempts: progress.load(Ordering::Relaxed),
                })));
            }
            engine.as_mut().poll(cx)
        })
        .await
    }
}

impl<'p, F, Fut, B, E, C, R, X, P, Gs> Call<'p, F, C, R, X, P, Gs>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<ControlFlow<B>, E>>,
{
    /// Runs a long-lived operation in a loop (a reconnect loop, a consumer): `Ok(Continue(()))`
    /// is a success that resets the policy (attempts, deadline and backoff start over) and runs
    /// the operation again at once; `Ok(Break(b))` ends the loop with `b`; errors are retried
    /// by the policy, so `max_attempts` and `total_timeout` bound each outage, not the loop.
    ///
    /// ```
    /// use std::ops::ControlFlow;
    /// use std::time::Duration;
    /// use steadfast::Retry;
    ///
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() {
    /// let retry = Retry::exponential(Duration::from_millis(100)).max_attempts(3).build().unwrap();
    /// let mut sessions = 0;
    /// let outcome = retry
    ///     .call(|| {
    ///         sessions += 1;
    ///         let n = sessions;
    ///         async move {
    ///             match n {
    ///                 1 | 3 | 4 => Err("connection reset"), // two failures in a row at most
    ///                 2 => Ok(ControlFlow::Continue(())),     // a session that ended cleanly
    ///                 _ => Ok(ControlFlow::Break("shut down")),
    ///             }
    ///         }
    ///     })
    ///     .run_loop()
    ///     .await;
    /// assert_eq!((outcome.unwrap(), sessions), ("shut down", 5));
    /// # }
    /// ```
    pub async fn run_loop(mut self) -> Result<B, Error<E>>
    where
        C: Classifier<ControlFlow<B>, E>,
        R: RetryHook<ControlFlow<B>, E>,
        X: ExhaustedHook<ControlFlow<B>, E>,
        P: Probe,
        Gs: Guarded<'p>,
    {
        let flow = engine::execute(Engine {
            policy: self.policy,
            op: self.op,
            classifier: &self.classifier,
            on_retry: &mut self.on_retry,
            on_exhausted: &mut self.on_exhausted,
            restart: ControlFlow::is_continue,
            progress: None,
            first: None,
            probe: self.probe,
            guards: self.guards.guards(),
        })
        .await?;
        Ok(break_value(flow))
    }
}

pub(super) fn break_value<B>(flow: ControlFlow<B>) -> B {
    match flow {
        ControlFlow::Break(b) => b,
        // The engine only returns an `Ok` it did not restart on, which is a `Break`.
        ControlFlow::Continue(()) => unreachable!("a loop returns only on Break"),
    }
}

impl Retry {
    /// Starts an async call of `op`, to give a classifier and hooks before `.run()`.
    pub fn call<F, Fut, T, E>(&self, op: F) -> Call<'_, F>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, E>>,
    {
        Call {
            policy: self,
            op,
            classifier: AnyError,
            on_retry: NoHook,
            on_exhausted: NoHook,
            probe: NoHook,
            guards: NoGuards,
        }
    }

    /// Runs `op` until it succeeds or the policy stops, retrying every error.
    ///
    /// The same as `self.call(op).run()`; see [`Call::run`].
    #[inline]
    pub fn run<F, Fut, T, E>(&self, op: F) -> impl Future<Output = Result<T, Error<E>>>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, E>>,
    {
        self.call(op).run()
    }
}

/// The error of an `Err` the classifier called a success (on the first attempt).
#[cold]
pub(super) fn success_error<E>(source: E) -> Error<E> {
    Error::new(ErrorKind::Operation {
        source,
        attempts: 1,
        stop: crate::error::Stop::NonRetryable,
    })
}

/// The first attempt's result and the attempts made, handed to the engine.
pub(crate) type First<T, E> = Option<(Result<T, E>, u32)>;

/// Whether a call's first attempt may run in the call's own `poll`, outside the engine.
pub(crate) trait Gate: Copy {
    /// Open for a plain call under `policy`.
    fn open(self, policy: &Retry) -> bool;
}

/// The gate of a call under a policy: open when no timeout bounds the attempt.
#[derive(Clone, Copy)]
pub(crate) struct Untimed;

impl Gate for Untimed {
    #[inline(always)]
    fn open(self, policy: &Retry) -> bool {
        engine::fast_path(policy)
    }
}

pin_project_lite::pin_project! {
    /// A call under way. Its `poll` inlines into the caller's: a plain call's first
    /// attempt (on a closed breaker's ticket when a breaker is its only strategy) runs here
    /// when `gate` is open, and a success returns from here; anything else goes to the
    /// engine (`start` makes its future), which is polled and dropped out of line.
    pub(crate) struct RunCall<'p, F, Fut, C, R, X, P, Gs, G, M, S> {
        // `None` once the engine owns the call.
        call: Option<Call<'p, F, C, R, X, P, Gs>>,
        ticket: Option<(&'p Breaker, ClosedTicket)>,
        gate: G,
        start: M,
        #[pin]
        attempt: Option<Fut>,
        #[pin]
        engine: OutOfLine<S>,
    }
}

/// Whether the first attempt of `call` runs outside the engine, and on which closed
/// breaker's ticket: a plain call (no hook, observer or timeout) with no strategy but, at
/// most, a closed breaker.
#[inline]
#[allow(clippy::option_option)]
fn first_attempt<'p, F, T, E, C, R, X, P, Gs>(
    call: &Call<'p, F, C, R, X, P, Gs>,
) -> Option<Option<(&'p Breaker, ClosedTicket)>>
where
    R: RetryHook<T, E>,
    X: ExhaustedHook<T, E>,
    P: Probe,
    Gs: Guarded<'p>,
{
    if R::ACTIVE || X::ACTIVE || P::ACTIVE {
        return None;
    }
    if !Gs::ACTIVE {
        return Some(None);
    }
    let breaker = match call.guards.breaker_only() {
        Some(b) => b,
        None => {
            let set = call.guards.guards();
            if !set.only_breaker() {
                return None;
            }
            match set.breaker {
                Some(b) => b,
                None => return Some(None),
            }
        }
    };
    // Open or half-open, the engine takes a real permit (or is refused).
    breaker
        .closed_ticket()
        .map(|ticket| Some((breaker, ticket)))
}

/// Hands the call to the engine, with the attempt already made, if any, and polls it.
#[inline(never)]
fn hand_over<'p, F, T, E, C, R, X, P, Gs, G, M, S>(
    call: &mut Option<Call<'p, F, C, R, X, P, Gs>>,
    gate: G,
    start: &M,
    mut engine: Pin<&mut OutOfLine<S>>,
    first: First<T, E>,
    cx: &mut Context<'_>,
) -> Poll<Result<T, Error<E>>>
where
    M: Fn(G, Call<'p, F, C, R, X, P, Gs>, First<T, E>) -> S,
    S: Future<Output = Result<T, Error<E>>>,
{
    if let Some(call) = call.take() {
        engine.as_mut().start(start(gate, call, first));
    }
    engine.poll(cx)
}

impl<'p, F, Fut, T, E, C, R, X, P, Gs, G, M, S> Future
    for RunCall<'p, F, Fut, C, R, X, P, Gs, G, M, S>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, E>>,
    C: Classifier<T, E>,
    R: RetryHook<T, E>,
    X: ExhaustedHook<T, E>,
    P: Probe,
    Gs: Guarded<'p>,
    G: Gate,
    M: Fn(G, Call<'p, F, C, R, X, P, Gs>, First<T, E>) -> S,
    S: Future<Output = Result<T, Error<E>>>,
{
    type Output = Result<T, Error<E>>;

    #[inline(always)]
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut this = self.project();
        let Some(call) = this.call.as_mut() else {
            return this.engine.poll(cx);
        };
        if this.attempt.is_none() {
            let first = match this.gate.open(call.policy) {
                true => first_attempt::<F, T, E, C, R, X, P, Gs>(call),
                false => None,
            };
            match first {
                Some(ticket) => {
                    if Gs::ACTIVE {
                        *this.ticket = ticket;
                    }
                    this.attempt.set(Some((call.op)()));
                }
                None => return hand_over(this.call, *this.gate, this.start, this.engine, None, cx),
            }
        }
        let Some(attempt) = this.attempt.as_mut().as_pin_mut() else {
            return Poll::Pending;
        };
        let result = ready!(attempt.poll(cx));
        let outcome = call.classifier.classify(&result);
        if Gs::ACTIVE
            && let Some((breaker, ticket)) = this.ticket.take()
        {
            breaker.settle_closed(ticket, &outcome);
        }
        if let Outcome::Success = outcome {
            return Poll::Ready(result.map_err(success_error));
        }
        hand_over(
            this.call,
            *this.gate,
            this.start,
            this.engine,
            Some((result, 1)),
            cx,
        )
    }
}

/// The engine's future for `call`, which owns it.
pub(crate) async fn engine_run<'p, F, Fut, T, E, C, R, X, P, Gs>(
    call: Call<'p, F, C, R, X, P, Gs>,
    first: First<T, E>,
) -> Result<T, Error<E>>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, E>>,
    C: Classifier<T, E>,
    R: RetryHook<T, E>,
    X: ExhaustedHook<T, E>,
    P: Probe,
    Gs: Guarded<'p>,
{
    let Call {
        policy,
        op,
        classifier,
        mut on_retry,
        mut on_exhausted,
        probe,
        guards,
    } = call;
    engine::execute(Engine {
        policy,
        op,
        classifier: &classifier,
        on_retry: &mut on_retry,
        on_exhausted: &mut on_exhausted,
        restart: |_: &T| false,
        progress: None,
        first,
        probe,
        guards: guards.guards(),
    })
    .await
}
