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

use std::future::Future;
use std::hash::BuildHasher;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use arc_swap::ArcSwap;
use foldhash::fast::RandomState;
use hashbrown::HashTable;

use crate::breaker::Breaker;
use crate::budget::Budget;
use crate::chain::{self, Properties, Registry};
use crate::classify::{AnyError, Classifier};
use crate::error::Error;
use crate::hedge::Hedge;
use crate::key::{Key, KeyError};
use crate::limit::{Bulkhead, RateLimiter};
use crate::observe::{Both, Observer, Observers, Probe, Timeline};
use crate::policy::{Plan, Policies, Scoped};
use crate::retry::NoHook;
use crate::retry::engine::Guards;

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
    /// Where the retry gate keeps its records (`run_gated`).
    gate: Option<Arc<dyn crate::gate::GateBackend>>,
    /// Where idempotency keys and results are kept (`run_idempotent`).
    #[cfg_attr(not(feature = "serde"), allow(dead_code))]
    idempotency: Option<Arc<dyn crate::idempotency::IdempotencyBackend>>,
}

/// Strategy state shared by name across keys.
#[derive(Debug, Default)]
struct SharedStates {
    breakers: std::collections::HashMap<String, Breaker>,
    bulkheads: std::collections::HashMap<String, Bulkhead>,
    limiters: std::collections::HashMap<String, RateLimiter>,
    budgets: std::collections::HashMap<String, Budget>,
}

/// A strategy whose runtime state the executor keeps apart from plans.
trait Stateful: Clone {
    type Options: PartialEq + Clone;
    fn make(options: Self::Options) -> Option<Self>;
    fn options(&self) -> &Self::Options;
}

impl Stateful for Breaker {
    type Options = crate::breaker::BreakerOptions;
    fn make(options: Self::Options) -> Option<Self> {
        Breaker::new(options).ok()
    }
    fn options(&self) -> &Self::Options {
        Breaker::options(self)
    }
}

impl Stateful for Bulkhead {
    type Options = crate::limit::BulkheadOptions;
    fn make(options: Self::Options) -> Option<Self> {
        Bulkhead::with_options(options).ok()
    }
    fn options(&self) -> &Self::Options {
        Bulkhead::options(self)
    }
}

impl Stateful for RateLimiter {
    type Options = crate::limit::RateLimitOptions;
    fn make(options: Self::Options) -> Option<Self> {
        RateLimiter::with_options(options).ok()
    }
    fn options(&self) -> &Self::Options {
        RateLimiter::options(self)
    }
}

impl Stateful for Budget {
    type Options = crate::budget::BudgetOptions;
    fn make(options: Self::Options) -> Option<Self> {
        options.build().ok()
    }
    fn options(&self) -> &Self::Options {
        Budget::options(self)
    }
}

/// One strategy's state as a key holds it: its own, or the one shared under a name.
#[derive(Debug, Clone)]
struct Slot<S> {
    shared: Option<String>,
    state: S,
}

/// The state for `spec`: the key's previous one when its options and scope did not change,
/// the shared one of that name when its options did not change, else a fresh one.
fn bind_slot<S: Stateful>(
    spec: Option<&Scoped<S::Options>>,
    previous: Option<&Slot<S>>,
    shared: &mut std::collections::HashMap<String, S>,
) -> Option<Slot<S>> {
    let spec = spec?;
    if let Some(prev) = previous
        && prev.shared.is_none()
        && spec.shared.is_none()
        && *prev.state.options() == spec.options
    {
        return Some(prev.clone());
    }
    let state = match &spec.shared {
        None => S::make(spec.options.clone())?,
        Some(name) => match shared.get(name) {
            Some(s) if *s.options() == spec.options => s.clone(),
            _ => {
                let s = S::make(spec.options.clone())?;
                shared.insert(name.clone(), s.clone());
                s
            }
        },
    };
    Some(Slot {
        shared: spec.shared.clone(),
        state,
    })
}

