//! What each event and each key's state measure: one table that the `metrics` and the
//! OpenTelemetry observers both read, so their instruments, labels and values agree.

use crate::classify::Outcome;
use crate::executor::KeyState;
use crate::key::Key;
use crate::observe::{AttemptEnd, DurableEvent, Event, RetryReason};

/// An instrument: its name in the `metrics` facade (Prometheus style) and in OpenTelemetry
/// (dotted, unit apart), its unit and what it is.
#[derive(Debug, Clone, Copy)]
// Each observer reads the fields it names instruments by.
#[allow(dead_code)]
pub(crate) struct Instrument {
    pub(crate) metrics: &'static str,
    pub(crate) otel: &'static str,
    pub(crate) unit: &'static str,
    pub(crate) kind: Kind,
    pub(crate) help: &'static str,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    Counter,
    Histogram,
    Gauge,
}

macro_rules! instruments {
    ($($id:ident: $metrics:literal, $otel:literal, $unit:literal, $kind:ident, $help:literal;)*) => {
        $(pub(crate) const $id: Instrument = Instrument {
            metrics: $metrics,
            otel: $otel,
            unit: $unit,
            kind: Kind::$kind,
            help: $help,
        };)*
        /// Every instrument, for observers that create them up front.
        #[cfg_attr(not(feature = "otel"), allow(dead_code))]
        pub(crate) const ALL: &[Instrument] = &[$($id),*];
    };
}

instruments! {
    ATTEMPTS: "steadfast_attempts_total", "steadfast.attempts", "{attempt}", Counter, "Attempts made, by outcome and attempt number";
    ATTEMPT_DURATION: "steadfast_attempt_duration_seconds", "steadfast.attempt.duration", "s", Histogram, "How long each attempt took";
    RETRIES: "steadfast_retries_total", "steadfast.retries", "{retry}", Counter, "Retries scheduled, by what set the wait";
    CALLS: "steadfast_calls_total", "steadfast.calls", "{call}", Counter, "Calls finished, by result and why retrying stopped";
    CALL_DURATION: "steadfast_call_duration_seconds", "steadfast.call.duration", "s", Histogram, "How long each call took, retries included";
    REJECTIONS: "steadfast_rejections_total", "steadfast.rejections", "{call}", Counter, "Calls refused by a strategy";
    BREAKER_TRANSITIONS: "steadfast_breaker_transitions_total", "steadfast.breaker.transitions", "{transition}", Counter, "Circuit breaker state changes";
    FALLBACKS: "steadfast_fallbacks_total", "steadfast.fallbacks", "{call}", Counter, "Calls answered by their fallback";
    HEDGES: "steadfast_hedges_total", "steadfast.hedges", "{attempt}", Counter, "Hedged attempts sent";
    BUDGET_REFUSALS: "steadfast_budget_refusals_total", "steadfast.budget.refusals", "{attempt}", Counter, "Retries and hedges the budget refused";
    GATE_DECISIONS: "steadfast_gate_decisions_total", "steadfast.gate.decisions", "{decision}", Counter, "Retry gate decisions, by reason";
    QUEUE_DELIVERIES: "steadfast_queue_deliveries_total", "steadfast.queue.deliveries", "{message}", Counter, "Messages delivered to a handler";
    QUEUE_ACKS: "steadfast_queue_acks_total", "steadfast.queue.acks", "{message}", Counter, "Messages acknowledged";
    QUEUE_RETRIES: "steadfast_queue_retries_total", "steadfast.queue.retries", "{message}", Counter, "Messages scheduled again";
    QUEUE_DEAD_LETTERS: "steadfast_queue_dead_letters_total", "steadfast.queue.dead_letters", "{message}", Counter, "Messages dead-lettered, by reason";
    QUEUE_LEASES_LOST: "steadfast_queue_leases_lost_total", "steadfast.queue.leases_lost", "{lease}", Counter, "Leases that expired before their answer";
    QUEUE_REDRIVES: "steadfast_queue_redrives_total", "steadfast.queue.redrives", "{message}", Counter, "Dead letters redriven";
    QUEUE_MESSAGES: "steadfast_queue_messages", "steadfast.queue.messages", "{message}", Gauge, "Messages in a topic, by state";
    QUEUE_OLDEST_AGE: "steadfast_queue_oldest_age_seconds", "steadfast.queue.oldest_age", "s", Gauge, "Age of a topic's oldest ready message";
    BREAKER_STATE: "steadfast_breaker_state", "steadfast.breaker.state", "1", Gauge, "1 for a breaker's current state, 0 for the others";
    BULKHEAD_IN_FLIGHT: "steadfast_bulkhead_in_flight", "steadfast.bulkhead.in_flight", "{call}", Gauge, "Calls holding a bulkhead place";
    BULKHEAD_QUEUED: "steadfast_bulkhead_queued", "steadfast.bulkhead.queued", "{call}", Gauge, "Calls waiting for a bulkhead place";
    RATE_LIMITER_AVAILABLE: "steadfast_rate_limiter_available", "steadfast.rate_limiter.available", "{call}", Gauge, "Calls a rate limiter would let through at once";
    BUDGET_TOKENS: "steadfast_budget_tokens", "steadfast.budget.tokens", "1", Gauge, "What a retry budget has left to spend (tokens, balance or quota)";
    THROTTLE_PROBABILITY: "steadfast_throttle_reject_probability", "steadfast.throttle.reject_probability", "1", Gauge, "Adaptive throttling's probability of refusing an attempt";
}

