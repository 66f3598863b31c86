//! A document compiled into the [`Policies`] an executor runs.

use super::diagnostic::{Diagnostic, Diagnostics};
use super::document::PolicyDocument;
use crate::chain::Registry;
use crate::key::Pattern;
use crate::policy::{Plan, Policies};

impl PolicyDocument {
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
}
