//! Events and timelines: every attempt is reported, in order, with the right delays.

mod support;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use steadfast::classify::Outcome;
use steadfast::observe::Timeline;
use steadfast::observe::{AttemptEnd, Event, Observer, RetryReason};
use steadfast::policy::Policies;
use steadfast::{Executor, Jitter, Key, Retry, Stop, TimeoutScope};
use support::ms;
use tokio::time::sleep;

fn policy() -> Policies {
    Policies::new(
        Retry::exponential(ms(100))
            .jitter(Jitter::None)
            .max_attempts(5)
            .build()
            .unwrap(),
    )
}

/// An operation that fails twice, then succeeds, each attempt taking 10 ms.
fn flaky()
-> impl FnMut() -> std::pin::Pin<Box<dyn std::future::Future<Output = Result<u32, &'static str>>>> {
    let mut n = 0;
    move || {
        n += 1;
        let attempt = n;
        Box::pin(async move {
            sleep(ms(10)).await;
            if attempt < 3 {
                Err("busy")
            } else {
                Ok(attempt)
            }
        })
    }
}

#[tokio::test(start_paused = true)]
async fn the_timeline_of_two_failures_and_a_success() {
    let executor = Executor::new(policy());
    let mut timeline = Timeline::default();
    let result = executor
        .call("svc.Method", flaky())
        .timeline(&mut timeline)
        .run()
        .await;
    assert_eq!(result.unwrap(), 3);
    let a = timeline.attempts();
    assert_eq!(a.len(), 3);
    let row = |i: usize| {
        (
            a[i].index(),
            a[i].is_hedge(),
            a[i].start(),
            a[i].duration(),
            a[i].end(),
            a[i].outcome(),
            a[i].delay_before(),
        )
    };
    // Attempt 1 at 0 for 10 ms; wait 100 ms; attempt 2 at 110; wait 200 ms; attempt 3 at 320.
    assert_eq!(
        row(0),
        (
            1,
            false,
            ms(0),
            ms(10),
            AttemptEnd::Err,
            Outcome::RETRYABLE,
            ms(0)
        )
    );
    assert_eq!(
        row(1),
        (
            2,
            false,
            ms(110),
            ms(10),
            AttemptEnd::Err,
            Outcome::RETRYABLE,
            ms(100)
        )
    );
    assert_eq!(
        row(2),
        (
            3,
            false,
            ms(320),
            ms(10),
            AttemptEnd::Ok,
            Outcome::Success,
            ms(200)
        )
    );
    assert_eq!(timeline.duration(), ms(330));
}

#[derive(Debug, Default)]
struct Recorder(Mutex<Vec<(String, Event)>>);

impl Observer for Recorder {
    fn on_event(&self, key: &Key, event: &Event) {
        self.0.lock().unwrap().push((key.to_string(), *event));
    }
}

#[tokio::test(start_paused = true)]
async fn observers_see_every_step_in_order() {
    let recorder = Arc::new(Recorder::default());
    let executor = Executor::builder()
        .policies(policy())
        .shared_observer(recorder.clone())
        .build();
    let handle = executor.handle("svc.Method").unwrap();
    assert_eq!(handle.run(flaky()).await.unwrap(), 3);
    let events = recorder.0.lock().unwrap().clone();
    assert!(events.iter().all(|(k, _)| k == "svc.Method"));
    let events: Vec<Event> = events.into_iter().map(|(_, e)| e).collect();
    let finished = |attempt, end, outcome| Event::AttemptFinished {
        attempt,
        end,
        outcome,
        duration: ms(10),
    };
    assert_eq!(
        events,
        [
            Event::CallStarted,
            Event::AttemptStarted {
                attempt: 1,
                at: ms(0)
            },
            finished(1, AttemptEnd::Err, Outcome::RETRYABLE),
            Event::RetryScheduled {
                attempt: 1,
                delay: ms(100),
                reason: RetryReason::Backoff
            },
            Event::AttemptStarted {
                attempt: 2,
                at: ms(110)
            },
            finished(2, AttemptEnd::Err, Outcome::RETRYABLE),
            Event::RetryScheduled {
                attempt: 2,
                delay: ms(200),
                reason: RetryReason::Backoff
            },
            Event::AttemptStarted {
                attempt: 3,
                at: ms(320)
            },
            finished(3, AttemptEnd::Ok, Outcome::Success),
            Event::CallFinished {
                attempts: 3,
                duration: ms(330),
                ok: true,
                stop: None,
                timeout: None
            },
        ]
    );

    // By key too, and a failure reports why it stopped.
    recorder.0.lock().unwrap().clear();
    let _ = executor
        .run("svc.Other", || async { Err::<(), _>("no") })
        .await;
    let last = recorder.0.lock().unwrap().last().cloned().unwrap();
    assert_eq!(last.0, "svc.Other");
    assert!(matches!(
        last.1,
        Event::CallFinished {
            attempts: 5,
            ok: false,
            stop: Some(Stop::Exhausted),
            ..
        }
    ));
}

