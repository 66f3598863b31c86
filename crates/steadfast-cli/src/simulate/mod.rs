//! `steadfast simulate`: the library's own retry, hedging and budgets against a simulated
//! dependency, on tokio's paused clock (virtual time: no wall-clock sleep, one seed gives one
//! result).
//!
//! Each scenario is a list of runs (a baseline and the policies under test). A run sends
//! open-loop Poisson arrivals for its duration; each call runs under the run's policy through
//! `Retry::call` with `.hedge` / `.budget`, and each attempt meets the dependency: an outage
//! window or a failure draw fails it fast, a full second of capacity rejects it fast, else it
//! takes a lognormal latency (plus, rarely, a stall).
//!
//! tokio's timers tick in milliseconds, so a scenario whose latencies are a few milliseconds
//! runs with time stretched (`scale` = 1000: a simulated millisecond is a virtual second);
//! every duration given to the library is stretched alike and every number reported is in
//! simulated time.

use std::cell::RefCell;
use std::path::PathBuf;
use std::process::ExitCode;
use std::rc::Rc;
use std::time::Duration;

use anyhow::{Context, bail};
use serde::Serialize;
use steadfast::budget::{Budget, BudgetOptions};
use steadfast::classify::Outcome;
use steadfast::hedge::{Hedge, HedgeDelay, HedgeOptions};
use steadfast::observe::{AttemptEnd, Timeline};
use steadfast::policy::{PolicyDocument, parse_duration};
use steadfast::{Error, ErrorKind, Jitter, Retry, RetryOptions};
use tokio::time::Instant;

use crate::{Output, emit};

mod plot;

/// The scenarios `--scenario` knows.
pub(crate) const SCENARIOS: [&str; 4] = ["hedge-p95", "outage", "easy", "adaptive-throttle"];

/// What the simulated dependency does with an attempt.
#[derive(Debug, Clone)]
struct Dependency {
    /// Median of the lognormal body.
    median: Duration,
    /// Its σ (of the underlying normal).
    sigma: f64,
    /// The chance an attempt stalls, and the stall's uniform range (added to the body).
    stall: f64,
    stall_range: (Duration, Duration),
    /// The chance an attempt fails (fast, after `fail_after`).
    failure: f64,
    fail_after: Duration,
    /// Attempts accepted per second at most; the rest fail fast (overloaded).
    capacity: Option<u32>,
    /// Spans (from the run's start) in which every attempt fails fast.
    outages: Vec<(Duration, Duration)>,
}

impl Dependency {
    fn lognormal(median_ms: f64, sigma: f64) -> Self {
        Dependency {
            median: Duration::from_secs_f64(median_ms / 1e3),
            sigma,
            stall: 0.0,
            stall_range: (Duration::ZERO, Duration::ZERO),
            failure: 0.0,
            fail_after: Duration::from_millis(1),
            capacity: None,
            outages: Vec::new(),
        }
    }
}

/// The policy a run's calls run under.
#[derive(Debug, Clone)]
struct Policy {
    retry: RetryOptions,
    hedge: Option<HedgeOptions>,
    budget: Option<BudgetOptions>,
}

impl Policy {
    /// `n` attempts, exponential backoff from 10 ms to 1 s with full jitter.
    fn attempts(n: u32) -> Self {
        Policy {
            retry: Retry::exponential(ms(10))
                .max_delay(ms(1000))
                .jitter(Jitter::Full)
                .max_attempts(n),
            hedge: None,
            budget: None,
        }
    }

    /// With the budget `kind` names ([`BUDGETS`]), at its default parameters.
    fn budget(mut self, kind: &str) -> Self {
        self.budget = budget_named(kind);
        self
    }
}

/// When calls arrive.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Arrivals {
    /// Open-loop Poisson: exponential gaps of mean 1/rate.
    Poisson,
    /// Exactly every 1/rate.
    Paced,
}

/// One run of a scenario.
#[derive(Debug, Clone)]
struct Run {
    name: String,
    dependency: Dependency,
    policy: Policy,
    /// Calls per second.
    rate: f64,
    /// How they arrive.
    arrivals: Arrivals,
    duration: Duration,
    /// `backend_rps` counts from here on (after a budget's window fills).
    warmup: Duration,
    /// Time stretch (see the module).
    scale: u32,
}

