//! A key's plan: its retry policy and the options of every strategy around it.

use std::sync::Arc;

use crate::breaker::BreakerOptions;
use crate::budget::BudgetOptions;
use crate::chain::{Chain, Policy};
use crate::classify::PolicyClassifier;
use crate::config::{ConfigError, Problems};
use crate::hedge::HedgeOptions;
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
    /// `plan` with this strategy, validated.
    #[cfg_attr(not(feature = "serde"), allow(dead_code))]
    fn join(scoped: Scoped<Self>, plan: Plan) -> Result<Plan, ConfigError>
    where
        Self: Sized;
}

#[cfg(feature = "serde")]
impl<O: StrategyOptions + Clone> crate::policy::TableField for Scoped<O> {
    fn validate(&self) -> Result<(), ConfigError> {
        validate_scoped(self)
    }
    fn join(self, plan: Plan, _: &crate::chain::Registry) -> Result<Plan, ConfigError> {
        O::join(self, plan)
    }
}

impl StrategyOptions for BreakerOptions {
    const FIELD: &'static str = "breaker";
    fn check(&self, p: &mut Problems<'_>) {
        BreakerOptions::check(self, p)
    }
    fn join(scoped: Scoped<Self>, plan: Plan) -> Result<Plan, ConfigError> {
        plan.scoped_breaker(scoped)
    }
}

impl StrategyOptions for BulkheadOptions {
    const FIELD: &'static str = "bulkhead";
    fn check(&self, p: &mut Problems<'_>) {
        BulkheadOptions::check(self, p)
    }
    fn join(scoped: Scoped<Self>, plan: Plan) -> Result<Plan, ConfigError> {
        plan.scoped_bulkhead(scoped)
    }
}

impl StrategyOptions for BudgetOptions {
    const FIELD: &'static str = "budget";
    fn check(&self, p: &mut Problems<'_>) {
        BudgetOptions::check(self, p)
    }
    fn join(scoped: Scoped<Self>, plan: Plan) -> Result<Plan, ConfigError> {
        plan.scoped_budget(scoped)
    }
}

impl StrategyOptions for RateLimitOptions {
    const FIELD: &'static str = "rate_limit";
    fn check(&self, p: &mut Problems<'_>) {
        RateLimitOptions::check(self, p)
    }
    fn join(scoped: Scoped<Self>, plan: Plan) -> Result<Plan, ConfigError> {
        plan.scoped_rate_limit(scoped)
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

    /// Replaces the retry policy.
    #[cfg(feature = "serde")]
    pub(crate) fn with_retry(mut self, retry: Retry) -> Self {
        self.retry = retry;
        self
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
