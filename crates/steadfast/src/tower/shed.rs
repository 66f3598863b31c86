//! Load shedding on the server side ([`ShedLayer`]).

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use http::{HeaderValue, Request, Response, StatusCode};
use tower_layer::Layer;
use tower_service::Service;

use crate::executor::Executor;
use crate::key::{Key, KeyError};
use crate::limit::{Bulkhead, RateLimiter};

/// How refusals are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Wire {
    Http,
    Grpc,
}

/// Load shedding on the server side: incoming requests are admitted by a key's rate limiter
/// and bulkhead, and refused with an answer the client can act on.
///
/// | refused by | HTTP | gRPC ([`ShedLayer::grpc`]) |
/// |---|---|---|
/// | rate limiter | `429 Too Many Requests`, `Retry-After` | `RESOURCE_EXHAUSTED`, `grpc-retry-pushback-ms` |
/// | bulkhead (full, or its queue wait ran out) | `503 Service Unavailable`, `Retry-After` | `UNAVAILABLE`, `grpc-retry-pushback-ms` |
///
/// `Retry-After` is the limiter's own "when the next call may go", rounded up to whole
/// seconds as the header has them; a full bulkhead has no such instant, so it says
/// [`ShedLayer::busy_retry_after`] (1 s unless set). A gRPC refusal is a trailers-only
/// response (HTTP 200 with `grpc-status` in the headers) and its pushback is in milliseconds.
/// A steadfast client honours both (`classify = "http"` or `"grpc"`).
///
/// The key's plan is read for each request, so a policy reload changes the limits at once.
///
/// # Example
/// ```
/// use std::time::Duration;
/// use steadfast::limit::RateLimitOptions;
/// use steadfast::policy::{Plan, Policies};
/// use steadfast::tower::ShedLayer;
/// use steadfast::{Executor, Retry};
/// use tower::{Layer, ServiceExt};
///
/// # #[tokio::main(flavor = "current_thread", start_paused = true)]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let plan = Plan::new(Retry::default()).rate_limit(RateLimitOptions::new(1, Duration::from_secs(2)))?;
/// let executor = Executor::new(Policies::default().with_plan("api.*", plan)?);
/// let layer = ShedLayer::new(executor, "api.Orders")?;
/// let svc = layer.layer(tower::service_fn(|_: http::Request<()>| async {
///     Ok::<_, std::convert::Infallible>(http::Response::new(String::from("done")))
/// }));
/// let first = svc.clone().oneshot(http::Request::new(())).await?;
/// assert_eq!(first.status(), 200);
/// let second = svc.oneshot(http::Request::new(())).await?;
/// assert_eq!(second.status(), 429);
/// assert_eq!(second.headers()["retry-after"], "2");
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct ShedLayer {
    executor: Executor,
    key: Key,
    wire: Wire,
    busy_retry_after: Duration,
}

impl ShedLayer {
    /// Admits requests by the rate limiter and bulkhead of `key`'s plan in `executor`,
    /// refusing with HTTP statuses.
    pub fn new(executor: Executor, key: &str) -> Result<Self, KeyError> {
        Ok(ShedLayer {
            executor,
            key: Key::parse(key)?,
            wire: Wire::Http,
            busy_retry_after: Duration::from_secs(1),
        })
    }

    /// Refuses as a gRPC server does: `RESOURCE_EXHAUSTED` or `UNAVAILABLE` with
    /// `grpc-retry-pushback-ms`.
    pub fn grpc(mut self) -> Self {
        self.wire = Wire::Grpc;
        self
    }

    /// When a client refused by a full bulkhead should come back (1 s unless set).
    pub fn busy_retry_after(mut self, after: Duration) -> Self {
        self.busy_retry_after = after;
        self
    }
}

impl<S> Layer<S> for ShedLayer {
    type Service = ShedService<S>;

    fn layer(&self, inner: S) -> ShedService<S> {
        ShedService {
            inner,
            layer: self.clone(),
        }
    }
}

/// A service whose requests a key's limits admit; made by [`ShedLayer`].
#[derive(Debug, Clone)]
pub struct ShedService<S> {
    inner: S,
    layer: ShedLayer,
}

/// Why a request was refused.
#[derive(Debug, Clone, Copy)]
enum Refused {
    Rate,
    Busy,
}

impl<S, ReqB, ResB> Service<Request<ReqB>> for ShedService<S>
where
    S: Service<Request<ReqB>, Response = Response<ResB>> + Clone + Send + 'static,
    S::Future: Send,
    ReqB: Send + 'static,
    ResB: Default + Send + 'static,
{
    type Response = Response<ResB>;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Response<ResB>, S::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<ReqB>) -> Self::Future {
        // The ready service takes this request; a clone stays for the next (tower's contract).
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let layer = &self.layer;
        let key = layer.key.as_str();
        // The key was parsed when the layer was made, so looking it up cannot fail.
        let limiter: Option<RateLimiter> = layer.executor.rate_limiter(key).ok().flatten();
        let bulkhead: Option<Bulkhead> = layer.executor.bulkhead(key).ok().flatten();
        let (wire, busy_after) = (layer.wire, layer.busy_retry_after);
        Box::pin(async move {
            if let Some(limiter) = &limiter
                && let Err(limited) = limiter.acquire().await
            {
                return Ok(refusal(wire, Refused::Rate, limited.retry_after));
            }
            let _place = match &bulkhead {
                Some(bulkhead) => match bulkhead.acquire().await {
                    Ok(place) => Some(place),
                    Err(_) => return Ok(refusal(wire, Refused::Busy, busy_after)),
                },
                None => None,
            };
            inner.call(req).await
        })
    }
}

