//! The gate as a step of the executor: a policy file's `gate = { ... }` table and
//! `Executor::run_gated` over a real SQLite file.

use std::time::{Duration, UNIX_EPOCH};

use steadfast::chain::Registry;
use steadfast::gate::{Reason, Target};
use steadfast::policy::{Format, PolicyDocument};
use steadfast::{Error, Executor};
use steadfast_store::{ManualClock, RetryGate, SqliteStore};

const POLICIES: &str = r#"
[policies."orders.*"]
retry = { max_attempts = 2, backoff = "immediate" }
gate = { base_retries = 1, base_window = "10m", early_window = "5m", max_retries = 3 }
"#;

#[tokio::test]
async fn run_gated_honours_the_files_gate_and_records_each_call() {
    let dir = tempfile::tempdir().unwrap();
    let doc = PolicyDocument::parse(POLICIES, Format::Toml, "policies.toml").unwrap();
    let explained = doc.explain("orders.Reprocess").unwrap();
    assert_eq!(explained.gate().unwrap().0.max_retries, 3);
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
            .run_gated("orders.Reprocess", &target, || {
                runs.set(runs.get() + 1);
                async { Err::<(), _>("upstream 503") }
            })
            .await
    };

    // The first call and the window's one retry run (each with its 2 in-process attempts).
    assert!(matches!(
        call().await,
        Err(Error::Operation { attempts: 2, .. })
    ));
    assert!(matches!(
        call().await,
        Err(Error::Operation { attempts: 2, .. })
    ));
    assert_eq!(runs.get(), 4);
    // The third is refused by the gate, from the file's options: cooling down for 10 min.
    match call().await {
        Err(Error::GateClosed(d)) => {
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
        .run_gated("billing.Charge", &target, || async { Ok::<_, &str>(7) })
        .await;
    assert_eq!(plain.unwrap(), 7);

    // After the window, a success clears the target.
    clock.advance(Duration::from_secs(600));
    let ok = executor
        .run_gated("orders.Reprocess", &target, || async { Ok::<_, &str>(1) })
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
        .run_gated("orders.Reprocess", &Target::new("order", "1"), || async {
            Ok::<_, &str>(())
        })
        .await;
    assert!(matches!(r, Err(Error::GateClosed(d)) if d.reason == Reason::Unavailable));
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
