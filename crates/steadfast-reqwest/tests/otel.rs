//! OpenTelemetry end to end: a reqwest call through the middleware under an executor that
//! traces (`tracing` spans exported by `tracing-opentelemetry`) and records metrics
//! (`OtelObserver`), both read back from the SDK's in-memory exporters.

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use axum::Router;
use axum::http::StatusCode;
use axum::routing::get;
use opentelemetry::metrics::MeterProvider as _;
use opentelemetry::trace::TracerProvider as _;
use opentelemetry::{KeyValue, Value};
use opentelemetry_sdk::metrics::data::{AggregatedMetrics, MetricData, ResourceMetrics};
use opentelemetry_sdk::metrics::{InMemoryMetricExporter, PeriodicReader, SdkMeterProvider};
use opentelemetry_sdk::trace::{InMemorySpanExporter, SdkTracerProvider};
use reqwest_middleware::ClientBuilder;
use steadfast::breaker::BreakerOptions;
use steadfast::observe::OtelObserver;
use steadfast::policy::{Plan, Policies};
use steadfast::{Executor, Jitter, Key, Retry};
use steadfast_reqwest::Steadfast;
use tracing_subscriber::layer::SubscriberExt;

fn attr<'a>(attrs: &'a [KeyValue], key: &str) -> Option<&'a Value> {
    attrs
        .iter()
        .find(|kv| kv.key.as_str() == key)
        .map(|kv| &kv.value)
}

/// Every data point of `name`: its attributes and value.
fn points(metrics: &[ResourceMetrics], name: &str) -> Vec<(Vec<KeyValue>, f64)> {
    let mut out = Vec::new();
    for rm in metrics {
        for sm in rm.scope_metrics() {
            for m in sm.metrics().filter(|m| m.name() == name) {
                match m.data() {
                    AggregatedMetrics::U64(MetricData::Sum(s)) => out.extend(
                        s.data_points()
                            .map(|p| (p.attributes().cloned().collect(), p.value() as f64)),
                    ),
                    AggregatedMetrics::F64(MetricData::Gauge(g)) => out.extend(
                        g.data_points()
                            .map(|p| (p.attributes().cloned().collect(), p.value())),
                    ),
                    AggregatedMetrics::F64(MetricData::Histogram(h)) => out.extend(
                        h.data_points()
                            .map(|p| (p.attributes().cloned().collect(), p.count() as f64)),
                    ),
                    _ => {}
                }
            }
        }
    }
    out
}

