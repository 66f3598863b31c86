//! gRPC status classification with server pushback (gRPC A6).
//!
//! By default `UNAVAILABLE` and `RESOURCE_EXHAUSTED` are retryable and every other code is not.
//! The `grpc-retry-pushback-ms` trailer, when present, is "how many milliseconds to wait before
//! sending a retry": the retry waits exactly that long (no jitter). A negative or unparsable value
//! means the server asks not to be retried at all: [`Outcome::Abort`].
//!
//! # Example
//! ```
//! use std::time::Duration;
//! use steadfast::classify::{grpc::{self, Code}, Outcome};
//!
//! assert_eq!(grpc::classify(Code::Unavailable, None), Outcome::RETRYABLE);
//! assert_eq!(
//!     grpc::classify(Code::ResourceExhausted, Some("250")),
//!     Outcome::retry_after(Duration::from_millis(250))
//! );
//! assert_eq!(grpc::classify(Code::Unavailable, Some("-1")), Outcome::Abort);
//! assert_eq!(grpc::classify(Code::InvalidArgument, None), Outcome::NonRetryable);
//! ```

use std::time::Duration;

use super::Outcome;

/// A gRPC status code.
///
/// # Example
/// ```
/// use steadfast::classify::grpc::Code;
///
/// assert_eq!(Code::from_i32(14), Some(Code::Unavailable));
/// assert_eq!(Code::Unavailable as i32, 14);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(i32)]
#[allow(missing_docs)]
pub enum Code {
    Ok = 0,
    Cancelled = 1,
    Unknown = 2,
    InvalidArgument = 3,
    DeadlineExceeded = 4,
    NotFound = 5,
    AlreadyExists = 6,
    PermissionDenied = 7,
    ResourceExhausted = 8,
    FailedPrecondition = 9,
    Aborted = 10,
    OutOfRange = 11,
    Unimplemented = 12,
    Internal = 13,
    Unavailable = 14,
    DataLoss = 15,
    Unauthenticated = 16,
}

impl Code {
    const ALL: [Code; 17] = [
        Code::Ok,
        Code::Cancelled,
        Code::Unknown,
        Code::InvalidArgument,
        Code::DeadlineExceeded,
        Code::NotFound,
        Code::AlreadyExists,
        Code::PermissionDenied,
        Code::ResourceExhausted,
        Code::FailedPrecondition,
        Code::Aborted,
        Code::OutOfRange,
        Code::Unimplemented,
        Code::Internal,
        Code::Unavailable,
        Code::DataLoss,
        Code::Unauthenticated,
    ];

    /// The code named as gRPC writes it (`UNAVAILABLE`, `RESOURCE_EXHAUSTED`), in any case.
    ///
    /// ```
    /// use steadfast::classify::grpc::Code;
    ///
    /// assert_eq!(Code::from_name("unavailable"), Some(Code::Unavailable));
    /// assert_eq!(Code::from_name("DEADLINE_EXCEEDED"), Some(Code::DeadlineExceeded));
    /// ```
    pub fn from_name(name: &str) -> Option<Code> {
        Code::ALL
            .into_iter()
            .find(|c| c.name().eq_ignore_ascii_case(name))
    }

    /// The name gRPC gives the code (`UNAVAILABLE`).
    pub const fn name(self) -> &'static str {
        match self {
            Code::Ok => "OK",
            Code::Cancelled => "CANCELLED",
            Code::Unknown => "UNKNOWN",
            Code::InvalidArgument => "INVALID_ARGUMENT",
            Code::DeadlineExceeded => "DEADLINE_EXCEEDED",
            Code::NotFound => "NOT_FOUND",
            Code::AlreadyExists => "ALREADY_EXISTS",
            Code::PermissionDenied => "PERMISSION_DENIED",
            Code::ResourceExhausted => "RESOURCE_EXHAUSTED",
            Code::FailedPrecondition => "FAILED_PRECONDITION",
            Code::Aborted => "ABORTED",
            Code::OutOfRange => "OUT_OF_RANGE",
            Code::Unimplemented => "UNIMPLEMENTED",
            Code::Internal => "INTERNAL",
            Code::Unavailable => "UNAVAILABLE",
            Code::DataLoss => "DATA_LOSS",
            Code::Unauthenticated => "UNAUTHENTICATED",
        }
    }

    /// The code for a wire value, if it is one of the 17.
    pub fn from_i32(value: i32) -> Option<Code> {
        usize::try_from(value)
            .ok()
            .and_then(|i| Code::ALL.get(i).copied())
    }
}

