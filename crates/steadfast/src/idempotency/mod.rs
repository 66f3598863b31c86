//! Idempotency keys: a second call with the same key gets the first call's stored result
//! instead of running the operation again.
//!
//! A plan with [`IdempotencyOptions`] (a policy file's `idempotency = { key = ["order_id"],
//! ttl = "24h" }`) makes [`KeyCall::idempotent`](crate::executor::KeyCall::idempotent) read
//! the key from the named fields of the request, and a fingerprint (SHA-256) of the whole
//! request. Then, as the IETF `Idempotency-Key` draft and Stripe do:
//!
//! - a new key runs the operation and stores its result (a success; a failure releases the
//!   key, so the caller may try again);
//! - a key whose call completed returns the stored result without running anything;
//! - a key whose call is still running is refused ([`Refusal::InFlight`]: HTTP 409);
//! - a key seen with another request is refused ([`Refusal::Mismatch`]: HTTP 422);
//! - after `ttl` the key is forgotten and new again.
//!
//! The records live in a store: `steadfast-store`'s `Idempotency` over memory, SQLite,
//! PostgreSQL or Redis implements [`IdempotencyBackend`], given to the executor with
//! [`ExecutorBuilder::idempotency`](crate::executor::ExecutorBuilder::idempotency).
//!
//! ```
//! use std::time::Duration;
//! use steadfast::idempotency::IdempotencyOptions;
//!
//! let options = IdempotencyOptions::new(["order_id"]).ttl(Duration::from_secs(3600));
//! assert!(options.validate().is_ok());
//! assert_eq!(options.lock_timeout, Duration::from_secs(300));
//! ```

#[cfg(feature = "serde")]
mod file;
#[cfg(feature = "serde")]
mod run;
#[cfg(feature = "serde")]
pub(crate) use run::{Stopped, once};

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use crate::config::{ConfigError, Problems};

/// How calls of a key are made idempotent.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct IdempotencyOptions {
    /// The request's fields whose values, together, are the idempotency key (a dotted path
    /// reaches into objects: `customer.id`).
    pub key: Vec<String>,
    /// How long a completed call's result is kept (and its key remembered). Default 24 h, the
    /// least Stripe keeps.
    pub ttl: Duration,
    /// How long a call may hold its key before another may take it over (the holder
    /// presumably died). Default 5 min; longer than any call should run.
    pub lock_timeout: Duration,
}

impl IdempotencyOptions {
    /// The key read from `fields`, results kept 24 h, locks of 5 min.
    pub fn new<S: Into<String>>(fields: impl IntoIterator<Item = S>) -> Self {
        IdempotencyOptions {
            key: fields.into_iter().map(Into::into).collect(),
            ttl: Duration::from_secs(24 * 3600),
            lock_timeout: Duration::from_secs(300),
        }
    }

    /// Sets how long results are kept.
    pub fn ttl(mut self, ttl: Duration) -> Self {
        self.ttl = ttl;
        self
    }

    /// Sets how long a call may hold its key.
    pub fn lock_timeout(mut self, lock_timeout: Duration) -> Self {
        self.lock_timeout = lock_timeout;
        self
    }

    /// Checks the options, naming each bad field.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let mut p = Problems::new("idempotency");
        self.check(&mut p);
        p.finish()
    }

    pub(crate) fn check(&self, p: &mut Problems<'_>) {
        if self.key.is_empty() {
            p.push("key", "must name at least one field of the request");
        }
        if let Some(bad) = self
            .key
            .iter()
            .find(|f| f.is_empty() || f.split('.').any(str::is_empty))
        {
            p.push("key", format!("{bad:?} is not a field path (a.b.c)"));
        }
        if self.ttl.is_zero() {
            p.push("ttl", "must be > 0, got 0ms");
        }
        if self.lock_timeout.is_zero() {
            p.push("lock_timeout", "must be > 0, got 0ms");
        }
    }
}

/// Why an idempotent call did not run (and returned no stored result).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Refusal {
    /// Another call with this key is running (HTTP 409 Conflict).
    InFlight,
    /// This key was used with another request (HTTP 422 Unprocessable Content).
    Mismatch,
    /// The request lacks a field of the key, or it is not a string, number or boolean (HTTP
    /// 400).
    MissingKey(String),
    /// The request could not be fingerprinted, or a stored result not read back.
    Invalid(String),
    /// No store to keep keys in, or it failed (fail closed: the operation did not run).
    Unavailable(String),
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Refusal::InFlight => f.write_str("a call with this idempotency key is in flight"),
            Refusal::Mismatch => {
                f.write_str("the idempotency key was used with a different request")
            }
            Refusal::MissingKey(field) => {
                write!(f, "the request has no idempotency key field `{field}`")
            }
            Refusal::Invalid(why) => write!(f, "idempotency: {why}"),
            Refusal::Unavailable(why) => write!(f, "idempotency store unavailable: {why}"),
        }
    }
}