/// What a run measured; every time in simulated milliseconds.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct Report {
    pub(crate) name: String,
    pub(crate) requests: u64,
    pub(crate) attempts: u64,
    pub(crate) amplification: f64,
    /// The highest amplification over the whole 10 s windows of the run (attempts reaching
    /// the dependency in the window over calls arriving in it).
    pub(crate) max_amplification_10s: f64,
    /// Each whole 10 s window's calls arriving and attempts reaching the dependency.
    pub(crate) windows_10s: Vec<[u64; 2]>,
    pub(crate) success_rate: f64,
    pub(crate) p50_ms: f64,
    pub(crate) p90_ms: f64,
    pub(crate) p99_ms: f64,
    pub(crate) p999_ms: f64,
    pub(crate) hedges: u64,
    pub(crate) hedges_won: u64,
    pub(crate) retries: u64,
    pub(crate) budget_refusals: u64,
    /// Attempts reaching the dependency per second, after the warm-up.
    pub(crate) backend_rps: f64,
}

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

/// The runs of a built-in scenario.
fn scenario(name: &str) -> anyhow::Result<Vec<Run>> {
    let minute = Duration::from_secs(60);
    let runs = match name {
        // The Tail at Scale: hedging at p95 costs ~5 % more load and cuts the tail.
        "hedge-p95" => {
            let mut dep = Dependency::lognormal(2.0, 0.4);
            dep.stall = 0.01;
            dep.stall_range = (ms(50), ms(1000));
            let base = Run {
                name: "hedge-p95/baseline".into(),
                dependency: dep,
                policy: Policy::attempts(1),
                rate: 1000.0,
                arrivals: Arrivals::Poisson,
                duration: minute,
                warmup: Duration::ZERO,
                scale: 1000,
            };
            let mut hedged = base.clone();
            hedged.name = "hedge-p95/hedged".into();
            hedged.policy.hedge = Some(
                HedgeOptions::percentile(95.0)
                    .min_samples(100)
                    .fallback(ms(10))
                    .window(Duration::from_secs(30)),
            );
            vec![base, hedged]
        }
        // Every attempt fails fast for a minute: what does each budget let through?
        "outage" => {
            let mut dep = Dependency::lognormal(1.0, 0.1);
            dep.failure = 1.0;
            let run = |name: &str, policy: Policy| Run {
                name: format!("outage/{name}"),
                dependency: dep.clone(),
                policy,
                rate: 1000.0,
                arrivals: Arrivals::Poisson,
                duration: minute,
                warmup: Duration::ZERO,
                scale: 1,
            };
            let ratio = Policy::attempts(3).budget("ratio");
            // The ratio budget's bound, 1 + 20 % + 10/s ÷ 1 000/s = 1.21, assumes exactly
            // 1 000 calls a second; this run has them, the Poisson one has 1 000 on average.
            let mut paced = run("ratio-paced", ratio.clone());
            paced.arrivals = Arrivals::Paced;
            vec![
                run("no-budget", Policy::attempts(3)),
                run("ratio", ratio),
                paced,
                run("token-bucket", Policy::attempts(3).budget("token-bucket")),
                run("quota", Policy::attempts(3).budget("quota")),
            ]
        }
        // Independent failures of 1 % and 5 %: no budget may get in the way.
        "easy" => {
            let mut runs = Vec::new();
            for p in [1u32, 5] {
                let mut dep = Dependency::lognormal(2.0, 0.4);
                dep.failure = f64::from(p) / 100.0;
                for name in std::iter::once("no-budget").chain(BUDGETS) {
                    runs.push(Run {
                        name: format!("easy-{p}%/{name}"),
                        dependency: dep.clone(),
                        policy: Policy::attempts(3).budget(name),
                        rate: 1000.0,
                        arrivals: Arrivals::Poisson,
                        duration: Duration::from_secs(30),
                        warmup: Duration::ZERO,
                        scale: 1,
                    });
                }
            }
            runs
        }
        // 1 000 calls a second at a dependency that takes 200.
        "adaptive-throttle" => {
            let mut dep = Dependency::lognormal(2.0, 0.4);
            dep.capacity = Some(200);
            let run = |name: &str, policy: Policy| Run {
                name: format!("adaptive-throttle/{name}"),
                dependency: dep.clone(),
                policy,
                rate: 1000.0,
                arrivals: Arrivals::Poisson,
                duration: Duration::from_secs(240),
                warmup: Duration::from_secs(120),
                scale: 1,
            };
            vec![
                run("no-throttle", Policy::attempts(1)),
                run("adaptive-k2", Policy::attempts(1).budget("adaptive")),
            ]
        }
        other => bail!(
            "unknown scenario {other:?}: expected one of {}",
            SCENARIOS.join(", ")
        ),
    };
    Ok(runs)
}

