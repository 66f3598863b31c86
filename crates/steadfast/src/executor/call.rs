//! One call by key: [`Executor::call`] and [`Handle::call`] start a [`KeyCall`], every option
//! composes with every other, and [`run`](KeyCall::run) resolves the key once for all of them.

use crate::ErrorKind;
use std::future::{Future, Pending};
use std::pin::pin;
use std::sync::atomic::{AtomicU32, Ordering};
use std::task::Poll;

use super::at::At;
use super::attempt::{AttemptCell, AttemptSource, CallOp, OnRetryAsync, Tracker};
use super::bind::Bound;
#[cfg(feature = "serde")]
use super::steps::WithIdempotency;
use super::steps::{
    CallClassifier, ErrorText, FromPlan, Given, NoFallback, NoIdempotency, Recover, Reports,
};
use super::{Executor, Handle};
use crate::chain::Properties;
use crate::classify::Classifier;
use crate::error::Error;
use crate::gate::step::{self, GateStep, Gated, NoGate};
use crate::key::Key;
use crate::observe::{Both, PolicyEvent, Probe, Timeline};
use crate::retry::{
    ExhaustedHook, NoHook, OnExhausted, OnExhaustedFn, OnRetry, OnRetryFn, RetryHook,
};

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

    /// Classifies with a [`CallClassifier`]: one that reads the key's policy's classifier
    /// before each call, as an integration does (the tower layer, `steadfast-reqwest`) to
    /// keep the policy's options while adding what it knows of its own requests.
    pub fn classify_with<C2>(self, classifier: C2) -> KeyCall<'e, F, C2, R, X, W, S, G, I> {
        with!(self, classifier: classifier)
    }

    /// Reports each failed attempt's error text (its `Display`) to the executor's observers
    /// ([`Observer::on_attempt_error`](crate::observe::Observer::on_attempt_error)) and, when
    /// the executor traces, as a DEBUG event `steadfast: attempt failed` with fields `key` and
    /// `error`. Off unless asked: an error's text may hold what logs must not.
    ///
    /// ```
    /// use std::fmt::Display;
    /// use std::sync::{Arc, Mutex};
    /// use steadfast::observe::{Event, Observer};
    /// use steadfast::{Executor, Key, Retry, policy::Policies};
    ///
    /// #[derive(Debug, Default)]
    /// struct Texts(Mutex<Vec<String>>);
    /// impl Observer for Texts {
    ///     fn on_event(&self, _: &Key, _: &Event) {}
    ///     fn on_attempt_error(&self, _: &Key, error: &dyn Display) {
    ///         self.0.lock().unwrap().push(error.to_string());
    ///     }
    /// }
    ///
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() {
    /// let texts = Arc::new(Texts::default());
    /// let retry = Retry::immediate().max_attempts(2).build().unwrap();
    /// let executor = Executor::builder()
    ///     .policies(Policies::new(retry))
    ///     .shared_observer(texts.clone())
    ///     .build();
    /// let _ = executor
    ///     .call("search.Query", || async { Err::<(), _>(std::io::Error::other("index offline")) })
    ///     .error_text()
    ///     .run()
    ///     .await;
    /// assert_eq!(*texts.0.lock().unwrap(), ["index offline", "index offline"]);
    /// # }
    /// ```
    pub fn error_text(self) -> KeyCall<'e, F, ErrorText<C>, R, X, W, S, G, I>
    where
        E: std::fmt::Display,
    {
        let s = self;
        KeyCall {
            at: s.at,
            op: s.op,
            classifier: ErrorText(s.classifier),
            on_retry: s.on_retry,
            on_exhausted: s.on_exhausted,
            fallback: s.fallback,
            until: s.until,
            gate: s.gate,
            idempotency: s.idempotency,
            properties: s.properties,
            timeline: s.timeline,
            attempt: s.attempt,
        }
    }

    /// Hands `properties` to the key's custom policies (see [`chain`](crate::chain)).
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
    /// allow an attempt at `target` first (else [`ErrorKind::GateClosed`](crate::ErrorKind::GateClosed), the operation not run),
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

    /// Stops the call when `signal` completes: [`ErrorKind::Cancelled`](crate::ErrorKind::Cancelled) with the attempts started.
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
    /// - a key in flight or used with another request fails with [`ErrorKind::Idempotency`](crate::ErrorKind::Idempotency).
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
    pub async fn run(mut self) -> Result<crate::idempotency::Idempotent<T>, Error<E>> {
        use crate::idempotency::{Idempotent, Refusal, Stopped};
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
            return Err(Error::new(ErrorKind::Idempotency(Refusal::Unavailable(
                "the executor has no idempotency store".into(),
            ))));
        };
        let request = match std::mem::replace(&mut self.idempotency.0, Ok(serde_json::Value::Null))
        {
            Ok(v) => v,
            Err(e) => return Err(Error::new(ErrorKind::Idempotency(Refusal::Invalid(e)))),
        };
        let plain = with!(self, idempotency: NoIdempotency);
        let ran = crate::idempotency::once(&*store, key.as_str(), &request, options, || {
            plain.run_bound(key, &bound)
        });
        ran.await.map_err(|stopped| match stopped {
            Stopped::Refused(refusal) => Error::new(ErrorKind::Idempotency(refusal)),
            Stopped::Failed(e) => e,
        })
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
        let gated =
            match step::admit(gate.target(), plan.gate_options(), inner.gate.as_deref()).await {
                Ok(attempt) => attempt,
                Err(decision) => {
                    return fallback.recover(Err(Error::new(ErrorKind::GateClosed(decision))));
                }
            };
        let report = |type_name: &'static str| {
            inner.report(&PolicyEvent::Unreadable {
                key: key.as_str(),
                classifier: plan.classifier().name(),
                type_name,
            })
        };
        let errors = |error: &dyn std::fmt::Display| inner.attempt_error(key, error);
        let observed = inner.observed();
        let reports = Reports {
            unreadable: observed.then_some(&report as _),
            errors: observed.then_some(&errors as _),
        };
        let classifier = classifier.resolve(plan.classifier(), reports);
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
                        return Poll::Ready(Err(Error::new(ErrorKind::Cancelled {
                            attempts: attempts.load(Ordering::Relaxed),
                        })));
                    }
                    call.as_mut().poll(cx)
                })
                .await
            }
        };
        step::record(gated, &gate, &result).await;
        let (result, used) = fallback.recover(result);
        if used && observed {
            inner
                .observers(key)
                .event(&crate::observe::Event::FallbackUsed);
        }
        (result, used)
    }
}
