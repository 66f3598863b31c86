//! Which table each strategy of a key comes from: the lineage of tables that apply, most
//! specific first, and the [`Explanation`] `steadfast plan` prints.

use std::fmt;

use super::document::PolicyDocument;
use super::table::TableSpec;
use crate::breaker::BreakerOptions;
use crate::budget::BudgetOptions;
use crate::classify::ClassifyOptions;
use crate::hedge::HedgeOptions;
use crate::key::{KeyError, Pattern};
use crate::limit::{BulkheadOptions, RateLimitOptions};
use crate::policy::Scoped;
use crate::retry::RetryOptions;

/// Where one strategy of a key's plan comes from.
///
/// # Example
/// ```
/// use steadfast::policy::Origin;
///
/// assert_eq!(Origin::Table("payments.*".into()).to_string(), r#"policies."payments.*""#);
/// assert_eq!(Origin::Defaults.to_string(), "[defaults]");
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Origin {
    /// The table of this pattern.
    Table(String),
    /// The `[defaults]` table.
    Defaults,
    /// No table names it: the library's default.
    Library,
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Origin::Table(p) => write!(f, "policies.{p:?}"),
            Origin::Defaults => f.write_str("[defaults]"),
            Origin::Library => f.write_str("the library's default"),
        }
    }
}

/// A key's effective strategies in a document, and where each came from.
///
/// # Example
/// ```
/// use steadfast::policy::{Format, Origin, PolicyDocument};
///
/// let doc = PolicyDocument::parse(
///     "[policies.\"payments.*\"]\nretry = { max_attempts = 5 }\n",
///     Format::Toml,
///     "p.toml",
/// )?;
/// let e = doc.explain("payments.Charge")?;
/// assert_eq!(e.retry_origin(), &Origin::Table("payments.*".into()));
/// assert_eq!(e.retry().max_attempts, Some(5));
/// assert_eq!(e.chain_origin(), &Origin::Library);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone)]
pub struct Explanation {
    retry: RetryOptions,
    retry_origin: Origin,
    chain: Vec<String>,
    chain_origin: Origin,
    breaker: Option<(Scoped<BreakerOptions>, Origin)>,
    bulkhead: Option<(Scoped<BulkheadOptions>, Origin)>,
    rate_limit: Option<(Scoped<RateLimitOptions>, Origin)>,
    gate: Option<(crate::gate::GateOptions, Origin)>,
    idempotency: Option<(crate::idempotency::IdempotencyOptions, Origin)>,
    idempotent: bool,
    hedge: Option<(HedgeOptions, Origin)>,
    budget: Option<(Scoped<BudgetOptions>, Origin)>,
    classify: (ClassifyOptions, Origin),
}

impl Explanation {
    /// The classifier in force (`always` from the library when no table names one), and
    /// where it comes from.
    pub fn classify(&self) -> (&ClassifyOptions, &Origin) {
        (&self.classify.0, &self.classify.1)
    }

    /// The retry options in force.
    pub fn retry(&self) -> &RetryOptions {
        &self.retry
    }

    /// Which table they come from.
    pub fn retry_origin(&self) -> &Origin {
        &self.retry_origin
    }

    /// The custom strategies, in order.
    pub fn chain(&self) -> &[String] {
        &self.chain
    }

    /// Which table they come from.
    pub fn chain_origin(&self) -> &Origin {
        &self.chain_origin
    }

    /// The circuit breaker, if any table of the key names one, and that table.
    pub fn breaker(&self) -> Option<(&Scoped<BreakerOptions>, &Origin)> {
        self.breaker.as_ref().map(|(s, o)| (s, o))
    }

    /// The bulkhead, if any, and the table it comes from.
    pub fn bulkhead(&self) -> Option<(&Scoped<BulkheadOptions>, &Origin)> {
        self.bulkhead.as_ref().map(|(s, o)| (s, o))
    }

    /// The rate limiter, if any, and the table it comes from.
    pub fn rate_limit(&self) -> Option<(&Scoped<RateLimitOptions>, &Origin)> {
        self.rate_limit.as_ref().map(|(s, o)| (s, o))
    }

    /// The retry gate, if any, and the table it comes from.
    pub fn gate(&self) -> Option<(&crate::gate::GateOptions, &Origin)> {
        self.gate.as_ref().map(|(s, o)| (s, o))
    }

    /// The idempotency keys, if any, and the table they come from.
    pub fn idempotency(&self) -> Option<(&crate::idempotency::IdempotencyOptions, &Origin)> {
        self.idempotency.as_ref().map(|(s, o)| (s, o))
    }

