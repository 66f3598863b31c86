//! steadfast side by side with its peers, on the same operations under one runtime.
//!
//! Each [`Runner`] runs `iters` calls of one implementation inside a single `block_on` and
//! returns the time taken; `compare` interleaves them round by round, criterion benches reuse
//! them through `iter_custom`. Every peer is set up once, outside the loop, the way its docs
//! show, and does the same work: the same operation, the same number of attempts, zero delay
//! where the scenario says so.

use std::hint::black_box;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use tokio::runtime::Runtime;

/// The scenarios of the comparison.
pub const SCENARIOS: [Scenario; 18] = [
    Scenario::FirstTrySuccess,
    Scenario::TwoFailuresThenSuccess,
    Scenario::BackoffSchedule,
    Scenario::ExecutorHandle,
    Scenario::ExecutorKey,
    Scenario::BreakerClosed,
    Scenario::BreakerContended,
    Scenario::Pipeline5,
    Scenario::GateSqlite,
    Scenario::GatePostgres,
    Scenario::QueueSqlite,
    Scenario::QueuePostgres,
    Scenario::GateCheckSqlite,
    Scenario::GateCheckPostgres,
    Scenario::LeaseBacklogSqlite,
    Scenario::LeaseBacklogPostgres,
    Scenario::WorkerSqlite,
    Scenario::WorkerPostgres,
];

/// What is measured.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scenario {
    /// (a) the operation succeeds at once: the cost of the retry machinery on the happy path.
    FirstTrySuccess,
    /// (b) two immediate failures, then success, with zero delay between attempts.
    TwoFailuresThenSuccess,
    /// (c) computing a 10-step exponential schedule (100 ms × 2, capped at 10 s, no jitter).
    BackoffSchedule,
    /// A first-try success through a pre-resolved executor handle, beside the bare engine.
    ExecutorHandle,
    /// A first-try success through `Executor::run` by string key, beside the bare engine.
    ExecutorKey,
    /// A first-try success through a closed circuit breaker.
    BreakerClosed,
    /// The same on two threads at once, through one shared breaker.
    BreakerContended,
    /// A first-try success through rate limiter → total timeout → retry → breaker → attempt
    /// timeout.
    Pipeline5,
    /// The durable retry gate on a SQLite file: `acquire` then `failed`, one target.
    GateSqlite,
    /// The same on PostgreSQL, 16 targets at once (needs `STEADFAST_TEST_POSTGRES_URL`).
    GatePostgres,
    /// The durable queue on a SQLite file: each message enqueued (in batches), leased and
    /// acked by 4 workers; a call is one message.
    QueueSqlite,
    /// The same on PostgreSQL (needs `STEADFAST_TEST_POSTGRES_URL`).
    QueuePostgres,
    /// The gate's `check` of one target with a record, one caller, on a SQLite file.
    GateCheckSqlite,
    /// The same on PostgreSQL.
    GateCheckPostgres,
    /// enqueue → lease 1 → ack on a SQLite file, on an empty topic and on one holding
    /// 100 000 ready messages.
    LeaseBacklogSqlite,
    /// The same on PostgreSQL.
    LeaseBacklogPostgres,
    /// One `Worker` with default settings draining a backlog on a SQLite file (beside one
    /// handling a message at a time); a call is one message.
    WorkerSqlite,
    /// The same on PostgreSQL.
    WorkerPostgres,
}

