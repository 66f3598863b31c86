//! The checks on a document's meaning, past what each field's own type checks: patterns that
//! can never match, chains and classifiers by name, hedges on keys not marked idempotent;
//! and placing each problem at the text that causes it.

use super::diagnostic::Diagnostic;
use super::document::PolicyDocument;
use super::node::{self, Found, Segment, fmt_path};
use super::table::TableSpec;
use crate::chain::Registry;
use crate::key::Pattern;
use crate::policy::NOT_IDEMPOTENT;

const WILDCARD_HINT: &str = "a wildcard stands only for a whole last segment (`ns.*`) or for every key (`*`), so this pattern can never match";

impl PolicyDocument {
    /// Semantic checks on what was read, skipping strategies that had read errors (their
    /// fields took defaults, which would only add confusing follow-on errors).
    pub(super) fn check(&self, found: &[Found], registry: Option<&Registry>) -> Vec<Diagnostic> {
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

    pub(super) fn origin(&self) -> &str {
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
}
