//! The Prometheus example renders steadfast's metrics with exact counts.

#[test]
fn a_scrape_reads_the_calls() {
    let text = steadfast_examples::prometheus::scrape_after_some_calls();
    for line in [
        r#"steadfast_calls_total{key="payments.Charge",result="ok",stop="none"} 1"#,
        r#"steadfast_calls_total{key="payments.Refund",result="error",stop="exhausted"} 1"#,
        r#"steadfast_retries_total{key="payments.Charge",reason="backoff"} 1"#,
        r#"steadfast_retries_total{key="payments.Refund",reason="backoff"} 2"#,
        r#"steadfast_attempts_total{key="payments.Refund",outcome="retryable",attempt="1"} 1"#,
        r#"steadfast_attempts_total{key="payments.Refund",outcome="retryable",attempt="3"} 1"#,
        r#"steadfast_breaker_state{key="payments.Refund",state="closed"} 1"#,
        r#"steadfast_breaker_state{key="payments.Refund",state="open"} 0"#,
    ] {
        assert!(
            text.lines().any(|l| l == line),
            "missing {line:?} in:\n{text}"
        );
    }
    assert!(text.contains("steadfast_call_duration_seconds"));
}
