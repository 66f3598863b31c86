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
