//! `steadfast plan FILE KEY`: what a key runs under, and when each attempt starts.

use std::path::Path;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context as _;
use serde::Serialize;
use steadfast::backoff::{Backoff, BackoffKind, Jitter};
use steadfast::policy::{PolicyDocument, TableSpec, format_duration as fmt};
use steadfast::{Retry, RetryOptions};

use crate::Output;

/// Whether the total timeout lets an attempt run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
enum Deadline {
    /// It starts before the deadline however the earlier attempts go.
    Runs,
    /// It starts before the deadline only if the earlier attempts and waits are short enough.
    MayBeCut,
    /// Even at its earliest it would start at or after the deadline: it is never made.
    Cut,
}

#[derive(Debug, Serialize)]
struct Row {
    attempt: u32,
    /// The wait before this attempt (none for the first), over the samples.
    delay_min_ms: Option<f64>,
    delay_median_ms: Option<f64>,
    delay_max_ms: Option<f64>,
    /// When it starts if every earlier attempt failed at once after the shortest waits.
    earliest_start_ms: f64,
    /// When it starts if every earlier attempt ran to its attempt timeout and waited the
    /// longest; `None` when attempts have no timeout (then there is no bound).
    latest_start_ms: Option<f64>,
    deadline: Deadline,
}

#[derive(Debug, Serialize)]
struct Report {
    file: String,
    key: String,
    retry: RetryOptions,
    retry_from: String,
    chain: Vec<String>,
    chain_from: String,
    /// The classifier, as its table is written, and where it comes from.
    classify: steadfast::classify::ClassifyOptions,
    classify_from: String,
    /// Whether the key is marked idempotent (hedging needs it).
    idempotent: bool,
    /// Every other field the key's tables name (breaker, bulkhead, rate limiter, gate,
    /// idempotency keys, hedge, budget): each as its table is written, and where it comes from.
    strategies: Vec<Strategy>,
    samples: u32,
    attempts: Vec<Row>,
    /// More attempts follow than are shown (an unbounded policy).
    truncated: bool,
}

#[derive(Debug, Serialize)]
struct Strategy {
    name: String,
    table: serde_json::Value,
    from: String,
}

/// The fields with a line of their own in the report.
const OWN_LINES: [&str; 4] = ["retry", "chain", "classify", "idempotent"];

