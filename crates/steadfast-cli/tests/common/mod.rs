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
