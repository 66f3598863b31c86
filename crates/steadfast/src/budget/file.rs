//! The policy-file form of a retry budget: one flat table, its `kind` first.
//!
//! ```toml
//! budget = { kind = "ratio", percent_can_retry = 0.2, ttl = "10s", min_retries_per_sec = 10, shared = "search" }
//! budget = { kind = "token_bucket", max_tokens = 10, token_ratio = 0.1 }
//! budget = { kind = "quota", capacity = 500, retry_cost = 5, timeout_cost = 10 }
//! budget = { kind = "concurrency", min = 3, percent = 0.2 }
//! budget = { kind = "adaptive", k = 2.0, window = "2m" }
//! ```

use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::BudgetOptions;
use crate::policy::Scoped;

/// Which budget, by name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[cfg_attr(feature = "schema", schemars(rename = "BudgetKind"))]
#[serde(rename_all = "snake_case")]
enum KindName {
    /// gRPC `retryThrottling`: a failure costs a token, a success earns `token_ratio`.
    TokenBucket,
    /// Finagle and tower: retries ≤ `percent_can_retry` of calls over `ttl`, plus a reserve.
    Ratio,
    /// AWS SDKs' standard mode: retries cost from a quota that successes refund.
    Quota,
    /// Envoy: retries in flight ≤ max(`min`, `percent` × calls in flight).
    Concurrency,
    /// Google SRE client-side throttling: refuses calls, first attempts included.
    Adaptive,
}

/// A retry budget: retries and hedges spend from it, never blocking. `kind` is required; the
/// other fields apply to the kinds they name.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[cfg_attr(feature = "schema", schemars(rename = "Budget"))]
#[serde(deny_unknown_fields)]
struct BudgetFile {
    /// Which budget.
    kind: KindName,
    /// token_bucket: the bucket's size. Default 10.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    max_tokens: Option<f64>,
    /// token_bucket: tokens a success earns. Default 0.1.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    token_ratio: Option<f64>,
    /// ratio: the share of calls that may be retried, as a fraction (0.2 is 20 %). Default 0.2.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    percent_can_retry: Option<f64>,
    /// ratio: how long a call counts. Default "10s".
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
    /// ratio: retries a second allowed whatever the traffic. Default 10.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    min_retries_per_sec: Option<u32>,
    /// quota: the quota. Default 500.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    capacity: Option<u32>,
    /// quota: what a retry after a failure costs. Default 5.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    retry_cost: Option<u32>,
    /// quota: what a retry after a timeout costs. Default 10.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    timeout_cost: Option<u32>,
    /// concurrency: retries in flight always allowed. Default 3.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    min: Option<u32>,
    /// concurrency: retries in flight as a fraction of calls in flight. Default 0.2.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    percent: Option<f64>,
    /// adaptive: accepts are multiplied by `k` before they offset requests. Default 2.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    k: Option<f64>,
    /// adaptive: the span requests and accepts are counted over. Default "2m".
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
    /// Share this budget with every key whose table names the same `shared` name; without
    /// it each key has its own.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    shared: Option<String>,
}

impl KindName {
    fn name(self) -> &'static str {
        match self {
            KindName::TokenBucket => "token_bucket",
            KindName::Ratio => "ratio",
            KindName::Quota => "quota",
            KindName::Concurrency => "concurrency",
            KindName::Adaptive => "adaptive",
        }
    }
}

impl BudgetFile {
    fn blank(kind: KindName, shared: Option<String>) -> Self {
        BudgetFile {
            kind,
            max_tokens: None,
            token_ratio: None,
            percent_can_retry: None,
            ttl: None,
            min_retries_per_sec: None,
            capacity: None,
            retry_cost: None,
            timeout_cost: None,
            min: None,
            percent: None,
            k: None,
            window: None,
            shared,
        }
    }

