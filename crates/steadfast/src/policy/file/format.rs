//! Reading TOML, YAML and JSON into one [`Node`] tree, and writing documents back.

use std::path::Path;

use super::node::{Entry, Ids, Kind, Node, Position};

/// The formats a policy file may be written in.
///
/// # Example
/// ```
/// use steadfast::policy::Format;
///
/// assert_eq!(Format::from_path("conf/policies.yaml"), Some(Format::Yaml));
/// assert_eq!(Format::from_path("policies.json"), Some(Format::Json));
/// assert_eq!(Format::from_path("policies.ini"), None);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Format {
    /// TOML (`.toml`), the format of the examples.
    Toml,
    /// YAML (`.yaml`, `.yml`).
    Yaml,
    /// JSON (`.json`).
    Json,
}

impl Format {
    /// The format a file's extension names, if any.
    pub fn from_path(path: impl AsRef<Path>) -> Option<Format> {
        let ext = path.as_ref().extension()?.to_str()?.to_ascii_lowercase();
        match ext.as_str() {
            "toml" => Some(Format::Toml),
            "yaml" | "yml" => Some(Format::Yaml),
            "json" => Some(Format::Json),
            _ => None,
        }
    }

    /// The format a `Content-Type` names (`application/toml`, `application/yaml`,
    /// `application/json`, with or without parameters and `x-`/`+` spellings).
    pub fn from_media_type(media_type: &str) -> Option<Format> {
        let essence = media_type.split(';').next()?.trim().to_ascii_lowercase();
        if essence.ends_with("json") {
            Some(Format::Json)
        } else if essence.ends_with("yaml") || essence.ends_with("yml") {
            Some(Format::Yaml)
        } else if essence.ends_with("toml") {
            Some(Format::Toml)
        } else {
            None
        }
    }

    /// Its name, lowercase.
    pub fn name(self) -> &'static str {
        match self {
            Format::Toml => "toml",
            Format::Yaml => "yaml",
            Format::Json => "json",
        }
    }
}

/// A syntax error: where, and what.
pub(crate) type SyntaxError = (Position, String);

/// The largest policy document read, in bytes (4 MiB: a file of thousands of keys is a few
/// hundred kilobytes). Reading is linear in the size, so this bounds time and memory.
pub const MAX_DOCUMENT_BYTES: usize = 4 << 20;

/// Reads a policy file as text, refusing one over [`MAX_DOCUMENT_BYTES`] without reading the
/// rest of it (`std::fs::read_to_string` with the documents' size limit).
///
/// # Example
/// ```
/// let dir = std::env::temp_dir().join(format!("steadfast-doc-{}", std::process::id()));
/// std::fs::create_dir_all(&dir)?;
/// let path = dir.join("policies.toml");
/// std::fs::write(&path, "[defaults.retry]\nmax_attempts = 3\n")?;
/// let text = steadfast::policy::read_to_string(&path)?;
/// assert!(text.contains("max_attempts"));
///
/// std::fs::write(&path, vec![b'#'; steadfast::policy::MAX_DOCUMENT_BYTES + 1])?;
/// assert!(steadfast::policy::read_to_string(&path).is_err());
/// # std::fs::remove_dir_all(&dir)?;
/// # Ok::<(), std::io::Error>(())
/// ```
pub fn read_to_string(path: impl AsRef<Path>) -> std::io::Result<String> {
    use std::io::Read;
    let mut bytes = Vec::new();
    std::fs::File::open(path.as_ref())?
        .take(MAX_DOCUMENT_BYTES as u64 + 1)
        .read_to_end(&mut bytes)?;
    if bytes.len() > MAX_DOCUMENT_BYTES {
        return Err(std::io::Error::other(format!(
            "the file is over {MAX_DOCUMENT_BYTES} bytes, the most a policy document may be"
        )));
    }
    String::from_utf8(bytes)
        .map_err(|_| std::io::Error::new(std::io::ErrorKind::InvalidData, "the file is not UTF-8"))
}

