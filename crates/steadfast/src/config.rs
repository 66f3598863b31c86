//! Configuration errors: every problem with a set of options, each naming its field.

use std::fmt;

/// Options that cannot be used, with every problem found (not just the first).
///
/// Returned by every `build()` and `new(options)` in the crate. Each [`FieldError`] names the
/// field by its path as it appears in a policy file (`retry.base`, `retry.max_attempts`), so the
/// same message serves code, files and the CLI.
///
/// # Example
/// ```
/// use std::time::Duration;
/// use steadfast::Retry;
///
/// let err = Retry::exponential(Duration::ZERO).build().unwrap_err();
/// assert_eq!(err.errors()[0].field(), "retry.base");
/// assert_eq!(err.to_string(), "retry.base: must be > 0, got 0ms");
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    errors: Vec<FieldError>,
}

impl ConfigError {
    /// Every problem found, in the order the fields were checked.
    pub fn errors(&self) -> &[FieldError] {
        &self.errors
    }

    pub(crate) fn from_errors(errors: Vec<FieldError>) -> Result<(), ConfigError> {
        if errors.is_empty() {
            Ok(())
        } else {
            Err(ConfigError { errors })
        }
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.errors.iter().enumerate() {
            if i > 0 {
                f.write_str("; ")?;
            }
            write!(f, "{e}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigError {}

/// One problem with one field of a set of options.
///
/// # Example
/// ```
/// use std::time::Duration;
/// use steadfast::Retry;
///
/// let err = Retry::exponential(Duration::from_millis(100)).factor(1.0).build().unwrap_err();
/// let field = &err.errors()[0];
/// assert_eq!(field.field(), "retry.factor");
/// assert_eq!(field.message(), "must be > 1 for exponential backoff, got 1");
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldError {
    field: String,
    message: String,
}

impl FieldError {
    pub(crate) fn new(field: impl Into<String>, message: impl Into<String>) -> Self {
        FieldError {
            field: field.into(),
            message: message.into(),
        }
    }

    /// The field's path, e.g. `retry.base`.
    pub fn field(&self) -> &str {
        &self.field
    }

    /// What is wrong with it, e.g. `must be > 0, got 0ms`.
    pub fn message(&self) -> &str {
        &self.message
    }
}

impl fmt::Display for FieldError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.field, self.message)
    }
}

/// Collects field errors under a path prefix (`retry.`), so nested options report full paths.
#[derive(Debug)]
pub(crate) struct Problems<'a> {
    prefix: &'a str,
    errors: Vec<FieldError>,
}

impl<'a> Problems<'a> {
    pub(crate) fn new(prefix: &'a str) -> Self {
        Problems {
            prefix,
            errors: Vec::new(),
        }
    }

    pub(crate) fn push(&mut self, field: &str, message: impl Into<String>) {
        let path = if self.prefix.is_empty() {
            field.to_owned()
        } else {
            format!("{}.{field}", self.prefix)
        };
        self.errors.push(FieldError::new(path, message));
    }

    pub(crate) fn finish(self) -> Result<(), ConfigError> {
        ConfigError::from_errors(self.errors)
    }
}

/// Formats a duration the way policy files write it: `0ms`, `250ms`, `1.5s`, `2m`, `1h30m`.
pub(crate) fn fmt_duration(d: std::time::Duration) -> String {
    let ms = d.as_millis();
    if !d.subsec_nanos().is_multiple_of(1_000_000) {
        return format!("{d:?}");
    }
    if ms < 1000 {
        return format!("{ms}ms");
    }
    if !ms.is_multiple_of(1000) {
        return format!("{}s", ms as f64 / 1000.0);
    }
    let s = ms / 1000;
    let (h, m, s) = (s / 3600, (s / 60) % 60, s % 60);
    let mut out = String::new();
    if h > 0 {
        out.push_str(&format!("{h}h"));
    }
    if m > 0 {
        out.push_str(&format!("{m}m"));
    }
    if s > 0 || out.is_empty() {
        out.push_str(&format!("{s}s"));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::fmt_duration;
    use std::time::Duration;

    #[test]
    fn durations_read_like_policy_files() {
        assert_eq!(fmt_duration(Duration::ZERO), "0ms");
        assert_eq!(fmt_duration(Duration::from_millis(250)), "250ms");
        assert_eq!(fmt_duration(Duration::from_millis(1500)), "1.5s");
        assert_eq!(fmt_duration(Duration::from_secs(120)), "2m");
        assert_eq!(fmt_duration(Duration::from_secs(5400)), "1h30m");
        assert_eq!(fmt_duration(Duration::from_micros(5)), "5µs");
    }
}
