//! The layout has no import circles: in every crate of the workspace, no source file reaches
//! back to itself through the files it names (`use crate::…`, `use super::…`, or a path
//! written in code). Tests and comments do not count.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// A crate's source files by module path (`["policy", "file", "table"]`), each with its text
/// less comments and its `mod tests`.
fn sources(src: &Path) -> BTreeMap<Vec<String>, String> {
    let mut found = BTreeMap::new();
    let mut dirs = vec![src.to_path_buf()];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                if path.file_name().is_some_and(|n| n != "bin") {
                    dirs.push(path);
                }
                continue;
            }
            if path.extension().is_none_or(|e| e != "rs") {
                continue;
            }
            let text = std::fs::read_to_string(&path).unwrap();
            found.insert(module_of(src, &path), code_of(&text));
        }
    }
    found
}

fn module_of(src: &Path, file: &Path) -> Vec<String> {
    let mut parts: Vec<String> = file
        .strip_prefix(src)
        .unwrap()
        .with_extension("")
        .iter()
        .map(|p| p.to_string_lossy().into_owned())
        .collect();
    if matches!(
        parts.last().map(String::as_str),
        Some("mod" | "lib" | "main")
    ) {
        parts.pop();
    }
    parts
}

/// The text a file compiles outside its tests: no comment lines, no `mod tests`.
fn code_of(text: &str) -> String {
    let text = text.split("#[cfg(test)]\nmod tests").next().unwrap_or(text);
    text.lines()
        .filter(|l| !l.trim_start().starts_with("//"))
        .collect::<Vec<_>>()
        .join("\n")
}

