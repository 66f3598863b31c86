//! `#[steadfast::retry]` on async and sync functions, with a key or inline options; bad
//! arguments fail to compile with an error at the argument (trybuild).

use std::sync::atomic::{AtomicU32, Ordering};

static ASYNC_TRIES: AtomicU32 = AtomicU32::new(0);
static SYNC_TRIES: AtomicU32 = AtomicU32::new(0);
static KEY_TRIES: AtomicU32 = AtomicU32::new(0);

#[derive(Debug, Clone, PartialEq)]
struct Order {
    id: u32,
}

#[steadfast::retry(
    max_attempts = 5,
    backoff = "exponential",
    base = "100ms",
    jitter = "none"
)]
async fn charge(order: Order, note: &str) -> Result<String, String> {
    let n = ASYNC_TRIES.fetch_add(1, Ordering::SeqCst) + 1;
    if n < 3 {
        Err(format!("busy {n}"))
    } else {
        Ok(format!("{} {note} on try {n}", order.id))
    }
}

#[steadfast::retry(max_attempts = 2, backoff = "fixed", base = "1ms")]
fn parse(input: &str) -> Result<u32, std::num::ParseIntError> {
    SYNC_TRIES.fetch_add(1, Ordering::SeqCst);
    input.parse()
}

#[steadfast::retry("macros.Keyed")]
async fn keyed() -> Result<u32, &'static str> {
    let n = KEY_TRIES.fetch_add(1, Ordering::SeqCst) + 1;
    if n < 2 { Err("once") } else { Ok(n) }
}

#[tokio::test(start_paused = true)]
async fn async_functions_retry_with_inline_options() {
    let start = tokio::time::Instant::now();
    let receipt = charge(Order { id: 7 }, "paid").await.unwrap();
    assert_eq!(receipt, "7 paid on try 3");
    // Two waits, 100 ms then 200 ms, with no jitter.
    assert_eq!(start.elapsed(), std::time::Duration::from_millis(300));
}

#[test]
fn sync_functions_retry_and_report_errors() {
    assert_eq!(parse("12").unwrap(), 12);
    let err = parse("x").unwrap_err();
    assert_eq!(err.attempts(), 2);
    assert_eq!(SYNC_TRIES.load(Ordering::SeqCst), 3);
}

#[tokio::test(start_paused = true)]
async fn a_key_uses_the_executor_plan() {
    assert_eq!(keyed().await.unwrap(), 2);
}

#[test]
fn bad_arguments_fail_to_compile_at_the_argument() {
    let t = trybuild::TestCases::new();
    t.compile_fail("tests/ui/*.rs");
}
