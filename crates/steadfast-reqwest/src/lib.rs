//! [`reqwest-middleware`](reqwest_middleware) for steadfast: every request runs under its
//! key's policy (retries, timeouts, breaker, bulkhead, rate limiter, budget, hedging,
//! observers), classified by the HTTP rules with `Retry-After`, and each attempt is a span
//! with the OpenTelemetry HTTP client attributes.
//!
//! - **The key** of a request is, in order: a [`Key`] in the request's extensions
//!   (`.with_extension(Key::parse("payments.Charge")?)`), what [`Steadfast::key_fn`] makes of
//!   its method and URL, or the default key ([`DEFAULT_KEY`], or
//!   [`Steadfast::default_key`]).
//! - **Classification** follows the key's policy: `classify = "http"` (with its `statuses`
//!   and `timeouts`) or `"grpc"` read the response's status and headers; a key whose policy
//!   names no classifier (or `always`, or `io`) is read by the default HTTP rules (408, 429,
//!   502, 503, 504 retried, after `Retry-After` in seconds or as an HTTP date; connection
//!   failures and timeouts retried); `never` retries nothing; a classifier of your own reads
//!   the `reqwest::Response` and `reqwest::Error` itself.
//! - **Copies**: each attempt sends a copy made by `Request::try_clone`, so a JSON or form
//!   body is identical on every attempt. A request with a streaming body cannot be copied:
//!   its one attempt still runs through the engine (timeouts, strategies, observers), and a
//!   retryable failure ends the call with [`Stop::NotCloneable`].
//! - **What happened**: a response carries a [`CallSummary`] in its extensions (attempts, and
//!   why retrying stopped when the response is not a success); a failed call is
//!   `reqwest_middleware::Error::Middleware` holding the [`steadfast::Error`], which
//!   [`error_of`] finds.
//! - **Spans**: each attempt is a `tracing` span named `HTTP` with `otel.name` (the method),
//!   `http.request.method`, `server.address`, `server.port`, `url.full`,
//!   `http.request.resend_count` (on resends) and `http.response.status_code` or
//!   `error.type`, as the OpenTelemetry HTTP client conventions name them.
//!
//! # Example
//! ```no_run
//! use std::time::Duration;
//! use reqwest_middleware::ClientBuilder;
//! use steadfast::classify::PolicyClassifier;
//! use steadfast::{policy::{Plan, Policies}, Executor, Key, Retry};
//! use steadfast_reqwest::Steadfast;
//!
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let retry = Retry::exponential(Duration::from_millis(100)).max_attempts(4).build()?;
//! let policies = Policies::new(retry.clone())
//!     // 500 is retried for payments too: the policy names the statuses, not the call site.
//!     .with_plan("payments.*", Plan::new(retry).classify(PolicyClassifier::built(
//!         &steadfast::classify::ClassifyOptions::new("http").statuses([500, 502, 503, 504]),
//!     )?))?;
//! let client = ClientBuilder::new(reqwest::Client::new())
//!     .with(Steadfast::new(Executor::new(policies)))
//!     .build();
//! let response = client
//!     .post("http://127.0.0.1:8080/charges")
//!     .with_extension(Key::parse("payments.Charge")?)
//!     .body(r#"{"amount": 100}"#)
//!     .send()
//!     .await?;
//! let summary = steadfast_reqwest::CallSummary::of(&response);
//! println!("{} after {} attempts", response.status(), summary.map_or(1, |s| s.attempts()));
//! # Ok(()) }
//! ```

use std::fmt;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Mutex};

use http::Extensions;
use reqwest::{Method, Request, Response, Url};
use reqwest_middleware::{Middleware, Next};
use steadfast::classify::{BUILT_IN, Classifier, Outcome, PolicyClassifier};
use steadfast::executor::{CallClassifier, Reports};
use steadfast::{Attempt, Executor, Key, KeyError, Stop};
use tracing::Instrument;

/// The key of a request that names none and that no key function maps.
pub const DEFAULT_KEY: &str = "http.Request";

/// The error a failed call ends with: steadfast's, around the last attempt's
/// `reqwest_middleware::Error`.
pub type CallError = steadfast::Error<reqwest_middleware::Error>;

type KeyFn = dyn Fn(&Method, &Url) -> Option<Key> + Send + Sync;

/// The middleware; see the [crate docs](crate).
#[derive(Clone)]
pub struct Steadfast {
    executor: Executor,
    default_key: Key,
    key_fn: Option<Arc<KeyFn>>,
    http: PolicyClassifier,
    error_text: bool,
}

