//! The parts of a call that are type parameters of [`KeyCall`](super::KeyCall): which
//! classifier it applies, its fallback and its idempotency (the gate step is
//! [`gate::step`](crate::gate::step)); each absent part is a unit type that does nothing.

use std::fmt;

use crate::classify::{Classifier, FromPolicy, Outcome, PolicyClassifier};
use crate::error::Error;

/// Where a call's classifier reports what it saw, beside its outcomes: an error type the
/// policy's classifier cannot read ([`PolicyEvent::Unreadable`](crate::observe::PolicyEvent)),
/// and an attempt's error text ([`Observer::on_attempt_error`](crate::observe::Observer), for
/// calls that allow it). The executor makes one per call; both are absent when nothing
/// observes the executor.
#[derive(Clone, Copy, Default)]
pub struct Reports<'a> {
    pub(crate) unreadable: Option<&'a (dyn Fn(&'static str) + Sync)>,
    pub(crate) errors: Option<&'a ErrorSink<'a>>,
}

/// Where an attempt's error text goes.
pub(crate) type ErrorSink<'a> = dyn Fn(&dyn fmt::Display) + Sync + 'a;

impl fmt::Debug for Reports<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Reports")
            .field("unreadable", &self.unreadable.is_some())
            .field("errors", &self.errors.is_some())
            .finish()
    }
}

impl Reports<'_> {
    /// Whether an attempt's error text is wanted (formatting it otherwise is wasted work).
    pub fn wants_errors(&self) -> bool {
        self.errors.is_some()
    }

    /// Reports an attempt's error text to the executor's observers.
    pub fn error(&self, error: &dyn fmt::Display) {
        if let Some(sink) = self.errors {
            sink(error);
        }
    }
}

/// Which classifier a call applies: its key's policy's ([`FromPlan`], the default) or one the
/// call site gives ([`Given`], set with [`KeyCall::classify`](super::KeyCall::classify)).
pub trait CallClassifier<T, E> {
    /// The classifier as one call applies it.
    type Resolved<'a>: Classifier<T, E>
    where
        Self: 'a;
    /// The classifier for a call under `policy`, reporting what it sees to `reports`.
    fn resolve<'a>(
        &'a self,
        policy: &'a PolicyClassifier,
        reports: Reports<'a>,
    ) -> Self::Resolved<'a>;
}

/// The key's policy decides ([`Plan::classify`](crate::policy::Plan::classify), a file's
/// `classify = …`).
#[derive(Debug, Clone, Copy, Default)]
pub struct FromPlan;

impl<T: 'static, E: 'static> CallClassifier<T, E> for FromPlan {
    type Resolved<'a> = FromPolicy<'a>;
    fn resolve<'a>(&'a self, policy: &'a PolicyClassifier, reports: Reports<'a>) -> FromPolicy<'a> {
        FromPolicy {
            policy,
            report: reports.unreadable,
        }
    }
}

/// A classifier the call site gives, overriding the policy's.
#[derive(Debug, Clone, Copy)]
pub struct Given<C>(pub C);

impl<T, E, C: Classifier<T, E>> CallClassifier<T, E> for Given<C> {
    type Resolved<'a>
        = ByRef<'a, C>
    where
        C: 'a;
    fn resolve<'a>(&'a self, _: &'a PolicyClassifier, _: Reports<'a>) -> ByRef<'a, C> {
        ByRef(&self.0)
    }
}

/// A call's classifier that also reports each failed attempt's error text (its `Display`) to
/// the executor's observers; set with [`KeyCall::error_text`](super::KeyCall::error_text).
#[derive(Debug, Clone, Copy)]
pub struct ErrorText<C>(pub C);

impl<T, E: fmt::Display, C: CallClassifier<T, E>> CallClassifier<T, E> for ErrorText<C> {
    type Resolved<'a>
        = WithText<'a, C::Resolved<'a>>
    where
        Self: 'a;
    fn resolve<'a>(
        &'a self,
        policy: &'a PolicyClassifier,
        reports: Reports<'a>,
    ) -> Self::Resolved<'a> {
        WithText {
            inner: self.0.resolve(policy, reports),
            reports,
        }
    }
}

/// A resolved classifier reporting error texts (see [`ErrorText`]).
#[derive(Debug)]
pub struct WithText<'a, C> {
    inner: C,
    reports: Reports<'a>,
}

impl<T, E: fmt::Display, C: Classifier<T, E>> Classifier<T, E> for WithText<'_, C> {
    #[inline]
    fn classify(&self, result: &Result<T, E>) -> Outcome {
        if let Err(e) = result {
            self.reports.error(e);
        }
        self.inner.classify(result)
    }

    #[inline]
    fn stop_after(&self) -> Option<crate::Stop> {
        self.inner.stop_after()
    }
}

/// A classifier by reference.
#[derive(Debug)]
pub struct ByRef<'a, C>(pub(super) &'a C);

impl<T, E, C: Classifier<T, E>> Classifier<T, E> for ByRef<'_, C> {
    #[inline]
    fn classify(&self, result: &Result<T, E>) -> Outcome {
        self.0.classify(result)
    }

    #[inline]
    fn stop_after(&self) -> Option<crate::Stop> {
        self.0.stop_after()
    }
}

/// What replaces a failed call's error: nothing ([`NoFallback`]) or a
/// [`Fallback`](crate::fallback::Fallback).
pub trait Recover<T, E> {
    /// Whether anything may be replaced.
    const ACTIVE: bool;
    /// The result, and whether the fallback replaced it.
    fn recover(self, result: Result<T, Error<E>>) -> (Result<T, Error<E>>, bool);
}

/// No fallback.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoFallback;

impl<T, E> Recover<T, E> for NoFallback {
    const ACTIVE: bool = false;
    #[inline]
    fn recover(self, result: Result<T, Error<E>>) -> (Result<T, Error<E>>, bool) {
        (result, false)
    }
}

impl<T, E, W: crate::fallback::When<E>, A: crate::fallback::Action<T, E>> Recover<T, E>
    for crate::fallback::Fallback<W, A>
{
    const ACTIVE: bool = true;
    fn recover(self, result: Result<T, Error<E>>) -> (Result<T, Error<E>>, bool) {
        self.apply(result)
    }
}

/// Not an idempotent call.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoIdempotency;

/// An idempotent call for a request (set with [`KeyCall::idempotent`](super::KeyCall::idempotent)).
#[cfg(feature = "serde")]
#[derive(Debug)]
pub struct WithIdempotency(pub(super) Result<serde_json::Value, String>);
