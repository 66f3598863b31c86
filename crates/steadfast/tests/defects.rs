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

/// Events of the calls an executor runs, in order.
#[derive(Debug, Default)]
struct Recorder(std::sync::Mutex<Vec<steadfast::observe::Event>>);

impl steadfast::observe::Observer for Recorder {
    fn on_event(&self, _: &steadfast::Key, event: &steadfast::observe::Event) {
        self.0.lock().unwrap().push(*event);
    }
}

fn recorded(policy: Retry) -> (Executor, std::sync::Arc<Recorder>) {
    let recorder = std::sync::Arc::new(Recorder::default());
    let executor = Executor::builder()
        .policies(Policies::new(policy))
        .shared_observer(recorder.clone())
        .build();
    (executor, recorder)
}

fn last_finished(recorder: &Recorder) -> (bool, Option<Stop>) {
    recorder
        .0
        .lock()
        .unwrap()
        .iter()
        .rev()
        .find_map(|e| match *e {
            steadfast::observe::Event::CallFinished { ok, stop, .. } => Some((ok, stop)),
            _ => None,
        })
        .expect("a call finished")
}

/// Statuses as results: 503 is retryable, 429 asks to wait an hour, the rest succeed.
fn statuses(r: &Result<u16, &'static str>) -> steadfast::classify::Outcome {
    use steadfast::classify::Outcome;
    match r {
        Ok(503) | Err(_) => Outcome::RETRYABLE,
        Ok(429) => Outcome::retry_after(Duration::from_secs(3600)),
        Ok(_) => Outcome::Success,
    }
}

/// Three 503s return the last response, but the call is reported as a failure that ran out of
/// attempts (it read `ok: true, stop: None` before, so metrics counted it a success).
#[tokio::test(start_paused = true)]
async fn an_exhausted_call_that_ended_on_ok_is_reported_as_a_failure() {
    let (executor, recorder) = recorded(Retry::immediate().max_attempts(3).build().unwrap());
    let tries = AtomicU32::new(0);
    let result = executor
        .call("svc.M", || {
            tries.fetch_add(1, Ordering::SeqCst);
            async { Ok::<u16, &'static str>(503) }
        })
        .classify(steadfast::classify::results(statuses))
        .run()
        .await;
    assert_eq!(result.unwrap(), 503);
    assert_eq!(tries.load(Ordering::SeqCst), 3);
    assert_eq!(last_finished(&recorder), (false, Some(Stop::Exhausted)));

    // A success is still reported as one.
    let result = executor
        .call("svc.M", || async { Ok::<u16, &'static str>(200) })
        .classify(steadfast::classify::results(statuses))
        .run()
        .await;
    assert_eq!(result.unwrap(), 200);
    assert_eq!(last_finished(&recorder), (true, None));
}

/// A server delay over `max_server_delay` stops the call by default, and the reason is in the
/// error and the events; with `cap_server_delay` the wait is cut to the most and the retry
/// says why.
#[tokio::test(start_paused = true)]
async fn a_server_delay_over_the_most_stops_visibly_or_is_capped() {
    let hour = Duration::from_secs(3600);
    let (executor, recorder) = recorded(Retry::immediate().max_attempts(3).build().unwrap());
    let result = executor
        .call("svc.M", || async { Ok::<u16, &'static str>(429) })
        .classify(steadfast::classify::results(statuses))
        .run()
        .await;
    assert_eq!(result.unwrap(), 429);
    assert_eq!(
        last_finished(&recorder),
        (false, Some(Stop::ServerDelayTooLong { requested: hour }))
    );
    let err = executor
        .call("svc.M", || async { Err::<u16, _>("busy") })
        .classify(|_: &&'static str| steadfast::classify::Outcome::retry_after(hour))
        .run()
        .await
        .unwrap_err();
    assert_eq!(
        err.stop(),
        Some(Stop::ServerDelayTooLong { requested: hour })
    );

    let capped = Retry::immediate()
        .max_attempts(2)
        .max_server_delay(Duration::from_secs(1))
        .cap_server_delay(true)
        .build()
        .unwrap();
    let (executor, recorder) = recorded(capped);
    let started = tokio::time::Instant::now();
    let result = executor
        .call("svc.M", || async { Ok::<u16, &'static str>(429) })
        .classify(steadfast::classify::results(statuses))
        .run()
        .await;
    assert_eq!(result.unwrap(), 429);
    assert_eq!(started.elapsed(), Duration::from_secs(1));
    let events = recorder.0.lock().unwrap().clone();
    assert!(events.contains(&steadfast::observe::Event::RetryScheduled {
        attempt: 1,
        delay: Duration::from_secs(1),
        reason: steadfast::observe::RetryReason::ServerDelayCapped { requested: hour },
    }));
    assert_eq!(last_finished(&recorder), (false, Some(Stop::Exhausted)));
}

/// An option the chosen kind does not use is an error, in code and in files (a call window on
/// an adaptive breaker was dropped without a word before).
#[test]
fn options_that_do_not_apply_are_errors() {
    use steadfast::breaker::{BreakerOptions, Window};
    let err = BreakerOptions::adaptive(5, 20)
        .window(Window::Calls(100))
        .build()
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "breaker.window_calls: does not apply here: only failure_rate breakers have it"
    );
    let err = BreakerOptions::consecutive(5)
        .min_calls(10)
        .slow_calls(Duration::from_secs(1), 0.5)
        .validate()
        .unwrap_err();
    assert_eq!(err.errors().len(), 2, "{err}");
    let err = Plan::new(Retry::default())
        .breaker(BreakerOptions::consecutive(5).window(Window::time(Duration::from_secs(10))))
        .unwrap_err();
    assert!(
        err.to_string()
            .contains("breaker.window: does not apply here"),
        "{err}"
    );
    let err = HedgeOptions::fixed(Duration::from_millis(5))
        .fallback(Duration::from_millis(1))
        .build()
        .unwrap_err();
    assert!(
        err.to_string().contains("hedge.fallback: does not apply"),
        "{err}"
    );
}

/// The same in a policy file: placed, with the field's name.
#[cfg(feature = "serde")]
#[test]
fn options_that_do_not_apply_are_placed_errors_in_files() {
    use steadfast::policy::{Format, PolicyDocument};
    let text = "[defaults]\nbreaker = { kind = \"adaptive\", window_calls = 100 }\n";
    let err = PolicyDocument::parse(text, Format::Toml, "p.toml").unwrap_err();
    let d = &err.diagnostics()[0];
    assert_eq!(d.line(), Some(2), "{err}");
    assert!(d.to_string().contains("window_calls"), "{err}");
}
