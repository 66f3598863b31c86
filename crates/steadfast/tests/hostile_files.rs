//! Policy files written to hurt: exponential aliases, nesting far past any real file, random
//! bytes, huge documents and thousands of mistakes each end in a clean error, in bounded time
//! and memory, on a small thread stack.

use steadfast::policy::{Format, MAX_DOCUMENT_BYTES, PolicyDocument};

/// The messages for `text`, read on a thread with a 2 MiB stack (a tokio worker's default),
/// so recursion that grows with the input would overflow it.
fn messages(text: String, format: Format) -> Vec<String> {
    std::thread::Builder::new()
        .stack_size(2 << 20)
        .spawn(
            move || match PolicyDocument::parse(&text, format, "hostile") {
                Ok(_) => Vec::new(),
                Err(e) => e
                    .diagnostics()
                    .iter()
                    .map(|d| d.message().to_owned())
                    .collect(),
            },
        )
        .unwrap()
        .join()
        .expect("reading a hostile file must not crash")
}

#[test]
fn a_billion_laughs_is_refused_at_the_alias_budget() {
    let mut text = String::from(
        "a: &a [\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\"]\n",
    );
    let names = ["a", "b", "c", "d", "e", "f", "g", "h", "i"];
    for w in names.windows(2) {
        let refs = vec![format!("*{}", w[0]); 9].join(",");
        text.push_str(&format!("{}: &{} [{refs}]\n", w[1], w[1]));
    }
    assert!(text.len() < 400, "the file is small: {} bytes", text.len());
    let got = messages(text, Format::Yaml);
    assert_eq!(got.len(), 1, "{got:?}");
    assert!(got[0].contains("aliases expand to more than"), "{got:?}");
}

#[test]
fn a_shared_table_may_be_aliased() {
    let text = "\
shared: &retry
  max_attempts: 3
  base: 10ms
policies:
  a.M: { retry: *retry }
  b.M: { retry: *retry }
";
    // `shared` is not a field; the aliases themselves are read.
    let got = messages(text.to_owned(), Format::Yaml);
    assert_eq!(got.len(), 1, "{got:?}");
    assert!(got[0].contains("unknown field `shared`"), "{got:?}");
}

#[test]
fn a_hundred_thousand_levels_of_nesting_are_an_error_in_every_style() {
    let n = 100_000;
    let cases = [
        (
            "yaml block sequence",
            format!("{}x\n", "- ".repeat(n)),
            Format::Yaml,
        ),
        (
            "yaml flow sequence",
            format!("defaults: {}{}\n", "[".repeat(n), "]".repeat(n)),
            Format::Yaml,
        ),
        (
            "yaml flow map",
            format!("defaults: {}1{}\n", "{a: ".repeat(n), "}".repeat(n)),
            Format::Yaml,
        ),
        (
            "json",
            format!("{{\"defaults\": {}{}}}", "[".repeat(n), "]".repeat(n)),
            Format::Json,
        ),
        (
            "toml array",
            format!("defaults = {}{}\n", "[".repeat(n), "]".repeat(n)),
            Format::Toml,
        ),
        (
            "toml inline table",
            format!("defaults = {}1{}\n", "{a=".repeat(n), "}".repeat(n)),
            Format::Toml,
        ),
        (
            "toml dotted key",
            format!("defaults.{}b = 1\n", "a.".repeat(n)),
            Format::Toml,
        ),
        (
            "toml table header",
            format!("[{}]\nb = 1\n", vec!["a"; n].join(".")),
            Format::Toml,
        ),
    ];
    for (what, text, format) in cases {
        let got = messages(text, format);
        assert_eq!(got.len(), 1, "{what}: {got:?}");
        assert!(got[0].contains("recursion"), "{what}: {got:?}");
    }
    // Block maps nest by indentation, so deep ones are large: 2 000 levels is 2 MB.
    let mut text = String::new();
    for i in 0..2_000 {
        text.push_str(&" ".repeat(i));
        text.push_str("a:\n");
    }
    let got = messages(text, Format::Yaml);
    assert_eq!(got.len(), 1, "{got:?}");
    assert!(got[0].contains("nesting deeper than 128 levels"), "{got:?}");
}

