//! Backoff: how long to wait before the next attempt.
//!
//! A backoff is plain data ([`BackoffOptions`]: a [`BackoffKind`], a `base`, a cap `max` and a
//! [`Jitter`] mode) and a small runtime value ([`Backoff`]) that walks the schedule: `next()`,
//! `reset()` and an async `sleep()`. The retry engine uses the same value, so a schedule printed
//! by a test or a CLI is the schedule a call follows.
//!
//! # How the next delay is computed
//! For the `n`-th retry (`n` starts at 1), before jitter:
//!
//! | kind | delay | base 100 ms, max 10 s: n = 1, 2, 3, 4, 5 |
//! |---|---|---|
//! | immediate | `0` (base ignored) | 0, 0, 0, 0, 0 |
//! | fixed | `base` | 100, 100, 100, 100, 100 ms |
//! | linear | `base × n` | 100, 200, 300, 400, 500 ms |
//! | exponential | `base × factor^(n−1)` | 100, 200, 400, 800, 1600 ms (factor 2) |
//! | fibonacci | `base × fib(n)`, fib = 1, 1, 2, 3, 5… | 100, 100, 200, 300, 500 ms |
//! | decorrelated | `uniform(base, prev × 3)`, prev starting at `base` | random, ≥ base |
//!
//! Every delay is then capped at `max`, and jitter applied to the capped value `d`:
//!
//! | jitter | delay | bounds |
//! |---|---|---|
//! | none | `d` | exactly `d` |
//! | full | `uniform(0, d)` | `[0, d]` |
//! | equal | `d/2 + uniform(0, d/2)` | `[d/2, d]` |
//! | proportional(r) | `d × uniform(1−r, 1+r)`, capped at `max` | `[d(1−r), min(max, d(1+r))]` |
//!
//! `max` is a hard cap: unlike gRPC's ±20 % jitter, proportional jitter never exceeds it.
//! Arithmetic saturates: the 10 000th exponential delay is `max`, never a panic or an overflow.
//!
//! # Example: a reconnect loop
//! ```
//! use std::time::Duration;
//! use steadfast::backoff::{Backoff, BackoffOptions, Jitter};
//!
//! let mut backoff = Backoff::new(
//!     BackoffOptions::exponential(Duration::from_millis(100))
//!         .max(Duration::from_secs(10))
//!         .jitter(Jitter::None),
//! )?;
//! assert_eq!(backoff.next(), Some(Duration::from_millis(100)));
//! assert_eq!(backoff.next(), Some(Duration::from_millis(200)));
//! backoff.reset(); // connected: start again from the base
//! assert_eq!(backoff.next(), Some(Duration::from_millis(100)));
//! # Ok::<(), steadfast::ConfigError>(())
//! ```

mod options;
mod state;

pub use options::{
    BackoffKind, BackoffOptions, DEFAULT_BASE, DEFAULT_FACTOR, DEFAULT_JITTER, DEFAULT_MAX,
    DelayArgs, DelayFn, Jitter,
};
pub use state::Backoff;

/// The seed that call `call` (counting from 0) of a policy seeded with `seed` draws its
/// jitter from: SplitMix64 of the two, so each call of a seeded policy has its own stream and
/// a run of calls repeats exactly. `Backoff::with_seed(call_seed(seed, 0))` gives the delays
/// of a seeded policy's first call.
///
/// ```
/// use steadfast::backoff::call_seed;
///
/// assert_ne!(call_seed(42, 0), call_seed(42, 1));
/// assert_eq!(call_seed(42, 1), call_seed(42, 1));
/// ```
pub fn call_seed(seed: u64, call: u64) -> u64 {
    let mut z = seed.wrapping_add(call.wrapping_add(1).wrapping_mul(0x9E37_79B9_7F4A_7C15));
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}
pub(crate) use state::{Schedule, Steps};
