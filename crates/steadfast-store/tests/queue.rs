//! The retry queue's rules, the same on every store (memory, a SQLite file, PostgreSQL when
//! `STEADFAST_TEST_POSTGRES_URL` is set): exactly `max_attempts` deliveries then one dead
//! letter with its whole history, expired leases counted as attempts, redrive with counters
//! reset, purge of only what is named, dedupe keys, and a worker that loses nothing on
//! shutdown.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use common::{minute, queue_subjects, topic};
use steadfast::Retry;
use steadfast::policy::{Plan, Policies};
use steadfast_store::ManualClock;
use steadfast_store::queue::{
    DeadLetterFilter, EnqueueOptions, Enqueued, Failure, Nacked, Queue, QueueError, QueueStore,
    Worker,
};

type Store = Arc<dyn QueueStore>;

/// A queue whose topics get `attempts` deliveries 10 s apart, on a clock the test moves.
fn queue(store: &Store, attempts: u32, clock: &ManualClock) -> Queue<Store> {
    let retry = Retry::fixed(Duration::from_secs(10))
        .jitter(steadfast::Jitter::None)
        .max_attempts(attempts)
        .build()
        .unwrap();
    Queue::new(store.clone())
        .with_policies(
            Policies::new(retry.clone())
                .with_plan("*", Plan::new(retry))
                .unwrap(),
        )
        .with_clock(clock.clone())
}

const LEASE: Duration = Duration::from_secs(30);

#[tokio::test]
async fn exactly_max_attempts_deliveries_then_one_dead_letter_with_its_history() {
    for s in queue_subjects().await {
        let name = s.name;
        let clock = ManualClock::at(minute(0));
        let q = queue(&s.store, 3, &clock);
        let t = topic("Send");
        let id = q
            .enqueue(&t, b"payload".to_vec(), EnqueueOptions::new())
            .await
            .unwrap()
            .id();
        let mut deliveries = 0;
        let mut dead = None;
        for round in 1..=10u32 {
            let leases = q.lease(&t, 10, LEASE).await.unwrap();
            if leases.is_empty() {
                clock.advance(Duration::from_secs(10));
                continue;
            }
            assert_eq!(leases.len(), 1, "{name}");
            assert_eq!(leases[0].id, id, "{name}");
            deliveries += 1;
            assert_eq!(leases[0].attempt, deliveries, "{name}: round {round}");
            match q
                .nack(&leases[0], &format!("boom {deliveries}"), true)
                .await
                .unwrap()
            {
                Nacked::Retry { at } => {
                    assert_eq!(at, clock.now_plus(Duration::from_secs(10)), "{name}")
                }
                Nacked::DeadLettered { id } => {
                    dead = Some(id);
                    break;
                }
            }
            // Not before the backoff.
            assert!(q.lease(&t, 10, LEASE).await.unwrap().is_empty(), "{name}");
            clock.advance(Duration::from_secs(10));
        }
        assert_eq!(deliveries, 3, "{name}");
        let d = q.dead_letter(dead.unwrap()).await.unwrap().unwrap();
        assert_eq!((d.message_id, d.attempts), (id, 3), "{name}");
        assert_eq!(d.payload, b"payload", "{name}");
        assert_eq!(d.reason, "3 attempts failed; last: boom 3", "{name}");
        let errors: Vec<_> = d
            .history
            .iter()
            .map(|h| (h.attempt, h.error.as_str()))
            .collect();
        assert_eq!(
            errors,
            [(1, "boom 1"), (2, "boom 2"), (3, "boom 3")],
            "{name}"
        );
        assert!(
            q.lease(&t, 10, LEASE).await.unwrap().is_empty(),
            "{name}: gone"
        );
        let all = q
            .dead_letters(&DeadLetterFilter::all().topic(&t))
            .await
            .unwrap();
        assert_eq!(all.len(), 1, "{name}: dead-lettered once");
    }
}

