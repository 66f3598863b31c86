//! The breaker's state machine. The closed state is read and counted with atomics; every
//! change of state takes the one lock.

use std::fmt;
use std::sync::atomic::{AtomicU8, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use tokio::time::Instant;

use super::window::{CountWindow, Stats, TimeWindow, Totals};
use super::{BreakerKind, BreakerOptions, Window};
use crate::classify::Outcome;
use crate::config::ConfigError;

/// Where a breaker stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum BreakerState {
    /// Calls pass and are counted.
    Closed,
    /// Calls are refused until the break ends.
    Open,
    /// A few probes pass; their results decide.
    HalfOpen,
    /// Held open by hand ([`Breaker::isolate`]) until [`Breaker::reset`].
    Isolated,
}

impl BreakerState {
    /// The state's name as events and metrics write it: `closed`, `open`, `half_open`,
    /// `isolated`.
    pub const fn as_str(&self) -> &'static str {
        match self {
            BreakerState::Closed => "closed",
            BreakerState::Open => "open",
            BreakerState::HalfOpen => "half_open",
            BreakerState::Isolated => "isolated",
        }
    }

    const fn from_u8(n: u8) -> BreakerState {
        match n {
            CLOSED => BreakerState::Closed,
            OPEN => BreakerState::Open,
            HALF_OPEN => BreakerState::HalfOpen,
            _ => BreakerState::Isolated,
        }
    }
}

impl fmt::Display for BreakerState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

const CLOSED: u8 = 0;
const OPEN: u8 = 1;
const HALF_OPEN: u8 = 2;
const ISOLATED: u8 = 3;

/// A change of state, as calls report it to observers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Transition {
    /// The state before.
    pub from: BreakerState,
    /// The state after.
    pub to: BreakerState,
}

/// A refusal: the breaker is open (or half-open with every probe out, or isolated).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Open {
    /// When a call may be let through again, if known (`None` while isolated).
    pub retry_after: Option<Duration>,
    /// The state that refused.
    pub state: BreakerState,
}

/// A circuit breaker: cheap to clone, every clone the same breaker (share one between keys by
/// sharing it). See the [module docs](super).
#[derive(Clone)]
pub struct Breaker {
    shared: Arc<Shared>,
}

impl fmt::Debug for Breaker {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Breaker")
            .field("state", &self.state())
            .field("options", &self.shared.options)
            .finish()
    }
}

struct Shared {
    options: BreakerOptions,
    origin: Instant,
    state: AtomicU8,
    /// Bumped on every change of state: a result from a permit of an earlier epoch is stale.
    epoch: AtomicU32,
    consecutive: AtomicU32,
    stats: Option<Stats>,
    /// Nanoseconds since `origin` at which an open breaker may probe.
    open_until: AtomicU64,
    slow: Mutex<Transitions>,
}

/// What only changes of state touch.
#[derive(Debug, Default)]
struct Transitions {
    /// Opens in a row (a close starts over): the break grows with them.
    opens: u32,
    /// Probes out, by ticket, with when each was let through.
    probes: Vec<(u64, Instant)>,
    next_ticket: u64,
    /// Probe results of this half-open spell.
    probe_calls: u32,
    probe_failures: u32,
    probe_slow: u32,
}

impl Breaker {
    /// A breaker with `options`, validated.
    pub fn new(options: BreakerOptions) -> Result<Breaker, ConfigError> {
        options.validate()?;
        Ok(Self::from_valid(options))
    }

    /// The same, for options already validated (a plan's): cannot fail.
    pub(crate) fn from_valid(options: BreakerOptions) -> Breaker {
        let stats = match &options.kind {
            BreakerKind::FailureRate { window, .. } => Some(match *window {
                Window::Calls(n) => Stats::Count(CountWindow::new(n)),
                Window::Time { length, buckets } => Stats::Time(TimeWindow::new(length, buckets)),
            }),
            BreakerKind::Adaptive { window, .. } => Some(Stats::Time(TimeWindow::new(*window, 10))),
            _ => None,
        };
        Breaker {
            shared: Arc::new(Shared {
                options,
                origin: Instant::now(),
                state: AtomicU8::new(CLOSED),
                epoch: AtomicU32::new(0),
                consecutive: AtomicU32::new(0),
                stats,
                open_until: AtomicU64::new(0),
                slow: Mutex::new(Transitions::default()),
            }),
        }
    }

