//! Observability: every step of a call as an [`Event`], for observers and timelines.
//!
//! The engine reports to a [`Probe`]. With none (the default) the call path does no observer
//! work at all: no clock reads, no branches on observers. The executor turns its registered
//! [`Observer`]s into a probe, and [`Timeline`] is a probe that records each attempt.
//!
//! # Example
//! ```
//! use std::time::Duration;
//! use steadfast::{Jitter, Retry};
//!
//! # #[tokio::main(flavor = "current_thread", start_paused = true)]
//! # async fn main() {
//! let retry = Retry::fixed(Duration::from_millis(100)).jitter(Jitter::None).build().unwrap();
//! let mut tries = 0;
//! let (result, timeline) = retry
//!     .call(|| {
//!         tries += 1;
//!         let t = tries;
//!         async move { if t < 3 { Err("busy") } else { Ok(t) } }
//!     })
//!     .run_with_timeline()
//!     .await;
//! assert_eq!(result.unwrap(), 3);
//! let starts: Vec<_> = timeline.attempts().iter().map(|a| a.start()).collect();
//! assert_eq!(starts, [0, 100, 200].map(Duration::from_millis));
//! # }
//! ```

use std::fmt;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

#[cfg(feature = "metrics")]
#[path = "metrics_observer.rs"]
mod metrics_observer;
#[cfg(feature = "otel")]
#[path = "otel_observer.rs"]
mod otel_observer;
#[cfg(feature = "otel")]
pub use otel_observer::{OtelObserver, StateGauges};
#[cfg(feature = "tracing")]
#[path = "tracing_probe.rs"]
pub(crate) mod tracing_probe;
#[cfg(feature = "metrics")]
pub use metrics_observer::MetricsObserver;
#[cfg(feature = "tracing")]
pub use tracing_probe::TracingObserver;

use crate::breaker::BreakerState;
use crate::classify::Outcome;
use crate::error::{Stop, TimeoutScope};
use crate::key::Key;

/// How an attempt ended, apart from its classification.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum AttemptEnd {
    /// It returned `Ok`.
    Ok,
    /// It returned `Err`.
    Err,
    /// It ran out of time (its own timeout, or the call's deadline).
    TimedOut,
    /// It was dropped unfinished: another attempt of its hedged try won, or failed fatally.
    /// Its outcome reads `NonRetryable` and means nothing.
    Cancelled,
}

/// Why the engine is about to wait.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum RetryReason {
    /// The backoff schedule's next delay.
    Backoff,
    /// The delay the server asked for (`Retry-After`, pushback).
    ServerDelay,
    /// The server asked for more than the policy's `max_server_delay`, and the policy caps
    /// server delays (`cap_server_delay`), so the wait is `max_server_delay`.
    ServerDelayCapped {
        /// What the server asked for.
        requested: Duration,
    },
}

/// Which strategy refused a call or an attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum RejectedBy {
    /// An open (half-open with every probe out, or isolated) circuit breaker.
    Breaker,
    /// A full bulkhead.
    Bulkhead,
    /// A rate limiter.
    RateLimiter,
    /// Adaptive throttling (a [`budget`](crate::budget)).
    Budget,
}

impl RejectedBy {
    /// The name metrics and logs use: `breaker`, `bulkhead`, `rate_limiter`.
    pub const fn as_str(&self) -> &'static str {
        match self {
            RejectedBy::Breaker => "breaker",
            RejectedBy::Bulkhead => "bulkhead",
            RejectedBy::RateLimiter => "rate_limiter",
            RejectedBy::Budget => "budget",
        }
    }
}

/// One step of a call.
#[derive(Debug, Clone, Copy, PartialEq)]
#[non_exhaustive]
pub enum Event {
    /// The call began.
    CallStarted,
    /// An attempt began, `at` after the call's start.
    AttemptStarted {
        /// 1 for the first attempt.
        attempt: u32,
        /// Time since the call started.
        at: Duration,
    },
    /// An attempt ended.
    AttemptFinished {
        /// 1 for the first attempt.
        attempt: u32,
        /// How it ended.
        end: AttemptEnd,
        /// How it was classified.
        outcome: Outcome,
        /// How long it ran.
        duration: Duration,
    },
    /// A retry will follow after `delay`.
    RetryScheduled {
        /// The attempt that failed.
        attempt: u32,
        /// The wait before the next attempt.
        delay: Duration,
        /// Where the wait comes from.
        reason: RetryReason,
    },
    /// The call ended.
    CallFinished {
        /// Attempts made.
        attempts: u32,
        /// Time since the call started.
        duration: Duration,
        /// Whether it returned `Ok`.
        ok: bool,
        /// Why retrying stopped, when it ended on a failure.
        stop: Option<Stop>,
        /// Which timeout ended it, if one did.
        timeout: Option<TimeoutScope>,
    },
    /// A strategy refused the call (bulkhead, rate limiter: before any attempt) or its next
    /// attempt (breaker); the call ends with the matching [`Error`](crate::Error) variant.
    Rejected {
        /// Which strategy.
        by: RejectedBy,
        /// When it expects to let a call through, if known.
        retry_after: Option<Duration>,
    },
    /// The key's circuit breaker changed state during this call.
    BreakerChanged {
        /// The state before.
        from: BreakerState,
        /// The state after.
        to: BreakerState,
    },
    /// A fallback replaced the call's failure with a value.
    FallbackUsed,
    /// A hedge began, `at` after the call's start, while earlier attempts of its try run on.
    /// It counts as an attempt: its `AttemptFinished` follows under the same number.
    HedgeLaunched {
        /// Its number among the call's attempts (hedges included).
        attempt: u32,
        /// Time since the call started.
        at: Duration,
    },
    /// The retry budget refused a retry (`hedge: false`: the call ends with the last error)
    /// or a hedge (`hedge: true`: it is not sent).
    BudgetExhausted {
        /// Attempts made so far.
        attempt: u32,
        /// Whether a hedge was refused.
        hedge: bool,
    },
}

