//! The async engine: one `async fn`, no boxing; the happy path reads no clock and allocates
//! nothing.

use std::future::Future;
use std::sync::atomic::{AtomicU32, Ordering};

use super::guards::{Guards, Refusal};
use super::hedged;
use super::hooks::{ExhaustedHook, RetryHook};
use super::options::Retry;
use super::state::{Run, Step};
use crate::budget::Budget;
use crate::classify::{Classifier, Outcome};
use crate::error::{Error, ErrorKind, Stop, TimeoutScope};
use crate::hedge::race::TryEnd;
use crate::limit::admission::{Admission, Now};
use crate::observe::Probe;

/// What one call runs with. The engine takes it as one value and uses its fields in place:
/// `async fn` parameters are stored twice in the future (as given and as locals), and a call
/// future is moved on every `.await`, so its size is paid on every call.
pub(crate) struct Engine<'a, T, E, F, C, R, X, L, P> {
    pub(crate) policy: &'a Retry,
    pub(crate) op: F,
    pub(crate) classifier: &'a C,
    pub(crate) on_retry: &'a mut R,
    pub(crate) on_exhausted: &'a mut X,
    /// Which successes start the loop over (reconnect loops).
    pub(crate) restart: L,
    /// Mirrors the attempt count for a cancellation wrapper.
    pub(crate) progress: Option<&'a AtomicU32>,
    /// The last attempt's result and the attempts made, when they already ran on the fast
    /// path.
    pub(crate) first: Option<(Result<T, E>, u32)>,
    /// Where events go.
    pub(crate) probe: P,
    /// Breaker, bulkhead, rate limiter.
    pub(crate) guards: Guards<'a>,
}

pin_project_lite::pin_project! {
    /// A future polled and dropped out of line, or none yet. The engine's state machine is
    /// large; inlined into a call's `poll`, it makes that function save every callee-saved
    /// register and reserve a large frame on each call, the first-try success included, and
    /// its drop glue would grow every caller's drop. Behind this, the call keeps its fast
    /// path small and calls into the engine only when it runs.
    pub(crate) struct OutOfLine<F> {
        #[pin]
        future: Option<F>,
    }

    impl<F> PinnedDrop for OutOfLine<F> {
        #[inline]
        fn drop(this: Pin<&mut Self>) {
            if this.future.is_some() {
                drop_out_of_line(this);
            }
        }
    }
}

#[inline(never)]
fn drop_out_of_line<F>(this: std::pin::Pin<&mut OutOfLine<F>>) {
    this.project().future.set(None);
}

impl<F> OutOfLine<F> {
    /// No future yet: see [`start`](Self::start).
    pub(crate) fn empty() -> Self {
        OutOfLine { future: None }
    }

    /// Starts `future` in place of the one held, if any.
    pub(crate) fn start(self: std::pin::Pin<&mut Self>, future: F) {
        self.project().future.set(Some(future));
    }
}

impl<F: Future> Future for OutOfLine<F> {
    type Output = F::Output;

