//! The durable retry queue: messages per second through enqueue → lease → ack, on a SQLite
//! file and on PostgreSQL. One producer enqueues in batches while 4 [`Worker`]s lease in
//! batches, run a handler that does nothing, and ack what finished together in one
//! transaction. A call is one message; the report's `ops_per_sec` is messages per second.
//! No peer in the comparison has a durable queue; the bar is the (SQLite ≥ 5 000/s,
//! PostgreSQL ≥ 10 000/s).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use steadfast_store::SqliteStore;
use steadfast_store::queue::{EnqueueOptions, Failure, Queue, QueueStore, Worker};
use tokio::runtime::Runtime;
use tokio::sync::watch;

use crate::Runner;
use crate::gate::{TempDb, io_runtime, postgres_store};

/// The topic every message goes to.
const TOPIC: &str = "bench.Queue";
/// Workers on the topic.
const WORKERS: usize = 4;
/// Messages per enqueue and per lease at most.
const BATCH: u32 = 100;

/// `iters` messages through the queue; `db` (a SQLite file) lives as long as the runner.
fn runner<S: QueueStore + Clone>(
    name: &'static str,
    rt: Runtime,
    queue: Queue<S>,
    db: Option<TempDb>,
) -> Runner {
    Runner {
        name,
        run: Box::new(move |_shared: &Runtime, iters: u64| {
            let _db = &db;
            rt.block_on(async {
                let handled = Arc::new(AtomicU64::new(0));
                // Every message handled: the workers stop, acking what they hold.
                let (all_handled, stop) = watch::channel(false);
                let all_handled = Arc::new(all_handled);
                let start = Instant::now();
                let mut tasks = tokio::task::JoinSet::new();
                for _ in 0..WORKERS {
                    let (handled, all_handled) = (handled.clone(), all_handled.clone());
                    let worker = Worker::new(queue.clone(), TOPIC, move |_lease| {
                        if handled.fetch_add(1, Ordering::Relaxed) + 1 == iters {
                            all_handled.send_replace(true);
                        }
                        std::future::ready(Ok::<(), Failure>(()))
                    })
                    .concurrency(BATCH as usize)
                    .batch(BATCH)
                    .poll_interval(Duration::from_millis(1));
                    let mut stop = stop.clone();
                    tasks.spawn(async move {
                        let shutdown = async move {
                            let _ = stop.wait_for(|done| *done).await;
                        };
                        worker.run(shutdown).await.expect("a worker").acked
                    });
                }
                let mut left = iters;
                while left > 0 {
                    let n = left.min(u64::from(BATCH));
                    let batch = (0..n).map(|i| (i.to_le_bytes().to_vec(), EnqueueOptions::new()));
                    queue.enqueue_many(TOPIC, batch).await.expect("enqueued");
                    left -= n;
                }
                let mut acked = 0;
                while let Some(done) = tasks.join_next().await {
                    acked += done.expect("a worker task");
                }
                assert_eq!(acked, iters, "every message acked once");
                start.elapsed()
            })
        }),
    }
}

/// The queue on a SQLite file (`synchronous` NORMAL, the default).
pub(crate) fn sqlite() -> Vec<Runner> {
    let rt = io_runtime();
    let db = TempDb::new();
    let store = rt
        .block_on(SqliteStore::open(&db.0))
        .expect("a SQLite file");
    vec![runner(
        "steadfast-sqlite-4-workers",
        rt,
        Queue::new(store),
        Some(db),
    )]
}

/// The queue on PostgreSQL; none without a URL. The bench's table starts empty and vacuumed:
/// a run killed midway leaves messages behind, and every run leaves dead rows (autovacuum may
/// be off, as on the machine the numbers come from, and a bloated table reads 500 messages/s).
pub(crate) fn postgres() -> Vec<Runner> {
    let Some((rt, store)) = postgres_store("queue-postgres") else {
        return Vec::new();
    };
    emptied(&rt, &store, &[TOPIC]);
    vec![runner(
        "steadfast-postgres-4-workers",
        rt,
        Queue::new(store),
        None,
    )]
}

/// Ready messages behind the backlog runner's topic.
const BACKLOG: u64 = 100_000;

/// enqueue 1 → lease 1 → ack, one message at a time, on a topic holding `backlog` ready
/// messages besides (kept at that size: each call enqueues one and acks one).
fn lease_runner<S: QueueStore + Clone>(
    name: &'static str,
    rt: Runtime,
    queue: Queue<S>,
    topic: &'static str,
    backlog: u64,
    db: Option<TempDb>,
) -> Runner {
    rt.block_on(async {
        fill(&queue, topic, backlog).await;
    });
    let lease = Duration::from_secs(60);
    Runner {
        name,
        run: Box::new(move |_shared: &Runtime, iters: u64| {
            let _db = &db;
            rt.block_on(async {
                let start = Instant::now();
                for i in 0..iters {
                    queue
                        .enqueue(topic, i.to_le_bytes().to_vec(), EnqueueOptions::new())
                        .await
                        .expect("enqueued");
                    let l = queue.lease(topic, 1, lease).await.expect("leased");
                    queue.ack(&l[0]).await.expect("acked");
                }
                start.elapsed()
            })
        }),
    }
}

