//! The policy-file form of a breaker: one flat table.
//!
//! ```toml
//! breaker = { kind = "failure_rate", threshold = 0.5, window = "10s", min_calls = 20, break = "5s" }
//! breaker = { kind = "consecutive", failure_threshold = 5, break = "30s", shared = "payments-db" }
//! ```

use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::{BreakerKind, BreakerOptions, Failures, SlowCalls, Window};
use crate::policy::Scoped;

/// When the breaker opens, by name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "snake_case")]
enum KindName {
    /// After `failure_threshold` failures in a row.
    Consecutive,
    /// When the failure (or slow-call) rate over the window reaches `threshold`.
    FailureRate,
    /// After N failures in a row, N between `base` and `max` by the recent error rate.
    Adaptive,
    /// Never.
    None,
}

/// Outcomes a breaker may count as failures.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "snake_case")]
enum Counted {
    Retryable,
    NonRetryable,
    Abort,
    Timeout,
}

/// A circuit breaker. Every field is optional; `kind` defaults to "consecutive".
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[cfg_attr(feature = "schema", schemars(rename = "Breaker"))]
#[serde(deny_unknown_fields)]
pub(crate) struct BreakerFile {
    /// When it opens. Default "consecutive".
    #[serde(default, skip_serializing_if = "Option::is_none")]
    kind: Option<KindName>,
    /// consecutive: failures in a row that open it (>= 1). Default 5.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    failure_threshold: Option<u32>,
    /// failure_rate: the failure rate that opens it, in (0, 1]. Default 0.5.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    threshold: Option<f64>,
    /// failure_rate: the rate over the calls of this last span (e.g. "10s"); adaptive: the
    /// span of the error rate. Not with `window_calls`.
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
    /// failure_rate: the rate over the last N calls. Default 100 (when `window` is not given).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    window_calls: Option<u32>,
    /// failure_rate with a `window` span: slices it is counted in. Default 10.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    buckets: Option<u32>,
    /// failure_rate: calls the window must hold before it may open. Default 100.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    min_calls: Option<u32>,
    /// failure_rate: attempts this long or longer count as slow.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        with = "crate::config::duration::option"
    )]
    #[cfg_attr(
        feature = "schema",
        schemars(with = "Option<crate::retry::file::DurationText>")
    )]
    slow_call_duration: Option<Duration>,
    /// failure_rate: the slow-call rate that opens it, in (0, 1]. Default 1.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    slow_call_threshold: Option<f64>,
    /// adaptive: the strictest threshold. Default 5.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    base: Option<u32>,
    /// adaptive: the most tolerant threshold. Default 20.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    max: Option<u32>,
    /// How long it stays open before probing. Default "30s".
    #[serde(
        default,
        rename = "break",
        skip_serializing_if = "Option::is_none",
        with = "crate::config::duration::option"
    )]
    #[cfg_attr(
        feature = "schema",
        schemars(with = "Option<crate::retry::file::DurationText>")
    )]
    break_duration: Option<Duration>,
    /// When given, each open in a row doubles the break, up to this.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        with = "crate::config::duration::option"
    )]
    #[cfg_attr(
        feature = "schema",
        schemars(with = "Option<crate::retry::file::DurationText>")
    )]
    max_break: Option<Duration>,
    /// Probes let through while half-open. Default 1.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    half_open_calls: Option<u32>,
    /// How long a probe may run before its slot goes to another call. Default "60s".
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        with = "crate::config::duration::option"
    )]
    #[cfg_attr(
        feature = "schema",
        schemars(with = "Option<crate::retry::file::DurationText>")
    )]
    probe_timeout: Option<Duration>,
    /// Outcomes counted as failures. Default ["retryable", "abort", "timeout"].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    count: Option<Vec<Counted>>,
    /// Share this breaker's state with every key whose table names the same `shared` name;
    /// without it each key has its own.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    shared: Option<String>,
}

