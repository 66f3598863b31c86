//! Success on the first try allocates nothing on the heap (a counting global allocator).

// A global allocator is an `unsafe impl` by definition; this one only counts and forwards.
#![allow(unsafe_code)]

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::time::Duration;

use steadfast::{Retry, classify};

struct Counting;

thread_local! {
    /// Allocations made on this thread. The calls run on a current-thread runtime, so the
    /// test thread's count is theirs; the harness's own threads (which allocate now and then
    /// while a test runs) are not counted.
    static ALLOCATIONS: Cell<usize> = const { Cell::new(0) };
}

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // `try_with`: a thread being torn down has no counter left, and is not counted.
        let _ = ALLOCATIONS.try_with(|n| n.set(n.get() + 1));
        // SAFETY: forwards the caller's layout to the system allocator unchanged.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: `ptr` was allocated by `System` with this layout in `alloc` above.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

fn allocations() -> usize {
    ALLOCATIONS.with(Cell::get)
}

async fn ok() -> Result<u64, std::io::Error> {
    Ok(7)
}

#[test]
fn first_try_success_allocates_nothing() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .unwrap();
    let default = Retry::default();
    let tuned = Retry::exponential(Duration::from_millis(100))
        .max_attempts(5)
        .build()
        .unwrap();
    rt.block_on(async {
        // Warm up whatever the runtime initialises lazily.
        let _ = default.run(ok).await;
        for (name, retry) in [("default", &default), ("tuned", &tuned)] {
            let before = allocations();
            for _ in 0..1000 {
                assert_eq!(retry.run(ok).await.unwrap(), 7);
            }
            assert_eq!(allocations() - before, 0, "{name}: run");
            let before = allocations();
            for _ in 0..1000 {
                let v = retry
                    .call(ok)
                    .classify(classify::ByTrait)
                    .on_retry(|_| {})
                    .on_exhausted(|_| {})
                    .run()
                    .await;
                assert_eq!(v.unwrap(), 7);
            }
            assert_eq!(
                allocations() - before,
                0,
                "{name}: call with classifier and hooks"
            );
        }
        let _ = steadfast::run("svc.Method", ok).await; // makes the executor and the key's entry
        let before = allocations();
        for _ in 0..1000 {
            assert_eq!(steadfast::run("svc.Method", ok).await.unwrap(), 7);
        }
        assert_eq!(allocations() - before, 0, "steadfast::run");

        let executor = steadfast::Executor::default();
        let handle = executor.handle("svc.Method").unwrap();
        let _ = executor.run("svc.Method", ok).await; // the key's entry is made once
        let before = allocations();
        for _ in 0..1000 {
            assert_eq!(handle.run(ok).await.unwrap(), 7);
            assert_eq!(executor.run("svc.Method", ok).await.unwrap(), 7);
        }
        assert_eq!(allocations() - before, 0, "executor handle and run by key");

        // A closed breaker, a bulkhead with room and a rate limiter under its rate: atomics
        // only, no allocation.
        let breaker = steadfast::breaker::Breaker::failure_rate(0.5)
            .build()
            .unwrap();
        let consecutive = steadfast::breaker::Breaker::consecutive(5).build().unwrap();
        let bulkhead = steadfast::limit::Bulkhead::new(8).build().unwrap();
        let limiter = steadfast::limit::RateLimiter::per_second(1_000_000_000)
            .build()
            .unwrap();
        let before = allocations();
        for _ in 0..1000 {
            for b in [&breaker, &consecutive] {
                let v = tuned
                    .call(ok)
                    .breaker(b)
                    .bulkhead(&bulkhead)
                    .rate_limiter(&limiter)
                    .run()
                    .await;
                assert_eq!(v.unwrap(), 7);
            }
        }
        assert_eq!(allocations() - before, 0, "breaker, bulkhead, rate limiter");

        let plan = steadfast::policy::Plan::new(tuned.clone())
            .breaker(steadfast::breaker::BreakerOptions::default())
            .unwrap()
            .bulkhead(steadfast::limit::BulkheadOptions::new(8))
            .unwrap();
        let guarded = steadfast::Executor::new(
            steadfast::policy::Policies::default()
                .with_plan("svc.*", plan)
                .unwrap(),
        );
        let handle = guarded.handle("svc.Method").unwrap();
        let before = allocations();
        for _ in 0..1000 {
            assert_eq!(handle.run(ok).await.unwrap(), 7);
            assert_eq!(guarded.run("svc.Method", ok).await.unwrap(), 7);
        }
        assert_eq!(
            allocations() - before,
            0,
            "executor plan with breaker and bulkhead"
        );
    });
    let before = allocations();
    for _ in 0..1000 {
        assert_eq!(default.run_blocking(|| Ok::<_, ()>(7)).unwrap(), 7);
    }
    assert_eq!(allocations() - before, 0, "run_blocking");
}

