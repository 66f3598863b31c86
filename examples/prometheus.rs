//! steadfast's metrics exported in Prometheus' text format: a flaky key and a failing key,
//! then what a scrape reads.
//!
//! Run with `cargo run --example prometheus`.

fn main() {
    print!(
        "{}",
        steadfast_examples::prometheus::scrape_after_some_calls()
    );
}
