//! The durable retry gate: `acquire` + `failed` pairs per second on a SQLite file and on
//! PostgreSQL. No peer offers a persisted gate; the bar is the design it replaces (1–2 ms per
//! check), and the report's `ops_per_sec` is pairs per second.

use std::path::PathBuf;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Instant;

use steadfast::gate::{GateOptions, Target};
use steadfast_store::{GateStore, PostgresStore, RetryGate, SqliteStore, Synchronous};
use tokio::runtime::Runtime;

use crate::Runner;

/// The URL of the PostgreSQL the postgres scenario uses.
const POSTGRES_URL: [&str; 2] = [
    "STEADFAST_BENCH_POSTGRES_URL",
    "STEADFAST_TEST_POSTGRES_URL",
];
/// Targets written at once in the PostgreSQL scenario.
const CONCURRENT_TARGETS: u64 = 16;

/// Options under which every acquire is granted, so each pair is two writes.
fn options() -> GateOptions {
    GateOptions::default()
        .base_retries(u32::MAX)
        .max_retries(u32::MAX)
}

/// A runtime of the gate's own: sqlx needs the IO driver the shared runtime leaves out.
pub(crate) fn io_runtime() -> Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime")
}

/// A database file removed (with its WAL) when the runner is dropped.
pub(crate) struct TempDb(pub(crate) PathBuf);

impl TempDb {
    pub(crate) fn new() -> Self {
        static N: AtomicU32 = AtomicU32::new(0);
        let name = format!(
            "steadfast-bench-{}-{}.db",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        );
        let db = TempDb(std::env::temp_dir().join(name));
        db.remove();
        db
    }

    fn remove(&self) {
        for suffix in ["", "-wal", "-shm"] {
            let mut path = self.0.clone().into_os_string();
            path.push(suffix);
            let _ = std::fs::remove_file(path);
        }
    }
}

impl Drop for TempDb {
    fn drop(&mut self) {
        self.remove();
    }
}

/// `iters` pairs spread over `targets` tasks, each on a target of its own; `db` (a SQLite
/// file) lives as long as the runner.
fn runner(
    name: &'static str,
    rt: Runtime,
    gate: RetryGate,
    targets: u64,
    db: Option<TempDb>,
) -> Runner {
    Runner {
        name,
        run: Box::new(move |_shared: &Runtime, iters: u64| {
            let _db = &db;
            rt.block_on(async {
                let start = Instant::now();
                let mut tasks = tokio::task::JoinSet::new();
                for t in 0..targets {
                    let gate = gate.clone();
                    let n = iters / targets + u64::from(t < iters % targets);
                    tasks.spawn(async move {
                        let target = Target::new("bench", t.to_string());
                        for _ in 0..n {
                            let permit = gate.acquire(&target).await.expect("granted");
                            permit.failed("503").await.expect("recorded");
                        }
                    });
                }
                while let Some(done) = tasks.join_next().await {
                    done.expect("a bench task");
                }
                start.elapsed()
            })
        }),
    }
}

fn gate(store: impl GateStore) -> RetryGate {
    RetryGate::new(store, options()).expect("valid options")
}

/// acquire + failed on a SQLite file, with `synchronous` NORMAL (the default) and FULL: one
/// target at a time, and 16 at once (writes that arrive together commit together).
pub(crate) fn sqlite() -> Vec<Runner> {
    [
        (
            "steadfast-sqlite-normal-16",
            Synchronous::Normal,
            CONCURRENT_TARGETS,
        ),
        ("steadfast-sqlite-normal-1", Synchronous::Normal, 1),
        (
            "steadfast-sqlite-full-16",
            Synchronous::Full,
            CONCURRENT_TARGETS,
        ),
    ]
    .into_iter()
    .map(|(name, sync, targets)| {
        let rt = io_runtime();
        let db = TempDb::new();
        let store = rt
            .block_on(SqliteStore::open_with(&db.0, sync))
            .expect("a SQLite file");
        runner(name, rt, gate(store), targets, Some(db))
    })
    .collect()
}

/// A runtime and a store in the bench's own PostgreSQL schema; `None` (with the reason
/// printed) without a URL.
pub(crate) fn postgres_store(scenario: &str) -> Option<(Runtime, PostgresStore)> {
    postgres_store_with(scenario, Synchronous::Full)
}

fn postgres_store_with(
    scenario: &str,
    synchronous: Synchronous,
) -> Option<(Runtime, PostgresStore)> {
    let Some(url) = POSTGRES_URL.iter().find_map(|v| std::env::var(v).ok()) else {
        eprintln!("{scenario}: skipped, set {} to run it", POSTGRES_URL[1]);
        return None;
    };
    let rt = io_runtime();
    let store = rt
        .block_on(PostgresStore::connect_with(
            &url,
            "steadfast_bench",
            synchronous,
        ))
        .expect("PostgreSQL");
    Some((rt, store))
}

/// acquire + failed on 16 targets at once in PostgreSQL, with the server's
/// `synchronous_commit` (the default) and with it off; none without a URL.
pub(crate) fn postgres() -> Vec<Runner> {
    [
        ("steadfast-postgres-full-16", Synchronous::Full),
        ("steadfast-postgres-normal-16", Synchronous::Normal),
    ]
    .into_iter()
    .filter_map(|(name, sync)| {
        let (rt, store) = postgres_store_with("gate-postgres", sync)?;
        Some(runner(name, rt, gate(store), CONCURRENT_TARGETS, None))
    })
    .collect()
}

/// `check` of one target that has a record, by one caller: the question a scheduler asks
/// before it tries; a call is one check.
fn check_runner(name: &'static str, rt: Runtime, gate: RetryGate, db: Option<TempDb>) -> Runner {
    let target = Target::new("bench", "checked");
    rt.block_on(async {
        let permit = gate.acquire(&target).await.expect("granted");
        permit.failed("503").await.expect("recorded");
    });
    Runner {
        name,
        run: Box::new(move |_shared: &Runtime, iters: u64| {
            let _db = &db;
            rt.block_on(async {
                let start = Instant::now();
                for _ in 0..iters {
                    let d = gate.check(&target).await.expect("a decision");
                    std::hint::black_box(d);
                }
                start.elapsed()
            })
        }),
    }
}

/// `check` on a SQLite file.
pub(crate) fn check_sqlite() -> Vec<Runner> {
    let rt = io_runtime();
    let db = TempDb::new();
    let store = rt
        .block_on(SqliteStore::open(&db.0))
        .expect("a SQLite file");
    vec![check_runner("steadfast-sqlite", rt, gate(store), Some(db))]
}

/// `check` on PostgreSQL; none without a URL.
pub(crate) fn check_postgres() -> Vec<Runner> {
    let Some((rt, store)) = postgres_store("gate-check-postgres") else {
        return Vec::new();
    };
    vec![check_runner("steadfast-postgres", rt, gate(store), None)]
}
