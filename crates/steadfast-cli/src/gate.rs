//! `steadfast gate`: the durable retry gate's records in a SQLite file or PostgreSQL.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use anyhow::Context as _;
use serde_json::json;
use steadfast::gate::{Decision, GateOptions, Target};
use steadfast::policy::PolicyDocument;
use steadfast_store::{
    Filter, GateRecord, GateStore, PostgresStore, RetryGate, SqliteStore, StoreError,
};

use crate::{Output, emit};

/// What to do.
#[derive(Debug, clap::Subcommand)]
pub(crate) enum Action {
    /// Every target's record, one line each, with what the gate would say now
    List {
        /// Only targets of this type.
        #[arg(long = "type", value_name = "TYPE")]
        target_type: Option<String>,
        /// At most this many.
        #[arg(long, default_value_t = 100)]
        limit: u32,
        /// Only targets the gate would answer so now: allowed, denied, or a reason
        /// (first_attempt, within_quota, cooling_down, exhausted, …).
        #[arg(long)]
        state: Option<String>,
    },
    /// One target's whole record and the gate's decision now
    Show {
        /// The target's type, e.g. order.
        target_type: String,
        /// The target's id, e.g. 42.
        target_id: String,
    },
    /// Clear a target's counters, window and early-retry flag (it may be attempted at once)
    ///
    /// The record keeps the options it is judged by, or takes those of --key's gate in
    /// --policy.
    Reset {
        /// The target's type.
        target_type: String,
        /// The target's id.
        target_id: String,
        /// A policy file whose --key's gate options the record takes.
        #[arg(long, value_name = "FILE", requires = "key")]
        policy: Option<PathBuf>,
        /// The key in --policy, e.g. payments.Charge.
        #[arg(long, value_name = "KEY", requires = "policy")]
        key: Option<String>,
    },
    /// Delete the records that have been clear (no attempt since a success or reset) for
    /// longer than --older-than; failing and exhausted records stay
    Purge {
        /// How long a record must have been clear, e.g. 30d or 12h.
        #[arg(long, value_name = "AGE", value_parser = crate::age)]
        older_than: Duration,
    },
    /// Ask for the target's one early retry: granted once its window is old enough
    RetryNow {
        /// The target's type.
        target_type: String,
        /// The target's id.
        target_id: String,
    },
}

/// Opens `db`: a `postgres://` URL, or a SQLite path or `sqlite:` URL.
async fn open(db: &str) -> Result<Arc<dyn GateStore>, StoreError> {
    if crate::is_postgres(db) {
        Ok(Arc::new(PostgresStore::connect(db).await?))
    } else {
        Ok(Arc::new(SqliteStore::connect(db).await?))
    }
}