/// Receives the events of calls run by an [`Executor`](crate::Executor).
///
/// # Example
/// ```
/// use steadfast::observe::{Event, Observer};
/// use steadfast::Key;
///
/// #[derive(Debug)]
/// struct Log;
/// impl Observer for Log {
///     fn on_event(&self, key: &Key, event: &Event) {
///         if let Event::RetryScheduled { attempt, delay, .. } = event {
///             eprintln!("{key}: attempt {attempt} failed, retrying in {delay:?}");
///         }
///     }
/// }
/// ```
pub trait Observer: fmt::Debug + Send + Sync + 'static {
    /// Called for each event of each call, in order, on the call's task.
    fn on_event(&self, key: &Key, event: &Event);

    /// Called with a failed attempt's error text (its `Display`), just before the attempt's
    /// [`Event::AttemptFinished`], for calls that allow it
    /// ([`KeyCall::error_text`](crate::executor::KeyCall::error_text), the integrations'
    /// `error_text` options): an error's text can carry what a log must not, so a call shows
    /// it only when asked. Does nothing unless implemented.
    ///
    /// ```
    /// use std::fmt::Display;
    /// use steadfast::observe::{Event, Observer};
    /// use steadfast::Key;
    ///
    /// #[derive(Debug)]
    /// struct Errors;
    /// impl Observer for Errors {
    ///     fn on_event(&self, _: &Key, _: &Event) {}
    ///     fn on_attempt_error(&self, key: &Key, error: &dyn Display) {
    ///         eprintln!("{key}: an attempt failed: {error}");
    ///     }
    /// }
    /// ```
    fn on_attempt_error(&self, key: &Key, error: &dyn fmt::Display) {
        let _ = (key, error);
    }

    /// Called when the executor's policies change, or a change is refused, by a provider it
    /// follows (`Executor::follow`). Does nothing unless implemented.
    fn on_policy_event(&self, event: &PolicyEvent<'_>) {
        let _ = event;
    }

    /// Called for what the durable parts do (`steadfast-store`'s gate and queue, given this
    /// observer with `with_observer`). Does nothing unless implemented.
    fn on_durable_event(&self, event: &DurableEvent<'_>) {
        let _ = event;
    }
}

/// What the durable retry gate and the retry queue did: one observer (and [`MetricsObserver`],
/// [`TracingObserver`]) sees calls and durable work alike.
///
/// # Example
/// ```
/// use steadfast::observe::{DurableEvent, Event, Observer};
/// use steadfast::Key;
///
/// #[derive(Debug)]
/// struct Pager;
/// impl Observer for Pager {
///     fn on_event(&self, _: &Key, _: &Event) {}
///     fn on_durable_event(&self, event: &DurableEvent<'_>) {
///         if let DurableEvent::DeadLettered { topic, reason, .. } = event {
///             eprintln!("{topic}: a message is dead: {reason}");
///         }
///     }
/// }
/// ```
#[derive(Debug, Clone, Copy, PartialEq)]
#[non_exhaustive]
pub enum DurableEvent<'a> {
    /// The gate answered an attempt at a target of `target_type`.
    GateDecided {
        /// The target's type (its id is left out: labels stay bounded).
        target_type: &'a str,
        /// Whether the attempt may go.
        allowed: bool,
        /// Why.
        reason: crate::gate::Reason,
    },
    /// A message was leased for its `attempt`th delivery.
    Delivered {
        /// Its topic.
        topic: &'a str,
        /// The delivery, from 1.
        attempt: u32,
    },
    /// Messages finished and were acked.
    Acked {
        /// Their topic.
        topic: &'a str,
        /// How many.
        count: u64,
    },
    /// A failed delivery was scheduled again after `delay`.
    Retried {
        /// Its topic.
        topic: &'a str,
        /// The delivery that failed.
        attempt: u32,
        /// The wait before the next.
        delay: Duration,
    },
    /// Messages moved to the dead letters.
    DeadLettered {
        /// Their topic.
        topic: &'a str,
        /// How many.
        count: u64,
        /// `not_retryable`, `exhausted` (the last delivery failed) or `lease_expired` (the
        /// last delivery's lease ran out).
        reason: &'static str,
    },
    /// An answer (ack, nack, extend) came after its lease had expired: the message went to
    /// another delivery.
    LeaseLost {
        /// Its topic.
        topic: &'a str,
    },
    /// Dead letters were sent back to their topics.
    Redriven {
        /// How many.
        count: u64,
    },
    /// How much a topic holds, as `steadfast_store::queue::Queue::observe_depth` read it.
    QueueDepth {
        /// The topic.
        topic: &'a str,
        /// Messages deliverable now.
        ready: u64,
        /// Messages waiting for their time.
        scheduled: u64,
        /// Messages leased.
        leased: u64,
        /// Dead letters.
        dead: u64,
        /// How long the oldest live message has been queued.
        oldest: Option<Duration>,
    },
}

