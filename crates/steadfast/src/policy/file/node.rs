//! A policy file as a tree of values that remember where they were written.
//!
//! TOML, YAML and JSON are each read into one [`Node`] tree (JSON through the YAML reader, of
//! which it is a subset, after a strict JSON syntax check), and the typed options are read from
//! the tree by serde (the [`Deserializer`](serde::Deserializer) below). Every error carries the
//! node it came from, so it can be reported with its line, column and field path; [`collect`]
//! removes the offending entry and reads again, so one pass reports every problem, not the first.

use std::fmt;

use serde::de::{self, DeserializeOwned, IntoDeserializer, Visitor};

/// A line and column, both from 1; the column counts characters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default)]
pub struct Position {
    /// The line, from 1.
    pub line: u32,
    /// The column, from 1, in characters.
    pub column: u32,
}

#[derive(Debug, Clone)]
pub(crate) struct Node {
    pub(crate) id: u32,
    pub(crate) pos: Position,
    pub(crate) kind: Kind,
}

#[derive(Debug, Clone)]
pub(crate) enum Kind {
    Null,
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(String),
    Seq(Vec<Node>),
    Map(Vec<Entry>),
}

#[derive(Debug, Clone)]
pub(crate) struct Entry {
    pub(crate) key: String,
    pub(crate) key_pos: Position,
    pub(crate) value: Node,
}

/// One segment of a field path: a map key or a sequence index.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Segment {
    Key(String),
    Index(usize),
}

/// Writes a path the way the docs and messages do: `policies."payments.Charge".retry.base`.
pub(crate) fn fmt_path(path: &[Segment]) -> String {
    let mut out = String::new();
    for seg in path {
        match seg {
            Segment::Key(k) => {
                if !out.is_empty() {
                    out.push('.');
                }
                let plain = !k.is_empty()
                    && k.bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
                if plain {
                    out.push_str(k);
                } else {
                    out.push_str(&format!("{k:?}"));
                }
            }
            Segment::Index(i) => out.push_str(&format!("[{i}]")),
        }
    }
    out
}

impl Node {
    pub(crate) fn type_name(&self) -> &'static str {
        match self.kind {
            Kind::Null => "null",
            Kind::Bool(_) => "a boolean",
            Kind::Int(_) => "an integer",
            Kind::Float(_) => "a float",
            Kind::Str(_) => "a string",
            Kind::Seq(_) => "an array",
            Kind::Map(_) => "a table",
        }
    }

    pub(crate) fn entries(&self) -> &[Entry] {
        match &self.kind {
            Kind::Map(entries) => entries,
            _ => &[],
        }
    }

    pub(crate) fn get(&self, key: &str) -> Option<&Entry> {
        self.entries().iter().find(|e| e.key == key)
    }

    /// The path to the node `id` and where it is (a key's position for map values, so a
    /// message points at the field's name).
    pub(crate) fn locate(&self, id: u32) -> Option<(Vec<Segment>, Position)> {
        if self.id == id {
            return Some((Vec::new(), self.pos));
        }
        let mut path = Vec::new();
        self.locate_in(id, &mut path).map(|pos| (path, pos))
    }

    fn locate_in(&self, id: u32, path: &mut Vec<Segment>) -> Option<Position> {
        match &self.kind {
            Kind::Map(entries) => {
                for e in entries {
                    path.push(Segment::Key(e.key.clone()));
                    if e.value.id == id {
                        return Some(e.value.pos);
                    }
                    if let Some(p) = e.value.locate_in(id, path) {
                        return Some(p);
                    }
                    path.pop();
                }
            }
            Kind::Seq(items) => {
                for (i, n) in items.iter().enumerate() {
                    path.push(Segment::Index(i));
                    if n.id == id {
                        return Some(n.pos);
                    }
                    if let Some(p) = n.locate_in(id, path) {
                        return Some(p);
                    }
                    path.pop();
                }
            }
            _ => {}
        }
        None
    }

    /// The node at `path` (map keys from here), if it is written.
    pub(crate) fn at(&self, path: &[&str]) -> Option<&Node> {
        path.iter()
            .try_fold(self, |node, seg| node.get(seg).map(|e| &e.value))
    }

    /// The position of the deepest node along `path` that exists.
    pub(crate) fn nearest(&self, path: &[&str]) -> Position {
        let mut node = self;
        for seg in path {
            match node.get(seg) {
                Some(e) => node = &e.value,
                None => break,
            }
        }
        node.pos
    }

    /// Removes the map entry or sequence item holding node `id`; false if `id` is this node
    /// or not under it.
    pub(crate) fn remove(&mut self, id: u32) -> bool {
        match &mut self.kind {
            Kind::Map(entries) => {
                if let Some(i) = entries.iter().position(|e| e.value.id == id) {
                    entries.remove(i);
                    return true;
                }
                entries.iter_mut().any(|e| e.value.remove(id))
            }
            Kind::Seq(items) => {
                if let Some(i) = items.iter().position(|n| n.id == id) {
                    items.remove(i);
                    return true;
                }
                items.iter_mut().any(|n| n.remove(id))
            }
            _ => false,
        }
    }
}