/// A key's plan with the state of its strategies.
#[derive(Debug)]
pub(crate) struct Bound {
    plan: Arc<Plan>,
    breaker: Option<Slot<Breaker>>,
    bulkhead: Option<Slot<Bulkhead>>,
    limiter: Option<Slot<RateLimiter>>,
    budget: Option<Slot<Budget>>,
    /// The key's own latency history (hedges are never shared).
    hedge: Option<Hedge>,
}

impl Bound {
    #[inline]
    fn guards(&self) -> Guards<'_> {
        Guards {
            breaker: self.breaker.as_ref().map(|s| &s.state),
            bulkhead: self.bulkhead.as_ref().map(|s| &s.state),
            limiter: self.limiter.as_ref().map(|s| &s.state),
            budget: self.budget.as_ref().map(|s| &s.state),
            hedge: self.hedge.as_ref(),
        }
    }
}

/// One shard of the key cache: entries found by a hash computed once per lookup.
///
/// Read-copy-update: readers `load` the table (no lock, no shared counter to bump); writers,
/// one at a time per shard, copy it to insert or sweep and store the copy. The cache is read
/// on every call and written once per new key.
#[derive(Debug, Default)]
struct Shard {
    table: ArcSwap<HashTable<Arc<Entry>>>,
    writer: Mutex<()>,
}

