//! Policies by key: which [`Retry`] a call site's key resolves to.
//!
//! A [`Policies`] table holds the defaults and any number of tables for patterns
//! ([`Pattern`]): exact keys (`payments.Charge`) and namespaces (`payments.*`). A key resolves
//! to its exact table, else the longest matching namespace, else the defaults.
//!
//! # Example
//! ```
//! use std::time::Duration;
//! use steadfast::policy::{Policies, Source};
//! use steadfast::Retry;
//!
//! let policies = Policies::new(Retry::default())
//!     .with("payments.*", Retry::exponential(Duration::from_millis(200)).max_attempts(5).build()?)?
//!     .with("payments.Charge", Retry::immediate().max_attempts(2).build()?)?;
//!
//! assert_eq!(policies.resolve("payments.Charge").source(), Source::Exact);
//! assert_eq!(policies.resolve("payments.Refund").source(), Source::Namespace("payments"));
//! assert_eq!(policies.resolve("search.Query").source(), Source::Default);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! With the `serde` feature, policies also come from files ([`PolicyDocument`]) and, with
//! `watch` or `http`, from providers an executor follows (see the guide below).
#![cfg_attr(feature = "serde", doc = include_str!("../../docs/policies.md"))]

#[cfg(feature = "serde")]
mod document;
#[cfg(feature = "serde")]
mod format;
#[cfg(feature = "serde")]
mod node;

#[cfg(feature = "serde")]
pub use document::{Diagnostic, Diagnostics, Explanation, Origin, PolicyDocument, TableSpec};
#[cfg(feature = "serde")]
pub use format::{Format, MAX_DOCUMENT_BYTES, read_to_string};
#[cfg(feature = "serde")]
pub use node::Position;

#[cfg(any(feature = "watch", feature = "http"))]
pub(crate) mod provider;
#[cfg(any(feature = "watch", feature = "http"))]
pub use provider::{Following, Layered, Provider, StaticProvider, Update, UpdateKind, Updates};

#[cfg(feature = "watch")]
mod file_provider;
#[cfg(feature = "watch")]
pub use file_provider::{DEFAULT_DEBOUNCE, FileProvider};

#[cfg(feature = "http")]
mod http_provider;
#[cfg(feature = "http")]
pub use http_provider::{DEFAULT_INTERVAL, DEFAULT_TIMEOUT, HttpProvider};

/// Formats a duration the way policy files write it: `0ms`, `250ms`, `1.5s`, `2m`, `1h30m`
/// (read back exactly by [`parse_duration`]).
///
/// ```
/// use std::time::Duration;
///
/// assert_eq!(steadfast::policy::format_duration(Duration::from_secs(90)), "1m30s");
/// ```
pub fn format_duration(d: std::time::Duration) -> String {
    crate::config::fmt_duration(d)
}

/// Parses a duration as policy files write it: `<number><unit>` parts with units `ns`, `us`,
/// `ms`, `s`, `m`, `h`, the number possibly with a fraction (`250ms`, `1.5s`, `1m30s`), exactly.
///
/// ```
/// use std::time::Duration;
/// use steadfast::policy::parse_duration;
///
/// assert_eq!(parse_duration("1m30s"), Ok(Duration::from_secs(90)));
/// assert_eq!(parse_duration("0.1s"), Ok(Duration::from_millis(100)));
/// assert!(parse_duration("90").is_err());
/// ```
pub fn parse_duration(text: &str) -> Result<std::time::Duration, String> {
    crate::config::parse_duration(text)
}

/// The JSON Schema (2020-12) of a policy file, for editors (feature `schema`): every table,
/// strategy and field with its type, range and description; unknown fields refused.
///
/// ```
/// let schema = steadfast::policy::json_schema();
/// assert_eq!(schema["title"], "PolicyFile");
/// assert_eq!(schema["$defs"]["Retry"]["additionalProperties"], false);
/// ```
#[cfg(feature = "schema")]
pub fn json_schema() -> serde_json::Value {
    let mut schema = schemars::schema_for!(PolicyDocument).to_value();
    if let Some(obj) = schema.as_object_mut() {
        obj.insert(
            "description".into(),
            "A steadfast policy file: [defaults] and tables by pattern (an exact key `ns.Name`, a namespace `ns.*`, or `*`). A key resolves to its exact table, else the longest matching namespace, else the defaults; a strategy a table does not name is inherited from the next table down.".into(),
        );
    }
    schema
}

