//! A flaky local HTTP server and a reqwest client retried through `steadfast::tower`.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};

use axum::http::{HeaderMap, StatusCode};
use axum::routing::get;
use steadfast::classify::{self, Outcome};
use steadfast::tower::RetryLayer;
use steadfast::{Error, Handle};
use tower::{Layer, Service, ServiceExt};

/// Serves `GET /balance` on a free local port: `503 Service Unavailable` with
/// `Retry-After: 0` for the first `fails` requests, then `200 OK` with `42`. Returns the
/// address and the count of requests served.
pub async fn serve_flaky(fails: u32) -> std::io::Result<(SocketAddr, Arc<AtomicU32>)> {
    let served = Arc::new(AtomicU32::new(0));
    let counter = served.clone();
    let app = axum::Router::new().route(
        "/balance",
        get(move || {
            let n = counter.fetch_add(1, Ordering::SeqCst) + 1;
            async move {
                let mut headers = HeaderMap::new();
                if n <= fails {
                    headers.insert("retry-after", "0".parse().expect("a valid header value"));
                    (StatusCode::SERVICE_UNAVAILABLE, headers, "try again")
                } else {
                    (StatusCode::OK, headers, "42")
                }
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    tokio::spawn(async move { axum::serve(listener, app).await });
    Ok((addr, served))
}

/// How a reqwest result is classified: the status (and `Retry-After`) of a response; connect
/// errors and timeouts are retryable, other errors not.
pub fn classify_reqwest(result: &Result<reqwest::Response, reqwest::Error>) -> Outcome {
    match result {
        Ok(response) => {
            let retry_after = response
                .headers()
                .get("retry-after")
                .and_then(|v| v.to_str().ok());
            classify::http::response(response.status().as_u16(), retry_after)
        }
        Err(e) if e.is_connect() || e.is_timeout() => Outcome::RETRYABLE,
        Err(_) => Outcome::NonRetryable,
    }
}

/// What can go wrong fetching the balance.
#[derive(Debug)]
pub enum FetchError {
    /// The request could not be built.
    Build(reqwest::Error),
    /// The call failed under the policy.
    Call(Error<reqwest::Error>),
    /// The body could not be read.
    Body(reqwest::Error),
}

impl std::fmt::Display for FetchError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            FetchError::Build(e) => write!(f, "building the request: {e}"),
            FetchError::Call(e) => write!(f, "calling: {e}"),
            FetchError::Body(e) => write!(f, "reading the body: {e}"),
        }
    }
}

impl std::error::Error for FetchError {}

/// Fetches `http://{addr}/balance` through reqwest wrapped in steadfast's tower layer, under
/// `handle`'s plan. Returns the final status and body.
pub async fn fetch_balance(addr: SocketAddr, handle: Handle) -> Result<(u16, String), FetchError> {
    let client = reqwest::Client::new();
    let layer = RetryLayer::new(handle)
        .clone_with(|req: &reqwest::Request| req.try_clone())
        .classify(classify::results(classify_reqwest));
    let mut svc = layer.layer(client.clone());
    let request = client
        .get(format!("http://{addr}/balance"))
        .build()
        .map_err(FetchError::Build)?;
    let response = svc
        .ready()
        .await
        .map_err(FetchError::Call)?
        .call(request)
        .await
        .map_err(FetchError::Call)?;
    let status = response.status().as_u16();
    let body = response.text().await.map_err(FetchError::Body)?;
    Ok((status, body))
}