impl Scenario {
    /// The scenario's name in reports.
    pub fn name(self) -> &'static str {
        match self {
            Scenario::FirstTrySuccess => "first-try-success",
            Scenario::TwoFailuresThenSuccess => "two-failures-then-success",
            Scenario::BackoffSchedule => "backoff-schedule-10",
            Scenario::ExecutorHandle => "executor-handle",
            Scenario::ExecutorKey => "executor-key",
            Scenario::BreakerClosed => "breaker-closed",
            Scenario::BreakerContended => "breaker-2-threads",
            Scenario::Pipeline5 => "pipeline-5",
            Scenario::GateSqlite => "gate-sqlite",
            Scenario::GatePostgres => "gate-postgres",
            Scenario::QueueSqlite => "queue-sqlite",
            Scenario::QueuePostgres => "queue-postgres",
            Scenario::GateCheckSqlite => "gate-check-sqlite",
            Scenario::GateCheckPostgres => "gate-check-postgres",
            Scenario::LeaseBacklogSqlite => "lease-backlog-sqlite",
            Scenario::LeaseBacklogPostgres => "lease-backlog-postgres",
            Scenario::WorkerSqlite => "worker-sqlite",
            Scenario::WorkerPostgres => "worker-postgres",
        }
    }

    /// Calls per measured round: enough to dwarf the timer's resolution.
    pub fn iters(self) -> u64 {
        match self {
            Scenario::FirstTrySuccess => 50_000,
            Scenario::TwoFailuresThenSuccess => 20_000,
            Scenario::BackoffSchedule => 50_000,
            Scenario::ExecutorHandle | Scenario::ExecutorKey => 50_000,
            Scenario::BreakerClosed | Scenario::BreakerContended => 50_000,
            Scenario::Pipeline5 => 20_000,
            Scenario::GateSqlite | Scenario::GatePostgres => 20_000,
            Scenario::QueueSqlite | Scenario::QueuePostgres => 20_000,
            Scenario::GateCheckSqlite | Scenario::GateCheckPostgres => 20_000,
            Scenario::LeaseBacklogSqlite | Scenario::LeaseBacklogPostgres => 2_000,
            Scenario::WorkerSqlite | Scenario::WorkerPostgres => 20_000,
        }
    }

    /// Calls per measured round at least: a throughput scenario's rounds are long enough
    /// that starting and stopping its workers does not count.
    pub fn min_iters(self) -> u64 {
        match self {
            Scenario::QueueSqlite | Scenario::QueuePostgres => 10_000,
            Scenario::GateSqlite | Scenario::GatePostgres => 10_000,
            Scenario::WorkerSqlite | Scenario::WorkerPostgres => 5_000,
            _ => 10,
        }
    }
}

/// One implementation of one scenario.
pub struct Runner {
    /// The implementation's name (`steadfast`, `backon`, …).
    pub name: &'static str,
    /// Runs `iters` calls and returns how long they took.
    pub run: Box<RunFn>,
}

/// Runs `iters` calls on a runtime and returns how long they took.
pub type RunFn = dyn FnMut(&Runtime, u64) -> Duration;

impl std::fmt::Debug for Runner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Runner").field("name", &self.name).finish()
    }
}

/// The operation's error.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Fail;

impl std::fmt::Display for Fail {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("fail")
    }
}

impl std::error::Error for Fail {}

/// Failures still to come in the current call of scenario (b).
static FAILS: AtomicU32 = AtomicU32::new(0);
/// Every attempt made by any implementation (lets tests check they all do the same work).
pub static ATTEMPTS: AtomicU32 = AtomicU32::new(0);

/// The operation: fails while `FAILS` is positive, then returns a value.
#[inline(never)]
pub async fn op() -> Result<u64, Fail> {
    ATTEMPTS.fetch_add(1, Ordering::Relaxed);
    if FAILS.load(Ordering::Relaxed) > 0 {
        FAILS.fetch_sub(1, Ordering::Relaxed);
        Err(Fail)
    } else {
        Ok(black_box(1))
    }
}

fn failures(scenario: Scenario) -> u32 {
    match scenario {
        Scenario::TwoFailuresThenSuccess => 2,
        _ => 0,
    }
}

/// A current-thread runtime with a timer, as every runner expects.
pub fn runtime() -> Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .expect("a tokio runtime")
}

/// One `ready().call(())` of a tower service, as every tower-based peer is called.
async fn call_tower<S>(svc: &mut S) -> u64
where
    S: tower::Service<(), Response = u64>,
    S::Error: std::fmt::Debug,
{
    use tower::ServiceExt;
    svc.ready()
        .await
        .expect("ready")
        .call(())
        .await
        .expect("success")
}

