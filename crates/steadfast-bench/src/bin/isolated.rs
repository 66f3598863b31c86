//! A first-try success in a binary of its own: steadfast, tower and the bare operation, each
//! in its own non-inlined loop, 10^7 calls, three rounds. `compare` holds every peer in one
//! binary, where code placement alone moves a 6 ns call by up to 2x; this one holds three.
//!
//! Run with `cargo run -p steadfast-bench --release --bin isolated`; for instruction counts
//! (deterministic, unlike time on a shared machine), run the built binary under
//! `valgrind --tool=callgrind` and read the inclusive cost of each `*_loop` function.

use std::future::Ready;
use std::hint::black_box;
use std::time::Instant;

use tokio::runtime::Runtime;
use tower::{Layer, Service, ServiceExt};

const CALLS: u64 = 10_000_000;

#[derive(Clone)]
struct Once;

impl tower::retry::Policy<(), u64, steadfast_bench::Fail> for Once {
    type Future = Ready<()>;
    fn retry(
        &mut self,
        _: &mut (),
        _: &mut Result<u64, steadfast_bench::Fail>,
    ) -> Option<Ready<()>> {
        None
    }
    fn clone_request(&mut self, _: &()) -> Option<()> {
        Some(())
    }
}

#[inline(never)]
fn steadfast_loop(rt: &Runtime, retry: &steadfast::Retry) -> u64 {
    rt.block_on(async {
        let mut sum = 0;
        for _ in 0..CALLS {
            sum += retry.run(steadfast_bench::op).await.unwrap_or(0);
        }
        sum
    })
}

#[inline(never)]
fn tower_loop(rt: &Runtime) -> u64 {
    let mut svc =
        tower::retry::RetryLayer::new(Once).layer(tower::service_fn(|()| steadfast_bench::op()));
    rt.block_on(async {
        let mut sum = 0;
        for _ in 0..CALLS {
            if let Ok(svc) = svc.ready().await {
                sum += svc.call(()).await.unwrap_or(0);
            }
        }
        sum
    })
}

#[inline(never)]
fn bare_loop(rt: &Runtime) -> u64 {
    rt.block_on(async {
        let mut sum = 0;
        for _ in 0..CALLS {
            sum += steadfast_bench::op().await.unwrap_or(0);
        }
        sum
    })
}

fn time(f: impl FnOnce() -> u64) -> f64 {
    let start = Instant::now();
    black_box(f());
    start.elapsed().as_nanos() as f64 / CALLS as f64
}

fn main() {
    let rt = steadfast_bench::runtime();
    let retry = steadfast::Retry::default();
    println!("| round | steadfast ns | tower ns | bare ns | steadfast / tower |");
    println!("|---|---:|---:|---:|---:|");
    for round in 1..=3 {
        let s = time(|| steadfast_loop(&rt, &retry));
        let t = time(|| tower_loop(&rt));
        let b = time(|| bare_loop(&rt));
        println!("| {round} | {s:.2} | {t:.2} | {b:.2} | {:.2} |", s / t);
    }
}
