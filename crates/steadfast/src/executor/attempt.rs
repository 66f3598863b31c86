//! The attempt context: what an operation of one argument sees of its call (the attempt's
//! number, whether it is a hedge, the time left, the previous outcome) and the extensions
//! that hooks write and the next attempt reads.

use std::future::Future;
use std::marker::PhantomData;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use tokio::time::Instant;

use crate::chain::Properties;
use crate::classify::Outcome;
use crate::observe::{Event, Probe};
use crate::retry::{OnRetry, RetryHook};

/// What an operation of one argument sees of its call: `executor.call(key, |attempt:
/// &Attempt| …)`.
///
/// # Example
/// ```
/// use std::time::Duration;
/// use steadfast::{Attempt, Executor, Retry, policy::Policies};
///
/// # #[tokio::main(flavor = "current_thread", start_paused = true)]
/// # async fn main() {
/// let retry = Retry::immediate().max_attempts(3).total_timeout(Duration::from_secs(2)).build().unwrap();
/// let executor = Executor::new(Policies::new(retry));
/// let answer = executor
///     .call("search.Query", |attempt: &Attempt| {
///         // A gRPC deadline or an HTTP timeout from the time the call has left.
///         let budget = attempt.remaining().unwrap_or(Duration::from_secs(30));
///         let n = attempt.number();
///         async move { if n < 3 { Err("busy") } else { Ok(budget) } }
///     })
///     .run()
///     .await;
/// assert_eq!(answer.unwrap(), Duration::from_secs(2));
/// # }
/// ```
#[derive(Debug)]
pub struct Attempt {
    number: u32,
    hedge: bool,
    deadline: Option<Instant>,
    previous: Option<Outcome>,
    extensions: Extensions,
}

impl Attempt {
    /// The attempt's number in its call: 1 for the first (hedges counted too).
    pub fn number(&self) -> u32 {
        self.number
    }

    /// Whether this attempt is a hedge of the one in flight.
    pub fn is_hedge(&self) -> bool {
        self.hedge
    }

    /// The time left before the call's deadline (`total_timeout`), if it has one.
    pub fn remaining(&self) -> Option<Duration> {
        self.deadline
            .map(|d| d.saturating_duration_since(Instant::now()))
    }

    /// How the previous attempt of the call was classified, if there was one.
    pub fn previous(&self) -> Option<Outcome> {
        self.previous
    }

    /// Values the call's hooks left for this attempt ([`KeyCall::on_retry_async`]).
    ///
    /// [`KeyCall::on_retry_async`]: crate::executor::KeyCall::on_retry_async
    pub fn extensions(&self) -> &Extensions {
        &self.extensions
    }
}

/// Where a call keeps its attempt context (shared by the engine's probe, the operation and
/// the hooks).
#[derive(Debug, Default)]
struct State {
    number: u32,
    hedge: bool,
    deadline: Option<Instant>,
    previous: Option<Outcome>,
    extensions: Properties,
}

/// A call's attempt context.
#[derive(Debug, Clone, Default)]
pub(crate) struct AttemptCell(Arc<Mutex<State>>);

impl AttemptCell {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// The extensions of a call, for an async hook to write into: what it inserts, the next
/// attempt reads from [`Attempt::extensions`].
#[derive(Debug, Clone)]
pub struct Extensions(Option<AttemptCell>);

impl Extensions {
    /// Stores `value`, replacing any value of its type.
    pub fn insert<V: std::any::Any + Send + Sync>(&self, value: V) {
        if let Some(cell) = &self.0 {
            cell.lock().extensions.insert(value);
        }
    }

    /// A copy of the value of type `V`, if there is one.
    pub fn get<V: std::any::Any + Send + Sync + Clone>(&self) -> Option<V> {
        let cell = self.0.as_ref()?;
        cell.lock().extensions.get::<V>().cloned()
    }
}

/// Where an attempt's context comes from (made by the executor).
#[derive(Debug, Clone, Copy)]
pub struct AttemptSource<'a>(pub(crate) Option<&'a AttemptCell>);

