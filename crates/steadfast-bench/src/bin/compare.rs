//! steadfast against its peers, interleaved in one process under one runtime.
//!
//! Run with `cargo run -p steadfast-bench --release --bin compare` (`-- --quick` for a short
//! run, `-- --scenario NAME` for one scenario). Each scenario runs in five child processes of
//! interleaved rounds; prints a markdown table per scenario (median ns per call, heap
//! allocations per call, ratio to steadfast) and writes `target/bench-report.json`.
//!
//! `-- --instructions` adds, for the in-process scenarios, instructions per call of each
//! implementation, counted by `valgrind --tool=callgrind` (repeatable whatever the machine's
//! load): each implementation runs in a child under callgrind twice, for 200 and for 2 200
//! calls after the same setup and warm-up, and the difference is divided by 2 000, so setup,
//! start and exit cancel out.

// Counting allocations needs a global allocator, which is an `unsafe impl` by definition;
// this one only counts and forwards to the system allocator.
#![allow(unsafe_code)]

use std::alloc::{GlobalAlloc, Layout, System};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};

use steadfast_bench::{SCENARIOS, Scenario, runners, runtime};

struct Counting;

static ALLOCATIONS: AtomicU64 = AtomicU64::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        // SAFETY: forwards the caller's layout to the system allocator unchanged.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: `ptr` came from `System.alloc` with this layout.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        // SAFETY: `ptr` came from `System.alloc` with this layout; the caller upholds the rest.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

struct Row {
    scenario: &'static str,
    name: &'static str,
    ns_per_call: f64,
    allocs_per_call: f64,
    instructions_per_call: Option<f64>,
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

/// How many calls make a round of about `target` for this runner (within `min..=max`): some peers
/// sleep on a zero delay, which waits for the timer's next millisecond tick, so per-call costs
/// differ by 10 000×.
fn calibrate(
    run: &mut dyn FnMut(&tokio::runtime::Runtime, u64) -> std::time::Duration,
    rt: &tokio::runtime::Runtime,
    target: std::time::Duration,
    (min, max): (u64, u64),
) -> u64 {
    let probe = 10;
    let per_call = run(rt, probe).as_nanos().max(1) as u64 / probe;
    (target.as_nanos() as u64 / per_call.max(1)).clamp(min.max(probe), max)
}

fn measure(scenario: Scenario, rounds: usize, target: std::time::Duration) -> Vec<Row> {
    let rt = runtime();
    let mut runners = runners(&rt, scenario);
    let iters: Vec<u64> = runners
        .iter_mut()
        .map(|r| {
            // Warm up (lazy statics, the runtime's timer, caches), then size the rounds.
            calibrate(
                &mut r.run,
                &rt,
                target / 10,
                (scenario.min_iters(), scenario.iters()),
            );
            calibrate(
                &mut r.run,
                &rt,
                target,
                (scenario.min_iters(), scenario.iters()),
            )
        })
        .collect();
    // Allocations: one dedicated round each.
    let allocs: Vec<f64> = runners
        .iter_mut()
        .zip(&iters)
        .map(|(r, &n)| {
            let before = ALLOCATIONS.load(Ordering::Relaxed);
            (r.run)(&rt, n);
            (ALLOCATIONS.load(Ordering::Relaxed) - before) as f64 / n as f64
        })
        .collect();
    // Time: interleaved rounds, starting each round at a different implementation.
    let n = runners.len();
    let mut samples = vec![Vec::with_capacity(rounds); n];
    for round in 0..rounds {
        for k in 0..n {
            let i = (round + k) % n;
            let elapsed = (runners[i].run)(&rt, iters[i]);
            samples[i].push(elapsed.as_nanos() as f64 / iters[i] as f64);
        }
    }
    runners
        .iter()
        .zip(samples)
        .zip(allocs)
        .map(|((r, s), a)| Row {
            scenario: scenario.name(),
            name: r.name,
            ns_per_call: median(s),
            allocs_per_call: a,
            instructions_per_call: None,
        })
        .collect()
}

fn report_path() -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../target"));
    target.join("bench-report.json")
}

/// A child run: measures one scenario and prints one JSON row per implementation.
fn child(scenario: Scenario, rounds: usize, target: std::time::Duration) {
    for r in measure(scenario, rounds, target) {
        println!(
            "{}",
            serde_json::json!({"impl": r.name, "ns": r.ns_per_call, "allocs": r.allocs_per_call})
        );
    }
}

