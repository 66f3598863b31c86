//! Gate records in a SQLite file: the embedded default, shared by the processes of one host.

use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};

use super::sql::{Dialect, Statements, sql_gate_store};
use crate::StoreError;

/// The migrations, in order; each runs once per file, inside `BEGIN IMMEDIATE`.
const MIGRATIONS: &[(i64, &str, &str)] = &[(
    1,
    "gate_records",
    include_str!("../../migrations/sqlite/0001_gate_records.sql"),
)];

/// How hard SQLite works to keep a commit through a power cut (its `synchronous` pragma, in
/// WAL mode).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum Synchronous {
    /// The default: no `fsync` per commit. A commit survives the process being killed at any
    /// point (the write-ahead log is in the OS's hands), and the file is never corrupted; a
    /// power cut or kernel crash may lose the last commits (the target then forgets its last
    /// attempts and may be retried once more).
    #[default]
    Normal,
    /// An `fsync` of the write-ahead log per commit: commits also survive a power cut, at the
    /// disk's sync latency per write.
    Full,
}

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
    sql: std::sync::Arc<Statements>,
}

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
        // One connection: this process's writes queue in memory, not on SQLite's busy
        // handler (which sleeps in steps of up to 100 ms); other processes still share the file.
        let pool = SqlitePoolOptions::new()
            .max_connections(1)
            .connect_with(options)
            .await?;
        migrate(&pool).await?;
        Ok(SqliteStore {
            pool,
            sql: std::sync::Arc::new(Statements::new(Dialect::Sqlite)),
        })
    }

    /// The connection pool, for your own queries (`PRAGMA integrity_check`).
    pub fn pool(&self) -> &SqlitePool {
        &self.pool
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
    let (applied,): (i64,) =
        sqlx::query_as("SELECT COALESCE(MAX(version), 0) FROM steadfast_migrations")
            .fetch_one(&mut *tx)
            .await?;
    for (version, name, sql) in MIGRATIONS.iter().filter(|m| m.0 > applied) {
        sqlx::raw_sql(sqlx::AssertSqlSafe(*sql))
            .execute(&mut *tx)
            .await
            .map_err(|e| StoreError::Open(format!("migration {version} ({name}): {e}")))?;
        sqlx::query(
            "INSERT INTO steadfast_migrations (version, name, applied_ms)
             VALUES (?1, ?2, CAST(unixepoch('subsec') * 1000 AS INTEGER))",
        )
        .bind(version)
        .bind(*name)
        .execute(&mut *tx)
        .await?;
    }
    tx.commit().await?;
    Ok(())
}

sql_gate_store!(SqliteStore, sqlx::Sqlite);
