//! `steadfast dlq` and `steadfast queue stats` over a real SQLite file written by the library
//! (and PostgreSQL when `STEADFAST_TEST_POSTGRES_URL` is set).

mod common;

use common::{stdout, steadfast};

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use steadfast::Retry;
use steadfast::policy::{Plan, Policies};
use steadfast_store::queue::{EnqueueOptions, Nacked, Queue, QueueStore};
use steadfast_store::{PostgresStore, SqliteStore};

/// A topic of its own: two dead letters (a permanent failure, and one that failed its 3
/// attempts) and one message waiting.
async fn seed(store: Arc<dyn QueueStore>, topic: &str) -> Vec<i64> {
    let retry = Retry::immediate().max_attempts(3).build().unwrap();
    let policies = Policies::new(retry.clone())
        .with_plan("*", Plan::new(retry))
        .unwrap();
    let queue = Queue::new(store).with_policies(policies);
    let lease = Duration::from_secs(30);
    let mut dead = Vec::new();
    queue
        .enqueue(topic, b"{\"to\":\"ada\"}".to_vec(), EnqueueOptions::new())
        .await
        .unwrap();
    let l = queue.lease(topic, 1, lease).await.unwrap().remove(0);
    if let Nacked::DeadLettered { id } = queue.nack(&l, "550 no such user", false).await.unwrap() {
        dead.push(id);
    }
    queue
        .enqueue(topic, vec![0xff, 0x00], EnqueueOptions::new())
        .await
        .unwrap();
    for _ in 0..3 {
        let l = queue.lease(topic, 1, lease).await.unwrap().remove(0);
        if let Nacked::DeadLettered { id } = queue.nack(&l, "503", true).await.unwrap() {
            dead.push(id);
        }
    }
    queue
        .enqueue(topic, b"waiting".to_vec(), EnqueueOptions::new())
        .await
        .unwrap();
    dead
}

fn exercise(db: &str, topic: &str, dead: &[i64]) {
    let list = steadfast(&["dlq", "--db", db, "list", "--topic", topic]);
    assert_eq!(list.status.code(), Some(0), "{list:?}");
    let text = stdout(&list);
    assert!(text.starts_with("    ID  TOPIC"), "{text}");
    assert!(text.contains("not retryable: 550 no such user"), "{text}");
    assert!(text.contains("3 attempts failed; last: 503"), "{text}");

    let show = steadfast(&["dlq", "--db", db, "show", &dead[0].to_string()]);
    let text = stdout(&show);
    assert!(
        text.contains("{\"to\":\"ada\"}") && text.contains("#1"),
        "{text}"
    );
    let json = steadfast(&[
        "dlq",
        "--db",
        db,
        "--format",
        "json",
        "show",
        &dead[1].to_string(),
    ]);
    let v: serde_json::Value = serde_json::from_slice(&json.stdout).unwrap();
    assert_eq!(v["payload"]["hex"], "ff00");
    assert_eq!(v["history"].as_array().unwrap().len(), 3);

    let stats = steadfast(&[
        "queue", "--db", db, "--format", "json", "stats", "--topic", topic,
    ]);
    let v: serde_json::Value = serde_json::from_slice(&stats.stdout).unwrap();
    assert_eq!(
        (v[0]["ready"].as_u64(), v[0]["dead"].as_u64()),
        (Some(1), Some(2))
    );

    // Nothing chosen is refused; one by id goes back; the rest by topic are purged.
    assert_eq!(
        steadfast(&["dlq", "--db", db, "purge"]).status.code(),
        Some(2)
    );
    let redrive = steadfast(&["dlq", "--db", db, "redrive", &dead[0].to_string()]);
    assert_eq!(stdout(&redrive), "1 dead letter redriven\n");
    let purge = steadfast(&["dlq", "--db", db, "purge", "--topic", topic]);
    assert_eq!(stdout(&purge), "1 dead letter purged\n");
    let stats = steadfast(&["queue", "--db", db, "stats", "--topic", topic]);
    let text = stdout(&stats);
    let row = text.lines().nth(1).unwrap();
    let counts: Vec<&str> = row.split_whitespace().collect();
    assert_eq!(counts[..5], [topic, "2", "0", "0", "0"], "{text}");
    let missing = steadfast(&["dlq", "--db", db, "show", "999999999"]);
    assert_eq!(missing.status.code(), Some(1));
}

