//! A table of a policy file: the strategies it names, how a table inherits from a less
//! specific one, and every problem of its options.

use serde::{Deserialize, Serialize};

use crate::breaker::BreakerOptions;
use crate::budget::BudgetOptions;
use crate::chain::Registry;
use crate::classify::ClassifyOptions;
use crate::config::{ConfigError, FieldError};
use crate::hedge::HedgeOptions;
use crate::limit::{BulkheadOptions, RateLimitOptions};
use crate::policy::{Plan, Scoped};
use crate::retry::{Retry, RetryOptions};

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
}

/// A field of a table in its file form: how it is checked and how it joins a key's plan.
/// Each strategy implements it in its own folder (`breaker/file.rs`, `hedge/file.rs`, …).
pub(crate) trait TableField: Clone {
    /// Every problem of the options, each under its field path (`breaker.break`).
    fn validate(&self) -> Result<(), ConfigError>;
    /// `plan` with this field's strategy, its names resolved in `registry`.
    fn join(self, plan: Plan, registry: &Registry) -> Result<Plan, ConfigError>;
}

/// The one list of a table's fields. Inheritance, the checks, `explain`'s origins and the
/// compiled plan are written from it, and `over` builds a [`TableSpec`] literal from it, so a
/// field of the struct missing here does not compile. The order is the order fields join a
/// plan (`idempotent` before `hedge`, which needs it).
macro_rules! table_fields {
    ($($field:ident),* $(,)?) => {
        impl TableSpec {
            /// The names of a table's fields, in the order they join a key's plan.
            ///
            /// ```
            /// use steadfast::policy::TableSpec;
            ///
            /// assert_eq!(TableSpec::FIELDS[0], "retry");
            /// assert!(TableSpec::FIELDS.contains(&"breaker"));
            /// ```
            pub const FIELDS: &'static [&'static str] = &[$(stringify!($field)),*];

            /// This table's strategies, each taken from `lower` where this one does not name
            /// it.
            pub(super) fn over(&self, lower: &TableSpec) -> TableSpec {
                TableSpec {
                    $($field: self.$field.clone().or_else(|| lower.$field.clone()),)*
                }
            }

            /// Every problem of the strategies' options, each with its field path
            /// (`breaker.break`).
            pub(super) fn problems(&self) -> Vec<FieldError> {
                [$(self.$field.as_ref().map(TableField::validate)),*]
                    .into_iter()
                    .flatten()
                    .filter_map(Result::err)
                    .flat_map(|e: ConfigError| e.errors().to_vec())
                    .collect()
            }

            /// The plan of an effective table: the library's retry policy joined by each
            /// field the table names.
            pub(super) fn into_plan(self, registry: &Registry) -> Result<Plan, ConfigError> {
                let mut plan = Plan::new(Retry::default());
                $(if let Some(value) = self.$field {
                    plan = value.join(plan, registry)?;
                })*
                Ok(plan)
            }

            /// For each field, the first table of `lineage` (most specific first) naming it.
            pub(super) fn origins<O: Clone>(lineage: &[(O, &TableSpec)]) -> Vec<(&'static str, O)> {
                let mut found = Vec::new();
                $(if let Some((origin, _)) = lineage.iter().find(|(_, t)| t.$field.is_some()) {
                    found.push((stringify!($field), origin.clone()));
                })*
                found
            }
        }
    };
}

table_fields!(
    retry,
    chain,
    breaker,
    bulkhead,
    rate_limit,
    gate,
    idempotency,
    idempotent,
    hedge,
    budget,
    classify,
);
