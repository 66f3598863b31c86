//! The policy-file form of a classifier: a name, or a table with `kind` and options.
//!
//! ```toml
//! classify = "http"
//! classify = { kind = "http", statuses = [429, 503], timeouts = false }
//! ```

use serde::{Deserialize, Serialize};

use super::ClassifyOptions;

/// A classifier with options: `kind` is required; the other fields apply to the kinds they name.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[cfg_attr(feature = "schema", schemars(rename = "ClassifyTable"))]
#[serde(deny_unknown_fields)]
struct ClassifyTable {
    /// The classifier: always, never, io, http, grpc, or a name registered in the Registry.
    kind: String,
    /// http: the statuses retried (400 to 599). Default [408, 429, 502, 503, 504].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    statuses: Option<Vec<u16>>,
    /// grpc: the codes retried, by name. Default ["UNAVAILABLE", "RESOURCE_EXHAUSTED"].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    codes: Option<Vec<String>>,
    /// io, http, grpc: whether a timed-out I/O error is retried. Default true.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    timeouts: Option<bool>,
}

impl Serialize for ClassifyOptions {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        if self.is_plain() {
            return s.serialize_str(&self.kind);
        }
        ClassifyTable {
            kind: self.kind.clone(),
            statuses: self.statuses.clone(),
            codes: self.codes.clone(),
            timeouts: self.timeouts,
        }
        .serialize(s)
    }
}

impl<'de> Deserialize<'de> for ClassifyOptions {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Visit;
        impl<'de> serde::de::Visitor<'de> for Visit {
            type Value = ClassifyOptions;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a classifier name (\"http\") or a table with `kind`")
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Self::Value, E> {
                Ok(ClassifyOptions::new(v))
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                map: A,
            ) -> Result<Self::Value, A::Error> {
                let t =
                    ClassifyTable::deserialize(serde::de::value::MapAccessDeserializer::new(map))?;
                Ok(ClassifyOptions {
                    kind: t.kind,
                    statuses: t.statuses,
                    codes: t.codes,
                    timeouts: t.timeouts,
                })
            }
        }
        d.deserialize_any(Visit)
    }
}

#[cfg(feature = "schema")]
impl schemars::JsonSchema for ClassifyOptions {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "Classify".into()
    }

    fn json_schema(generator: &mut schemars::SchemaGenerator) -> schemars::Schema {
        let table = generator.subschema_for::<ClassifyTable>();
        schemars::json_schema!({
            "description": "Which failures are retried: a classifier's name (always, never, io, http, grpc, or one registered in the Registry), or a table with `kind` and options.",
            "anyOf": [{ "type": "string" }, table]
        })
    }
}

impl crate::policy::TableField for ClassifyOptions {
    fn validate(&self) -> Result<(), crate::ConfigError> {
        ClassifyOptions::validate(self)
    }
    fn join(
        self,
        plan: crate::policy::Plan,
        registry: &crate::chain::Registry,
    ) -> Result<crate::policy::Plan, crate::ConfigError> {
        Ok(plan.classify(registry.classify(&self)?))
    }
}