#[tokio::test]
async fn an_expired_lease_counts_as_an_attempt_and_the_last_one_dead_letters() {
    for s in queue_subjects().await {
        let name = s.name;
        let clock = ManualClock::at(minute(0));
        let q = queue(&s.store, 2, &clock);
        let t = topic("Charge");
        q.enqueue(&t, b"x".to_vec(), EnqueueOptions::new())
            .await
            .unwrap();
        let first = q.lease(&t, 1, LEASE).await.unwrap().remove(0);
        // Hidden while leased…
        clock.advance(Duration::from_secs(29));
        assert!(q.lease(&t, 1, LEASE).await.unwrap().is_empty(), "{name}");
        // …visible again once the lease ends, as the next delivery.
        clock.advance(Duration::from_secs(1));
        let second = q.lease(&t, 1, LEASE).await.unwrap().remove(0);
        assert_eq!(second.attempt, 2, "{name}");
        // The first consumer's late answer changes nothing.
        assert!(
            matches!(
                q.ack(&first).await,
                Err(QueueError::LeaseLost { attempt: 1, .. })
            ),
            "{name}"
        );
        assert!(matches!(
            q.nack(&first, "late", true).await,
            Err(QueueError::LeaseLost { .. })
        ));
        // The second consumer dies too: its lease was the last delivery.
        clock.advance(LEASE);
        assert!(q.lease(&t, 1, LEASE).await.unwrap().is_empty(), "{name}");
        let dead = q
            .dead_letters(&DeadLetterFilter::all().topic(&t))
            .await
            .unwrap();
        assert_eq!(dead.len(), 1, "{name}");
        let errors: Vec<_> = dead[0]
            .history
            .iter()
            .map(|h| (h.attempt, h.error.as_str()))
            .collect();
        assert_eq!(
            errors,
            [(1, "lease expired"), (2, "lease expired")],
            "{name}"
        );
        assert_eq!(dead[0].attempts, 2, "{name}");
    }
}

#[tokio::test]
async fn a_permanent_failure_dead_letters_at_once_and_redrive_resets_it() {
    for s in queue_subjects().await {
        let name = s.name;
        let clock = ManualClock::at(minute(0));
        let q = queue(&s.store, 5, &clock);
        let t = topic("Import");
        let id = q
            .enqueue_json(&t, &serde_json::json!({"row": 7}), EnqueueOptions::new())
            .await
            .unwrap()
            .id();
        let lease = q.lease(&t, 1, LEASE).await.unwrap().remove(0);
        let Nacked::DeadLettered { id: dead } = q.nack(&lease, "invalid row", false).await.unwrap()
        else {
            panic!("{name}: expected a dead letter");
        };
        let d = q.dead_letter(dead).await.unwrap().unwrap();
        assert_eq!((d.message_id, d.attempts), (id, 1), "{name}");
        assert_eq!(d.reason, "not retryable: invalid row", "{name}");

        clock.advance(Duration::from_secs(60));
        assert_eq!(
            q.redrive(&DeadLetterFilter::id(dead)).await.unwrap(),
            1,
            "{name}"
        );
        assert!(q.dead_letter(dead).await.unwrap().is_none(), "{name}");
        let again = q.lease(&t, 1, LEASE).await.unwrap().remove(0);
        assert_eq!(again.attempt, 1, "{name}: counters reset");
        assert_eq!(again.max_attempts, 5, "{name}");
        assert_eq!(
            again.json::<serde_json::Value>().unwrap()["row"],
            7,
            "{name}"
        );
        q.ack(&again).await.unwrap();
        let stats = q.stats(Some(&t)).await.unwrap();
        assert!(stats.is_empty(), "{name}: {stats:?}");

        // A dead letter whose dedupe key is live again stays dead on redrive.
        let keyed = || EnqueueOptions::new().dedupe_key("row-8");
        q.enqueue(&t, b"old".to_vec(), keyed()).await.unwrap();
        let lease = q.lease(&t, 1, LEASE).await.unwrap().remove(0);
        let Nacked::DeadLettered { id: dead } = q.nack(&lease, "bad", false).await.unwrap() else {
            panic!("{name}: expected a dead letter");
        };
        q.enqueue(&t, b"new".to_vec(), keyed()).await.unwrap();
        assert_eq!(
            q.redrive(&DeadLetterFilter::id(dead)).await.unwrap(),
            0,
            "{name}"
        );
        assert!(q.dead_letter(dead).await.unwrap().is_some(), "{name}");
    }
}