    /// Options for a breaker that opens after `threshold` failures in a row.
    pub fn consecutive(threshold: u32) -> BreakerOptions {
        BreakerOptions::consecutive(threshold)
    }

    /// Options for a breaker that opens at a failure rate (see
    /// [`BreakerOptions::failure_rate`]).
    pub fn failure_rate(threshold: f64) -> BreakerOptions {
        BreakerOptions::failure_rate(threshold)
    }

    /// Options for an adaptive breaker (see [`BreakerKind::Adaptive`]).
    pub fn adaptive(base: u32, max: u32) -> BreakerOptions {
        BreakerOptions::adaptive(base, max)
    }

    /// The options it was made with.
    pub fn options(&self) -> &BreakerOptions {
        &self.shared.options
    }

    /// Whether `other` is this very breaker (a clone of it).
    pub fn same(&self, other: &Breaker) -> bool {
        Arc::ptr_eq(&self.shared, &other.shared)
    }

    /// Where it stands now. An open breaker whose break is over reads `Open` until a call
    /// comes to probe.
    pub fn state(&self) -> BreakerState {
        BreakerState::from_u8(self.shared.state.load(Ordering::Acquire))
    }

    /// Asks to make one attempt: a [`Permit`] to report its outcome on, or [`Open`].
    #[inline]
    pub fn try_acquire(&self) -> Result<Permit<'_>, Open> {
        let s = &*self.shared;
        if s.state.load(Ordering::Acquire) == CLOSED {
            return Ok(s.closed_permit(Instant::now));
        }
        s.acquire_slow()
    }

    /// The fast path's permit while closed: what `Permit::record` needs, as two plain words
    /// to keep across the attempt (a `Permit` kept there is copied field by field on every
    /// call); `None` when not closed, and the engine takes a real permit.
    #[inline]
    pub(crate) fn closed_ticket(&self) -> Option<ClosedTicket> {
        let s = &*self.shared;
        (s.state.load(Ordering::Acquire) == CLOSED).then(|| s.closed_ticket(Instant::now))
    }

    /// Reports the outcome of an attempt let through on `ticket`, as
    /// [`Permit::record`] does. Out of line and lean: a failure-rate breaker over the last N
    /// calls whose slot held a call that ended the same way changes nothing.
    #[inline(never)]
    pub(crate) fn settle_closed(&self, ticket: ClosedTicket, outcome: &Outcome) {
        // As the closed permit of `ticket` would record it, without making one to drop.
        let s = &*self.shared;
        let failed = !matches!(outcome, Outcome::Success) && s.options.failures.counts(outcome);
        if let (None, BreakerKind::FailureRate { .. }, Some(Stats::Count(window))) =
            (ticket.started, &s.options.kind, &s.stats)
        {
            if s.epoch.load(Ordering::Acquire) != ticket.epoch {
                return; // let through before the last change of state
            }
            if let Some(totals) = window.record_changed(failed, false) {
                let _ = s.failure_rate_decides(ticket.epoch, totals);
            }
            return;
        }
        let _ = s.record_closed_other(ticket.epoch, failed, s.is_slow(ticket.started));
    }

    /// Forces it open until [`reset`](Self::reset): every call is refused.
    pub fn isolate(&self) -> Transition {
        let mut t = self.shared.lock();
        self.shared.set(&mut t, ISOLATED)
    }

    /// Closes it and forgets every count.
    pub fn reset(&self) -> Transition {
        let mut t = self.shared.lock();
        self.shared.set(&mut t, CLOSED)
    }
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Transitions> {
        self.slow.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Whether an attempt started at `started` counts as slow.
    #[inline]
    fn is_slow(&self, started: Option<Instant>) -> bool {
        // No start is kept unless slow calls are timed: most calls end at the first test.
        let Some(at) = started else {
            return false;
        };
        match &self.options.kind {
            BreakerKind::FailureRate { slow: Some(s), .. } => at.elapsed() >= s.duration,
            _ => false,
        }
    }

    fn needs_start(&self) -> bool {
        matches!(
            self.options.kind,
            BreakerKind::FailureRate { slow: Some(_), .. }
        )
    }

    /// A permit in the closed state; `now` is read only if slow calls are timed.
    #[inline]
    fn closed_permit(&self, now: impl FnOnce() -> Instant) -> Permit<'_> {
        self.closed_permit_on(self.closed_ticket(now))
    }

    /// What a closed-state permit needs: the epoch, and the start if slow calls are timed.
    #[inline]
    fn closed_ticket(&self, now: impl FnOnce() -> Instant) -> ClosedTicket {
        ClosedTicket {
            epoch: self.epoch.load(Ordering::Acquire),
            started: self.needs_start().then(now),
        }
    }

    /// The closed-state permit of `ticket`.
    #[inline]
    fn closed_permit_on(&self, ticket: ClosedTicket) -> Permit<'_> {
        Permit {
            shared: self,
            kind: PermitKind::Closed {
                epoch: ticket.epoch,
            },
            started: ticket.started,
            transition: None,
        }
    }

    fn nanos(&self, at: Instant) -> u64 {
        u64::try_from(at.saturating_duration_since(self.origin).as_nanos()).unwrap_or(u64::MAX)
    }

    /// Moves to `to` (under the lock): new epoch, counts cleared, probes forgotten.
    fn set(&self, t: &mut Transitions, to: u8) -> Transition {
        let from = self.state.load(Ordering::Acquire);
        self.epoch.fetch_add(1, Ordering::AcqRel);
        self.consecutive.store(0, Ordering::Relaxed);
        t.probes.clear();
        t.probe_calls = 0;
        t.probe_failures = 0;
        t.probe_slow = 0;
        if to == CLOSED
            && let Some(stats) = &self.stats
            && !matches!(self.options.kind, BreakerKind::Adaptive { .. })
        {
            stats.reset();
        }
        if to == CLOSED {
            t.opens = 0;
        }
        if to == OPEN {
            t.opens = t.opens.saturating_add(1);
            let until = Instant::now() + self.options.break_after(t.opens);
            self.open_until.store(self.nanos(until), Ordering::Release);
        }
        self.state.store(to, Ordering::Release);
        Transition {
            from: BreakerState::from_u8(from),
            to: BreakerState::from_u8(to),
        }
    }

    #[cold]
    fn acquire_slow(&self) -> Result<Permit<'_>, Open> {
        let mut t = self.lock();
        let now = Instant::now();
        let mut transition = None;
        match self.state.load(Ordering::Acquire) {
            CLOSED => return Ok(self.closed_permit(|| now)),
            ISOLATED => {
                return Err(Open {
                    retry_after: None,
                    state: BreakerState::Isolated,
                });
            }
            OPEN => {
                let until = self.open_until.load(Ordering::Acquire);
                let at = self.nanos(now);
                if at < until {
                    return Err(Open {
                        retry_after: Some(Duration::from_nanos(until - at)),
                        state: BreakerState::Open,
                    });
                }
                transition = Some(self.set(&mut t, HALF_OPEN));
            }
            _ => {}
        }
        // Half-open: a probe that has run past its timeout gives its slot up.
        let timeout = self.options.probe_timeout;
        t.probes
            .retain(|&(_, at)| now.saturating_duration_since(at) < timeout);
        if t.probes.len() + t.probe_calls as usize >= self.options.half_open_calls as usize {
            let retry_after = t
                .probes
                .iter()
                .map(|&(_, at)| timeout.saturating_sub(now.saturating_duration_since(at)))
                .min();
            return Err(Open {
                retry_after,
                state: BreakerState::HalfOpen,
            });
        }
        let ticket = t.next_ticket;
        t.next_ticket += 1;
        t.probes.push((ticket, now));
        Ok(Permit {
            shared: self,
            kind: PermitKind::Probe {
                epoch: self.epoch.load(Ordering::Acquire),
                ticket,
            },
            started: Some(now),
            transition,
        })
    }

    /// A closed-state result. A failure-rate breaker over the last N calls (the common
    /// kind) is recorded inline; every other kind out of line.
    #[inline]
    fn record_closed(&self, epoch: u32, failed: bool, slow: bool) -> Option<Transition> {
        if let (BreakerKind::FailureRate { .. }, Some(Stats::Count(window))) =
            (&self.options.kind, &self.stats)
        {
            if self.epoch.load(Ordering::Acquire) != epoch {
                return None; // let through before the last change of state
            }
            // Totals that did not change decide what they decided before: not to trip.
            return match window.record_changed(failed, slow) {
                None => None,
                Some(totals) => self.failure_rate_decides(epoch, totals),
            };
        }
        self.record_closed_other(epoch, failed, slow)
    }

    /// [`record_closed`](Self::record_closed) for every kind and window.
    #[inline(never)]
    fn record_closed_other(&self, epoch: u32, failed: bool, slow: bool) -> Option<Transition> {
        if self.epoch.load(Ordering::Acquire) != epoch {
            return None; // let through before the last change of state
        }
        let trip = match &self.options.kind {
            BreakerKind::NoOp => false,
            BreakerKind::Consecutive { threshold } => {
                if failed {
                    self.consecutive.fetch_add(1, Ordering::AcqRel) + 1 >= *threshold
                } else {
                    if self.consecutive.load(Ordering::Relaxed) != 0 {
                        self.consecutive.store(0, Ordering::Relaxed);
                    }
                    false
                }
            }
            BreakerKind::FailureRate { .. } => {
                let stats = self.stats.as_ref();
                let now = match stats {
                    Some(s) if s.timed() => self.nanos(Instant::now()),
                    _ => 0,
                };
                // Totals that did not change decide what they decided before: not to trip.
                return match stats.map(|s| s.record_changed(now, failed, slow)) {
                    Some(None) => None,
                    Some(Some(totals)) => self.failure_rate_decides(epoch, totals),
                    None => self.failure_rate_decides(epoch, Totals::default()),
                };
            }
            BreakerKind::Adaptive { base, max, .. } => {
                let now = self.nanos(Instant::now());
                let totals = self
                    .stats
                    .as_ref()
                    .map_or(Totals::default(), |s| s.record(now, failed, false));
                if failed {
                    let run = self.consecutive.fetch_add(1, Ordering::AcqRel) + 1;
                    run >= adaptive_threshold(*base, *max, totals)
                } else {
                    if self.consecutive.load(Ordering::Relaxed) != 0 {
                        self.consecutive.store(0, Ordering::Relaxed);
                    }
                    false
                }
            }
        };
        if trip { self.trip(epoch) } else { None }
    }

    /// Whether a failure-rate breaker's new `totals` open it (out of line: a closed breaker's
    /// calls mostly leave the totals as they were).
    #[inline(never)]
    fn failure_rate_decides(&self, epoch: u32, totals: Totals) -> Option<Transition> {
        let BreakerKind::FailureRate {
            threshold,
            min_calls,
            slow: slow_calls,
            ..
        } = &self.options.kind
        else {
            return None;
        };
        let trip = totals.calls >= (*min_calls).max(1)
            && (rate(totals.failures, totals.calls) >= *threshold
                || slow_calls.is_some_and(|s| rate(totals.slow, totals.calls) >= s.threshold));
        if trip { self.trip(epoch) } else { None }
    }

    /// Opens the breaker if it is still closed in `epoch`: only the first to see the
    /// threshold crossed in this closed spell opens it.
    fn trip(&self, epoch: u32) -> Option<Transition> {
        let mut t = self.lock();
        if self.state.load(Ordering::Acquire) != CLOSED
            || self.epoch.load(Ordering::Acquire) != epoch
        {
            return None;
        }
        Some(self.set(&mut t, OPEN))
    }

    fn record_probe(
        &self,
        epoch: u32,
        ticket: u64,
        failed: bool,
        slow: bool,
    ) -> Option<Transition> {
        let mut t = self.lock();
        if self.epoch.load(Ordering::Acquire) != epoch {
            return None;
        }
        let Some(i) = t.probes.iter().position(|&(n, _)| n == ticket) else {
            return None; // it ran past its timeout and its slot went to another probe
        };
        t.probes.swap_remove(i);
        t.probe_calls += 1;
        t.probe_failures += u32::from(failed);
        t.probe_slow += u32::from(slow);
        let permitted = self.options.half_open_calls;
        match &self.options.kind {
            BreakerKind::FailureRate {
                threshold,
                slow: slow_calls,
                ..
            } => {
                if t.probe_calls < permitted {
                    return None;
                }
                let open = rate(t.probe_failures, t.probe_calls) >= *threshold
                    || slow_calls.is_some_and(|s| rate(t.probe_slow, t.probe_calls) >= s.threshold);
                Some(self.set(&mut t, if open { OPEN } else { CLOSED }))
            }
            _ if failed => Some(self.set(&mut t, OPEN)),
            _ if t.probe_calls >= permitted => Some(self.set(&mut t, CLOSED)),
            _ => None,
        }
    }

    fn release_probe(&self, epoch: u32, ticket: u64) {
        let mut t = self.lock();
        if self.epoch.load(Ordering::Acquire) == epoch {
            t.probes.retain(|&(n, _)| n != ticket);
        }
    }
}

