//! An idempotent payments endpoint (axum) over a SQLite file: the same `Idempotency-Key`
//! twice at once (201 and 409), again (200, replayed), and with another body (422).
//!
//! Run with `cargo run -p steadfast-store --example idempotency`.

use std::time::Duration;

#[path = "payments/mod.rs"]
mod payments;

use payments::{executor, post_charge, serve_payments};
use steadfast_store::SqliteStore;

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let path = std::env::temp_dir().join(format!("steadfast-idem-{}.db", std::process::id()));
    let store = SqliteStore::open(&path).await?;
    let (addr, charges) = serve_payments(executor(store)?, Duration::from_millis(200)).await?;
    let client = reqwest::Client::new();
    let body = r#"{"amount": 1000, "currency": "EUR"}"#;
    let show = |what: &str, (status, replayed, text): (u16, bool, String)| {
        let replay = if replayed {
            " (Idempotent-Replayed)"
        } else {
            ""
        };
        println!("{what:<28} -> {status}{replay} {text}");
    };
    let (a, b) = tokio::join!(post_charge(&client, addr, Some("order-42"), body), async {
        tokio::time::sleep(Duration::from_millis(50)).await;
        post_charge(&client, addr, Some("order-42"), body).await
    });
    show("POST order-42", a?);
    show("POST order-42 (at once)", b?);
    show(
        "POST order-42 (again)",
        post_charge(&client, addr, Some("order-42"), body).await?,
    );
    let other = r#"{"amount": 9999, "currency": "EUR"}"#;
    show(
        "POST order-42 (other body)",
        post_charge(&client, addr, Some("order-42"), other).await?,
    );
    show(
        "POST (no key)",
        post_charge(&client, addr, None, body).await?,
    );
    println!(
        "charges made: {}",
        charges.load(std::sync::atomic::Ordering::SeqCst)
    );
    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{suffix}", path.display()));
    }
    Ok(())
}
