//! The gate's rules, the same on every store: the worked example verbatim, the early
//! retry, success and reset, spacing, records, and tasks racing for the last retries.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::{minute, start, subjects, unique};
use steadfast::BackoffOptions;
use steadfast::gate::{Decision, GateOptions, Reason, Target};
use steadfast_store::{Filter, GateError, GateRecord, GateStore, ManualClock, RetryGate};

fn gate(store: &Arc<dyn GateStore>, options: GateOptions, clock: &ManualClock) -> RetryGate {
    RetryGate::new(store.clone(), options)
        .unwrap()
        .with_clock(clock.clone())
}

/// Acquires at `t` (minutes) and expects a permit for `reason` as retry `retry`, then fails it.
async fn allowed_then_fails(
    gate: &RetryGate,
    clock: &ManualClock,
    target: &Target,
    t: u64,
    reason: Reason,
    attempts: u32,
    store: &str,
) {
    clock.set(minute(t));
    let permit = match gate.acquire(target).await {
        Ok(p) => p,
        Err(e) => panic!("{store}: t{t}: expected a permit ({reason}), got {e}"),
    };
    assert_eq!(permit.decision().reason, reason, "{store}: t{t}");
    assert_eq!(permit.decision().attempts, attempts, "{store}: t{t}");
    permit.failed(&format!("failure at t{t}")).await.unwrap();
}

fn denied(result: Result<steadfast_store::Permit, GateError>, store: &str, t: u64) -> Decision {
    match result {
        Err(GateError::Denied(d)) => d,
        Ok(p) => panic!(
            "{store}: t{t}: expected a denial, got a permit {:?}",
            p.decision()
        ),
        Err(e) => panic!("{store}: t{t}: {e}"),
    }
}

/// The worked example, verbatim (defaults, times in minutes):
/// t0 attempt allowed → fails (window opens at 0); t1 allowed (retry 1) → fails; t2 allowed
/// (retry 2) → fails; t3 denied, cooling down until 30; t21 early retry requested → granted
/// (retry 3) → fails; t25 early requested → denied (already used; reopens at 30); t30 allowed
/// (retry 4, new window at 30) → fails; t31 allowed (retry 5) → fails; t32 denied, exhausted
/// (5 of 5) until reset.
#[tokio::test]
async fn the_worked_example_holds_on_every_store() {
    for s in subjects().await {
        let store = s.name;
        let clock = ManualClock::at(start());
        let gate = gate(&s.store, GateOptions::default(), &clock);
        let target = Target::new(unique("worked"), "1");

        // t0: the first attempt, allowed; its failure opens the window at 0.
        allowed_then_fails(&gate, &clock, &target, 0, Reason::FirstAttempt, 1, store).await;
        let record = gate.get(&target).await.unwrap().unwrap();
        assert_eq!(record.window_start, Some(minute(0)), "{store}");
        // t1, t2: retries 1 and 2, inside the window's quota.
        allowed_then_fails(&gate, &clock, &target, 1, Reason::WithinQuota, 2, store).await;
        allowed_then_fails(&gate, &clock, &target, 2, Reason::WithinQuota, 3, store).await;

        // t3: denied, cooling down until 30.
        clock.set(minute(3));
        let d = denied(gate.acquire(&target).await, store, 3);
        assert_eq!(d.reason, Reason::CoolingDown, "{store}");
        assert_eq!(d.next_allowed_at, Some(minute(30)), "{store}");
        assert_eq!((d.attempts, d.retries_left), (3, 3), "{store}");

        // t21: an early retry is requested and granted (retry 3); it fails.
        clock.set(minute(21));
        let early = gate.request_early(&target).await.unwrap();
        assert!(early.allowed, "{store}: {early}");
        assert_eq!(early.reason, Reason::EarlyRetryGranted, "{store}");
        allowed_then_fails(
            &gate,
            &clock,
            &target,
            21,
            Reason::EarlyRetryGranted,
            4,
            store,
        )
        .await;
        let record = gate.get(&target).await.unwrap().unwrap();
        assert!(record.early_retry_used, "{store}");
        assert_eq!(record.last_early_granted_at, Some(minute(21)), "{store}");

        // t25: another early retry is denied: already used; reopens at 30.
        clock.set(minute(25));
        let again = gate.request_early(&target).await.unwrap();
        assert!(!again.allowed, "{store}");
        assert_eq!(again.reason, Reason::EarlyAlreadyUsed, "{store}");
        assert_eq!(again.next_allowed_at, Some(minute(30)), "{store}");
        let d = denied(gate.acquire(&target).await, store, 25);
        assert_eq!(d.reason, Reason::CoolingDown, "{store}");

        // t30: allowed (retry 4), a new window at 30; it fails.
        allowed_then_fails(&gate, &clock, &target, 30, Reason::WithinQuota, 5, store).await;
        let record = gate.get(&target).await.unwrap().unwrap();
        assert_eq!(record.window_start, Some(minute(30)), "{store}");
        // t31: allowed (retry 5); it fails.
        allowed_then_fails(&gate, &clock, &target, 31, Reason::WithinQuota, 6, store).await;

        // t32: denied, exhausted (5 of 5) until reset.
        clock.set(minute(32));
        let d = denied(gate.acquire(&target).await, store, 32);
        assert_eq!(d.reason, Reason::Exhausted, "{store}");
        assert_eq!(d.next_allowed_at, None, "{store}");
        assert_eq!((d.attempts, d.retries_left), (6, 0), "{store}");
        // Still exhausted much later, until a reset.
        clock.set(minute(600));
        assert_eq!(gate.check(&target).await.unwrap().reason, Reason::Exhausted);
        assert!(gate.reset(&target).await.unwrap());
        let d = gate.check(&target).await.unwrap();
        assert_eq!(
            (d.allowed, d.reason),
            (true, Reason::FirstAttempt),
            "{store}"
        );

        let record = gate.get(&target).await.unwrap().unwrap();
        assert_eq!(record.last_error, None, "{store}");
        assert!(!record.early_retry_used, "{store}");
        assert_eq!(
            record.version, 14,
            "{store}: one write per acquire, failure, request and reset"
        );
    }
}

