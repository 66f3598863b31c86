//! The tower layer: a service's calls run under a key's plan, each attempt with a copy of
//! the request; a request that cannot be copied is sent once, never retried without it.

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use steadfast::tower::RetryLayer;
use steadfast::{Error, Executor, Jitter, Retry, Stop, classify, policy::Policies};
use tower::{Layer, Service, ServiceExt};

fn executor() -> Executor {
    Executor::new(Policies::new(
        Retry::fixed(Duration::from_millis(10))
            .jitter(Jitter::None)
            .max_attempts(4)
            .build()
            .unwrap(),
    ))
}

/// Fails the first `fails` calls, then echoes the request.
fn flaky(
    fails: u32,
    calls: &Arc<AtomicU32>,
) -> impl Service<String, Response = String, Error = String, Future = impl Send> + Clone + Send + 'static
{
    let calls = calls.clone();
    tower::service_fn(move |req: String| {
        let n = calls.fetch_add(1, Ordering::SeqCst) + 1;
        async move {
            if n <= fails {
                Err(format!("busy {n}"))
            } else {
                Ok(format!("{req} after {n}"))
            }
        }
    })
}

#[tokio::test(start_paused = true)]
async fn retries_with_a_copy_of_the_request() {
    let calls = Arc::new(AtomicU32::new(0));
    let layer = RetryLayer::new(executor().handle("svc.Echo").unwrap());
    let mut svc = layer.layer(flaky(2, &calls));
    let response = svc
        .ready()
        .await
        .unwrap()
        .call("hello".to_string())
        .await
        .unwrap();
    assert_eq!(response, "hello after 3");
    assert_eq!(calls.load(Ordering::SeqCst), 3);

    // Exhaustion reports the service's last error with the attempt count.
    let calls = Arc::new(AtomicU32::new(0));
    let mut svc = layer.layer(flaky(10, &calls));
    let err = svc
        .ready()
        .await
        .unwrap()
        .call("x".to_string())
        .await
        .unwrap_err();
    assert!(
        matches!(&err, Error::Operation { source, attempts: 4, stop: Stop::Exhausted, .. } if source == "busy 4")
    );
}

#[tokio::test(start_paused = true)]
async fn results_are_classified() {
    // 503 comes back as Ok; the layer's classifier makes it retryable.
    let calls = Arc::new(AtomicU32::new(0));
    let counter = calls.clone();
    let inner = tower::service_fn(move |_: ()| {
        let n = counter.fetch_add(1, Ordering::SeqCst) + 1;
        async move { Ok::<u16, String>(if n < 3 { 503 } else { 200 }) }
    });
    let layer = RetryLayer::new(executor().handle("http.Get").unwrap()).classify(
        classify::results(|r: &Result<u16, String>| match r {
            Ok(status) => classify::http::status(*status),
            Err(_) => classify::Outcome::RETRYABLE,
        }),
    );
    let mut svc = layer.layer(inner);
    assert_eq!(svc.ready().await.unwrap().call(()).await.unwrap(), 200);
    assert_eq!(calls.load(Ordering::SeqCst), 3);
}

/// A request whose body can be read once: it cannot be copied.
#[derive(Debug)]
struct Streaming;

#[tokio::test(start_paused = true)]
async fn a_request_that_cannot_be_copied_is_sent_once() {
    let calls = Arc::new(AtomicU32::new(0));
    let counter = calls.clone();
    let inner = tower::service_fn(move |_: Streaming| {
        counter.fetch_add(1, Ordering::SeqCst);
        async { Err::<(), _>("reset") }
    });
    let layer =
        RetryLayer::new(executor().handle("upload.Put").unwrap()).clone_with(|_: &Streaming| None);
    let mut svc = layer.layer(inner);
    let err = svc
        .ready()
        .await
        .unwrap()
        .call(Streaming)
        .await
        .unwrap_err();
    assert_eq!(calls.load(Ordering::SeqCst), 1);
    assert!(matches!(
        err,
        Error::Operation {
            attempts: 1,
            stop: Stop::NotCloneable,
            ..
        }
    ));
    assert_eq!(
        err.to_string(),
        "operation failed after 1 attempt (the request could not be cloned for a retry)"
    );
}
