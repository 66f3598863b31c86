//! Policy files: the document as written, validated all at once, compiled into [`Policies`].

use std::collections::BTreeMap;
use std::fmt;
use std::path::Path;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::breaker::BreakerOptions;
use crate::budget::BudgetOptions;
use crate::chain::Registry;
use crate::classify::ClassifyOptions;
use crate::config::ConfigError;
use crate::hedge::HedgeOptions;
use crate::key::{KeyError, Pattern};
use crate::limit::{BulkheadOptions, RateLimitOptions};
use crate::policy::format::{self, Format};
use crate::policy::node::{self, Found, Node, Position, Segment, fmt_path};
use crate::policy::{NOT_IDEMPOTENT, Policies};
use crate::policy::{Plan, Scoped, validate_scoped};
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
    fn over(&self, lower: &TableSpec) -> TableSpec {
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
    fn problems(&self) -> Vec<crate::config::FieldError> {
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

/// A policy file: the defaults and the tables by pattern, as written.
///
/// Read one with [`parse`](Self::parse) or [`load`](Self::load), which report every problem
/// at once, each with its file, line, column and field path; turn it into the [`Policies`]
/// an [`Executor`](crate::Executor) runs with [`compile`](Self::compile).
///
/// ```toml
/// [defaults]
/// retry = { max_attempts = 3, backoff = "exponential", base = "100ms", max = "10s", jitter = "full" }
///
/// [policies."payments.*"]
/// retry = { max_attempts = 5, backoff = "decorrelated", base = "200ms", max = "30s" }
/// chain = ["tenant_quota"]
///
/// [policies."payments.Charge"]
/// retry = { max_attempts = 2, attempt_timeout = "2s", total_timeout = "5s" }
/// ```
///
/// # Example
/// ```
/// use steadfast::chain::Registry;
/// use steadfast::policy::{Format, PolicyDocument, Source};
///
/// let text = r#"
/// [defaults]
/// retry = { max_attempts = 3, base = "100ms" }
///
/// [policies."payments.*"]
/// retry = { max_attempts = 5, backoff = "decorrelated", base = "200ms", max = "30s" }
/// "#;
/// let doc = PolicyDocument::parse(text, Format::Toml, "policies.toml")?;
/// let policies = doc.compile(&Registry::new())?;
/// let resolved = policies.resolve("payments.Charge");
/// assert_eq!(resolved.plan().retry().max_attempts(), Some(5));
/// assert_eq!(resolved.source(), Source::Namespace("payments"));
///
/// let err = PolicyDocument::parse("[defaults]\nretry = { base = \"0ms\" }\n", Format::Toml, "p.toml")
///     .unwrap_err();
/// assert_eq!(err.to_string(), "p.toml:2:18: defaults.retry.base: must be > 0, got 0ms");
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[cfg_attr(feature = "schema", schemars(rename = "PolicyFile"))]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct PolicyDocument {
    /// What every key runs under unless a table says otherwise.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub defaults: Option<TableSpec>,
    /// Tables by pattern: an exact key (`payments.Charge`), a namespace (`payments.*`) or `*`.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub policies: BTreeMap<String, TableSpec>,
    /// Where it was read from, to place problems found later (unknown strategy names).
    #[serde(skip)]
    #[cfg_attr(feature = "schema", schemars(skip))]
    source: Option<Arc<SourceMap>>,
}

#[derive(Debug)]
struct SourceMap {
    origin: String,
    root: Node,
}

impl PartialEq for PolicyDocument {
    fn eq(&self, other: &Self) -> bool {
        self.defaults == other.defaults && self.policies == other.policies
    }
}

impl fmt::Debug for PolicyDocument {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PolicyDocument")
            .field("defaults", &self.defaults)
            .field("policies", &self.policies)
            .finish()
    }
}

/// One problem in a policy file: where it is and what is wrong.
///
/// Displayed as `file:line:column: field.path: message`, the form editors and CI logs link.
///
/// # Example
/// ```
/// use steadfast::policy::{Format, PolicyDocument};
///
/// let err = PolicyDocument::parse("[policies.\"a.B\"]\nretry = { basee = \"1s\" }\n", Format::Toml, "p.toml")
///     .unwrap_err();
/// let d = &err.diagnostics()[0];
/// assert_eq!((d.line(), d.column()), (Some(2), Some(11)));
/// assert_eq!(d.path(), r#"policies."a.B".retry.basee"#);
/// assert!(d.message().starts_with("unknown field `basee`"));
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostic {
    origin: String,
    position: Option<Position>,
    path: String,
    message: String,
}

impl Diagnostic {
    fn new(
        origin: &str,
        position: Option<Position>,
        path: String,
        message: impl Into<String>,
    ) -> Self {
        Diagnostic {
            origin: origin.to_owned(),
            position,
            path,
            message: message.into(),
        }
    }

    /// The file (or URL, or name) the text came from.
    pub fn origin(&self) -> &str {
        &self.origin
    }

    /// The line, from 1, when the problem has a place in the text.
    pub fn line(&self) -> Option<u32> {
        self.position.map(|p| p.line)
    }

    /// The column, from 1 (in characters), when the problem has a place in the text.
    pub fn column(&self) -> Option<u32> {
        self.position.map(|p| p.column)
    }

    /// The field's path (`policies."payments.Charge".retry.base`); empty for the whole file.
    pub fn path(&self) -> &str {
        &self.path
    }

    /// What is wrong.
    pub fn message(&self) -> &str {
        &self.message
    }
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.origin)?;
        if let Some(p) = self.position {
            write!(f, ":{}:{}", p.line, p.column)?;
        }
        f.write_str(": ")?;
        if !self.path.is_empty() {
            write!(f, "{}: ", self.path)?;
        }
        f.write_str(&self.message)
    }
}

