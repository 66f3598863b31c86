//! The payments service of the `idempotency` example (and its test): an endpoint made
//! idempotent by `executor.call(..).idempotent(&request)`, answering as the IETF
//! `Idempotency-Key` draft says: the first request runs, a repeat gets the stored response
//! (200, `Idempotent-Replayed: true`), a repeat while the first still runs gets 409, and the
//! key reused with another body gets 422. A request without the header gets 400.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use axum::body::Bytes;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use steadfast::idempotency::{IdempotencyOptions, Refusal};
use steadfast::policy::{Plan, Policies};
use steadfast::{ErrorKind, Executor, Retry};
use steadfast_store::idempotency::{Idempotency, IdempotencyStore};

/// The executor of the payments service: `payments.*` calls are idempotent by the request's
/// `idempotency_key`, results kept 24 h, in `store`.
pub(crate) fn executor(
    store: impl IdempotencyStore,
) -> Result<Executor, Box<dyn std::error::Error>> {
    let plan =
        Plan::new(Retry::default()).idempotency(IdempotencyOptions::new(["idempotency_key"]))?;
    Ok(Executor::builder()
        .policies(Policies::default().with_plan("payments.*", plan)?)
        .idempotency(Idempotency::new(store))
        .build())
}

/// Serves `POST /charges` on a free local port; each charge takes `work` (long enough for a
/// concurrent repeat to find it in flight). Returns the address and the charges made.
pub(crate) async fn serve_payments(
    executor: Executor,
    work: Duration,
) -> std::io::Result<(SocketAddr, Arc<AtomicU32>)> {
    let charges = Arc::new(AtomicU32::new(0));
    let made = charges.clone();
    let app = axum::Router::new().route(
        "/charges",
        post(move |headers: HeaderMap, body: Bytes| {
            let (executor, made) = (executor.clone(), made.clone());
            async move { charge(&executor, &made, work, &headers, &body).await }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    tokio::spawn(async move { axum::serve(listener, app).await });
    Ok((addr, charges))
}

type Reply = (StatusCode, HeaderMap, String);

fn reply(status: StatusCode, body: impl Into<String>) -> Reply {
    (status, HeaderMap::new(), body.into())
}

async fn charge(
    executor: &Executor,
    made: &AtomicU32,
    work: Duration,
    headers: &HeaderMap,
    body: &[u8],
) -> Reply {
    let Some(key) = headers.get("idempotency-key").and_then(|v| v.to_str().ok()) else {
        return reply(
            StatusCode::BAD_REQUEST,
            "an Idempotency-Key header is required",
        );
    };
    // The header is a structured-field string: "8e03978e-…".
    let key = key.trim().trim_matches('"');
    let Ok(body) = serde_json::from_slice::<serde_json::Value>(body) else {
        return reply(StatusCode::BAD_REQUEST, "the body is not JSON");
    };
    let request = serde_json::json!({ "idempotency_key": key, "body": body });
    let charged = executor
        .call("payments.Charge", || async {
            tokio::time::sleep(work).await;
            let n = made.fetch_add(1, Ordering::SeqCst) + 1;
            Ok::<_, std::io::Error>(format!("{{\"charge\":\"ch_{n}\"}}"))
        })
        .idempotent(&request)
        .run()
        .await;
    match charged.map_err(|e| e.into_kind()) {
        Ok(done) if done.replayed => {
            let mut headers = HeaderMap::new();
            headers.insert(
                "idempotent-replayed",
                "true".parse().expect("a header value"),
            );
            (StatusCode::OK, headers, done.value)
        }
        Ok(done) => reply(StatusCode::CREATED, done.value),
        Err(ErrorKind::Idempotency(Refusal::InFlight)) => reply(
            StatusCode::CONFLICT,
            "a request with this Idempotency-Key is being processed; retry later",
        ),
        Err(ErrorKind::Idempotency(Refusal::Mismatch)) => reply(
            StatusCode::UNPROCESSABLE_ENTITY,
            "this Idempotency-Key was used with a different request",
        ),
        Err(ErrorKind::Idempotency(Refusal::MissingKey(_))) => {
            reply(StatusCode::BAD_REQUEST, "an Idempotency-Key is required")
        }
        Err(e) => reply(StatusCode::SERVICE_UNAVAILABLE, e.to_string()),
    }
}

/// Posts `body` to `/charges` with `key`; the status, whether it was a replay, and the body.
pub(crate) async fn post_charge(
    client: &reqwest::Client,
    addr: SocketAddr,
    key: Option<&str>,
    body: &str,
) -> reqwest::Result<(u16, bool, String)> {
    let mut request = client
        .post(format!("http://{addr}/charges"))
        .header("content-type", "application/json")
        .body(body.to_owned());
    if let Some(key) = key {
        request = request.header("idempotency-key", format!("\"{key}\""));
    }
    let response = request.send().await?;
    let status = response.status().as_u16();
    let replayed = response.headers().contains_key("idempotent-replayed");
    Ok((status, replayed, response.text().await?))
}
