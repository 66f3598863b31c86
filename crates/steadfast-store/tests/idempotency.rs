//! Idempotency keys, the same on every store (memory, a SQLite file, PostgreSQL and Redis when
//! their URLs are set): a completed key replays its result, a different fingerprint is a
//! mismatch, a held key is in flight until released or its lock expires, a key is new again
//! after its ttl; and through the executor, 50 concurrent calls with one key run the
//! operation exactly once.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use common::{idempotency_subjects, minute, unique};
use steadfast::idempotency::{IdempotencyOptions, Refusal};
use steadfast::policy::{Plan, Policies};
use steadfast::{ErrorKind, Executor, Retry};
use steadfast_store::ManualClock;
use steadfast_store::idempotency::{Begin, Idempotency, IdempotencyStore};

type Store = Arc<dyn IdempotencyStore>;

const DAY: Duration = Duration::from_secs(86_400);

fn keys(store: &Store, clock: &ManualClock) -> Idempotency<Store> {
    Idempotency::new(store.clone())
        .with_clock(clock.clone())
        .lock_timeout(Duration::from_secs(60))
}

#[tokio::test]
async fn completed_keys_replay_mismatches_refuse_and_held_keys_are_in_flight() {
    for s in idempotency_subjects().await {
        let name = s.name;
        let clock = ManualClock::at(minute(0));
        let keys = keys(&s.store, &clock);
        let key = unique("charge");

        let Begin::New(guard) = keys.begin(&key, "fp-1", DAY).await.unwrap() else {
            panic!("{name}: a new key");
        };
        assert!(
            matches!(
                keys.begin(&key, "fp-1", DAY).await.unwrap(),
                Begin::InFlight
            ),
            "{name}"
        );
        assert!(
            matches!(
                keys.begin(&key, "fp-2", DAY).await.unwrap(),
                Begin::Mismatch
            ),
            "{name}: another request with the key, even in flight"
        );
        assert!(guard.complete(b"ch_1").await.unwrap(), "{name}");
        match keys.begin(&key, "fp-1", DAY).await.unwrap() {
            Begin::Completed(r) => assert_eq!(r, b"ch_1", "{name}"),
            other => panic!("{name}: {other:?}"),
        }
        assert!(
            matches!(
                keys.begin(&key, "fp-2", DAY).await.unwrap(),
                Begin::Mismatch
            ),
            "{name}"
        );

        // Abandoned, or dropped: the key is free for the next claim.
        let other = unique("refund");
        let Begin::New(guard) = keys.begin(&other, "fp", DAY).await.unwrap() else {
            panic!("{name}");
        };
        guard.abandon().await.unwrap();
        let Begin::New(guard) = keys.begin(&other, "fp", DAY).await.unwrap() else {
            panic!("{name}: free after abandon");
        };
        drop(guard);
        let mut freed = false;
        for _ in 0..100 {
            tokio::time::sleep(Duration::from_millis(5)).await;
            if let Begin::New(g) = keys.begin(&other, "fp", DAY).await.unwrap() {
                g.abandon().await.unwrap();
                freed = true;
                break;
            }
        }
        assert!(freed, "{name}: a dropped guard releases its key");
    }
}

#[tokio::test]
async fn an_expired_lock_is_taken_over_and_the_old_holder_stores_nothing() {
    for s in idempotency_subjects().await {
        let name = s.name;
        let clock = ManualClock::at(minute(0));
        let keys = keys(&s.store, &clock);
        let key = unique("send");
        let Begin::New(stale) = keys.begin(&key, "fp", DAY).await.unwrap() else {
            panic!("{name}");
        };
        clock.advance(Duration::from_secs(59));
        assert!(
            matches!(keys.begin(&key, "fp", DAY).await.unwrap(), Begin::InFlight),
            "{name}: the lock holds for 60 s"
        );
        clock.advance(Duration::from_secs(1));
        let Begin::New(fresh) = keys.begin(&key, "fp", DAY).await.unwrap() else {
            panic!("{name}: taken over once the lock expired");
        };
        assert!(!stale.complete(b"late").await.unwrap(), "{name}: fenced");
        assert!(fresh.complete(b"done").await.unwrap(), "{name}");
        match keys.begin(&key, "fp", DAY).await.unwrap() {
            Begin::Completed(r) => assert_eq!(r, b"done", "{name}"),
            other => panic!("{name}: {other:?}"),
        }
    }
}

