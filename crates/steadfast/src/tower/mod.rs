//! `tower` integration (feature `tower`): any [`Service`] under a key's plan, so a hyper or
//! axum stack gets retries, observers and the policy chain from one layer; and on the server
//! side, [`ShedLayer`] admits incoming requests by a key's bulkhead and rate limiter.
//!
//! Each attempt calls a fresh clone of the inner service (after `ready`) with a copy of the
//! request. Requests are copied with `Clone` by default, or with [`RetryLayer::clone_with`]
//! for requests that can only sometimes be copied (a streaming HTTP body): when the copy
//! fails, the request's one attempt still runs under the plan (timeouts, strategies,
//! observers) and a retryable failure ends the call with [`Stop::NotCloneable`], never a
//! silent retry without a body. A service whose `poll_ready` fails gives
//! [`ErrorKind::NotReady`] with its error.
//!
//! # Example
//! ```
//! use std::time::Duration;
//! use steadfast::tower::RetryLayer;
//! use steadfast::{policy::Policies, Executor, Retry};
//! use tower::{Layer, Service, ServiceExt};
//!
//! # #[tokio::main(flavor = "current_thread", start_paused = true)]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let executor = Executor::new(Policies::new(Retry::fixed(Duration::from_millis(10)).build()?));
//! let layer = RetryLayer::new(executor.handle("inventory.Get")?);
//! let mut svc = layer.layer(tower::service_fn(|sku: u32| async move { Ok::<_, std::io::Error>(sku * 2) }));
//! assert_eq!(svc.ready().await?.call(21).await?, 42);
//! # Ok(()) }
//! ```

use crate::ErrorKind;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll};

pub use tower_layer::Layer;
pub use tower_service::Service;

mod shed;
pub use shed::{ShedLayer, ShedService};

use crate::classify::{Classifier, Outcome, PolicyClassifier};
use crate::error::{Error, Stop};
use crate::executor::Handle;
use crate::executor::{CallClassifier, ErrorText, FromPlan, Given, Reports};

/// How a layer copies a request for another attempt.
pub trait CloneRequest<Req> {
    /// A copy of `req`, or `None` if it cannot be copied.
    fn clone_request(&self, req: &Req) -> Option<Req>;
}

/// Copies requests with `Clone`.
#[derive(Debug, Clone, Copy, Default)]
pub struct ByClone;

impl<Req: Clone> CloneRequest<Req> for ByClone {
    fn clone_request(&self, req: &Req) -> Option<Req> {
        Some(req.clone())
    }
}

/// Copies requests with a function (see [`RetryLayer::clone_with`]).
#[derive(Debug, Clone, Copy)]
pub struct CloneWith<G>(G);

impl<Req, G: Fn(&Req) -> Option<Req>> CloneRequest<Req> for CloneWith<G> {
    fn clone_request(&self, req: &Req) -> Option<Req> {
        (self.0)(req)
    }
}

/// Runs a service's calls under a key's plan; see the [module docs](self).
#[derive(Debug, Clone)]
pub struct RetryLayer<R = ByClone, C = FromPlan> {
    handle: Handle,
    clone: R,
    classifier: C,
}

impl RetryLayer {
    /// A layer running calls under `handle`'s key, copying requests with `Clone` and
    /// classifying results by the key's policy (`classify = "http"` in a policy file).
    pub fn new(handle: Handle) -> Self {
        RetryLayer {
            handle,
            clone: ByClone,
            classifier: FromPlan,
        }
    }
}

impl<R, C> RetryLayer<R, C> {
    /// Copies requests with `f` (e.g. `reqwest::Request::try_clone`).
    pub fn clone_with<Req, G: Fn(&Req) -> Option<Req>>(self, f: G) -> RetryLayer<CloneWith<G>, C> {
        RetryLayer {
            handle: self.handle,
            clone: CloneWith(f),
            classifier: self.classifier,
        }
    }

    /// Classifies each attempt's result with `classifier` instead of the key's policy's.
    pub fn classify<C2>(self, classifier: C2) -> RetryLayer<R, Given<C2>> {
        RetryLayer {
            handle: self.handle,
            clone: self.clone,
            classifier: Given(classifier),
        }
    }

    /// Reports each failed attempt's error text (the service error's `Display`) to the
    /// executor's observers (see [`KeyCall::error_text`](crate::executor::KeyCall::error_text)).
    pub fn error_text(self) -> RetryLayer<R, ErrorText<C>> {
        RetryLayer {
            handle: self.handle,
            clone: self.clone,
            classifier: ErrorText(self.classifier),
        }
    }
}

