//! The policy-file form of idempotency.
//!
//! ```toml
//! idempotency = { key = ["order_id"], ttl = "24h", lock_timeout = "5m" }
//! ```

use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::IdempotencyOptions;

/// Calls with the same idempotency key run once (`KeyCall::idempotent`).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[cfg_attr(feature = "schema", schemars(rename = "Idempotency"))]
#[serde(deny_unknown_fields)]
struct IdempotencyFile {
    /// The request's fields (dotted paths) whose values make the key.
    key: Vec<String>,
    /// How long a completed call's result is kept. Default "24h".
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        with = "crate::config::duration::option"
    )]
    #[cfg_attr(
        feature = "schema",
        schemars(with = "Option<crate::retry::file::DurationText>")
    )]
    ttl: Option<Duration>,
    /// How long a call may hold its key before another takes it over. Default "5m".
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        with = "crate::config::duration::option"
    )]
    #[cfg_attr(
        feature = "schema",
        schemars(with = "Option<crate::retry::file::DurationText>")
    )]
    lock_timeout: Option<Duration>,
}

impl IdempotencyFile {
    fn from_options(o: &IdempotencyOptions) -> Self {
        IdempotencyFile {
            key: o.key.clone(),
            ttl: Some(o.ttl),
            lock_timeout: Some(o.lock_timeout),
        }
    }

    fn into_options(self) -> Result<IdempotencyOptions, String> {
        let default = IdempotencyOptions::new(self.key);
        Ok(IdempotencyOptions {
            ttl: self.ttl.unwrap_or(default.ttl),
            lock_timeout: self.lock_timeout.unwrap_or(default.lock_timeout),
            key: default.key,
        })
    }
}

crate::config::file_form!(
    IdempotencyOptions,
    IdempotencyFile,
    to = IdempotencyFile::from_options,
    from = IdempotencyFile::into_options
);

impl crate::policy::TableField for IdempotencyOptions {
    fn validate(&self) -> Result<(), crate::ConfigError> {
        IdempotencyOptions::validate(self)
    }
    fn join(
        self,
        plan: crate::policy::Plan,
        _: &crate::chain::Registry,
    ) -> Result<crate::policy::Plan, crate::ConfigError> {
        plan.idempotency(self)
    }
}
