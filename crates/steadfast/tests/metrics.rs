//! The metrics observer, read back through a debugging recorder with exact counts.

use std::time::Duration;

use metrics_util::MetricKind;
use metrics_util::debugging::{DebugValue, DebuggingRecorder};
use steadfast::observe::MetricsObserver;
use steadfast::policy::Policies;
use steadfast::{Executor, Jitter, Retry};

/// A metric's value (or sample count), named with its labels: `name{key=a.B,result=ok}`.
type Named<T> = (String, T);

/// Runs `calls` on a paused clock with a debugging recorder installed, and returns the
/// counters and histograms (with their sample counts) recorded, named with their labels and
/// sorted.
fn recorded<F: std::future::Future>(calls: F) -> (Vec<Named<u64>>, Vec<Named<usize>>) {
    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .start_paused(true)
        .build()
        .unwrap();
    metrics::with_local_recorder(&recorder, || rt.block_on(calls));
    let mut counters = Vec::new();
    let mut histograms = Vec::new();
    for (key, _, _, value) in snapshotter.snapshot().into_vec() {
        let labels: Vec<String> = key
            .key()
            .labels()
            .map(|l| format!("{}={}", l.key(), l.value()))
            .collect();
        let name = format!("{}{{{}}}", key.key().name(), labels.join(","));
        match (key.kind(), value) {
            (MetricKind::Counter, DebugValue::Counter(c)) => counters.push((name, c)),
            (MetricKind::Histogram, DebugValue::Histogram(h)) => histograms.push((name, h.len())),
            _ => {}
        }
    }
    counters.sort();
    histograms.sort();
    (counters, histograms)
}

#[test]
fn counts_are_exact() {
    let (counters, histograms) = recorded(async {
        let policy = Retry::fixed(Duration::from_millis(10))
            .jitter(Jitter::None)
            .max_attempts(3)
            .build()
            .unwrap();
        let executor = Executor::builder()
            .policies(Policies::new(policy))
            .observer(MetricsObserver::new())
            .build();
        let mut n = 0;
        // Fails twice, then succeeds: 3 attempts, 2 retries, 1 call ok.
        executor
            .run("svc.Flaky", || {
                n += 1;
                let t = n;
                async move { if t < 3 { Err("busy") } else { Ok(t) } }
            })
            .await
            .unwrap();
        // Always fails: 3 attempts, 2 retries, 1 call error.
        let _ = executor
            .run("svc.Down", || async { Err::<(), _>("down") })
            .await;
    });
    assert_eq!(
        counters,
        [
            (
                "steadfast_attempts_total{key=svc.Down,outcome=retryable,attempt=1}".to_string(),
                1
            ),
            (
                "steadfast_attempts_total{key=svc.Down,outcome=retryable,attempt=2}".to_string(),
                1
            ),
            (
                "steadfast_attempts_total{key=svc.Down,outcome=retryable,attempt=3}".to_string(),
                1
            ),
            (
                "steadfast_attempts_total{key=svc.Flaky,outcome=retryable,attempt=1}".to_string(),
                1
            ),
            (
                "steadfast_attempts_total{key=svc.Flaky,outcome=retryable,attempt=2}".to_string(),
                1
            ),
            (
                "steadfast_attempts_total{key=svc.Flaky,outcome=success,attempt=3}".to_string(),
                1
            ),
            (
                "steadfast_calls_total{key=svc.Down,result=error,stop=exhausted}".to_string(),
                1
            ),
            (
                "steadfast_calls_total{key=svc.Flaky,result=ok,stop=none}".to_string(),
                1
            ),
            (
                "steadfast_retries_total{key=svc.Down,reason=backoff}".to_string(),
                2
            ),
            (
                "steadfast_retries_total{key=svc.Flaky,reason=backoff}".to_string(),
                2
            ),
        ]
    );
    assert_eq!(
        histograms,
        [
            (
                "steadfast_attempt_duration_seconds{key=svc.Down}".to_string(),
                3
            ),
            (
                "steadfast_attempt_duration_seconds{key=svc.Flaky}".to_string(),
                3
            ),
            (
                "steadfast_call_duration_seconds{key=svc.Down}".to_string(),
                1
            ),
            (
                "steadfast_call_duration_seconds{key=svc.Flaky}".to_string(),
                1
            ),
        ]
    );
}

#[test]
fn rejections_breaker_transitions_and_fallbacks_are_counted() {
    use steadfast::breaker::BreakerOptions;
    use steadfast::fallback::{Fallback, On};
    use steadfast::policy::Plan;

    let (counters, _) = recorded(async {
        let plan = Plan::new(Retry::immediate().max_attempts(3).build().unwrap())
            .breaker(BreakerOptions::consecutive(2))
            .unwrap();
        let executor = Executor::builder()
            .policies(Policies::default().with_plan("db.*", plan).unwrap())
            .observer(MetricsObserver::new())
            .build();
        // Two failures open the breaker; the third attempt is refused, and so is the next
        // call, which a fallback answers.
        let _ = executor
            .run("db.Q", || async { Err::<u32, _>("down") })
            .await;
        let v = executor
            .call("db.Q", || async { Ok::<u32, &str>(1) })
            .fallback(Fallback::on(On::REJECTED).value(0))
            .run()
            .await;
        assert_eq!(v.unwrap(), 0);
    });
    let counters: Vec<_> = counters
        .into_iter()
        .filter(|(name, _)| {
            !name.starts_with("steadfast_attempts") && !name.starts_with("steadfast_calls")
        })
        .collect();
    assert_eq!(
        counters,
        [
            (
                "steadfast_breaker_transitions_total{key=db.Q,from=closed,to=open}".to_string(),
                1
            ),
            ("steadfast_fallbacks_total{key=db.Q}".to_string(), 1),
            (
                "steadfast_rejections_total{key=db.Q,by=breaker}".to_string(),
                2
            ),
            // Retries after attempts 1 and 2; the third attempt is the refused one.
            (
                "steadfast_retries_total{key=db.Q,reason=backoff}".to_string(),
                2
            ),
        ]
    );
}
