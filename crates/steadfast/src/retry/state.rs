//! The decisions shared by the async and blocking engines: when an attempt must end, whether
//! and how long to wait before the next, and what the call returns.

use crate::ErrorKind;
use std::time::Duration;

use tokio::time::Instant;

use super::hooks::{ExhaustedHook, NoHook, OnExhausted, OnRetry, RetryHook};
use super::options::Retry;
use crate::backoff::Schedule;
use crate::breaker::{Breaker, Open, Permit, Transition};
use crate::budget::{Budget, Spent, Verdict};
use crate::classify::Classifier;
use crate::classify::Outcome;
use crate::error::{Error, Stop, TimeoutScope};
use crate::observe::{AttemptEnd, Event, Probe, RetryReason};

/// What an engine does after an attempt.
pub(crate) enum Step<T, E> {
    /// Return this.
    Done(Result<T, Error<E>>),
    /// Sleep this long, then (see [`Run::woke`]) attempt again. The last result is kept
    /// through the sleep, to be returned if the deadline passes meanwhile.
    Sleep(Duration, Option<Result<T, E>>),
    /// Attempt again now (a loop's success).
    Again,
}

/// What to do after a failed attempt.
pub(crate) enum Next {
    Retry(Duration, RetryReason),
    Stop(Stop),
}

/// How an attempt ended, for a budget.
pub(crate) fn verdict<T, E>(last: Option<&Result<T, E>>, outcome: &Outcome) -> Verdict {
    match (last, outcome) {
        (None, _) => Verdict::TimedOut,
        (_, Outcome::Success) => Verdict::Success,
        (_, Outcome::Retryable { .. }) => Verdict::Retryable,
        _ => Verdict::Final,
    }
}

/// The overall deadline of a call that started at `started` (read only when it is needed).
fn deadline(policy: &Retry, started: Option<Instant>) -> Option<Instant> {
    started.zip(policy.total_timeout).map(|(s, t)| s + t)
}

/// One call in progress, reporting to its probe `P` (nothing, by default).
pub(crate) struct Run<'p, P = NoHook> {
    policy: &'p Retry,
    started: Option<Instant>,
    deadline: Option<Instant>,
    pub(crate) attempts: u32,
    schedule: Option<Schedule>,
    probe: P,
    attempt_started: Option<Instant>,
    /// Hedges among `attempts` (`max_attempts` counts the tries, not their hedges).
    pub(crate) hedges: u32,
    /// The call's retry budget, if it has one.
    pub(crate) budget: Option<&'p Budget>,
    /// What the attempt in flight took from the budget (a retry's spend).
    pub(crate) spent: Option<Spent<'p>>,
    /// The attempt just finished was settled by the hedged try (events, breaker, budget).
    pub(crate) settled_elsewhere: bool,
}

impl<'p, P: Probe> Run<'p, P> {
    /// Starts a call; reads the clock only when a deadline, a hook or the probe needs it.
    #[inline]
    pub(crate) fn start(policy: &'p Retry, needs_clock: bool, probe: P) -> Self {
        let started =
            (needs_clock || P::ACTIVE || policy.total_timeout.is_some()).then(Instant::now);
        let mut run = Run {
            policy,
            started,
            deadline: deadline(policy, started),
            attempts: 0,
            schedule: None,
            probe,
            attempt_started: None,
            hedges: 0,
            budget: None,
            spent: None,
            settled_elsewhere: false,
        };
        run.emit(Event::CallStarted);
        run
    }

    #[inline]
    pub(crate) fn emit(&mut self, event: Event) {
        if P::ACTIVE {
            self.probe.event(&event);
        }
    }

    /// Starts over after a success in a loop: new deadline, fresh schedule, attempts from 0.
    fn restart(&mut self) {
        self.started = self.started.map(|_| Instant::now());
        self.deadline = deadline(self.policy, self.started);
        self.attempts = 0;
        self.schedule = None;
        self.emit(Event::CallStarted);
    }

    /// Counts a new attempt and returns the instant it must end by, if any, and which
    /// timeout that instant belongs to.
    #[inline]
    pub(crate) fn begin_attempt(&mut self) -> Option<(Instant, TimeoutScope)> {
        self.attempts += 1;
        if P::ACTIVE {
            let now = Instant::now();
            self.attempt_started = Some(now);
            let at = self.started.map_or(Duration::ZERO, |s| now - s);
            self.emit(Event::AttemptStarted {
                attempt: self.attempts,
                at,
            });
        }
        self.attempt_limit()
    }

