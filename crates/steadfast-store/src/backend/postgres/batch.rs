//! Group commit for PostgreSQL: the saves that arrive together reach the server as one
//! `UPDATE … FROM UNNEST(…)` and one `INSERT … SELECT … FROM UNNEST(…)`. Each row is still
//! its own compare-and-set on `version`; the statement returns the rows it wrote.

use std::collections::HashSet;
use std::sync::Arc;

use sqlx::postgres::PgArguments;
use sqlx::query::Query;
use sqlx::{PgPool, Row as _};
use steadfast::gate::Target;
use tokio::sync::{Mutex, mpsc, oneshot};

use crate::StoreError;
use crate::backend::sql::{COLUMNS, Statements};
use crate::clock::to_ms;
use crate::gate::record::{GateRecord, policy_to_json};

/// Saves one batch takes at most.
const MAX_BATCH: usize = 256;

/// A save for the writers, with where to send whether it won.
pub(super) struct Save {
    pub(super) record: Box<GateRecord>,
    /// The stored version holds this record's policy: the update leaves it.
    pub(super) same_policy: bool,
    pub(super) reply: oneshot::Sender<Result<bool, StoreError>>,
}

/// The type of each of [`COLUMNS`], as PostgreSQL spells an array of it.
const TYPES: [&str; 16] = [
    "text", "text", "bigint", "bigint", "bigint", "boolean", "boolean", "bigint", "bigint",
    "bigint", "bigint", "text", "text", "bigint", "bigint", "bigint",
];

/// The two statements of a batch: one text whatever the batch's size (the rows come as
/// arrays), so each is prepared once per connection.
#[derive(Debug)]
pub(super) struct BatchStatements {
    update: String,
    insert: String,
}

impl BatchStatements {
    pub(super) fn new() -> Self {
        let arrays: Vec<String> = TYPES
            .iter()
            .enumerate()
            .map(|(i, t)| format!("${}::{t}[]", i + 1))
            .collect();
        let arrays = arrays.join(", ");
        let names = COLUMNS.join(", ");
        let value = |c: &str| match c {
            "policy" => "v.policy::jsonb".to_owned(),
            _ => format!("v.{c}"),
        };
        // A row whose policy comes as NULL keeps the stored one: no JSON to parse.
        let sets: Vec<String> = COLUMNS[2..]
            .iter()
            .map(|c| match *c {
                "policy" => "policy = COALESCE(v.policy::jsonb, g.policy)".to_owned(),
                _ => format!("{c} = {}", value(c)),
            })
            .collect();
        let values: Vec<String> = COLUMNS.iter().map(|c| value(c)).collect();
        let expected = COLUMNS.len() + 1;
        BatchStatements {
            update: format!(
                "UPDATE gate_records AS g SET {} \
                 FROM UNNEST({arrays}, ${expected}::bigint[]) AS v({names}, expected) \
                 WHERE g.target_type = v.target_type AND g.target_id = v.target_id \
                 AND g.version = v.expected \
                 RETURNING g.target_type, g.target_id",
                sets.join(", ")
            ),
            insert: format!(
                "INSERT INTO gate_records ({names}) SELECT {} \
                 FROM UNNEST({arrays}) AS v({names}) \
                 ON CONFLICT (target_type, target_id) DO NOTHING \
                 RETURNING target_type, target_id",
                values.join(", ")
            ),
        }
    }
}

/// The records of a batch, column by column, bound as arrays.
#[derive(Default)]
struct Columns {
    target_type: Vec<String>,
    target_id: Vec<String>,
    attempts: Vec<i64>,
    window_retries: Vec<i64>,
    window_start: Vec<Option<i64>>,
    early_retry_used: Vec<bool>,
    early_requested: Vec<bool>,
    last_attempt: Vec<Option<i64>>,
    last_success: Vec<Option<i64>>,
    next_allowed: Vec<Option<i64>>,
    last_early_granted: Vec<Option<i64>>,
    last_error: Vec<Option<String>>,
    /// `None`: the row keeps its stored policy.
    policy: Vec<Option<String>>,
    version: Vec<i64>,
    created: Vec<i64>,
    updated: Vec<i64>,
    /// The version each row must still have (updates only).
    expected: Vec<i64>,
}

