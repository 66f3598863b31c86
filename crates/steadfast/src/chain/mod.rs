//! Custom strategies in a key's plan: the governance policy chain.
//!
//! A [`Policy`] has a request-side hook, run before the call (it may annotate the call's
//! [`Context`] or reject the call, and then the operation never runs), and a response-side
//! hook, run after it (it sees the [`Response`] and may change it: reject a success, or turn a
//! failure into a success). Request hooks run in the chain's order and response hooks in
//! reverse, so each policy wraps the ones after it. Policies are registered by name in a
//! [`Registry`] and named in a key's table ([`Policies::with_chain`]); an unknown name is an
//! error when the policies are built, not when a call is made.
//!
//! [`Policies::with_chain`]: crate::policy::Policies::with_chain
//!
//! # Example
//! ```
//! use steadfast::chain::{Context, Policy, Registry, Rejection};
//! use steadfast::{policy::Policies, Executor, Retry};
//!
//! #[derive(Debug)]
//! struct TenantQuota;
//! impl Policy for TenantQuota {
//!     fn on_request(&self, cx: &mut Context<'_>) -> Result<(), Rejection> {
//!         match cx.properties().get::<&str>() {
//!             Some(&"over-quota") => Err(Rejection::new("tenant over quota")),
//!             _ => Ok(()),
//!         }
//!     }
//! }
//!
//! let registry = Registry::new().register("tenant_quota", TenantQuota);
//! let policies = Policies::default()
//!     .with_chain("payments.*", Retry::default(), &["tenant_quota"], &registry)?;
//! let executor = Executor::new(policies);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use crate::ErrorKind;
use std::any::{Any, TypeId};
use std::collections::HashMap;

use crate::classify::{ClassifyOptions, PolicyClassifier, ReadResult};
use crate::config::ConfigError;
use std::fmt;
use std::sync::Arc;

use crate::key::Key;

#[cfg(feature = "serde")]
mod file;
pub(crate) mod rejection;
pub use rejection::Rejection;

/// A custom strategy: hooks around a call. Both have defaults that do nothing.
pub trait Policy: fmt::Debug + Send + Sync + 'static {
    /// Before the call, in chain order. `Err` rejects the call: the operation never runs,
    /// and the response hooks of the policies before this one see the rejection.
    fn on_request(&self, cx: &mut Context<'_>) -> Result<(), Rejection> {
        let _ = cx;
        Ok(())
    }

    /// The request hook of a policy that must await (a quota lookup in Redis, an
    /// authorisation call): return the future, and the chain awaits it in place of
    /// [`on_request`](Self::on_request). The default, `None`, runs `on_request`, so a
    /// synchronous policy costs no allocation.
    ///
    /// ```
    /// use std::time::Duration;
    /// use steadfast::chain::{Context, Policy, RequestFuture, Rejection};
    ///
    /// #[derive(Debug)]
    /// struct RemoteQuota;
    /// impl Policy for RemoteQuota {
    ///     fn on_request_async<'a>(&'a self, cx: &'a mut Context<'_>) -> Option<RequestFuture<'a>> {
    ///         Some(Box::pin(async move {
    ///             tokio::time::sleep(Duration::from_millis(5)).await; // the lookup
    ///             match cx.properties().get::<u32>() {
    ///                 Some(&tenant) if tenant > 100 => {
    ///                     Err(Rejection::with_code("quota_exceeded", format!("tenant {tenant} is over quota")))
    ///                 }
    ///                 _ => Ok(()),
    ///             }
    ///         }))
    ///     }
    /// }
    /// ```
    fn on_request_async<'a>(&'a self, cx: &'a mut Context<'_>) -> Option<RequestFuture<'a>> {
        let _ = cx;
        None
    }

    /// After the call (or a rejection), in reverse chain order.
    fn on_response(&self, cx: &mut Context<'_>, response: &mut Response) {
        let _ = (cx, response);
    }

    /// The response hook of a policy that must await (an audit record written to a store, a
    /// quota's use reported): return the future, and the chain awaits it in place of
    /// [`on_response`](Self::on_response). It sees how the call ended ([`Settled`]) and may
    /// turn it into a rejection (`Some`); recovering a failure with a value is the
    /// synchronous hook's. The default, `None`, runs `on_response`.
    ///
    /// ```
    /// use std::time::Duration;
    /// use steadfast::chain::{Context, Policy, ResponseFuture, Settled};
    ///
    /// #[derive(Debug)]
    /// struct Audit;
    /// impl Policy for Audit {
    ///     fn on_response_async<'a>(
    ///         &'a self,
    ///         cx: &'a mut Context<'_>,
    ///         settled: Settled,
    ///     ) -> Option<ResponseFuture<'a>> {
    ///         Some(Box::pin(async move {
    ///             tokio::time::sleep(Duration::from_millis(2)).await; // the write
    ///             let _ = (cx.key(), settled.is_ok(), cx.attempts());
    ///             None
    ///         }))
    ///     }
    /// }
    /// ```
    fn on_response_async<'a>(
        &'a self,
        cx: &'a mut Context<'_>,
        settled: Settled,
    ) -> Option<ResponseFuture<'a>> {
        let _ = (cx, settled);
        None
    }
}