/// Runs `processes` children for `scenario` and takes, per implementation, the median of
/// their medians: where code and stack land in memory moves a 6 ns call by ±30 %, and each
/// process lands differently.
fn across_processes(
    scenario: Scenario,
    processes: usize,
    quick: bool,
) -> Result<Vec<Row>, Box<dyn std::error::Error>> {
    let exe = std::env::current_exe()?;
    let mut names: Vec<&'static str> = Vec::new();
    let mut ns: Vec<Vec<f64>> = Vec::new();
    let mut allocs: Vec<f64> = Vec::new();
    for _ in 0..processes {
        let mut cmd = std::process::Command::new(&exe);
        cmd.args(["--child", scenario.name()]);
        if quick {
            cmd.arg("--quick");
        }
        let out = cmd.output()?;
        if !out.status.success() {
            return Err(format!(
                "child for {} failed: {}",
                scenario.name(),
                String::from_utf8_lossy(&out.stderr)
            )
            .into());
        }
        for (i, line) in String::from_utf8(out.stdout)?.lines().enumerate() {
            let v: serde_json::Value = serde_json::from_str(line)?;
            if names.len() <= i {
                let name = v["impl"].as_str().unwrap_or("?").to_owned();
                names.push(Box::leak(name.into_boxed_str()));
                ns.push(Vec::new());
                allocs.push(v["allocs"].as_f64().unwrap_or(f64::NAN));
            }
            ns[i].push(v["ns"].as_f64().unwrap_or(f64::NAN));
        }
    }
    Ok(names
        .into_iter()
        .zip(ns)
        .zip(allocs)
        .map(|((name, ns), allocs)| Row {
            scenario: scenario.name(),
            name,
            ns_per_call: median(ns),
            allocs_per_call: allocs,
            instructions_per_call: None,
        })
        .collect())
}

/// Scenarios whose calls run in this process, where instruction counts mean something.
fn counted(scenario: Scenario) -> bool {
    matches!(
        scenario,
        Scenario::FirstTrySuccess
            | Scenario::TwoFailuresThenSuccess
            | Scenario::BackoffSchedule
            | Scenario::ExecutorHandle
            | Scenario::ExecutorKey
            | Scenario::BreakerClosed
            | Scenario::BreakerContended
            | Scenario::Pipeline5
    )
}

/// A child under callgrind: sets up every runner of `scenario`, warms runner `index` up,
/// then makes `calls` calls with it.
fn count_child(scenario: Scenario, index: usize, calls: u64) {
    let rt = runtime();
    let mut runners = runners(&rt, scenario);
    let run = &mut runners[index].run;
    run(&rt, 100);
    run(&rt, calls);
}

/// Instructions callgrind collected for one child run.
fn collected(scenario: Scenario, index: usize, calls: u64) -> Option<f64> {
    let exe = std::env::current_exe().ok()?;
    let out = std::process::Command::new("valgrind")
        .args(["--tool=callgrind", "--callgrind-out-file=/dev/null"])
        .arg(exe)
        .args([
            "--count",
            scenario.name(),
            &index.to_string(),
            &calls.to_string(),
        ])
        .output()
        .ok()?;
    let stderr = String::from_utf8_lossy(&out.stderr);
    let line = stderr.lines().find(|l| l.contains("Collected :"))?;
    line.rsplit(':')
        .next()?
        .trim()
        .replace(',', "")
        .parse()
        .ok()
}

