//! `steadfast gate` over a real SQLite file written by the library (and PostgreSQL when
//! `STEADFAST_TEST_POSTGRES_URL` is set).

mod common;

use common::{stdout, steadfast};

use std::time::{Duration, SystemTime};

use steadfast::gate::{GateOptions, Target};
use steadfast_store::{GateStore, ManualClock, PostgresStore, RetryGate, SqliteStore};

/// Three failures of `order/42` 21 minutes ago: its window's quota is used, an early retry
/// would be granted; `order/7` failed once.
async fn seed(store: impl GateStore, kind: &str) {
    let clock = ManualClock::at(SystemTime::now() - Duration::from_secs(21 * 60));
    let gate = RetryGate::new(store, GateOptions::default())
        .unwrap()
        .with_clock(clock);
    let order = Target::new(kind, "42");
    for _ in 0..3 {
        gate.acquire(&order)
            .await
            .unwrap()
            .failed("upstream 503")
            .await
            .unwrap();
    }
    gate.acquire(&Target::new(kind, "7"))
        .await
        .unwrap()
        .failed("timeout")
        .await
        .unwrap();
}

fn exercise(db: &str, kind: &str) {
    let list = steadfast(&["gate", "--db", db, "list", "--type", kind]);
    assert_eq!(list.status.code(), Some(0), "{list:?}");
    let text = stdout(&list);
    assert!(text.starts_with("TARGET"), "{text}");
    let row = text.lines().find(|l| l.contains("/42")).unwrap();
    assert!(
        row.contains("cooling_down") && row.contains("upstream 503"),
        "{row}"
    );

    let json = steadfast(&[
        "gate", "--db", db, "--format", "json", "list", "--type", kind,
    ]);
    let rows: serde_json::Value = serde_json::from_slice(&json.stdout).unwrap();
    assert_eq!(rows.as_array().unwrap().len(), 2);
    assert_eq!(rows[0]["target_id"], "42");
    assert_eq!(rows[0]["attempts"], 3);
    assert_eq!(rows[0]["decision"]["reason"], "cooling_down");
    assert_eq!(rows[0]["policy"]["max_retries"], 5);

    let show = steadfast(&["gate", "--db", db, "show", kind, "42"]);
    let text = stdout(&show);
    assert!(text.contains("denied (cooling_down) until"), "{text}");
    assert!(text.contains("2 of 2 retries used"), "{text}");

    let early = steadfast(&[
        "gate",
        "--db",
        db,
        "--format",
        "json",
        "retry-now",
        kind,
        "42",
    ]);
    assert_eq!(early.status.code(), Some(0), "{early:?}");
    let d: serde_json::Value = serde_json::from_slice(&early.stdout).unwrap();
    assert_eq!(d["reason"], "early_retry_granted");
    let again = steadfast(&["gate", "--db", db, "retry-now", kind, "42"]);
    assert!(stdout(&again).contains("allowed (early_retry_granted)"));
    let show = steadfast(&["gate", "--db", db, "show", kind, "42"]);
    assert!(stdout(&show).contains("requested, not yet taken"));

    let reset = steadfast(&["gate", "--db", db, "reset", kind, "42"]);
    assert_eq!(reset.status.code(), Some(0));
    let show = steadfast(&["gate", "--db", db, "--format", "json", "show", kind, "42"]);
    let r: serde_json::Value = serde_json::from_slice(&show.stdout).unwrap();
    assert_eq!(r["attempts"], 0);
    assert_eq!(r["decision"]["reason"], "first_attempt");

    let missing = steadfast(&["gate", "--db", db, "show", kind, "nope"]);
    assert_eq!(missing.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&missing.stderr).contains("no record for"));
}

#[tokio::test]
async fn gate_commands_read_and_steer_a_sqlite_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("steadfast.db");
    seed(SqliteStore::open(&path).await.unwrap(), "order").await;
    exercise(path.to_str().unwrap(), "order");
}

#[tokio::test]
async fn gate_commands_read_and_steer_postgres() {
    let Ok(url) = std::env::var("STEADFAST_TEST_POSTGRES_URL") else {
        common::skip_service("STEADFAST_TEST_POSTGRES_URL");
        return;
    };
    let nanos = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    let kind = format!("cli-{}-{nanos}", std::process::id());
    // The CLI uses the default schema, `steadfast`.
    seed(PostgresStore::connect(&url).await.unwrap(), &kind).await;
    exercise(&url, &kind);
}