/// What happened to the policies an executor follows from a provider.
///
/// A refused change never takes effect: the policies in force stay until a valid one arrives
/// (last-known-good), and the executor starts from its own policies (the safe defaults unless
/// given others) until a provider has anything.
///
/// # Example
/// ```
/// use steadfast::observe::{Event, Observer, PolicyEvent};
/// use steadfast::Key;
///
/// #[derive(Debug)]
/// struct Alert;
/// impl Observer for Alert {
///     fn on_event(&self, _: &Key, _: &Event) {}
///     fn on_policy_event(&self, event: &PolicyEvent<'_>) {
///         if let PolicyEvent::Rejected { source, reason } = event {
///             eprintln!("policies from {source} refused, the old ones stay:\n{reason}");
///         }
///     }
/// }
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum PolicyEvent<'a> {
    /// New policies are in force: the next call of every key uses them.
    Applied {
        /// Which provider they came from (a path, a URL, `layered`).
        source: &'a str,
    },
    /// A new document was invalid; the policies in force stay.
    Rejected {
        /// Which provider it came from.
        source: &'a str,
        /// Every problem, one per line (`file:line:column: field: message`).
        reason: &'a str,
    },
    /// The provider could not be read (file missing, server down); the policies in force stay.
    Unavailable {
        /// Which provider.
        source: &'a str,
        /// Why.
        reason: &'a str,
    },
    /// A key's classifier cannot read a call's error type, so such failures are not retried
    /// (reported once per classifier and type; see
    /// [`PolicyClassifier`](crate::classify::PolicyClassifier)).
    Unreadable {
        /// The call's key.
        key: &'a str,
        /// The classifier's name.
        classifier: &'a str,
        /// The error type it cannot read.
        type_name: &'a str,
    },
}

/// What the engine reports to. Implemented by [`Timeline`], by the executor's observers, and
/// by [`NoHook`](crate::retry::NoHook) (nothing).
pub trait Probe {
    /// Whether the probe does anything (lets the engine skip the clock reads).
    const ACTIVE: bool = true;

    /// An attempt's future as the probe wraps it (the `tracing` probe runs it in a span).
    type Attempt<Fut: Future>: Future<Output = Fut::Output>;

    /// Called for each event.
    fn event(&mut self, event: &Event);

    /// Wraps the future of attempt number `attempt` before it is polled.
    fn attempt<Fut: Future>(&mut self, attempt: u32, fut: Fut) -> Self::Attempt<Fut>;
}

impl Probe for crate::retry::NoHook {
    const ACTIVE: bool = false;
    type Attempt<Fut: Future> = Fut;

    #[inline]
    fn event(&mut self, _: &Event) {}

    #[inline]
    fn attempt<Fut: Future>(&mut self, _: u32, fut: Fut) -> Fut {
        fut
    }
}

impl<P: Probe> Probe for &mut P {
    const ACTIVE: bool = P::ACTIVE;
    type Attempt<Fut: Future> = P::Attempt<Fut>;

    fn event(&mut self, event: &Event) {
        (**self).event(event)
    }

    fn attempt<Fut: Future>(&mut self, attempt: u32, fut: Fut) -> P::Attempt<Fut> {
        (**self).attempt(attempt, fut)
    }
}

/// The executor's observers (and its tracing, when on), for one call of one key.
#[derive(Debug)]
pub(crate) struct Observers<'a> {
    pub(crate) key: &'a Key,
    pub(crate) list: &'a [Arc<dyn Observer>],
    #[cfg(feature = "tracing")]
    pub(crate) tracing: Option<tracing_probe::Spans>,
}

