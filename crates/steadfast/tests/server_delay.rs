//! Server-given delays (Retry-After, gRPC pushback) are honoured exactly; refusals stop at once.

mod support;

use std::time::{Duration, UNIX_EPOCH};

use steadfast::classify::{Outcome, grpc, http};
use steadfast::{ErrorKind, Jitter, Retry, Stop};
use support::{Attempts, ms};

fn policy() -> steadfast::RetryOptions {
    // A computed backoff very different from any server delay, so the tests tell them apart.
    Retry::exponential(ms(10))
        .jitter(Jitter::Full)
        .max_attempts(3)
}

/// A response: a status code and a header value.
#[derive(Debug, Clone, Copy)]
struct Resp(u16, Option<&'static str>);

#[tokio::test(start_paused = true)]
async fn retry_after_seconds_is_honoured_exactly() {
    let retry = policy().build().unwrap();
    let rec = Attempts::new();
    let err = retry
        .call(|| {
            rec.record();
            async { Err::<(), _>(Resp(503, Some("120"))) }
        })
        .classify_error(|r| http::response(r.0, r.1))
        .run()
        .await
        .unwrap_err();
    assert_eq!(err.attempts(), 3);
    assert_eq!(rec.gaps(), [Duration::from_secs(120); 2]);
}

#[tokio::test(start_paused = true)]
async fn retry_after_http_date_is_honoured_exactly() {
    // The server's clock says the date is 90 s away.
    let now = UNIX_EPOCH + Duration::from_secs(946_684_799 - 90);
    let rules = http::HttpRules::new();
    let retry = policy().max_attempts(2).build().unwrap();
    let rec = Attempts::new();
    let _ = retry
        .call(|| {
            rec.record();
            async { Err::<(), _>(Resp(429, Some("Fri, 31 Dec 1999 23:59:59 GMT"))) }
        })
        .classify_error(|r| rules.response_at(r.0, r.1, now))
        .run()
        .await;
    assert_eq!(rec.gaps(), [Duration::from_secs(90)]);
}

#[tokio::test(start_paused = true)]
async fn grpc_pushback_is_honoured_exactly_and_negative_stops() {
    let retry = policy().max_attempts(4).build().unwrap();
    let rec = Attempts::new();
    let result = retry
        .call(|| {
            let n = rec.record();
            async move {
                match n {
                    1 | 2 => Err::<(), _>((grpc::Code::ResourceExhausted, Some("250"))),
                    _ => Err((grpc::Code::Unavailable, Some("-1"))),
                }
            }
        })
        .classify_error(|(code, pushback): &(grpc::Code, Option<&str>)| {
            grpc::classify(*code, *pushback)
        })
        .run()
        .await;
    assert_eq!(rec.gaps(), [ms(250), ms(250)]);
    let err = result.unwrap_err();
    assert_eq!(err.stop(), Some(Stop::Aborted));
    assert_eq!(err.attempts(), 3);
}

#[tokio::test(start_paused = true)]
async fn a_server_delay_past_the_deadline_fails_at_once() {
    let retry = policy()
        .max_attempts(10)
        .total_timeout(Duration::from_secs(60))
        .build()
        .unwrap();
    let start = tokio::time::Instant::now();
    let err = retry
        .call(|| async { Err::<(), _>(Resp(503, Some("120"))) })
        .classify_error(|r| http::response(r.0, r.1))
        .run()
        .await
        .unwrap_err();
    assert_eq!(
        start.elapsed(),
        Duration::ZERO,
        "it must not sleep towards the deadline"
    );
    assert!(matches!(
        err.into_kind(),
        ErrorKind::Operation {
            attempts: 1,
            stop: Stop::Deadline,
            source: Resp(503, _),
            ..
        }
    ));
}

#[tokio::test(start_paused = true)]
async fn a_server_delay_above_the_cap_stops_instead_of_being_shortened() {
    let retry = policy()
        .max_server_delay(Duration::from_secs(60))
        .build()
        .unwrap();
    let err = retry
        .call(|| async { Err::<(), _>(Resp(503, Some("3600"))) })
        .classify_error(|r| http::response(r.0, r.1))
        .run()
        .await
        .unwrap_err();
    assert_eq!(
        err.stop(),
        Some(Stop::ServerDelayTooLong {
            requested: Duration::from_secs(3600)
        })
    );
}

#[tokio::test(start_paused = true)]
async fn pushback_restarts_the_computed_schedule() {
    // gRPC A6: after a pushback the backoff starts again from the initial delay.
    let retry = Retry::exponential(ms(100))
        .jitter(Jitter::None)
        .max_attempts(6)
        .build()
        .unwrap();
    let rec = Attempts::new();
    let _ = retry
        .call(|| {
            let n = rec.record();
            async move { Err::<(), _>(if n == 3 { Some(ms(1000)) } else { None }) }
        })
        .classify_error(|e| Outcome::Retryable { after: *e })
        .run()
        .await;
    assert_eq!(rec.gaps(), [100, 200, 1000, 100, 200].map(ms));
}

#[tokio::test(start_paused = true)]
async fn unparsable_retry_after_falls_back_to_the_backoff() {
    let retry = Retry::fixed(ms(40))
        .jitter(Jitter::None)
        .max_attempts(2)
        .build()
        .unwrap();
    let rec = Attempts::new();
    let _ = retry
        .call(|| {
            rec.record();
            async { Err::<(), _>(Resp(503, Some("later, please"))) }
        })
        .classify_error(|r| http::response(r.0, r.1))
        .run()
        .await;
    assert_eq!(rec.gaps(), [ms(40)]);
}