/// The operation's error: a unit, so what is counted is the library's.
#[derive(Debug)]
struct Down;

/// Fails while `fails` is above zero, then succeeds.
fn flaky(fails: &std::cell::Cell<u32>) -> impl std::future::Future<Output = Result<u64, Down>> {
    let failing = fails.get() > 0;
    if failing {
        fails.set(fails.get() - 1);
    }
    std::future::ready(if failing { Err(Down) } else { Ok(7) })
}

/// A retried success allocates nothing, on every strategy's plain path; a failed call
/// allocates once, for its error.
#[test]
fn retried_success_allocates_nothing_and_a_failure_allocates_its_error_once() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .unwrap();
    let retry = Retry::immediate().max_attempts(3).build().unwrap();
    let breaker = steadfast::breaker::Breaker::consecutive(10)
        .build()
        .unwrap();
    let bulkhead = steadfast::limit::Bulkhead::new(8).build().unwrap();
    let limiter = steadfast::limit::RateLimiter::per_second(1_000_000_000)
        .build()
        .unwrap();
    let budget = steadfast::budget::BudgetOptions::token_bucket(1e9, 1.0)
        .build()
        .unwrap();
    let fails = std::cell::Cell::new(0);
    rt.block_on(async {
        fails.set(2);
        let _ = retry.run(|| flaky(&fails)).await;
        let before = allocations();
        for _ in 0..1000 {
            fails.set(2);
            assert_eq!(retry.run(|| flaky(&fails)).await.unwrap(), 7);
        }
        assert_eq!(allocations() - before, 0, "two failures, then success");

        let before = allocations();
        for _ in 0..1000 {
            fails.set(2);
            let v = retry
                .call(|| flaky(&fails))
                .breaker(&breaker)
                .bulkhead(&bulkhead)
                .rate_limiter(&limiter)
                .budget(&budget)
                .run()
                .await;
            assert_eq!(v.unwrap(), 7);
        }
        assert_eq!(
            allocations() - before,
            0,
            "two failures, then success, through breaker, bulkhead, rate limiter and budget"
        );

        let executor = steadfast::Executor::new(steadfast::policy::Policies::new(retry.clone()));
        let handle = executor.handle("svc.Method").unwrap();
        fails.set(2);
        let _ = executor.run("svc.Method", || flaky(&fails)).await;
        let before = allocations();
        for _ in 0..1000 {
            fails.set(2);
            assert_eq!(handle.run(|| flaky(&fails)).await.unwrap(), 7);
            fails.set(2);
            let v = executor.run("svc.Method", || flaky(&fails)).await;
            assert_eq!(v.unwrap(), 7);
        }
        assert_eq!(
            allocations() - before,
            0,
            "two failures, then success, through a handle and by key"
        );

        let before = allocations();
        for _ in 0..1000 {
            fails.set(5);
            let err = retry.run(|| flaky(&fails)).await.unwrap_err();
            assert_eq!(err.attempts(), 3);
        }
        assert_eq!(
            allocations() - before,
            1000,
            "a failed call: one box, its error"
        );
    });
}
