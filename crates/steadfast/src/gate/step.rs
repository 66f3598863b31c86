//! How a call goes through the durable retry gate: its type-level step ([`NoGate`] or
//! [`Gated`]), asking the backend for an attempt before the call, and recording how the call
//! ended after it.

use super::{Decision, GateAttempt, GateBackend, GateOptions, Target};
use crate::error::Error;

/// Whether a call goes through the durable retry gate: not ([`NoGate`]) or for a target
/// ([`Gated`], set with [`KeyCall::gate`](crate::executor::KeyCall::gate); the error then needs `Display` for the gate's record).
pub trait GateStep<E> {
    /// The target, if the call is gated.
    fn target(&self) -> Option<&Target>;
    /// The text the gate records for a failed call.
    fn failure_text(&self, error: &Error<E>) -> String;
}

/// Not gated.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoGate;

impl<E> GateStep<E> for NoGate {
    fn target(&self) -> Option<&Target> {
        None
    }
    fn failure_text(&self, error: &Error<E>) -> String {
        let _ = error;
        String::new()
    }
}

/// Gated for a target.
#[derive(Debug, Clone, Copy)]
pub struct Gated<'t>(pub(crate) &'t Target);

impl<E: std::fmt::Display> GateStep<E> for Gated<'_> {
    fn target(&self) -> Option<&Target> {
        Some(self.0)
    }
    fn failure_text(&self, e: &Error<E>) -> String {
        match e.operation_error() {
            Some(source) => format!("{source} ({e})"),
            None => e.to_string(),
        }
    }
}

/// The attempt a gated call runs under, asked of `backend` before the call: `Ok(None)` when
/// the call is not gated (no target, or a plan without a gate), `Err` when the gate refuses
/// (or there is no backend: the call fails closed).
pub(crate) async fn admit(
    target: Option<&Target>,
    options: Option<&GateOptions>,
    backend: Option<&dyn GateBackend>,
) -> Result<Option<Box<dyn GateAttempt>>, Decision> {
    let Some((target, options)) = target.zip(options) else {
        return Ok(None);
    };
    let Some(backend) = backend else {
        return Err(Decision::unavailable());
    };
    backend.acquire_attempt(target, options).await.map(Some)
}

/// Records on the gate how a gated call ended: a success clears the target, a failure keeps
/// `step`'s text for it. The result is read before the returned future runs, so the future
/// holds no borrow of it.
pub(crate) fn record<T, E, G: GateStep<E>>(
    attempt: Option<Box<dyn GateAttempt>>,
    step: &G,
    result: &Result<T, Error<E>>,
) -> impl std::future::Future<Output = ()> + use<T, E, G> {
    let ended = attempt.map(|a| (a, result.as_ref().err().map(|e| step.failure_text(e))));
    async move {
        match ended {
            None => {}
            Some((attempt, None)) => attempt.success().await,
            Some((attempt, Some(text))) => attempt.failure(text).await,
        }
    }
}