    fn into_scoped(self) -> Result<Scoped<BudgetOptions>, String> {
        use KindName::*;
        let given = [
            ("max_tokens", self.max_tokens.is_some(), TokenBucket),
            ("token_ratio", self.token_ratio.is_some(), TokenBucket),
            ("percent_can_retry", self.percent_can_retry.is_some(), Ratio),
            ("ttl", self.ttl.is_some(), Ratio),
            (
                "min_retries_per_sec",
                self.min_retries_per_sec.is_some(),
                Ratio,
            ),
            ("capacity", self.capacity.is_some(), Quota),
            ("retry_cost", self.retry_cost.is_some(), Quota),
            ("timeout_cost", self.timeout_cost.is_some(), Quota),
            ("min", self.min.is_some(), Concurrency),
            ("percent", self.percent.is_some(), Concurrency),
            ("k", self.k.is_some(), Adaptive),
            ("window", self.window.is_some(), Adaptive),
        ];
        if let Some((field, _, owner)) = given
            .iter()
            .find(|(_, given, owner)| *given && *owner != self.kind)
        {
            return Err(format!("{field}: only {} budgets have it", owner.name()));
        }
        let options = match self.kind {
            TokenBucket => BudgetOptions::token_bucket(
                self.max_tokens.unwrap_or(10.0),
                self.token_ratio.unwrap_or(0.1),
            ),
            Ratio => BudgetOptions::ratio(
                self.percent_can_retry.unwrap_or(0.2),
                self.ttl.unwrap_or(Duration::from_secs(10)),
                self.min_retries_per_sec.unwrap_or(10),
            ),
            Quota => BudgetOptions::quota(
                self.capacity.unwrap_or(500),
                self.retry_cost.unwrap_or(5),
                self.timeout_cost.unwrap_or(10),
            ),
            Concurrency => {
                BudgetOptions::concurrency(self.min.unwrap_or(3), self.percent.unwrap_or(0.2))
            }
            Adaptive => BudgetOptions::Adaptive {
                k: self.k.unwrap_or(2.0),
                window: self.window.unwrap_or(Duration::from_secs(120)),
                seed: None,
            },
        };
        Ok(Scoped {
            options,
            shared: self.shared,
        })
    }

    fn from_scoped(s: &Scoped<BudgetOptions>) -> Self {
        let shared = s.shared.clone();
        match s.options {
            BudgetOptions::TokenBucket {
                max_tokens,
                token_ratio,
            } => BudgetFile {
                max_tokens: Some(max_tokens),
                token_ratio: Some(token_ratio),
                ..Self::blank(KindName::TokenBucket, shared)
            },
            BudgetOptions::Ratio {
                percent_can_retry,
                ttl,
                min_retries_per_sec,
            } => BudgetFile {
                percent_can_retry: Some(percent_can_retry),
                ttl: Some(ttl),
                min_retries_per_sec: Some(min_retries_per_sec),
                ..Self::blank(KindName::Ratio, shared)
            },
            BudgetOptions::Quota {
                capacity,
                retry_cost,
                timeout_cost,
            } => BudgetFile {
                capacity: Some(capacity),
                retry_cost: Some(retry_cost),
                timeout_cost: Some(timeout_cost),
                ..Self::blank(KindName::Quota, shared)
            },
            BudgetOptions::Concurrency { min, percent } => BudgetFile {
                min: Some(min),
                percent: Some(percent),
                ..Self::blank(KindName::Concurrency, shared)
            },
            BudgetOptions::Adaptive { k, window, .. } => BudgetFile {
                k: Some(k),
                window: Some(window),
                ..Self::blank(KindName::Adaptive, shared)
            },
        }
    }
}

// A budget table of a policy file (see the [`budget`](crate::budget) module for the kinds).
crate::config::file_form!(
    Scoped<BudgetOptions>,
    BudgetFile,
    to = BudgetFile::from_scoped,
    from = BudgetFile::into_scoped
);
