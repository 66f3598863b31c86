//! Plans by key: the defaults and the tables of patterns, and how a key resolves.

use std::sync::Arc;

use super::plan::Plan;
use crate::chain::{Chain, Registry};
use crate::key::{KeyError, Pattern};
use crate::retry::Retry;

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
/// See the [module docs](crate::policy) for how a key resolves.
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

    /// `plan` (its chain already resolved) for the keys `pattern` matches.
    #[cfg(feature = "serde")]
    pub(crate) fn with_plan_at(self, pattern: Pattern, plan: Plan) -> Self {
        self.insert(pattern, plan)
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
