//! Classification a policy names: `classify = "http"` in a policy file, or
//! [`Plan::classify`](crate::policy::Plan::classify) in code, applied to every call of the key
//! with no classifier at the call site.
//!
//! A call's result types are known only at the call site, so a policy's classifier reads them
//! at run time, by type:
//!
//! | name | reads | rules |
//! |---|---|---|
//! | `always` (the default) | any error | every error is retried |
//! | `never` | any error | no error is retried |
//! | `io` | [`std::io::Error`] (also inside a `Box<dyn Error>`'s sources) | [`io`](super::io) |
//! | `http` | `http::Response<B>` and `http::StatusCode` as `Ok` or `Err` (feature `http-types`), `reqwest::Error` (feature `http`), I/O errors | [`http`](super::http), with `Retry-After` |
//! | `grpc` | `grpc-status` and `grpc-retry-pushback-ms` in an `http::Response<B>`'s headers, [`Code`] as an error, I/O errors | [`grpc`](super::grpc) |
//!
//! `http::Response<B>` is read for the bodies `()`, `String`, `Vec<u8>`, `&'static str` and
//! `bytes::Bytes`; [`PolicyClassifier::http_body`] (or [`Registry::http_body`]) adds another.
//! An error type of your own is read through its [`Classify`] implementation once registered
//! with [`PolicyClassifier::error`] (or [`Registry::error`]); a classifier of your own, by name,
//! with [`Registry::classifier`].
//!
//! An `Ok` a classifier cannot read is a success. An **error** it cannot read is not retried
//! (the conservative choice: an unknown failure may not be safe to repeat), and the executor
//! reports it once per type as [`PolicyEvent::Unreadable`](crate::observe::PolicyEvent).
//!
//! # Example
//! ```
//! use std::io;
//! use steadfast::classify::{Outcome, PolicyClassifier};
//!
//! let io = PolicyClassifier::io();
//! let reset = io::Error::from(io::ErrorKind::ConnectionReset);
//! assert_eq!(io.read(Err(&reset)), Some(Outcome::RETRYABLE));
//! assert_eq!(io.read(Err(&"a string error")), None); // cannot read it: not retried
//! assert_eq!(io.read(Ok(&42u32)), Some(Outcome::Success));
//! ```
//!
//! [`Registry::http_body`]: crate::chain::Registry::http_body
//! [`Registry::error`]: crate::chain::Registry::error
//! [`Registry::classifier`]: crate::chain::Registry::classifier

use std::any::{Any, TypeId};
use std::fmt;
use std::sync::{Arc, Mutex, PoisonError};

use super::grpc::{Code, GrpcRules};
use super::{Classifier, Classify, Outcome};
use crate::config::{ConfigError, Problems};

/// The names of the built-in classifiers.
pub const BUILT_IN: [&str; 5] = ["always", "never", "io", "http", "grpc"];

/// The statuses the `http` classifier retries unless `statuses` says otherwise.
pub const DEFAULT_HTTP_STATUSES: [u16; 5] = [408, 429, 502, 503, 504];

/// A policy's classifier as written: a name and, for the built-ins that have them, options.
///
/// In a policy file: `classify = "http"`, or a table with `kind` and options:
///
/// ```toml
/// classify = { kind = "http", statuses = [429, 503], timeouts = false }
/// classify = { kind = "grpc", codes = ["UNAVAILABLE", "ABORTED"] }
/// classify = { kind = "io", timeouts = false }
/// classify = "tenant_errors"   # registered in the Registry
/// ```
///
/// # Example
/// ```
/// use steadfast::classify::ClassifyOptions;
///
/// let options = ClassifyOptions::new("http").statuses([429, 503]);
/// assert!(options.validate().is_ok());
/// let wrong = ClassifyOptions::new("io").statuses([503]);
/// assert_eq!(wrong.validate().unwrap_err().to_string(), "classify.statuses: applies only to kind \"http\", not \"io\"");
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct ClassifyOptions {
    /// The classifier's name: a built-in ([`BUILT_IN`]) or one registered in the `Registry`.
    pub kind: String,
    /// `http`: the statuses retried (400 to 599); default [`DEFAULT_HTTP_STATUSES`].
    pub statuses: Option<Vec<u16>>,
    /// `grpc`: the codes retried, by name (`UNAVAILABLE`); default `UNAVAILABLE` and
    /// `RESOURCE_EXHAUSTED`.
    pub codes: Option<Vec<String>>,
    /// `io`, `http`, `grpc`: whether a timed-out I/O error (or client timeout) is retried;
    /// default true.
    pub timeouts: Option<bool>,
}

