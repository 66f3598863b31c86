//! One call by key: [`Executor::call`] and [`Handle::call`] start a [`KeyCall`], every option
//! composes with every other, and [`run`](KeyCall::run) resolves the key once for all of them.

use std::future::{Future, Pending};
use std::pin::pin;
use std::sync::atomic::{AtomicU32, Ordering};
use std::task::Poll;

use std::sync::Arc;

use super::attempt::{AttemptCell, AttemptSource, CallOp, OnRetryAsync, Tracker};
use super::bind::Bound;
use super::cache::Entry;
use super::{Executor, Handle, Inner};
use crate::chain::{self, Properties};
use crate::classify::{Classifier, FromPolicy, Outcome, PolicyClassifier};
use crate::error::Error;
use crate::key::Key;
use crate::observe::{Both, PolicyEvent, Probe, Timeline};
use crate::retry::{
    ExhaustedHook, NoHook, OnExhausted, OnExhaustedFn, OnRetry, OnRetryFn, RetryHook,
};

/// Where a call's plan comes from: a key the executor resolves, or a handle's pinned entry.
#[derive(Debug, Clone, Copy)]
enum At<'e> {
    Key(&'e Executor, &'e str),
    Handle(&'e Handle),
}

impl At<'_> {
    fn inner(&self) -> &Inner {
        match self {
            At::Key(e, _) => &e.inner,
            At::Handle(h) => &h.inner,
        }
    }

    /// The key and its plan, resolved once for the whole call.
    fn resolve(&self) -> Result<(Arc<Entry>, Arc<Bound>), crate::key::KeyError> {
        match self {
            At::Key(e, key) => {
                let entry = e.inner.entry(key)?;
                let bound = e.inner.current(&entry);
                Ok((entry, bound))
            }
            At::Handle(h) => Ok((
                h.entry.clone(),
                h.fresh().unwrap_or_else(|| h.bound.clone()),
            )),
        }
    }
}

/// Which classifier a call applies: its key's policy's ([`FromPlan`], the default) or one the
/// call site gives ([`Given`], set with [`KeyCall::classify`]).
pub trait CallClassifier<T, E> {
    /// The classifier as one call applies it.
    type Resolved<'a>: Classifier<T, E>
    where
        Self: 'a;
    /// The classifier for a call under `policy`, reporting unreadable errors to `report`.
    fn resolve<'a>(
        &'a self,
        policy: &'a PolicyClassifier,
        report: Option<&'a (dyn Fn(&'static str) + Sync)>,
    ) -> Self::Resolved<'a>;
}

/// The key's policy decides ([`Plan::classify`](crate::policy::Plan::classify), a file's
/// `classify = …`).
#[derive(Debug, Clone, Copy, Default)]
pub struct FromPlan;

impl<T: 'static, E: 'static> CallClassifier<T, E> for FromPlan {
    type Resolved<'a> = FromPolicy<'a>;
    fn resolve<'a>(
        &'a self,
        policy: &'a PolicyClassifier,
        report: Option<&'a (dyn Fn(&'static str) + Sync)>,
    ) -> FromPolicy<'a> {
        FromPolicy { policy, report }
    }
}

/// A classifier the call site gives, overriding the policy's.
#[derive(Debug, Clone, Copy)]
pub struct Given<C>(pub C);

impl<T, E, C: Classifier<T, E>> CallClassifier<T, E> for Given<C> {
    type Resolved<'a>
        = ByRef<'a, C>
    where
        C: 'a;
    fn resolve<'a>(
        &'a self,
        _: &'a PolicyClassifier,
        _: Option<&'a (dyn Fn(&'static str) + Sync)>,
    ) -> ByRef<'a, C> {
        ByRef(&self.0)
    }
}

/// A classifier by reference.
#[derive(Debug)]
pub struct ByRef<'a, C>(&'a C);

impl<T, E, C: Classifier<T, E>> Classifier<T, E> for ByRef<'_, C> {
    #[inline]
    fn classify(&self, result: &Result<T, E>) -> Outcome {
        self.0.classify(result)
    }

    #[inline]
    fn stop_after(&self) -> Option<crate::Stop> {
        self.0.stop_after()
    }
}