/// Numbers nodes as a tree is built.
#[derive(Debug, Default)]
pub(crate) struct Ids(u32);

impl Ids {
    pub(crate) fn node(&mut self, pos: Position, kind: Kind) -> Node {
        self.0 += 1;
        Node {
            id: self.0,
            pos,
            kind,
        }
    }
}

/// An error reading typed options from a node: the message, the node it is about, and
/// (for an unknown field) the position of the key rather than its value.
#[derive(Debug)]
pub(crate) struct NodeError {
    pub(crate) message: String,
    pub(crate) node: Option<u32>,
    pub(crate) at: Option<Position>,
}

impl NodeError {
    fn at_node(mut self, node: &Node) -> Self {
        if self.node.is_none() {
            self.node = Some(node.id);
        }
        self
    }
}

impl fmt::Display for NodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for NodeError {}

impl de::Error for NodeError {
    fn custom<T: fmt::Display>(msg: T) -> Self {
        NodeError {
            message: msg.to_string(),
            node: None,
            at: None,
        }
    }
}

/// One problem found reading a tree: the path and position of the node it is about.
#[derive(Debug)]
pub(crate) struct Found {
    pub(crate) path: Vec<Segment>,
    pub(crate) pos: Position,
    pub(crate) message: String,
}

/// How many problems one document reports before reading stops (each is found by reading the
/// tree again, so the cap keeps a file of thousands of mistakes linear to check).
pub(crate) const MAX_PROBLEMS: usize = 100;

/// Reads a `T` from `root`, reporting every problem: after each error the entry it is about is
/// removed and the tree read again (so the field takes its default), until it reads cleanly, the
/// error is about the root itself, or [`MAX_PROBLEMS`] are found (then the last one says reading
/// stopped). Returns the value if one was read at all.
pub(crate) fn collect<T: DeserializeOwned>(root: &mut Node, found: &mut Vec<Found>) -> Option<T> {
    let start = found.len();
    loop {
        match T::deserialize(NodeDe(root)) {
            Ok(v) => return Some(v),
            Err(e) => {
                if found.len() - start == MAX_PROBLEMS {
                    found.push(Found {
                        path: Vec::new(),
                        pos: root.pos,
                        message: format!(
                            "stopped after {MAX_PROBLEMS} problems; fix these and check again"
                        ),
                    });
                    return None;
                }
                let id = e.node.unwrap_or(root.id);
                let (path, pos) = root.locate(id).unwrap_or_default();
                found.push(Found {
                    path,
                    pos: e.at.unwrap_or(pos),
                    message: e.message,
                });
                if id == root.id || !root.remove(id) {
                    return None;
                }
            }
        }
    }
}

pub(crate) struct NodeDe<'a>(pub(crate) &'a Node);

impl<'de> de::Deserializer<'de> for NodeDe<'_> {
    type Error = NodeError;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, NodeError> {
        let node = self.0;
        let result = match &node.kind {
            Kind::Null => visitor.visit_unit(),
            Kind::Bool(b) => visitor.visit_bool(*b),
            Kind::Int(i) => visitor.visit_i64(*i),
            Kind::Float(f) => visitor.visit_f64(*f),
            Kind::Str(s) => visitor.visit_str(s),
            Kind::Seq(items) => visitor.visit_seq(SeqAccess {
                items: items.iter(),
            }),
            Kind::Map(entries) => visitor.visit_map(MapAccess {
                entries: entries.iter(),
                value: None,
            }),
        };
        result.map_err(|e| e.at_node(node))
    }

    fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, NodeError> {
        let node = self.0;
        match node.kind {
            Kind::Null => visitor.visit_none(),
            _ => visitor.visit_some(self),
        }
        .map_err(|e| e.at_node(node))
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(
        self,
        _: &'static str,
        visitor: V,
    ) -> Result<V::Value, NodeError> {
        let node = self.0;
        visitor
            .visit_newtype_struct(self)
            .map_err(|e| e.at_node(node))
    }

    fn deserialize_enum<V: Visitor<'de>>(
        self,
        _: &'static str,
        _: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, NodeError> {
        let node = self.0;
        let result = match &node.kind {
            Kind::Str(s) => visitor.visit_enum(s.as_str().into_deserializer()),
            Kind::Map(entries) if entries.len() == 1 => visitor.visit_enum(EnumAccess(&entries[0])),
            _ => Err(de::Error::invalid_type(unexpected(node), &visitor)),
        };
        result.map_err(|e| e.at_node(node))
    }

    fn deserialize_ignored_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, NodeError> {
        visitor.visit_unit()
    }

    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string
        bytes byte_buf unit unit_struct seq tuple tuple_struct map struct identifier
    }
}