impl ClassifyOptions {
    /// The classifier named `kind`, with its defaults.
    pub fn new(kind: impl Into<String>) -> Self {
        ClassifyOptions {
            kind: kind.into(),
            ..ClassifyOptions::default()
        }
    }

    /// The statuses retried (`http`).
    pub fn statuses(mut self, statuses: impl IntoIterator<Item = u16>) -> Self {
        self.statuses = Some(statuses.into_iter().collect());
        self
    }

    /// The codes retried (`grpc`).
    pub fn codes<S: Into<String>>(mut self, codes: impl IntoIterator<Item = S>) -> Self {
        self.codes = Some(codes.into_iter().map(Into::into).collect());
        self
    }

    /// Whether timeouts are retried (`io`, `http`, `grpc`).
    pub fn timeouts(mut self, on: bool) -> Self {
        self.timeouts = Some(on);
        self
    }

    /// Whether only `kind` is set (the file writes it as a plain name).
    pub fn is_plain(&self) -> bool {
        self.statuses.is_none() && self.codes.is_none() && self.timeouts.is_none()
    }

    /// Every problem of the options (an unknown name is found where a registry is at hand).
    pub fn validate(&self) -> Result<(), ConfigError> {
        let mut p = Problems::new("classify");
        self.check(&mut p);
        p.finish()
    }

    pub(crate) fn check(&self, p: &mut Problems<'_>) {
        let kind = self.kind.as_str();
        if kind.is_empty() {
            p.push("kind", "must not be empty");
        }
        let only = |p: &mut Problems<'_>, field: &str, kinds: &[&str]| {
            if !kinds.contains(&kind) {
                let names: Vec<String> = kinds.iter().map(|k| format!("{k:?}")).collect();
                p.push(
                    field,
                    format!("applies only to kind {}, not {kind:?}", names.join(" or ")),
                );
            }
        };
        if let Some(statuses) = &self.statuses {
            only(p, "statuses", &["http"]);
            if let Some(bad) = statuses.iter().find(|s| !(400..=599).contains(*s)) {
                p.push(
                    "statuses",
                    format!("must be failure statuses (400 to 599), got {bad}"),
                );
            }
        }
        if let Some(codes) = &self.codes {
            only(p, "codes", &["grpc"]);
            for c in codes {
                match Code::from_name(c) {
                    None => p.push(
                        "codes",
                        format!("unknown gRPC code {c:?} (e.g. \"UNAVAILABLE\")"),
                    ),
                    Some(Code::Ok) => p.push("codes", "OK is a success, not a retryable code"),
                    Some(_) => {}
                }
            }
        }
        if self.timeouts.is_some() {
            only(p, "timeouts", &["io", "http", "grpc"]);
        }
    }
}

/// A classifier of your own that a policy can name ([`Registry::classifier`](crate::chain::Registry::classifier)):
/// it reads a call's result by type and says what it is, or `None` when it cannot read it.
///
/// # Example
/// ```
/// use std::any::Any;
/// use steadfast::classify::{Outcome, ReadResult};
///
/// #[derive(Debug)]
/// enum DbError { Deadlock, Constraint }
///
/// #[derive(Debug)]
/// struct Db;
/// impl ReadResult for Db {
///     fn read(&self, result: Result<&dyn Any, &dyn Any>) -> Option<Outcome> {
///         match result {
///             Ok(_) => Some(Outcome::Success),
///             Err(e) => e.downcast_ref::<DbError>().map(|e| match e {
///                 DbError::Deadlock => Outcome::RETRYABLE,
///                 DbError::Constraint => Outcome::NonRetryable,
///             }),
///         }
///     }
/// }
/// assert_eq!(Db.read(Err(&DbError::Deadlock)), Some(Outcome::RETRYABLE));
/// ```
pub trait ReadResult: fmt::Debug + Send + Sync + 'static {
    /// The outcome of one attempt's result, or `None` if this classifier cannot read its type.
    fn read(&self, result: Result<&dyn Any, &dyn Any>) -> Option<Outcome>;
}

