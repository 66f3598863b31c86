//! One try with hedges (see [`hedge`](crate::hedge)): the try's attempts run inside the
//! call's own future, polled together, so dropping the call drops every one of them, and
//! the losers of a race are dropped the moment it is decided. Nothing is spawned.

use std::future::{Future, poll_fn};
use std::pin::Pin;
use std::task::Poll;

use tokio::time::Instant;

use super::guards::Guards;
use super::state::{Run, verdict};
use crate::breaker::Permit;
use crate::budget::Spent;
use crate::classify::{Classifier, Outcome};
use crate::error::TimeoutScope;
use crate::hedge::Hedge;
use crate::observe::{AttemptEnd, Probe};

/// How a hedged try ended.
pub(crate) enum TryEnd<T, E> {
    /// The result the retry policy settles: the winner, the fatal failure, or the last
    /// non-fatal failure (`None`: the last attempt timed out).
    Settle(Option<Result<T, E>>),
    /// The call's deadline passed.
    TotalTimeout,
}

/// An attempt of the try, in flight.
struct Flight<'b, A> {
    attempt: u32,
    started: Instant,
    ends: Option<(Instant, TimeoutScope)>,
    fut: Pin<Box<A>>,
    permit: Option<Permit<'b>>,
    spent: Option<Spent<'b>>,
}

/// What woke the try.
enum Woke<T, E> {
    Done(usize, Result<T, E>),
    Timer,
}

/// Runs one try: its first attempt (already counted by `begin_attempt`, ending by `limit`,
/// through `permit`), then hedges as the hedge's delay and the try's failures call for.
#[allow(clippy::too_many_arguments)]
pub(crate) async fn run_try<'b, T, E, F, Fut, C, P>(
    run: &mut Run<'b, P>,
    op: &mut F,
    classifier: &C,
    hedge: &Hedge,
    guards: &Guards<'b>,
    limit: Option<(Instant, TimeoutScope)>,
    permit: Option<Permit<'b>>,
) -> TryEnd<T, E>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, E>>,
    C: Classifier<T, E>,
    P: Probe,
{
    run.settled_elsewhere = true;
    let first = Flight {
        attempt: run.attempts,
        started: Instant::now(),
        ends: limit,
        fut: Box::pin(run.wrap(op())),
        permit,
        spent: run.spent.take(),
    };
    // The latency history learns from each try's first attempt only: its latency when it
    // succeeds, and when a hedge beats it, how long it had run (it would have taken at
    // least that). Without those, the slow attempts hedges cut short would never be seen,
    // and the percentile would sink below itself.
    let primary = first.attempt;
    let mut flights = vec![first];
    let max_hedges = hedge.options().max_hedged_attempts;
    let mut hedges = 0u32;
    let mut next_hedge = (max_hedges > 0).then(|| Instant::now() + hedge.delay());
    let mut last: Option<Result<T, E>> = None;
    let mut timer = Box::pin(tokio::time::sleep_until(Instant::now()));
    loop {
        let wake = flights
            .iter()
            .filter_map(|f| f.ends.map(|(at, _)| at))
            .chain(next_hedge)
            .min();
        if let Some(at) = wake {
            timer.as_mut().reset(at);
        }
        let woke = poll_fn(|cx| {
            for (i, f) in flights.iter_mut().enumerate() {
                if let Poll::Ready(result) = f.fut.as_mut().poll(cx) {
                    return Poll::Ready(Woke::Done(i, result));
                }
            }
            if wake.is_some() && timer.as_mut().poll(cx).is_ready() {
                return Poll::Ready(Woke::Timer);
            }
            Poll::Pending
        })
        .await;
        let mut launch = false;
        match woke {
            Woke::Done(i, result) => {
                let flight = flights.swap_remove(i);
                let outcome = classifier.classify(&result);
                if outcome.is_success() && flight.attempt == primary {
                    hedge.record(flight.started.elapsed());
                }
                let end = if result.is_ok() {
                    AttemptEnd::Ok
                } else {
                    AttemptEnd::Err
                };
                settle(run, flight, Some(&result), end, outcome);
                if !matches!(outcome, Outcome::Retryable { .. }) {
                    if outcome.is_success()
                        && let Some(p) = flights.iter().find(|f| f.attempt == primary)
                    {
                        hedge.record(p.started.elapsed());
                    }
                    cancel(run, flights);
                    return TryEnd::Settle(Some(result));
                }
                last = Some(result);
                launch = true;
            }
            Woke::Timer => {
                let now = Instant::now();
                let mut i = 0;
                while i < flights.len() {
                    match flights[i].ends {
                        Some((at, TimeoutScope::Total)) if at <= now => {
                            cancel(run, flights);
                            return TryEnd::TotalTimeout;
                        }
                        Some((at, TimeoutScope::Attempt)) if at <= now => {
                            let flight = flights.swap_remove(i);
                            let outcome = run.timeout_outcome();
                            settle::<T, E, P>(run, flight, None, AttemptEnd::TimedOut, outcome);
                            if !matches!(outcome, Outcome::Retryable { .. }) {
                                cancel(run, flights);
                                return TryEnd::Settle(None);
                            }
                            last = None;
                            launch = true;
                        }
                        _ => i += 1,
                    }
                }
                if next_hedge.is_some_and(|at| at <= now) {
                    launch = true;
                }
            }
        }
        if launch && hedges < max_hedges {
            next_hedge = None;
            if let Some(flight) = launch_hedge(run, op, guards) {
                hedges += 1;
                flights.push(flight);
                if hedges < max_hedges {
                    next_hedge = Some(Instant::now() + hedge.delay());
                }
            } else {
                // Refused (budget, breaker): no more hedges in this try.
                hedges = max_hedges;
            }
        }
        if flights.is_empty() {
            return TryEnd::Settle(last);
        }
    }
}