/// An operation a call runs: a closure of no argument, or of one, the [`Attempt`]. The marker
/// `M` tells the two apart; it is inferred.
pub trait Operation<M> {
    /// The future of one attempt.
    type Output: Future;
    /// Whether the operation reads the attempt context.
    const READS_ATTEMPT: bool;
    /// Starts one attempt.
    #[doc(hidden)]
    fn attempt(&mut self, source: AttemptSource<'_>) -> Self::Output;
}

/// The marker of operations of no argument.
#[derive(Debug)]
pub enum NoArgument {}

/// The marker of operations of one argument, the [`Attempt`].
#[derive(Debug)]
pub enum WithAttempt {}

impl<F, Fut> Operation<NoArgument> for F
where
    F: FnMut() -> Fut,
    Fut: Future,
{
    type Output = Fut;
    const READS_ATTEMPT: bool = false;

    #[inline]
    fn attempt(&mut self, _: AttemptSource<'_>) -> Fut {
        self()
    }
}

impl<F, Fut> Operation<WithAttempt> for F
where
    F: FnMut(&Attempt) -> Fut,
    Fut: Future,
{
    type Output = Fut;
    const READS_ATTEMPT: bool = true;

    fn attempt(&mut self, source: AttemptSource<'_>) -> Fut {
        let attempt = match source.0 {
            Some(cell) => {
                let state = cell.lock();
                Attempt {
                    number: state.number,
                    hedge: state.hedge,
                    deadline: state.deadline,
                    previous: state.previous,
                    extensions: Extensions(Some(cell.clone())),
                }
            }
            None => Attempt {
                number: 0,
                hedge: false,
                deadline: None,
                previous: None,
                extensions: Extensions(None),
            },
        };
        self(&attempt)
    }
}

/// A call's operation with its marker, as [`KeyCall`](crate::executor::KeyCall) holds it.
pub struct Op<O, M>(pub(crate) O, PhantomData<fn() -> M>);

impl<O, M> std::fmt::Debug for Op<O, M> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Op")
    }
}

impl<O, M> Op<O, M> {
    pub(crate) fn new(op: O) -> Self {
        Op(op, PhantomData)
    }
}

/// An operation with its marker known: what [`KeyCall`](crate::executor::KeyCall) runs.
pub trait CallOp {
    /// The future of one attempt.
    type Output: Future;
    /// Whether the operation reads the attempt context.
    const READS_ATTEMPT: bool;
    /// Starts one attempt.
    #[doc(hidden)]
    fn attempt(&mut self, source: AttemptSource<'_>) -> Self::Output;
}

impl<O: Operation<M>, M> CallOp for Op<O, M> {
    type Output = O::Output;
    const READS_ATTEMPT: bool = O::READS_ATTEMPT;

    #[inline]
    fn attempt(&mut self, source: AttemptSource<'_>) -> O::Output {
        self.0.attempt(source)
    }
}

/// Keeps a call's attempt context up to date from the engine's events.
#[derive(Debug)]
pub(crate) struct Tracker {
    pub(crate) cell: Option<AttemptCell>,
    pub(crate) total_timeout: Option<Duration>,
}

impl Probe for Tracker {
    type Attempt<Fut: Future> = Fut;

    fn event(&mut self, event: &Event) {
        let Some(cell) = &self.cell else {
            return;
        };
        let mut state = cell.lock();
        match *event {
            Event::CallStarted => {
                state.deadline = self.total_timeout.map(|t| Instant::now() + t);
            }
            Event::AttemptStarted { attempt, .. } => {
                state.number = attempt;
                state.hedge = false;
            }
            Event::HedgeLaunched { attempt, .. } => {
                state.number = attempt;
                state.hedge = true;
            }
            Event::AttemptFinished { outcome, .. } => state.previous = Some(outcome),
            _ => {}
        }
    }

    #[inline]
    fn attempt<Fut: Future>(&mut self, _: u32, fut: Fut) -> Fut {
        fut
    }
}

/// What an async `on_retry` hook is told of the attempt that failed (owned, so the hook's
/// future may keep it across its awaits).
#[derive(Debug, Clone, Copy)]
pub struct RetryNote {
    attempt: u32,
    outcome: Outcome,
    delay: Duration,
}

impl RetryNote {
    /// The attempt that failed: 1 for the first.
    pub fn attempt(&self) -> u32 {
        self.attempt
    }

    /// How it was classified.
    pub fn outcome(&self) -> Outcome {
        self.outcome
    }

    /// The wait before the next attempt.
    pub fn delay(&self) -> Duration {
        self.delay
    }
}

/// An async `on_retry` hook: the engine awaits its future before it sleeps for the next
/// attempt.
pub struct OnRetryAsync<H> {
    hook: H,
    cell: AttemptCell,
    pending: Option<Pin<Box<dyn Future<Output = ()> + Send>>>,
}

impl<H> std::fmt::Debug for OnRetryAsync<H> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OnRetryAsync").finish_non_exhaustive()
    }
}

impl<H> OnRetryAsync<H> {
    pub(crate) fn new(hook: H, cell: AttemptCell) -> Self {
        OnRetryAsync {
            hook,
            cell,
            pending: None,
        }
    }
}

impl<T, E, H, Fut> RetryHook<T, E> for OnRetryAsync<H>
where
    H: FnMut(RetryNote, Extensions) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    const ASYNC: bool = true;

    fn on_retry(&mut self, args: &OnRetry<'_, T, E>) {
        let note = RetryNote {
            attempt: args.attempt(),
            outcome: args.outcome(),
            delay: args.delay(),
        };
        self.pending = Some(Box::pin((self.hook)(
            note,
            Extensions(Some(self.cell.clone())),
        )));
    }

    fn pending(&mut self) -> Option<Pin<Box<dyn Future<Output = ()> + Send>>> {
        self.pending.take()
    }
}