    #[inline(never)]
    fn poll(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<F::Output> {
        match self.project().future.as_pin_mut() {
            Some(future) => future.poll(cx),
            None => std::task::Poll::Pending,
        }
    }
}

/// Runs the call until it succeeds or the policy stops.
pub(crate) async fn execute<T, E, F, Fut, C, R, X, L, P>(
    mut e: Engine<'_, T, E, F, C, R, X, L, P>,
) -> Result<T, Error<E>>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, E>>,
    C: Classifier<T, E>,
    R: RetryHook<T, E>,
    X: ExhaustedHook<T, E>,
    L: Fn(&T) -> bool,
    P: Probe,
{
    // A plain call whose first attempt failed: with an immediate backoff, no strategy, hook
    // or observer, a retryable failure with attempts left is followed by another attempt at
    // once, and a success ends the call, which is what `settle` would decide, without
    // building the run's state for it. Anything else settles as usual, with the attempts
    // made.
    if !R::ACTIVE
        && !X::ACTIVE
        && !P::ACTIVE
        && e.progress.is_none()
        && e.guards.is_empty()
        && let Some((mut result, mut attempts)) = e.first.take()
    {
        loop {
            match e.classifier.classify(&result) {
                Outcome::Success => match result {
                    Ok(value) if !(e.restart)(&value) => return Ok(value),
                    // A success that starts a loop over is the run's to handle.
                    Ok(_) => break,
                    // An `Err` the classifier called a success still ends the call as one.
                    Err(source) => {
                        return Err(Error::new(ErrorKind::Operation {
                            source,
                            attempts,
                            stop: Stop::NonRetryable,
                        }));
                    }
                },
                Outcome::Retryable { after: None }
                    if attempts < e.policy.at_once && e.classifier.stop_after().is_none() =>
                {
                    attempts += 1;
                    result = (e.op)().await;
                }
                _ => break,
            }
        }
        e.first = Some((result, attempts));
    }
    let needs_clock = R::ACTIVE || X::ACTIVE;
    let _place = if e.guards.bulkhead.is_none() && e.guards.limiter.is_none() {
        None
    } else {
        // Scoped here, so nothing of admission but the place is kept across later awaits.
        let admission = Admission {
            limiter: e.guards.limiter,
            bulkhead: e.guards.bulkhead,
        };
        // Admitted at once, or refused, without a wait; a wait (a queue, a rate limiter's
        // delay) runs boxed, so its timers do not grow every call's future.
        let now = match admission.now() {
            Now::Admitted(place) => Ok(place),
            Now::Refused(refused) => Err(refused),
            Now::Wait { limited } => Box::pin(admission.wait(limited)).await,
        };
        match now {
            Ok(place) => place,
            Err(refused) => {
                return Err(Run::start(e.policy, needs_clock, e.probe).refused(refused.into()));
            }
        }
    };
    let _in_flight = match e.guards.budget.map(Budget::call_started) {
        None => None,
        Some(Ok(in_flight)) => Some(in_flight),
        Some(Err(reject_probability)) => {
            let mut run = Run::start(e.policy, needs_clock, e.probe);
            return Err(run.refused(Refusal::Throttled { reject_probability }));
        }
    };
    let mut run = Run::start(e.policy, needs_clock, e.probe);
    run.budget = e.guards.budget;
    let mut step = match e.first.take() {
        Some((result, attempts)) => {
            run.attempts = attempts;
            run.settle(
                Some(result),
                e.classifier,
                &mut *e.on_retry,
                &mut *e.on_exhausted,
                &e.restart,
                None,
            )
        }
        None => Step::Again,
    };
    loop {
        match step {
            Step::Done(result) => return result,
            Step::Sleep(delay, last) => {
                if R::ASYNC
                    && let Some(hook) = e.on_retry.pending()
                {
                    hook.await;
                }
                if !delay.is_zero() {
                    tokio::time::sleep(delay).await;
                }
                if let Some(result) = run.woke(&mut *e.on_exhausted, last) {
                    return result;
                }
            }
            Step::Again => {}
        }
        let permit = match e.guards.breaker.map(|b| run.breaker_permit(b)) {
            None => None,
            Some(Ok(p)) => Some(p),
            Some(Err(open)) => return Err(run.refused(Refusal::Breaker(open))),
        };
        let limit = run.begin_attempt();
        if let Some(p) = e.progress {
            p.store(run.attempts, Ordering::Relaxed);
        }
        if let Some(hedge) = e.guards.hedge {
            let guards = e.guards;
            // Boxed: off the plain path, the race's flights and timer stay out of every
            // call's future.
            let end = Box::pin(hedged::run_try(
                &mut run,
                &mut e.op,
                e.classifier,
                hedge,
                &guards,
                limit,
                permit,
            ))
            .await;
            step = match end {
                TryEnd::Settle(last) => run.settle(
                    last,
                    e.classifier,
                    &mut *e.on_retry,
                    &mut *e.on_exhausted,
                    &e.restart,
                    None,
                ),
                TryEnd::TotalTimeout => return Err(run.total_timeout()),
            };
            continue;
        }
        let last = match limit {
            None => Some(run.wrap((e.op)()).await),
            Some((at, scope)) => match tokio::time::timeout_at(at, run.wrap((e.op)())).await {
                Ok(result) => Some(result),
                Err(_) if scope == TimeoutScope::Total => {
                    if let Some(p) = permit {
                        run.breaker_changed(p.record(None));
                    }
                    return Err(run.total_timeout());
                }
                Err(_) => None,
            },
        };
        step = run.settle(
            last,
            e.classifier,
            &mut *e.on_retry,
            &mut *e.on_exhausted,
            &e.restart,
            permit,
        );
    }
}

/// Whether the first attempt may run outside the engine: no timeout bounds it and no hook
/// needs the start instant. Then a first-try success never builds the engine's state.
#[inline]
pub(crate) fn fast_path(policy: &Retry) -> bool {
    policy.untimed
}
