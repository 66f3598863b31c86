//! Real processes on a real file (and a real server): a restart keeps the decision, two
//! processes racing for the last retries get exactly that many, and a process killed with
//! SIGKILL while recording leaves a sound database whose counts match the permits granted.
//!
//! The test binary re-runs itself as the worker (`worker_entry`, selected by `STEADFAST_WORKER`),
//! because threads of one process share a connection pool and never contend for the file's
//! locks the way processes do.

mod common;

use std::collections::HashMap;
use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use common::{SCHEMA, minute, postgres_url, reexec, unique, var, worker_runtime};
use steadfast::gate::{GateOptions, Target};
use steadfast_store::{
    Filter, GateError, GateStore, ManualClock, PostgresStore, RetryGate, SqliteStore,
};

const WORKER: &str = "STEADFAST_WORKER";

/// Runs this binary's `worker` test as a child with `vars`.
fn worker(vars: &[(&str, String)]) -> Command {
    reexec("worker_entry", vars)
}

/// The lines a worker printed after `RESULT `.
fn results(out: &std::process::Output) -> Vec<String> {
    assert!(
        out.status.success(),
        "worker failed: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        // libtest may have started the line with "test worker_entry ... ".
        .filter_map(|l| l.find("RESULT ").map(|i| l[i + 7..].to_owned()))
        .collect()
}

async fn open(db: &str) -> Arc<dyn GateStore> {
    if db.starts_with("postgres:") {
        Arc::new(PostgresStore::connect_in_schema(db, SCHEMA).await.unwrap())
    } else {
        Arc::new(SqliteStore::open(db).await.unwrap())
    }
}

/// The worker: does nothing unless run by a test below with `STEADFAST_WORKER` set.
#[test]
fn worker_entry() {
    let Ok(mode) = std::env::var(WORKER) else {
        return;
    };
    worker_runtime().block_on(async move {
        let db = var("STEADFAST_DB");
        let target = Target::new(var("STEADFAST_TYPE"), "1");
        match mode.as_str() {
            "record" | "decide" => {
                let clock = ManualClock::at(minute(var("STEADFAST_MINUTE").parse().unwrap()));
                let gate = RetryGate::new(open(&db).await, GateOptions::default())
                    .unwrap()
                    .with_clock(clock);
                if mode == "record" {
                    for _ in 0..3 {
                        gate.acquire(&target)
                            .await
                            .unwrap()
                            .failed("503")
                            .await
                            .unwrap();
                    }
                }
                println!("RESULT {:?}", gate.check(&target).await.unwrap());
            }
            "race" => {
                let options = GateOptions::default().base_retries(10).max_retries(2);
                let gate = RetryGate::new(open(&db).await, options).unwrap();
                // Start together: at the instant the parent chose.
                let at: u64 = var("STEADFAST_START_MS").parse().unwrap();
                let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap();
                tokio::time::sleep(Duration::from_millis(at).saturating_sub(now)).await;
                let tasks: Vec<_> = (0..8)
                    .map(|_| {
                        let (gate, target) = (gate.clone(), target.clone());
                        tokio::spawn(async move { gate.acquire(&target).await })
                    })
                    .collect();
                let mut granted = 0;
                for t in tasks {
                    match t.await.unwrap() {
                        Ok(_) => granted += 1,
                        Err(GateError::Denied(_)) => {}
                        Err(e) => panic!("{e}"),
                    }
                }
                println!("RESULT {granted}");
            }
            "crash" => {
                // Every acquire is granted (no caps), so a record's count is its grants.
                let options = GateOptions::default()
                    .base_retries(u32::MAX)
                    .max_retries(u32::MAX);
                let gate = RetryGate::new(open(&db).await, options).unwrap();
                let mut log = std::fs::OpenOptions::new()
                    .append(true)
                    .create(true)
                    .open(var("STEADFAST_LOG"))
                    .unwrap();
                for i in 0u64.. {
                    let target = Target::new(target.target_type.clone(), (i % 7).to_string());
                    // Intent before, grant after: a kill between them leaves an intent alone.
                    // Each line is one `write` (as `writeln!` is not: it writes piece by
                    // piece), so a kill never leaves half a line for the next worker to finish.
                    log.write_all(format!("I {}\n", target.target_id).as_bytes())
                        .unwrap();
                    let permit = gate.acquire(&target).await.unwrap();
                    log.write_all(format!("A {}\n", target.target_id).as_bytes())
                        .unwrap();
                    permit.failed(&format!("failure {i}")).await.unwrap();
                }
            }
            other => panic!("unknown worker mode {other}"),
        }
    });
}

#[tokio::test]
async fn a_new_process_sees_the_decision_an_exited_one_recorded() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("steadfast.db").display().to_string();
    let kind = unique("restart");
    let vars = |mode: &str, minute: u64| {
        vec![
            (WORKER, mode.to_owned()),
            ("STEADFAST_DB", db.clone()),
            ("STEADFAST_TYPE", kind.clone()),
            ("STEADFAST_MINUTE", minute.to_string()),
        ]
    };
    let recorded = results(&worker(&vars("record", 3)).output().unwrap());
    let seen = results(&worker(&vars("decide", 3)).output().unwrap());
    assert_eq!(seen, recorded, "the same decision after a restart");
    assert!(
        seen[0].contains("CoolingDown"),
        "three failures use the window's quota: {seen:?}"
    );
    // And this process too, with its own clock at the same minute.
    let gate = RetryGate::new(open(&db).await, GateOptions::default())
        .unwrap()
        .with_clock(ManualClock::at(minute(3)));
    let decision = gate.check(&Target::new(kind, "1")).await.unwrap();
    assert_eq!(format!("{decision:?}"), seen[0]);
    // The failures were all at minute 3: the window opened then and ends at 33.
    assert_eq!(decision.next_allowed_at, Some(minute(33)));
}

