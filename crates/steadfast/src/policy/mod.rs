//! Policies by key: which [`Retry`](crate::Retry) a call site's key resolves to.
//!
//! A [`Policies`] table holds the defaults and any number of tables for patterns
//! ([`Pattern`](crate::key::Pattern)): exact keys (`payments.Charge`) and namespaces (`payments.*`). A key resolves
//! to its exact table, else the longest matching namespace, else the defaults.
//!
//! # Example
//! ```
//! use std::time::Duration;
//! use steadfast::policy::{Policies, Source};
//! use steadfast::Retry;
//!
//! let policies = Policies::new(Retry::default())
//!     .with("payments.*", Retry::exponential(Duration::from_millis(200)).max_attempts(5).build()?)?
//!     .with("payments.Charge", Retry::immediate().max_attempts(2).build()?)?;
//!
//! assert_eq!(policies.resolve("payments.Charge").source(), Source::Exact);
//! assert_eq!(policies.resolve("payments.Refund").source(), Source::Namespace("payments"));
//! assert_eq!(policies.resolve("search.Query").source(), Source::Default);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! With the `serde` feature, policies also come from files ([`PolicyDocument`]) and, with
//! `watch` or `http`, from providers an executor follows (see the guide below).
#![cfg_attr(feature = "serde", doc = include_str!("../../docs/policies.md"))]

#[cfg(feature = "serde")]
mod file;
#[cfg(feature = "serde")]
pub use file::{
    Diagnostic, Diagnostics, Explanation, Format, Imported, MAX_DOCUMENT_BYTES, Origin,
    PolicyDocument, Position, TableSpec, read_to_string,
};

#[cfg(any(feature = "watch", feature = "http"))]
pub(crate) mod provider;
#[cfg(feature = "watch")]
pub use provider::{DEFAULT_DEBOUNCE, FileProvider};
#[cfg(feature = "http")]
pub use provider::{DEFAULT_INTERVAL, DEFAULT_TIMEOUT, HttpProvider};
#[cfg(any(feature = "watch", feature = "http"))]
pub use provider::{Following, Layered, Provider, StaticProvider, Update, UpdateKind, Updates};

/// Formats a duration the way policy files write it: `0ms`, `250ms`, `1.5s`, `2m`, `1h30m`
/// (read back exactly by [`parse_duration`]).
///
/// ```
/// use std::time::Duration;
///
/// assert_eq!(steadfast::policy::format_duration(Duration::from_secs(90)), "1m30s");
/// ```
pub fn format_duration(d: std::time::Duration) -> String {
    crate::config::fmt_duration(d)
}

/// Parses a duration as policy files write it: `<number><unit>` parts with units `ns`, `us`,
/// `ms`, `s`, `m`, `h`, the number possibly with a fraction (`250ms`, `1.5s`, `1m30s`), exactly.
///
/// ```
/// use std::time::Duration;
/// use steadfast::policy::parse_duration;
///
/// assert_eq!(parse_duration("1m30s"), Ok(Duration::from_secs(90)));
/// assert_eq!(parse_duration("0.1s"), Ok(Duration::from_millis(100)));
/// assert!(parse_duration("90").is_err());
/// ```
pub fn parse_duration(text: &str) -> Result<std::time::Duration, String> {
    crate::config::parse_duration(text)
}

/// The JSON Schema (2020-12) of a policy file, for editors (feature `schema`): every table,
/// strategy and field with its type, range and description; unknown fields refused.
///
/// ```
/// let schema = steadfast::policy::json_schema();
/// assert_eq!(schema["title"], "PolicyFile");
/// assert_eq!(schema["$defs"]["Retry"]["additionalProperties"], false);
/// ```
#[cfg(feature = "schema")]
pub fn json_schema() -> serde_json::Value {
    let mut schema = schemars::schema_for!(PolicyDocument).to_value();
    if let Some(obj) = schema.as_object_mut() {
        obj.insert(
            "description".into(),
            "A steadfast policy file: [defaults] and tables by pattern (an exact key `ns.Name`, a namespace `ns.*`, or `*`). A key resolves to its exact table, else the longest matching namespace, else the defaults; a strategy a table does not name is inherited from the next table down.".into(),
        );
    }
    schema
}

mod plan;
mod policies;

#[cfg(feature = "serde")]
#[cfg(feature = "serde")]
pub(crate) use file::TableField;
#[cfg(feature = "serde")]
pub(crate) use plan::NOT_IDEMPOTENT;
pub use plan::{Plan, Scoped};
pub use policies::{Policies, PolicyError, Resolved, Source};