/// A label's name in the `metrics` facade; OpenTelemetry prefixes it with `steadfast.`
/// (see [`otel_label`]).
pub(crate) type Labels = Vec<(&'static str, String)>;

/// One measurement.
#[derive(Debug, Clone)]
pub(crate) struct Measure {
    pub(crate) instrument: Instrument,
    pub(crate) value: f64,
    pub(crate) labels: Labels,
}

fn m(instrument: Instrument, value: f64, labels: Labels) -> Measure {
    Measure {
        instrument,
        value,
        labels,
    }
}

/// The attempt-number label: `1` to `4`, then `5+`, so its values stay few.
pub(crate) fn attempt_label(attempt: u32) -> &'static str {
    match attempt {
        0 | 1 => "1",
        2 => "2",
        3 => "3",
        4 => "4",
        _ => "5+",
    }
}

fn outcome_label(outcome: Outcome) -> &'static str {
    match outcome {
        Outcome::Success => "success",
        Outcome::Retryable { .. } => "retryable",
        Outcome::NonRetryable => "non_retryable",
        Outcome::Abort => "abort",
    }
}

/// What a call's event measures.
pub(crate) fn event(key: &Key, event: &Event) -> Vec<Measure> {
    let key = || ("key", key.to_string());
    match *event {
        Event::AttemptFinished {
            attempt,
            outcome,
            duration,
            end,
        } => {
            let outcome = match end {
                AttemptEnd::Cancelled => "cancelled",
                _ => outcome_label(outcome),
            };
            vec![
                m(
                    ATTEMPTS,
                    1.0,
                    vec![
                        key(),
                        ("outcome", outcome.to_owned()),
                        ("attempt", attempt_label(attempt).to_owned()),
                    ],
                ),
                m(ATTEMPT_DURATION, duration.as_secs_f64(), vec![key()]),
            ]
        }
        Event::RetryScheduled { reason, .. } => {
            let reason = match reason {
                RetryReason::Backoff => "backoff",
                RetryReason::ServerDelay => "server_delay",
                RetryReason::ServerDelayCapped { .. } => "server_delay_capped",
            };
            vec![m(RETRIES, 1.0, vec![key(), ("reason", reason.to_owned())])]
        }
        Event::CallFinished {
            ok,
            stop,
            timeout,
            duration,
            ..
        } => {
            let result = match (ok, timeout) {
                (true, _) => "ok",
                (false, Some(_)) => "timeout",
                (false, None) => "error",
            };
            let stop = stop.map_or("none", |s| s.as_str());
            vec![
                m(
                    CALLS,
                    1.0,
                    vec![
                        key(),
                        ("result", result.to_owned()),
                        ("stop", stop.to_owned()),
                    ],
                ),
                m(CALL_DURATION, duration.as_secs_f64(), vec![key()]),
            ]
        }
        Event::Rejected { by, .. } => {
            vec![m(
                REJECTIONS,
                1.0,
                vec![key(), ("by", by.as_str().to_owned())],
            )]
        }
        Event::BreakerChanged { from, to } => vec![m(
            BREAKER_TRANSITIONS,
            1.0,
            vec![
                key(),
                ("from", from.as_str().to_owned()),
                ("to", to.as_str().to_owned()),
            ],
        )],
        Event::FallbackUsed => vec![m(FALLBACKS, 1.0, vec![key()])],
        Event::HedgeLaunched { .. } => vec![m(HEDGES, 1.0, vec![key()])],
        Event::BudgetExhausted { hedge, .. } => {
            let refused = if hedge { "hedge" } else { "retry" };
            vec![m(
                BUDGET_REFUSALS,
                1.0,
                vec![key(), ("refused", refused.to_owned())],
            )]
        }
        _ => Vec::new(),
    }
}

