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

/// A bulkhead table of a policy file.
impl Serialize for Scoped<BulkheadOptions> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        BulkheadFile {
            max_concurrent: self.options.max_concurrent,
            max_queue: Some(self.options.max_queue),
            queue_timeout: self.options.queue_timeout,
            shared: self.shared.clone(),
        }
        .serialize(s)
    }
}

impl<'de> Deserialize<'de> for Scoped<BulkheadOptions> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let f = BulkheadFile::deserialize(d)?;
        Ok(Scoped {
            options: BulkheadOptions {
                max_concurrent: f.max_concurrent,
                max_queue: f.max_queue.unwrap_or(0),
                queue_timeout: f.queue_timeout,
            },
            shared: f.shared,
        })
    }
}

/// A rate-limit table of a policy file.
impl Serialize for Scoped<RateLimitOptions> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        RateLimitFile {
            rate: self.options.rate,
            per: Some(self.options.per),
            burst: Some(self.options.burst),
            max_wait: self.options.max_wait,
            shared: self.shared.clone(),
        }
        .serialize(s)
    }
}

impl<'de> Deserialize<'de> for Scoped<RateLimitOptions> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let f = RateLimitFile::deserialize(d)?;
        Ok(Scoped {
            options: RateLimitOptions {
                rate: f.rate,
                per: f.per.unwrap_or(Duration::from_secs(1)),
                burst: f.burst.unwrap_or(f.rate),
                max_wait: f.max_wait,
            },
            shared: f.shared,
        })
    }
}

#[cfg(feature = "schema")]
impl schemars::JsonSchema for Scoped<BulkheadOptions> {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        BulkheadFile::schema_name()
    }

    fn json_schema(generator: &mut schemars::SchemaGenerator) -> schemars::Schema {
        BulkheadFile::json_schema(generator)
    }
}

#[cfg(feature = "schema")]
impl schemars::JsonSchema for Scoped<RateLimitOptions> {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        RateLimitFile::schema_name()
    }

    fn json_schema(generator: &mut schemars::SchemaGenerator) -> schemars::Schema {
        RateLimitFile::json_schema(generator)
    }
}
