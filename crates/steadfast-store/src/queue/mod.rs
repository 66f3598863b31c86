//! The durable retry queue: work that failed is retried later by its topic's policy, and what
//! cannot succeed lands in a dead-letter queue with its whole history, where an operator can
//! read it and send it back.
//!
//! - [`Queue::enqueue`] stores a message for a topic (bytes or JSON; an optional dedupe key,
//!   unique among the topic's live messages; an optional not-before time).
//! - [`Queue::lease`] hands out up to `n` ready messages, each hidden from other consumers for
//!   the visibility timeout and counted as a delivery. A lease that expires (its worker died)
//!   makes the message visible again: that delivery counts as a failed attempt.
//! - [`Queue::ack`] removes it; [`Queue::nack`] schedules the next attempt after the topic's
//!   backoff or, for a non-retryable error or the last attempt, moves it to the dead letters in
//!   the same transaction, with every attempt's time and error.
//! - [`Queue::dead_letters`]: list, read, redrive (back to the topic with counters reset),
//!   purge.
//!
//! Delivery is at least once: a handler may see a message again after its lease expired
//! (the ack of the late lease then reports [`QueueError::LeaseLost`]).
//!
//! The topic is a steadfast key (`emails.Send`): its plan in the queue's
//! [`Policies`] gives the attempts (`max_attempts`, counting the
//! first delivery), the backoff between them and the handler's timeout.
//!
//! ```
//! use std::time::Duration;
//! use steadfast_store::queue::{EnqueueOptions, Nacked, Queue};
//! use steadfast_store::MemoryStore;
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let queue = Queue::new(MemoryStore::new());
//! queue.enqueue("emails.Send", b"to: ada@example.com".to_vec(), EnqueueOptions::new()).await?;
//!
//! let leases = queue.lease("emails.Send", 10, Duration::from_secs(30)).await?;
//! assert_eq!(leases.len(), 1);
//! match queue.nack(&leases[0], "smtp: 421 try later", true).await? {
//!     Nacked::Retry { .. } => {}           // back in the queue after the backoff
//!     Nacked::DeadLettered { .. } => unreachable!("3 attempts by default"),
//! }
//! # Ok(()) }
//! ```

mod worker;

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use serde::{Deserialize, Serialize};
use steadfast::backoff::Backoff;
use steadfast::gate::{GateOptions, Target};
use steadfast::key::Key;
use steadfast::observe::{DurableEvent, Observer};
use steadfast::policy::Policies;

use crate::StoreError;
use crate::backend::StoreFuture;
use crate::clock::{Clock, SystemClock};
use crate::clock::{from_ms, to_ms};
use crate::gate::{GateError, RetryGate};

pub use worker::{DEFAULT_CONCURRENCY, Failure, Worker, WorkerReport};

/// How a message is enqueued.
///
/// ```
/// use std::time::{Duration, SystemTime};
/// use steadfast_store::queue::EnqueueOptions;
///
/// let options = EnqueueOptions::new()
///     .dedupe_key("order-42")
///     .not_before(SystemTime::now() + Duration::from_secs(60));
/// assert_eq!(options.dedupe_key.as_deref(), Some("order-42"));
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct EnqueueOptions {
    /// While a message with this key is in the topic (not yet acked or dead-lettered), another
    /// enqueue with it is a [`Enqueued::Duplicate`].
    pub dedupe_key: Option<String>,
    /// Not delivered before this time.
    pub not_before: Option<SystemTime>,
}

impl EnqueueOptions {
    /// Deliver now, no dedupe key.
    pub fn new() -> Self {
        EnqueueOptions::default()
    }

    /// Sets the dedupe key.
    pub fn dedupe_key(mut self, key: impl Into<String>) -> Self {
        self.dedupe_key = Some(key.into());
        self
    }

    /// Delivers no earlier than `at`.
    pub fn not_before(mut self, at: SystemTime) -> Self {
        self.not_before = Some(at);
        self
    }
}

/// What an enqueue did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Enqueued {
    /// Stored under this id.
    New(i64),
    /// A live message of the topic already has the dedupe key: this id, left as it was.
    Duplicate(i64),
}

impl Enqueued {
    /// The message's id, new or not.
    pub fn id(self) -> i64 {
        match self {
            Enqueued::New(id) | Enqueued::Duplicate(id) => id,
        }
    }
}

/// A message handed to one consumer until `until` (or until it is acked or nacked).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lease {
    /// The message.
    pub id: i64,
    /// Its topic.
    pub topic: String,
    /// What was enqueued.
    pub payload: Vec<u8>,
    /// Which delivery this is, from 1.
    pub attempt: u32,
    /// Deliveries it may have in all.
    pub max_attempts: u32,
    /// Its dedupe key, if it had one.
    pub dedupe_key: Option<String>,
    /// When it was enqueued.
    pub enqueued_at: SystemTime,
    /// When the lease ends and the message becomes visible again.
    pub until: SystemTime,
}

impl Lease {
    /// The payload read as JSON.
    pub fn json<T: serde::de::DeserializeOwned>(&self) -> Result<T, serde_json::Error> {
        serde_json::from_slice(&self.payload)
    }
}

