//! A worker: leases a topic's messages in batches and runs a handler on each, several at once.

use std::future::Future;
use std::time::Duration;

use tokio::task::JoinSet;

use super::{Lease, Nacked, Queue, QueueError, QueueStore};

/// Handlers a [`Worker`] runs at once unless told otherwise.
pub const DEFAULT_CONCURRENCY: usize = 16;

/// Why a handler failed: its message is retried by the topic's policy, or not.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    /// The error text kept in the message's history.
    pub message: String,
    /// Whether another delivery may succeed.
    pub retryable: bool,
}

impl Failure {
    /// A transient failure: another delivery may succeed.
    pub fn retryable(message: impl Into<String>) -> Self {
        Failure {
            message: message.into(),
            retryable: true,
        }
    }

    /// A failure every delivery would have: the message goes to the dead letters at once.
    pub fn permanent(message: impl Into<String>) -> Self {
        Failure {
            message: message.into(),
            retryable: false,
        }
    }
}

/// What a worker did before it stopped.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct WorkerReport {
    /// Messages its handler finished and it acked.
    pub acked: u64,
    /// Failures scheduled for another delivery.
    pub retried: u64,
    /// Messages it dead-lettered.
    pub dead_lettered: u64,
    /// Answers that came after the lease had expired (the message went to another delivery).
    pub leases_lost: u64,
}

/// Runs `handler` on `topic`'s messages: up to `concurrency` at once, leased in batches,
/// each lease extended while its handler runs, and each handler under the topic's attempt
/// timeout (a timeout is a retryable failure). Handlers that finish together are acked in
/// one transaction.
///
/// [`run`](Self::run) stops leasing when `shutdown` completes, lets the handlers in flight
/// finish and answers each (ack or nack), then returns: nothing leased is left behind. The
/// worker polls `shutdown` throughout, even while it waits on the store, so `shutdown` may
/// itself use the store (stop once the topic is empty).
///
/// ```
/// use std::time::Duration;
/// use steadfast_store::queue::{EnqueueOptions, Failure, Queue, Worker};
/// use steadfast_store::MemoryStore;
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let queue = Queue::new(MemoryStore::new());
/// queue.enqueue("emails.Send", b"hello".to_vec(), EnqueueOptions::new()).await?;
/// let worker = Worker::new(queue.clone(), "emails.Send", |lease| async move {
///     if lease.payload.is_empty() { Err(Failure::permanent("empty")) } else { Ok(()) }
/// })
/// .concurrency(4)
/// .poll_interval(Duration::from_millis(10));
/// let report = worker.run(tokio::time::sleep(Duration::from_millis(50))).await?;
/// assert_eq!(report.acked, 1);
/// # Ok(()) }
/// ```
pub struct Worker<S, H> {
    queue: Queue<S>,
    topic: String,
    handler: H,
    concurrency: usize,
    batch: u32,
    visibility: Duration,
    poll: Duration,
}

impl<S, H> std::fmt::Debug for Worker<S, H> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Worker")
            .field("topic", &self.topic)
            .field("concurrency", &self.concurrency)
            .field("batch", &self.batch)
            .field("visibility", &self.visibility)
            .finish_non_exhaustive()
    }
}

