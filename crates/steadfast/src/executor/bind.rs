//! Binding: a key's plan with the runtime state of its strategies, kept across reloads
//! where the options did not change, shared by name where the plan says so.

use std::collections::HashMap;
use std::sync::{Arc, PoisonError};

use super::Inner;
use crate::breaker::Breaker;
use crate::budget::Budget;
use crate::hedge::Hedge;
use crate::limit::{Bulkhead, RateLimiter};
use crate::policy::{Plan, Scoped};
use crate::retry::Guards;

/// Strategy state shared by name across keys.
#[derive(Debug, Default)]
pub(super) struct SharedStates {
    breakers: HashMap<String, Breaker>,
    bulkheads: HashMap<String, Bulkhead>,
    limiters: HashMap<String, RateLimiter>,
    budgets: HashMap<String, Budget>,
}

/// A strategy whose runtime state the executor keeps apart from plans.
trait Stateful: Clone {
    type Options: PartialEq + Clone;
    /// The state for options a plan validated when it was built: cannot fail.
    fn make(options: Self::Options) -> Self;
    fn options(&self) -> &Self::Options;
}

impl Stateful for Breaker {
    type Options = crate::breaker::BreakerOptions;
    fn make(options: Self::Options) -> Self {
        Breaker::from_valid(options)
    }
    fn options(&self) -> &Self::Options {
        Breaker::options(self)
    }
}

impl Stateful for Bulkhead {
    type Options = crate::limit::BulkheadOptions;
    fn make(options: Self::Options) -> Self {
        Bulkhead::from_valid(options)
    }
    fn options(&self) -> &Self::Options {
        Bulkhead::options(self)
    }
}

impl Stateful for RateLimiter {
    type Options = crate::limit::RateLimitOptions;
    fn make(options: Self::Options) -> Self {
        RateLimiter::from_valid(options)
    }
    fn options(&self) -> &Self::Options {
        RateLimiter::options(self)
    }
}

impl Stateful for Budget {
    type Options = crate::budget::BudgetOptions;
    fn make(options: Self::Options) -> Self {
        options.build_valid()
    }
    fn options(&self) -> &Self::Options {
        Budget::options(self)
    }
}

/// One strategy's state as a key holds it: its own, or the one shared under a name.
#[derive(Debug, Clone)]
pub(super) struct Slot<S> {
    shared: Option<String>,
    pub(super) state: S,
}

/// The state for `spec`: the key's previous one when its options and scope did not change,
/// the shared one of that name when its options did not change, else a fresh one.
fn bind_slot<S: Stateful>(
    spec: Option<&Scoped<S::Options>>,
    previous: Option<&Slot<S>>,
    shared: &mut HashMap<String, S>,
) -> Option<Slot<S>> {
    let spec = spec?;
    if let Some(prev) = previous
        && prev.shared.is_none()
        && spec.shared.is_none()
        && *prev.state.options() == spec.options
    {
        return Some(prev.clone());
    }
    let state = match &spec.shared {
        None => S::make(spec.options.clone()),
        Some(name) => match shared.get(name) {
            Some(s) if *s.options() == spec.options => s.clone(),
            _ => {
                let s = S::make(spec.options.clone());
                shared.insert(name.clone(), s.clone());
                s
            }
        },
    };
    Some(Slot {
        shared: spec.shared.clone(),
        state,
    })
}

/// A key's plan with the state of its strategies.
#[derive(Debug)]
pub(crate) struct Bound {
    pub(super) plan: Arc<Plan>,
    pub(super) breaker: Option<Slot<Breaker>>,
    pub(super) bulkhead: Option<Slot<Bulkhead>>,
    pub(super) limiter: Option<Slot<RateLimiter>>,
    pub(super) budget: Option<Slot<Budget>>,
    /// The key's own latency history (hedges are never shared).
    hedge: Option<Hedge>,
    /// No strategy, chain, observer or classifier to read types with: a call is the plan's
    /// retry policy alone.
    pub(super) plain: bool,
}

impl Bound {
    #[inline]
    pub(super) fn guards(&self) -> Guards<'_> {
        Guards {
            breaker: self.breaker.as_ref().map(|s| &s.state),
            bulkhead: self.bulkhead.as_ref().map(|s| &s.state),
            limiter: self.limiter.as_ref().map(|s| &s.state),
            budget: self.budget.as_ref().map(|s| &s.state),
            hedge: self.hedge.as_ref(),
        }
    }
}

impl Inner {
    /// `plan` with its strategies' state: kept from `previous` (the key's last plan) or the
    /// shared states where the options did not change.
    pub(super) fn bind(&self, plan: Arc<Plan>, previous: Option<&Bound>) -> Bound {
        if plan.breaker_options().is_none()
            && plan.bulkhead_options().is_none()
            && plan.rate_limit_options().is_none()
            && plan.budget_options().is_none()
            && plan.hedge_options().is_none()
        {
            let mut bound = Bound {
                plan,
                breaker: None,
                bulkhead: None,
                limiter: None,
                budget: None,
                hedge: None,
                plain: false,
            };
            bound.plain = self.lean(&bound);
            return bound;
        }
        let hedge =
            plan.hedge_options()
                .map(|options| match previous.and_then(|p| p.hedge.as_ref()) {
                    Some(h) if h.options() == options => h.clone(),
                    _ => options.clone().build_valid(),
                });
        let mut shared = self.shared.lock().unwrap_or_else(PoisonError::into_inner);
        let shared = &mut *shared;
        Bound {
            breaker: bind_slot(
                plan.breaker_options(),
                previous.and_then(|p| p.breaker.as_ref()),
                &mut shared.breakers,
            ),
            bulkhead: bind_slot(
                plan.bulkhead_options(),
                previous.and_then(|p| p.bulkhead.as_ref()),
                &mut shared.bulkheads,
            ),
            limiter: bind_slot(
                plan.rate_limit_options(),
                previous.and_then(|p| p.limiter.as_ref()),
                &mut shared.limiters,
            ),
            budget: bind_slot(
                plan.budget_options(),
                previous.and_then(|p| p.budget.as_ref()),
                &mut shared.budgets,
            ),
            hedge,
            plan,
            plain: false,
        }
    }
}
