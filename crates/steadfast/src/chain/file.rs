//! The policy-file form of the chain: custom strategies by the names they were registered
//! under, in order.
//!
//! ```toml
//! chain = ["tenant_quota", "audit"]
//! ```

use super::{Chain, Registry};
use crate::config::{ConfigError, Problems};
use crate::policy::Plan;

impl crate::policy::TableField for Vec<String> {
    fn validate(&self) -> Result<(), ConfigError> {
        Ok(())
    }
    fn join(self, plan: Plan, registry: &Registry) -> Result<Plan, ConfigError> {
        let mut p = Problems::new("");
        let chain: Chain = self
            .iter()
            .filter_map(|name| match registry.get(name) {
                Some(policy) => Some((name.as_str().into(), policy.clone())),
                None => {
                    p.push("chain", format!("unknown custom strategy {name:?}"));
                    None
                }
            })
            .collect();
        p.finish()?;
        Ok(plan.with_chain(chain))
    }
}
