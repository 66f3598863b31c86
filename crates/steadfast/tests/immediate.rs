//! A plain call under an immediate backoff retries at once without building the engine's
//! state; the rules are the engine's all the same: exact attempt counts, the stop reason, a
//! server's delay honoured, a non-retryable failure or an `Ok` called a failure ending the
//! call as any other policy ends it.

mod support;

use std::time::Duration;

use steadfast::classify::{self, Outcome, http};
use steadfast::policy::Policies;
use steadfast::{ErrorKind, Executor, Retry, Stop};
use support::{Attempts, ms};

fn immediate(attempts: u32) -> Retry {
    Retry::immediate().max_attempts(attempts).build().unwrap()
}

#[tokio::test]
async fn two_failures_then_success_takes_three_attempts() {
    let rec = Attempts::new();
    let value = immediate(3)
        .run(|| {
            let n = rec.record() - 1; // 0 for the first attempt
            async move {
                if n < 2 {
                    Err(std::io::Error::from(std::io::ErrorKind::ConnectionReset))
                } else {
                    Ok(n)
                }
            }
        })
        .await
        .unwrap();
    assert_eq!((value, rec.count()), (2, 3));
}

#[tokio::test]
async fn every_attempt_failing_ends_exhausted_with_the_count() {
    for attempts in 1..=4 {
        let rec = Attempts::new();
        let err = immediate(attempts)
            .run(|| {
                rec.record();
                async { Err::<(), _>(std::io::Error::from(std::io::ErrorKind::TimedOut)) }
            })
            .await
            .unwrap_err();
        assert_eq!(rec.count(), attempts as usize);
        assert_eq!(err.attempts(), attempts);
        assert_eq!(err.stop(), Some(Stop::Exhausted), "{attempts} attempts");
    }
}

/// After two retryable failures, a non-retryable one (400) and an error the classifier calls
/// a success (204) each end the call at once, with the three attempts made.
#[tokio::test]
async fn a_failure_that_ends_retrying_after_retries_stops_at_once() {
    for last in [400u16, 204] {
        let rec = Attempts::new();
        let err = immediate(5)
            .call(|| {
                let n = rec.record() - 1; // 0 for the first attempt
                async move { Err::<(), _>(if n < 2 { 503 } else { last }) }
            })
            .classify_error(|status: &u16| http::response(*status, None))
            .run()
            .await
            .unwrap_err();
        assert_eq!(rec.count(), 3, "{last}");
        assert_eq!(err.attempts(), 3, "{last}");
        assert_eq!(err.stop(), Some(Stop::NonRetryable), "{last}");
        assert!(
            matches!(err.kind(), ErrorKind::Operation { source, .. } if *source == last),
            "{last}"
        );
    }
}

#[tokio::test(start_paused = true)]
async fn a_server_delay_between_immediate_retries_is_honoured() {
    let rec = Attempts::new();
    let value = immediate(4)
        .call(|| {
            let n = rec.record() - 1; // 0 for the first attempt
            async move {
                match n {
                    0 => Err(Outcome::Retryable { after: None }),
                    1 => Err(Outcome::Retryable {
                        after: Some(ms(250)),
                    }),
                    2 => Err(Outcome::Retryable { after: None }),
                    _ => Ok(n),
                }
            }
        })
        .classify_error(|o: &Outcome| *o)
        .run()
        .await
        .unwrap();
    assert_eq!(value, 3);
    assert_eq!(rec.gaps(), [Duration::ZERO, ms(250), Duration::ZERO]);
}

#[tokio::test]
async fn an_ok_called_a_failure_is_retried_and_returned_when_attempts_run_out() {
    let rec = Attempts::new();
    let value = immediate(3)
        .call(|| {
            rec.record();
            async { Ok::<u16, std::io::Error>(503) }
        })
        .classify(classify::results(
            |r: &Result<u16, std::io::Error>| match r {
                Ok(status) => http::response(*status, None),
                Err(_) => Outcome::Retryable { after: None },
            },
        ))
        .run()
        .await
        .unwrap();
    assert_eq!((value, rec.count()), (503, 3));
}

#[tokio::test]
async fn an_immediate_policy_by_key_takes_the_same_attempts() {
    let executor = Executor::new(Policies::new(immediate(4)));
    let handle = executor.handle("svc.Method").unwrap();
    let rec = Attempts::new();
    let err = executor
        .run("svc.Method", || {
            rec.record();
            async { Err::<(), _>(std::io::Error::from(std::io::ErrorKind::ConnectionRefused)) }
        })
        .await
        .unwrap_err();
    assert_eq!((rec.count(), err.attempts()), (4, 4));
    assert_eq!(err.stop(), Some(Stop::Exhausted));
    let rec = Attempts::new();
    let value = handle
        .run(|| {
            let n = rec.record() - 1; // 0 for the first attempt
            async move {
                if n < 3 {
                    Err(std::io::Error::from(std::io::ErrorKind::ConnectionRefused))
                } else {
                    Ok(n)
                }
            }
        })
        .await
        .unwrap();
    assert_eq!((value, rec.count()), (3, 4));
}
