//! The retry gate, the retry queue and idempotency keys in a SQLite file: the embedded
//! default, shared by the processes of one host.

use std::path::Path;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use sqlx::Sqlite;
use sqlx::pool::PoolConnection;
use sqlx::sqlite::SqliteConnection;
use steadfast::gate::Target;
use tokio::sync::{mpsc, oneshot};

use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};

use super::idempotency_sql::{IdempotencyStatements, sql_idempotency_store};
use super::queue_sql::{QueueStatements, ROWS_PER_INSERT, sql_queue_store};
use super::sql::{Dialect, Statements, Synchronous, sql_gate_store};
use super::sqlite_file::{Done, Job, Reader, run_failed, spawn_writer};
use super::{Filter, GateStore, StoreFuture};
use crate::StoreError;
use crate::gate::record::GateRecord;

/// The migrations, in order; each runs once per file, inside `BEGIN IMMEDIATE`.
const MIGRATIONS: &[(i64, &str, &str)] = &[
    (
        1,
        "gate_records",
        include_str!("../../migrations/sqlite/0001_gate_records.sql"),
    ),
    (
        2,
        "queue",
        include_str!("../../migrations/sqlite/0002_queue.sql"),
    ),
    (
        3,
        "idempotency",
        include_str!("../../migrations/sqlite/0003_idempotency.sql"),
    ),
    (
        4,
        "one_dead_letter",
        include_str!("../../migrations/sqlite/0004_one_dead_letter.sql"),
    ),
    (
        5,
        "dead_letter_max_attempts",
        include_str!("../../migrations/sqlite/0005_dead_letter_max_attempts.sql"),
    ),
    (
        6,
        "leased_index",
        include_str!("../../migrations/sqlite/0006_leased_index.sql"),
    ),
];

/// Gate records in a SQLite file (WAL mode, busy timeout 5 s), created and migrated on open.
///
/// WAL lets readers run beside one writer; the processes sharing a file must be on one host
/// (WAL does not work over a network file system). Each write is one statement with a version
/// check, so processes racing for a target never both win.
///
/// ```
/// use steadfast::gate::{GateOptions, Target};
/// use steadfast_store::{RetryGate, SqliteStore};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// # let dir = tempfile::tempdir()?;
/// # let path = dir.path().join("steadfast.db");
/// let store = SqliteStore::open(&path).await?;
/// let gate = RetryGate::new(store, GateOptions::default())?;
/// gate.acquire(&Target::new("order", "42")).await?.failed("timeout").await?;
///
/// // Another process (or this one, after a restart) sees the same record.
/// let reopened = RetryGate::new(SqliteStore::open(&path).await?, GateOptions::default())?;
/// let record = reopened.get(&Target::new("order", "42")).await?.unwrap();
/// assert_eq!(record.attempts, 1);
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct SqliteStore {
    pool: SqlitePool,
    /// The writer task's queue: every load and save goes through its held connection.
    jobs: mpsc::UnboundedSender<Job>,
    sql: Arc<Statements>,
    queue_sql: Arc<QueueStatements>,
    idempotency_sql: Arc<IdempotencyStatements>,
    /// Loads on the calling thread, when the store is a file.
    reader: Option<Arc<Reader>>,
}

/// Jobs one transaction takes at most.
const MAX_BATCH: usize = 128;

impl SqliteStore {
    /// Opens (creating it if missing) the database file at `path`, with
    /// [`Synchronous::Normal`].
    pub async fn open(path: impl AsRef<Path>) -> Result<Self, StoreError> {
        Self::open_with(path, Synchronous::default()).await
    }

    /// Opens the file at `path` with the given durability.
    pub async fn open_with(
        path: impl AsRef<Path>,
        synchronous: Synchronous,
    ) -> Result<Self, StoreError> {
        let options = SqliteConnectOptions::new()
            .filename(path)
            .create_if_missing(true);
        Self::connect_with(options, synchronous).await
    }

    /// Opens a `sqlite:` URL (`sqlite:steadfast.db`, `sqlite://data/steadfast.db`) or a
    /// plain path.
    pub async fn connect(url: &str) -> Result<Self, StoreError> {
        if !url.starts_with("sqlite:") {
            return Self::open(url).await;
        }
        let options = SqliteConnectOptions::from_str(url)
            .map_err(|e| StoreError::Open(format!("{url}: {e}")))?
            .create_if_missing(true);
        Self::connect_with(options, Synchronous::default()).await
    }

