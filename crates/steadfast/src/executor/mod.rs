//! The executor: call sites name a key, the executor finds the key's plan and runs the call.
//!
//! Plans are resolved once per key and cached in a sharded map; a [`Handle`] keeps one key's
//! entry so a hot call site skips even the lookup (as Polly's registry hands out pipelines).
//! [`Executor::set_policies`] swaps every key's plan atomically: the next call of each key
//! uses the new plan, and a call in flight finishes under the plan it started with.
//!
//! The cache is bounded: past `max_keys`, entries not used since the last sweep are dropped
//! (a "second chance" sweep, no clock read per call), so a million distinct keys (per tenant,
//! per host) cannot grow memory without bound.
//!
//! # Example
//! ```
//! use std::time::Duration;
//! use steadfast::{Executor, Retry, policy::Policies};
//!
//! # #[tokio::main(flavor = "current_thread", start_paused = true)]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let executor = Executor::new(
//!     Policies::default().with("payments.*", Retry::fixed(Duration::from_millis(50)).max_attempts(5).build()?)?,
//! );
//! let mut tries = 0;
//! let value = executor
//!     .run("payments.Charge", || {
//!         tries += 1;
//!         let t = tries;
//!         async move { if t < 4 { Err("busy") } else { Ok(t) } }
//!     })
//!     .await;
//! assert_eq!(value.unwrap(), 4);
//!
//! let charge = executor.handle("payments.Charge")?; // resolved once, kept by the caller
//! assert_eq!(charge.run(|| async { Ok::<_, ()>(1) }).await.unwrap(), 1);
//! # Ok(()) }
//! ```

mod at;
mod attempt;
mod bind;
mod blocking;
mod builder;
mod cache;
mod call;
mod execute;
mod handle;
mod states;
mod steps;

use std::future::Future;
use std::hash::BuildHasher;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use arc_swap::ArcSwap;
use foldhash::fast::RandomState;

use crate::breaker::Breaker;
use crate::chain::Registry;
use crate::error::Error;
use crate::key::{Key, KeyError};
use crate::limit::{Bulkhead, RateLimiter};
use crate::observe::{Observer, Observers, PolicyEvent};
use crate::policy::{Plan, Policies};

pub use crate::gate::{GateStep, Gated, NoGate};
pub use attempt::{
    Attempt, AttemptSource, CallOp, Extensions, NoArgument, OnRetryAsync, Op, Operation, RetryNote,
    WithAttempt,
};
use bind::{Bound, SharedStates};
pub use blocking::BlockingKeyCall;
pub use builder::ExecutorBuilder;
use cache::Shard;
pub use call::KeyCall;
pub use handle::Handle;
pub use states::{BulkheadState, KeyState};
#[cfg(feature = "serde")]
pub use steps::WithIdempotency;
pub use steps::{
    ByRef, CallClassifier, ErrorText, FromPlan, Given, NoFallback, NoIdempotency, Recover, Reports,
    WithText,
};

/// Default bound on cached keys.
pub const DEFAULT_MAX_KEYS: usize = 10_000;
const SHARDS: usize = 16;

/// Resolves keys to plans and runs calls under them; cheap to clone (shared state).
///
/// See the [module docs](self).
#[derive(Debug, Clone)]
pub struct Executor {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    /// Tells this executor's entries in a thread's recent keys from another's.
    id: u64,
    observers: Box<[Arc<dyn Observer>]>,
    tracing: bool,
    /// Resolves custom strategy names in documents from providers (`follow`).
    #[cfg_attr(not(any(feature = "watch", feature = "http")), allow(dead_code))]
    registry: Registry,
    policies: ArcSwap<Policies>,
    generation: AtomicU64,
    hasher: RandomState,
    shards: Box<[Shard]>,
    shard_cap: usize,
    len: AtomicUsize,
    /// The state of strategies shared by name.
    shared: Mutex<SharedStates>,
    /// Where the retry gate keeps its records (`KeyCall::gate`).
    gate: Option<Arc<dyn crate::gate::GateBackend>>,
    /// Where idempotency keys and results are kept (`KeyCall::idempotent`).
    #[cfg_attr(not(feature = "serde"), allow(dead_code))]
    idempotency: Option<Arc<dyn crate::idempotency::IdempotencyBackend>>,
}

impl Default for Executor {
    fn default() -> Self {
        Executor::new(Policies::default())
    }
}

