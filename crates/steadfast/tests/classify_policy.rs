//! Classification belongs to the policy: `classify = "http"` in a policy file decides what the
//! executor, a handle, the tower layer, the attribute macro and a blocking call retry, with no
//! classifier at the call site.

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use steadfast::chain::Registry;
use steadfast::classify::Outcome;
use steadfast::observe::{Event, Observer, PolicyEvent};
use steadfast::policy::{Format, PolicyDocument};
use steadfast::tower::RetryLayer;
use steadfast::{ErrorKind, Executor, Key, Stop};
use tower::{Layer, Service, ServiceExt};

const FILE: &str = r#"
[defaults]
retry = { max_attempts = 3, backoff = "fixed", base = "10ms", jitter = "none" }

[policies."payments.*"]
retry = { max_attempts = 4, backoff = "fixed", base = "10ms", jitter = "none" }
classify = "http"
"#;

fn executor() -> Executor {
    let doc = PolicyDocument::parse(FILE, Format::Toml, "policies.toml").unwrap();
    Executor::new(doc.compile(&Registry::new()).unwrap())
}

type Response = http::Response<String>;

fn response(status: u16, retry_after: Option<&str>) -> Response {
    let mut r = http::Response::builder().status(status);
    if let Some(v) = retry_after {
        r = r.header("retry-after", v);
    }
    r.body(String::new()).unwrap()
}

/// Answers `statuses` in turn (with `Retry-After: 2` on 503s and 429s), then 200.
fn server(
    statuses: &'static [u16],
    calls: &Arc<AtomicU32>,
) -> impl Fn() -> Response + Clone + use<> {
    let calls = calls.clone();
    move || {
        let n = calls.fetch_add(1, Ordering::SeqCst) as usize;
        match statuses.get(n) {
            Some(&s @ (503 | 429)) => response(s, Some("2")),
            Some(&s) => response(s, None),
            None => response(200, None),
        }
    }
}

#[tokio::test(start_paused = true)]
async fn the_executor_retries_503_and_429_after_retry_after_and_returns_400_at_once() {
    let executor = executor();
    let calls = Arc::new(AtomicU32::new(0));
    let answer = server(&[503, 429], &calls);
    let start = tokio::time::Instant::now();
    let ok = executor
        .run("payments.Charge", || {
            let r = answer();
            async move { Ok::<_, std::io::Error>(r) }
        })
        .await
        .unwrap();
    assert_eq!(ok.status(), 200);
    assert_eq!(calls.load(Ordering::SeqCst), 3);
    // Retry-After: 2 twice, the server's delay in place of the 10 ms backoff.
    assert_eq!(start.elapsed(), Duration::from_secs(4));

    let calls = Arc::new(AtomicU32::new(0));
    let answer = server(&[400], &calls);
    let bad = executor
        .call("payments.Charge", || {
            let r = answer();
            async move { Ok::<_, std::io::Error>(r) }
        })
        .run()
        .await
        .unwrap();
    assert_eq!(
        (bad.status().as_u16(), calls.load(Ordering::SeqCst)),
        (400, 1)
    );

    // A handle applies the same classifier.
    let calls = Arc::new(AtomicU32::new(0));
    let answer = server(&[503], &calls);
    let handle = executor.handle("payments.Refund").unwrap();
    let ok = handle
        .run(|| {
            let r = answer();
            async move { Ok::<_, std::io::Error>(r) }
        })
        .await
        .unwrap();
    assert_eq!(
        (ok.status().as_u16(), calls.load(Ordering::SeqCst)),
        (200, 2)
    );
}

