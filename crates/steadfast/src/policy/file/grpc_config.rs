//! A gRPC service config imported into a policy document ([`PolicyDocument::from_grpc_service_config`]).

use std::collections::BTreeMap;
use std::time::Duration;

use super::diagnostic::{Diagnostic, Diagnostics};
use super::document::PolicyDocument;
use super::format::{self, Format};
use super::node::{Kind, Node, Position};
use super::table::TableSpec;
use crate::backoff::Jitter;
use crate::budget::BudgetOptions;
use crate::classify::ClassifyOptions;
use crate::classify::grpc::Code;
use crate::hedge::HedgeOptions;
use crate::policy::Scoped;
use crate::retry::{Retry, RetryOptions};

/// What [`PolicyDocument::from_grpc_service_config`] made of a service config.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct Imported {
    /// The policy document: a table per method name, `[defaults]` for `retryThrottling`.
    pub document: PolicyDocument,
    /// Fields the document has no counterpart for, each placed where it is written.
    pub skipped: Vec<Diagnostic>,
}

impl PolicyDocument {
    /// Imports a gRPC service config (the JSON grpc-go and grpc-java read) into a policy
    /// document: `retryPolicy`, `hedgingPolicy` and `timeout` of each `methodConfig`, and
    /// `retryThrottling`. Every problem is reported at once, each with its line, column and
    /// path; `origin` names the text in them.
    ///
    /// | service config | policy document |
    /// |---|---|
    /// | `name: [{service, method}]` | a table per name: `pkg.Svc.Method`; `{service}` alone is `pkg.Svc.*`; `{}` is `[defaults]` (the key the tonic layer gives a call is its path, `/pkg.Svc/Method` → `pkg.Svc.Method`) |
    /// | `timeout` | `retry.total_timeout` |
    /// | `retryPolicy.maxAttempts` (2–5; more is 5, as gRPC reads it) | `retry.max_attempts` |
    /// | `initialBackoff`, `maxBackoff`, `backoffMultiplier` | `retry` exponential `base`, `max`, `factor`, `jitter = "full"` (gRPC's `random(0, min(initial × multiplier^(n−1), max))`) |
    /// | `retryableStatusCodes` | `classify = { kind = "grpc", codes = [...] }`; `timeouts` is whether `DEADLINE_EXCEEDED` is among them |
    /// | `perAttemptRecvTimeout` | `retry.attempt_timeout` |
    /// | `hedgingPolicy.maxAttempts`, `hedgingDelay` | `idempotent = true`, `hedge = { delay, max_hedged_attempts = maxAttempts − 1 }`, `retry.max_attempts = 1` |
    /// | `nonFatalStatusCodes` | `classify` codes (a non-fatal failure sends the next hedge at once) |
    /// | `retryThrottling.maxTokens`, `tokenRatio` | `[defaults]` `budget = { kind = "token_bucket", ..., shared = "grpc" }` (one bucket for the channel, as gRPC keeps it) |
    ///
    /// Fields with no counterpart (`waitForReady`, message size limits, load balancing, health
    /// checks) are listed in [`Imported::skipped`], never dropped silently.
    ///
    /// # Example
    /// ```
    /// use steadfast::policy::PolicyDocument;
    ///
    /// let config = r#"{
    ///   "methodConfig": [{
    ///     "name": [{ "service": "echo.v1.Echo", "method": "Say" }],
    ///     "timeout": "2s",
    ///     "retryPolicy": {
    ///       "maxAttempts": 4, "initialBackoff": "0.1s", "maxBackoff": "1s",
    ///       "backoffMultiplier": 2, "retryableStatusCodes": ["UNAVAILABLE"]
    ///     }
    ///   }]
    /// }"#;
    /// let imported = PolicyDocument::from_grpc_service_config(config, "service_config.json")?;
    /// let plan = imported.document.explain("echo.v1.Echo.Say")?;
    /// assert_eq!(plan.retry().max_attempts, Some(4));
    /// assert_eq!(plan.classify().0.codes.as_deref(), Some(&["UNAVAILABLE".to_owned()][..]));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn from_grpc_service_config(text: &str, origin: &str) -> Result<Imported, Diagnostics> {
        let root = format::parse(text, Format::Json)
            .map_err(|(pos, message)| one(origin, Some(pos), "", message))?;
        let mut reader = Reader {
            origin,
            problems: Vec::new(),
            skipped: Vec::new(),
        };
        let document = reader.document(&root);
        if reader.problems.is_empty() {
            // The result is held to what a file is.
            let document = document.unwrap_or_default();
            let checked = document.check(&[], None);
            if checked.is_empty() {
                return Ok(Imported {
                    document,
                    skipped: reader.skipped,
                });
            }
            return Err(Diagnostics(checked));
        }
        reader.problems.sort_by_key(|d| d.position);
        Err(Diagnostics(reader.problems))
    }
}