#[derive(Debug)]
struct Entry {
    key: Key,
    hash: u64,
    bound: ArcSwap<Bound>,
    generation: AtomicU64,
    touched: AtomicBool,
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
        use crate::observe::PolicyEvent;
        use crate::policy::UpdateKind;
        let source = update.source();
        let report = |event: PolicyEvent<'_>| {
            #[cfg(feature = "tracing")]
            match event {
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
            }
            for o in self.inner.observers.iter() {
                o.on_policy_event(&event);
            }
        };
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
            lean: self.inner.lean(&bound) && bound.guards().is_empty(),
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
    /// let refused = executor.run("payments.Charge", || async { Ok::<_, ()>(()) }).await;
    /// assert!(matches!(refused, Err(steadfast::Error::CircuitOpen { retry_after: None, .. })));
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
    fn bound(&self, key: &str) -> Result<Arc<Bound>, KeyError> {
        let hash = self.inner.hasher.hash_one(key);
        let shard = self.inner.shard(hash);
        if let Some(e) = shard.table.load().find(hash, |e| e.key.as_str() == key) {
            return Ok(self.inner.current(e));
        }
        let entry = self.inner.entry(key)?;
        Ok(self.inner.current(&entry))
    }

    /// Runs `op` under the plan of `key`; an invalid key fails with [`Error::InvalidKey`]
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
        if self.inner.lean(&bound) {
            let guards = bound.guards();
            let call = bound.plan.retry().call(op);
            if guards.is_empty() {
                return call.run().await;
            }
            return call.with_guards(guards).run().await;
        }
        let entry = self.inner.entry(key)?;
        // Observers or a chain: their work (and this allocation) only when configured.
        Box::pin(self.inner.run_full(
            &entry.key,
            &bound,
            Properties::default(),
            AnyError,
            NoHook,
            op,
        ))
        .await
    }

    /// Runs `op` under the plan of `key` on behalf of `target`: when the plan has a retry gate
    /// ([`Plan::gate`](crate::policy::Plan::gate), a file's `gate = { ... }`), the gate must
    /// allow an attempt at `target` first (else [`Error::GateClosed`], without running `op`),
    /// and the call's outcome is recorded there: a success clears the target, a failure
    /// counts (with its text). The whole call, its in-process retries included, is one
    /// attempt of the gate. Without a gate in the plan it is [`run`](Self::run).
    ///
    /// A plan with a gate and an executor without a [`gate`](ExecutorBuilder::gate) backend
    /// fail closed: [`Error::GateClosed`] with [`Reason::Unavailable`](crate::gate::Reason).
    ///
    /// ```
    /// use steadfast::gate::{Decision, GateAttempt, GateBackend, GateFuture, GateOptions, Reason, Target};
    /// use steadfast::policy::{Plan, Policies};
    /// use steadfast::{Error, Executor, Retry};
    ///
    /// // A gate that refuses everything (steadfast-store's `RetryGate` is the real one).
    /// struct Closed;
    /// impl GateBackend for Closed {
    ///     fn acquire_attempt<'a>(&'a self, _: &'a Target, _: &'a GateOptions)
    ///         -> GateFuture<'a, Result<Box<dyn GateAttempt>, Decision>> {
    ///         Box::pin(async {
    ///             Err(Decision { allowed: false, reason: Reason::Exhausted, next_allowed_at: None, attempts: 6, retries_left: 0 })
    ///         })
    ///     }
    /// }
    ///
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let plan = Plan::new(Retry::default()).gate(GateOptions::default())?;
    /// let executor = Executor::builder()
    ///     .policies(Policies::default().with_plan("orders.*", plan)?)
    ///     .gate(Closed)
    ///     .build();
    /// let target = Target::new("order", "42");
    /// let r = executor.run_gated("orders.Reprocess", &target, || async { Ok::<_, std::io::Error>(()) }).await;
    /// assert!(matches!(r, Err(Error::GateClosed(d)) if d.reason == Reason::Exhausted));
    /// # Ok(()) }
    /// ```
    pub async fn run_gated<F, Fut, T, E>(
        &self,
        key: &str,
        target: &crate::gate::Target,
        op: F,
    ) -> Result<T, Error<E>>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, E>>,
        T: 'static,
        E: std::fmt::Display + 'static,
    {
        let bound = self.bound(key)?;
        let Some(options) = bound.plan.gate_options() else {
            return self.run(key, op).await;
        };
        let Some(gate) = &self.inner.gate else {
            return Err(Error::GateClosed(crate::gate::Decision::unavailable()));
        };
        let attempt = gate
            .acquire_attempt(target, options)
            .await
            .map_err(Error::GateClosed)?;
        let result = self.run(key, op).await;
        match &result {
            Ok(_) => attempt.success().await,
            Err(e) => attempt.failure(failure_text(e)).await,
        }
        result
    }

    /// Runs `op` under the plan of `key` at most once per idempotency key: when the plan has
    /// [`idempotency`](crate::policy::Plan::idempotency) (a file's `idempotency = { key =
    /// [...] }`), the key is read from `request`'s named fields and the request fingerprinted
    /// (see [`idempotency`](crate::idempotency)):
    ///
    /// - a new key runs `op` (with the plan's retries), stores its success as JSON and returns
    ///   it; a failure releases the key and is returned;
    /// - a completed key returns the stored result, `replayed`, without running `op`;
    /// - a key in flight or used with another request fails with [`Error::Idempotency`]
    ///   ([`Refusal::InFlight`](crate::idempotency::Refusal), `Mismatch`), `op` not run.
    ///
    /// Without idempotency in the plan it is [`run`](Self::run). A plan with it and an
    /// executor without an [`idempotency`](ExecutorBuilder::idempotency) store fail closed
    /// ([`Refusal::Unavailable`](crate::idempotency::Refusal)). A success whose result cannot
    /// be stored (the store failed, or the key's lock expired and another call took it) is
    /// still returned: the work is done, and a repeat may do it again.
    ///
    /// ```
    /// use steadfast::idempotency::{Claim, IdempotencyBackend, IdempotencyFuture, IdempotencyOptions};
    /// use steadfast::policy::{Plan, Policies};
    /// use steadfast::{Executor, Retry};
    ///
    /// // A store that has seen every key complete with 42 (steadfast-store has real ones).
    /// struct Seen;
    /// impl IdempotencyBackend for Seen {
    ///     fn claim<'a>(&'a self, _: &'a str, _: &'a str, _: &'a IdempotencyOptions)
    ///         -> IdempotencyFuture<'a, Result<Claim, String>> {
    ///         Box::pin(async { Ok(Claim::Completed(b"42".to_vec())) })
    ///     }
    /// }
    ///
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let plan = Plan::new(Retry::default()).idempotency(IdempotencyOptions::new(["order_id"]))?;
    /// let executor = Executor::builder()
    ///     .policies(Policies::default().with_plan("payments.*", plan)?)
    ///     .idempotency(Seen)
    ///     .build();
    /// let request = serde_json::json!({"order_id": "o-1", "amount": 100});
    /// let charged = executor
    ///     .run_idempotent("payments.Charge", &request, || async { Ok::<u32, std::io::Error>(7) })
    ///     .await?;
    /// assert_eq!((charged.value, charged.replayed), (42, true));
    /// # Ok(()) }
    /// ```
    #[cfg(feature = "serde")]
    pub async fn run_idempotent<R, F, Fut, T, E>(
        &self,
        key: &str,
        request: &R,
        op: F,
    ) -> Result<crate::idempotency::Idempotent<T>, Error<E>>
    where
        R: serde::Serialize + ?Sized,
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, E>>,
        T: serde::Serialize + serde::de::DeserializeOwned + 'static,
        E: 'static,
    {
        use crate::idempotency::{Claim, Idempotent, Refusal};
        let fresh = |value| Idempotent {
            value,
            replayed: false,
        };
        let bound = self.bound(key)?;
        let Some(options) = bound.plan.idempotency_options() else {
            return self.run(key, op).await.map(fresh);
        };
        let Some(store) = &self.inner.idempotency else {
            return Err(Error::Idempotency(Refusal::Unavailable(
                "the executor has no idempotency store".into(),
            )));
        };
        let request = serde_json::to_value(request)
            .map_err(|e| Error::Idempotency(Refusal::Invalid(format!("the request: {e}"))))?;
        // Scoped by the call site's key: one idempotency key names one operation's call.
        let named =
            crate::idempotency::key_of(&request, &options.key).map_err(Error::Idempotency)?;
        let id = format!("{key}/{named}");
        let fingerprint = crate::idempotency::fingerprint(&request);
        let claim = store
            .claim(&id, &fingerprint, options)
            .await
            .map_err(|e| Error::Idempotency(Refusal::Unavailable(e)))?;
        let hold = match claim {
            Claim::New(hold) => hold,
            Claim::Completed(stored) => {
                let value = serde_json::from_slice(&stored).map_err(|e| {
                    Error::Idempotency(Refusal::Invalid(format!("the stored result: {e}")))
                })?;
                return Ok(Idempotent {
                    value,
                    replayed: true,
                });
            }
            Claim::InFlight => return Err(Error::Idempotency(Refusal::InFlight)),
            Claim::Mismatch => return Err(Error::Idempotency(Refusal::Mismatch)),
        };
        match self.run(key, op).await {
            Ok(value) => {
                if let Ok(bytes) = serde_json::to_vec(&value) {
                    let _ = hold.complete(bytes).await;
                } else {
                    hold.abandon().await;
                }
                Ok(fresh(value))
            }
            Err(e) => {
                hold.abandon().await;
                Err(e)
            }
        }
    }

    /// Runs `op` under the plan of `key`, classifying each attempt's result with
    /// `classifier` (see [`classify`](crate::classify)) instead of retrying every error.
    ///
    /// ```
    /// use steadfast::{classify, Executor};
    ///
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() {
    /// let executor = Executor::default();
    /// let status = executor
    ///     .run_classified("api.Get", classify::results(|r: &Result<u16, ()>| match r {
    ///         Ok(code) => classify::http::status(*code),
    ///         Err(()) => classify::Outcome::RETRYABLE,
    ///     }), || async { Ok::<u16, ()>(404) })
    ///     .await;
    /// assert_eq!(status.unwrap(), 404); // a 404 is final: returned as it is, after one attempt
    /// # }
    /// ```
    pub async fn run_classified<F, Fut, T, E, C>(
        &self,
        key: &str,
        classifier: C,
        op: F,
    ) -> Result<T, Error<E>>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, E>>,
        T: 'static,
        E: 'static,
        C: Classifier<T, E>,
    {
        let handle = self.handle(key)?;
        handle.run_classified(classifier, op).await
    }

    /// Runs `op` under the plan of `key`, handing `properties` to the key's custom policies
    /// (see [`chain`]).
    pub async fn run_with<F, Fut, T, E>(
        &self,
        key: &str,
        properties: Properties,
        op: F,
    ) -> Result<T, Error<E>>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, E>>,
        T: 'static,
        E: 'static,
    {
        let entry = self.inner.entry(key)?;
        let bound = self.inner.current(&entry);
        self.inner
            .run_full(&entry.key, &bound, properties, AnyError, NoHook, op)
            .await
    }

    /// Runs `op` under the plan of `key` with `fallback` around the whole call (see
    /// [`fallback`](crate::fallback)); when it replaces a failure, observers see
    /// [`Event::FallbackUsed`](crate::observe::Event::FallbackUsed).
    ///
    /// ```
    /// use steadfast::fallback::{Fallback, On};
    /// use steadfast::{Executor, Retry, policy::Policies};
    ///
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let executor = Executor::new(Policies::new(Retry::immediate().max_attempts(2).build()?));
    /// let stale = Fallback::on(On::EXHAUSTED).value(vec!["cached"]);
    /// let list = executor
    ///     .run_with_fallback("catalog.List", stale, || async { Err::<Vec<&str>, _>("down") })
    ///     .await
    ///     .unwrap();
    /// assert_eq!(list, ["cached"]);
    /// # Ok(()) }
    /// ```
    pub async fn run_with_fallback<F, Fut, T, E, W, A>(
        &self,
        key: &str,
        fallback: crate::fallback::Fallback<W, A>,
        op: F,
    ) -> Result<T, Error<E>>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, E>>,
        T: 'static,
        E: 'static,
        W: crate::fallback::When<E>,
        A: crate::fallback::Action<T, E>,
    {
        let (result, used) = fallback.apply(self.run(key, op).await);
        if used
            && self.inner.observed()
            && let Ok(entry) = self.inner.entry(key)
        {
            let mut observers = self.inner.observers(&entry.key);
            observers.event(&crate::observe::Event::FallbackUsed);
        }
        result
    }

    /// Runs `op` on this thread under the plan of `key` (the blocking mirror of
    /// [`run`](Self::run): the key's policy chain runs around it; observers are not told
    /// about blocking calls yet).
    pub fn run_blocking<F, T, E>(&self, key: &str, op: F) -> Result<T, Error<E>>
    where
        F: FnMut() -> Result<T, E>,
        T: 'static,
        E: 'static,
    {
        let handle = self.handle(key)?;
        handle.run_blocking(op)
    }

    /// Runs `op` under the plan of `key` and returns, with its result, the [`Timeline`] of its
    /// attempts.
    pub async fn run_with_timeline<F, Fut, T, E>(
        &self,
        key: &str,
        op: F,
    ) -> (Result<T, Error<E>>, Timeline)
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, E>>,
        T: 'static,
        E: 'static,
    {
        match self.handle(key) {
            Ok(handle) => handle.run_with_timeline(op).await,
            Err(e) => (Err(e.into()), Timeline::default()),
        }
    }
}

