//! Bulkhead, rate limiter and fallback: in flight never above the bulkhead's places (counted
//! under contention), GCRA delays to the millisecond on the paused clock, each refusal a
//! variant and an event.

mod support;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use steadfast::fallback::{Fallback, On};
use steadfast::limit::{Bulkhead, BulkheadOptions, RateLimitOptions, RateLimiter};
use steadfast::observe::{Event, Observer, RejectedBy};
use steadfast::policy::{Plan, Policies};
use steadfast::{Error, ErrorKind, Executor, Key, Retry};
use support::ms;

#[derive(Debug, Default)]
struct Events(std::sync::Mutex<Vec<Event>>);

impl Observer for Events {
    fn on_event(&self, _: &Key, event: &Event) {
        self.0.lock().unwrap().push(*event);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bulkhead_of_n_never_has_more_than_n_in_flight() {
    let bulkhead = Bulkhead::new(4).max_queue(64).build().unwrap();
    let retry = Retry::immediate().max_attempts(1).build().unwrap();
    let in_flight = Arc::new(AtomicUsize::new(0));
    let peak = Arc::new(AtomicUsize::new(0));
    let done = Arc::new(AtomicUsize::new(0));
    let mut tasks = Vec::new();
    for _ in 0..64 {
        let (bulkhead, retry) = (bulkhead.clone(), retry.clone());
        let (in_flight, peak, done) = (in_flight.clone(), peak.clone(), done.clone());
        tasks.push(tokio::spawn(async move {
            for _ in 0..20 {
                let r = retry
                    .call(|| async {
                        let now = in_flight.fetch_add(1, Ordering::SeqCst) + 1;
                        peak.fetch_max(now, Ordering::SeqCst);
                        for _ in 0..3 {
                            tokio::task::yield_now().await;
                        }
                        in_flight.fetch_sub(1, Ordering::SeqCst);
                        Ok::<_, ()>(())
                    })
                    .bulkhead(&bulkhead)
                    .run()
                    .await;
                r.unwrap();
                done.fetch_add(1, Ordering::SeqCst);
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    assert_eq!(done.load(Ordering::SeqCst), 64 * 20, "every call ran");
    let peak = peak.load(Ordering::SeqCst);
    assert!(peak <= 4, "peak {peak} in flight with 4 places");
    assert!(
        peak >= 2,
        "the test did run calls side by side (peak {peak})"
    );
    assert_eq!(bulkhead.in_flight(), 0);
}

#[tokio::test(start_paused = true)]
async fn a_full_bulkhead_refuses_or_queues_until_its_timeout() {
    let events = Arc::new(Events::default());
    let plan = Plan::new(Retry::immediate().max_attempts(1).build().unwrap())
        .bulkhead(BulkheadOptions::new(1).max_queue(1).queue_timeout(ms(50)))
        .unwrap();
    let executor = Executor::builder()
        .policies(Policies::default().with_plan("db.*", plan).unwrap())
        .shared_observer(events.clone())
        .build();
    let slow = || async {
        tokio::time::sleep(ms(100)).await;
        Ok::<_, ()>("slow")
    };
    let (first, second, third) = tokio::join!(
        executor.run("db.Query", slow),
        async {
            tokio::task::yield_now().await;
            executor.run("db.Query", slow).await // queued, gives up after 50 ms
        },
        async {
            tokio::task::yield_now().await;
            tokio::task::yield_now().await;
            executor.run("db.Query", slow).await // the queue is full
        },
    );
    assert_eq!(first.unwrap(), "slow");
    assert!(matches!(
        second.map_err(|e| e.into_kind()),
        Err(ErrorKind::BulkheadFull {
            max_concurrent: 1,
            ..
        })
    ));
    assert!(matches!(
        third.as_ref().map_err(|e| e.kind()),
        Err(ErrorKind::BulkheadFull { .. })
    ));
    let rejected = events
        .0
        .lock()
        .unwrap()
        .iter()
        .filter(|e| {
            **e == Event::Rejected {
                by: RejectedBy::Bulkhead,
                retry_after: None,
            }
        })
        .count();
    assert_eq!(rejected, 2);

    // A queued call that gets a place in time runs.
    let plan = Plan::new(Retry::immediate().max_attempts(1).build().unwrap())
        .bulkhead(BulkheadOptions::new(1).max_queue(1).queue_timeout(ms(150)))
        .unwrap();
    executor.set_policies(Policies::default().with_plan("db.*", plan).unwrap());
    let (a, b) = tokio::join!(executor.run("db.Query", slow), async {
        tokio::task::yield_now().await;
        let started = tokio::time::Instant::now();
        let r = executor.run("db.Query", slow).await;
        (r, started.elapsed())
    });
    assert!(a.is_ok());
    assert_eq!(
        (b.0.unwrap(), b.1),
        ("slow", ms(200)),
        "waited 100 ms, ran 100 ms"
    );
}

#[tokio::test(start_paused = true)]
async fn a_waiting_rate_limiter_spaces_calls_by_its_rate() {
    let limiter = RateLimiter::per_second(10)
        .burst(2)
        .max_wait(ms(250))
        .build()
        .unwrap();
    let retry = Retry::immediate().max_attempts(1).build().unwrap();
    let start = tokio::time::Instant::now();
    let mut starts = Vec::new();
    for _ in 0..5 {
        retry
            .call(|| {
                starts.push(start.elapsed());
                async { Ok::<_, ()>(()) }
            })
            .rate_limiter(&limiter)
            .run()
            .await
            .unwrap();
    }
    // A burst of 2, then one every 100 ms.
    assert_eq!(starts, [0, 0, 100, 200, 300].map(ms));

    // Five at once: the third would wait 300 ms, more than 250.
    let queued: Vec<_> = (0..5)
        .map(|_| {
            retry
                .call(|| async { Ok::<_, ()>(()) })
                .rate_limiter(&limiter)
                .run()
        })
        .collect();
    let results = futures_join(queued).await;
    let refused: Vec<_> = results
        .iter()
        .filter_map(|r| match r.as_ref().map_err(|e| e.kind()) {
            Err(ErrorKind::RateLimited { retry_after, .. }) => Some(*retry_after),
            _ => None,
        })
        .collect();
    assert_eq!(results.iter().filter(|r| r.is_ok()).count(), 2);
    assert_eq!(refused, [ms(300), ms(300), ms(300)]);
}

/// Polls every future to completion, in order of readiness (no extra crate).
async fn futures_join<F: std::future::Future>(futures: Vec<F>) -> Vec<F::Output> {
    let mut set = Vec::new();
    for f in futures {
        set.push(Box::pin(f));
    }
    let mut out: Vec<Option<F::Output>> = set.iter().map(|_| None).collect();
    std::future::poll_fn(|cx| {
        let mut pending = false;
        for (i, f) in set.iter_mut().enumerate() {
            if out[i].is_none() {
                match f.as_mut().poll(cx) {
                    std::task::Poll::Ready(v) => out[i] = Some(v),
                    std::task::Poll::Pending => pending = true,
                }
            }
        }
        if pending {
            std::task::Poll::Pending
        } else {
            std::task::Poll::Ready(())
        }
    })
    .await;
    out.into_iter().map(Option::unwrap).collect()
}

#[tokio::test(start_paused = true)]
async fn a_shared_rate_limiter_counts_every_key_naming_it() {
    let events = Arc::new(Events::default());
    let retry = Retry::immediate().max_attempts(1).build().unwrap();
    let plan = Plan::new(retry)
        .shared_rate_limit(
            "search-api",
            RateLimitOptions::new(2, Duration::from_secs(1)),
        )
        .unwrap();
    let executor = Executor::builder()
        .policies(Policies::default().with_plan("search.*", plan).unwrap())
        .shared_observer(events.clone())
        .build();
    let ok = || async { Ok::<_, ()>(()) };
    assert!(executor.run("search.Query", ok).await.is_ok());
    assert!(executor.run("search.Suggest", ok).await.is_ok());
    let err = executor.run("search.Query", ok).await.unwrap_err();
    assert!(
        matches!(err.kind(), ErrorKind::RateLimited { retry_after, .. } if *retry_after == ms(500))
    );
    assert_eq!(err.to_string(), "rate limited (retry in 500ms)");
    assert!(events.0.lock().unwrap().contains(&Event::Rejected {
        by: RejectedBy::RateLimiter,
        retry_after: Some(ms(500))
    }));
}

#[tokio::test(start_paused = true)]
async fn a_fallback_replaces_chosen_failures_and_is_an_event() {
    let events = Arc::new(Events::default());
    let executor = Executor::builder()
        .policies(Policies::new(
            Retry::immediate().max_attempts(3).build().unwrap(),
        ))
        .shared_observer(events.clone())
        .build();
    let mut runs = 0;
    let v = executor
        .call("prices.Get", || {
            runs += 1;
            async { Err::<u32, _>("down") }
        })
        .fallback(Fallback::on(On::EXHAUSTED).value(40))
        .run()
        .await
        .unwrap();
    assert_eq!((v, runs), (40, 3), "three attempts, then the fallback");
    assert!(events.0.lock().unwrap().contains(&Event::FallbackUsed));

    // A failure it does not handle stays an error, and no event.
    events.0.lock().unwrap().clear();
    let err = executor
        .call("prices.Get", || async { Err::<u32, _>("down") })
        .fallback(Fallback::on(On::REJECTED).value(40))
        .run()
        .await;
    assert!(matches!(
        err.as_ref().map_err(|e| e.kind()),
        Err(ErrorKind::Operation { attempts: 3, .. })
    ));
    assert!(!events.0.lock().unwrap().contains(&Event::FallbackUsed));

    // A closure picks a specific error of the operation.
    let v = executor
        .call("prices.Get", || async { Err::<u32, _>("not found") })
        .fallback(
            Fallback::on(|e: &Error<&str>| e.operation_error() == Some(&"not found")).with(|_| 0),
        )
        .run()
        .await;
    assert_eq!(v.unwrap(), 0);
}
