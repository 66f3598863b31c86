//! `steadfast dlq` and `steadfast queue`: the retry queue's dead letters and counts in a
//! SQLite file or PostgreSQL.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use anyhow::Context as _;
use serde_json::json;
use steadfast::policy::PolicyDocument;
use steadfast_store::queue::{
    AttemptRecord, DeadLetter, DeadLetterFilter, EnqueueOptions, Enqueued, Message, MessageFilter,
    Queue, QueueStore,
};
use steadfast_store::{PostgresStore, SqliteStore, StoreError};

use crate::{Output, emit};

/// Which dead letters a command names.
#[derive(Debug, clap::Args)]
pub(crate) struct Pick {
    /// Only this topic's (a key, e.g. emails.Send).
    #[arg(long)]
    topic: Option<String>,
    /// Only those dead-lettered longer ago than this (e.g. 7d, 12h).
    #[arg(long, value_name = "AGE", value_parser = crate::age)]
    older_than: Option<Duration>,
}

/// What to do with the dead letters.
#[derive(Debug, clap::Subcommand)]
pub(crate) enum DlqAction {
    /// The dead letters, oldest first, one line each
    List {
        #[command(flatten)]
        pick: Pick,
        /// At most this many.
        #[arg(long, default_value_t = 100)]
        limit: u32,
    },
    /// One dead letter: its payload and every failed attempt
    Show {
        /// The dead letter's id.
        id: i64,
    },
    /// Send dead letters back to their topics with their attempts reset
    ///
    /// Name one by id, or pick by --topic / --older-than, or say --all.
    Redrive {
        /// The dead letter's id.
        id: Option<i64>,
        #[command(flatten)]
        pick: Pick,
        /// Every dead letter (without an id or a filter, nothing is chosen).
        #[arg(long, conflicts_with = "id")]
        all: bool,
        /// The policy file whose plan for each topic gives its deliveries (without one, a
        /// message is allowed the deliveries it had before).
        #[arg(long, value_name = "FILE")]
        policy: Option<PathBuf>,
    },
    /// Delete dead letters for good
    ///
    /// Name one by id, or pick by --topic / --older-than, or say --all.
    Purge {
        /// The dead letter's id.
        id: Option<i64>,
        #[command(flatten)]
        pick: Pick,
        /// Every dead letter (without an id or a filter, nothing is chosen).
        #[arg(long, conflicts_with = "id")]
        all: bool,
    },
}

/// What to ask the queue.
#[derive(Debug, clap::Subcommand)]
pub(crate) enum QueueAction {
    /// Per topic: messages ready, scheduled (waiting for a retry or a not-before time),
    /// leased, and dead letters; how long the oldest ready message has waited (lag) and the
    /// oldest message's age
    Stats {
        /// Only this topic.
        #[arg(long)]
        topic: Option<String>,
    },
    /// The live messages, by id, one line each (nothing is leased)
    List {
        /// Only this topic's.
        #[arg(long)]
        topic: Option<String>,
        /// At most this many.
        #[arg(long, default_value_t = 100)]
        limit: u32,
    },
    /// One live message: its payload and every failed delivery (nothing is leased)
    Peek {
        /// The message's id.
        id: i64,
    },
    /// Put a message on a topic
    Enqueue {
        /// The topic (a key, e.g. emails.Send).
        topic: String,
        /// The payload, as text.
        payload: String,
        /// A dedupe key: while a message with it lives, this one is not added.
        #[arg(long)]
        dedupe_key: Option<String>,
        /// Deliverable only after this long (e.g. 10m).
        #[arg(long, value_name = "AGE", value_parser = crate::age)]
        delay: Option<Duration>,
        /// The policy file whose plan for the topic gives its deliveries (else 3).
        #[arg(long, value_name = "FILE")]
        policy: Option<PathBuf>,
    },
    /// Delete a topic's messages that are not leased (leased ones finish as usual)
    Purge {
        /// The topic.
        #[arg(long)]
        topic: String,
    },
}