/// The state of one run, shared by its calls (one thread: `Rc`).
struct Sim {
    run: Run,
    rng: RefCell<fastrand::Rng>,
    start: Instant,
    retry: Retry,
    hedge: Option<Hedge>,
    budget: Option<Budget>,
    counts: RefCell<Counts>,
}

#[derive(Default)]
struct Counts {
    /// Attempts reaching the dependency, per 10 s window.
    attempts: Vec<u64>,
    /// Calls arriving, per 10 s window.
    arrivals: Vec<u64>,
    /// Attempts reaching the dependency, per second (for plots).
    per_second: Vec<u64>,
    /// Attempts after the warm-up.
    after_warmup: u64,
    /// Accepted in the current second: (second, count).
    second: (u64, u32),
    latencies_ms: Vec<f64>,
    ok: u64,
    hedges: u64,
    hedges_won: u64,
    retries: u64,
    refusals: u64,
}

/// Why a simulated attempt failed.
#[derive(Debug, Clone, Copy)]
enum Failure {
    Failed,
    Overloaded,
}

fn bump(v: &mut Vec<u64>, i: usize) {
    if v.len() <= i {
        v.resize(i + 1, 0);
    }
    v[i] += 1;
}

impl Sim {
    /// Simulated time since the run began.
    fn now(&self) -> Duration {
        self.start.elapsed() / self.run.scale
    }

    fn stretch(&self, d: Duration) -> Duration {
        d * self.run.scale
    }