/// Every field of the key's effective table that has no line of its own, in the table's
/// order: a field added to the table shows here without a change to this file.
fn strategies(explained: &steadfast::policy::Explanation) -> anyhow::Result<Vec<Strategy>> {
    let serde_json::Value::Object(mut fields) = serde_json::to_value(explained.table())? else {
        anyhow::bail!("a table is written as an object");
    };
    Ok(TableSpec::FIELDS
        .iter()
        .filter(|name| !OWN_LINES.contains(name))
        .filter_map(|name| {
            Some(Strategy {
                table: fields.remove(*name)?,
                from: explained.origin(name).to_string(),
                name: (*name).to_owned(),
            })
        })
        .collect())
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

pub(crate) fn run(
    file: &Path,
    key: &str,
    samples: u32,
    max_rows: u32,
    format: Output,
) -> anyhow::Result<ExitCode> {
    let doc = match PolicyDocument::load(file) {
        Ok(doc) => doc,
        Err(e) => {
            eprintln!("{e}");
            return Ok(ExitCode::FAILURE);
        }
    };
    let explained = doc
        .explain(key)
        .with_context(|| format!("{key:?} is not a key (namespace.Name)"))?;
    let options = explained.retry().clone();
    let retry: Retry = options.clone().build().context("the key's retry policy")?;
    let max_attempts = retry.max_attempts().unwrap_or(u32::MAX);
    let shown = max_attempts.min(max_rows.max(1));

    // Every seed's schedule, one delay per retry.
    let mut delays: Vec<Vec<Duration>> =
        vec![Vec::with_capacity(samples as usize); shown.saturating_sub(1) as usize];
    for seed in 0..u64::from(samples) {
        let mut backoff = Backoff::new(options.backoff.clone())?.with_seed(seed);
        for slot in &mut delays {
            slot.push(backoff.next().unwrap_or_default());
        }
    }
    let mut rows = Vec::new();
    let (mut earliest, mut latest) = (Duration::ZERO, Some(Duration::ZERO));
    for attempt in 1..=shown {
        let (min, median, max) = match (attempt as usize)
            .checked_sub(2)
            .and_then(|i| delays.get(i))
        {
            Some(slot) => {
                let mut slot = slot.clone();
                slot.sort_unstable();
                (
                    Some(slot[0]),
                    Some(slot[slot.len() / 2]),
                    Some(slot[slot.len() - 1]),
                )
            }
            None => (None, None, None),
        };
        if attempt > 1 {
            earliest += min.unwrap_or_default();
            latest = match (latest, options.attempt_timeout) {
                (Some(l), Some(t)) => Some(l + t + max.unwrap_or_default()),
                _ => None,
            };
        }
        let deadline = match options.total_timeout {
            Some(total) if earliest >= total && attempt > 1 => Deadline::Cut,
            Some(total) if attempt > 1 && latest.is_none_or(|l| l >= total) => Deadline::MayBeCut,
            _ => Deadline::Runs,
        };
        rows.push(Row {
            attempt,
            delay_min_ms: min.map(ms),
            delay_median_ms: median.map(ms),
            delay_max_ms: max.map(ms),
            earliest_start_ms: ms(earliest),
            latest_start_ms: latest.map(ms),
            deadline,
        });
        if deadline == Deadline::Cut {
            break;
        }
    }
    let truncated =
        rows.last().is_some_and(|r| r.deadline != Deadline::Cut) && shown < max_attempts;
    let report = Report {
        file: file.display().to_string(),
        key: key.to_owned(),
        retry: options,
        retry_from: explained.retry_origin().to_string(),
        chain: explained.chain().to_vec(),
        chain_from: explained.chain_origin().to_string(),
        classify: explained.classify().0.clone(),
        classify_from: explained.classify().1.to_string(),
        idempotent: explained.idempotent(),
        strategies: strategies(&explained)?,
        samples,
        attempts: rows,
        truncated,
    };
    match format {
        Output::Json => crate::emit(&(serde_json::to_string_pretty(&report)? + "\n")),
        Output::Text => crate::emit(&text(&report)),
    }
    Ok(ExitCode::SUCCESS)
}

fn describe(o: &RetryOptions) -> String {
    let b = &o.backoff;
    let attempts = match (o.max_attempts, o.max_retries) {
        (Some(n), _) => format!("up to {n} attempt{}", if n == 1 { "" } else { "s" }),
        (None, Some(r)) if r < 0 => "unbounded attempts (until the total timeout)".to_owned(),
        (None, Some(r)) => format!("up to {} attempts ({r} retries)", r.saturating_add(1)),
        (None, None) => format!("up to {} attempts", steadfast::retry::DEFAULT_MAX_ATTEMPTS),
    };
    let schedule = match &b.kind {
        BackoffKind::Immediate => "no wait between attempts".to_owned(),
        BackoffKind::Fixed => format!("a fixed {} between attempts", fmt(b.base)),
        BackoffKind::Linear => format!("linear backoff from {}", fmt(b.base)),
        BackoffKind::Exponential { factor } => {
            format!("exponential backoff ×{factor} from {}", fmt(b.base))
        }
        BackoffKind::Fibonacci => format!("fibonacci backoff from {}", fmt(b.base)),
        BackoffKind::Decorrelated => format!("decorrelated jitter from {}", fmt(b.base)),
        _ => "a custom schedule".to_owned(),
    };
    let cap = if matches!(b.kind, BackoffKind::Immediate) {
        String::new()
    } else {
        format!(", capped at {}", fmt(b.max))
    };
    let jitter = match b.jitter {
        _ if matches!(b.kind, BackoffKind::Immediate) => String::new(),
        Jitter::None => ", no jitter".to_owned(),
        Jitter::Full => ", full jitter".to_owned(),
        Jitter::Equal => ", equal jitter".to_owned(),
        Jitter::Proportional(r) => format!(", ±{}% jitter", r * 100.0),
        _ => String::new(),
    };
    let mut limits = Vec::new();
    if let Some(t) = o.attempt_timeout {
        limits.push(format!("attempt timeout {}", fmt(t)));
    }
    if let Some(t) = o.total_timeout {
        limits.push(format!("total timeout {}", fmt(t)));
    }
    limits.push(if o.cap_server_delay {
        format!("server delays honoured, cut to {}", fmt(o.max_server_delay))
    } else {
        format!("server delays honoured up to {}", fmt(o.max_server_delay))
    });
    if !o.retry_on_timeout {
        limits.push("a timed-out attempt is not retried".to_owned());
    }
    if let Some(seed) = o.seed {
        limits.push(format!("jitter seeded with {seed}"));
    }
    format!(
        "{attempts}; {schedule}{cap}{jitter}\n       {}",
        limits.join(", ")
    )
}

/// A duration to read at a glance: three significant figures at most (`187ms`, `3.25s`).
fn human(ms: f64) -> String {
    let trim = |s: String| {
        if s.contains('.') {
            s.trim_end_matches('0').trim_end_matches('.').to_owned()
        } else {
            s
        }
    };
    if ms == 0.0 {
        "0ms".to_owned()
    } else if ms < 1.0 {
        format!("{:.0}µs", ms * 1000.0)
    } else if ms < 10.0 {
        trim(format!("{ms:.2}")) + "ms"
    } else if ms < 1000.0 {
        format!("{ms:.0}ms")
    } else if ms < 60_000.0 {
        trim(format!("{:.2}", ms / 1000.0)) + "s"
    } else {
        fmt(Duration::from_secs((ms / 1000.0).round() as u64))
    }
}

fn text(r: &Report) -> String {
    let mut out = String::new();
    let d = |v: Option<f64>| v.map_or_else(|| "—".to_owned(), human);
    out.push_str(&format!("{} in {}\n", r.key, r.file));
    out.push_str(&format!("  retry  from {}\n", r.retry_from));
    if r.chain.is_empty() {
        out.push_str(&format!("  chain  none ({})\n", r.chain_from));
    } else {
        out.push_str(&format!(
            "  chain  {}  from {}\n",
            r.chain.join(" → "),
            r.chain_from
        ));
    }
    out.push_str(&format!(
        "  classify  {}  from {}\n",
        serde_json::to_string(&r.classify).unwrap_or_default(),
        r.classify_from
    ));
    if r.idempotent {
        out.push_str("  idempotent  true\n");
    }
    for st in &r.strategies {
        let fields: Vec<String> = st
            .table
            .as_object()
            .map(|o| o.iter().map(|(k, v)| format!("{k} = {v}")).collect())
            .unwrap_or_default();
        out.push_str(&format!(
            "  {}  {{ {} }}  from {}\n",
            st.name,
            fields.join(", "),
            st.from
        ));
    }
    out.push_str(&format!("\nretry: {}\n\n", describe(&r.retry)));
    out.push_str(&format!(
        "attempt  {:>30}  {:>9}  {:>9}\n",
        format!("wait before: min / median / max of {}", r.samples),
        "earliest",
        "latest",
    ));
    for row in &r.attempts {
        let wait = if row.attempt == 1 {
            "—".to_owned()
        } else {
            format!(
                "{:>7} / {:>7} / {:>7}",
                d(row.delay_min_ms),
                d(row.delay_median_ms),
                d(row.delay_max_ms)
            )
        };
        let latest = row
            .latest_start_ms
            .map_or_else(|| "unbounded".to_owned(), |v| d(Some(v)));
        let note = match row.deadline {
            Deadline::Runs => "",
            Deadline::MayBeCut => "  may be cut by the total timeout",
            Deadline::Cut => "  never made: past the total timeout",
        };
        out.push_str(&format!(
            "{:>7}  {:>39}  {:>9}  {:>9}{note}\n",
            row.attempt,
            wait,
            d(Some(row.earliest_start_ms)),
            latest,
        ));
    }
    if r.truncated {
        out.push_str("    …    (more attempts follow; --max-rows to see them)\n");
    }
    out.push_str(
        "\nearliest: every attempt fails at once and waits the least; latest: every attempt runs to its\n\
         attempt timeout and waits the most (unbounded without an attempt timeout).\n",
    );
    out
}
