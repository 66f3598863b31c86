//! What the SQL stores share: the statements (one text per dialect), the migrations runner's
//! list, and the row mapping, written once for both databases by `sql_gate_store!`.

use crate::gate::record::{GateRecord, policy_from_json};

/// How hard a SQL store works to keep a commit through a crash of the machine or of the
/// database server. Either way a commit survives the application being killed at any point,
/// and the database is never left half-written.
///
/// [`SqliteStore`](crate::SqliteStore) uses `Normal` unless told otherwise;
/// [`PostgresStore`](crate::PostgresStore) uses `Full`.
///
/// # Example
/// ```
/// use steadfast_store::Synchronous;
///
/// assert_eq!(Synchronous::default(), Synchronous::Normal);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum Synchronous {
    /// A commit returns before its write-ahead log reaches the disk. A power cut, a kernel
    /// crash or (PostgreSQL) a crash of the server may lose the last commits: a gate target
    /// then forgets its last attempts and may be retried once more. SQLite:
    /// `synchronous = NORMAL` in WAL mode; PostgreSQL: `synchronous_commit = off` on the
    /// store's connections (the server flushes within three `wal_writer_delay`s, 600 ms by
    /// default).
    #[default]
    Normal,
    /// A commit returns once its write-ahead log is on the disk: commits also survive a power
    /// cut, at the disk's sync latency per commit. SQLite: `synchronous = FULL`; PostgreSQL:
    /// the server's own `synchronous_commit` (`on` unless configured otherwise).
    Full,
}

/// The placeholders and JSON handling of a dialect.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Dialect {
    #[cfg_attr(not(feature = "sqlite"), allow(dead_code))]
    Sqlite,
    #[cfg_attr(not(feature = "postgres"), allow(dead_code))]
    Postgres,
}

/// Every statement a SQL store runs, in its dialect.
#[derive(Debug)]
pub(crate) struct Statements {
    pub(crate) load: String,
    pub(crate) insert: String,
    pub(crate) update: String,
    pub(crate) list: String,
    pub(crate) list_type: String,
    pub(crate) purge_clear: String,
}

pub(crate) const COLUMNS: [&str; 16] = [
    "target_type",
    "target_id",
    "attempts",
    "window_retries",
    "window_start_ms",
    "early_retry_used",
    "early_requested",
    "last_attempt_ms",
    "last_success_ms",
    "next_allowed_ms",
    "last_early_granted_ms",
    "last_error",
    "policy",
    "version",
    "created_ms",
    "updated_ms",
];

impl Statements {
    pub(crate) fn new(dialect: Dialect) -> Self {
        let p = |i: usize| match dialect {
            Dialect::Sqlite => format!("?{i}"),
            Dialect::Postgres => format!("${i}"),
        };
        // Postgres keeps the snapshot as JSONB; both hand it over as text.
        let select: Vec<String> = COLUMNS
            .iter()
            .map(|c| match (dialect, *c) {
                (Dialect::Postgres, "policy") => "policy::text AS policy".to_owned(),
                _ => (*c).to_owned(),
            })
            .collect();
        let select = select.join(", ");
        let value = |i: usize| match (dialect, COLUMNS[i - 1]) {
            (Dialect::Postgres, "policy") => format!("{}::jsonb", p(i)),
            _ => p(i),
        };
        let values: Vec<String> = (1..=COLUMNS.len()).map(value).collect();
        // Targets are bound as ?1/?2; everything else keeps its position in COLUMNS.
        let sets: Vec<String> = (3..=COLUMNS.len())
            .map(|i| format!("{} = {}", COLUMNS[i - 1], value(i)))
            .collect();
        let expected = p(COLUMNS.len() + 1);
        let limit = p(1);
        Statements {
            load: format!(
                "SELECT {select} FROM gate_records WHERE target_type = {} AND target_id = {}",
                p(1),
                p(2)
            ),
            insert: format!(
                "INSERT INTO gate_records ({}) VALUES ({}) ON CONFLICT (target_type, target_id) DO NOTHING",
                COLUMNS.join(", "),
                values.join(", ")
            ),
            update: format!(
                "UPDATE gate_records SET {} WHERE target_type = {} AND target_id = {} AND version = {expected}",
                sets.join(", "),
                p(1),
                p(2)
            ),
            list: format!(
                "SELECT {select} FROM gate_records ORDER BY target_type, target_id LIMIT {limit}"
            ),
            list_type: format!(
                "SELECT {select} FROM gate_records WHERE target_type = {} ORDER BY target_type, target_id LIMIT {limit}",
                p(2)
            ),
            purge_clear: format!(
                "DELETE FROM gate_records WHERE attempts = 0 AND updated_ms < {}",
                p(1)
            ),
        }
    }
}

