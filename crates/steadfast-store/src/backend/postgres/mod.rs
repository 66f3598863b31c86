//! The retry gate, the retry queue and idempotency keys in PostgreSQL: one database for the
//! processes of many hosts.

mod batch;

use std::str::FromStr;
use std::sync::Arc;

use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};

use steadfast::gate::Target;

use tokio::sync::{Mutex, mpsc};

use self::batch::{BatchStatements, Save, SaveOne, Writer};
use super::idempotency_sql::{IdempotencyStatements, sql_idempotency_store};
use super::queue_sql::{QueueStatements, ROWS_PER_INSERT, sql_queue_store};
use super::sql::{Dialect, Statements, Synchronous, sql_gate_store};
use super::{Filter, GateStore, StoreFuture};
use crate::StoreError;
use crate::gate::record::GateRecord;

/// The migrations, in order; each runs once per schema, under an advisory lock.
const MIGRATIONS: &[(i64, &str, &str)] = &[
    (
        1,
        "gate_records",
        include_str!("../../../migrations/postgres/0001_gate_records.sql"),
    ),
    (
        2,
        "queue",
        include_str!("../../../migrations/postgres/0002_queue.sql"),
    ),
    (
        3,
        "idempotency",
        include_str!("../../../migrations/postgres/0003_idempotency.sql"),
    ),
    (
        4,
        "one_dead_letter",
        include_str!("../../../migrations/postgres/0004_one_dead_letter.sql"),
    ),
    (
        5,
        "dead_letter_max_attempts",
        include_str!("../../../migrations/postgres/0005_dead_letter_max_attempts.sql"),
    ),
    (
        6,
        "leased_index",
        include_str!("../../../migrations/postgres/0006_leased_index.sql"),
    ),
];

/// The advisory lock key migrations hold (any fixed number; `steadfast` in ASCII).
const MIGRATION_LOCK: i64 = 0x7374_6561_6466_6173;

/// Gate records in PostgreSQL, in a schema of their own (`steadfast` unless told), created
/// and migrated on connect.
///
/// Every write is a compare-and-set: `UPDATE … WHERE version = $n` (or `INSERT … ON CONFLICT
/// DO NOTHING` for a new record), so processes racing for a target never both win, and no
/// row stays locked between statements. Writes that arrive together (many targets at once)
/// go to the server as one statement per kind, the rows passed as arrays (`UNNEST`), each row
/// still checked on its own version; four writer tasks keep batches in flight. A write that
/// keeps the stored policy (an attempt, a failure) leaves the `policy` column as it is.
///
/// ```no_run
/// use steadfast::gate::{GateOptions, Target};
/// use steadfast_store::{PostgresStore, RetryGate};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let store = PostgresStore::connect("postgres://app@db.internal/app").await?;
/// let gate = RetryGate::new(store, GateOptions::default())?;
/// let decision = gate.check(&Target::new("order", "42")).await?;
/// # let _ = decision;
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct PostgresStore {
    pool: PgPool,
    /// The writers' queue: saves that arrive together are written together.
    saves: mpsc::UnboundedSender<Save>,
    sql: Arc<Statements>,
    queue_sql: Arc<QueueStatements>,
    idempotency_sql: Arc<IdempotencyStatements>,
}

/// Writer tasks: each has a batch in flight while the next one gathers (with 16 targets at
/// once, 2, 4 and 8 writers move about as many pairs; 4 keep a commit in flight while the
/// server flushes another).
const WRITERS: usize = 4;

impl PostgresStore {
    /// Connects to `url` (up to 16 connections) and uses the schema `steadfast`.
    pub async fn connect(url: &str) -> Result<Self, StoreError> {
        Self::connect_in_schema(url, "steadfast").await
    }

    /// Connects to `url` and keeps the records in `schema` (letters, digits and `_`).
    pub async fn connect_in_schema(url: &str, schema: &str) -> Result<Self, StoreError> {
        Self::connect_with(url, schema, Synchronous::Full).await
    }

