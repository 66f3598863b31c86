//! One matrix: each strategy of a key's plan behaves the same through every way of calling
//! it: `executor.call(..).run()`, a `Handle`, the blocking mirror, the tower layer and the
//! attribute macro. Each cell asserts the attempts the operation saw, how the call ended and
//! (where the surface reports to the executor's observers) the events.

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use steadfast::breaker::BreakerOptions;
use steadfast::budget::BudgetOptions;
use steadfast::chain::{Context, Policy, Registry, Rejection};
use steadfast::fallback::{Fallback, On};
use steadfast::hedge::HedgeOptions;
use steadfast::limit::{BulkheadOptions, RateLimitOptions};
use steadfast::observe::{Event, Observer, RejectedBy};
use steadfast::policy::{Plan, Policies};
use steadfast::tower::RetryLayer;
use steadfast::{Error, ErrorKind, Executor, Key, Retry, Stop};
use tower::{Layer, ServiceExt};

/// How a call ended, comparable across surfaces.
#[derive(Debug, Clone, PartialEq)]
enum End {
    Ok(u32),
    Failed(u32, Stop),
    CircuitOpen(u32),
    RateLimited,
    Rejected(&'static str),
}

fn end(result: Result<u32, Error<String>>) -> End {
    match result.map_err(|e| e.into_kind()) {
        Ok(v) => End::Ok(v),
        Err(ErrorKind::Operation { attempts, stop, .. }) => End::Failed(attempts, stop),
        Err(ErrorKind::CircuitOpen { attempts, .. }) => End::CircuitOpen(attempts),
        Err(ErrorKind::RateLimited { .. }) => End::RateLimited,
        Err(ErrorKind::Rejected(r)) => {
            assert_eq!(r.reason(), "refused by the chain");
            End::Rejected("refused by the chain")
        }
        Err(other) => panic!("unexpected {other:?}"),
    }
}

#[derive(Debug)]
struct Refuse;
impl Policy for Refuse {
    fn on_request(&self, _: &mut Context<'_>) -> Result<(), Rejection> {
        Err(Rejection::new("refused by the chain"))
    }
}

fn immediate(max_attempts: u32) -> Retry {
    Retry::immediate()
        .max_attempts(max_attempts)
        .build()
        .unwrap()
}

/// Every key of the matrix and its plan.
fn policies() -> Policies {
    let registry = Registry::new().register("refuse", Refuse);
    Policies::new(immediate(1))
        .with_plan("m.Retry", Plan::new(immediate(3)))
        .unwrap()
        .with_plan(
            "m.Breaker",
            Plan::new(immediate(5))
                .breaker(BreakerOptions::consecutive(2).break_duration(Duration::from_secs(60)))
                .unwrap(),
        )
        .unwrap()
        .with_plan(
            "m.Budget",
            Plan::new(immediate(10))
                .budget(BudgetOptions::quota(10, 5, 10))
                .unwrap(),
        )
        .unwrap()
        .with_plan(
            "m.Limited",
            Plan::new(immediate(3))
                .rate_limit(RateLimitOptions::new(1, Duration::from_secs(3600)))
                .unwrap(),
        )
        .unwrap()
        .with_plan(
            "m.Bulkhead",
            Plan::new(immediate(3))
                .bulkhead(BulkheadOptions::new(1))
                .unwrap(),
        )
        .unwrap()
        .with_plan(
            "m.Hedge",
            Plan::new(immediate(2))
                .idempotent(true)
                .unwrap()
                .hedge(HedgeOptions::fixed(Duration::from_secs(1)).max_hedged_attempts(1))
                .unwrap(),
        )
        .unwrap()
        .with_plan_chain("m.Chain", Plan::new(immediate(3)), &["refuse"], &registry)
        .unwrap()
}

/// What each key's calls must give, in order: the operation fails its first `fails`
/// attempts of each call (then answers 7).
struct Case {
    key: &'static str,
    fails: u32,
    calls: &'static [(u32, End)],
    /// The value of a fallback on exhaustion, set at the call site (the tower layer and the
    /// attribute macro have no call site for one).
    fallback: Option<u32>,
}

fn cases() -> Vec<Case> {
    vec![
        Case {
            key: "m.Retry",
            fails: 2,
            calls: &[(3, End::Ok(7))],
            fallback: None,
        },
        Case {
            key: "m.Retry",
            fails: 9,
            calls: &[(3, End::Failed(3, Stop::Exhausted))],
            fallback: None,
        },
        Case {
            // Two failures open the breaker within the first call; the second call is
            // refused before its first attempt.
            key: "m.Breaker",
            fails: 99,
            calls: &[(2, End::CircuitOpen(2)), (0, End::CircuitOpen(0))],
            fallback: None,
        },
        Case {
            // A quota of 10 at 5 a retry: two retries.
            key: "m.Budget",
            fails: 99,
            calls: &[(3, End::Failed(3, Stop::BudgetExhausted))],
            fallback: None,
        },
        Case {
            key: "m.Limited",
            fails: 0,
            calls: &[(1, End::Ok(7)), (0, End::RateLimited)],
            fallback: None,
        },
        Case {
            key: "m.Bulkhead",
            fails: 1,
            calls: &[(2, End::Ok(7)), (2, End::Ok(7))],
            fallback: None,
        },
        Case {
            key: "m.Chain",
            fails: 0,
            calls: &[(0, End::Rejected("refused by the chain"))],
            fallback: None,
        },
        Case {
            // A retryable failure sends the hedge at once; its failure ends the try, and the
            // second try's first attempt answers.
            key: "m.Hedge",
            fails: 2,
            calls: &[(3, End::Ok(7))],
            fallback: None,
        },
        Case {
            key: "m.Hedge",
            fails: 99,
            calls: &[(4, End::Failed(4, Stop::Exhausted))],
            fallback: None,
        },
        Case {
            key: "m.Retry",
            fails: 99,
            calls: &[(3, End::Ok(0))],
            fallback: Some(0),
        },
    ]
}

/// An operation failing the first `fails` attempts of each call.
#[derive(Clone)]
struct Op {
    fails: u32,
    tries: Arc<AtomicU32>,
}

impl Op {
    fn attempt(&self) -> Result<u32, String> {
        let n = self.tries.fetch_add(1, Ordering::SeqCst) + 1;
        if n <= self.fails {
            Err(format!("fail {n}"))
        } else {
            Ok(7)
        }
    }

