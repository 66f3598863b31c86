//! tonic integration (feature `tonic`): a channel's calls under their methods' plans, with
//! gRPC's retry rules (gRFC A6) and no code at the call site.
//!
//! [`GrpcLayer`] wraps a `tonic::transport::Channel` (or any service of
//! `http::Request<tonic::body::Body>`); a generated client over it retries as the key's
//! policy says:
//!
//! - **The key** of a call is a [`Key`] in the request's extensions
//!   (`request.extensions_mut().insert(key)`), else the method's path with its slash made a
//!   dot (`/payments.v1.Payments/Charge` runs under `payments.v1.Payments.Charge`, so a
//!   policy table `payments.*` covers the service), else [`DEFAULT_KEY`].
//! - **Bodies are buffered** so every attempt sends the same message: up to
//!   [`GrpcLayer::buffer_limits`]' per-call limit (1 MiB unless set), and while all the
//!   layer's calls together hold less than its total (16 MiB), as grpc-java's defaults are. A
//!   call over either limit makes one attempt, through the engine like any other (timeouts,
//!   strategies, observers), and a retryable failure ends it with [`Stop::NotCloneable`].
//! - **Classification** follows the key's policy: `classify = "grpc"` (with its `codes` and
//!   `timeouts`), or the gRPC defaults (`UNAVAILABLE` retried) when the policy names no
//!   classifier (or `always`, or `io`); `never` retries nothing. `grpc-status` is read from a
//!   trailers-only response, and `grpc-retry-pushback-ms` sets the wait (a negative pushback
//!   stops). A response with headers is committed, as gRFC A6 says: its body streams to the
//!   caller and is not retried. A failure the channel reports (no connection) is
//!   `UNAVAILABLE` and retried.
//! - **Each retry** carries `grpc-previous-rpc-attempts`, and a `grpc-timeout` no later
//!   than the call's deadline (the one the request set, or the policy's total timeout).
//! - **Errors are `tonic::Status`**: a timeout is `DEADLINE_EXCEEDED`; an open breaker or a
//!   full bulkhead `UNAVAILABLE`; a rate limiter or budget refusal `RESOURCE_EXHAUSTED`, with
//!   its wait in `grpc-retry-pushback-ms`; the message is the steadfast [`Error`]'s text. A
//!   failure the layer stopped retrying carries `steadfast-stop` (e.g. `not_cloneable`) in its
//!   metadata, and every response a [`CallSummary`] in its extensions.
//!
//! # Example
//! ```no_run
//! use steadfast::tonic::GrpcLayer;
//! use steadfast::{policy::Policies, Executor};
//!
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let channel = tonic::transport::Channel::from_static("http://127.0.0.1:50051").connect().await?;
//! let executor = Executor::new(Policies::default());
//! let channel = tower::ServiceBuilder::new()
//!     .layer(GrpcLayer::new(executor))
//!     .service(channel);
//! // A generated client takes it as it takes a channel: `EchoClient::new(channel)`.
//! # let _ = channel;
//! # Ok(()) }
//! ```

use crate::ErrorKind;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use ::tonic::body::Body;
use ::tonic::{Code, Status};
use bytes::{Bytes, BytesMut};
use http::{HeaderMap, HeaderValue, Request, Response};
use http_body::Frame;
use http_body_util::BodyExt;
use tower_layer::Layer;
use tower_service::Service;

use crate::classify::{BUILT_IN, Classifier, Outcome, PolicyClassifier};
use crate::error::{Error, Stop};
use crate::executor::{Attempt, CallClassifier, Executor, Reports};
use crate::key::Key;

/// The key of a call whose request names none and whose path is not a key.
pub const DEFAULT_KEY: &str = "grpc.Call";

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Runs a tonic channel's calls under their keys' plans; see the [module docs](self).
#[derive(Debug, Clone)]
pub struct GrpcLayer {
    executor: Executor,
    per_call: usize,
    total: usize,
    held: Arc<AtomicUsize>,
    error_text: bool,
}

impl GrpcLayer {
    /// A layer running calls under their keys' plans in `executor`, buffering up to 1 MiB
    /// per call and 16 MiB in all.
    pub fn new(executor: Executor) -> Self {
        GrpcLayer {
            executor,
            per_call: 1 << 20,
            total: 16 << 20,
            held: Arc::default(),
            error_text: false,
        }
    }