/// Opens `db`: a `postgres://` URL, or a SQLite path or `sqlite:` URL.
async fn open(db: &str) -> Result<Queue<Arc<dyn QueueStore>>, StoreError> {
    let store: Arc<dyn QueueStore> = if crate::is_postgres(db) {
        Arc::new(PostgresStore::connect(db).await?)
    } else {
        Arc::new(SqliteStore::connect(db).await?)
    };
    Ok(Queue::new(store))
}

impl Pick {
    fn filter(&self, now: SystemTime) -> DeadLetterFilter {
        let mut filter = DeadLetterFilter::all();
        if let Some(t) = &self.topic {
            filter = filter.topic(t.clone());
        }
        if let Some(age) = self.older_than {
            filter = filter.older_than(now - age);
        }
        filter
    }

    fn is_empty(&self) -> bool {
        self.topic.is_none() && self.older_than.is_none()
    }
}

/// The filter of a redrive or purge: an id, a pick, or `--all`; `None` when none was given.
fn chosen(id: Option<i64>, pick: &Pick, all: bool, now: SystemTime) -> Option<DeadLetterFilter> {
    match id {
        Some(id) => Some(DeadLetterFilter::id(id)),
        None if all || !pick.is_empty() => Some(pick.filter(now)),
        None => None,
    }
}

pub(crate) fn dlq(db: &str, action: DlqAction, format: Output) -> anyhow::Result<ExitCode> {
    crate::runtime()?.block_on(async {
        let queue = open(db).await.with_context(|| format!("opening {db}"))?;
        let now = SystemTime::now();
        let redrive = matches!(action, DlqAction::Redrive { .. });
        let policy = match &action {
            DlqAction::Redrive { policy, .. } => policy.clone(),
            _ => None,
        };
        match action {
            DlqAction::List { pick, limit } => {
                let dead = queue.dead_letters(&pick.filter(now).limit(limit)).await?;
                emit(&match format {
                    Output::Json => {
                        let rows: Vec<_> = dead.iter().map(|d| dead_json(d, false)).collect();
                        serde_json::to_string_pretty(&rows)? + "\n"
                    }
                    Output::Text => list_text(&dead, now),
                });
                Ok(ExitCode::SUCCESS)
            }
            DlqAction::Show { id } => {
                let Some(dead) = queue.dead_letter(id).await? else {
                    eprintln!("steadfast: no dead letter {id} in {db}");
                    return Ok(ExitCode::from(1));
                };
                emit(&match format {
                    Output::Json => serde_json::to_string_pretty(&dead_json(&dead, true))? + "\n",
                    Output::Text => show_text(&dead),
                });
                Ok(ExitCode::SUCCESS)
            }
            DlqAction::Redrive {
                id,
                pick,
                all,
                policy: _,
            }
            | DlqAction::Purge { id, pick, all } => {
                let verb = if redrive { "redriven" } else { "purged" };
                let Some(filter) = chosen(id, &pick, all, now) else {
                    eprintln!(
                        "steadfast: name a dead letter by id, or pick with --topic / \
                         --older-than, or say --all"
                    );
                    return Ok(ExitCode::from(2));
                };
                let n = if let Some(file) = policy {
                    let policies = match load_policies(&file) {
                        Ok(p) => p,
                        Err(message) => {
                            eprintln!("{message}");
                            return Ok(ExitCode::FAILURE);
                        }
                    };
                    queue.with_policies(policies).redrive(&filter).await?
                } else if redrive {
                    queue.redrive_with(&filter, |d| d.max_attempts).await?
                } else {
                    queue.purge(&filter).await?
                };
                emit(&match format {
                    Output::Json => json!({ verb: n }).to_string() + "\n",
                    Output::Text => format!("{n} dead letter{} {verb}\n", plural(n)),
                });
                // One named by id that was not there (or stayed): say so in the status.
                Ok(if id.is_some() && n == 0 {
                    ExitCode::from(1)
                } else {
                    ExitCode::SUCCESS
                })
            }
        }
    })
}