    /// Attempts of this call so far, and a fresh count for the next call.
    fn take(&self) -> u32 {
        self.tries.swap(0, Ordering::SeqCst)
    }
}

#[derive(Debug, Default)]
struct Recorder(Mutex<Vec<Event>>);

impl Observer for Recorder {
    fn on_event(&self, _: &Key, event: &Event) {
        self.0.lock().unwrap().push(*event);
    }
}

impl Recorder {
    /// The events that tell the surfaces apart if they differ: attempts started, retries,
    /// refusals and how calls ended (durations left out).
    fn take(&self) -> Vec<String> {
        std::mem::take(&mut *self.0.lock().unwrap())
            .into_iter()
            .filter_map(|e| match e {
                Event::AttemptStarted { attempt, .. } => Some(format!("attempt {attempt}")),
                Event::RetryScheduled { attempt, .. } => Some(format!("retry after {attempt}")),
                Event::Rejected { by, .. } => Some(format!("rejected by {}", by_name(by))),
                Event::BudgetExhausted { attempt, .. } => Some(format!("budget out at {attempt}")),
                Event::HedgeLaunched { attempt, .. } => Some(format!("hedge {attempt}")),
                Event::FallbackUsed => Some("fallback".to_owned()),
                Event::CallFinished {
                    attempts, ok, stop, ..
                } => Some(format!("finished {attempts} ok={ok} stop={stop:?}")),
                _ => None,
            })
            .collect()
    }
}

fn by_name(by: RejectedBy) -> &'static str {
    by.as_str()
}

fn observed() -> (Executor, Arc<Recorder>) {
    let recorder = Arc::new(Recorder::default());
    let executor = Executor::builder()
        .policies(policies())
        .shared_observer(recorder.clone())
        .build();
    (executor, recorder)
}

/// One surface's results for every case: (attempts, end) per call and the events.
type Seen = Vec<(Vec<(u32, End)>, Vec<String>)>;

/// Every case through one surface: `one` makes one call of `key` with the operation.
async fn through(
    fallback: bool,
    mut one: impl AsyncFnMut(&Executor, &Case, Op) -> Result<u32, Error<String>>,
) -> Seen {
    let mut seen = Vec::new();
    for case in cases()
        .into_iter()
        .filter(|c| fallback || c.fallback.is_none())
    {
        let (executor, recorder) = observed();
        let op = Op {
            fails: case.fails,
            tries: Default::default(),
        };
        let mut calls = Vec::new();
        for _ in case.calls {
            let result = one(&executor, &case, op.clone()).await;
            calls.push((op.take(), end(result)));
        }
        seen.push((calls, recorder.take()));
    }
    seen
}