/// What a nack did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Nacked {
    /// The message will be delivered again at `at`.
    Retry {
        /// When.
        at: SystemTime,
    },
    /// It was moved to the dead letters under this id.
    DeadLettered {
        /// The dead letter's id.
        id: i64,
    },
}

/// One failed delivery in a message's history.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AttemptRecord {
    /// Which delivery, from 1.
    pub attempt: u32,
    /// When it failed (for an expired lease: when the lease ended), ms since the Unix epoch.
    pub at_ms: i64,
    /// The error text (`lease expired` when the consumer never answered).
    pub error: String,
}

/// A message that could not succeed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeadLetter {
    /// The dead letter's id.
    pub id: i64,
    /// The message's id when it was queued.
    pub message_id: i64,
    /// Its topic.
    pub topic: String,
    /// Its dedupe key.
    pub dedupe_key: Option<String>,
    /// What was enqueued.
    pub payload: Vec<u8>,
    /// Deliveries it had.
    pub attempts: u32,
    /// Deliveries its topic allowed it (for a dead letter a store wrote before it kept
    /// this, its `attempts`).
    pub max_attempts: u32,
    /// When it was enqueued.
    pub enqueued_at: SystemTime,
    /// When it was dead-lettered.
    pub died_at: SystemTime,
    /// Why: the last error, or that the attempts ran out.
    pub reason: String,
    /// Every failed delivery, in order.
    pub history: Vec<AttemptRecord>,
}

/// Which dead letters an operation names.
///
/// ```
/// use std::time::{Duration, SystemTime};
/// use steadfast_store::queue::DeadLetterFilter;
///
/// let old = DeadLetterFilter::all()
///     .topic("emails.Send")
///     .older_than(SystemTime::now() - Duration::from_secs(7 * 86_400));
/// assert_eq!(old.topic.as_deref(), Some("emails.Send"));
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct DeadLetterFilter {
    /// Only this one.
    pub id: Option<i64>,
    /// Only this topic's.
    pub topic: Option<String>,
    /// Only those dead-lettered before this time.
    pub older_than: Option<SystemTime>,
    /// At most this many (oldest first).
    pub limit: Option<u32>,
}

impl DeadLetterFilter {
    /// Every dead letter.
    pub fn all() -> Self {
        DeadLetterFilter::default()
    }

    /// The dead letter `id`.
    pub fn id(id: i64) -> Self {
        DeadLetterFilter {
            id: Some(id),
            ..Self::default()
        }
    }

    /// Only `topic`'s.
    pub fn topic(mut self, topic: impl Into<String>) -> Self {
        self.topic = Some(topic.into());
        self
    }

    /// Only those dead-lettered before `at`.
    pub fn older_than(mut self, at: SystemTime) -> Self {
        self.older_than = Some(at);
        self
    }

    /// At most `n`.
    pub fn limit(mut self, n: u32) -> Self {
        self.limit = Some(n);
        self
    }
}

/// A topic's counts.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct TopicStats {
    /// The topic.
    pub topic: String,
    /// Messages deliverable now.
    pub ready: u64,
    /// Messages waiting for their not-before time or their next attempt.
    pub scheduled: u64,
    /// Messages leased to a consumer.
    pub leased: u64,
    /// Dead letters.
    pub dead: u64,
    /// When the oldest live message (ready, scheduled or leased) was enqueued.
    pub oldest_at: Option<SystemTime>,
    /// Since when the longest-waiting ready message has been deliverable (its lag is now
    /// minus this).
    pub ready_since: Option<SystemTime>,
}

/// A message as a store receives it (times in ms since the Unix epoch).
#[derive(Debug, Clone)]
pub struct NewMessage {
    /// Its topic.
    pub topic: String,
    /// Its dedupe key.
    pub dedupe_key: Option<String>,
    /// Its payload.
    pub payload: Vec<u8>,
    /// Deliveries it may have.
    pub max_attempts: u32,
    /// When it may first be delivered.
    pub visible_at_ms: i64,
    /// Now.
    pub enqueued_at_ms: i64,
}

/// A live message as an operator sees it (`steadfast queue list|peek`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Message {
    /// Its id.
    pub id: i64,
    /// Its topic.
    pub topic: String,
    /// Its dedupe key.
    pub dedupe_key: Option<String>,
    /// Its payload.
    pub payload: Vec<u8>,
    /// Deliveries so far.
    pub attempts: u32,
    /// Deliveries it may have.
    pub max_attempts: u32,
    /// Whether a consumer holds it now.
    pub leased: bool,
    /// When it is next deliverable (or its lease ends).
    pub visible_at: SystemTime,
    /// When it was enqueued.
    pub enqueued_at: SystemTime,
    /// Every failed delivery, in order.
    pub history: Vec<AttemptRecord>,
}

/// Which live messages [`Queue::messages`] lists.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct MessageFilter {
    /// Only this message.
    pub id: Option<i64>,
    /// Only this topic's.
    pub topic: Option<String>,
    /// At most this many (all when `None`).
    pub limit: Option<u32>,
}

impl MessageFilter {
    /// Every live message.
    pub fn all() -> Self {
        MessageFilter::default()
    }