pub(crate) fn run(db: &str, action: Action, format: Output) -> anyhow::Result<ExitCode> {
    crate::runtime()?.block_on(async {
        let store = open(db).await.with_context(|| format!("opening {db}"))?;
        // Records are judged by the options they keep; these are never written.
        let gate = RetryGate::new(store, GateOptions::default())?;
        let now = SystemTime::now();
        match action {
            Action::List {
                target_type,
                limit,
                state,
            } => {
                let mut filter = Filter::all();
                if state.is_none() {
                    filter = filter.limit(limit);
                }
                if let Some(t) = target_type {
                    filter = filter.target_type(t);
                }
                let mut records = gate.list(&filter).await?;
                if let Some(state) = &state {
                    records.retain(|r| {
                        let d = r.decision(now, false);
                        match state.as_str() {
                            "allowed" => d.allowed,
                            "denied" => !d.allowed,
                            reason => d.reason.as_str() == reason,
                        }
                    });
                    records.truncate(limit as usize);
                }
                emit(&match format {
                    Output::Json => {
                        let rows: Vec<_> = records.iter().map(|r| record_json(r, now)).collect();
                        serde_json::to_string_pretty(&rows)? + "\n"
                    }
                    Output::Text => list_text(&records, now),
                });
                Ok(ExitCode::SUCCESS)
            }
            Action::Show {
                target_type,
                target_id,
            } => {
                let target = Target::new(target_type, target_id);
                let Some(record) = gate.get(&target).await? else {
                    eprintln!("steadfast: no record for {target} in {db}");
                    return Ok(ExitCode::from(1));
                };
                emit(&match format {
                    Output::Json => {
                        serde_json::to_string_pretty(&record_json(&record, now))? + "\n"
                    }
                    Output::Text => show_text(&record, now),
                });
                Ok(ExitCode::SUCCESS)
            }
            Action::Reset {
                target_type,
                target_id,
                policy,
                key,
            } => {
                let target = Target::new(target_type, target_id);
                let existed = match (policy, key) {
                    (Some(file), Some(key)) => match gate_options(&file, &key) {
                        Ok(options) => gate.reset_with(&target, &options).await?,
                        Err(message) => {
                            eprintln!("{message}");
                            return Ok(ExitCode::FAILURE);
                        }
                    },
                    _ => gate.reset(&target).await?,
                };
                let message = if existed {
                    format!("{target}: reset; the next attempt is a first attempt")
                } else {
                    format!("{target}: no record (nothing to reset)")
                };
                emit(&match format {
                    Output::Json => {
                        json!({"target": target.to_string(), "reset": existed}).to_string() + "\n"
                    }
                    Output::Text => message + "\n",
                });
                Ok(if existed {
                    ExitCode::SUCCESS
                } else {
                    ExitCode::from(1)
                })
            }
            Action::Purge { older_than } => {
                let n = gate.purge_clear_older_than(older_than).await?;
                emit(&match format {
                    Output::Json => json!({ "purged": n }).to_string() + "\n",
                    Output::Text => {
                        format!("{n} clear record{} purged\n", if n == 1 { "" } else { "s" })
                    }
                });
                Ok(ExitCode::SUCCESS)
            }
            Action::RetryNow {
                target_type,
                target_id,
            } => {
                let target = Target::new(target_type, target_id);
                // With no record there is no window to cut short: say so, as show does.
                if gate.get(&target).await?.is_none() {
                    eprintln!("steadfast: no record for {target} in {db}");
                    return Ok(ExitCode::from(1));
                }
                let decision = gate.request_early(&target).await?;
                emit(&match format {
                    Output::Json => serde_json::to_string_pretty(&decision_json(&decision))? + "\n",
                    Output::Text => format!("{target}: {}\n", decision_text(&decision, now)),
                });
                Ok(if decision.allowed {
                    ExitCode::SUCCESS
                } else {
                    ExitCode::from(1)
                })
            }
        }
    })
}

/// The gate options `key` resolves to in the policy file `file`; the error says why not.
fn gate_options(file: &Path, key: &str) -> Result<GateOptions, String> {
    let doc = PolicyDocument::load(file).map_err(|e| e.to_string())?;
    let explained = doc
        .explain(key)
        .map_err(|e| format!("steadfast: {key:?}: {e}"))?;
    match &explained.table().gate {
        Some(options) => Ok(options.clone()),
        None => Err(format!(
            "steadfast: {key:?} has no gate in {}",
            file.display()
        )),
    }
}

fn time(t: Option<SystemTime>) -> serde_json::Value {
    t.map_or(serde_json::Value::Null, |t| {
        json!(
            t.duration_since(SystemTime::UNIX_EPOCH)
                .map_or(0, |d| d.as_millis())
        )
    })
}

fn date(t: Option<SystemTime>) -> String {
    t.map_or_else(|| "-".to_owned(), httpdate::fmt_http_date)
}

fn decision_json(d: &Decision) -> serde_json::Value {
    json!({
        "allowed": d.allowed,
        "reason": d.reason.as_str(),
        "next_allowed_at_ms": time(d.next_allowed_at),
        "attempts": d.attempts,
        "retries_left": d.retries_left,
    })
}

