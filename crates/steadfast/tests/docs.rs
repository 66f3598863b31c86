//! The docs describe what is: no claim the code does not keep, no diary of how it came to be,
//! no pointer outside the repository, and the crate docs name every public module.

fn read(path: &str) -> String {
    let root = concat!(env!("CARGO_MANIFEST_DIR"), "/../../");
    std::fs::read_to_string(format!("{root}{path}")).unwrap_or_else(|e| panic!("{path}: {e}"))
}

#[test]
fn no_doc_says_tonic_works_through_the_tower_layer() {
    // tonic's bodies cannot be copied, so `RetryLayer` cannot retry them: tonic has its own
    // layer, and the README says so.
    let readme = read("README.md");
    assert!(readme.contains("tonic channels do not fit it"));
    assert!(readme.contains("`tonic::GrpcLayer`"));
    for path in [
        "crates/steadfast/src/tower/mod.rs",
        "crates/steadfast/src/tower/shed.rs",
    ] {
        for line in read(path).lines().filter(|l| l.contains("tonic")) {
            assert!(
                line.contains("do not fit") || line.contains("not yet"),
                "{path} claims tonic works: {line}"
            );
        }
    }
}

#[test]
fn docs_are_in_the_present_tense_and_inside_the_repository() {
    for path in [
        "README.md",
        "ARCHITECTURE.md",
        "docs/internals.md",
        "docs/benchmarks.md",
        "docs/results.md",
        "docs/integrations/reqwest.md",
        "docs/integrations/server.md",
        "docs/integrations/tonic.md",
        "docs/integrations/opentelemetry.md",
        "docs/integrations/prometheus.md",
        "crates/steadfast/docs/policies.md",
        "crates/steadfast/docs/retry.md",
    ] {
        let text = read(path).to_lowercase();
        for narration in [
            "this session",
            "session 8",
            "session's",
            "tried and dropped",
            "../shared",
        ] {
            assert!(!text.contains(narration), "{path} says {narration:?}");
        }
    }
}

#[test]
fn the_crate_docs_name_every_public_module() {
    let lib = read("crates/steadfast/src/lib.rs");
    let docs: String = lib
        .lines()
        .filter(|l| l.starts_with("//!"))
        .collect::<Vec<_>>()
        .join("\n");
    for module in lib
        .lines()
        .filter_map(|l| l.strip_prefix("pub mod "))
        .map(|m| m.trim_end_matches(';'))
    {
        assert!(
            docs.contains(&format!("[`{module}`]"))
                || docs.contains(&format!("`{module}` (feature")),
            "the crate docs do not name `{module}`"
        );
    }
}

#[test]
fn the_store_crate_docs_name_all_it_holds() {
    let lib = read("crates/steadfast-store/src/lib.rs");
    for part in ["[`gate`]", "[`queue`]", "[`idempotency`]", "[`RedisStore`]"] {
        assert!(
            lib.contains(part),
            "steadfast-store's docs do not name {part}"
        );
    }
}