    /// The message `id`.
    pub fn id(id: i64) -> Self {
        MessageFilter {
            id: Some(id),
            ..MessageFilter::default()
        }
    }

    /// Only `topic`'s.
    pub fn topic(mut self, topic: impl Into<String>) -> Self {
        self.topic = Some(topic.into());
        self
    }

    /// At most `n`.
    pub fn limit(mut self, n: u32) -> Self {
        self.limit = Some(n);
        self
    }
}

/// What a store's [`lease`](QueueStore::lease) did: the messages it leased, and how many
/// expired last deliveries it dead-lettered on the way.
#[derive(Debug, Clone, Default)]
pub struct Leases {
    /// The messages leased, by id.
    pub leased: Vec<Leased>,
    /// Messages whose last delivery's lease had expired, now dead letters.
    pub buried: u64,
}

/// A message leased by a store: a [`Lease`] with ms times.
#[derive(Debug, Clone)]
pub struct Leased {
    /// Its id.
    pub id: i64,
    /// Its topic.
    pub topic: String,
    /// Its dedupe key.
    pub dedupe_key: Option<String>,
    /// Its payload.
    pub payload: Vec<u8>,
    /// This delivery, from 1.
    pub attempt: u32,
    /// Deliveries it may have.
    pub max_attempts: u32,
    /// When it was enqueued.
    pub enqueued_at_ms: i64,
}

/// Where queued messages and dead letters live: memory, SQLite, PostgreSQL, or your own.
///
/// Every change to a leased message names the lease by `(id, attempt)`: it applies only if the
/// message is still leased for that delivery, so a consumer whose lease expired changes
/// nothing. Each method is one transaction.
pub trait QueueStore: Send + Sync + 'static {
    /// Stores the messages (one transaction); for each, in order, `(id, true)`, or the live
    /// message of its topic with its dedupe key and `false`.
    fn enqueue<'a>(&'a self, messages: &'a [NewMessage]) -> StoreFuture<'a, Vec<(i64, bool)>>;

    /// Leases up to `n` of `topic`'s messages visible at `now_ms` (oldest first) until
    /// `until_ms`, counting a delivery each. A message whose lease expired first gets a
    /// `lease expired` entry in its history; one whose lease expired on its last delivery is
    /// dead-lettered instead of delivered.
    fn lease<'a>(
        &'a self,
        topic: &'a str,
        n: u32,
        now_ms: i64,
        until_ms: i64,
    ) -> StoreFuture<'a, Leases>;

    /// Removes each message `(id, attempt)` names if still leased for that delivery (one
    /// transaction); the pairs that were.
    fn ack<'a>(&'a self, leases: &'a [(i64, u32)]) -> StoreFuture<'a, Vec<(i64, u32)>>;

    /// Extends the lease for `attempt` to `until_ms`.
    fn extend(&self, id: i64, attempt: u32, until_ms: i64) -> StoreFuture<'_, bool>;

    /// Records the failure and makes the message visible again at `visible_at_ms`.
    fn retry_later<'a>(
        &'a self,
        id: i64,
        failure: &'a AttemptRecord,
        visible_at_ms: i64,
    ) -> StoreFuture<'a, bool>;

    /// Records the failure and moves the message to the dead letters (one transaction);
    /// the dead letter's id.
    fn bury<'a>(
        &'a self,
        id: i64,
        failure: &'a AttemptRecord,
        reason: &'a str,
    ) -> StoreFuture<'a, Option<i64>>;

    /// The dead letters `filter` names, oldest first.
    fn dead_letters<'a>(&'a self, filter: &'a DeadLetterFilter)
    -> StoreFuture<'a, Vec<DeadLetter>>;

    /// Moves the dead letters `filter` names back to their topics as new messages (no
    /// attempts, no history, visible at `now_ms`, `max_attempts` each); how many.
    fn redrive<'a>(
        &'a self,
        filter: &'a DeadLetterFilter,
        now_ms: i64,
        max_attempts: &'a (dyn Fn(&DeadLetter) -> u32 + Sync),
    ) -> StoreFuture<'a, u64>;

    /// Deletes the dead letters `filter` names; how many.
    fn purge<'a>(&'a self, filter: &'a DeadLetterFilter) -> StoreFuture<'a, u64>;

    /// Counts per topic (`topic`: only that one).
    fn stats<'a>(&'a self, topic: Option<&'a str>, now_ms: i64)
    -> StoreFuture<'a, Vec<TopicStats>>;

    /// The live messages `filter` names (leased or not), by id, without leasing them.
    fn messages<'a>(&'a self, filter: &'a MessageFilter) -> StoreFuture<'a, Vec<Message>>;

    /// Deletes `topic`'s messages that are not leased (a leased one's handler answers as
    /// usual); how many.
    fn purge_messages<'a>(&'a self, topic: &'a str) -> StoreFuture<'a, u64>;
}

