//! The `steadfast` binary, run as a user runs it.

mod common;

use common::{stdout, steadfast};

const FIVE: &str = "crates/steadfast/tests/fixtures/five_errors.toml";

#[test]
fn check_passes_the_example_and_lists_every_problem_of_a_bad_file() {
    let ok = steadfast(&[
        "check",
        "--strategy",
        "tenant_quota",
        "--strategy",
        "audit",
        "examples/policies.toml",
    ]);
    assert_eq!(ok.status.code(), Some(0), "{}", stdout(&ok));
    assert_eq!(stdout(&ok), "examples/policies.toml: ok (8 tables)\n");

    let bad = steadfast(&["check", "examples/policies.toml", FIVE]);
    assert_eq!(bad.status.code(), Some(1));
    let out = stdout(&bad);
    let lines: Vec<&str> = out
        .lines()
        .filter(|l| l.starts_with(FIVE) && l.contains(": policies."))
        .collect();
    let places: Vec<&str> = lines
        .iter()
        .map(|l| l[FIVE.len() + 1..].split(": ").next().unwrap())
        .collect();
    assert_eq!(places, ["6:29", "9:56", "12:26", "12:47", "14:11"]);
    assert!(out.contains(&format!("{FIVE}: 5 problems\n")), "{out}");

    // An unknown strategy name, when the application's names are given.
    let names = steadfast(&["check", "--strategy", "audit", "examples/policies.toml"]);
    assert_eq!(names.status.code(), Some(1));
    assert!(stdout(&names).contains("unknown custom strategy \"tenant_quota\""));
}

#[test]
fn check_places_an_unknown_classifier_and_plan_shows_the_keys() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("p.toml");
    std::fs::write(&file, "[policies.\"payments.*\"]\nclassify = \"htpp\"\n").unwrap();
    let path = file.to_str().unwrap();
    let o = steadfast(&["check", path]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stdout(&o).contains(&format!("{path}:2:12: policies.\"payments.*\".classify: unknown classifier \"htpp\" (did you mean \"http\"?)")),
        "{}",
        stdout(&o)
    );
    std::fs::write(
        &file,
        "[policies.\"payments.*\"]\nclassify = \"tenant_errors\"\n",
    )
    .unwrap();
    assert_eq!(steadfast(&["check", path]).status.code(), Some(1));
    let named = steadfast(&["check", "--classifier", "tenant_errors", path]);
    assert_eq!(named.status.code(), Some(0), "{}", stdout(&named));

    let plan = steadfast(&["plan", "examples/policies.toml", "payments.Charge"]);
    assert!(
        stdout(&plan).contains("  classify  \"http\"  from policies.\"payments.*\"\n"),
        "{}",
        stdout(&plan)
    );
    let plain = steadfast(&["plan", "examples/policies.toml", "search.Query"]);
    assert!(stdout(&plain).contains("  classify  \"always\"  from the library's default\n"));
}

#[test]
fn check_speaks_json() {
    let o = steadfast(&["check", "--format", "json", FIVE]);
    assert_eq!(o.status.code(), Some(1));
    let v: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
    let errors = v[0]["errors"].as_array().unwrap();
    assert_eq!(errors.len(), 5);
    assert_eq!(errors[1]["line"], 9);
    assert_eq!(errors[1]["column"], 56);
    assert_eq!(errors[1]["path"], "policies.\"payments.Charge\".retry.max");
    assert_eq!(errors[1]["message"], "must be >= base (2s), got 500ms");
}

#[test]
fn plan_prints_the_schedule_a_user_can_read() {
    let o = steadfast(&["plan", "examples/policies.toml", "payments.Charge"]);
    assert_eq!(o.status.code(), Some(0));
    let out = stdout(&o);
    assert!(
        out.contains("  retry  from policies.\"payments.Charge\"\n"),
        "{out}"
    );
    assert!(
        out.contains("  chain  tenant_quota → audit  from policies.\"payments.*\"\n"),
        "{out}"
    );
    assert!(
        out.contains(
            "up to 4 attempts; exponential backoff ×2 from 250ms, capped at 8s, equal jitter"
        ),
        "{out}"
    );
    // Equal jitter on 250ms, 500ms, 1s: each wait within [d/2, d]; the latest start adds the
    // 3s attempt timeout of each earlier attempt.
    let rows: Vec<Vec<&str>> = out
        .lines()
        .filter(|l| l.trim_start().starts_with(char::is_numeric))
        .map(|l| l.split_whitespace().collect())
        .collect();
    assert_eq!(rows.len(), 4, "{out}");
    assert_eq!(rows[0], ["1", "—", "0ms", "0ms"]);
    assert_eq!(rows[1][0], "2");
    assert_eq!(rows[1].last(), Some(&"3.25s"));
    assert_eq!(rows[3].last(), Some(&"10.75s"));

    let json = steadfast(&[
        "plan",
        "--format",
        "json",
        "--samples",
        "200",
        "examples/policies.toml",
        "payments.Charge",
    ]);
    let v: serde_json::Value = serde_json::from_str(&stdout(&json)).unwrap();
    let attempts = v["attempts"].as_array().unwrap();
    for (a, d) in attempts[1..].iter().zip([250.0, 500.0, 1000.0]) {
        let (min, max) = (
            a["delay_min_ms"].as_f64().unwrap(),
            a["delay_max_ms"].as_f64().unwrap(),
        );
        assert!(
            min >= d / 2.0 && max <= d && min <= a["delay_median_ms"].as_f64().unwrap(),
            "{a}"
        );
    }
    assert_eq!(v["retry"]["backoff"], "exponential");
    assert_eq!(v["retry_from"], "policies.\"payments.Charge\"");
}

