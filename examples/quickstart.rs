//! A flaky operation retried under an exponential backoff, each attempt printed with its delay
//! and outcome.
//!
//! Run with `cargo run --example quickstart`.

use std::time::{Duration, Instant};

use steadfast::classify::{self, Outcome};
use steadfast::{Jitter, Retry};

/// A dependency that resets the connection twice, then answers.
#[derive(Debug)]
struct Flaky {
    calls: u32,
}

#[derive(Debug)]
enum FetchError {
    Reset,
    NotFound,
}

impl Flaky {
    async fn fetch_balance(&mut self, account: &str) -> Result<u64, FetchError> {
        self.calls += 1;
        tokio::time::sleep(Duration::from_millis(5)).await; // the network
        match (account, self.calls) {
            ("nobody", _) => Err(FetchError::NotFound),
            (_, 1 | 2) => Err(FetchError::Reset),
            _ => Ok(42),
        }
    }
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let retry = Retry::exponential(Duration::from_millis(50))
        .max_attempts(5)
        .jitter(Jitter::Full)
        .total_timeout(Duration::from_secs(5))
        .build()?;
    println!("policy: exponential from 50ms, full jitter, 5 attempts, 5s deadline\n");

    for account in ["alice", "nobody"] {
        println!("fetch_balance({account:?})");
        let dependency = tokio::sync::Mutex::new(Flaky { calls: 0 });
        let start = Instant::now();
        let mut attempt = 0;
        let result = retry
            .call(|| {
                attempt += 1;
                let n = attempt;
                let dependency = &dependency;
                async move {
                    let at = start.elapsed().as_millis();
                    let result = dependency.lock().await.fetch_balance(account).await;
                    println!("  attempt {n} at {at:>4} ms: {result:?}");
                    result
                }
            })
            .classify_error(|e| match e {
                FetchError::Reset => Outcome::RETRYABLE,
                FetchError::NotFound => Outcome::NonRetryable,
            })
            .on_retry(|r| println!("             retrying in {} ms", r.delay().as_millis()))
            .run()
            .await;
        match result {
            Ok(balance) => println!("  => balance {balance} after {attempt} attempts\n"),
            Err(e) => println!("  => {e}: {:?}\n", e.operation_error()),
        }
    }

    // The same engine on a plain thread, with the built-in HTTP rules and Retry-After.
    let mut statuses = [(503, Some("0")), (200, None)].into_iter();
    let status = Retry::fixed(Duration::from_millis(20))
        .build()?
        .call_blocking(|| match statuses.next() {
            Some((200, _)) | None => Ok(200),
            Some(other) => Err(other),
        })
        .classify_error(|(code, retry_after)| classify::http::response(*code, *retry_after))
        .on_retry(|r| println!("blocking: got {:?}, retrying in {:?}", r.error(), r.delay()))
        .run()
        .map_err(|e| e.to_string())?;
    println!("blocking: final status {status}");
    Ok(())
}