/// Starts a hedge, if the budget and the breaker let it.
fn launch_hedge<'b, T, E, F, Fut, P>(
    run: &mut Run<'b, P>,
    op: &mut F,
    guards: &Guards<'b>,
) -> Option<Flight<'b, P::Attempt<Fut>>>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, E>>,
    P: Probe,
{
    let spent = run.spend(false, true).ok()?;
    let permit = match guards.breaker {
        None => None,
        Some(b) => Some(run.breaker_permit(b).ok()?),
    };
    let ends = run.begin_hedge();
    Some(Flight {
        attempt: run.attempts,
        started: Instant::now(),
        ends,
        fut: Box::pin(run.wrap(op())),
        permit,
        spent,
    })
}

/// Reports a finished attempt to the breaker, the budget and the probe.
fn settle<T, E, P: Probe>(
    run: &mut Run<'_, P>,
    flight: Flight<'_, impl Future>,
    result: Option<&Result<T, E>>,
    end: AttemptEnd,
    outcome: Outcome,
) {
    let Flight {
        attempt,
        started,
        permit,
        spent,
        fut,
        ..
    } = flight;
    drop(fut);
    settle_attempt(run, attempt, started, permit, spent, result, end, outcome);
}

/// The accounting of one finished attempt of a try, async or blocking.
#[allow(clippy::too_many_arguments)]
fn settle_attempt<T, E, P: Probe>(
    run: &mut Run<'_, P>,
    attempt: u32,
    started: Instant,
    permit: Option<Permit<'_>>,
    spent: Option<Spent<'_>>,
    result: Option<&Result<T, E>>,
    end: AttemptEnd,
    outcome: Outcome,
) {
    if let Some(p) = permit {
        let change = p.record(result.is_some().then_some(&outcome));
        run.breaker_changed(change);
    }
    if let Some(b) = run.budget {
        b.attempt_ended(verdict(result, &outcome), spent);
    }
    run.attempt_ended(attempt, Some(started), end, outcome);
}

/// One try on the calling thread: two attempts cannot run at once here, so a hedge goes
/// only when an attempt fails retryably (at once, as in the async try, where a retryable
/// failure sends the next hedge without waiting for the delay), within the same
/// `max_hedged_attempts`, budget and breaker. The delay-triggered hedge of a slow attempt
/// has no blocking form.
#[allow(clippy::too_many_arguments)]
pub(crate) fn run_try_blocking<'b, T, E, F, C, P>(
    run: &mut Run<'b, P>,
    op: &mut F,
    classifier: &C,
    hedge: &Hedge,
    guards: &Guards<'b>,
    limit: Option<(Instant, TimeoutScope)>,
    permit: Option<Permit<'b>>,
) -> TryEnd<T, E>
where
    F: FnMut() -> Result<T, E>,
    C: Classifier<T, E>,
    P: Probe,
{
    run.settled_elsewhere = true;
    let primary = run.attempts;
    let max_hedges = hedge.options().max_hedged_attempts;
    let (mut attempt, mut ends, mut permit, mut spent) =
        (run.attempts, limit, permit, run.spent.take());
    let mut hedges = 0u32;
    loop {
        let started = Instant::now();
        let result = op();
        let (last, end, outcome) = match ends {
            Some((at, scope)) if Instant::now() >= at => {
                if scope == TimeoutScope::Total {
                    let outcome = run.timeout_outcome();
                    settle_attempt::<T, E, P>(
                        run,
                        attempt,
                        started,
                        permit,
                        spent,
                        None,
                        AttemptEnd::TimedOut,
                        outcome,
                    );
                    return TryEnd::TotalTimeout;
                }
                (None, AttemptEnd::TimedOut, run.timeout_outcome())
            }
            _ => {
                let outcome = classifier.classify(&result);
                let end = if result.is_ok() {
                    AttemptEnd::Ok
                } else {
                    AttemptEnd::Err
                };
                (Some(result), end, outcome)
            }
        };
        if outcome.is_success() && attempt == primary {
            hedge.record(started.elapsed());
        }
        settle_attempt(
            run,
            attempt,
            started,
            permit,
            spent,
            last.as_ref(),
            end,
            outcome,
        );
        if !matches!(outcome, Outcome::Retryable { .. }) || hedges >= max_hedges {
            return TryEnd::Settle(last);
        }
        // The next hedge, if the budget and the breaker let it.
        let Ok(next_spent) = run.spend(false, true) else {
            return TryEnd::Settle(last);
        };
        permit = match guards.breaker.map(|b| run.breaker_permit(b)) {
            None => None,
            Some(Ok(p)) => Some(p),
            Some(Err(_)) => return TryEnd::Settle(last),
        };
        ends = run.begin_hedge();
        attempt = run.attempts;
        spent = next_spent;
        hedges += 1;
    }
}

/// Drops the attempts still in flight, reporting each as cancelled.
fn cancel<P: Probe>(run: &mut Run<'_, P>, flights: Vec<Flight<'_, impl Future>>) {
    for f in flights {
        let (attempt, started) = (f.attempt, f.started);
        drop(f);
        run.attempt_ended(
            attempt,
            Some(started),
            AttemptEnd::Cancelled,
            Outcome::NonRetryable,
        );
    }
}