/// What the server's pushback trailer asks for.
///
/// # Example
/// ```
/// use std::time::Duration;
/// use steadfast::classify::grpc::{parse_pushback, Pushback};
///
/// assert_eq!(parse_pushback("250"), Pushback::RetryAfter(Duration::from_millis(250)));
/// assert_eq!(parse_pushback("-1"), Pushback::DoNotRetry);
/// assert_eq!(parse_pushback("soon"), Pushback::DoNotRetry);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pushback {
    /// Retry after exactly this delay.
    RetryAfter(Duration),
    /// Do not retry (a negative or unparsable value).
    DoNotRetry,
}

/// Parses a `grpc-retry-pushback-ms` value: a signed 32-bit decimal integer.
pub fn parse_pushback(value: &str) -> Pushback {
    match value.trim().parse::<i32>() {
        Ok(ms) if ms >= 0 => Pushback::RetryAfter(Duration::from_millis(ms as u64)),
        _ => Pushback::DoNotRetry,
    }
}

/// Which codes are retried.
///
/// # Example
/// ```
/// use steadfast::classify::grpc::{Code, GrpcRules};
///
/// let rules = GrpcRules::new().retryable(&[Code::Unavailable, Code::Aborted]);
/// assert!(rules.classify(Code::Aborted, None).is_retryable());
/// assert!(!rules.classify(Code::ResourceExhausted, None).is_retryable());
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GrpcRules {
    retryable: u32,
}

impl Default for GrpcRules {
    fn default() -> Self {
        GrpcRules::new()
    }
}

impl GrpcRules {
    /// `UNAVAILABLE` and `RESOURCE_EXHAUSTED` are retryable.
    pub const fn new() -> Self {
        GrpcRules {
            retryable: (1 << Code::Unavailable as u32) | (1 << Code::ResourceExhausted as u32),
        }
    }

    /// Replaces the set of retryable codes (gRPC's `retryableStatusCodes`).
    pub fn retryable(mut self, codes: &[Code]) -> Self {
        self.retryable = codes.iter().fold(0, |set, c| set | (1 << *c as u32));
        self
    }

    /// The outcome for a status code and its pushback trailer, if any.
    pub fn classify(&self, code: Code, pushback: Option<&str>) -> Outcome {
        if code == Code::Ok {
            return Outcome::Success;
        }
        let after = match pushback.map(parse_pushback) {
            Some(Pushback::DoNotRetry) => return Outcome::Abort,
            Some(Pushback::RetryAfter(d)) => Some(d),
            None => None,
        };
        if self.retryable & (1 << code as u32) != 0 {
            Outcome::Retryable { after }
        } else {
            Outcome::NonRetryable
        }
    }
}

/// The outcome for a status code and pushback under the default rules.
pub fn classify(code: Code, pushback: Option<&str>) -> Outcome {
    GrpcRules::new().classify(code, pushback)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_round_trip() {
        for (i, c) in Code::ALL.iter().enumerate() {
            assert_eq!(Code::from_i32(i as i32), Some(*c));
        }
        assert_eq!(Code::from_i32(17), None);
        assert_eq!(Code::from_i32(-1), None);
    }

    #[test]
    fn pushback_forms() {
        assert_eq!(parse_pushback("0"), Pushback::RetryAfter(Duration::ZERO));
        assert_eq!(
            parse_pushback("2147483647"),
            Pushback::RetryAfter(Duration::from_millis(2_147_483_647))
        );
        assert_eq!(parse_pushback("2147483648"), Pushback::DoNotRetry);
        assert_eq!(parse_pushback("-250"), Pushback::DoNotRetry);
        assert_eq!(parse_pushback(""), Pushback::DoNotRetry);
        assert_eq!(classify(Code::Ok, Some("-1")), Outcome::Success);
        assert_eq!(classify(Code::Internal, Some("100")), Outcome::NonRetryable);
    }
}
