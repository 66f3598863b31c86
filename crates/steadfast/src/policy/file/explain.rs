//! Which table each strategy of a key comes from: the lineage of tables that apply, most
//! specific first, and the [`Explanation`] `steadfast plan` prints.

use std::fmt;

use super::document::PolicyDocument;
use super::table::TableSpec;
use crate::classify::ClassifyOptions;
use crate::key::{KeyError, Pattern};
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

/// A key's effective table in a document, and where each of its fields came from.
///
/// [`table`](Self::table) is the table the key runs under: each field from the most specific
/// table naming it. [`origin`](Self::origin) says which table that is, for any field.
///
/// # Example
/// ```
/// use steadfast::policy::{Format, Origin, PolicyDocument};
///
/// let doc = PolicyDocument::parse(
///     "[defaults]\nbreaker = { failure_threshold = 5, break = \"30s\" }\n\
///      [policies.\"payments.*\"]\nretry = { max_attempts = 5 }\n",
///     Format::Toml,
///     "p.toml",
/// )?;
/// let e = doc.explain("payments.Charge")?;
/// assert_eq!(e.retry_origin(), &Origin::Table("payments.*".into()));
/// assert_eq!(e.retry().max_attempts, Some(5));
/// assert_eq!(e.origin("breaker"), &Origin::Defaults);
/// assert!(e.table().breaker.is_some());
/// assert_eq!(e.chain_origin(), &Origin::Library);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone)]
pub struct Explanation {
    table: TableSpec,
    origins: Vec<(&'static str, Origin)>,
    retry: RetryOptions,
    classify: ClassifyOptions,
}

impl Explanation {
    /// The key's effective table: each field from the most specific table naming it, `None`
    /// where no table does.
    pub fn table(&self) -> &TableSpec {
        &self.table
    }

    /// The table `field` (a table's field name: `breaker`, `retry`, …) comes from;
    /// [`Origin::Library`] when no table names it.
    pub fn origin(&self, field: &str) -> &Origin {
        self.origins
            .iter()
            .find(|(f, _)| *f == field)
            .map_or(&Origin::Library, |(_, o)| o)
    }

    /// The classifier in force (`always` from the library when no table names one), and
    /// where it comes from.
    pub fn classify(&self) -> (&ClassifyOptions, &Origin) {
        (&self.classify, self.origin("classify"))
    }

    /// The retry options in force (the library's when no table names them).
    pub fn retry(&self) -> &RetryOptions {
        &self.retry
    }

    /// Which table they come from.
    pub fn retry_origin(&self) -> &Origin {
        self.origin("retry")
    }

    /// The custom strategies, in order.
    pub fn chain(&self) -> &[String] {
        self.table.chain.as_deref().unwrap_or_default()
    }

    /// Which table they come from.
    pub fn chain_origin(&self) -> &Origin {
        self.origin("chain")
    }

    /// Whether the key's operation is marked safe to duplicate.
    pub fn idempotent(&self) -> bool {
        self.table.idempotent == Some(true)
    }
}

impl PolicyDocument {
    /// The strategies `target` runs under: each from the most specific table naming it.
    pub(super) fn effective(&self, target: &Pattern) -> TableSpec {
        inherit(&self.lineage(target))
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
        let table = inherit(&lineage);
        Ok(Explanation {
            origins: TableSpec::origins(&lineage),
            retry: table.retry.clone().unwrap_or_default(),
            classify: table
                .classify
                .clone()
                .unwrap_or_else(|| ClassifyOptions::new("always")),
            table,
        })
    }
}

/// The table a lineage (most specific first) makes: each field from the first table naming it.
fn inherit(lineage: &[(Origin, &TableSpec)]) -> TableSpec {
    lineage
        .iter()
        .rev()
        .fold(TableSpec::default(), |acc, (_, t)| t.over(&acc))
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