/// What an awaiting request hook returns ([`Policy::on_request_async`]).
pub type RequestFuture<'a> =
    std::pin::Pin<Box<dyn std::future::Future<Output = Result<(), Rejection>> + Send + 'a>>;

/// What an awaiting response hook returns ([`Policy::on_response_async`]): a rejection the
/// call ends with instead, or `None` to leave it as it is.
pub type ResponseFuture<'a> =
    std::pin::Pin<Box<dyn std::future::Future<Output = Option<Rejection>> + Send + 'a>>;

/// How a call ended, as an awaiting response hook sees it.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct Settled {
    ok: bool,
    rejection: Option<Rejection>,
}

impl Settled {
    /// Whether the call (as changed so far) succeeded.
    pub fn is_ok(&self) -> bool {
        self.ok
    }

    /// The rejection, when a policy refused the call.
    pub fn rejection(&self) -> Option<&Rejection> {
        self.rejection.as_ref()
    }
}

/// Typed values a call carries from hook to hook (and from the call site, through
/// `Executor::run_in`): one value per type.
///
/// # Example
/// ```
/// use steadfast::chain::Properties;
///
/// #[derive(Debug, PartialEq)]
/// struct TenantId(u32);
///
/// let mut p = Properties::default();
/// p.insert(TenantId(7));
/// assert_eq!(p.get::<TenantId>(), Some(&TenantId(7)));
/// ```
#[derive(Default)]
pub struct Properties {
    values: Vec<(TypeId, Box<dyn Any + Send + Sync>)>,
}

impl fmt::Debug for Properties {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Properties")
            .field("len", &self.values.len())
            .finish()
    }
}

impl Properties {
    /// Stores `value`, replacing any value of the same type.
    pub fn insert<V: Any + Send + Sync>(&mut self, value: V) {
        let id = TypeId::of::<V>();
        self.values.retain(|(t, _)| *t != id);
        self.values.push((id, Box::new(value)));
    }

    /// The value of type `V`, if any.
    pub fn get<V: Any>(&self) -> Option<&V> {
        let id = TypeId::of::<V>();
        self.values
            .iter()
            .find(|(t, _)| *t == id)
            .and_then(|(_, v)| v.downcast_ref())
    }

    /// The value of type `V`, to change it.
    pub fn get_mut<V: Any>(&mut self) -> Option<&mut V> {
        let id = TypeId::of::<V>();
        self.values
            .iter_mut()
            .find(|(t, _)| *t == id)
            .and_then(|(_, v)| v.downcast_mut())
    }
}

/// What the hooks of one call see: its key, its deadline, the attempts it made and its
/// properties.
#[derive(Debug)]
pub struct Context<'a> {
    key: &'a Key,
    deadline: Option<tokio::time::Instant>,
    attempts: u32,
    properties: Properties,
}

impl<'a> Context<'a> {
    pub(crate) fn new(
        key: &'a Key,
        deadline: Option<tokio::time::Instant>,
        properties: Properties,
    ) -> Self {
        Context {
            key,
            deadline,
            attempts: 0,
            properties,
        }
    }

    /// The call site's key.
    pub fn key(&self) -> &Key {
        self.key
    }

    /// When the call must be over, if its policy has a total timeout.
    pub fn deadline(&self) -> Option<tokio::time::Instant> {
        self.deadline
    }

    /// Attempts made: 0 in request hooks, the call's count in response hooks.
    pub fn attempts(&self) -> u32 {
        self.attempts
    }

    /// The call's properties.
    pub fn properties(&self) -> &Properties {
        &self.properties
    }

    /// The call's properties, to add or change one.
    pub fn properties_mut(&mut self) -> &mut Properties {
        &mut self.properties
    }
}

