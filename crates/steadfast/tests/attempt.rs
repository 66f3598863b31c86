//! The attempt context: an operation of one argument sees its attempt's number, whether it is
//! a hedge, the time left before the deadline and the previous outcome; an async `on_retry`
//! hook leaves values the next attempt reads.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use steadfast::classify::Outcome;
use steadfast::hedge::HedgeOptions;
use steadfast::policy::{Plan, Policies};
use steadfast::{Attempt, Executor, Jitter, Retry};

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

#[tokio::test(start_paused = true)]
async fn the_operation_sees_the_time_left_shrink_under_a_total_timeout() {
    let retry = Retry::fixed(ms(100))
        .jitter(Jitter::None)
        .max_attempts(4)
        .total_timeout(ms(1000))
        .build()
        .unwrap();
    let executor = Executor::new(Policies::new(retry));
    let seen = Arc::new(Mutex::new(Vec::new()));
    let log = seen.clone();
    let result = executor
        .call("svc.Call", move |attempt: &Attempt| {
            log.lock()
                .unwrap()
                .push((attempt.number(), attempt.remaining(), attempt.previous()));
            async {
                tokio::time::sleep(ms(50)).await;
                Err::<(), _>("busy")
            }
        })
        .run()
        .await;
    assert_eq!(result.unwrap_err().attempts(), 4);
    // Each attempt takes 50 ms and each wait 100 ms: 150 ms less each time.
    assert_eq!(
        *seen.lock().unwrap(),
        [
            (1, Some(ms(1000)), None),
            (2, Some(ms(850)), Some(Outcome::RETRYABLE)),
            (3, Some(ms(700)), Some(Outcome::RETRYABLE)),
            (4, Some(ms(550)), Some(Outcome::RETRYABLE)),
        ]
    );
}

#[derive(Debug, Clone, PartialEq)]
struct Replica(&'static str);

#[tokio::test(start_paused = true)]
async fn an_async_on_retry_hook_enriches_the_next_attempt() {
    let executor = Executor::new(Policies::new(
        Retry::fixed(ms(100))
            .jitter(Jitter::None)
            .max_attempts(3)
            .build()
            .unwrap(),
    ));
    let seen = Arc::new(Mutex::new(Vec::new()));
    let log = seen.clone();
    let hook_log = seen.clone();
    let started = tokio::time::Instant::now();
    let answer = executor
        .call("search.Query", move |attempt: &Attempt| {
            let replica = attempt.extensions().get::<Replica>();
            log.lock()
                .unwrap()
                .push(format!("attempt {} on {replica:?}", attempt.number()));
            async move {
                match replica {
                    Some(Replica("eu-3")) => Ok("found"),
                    _ => Err("busy"),
                }
            }
        })
        .on_retry_async(move |note, extensions| {
            let log = hook_log.clone();
            async move {
                // An awaited lookup before the wait for the next attempt.
                tokio::time::sleep(ms(10)).await;
                let next = if note.attempt() == 1 { "eu-2" } else { "eu-3" };
                log.lock()
                    .unwrap()
                    .push(format!("after {} try {next}", note.attempt()));
                extensions.insert(Replica(next));
            }
        })
        .run()
        .await;
    assert_eq!(answer.unwrap(), "found");
    assert_eq!(
        *seen.lock().unwrap(),
        [
            "attempt 1 on None",
            "after 1 try eu-2",
            "attempt 2 on Some(Replica(\"eu-2\"))",
            "after 2 try eu-3",
            "attempt 3 on Some(Replica(\"eu-3\"))",
        ]
    );
    // Two hooks of 10 ms, each before its 100 ms wait.
    assert_eq!(started.elapsed(), ms(220));
}

#[tokio::test(start_paused = true)]
async fn a_hedge_knows_it_is_one() {
    let plan = Plan::new(Retry::immediate().max_attempts(1).build().unwrap())
        .idempotent(true)
        .unwrap()
        .hedge(HedgeOptions::fixed(ms(20)))
        .unwrap();
    let executor = Executor::new(Policies::default().with_plan("svc.*", plan).unwrap());
    let handle = executor.handle("svc.Slow").unwrap();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let log = seen.clone();
    let answer = handle
        .call(move |attempt: &Attempt| {
            log.lock()
                .unwrap()
                .push((attempt.number(), attempt.is_hedge()));
            let hedge = attempt.is_hedge();
            async move {
                tokio::time::sleep(if hedge { ms(5) } else { ms(100) }).await;
                Ok::<_, &str>(if hedge { "hedge" } else { "first" })
            }
        })
        .run()
        .await;
    assert_eq!(answer.unwrap(), "hedge");
    assert_eq!(*seen.lock().unwrap(), [(1, false), (2, true)]);
}
