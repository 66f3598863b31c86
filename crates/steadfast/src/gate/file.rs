//! The policy-file form of the retry gate.
//!
//! ```toml
//! gate = { base_retries = 2, base_window = "30m", early_window = "20m", max_retries = 5 }
//! # or with a least time between a target's retries:
//! gate = { max_retries = 5, spacing = { backoff = "exponential", base = "1m", max = "1h" } }
//! ```

use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::GateOptions;
use crate::backoff::Jitter;
use crate::retry::file::{BackoffName, backoff_name, backoff_options};

/// The durable retry gate of calls made for a target (`KeyCall::gate`).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[cfg_attr(feature = "schema", schemars(rename = "Gate"))]
#[serde(deny_unknown_fields)]
struct GateFile {
    /// Retries allowed inside one window. Default 2.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    base_retries: Option<u32>,
    /// How long a window lasts from the failure that opens it. Default "30m".
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        with = "crate::config::duration::option"
    )]
    #[cfg_attr(
        feature = "schema",
        schemars(with = "Option<crate::retry::file::DurationText>")
    )]
    base_window: Option<Duration>,
    /// How old a window must be before an early retry ("retry now") is granted. Default "20m".
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        with = "crate::config::duration::option"
    )]
    #[cfg_attr(
        feature = "schema",
        schemars(with = "Option<crate::retry::file::DurationText>")
    )]
    early_window: Option<Duration>,
    /// Retries in total before the target is exhausted until reset. Default 5.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    max_retries: Option<u32>,
    /// The least time before each retry, as a backoff schedule (without jitter). Default none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    spacing: Option<SpacingFile>,
}

/// The least time before a target's `n`th retry: the `n`th delay of this schedule.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[cfg_attr(feature = "schema", schemars(rename = "GateSpacing"))]
#[serde(deny_unknown_fields)]
struct SpacingFile {
    /// The schedule. Default "exponential".
    #[serde(default, skip_serializing_if = "Option::is_none")]
    backoff: Option<BackoffName>,
    /// The first spacing, e.g. "1m". Default "100ms".
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        with = "crate::config::duration::option"
    )]
    #[cfg_attr(
        feature = "schema",
        schemars(with = "Option<crate::retry::file::DurationText>")
    )]
    base: Option<Duration>,
    /// The cap on every spacing. Default "10s".
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        with = "crate::config::duration::option"
    )]
    #[cfg_attr(
        feature = "schema",
        schemars(with = "Option<crate::retry::file::DurationText>")
    )]
    max: Option<Duration>,
    /// Growth factor of exponential spacing (> 1). Default 2.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    factor: Option<f64>,
}

impl GateFile {
    fn from_options(o: &GateOptions) -> Result<Self, &'static str> {
        let spacing = match &o.spacing {
            Some(b) => {
                let (backoff, factor) = backoff_name(&b.kind)?;
                Some(SpacingFile {
                    backoff: Some(backoff),
                    base: Some(b.base),
                    max: Some(b.max),
                    factor,
                })
            }
            None => None,
        };
        Ok(GateFile {
            base_retries: Some(o.base_retries),
            base_window: Some(o.base_window),
            early_window: Some(o.early_window),
            max_retries: Some(o.max_retries),
            spacing,
        })
    }

    fn into_options(self) -> Result<GateOptions, String> {
        let default = GateOptions::default();
        Ok(GateOptions {
            base_retries: self.base_retries.unwrap_or(default.base_retries),
            base_window: self.base_window.unwrap_or(default.base_window),
            early_window: self.early_window.unwrap_or(default.early_window),
            max_retries: self.max_retries.unwrap_or(default.max_retries),
            spacing: match self.spacing {
                Some(sp) => Some(
                    backoff_options(sp.backoff, sp.base, sp.max, sp.factor)
                        .map_err(|e| format!("spacing.{e}"))?
                        .jitter(Jitter::None),
                ),
                None => None,
            },
        })
    }
}

crate::config::file_form!(
    GateOptions,
    GateFile,
    try_to = GateFile::from_options,
    from = GateFile::into_options
);

impl crate::policy::TableField for GateOptions {
    fn validate(&self) -> Result<(), crate::ConfigError> {
        GateOptions::validate(self)
    }
    fn join(
        self,
        plan: crate::policy::Plan,
        _: &crate::chain::Registry,
    ) -> Result<crate::policy::Plan, crate::ConfigError> {
        plan.gate(self)
    }
}