/// Parses `text` into a tree; an empty document is an empty table.
pub(crate) fn parse(text: &str, format: Format) -> Result<Node, SyntaxError> {
    if text.len() > MAX_DOCUMENT_BYTES {
        let message = format!(
            "the document is {} bytes; a policy document is at most {MAX_DOCUMENT_BYTES} bytes",
            text.len()
        );
        return Err((Position { line: 1, column: 1 }, message));
    }
    let mut ids = Ids::default();
    match format {
        Format::Toml => toml_tree(text, &mut ids),
        Format::Yaml => yaml_tree(text, &mut ids),
        Format::Json => {
            if let Err(e) = serde_json::from_str::<serde::de::IgnoredAny>(text) {
                let pos = Position {
                    line: e.line() as u32,
                    column: e.column() as u32,
                };
                let message = e.to_string();
                // serde_json appends " at line L column C"; the position says it already.
                let message = match message.rfind(" at line ") {
                    Some(i) => message[..i].to_owned(),
                    None => message,
                };
                return Err((pos, message));
            }
            yaml_tree(text, &mut ids)
        }
    }
}

/// Byte offsets to lines and columns.
struct Lines<'a> {
    text: &'a str,
    starts: Vec<usize>,
}

impl<'a> Lines<'a> {
    fn new(text: &'a str) -> Self {
        let mut starts = vec![0];
        starts.extend(text.match_indices('\n').map(|(i, _)| i + 1));
        Lines { text, starts }
    }

    fn at(&self, offset: usize) -> Position {
        let offset = offset.min(self.text.len());
        let line = self.starts.partition_point(|&s| s <= offset).max(1) - 1;
        let start = self.starts[line];
        let column = self
            .text
            .get(start..offset)
            .map_or(offset - start, |s| s.chars().count());
        Position {
            line: line as u32 + 1,
            column: column as u32 + 1,
        }
    }
}

fn toml_tree(text: &str, ids: &mut Ids) -> Result<Node, SyntaxError> {
    use toml::de::{DeTable, DeValue};
    let lines = Lines::new(text);
    let table = DeTable::parse(text).map_err(|e| {
        let pos = lines.at(e.span().map_or(0, |s| s.start));
        (pos, e.message().trim().to_owned())
    })?;

    fn value(
        v: &toml::Spanned<DeValue<'_>>,
        lines: &Lines<'_>,
        ids: &mut Ids,
        depth: usize,
    ) -> Result<Node, SyntaxError> {
        let pos = lines.at(v.span().start);
        if depth >= MAX_DEPTH {
            let message = format!("nesting deeper than {MAX_DEPTH} levels (recursion limit)");
            return Err((pos, message));
        }
        let kind = match v.get_ref() {
            DeValue::String(s) => Kind::Str(s.to_string()),
            DeValue::Integer(i) => {
                let digits: String = i.as_str().chars().filter(|c| *c != '_').collect();
                match i64::from_str_radix(&digits, i.radix()) {
                    Ok(n) => Kind::Int(n),
                    Err(_) => return Err((pos, format!("integer {i} does not fit in 64 bits"))),
                }
            }
            DeValue::Float(f) => {
                let digits: String = f.as_str().chars().filter(|c| *c != '_').collect();
                let n = match digits.trim_start_matches(['+', '-']) {
                    "inf" => f64::INFINITY,
                    "nan" => f64::NAN,
                    _ => digits
                        .parse()
                        .map_err(|_| (pos, format!("invalid float {f}")))?,
                };
                Kind::Float(if digits.starts_with('-') && n > 0.0 {
                    -n
                } else {
                    n
                })
            }
            DeValue::Boolean(b) => Kind::Bool(*b),
            DeValue::Datetime(d) => Kind::Str(d.to_string()),
            DeValue::Array(items) => Kind::Seq(
                items
                    .iter()
                    .map(|i| value(i, lines, ids, depth + 1))
                    .collect::<Result<_, _>>()?,
            ),
            DeValue::Table(t) => Kind::Map(entries(t, lines, ids, depth + 1)?),
        };
        Ok(ids.node(pos, kind))
    }

    fn entries(
        t: &DeTable<'_>,
        lines: &Lines<'_>,
        ids: &mut Ids,
        depth: usize,
    ) -> Result<Vec<Entry>, SyntaxError> {
        t.iter()
            .map(|(k, v)| {
                Ok(Entry {
                    key: k.get_ref().to_string(),
                    key_pos: lines.at(k.span().start),
                    value: value(v, lines, ids, depth)?,
                })
            })
            .collect()
    }

    let root = entries(table.get_ref(), &lines, ids, 0)?;
    Ok(ids.node(Position { line: 1, column: 1 }, Kind::Map(root)))
}