impl fmt::Debug for Steadfast {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Steadfast")
            .field("default_key", &self.default_key)
            .field("key_fn", &self.key_fn.is_some())
            .finish_non_exhaustive()
    }
}

impl Steadfast {
    /// Runs requests under `executor`'s policies, by key.
    ///
    /// ```
    /// use steadfast::{policy::Policies, Executor, Retry};
    ///
    /// let middleware = steadfast_reqwest::Steadfast::new(Executor::new(Policies::new(Retry::default())));
    /// let client = reqwest_middleware::ClientBuilder::new(reqwest::Client::new()).with(middleware).build();
    /// # drop(client);
    /// ```
    pub fn new(executor: Executor) -> Self {
        Steadfast {
            executor,
            default_key: Key::parse(DEFAULT_KEY).unwrap_or_else(|_| unreachable!()),
            key_fn: None,
            http: PolicyClassifier::http(),
            error_text: false,
        }
    }

    /// Whether each failed attempt's error text goes to the executor's observers
    /// ([`Observer::on_attempt_error`](steadfast::observe::Observer::on_attempt_error)): the
    /// client's error, or a failed response's status (`503 Service Unavailable`). Off by
    /// default (an error's text may hold a URL's secrets).
    ///
    /// ```
    /// use steadfast::{policy::Policies, Executor, Retry};
    ///
    /// let executor = Executor::new(Policies::new(Retry::default()));
    /// let middleware = steadfast_reqwest::Steadfast::new(executor).error_text(true);
    /// # drop(middleware);
    /// ```
    pub fn error_text(mut self, on: bool) -> Self {
        self.error_text = on;
        self
    }

    /// The key of requests that name none (and that the key function does not map).
    ///
    /// ```
    /// use steadfast::{policy::Policies, Executor, Retry};
    ///
    /// let executor = Executor::new(Policies::new(Retry::default()));
    /// let middleware = steadfast_reqwest::Steadfast::new(executor).default_key("inventory.Http")?;
    /// # Ok::<(), steadfast::KeyError>(())
    /// ```
    pub fn default_key(mut self, key: &str) -> Result<Self, KeyError> {
        self.default_key = Key::parse(key)?;
        Ok(self)
    }

    /// Maps a request's method and URL to its key, for requests with no [`Key`] in their
    /// extensions; `None` leaves the default key.
    ///
    /// ```
    /// use steadfast::{policy::Policies, Executor, Key, Retry};
    ///
    /// let executor = Executor::new(Policies::new(Retry::default()));
    /// // "inventory.GET" for GET http://inventory/…: policies by host and method.
    /// let middleware = steadfast_reqwest::Steadfast::new(executor).key_fn(|method, url| {
    ///     Key::parse(&format!("{}.{}", url.host_str()?, method)).ok()
    /// });
    /// ```
    pub fn key_fn(
        mut self,
        f: impl Fn(&Method, &Url) -> Option<Key> + Send + Sync + 'static,
    ) -> Self {
        self.key_fn = Some(Arc::new(f));
        self
    }

    fn key_of(&self, req: &Request, extensions: &Extensions) -> Key {
        if let Some(key) = extensions.get::<Key>() {
            return key.clone();
        }
        self.key_fn
            .as_ref()
            .and_then(|f| f(req.method(), req.url()))
            .unwrap_or_else(|| self.default_key.clone())
    }
}

/// What the engine did for a response: in the response's extensions.
///
/// ```
/// use steadfast_reqwest::CallSummary;
///
/// let response = reqwest::Response::from(http::Response::new(""));
/// assert_eq!(CallSummary::of(&response), None); // not sent through the middleware
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CallSummary {
    attempts: u32,
    stop: Option<Stop>,
}

impl CallSummary {
    /// The summary the middleware left on `response`.
    pub fn of(response: &Response) -> Option<CallSummary> {
        response.extensions().get::<CallSummary>().copied()
    }

    /// Attempts sent, the first included.
    pub fn attempts(&self) -> u32 {
        self.attempts
    }

    /// Why retrying stopped, when the response is one the classifier called a failure (the
    /// last of an exhausted call, a status not worth retrying, or
    /// [`Stop::NotCloneable`] for a request that could not be copied); `None` for a success.
    pub fn stop(&self) -> Option<Stop> {
        self.stop
    }
}

