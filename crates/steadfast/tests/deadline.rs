//! Timeouts, deadlines and cancellation: no attempt starts after the deadline, no sleep crosses
//! it, and dropping the call stops everything.

mod support;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use proptest::prelude::*;
use steadfast::{ErrorKind, Jitter, Retry, Stop, TimeoutScope};
use support::{Attempts, always_down, ms, paused};
use tokio::time::{Instant, sleep};

#[tokio::test(start_paused = true)]
async fn the_deadline_stops_retries_that_would_cross_it() {
    let retry = Retry::exponential(ms(100))
        .jitter(Jitter::None)
        .unbounded()
        .total_timeout(ms(1000))
        .build()
        .unwrap();
    let start = Instant::now();
    let (rec, err) = always_down(&retry).await;
    // Attempts at 0, 100, 300, 700 ms; the next (after 800 ms) would start at 1500 > 1000.
    assert_eq!(rec.starts(), [0, 100, 300, 700].map(ms));
    assert_eq!(err.stop(), Some(Stop::Deadline));
    assert_eq!(
        start.elapsed(),
        ms(700),
        "fails now rather than sleep into the deadline"
    );
}

#[tokio::test(start_paused = true)]
async fn a_sleep_rounded_up_to_the_deadline_starts_no_attempt() {
    // 0 + 2.5 ms is before the 3 ms deadline, but tokio's timer wakes on whole milliseconds:
    // at 3 ms, the deadline itself. No attempt may start then.
    let retry = Retry::fixed(Duration::from_micros(2500))
        .jitter(Jitter::None)
        .unbounded()
        .total_timeout(ms(3))
        .build()
        .unwrap();
    let (rec, err) = always_down(&retry).await;
    assert_eq!(rec.count(), 1);
    assert!(matches!(
        err.into_kind(),
        ErrorKind::Operation {
            attempts: 1,
            stop: Stop::Deadline,
            source: "down",
            ..
        }
    ));
}

#[tokio::test(start_paused = true)]
async fn the_deadline_cuts_an_attempt_in_flight() {
    let retry = Retry::fixed(ms(100))
        .jitter(Jitter::None)
        .max_attempts(5)
        .total_timeout(ms(1000))
        .build()
        .unwrap();
    let rec = Attempts::new();
    let start = Instant::now();
    let err = retry
        .run(|| {
            let n = rec.record();
            async move {
                sleep(if n == 1 { ms(50) } else { ms(5000) }).await;
                Err::<(), _>("slow")
            }
        })
        .await
        .unwrap_err();
    assert_eq!(start.elapsed(), ms(1000));
    assert!(matches!(
        err.into_kind(),
        ErrorKind::Timeout {
            scope: TimeoutScope::Total,
            attempts: 2,
            ..
        }
    ));
}

#[tokio::test(start_paused = true)]
async fn attempt_timeouts_are_retried_then_reported() {
    let retry = Retry::fixed(ms(100))
        .jitter(Jitter::None)
        .max_attempts(3)
        .attempt_timeout(ms(250))
        .build()
        .unwrap();
    let rec = Attempts::new();
    let err = retry
        .run(|| {
            rec.record();
            async {
                sleep(Duration::from_secs(10)).await;
                Ok::<_, ()>(())
            }
        })
        .await
        .unwrap_err();
    assert_eq!(rec.starts(), [0, 350, 700].map(ms));
    assert!(matches!(
        err.into_kind(),
        ErrorKind::Timeout { scope: TimeoutScope::Attempt, attempts: 3, after, .. } if after == ms(250)
    ));

    // With retry_on_timeout off, the first timeout is final.
    let retry = Retry::fixed(ms(100))
        .attempt_timeout(ms(250))
        .retry_on_timeout(false)
        .build()
        .unwrap();
    let err = retry
        .run(|| async {
            sleep(Duration::from_secs(10)).await;
            Ok::<_, ()>(())
        })
        .await
        .unwrap_err();
    assert_eq!(err.attempts(), 1);
}

#[tokio::test(start_paused = true)]
async fn an_attempt_that_finishes_in_time_wins() {
    let retry = Retry::fixed(ms(100))
        .jitter(Jitter::None)
        .attempt_timeout(ms(250))
        .build()
        .unwrap();
    let rec = Attempts::new();
    let value = retry
        .run(|| {
            let n = rec.record();
            async move {
                sleep(if n == 1 { ms(300) } else { ms(200) }).await;
                Ok::<_, ()>(n)
            }
        })
        .await
        .unwrap();
    assert_eq!(value, 2);
    assert_eq!(rec.starts(), [0, 350].map(ms));
}

