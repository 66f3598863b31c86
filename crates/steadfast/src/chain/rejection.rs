//! Why a custom policy refused a call: a message for people and, when the policy gives one,
//! a code for programs.

use std::fmt;
use std::sync::Arc;

/// Why a policy refused a call: a reason, and a machine-readable code when the policy gives
/// one (a client maps `quota_exceeded` to HTTP 429 without parsing the message).
///
/// # Example
/// ```
/// use steadfast::chain::Rejection;
///
/// let r = Rejection::new("tenant over quota");
/// assert_eq!((r.to_string(), r.code()), ("tenant over quota".to_owned(), None));
///
/// let r = Rejection::with_code("quota_exceeded", "tenant 7 is over its quota");
/// assert_eq!(r.code(), Some("quota_exceeded"));
/// assert_eq!(r.reason(), "tenant 7 is over its quota");
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejection {
    code: Option<Arc<str>>,
    reason: Arc<str>,
}

impl Rejection {
    /// A rejection with a reason.
    pub fn new(reason: impl Into<Arc<str>>) -> Self {
        Rejection {
            code: None,
            reason: reason.into(),
        }
    }

    /// A rejection with a machine-readable `code` (such as `"quota_exceeded"`) and a reason.
    pub fn with_code(code: impl Into<Arc<str>>, reason: impl Into<Arc<str>>) -> Self {
        Rejection {
            code: Some(code.into()),
            reason: reason.into(),
        }
    }

    /// The reason given.
    pub fn reason(&self) -> &str {
        &self.reason
    }

    /// The code given, if any.
    pub fn code(&self) -> Option<&str> {
        self.code.as_deref()
    }
}

/// The reason (the code is for programs: [`code`](Rejection::code)).
impl fmt::Display for Rejection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.reason)
    }
}

impl std::error::Error for Rejection {}