impl<S: QueueStore + ?Sized> QueueStore for Arc<S> {
    fn enqueue<'a>(&'a self, messages: &'a [NewMessage]) -> StoreFuture<'a, Vec<(i64, bool)>> {
        (**self).enqueue(messages)
    }
    fn lease<'a>(
        &'a self,
        topic: &'a str,
        n: u32,
        now_ms: i64,
        until_ms: i64,
    ) -> StoreFuture<'a, Leases> {
        (**self).lease(topic, n, now_ms, until_ms)
    }
    fn ack<'a>(&'a self, leases: &'a [(i64, u32)]) -> StoreFuture<'a, Vec<(i64, u32)>> {
        (**self).ack(leases)
    }
    fn extend(&self, id: i64, attempt: u32, until_ms: i64) -> StoreFuture<'_, bool> {
        (**self).extend(id, attempt, until_ms)
    }
    fn retry_later<'a>(
        &'a self,
        id: i64,
        failure: &'a AttemptRecord,
        visible_at_ms: i64,
    ) -> StoreFuture<'a, bool> {
        (**self).retry_later(id, failure, visible_at_ms)
    }
    fn bury<'a>(
        &'a self,
        id: i64,
        failure: &'a AttemptRecord,
        reason: &'a str,
    ) -> StoreFuture<'a, Option<i64>> {
        (**self).bury(id, failure, reason)
    }
    fn dead_letters<'a>(
        &'a self,
        filter: &'a DeadLetterFilter,
    ) -> StoreFuture<'a, Vec<DeadLetter>> {
        (**self).dead_letters(filter)
    }
    fn redrive<'a>(
        &'a self,
        filter: &'a DeadLetterFilter,
        now_ms: i64,
        max_attempts: &'a (dyn Fn(&DeadLetter) -> u32 + Sync),
    ) -> StoreFuture<'a, u64> {
        (**self).redrive(filter, now_ms, max_attempts)
    }
    fn purge<'a>(&'a self, filter: &'a DeadLetterFilter) -> StoreFuture<'a, u64> {
        (**self).purge(filter)
    }
    fn stats<'a>(
        &'a self,
        topic: Option<&'a str>,
        now_ms: i64,
    ) -> StoreFuture<'a, Vec<TopicStats>> {
        (**self).stats(topic, now_ms)
    }
    fn messages<'a>(&'a self, filter: &'a MessageFilter) -> StoreFuture<'a, Vec<Message>> {
        (**self).messages(filter)
    }
    fn purge_messages<'a>(&'a self, topic: &'a str) -> StoreFuture<'a, u64> {
        (**self).purge_messages(topic)
    }
}

/// What can go wrong with the queue.
#[derive(Debug)]
#[non_exhaustive]
pub enum QueueError {
    /// The store failed.
    Store(StoreError),
    /// The topic is not a key (`emails.Send`).
    Topic(steadfast::key::KeyError),
    /// The lease is no longer held: it expired and the message went to another delivery (or
    /// was dead-lettered). At-least-once: the work may be done twice.
    LeaseLost {
        /// The message.
        id: i64,
        /// The delivery the lease was for.
        attempt: u32,
    },
    /// The payload could not be written as JSON.
    Json(serde_json::Error),
}

impl std::fmt::Display for QueueError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            QueueError::Store(e) => write!(f, "{e}"),
            QueueError::Topic(e) => write!(f, "topic: {e}"),
            QueueError::LeaseLost { id, attempt } => write!(
                f,
                "the lease of message {id} (delivery {attempt}) is no longer held: it expired"
            ),
            QueueError::Json(e) => write!(f, "payload: {e}"),
        }
    }
}

impl std::error::Error for QueueError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            QueueError::Store(e) => Some(e),
            QueueError::Topic(e) => Some(e),
            QueueError::Json(e) => Some(e),
            QueueError::LeaseLost { .. } => None,
        }
    }
}

impl From<StoreError> for QueueError {
    fn from(e: StoreError) -> Self {
        QueueError::Store(e)
    }
}

/// The retry queue over a [`QueueStore`]; cheap to clone (shared).
///
/// See the [module docs](self).
pub struct Queue<S> {
    inner: Arc<Inner<S>>,
}

impl<S> Clone for Queue<S> {
    fn clone(&self) -> Self {
        Queue {
            inner: self.inner.clone(),
        }
    }
}

impl<S> std::fmt::Debug for Queue<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Queue").finish_non_exhaustive()
    }
}

struct Inner<S> {
    store: Arc<S>,
    policies: Policies,
    clock: Arc<dyn Clock>,
    observers: Vec<Arc<dyn Observer>>,
    /// Retries topics whose plan has gate options by the gate's time-windowed rules.
    gate: Option<RetryGate>,
}

impl<S> Clone for Inner<S> {
    fn clone(&self) -> Self {
        Inner {
            store: self.store.clone(),
            policies: self.policies.clone(),
            clock: self.clock.clone(),
            observers: self.observers.clone(),
            gate: self.gate.clone(),
        }
    }
}

impl<S> Inner<S> {
    fn emit(&self, event: DurableEvent<'_>) {
        for o in &self.observers {
            o.on_durable_event(&event);
        }
    }
}

