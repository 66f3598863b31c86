//! Policy-driven resilience for Rust: retries, backoff, classification and timeouts under one
//! engine, with one set of semantics for async and blocking code.
//!
//! Why one engine: services grow a dozen hand-rolled retry loops, each with its own idea of
//! backoff, deadlines and which errors are worth another try. steadfast makes the policy data
//! ([`RetryOptions`]), compiles it once ([`Retry`]) and runs every call through the same engine,
//! so "how do we call this when it fails?" is decided in one place.
//!
//! # Quick start
//! ```
//! use std::time::Duration;
//! use steadfast::{Jitter, Retry};
//!
//! # #[tokio::main(flavor = "current_thread", start_paused = true)]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! # async fn fetch_balance() -> Result<u64, std::io::Error> { Ok(7) }
//! // The one-line default: a key, and the policy the process-wide executor has for it
//! // (3 attempts, exponential 100 ms → 10 s, full jitter, until policies say otherwise).
//! let balance = steadfast::run("accounts.Balance", || fetch_balance()).await?;
//!
//! // A policy of your own, built once and shared.
//! let retry = Retry::exponential(Duration::from_millis(200))
//!     .max_attempts(5)
//!     .jitter(Jitter::Equal)
//!     .attempt_timeout(Duration::from_secs(2))
//!     .total_timeout(Duration::from_secs(20))
//!     .build()?;
//! let balance = retry
//!     .call(|| fetch_balance())
//!     .classify(steadfast::classify::ByTrait) // io::Error knows which kinds are transient
//!     .on_retry(|r| eprintln!("attempt {} failed; next in {:?}", r.attempt(), r.delay()))
//!     .run()
//!     .await?;
//! # let _ = balance;
//! # Ok(()) }
//! ```
//!
//! # Policies decide, call sites name a key
//! An [`Executor`] holds [`Policies`](policy::Policies) by key pattern; a call names its key
//! and [`Executor::call`] returns one builder for everything a call may add (a classifier,
//! properties for the chain, a fallback, the durable gate, an idempotency key, a timeline,
//! hooks, a cancellation signal). A policy file says which failures are worth retrying with
//! `classify = "http"` (or `"grpc"`, `"io"`, `"always"`, `"never"`, or a name registered in
//! the [`Registry`](chain::Registry)), so the call site needs no classifier:
//!
//! ```toml
//! [defaults.retry]
//! max_attempts = 3
//!
//! [policies."payments.*"]
//! classify = "http"                  # 429 and 5xx retry (honouring Retry-After); 400 does not
//! retry = { base = "50ms", max_attempts = 4 }
//! breaker = { kind = "consecutive", failure_threshold = 5, break = "30s" }
//! ```
//!
//! ```
//! use steadfast::{Executor, Retry, policy::Policies};
//!
//! # #[tokio::main(flavor = "current_thread", start_paused = true)]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! # async fn charge() -> Result<u32, std::io::Error> { Ok(7) }
//! let executor = Executor::new(Policies::new(Retry::default()));
//! let mut timeline = steadfast::observe::Timeline::default();
//! let receipt = executor
//!     .call("payments.Charge", || charge())
//!     .timeline(&mut timeline)
//!     .run()
//!     .await?;
//! assert_eq!((receipt, timeline.attempts().len()), (7, 1));
//! # Ok(()) }
//! ```
//!
//! # Modules
//! - [`retry`](mod@retry): the policy, the async and blocking engines, hooks and loops.
//! - [`backoff`]: fixed, linear, exponential, fibonacci, decorrelated and custom schedules,
//!   jitter modes, and the reusable [`Backoff`] for reconnect loops.
//! - [`classify`]: success / retryable / non-retryable / abort, with built-ins for I/O, HTTP
//!   (`Retry-After`) and gRPC (pushback), and the classifiers policies name.
//! - [`executor`](mod@executor): calls by key, the call builder, [`Handle`]s.
//! - [`policy`]: plans by key pattern, policy files (TOML, YAML, JSON) and providers.
//! - [`key`]: keys (`"payments.Charge"`) and the patterns that match them.
//! - [`breaker`]: circuit breakers (consecutive, failure rate and slow calls, adaptive) that
//!   see every attempt; [`limit`]: bulkhead and rate limiter; [`fallback`]: a value in place
//!   of chosen failures; [`hedge`]: hedged attempts; [`budget`]: retry budgets and adaptive
//!   throttling.
//! - [`chain`]: custom strategies registered by name, run in order around the call.
//! - [`gate`]: the durable retry gate's vocabulary; [`idempotency`]: idempotency keys' (the
//!   stores are in `steadfast-store`).
//! - [`observe`]: events, observers and timelines (with `metrics` and `tracing` behind
//!   features); `tower` (feature `tower`): a layer for any tower `Service`; `tonic` (feature
//!   `tonic`): a layer for tonic channels with gRPC's retry rules.
#![forbid(unsafe_code)]
#![deny(missing_docs)]
#![warn(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
#![doc(test(attr(deny(warnings), allow(dead_code, unused_variables))))]

