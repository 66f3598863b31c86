//! Circuit breakers: the state machine against a reference model, the Hystrix and resilience4j
//! profiles, probes under contention, and the engine around them. Time is tokio's paused clock.

mod support;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Barrier};
use std::time::Duration;

use proptest::prelude::*;
use steadfast::breaker::{Breaker, BreakerOptions, BreakerState, Window};
use steadfast::observe::{Event, Observer, RejectedBy};
use steadfast::policy::{Plan, Policies};
use steadfast::{ErrorKind, Executor, Key, Outcome, Retry};
use support::{ms, paused};

const FAIL: Option<&Outcome> = Some(&Outcome::RETRYABLE);
const OK: Option<&Outcome> = Some(&Outcome::Success);

fn record(b: &Breaker, outcome: Option<&Outcome>) -> Result<(), Option<Duration>> {
    match b.try_acquire() {
        Ok(p) => {
            let _ = p.record(outcome);
            Ok(())
        }
        Err(open) => Err(open.retry_after),
    }
}

async fn advance(d: Duration) {
    tokio::time::advance(d).await;
}

// ---------------------------------------------------------------------------------------------
// The reference model: the documented rules, written as plainly as possible.

#[derive(Debug, Clone, Copy)]
enum Kind {
    Consecutive(u32),
    CountRate {
        n: u32,
        min: u32,
        threshold: f64,
    },
    TimeRate {
        buckets: u32,
        span_ms: u64,
        min: u32,
        threshold: f64,
    },
    Adaptive {
        base: u32,
        max: u32,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Closed,
    Open,
    HalfOpen,
}

#[derive(Debug)]
struct Model {
    kind: Kind,
    break_ms: u64,
    max_break_ms: Option<u64>,
    permitted: u32,
    now: u64,
    state: State,
    opens: u32,
    open_until: u64,
    run: u32,
    /// (time ms, failed) of closed-state calls since the last reset of the window.
    calls: Vec<(u64, bool)>,
    probes: u32,
    probe_failures: u32,
}

impl Model {
    fn new(kind: Kind, break_ms: u64, max_break_ms: Option<u64>, permitted: u32) -> Self {
        Model {
            kind,
            break_ms,
            max_break_ms,
            permitted,
            now: 0,
            state: State::Closed,
            opens: 0,
            open_until: 0,
            run: 0,
            calls: Vec::new(),
            probes: 0,
            probe_failures: 0,
        }
    }

    fn options(&self) -> BreakerOptions {
        let o = match self.kind {
            Kind::Consecutive(n) => BreakerOptions::consecutive(n),
            Kind::CountRate { n, min, threshold } => BreakerOptions::failure_rate(threshold)
                .window(Window::Calls(n))
                .min_calls(min),
            Kind::TimeRate {
                buckets,
                span_ms,
                min,
                threshold,
            } => BreakerOptions::failure_rate(threshold)
                .window(Window::Time {
                    length: ms(span_ms * u64::from(buckets)),
                    buckets,
                })
                .min_calls(min),
            Kind::Adaptive { base, max } => {
                BreakerOptions::adaptive(base, max).window(Window::Time {
                    length: ms(10_000),
                    buckets: 10,
                })
            }
        };
        let o = o
            .break_duration(ms(self.break_ms))
            .half_open_calls(self.permitted);
        match self.max_break_ms {
            Some(m) => o.max_break_duration(ms(m)),
            None => o,
        }
    }

    fn set(&mut self, to: State) {
        self.run = 0;
        self.probes = 0;
        self.probe_failures = 0;
        match to {
            State::Open => {
                self.opens += 1;
                let doubled = self.break_ms.saturating_mul(1 << (self.opens - 1).min(31));
                let b = match self.max_break_ms {
                    Some(m) => doubled.min(m),
                    None => self.break_ms,
                };
                self.open_until = self.now + b;
            }
            State::Closed => {
                self.opens = 0;
                if !matches!(self.kind, Kind::Adaptive { .. }) {
                    self.calls.clear();
                }
            }
            State::HalfOpen => {}
        }
        self.state = to;
    }

    /// The window's (calls, failures) now.
    fn window(&self) -> (u32, u32) {
        let in_window: Vec<bool> = match self.kind {
            Kind::CountRate { n, .. } => {
                let skip = self.calls.len().saturating_sub(n as usize);
                self.calls[skip..].iter().map(|c| c.1).collect()
            }
            Kind::TimeRate {
                buckets, span_ms, ..
            } => self.timed(span_ms, buckets),
            Kind::Adaptive { .. } => self.timed(1_000, 10),
            Kind::Consecutive(_) => Vec::new(),
        };
        let failures = in_window.iter().filter(|f| **f).count() as u32;
        (in_window.len() as u32, failures)
    }