    /// The instant an attempt starting now must end by, if any, and which timeout that
    /// instant belongs to: its own timeout or the call's deadline, whichever is first.
    #[inline]
    fn attempt_limit(&self) -> Option<(Instant, TimeoutScope)> {
        let own = self.policy.attempt_timeout.map(|t| Instant::now() + t);
        match (own, self.deadline) {
            (Some(a), Some(d)) if a < d => Some((a, TimeoutScope::Attempt)),
            (_, Some(d)) => Some((d, TimeoutScope::Total)),
            (Some(a), None) => Some((a, TimeoutScope::Attempt)),
            (None, None) => None,
        }
    }

    /// The current attempt's future, as the probe wraps it.
    #[inline]
    pub(crate) fn wrap<Fut: std::future::Future>(&mut self, fut: Fut) -> P::Attempt<Fut> {
        self.probe.attempt(self.attempts, fut)
    }

    /// Counts a hedge of the current try and returns the instant it must end by, like
    /// [`begin_attempt`](Self::begin_attempt).
    pub(crate) fn begin_hedge(&mut self) -> Option<(Instant, TimeoutScope)> {
        self.attempts += 1;
        self.hedges += 1;
        if P::ACTIVE {
            let at = self.elapsed();
            self.emit(Event::HedgeLaunched {
                attempt: self.attempts,
                at,
            });
        }
        self.attempt_limit()
    }

