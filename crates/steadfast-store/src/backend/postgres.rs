//! Gate records in PostgreSQL: one database for the processes of many hosts.

use std::str::FromStr;

use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};

use steadfast::gate::Target;

use super::sql::{Dialect, Statements, sql_gate_store};
use super::{Filter, GateStore, StoreFuture};
use crate::StoreError;
use crate::gate::GateRecord;

/// The migrations, in order; each runs once per schema, under an advisory lock.
const MIGRATIONS: &[(i64, &str, &str)] = &[(
    1,
    "gate_records",
    include_str!("../../migrations/postgres/0001_gate_records.sql"),
)];

/// The advisory lock key migrations hold (any fixed number; `steadfast` in ASCII).
const MIGRATION_LOCK: i64 = 0x7374_6561_6466_6173;

/// Gate records in PostgreSQL, in a schema of their own (`steadfast` unless told), created
/// and migrated on connect.
///
/// Each write is one `UPDATE … WHERE version = $n` (or an `INSERT … ON CONFLICT DO NOTHING`),
/// so processes racing for a target never both win; no row stays locked between statements.
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
    sql: std::sync::Arc<Statements>,
}

impl PostgresStore {
    /// Connects to `url` (up to 16 connections) and uses the schema `steadfast`.
    pub async fn connect(url: &str) -> Result<Self, StoreError> {
        Self::connect_in_schema(url, "steadfast").await
    }

    /// Connects to `url` and keeps the records in `schema` (letters, digits and `_`).
    pub async fn connect_in_schema(url: &str, schema: &str) -> Result<Self, StoreError> {
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
        let pool = PgPoolOptions::new()
            .max_connections(16)
            .connect_with(options)
            .await?;
        migrate(&pool, schema).await?;
        Ok(PostgresStore {
            pool,
            sql: std::sync::Arc::new(Statements::new(Dialect::Postgres)),
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

impl GateStore for PostgresStore {
    fn load<'a>(&'a self, target: &'a Target) -> StoreFuture<'a, Option<GateRecord>> {
        Box::pin(
            async move { Self::load_on(&mut *self.pool.acquire().await?, &self.sql, target).await },
        )
    }

    fn save<'a>(&'a self, record: &'a GateRecord) -> StoreFuture<'a, bool> {
        Box::pin(
            async move { Self::save_on(&mut *self.pool.acquire().await?, &self.sql, record).await },
        )
    }

    fn list<'a>(&'a self, filter: &'a Filter) -> StoreFuture<'a, Vec<GateRecord>> {
        Box::pin(
            async move { Self::list_on(&mut *self.pool.acquire().await?, &self.sql, filter).await },
        )
    }
}
