//! The policy-file form of [`RetryOptions`]: one flat table, as operators write it.
//!
//! ```toml
//! retry = { max_attempts = 5, backoff = "decorrelated", base = "200ms", max = "30s" }
//! ```
//!
//! [`RetryFile`] is the one place the field names, their types and the JSON Schema come from;
//! `RetryOptions`' serde implementations go through it.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::backoff::{BackoffKind, BackoffOptions, Jitter};
use crate::retry::RetryOptions;

/// Which schedule, by name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "lowercase")]
pub(crate) enum BackoffName {
    /// No wait between attempts.
    Immediate,
    /// `base` every time.
    Fixed,
    /// `base × n`.
    Linear,
    /// `base × factor^(n−1)`.
    Exponential,
    /// `base × fib(n)`.
    Fibonacci,
    /// `min(max, uniform(base, prev × 3))`.
    Decorrelated,
}

/// A retry policy: attempts, backoff, timeouts. Every field is optional; an absent one takes
/// the library's default.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[cfg_attr(feature = "schema", schemars(rename = "Retry"))]
#[serde(deny_unknown_fields)]
pub(crate) struct RetryFile {
    /// Attempts in total, the first included (>= 1). Default 3. Not with `max_retries`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    max_attempts: Option<u32>,
    /// Retries after the first attempt; negative means unbounded (bounded by `total_timeout`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    max_retries: Option<i64>,
    /// The delay schedule. Default "exponential".
    #[serde(default, skip_serializing_if = "Option::is_none")]
    backoff: Option<BackoffName>,
    /// The first delay, e.g. "100ms" (the default).
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        with = "crate::config::duration::option"
    )]
    #[cfg_attr(feature = "schema", schemars(with = "Option<DurationText>"))]
    base: Option<Duration>,
    /// The cap on every delay. Default "10s".
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        with = "crate::config::duration::option"
    )]
    #[cfg_attr(feature = "schema", schemars(with = "Option<DurationText>"))]
    max: Option<Duration>,
    /// Growth factor of exponential backoff (> 1). Default 2.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    factor: Option<f64>,
    /// Randomness added to each delay. Default "full" ("none" for decorrelated).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    jitter: Option<Jitter>,
    /// Time limit of each attempt. Default none.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        with = "crate::config::duration::option"
    )]
    #[cfg_attr(feature = "schema", schemars(with = "Option<DurationText>"))]
    attempt_timeout: Option<Duration>,
    /// Time limit of the whole call, every attempt and wait included. Default none.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        with = "crate::config::duration::option"
    )]
    #[cfg_attr(feature = "schema", schemars(with = "Option<DurationText>"))]
    total_timeout: Option<Duration>,
    /// The longest server-given delay (Retry-After, pushback) to wait; longer stops (or is cut
    /// to this with `cap_server_delay`). Default "5m".
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        with = "crate::config::duration::option"
    )]
    #[cfg_attr(feature = "schema", schemars(with = "Option<DurationText>"))]
    max_server_delay: Option<Duration>,
    /// Whether a server delay over `max_server_delay` is cut to it (true) or ends the call
    /// (false). Default false.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    cap_server_delay: Option<bool>,
    /// Whether an attempt that timed out may be retried. Default true.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    retry_on_timeout: Option<bool>,
    /// Seed of the jitter's random source (tests, simulations). Default none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    seed: Option<u64>,
}

/// A duration as policy files write it (the schema's name for it).
#[cfg(feature = "schema")]
pub(crate) struct DurationText;

#[cfg(feature = "schema")]
impl schemars::JsonSchema for DurationText {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "Duration".into()
    }

    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({
            "type": "string",
            "description": "A duration: one or more <number><unit> parts, the unit one of ns, us, ms, s, m, h; e.g. \"250ms\", \"1.5s\", \"1m30s\".",
            "pattern": r"^(([0-9]+(\.[0-9]*)?|\.[0-9]+)(ns|us|µs|ms|s|m|h))+$",
            "examples": ["250ms", "1.5s", "1m30s"]
        })
    }
}

impl RetryFile {
    /// The options this table describes; `Err` names a field that does not fit the backoff.
    fn into_options(self) -> Result<RetryOptions, String> {
        let mut backoff = backoff_options(self.backoff, self.base, self.max, self.factor)?;
        if let Some(jitter) = self.jitter {
            backoff = backoff.jitter(jitter);
        }
        let mut options = RetryOptions::default().backoff(backoff);
        options.max_attempts = self.max_attempts;
        options.max_retries = self.max_retries;
        options.attempt_timeout = self.attempt_timeout;
        options.total_timeout = self.total_timeout;
        if let Some(d) = self.max_server_delay {
            options.max_server_delay = d;
        }
        if let Some(cap) = self.cap_server_delay {
            options.cap_server_delay = cap;
        }
        if let Some(on) = self.retry_on_timeout {
            options.retry_on_timeout = on;
        }
        options.seed = self.seed;
        Ok(options)
    }