/// A count as stored (BIGINT), and back.
pub(crate) fn count_from_db(
    v: i64,
    target: &steadfast::gate::Target,
) -> Result<u32, crate::StoreError> {
    u32::try_from(v).map_err(|_| crate::StoreError::Corrupt {
        target: target.clone(),
        message: format!("a count of {v}"),
    })
}

/// A gate record's row as the database hands it over (the columns of `COLUMNS`), before its
/// values are checked.
pub(crate) struct GateRow {
    pub(crate) target_type: String,
    pub(crate) target_id: String,
    pub(crate) attempts: i64,
    pub(crate) window_retries: i64,
    pub(crate) window_start_ms: Option<i64>,
    pub(crate) early_retry_used: bool,
    pub(crate) early_requested: bool,
    pub(crate) last_attempt_ms: Option<i64>,
    pub(crate) last_success_ms: Option<i64>,
    pub(crate) next_allowed_ms: Option<i64>,
    pub(crate) last_early_granted_ms: Option<i64>,
    pub(crate) last_error: Option<String>,
    pub(crate) policy: String,
    pub(crate) version: i64,
    pub(crate) created_ms: i64,
    pub(crate) updated_ms: i64,
}

impl GateRow {
    /// The record the row holds; `Corrupt` for a value no writer of ours stores.
    pub(crate) fn into_record(self) -> Result<GateRecord, crate::StoreError> {
        use crate::clock::from_ms;
        let target = steadfast::gate::Target::new(self.target_type, self.target_id);
        let policy =
            policy_from_json(&self.policy).map_err(|message| crate::StoreError::Corrupt {
                target: target.clone(),
                message: format!("policy {:?}: {message}", self.policy),
            })?;
        let version = self.version;
        let mut record = GateRecord::new(target.clone(), policy, from_ms(self.created_ms));
        record.attempts = count_from_db(self.attempts, &target)?;
        record.window_retries = count_from_db(self.window_retries, &target)?;
        record.window_start = self.window_start_ms.map(from_ms);
        record.early_retry_used = self.early_retry_used;
        record.early_requested = self.early_requested;
        record.last_attempt_at = self.last_attempt_ms.map(from_ms);
        record.last_success_at = self.last_success_ms.map(from_ms);
        record.next_allowed_at = self.next_allowed_ms.map(from_ms);
        record.last_early_granted_at = self.last_early_granted_ms.map(from_ms);
        record.last_error = self.last_error;
        record.version = u64::try_from(version).map_err(|_| crate::StoreError::Corrupt {
            target,
            message: format!("version {version}"),
        })?;
        record.updated_at = from_ms(self.updated_ms);
        Ok(record)
    }
}

