//! The executor: keys resolve to the right plan, a policy swap reaches the next call and
//! never one in flight, invalid keys never run.

mod support;

use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use steadfast::policy::{Policies, Source};
use steadfast::{ErrorKind, Executor, Jitter, Retry};
use support::ms;
use tokio::time::sleep;

fn attempts(n: u32) -> Retry {
    Retry::fixed(ms(10))
        .jitter(Jitter::None)
        .max_attempts(n)
        .build()
        .unwrap()
}

/// How many attempts a call of `key` makes when the operation always fails.
async fn attempts_of(executor: &Executor, key: &str) -> u32 {
    executor
        .run(key, || async { Err::<(), _>("down") })
        .await
        .unwrap_err()
        .attempts()
}

#[tokio::test(start_paused = true)]
async fn exact_wildcard_and_default_keys_pick_their_plans() {
    let policies = Policies::new(attempts(1))
        .with("payments.*", attempts(2))
        .unwrap()
        .with("payments.Charge", attempts(3))
        .unwrap();
    assert_eq!(policies.resolve("payments.Charge").source(), Source::Exact);
    let executor = Executor::new(policies);
    assert_eq!(attempts_of(&executor, "payments.Charge").await, 3);
    assert_eq!(attempts_of(&executor, "payments.Refund").await, 2);
    assert_eq!(attempts_of(&executor, "payments.refunds.Create").await, 2);
    assert_eq!(attempts_of(&executor, "search.Query").await, 1);
}

#[tokio::test(start_paused = true)]
async fn a_swap_reaches_the_next_call_and_never_one_in_flight() {
    let executor = Executor::new(Policies::new(attempts(5)));
    let handle = executor.handle("payments.Charge").unwrap();
    let tries = AtomicU32::new(0);
    let in_flight = handle.run(|| {
        tries.fetch_add(1, Ordering::SeqCst);
        async { Err::<(), _>("down") }
    });
    let swap = async {
        sleep(ms(15)).await; // after the second attempt has started
        executor.set_policies(Policies::new(attempts(1)));
    };
    let (result, ()) = tokio::join!(in_flight, swap);
    assert_eq!(
        result.unwrap_err().attempts(),
        5,
        "the call in flight kept its plan"
    );
    assert_eq!(tries.load(Ordering::SeqCst), 5);
    assert_eq!(attempts_of(&executor, "payments.Charge").await, 1, "by key");
    let err = handle
        .run(|| async { Err::<(), _>("down") })
        .await
        .unwrap_err();
    assert_eq!(err.attempts(), 1, "through a handle made before the swap");
}

#[tokio::test(start_paused = true)]
async fn an_invalid_key_never_runs_the_operation() {
    let executor = Executor::default();
    let mut ran = false;
    let err = executor
        .run("no dots here", || {
            ran = true;
            async { Ok::<_, ()>(()) }
        })
        .await
        .unwrap_err();
    assert!(!ran);
    assert!(matches!(err.kind(), ErrorKind::InvalidKey(_)));
    assert_eq!(
        err.to_string(),
        "invalid key: ' ' at byte 2 is not allowed (letters, digits, '_' and '-' between dots)"
    );
    assert!(executor.handle("").is_err());
}

#[tokio::test(start_paused = true)]
async fn the_key_cache_stays_bounded_under_churn() {
    let executor = Executor::with_max_keys(Policies::default(), 1000);
    let hot = executor.handle("svc.Hot").unwrap();
    for i in 0..50_000 {
        let key = format!("tenant{i}.Get");
        executor
            .run(&key, || async { Ok::<_, ()>(()) })
            .await
            .unwrap();
        assert!(
            executor.cached_keys() <= 1008,
            "{} keys cached",
            executor.cached_keys()
        );
    }
    // A handle outlives eviction and still follows swaps.
    executor.set_policies(Policies::new(attempts(2)));
    let err = hot
        .run(|| async { Err::<(), _>("down") })
        .await
        .unwrap_err();
    assert_eq!(err.attempts(), 2);
    sleep(Duration::ZERO).await;
}

#[test]
fn concurrent_calls_churn_and_swaps_stay_consistent() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_time()
        .build()
        .unwrap();
    let one = Retry::immediate().max_attempts(1).build().unwrap();
    let three = Retry::immediate().max_attempts(3).build().unwrap();
    let executor = Executor::with_max_keys(Policies::new(three.clone()), 64);
    rt.block_on(async {
        let mut tasks = Vec::new();
        for t in 0..8u32 {
            let executor = executor.clone();
            tasks.push(tokio::spawn(async move {
                for i in 0..2_000u32 {
                    let key = format!("tenant{}.Call", (t * 7 + i) % 200);
                    let err = executor
                        .run(&key, || async { Err::<(), _>("down") })
                        .await
                        .unwrap_err();
                    // Whichever policy was in force when the call began: 1 or 3 attempts.
                    assert!(
                        matches!(err.attempts(), 1 | 3),
                        "{} attempts",
                        err.attempts()
                    );
                }
            }));
        }
        let swapper = {
            let executor = executor.clone();
            tokio::spawn(async move {
                for i in 0..200 {
                    let policy = if i % 2 == 0 {
                        one.clone()
                    } else {
                        three.clone()
                    };
                    executor.set_policies(Policies::new(policy));
                    tokio::task::yield_now().await;
                }
            })
        };
        for task in tasks {
            task.await.unwrap();
        }
        swapper.await.unwrap();
    });
    assert!(
        executor.cached_keys() <= 64 + 16,
        "{} keys",
        executor.cached_keys()
    );
}

