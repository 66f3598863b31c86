//! The parts of a call that are type parameters of [`KeyCall`](super::KeyCall): which
//! classifier it applies, its fallback and its idempotency (the gate step is
//! [`gate::step`](crate::gate::step)); each absent part is a unit type that does nothing.

use crate::classify::{Classifier, FromPolicy, Outcome, PolicyClassifier};
use crate::error::Error;

/// Which classifier a call applies: its key's policy's ([`FromPlan`], the default) or one the
/// call site gives ([`Given`], set with [`KeyCall::classify`](super::KeyCall::classify)).
pub trait CallClassifier<T, E> {
    /// The classifier as one call applies it.
    type Resolved<'a>: Classifier<T, E>
    where
        Self: 'a;
    /// The classifier for a call under `policy`, reporting unreadable errors to `report`.
    fn resolve<'a>(
        &'a self,
        policy: &'a PolicyClassifier,
        report: Option<&'a (dyn Fn(&'static str) + Sync)>,
    ) -> Self::Resolved<'a>;
}

/// The key's policy decides ([`Plan::classify`](crate::policy::Plan::classify), a file's
/// `classify = …`).
#[derive(Debug, Clone, Copy, Default)]
pub struct FromPlan;

impl<T: 'static, E: 'static> CallClassifier<T, E> for FromPlan {
    type Resolved<'a> = FromPolicy<'a>;
    fn resolve<'a>(
        &'a self,
        policy: &'a PolicyClassifier,
        report: Option<&'a (dyn Fn(&'static str) + Sync)>,
    ) -> FromPolicy<'a> {
        FromPolicy { policy, report }
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
    fn resolve<'a>(
        &'a self,
        _: &'a PolicyClassifier,
        _: Option<&'a (dyn Fn(&'static str) + Sync)>,
    ) -> ByRef<'a, C> {
        ByRef(&self.0)
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
