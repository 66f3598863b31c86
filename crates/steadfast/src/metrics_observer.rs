//! Metrics through the [`metrics`] facade (feature `metrics`): whatever recorder the
//! application installs (Prometheus, OpenTelemetry, StatsD…) receives them.

use crate::classify::Outcome;
use crate::key::Key;
use crate::observe::{AttemptEnd, DurableEvent, Event, Observer, RetryReason};

/// Records every call's attempts, retries and results as metrics.
///
/// | metric | kind | labels |
/// |---|---|---|
/// | `steadfast_attempts_total` | counter | `key`, `outcome` (`success`, `retryable`, `non_retryable`, `abort`, `cancelled`: a hedge race's loser) |
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

fn outcome_label(outcome: Outcome) -> &'static str {
    match outcome {
        Outcome::Success => "success",
        Outcome::Retryable { .. } => "retryable",
        Outcome::NonRetryable => "non_retryable",
        Outcome::Abort => "abort",
    }
}

impl Observer for MetricsObserver {
    fn on_event(&self, key: &Key, event: &Event) {
        let key = key.to_string();
        match *event {
            Event::AttemptFinished {
                outcome,
                duration,
                end,
                ..
            } => {
                let outcome = match end {
                    AttemptEnd::Cancelled => "cancelled",
                    _ => outcome_label(outcome),
                };
                metrics::counter!("steadfast_attempts_total", "key" => key.clone(), "outcome" => outcome)
                    .increment(1);
                metrics::histogram!("steadfast_attempt_duration_seconds", "key" => key)
                    .record(duration.as_secs_f64());
            }
            Event::RetryScheduled { reason, .. } => {
                let reason = match reason {
                    RetryReason::Backoff => "backoff",
                    RetryReason::ServerDelay => "server_delay",
                    RetryReason::ServerDelayCapped { .. } => "server_delay_capped",
                };
                metrics::counter!("steadfast_retries_total", "key" => key, "reason" => reason)
                    .increment(1);
            }
            Event::CallFinished {
                ok,
                stop,
                timeout,
                duration,
                ..
            } => {
                let result = match (ok, timeout) {
                    (true, _) => "ok",
                    (false, Some(_)) => "timeout",
                    (false, None) => "error",
                };
                let stop = stop.map_or("none", |s| s.as_str());
                metrics::counter!(
                    "steadfast_calls_total",
                    "key" => key.clone(),
                    "result" => result,
                    "stop" => stop
                )
                .increment(1);
                metrics::histogram!("steadfast_call_duration_seconds", "key" => key)
                    .record(duration.as_secs_f64());
            }
            Event::Rejected { by, .. } => {
                metrics::counter!("steadfast_rejections_total", "key" => key, "by" => by.as_str())
                    .increment(1);
            }
            Event::BreakerChanged { from, to } => {
                metrics::counter!(
                    "steadfast_breaker_transitions_total",
                    "key" => key,
                    "from" => from.as_str(),
                    "to" => to.as_str()
                )
                .increment(1);
            }
            Event::FallbackUsed => {
                metrics::counter!("steadfast_fallbacks_total", "key" => key).increment(1);
            }
            Event::HedgeLaunched { .. } => {
                metrics::counter!("steadfast_hedges_total", "key" => key).increment(1);
            }
            Event::BudgetExhausted { hedge, .. } => {
                let refused = if hedge { "hedge" } else { "retry" };
                metrics::counter!("steadfast_budget_refusals_total", "key" => key, "refused" => refused)
                    .increment(1);
            }
            _ => {}
        }
    }

    fn on_durable_event(&self, event: &DurableEvent<'_>) {
        match *event {
            DurableEvent::GateDecided {
                target_type,
                allowed,
                reason,
            } => metrics::counter!(
                "steadfast_gate_decisions_total",
                "target_type" => target_type.to_owned(),
                "allowed" => if allowed { "true" } else { "false" },
                "reason" => reason.as_str()
            )
            .increment(1),
            DurableEvent::Delivered { topic, .. } => {
                metrics::counter!("steadfast_queue_deliveries_total", "topic" => topic.to_owned())
                    .increment(1);
            }
            DurableEvent::Acked { topic, count } => {
                metrics::counter!("steadfast_queue_acks_total", "topic" => topic.to_owned())
                    .increment(count);
            }
            DurableEvent::Retried { topic, .. } => {
                metrics::counter!("steadfast_queue_retries_total", "topic" => topic.to_owned())
                    .increment(1);
            }
            DurableEvent::DeadLettered {
                topic,
                count,
                reason,
            } => metrics::counter!(
                "steadfast_queue_dead_letters_total",
                "topic" => topic.to_owned(),
                "reason" => reason
            )
            .increment(count),
            DurableEvent::LeaseLost { topic } => {
                metrics::counter!("steadfast_queue_leases_lost_total", "topic" => topic.to_owned())
                    .increment(1);
            }
            DurableEvent::Redriven { count } => {
                metrics::counter!("steadfast_queue_redrives_total").increment(count);
            }
            DurableEvent::QueueDepth {
                topic,
                ready,
                scheduled,
                leased,
                dead,
                oldest,
            } => {
                for (state, n) in [
                    ("ready", ready),
                    ("scheduled", scheduled),
                    ("leased", leased),
                    ("dead", dead),
                ] {
                    metrics::gauge!("steadfast_queue_messages", "topic" => topic.to_owned(), "state" => state)
                        .set(n as f64);
                }
                metrics::gauge!("steadfast_queue_oldest_age_seconds", "topic" => topic.to_owned())
                    .set(oldest.map_or(0.0, |d| d.as_secs_f64()));
            }
        }
    }
}