/// Builds a runner whose loop body is `$call` (an expression awaited once per iteration),
/// after `$setup` ran once outside the loop.
macro_rules! call_runner {
    ($name:expr, $fails:expr, |$state:ident| $call:expr, $setup:expr) => {{
        let fails = $fails;
        let mut $state = $setup;
        Runner {
            name: $name,
            run: Box::new(move |rt: &Runtime, iters: u64| {
                let $state = &mut $state;
                rt.block_on(async {
                    let start = Instant::now();
                    for _ in 0..iters {
                        FAILS.store(fails, Ordering::Relaxed);
                        let r = $call;
                        assert_eq!(black_box(r), 1);
                    }
                    start.elapsed()
                })
            }),
        }
    }};
}

mod breaker;
mod gate;
mod queue;

/// Every implementation of `scenario`, the baseline first (steadfast, or the bare engine in
/// the executor scenarios), set up inside `rt` (some peers take its clock).
pub fn runners(rt: &Runtime, scenario: Scenario) -> Vec<Runner> {
    let _enter = rt.enter();
    match scenario {
        Scenario::BackoffSchedule => schedule_runners(),
        Scenario::ExecutorHandle | Scenario::ExecutorKey => executor_runners(scenario),
        Scenario::BreakerClosed => breaker::closed(),
        Scenario::BreakerContended => breaker::contended(),
        Scenario::Pipeline5 => breaker::pipeline(),
        Scenario::GateSqlite => gate::sqlite(),
        Scenario::GatePostgres => gate::postgres(),
        Scenario::QueueSqlite => queue::sqlite(),
        Scenario::QueuePostgres => queue::postgres(),
        Scenario::GateCheckSqlite => gate::check_sqlite(),
        Scenario::GateCheckPostgres => gate::check_postgres(),
        Scenario::LeaseBacklogSqlite => queue::backlog_sqlite(),
        Scenario::LeaseBacklogPostgres => queue::backlog_postgres(),
        Scenario::WorkerSqlite => queue::worker_sqlite(),
        Scenario::WorkerPostgres => queue::worker_postgres(),
        _ => call_runners(scenario),
    }
}

/// The executor paths beside the bare engine, all under the same policy (the default).
fn executor_runners(scenario: Scenario) -> Vec<Runner> {
    let bare = call_runner!(
        "steadfast-bare",
        0,
        |retry| retry.run(op).await.expect("success"),
        steadfast::Retry::default()
    );
    let executor = steadfast::Executor::default();
    let path = if scenario == Scenario::ExecutorHandle {
        call_runner!(
            "executor-handle",
            0,
            |handle| handle.run(op).await.expect("success"),
            executor.handle("svc.Method").expect("a valid key")
        )
    } else {
        call_runner!(
            "executor-key",
            0,
            |executor| executor.run("svc.Method", op).await.expect("success"),
            executor
        )
    };
    vec![bare, path]
}

