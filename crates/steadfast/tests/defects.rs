//! Regressions: each test failed before its fix.

use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use steadfast::budget::BudgetOptions;
use steadfast::hedge::HedgeOptions;
use steadfast::observe::Timeline;
use steadfast::policy::{Plan, Policies};
use steadfast::{Executor, Jitter, Retry, Stop};

/// The blocking engine spends from the budget as the async engine does: a quota of 10 with
/// retries costing 5 allows two retries, whichever engine runs the call.
#[tokio::test(start_paused = true)]
async fn the_blocking_engine_spends_the_budget_like_the_async_one() {
    let plan = || {
        Plan::new(Retry::immediate().max_attempts(10).build().unwrap())
            .budget(BudgetOptions::quota(10, 5, 10))
            .unwrap()
    };
    let executor = Executor::new(Policies::default().with_plan("db.*", plan()).unwrap());
    let err = executor
        .run("db.Query", || async { Err::<(), _>("down") })
        .await
        .unwrap_err();
    assert_eq!(
        (err.attempts(), err.stop()),
        (3, Some(Stop::BudgetExhausted))
    );

    let executor = Executor::new(Policies::default().with_plan("db.*", plan()).unwrap());
    let tries = AtomicU32::new(0);
    let err = executor
        .call_blocking("db.Query", || {
            tries.fetch_add(1, Ordering::SeqCst);
            Err::<(), _>("down")
        })
        .run()
        .unwrap_err();
    assert_eq!(tries.load(Ordering::SeqCst), 3, "was 10 before the fix");
    assert_eq!(err.stop(), Some(Stop::BudgetExhausted));
}

/// A plan cannot end up hedging a key marked not idempotent, whatever the order of calls.
#[test]
fn a_hedged_plan_cannot_be_marked_not_idempotent_afterwards() {
    let hedged = Plan::new(Retry::default())
        .idempotent(true)
        .unwrap()
        .hedge(HedgeOptions::fixed(Duration::from_millis(10)))
        .unwrap();
    let err = hedged.idempotent(false).unwrap_err();
    assert!(
        err.to_string()
            .starts_with("idempotent: the operation must be marked idempotent")
    );
}

/// Every strategy a plan names is bound for its key: none is dropped on the way.
#[test]
fn every_strategy_of_a_plan_is_bound() {
    use steadfast::breaker::BreakerOptions;
    use steadfast::limit::{BulkheadOptions, RateLimitOptions};
    let plan = Plan::new(Retry::default())
        .breaker(BreakerOptions::consecutive(3))
        .unwrap()
        .bulkhead(BulkheadOptions::new(4))
        .unwrap()
        .rate_limit(RateLimitOptions::new(10, Duration::from_secs(1)))
        .unwrap();
    let executor = Executor::new(Policies::default().with_plan("svc.*", plan).unwrap());
    assert!(executor.breaker("svc.A").unwrap().is_some());
    assert!(executor.bulkhead("svc.A").unwrap().is_some());
    assert!(executor.rate_limiter("svc.A").unwrap().is_some());
}

/// The delays of a key's successive calls under one seeded full-jitter policy.
async fn delays_of_calls(retry: &Retry, calls: usize) -> Vec<Vec<Duration>> {
    let mut out = Vec::new();
    for _ in 0..calls {
        let (_, timeline): (_, Timeline) = retry
            .call(|| async { Err::<(), _>("down") })
            .run_with_timeline()
            .await;
        // The operation takes no time: the gaps between starts are the delays.
        out.push(
            timeline
                .attempts()
                .windows(2)
                .map(|w| w[1].start() - w[0].start())
                .collect(),
        );
    }
    out
}

/// A seed makes a run reproducible, but each call draws its own stream: calls of one seeded
/// policy do not wait in lockstep.
#[tokio::test(start_paused = true)]
async fn seeded_jitter_differs_between_calls_and_repeats_between_runs() {
    let build = || {
        Retry::exponential(Duration::from_millis(100))
            .jitter(Jitter::Full)
            .max_attempts(4)
            .seed(42)
            .build()
            .unwrap()
    };
    let first = delays_of_calls(&build(), 3).await;
    assert_ne!(
        first[0], first[1],
        "two calls drew the same delays: lockstep"
    );
    assert_ne!(first[1], first[2]);
    let again = delays_of_calls(&build(), 3).await;
    assert_eq!(first, again, "the same seed repeats the run");
}