#[test]
fn plan_marks_attempts_the_deadline_cuts_off() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("p.yaml");
    std::fs::write(
        &file,
        "defaults:\n  retry: { max_attempts: 6, backoff: fixed, base: 1s, jitter: none, attempt_timeout: 1s, total_timeout: 3500ms }\n",
    )
    .unwrap();
    let o = steadfast(&["plan", file.to_str().unwrap(), "svc.Get"]);
    let out = stdout(&o);
    let notes: Vec<&str> = out
        .lines()
        .filter(|l| l.trim_start().starts_with(char::is_numeric))
        .map(|l| l.split("  ").last().unwrap().trim())
        .collect();
    // Starts: earliest 0, 1, 2, 3, 4 s; latest 0, 2, 4 s: attempt 3 may be cut, 5 never made.
    assert_eq!(
        notes,
        [
            "0ms",
            "2s",
            "may be cut by the total timeout",
            "may be cut by the total timeout",
            "never made: past the total timeout"
        ],
        "{out}"
    );
}

#[test]
fn schema_is_json_and_names_every_retry_field() {
    let o = steadfast(&["schema"]);
    assert_eq!(o.status.code(), Some(0));
    let v: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
    let retry = &v["$defs"]["Retry"]["properties"];
    for field in [
        "max_attempts",
        "max_retries",
        "backoff",
        "base",
        "max",
        "factor",
        "jitter",
        "attempt_timeout",
        "total_timeout",
        "max_server_delay",
        "cap_server_delay",
        "retry_on_timeout",
        "seed",
    ] {
        assert!(
            retry.get(field).is_some(),
            "{field} missing from the schema"
        );
    }
}

#[test]
fn bad_usage_and_bad_keys_say_so() {
    let o = steadfast(&["plan", "examples/policies.toml", "nodot"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("\"nodot\" is not a key"));
    assert_eq!(steadfast(&["check"]).status.code(), Some(2));
}

/// `steadfast plan` shows every strategy and option of a table: each field of the policy
/// file's schema appears in the plan of some key of a file that sets them all (strategies as
/// their tables, the retry policy in words). A field added to a table but not to the plan, or
/// to this file, fails here by name.
#[test]
fn plan_shows_every_strategy_and_option() {
    let file = "crates/steadfast-cli/tests/fixtures/every_option.toml";
    let keys = [
        "a.Rate",
        "b.Adaptive",
        "c.Consecutive",
        "d.Calls",
        "e.Adaptive",
    ];
    let plans: String = keys
        .iter()
        .map(|key| {
            let o = steadfast(&["plan", file, key]);
            assert_eq!(o.status.code(), Some(0), "{key}: {}", stdout(&o));
            stdout(&o)
        })
        .collect();
    let schema: serde_json::Value = serde_json::from_str(&stdout(&steadfast(&["schema"]))).unwrap();
    let fields = |def: &str| -> Vec<String> {
        schema["$defs"][def]["properties"]
            .as_object()
            .unwrap_or_else(|| panic!("{def}"))
            .keys()
            .cloned()
            .collect()
    };
    let mut missing = Vec::new();
    // Table-level fields: each has its line.
    for field in fields("Table") {
        if !plans.contains(&format!("\n  {field}  ")) {
            missing.push(field);
        }
    }
    // Strategies: every field of the table form, on the strategy's line.
    for (name, def) in [
        ("breaker", "Breaker"),
        ("bulkhead", "Bulkhead"),
        ("rate_limit", "RateLimit"),
        ("hedge", "Hedge"),
        ("budget", "Budget"),
        ("gate", "Gate"),
        ("idempotency", "Idempotency"),
    ] {
        let lines: Vec<&str> = plans
            .lines()
            .filter(|l| l.starts_with(&format!("  {name}  {{")))
            .collect();
        for field in fields(def) {
            if !lines.iter().any(|l| l.contains(&format!(" {field} = "))) {
                missing.push(format!("{name}.{field}"));
            }
        }
    }
    for field in fields("ClassifyTable") {
        if !plans.contains(&format!("\"{field}\":")) {
            missing.push(format!("classify.{field}"));
        }
    }
    // The retry policy in words: what each field reads as in this file.
    for field in fields("Retry") {
        let shown = match field.as_str() {
            "max_attempts" => "up to 4 attempts",
            "max_retries" => "up to 4 attempts (3 retries)",
            "backoff" => "exponential backoff",
            "base" => "from 250ms",
            "factor" => "×3",
            "max" => "capped at 8s",
            "jitter" => "equal jitter",
            "attempt_timeout" => "attempt timeout 3s",
            "total_timeout" => "total timeout 30s",
            "max_server_delay" => "cut to 1m",
            "cap_server_delay" => "server delays honoured, cut to",
            "retry_on_timeout" => "a timed-out attempt is not retried",
            "seed" => "jitter seeded with 7",
            _ => {
                missing.push(format!("retry.{field} (no reading in this test)"));
                continue;
            }
        };
        if !plans.contains(shown) {
            missing.push(format!("retry.{field}"));
        }
    }
    assert!(
        missing.is_empty(),
        "the plan does not show {missing:?}:\n{plans}"
    );
}