/// `a::{b, c::{d, e}}` as `a::b`, `a::c::d`, `a::c::e`.
fn expand(tree: &str) -> Vec<String> {
    let Some(open) = tree.find('{') else {
        return vec![tree.to_owned()];
    };
    let (prefix, inner) = (&tree[..open], &tree[open + 1..tree.len() - 1]);
    let mut items = Vec::new();
    let (mut depth, mut start) = (0, 0);
    for (i, c) in inner.char_indices() {
        match c {
            '{' => depth += 1,
            '}' => depth -= 1,
            ',' if depth == 0 => {
                items.push(&inner[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    items.push(&inner[start..]);
    items
        .into_iter()
        .map(str::trim)
        .filter(|i| !i.is_empty())
        .flat_map(|i| expand(i).into_iter().map(move |p| format!("{prefix}{p}")))
        .collect()
}

/// Every path a file's code names that starts at `crate`, `super` or `self`.
fn paths_in(code: &str) -> Vec<String> {
    let mut paths = Vec::new();
    // `use` trees, whitespace removed.
    let mut rest = code;
    while let Some(at) = rest.find("use ") {
        let before = rest[..at].chars().next_back();
        rest = &rest[at + 4..];
        if before.is_some_and(|c| c.is_alphanumeric() || c == '_') {
            continue;
        }
        let Some(end) = rest.find(';') else { break };
        let tree: String = rest[..end].split_whitespace().collect();
        let tree = tree.trim_start_matches("::");
        if !["crate", "super", "self"]
            .iter()
            .any(|root| tree.starts_with(root))
            || !tree.ends_with(|c: char| c.is_alphanumeric() || c == '_' || c == '}' || c == '*')
        {
            continue;
        }
        paths.extend(
            expand(tree)
                .into_iter()
                .map(|p| p.split(" as ").next().unwrap_or_default().to_owned()),
        );
    }
    // Paths written in code (`crate::observe::Event::…`, `super::Save`).
    let bytes = code.as_bytes();
    for start in ["crate::", "super::"] {
        for (at, _) in code.match_indices(start) {
            if at > 0 && (bytes[at - 1].is_ascii_alphanumeric() || b"_:$".contains(&bytes[at - 1]))
            {
                continue;
            }
            let end = code[at..]
                .find(|c: char| !(c.is_alphanumeric() || c == '_' || c == ':'))
                .map_or(code.len(), |n| at + n);
            // `super::{…}` is a `use` tree, read above.
            if code[end..].starts_with('{') {
                continue;
            }
            paths.push(code[at..end].trim_end_matches(':').to_owned());
        }
    }
    paths
}

/// The file a path names: the longest prefix of it that is a module of the crate.
fn target<'a>(
    modules: &'a BTreeMap<Vec<String>, String>,
    from: &[String],
    path: &str,
) -> Option<&'a Vec<String>> {
    let mut segments = path.split("::").filter(|s| !s.is_empty());
    let mut at: Vec<String> = match segments.next()? {
        "crate" => Vec::new(),
        "super" => from[..from.len().saturating_sub(1)].to_vec(),
        "self" => from.to_vec(),
        _ => return None,
    };
    for s in segments {
        match s {
            "super" => {
                at.pop();
            }
            "self" => {}
            s => at.push(s.to_owned()),
        }
    }
    (0..=at.len())
        .rev()
        .find_map(|n| modules.get_key_value(&at[..n]).map(|(k, _)| k))
}

type Graph = BTreeMap<String, BTreeSet<String>>;

/// Which file of the crate at `src` imports which.
fn graph(src: &Path) -> Graph {
    let modules = sources(src);
    let name = |m: &[String]| {
        if m.is_empty() {
            "lib".to_owned()
        } else {
            m.join("/")
        }
    };
    let mut graph = Graph::new();
    for (module, code) in &modules {
        let edges = graph.entry(name(module)).or_default();
        for path in paths_in(code) {
            if let Some(to) = target(&modules, module, &path)
                && to != module
            {
                edges.insert(name(to));
            }
        }
    }
    graph
}

/// One circle of the graph, as the files around it, if there is any.
fn circle(graph: &Graph) -> Option<Vec<String>> {
    #[derive(Clone, Copy, PartialEq)]
    enum Mark {
        Open,
        Done,
    }
    fn visit<'g>(
        graph: &'g Graph,
        node: &'g str,
        marks: &mut BTreeMap<&'g str, Mark>,
        stack: &mut Vec<&'g str>,
    ) -> Option<Vec<String>> {
        match marks.get(node) {
            Some(Mark::Done) => return None,
            Some(Mark::Open) => {
                let from = stack.iter().position(|n| *n == node).unwrap_or(0);
                let mut ring: Vec<String> = stack[from..].iter().map(|n| n.to_string()).collect();
                ring.push(node.to_owned());
                return Some(ring);
            }
            None => {}
        }
        marks.insert(node, Mark::Open);
        stack.push(node);
        for next in graph.get(node).into_iter().flatten() {
            if let Some(ring) = visit(graph, next, marks, stack) {
                return Some(ring);
            }
        }
        stack.pop();
        marks.insert(node, Mark::Done);
        None
    }
    let mut marks = BTreeMap::new();
    graph
        .keys()
        .find_map(|node| visit(graph, node, &mut marks, &mut Vec::new()))
}

fn crates() -> Vec<PathBuf> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let mut found: Vec<PathBuf> = std::fs::read_dir(&root)
        .unwrap()
        .map(|e| e.unwrap().path().join("src"))
        .filter(|p| p.is_dir())
        .collect();
    found.sort();
    found
}

#[test]
fn no_file_imports_one_that_imports_it_back() {
    let crates = crates();
    assert!(crates.len() >= 6, "the workspace's crates: {crates:?}");
    for src in crates {
        let graph = graph(&src);
        let edges: usize = graph.values().map(BTreeSet::len).sum();
        if let Some(ring) = circle(&graph) {
            panic!("{}: an import circle: {}", src.display(), ring.join(" -> "));
        }
        println!(
            "{}: {} files, {edges} imports, no circle",
            src.display(),
            graph.len()
        );
    }
}

#[test]
fn the_check_reads_use_trees_and_finds_a_circle() {
    assert_eq!(
        expand("crate::{a::{B, c::D}, e}"),
        ["crate::a::B", "crate::a::c::D", "crate::e"]
    );
    let code = "use super::{state::Run, hedged};\nfn f() { crate::observe::Event::X; }";
    assert_eq!(
        paths_in(code),
        [
            "super::state::Run",
            "super::hedged",
            "crate::observe::Event::X"
        ]
    );
    let mut graph = Graph::new();
    for (from, to) in [
        ("engine", "state"),
        ("state", "hedged"),
        ("hedged", "engine"),
    ] {
        graph.entry(from.into()).or_default().insert(to.into());
    }
    graph.entry("observe".into()).or_default();
    let ring = circle(&graph).expect("a circle");
    assert_eq!(ring.first(), ring.last());
    assert_eq!(ring.len(), 4);
    graph.get_mut("hedged").unwrap().clear();
    assert_eq!(circle(&graph), None);
}
