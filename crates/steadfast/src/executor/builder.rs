//! [`ExecutorBuilder`]: the policies, observers, registry and stores an executor starts with.

use std::sync::Arc;

use super::Executor;
use crate::chain::Registry;
use crate::observe::Observer;
use crate::policy::Policies;

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
    pub(super) policies: Policies,
    pub(super) max_keys: usize,
    pub(super) observers: Vec<Arc<dyn Observer>>,
    pub(super) tracing: bool,
    pub(super) registry: Registry,
    pub(super) gate: Option<Arc<dyn crate::gate::GateBackend>>,
    pub(super) idempotency: Option<Arc<dyn crate::idempotency::IdempotencyBackend>>,
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
    /// `RetryGate` over SQLite or PostgreSQL); see [`KeyCall::gate`](crate::executor::KeyCall::gate).
    pub fn gate(mut self, backend: impl crate::gate::GateBackend) -> Self {
        self.gate = Some(Arc::new(backend));
        self
    }

    /// Where plans with idempotency keep keys and results (`steadfast-store`'s `Idempotency`
    /// over memory, SQLite, PostgreSQL or Redis); see [`KeyCall::idempotent`](crate::executor::KeyCall::idempotent).
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

    /// The bound on cached keys (default [`DEFAULT_MAX_KEYS`](super::DEFAULT_MAX_KEYS)).
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