#[tokio::test]
async fn a_success_clears_counters_window_and_early_flag_and_is_recorded() {
    for s in subjects().await {
        let store = s.name;
        let clock = ManualClock::at(start());
        let gate = gate(&s.store, GateOptions::default(), &clock);
        let target = Target::new(unique("success"), "1");
        for _ in 0..3 {
            gate.acquire(&target)
                .await
                .unwrap()
                .failed("503")
                .await
                .unwrap();
        }
        clock.set(minute(20));
        gate.request_early(&target).await.unwrap();
        let permit = gate.acquire(&target).await.unwrap();
        assert_eq!(permit.decision().reason, Reason::EarlyRetryGranted);
        clock.set(minute(22));
        permit.succeeded().await.unwrap();

        let record = gate.get(&target).await.unwrap().unwrap();
        assert_eq!(record.attempts, 0, "{store}");
        assert_eq!(record.window_retries, 0, "{store}");
        assert_eq!(record.window_start, None, "{store}");
        assert!(!record.early_retry_used, "{store}");
        assert_eq!(record.last_success_at, Some(minute(22)), "{store}");
        assert_eq!(record.last_attempt_at, Some(minute(20)), "{store}");
        let d = gate.check(&target).await.unwrap();
        assert_eq!(
            (d.reason, d.retries_left),
            (Reason::FirstAttempt, 5),
            "{store}"
        );
    }
}

#[tokio::test]
async fn an_early_retry_is_refused_before_the_early_window_and_when_none_is_needed() {
    for s in subjects().await {
        let store = s.name;
        let clock = ManualClock::at(start());
        let gate = gate(&s.store, GateOptions::default(), &clock);
        let target = Target::new(unique("early"), "1");
        // Before any failure, an early request is simply the first attempt.
        let d = gate.request_early(&target).await.unwrap();
        assert_eq!(
            (d.allowed, d.reason),
            (true, Reason::FirstAttempt),
            "{store}"
        );
        for _ in 0..3 {
            gate.acquire(&target)
                .await
                .unwrap()
                .failed("503")
                .await
                .unwrap();
        }
        clock.set(minute(19));
        let d = gate.request_early(&target).await.unwrap();
        assert_eq!(d.reason, Reason::CoolingDown, "{store}");
        assert_eq!(
            d.next_allowed_at,
            Some(minute(20)),
            "{store}: when an early retry may go"
        );
        assert!(!gate.get(&target).await.unwrap().unwrap().early_requested);
        // Without a request, the window's end stands.
        clock.set(minute(20));
        let d = gate.check(&target).await.unwrap();
        assert_eq!(d.next_allowed_at, Some(minute(30)), "{store}");
    }
}

