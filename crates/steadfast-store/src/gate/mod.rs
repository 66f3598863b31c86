//! The durable retry gate: per target, "may this be attempted now?", with the reason and when
//! it reopens; the rules are those of [`steadfast::gate`].

pub(crate) mod record;

use std::collections::HashMap;
use std::fmt;
use std::future::Future;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, SystemTime};

use steadfast::ConfigError;
use steadfast::gate::{Decision, GateAttempt, GateBackend, GateFuture, GateOptions, Target};
use steadfast::observe::{DurableEvent, Observer};

pub use record::{GateRecord, MAX_ERROR_LEN};

use crate::StoreError;
use crate::backend::{Filter, GateStore};
use crate::clock::{Clock, SystemClock};
use record::{Kind, to_millis_precision};

/// How many times a write that lost a race is decided again before giving up.
const MAX_ROUNDS: u32 = 10_000;

/// The gate over a store; cheap to clone (clones share the store and clock).
///
/// ```
/// use steadfast::gate::{GateOptions, Reason, Target};
/// use steadfast_store::{GateError, MemoryStore, RetryGate};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let gate = RetryGate::new(MemoryStore::new(), GateOptions::default().base_retries(1))?;
/// let order = Target::new("order", "42");
///
/// gate.acquire(&order).await?.failed("timeout").await?; // the first attempt
/// gate.acquire(&order).await?.failed("timeout").await?; // retry 1, the window's only one
/// match gate.acquire(&order).await {
///     Err(GateError::Denied(d)) => assert_eq!(d.reason, Reason::CoolingDown),
///     other => panic!("expected a cool-down, got {other:?}"),
/// }
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct RetryGate {
    inner: Arc<Inner>,
}

struct Inner {
    store: Arc<dyn GateStore>,
    options: GateOptions,
    clock: Arc<dyn Clock>,
    /// The last record this process read or wrote per target. An acquire starts from it and
    /// skips a read; the write's version check catches a stale one (and a denial from it is
    /// read again), so it saves a round trip and decides nothing alone.
    known: Mutex<HashMap<Target, GateRecord>>,
    observers: Vec<Arc<dyn Observer>>,
}

/// Records `known` keeps at most (then it starts over).
const KNOWN_MAX: usize = 4096;

impl Inner {
    fn known(&self, target: &Target) -> Option<GateRecord> {
        self.known
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(target)
            .cloned()
    }

    fn remember(&self, record: &GateRecord) {
        let mut known = self.known.lock().unwrap_or_else(PoisonError::into_inner);
        if known.len() >= KNOWN_MAX && !known.contains_key(&record.target) {
            known.clear();
        }
        known.insert(record.target.clone(), record.clone());
    }
}

impl fmt::Debug for RetryGate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RetryGate")
            .field("options", &self.inner.options)
            .finish_non_exhaustive()
    }
}

/// Why [`RetryGate::acquire`] gave no permit.
#[derive(Debug)]
#[non_exhaustive]
pub enum GateError {
    /// The gate said no; the decision says why and until when.
    Denied(Decision),
    /// The store failed.
    Store(StoreError),
}

impl fmt::Display for GateError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            GateError::Denied(d) => write!(f, "gate closed: {d}"),
            GateError::Store(e) => write!(f, "gate store: {e}"),
        }
    }
}

impl std::error::Error for GateError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            GateError::Denied(_) => None,
            GateError::Store(e) => Some(e),
        }
    }
}

impl From<StoreError> for GateError {
    fn from(e: StoreError) -> Self {
        GateError::Store(e)
    }
}

/// How [`RetryGate::run`] ended without a value.
#[derive(Debug)]
#[non_exhaustive]
pub enum RunError<E> {
    /// The gate said no; the operation did not run.
    Denied(Decision),
    /// The store failed (before the operation, or recording how it ended).
    Store(StoreError),
    /// The operation failed; the failure is recorded.
    Operation(E),
}

impl<E: fmt::Display> fmt::Display for RunError<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RunError::Denied(d) => write!(f, "gate closed: {d}"),
            RunError::Store(e) => write!(f, "gate store: {e}"),
            RunError::Operation(e) => e.fmt(f),
        }
    }
}

impl<E: fmt::Debug + fmt::Display> std::error::Error for RunError<E> {}

impl RetryGate {
    /// A gate over `store`, creating records under `options`, on the system clock.
    pub fn new(store: impl GateStore, options: GateOptions) -> Result<Self, ConfigError> {
        options.validate()?;
        Ok(RetryGate {
            inner: Arc::new(Inner {
                store: Arc::new(store),
                options,
                clock: Arc::new(SystemClock),
                known: Mutex::default(),
                observers: Vec::new(),
            }),
        })
    }