/// The call's result as response hooks see it, and what they may change.
///
/// The value and the error are type-erased: [`error`](Self::error) and
/// [`recover`](Self::recover) name their type, and a mismatch is ignored.
pub struct Response {
    ok: bool,
    rejection: Option<Rejection>,
    error: Option<Box<dyn Any>>,
    value: Option<Box<dyn Any>>,
}

impl fmt::Debug for Response {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Response")
            .field("ok", &self.ok)
            .field("rejection", &self.rejection)
            .finish_non_exhaustive()
    }
}

impl Response {
    pub(crate) fn new(
        ok: bool,
        rejection: Option<Rejection>,
        error: Option<Box<dyn Any>>,
        value: Option<Box<dyn Any>>,
    ) -> Self {
        Response {
            ok,
            rejection,
            error,
            value,
        }
    }

    /// Whether the call (as changed so far) succeeded.
    pub fn is_ok(&self) -> bool {
        self.ok
    }

    /// The rejection, when a policy refused the call.
    pub fn rejection(&self) -> Option<&Rejection> {
        self.rejection.as_ref()
    }

    /// The operation's error, if the call failed with one of type `E`.
    pub fn error<E: Any>(&self) -> Option<&E> {
        self.error.as_ref().and_then(|e| e.downcast_ref())
    }

    /// Turns the call into a success with `value` (of the call's value type).
    pub fn recover<T: Any>(&mut self, value: T) {
        self.ok = true;
        self.rejection = None;
        self.value = Some(Box::new(value));
    }

    /// Turns the call into a failure: it returns this rejection.
    pub fn reject(&mut self, rejection: Rejection) {
        self.ok = false;
        self.value = None;
        self.rejection = Some(rejection);
    }
}

/// Custom policies by name, for policy tables to refer to.
///
/// # Example
/// ```
/// use steadfast::chain::{Policy, Registry};
///
/// #[derive(Debug)]
/// struct Audit;
/// impl Policy for Audit {}
///
/// let registry = Registry::new().register("audit", Audit);
/// assert!(registry.get("audit").is_some());
/// ```
#[derive(Debug, Clone, Default)]
pub struct Registry {
    policies: HashMap<String, Arc<dyn Policy>>,
    classifiers: HashMap<String, PolicyClassifier>,
    /// The types registered for the built-in classifiers to read.
    readers: PolicyClassifier,
}

impl Registry {
    /// An empty registry.
    pub fn new() -> Self {
        Registry::default()
    }

    /// Registers `policy` as `name`, replacing any policy of that name.
    pub fn register(mut self, name: impl Into<String>, policy: impl Policy) -> Self {
        self.policies.insert(name.into(), Arc::new(policy));
        self
    }

    /// Registers a policy the caller keeps a handle on (to read its state, say), as `name`.
    ///
    /// ```
    /// use std::sync::Arc;
    /// use steadfast::chain::{Policy, Registry};
    ///
    /// #[derive(Debug, Default)]
    /// struct Audit;
    /// impl Policy for Audit {}
    ///
    /// let audit = Arc::new(Audit);
    /// let registry = Registry::new().register_shared("audit", audit.clone());
    /// assert!(registry.get("audit").is_some());
    /// ```
    pub fn register_shared(mut self, name: impl Into<String>, policy: Arc<dyn Policy>) -> Self {
        self.policies.insert(name.into(), policy);
        self
    }

    /// The policy registered as `name`.
    pub fn get(&self, name: &str) -> Option<&Arc<dyn Policy>> {
        self.policies.get(name)
    }

    /// Registers a classifier of your own that policies name with `classify = "name"`.
    ///
    /// ```
    /// use std::any::Any;
    /// use steadfast::chain::Registry;
    /// use steadfast::classify::{ClassifyOptions, Outcome, ReadResult};
    ///
    /// #[derive(Debug)]
    /// struct RetryStrings;
    /// impl ReadResult for RetryStrings {
    ///     fn read(&self, r: Result<&dyn Any, &dyn Any>) -> Option<Outcome> {
    ///         match r {
    ///             Ok(_) => Some(Outcome::Success),
    ///             Err(e) => e.downcast_ref::<&str>().map(|_| Outcome::RETRYABLE),
    ///         }
    ///     }
    /// }
    /// let registry = Registry::new().classifier("strings", RetryStrings);
    /// let c = registry.classify(&ClassifyOptions::new("strings"))?;
    /// assert_eq!(c.read(Err(&"busy")), Some(Outcome::RETRYABLE));
    /// assert!(registry.classify(&ClassifyOptions::new("strngs")).is_err());
    /// # Ok::<(), steadfast::ConfigError>(())
    /// ```
    pub fn classifier(mut self, name: impl Into<String>, classifier: impl ReadResult) -> Self {
        let name = name.into();
        let c = PolicyClassifier::custom(name.clone(), classifier);
        self.classifiers.insert(name, c);
        self
    }

