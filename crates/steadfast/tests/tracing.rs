//! The tracing spans, captured through a `tracing-subscriber` writer: the operation's own
//! logs nest under `steadfast.call{key}` and `steadfast.attempt{attempt}`.

use std::io;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use steadfast::policy::Policies;
use steadfast::{Executor, Jitter, Retry};

#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl io::Write for Captured {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// What `body` logs at DEBUG and above, run on a paused current-thread runtime.
fn captured<F: std::future::Future<Output = ()>>(body: F) -> String {
    let captured = Captured::default();
    let writer = captured.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_ansi(false)
        .without_time()
        .with_max_level(tracing::Level::DEBUG)
        .with_writer(move || writer.clone())
        .finish();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .start_paused(true)
        .build()
        .unwrap();
    tracing::subscriber::with_default(subscriber, || rt.block_on(body));
    String::from_utf8(captured.0.lock().unwrap().clone()).unwrap()
}

#[test]
fn spans_carry_the_key_and_each_attempt() {
    let out = captured(async {
        let policy = Retry::fixed(Duration::from_millis(10))
            .jitter(Jitter::None)
            .max_attempts(3)
            .build()
            .unwrap();
        let executor = Executor::builder()
            .policies(Policies::new(policy))
            .tracing(true)
            .build();
        let mut n = 0;
        let value = executor
            .run("svc.Method", || {
                n += 1;
                let attempt = n;
                async move {
                    tracing::info!(attempt, "inside the operation");
                    if attempt < 2 {
                        Err("busy")
                    } else {
                        Ok(attempt)
                    }
                }
            })
            .await
            .unwrap();
        assert_eq!(value, 2);
        let _ = executor
            .run("svc.Down", || async { Err::<(), _>("down") })
            .await;
    });
    let has = |needle: &str| {
        assert!(out.contains(needle), "missing {needle:?} in:\n{out}");
    };
    has(
        "INFO steadfast.call{key=svc.Method}:steadfast.attempt{attempt=1}: tracing: inside the operation attempt=1",
    );
    has(
        "INFO steadfast.call{key=svc.Method}:steadfast.attempt{attempt=2}: tracing: inside the operation attempt=2",
    );
    has(
        "INFO steadfast.call{key=svc.Method}: steadfast::observe::tracing_probe: retrying attempt=1 delay=10ms reason=Backoff",
    );
    has(
        "DEBUG steadfast.call{key=svc.Method attempts=2}: steadfast::observe::tracing_probe: call succeeded attempts=2",
    );
    has(
        "WARN steadfast.call{key=svc.Down attempts=3}: steadfast::observe::tracing_probe: call failed attempts=3",
    );
}

#[test]
fn a_call_that_allows_it_logs_each_errors_text_at_debug() {
    let out = captured(async {
        let policy = Retry::immediate().max_attempts(2).build().unwrap();
        let executor = Executor::builder()
            .policies(Policies::new(policy))
            .tracing(true)
            .build();
        let _ = executor
            .call("svc.Texted", || async {
                Err::<(), _>(io::Error::other("disk full"))
            })
            .error_text()
            .run()
            .await;
        let _ = executor
            .call("svc.Quiet", || async {
                Err::<(), _>(io::Error::other("secret"))
            })
            .run()
            .await;
    });
    let texted = out
        .lines()
        .filter(|l| l.contains("steadfast: attempt failed key=svc.Texted error=disk full"))
        .count();
    assert_eq!(texted, 2, "{out}");
    assert!(out.contains("DEBUG"), "{out}");
    assert!(!out.contains("secret"), "{out}");
}