    /// The same gate reading time from `clock` (tests pin it with a
    /// [`ManualClock`](crate::ManualClock)).
    pub fn with_clock(self, clock: impl Clock) -> Self {
        RetryGate {
            inner: Arc::new(Inner {
                store: self.inner.store.clone(),
                options: self.inner.options.clone(),
                clock: Arc::new(clock),
                known: Mutex::default(),
                observers: self.inner.observers.clone(),
            }),
        }
    }

    /// The same gate reporting each acquire's decision to `observer` as a
    /// [`DurableEvent::GateDecided`] (`steadfast::observe::MetricsObserver` counts them by
    /// target type and reason).
    pub fn with_observer(self, observer: impl Observer) -> Self {
        let mut observers = self.inner.observers.clone();
        observers.push(Arc::new(observer));
        RetryGate {
            inner: Arc::new(Inner {
                store: self.inner.store.clone(),
                options: self.inner.options.clone(),
                clock: self.inner.clock.clone(),
                known: Mutex::default(),
                observers,
            }),
        }
    }

    /// The options new records are created with.
    pub fn options(&self) -> &GateOptions {
        &self.inner.options
    }

    fn now(&self) -> SystemTime {
        to_millis_precision(self.inner.clock.now())
    }

    /// What an attempt at `target` would be told now, without reserving it.
    pub async fn check(&self, target: &Target) -> Result<Decision, StoreError> {
        let now = self.now();
        Ok(match self.get(target).await? {
            Some(record) => record.decision(now, false),
            None => GateRecord::new(target.clone(), self.inner.options.clone(), now)
                .decision(now, false),
        })
    }

    /// [`check`](Self::check) with `options` for a target that has no record yet.
    pub(crate) async fn check_with(
        &self,
        target: &Target,
        options: &GateOptions,
    ) -> Result<Decision, StoreError> {
        let now = self.now();
        Ok(match self.get(target).await? {
            Some(record) => record.decision(now, false),
            None => GateRecord::new(target.clone(), options.clone(), now).decision(now, false),
        })
    }

    /// Reserves an attempt at `target`: counted at once, so processes racing for the last
    /// retry get exactly as many permits as there are retries. Report how it ended on the
    /// [`Permit`]; a permit dropped unreported stays counted, with no failure recorded.
    pub async fn acquire(&self, target: &Target) -> Result<Permit, GateError> {
        let options = self.inner.options.clone();
        self.acquire_with(target, &options).await
    }

    pub(crate) async fn acquire_with(
        &self,
        target: &Target,
        options: &GateOptions,
    ) -> Result<Permit, GateError> {
        let mut decided = None;
        let record = self
            .update(target, options, true, |record, now| {
                // `judge` names a kind exactly when the attempt is allowed.
                let (decision, kind) = record.judge(now, record.early_requested);
                if let Some(kind) = kind {
                    record.count_attempt(kind, now);
                }
                let allowed = kind.is_some();
                // As of this attempt: counted, so the retries left exclude it.
                decided = Some(Decision {
                    attempts: record.attempts,
                    retries_left: record.retries_left(),
                    ..decision
                });
                allowed
            })
            .await?;
        let decision = decided.ok_or_else(|| StoreError::contended(target))?;
        for o in &self.inner.observers {
            o.on_durable_event(&DurableEvent::GateDecided {
                target_type: &target.target_type,
                allowed: decision.allowed,
                reason: decision.reason,
            });
        }
        match record {
            Some(record) if decision.allowed => Ok(Permit {
                gate: self.clone(),
                options: options.clone(),
                record,
                decision,
            }),
            _ => Err(GateError::Denied(decision)),
        }
    }

    /// Asks for an early retry ("retry now"): if granted, the next attempt at `target` gets
    /// it even though the window's quota is used. An attempt allowed anyway is allowed for its
    /// own reason, and nothing is changed.
    pub async fn request_early(&self, target: &Target) -> Result<Decision, StoreError> {
        let mut decided = None;
        let options = self.inner.options.clone();
        self.update(target, &options, false, |record, now| {
            let (decision, kind) = record.judge(now, true);
            decided = Some(decision);
            if kind == Some(Kind::Early) && !record.early_requested {
                record.early_requested = true;
                record.touch(now);
                return true;
            }
            false
        })
        .await?;
        decided.ok_or_else(|| StoreError::contended(target))
    }

    /// Clears `target`'s counters, window and early-retry flag; the record keeps the options
    /// it is judged by. `false` if it had no record.
    pub async fn reset(&self, target: &Target) -> Result<bool, StoreError> {
        self.clear(target, None).await
    }