    /// Whether each failed attempt's error text goes to the executor's observers
    /// ([`Observer::on_attempt_error`](crate::observe::Observer::on_attempt_error)): the
    /// channel's error, or a response's `grpc-status` and `grpc-message`. Off by default (a
    /// message may hold what logs must not).
    pub fn error_text(mut self, on: bool) -> Self {
        self.error_text = on;
        self
    }

    /// How much of one call's request body is kept for retries, and how much all the calls
    /// through this layer keep together (gRFC A6's per-RPC and total buffer limits).
    pub fn buffer_limits(mut self, per_call: usize, total: usize) -> Self {
        self.per_call = per_call;
        self.total = total;
        self
    }
}

impl<S> Layer<S> for GrpcLayer {
    type Service = GrpcService<S>;

    fn layer(&self, inner: S) -> GrpcService<S> {
        GrpcService {
            inner,
            layer: self.clone(),
        }
    }
}

/// A channel whose calls run under their keys' plans; made by [`GrpcLayer`].
#[derive(Debug, Clone)]
pub struct GrpcService<S> {
    inner: S,
    layer: GrpcLayer,
}

/// How a call through [`GrpcLayer`] went: in every response's extensions (a tonic
/// `Response`'s `extensions()`).
///
/// ```
/// let extensions = http::Extensions::new();
/// assert!(extensions.get::<steadfast::tonic::CallSummary>().is_none());
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CallSummary {
    attempts: u32,
    stop: Option<Stop>,
}

impl CallSummary {
    /// The attempts sent.
    pub fn attempts(&self) -> u32 {
        self.attempts
    }

    /// Why retrying stopped, when the answer is a failure the policy would have retried or
    /// refused to: `None` for a success.
    pub fn stop(&self) -> Option<Stop> {
        self.stop
    }
}

impl<S, ResB> Service<Request<Body>> for GrpcService<S>
where
    S: Service<Request<Body>, Response = Response<ResB>> + Clone + Send + 'static,
    S::Future: Send,
    S::Error: Into<BoxError>,
    ResB: Send + 'static,
{
    type Response = Response<ResB>;
    type Error = Status;
    type Future = Pin<Box<dyn Future<Output = Result<Response<ResB>, Status>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Status>> {
        self.inner
            .poll_ready(cx)
            .map_err(|e| Status::from_error(e.into()))
    }

    fn call(&mut self, req: Request<Body>) -> Self::Future {
        // The ready service takes this call; a clone stays for the next one (tower's contract).
        let clone = self.inner.clone();
        let ready = std::mem::replace(&mut self.inner, clone);
        let layer = self.layer.clone();
        Box::pin(async move { layer.run(ready, req).await })
    }
}