/// Builds an [`Executor`]; see [`Executor::builder`].
///
/// # Example
/// ```
/// use steadfast::observe::{Event, Observer};
/// use steadfast::{Executor, Key};
///
/// #[derive(Debug)]
/// struct Count;
/// impl Observer for Count {
///     fn on_event(&self, _: &Key, _: &Event) {}
/// }
///
/// let executor = Executor::builder().max_keys(100_000).observer(Count).build();
/// # let _ = executor;
/// ```
#[derive(Debug)]
#[must_use = "an executor builder does nothing until `.build()`"]
pub struct ExecutorBuilder {
    policies: Policies,
    max_keys: usize,
    observers: Vec<Arc<dyn Observer>>,
    tracing: bool,
    registry: Registry,
    gate: Option<Arc<dyn crate::gate::GateBackend>>,
    idempotency: Option<Arc<dyn crate::idempotency::IdempotencyBackend>>,
}

impl std::fmt::Debug for dyn crate::gate::GateBackend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("GateBackend")
    }
}

impl std::fmt::Debug for dyn crate::idempotency::IdempotencyBackend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("IdempotencyBackend")
    }
}

impl ExecutorBuilder {
    /// Where the retry gate of plans that have one keeps its records (`steadfast-store`'s
    /// `RetryGate` over SQLite or PostgreSQL); see [`Executor::run_gated`].
    pub fn gate(mut self, backend: impl crate::gate::GateBackend) -> Self {
        self.gate = Some(Arc::new(backend));
        self
    }