fn one(origin: &str, pos: Option<Position>, path: &str, message: impl Into<String>) -> Diagnostics {
    Diagnostics::one(Diagnostic::new(origin, pos, path.to_owned(), message))
}

struct Reader<'a> {
    origin: &'a str,
    problems: Vec<Diagnostic>,
    skipped: Vec<Diagnostic>,
}

impl Reader<'_> {
    fn problem(&mut self, node: &Node, path: &str, message: impl Into<String>) {
        self.problems.push(Diagnostic::new(
            self.origin,
            Some(node.pos),
            path.to_owned(),
            message,
        ));
    }

    fn skip(&mut self, node: &Node, path: &str, why: &str) {
        self.skipped.push(Diagnostic::new(
            self.origin,
            Some(node.pos),
            path.to_owned(),
            format!("not imported: {why}"),
        ));
    }

    /// The entries of an object, or a problem.
    fn object<'n>(&mut self, node: &'n Node, path: &str) -> Option<&'n [super::node::Entry]> {
        match &node.kind {
            Kind::Map(entries) => Some(entries),
            _ => {
                self.problem(
                    node,
                    path,
                    format!("expected an object, got {}", node.type_name()),
                );
                None
            }
        }
    }

    fn document(&mut self, root: &Node) -> Option<PolicyDocument> {
        let entries = self.object(root, "")?;
        let mut budget = None;
        let mut tables: BTreeMap<String, (TableSpec, Position)> = BTreeMap::new();
        for entry in entries {
            let path = entry.key.as_str();
            match path {
                "methodConfig" => {
                    let Kind::Seq(configs) = &entry.value.kind else {
                        self.problem(&entry.value, path, "expected an array of method configs");
                        continue;
                    };
                    for (i, config) in configs.iter().enumerate() {
                        let path = format!("methodConfig[{i}]");
                        self.method_config(config, &path, &mut tables);
                    }
                }
                "retryThrottling" => {
                    budget = self.throttling(&entry.value, path);
                }
                "loadBalancingConfig" | "loadBalancingPolicy" | "healthCheckConfig" => {
                    self.skip(
                        &entry.value,
                        path,
                        "steadfast does not balance load or check health",
                    );
                }
                _ => self.problem(&entry.value, path, format!("unknown field `{path}`")),
            }
        }
        // The name `{}` covers every method: it is the `[defaults]` table, as is the bucket.
        let mut defaults = tables.remove("*").map(|(t, _)| t);
        if let Some(budget) = budget {
            defaults = Some(defaults.unwrap_or_default().budget(budget));
        }
        let mut document = PolicyDocument::new();
        if let Some(defaults) = defaults {
            document = document.with_defaults(defaults);
        }
        for (pattern, (table, _)) in tables {
            document = document.with(pattern, table);
        }
        Some(document)
    }

    fn method_config(
        &mut self,
        node: &Node,
        path: &str,
        tables: &mut BTreeMap<String, (TableSpec, Position)>,
    ) {
        let Some(entries) = self.object(node, path) else {
            return;
        };
        let mut patterns = Vec::new();
        let mut total_timeout = None;
        let mut retry_policy = None;
        let mut hedging_policy = None;
        for entry in entries {
            let field = format!("{path}.{}", entry.key);
            match entry.key.as_str() {
                "name" => patterns = self.names(&entry.value, &field),
                "timeout" => total_timeout = self.duration(&entry.value, &field),
                "retryPolicy" => retry_policy = Some(&entry.value),
                "hedgingPolicy" => hedging_policy = Some(&entry.value),
                "waitForReady" => self.skip(
                    &entry.value,
                    &field,
                    "a call fails or is retried by its policy; it does not wait for a connection",
                ),
                "maxRequestMessageBytes" | "maxResponseMessageBytes" => {
                    self.skip(
                        &entry.value,
                        &field,
                        "message sizes are the channel's to limit",
                    );
                }
                other => self.problem(&entry.value, &field, format!("unknown field `{other}`")),
            }
        }
        if patterns.is_empty() {
            self.problem(
                node,
                path,
                "a method config needs a `name` with at least one entry",
            );
            return;
        }
        let table = match (retry_policy, hedging_policy) {
            (Some(_), Some(h)) => {
                self.problem(
                    h,
                    &format!("{path}.hedgingPolicy"),
                    "a method config has a retryPolicy or a hedgingPolicy, not both",
                );
                return;
            }
            (Some(r), None) => self.retry(r, &format!("{path}.retryPolicy"), total_timeout),
            (None, Some(h)) => self.hedging(h, &format!("{path}.hedgingPolicy"), total_timeout),
            (None, None) => {
                let mut retry = Retry::immediate().max_attempts(1);
                if let Some(t) = total_timeout {
                    retry = retry.total_timeout(t);
                }
                Some(TableSpec::new().retry(retry))
            }
        };
        let Some(table) = table else {
            return;
        };
        for (pattern, pos) in patterns {
            if let Some((_, first)) = tables.get(&pattern) {
                let message = format!(
                    "the name {pattern} is also in an earlier method config (line {})",
                    first.line
                );
                self.problems.push(Diagnostic::new(
                    self.origin,
                    Some(pos),
                    format!("{path}.name"),
                    message,
                ));
                continue;
            }
            tables.insert(pattern, (table.clone(), pos));
        }
    }

    /// The patterns the names cover, each with its place.
    fn names(&mut self, node: &Node, path: &str) -> Vec<(String, Position)> {
        let Kind::Seq(names) = &node.kind else {
            self.problem(node, path, "expected an array of names");
            return Vec::new();
        };
        let mut out = Vec::new();
        for (i, name) in names.iter().enumerate() {
            let path = format!("{path}[{i}]");
            let Some(entries) = self.object(name, &path) else {
                continue;
            };
            let (mut service, mut method) = (String::new(), String::new());
            for entry in entries {
                let slot = match entry.key.as_str() {
                    "service" => &mut service,
                    "method" => &mut method,
                    other => {
                        self.problem(&entry.value, &path, format!("unknown field `{other}`"));
                        continue;
                    }
                };
                match &entry.value.kind {
                    Kind::Str(s) => *slot = s.clone(),
                    _ => self.problem(&entry.value, &path, "expected a string"),
                }
            }
            let pattern = match (service.is_empty(), method.is_empty()) {
                (true, true) => "*".to_owned(),
                (true, false) => {
                    self.problem(name, &path, "a name with a method needs its service");
                    continue;
                }
                (false, true) => format!("{service}.*"),
                (false, false) => format!("{service}.{method}"),
            };
            if crate::key::Pattern::parse(&pattern).is_err() {
                self.problem(
                    name,
                    &path,
                    format!("{pattern} is not a key pattern (names of letters, digits, _ and -)"),
                );
                continue;
            }
            out.push((pattern, name.pos));
        }
        out
    }

    fn retry(&mut self, node: &Node, path: &str, total: Option<Duration>) -> Option<TableSpec> {
        let entries = self.object(node, path)?;
        let (mut attempts, mut initial, mut max, mut factor, mut codes, mut per_attempt) =
            (None, None, None, None, None, None);
        for entry in entries {
            let field = format!("{path}.{}", entry.key);
            let v = &entry.value;
            match entry.key.as_str() {
                "maxAttempts" => attempts = self.attempts(v, &field),
                "initialBackoff" => initial = self.positive_duration(v, &field),
                "maxBackoff" => max = self.positive_duration(v, &field),
                "backoffMultiplier" => factor = self.positive_number(v, &field),
                "retryableStatusCodes" => codes = self.codes(v, &field, true),
                "perAttemptRecvTimeout" => per_attempt = self.positive_duration(v, &field),
                other => self.problem(v, &field, format!("unknown field `{other}`")),
            }
        }
        self.require(
            node,
            path,
            entries,
            "a retryPolicy",
            &[
                "maxAttempts",
                "initialBackoff",
                "maxBackoff",
                "backoffMultiplier",
                "retryableStatusCodes",
            ],
        );
        let (attempts, initial, max, factor, codes) = (attempts?, initial?, max?, factor?, codes?);
        let mut retry: RetryOptions = Retry::exponential(initial)
            .max_delay(max)
            .factor(factor)
            .jitter(Jitter::Full)
            .max_attempts(attempts);
        if let Some(t) = total {
            retry = retry.total_timeout(t);
        }
        if let Some(t) = per_attempt {
            retry = retry.attempt_timeout(t);
        }
        Some(TableSpec::new().retry(retry).classify(classify(&codes)))
    }

    fn hedging(&mut self, node: &Node, path: &str, total: Option<Duration>) -> Option<TableSpec> {
        let entries = self.object(node, path)?;
        let (mut attempts, mut delay, mut codes) = (None, Duration::ZERO, Vec::new());
        for entry in entries {
            let field = format!("{path}.{}", entry.key);
            let v = &entry.value;
            match entry.key.as_str() {
                "maxAttempts" => attempts = self.attempts(v, &field),
                "hedgingDelay" => delay = self.duration(v, &field).unwrap_or(delay),
                "nonFatalStatusCodes" => codes = self.codes(v, &field, false).unwrap_or_default(),
                other => self.problem(v, &field, format!("unknown field `{other}`")),
            }
        }
        self.require(node, path, entries, "a hedgingPolicy", &["maxAttempts"]);
        let attempts = attempts?;
        let mut retry = Retry::immediate().max_attempts(1);
        if let Some(t) = total {
            retry = retry.total_timeout(t);
        }
        Some(
            TableSpec::new()
                .retry(retry)
                .idempotent(true)
                .hedge(HedgeOptions::fixed(delay).max_hedged_attempts(attempts - 1))
                .classify(classify(&codes)),
        )
    }

    fn throttling(&mut self, node: &Node, path: &str) -> Option<Scoped<BudgetOptions>> {
        let entries = self.object(node, path)?;
        let (mut max_tokens, mut ratio) = (None, None);
        for entry in entries {
            let field = format!("{path}.{}", entry.key);
            let v = &entry.value;
            match entry.key.as_str() {
                "maxTokens" => match self.positive_number(v, &field) {
                    Some(n) if n <= 1000.0 => max_tokens = Some(n),
                    Some(n) => self.problem(v, &field, format!("must be at most 1000, got {n}")),
                    None => {}
                },
                "tokenRatio" => ratio = self.positive_number(v, &field),
                other => self.problem(v, &field, format!("unknown field `{other}`")),
            }
        }
        self.require(
            node,
            path,
            entries,
            "retryThrottling",
            &["maxTokens", "tokenRatio"],
        );
        Some(Scoped::shared(
            "grpc",
            BudgetOptions::token_bucket(max_tokens?, ratio?),
        ))
    }

    /// Reports each of `fields` that `entries` lacks.
    fn require(
        &mut self,
        node: &Node,
        path: &str,
        entries: &[super::node::Entry],
        what: &str,
        fields: &[&str],
    ) {
        for field in fields {
            if !entries.iter().any(|e| e.key == *field) {
                self.problem(node, path, format!("{what} needs `{field}`"));
            }
        }
    }

    fn attempts(&mut self, node: &Node, path: &str) -> Option<u32> {
        match node.kind {
            // gRPC reads more than 5 as 5.
            Kind::Int(n) if n >= 2 => u32::try_from(n.min(5)).ok(),
            Kind::Int(n) => {
                self.problem(node, path, format!("must be at least 2, got {n}"));
                None
            }
            _ => {
                self.problem(
                    node,
                    path,
                    format!("expected an integer, got {}", node.type_name()),
                );
                None
            }
        }
    }

    fn positive_number(&mut self, node: &Node, path: &str) -> Option<f64> {
        let n = match node.kind {
            Kind::Int(n) => n as f64,
            Kind::Float(f) => f,
            _ => {
                self.problem(
                    node,
                    path,
                    format!("expected a number, got {}", node.type_name()),
                );
                return None;
            }
        };
        if n > 0.0 && n.is_finite() {
            Some(n)
        } else {
            self.problem(node, path, format!("must be above 0, got {n}"));
            None
        }
    }

    /// A protobuf JSON duration: decimal seconds and `s` (`"0.1s"`, `"2s"`).
    fn duration(&mut self, node: &Node, path: &str) -> Option<Duration> {
        let parsed = match &node.kind {
            Kind::Str(s) => parse_duration(s),
            _ => None,
        };
        if parsed.is_none() {
            self.problem(node, path, "expected a duration in seconds, e.g. \"0.25s\"");
        }
        parsed
    }

    fn positive_duration(&mut self, node: &Node, path: &str) -> Option<Duration> {
        let d = self.duration(node, path)?;
        if d.is_zero() {
            self.problem(node, path, "must be above 0s");
            return None;
        }
        Some(d)
    }

    /// Status codes by name (any case) or number; `required`: at least one.
    fn codes(&mut self, node: &Node, path: &str, required: bool) -> Option<Vec<Code>> {
        let Kind::Seq(items) = &node.kind else {
            self.problem(node, path, "expected an array of status codes");
            return None;
        };
        let mut codes = Vec::new();
        for item in items {
            let code = match &item.kind {
                Kind::Str(s) => Code::from_name(&s.to_ascii_uppercase()),
                Kind::Int(n) => i32::try_from(*n).ok().and_then(Code::from_i32),
                _ => None,
            };
            match code {
                Some(Code::Ok) | None => self.problem(
                    item,
                    path,
                    "expected a gRPC status code other than OK (a name such as \"UNAVAILABLE\", or its number)",
                ),
                Some(c) if !codes.contains(&c) => codes.push(c),
                Some(_) => {}
            }
        }
        if required && items.is_empty() {
            self.problem(node, path, "needs at least one status code");
            return None;
        }
        Some(codes)
    }
}

