//! steadfast's metrics in Prometheus' text format, through `metrics-exporter-prometheus`.

use std::time::Duration;

use metrics_exporter_prometheus::PrometheusBuilder;
use steadfast::breaker::BreakerOptions;
use steadfast::observe::MetricsObserver;
use steadfast::policy::{Plan, Policies};
use steadfast::{Executor, Jitter, Retry};

/// Runs a few calls (one flaky key, one failing key behind a breaker) on a runtime of its
/// own with the metrics observer recording into a Prometheus recorder, sets the gauges of
/// the keys' strategies as a scrape would, and returns the text the scrape reads. Call it
/// outside any runtime.
pub fn scrape_after_some_calls() -> String {
    let recorder = PrometheusBuilder::new().build_recorder();
    let handle = recorder.handle();
    let policy = Retry::fixed(Duration::from_millis(5))
        .jitter(Jitter::None)
        .max_attempts(3)
        .build()
        .unwrap_or_default();
    let breaker = Plan::new(policy.clone())
        .breaker(BreakerOptions::default())
        .unwrap_or_else(|_| Plan::new(policy.clone()));
    let policies = Policies::new(policy.clone());
    let policies = policies
        .clone()
        .with_plan("payments.Refund", breaker)
        .unwrap_or(policies);
    let executor = Executor::builder()
        .policies(policies)
        .observer(MetricsObserver::new())
        .build();
    let calls = async {
        let mut tries = 0;
        let _ = executor
            .run("payments.Charge", || {
                tries += 1;
                let t = tries;
                async move { if t < 2 { Err("busy") } else { Ok(t) } }
            })
            .await;
        let _ = executor
            .run("payments.Refund", || async { Err::<(), _>("down") })
            .await;
    };
    // Recorded into this recorder only, whatever the process-wide one is; the calls run to
    // completion on a runtime of their own, on this thread.
    metrics::with_local_recorder(&recorder, || {
        tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .expect("a tokio runtime")
            .block_on(calls);
        // Gauges are read when metrics are gathered.
        MetricsObserver::record_states(&executor);
    });
    handle.render()
}