impl std::error::Error for Refusal {}

/// A boxed future, as [`IdempotencyBackend`] returns them.
pub type IdempotencyFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// What a store found for a key.
pub enum Claim {
    /// The key is new (or its holder's lock expired): the caller holds it now and runs the
    /// operation.
    New(Box<dyn IdempotencyHold>),
    /// A call with this key completed: its stored result.
    Completed(Vec<u8>),
    /// A call with this key is running.
    InFlight,
    /// The key was used with another fingerprint.
    Mismatch,
}

impl fmt::Debug for Claim {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Claim::New(_) => f.write_str("New"),
            Claim::Completed(r) => write!(f, "Completed({} bytes)", r.len()),
            Claim::InFlight => f.write_str("InFlight"),
            Claim::Mismatch => f.write_str("Mismatch"),
        }
    }
}

/// A store of idempotency keys, as the executor uses it: implemented by `steadfast-store`'s
/// `Idempotency` (or by your own).
pub trait IdempotencyBackend: Send + Sync + 'static {
    /// Claims `key` for a request with `fingerprint` under `options`.
    fn claim<'a>(
        &'a self,
        key: &'a str,
        fingerprint: &'a str,
        options: &'a IdempotencyOptions,
    ) -> IdempotencyFuture<'a, Result<Claim, String>>;
}

/// A key held while its call runs.
pub trait IdempotencyHold: Send {
    /// Stores the result; `false` if the hold was lost (its lock expired and another call
    /// took the key over), in which case nothing was stored.
    fn complete(
        self: Box<Self>,
        result: Vec<u8>,
    ) -> IdempotencyFuture<'static, Result<bool, String>>;
    /// Releases the key without a result (the call failed: a retry may run it).
    fn abandon(self: Box<Self>) -> IdempotencyFuture<'static, ()>;
}

/// What [`KeyCall::idempotent`](crate::executor::KeyCall::idempotent) returns: the value, and
/// whether it was replayed from the store rather than computed now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Idempotent<T> {
    /// The call's result.
    pub value: T,
    /// `true`: a call with the same key completed before; this is its stored result.
    pub replayed: bool,
}

impl<T> Idempotent<T> {
    /// The value alone.
    pub fn into_inner(self) -> T {
        self.value
    }
}

/// The idempotency key of `request`: the values of `fields`, each a dotted path, joined with
/// `/` (strings as they are, numbers and booleans as JSON writes them).
///
/// ```
/// use steadfast::idempotency::key_of;
///
/// let request = serde_json::json!({"order_id": "o-42", "customer": {"id": 7}});
/// let fields = ["order_id".to_owned(), "customer.id".to_owned()];
/// assert_eq!(key_of(&request, &fields).unwrap(), "o-42/7");
/// assert!(key_of(&request, &["missing".to_owned()]).is_err());
/// ```
#[cfg(feature = "serde")]
pub fn key_of(request: &serde_json::Value, fields: &[String]) -> Result<String, Refusal> {
    let mut parts = Vec::with_capacity(fields.len());
    for field in fields {
        let value = field
            .split('.')
            .try_fold(request, |v, name| v.get(name))
            .ok_or_else(|| Refusal::MissingKey(field.clone()))?;
        parts.push(match value {
            serde_json::Value::String(s) => s.clone(),
            serde_json::Value::Number(n) => n.to_string(),
            serde_json::Value::Bool(b) => b.to_string(),
            _ => return Err(Refusal::MissingKey(field.clone())),
        });
    }
    Ok(parts.join("/"))
}

/// The fingerprint of `request`: SHA-256 (hex) of its JSON with object keys sorted, so two
/// requests equal as JSON values have one fingerprint.
///
/// ```
/// use steadfast::idempotency::fingerprint;
///
/// let a = serde_json::json!({"amount": 100, "currency": "EUR"});
/// let b: serde_json::Value = serde_json::from_str(r#"{"currency":"EUR","amount":100}"#).unwrap();
/// assert_eq!(fingerprint(&a), fingerprint(&b));
/// assert_eq!(fingerprint(&a).len(), 64);
/// ```
#[cfg(feature = "serde")]
pub fn fingerprint(request: &serde_json::Value) -> String {
    use sha2::Digest as _;
    let digest = sha2::Sha256::digest(sorted(request).to_string().as_bytes());
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

/// `value` with every object's keys inserted in order (whether or not serde_json keeps
/// insertion order in this build), so its text is canonical.
#[cfg(feature = "serde")]
fn sorted(value: &serde_json::Value) -> serde_json::Value {
    use serde_json::Value;
    match value {
        Value::Object(map) => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort();
            Value::Object(
                keys.into_iter()
                    .map(|k| (k.clone(), sorted(&map[k])))
                    .collect(),
            )
        }
        Value::Array(items) => Value::Array(items.iter().map(sorted).collect()),
        other => other.clone(),
    }
}