fn rate(part: u32, whole: u32) -> f64 {
    if whole == 0 {
        0.0
    } else {
        f64::from(part) / f64::from(whole)
    }
}

/// `max` when the window saw no errors, `base` when it saw only errors.
fn adaptive_threshold(base: u32, max: u32, totals: Totals) -> u32 {
    let healthy = 1.0 - rate(totals.failures, totals.calls);
    let span = f64::from(max - base);
    base + (span * healthy).round() as u32
}

/// Leave to make one attempt through a [`Breaker`]; report how it went with
/// [`record`](Self::record). A probe's permit dropped without a result frees its slot.
#[must_use = "a permit reports the attempt's outcome with `record`"]
pub struct Permit<'a> {
    shared: &'a Shared,
    kind: PermitKind,
    started: Option<Instant>,
    transition: Option<Transition>,
}

impl fmt::Debug for Permit<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Permit")
            .field("probe", &matches!(self.kind, PermitKind::Probe { .. }))
            .finish()
    }
}

/// A closed breaker's permit, taken apart (see `Breaker::closed_ticket`).
#[derive(Debug, Clone, Copy)]
pub(crate) struct ClosedTicket {
    epoch: u32,
    started: Option<Instant>,
}

#[derive(Debug, Clone, Copy)]
enum PermitKind {
    Closed { epoch: u32 },
    Probe { epoch: u32, ticket: u64 },
    Spent,
}