impl Probe for Observers<'_> {
    #[cfg(not(feature = "tracing"))]
    type Attempt<Fut: Future> = Fut;
    #[cfg(feature = "tracing")]
    type Attempt<Fut: Future> = tracing::instrument::Instrumented<Fut>;

    fn event(&mut self, event: &Event) {
        #[cfg(feature = "tracing")]
        if let Some(t) = &mut self.tracing {
            t.event(event);
        }
        for o in self.list {
            o.on_event(self.key, event);
        }
    }

    #[cfg(not(feature = "tracing"))]
    fn attempt<Fut: Future>(&mut self, _: u32, fut: Fut) -> Fut {
        fut
    }

    #[cfg(feature = "tracing")]
    fn attempt<Fut: Future>(&mut self, attempt: u32, fut: Fut) -> Self::Attempt<Fut> {
        use tracing::Instrument;
        match &self.tracing {
            Some(t) => fut.instrument(t.attempt_span(attempt)),
            None => fut.instrument(tracing::Span::none()),
        }
    }
}

/// Both probes, in order.
#[derive(Debug)]
pub(crate) struct Both<A, B>(pub(crate) A, pub(crate) B);

impl<A: Probe, B: Probe> Probe for Both<A, B> {
    const ACTIVE: bool = A::ACTIVE || B::ACTIVE;
    type Attempt<Fut: Future> = A::Attempt<B::Attempt<Fut>>;

    fn attempt<Fut: Future>(&mut self, attempt: u32, fut: Fut) -> Self::Attempt<Fut> {
        let inner = self.1.attempt(attempt, fut);
        self.0.attempt(attempt, inner)
    }

    fn event(&mut self, event: &Event) {
        if A::ACTIVE {
            self.0.event(event);
        }
        if B::ACTIVE {
            self.1.event(event);
        }
    }
}

/// One attempt as the timeline saw it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct AttemptRecord {
    index: u32,
    hedge: bool,
    start: Duration,
    duration: Duration,
    end: AttemptEnd,
    outcome: Outcome,
    delay_before: Duration,
}

impl AttemptRecord {
    /// 1 for the first attempt.
    pub fn index(&self) -> u32 {
        self.index
    }

    /// Whether it was a hedge (see [`hedge`](crate::hedge)).
    pub fn is_hedge(&self) -> bool {
        self.hedge
    }

    /// When it started, since the call's start.
    pub fn start(&self) -> Duration {
        self.start
    }

    /// How long it ran.
    pub fn duration(&self) -> Duration {
        self.duration
    }

    /// How it ended.
    pub fn end(&self) -> AttemptEnd {
        self.end
    }

    /// How it was classified.
    pub fn outcome(&self) -> Outcome {
        self.outcome
    }

    /// The wait before it (zero for the first).
    pub fn delay_before(&self) -> Duration {
        self.delay_before
    }
}

/// Every attempt of one call: index, start, duration, outcome and the wait before it.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Timeline {
    attempts: Vec<AttemptRecord>,
    duration: Duration,
    next_delay: Duration,
    budget_refusals: u32,
}

impl Timeline {
    /// The attempts, in order.
    pub fn attempts(&self) -> &[AttemptRecord] {
        &self.attempts
    }

    /// The whole call's duration.
    pub fn duration(&self) -> Duration {
        self.duration
    }

    /// Retries and hedges the budget refused (at most one retry: the call ends there).
    pub fn budget_refusals(&self) -> u32 {
        self.budget_refusals
    }
}

impl Probe for Timeline {
    type Attempt<Fut: Future> = Fut;

    fn attempt<Fut: Future>(&mut self, _: u32, fut: Fut) -> Fut {
        fut
    }

    fn event(&mut self, event: &Event) {
        match *event {
            Event::AttemptStarted { attempt, at } | Event::HedgeLaunched { attempt, at } => {
                self.attempts.push(AttemptRecord {
                    index: attempt,
                    hedge: matches!(event, Event::HedgeLaunched { .. }),
                    start: at,
                    duration: Duration::ZERO,
                    end: AttemptEnd::Ok,
                    outcome: Outcome::Success,
                    delay_before: std::mem::take(&mut self.next_delay),
                })
            }
            Event::AttemptFinished {
                attempt,
                end,
                outcome,
                duration,
            } => {
                if let Some(a) = self.attempts.iter_mut().rev().find(|a| a.index == attempt) {
                    a.end = end;
                    a.outcome = outcome;
                    a.duration = duration;
                }
            }
            Event::RetryScheduled { delay, .. } => self.next_delay = delay,
            Event::CallFinished { duration, .. } => self.duration = duration,
            Event::BudgetExhausted { .. } => self.budget_refusals += 1,
            _ => {}
        }
    }
}