pub(crate) fn queue(db: &str, action: QueueAction, format: Output) -> anyhow::Result<ExitCode> {
    crate::runtime()?.block_on(async {
        let queue = open(db).await.with_context(|| format!("opening {db}"))?;
        let now = SystemTime::now();
        match action {
            QueueAction::Stats { topic } => {
                let stats = queue.stats(topic.as_deref()).await?;
                emit(&match format {
                    Output::Json => {
                        let rows: Vec<_> = stats
                            .iter()
                            .map(|s| {
                                json!({
                                    "topic": s.topic,
                                    "ready": s.ready,
                                    "scheduled": s.scheduled,
                                    "leased": s.leased,
                                    "dead": s.dead,
                                    "lag_ms": s.ready_since.map(|t| age_ms(now, t)),
                                    "oldest_age_ms": s.oldest_at.map(|t| age_ms(now, t)),
                                })
                            })
                            .collect();
                        serde_json::to_string_pretty(&rows)? + "\n"
                    }
                    Output::Text => stats_text(&stats, now),
                });
                Ok(ExitCode::SUCCESS)
            }
            QueueAction::List { topic, limit } => {
                let mut filter = MessageFilter::all().limit(limit);
                if let Some(t) = topic {
                    filter = filter.topic(t);
                }
                let live = queue.messages(&filter).await?;
                emit(&match format {
                    Output::Json => {
                        let rows: Vec<_> = live.iter().map(|m| message_json(m, false)).collect();
                        serde_json::to_string_pretty(&rows)? + "\n"
                    }
                    Output::Text => messages_text(&live, now),
                });
                Ok(ExitCode::SUCCESS)
            }
            QueueAction::Peek { id } => {
                let Some(m) = queue.messages(&MessageFilter::id(id)).await?.pop() else {
                    eprintln!("steadfast: no message {id} in {db}");
                    return Ok(ExitCode::from(1));
                };
                emit(&match format {
                    Output::Json => serde_json::to_string_pretty(&message_json(&m, true))? + "\n",
                    Output::Text => peek_text(&m),
                });
                Ok(ExitCode::SUCCESS)
            }
            QueueAction::Enqueue {
                topic,
                payload,
                dedupe_key,
                delay,
                policy,
            } => {
                let queue = match policy {
                    Some(file) => match load_policies(&file) {
                        Ok(p) => queue.with_policies(p),
                        Err(message) => {
                            eprintln!("{message}");
                            return Ok(ExitCode::FAILURE);
                        }
                    },
                    None => queue,
                };
                let mut options = EnqueueOptions::new();
                if let Some(key) = dedupe_key {
                    options = options.dedupe_key(key);
                }
                if let Some(d) = delay {
                    options = options.not_before(now + d);
                }
                let done = queue.enqueue(&topic, payload.into_bytes(), options).await?;
                let (id, added) = match done {
                    Enqueued::New(id) => (id, true),
                    Enqueued::Duplicate(id) => (id, false),
                };
                emit(&match format {
                    Output::Json => json!({ "id": id, "added": added }).to_string() + "\n",
                    Output::Text if added => format!("message {id} enqueued on {topic}\n"),
                    Output::Text => format!("message {id} holds that dedupe key; nothing added\n"),
                });
                Ok(ExitCode::SUCCESS)
            }
            QueueAction::Purge { topic } => {
                let n = queue.purge_messages(&topic).await?;
                emit(&match format {
                    Output::Json => json!({ "purged": n }).to_string() + "\n",
                    Output::Text => format!("{n} message{} of {topic} purged\n", plural(n)),
                });
                Ok(ExitCode::SUCCESS)
            }
        }
    })
}

fn age_ms(now: SystemTime, t: SystemTime) -> u128 {
    now.duration_since(t).unwrap_or_default().as_millis()
}

