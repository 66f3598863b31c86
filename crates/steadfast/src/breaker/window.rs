//! Sliding windows of call outcomes, kept in atomics: recording takes no lock.
//!
//! Under concurrent recording a window is exact in what it counts per call and may be off by
//! the calls racing a reset or a bucket's turnover; a single thread sees it exactly.

use std::sync::atomic::{AtomicU8, AtomicU32, AtomicU64, Ordering};
use std::time::Duration;

/// Totals of a window.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Totals {
    pub(crate) calls: u32,
    pub(crate) failures: u32,
    pub(crate) slow: u32,
}

const FAILED: u8 = 1;
const SLOW: u8 = 2;
const FILLED: u8 = 4;

/// The last N calls: a ring of slots, and running totals adjusted by each slot's old and new
/// value.
#[derive(Debug)]
pub(crate) struct CountWindow {
    slots: Box<[AtomicU8]>,
    cursor: AtomicU64,
    calls: AtomicU32,
    failures: AtomicU32,
    slow: AtomicU32,
}

fn adjust(counter: &AtomicU32, old: bool, new: bool) {
    match (old, new) {
        (false, true) => {
            counter.fetch_add(1, Ordering::Relaxed);
        }
        (true, false) => {
            // Never below zero, even when a reset raced this slot.
            let _ = counter.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| {
                Some(n.saturating_sub(1))
            });
        }
        _ => {}
    }
}

impl CountWindow {
    pub(crate) fn new(n: u32) -> Self {
        CountWindow {
            slots: (0..n.max(1)).map(|_| AtomicU8::new(0)).collect(),
            cursor: AtomicU64::new(0),
            calls: AtomicU32::new(0),
            failures: AtomicU32::new(0),
            slow: AtomicU32::new(0),
        }
    }

    pub(crate) fn record(&self, failed: bool, slow: bool) -> Totals {
        self.record_changed(failed, slow)
            .unwrap_or_else(|| self.totals())
    }

    /// Records a call; `None` when it took the place of a call that ended the same way, so
    /// the totals are what they were.
    #[inline(always)]
    pub(crate) fn record_changed(&self, failed: bool, slow: bool) -> Option<Totals> {
        let i = self.cursor.fetch_add(1, Ordering::Relaxed) % self.slots.len() as u64;
        let new = FILLED | if failed { FAILED } else { 0 } | if slow { SLOW } else { 0 };
        let old = self.slots[i as usize].swap(new, Ordering::AcqRel);
        if old == new {
            return None;
        }
        Some(self.replaced(old, failed, slow))
    }

    /// Adjusts the totals for a slot that held `old`, and reads them.
    #[inline(never)]
    fn replaced(&self, old: u8, failed: bool, slow: bool) -> Totals {
        adjust(&self.calls, old & FILLED != 0, true);
        adjust(&self.failures, old & FAILED != 0, failed);
        adjust(&self.slow, old & SLOW != 0, slow);
        self.totals()
    }

    pub(crate) fn totals(&self) -> Totals {
        Totals {
            calls: self.calls.load(Ordering::Relaxed),
            failures: self.failures.load(Ordering::Relaxed),
            slow: self.slow.load(Ordering::Relaxed),
        }
    }

    pub(crate) fn reset(&self) {
        for s in self.slots.iter() {
            s.store(0, Ordering::Relaxed);
        }
        self.cursor.store(0, Ordering::Relaxed);
        self.calls.store(0, Ordering::Relaxed);
        self.failures.store(0, Ordering::Relaxed);
        self.slow.store(0, Ordering::Relaxed);
    }
}

#[derive(Debug, Default)]
struct Bucket {
    /// Which slice of time (`now / span`) the counts belong to; `u64::MAX` for none.
    epoch: AtomicU64,
    calls: AtomicU32,
    failures: AtomicU32,
    slow: AtomicU32,
}

/// The calls of the last `span × buckets`, one bucket per slice of `span`.
#[derive(Debug)]
pub(crate) struct TimeWindow {
    span: u64,
    buckets: Box<[Bucket]>,
}

const EMPTY: u64 = u64::MAX;

impl TimeWindow {
    pub(crate) fn new(length: Duration, buckets: u32) -> Self {
        let n = u64::from(buckets.max(1));
        let span = (u64::try_from(length.as_nanos()).unwrap_or(u64::MAX) / n).max(1);
        TimeWindow {
            span,
            buckets: (0..n)
                .map(|_| Bucket {
                    epoch: AtomicU64::new(EMPTY),
                    ..Bucket::default()
                })
                .collect(),
        }
    }