/// Instructions per call of each runner of `scenario` whose calls take under 50 µs (a
/// peer that sleeps a timer tick per retry is left out: its count is the runtime's idling).
fn instructions(scenario: Scenario, rows: &[Row]) -> Vec<Option<f64>> {
    rows.iter()
        .enumerate()
        .map(|(i, r)| {
            if r.ns_per_call > 50_000.0 {
                return None;
            }
            let low = collected(scenario, i, 200)?;
            let high = collected(scenario, i, 2_200)?;
            Some((high - low) / 2_000.0)
        })
        .collect()
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    let quick = args.iter().any(|a| a == "--quick");
    let arg = |flag: &str| {
        args.iter()
            .position(|a| a == flag)
            .and_then(|i| args.get(i + 1).cloned())
    };
    let (rounds, target, processes) = if quick {
        (5, std::time::Duration::from_millis(5), 1)
    } else {
        (15, std::time::Duration::from_millis(20), 5)
    };
    if let Some(name) = arg("--count") {
        let at = args.iter().position(|a| a == "--count").unwrap_or(0);
        let scenario = SCENARIOS
            .into_iter()
            .find(|s| s.name() == name)
            .ok_or_else(|| format!("unknown scenario {name}"))?;
        let index: usize = args.get(at + 2).ok_or("--count needs an index")?.parse()?;
        let calls: u64 = args.get(at + 3).ok_or("--count needs calls")?.parse()?;
        count_child(scenario, index, calls);
        return Ok(());
    }
    let count = args.iter().any(|a| a == "--instructions");
    if let Some(name) = arg("--child") {
        let scenario = SCENARIOS
            .into_iter()
            .find(|s| s.name() == name)
            .ok_or_else(|| format!("unknown scenario {name}"))?;
        child(scenario, rounds, target);
        return Ok(());
    }
    if cfg!(debug_assertions) {
        eprintln!("warning: a debug build; run with --release for numbers worth reading");
    }
    let only = arg("--scenario");
    let mut all = Vec::new();
    for scenario in SCENARIOS {
        if only.as_deref().is_some_and(|o| o != scenario.name()) {
            continue;
        }
        let mut rows = across_processes(scenario, processes, quick)?;
        if rows.is_empty() {
            println!("\n### {}: skipped (see the message above)", scenario.name());
            continue;
        }
        // The first row is the baseline: steadfast, or the bare engine beside the executor.
        let (base_name, base) = rows
            .first()
            .map_or(("steadfast", f64::NAN), |r| (r.name, r.ns_per_call));
        println!(
            "\n### {} (median of {processes} processes × {rounds} interleaved rounds)\n",
            scenario.name()
        );
        println!("| impl | ns/call | calls/s | allocs/call | × {base_name} |");
        println!("|---|---:|---:|---:|---:|");
        for r in &rows {
            println!(
                "| {} | {:.1} | {:.0} | {:.2} | {:.2} |",
                r.name,
                r.ns_per_call,
                1e9 / r.ns_per_call,
                r.allocs_per_call,
                r.ns_per_call / base
            );
        }
        let peers = || rows.iter().filter(|r| !r.name.starts_with("steadfast"));
        if base_name == "steadfast"
            && let Some(p) = peers().min_by(|a, b| a.ns_per_call.total_cmp(&b.ns_per_call))
        {
            println!(
                "\nsteadfast / fastest peer ({}): {:.2}×",
                p.name,
                base / p.ns_per_call
            );
        } else if let Some(path) = rows.get(1) {
            println!(
                "\n{} / {base_name}: {:.2}×, +{:.1} ns",
                path.name,
                path.ns_per_call / base,
                path.ns_per_call - base
            );
        }
        if count && counted(scenario) {
            let counts = instructions(scenario, &rows);
            let base = counts.first().copied().flatten().unwrap_or(f64::NAN);
            println!("\n| impl | instructions/call | × {base_name} |");
            println!("|---|---:|---:|");
            for (r, c) in rows.iter().zip(&counts) {
                match c {
                    Some(c) => println!("| {} | {c:.0} | {:.2} |", r.name, c / base),
                    None => println!("| {} | – | – |", r.name),
                }
            }
            for (r, c) in rows.iter_mut().zip(counts) {
                r.instructions_per_call = c;
            }
        }
        all.extend(rows);
    }
    let json: Vec<_> = all
        .iter()
        .map(|r| {
            serde_json::json!({
                "scenario": r.scenario,
                "impl": r.name,
                "ns_per_call": (r.ns_per_call * 10.0).round() / 10.0,
                "allocs_per_call": (r.allocs_per_call * 100.0).round() / 100.0,
                "ops_per_sec": (1e9 / r.ns_per_call).round(),
                "instructions_per_call": r.instructions_per_call.map(f64::round),
            })
        })
        .collect();
    let path = report_path();
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    std::fs::write(&path, serde_json::to_string_pretty(&json)?)?;
    println!("\nwrote {}", path.display());
    Ok(())
}