impl<S, H, Fut> Worker<S, H>
where
    S: QueueStore,
    H: Fn(Lease) -> Fut + Send + Sync + Clone + 'static,
    Fut: Future<Output = Result<(), Failure>> + Send + 'static,
{
    /// A worker for `topic`: 16 handlers at once, batches of up to 32, leases of 30 s,
    /// polling every 100 ms when the topic is empty. (One handler at a time leases and acks
    /// each message in a transaction of its own; 16 share them, which is what lets a worker
    /// move thousands of messages a second.)
    pub fn new(queue: Queue<S>, topic: impl Into<String>, handler: H) -> Self {
        Worker {
            queue,
            topic: topic.into(),
            handler,
            concurrency: DEFAULT_CONCURRENCY,
            batch: 32,
            visibility: Duration::from_secs(30),
            poll: Duration::from_millis(100),
        }
    }

    /// Handlers running at once (at least 1).
    pub fn concurrency(mut self, n: usize) -> Self {
        self.concurrency = n.max(1);
        self
    }

    /// Messages leased per round trip at most (at least 1).
    pub fn batch(mut self, n: u32) -> Self {
        self.batch = n.max(1);
        self
    }

    /// How long a lease hides a message; it is extended at half of it while the handler runs.
    pub fn visibility(mut self, d: Duration) -> Self {
        self.visibility = d.max(Duration::from_millis(2));
        self
    }

    /// How long to wait before leasing again when the topic had nothing ready.
    pub fn poll_interval(mut self, d: Duration) -> Self {
        self.poll = d;
        self
    }

    /// Works until `shutdown` completes, then finishes what is in flight.
    pub async fn run(self, shutdown: impl Future<Output = ()>) -> Result<WorkerReport, QueueError>
    where
        S: Clone,
    {
        let mut report = WorkerReport::default();
        let mut running: JoinSet<Result<Answer, QueueError>> = JoinSet::new();
        let mut shutdown = std::pin::pin!(shutdown);
        let mut stopping = false;
        let mut first_error = None;
        // Handlers that finished: acked together, one transaction per round.
        let mut done: Vec<Lease> = Vec::new();
        // The topic's plan, read once: the handler's time limit.
        let timeout = self.queue.attempt_timeout(&self.topic);
        loop {
            if !done.is_empty() {
                let acks = self.queue.ack_many(&done);
                match watching(acks, &mut shutdown, &mut stopping).await {
                    Ok(acked) => {
                        for ok in acked {
                            if ok {
                                report.acked += 1;
                            } else {
                                report.leases_lost += 1;
                            }
                        }
                    }
                    // Not acked: the leases expire and the messages come back (at least once).
                    Err(e) => {
                        first_error.get_or_insert(e);
                    }
                }
                done.clear();
            }
            if !stopping && running.len() < self.concurrency {
                let room = u32::try_from(self.concurrency - running.len()).unwrap_or(u32::MAX);
                let lease = self
                    .queue
                    .lease(&self.topic, room.min(self.batch), self.visibility);
                match watching(lease, &mut shutdown, &mut stopping).await {
                    Ok(leases) if !leases.is_empty() => {
                        for lease in leases {
                            running.spawn(self.handle(lease, timeout));
                        }
                        continue;
                    }
                    Ok(_) => {}
                    Err(e) => {
                        // A store that is down: keep what runs, try again after the interval.
                        first_error.get_or_insert(e);
                    }
                }
            }
            if stopping && running.is_empty() {
                break;
            }
            let mut finished = |joined: Option<Result<Result<Answer, QueueError>, _>>| match joined
            {
                Some(Ok(Ok(Answer::Succeeded(lease)))) => done.push(lease),
                Some(Ok(Ok(answer))) => answer.count(&mut report),
                Some(Ok(Err(e))) => {
                    first_error.get_or_insert(e);
                }
                // The handler panicked: its lease expires and the message comes back (counted
                // as an attempt).
                Some(Err(_)) | None => {}
            };
            tokio::select! {
                joined = running.join_next(), if !running.is_empty() => {
                    finished(joined);
                    // And whatever else finished meanwhile, to ack together.
                    while let Some(joined) = running.try_join_next() {
                        finished(Some(joined));
                    }
                }
                () = &mut shutdown, if !stopping => stopping = true,
                () = tokio::time::sleep(self.poll), if !stopping && running.len() < self.concurrency => {}
            }
        }
        match first_error {
            Some(e) if report == WorkerReport::default() => Err(e),
            _ => Ok(report),
        }
    }

    /// Runs the handler on one lease, extending it meanwhile, and answers it.
    fn handle(
        &self,
        mut lease: Lease,
        timeout: Option<Duration>,
    ) -> impl Future<Output = Result<Answer, QueueError>> + 'static
    where
        S: Clone,
    {
        let queue = self.queue.clone();
        let handler = self.handler.clone();
        let visibility = self.visibility;
        async move {
            let work = handler(lease.clone());
            let work = async move {
                match timeout {
                    Some(t) => tokio::time::timeout(t, work).await.unwrap_or_else(|_| {
                        Err(Failure::retryable(format!("timed out after {t:?}")))
                    }),
                    None => work.await,
                }
            };
            let mut work = std::pin::pin!(work);
            let result = loop {
                tokio::select! {
                    r = &mut work => break r,
                    () = tokio::time::sleep(visibility / 2) => {
                        // Lost already: finish anyway, the answer will say so.
                        let _ = queue.extend(&mut lease, visibility).await;
                    }
                }
            };
            let answer = match result {
                Ok(()) => return Ok(Answer::Succeeded(lease)),
                Err(f) => queue
                    .nack(&lease, &f.message, f.retryable)
                    .await
                    .map(|n| match n {
                        Nacked::Retry { .. } => Answer::Retried,
                        Nacked::DeadLettered { .. } => Answer::DeadLettered,
                    }),
            };
            match answer {
                Err(QueueError::LeaseLost { .. }) => Ok(Answer::Lost),
                other => other,
            }
        }
    }
}

/// Runs `work` to the end while also polling `shutdown`, so a shutdown future that itself
/// waits on the store (a connection from the same pool) is never starved by the worker's own
/// store calls.
async fn watching<T>(
    work: impl Future<Output = T>,
    shutdown: &mut std::pin::Pin<&mut impl Future<Output = ()>>,
    stopping: &mut bool,
) -> T {
    let mut work = std::pin::pin!(work);
    loop {
        tokio::select! {
            biased;
            out = &mut work => return out,
            () = shutdown.as_mut(), if !*stopping => *stopping = true,
        }
    }
}

enum Answer {
    /// To ack (the run loop acks the leases that finished together at once).
    Succeeded(Lease),
    Retried,
    DeadLettered,
    Lost,
}

impl Answer {
    fn count(self, r: &mut WorkerReport) {
        match self {
            Answer::Succeeded(_) => r.acked += 1,
            Answer::Retried => r.retried += 1,
            Answer::DeadLettered => r.dead_lettered += 1,
            Answer::Lost => r.leases_lost += 1,
        }
    }
}
