//! `steadfast`: check policy files, show what a key runs under, print the JSON Schema.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};

mod check;
mod gate;
mod import;
mod plan;
mod queue;
mod simulate;

/// Resilience policies by key: check policy files and see what a key will do before it
/// reaches production.
#[derive(Debug, Parser)]
#[command(name = "steadfast", version)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Validate policy files: every problem, each with its line and column
    ///
    /// Files may be TOML, YAML or JSON. Exits 0 when every file is valid, 1 when any has a problem.
    Check {
        /// Policy files; the format comes from the extension (.toml, .yaml/.yml, .json).
        #[arg(required = true, value_name = "FILE")]
        files: Vec<PathBuf>,
        /// Custom strategy names the application registers; when given, any other name in a
        /// `chain` is an error.
        #[arg(long = "strategy", value_name = "NAME")]
        strategies: Vec<String>,
        /// Classifier names the application registers, beside the built-in always, never, io,
        /// http and grpc; any other name in a `classify` is an error.
        #[arg(long = "classifier", value_name = "NAME")]
        classifiers: Vec<String>,
        /// Output format.
        #[arg(long, value_enum, default_value_t = Output::Text)]
        format: Output,
    },
    /// Show what a key runs under and when each of its attempts starts
    ///
    /// Prints the policy the key resolves to, which table each strategy comes from, and its
    /// backoff schedule: each attempt's wait (min / median / max over seeded samples), when it
    /// starts at the earliest and at the latest, and whether the total timeout cuts it off.
    Plan {
        /// The policy file.
        #[arg(value_name = "FILE")]
        file: PathBuf,
        /// The call site's key, e.g. payments.Charge.
        #[arg(value_name = "KEY")]
        key: String,
        /// How many seeded schedules to sample for the delay columns.
        #[arg(long, default_value_t = 1000, value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
        samples: u32,
        /// Rows to show at most for an unbounded policy.
        #[arg(long, default_value_t = 12)]
        max_rows: u32,
        /// Output format.
        #[arg(long, value_enum, default_value_t = Output::Text)]
        format: Output,
    },
    /// Inspect and steer the durable retry gate: list, show, reset, retry-now, purge
    ///
    /// Reads the records of a SQLite file (a path or sqlite: URL) or PostgreSQL
    /// (postgres:// URL). Each record is judged by the options it was created with.
    Gate {
        #[command(flatten)]
        store: StoreArgs,
        #[command(subcommand)]
        action: gate::Action,
    },
    /// Read, redrive and purge the retry queue's dead letters
    ///
    /// Reads a SQLite file (a path or sqlite: URL) or PostgreSQL (postgres:// URL).
    Dlq {
        #[command(flatten)]
        store: StoreArgs,
        #[command(subcommand)]
        action: queue::DlqAction,
    },
    /// The retry queue's counts per topic
    Queue {
        #[command(flatten)]
        store: StoreArgs,
        #[command(subcommand)]
        action: queue::QueueAction,
    },
    /// Run the library's retry, hedging and budgets against a simulated dependency
    ///
    /// Virtual time: no real sleeps, and one seed gives one result. A built-in scenario
    /// (--scenario) runs a baseline and the policies under test: hedge-p95 (hedging at the
    /// p95 against 1 % stalls), outage (every attempt fails; each budget's amplification),
    /// easy (1 % and 5 % failures; no budget may get in the way), adaptive-throttle (1 000
    /// calls/s at a dependency taking 200/s). Without one, a key's plan from a policy file
    /// (--policy, --key) or the plan flags (--max-attempts, --hedge, --budget) runs against
    /// the dependency the other flags describe, beside a one-attempt baseline.
    Simulate(Box<simulate::Args>),
    /// Print the JSON Schema of policy files, for editors
    ///
    /// Point your editor's YAML, TOML or JSON language server at it.
    Schema,
    /// Import another system's retry configuration as a policy document
    Import {
        #[command(subcommand)]
        source: import::Source,
    },
}

/// Where the durable parts' records are, and how to print them.
#[derive(Debug, clap::Args)]
struct StoreArgs {
    /// The store: a SQLite path (steadfast.db), a sqlite: URL, or a postgres:// URL.
    #[arg(
        long,
        value_name = "URL",
        global = true,
        default_value = "steadfast.db"
    )]
    db: String,
    /// Output format.
    #[arg(long, value_enum, default_value_t = Output::Text, global = true)]
    format: Output,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Output {
    /// For people.
    Text,
    /// For programs.
    Json,
}

/// An age on the command line: a policy-file duration (`12h`, `90m`) or whole days (`30d`).
pub(crate) fn age(text: &str) -> Result<std::time::Duration, String> {
    match text.strip_suffix('d').map(str::parse::<u64>) {
        Some(Ok(days)) => days
            .checked_mul(24 * 3600)
            .map(std::time::Duration::from_secs)
            .ok_or_else(|| format!("{text:?} is too long")),
        _ => steadfast::policy::parse_duration(text),
    }
}

/// Whether `db` names PostgreSQL (`postgres://`), else a SQLite path or `sqlite:` URL.
pub(crate) fn is_postgres(db: &str) -> bool {
    db.starts_with("postgres://") || db.starts_with("postgresql://")
}

/// The runtime a store command runs on.
pub(crate) fn runtime() -> std::io::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
}

/// Writes to stdout; a closed pipe (`steadfast plan … | head`) ends quietly.
pub(crate) fn emit(text: &str) {
    use std::io::Write;
    let _ = std::io::stdout().lock().write_all(text.as_bytes());
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Check {
            files,
            strategies,
            classifiers,
            format,
        } => check::run(&files, &strategies, &classifiers, format),
        Command::Plan {
            file,
            key,
            samples,
            max_rows,
            format,
        } => plan::run(&file, &key, samples, max_rows, format),
        Command::Gate { store, action } => gate::run(&store.db, action, store.format),
        Command::Dlq { store, action } => queue::dlq(&store.db, action, store.format),
        Command::Queue { store, action } => queue::queue(&store.db, action, store.format),
        Command::Simulate(args) => simulate::run(&args),
        Command::Import { source } => import::run(&source),
        Command::Schema => serde_json::to_string_pretty(&steadfast::policy::json_schema())
            .map(|s| {
                emit(&(s + "\n"));
                ExitCode::SUCCESS
            })
            .map_err(Into::into),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("steadfast: {e:#}");
            ExitCode::from(2)
        }
    }
}
