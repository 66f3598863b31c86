//! Problems in a policy file: each placed at its file, line, column and field path.

use std::fmt;

use super::node::Position;

/// One problem in a policy file: where it is and what is wrong.
///
/// Displayed as `file:line:column: field.path: message`, the form editors and CI logs link.
///
/// # Example
/// ```
/// use steadfast::policy::{Format, PolicyDocument};
///
/// let err = PolicyDocument::parse("[policies.\"a.B\"]\nretry = { basee = \"1s\" }\n", Format::Toml, "p.toml")
///     .unwrap_err();
/// let d = &err.diagnostics()[0];
/// assert_eq!((d.line(), d.column()), (Some(2), Some(11)));
/// assert_eq!(d.path(), r#"policies."a.B".retry.basee"#);
/// assert!(d.message().starts_with("unknown field `basee`"));
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostic {
    origin: String,
    pub(super) position: Option<Position>,
    pub(super) path: String,
    message: String,
}

impl Diagnostic {
    pub(super) fn new(
        origin: &str,
        position: Option<Position>,
        path: String,
        message: impl Into<String>,
    ) -> Self {
        Diagnostic {
            origin: origin.to_owned(),
            position,
            path,
            message: message.into(),
        }
    }

    /// The file (or URL, or name) the text came from.
    pub fn origin(&self) -> &str {
        &self.origin
    }

    /// The line, from 1, when the problem has a place in the text.
    pub fn line(&self) -> Option<u32> {
        self.position.map(|p| p.line)
    }

    /// The column, from 1 (in characters), when the problem has a place in the text.
    pub fn column(&self) -> Option<u32> {
        self.position.map(|p| p.column)
    }

    /// The field's path (`policies."payments.Charge".retry.base`); empty for the whole file.
    pub fn path(&self) -> &str {
        &self.path
    }

    /// What is wrong.
    pub fn message(&self) -> &str {
        &self.message
    }
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.origin)?;
        if let Some(p) = self.position {
            write!(f, ":{}:{}", p.line, p.column)?;
        }
        f.write_str(": ")?;
        if !self.path.is_empty() {
            write!(f, "{}: ", self.path)?;
        }
        f.write_str(&self.message)
    }
}

/// Every problem found in a policy file (never empty), in the order of the text.
///
/// # Example
/// ```
/// use steadfast::policy::{Format, PolicyDocument};
///
/// let text = "[defaults]\nretry = { max_attempts = 0, factor = 0.5 }\n";
/// let err = PolicyDocument::parse(text, Format::Toml, "p.toml").unwrap_err();
/// assert_eq!(err.diagnostics().len(), 2);
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostics(pub(super) Vec<Diagnostic>);

impl Diagnostics {
    /// Each problem.
    pub fn diagnostics(&self) -> &[Diagnostic] {
        &self.0
    }

    pub(super) fn one(d: Diagnostic) -> Self {
        Diagnostics(vec![d])
    }
}

impl fmt::Display for Diagnostics {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, d) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str("\n")?;
            }
            write!(f, "{d}")?;
        }
        Ok(())
    }
}

impl std::error::Error for Diagnostics {}

/// Serde's "unknown field `atempt_timeout`, expected one of `max_attempts`, …" with the
/// likely intended name first: "unknown field `atempt_timeout` (did you mean
/// `attempt_timeout`?); expected one of …", and the same for an unknown variant (an enum's
/// value, such as `backoff = "exponentail"`). Other messages are returned as they are.
pub(super) fn suggest(message: &str) -> String {
    let parse = || {
        let (what, rest) = ["field", "variant"].iter().find_map(|what| {
            let rest = message.strip_prefix(&format!("unknown {what} `"))?;
            Some((*what, rest))
        })?;
        let (field, rest) = rest.split_once('`')?;
        let list = rest
            .strip_prefix(", expected one of ")
            .or_else(|| rest.strip_prefix(", expected "))?;
        let best = list
            .split(", ")
            .map(|c| c.trim_matches('`'))
            .map(|c| (crate::config::edit_distance(field, c), c))
            .min()?;
        // Close enough to be a typo: at most a third of the name's letters differ.
        (best.0 > 0 && best.0 * 3 <= best.1.len().max(3)).then(|| {
            format!(
                "unknown {what} `{field}` (did you mean `{}`?); expected one of {list}",
                best.1
            )
        })
    };
    parse().unwrap_or_else(|| message.to_owned())
}

#[cfg(test)]
mod tests {
    use super::suggest;
    use crate::config::edit_distance;

    #[test]
    fn typos_get_a_suggestion_and_strangers_do_not() {
        assert_eq!(edit_distance("atempt_timeout", "attempt_timeout"), 1);
        assert_eq!(edit_distance("", "abc"), 3);
        assert_eq!(
            suggest("unknown field `jiter`, expected one of `base`, `jitter`"),
            "unknown field `jiter` (did you mean `jitter`?); expected one of `base`, `jitter`"
        );
        let far = "unknown field `colour`, expected one of `base`, `jitter`";
        assert_eq!(suggest(far), far);
        assert_eq!(suggest("must be > 0"), "must be > 0");
        assert_eq!(
            suggest("unknown variant `exponentail`, expected one of `fixed`, `exponential`"),
            "unknown variant `exponentail` (did you mean `exponential`?); expected one of \
             `fixed`, `exponential`"
        );
    }
}
