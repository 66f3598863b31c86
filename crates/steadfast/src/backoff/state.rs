use std::time::Duration;

use super::options::{BackoffKind, BackoffOptions, DelayArgs, Jitter};
use crate::classify::Outcome;
use crate::config::{ConfigError, Problems};

/// A backoff schedule in progress: `next()`, `reset()` and `sleep()`.
///
/// Made once and kept, it serves long-running loops (reconnects, pollers): call
/// [`reset`](Self::reset) after a success and the schedule starts again from `base`. The retry
/// engine runs every call on one of these, so what a test reads from `next()` is what a call
/// waits. Built-in kinds never end (`next()` is always `Some`); a custom function may stop.
///
/// Randomness comes from a [`fastrand`] generator; [`with_seed`](Self::with_seed) pins it for
/// tests.
///
/// # Example
/// ```
/// use std::time::Duration;
/// use steadfast::backoff::{Backoff, BackoffOptions, Jitter};
///
/// # #[tokio::main(flavor = "current_thread", start_paused = true)]
/// # async fn main() -> Result<(), steadfast::ConfigError> {
/// let mut backoff = Backoff::new(
///     BackoffOptions::fibonacci(Duration::from_millis(10)).jitter(Jitter::None),
/// )?;
/// let delays: Vec<_> = backoff.by_ref().take(5).collect();
/// assert_eq!(delays, [10, 10, 20, 30, 50].map(Duration::from_millis));
/// backoff.reset();
/// assert_eq!(backoff.sleep().await, Some(Duration::from_millis(10)));
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct Backoff {
    options: BackoffOptions,
    steps: Steps,
    schedule: Schedule,
}

/// The report on options that [`BackoffOptions::is_valid`] refused, naming each bad field
/// (out of line: valid options never build one).
#[cold]
#[inline(never)]
fn invalid(options: BackoffOptions) -> Result<Backoff, ConfigError> {
    let mut problems = Problems::new("");
    options.check(&mut problems);
    problems.finish()?;
    Ok(Backoff::from_valid(options, None))
}

/// What every step of a schedule reads from its options, worked out once: the base and the
/// cap in nanoseconds, and the exponential factor when it is a whole number.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Steps {
    base: u64,
    max: u64,
    /// The factor of an exponential schedule when it is whole (exact integer steps); 0 when
    /// it is not (steps in floating point) or the schedule is not exponential.
    whole: u32,
}

impl Steps {
    pub(crate) const fn of(options: &BackoffOptions) -> Steps {
        let whole = match options.kind {
            BackoffKind::Exponential { factor } if factor >= 1.0 && factor <= 4_294_967_295.0 => {
                let w = factor as u32;
                if w as f64 == factor { w } else { 0 }
            }
            _ => 0,
        };
        Steps {
            base: const_nanos(options.base),
            max: const_nanos(options.max),
            whole,
        }
    }
}

const fn const_nanos(d: Duration) -> u64 {
    let n = d.as_nanos();
    if n > u64::MAX as u128 {
        u64::MAX
    } else {
        n as u64
    }
}

/// Where a schedule stands, apart from its options: the retry engine keeps one of these per
/// call and reads the options from the policy, so a call's state stays small.
#[derive(Debug, Clone)]
pub(crate) struct Schedule {
    /// Delays handed out; 64 bits, so the count never needs saturating.
    retry: u64,
    previous: Option<Duration>,
    /// The last delay before cap and jitter, in nanoseconds (saturating): the next exponential
    /// or fibonacci delay is one step from it, not a power computed anew.
    raw: u64,
    /// The last two fibonacci numbers, (fib(n−1), fib(n)), saturating.
    fib: (u64, u64),
    /// Made on first use: schedules without randomness never seed one.
    rng: Option<fastrand::Rng>,
}

impl Backoff {
    /// Validates the options and starts a schedule at the first retry.
    #[inline(always)]
    pub fn new(options: BackoffOptions) -> Result<Self, ConfigError> {
        if !options.is_valid() {
            return invalid(options);
        }
        Ok(Self::from_valid(options, None))
    }

    #[inline(always)]
    pub(crate) fn from_valid(options: BackoffOptions, rng: Option<fastrand::Rng>) -> Self {
        Backoff {
            steps: Steps::of(&options),
            options,
            schedule: Schedule::new(rng),
        }
    }