/// Every problem found in a policy file (never empty), in the order of the text.
///
/// # Example
/// ```
/// use steadfast::policy::{Format, PolicyDocument};
///
/// let text = "[defaults]\nretry = { max_attempts = 0, factor = 0.5 }\n";
/// let err = PolicyDocument::parse(text, Format::Toml, "p.toml").unwrap_err();
/// assert_eq!(err.diagnostics().len(), 2);
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostics(Vec<Diagnostic>);

impl Diagnostics {
    /// Each problem.
    pub fn diagnostics(&self) -> &[Diagnostic] {
        &self.0
    }

    fn one(d: Diagnostic) -> Self {
        Diagnostics(vec![d])
    }
}

impl fmt::Display for Diagnostics {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, d) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str("\n")?;
            }
            write!(f, "{d}")?;
        }
        Ok(())
    }
}

impl std::error::Error for Diagnostics {}

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

const WILDCARD_HINT: &str = "a wildcard stands only for a whole last segment (`ns.*`) or for every key (`*`), so this pattern can never match";

impl PolicyDocument {
    /// An empty document: every key runs under the library's defaults.
    pub fn new() -> Self {
        PolicyDocument::default()
    }

    /// Sets the `[defaults]` table.
    pub fn with_defaults(mut self, table: TableSpec) -> Self {
        self.defaults = Some(table);
        self
    }

    /// Adds (or replaces) the table of `pattern`.
    pub fn with(mut self, pattern: impl Into<String>, table: TableSpec) -> Self {
        self.policies.insert(pattern.into(), table);
        self
    }

    /// Reads and validates a document; `origin` names it in messages (a file name, a URL).
    ///
    /// Reports every problem at once: syntax (the first, as parsers stop there), unknown
    /// fields, wrong types, bad durations, out-of-range values, `max` below `base`, patterns
    /// that are not keys or can never match. Custom strategy names are checked by
    /// [`compile`](Self::compile) or [`parse_with`](Self::parse_with), which know the registry.
    pub fn parse(text: &str, format: Format, origin: &str) -> Result<Self, Diagnostics> {
        Self::read(text, format, origin, None)
    }