    /// Where plans with idempotency keep keys and results (`steadfast-store`'s `Idempotency`
    /// over memory, SQLite, PostgreSQL or Redis); see [`Executor::run_idempotent`].
    pub fn idempotency(mut self, backend: impl crate::idempotency::IdempotencyBackend) -> Self {
        self.idempotency = Some(Arc::new(backend));
        self
    }

    /// The custom strategies that policies from a provider may name (see
    /// [`Executor::follow`]); policies given in code resolve their names themselves.
    pub fn registry(mut self, registry: Registry) -> Self {
        self.registry = registry;
        self
    }

    /// The policies to start with.
    pub fn policies(mut self, policies: Policies) -> Self {
        self.policies = policies;
        self
    }

    /// The bound on cached keys (default [`DEFAULT_MAX_KEYS`]).
    pub fn max_keys(mut self, max_keys: usize) -> Self {
        self.max_keys = max_keys;
        self
    }

    /// Adds an observer of every call's events.
    pub fn observer(mut self, observer: impl Observer) -> Self {
        self.observers.push(Arc::new(observer));
        self
    }

    /// Adds an observer already shared with other code.
    pub fn shared_observer(mut self, observer: Arc<dyn Observer>) -> Self {
        self.observers.push(observer);
        self
    }

    /// Runs every call in a `tracing` span, and each attempt in a child span (feature
    /// `tracing`; see the spans and levels in the crate's `tracing` docs below).
    ///
    /// ```
    /// let executor = steadfast::Executor::builder().tracing(true).build();
    /// # let _ = executor;
    /// ```
    #[cfg(feature = "tracing")]
    pub fn tracing(mut self, on: bool) -> Self {
        self.tracing = on;
        self
    }