impl GrpcLayer {
    async fn run<S, ResB>(self, ready: S, req: Request<Body>) -> Result<Response<ResB>, Status>
    where
        S: Service<Request<Body>, Response = Response<ResB>> + Clone + Send + 'static,
        S::Future: Send,
        S::Error: Into<BoxError>,
        ResB: Send + 'static,
    {
        let key = key_of(&req);
        let (parts, body) = req.into_parts();
        let mut buffered = self.buffer(body).await?;
        let deadline = parts.headers.get("grpc-timeout").and_then(parse_timeout);
        // Over a limit, the one attempt is the last.
        let last = Arc::new(AtomicBool::new(
            buffered.rest.is_some() || buffered.hold.is_none(),
        ));
        let hold = buffered.hold.take();
        let judged = Arc::new(Mutex::new(None));
        let sent = Arc::new(AtomicU32::new(0));
        // The ready service takes the first attempt; later ones call a clone, after `ready`.
        let spare = ready.clone();
        let mut first = Some((ready, buffered.first()));
        let mut stop = None;
        let counted = sent.clone();
        let op = move |attempt: &Attempt| {
            let n = attempt.number();
            counted.fetch_max(n, Ordering::Relaxed);
            let (mut svc, body, is_ready) = match first.take() {
                Some((svc, body)) => (svc, body, true),
                None => (spare.clone(), buffered.copy(), false),
            };
            let mut request = Request::new(body);
            *request.method_mut() = parts.method.clone();
            *request.uri_mut() = parts.uri.clone();
            *request.version_mut() = parts.version;
            *request.headers_mut() = parts.headers.clone();
            *request.extensions_mut() = parts.extensions.clone();
            if n > 1 {
                request
                    .headers_mut()
                    .insert("grpc-previous-rpc-attempts", HeaderValue::from(n - 1));
            }
            if let Some(left) = earliest(deadline, attempt.remaining()) {
                request
                    .headers_mut()
                    .insert("grpc-timeout", timeout_header(left));
            }
            async move {
                if !is_ready {
                    std::future::poll_fn(|cx| svc.poll_ready(cx))
                        .await
                        .map_err(boxed)?;
                }
                svc.call(request).await.map_err(boxed)
            }
        };
        let result = self
            .executor
            .call(&key, op)
            .classify_with(Grpc {
                last,
                judged: judged.clone(),
                text: self.error_text,
            })
            .on_exhausted(|x: &mut crate::retry::OnExhausted<'_, Response<ResB>, _>| {
                stop = Some(x.stop());
            })
            .run()
            .await;
        drop(hold);
        let attempts = sent.load(Ordering::Relaxed).max(1);
        match result {
            Ok(mut response) => {
                let refused = match *lock(&judged) {
                    Some(Outcome::NonRetryable) => Some(Stop::NonRetryable),
                    Some(Outcome::Abort) => Some(Stop::Aborted),
                    _ => None,
                };
                let stop = stop.or(refused);
                if let Some(stop) = stop {
                    response
                        .headers_mut()
                        .insert("steadfast-stop", HeaderValue::from_static(stop.as_str()));
                }
                response
                    .extensions_mut()
                    .insert(CallSummary { attempts, stop });
                Ok(response)
            }
            Err(e) => Err(status_of(e)),
        }
    }

    /// Reads the request body for copies, within the layer's limits.
    async fn buffer(&self, mut body: Body) -> Result<Buffered, Status> {
        let mut data = BytesMut::new();
        let mut trailers = None;
        loop {
            if data.len() > self.per_call {
                // Over the limit: one attempt sends what was read, then the rest.
                return Ok(Buffered {
                    data: data.freeze(),
                    trailers: None,
                    rest: Some(body),
                    hold: None,
                });
            }
            match body.frame().await {
                None => break,
                Some(Err(e)) => return Err(Status::from_error(Box::new(e))),
                Some(Ok(frame)) => match frame.into_data() {
                    Ok(chunk) => data.extend_from_slice(&chunk),
                    Err(frame) => trailers = frame.into_trailers().ok(),
                },
            }
        }
        let data = data.freeze();
        let hold = Hold::take(&self.held, data.len(), self.total);
        Ok(Buffered {
            data,
            trailers,
            rest: None,
            hold,
        })
    }
}

/// A call's request body, kept for copies.
struct Buffered {
    data: Bytes,
    trailers: Option<HeaderMap>,
    /// The body past the per-call limit: the one attempt sends it after `data`.
    rest: Option<Body>,
    /// The call's share of the layer's total; `None` when the total was full (one attempt).
    hold: Option<Hold>,
}

impl Buffered {
    /// The first attempt's body (with the unread rest, if any).
    fn first(&mut self) -> Body {
        Body::new(Replay {
            data: Some(self.data.clone()).filter(|d| !d.is_empty()),
            trailers: self.trailers.clone(),
            rest: self.rest.take(),
        })
    }

    fn copy(&self) -> Body {
        Body::new(Replay {
            data: Some(self.data.clone()).filter(|d| !d.is_empty()),
            trailers: self.trailers.clone(),
            rest: None,
        })
    }
}

/// Bytes held for copies, given back when the call ends.
struct Hold {
    held: Arc<AtomicUsize>,
    len: usize,
}

impl Hold {
    fn take(held: &Arc<AtomicUsize>, len: usize, total: usize) -> Option<Hold> {
        held.fetch_update(Ordering::AcqRel, Ordering::Acquire, |now| {
            now.checked_add(len).filter(|&after| after <= total)
        })
        .ok()?;
        Some(Hold {
            held: held.clone(),
            len,
        })
    }
}

impl Drop for Hold {
    fn drop(&mut self) {
        self.held.fetch_sub(self.len, Ordering::AcqRel);
    }
}

