//! The policy-file form of the retry gate.
//!
//! ```toml
//! gate = { base_retries = 2, base_window = "30m", early_window = "20m", max_retries = 5 }
//! ```

use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::GateOptions;

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
}

impl GateFile {
    fn from_options(o: &GateOptions) -> Self {
        GateFile {
            base_retries: Some(o.base_retries),
            base_window: Some(o.base_window),
            early_window: Some(o.early_window),
            max_retries: Some(o.max_retries),
        }
    }

    fn into_options(self) -> Result<GateOptions, String> {
        let default = GateOptions::default();
        Ok(GateOptions {
            base_retries: self.base_retries.unwrap_or(default.base_retries),
            base_window: self.base_window.unwrap_or(default.base_window),
            early_window: self.early_window.unwrap_or(default.early_window),
            max_retries: self.max_retries.unwrap_or(default.max_retries),
            spacing: None,
        })
    }
}

crate::config::file_form!(
    GateOptions,
    GateFile,
    to = GateFile::from_options,
    from = GateFile::into_options
);
