//! A policy file as written: read with every problem placed, written back, layered.

use std::collections::BTreeMap;
use std::fmt;
use std::path::Path;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use super::diagnostic::{Diagnostic, Diagnostics, suggest};
use super::format::{self, Format};
use super::node::{self, Node, fmt_path};
use super::table::TableSpec;
use crate::chain::Registry;

/// A policy file: the defaults and the tables by pattern, as written.
///
/// Read one with [`parse`](Self::parse) or [`load`](Self::load), which report every problem
/// at once, each with its file, line, column and field path; turn it into the [`Policies`](crate::policy::Policies)
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
    pub(super) source: Option<Arc<SourceMap>>,
}

#[derive(Debug)]
pub(super) struct SourceMap {
    pub(super) origin: String,
    pub(super) root: Node,
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