/// The row mapping and the statements of a SQL store over `$db`, run on a connection the
/// store chooses.
macro_rules! sql_gate_store {
    ($store:ty, $db:ty) => {
        impl $store {
            fn decode(
                row: &<$db as sqlx::Database>::Row,
            ) -> Result<$crate::gate::record::GateRecord, $crate::StoreError> {
                use sqlx::Row as _;
                $crate::backend::sql::GateRow {
                    target_type: row.try_get("target_type")?,
                    target_id: row.try_get("target_id")?,
                    attempts: row.try_get("attempts")?,
                    window_retries: row.try_get("window_retries")?,
                    window_start_ms: row.try_get("window_start_ms")?,
                    early_retry_used: row.try_get("early_retry_used")?,
                    early_requested: row.try_get("early_requested")?,
                    last_attempt_ms: row.try_get("last_attempt_ms")?,
                    last_success_ms: row.try_get("last_success_ms")?,
                    next_allowed_ms: row.try_get("next_allowed_ms")?,
                    last_early_granted_ms: row.try_get("last_early_granted_ms")?,
                    last_error: row.try_get("last_error")?,
                    policy: row.try_get("policy")?,
                    version: row.try_get("version")?,
                    created_ms: row.try_get("created_ms")?,
                    updated_ms: row.try_get("updated_ms")?,
                }
                .into_record()
            }

            /// Binds every column of `r`, in the order of `COLUMNS`.
            fn bind<'q>(
                q: sqlx::query::Query<'q, $db, <$db as sqlx::Database>::Arguments>,
                r: &$crate::gate::record::GateRecord,
            ) -> sqlx::query::Query<'q, $db, <$db as sqlx::Database>::Arguments> {
                use $crate::clock::to_ms;
                use $crate::gate::record::policy_to_json;
                q.bind(r.target.target_type.clone())
                    .bind(r.target.target_id.clone())
                    .bind(i64::from(r.attempts))
                    .bind(i64::from(r.window_retries))
                    .bind(r.window_start.map(to_ms))
                    .bind(r.early_retry_used)
                    .bind(r.early_requested)
                    .bind(r.last_attempt_at.map(to_ms))
                    .bind(r.last_success_at.map(to_ms))
                    .bind(r.next_allowed_at.map(to_ms))
                    .bind(r.last_early_granted_at.map(to_ms))
                    .bind(r.last_error.clone())
                    .bind(policy_to_json(&r.policy))
                    .bind(i64::try_from(r.version).unwrap_or(i64::MAX))
                    .bind(to_ms(r.created_at))
                    .bind(to_ms(r.updated_at))
            }
        }

        impl $store {
            /// Applies the migrations `conn` lacks, inside the caller's transaction (which
            /// holds the dialect's lock); `record` inserts a `(version, name)` row into
            /// `steadfast_migrations`.
            async fn apply_migrations(
                conn: &mut <$db as sqlx::Database>::Connection,
                migrations: &[(i64, &str, &'static str)],
                record: &'static str,
            ) -> Result<(), $crate::StoreError> {
                let (applied,): (i64,) =
                    sqlx::query_as("SELECT COALESCE(MAX(version), 0) FROM steadfast_migrations")
                        .fetch_one(&mut *conn)
                        .await?;
                for (version, name, sql) in migrations.iter().filter(|m| m.0 > applied) {
                    sqlx::raw_sql(sqlx::AssertSqlSafe(*sql))
                        .execute(&mut *conn)
                        .await
                        .map_err(|e| {
                            $crate::StoreError::Open(format!("migration {version} ({name}): {e}"))
                        })?;
                    sqlx::query(record)
                        .bind(version)
                        .bind(*name)
                        .execute(&mut *conn)
                        .await?;
                }
                Ok(())
            }

            /// The record of `target`, read on `conn`.
            async fn load_on(
                conn: &mut <$db as sqlx::Database>::Connection,
                sql: &$crate::backend::sql::Statements,
                target: &steadfast::gate::Target,
            ) -> Result<Option<$crate::gate::record::GateRecord>, $crate::StoreError> {
                let row = sqlx::query(sqlx::AssertSqlSafe(sql.load.as_str()))
                    .bind(target.target_type.as_str())
                    .bind(target.target_id.as_str())
                    .fetch_optional(&mut *conn)
                    .await?;
                row.map(|r| Self::decode(&r)).transpose()
            }

            /// Writes `record` on `conn` over version `record.version - 1` (none for 1).
            async fn save_on(
                conn: &mut <$db as sqlx::Database>::Connection,
                sql: &$crate::backend::sql::Statements,
                record: &$crate::gate::record::GateRecord,
            ) -> Result<bool, $crate::StoreError> {
                let done = if record.version <= 1 {
                    Self::bind(
                        sqlx::query(sqlx::AssertSqlSafe(sql.insert.as_str())),
                        record,
                    )
                    .execute(&mut *conn)
                    .await?
                } else {
                    let expected = i64::try_from(record.version - 1).unwrap_or(i64::MAX);
                    Self::bind(
                        sqlx::query(sqlx::AssertSqlSafe(sql.update.as_str())),
                        record,
                    )
                    .bind(expected)
                    .execute(&mut *conn)
                    .await?
                };
                Ok(done.rows_affected() == 1)
            }

            /// The records `filter` picks, read on `conn`.
            async fn list_on(
                conn: &mut <$db as sqlx::Database>::Connection,
                sql: &$crate::backend::sql::Statements,
                filter: &$crate::Filter,
            ) -> Result<Vec<$crate::gate::record::GateRecord>, $crate::StoreError> {
                let limit = filter.limit.map_or(i64::MAX, i64::from);
                let rows = match &filter.target_type {
                    None => {
                        sqlx::query(sqlx::AssertSqlSafe(sql.list.as_str()))
                            .bind(limit)
                            .fetch_all(&mut *conn)
                            .await?
                    }
                    Some(t) => {
                        sqlx::query(sqlx::AssertSqlSafe(sql.list_type.as_str()))
                            .bind(limit)
                            .bind(t.as_str())
                            .fetch_all(&mut *conn)
                            .await?
                    }
                };
                rows.iter().map(Self::decode).collect()
            }
        }
    };
}

pub(crate) use sql_gate_store;