    /// A standard normal draw (Box–Muller).
    fn normal(&self) -> f64 {
        let mut rng = self.rng.borrow_mut();
        let u1 = rng.f64().max(f64::MIN_POSITIVE);
        let u2 = rng.f64();
        (-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos()
    }

    /// One attempt at the dependency.
    async fn attempt(self: Rc<Self>) -> Result<(), Failure> {
        let now = self.now();
        let dep = &self.run.dependency;
        let overloaded = {
            let mut c = self.counts.borrow_mut();
            bump(&mut c.attempts, (now.as_secs() / 10) as usize);
            bump(&mut c.per_second, now.as_secs() as usize);
            if now >= self.run.warmup {
                c.after_warmup += 1;
            }
            match dep.capacity {
                None => false,
                Some(cap) => {
                    let second = now.as_secs();
                    if c.second.0 != second {
                        c.second = (second, 0);
                    }
                    if c.second.1 >= cap {
                        true
                    } else {
                        c.second.1 += 1;
                        false
                    }
                }
            }
        };
        let down = dep
            .outages
            .iter()
            .any(|&(from, to)| from <= now && now < to);
        let failed = !overloaded
            && (down || (dep.failure > 0.0 && self.rng.borrow_mut().f64() < dep.failure));
        if overloaded || failed {
            tokio::time::sleep(self.stretch(dep.fail_after)).await;
            return Err(if overloaded {
                Failure::Overloaded
            } else {
                Failure::Failed
            });
        }
        let mut latency = dep.median.as_secs_f64() * (dep.sigma * self.normal()).exp();
        if dep.stall > 0.0 && self.rng.borrow_mut().f64() < dep.stall {
            let (lo, hi) = dep.stall_range;
            let u = self.rng.borrow_mut().f64();
            latency += lo.as_secs_f64() + u * (hi - lo).as_secs_f64();
        }
        tokio::time::sleep(self.stretch(Duration::from_secs_f64(latency))).await;
        Ok(())
    }

    /// One call under the run's policy.
    async fn call(self: Rc<Self>) {
        let arrived = Instant::now();
        {
            let now = self.now();
            bump(
                &mut self.counts.borrow_mut().arrivals,
                (now.as_secs() / 10) as usize,
            );
        }
        let op = || self.clone().attempt();
        let classify = |_: &Failure| Outcome::RETRYABLE;
        let call = self.retry.call(op).classify_error(classify);
        let (result, timeline): (Result<(), Error<Failure>>, Timeline) =
            match (&self.hedge, &self.budget) {
                (None, None) => call.run_with_timeline().await,
                (Some(h), None) => call.hedge(h).run_with_timeline().await,
                (None, Some(b)) => call.budget(b).run_with_timeline().await,
                (Some(h), Some(b)) => call.hedge(h).budget(b).run_with_timeline().await,
            };
        let took = arrived.elapsed() / self.run.scale;
        let mut c = self.counts.borrow_mut();
        c.latencies_ms.push(took.as_secs_f64() * 1e3);
        c.ok += u64::from(result.is_ok());
        let attempts = timeline.attempts();
        let hedges = attempts.iter().filter(|a| a.is_hedge()).count() as u64;
        c.hedges += hedges;
        c.retries += (attempts.len() as u64).saturating_sub(hedges + 1);
        c.hedges_won += u64::from(
            attempts
                .iter()
                .any(|a| a.is_hedge() && a.end() == AttemptEnd::Ok && a.outcome().is_success()),
        );
        c.refusals += u64::from(timeline.budget_refusals());
        if matches!(
            result.as_ref().map_err(|e| e.kind()),
            Err(ErrorKind::Throttled { .. })
        ) {
            c.refusals += 1;
        }
    }
}

/// The retry options with every duration stretched by `s` (see the module).
fn stretch_retry(mut o: RetryOptions, s: u32) -> RetryOptions {
    o.backoff.base *= s;
    o.backoff.max *= s;
    o.attempt_timeout = o.attempt_timeout.map(|d| d * s);
    o.total_timeout = o.total_timeout.map(|d| d * s);
    o.max_server_delay *= s;
    o
}

/// The hedging options with every duration stretched by `s`.
fn stretch_hedge(mut h: HedgeOptions, s: u32) -> HedgeOptions {
    h.window *= s;
    h.delay = match h.delay {
        HedgeDelay::Fixed(d) => HedgeDelay::Fixed(d * s),
        HedgeDelay::Percentile {
            percentile,
            min_samples,
            fallback,
        } => HedgeDelay::Percentile {
            percentile,
            min_samples,
            fallback: fallback * s,
        },
        other => other,
    };
    h
}

/// What a run measured, and the series its plot draws.
struct Measured {
    report: Report,
    /// Each call's latency in simulated milliseconds, sorted.
    latencies_ms: Vec<f64>,
    /// Attempts reaching the dependency in each second.
    per_second: Vec<u64>,
}

/// Runs one run on a paused clock; deterministic for a seed.
fn simulate(run: &Run, seed: u64) -> anyhow::Result<Measured> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .start_paused(true)
        .build()
        .context("a tokio runtime")?;
    let local = tokio::task::LocalSet::new();
    local.block_on(&rt, async {
        let s = run.scale;
        let mut retry = stretch_retry(run.policy.retry.clone(), s);
        retry.seed = retry.seed.or(Some(seed));
        let retry = retry.build()?;
        let hedge = match &run.policy.hedge {
            None => None,
            Some(h) => Some(stretch_hedge(h.clone(), s).build()?),
        };
        let budget = match &run.policy.budget {
            None => None,
            // Budgets count per second: never stretched (`scale_for` keeps such runs at 1).
            Some(b) => Some(b.clone().seed(seed).build()?),
        };
        let sim = Rc::new(Sim {
            run: run.clone(),
            rng: RefCell::new(fastrand::Rng::with_seed(seed)),
            start: Instant::now(),
            retry,
            hedge,
            budget,
            counts: RefCell::new(Counts::default()),
        });
        let end = run.duration * s;
        let gap = Duration::from_secs_f64(1.0 / run.rate) * s;
        let mut at = Duration::ZERO;
        let mut calls = Vec::new();
        // Arrivals draw from their own stream, so every run of a scenario (and the baseline)
        // meets the same calls at the same instants, whatever its attempts draw.
        let mut arrivals = fastrand::Rng::with_seed(seed ^ 0x9e37_79b9_7f4a_7c15);
        loop {
            at += match run.arrivals {
                Arrivals::Poisson => {
                    let u = arrivals.f64().max(f64::MIN_POSITIVE);
                    Duration::from_secs_f64(-u.ln() / run.rate) * s
                }
                Arrivals::Paced => gap,
            };
            if at >= end {
                break;
            }
            tokio::time::sleep_until(sim.start + at).await;
            calls.push(tokio::task::spawn_local(sim.clone().call()));
        }
        for c in calls {
            c.await.context("a simulated call")?;
        }
        let report = report(run, &sim);
        let mut counts = sim.counts.borrow_mut();
        // Whole seconds of the run only: attempts after the last arrival tail off.
        counts.per_second.truncate(run.duration.as_secs() as usize);
        Ok(Measured {
            report,
            latencies_ms: std::mem::take(&mut counts.latencies_ms),
            per_second: std::mem::take(&mut counts.per_second),
        })
    })
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

fn report(run: &Run, sim: &Sim) -> Report {
    let mut c = sim.counts.borrow_mut();
    let requests = c.latencies_ms.len() as u64;
    let attempts: u64 = c.attempts.iter().sum();
    c.latencies_ms.sort_by(f64::total_cmp);
    let l = &c.latencies_ms;
    // Whole windows inside the run only: the last call may arrive a tick past its end.
    let windows = c
        .arrivals
        .len()
        .min(c.attempts.len())
        .min((run.duration.as_secs() / 10) as usize);
    let max_window = (0..windows)
        .filter(|&i| c.arrivals[i] > 0)
        .map(|i| c.attempts[i] as f64 / c.arrivals[i] as f64)
        .fold(0.0, f64::max);
    let windows_10s = (0..windows)
        .map(|i| [c.arrivals[i], c.attempts[i]])
        .collect();
    let counted = (run.duration - run.warmup).as_secs_f64();
    let round = |v: f64, places: i32| {
        let f = 10f64.powi(places);
        (v * f).round() / f
    };
    Report {
        name: run.name.clone(),
        requests,
        attempts,
        amplification: round(attempts as f64 / requests.max(1) as f64, 4),
        max_amplification_10s: round(max_window, 4),
        windows_10s,
        success_rate: round(c.ok as f64 / requests.max(1) as f64, 5),
        p50_ms: round(percentile(l, 50.0), 3),
        p90_ms: round(percentile(l, 90.0), 3),
        p99_ms: round(percentile(l, 99.0), 3),
        p999_ms: round(percentile(l, 99.9), 3),
        hedges: c.hedges,
        hedges_won: c.hedges_won,
        retries: c.retries,
        budget_refusals: c.refusals,
        backend_rps: round(c.after_warmup as f64 / counted, 1),
    }
}

/// `steadfast simulate`'s arguments.
#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// A built-in scenario: its runs, dependencies and policies (the flags below are ignored).
    #[arg(long, value_name = "NAME", value_parser = clap::builder::PossibleValuesParser::new(SCENARIOS), conflicts_with_all = ["policy", "max_attempts", "hedge", "budget"])]
    scenario: Option<String>,
    /// The seed of every random draw.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Output format.
    #[arg(long, value_enum, default_value_t = Output::Text)]
    format: Output,
    /// Also draw each run's latency distribution and its attempts per second into this SVG.
    #[arg(long, value_name = "FILE.svg")]
    plot: Option<PathBuf>,

