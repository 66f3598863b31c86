//! A real HTTP call retried through `steadfast::tower::RetryLayer`: reqwest against a local
//! axum server that answers 503 (with `Retry-After: 0`) twice, then 200.
//!
//! Run with `cargo run --example http_retry`.

use std::time::Duration;

use steadfast::policy::Policies;
use steadfast::{Executor, Retry};
use steadfast_examples::http::{fetch_balance, serve_flaky};

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let (addr, served) = serve_flaky(2).await?;
    let executor = Executor::new(
        Policies::default().with(
            "accounts.*",
            Retry::exponential(Duration::from_millis(50))
                .max_attempts(4)
                .build()?,
        )?,
    );
    let (status, body) = fetch_balance(addr, executor.handle("accounts.Balance")?).await?;
    println!(
        "GET http://{addr}/balance -> {status} {body:?} after {} requests",
        served.load(std::sync::atomic::Ordering::SeqCst)
    );
    Ok(())
}