fn call_runners(scenario: Scenario) -> Vec<Runner> {
    use std::future::{Ready, ready};
    use tower::Layer;

    let fails = failures(scenario);
    let attempts = fails + 1;
    let zero = Duration::ZERO;
    let mut out = Vec::new();

    // steadfast: a policy built once; `run` per call.
    out.push(call_runner!(
        "steadfast",
        fails,
        |retry| retry.run(op).await.expect("success"),
        steadfast::Retry::immediate()
            .max_attempts(attempts)
            .build()
            .expect("valid")
    ));

    // backon: the builder is Copy and made once; `.retry(builder)` per call, as its README.
    out.push(call_runner!(
        "backon",
        fails,
        |builder| {
            use backon::Retryable;
            op.retry(*builder).await.expect("success")
        },
        backon::ConstantBuilder::default()
            .with_delay(zero)
            .with_max_times(fails as usize)
    ));

    // tokio-retry2: strategies are iterators, consumed per call (its API).
    out.push(call_runner!(
        "tokio-retry2",
        fails,
        |unit| {
            let () = *unit;
            let strategy = tokio_retry2::strategy::FixedInterval::new(zero).take(fails as usize);
            tokio_retry2::Retry::spawn(strategy, || async {
                op().await.map_err(tokio_retry2::RetryError::transient)
            })
            .await
            .expect("success")
        },
        ()
    ));

    // tower: a Retry service built once; `ready().call()` per call.
    #[derive(Clone)]
    struct Attempts(u32);
    impl tower::retry::Policy<(), u64, Fail> for Attempts {
        type Future = Ready<()>;
        fn retry(&mut self, _: &mut (), result: &mut Result<u64, Fail>) -> Option<Ready<()>> {
            match result {
                Err(_) if self.0 > 1 => {
                    self.0 -= 1;
                    Some(ready(()))
                }
                _ => None,
            }
        }
        fn clone_request(&mut self, _: &()) -> Option<()> {
            Some(())
        }
    }
    out.push(call_runner!(
        "tower",
        fails,
        |svc| call_tower(svc).await,
        tower::retry::RetryLayer::new(Attempts(attempts)).layer(tower::service_fn(|()| op()))
    ));

    // tower-resilience: its RetryLayer builder, as its README shows.
    out.push(call_runner!(
        "tower-resilience",
        fails,
        |svc| call_tower(svc).await,
        tower_resilience::retry::RetryLayer::<(), u64, Fail>::builder()
            .max_attempts(attempts as usize)
            .fixed_backoff(zero)
            .build()
            .layer(tower::service_fn(|()| op()))
    ));

    // seatbelt: a layered stack built once on a tokio clock; `execute` per call.
    out.push(call_runner!(
        "seatbelt",
        fails,
        |svc| {
            use layered::Service as _;
            svc.execute(()).await.expect("success")
        },
        {
            use layered::Stack as _;
            let clock = tick::Clock::new_tokio();
            let context = seatbelt::ResilienceContext::new(&clock).name("bench");
            (
                seatbelt::retry::Retry::layer("retry", &context)
                    .clone_input()
                    .recovery_with(|out: &Result<u64, Fail>, _| match out {
                        Ok(_) => seatbelt::RecoveryInfo::never(),
                        Err(_) => seatbelt::RecoveryInfo::retry(),
                    })
                    .max_retry_attempts(fails)
                    .base_delay(zero)
                    .use_jitter(false),
                layered::Execute::new(|()| op()),
            )
                .into_service()
        }
    ));
    out
}

/// Builds a runner that computes a schedule `iters` times, summing the delays.
fn schedule_runner(name: &'static str, mut schedule: impl FnMut() -> Duration + 'static) -> Runner {
    Runner {
        name,
        run: Box::new(move |rt: &Runtime, iters: u64| {
            rt.block_on(async {
                let start = Instant::now();
                for _ in 0..iters {
                    black_box(schedule());
                }
                start.elapsed()
            })
        }),
    }
}

/// The schedule every implementation computes: 100, 200, 400 … ms, capped at 10 s.
pub const SCHEDULE_TOTAL: Duration =
    Duration::from_millis(100 + 200 + 400 + 800 + 1600 + 3200 + 6400 + 10_000 * 3);