#[tokio::test(start_paused = true)]
async fn timeouts_show_in_the_timeline() {
    let policies = Policies::new(
        Retry::fixed(ms(50))
            .jitter(Jitter::None)
            .max_attempts(2)
            .attempt_timeout(ms(100))
            .build()
            .unwrap(),
    );
    let executor = Executor::new(policies);
    let mut timeline = Timeline::default();
    let result = executor
        .call("svc.Slow", || async {
            sleep(Duration::from_secs(10)).await;
            Ok::<_, ()>(())
        })
        .timeline(&mut timeline)
        .run()
        .await;
    assert!(matches!(
        result.map_err(|e| e.into_kind()),
        Err(steadfast::ErrorKind::Timeout {
            scope: TimeoutScope::Attempt,
            attempts: 2,
            ..
        })
    ));
    let ends: Vec<_> = timeline
        .attempts()
        .iter()
        .map(|a| (a.start(), a.end()))
        .collect();
    assert_eq!(
        ends,
        [
            (ms(0), AttemptEnd::TimedOut),
            (ms(150), AttemptEnd::TimedOut)
        ]
    );
}

/// Records events and error texts in the order they arrive.
#[derive(Debug, Default)]
struct Log(Mutex<Vec<String>>);

impl Observer for Log {
    fn on_event(&self, _: &Key, event: &Event) {
        if let Event::AttemptFinished { attempt, .. } = event {
            self.0.lock().unwrap().push(format!("finished {attempt}"));
        }
    }
    fn on_attempt_error(&self, key: &Key, error: &dyn std::fmt::Display) {
        self.0.lock().unwrap().push(format!("{key}: {error}"));
    }
}

fn logged() -> (Arc<Log>, Executor) {
    let log = Arc::new(Log::default());
    let retry = Retry::immediate().max_attempts(3).build().unwrap();
    let executor = Executor::builder()
        .policies(Policies::new(retry))
        .shared_observer(log.clone())
        .build();
    (log, executor)
}

/// Fails with "busy 1", "busy 2", then succeeds.
fn numbered() -> impl FnMut() -> std::future::Ready<Result<u32, std::io::Error>> {
    let mut n = 0;
    move || {
        n += 1;
        std::future::ready(if n < 3 {
            Err(std::io::Error::other(format!("busy {n}")))
        } else {
            Ok(n)
        })
    }
}

#[tokio::test(start_paused = true)]
async fn a_call_that_allows_it_reports_each_errors_text_before_its_attempt_ends() {
    let (log, executor) = logged();
    let value = executor
        .call("svc.Method", numbered())
        .error_text()
        .run()
        .await
        .unwrap();
    assert_eq!(value, 3);
    assert_eq!(
        *log.0.lock().unwrap(),
        [
            "svc.Method: busy 1",
            "finished 1",
            "svc.Method: busy 2",
            "finished 2",
            "finished 3"
        ]
    );

    // Through a handle, and blocking: the same texts.
    log.0.lock().unwrap().clear();
    let handle = executor.handle("svc.Handle").unwrap();
    handle.call(numbered()).error_text().run().await.unwrap();
    let mut n = 0;
    executor
        .call_blocking("svc.Blocking", || {
            n += 1;
            if n < 2 {
                Err(std::io::Error::other("blocked"))
            } else {
                Ok(())
            }
        })
        .error_text()
        .run()
        .unwrap();
    let texts: Vec<String> = log
        .0
        .lock()
        .unwrap()
        .iter()
        .filter(|l| !l.starts_with("finished"))
        .cloned()
        .collect();
    assert_eq!(
        texts,
        [
            "svc.Handle: busy 1",
            "svc.Handle: busy 2",
            "svc.Blocking: blocked"
        ]
    );
}

#[tokio::test(start_paused = true)]
async fn error_text_is_off_unless_the_call_allows_it() {
    let (log, executor) = logged();
    executor.call("svc.Method", numbered()).run().await.unwrap();
    executor.run("svc.Method", numbered()).await.unwrap();
    let texts = log.0.lock().unwrap();
    assert_eq!(texts.len(), 6, "{texts:?}");
    assert!(texts.iter().all(|l| l.starts_with("finished")), "{texts:?}");
}