use std::sync::Arc;

use crate::breaker::BreakerOptions;
use crate::budget::BudgetOptions;
use crate::chain::{Chain, Policy, Registry};
use crate::classify::PolicyClassifier;
use crate::config::{ConfigError, Problems};
use crate::hedge::HedgeOptions;
use crate::key::{KeyError, Pattern};
use crate::limit::{BulkheadOptions, RateLimitOptions};
use crate::retry::Retry;

/// What one key runs under: its retry policy, the strategies around it (rate limiter,
/// bulkhead, circuit breaker) and its custom policies.
///
/// A strategy's state (the breaker's counts, the bulkhead's places, the limiter's rate) is
/// the key's own unless the plan names it [`Scoped::shared`]: then every key whose plan names
/// it shares one. The executor keeps that state apart from the plan, so a policy reload
/// keeps the state of every strategy whose options did not change.
///
/// # Example
/// ```
/// use steadfast::breaker::BreakerOptions;
/// use steadfast::limit::BulkheadOptions;
/// use steadfast::policy::Plan;
/// use steadfast::Retry;
///
/// let plan = Plan::new(Retry::default())
///     .breaker(BreakerOptions::consecutive(5))?
///     .shared_bulkhead("payments-db", BulkheadOptions::new(32))?;
/// assert_eq!(plan.retry().max_attempts(), Some(3));
/// assert_eq!(plan.bulkhead_options().unwrap().shared.as_deref(), Some("payments-db"));
/// # Ok::<(), steadfast::ConfigError>(())
/// ```
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct Plan {
    retry: Retry,
    chain: Chain,
    breaker: Option<Scoped<BreakerOptions>>,
    bulkhead: Option<Scoped<BulkheadOptions>>,
    rate_limit: Option<Scoped<RateLimitOptions>>,
    gate: Option<crate::gate::GateOptions>,
    idempotency: Option<crate::idempotency::IdempotencyOptions>,
    idempotent: bool,
    hedge: Option<HedgeOptions>,
    budget: Option<Scoped<BudgetOptions>>,
    classify: PolicyClassifier,
}

/// A strategy's options, and the name its state is shared under (`None`: each key has its
/// own).
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct Scoped<O> {
    /// The options.
    pub options: O,
    /// The shared state's name, if shared.
    pub shared: Option<String>,
}

impl<O> Scoped<O> {
    /// Options whose state each key keeps for itself.
    pub fn per_key(options: O) -> Self {
        Scoped {
            options,
            shared: None,
        }
    }

    /// Options whose state every key naming `name` shares.
    pub fn shared(name: impl Into<String>, options: O) -> Self {
        Scoped {
            options,
            shared: Some(name.into()),
        }
    }
}

/// Options of a strategy whose state the executor keeps: the field they are written under,
/// and their checks.
pub(crate) trait StrategyOptions {
    /// The table's field in a policy file (`breaker`).
    const FIELD: &'static str;
    /// Pushes every problem, each under its field's name.
    fn check(&self, p: &mut Problems<'_>);
}

impl StrategyOptions for BreakerOptions {
    const FIELD: &'static str = "breaker";
    fn check(&self, p: &mut Problems<'_>) {
        BreakerOptions::check(self, p)
    }
}

impl StrategyOptions for BulkheadOptions {
    const FIELD: &'static str = "bulkhead";
    fn check(&self, p: &mut Problems<'_>) {
        BulkheadOptions::check(self, p)
    }
}

impl StrategyOptions for BudgetOptions {
    const FIELD: &'static str = "budget";
    fn check(&self, p: &mut Problems<'_>) {
        BudgetOptions::check(self, p)
    }
}

impl StrategyOptions for RateLimitOptions {
    const FIELD: &'static str = "rate_limit";
    fn check(&self, p: &mut Problems<'_>) {
        RateLimitOptions::check(self, p)
    }
}

/// The options' problems and a shared name's, each under its path (`breaker.shared`).
pub(crate) fn validate_scoped<O: StrategyOptions>(s: &Scoped<O>) -> Result<(), ConfigError> {
    let mut p = Problems::new(O::FIELD);
    s.options.check(&mut p);
    if s.shared.as_deref() == Some("") {
        p.push("shared", "must not be empty");
    }
    p.finish()
}

impl Plan {
    /// A plan that retries by `retry`.
    pub fn new(retry: Retry) -> Self {
        Plan {
            retry,
            chain: Box::new([]),
            breaker: None,
            bulkhead: None,
            rate_limit: None,
            gate: None,
            idempotency: None,
            idempotent: false,
            hedge: None,
            budget: None,
            classify: PolicyClassifier::always(),
        }
    }