#[test]
fn random_text_is_a_syntax_error_in_every_format() {
    let mut rng = fastrand::Rng::with_seed(7);
    let alphabet: Vec<char> = "ab:[]{}-, \n\"'&*#=.1\t|>!%@`".chars().collect();
    let text: String = (0..1 << 20)
        .map(|_| alphabet[rng.usize(..alphabet.len())])
        .collect();
    for format in [Format::Toml, Format::Yaml, Format::Json] {
        let got = messages(text.clone(), format);
        assert_eq!(got.len(), 1, "{format:?}: {got:?}");
    }
}

#[test]
fn random_bytes_are_refused_as_text() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("random.toml");
    let mut rng = fastrand::Rng::with_seed(7);
    let bytes: Vec<u8> = (0..1 << 20).map(|_| rng.u8(..)).collect();
    std::fs::write(&path, bytes).unwrap();
    let err = PolicyDocument::load(&path).unwrap_err();
    assert_eq!(err.diagnostics().len(), 1);
    assert!(
        err.diagnostics()[0].message().contains("not UTF-8"),
        "{err}"
    );
}

#[test]
fn a_document_over_the_limit_is_refused_by_its_size() {
    let text = format!("# {}\n", "x".repeat(MAX_DOCUMENT_BYTES));
    let got = messages(text, Format::Toml);
    assert_eq!(got.len(), 1, "{got:?}");
    assert!(
        got[0].contains(&format!("at most {MAX_DOCUMENT_BYTES} bytes")),
        "{got:?}"
    );

    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("big.yaml");
    std::fs::write(&path, vec![b'#'; 50 << 20]).unwrap();
    let err = PolicyDocument::load(&path).unwrap_err();
    assert!(err.diagnostics()[0].message().contains("over"), "{err}");
}

#[test]
fn a_map_of_a_hundred_thousand_keys_reads_in_one_pass() {
    // The duplicate-key check is a set, not a scan of the entries before each key
    // (100 000 keys would be 5 * 10^9 comparisons).
    let mut yaml = String::from("defaults:\n  retry:\n    max_attempts: 3\nx:\n");
    let mut json = String::from("{\"defaults\": {\"retry\": {\"max_attempts\": 3}}, \"x\": {");
    for i in 0..100_000 {
        yaml.push_str(&format!("  k{i}: 1\n"));
        json.push_str(&format!("{}\"k{i}\": 1", if i == 0 { "" } else { "," }));
    }
    json.push_str("}}");
    for (text, format) in [(yaml, Format::Yaml), (json, Format::Json)] {
        let got = messages(text, format);
        assert_eq!(got.len(), 1, "{format:?}: {got:?}");
        assert!(got[0].contains("unknown field `x`"), "{format:?}: {got:?}");
    }
    let got = messages("a: 1\nb: 2\na: 3\n".to_owned(), Format::Yaml);
    assert!(
        got.iter().any(|m| m.contains("duplicate key \"a\"")),
        "{got:?}"
    );
}

#[test]
fn thousands_of_mistakes_stop_at_a_hundred_problems() {
    let mut text = String::from("[defaults.retry]\n");
    for i in 0..8_000 {
        text.push_str(&format!("unknown_{i} = 1\n"));
    }
    let got = messages(text, Format::Toml);
    assert_eq!(got.len(), 101, "{:?}", got.last());
    assert!(
        got[..100]
            .iter()
            .all(|m| m.starts_with("unknown field `unknown_"))
    );
    assert_eq!(
        got[100],
        "stopped after 100 problems; fix these and check again"
    );
}

#[test]
fn a_misspelt_value_gets_a_suggestion_like_a_misspelt_key() {
    let text = "[defaults.retry]\nbackoff = \"exponentail\"\njitter = \"fulll\"\n";
    let got = messages(text.to_owned(), Format::Toml);
    assert_eq!(got.len(), 2, "{got:?}");
    assert!(got[0].contains("(did you mean `exponential`?)"), "{got:?}");
    assert!(got[1].contains("(did you mean `full`?)"), "{got:?}");
}

#[test]
fn a_yaml_stream_of_two_documents_is_refused() {
    let got = messages("defaults: {}\n---\npolicies: {}\n".to_owned(), Format::Yaml);
    assert_eq!(got, ["a policy file holds one document"]);
}
