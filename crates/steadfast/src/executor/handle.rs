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
    pub(super) generation: u64,
    /// The pinned plan has no chain and no strategy state, and the executor no observer:
    /// calls take the plain path.
    pub(super) lean: bool,
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
        self.lean = self.inner.lean(&self.bound) && self.bound.guards().is_empty();
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
        // The common case, with no wrapper future around the call: the pinned plan is
        // current and nothing observes or chains the call.
        if self.lean && self.inner.generation.load(Ordering::Acquire) == self.generation {
            return Either::Left {
                inner: self.bound.plan.retry().run(op),
            };
        }
        let fresh = self.fresh();
        Either::Right {
            inner: Cold::new(async move {
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
            }),
        }
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

pin_project_lite::pin_project! {
    /// One of two futures: lets a method return the bare call on its common path and a
    /// wrapped one otherwise, without an `async` wrapper around both.
    #[project = EitherProj]
    enum Either<A, B> {
        Left { #[pin] inner: A },
        Right { #[pin] inner: B },
    }
}

pin_project_lite::pin_project! {
    /// A future dropped out of line: the caller's drop of an [`Either`] that holds the common
    /// arm stays a few instructions, however much the other arm owns.
    struct Cold<F> {
        #[pin]
        inner: Option<F>,
    }

    impl<F> PinnedDrop for Cold<F> {
        #[inline(never)]
        fn drop(this: Pin<&mut Self>) {
            this.project().inner.set(None);
        }
    }
}

impl<F> Cold<F> {
    fn new(inner: F) -> Self {
        Cold { inner: Some(inner) }
    }
}

impl<F: Future> Future for Cold<F> {
    type Output = F::Output;

    #[inline]
    fn poll(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<F::Output> {
        match self.project().inner.as_pin_mut() {
            Some(inner) => inner.poll(cx),
            None => std::task::Poll::Pending,
        }
    }
}

impl<A: Future, B: Future<Output = A::Output>> Future for Either<A, B> {
    type Output = A::Output;

    #[inline]
    fn poll(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<A::Output> {
        match self.project() {
            EitherProj::Left { inner } => inner.poll(cx),
            EitherProj::Right { inner } => inner.poll(cx),
        }
    }
}