#[tokio::test]
async fn after_its_ttl_a_key_is_new_again_and_purge_forgets_it() {
    for s in idempotency_subjects().await {
        let name = s.name;
        let clock = ManualClock::at(minute(0));
        let keys = keys(&s.store, &clock);
        let ttl = Duration::from_secs(3600);
        let (a, b) = (unique("a"), unique("b"));
        for key in [&a, &b] {
            let Begin::New(g) = keys.begin(key, "fp", ttl).await.unwrap() else {
                panic!("{name}");
            };
            g.complete(b"r").await.unwrap();
        }
        clock.advance(ttl - Duration::from_millis(1));
        assert!(
            matches!(
                keys.begin(&a, "fp", ttl).await.unwrap(),
                Begin::Completed(_)
            ),
            "{name}: remembered until the ttl"
        );
        clock.advance(Duration::from_millis(1));
        let Begin::New(g) = keys.begin(&a, "other request", ttl).await.unwrap() else {
            panic!("{name}: new again after the ttl, whatever the request");
        };
        g.complete(b"r2").await.unwrap();
        // `b` expired too and nothing claimed it: purge removes it (and only what expired).
        assert!(keys.purge_expired().await.unwrap() >= 1, "{name}");
        assert!(
            matches!(
                keys.begin(&a, "other request", ttl).await.unwrap(),
                Begin::Completed(_)
            ),
            "{name}: the live key stays"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn fifty_concurrent_calls_with_one_key_run_the_operation_once() {
    for s in idempotency_subjects().await {
        let name = s.name;
        let plan = Plan::new(Retry::default())
            .idempotency(IdempotencyOptions::new(["order_id"]))
            .unwrap();
        let executor = Executor::builder()
            .policies(Policies::default().with_plan("payments.*", plan).unwrap())
            .idempotency(Idempotency::new(s.store.clone()))
            .build();
        let order = unique("order");
        let request = serde_json::json!({"order_id": order, "amount": 100});
        let runs = Arc::new(AtomicU32::new(0));
        // The one run waits until every other call has answered.
        let others_done = Arc::new(tokio::sync::Semaphore::new(0));
        let calls: Vec<_> = (0..50)
            .map(|_| {
                let (executor, request) = (executor.clone(), request.clone());
                let (runs, others_done) = (runs.clone(), others_done.clone());
                tokio::spawn(async move {
                    let result = executor
                        .call("payments.Charge", || {
                            let (runs, others_done) = (runs.clone(), others_done.clone());
                            async move {
                                runs.fetch_add(1, Ordering::SeqCst);
                                let _ = others_done.acquire_many(49).await;
                                Ok::<_, std::io::Error>("charged 100".to_owned())
                            }
                        })
                        .idempotent(&request)
                        .run()
                        .await;
                    if result.is_err() {
                        others_done.add_permits(1);
                    }
                    result
                })
            })
            .collect();
        let (mut fresh, mut in_flight) = (0, 0);
        for call in calls {
            match call.await.unwrap().map_err(|e| e.into_kind()) {
                Ok(r) => {
                    assert!(!r.replayed, "{name}");
                    assert_eq!(r.value, "charged 100", "{name}");
                    fresh += 1;
                }
                Err(ErrorKind::Idempotency(Refusal::InFlight)) => in_flight += 1,
                Err(e) => panic!("{name}: {e}"),
            }
        }
        assert_eq!(runs.load(Ordering::SeqCst), 1, "{name}: exactly once");
        assert_eq!((fresh, in_flight), (1, 49), "{name}");

        // Afterwards: the stored result, replayed; another request with the key: a mismatch.
        let replay = executor
            .call("payments.Charge", must_not_run)
            .idempotent(&request)
            .run()
            .await
            .unwrap();
        assert_eq!(
            (replay.value.as_str(), replay.replayed),
            ("charged 100", true),
            "{name}"
        );
        let changed = serde_json::json!({"order_id": order, "amount": 999});
        let refused = executor
            .call("payments.Charge", must_not_run)
            .idempotent(&changed)
            .run()
            .await;
        assert!(
            matches!(
                refused.as_ref().map_err(|e| e.kind()),
                Err(ErrorKind::Idempotency(Refusal::Mismatch))
            ),
            "{name}: {refused:?}"
        );
        // A request without the key field is refused too.
        let keyless = executor
            .call("payments.Charge", must_not_run)
            .idempotent(&serde_json::json!({"amount": 1}))
            .run()
            .await;
        assert!(
            matches!(keyless.as_ref().map_err(|e| e.kind()), Err(ErrorKind::Idempotency(Refusal::MissingKey(f))) if f == "order_id"),
            "{name}: {keyless:?}"
        );
    }
}

async fn must_not_run() -> Result<String, std::io::Error> {
    panic!("the operation must not run")
}

#[tokio::test]
async fn a_failed_call_releases_its_key_so_a_retry_runs() {
    for s in idempotency_subjects().await {
        let name = s.name;
        let plan = Plan::new(Retry::immediate().max_attempts(1).build().unwrap())
            .idempotency(IdempotencyOptions::new(["id"]))
            .unwrap();
        let executor = Executor::builder()
            .policies(Policies::default().with_plan("jobs.*", plan).unwrap())
            .idempotency(Idempotency::new(s.store.clone()))
            .build();
        let request = serde_json::json!({"id": unique("job")});
        let failed = executor
            .call("jobs.Run", || async { Err::<u32, _>("boom") })
            .idempotent(&request)
            .run()
            .await;
        assert!(
            matches!(
                failed.as_ref().map_err(|e| e.kind()),
                Err(ErrorKind::Operation { .. })
            ),
            "{name}"
        );
        let ran = executor
            .call("jobs.Run", || async { Ok::<u32, &str>(7) })
            .idempotent(&request)
            .run()
            .await
            .unwrap();
        assert_eq!((ran.value, ran.replayed), (7, false), "{name}");
    }
}