    /// Whether the key's operation is marked safe to duplicate.
    pub fn idempotent(&self) -> bool {
        self.idempotent
    }

    /// The hedging, if any, and the table it comes from.
    pub fn hedge(&self) -> Option<(&HedgeOptions, &Origin)> {
        self.hedge.as_ref().map(|(s, o)| (s, o))
    }

    /// The budget, if any, and the table it comes from.
    pub fn budget(&self) -> Option<(&Scoped<BudgetOptions>, &Origin)> {
        self.budget.as_ref().map(|(s, o)| (s, o))
    }
}

impl PolicyDocument {
    /// The strategies `target` runs under: each from the most specific table naming it.
    pub(super) fn effective(&self, target: &Pattern) -> TableSpec {
        self.lineage(target)
            .iter()
            .rev()
            .fold(TableSpec::default(), |acc, (_, t)| t.over(&acc))
    }

    /// The tables that apply to `target`, most specific first, then `[defaults]`.
    fn lineage(&self, target: &Pattern) -> Vec<(Origin, &TableSpec)> {
        let mut found: Vec<(Pattern, &str, &TableSpec)> = self
            .policies
            .iter()
            .filter_map(|(p, t)| Pattern::parse(p).ok().map(|parsed| (parsed, p.as_str(), t)))
            .filter(|(p, _, _)| covers(p, target))
            .collect();
        found.sort_by_key(|(p, _, _)| std::cmp::Reverse(p.rank()));
        let mut out: Vec<(Origin, &TableSpec)> = found
            .into_iter()
            .map(|(_, name, t)| (Origin::Table(name.to_owned()), t))
            .collect();
        if let Some(d) = &self.defaults {
            out.push((Origin::Defaults, d));
        }
        out
    }

    /// The strategies `key` runs under, and where each comes from.
    pub fn explain(&self, key: &str) -> Result<Explanation, KeyError> {
        let key = crate::key::Key::parse(key)?;
        let lineage = self.lineage(&Pattern::Exact(key));
        let retry = lineage
            .iter()
            .find_map(|(o, t)| t.retry.as_ref().map(|r| (o.clone(), r.clone())));
        let chain = lineage
            .iter()
            .find_map(|(o, t)| t.chain.as_ref().map(|c| (o.clone(), c.clone())));
        let (retry_origin, retry) = retry.unwrap_or((Origin::Library, RetryOptions::default()));
        let (chain_origin, chain) = chain.unwrap_or((Origin::Library, Vec::new()));
        Ok(Explanation {
            retry,
            retry_origin,
            chain,
            chain_origin,
            breaker: lineage
                .iter()
                .find_map(|(o, t)| t.breaker.clone().map(|b| (b, o.clone()))),
            bulkhead: lineage
                .iter()
                .find_map(|(o, t)| t.bulkhead.clone().map(|b| (b, o.clone()))),
            rate_limit: lineage
                .iter()
                .find_map(|(o, t)| t.rate_limit.clone().map(|r| (r, o.clone()))),
            gate: lineage
                .iter()
                .find_map(|(o, t)| t.gate.clone().map(|g| (g, o.clone()))),
            idempotency: lineage
                .iter()
                .find_map(|(o, t)| t.idempotency.clone().map(|i| (i, o.clone()))),
            idempotent: lineage.iter().find_map(|(_, t)| t.idempotent) == Some(true),
            hedge: lineage
                .iter()
                .find_map(|(o, t)| t.hedge.clone().map(|h| (h, o.clone()))),
            budget: lineage
                .iter()
                .find_map(|(o, t)| t.budget.clone().map(|b| (b, o.clone()))),
            classify: lineage
                .iter()
                .find_map(|(o, t)| t.classify.clone().map(|c| (c, o.clone())))
                .unwrap_or((ClassifyOptions::new("always"), Origin::Library)),
        })
    }
}

/// Whether every key `specific` matches is also matched by `general`.
fn covers(general: &Pattern, specific: &Pattern) -> bool {
    match (general, specific) {
        (Pattern::Any, _) => true,
        (_, Pattern::Any) => false,
        (Pattern::Exact(a), Pattern::Exact(b)) => a == b,
        (Pattern::Exact(_), Pattern::Namespace(_)) => false,
        (Pattern::Namespace(_), Pattern::Exact(k)) => general.matches(k.as_str()),
        (Pattern::Namespace(a), Pattern::Namespace(b)) => {
            a == b || (b.len() > a.len() && b.starts_with(&**a) && b.as_bytes()[a.len()] == b'.')
        }
    }
}
