//! The queue across real processes: workers killed with SIGKILL mid-handler, again and again,
//! lose nothing and dead-letter nothing twice; four worker processes on one PostgreSQL queue
//! never hold one message at once, and bury each expired last delivery once, racing a late
//! ack without both winning.
//!
//! The test binary re-runs itself as the worker (`queue_worker_entry`, selected by
//! `STEADFAST_QUEUE_WORKER`). Workers append one line per event to a shared log, each line one
//! `write` on a file opened for appending, so lines from several processes never interleave
//! and a kill never leaves half a line.

mod common;

use std::collections::{HashMap, HashSet};
use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use common::{SCHEMA, postgres_url, reexec, topic, var, worker_runtime};
use steadfast::Retry;
use steadfast::policy::{Plan, Policies};
use steadfast_store::queue::{
    DeadLetterFilter, EnqueueOptions, Failure, Queue, QueueStore, Worker,
};
use steadfast_store::{PostgresStore, SqliteStore};

const WORKER: &str = "STEADFAST_QUEUE_WORKER";
/// Deliveries a message may have: enough that a message the kills hit again and again is
/// rarely dead-lettered for it, few enough that one that always fails dies soon.
const ATTEMPTS: u32 = 8;

/// Runs this binary's `queue_worker_entry` test as a child with `vars`.
fn worker(vars: &[(&str, String)]) -> Command {
    let mut cmd = reexec("queue_worker_entry", vars);
    cmd.stdout(Stdio::null()).stderr(Stdio::inherit());
    cmd
}

async fn open(db: &str) -> Arc<dyn QueueStore> {
    if db.starts_with("postgres:") {
        Arc::new(PostgresStore::connect_in_schema(db, SCHEMA).await.unwrap())
    } else {
        Arc::new(SqliteStore::open(db).await.unwrap())
    }
}

/// Every topic: `ATTEMPTS` deliveries, 10 ms apart.
fn queue(store: Arc<dyn QueueStore>) -> Queue<Arc<dyn QueueStore>> {
    let retry = Retry::fixed(Duration::from_millis(10))
        .jitter(steadfast::Jitter::None)
        .max_attempts(ATTEMPTS)
        .build()
        .unwrap();
    let policies = Policies::new(retry.clone())
        .with_plan("*", Plan::new(retry))
        .unwrap();
    Queue::new(store).with_policies(policies)
}

fn micros_now() -> u128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_micros()
}

/// Whether `topic` has no live message (ready, scheduled or leased) left.
async fn drained(queue: &Queue<Arc<dyn QueueStore>>, topic: &str) -> bool {
    queue
        .stats(Some(topic))
        .await
        .unwrap()
        .iter()
        .all(|s| s.ready + s.scheduled + s.leased == 0)
}