impl<S: QueueStore> Queue<S> {
    /// A queue over `store`, every topic under the library's default plan (3 attempts,
    /// exponential backoff from 100 ms to 10 s, full jitter).
    pub fn new(store: S) -> Self {
        Queue {
            inner: Arc::new(Inner {
                store: Arc::new(store),
                policies: Policies::default(),
                clock: Arc::new(SystemClock),
                observers: Vec::new(),
                gate: None,
            }),
        }
    }

    /// Topics resolve to their plans in `policies` (exact key, namespace, defaults).
    pub fn with_policies(self, policies: Policies) -> Self {
        self.rebuild(|i| i.policies = policies)
    }

    /// Reports deliveries, acks, retries, dead letters, lost leases, redrives and (from
    /// [`observe_depth`](Self::observe_depth)) depths to `observer`, as
    /// [`DurableEvent`]s: `steadfast::observe::MetricsObserver` makes them metrics,
    /// `TracingObserver` logs.
    ///
    /// ```
    /// use steadfast::observe::{DurableEvent, Event, Observer};
    /// use steadfast::Key;
    /// use steadfast_store::queue::Queue;
    /// use steadfast_store::MemoryStore;
    ///
    /// #[derive(Debug)]
    /// struct Dead;
    /// impl Observer for Dead {
    ///     fn on_event(&self, _: &Key, _: &Event) {}
    ///     fn on_durable_event(&self, e: &DurableEvent<'_>) {
    ///         if let DurableEvent::DeadLettered { topic, .. } = e { eprintln!("{topic}: dead"); }
    ///     }
    /// }
    /// let queue = Queue::new(MemoryStore::new()).with_observer(Dead);
    /// # let _ = queue;
    /// ```
    pub fn with_observer(self, observer: impl Observer) -> Self {
        self.rebuild(|i| i.observers.push(Arc::new(observer)))
    }

    /// Retries the messages of topics whose plan names a gate (`gate = { … }`) by the
    /// gate's time-windowed rules instead of the plan's attempt count: each failed delivery
    /// is an attempt at the target `(topic, message id)`; the next delivery waits for the
    /// backoff while the window has quota, for the window's end when it has none, and the
    /// message becomes a dead letter when the gate says `exhausted`. An ack clears the
    /// message's record. A topic's deliveries are bounded by its gate's `max_retries + 1`.
    ///
    /// ```
    /// use steadfast::gate::GateOptions;
    /// use steadfast_store::queue::Queue;
    /// use steadfast_store::{MemoryStore, RetryGate};
    ///
    /// let store = MemoryStore::new();
    /// let gate = RetryGate::new(store.clone(), GateOptions::default())?;
    /// let queue = Queue::new(store).with_gate(gate);
    /// # let _ = queue;
    /// # Ok::<(), steadfast::ConfigError>(())
    /// ```
    pub fn with_gate(self, gate: RetryGate) -> Self {
        self.rebuild(|i| i.gate = Some(gate))
    }

    /// The gate and options `topic`'s messages are retried by, if it is gated.
    fn gated(&self, topic: &str) -> Option<(&RetryGate, &GateOptions)> {
        let gate = self.inner.gate.as_ref()?;
        let options = self.inner.policies.resolve(topic).plan().gate_options()?;
        Some((gate, options))
    }

    /// Reads the time from `clock` (tests: a [`ManualClock`](crate::ManualClock)).
    pub fn with_clock(self, clock: impl Clock) -> Self {
        self.rebuild(|i| i.clock = Arc::new(clock))
    }

    /// This queue with `f` applied to its settings (clones made before keep theirs).
    fn rebuild(self, f: impl FnOnce(&mut Inner<S>)) -> Self {
        let mut inner = Arc::unwrap_or_clone(self.inner);
        f(&mut inner);
        Queue {
            inner: Arc::new(inner),
        }
    }

    /// The store.
    pub fn store(&self) -> &S {
        &self.inner.store
    }

    fn now_ms(&self) -> i64 {
        to_ms(self.inner.clock.now())
    }

    fn plan(&self, topic: &str) -> Result<&steadfast::policy::Plan, QueueError> {
        Key::parse(topic).map_err(QueueError::Topic)?;
        Ok(self.inner.policies.resolve(topic).plan())
    }

    /// Deliveries a message of `topic` may have (its plan's `max_attempts`).
    pub fn max_attempts(&self, topic: &str) -> u32 {
        match self.gated(topic) {
            Some((_, options)) => options.max_retries.saturating_add(1),
            None => deliveries(self.inner.policies.resolve(topic).plan()),
        }
    }

    /// The time limit of a handler for `topic`, if its plan has an attempt timeout.
    pub fn attempt_timeout(&self, topic: &str) -> Option<Duration> {
        self.inner
            .policies
            .resolve(topic)
            .plan()
            .retry()
            .attempt_timeout()
    }

    /// Stores `payload` for `topic`.
    pub async fn enqueue(
        &self,
        topic: &str,
        payload: impl Into<Vec<u8>>,
        options: EnqueueOptions,
    ) -> Result<Enqueued, QueueError> {
        let mut done = self.enqueue_many(topic, [(payload, options)]).await?;
        done.pop()
            .ok_or_else(|| StoreError::Unexpected("no answer to the enqueue".into()).into())
    }