#[tokio::test]
async fn purge_removes_only_what_it_names() {
    for s in queue_subjects().await {
        let name = s.name;
        let clock = ManualClock::at(minute(0));
        let q = queue(&s.store, 1, &clock);
        let (a, b) = (topic("A"), topic("B"));
        let mut dead = Vec::new();
        // Two dead letters in each topic, at minutes 0 and 10.
        for (m, t) in [(0, &a), (0, &b), (10, &a), (10, &b)] {
            clock.set(minute(m));
            q.enqueue(t, b"x".to_vec(), EnqueueOptions::new())
                .await
                .unwrap();
            let lease = q.lease(t, 1, LEASE).await.unwrap().remove(0);
            match q.nack(&lease, "no", true).await.unwrap() {
                Nacked::DeadLettered { id } => dead.push(id),
                other => panic!("{name}: {other:?}"),
            }
        }
        let count = |t: &str| {
            let q = q.clone();
            let t = t.to_owned();
            async move {
                q.dead_letters(&DeadLetterFilter::all().topic(t))
                    .await
                    .unwrap()
                    .len()
            }
        };
        assert_eq!((count(&a).await, count(&b).await), (2, 2), "{name}");
        // By id: that one only.
        assert_eq!(
            q.purge(&DeadLetterFilter::id(dead[0])).await.unwrap(),
            1,
            "{name}"
        );
        assert_eq!((count(&a).await, count(&b).await), (1, 2), "{name}");
        // Older than minute 5, in topic B: B's first only.
        let old_b = DeadLetterFilter::all().topic(&b).older_than(minute(5));
        assert_eq!(q.purge(&old_b).await.unwrap(), 1, "{name}");
        assert_eq!((count(&a).await, count(&b).await), (1, 1), "{name}");
        // A whole topic.
        assert_eq!(
            q.purge(&DeadLetterFilter::all().topic(&a)).await.unwrap(),
            1
        );
        assert_eq!((count(&a).await, count(&b).await), (0, 1), "{name}");
        // Retention: what died more than 5 minutes ago (at minute 10, now 20).
        clock.set(minute(20));
        // (Every topic's: on a shared database, earlier runs' dead letters go too.)
        let purged = q.purge_older_than(Duration::from_secs(300)).await.unwrap();
        assert!(purged >= 1, "{name}");
        assert_eq!(count(&b).await, 0, "{name}");
    }
}