/// Counts futures alive, so a test can see that dropping the call dropped the attempt.
struct Alive(Arc<AtomicUsize>);
impl Alive {
    fn new(n: &Arc<AtomicUsize>) -> Self {
        n.fetch_add(1, Ordering::SeqCst);
        Alive(n.clone())
    }
}
impl Drop for Alive {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

#[tokio::test(start_paused = true)]
async fn dropping_the_call_mid_sleep_stops_everything() {
    let retry = Retry::fixed(ms(100))
        .jitter(Jitter::None)
        .unbounded()
        .build()
        .unwrap();
    let rec = Attempts::new();
    let call = retry.run(|| {
        rec.record();
        async { Err::<(), _>("down") }
    });
    // Attempts at 0, 100, 200, 300; at 350 the call is asleep when it is dropped.
    assert!(tokio::time::timeout(ms(350), call).await.is_err());
    assert_eq!(rec.count(), 4);
    sleep(Duration::from_secs(3600)).await;
    assert_eq!(rec.count(), 4, "no attempt after the drop");
}

#[tokio::test(start_paused = true)]
async fn dropping_the_call_mid_attempt_drops_the_attempt() {
    let alive = Arc::new(AtomicUsize::new(0));
    let retry = Retry::fixed(ms(100)).unbounded().build().unwrap();
    let handle = tokio::spawn({
        let alive = alive.clone();
        async move {
            retry
                .run(|| {
                    let guard = Alive::new(&alive);
                    async move {
                        let _guard = guard;
                        sleep(Duration::from_secs(60)).await;
                        Err::<(), _>("never")
                    }
                })
                .await
        }
    });
    sleep(ms(10)).await;
    assert_eq!(alive.load(Ordering::SeqCst), 1);
    handle.abort();
    let _ = handle.await;
    assert_eq!(
        alive.load(Ordering::SeqCst),
        0,
        "the attempt in flight was dropped"
    );
}

#[tokio::test(start_paused = true)]
async fn a_cancellation_signal_stops_the_call() {
    let retry = Retry::fixed(ms(100))
        .jitter(Jitter::None)
        .unbounded()
        .build()
        .unwrap();
    let rec = Attempts::new();
    let err = retry
        .call(|| {
            rec.record();
            async { Err::<(), _>("down") }
        })
        .run_until(sleep(ms(250)))
        .await
        .unwrap_err();
    assert!(matches!(
        err.kind(),
        ErrorKind::Cancelled { attempts: 3, .. }
    ));
    sleep(Duration::from_secs(10)).await;
    assert_eq!(rec.count(), 3);
}

#[derive(Debug, Clone)]
struct Case {
    base_ms: u64,
    max_ms: u64,
    jitter: u8,
    total_ms: u64,
    attempt_timeout_ms: Option<u64>,
    op_ms: Vec<u64>,
    seed: u64,
}

fn case() -> impl Strategy<Value = Case> {
    (
        1u64..500,
        0u64..5000,
        0u8..4,
        1u64..5000,
        proptest::option::of(1u64..1000),
        proptest::collection::vec(0u64..2000, 1..20),
        any::<u64>(),
    )
        .prop_map(
            |(base_ms, extra, jitter, total_ms, attempt_timeout_ms, op_ms, seed)| Case {
                base_ms,
                max_ms: base_ms + extra,
                jitter,
                total_ms,
                attempt_timeout_ms,
                op_ms,
                seed,
            },
        )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    /// For any policy and any operation latencies: no attempt starts at or after the deadline
    /// and the call returns by the deadline.
    #[test]
    fn no_attempt_starts_after_the_deadline(c in case()) {
        let jitter = [Jitter::None, Jitter::Full, Jitter::Equal, Jitter::Proportional(0.5)][c.jitter as usize];
        let mut options = Retry::exponential(ms(c.base_ms))
            .max_delay(ms(c.max_ms))
            .jitter(jitter)
            .unbounded()
            .total_timeout(ms(c.total_ms))
            .seed(c.seed);
        if let Some(t) = c.attempt_timeout_ms {
            options = options.attempt_timeout(ms(t));
        }
        let retry = options.build().unwrap();
        let (starts, elapsed, result) = paused(async {
            let rec = Attempts::new();
            let start = Instant::now();
            let result = retry
                .run(|| {
                    let n = rec.record();
                    let d = c.op_ms[(n - 1) % c.op_ms.len()];
                    async move {
                        sleep(ms(d)).await;
                        Err::<(), _>("down")
                    }
                })
                .await;
            (rec.starts(), start.elapsed(), result)
        });
        let deadline = ms(c.total_ms);
        prop_assert!(starts.iter().all(|s| *s < deadline), "starts {starts:?} deadline {deadline:?}");
        prop_assert!(elapsed <= deadline, "returned at {elapsed:?} after a {deadline:?} deadline");
        let err = result.unwrap_err();
        prop_assert_eq!(err.attempts() as usize, starts.len());
    }
}