fn fallback(value: u32) -> Fallback<On, steadfast::fallback::Value<u32>> {
    Fallback::on(On::EXHAUSTED).value(value)
}

async fn through_call() -> Seen {
    through(true, async |executor: &Executor, case: &Case, op: Op| {
        let call = executor.call(case.key, move || std::future::ready(op.attempt()));
        match case.fallback {
            None => call.run().await,
            Some(v) => call.fallback(fallback(v)).run().await,
        }
    })
    .await
}

async fn through_handle() -> Seen {
    through(true, async |executor: &Executor, case: &Case, op: Op| {
        let handle = executor.handle(case.key).unwrap();
        let call = handle.call(move || std::future::ready(op.attempt()));
        match case.fallback {
            None => call.run().await,
            Some(v) => call.fallback(fallback(v)).run().await,
        }
    })
    .await
}

async fn through_tower() -> Seen {
    through(false, async |executor: &Executor, case: &Case, op: Op| {
        let layer = RetryLayer::new(executor.handle(case.key).unwrap());
        let svc = layer.layer(tower::service_fn(move |()| {
            std::future::ready(op.attempt())
        }));
        svc.oneshot(()).await
    })
    .await
}

/// The blocking mirror, driven by the same loop on a thread of its own.
fn through_blocking() -> Seen {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    runtime.block_on(through(
        true,
        async |executor: &Executor, case: &Case, op: Op| {
            let call = executor.call_blocking(case.key, || op.attempt());
            match case.fallback {
                None => call.run(),
                Some(v) => call.fallback(fallback(v)).run(),
            }
        },
    ))
}

#[tokio::test(start_paused = true)]
async fn every_strategy_behaves_the_same_on_every_surface() {
    let call = through_call().await;
    for ((calls, _), case) in call.iter().zip(cases()) {
        assert_eq!(calls, case.calls, "{}", case.key);
    }
    assert_eq!(through_handle().await, call, "Handle");
    assert_eq!(through_tower().await, without_fallback(&call), "tower");
    let blocking = tokio::task::spawn_blocking(through_blocking).await.unwrap();
    assert_eq!(blocking, call, "blocking");
}

/// A surface's results for the cases without a call-site fallback.
fn without_fallback(seen: &Seen) -> Seen {
    seen.iter()
        .zip(cases())
        .filter(|(_, case)| case.fallback.is_none())
        .map(|(s, _)| s.clone())
        .collect()
}

// The attribute macro runs through the process-wide executor, one function per key.
static MACRO_OP: Mutex<Option<Op>> = Mutex::new(None);

fn macro_attempt() -> Result<u32, String> {
    MACRO_OP.lock().unwrap().as_ref().unwrap().attempt()
}

/// One attributed function per key (the attribute names its key as a literal).
macro_rules! keyed {
    ($($name:ident => $key:literal),* $(,)?) => {
        $(
            #[steadfast::retry($key)]
            async fn $name() -> Result<u32, String> {
                macro_attempt()
            }
        )*
    };
}

keyed! {
    m_retry => "m.Retry",
    m_breaker => "m.Breaker",
    m_budget => "m.Budget",
    m_limited => "m.Limited",
    m_bulkhead => "m.Bulkhead",
    m_chain => "m.Chain",
    m_hedge => "m.Hedge",
}

#[tokio::test(start_paused = true)]
async fn the_attribute_macro_gives_the_same_attempts_and_ends() {
    for case in cases().into_iter().filter(|c| c.fallback.is_none()) {
        // A fresh plan per case, so strategies' state starts over like the other surfaces'.
        steadfast::executor().set_policies(policies());
        let op = Op {
            fails: case.fails,
            tries: Default::default(),
        };
        *MACRO_OP.lock().unwrap() = Some(op.clone());
        let mut calls = Vec::new();
        for _ in case.calls {
            let result = match case.key {
                "m.Retry" => m_retry().await,
                "m.Breaker" => m_breaker().await,
                "m.Budget" => m_budget().await,
                "m.Limited" => m_limited().await,
                "m.Bulkhead" => m_bulkhead().await,
                "m.Hedge" => m_hedge().await,
                _ => m_chain().await,
            };
            calls.push((op.take(), end(result)));
        }
        assert_eq!(calls, case.calls, "{}", case.key);
    }
}
