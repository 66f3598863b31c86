//! The policy-file form of the retry gate.
//!
//! ```toml
//! gate = { base_retries = 2, base_window = "30m", early_window = "20m", max_retries = 5 }
//! ```

use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::GateOptions;

/// The durable retry gate of calls made for a target (`Executor::run_gated`).
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

impl Serialize for GateOptions {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        GateFile {
            base_retries: Some(self.base_retries),
            base_window: Some(self.base_window),
            early_window: Some(self.early_window),
            max_retries: Some(self.max_retries),
        }
        .serialize(s)
    }
}

impl<'de> Deserialize<'de> for GateOptions {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let f = GateFile::deserialize(d)?;
        let default = GateOptions::default();
        Ok(GateOptions {
            base_retries: f.base_retries.unwrap_or(default.base_retries),
            base_window: f.base_window.unwrap_or(default.base_window),
            early_window: f.early_window.unwrap_or(default.early_window),
            max_retries: f.max_retries.unwrap_or(default.max_retries),
            spacing: None,
        })
    }
}

#[cfg(feature = "schema")]
impl schemars::JsonSchema for GateOptions {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        GateFile::schema_name()
    }

    fn json_schema(generator: &mut schemars::SchemaGenerator) -> schemars::Schema {
        GateFile::json_schema(generator)
    }
}