    /// The plan: what this policy file gives --key (retry, hedge, budget).
    #[arg(long, value_name = "FILE", requires = "key", conflicts_with_all = ["max_attempts", "hedge", "budget"])]
    policy: Option<PathBuf>,
    /// The call site's key in --policy, e.g. search.Query.
    #[arg(long, value_name = "KEY", requires = "policy")]
    key: Option<String>,
    /// The plan by flags: attempts in total (exponential backoff 10 ms → 1 s, full jitter).
    #[arg(long, value_name = "N", default_value_t = 3)]
    max_attempts: u32,
    /// The plan by flags: hedge at a percentile of recent latencies ("p95") or after a fixed
    /// delay ("20ms").
    #[arg(long, value_name = "pP|DELAY")]
    hedge: Option<String>,
    /// The plan by flags: a budget with its default parameters.
    #[arg(long, value_name = "KIND", value_parser = clap::builder::PossibleValuesParser::new(BUDGETS))]
    budget: Option<String>,

    /// Calls a second.
    #[arg(long, value_name = "N", default_value_t = 1000.0)]
    rate: f64,
    /// Calls arrive as a Poisson process, or paced exactly 1/rate apart.
    #[arg(long, default_value_t = false)]
    paced: bool,
    /// How long calls arrive for.
    #[arg(long, value_name = "DURATION", default_value = "60s", value_parser = parse_duration)]
    duration: Duration,
    /// backend_rps counts attempts from this point on.
    #[arg(long, value_name = "DURATION", default_value = "0s", value_parser = parse_duration)]
    warmup: Duration,
    /// The dependency's median latency (lognormal).
    #[arg(long, value_name = "DURATION", default_value = "2ms", value_parser = parse_duration)]
    median: Duration,
    /// The lognormal's σ.
    #[arg(long, value_name = "SIGMA", default_value_t = 0.4)]
    sigma: f64,
    /// The chance an attempt stalls.
    #[arg(long, value_name = "P", default_value_t = 0.0)]
    stall: f64,
    /// How long a stall adds, uniformly drawn.
    #[arg(long, value_name = "MIN..MAX", default_value = "50ms..1s", value_parser = parse_span)]
    stall_range: (Duration, Duration),
    /// The chance an attempt fails (fast).
    #[arg(long, value_name = "P", default_value_t = 0.0)]
    failure: f64,
    /// A span of the run in which every attempt fails fast, e.g. 10s..20s (repeatable).
    #[arg(long, value_name = "FROM..TO", value_parser = parse_span)]
    outage: Vec<(Duration, Duration)>,
    /// Attempts the dependency takes a second; the rest fail fast, overloaded.
    #[arg(long, value_name = "N")]
    capacity: Option<u32>,
}

