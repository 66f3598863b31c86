//! Where a call's plan comes from: a key the executor resolves, or a handle's entry.

use std::sync::Arc;

use super::bind::Bound;
use super::cache::Entry;
use super::{Executor, Handle, Inner};

/// Where a call's plan comes from: a key the executor resolves, or a handle's pinned entry.
#[derive(Debug, Clone, Copy)]
pub(super) enum At<'e> {
    Key(&'e Executor, &'e str),
    Handle(&'e Handle),
}

impl At<'_> {
    pub(super) fn inner(&self) -> &Inner {
        match self {
            At::Key(e, _) => &e.inner,
            At::Handle(h) => &h.inner,
        }
    }

    /// The key and its plan, resolved once for the whole call.
    pub(super) fn resolve(&self) -> Result<(Arc<Entry>, Arc<Bound>), crate::key::KeyError> {
        match self {
            At::Key(e, key) => {
                let entry = e.inner.entry(key)?;
                let bound = e.inner.current(&entry);
                Ok((entry, bound))
            }
            At::Handle(h) => Ok((
                h.entry.clone(),
                h.fresh().unwrap_or_else(|| h.bound.clone()),
            )),
        }
    }
}
