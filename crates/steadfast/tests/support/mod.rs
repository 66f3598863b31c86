//! Helpers shared by the integration tests.
#![allow(dead_code, unreachable_pub)]

use std::sync::{Arc, Mutex};
use std::time::Duration;

use steadfast::{Error, Retry};
use tokio::time::Instant;

pub fn ms(v: u64) -> Duration {
    Duration::from_millis(v)
}

/// Records when each attempt started, relative to the recorder's creation.
#[derive(Clone)]
pub struct Attempts {
    start: Instant,
    at: Arc<Mutex<Vec<Duration>>>,
}

impl Attempts {
    pub fn new() -> Self {
        Attempts {
            start: Instant::now(),
            at: Arc::default(),
        }
    }

    pub fn record(&self) -> usize {
        let mut at = self.at.lock().unwrap();
        at.push(self.start.elapsed());
        at.len()
    }

    pub fn starts(&self) -> Vec<Duration> {
        self.at.lock().unwrap().clone()
    }

    pub fn count(&self) -> usize {
        self.at.lock().unwrap().len()
    }

    /// The gaps between consecutive attempt starts.
    pub fn gaps(&self) -> Vec<Duration> {
        self.starts().windows(2).map(|w| w[1] - w[0]).collect()
    }
}

/// Runs a future on a current-thread runtime with tokio's clock paused (auto-advancing).
pub fn paused<F: std::future::Future>(f: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .start_paused(true)
        .build()
        .unwrap()
        .block_on(f)
}

/// Runs `retry` on an operation that always fails with `"down"`, recording when each attempt
/// started (relative to this call).
pub async fn always_down(retry: &Retry) -> (Attempts, Error<&'static str>) {
    let rec = Attempts::new();
    let err = retry
        .run(|| {
            rec.record();
            async { Err::<(), _>("down") }
        })
        .await
        .expect_err("the operation never succeeds");
    (rec, err)
}

/// An observer that forwards every policy event, as text (`applied <source>`,
/// `rejected <source>: <reason>`, `unavailable <source>: <reason>`), to a channel.
#[derive(Debug)]
pub struct PolicyEvents(pub tokio::sync::mpsc::UnboundedSender<String>);

impl PolicyEvents {
    pub fn new() -> (Self, tokio::sync::mpsc::UnboundedReceiver<String>) {
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
        (PolicyEvents(tx), rx)
    }
}

impl steadfast::observe::Observer for PolicyEvents {
    fn on_event(&self, _: &steadfast::Key, _: &steadfast::observe::Event) {}

    fn on_policy_event(&self, event: &steadfast::observe::PolicyEvent<'_>) {
        use steadfast::observe::PolicyEvent;
        let text = match event {
            PolicyEvent::Applied { source } => format!("applied {source}"),
            PolicyEvent::Rejected { source, reason } => format!("rejected {source}: {reason}"),
            PolicyEvent::Unavailable { source, reason } => {
                format!("unavailable {source}: {reason}")
            }
            _ => "other".to_owned(),
        };
        let _ = self.0.send(text);
    }
}

/// The next event, waiting at most 10 s of real time (file watchers and sockets are real).
pub async fn next_event(rx: &mut tokio::sync::mpsc::UnboundedReceiver<String>) -> String {
    tokio::time::timeout(Duration::from_secs(10), rx.recv())
        .await
        .expect("no policy event within 10 s")
        .expect("the executor is gone")
}