impl Executor {
    /// An executor over `policies`, caching at most [`DEFAULT_MAX_KEYS`] keys.
    pub fn new(policies: Policies) -> Self {
        Executor::with_max_keys(policies, DEFAULT_MAX_KEYS)
    }

    /// An executor caching at most `max_keys` keys (at least one per shard).
    pub fn with_max_keys(policies: Policies, max_keys: usize) -> Self {
        Executor::builder()
            .policies(policies)
            .max_keys(max_keys)
            .build()
    }

    /// Options beyond the policies: the key cache's bound, observers.
    pub fn builder() -> ExecutorBuilder {
        ExecutorBuilder {
            policies: Policies::default(),
            max_keys: DEFAULT_MAX_KEYS,
            observers: Vec::new(),
            tracing: false,
            registry: Registry::new(),
            gate: None,
            idempotency: None,
        }
    }

    fn build(b: ExecutorBuilder) -> Self {
        let ExecutorBuilder {
            policies,
            max_keys,
            observers,
            tracing,
            registry,
            gate,
            idempotency,
        } = b;
        Executor {
            inner: Arc::new(Inner {
                id: cache::next_executor_id(),
                observers: observers.into(),
                tracing,
                registry,
                policies: ArcSwap::from_pointee(policies),
                generation: AtomicU64::new(0),
                hasher: RandomState::default(),
                shards: (0..SHARDS).map(|_| Shard::default()).collect(),
                shard_cap: max_keys.div_ceil(SHARDS).max(1),
                len: AtomicUsize::new(0),
                shared: Mutex::default(),
                gate,
                idempotency,
            }),
        }
    }

    /// Replaces the policies: every key's next call resolves again; calls in flight keep the
    /// plan they started with.
    pub fn set_policies(&self, policies: Policies) {
        self.inner.policies.store(Arc::new(policies));
        self.inner.generation.fetch_add(1, Ordering::AcqRel);
    }

    /// Follows a provider of policy documents: each valid document it delivers is compiled
    /// (custom strategy names resolved in the builder's [`registry`](ExecutorBuilder::registry))
    /// and swapped in atomically, as [`set_policies`](Self::set_policies) does; an invalid one
    /// or an unreachable source is reported to the observers (and logged with `tracing`) and
    /// the policies in force stay (last-known-good). Until the provider has delivered anything,
    /// the executor keeps the policies it was built with (by default the safe defaults).
    ///
    /// Returns once the provider has reported its first state (the file read, the first fetch
    /// made or failed), so the first call after it already runs under the provider's policies.
    /// Following stops when the returned [`Following`](crate::policy::Following) is dropped.
    ///
    /// ```no_run
    /// use steadfast::{policy::FileProvider, Executor};
    ///
    /// # async fn demo() {
    /// let executor = Executor::builder().build();
    /// let _following = executor.follow(FileProvider::new("policies.toml")).await;
    /// // Edit policies.toml: the next call of every key uses the new policies.
    /// # }
    /// ```
    #[cfg(any(feature = "watch", feature = "http"))]
    pub async fn follow(&self, provider: impl crate::policy::Provider) -> crate::policy::Following {
        crate::policy::provider::follow(self.clone(), Box::new(provider)).await
    }

    /// Compiles a document with the executor's registry and applies it, reporting the outcome.
    #[cfg(any(feature = "watch", feature = "http"))]
    pub(crate) fn apply(&self, update: &crate::policy::Update) {
        use crate::policy::UpdateKind;
        let source = update.source();
        let report = |event: PolicyEvent<'_>| self.inner.report(&event);
        match update.kind() {
            UpdateKind::Document(doc) => match doc.compile(&self.inner.registry) {
                Ok(policies) => {
                    self.set_policies(policies);
                    report(PolicyEvent::Applied { source });
                }
                Err(e) => report(PolicyEvent::Rejected {
                    source,
                    reason: &e.to_string(),
                }),
            },
            UpdateKind::Rejected(e) => report(PolicyEvent::Rejected {
                source,
                reason: &e.to_string(),
            }),
            UpdateKind::Unavailable(reason) => report(PolicyEvent::Unavailable { source, reason }),
        }
    }

    /// The policies in force.
    pub fn policies(&self) -> Arc<Policies> {
        self.inner.policies.load_full()
    }

    /// How many keys are cached now.
    pub fn cached_keys(&self) -> usize {
        self.inner.len.load(Ordering::Relaxed)
    }