/// A duration for people: `0s`, `42s`, `7m`, `3h`, `2d`.
fn span(d: Duration) -> String {
    let s = d.as_secs();
    match s {
        0..60 => format!("{s}s"),
        60..3600 => format!("{}m", s / 60),
        3600..86_400 => format!("{}h", s / 3600),
        _ => format!("{}d", s / 86_400),
    }
}

fn stats_text(stats: &[steadfast_store::queue::TopicStats], now: SystemTime) -> String {
    let width = stats
        .iter()
        .map(|s| s.topic.len())
        .max()
        .unwrap_or(0)
        .max(5);
    let age = |t: Option<SystemTime>| {
        t.map_or_else(
            || "-".to_owned(),
            |t| span(now.duration_since(t).unwrap_or_default()),
        )
    };
    let mut out = format!(
        "{:<width$}  {:>8}  {:>9}  {:>7}  {:>6}  {:>5}  {:>6}\n",
        "TOPIC", "READY", "SCHEDULED", "LEASED", "DEAD", "LAG", "OLDEST"
    );
    for s in stats {
        out += &format!(
            "{:<width$}  {:>8}  {:>9}  {:>7}  {:>6}  {:>5}  {:>6}\n",
            s.topic,
            s.ready,
            s.scheduled,
            s.leased,
            s.dead,
            age(s.ready_since),
            age(s.oldest_at)
        );
    }
    if stats.is_empty() {
        out += "(no messages and no dead letters)\n";
    }
    out
}

fn message_json(m: &Message, payload: bool) -> serde_json::Value {
    let mut v = json!({
        "id": m.id,
        "topic": m.topic,
        "dedupe_key": m.dedupe_key,
        "attempts": m.attempts,
        "max_attempts": m.max_attempts,
        "leased": m.leased,
        "visible_at_ms": ms(m.visible_at),
        "enqueued_at_ms": ms(m.enqueued_at),
        "history": m.history,
    });
    if payload {
        v["payload"] = payload_json(&m.payload);
    }
    v
}

/// What a live message is doing now: leased, ready, or waiting (and for how long).
fn state(m: &Message, now: SystemTime) -> String {
    match now.duration_since(m.visible_at) {
        Ok(_) if m.leased => "lease expired".to_owned(),
        Ok(_) => "ready".to_owned(),
        Err(e) if m.leased => format!("leased, {} left", span(e.duration())),
        Err(e) => format!("waits {}", span(e.duration())),
    }
}

fn messages_text(live: &[Message], now: SystemTime) -> String {
    let width = live.iter().map(|m| m.topic.len()).max().unwrap_or(0).max(5);
    let mut out = format!(
        "{:>6}  {:<width$}  {:>8}  {:>9}  STATE\n",
        "ID", "TOPIC", "ATTEMPTS", "ENQUEUED"
    );
    for m in live {
        out += &format!(
            "{:>6}  {:<width$}  {:>8}  {:>9}  {}\n",
            m.id,
            m.topic,
            format!("{}/{}", m.attempts, m.max_attempts),
            ago(now, m.enqueued_at),
            state(m, now)
        );
    }
    if live.is_empty() {
        out += "(no messages)\n";
    }
    out
}

fn peek_text(m: &Message) -> String {
    let mut out = format!("message {} of {}\n", m.id, m.topic);
    if let Some(key) = &m.dedupe_key {
        out += &format!("dedupe key: {key}\n");
    }
    out += &format!(
        "enqueued:   {}\nvisible at: {}\nattempts:   {} of {}{}\n",
        httpdate::fmt_http_date(m.enqueued_at),
        httpdate::fmt_http_date(m.visible_at),
        m.attempts,
        m.max_attempts,
        if m.leased { " (leased)" } else { "" }
    );
    if !m.history.is_empty() {
        out += &history_and_payload(&m.history, &m.payload);
    } else {
        out += &payload_block(&m.payload);
    }
    out
}

fn plural(n: u64) -> &'static str {
    if n == 1 { "" } else { "s" }
}