    /// [`parse`](Self::parse), also checking that every custom strategy named in a `chain`
    /// is in `registry`.
    pub fn parse_with(
        text: &str,
        format: Format,
        origin: &str,
        registry: &Registry,
    ) -> Result<Self, Diagnostics> {
        Self::read(text, format, origin, Some(registry))
    }

    /// Reads the file at `path` (its format from the extension, TOML when there is none).
    pub fn load(path: impl AsRef<Path>) -> Result<Self, Diagnostics> {
        let path = path.as_ref();
        let origin = path.display().to_string();
        let text = format::read_to_string(path).map_err(|e| {
            Diagnostics::one(Diagnostic::new(
                &origin,
                None,
                String::new(),
                format!("cannot read: {e}"),
            ))
        })?;
        Self::parse(
            &text,
            Format::from_path(path).unwrap_or(Format::Toml),
            &origin,
        )
    }

    fn read(
        text: &str,
        format: Format,
        origin: &str,
        registry: Option<&Registry>,
    ) -> Result<Self, Diagnostics> {
        let root = format::parse(text, format).map_err(|(pos, message)| {
            Diagnostics::one(Diagnostic::new(origin, Some(pos), String::new(), message))
        })?;
        let mut found = Vec::new();
        // A clean document is read once; one with errors is read from a copy that loses each
        // entry in error (the source map keeps the original, for placing later messages).
        let doc = match PolicyDocument::deserialize(node::NodeDe(&root)) {
            Ok(doc) => Some(doc),
            Err(_) => node::collect(&mut root.clone(), &mut found),
        };
        let mut doc = doc.unwrap_or_default();
        doc.source = Some(Arc::new(SourceMap {
            origin: origin.to_owned(),
            root,
        }));
        // Past the cap, the last problem says reading stopped; it goes last.
        let stopped = (found.len() > node::MAX_PROBLEMS)
            .then(|| found.pop())
            .flatten();
        let mut out: Vec<Diagnostic> = found
            .iter()
            .map(|f| Diagnostic::new(origin, Some(f.pos), fmt_path(&f.path), suggest(&f.message)))
            .collect();
        if stopped.is_none() {
            out.extend(doc.check(&found, registry));
        }
        // The order of the text: line, then column.
        out.sort_by_key(|d| d.position);
        if let Some(f) = stopped {
            out.push(Diagnostic::new(origin, None, String::new(), f.message));
        }
        if out.is_empty() {
            Ok(doc)
        } else {
            Err(Diagnostics(out))
        }
    }

