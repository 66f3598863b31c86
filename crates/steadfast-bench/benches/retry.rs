//! Criterion benches of the retry scenarios, steadfast beside its peers.
//!
//! Run with `cargo bench -p steadfast-bench`; `compare` gives the one-table summary.

use criterion::{Criterion, criterion_group, criterion_main};
use steadfast_bench::{SCENARIOS, runners, runtime};

fn retry(c: &mut Criterion) {
    let rt = runtime();
    for scenario in SCENARIOS {
        let mut group = c.benchmark_group(scenario.name());
        for mut runner in runners(&rt, scenario) {
            group.bench_function(runner.name, |b| {
                b.iter_custom(|iters| (runner.run)(&rt, iters))
            });
        }
        group.finish();
    }
}

criterion_group!(benches, retry);
criterion_main!(benches);