#[tokio::test]
async fn spacing_from_a_backoff_schedule_holds_retries_apart() {
    for s in subjects().await {
        let store = s.name;
        let clock = ManualClock::at(start());
        let options = GateOptions::default()
            .base_retries(10)
            .max_retries(10)
            .spacing(
                BackoffOptions::exponential(Duration::from_secs(60)).max(Duration::from_secs(3600)),
            );
        let gate = gate(&s.store, options, &clock);
        let target = Target::new(unique("spacing"), "1");
        gate.acquire(&target)
            .await
            .unwrap()
            .failed("x")
            .await
            .unwrap();
        // Retry 1 waits 1 min after the attempt, retry 2 waits 2 min, retry 3 waits 4 min.
        let mut at = minute(0);
        for wait in [1, 2, 4] {
            clock.set(at + Duration::from_secs(60 * wait - 1));
            let d = denied(gate.acquire(&target).await, store, wait);
            assert_eq!(d.reason, Reason::CoolingDown, "{store}");
            assert_eq!(d.next_allowed_at, Some(at + Duration::from_secs(60 * wait)));
            at += Duration::from_secs(60 * wait);
            clock.set(at);
            gate.acquire(&target)
                .await
                .unwrap()
                .failed("x")
                .await
                .unwrap();
        }
    }
}

#[tokio::test]
async fn records_keep_every_field_and_list_filters_by_type() {
    for s in subjects().await {
        let store = s.name;
        let clock = ManualClock::at(start());
        let options = GateOptions::default().base_retries(3);
        let gate = gate(&s.store, options.clone(), &clock);
        let kind = unique("list");
        for id in ["a", "b", "c"] {
            let target = Target::new(kind.clone(), id);
            gate.acquire(&target)
                .await
                .unwrap()
                .failed("é".repeat(600).as_str())
                .await
                .unwrap();
        }
        let records = gate
            .list(&Filter::all().target_type(kind.clone()))
            .await
            .unwrap();
        let ids: Vec<_> = records
            .iter()
            .map(|r| r.target.target_id.as_str())
            .collect();
        assert_eq!(ids, ["a", "b", "c"], "{store}");
        let limited = gate
            .list(&Filter::all().target_type(kind.clone()).limit(2))
            .await
            .unwrap();
        assert_eq!(limited.len(), 2, "{store}");

        let r = &records[0];
        assert_eq!(r.attempts, 1);
        assert_eq!(r.policy, options, "{store}: the snapshot round-trips");
        assert_eq!(r.last_attempt_at, Some(minute(0)));
        assert_eq!(r.window_start, Some(minute(0)));
        assert_eq!(r.created_at, minute(0));
        assert_eq!(r.version, 2);
        // The error text is cut at 1000 bytes on a character boundary.
        assert_eq!(r.last_error.as_deref().map(str::len), Some(1000), "{store}");
    }
}

#[tokio::test]
async fn a_record_keeps_the_options_it_was_created_with_until_reset() {
    for s in subjects().await {
        let store = s.name;
        let clock = ManualClock::at(start());
        let strict = gate(&s.store, GateOptions::default().max_retries(1), &clock);
        let target = Target::new(unique("snapshot"), "1");
        strict
            .acquire(&target)
            .await
            .unwrap()
            .failed("x")
            .await
            .unwrap();
        strict
            .acquire(&target)
            .await
            .unwrap()
            .failed("x")
            .await
            .unwrap();
        // A gate with looser options judges this record by its snapshot (max 1 retry).
        let loose = gate(&s.store, GateOptions::default().max_retries(9), &clock);
        assert_eq!(
            loose.check(&target).await.unwrap().reason,
            Reason::Exhausted,
            "{store}"
        );
        // A reset clears the counters and keeps the snapshot; `reset_with` adopts new options.
        loose.reset(&target).await.unwrap();
        assert_eq!(
            loose.check(&target).await.unwrap().retries_left,
            1,
            "{store}"
        );
        loose.reset_with(&target, loose.options()).await.unwrap();
        assert_eq!(
            loose.check(&target).await.unwrap().retries_left,
            9,
            "{store}"
        );
    }
}

