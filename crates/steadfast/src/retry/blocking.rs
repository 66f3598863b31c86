//! The blocking engine: the async engine's mirror on the calling thread.
//!
//! A running operation cannot be interrupted here, so an attempt that overran its timeout (or
//! the overall deadline) is judged when it returns: its result is dropped and it counts as
//! timed out, exactly as if the async engine had cancelled it. Sleeps never cross the deadline.

use super::guards::{Guards, Refusal};
use super::hedged::Try;
use super::hooks::{ExhaustedHook, RetryHook};
use super::options::Retry;
use super::state::{Run, Step};
use crate::classify::Classifier;
use crate::error::{Error, TimeoutScope};
use crate::hedge::race::{TryEnd, race_blocking};
use crate::observe::Probe;

/// Runs `op` under `policy` on this thread, reporting to `probe`; see
/// [`execute`](super::engine::execute).
#[allow(clippy::too_many_arguments)]
pub(crate) fn execute<T, E, F, C, R, X, L, P>(
    policy: &Retry,
    mut op: F,
    classifier: &C,
    on_retry: &mut R,
    on_exhausted: &mut X,
    restart: L,
    guards: Guards<'_>,
    probe: P,
) -> Result<T, Error<E>>
where
    F: FnMut() -> Result<T, E>,
    C: Classifier<T, E>,
    R: RetryHook<T, E>,
    X: ExhaustedHook<T, E>,
    L: Fn(&T) -> bool,
    P: Probe,
{
    let needs_clock = R::ACTIVE || X::ACTIVE;
    // Admission as in the async engine; a blocking call takes a bulkhead place only if one is
    // free (it does not queue).
    let admission = crate::limit::admission::Admission {
        limiter: guards.limiter,
        bulkhead: guards.bulkhead,
    };
    let _place = match admission.blocking() {
        Ok(place) => place,
        Err(refused) => {
            return Err(Run::start(policy, needs_clock, probe).refused(refused.into()));
        }
    };
    // The budget as in the async engine: adaptive throttling may refuse the call, and each
    // retry spends (in `Run::after_failure`), so both engines stop at the same attempt.
    let _in_flight = match guards.budget.map(crate::budget::Budget::call_started) {
        None => None,
        Some(Ok(in_flight)) => Some(in_flight),
        Some(Err(reject_probability)) => {
            let mut run = Run::start(policy, needs_clock, probe);
            return Err(run.refused(Refusal::Throttled { reject_probability }));
        }
    };
    let mut run = Run::start(policy, needs_clock, probe);
    run.budget = guards.budget;
    loop {
        let permit = match guards.breaker.map(|b| run.breaker_permit(b)) {
            None => None,
            Some(Ok(p)) => Some(p),
            Some(Err(open)) => return Err(run.refused(Refusal::Breaker(open))),
        };
        let limit = run.begin_attempt();
        if let Some(hedge) = guards.hedge {
            let mut host = Try {
                run: &mut run,
                op: &mut op,
                classifier,
                guards: &guards,
            };
            let first = host.first(limit, permit);
            let end = race_blocking(&mut host, hedge, first);
            let last = match end {
                TryEnd::Settle(last) => last,
                TryEnd::TotalTimeout => return Err(run.total_timeout()),
            };
            match run.settle(last, classifier, on_retry, on_exhausted, &restart, None) {
                Step::Done(result) => return result,
                Step::Sleep(delay, last) => {
                    if R::ASYNC
                        && let Some(hook) = on_retry.pending()
                    {
                        crate::chain::block_on(hook);
                    }
                    if !delay.is_zero() {
                        std::thread::sleep(delay);
                    }
                    if let Some(result) = run.woke(on_exhausted, last) {
                        return result;
                    }
                }
                Step::Again => {}
            }
            continue;
        }
        let result = op();
        let last = match limit {
            Some((at, scope)) if tokio::time::Instant::now() >= at => {
                if scope == TimeoutScope::Total {
                    if let Some(p) = permit {
                        let _ = p.record(None);
                    }
                    return Err(run.total_timeout());
                }
                None
            }
            _ => Some(result),
        };
        match run.settle(last, classifier, on_retry, on_exhausted, &restart, permit) {
            Step::Done(result) => return result,
            Step::Sleep(delay, last) => {
                if R::ASYNC
                    && let Some(hook) = on_retry.pending()
                {
                    crate::chain::block_on(hook);
                }
                if !delay.is_zero() {
                    std::thread::sleep(delay);
                }
                if let Some(result) = run.woke(on_exhausted, last) {
                    return result;
                }
            }
            Step::Again => {}
        }
    }
}