/// The worker: does nothing unless run by a test below with `STEADFAST_QUEUE_WORKER` set.
///
/// - `crash`: handles messages until killed. A message whose payload is `n` fails for good
///   when `n % 10 == 0`, fails every time (retryably) when `n % 10 == 1`, else succeeds after
///   2 ms. It logs `S id attempt` as a handler starts and `OK id attempt` as it succeeds.
/// - `drain`: the same, then exits once the topic is empty.
/// - `exclusive`: succeeds after 1 ms, logging `L id attempt start_us end_us`; exits once the
///   topic is empty.
/// - `idle`: succeeds at once, logging `I id`; exits once the topic is empty (its leases
///   bury the topic's expired last deliveries).
#[test]
fn queue_worker_entry() {
    let Ok(mode) = std::env::var(WORKER) else {
        return;
    };
    worker_runtime().block_on(async move {
        let queue = queue(open(&var("STEADFAST_DB")).await);
        let topic = var("STEADFAST_TOPIC");
        let log = std::fs::OpenOptions::new()
            .append(true)
            .create(true)
            .open(var("STEADFAST_LOG"))
            .unwrap();
        let log = Arc::new(log);
        let line = move |text: String| (&*log).write_all(text.as_bytes()).unwrap();
        let exclusive = mode == "exclusive";
        let idle = mode == "idle";
        let handler = move |lease: steadfast_store::queue::Lease| {
            let line = line.clone();
            async move {
                let (id, attempt) = (lease.id, lease.attempt);
                if idle {
                    line(format!("I {id}\n"));
                    return Ok(());
                }
                if exclusive {
                    let start = micros_now();
                    tokio::time::sleep(Duration::from_millis(1)).await;
                    line(format!("L {id} {attempt} {start} {}\n", micros_now()));
                    return Ok(());
                }
                line(format!("S {id} {attempt}\n"));
                tokio::time::sleep(Duration::from_millis(2)).await;
                let n: u64 = String::from_utf8_lossy(&lease.payload).parse().unwrap();
                match n % 10 {
                    0 => Err(Failure::permanent("bad payload")),
                    1 => Err(Failure::retryable("dependency down")),
                    _ => {
                        line(format!("OK {id} {attempt}\n"));
                        Ok(())
                    }
                }
            }
        };
        let worker = Worker::new(queue.clone(), topic.clone(), handler)
            .concurrency(8)
            .batch(8)
            .visibility(Duration::from_millis(if exclusive { 30_000 } else { 300 }))
            .poll_interval(Duration::from_millis(5));
        let stop = {
            let (queue, topic) = (queue.clone(), topic.clone());
            async move {
                if mode == "crash" {
                    return std::future::pending().await;
                }
                let deadline = Instant::now() + Duration::from_secs(120);
                while !drained(&queue, &topic).await {
                    assert!(Instant::now() < deadline, "the topic never drained");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            }
        };
        worker.run(stop).await.unwrap();
    });
}

/// `(id, attempt)` of each `prefix` line of the log.
fn entries(log: &str, prefix: &str) -> Vec<Vec<u128>> {
    log.lines()
        .filter_map(|l| l.strip_prefix(prefix))
        .map(|rest| rest.split(' ').map(|f| f.parse().unwrap()).collect())
        .collect()
}

fn file_len(path: &Path) -> u64 {
    std::fs::metadata(path).map_or(0, |m| m.len())
}

/// Enqueues batches while `at_once` worker processes are killed mid-handler together `kills`
/// times, drains the topic with one last worker, and checks every message ended once.
async fn killed_workers_lose_nothing(db: &str, dir: &Path, kills: u32, at_once: usize) {
    let queue = queue(open(db).await);
    let topic = topic("Crash");
    let log_path = dir.join("events.log");
    let vars = |mode: &'static str| {
        vec![
            (WORKER, mode.to_owned()),
            ("STEADFAST_DB", db.to_owned()),
            ("STEADFAST_TOPIC", topic.clone()),
            ("STEADFAST_LOG", log_path.display().to_string()),
        ]
    };
    let mut payload_of: HashMap<i64, u64> = HashMap::new();
    let mut rng = 0x2545_f491_4f6c_dd1d_u64;
    for _ in 0..kills {
        // Keep work waiting, so every worker is killed with handlers in flight.
        let stats = queue.stats(Some(&topic)).await.unwrap();
        if stats.iter().map(|s| s.ready + s.scheduled).sum::<u64>() < 100 {
            let first = payload_of.len() as u64;
            let batch = (first..first + 200).map(|n| (n.to_string(), EnqueueOptions::new()));
            let done = queue.enqueue_many(&topic, batch).await.unwrap();
            for (n, e) in (first..).zip(done) {
                payload_of.insert(e.id(), n);
            }
        }
        let before = file_len(&log_path);
        let mut children: Vec<_> = (0..at_once)
            .map(|_| worker(&vars("crash")).spawn().unwrap())
            .collect();
        while file_len(&log_path) == before {
            for child in &mut children {
                assert!(child.try_wait().unwrap().is_none(), "a worker exited");
            }
            std::thread::sleep(Duration::from_millis(1));
        }
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        std::thread::sleep(Duration::from_millis(2 + rng % 30));
        for child in &mut children {
            child.kill().unwrap(); // SIGKILL
            child.wait().unwrap();
        }
    }
    assert!(
        worker(&vars("drain")).status().unwrap().success(),
        "the drain"
    );
    assert!(drained(&queue, &topic).await);

    let log = std::fs::read_to_string(&log_path).unwrap();
    let started = entries(&log, "S ");
    let succeeded = entries(&log, "OK ");
    let dead = queue
        .dead_letters(&DeadLetterFilter::all().topic(topic.clone()))
        .await
        .unwrap();
    // None dead-lettered twice, and every dead letter keeps its whole history.
    let mut buried = HashSet::new();
    for d in &dead {
        assert!(buried.insert(d.message_id), "{} buried twice", d.message_id);
        assert_eq!(d.history.len() as u32, d.attempts, "{d:?}");
        let attempts: Vec<u32> = d.history.iter().map(|h| h.attempt).collect();
        assert_eq!(attempts, (1..=d.attempts).collect::<Vec<_>>(), "{d:?}");
    }
    // None lost: the topic is empty, so a message not buried was acked, which a worker does
    // only after its handler succeeded.
    let mut ok_count: HashMap<i64, u32> = HashMap::new();
    for e in &succeeded {
        *ok_count.entry(e[0] as i64).or_default() += 1;
    }
    let mut killed_to_death = 0;
    for (&id, &n) in &payload_of {
        let is_dead = buried.contains(&id);
        match n % 10 {
            0 | 1 => assert!(is_dead, "message {id} (payload {n}) always fails"),
            _ if is_dead => {
                // Only kills can bury a message that succeeds: every delivery expired.
                let d = dead.iter().find(|d| d.message_id == id).unwrap();
                assert!(d.reason.contains("lease expired"), "{d:?}");
                killed_to_death += 1;
            }
            _ => assert!(ok_count.contains_key(&id), "message {id} was lost"),
        }
    }
    assert_eq!(buried.len(), dead.len());
    assert!(buried.iter().all(|id| payload_of.contains_key(id)));
    // At least once: a handler ran again only after its earlier delivery's lease expired, so
    // every repeat is counted here.
    let duplicates: u32 = ok_count.values().map(|&n| n - 1).sum();
    // Handlers of messages that succeed which started and never finished: the kills' work.
    let finished: HashSet<(u128, u128)> = succeeded.iter().map(|e| (e[0], e[1])).collect();
    let cut_off = started
        .iter()
        .filter(|e| payload_of[&(e[0] as i64)] % 10 >= 2 && !finished.contains(&(e[0], e[1])))
        .count();
    eprintln!(
        "{kills} kills of {at_once}, {} messages: {} acked, {} dead-lettered ({killed_to_death} by kills \
         alone); {} handler runs, {cut_off} cut off mid-handler, {duplicates} successes \
         repeated after a kill lost their ack",
        payload_of.len(),
        payload_of.len() - dead.len(),
        dead.len(),
        started.len(),
    );
    assert!(
        cut_off >= kills as usize / 4,
        "the kills landed mid-handler: {cut_off}"
    );
}