#[tokio::test]
async fn dedupe_keys_and_not_before() {
    for s in queue_subjects().await {
        let name = s.name;
        let clock = ManualClock::at(minute(0));
        let q = queue(&s.store, 3, &clock);
        let t = topic("Notify");
        let keyed = || EnqueueOptions::new().dedupe_key("order-42");
        let first = q.enqueue(&t, b"1".to_vec(), keyed()).await.unwrap();
        let Enqueued::New(id) = first else {
            panic!("{name}: {first:?}")
        };
        assert_eq!(
            q.enqueue(&t, b"2".to_vec(), keyed()).await.unwrap(),
            Enqueued::Duplicate(id),
            "{name}"
        );
        // Another topic may use the key.
        let other = topic("Other");
        assert!(matches!(
            q.enqueue(&other, b"3".to_vec(), keyed()).await.unwrap(),
            Enqueued::New(_)
        ));
        // Once acked, the key is free.
        let lease = q.lease(&t, 10, LEASE).await.unwrap().remove(0);
        assert_eq!(lease.payload, b"1", "{name}");
        q.ack(&lease).await.unwrap();
        assert!(matches!(
            q.enqueue(&t, b"4".to_vec(), keyed()).await.unwrap(),
            Enqueued::New(_)
        ));

        let later = topic("Later");
        q.enqueue(
            &later,
            b"5".to_vec(),
            EnqueueOptions::new().not_before(minute(5)),
        )
        .await
        .unwrap();
        assert!(
            q.lease(&later, 10, LEASE).await.unwrap().is_empty(),
            "{name}"
        );
        let stats = q.stats(Some(&later)).await.unwrap();
        assert_eq!((stats[0].ready, stats[0].scheduled), (0, 1), "{name}");
        clock.set(minute(5));
        assert_eq!(q.lease(&later, 10, LEASE).await.unwrap().len(), 1, "{name}");
    }
}

/// A worker stopped mid-stream finishes and answers what it holds: nothing stays leased,
/// and every message is acked exactly once by it or its successor.
#[tokio::test]
async fn a_worker_shut_down_mid_stream_loses_nothing() {
    for s in queue_subjects().await {
        let name = s.name;
        let q = Queue::new(s.store.clone());
        let t = topic("Work");
        for i in 0..200u32 {
            q.enqueue(&t, i.to_be_bytes().to_vec(), EnqueueOptions::new())
                .await
                .unwrap();
        }
        let handled = Arc::new(AtomicU64::new(0));
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let stop = Arc::new(std::sync::Mutex::new(Some(stop)));
        let handler = {
            let (handled, stop) = (handled.clone(), stop.clone());
            move |_lease| {
                let (handled, stop) = (handled.clone(), stop.clone());
                async move {
                    tokio::task::yield_now().await;
                    // Ask for shutdown once 50 are done; those in flight still finish.
                    if handled.fetch_add(1, Ordering::SeqCst) + 1 == 50
                        && let Some(stop) = stop.lock().unwrap().take()
                    {
                        let _ = stop.send(());
                    }
                    Ok::<(), Failure>(())
                }
            }
        };
        let report = Worker::new(q.clone(), &t, handler)
            .concurrency(8)
            .batch(8)
            .run(async {
                let _ = stopped.await;
            })
            .await
            .unwrap();
        assert_eq!(report.acked, handled.load(Ordering::SeqCst), "{name}");
        assert!(
            report.acked >= 50 && report.acked < 200,
            "{name}: {report:?}"
        );
        let stats = q.stats(Some(&t)).await.unwrap();
        assert_eq!(stats[0].leased, 0, "{name}: nothing left leased");
        assert_eq!(stats[0].ready + report.acked, 200, "{name}");

        // A successor drains the rest, stopping when the last is done.
        let left = 200 - report.acked;
        let done = Arc::new(AtomicU64::new(0));
        let all_done = Arc::new(tokio::sync::Notify::new());
        let handler = {
            let (done, all_done) = (done.clone(), all_done.clone());
            move |_lease| {
                let (done, all_done) = (done.clone(), all_done.clone());
                async move {
                    if done.fetch_add(1, Ordering::SeqCst) + 1 == left {
                        all_done.notify_one();
                    }
                    Ok::<(), Failure>(())
                }
            }
        };
        let rest = Worker::new(q.clone(), &t, handler)
            .concurrency(4)
            .poll_interval(Duration::from_millis(5))
            .run(all_done.notified())
            .await
            .unwrap();
        assert!(q.stats(Some(&t)).await.unwrap().is_empty(), "{name}");
        assert_eq!(report.acked + rest.acked, 200, "{name}");
        assert_eq!(rest.leases_lost + report.leases_lost, 0, "{name}");
    }
}