pub mod backoff;
pub mod breaker;
pub mod budget;
pub mod chain;
pub mod classify;
mod config;
mod error;
pub mod executor;
pub mod fallback;
pub mod gate;
pub mod hedge;
pub mod idempotency;
pub mod key;
pub mod limit;
#[cfg(any(feature = "metrics", feature = "otel"))]
mod measure;
pub mod observe;
pub mod policy;
pub mod retry;
#[cfg(feature = "tonic")]
pub mod tonic;
#[cfg(feature = "tower")]
pub mod tower;

/// Runs a function's body under a retry policy (feature `macros`).
///
/// On `async` and plain functions returning `Result<T, E>`; the return type becomes
/// `Result<T, steadfast::Error<E>>`. Each attempt gets clones of the arguments (references
/// clone freely, owned values must be `Clone`).
///
/// - `#[steadfast::retry("svc.Method")]`: the key's plan in the process-wide [`executor()`].
/// - `#[steadfast::retry(max_attempts = 5, backoff = "exponential", base = "100ms")]`: a
///   policy from options (`max_attempts`, `backoff`, `base`, `max`, `factor`, `jitter`,
///   `attempt_timeout`, `total_timeout`), checked at compile time: a bad value is an error
///   pointing at it.
///
/// ```
/// #[steadfast::retry("inventory.Reserve")]
/// async fn reserve(sku: &str, quantity: u32) -> Result<u32, std::io::Error> {
///     Ok(quantity)
/// }
///
/// #[steadfast::retry(max_attempts = 3, backoff = "fixed", base = "10ms", jitter = "none")]
/// fn parse(input: &str) -> Result<u32, std::num::ParseIntError> {
///     input.parse()
/// }
///
/// # #[tokio::main(flavor = "current_thread", start_paused = true)]
/// # async fn main() {
/// assert_eq!(reserve("A-1", 3).await.unwrap(), 3);
/// assert_eq!(parse("42").unwrap(), 42);
/// assert_eq!(parse("x").unwrap_err().attempts(), 3);
/// # }
/// ```
#[cfg(feature = "macros")]
pub use steadfast_macros::retry;

use std::future::Future;

pub use backoff::{Backoff, BackoffOptions, Jitter};
pub use classify::{Classifier, Classify, Outcome};
pub use config::{ConfigError, FieldError};
pub use error::{Error, ErrorKind, Stop, TimeoutScope};
pub use executor::{Attempt, Executor, ExecutorBuilder, Handle};
pub use key::{Key, KeyError, KeyProblem};
pub use retry::{Retry, RetryOptions};

/// The process-wide executor behind [`run`] and [`run_blocking`]: default policies
/// ([`Retry::DEFAULT`] for every key) until [`Executor::set_policies`] replaces them.
///
/// # Example
/// ```
/// use std::time::Duration;
/// use steadfast::{policy::Policies, Retry};
///
/// steadfast::executor().set_policies(
///     Policies::default().with("payments.*", Retry::fixed(Duration::from_millis(50)).build()?)?,
/// );
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn executor() -> &'static Executor {
    static DEFAULT: std::sync::OnceLock<Executor> = std::sync::OnceLock::new();
    DEFAULT.get_or_init(Executor::default)
}

/// Runs `op` under the plan of `key` in the process-wide [`executor()`]: by default 3 attempts,
/// exponential backoff from 100 ms to 10 s with full jitter, every error retried.
///
/// # Example
/// ```
/// # #[tokio::main(flavor = "current_thread", start_paused = true)]
/// # async fn main() {
/// let mut tries = 0;
/// let answer = steadfast::run("svc.Answer", || {
///     tries += 1;
///     let t = tries;
///     async move { if t < 2 { Err("flaky") } else { Ok(42) } }
/// })
/// .await;
/// assert_eq!(answer.unwrap(), 42);
/// # }
/// ```
#[inline]
pub fn run<F, Fut, T, E>(key: &str, op: F) -> impl Future<Output = Result<T, Error<E>>>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, E>>,
    T: 'static,
    E: 'static,
{
    executor().run(key, op)
}

/// The blocking mirror of [`run`].
///
/// # Example
/// ```
/// let answer = steadfast::run_blocking("svc.Answer", || Ok::<_, std::io::Error>(42));
/// assert_eq!(answer.unwrap(), 42);
/// ```
pub fn run_blocking<F, T, E>(key: &str, op: F) -> Result<T, Error<E>>
where
    F: FnMut() -> Result<T, E>,
    T: 'static,
    E: 'static,
{
    executor().call_blocking(key, op).run()
}