/// What a built-in saw in a result.
enum Seen<'a> {
    /// An HTTP status, with the `Retry-After`, `grpc-status` and pushback header values.
    #[cfg_attr(not(feature = "http-types"), allow(dead_code))]
    Http {
        status: u16,
        retry_after: Option<&'a str>,
        grpc_status: Option<&'a str>,
        pushback: Option<&'a str>,
    },
    Io(&'a std::io::Error),
    /// A client's own timeout (not an I/O error).
    #[cfg_attr(not(feature = "http"), allow(dead_code))]
    Timeout,
    Grpc(Code),
    /// The type classified itself (a registered [`Classify`] type).
    Own(Outcome),
}

/// Reads one type a built-in does not know.
type Reader = fn(&dyn Any) -> Option<Seen<'_>>;

#[derive(Debug, Clone)]
enum Rules {
    Always,
    Never,
    Io { timeouts: bool },
    Http { statuses: Vec<u16>, timeouts: bool },
    Grpc { rules: GrpcRules, timeouts: bool },
    Custom(Arc<dyn ReadResult>),
}

struct Compiled {
    options: ClassifyOptions,
    rules: Rules,
    readers: Vec<(TypeId, Reader)>,
    /// The error types already reported unreadable.
    reported: Mutex<Vec<TypeId>>,
}

/// A policy's compiled classifier: what [`Plan::classify`](crate::policy::Plan::classify)
/// holds and every call of the key applies (see the [module docs](self)). Cheap to clone.
#[derive(Clone)]
pub struct PolicyClassifier(Arc<Compiled>);

impl fmt::Debug for PolicyClassifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("PolicyClassifier")
            .field(&self.0.options)
            .finish()
    }
}

impl PartialEq for PolicyClassifier {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
            || (self.0.options == other.0.options
                && !matches!(self.0.rules, Rules::Custom(_))
                && self.0.readers.len() == other.0.readers.len()
                && self
                    .0
                    .readers
                    .iter()
                    .zip(&other.0.readers)
                    .all(|(a, b)| a.0 == b.0))
    }
}

impl Default for PolicyClassifier {
    fn default() -> Self {
        PolicyClassifier::always()
    }
}

impl PolicyClassifier {
    fn with(options: ClassifyOptions, rules: Rules) -> Self {
        PolicyClassifier(Arc::new(Compiled {
            options,
            rules,
            readers: Vec::new(),
            reported: Mutex::new(Vec::new()),
        }))
    }

    /// Every error is retried (the default).
    pub fn always() -> Self {
        Self::with(ClassifyOptions::new("always"), Rules::Always)
    }

    /// No error is retried.
    pub fn never() -> Self {
        Self::with(ClassifyOptions::new("never"), Rules::Never)
    }

    /// I/O errors by kind.
    pub fn io() -> Self {
        Self::with(ClassifyOptions::new("io"), Rules::Io { timeouts: true })
    }

    /// HTTP statuses with `Retry-After`.
    pub fn http() -> Self {
        Self::with(
            ClassifyOptions::new("http"),
            Rules::Http {
                statuses: DEFAULT_HTTP_STATUSES.to_vec(),
                timeouts: true,
            },
        )
    }

    /// gRPC codes with pushback.
    pub fn grpc() -> Self {
        Self::with(
            ClassifyOptions::new("grpc"),
            Rules::Grpc {
                rules: GrpcRules::new(),
                timeouts: true,
            },
        )
    }

    /// A classifier of your own, under `name`.
    pub fn custom(name: impl Into<String>, classifier: impl ReadResult) -> Self {
        Self::with(
            ClassifyOptions::new(name),
            Rules::Custom(Arc::new(classifier)),
        )
    }