    /// Lets the built-in classifiers (`http`, `grpc`, `io`) read errors of type `E` by `E`'s
    /// own [`Classify`](crate::Classify).
    pub fn error<E: crate::Classify + 'static>(mut self) -> Self {
        self.readers = self.readers.error::<E>();
        self
    }

    /// Lets the built-in classifiers read `http::Response<B>` for a body type they do not
    /// know (feature `http-types`).
    #[cfg(feature = "http-types")]
    pub fn http_body<B: 'static>(mut self) -> Self {
        self.readers = self.readers.http_body::<B>();
        self
    }

    /// Whether `name` is a classifier a policy may name: built in or registered here.
    pub fn knows_classifier(&self, name: &str) -> bool {
        crate::classify::BUILT_IN.contains(&name) || self.classifiers.contains_key(name)
    }

    /// The classifier `options` name: a registered one, else a built-in reading the types
    /// registered here.
    pub fn classify(&self, options: &ClassifyOptions) -> Result<PolicyClassifier, ConfigError> {
        if let Some(c) = self.classifiers.get(&options.kind) {
            if !options.is_plain() {
                let mut p = crate::config::Problems::new("classify");
                p.push("kind", format!("{:?} is a registered classifier: its options are its own, not `statuses`, `codes` or `timeouts`", options.kind));
                p.finish()?;
            }
            return Ok(c.clone());
        }
        Ok(PolicyClassifier::built(options)?.with_readers_of(&self.readers))
    }
}

/// A chain compiled into a plan: names and policies, in order.
pub(crate) type Chain = Box<[(Box<str>, Arc<dyn Policy>)]>;

/// Runs `call` inside `chain`: request hooks in order (a rejection stops there, and only the
/// policies before it see the response), then the call, then response hooks in reverse.
pub(crate) async fn run<T, E, Fut>(
    chain: &[(Box<str>, Arc<dyn Policy>)],
    key: &Key,
    deadline: Option<tokio::time::Instant>,
    properties: Properties,
    attempts: &std::sync::atomic::AtomicU32,
    call: Fut,
) -> Result<T, crate::Error<E>>
where
    T: 'static,
    E: 'static,
    Fut: std::future::Future<Output = Result<T, crate::Error<E>>>,
{
    let mut cx = Context::new(key, deadline, properties);
    let (passed, rejection) = request(chain, &mut cx).await;
    let result = match rejection {
        Some(r) => Err(r),
        None => Ok(call.await),
    };
    cx.attempts = attempts.load(std::sync::atomic::Ordering::Relaxed);
    respond(&chain[..passed], &mut cx, result).await
}

/// The blocking mirror of [`run`]: the same hooks, in the same order, around a blocking call
/// (an awaiting request hook is driven to its end on this thread, so it must not need a
/// runtime the thread lacks). Response hooks see the attempts of a failed call; of a
/// successful one, 0 (the blocking engine does not report its attempts yet).
pub(crate) fn run_blocking<T, E>(
    chain: &[(Box<str>, Arc<dyn Policy>)],
    key: &Key,
    deadline: Option<tokio::time::Instant>,
    properties: Properties,
    call: impl FnOnce() -> Result<T, crate::Error<E>>,
) -> Result<T, crate::Error<E>>
where
    T: 'static,
    E: 'static,
{
    let mut cx = Context::new(key, deadline, properties);
    let (passed, rejection) = block_on(request(chain, &mut cx));
    let result = match rejection {
        Some(r) => Err(r),
        None => Ok(call()),
    };
    if let Ok(Err(e)) = &result {
        cx.attempts = e.attempts();
    }
    block_on(respond(&chain[..passed], &mut cx, result))
}

/// Request hooks in order, each awaited if it awaits: how many passed, and the rejection that
/// stopped them, if any.
async fn request(
    chain: &[(Box<str>, Arc<dyn Policy>)],
    cx: &mut Context<'_>,
) -> (usize, Option<Rejection>) {
    for (passed, (_, policy)) in chain.iter().enumerate() {
        let awaited = match policy.on_request_async(cx) {
            Some(fut) => Some(fut.await),
            None => None,
        };
        let verdict = match awaited {
            Some(verdict) => verdict,
            None => policy.on_request(cx),
        };
        if let Err(r) = verdict {
            return (passed, Some(r));
        }
    }
    (chain.len(), None)
}