    /// Clears `target` as [`reset`](Self::reset) does and judges it by `options` from now on
    /// (a policy's gate options, as `steadfast gate reset --policy FILE --key KEY` passes
    /// them); invalid options are [`StoreError::Invalid`].
    ///
    /// ```
    /// use steadfast::gate::{GateOptions, Target};
    /// use steadfast_store::{MemoryStore, RetryGate};
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let gate = RetryGate::new(MemoryStore::new(), GateOptions::default())?;
    /// let order = Target::new("order", "42");
    /// gate.acquire(&order).await?.failed("timeout").await?;
    /// assert!(gate.reset_with(&order, &GateOptions::default().max_retries(9)).await?);
    /// assert_eq!(gate.get(&order).await?.unwrap().policy.max_retries, 9);
    /// # Ok(()) }
    /// ```
    pub async fn reset_with(
        &self,
        target: &Target,
        options: &GateOptions,
    ) -> Result<bool, StoreError> {
        options.validate().map_err(StoreError::Invalid)?;
        self.clear(target, Some(options)).await
    }

    async fn clear(
        &self,
        target: &Target,
        options: Option<&GateOptions>,
    ) -> Result<bool, StoreError> {
        if self.inner.store.load(target).await?.is_none() {
            return Ok(false);
        }
        let fresh = self.inner.options.clone();
        self.update(target, &fresh, false, |record, now| {
            let policy = options.cloned().unwrap_or_else(|| record.policy.clone());
            record.clear(&policy, now, false);
            true
        })
        .await?;
        Ok(true)
    }

    /// Deletes the records that have been clear (no attempt since their last success or
    /// reset) for longer than `retention`; how many. A target attempted again later starts
    /// a new record, as one never seen does; failing and exhausted records stay.
    ///
    /// ```
    /// use std::time::Duration;
    /// use steadfast::gate::{GateOptions, Target};
    /// use steadfast_store::{ManualClock, MemoryStore, RetryGate};
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let clock = ManualClock::at(std::time::SystemTime::now());
    /// let gate = RetryGate::new(MemoryStore::new(), GateOptions::default())?.with_clock(clock.clone());
    /// gate.acquire(&Target::new("order", "1")).await?.succeeded().await?;
    /// gate.acquire(&Target::new("order", "2")).await?.failed("503").await?;
    /// clock.advance(Duration::from_secs(31 * 24 * 3600));
    /// assert_eq!(gate.purge_clear_older_than(Duration::from_secs(30 * 24 * 3600)).await?, 1);
    /// # Ok(()) }
    /// ```
    pub async fn purge_clear_older_than(&self, retention: Duration) -> Result<u64, StoreError> {
        let cutoff = self
            .now()
            .checked_sub(retention)
            .unwrap_or(SystemTime::UNIX_EPOCH);
        let purged = self
            .inner
            .store
            .purge_clear(crate::clock::to_ms(cutoff))
            .await?;
        if purged > 0 {
            // Records this process remembers may be gone.
            self.inner
                .known
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .clear();
        }
        Ok(purged)
    }

    /// `target`'s whole record, if it has one.
    pub async fn get(&self, target: &Target) -> Result<Option<GateRecord>, StoreError> {
        let record = self.inner.store.load(target).await?;
        if let Some(r) = &record {
            self.inner.remember(r);
        }
        Ok(record)
    }

    /// The records `filter` picks.
    pub async fn list(&self, filter: &Filter) -> Result<Vec<GateRecord>, StoreError> {
        self.inner.store.list(filter).await
    }

    /// Runs `op` once under the gate: denied, it does not run; its failure is recorded with
    /// its text, its success clears the target.
    ///
    /// ```
    /// use steadfast::gate::{GateOptions, Target};
    /// use steadfast_store::{MemoryStore, RetryGate, RunError};
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let gate = RetryGate::new(MemoryStore::new(), GateOptions::default())?;
    /// let target = Target::new("invoice", "7");
    /// let sent = gate.run(&target, || async { Err::<(), _>("smtp: 451") }).await;
    /// assert!(matches!(sent, Err(RunError::Operation("smtp: 451"))));
    /// assert_eq!(gate.get(&target).await?.unwrap().last_error.as_deref(), Some("smtp: 451"));
    /// # Ok(()) }
    /// ```
    pub async fn run<F, Fut, T, E>(&self, target: &Target, op: F) -> Result<T, RunError<E>>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<T, E>>,
        E: fmt::Display,
    {
        let permit = match self.acquire(target).await {
            Ok(p) => p,
            Err(GateError::Denied(d)) => return Err(RunError::Denied(d)),
            Err(GateError::Store(e)) => return Err(RunError::Store(e)),
        };
        match op().await {
            Ok(value) => {
                permit.succeeded().await.map_err(RunError::Store)?;
                Ok(value)
            }
            Err(e) => {
                permit
                    .failed(&e.to_string())
                    .await
                    .map_err(RunError::Store)?;
                Err(RunError::Operation(e))
            }
        }
    }