impl Permit<'_> {
    /// Whether this attempt is a half-open probe.
    pub fn is_probe(&self) -> bool {
        matches!(self.kind, PermitKind::Probe { .. })
    }

    /// The change of state taking this permit made (an open breaker turning half-open).
    pub fn transition(&self) -> Option<Transition> {
        self.transition
    }

    /// Reports the attempt's outcome; `None` for an attempt that ran out of time. Returns the
    /// change of state it caused, if any.
    ///
    /// ```
    /// use steadfast::{breaker::{Breaker, BreakerState}, Outcome};
    ///
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() -> Result<(), steadfast::ConfigError> {
    /// let breaker = Breaker::consecutive(1).build()?;
    /// let change = breaker.try_acquire().unwrap().record(Some(&Outcome::RETRYABLE));
    /// assert_eq!(change.map(|c| c.to), Some(BreakerState::Open));
    /// assert!(breaker.try_acquire().is_err());
    /// # Ok(()) }
    /// ```
    #[inline]
    pub fn record(mut self, outcome: Option<&Outcome>) -> Option<Transition> {
        let failures = &self.shared.options.failures;
        let failed = match outcome {
            Some(o) => failures.counts(o),
            None => failures.timeout,
        };
        self.record_failed(failed)
    }

    /// Reports the attempt as a failure (`true`) or a success.
    #[inline]
    pub fn record_failed(&mut self, failed: bool) -> Option<Transition> {
        let slow = self.shared.is_slow(self.started);
        match std::mem::replace(&mut self.kind, PermitKind::Spent) {
            PermitKind::Closed { epoch } => self.shared.record_closed(epoch, failed, slow),
            PermitKind::Probe { epoch, ticket } => {
                self.shared.record_probe(epoch, ticket, failed, slow)
            }
            PermitKind::Spent => None,
        }
    }
}

impl Drop for Permit<'_> {
    fn drop(&mut self) {
        if let PermitKind::Probe { epoch, ticket } = self.kind {
            self.shared.release_probe(epoch, ticket);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn adaptive_threshold_moves_with_the_error_rate() {
        let t = |calls, failures| {
            adaptive_threshold(
                5,
                20,
                Totals {
                    calls,
                    failures,
                    slow: 0,
                },
            )
        };
        assert_eq!(t(0, 0), 20);
        assert_eq!(t(100, 0), 20);
        assert_eq!(t(100, 100), 5);
        assert_eq!(t(100, 40), 14);
    }
}
