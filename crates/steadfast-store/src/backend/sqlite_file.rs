//! A SQLite file's gate records through connections of the store's own (rusqlite): loads on
//! the calling thread ([`Reader`]) and every other load and save on one writer thread
//! ([`spawn_writer`]). A statement is then a function call into SQLite; through sqlx's
//! SQLite driver each one is a round trip to the connection's thread, two thread handoffs
//! that cost more than the statement on a page-cached file.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use rusqlite::types::Value;
use rusqlite::{Connection, OpenFlags, OptionalExtension as _};
use steadfast::gate::Target;
use tokio::sync::{mpsc, oneshot};

use super::sql::{GateRow, Statements, Synchronous};
use crate::StoreError;
use crate::clock::to_ms;
use crate::gate::record::{GateRecord, policy_to_json};

/// Jobs one transaction takes at most.
const MAX_BATCH: usize = 128;

/// A read-only connection that loads gate records on the calling thread. A point read of a
/// page-cached file takes a few microseconds. It never waits: while another task holds it,
/// or SQLite answers busy, or anything else fails, the load goes to the writer thread, which
/// reports errors. WAL readers do not wait for writers, and each read sees every commit
/// before it.
pub(super) struct Reader(std::sync::Mutex<Connection>);

impl std::fmt::Debug for Reader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Reader")
    }
}

impl Reader {
    /// A reader of the file at `path` that runs `load`; `None` when it cannot be opened so.
    pub(super) fn open(path: &Path, load: &str) -> Option<Self> {
        let flags = OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX;
        let conn = Connection::open_with_flags(path, flags).ok()?;
        // No busy handler: a busy file is the writer's to wait on, not this thread's.
        conn.busy_timeout(Duration::ZERO).ok()?;
        conn.prepare_cached(load).ok()?;
        Some(Reader(std::sync::Mutex::new(conn)))
    }

    /// The record of `target` read by `load`; `None` when the writer should read it.
    pub(super) fn load(
        &self,
        load: &str,
        target: &Target,
    ) -> Option<Result<Option<GateRecord>, StoreError>> {
        let conn = self.0.try_lock().ok()?;
        load_on(&conn, load, target).ok()
    }

    /// Holds the connection, so loads go to the writer (for tests).
    #[cfg(test)]
    pub(super) fn hold(&self) -> std::sync::MutexGuard<'_, Connection> {
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// A load or save for the writer thread, with where to send its result.
pub(super) enum Job {
    Load(
        Target,
        oneshot::Sender<Result<Option<GateRecord>, StoreError>>,
    ),
    Save(Box<GateRecord>, oneshot::Sender<Result<bool, StoreError>>),
}

/// Opens the file at `path` for writing and starts the thread that runs every job sent to
/// the returned queue: one alone as it is (an autocommit statement); several that arrived
/// together inside one `BEGIN IMMEDIATE … COMMIT`, answered once the commit holds (group
/// commit). The thread ends when the store (every sender) is gone.
pub(super) fn spawn_writer(
    path: &Path,
    synchronous: Synchronous,
    sql: Arc<Statements>,
) -> Result<mpsc::UnboundedSender<Job>, StoreError> {
    let flags = OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    let conn = Connection::open_with_flags(path, flags)?;
    // The file is in WAL mode already (sqlx opened and migrated it); these are per connection.
    conn.busy_timeout(Duration::from_secs(5))?;
    let level = match synchronous {
        Synchronous::Normal => "NORMAL",
        Synchronous::Full => "FULL",
    };
    conn.pragma_update(None, "synchronous", level)?;
    for statement in [&sql.load, &sql.insert, &sql.update] {
        conn.prepare_cached(statement)?;
    }
    let (jobs, queue) = mpsc::unbounded_channel();
    std::thread::Builder::new()
        .name("steadfast-sqlite-writer".into())
        .spawn(move || write(&conn, &sql, queue))
        .map_err(|e| StoreError::Open(format!("the writer thread: {e}")))?;
    Ok(jobs)
}

fn write(conn: &Connection, sql: &Statements, mut queue: mpsc::UnboundedReceiver<Job>) {
    let mut batch = Vec::with_capacity(MAX_BATCH);
    while let Some(job) = queue.blocking_recv() {
        batch.push(job);
        while batch.len() < MAX_BATCH {
            match queue.try_recv() {
                Ok(job) => batch.push(job),
                Err(_) => break,
            }
        }
        if batch.len() == 1 {
            if let Some(job) = batch.pop() {
                run(conn, sql, job).answer();
            }
            continue;
        }
        if let Err(e) = conn.execute_batch("BEGIN IMMEDIATE") {
            let message = e.to_string();
            batch.drain(..).for_each(|job| run_failed(job, &message));
            continue;
        }
        let done: Vec<Done> = batch.drain(..).map(|job| run(conn, sql, job)).collect();
        match conn.execute_batch("COMMIT") {
            Ok(()) => done.into_iter().for_each(Done::answer),
            Err(e) => {
                let _ = conn.execute_batch("ROLLBACK");
                let message = e.to_string();
                done.into_iter().for_each(|d| d.fail(&message));
            }
        }
    }
}

/// A job's result, held until its transaction's commit decides (briefly: boxing would cost
/// more).
#[allow(clippy::large_enum_variant)]
pub(super) enum Done {
    Load(
        Result<Option<GateRecord>, StoreError>,
        oneshot::Sender<Result<Option<GateRecord>, StoreError>>,
    ),
    Save(
        Result<bool, StoreError>,
        oneshot::Sender<Result<bool, StoreError>>,
    ),
}

impl Done {
    /// Sends the result to whoever submitted the job (gone: nothing to do).
    pub(super) fn answer(self) {
        match self {
            Done::Load(r, reply) => drop(reply.send(r)),
            Done::Save(r, reply) => drop(reply.send(r)),
        }
    }