/// What replaces a failed call's error: nothing ([`NoFallback`]) or a
/// [`Fallback`](crate::fallback::Fallback).
pub trait Recover<T, E> {
    /// Whether anything may be replaced.
    const ACTIVE: bool;
    /// The result, and whether the fallback replaced it.
    fn recover(self, result: Result<T, Error<E>>) -> (Result<T, Error<E>>, bool);
}

/// No fallback.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoFallback;

impl<T, E> Recover<T, E> for NoFallback {
    const ACTIVE: bool = false;
    #[inline]
    fn recover(self, result: Result<T, Error<E>>) -> (Result<T, Error<E>>, bool) {
        (result, false)
    }
}

impl<T, E, W: crate::fallback::When<E>, A: crate::fallback::Action<T, E>> Recover<T, E>
    for crate::fallback::Fallback<W, A>
{
    const ACTIVE: bool = true;
    fn recover(self, result: Result<T, Error<E>>) -> (Result<T, Error<E>>, bool) {
        self.apply(result)
    }
}

/// Whether a call goes through the durable retry gate: not ([`NoGate`]) or for a target
/// ([`Gated`], set with [`KeyCall::gate`]; the error then needs `Display` for the gate's record).
pub trait GateStep<E> {
    /// The target, if the call is gated.
    fn target(&self) -> Option<&crate::gate::Target>;
    /// The text the gate records for a failed call.
    fn failure_text(&self, error: &Error<E>) -> String;
}

/// Not gated.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoGate;

impl<E> GateStep<E> for NoGate {
    fn target(&self) -> Option<&crate::gate::Target> {
        None
    }
    fn failure_text(&self, error: &Error<E>) -> String {
        let _ = error;
        String::new()
    }
}

/// Gated for a target.
#[derive(Debug, Clone, Copy)]
pub struct Gated<'t>(&'t crate::gate::Target);

impl<E: std::fmt::Display> GateStep<E> for Gated<'_> {
    fn target(&self) -> Option<&crate::gate::Target> {
        Some(self.0)
    }
    fn failure_text(&self, e: &Error<E>) -> String {
        match e.operation_error() {
            Some(source) => format!("{source} ({e})"),
            None => e.to_string(),
        }
    }
}

/// Not an idempotent call.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoIdempotency;

/// An idempotent call for a request (set with [`KeyCall::idempotent`]).
#[cfg(feature = "serde")]
#[derive(Debug)]
pub struct WithIdempotency(Result<serde_json::Value, String>);

/// One call by key with everything it may run with; made by [`Executor::call`] or
/// [`Handle::call`], finished by [`run`](Self::run).
///
/// Every option composes with every other; the key is resolved once, when the call runs, and
/// that one plan serves the gate, the idempotency options, the chain, the classifier and the
/// attempts (a policy swap meanwhile reaches the next call, never half of this one). Around the
/// attempts, from the outside in: idempotency, fallback, gate, the plan's chain, admission
/// (rate limiter, bulkhead), then each attempt (breaker, budget, hedge).
///
/// # Example
/// ```
/// use steadfast::fallback::{Fallback, On};
/// use steadfast::observe::Timeline;
/// use steadfast::{classify::Outcome, Executor, Retry, policy::Policies};
///
/// # #[tokio::main(flavor = "current_thread", start_paused = true)]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let executor = Executor::new(Policies::new(Retry::immediate().max_attempts(3).build()?));
/// let mut timeline = Timeline::default();
/// let mut retries = 0;
/// let price = executor
///     .call("catalog.Price", || async { Err::<u32, _>("busy") })
///     .classify(|e: &&str| if *e == "busy" { Outcome::RETRYABLE } else { Outcome::NonRetryable })
///     .on_retry(|_| retries += 1)
///     .fallback(Fallback::on(On::EXHAUSTED).value(0))
///     .timeline(&mut timeline)
///     .run()
///     .await
///     .unwrap();
/// assert_eq!((price, retries, timeline.attempts().len()), (0, 2, 3));
/// # Ok(()) }
/// ```
#[must_use = "a call does nothing until `.run()` is awaited"]
pub struct KeyCall<
    'e,
    F,
    C = FromPlan,
    R = NoHook,
    X = NoHook,
    W = NoFallback,
    S = Pending<()>,
    G = NoGate,
    I = NoIdempotency,