    /// Connects to `url`, keeps the records in `schema`, and commits as `synchronous` says:
    /// [`Synchronous::Normal`] sets `synchronous_commit = off` on the store's connections, so
    /// a commit does not wait for the server's disk (a crash of the server may lose the last
    /// moments' commits; an application crash loses nothing).
    ///
    /// ```no_run
    /// use steadfast_store::{PostgresStore, Synchronous};
    ///
    /// # async fn open() -> Result<(), steadfast_store::StoreError> {
    /// let store =
    ///     PostgresStore::connect_with("postgres://localhost/app", "steadfast", Synchronous::Normal)
    ///         .await?;
    /// # Ok(()) }
    /// ```
    pub async fn connect_with(
        url: &str,
        schema: &str,
        synchronous: Synchronous,
    ) -> Result<Self, StoreError> {
        let valid = !schema.is_empty()
            && schema.len() <= 63
            && schema
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_')
            && !schema.starts_with(|c: char| c.is_ascii_digit());
        if !valid {
            return Err(StoreError::Open(format!(
                "schema {schema:?}: expected letters, digits and _ (not first), at most 63"
            )));
        }
        let options = PgConnectOptions::from_str(url)
            .map_err(|e| StoreError::Open(format!("{url}: {e}")))?
            .options([("search_path", schema)]);
        let options = match synchronous {
            Synchronous::Normal => options.options([("synchronous_commit", "off")]),
            Synchronous::Full => options,
        };
        let pool = PgPoolOptions::new()
            .max_connections(16)
            // No ping before each use: it is a round trip of its own, as long as a gate's
            // check. A connection the server dropped (a restart) fails its next statement once
            // and is discarded.
            .test_before_acquire(false)
            .connect_with(options)
            .await?;
        migrate(&pool, schema).await?;
        let sql = Arc::new(Statements::new(Dialect::Postgres));
        let batch = Arc::new(BatchStatements::new());
        let (saves, queue) = mpsc::unbounded_channel();
        let queue = Arc::new(Mutex::new(queue));
        for _ in 0..WRITERS {
            let writer = Writer::<PostgresStore> {
                store: std::marker::PhantomData,
                pool: pool.clone(),
                sql: sql.clone(),
                batch: batch.clone(),
                queue: queue.clone(),
            };
            tokio::spawn(writer.run());
        }
        Ok(PostgresStore {
            pool,
            saves,
            sql,
            queue_sql: Arc::new(QueueStatements::new(Dialect::Postgres)),
            idempotency_sql: Arc::new(IdempotencyStatements::new(Dialect::Postgres)),
        })
    }

    /// The connection pool, for your own queries.
    pub fn pool(&self) -> &PgPool {
        &self.pool
    }
}

/// Creates the schema and applies the migrations it lacks, under an advisory lock held to
/// the end of the transaction: processes starting together migrate once.
async fn migrate(pool: &PgPool, schema: &str) -> Result<(), StoreError> {
    let mut tx = pool.begin().await?;
    sqlx::query("SELECT pg_advisory_xact_lock($1)")
        .bind(MIGRATION_LOCK)
        .execute(&mut *tx)
        .await?;
    // `schema` is checked to be a plain identifier above.
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
        "CREATE SCHEMA IF NOT EXISTS \"{schema}\";
         CREATE TABLE IF NOT EXISTS \"{schema}\".steadfast_migrations (
             version BIGINT PRIMARY KEY, name TEXT NOT NULL, applied_ms BIGINT NOT NULL);"
    )))
    .execute(&mut *tx)
    .await?;
    PostgresStore::apply_migrations(
        &mut tx,
        MIGRATIONS,
        "INSERT INTO steadfast_migrations (version, name, applied_ms)
         VALUES ($1, $2, (EXTRACT(EPOCH FROM clock_timestamp()) * 1000)::BIGINT)",
    )
    .await?;
    tx.commit().await?;
    Ok(())
}

sql_gate_store!(PostgresStore, sqlx::Postgres);
sql_queue_store!(PostgresStore, sqlx::Postgres);
sql_idempotency_store!(PostgresStore, sqlx::Postgres);

impl PostgresStore {
    async fn begin_write(&self) -> Result<sqlx::Transaction<'static, sqlx::Postgres>, sqlx::Error> {
        self.pool.begin().await
    }
}

impl PostgresStore {
    /// Hands `record` to the writers and waits for whether it won.
    async fn send(&self, record: &GateRecord, same_policy: bool) -> Result<bool, StoreError> {
        let (reply, result) = tokio::sync::oneshot::channel();
        let save = Save {
            record: Box::new(record.clone()),
            same_policy,
            reply,
        };
        self.saves.send(save).map_err(|_| StoreError::Closed)?;
        result.await.map_err(|_| StoreError::Closed)?
    }
}

impl SaveOne for PostgresStore {
    async fn save_one(
        conn: &mut sqlx::PgConnection,
        sql: &Statements,
        record: &GateRecord,
    ) -> Result<bool, StoreError> {
        PostgresStore::save_on(conn, sql, record).await
    }
}

impl GateStore for PostgresStore {
    fn load<'a>(&'a self, target: &'a Target) -> StoreFuture<'a, Option<GateRecord>> {
        Box::pin(
            async move { Self::load_on(&mut *self.pool.acquire().await?, &self.sql, target).await },
        )
    }

    fn save<'a>(&'a self, record: &'a GateRecord) -> StoreFuture<'a, bool> {
        Box::pin(self.send(record, false))
    }

    fn save_same_policy<'a>(&'a self, record: &'a GateRecord) -> StoreFuture<'a, bool> {
        Box::pin(self.send(record, true))
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
