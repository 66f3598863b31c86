//! Property tests: every delay is within its jitter mode's bounds and never above `max`.

use std::time::Duration;

use proptest::prelude::*;
use steadfast::backoff::{Backoff, BackoffOptions, Jitter};

fn kind(k: u8, base: Duration, factor: f64) -> BackoffOptions {
    match k {
        0 => BackoffOptions::fixed(base),
        1 => BackoffOptions::linear(base),
        2 => BackoffOptions::exponential(base).factor(factor),
        _ => BackoffOptions::fibonacci(base),
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(500))]

    #[test]
    fn jittered_delays_stay_in_bounds(
        k in 0u8..4, base_ns in 1u64..10_000_000_000, extra_ns in 0u64..100_000_000_000,
        factor in 1.01f64..10.0, r in 0.01f64..=1.0, seed in any::<u64>(), n in 1usize..200,
    ) {
        let base = Duration::from_nanos(base_ns);
        let max = Duration::from_nanos(base_ns + extra_ns);
        let plain: Vec<Duration> =
            Backoff::new(kind(k, base, factor).max(max).jitter(Jitter::None)).unwrap().take(n).collect();
        for (jitter, lo, hi) in [
            (Jitter::Full, 0.0, 1.0),
            (Jitter::Equal, 0.5, 1.0),
            (Jitter::Proportional(r), 1.0 - r, 1.0 + r),
        ] {
            let jittered = Backoff::new(kind(k, base, factor).max(max).jitter(jitter))
                .unwrap()
                .with_seed(seed)
                .take(n);
            for (d, j) in plain.iter().zip(jittered) {
                prop_assert!(*d <= max);
                prop_assert!(j <= max, "{jitter:?}: {j:?} above max {max:?}");
                let d = d.as_nanos() as f64;
                let j = j.as_nanos() as f64;
                // One nanosecond of rounding either way.
                prop_assert!(j >= d * lo - 1.0, "{jitter:?}: {j} below {}", d * lo);
                prop_assert!(j <= d * hi + 1.0, "{jitter:?}: {j} above {}", d * hi);
            }
        }
    }

    #[test]
    fn unjittered_sequences_are_monotonic_and_capped(
        // Factors ≥ 1.5 reach any cap below 100 s from 1 ms within the 300 steps looked at.
        k in 0u8..4, base_ms in 1u64..1000, extra_ms in 0u64..100_000, factor in 1.5f64..4.0,
    ) {
        let base = Duration::from_millis(base_ms);
        let max = Duration::from_millis(base_ms + extra_ms);
        let seq: Vec<Duration> =
            Backoff::new(kind(k, base, factor).max(max).jitter(Jitter::None)).unwrap().take(300).collect();
        prop_assert_eq!(seq[0], base);
        for w in seq.windows(2) {
            prop_assert!(w[0] <= w[1]);
        }
        let last = *seq.last().unwrap();
        match k {
            0 => prop_assert_eq!(last, base),
            1 => prop_assert_eq!(last, (base * 300).min(max)),
            _ => prop_assert_eq!(last, max, "grows to the cap"),
        }
    }

    #[test]
    fn decorrelated_stays_between_base_and_max(
        base_ms in 1u64..1000, extra_ms in 0u64..100_000, seed in any::<u64>(),
    ) {
        let base = Duration::from_millis(base_ms);
        let max = Duration::from_millis(base_ms + extra_ms);
        let seq = Backoff::new(BackoffOptions::decorrelated(base).max(max)).unwrap().with_seed(seed);
        let mut prev = base;
        for d in seq.take(100) {
            prop_assert!(d >= base.min(max) && d <= max);
            prop_assert!(d <= prev * 3);
            prev = d;
        }
    }
}

#[test]
fn exponential_and_fibonacci_are_exact() {
    let exp: Vec<u64> = Backoff::new(
        BackoffOptions::exponential(Duration::from_millis(1))
            .max(Duration::from_secs(3600))
            .jitter(Jitter::None),
    )
    .unwrap()
    .take(20)
    .map(|d| d.as_millis() as u64)
    .collect();
    assert_eq!(exp, (0..20).map(|i| 1u64 << i).collect::<Vec<_>>());

    let fib: Vec<u64> = Backoff::new(
        BackoffOptions::fibonacci(Duration::from_millis(1))
            .max(Duration::from_secs(3600))
            .jitter(Jitter::None),
    )
    .unwrap()
    .take(20)
    .map(|d| d.as_millis() as u64)
    .collect();
    let mut expected = vec![1u64, 1];
    while expected.len() < 20 {
        expected.push(expected[expected.len() - 1] + expected[expected.len() - 2]);
    }
    assert_eq!(fib, expected);
}
