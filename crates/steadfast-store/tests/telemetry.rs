//! What the gate and the queue tell observers, on every store: gate decisions by reason,
//! deliveries, acks, retries, dead letters by cause (an expired last delivery included),
//! lost leases, redrives and depths with the oldest message's age; and the same through
//! `MetricsObserver` as counters and gauges.

mod common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::{minute, queue_subjects, subjects, topic, unique};
use metrics_util::MetricKind;
use metrics_util::debugging::{DebugValue, DebuggingRecorder};
use steadfast::gate::{GateOptions, Target};
use steadfast::observe::{DurableEvent, Event, MetricsObserver, Observer};
use steadfast::policy::{Plan, Policies};
use steadfast::{Key, Retry};
use steadfast_store::queue::{EnqueueOptions, Queue, QueueStore};
use steadfast_store::{GateError, ManualClock, RetryGate, SqliteStore};

/// Every durable event, written out.
#[derive(Debug, Clone, Default)]
struct Record(Arc<Mutex<Vec<String>>>);

impl Observer for Record {
    fn on_event(&self, _: &Key, _: &Event) {}

    fn on_durable_event(&self, event: &DurableEvent<'_>) {
        let line = match *event {
            DurableEvent::GateDecided {
                allowed, reason, ..
            } => format!("gate {allowed} {}", reason.as_str()),
            DurableEvent::Delivered { attempt, .. } => format!("delivered {attempt}"),
            DurableEvent::Acked { count, .. } => format!("acked {count}"),
            DurableEvent::Retried { attempt, delay, .. } => {
                format!("retried {attempt} {}s", delay.as_secs())
            }
            DurableEvent::DeadLettered { count, reason, .. } => format!("dead {count} {reason}"),
            DurableEvent::LeaseLost { .. } => "lost".to_owned(),
            DurableEvent::Redriven { count } => format!("redriven {count}"),
            DurableEvent::QueueDepth {
                ready,
                scheduled,
                leased,
                dead,
                oldest,
                ..
            } => format!(
                "depth {ready} {scheduled} {leased} {dead} {}s",
                oldest.unwrap_or_default().as_secs()
            ),
            _ => format!("{event:?}"),
        };
        self.0.lock().unwrap().push(line);
    }
}

impl Record {
    fn take(&self) -> Vec<String> {
        std::mem::take(&mut *self.0.lock().unwrap())
    }
}

fn queue(
    store: Arc<dyn QueueStore>,
    clock: &ManualClock,
    record: &Record,
) -> Queue<Arc<dyn QueueStore>> {
    let retry = Retry::fixed(Duration::from_secs(10))
        .jitter(steadfast::Jitter::None)
        .max_attempts(2)
        .build()
        .unwrap();
    Queue::new(store)
        .with_policies(
            Policies::new(retry.clone())
                .with_plan("*", Plan::new(retry))
                .unwrap(),
        )
        .with_clock(clock.clone())
        .with_observer(record.clone())
}

#[tokio::test]
async fn the_queue_reports_every_step_on_every_store() {
    let lease = Duration::from_secs(30);
    for s in queue_subjects().await {
        let name = s.name;
        let clock = ManualClock::at(minute(0));
        let record = Record::default();
        let queue = queue(s.store.clone(), &clock, &record);
        let topic = topic("Telemetry");
        for payload in ["ok", "retry", "bad", "expire"] {
            queue
                .enqueue(&topic, payload.as_bytes().to_vec(), EnqueueOptions::new())
                .await
                .unwrap();
        }
        let leases = queue.lease(&topic, 4, lease).await.unwrap();
        let by = |p: &str| leases.iter().find(|l| l.payload == p.as_bytes()).unwrap();
        queue.ack(by("ok")).await.unwrap();
        queue.nack(by("retry"), "503", true).await.unwrap();
        queue.nack(by("bad"), "400", false).await.unwrap();
        assert_eq!(
            record.take(),
            [
                "delivered 1",
                "delivered 1",
                "delivered 1",
                "delivered 1",
                "acked 1",
                "retried 1 10s",
                "dead 1 not_retryable",
            ],
            "{name}"
        );

        // "expire" runs out its lease; its second (last) delivery too, and the lease after
        // that buries it. A late ack of the first lease is lost.
        clock.advance(Duration::from_secs(31));
        let again = queue.lease(&topic, 4, lease).await.unwrap();
        assert_eq!(again.len(), 2, "{name}: retry and expire");
        assert!(queue.ack(by("expire")).await.is_err(), "{name}");
        let retry = again.iter().find(|l| l.payload == b"retry").unwrap();
        queue.nack(retry, "503", true).await.unwrap();
        clock.advance(Duration::from_secs(31));
        assert!(queue.lease(&topic, 4, lease).await.unwrap().is_empty());
        assert_eq!(
            record.take(),
            [
                "delivered 2",
                "delivered 2",
                "lost",
                "dead 1 exhausted",
                "dead 1 lease_expired"
            ],
            "{name}"
        );

        let dead = queue
            .redrive(&steadfast_store::queue::DeadLetterFilter::all().topic(topic.clone()))
            .await
            .unwrap();
        assert_eq!(dead, 3, "{name}");
        clock.advance(Duration::from_secs(60));
        let stats = queue.observe_depth().await.unwrap();
        let mine = stats.iter().position(|t| t.topic == topic).unwrap();
        let lines = record.take();
        assert_eq!(lines[0], "redriven 3", "{name}");
        // Redriven messages keep their enqueue time: the oldest was queued 122 s ago.
        assert_eq!(lines[1 + mine], "depth 3 0 0 0 122s", "{name}");
    }
}

