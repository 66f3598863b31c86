//! Providers: where an executor's policy documents come from, and how they change.
//!
//! A [`Provider`] delivers [`Update`]s: a new valid document, a refused one, or a source that
//! could not be read. [`Executor::follow`](crate::Executor::follow) applies them: a document
//! is compiled and swapped in atomically; anything else is reported and the policies in force
//! stay (last-known-good). Providers: [`StaticProvider`] (code), [`FileProvider`] (a watched
//! file, feature `watch`), [`HttpProvider`] (a polled URL with ETags and an on-disk cache,
//! feature `http`), and [`Layered`] to put one over another (remote over file over static).
//!
//! [`FileProvider`]: crate::policy::FileProvider
//! [`HttpProvider`]: crate::policy::HttpProvider

use std::fmt;
use std::sync::Arc;

use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use crate::policy::{Diagnostics, PolicyDocument};

#[cfg(feature = "watch")]
mod file;
#[cfg(feature = "watch")]
pub use file::{DEFAULT_DEBOUNCE, FileProvider};
#[cfg(feature = "http")]
mod http;
#[cfg(feature = "http")]
pub use http::{DEFAULT_INTERVAL, DEFAULT_TIMEOUT, HttpProvider};

/// A source of policy documents.
///
/// Implement it to serve policies from somewhere steadfast does not know (a database, a
/// config service): spawn what watches the source and send [`Update`]s through the
/// [`Updates::channel`] pair.
///
/// # Example
/// ```
/// use steadfast::policy::{PolicyDocument, Provider, Update, Updates};
///
/// #[derive(Debug)]
/// struct FromEnv;
/// impl Provider for FromEnv {
///     fn start(self: Box<Self>) -> Updates {
///         let (tx, updates) = Updates::channel();
///         let text = std::env::var("POLICIES").unwrap_or_default();
///         let parsed = PolicyDocument::parse(&text, steadfast::policy::Format::Toml, "$POLICIES");
///         let _ = tx.send(Update::parsed("$POLICIES", parsed));
///         updates
///     }
/// }
/// ```
pub trait Provider: fmt::Debug + Send + 'static {
    /// Starts delivering updates: the first reports the source's state now (its document,
    /// or why there is none), the later ones each change. Work spawned for it stops when the
    /// returned [`Updates`] is dropped.
    fn start(self: Box<Self>) -> Updates;
}

/// One report from a provider.
#[derive(Debug, Clone)]
pub struct Update {
    source: Arc<str>,
    kind: UpdateKind,
}

/// What a provider reports.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum UpdateKind {
    /// A new valid document.
    Document(Arc<PolicyDocument>),
    /// The source changed to an invalid document; the last good one should stay.
    Rejected(Arc<Diagnostics>),
    /// The source could not be read; the last good document should stay.
    Unavailable(String),
}

impl Update {
    /// A new valid document from `source`.
    pub fn document(source: impl Into<Arc<str>>, doc: PolicyDocument) -> Self {
        Update {
            source: source.into(),
            kind: UpdateKind::Document(Arc::new(doc)),
        }
    }

    /// An invalid document from `source`.
    pub fn rejected(source: impl Into<Arc<str>>, diagnostics: Diagnostics) -> Self {
        Update {
            source: source.into(),
            kind: UpdateKind::Rejected(Arc::new(diagnostics)),
        }
    }

    /// `source` could not be read.
    pub fn unavailable(source: impl Into<Arc<str>>, reason: impl Into<String>) -> Self {
        Update {
            source: source.into(),
            kind: UpdateKind::Unavailable(reason.into()),
        }
    }

    /// A parse's result from `source`: its document, or its diagnostics as a refusal.
    pub fn parsed(
        source: impl Into<Arc<str>>,
        result: Result<PolicyDocument, Diagnostics>,
    ) -> Self {
        match result {
            Ok(doc) => Update::document(source, doc),
            Err(e) => Update::rejected(source, e),
        }
    }

    /// Which provider it came from (a path, a URL).
    pub fn source(&self) -> &str {
        &self.source
    }

    /// What it says.
    pub fn kind(&self) -> &UpdateKind {
        &self.kind
    }

    /// The document, if it carries one.
    pub fn document_ref(&self) -> Option<&Arc<PolicyDocument>> {
        match &self.kind {
            UpdateKind::Document(d) => Some(d),
            _ => None,
        }
    }
}

/// The updates of a started provider; dropping it stops the provider's work.
#[derive(Debug)]
pub struct Updates {
    rx: mpsc::UnboundedReceiver<Update>,
    tasks: Vec<JoinHandle<()>>,
}

impl Updates {
    /// A sender for a provider's updates and the `Updates` it returns from
    /// [`start`](Provider::start).
    pub fn channel() -> (mpsc::UnboundedSender<Update>, Updates) {
        let (tx, rx) = mpsc::unbounded_channel();
        (
            tx,
            Updates {
                rx,
                tasks: Vec::new(),
            },
        )
    }

    /// Ties a task to these updates: it is aborted when they are dropped.
    pub fn with_task(mut self, task: JoinHandle<()>) -> Self {
        self.tasks.push(task);
        self
    }

    /// The next update; `None` once the provider has stopped for good.
    pub async fn next(&mut self) -> Option<Update> {
        self.rx.recv().await
    }
}