fn topic() -> String {
    let n = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    format!("t{n}.Send")
}

#[tokio::test]
async fn dlq_and_queue_stats_on_a_sqlite_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("steadfast.db");
    let store = SqliteStore::open(&path).await.unwrap();
    let topic = topic();
    let dead = seed(Arc::new(store), &topic).await;
    assert_eq!(dead.len(), 2);
    exercise(path.to_str().unwrap(), &topic, &dead);
}

#[tokio::test]
async fn dlq_and_queue_stats_on_postgres() {
    let Ok(url) = std::env::var("STEADFAST_TEST_POSTGRES_URL") else {
        common::skip_service("STEADFAST_TEST_POSTGRES_URL");
        return;
    };
    let store = PostgresStore::connect(&url).await.unwrap();
    let topic = topic();
    let dead = seed(Arc::new(store), &topic).await;
    exercise(&url, &topic, &dead);
}

/// A service test whose URL is unset fails the run in CI and passes visibly elsewhere: this
/// test binary runs its own PostgreSQL test in a child process without the URL, once with
/// `CI` set and once without. (The test returned early and passed silently before.)
#[test]
fn a_missing_service_fails_in_ci_and_says_skipped_elsewhere() {
    let run = |ci: Option<&str>| {
        let mut cmd = std::process::Command::new(std::env::current_exe().unwrap());
        cmd.args(["--exact", "dlq_and_queue_stats_on_postgres", "--nocapture"])
            .env_remove("STEADFAST_TEST_POSTGRES_URL")
            .env_remove("CI");
        if let Some(ci) = ci {
            cmd.env("CI", ci);
        }
        cmd.output().unwrap()
    };
    let in_ci = run(Some("true"));
    assert!(!in_ci.status.success(), "passed in CI without its service");
    let stderr = String::from_utf8_lossy(&in_ci.stderr);
    assert!(
        stderr
            .contains("STEADFAST_TEST_POSTGRES_URL is not set, and CI runs every service's tests"),
        "{stderr}"
    );
    let laptop = run(None);
    assert!(laptop.status.success());
    let stderr = String::from_utf8_lossy(&laptop.stderr);
    assert!(
        stderr.contains("SKIPPED: STEADFAST_TEST_POSTGRES_URL is not set"),
        "{stderr}"
    );
}

