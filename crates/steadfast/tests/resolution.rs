//! Property test: a key resolves to its exact table, else the longest matching namespace,
//! else the defaults — checked against a straightforward model over random tables and keys.

use std::collections::HashMap;

use proptest::prelude::*;
use steadfast::Retry;
use steadfast::policy::{Policies, Source};

/// Keys and namespaces over a small alphabet, so that random ones collide often.
fn segment() -> impl Strategy<Value = String> {
    prop::sample::select(vec!["a", "b", "c"]).prop_map(str::to_owned)
}

fn path(min: usize, max: usize) -> impl Strategy<Value = String> {
    prop::collection::vec(segment(), min..=max).prop_map(|s| s.join("."))
}

/// A table: `true` for a namespace pattern (`path.*`), `false` for an exact key.
fn table() -> impl Strategy<Value = (bool, String)> {
    prop_oneof![
        path(1, 3).prop_map(|p| (true, p)),
        path(2, 4).prop_map(|p| (false, p)),
    ]
}

fn tagged(n: u32) -> Retry {
    Retry::immediate().max_attempts(n).build().unwrap()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    #[test]
    fn resolution_matches_the_model(
        tables in prop::collection::vec(table(), 0..12),
        keys in prop::collection::vec(path(2, 4), 1..20),
    ) {
        // Later tables for the same pattern replace earlier ones, in the model too.
        let mut policies = Policies::new(tagged(1000));
        let mut exact: HashMap<String, u32> = HashMap::new();
        let mut namespaces: HashMap<String, u32> = HashMap::new();
        for (i, (is_ns, p)) in tables.iter().enumerate() {
            let tag = i as u32 + 1;
            let pattern = if *is_ns { format!("{p}.*") } else { p.clone() };
            policies = policies.with(&pattern, tagged(tag)).unwrap();
            if *is_ns { namespaces.insert(p.clone(), tag); } else { exact.insert(p.clone(), tag); }
        }
        for key in &keys {
            let expected = if let Some(tag) = exact.get(key) {
                (*tag, "exact".to_string())
            } else {
                namespaces
                    .iter()
                    .filter(|(ns, _)| key.len() > ns.len() && key.starts_with(&format!("{ns}.")))
                    .max_by_key(|(ns, _)| ns.len())
                    .map(|(ns, tag)| (*tag, ns.clone()))
                    .unwrap_or((1000, "default".to_string()))
            };
            let resolved = policies.resolve(key);
            let tag = resolved.plan().retry().max_attempts().unwrap();
            let source = match resolved.source() {
                Source::Exact => "exact".to_string(),
                Source::Namespace(ns) => ns.to_string(),
                Source::Default => "default".to_string(),
                _ => "other".to_string(),
            };
            prop_assert_eq!((tag, source), expected, "key {}", key);
        }
    }
}