    /// The built-in `options` names, or an error naming each problem (an unknown name too).
    pub fn built(options: &ClassifyOptions) -> Result<Self, ConfigError> {
        options.validate()?;
        let timeouts = options.timeouts.unwrap_or(true);
        let rules = match options.kind.as_str() {
            "always" => Rules::Always,
            "never" => Rules::Never,
            "io" => Rules::Io { timeouts },
            "http" => Rules::Http {
                statuses: options
                    .statuses
                    .clone()
                    .unwrap_or_else(|| DEFAULT_HTTP_STATUSES.to_vec()),
                timeouts,
            },
            "grpc" => {
                let rules = match &options.codes {
                    None => GrpcRules::new(),
                    Some(codes) => {
                        let codes: Vec<Code> =
                            codes.iter().filter_map(|c| Code::from_name(c)).collect();
                        GrpcRules::new().retryable(&codes)
                    }
                };
                Rules::Grpc { rules, timeouts }
            }
            other => {
                let mut p = Problems::new("classify");
                p.push("kind", unknown(other));
                p.finish()?;
                Rules::Always // not reached: one problem was pushed
            }
        };
        Ok(Self::with(options.clone(), rules))
    }

    /// The classifier's name.
    pub fn name(&self) -> &str {
        &self.0.options.kind
    }

    /// The options it was built from.
    pub fn options(&self) -> &ClassifyOptions {
        &self.0.options
    }

    /// Whether it retries every error (the default): calls then skip reading types.
    pub(crate) fn is_always(&self) -> bool {
        matches!(self.0.rules, Rules::Always)
    }

    fn add_reader(mut self, id: TypeId, reader: Reader) -> Self {
        let inner = Arc::make_mut(&mut self.0);
        if let Some(slot) = inner.readers.iter_mut().find(|(t, _)| *t == id) {
            slot.1 = reader;
        } else {
            inner.readers.push((id, reader));
        }
        self
    }