#[tokio::test]
async fn a_batch_enqueues_in_order_and_acks_only_the_leases_still_held() {
    for s in queue_subjects().await {
        let name = s.name;
        let clock = ManualClock::at(minute(0));
        let q = queue(&s.store, 3, &clock);
        let t = topic("Batch");
        let held = q
            .enqueue(&t, b"k".to_vec(), EnqueueOptions::new().dedupe_key("k"))
            .await
            .unwrap()
            .id();
        // Plain and keyed messages together; a key already live is a duplicate.
        let items = [
            (b"a".to_vec(), EnqueueOptions::new()),
            (b"k2".to_vec(), EnqueueOptions::new().dedupe_key("k")),
            (b"b".to_vec(), EnqueueOptions::new()),
            (b"c".to_vec(), EnqueueOptions::new().dedupe_key("c")),
        ];
        let done = q.enqueue_many(&t, items).await.unwrap();
        assert_eq!(done.len(), 4, "{name}");
        assert!(matches!(done[0], Enqueued::New(_)), "{name}: {done:?}");
        assert_eq!(done[1], Enqueued::Duplicate(held), "{name}");
        assert!(matches!(done[3], Enqueued::New(_)), "{name}: {done:?}");
        assert!(done[0].id() < done[2].id(), "{name}: ids in order");

        let mut leases = q.lease(&t, 10, LEASE).await.unwrap();
        let by_id = |id: i64| leases.iter().find(|l| l.id == id).unwrap().payload.clone();
        assert_eq!(by_id(done[0].id()), b"a", "{name}");
        assert_eq!(by_id(done[2].id()), b"b", "{name}");
        assert_eq!(by_id(done[3].id()), b"c", "{name}");
        assert_eq!(leases.len(), 4, "{name}");

        // One lease expires and goes to another delivery: its old lease is not acked.
        let stale = leases.remove(0);
        clock.advance(LEASE + Duration::from_secs(1));
        let again = q.lease(&t, 10, LEASE).await.unwrap();
        assert_eq!(again.len(), 4, "{name}: every lease expired");
        let mut answers = vec![stale];
        answers.extend(again);
        let acked = q.ack_many(&answers).await.unwrap();
        assert_eq!(acked, [false, true, true, true, true], "{name}");
        assert!(q.stats(Some(&t)).await.unwrap().is_empty(), "{name}");
        assert!(q.ack_many(&[]).await.unwrap().is_empty(), "{name}");
    }
}

/// Live messages are listed without leasing them and purged unless leased, on every store;
/// stats give the lag of the oldest ready message and the oldest message's enqueue time.
#[tokio::test]
async fn live_messages_are_listed_and_purged_and_stats_give_lag_and_age() {
    use steadfast_store::queue::MessageFilter;
    for s in queue_subjects().await {
        let name = s.name;
        let clock = ManualClock::at(minute(0));
        let queue = queue(&s.store, 3, &clock);
        let topic = topic("Live");
        for p in [b"a", b"b", b"c"] {
            queue
                .enqueue(&topic, p.to_vec(), EnqueueOptions::new())
                .await
                .unwrap();
        }
        clock.set(minute(2));
        let leased = queue.lease(&topic, 1, LEASE).await.unwrap().remove(0);
        queue.nack(&leased, "503", true).await.unwrap();
        let held = queue.lease(&topic, 1, LEASE).await.unwrap().remove(0);
        let live = queue
            .messages(&MessageFilter::all().topic(topic.clone()))
            .await
            .unwrap();
        assert_eq!(live.len(), 3, "{name}");
        let first = live.iter().find(|m| m.id == leased.id).unwrap();
        assert_eq!(
            (first.attempts, first.leased, first.history.len()),
            (1, false, 1),
            "{name}"
        );
        assert!(
            live.iter().find(|m| m.id == held.id).unwrap().leased,
            "{name}"
        );
        let one = queue.messages(&MessageFilter::id(held.id)).await.unwrap();
        assert_eq!(one.len(), 1, "{name}");

        let stats = queue.stats(Some(&topic)).await.unwrap();
        assert_eq!(stats[0].oldest_at, Some(minute(0)), "{name}");
        assert_eq!(
            stats[0].ready_since,
            Some(minute(0)),
            "{name}: the third waits since 0"
        );

        assert_eq!(queue.purge_messages(&topic).await.unwrap(), 2, "{name}");
        let left = queue
            .messages(&MessageFilter::all().topic(topic.clone()))
            .await
            .unwrap();
        assert_eq!(
            left.iter().map(|m| m.id).collect::<Vec<_>>(),
            [held.id],
            "{name}"
        );
        queue.ack(&held).await.unwrap();
    }
}