    /// Stores several messages for `topic` in one transaction (one round trip for those
    /// without a dedupe key); what each enqueue did, in order.
    ///
    /// ```
    /// use steadfast_store::queue::{EnqueueOptions, Queue};
    /// use steadfast_store::MemoryStore;
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let queue = Queue::new(MemoryStore::new());
    /// let done = queue
    ///     .enqueue_many("emails.Send", (0..3).map(|i| (vec![i], EnqueueOptions::new())))
    ///     .await?;
    /// assert_eq!(done.len(), 3);
    /// # Ok(()) }
    /// ```
    pub async fn enqueue_many<P: Into<Vec<u8>>>(
        &self,
        topic: &str,
        messages: impl IntoIterator<Item = (P, EnqueueOptions)>,
    ) -> Result<Vec<Enqueued>, QueueError> {
        self.plan(topic)?;
        let max_attempts = self.max_attempts(topic);
        let now = self.now_ms();
        let messages: Vec<NewMessage> = messages
            .into_iter()
            .map(|(payload, options)| NewMessage {
                topic: topic.to_owned(),
                dedupe_key: options.dedupe_key,
                payload: payload.into(),
                max_attempts,
                visible_at_ms: options.not_before.map_or(now, to_ms),
                enqueued_at_ms: now,
            })
            .collect();
        if messages.is_empty() {
            return Ok(Vec::new());
        }
        let done = self.inner.store.enqueue(&messages).await?;
        if done.len() != messages.len() {
            return Err(StoreError::Unexpected(format!(
                "{} answers to {} enqueues",
                done.len(),
                messages.len()
            ))
            .into());
        }
        Ok(done
            .into_iter()
            .map(|(id, new)| {
                if new {
                    Enqueued::New(id)
                } else {
                    Enqueued::Duplicate(id)
                }
            })
            .collect())
    }

    /// Stores `value` as JSON for `topic`.
    pub async fn enqueue_json<T: Serialize + ?Sized>(
        &self,
        topic: &str,
        value: &T,
        options: EnqueueOptions,
    ) -> Result<Enqueued, QueueError> {
        let payload = serde_json::to_vec(value).map_err(QueueError::Json)?;
        self.enqueue(topic, payload, options).await
    }

    /// Leases up to `n` ready messages of `topic` for `visibility`.
    pub async fn lease(
        &self,
        topic: &str,
        n: u32,
        visibility: Duration,
    ) -> Result<Vec<Lease>, QueueError> {
        self.plan(topic)?;
        let now = self.now_ms();
        let until = after(now, visibility);
        let Leases { leased, buried } = self.inner.store.lease(topic, n, now, until).await?;
        if !self.inner.observers.is_empty() {
            if buried > 0 {
                self.inner.emit(DurableEvent::DeadLettered {
                    topic,
                    count: buried,
                    reason: "lease_expired",
                });
            }
            for l in &leased {
                self.inner.emit(DurableEvent::Delivered {
                    topic,
                    attempt: l.attempt,
                });
            }
        }
        Ok(leased
            .into_iter()
            .map(|l| Lease {
                id: l.id,
                topic: l.topic,
                payload: l.payload,
                attempt: l.attempt,
                max_attempts: l.max_attempts,
                dedupe_key: l.dedupe_key,
                enqueued_at: from_ms(l.enqueued_at_ms),
                until: from_ms(until),
            })
            .collect())
    }

    /// Done: removes the message.
    pub async fn ack(&self, lease: &Lease) -> Result<(), QueueError> {
        if self.ack_many(std::slice::from_ref(lease)).await?[0] {
            Ok(())
        } else {
            Err(lost(lease))
        }
    }

    /// Acks several leases in one transaction: for each, in order, `true` if it was acked,
    /// `false` if its lease was lost (it expired and the message went to another delivery).
    ///
    /// ```
    /// use std::time::Duration;
    /// use steadfast_store::queue::{EnqueueOptions, Queue};
    /// use steadfast_store::MemoryStore;
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let queue = Queue::new(MemoryStore::new());
    /// queue.enqueue_many("emails.Send", (0..3).map(|i| (vec![i], EnqueueOptions::new()))).await?;
    /// let leases = queue.lease("emails.Send", 10, Duration::from_secs(30)).await?;
    /// assert_eq!(queue.ack_many(&leases).await?, [true, true, true]);
    /// # Ok(()) }
    /// ```
    pub async fn ack_many(&self, leases: &[Lease]) -> Result<Vec<bool>, QueueError> {
        if leases.is_empty() {
            return Ok(Vec::new());
        }
        let named: Vec<(i64, u32)> = leases.iter().map(|l| (l.id, l.attempt)).collect();
        let acked: std::collections::HashSet<(i64, u32)> =
            self.inner.store.ack(&named).await?.into_iter().collect();
        let answers: Vec<bool> = named.iter().map(|l| acked.contains(l)).collect();
        if self.inner.gate.is_some() {
            for (lease, _) in leases.iter().zip(&answers).filter(|(_, ok)| **ok) {
                if let Some((gate, _)) = self.gated(&lease.topic) {
                    gate.reset(&gate_target(lease)).await?;
                }
            }
        }
        if !self.inner.observers.is_empty() {
            for (lease, &ok) in leases.iter().zip(&answers) {
                if !ok {
                    self.inner.emit(DurableEvent::LeaseLost {
                        topic: &lease.topic,
                    });
                }
            }
            if !acked.is_empty() {
                // A batch is of one topic as a worker leases it; count each topic's own.
                let mut counts: Vec<(&str, u64)> = Vec::new();
                for (lease, _) in leases.iter().zip(&answers).filter(|(_, ok)| **ok) {
                    match counts.iter_mut().find(|(t, _)| *t == lease.topic) {
                        Some((_, n)) => *n += 1,
                        None => counts.push((&lease.topic, 1)),
                    }
                }
                for (topic, count) in counts {
                    self.inner.emit(DurableEvent::Acked { topic, count });
                }
            }
        }
        Ok(answers)
    }

