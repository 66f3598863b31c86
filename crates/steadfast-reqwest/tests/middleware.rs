//! The middleware against a real HTTP server on 127.0.0.1, through a real `reqwest` client,
//! on tokio's paused clock (the engine's waits are read off the server's arrival times).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use axum::Router;
use axum::body::Bytes;
use axum::http::{HeaderMap, StatusCode};
use axum::response::IntoResponse;
use axum::routing::any;
use reqwest_middleware::{ClientBuilder, ClientWithMiddleware};
use steadfast::policy::{Plan, Policies};
use steadfast::{Executor, Key, Retry, Stop};
use steadfast_reqwest::{CallSummary, Steadfast, error_of};
use tokio::time::Instant;

/// What the server saw: each request's arrival (tokio's clock and the wall clock) and body.
#[derive(Debug, Default)]
struct Seen {
    at: Vec<Instant>,
    wall: Vec<SystemTime>,
    bodies: Vec<Bytes>,
}

type Shared = Arc<Mutex<Seen>>;

/// Serves `answer(n, seen)` for the n-th request (1 for the first) on every path.
async fn serve<F>(answer: F) -> (SocketAddr, Shared)
where
    F: Fn(usize) -> axum::response::Response + Clone + Send + Sync + 'static,
{
    let seen = Shared::default();
    let state = seen.clone();
    let app = Router::new().fallback(any(move |body: Bytes| {
        let answer = answer.clone();
        let seen = state.clone();
        async move {
            let n = {
                let mut s = seen.lock().unwrap();
                s.at.push(Instant::now());
                s.wall.push(SystemTime::now());
                s.bodies.push(body);
                s.at.len()
            };
            answer(n)
        }
    }));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (addr, seen)
}

fn client(policies: Policies) -> ClientWithMiddleware {
    ClientBuilder::new(reqwest::Client::new())
        .with(Steadfast::new(Executor::new(policies)))
        .build()
}

fn retry(attempts: u32) -> Retry {
    Retry::immediate().max_attempts(attempts).build().unwrap()
}