#[tokio::test(start_paused = true)]
async fn a_key_without_classify_retries_every_error_and_the_call_site_overrides_the_policy() {
    let executor = executor();
    let calls = Arc::new(AtomicU32::new(0));
    let answer = server(&[503, 503], &calls);
    // search.* names no classifier: `always`, and an Ok(503) is a success.
    let r = executor
        .run("search.Query", || {
            let r = answer();
            async move { Ok::<_, ()>(r) }
        })
        .await
        .unwrap();
    assert_eq!(
        (r.status().as_u16(), calls.load(Ordering::SeqCst)),
        (503, 1)
    );

    // The call site's classifier wins over the policy's http.
    let tries = AtomicU32::new(0);
    let r = executor
        .call("payments.Charge", || {
            tries.fetch_add(1, Ordering::SeqCst);
            async { Ok::<_, ()>(response(400, None)) }
        })
        .classify(steadfast::classify::results(|_: &Result<Response, ()>| {
            Outcome::RETRYABLE
        }))
        .run()
        .await;
    assert_eq!(tries.load(Ordering::SeqCst), 4);
    assert_eq!(
        r.unwrap().status(),
        400,
        "a retryable Ok is returned as it is"
    );
}

#[derive(Debug, Default)]
struct Policies(Mutex<Vec<String>>);

impl Observer for Policies {
    fn on_event(&self, _: &Key, _: &Event) {}
    fn on_policy_event(&self, event: &PolicyEvent<'_>) {
        if let PolicyEvent::Unreadable {
            key,
            classifier,
            type_name,
        } = event
        {
            self.0
                .lock()
                .unwrap()
                .push(format!("{key} {classifier} {type_name}"));
        }
    }
}

#[tokio::test(start_paused = true)]
async fn an_error_the_classifier_cannot_read_is_not_retried_and_reported_once() {
    let doc = PolicyDocument::parse(FILE, Format::Toml, "policies.toml").unwrap();
    let seen = Arc::new(Policies::default());
    let executor = Executor::builder()
        .policies(doc.compile(&Registry::new()).unwrap())
        .shared_observer(seen.clone())
        .build();
    for _ in 0..3 {
        let tries = AtomicU32::new(0);
        let err = executor
            .run("payments.Charge", || {
                tries.fetch_add(1, Ordering::SeqCst);
                async { Err::<(), _>("a string the http rules cannot read") }
            })
            .await
            .unwrap_err();
        assert_eq!(tries.load(Ordering::SeqCst), 1, "not retried");
        assert_eq!(err.stop(), Some(Stop::NonRetryable));
    }
    assert_eq!(
        *seen.0.lock().unwrap(),
        ["payments.Charge http &str"],
        "reported once, not per call"
    );
}

#[tokio::test(start_paused = true)]
async fn the_tower_layer_applies_the_keys_classifier() {
    let executor = executor();
    let calls = Arc::new(AtomicU32::new(0));
    let answer = server(&[503, 429], &calls);
    let layer = RetryLayer::new(executor.handle("payments.Charge").unwrap());
    let mut svc = layer.layer(tower::service_fn(move |_req: String| {
        let r = answer();
        async move { Ok::<_, std::io::Error>(r) }
    }));
    let start = tokio::time::Instant::now();
    let ok = svc
        .ready()
        .await
        .unwrap()
        .call("charge".into())
        .await
        .unwrap();
    assert_eq!(
        (ok.status().as_u16(), calls.load(Ordering::SeqCst)),
        (200, 3)
    );
    assert_eq!(start.elapsed(), Duration::from_secs(4));

    let calls = Arc::new(AtomicU32::new(0));
    let answer = server(&[400], &calls);
    let mut svc = layer.layer(tower::service_fn(move |_req: String| {
        let r = answer();
        async move { Ok::<_, std::io::Error>(r) }
    }));
    let bad = svc
        .ready()
        .await
        .unwrap()
        .call("charge".into())
        .await
        .unwrap();
    assert_eq!(
        (bad.status().as_u16(), calls.load(Ordering::SeqCst)),
        (400, 1)
    );
}

#[test]
fn a_blocking_call_applies_the_keys_classifier() {
    let executor = executor();
    // A 502 carries no Retry-After here: a blocking retry sleeps the thread for real.
    let calls = AtomicU32::new(0);
    let r = executor
        .call_blocking("payments.Charge", || {
            let n = calls.fetch_add(1, Ordering::SeqCst);
            Ok::<_, std::io::Error>(response(if n == 0 { 502 } else { 400 }, None))
        })
        .run()
        .unwrap();
    assert_eq!(
        (r.status().as_u16(), calls.load(Ordering::SeqCst)),
        (400, 2)
    );
}