/// The steadfast error inside a middleware error, when the call failed under its policy.
///
/// ```
/// let e = reqwest_middleware::Error::Middleware(anyhow::anyhow!("elsewhere"));
/// assert!(steadfast_reqwest::error_of(&e).is_none());
/// ```
pub fn error_of(error: &reqwest_middleware::Error) -> Option<&CallError> {
    match error {
        reqwest_middleware::Error::Middleware(e) => e.downcast_ref::<CallError>(),
        reqwest_middleware::Error::Reqwest(_) => None,
    }
}

#[async_trait::async_trait]
impl Middleware for Steadfast {
    async fn handle(
        &self,
        req: Request,
        extensions: &mut Extensions,
        next: Next<'_>,
    ) -> reqwest_middleware::Result<Response> {
        let key = self.key_of(&req, extensions);
        let (method, url) = (req.method().clone(), req.url().clone());
        // A request with a streaming body has no copy: its one attempt is the last.
        let template = req.try_clone();
        let last = Arc::new(AtomicBool::new(template.is_none()));
        let mut first = Some(req);
        let sent = AtomicU32::new(0);
        let mut stop = None;
        let shared = &*extensions;
        let op = |attempt: &Attempt| {
            let req = first
                .take()
                .or_else(|| template.as_ref().and_then(Request::try_clone));
            let number = attempt.number();
            sent.fetch_max(number, Ordering::Relaxed);
            let next = next.clone();
            let mut extensions = shared.clone();
            let (method, url) = (&method, &url);
            async move {
                // `None` cannot happen: a request with no copy has one attempt.
                let Some(req) = req else {
                    return std::future::pending().await;
                };
                // Under an executor that traces, the attempt's own span takes the attributes;
                // otherwise each attempt is a span of its own.
                let current = tracing::Span::current();
                let span = if current.metadata().map(|m| m.name()) == Some("steadfast.attempt") {
                    record_request(&current, method, url, number);
                    current
                } else {
                    let span = attempt_span();
                    record_request(&span, method, url, number);
                    span
                };
                let result = next
                    .run(req, &mut extensions)
                    .instrument(span.clone())
                    .await;
                match &result {
                    Ok(r) => {
                        span.record("http.response.status_code", i64::from(r.status().as_u16()))
                    }
                    Err(e) => span.record("error.type", error_type(e)),
                };
                result
            }
        };
        let judged = Arc::new(Mutex::new(None));
        let result = self
            .executor
            .call(key.as_str(), op)
            .classify_with(Http {
                last,
                judged: judged.clone(),
                default: self.http.clone(),
                text: self.error_text,
            })
            .on_exhausted(|x: &mut steadfast::retry::OnExhausted<'_, Response, _>| {
                stop = Some(x.stop());
            })
            .run()
            .await;
        match result {
            Ok(mut response) => {
                // A response the classifier refused to retry ends no allowance: say so.
                let refused = match *lock(&judged) {
                    Some(Outcome::NonRetryable) => Some(Stop::NonRetryable),
                    Some(Outcome::Abort) => Some(Stop::Aborted),
                    _ => None,
                };
                response.extensions_mut().insert(CallSummary {
                    attempts: sent.load(Ordering::Relaxed).max(1),
                    stop: stop.or(refused),
                });
                Ok(response)
            }
            Err(e) => Err(reqwest_middleware::Error::Middleware(anyhow::Error::new(e))),
        }
    }
}

/// One attempt's own span, declaring the OpenTelemetry HTTP client attributes.
fn attempt_span() -> tracing::Span {
    tracing::info_span!(
        "HTTP",
        otel.name = tracing::field::Empty,
        otel.kind = tracing::field::Empty,
        http.request.method = tracing::field::Empty,
        server.address = tracing::field::Empty,
        server.port = tracing::field::Empty,
        url.full = tracing::field::Empty,
        http.request.resend_count = tracing::field::Empty,
        http.response.status_code = tracing::field::Empty,
        error.type = tracing::field::Empty,
    )
}

/// The attributes known before the request is sent. Integers go as `i64`, the type
/// OpenTelemetry attributes have (`tracing-opentelemetry` writes a `u64` as text).
fn record_request(span: &tracing::Span, method: &Method, url: &Url, number: u32) {
    span.record("otel.name", method.as_str());
    span.record("otel.kind", "client");
    span.record("http.request.method", method.as_str());
    span.record("server.address", url.host_str().unwrap_or(""));
    if let Some(port) = url.port_or_known_default() {
        span.record("server.port", i64::from(port));
    }
    span.record("url.full", url.as_str());
    if number > 1 {
        span.record("http.request.resend_count", i64::from(number - 1));
    }
}