impl Drop for Updates {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}

/// An executor following a provider; dropping it stops following (the policies in force stay).
#[derive(Debug)]
#[must_use = "dropping it stops following the provider"]
pub struct Following {
    task: JoinHandle<()>,
}

impl Drop for Following {
    fn drop(&mut self) {
        self.task.abort();
    }
}

pub(crate) async fn follow(executor: crate::Executor, provider: Box<dyn Provider>) -> Following {
    let mut updates = provider.start();
    if let Some(first) = updates.next().await {
        executor.apply(&first);
    }
    let task = tokio::spawn(async move {
        while let Some(update) = updates.next().await {
            executor.apply(&update);
        }
    });
    Following { task }
}

/// Policies given in code, delivered once: the bottom layer of a [`Layered`] provider.
///
/// # Example
/// ```
/// use steadfast::policy::{PolicyDocument, StaticProvider, TableSpec};
/// use steadfast::Retry;
///
/// let provider = StaticProvider::new(
///     PolicyDocument::new().with("payments.*", TableSpec::new().retry(Retry::immediate().max_attempts(2))),
/// );
/// # let _ = provider;
/// ```
#[derive(Debug, Clone)]
pub struct StaticProvider {
    doc: PolicyDocument,
}

impl StaticProvider {
    /// Delivers `doc`.
    pub fn new(doc: PolicyDocument) -> Self {
        StaticProvider { doc }
    }
}

impl Provider for StaticProvider {
    fn start(self: Box<Self>) -> Updates {
        let (tx, updates) = Updates::channel();
        let _ = tx.send(Update::document("static", self.doc));
        // Keep the channel open: a static source has nothing more to say, but is not gone.
        let task = tokio::spawn(async move {
            tx.closed().await;
        });
        updates.with_task(task)
    }
}

/// Providers stacked: each table's strategies come from the highest layer that has them
/// ([`PolicyDocument::over`]), so a remote service can override a file, which overrides code.
///
/// Each layer keeps its own last-known-good document: a remote source that goes down leaves
/// its last document in force over the layers below. The first merged document is delivered
/// once every layer has reported its first state.
///
/// # Example
/// ```no_run
/// use std::time::Duration;
/// use steadfast::policy::{FileProvider, HttpProvider, Layered, PolicyDocument, StaticProvider};
///
/// # async fn demo(executor: steadfast::Executor) {
/// let provider = Layered::new()
///     .layer(HttpProvider::new("http://policies.internal/svc.toml").interval(Duration::from_secs(30)))
///     .layer(FileProvider::new("policies.toml"))
///     .layer(StaticProvider::new(PolicyDocument::new()));
/// let _following = executor.follow(provider).await;
/// # }
/// ```
#[derive(Debug, Default)]
pub struct Layered {
    layers: Vec<Box<dyn Provider>>,
}

impl Layered {
    /// No layers yet.
    pub fn new() -> Self {
        Layered::default()
    }

    /// Adds a layer below the ones added before (the first added is the top).
    pub fn layer(mut self, provider: impl Provider) -> Self {
        self.layers.push(Box::new(provider));
        self
    }
}

impl Provider for Layered {
    fn start(self: Box<Self>) -> Updates {
        let (tx, updates) = Updates::channel();
        let (merge_tx, mut merge_rx) = mpsc::unbounded_channel::<(usize, Update)>();
        let n = self.layers.len();
        let mut children = Vec::new();
        for (i, layer) in self.layers.into_iter().enumerate() {
            let mut child = layer.start();
            let merge_tx = merge_tx.clone();
            children.push(tokio::spawn(async move {
                while let Some(u) = child.next().await {
                    if merge_tx.send((i, u)).is_err() {
                        return;
                    }
                }
            }));
        }
        drop(merge_tx);
        let merge =
            tokio::spawn(async move {
                let mut latest: Vec<Option<Arc<PolicyDocument>>> = vec![None; n];
                let mut reported = vec![false; n];
                let mut held: Vec<Update> = Vec::new();
                while let Some((i, update)) = merge_rx.recv().await {
                    let first_round = reported.iter().any(|r| !r);
                    reported[i] = true;
                    let changed = match update.document_ref() {
                        Some(doc) => {
                            latest[i] = Some(doc.clone());
                            true
                        }
                        None => {
                            held.push(update);
                            false
                        }
                    };
                    if reported.iter().any(|r| !r) {
                        continue;
                    }
                    if changed || first_round {
                        let merged = latest.iter().rev().flatten().fold(
                            None::<PolicyDocument>,
                            |acc, doc| {
                                Some(match acc {
                                    None => PolicyDocument::clone(doc),
                                    Some(lower) => doc.over(&lower),
                                })
                            },
                        );
                        if let Some(doc) = merged
                            && tx.send(Update::document("layered", doc)).is_err()
                        {
                            return;
                        }
                    }
                    // Everything not a document passes through as it is, after the merged
                    // document (so the first update a follower sees is the policies, when any).
                    for u in held.drain(..) {
                        if tx.send(u).is_err() {
                            return;
                        }
                    }
                }
            });
        children
            .into_iter()
            .fold(updates.with_task(merge), Updates::with_task)
    }
}
