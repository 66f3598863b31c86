//! Where the gate and the queue read the time: the system clock, or a clock a test moves by
//! hand.

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// A source of the current time.
pub trait Clock: Send + Sync + 'static {
    /// Now.
    fn now(&self) -> SystemTime;
}

/// The system's wall clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> SystemTime {
        SystemTime::now()
    }
}

/// A clock that moves only when told, to the millisecond; clones share the time.
///
/// ```
/// use std::time::{Duration, UNIX_EPOCH};
/// use steadfast_store::{Clock, ManualClock};
///
/// let clock = ManualClock::at(UNIX_EPOCH);
/// clock.advance(Duration::from_secs(60));
/// assert_eq!(clock.now(), UNIX_EPOCH + Duration::from_secs(60));
/// ```
#[derive(Debug, Clone)]
pub struct ManualClock {
    ms: Arc<AtomicI64>,
}

impl ManualClock {
    /// A clock showing `time`.
    pub fn at(time: SystemTime) -> Self {
        ManualClock {
            ms: Arc::new(AtomicI64::new(to_ms(time))),
        }
    }

    /// Shows `time` from now on.
    pub fn set(&self, time: SystemTime) {
        self.ms.store(to_ms(time), Ordering::SeqCst);
    }

    /// The time `by` from now (without moving the clock).
    pub fn now_plus(&self, by: Duration) -> SystemTime {
        self.now() + by
    }

    /// Moves the time forward by `by`.
    pub fn advance(&self, by: Duration) {
        let by = i64::try_from(by.as_millis()).unwrap_or(i64::MAX);
        self.ms.fetch_add(by, Ordering::SeqCst);
    }
}

impl Clock for ManualClock {
    fn now(&self) -> SystemTime {
        from_ms(self.ms.load(Ordering::SeqCst))
    }
}

/// Milliseconds since the Unix epoch (negative before it), as stores keep times.
pub(crate) fn to_ms(t: SystemTime) -> i64 {
    match t.duration_since(UNIX_EPOCH) {
        Ok(d) => i64::try_from(d.as_millis()).unwrap_or(i64::MAX),
        Err(e) => -i64::try_from(e.duration().as_millis()).unwrap_or(i64::MAX),
    }
}

/// The time `ms` milliseconds after the Unix epoch.
pub(crate) fn from_ms(ms: i64) -> SystemTime {
    if ms >= 0 {
        UNIX_EPOCH + Duration::from_millis(ms.unsigned_abs())
    } else {
        UNIX_EPOCH - Duration::from_millis(ms.unsigned_abs())
    }
}