/// The `error.type` of a failed attempt: a short, low-cardinality name.
fn error_type(e: &reqwest_middleware::Error) -> &'static str {
    match e {
        reqwest_middleware::Error::Middleware(_) => "middleware",
        reqwest_middleware::Error::Reqwest(e) if e.is_timeout() => "timeout",
        reqwest_middleware::Error::Reqwest(e) if e.is_connect() => "connect",
        reqwest_middleware::Error::Reqwest(e) if e.is_request() => "request",
        reqwest_middleware::Error::Reqwest(e) if e.is_body() => "body",
        reqwest_middleware::Error::Reqwest(_) => "_OTHER",
    }
}

/// The middleware's classifier: the key's policy's rules, read from a `reqwest` response.
struct Http {
    last: Arc<AtomicBool>,
    /// The outcome of the last attempt classified.
    judged: Arc<Mutex<Option<Outcome>>>,
    default: PolicyClassifier,
    /// Whether failed attempts' texts are reported.
    text: bool,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl CallClassifier<Response, reqwest_middleware::Error> for Http {
    type Resolved<'a> = Resolved<'a>;

    fn resolve<'a>(&'a self, policy: &'a PolicyClassifier, reports: Reports<'a>) -> Resolved<'a> {
        let rules = match policy.name() {
            // Rules that do not read responses: the HTTP defaults do.
            "always" | "io" => &self.default,
            _ => policy,
        };
        Resolved {
            rules,
            last: &self.last,
            judged: &self.judged,
            reports: self.text.then_some(reports),
        }
    }
}

struct Resolved<'a> {
    rules: &'a PolicyClassifier,
    last: &'a AtomicBool,
    judged: &'a Mutex<Option<Outcome>>,
    reports: Option<Reports<'a>>,
}

impl Resolved<'_> {
    fn is_custom(&self) -> bool {
        !BUILT_IN.contains(&self.rules.name())
    }

    fn transport(&self, e: &reqwest::Error) -> Outcome {
        if self.rules.name() == "never" {
            return Outcome::NonRetryable;
        }
        if e.is_timeout() {
            return if self.rules.retries_timeouts() {
                Outcome::RETRYABLE
            } else {
                Outcome::NonRetryable
            };
        }
        if let Some(status) = e.status() {
            return self.status(status.as_u16(), &http::HeaderMap::new());
        }
        // The connection failed or broke while sending: nothing was answered.
        if e.is_connect() || e.is_request() {
            Outcome::RETRYABLE
        } else {
            Outcome::NonRetryable
        }
    }

    fn status(&self, status: u16, headers: &http::HeaderMap) -> Outcome {
        match self.rules.read_response(status, headers) {
            Some(outcome) => outcome,
            // `never`: a failure status is final.
            None if status < 400 => Outcome::Success,
            None => Outcome::NonRetryable,
        }
    }
}

impl Classifier<Response, reqwest_middleware::Error> for Resolved<'_> {
    fn classify(&self, result: &Result<Response, reqwest_middleware::Error>) -> Outcome {
        let outcome = self.judge(result);
        *lock(self.judged) = Some(outcome);
        if let Some(reports) = self.reports.filter(Reports::wants_errors) {
            match result {
                Err(e) => reports.error(e),
                Ok(r) if !outcome.is_success() => reports.error(&r.status()),
                Ok(_) => {}
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

impl Resolved<'_> {
    fn judge(&self, result: &Result<Response, reqwest_middleware::Error>) -> Outcome {
        if self.is_custom() {
            let read = match result {
                Ok(r) => self.rules.read(Ok(r)),
                Err(reqwest_middleware::Error::Reqwest(e)) => self.rules.read(Err(e)),
                Err(e) => self.rules.read(Err(e)),
            };
            if let Some(outcome) = read {
                return outcome;
            }
        }
        match result {
            Ok(r) => self.status(r.status().as_u16(), r.headers()),
            Err(reqwest_middleware::Error::Reqwest(e)) => self.transport(e),
            // Another middleware's failure is not the network's: not retried.
            Err(reqwest_middleware::Error::Middleware(_)) => Outcome::NonRetryable,
        }
    }
}

/// The integration pages' examples, compiled and run as doctests.
#[cfg(doctest)]
mod guides {
    #[doc = include_str!("../../../docs/integrations/reqwest.md")]
    struct Reqwest;
    #[doc = include_str!("../../../docs/integrations/server.md")]
    struct Server;
    #[doc = include_str!("../../../docs/integrations/opentelemetry.md")]
    struct OpenTelemetry;
}