    /// Classifies every call's attempts with `classifier` (see
    /// [`PolicyClassifier`]), unless the call site gives
    /// its own with `.classify(…)`.
    ///
    /// ```
    /// use steadfast::{classify::PolicyClassifier, policy::Plan, Retry};
    ///
    /// let plan = Plan::new(Retry::default()).classify(PolicyClassifier::http());
    /// assert_eq!(plan.classifier().name(), "http");
    /// ```
    pub fn classify(mut self, classifier: PolicyClassifier) -> Self {
        self.classify = classifier;
        self
    }

    /// The classifier the key's calls apply (by default `always`: every error retried).
    pub fn classifier(&self) -> &PolicyClassifier {
        &self.classify
    }

    /// The retry policy.
    pub fn retry(&self) -> &Retry {
        &self.retry
    }

    /// Runs every attempt through a circuit breaker of the key's own.
    pub fn breaker(self, options: BreakerOptions) -> Result<Self, ConfigError> {
        self.scoped_breaker(Scoped::per_key(options))
    }

    /// Runs every attempt through the circuit breaker named `name`, shared with every key
    /// whose plan names it.
    pub fn shared_breaker(
        self,
        name: impl Into<String>,
        options: BreakerOptions,
    ) -> Result<Self, ConfigError> {
        self.scoped_breaker(Scoped::shared(name, options))
    }

    /// Runs each call in a place of a bulkhead of the key's own.
    pub fn bulkhead(self, options: BulkheadOptions) -> Result<Self, ConfigError> {
        self.scoped_bulkhead(Scoped::per_key(options))
    }

    /// Runs each call in a place of the bulkhead named `name`, shared.
    pub fn shared_bulkhead(
        self,
        name: impl Into<String>,
        options: BulkheadOptions,
    ) -> Result<Self, ConfigError> {
        self.scoped_bulkhead(Scoped::shared(name, options))
    }

    /// Admits each call through a rate limiter of the key's own.
    pub fn rate_limit(self, options: RateLimitOptions) -> Result<Self, ConfigError> {
        self.scoped_rate_limit(Scoped::per_key(options))
    }

    /// Admits each call through the rate limiter named `name`, shared.
    pub fn shared_rate_limit(
        self,
        name: impl Into<String>,
        options: RateLimitOptions,
    ) -> Result<Self, ConfigError> {
        self.scoped_rate_limit(Scoped::shared(name, options))
    }

    pub(crate) fn scoped_breaker(
        mut self,
        breaker: Scoped<BreakerOptions>,
    ) -> Result<Self, ConfigError> {
        validate_scoped(&breaker)?;
        self.breaker = Some(breaker);
        Ok(self)
    }

    pub(crate) fn scoped_bulkhead(
        mut self,
        bulkhead: Scoped<BulkheadOptions>,
    ) -> Result<Self, ConfigError> {
        validate_scoped(&bulkhead)?;
        self.bulkhead = Some(bulkhead);
        Ok(self)
    }

    pub(crate) fn scoped_rate_limit(
        mut self,
        rate_limit: Scoped<RateLimitOptions>,
    ) -> Result<Self, ConfigError> {
        validate_scoped(&rate_limit)?;
        self.rate_limit = Some(rate_limit);
        Ok(self)
    }

    /// Marks the key's operation safe to run more than once at a time (idempotent), which
    /// [`hedge`](Self::hedge) requires.
    ///
    /// A plan that hedges cannot be marked not idempotent afterwards: the plan stays valid as
    /// a whole after every step, whatever the order of the calls.
    ///
    /// ```
    /// use steadfast::{hedge::HedgeOptions, policy::Plan, Retry};
    ///
    /// let hedged = Plan::new(Retry::default()).idempotent(true)?.hedge(HedgeOptions::percentile(95.0))?;
    /// assert!(hedged.idempotent(false).is_err());
    /// # Ok::<(), steadfast::ConfigError>(())
    /// ```
    pub fn idempotent(mut self, yes: bool) -> Result<Self, ConfigError> {
        if !yes && self.hedge.is_some() {
            let mut p = Problems::new("");
            p.push("idempotent", NOT_IDEMPOTENT);
            p.finish()?;
        }
        self.idempotent = yes;
        Ok(self)
    }