pin_project_lite::pin_project! {
    /// A body that sends kept bytes, then (for a call over the limit) the unread rest.
    struct Replay {
        data: Option<Bytes>,
        trailers: Option<HeaderMap>,
        #[pin]
        rest: Option<Body>,
    }
}

impl http_body::Body for Replay {
    type Data = Bytes;
    type Error = Status;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Status>>> {
        let mut this = self.project();
        if let Some(data) = this.data.take() {
            return Poll::Ready(Some(Ok(Frame::data(data))));
        }
        if let Some(rest) = this.rest.as_mut().as_pin_mut() {
            return rest.poll_frame(cx);
        }
        Poll::Ready(this.trailers.take().map(|t| Ok(Frame::trailers(t))))
    }

    fn is_end_stream(&self) -> bool {
        self.data.is_none() && self.trailers.is_none() && self.rest.is_none()
    }
}

fn key_of(req: &Request<Body>) -> String {
    if let Some(key) = req.extensions().get::<Key>() {
        return key.as_str().to_owned();
    }
    let path = req
        .uri()
        .path()
        .trim_start_matches('/')
        .replacen('/', ".", 1);
    match Key::parse(&path) {
        Ok(_) => path,
        Err(_) => DEFAULT_KEY.to_owned(),
    }
}

/// The channel's own failure (a type without lifetimes, so the call's future is `Send`).
struct Failed(BoxError);

impl Failed {
    /// Whether the channel gave up waiting (tonic's `TimeoutExpired`, anywhere in the chain).
    fn timed_out(&self) -> bool {
        let mut e: Option<&(dyn std::error::Error + 'static)> = Some(&*self.0);
        while let Some(err) = e {
            if err.is::<::tonic::TimeoutExpired>() {
                return true;
            }
            e = err.source();
        }
        false
    }
}

fn boxed(e: impl Into<BoxError>) -> Failed {
    Failed(e.into())
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// The sooner of two deadlines.
fn earliest(a: Option<Duration>, b: Option<Duration>) -> Option<Duration> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

/// A `grpc-timeout` value: at most 8 digits and a unit.
fn parse_timeout(v: &HeaderValue) -> Option<Duration> {
    let v = v.to_str().ok()?;
    let (digits, unit) = v.split_at(v.len().checked_sub(1)?);
    let n: u64 = digits.parse().ok()?;
    Some(match unit {
        "H" => Duration::from_secs(n.saturating_mul(3600)),
        "M" => Duration::from_secs(n.saturating_mul(60)),
        "S" => Duration::from_secs(n),
        "m" => Duration::from_millis(n),
        "u" => Duration::from_micros(n),
        "n" => Duration::from_nanos(n),
        _ => return None,
    })
}

fn timeout_header(left: Duration) -> HeaderValue {
    // Milliseconds, rounded up, fit the 8 digits allowed for 27 hours; past that, hours.
    let ms = left.as_nanos().div_ceil(1_000_000);
    let text = if ms < 100_000_000 {
        format!("{ms}m")
    } else {
        format!("{}H", (left.as_secs() / 3600).min(99_999_999))
    };
    HeaderValue::try_from(text).unwrap_or(HeaderValue::from_static("1m"))
}

/// A steadfast error as the status a gRPC caller expects.
fn status_of(e: Error<Failed>) -> Status {
    let pushback = |after: Option<Duration>, mut status: Status| {
        if let Some(after) = after {
            let ms = u64::try_from(after.as_millis()).unwrap_or(u64::MAX);
            if let Ok(v) = ms.to_string().parse() {
                status.metadata_mut().insert("grpc-retry-pushback-ms", v);
            }
        }
        status
    };
    let code = match e.kind() {
        ErrorKind::Operation { .. } | ErrorKind::NotReady(_) => None,
        ErrorKind::Timeout { .. } => Some(Code::DeadlineExceeded),
        ErrorKind::Cancelled { .. } => Some(Code::Cancelled),
        ErrorKind::CircuitOpen { .. } | ErrorKind::BulkheadFull { .. } => Some(Code::Unavailable),
        ErrorKind::RateLimited { .. } | ErrorKind::Throttled { .. } | ErrorKind::GateClosed(_) => {
            Some(Code::ResourceExhausted)
        }
        ErrorKind::Rejected(_) => Some(Code::PermissionDenied),
        ErrorKind::Idempotency(_) => Some(Code::Aborted),
        ErrorKind::InvalidKey(_) => Some(Code::Internal),
    };
    let after = match e.kind() {
        ErrorKind::CircuitOpen { retry_after, .. } => *retry_after,
        ErrorKind::RateLimited { retry_after, .. } => Some(*retry_after),
        _ => None,
    };
    let Some(code) = code else {
        // The channel's own failure, as tonic reports it without the layer.
        return match e.into_kind() {
            // The channel's own timer (it enforces `grpc-timeout`): the deadline passed.
            ErrorKind::Operation { source, .. } if source.timed_out() => {
                Status::deadline_exceeded(source.0.to_string())
            }
            ErrorKind::Operation { source, .. } | ErrorKind::NotReady(source) => {
                Status::from_error(source.0)
            }
            other => Status::unknown(other.to_string()),
        };
    };
    pushback(after, Status::new(code, e.to_string()))
}

/// The layer's classifier: the key's policy's rules, read from a gRPC response.
struct Grpc {
    last: Arc<AtomicBool>,
    judged: Arc<Mutex<Option<Outcome>>>,
    /// Whether failed attempts' texts are reported.
    text: bool,
}

impl<B: 'static> CallClassifier<Response<B>, Failed> for Grpc {
    type Resolved<'a> = Resolved<'a>;

    fn resolve<'a>(&'a self, policy: &'a PolicyClassifier, reports: Reports<'a>) -> Resolved<'a> {
        Resolved {
            policy,
            last: &self.last,
            judged: &self.judged,
            reports: self.text.then_some(reports),
        }
    }
}