/// What a durable part's event measures.
pub(crate) fn durable(event: &DurableEvent<'_>) -> Vec<Measure> {
    let topic = |t: &str| ("topic", t.to_owned());
    match *event {
        DurableEvent::GateDecided {
            target_type,
            allowed,
            reason,
        } => vec![m(
            GATE_DECISIONS,
            1.0,
            vec![
                ("target_type", target_type.to_owned()),
                ("allowed", allowed.to_string()),
                ("reason", reason.as_str().to_owned()),
            ],
        )],
        DurableEvent::Delivered { topic: t, .. } => vec![m(QUEUE_DELIVERIES, 1.0, vec![topic(t)])],
        DurableEvent::Acked { topic: t, count } => {
            vec![m(QUEUE_ACKS, count as f64, vec![topic(t)])]
        }
        DurableEvent::Retried { topic: t, .. } => vec![m(QUEUE_RETRIES, 1.0, vec![topic(t)])],
        DurableEvent::DeadLettered {
            topic: t,
            count,
            reason,
        } => vec![m(
            QUEUE_DEAD_LETTERS,
            count as f64,
            vec![topic(t), ("reason", reason.to_owned())],
        )],
        DurableEvent::LeaseLost { topic: t } => vec![m(QUEUE_LEASES_LOST, 1.0, vec![topic(t)])],
        DurableEvent::Redriven { count } => vec![m(QUEUE_REDRIVES, count as f64, Vec::new())],
        DurableEvent::QueueDepth {
            topic: t,
            ready,
            scheduled,
            leased,
            dead,
            oldest,
        } => {
            let mut out: Vec<Measure> = [
                ("ready", ready),
                ("scheduled", scheduled),
                ("leased", leased),
                ("dead", dead),
            ]
            .into_iter()
            .map(|(state, n)| {
                m(
                    QUEUE_MESSAGES,
                    n as f64,
                    vec![topic(t), ("state", state.to_owned())],
                )
            })
            .collect();
            out.push(m(
                QUEUE_OLDEST_AGE,
                oldest.map_or(0.0, |d| d.as_secs_f64()),
                vec![topic(t)],
            ));
            out
        }
    }
}

/// The gauges of the executor's keys' states.
pub(crate) fn states(states: &[KeyState]) -> Vec<Measure> {
    use crate::breaker::BreakerState;
    use crate::budget::BudgetSnapshot;
    let mut out = Vec::new();
    for s in states {
        let key = || ("key", s.key.to_string());
        if let Some(now) = s.breaker {
            for state in [
                BreakerState::Closed,
                BreakerState::Open,
                BreakerState::HalfOpen,
                BreakerState::Isolated,
            ] {
                out.push(m(
                    BREAKER_STATE,
                    if state == now { 1.0 } else { 0.0 },
                    vec![key(), ("state", state.as_str().to_owned())],
                ));
            }
        }
        if let Some(b) = s.bulkhead {
            out.push(m(BULKHEAD_IN_FLIGHT, f64::from(b.in_flight), vec![key()]));
            out.push(m(BULKHEAD_QUEUED, f64::from(b.queued), vec![key()]));
        }
        if let Some(n) = s.rate_limiter_available {
            out.push(m(RATE_LIMITER_AVAILABLE, f64::from(n), vec![key()]));
        }
        match s.budget {
            Some(BudgetSnapshot::Tokens(t) | BudgetSnapshot::Balance(t)) => {
                out.push(m(BUDGET_TOKENS, t, vec![key()]));
            }
            Some(BudgetSnapshot::Quota(q)) => out.push(m(BUDGET_TOKENS, q as f64, vec![key()])),
            Some(BudgetSnapshot::Adaptive {
                reject_probability, ..
            }) => out.push(m(THROTTLE_PROBABILITY, reject_probability, vec![key()])),
            _ => {}
        }
    }
    out
}

/// A label's OpenTelemetry attribute name.
#[cfg_attr(not(feature = "otel"), allow(dead_code))]
pub(crate) fn otel_label(name: &str) -> &'static str {
    match name {
        "key" => "steadfast.key",
        "outcome" => "steadfast.outcome",
        "attempt" => "steadfast.attempt",
        "reason" => "steadfast.reason",
        "result" => "steadfast.result",
        "stop" => "steadfast.stop",
        "by" => "steadfast.rejected_by",
        "from" => "steadfast.from",
        "to" => "steadfast.to",
        "refused" => "steadfast.refused",
        "target_type" => "steadfast.target_type",
        "allowed" => "steadfast.allowed",
        "topic" => "steadfast.topic",
        "state" => "steadfast.state",
        _ => "steadfast.label",
    }
}
