//! Policy files: every problem at once with its place, round trips through every format,
//! inheritance, and a parser that never panics.

use std::time::Duration;

use proptest::prelude::*;
use steadfast::backoff::{BackoffOptions, Jitter};
use steadfast::breaker::{BreakerOptions, Failures, Window};
use steadfast::budget::BudgetOptions;
use steadfast::chain::{Policy, Registry};
use steadfast::classify::ClassifyOptions;
use steadfast::gate::GateOptions;
use steadfast::hedge::HedgeOptions;
use steadfast::idempotency::IdempotencyOptions;
use steadfast::limit::{BulkheadOptions, RateLimitOptions};
use steadfast::policy::{Format, Origin, PolicyDocument, Scoped, Source, TableSpec};
use steadfast::{Retry, RetryOptions};

fn check(text: &str, format: Format) -> Vec<String> {
    match PolicyDocument::parse(text, format, "policies") {
        Ok(_) => Vec::new(),
        Err(e) => e.diagnostics().iter().map(ToString::to_string).collect(),
    }
}

#[test]
fn five_planted_errors_are_five_errors_with_their_places() {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/five_errors.toml"
    );
    let err = PolicyDocument::load(path).unwrap_err();
    let got: Vec<String> = err
        .diagnostics()
        .iter()
        .map(|d| {
            format!(
                "{}:{}: {}: {}",
                d.line().unwrap(),
                d.column().unwrap(),
                d.path(),
                d.message()
            )
        })
        .collect();
    assert_eq!(
        got,
        [
            r#"6:29: policies."payments.*".retry.basee: unknown field `basee` (did you mean `base`?); expected one of `max_attempts`, `max_retries`, `backoff`, `base`, `max`, `factor`, `jitter`, `attempt_timeout`, `total_timeout`, `max_server_delay`, `cap_server_delay`, `retry_on_timeout`, `seed`"#,
            r#"9:56: policies."payments.Charge".retry.max: must be >= base (2s), got 500ms"#,
            r#"12:26: policies."search.Query".retry.max_attempts: must be >= 1, got 0"#,
            r#"12:47: policies."search.Query".retry.attempt_timeout: expected a duration like "250ms" or "1m30s", got "5 sec""#,
            r#"14:11: policies."orders.*.Create": a wildcard stands only for a whole last segment (`ns.*`) or for every key (`*`), so this pattern can never match"#,
        ]
    );
    assert!(
        err.to_string().starts_with(&format!("{path}:6:29: ")),
        "{err}"
    );
}