#[steadfast::retry("payments.Charge")]
async fn charge(calls: Arc<AtomicU32>) -> Result<Response, std::io::Error> {
    let n = calls.fetch_add(1, Ordering::SeqCst);
    Ok(match n {
        0 => response(503, Some("1")),
        1 => response(429, Some("1")),
        _ => response(200, None),
    })
}

#[steadfast::retry("payments.Capture")]
async fn capture(calls: Arc<AtomicU32>) -> Result<Response, std::io::Error> {
    calls.fetch_add(1, Ordering::SeqCst);
    Ok(response(400, None))
}

#[tokio::test(start_paused = true)]
async fn the_attribute_macro_applies_the_keys_classifier() {
    let doc = PolicyDocument::parse(FILE, Format::Toml, "policies.toml").unwrap();
    steadfast::executor().set_policies(doc.compile(&Registry::new()).unwrap());
    let calls = Arc::new(AtomicU32::new(0));
    let start = tokio::time::Instant::now();
    let ok = charge(calls.clone()).await.unwrap();
    assert_eq!(
        (ok.status().as_u16(), calls.load(Ordering::SeqCst)),
        (200, 3)
    );
    assert_eq!(start.elapsed(), Duration::from_secs(2));
    let calls = Arc::new(AtomicU32::new(0));
    let bad = capture(calls.clone()).await.unwrap();
    assert_eq!(
        (bad.status().as_u16(), calls.load(Ordering::SeqCst)),
        (400, 1)
    );
}

#[test]
fn an_unknown_classifier_is_placed_in_the_file_and_an_error_in_code() {
    let text = "[policies.\"payments.*\"]\nclassify = \"htpp\"\n";
    let err = PolicyDocument::parse(text, Format::Toml, "p.toml").unwrap_err();
    assert_eq!(
        err.to_string(),
        "p.toml:2:12: policies.\"payments.*\".classify: unknown classifier \"htpp\" (did you mean \"http\"?); built in: always, never, io, http, grpc, or a name registered in the Registry"
    );
    let table = "[policies.\"payments.*\"]\nclassify = { kind = \"io\", statuses = [503] }\n";
    let err = PolicyDocument::parse(table, Format::Toml, "p.toml").unwrap_err();
    assert!(
        err.to_string()
            .contains("classify.statuses: applies only to kind \"http\", not \"io\""),
        "{err}"
    );
    let registry = Registry::new();
    assert!(
        registry
            .classify(&steadfast::classify::ClassifyOptions::new("tenant"))
            .is_err()
    );
}

#[tokio::test(start_paused = true)]
async fn an_error_type_of_your_own_plugs_in_through_classify() {
    #[derive(Debug)]
    enum Db {
        Deadlock,
        Constraint,
    }
    impl steadfast::Classify for Db {
        fn classify(&self) -> Outcome {
            match self {
                Db::Deadlock => Outcome::RETRYABLE,
                Db::Constraint => Outcome::NonRetryable,
            }
        }
    }
    let doc = PolicyDocument::parse(FILE, Format::Toml, "policies.toml").unwrap();
    let registry = Registry::new().error::<Db>();
    let executor = Executor::new(doc.compile(&registry).unwrap());
    let tries = AtomicU32::new(0);
    let err = executor
        .run("payments.Charge", || {
            let n = tries.fetch_add(1, Ordering::SeqCst);
            async move { Err::<(), _>(if n == 0 { Db::Deadlock } else { Db::Constraint }) }
        })
        .await
        .unwrap_err();
    assert_eq!(tries.load(Ordering::SeqCst), 2);
    assert!(matches!(
        err.into_kind(),
        ErrorKind::Operation {
            source: Db::Constraint,
            ..
        }
    ));
}
