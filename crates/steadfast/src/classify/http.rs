//! HTTP status classification with `Retry-After` (RFC 9110 §10.2.3, RFC 6585).
//!
//! | status | outcome |
//! |---|---|
//! | 1xx, 2xx, 3xx | success (the call returns; redirects are the client's business) |
//! | 408, 429, 502, 503, 504 | retryable, after `Retry-After` when the response carries one |
//! | 500 | not retryable unless [`HttpRules::retry_500`] is on |
//! | other 4xx and 5xx | not retryable |
//!
//! `Retry-After` is read in both forms: delay-seconds (`120`) and HTTP-date
//! (`Fri, 31 Dec 1999 23:59:59 GMT`, plus the obsolete RFC 850 and asctime forms). A date in the
//! past means "now"; an unparsable value is ignored (the computed backoff applies).
//!
//! # Example
//! ```
//! use std::time::Duration;
//! use steadfast::classify::{http, Outcome};
//!
//! assert_eq!(http::response(503, Some("120")), Outcome::retry_after(Duration::from_secs(120)));
//! assert_eq!(http::response(404, Some("120")), Outcome::NonRetryable);
//! assert_eq!(http::status(500), Outcome::NonRetryable);
//! assert_eq!(http::HttpRules::new().retry_500(true).status(500), Outcome::RETRYABLE);
//! ```

use std::time::{Duration, SystemTime};

use super::Outcome;

/// Which statuses are retried; the defaults follow the table in the [module docs](self).
///
/// # Example
/// ```
/// use steadfast::classify::http::HttpRules;
///
/// let rules = HttpRules::new().retry_500(true);
/// assert!(rules.status(500).is_retryable());
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct HttpRules {
    /// Retry 500 Internal Server Error (off by default: it often means a bug, not a blip).
    pub retry_500: bool,
}

impl HttpRules {
    /// The default rules.
    pub const fn new() -> Self {
        HttpRules { retry_500: false }
    }

    /// Retries 500 too.
    pub const fn retry_500(mut self, on: bool) -> Self {
        self.retry_500 = on;
        self
    }

    /// The outcome for a status code, ignoring any `Retry-After`.
    pub const fn status(&self, code: u16) -> Outcome {
        match code {
            100..=399 => Outcome::Success,
            408 | 429 | 502 | 503 | 504 => Outcome::RETRYABLE,
            500 if self.retry_500 => Outcome::RETRYABLE,
            _ => Outcome::NonRetryable,
        }
    }

    /// The outcome for a response: its status, and its `Retry-After` header value if any.
    pub fn response(&self, code: u16, retry_after: Option<&str>) -> Outcome {
        self.response_at(code, retry_after, SystemTime::now())
    }

    /// As [`response`](Self::response), reading an HTTP-date against `now`.
    pub fn response_at(&self, code: u16, retry_after: Option<&str>, now: SystemTime) -> Outcome {
        match self.status(code) {
            Outcome::Retryable { .. } => Outcome::Retryable {
                after: retry_after.and_then(|v| parse_retry_after(v, now)),
            },
            other => other,
        }
    }
}

/// The outcome for a status code under the default rules.
pub const fn status(code: u16) -> Outcome {
    HttpRules::new().status(code)
}

/// The outcome for a response under the default rules, honouring `Retry-After`.
pub fn response(code: u16, retry_after: Option<&str>) -> Outcome {
    HttpRules::new().response(code, retry_after)
}

/// Parses a `Retry-After` value: delay-seconds or an HTTP-date (read against `now`).
///
/// Returns `None` for a value in neither form. A date in the past gives zero.
///
/// # Example
/// ```
/// use std::time::{Duration, UNIX_EPOCH};
/// use steadfast::classify::http::parse_retry_after;
///
/// let now = UNIX_EPOCH + Duration::from_secs(946_684_799 - 30); // 30 s before the date below
/// assert_eq!(parse_retry_after("120", now), Some(Duration::from_secs(120)));
/// assert_eq!(
///     parse_retry_after("Fri, 31 Dec 1999 23:59:59 GMT", now),
///     Some(Duration::from_secs(30))
/// );
/// assert_eq!(parse_retry_after("soon", now), None);
/// ```
pub fn parse_retry_after(value: &str, now: SystemTime) -> Option<Duration> {
    let value = value.trim();
    if !value.is_empty() && value.bytes().all(|b| b.is_ascii_digit()) {
        // 1*DIGIT; absurdly long values saturate (and are then refused by the cap).
        let secs = value.parse::<u64>().unwrap_or(u64::MAX);
        return Some(Duration::from_secs(secs));
    }
    let at = httpdate::parse_http_date(value).ok()?;
    Some(at.duration_since(now).unwrap_or(Duration::ZERO))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::UNIX_EPOCH;

    #[test]
    fn statuses() {
        for code in [200, 204, 301, 304] {
            assert_eq!(status(code), Outcome::Success, "{code}");
        }
        for code in [408, 429, 502, 503, 504] {
            assert_eq!(status(code), Outcome::RETRYABLE, "{code}");
        }
        for code in [400, 401, 403, 404, 409, 422, 500, 501, 505] {
            assert_eq!(status(code), Outcome::NonRetryable, "{code}");
        }
    }

    #[test]
    fn retry_after_forms() {
        let now = UNIX_EPOCH + Duration::from_secs(784_111_777); // Sun, 06 Nov 1994 08:49:37 GMT
        assert_eq!(parse_retry_after(" 0 ", now), Some(Duration::ZERO));
        for date in [
            "Sun, 06 Nov 1994 08:51:37 GMT",
            "Sunday, 06-Nov-94 08:51:37 GMT",
            "Sun Nov  6 08:51:37 1994",
        ] {
            assert_eq!(
                parse_retry_after(date, now),
                Some(Duration::from_secs(120)),
                "{date}"
            );
        }
        assert_eq!(
            parse_retry_after("Sun, 06 Nov 1994 08:00:00 GMT", now),
            Some(Duration::ZERO)
        );
        assert_eq!(parse_retry_after("-5", now), None);
        assert_eq!(parse_retry_after("1.5", now), None);
        assert_eq!(parse_retry_after("", now), None);
        assert_eq!(
            parse_retry_after("99999999999999999999999", now),
            Some(Duration::from_secs(u64::MAX))
        );
    }
}