/// The executor acquires with a plan's gate options; a success (like a reset) must leave the
/// record judged by them, not by the options the `RetryGate` was built with.
#[tokio::test]
async fn a_success_keeps_the_plans_gate_options_and_a_reset_keeps_the_records() {
    use steadfast::gate::GateBackend;
    for s in subjects().await {
        let store = s.name;
        let clock = ManualClock::at(start());
        let gate = gate(&s.store, GateOptions::default(), &clock);
        let plan = GateOptions::default()
            .base_retries(1)
            .base_window(Duration::from_secs(600))
            .early_window(Duration::from_secs(300))
            .max_retries(3);
        let target = Target::new(unique("plan"), "1");
        let first = gate.acquire_attempt(&target, &plan).await.unwrap();
        first.failure("503".to_owned()).await;
        let retry = gate.acquire_attempt(&target, &plan).await.unwrap();
        retry.success().await;
        let record = gate.get(&target).await.unwrap().unwrap();
        assert_eq!(record.policy, plan, "{store}: after a success");
        assert_eq!(record.attempts, 0, "{store}");

        gate.acquire_attempt(&target, &plan)
            .await
            .unwrap()
            .failure("503".to_owned())
            .await;
        assert!(gate.reset(&target).await.unwrap(), "{store}");
        let record = gate.get(&target).await.unwrap().unwrap();
        assert_eq!(record.policy, plan, "{store}: after a reset");
        assert_eq!(record.attempts, 0, "{store}");
    }
}

/// A permit's decision counts the attempt it grants: at retry 3 of 3, none is left.
#[tokio::test]
async fn a_permits_retries_left_excludes_the_retry_it_grants() {
    for s in subjects().await {
        let store = s.name;
        let clock = ManualClock::at(start());
        let options = GateOptions::default().base_retries(5).max_retries(3);
        let gate = gate(&s.store, options, &clock);
        let target = Target::new(unique("left"), "1");
        let mut left = Vec::new();
        for _ in 0..4 {
            let permit = gate.acquire(&target).await.unwrap();
            left.push(permit.decision().retries_left);
            permit.failed("x").await.unwrap();
        }
        assert_eq!(left, [3, 2, 1, 0], "{store}");
        let d = denied(gate.acquire(&target).await, store, 0);
        assert_eq!(
            (d.reason, d.retries_left),
            (Reason::Exhausted, 0),
            "{store}"
        );
    }
}

