//! Circuit-breaker scenarios: steadfast beside failsafe, recloser and tower-resilience on the
//! closed happy path (one thread and two), and the five-strategy pipeline beside
//! tower-resilience's layer stack.

use std::hint::black_box;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use tokio::runtime::Runtime;
use tower::Layer;

use super::{FAILS, Fail, Runner, call_tower, op, runtime};

/// A breaker that a first-try success never opens, in every implementation: 50 % over the
/// last 100 calls (resilience4j's and recloser's defaults).
fn steadfast_breaker() -> steadfast::breaker::Breaker {
    steadfast::breaker::Breaker::failure_rate(0.5)
        .build()
        .expect("valid")
}

fn once() -> steadfast::Retry {
    steadfast::Retry::immediate()
        .max_attempts(1)
        .build()
        .expect("valid")
}

fn failsafe_breaker() -> impl failsafe::futures::CircuitBreaker + Clone + Send + Sync + 'static {
    failsafe::Config::new().build()
}

fn recloser_breaker() -> recloser::AsyncRecloser {
    recloser::AsyncRecloser::from(recloser::Recloser::default())
}

pub(crate) fn closed() -> Vec<Runner> {
    let tower_resilience = tower_resilience::circuitbreaker::CircuitBreakerLayer::builder()
        .failure_rate_threshold(0.5)
        .sliding_window_size(100)
        .build()
        .expect("valid")
        .layer(tower::service_fn(|()| op()));
    vec![
        call_runner!(
            "steadfast",
            0,
            |s| s.1.call(op).breaker(&s.0).run().await.expect("success"),
            (steadfast_breaker(), once())
        ),
        call_runner!(
            "failsafe",
            0,
            |b| {
                use failsafe::futures::CircuitBreaker;
                b.call(op()).await.expect("success")
            },
            failsafe_breaker()
        ),
        call_runner!(
            "recloser",
            0,
            |b| b.call(op()).await.expect("success"),
            recloser_breaker()
        ),
        call_runner!(
            "tower-resilience",
            0,
            |svc| call_tower(svc).await,
            tower_resilience
        ),
    ]
}

