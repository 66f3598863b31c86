//! Both ends steadfast: a `reqwest` client with the middleware against an axum server whose
//! routes `ShedLayer` guards, on 127.0.0.1 and tokio's paused clock.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::extract::Request;
use axum::middleware::Next;
use axum::routing::get;
use reqwest_middleware::ClientBuilder;
use steadfast::classify::PolicyClassifier;
use steadfast::limit::{BulkheadOptions, RateLimitOptions};
use steadfast::policy::{Plan, Policies};
use steadfast::tower::ShedLayer;
use steadfast::{Executor, Key, Retry};
use steadfast_reqwest::Steadfast;
use tokio::time::Instant;

/// Every request the server got: its call id, when, and the answer's status and
/// `Retry-After` or pushback.
#[derive(Debug, Clone)]
struct Arrival {
    call: String,
    at: Instant,
    status: u16,
    grpc_status: Option<String>,
    wait: Option<Duration>,
}

type Log = Arc<Mutex<Vec<Arrival>>>;

/// Serves `router` behind a recorder that sees every request, refused or not.
async fn serve(router: Router) -> (SocketAddr, Log) {
    let log = Log::default();
    let recorder = log.clone();
    let app = router.layer(axum::middleware::from_fn(
        move |req: Request, next: Next| {
            let log = recorder.clone();
            async move {
                let at = Instant::now();
                let call = req.headers()["x-call"].to_str().unwrap().to_owned();
                let response = next.run(req).await;
                let header = |name: &str| {
                    response
                        .headers()
                        .get(name)
                        .map(|v| v.to_str().unwrap().to_owned())
                };
                let wait = header("retry-after")
                    .map(|s| Duration::from_secs(s.parse().unwrap()))
                    .or_else(|| {
                        header("grpc-retry-pushback-ms")
                            .map(|ms| Duration::from_millis(ms.parse().unwrap()))
                    });
                log.lock().unwrap().push(Arrival {
                    call,
                    at,
                    status: response.status().as_u16(),
                    grpc_status: header("grpc-status"),
                    wait,
                });
                response
            }
        },
    ));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (addr, log)
}

/// Each call's arrivals in order.
fn by_call(log: &[Arrival]) -> HashMap<String, Vec<Arrival>> {
    let mut calls: HashMap<String, Vec<Arrival>> = HashMap::new();
    for a in log {
        calls.entry(a.call.clone()).or_default().push(a.clone());
    }
    calls
}

#[tokio::test(start_paused = true)]
async fn a_client_at_twice_the_servers_rate_waits_as_told_and_the_admitted_rate_holds() {
    // The server admits 10 requests a second (GCRA, bursts of 1).
    let server_plan = Plan::new(Retry::default())
        .rate_limit(RateLimitOptions::new(10, Duration::from_secs(1)).burst(1))
        .unwrap();
    let server = Executor::new(
        Policies::default()
            .with_plan("orders.*", server_plan)
            .unwrap(),
    );
    let router = Router::new()
        .route("/orders", get(|| async { "ok" }))
        .layer(ShedLayer::new(server, "orders.List").unwrap());
    let (addr, log) = serve(router).await;

    // The client sends 20 calls a second for 2 s; its own backoff (10 ms) is far shorter than
    // what the server asks, so every wait seen is the server's.
    let retry = Retry::fixed(Duration::from_millis(10))
        .max_attempts(10)
        .build()
        .unwrap();
    let client = ClientBuilder::new(reqwest::Client::new())
        .with(Steadfast::new(Executor::new(Policies::new(retry))))
        .build();
    let mut calls = Vec::new();
    let mut tick = tokio::time::interval(Duration::from_millis(50));
    for i in 0..40 {
        tick.tick().await;
        let client = client.clone();
        calls.push(tokio::spawn(async move {
            client
                .get(format!("http://{addr}/orders"))
                .header("x-call", i.to_string())
                .send()
                .await
                .unwrap()
                .status()
        }));
    }
    for call in calls {
        assert_eq!(
            call.await.unwrap(),
            200,
            "every call got through in the end"
        );
    }

    let log = log.lock().unwrap().clone();
    let refused = log.iter().filter(|a| a.status == 429).count();
    // 40 first tries in 2 s meet room for at most 21 (10 a second and the burst of 1).
    assert!(
        refused >= 19,
        "the server refused {refused} at twice its rate"
    );
    // Each retry came no sooner than the Retry-After its refusal gave.
    for (call, arrivals) in by_call(&log) {
        for w in arrivals.windows(2) {
            let told = w[0].wait.expect("a refusal says when to come back");
            let waited = w[1].at - w[0].at;
            assert!(
                waited >= told && waited <= told + Duration::from_millis(50),
                "call {call} waited {waited:?}, told {told:?}"
            );
        }
    }
    // In any second, at most 10 admitted (and the burst of 1).
    let admitted: Vec<Instant> = log
        .iter()
        .filter(|a| a.status == 200)
        .map(|a| a.at)
        .collect();
    assert_eq!(admitted.len(), 40);
    for &start in &admitted {
        let within = admitted
            .iter()
            .filter(|&&t| t >= start && t < start + Duration::from_secs(1))
            .count();
        assert!(
            within <= 11,
            "{within} admitted in the second from {start:?}"
        );
    }
}