    /// The executor.
    pub fn build(self) -> Executor {
        Executor::build(self)
    }
}

impl Inner {
    /// A call with everything: observers (and tracing) when there are any, inside the plan's
    /// chain when it has one.
    #[allow(clippy::too_many_arguments)]
    async fn run_full<F, Fut, T, E, C, P>(
        &self,
        key: &Key,
        bound: &Bound,
        properties: Properties,
        classifier: C,
        probe: P,
        op: F,
    ) -> Result<T, Error<E>>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, E>>,
        T: 'static,
        E: 'static,
        C: Classifier<T, E>,
        P: Probe,
    {
        let plan = &*bound.plan;
        let observed = self.observed();
        let attempts = AtomicU32::new(0);
        let deadline = plan.retry().deadline_from_now();
        let call = async {
            let call = plan
                .retry()
                .call(op)
                .classify(classifier)
                .with_guards(bound.guards());
            let count = Both(probe, chain::CountAttempts(&attempts));
            if observed {
                call.with_probe(Both(self.observers(key), count))
                    .run()
                    .await
            } else {
                call.with_probe(count).run().await
            }
        };
        if plan.policies().is_empty() {
            call.await
        } else {
            chain::run(plan.policies(), key, deadline, properties, &attempts, call).await
        }
    }

    /// Whether a call under `bound` takes the lean path: no chain to run, no one to report to.
    fn lean(&self, bound: &Bound) -> bool {
        bound.plan.policies().is_empty() && !self.observed()
    }

