//! The async engine: one `async fn`, no boxing; the happy path reads no clock and allocates
//! nothing.

use std::future::Future;
use std::sync::atomic::{AtomicU32, Ordering};

use super::hooks::{ExhaustedHook, RetryHook};
use super::options::Retry;
use super::state::{Run, Step};
use crate::classify::Classifier;
use crate::error::{Error, TimeoutScope};

/// Runs `op` under `policy` until it succeeds or the policy stops. `restart` says which
/// successes start the loop over (reconnect loops); `progress` mirrors the attempt count for a
/// cancellation wrapper.
#[allow(clippy::too_many_arguments)]
pub(crate) async fn execute<T, E, F, Fut, C, R, X, L>(
    policy: &Retry,
    mut op: F,
    classifier: &C,
    on_retry: &mut R,
    on_exhausted: &mut X,
    restart: L,
    progress: Option<&AtomicU32>,
    mut first: Option<Result<T, E>>,
) -> Result<T, Error<E>>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, E>>,
    C: Classifier<T, E>,
    R: RetryHook<T, E>,
    X: ExhaustedHook<T, E>,
    L: Fn(&T) -> bool,
{
    let mut run = Run::start(policy, R::ACTIVE || X::ACTIVE);
    loop {
        if let Some(result) = first.take() {
            // The first attempt already ran on the fast path (see `first_attempt`).
            run.attempts = 1;
            match run.settle(Some(result), classifier, on_retry, on_exhausted, &restart) {
                Step::Done(result) => return result,
                Step::Sleep(delay, last) => {
                    sleep(delay).await;
                    if let Some(result) = run.woke(on_exhausted, last) {
                        return result;
                    }
                }
                Step::Again => {}
            }
            continue;
        }
        let limit = run.begin_attempt();
        if let Some(p) = progress {
            p.store(run.attempts, Ordering::Relaxed);
        }
        let last = match limit {
            None => Some(op().await),
            Some((at, scope)) => match tokio::time::timeout_at(at, op()).await {
                Ok(result) => Some(result),
                Err(_) if scope == TimeoutScope::Total => return Err(run.total_timeout()),
                Err(_) => None,
            },
        };
        match run.settle(last, classifier, on_retry, on_exhausted, &restart) {
            Step::Done(result) => return result,
            Step::Sleep(delay, last) => {
                sleep(delay).await;
                if let Some(result) = run.woke(on_exhausted, last) {
                    return result;
                }
            }
            Step::Again => {}
        }
    }
}

async fn sleep(delay: std::time::Duration) {
    if !delay.is_zero() {
        tokio::time::sleep(delay).await;
    }
}

/// Whether the first attempt may run outside the engine: no timeout bounds it and no hook
/// needs the start instant. Then a first-try success never builds the engine's state.
#[inline]
pub(crate) fn fast_path(policy: &Retry) -> bool {
    policy.attempt_timeout.is_none() && policy.total_timeout.is_none()
}