    /// Semantic checks on what was read, skipping strategies that had read errors (their
    /// fields took defaults, which would only add confusing follow-on errors).
    fn check(&self, found: &[Found], registry: Option<&Registry>) -> Vec<Diagnostic> {
        let mut out = Vec::new();
        // Whether a read error was found at or under `table`.`field`…
        let broken = |table: &[&str], field: &[&str]| {
            found.iter().any(|f| {
                let prefix = table.iter().chain(field).copied();
                f.path.len() >= table.len() + field.len()
                    && f.path
                        .iter()
                        .zip(prefix)
                        .all(|(s, p)| *s == Segment::Key(p.to_owned()))
            })
        };
        // …and whether a field's check would compare it with one that was (a follow-on error).
        let follows_broken = |table: &[&str], field: &str| {
            let related: &[&str] = match field {
                "retry.max" => &["retry.base", "retry.backoff"],
                "retry.base" | "retry.factor" | "retry.jitter" => &["retry.backoff"],
                "retry.max_retries" => &["retry.max_attempts"],
                _ => &[],
            };
            std::iter::once(field)
                .chain(related.iter().copied())
                .any(|f| broken(table, &f.split('.').collect::<Vec<_>>()))
        };
        let tables = self
            .defaults
            .iter()
            .map(|t| (vec!["defaults"], None, t))
            .chain(
                self.policies
                    .iter()
                    .map(|(p, t)| (vec!["policies", p.as_str()], Some(p), t)),
            );
        for (path, pattern, table) in tables {
            let parsed = pattern.map(|p| Pattern::parse(p));
            if let (Some(pattern), Some(parsed)) = (pattern, &parsed) {
                match parsed {
                    Err(e) => {
                        let message = if pattern.contains('*') { WILDCARD_HINT.to_owned() } else { e.to_string() };
                        out.push(self.diagnostic_at_key(&path, message));
                    }
                    Ok(Pattern::Any) if self.defaults.is_some() => out.push(self.diagnostic_at_key(
                        &path,
                        "never applies: [defaults] already covers every key (put these strategies in [defaults])",
                    )),
                    Ok(_) => {}
                }
            }
            for fe in table
                .problems()
                .iter()
                .filter(|fe| !follows_broken(&path, fe.field()))
            {
                let mut at = path.clone();
                at.extend(fe.field().split('.'));
                out.push(self.diagnostic(&at, fe.message()));
            }
            if let Some(chain) = &table.chain
                && !broken(&path, &["chain"])
            {
                for (i, name) in chain.iter().enumerate() {
                    let problem = if chain[..i].contains(name) {
                        Some(format!("custom strategy {name:?} is already in this chain"))
                    } else if registry.is_some_and(|r| r.get(name).is_none()) {
                        Some(format!("unknown custom strategy {name:?}"))
                    } else {
                        None
                    };
                    if let Some(message) = problem {
                        out.push(self.diagnostic_at_index(&path, "chain", i, message));
                    }
                }
            }
            if let Some(classify) = &table.classify
                && !broken(&path, &["classify"])
                && !registry.map_or_else(
                    || crate::classify::BUILT_IN.contains(&classify.kind.as_str()),
                    |r| r.knows_classifier(&classify.kind),
                )
            {
                let mut at = path.clone();
                at.push("classify");
                if !classify.is_plain() {
                    at.push("kind");
                }
                out.push(self.diagnostic(&at, crate::classify::unknown(&classify.kind)));
            }
            if (table.hedge.is_some() || table.idempotent == Some(false))
                && !broken(&path, &["hedge"])
                && !broken(&path, &["idempotent"])
            {
                // What the key (or keys) of this table run under, inheritance included.
                let effective = match &parsed {
                    None => table.clone(),
                    Some(Ok(parsed)) => self.effective(parsed),
                    Some(Err(_)) => TableSpec::default(),
                };
                if effective.hedge.is_some() && effective.idempotent != Some(true) {
                    if table.hedge.is_some() {
                        let mut at = path.clone();
                        at.push("hedge");
                        out.push(self.diagnostic(&at, NOT_IDEMPOTENT));
                    } else {
                        let mut at = path.clone();
                        at.push("idempotent");
                        out.push(self.diagnostic(
                            &at,
                            "is false, but this table inherits a `hedge` (which runs the operation twice at once) from a less specific table: put the hedge only in the tables of idempotent keys",
                        ));
                    }
                }
            }
        }
        out
    }

    fn origin(&self) -> &str {
        self.source
            .as_ref()
            .map_or("<policies>", |s| s.origin.as_str())
    }

    /// A problem about the field at `path` (placed at the deepest part of it that is written).
    fn diagnostic(&self, path: &[&str], message: impl Into<String>) -> Diagnostic {
        let pos = self.source.as_ref().map(|s| s.root.nearest(path));
        let segs: Vec<Segment> = path.iter().map(|s| Segment::Key((*s).to_owned())).collect();
        Diagnostic::new(self.origin(), pos, fmt_path(&segs), message)
    }

    /// A problem about a table's name, placed at the key that names it.
    fn diagnostic_at_key(&self, path: &[&str], message: impl Into<String>) -> Diagnostic {
        let mut d = self.diagnostic(path, message);
        if let (Some(source), [parent @ .., last]) = (&self.source, path)
            && let Some(e) = source.root.at(parent).and_then(|n| n.get(last))
        {
            d.position = Some(e.key_pos);
        }
        d
    }

