//! Hedging and retry budgets through the engine, on tokio's paused clock: exact instants,
//! exact attempt counts, and nothing left running.

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use steadfast::budget::BudgetOptions;
use steadfast::classify::Outcome;
use steadfast::hedge::HedgeOptions;
use steadfast::observe::AttemptEnd;
use steadfast::observe::Timeline;
use steadfast::{ErrorKind, Jitter, Retry, Stop};

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

/// Counts the attempts alive: one is added when an attempt's future is made and taken away
/// when it is dropped, finished or not.
#[derive(Clone, Default)]
struct Alive(Arc<AtomicU32>);

struct Token(Arc<AtomicU32>);

impl Alive {
    fn token(&self) -> Token {
        self.0.fetch_add(1, Ordering::SeqCst);
        Token(self.0.clone())
    }
    fn count(&self) -> u32 {
        self.0.load(Ordering::SeqCst)
    }
}

impl Drop for Token {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

fn retry(max_attempts: u32) -> Retry {
    Retry::fixed(ms(100))
        .jitter(Jitter::None)
        .max_attempts(max_attempts)
        .build()
        .unwrap()
}

#[tokio::test(start_paused = true)]
async fn a_hedge_starts_after_the_delay_and_the_first_answer_wins() {
    let hedge = HedgeOptions::fixed(ms(30))
        .max_hedged_attempts(2)
        .build()
        .unwrap();
    let latencies = [1_000, 500, 20];
    let mut n = 0;
    let (result, timeline) = retry(1)
        .call(|| {
            let latency = latencies[n];
            n += 1;
            async move {
                tokio::time::sleep(ms(latency)).await;
                Ok::<_, ()>(latency)
            }
        })
        .hedge(&hedge)
        .run_with_timeline()
        .await;
    // Hedges at 30 and 60 ms; the second answers at 80 ms.
    assert_eq!(result.unwrap(), 20);
    assert_eq!(timeline.duration(), ms(80));
    let a = timeline.attempts();
    let starts: Vec<_> = a.iter().map(|a| (a.start(), a.is_hedge())).collect();
    assert_eq!(starts, [(ms(0), false), (ms(30), true), (ms(60), true)]);
    let ends: Vec<_> = a.iter().map(|a| a.end()).collect();
    assert_eq!(
        ends,
        [AttemptEnd::Cancelled, AttemptEnd::Cancelled, AttemptEnd::Ok]
    );
}

#[tokio::test(start_paused = true)]
async fn a_retryable_failure_sends_the_next_hedge_at_once_and_a_fatal_one_ends_the_try() {
    let hedge = HedgeOptions::fixed(ms(50))
        .max_hedged_attempts(2)
        .build()
        .unwrap();
    let alive = Alive::default();
    let mut n = 0;
    let (result, timeline) = retry(1)
        .call(|| {
            n += 1;
            let (i, token) = (n, alive.token());
            async move {
                let _token = token;
                match i {
                    // Fails (retryable) at 10 ms: the hedge goes at once, not at 50.
                    1 => {
                        tokio::time::sleep(ms(10)).await;
                        Err("unavailable")
                    }
                    // Slow; the third attempt fails fatally at 15 ms and ends the try.
                    2 => {
                        tokio::time::sleep(ms(1_000)).await;
                        Ok(2)
                    }
                    _ => Err("invalid"),
                }
            }
        })
        .classify_error(|e| {
            if *e == "unavailable" {
                Outcome::RETRYABLE
            } else {
                Outcome::NonRetryable
            }
        })
        .hedge(&hedge)
        .run_with_timeline()
        .await;
    let err = result.unwrap_err();
    assert!(matches!(
        err.into_kind(),
        ErrorKind::Operation {
            source: "invalid",
            stop: Stop::NonRetryable,
            ..
        }
    ));
    let starts: Vec<_> = timeline.attempts().iter().map(|a| a.start()).collect();
    assert_eq!(starts, [ms(0), ms(10), ms(60)]);
    assert_eq!(timeline.attempts()[1].end(), AttemptEnd::Cancelled);
    assert_eq!(alive.count(), 0, "the slow attempt was dropped");
}

#[tokio::test(start_paused = true)]
async fn each_retry_index_may_hedge_and_max_attempts_counts_tries() {
    let hedge = HedgeOptions::fixed(ms(20)).build().unwrap();
    let mut n = 0;
    let (result, timeline) = retry(2)
        .call(|| {
            n += 1;
            async move {
                tokio::time::sleep(ms(30)).await;
                Err::<(), _>(n)
            }
        })
        .hedge(&hedge)
        .run_with_timeline()
        .await;
    // Try 1: 0 and 20 (fail at 30 and 50); 100 ms backoff; try 2: 150 and 170.
    assert_eq!(result.unwrap_err().attempts(), 4);
    let starts: Vec<_> = timeline
        .attempts()
        .iter()
        .map(|a| (a.start(), a.is_hedge()))
        .collect();
    assert_eq!(
        starts,
        [
            (ms(0), false),
            (ms(20), true),
            (ms(150), false),
            (ms(170), true)
        ]
    );
}

#[tokio::test(start_paused = true)]
async fn the_percentile_delay_follows_recent_latencies() {
    let hedge = HedgeOptions::percentile(90.0)
        .min_samples(20)
        .fallback(ms(500))
        .build()
        .unwrap();
    let r = retry(1);
    for i in 0..100u64 {
        r.call(|| async move {
            tokio::time::sleep(ms(1 + i % 10)).await;
            Ok::<_, ()>(())
        })
        .hedge(&hedge)
        .run()
        .await
        .unwrap();
    }
    let d = hedge.delay();
    assert!(d >= ms(9) && d <= ms(11), "p90 of 1..=10 ms: {d:?}");
}

#[tokio::test(start_paused = true)]
async fn a_refused_retry_returns_the_last_error_with_the_reason() {
    let budget = BudgetOptions::quota(10, 5, 10).build().unwrap();
    let (result, timeline) = retry(5)
        .call(|| async { Err::<(), _>("down") })
        .budget(&budget)
        .run_with_timeline()
        .await;
    let err = result.unwrap_err();
    assert_eq!(err.attempts(), 3, "two retries of 5 from 10");
    assert_eq!(err.stop(), Some(Stop::BudgetExhausted));
    assert_eq!(timeline.budget_refusals(), 1);
    // Nothing waited for the budget: two backoffs of 100 ms.
    assert_eq!(timeline.duration(), ms(200));
}

#[tokio::test(start_paused = true)]
async fn hedges_spend_from_the_budget_and_a_refused_hedge_is_not_sent() {
    let budget = BudgetOptions::token_bucket(4.0, 0.1).build().unwrap();
    let hedge = HedgeOptions::fixed(ms(10)).build().unwrap();
    let mut sent = 0;
    for _ in 0..5 {
        let _ = retry(1)
            .call(|| {
                sent += 1;
                async {
                    tokio::time::sleep(ms(50)).await;
                    Err::<(), _>("slow and failing")
                }
            })
            .hedge(&hedge)
            .budget(&budget)
            .run()
            .await;
    }
    // Tokens 4 → 2 after the first call's two failures; at 2 (≤ 4/2) no more hedges.
    assert_eq!(sent, 2 + 1 + 1 + 1 + 1);
}

#[tokio::test(start_paused = true)]
async fn adaptive_throttling_refuses_first_attempts_locally() {
    let budget = BudgetOptions::adaptive(2.0).seed(1).build().unwrap();
    let r = retry(1);
    let mut throttled = 0;
    for _ in 0..1_000 {
        match r
            .call(|| async { Err::<(), _>("overloaded") })
            .budget(&budget)
            .run()
            .await
            .map_err(|e| e.into_kind())
        {
            Err(ErrorKind::Throttled { .. }) => throttled += 1,
            Err(ErrorKind::Operation { .. }) => {}
            other => panic!("{other:?}"),
        }
    }
    // Nothing is accepted: the refusal probability climbs towards 1000/1001.
    assert!(throttled > 900, "{throttled}");
}

#[tokio::test(start_paused = true)]
async fn a_million_hedged_calls_leave_nothing_running() {
    let hedge = HedgeOptions::fixed(ms(1))
        .max_hedged_attempts(2)
        .build()
        .unwrap();
    let r = retry(1);
    let alive = Alive::default();
    let mut launched = 0u64;
    for i in 0..1_000_000u64 {
        let mut first = true;
        let value = r
            .call(|| {
                launched += 1;
                let token = alive.token();
                // Every other call: the first attempt stalls and a hedge wins.
                let stalls = i % 2 == 0 && std::mem::take(&mut first);
                let latency = if stalls { 100 } else { 0 };
                async move {
                    let _token = token;
                    if latency > 0 {
                        tokio::time::sleep(ms(latency)).await;
                    }
                    Ok::<_, ()>(latency)
                }
            })
            .hedge(&hedge)
            .run()
            .await;
        assert!(value.is_ok());
    }
    assert_eq!(launched, 1_500_000, "half the calls hedged once");
    assert_eq!(alive.count(), 0, "every attempt future was dropped");
}

/// A key's plan hedges through the executor, each key keeping its own latency history, and a
/// budget shared by name is spent by the retries of every key that names it.
#[tokio::test(start_paused = true)]
async fn plans_hedge_by_key_and_share_a_budget_by_name() {
    use steadfast::Executor;
    use steadfast::policy::{Plan, Policies};

    let quota = BudgetOptions::quota(10, 5, 10);
    let policies = Policies::default()
        .with_plan(
            "search.*",
            Plan::new(retry(3))
                .idempotent(true)
                .unwrap()
                .hedge(HedgeOptions::fixed(ms(30)))
                .unwrap()
                .shared_budget("backend", quota.clone())
                .unwrap(),
        )
        .unwrap()
        .with_plan(
            "index.*",
            Plan::new(retry(3)).shared_budget("backend", quota).unwrap(),
        )
        .unwrap();
    let executor = Executor::builder().policies(policies).build();

    // The first attempt stalls; the hedge, sent at 30 ms, answers at 40 ms.
    let mut n = 0;
    let mut timeline = Timeline::default();
    let result = executor
        .call("search.Query", || {
            n += 1;
            let latency = if n == 1 { 1_000 } else { 10 };
            async move {
                tokio::time::sleep(ms(latency)).await;
                Ok::<_, ()>(n)
            }
        })
        .timeline(&mut timeline)
        .run()
        .await;
    assert_eq!(result.unwrap(), 2);
    assert_eq!(timeline.duration(), ms(40));
    assert!(timeline.attempts()[1].is_hedge());

    // The hedge cost 5 and, as it won, was refunded (a successful retry gives its cost back),
    // so index.Put's two retries take the whole shared quota…
    let failing = || async { Err::<(), _>("down") };
    let mut timeline = Timeline::default();
    let result = executor
        .call("index.Put", failing)
        .timeline(&mut timeline)
        .run()
        .await;
    assert!(result.is_err());
    assert_eq!(timeline.attempts().len(), 3);
    assert_eq!(timeline.budget_refusals(), 0);
    // …and search.Query finds it empty: the hedge its failure would send at once is refused,
    // then the retry.
    let mut timeline = Timeline::default();
    let result = executor
        .call("search.Query", failing)
        .timeline(&mut timeline)
        .run()
        .await;
    assert!(result.is_err());
    assert_eq!(timeline.attempts().len(), 1);
    assert_eq!(timeline.budget_refusals(), 2);
}