> {
    at: At<'e>,
    op: F,
    classifier: C,
    on_retry: R,
    on_exhausted: X,
    fallback: W,
    until: Option<S>,
    gate: G,
    idempotency: I,
    properties: Properties,
    timeline: Option<&'e mut Timeline>,
    /// The attempt context, when the operation or a hook reads it.
    attempt: Option<AttemptCell>,
}

impl<F, C, R, X, W, S, G, I> std::fmt::Debug for KeyCall<'_, F, C, R, X, W, S, G, I> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyCall")
            .field("at", &self.at)
            .finish_non_exhaustive()
    }
}

/// `$value` where the two names are the same field, else `$keep`.
macro_rules! pick {
    (classifier classifier, $value:expr, $keep:expr) => {
        $value
    };
    (on_retry on_retry, $value:expr, $keep:expr) => {
        $value
    };
    (on_exhausted on_exhausted, $value:expr, $keep:expr) => {
        $value
    };
    (fallback fallback, $value:expr, $keep:expr) => {
        $value
    };
    (until until, $value:expr, $keep:expr) => {
        $value
    };
    (gate gate, $value:expr, $keep:expr) => {
        $value
    };
    (idempotency idempotency, $value:expr, $keep:expr) => {
        $value
    };
    ($a:ident $b:ident, $value:expr, $keep:expr) => {
        $keep
    };
}

/// The same call with one part replaced (its type may change).
macro_rules! with {
    ($self:ident, $field:ident: $value:expr) => {{
        let s = $self;
        KeyCall {
            at: s.at,
            op: s.op,
            classifier: pick!(classifier $field, $value, s.classifier),
            on_retry: pick!(on_retry $field, $value, s.on_retry),
            on_exhausted: pick!(on_exhausted $field, $value, s.on_exhausted),
            fallback: pick!(fallback $field, $value, s.fallback),
            until: pick!(until $field, $value, s.until),
            gate: pick!(gate $field, $value, s.gate),
            idempotency: pick!(idempotency $field, $value, s.idempotency),
            properties: s.properties,
            timeline: s.timeline,
            attempt: s.attempt,
        }
    }};
}

impl<'e, F: CallOp> KeyCall<'e, F> {
    pub(super) fn by_key(executor: &'e Executor, key: &'e str, op: F) -> Self {
        Self::new(At::Key(executor, key), op)
    }

    pub(super) fn by_handle(handle: &'e Handle, op: F) -> Self {
        Self::new(At::Handle(handle), op)
    }

    fn new(at: At<'e>, op: F) -> Self {
        KeyCall {
            attempt: F::READS_ATTEMPT.then(AttemptCell::default),
            at,
            op,
            classifier: FromPlan,
            on_retry: NoHook,
            on_exhausted: NoHook,
            fallback: NoFallback,
            until: None,
            gate: NoGate,
            idempotency: NoIdempotency,
            properties: Properties::default(),
            timeline: None,
        }
    }
}

