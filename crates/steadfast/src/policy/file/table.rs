//! A table of a policy file: the strategies it names, how a table inherits from a less
//! specific one, and every problem of its options.

use serde::{Deserialize, Serialize};

use crate::breaker::BreakerOptions;
use crate::budget::BudgetOptions;
use crate::classify::ClassifyOptions;
use crate::config::{ConfigError, FieldError};
use crate::hedge::HedgeOptions;
use crate::limit::{BulkheadOptions, RateLimitOptions};
use crate::policy::{Scoped, validate_scoped};
use crate::retry::RetryOptions;

/// The strategies of one table: `[defaults]` or `[policies."ns.*"]` / `[policies."ns.Name"]`.
///
/// A strategy a table does not name is inherited from the next less specific table that
/// matches (`payments.Charge` → `payments.*` → `*` → `[defaults]`), and from the library's
/// defaults when no table names it.
///
/// # Example
/// ```
/// use std::time::Duration;
/// use steadfast::policy::TableSpec;
/// use steadfast::Retry;
///
/// let table = TableSpec::new()
///     .retry(Retry::exponential(Duration::from_millis(200)).max_attempts(5))
///     .chain(["tenant_quota", "audit"]);
/// assert_eq!(table.chain.as_deref().map(<[String]>::len), Some(2));
/// ```
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[cfg_attr(feature = "schema", schemars(rename = "Table"))]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct TableSpec {
    /// Retries: attempts, backoff, timeouts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry: Option<RetryOptions>,
    /// Custom strategies around the call, by the names they were registered under, in order
    /// (request hooks in this order, response hooks in reverse).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub chain: Option<Vec<String>>,
    /// A circuit breaker around every attempt.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub breaker: Option<Scoped<BreakerOptions>>,
    /// A bulkhead around each call.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bulkhead: Option<Scoped<BulkheadOptions>>,
    /// A rate limiter admitting each call.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rate_limit: Option<Scoped<RateLimitOptions>>,
    /// The durable retry gate of calls made for a target.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gate: Option<crate::gate::GateOptions>,
    /// Calls with the same idempotency key (read from the request) run once; repeats get the
    /// stored result.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub idempotency: Option<crate::idempotency::IdempotencyOptions>,
    /// Whether the operation is safe to run more than once at a time; `hedge` requires it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub idempotent: Option<bool>,
    /// Hedging of each try (only with `idempotent = true`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hedge: Option<HedgeOptions>,
    /// The budget retries and hedges spend from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub budget: Option<Scoped<BudgetOptions>>,
    /// Which failures are retried: `"http"`, `"grpc"`, `"io"`, `"always"` (the default),
    /// `"never"`, a registered name, or a table with `kind` and options.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub classify: Option<ClassifyOptions>,
}

impl TableSpec {
    /// A table naming no strategy (every one inherited).
    pub fn new() -> Self {
        TableSpec::default()
    }

    /// Sets the retry strategy.
    pub fn retry(mut self, retry: RetryOptions) -> Self {
        self.retry = Some(retry);
        self
    }

    /// Sets the custom strategies, in order.
    pub fn chain<S: Into<String>>(mut self, names: impl IntoIterator<Item = S>) -> Self {
        self.chain = Some(names.into_iter().map(Into::into).collect());
        self
    }

    /// Sets the circuit breaker.
    pub fn breaker(mut self, breaker: Scoped<BreakerOptions>) -> Self {
        self.breaker = Some(breaker);
        self
    }

    /// Sets the bulkhead.
    pub fn bulkhead(mut self, bulkhead: Scoped<BulkheadOptions>) -> Self {
        self.bulkhead = Some(bulkhead);
        self
    }

    /// Sets the rate limiter.
    pub fn rate_limit(mut self, rate_limit: Scoped<RateLimitOptions>) -> Self {
        self.rate_limit = Some(rate_limit);
        self
    }

    /// Sets the retry gate.
    pub fn gate(mut self, gate: crate::gate::GateOptions) -> Self {
        self.gate = Some(gate);
        self
    }

    /// Sets the idempotency keys.
    pub fn idempotency(mut self, idempotency: crate::idempotency::IdempotencyOptions) -> Self {
        self.idempotency = Some(idempotency);
        self
    }

    /// Marks the operation safe to duplicate (or not).
    pub fn idempotent(mut self, yes: bool) -> Self {
        self.idempotent = Some(yes);
        self
    }

    /// Sets the hedging (the table, or one it inherits from, must be idempotent).
    pub fn hedge(mut self, hedge: HedgeOptions) -> Self {
        self.hedge = Some(hedge);
        self
    }

    /// Sets the budget.
    pub fn budget(mut self, budget: Scoped<BudgetOptions>) -> Self {
        self.budget = Some(budget);
        self
    }

    /// Sets the classifier.
    pub fn classify(mut self, classify: ClassifyOptions) -> Self {
        self.classify = Some(classify);
        self
    }

    /// This table's strategies, each taken from `lower` where this one does not name it.
    pub(super) fn over(&self, lower: &TableSpec) -> TableSpec {
        TableSpec {
            retry: self.retry.clone().or_else(|| lower.retry.clone()),
            chain: self.chain.clone().or_else(|| lower.chain.clone()),
            breaker: self.breaker.clone().or_else(|| lower.breaker.clone()),
            bulkhead: self.bulkhead.clone().or_else(|| lower.bulkhead.clone()),
            rate_limit: self.rate_limit.clone().or_else(|| lower.rate_limit.clone()),
            gate: self.gate.clone().or_else(|| lower.gate.clone()),
            idempotency: self
                .idempotency
                .clone()
                .or_else(|| lower.idempotency.clone()),
            idempotent: self.idempotent.or(lower.idempotent),
            hedge: self.hedge.clone().or_else(|| lower.hedge.clone()),
            budget: self.budget.clone().or_else(|| lower.budget.clone()),
            classify: self.classify.clone().or_else(|| lower.classify.clone()),
        }
    }

    /// Every problem of the strategies' options, each with its field path (`breaker.break`).
    pub(super) fn problems(&self) -> Vec<FieldError> {
        [
            self.retry.as_ref().map(RetryOptions::validate),
            self.breaker.as_ref().map(validate_scoped),
            self.bulkhead.as_ref().map(validate_scoped),
            self.rate_limit.as_ref().map(validate_scoped),
            self.gate.as_ref().map(crate::gate::GateOptions::validate),
            self.idempotency
                .as_ref()
                .map(crate::idempotency::IdempotencyOptions::validate),
            self.hedge.as_ref().map(HedgeOptions::validate),
            self.budget.as_ref().map(validate_scoped),
            self.classify.as_ref().map(ClassifyOptions::validate),
        ]
        .into_iter()
        .flatten()
        .filter_map(Result::err)
        .flat_map(|e: ConfigError| e.errors().to_vec())
        .collect()
    }
}