    /// Records one call at `now` (nanoseconds since the breaker's origin) and returns the
    /// window's totals.
    pub(crate) fn record(&self, now: u64, failed: bool, slow: bool) -> Totals {
        let epoch = now / self.span;
        let bucket = &self.buckets[(epoch % self.buckets.len() as u64) as usize];
        let seen = bucket.epoch.load(Ordering::Acquire);
        if seen != epoch {
            // The bucket holds an older slice: the first to notice starts it over.
            if bucket
                .epoch
                .compare_exchange(seen, epoch, Ordering::AcqRel, Ordering::Acquire)
                .is_ok()
            {
                bucket.calls.store(0, Ordering::Relaxed);
                bucket.failures.store(0, Ordering::Relaxed);
                bucket.slow.store(0, Ordering::Relaxed);
            }
        }
        bucket.calls.fetch_add(1, Ordering::Relaxed);
        if failed {
            bucket.failures.fetch_add(1, Ordering::Relaxed);
        }
        if slow {
            bucket.slow.fetch_add(1, Ordering::Relaxed);
        }
        self.totals(now)
    }

    pub(crate) fn totals(&self, now: u64) -> Totals {
        let current = now / self.span;
        let oldest = current.saturating_sub(self.buckets.len() as u64 - 1);
        let mut t = Totals::default();
        for b in self.buckets.iter() {
            let e = b.epoch.load(Ordering::Acquire);
            if e != EMPTY && e >= oldest && e <= current {
                t.calls += b.calls.load(Ordering::Relaxed);
                t.failures += b.failures.load(Ordering::Relaxed);
                t.slow += b.slow.load(Ordering::Relaxed);
            }
        }
        t
    }

    pub(crate) fn reset(&self) {
        for b in self.buckets.iter() {
            b.epoch.store(EMPTY, Ordering::Release);
            b.calls.store(0, Ordering::Relaxed);
            b.failures.store(0, Ordering::Relaxed);
            b.slow.store(0, Ordering::Relaxed);
        }
    }
}

/// A count or a time window.
#[derive(Debug)]
pub(crate) enum Stats {
    Count(CountWindow),
    Time(TimeWindow),
}

impl Stats {
    pub(crate) fn record(&self, now: u64, failed: bool, slow: bool) -> Totals {
        match self {
            Stats::Count(w) => w.record(failed, slow),
            Stats::Time(w) => w.record(now, failed, slow),
        }
    }

    /// Records a call; `None` when the totals are what they were (a count window's slot
    /// that held a call that ended the same way), so nothing decided from them can change.
    #[inline]
    pub(crate) fn record_changed(&self, now: u64, failed: bool, slow: bool) -> Option<Totals> {
        match self {
            Stats::Count(w) => w.record_changed(failed, slow),
            Stats::Time(w) => Some(w.record(now, failed, slow)),
        }
    }

    pub(crate) fn reset(&self) {
        match self {
            Stats::Count(w) => w.reset(),
            Stats::Time(w) => w.reset(),
        }
    }

    /// Whether recording needs the time.
    pub(crate) fn timed(&self) -> bool {
        matches!(self, Stats::Time(_))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn count_window_keeps_the_last_n() {
        let w = CountWindow::new(3);
        w.record(true, false);
        w.record(true, true);
        w.record(false, false);
        assert_eq!(
            w.totals(),
            Totals {
                calls: 3,
                failures: 2,
                slow: 1
            }
        );
        w.record(false, false); // pushes out the first failure
        assert_eq!(w.totals().failures, 1);
        assert_eq!(w.totals().calls, 3);
        // Slots now: (failed, slow), ok, ok. A failure in the place of a failure changes
        // nothing; a success in the place of a success neither.
        assert_eq!(w.record_changed(true, true), None);
        assert_eq!(w.record_changed(false, false), None);
        assert_eq!(
            w.record_changed(true, false),
            Some(Totals {
                calls: 3,
                failures: 2,
                slow: 1
            })
        );
    }

    #[test]
    fn time_window_forgets_old_buckets() {
        let s = 1_000_000_000;
        let w = TimeWindow::new(Duration::from_secs(10), 10);
        w.record(0, true, false);
        w.record(5 * s, true, false);
        assert_eq!(w.totals(9 * s).failures, 2);
        assert_eq!(w.totals(10 * s).failures, 1); // the bucket of second 0 left the window
        w.record(15 * s, false, false);
        assert_eq!(w.totals(15 * s).calls, 1);
    }
}
