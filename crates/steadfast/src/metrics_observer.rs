//! Metrics through the [`metrics`] facade (feature `metrics`): whatever recorder the
//! application installs (Prometheus, OpenTelemetry, StatsD…) receives them.

use crate::key::Key;
use crate::measure::{self, Kind};
use crate::observe::{DurableEvent, Event, Observer};

/// Records every call's attempts, retries and results as metrics.
///
/// | metric | kind | labels |
/// |---|---|---|
/// | `steadfast_attempts_total` | counter | `key`, `outcome` (`success`, `retryable`, `non_retryable`, `abort`, `cancelled`: a hedge race's loser), `attempt` (`1` to `4`, then `5+`) |
/// | `steadfast_attempt_duration_seconds` | histogram | `key` |
/// | `steadfast_retries_total` | counter | `key`, `reason` (`backoff`, `server_delay`, `server_delay_capped`) |
/// | `steadfast_calls_total` | counter | `key`, `result` (`ok`, `error`, `timeout`: an `Ok` the classifier called a failure is an `error`), `stop` (`none` on success, else [`Stop::as_str`](crate::Stop::as_str)) |
/// | `steadfast_call_duration_seconds` | histogram | `key` |
/// | `steadfast_rejections_total` | counter | `key`, `by` (`breaker`, `bulkhead`, `rate_limiter`, `budget`) |
/// | `steadfast_breaker_transitions_total` | counter | `key`, `from`, `to` (`closed`, `open`, `half_open`, `isolated`) |
/// | `steadfast_fallbacks_total` | counter | `key` |
/// | `steadfast_hedges_total` | counter | `key` |
/// | `steadfast_budget_refusals_total` | counter | `key`, `refused` (`retry`, `hedge`) |
///
/// and for the durable parts (`steadfast-store`'s gate and queue `with_observer`):
///
/// | metric | kind | labels |
/// |---|---|---|
/// | `steadfast_gate_decisions_total` | counter | `target_type`, `allowed` (`true`, `false`), `reason` ([`Reason::as_str`](crate::gate::Reason::as_str)) |
/// | `steadfast_queue_deliveries_total` | counter | `topic` |
/// | `steadfast_queue_acks_total` | counter | `topic` |
/// | `steadfast_queue_retries_total` | counter | `topic` |
/// | `steadfast_queue_dead_letters_total` | counter | `topic`, `reason` (`not_retryable`, `exhausted`, `lease_expired`) |
/// | `steadfast_queue_leases_lost_total` | counter | `topic` |
/// | `steadfast_queue_redrives_total` | counter | |
/// | `steadfast_queue_messages` | gauge | `topic`, `state` (`ready`, `scheduled`, `leased`, `dead`) |
/// | `steadfast_queue_oldest_age_seconds` | gauge | `topic` |
///
/// # Example
/// ```
/// use steadfast::observe::MetricsObserver;
/// use steadfast::Executor;
///
/// // Install a recorder first (e.g. metrics-exporter-prometheus), then:
/// let executor = Executor::builder().observer(MetricsObserver::new()).build();
/// # let _ = executor;
/// ```
#[derive(Debug, Clone, Copy, Default)]
#[non_exhaustive]
pub struct MetricsObserver;

impl MetricsObserver {
    /// An observer recording to the global `metrics` recorder.
    pub fn new() -> Self {
        MetricsObserver
    }
}

impl MetricsObserver {
    /// Sets the gauges of `executor`'s keys' strategies now: call it where metrics are
    /// gathered (before a Prometheus scrape renders, or on an interval).
    ///
    /// | metric | labels |
    /// |---|---|
    /// | `steadfast_breaker_state` | `key`, `state` (1 for the current state, 0 for the others) |
    /// | `steadfast_bulkhead_in_flight`, `steadfast_bulkhead_queued` | `key` |
    /// | `steadfast_rate_limiter_available` | `key` |
    /// | `steadfast_budget_tokens` (token bucket, ratio, quota), `steadfast_throttle_reject_probability` (adaptive) | `key` |
    ///
    /// ```
    /// use steadfast::observe::MetricsObserver;
    /// use steadfast::Executor;
    ///
    /// let executor = Executor::builder().observer(MetricsObserver::new()).build();
    /// MetricsObserver::record_states(&executor);
    /// ```
    pub fn record_states(executor: &crate::Executor) {
        record(measure::states(&executor.states()));
    }
}

fn record(measures: Vec<measure::Measure>) {
    for m in measures {
        let labels: Vec<metrics::Label> = m
            .labels
            .into_iter()
            .map(|(k, v)| metrics::Label::new(k, v))
            .collect();
        let name = m.instrument.metrics;
        match m.instrument.kind {
            Kind::Counter => metrics::counter!(name, labels).increment(m.value as u64),
            Kind::Histogram => metrics::histogram!(name, labels).record(m.value),
            Kind::Gauge => metrics::gauge!(name, labels).set(m.value),
        }
    }
}

impl Observer for MetricsObserver {
    fn on_event(&self, key: &Key, event: &Event) {
        record(measure::event(key, event));
    }

    fn on_durable_event(&self, event: &DurableEvent<'_>) {
        record(measure::durable(event));
    }
}