/// How deep a document may nest maps and sequences (JSON's and TOML's readers stop at a
/// similar depth; a policy file needs fewer than ten levels).
pub(crate) const MAX_DEPTH: usize = 128;

/// How many nodes YAML aliases may expand to in one document: enough to share a table many
/// times, far too few for an exponential "billion laughs" file.
pub(crate) const MAX_ALIASED_NODES: usize = 100_000;

fn yaml_tree(text: &str, ids: &mut Ids) -> Result<Node, SyntaxError> {
    use std::collections::HashSet;
    use yaml_rust2::parser::{Event, Parser};
    use yaml_rust2::scanner::TScalarStyle;

    /// A map or sequence being read: where it starts, its anchor, what it holds so far and
    /// how many nodes that is (for the alias budget).
    struct Frame {
        pos: Position,
        anchor: usize,
        size: usize,
        body: Body,
    }

    enum Body {
        Seq(Vec<Node>),
        Map {
            entries: Vec<Entry>,
            keys: HashSet<String>,
            pending: Option<(String, Position)>,
        },
    }

    struct Builder<'i> {
        ids: &'i mut Ids,
        stack: Vec<Frame>,
        /// Anchored nodes and their sizes in nodes.
        anchors: Vec<(usize, Node, usize)>,
        aliased: usize,
        root: Option<Node>,
    }

    impl Builder<'_> {
        fn complete(&mut self, node: Node, anchor: usize, size: usize) -> Result<(), SyntaxError> {
            if anchor > 0 {
                self.anchors.push((anchor, node.clone(), size));
            }
            let Some(frame) = self.stack.last_mut() else {
                if self.root.is_none() {
                    self.root = Some(node);
                }
                return Ok(());
            };
            frame.size += size;
            match &mut frame.body {
                Body::Seq(items) => items.push(node),
                Body::Map {
                    entries,
                    keys,
                    pending,
                } => match pending.take() {
                    None => match node.kind {
                        Kind::Str(key) => *pending = Some((key, node.pos)),
                        _ => {
                            let message =
                                format!("a key must be a string, not {}", node.type_name());
                            return Err((node.pos, message));
                        }
                    },
                    Some((key, key_pos)) => {
                        if !keys.insert(key.clone()) {
                            return Err((key_pos, format!("duplicate key {key:?}")));
                        }
                        entries.push(Entry {
                            key,
                            key_pos,
                            value: node,
                        });
                    }
                },
            }
            Ok(())
        }

        fn open(&mut self, pos: Position, anchor: usize, body: Body) -> Result<(), SyntaxError> {
            if self.stack.len() >= MAX_DEPTH {
                let message = format!("nesting deeper than {MAX_DEPTH} levels (recursion limit)");
                return Err((pos, message));
            }
            self.stack.push(Frame {
                pos,
                anchor,
                size: 1,
                body,
            });
            Ok(())
        }

        /// Reads one event; an error ends the document.
        fn event(&mut self, ev: Event, pos: Position) -> Result<(), SyntaxError> {
            match ev {
                Event::Scalar(text, style, anchor, _) => {
                    let kind = if style == TScalarStyle::Plain {
                        scalar(text)
                    } else {
                        Kind::Str(text)
                    };
                    let node = self.ids.node(pos, kind);
                    self.complete(node, anchor, 1)
                }
                Event::SequenceStart(anchor, _) => self.open(pos, anchor, Body::Seq(Vec::new())),
                Event::MappingStart(anchor, _) => self.open(
                    pos,
                    anchor,
                    Body::Map {
                        entries: Vec::new(),
                        keys: HashSet::new(),
                        pending: None,
                    },
                ),
                Event::SequenceEnd | Event::MappingEnd => {
                    let Some(frame) = self.stack.pop() else {
                        return Ok(());
                    };
                    let kind = match frame.body {
                        Body::Seq(items) => Kind::Seq(items),
                        Body::Map { entries, .. } => Kind::Map(entries),
                    };
                    let node = self.ids.node(frame.pos, kind);
                    self.complete(node, frame.anchor, frame.size)
                }
                Event::Alias(anchor) => {
                    let Some((_, node, size)) =
                        self.anchors.iter().rev().find(|(a, _, _)| *a == anchor)
                    else {
                        return Err((pos, "an alias to an unknown anchor".to_owned()));
                    };
                    let (node, size) = (node.clone(), *size);
                    self.aliased += size;
                    if self.aliased > MAX_ALIASED_NODES {
                        let message = format!(
                            "aliases expand to more than {MAX_ALIASED_NODES} values; \
                             write the shared table out or use fewer aliases"
                        );
                        return Err((pos, message));
                    }
                    self.complete(node, 0, size)
                }
                _ => Ok(()),
            }
        }
    }

    fn scalar(text: String) -> Kind {
        match yaml_rust2::Yaml::from_str(&text) {
            yaml_rust2::Yaml::Integer(i) => Kind::Int(i),
            yaml_rust2::Yaml::Real(r) => match r.parse::<f64>() {
                Ok(f) => Kind::Float(f),
                Err(_) => Kind::Float(match r.trim_start_matches(['+', '-']) {
                    ".inf" | ".Inf" | ".INF" if r.starts_with('-') => f64::NEG_INFINITY,
                    ".inf" | ".Inf" | ".INF" => f64::INFINITY,
                    _ => f64::NAN,
                }),
            },
            yaml_rust2::Yaml::Boolean(b) => Kind::Bool(b),
            yaml_rust2::Yaml::Null => Kind::Null,
            _ => Kind::Str(text),
        }
    }

    let mut builder = Builder {
        ids,
        stack: Vec::new(),
        anchors: Vec::new(),
        aliased: 0,
        root: None,
    };
    // The parser's events are read one at a time (its own `load` recurses once per level of
    // block nesting, so a deep file would overflow the stack before any limit applied).
    let mut parser = Parser::new_from_str(text);
    let mut documents = 0;
    loop {
        let (ev, mark) = parser.next_token().map_err(|e| {
            let m = e.marker();
            let pos = Position {
                line: m.line() as u32,
                column: m.col() as u32 + 1,
            };
            (pos, e.info().to_owned())
        })?;
        let pos = Position {
            line: mark.line() as u32,
            column: mark.col() as u32 + 1,
        };
        match ev {
            Event::StreamEnd => break,
            Event::DocumentStart => {
                documents += 1;
                if documents > 1 {
                    return Err((pos, "a policy file holds one document".to_owned()));
                }
            }
            ev => builder.event(ev, pos)?,
        }
    }
    let start = Position { line: 1, column: 1 };
    match builder.root {
        None => Ok(builder.ids.node(start, Kind::Map(Vec::new()))),
        Some(node) if matches!(node.kind, Kind::Null) => {
            Ok(builder.ids.node(start, Kind::Map(Vec::new())))
        }
        Some(node) => Ok(node),
    }
}