/// `10s..20s`.
fn parse_span(text: &str) -> Result<(Duration, Duration), String> {
    let (from, to) = text
        .split_once("..")
        .ok_or_else(|| format!("expected FROM..TO, like 10s..20s, got {text:?}"))?;
    let (from, to) = (parse_duration(from)?, parse_duration(to)?);
    if to < from {
        return Err(format!("{text:?} ends before it starts"));
    }
    Ok((from, to))
}

/// The budgets scenarios and `--budget` name.
const BUDGETS: [&str; 5] = ["ratio", "token-bucket", "quota", "concurrency", "adaptive"];

/// The budget `kind` names, with its default parameters (`None`: not one of [`BUDGETS`]).
fn budget_named(kind: &str) -> Option<BudgetOptions> {
    Some(match kind {
        "ratio" => BudgetOptions::ratio_default(),
        "token-bucket" => BudgetOptions::token_bucket(10.0, 0.1),
        "quota" => BudgetOptions::quota(500, 5, 10),
        "concurrency" => BudgetOptions::concurrency(3, 0.2),
        "adaptive" => BudgetOptions::adaptive(2.0),
        _ => return None,
    })
}

/// Time runs stretched when latencies are too short for tokio's millisecond timer, unless a
/// budget counts per second (its rates would be stretched too).
fn scale_for(dependency: &Dependency, policy: &Policy) -> u32 {
    if policy.budget.is_none() && dependency.median < Duration::from_millis(100) {
        1000
    } else {
        1
    }
}