    fn timed(&self, span: u64, buckets: u32) -> Vec<bool> {
        let current = self.now / span;
        let oldest = current.saturating_sub(u64::from(buckets) - 1);
        self.calls
            .iter()
            .filter(|(t, _)| t / span >= oldest)
            .map(|c| c.1)
            .collect()
    }

    /// One call: `Err(retry_after)` when refused.
    fn call(&mut self, failed: bool) -> Result<(), u64> {
        if self.state == State::Open {
            if self.now < self.open_until {
                return Err(self.open_until - self.now);
            }
            self.set(State::HalfOpen);
        }
        if self.state == State::HalfOpen {
            self.probes += 1;
            self.probe_failures += u32::from(failed);
            let rate_kind = matches!(self.kind, Kind::CountRate { .. } | Kind::TimeRate { .. });
            if rate_kind {
                if self.probes == self.permitted {
                    let threshold = match self.kind {
                        Kind::CountRate { threshold, .. } | Kind::TimeRate { threshold, .. } => {
                            threshold
                        }
                        _ => unreachable!(),
                    };
                    let rate = f64::from(self.probe_failures) / f64::from(self.probes);
                    self.set(if rate >= threshold {
                        State::Open
                    } else {
                        State::Closed
                    });
                }
            } else if failed {
                self.set(State::Open);
            } else if self.probes == self.permitted {
                self.set(State::Closed);
            }
            return Ok(());
        }
        // Closed.
        if !matches!(self.kind, Kind::Consecutive(_)) {
            self.calls.push((self.now, failed));
        }
        self.run = if failed { self.run + 1 } else { 0 };
        let trip = match self.kind {
            Kind::Consecutive(n) => self.run >= n,
            Kind::CountRate { min, threshold, .. } | Kind::TimeRate { min, threshold, .. } => {
                let (calls, failures) = self.window();
                calls >= min.max(1) && f64::from(failures) / f64::from(calls) >= threshold
            }
            Kind::Adaptive { base, max } => {
                let (calls, failures) = self.window();
                let healthy = 1.0 - f64::from(failures) / f64::from(calls.max(1));
                let n = base + (f64::from(max - base) * healthy).round() as u32;
                failed && self.run >= n
            }
        };
        if trip {
            self.set(State::Open);
        }
        Ok(())
    }
}

#[derive(Debug, Clone)]
enum Step {
    Call(bool),
    Advance(u64),
}

fn kind() -> impl Strategy<Value = Kind> {
    prop_oneof![
        (1u32..6).prop_map(Kind::Consecutive),
        (1u32..12, 1u32..12, 1u32..=10).prop_map(|(n, min, t)| Kind::CountRate {
            n,
            min,
            threshold: f64::from(t) / 10.0
        }),
        (1u32..6, 50u64..500, 1u32..10, 1u32..=10).prop_map(|(buckets, span_ms, min, t)| {
            Kind::TimeRate {
                buckets,
                span_ms,
                min,
                threshold: f64::from(t) / 10.0,
            }
        }),
        (1u32..5, 0u32..8).prop_map(|(base, extra)| Kind::Adaptive {
            base,
            max: base + extra
        }),
    ]
}

fn steps() -> impl Strategy<Value = Vec<Step>> {
    prop::collection::vec(
        prop_oneof![
            4 => any::<bool>().prop_map(Step::Call),
            1 => (0u64..3_000).prop_map(Step::Advance),
        ],
        1..200,
    )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    /// Random outcomes and clock advances: the breaker's states and refusals (with their
    /// `retry_after`) are the model's, step by step.
    #[test]
    fn the_breaker_follows_the_model(
        kind in kind(),
        break_ms in 1u64..2_000,
        grow in any::<bool>(),
        permitted in 1u32..4,
        steps in steps(),
    ) {
        let max_break = grow.then_some(break_ms * 8);
        let mut model = Model::new(kind, break_ms, max_break, permitted);
        paused(async {
            // Made on the paused clock, so its origin is the model's time 0.
            let breaker = model.options().build().unwrap();
            for (i, step) in steps.iter().enumerate() {
                match *step {
                    Step::Advance(d) => {
                        advance(ms(d)).await;
                        model.now += d;
                    }
                    Step::Call(failed) => {
                        let expected = model.call(failed).map_err(|after| Some(ms(after)));
                        let got = record(&breaker, if failed { FAIL } else { OK });
                        prop_assert_eq!(got, expected, "step {}: {:?}", i, step);
                    }
                }
                let state = match breaker.state() {
                    BreakerState::Closed => State::Closed,
                    BreakerState::Open => State::Open,
                    BreakerState::HalfOpen => State::HalfOpen,
                    other => panic!("unexpected {other:?}"),
                };
                prop_assert_eq!(state, model.state, "after step {}: {:?}", i, step);
            }
            Ok(())
        })?;
    }
}

// ---------------------------------------------------------------------------------------------
// Profiles with the peers' defaults.

fn hystrix() -> Breaker {
    Breaker::failure_rate(0.5)
        .window(Window::time(Duration::from_secs(10)))
        .min_calls(20)
        .break_duration(Duration::from_secs(5))
        .build()
        .unwrap()
}

#[tokio::test(start_paused = true)]
async fn hystrix_profile() {
    let b = hystrix();
    for _ in 0..19 {
        record(&b, FAIL).unwrap();
    }
    assert_eq!(
        b.state(),
        BreakerState::Closed,
        "19 failing calls are under 20"
    );

    let b = hystrix();
    for i in 0..20 {
        record(&b, if i % 2 == 0 { FAIL } else { OK }).unwrap();
    }
    assert_eq!(b.state(), BreakerState::Open, "20 calls at 50 %");
    assert_eq!(record(&b, OK), Err(Some(Duration::from_secs(5))));

    // Exactly one trial after 5 s.
    advance(Duration::from_millis(4_999)).await;
    assert_eq!(record(&b, OK), Err(Some(ms(1))));
    advance(ms(1)).await;
    let trial = b.try_acquire().expect("one trial");
    assert!(trial.is_probe());
    assert!(
        b.try_acquire().is_err(),
        "a second trial while the first runs"
    );
    let _ = trial.record(FAIL);
    assert_eq!(b.state(), BreakerState::Open, "a trial failure reopens");
    assert_eq!(
        record(&b, OK),
        Err(Some(Duration::from_secs(5))),
        "for another 5 s"
    );

    advance(Duration::from_secs(5)).await;
    record(&b, OK).unwrap();
    assert_eq!(b.state(), BreakerState::Closed, "a trial success closes");
    // Closed again with an empty window: 19 failures do not open it.
    for _ in 0..19 {
        record(&b, FAIL).unwrap();
    }
    assert_eq!(b.state(), BreakerState::Closed);
}

#[tokio::test(start_paused = true)]
async fn hystrix_window_forgets_calls_older_than_ten_seconds() {
    let b = hystrix();
    for _ in 0..10 {
        record(&b, FAIL).unwrap();
    }
    advance(Duration::from_secs(10)).await;
    for _ in 0..10 {
        record(&b, FAIL).unwrap();
    }
    assert_eq!(
        b.state(),
        BreakerState::Closed,
        "only 10 calls are in the window"
    );
}

#[tokio::test(start_paused = true)]
async fn resilience4j_profile() {
    let b = Breaker::failure_rate(0.5)
        .window(Window::Calls(100))
        .min_calls(100)
        .break_duration(Duration::from_secs(60))
        .half_open_calls(10)
        .build()
        .unwrap();
    for _ in 0..99 {
        record(&b, FAIL).unwrap();
    }
    assert_eq!(
        b.state(),
        BreakerState::Closed,
        "does not open before 100 calls"
    );
    record(&b, FAIL).unwrap();
    assert_eq!(b.state(), BreakerState::Open);

    advance(Duration::from_secs(60)).await;
    let probes: Vec<_> = (0..10).map(|_| b.try_acquire().expect("a probe")).collect();
    assert_eq!(b.state(), BreakerState::HalfOpen);
    assert!(b.try_acquire().is_err(), "half-open admits exactly 10");
    // 4 of 10 fail: under 50 %, so it closes once all 10 have reported.
    for (i, p) in probes.into_iter().enumerate() {
        let _ = p.record(if i < 4 { FAIL } else { OK });
        let expected = if i < 9 {
            BreakerState::HalfOpen
        } else {
            BreakerState::Closed
        };
        assert_eq!(b.state(), expected, "after probe {i}");
    }
}

#[tokio::test(start_paused = true)]
async fn slow_calls_open_a_failure_rate_breaker() {
    let b = Breaker::failure_rate(0.5)
        .window(Window::Calls(10))
        .min_calls(4)
        .slow_calls(ms(100), 0.75)
        .build()
        .unwrap();
    for i in 0..4 {
        let p = b.try_acquire().unwrap();
        advance(ms(if i == 0 { 10 } else { 100 })).await;
        let _ = p.record(OK);
    }
    assert_eq!(b.state(), BreakerState::Open, "3 of 4 calls took >= 100 ms");
}

#[tokio::test(start_paused = true)]
async fn the_break_doubles_across_opens_in_a_row_and_a_close_starts_over() {
    let b = Breaker::consecutive(1)
        .break_duration(Duration::from_secs(1))
        .max_break_duration(Duration::from_secs(3))
        .build()
        .unwrap();
    record(&b, FAIL).unwrap();
    for expected in [1, 2, 3, 3] {
        assert_eq!(record(&b, OK), Err(Some(Duration::from_secs(expected))));
        advance(Duration::from_secs(expected)).await;
        record(&b, FAIL).unwrap(); // the probe fails: open again, longer
    }
    advance(Duration::from_secs(3)).await;
    record(&b, OK).unwrap();
    record(&b, FAIL).unwrap();
    assert_eq!(record(&b, OK), Err(Some(Duration::from_secs(1))));
}

#[tokio::test(start_paused = true)]
async fn a_probe_that_never_reports_gives_its_slot_back() {
    let b = Breaker::consecutive(1)
        .break_duration(Duration::from_secs(1))
        .probe_timeout(Duration::from_secs(10))
        .build()
        .unwrap();
    record(&b, FAIL).unwrap();
    advance(Duration::from_secs(1)).await;

    // Dropped (its call's future was dropped): the slot is free at once.
    drop(b.try_acquire().unwrap());
    let hung = b.try_acquire().expect("the dropped probe's slot");
    // Hung: after the probe timeout another call may probe, and the late result is ignored.
    assert_eq!(
        b.try_acquire().unwrap_err().retry_after,
        Some(Duration::from_secs(10))
    );
    advance(Duration::from_secs(10)).await;
    let fresh = b
        .try_acquire()
        .expect("the hung probe's slot after its timeout");
    let _ = hung.record(FAIL);
    assert_eq!(
        b.state(),
        BreakerState::HalfOpen,
        "a late result does not count"
    );
    let _ = fresh.record(OK);
    assert_eq!(b.state(), BreakerState::Closed);
}

#[tokio::test(start_paused = true)]
async fn isolate_and_reset_by_hand() {
    let b = Breaker::consecutive(3).build().unwrap();
    let t = b.isolate();
    assert_eq!(
        (t.from, t.to),
        (BreakerState::Closed, BreakerState::Isolated)
    );
    advance(Duration::from_secs(3600)).await;
    assert_eq!(
        record(&b, OK),
        Err(None),
        "isolated until reset, whatever the time"
    );
    b.reset();
    assert_eq!(b.state(), BreakerState::Closed);
    record(&b, OK).unwrap();
}

#[tokio::test(start_paused = true)]
async fn a_no_op_breaker_never_opens() {
    let b = BreakerOptions::no_op().build().unwrap();
    for _ in 0..1000 {
        record(&b, FAIL).unwrap();
    }
    assert_eq!(b.state(), BreakerState::Closed);
}

#[tokio::test(start_paused = true)]
async fn an_adaptive_breaker_is_stricter_after_errors() {
    // Failures in a row it takes to open: between 2 and 10 by the error rate of the last
    // minute.
    async fn opens_after(history: &[bool]) -> u32 {
        let b = Breaker::adaptive(2, 10).build().unwrap();
        for failed in history {
            record(&b, if *failed { FAIL } else { OK }).unwrap();
        }
        let mut n = 0;
        while b.state() == BreakerState::Closed {
            record(&b, FAIL).unwrap();
            n += 1;
        }
        n
    }
    assert_eq!(opens_after(&[false; 100]).await, 9, "healthy: tolerant");
    let flaky: Vec<bool> = (0..100).map(|i| i % 2 == 0).collect();
    assert_eq!(opens_after(&flaky).await, 6, "after errors: strict");
    assert_eq!(opens_after(&[]).await, 2, "nothing but failures: the base");
}

// ---------------------------------------------------------------------------------------------
// Contention.

#[test]
fn sixty_four_threads_on_a_half_open_breaker_get_exactly_the_permitted_probes() {
    for permitted in [1, 5, 10] {
        let b = Breaker::consecutive(1)
            .break_duration(Duration::from_nanos(1))
            .half_open_calls(permitted)
            .build()
            .unwrap();
        record(&b, FAIL).unwrap();
        // Reading the clock once more passes the 1 ns break: the next call probes.
        let barrier = Arc::new(Barrier::new(64));
        let admitted = Arc::new(AtomicUsize::new(0));
        std::thread::scope(|s| {
            for _ in 0..64 {
                let (b, barrier, admitted) = (&b, barrier.clone(), admitted.clone());
                s.spawn(move || {
                    barrier.wait();
                    let permit = b.try_acquire();
                    if permit.is_ok() {
                        admitted.fetch_add(1, Ordering::Relaxed);
                    }
                    // Every thread holds its permit until all have tried.
                    barrier.wait();
                    drop(permit);
                });
            }
        });
        assert_eq!(admitted.load(Ordering::Relaxed), permitted as usize);
    }
}

// ---------------------------------------------------------------------------------------------
// In the engine and the executor.

#[derive(Debug, Default)]
struct Events(std::sync::Mutex<Vec<Event>>);

impl Observer for Events {
    fn on_event(&self, _: &Key, event: &Event) {
        self.0.lock().unwrap().push(*event);
    }
}

#[tokio::test(start_paused = true)]
async fn the_breaker_sees_every_attempt_and_observers_see_it_change() {
    let events = Arc::new(Events::default());
    let plan = Plan::new(
        Retry::fixed(ms(10))
            .jitter(steadfast::Jitter::None)
            .max_attempts(5)
            .build()
            .unwrap(),
    )
    .breaker(BreakerOptions::consecutive(3).break_duration(Duration::from_secs(1)))
    .unwrap();
    let executor = Executor::builder()
        .policies(Policies::default().with_plan("db.*", plan).unwrap())
        .shared_observer(events.clone())
        .build();
    let mut runs = 0;
    let err = executor
        .run("db.Query", || {
            runs += 1;
            async { Err::<(), _>("down") }
        })
        .await
        .unwrap_err();
    assert_eq!(runs, 3, "the fourth attempt is refused without running");
    assert!(matches!(
        err.kind(),
        ErrorKind::CircuitOpen { retry_after: Some(d), attempts: 3, .. } if *d == ms(990)
    ));
    assert!(err.is_rejection());
    let seen = events.0.lock().unwrap().clone();
    assert!(seen.contains(&Event::BreakerChanged {
        from: BreakerState::Closed,
        to: BreakerState::Open
    }));
    assert!(seen.contains(&Event::Rejected {
        by: RejectedBy::Breaker,
        retry_after: Some(ms(990))
    }));

    // The next call is refused before any attempt; after the break a probe closes it.
    let err = executor
        .run("db.Query", || async { Ok::<_, &str>(1) })
        .await;
    assert!(matches!(
        err.as_ref().map_err(|e| e.kind()),
        Err(ErrorKind::CircuitOpen { attempts: 0, .. })
    ));
    advance(Duration::from_secs(1)).await;
    assert_eq!(
        executor
            .run("db.Query", || async { Ok::<_, &str>(1) })
            .await
            .unwrap(),
        1
    );
    let seen = events.0.lock().unwrap().clone();
    assert!(seen.contains(&Event::BreakerChanged {
        from: BreakerState::Open,
        to: BreakerState::HalfOpen
    }));
    assert!(seen.contains(&Event::BreakerChanged {
        from: BreakerState::HalfOpen,
        to: BreakerState::Closed
    }));
}

#[tokio::test(start_paused = true)]
async fn a_timed_out_attempt_counts_as_a_failure() {
    let b = Breaker::consecutive(2).build().unwrap();
    let retry = Retry::immediate()
        .max_attempts(2)
        .attempt_timeout(ms(100))
        .build()
        .unwrap();
    let err = retry
        .call(|| async {
            tokio::time::sleep(Duration::from_secs(1)).await;
            Ok::<_, ()>(())
        })
        .breaker(&b)
        .run()
        .await;
    assert!(matches!(
        err.as_ref().map_err(|e| e.kind()),
        Err(ErrorKind::Timeout { attempts: 2, .. })
    ));
    assert_eq!(b.state(), BreakerState::Open);
}

#[tokio::test(start_paused = true)]
async fn non_retryable_failures_do_not_count_by_default() {
    let b = Breaker::consecutive(2).build().unwrap();
    let retry = Retry::immediate().max_attempts(1).build().unwrap();
    for _ in 0..5 {
        let _ = retry
            .call(|| async { Err::<(), _>(404) })
            .classify_error(|_| Outcome::NonRetryable)
            .breaker(&b)
            .run()
            .await;
    }
    assert_eq!(
        b.state(),
        BreakerState::Closed,
        "a 404 is an answer, not an outage"
    );
}

#[tokio::test(start_paused = true)]
async fn breaker_state_is_per_key_or_shared_by_name() {
    let retry = Retry::immediate().max_attempts(1).build().unwrap();
    let options = BreakerOptions::consecutive(2);
    let policies = Policies::default()
        .with_plan(
            "own.*",
            Plan::new(retry.clone()).breaker(options.clone()).unwrap(),
        )
        .unwrap()
        .with_plan(
            "pool.*",
            Plan::new(retry.clone())
                .shared_breaker("db", options.clone())
                .unwrap(),
        )
        .unwrap();
    let executor = Executor::new(policies);
    let fail = || async { Err::<(), _>("down") };
    for _ in 0..2 {
        let _ = executor.run("own.A", fail).await;
        let _ = executor.run("pool.A", fail).await;
    }
    let state = |k: &str| executor.breaker(k).unwrap().unwrap().state();
    assert_eq!(state("own.A"), BreakerState::Open);
    assert_eq!(state("own.B"), BreakerState::Closed, "each key has its own");
    assert_eq!(
        state("pool.B"),
        BreakerState::Open,
        "one breaker for the pool"
    );
    assert!(
        executor
            .breaker("pool.A")
            .unwrap()
            .unwrap()
            .same(&executor.breaker("pool.Z").unwrap().unwrap())
    );
}

#[tokio::test(start_paused = true)]
async fn a_reload_keeps_the_state_of_unchanged_breakers_only() {
    let retry = Retry::immediate().max_attempts(1).build().unwrap();
    let breaker = BreakerOptions::consecutive(2);
    let build = |other_attempts: u32, threshold: u32| {
        Policies::default()
            .with_plan(
                "db.*",
                Plan::new(retry.clone())
                    .breaker(BreakerOptions::consecutive(threshold))
                    .unwrap(),
            )
            .unwrap()
            .with(
                "cache.*",
                Retry::immediate()
                    .max_attempts(other_attempts)
                    .build()
                    .unwrap(),
            )
            .unwrap()
    };
    let executor = Executor::new(build(1, 2));
    let handle = executor.handle("db.Query").unwrap();
    for _ in 0..2 {
        let _ = handle.run(|| async { Err::<(), _>("down") }).await;
    }
    let before = executor.breaker("db.Query").unwrap().unwrap();
    assert_eq!(before.state(), BreakerState::Open);

    // Another table changes: the breaker (same options) and its open state stay.
    executor.set_policies(build(4, 2));
    let after = executor.breaker("db.Query").unwrap().unwrap();
    assert!(after.same(&before));
    assert!(matches!(
        handle
            .run(|| async { Ok::<_, ()>(()) })
            .await
            .map_err(|e| e.into_kind()),
        Err(ErrorKind::CircuitOpen { .. })
    ));
    let _ = breaker;

    // Its own options change: a fresh breaker, closed.
    executor.set_policies(build(4, 3));
    let fresh = executor.breaker("db.Query").unwrap().unwrap();
    assert!(!fresh.same(&before));
    assert_eq!(fresh.state(), BreakerState::Closed);
    assert!(handle.run(|| async { Ok::<_, ()>(()) }).await.is_ok());
}

#[test]
fn blocking_calls_go_through_the_breaker_too() {
    let b = Breaker::consecutive(2).build().unwrap();
    let retry = Retry::immediate().max_attempts(5).build().unwrap();
    let mut runs = 0;
    let err = retry
        .call_blocking(|| {
            runs += 1;
            Err::<(), _>("down")
        })
        .breaker(&b)
        .run();
    assert_eq!(runs, 2);
    assert!(matches!(
        err.as_ref().map_err(|e| e.kind()),
        Err(ErrorKind::CircuitOpen { attempts: 2, .. })
    ));
}