fn record_json(r: &GateRecord, now: SystemTime) -> serde_json::Value {
    json!({
        "target_type": r.target.target_type,
        "target_id": r.target.target_id,
        "attempts": r.attempts,
        "retries": r.retries(),
        "window_retries": r.window_retries,
        "window_start_ms": time(r.window_start),
        "early_retry_used": r.early_retry_used,
        "early_requested": r.early_requested,
        "last_attempt_at_ms": time(r.last_attempt_at),
        "last_success_at_ms": time(r.last_success_at),
        "next_allowed_at_ms": time(r.next_allowed_at),
        "last_early_granted_at_ms": time(r.last_early_granted_at),
        "last_error": r.last_error,
        "policy": serde_json::to_value(&r.policy).unwrap_or_default(),
        "version": r.version,
        "created_at_ms": time(Some(r.created_at)),
        "updated_at_ms": time(Some(r.updated_at)),
        "decision": decision_json(&r.decision(now, false)),
    })
}

/// The decision as `Decision` prints it, and how long until a denied target reopens.
fn decision_text(d: &Decision, now: SystemTime) -> String {
    match d.next_allowed_at {
        Some(at) => {
            let wait = at.duration_since(now).unwrap_or_default().as_secs();
            format!("{d}; reopens in {}m {}s", wait / 60, wait % 60)
        }
        None => d.to_string(),
    }
}

fn list_text(records: &[GateRecord], now: SystemTime) -> String {
    if records.is_empty() {
        return "no records\n".to_owned();
    }
    let rows: Vec<[String; 6]> = records
        .iter()
        .map(|r| {
            let d = r.decision(now, false);
            let state = if d.allowed { "open" } else { d.reason.as_str() };
            [
                r.target.to_string(),
                r.attempts.to_string(),
                format!("{}/{}", r.retries(), r.policy.max_retries),
                state.to_owned(),
                date(d.next_allowed_at),
                r.last_error
                    .clone()
                    .unwrap_or_default()
                    .chars()
                    .take(40)
                    .collect(),
            ]
        })
        .collect();
    let header = [
        "TARGET",
        "ATTEMPTS",
        "RETRIES",
        "STATE",
        "NEXT ALLOWED",
        "LAST ERROR",
    ];
    let mut widths = header.map(str::len);
    for row in &rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let line = |cells: &[String]| {
        let mut out = String::new();
        for (i, (cell, w)) in cells.iter().zip(widths).enumerate() {
            if i + 1 == cells.len() {
                out += cell;
            } else {
                out += &format!("{cell:<w$}  ");
            }
        }
        out.trim_end().to_owned() + "\n"
    };
    let mut out = line(&header.map(str::to_owned));
    for row in &rows {
        out += &line(row);
    }
    out
}

fn show_text(r: &GateRecord, now: SystemTime) -> String {
    let p = &r.policy;
    let fields = [
        ("target", r.target.to_string()),
        ("decision now", decision_text(&r.decision(now, false), now)),
        (
            "attempts",
            format!(
                "{} ({} retries of {})",
                r.attempts,
                r.retries(),
                p.max_retries
            ),
        ),
        (
            "window",
            match r.window_start {
                Some(s) => format!(
                    "opened {}, {} of {} retries used",
                    date(Some(s)),
                    r.window_retries,
                    p.base_retries
                ),
                None => "none open".to_owned(),
            },
        ),
        (
            "early retry",
            if r.early_retry_used {
                format!("used ({})", date(r.last_early_granted_at))
            } else if r.early_requested {
                "requested, not yet taken".to_owned()
            } else {
                "available".to_owned()
            },
        ),
        ("last attempt", date(r.last_attempt_at)),
        ("last success", date(r.last_success_at)),
        (
            "last error",
            r.last_error.clone().unwrap_or_else(|| "-".to_owned()),
        ),
        (
            "policy",
            format!(
                "base_retries {}, base_window {:?}, early_window {:?}, max_retries {}",
                p.base_retries, p.base_window, p.early_window, p.max_retries
            ),
        ),
        ("version", r.version.to_string()),
    ];
    fields
        .iter()
        .map(|(k, v)| format!("{k:<13} {v}\n"))
        .collect()
}
