//! The gate as a step of the executor: a policy file's `gate = { ... }` table and
//! `executor.call(..).gate(&target)` over a real SQLite file.

use std::time::{Duration, UNIX_EPOCH};

use steadfast::chain::Registry;
use steadfast::gate::{Reason, Target};
use steadfast::policy::{Format, PolicyDocument};
use steadfast::{ErrorKind, Executor};
use steadfast_store::{ManualClock, RetryGate, SqliteStore};

const POLICIES: &str = r#"
[policies."orders.*"]
retry = { max_attempts = 2, backoff = "immediate" }
gate = { base_retries = 1, base_window = "10m", early_window = "5m", max_retries = 3 }
"#;

#[tokio::test]
async fn a_gated_call_honours_the_files_gate_and_records_each_call() {
    let dir = tempfile::tempdir().unwrap();
    let doc = PolicyDocument::parse(POLICIES, Format::Toml, "policies.toml").unwrap();
    let explained = doc.explain("orders.Reprocess").unwrap();
    assert_eq!(explained.table().gate.as_ref().unwrap().max_retries, 3);
    let policies = doc.compile(&Registry::new()).unwrap();

    let clock = ManualClock::at(UNIX_EPOCH + Duration::from_secs(1_800_000_000));
    let store = SqliteStore::open(dir.path().join("steadfast.db"))
        .await
        .unwrap();
    let gate = RetryGate::new(store, Default::default())
        .unwrap()
        .with_clock(clock.clone());
    let executor = Executor::builder()
        .policies(policies)
        .gate(gate.clone())
        .build();
    let target = Target::new("order", "42");
    let runs = std::cell::Cell::new(0);
    let call = async || {
        executor
            .call("orders.Reprocess", || {
                runs.set(runs.get() + 1);
                async { Err::<(), _>("upstream 503") }
            })
            .gate(&target)
            .run()
            .await
    };

    // The first call and the window's one retry run (each with its 2 in-process attempts).
    assert!(matches!(
        call().await.map_err(|e| e.into_kind()),
        Err(ErrorKind::Operation { attempts: 2, .. })
    ));
    assert!(matches!(
        call().await.map_err(|e| e.into_kind()),
        Err(ErrorKind::Operation { attempts: 2, .. })
    ));
    assert_eq!(runs.get(), 4);
    // The third is refused by the gate, from the file's options: cooling down for 10 min.
    match call().await.map_err(|e| e.into_kind()) {
        Err(ErrorKind::GateClosed(d)) => {
            assert_eq!(d.reason, Reason::CoolingDown);
            assert_eq!(
                d.next_allowed_at,
                Some(clock.now_plus(Duration::from_secs(600)))
            );
        }
        other => panic!("expected the gate to refuse, got {other:?}"),
    }
    assert_eq!(runs.get(), 4, "a refused call does not run");

    let record = gate.get(&target).await.unwrap().unwrap();
    assert_eq!(record.attempts, 2);
    assert_eq!(record.policy.base_window, Duration::from_secs(600));
    assert!(
        record
            .last_error
            .as_deref()
            .unwrap()
            .starts_with("upstream 503")
    );

    // A key without a gate in its plan runs as `run` does.
    let plain = executor
        .call("billing.Charge", || async { Ok::<_, &str>(7) })
        .gate(&target)
        .run()
        .await;
    assert_eq!(plain.unwrap(), 7);

    // After the window, a success clears the target.
    clock.advance(Duration::from_secs(600));
    let ok = executor
        .call("orders.Reprocess", || async { Ok::<_, &str>(1) })
        .gate(&target)
        .run()
        .await;
    assert_eq!(ok.unwrap(), 1);
    assert_eq!(gate.get(&target).await.unwrap().unwrap().attempts, 0);
}

#[tokio::test]
async fn a_gated_plan_without_a_gate_backend_fails_closed() {
    let doc = PolicyDocument::parse(POLICIES, Format::Toml, "policies.toml").unwrap();
    let executor = Executor::builder()
        .policies(doc.compile(&Registry::new()).unwrap())
        .build();
    let r = executor
        .call("orders.Reprocess", || async { Ok::<_, &str>(()) })
        .gate(&Target::new("order", "1"))
        .run()
        .await;
    assert!(
        matches!(r.as_ref().map_err(|e| e.kind()), Err(ErrorKind::GateClosed(d)) if d.reason == Reason::Unavailable)
    );
}

#[test]
fn a_bad_gate_table_names_the_field_and_line() {
    let text = "[policies.\"a.*\"]\n\ngate = { base_window = \"10m\", early_window = \"20m\" }\n";
    let err = PolicyDocument::parse(text, Format::Toml, "p.toml")
        .unwrap_err()
        .to_string();
    assert!(err.contains("p.toml:3"), "{err}");
    assert!(err.contains("gate.early_window"), "{err}");
}

