//! The HTTP example against its local flaky server: two 503s, then the balance.

use std::sync::atomic::Ordering;
use std::time::Duration;

use steadfast::policy::Policies;
use steadfast::{ErrorKind, Executor, Retry, Stop};
use steadfast_examples::http::{FetchError, fetch_balance, serve_flaky};

fn executor(attempts: u32) -> Executor {
    Executor::new(Policies::new(
        Retry::fixed(Duration::from_millis(5))
            .max_attempts(attempts)
            .build()
            .unwrap(),
    ))
}

#[tokio::test]
async fn two_503s_then_the_balance() {
    let (addr, served) = serve_flaky(2).await.unwrap();
    let handle = executor(4).handle("accounts.Balance").unwrap();
    let (status, body) = fetch_balance(addr, handle).await.unwrap();
    assert_eq!((status, body.as_str()), (200, "42"));
    assert_eq!(served.load(Ordering::SeqCst), 3);
}

#[tokio::test]
async fn exhausted_attempts_return_the_last_503() {
    let (addr, served) = serve_flaky(10).await.unwrap();
    let handle = executor(3).handle("accounts.Balance").unwrap();
    let (status, _) = fetch_balance(addr, handle).await.unwrap();
    // A classified Ok keeps being an Ok: the last response comes back, after 3 requests.
    assert_eq!(status, 503);
    assert_eq!(served.load(Ordering::SeqCst), 3);
}

#[tokio::test]
async fn a_refused_connection_is_retried_then_reported() {
    // Nothing listens on this port once the listener is dropped.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);
    let handle = executor(2).handle("accounts.Balance").unwrap();
    let err = fetch_balance(addr, handle).await.unwrap_err();
    assert!(
        matches!(
            &err,
            FetchError::Call(e) if matches!(e.kind(), ErrorKind::Operation {
                attempts: 2,
                stop: Stop::Exhausted,
                ..
            })
        ),
        "{err:?}"
    );
}