#[tokio::test(start_paused = true)]
async fn a_grpc_refusal_carries_pushback_that_a_grpc_policy_honours() {
    // One request at a time; the one refused is told to come back in 300 ms.
    let server_plan = Plan::new(Retry::default())
        .bulkhead(BulkheadOptions::new(1))
        .unwrap();
    let server = Executor::new(
        Policies::default()
            .with_plan("search.*", server_plan)
            .unwrap(),
    );
    let shed = ShedLayer::new(server, "search.Query")
        .unwrap()
        .grpc()
        .busy_retry_after(Duration::from_millis(300));
    let router = Router::new()
        .route(
            "/search",
            get(|| async {
                tokio::time::sleep(Duration::from_secs(1)).await;
                "found"
            }),
        )
        .layer(shed);
    let (addr, log) = serve(router).await;

    let retry = Retry::fixed(Duration::from_millis(10))
        .max_attempts(10)
        .build()
        .unwrap();
    let policies = Policies::new(retry.clone())
        .with_plan(
            "search.*",
            Plan::new(retry).classify(PolicyClassifier::grpc()),
        )
        .unwrap();
    let client = ClientBuilder::new(reqwest::Client::new())
        .with(Steadfast::new(Executor::new(policies)))
        .build();
    let send = |call: &'static str| {
        let client = client.clone();
        async move {
            client
                .get(format!("http://{addr}/search"))
                .header("x-call", call)
                .with_extension(Key::parse("search.Query").unwrap())
                .send()
                .await
                .unwrap()
        }
    };
    let first = tokio::spawn(send("first"));
    tokio::time::sleep(Duration::from_millis(5)).await;
    let second = send("second").await;
    assert_eq!(first.await.unwrap().status(), 200);
    assert_eq!(second.status(), 200);

    let calls = by_call(&log.lock().unwrap());
    let second = &calls["second"];
    // Refused at 5, 305, 605 and 905 ms; admitted at 1 205 ms, after the first finished.
    assert_eq!(second.len(), 5, "{second:?}");
    for refusal in &second[..4] {
        assert_eq!(
            (refusal.status, refusal.grpc_status.as_deref()),
            (200, Some("14"))
        );
        assert_eq!(refusal.wait, Some(Duration::from_millis(300)));
    }
    for w in second.windows(2) {
        assert_eq!(w[1].at - w[0].at, Duration::from_millis(300));
    }
    assert_eq!(second[4].grpc_status, None);
}
