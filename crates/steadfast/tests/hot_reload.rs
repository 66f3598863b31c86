//! A watched policy file: changes reach the next call, invalid ones are refused and reported,
//! and strategy state outlives reloads that do not touch it. Real files, real watcher.

mod support;

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};
use steadfast::ErrorKind;

use steadfast::Executor;
use steadfast::chain::{Context, Policy, Registry, Rejection};
use steadfast::policy::FileProvider;
use support::{PolicyEvents, next_event};

fn attempts(executor: &Executor, key: &str) -> Option<u32> {
    executor.plan(key).unwrap().retry().max_attempts()
}

/// Writes by replacing the file, as editors and config-management tools do.
fn replace(path: &std::path::Path, text: &str) {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, text).unwrap();
    std::fs::rename(&tmp, path).unwrap();
}

/// A governance strategy with state of its own: calls counted per process.
#[derive(Debug, Default)]
struct Quota(AtomicU32);
impl Policy for Quota {
    fn on_request(&self, _: &mut Context<'_>) -> Result<(), Rejection> {
        self.0.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn changes_apply_invalid_ones_are_refused_and_state_survives() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("policies.toml");
    std::fs::write(
        &path,
        "[policies.\"svc.*\"]\nretry = { max_attempts = 2, backoff = \"immediate\" }\n\n[policies.\"billing.*\"]\nchain = [\"quota\"]\n",
    )
    .unwrap();
    let quota = Arc::new(Quota::default());
    let registry = Registry::new().register_shared("quota", quota.clone());
    let (observer, mut events) = PolicyEvents::new();
    let executor = Executor::builder()
        .registry(registry)
        .observer(observer)
        .build();
    let debounce = Duration::from_millis(100);
    let _following = executor
        .follow(FileProvider::new(&path).debounce(debounce))
        .await;

    // The file is in force as soon as `follow` returns.
    assert!(next_event(&mut events).await.starts_with("applied "));
    assert_eq!(attempts(&executor, "svc.Get"), Some(2));
    assert_eq!(attempts(&executor, "other.Get"), Some(3));
    executor
        .run("billing.Pay", || async { Ok::<_, ()>(()) })
        .await
        .unwrap();
    assert_eq!(quota.0.load(Ordering::Relaxed), 1);

    // A change: the next call runs under it once the debounce period has passed.
    let written = Instant::now();
    replace(
        &path,
        "[policies.\"svc.*\"]\nretry = { max_attempts = 4, backoff = \"immediate\" }\n\n[policies.\"billing.*\"]\nchain = [\"quota\"]\n",
    );
    assert!(next_event(&mut events).await.starts_with("applied "));
    let latency = written.elapsed();
    println!("change applied {latency:?} after the write (debounce {debounce:?})");
    assert!(
        latency >= debounce,
        "applied before the file was quiet for the debounce period"
    );
    let calls = AtomicU32::new(0);
    let result = executor
        .run("svc.Get", || async {
            calls.fetch_add(1, Ordering::Relaxed);
            Err::<(), _>("down")
        })
        .await;
    assert_eq!(
        (
            result.unwrap_err().attempts(),
            calls.load(Ordering::Relaxed)
        ),
        (4, 4)
    );

    // The governance strategy kept its state through the reload: its options did not change.
    executor
        .run("billing.Pay", || async { Ok::<_, ()>(()) })
        .await
        .unwrap();
    assert_eq!(quota.0.load(Ordering::Relaxed), 2);

    // An invalid write: refused with every problem and its place; the old policies stay.
    replace(
        &path,
        "[policies.\"svc.*\"]\nretry = { max_attempts = 0, base = \"soon\" }\n",
    );
    let event = next_event(&mut events).await;
    let file = path.display().to_string();
    assert_eq!(
        event,
        format!(
            "rejected {file}: {file}:2:26: policies.\"svc.*\".retry.max_attempts: must be >= 1, got 0\n\
             {file}:2:36: policies.\"svc.*\".retry.base: expected a duration like \"250ms\" or \"1m30s\", got \"soon\""
        )
    );
    assert_eq!(attempts(&executor, "svc.Get"), Some(4));

    // An unknown custom strategy is refused too (the executor's registry does not have it).
    replace(&path, "[policies.\"svc.*\"]\nchain = [\"audit\"]\n");
    let event = next_event(&mut events).await;
    assert_eq!(
        event,
        format!(
            "rejected {file}: {file}:2:10: policies.\"svc.*\".chain[0]: unknown custom strategy \"audit\""
        )
    );
    assert_eq!(attempts(&executor, "svc.Get"), Some(4));

    // The file gone: reported, the old policies stay.
    std::fs::remove_file(&path).unwrap();
    assert!(
        next_event(&mut events)
            .await
            .starts_with(&format!("unavailable {file}: cannot read"))
    );
    assert_eq!(attempts(&executor, "svc.Get"), Some(4));

    // And back, written in place this time (not renamed).
    std::fs::write(
        &path,
        "[policies.\"svc.*\"]\nretry = { max_attempts = 6 }\n",
    )
    .unwrap();
    assert!(next_event(&mut events).await.starts_with("applied "));
    assert_eq!(attempts(&executor, "svc.Get"), Some(6));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_of_writes_is_read_once() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("policies.yaml");
    std::fs::write(&path, "defaults:\n  retry: { max_attempts: 1 }\n").unwrap();
    let (observer, mut events) = PolicyEvents::new();
    let executor = Executor::builder().observer(observer).build();
    let _following = executor
        .follow(FileProvider::new(&path).debounce(Duration::from_millis(300)))
        .await;
    assert!(next_event(&mut events).await.starts_with("applied "));
    // Ten writes inside the debounce period, the last one valid: one read, one event.
    for n in 2..=11 {
        std::fs::write(
            &path,
            format!("defaults:\n  retry: {{ max_attempts: {n} }}\n"),
        )
        .unwrap();
    }
    assert!(next_event(&mut events).await.starts_with("applied "));
    assert_eq!(attempts(&executor, "a.B"), Some(11));
    let more = tokio::time::timeout(Duration::from_millis(600), events.recv()).await;
    assert!(more.is_err(), "a second event for one burst: {more:?}");
}

/// Issue 4's last clause: a reload that does not touch a key's breaker keeps its state (an
/// open breaker stays open); one that changes the breaker's options starts it afresh.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_open_breaker_stays_open_across_a_reload_that_does_not_change_it() {
    use steadfast::breaker::BreakerState;

    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("policies.yaml");
    let db = "policies:\n  db.*:\n    retry: { max_attempts: 1 }\n    breaker: { failure_threshold: 2, break: 1h }\n";
    std::fs::write(
        &path,
        format!("{db}  svc.*:\n    retry: {{ max_attempts: 2 }}\n"),
    )
    .unwrap();
    let (observer, mut events) = PolicyEvents::new();
    let executor = Executor::builder().observer(observer).build();
    let _following = executor
        .follow(FileProvider::new(&path).debounce(Duration::from_millis(50)))
        .await;
    assert!(next_event(&mut events).await.starts_with("applied "));
    for _ in 0..2 {
        let _ = executor
            .run("db.Query", || async { Err::<(), _>("down") })
            .await;
    }
    let before = executor.breaker("db.Query").unwrap().unwrap();
    assert_eq!(before.state(), BreakerState::Open);