    /// Writes `record` over the version before it, whose policy was `before` (`None`: no
    /// stored version).
    async fn save(
        &self,
        record: &GateRecord,
        before: Option<&GateOptions>,
    ) -> Result<bool, StoreError> {
        if before == Some(&record.policy) {
            self.inner.store.save_same_policy(record).await
        } else {
            self.inner.store.save(record).await
        }
    }

    /// Reads `target`'s record (or a new one under `options`), lets `change` edit it, and
    /// writes it if `change` says so, over the version read; a lost race decides again.
    /// With `known`, the first round starts from the record this process saw last, trusted
    /// only if the write over it succeeds. Returns the record as written (or as read, when
    /// nothing was written).
    async fn update(
        &self,
        target: &Target,
        options: &GateOptions,
        known: bool,
        mut change: impl FnMut(&mut GateRecord, SystemTime) -> bool,
    ) -> Result<Option<GateRecord>, StoreError> {
        let mut cached = if known {
            self.inner.known(target)
        } else {
            None
        };
        for _ in 0..MAX_ROUNDS {
            let now = self.now();
            let from_cache = cached.is_some();
            let mut record = match cached.take() {
                Some(r) => r,
                None => match self.inner.store.load(target).await? {
                    Some(r) => {
                        self.inner.remember(&r);
                        r
                    }
                    None => GateRecord::new(target.clone(), options.clone(), now),
                },
            };
            let policy = (record.version > 0).then(|| record.policy.clone());
            if !change(&mut record, now) {
                if from_cache {
                    continue; // a decision not to write, on a record that may be stale
                }
                return Ok(Some(record));
            }
            record.version += 1;
            if self.save(&record, policy.as_ref()).await? {
                self.inner.remember(&record);
                return Ok(Some(record));
            }
        }
        Err(StoreError::contended(target))
    }
}

/// A reserved attempt; say how it ended with [`succeeded`](Self::succeeded) or
/// [`failed`](Self::failed).
#[derive(Debug)]
#[must_use = "a permit reserves an attempt: run it, then report how it ended"]
pub struct Permit {
    gate: RetryGate,
    /// The options the attempt was acquired under: a success adopts them.
    options: GateOptions,
    record: GateRecord,
    decision: Decision,
}

impl Permit {
    /// What the gate decided (the reason this attempt is allowed, and the attempt count with
    /// it included).
    pub fn decision(&self) -> &Decision {
        &self.decision
    }

    /// The target.
    pub fn target(&self) -> &Target {
        &self.record.target
    }

    /// The attempt succeeded: clears the counters, the window and the early-retry flag; the
    /// record is judged from now on by the options the attempt was acquired under (the
    /// gate's, or the plan's when the executor acquired it).
    pub async fn succeeded(self) -> Result<(), StoreError> {
        let options = self.options.clone();
        self.finish(|record, now| record.clear(&options, now, true))
            .await
    }

    /// The attempt failed with `error`: opens a window if none is open, keeps the text.
    pub async fn failed(self, error: &str) -> Result<(), StoreError> {
        self.finish(|record, now| record.fail(error, now)).await
    }

    /// Writes `change` over the record this permit wrote (one write when nobody else wrote
    /// since), else over the current one.
    async fn finish(self, change: impl Fn(&mut GateRecord, SystemTime)) -> Result<(), StoreError> {
        let now = self.gate.now();
        let mut record = self.record;
        let policy = record.policy.clone();
        change(&mut record, now);
        record.version += 1;
        if self.gate.save(&record, Some(&policy)).await? {
            self.gate.inner.remember(&record);
            return Ok(());
        }
        let options = record.policy.clone();
        self.gate
            .update(&record.target, &options, false, |r, now| {
                change(r, now);
                true
            })
            .await
            .map(drop)
    }
}

impl GateBackend for RetryGate {
    fn acquire_attempt<'a>(
        &'a self,
        target: &'a Target,
        options: &'a GateOptions,
    ) -> GateFuture<'a, Result<Box<dyn GateAttempt>, Decision>> {
        Box::pin(async move {
            match self.acquire_with(target, options).await {
                Ok(permit) => Ok(Box::new(permit) as Box<dyn GateAttempt>),
                Err(GateError::Denied(d)) => Err(d),
                Err(GateError::Store(_)) => Err(Decision::unavailable()),
            }
        })
    }
}

impl GateAttempt for Permit {
    fn success(self: Box<Self>) -> GateFuture<'static, ()> {
        Box::pin(async move {
            // The call's result stands; a store failure here leaves the attempt counted.
            let _ = self.succeeded().await;
        })
    }

    fn failure(self: Box<Self>, error: String) -> GateFuture<'static, ()> {
        Box::pin(async move {
            let _ = self.failed(&error).await;
        })
    }
}