    /// Whether the plan marks the operation safe to duplicate.
    pub fn is_idempotent(&self) -> bool {
        self.idempotent
    }

    /// Hedges each try ([`hedge`](crate::hedge)); the key's calls keep their own latency
    /// history. Only for an operation marked [`idempotent`](Self::idempotent): a hedge runs
    /// it twice at once.
    ///
    /// ```
    /// use steadfast::{hedge::HedgeOptions, policy::Plan, Retry};
    ///
    /// let hedge = HedgeOptions::percentile(95.0);
    /// let err = Plan::new(Retry::default()).hedge(hedge.clone()).unwrap_err();
    /// assert!(err.to_string().starts_with("hedge: the operation must be marked idempotent"));
    /// let plan = Plan::new(Retry::default()).idempotent(true)?.hedge(hedge)?;
    /// assert!(plan.hedge_options().is_some());
    /// # Ok::<(), steadfast::ConfigError>(())
    /// ```
    pub fn hedge(mut self, options: HedgeOptions) -> Result<Self, ConfigError> {
        options.validate()?;
        if !self.idempotent {
            let mut p = Problems::new("");
            p.push("hedge", NOT_IDEMPOTENT);
            p.finish()?;
        }
        self.hedge = Some(options);
        Ok(self)
    }

    /// Charges the key's retries and hedges to a [budget](crate::budget) of its own.
    pub fn budget(self, options: BudgetOptions) -> Result<Self, ConfigError> {
        self.scoped_budget(Scoped::per_key(options))
    }

    /// Charges the key's retries and hedges to the budget named `name`, shared with every
    /// key whose plan names it.
    ///
    /// ```
    /// use steadfast::{budget::BudgetOptions, policy::Plan, Retry};
    ///
    /// let plan = Plan::new(Retry::default()).shared_budget("search", BudgetOptions::ratio_default())?;
    /// assert_eq!(plan.budget_options().unwrap().shared.as_deref(), Some("search"));
    /// # Ok::<(), steadfast::ConfigError>(())
    /// ```
    pub fn shared_budget(
        self,
        name: impl Into<String>,
        options: BudgetOptions,
    ) -> Result<Self, ConfigError> {
        self.scoped_budget(Scoped::shared(name, options))
    }

    pub(crate) fn scoped_budget(
        mut self,
        budget: Scoped<BudgetOptions>,
    ) -> Result<Self, ConfigError> {
        validate_scoped(&budget)?;
        self.budget = Some(budget);
        Ok(self)
    }

    /// The hedging options, if the plan hedges.
    pub fn hedge_options(&self) -> Option<&HedgeOptions> {
        self.hedge.as_ref()
    }

    /// The budget's options, if the plan has one.
    pub fn budget_options(&self) -> Option<&Scoped<BudgetOptions>> {
        self.budget.as_ref()
    }

    /// The circuit breaker's options, if the plan has one.
    pub fn breaker_options(&self) -> Option<&Scoped<BreakerOptions>> {
        self.breaker.as_ref()
    }

    /// The bulkhead's options, if the plan has one.
    pub fn bulkhead_options(&self) -> Option<&Scoped<BulkheadOptions>> {
        self.bulkhead.as_ref()
    }

    /// The rate limiter's options, if the plan has one.
    pub fn rate_limit_options(&self) -> Option<&Scoped<RateLimitOptions>> {
        self.rate_limit.as_ref()
    }

    /// Puts calls made for a target ([`KeyCall::gate`](crate::executor::KeyCall::gate))
    /// under the durable retry gate with `options`.
    ///
    /// ```
    /// use steadfast::{gate::GateOptions, policy::Plan, Retry};
    ///
    /// let plan = Plan::new(Retry::default()).gate(GateOptions::default().max_retries(8))?;
    /// assert_eq!(plan.gate_options().unwrap().max_retries, 8);
    /// # Ok::<(), steadfast::ConfigError>(())
    /// ```
    pub fn gate(mut self, options: crate::gate::GateOptions) -> Result<Self, ConfigError> {
        options.validate()?;
        self.gate = Some(options);
        Ok(self)
    }

    /// The retry gate's options, if the plan has one.
    pub fn gate_options(&self) -> Option<&crate::gate::GateOptions> {
        self.gate.as_ref()
    }