#[tokio::test]
async fn sigkilled_sqlite_workers_lose_nothing_and_dead_letter_nothing_twice() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("steadfast.db").display().to_string();
    killed_workers_lose_nothing(&db, dir.path(), 50, 1).await;
    let store = SqliteStore::open(&db).await.unwrap();
    let (check,): (String,) = sqlx::query_as("PRAGMA integrity_check")
        .fetch_one(store.pool())
        .await
        .unwrap();
    assert_eq!(check, "ok");
}

#[tokio::test]
async fn sigkilled_postgres_workers_lose_nothing_and_dead_letter_nothing_twice() {
    let Some(url) = postgres_url() else { return };
    let dir = tempfile::tempdir().unwrap();
    killed_workers_lose_nothing(&url, dir.path(), 50, 1).await;
}

#[tokio::test]
async fn four_sigkilled_postgres_workers_at_once_lose_nothing() {
    let Some(url) = postgres_url() else { return };
    let dir = tempfile::tempdir().unwrap();
    killed_workers_lose_nothing(&url, dir.path(), 30, 4).await;
}

#[tokio::test]
async fn four_worker_processes_on_postgres_never_hold_one_message_at_once() {
    let Some(url) = postgres_url() else { return };
    let dir = tempfile::tempdir().unwrap();
    let log_path = dir.path().join("leases.log");
    let queue = queue(open(&url).await);
    let topic = topic("Exclusive");
    let messages = 2000;
    let batch = (0..messages).map(|n: u64| (n.to_string(), EnqueueOptions::new()));
    queue.enqueue_many(&topic, batch).await.unwrap();
    let vars = [
        (WORKER, "exclusive".to_owned()),
        ("STEADFAST_DB", url.clone()),
        ("STEADFAST_TOPIC", topic.clone()),
        ("STEADFAST_LOG", log_path.display().to_string()),
    ];
    let children: Vec<_> = (0..4).map(|_| worker(&vars).spawn().unwrap()).collect();
    for mut child in children {
        assert!(child.wait().unwrap().success());
    }
    let log = std::fs::read_to_string(&log_path).unwrap();
    let mut held: HashMap<u128, Vec<(u128, u128)>> = HashMap::new();
    for e in entries(&log, "L ") {
        held.entry(e[0]).or_default().push((e[2], e[3]));
    }
    assert_eq!(held.len() as u64, messages, "every message handled");
    let mut twice = 0;
    for (id, intervals) in &mut held {
        intervals.sort_unstable();
        for pair in intervals.windows(2) {
            assert!(
                pair[0].1 <= pair[1].0,
                "message {id} held by two workers at once: {pair:?}"
            );
        }
        twice += intervals.len() - 1;
    }
    // Leases of 30 s never expire here: each message is handled exactly once.
    assert_eq!(twice, 0);
}