/// The runs the flags describe: a one-attempt baseline and the plan under test.
fn custom(args: &Args) -> anyhow::Result<Vec<Run>> {
    if !(args.rate.is_finite() && args.rate > 0.0) {
        bail!("--rate must be > 0, got {}", args.rate);
    }
    for (flag, p) in [("--stall", args.stall), ("--failure", args.failure)] {
        if !(0.0..=1.0).contains(&p) {
            bail!("{flag} is a probability in [0, 1], got {p}");
        }
    }
    if !(args.sigma.is_finite() && args.sigma >= 0.0) {
        bail!("--sigma must be >= 0, got {}", args.sigma);
    }
    let (name, policy) = match (&args.policy, &args.key) {
        (Some(file), Some(key)) => {
            let doc = PolicyDocument::load(file).map_err(|e| anyhow::anyhow!("{e}"))?;
            let explained = doc.explain(key)?;
            let policy = Policy {
                retry: explained.retry().clone(),
                hedge: explained.table().hedge.clone(),
                budget: explained.table().budget.as_ref().map(|b| b.options.clone()),
            };
            (key.clone(), policy)
        }
        _ => {
            let mut policy = Policy::attempts(args.max_attempts);
            policy.hedge = match args.hedge.as_deref() {
                None => None,
                Some(h) => Some(match h.strip_prefix('p') {
                    Some(p) => HedgeOptions::percentile(
                        p.parse()
                            .with_context(|| format!("--hedge {h:?}: p95 or a delay like 20ms"))?,
                    ),
                    None => HedgeOptions::fixed(parse_duration(h).map_err(|e| {
                        anyhow::anyhow!("--hedge {h:?}: p95 or a delay like 20ms ({e})")
                    })?),
                }),
            };
            policy.budget = args.budget.as_deref().and_then(budget_named);
            ("flags".to_owned(), policy)
        }
    };
    let mut dependency = Dependency::lognormal(args.median.as_secs_f64() * 1e3, args.sigma);
    dependency.stall = args.stall;
    dependency.stall_range = args.stall_range;
    dependency.failure = args.failure;
    dependency.capacity = args.capacity;
    dependency.outages = args.outage.clone();
    let baseline = Policy::attempts(1);
    // One time scale for both runs, so their latencies compare alike.
    let scale = scale_for(&dependency, &policy);
    let run = |name: String, policy: Policy| Run {
        name,
        scale,
        dependency: dependency.clone(),
        policy,
        rate: args.rate,
        arrivals: if args.paced {
            Arrivals::Paced
        } else {
            Arrivals::Poisson
        },
        duration: args.duration,
        warmup: args.warmup,
    };
    Ok(vec![
        run("baseline".to_owned(), baseline),
        run(name, policy),
    ])
}

/// `steadfast simulate`.
pub(crate) fn run(args: &Args) -> anyhow::Result<ExitCode> {
    let runs = match &args.scenario {
        Some(name) => scenario(name)?,
        None => custom(args)?,
    };
    let mut measured = Vec::new();
    for r in &runs {
        measured.push(simulate(r, args.seed).with_context(|| r.name.clone())?);
    }
    if let Some(path) = &args.plot {
        let title = match &args.scenario {
            Some(name) => format!("steadfast simulate --scenario {name} --seed {}", args.seed),
            None => format!("steadfast simulate --seed {}", args.seed),
        };
        plot::draw(path, &title, &measured)
            .with_context(|| format!("drawing {}", path.display()))?;
    }
    let reports: Vec<&Report> = measured.iter().map(|m| &m.report).collect();
    match args.format {
        Output::Json => emit(&(serde_json::to_string_pretty(&reports)? + "\n")),
        Output::Text => emit(&table(&reports)),
    }
    Ok(ExitCode::SUCCESS)
}

fn table(reports: &[&Report]) -> String {
    let header = [
        "run",
        "requests",
        "attempts",
        "ampl.",
        "max ampl./10s",
        "success",
        "p50 ms",
        "p90 ms",
        "p99 ms",
        "p99.9 ms",
        "hedges",
        "won",
        "retries",
        "refused",
        "backend rps",
    ];
    let rows: Vec<Vec<String>> = reports
        .iter()
        .map(|r| {
            vec![
                r.name.clone(),
                r.requests.to_string(),
                r.attempts.to_string(),
                format!("{:.4}", r.amplification),
                format!("{:.4}", r.max_amplification_10s),
                format!("{:.3}%", r.success_rate * 100.0),
                format!("{:.2}", r.p50_ms),
                format!("{:.2}", r.p90_ms),
                format!("{:.2}", r.p99_ms),
                format!("{:.2}", r.p999_ms),
                r.hedges.to_string(),
                r.hedges_won.to_string(),
                r.retries.to_string(),
                r.budget_refusals.to_string(),
                format!("{:.1}", r.backend_rps),
            ]
        })
        .collect();
    let mut out = format!("| {} |\n", header.join(" | "));
    out += &format!("|---|{}\n", "---:|".repeat(header.len() - 1));
    for row in rows {
        out += &format!("| {} |\n", row.join(" | "));
    }
    out
}
