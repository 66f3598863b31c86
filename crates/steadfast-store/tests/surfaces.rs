//! The durable strategies' cells of the surfaces matrix: a plan's retry gate and idempotency
//! keys behave the same through `executor.call(..)` and a `Handle`'s call, over one real
//! SQLite file per surface. (The blocking mirror, the tower layer and the attribute macro
//! have no call-site target or request to gate or key on.)

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, UNIX_EPOCH};

use steadfast::chain::Registry;
use steadfast::gate::{Reason, Target};
use steadfast::idempotency::Refusal;
use steadfast::observe::{Event, Observer};
use steadfast::policy::{Format, PolicyDocument};
use steadfast::{ErrorKind, Executor, Key};
use steadfast_store::idempotency::Idempotency;
use steadfast_store::{ManualClock, RetryGate, SqliteStore};

const POLICIES: &str = r#"
[policies."orders.*"]
retry = { max_attempts = 2, backoff = "immediate" }
gate = { base_retries = 1, base_window = "10m", early_window = "5m", max_retries = 3 }

[policies."payments.*"]
retry = { max_attempts = 3, backoff = "immediate" }
idempotency = { key = ["order_id"] }
"#;

#[derive(Debug, Clone, Copy)]
enum Surface {
    Call,
    Handle,
}

#[derive(Debug, Default)]
struct Recorder(Mutex<Vec<String>>);

impl Observer for Recorder {
    fn on_event(&self, key: &Key, event: &Event) {
        let seen = match event {
            Event::AttemptStarted { attempt, .. } => format!("{key} attempt {attempt}"),
            Event::RetryScheduled { attempt, .. } => format!("{key} retry after {attempt}"),
            Event::CallFinished { attempts, ok, .. } => {
                format!("{key} finished {attempts} ok={ok}")
            }
            _ => return,
        };
        self.0.lock().unwrap().push(seen);
    }
}

/// How one call ended: the operation's runs and the outcome, comparable across surfaces.
type Ends = Vec<(u32, String)>;

/// The gate's and idempotency's sequence of calls through `surface`, and the events.
async fn through(surface: Surface) -> (Ends, Vec<String>) {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(dir.path().join("steadfast.db"))
        .await
        .unwrap();
    let clock = ManualClock::at(UNIX_EPOCH + Duration::from_secs(1_800_000_000));
    let gate = RetryGate::new(store.clone(), Default::default())
        .unwrap()
        .with_clock(clock);
    let doc = PolicyDocument::parse(POLICIES, Format::Toml, "policies.toml").unwrap();
    let recorder = Arc::new(Recorder::default());
    let executor = Executor::builder()
        .policies(doc.compile(&Registry::new()).unwrap())
        .gate(gate)
        .idempotency(Idempotency::new(store))
        .shared_observer(recorder.clone())
        .build();
    let (orders, payments) = (
        executor.handle("orders.Reprocess").unwrap(),
        executor.handle("payments.Charge").unwrap(),
    );
    let runs = AtomicU32::new(0);
    let mut ends = Ends::new();
    let target = Target::new("order", "42");

    // The gate: two calls (the window's first and its one retry), each with its two
    // in-process attempts, then a refusal before any attempt.
    for _ in 0..3 {
        let op = || {
            runs.fetch_add(1, Ordering::SeqCst);
            async { Err::<u32, _>("upstream 503") }
        };
        let result = match surface {
            Surface::Call => {
                executor
                    .call("orders.Reprocess", op)
                    .gate(&target)
                    .run()
                    .await
            }
            Surface::Handle => orders.call(op).gate(&target).run().await,
        };
        let end = match result.map_err(|e| e.into_kind()) {
            Err(ErrorKind::Operation { attempts, .. }) => format!("failed after {attempts}"),
            Err(ErrorKind::GateClosed(d)) => format!("gate closed: {:?}", d.reason),
            other => panic!("unexpected {other:?}"),
        };
        ends.push((runs.swap(0, Ordering::SeqCst), end));
    }
    assert_eq!(
        ends.last().unwrap().1,
        format!("gate closed: {:?}", Reason::CoolingDown)
    );

    // Idempotency: the first call fails once, retries and stores its result; the same
    // request replays it without running; another request with the key is refused.
    let charge = serde_json::json!({"order_id": "o-1", "amount": 100});
    let changed = serde_json::json!({"order_id": "o-1", "amount": 999});
    for request in [&charge, &charge, &changed] {
        let op = || {
            let n = runs.fetch_add(1, Ordering::SeqCst) + 1;
            async move {
                if n == 1 {
                    Err("reset by peer")
                } else {
                    Ok("charged 100".to_owned())
                }
            }
        };
        let result = match surface {
            Surface::Call => {
                executor
                    .call("payments.Charge", op)
                    .idempotent(request)
                    .run()
                    .await
            }
            Surface::Handle => payments.call(op).idempotent(request).run().await,
        };
        let end = match result.map_err(|e| e.into_kind()) {
            Ok(done) => format!("{} replayed={}", done.value, done.replayed),
            Err(ErrorKind::Idempotency(Refusal::Mismatch)) => "mismatch".to_owned(),
            other => panic!("unexpected {other:?}"),
        };
        // Runs across calls: the replay and the refusal add none.
        ends.push((runs.load(Ordering::SeqCst), end));
    }
    let events = std::mem::take(&mut *recorder.0.lock().unwrap());
    (ends, events)
}

#[tokio::test]
async fn the_gate_and_idempotency_behave_the_same_through_a_call_and_a_handle() {
    let (ends, events) = through(Surface::Call).await;
    assert_eq!(
        ends,
        vec![
            (2, "failed after 2".to_owned()),
            (2, "failed after 2".to_owned()),
            (0, format!("gate closed: {:?}", Reason::CoolingDown)),
            (2, "charged 100 replayed=false".to_owned()),
            (2, "charged 100 replayed=true".to_owned()),
            (2, "mismatch".to_owned()),
        ]
    );
    assert!(
        events.contains(&"payments.Charge finished 2 ok=true".to_owned()),
        "{events:?}"
    );
    assert_eq!(through(Surface::Handle).await, (ends, events), "Handle");
}
