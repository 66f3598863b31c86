//! The policy-file language: text in TOML, YAML or JSON read into a spanned tree
//! (`format`, `node`), the [`PolicyDocument`] and its tables ([`TableSpec`]), the checks
//! that place every problem ([`Diagnostics`]), which table each strategy of a key comes from
//! ([`Explanation`]), and compiling a document into [`Policies`](crate::policy::Policies).

mod check;
mod compile;
mod diagnostic;
mod document;
mod explain;
pub(crate) mod format;
mod grpc_config;
pub(crate) mod node;
mod table;

pub use diagnostic::{Diagnostic, Diagnostics};
pub use document::PolicyDocument;
pub use explain::{Explanation, Origin};
pub use format::{Format, MAX_DOCUMENT_BYTES, read_to_string};
pub use grpc_config::Imported;
pub use node::Position;
pub(crate) use table::TableField;
pub use table::TableSpec;