    /// A handle on `key`, resolved now and kept by the caller.
    pub fn handle(&self, key: &str) -> Result<Handle, KeyError> {
        let entry = self.inner.entry(key)?;
        let generation = self.inner.generation.load(Ordering::Acquire);
        let bound = self.inner.current(&entry);
        Ok(Handle {
            fast: handle::fast_generation(&bound, generation),
            retry: bound.plan.retry().clone(),
            entry,
            inner: self.inner.clone(),
            bound,
            generation,
        })
    }

    /// The plan `key` runs under now.
    pub fn plan(&self, key: &str) -> Result<Arc<Plan>, KeyError> {
        Ok(self.bound(key)?.plan.clone())
    }

    /// The circuit breaker `key`'s calls run through, if its plan has one: to read its state,
    /// [`isolate`](Breaker::isolate) or [`reset`](Breaker::reset) it. A breaker shared by name
    /// is the same for every key naming it.
    ///
    /// ```
    /// use steadfast::{breaker::{BreakerOptions, BreakerState}, policy::{Plan, Policies}, Executor, Retry};
    ///
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let executor = Executor::new(Policies::default()
    ///     .with_plan("payments.*", Plan::new(Retry::default()).breaker(BreakerOptions::default())?)?);
    /// let breaker = executor.breaker("payments.Charge")?.expect("the plan has a breaker");
    /// breaker.isolate(); // an operator takes the dependency out
    /// let refused = executor.run("payments.Charge", || async { Ok::<_, ()>(()) }).await.unwrap_err();
    /// assert!(matches!(refused.kind(), steadfast::ErrorKind::CircuitOpen { retry_after: None, .. }));
    /// assert_eq!(breaker.state(), BreakerState::Isolated);
    /// # Ok(()) }
    /// ```
    pub fn breaker(&self, key: &str) -> Result<Option<Breaker>, KeyError> {
        Ok(self.bound(key)?.breaker.as_ref().map(|s| s.state.clone()))
    }

    /// The bulkhead `key`'s calls run in, if its plan has one.
    pub fn bulkhead(&self, key: &str) -> Result<Option<Bulkhead>, KeyError> {
        Ok(self.bound(key)?.bulkhead.as_ref().map(|s| s.state.clone()))
    }

    /// The rate limiter `key`'s calls go through, if its plan has one.
    pub fn rate_limiter(&self, key: &str) -> Result<Option<RateLimiter>, KeyError> {
        Ok(self.bound(key)?.limiter.as_ref().map(|s| s.state.clone()))
    }

    /// The plan of `key` with its strategies' state.
    #[inline]
    fn bound(&self, key: &str) -> Result<Arc<Bound>, KeyError> {
        let generation = self.inner.generation.load(Ordering::Acquire);
        match cache::recent(self.inner.id, generation, key) {
            Some(bound) => Ok(bound),
            None => self.resolve(key, generation),
        }
    }

    /// `key`'s plan from the shared cache (made there if absent), remembered as one of this
    /// thread's recent keys.
    #[inline(never)]
    fn resolve(&self, key: &str, generation: u64) -> Result<Arc<Bound>, KeyError> {
        let hash = self.inner.hasher.hash_one(key);
        let shard = self.inner.shard(hash);
        let found = shard
            .table
            .load()
            .find(hash, |e| e.key.as_str() == key)
            .cloned();
        let entry = match found {
            Some(e) => e,
            None => self.inner.entry(key)?,
        };
        let bound = self.inner.current(&entry);
        if self.inner.generation.load(Ordering::Acquire) == generation {
            cache::remember(self.inner.id, generation, entry, bound.clone());
        }
        Ok(bound)
    }

    /// Runs `op` under the plan of `key`; an invalid key fails with [`ErrorKind::InvalidKey`](crate::ErrorKind::InvalidKey)
    /// without running `op`.
    ///
    /// An `async fn` that does all its work inside its future: the future is built in place,
    /// not copied on its way to the caller (a call future is hundreds of bytes).
    pub async fn run<F, Fut, T, E>(&self, key: &str, op: F) -> Result<T, Error<E>>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, E>>,
        T: 'static,
        E: 'static,
    {
        let bound = self.bound(key)?;
        if bound.plain {
            return bound.plan.retry().call(op).run().await;
        }
        if self.inner.lean(&bound) {
            let guards = bound.guards();
            let call = bound.plan.retry().call(op);
            if guards.is_empty() {
                return call.run().await;
            }
            return call.with_guards(guards).run().await;
        }
        // Observers, a chain or a classifier to read types with: their work (and this
        // allocation) only when configured.
        let entry = self.inner.entry(key)?;
        Box::pin(self.inner.run_plan(&entry.key, &bound, op)).await
    }

    /// Starts a call of `op` under the plan of `key`, to give it a classifier, properties,
    /// a fallback, a gate target, an idempotent request, a timeline, hooks or a cancellation
    /// signal before `.run()` (see [`KeyCall`]). An invalid key fails the call with
    /// [`ErrorKind::InvalidKey`](crate::ErrorKind::InvalidKey) without running `op`.
    ///
    /// ```
    /// use steadfast::{Executor, Retry, policy::Policies};
    ///
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let executor = Executor::new(Policies::new(Retry::immediate().max_attempts(3).build()?));
    /// let mut delays = Vec::new();
    /// let r = executor
    ///     .call("inventory.Reserve", || async { Err::<(), _>("sold out") })
    ///     .on_retry(|r| delays.push(r.delay()))
    ///     .run()
    ///     .await;
    /// assert_eq!((r.unwrap_err().attempts(), delays.len()), (3, 2));
    /// # Ok(()) }
    /// ```
    ///
    /// `op` may take the [`Attempt`] (`|attempt: &Attempt| …`): its number, whether it is a
    /// hedge, the time left before the deadline, the previous outcome and the extensions
    /// hooks left for it.
    pub fn call<'e, M, O, T, E>(&'e self, key: &'e str, op: O) -> KeyCall<'e, Op<O, M>>
    where
        O: Operation<M>,
        O::Output: Future<Output = Result<T, E>>,
    {
        KeyCall::by_key(self, key, Op::new(op))
    }

    /// Starts a blocking call of `op` under the plan of `key` (see [`BlockingKeyCall`]).
    pub fn call_blocking<'e, F, T, E>(&'e self, key: &'e str, op: F) -> BlockingKeyCall<'e, F>
    where
        F: FnMut() -> Result<T, E>,
    {
        BlockingKeyCall::by_key(self, key, op)
    }
}

impl Inner {
    /// Whether a call under `bound` takes the lean path: no chain to run, no one to report to.
    fn lean(&self, bound: &Bound) -> bool {
        bound.plan.policies().is_empty() && !self.observed() && bound.plan.classifier().is_always()
    }

