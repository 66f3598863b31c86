//! The policy-file form of hedging: a fixed `delay`, or a latency-aware `percentile`.
//!
//! ```toml
//! idempotent = true
//! hedge = { delay = "50ms", max_hedged_attempts = 2 }
//! hedge = { percentile = 95, min_samples = 100, fallback = "10ms", window = "30s" }
//! ```

use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::{HedgeDelay, HedgeOptions};

/// Hedging: after a delay with no answer, send another attempt and take the first good one.
/// Give exactly one of `delay` and `percentile`; the table must also say `idempotent = true`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[cfg_attr(feature = "schema", schemars(rename = "Hedge"))]
#[serde(deny_unknown_fields)]
struct HedgeFile {
    /// A fixed delay before each hedge.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        with = "crate::config::duration::option"
    )]
    #[cfg_attr(
        feature = "schema",
        schemars(with = "Option<crate::retry::file::DurationText>")
    )]
    delay: Option<Duration>,
    /// Hedge at this percentile of recent latencies (e.g. 95), in (0, 100).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    percentile: Option<f64>,
    /// percentile: latencies seen before the percentile applies. Default 100.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    min_samples: Option<u32>,
    /// percentile: the delay until then. Default "10ms".
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        with = "crate::config::duration::option"
    )]
    #[cfg_attr(
        feature = "schema",
        schemars(with = "Option<crate::retry::file::DurationText>")
    )]
    fallback: Option<Duration>,
    /// Hedges a try may send after its first attempt. Default 1.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    max_hedged_attempts: Option<u32>,
    /// percentile: how far back latencies count. Default "30s".
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        with = "crate::config::duration::option"
    )]
    #[cfg_attr(
        feature = "schema",
        schemars(with = "Option<crate::retry::file::DurationText>")
    )]
    window: Option<Duration>,
}

impl HedgeFile {
    fn into_options(self) -> Result<HedgeOptions, String> {
        let mut o = match (self.delay, self.percentile) {
            (Some(_), Some(_)) => {
                return Err("percentile: cannot be given together with delay".into());
            }
            (None, None) => {
                return Err("give `delay` (a fixed delay) or `percentile` (latency-aware)".into());
            }
            (Some(delay), None) => {
                for (field, given) in [
                    ("min_samples", self.min_samples.is_some()),
                    ("fallback", self.fallback.is_some()),
                    ("window", self.window.is_some()),
                ] {
                    if given {
                        return Err(format!("{field}: only a `percentile` hedge has it"));
                    }
                }
                HedgeOptions::fixed(delay)
            }
            (None, Some(p)) => {
                let mut o = HedgeOptions::percentile(p);
                if let Some(n) = self.min_samples {
                    o = o.min_samples(n);
                }
                if let Some(d) = self.fallback {
                    o = o.fallback(d);
                }
                if let Some(w) = self.window {
                    o = o.window(w);
                }
                o
            }
        };
        if let Some(n) = self.max_hedged_attempts {
            o = o.max_hedged_attempts(n);
        }
        Ok(o)
    }

    fn from_options(o: &HedgeOptions) -> Self {
        let mut f = HedgeFile {
            max_hedged_attempts: Some(o.max_hedged_attempts),
            ..HedgeFile::default()
        };
        match o.delay {
            HedgeDelay::Fixed(d) => f.delay = Some(d),
            HedgeDelay::Percentile {
                percentile,
                min_samples,
                fallback,
            } => {
                f.percentile = Some(percentile);
                f.min_samples = Some(min_samples);
                f.fallback = Some(fallback);
                f.window = Some(o.window);
            }
        }
        f
    }
}

// A hedge table of a policy file.
crate::config::file_form!(
    HedgeOptions,
    HedgeFile,
    to = HedgeFile::from_options,
    from = HedgeFile::into_options
);

impl crate::policy::TableField for HedgeOptions {
    fn validate(&self) -> Result<(), crate::ConfigError> {
        HedgeOptions::validate(self)
    }
    fn join(
        self,
        plan: crate::policy::Plan,
        _: &crate::chain::Registry,
    ) -> Result<crate::policy::Plan, crate::ConfigError> {
        plan.hedge(self)
    }
}

/// `idempotent = true`: the operation is safe to duplicate, which hedging needs.
impl crate::policy::TableField for bool {
    fn validate(&self) -> Result<(), crate::ConfigError> {
        Ok(())
    }
    fn join(
        self,
        plan: crate::policy::Plan,
        _: &crate::chain::Registry,
    ) -> Result<crate::policy::Plan, crate::ConfigError> {
        plan.idempotent(self)
    }
}
