//! The blocking mirror of a call by key: [`BlockingKeyCall`].

use super::at::At;
use super::steps::{CallClassifier, FromPlan, Given, NoFallback, Recover};
use super::{Executor, Handle};
use crate::chain::{self, Properties};
use crate::classify::Classifier;
use crate::error::Error;
use crate::observe::{Both, PolicyEvent, Probe, Timeline};
use crate::retry::{
    ExhaustedHook, NoHook, OnExhausted, OnExhaustedFn, OnRetry, OnRetryFn, RetryHook,
};

/// One blocking call by key; the mirror of [`KeyCall`](super::KeyCall) (without the gate,
/// idempotency and cancellation, whose stores and signals are async), made by
/// [`Executor::call_blocking`] or [`Handle::call_blocking`].
///
/// # Example
/// ```
/// use steadfast::{Executor, Retry, policy::Policies};
///
/// let executor = Executor::new(Policies::new(Retry::immediate().max_attempts(3).build()?));
/// let mut tries = 0;
/// let value = executor
///     .call_blocking("disk.Read", || {
///         tries += 1;
///         if tries < 3 { Err("busy") } else { Ok(tries) }
///     })
///     .run();
/// assert_eq!(value.unwrap(), 3);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[must_use = "a call does nothing until `.run()`"]
pub struct BlockingKeyCall<'e, F, C = FromPlan, R = NoHook, X = NoHook, W = NoFallback> {
    at: At<'e>,
    op: F,
    classifier: C,
    on_retry: R,
    on_exhausted: X,
    fallback: W,
    properties: Properties,
    timeline: Option<&'e mut Timeline>,
}

impl<F, C, R, X, W> std::fmt::Debug for BlockingKeyCall<'_, F, C, R, X, W> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BlockingKeyCall")
            .field("at", &self.at)
            .finish_non_exhaustive()
    }
}

impl<'e, F> BlockingKeyCall<'e, F> {
    pub(super) fn by_key(executor: &'e Executor, key: &'e str, op: F) -> Self {
        Self::new(At::Key(executor, key), op)
    }

    pub(super) fn by_handle(handle: &'e Handle, op: F) -> Self {
        Self::new(At::Handle(handle), op)
    }

    fn new(at: At<'e>, op: F) -> Self {
        BlockingKeyCall {
            at,
            op,
            classifier: FromPlan,
            on_retry: NoHook,
            on_exhausted: NoHook,
            fallback: NoFallback,
            properties: Properties::default(),
            timeline: None,
        }
    }
}

impl<'e, F, T, E, C, R, X, W> BlockingKeyCall<'e, F, C, R, X, W>
where
    F: FnMut() -> Result<T, E>,
{
    /// Classifies each attempt with `classifier` instead of the key's policy's.
    pub fn classify<C2: Classifier<T, E>>(
        self,
        classifier: C2,
    ) -> BlockingKeyCall<'e, F, Given<C2>, R, X, W> {
        BlockingKeyCall {
            at: self.at,
            op: self.op,
            classifier: Given(classifier),
            on_retry: self.on_retry,
            on_exhausted: self.on_exhausted,
            fallback: self.fallback,
            properties: self.properties,
            timeline: self.timeline,
        }
    }

    /// Reports each failed attempt's error text to the executor's observers (see
    /// [`KeyCall::error_text`](super::KeyCall::error_text)).
    pub fn error_text(self) -> BlockingKeyCall<'e, F, super::ErrorText<C>, R, X, W>
    where
        E: std::fmt::Display,
    {
        BlockingKeyCall {
            at: self.at,
            op: self.op,
            classifier: super::ErrorText(self.classifier),
            on_retry: self.on_retry,
            on_exhausted: self.on_exhausted,
            fallback: self.fallback,
            properties: self.properties,
            timeline: self.timeline,
        }
    }

    /// Hands `properties` to the key's custom policies.
    pub fn properties(mut self, properties: Properties) -> Self {
        self.properties = properties;
        self
    }

    /// Reports the call's attempts to `timeline` too.
    pub fn timeline(mut self, timeline: &'e mut Timeline) -> Self {
        self.timeline = Some(timeline);
        self
    }

    /// Replaces the failures `fallback` handles.
    pub fn fallback<W2>(self, fallback: W2) -> BlockingKeyCall<'e, F, C, R, X, W2> {
        BlockingKeyCall {
            at: self.at,
            op: self.op,
            classifier: self.classifier,
            on_retry: self.on_retry,
            on_exhausted: self.on_exhausted,
            fallback,
            properties: self.properties,
            timeline: self.timeline,
        }
    }

    /// Runs `hook` before each retry.
    pub fn on_retry<H: FnMut(&OnRetry<'_, T, E>)>(
        self,
        hook: H,
    ) -> BlockingKeyCall<'e, F, C, OnRetryFn<H>, X, W> {
        BlockingKeyCall {
            at: self.at,
            op: self.op,
            classifier: self.classifier,
            on_retry: OnRetryFn(hook),
            on_exhausted: self.on_exhausted,
            fallback: self.fallback,
            properties: self.properties,
            timeline: self.timeline,
        }
    }

    /// Runs `hook` once when the policy's allowance runs out.
    pub fn on_exhausted<H: FnMut(&mut OnExhausted<'_, T, E>)>(
        self,
        hook: H,
    ) -> BlockingKeyCall<'e, F, C, R, OnExhaustedFn<H>, W> {
        BlockingKeyCall {
            at: self.at,
            op: self.op,
            classifier: self.classifier,
            on_retry: self.on_retry,
            on_exhausted: OnExhaustedFn(hook),
            fallback: self.fallback,
            properties: self.properties,
            timeline: self.timeline,
        }
    }

    /// Runs the call on this thread.
    pub fn run(self) -> Result<T, Error<E>>
    where
        T: 'static,
        E: 'static,
        C: CallClassifier<T, E>,
        R: RetryHook<T, E>,
        X: ExhaustedHook<T, E>,
        W: Recover<T, E>,
    {
        let (entry, bound) = self.at.resolve()?;
        let key = &entry.key;
        let inner = self.at.inner();
        let plan = &*bound.plan;
        let report = |type_name: &'static str| {
            inner.report(&PolicyEvent::Unreadable {
                key: key.as_str(),
                classifier: plan.classifier().name(),
                type_name,
            })
        };
        let errors = |error: &dyn std::fmt::Display| inner.attempt_error(key, error);
        let observed = inner.observed();
        let reports = super::Reports {
            unreadable: observed.then_some(&report as _),
            errors: observed.then_some(&errors as _),
        };
        let classifier = self.classifier.resolve(plan.classifier(), reports);
        let call = || {
            let call = plan
                .retry()
                .call_blocking(self.op)
                .classify(classifier)
                .on_hooks(self.on_retry, self.on_exhausted)
                .with_guards(bound.guards());
            match (self.timeline, inner.observed()) {
                (None, false) => call.run(),
                (None, true) => call.run_with_probe(inner.observers(key)),
                (Some(timeline), false) => call.run_with_probe(timeline),
                (Some(timeline), true) => call.run_with_probe(Both(timeline, inner.observers(key))),
            }
        };
        let result = if plan.policies().is_empty() {
            call()
        } else {
            // The chain runs for blocking calls too: a governance policy is never bypassed.
            let deadline = plan.retry().deadline_from_now();
            chain::run_blocking(plan.policies(), key, deadline, self.properties, call)
        };
        let (result, used) = self.fallback.recover(result);
        if used && inner.observed() {
            inner
                .observers(key)
                .event(&crate::observe::Event::FallbackUsed);
        }
        result
    }
}
