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

/// Options a builder was given that its kind does not use (a call window on an adaptive
/// breaker): each is a problem when the options are validated, never silently dropped.
#[derive(Debug, Clone, PartialEq, Default)]
pub(crate) struct NotApplied(Vec<(&'static str, &'static str)>);

impl NotApplied {
    /// Records that `field` was set, which only `kinds` use.
    pub(crate) fn push(&mut self, field: &'static str, kinds: &'static str) {
        if !self.0.iter().any(|(f, _)| *f == field) {
            self.0.push((field, kinds));
        }
    }

    pub(crate) fn check(&self, p: &mut Problems<'_>) {
        for (field, kinds) in &self.0 {
            p.push(field, format!("does not apply here: only {kinds} have it"));
        }
    }
}

/// Parses a duration the way policy files and `#[steadfast::retry]` write it: one or more
/// `<number><unit>` parts, the number possibly with a fraction, the unit one of `ns`, `us`
/// (or `µs`), `ms`, `s`, `m`, `h`: `250ms`, `1.5s`, `1m30s`, `2h`.
///
/// Exact (no floating point): `0.1s` is 100 ms. Negative, empty, unit-less and overflowing
/// values are refused with a message that shows the expected form.
pub(crate) fn parse_duration(text: &str) -> Result<std::time::Duration, String> {
    let bad = || format!("expected a duration like \"250ms\" or \"1m30s\", got {text:?}");
    let mut rest = text.trim();
    if rest.is_empty() {
        return Err(bad());
    }
    let mut total: u128 = 0;
    while !rest.is_empty() {
        let int_len = rest
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(rest.len());
        let (int, tail) = rest.split_at(int_len);
        let (frac, tail) = match tail.strip_prefix('.') {
            Some(t) => t.split_at(t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len())),
            None => ("", tail),
        };
        if int.is_empty() && frac.is_empty() {
            return Err(bad());
        }
        let unit_len = tail
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(tail.len());
        let (unit, tail) = tail.split_at(unit_len);
        let scale: u128 = match unit {
            "ns" => 1,
            "us" | "µs" => 1_000,
            "ms" => 1_000_000,
            "s" => 1_000_000_000,
            "m" => 60_000_000_000,
            "h" => 3_600_000_000_000,
            _ => return Err(bad()),
        };
        let int: u128 = if int.is_empty() {
            0
        } else {
            int.parse().map_err(|_| bad())?
        };
        let mut part = int.checked_mul(scale).ok_or_else(bad)?;
        // The fraction, digit by digit, exact to the nanosecond (further digits are dropped).
        let mut place = scale;
        for d in frac.bytes() {
            place /= 10;
            part += u128::from(d - b'0') * place;
        }
        total = total.checked_add(part).ok_or_else(bad)?;
        rest = tail;
    }
    let secs = u64::try_from(total / 1_000_000_000).map_err(|_| bad())?;
    Ok(std::time::Duration::new(
        secs,
        (total % 1_000_000_000) as u32,
    ))
}

/// Serde for durations as policy files write them (`"250ms"`, `"1m30s"`); written back with
/// [`fmt_duration`], which this module reads.
#[cfg(feature = "serde")]
pub(crate) mod duration {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer, Serializer};

    pub(crate) fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&super::fmt_duration(*d))
    }

    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        let text = std::borrow::Cow::<'de, str>::deserialize(d)?;
        super::parse_duration(&text).map_err(serde::de::Error::custom)
    }

    /// The same for `Option<Duration>` (absent or a duration string).
    pub(crate) mod option {
        use std::time::Duration;

        use serde::{Deserializer, Serializer};

        pub(crate) fn serialize<S: Serializer>(
            d: &Option<Duration>,
            s: S,
        ) -> Result<S::Ok, S::Error> {
            match d {
                Some(d) => super::serialize(d, s),
                None => s.serialize_none(),
            }
        }

        pub(crate) fn deserialize<'de, D: Deserializer<'de>>(
            d: D,
        ) -> Result<Option<Duration>, D::Error> {
            super::deserialize(d).map(Some)
        }
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

/// Gives `$ty` the serde and JSON Schema form of `$file`, the flat table a policy file
/// writes: written through `to` (`fn(&$ty) -> $file`, or `try_to` returning
/// `Result<$file, String>`), read through `from` (`fn($file) -> Result<$ty, String>`, the
/// message reported at the table).
#[cfg(feature = "serde")]
macro_rules! file_form {
    ($ty:ty, $file:ty, to = $to:expr, from = $from:expr) => {
        $crate::config::file_form!(@impl $ty, $file, |v| Ok::<_, String>(($to)(v)), $from);
    };
    ($ty:ty, $file:ty, try_to = $to:expr, from = $from:expr) => {
        $crate::config::file_form!(@impl $ty, $file, $to, $from);
    };
    (@impl $ty:ty, $file:ty, $to:expr, $from:expr) => {
        impl serde::Serialize for $ty {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                let file: $file = ($to)(self).map_err(<S::Error as serde::ser::Error>::custom)?;
                serde::Serialize::serialize(&file, s)
            }
        }

        impl<'de> serde::Deserialize<'de> for $ty {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let file = <$file as serde::Deserialize>::deserialize(d)?;
                ($from)(file).map_err(<D::Error as serde::de::Error>::custom)
            }
        }

        #[cfg(feature = "schema")]
        impl schemars::JsonSchema for $ty {
            fn schema_name() -> std::borrow::Cow<'static, str> {
                <$file as schemars::JsonSchema>::schema_name()
            }

            fn json_schema(generator: &mut schemars::SchemaGenerator) -> schemars::Schema {
                <$file as schemars::JsonSchema>::json_schema(generator)
            }
        }
    };
}
#[cfg(feature = "serde")]
pub(crate) use file_form;

/// Levenshtein distance, by characters (for "did you mean" suggestions).
pub(crate) fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut diagonal = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let next = (diagonal + usize::from(ca != *cb))
                .min(row[j] + 1)
                .min(row[j + 1] + 1);
            diagonal = row[j + 1];
            row[j + 1] = next;
        }
    }
    row[b.len()]
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

    #[test]
    fn durations_parse_exactly() {
        use super::parse_duration as p;
        let ms = Duration::from_millis;
        assert_eq!(p("250ms"), Ok(ms(250)));
        assert_eq!(p("1.5s"), Ok(ms(1500)));
        assert_eq!(p("0.1s"), Ok(ms(100)));
        assert_eq!(p("1m30s"), Ok(Duration::from_secs(90)));
        assert_eq!(p("1h30m"), Ok(Duration::from_secs(5400)));
        assert_eq!(p("5µs"), Ok(Duration::from_micros(5)));
        assert_eq!(p(".5s"), Ok(ms(500)));
        assert_eq!(p("1.005ms"), Ok(Duration::from_micros(1005)));
        for bad in [
            "",
            "5",
            "ms",
            "1x",
            "-1s",
            "1..5s",
            "99999999999999999999999h",
            "1s 2",
        ] {
            assert!(p(bad).is_err(), "{bad:?} was accepted");
        }
        for d in [
            ms(0),
            ms(250),
            ms(1500),
            Duration::from_secs(5400),
            Duration::from_micros(5),
            Duration::from_nanos(1_000_000_007),
        ] {
            assert_eq!(p(&fmt_duration(d)), Ok(d), "{}", fmt_duration(d));
        }
    }
}
