//! `tracing` spans and events for the executor's calls (feature `tracing`).
//!
//! Each call runs in an INFO span `steadfast.call` with fields `key` and `attempts` (filled
//! when it ends), and each attempt in a child INFO span `steadfast.attempt` with its number
//! (and, declared for integrations to fill, the OpenTelemetry HTTP and RPC attributes):
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

    /// An attempt's span. Besides `attempt`, it declares the OpenTelemetry attributes an
    /// integration records on it (`steadfast-reqwest` the HTTP client ones, the tonic layer
    /// the RPC ones), so an exporter shows them on the attempt itself.
    pub(crate) fn attempt_span(&self, attempt: u32) -> Span {
        tracing::span!(
            parent: &self.call,
            Level::INFO,
            "steadfast.attempt",
            // i64: the type OpenTelemetry attributes have.
            attempt = i64::from(attempt),
            http.request.method = tracing::field::Empty,
            http.request.resend_count = tracing::field::Empty,
            http.response.status_code = tracing::field::Empty,
            server.address = tracing::field::Empty,
            server.port = tracing::field::Empty,
            url.full = tracing::field::Empty,
            rpc.system = tracing::field::Empty,
            rpc.service = tracing::field::Empty,
            rpc.method = tracing::field::Empty,
            rpc.grpc.status_code = tracing::field::Empty,
            error.type = tracing::field::Empty,
            error.message = tracing::field::Empty,
        )
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
                call.record("attempts", i64::from(attempts));
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

/// Logs what the durable parts do through `tracing` (give it to `steadfast-store`'s gate and
/// queue with `with_observer`): a dead letter and a lost lease at WARN, a refused gate
/// attempt and a scheduled redelivery at INFO, the rest at DEBUG. Calls are traced by
/// [`ExecutorBuilder::tracing`](crate::ExecutorBuilder::tracing); this observer ignores them.
///
/// ```
/// use steadfast::observe::{DurableEvent, Observer, TracingObserver};
///
/// TracingObserver::new().on_durable_event(&DurableEvent::LeaseLost { topic: "emails.Send" });
/// ```
#[derive(Debug, Clone, Copy, Default)]
#[non_exhaustive]
pub struct TracingObserver;

impl TracingObserver {
    /// An observer logging to the current `tracing` subscriber.
    pub fn new() -> Self {
        TracingObserver
    }
}

impl crate::observe::Observer for TracingObserver {
    fn on_event(&self, _: &Key, _: &Event) {}

    fn on_durable_event(&self, event: &crate::observe::DurableEvent<'_>) {
        use crate::observe::DurableEvent as D;
        match *event {
            D::GateDecided {
                target_type,
                allowed: true,
                reason,
            } => {
                tracing::debug!(
                    target_type,
                    reason = reason.as_str(),
                    "gate allowed an attempt"
                );
            }
            D::GateDecided {
                target_type,
                allowed: false,
                reason,
            } => {
                tracing::info!(
                    target_type,
                    reason = reason.as_str(),
                    "gate denied an attempt"
                );
            }
            D::Delivered { topic, attempt } => tracing::debug!(topic, attempt, "message delivered"),
            D::Acked { topic, count } => tracing::debug!(topic, count, "messages acked"),
            D::Retried {
                topic,
                attempt,
                delay,
            } => {
                tracing::info!(topic, attempt, delay = ?delay, "message scheduled again");
            }
            D::DeadLettered {
                topic,
                count,
                reason,
            } => {
                tracing::warn!(topic, count, reason, "messages dead-lettered");
            }
            D::LeaseLost { topic } => tracing::warn!(topic, "a lease expired before its answer"),
            D::Redriven { count } => tracing::info!(count, "dead letters redriven"),
            D::QueueDepth {
                topic,
                ready,
                scheduled,
                leased,
                dead,
                oldest,
            } => tracing::debug!(
                topic, ready, scheduled, leased, dead, oldest = ?oldest, "queue depth"
            ),
        }
    }
}