    /// Answers that the transaction did not commit, whatever the statement returned.
    pub(super) fn fail(self, message: &str) {
        match self {
            Done::Load(_, reply) => drop(reply.send(not_committed(message))),
            Done::Save(_, reply) => drop(reply.send(not_committed(message))),
        }
    }
}

/// Answers that the transaction `job` was to run in did not begin.
pub(super) fn run_failed(job: Job, message: &str) {
    match job {
        Job::Load(_, reply) => drop(reply.send(not_committed(message))),
        Job::Save(_, reply) => drop(reply.send(not_committed(message))),
    }
}

fn not_committed<T>(message: &str) -> Result<T, StoreError> {
    Err(StoreError::Batch(message.to_owned()))
}

fn run(conn: &Connection, sql: &Statements, job: Job) -> Done {
    match job {
        Job::Load(target, reply) => {
            let loaded = load_on(conn, &sql.load, &target)
                .map_err(StoreError::from)
                .and_then(|r| r);
            Done::Load(loaded, reply)
        }
        Job::Save(record, reply) => Done::Save(save_on(conn, sql, &record), reply),
    }
}

/// The record of `target`: `Err` for SQLite's error, `Ok(Err)` for a row no writer of ours
/// stores.
fn load_on(
    conn: &Connection,
    load: &str,
    target: &Target,
) -> rusqlite::Result<Result<Option<GateRecord>, StoreError>> {
    let mut statement = conn.prepare_cached(load)?;
    let row = statement
        .query_row(
            (target.target_type.as_str(), target.target_id.as_str()),
            |r| {
                Ok(GateRow {
                    target_type: r.get("target_type")?,
                    target_id: r.get("target_id")?,
                    attempts: r.get("attempts")?,
                    window_retries: r.get("window_retries")?,
                    window_start_ms: r.get("window_start_ms")?,
                    early_retry_used: r.get("early_retry_used")?,
                    early_requested: r.get("early_requested")?,
                    last_attempt_ms: r.get("last_attempt_ms")?,
                    last_success_ms: r.get("last_success_ms")?,
                    next_allowed_ms: r.get("next_allowed_ms")?,
                    last_early_granted_ms: r.get("last_early_granted_ms")?,
                    last_error: r.get("last_error")?,
                    policy: r.get("policy")?,
                    version: r.get("version")?,
                    created_ms: r.get("created_ms")?,
                    updated_ms: r.get("updated_ms")?,
                })
            },
        )
        .optional()?;
    Ok(row.map(GateRow::into_record).transpose())
}

/// Writes `record` over version `record.version - 1` (none for 1); whether it won.
fn save_on(conn: &Connection, sql: &Statements, r: &GateRecord) -> Result<bool, StoreError> {
    let ms = |t: Option<std::time::SystemTime>| t.map_or(Value::Null, |t| Value::Integer(to_ms(t)));
    let mut values = vec![
        Value::Text(r.target.target_type.clone()),
        Value::Text(r.target.target_id.clone()),
        Value::Integer(i64::from(r.attempts)),
        Value::Integer(i64::from(r.window_retries)),
        ms(r.window_start),
        Value::Integer(i64::from(r.early_retry_used)),
        Value::Integer(i64::from(r.early_requested)),
        ms(r.last_attempt_at),
        ms(r.last_success_at),
        ms(r.next_allowed_at),
        ms(r.last_early_granted_at),
        r.last_error.clone().map_or(Value::Null, Value::Text),
        Value::Text(policy_to_json(&r.policy)),
        Value::Integer(i64::try_from(r.version).unwrap_or(i64::MAX)),
        Value::Integer(to_ms(r.created_at)),
        Value::Integer(to_ms(r.updated_at)),
    ];
    let statement = if r.version <= 1 {
        &sql.insert
    } else {
        values.push(Value::Integer(
            i64::try_from(r.version - 1).unwrap_or(i64::MAX),
        ));
        &sql.update
    };
    let changed = conn
        .prepare_cached(statement)?
        .execute(rusqlite::params_from_iter(values))?;
    Ok(changed == 1)
}
