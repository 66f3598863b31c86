//! Runnable examples for steadfast (see the `[[example]]` targets), and the pieces they share
//! with this crate's tests.

pub mod http;
pub mod prometheus;