    // Another table changes; db.* (and its breaker) does not.
    replace(
        &path,
        &format!("{db}  svc.*:\n    retry: {{ max_attempts: 5 }}\n"),
    );
    assert!(next_event(&mut events).await.starts_with("applied "));
    assert_eq!(attempts(&executor, "svc.Get"), Some(5));
    let after = executor.breaker("db.Query").unwrap().unwrap();
    assert!(after.same(&before), "the same breaker, with its state");
    let refused = executor.run("db.Query", || async { Ok::<_, ()>(()) }).await;
    assert!(matches!(
        refused.as_ref().map_err(|e| e.kind()),
        Err(ErrorKind::CircuitOpen { .. })
    ));

    // The breaker's own options change: a new breaker, closed.
    replace(
        &path,
        "policies:\n  db.*:\n    retry: { max_attempts: 1 }\n    breaker: { failure_threshold: 3, break: 1h }\n",
    );
    assert!(next_event(&mut events).await.starts_with("applied "));
    let fresh = executor.breaker("db.Query").unwrap().unwrap();
    assert!(!fresh.same(&before));
    assert_eq!(fresh.state(), BreakerState::Closed);
    assert!(
        executor
            .run("db.Query", || async { Ok::<_, ()>(()) })
            .await
            .is_ok()
    );
}
