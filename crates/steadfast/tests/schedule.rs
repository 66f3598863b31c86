//! Every attempt's instant, pinned to the millisecond on tokio's paused clock, for each backoff
//! kind and jitter mode (seeded).

mod support;

use std::time::Duration;

use steadfast::backoff::{Backoff, BackoffOptions};
use steadfast::{Jitter, Retry, Stop};
use support::{always_down, ms};

/// Runs a call that always fails under `options` and returns the gaps between attempt starts.
async fn gaps(options: BackoffOptions, attempts: u32, seed: u64) -> Vec<Duration> {
    let retry = Retry::builder()
        .backoff(options)
        .max_attempts(attempts)
        .seed(seed)
        .build()
        .unwrap();
    let (rec, err) = always_down(&retry).await;
    assert_eq!(err.attempts(), attempts);
    assert_eq!(err.stop(), Some(Stop::Exhausted));
    assert_eq!(rec.count(), attempts as usize);
    rec.gaps()
}

#[tokio::test(start_paused = true)]
async fn unjittered_schedules_are_exact() {
    let base = ms(100);
    let cases = [
        (BackoffOptions::immediate(), vec![0, 0, 0, 0, 0]),
        (BackoffOptions::fixed(base), vec![100, 100, 100, 100, 100]),
        (BackoffOptions::linear(base), vec![100, 200, 300, 400, 500]),
        (
            BackoffOptions::exponential(base),
            vec![100, 200, 400, 800, 1600],
        ),
        (
            BackoffOptions::fibonacci(base),
            vec![100, 100, 200, 300, 500],
        ),
        (
            BackoffOptions::exponential(base).max(ms(500)),
            vec![100, 200, 400, 500, 500],
        ),
        (
            BackoffOptions::exponential(base).factor(3.0),
            vec![100, 300, 900, 2700, 8100],
        ),
    ];
    for (options, expected) in cases {
        let got = gaps(options.clone().jitter(Jitter::None), 6, 0).await;
        assert_eq!(
            got,
            expected.into_iter().map(ms).collect::<Vec<_>>(),
            "{options:?}"
        );
    }
}

#[tokio::test(start_paused = true)]
async fn seeded_jitter_is_pinned_to_the_millisecond() {
    let kinds = [
        BackoffOptions::fixed(ms(100)),
        BackoffOptions::linear(ms(100)),
        BackoffOptions::exponential(ms(100)),
        BackoffOptions::fibonacci(ms(100)),
        BackoffOptions::decorrelated(ms(100)),
    ];
    let jitters = [
        Jitter::None,
        Jitter::Full,
        Jitter::Equal,
        Jitter::Proportional(0.2),
    ];
    for kind in kinds {
        for jitter in jitters {
            for seed in [1, 7, 42] {
                let options = kind.clone().max(ms(2000)).jitter(jitter);
                // The engine's first call draws from the same seeded source as a standalone
                // Backoff seeded for that call.
                let expected: Vec<Duration> = Backoff::new(options.clone())
                    .unwrap()
                    .with_seed(steadfast::backoff::call_seed(seed, 0))
                    .take(7)
                    .collect();
                let got = gaps(options.clone(), 8, seed).await;
                assert_eq!(got.len(), expected.len());
                for (i, (g, e)) in got.iter().zip(&expected).enumerate() {
                    // tokio's timer fires on whole milliseconds: a sleep of 6.3 ms wakes at 7.
                    assert!(
                        *g >= *e && *g < *e + ms(1),
                        "{options:?} seed {seed} retry {}: waited {g:?}, schedule says {e:?}",
                        i + 1
                    );
                }
            }
        }
    }
}

#[tokio::test(start_paused = true)]
async fn jitter_modes_stay_in_their_bounds_in_the_engine() {
    // d = 100, 200, 400, 800 ms; full in [0, d], equal in [d/2, d], ±20 % in [0.8d, 1.2d].
    let d = [100u64, 200, 400, 800];
    for seed in 0..20 {
        let base = BackoffOptions::exponential(ms(100)).max(ms(10_000));
        let full = gaps(base.clone().jitter(Jitter::Full), 5, seed).await;
        let equal = gaps(base.clone().jitter(Jitter::Equal), 5, seed).await;
        let prop = gaps(base.clone().jitter(Jitter::Proportional(0.2)), 5, seed).await;
        for i in 0..4 {
            assert!(full[i] <= ms(d[i]) + ms(1));
            assert!(equal[i] >= ms(d[i] / 2) && equal[i] <= ms(d[i]) + ms(1));
            assert!(prop[i] >= ms(d[i] * 8 / 10) && prop[i] <= ms(d[i] * 12 / 10) + ms(1));
        }
    }
}

#[tokio::test(start_paused = true)]
async fn decorrelated_follows_the_simulator_formula() {
    // min(max, uniform(base, prev × 3)) with prev starting at base: every delay is ≥ base,
    // ≤ 3 × the previous one and ≤ max.
    for seed in 0..50 {
        let got = gaps(BackoffOptions::decorrelated(ms(10)).max(ms(1000)), 12, seed).await;
        let mut prev = ms(10);
        for g in got {
            assert!(g >= ms(10) && g <= ms(1000) + ms(1), "{g:?}");
            assert!(g <= prev * 3 + ms(1), "{g:?} after {prev:?}");
            prev = g;
        }
    }
}