#[tokio::test]
async fn the_gate_reports_each_decision_with_its_reason() {
    for s in subjects().await {
        let name = s.name;
        let record = Record::default();
        let gate = RetryGate::new(s.store.clone(), GateOptions::default().base_retries(1))
            .unwrap()
            .with_clock(ManualClock::at(minute(0)))
            .with_observer(record.clone());
        let target = Target::new(unique("observed"), "1");
        for _ in 0..2 {
            gate.acquire(&target)
                .await
                .unwrap()
                .failed("503")
                .await
                .unwrap();
        }
        assert!(matches!(
            gate.acquire(&target).await,
            Err(GateError::Denied(_))
        ));
        assert_eq!(
            record.take(),
            [
                "gate true first_attempt",
                "gate true within_quota",
                "gate false cooling_down"
            ],
            "{name}"
        );
    }
}

/// `MetricsObserver` turns the same events into counters and gauges.
#[test]
fn metrics_count_dead_letters_by_reason_and_gauge_depth() {
    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("steadfast.db");
    metrics::with_local_recorder(&recorder, || {
        rt.block_on(async {
            let store: Arc<dyn QueueStore> = Arc::new(SqliteStore::open(&path).await.unwrap());
            let queue = Queue::new(store).with_observer(MetricsObserver::new());
            let gate = RetryGate::new(
                SqliteStore::open(&path).await.unwrap(),
                GateOptions::default(),
            )
            .unwrap()
            .with_observer(MetricsObserver::new());
            gate.acquire(&Target::new("order", "1"))
                .await
                .unwrap()
                .succeeded()
                .await
                .unwrap();
            for p in ["a", "b"] {
                queue
                    .enqueue("emails.Send", p.as_bytes().to_vec(), EnqueueOptions::new())
                    .await
                    .unwrap();
            }
            let leases = queue
                .lease("emails.Send", 2, Duration::from_secs(30))
                .await
                .unwrap();
            queue.nack(&leases[0], "550", false).await.unwrap();
            queue.observe_depth().await.unwrap();
        });
    });
    let mut seen = Vec::new();
    for (key, _, _, value) in snapshotter.snapshot().into_vec() {
        let labels: Vec<String> = key
            .key()
            .labels()
            .map(|l| format!("{}={}", l.key(), l.value()))
            .collect();
        let name = format!("{}{{{}}}", key.key().name(), labels.join(","));
        match (key.kind(), value) {
            (MetricKind::Counter, DebugValue::Counter(c)) => seen.push(format!("{name} {c}")),
            (MetricKind::Gauge, DebugValue::Gauge(g)) => seen.push(format!("{name} {}", g.0)),
            _ => {}
        }
    }
    seen.sort();
    for expected in [
        "steadfast_gate_decisions_total{target_type=order,allowed=true,reason=first_attempt} 1",
        "steadfast_queue_deliveries_total{topic=emails.Send} 2",
        "steadfast_queue_dead_letters_total{topic=emails.Send,reason=not_retryable} 1",
        "steadfast_queue_messages{topic=emails.Send,state=leased} 1",
        "steadfast_queue_messages{topic=emails.Send,state=dead} 1",
    ] {
        assert!(
            seen.iter().any(|s| s == expected),
            "{expected} not in {seen:#?}"
        );
    }
}