/// Without spacing, a last attempt stamped after the reader's clock (another writer's clock
/// runs ahead) is no reason to cool down.
#[tokio::test]
async fn a_writer_with_a_clock_ahead_causes_no_cool_down_without_spacing() {
    for s in subjects().await {
        let store = s.name;
        let behind = ManualClock::at(start());
        let ahead = ManualClock::at(start() + Duration::from_millis(40));
        let options = GateOptions::default().base_retries(3);
        let writer = gate(&s.store, options.clone(), &ahead);
        let reader = gate(&s.store, options, &behind);
        let target = Target::new(unique("skew"), "1");
        writer
            .acquire(&target)
            .await
            .unwrap()
            .failed("x")
            .await
            .unwrap();
        let d = reader.check(&target).await.unwrap();
        assert_eq!(d.reason, Reason::WithinQuota, "{store}: {d:?}");
        let permit = reader.acquire(&target).await.unwrap();
        assert_eq!(permit.decision().reason, Reason::WithinQuota, "{store}");
        permit.failed("x").await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sixteen_tasks_racing_for_two_retries_get_exactly_two_permits() {
    for s in subjects().await {
        let store = s.name;
        let options = GateOptions::default().base_retries(10).max_retries(2);
        let gate = RetryGate::new(s.store.clone(), options).unwrap();
        let target = Target::new(unique("race"), "1");
        gate.acquire(&target)
            .await
            .unwrap()
            .failed("x")
            .await
            .unwrap();
        let tasks: Vec<_> = (0..16)
            .map(|_| {
                let gate = gate.clone();
                let target = target.clone();
                tokio::spawn(async move { gate.acquire(&target).await })
            })
            .collect();
        let mut granted = 0;
        for t in tasks {
            match t.await.unwrap() {
                Ok(_permit) => granted += 1,
                Err(GateError::Denied(d)) => assert_eq!(d.reason, Reason::Exhausted),
                Err(e) => panic!("{store}: {e}"),
            }
        }
        assert_eq!(granted, 2, "{store}");
        assert_eq!(gate.get(&target).await.unwrap().unwrap().attempts, 3);
    }
}

/// Saves that reach a store together (which SQLite and PostgreSQL write as one batch) each
/// get their own answer: of two inserts of one target exactly one wins, an update over the
/// version stored wins, one over a stale version loses, and every field reads back as written.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_saves_each_win_or_lose_on_their_own_version() {
    const TARGETS: usize = 40;
    for s in subjects().await {
        let store = s.name;
        let kind = unique("cas");
        let record = |i: usize, version: u64, error: Option<&str>| {
            let mut r = GateRecord::new(
                Target::new(kind.clone(), i.to_string()),
                GateOptions::default().max_retries(i as u32),
                minute(i as u64),
            );
            r.version = version;
            r.attempts = version as u32;
            r.window_start = i.is_multiple_of(2).then(|| minute(1));
            r.early_requested = i.is_multiple_of(3);
            r.last_error = error.map(str::to_owned);
            r
        };
        let save_all = |records: Vec<GateRecord>| {
            let tasks: Vec<_> = records
                .into_iter()
                .map(|r| {
                    let st = s.store.clone();
                    tokio::spawn(async move { st.save(&r).await })
                })
                .collect();
            async move {
                let mut won = Vec::new();
                for t in tasks {
                    won.push(t.await.unwrap().unwrap());
                }
                won
            }
        };

        // Every target inserted twice at once: one of each pair wins.
        let inserts = (0..TARGETS)
            .flat_map(|i| [record(i, 1, Some("first")), record(i, 1, Some("second"))])
            .collect();
        let won = save_all(inserts).await;
        for i in 0..TARGETS {
            let (a, b) = (won[2 * i], won[2 * i + 1]);
            assert!(a ^ b, "{store}: target {i}: insert results {a} and {b}");
        }

        // At once, per target: version 2 over the stored 1 wins; version 5 (over a 4 that
        // was never stored) loses.
        let updates = (0..TARGETS)
            .flat_map(|i| {
                let mut fresh = record(i, 2, None);
                fresh.last_attempt_at = Some(minute(7));
                [fresh, record(i, 5, Some("stale"))]
            })
            .collect();
        let won = save_all(updates).await;
        for i in 0..TARGETS {
            assert_eq!(
                (won[2 * i], won[2 * i + 1]),
                (true, false),
                "{store}: target {i}"
            );
            let target = Target::new(kind.clone(), i.to_string());
            let back = s.store.load(&target).await.unwrap().unwrap();
            let want = {
                let mut r = record(i, 2, None);
                r.last_attempt_at = Some(minute(7));
                r
            };
            assert_eq!(back, want, "{store}: target {i}");
        }

        // At once: even targets write version 3 with the policy stored (which a store may
        // leave as it is), odd ones with a new policy (a success adopting a plan's options).
        let adopted = |i: usize| GateOptions::default().max_retries(100 + i as u32);
        let tasks: Vec<_> = (0..TARGETS)
            .map(|i| {
                let mut r = record(i, 3, Some("third"));
                let st = s.store.clone();
                tokio::spawn(async move {
                    if i.is_multiple_of(2) {
                        st.save_same_policy(&r).await
                    } else {
                        r.policy = adopted(i);
                        st.save(&r).await
                    }
                })
            })
            .collect();
        for t in tasks {
            assert!(t.await.unwrap().unwrap(), "{store}: version 3");
        }
        for i in 0..TARGETS {
            let target = Target::new(kind.clone(), i.to_string());
            let back = s.store.load(&target).await.unwrap().unwrap();
            let want = if i.is_multiple_of(2) {
                GateOptions::default().max_retries(i as u32)
            } else {
                adopted(i)
            };
            assert_eq!(back.policy, want, "{store}: target {i}'s policy");
            assert_eq!(back.last_error.as_deref(), Some("third"), "{store}");
        }
    }
}

/// Retention: records clear for longer than the period go; failing ones and those cleared
/// since stay; a purged target starts over as a first attempt.
#[tokio::test]
async fn clear_records_older_than_the_retention_are_purged() {
    for s in subjects().await {
        let store = s.name;
        // Long before any other test's records (stores are shared), so only these can go.
        let epoch = std::time::SystemTime::UNIX_EPOCH + Duration::from_secs(365 * 24 * 3600);
        let at = |minutes: u64| epoch + Duration::from_secs(60 * minutes);
        let clock = ManualClock::at(at(0));
        let gate = gate(&s.store, GateOptions::default(), &clock);
        let kind = unique("purge");
        let (old, failing, recent) = (
            Target::new(kind.clone(), "old"),
            Target::new(kind.clone(), "failing"),
            Target::new(kind.clone(), "recent"),
        );
        gate.acquire(&old).await.unwrap().succeeded().await.unwrap();
        gate.acquire(&failing)
            .await
            .unwrap()
            .failed("x")
            .await
            .unwrap();
        clock.set(at(60));
        gate.acquire(&recent)
            .await
            .unwrap()
            .succeeded()
            .await
            .unwrap();
        clock.set(at(90));
        let purged = gate
            .purge_clear_older_than(Duration::from_secs(45 * 60))
            .await
            .unwrap();
        assert_eq!(purged, 1, "{store}");
        assert!(gate.get(&old).await.unwrap().is_none(), "{store}");
        assert!(gate.get(&failing).await.unwrap().is_some(), "{store}");
        assert!(gate.get(&recent).await.unwrap().is_some(), "{store}");
        let permit = gate.acquire(&old).await.unwrap();
        assert_eq!(permit.decision().reason, Reason::FirstAttempt, "{store}");
        permit.succeeded().await.unwrap();
    }
}

/// A SQLite store reads records on the calling thread through a connection of its own; a
/// second store on the file (another process's view) sees each commit of the first at once,
/// every field of it, and a record the first writes later.
#[tokio::test]
async fn a_sqlite_read_sees_every_commit_of_another_store_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("steadfast.db");
    let writer = steadfast_store::SqliteStore::open(&path).await.unwrap();
    let reader = steadfast_store::SqliteStore::open(&path).await.unwrap();
    let clock = ManualClock::at(start());
    let options = GateOptions::default()
        .base_retries(u32::MAX)
        .max_retries(u32::MAX);
    let writes = RetryGate::new(writer, options.clone())
        .unwrap()
        .with_clock(clock.clone());
    let reads = RetryGate::new(reader, options)
        .unwrap()
        .with_clock(clock.clone());
    let target = Target::new("read", "through");
    assert_eq!(reads.get(&target).await.unwrap(), None);
    for n in 1..=20u32 {
        clock.advance(Duration::from_secs(1));
        let permit = writes.acquire(&target).await.unwrap();
        permit
            .failed(format!("failure {n}").as_str())
            .await
            .unwrap();
        let written = writes.get(&target).await.unwrap().unwrap();
        let read = reads.get(&target).await.unwrap().unwrap();
        assert_eq!(read, written, "after write {n}");
        assert_eq!(read.attempts, n);
        assert_eq!(
            read.last_error.as_deref(),
            Some(format!("failure {n}").as_str())
        );
        let decision = reads.check(&target).await.unwrap();
        assert!(decision.allowed, "after write {n}: {decision:?}");
    }
    let later = Target::new("read", "later");
    writes
        .acquire(&later)
        .await
        .unwrap()
        .failed("x")
        .await
        .unwrap();
    assert_eq!(reads.get(&later).await.unwrap().unwrap().attempts, 1);
}

