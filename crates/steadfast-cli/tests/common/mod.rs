//! The `steadfast` binary as the tests run it.

#![allow(dead_code, unreachable_pub)]

use std::process::{Command, Output};

/// Runs `steadfast args…` from the workspace's root (where relative fixture paths start).
pub fn steadfast(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_steadfast"))
        .args(args)
        .current_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/../.."))
        .output()
        .unwrap()
}

/// What it printed.
pub fn stdout(o: &Output) -> String {
    String::from_utf8(o.stdout.clone()).unwrap()
}

/// A test service whose URL is unset: in CI (`CI` set) that fails the run; elsewhere the skip
/// is written straight to the terminal, past the test harness's capture, so it shows.
#[allow(dead_code)]
pub fn skip_service(var: &str) {
    assert!(
        std::env::var_os("CI").is_none_or(|v| v.is_empty()),
        "{var} is not set, and CI runs every service's tests"
    );
    use std::io::Write;
    let _ = writeln!(
        std::io::stderr(),
        "SKIPPED: {var} is not set; the tests on that service did not run"
    );
}