/// The answer to a refused request.
fn refusal<B: Default>(wire: Wire, why: Refused, after: Duration) -> Response<B> {
    let mut response = Response::new(B::default());
    match wire {
        Wire::Http => {
            *response.status_mut() = match why {
                Refused::Rate => StatusCode::TOO_MANY_REQUESTS,
                Refused::Busy => StatusCode::SERVICE_UNAVAILABLE,
            };
            // Whole seconds, rounded up: a client told 0 would come straight back.
            let secs = after.as_secs() + u64::from(after.subsec_nanos() > 0);
            response
                .headers_mut()
                .insert("retry-after", HeaderValue::from(secs.max(1)));
        }
        Wire::Grpc => {
            let (code, message) = match why {
                Refused::Rate => ("8", "rate limited"),
                Refused::Busy => ("14", "too many requests in flight"),
            };
            let headers = response.headers_mut();
            headers.insert("content-type", HeaderValue::from_static("application/grpc"));
            headers.insert("grpc-status", HeaderValue::from_static(code));
            headers.insert("grpc-message", HeaderValue::from_static(message));
            let ms = u64::try_from(after.as_millis()).unwrap_or(u64::MAX);
            headers.insert("grpc-retry-pushback-ms", HeaderValue::from(ms.max(1)));
        }
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Retry;
    use crate::limit::{BulkheadOptions, RateLimitOptions};
    use crate::policy::{Plan, Policies};
    use tower::ServiceExt;

    fn executor(plan: Plan) -> Executor {
        Executor::new(Policies::default().with_plan("api.*", plan).unwrap())
    }

    fn slow() -> impl Service<
        Request<()>,
        Response = Response<String>,
        Error = std::convert::Infallible,
        Future = impl Send,
    > + Clone
    + Send
    + 'static {
        tower::service_fn(|_: Request<()>| async {
            tokio::time::sleep(Duration::from_secs(1)).await;
            Ok(Response::new(String::from("done")))
        })
    }

    #[tokio::test(start_paused = true)]
    async fn a_full_bulkhead_answers_503_with_the_busy_retry_after() {
        let plan = Plan::new(Retry::default())
            .bulkhead(BulkheadOptions::new(1))
            .unwrap();
        let layer = ShedLayer::new(executor(plan), "api.Orders")
            .unwrap()
            .busy_retry_after(Duration::from_millis(2500));
        let svc = layer.layer(slow());
        let first = tokio::spawn(svc.clone().oneshot(Request::new(())));
        tokio::task::yield_now().await;
        let second = svc.clone().oneshot(Request::new(())).await.unwrap();
        assert_eq!(second.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(second.headers()["retry-after"], "3", "2.5 s rounds up");
        assert_eq!(first.await.unwrap().unwrap().status(), StatusCode::OK);
        // The place is free again once the first has answered.
        let third = svc.oneshot(Request::new(())).await.unwrap();
        assert_eq!(third.status(), StatusCode::OK);
    }

    #[tokio::test(start_paused = true)]
    async fn a_grpc_rate_refusal_is_resource_exhausted_with_pushback_in_milliseconds() {
        let plan = Plan::new(Retry::default())
            .rate_limit(RateLimitOptions::new(4, Duration::from_secs(1)).burst(1))
            .unwrap();
        let layer = ShedLayer::new(executor(plan), "api.Orders").unwrap().grpc();
        let svc = layer.layer(tower::service_fn(|_: Request<()>| async {
            Ok::<_, std::convert::Infallible>(Response::new(String::new()))
        }));
        let first = svc.clone().oneshot(Request::new(())).await.unwrap();
        assert_eq!(first.headers().get("grpc-status"), None);
        let second = svc.oneshot(Request::new(())).await.unwrap();
        assert_eq!(
            second.status(),
            StatusCode::OK,
            "gRPC refusals are trailers-only"
        );
        assert_eq!(second.headers()["content-type"], "application/grpc");
        assert_eq!(second.headers()["grpc-status"], "8");
        // The next place is 250 ms after the first call's.
        let ms: u64 = second.headers()["grpc-retry-pushback-ms"]
            .to_str()
            .unwrap()
            .parse()
            .unwrap();
        assert_eq!(ms, 250, "pushback");
    }

    #[tokio::test]
    async fn a_key_without_limits_admits_everything() {
        let layer = ShedLayer::new(executor(Plan::new(Retry::default())), "api.Orders").unwrap();
        let svc = layer.layer(tower::service_fn(|_: Request<()>| async {
            Ok::<_, std::convert::Infallible>(Response::new(String::new()))
        }));
        for _ in 0..100 {
            let r = svc.clone().oneshot(Request::new(())).await.unwrap();
            assert_eq!(r.status(), StatusCode::OK);
        }
    }
}