/// `gate reset` keeps the options a record is judged by (an application's 3 retries stay 3,
/// not the library's 5); `--policy FILE --key KEY` gives it that key's; `retry-now` on a
/// target with no record exits 1 as `show` and `reset` do.
#[tokio::test]
async fn reset_keeps_the_records_options_and_retry_now_needs_a_record() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("steadfast.db");
    let db = path.to_str().unwrap();
    let app = GateOptions::default()
        .base_retries(1)
        .base_window(Duration::from_secs(600))
        .early_window(Duration::from_secs(300))
        .max_retries(3);
    let gate = RetryGate::new(SqliteStore::open(&path).await.unwrap(), app.clone()).unwrap();
    let order = Target::new("order", "1");
    for _ in 0..2 {
        gate.acquire(&order)
            .await
            .unwrap()
            .failed("503")
            .await
            .unwrap();
    }
    let out = steadfast(&["gate", "--db", db, "reset", "order", "1"]);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    assert_eq!(gate.get(&order).await.unwrap().unwrap().policy, app);

    let file = dir.path().join("policy.toml");
    std::fs::write(
        &file,
        "[policies.\"orders.*\"]\ngate = { base_retries = 1, max_retries = 9 }\n",
    )
    .unwrap();
    let file = file.to_str().unwrap();
    let out = steadfast(&[
        "gate",
        "--db",
        db,
        "reset",
        "order",
        "1",
        "--policy",
        file,
        "--key",
        "orders.Ship",
    ]);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    let policy = gate.get(&order).await.unwrap().unwrap().policy;
    assert_eq!((policy.base_retries, policy.max_retries), (1, 9));
    let out = steadfast(&[
        "gate",
        "--db",
        db,
        "reset",
        "order",
        "1",
        "--policy",
        file,
        "--key",
        "other.Thing",
    ]);
    assert_eq!(out.status.code(), Some(1), "a key with no gate: {out:?}");

    let out = steadfast(&["gate", "--db", db, "retry-now", "order", "nope"]);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert!(String::from_utf8_lossy(&out.stderr).contains("no record for"));
}

/// `gate purge --older-than` deletes the records clear for longer than that (a success 40
/// days ago) and keeps failing ones and those cleared since.
#[tokio::test]
async fn purge_deletes_records_clear_for_longer_than_the_retention() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("steadfast.db");
    let db = path.to_str().unwrap();
    let store = SqliteStore::open(&path).await.unwrap();
    let day = Duration::from_secs(24 * 3600);
    let clock = ManualClock::at(SystemTime::now() - 40 * day);
    let gate = RetryGate::new(store, GateOptions::default())
        .unwrap()
        .with_clock(clock.clone());
    let (old, failing, recent) = (
        Target::new("order", "old"),
        Target::new("order", "failing"),
        Target::new("order", "recent"),
    );
    gate.acquire(&old).await.unwrap().succeeded().await.unwrap();
    gate.acquire(&failing)
        .await
        .unwrap()
        .failed("503")
        .await
        .unwrap();
    clock.advance(35 * day);
    gate.acquire(&recent)
        .await
        .unwrap()
        .succeeded()
        .await
        .unwrap();

    let out = steadfast(&[
        "gate",
        "--db",
        db,
        "--format",
        "json",
        "purge",
        "--older-than",
        "30d",
    ]);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["purged"], 1);
    assert!(gate.get(&old).await.unwrap().is_none());
    assert!(gate.get(&failing).await.unwrap().is_some());
    assert!(gate.get(&recent).await.unwrap().is_some());
}

/// `gate list --state` keeps the targets the gate would answer so now.
#[tokio::test]
async fn list_by_state_picks_denied_and_reasons() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("steadfast.db");
    seed(SqliteStore::open(&path).await.unwrap(), "order").await;
    let db = path.to_str().unwrap();
    let ids = |state: &str| {
        let out = steadfast(&[
            "gate", "--db", db, "--format", "json", "list", "--state", state,
        ]);
        assert_eq!(out.status.code(), Some(0), "{out:?}");
        let rows: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        rows.as_array()
            .unwrap()
            .iter()
            .map(|r| r["target_id"].as_str().unwrap().to_owned())
            .collect::<Vec<_>>()
    };
    assert_eq!(ids("denied"), ["42"]);
    assert_eq!(ids("cooling_down"), ["42"]);
    assert_eq!(ids("allowed"), ["7"]);
    assert!(ids("exhausted").is_empty());
}