impl<'e, F, Fut, T, E, C, R, X, W, S, G, I> KeyCall<'e, F, C, R, X, W, S, G, I>
where
    F: CallOp<Output = Fut>,
    Fut: Future<Output = Result<T, E>>,
{
    /// Classifies each attempt with `classifier` instead of the key's policy's (see
    /// [`classify`](crate::classify)).
    pub fn classify<C2: Classifier<T, E>>(
        self,
        classifier: C2,
    ) -> KeyCall<'e, F, Given<C2>, R, X, W, S, G, I> {
        with!(self, classifier: Given(classifier))
    }

    /// Uses `classifier` as it is (a layer's wrapper around the policy's).
    #[cfg(feature = "tower")]
    pub(crate) fn classify_with<C2>(self, classifier: C2) -> KeyCall<'e, F, C2, R, X, W, S, G, I> {
        with!(self, classifier: classifier)
    }

    /// Hands `properties` to the key's custom policies (see [`chain`]).
    pub fn properties(mut self, properties: Properties) -> Self {
        self.properties = properties;
        self
    }

    /// Replaces the failures `fallback` handles (see [`fallback`](crate::fallback)); observers
    /// see [`Event::FallbackUsed`](crate::observe::Event::FallbackUsed).
    pub fn fallback<W2>(self, fallback: W2) -> KeyCall<'e, F, C, R, X, W2, S, G, I> {
        with!(self, fallback: fallback)
    }

    /// Runs the call for `target` under the plan's durable retry gate
    /// ([`Plan::gate`](crate::policy::Plan::gate), a file's `gate = { … }`): the gate must
    /// allow an attempt at `target` first (else [`Error::GateClosed`], the operation not run),
    /// and the call's outcome is recorded there (a success clears the target, a failure counts
    /// with its text). The whole call, its in-process retries included, is one attempt of the
    /// gate. Without a gate in the plan, the target is ignored; with one and an executor
    /// without a gate backend, the call fails closed ([`Reason::Unavailable`](crate::gate::Reason)).
    pub fn gate(
        self,
        target: &'e crate::gate::Target,
    ) -> KeyCall<'e, F, C, R, X, W, S, Gated<'e>, I>
    where
        E: std::fmt::Display,
    {
        with!(self, gate: Gated(target))
    }

    /// Reports the call's attempts to `timeline` too.
    pub fn timeline(mut self, timeline: &'e mut Timeline) -> Self {
        self.timeline = Some(timeline);
        self
    }

    /// Runs `hook` before each retry (see [`OnRetry`]).
    pub fn on_retry<H: FnMut(&OnRetry<'_, T, E>)>(
        self,
        hook: H,
    ) -> KeyCall<'e, F, C, OnRetryFn<H>, X, W, S, G, I> {
        with!(self, on_retry: OnRetryFn(hook))
    }

    /// Runs `hook` once when the policy's allowance runs out (see [`OnExhausted`]).
    pub fn on_exhausted<H: FnMut(&mut OnExhausted<'_, T, E>)>(
        self,
        hook: H,
    ) -> KeyCall<'e, F, C, R, OnExhaustedFn<H>, W, S, G, I> {
        with!(self, on_exhausted: OnExhaustedFn(hook))
    }

    /// Runs the async `hook` before each retry: the engine awaits its future before the wait
    /// for the next attempt (a lookup, a refresh of credentials). What it inserts into the
    /// [`Extensions`](super::Extensions) it is given, the next attempt reads from
    /// [`Attempt::extensions`](super::Attempt::extensions). It takes the place of
    /// [`on_retry`](Self::on_retry).
    ///
    /// ```
    /// use steadfast::{Attempt, Executor, Retry, policy::Policies};
    ///
    /// #[derive(Clone, Debug, PartialEq)]
    /// struct Replica(&'static str);
    ///
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() {
    /// let executor = Executor::new(Policies::new(Retry::immediate().max_attempts(2).build().unwrap()));
    /// let answer = executor
    ///     .call("search.Query", |attempt: &Attempt| {
    ///         let replica = attempt.extensions().get::<Replica>();
    ///         async move {
    ///             match replica {
    ///                 Some(Replica(name)) => Ok(name),
    ///                 None => Err("primary busy"),
    ///             }
    ///         }
    ///     })
    ///     .on_retry_async(|_, extensions| async move {
    ///         tokio::task::yield_now().await; // asking a directory which replica to try
    ///         extensions.insert(Replica("eu-2"));
    ///     })
    ///     .run()
    ///     .await;
    /// assert_eq!(answer.unwrap(), "eu-2");
    /// # }
    /// ```
    pub fn on_retry_async<H, HFut>(
        mut self,
        hook: H,
    ) -> KeyCall<'e, F, C, OnRetryAsync<H>, X, W, S, G, I>
    where
        H: FnMut(super::RetryNote, super::Extensions) -> HFut,
        HFut: Future<Output = ()> + Send + 'static,
    {
        let cell = self
            .attempt
            .get_or_insert_with(AttemptCell::default)
            .clone();
        with!(self, on_retry: OnRetryAsync::new(hook, cell))
    }

    /// Stops the call when `signal` completes: [`Error::Cancelled`] with the attempts started.
    pub fn until<S2: Future<Output = ()>>(
        self,
        signal: S2,
    ) -> KeyCall<'e, F, C, R, X, W, S2, G, I> {
        with!(self, until: Some(signal))
    }

    /// Runs the call at most once per idempotency key: when the plan has
    /// [`idempotency`](crate::policy::Plan::idempotency) (a file's `idempotency = { key = [...] }`),
    /// the key is read from `request`'s named fields and the request fingerprinted (see
    /// [`idempotency`](crate::idempotency)); `run` then returns an
    /// [`Idempotent`](crate::idempotency::Idempotent):
    ///
    /// - a new key runs the call, stores its success as JSON and returns it; a failure (or a
    ///   fallback's value) releases the key;
    /// - a completed key returns the stored result, `replayed`, without running anything;
    /// - a key in flight or used with another request fails with [`Error::Idempotency`].
    ///
    /// Without idempotency in the plan, the call runs as usual (`replayed: false`). A plan with
    /// it and an executor without a store fail closed.
    #[cfg(feature = "serde")]
    pub fn idempotent<Q: serde::Serialize + ?Sized>(
        self,
        request: &Q,
    ) -> KeyCall<'e, F, C, R, X, W, S, G, WithIdempotency> {
        let value = serde_json::to_value(request).map_err(|e| format!("the request: {e}"));
        with!(self, idempotency: WithIdempotency(value))
    }
}

