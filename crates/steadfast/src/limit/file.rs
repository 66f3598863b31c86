//! The policy-file forms of the bulkhead and the rate limiter.
//!
//! ```toml
//! bulkhead = { max_concurrent = 32, max_queue = 64, queue_timeout = "1s" }
//! rate_limit = { rate = 100, per = "1s", burst = 20, max_wait = "250ms", shared = "search-api" }
//! ```

use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::{BulkheadOptions, RateLimitOptions};
use crate::policy::Scoped;

/// A bulkhead: at most `max_concurrent` calls at once.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[cfg_attr(feature = "schema", schemars(rename = "Bulkhead"))]
#[serde(deny_unknown_fields)]
struct BulkheadFile {
    /// Calls at once (>= 1).
    max_concurrent: u32,
    /// Calls that may wait for a place. Default 0 (a full bulkhead refuses at once).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    max_queue: Option<u32>,
    /// How long a call may wait for a place. Default: as long as the caller waits.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        with = "crate::config::duration::option"
    )]
    #[cfg_attr(
        feature = "schema",
        schemars(with = "Option<crate::retry::file::DurationText>")
    )]
    queue_timeout: Option<Duration>,
    /// Share the places with every key whose table names the same `shared` name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    shared: Option<String>,
}

/// A rate limiter (GCRA): `rate` calls per `per`, bursts of `burst`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[cfg_attr(feature = "schema", schemars(rename = "RateLimit"))]
#[serde(deny_unknown_fields)]
struct RateLimitFile {
    /// Calls per `per` (>= 1).
    rate: u32,
    /// The period of `rate`. Default "1s".
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        with = "crate::config::duration::option"
    )]
    #[cfg_attr(
        feature = "schema",
        schemars(with = "Option<crate::retry::file::DurationText>")
    )]
    per: Option<Duration>,
    /// Calls that may come at once after a quiet spell. Default `rate`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    burst: Option<u32>,
    /// Make a call over the rate wait up to this long; without it, it is refused.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        with = "crate::config::duration::option"
    )]
    #[cfg_attr(
        feature = "schema",
        schemars(with = "Option<crate::retry::file::DurationText>")
    )]
    max_wait: Option<Duration>,
    /// Share the rate with every key whose table names the same `shared` name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    shared: Option<String>,
}

impl BulkheadFile {
    fn from_scoped(s: &Scoped<BulkheadOptions>) -> Self {
        BulkheadFile {
            max_concurrent: s.options.max_concurrent,
            max_queue: Some(s.options.max_queue),
            queue_timeout: s.options.queue_timeout,
            shared: s.shared.clone(),
        }
    }

    fn into_scoped(self) -> Result<Scoped<BulkheadOptions>, String> {
        Ok(Scoped {
            options: BulkheadOptions {
                max_concurrent: self.max_concurrent,
                max_queue: self.max_queue.unwrap_or(0),
                queue_timeout: self.queue_timeout,
            },
            shared: self.shared,
        })
    }
}

impl RateLimitFile {
    fn from_scoped(s: &Scoped<RateLimitOptions>) -> Self {
        RateLimitFile {
            rate: s.options.rate,
            per: Some(s.options.per),
            burst: Some(s.options.burst),
            max_wait: s.options.max_wait,
            shared: s.shared.clone(),
        }
    }

    fn into_scoped(self) -> Result<Scoped<RateLimitOptions>, String> {
        Ok(Scoped {
            options: RateLimitOptions {
                rate: self.rate,
                per: self.per.unwrap_or(Duration::from_secs(1)),
                burst: self.burst.unwrap_or(self.rate),
                max_wait: self.max_wait,
            },
            shared: self.shared,
        })
    }
}

// The bulkhead and rate-limit tables of a policy file.
crate::config::file_form!(
    Scoped<BulkheadOptions>,
    BulkheadFile,
    to = BulkheadFile::from_scoped,
    from = BulkheadFile::into_scoped
);
crate::config::file_form!(
    Scoped<RateLimitOptions>,
    RateLimitFile,
    to = RateLimitFile::from_scoped,
    from = RateLimitFile::into_scoped
);
