//! Keys: the names call sites use (`"payments.Charge"`), and the patterns policies match them
//! with (`"payments.*"`).

use std::fmt;
use std::str::FromStr;

/// The name of a call site: a namespace and a name, written `namespace.Name`.
///
/// The namespace may itself have dots (`billing.payments.Charge` has namespace
/// `billing.payments`); each segment is ASCII letters, digits, `_` or `-`.
///
/// # Example
/// ```
/// use steadfast::Key;
///
/// let key: Key = "payments.Charge".parse()?;
/// assert_eq!((key.namespace(), key.name()), ("payments", "Charge"));
/// assert_eq!(key.to_string(), "payments.Charge");
/// assert!(Key::parse("payments.").is_err());
/// # Ok::<(), steadfast::KeyError>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Key {
    full: Box<str>,
    dot: usize,
}

impl Key {
    /// Parses `namespace.Name`; see [`KeyError`] for what is refused.
    pub fn parse(key: &str) -> Result<Key, KeyError> {
        let dot = check(key, false)?;
        Ok(Key {
            full: key.into(),
            dot,
        })
    }

    /// The namespace: everything before the last dot.
    pub fn namespace(&self) -> &str {
        &self.full[..self.dot]
    }

    /// The name: everything after the last dot.
    pub fn name(&self) -> &str {
        &self.full[self.dot + 1..]
    }

    /// The key as written.
    pub fn as_str(&self) -> &str {
        &self.full
    }
}

impl fmt::Display for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.full)
    }
}

impl FromStr for Key {
    type Err = KeyError;

    fn from_str(s: &str) -> Result<Key, KeyError> {
        Key::parse(s)
    }
}

impl AsRef<str> for Key {
    fn as_ref(&self) -> &str {
        &self.full
    }
}

/// Why a key or a pattern was refused.
///
/// # Example
/// ```
/// use steadfast::Key;
///
/// let err = Key::parse("payments..Charge").unwrap_err();
/// assert_eq!(err.to_string(), r#"key "payments..Charge": empty segment at byte 9"#);
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyError {
    key: String,
    problem: KeyProblem,
}

impl KeyError {
    /// What is wrong, without the key's text.
    pub fn problem(&self) -> KeyProblem {
        self.problem
    }

    /// The key as given.
    pub fn key(&self) -> &str {
        &self.key
    }
}

/// What is wrong with a key: small and `Copy`, so [`ErrorKind::InvalidKey`](crate::ErrorKind::InvalidKey) costs
/// nothing on the path of calls whose keys are fine.
///
/// # Example
/// ```
/// use steadfast::key::KeyProblem;
/// use steadfast::Key;
///
/// assert_eq!(Key::parse("Charge").unwrap_err().problem(), KeyProblem::NoNamespace);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum KeyProblem {
    /// The key is empty.
    Empty,
    /// There is no dot: a key is `namespace.Name`.
    NoNamespace,
    /// Two dots in a row, or a dot at either end, at this byte.
    EmptySegment(usize),
    /// A character that is not a letter, digit, `_` or `-`, at this byte.
    BadChar(char, usize),
}

impl fmt::Display for KeyProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            KeyProblem::Empty => f.write_str("empty"),
            KeyProblem::NoNamespace => f.write_str("expected namespace.Name, with a dot"),
            KeyProblem::EmptySegment(at) => write!(f, "empty segment at byte {at}"),
            KeyProblem::BadChar(c, at) => write!(
                f,
                "{c:?} at byte {at} is not allowed (letters, digits, '_' and '-' between dots)"
            ),
        }
    }
}

impl std::error::Error for KeyProblem {}

impl fmt::Display for KeyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "key {:?}: {}", self.key, self.problem)
    }
}

impl std::error::Error for KeyError {}

