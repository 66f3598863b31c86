//! How the rate limiter and the bulkhead admit a call, once, before its first attempt: the
//! limiter first (which may wait up to its `max_wait`), then a place in the bulkhead (which
//! may queue up to `max_queue` for `queue_timeout`). A blocking call takes a place only if
//! one is free.

use super::{Bulkhead, BulkheadPermit, Limited, RateLimiter};

/// The limiter and bulkhead of one call (either may be absent).
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Admission<'a> {
    pub(crate) limiter: Option<&'a RateLimiter>,
    pub(crate) bulkhead: Option<&'a Bulkhead>,
}

/// Why admission refused the call.
pub(crate) enum Refused {
    /// The rate limiter refused it.
    RateLimited(Limited),
    /// The bulkhead had no place (and no queue, or the queue's wait ran out).
    Full { max_concurrent: u32 },
}

/// What admission without a wait found.
pub(crate) enum Now<'a> {
    /// Admitted, holding the bulkhead's place if there is a bulkhead.
    Admitted(Option<BulkheadPermit<'a>>),
    Refused(Refused),
    /// Admission needs a wait: the limiter's delay, or the bulkhead's queue (`limited`: the
    /// rate limiter has already let the call through).
    Wait {
        limited: bool,
    },
}

impl<'a> Admission<'a> {
    /// Admits the call if no wait is needed.
    pub(crate) fn now(&self) -> Now<'a> {
        if let Some(limiter) = self.limiter {
            match limiter.try_acquire() {
                Ok(()) => {}
                Err(_) if limiter.options().max_wait.is_some() => {
                    return Now::Wait { limited: false };
                }
                Err(l) => return Now::Refused(Refused::RateLimited(l)),
            }
        }
        match self.bulkhead {
            None => Now::Admitted(None),
            Some(b) => match b.try_acquire() {
                Some(place) => Now::Admitted(Some(place)),
                None if b.options().max_queue > 0 => Now::Wait { limited: true },
                None => Now::Refused(full(b)),
            },
        }
    }

    /// Admits the call, waiting as the limiter and the bulkhead's queue allow (`limited`: the
    /// limiter has already let it through).
    pub(crate) async fn wait(&self, limited: bool) -> Result<Option<BulkheadPermit<'a>>, Refused> {
        if !limited
            && let Some(limiter) = self.limiter
            && let Err(l) = limiter.acquire().await
        {
            return Err(Refused::RateLimited(l));
        }
        match self.bulkhead {
            None => Ok(None),
            Some(b) => b.acquire().await.map(Some).map_err(|_| full(b)),
        }
    }

    /// Admits a blocking call: the limiter may sleep this thread up to its `max_wait`; the
    /// bulkhead admits only if a place is free.
    pub(crate) fn blocking(&self) -> Result<Option<BulkheadPermit<'a>>, Refused> {
        if let Some(limiter) = self.limiter {
            limiter.acquire_blocking().map_err(Refused::RateLimited)?;
        }
        match self.bulkhead {
            None => Ok(None),
            Some(b) => b.try_acquire().map(Some).ok_or_else(|| full(b)),
        }
    }
}

fn full(bulkhead: &Bulkhead) -> Refused {
    Refused::Full {
        max_concurrent: bulkhead.options().max_concurrent,
    }
}
