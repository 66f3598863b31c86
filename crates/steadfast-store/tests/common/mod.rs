//! Stores for the conformance suite: memory and a SQLite file always, PostgreSQL when
//! `STEADFAST_TEST_POSTGRES_URL` is set, Redis (idempotency) when `STEADFAST_TEST_REDIS_URL` is.

#![allow(dead_code, unreachable_pub)]

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use steadfast_store::{GateStore, MemoryStore, PostgresStore, SqliteStore};

pub const POSTGRES_URL: &str = "STEADFAST_TEST_POSTGRES_URL";
pub const REDIS_URL: &str = "STEADFAST_TEST_REDIS_URL";
/// The schema the tests use, apart from a service's own `steadfast`.
pub const SCHEMA: &str = "steadfast_test";

/// A store under test, as the trait `T` a suite tests, and what keeps it alive.
pub struct Subject<T: ?Sized = dyn GateStore> {
    pub name: &'static str,
    pub store: Arc<T>,
    pub _dir: Option<tempfile::TempDir>,
}

pub fn postgres_url() -> Option<String> {
    match std::env::var(POSTGRES_URL) {
        Ok(url) if !url.is_empty() => Some(url),
        _ => {
            skip_service(POSTGRES_URL);
            None
        }
    }
}

/// One store of each kind this machine can run, with the directory of the SQLite file.
pub enum Opened {
    Memory(MemoryStore),
    Sqlite(SqliteStore, tempfile::TempDir),
    Postgres(PostgresStore),
}

async fn open_each() -> Vec<Opened> {
    let dir = tempfile::tempdir().unwrap();
    let sqlite = SqliteStore::open(dir.path().join("steadfast.db"))
        .await
        .unwrap();
    let mut all = vec![
        Opened::Memory(MemoryStore::new()),
        Opened::Sqlite(sqlite, dir),
    ];
    if let Some(url) = postgres_url() {
        let pg = PostgresStore::connect_in_schema(&url, SCHEMA)
            .await
            .unwrap();
        all.push(Opened::Postgres(pg));
    }
    all
}

/// Every store this machine can run, as `dyn $trait`.
macro_rules! each_as {
    ($trait:path) => {
        open_each()
            .await
            .into_iter()
            .map(|o| -> Subject<dyn $trait> {
                match o {
                    Opened::Memory(s) => Subject {
                        name: "memory",
                        store: Arc::new(s),
                        _dir: None,
                    },
                    Opened::Sqlite(s, dir) => Subject {
                        name: "sqlite",
                        store: Arc::new(s),
                        _dir: Some(dir),
                    },
                    Opened::Postgres(s) => Subject {
                        name: "postgres",
                        store: Arc::new(s),
                        _dir: None,
                    },
                }
            })
            .collect()
    };
}

/// Every gate store this machine can run.
pub async fn subjects() -> Vec<Subject> {
    each_as!(GateStore)
}

/// Every queue store this machine can run.
pub async fn queue_subjects() -> Vec<Subject<dyn steadfast_store::queue::QueueStore>> {
    each_as!(steadfast_store::queue::QueueStore)
}

/// Every idempotency store this machine can run (Redis too when `STEADFAST_TEST_REDIS_URL` is
/// set).
pub async fn idempotency_subjects()
-> Vec<Subject<dyn steadfast_store::idempotency::IdempotencyStore>> {
    #[allow(unused_mut)] // pushed to with feature `redis`
    let mut all: Vec<Subject<dyn steadfast_store::idempotency::IdempotencyStore>> =
        each_as!(steadfast_store::idempotency::IdempotencyStore);
    #[cfg(feature = "redis")]
    match std::env::var(REDIS_URL) {
        Ok(url) if !url.is_empty() => all.push(Subject {
            name: "redis",
            store: Arc::new(steadfast_store::RedisStore::connect(&url).await.unwrap()),
            _dir: None,
        }),
        _ => skip_service(REDIS_URL),
    }
    all
}

/// A target type no other test (or earlier run) has used, for stores that outlive a test.
pub fn unique(prefix: &str) -> String {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    format!("{prefix}-{}-{nanos}", std::process::id())
}

/// `m` minutes after the example's start.
pub fn minute(m: u64) -> SystemTime {
    start() + Duration::from_secs(60 * m)
}

pub fn start() -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(1_800_000_000)
}

/// A topic (a steadfast key) no other test or run has used: `q<pid>x<nanos>.<name>`.
pub fn topic(name: &str) -> String {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    format!("q{}x{nanos}.{name}", std::process::id())
}

/// This test binary re-run as a child that runs only the test `entry` (a worker process),
/// with `vars` in its environment.
pub fn reexec(entry: &str, vars: &[(&str, String)]) -> std::process::Command {
    let mut cmd = std::process::Command::new(std::env::current_exe().unwrap());
    cmd.args([entry, "--exact", "--nocapture", "--test-threads=1"]);
    for (k, v) in vars {
        cmd.env(k, v);
    }
    cmd
}

/// A variable a worker process was given.
pub fn var(name: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| panic!("worker needs {name}"))
}

/// The runtime a worker process runs on: two threads, as a small service has.
pub fn worker_runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

/// A test service whose URL is unset: in CI (`CI` set) that fails the run; elsewhere the skip
/// is written straight to the terminal, past the test harness's capture, so it shows.
#[allow(dead_code)]
pub fn skip_service(var: &str) {
    assert!(
        std::env::var_os("CI").is_none_or(|v| v.is_empty()),
        "{var} is not set, and CI runs every service's tests"
    );
    use std::io::Write;
    let _ = writeln!(
        std::io::stderr(),
        "SKIPPED: {var} is not set; the tests on that service did not run"
    );
}