/// Each thread remembers its recent keys: two executors calling the same key on one thread
/// keep their own plans, a policy swap reaches the next call on that thread, and a key
/// among many recent ones still resolves to its own plan.
#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn recent_keys_keep_each_executors_plan_across_swaps() {
    let two = Executor::new(Policies::new(attempts(2)));
    let five = Executor::new(Policies::new(attempts(5)));
    for _ in 0..3 {
        assert_eq!(attempts_of(&two, "svc.Get").await, 2);
        assert_eq!(attempts_of(&five, "svc.Get").await, 5);
    }
    two.set_policies(Policies::new(attempts(3)));
    assert_eq!(attempts_of(&two, "svc.Get").await, 3);
    assert_eq!(attempts_of(&five, "svc.Get").await, 5);

    let mixed = Executor::new(
        Policies::new(attempts(1))
            .with_plan("a.*", steadfast::policy::Plan::new(attempts(2)))
            .unwrap()
            .with_plan("b.*", steadfast::policy::Plan::new(attempts(3)))
            .unwrap(),
    );
    for round in 0..3 {
        for (key, n) in [
            ("a.X", 2),
            ("b.X", 3),
            ("c.X", 1),
            ("a.Y", 2),
            ("b.Y", 3),
            ("c.Y", 1),
        ] {
            assert_eq!(attempts_of(&mixed, key).await, n, "{key} in round {round}");
        }
    }
    // A key made of the same bytes in another buffer is the same key.
    let owned = String::from("a.X");
    assert_eq!(attempts_of(&mixed, &owned).await, 2);
}

/// A handle's call whose pinned plan is current and plain runs its first attempt in its own
/// future and the rest in the engine, under that plan; a swap during the first attempt
/// leaves the call its plan; a timed plan, or one swapped in, runs from the start.
#[tokio::test(start_paused = true)]
async fn a_handle_keeps_its_plan_through_the_first_attempt_and_follows_swaps() {
    let executor = Executor::new(Policies::new(attempts(4)));
    let handle = executor.handle("payments.Charge").unwrap();
    let tries = AtomicU32::new(0);
    let flaky = || {
        let n = tries.fetch_add(1, Ordering::SeqCst);
        async move { if n < 2 { Err("down") } else { Ok(n) } }
    };
    assert_eq!(
        handle.run(flaky).await.unwrap(),
        2,
        "two failures, then success"
    );
    assert_eq!(tries.load(Ordering::SeqCst), 3);

    // A swap while the first attempt runs: the call keeps the plan it started under.
    tries.store(0, Ordering::SeqCst);
    let slow_failure = || {
        tries.fetch_add(1, Ordering::SeqCst);
        async {
            sleep(ms(5)).await;
            Err::<(), _>("down")
        }
    };
    let swap = async {
        sleep(ms(2)).await;
        executor.set_policies(Policies::new(attempts(1)));
    };
    let (result, ()) = tokio::join!(handle.run(slow_failure), swap);
    assert_eq!(
        result.unwrap_err().attempts(),
        4,
        "the call in flight kept its plan"
    );
    let err = handle
        .run(|| async { Err::<(), _>("down") })
        .await
        .unwrap_err();
    assert_eq!(err.attempts(), 1, "the next call follows the swap");

    // A plan with a timeout is not run in line, pinned or not.
    let timed = Retry::fixed(ms(10))
        .max_attempts(3)
        .attempt_timeout(ms(50))
        .build()
        .unwrap();
    executor.set_policies(Policies::new(timed));
    let mut handle = executor.handle("payments.Charge").unwrap();
    let hung = || async {
        sleep(ms(1_000)).await;
        Ok::<_, &str>(())
    };
    let err = handle.run(hung).await.unwrap_err();
    assert_eq!(err.attempts(), 3, "each attempt timed out");
    assert!(matches!(err.kind(), ErrorKind::Timeout { .. }));

    executor.set_policies(Policies::new(attempts(2)));
    handle.refresh();
    assert_eq!(
        handle
            .run(|| async { Err::<(), _>("down") })
            .await
            .unwrap_err()
            .attempts(),
        2,
        "a refreshed handle runs the plan pinned anew"
    );
}
