//! What a call runs through besides its retry policy: the strategies (`Guards`, or `NoGuards`
//! when there are none, known at compile time) and why one refused the call (`Refusal`).

use crate::ErrorKind;
use crate::breaker::{Breaker, Open};
use crate::budget::Budget;
use crate::error::Error;
use crate::hedge::Hedge;
use crate::limit::admission::Refused;
use crate::limit::{Bulkhead, Limited, RateLimiter};
use crate::observe::RejectedBy;

/// The strategies a call runs through: a rate limiter and a bulkhead admit the call once
/// (outside the retry loop), a breaker admits each attempt, a budget each retry and hedge,
/// and a hedge races attempts within each try. Set with
/// [`Call::breaker`](super::Call::breaker), [`bulkhead`](super::Call::bulkhead),
/// [`rate_limiter`](super::Call::rate_limiter), [`budget`](super::Call::budget) and
/// [`hedge`](super::Call::hedge).
#[derive(Debug, Clone, Copy, Default)]
pub struct Guards<'a> {
    // The four that end the fast path first: `only_breaker` reads them as two 16-byte
    // words, which then line up with the 16-byte moves of a copied `Guards` (a load that
    // straddles two stores waits for both to land, a stall on every call).
    pub(crate) bulkhead: Option<&'a Bulkhead>,
    pub(crate) limiter: Option<&'a RateLimiter>,
    pub(crate) budget: Option<&'a Budget>,
    pub(crate) hedge: Option<&'a Hedge>,
    pub(crate) breaker: Option<&'a Breaker>,
}

impl Guards<'_> {
    #[inline]
    pub(crate) fn is_empty(&self) -> bool {
        self.breaker.is_none() && self.only_breaker()
    }

    /// Whether nothing but (at most) a breaker is set: the first attempt may run on the
    /// fast path.
    #[inline]
    pub(crate) fn only_breaker(&self) -> bool {
        self.bulkhead.is_none()
            && self.limiter.is_none()
            && self.budget.is_none()
            && self.hedge.is_none()
    }
}

/// No strategy around the call: the type a [`Call`](super::Call) starts with, so a plain call
/// carries and checks nothing for them.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoGuards;

/// A breaker and no other strategy: what [`Call::breaker`](super::Call::breaker) makes of a
/// call that had none, so a closed breaker's call carries one reference and checks nothing
/// else.
#[derive(Debug, Clone, Copy)]
pub struct BreakerOnly<'a>(pub(crate) &'a Breaker);

mod sealed {
    pub trait Sealed {}
    impl Sealed for super::NoGuards {}
    impl Sealed for super::BreakerOnly<'_> {}
    impl Sealed for super::Guards<'_> {}
}

/// [`NoGuards`], [`BreakerOnly`] or [`Guards`]: which strategies a call runs through, known
/// at compile time when there are none or only a breaker.
pub trait Guarded<'p>: Copy + sealed::Sealed {
    /// Whether there may be any.
    const ACTIVE: bool;
    /// What the call runs through once a breaker is set.
    type WithBreaker: Guarded<'p>;
    /// The strategies.
    fn guards(self) -> Guards<'p>;
    /// The breaker, when it is the only strategy there may be (`None` otherwise, or when
    /// there is none).
    fn breaker_only(self) -> Option<&'p Breaker>;
    /// These strategies with `breaker` set.
    fn with_breaker(self, breaker: &'p Breaker) -> Self::WithBreaker;
}

impl<'p> Guarded<'p> for NoGuards {
    const ACTIVE: bool = false;
    type WithBreaker = BreakerOnly<'p>;
    #[inline]
    fn guards(self) -> Guards<'p> {
        Guards::default()
    }
    #[inline]
    fn breaker_only(self) -> Option<&'p Breaker> {
        None
    }
    #[inline]
    fn with_breaker(self, breaker: &'p Breaker) -> BreakerOnly<'p> {
        BreakerOnly(breaker)
    }
}

impl<'p> Guarded<'p> for BreakerOnly<'p> {
    const ACTIVE: bool = true;
    type WithBreaker = BreakerOnly<'p>;
    #[inline]
    fn guards(self) -> Guards<'p> {
        Guards {
            breaker: Some(self.0),
            ..Guards::default()
        }
    }
    #[inline]
    fn breaker_only(self) -> Option<&'p Breaker> {
        Some(self.0)
    }
    #[inline]
    fn with_breaker(self, breaker: &'p Breaker) -> BreakerOnly<'p> {
        BreakerOnly(breaker)
    }
}

impl<'p> Guarded<'p> for Guards<'p> {
    const ACTIVE: bool = true;
    type WithBreaker = Guards<'p>;
    #[inline]
    fn guards(self) -> Guards<'p> {
        self
    }
    #[inline]
    fn breaker_only(self) -> Option<&'p Breaker> {
        None
    }
    #[inline]
    fn with_breaker(mut self, breaker: &'p Breaker) -> Guards<'p> {
        self.breaker = Some(breaker);
        self
    }
}

/// Why a call, or its next attempt, was not let through.
pub(crate) enum Refusal {
    Breaker(Open),
    Bulkhead { max_concurrent: u32 },
    RateLimiter(Limited),
    Throttled { reject_probability: f64 },
}

impl From<Refused> for Refusal {
    fn from(refused: Refused) -> Self {
        match refused {
            Refused::RateLimited(l) => Refusal::RateLimiter(l),
            Refused::Full { max_concurrent } => Refusal::Bulkhead { max_concurrent },
        }
    }
}

impl Refusal {
    pub(crate) fn by(&self) -> RejectedBy {
        match self {
            Refusal::Breaker(_) => RejectedBy::Breaker,
            Refusal::Bulkhead { .. } => RejectedBy::Bulkhead,
            Refusal::RateLimiter(_) => RejectedBy::RateLimiter,
            Refusal::Throttled { .. } => RejectedBy::Budget,
        }
    }

    pub(crate) fn retry_after(&self) -> Option<std::time::Duration> {
        match self {
            Refusal::Breaker(open) => open.retry_after,
            Refusal::Bulkhead { .. } | Refusal::Throttled { .. } => None,
            Refusal::RateLimiter(l) => Some(l.retry_after),
        }
    }

    /// The call's error, `attempts` made before the refusal.
    pub(crate) fn into_error<E>(self, attempts: u32) -> Error<E> {
        match self {
            Refusal::Breaker(open) => Error::new(ErrorKind::CircuitOpen {
                retry_after: open.retry_after,
                attempts,
            }),
            Refusal::Bulkhead { max_concurrent } => {
                Error::new(ErrorKind::BulkheadFull { max_concurrent })
            }
            Refusal::RateLimiter(l) => Error::new(ErrorKind::RateLimited {
                retry_after: l.retry_after,
            }),
            Refusal::Throttled { reject_probability } => {
                Error::new(ErrorKind::Throttled { reject_probability })
            }
        }
    }
}
