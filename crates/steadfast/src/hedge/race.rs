//! How hedging runs one try (see the [module docs](super)): the try's attempts run inside
//! the call's own future, polled together, so dropping the call drops every one of them, and
//! the losers of a race are dropped the moment it is decided. Nothing is spawned. The
//! blocking mirror sends a hedge only when an attempt fails retryably.
//!
//! The race decides when to hedge and when the try is over; the call it runs in (the retry
//! engine's [`Host`]) starts attempts and accounts for each (breaker, budget, events).

use std::future::{Future, poll_fn};
use std::pin::Pin;
use std::task::Poll;

use tokio::time::Instant;

use super::Hedge;
use crate::classify::Outcome;
use crate::error::TimeoutScope;
use crate::observe::AttemptEnd;

/// How a try ended.
pub(crate) enum TryEnd<T, E> {
    /// The result the retry policy settles: the winner, the fatal failure, or the last
    /// non-fatal failure (`None`: the last attempt timed out).
    Settle(Option<Result<T, E>>),
    /// The call's deadline passed.
    TotalTimeout,
}

/// One attempt of the try: its number, start, deadline and what the host accounts it by.
pub(crate) struct Launched<K> {
    pub(crate) attempt: u32,
    pub(crate) started: Instant,
    pub(crate) ends: Option<(Instant, TimeoutScope)>,
    pub(crate) ticket: K,
}

/// What a try needs from the call it runs in.
///
/// `K` is what an attempt holds until it ends (a breaker permit, a budget spend).
pub(crate) trait Host<T, E, K> {
    /// Admits a hedge (the budget and the breaker may refuse) and counts it.
    fn launch(&mut self) -> Option<Launched<K>>;
    /// The classification of an attempt's result.
    fn classify(&self, result: &Result<T, E>) -> Outcome;
    /// The classification of an attempt that ran out of its own time.
    fn timeout_outcome(&self) -> Outcome;
    /// Accounts for an attempt that ended (`result` is `None` when it timed out).
    fn ended(
        &mut self,
        attempt: Launched<K>,
        result: Option<&Result<T, E>>,
        end: AttemptEnd,
        outcome: Outcome,
    );
    /// Reports an attempt dropped because the try was decided without it.
    fn cancelled(&mut self, attempt: u32, started: Instant);
}

/// A host whose attempts are futures.
pub(crate) trait AsyncHost<A> {
    /// Starts the operation for the attempt just launched.
    fn start(&mut self) -> A;
}

/// A host whose attempts run on the calling thread.
pub(crate) trait BlockingHost<T, E, K>: Host<T, E, K> {
    /// Runs the operation for the attempt just launched.
    fn call(&mut self) -> Result<T, E>;
}

struct Flight<A, K> {
    launched: Launched<K>,
    fut: Pin<Box<A>>,
}

/// What woke the try.
enum Woke<T, E> {
    Done(usize, Result<T, E>),
    Timer,
}

