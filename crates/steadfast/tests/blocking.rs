//! The blocking API follows the async engine's rules on the calling thread.

use std::cell::Cell;
use std::ops::ControlFlow;
use std::time::{Duration, Instant};

use steadfast::classify::{self, Outcome};
use steadfast::{ErrorKind, Jitter, Retry, Stop, TimeoutScope};

fn ms(v: u64) -> Duration {
    Duration::from_millis(v)
}

#[test]
fn exact_attempt_count_and_delays() {
    let retry = Retry::exponential(ms(1))
        .jitter(Jitter::None)
        .max_attempts(4)
        .build()
        .unwrap();
    let tries = Cell::new(0);
    let mut delays = Vec::new();
    let err = retry
        .call_blocking(|| {
            tries.set(tries.get() + 1);
            Err::<(), _>("down")
        })
        .on_retry(|r| delays.push(r.delay()))
        .run()
        .unwrap_err();
    assert_eq!(tries.get(), 4);
    assert_eq!(err.stop(), Some(Stop::Exhausted));
    assert_eq!(delays, [ms(1), ms(2), ms(4)]);
}

#[test]
fn non_retryable_errors_return_at_once() {
    let retry = Retry::fixed(ms(1)).build().unwrap();
    let tries = Cell::new(0);
    let err = retry
        .call_blocking(|| {
            tries.set(tries.get() + 1);
            Err::<(), _>(std::io::Error::from(std::io::ErrorKind::PermissionDenied))
        })
        .classify(classify::ByTrait)
        .run()
        .unwrap_err();
    assert_eq!(tries.get(), 1);
    assert_eq!(err.stop(), Some(Stop::NonRetryable));
}

#[test]
fn an_overrunning_attempt_counts_as_timed_out() {
    let retry = Retry::fixed(ms(1))
        .max_attempts(2)
        .attempt_timeout(ms(20))
        .build()
        .unwrap();
    let tries = Cell::new(0);
    let value = retry
        .run_blocking(|| {
            tries.set(tries.get() + 1);
            if tries.get() == 1 {
                std::thread::sleep(ms(40));
            }
            Ok::<_, ()>(tries.get())
        })
        .unwrap();
    assert_eq!(value, 2, "the late first success was dropped as timed out");
}

#[test]
fn the_total_deadline_bounds_sleeps() {
    let retry = Retry::fixed(ms(30))
        .jitter(Jitter::None)
        .unbounded()
        .total_timeout(ms(100))
        .build()
        .unwrap();
    let start = Instant::now();
    let err = retry.run_blocking(|| Err::<(), _>("down")).unwrap_err();
    // Attempts at 0, 30, 60, 90; the next would start at 120 > 100.
    assert_eq!(err.attempts(), 4);
    assert_eq!(err.stop(), Some(Stop::Deadline));
    assert!(start.elapsed() < ms(100));

    let err = Retry::fixed(ms(1))
        .total_timeout(ms(20))
        .build()
        .unwrap()
        .run_blocking(|| {
            std::thread::sleep(ms(30));
            Err::<(), _>("slow")
        })
        .unwrap_err();
    assert!(matches!(
        err.into_kind(),
        ErrorKind::Timeout {
            scope: TimeoutScope::Total,
            attempts: 1,
            ..
        }
    ));
}

#[test]
fn result_classifiers_return_the_last_ok() {
    let retry = Retry::fixed(ms(1)).max_attempts(3).build().unwrap();
    let tries = Cell::new(0);
    let status = retry
        .call_blocking(|| {
            tries.set(tries.get() + 1);
            Ok::<u16, ()>(503)
        })
        .classify(classify::results(|r: &Result<u16, ()>| match r {
            Ok(s) => classify::http::status(*s),
            Err(()) => Outcome::RETRYABLE,
        }))
        .run()
        .unwrap();
    assert_eq!((status, tries.get()), (503, 3));
}

#[test]
fn loops_reset_after_success() {
    let retry = Retry::fixed(ms(1)).max_attempts(2).build().unwrap();
    let script = ["err", "ok", "err", "ok", "err", "stop"];
    let i = Cell::new(0);
    let mut retries = Vec::new();
    let out = retry
        .call_blocking(|| {
            let step = script[i.get()];
            i.set(i.get() + 1);
            match step {
                "err" => Err("reset"),
                "ok" => Ok(ControlFlow::Continue(())),
                _ => Ok(ControlFlow::Break(i.get())),
            }
        })
        .on_retry(|r| retries.push(r.attempt()))
        .run_loop()
        .unwrap();
    assert_eq!(out, 6);
    assert_eq!(
        retries,
        [1, 1, 1],
        "attempts count from 1 again after each success"
    );

    // Two failures in a row exhaust a two-attempt policy and end the loop.
    let err = retry
        .call_blocking(|| Err::<ControlFlow<()>, _>("down"))
        .run_loop()
        .unwrap_err();
    assert_eq!(err.attempts(), 2);
}

#[test]
fn the_default_one_liner() {
    let tries = Cell::new(0);
    let value = steadfast::run_blocking("svc.Flaky", || {
        tries.set(tries.get() + 1);
        if tries.get() < 2 {
            Err("flaky")
        } else {
            Ok("done")
        }
    });
    assert_eq!(value.unwrap(), "done");
}

/// A blocking call by key fills a timeline as the async call does (every attempt, its wait
/// and its outcome), beside the executor's observers or without them.
#[test]
fn a_blocking_call_by_key_fills_a_timeline() {
    use std::sync::{Arc, Mutex};
    use steadfast::observe::{AttemptEnd, Event, Observer, Timeline};
    use steadfast::policy::Policies;
    use steadfast::{Executor, Key};

    #[derive(Debug, Default)]
    struct Started(Mutex<u32>);
    impl Observer for Started {
        fn on_event(&self, _: &Key, event: &Event) {
            if matches!(event, Event::AttemptStarted { .. }) {
                *self.0.lock().unwrap() += 1;
            }
        }
    }

    let policy = Retry::immediate().max_attempts(4).build().unwrap();
    for observed in [false, true] {
        let started = Arc::new(Started::default());
        let mut builder = Executor::builder().policies(Policies::new(policy.clone()));
        if observed {
            builder = builder.shared_observer(started.clone());
        }
        let executor = builder.build();
        let mut timeline = Timeline::default();
        let mut tries = 0;
        let value = executor
            .call_blocking("disk.Read", || {
                tries += 1;
                if tries < 3 { Err("busy") } else { Ok(tries) }
            })
            .timeline(&mut timeline)
            .run();
        assert_eq!(value.unwrap(), 3);
        let attempts = timeline.attempts();
        assert_eq!(attempts.len(), 3, "observed: {observed}");
        assert_eq!(
            attempts.iter().map(|a| a.index()).collect::<Vec<_>>(),
            [1, 2, 3]
        );
        assert_eq!(attempts[0].delay_before(), Duration::ZERO);
        assert_eq!(attempts[1].delay_before(), Duration::ZERO);
        assert_eq!(attempts[2].end(), AttemptEnd::Ok);
        assert_eq!(*started.0.lock().unwrap(), if observed { 3 } else { 0 });
    }
}