    /// Makes calls through [`KeyCall::idempotent`](crate::executor::KeyCall::idempotent)
    /// idempotent by key: a repeated key gets the stored result.
    ///
    /// ```
    /// use steadfast::{idempotency::IdempotencyOptions, policy::Plan, Retry};
    ///
    /// let plan = Plan::new(Retry::default()).idempotency(IdempotencyOptions::new(["order_id"]))?;
    /// assert_eq!(plan.idempotency_options().unwrap().key, ["order_id"]);
    /// # Ok::<(), steadfast::ConfigError>(())
    /// ```
    pub fn idempotency(
        mut self,
        options: crate::idempotency::IdempotencyOptions,
    ) -> Result<Self, ConfigError> {
        options.validate()?;
        self.idempotency = Some(options);
        Ok(self)
    }

    /// The idempotency options, if the plan has them.
    pub fn idempotency_options(&self) -> Option<&crate::idempotency::IdempotencyOptions> {
        self.idempotency.as_ref()
    }

    /// Replaces the custom policies (names already resolved).
    pub(crate) fn with_chain(mut self, chain: Chain) -> Self {
        self.chain = chain;
        self
    }

    /// The names of the custom policies around the call, in order.
    pub fn chain(&self) -> impl Iterator<Item = &str> {
        self.chain.iter().map(|(name, _)| &**name)
    }

    pub(crate) fn policies(&self) -> &[(Box<str>, Arc<dyn Policy>)] {
        &self.chain
    }
}

/// Why a hedge needs an idempotent operation.
pub(crate) const NOT_IDEMPOTENT: &str = "the operation must be marked idempotent to be hedged (a hedge runs it twice at once): set `idempotent = true` if it is safe to duplicate";

/// A policy table that cannot be built.
///
/// # Example
/// ```
/// use steadfast::chain::Registry;
/// use steadfast::{policy::Policies, Retry};
///
/// let err = Policies::default()
///     .with_chain("payments.*", Retry::default(), &["tenant_aware"], &Registry::new())
///     .unwrap_err();
/// assert_eq!(err.to_string(), r#"policies."payments.*": unknown custom strategy "tenant_aware""#);
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum PolicyError {
    /// The pattern is not a key, a namespace pattern or `*`.
    Pattern(KeyError),
    /// The chain names a policy the registry does not have.
    UnknownStrategy {
        /// The table's pattern.
        pattern: String,
        /// The name not found.
        name: String,
    },
}

impl std::fmt::Display for PolicyError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            PolicyError::Pattern(e) => write!(f, "{e}"),
            PolicyError::UnknownStrategy { pattern, name } => {
                write!(f, "policies.{pattern:?}: unknown custom strategy {name:?}")
            }
        }
    }
}

impl std::error::Error for PolicyError {}

/// Where a key's plan came from.
///
/// # Example
/// ```
/// use steadfast::policy::Source;
///
/// assert_ne!(Source::Exact, Source::Default);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Source<'a> {
    /// A table for exactly this key.
    Exact,
    /// The table of this namespace (`payments` for `payments.*`).
    Namespace(&'a str),
    /// The defaults.
    Default,
}

/// A key's plan and where it came from.
#[derive(Debug, Clone, Copy)]
pub struct Resolved<'a> {
    plan: &'a Arc<Plan>,
    source: Source<'a>,
}

impl<'a> Resolved<'a> {
    /// The plan.
    pub fn plan(&self) -> &'a Arc<Plan> {
        self.plan
    }

    /// Which table it came from.
    pub fn source(&self) -> Source<'a> {
        self.source
    }
}

/// The defaults and the tables by pattern.
///
/// See the [module docs](self) for how a key resolves.
#[derive(Debug, Clone)]
pub struct Policies {
    defaults: Arc<Plan>,
    /// Most specific first.
    tables: Vec<(Pattern, Arc<Plan>)>,
}

impl Default for Policies {
    fn default() -> Self {
        Policies::new(Retry::DEFAULT)
    }
}

impl Policies {
    /// A table of defaults only.
    pub fn new(defaults: Retry) -> Self {
        Policies {
            defaults: Arc::new(Plan::new(defaults)),
            tables: Vec::new(),
        }
    }

    /// Adds (or replaces) the table for `pattern` (`ns.Name`, `ns.*` or `*`).
    pub fn with(self, pattern: &str, retry: Retry) -> Result<Self, KeyError> {
        let parsed = Pattern::parse(pattern)?;
        Ok(self.insert(parsed, Plan::new(retry)))
    }