/// A topic whose plan names a gate is retried by the gate's windows: with one retry per
/// 10-minute window and two in all, a message that always fails is delivered at 0, after
/// the 10 s backoff, at the window's end, and is then a dead letter the gate calls
/// exhausted; one that succeeds on its second delivery leaves a clear record.
#[tokio::test]
async fn a_gated_topic_is_retried_by_the_gates_windows() {
    use steadfast::gate::{GateOptions, Target};
    use steadfast_store::{GateStore, RetryGate};
    for (s, gates) in queue_subjects()
        .await
        .into_iter()
        .zip(common::subjects().await)
    {
        let name = s.name;
        let clock = ManualClock::at(minute(0));
        let retry = Retry::fixed(Duration::from_secs(10))
            .jitter(steadfast::Jitter::None)
            .max_attempts(3)
            .build()
            .unwrap();
        let options = GateOptions::default()
            .base_retries(1)
            .base_window(Duration::from_secs(600))
            .early_window(Duration::from_secs(300))
            .max_retries(2);
        let plan = Plan::new(retry.clone()).gate(options.clone()).unwrap();
        let gate_store: Arc<dyn GateStore> = gates.store.clone();
        let gate = RetryGate::new(gate_store, GateOptions::default())
            .unwrap()
            .with_clock(clock.clone());
        let queue = Queue::new(s.store.clone())
            .with_policies(Policies::new(retry).with_plan("*", plan).unwrap())
            .with_clock(clock.clone())
            .with_gate(gate.clone());
        let topic = topic("Gated");
        assert_eq!(queue.max_attempts(&topic), 3, "{name}");
        let doomed = queue
            .enqueue(&topic, b"doomed".to_vec(), EnqueueOptions::new())
            .await
            .unwrap()
            .id();

        let mut delivered = Vec::new();
        for at in [0, 10, 599, 600, 601] {
            clock.set(minute(0) + Duration::from_secs(at));
            for l in queue.lease(&topic, 1, LEASE).await.unwrap() {
                delivered.push((at, l.attempt));
                queue.nack(&l, "503", true).await.unwrap();
            }
        }
        assert_eq!(delivered, [(0, 1), (10, 2), (600, 3)], "{name}");
        let dead = queue
            .dead_letters(&DeadLetterFilter::all().topic(topic.clone()))
            .await
            .unwrap();
        assert_eq!(dead.len(), 1, "{name}");
        assert_eq!(dead[0].message_id, doomed, "{name}");
        assert!(
            dead[0].reason.contains("exhausted"),
            "{name}: {}",
            dead[0].reason
        );

        let lucky = queue
            .enqueue(&topic, b"lucky".to_vec(), EnqueueOptions::new())
            .await
            .unwrap()
            .id();
        let l = queue.lease(&topic, 1, LEASE).await.unwrap().remove(0);
        queue.nack(&l, "503", true).await.unwrap();
        clock.advance(Duration::from_secs(10));
        let l = queue.lease(&topic, 1, LEASE).await.unwrap().remove(0);
        queue.ack(&l).await.unwrap();
        let record = gate
            .get(&Target::new(topic.clone(), lucky.to_string()))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(record.attempts, 0, "{name}");
    }
}