impl<S, R: Clone, C: Clone> Layer<S> for RetryLayer<R, C> {
    type Service = RetryService<S, R, C>;

    fn layer(&self, inner: S) -> Self::Service {
        RetryService {
            inner,
            handle: self.handle.clone(),
            clone: self.clone.clone(),
            classifier: self.classifier.clone(),
        }
    }
}

/// A service whose calls run under a key's plan; made by [`RetryLayer`].
#[derive(Debug, Clone)]
pub struct RetryService<S, R = ByClone, C = FromPlan> {
    inner: S,
    handle: Handle,
    clone: R,
    classifier: C,
}

impl<S, Req, R, C> Service<Req> for RetryService<S, R, C>
where
    S: Service<Req> + Clone + Send + 'static,
    S::Future: Send,
    S::Response: Send + 'static,
    S::Error: Send + 'static,
    Req: Send + 'static,
    R: CloneRequest<Req> + Clone + Send + 'static,
    C: CallClassifier<S::Response, S::Error> + Clone + Send + Sync + 'static,
    for<'a> C::Resolved<'a>: Send + Sync,
{
    type Response = S::Response;
    type Error = Error<S::Error>;
    type Future = Pin<Box<dyn Future<Output = Result<S::Response, Error<S::Error>>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner
            .poll_ready(cx)
            .map_err(|e| Error::new(ErrorKind::NotReady(e)))
    }

    fn call(&mut self, req: Req) -> Self::Future {
        // The ready service takes this call; a clone stays for the next one (tower's contract).
        let clone_of_inner = self.inner.clone();
        let ready = std::mem::replace(&mut self.inner, clone_of_inner);
        let handle = self.handle.clone();
        let cloner = self.clone.clone();
        let classifier = self.classifier.clone();
        Box::pin(async move {
            // A request that cannot be copied has one attempt, run through the engine like any
            // other (timeouts, strategies, observers); a retryable failure then ends the call
            // with `Stop::NotCloneable`.
            let mut template = cloner.clone_request(&req);
            let spare = ready.clone();
            let mut first = Some((ready, req));
            // Set when an attempt had to take the template itself (or there is none): it is
            // the last.
            let last = Arc::new(AtomicBool::new(template.is_none()));
            let classifier = LastAttempt {
                inner: classifier,
                last: last.clone(),
            };
            handle
                .call(move || {
                    let next = match first.take() {
                        Some((svc, req)) => Some((svc, req, true)),
                        None => {
                            let copy = template.as_ref().and_then(|t| cloner.clone_request(t));
                            let req = copy.or_else(|| {
                                last.store(true, Ordering::Relaxed);
                                template.take()
                            });
                            req.map(|req| (spare.clone(), req, false))
                        }
                    };
                    async move {
                        // `None` cannot happen: once the last request was taken the classifier
                        // ends the call, so no attempt follows.
                        let Some((mut svc, req, ready)) = next else {
                            return std::future::pending().await;
                        };
                        if !ready {
                            std::future::poll_fn(|cx| svc.poll_ready(cx)).await?;
                        }
                        svc.call(req).await
                    }
                })
                .classify_with(classifier)
                .run()
                .await
        })
    }
}

/// The layer's classifier, ending the call after an attempt that used up the template.
struct LastAttempt<C> {
    inner: C,
    last: Arc<AtomicBool>,
}

impl<T, E, C: CallClassifier<T, E>> CallClassifier<T, E> for LastAttempt<C> {
    type Resolved<'a>
        = LastAttempt<C::Resolved<'a>>
    where
        Self: 'a;
    fn resolve<'a>(
        &'a self,
        policy: &'a PolicyClassifier,
        reports: Reports<'a>,
    ) -> Self::Resolved<'a> {
        LastAttempt {
            inner: self.inner.resolve(policy, reports),
            last: self.last.clone(),
        }
    }
}

impl<T, E, C: Classifier<T, E>> Classifier<T, E> for LastAttempt<C> {
    fn classify(&self, result: &Result<T, E>) -> Outcome {
        self.inner.classify(result)
    }

    fn stop_after(&self) -> Option<Stop> {
        if self.last.load(Ordering::Relaxed) {
            Some(Stop::NotCloneable)
        } else {
            self.inner.stop_after()
        }
    }
}