impl<'e, F, Fut, T, E, C, R, X, W, S, G> KeyCall<'e, F, C, R, X, W, S, G, NoIdempotency>
where
    F: CallOp<Output = Fut>,
    Fut: Future<Output = Result<T, E>>,
    T: 'static,
    E: 'static,
    C: CallClassifier<T, E>,
    R: RetryHook<T, E>,
    X: ExhaustedHook<T, E>,
    W: Recover<T, E>,
    S: Future<Output = ()>,
    G: GateStep<E>,
{
    /// Runs the call. Dropping the future stops everything at once.
    pub async fn run(self) -> Result<T, Error<E>> {
        let (entry, bound) = self.at.resolve()?;
        self.run_bound(&entry.key, &bound).await.0
    }
}

#[cfg(feature = "serde")]
impl<'e, F, Fut, T, E, C, R, X, W, S, G> KeyCall<'e, F, C, R, X, W, S, G, WithIdempotency>
where
    F: CallOp<Output = Fut>,
    Fut: Future<Output = Result<T, E>>,
    T: serde::Serialize + serde::de::DeserializeOwned + 'static,
    E: 'static,
    C: CallClassifier<T, E>,
    R: RetryHook<T, E>,
    X: ExhaustedHook<T, E>,
    W: Recover<T, E>,
    S: Future<Output = ()>,
    G: GateStep<E>,
{
    /// Runs the call once per idempotency key (see [`idempotent`](KeyCall::idempotent)).
    pub async fn run(self) -> Result<crate::idempotency::Idempotent<T>, Error<E>> {
        use crate::idempotency::{Claim, Idempotent, Refusal};
        let (entry, bound) = self.at.resolve()?;
        let key = &entry.key;
        let fresh = |value| Idempotent {
            value,
            replayed: false,
        };
        let Some(options) = bound.plan.idempotency_options() else {
            let plain = with!(self, idempotency: NoIdempotency);
            return plain.run_bound(key, &bound).await.0.map(fresh);
        };
        let Some(store) = self.at.inner().idempotency.clone() else {
            return Err(Error::Idempotency(Refusal::Unavailable(
                "the executor has no idempotency store".into(),
            )));
        };
        let request = match &self.idempotency.0 {
            Ok(v) => v,
            Err(e) => return Err(Error::Idempotency(Refusal::Invalid(e.clone()))),
        };
        // Scoped by the call site's key: one idempotency key names one operation's call.
        let named =
            crate::idempotency::key_of(request, &options.key).map_err(Error::Idempotency)?;
        let id = format!("{}/{named}", key.as_str());
        let fingerprint = crate::idempotency::fingerprint(request);
        let claim = store
            .claim(&id, &fingerprint, options)
            .await
            .map_err(|e| Error::Idempotency(Refusal::Unavailable(e)))?;
        let hold = match claim {
            Claim::New(hold) => hold,
            Claim::Completed(stored) => {
                let value = serde_json::from_slice(&stored).map_err(|e| {
                    Error::Idempotency(Refusal::Invalid(format!("the stored result: {e}")))
                })?;
                return Ok(Idempotent {
                    value,
                    replayed: true,
                });
            }
            Claim::InFlight => return Err(Error::Idempotency(Refusal::InFlight)),
            Claim::Mismatch => return Err(Error::Idempotency(Refusal::Mismatch)),
        };
        let plain = with!(self, idempotency: NoIdempotency);
        match plain.run_bound(key, &bound).await {
            (Ok(value), false) => {
                match serde_json::to_vec(&value) {
                    Ok(bytes) => {
                        let _ = hold.complete(bytes).await;
                    }
                    Err(_) => hold.abandon().await,
                }
                Ok(fresh(value))
            }
            // A fallback's value is not the operation's result: the key stays free.
            (result, _) => {
                hold.abandon().await;
                result.map(fresh)
            }
        }
    }
}