/// A real gate over SQLite that swaps the executor's policies while it admits a call: the
/// call must keep the plan it resolved before the gate.
struct SwappingGate {
    gate: RetryGate,
    executor: std::sync::OnceLock<Executor>,
    to: steadfast::policy::Policies,
}

impl steadfast::gate::GateBackend for SwappingGate {
    fn acquire_attempt<'a>(
        &'a self,
        target: &'a Target,
        options: &'a steadfast::gate::GateOptions,
    ) -> steadfast::gate::GateFuture<
        'a,
        Result<Box<dyn steadfast::gate::GateAttempt>, steadfast::gate::Decision>,
    > {
        if let Some(executor) = self.executor.get() {
            executor.set_policies(self.to.clone());
        }
        self.gate.acquire_attempt(target, options)
    }
}

#[tokio::test]
async fn a_policy_swap_between_the_gate_and_the_attempts_does_not_mix_plans() {
    let dir = tempfile::tempdir().unwrap();
    let doc = PolicyDocument::parse(POLICIES, Format::Toml, "policies.toml").unwrap();
    let five = PolicyDocument::parse(
        "[policies.\"orders.*\"]\nretry = { max_attempts = 5, backoff = \"immediate\" }\n",
        Format::Toml,
        "swapped.toml",
    )
    .unwrap();
    let store = SqliteStore::open(dir.path().join("steadfast.db"))
        .await
        .unwrap();
    let gate = SwappingGate {
        gate: RetryGate::new(store, Default::default()).unwrap(),
        executor: std::sync::OnceLock::new(),
        to: five.compile(&Registry::new()).unwrap(),
    };
    let gate = std::sync::Arc::new(gate);
    struct Shared(std::sync::Arc<SwappingGate>);
    impl steadfast::gate::GateBackend for Shared {
        fn acquire_attempt<'a>(
            &'a self,
            target: &'a Target,
            options: &'a steadfast::gate::GateOptions,
        ) -> steadfast::gate::GateFuture<
            'a,
            Result<Box<dyn steadfast::gate::GateAttempt>, steadfast::gate::Decision>,
        > {
            self.0.acquire_attempt(target, options)
        }
    }
    let executor = Executor::builder()
        .policies(doc.compile(&Registry::new()).unwrap())
        .gate(Shared(gate.clone()))
        .build();
    let _ = gate.executor.set(executor.clone());
    let runs = std::cell::Cell::new(0);
    let r = executor
        .call("orders.Reprocess", || {
            runs.set(runs.get() + 1);
            async { Err::<(), _>("upstream 503") }
        })
        .gate(&Target::new("order", "7"))
        .run()
        .await;
    // The plan resolved at the start (2 attempts, with its gate) ran the whole call.
    assert!(matches!(
        r.as_ref().map_err(|e| e.kind()),
        Err(ErrorKind::Operation { attempts: 2, .. })
    ));
    assert_eq!(runs.get(), 2);
    // The next call sees the swapped plan: 5 attempts, no gate.
    runs.set(0);
    let r = executor
        .call("orders.Reprocess", || {
            runs.set(runs.get() + 1);
            async { Err::<(), _>("upstream 503") }
        })
        .gate(&Target::new("order", "7"))
        .run()
        .await;
    assert!(matches!(
        r.as_ref().map_err(|e| e.kind()),
        Err(ErrorKind::Operation { attempts: 5, .. })
    ));
}

#[tokio::test]
async fn gate_fallback_timeline_and_hooks_compose_in_one_call() {
    let dir = tempfile::tempdir().unwrap();
    let doc = PolicyDocument::parse(POLICIES, Format::Toml, "policies.toml").unwrap();
    let store = SqliteStore::open(dir.path().join("steadfast.db"))
        .await
        .unwrap();
    let gate = RetryGate::new(store, Default::default()).unwrap();
    let executor = Executor::builder()
        .policies(doc.compile(&Registry::new()).unwrap())
        .gate(gate.clone())
        .build();
    let target = Target::new("order", "9");
    let mut timeline = steadfast::observe::Timeline::default();
    let mut retried = 0;
    let exhausted = std::cell::Cell::new(false);
    let value = executor
        .call("orders.Reprocess", || async {
            Err::<u32, _>("upstream 503")
        })
        .gate(&target)
        .on_retry(|_| retried += 1)
        .on_exhausted(|_| exhausted.set(true))
        .fallback(steadfast::fallback::Fallback::on(steadfast::fallback::On::EXHAUSTED).value(0))
        .timeline(&mut timeline)
        .run()
        .await
        .unwrap();
    assert_eq!(value, 0, "the fallback's value");
    assert_eq!(
        (retried, exhausted.get(), timeline.attempts().len()),
        (1, true, 2)
    );
    // The gate recorded the real failure, not the fallback's value.
    let record = gate.get(&target).await.unwrap().expect("a record");
    assert_eq!(record.attempts, 1);
}