/// Drives `fut` to its end on this thread (the blocking chain's request hooks; a synchronous
/// chain is ready at the first poll).
pub(crate) fn block_on<F: std::future::Future>(fut: F) -> F::Output {
    struct Unpark(std::thread::Thread);
    impl std::task::Wake for Unpark {
        fn wake(self: Arc<Self>) {
            self.0.unpark();
        }
    }
    let waker = std::task::Waker::from(Arc::new(Unpark(std::thread::current())));
    let mut cx = std::task::Context::from_waker(&waker);
    let mut fut = std::pin::pin!(fut);
    loop {
        if let std::task::Poll::Ready(out) = fut.as_mut().poll(&mut cx) {
            return out;
        }
        std::thread::park();
    }
}

/// The call's result between response hooks: `Err` is a rejection (a request hook's, or
/// one a response hook made).
type Held<T, E> = Result<Result<T, crate::Error<E>>, Rejection>;

/// Response hooks in reverse over the call's result, then the result they leave. An awaiting
/// hook sees the typed result's [`Settled`]; a synchronous one its type-erased [`Response`]
/// (made for that hook, so nothing type-erased is held across an await).
async fn respond<T: 'static, E: 'static>(
    passed: &[(Box<str>, Arc<dyn Policy>)],
    cx: &mut Context<'_>,
    result: Held<T, E>,
) -> Result<T, crate::Error<E>> {
    let mut held = result;
    for (_, policy) in passed.iter().rev() {
        let settled = Settled {
            ok: matches!(held, Ok(Ok(_))),
            rejection: held.as_ref().err().cloned(),
        };
        let awaited = match policy.on_response_async(cx, settled) {
            Some(fut) => Some(fut.await),
            None => None,
        };
        match awaited {
            Some(Some(r)) => held = Err(r),
            Some(None) => {}
            None => held = respond_with(&**policy, cx, held),
        }
    }
    held.map_err(|r| crate::Error::new(crate::ErrorKind::Rejected(r)))?
}

/// One synchronous response hook over the call's result.
fn respond_with<T: 'static, E: 'static>(
    policy: &dyn Policy,
    cx: &mut Context<'_>,
    result: Held<T, E>,
) -> Held<T, E> {
    use crate::Error;
    // What the hook sees, and what is kept aside to rebuild the result.
    let mut kept: Option<Error<E>> = None;
    let mut operation: Option<(u32, crate::Stop)> = None;
    let mut response = match result {
        Err(r) => Response::new(false, Some(r), None, None),
        Ok(Ok(value)) => Response::new(true, None, None, Some(Box::new(value))),
        Ok(Err(e)) => match e.into_kind() {
            ErrorKind::Operation {
                source,
                attempts,
                stop,
            } => {
                operation = Some((attempts, stop));
                Response::new(false, None, Some(Box::new(source)), None)
            }
            other => {
                kept = Some(Error::new(other));
                Response::new(false, None, None, None)
            }
        },
    };
    policy.on_response(cx, &mut response);
    let Response {
        rejection,
        error,
        value,
        ..
    } = response;
    if let Some(value) = value {
        return match value.downcast::<T>() {
            Ok(v) => Ok(Ok(*v)),
            Err(_) => Err(Rejection::new(
                "a response hook recovered with a value of another type than the call's",
            )),
        };
    }
    if let Some(r) = rejection {
        return Err(r);
    }
    if let (Some(error), Some((attempts, stop))) = (error, operation)
        && let Ok(source) = error.downcast::<E>()
    {
        return Ok(Err(Error::new(ErrorKind::Operation {
            source: *source,
            attempts,
            stop,
        })));
    }
    match kept {
        Some(e) => Ok(Err(e)),
        None => Err(Rejection::new(
            "a response hook turned a success into a failure",
        )),
    }
}

/// Counts a call's attempts for its [`Context`].
#[derive(Debug)]
pub(crate) struct CountAttempts<'a>(pub(crate) &'a std::sync::atomic::AtomicU32);

impl crate::observe::Probe for CountAttempts<'_> {
    type Attempt<Fut: std::future::Future> = Fut;

    fn event(&mut self, event: &crate::observe::Event) {
        if let crate::observe::Event::AttemptStarted { attempt, .. } = *event {
            self.0.store(attempt, std::sync::atomic::Ordering::Relaxed);
        }
    }

    fn attempt<Fut: std::future::Future>(&mut self, _: u32, fut: Fut) -> Fut {
        fut
    }
}