#[tokio::test(start_paused = true)]
async fn one_span_per_call_one_child_per_attempt_and_the_instruments_with_their_attributes() {
    let spans = InMemorySpanExporter::default();
    let tracer_provider = SdkTracerProvider::builder()
        .with_simple_exporter(spans.clone())
        .build();
    let subscriber = tracing_subscriber::registry()
        .with(tracing_opentelemetry::layer().with_tracer(tracer_provider.tracer("test")));
    let _guard = tracing::subscriber::set_default(subscriber);

    let metrics = InMemoryMetricExporter::default();
    let meter_provider = SdkMeterProvider::builder()
        .with_reader(PeriodicReader::builder(metrics.clone()).build())
        .build();
    let meter = meter_provider.meter("steadfast");

    // 503 twice, then 200.
    let seen = Arc::new(AtomicU32::new(0));
    let count = seen.clone();
    let app = Router::new().route(
        "/stock",
        get(move || {
            let n = count.fetch_add(1, Ordering::SeqCst);
            async move {
                if n < 2 {
                    StatusCode::SERVICE_UNAVAILABLE
                } else {
                    StatusCode::OK
                }
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });

    let retry = Retry::fixed(Duration::from_millis(10))
        .jitter(Jitter::None)
        .max_attempts(3)
        .build()
        .unwrap();
    let plan = Plan::new(retry.clone())
        .breaker(BreakerOptions::default())
        .unwrap();
    let executor = Executor::builder()
        .policies(Policies::new(retry).with_plan("inventory.*", plan).unwrap())
        .observer(OtelObserver::new(&meter))
        .tracing(true)
        .build();
    let _gauges = OtelObserver::observe_states(&meter, executor.clone());
    let client = ClientBuilder::new(reqwest::Client::new())
        .with(Steadfast::new(executor))
        .build();
    let response = client
        .get(format!("http://{addr}/stock"))
        .with_extension(Key::parse("inventory.Stock").unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);

    // Spans: the call, and under it one span per attempt carrying the HTTP attributes.
    let finished = spans.get_finished_spans().unwrap();
    let calls: Vec<_> = finished
        .iter()
        .filter(|s| s.name == "steadfast.call")
        .collect();
    assert_eq!(calls.len(), 1, "{finished:#?}");
    let call = calls[0];
    assert_eq!(
        attr(&call.attributes, "key").map(Value::as_str).as_deref(),
        Some("inventory.Stock")
    );
    let attempts: Vec<_> = finished
        .iter()
        .filter(|s| s.parent_span_id == call.span_context.span_id())
        .collect();
    assert_eq!(attempts.len(), 3, "one child per attempt");
    assert!(attempts.iter().all(|s| s.name == "steadfast.attempt"));
    let statuses: Vec<_> = attempts
        .iter()
        .map(|s| attr(&s.attributes, "http.response.status_code").cloned())
        .collect();
    assert_eq!(
        statuses,
        [503, 503, 200].map(|c| Some(Value::I64(c))).to_vec()
    );
    let resends: Vec<_> = attempts
        .iter()
        .map(|s| attr(&s.attributes, "http.request.resend_count").cloned())
        .collect();
    assert_eq!(resends, [None, Some(Value::I64(1)), Some(Value::I64(2))]);
    for s in &attempts {
        assert_eq!(
            attr(&s.attributes, "http.request.method")
                .map(Value::as_str)
                .as_deref(),
            Some("GET")
        );
        assert_eq!(
            attr(&s.attributes, "server.address")
                .map(Value::as_str)
                .as_deref(),
            Some("127.0.0.1")
        );
    }
    assert!(
        !finished.iter().any(|s| s.name == "HTTP"),
        "the attempt spans carry the HTTP attributes themselves"
    );

    // Metrics: counters with their attributes, and the breaker's gauge.
    meter_provider.force_flush().unwrap();
    let exported = metrics.get_finished_metrics().unwrap();
    let attempts = points(&exported, "steadfast.attempts");
    let mut by_number: Vec<(String, String, f64)> = attempts
        .iter()
        .map(|(a, v)| {
            (
                attr(a, "steadfast.attempt").unwrap().as_str().into_owned(),
                attr(a, "steadfast.outcome").unwrap().as_str().into_owned(),
                *v,
            )
        })
        .collect();
    by_number.sort_by(|a, b| a.partial_cmp(b).unwrap());
    assert_eq!(
        by_number,
        [
            ("1".into(), "retryable".into(), 1.0),
            ("2".into(), "retryable".into(), 1.0),
            ("3".into(), "success".into(), 1.0)
        ]
    );
    let calls = points(&exported, "steadfast.calls");
    assert_eq!(calls.len(), 1);
    assert_eq!(
        attr(&calls[0].0, "steadfast.result")
            .map(Value::as_str)
            .as_deref(),
        Some("ok")
    );
    assert_eq!(
        attr(&calls[0].0, "steadfast.stop")
            .map(Value::as_str)
            .as_deref(),
        Some("none")
    );
    assert_eq!(calls[0].1, 1.0);
    let retries = points(&exported, "steadfast.retries");
    assert_eq!(retries.iter().map(|(_, v)| v).sum::<f64>(), 2.0);
    let breaker: Vec<(String, f64)> = points(&exported, "steadfast.breaker.state")
        .iter()
        .filter(|(a, _)| {
            attr(a, "steadfast.key").map(Value::as_str).as_deref() == Some("inventory.Stock")
        })
        .map(|(a, v)| {
            (
                attr(a, "steadfast.state").unwrap().as_str().into_owned(),
                *v,
            )
        })
        .collect();
    assert!(breaker.contains(&("closed".into(), 1.0)), "{breaker:?}");
    assert!(breaker.contains(&("open".into(), 0.0)), "{breaker:?}");
    assert_eq!(
        points(&exported, "steadfast.attempt.duration")
            .iter()
            .map(|(_, n)| n)
            .sum::<f64>(),
        3.0
    );
}
