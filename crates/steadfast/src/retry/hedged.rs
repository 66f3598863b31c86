//! The retry engine's side of a hedged try ([`hedge::race`](crate::hedge::race)): `Run`
//! starts each attempt and accounts for it (breaker permit, budget spend, events), and
//! settles the try's last result as for any try.

use std::future::Future;

use tokio::time::Instant;

use super::guards::Guards;
use super::state::{Run, verdict};
use crate::breaker::Permit;
use crate::budget::Spent;
use crate::classify::{Classifier, Outcome};
use crate::error::TimeoutScope;
use crate::hedge::Hedge;
use crate::hedge::race::{AsyncHost, BlockingHost, Host, Launched, TryEnd, race};
use crate::observe::{AttemptEnd, Probe};

/// One call's try, as the race's host.
pub(super) struct Try<'r, 'b, F, C, P> {
    pub(super) run: &'r mut Run<'b, P>,
    pub(super) op: &'r mut F,
    pub(super) classifier: &'r C,
    pub(super) guards: &'r Guards<'b>,
}

/// Runs one hedged try of the async engine: its first attempt (already counted by
/// `begin_attempt`, ending by `limit`, through `permit`), then hedges as the race decides.
#[allow(clippy::too_many_arguments)]
pub(super) async fn run_try<'b, T, E, F, Fut, C, P>(
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
    let mut host = Try {
        run,
        op,
        classifier,
        guards,
    };
    let first = host.first(limit, permit);
    race(&mut host, hedge, first).await
}

/// What an attempt of a try holds until it ends.
pub(super) type Ticket<'b> = (Option<Permit<'b>>, Option<Spent<'b>>);

impl<'b, F, C, P: Probe> Try<'_, 'b, F, C, P> {
    /// The try's first attempt, already counted by `begin_attempt`, ending by `limit`,
    /// through `permit`; the try settles each attempt itself.
    pub(super) fn first(
        &mut self,
        limit: Option<(Instant, TimeoutScope)>,
        permit: Option<Permit<'b>>,
    ) -> Launched<Ticket<'b>> {
        self.run.settled_elsewhere = true;
        Launched {
            attempt: self.run.attempts,
            started: Instant::now(),
            ends: limit,
            ticket: (permit, self.run.spent.take()),
        }
    }
}

impl<'b, T, E, F, C, P> Host<T, E, Ticket<'b>> for Try<'_, 'b, F, C, P>
where
    C: Classifier<T, E>,
    P: Probe,
{
    fn launch(&mut self) -> Option<Launched<Ticket<'b>>> {
        let spent = self.run.spend(false, true).ok()?;
        let permit = match self.guards.breaker {
            None => None,
            Some(b) => Some(self.run.breaker_permit(b).ok()?),
        };
        let ends = self.run.begin_hedge();
        Some(Launched {
            attempt: self.run.attempts,
            started: Instant::now(),
            ends,
            ticket: (permit, spent),
        })
    }

    fn classify(&self, result: &Result<T, E>) -> Outcome {
        self.classifier.classify(result)
    }

    fn timeout_outcome(&self) -> Outcome {
        self.run.timeout_outcome()
    }

    fn ended(
        &mut self,
        attempt: Launched<Ticket<'b>>,
        result: Option<&Result<T, E>>,
        end: AttemptEnd,
        outcome: Outcome,
    ) {
        let Launched {
            attempt,
            started,
            ticket: (permit, spent),
            ..
        } = attempt;
        if let Some(p) = permit {
            let change = p.record(result.is_some().then_some(&outcome));
            self.run.breaker_changed(change);
        }
        if let Some(b) = self.run.budget {
            b.attempt_ended(verdict(result, &outcome), spent);
        }
        self.run.attempt_ended(attempt, Some(started), end, outcome);
    }

    fn cancelled(&mut self, attempt: u32, started: Instant) {
        self.run.attempt_ended(
            attempt,
            Some(started),
            AttemptEnd::Cancelled,
            Outcome::NonRetryable,
        );
    }
}

impl<F, Fut, C, P> AsyncHost<P::Attempt<Fut>> for Try<'_, '_, F, C, P>
where
    F: FnMut() -> Fut,
    Fut: Future,
    P: Probe,
{
    fn start(&mut self) -> P::Attempt<Fut> {
        let fut = (self.op)();
        self.run.wrap(fut)
    }
}

impl<'b, T, E, F, C, P> BlockingHost<T, E, Ticket<'b>> for Try<'_, 'b, F, C, P>
where
    F: FnMut() -> Result<T, E>,
    C: Classifier<T, E>,
    P: Probe,
{
    fn call(&mut self) -> Result<T, E> {
        (self.op)()
    }
}
