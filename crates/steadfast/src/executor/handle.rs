//! [`Handle`]: one key's entry kept by a call site.

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use super::Inner;
use super::bind::Bound;
use super::blocking::BlockingKeyCall;
use super::cache::Entry;
use super::call::KeyCall;
use crate::breaker::Breaker;
use crate::error::Error;
use crate::key::Key;
use crate::policy::Plan;
use crate::retry::{Gate, Retry, engine_run};

/// One key's entry, kept by a call site: no lookup per call, and still the key's current
/// plan (a policy swap reaches it on the next call).
///
/// A handle pins the plan it was made with and checks one counter per call; after a policy
/// swap each call resolves the key again, until [`refresh`](Self::refresh) pins the new plan.
#[derive(Debug, Clone)]
pub struct Handle {
    pub(super) entry: Arc<Entry>,
    pub(super) inner: Arc<Inner>,
    pub(super) bound: Arc<Bound>,
    /// The pinned plan's retry policy, kept in the handle: the call reads it without
    /// following a pointer.
    pub(super) retry: Retry,
    pub(super) generation: u64,
    /// `generation` when a call may run its first attempt in line under the pinned plan (it
    /// has no chain, strategy, timeout or classifier to read types with, and the executor no
    /// observer), else [`NEVER`].
    pub(super) fast: u64,
}

/// A generation the policies never reach.
const NEVER: u64 = u64::MAX;

/// What [`Handle::fast`] is for `bound`, pinned under `generation`.
pub(super) fn fast_generation(bound: &Bound, generation: u64) -> u64 {
    if bound.plain && bound.plan.retry().untimed {
        generation
    } else {
        NEVER
    }
}

impl Handle {
    /// The key.
    pub fn key(&self) -> &Key {
        &self.entry.key
    }

    /// The plan the next call runs under.
    pub fn plan(&self) -> Arc<Plan> {
        self.fresh()
            .map_or_else(|| self.bound.plan.clone(), |b| b.plan.clone())
    }

    /// The circuit breaker the key's calls run through, if its plan has one.
    pub fn breaker(&self) -> Option<Breaker> {
        let fresh = self.fresh();
        let bound = fresh.as_ref().unwrap_or(&self.bound);
        bound.breaker.as_ref().map(|s| s.state.clone())
    }

    /// Pins the key's current plan, so calls skip resolving it again after a policy swap.
    pub fn refresh(&mut self) {
        self.generation = self.inner.generation.load(Ordering::Acquire);
        self.bound = self.inner.current(&self.entry);
        self.retry = self.bound.plan.retry().clone();
        self.fast = fast_generation(&self.bound, self.generation);
    }

    /// The key's plan if the policies changed since this handle pinned its own.
    #[inline]
    pub(super) fn fresh(&self) -> Option<Arc<Bound>> {
        (self.inner.generation.load(Ordering::Acquire) != self.generation)
            .then(|| self.inner.current(&self.entry))
    }

    /// Runs `op` under the key's current plan.
    pub fn run<F, Fut, T, E>(&self, op: F) -> impl Future<Output = Result<T, Error<E>>>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, E>>,
        T: 'static,
        E: 'static,
    {
        // While the pinned plan is current and plain, its call runs the first attempt in
        // line and the engine the rest; otherwise the current plan runs the call.
        self.retry
            .call(op)
            .run_gated(self, |handle, call, first| async move {
                if first.is_some() {
                    return engine_run(call, first).await;
                }
                handle.run_current(call.into_op()).await
            })
    }

    /// Runs `op` under the key's current plan, from the start.
    async fn run_current<F, Fut, T, E>(&self, op: F) -> Result<T, Error<E>>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, E>>,
        T: 'static,
        E: 'static,
    {
        let fresh = self.fresh();
        let bound = fresh.as_deref().unwrap_or(&self.bound);
        if self.inner.lean(bound) {
            let guards = bound.guards();
            let call = bound.plan.retry().call(op);
            if guards.is_empty() {
                return call.run().await;
            }
            return call.with_guards(guards).run().await;
        }
        Box::pin(self.inner.run_plan(&self.entry.key, bound, op)).await
    }

    /// Starts a call of `op` under the key's current plan (see [`KeyCall`]); `op` may take
    /// the [`Attempt`](super::Attempt), as with [`Executor::call`](super::Executor::call).
    pub fn call<M, O, T, E>(&self, op: O) -> KeyCall<'_, super::Op<O, M>>
    where
        O: super::Operation<M>,
        O::Output: Future<Output = Result<T, E>>,
    {
        KeyCall::by_handle(self, super::Op::new(op))
    }

    /// Starts a blocking call of `op` under the key's current plan (see [`BlockingKeyCall`]).
    pub fn call_blocking<F, T, E>(&self, op: F) -> BlockingKeyCall<'_, F>
    where
        F: FnMut() -> Result<T, E>,
    {
        BlockingKeyCall::by_handle(self, op)
    }
}

impl Gate for &Handle {
    /// Open while the pinned plan is current and plain.
    #[inline(always)]
    fn open(self, _: &Retry) -> bool {
        self.inner.generation.load(Ordering::Acquire) == self.fast
    }
}