    /// Keeps the message hidden for `visibility` from now (a long handler).
    pub async fn extend(&self, lease: &mut Lease, visibility: Duration) -> Result<(), QueueError> {
        let until = after(self.now_ms(), visibility);
        if self
            .inner
            .store
            .extend(lease.id, lease.attempt, until)
            .await?
        {
            lease.until = from_ms(until);
            Ok(())
        } else {
            Err(self.lost(lease))
        }
    }

    /// The error of an answer that came too late, reported to the observers.
    fn lost(&self, lease: &Lease) -> QueueError {
        self.inner.emit(DurableEvent::LeaseLost {
            topic: &lease.topic,
        });
        lost(lease)
    }

    /// Failed: delivers it again after the topic's backoff, or, when `retryable` is false or
    /// this was its last delivery, dead-letters it with its history.
    pub async fn nack(
        &self,
        lease: &Lease,
        error: &str,
        retryable: bool,
    ) -> Result<Nacked, QueueError> {
        let plan = self.plan(&lease.topic)?;
        let now = self.now_ms();
        let failure = AttemptRecord {
            attempt: lease.attempt,
            at_ms: now,
            error: error.to_owned(),
        };
        let mut delay = if retryable && lease.attempt < lease.max_attempts {
            delay_before(plan.retry().backoff().clone(), lease.attempt)
        } else {
            None
        };
        let mut gate_says = None;
        if let (Some((gate, options)), true) = (self.gated(&lease.topic), retryable) {
            let target = gate_target(lease);
            // This delivery was an attempt: count it and keep its failure. A delivery the
            // gate would have refused (a redrive, a lease taken early) is not counted.
            match gate.acquire_with(&target, options).await {
                Ok(permit) => permit.failed(error).await?,
                Err(GateError::Denied(_)) => {}
                Err(GateError::Store(e)) => return Err(e.into()),
            }
            let decision = gate.check_with(&target, options).await?;
            let now_at = from_ms(now);
            delay = match decision.next_allowed_at {
                _ if lease.attempt >= lease.max_attempts => None,
                _ if decision.allowed => delay.or(Some(Duration::ZERO)),
                Some(at) => Some(at.duration_since(now_at).unwrap_or_default()),
                None => None,
            };
            gate_says = Some(decision);
        }
        match delay {
            Some(delay) => {
                let at = after(now, delay);
                if self.inner.store.retry_later(lease.id, &failure, at).await? {
                    self.inner.emit(DurableEvent::Retried {
                        topic: &lease.topic,
                        attempt: lease.attempt,
                        delay,
                    });
                    Ok(Nacked::Retry { at: from_ms(at) })
                } else {
                    Err(self.lost(lease))
                }
            }
            None => {
                let reason = if !retryable {
                    format!("not retryable: {error}")
                } else if let Some(d) = gate_says.filter(|d| !d.allowed) {
                    format!(
                        "the gate said {} after {} attempts; last: {error}",
                        d.reason.as_str(),
                        d.attempts
                    )
                } else if lease.attempt >= lease.max_attempts {
                    format!("{} attempts failed; last: {error}", lease.attempt)
                } else {
                    format!("the backoff stopped; last: {error}")
                };
                match self.inner.store.bury(lease.id, &failure, &reason).await? {
                    Some(id) => {
                        self.inner.emit(DurableEvent::DeadLettered {
                            topic: &lease.topic,
                            count: 1,
                            reason: if retryable {
                                "exhausted"
                            } else {
                                "not_retryable"
                            },
                        });
                        Ok(Nacked::DeadLettered { id })
                    }
                    None => Err(self.lost(lease)),
                }
            }
        }
    }

    /// The dead letters `filter` names, oldest first.
    pub async fn dead_letters(
        &self,
        filter: &DeadLetterFilter,
    ) -> Result<Vec<DeadLetter>, QueueError> {
        Ok(self.inner.store.dead_letters(filter).await?)
    }

    /// The dead letter `id`, with its payload and history.
    pub async fn dead_letter(&self, id: i64) -> Result<Option<DeadLetter>, QueueError> {
        Ok(self
            .inner
            .store
            .dead_letters(&DeadLetterFilter::id(id))
            .await?
            .pop())
    }

