//! What each cached key's strategies hold now: the numbers gauges report.

use super::Executor;
use crate::breaker::BreakerState;
use crate::budget::BudgetSnapshot;
use crate::key::Key;

/// One cached key's strategies, read now ([`Executor::states`]).
///
/// A strategy shared by name appears under every key that names it, with the same numbers.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct KeyState {
    /// The key.
    pub key: Key,
    /// Its breaker's state, if its plan has a breaker.
    pub breaker: Option<BreakerState>,
    /// Its bulkhead's places, if its plan has a bulkhead.
    pub bulkhead: Option<BulkheadState>,
    /// Calls its rate limiter would let through at once now, if its plan has one.
    pub rate_limiter_available: Option<u32>,
    /// Its budget's state, if its plan has a budget.
    pub budget: Option<BudgetSnapshot>,
}

/// A bulkhead's places now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct BulkheadState {
    /// Calls holding a place.
    pub in_flight: u32,
    /// Calls waiting for one.
    pub queued: u32,
    /// Places in all.
    pub max_concurrent: u32,
}

impl Executor {
    /// The state of every cached key's breaker, bulkhead, rate limiter and budget, for gauges
    /// (`MetricsObserver::record_states`, `OtelObserver::observe_states`). Keys without any
    /// of them are left out; reading does not count as a use of the key.
    ///
    /// ```
    /// use steadfast::limit::BulkheadOptions;
    /// use steadfast::policy::{Plan, Policies};
    /// use steadfast::{Executor, Retry};
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let plan = Plan::new(Retry::default()).bulkhead(BulkheadOptions::new(4))?;
    /// let executor = Executor::new(Policies::default().with_plan("search.*", plan)?);
    /// executor.run("search.Query", || async { Ok::<_, std::io::Error>(()) }).await?;
    /// let states = executor.states();
    /// assert_eq!(states[0].key.as_str(), "search.Query");
    /// assert_eq!(states[0].bulkhead.map(|b| (b.in_flight, b.max_concurrent)), Some((0, 4)));
    /// # Ok(()) }
    /// ```
    pub fn states(&self) -> Vec<KeyState> {
        let mut out = Vec::new();
        for shard in &*self.inner.shards {
            for entry in shard.table.load().iter() {
                // As bound: neither re-resolved nor marked as a use.
                let bound = entry.bound.load_full();
                if bound.breaker.is_none()
                    && bound.bulkhead.is_none()
                    && bound.limiter.is_none()
                    && bound.budget.is_none()
                {
                    continue;
                }
                out.push(KeyState {
                    key: entry.key.clone(),
                    breaker: bound.breaker.as_ref().map(|s| s.state.state()),
                    bulkhead: bound.bulkhead.as_ref().map(|s| BulkheadState {
                        in_flight: s.state.in_flight(),
                        queued: s.state.queued(),
                        max_concurrent: s.state.options().max_concurrent,
                    }),
                    rate_limiter_available: bound.limiter.as_ref().map(|s| s.state.available()),
                    budget: bound.budget.as_ref().map(|s| s.state.snapshot()),
                });
            }
        }
        out.sort_by(|a, b| a.key.as_str().cmp(b.key.as_str()));
        out
    }
}