fn unexpected(node: &Node) -> de::Unexpected<'_> {
    match &node.kind {
        Kind::Null => de::Unexpected::Unit,
        Kind::Bool(b) => de::Unexpected::Bool(*b),
        Kind::Int(i) => de::Unexpected::Signed(*i),
        Kind::Float(f) => de::Unexpected::Float(*f),
        Kind::Str(s) => de::Unexpected::Str(s),
        Kind::Seq(_) => de::Unexpected::Seq,
        Kind::Map(_) => de::Unexpected::Map,
    }
}

struct SeqAccess<'a> {
    items: std::slice::Iter<'a, Node>,
}

impl<'de> de::SeqAccess<'de> for SeqAccess<'_> {
    type Error = NodeError;

    fn next_element_seed<T: de::DeserializeSeed<'de>>(
        &mut self,
        seed: T,
    ) -> Result<Option<T::Value>, NodeError> {
        match self.items.next() {
            Some(node) => seed
                .deserialize(NodeDe(node))
                .map(Some)
                .map_err(|e| e.at_node(node)),
            None => Ok(None),
        }
    }
}

struct MapAccess<'a> {
    entries: std::slice::Iter<'a, Entry>,
    value: Option<&'a Node>,
}

impl<'de> de::MapAccess<'de> for MapAccess<'_> {
    type Error = NodeError;

    fn next_key_seed<K: de::DeserializeSeed<'de>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, NodeError> {
        let Some(entry) = self.entries.next() else {
            return Ok(None);
        };
        self.value = Some(&entry.value);
        let key: de::value::StrDeserializer<'_, NodeError> = entry.key.as_str().into_deserializer();
        seed.deserialize(key).map(Some).map_err(|mut e| {
            // An unknown field: about the entry, pointed at its key.
            e.node = Some(entry.value.id);
            e.at = Some(entry.key_pos);
            e
        })
    }

    fn next_value_seed<V: de::DeserializeSeed<'de>>(
        &mut self,
        seed: V,
    ) -> Result<V::Value, NodeError> {
        match self.value.take() {
            Some(node) => seed.deserialize(NodeDe(node)).map_err(|e| e.at_node(node)),
            None => Err(de::Error::custom("value asked for before its key")),
        }
    }
}

struct EnumAccess<'a>(&'a Entry);

impl<'de, 'a> de::EnumAccess<'de> for EnumAccess<'a> {
    type Error = NodeError;
    type Variant = NodeDe<'a>;

    fn variant_seed<V: de::DeserializeSeed<'de>>(
        self,
        seed: V,
    ) -> Result<(V::Value, NodeDe<'a>), NodeError> {
        let key: de::value::StrDeserializer<'_, NodeError> =
            self.0.key.as_str().into_deserializer();
        let variant = seed.deserialize(key).map_err(|mut e| {
            e.node = Some(self.0.value.id);
            e.at = Some(self.0.key_pos);
            e
        })?;
        Ok((variant, NodeDe(&self.0.value)))
    }
}

impl<'de> de::VariantAccess<'de> for NodeDe<'_> {
    type Error = NodeError;

    fn unit_variant(self) -> Result<(), NodeError> {
        de::Deserialize::deserialize(self)
    }

    fn newtype_variant_seed<T: de::DeserializeSeed<'de>>(
        self,
        seed: T,
    ) -> Result<T::Value, NodeError> {
        seed.deserialize(self)
    }

    fn tuple_variant<V: Visitor<'de>>(self, _: usize, visitor: V) -> Result<V::Value, NodeError> {
        de::Deserializer::deserialize_any(self, visitor)
    }

    fn struct_variant<V: Visitor<'de>>(
        self,
        _: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, NodeError> {
        de::Deserializer::deserialize_any(self, visitor)
    }
}