    /// Sends the dead letters `filter` names back to their topics, counters reset, each
    /// allowed the deliveries its topic's plan gives now; how many.
    pub async fn redrive(&self, filter: &DeadLetterFilter) -> Result<u64, QueueError> {
        self.redrive_with(filter, |d| self.max_attempts(&d.topic))
            .await
    }

    /// Sends the dead letters `filter` names back to their topics, counters reset, each
    /// allowed `max_attempts(dead_letter)` deliveries (at least 1); how many. `steadfast dlq
    /// redrive` without a policy file gives each the deliveries it was allowed before:
    ///
    /// ```
    /// use steadfast_store::queue::{DeadLetterFilter, Queue};
    /// use steadfast_store::MemoryStore;
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let queue = Queue::new(MemoryStore::new());
    /// let moved = queue.redrive_with(&DeadLetterFilter::all(), |d| d.max_attempts).await?;
    /// assert_eq!(moved, 0);
    /// # Ok(()) }
    /// ```
    pub async fn redrive_with(
        &self,
        filter: &DeadLetterFilter,
        max_attempts: impl Fn(&DeadLetter) -> u32 + Sync,
    ) -> Result<u64, QueueError> {
        let max = |d: &DeadLetter| max_attempts(d).max(1);
        let count = self
            .inner
            .store
            .redrive(filter, self.now_ms(), &max)
            .await?;
        if count > 0 {
            self.inner.emit(DurableEvent::Redriven { count });
        }
        Ok(count)
    }

    /// Deletes the dead letters `filter` names; how many.
    pub async fn purge(&self, filter: &DeadLetterFilter) -> Result<u64, QueueError> {
        Ok(self.inner.store.purge(filter).await?)
    }

    /// Deletes dead letters older than `retention`; how many.
    pub async fn purge_older_than(&self, retention: Duration) -> Result<u64, QueueError> {
        let cutoff = self.inner.clock.now() - retention;
        self.purge(&DeadLetterFilter::all().older_than(cutoff))
            .await
    }

    /// Counts per topic, or for one.
    pub async fn stats(&self, topic: Option<&str>) -> Result<Vec<TopicStats>, QueueError> {
        Ok(self.inner.store.stats(topic, self.now_ms()).await?)
    }

    /// The live messages `filter` names, by id, without leasing them.
    ///
    /// ```
    /// use steadfast_store::queue::{EnqueueOptions, MessageFilter, Queue};
    /// use steadfast_store::MemoryStore;
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let queue = Queue::new(MemoryStore::new());
    /// queue.enqueue("emails.Send", b"hi".to_vec(), EnqueueOptions::new()).await?;
    /// let live = queue.messages(&MessageFilter::all().topic("emails.Send")).await?;
    /// assert_eq!((live.len(), live[0].attempts), (1, 0));
    /// # Ok(()) }
    /// ```
    pub async fn messages(&self, filter: &MessageFilter) -> Result<Vec<Message>, QueueError> {
        Ok(self.inner.store.messages(filter).await?)
    }

    /// Deletes `topic`'s messages that are not leased; how many.
    pub async fn purge_messages(&self, topic: &str) -> Result<u64, QueueError> {
        Ok(self.inner.store.purge_messages(topic).await?)
    }

    /// Reads every topic's [`stats`](Self::stats) and reports each to the observers as a
    /// [`DurableEvent::QueueDepth`] (gauges, with `MetricsObserver`); call it from a timer.
    pub async fn observe_depth(&self) -> Result<Vec<TopicStats>, QueueError> {
        let stats = self.stats(None).await?;
        let now = self.inner.clock.now();
        for t in &stats {
            self.inner.emit(DurableEvent::QueueDepth {
                topic: &t.topic,
                ready: t.ready,
                scheduled: t.scheduled,
                leased: t.leased,
                dead: t.dead,
                oldest: t
                    .oldest_at
                    .map(|at| now.duration_since(at).unwrap_or_default()),
            });
        }
        Ok(stats)
    }
}

/// The gate's target for a message of a gated topic: the topic and the message's id (a
/// redriven message is new, so it starts with a clear record).
fn gate_target(lease: &Lease) -> Target {
    Target::new(lease.topic.clone(), lease.id.to_string())
}

/// Deliveries a message under `plan` may have: its `max_attempts` (at least 1, validated),
/// unbounded as `u32::MAX`.
fn deliveries(plan: &steadfast::policy::Plan) -> u32 {
    plan.retry().max_attempts().unwrap_or(u32::MAX)
}

/// `d` after `ms` (ms since the Unix epoch), saturating.
fn after(ms: i64, d: Duration) -> i64 {
    ms.saturating_add(i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

fn lost(lease: &Lease) -> QueueError {
    QueueError::LeaseLost {
        id: lease.id,
        attempt: lease.attempt,
    }
}

/// The wait after delivery `attempt` failed: the topic's backoff, its `attempt`-th delay
/// (`None`: the backoff stops).
fn delay_before(options: steadfast::backoff::BackoffOptions, attempt: u32) -> Option<Duration> {
    let mut backoff = Backoff::new(options).ok()?;
    let mut delay = None;
    for _ in 0..attempt {
        delay = Some(backoff.next_after(None)?);
    }
    delay
}