impl<'e, F, Fut, T, E, C, R, X, W, S, G, I> KeyCall<'e, F, C, R, X, W, S, G, I>
where
    F: CallOp<Output = Fut>,
    Fut: Future<Output = Result<T, E>>,
    T: 'static,
    E: 'static,
    C: CallClassifier<T, E>,
    R: RetryHook<T, E>,
    X: ExhaustedHook<T, E>,
    W: Recover<T, E>,
    S: Future<Output = ()>,
    G: GateStep<E>,
{
    /// The call under `bound`: gate, fallback, cancellation, chain and attempts. Returns
    /// whether the fallback replaced the result.
    async fn run_bound(self, key: &Key, bound: &Bound) -> (Result<T, Error<E>>, bool) {
        let KeyCall {
            at,
            op,
            classifier,
            on_retry,
            on_exhausted,
            fallback,
            until,
            gate,
            idempotency: _,
            properties,
            timeline,
            attempt,
        } = self;
        let inner = at.inner();
        let plan = &*bound.plan;
        let gated = match gate.target().zip(plan.gate_options()) {
            None => None,
            Some((target, options)) => {
                let Some(backend) = &inner.gate else {
                    return fallback
                        .recover(Err(Error::GateClosed(crate::gate::Decision::unavailable())));
                };
                match backend.acquire_attempt(target, options).await {
                    Ok(attempt) => Some(attempt),
                    Err(decision) => return fallback.recover(Err(Error::GateClosed(decision))),
                }
            }
        };
        let report = |type_name: &'static str| {
            inner.report(&PolicyEvent::Unreadable {
                key: key.as_str(),
                classifier: plan.classifier().name(),
                type_name,
            })
        };
        let observed = inner.observed();
        let classifier = classifier.resolve(plan.classifier(), observed.then_some(&report as _));
        let attempts = AtomicU32::new(0);
        let tracker = Tracker {
            total_timeout: attempt.as_ref().and(plan.retry().total_timeout()),
            cell: attempt.clone(),
        };
        let mut op = op;
        let op = move || op.attempt(AttemptSource(attempt.as_ref()));
        let call = async {
            match timeline {
                None => {
                    inner
                        .execute(
                            key,
                            bound,
                            properties,
                            classifier,
                            on_retry,
                            on_exhausted,
                            tracker,
                            &attempts,
                            op,
                        )
                        .await
                }
                Some(t) => {
                    inner
                        .execute(
                            key,
                            bound,
                            properties,
                            classifier,
                            on_retry,
                            on_exhausted,
                            Both(t, tracker),
                            &attempts,
                            op,
                        )
                        .await
                }
            }
        };
        let result = match until {
            None => call.await,
            Some(signal) => {
                let mut call = pin!(call);
                let mut signal = pin!(signal);
                std::future::poll_fn(|cx| {
                    if signal.as_mut().poll(cx).is_ready() {
                        return Poll::Ready(Err(Error::Cancelled {
                            attempts: attempts.load(Ordering::Relaxed),
                        }));
                    }
                    call.as_mut().poll(cx)
                })
                .await
            }
        };
        if let Some(attempt) = gated {
            match &result {
                Ok(_) => attempt.success().await,
                Err(e) => attempt.failure(gate.failure_text(e)).await,
            }
        }
        let (result, used) = fallback.recover(result);
        if used && observed {
            inner
                .observers(key)
                .event(&crate::observe::Event::FallbackUsed);
        }
        (result, used)
    }
}

