//! The async engine: one `async fn`, no boxing; the happy path reads no clock and allocates
//! nothing.

use std::future::Future;
use std::sync::atomic::{AtomicU32, Ordering};

use super::hedged::{self, TryEnd};
use super::hooks::{ExhaustedHook, RetryHook};
use super::options::Retry;
use super::state::{Run, Step};
use crate::breaker::{Breaker, Open};
use crate::budget::Budget;
use crate::classify::Classifier;
use crate::error::{Error, TimeoutScope};
use crate::hedge::Hedge;
use crate::limit::{Bulkhead, BulkheadPermit, Limited, RateLimiter};
use crate::observe::{Probe, RejectedBy};

/// The strategies a call runs through: a rate limiter and a bulkhead admit the call once
/// (outside the retry loop), a breaker admits each attempt, a budget each retry and hedge,
/// and a hedge races attempts within each try. Set with
/// [`Call::breaker`](super::Call::breaker), [`bulkhead`](super::Call::bulkhead),
/// [`rate_limiter`](super::Call::rate_limiter), [`budget`](super::Call::budget) and
/// [`hedge`](super::Call::hedge).
#[derive(Debug, Clone, Copy, Default)]
pub struct Guards<'a> {
    // The four that end the fast path first: `only_breaker` reads them as two 16-byte
    // words, which then line up with the 16-byte moves of a copied `Guards` (a load that
    // straddles two stores waits for both to land, a stall on every call).
    pub(crate) bulkhead: Option<&'a Bulkhead>,
    pub(crate) limiter: Option<&'a RateLimiter>,
    pub(crate) budget: Option<&'a Budget>,
    pub(crate) hedge: Option<&'a Hedge>,
    pub(crate) breaker: Option<&'a Breaker>,
}

impl Guards<'_> {
    #[inline]
    pub(crate) fn is_empty(&self) -> bool {
        self.breaker.is_none() && self.only_breaker()
    }

    /// Whether nothing but (at most) a breaker is set: the first attempt may run on the
    /// fast path.
    #[inline]
    pub(crate) fn only_breaker(&self) -> bool {
        self.bulkhead.is_none()
            && self.limiter.is_none()
            && self.budget.is_none()
            && self.hedge.is_none()
    }
}

/// No strategy around the call: the type a [`Call`](super::Call) starts with, so a plain call
/// carries and checks nothing for them.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoGuards;

mod sealed {
    pub trait Sealed {}
    impl Sealed for super::NoGuards {}
    impl Sealed for super::Guards<'_> {}
}

/// [`NoGuards`] or [`Guards`]: which strategies a call runs through, known at compile time
/// when there are none.
pub trait Guarded<'p>: Copy + sealed::Sealed {
    /// Whether there may be any.
    const ACTIVE: bool;
    /// The strategies.
    fn guards(self) -> Guards<'p>;
}

impl<'p> Guarded<'p> for NoGuards {
    const ACTIVE: bool = false;
    #[inline]
    fn guards(self) -> Guards<'p> {
        Guards::default()
    }
}

impl<'p> Guarded<'p> for Guards<'p> {
    const ACTIVE: bool = true;
    #[inline]
    fn guards(self) -> Guards<'p> {
        self
    }
}

/// Why a call, or its next attempt, was not let through.
pub(crate) enum Refusal {
    Breaker(Open),
    Bulkhead { max_concurrent: u32 },
    RateLimiter(Limited),
    Throttled { reject_probability: f64 },
}

impl Refusal {
    pub(crate) fn full(bulkhead: &Bulkhead) -> Self {
        Refusal::Bulkhead {
            max_concurrent: bulkhead.options().max_concurrent,
        }
    }

    pub(crate) fn by(&self) -> RejectedBy {
        match self {
            Refusal::Breaker(_) => RejectedBy::Breaker,
            Refusal::Bulkhead { .. } => RejectedBy::Bulkhead,
            Refusal::RateLimiter(_) => RejectedBy::RateLimiter,
            Refusal::Throttled { .. } => RejectedBy::Budget,
        }
    }