    async fn connect_with(
        options: SqliteConnectOptions,
        synchronous: Synchronous,
    ) -> Result<Self, StoreError> {
        let options = options
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(match synchronous {
                Synchronous::Normal => SqliteSynchronous::Normal,
                Synchronous::Full => SqliteSynchronous::Full,
            })
            .busy_timeout(Duration::from_secs(5));
        let path = options.get_filename().to_owned();
        // The gate's writes go to one connection of their own (a file's: rusqlite on a thread
        // of the store's; otherwise sqlx's, held by a writer task), so this process's writes
        // queue in memory, not on SQLite's busy handler (which sleeps in steps of up to
        // 100 ms), and writes that arrive together commit together. The pool serves the
        // queue, idempotency keys and `pool()`. Other processes share the file.
        let pool = SqlitePoolOptions::new()
            .max_connections(2)
            .connect_with(options)
            .await?;
        migrate(&pool).await?;
        let sql = Arc::new(Statements::new(Dialect::Sqlite));
        let file = path.is_file();
        let reader = file
            .then(|| Reader::open(&path, &sql.load).map(Arc::new))
            .flatten();
        let jobs = match file.then(|| spawn_writer(&path, synchronous, sql.clone())) {
            Some(Ok(jobs)) => jobs,
            _ => {
                let (jobs, queue) = mpsc::unbounded_channel();
                tokio::spawn(writer(pool.acquire().await?, sql.clone(), queue));
                jobs
            }
        };
        Ok(SqliteStore {
            pool,
            jobs,
            sql,
            queue_sql: Arc::new(QueueStatements::new(Dialect::Sqlite)),
            idempotency_sql: Arc::new(IdempotencyStatements::new(Dialect::Sqlite)),
            reader,
        })
    }

    /// A pool of one connection (beside the gate's own), for your own queries
    /// (`PRAGMA integrity_check`).
    pub fn pool(&self) -> &SqlitePool {
        &self.pool
    }

    async fn submit<T>(
        &self,
        job: impl FnOnce(oneshot::Sender<Result<T, StoreError>>) -> Job,
    ) -> Result<T, StoreError> {
        let (reply, result) = oneshot::channel();
        self.jobs.send(job(reply)).map_err(|_| StoreError::Closed)?;
        result.await.map_err(|_| StoreError::Closed)?
    }
}

/// Applies the migrations this file lacks, holding SQLite's write lock from the first read:
/// two processes opening a new file at once migrate it once (sqlx's own SQLite migrator takes
/// no lock).
async fn migrate(pool: &SqlitePool) -> Result<(), StoreError> {
    let mut tx = pool.begin_with("BEGIN IMMEDIATE").await?;
    sqlx::raw_sql(
        "CREATE TABLE IF NOT EXISTS steadfast_migrations (
             version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_ms INTEGER NOT NULL)",
    )
    .execute(&mut *tx)
    .await?;
    SqliteStore::apply_migrations(
        &mut tx,
        MIGRATIONS,
        "INSERT INTO steadfast_migrations (version, name, applied_ms)
         VALUES (?1, ?2, CAST(unixepoch('subsec') * 1000 AS INTEGER))",
    )
    .await?;
    tx.commit().await?;
    Ok(())
}

/// Runs the jobs of `queue` on `conn`: one alone as it is (one autocommit statement); several
/// that arrived together inside one `BEGIN IMMEDIATE … COMMIT`, answered once the commit
/// holds (group commit: a commit costs more than the statements in it).
async fn writer(
    mut conn: PoolConnection<Sqlite>,
    sql: Arc<Statements>,
    mut queue: mpsc::UnboundedReceiver<Job>,
) {
    let mut batch = Vec::with_capacity(MAX_BATCH);
    while queue.recv_many(&mut batch, MAX_BATCH).await > 0 {
        if batch.len() == 1 {
            if let Some(job) = batch.pop() {
                run(&mut conn, &sql, job).await.answer();
            }
            continue;
        }
        run_batch(&mut conn, &sql, &mut batch).await;
    }
}

/// Runs `job` on `conn` (the writer task's).
async fn run(conn: &mut SqliteConnection, sql: &Statements, job: Job) -> Done {
    match job {
        Job::Load(target, reply) => {
            Done::Load(SqliteStore::load_on(conn, sql, &target).await, reply)
        }
        Job::Save(record, reply) => {
            Done::Save(SqliteStore::save_on(conn, sql, &record).await, reply)
        }
    }
}

