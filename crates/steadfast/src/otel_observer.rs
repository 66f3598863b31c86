//! Metrics through the OpenTelemetry API (feature `otel`): the same instruments as
//! [`MetricsObserver`](crate::observe::MetricsObserver), named as OpenTelemetry names them.

use std::collections::HashMap;
use std::sync::Arc;

use opentelemetry::KeyValue;
use opentelemetry::metrics::{Counter, Gauge, Histogram, Meter, ObservableGauge};

use crate::executor::Executor;
use crate::key::Key;
use crate::measure::{self, Kind, Measure};
use crate::observe::{DurableEvent, Event, Observer};

/// Records every call's attempts, retries and results, and the durable parts' events, as
/// OpenTelemetry instruments of a [`Meter`]; [`OtelObserver::observe_states`] adds the
/// gauges of each key's breaker, bulkhead, rate limiter and budget.
///
/// | instrument | kind | unit | attributes |
/// |---|---|---|---|
/// | `steadfast.attempts` | counter | `{attempt}` | `steadfast.key`, `steadfast.outcome`, `steadfast.attempt` (`1` to `4`, then `5+`) |
/// | `steadfast.attempt.duration` | histogram | `s` | `steadfast.key` |
/// | `steadfast.retries` | counter | `{retry}` | `steadfast.key`, `steadfast.reason` |
/// | `steadfast.calls` | counter | `{call}` | `steadfast.key`, `steadfast.result`, `steadfast.stop` |
/// | `steadfast.call.duration` | histogram | `s` | `steadfast.key` |
/// | `steadfast.rejections` | counter | `{call}` | `steadfast.key`, `steadfast.rejected_by` |
/// | `steadfast.breaker.transitions` | counter | `{transition}` | `steadfast.key`, `steadfast.from`, `steadfast.to` |
/// | `steadfast.fallbacks`, `steadfast.hedges`, `steadfast.budget.refusals` | counter | | `steadfast.key` (and `steadfast.refused`) |
/// | `steadfast.gate.decisions`, `steadfast.queue.*` | counter, gauge | | as [`MetricsObserver`](crate::observe::MetricsObserver)'s labels, prefixed `steadfast.` |
/// | `steadfast.breaker.state` | gauge | `1` | `steadfast.key`, `steadfast.state` (1 for the current state) |
/// | `steadfast.bulkhead.in_flight`, `steadfast.bulkhead.queued` | gauge | `{call}` | `steadfast.key` |
/// | `steadfast.rate_limiter.available` | gauge | `{call}` | `steadfast.key` |
/// | `steadfast.budget.tokens`, `steadfast.throttle.reject_probability` | gauge | `1` | `steadfast.key` |
///
/// # Example
/// ```
/// use steadfast::observe::OtelObserver;
/// use steadfast::Executor;
///
/// // An SDK meter provider with an OTLP (or any) exporter in an application:
/// let meter = opentelemetry::global::meter("steadfast");
/// let executor = Executor::builder().observer(OtelObserver::new(&meter)).build();
/// let _gauges = OtelObserver::observe_states(&meter, executor.clone());
/// ```
#[derive(Clone)]
pub struct OtelObserver {
    instruments: Arc<Instruments>,
}

impl std::fmt::Debug for OtelObserver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OtelObserver").finish_non_exhaustive()
    }
}

struct Instruments {
    counters: HashMap<&'static str, Counter<u64>>,
    histograms: HashMap<&'static str, Histogram<f64>>,
    gauges: HashMap<&'static str, Gauge<f64>>,
}

/// The state gauges' registration ([`OtelObserver::observe_states`]): the meter reads them
/// at each collection while this is kept.
#[must_use = "the gauges are read only while this is kept"]
pub struct StateGauges {
    _gauges: Vec<ObservableGauge<f64>>,
}

impl std::fmt::Debug for StateGauges {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StateGauges")
            .field("gauges", &self._gauges.len())
            .finish()
    }
}

const STATE_GAUGES: [measure::Instrument; 6] = [
    measure::BREAKER_STATE,
    measure::BULKHEAD_IN_FLIGHT,
    measure::BULKHEAD_QUEUED,
    measure::RATE_LIMITER_AVAILABLE,
    measure::BUDGET_TOKENS,
    measure::THROTTLE_PROBABILITY,
];

impl OtelObserver {
    /// An observer recording into `meter`'s instruments (made now, once).
    pub fn new(meter: &Meter) -> Self {
        let mut instruments = Instruments {
            counters: HashMap::new(),
            histograms: HashMap::new(),
            gauges: HashMap::new(),
        };
        for i in measure::ALL {
            if STATE_GAUGES.iter().any(|s| s.otel == i.otel) {
                continue;
            }
            match i.kind {
                Kind::Counter => {
                    let c = meter
                        .u64_counter(i.otel)
                        .with_unit(i.unit)
                        .with_description(i.help)
                        .build();
                    instruments.counters.insert(i.otel, c);
                }
                Kind::Histogram => {
                    let h = meter
                        .f64_histogram(i.otel)
                        .with_unit(i.unit)
                        .with_description(i.help)
                        .build();
                    instruments.histograms.insert(i.otel, h);
                }
                Kind::Gauge => {
                    let g = meter
                        .f64_gauge(i.otel)
                        .with_unit(i.unit)
                        .with_description(i.help)
                        .build();
                    instruments.gauges.insert(i.otel, g);
                }
            }
        }
        OtelObserver {
            instruments: Arc::new(instruments),
        }
    }

    /// Registers gauges of `executor`'s keys' strategies (breaker state, bulkhead places in
    /// use and queued, rate limiter calls available, budget tokens), read from
    /// [`Executor::states`] each time the meter collects.
    pub fn observe_states(meter: &Meter, executor: Executor) -> StateGauges {
        let gauges = STATE_GAUGES
            .iter()
            .map(|i| {
                let executor = executor.clone();
                let name = i.otel;
                meter
                    .f64_observable_gauge(name)
                    .with_unit(i.unit)
                    .with_description(i.help)
                    .with_callback(move |observer| {
                        for m in measure::states(&executor.states()) {
                            if m.instrument.otel == name {
                                observer.observe(m.value, &attributes(&m));
                            }
                        }
                    })
                    .build()
            })
            .collect();
        StateGauges { _gauges: gauges }
    }

    fn record(&self, measures: Vec<Measure>) {
        for m in measures {
            let name = m.instrument.otel;
            let attrs = attributes(&m);
            match m.instrument.kind {
                Kind::Counter => {
                    if let Some(c) = self.instruments.counters.get(name) {
                        c.add(m.value as u64, &attrs);
                    }
                }
                Kind::Histogram => {
                    if let Some(h) = self.instruments.histograms.get(name) {
                        h.record(m.value, &attrs);
                    }
                }
                Kind::Gauge => {
                    if let Some(g) = self.instruments.gauges.get(name) {
                        g.record(m.value, &attrs);
                    }
                }
            }
        }
    }
}

fn attributes(m: &Measure) -> Vec<KeyValue> {
    m.labels
        .iter()
        .map(|(k, v)| KeyValue::new(measure::otel_label(k), v.clone()))
        .collect()
}

impl Observer for OtelObserver {
    fn on_event(&self, key: &Key, event: &Event) {
        self.record(measure::event(key, event));
    }

    fn on_durable_event(&self, event: &DurableEvent<'_>) {
        self.record(measure::durable(event));
    }
}
