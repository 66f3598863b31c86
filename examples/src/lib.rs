//! Runnable examples for steadfast (see the `[[example]]` targets), and the pieces they share
//! with this crate's tests.

pub mod http;
pub mod prometheus;

/// The Prometheus page's example, compiled and run as a doctest.
#[cfg(doctest)]
#[doc = include_str!("../../docs/integrations/prometheus.md")]
struct PrometheusGuide;