fn status(code: u16, headers: &[(&'static str, String)]) -> axum::response::Response {
    let mut map = HeaderMap::new();
    for (name, value) in headers {
        map.insert(*name, value.parse().unwrap());
    }
    (StatusCode::from_u16(code).unwrap(), map, "").into_response()
}

fn gaps(seen: &Shared) -> Vec<Duration> {
    let s = seen.lock().unwrap();
    s.at.windows(2).map(|w| w[1] - w[0]).collect()
}

#[tokio::test(start_paused = true)]
async fn a_503_with_retry_after_waits_as_the_server_asks() {
    let (addr, seen) = serve(|n| {
        if n <= 2 {
            status(503, &[("retry-after", "2".into())])
        } else {
            status(200, &[])
        }
    })
    .await;
    // The plan's own backoff would wait 10 ms: the server's 2 s decides.
    let plan = Retry::fixed(Duration::from_millis(10))
        .max_attempts(5)
        .build()
        .unwrap();
    let response = client(Policies::new(plan))
        .get(format!("http://{addr}/stock"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(seen.lock().unwrap().at.len(), 3);
    for gap in gaps(&seen) {
        assert!(
            gap >= Duration::from_secs(2) && gap <= Duration::from_millis(2050),
            "{gap:?}"
        );
    }
    let summary = CallSummary::of(&response).unwrap();
    assert_eq!((summary.attempts(), summary.stop()), (3, None));
}

#[tokio::test(start_paused = true)]
async fn a_429_with_an_http_date_is_retried_once_after_that_date() {
    let dates = Arc::new(Mutex::new(Vec::new()));
    let given = dates.clone();
    let (addr, seen) = serve(move |n| {
        if n == 1 {
            // Two seconds on, in whole seconds as an HTTP date has them.
            let date = SystemTime::now() + Duration::from_secs(2);
            let text = httpdate::fmt_http_date(date);
            given
                .lock()
                .unwrap()
                .push(httpdate::parse_http_date(&text).unwrap());
            status(429, &[("retry-after", text)])
        } else {
            status(200, &[])
        }
    })
    .await;
    let response = client(Policies::new(retry(4)))
        .get(format!("http://{addr}/quota"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let s = seen.lock().unwrap();
    assert_eq!(s.at.len(), 2);
    // The wait is the time from the first answer to the date (the wall clock stands still
    // while tokio's is paused, so the date is read against the first arrival).
    let until_date = dates.lock().unwrap()[0].duration_since(s.wall[0]).unwrap();
    let gap = s.at[1] - s.at[0];
    // Tokio's timers tick in whole milliseconds: the paused clock may wake within one.
    assert!(
        gap + Duration::from_millis(1) >= until_date
            && gap <= until_date + Duration::from_millis(50),
        "waited {gap:?}, the date was {until_date:?} away"
    );
}

#[tokio::test(start_paused = true)]
async fn a_400_is_sent_once() {
    let (addr, seen) = serve(|_| status(400, &[])).await;
    let response = client(Policies::new(retry(4)))
        .get(format!("http://{addr}/bad"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 400);
    assert_eq!(seen.lock().unwrap().at.len(), 1);
    let summary = CallSummary::of(&response).unwrap();
    assert_eq!(
        (summary.attempts(), summary.stop()),
        (1, Some(Stop::NonRetryable))
    );
}

#[tokio::test(start_paused = true)]
async fn a_json_post_sends_the_same_body_on_every_attempt() {
    let (addr, seen) = serve(|n| {
        if n <= 2 {
            status(503, &[])
        } else {
            status(201, &[])
        }
    })
    .await;
    let body = serde_json::json!({"order": 42, "items": ["a", "b"], "note": "ünïcode"});
    let response = client(Policies::new(retry(4)))
        .post(format!("http://{addr}/orders"))
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 201);
    let s = seen.lock().unwrap();
    assert_eq!(s.bodies.len(), 3);
    let expected = serde_json::to_vec(&body).unwrap();
    for sent in &s.bodies {
        assert_eq!(sent.as_ref(), expected.as_slice());
    }
}

#[tokio::test(start_paused = true)]
async fn exhaustion_returns_the_last_response_and_says_why() {
    let (addr, seen) = serve(|_| status(503, &[])).await;
    let response = client(Policies::new(retry(3)))
        .get(format!("http://{addr}/down"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 503);
    assert_eq!(seen.lock().unwrap().at.len(), 3);
    let summary = CallSummary::of(&response).unwrap();
    assert_eq!(
        (summary.attempts(), summary.stop()),
        (3, Some(Stop::Exhausted))
    );
}

/// A body that can be read once: `reqwest` cannot copy the request.
fn streaming(text: &'static str) -> reqwest::Body {
    reqwest::Body::wrap(http_body_util::Full::new(bytes::Bytes::from_static(
        text.as_bytes(),
    )))
}

#[tokio::test(start_paused = true)]
async fn a_streaming_body_is_sent_once_under_the_plan() {
    let (addr, seen) = serve(|_| status(503, &[])).await;
    let plan = Retry::immediate()
        .max_attempts(4)
        .attempt_timeout(Duration::from_millis(200))
        .build()
        .unwrap();
    let client = client(Policies::new(plan));
    let response = client
        .post(format!("http://{addr}/upload"))
        .body(streaming("chunk"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 503);
    assert_eq!(seen.lock().unwrap().at.len(), 1);
    assert_eq!(seen.lock().unwrap().bodies[0].as_ref(), b"chunk");
    let summary = CallSummary::of(&response).unwrap();
    assert_eq!(
        (summary.attempts(), summary.stop()),
        (1, Some(Stop::NotCloneable))
    );

    // The attempt timeout applies to it: a server that never answers is cut at 200 ms.
    let hang = Router::new().fallback(any(std::future::pending::<StatusCode>));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let hanging = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, hang).await.unwrap() });
    let started = Instant::now();
    let err = client
        .post(format!("http://{hanging}/upload"))
        .body(streaming("chunk"))
        .send()
        .await
        .unwrap_err();
    let err = error_of(&err).expect("a steadfast error");
    assert!(err.is_timeout(), "{err}");
    assert_eq!(err.attempts(), 1);
    assert_eq!(started.elapsed(), Duration::from_millis(200));
}

#[tokio::test(start_paused = true)]
async fn a_refused_connection_is_retried_then_fails_with_the_attempts() {
    // A port with nothing listening: bind, read the port, close.
    let addr = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .unwrap()
        .local_addr()
        .unwrap();
    let err = client(Policies::new(retry(3)))
        .get(format!("http://{addr}/"))
        .send()
        .await
        .unwrap_err();
    let err = error_of(&err).expect("a steadfast error");
    assert_eq!((err.attempts(), err.stop()), (3, Some(Stop::Exhausted)));
    assert!(matches!(
        err.operation_error(),
        Some(reqwest_middleware::Error::Reqwest(e)) if e.is_connect()
    ));
}

#[tokio::test(start_paused = true)]
async fn the_key_comes_from_the_extension_then_the_key_fn_then_the_default() {
    let (addr, seen) = serve(|_| status(503, &[])).await;
    let policies = Policies::new(retry(2))
        .with_plan("payments.*", Plan::new(retry(3)))
        .unwrap()
        .with_plan("byhost.*", Plan::new(retry(4)))
        .unwrap();
    let middleware = Steadfast::new(Executor::new(policies)).key_fn(|method, url| {
        (url.path() == "/mapped").then(|| Key::parse(&format!("byhost.{method}")).unwrap())
    });
    let client = ClientBuilder::new(reqwest::Client::new())
        .with(middleware)
        .build();
    let count = |seen: &Shared| seen.lock().unwrap().at.len();

    client
        .get(format!("http://{addr}/x"))
        .with_extension(Key::parse("payments.Charge").unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(count(&seen), 3, "the extension's key");
    client
        .get(format!("http://{addr}/mapped"))
        .send()
        .await
        .unwrap();
    assert_eq!(count(&seen), 3 + 4, "the key function's");
    client.get(format!("http://{addr}/y")).send().await.unwrap();
    assert_eq!(count(&seen), 3 + 4 + 2, "the default key's");
}

#[tokio::test(start_paused = true)]
async fn the_policys_classifier_decides_the_statuses() {
    use steadfast::classify::{ClassifyOptions, PolicyClassifier};
    let (addr, seen) = serve(|_| status(500, &[])).await;
    let with_500 =
        PolicyClassifier::built(&ClassifyOptions::new("http").statuses([500, 503])).unwrap();
    let policies = Policies::new(retry(3))
        .with_plan("legacy.*", Plan::new(retry(3)).classify(with_500))
        .unwrap()
        .with_plan(
            "never.*",
            Plan::new(retry(3)).classify(PolicyClassifier::never()),
        )
        .unwrap();
    let client = client(policies);
    client.get(format!("http://{addr}/")).send().await.unwrap();
    assert_eq!(seen.lock().unwrap().at.len(), 1, "500 is final by default");
    client
        .get(format!("http://{addr}/"))
        .with_extension(Key::parse("legacy.Get").unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(
        seen.lock().unwrap().at.len(),
        1 + 3,
        "the policy retries 500"
    );

    let (addr, seen) = serve(|_| status(503, &[])).await;
    client
        .get(format!("http://{addr}/"))
        .with_extension(Key::parse("never.Get").unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(seen.lock().unwrap().at.len(), 1, "never retries nothing");
}

/// Spans as a subscriber sees them: each closed span's name and fields.
#[derive(Clone, Default)]
struct Spans(Arc<Mutex<Vec<(String, FieldMap)>>>);

type FieldMap = HashMap<String, String>;

struct Fields(HashMap<String, String>);

struct Visit<'a>(&'a mut HashMap<String, String>);

impl tracing::field::Visit for Visit<'_> {
    fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
        self.0.insert(field.name().to_owned(), format!("{value:?}"));
    }
    fn record_str(&mut self, field: &tracing::field::Field, value: &str) {
        self.0.insert(field.name().to_owned(), value.to_owned());
    }
}

impl<S> tracing_subscriber::Layer<S> for Spans
where
    S: tracing::Subscriber + for<'a> tracing_subscriber::registry::LookupSpan<'a>,
{
    fn on_new_span(
        &self,
        attrs: &tracing::span::Attributes<'_>,
        id: &tracing::span::Id,
        ctx: tracing_subscriber::layer::Context<'_, S>,
    ) {
        let mut fields = HashMap::new();
        attrs.record(&mut Visit(&mut fields));
        ctx.span(id)
            .unwrap()
            .extensions_mut()
            .insert(Fields(fields));
    }
    fn on_record(
        &self,
        id: &tracing::span::Id,
        values: &tracing::span::Record<'_>,
        ctx: tracing_subscriber::layer::Context<'_, S>,
    ) {
        let span = ctx.span(id).unwrap();
        let mut ext = span.extensions_mut();
        let fields = ext.get_mut::<Fields>().unwrap();
        values.record(&mut Visit(&mut fields.0));
    }
    fn on_close(&self, id: tracing::span::Id, ctx: tracing_subscriber::layer::Context<'_, S>) {
        let span = ctx.span(&id).unwrap();
        let fields = span.extensions_mut().remove::<Fields>().unwrap().0;
        self.0
            .lock()
            .unwrap()
            .push((span.name().to_owned(), fields));
    }
}

#[tokio::test(start_paused = true)]
async fn each_attempt_is_a_span_with_the_opentelemetry_http_attributes() {
    use tracing_subscriber::layer::SubscriberExt;
    // A global subscriber: a thread's own default can lose the callsite's interest to a test
    // on another thread hitting it first. Other tests' spans are told apart by their port.
    static SPANS: std::sync::OnceLock<Spans> = std::sync::OnceLock::new();
    let spans = SPANS.get_or_init(|| {
        let spans = Spans::default();
        tracing::subscriber::set_global_default(tracing_subscriber::registry().with(spans.clone()))
            .unwrap();
        spans
    });
    let (addr, _seen) = serve(|n| {
        if n == 1 {
            status(503, &[])
        } else {
            status(204, &[])
        }
    })
    .await;
    client(Policies::new(retry(3)))
        .put(format!("http://{addr}/items/7"))
        .body("x")
        .send()
        .await
        .unwrap();
    let spans = spans.0.lock().unwrap().clone();
    let url = format!("http://{addr}/items/7");
    let attempts: Vec<_> = spans
        .iter()
        .filter(|(name, fields)| name == "HTTP" && fields.get("url.full") == Some(&url))
        .collect();
    assert_eq!(attempts.len(), 2, "{spans:?}");
    let field = |i: usize, name: &str| attempts[i].1.get(name).cloned();
    for i in 0..2 {
        assert_eq!(field(i, "http.request.method").as_deref(), Some("PUT"));
        assert_eq!(field(i, "server.address").as_deref(), Some("127.0.0.1"));
        assert_eq!(field(i, "server.port"), Some(addr.port().to_string()));
        assert_eq!(field(i, "url.full"), Some(format!("http://{addr}/items/7")));
    }
    assert_eq!(
        field(0, "http.response.status_code").as_deref(),
        Some("503")
    );
    assert_eq!(field(0, "http.request.resend_count"), None);
    assert_eq!(
        field(1, "http.response.status_code").as_deref(),
        Some("204")
    );
    assert_eq!(field(1, "http.request.resend_count").as_deref(), Some("1"));
}

/// The error texts an executor's observers were given.
#[derive(Debug, Default)]
struct Texts(Mutex<Vec<String>>);

impl steadfast::observe::Observer for Texts {
    fn on_event(&self, _: &Key, _: &steadfast::observe::Event) {}
    fn on_attempt_error(&self, key: &Key, error: &dyn std::fmt::Display) {
        self.0.lock().unwrap().push(format!("{key}: {error}"));
    }
}

fn texting(texts: &Arc<Texts>, on: bool) -> ClientWithMiddleware {
    let executor = Executor::builder()
        .policies(Policies::new(retry(2)))
        .shared_observer(texts.clone())
        .build();
    ClientBuilder::new(reqwest::Client::new())
        .with(Steadfast::new(executor).error_text(on))
        .build()
}

#[tokio::test(start_paused = true)]
async fn observers_get_each_failed_attempts_text_when_the_middleware_allows_it() {
    let (addr, _) = serve(|_| status(503, &[])).await;
    let texts = Arc::new(Texts::default());
    let response = texting(&texts, true)
        .get(format!("http://{addr}/"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 503);
    assert_eq!(
        *texts.0.lock().unwrap(),
        [
            "http.Request: 503 Service Unavailable",
            "http.Request: 503 Service Unavailable"
        ]
    );

    // A refused connection: the client's own error text.
    texts.0.lock().unwrap().clear();
    let closed = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .unwrap()
        .local_addr()
        .unwrap();
    let _ = texting(&texts, true)
        .get(format!("http://{closed}/"))
        .send()
        .await
        .unwrap_err();
    let seen = texts.0.lock().unwrap().clone();
    assert_eq!(seen.len(), 2, "{seen:?}");
    assert!(
        seen.iter().all(|t| t.contains("error sending request")),
        "{seen:?}"
    );

    // Off by default: nothing.
    texts.0.lock().unwrap().clear();
    let _ = texting(&texts, false)
        .get(format!("http://{addr}/"))
        .send()
        .await
        .unwrap();
    assert!(texts.0.lock().unwrap().is_empty());
}