/// Two processes × 8 tasks acquire one target with 2 retries left; returns the permits.
async fn race(db: &str) -> u32 {
    let kind = unique("race");
    let target = Target::new(kind.clone(), "1");
    let options = GateOptions::default().base_retries(10).max_retries(2);
    let gate = RetryGate::new(open(db).await, options).unwrap();
    gate.acquire(&target)
        .await
        .unwrap()
        .failed("x")
        .await
        .unwrap();
    assert_eq!(gate.check(&target).await.unwrap().retries_left, 2);

    let start_ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis()
        + 1500;
    let children: Vec<_> = (0..2)
        .map(|_| {
            worker(&[
                (WORKER, "race".to_owned()),
                ("STEADFAST_DB", db.to_owned()),
                ("STEADFAST_TYPE", kind.clone()),
                ("STEADFAST_START_MS", start_ms.to_string()),
            ])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap()
        })
        .collect();
    let mut granted = 0;
    for child in children {
        let out = child.wait_with_output().unwrap();
        granted += results(&out)[0].parse::<u32>().unwrap();
    }
    let record = gate.get(&target).await.unwrap().unwrap();
    assert_eq!(
        record.attempts,
        1 + granted,
        "the record counts every permit"
    );
    granted
}

#[tokio::test]
async fn two_processes_racing_on_sqlite_get_exactly_the_two_retries_left() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("steadfast.db").display().to_string();
    assert_eq!(race(&db).await, 2);
}

#[tokio::test]
async fn two_processes_racing_on_postgres_get_exactly_the_two_retries_left() {
    let Some(url) = postgres_url() else { return };
    assert_eq!(race(&url).await, 2);
}

/// Counts of `prefix target` lines in the worker's log.
fn tally(log: &str, prefix: &str) -> HashMap<String, u64> {
    let mut counts = HashMap::new();
    for line in log.lines() {
        if let Some(id) = line.strip_prefix(prefix) {
            *counts.entry(id.to_owned()).or_insert(0) += 1;
        }
    }
    counts
}

#[tokio::test]
async fn sixty_sigkills_while_recording_leave_a_sound_database_with_true_counts() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("steadfast.db").display().to_string();
    let log_path = dir.path().join("grants.log");
    let kind = unique("crash");
    let mut rng = 0x9e37_79b9_7f4a_7c15_u64;
    let kills = 60;
    for _ in 0..kills {
        let before = file_len(&log_path);
        let mut child = worker(&[
            (WORKER, "crash".to_owned()),
            ("STEADFAST_DB", db.clone()),
            ("STEADFAST_TYPE", kind.clone()),
            ("STEADFAST_LOG", log_path.display().to_string()),
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
        // Wait until it is recording, then kill it 1–20 ms later, mid-write as often as not.
        while file_len(&log_path) == before {
            assert!(
                child.try_wait().unwrap().is_none(),
                "the worker exited early"
            );
            std::thread::sleep(Duration::from_millis(1));
        }
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        std::thread::sleep(Duration::from_millis(1 + rng % 20));
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();
    }

    let store = SqliteStore::open(&db).await.unwrap();
    let (check,): (String,) = sqlx::query_as("PRAGMA integrity_check")
        .fetch_one(store.pool())
        .await
        .unwrap();
    assert_eq!(check, "ok");

    let log = std::fs::read_to_string(&log_path).unwrap();
    let (intents, grants) = (tally(&log, "I "), tally(&log, "A "));
    let records = store
        .list(&Filter::all().target_type(kind.clone()))
        .await
        .unwrap();
    assert_eq!(records.len(), 7);
    let mut total = 0;
    for r in &records {
        let id = &r.target.target_id;
        let granted = grants.get(id).copied().unwrap_or(0);
        let unconfirmed = intents.get(id).copied().unwrap_or(0) - granted;
        let counted = u64::from(r.attempts);
        // Every logged grant is counted; beyond those, only attempts whose grant the kill
        // cut off before it was logged (each one an intent without its grant).
        assert!(
            granted <= counted && counted <= granted + unconfirmed,
            "{id}: {counted} counted, {granted} granted, {unconfirmed} unconfirmed"
        );
        assert!(r.window_retries < r.attempts.max(1));
        total += granted;
    }
    let unconfirmed: u64 = intents.values().sum::<u64>() - grants.values().sum::<u64>();
    assert!(unconfirmed <= kills, "at most one cut-off attempt per kill");
    assert!(
        total > kills,
        "the workers recorded work before each kill: {total}"
    );
    eprintln!("{kills} kills, {total} grants logged, {unconfirmed} cut off between commit and log");
}

fn file_len(path: &Path) -> u64 {
    std::fs::metadata(path).map_or(0, |m| m.len())
}