    /// Pins the random source, so the jittered schedule is the same on every run.
    pub fn with_seed(mut self, seed: u64) -> Self {
        self.schedule.rng = Some(fastrand::Rng::with_seed(seed));
        self
    }

    /// The options this schedule follows.
    pub fn options(&self) -> &BackoffOptions {
        &self.options
    }

    /// How many delays have been handed out since the start or the last reset.
    pub fn retries(&self) -> u32 {
        u32::try_from(self.schedule.retry).unwrap_or(u32::MAX)
    }

    /// Starts the schedule again from `base` (after a success).
    pub fn reset(&mut self) {
        self.schedule.reset();
    }

    /// The next delay, given how the last attempt was classified (custom functions see it).
    #[inline(always)]
    pub fn next_after(&mut self, outcome: Option<&Outcome>) -> Option<Duration> {
        self.schedule.step(&self.options, &self.steps, outcome)
    }

    /// Sleeps for the next delay on tokio's clock and returns it; `None` (at once) if the
    /// schedule has ended.
    pub async fn sleep(&mut self) -> Option<Duration> {
        let delay = self.next_after(None)?;
        if !delay.is_zero() {
            tokio::time::sleep(delay).await;
        }
        Some(delay)
    }
}

impl Schedule {
    /// A schedule at its start; `rng` is the seeded source, or `None` to draw one on first use.
    pub(crate) fn new(rng: Option<fastrand::Rng>) -> Self {
        Schedule {
            retry: 0,
            previous: None,
            raw: 0,
            fib: (0, 0),
            rng,
        }
    }

    pub(crate) fn reset(&mut self) {
        let rng = self.rng.take();
        *self = Schedule::new(rng);
    }

    /// The next delay of `options` (whose `steps` they are) from where this schedule stands.
    #[inline]
    pub(crate) fn next(
        &mut self,
        options: &BackoffOptions,
        steps: &Steps,
        outcome: Option<&Outcome>,
    ) -> Option<Duration> {
        self.step(options, steps, outcome)
    }

    /// [`next`](Self::next), always inline: the computed kinds are a few instructions, and a
    /// schedule read in a loop (`Backoff`'s iterator) keeps them in the loop. The kinds that
    /// draw or call out (decorrelated, custom) run out of line.
    #[inline(always)]
    fn step(
        &mut self,
        options: &BackoffOptions,
        steps: &Steps,
        outcome: Option<&Outcome>,
    ) -> Option<Duration> {
        let retry = self.retry.wrapping_add(1);
        let (max, base) = (steps.max, steps.base);
        let first = retry == 1;
        let raw = match &options.kind {
            BackoffKind::Immediate => 0,
            BackoffKind::Fixed => base,
            BackoffKind::Linear => base.saturating_mul(retry),
            BackoffKind::Exponential { .. } if first => base,
            BackoffKind::Exponential { factor } => grow(self.raw, *factor, steps.whole, max),
            BackoffKind::Fibonacci => {
                // fib(1) = fib(2) = 1.
                self.fib = if first {
                    (0, 1)
                } else {
                    (self.fib.1, self.fib.0.saturating_add(self.fib.1))
                };
                base.saturating_mul(self.fib.1)
            }
            BackoffKind::Decorrelated | BackoffKind::Custom(_) => {
                return self.drawn(options, steps, retry, outcome);
            }
        };
        self.raw = raw;
        self.retry = retry;
        Some(Duration::from_nanos(jitter(
            options.jitter,
            raw.min(max),
            max,
            &mut self.rng,
        )))
    }

    /// The next delay of the kinds that draw a number or call a function (the only ones
    /// that read the previous delay, so the only ones that keep it); `None` when a custom
    /// function stops.
    #[inline(never)]
    fn drawn(
        &mut self,
        options: &BackoffOptions,
        steps: &Steps,
        retry: u64,
        outcome: Option<&Outcome>,
    ) -> Option<Duration> {
        let (base, max) = (steps.base, steps.max);
        let raw = match &options.kind {
            BackoffKind::Decorrelated => {
                let previous = self.previous.map_or(base, nanos).max(base);
                rng(&mut self.rng).u64(base..=previous.saturating_mul(3))
            }
            BackoffKind::Custom(f) => {
                let args = DelayArgs {
                    retry: u32::try_from(retry).unwrap_or(u32::MAX),
                    outcome,
                    previous: self.previous,
                };
                f.call(&args).map(nanos)?
            }
            _ => base,
        };
        let delay = Duration::from_nanos(jitter(options.jitter, raw.min(max), max, &mut self.rng));
        self.raw = raw;
        self.retry = retry;
        self.previous = Some(delay);
        Some(delay)
    }
}