/// Writes a serializable value in `format`.
pub(crate) fn write<T: serde::Serialize>(value: &T, format: Format) -> Result<String, String> {
    match format {
        Format::Toml => toml::to_string_pretty(value).map_err(|e| e.to_string()),
        Format::Json => serde_json::to_string_pretty(value)
            .map(|mut s| {
                s.push('\n');
                s
            })
            .map_err(|e| e.to_string()),
        Format::Yaml => {
            let json = serde_json::to_value(value).map_err(|e| e.to_string())?;
            let mut out = String::new();
            let mut emitter = yaml_rust2::YamlEmitter::new(&mut out);
            emitter.dump(&to_yaml(json)).map_err(|e| e.to_string())?;
            out.push('\n');
            Ok(out)
        }
    }
}

fn to_yaml(v: serde_json::Value) -> yaml_rust2::Yaml {
    use serde_json::Value;
    use yaml_rust2::Yaml;
    match v {
        Value::Null => Yaml::Null,
        Value::Bool(b) => Yaml::Boolean(b),
        Value::Number(n) => match n.as_i64() {
            Some(i) => Yaml::Integer(i),
            None => {
                let f = n.as_f64().unwrap_or(f64::NAN);
                // Keep a float a float when read back ("1" would become an integer).
                let text = if f.fract() == 0.0 && f.is_finite() {
                    format!("{f:.1}")
                } else {
                    f.to_string()
                };
                Yaml::Real(text)
            }
        },
        Value::String(s) => Yaml::String(s),
        Value::Array(items) => Yaml::Array(items.into_iter().map(to_yaml).collect()),
        Value::Object(map) => Yaml::Hash(
            map.into_iter()
                .map(|(k, v)| (Yaml::String(k), to_yaml(v)))
                .collect(),
        ),
    }
}