impl Columns {
    fn of<'a>(saves: impl Iterator<Item = (&'a GateRecord, bool)>) -> Self {
        let mut c = Columns::default();
        for (r, same_policy) in saves {
            let version = i64::try_from(r.version).unwrap_or(i64::MAX);
            c.target_type.push(r.target.target_type.clone());
            c.target_id.push(r.target.target_id.clone());
            c.attempts.push(i64::from(r.attempts));
            c.window_retries.push(i64::from(r.window_retries));
            c.window_start.push(r.window_start.map(to_ms));
            c.early_retry_used.push(r.early_retry_used);
            c.early_requested.push(r.early_requested);
            c.last_attempt.push(r.last_attempt_at.map(to_ms));
            c.last_success.push(r.last_success_at.map(to_ms));
            c.next_allowed.push(r.next_allowed_at.map(to_ms));
            c.last_early_granted
                .push(r.last_early_granted_at.map(to_ms));
            c.last_error.push(r.last_error.clone());
            c.policy
                .push((!same_policy).then(|| policy_to_json(&r.policy)));
            c.version.push(version);
            c.created.push(to_ms(r.created_at));
            c.updated.push(to_ms(r.updated_at));
            c.expected.push(version - 1);
        }
        c
    }

    /// Binds the columns in the order of [`COLUMNS`], then `expected` if `update`.
    fn bind(
        self,
        q: Query<'_, sqlx::Postgres, PgArguments>,
        update: bool,
    ) -> Query<'_, sqlx::Postgres, PgArguments> {
        let q = q
            .bind(self.target_type)
            .bind(self.target_id)
            .bind(self.attempts)
            .bind(self.window_retries)
            .bind(self.window_start)
            .bind(self.early_retry_used)
            .bind(self.early_requested)
            .bind(self.last_attempt)
            .bind(self.last_success)
            .bind(self.next_allowed)
            .bind(self.last_early_granted)
            .bind(self.last_error)
            .bind(self.policy)
            .bind(self.version)
            .bind(self.created)
            .bind(self.updated);
        if update { q.bind(self.expected) } else { q }
    }
}

/// What a writer works with.
/// How a writer saves one record alone (a batch of one, or each row of a batch that
/// failed): the store's own compare-and-set.
pub(super) trait SaveOne: Send + Sync + 'static {
    fn save_one(
        conn: &mut sqlx::PgConnection,
        sql: &Statements,
        record: &GateRecord,
    ) -> impl std::future::Future<Output = Result<bool, StoreError>> + Send;
}

pub(super) struct Writer<S> {
    pub(super) store: std::marker::PhantomData<S>,
    pub(super) pool: PgPool,
    pub(super) sql: Arc<Statements>,
    pub(super) batch: Arc<BatchStatements>,
    pub(super) queue: Arc<Mutex<mpsc::UnboundedReceiver<Save>>>,
}

impl<S: SaveOne> Writer<S> {
    /// Takes what has queued up (waiting for one save if none has), writes it, and goes
    /// again, until every sender is gone.
    pub(super) async fn run(self) {
        let mut batch = Vec::with_capacity(MAX_BATCH);
        loop {
            let n = self
                .queue
                .lock()
                .await
                .recv_many(&mut batch, MAX_BATCH)
                .await;
            if n == 0 {
                return;
            }
            // A target twice in one batch (two tasks of this process racing for it) is
            // written in a later round: one statement must not update a row twice.
            while !batch.is_empty() {
                let mut seen = HashSet::with_capacity(batch.len());
                let (round, later): (Vec<Save>, Vec<Save>) = batch
                    .drain(..)
                    .partition(|s| seen.insert(s.record.target.clone()));
                self.write(round).await;
                batch = later;
            }
        }
    }

    /// Writes saves of distinct targets: inserts (version 1) in one statement, updates in
    /// another, each answered with whether its row was written.
    async fn write(&self, round: Vec<Save>) {
        let (inserts, updates): (Vec<Save>, Vec<Save>) =
            round.into_iter().partition(|s| s.record.version <= 1);
        for (saves, sql, update) in [
            (inserts, &self.batch.insert, false),
            (updates, &self.batch.update, true),
        ] {
            match saves.len() {
                0 => {}
                1 => self.one_by_one(saves).await,
                _ => self.together(saves, sql, update).await,
            }
        }
    }

    async fn together(&self, saves: Vec<Save>, sql: &str, update: bool) {
        let columns = Columns::of(saves.iter().map(|s| (&*s.record, s.same_policy)));
        let written = async {
            let mut conn = self.pool.acquire().await?;
            let rows = columns
                .bind(sqlx::query(sqlx::AssertSqlSafe(sql)), update)
                .fetch_all(&mut *conn)
                .await?;
            rows.iter()
                .map(|row| {
                    Ok(Target::new(
                        row.try_get::<String, _>(0)?,
                        row.try_get::<String, _>(1)?,
                    ))
                })
                .collect::<Result<HashSet<_>, StoreError>>()
        };
        match written.await {
            Ok(written) => {
                for s in saves {
                    let won = written.contains(&s.record.target);
                    let _ = s.reply.send(Ok(won));
                }
            }
            // A deadlock with another process's batch, or anything else: each row alone,
            // so each caller gets its own answer.
            Err(_) => self.one_by_one(saves).await,
        }
    }

    async fn one_by_one(&self, saves: Vec<Save>) {
        for s in saves {
            let result = async {
                let mut conn = self.pool.acquire().await?;
                S::save_one(&mut conn, &self.sql, &s.record).await
            };
            let _ = s.reply.send(result.await);
        }
    }
}