/// The classifier of a method config: gRPC's rules with its codes.
fn classify(codes: &[Code]) -> ClassifyOptions {
    ClassifyOptions::new("grpc")
        .codes(codes.iter().map(|c| c.name()))
        .timeouts(codes.contains(&Code::DeadlineExceeded))
}

/// `"1.5s"` → 1.5 s: an optional sign is refused, at most nine decimals.
fn parse_duration(s: &str) -> Option<Duration> {
    let digits = s.strip_suffix('s')?;
    let (whole, frac) = digits.split_once('.').unwrap_or((digits, ""));
    if whole.is_empty() || frac.len() > 9 || !whole.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    if !frac.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let secs: u64 = whole.parse().ok()?;
    let nanos: u32 = if frac.is_empty() {
        0
    } else {
        format!("{frac:0<9}").parse().ok()?
    };
    Some(Duration::new(secs, nanos))
}

#[cfg(test)]
mod tests {
    use super::parse_duration;
    use crate::policy::PolicyDocument;
    use std::time::Duration;

    #[test]
    fn a_hedge_with_no_non_fatal_codes_stops_at_the_first_failure() {
        let config = r#"{"methodConfig": [{"name": [{"service": "s.v1.S"}],
            "hedgingPolicy": {"maxAttempts": 9}}]}"#;
        let imported = PolicyDocument::from_grpc_service_config(config, "c.json").unwrap();
        let e = imported.document.explain("s.v1.S.Get").unwrap();
        assert_eq!(
            e.table().hedge.as_ref().unwrap().max_hedged_attempts,
            4,
            "gRPC reads 9 as 5"
        );
        assert_eq!(e.classify().0.codes.as_deref(), Some(&[][..]));
        // The document compiles: an empty list retries nothing.
        imported
            .document
            .compile(&crate::chain::Registry::new())
            .unwrap();
    }

    #[test]
    fn durations_are_decimal_seconds() {
        assert_eq!(parse_duration("0.1s"), Some(Duration::from_millis(100)));
        assert_eq!(parse_duration("2s"), Some(Duration::from_secs(2)));
        assert_eq!(parse_duration("1.000000001s"), Some(Duration::new(1, 1)));
        for bad in ["", "s", "1", "-1s", "1.s1", ".5s", "1.0000000001s", "1ms"] {
            assert_eq!(parse_duration(bad), None, "{bad:?}");
        }
    }
}