/// Runs one try: its first attempt (already launched), then hedges as the hedge's delay and
/// the try's failures call for.
pub(crate) async fn race<T, E, K, A, H>(
    host: &mut H,
    hedge: &Hedge,
    first: Launched<K>,
) -> TryEnd<T, E>
where
    H: Host<T, E, K> + AsyncHost<A>,
    A: Future<Output = Result<T, E>>,
{
    // The latency history learns from each try's first attempt only: its latency when it
    // succeeds, and when a hedge beats it, how long it had run (it would have taken at
    // least that). Without those, the slow attempts hedges cut short would never be seen,
    // and the percentile would sink below itself.
    let primary = first.attempt;
    let mut flights = vec![Flight {
        launched: first,
        fut: Box::pin(host.start()),
    }];
    let max_hedges = hedge.options().max_hedged_attempts;
    let mut hedges = 0u32;
    let mut next_hedge = (max_hedges > 0).then(|| Instant::now() + hedge.delay());
    let mut last: Option<Result<T, E>> = None;
    let mut timer = Box::pin(tokio::time::sleep_until(Instant::now()));
    loop {
        let wake = flights
            .iter()
            .filter_map(|f| f.launched.ends.map(|(at, _)| at))
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
                let Flight { launched, fut } = flights.swap_remove(i);
                drop(fut);
                let outcome = host.classify(&result);
                if outcome.is_success() && launched.attempt == primary {
                    hedge.record(launched.started.elapsed());
                }
                host.ended(launched, Some(&result), end_of(&result), outcome);
                if !matches!(outcome, Outcome::Retryable { .. }) {
                    if outcome.is_success()
                        && let Some(p) = flights.iter().find(|f| f.launched.attempt == primary)
                    {
                        hedge.record(p.launched.started.elapsed());
                    }
                    cancel(host, flights);
                    return TryEnd::Settle(Some(result));
                }
                last = Some(result);
                launch = true;
            }
            Woke::Timer => {
                let now = Instant::now();
                let mut i = 0;
                while i < flights.len() {
                    match flights[i].launched.ends {
                        Some((at, TimeoutScope::Total)) if at <= now => {
                            cancel(host, flights);
                            return TryEnd::TotalTimeout;
                        }
                        Some((at, TimeoutScope::Attempt)) if at <= now => {
                            let Flight { launched, fut } = flights.swap_remove(i);
                            drop(fut);
                            let outcome = host.timeout_outcome();
                            host.ended(launched, None, AttemptEnd::TimedOut, outcome);
                            if !matches!(outcome, Outcome::Retryable { .. }) {
                                cancel(host, flights);
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
            if let Some(launched) = host.launch() {
                hedges += 1;
                let fut = Box::pin(host.start());
                flights.push(Flight { launched, fut });
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

/// One try on the calling thread: two attempts cannot run at once here, so a hedge goes
/// only when an attempt fails retryably (at once, as in the async try, where a retryable
/// failure sends the next hedge without waiting for the delay), within the same
/// `max_hedged_attempts`, budget and breaker. The delay-triggered hedge of a slow attempt
/// has no blocking form.
pub(crate) fn race_blocking<T, E, K, H: BlockingHost<T, E, K>>(
    host: &mut H,
    hedge: &Hedge,
    first: Launched<K>,
) -> TryEnd<T, E> {
    let primary = first.attempt;
    let max_hedges = hedge.options().max_hedged_attempts;
    let mut launched = first;
    let mut hedges = 0u32;
    loop {
        let result = host.call();
        let (last, end, outcome) = match launched.ends {
            Some((at, scope)) if Instant::now() >= at => {
                let outcome = host.timeout_outcome();
                if scope == TimeoutScope::Total {
                    host.ended(launched, None, AttemptEnd::TimedOut, outcome);
                    return TryEnd::TotalTimeout;
                }
                (None, AttemptEnd::TimedOut, outcome)
            }
            _ => {
                let outcome = host.classify(&result);
                let end = end_of(&result);
                (Some(result), end, outcome)
            }
        };
        if outcome.is_success() && launched.attempt == primary {
            hedge.record(launched.started.elapsed());
        }
        host.ended(launched, last.as_ref(), end, outcome);
        if !matches!(outcome, Outcome::Retryable { .. }) || hedges >= max_hedges {
            return TryEnd::Settle(last);
        }
        match host.launch() {
            Some(next) => launched = next,
            None => return TryEnd::Settle(last),
        }
        hedges += 1;
    }
}

fn end_of<T, E>(result: &Result<T, E>) -> AttemptEnd {
    if result.is_ok() {
        AttemptEnd::Ok
    } else {
        AttemptEnd::Err
    }
}

/// Drops the attempts still in flight, reporting each as cancelled.
fn cancel<T, E, K, H: Host<T, E, K>>(host: &mut H, flights: Vec<Flight<impl Future, K>>) {
    for f in flights {
        let Flight { launched, fut } = f;
        let (attempt, started) = (launched.attempt, launched.started);
        drop(fut);
        drop(launched);
        host.cancelled(attempt, started);
    }
}