fn schedule_runners() -> Vec<Runner> {
    let base = Duration::from_millis(100);
    let max = Duration::from_secs(10);
    let options = steadfast::backoff::BackoffOptions::exponential(base)
        .max(max)
        .jitter(steadfast::Jitter::None);
    let backon = backon::ExponentialBuilder::default()
        .with_min_delay(base)
        .with_max_delay(max)
        .with_factor(2.0)
        .with_max_times(10);
    let resilience = tower_resilience::retry::ExponentialBackoff::new(base)
        .multiplier(2.0)
        .expect("valid")
        .max_interval(max);
    let kept_options = options.clone();
    vec![
        // One `Backoff` made once and kept, reset before each schedule: set up once, outside
        // the loop, as the method sets up every peer and as `Backoff`'s docs use one.
        schedule_runner("steadfast", {
            let mut kept = steadfast::Backoff::new(kept_options).expect("valid");
            move || {
                let backoff = black_box(&mut kept);
                backoff.reset();
                backoff.take(10).sum()
            }
        }),
        // A `Backoff` made for each schedule (its options checked and compiled each time).
        schedule_runner("steadfast-new", move || {
            let backoff = steadfast::Backoff::new(black_box(&options).clone()).expect("valid");
            backoff.take(10).sum()
        }),
        schedule_runner("backon", move || {
            use backon::BackoffBuilder;
            black_box(backon).build().take(10).sum()
        }),
        schedule_runner("tokio-retry2", || {
            tokio_retry2::strategy::ExponentialFactorBackoff::from_millis(black_box(100), 2.0)
                .max_delay(Duration::from_secs(10))
                .take(10)
                .sum()
        }),
        schedule_runner("tower-resilience", move || {
            use tower_resilience::retry::IntervalFunction;
            (0..10)
                .map(|i| black_box(&resilience).next_interval(i))
                .sum()
        }),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_peer_does_the_same_work() {
        let rt = runtime();
        for scenario in [
            Scenario::FirstTrySuccess,
            Scenario::TwoFailuresThenSuccess,
            Scenario::ExecutorHandle,
            Scenario::ExecutorKey,
            Scenario::BreakerClosed,
            Scenario::BreakerContended,
            Scenario::Pipeline5,
        ] {
            for mut runner in runners(&rt, scenario) {
                ATTEMPTS.store(0, Ordering::Relaxed);
                (runner.run)(&rt, 10);
                let per_call = ATTEMPTS.load(Ordering::Relaxed) / 10;
                assert_eq!(
                    per_call,
                    failures(scenario) + 1,
                    "{} in {scenario:?}",
                    runner.name
                );
            }
        }
    }

    #[test]
    fn every_schedule_is_the_same() {
        let base = Duration::from_millis(100);
        let steadfast: Duration = steadfast::Backoff::new(
            steadfast::backoff::BackoffOptions::exponential(base)
                .max(Duration::from_secs(10))
                .jitter(steadfast::Jitter::None),
        )
        .expect("valid")
        .take(10)
        .sum();
        assert_eq!(steadfast, SCHEDULE_TOTAL);
        // Kept and reset, as the `steadfast` row runs it: the same schedule each time.
        let mut kept = steadfast::Backoff::new(
            steadfast::backoff::BackoffOptions::exponential(base)
                .max(Duration::from_secs(10))
                .jitter(steadfast::Jitter::None),
        )
        .expect("valid");
        for _ in 0..2 {
            kept.reset();
            assert_eq!(kept.by_ref().take(10).sum::<Duration>(), SCHEDULE_TOTAL);
        }
        let backon: Duration = {
            use backon::BackoffBuilder;
            backon::ExponentialBuilder::default()
                .with_min_delay(base)
                .with_max_delay(Duration::from_secs(10))
                .with_max_times(10)
                .build()
                .take(10)
                .sum()
        };
        // backon and tokio-retry2 compute in floating point: off by nanoseconds.
        let close = |d: Duration| d.abs_diff(SCHEDULE_TOTAL) < Duration::from_micros(1);
        assert!(close(backon), "{backon:?}");
        let retry2: Duration =
            tokio_retry2::strategy::ExponentialFactorBackoff::from_millis(100, 2.0)
                .max_delay(Duration::from_secs(10))
                .take(10)
                .sum();
        assert!(close(retry2), "{retry2:?}");
        let resilience: Duration = {
            use tower_resilience::retry::IntervalFunction;
            let f = tower_resilience::retry::ExponentialBackoff::new(base)
                .multiplier(2.0)
                .expect("valid")
                .max_interval(Duration::from_secs(10));
            (0..10).map(|i| f.next_interval(i)).sum()
        };
        assert_eq!(resilience, SCHEDULE_TOTAL);
    }
}