    /// Adds (or replaces) the table for `pattern` with a whole plan (retry, breaker, bulkhead,
    /// rate limiter).
    ///
    /// ```
    /// use steadfast::{breaker::BreakerOptions, policy::{Plan, Policies}, Retry};
    ///
    /// let policies = Policies::default()
    ///     .with_plan("payments.*", Plan::new(Retry::default()).breaker(BreakerOptions::default())?)?;
    /// assert!(policies.resolve("payments.Charge").plan().breaker_options().is_some());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn with_plan(self, pattern: &str, plan: Plan) -> Result<Self, KeyError> {
        let parsed = Pattern::parse(pattern)?;
        Ok(self.insert(parsed, plan))
    }

    /// Adds (or replaces) the table for `pattern`, with custom policies from `registry` around
    /// the call, by name and in order; an unknown name is an error now, not at call time.
    pub fn with_chain(
        self,
        pattern: &str,
        retry: Retry,
        names: &[&str],
        registry: &Registry,
    ) -> Result<Self, PolicyError> {
        self.with_plan_chain(pattern, Plan::new(retry), names, registry)
    }

    /// Adds (or replaces) the table for `pattern`: `plan`, with the custom policies `names`
    /// from `registry` around the call.
    pub fn with_plan_chain(
        self,
        pattern: &str,
        plan: Plan,
        names: &[&str],
        registry: &Registry,
    ) -> Result<Self, PolicyError> {
        let parsed = Pattern::parse(pattern).map_err(PolicyError::Pattern)?;
        let chain = names
            .iter()
            .map(|name| match registry.get(name) {
                Some(p) => Ok(((*name).into(), p.clone())),
                None => Err(PolicyError::UnknownStrategy {
                    pattern: pattern.to_owned(),
                    name: (*name).to_owned(),
                }),
            })
            .collect::<Result<Chain, _>>()?;
        Ok(self.insert(parsed, plan.with_chain(chain)))
    }

    fn insert(mut self, pattern: Pattern, plan: Plan) -> Self {
        let plan = Arc::new(plan);
        if pattern == Pattern::Any {
            self.defaults = plan;
            return self;
        }
        self.tables.retain(|(p, _)| *p != pattern);
        let at = self
            .tables
            .partition_point(|(p, _)| p.rank() >= pattern.rank());
        self.tables.insert(at, (pattern, plan));
        self
    }

    /// The plan `key` runs under.
    pub fn resolve(&self, key: &str) -> Resolved<'_> {
        for (pattern, plan) in &self.tables {
            if pattern.matches(key) {
                let source = match pattern {
                    Pattern::Exact(_) => Source::Exact,
                    Pattern::Namespace(ns) => Source::Namespace(ns),
                    Pattern::Any => Source::Default,
                };
                return Resolved { plan, source };
            }
        }
        Resolved {
            plan: &self.defaults,
            source: Source::Default,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn attempts(n: u32) -> Retry {
        Retry::immediate().max_attempts(n).build().unwrap()
    }

    #[test]
    fn most_specific_wins() {
        let p = Policies::new(attempts(1))
            .with("payments.*", attempts(2))
            .unwrap()
            .with("payments.refunds.*", attempts(3))
            .unwrap()
            .with("payments.Charge", attempts(4))
            .unwrap();
        let n = |k: &str| p.resolve(k).plan().retry().max_attempts();
        assert_eq!(n("payments.Charge"), Some(4));
        assert_eq!(n("payments.refunds.Create"), Some(3));
        assert_eq!(n("payments.Refund"), Some(2));
        assert_eq!(n("search.Query"), Some(1));
        assert_eq!(
            p.resolve("payments.refunds.Create").source(),
            Source::Namespace("payments.refunds")
        );
    }

    #[test]
    fn later_tables_replace_earlier_ones() {
        let p = Policies::default()
            .with("a.*", attempts(2))
            .unwrap()
            .with("a.*", attempts(5))
            .unwrap()
            .with("*", Retry::fixed(Duration::from_millis(1)).build().unwrap())
            .unwrap();
        assert_eq!(p.resolve("a.B").plan().retry().max_attempts(), Some(5));
        assert_eq!(p.tables.len(), 1);
        assert_eq!(
            p.resolve("z.Z").plan().retry().backoff().base,
            Duration::from_millis(1)
        );
    }
}
