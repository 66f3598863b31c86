//! `steadfast import grpc-service-config`: the document it prints is the service config's
//! policy, read back field by field through `steadfast plan`.

mod common;

use common::{stdout, steadfast};
use serde_json::Value;

const CONFIG: &str = "crates/steadfast-cli/tests/fixtures/grpc_service_config.json";

fn stderr(o: &std::process::Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Imports the fixture into a file and returns `steadfast plan --format json` for `key`.
fn plan(dir: &std::path::Path, key: &str) -> Value {
    let imported = steadfast(&["import", "grpc-service-config", CONFIG]);
    assert_eq!(imported.status.code(), Some(0), "{}", stderr(&imported));
    let file = dir.join("imported.toml");
    std::fs::write(&file, stdout(&imported)).unwrap();
    let checked = steadfast(&["check", file.to_str().unwrap()]);
    assert_eq!(checked.status.code(), Some(0), "{}", stdout(&checked));
    let o = steadfast(&["plan", file.to_str().unwrap(), key, "--format", "json"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    serde_json::from_str(&stdout(&o)).unwrap()
}

fn strategy<'a>(plan: &'a Value, name: &str) -> Option<&'a Value> {
    plan["strategies"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == name)
}

#[test]
fn a_retry_policy_imports_field_by_field() {
    let dir = tempfile::tempdir().unwrap();
    // The fixture's first methodConfig: maxAttempts 4, initialBackoff 0.1s, maxBackoff 1s,
    // backoffMultiplier 2, UNAVAILABLE and resource_exhausted, perAttemptRecvTimeout 0.5s,
    // timeout 2.5s; both of its names.
    for key in ["echo.v1.Echo.Say", "payments.v1.Payments.Charge"] {
        let p = plan(dir.path(), key);
        let retry = &p["retry"];
        assert_eq!(retry["max_attempts"], 4, "{key}");
        assert_eq!(retry["backoff"], "exponential");
        assert_eq!(retry["base"], "100ms");
        assert_eq!(retry["max"], "1s");
        assert_eq!(retry["factor"], 2.0);
        assert_eq!(
            retry["jitter"], "full",
            "gRPC's backoff is random(0, delay)"
        );
        assert_eq!(retry["attempt_timeout"], "500ms");
        assert_eq!(retry["total_timeout"], "2.5s");
        assert_eq!(p["classify"]["kind"], "grpc");
        assert_eq!(
            p["classify"]["codes"],
            serde_json::json!(["UNAVAILABLE", "RESOURCE_EXHAUSTED"])
        );
        assert_eq!(p["classify"]["timeouts"], false);
        // retryThrottling: one token bucket for the channel.
        let budget = strategy(&p, "budget").unwrap();
        assert_eq!(budget["table"]["kind"], "token_bucket");
        assert_eq!(budget["table"]["max_tokens"], 10.0);
        assert_eq!(budget["table"]["token_ratio"], 0.1);
        assert_eq!(budget["table"]["shared"], "grpc");
        assert_eq!(budget["from"], "[defaults]");
        // The schedule gRPC would draw: the first retry waits up to 100 ms, the next up to
        // 200, then 400.
        let max: Vec<f64> = p["attempts"].as_array().unwrap()[1..]
            .iter()
            .map(|a| a["delay_max_ms"].as_f64().unwrap())
            .collect();
        assert!(max[0] <= 100.0 && max[0] > 95.0, "{max:?}");
        assert!(max[1] <= 200.0 && max[1] > 190.0, "{max:?}");
        assert!(max[2] <= 400.0 && max[2] > 380.0, "{max:?}");
    }
}

#[test]
fn a_hedging_policy_imports_too() {
    let dir = tempfile::tempdir().unwrap();
    // maxAttempts 3, hedgingDelay 0.05s, nonFatalStatusCodes UNAVAILABLE and 10 (ABORTED).
    let p = plan(dir.path(), "search.v1.Search.Find");
    assert_eq!(p["idempotent"], true);
    let hedge = strategy(&p, "hedge").unwrap();
    assert_eq!(hedge["table"]["delay"], "50ms");
    assert_eq!(hedge["table"]["max_hedged_attempts"], 2);
    assert_eq!(p["retry"]["max_attempts"], 1, "hedging, not retries");
    assert_eq!(
        p["classify"]["codes"],
        serde_json::json!(["UNAVAILABLE", "ABORTED"])
    );
}

#[test]
fn the_empty_name_is_the_defaults_and_skipped_fields_are_listed() {
    let o = steadfast(&["import", "grpc-service-config", CONFIG]);
    assert_eq!(o.status.code(), Some(0));
    let err = stderr(&o);
    assert!(
        err.contains(&format!(
            "{CONFIG}:6:23: methodConfig[0].waitForReady: not imported"
        )),
        "{err}"
    );
    assert!(err.contains("loadBalancingConfig: not imported"), "{err}");
    let dir = tempfile::tempdir().unwrap();
    let p = plan(dir.path(), "other.v1.Other.Call");
    assert_eq!(p["retry"]["total_timeout"], "10s");
    assert_eq!(p["retry"]["max_attempts"], 1);
    assert_eq!(p["retry_from"], "[defaults]");
}

#[test]
fn a_bad_config_is_refused_with_every_problem_placed() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("bad.json");
    std::fs::write(
        &file,
        r#"{
  "methodConfig": [
    {
      "name": [{ "service": "a.v1.A" }],
      "retryPolicy": { "maxAttempts": 1, "initialBackoff": "100ms", "backoffMultiplier": 2,
                       "maxBackoff": "1s", "retryableStatusCodes": ["UNAVAILABLE", "OK"] }
    },
    {
      "name": [{ "service": "a.v1.A" }],
      "retryPolicy": { "maxAttempts": 3 },
      "hedgingPolicy": { "maxAttempts": 2 }
    }
  ],
  "retryThrotling": {}
}"#,
    )
    .unwrap();
    let path = file.to_str().unwrap();
    let o = steadfast(&["import", "grpc-service-config", path]);
    assert_eq!(o.status.code(), Some(1));
    let err = stderr(&o);
    for expected in [
        format!("{path}:5:39: methodConfig[0].retryPolicy.maxAttempts: must be at least 2, got 1"),
        format!(
            "{path}:5:60: methodConfig[0].retryPolicy.initialBackoff: expected a duration in seconds"
        ),
        format!(
            "{path}:6:84: methodConfig[0].retryPolicy.retryableStatusCodes: expected a gRPC status code other than OK"
        ),
        format!(
            "{path}:11:24: methodConfig[1].hedgingPolicy: a method config has a retryPolicy or a hedgingPolicy, not both"
        ),
        format!("{path}:14:21: retryThrotling: unknown field `retryThrotling`"),
    ] {
        assert!(err.contains(&expected), "missing {expected:?} in\n{err}");
    }
}

#[test]
fn a_name_in_two_method_configs_is_refused_where_it_repeats() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("twice.json");
    std::fs::write(
        &file,
        r#"{"methodConfig": [
  {"name": [{"service": "a.v1.A"}], "timeout": "1s"},
  {"name": [{"service": "b.v1.B"}, {"service": "a.v1.A"}], "timeout": "2s"}
]}"#,
    )
    .unwrap();
    let path = file.to_str().unwrap();
    let o = steadfast(&["import", "grpc-service-config", path]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stderr(&o).contains(&format!(
            "{path}:3:36: methodConfig[1].name: the name a.v1.A.* is also in an earlier method config (line 2)"
        )),
        "{}",
        stderr(&o)
    );
}