impl Inner {
    /// A call under `bound` with nothing but the plan: its classifier, chain and observers.
    pub(super) async fn run_plan<F, Fut, T, E>(
        &self,
        key: &Key,
        bound: &Bound,
        op: F,
    ) -> Result<T, Error<E>>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, E>>,
        T: 'static,
        E: 'static,
    {
        let plan = &*bound.plan;
        let report = |type_name: &'static str| {
            self.report(&PolicyEvent::Unreadable {
                key: key.as_str(),
                classifier: plan.classifier().name(),
                type_name,
            })
        };
        let classifier = FromPolicy {
            policy: plan.classifier(),
            report: self.observed().then_some(&report as _),
        };
        let attempts = AtomicU32::new(0);
        self.execute(
            key,
            bound,
            Properties::default(),
            classifier,
            NoHook,
            NoHook,
            NoHook,
            &attempts,
            op,
        )
        .await
    }

    /// The attempts under `bound`: observers (and tracing) when there are any, inside the
    /// plan's chain when it has one; `attempts` counts them as they start.
    #[allow(clippy::too_many_arguments)]
    pub(super) async fn execute<F, Fut, T, E, K, R, X, P>(
        &self,
        key: &Key,
        bound: &Bound,
        properties: Properties,
        classifier: K,
        on_retry: R,
        on_exhausted: X,
        probe: P,
        attempts: &AtomicU32,
        op: F,
    ) -> Result<T, Error<E>>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, E>>,
        T: 'static,
        E: 'static,
        K: Classifier<T, E>,
        R: RetryHook<T, E>,
        X: ExhaustedHook<T, E>,
        P: Probe,
    {
        let plan = &*bound.plan;
        let observed = self.observed();
        let deadline = plan.retry().deadline_from_now();
        let call = async {
            let call = plan
                .retry()
                .call(op)
                .classify(classifier)
                .with_hooks(on_retry, on_exhausted)
                .with_guards(bound.guards());
            let count = Both(probe, chain::CountAttempts(attempts));
            if observed {
                call.with_probe(Both(self.observers(key), count))
                    .run()
                    .await
            } else {
                call.with_probe(count).run().await
            }
        };
        if plan.policies().is_empty() {
            call.await
        } else {
            chain::run(plan.policies(), key, deadline, properties, attempts, call).await
        }
    }
}

/// One blocking call by key; the mirror of [`KeyCall`] (without the gate, idempotency,
/// cancellation and timeline, whose stores and signals are async), made by
/// [`Executor::call_blocking`] or [`Handle::call_blocking`].
///
/// # Example
/// ```
/// use steadfast::{Executor, Retry, policy::Policies};
///
/// let executor = Executor::new(Policies::new(Retry::immediate().max_attempts(3).build()?));
/// let mut tries = 0;
/// let value = executor
///     .call_blocking("disk.Read", || {
///         tries += 1;
///         if tries < 3 { Err("busy") } else { Ok(tries) }
///     })
///     .run();
/// assert_eq!(value.unwrap(), 3);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[must_use = "a call does nothing until `.run()`"]
pub struct BlockingKeyCall<'e, F, C = FromPlan, R = NoHook, X = NoHook, W = NoFallback> {
    at: At<'e>,
    op: F,
    classifier: C,
    on_retry: R,
    on_exhausted: X,
    fallback: W,
    properties: Properties,
}

impl<F, C, R, X, W> std::fmt::Debug for BlockingKeyCall<'_, F, C, R, X, W> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BlockingKeyCall")
            .field("at", &self.at)
            .finish_non_exhaustive()
    }
}

impl<'e, F> BlockingKeyCall<'e, F> {
    pub(super) fn by_key(executor: &'e Executor, key: &'e str, op: F) -> Self {
        Self::new(At::Key(executor, key), op)
    }

    pub(super) fn by_handle(handle: &'e Handle, op: F) -> Self {
        Self::new(At::Handle(handle), op)
    }