/// Runs `iters` calls split over two threads, each on its own current-thread runtime, all
/// through one shared breaker; returns the wall time.
fn two_threads<S, F>(name: &'static str, shared: S, call: F) -> Runner
where
    S: Clone + Send + Sync + 'static,
    F: for<'a> AsyncCall<'a, S> + Copy + Send + Sync + 'static,
{
    Runner {
        name,
        run: Box::new(move |_: &Runtime, iters: u64| {
            FAILS.store(0, Ordering::Relaxed);
            let barrier = std::sync::Barrier::new(2);
            let start = std::sync::Mutex::new(None::<Instant>);
            std::thread::scope(|scope| {
                for _ in 0..2 {
                    let (shared, barrier, start) = (shared.clone(), &barrier, &start);
                    scope.spawn(move || {
                        let rt = runtime();
                        rt.block_on(async {
                            barrier.wait();
                            start
                                .lock()
                                .expect("not poisoned")
                                .get_or_insert_with(Instant::now);
                            for _ in 0..iters / 2 {
                                assert_eq!(black_box(call.call(&shared).await), 1);
                            }
                        });
                    });
                }
            });
            let started = start.lock().expect("not poisoned").expect("started");
            started.elapsed()
        }),
    }
}

/// One call of a two-thread runner.
pub(crate) trait AsyncCall<'a, S: 'a> {
    type Fut: std::future::Future<Output = u64> + 'a;
    fn call(self, shared: &'a S) -> Self::Fut;
}

impl<'a, S: 'a, F, Fut> AsyncCall<'a, S> for F
where
    F: FnOnce(&'a S) -> Fut,
    Fut: std::future::Future<Output = u64> + 'a,
{
    type Fut = Fut;
    fn call(self, shared: &'a S) -> Fut {
        self(shared)
    }
}

type TowerBreaker = tower_resilience::circuitbreaker::CircuitBreaker<
    tower::util::ServiceFn<
        fn(()) -> std::pin::Pin<Box<dyn std::future::Future<Output = Result<u64, Fail>> + Send>>,
    >,
    tower_resilience::circuitbreaker::DefaultClassifier,
>;

async fn steadfast_call(s: &(steadfast::breaker::Breaker, steadfast::Retry)) -> u64 {
    s.1.call(op).breaker(&s.0).run().await.expect("success")
}

async fn failsafe_call(
    b: &failsafe::StateMachine<
        failsafe::failure_policy::OrElse<
            failsafe::failure_policy::SuccessRateOverTimeWindow<failsafe::backoff::EqualJittered>,
            failsafe::failure_policy::ConsecutiveFailures<failsafe::backoff::EqualJittered>,
        >,
        (),
    >,
) -> u64 {
    use failsafe::futures::CircuitBreaker;
    b.call(op()).await.expect("success")
}

async fn recloser_call(b: &recloser::AsyncRecloser) -> u64 {
    b.call(op()).await.expect("success")
}

async fn tower_call(svc: &TowerBreaker) -> u64 {
    call_tower(&mut svc.clone()).await
}

fn boxed_op(
    _: (),
) -> std::pin::Pin<Box<dyn std::future::Future<Output = Result<u64, Fail>> + Send>> {
    Box::pin(op())
}

pub(crate) fn contended() -> Vec<Runner> {
    let tower: TowerBreaker = tower_resilience::circuitbreaker::CircuitBreakerLayer::builder()
        .failure_rate_threshold(0.5)
        .sliding_window_size(100)
        .build()
        .expect("valid")
        .layer(tower::service_fn(boxed_op as fn(()) -> _));
    vec![
        two_threads("steadfast", (steadfast_breaker(), once()), steadfast_call),
        two_threads("failsafe", failsafe::Config::new().build(), failsafe_call),
        two_threads("recloser", recloser_breaker(), recloser_call),
        two_threads("tower-resilience", tower, tower_call),
    ]
}

pub(crate) fn pipeline() -> Vec<Runner> {
    let retry = steadfast::Retry::immediate()
        .max_attempts(3)
        .attempt_timeout(Duration::from_secs(5))
        .total_timeout(Duration::from_secs(30))
        .build()
        .expect("valid");
    let limiter = steadfast::limit::RateLimiter::per_second(1_000_000_000)
        .build()
        .expect("valid");

    // tower-resilience: the same five as layers, outermost first.
    type AttemptErr = tower_resilience::timelimiter::TimeLimiterError<Fail>;
    type BreakerErr = tower_resilience::circuitbreaker::CircuitBreakerError<AttemptErr>;
    let stack = tower::ServiceBuilder::new()
        .layer(
            tower_resilience::ratelimiter::RateLimiterLayer::builder()
                .limit_for_period(1_000_000_000)
                .refresh_period(Duration::from_secs(1))
                .build()
                .expect("valid"),
        )
        .layer(
            tower_resilience::timelimiter::TimeLimiterLayer::builder()
                .timeout_duration(Duration::from_secs(30))
                .build(),
        )
        .layer(
            tower_resilience::retry::RetryLayer::<(), u64, BreakerErr>::builder()
                .max_attempts(3)
                .fixed_backoff(Duration::ZERO)
                .build(),
        )
        .layer(
            tower_resilience::circuitbreaker::CircuitBreakerLayer::builder()
                .failure_rate_threshold(0.5)
                .sliding_window_size(100)
                .build()
                .expect("valid"),
        )
        .layer(
            tower_resilience::timelimiter::TimeLimiterLayer::builder()
                .timeout_duration(Duration::from_secs(5))
                .build(),
        )
        .service(tower::service_fn(|()| op()));
    vec![
        call_runner!(
            "steadfast",
            0,
            |s| s
                .0
                .call(op)
                .rate_limiter(&s.1)
                .breaker(&s.2)
                .run()
                .await
                .expect("success"),
            (retry, limiter, steadfast_breaker())
        ),
        call_runner!("tower-resilience", 0, |svc| call_tower(svc).await, stack),
    ]
}