    /// Reads errors (and `Ok` values) of type `E` by `E`'s own [`Classify`].
    ///
    /// ```
    /// use steadfast::classify::{Classify, Outcome, PolicyClassifier};
    ///
    /// #[derive(Debug)]
    /// struct Busy;
    /// impl Classify for Busy {
    ///     fn classify(&self) -> Outcome { Outcome::RETRYABLE }
    /// }
    /// let http = PolicyClassifier::http().error::<Busy>();
    /// assert_eq!(http.read(Err(&Busy)), Some(Outcome::RETRYABLE));
    /// ```
    pub fn error<E: Classify + 'static>(self) -> Self {
        self.add_reader(TypeId::of::<E>(), |v| {
            v.downcast_ref::<E>().map(|e| Seen::Own(e.classify()))
        })
    }

    /// Reads `http::Response<B>` for a body type the built-ins do not know (feature
    /// `http-types`).
    #[cfg(feature = "http-types")]
    pub fn http_body<B: 'static>(self) -> Self {
        self.add_reader(TypeId::of::<http::Response<B>>(), |v| {
            v.downcast_ref::<http::Response<B>>().map(response)
        })
    }

    /// The outcome of an HTTP response, from its status and headers, by this classifier's
    /// rules (feature `http-types`): `http` reads the status and `Retry-After`, `grpc` the
    /// `grpc-status` and `grpc-retry-pushback-ms` headers. `None` for a classifier that does
    /// not read responses (`always`, `never`, `io`, one of your own): an HTTP client
    /// integration reads the response by its own rules then.
    ///
    /// ```
    /// use std::time::Duration;
    /// use steadfast::classify::{ClassifyOptions, Outcome, PolicyClassifier};
    ///
    /// let mut headers = http::HeaderMap::new();
    /// headers.insert("retry-after", "2".parse().unwrap());
    /// let http = PolicyClassifier::http();
    /// assert_eq!(http.read_response(503, &headers), Some(Outcome::retry_after(Duration::from_secs(2))));
    /// let only_429 = PolicyClassifier::built(&ClassifyOptions::new("http").statuses([429])).unwrap();
    /// assert_eq!(only_429.read_response(503, &headers), Some(Outcome::NonRetryable));
    /// assert_eq!(PolicyClassifier::always().read_response(503, &headers), None);
    /// ```
    #[cfg(feature = "http-types")]
    pub fn read_response(&self, status: u16, headers: &http::HeaderMap) -> Option<Outcome> {
        let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
        match &self.0.rules {
            rules @ (Rules::Http { .. } | Rules::Grpc { .. }) => Some(judge(
                rules,
                Seen::Http {
                    status,
                    retry_after: header("retry-after"),
                    grpc_status: header("grpc-status"),
                    pushback: header("grpc-retry-pushback-ms"),
                },
            )),
            _ => None,
        }
    }

    /// Whether a client's own timeout is retried: the `timeouts` option of `io`, `http` and
    /// `grpc` (default true); `always` retries it, `never` does not, and one of your own is
    /// asked through [`read`](Self::read).
    ///
    /// ```
    /// use steadfast::classify::{ClassifyOptions, PolicyClassifier};
    ///
    /// assert!(PolicyClassifier::http().retries_timeouts());
    /// let no = PolicyClassifier::built(&ClassifyOptions::new("http").timeouts(false)).unwrap();
    /// assert!(!no.retries_timeouts());
    /// ```
    pub fn retries_timeouts(&self) -> bool {
        match &self.0.rules {
            Rules::Always => true,
            Rules::Never | Rules::Custom(_) => false,
            Rules::Io { timeouts }
            | Rules::Http { timeouts, .. }
            | Rules::Grpc { timeouts, .. } => *timeouts,
        }
    }

    /// The registered readers of `other`, added to this one (a registry's types).
    pub(crate) fn with_readers_of(mut self, other: &PolicyClassifier) -> Self {
        for (id, reader) in &other.0.readers {
            self = self.add_reader(*id, *reader);
        }
        self
    }

    /// The outcome of one attempt's result, or `None` when this classifier cannot read the
    /// error's type (an `Ok` it cannot read is a success).
    pub fn read(&self, result: Result<&dyn Any, &dyn Any>) -> Option<Outcome> {
        let inner = &*self.0;
        let (value, failed) = match result {
            Ok(v) => (v, false),
            Err(e) => (e, true),
        };
        match &inner.rules {
            Rules::Custom(c) => return c.read(result),
            Rules::Always if failed => return Some(Outcome::RETRYABLE),
            Rules::Never if failed => return Some(Outcome::NonRetryable),
            Rules::Always | Rules::Never => return Some(Outcome::Success),
            _ => {}
        }
        let id = value.type_id();
        let seen = match inner.readers.iter().find(|(t, _)| *t == id) {
            Some((_, reader)) => reader(value),
            None => see(value),
        };
        match seen {
            Some(seen) => Some(judge(&inner.rules, seen)),
            None if failed => None,
            None => Some(Outcome::Success),
        }
    }

    /// Whether `id` is reported unreadable for the first time (then it never is again).
    pub(crate) fn first_unreadable(&self, id: TypeId) -> bool {
        let mut reported = self
            .0
            .reported
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if reported.contains(&id) {
            return false;
        }
        reported.push(id);
        true
    }
}

impl Clone for Compiled {
    /// A copy starts with nothing reported.
    fn clone(&self) -> Self {
        Compiled {
            options: self.options.clone(),
            rules: self.rules.clone(),
            readers: self.readers.clone(),
            reported: Mutex::new(Vec::new()),
        }
    }
}

/// The message for a classifier name that is neither built in nor registered.
pub(crate) fn unknown(name: &str) -> String {
    let best = BUILT_IN
        .iter()
        .map(|b| (crate::config::edit_distance(name, b), *b))
        .min()
        .filter(|(d, b)| *d > 0 && d * 3 <= b.len().max(3));
    match best {
        Some((_, b)) => format!(
            "unknown classifier {name:?} (did you mean {b:?}?); built in: always, never, io, http, grpc, or a name registered in the Registry"
        ),
        None => format!(
            "unknown classifier {name:?}; built in: always, never, io, http, grpc, or a name registered in the Registry"
        ),
    }
}