    /// `plan` with its strategies' state: kept from `previous` (the key's last plan) or the
    /// shared states where the options did not change.
    fn bind(&self, plan: Arc<Plan>, previous: Option<&Bound>) -> Bound {
        if plan.breaker_options().is_none()
            && plan.bulkhead_options().is_none()
            && plan.rate_limit_options().is_none()
            && plan.budget_options().is_none()
            && plan.hedge_options().is_none()
        {
            return Bound {
                plan,
                breaker: None,
                bulkhead: None,
                limiter: None,
                budget: None,
                hedge: None,
            };
        }
        let hedge = plan.hedge_options().and_then(|options| {
            match previous.and_then(|p| p.hedge.as_ref()) {
                Some(h) if h.options() == options => Some(h.clone()),
                _ => options.clone().build().ok(),
            }
        });
        let mut shared = self.shared.lock().unwrap_or_else(PoisonError::into_inner);
        let shared = &mut *shared;
        Bound {
            breaker: bind_slot(
                plan.breaker_options(),
                previous.and_then(|p| p.breaker.as_ref()),
                &mut shared.breakers,
            ),
            bulkhead: bind_slot(
                plan.bulkhead_options(),
                previous.and_then(|p| p.bulkhead.as_ref()),
                &mut shared.bulkheads,
            ),
            limiter: bind_slot(
                plan.rate_limit_options(),
                previous.and_then(|p| p.limiter.as_ref()),
                &mut shared.limiters,
            ),
            budget: bind_slot(
                plan.budget_options(),
                previous.and_then(|p| p.budget.as_ref()),
                &mut shared.budgets,
            ),
            hedge,
            plan,
        }
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

    fn shard(&self, hash: u64) -> &Shard {
        // The table uses the hash's low bits; the shard takes high ones.
        &self.shards[(hash >> 60) as usize % SHARDS]
    }

    /// The cached entry of `key`, made (and the cache swept) if absent.
    fn entry(&self, key: &str) -> Result<Arc<Entry>, KeyError> {
        let hash = self.hasher.hash_one(key);
        let shard = self.shard(hash);
        let found = |e: &Arc<Entry>| e.key.as_str() == key;
        if let Some(e) = shard.table.load().find(hash, found) {
            return Ok(e.clone());
        }
        let parsed = Key::parse(key)?;
        let generation = self.generation.load(Ordering::Acquire);
        let plan = self.policies.load().resolve(key).plan().clone();
        let entry = Arc::new(Entry {
            key: parsed,
            hash,
            bound: ArcSwap::from_pointee(self.bind(plan, None)),
            generation: AtomicU64::new(generation),
            touched: AtomicBool::new(true),
        });
        let _writer = shard.writer.lock().unwrap_or_else(PoisonError::into_inner);
        let current = shard.table.load_full();
        if let Some(e) = current.find(hash, found) {
            return Ok(e.clone()); // another thread made it meanwhile
        }
        let mut map = (*current).clone();
        if map.len() >= self.shard_cap {
            let before = map.len();
            // Second chance: keep what was used since the last sweep, clearing its mark.
            map.retain(|e| e.touched.swap(false, Ordering::Relaxed));
            if map.len() >= self.shard_cap
                && let Some(victim) = map.iter().next().cloned()
                && let Ok(slot) = map.find_entry(victim.hash, |e| Arc::ptr_eq(e, &victim))
            {
                slot.remove();
            }
            self.len.fetch_sub(before - map.len(), Ordering::Relaxed);
        }
        map.insert_unique(hash, entry.clone(), |e| e.hash);
        shard.table.store(Arc::new(map));
        self.len.fetch_add(1, Ordering::Relaxed);
        Ok(entry)
    }

    /// The entry's plan under the policies in force, re-resolved if they changed (keeping
    /// the state of strategies whose options did not change).
    fn current(&self, entry: &Entry) -> Arc<Bound> {
        if !entry.touched.load(Ordering::Relaxed) {
            entry.touched.store(true, Ordering::Relaxed);
        }
        let generation = self.generation.load(Ordering::Acquire);
        if entry.generation.load(Ordering::Acquire) == generation {
            return entry.bound.load_full();
        }
        let plan = self
            .policies
            .load()
            .resolve(entry.key.as_str())
            .plan()
            .clone();
        let previous = entry.bound.load();
        let bound = if Arc::ptr_eq(&previous.plan, &plan) {
            Arc::clone(&previous)
        } else {
            Arc::new(self.bind(plan, Some(&previous)))
        };
        entry.bound.store(bound.clone());
        entry.generation.store(generation, Ordering::Release);
        bound
    }
}

/// One key's entry, kept by a call site: no lookup per call, and still the key's current
/// plan (a policy swap reaches it on the next call).
///
/// A handle pins the plan it was made with and checks one counter per call; after a policy
/// swap each call resolves the key again, until [`refresh`](Self::refresh) pins the new plan.
#[derive(Debug, Clone)]
pub struct Handle {
    entry: Arc<Entry>,
    inner: Arc<Inner>,
    bound: Arc<Bound>,
    generation: u64,
    /// The pinned plan has no chain and no strategy state, and the executor no observer:
    /// calls take the plain path.
    lean: bool,
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
    fn fresh(&self) -> Option<Arc<Bound>> {
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
            inner: async move {
                let bound = fresh.as_deref().unwrap_or(&self.bound);
                if self.inner.lean(bound) {
                    let guards = bound.guards();
                    let call = bound.plan.retry().call(op);
                    if guards.is_empty() {
                        return call.run().await;
                    }
                    return call.with_guards(guards).run().await;
                }
                let key = &self.entry.key;
                Box::pin(self.inner.run_full(
                    key,
                    bound,
                    Properties::default(),
                    AnyError,
                    NoHook,
                    op,
                ))
                .await
            },
        }
    }