/// A dead letter of a topic allowed 7 deliveries, redriven by the CLI: without a policy file
/// the message gets its 7 again (not the library's default 3); with one, its topic's plan.
#[tokio::test]
async fn redrive_gives_a_message_its_topics_deliveries() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("steadfast.db");
    let db = path.to_str().unwrap();
    let store: Arc<dyn QueueStore> = Arc::new(SqliteStore::open(&path).await.unwrap());
    let retry = Retry::immediate().max_attempts(7).build().unwrap();
    let policies = Policies::new(retry.clone())
        .with_plan("*", Plan::new(retry))
        .unwrap();
    let queue = Queue::new(store).with_policies(policies);
    let topic = topic();
    let lease = Duration::from_secs(30);
    let bury = |queue: Queue<Arc<dyn QueueStore>>, topic: String| async move {
        queue
            .enqueue(&topic, b"x".to_vec(), EnqueueOptions::new())
            .await
            .unwrap();
        let l = queue.lease(&topic, 1, lease).await.unwrap().remove(0);
        assert!(matches!(
            queue.nack(&l, "550", false).await.unwrap(),
            Nacked::DeadLettered { .. }
        ));
    };
    bury(queue.clone(), topic.clone()).await;
    let out = steadfast(&["dlq", "--db", db, "redrive", "--topic", &topic]);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    let l = queue.lease(&topic, 1, lease).await.unwrap().remove(0);
    assert_eq!(l.max_attempts, 7, "redriven without a policy file");

    assert!(matches!(
        queue.nack(&l, "550", false).await.unwrap(),
        Nacked::DeadLettered { .. }
    ));
    let file = dir.path().join("policy.toml");
    std::fs::write(&file, "[defaults]\nretry = { max_attempts = 4 }\n").unwrap();
    let out = steadfast(&[
        "dlq",
        "--db",
        db,
        "redrive",
        "--topic",
        &topic,
        "--policy",
        file.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    let l = queue.lease(&topic, 1, lease).await.unwrap().remove(0);
    assert_eq!(l.max_attempts, 4, "redriven with --policy");
    // Ages in days read as the help says.
    let out = steadfast(&["dlq", "--db", db, "purge", "--older-than", "7d"]);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
}

/// `queue enqueue|list|peek|purge` and the lag and oldest age in `queue stats`, on a SQLite
/// file: what on-call needs without writing code.
#[tokio::test]
async fn queue_commands_enqueue_list_peek_and_purge_live_messages() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("steadfast.db");
    let db = path.to_str().unwrap();
    drop(SqliteStore::open(&path).await.unwrap());
    let topic = topic();
    let file = dir.path().join("policy.toml");
    std::fs::write(&file, "[defaults]\nretry = { max_attempts = 6 }\n").unwrap();
    let policy = file.to_str().unwrap();
    let enq = |payload: &str, extra: &[&str]| {
        let mut args = vec![
            "queue", "--db", db, "--format", "json", "enqueue", &topic, payload,
        ];
        args.extend_from_slice(extra);
        let out = steadfast(&args);
        assert_eq!(out.status.code(), Some(0), "{out:?}");
        serde_json::from_slice::<serde_json::Value>(&out.stdout).unwrap()
    };
    let first = enq(
        "{\"to\":\"ada\"}",
        &["--policy", policy, "--dedupe-key", "ada"],
    );
    assert_eq!(first["added"], true);
    assert_eq!(
        enq("{\"to\":\"ada\"}", &["--dedupe-key", "ada"])["added"],
        false
    );
    enq("later", &["--delay", "1h"]);

    let list = steadfast(&["queue", "--db", db, "list", "--topic", &topic]);
    let text = stdout(&list);
    assert_eq!(text.lines().count(), 3, "{text}");
    assert!(text.contains("0/6") && text.contains("ready"), "{text}");
    assert!(text.contains("0/3") && text.contains("waits 59m"), "{text}");

    let id = first["id"].as_i64().unwrap().to_string();
    let peek = steadfast(&["queue", "--db", db, "peek", &id]);
    let text = stdout(&peek);
    assert!(text.contains("dedupe key: ada"), "{text}");
    assert!(text.contains("{\"to\":\"ada\"}"), "{text}");
    assert_eq!(
        steadfast(&["queue", "--db", db, "peek", "999999999"])
            .status
            .code(),
        Some(1)
    );

    let stats = steadfast(&[
        "queue", "--db", db, "--format", "json", "stats", "--topic", &topic,
    ]);
    let v: serde_json::Value = serde_json::from_slice(&stats.stdout).unwrap();
    assert_eq!(
        (v[0]["ready"].as_u64(), v[0]["scheduled"].as_u64()),
        (Some(1), Some(1))
    );
    assert!(v[0]["lag_ms"].as_u64().is_some() && v[0]["oldest_age_ms"].as_u64().is_some());

    let purge = steadfast(&["queue", "--db", db, "purge", "--topic", &topic]);
    assert_eq!(stdout(&purge), format!("2 messages of {topic} purged\n"));
    let list = steadfast(&["queue", "--db", db, "list", "--topic", &topic]);
    assert!(stdout(&list).contains("(no messages)"));
}