/// What the built-ins read of the types they know.
fn see(value: &dyn Any) -> Option<Seen<'_>> {
    if let Some(e) = value.downcast_ref::<std::io::Error>() {
        return Some(Seen::Io(e));
    }
    if let Some(c) = value.downcast_ref::<Code>() {
        return Some(Seen::Grpc(*c));
    }
    if let Some(e) = value.downcast_ref::<Box<dyn std::error::Error + Send + Sync>>() {
        return io_source(&**e);
    }
    if let Some(e) = value.downcast_ref::<Box<dyn std::error::Error>>() {
        return io_source(&**e);
    }
    #[cfg(feature = "http-types")]
    if let Some(seen) = see_http(value) {
        return Some(seen);
    }
    #[cfg(feature = "http")]
    if let Some(e) = value.downcast_ref::<reqwest::Error>() {
        return Some(if e.is_timeout() {
            Seen::Timeout
        } else if let Some(status) = e.status() {
            Seen::Http {
                status: status.as_u16(),
                retry_after: None,
                grpc_status: None,
                pushback: None,
            }
        } else if e.is_connect() {
            Seen::Own(Outcome::RETRYABLE)
        } else {
            Seen::Own(Outcome::NonRetryable)
        });
    }
    None
}

/// The first I/O error among an error and its sources.
fn io_source<'a>(e: &'a (dyn std::error::Error + 'static)) -> Option<Seen<'a>> {
    let mut next = Some(e);
    while let Some(e) = next {
        if let Some(io) = e.downcast_ref::<std::io::Error>() {
            return Some(Seen::Io(io));
        }
        next = e.source();
    }
    None
}

#[cfg(feature = "http-types")]
fn see_http(value: &dyn Any) -> Option<Seen<'_>> {
    if let Some(s) = value.downcast_ref::<http::StatusCode>() {
        return Some(Seen::Http {
            status: s.as_u16(),
            retry_after: None,
            grpc_status: None,
            pushback: None,
        });
    }
    macro_rules! bodies {
        ($($b:ty),*) => {
            $(if let Some(r) = value.downcast_ref::<http::Response<$b>>() {
                return Some(response(r));
            })*
        };
    }
    bodies!((), String, Vec<u8>, &'static str, bytes::Bytes);
    None
}

#[cfg(feature = "http-types")]
fn response<B>(r: &http::Response<B>) -> Seen<'_> {
    let header = |name: &str| r.headers().get(name).and_then(|v| v.to_str().ok());
    Seen::Http {
        status: r.status().as_u16(),
        retry_after: header("retry-after"),
        grpc_status: header("grpc-status"),
        pushback: header("grpc-retry-pushback-ms"),
    }
}