    /// Whether calls report anywhere (observers, or tracing when on).
    fn observed(&self) -> bool {
        !self.observers.is_empty() || self.tracing
    }

    fn observers<'a>(&'a self, key: &'a Key) -> Observers<'a> {
        Observers {
            key,
            list: &self.observers,
            #[cfg(feature = "tracing")]
            tracing: self
                .tracing
                .then(|| crate::observe::tracing_probe::Spans::new(key)),
        }
    }

    /// Tells the observers (and `tracing`, at DEBUG) a failed attempt's error text.
    fn attempt_error(&self, key: &Key, error: &dyn std::fmt::Display) {
        #[cfg(feature = "tracing")]
        if self.tracing {
            tracing::debug!(key = %key, error = %error, "steadfast: attempt failed");
        }
        for o in &self.observers {
            o.on_attempt_error(key, error);
        }
    }

    /// Tells the observers (and `tracing`) what happened to the policies.
    fn report(&self, event: &PolicyEvent<'_>) {
        #[cfg(feature = "tracing")]
        match *event {
            PolicyEvent::Applied { source } => {
                tracing::info!(source, "steadfast: policies applied")
            }
            PolicyEvent::Rejected { source, reason } => {
                tracing::warn!(
                    source,
                    reason,
                    "steadfast: policies rejected, the old ones stay"
                )
            }
            PolicyEvent::Unavailable { source, reason } => {
                tracing::warn!(
                    source,
                    reason,
                    "steadfast: policies unavailable, the old ones stay"
                )
            }
            PolicyEvent::Unreadable {
                key,
                classifier,
                type_name,
            } => {
                tracing::warn!(
                    key,
                    classifier,
                    type_name,
                    "steadfast: the classifier cannot read this error type; such failures are not retried"
                )
            }
        }
        for o in self.observers.iter() {
            o.on_policy_event(event);
        }
    }
}