/// Four worker processes on PostgreSQL find the same 500 expired last deliveries at once
/// while this process acks the even ones late: every message ends exactly once, acked or
/// dead-lettered, never both and never dead-lettered twice.
#[tokio::test]
async fn expired_last_deliveries_are_dead_lettered_once_across_four_processes() {
    // Nothing acked: exactly one dead letter per message.
    expire_together(false).await;
    // Late acks of half race the burying: each message ends once, acked or dead.
    expire_together(true).await;
}

/// 500 messages whose one delivery (leased here) expires at once while 4 worker processes
/// lease the topic and bury them; with `late_acks`, this process acks the even ones meanwhile.
async fn expire_together(late_acks: bool) {
    let Some(url) = postgres_url() else { return };
    let dir = tempfile::tempdir().unwrap();
    let log_path = dir.path().join("idle.log");
    let once = Retry::immediate().max_attempts(1).build().unwrap();
    let policies = Policies::new(once.clone())
        .with_plan("*", Plan::new(once))
        .unwrap();
    let queue = Queue::new(open(&url).await).with_policies(policies);
    let topic = topic("Expired");
    let messages = 500u64;
    let batch = (0..messages).map(|n| (n.to_string(), EnqueueOptions::new()));
    queue.enqueue_many(&topic, batch).await.unwrap();
    // Every message's one delivery, leased here and never answered in time.
    let leases = queue
        .lease(&topic, messages as u32, Duration::from_millis(1_500))
        .await
        .unwrap();
    assert_eq!(leases.len() as u64, messages);
    let vars = [
        (WORKER, "idle".to_owned()),
        ("STEADFAST_DB", url.clone()),
        ("STEADFAST_TOPIC", topic.clone()),
        ("STEADFAST_LOG", log_path.display().to_string()),
    ];
    let children: Vec<_> = (0..4).map(|_| worker(&vars).spawn().unwrap()).collect();
    let expiry = leases.iter().map(|l| l.until).max().unwrap();
    if let Ok(wait) = expiry.duration_since(SystemTime::now()) {
        tokio::time::sleep(wait).await;
    }
    // The late acks race the workers' burying.
    let mut acked = HashSet::new();
    for lease in leases
        .iter()
        .filter(|l| late_acks && l.payload.last().is_some_and(|d| d % 2 == 0))
    {
        if queue.ack(lease).await.is_ok() {
            acked.insert(lease.id);
        }
    }
    for mut child in children {
        assert!(child.wait().unwrap().success());
    }
    let dead = queue
        .dead_letters(&DeadLetterFilter::all().topic(topic.clone()))
        .await
        .unwrap();
    let buried: HashSet<i64> = dead.iter().map(|d| d.message_id).collect();
    assert_eq!(buried.len(), dead.len(), "a message dead-lettered twice");
    assert!(
        acked.is_disjoint(&buried),
        "a message both acked and dead-lettered"
    );
    assert_eq!(acked.len() + buried.len(), messages as usize);
    if !late_acks {
        assert_eq!(dead.len() as u64, messages, "exactly one dead letter each");
        // And the schema makes a second one impossible.
        let store = PostgresStore::connect_in_schema(&url, SCHEMA)
            .await
            .unwrap();
        let twice = sqlx::query(
            "INSERT INTO dead_letters (message_id, topic, payload, attempts, enqueued_at_ms,
                                       died_at_ms, reason, history)
             SELECT message_id, topic, payload, attempts, enqueued_at_ms, died_at_ms, reason,
                    history
             FROM dead_letters WHERE id = $1",
        )
        .bind(dead[0].id)
        .execute(store.pool())
        .await;
        let e = twice.expect_err("a second dead letter of one message");
        assert!(e.to_string().contains("dead_letters_message"), "{e}");
    }
    let log = std::fs::read_to_string(&log_path).unwrap_or_default();
    assert_eq!(log, "", "no delivery was left to hand a worker");
}
