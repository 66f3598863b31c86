//! `tracing` spans and events for the executor's calls (feature `tracing`).
//!
//! Each call runs in an INFO span `steadfast.call` with fields `key` and `attempts` (filled
//! when it ends), and each attempt in a child INFO span `steadfast.attempt` with its number:
//! OpenTelemetry exporters show every try, and the operation's own logs nest under its
//! attempt. Events: `retrying` at INFO (attempt, delay, reason), a failed call at WARN
//! (attempts, stop, timeout), an attempt's end and a successful call at DEBUG.

use tracing::{Level, Span};

use crate::key::Key;
use crate::observe::Event;

/// The spans of one call.
#[derive(Debug)]
pub(crate) struct Spans {
    call: Span,
}

impl Spans {
    pub(crate) fn new(key: &Key) -> Self {
        Spans {
            call: tracing::span!(
                Level::INFO,
                "steadfast.call",
                key = %key,
                attempts = tracing::field::Empty
            ),
        }
    }

    pub(crate) fn attempt_span(&self, attempt: u32) -> Span {
        tracing::span!(parent: &self.call, Level::INFO, "steadfast.attempt", attempt)
    }

    pub(crate) fn event(&mut self, event: &Event) {
        let call = &self.call;
        match *event {
            Event::AttemptFinished {
                attempt,
                end,
                outcome,
                duration,
            } => tracing::event!(
                parent: call,
                Level::DEBUG,
                attempt,
                ?end,
                ?outcome,
                ?duration,
                "attempt finished"
            ),
            Event::RetryScheduled {
                attempt,
                delay,
                reason,
            } => tracing::event!(parent: call, Level::INFO, attempt, ?delay, ?reason, "retrying"),
            Event::HedgeLaunched { attempt, at } => {
                tracing::event!(parent: call, Level::DEBUG, attempt, ?at, "hedging");
            }
            Event::BudgetExhausted { attempt, hedge } => {
                tracing::event!(parent: call, Level::INFO, attempt, hedge, "retry budget exhausted");
            }
            Event::CallFinished {
                attempts,
                duration,
                ok,
                stop,
                timeout,
            } => {
                call.record("attempts", attempts);
                if ok {
                    tracing::event!(parent: call, Level::DEBUG, attempts, ?duration, "call succeeded");
                } else {
                    tracing::event!(
                        parent: call,
                        Level::WARN,
                        attempts,
                        ?duration,
                        ?stop,
                        ?timeout,
                        "call failed"
                    );
                }
            }
            _ => {}
        }
    }
}