/// Checks `key` (or a pattern's namespace when `pattern`) and returns the last dot's index.
fn check(key: &str, pattern: bool) -> Result<usize, KeyError> {
    let fail = |problem| {
        Err(KeyError {
            key: key.to_owned(),
            problem,
        })
    };
    if key.is_empty() {
        return fail(KeyProblem::Empty);
    }
    let mut start = 0;
    for (i, c) in key.char_indices() {
        match c {
            '.' if i == start => return fail(KeyProblem::EmptySegment(i)),
            '.' => start = i + 1,
            c if c.is_ascii_alphanumeric() || c == '_' || c == '-' => {}
            c => return fail(KeyProblem::BadChar(c, i)),
        }
    }
    if start == key.len() {
        return fail(KeyProblem::EmptySegment(key.len()));
    }
    match key.rfind('.') {
        Some(dot) => Ok(dot),
        None if pattern => Ok(key.len()),
        None => fail(KeyProblem::NoNamespace),
    }
}

/// What a policy table applies to: one key exactly, or every key under a namespace.
///
/// `payments.*` matches `payments.Charge` and `payments.refunds.Create`; `*` alone matches
/// every key (the same as the defaults).
///
/// # Example
/// ```
/// use steadfast::key::Pattern;
///
/// let p = Pattern::parse("payments.*")?;
/// assert!(p.matches("payments.refunds.Create"));
/// assert!(!p.matches("paymentsx.Charge"));
/// # Ok::<(), steadfast::KeyError>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Pattern {
    /// One key.
    Exact(Key),
    /// Every key whose namespace is this one or below it.
    Namespace(Box<str>),
    /// Every key.
    Any,
}

impl Pattern {
    /// Parses `ns.Name`, `ns.*` or `*`.
    pub fn parse(pattern: &str) -> Result<Pattern, KeyError> {
        if pattern == "*" {
            return Ok(Pattern::Any);
        }
        match pattern.strip_suffix(".*") {
            Some(ns) => {
                check(ns, true)?;
                Ok(Pattern::Namespace(ns.into()))
            }
            None => Key::parse(pattern).map(Pattern::Exact),
        }
    }

    /// Whether `key` falls under this pattern.
    pub fn matches(&self, key: &str) -> bool {
        match self {
            Pattern::Exact(k) => k.as_str() == key,
            Pattern::Namespace(ns) => {
                key.len() > ns.len() + 1
                    && key.starts_with(&**ns)
                    && key.as_bytes()[ns.len()] == b'.'
            }
            Pattern::Any => true,
        }
    }

    /// How specific the pattern is: exact keys first, then longer namespaces.
    pub(crate) fn rank(&self) -> usize {
        match self {
            Pattern::Exact(_) => usize::MAX,
            Pattern::Namespace(ns) => ns.len() + 1,
            Pattern::Any => 0,
        }
    }
}

impl fmt::Display for Pattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Pattern::Exact(k) => write!(f, "{k}"),
            Pattern::Namespace(ns) => write!(f, "{ns}.*"),
            Pattern::Any => f.write_str("*"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys() {
        let k = Key::parse("billing.payments.Charge").unwrap();
        assert_eq!((k.namespace(), k.name()), ("billing.payments", "Charge"));
        for (bad, msg) in [
            ("", "empty"),
            ("Charge", "expected namespace.Name, with a dot"),
            (".Charge", "empty segment at byte 0"),
            ("payments.", "empty segment at byte 9"),
            (
                "pay ments.Charge",
                "' ' at byte 3 is not allowed (letters, digits, '_' and '-' between dots)",
            ),
        ] {
            let err = Key::parse(bad).unwrap_err();
            assert_eq!(err.to_string(), format!("key {bad:?}: {msg}"));
        }
    }

    #[test]
    fn patterns() {
        let ns = Pattern::parse("payments.*").unwrap();
        assert!(ns.matches("payments.Charge"));
        assert!(ns.matches("payments.refunds.Create"));
        assert!(!ns.matches("payments"));
        assert!(!ns.matches("paymentsx.Charge"));
        assert!(!ns.matches("billing.payments.Charge"));
        assert!(Pattern::parse("*").unwrap().matches("a.b"));
        assert!(
            Pattern::parse("payments.Charge")
                .unwrap()
                .matches("payments.Charge")
        );
        assert!(Pattern::parse("pay ments.*").is_err());
        assert!(Pattern::parse(".*").is_err());
    }
}
