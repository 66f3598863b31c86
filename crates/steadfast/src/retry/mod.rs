//! Retry: run an operation again when it fails, by policy.
//!
//! A [`Retry`] is a compiled policy (attempts, backoff, timeouts, server-delay cap). Run an
//! operation under it with [`Retry::run`], or [`Retry::call`] to add a classifier and hooks; the
//! blocking mirrors are [`Retry::run_blocking`] and [`Retry::call_blocking`]. Both follow one
//! set of rules:
//!
//! 1. An attempt ends by its own `attempt_timeout` or the call's `total_timeout`, whichever is
//!    first. The overall deadline ends the call at once ([`ErrorKind::Timeout`](crate::ErrorKind::Timeout) with
//!    [`TimeoutScope::Total`]); an attempt's own timeout is a retryable failure.
//! 2. Its result is classified ([`classify`](crate::classify)). A success returns.
//!    A non-retryable failure or an abort returns the error.
//! 3. A retryable failure is retried unless `max_attempts` were made. The wait is the server's
//!    delay when it gave one (exactly, never shortened; more than `max_server_delay` stops
//!    instead), else the backoff's next delay.
//! 4. A retry that would start at or after the deadline is not made: the call fails now with
//!    the last error ([`Stop::Deadline`]) rather than sleep into the deadline.
//! 5. Dropping the call's future stops everything: the attempt in flight is dropped and no
//!    sleep or attempt follows.
//!
//! [`ErrorKind::Timeout`]: crate::ErrorKind::Timeout
//! [`TimeoutScope::Total`]: crate::TimeoutScope::Total
//! [`Stop::Deadline`]: crate::Stop::Deadline
//!
//! # Example
//! ```
//! use std::time::Duration;
//! use steadfast::{classify, Retry};
//!
//! # #[tokio::main(flavor = "current_thread", start_paused = true)]
//! # async fn main() {
//! let retry = Retry::exponential(Duration::from_millis(100))
//!     .max_attempts(5)
//!     .total_timeout(Duration::from_secs(10))
//!     .build()
//!     .unwrap();
//! let result = retry
//!     .call(|| async { Err::<(), _>(429u16) })
//!     .classify_error(|status| classify::http::response(*status, Some("2")))
//!     .run()
//!     .await;
//! // Waited 2 s (the server's Retry-After) four times, then ran out of attempts.
//! assert_eq!(result.unwrap_err().attempts(), 5);
//! # }
//! ```
#![doc = include_str!("../../docs/retry.md")]

mod blocking;
mod blocking_call;
mod call;
pub(crate) mod engine;
#[cfg(feature = "serde")]
pub(crate) mod file;
mod guards;
mod hedged;
mod hooks;
mod options;
mod state;

pub use blocking_call::BlockingCall;
pub use call::Call;
pub(crate) use call::{Gate, engine_run};
pub use guards::{BreakerOnly, Guarded, Guards, NoGuards};

pub use hooks::{ExhaustedHook, NoHook, OnExhausted, OnExhaustedFn, OnRetry, OnRetryFn, RetryHook};
pub use options::{DEFAULT_MAX_ATTEMPTS, DEFAULT_MAX_SERVER_DELAY, Retry, RetryOptions};