    /// A permit of `breaker` for the next attempt, the breaker's change of state reported.
    #[inline]
    pub(crate) fn breaker_permit<'b>(&mut self, breaker: &'b Breaker) -> Result<Permit<'b>, Open> {
        let permit = breaker.try_acquire()?;
        self.breaker_changed(permit.transition());
        Ok(permit)
    }

    /// Spends a retry (or a hedge) from the call's budget, if it has one; a refusal is
    /// reported (`Event::BudgetExhausted`) and is `Err`.
    pub(crate) fn spend(
        &mut self,
        after_timeout: bool,
        hedge: bool,
    ) -> Result<Option<Spent<'p>>, ()> {
        let Some(budget) = self.budget else {
            return Ok(None);
        };
        match budget.try_spend(after_timeout) {
            Some(spent) => Ok(Some(spent)),
            None => {
                self.emit(Event::BudgetExhausted {
                    attempt: self.attempts,
                    hedge,
                });
                Err(())
            }
        }
    }

    /// Reports the end of attempt `attempt`, which started at `started` (if the clock was
    /// read then).
    pub(crate) fn attempt_ended(
        &mut self,
        attempt: u32,
        started: Option<Instant>,
        end: AttemptEnd,
        outcome: Outcome,
    ) {
        if P::ACTIVE {
            self.emit(Event::AttemptFinished {
                attempt,
                end,
                outcome,
                duration: started.map_or(Duration::ZERO, |s| s.elapsed()),
            });
        }
    }

    /// The outcome of an attempt that ran out of its own time.
    pub(crate) fn timeout_outcome(&self) -> Outcome {
        if self.policy.retry_on_timeout {
            Outcome::RETRYABLE
        } else {
            Outcome::NonRetryable
        }
    }

    pub(crate) fn elapsed(&self) -> Duration {
        self.started.map_or(Duration::ZERO, |s| s.elapsed())
    }

    /// Decides what follows a failed attempt (`after_timeout`: it timed out).
    fn after_failure(&mut self, outcome: &Outcome, after_timeout: bool) -> Next {
        let after = match *outcome {
            Outcome::Retryable { after } => after,
            Outcome::Abort => return Next::Stop(Stop::Aborted),
            Outcome::Success | Outcome::NonRetryable => return Next::Stop(Stop::NonRetryable),
        };
        if self
            .policy
            .max_attempts
            .is_some_and(|m| self.attempts - self.hedges >= m)
        {
            return Next::Stop(Stop::Exhausted);
        }
        let (delay, reason) = match after {
            Some(requested)
                if requested > self.policy.max_server_delay && !self.policy.cap_server_delay =>
            {
                return Next::Stop(Stop::ServerDelayTooLong { requested });
            }
            Some(requested) => {
                // A server delay is honoured exactly (or cut to the policy's most), and restarts
                // the computed schedule (gRPC A6: after pushback the delay resets to the
                // initial backoff).
                if let Some(s) = &mut self.schedule {
                    s.reset();
                }
                if requested > self.policy.max_server_delay {
                    let capped = RetryReason::ServerDelayCapped { requested };
                    (self.policy.max_server_delay, capped)
                } else {
                    (requested, RetryReason::ServerDelay)
                }
            }
            // No wait, whatever the jitter: no schedule to keep.
            None if matches!(
                self.policy.backoff.kind,
                crate::backoff::BackoffKind::Immediate
            ) =>
            {
                (Duration::ZERO, RetryReason::Backoff)
            }
            None => {
                let policy = self.policy;
                let schedule = self.schedule.get_or_insert_with(|| {
                    Schedule::new(policy.seed.as_ref().map(super::options::Seeded::next_rng))
                });
                match schedule.next(&policy.backoff, &policy.steps, Some(outcome)) {
                    Some(d) => (d, RetryReason::Backoff),
                    None => return Next::Stop(Stop::BackoffEnded),
                }
            }
        };
        if let Some(deadline) = self.deadline
            && Instant::now() + delay >= deadline
        {
            return Next::Stop(Stop::Deadline);
        }
        match self.spend(after_timeout, false) {
            Ok(spent) => self.spent = spent,
            Err(()) => return Next::Stop(Stop::BudgetExhausted),
        }
        Next::Retry(delay, reason)
    }

    /// Settles one attempt (`last` is `None` when it ran out of its own time): classifies it,
    /// runs the hooks and says what the engine does next. Both engines call this, so async and
    /// blocking calls follow one set of rules.
    #[inline]
    pub(crate) fn settle<T, E, C, R, X, L>(
        &mut self,
        last: Option<Result<T, E>>,
        classifier: &C,
        on_retry: &mut R,
        on_exhausted: &mut X,
        restart: &L,
        permit: Option<Permit<'_>>,
    ) -> Step<T, E>
    where
        C: Classifier<T, E>,
        R: RetryHook<T, E>,
        X: ExhaustedHook<T, E>,
        L: Fn(&T) -> bool,
    {
        let outcome = match &last {
            Some(result) => classifier.classify(result),
            None => self.timeout_outcome(),
        };
        if let Some(p) = permit {
            let change = p.record(last.is_some().then_some(&outcome));
            self.breaker_changed(change);
        }
        if std::mem::take(&mut self.settled_elsewhere) {
            // A hedged try reported and accounted for each of its attempts.
        } else {
            if let Some(budget) = self.budget {
                budget.attempt_ended(verdict(last.as_ref(), &outcome), self.spent.take());
            }
            if P::ACTIVE {
                let end = match &last {
                    Some(Ok(_)) => AttemptEnd::Ok,
                    Some(Err(_)) => AttemptEnd::Err,
                    None => AttemptEnd::TimedOut,
                };
                self.attempt_finished(end, outcome);
            }
        }
        if outcome.is_success() {
            if let Some(Ok(value)) = &last
                && restart(value)
            {
                self.restart();
                return Step::Again;
            }
            return Step::Done(self.finish(on_exhausted, last, None));
        }
        if outcome.is_retryable()
            && let Some(stop) = classifier.stop_after()
        {
            return Step::Done(self.finish(on_exhausted, last, Some(stop)));
        }
        match self.after_failure(&outcome, last.is_none()) {
            Next::Retry(delay, reason) => {
                self.notify_retry(on_retry, last.as_ref(), outcome, delay);
                self.emit(Event::RetryScheduled {
                    attempt: self.attempts,
                    delay,
                    reason,
                });
                Step::Sleep(delay, last)
            }
            Next::Stop(stop) => Step::Done(self.finish(on_exhausted, last, Some(stop))),
        }
    }

    /// After a sleep: the call's result if the deadline passed meanwhile, else `None` (attempt
    /// again). Timers fire on whole milliseconds (and threads wake late), so a sleep that was
    /// meant to end before the deadline can end at or after it; no attempt starts then.
    pub(crate) fn woke<T, E, X: ExhaustedHook<T, E>>(
        &mut self,
        on_exhausted: &mut X,
        last: Option<Result<T, E>>,
    ) -> Option<Result<T, Error<E>>> {
        match self.deadline {
            Some(deadline) if Instant::now() >= deadline => {
                Some(self.finish(on_exhausted, last, Some(Stop::Deadline)))
            }
            _ => None,
        }
    }

    fn attempt_finished(&mut self, end: AttemptEnd, outcome: Outcome) {
        self.attempt_ended(self.attempts, self.attempt_started, end, outcome);
    }

    fn call_finished(&mut self, ok: bool, stop: Option<Stop>, timeout: Option<TimeoutScope>) {
        let duration = self.elapsed();
        self.emit(Event::CallFinished {
            attempts: self.attempts,
            duration,
            ok,
            stop,
            timeout,
        });
    }

    /// Tells the retry hook about the coming retry.
    fn notify_retry<T, E, R: RetryHook<T, E>>(
        &self,
        hook: &mut R,
        last: Option<&Result<T, E>>,
        outcome: Outcome,
        delay: Duration,
    ) {
        if R::ACTIVE {
            hook.on_retry(&OnRetry {
                attempt: self.attempts,
                last,
                outcome,
                delay,
                elapsed: self.elapsed(),
            });
        }
    }

    /// What the call returns once it ended: on a success (`stop` is `None`) or because
    /// retrying stopped on a failure (`last` is `None` when the last attempt timed out). An
    /// `Ok` the classifier called a failure (three 503s) ends with its stop reason like an `Err`
    /// does, and is reported as a failure; the caller still gets the value.
    fn finish<T, E, X: ExhaustedHook<T, E>>(
        &mut self,
        hook: &mut X,
        mut last: Option<Result<T, E>>,
        stop: Option<Stop>,
    ) -> Result<T, Error<E>> {
        let ok = stop.is_none() && matches!(last, Some(Ok(_)));
        // An `Err` or a timeout the classifier called a success still ends the call as an error.
        let stop = stop.unwrap_or(Stop::NonRetryable);
        if P::ACTIVE {
            let timeout = last.is_none().then_some(TimeoutScope::Attempt);
            self.call_finished(ok, (!ok).then_some(stop), timeout);
        }
        if X::ACTIVE && !ok && stop.is_exhaustion() {
            hook.on_exhausted(&mut OnExhausted {
                attempts: self.attempts,
                last: last.as_mut(),
                stop,
                elapsed: self.elapsed(),
            });
        }
        match last {
            Some(Ok(value)) => Ok(value),
            Some(Err(source)) => Err(Error::new(ErrorKind::Operation {
                source,
                attempts: self.attempts,
                stop,
            })),
            None => Err(Error::new(ErrorKind::Timeout {
                scope: TimeoutScope::Attempt,
                after: self.policy.attempt_timeout.unwrap_or_default(),
                attempts: self.attempts,
            })),
        }
    }

    /// Reports a breaker's change of state.
    #[inline]
    pub(crate) fn breaker_changed(&mut self, change: Option<Transition>) {
        if P::ACTIVE
            && let Some(t) = change
        {
            self.emit(Event::BreakerChanged {
                from: t.from,
                to: t.to,
            });
        }
    }

    /// The error for a refused call (rate limiter, bulkhead: before any attempt) or a refused
    /// attempt (breaker), reported as an event.
    #[cold]
    pub(crate) fn refused<E>(&mut self, r: super::guards::Refusal) -> Error<E> {
        self.emit(Event::Rejected {
            by: r.by(),
            retry_after: r.retry_after(),
        });
        self.call_finished(false, None, None);
        r.into_error(self.attempts)
    }

    /// The error for a call whose overall deadline passed during an attempt.
    pub(crate) fn total_timeout<E>(&mut self) -> Error<E> {
        if P::ACTIVE {
            let outcome = self.timeout_outcome();
            self.attempt_finished(AttemptEnd::TimedOut, outcome);
            self.call_finished(false, None, Some(TimeoutScope::Total));
        }
        Error::new(ErrorKind::Timeout {
            scope: TimeoutScope::Total,
            after: self.policy.total_timeout.unwrap_or_default(),
            attempts: self.attempts,
        })
    }
}