fn judge(rules: &Rules, seen: Seen<'_>) -> Outcome {
    let io = |e: &std::io::Error, timeouts: bool| {
        if e.kind() == std::io::ErrorKind::TimedOut && !timeouts {
            Outcome::NonRetryable
        } else {
            super::io::error(e)
        }
    };
    match (rules, seen) {
        (_, Seen::Own(o)) => o,
        (
            Rules::Io { timeouts } | Rules::Http { timeouts, .. } | Rules::Grpc { timeouts, .. },
            Seen::Io(e),
        ) => io(e, *timeouts),
        (
            Rules::Io { timeouts } | Rules::Http { timeouts, .. } | Rules::Grpc { timeouts, .. },
            Seen::Timeout,
        ) => {
            if *timeouts {
                Outcome::RETRYABLE
            } else {
                Outcome::NonRetryable
            }
        }
        (
            Rules::Http { statuses, .. },
            Seen::Http {
                status,
                retry_after,
                ..
            },
        ) => match status {
            100..=399 => Outcome::Success,
            s if statuses.contains(&s) => Outcome::Retryable {
                after: retry_after
                    .and_then(|v| super::http::parse_retry_after(v, std::time::SystemTime::now())),
            },
            _ => Outcome::NonRetryable,
        },
        (Rules::Http { .. }, Seen::Grpc(code)) => super::grpc::classify(code, None),
        (Rules::Grpc { rules, .. }, Seen::Grpc(code)) => rules.classify(code, None),
        (
            Rules::Grpc { rules, .. },
            Seen::Http {
                status,
                grpc_status,
                pushback,
                ..
            },
        ) => {
            let code = match grpc_status {
                Some(v) => v
                    .trim()
                    .parse()
                    .ok()
                    .and_then(Code::from_i32)
                    .unwrap_or(Code::Unknown),
                None if status == 200 => Code::Ok,
                // gRPC's mapping of HTTP statuses without a grpc-status (doc/http-grpc-status-mapping).
                None => match status {
                    400 => Code::Internal,
                    401 => Code::Unauthenticated,
                    403 => Code::PermissionDenied,
                    404 => Code::Unimplemented,
                    429 | 502 | 503 | 504 => Code::Unavailable,
                    _ => Code::Unknown,
                },
            };
            rules.classify(code, pushback)
        }
        // The io rules read nothing but I/O errors.
        (Rules::Io { .. }, Seen::Http { status, .. }) if status < 400 => Outcome::Success,
        (Rules::Io { .. }, Seen::Http { .. } | Seen::Grpc(_)) => Outcome::NonRetryable,
        (Rules::Always, _) => Outcome::RETRYABLE,
        (Rules::Never | Rules::Custom(_), _) => Outcome::NonRetryable,
    }
}

/// A policy's classifier as a call applies it: reads the call's types, and reports (once per
/// type) an error it cannot read. Made by the executor for each call.
#[derive(Clone, Copy)]
pub struct FromPolicy<'a> {
    pub(crate) policy: &'a PolicyClassifier,
    pub(crate) report: Option<&'a (dyn Fn(&'static str) + Sync)>,
}

impl fmt::Debug for FromPolicy<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("FromPolicy").field(self.policy).finish()
    }
}

impl<T: 'static, E: 'static> Classifier<T, E> for FromPolicy<'_> {
    fn classify(&self, result: &Result<T, E>) -> Outcome {
        let view = match result {
            Ok(t) => Ok(t as &dyn Any),
            Err(e) => Err(e as &dyn Any),
        };
        match self.policy.read(view) {
            Some(outcome) => outcome,
            None => {
                if let Some(report) = self.report
                    && self.policy.first_unreadable(TypeId::of::<E>())
                {
                    report(std::any::type_name::<E>());
                }
                Outcome::NonRetryable
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_names_get_a_suggestion() {
        assert!(unknown("htp").contains("did you mean \"http\""));
        assert!(!unknown("tenant").contains("did you mean"));
    }

    #[test]
    fn boxed_errors_are_read_by_their_io_source() {
        let e: Box<dyn std::error::Error + Send + Sync> =
            Box::new(std::io::Error::from(std::io::ErrorKind::ConnectionRefused));
        assert_eq!(
            PolicyClassifier::io().read(Err(&e)),
            Some(Outcome::RETRYABLE)
        );
        let timed_out = std::io::Error::from(std::io::ErrorKind::TimedOut);
        let strict = PolicyClassifier::built(&ClassifyOptions::new("io").timeouts(false)).unwrap();
        assert_eq!(strict.read(Err(&timed_out)), Some(Outcome::NonRetryable));
    }

    #[test]
    fn grpc_codes_as_errors() {
        let g = PolicyClassifier::grpc();
        assert_eq!(g.read(Err(&Code::Unavailable)), Some(Outcome::RETRYABLE));
        assert_eq!(
            g.read(Err(&Code::InvalidArgument)),
            Some(Outcome::NonRetryable)
        );
        let mine =
            PolicyClassifier::built(&ClassifyOptions::new("grpc").codes(["aborted"])).unwrap();
        assert_eq!(mine.read(Err(&Code::Aborted)), Some(Outcome::RETRYABLE));
        assert_eq!(
            mine.read(Err(&Code::Unavailable)),
            Some(Outcome::NonRetryable)
        );
    }
}