impl BreakerFile {
    fn into_scoped(self) -> Result<Scoped<BreakerOptions>, String> {
        let kind = self.kind.unwrap_or(KindName::Consecutive);
        let only = |field: &str, given: bool, kinds: &str| -> Result<(), String> {
            if given {
                Err(format!("{field}: only {kinds} breakers have it"))
            } else {
                Ok(())
            }
        };
        let not_rate = kind != KindName::FailureRate;
        only(
            "failure_threshold",
            self.failure_threshold.is_some() && kind != KindName::Consecutive,
            "consecutive",
        )?;
        for (field, given) in [
            ("threshold", self.threshold.is_some()),
            ("window_calls", self.window_calls.is_some()),
            ("buckets", self.buckets.is_some()),
            ("min_calls", self.min_calls.is_some()),
            ("slow_call_duration", self.slow_call_duration.is_some()),
            ("slow_call_threshold", self.slow_call_threshold.is_some()),
        ] {
            only(field, given && not_rate, "failure_rate")?;
        }
        for (field, given) in [("base", self.base.is_some()), ("max", self.max.is_some())] {
            only(field, given && kind != KindName::Adaptive, "adaptive")?;
        }
        only(
            "window",
            self.window.is_some() && !matches!(kind, KindName::FailureRate | KindName::Adaptive),
            "failure_rate and adaptive",
        )?;
        if self.window.is_some() && self.window_calls.is_some() {
            return Err("window_calls: cannot be given together with window".into());
        }
        if self.slow_call_threshold.is_some() && self.slow_call_duration.is_none() {
            return Err("slow_call_threshold: needs slow_call_duration".into());
        }
        let mut o = match kind {
            KindName::Consecutive => BreakerOptions::consecutive(
                self.failure_threshold.unwrap_or(super::DEFAULT_THRESHOLD),
            ),
            KindName::None => BreakerOptions::no_op(),
            KindName::Adaptive => {
                let mut o =
                    BreakerOptions::adaptive(self.base.unwrap_or(5), self.max.unwrap_or(20));
                if let Some(length) = self.window {
                    o = o.window(Window::Time {
                        length,
                        buckets: 10,
                    });
                }
                o
            }
            KindName::FailureRate => {
                let window = match (self.window, self.window_calls) {
                    (Some(length), _) => Window::Time {
                        length,
                        buckets: self.buckets.unwrap_or(10),
                    },
                    (None, n) => {
                        if self.buckets.is_some() {
                            return Err("buckets: only a time window (`window`) has buckets".into());
                        }
                        Window::Calls(n.unwrap_or(100))
                    }
                };
                let mut o = BreakerOptions::failure_rate(self.threshold.unwrap_or(0.5))
                    .window(window)
                    .min_calls(self.min_calls.unwrap_or(100));
                if let Some(duration) = self.slow_call_duration {
                    o = o.slow_calls(duration, self.slow_call_threshold.unwrap_or(1.0));
                }
                o
            }
        };
        if let Some(d) = self.break_duration {
            o.break_duration = d;
        }
        o.max_break_duration = self.max_break;
        if let Some(n) = self.half_open_calls {
            o.half_open_calls = n;
        }
        if let Some(d) = self.probe_timeout {
            o.probe_timeout = d;
        }
        if let Some(count) = self.count {
            o.failures = Failures {
                retryable: count.contains(&Counted::Retryable),
                non_retryable: count.contains(&Counted::NonRetryable),
                abort: count.contains(&Counted::Abort),
                timeout: count.contains(&Counted::Timeout),
            };
        }
        Ok(Scoped {
            options: o,
            shared: self.shared,
        })
    }

    fn from_scoped(s: &Scoped<BreakerOptions>) -> BreakerFile {
        let o = &s.options;
        let mut f = BreakerFile {
            break_duration: Some(o.break_duration),
            max_break: o.max_break_duration,
            half_open_calls: Some(o.half_open_calls),
            probe_timeout: Some(o.probe_timeout),
            shared: s.shared.clone(),
            ..BreakerFile::default()
        };
        let c = o.failures;
        f.count = Some(
            [
                (c.retryable, Counted::Retryable),
                (c.non_retryable, Counted::NonRetryable),
                (c.abort, Counted::Abort),
                (c.timeout, Counted::Timeout),
            ]
            .into_iter()
            .filter_map(|(on, name)| on.then_some(name))
            .collect(),
        );
        match &o.kind {
            BreakerKind::NoOp => f.kind = Some(KindName::None),
            BreakerKind::Consecutive { threshold } => {
                f.kind = Some(KindName::Consecutive);
                f.failure_threshold = Some(*threshold);
            }
            BreakerKind::Adaptive { base, max, window } => {
                f.kind = Some(KindName::Adaptive);
                f.base = Some(*base);
                f.max = Some(*max);
                f.window = Some(*window);
            }
            BreakerKind::FailureRate {
                threshold,
                window,
                min_calls,
                slow,
            } => {
                f.kind = Some(KindName::FailureRate);
                f.threshold = Some(*threshold);
                match *window {
                    Window::Calls(n) => f.window_calls = Some(n),
                    Window::Time { length, buckets } => {
                        f.window = Some(length);
                        f.buckets = Some(buckets);
                    }
                }
                f.min_calls = Some(*min_calls);
                if let Some(SlowCalls {
                    duration,
                    threshold,
                }) = slow
                {
                    f.slow_call_duration = Some(*duration);
                    f.slow_call_threshold = Some(*threshold);
                }
            }
        }
        f
    }
}

// A breaker table of a policy file (see the [`policy`](crate::policy) module for the fields).
crate::config::file_form!(
    Scoped<BreakerOptions>,
    BreakerFile,
    to = BreakerFile::from_scoped,
    from = BreakerFile::into_scoped
);