    fn new(at: At<'e>, op: F) -> Self {
        BlockingKeyCall {
            at,
            op,
            classifier: FromPlan,
            on_retry: NoHook,
            on_exhausted: NoHook,
            fallback: NoFallback,
            properties: Properties::default(),
        }
    }
}

impl<'e, F, T, E, C, R, X, W> BlockingKeyCall<'e, F, C, R, X, W>
where
    F: FnMut() -> Result<T, E>,
{
    /// Classifies each attempt with `classifier` instead of the key's policy's.
    pub fn classify<C2: Classifier<T, E>>(
        self,
        classifier: C2,
    ) -> BlockingKeyCall<'e, F, Given<C2>, R, X, W> {
        BlockingKeyCall {
            at: self.at,
            op: self.op,
            classifier: Given(classifier),
            on_retry: self.on_retry,
            on_exhausted: self.on_exhausted,
            fallback: self.fallback,
            properties: self.properties,
        }
    }

    /// Hands `properties` to the key's custom policies.
    pub fn properties(mut self, properties: Properties) -> Self {
        self.properties = properties;
        self
    }

    /// Replaces the failures `fallback` handles.
    pub fn fallback<W2>(self, fallback: W2) -> BlockingKeyCall<'e, F, C, R, X, W2> {
        BlockingKeyCall {
            at: self.at,
            op: self.op,
            classifier: self.classifier,
            on_retry: self.on_retry,
            on_exhausted: self.on_exhausted,
            fallback,
            properties: self.properties,
        }
    }

    /// Runs `hook` before each retry.
    pub fn on_retry<H: FnMut(&OnRetry<'_, T, E>)>(
        self,
        hook: H,
    ) -> BlockingKeyCall<'e, F, C, OnRetryFn<H>, X, W> {
        BlockingKeyCall {
            at: self.at,
            op: self.op,
            classifier: self.classifier,
            on_retry: OnRetryFn(hook),
            on_exhausted: self.on_exhausted,
            fallback: self.fallback,
            properties: self.properties,
        }
    }

    /// Runs `hook` once when the policy's allowance runs out.
    pub fn on_exhausted<H: FnMut(&mut OnExhausted<'_, T, E>)>(
        self,
        hook: H,
    ) -> BlockingKeyCall<'e, F, C, R, OnExhaustedFn<H>, W> {
        BlockingKeyCall {
            at: self.at,
            op: self.op,
            classifier: self.classifier,
            on_retry: self.on_retry,
            on_exhausted: OnExhaustedFn(hook),
            fallback: self.fallback,
            properties: self.properties,
        }
    }

    /// Runs the call on this thread.
    pub fn run(self) -> Result<T, Error<E>>
    where
        T: 'static,
        E: 'static,
        C: CallClassifier<T, E>,
        R: RetryHook<T, E>,
        X: ExhaustedHook<T, E>,
        W: Recover<T, E>,
    {
        let (entry, bound) = self.at.resolve()?;
        let key = &entry.key;
        let inner = self.at.inner();
        let plan = &*bound.plan;
        let report = |type_name: &'static str| {
            inner.report(&PolicyEvent::Unreadable {
                key: key.as_str(),
                classifier: plan.classifier().name(),
                type_name,
            })
        };
        let classifier = self
            .classifier
            .resolve(plan.classifier(), inner.observed().then_some(&report as _));
        let call = || {
            let call = plan
                .retry()
                .call_blocking(self.op)
                .classify(classifier)
                .on_hooks(self.on_retry, self.on_exhausted)
                .with_guards(bound.guards());
            if inner.observed() {
                call.run_with_probe(inner.observers(key))
            } else {
                call.run()
            }
        };
        let result = if plan.policies().is_empty() {
            call()
        } else {
            // The chain runs for blocking calls too: a governance policy is never bypassed.
            let deadline = plan.retry().deadline_from_now();
            chain::run_blocking(plan.policies(), key, deadline, self.properties, call)
        };
        let (result, used) = self.fallback.recover(result);
        if used && inner.observed() {
            inner
                .observers(key)
                .event(&crate::observe::Event::FallbackUsed);
        }
        result
    }
}