    /// A problem about item `i` of the list `field` of a table.
    fn diagnostic_at_index(
        &self,
        table: &[&str],
        field: &str,
        i: usize,
        message: String,
    ) -> Diagnostic {
        let mut path = table.to_vec();
        path.push(field);
        let mut d = self.diagnostic(&path, message);
        d.path.push_str(&format!("[{i}]"));
        if let Some(node) = self.source.as_ref().and_then(|s| s.root.at(&path))
            && let node::Kind::Seq(items) = &node.kind
            && let Some(item) = items.get(i)
        {
            d.position = Some(item.pos);
        }
        d
    }

    /// Writes the document in `format`; the text reads back to an equal document.
    ///
    /// Fails only for options that have no file form (a custom delay function).
    ///
    /// ```
    /// use steadfast::policy::{Format, PolicyDocument, TableSpec};
    /// use steadfast::Retry;
    ///
    /// let doc = PolicyDocument::new().with("payments.*", TableSpec::new().retry(Retry::immediate().max_attempts(2)));
    /// for format in [Format::Toml, Format::Yaml, Format::Json] {
    ///     let text = doc.to_text(format)?;
    ///     assert_eq!(PolicyDocument::parse(&text, format, "round trip")?, doc);
    /// }
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn to_text(&self, format: Format) -> Result<String, String> {
        format::write(self, format)
    }