struct Resolved<'a> {
    policy: &'a PolicyClassifier,
    last: &'a AtomicBool,
    judged: &'a Mutex<Option<Outcome>>,
    reports: Option<Reports<'a>>,
}

static GRPC_DEFAULTS: std::sync::LazyLock<PolicyClassifier> =
    std::sync::LazyLock::new(PolicyClassifier::grpc);

impl Resolved<'_> {
    fn judge<B: 'static>(&self, result: &Result<Response<B>, Failed>) -> Outcome {
        let name = self.policy.name();
        if !BUILT_IN.contains(&name)
            && let Ok(r) = result
            && let Some(outcome) = self.policy.read(Ok(r))
        {
            return outcome;
        }
        let rules = match name {
            // Rules that do not read responses: the gRPC defaults do.
            "always" | "io" => &*GRPC_DEFAULTS,
            _ => self.policy,
        };
        match result {
            Ok(r) => match rules.read_response(r.status().as_u16(), r.headers()) {
                Some(outcome) => outcome,
                None if r.headers().get("grpc-status").is_none_or(|v| v == "0") => Outcome::Success,
                // `never`: a failure is final.
                None => Outcome::NonRetryable,
            },
            Err(_) if name == "never" => Outcome::NonRetryable,
            Err(e) if e.timed_out() && !rules.retries_timeouts() => Outcome::NonRetryable,
            // Nothing was answered: the channel could not send (UNAVAILABLE).
            Err(_) => Outcome::RETRYABLE,
        }
    }
}

impl<B: 'static> Classifier<Response<B>, Failed> for Resolved<'_> {
    fn classify(&self, result: &Result<Response<B>, Failed>) -> Outcome {
        let outcome = self.judge(result);
        *lock(self.judged) = Some(outcome);
        if let Some(reports) = self.reports.filter(Reports::wants_errors) {
            match result {
                Err(e) => reports.error(&e.0),
                Ok(r) => {
                    let header = |name| r.headers().get(name).and_then(|v| v.to_str().ok());
                    if let Some(code) = header("grpc-status").filter(|c| *c != "0") {
                        let message = header("grpc-message").unwrap_or("");
                        reports.error(&format_args!("grpc-status {code}: {message}"));
                    }
                }
            }
        }
        outcome
    }

    fn stop_after(&self) -> Option<Stop> {
        self.last
            .load(Ordering::Relaxed)
            .then_some(Stop::NotCloneable)
    }
}

/// The integration page's example, compiled and run as a doctest.
#[cfg(doctest)]
#[doc = include_str!("../../../docs/integrations/tonic.md")]
struct Guide;
