//! A document compiled into the [`Policies`] an executor runs.

use super::diagnostic::{Diagnostic, Diagnostics};
use super::document::PolicyDocument;
use crate::chain::Registry;
use crate::key::Pattern;
use crate::policy::Policies;

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
            let plan = table
                .into_plan(registry)
                .map_err(|e| unplaced(e.to_string()))?;
            policies = policies.with_plan_at(pattern, plan);
        }
        Ok(policies)
    }
}