/// `Synchronous::Normal` on PostgreSQL turns `synchronous_commit` off on the store's own
/// connections (and only there); the default keeps the server's setting. Either way the
/// gate's rules run the same.
#[tokio::test]
async fn a_postgres_store_commits_as_its_synchronous_setting_says() {
    use steadfast_store::{PostgresStore, Synchronous};
    let Some(url) = common::postgres_url() else {
        return;
    };
    let show = |pool: sqlx::PgPool| async move {
        let (setting,): (String,) = sqlx::query_as("SHOW synchronous_commit")
            .fetch_one(&pool)
            .await
            .unwrap();
        setting
    };
    let server = show(sqlx::PgPool::connect(&url).await.unwrap()).await;
    let full = PostgresStore::connect_in_schema(&url, common::SCHEMA)
        .await
        .unwrap();
    assert_eq!(show(full.pool().clone()).await, server);
    let normal = PostgresStore::connect_with(&url, common::SCHEMA, Synchronous::Normal)
        .await
        .unwrap();
    assert_eq!(show(normal.pool().clone()).await, "off");

    let gate = RetryGate::new(normal, GateOptions::default()).unwrap();
    let target = Target::new("sync", unique("normal"));
    gate.acquire(&target)
        .await
        .unwrap()
        .failed("503")
        .await
        .unwrap();
    let record = gate.get(&target).await.unwrap().unwrap();
    assert_eq!(
        (record.attempts, record.last_error.as_deref()),
        (1, Some("503"))
    );
}
