//! The tower layer: a service's calls run under a key's plan, each attempt with a copy of
//! the request; a request that cannot be copied is sent once, never retried without it.

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use steadfast::tower::RetryLayer;
use steadfast::{ErrorKind, Executor, Jitter, Retry, Stop, classify, policy::Policies};
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
        matches!(err.kind(), ErrorKind::Operation { source, attempts: 4, stop: Stop::Exhausted, .. } if source == "busy 4")
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
        err.kind(),
        ErrorKind::Operation {
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

/// Events an executor reports, in order.
#[derive(Debug, Default)]
struct Recorder(std::sync::Mutex<Vec<steadfast::observe::Event>>);

impl steadfast::observe::Observer for Recorder {
    fn on_event(&self, _: &steadfast::Key, event: &steadfast::observe::Event) {
        self.0.lock().unwrap().push(*event);
    }
}

/// The one attempt of a request that cannot be copied runs through the engine: its attempt
/// timeout applies, observers see it, and a retryable `Ok(503)` ends with the reason
/// `NotCloneable` where they see it (it went straight to the service before, bypassing all).
#[tokio::test(start_paused = true)]
async fn a_request_that_cannot_be_copied_still_runs_under_the_plan() {
    let recorder = Arc::new(Recorder::default());
    let executor = Executor::builder()
        .policies(Policies::new(
            Retry::immediate()
                .max_attempts(4)
                .attempt_timeout(Duration::from_millis(50))
                .build()
                .unwrap(),
        ))
        .shared_observer(recorder.clone())
        .build();
    let slow = tower::service_fn(|_: Streaming| async {
        tokio::time::sleep(Duration::from_secs(10)).await;
        Ok::<u16, String>(200)
    });
    let layer = RetryLayer::new(executor.handle("upload.Put").unwrap())
        .clone_with(|_: &Streaming| None)
        .classify(classify::results(|r: &Result<u16, String>| match r {
            Ok(status) => classify::http::status(*status),
            Err(_) => classify::Outcome::RETRYABLE,
        }));
    let err = layer.layer(slow).oneshot(Streaming).await.unwrap_err();
    assert!(err.is_timeout(), "{err}");
    assert_eq!(err.attempts(), 1);

    let calls = Arc::new(AtomicU32::new(0));
    let counter = calls.clone();
    let unavailable = tower::service_fn(move |_: Streaming| {
        counter.fetch_add(1, Ordering::SeqCst);
        async { Ok::<u16, String>(503) }
    });
    let status = layer.layer(unavailable).oneshot(Streaming).await.unwrap();
    assert_eq!((status, calls.load(Ordering::SeqCst)), (503, 1));
    let events = recorder.0.lock().unwrap().clone();
    assert!(
        matches!(
            events.last(),
            Some(steadfast::observe::Event::CallFinished {
                attempts: 1,
                ok: false,
                stop: Some(Stop::NotCloneable),
                ..
            })
        ),
        "{events:?}"
    );
}

/// A service that is not ready fails with `NotReady` and its error, not as an operation that
/// failed after 0 attempts.
#[tokio::test]
async fn a_service_that_is_not_ready_says_so() {
    #[derive(Clone)]
    struct Broken;
    impl Service<()> for Broken {
        type Response = ();
        type Error = String;
        type Future = std::future::Ready<Result<(), String>>;
        fn poll_ready(
            &mut self,
            _: &mut std::task::Context<'_>,
        ) -> std::task::Poll<Result<(), String>> {
            std::task::Poll::Ready(Err("closed".to_owned()))
        }
        fn call(&mut self, _: ()) -> Self::Future {
            std::future::ready(Ok(()))
        }
    }
    let layer = RetryLayer::new(executor().handle("svc.Broken").unwrap());
    let err = layer.layer(Broken).oneshot(()).await.unwrap_err();
    assert!(
        matches!(err.kind(), ErrorKind::NotReady(e) if e == "closed"),
        "{err:?}"
    );
    assert_eq!(err.to_string(), "the service was not ready");
}

/// The error texts an executor's observers were given.
#[derive(Debug, Default)]
struct Texts(std::sync::Mutex<Vec<String>>);

impl steadfast::observe::Observer for Texts {
    fn on_event(&self, _: &steadfast::Key, _: &steadfast::observe::Event) {}
    fn on_attempt_error(&self, key: &steadfast::Key, error: &dyn std::fmt::Display) {
        self.0.lock().unwrap().push(format!("{key}: {error}"));
    }
}

#[tokio::test(start_paused = true)]
async fn a_layer_with_error_text_reports_each_failed_attempt() {
    let texts = Arc::new(Texts::default());
    let executor = Executor::builder()
        .policies(Policies::new(
            Retry::immediate().max_attempts(4).build().unwrap(),
        ))
        .shared_observer(texts.clone())
        .build();
    let calls = Arc::new(AtomicU32::new(0));
    let layer = RetryLayer::new(executor.handle("svc.Echo").unwrap()).error_text();
    let mut svc = layer.layer(flaky(2, &calls));
    let response = svc.ready().await.unwrap().call("hi".into()).await.unwrap();
    assert_eq!(response, "hi after 3");
    assert_eq!(
        *texts.0.lock().unwrap(),
        ["svc.Echo: busy 1", "svc.Echo: busy 2"]
    );
}