/// Enqueues `n` messages on `topic`, 1 000 per statement.
async fn fill<S: QueueStore>(queue: &Queue<S>, topic: &str, n: u64) {
    let mut left = n;
    while left > 0 {
        let n = left.min(1_000);
        let batch = (0..n).map(|i| (i.to_le_bytes().to_vec(), EnqueueOptions::new()));
        queue.enqueue_many(topic, batch).await.expect("enqueued");
        left -= n;
    }
}

/// Clears `topics` from a PostgreSQL queue table and vacuums it.
fn emptied(rt: &Runtime, store: &steadfast_store::PostgresStore, topics: &[&str]) {
    rt.block_on(async {
        for topic in topics {
            sqlx::query("DELETE FROM queue_messages WHERE topic = $1")
                .bind(*topic)
                .execute(store.pool())
                .await?;
        }
        sqlx::query("VACUUM ANALYZE queue_messages")
            .execute(store.pool())
            .await
    })
    .expect("an empty, vacuumed queue table");
}

/// Lease + ack on a SQLite file with no other message, and on another holding 100 000
/// ready ones.
pub(crate) fn backlog_sqlite() -> Vec<Runner> {
    [
        ("steadfast-sqlite-empty", "bench.Empty", 0),
        ("steadfast-sqlite-100k-ready", "bench.Backlog", BACKLOG),
    ]
    .into_iter()
    .map(|(name, topic, backlog)| {
        let rt = io_runtime();
        let db = TempDb::new();
        let store = rt
            .block_on(SqliteStore::open(&db.0))
            .expect("a SQLite file");
        lease_runner(name, rt, Queue::new(store), topic, backlog, Some(db))
    })
    .collect()
}

/// The same on PostgreSQL; none without a URL.
pub(crate) fn backlog_postgres() -> Vec<Runner> {
    let topics = [
        ("steadfast-postgres-empty", "bench.Empty", 0),
        ("steadfast-postgres-100k-ready", "bench.Backlog", BACKLOG),
    ];
    let mut runners = Vec::new();
    for (name, topic, backlog) in topics {
        let Some((rt, store)) = postgres_store("lease-backlog-postgres") else {
            return Vec::new();
        };
        if runners.is_empty() {
            emptied(&rt, &store, &["bench.Empty", "bench.Backlog"]);
        }
        runners.push(lease_runner(
            name,
            rt,
            Queue::new(store),
            topic,
            backlog,
            None,
        ));
    }
    runners
}

/// One `Worker` with default settings draining a backlog: each round enqueues `iters`
/// messages first (not timed), then times the worker until it has acked them all.
fn drain_runner<S: QueueStore + Clone>(
    name: &'static str,
    rt: Runtime,
    queue: Queue<S>,
    concurrency: Option<usize>,
    db: Option<TempDb>,
) -> Runner {
    Runner {
        name,
        run: Box::new(move |_shared: &Runtime, iters: u64| {
            let _db = &db;
            rt.block_on(async {
                fill(&queue, TOPIC, iters).await;
                let handled = Arc::new(AtomicU64::new(0));
                let (all_handled, mut stop) = watch::channel(false);
                let counter = handled.clone();
                let mut worker = Worker::new(queue.clone(), TOPIC, move |_lease| {
                    if counter.fetch_add(1, Ordering::Relaxed) + 1 == iters {
                        all_handled.send_replace(true);
                    }
                    std::future::ready(Ok::<(), Failure>(()))
                });
                if let Some(n) = concurrency {
                    worker = worker.concurrency(n);
                }
                let start = Instant::now();
                let shutdown = async move {
                    let _ = stop.wait_for(|done| *done).await;
                };
                let report = worker.run(shutdown).await.expect("a worker");
                assert_eq!(report.acked, iters, "every message acked once");
                start.elapsed()
            })
        }),
    }
}

/// A default `Worker` draining a backlog on a SQLite file.
pub(crate) fn worker_sqlite() -> Vec<Runner> {
    [
        ("steadfast-sqlite-default-worker", None),
        ("steadfast-sqlite-concurrency-1", Some(1)),
    ]
    .into_iter()
    .map(|(name, concurrency)| {
        let rt = io_runtime();
        let db = TempDb::new();
        let store = rt
            .block_on(SqliteStore::open(&db.0))
            .expect("a SQLite file");
        drain_runner(name, rt, Queue::new(store), concurrency, Some(db))
    })
    .collect()
}

/// The same on PostgreSQL; none without a URL.
pub(crate) fn worker_postgres() -> Vec<Runner> {
    let mut runners = Vec::new();
    for (name, concurrency) in [
        ("steadfast-postgres-default-worker", None),
        ("steadfast-postgres-concurrency-1", Some(1)),
    ] {
        let Some((rt, store)) = postgres_store("worker-postgres") else {
            return Vec::new();
        };
        if runners.is_empty() {
            emptied(&rt, &store, &[TOPIC]);
        }
        runners.push(drain_runner(name, rt, Queue::new(store), concurrency, None));
    }
    runners
}