impl Iterator for Backoff {
    type Item = Duration;

    #[inline(always)]
    fn next(&mut self) -> Option<Duration> {
        self.next_after(None)
    }
}

/// The random source, drawn from the thread's generator on first use.
fn rng(slot: &mut Option<fastrand::Rng>) -> &mut fastrand::Rng {
    slot.get_or_insert_with(fastrand::Rng::new)
}

/// Applies a jitter mode to a capped delay `d` (nanoseconds).
#[inline]
fn jitter(mode: Jitter, d: u64, max: u64, slot: &mut Option<fastrand::Rng>) -> u64 {
    match mode {
        Jitter::None => d,
        mode => random_jitter(mode, d, max, slot),
    }
}

/// The random modes of [`jitter`], out of line.
#[inline(never)]
fn random_jitter(mode: Jitter, d: u64, max: u64, slot: &mut Option<fastrand::Rng>) -> u64 {
    match mode {
        Jitter::None => d,
        Jitter::Full => rng(slot).u64(0..=d),
        Jitter::Equal => d / 2 + rng(slot).u64(0..=d - d / 2),
        Jitter::Proportional(r) => {
            let scale = 1.0 - r + 2.0 * r * rng(slot).f64();
            to_nanos(d as f64 * scale).min(max)
        }
    }
}

/// One exponential step from `previous`, saturating: once at or past `max` it stays there, so
/// the 10 000th retry costs what the 10th does.
fn grow(previous: u64, factor: f64, whole: u32, max: u64) -> u64 {
    if previous >= max {
        return previous;
    }
    // Whole factors: exact integer arithmetic.
    if whole != 0 {
        previous.saturating_mul(u64::from(whole))
    } else {
        to_nanos(previous as f64 * factor)
    }
}

fn nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

fn to_nanos(x: f64) -> u64 {
    // `as` saturates (and maps NaN to 0), which is exactly what a cap wants.
    x.round() as u64
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(v: u64) -> Duration {
        Duration::from_millis(v)
    }

    fn schedule(options: BackoffOptions, n: usize) -> Vec<Duration> {
        Backoff::new(options.jitter(Jitter::None))
            .expect("valid")
            .take(n)
            .collect()
    }

    #[test]
    fn built_in_sequences_are_exact() {
        let base = ms(100);
        assert_eq!(
            schedule(BackoffOptions::fixed(base), 3),
            [100, 100, 100].map(ms)
        );
        assert_eq!(
            schedule(BackoffOptions::linear(base), 4),
            [100, 200, 300, 400].map(ms)
        );
        assert_eq!(
            schedule(BackoffOptions::exponential(base), 8),
            [100, 200, 400, 800, 1600, 3200, 6400, 10_000].map(ms)
        );
        assert_eq!(
            schedule(BackoffOptions::fibonacci(base), 9),
            [100, 100, 200, 300, 500, 800, 1300, 2100, 3400].map(ms)
        );
        assert_eq!(
            schedule(BackoffOptions::exponential(base).factor(1.5), 4),
            [100_000, 150_000, 225_000, 337_500].map(Duration::from_micros)
        );
    }

    #[test]
    fn attempt_ten_thousand_saturates_at_max() {
        let saturated = Duration::from_nanos(u64::MAX);
        for (options, expected) in [
            (BackoffOptions::linear(ms(100)), Duration::from_secs(1000)),
            (BackoffOptions::exponential(ms(100)), saturated),
            (BackoffOptions::exponential(ms(100)).factor(1.7), saturated),
            (BackoffOptions::fibonacci(ms(100)), saturated),
        ] {
            let last = schedule(options.max(Duration::MAX), 10_000).pop();
            assert_eq!(last, Some(expected));
        }
        let last = schedule(BackoffOptions::exponential(ms(1)).max(ms(500)), 10_000).pop();
        assert_eq!(last, Some(ms(500)));
    }

    #[test]
    fn custom_function_can_stop() {
        let options = BackoffOptions::custom(|a| (a.retry() < 3).then_some(ms(7)));
        assert_eq!(schedule(options, 10), [ms(7), ms(7)]);
    }
}