    /// Every field written out, so a file read back gives the same options.
    fn from_options(o: &RetryOptions) -> Result<RetryFile, &'static str> {
        let (backoff, factor) = backoff_name(&o.backoff.kind)?;
        let immediate = backoff == BackoffName::Immediate;
        Ok(RetryFile {
            max_attempts: o.max_attempts,
            max_retries: o.max_retries,
            backoff: Some(backoff),
            base: (!immediate).then_some(o.backoff.base),
            max: (!immediate).then_some(o.backoff.max),
            factor,
            jitter: (!immediate).then_some(o.backoff.jitter),
            attempt_timeout: o.attempt_timeout,
            total_timeout: o.total_timeout,
            max_server_delay: Some(o.max_server_delay),
            cap_server_delay: Some(o.cap_server_delay),
            retry_on_timeout: Some(o.retry_on_timeout),
            seed: o.seed,
        })
    }
}

/// The schedule a table's `backoff`, `base`, `max` and `factor` describe (exponential from
/// 100 ms by default); `Err` names a field that does not fit the schedule.
pub(crate) fn backoff_options(
    name: Option<BackoffName>,
    base: Option<Duration>,
    max: Option<Duration>,
    factor: Option<f64>,
) -> Result<BackoffOptions, String> {
    let name = name.unwrap_or(BackoffName::Exponential);
    let start = base.unwrap_or(crate::backoff::DEFAULT_BASE);
    let mut backoff = match name {
        BackoffName::Immediate => BackoffOptions::immediate(),
        BackoffName::Fixed => BackoffOptions::fixed(start),
        BackoffName::Linear => BackoffOptions::linear(start),
        BackoffName::Exponential => BackoffOptions::exponential(start),
        BackoffName::Fibonacci => BackoffOptions::fibonacci(start),
        BackoffName::Decorrelated => BackoffOptions::decorrelated(start),
    };
    if let Some(factor) = factor {
        if name != BackoffName::Exponential {
            return Err(format!(
                "factor: only exponential backoff has a factor, this one is {:?}",
                name_str(name)
            ));
        }
        backoff = backoff.factor(factor);
    }
    if let Some(base) = base {
        backoff = backoff.base(base);
    }
    if let Some(max) = max {
        backoff = backoff.max(max);
    }
    Ok(backoff)
}

/// A schedule's name and (exponential) factor as a table writes them.
pub(crate) fn backoff_name(kind: &BackoffKind) -> Result<(BackoffName, Option<f64>), &'static str> {
    Ok(match *kind {
        BackoffKind::Immediate => (BackoffName::Immediate, None),
        BackoffKind::Fixed => (BackoffName::Fixed, None),
        BackoffKind::Linear => (BackoffName::Linear, None),
        BackoffKind::Exponential { factor } => (BackoffName::Exponential, Some(factor)),
        BackoffKind::Fibonacci => (BackoffName::Fibonacci, None),
        BackoffKind::Decorrelated => (BackoffName::Decorrelated, None),
        BackoffKind::Custom(_) => {
            return Err("a custom delay function cannot be written to a policy file");
        }
    })
}

fn name_str(name: BackoffName) -> &'static str {
    match name {
        BackoffName::Immediate => "immediate",
        BackoffName::Fixed => "fixed",
        BackoffName::Linear => "linear",
        BackoffName::Exponential => "exponential",
        BackoffName::Fibonacci => "fibonacci",
        BackoffName::Decorrelated => "decorrelated",
    }
}

// A retry table of a policy file (see the [`policy`](crate::policy) module for the fields).
crate::config::file_form!(
    RetryOptions,
    RetryFile,
    try_to = RetryFile::from_options,
    from = RetryFile::into_options
);

impl crate::policy::TableField for RetryOptions {
    fn validate(&self) -> Result<(), crate::ConfigError> {
        RetryOptions::validate(self)
    }
    fn join(
        self,
        plan: crate::policy::Plan,
        _: &crate::chain::Registry,
    ) -> Result<crate::policy::Plan, crate::ConfigError> {
        Ok(plan.with_retry(self.build()?))
    }
}