#[test]
fn yaml_and_json_errors_have_their_places_too() {
    let yaml = "defaults:\n  retry:\n    max_attempts: 3\n    jitter: 1.5\npolicies:\n  payments.*:\n    retry: { base: fast }\n";
    assert_eq!(
        check(yaml, Format::Yaml),
        [
            "policies:4:13: defaults.retry.jitter: proportional jitter must be in (0, 1], got 1.5",
            r#"policies:7:20: policies."payments.*".retry.base: expected a duration like "250ms" or "1m30s", got "fast""#,
        ]
    );
    let json = "{\n  \"policies\": {\n    \"a.B\": { \"retry\": { \"max_attempts\": \"three\" } },\n    \"a.*\": { \"chain\": [\"x\", \"x\"] }\n  }\n}\n";
    assert_eq!(
        check(json, Format::Json),
        [
            r#"policies:3:41: policies."a.B".retry.max_attempts: invalid type: string "three", expected u32"#,
            r#"policies:4:29: policies."a.*".chain[1]: custom strategy "x" is already in this chain"#,
        ]
    );
    // Syntax errors: the parser's own message at its place.
    assert_eq!(
        check("{\"defaults\": {,}}", Format::Json),
        ["policies:1:15: key must be a string"]
    );
    let toml = check("[defaults]\nretry = { max_attempts = }\n", Format::Toml);
    assert_eq!(toml.len(), 1);
    assert!(toml[0].starts_with("policies:2:"), "{toml:?}");
    let yaml = check("defaults:\n  retry: [\n", Format::Yaml);
    assert_eq!(yaml.len(), 1, "{yaml:?}");
    assert_eq!(
        check("a: 1\na: 2\n", Format::Yaml),
        [r#"policies:2:1: duplicate key "a""#]
    );
}

#[test]
fn breaker_bulkhead_and_rate_limit_tables_compile_and_their_errors_are_placed() {
    let text = r#"[defaults]
breaker = { failure_threshold = 5, break = "30s" }

[policies."db.*"]
breaker = { kind = "failure_rate", threshold = 0.5, window = "10s", min_calls = 20, break = "5s", shared = "db" }
bulkhead = { max_concurrent = 32, max_queue = 64, queue_timeout = "1s" }
rate_limit = { rate = 100, per = "1s", burst = 20, max_wait = "250ms" }
"#;
    let doc = PolicyDocument::parse(text, Format::Toml, "policies.toml").unwrap();
    let policies = doc.compile(&Registry::new()).unwrap();
    let db = policies.resolve("db.Query").plan().clone();
    let breaker = db.breaker_options().unwrap();
    assert_eq!(breaker.shared.as_deref(), Some("db"));
    assert_eq!(
        breaker.options,
        BreakerOptions::failure_rate(0.5)
            .window(Window::time(Duration::from_secs(10)))
            .min_calls(20)
            .break_duration(Duration::from_secs(5))
    );
    assert_eq!(db.bulkhead_options().unwrap().options.max_queue, 64);
    assert_eq!(db.rate_limit_options().unwrap().options.burst, 20);
    let other = policies.resolve("search.Query").plan().clone();
    assert_eq!(
        other.breaker_options().unwrap().options,
        BreakerOptions::consecutive(5)
    );
    assert!(other.bulkhead_options().is_none());

    let bad = r#"[policies."db.*"]
breaker = { kind = "failure_rate", threshold = 1.5, window_calls = 0, break = "0s" }
bulkhead = { max_concurrent = 0 }
rate_limit = { rate = 10, burst = 0, shared = "" }
"#;
    assert_eq!(
        check(bad, Format::Toml),
        [
            r#"policies:2:48: policies."db.*".breaker.threshold: must be in (0, 1], got 1.5"#,
            r#"policies:2:68: policies."db.*".breaker.window_calls: must be >= 1, got 0"#,
            r#"policies:2:79: policies."db.*".breaker.break: must be > 0, got 0ms"#,
            r#"policies:3:31: policies."db.*".bulkhead.max_concurrent: must be >= 1, got 0"#,
            r#"policies:4:35: policies."db.*".rate_limit.burst: must be >= 1, got 0"#,
            r#"policies:4:47: policies."db.*".rate_limit.shared: must not be empty"#,
        ]
    );
    assert_eq!(
        check(
            "[defaults]
breaker = { min_calls = 3 }
",
            Format::Toml
        ),
        ["policies:2:11: defaults.breaker: min_calls: only failure_rate breakers have it"]
    );
}

#[test]
fn hedge_and_budget_tables_compile_and_hedging_needs_an_idempotent_key() {
    let text = r#"[defaults]
budget = { kind = "ratio", percent_can_retry = 0.2, ttl = "10s", min_retries_per_sec = 10, shared = "all" }

[policies."search.*"]
idempotent = true
hedge = { percentile = 95, min_samples = 50, fallback = "20ms" }

[policies."search.Suggest"]
hedge = { delay = "15ms", max_hedged_attempts = 2 }
budget = { kind = "token_bucket", max_tokens = 10, token_ratio = 0.1 }
"#;
    let doc = PolicyDocument::parse(text, Format::Toml, "policies.toml").unwrap();
    let policies = doc.compile(&Registry::new()).unwrap();
    let query = policies.resolve("search.Query").plan().clone();
    assert!(query.is_idempotent());
    assert_eq!(
        query.hedge_options(),
        Some(
            &HedgeOptions::percentile(95.0)
                .min_samples(50)
                .fallback(Duration::from_millis(20))
        )
    );
    let budget = query.budget_options().unwrap();
    assert_eq!(
        (&budget.options, budget.shared.as_deref()),
        (&BudgetOptions::ratio_default(), Some("all"))
    );
    let suggest = policies.resolve("search.Suggest").plan().clone();
    assert_eq!(
        suggest.hedge_options(),
        Some(&HedgeOptions::fixed(Duration::from_millis(15)).max_hedged_attempts(2))
    );
    assert_eq!(
        suggest.budget_options().unwrap().options,
        BudgetOptions::token_bucket(10.0, 0.1)
    );
    let other = policies.resolve("payments.Charge").plan().clone();
    assert!(!other.is_idempotent() && other.hedge_options().is_none());
    let explained = doc.explain("search.Suggest").unwrap();
    assert!(explained.idempotent());
    assert_eq!(
        explained.origin("budget"),
        &Origin::Table("search.Suggest".into())
    );

    // Every budget kind reads with its defaults.
    for (kind, expected) in [
        ("token_bucket", BudgetOptions::token_bucket(10.0, 0.1)),
        ("ratio", BudgetOptions::ratio_default()),
        ("quota", BudgetOptions::quota(500, 5, 10)),
        ("concurrency", BudgetOptions::concurrency(3, 0.2)),
        ("adaptive", BudgetOptions::adaptive(2.0)),
    ] {
        let doc = PolicyDocument::parse(
            &format!("[defaults]\nbudget = {{ kind = \"{kind}\" }}\n"),
            Format::Toml,
            "p",
        )
        .unwrap();
        let plan = doc.compile(&Registry::new()).unwrap();
        let plan = plan.resolve("a.B").plan();
        assert_eq!(plan.budget_options().unwrap().options, expected, "{kind}");
    }

    let bad = r#"[defaults]
hedge = { delay = "10ms" }

[policies."a.*"]
idempotent = true
hedge = { delay = "10ms", percentile = 90 }
budget = { kind = "quota", capacity = 0, k = 3 }

[policies."b.*"]
idempotent = true
hedge = { percentile = 100, window = "0s" }
budget = { kind = "ratio", percent_can_retry = 0 }

[policies."c.*"]
idempotent = false
"#;
    assert_eq!(
        check(bad, Format::Toml),
        [
            r#"policies:2:9: defaults.hedge: the operation must be marked idempotent to be hedged (a hedge runs it twice at once): set `idempotent = true` if it is safe to duplicate"#,
            r#"policies:6:9: policies."a.*".hedge: percentile: cannot be given together with delay"#,
            r#"policies:7:10: policies."a.*".budget: k: only adaptive budgets have it"#,
            r#"policies:11:24: policies."b.*".hedge.percentile: must be between 0 and 100 (exclusive), got 100"#,
            r#"policies:11:38: policies."b.*".hedge.window: must be > 0, got 0ms"#,
            r#"policies:12:48: policies."b.*".budget.percent_can_retry: must be > 0, got 0"#,
            r#"policies:15:14: policies."c.*".idempotent: is false, but this table inherits a `hedge` (which runs the operation twice at once) from a less specific table: put the hedge only in the tables of idempotent keys"#,
        ]
    );
}

#[test]
fn idempotency_tables_compile_inherit_and_their_errors_are_placed() {
    let text = r#"[policies."payments.*"]
idempotency = { key = ["order_id", "customer.id"], ttl = "48h" }

[policies."payments.Refund"]
idempotency = { key = ["refund_id"], lock_timeout = "30s" }
"#;
    let doc = PolicyDocument::parse(text, Format::Toml, "policies.toml").unwrap();
    let policies = doc.compile(&Registry::new()).unwrap();
    let charge = policies.resolve("payments.Charge").plan().clone();
    assert_eq!(
        charge.idempotency_options(),
        Some(
            &IdempotencyOptions::new(["order_id", "customer.id"])
                .ttl(Duration::from_secs(48 * 3600))
        )
    );
    let refund = policies.resolve("payments.Refund").plan().clone();
    assert_eq!(
        refund.idempotency_options(),
        Some(&IdempotencyOptions::new(["refund_id"]).lock_timeout(Duration::from_secs(30)))
    );
    assert!(
        policies
            .resolve("search.Query")
            .plan()
            .idempotency_options()
            .is_none()
    );
    assert_eq!(
        doc.explain("payments.Charge")
            .unwrap()
            .origin("idempotency"),
        &Origin::Table("payments.*".into())
    );

    let bad = "[defaults]\nidempotency = { key = [], ttl = \"0s\" }\n\n[policies.\"a.B\"]\nidempotency = { ttl = \"1h\" }\n";
    let errors = check(bad, Format::Toml);
    assert_eq!(errors.len(), 3, "{errors:#?}");
    assert!(
        errors[0].starts_with("policies:2:") && errors[0].contains("key"),
        "{errors:#?}"
    );
    assert!(
        errors[1].starts_with("policies:2:") && errors[1].contains("ttl"),
        "{errors:#?}"
    );
    assert!(
        errors[2].starts_with("policies:5:") && errors[2].contains("key"),
        "{errors:#?}"
    );
}

#[test]
fn unknown_custom_strategies_are_found_with_the_registry() {
    #[derive(Debug)]
    struct Audit;
    impl Policy for Audit {}
    let registry = Registry::new().register("audit", Audit);
    let text = "[policies.\"a.*\"]\nchain = [\"audit\", \"tenant_quota\"]\n";
    assert!(PolicyDocument::parse(text, Format::Toml, "p.toml").is_ok());
    let err = PolicyDocument::parse_with(text, Format::Toml, "p.toml", &registry).unwrap_err();
    assert_eq!(
        err.to_string(),
        r#"p.toml:2:19: policies."a.*".chain[1]: unknown custom strategy "tenant_quota""#
    );
    // And by compile, for a document parsed without the registry: the same place.
    let doc = PolicyDocument::parse(text, Format::Toml, "p.toml").unwrap();
    assert_eq!(
        doc.compile(&registry).unwrap_err().to_string(),
        err.to_string()
    );
    // A name in a chain that three tables inherit is one problem, placed where it is written.
    let inherited = "[defaults]\nchain = [\"tenant_quota\"]\n\n[policies.\"a.*\"]\nretry = { max_attempts = 2 }\n\n[policies.\"b.C\"]\nretry = { max_attempts = 4 }\n";
    let doc = PolicyDocument::parse(inherited, Format::Toml, "p.toml").unwrap();
    assert_eq!(
        doc.compile(&registry).unwrap_err().to_string(),
        r#"p.toml:2:10: defaults.chain[0]: unknown custom strategy "tenant_quota""#
    );
    let ok = PolicyDocument::parse(
        "[policies.\"a.*\"]\nchain = [\"audit\"]\n",
        Format::Toml,
        "p.toml",
    )
    .unwrap();
    let policies = ok.compile(&registry).unwrap();
    assert_eq!(
        policies.resolve("a.B").plan().chain().collect::<Vec<_>>(),
        ["audit"]
    );
}

#[test]
fn a_star_table_beside_defaults_never_applies() {
    let text = "[defaults]\nretry = { max_attempts = 2 }\n\n[policies.\"*\"]\nretry = { max_attempts = 4 }\n";
    assert_eq!(
        check(text, Format::Toml),
        [
            r#"policies:4:11: policies."*": never applies: [defaults] already covers every key (put these strategies in [defaults])"#
        ]
    );
}

#[test]
fn strategies_are_inherited_from_less_specific_tables() {
    #[derive(Debug)]
    struct Noop;
    impl Policy for Noop {}
    let registry = Registry::new()
        .register("audit", Noop)
        .register("quota", Noop);
    let text = r#"
[defaults]
retry = { max_attempts = 2, backoff = "fixed", base = "1s" }
chain = ["audit"]

[policies."payments.*"]
retry = { max_attempts = 5, backoff = "decorrelated", base = "200ms", max = "30s" }

[policies."payments.refunds.*"]
chain = ["audit", "quota"]

[policies."payments.refunds.Create"]
retry = { max_attempts = 7 }
"#;
    let doc = PolicyDocument::parse(text, Format::Toml, "p.toml").unwrap();
    let policies = doc.compile(&registry).unwrap();
    let attempts = |k: &str| policies.resolve(k).plan().retry().max_attempts();
    let chain = |k: &str| {
        policies
            .resolve(k)
            .plan()
            .chain()
            .map(str::to_owned)
            .collect::<Vec<_>>()
    };
    assert_eq!(attempts("search.Query"), Some(2));
    assert_eq!(chain("search.Query"), ["audit"]);
    assert_eq!(attempts("payments.Charge"), Some(5));
    assert_eq!(chain("payments.Charge"), ["audit"]);
    // payments.refunds.* names only a chain: its retry comes from payments.*.
    assert_eq!(attempts("payments.refunds.List"), Some(5));
    assert_eq!(chain("payments.refunds.List"), ["audit", "quota"]);
    assert_eq!(attempts("payments.refunds.Create"), Some(7));
    assert_eq!(chain("payments.refunds.Create"), ["audit", "quota"]);
    assert_eq!(
        policies.resolve("payments.refunds.Create").source(),
        Source::Exact
    );

    let e = doc.explain("payments.refunds.Create").unwrap();
    assert_eq!(
        e.retry_origin(),
        &Origin::Table("payments.refunds.Create".into())
    );
    assert_eq!(
        e.chain_origin(),
        &Origin::Table("payments.refunds.*".into())
    );
    assert_eq!(
        doc.explain("search.Query").unwrap().retry_origin(),
        &Origin::Defaults
    );
    let empty = PolicyDocument::new();
    assert_eq!(
        empty.explain("a.B").unwrap().retry_origin(),
        &Origin::Library
    );
    assert_eq!(
        empty
            .compile(&registry)
            .unwrap()
            .resolve("a.B")
            .plan()
            .retry(),
        &Retry::default()
    );
}

#[test]
fn an_empty_file_is_all_defaults() {
    for (text, format) in [
        ("", Format::Toml),
        ("", Format::Yaml),
        ("# nothing\n", Format::Yaml),
        ("{}", Format::Json),
    ] {
        let doc = PolicyDocument::parse(text, format, "empty").unwrap();
        assert_eq!(doc, PolicyDocument::new());
    }
}

fn duration() -> impl Strategy<Value = Duration> {
    prop_oneof![
        (1u64..100_000).prop_map(Duration::from_millis),
        (1u64..10_000_000_000_000).prop_map(Duration::from_nanos),
    ]
}

fn jitter() -> impl Strategy<Value = Jitter> {
    prop_oneof![
        Just(Jitter::None),
        Just(Jitter::Full),
        Just(Jitter::Equal),
        (0.001f64..=1.0).prop_map(Jitter::Proportional),
    ]
}

fn backoff() -> impl Strategy<Value = BackoffOptions> {
    (0..6u8, duration(), duration(), 1.01f64..10.0, jitter()).prop_map(
        |(kind, base, max, factor, jitter)| {
            let (base, max) = (base.min(max), base.max(max));
            let b = match kind {
                0 => return BackoffOptions::immediate(),
                1 => BackoffOptions::fixed(base),
                2 => BackoffOptions::linear(base),
                3 => BackoffOptions::exponential(base).factor(factor),
                4 => BackoffOptions::fibonacci(base),
                _ => BackoffOptions::decorrelated(base),
            };
            b.max(max).jitter(jitter)
        },
    )
}

fn retry_options() -> impl Strategy<Value = RetryOptions> {
    (
        backoff(),
        prop_oneof![
            (1u32..100).prop_map(|n| (Some(n), None)),
            (-1i64..100).prop_map(|n| (None, Some(n)))
        ],
        proptest::option::of(duration()),
        proptest::option::of(duration()),
        (duration(), any::<bool>()),
        any::<bool>(),
        proptest::option::of(0..=i64::MAX as u64),
    )
        .prop_map(
            |(backoff, (attempts, retries), attempt, total, (server, cap), on_timeout, seed)| {
                let mut o = Retry::builder()
                    .backoff(backoff)
                    .max_server_delay(server)
                    .cap_server_delay(cap)
                    .retry_on_timeout(on_timeout);
                o.max_attempts = attempts;
                o.max_retries = retries;
                o.attempt_timeout = attempt;
                o.total_timeout = total;
                o.seed = seed;
                o
            },
        )
}

fn shared() -> impl Strategy<Value = Option<String>> {
    proptest::option::of("[a-z][a-z-]{0,8}")
}

fn breaker() -> impl Strategy<Value = Scoped<BreakerOptions>> {
    let kind = prop_oneof![
        (1u32..50).prop_map(BreakerOptions::consecutive),
        (1u32..=10, 1u32..500, 0u32..200, any::<bool>()).prop_map(|(t, n, min, timed)| {
            let window = if timed {
                Window::Time {
                    length: Duration::from_secs(u64::from(n)),
                    buckets: 1 + n % 20,
                }
            } else {
                Window::Calls(n)
            };
            BreakerOptions::failure_rate(f64::from(t) / 10.0)
                .window(window)
                .min_calls(min)
        }),
        (1u32..=10, 1u32..=10, duration()).prop_map(|(t, d, slow)| BreakerOptions::failure_rate(
            f64::from(t) / 10.0
        )
        .slow_calls(slow, f64::from(d) / 10.0)),
        (1u32..10, 0u32..10, 1u64..600).prop_map(|(base, extra, secs)| {
            BreakerOptions::adaptive(base, base + extra)
                .window(Window::time(Duration::from_secs(secs)))
        }),
        Just(BreakerOptions::no_op()),
    ];
    (
        kind,
        duration(),
        proptest::option::of(0u32..4),
        1u32..20,
        duration(),
        any::<[bool; 4]>(),
        shared(),
    )
        .prop_map(|(o, brk, grow, probes, probe_timeout, count, shared)| {
            let mut o = o
                .break_duration(brk)
                .half_open_calls(probes)
                .probe_timeout(probe_timeout);
            if let Some(g) = grow {
                o = o.max_break_duration(brk * (1 << g));
            }
            let [retryable, non_retryable, abort, timeout] = count;
            o = o.failures(Failures {
                retryable,
                non_retryable,
                abort,
                timeout,
            });
            match shared {
                Some(name) => Scoped::shared(name, o),
                None => Scoped::per_key(o),
            }
        })
}

fn bulkhead() -> impl Strategy<Value = Scoped<BulkheadOptions>> {
    (
        1u32..1000,
        0u32..1000,
        proptest::option::of(duration()),
        shared(),
    )
        .prop_map(|(n, q, t, shared)| {
            let mut o = BulkheadOptions::new(n).max_queue(q);
            if let Some(t) = t {
                o = o.queue_timeout(t);
            }
            match shared {
                Some(name) => Scoped::shared(name, o),
                None => Scoped::per_key(o),
            }
        })
}

fn rate_limit() -> impl Strategy<Value = Scoped<RateLimitOptions>> {
    (
        1u32..10_000,
        1u64..3600,
        1u32..10_000,
        proptest::option::of(duration()),
        shared(),
    )
        .prop_map(|(rate, per, burst, wait, shared)| {
            let mut o = RateLimitOptions::new(rate, Duration::from_secs(per)).burst(burst);
            if let Some(w) = wait {
                o = o.max_wait(w);
            }
            match shared {
                Some(name) => Scoped::shared(name, o),
                None => Scoped::per_key(o),
            }
        })
}

fn hedge() -> impl Strategy<Value = HedgeOptions> {
    prop_oneof![
        (duration(), 0u32..4).prop_map(|(d, n)| HedgeOptions::fixed(d).max_hedged_attempts(n)),
        (1u32..100, 0u32..500, duration(), 1u64..100, 0u32..4).prop_map(
            |(p, samples, fallback, window, n)| HedgeOptions::percentile(f64::from(p))
                .min_samples(samples)
                .fallback(fallback)
                .window(Duration::from_secs(window))
                .max_hedged_attempts(n)
        ),
    ]
}

fn budget() -> impl Strategy<Value = Scoped<BudgetOptions>> {
    let fraction = (1u32..100).prop_map(|p| f64::from(p) / 100.0);
    let options = prop_oneof![
        (1u32..100, fraction.clone())
            .prop_map(|(m, r)| BudgetOptions::token_bucket(f64::from(m), r)),
        (fraction.clone(), 1u64..60, 0u32..100).prop_map(|(p, ttl, min)| BudgetOptions::ratio(
            p,
            Duration::from_secs(ttl),
            min
        )),
        (1u32..1000, 1u32..10, 1u32..20).prop_map(|(c, r, t)| BudgetOptions::quota(c, r, t)),
        (0u32..10, fraction.clone()).prop_map(|(m, p)| BudgetOptions::concurrency(m, p)),
        (1u32..5).prop_map(|k| BudgetOptions::adaptive(f64::from(k))),
    ];
    (options, shared()).prop_map(|(o, shared)| match shared {
        Some(name) => Scoped::shared(name, o),
        None => Scoped::per_key(o),
    })
}

fn classify() -> impl Strategy<Value = ClassifyOptions> {
    let timeouts = proptest::option::of(any::<bool>());
    prop_oneof![
        prop_oneof![Just("always"), Just("never")].prop_map(ClassifyOptions::new),
        timeouts.clone().prop_map(|t| {
            let mut o = ClassifyOptions::new("io");
            o.timeouts = t;
            o
        }),
        (
            proptest::option::of(proptest::collection::vec(400u16..600, 1..4)),
            timeouts.clone()
        )
            .prop_map(|(statuses, t)| {
                let mut o = ClassifyOptions::new("http");
                o.statuses = statuses;
                o.timeouts = t;
                o
            }),
        (
            proptest::option::of(proptest::sample::subsequence(
                vec!["UNAVAILABLE", "RESOURCE_EXHAUSTED", "ABORTED", "INTERNAL"],
                1..3
            )),
            timeouts
        )
            .prop_map(|(codes, t)| {
                let mut o = ClassifyOptions::new("grpc");
                o.codes = codes.map(|c| c.into_iter().map(str::to_owned).collect());
                o.timeouts = t;
                o
            }),
    ]
}

fn gate() -> impl Strategy<Value = GateOptions> {
    (
        1u32..10,
        1u64..7200,
        0u32..100,
        0u32..100,
        proptest::option::of((0..6u8, 1u64..3600)),
    )
        .prop_map(|(base, window, early, max, spacing)| {
            let mut o = GateOptions::default();
            o.base_retries = base;
            o.base_window = Duration::from_secs(window);
            o.early_window = Duration::from_secs(window) * early / 100;
            o.max_retries = max;
            let Some((kind, secs)) = spacing else {
                return o;
            };
            let first = Duration::from_secs(secs);
            let schedule = match kind {
                0 => return o.spacing(BackoffOptions::immediate()),
                1 => BackoffOptions::fixed(first),
                2 => BackoffOptions::linear(first),
                3 => BackoffOptions::exponential(first).factor(1.5),
                4 => BackoffOptions::fibonacci(first),
                _ => BackoffOptions::decorrelated(first),
            };
            o.spacing(schedule.max(first * 10))
        })
}

fn idempotency() -> impl Strategy<Value = IdempotencyOptions> {
    (
        proptest::collection::vec("[a-z]{1,6}(\\.[a-z]{1,6})?", 1..3),
        1u64..100_000,
        1u64..3600,
    )
        .prop_map(|(key, ttl, lock)| {
            IdempotencyOptions::new(key)
                .ttl(Duration::from_secs(ttl))
                .lock_timeout(Duration::from_secs(lock))
        })
}

fn table() -> impl Strategy<Value = TableSpec> {
    (
        (
            proptest::option::of(retry_options()),
            proptest::option::of(proptest::collection::btree_set("[a-z_]{1,8}", 0..3)),
            proptest::option::of(breaker()),
            proptest::option::of(bulkhead()),
            proptest::option::of(rate_limit()),
            proptest::option::of(hedge()),
            proptest::option::of(budget()),
        ),
        (
            proptest::option::of(classify()),
            proptest::option::of(gate()),
            proptest::option::of(idempotency()),
        ),
    )
        .prop_map(
            |(
                (retry, chain, breaker, bulkhead, rate_limit, hedge, budget),
                (classify, gate, idempotency),
            )| {
                let mut t = TableSpec::new();
                t.classify = classify;
                t.gate = gate;
                t.idempotency = idempotency;
                t.retry = retry;
                t.chain = chain.map(|c| c.into_iter().collect());
                t.breaker = breaker;
                t.bulkhead = bulkhead;
                t.rate_limit = rate_limit;
                // Every table idempotent or silent about it: a hedge then always applies.
                t.idempotent = hedge.is_some().then_some(true);
                t.hedge = hedge;
                t.budget = budget;
                t
            },
        )
}

proptest! {
    /// TOML → struct → YAML → struct → JSON → struct: the same options every time.
    #[test]
    fn every_option_survives_every_format(
        defaults in proptest::option::of(table()),
        tables in proptest::collection::btree_map(
            prop_oneof!["[a-z]{1,6}\\.[A-Z][a-z]{0,6}", "[a-z]{1,6}\\.\\*", "[a-z]{1,4}\\.[a-z]{1,4}\\.\\*"],
            table(),
            0..4,
        ),
    ) {
        let mut doc = PolicyDocument::new();
        doc.defaults = defaults;
        doc.policies = tables;
        let toml = doc.to_text(Format::Toml).unwrap();
        let from_toml = PolicyDocument::parse(&toml, Format::Toml, "toml").map_err(|e| TestCaseError::fail(format!("{e}\n{toml}")))?;
        prop_assert_eq!(&from_toml, &doc);
        let yaml = from_toml.to_text(Format::Yaml).unwrap();
        let from_yaml = PolicyDocument::parse(&yaml, Format::Yaml, "yaml").map_err(|e| TestCaseError::fail(format!("{e}\n{yaml}")))?;
        prop_assert_eq!(&from_yaml, &doc);
        let json = from_yaml.to_text(Format::Json).unwrap();
        let from_json = PolicyDocument::parse(&json, Format::Json, "json").map_err(|e| TestCaseError::fail(format!("{e}\n{json}")))?;
        prop_assert_eq!(&from_json, &doc);
    }

    /// The parsers never panic, whatever the text; invalid text is an error with a place.
    #[test]
    fn arbitrary_text_never_panics(text in "\\PC{0,200}") {
        for format in [Format::Toml, Format::Yaml, Format::Json] {
            if let Err(e) = PolicyDocument::parse(&text, format, "fuzz") {
                prop_assert!(!e.diagnostics().is_empty());
            }
        }
    }

    /// Nor does a valid file with a few bytes changed, which reaches deeper than random text.
    #[test]
    fn mutated_files_never_panic(
        edits in proptest::collection::vec((any::<prop::sample::Index>(), "[\\PC\\n]{0,3}", 0usize..4), 1..6),
    ) {
        let base = include_str!("../../../examples/policies.toml");
        let mut text = base.to_owned();
        for (at, insert, remove) in edits {
            let mut i = at.index(text.len() + 1);
            while !text.is_char_boundary(i) { i -= 1; }
            let mut end = (i + remove).min(text.len());
            while !text.is_char_boundary(end) { end += 1; }
            text.replace_range(i..end, &insert);
        }
        for format in [Format::Toml, Format::Yaml, Format::Json] {
            let _ = PolicyDocument::parse(&text, format, "fuzz");
        }
    }
}

#[test]
fn deep_nesting_is_an_error_not_a_crash() {
    let n = 100_000;
    let nested = format!("{}{}", "[".repeat(n), "]".repeat(n));
    for (text, format) in [
        (format!("defaults = {nested}\n"), Format::Toml),
        (format!("defaults: {nested}\n"), Format::Yaml),
        (format!("{{\"defaults\": {nested}}}"), Format::Json),
    ] {
        let err = PolicyDocument::parse(&text, format, "deep").unwrap_err();
        assert_eq!(err.diagnostics().len(), 1, "{format:?}");
        assert!(
            err.diagnostics()[0].message().contains("recursion"),
            "{format:?}: {err}"
        );
    }
}

/// The round-trip property above writes every field of every table: a field added to a
/// table's file form (its JSON Schema) but not to the generators fails here, by name.
#[cfg(feature = "schema")]
#[test]
fn the_round_trip_generators_cover_every_field_of_every_table() {
    use proptest::strategy::ValueTree;
    use std::collections::BTreeSet;

    let schema = steadfast::policy::json_schema();
    let props = |def: &str| -> BTreeSet<String> {
        schema["$defs"][def]["properties"]
            .as_object()
            .unwrap_or_else(|| panic!("no properties for {def}"))
            .keys()
            .cloned()
            .collect()
    };
    // Each table field, and the schema definition of its table form.
    let strategies = [
        ("retry", "Retry"),
        ("breaker", "Breaker"),
        ("bulkhead", "Bulkhead"),
        ("rate_limit", "RateLimit"),
        ("hedge", "Hedge"),
        ("budget", "Budget"),
        ("gate", "Gate"),
        ("idempotency", "Idempotency"),
        ("classify", "ClassifyTable"),
    ];
    let mut expected: BTreeSet<String> = props("Table");
    for (field, def) in strategies {
        expected.extend(props(def).into_iter().map(|p| format!("{field}.{p}")));
    }

    let mut seen = BTreeSet::new();
    let mut runner = proptest::test_runner::TestRunner::deterministic();
    let tables = table();
    for _ in 0..4000 {
        let mut doc = PolicyDocument::new();
        doc.defaults = Some(tables.new_tree(&mut runner).unwrap().current());
        let json: serde_json::Value =
            serde_json::from_str(&doc.to_text(Format::Json).unwrap()).unwrap();
        let Some(table) = json["defaults"].as_object() else {
            continue;
        };
        for (field, value) in table {
            seen.insert(field.clone());
            if let Some(inner) = value.as_object() {
                seen.extend(inner.keys().map(|k| format!("{field}.{k}")));
            }
        }
    }
    let missing: Vec<&String> = expected.difference(&seen).collect();
    assert!(
        missing.is_empty(),
        "fields the round trip never writes: {missing:?}"
    );
}

/// A gate table names its spacing (read, validated and written back), and `base_retries = 0`,
/// which would allow one retry a window all the same, is refused in files and in code.
#[test]
fn a_gate_table_names_its_spacing_and_refuses_zero_base_retries() {
    let text = r#"[policies."orders.*"]
gate = { max_retries = 4, spacing = { backoff = "exponential", base = "1m", max = "1h" } }
"#;
    let doc = PolicyDocument::parse(text, Format::Toml, "policies.toml").unwrap();
    let policies = doc.compile(&Registry::new()).unwrap();
    let gate = policies
        .resolve("orders.Ship")
        .plan()
        .gate_options()
        .unwrap()
        .clone();
    let minute = Duration::from_secs(60);
    assert_eq!(gate.spacing_before(1), minute);
    assert_eq!(gate.spacing_before(3), 4 * minute);
    assert_eq!(gate.spacing_before(9), 60 * minute);
    let written = doc.to_text(Format::Toml).unwrap();
    assert!(written.contains("spacing"), "{written}");
    let again = PolicyDocument::parse(&written, Format::Toml, "again.toml").unwrap();
    assert_eq!(again, doc);

    let bad = "[defaults]\ngate = { base_retries = 0 }\n";
    let problems = check(bad, Format::Toml);
    assert_eq!(problems.len(), 1, "{problems:?}");
    assert!(
        problems[0].contains("2:") && problems[0].contains("base_retries"),
        "{problems:?}"
    );
    let bad = "[defaults]\ngate = { spacing = { backoff = \"fixed\", factor = 3 } }\n";
    let problems = check(bad, Format::Toml);
    assert!(
        problems.len() == 1 && problems[0].contains("factor"),
        "{problems:?}"
    );
    let err = GateOptions::default()
        .base_retries(0)
        .validate()
        .unwrap_err();
    assert_eq!(err.errors()[0].field(), "gate.base_retries");
}