async fn run_batch(conn: &mut SqliteConnection, sql: &Statements, batch: &mut Vec<Job>) {
    if let Err(e) = sqlx::query("BEGIN IMMEDIATE").execute(&mut *conn).await {
        let message = e.to_string();
        batch.drain(..).for_each(|job| run_failed(job, &message));
        return;
    }
    let mut done = Vec::with_capacity(batch.len());
    for job in batch.drain(..) {
        done.push(run(conn, sql, job).await);
    }
    match sqlx::query("COMMIT").execute(&mut *conn).await {
        Ok(_) => done.into_iter().for_each(Done::answer),
        Err(e) => {
            let _ = sqlx::query("ROLLBACK").execute(&mut *conn).await;
            let message = e.to_string();
            done.into_iter().for_each(|d| d.fail(&message));
        }
    }
}

sql_gate_store!(SqliteStore, sqlx::Sqlite);
sql_queue_store!(SqliteStore, sqlx::Sqlite);
sql_idempotency_store!(SqliteStore, sqlx::Sqlite);

impl SqliteStore {
    /// A transaction holding the write lock from its start (no upgrade deadlock).
    async fn begin_write(&self) -> Result<sqlx::Transaction<'static, Sqlite>, sqlx::Error> {
        self.pool.begin_with("BEGIN IMMEDIATE").await
    }
}

impl GateStore for SqliteStore {
    fn load<'a>(&'a self, target: &'a Target) -> StoreFuture<'a, Option<GateRecord>> {
        let read = self.reader.as_ref();
        if let Some(done) = read.and_then(|r| r.load(&self.sql.load, target)) {
            return Box::pin(std::future::ready(done));
        }
        Box::pin(self.submit(|reply| Job::Load(target.clone(), reply)))
    }

    fn save<'a>(&'a self, record: &'a GateRecord) -> StoreFuture<'a, bool> {
        Box::pin(self.submit(|reply| Job::Save(Box::new(record.clone()), reply)))
    }

    fn list<'a>(&'a self, filter: &'a Filter) -> StoreFuture<'a, Vec<GateRecord>> {
        Box::pin(
            async move { Self::list_on(&mut *self.pool.acquire().await?, &self.sql, filter).await },
        )
    }

    fn purge_clear(&self, before_ms: i64) -> StoreFuture<'_, u64> {
        Box::pin(async move {
            let done = sqlx::query(sqlx::AssertSqlSafe(self.sql.purge_clear.as_str()))
                .bind(before_ms)
                .execute(&self.pool)
                .await?;
            Ok(done.rows_affected())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gate::record::GateRecord;
    use steadfast::gate::GateOptions;

    /// A file store loads on the calling thread; while the reader is held the load goes
    /// to the writer and reads the same; an in-memory database has no reader.
    #[tokio::test]
    // The reader's lock is held across the store's load on purpose: that load must not wait
    // for it, and goes to the writer instead.
    #[allow(clippy::await_holding_lock)]
    async fn a_file_is_read_on_the_calling_thread_and_falls_back_when_held() {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(dir.path().join("s.db")).await.unwrap();
        let target = Target::new("read", "here");
        let mut record = GateRecord::new(
            target.clone(),
            GateOptions::default(),
            std::time::SystemTime::UNIX_EPOCH,
        );
        record.version = 1;
        assert!(store.save(&record).await.unwrap());
        let reader = store.reader.as_ref().expect("a file has a reader");
        let direct = reader.load(&store.sql.load, &target).expect("read here");
        assert_eq!(direct.unwrap().as_ref(), Some(&record));
        let held = reader.hold();
        assert!(reader.load(&store.sql.load, &target).is_none());
        assert_eq!(store.load(&target).await.unwrap(), Some(record.clone()));
        drop(held);

        // An in-memory database has no file to open twice: its loads and saves go through
        // the sqlx writer task.
        let memory = SqliteStore::connect("sqlite::memory:").await.unwrap();
        assert!(memory.reader.is_none());
        assert!(memory.save(&record).await.unwrap());
        assert!(!memory.save(&record).await.unwrap(), "version 1 twice");
        assert_eq!(memory.load(&target).await.unwrap(), Some(record));
    }
}