    pub(crate) fn retry_after(&self) -> Option<std::time::Duration> {
        match self {
            Refusal::Breaker(open) => open.retry_after,
            Refusal::Bulkhead { .. } | Refusal::Throttled { .. } => None,
            Refusal::RateLimiter(l) => Some(l.retry_after),
        }
    }

    /// The call's error, `attempts` made before the refusal.
    pub(crate) fn into_error<E>(self, attempts: u32) -> Error<E> {
        match self {
            Refusal::Breaker(open) => Error::CircuitOpen {
                retry_after: open.retry_after,
                attempts,
            },
            Refusal::Bulkhead { max_concurrent } => Error::BulkheadFull { max_concurrent },
            Refusal::RateLimiter(l) => Error::RateLimited {
                retry_after: l.retry_after,
            },
            Refusal::Throttled { reject_probability } => Error::Throttled { reject_probability },
        }
    }
}

enum Admission<'a> {
    Admitted(Option<BulkheadPermit<'a>>),
    Refused(Refusal),
    /// Admission needs a wait: the limiter's delay, or the bulkhead's queue (`limited`: the
    /// rate limiter has already let the call through).
    Wait {
        limited: bool,
    },
}

/// Admits the call if no wait is needed.
fn admit_now<'a>(guards: &Guards<'a>) -> Admission<'a> {
    if let Some(limiter) = guards.limiter {
        match limiter.try_acquire() {
            Ok(()) => {}
            Err(_) if limiter.options().max_wait.is_some() => {
                return Admission::Wait { limited: false };
            }
            Err(l) => return Admission::Refused(Refusal::RateLimiter(l)),
        }
    }
    match guards.bulkhead {
        None => Admission::Admitted(None),
        Some(b) => match b.try_acquire() {
            Some(place) => Admission::Admitted(Some(place)),
            None if b.options().max_queue > 0 => Admission::Wait { limited: true },
            None => Admission::Refused(Refusal::full(b)),
        },
    }
}

/// Admits the call: the rate limiter (which may wait), then a place in the bulkhead (which
/// may queue).
async fn admit<'a>(
    guards: &Guards<'a>,
    limited: bool,
) -> Result<Option<BulkheadPermit<'a>>, Refusal> {
    if !limited
        && let Some(limiter) = guards.limiter
        && let Err(l) = limiter.acquire().await
    {
        return Err(Refusal::RateLimiter(l));
    }
    match guards.bulkhead {
        None => Ok(None),
        Some(b) => b.acquire().await.map(Some).map_err(|_| Refusal::full(b)),
    }
}

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
    /// The first attempt's result, when it already ran on the fast path.
    pub(crate) first: Option<Result<T, E>>,
    /// Where events go.
    pub(crate) probe: P,
    /// Breaker, bulkhead, rate limiter.
    pub(crate) guards: Guards<'a>,
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
    let needs_clock = R::ACTIVE || X::ACTIVE;
    let _place = if e.guards.bulkhead.is_some() || e.guards.limiter.is_some() {
        // Admitted at once, or refused, without a wait; a wait (a queue, a rate limiter's
        // delay) runs boxed, so its timers do not grow every call's future.
        let now = match admit_now(&e.guards) {
            Admission::Admitted(place) => Ok(place),
            Admission::Refused(refusal) => Err(refusal),
            Admission::Wait { limited } => Box::pin(admit(&e.guards, limited)).await,
        };
        match now {
            Ok(place) => place,
            Err(refusal) => return Err(Run::start(e.policy, needs_clock, e.probe).refused(refusal)),
        }
    } else {
        None
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
        Some(result) => {
            run.attempts = 1;
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
    policy.attempt_timeout.is_none() && policy.total_timeout.is_none()
}
