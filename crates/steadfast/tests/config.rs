//! Bad configuration is a clear error naming the field, never a panic.

use std::time::Duration;

use proptest::prelude::*;
use steadfast::backoff::BackoffOptions;
use steadfast::{Jitter, Retry, RetryOptions};

fn ms(v: u64) -> Duration {
    Duration::from_millis(v)
}

fn errors(options: RetryOptions) -> Vec<String> {
    match options.build() {
        Ok(_) => Vec::new(),
        Err(e) => e.errors().iter().map(|f| f.to_string()).collect(),
    }
}

#[test]
fn each_bad_field_is_named() {
    assert_eq!(
        errors(Retry::exponential(Duration::ZERO)),
        ["retry.base: must be > 0, got 0ms"]
    );
    assert_eq!(
        errors(Retry::exponential(ms(500)).max_delay(ms(100))),
        ["retry.max: must be >= base (500ms), got 100ms"]
    );
    assert_eq!(
        errors(Retry::exponential(ms(100)).factor(1.0)),
        ["retry.factor: must be > 1 for exponential backoff, got 1"]
    );
    assert_eq!(
        errors(Retry::exponential(ms(100)).factor(f64::NAN)),
        ["retry.factor: must be > 1 for exponential backoff, got NaN"]
    );
    assert_eq!(
        errors(Retry::exponential(ms(100)).max_attempts(3).max_retries(2)),
        ["retry.max_retries: cannot be given together with max_attempts"]
    );
    assert_eq!(
        errors(Retry::fixed(ms(100)).max_attempts(0)),
        ["retry.max_attempts: must be >= 1, got 0"]
    );
    assert_eq!(
        errors(Retry::fixed(ms(100)).jitter(Jitter::Proportional(1.5))),
        ["retry.jitter: proportional jitter must be in (0, 1], got 1.5"]
    );
    assert_eq!(
        errors(Retry::fixed(ms(100)).attempt_timeout(Duration::ZERO)),
        ["retry.attempt_timeout: must be > 0, got 0ms"]
    );
}

#[test]
fn only_immediate_retries_may_have_a_zero_base() {
    assert!(Retry::immediate().build().is_ok());
    assert!(Retry::fixed(Duration::ZERO).build().is_err());
}

#[test]
fn every_problem_is_reported_at_once() {
    let all = errors(
        Retry::exponential(Duration::ZERO)
            .factor(0.5)
            .max_attempts(1)
            .max_retries(1)
            .total_timeout(Duration::ZERO),
    );
    assert_eq!(all.len(), 4, "{all:?}");
}

#[test]
fn max_retries_counts_after_the_first_attempt() {
    let retry = Retry::fixed(ms(1)).max_retries(2).build().unwrap();
    assert_eq!(retry.max_attempts(), Some(3));
    let retry = Retry::fixed(ms(1)).max_retries(-1).build().unwrap();
    assert_eq!(retry.max_attempts(), None);
    let retry = Retry::fixed(ms(1)).max_retries(i64::MAX).build().unwrap();
    assert_eq!(retry.max_attempts(), Some(u32::MAX));
    assert_eq!(Retry::builder().build().unwrap().max_attempts(), Some(3));
}

#[test]
fn a_standalone_backoff_validates_too() {
    let err = steadfast::Backoff::new(BackoffOptions::linear(Duration::ZERO)).unwrap_err();
    assert_eq!(err.to_string(), "base: must be > 0, got 0ms");
}

proptest! {
    /// Arbitrary options build or fail with named fields; running whatever builds never panics.
    #[test]
    fn arbitrary_options_never_panic(
        base in any::<u64>(), max in any::<u64>(), factor in any::<f64>(),
        r in any::<f64>(), attempts in proptest::option::of(any::<u32>()),
        retries in proptest::option::of(any::<i64>()), kind in 0u8..5, jitter in 0u8..4,
    ) {
        let base = Duration::from_nanos(base);
        let backoff = match kind {
            0 => BackoffOptions::fixed(base),
            1 => BackoffOptions::linear(base),
            2 => BackoffOptions::exponential(base).factor(factor),
            3 => BackoffOptions::fibonacci(base),
            _ => BackoffOptions::decorrelated(base),
        };
        let jitter = [Jitter::None, Jitter::Full, Jitter::Equal, Jitter::Proportional(r)][jitter as usize];
        let mut options = Retry::builder().backoff(backoff.max(Duration::from_nanos(max)).jitter(jitter));
        options.max_attempts = attempts;
        options.max_retries = retries;
        match options.build() {
            Ok(retry) => {
                let mut backoff = steadfast::Backoff::new(retry.backoff().clone()).unwrap();
                for _ in 0..64 {
                    prop_assert!(backoff.next().unwrap() <= retry.backoff().max);
                }
            }
            Err(e) => prop_assert!(e.errors().iter().all(|f| f.field().starts_with("retry."))),
        }
    }
}
