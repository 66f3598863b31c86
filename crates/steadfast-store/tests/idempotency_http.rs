//! The idempotent payments endpoint over a real SQLite file: 201 then 409 at once, 200
//! replayed, 422 for another body, 400 without a key; one charge made.

use std::sync::atomic::Ordering;
use std::time::Duration;

#[path = "../examples/payments/mod.rs"]
mod payments;

use payments::{executor, post_charge, serve_payments};
use steadfast_store::SqliteStore;

#[tokio::test]
async fn the_ietf_idempotency_key_answers_and_one_charge() {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(dir.path().join("steadfast.db"))
        .await
        .unwrap();
    let (addr, charges) = serve_payments(executor(store).unwrap(), Duration::from_millis(300))
        .await
        .unwrap();
    let client = reqwest::Client::new();
    let body = r#"{"amount": 1000, "currency": "EUR"}"#;
    let (first, second) = tokio::join!(post_charge(&client, addr, Some("k-1"), body), async {
        tokio::time::sleep(Duration::from_millis(100)).await;
        post_charge(&client, addr, Some("k-1"), body).await
    });
    let first = first.unwrap();
    assert_eq!(first, (201, false, r#"{"charge":"ch_1"}"#.to_owned()));
    assert_eq!(second.unwrap().0, 409);
    // Same key, same body: the stored response; the same body written otherwise is the same
    // request (the fingerprint is of the JSON value).
    let again = post_charge(&client, addr, Some("k-1"), body).await.unwrap();
    assert_eq!(again, (200, true, r#"{"charge":"ch_1"}"#.to_owned()));
    let respaced = r#"{"currency":"EUR","amount":1000}"#;
    assert_eq!(
        post_charge(&client, addr, Some("k-1"), respaced)
            .await
            .unwrap()
            .0,
        200
    );
    let other = r#"{"amount": 5, "currency": "EUR"}"#;
    assert_eq!(
        post_charge(&client, addr, Some("k-1"), other)
            .await
            .unwrap()
            .0,
        422
    );
    assert_eq!(post_charge(&client, addr, None, body).await.unwrap().0, 400);
    // Another key is another charge.
    let (status, replayed, text) = post_charge(&client, addr, Some("k-2"), body).await.unwrap();
    assert_eq!(
        (status, replayed, text.as_str()),
        (201, false, r#"{"charge":"ch_2"}"#)
    );
    assert_eq!(charges.load(Ordering::SeqCst), 2);
}