    /// The strategies `target` runs under: each from the most specific table naming it.
    fn effective(&self, target: &Pattern) -> TableSpec {
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

    /// Compiles the document into the [`Policies`] an executor runs, resolving each table's
    /// inherited strategies and each custom strategy name in `registry`.
    ///
    /// The document is checked first by the same rules as [`parse_with`](Self::parse_with), so a
    /// document built in code is held to what a file is, and each problem is reported once,
    /// where it is written (not again in every table that inherits it).
    pub fn compile(&self, registry: &Registry) -> Result<Policies, Diagnostics> {
        let mut errors = self.check(&[], Some(registry));
        if !errors.is_empty() {
            errors.sort_by_key(|d| d.position);
            return Err(Diagnostics(errors));
        }
        // Past the checks, nothing below can fail; an error would still be reported, unplaced.
        let unplaced = |message: String| {
            Diagnostics::one(Diagnostic::new(self.origin(), None, String::new(), message))
        };
        let patterns = std::iter::once("*").chain(
            self.policies
                .keys()
                .map(String::as_str)
                .filter(|p| *p != "*"),
        );
        let mut policies = Policies::default();
        for text in patterns {
            let pattern = Pattern::parse(text).map_err(|e| unplaced(e.to_string()))?;
            // `*` inherits from [defaults]: its lineage is the `*` table, then [defaults].
            let table = self.effective(&pattern);
            let retry = table
                .retry
                .unwrap_or_default()
                .build()
                .map_err(|e| unplaced(e.to_string()))?;
            let mut plan = Plan::new(retry);
            if let Some(b) = table.breaker {
                plan = plan
                    .scoped_breaker(b)
                    .map_err(|e| unplaced(e.to_string()))?;
            }
            if let Some(b) = table.bulkhead {
                plan = plan
                    .scoped_bulkhead(b)
                    .map_err(|e| unplaced(e.to_string()))?;
            }
            if let Some(r) = table.rate_limit {
                plan = plan
                    .scoped_rate_limit(r)
                    .map_err(|e| unplaced(e.to_string()))?;
            }
            if let Some(g) = table.gate {
                plan = plan.gate(g).map_err(|e| unplaced(e.to_string()))?;
            }
            if let Some(i) = table.idempotency {
                plan = plan.idempotency(i).map_err(|e| unplaced(e.to_string()))?;
            }
            plan = plan
                .idempotent(table.idempotent == Some(true))
                .map_err(|e| unplaced(e.to_string()))?;
            if let Some(h) = table.hedge {
                plan = plan.hedge(h).map_err(|e| unplaced(e.to_string()))?;
            }
            if let Some(b) = table.budget {
                plan = plan.scoped_budget(b).map_err(|e| unplaced(e.to_string()))?;
            }
            if let Some(c) = &table.classify {
                plan = plan.classify(registry.classify(c).map_err(|e| unplaced(e.to_string()))?);
            }
            let chain = table.chain.unwrap_or_default();
            let names: Vec<&str> = chain.iter().map(String::as_str).collect();
            policies = policies
                .with_plan_chain(text, plan, &names, registry)
                .map_err(|e| unplaced(e.to_string()))?;
        }
        Ok(policies)
    }

    /// This document over `lower`: each table's strategies from this one where it names them,
    /// else from `lower` (the merge of a [`Layered`](crate::policy::Layered) provider).
    ///
    /// ```
    /// use steadfast::policy::{PolicyDocument, TableSpec};
    /// use steadfast::Retry;
    ///
    /// let file = PolicyDocument::new().with("a.*", TableSpec::new().retry(Retry::immediate().max_attempts(4)).chain(["audit"]));
    /// let remote = PolicyDocument::new().with("a.*", TableSpec::new().retry(Retry::immediate().max_attempts(9)));
    /// let merged = remote.over(&file);
    /// let table = &merged.policies["a.*"];
    /// assert_eq!(table.retry.as_ref().unwrap().max_attempts, Some(9));
    /// assert_eq!(table.chain.as_deref(), Some(&["audit".to_string()][..]));
    /// ```
    pub fn over(&self, lower: &PolicyDocument) -> PolicyDocument {
        let defaults = match (&self.defaults, &lower.defaults) {
            (Some(a), Some(b)) => Some(a.over(b)),
            (a, b) => a.clone().or_else(|| b.clone()),
        };
        let mut policies = lower.policies.clone();
        for (p, t) in &self.policies {
            let merged = match policies.get(p) {
                Some(l) => t.over(l),
                None => t.clone(),
            };
            policies.insert(p.clone(), merged);
        }
        PolicyDocument {
            defaults,
            policies,
            source: None,
        }
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

/// Serde's "unknown field `atempt_timeout`, expected one of `max_attempts`, …" with the
/// likely intended name first: "unknown field `atempt_timeout` (did you mean
/// `attempt_timeout`?); expected one of …", and the same for an unknown variant (an enum's
/// value, such as `backoff = "exponentail"`). Other messages are returned as they are.
fn suggest(message: &str) -> String {
    let parse = || {
        let (what, rest) = ["field", "variant"].iter().find_map(|what| {
            let rest = message.strip_prefix(&format!("unknown {what} `"))?;
            Some((*what, rest))
        })?;
        let (field, rest) = rest.split_once('`')?;
        let list = rest
            .strip_prefix(", expected one of ")
            .or_else(|| rest.strip_prefix(", expected "))?;
        let best = list
            .split(", ")
            .map(|c| c.trim_matches('`'))
            .map(|c| (crate::config::edit_distance(field, c), c))
            .min()?;
        // Close enough to be a typo: at most a third of the name's letters differ.
        (best.0 > 0 && best.0 * 3 <= best.1.len().max(3)).then(|| {
            format!(
                "unknown {what} `{field}` (did you mean `{}`?); expected one of {list}",
                best.1
            )
        })
    };
    parse().unwrap_or_else(|| message.to_owned())
}

#[cfg(test)]
mod tests {
    use super::suggest;
    use crate::config::edit_distance;

    #[test]
    fn typos_get_a_suggestion_and_strangers_do_not() {
        assert_eq!(edit_distance("atempt_timeout", "attempt_timeout"), 1);
        assert_eq!(edit_distance("", "abc"), 3);
        assert_eq!(
            suggest("unknown field `jiter`, expected one of `base`, `jitter`"),
            "unknown field `jiter` (did you mean `jitter`?); expected one of `base`, `jitter`"
        );
        let far = "unknown field `colour`, expected one of `base`, `jitter`";
        assert_eq!(suggest(far), far);
        assert_eq!(suggest("must be > 0"), "must be > 0");
        assert_eq!(
            suggest("unknown variant `exponentail`, expected one of `fixed`, `exponential`"),
            "unknown variant `exponentail` (did you mean `exponential`?); expected one of \
             `fixed`, `exponential`"
        );
    }
}