    /// Runs `op` under the key's current plan, classifying each attempt's result with
    /// `classifier` (see [`classify`](crate::classify)) instead of retrying every error.
    pub fn run_classified<F, Fut, T, E, C>(
        &self,
        classifier: C,
        op: F,
    ) -> impl Future<Output = Result<T, Error<E>>>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, E>>,
        T: 'static,
        E: 'static,
        C: Classifier<T, E>,
    {
        let fresh = self.fresh();
        async move {
            let bound = fresh.as_deref().unwrap_or(&self.bound);
            if self.inner.lean(bound) {
                return bound
                    .plan
                    .retry()
                    .call(op)
                    .classify(classifier)
                    .with_guards(bound.guards())
                    .run()
                    .await;
            }
            let key = &self.entry.key;
            Box::pin(
                self.inner
                    .run_full(key, bound, Properties::default(), classifier, NoHook, op),
            )
            .await
        }
    }

    /// Runs `op` on this thread under the key's current plan.
    pub fn run_blocking<F, T, E>(&self, op: F) -> Result<T, Error<E>>
    where
        F: FnMut() -> Result<T, E>,
        T: 'static,
        E: 'static,
    {
        let fresh = self.fresh();
        let bound = fresh.as_deref().unwrap_or(&self.bound);
        let plan = &*bound.plan;
        let call = || {
            plan.retry()
                .call_blocking(op)
                .with_guards(bound.guards())
                .run()
        };
        if plan.policies().is_empty() {
            return call();
        }
        // The chain runs for blocking calls too: a governance policy is never bypassed.
        let deadline = plan.retry().deadline_from_now();
        chain::run_blocking(
            plan.policies(),
            &self.entry.key,
            deadline,
            Properties::default(),
            call,
        )
    }

    /// Runs `op` under the key's current plan and returns, with its result, the
    /// [`Timeline`] of its attempts (observers and the key's chain apply as to any call).
    pub async fn run_with_timeline<F, Fut, T, E>(&self, op: F) -> (Result<T, Error<E>>, Timeline)
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, E>>,
        T: 'static,
        E: 'static,
    {
        let bound = self.fresh().unwrap_or_else(|| self.bound.clone());
        let mut timeline = Timeline::default();
        let result = self
            .inner
            .run_full(
                &self.entry.key,
                &bound,
                Properties::default(),
                AnyError,
                &mut timeline,
                op,
            )
            .await;
        (result, timeline)
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

/// The text a gate keeps for a failed call: the operation's own error when that is why.
fn failure_text<E: std::fmt::Display>(e: &Error<E>) -> String {
    match e.operation_error() {
        Some(source) => format!("{source} ({e})"),
        None => e.to_string(),
    }
}