fn ms(t: SystemTime) -> u128 {
    t.duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis())
}

/// The payload as a JSON string when it is UTF-8, else as `{"hex": …}`.
fn payload_json(payload: &[u8]) -> serde_json::Value {
    match std::str::from_utf8(payload) {
        Ok(text) => json!(text),
        Err(_) => json!({ "hex": payload_text(payload) }),
    }
}

/// The payload as text when it is UTF-8, else as hex.
fn payload_text(payload: &[u8]) -> String {
    match std::str::from_utf8(payload) {
        Ok(text) => text.to_owned(),
        Err(_) => payload.iter().map(|b| format!("{b:02x}")).collect(),
    }
}

fn dead_json(d: &DeadLetter, payload: bool) -> serde_json::Value {
    let mut v = json!({
        "id": d.id,
        "message_id": d.message_id,
        "topic": d.topic,
        "dedupe_key": d.dedupe_key,
        "attempts": d.attempts,
        "enqueued_at_ms": ms(d.enqueued_at),
        "died_at_ms": ms(d.died_at),
        "reason": d.reason,
        "history": d.history,
    });
    if payload {
        v["payload"] = payload_json(&d.payload);
    }
    v
}

fn ago(now: SystemTime, t: SystemTime) -> String {
    let s = now.duration_since(t).unwrap_or_default().as_secs();
    match s {
        0..60 => format!("{s}s ago"),
        60..3600 => format!("{}m ago", s / 60),
        3600..86_400 => format!("{}h ago", s / 3600),
        _ => format!("{}d ago", s / 86_400),
    }
}

fn list_text(dead: &[DeadLetter], now: SystemTime) -> String {
    let width = dead.iter().map(|d| d.topic.len()).max().unwrap_or(0).max(5);
    let mut out = format!(
        "{:>6}  {:<width$}  {:>8}  {:>9}  REASON\n",
        "ID", "TOPIC", "ATTEMPTS", "DIED"
    );
    for d in dead {
        out += &format!(
            "{:>6}  {:<width$}  {:>8}  {:>9}  {}\n",
            d.id,
            d.topic,
            d.attempts,
            ago(now, d.died_at),
            d.reason
        );
    }
    if dead.is_empty() {
        out += "(no dead letters)\n";
    }
    out
}

fn show_text(d: &DeadLetter) -> String {
    let mut out = format!(
        "dead letter {} (message {}) of {}\n",
        d.id, d.message_id, d.topic
    );
    if let Some(key) = &d.dedupe_key {
        out += &format!("dedupe key: {key}\n");
    }
    out += &format!(
        "enqueued:   {}\ndied:       {}\nattempts:   {}\nreason:     {}\n",
        httpdate::fmt_http_date(d.enqueued_at),
        httpdate::fmt_http_date(d.died_at),
        d.attempts,
        d.reason
    );
    out += &history_and_payload(&d.history, &d.payload);
    out
}

/// Every failed delivery, one line each, then the payload.
fn history_and_payload(history: &[AttemptRecord], payload: &[u8]) -> String {
    let mut out = "history:\n".to_owned();
    for h in history {
        let at =
            SystemTime::UNIX_EPOCH + Duration::from_millis(u64::try_from(h.at_ms).unwrap_or(0));
        out += &format!(
            "  #{:<3} {}  {}\n",
            h.attempt,
            httpdate::fmt_http_date(at),
            h.error
        );
    }
    out + &payload_block(payload)
}

fn payload_block(payload: &[u8]) -> String {
    format!(
        "payload ({} bytes):\n{}\n",
        payload.len(),
        payload_text(payload)
    )
}

/// The policies of `file`, as an application compiles them (built-in strategies only); the
/// error is the file's diagnostics.
fn load_policies(file: &Path) -> Result<steadfast::policy::Policies, String> {
    let doc = PolicyDocument::load(file).map_err(|e| e.to_string())?;
    doc.compile(&steadfast::chain::Registry::default())
        .map_err(|e| e.to_string())
}
